/* ratelim.c: the samples-per-insert limiter (rule and worked example in ratelim.h).
 *
 * Design: one mutex guards the counters and settings; one condition variable (on
 * CLOCK_MONOTONIC, so wall-clock jumps cannot stretch a deadline) is broadcast whenever anything
 * that can unblock a waiter changes: a counted insert or sample, an undo, new settings, pause,
 * shutdown. Waiters re-check their own predicate, so one variable serves both sides. Counters
 * are integers; the cursor is computed in double from them on demand, so no rounding drift
 * accumulates over a long run.
 * Fairness: each side keeps its waiters in a FIFO (nodes on the waiters' stacks). Only the head
 * of a side's queue may proceed, and a call that finds its side's queue non-empty joins the tail
 * even if its batch would fit now. Without this, a woken waiter raced every newcomer and every
 * other waiter for the room one sample made, and one actor's stream could lose that race until
 * its deadline, again and again (seen under load in the system test). */
#include "ratelim.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ib.h"

/* A blocked call, queued in arrival order on its side. */
typedef struct rlim_waiter {
  struct rlim_waiter *next;
} rlim_waiter;

struct rlim {
  pthread_mutex_t mu;
  rlim_waiter *head[2], *tail[2]; /* [0] inserts, [1] samples */
  pthread_cond_t cv;
  rlim_config cfg;
  double min_diff, max_diff;
  uint64_t inserts, samples;
  uint32_t waiting_inserts, waiting_samples;
  uint64_t insert_blocked_ns, sample_blocked_ns;
  uint64_t insert_timeouts, sample_timeouts;
  bool shut_down;
};

static int config_check(const rlim_config *c) {
  if (!(c->samples_per_insert > 0) || !isfinite(c->samples_per_insert))
    return ib_fail(IB_EINVAL,
                   "rate limiter: samples_per_insert %g must be positive and finite "
                   "(HINT: UTD x batch size, e.g. 2.5 x 256 = 640)",
                   c->samples_per_insert);
  double least = c->samples_per_insert > 1 ? c->samples_per_insert : 1;
  if (isnan(c->error_buffer) || c->error_buffer < least)
    return ib_fail(
        IB_EINVAL,
        "rate limiter: error_buffer %g is below max(1, samples_per_insert) = %g, "
        "so no insert could ever fit in the band (HINT: Acme uses 0.1 x min_size x spi; use "
        "INFINITY to enforce only min_size_to_sample)",
        c->error_buffer, least);
  return IB_OK;
}

static void band_set(rlim *l) {
  double off = (double)l->cfg.min_size_to_sample * l->cfg.samples_per_insert;
  l->min_diff = off - l->cfg.error_buffer;
  l->max_diff = off + l->cfg.error_buffer;
}

int rlim_create(rlim **out, const rlim_config *cfg) {
  IB_CHECK(out != NULL && cfg != NULL);
  *out = NULL;
  int rc = config_check(cfg);
  if (rc) return rc;
  rlim *l = ib_xcalloc(1, sizeof *l);
  l->cfg = *cfg;
  band_set(l);
  IB_CHECK(pthread_mutex_init(&l->mu, NULL) == 0);
  pthread_condattr_t ca;
  IB_CHECK(pthread_condattr_init(&ca) == 0);
  IB_CHECK(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0);
  IB_CHECK(pthread_cond_init(&l->cv, &ca) == 0);
  pthread_condattr_destroy(&ca);
  *out = l;
  return IB_OK;
}

void rlim_destroy(rlim *l) {
  if (!l) return;
  pthread_cond_destroy(&l->cv);
  pthread_mutex_destroy(&l->mu);
  free(l);
}

int rlim_config_set(rlim *l, const rlim_config *cfg) {
  IB_CHECK(l != NULL && cfg != NULL);
  int rc = config_check(cfg);
  if (rc) return rc;
  pthread_mutex_lock(&l->mu);
  l->cfg = *cfg;
  band_set(l);
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  return IB_OK;
}

