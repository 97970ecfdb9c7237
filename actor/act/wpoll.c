/* wpoll.c: the weights poller (see wpoll.h).
 *
 * Design. One thread, one loop: long-poll GetIfNewer(have = last fetched version, wait =
 * period); on a newer blob, swap it into the mailbox under the mutex; then sleep out the rest of
 * the period on a condition variable, so wpoll_stop wakes it at once. The long poll makes a
 * fresh publish reach the actor within a round trip, and the period caps the fetch rate (one
 * blob per period at most, whatever the learner's publish rate). Errors back off by one period;
 * the client fails fast on a shard that is down, so the loop never spins. */
#include "wpoll.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ib.h"
#include "log.h"

struct wpoll {
  rc_client *c; /* borrowed */
  int shard;
  long period_ms;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;          /* under mu */
  pc_blob mail;      /* under mu: the newest fetched blob not yet taken (version 0 = empty) */
  int mail_full;     /* under mu */
  wpoll_stats st;    /* under mu */
};

static void swap_blob(pc_blob *a, pc_blob *b) {
  pc_blob t = *a;
  *a = *b;
  *b = t;
}

/* Waits on cv until `deadline` (CLOCK_MONOTONIC ns) or stop. Returns stop. Called with mu held. */
static int wait_until(wpoll *p, uint64_t deadline_ns) {
  while (!p->stop) {
    uint64_t now = ib_now_ns();
    if (now >= deadline_ns) break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t left = deadline_ns - now;
    ts.tv_sec += (time_t)(left / 1000000000ull);
    ts.tv_nsec += (long)(left % 1000000000ull);
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    int e = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    if (e != 0 && e != ETIMEDOUT && e != EINTR) break;
  }
  return p->stop;
}

static void *poll_main(void *arg) {
  wpoll *p = arg;
  pc_blob mine = {0};
  uint64_t have = 0;
  int failing = 0;
  for (;;) {
    uint64_t t0 = ib_now_ns();
    uint64_t stored = 0;
    int rc = pc_get_if_newer(p->c, p->shard, have, p->period_ms, &mine, &stored);
    pthread_mutex_lock(&p->mu);
    p->st.polls++;
    if (rc < 0) {
      p->st.errors++;
      if (!failing) log_warn("weights: polling %s failed: %s (keeping the current weights; retrying every %ld ms)",
                             rc_client_target(p->c, p->shard), ib_errmsg(), p->period_ms);
      failing = 1;
    } else {
      if (failing) log_info("weights: %s answers again", rc_client_target(p->c, p->shard));
      failing = 0;
      p->st.stored = rc == 1 ? mine.version : stored;
      if (rc == 1) {
        have = mine.version;
        p->st.fetched++;
        swap_blob(&mine, &p->mail);
        p->mail_full = 1;
      }
    }
    int stop = wait_until(p, t0 + (uint64_t)p->period_ms * 1000000ull);
    pthread_mutex_unlock(&p->mu);
    if (stop) break;
  }
  pc_blob_free(&mine);
  return NULL;
}

int wpoll_start(wpoll **out, rc_client *c, int shard, long period_ms) {
  IB_CHECK(out != NULL && c != NULL);
  *out = NULL;
  if (period_ms < 10)
    return ib_fail(IB_EINVAL, "weights poll period %ld ms is below 10 ms (HINT: --poll-ms 500)", period_ms);
  if (shard < 0 || shard >= rc_client_shard_count(c))
    return ib_fail(IB_EINVAL, "params shard %d is not one of the client's %d shards", shard, rc_client_shard_count(c));
  wpoll *p = ib_xcalloc(1, sizeof *p);
  p->c = c;
  p->shard = shard;
  p->period_ms = period_ms;
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&p->th, NULL, poll_main, p) != 0) {
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return ib_fail(IB_EUNAVAIL, "cannot start the weights poller thread: %s", strerror(errno));
  }
  *out = p;
  return IB_OK;
}

int wpoll_take(wpoll *p, pc_blob *dst, uint64_t have) {
  int got = 0;
  pthread_mutex_lock(&p->mu);
  if (p->mail_full && p->mail.version > have) {
    swap_blob(dst, &p->mail);
    p->mail_full = 0;
    got = 1;
  }
  pthread_mutex_unlock(&p->mu);
  return got;
}

void wpoll_stats_get(wpoll *p, wpoll_stats *out) {
  pthread_mutex_lock(&p->mu);
  *out = p->st;
  pthread_mutex_unlock(&p->mu);
}

void wpoll_stop(wpoll *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->th, NULL);
  pc_blob_free(&p->mail);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