void rlim_pause(rlim *l, bool paused) {
  pthread_mutex_lock(&l->mu);
  l->cfg.paused = paused;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

static double cursor(const rlim *l) {
  return (double)l->inserts * l->cfg.samples_per_insert - (double)l->samples;
}

static bool can_insert(const rlim *l, uint64_t n) {
  if (l->cfg.paused) return true;
  if (l->inserts + n <= l->cfg.min_size_to_sample) return true;
  double spi = l->cfg.samples_per_insert, c = cursor(l);
  if (c + (double)n * spi <= l->max_diff) return true;
  return (double)n * spi > l->max_diff - l->min_diff && c + spi <= l->max_diff;
}

static bool can_sample(const rlim *l, uint64_t n) {
  if (l->cfg.paused) return true;
  if (l->inserts < l->cfg.min_size_to_sample) return false;
  double c = cursor(l);
  if (c - (double)n >= l->min_diff) return true;
  return (double)n > l->max_diff - l->min_diff && c - 1.0 >= l->min_diff;
}

static struct timespec to_timespec(uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000ull);
  ts.tv_nsec = (long)(ns % 1000000000ull);
  return ts;
}

static void queue_push(rlim *l, int side, rlim_waiter *w) {
  w->next = NULL;
  if (l->tail[side]) l->tail[side]->next = w;
  else l->head[side] = w;
  l->tail[side] = w;
}

static void queue_remove(rlim *l, int side, rlim_waiter *w) {
  rlim_waiter *prev = NULL, *q = l->head[side];
  while (q != w) prev = q, q = q->next;
  IB_CHECK(q != NULL);
  if (prev) prev->next = w->next;
  else l->head[side] = w->next;
  if (l->tail[side] == w) l->tail[side] = prev;
}

/* Under l->mu: counts a call that passes and wakes the other side, which may fit now. */
static void count_pass(rlim *l, uint64_t n, bool is_insert) {
  if (is_insert)
    l->inserts += n;
  else
    l->samples += n;
  pthread_cond_broadcast(&l->cv);
}

/* The common wait loop; `is_insert` selects the predicate, the queue and the counters; a timeout
 * is counted unless `budget` says the deadline was the caller's own budget. */
static int await(rlim *l, uint64_t n, uint64_t deadline_ns, bool is_insert, bool budget) {
  IB_CHECK(l != NULL);
  if (n == 0) return IB_OK;
  const int side = is_insert ? 0 : 1;
  rlim_waiter me;
  pthread_mutex_lock(&l->mu);
  uint64_t t0 = 0;
  bool waited = false;
  int rc = IB_OK;
  for (;;) {
    if (l->shut_down) {
      rc = ib_fail(IB_EUNAVAIL,
                   "rate limiter: shut down while a %s of %llu waited (HINT: the server "
                   "is stopping)",
                   is_insert ? "insert" : "sample", (unsigned long long)n);
      break;
    }
    /* First in line: the head once queued, or nobody of this side waiting before. */
    bool first = waited ? l->head[side] == &me : l->head[side] == NULL;
    if (first && (is_insert ? can_insert(l, n) : can_sample(l, n))) break;
    uint64_t now = ib_now_ns();
    if (now >= deadline_ns) {
      if (!budget) {
        if (is_insert)
          l->insert_timeouts++;
        else
          l->sample_timeouts++;
      }
      rc = ib_fail(
          IB_ETIMEDOUT,
          "rate limiter: %s of %llu items timed out (inserts %llu, samples "
          "%llu, cursor %.1f, band [%.1f, %.1f]%s) (HINT: the other side is not keeping up; "
          "check the learner/actors, or widen error_buffer)",
          is_insert ? "insert" : "sample", (unsigned long long)n, (unsigned long long)l->inserts,
          (unsigned long long)l->samples, cursor(l), l->min_diff, l->max_diff,
          (!is_insert && l->inserts < l->cfg.min_size_to_sample) ? ", below min_size_to_sample"
                                                                 : "");
      break;
    }
    if (!waited) {
      waited = true;
      t0 = now;
      queue_push(l, side, &me);
      if (is_insert)
        l->waiting_inserts++;
      else
        l->waiting_samples++;
    }
    struct timespec ts = to_timespec(deadline_ns);
    int e = pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    IB_CHECK(e == 0 || e == ETIMEDOUT);
  }
  if (waited) {
    queue_remove(l, side, &me);
    /* the next in line may fit now (or may be waiting behind a call that timed out) */
    pthread_cond_broadcast(&l->cv);
    uint64_t dt = ib_now_ns() - t0;
    if (is_insert) {
      l->waiting_inserts--;
      l->insert_blocked_ns += dt;
    } else {
      l->waiting_samples--;
      l->sample_blocked_ns += dt;
    }
  }
  if (rc == IB_OK) count_pass(l, n, is_insert);
  pthread_mutex_unlock(&l->mu);
  return rc;
}

/* One look without waiting (rlim_try_insert / rlim_try_sample): only when no call of this side is
 * queued ahead, so a try never overtakes a waiter. */
static bool try_once(rlim *l, uint64_t n, bool is_insert) {
  IB_CHECK(l != NULL);
  if (n == 0) return true;
  pthread_mutex_lock(&l->mu);
  bool ok = !l->shut_down && l->head[is_insert ? 0 : 1] == NULL && (is_insert ? can_insert(l, n) : can_sample(l, n));
  if (ok) count_pass(l, n, is_insert);
  pthread_mutex_unlock(&l->mu);
  return ok;
}

bool rlim_try_insert(rlim *l, uint64_t n) { return try_once(l, n, true); }
bool rlim_try_sample(rlim *l, uint64_t n) { return try_once(l, n, false); }

int rlim_await_insert(rlim *l, uint64_t n, uint64_t deadline_ns) {
  return await(l, n, deadline_ns, true, false);
}
int rlim_await_insert_budget(rlim *l, uint64_t n, uint64_t deadline_ns) {
  return await(l, n, deadline_ns, true, true);
}
int rlim_await_sample(rlim *l, uint64_t n, uint64_t deadline_ns) {
  return await(l, n, deadline_ns, false, false);
}

void rlim_undo_insert(rlim *l, uint64_t n) {
  pthread_mutex_lock(&l->mu);
  IB_CHECK(n <= l->inserts);
  l->inserts -= n;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

void rlim_undo_sample(rlim *l, uint64_t n) {
  pthread_mutex_lock(&l->mu);
  IB_CHECK(n <= l->samples);
  l->samples -= n;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

void rlim_counts_set(rlim *l, uint64_t inserts, uint64_t samples) {
  pthread_mutex_lock(&l->mu);
  l->inserts = inserts;
  l->samples = samples;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

uint64_t rlim_counts_restore(rlim *l, uint64_t inserts, uint64_t samples) {
  pthread_mutex_lock(&l->mu);
  l->inserts = inserts;
  l->samples = samples;
  uint64_t added = 0;
  if (isfinite(l->max_diff) && cursor(l) > l->max_diff) {
    double mid = (l->min_diff + l->max_diff) / 2, want = ceil((double)inserts * l->cfg.samples_per_insert - mid);
    if (want > (double)samples) added = (uint64_t)want - samples;
    l->samples += added;
  }
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  return added;
}

void rlim_shutdown(rlim *l) {
  pthread_mutex_lock(&l->mu);
  l->shut_down = true;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

void rlim_info_get(rlim *l, rlim_info *out) {
  IB_CHECK(l != NULL && out != NULL);
  pthread_mutex_lock(&l->mu);
  out->cfg = l->cfg;
  out->min_diff = l->min_diff;
  out->max_diff = l->max_diff;
  out->cursor = cursor(l);
  out->inserts = l->inserts;
  out->samples = l->samples;
  out->waiting_inserts = l->waiting_inserts;
  out->waiting_samples = l->waiting_samples;
  out->insert_blocked_ns = l->insert_blocked_ns;
  out->sample_blocked_ns = l->sample_blocked_ns;
  out->insert_timeouts = l->insert_timeouts;
  out->sample_timeouts = l->sample_timeouts;
  out->shut_down = l->shut_down;
  pthread_mutex_unlock(&l->mu);
}
