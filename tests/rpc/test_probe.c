/* test_probe.c: a shard that stops answering is probed off the sampling path (finding 8 of
 * docs/results/replay-soak.md).
 *
 * A shard frozen with SIGSTOP keeps its connections open and never answers, like a shard whose
 * machine or network died. The client must pay for that once: the sample that finds it down waits
 * up to one deadline, and then every sample goes on from the live shard at once, until the
 * client's own probe (Info from its poller thread) finds the shard answering again. Before the
 * probe, rc_sample let the shard back in every second and waited a whole deadline for it inside
 * the caller's sample (red here: one slow call about every 2 s). Keepalive is off in these
 * clients, so the channel's pings cannot drop the frozen connection and hide the probing.
 *
 * With every shard frozen a sample must fail within one deadline, however many shards there are:
 * the shards whose sizes it must read are asked together (red here before: asked one after
 * another, N frozen shards cost N deadlines per sample, 1.5 s for 3 shards and a 0.5 s deadline).
 *
 * Every case freezes only shards it started, by PID, and thaws (SIGCONT) and stops them in its
 * teardown whatever its checks said. A guardian process thaws and kills them if this process dies
 * first (an abort, or ctest's timeout), so no stopped shard outlives the test. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "ib.h"
#include "replay_client.h"
#include "rpc_testutil.h"
#include "th.h"

#define OD 6 /* the dims of rt_shard_start's tables */
#define AD 4
#define ROWS 200        /* online rows per shard */
#define BATCH 64
#define DEADLINE_MS 1000
#define FROZEN_S 4.5    /* how long the cases sample around a frozen shard */
#define REJOIN_BOUND_S 8.0 /* a thawed shard must be back in the sample within this */
#define FX_MAX 3        /* shards of a fixture */
#define ALL_DOWN_DEADLINE_MS 500 /* the client deadline D of the every-shard-frozen case */
#define ALL_DOWN_SAMPLES 3       /* samples per shard count in that case */

/* ---- shards that may be frozen ---- */

typedef struct fixture {
  int n;              /* shards started (up to FX_MAX) */
  rt_server s[FX_MAX];
  int up[FX_MAX];     /* s[k] was started and not stopped yet */
  int frozen[FX_MAX]; /* s[k] got SIGSTOP and no SIGCONT yet */
  pid_t guard;   /* the guardian process, or 0 */
  int guard_fd;  /* the write end of its pipe */
  rc_client *c;
  rc_batch b;
} fixture;

/* Forks a process that waits on a pipe from this one: if the pipe closes without the "done" byte
 * (this process died), it thaws and kills the shards. The shards are this process's children, so
 * their PIDs stay theirs until they are reaped, and they are not reaped while they live. */
static void guard_start(fixture *f) {
  int fds[2];
  f->guard = 0;
  f->guard_fd = -1;
  if (pipe(fds) != 0) return;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return;
  }
  if (pid == 0) {
    close(fds[1]);
    char ch = 0;
    ssize_t k = read(fds[0], &ch, 1);
    if (k != 1 || ch != 'd') {
      for (int i = 0; i < f->n; i++) {
        if (!f->up[i]) continue;
        kill(f->s[i].pid, SIGCONT);
        kill(f->s[i].pid, SIGKILL);
      }
    }
    _exit(0);
  }
  close(fds[0]);
  f->guard = pid;
  f->guard_fd = fds[1];
}

static void guard_stop(fixture *f) {
  if (f->guard <= 0) return;
  IB_CHECK(write(f->guard_fd, "d", 1) == 1);
  close(f->guard_fd);
  waitpid(f->guard, NULL, 0);
  f->guard = 0;
}

/* Freezes shard k (rt_freeze) and notes it, so teardown thaws it even after a failed check. */
static int freeze(fixture *f, int k) {
  f->frozen[k] = 1; /* before the stop: a SIGSTOP that lands after a timeout must still be undone */
  return rt_freeze(f->s[k].pid);
}

static void thaw(fixture *f, int k) {
  if (!f->frozen[k]) return;
  TH_CHECK_MSG(kill(f->s[k].pid, SIGCONT) == 0, "SIGCONT to shard %d (pid %d)", k, (int)f->s[k].pid);
  f->frozen[k] = 0;
}

/* Online rows [0, ROWS) of `actor`, through the client (they go to shard actor % f->n). */
static void put_rows(fixture *f, uint32_t actor) {
  rc_batch w;
  rc_batch_init(&w, ROWS, OD, AD);
  for (int r = 0; r < ROWS; r++) {
    for (int j = 0; j < OD; j++) {
      w.obs[r * OD + j] = (float)(actor * 1000 + r) + 0.01f * (float)j;
      w.next_obs[r * OD + j] = w.obs[r * OD + j] + 0.5f;
    }
    for (int j = 0; j < AD; j++) w.action[r * AD + j] = 0.1f * (float)j;
    w.reward[r] = (float)actor;
    w.discount[r] = 0.99f;
    w.proposer[r] = RC_PROPOSER_RL;
  }
  w.n = ROWS;
  rc_writer *wr = NULL;
  TH_CHECK(rc_writer_open(&wr, f->c, "online", actor, 0, 0) == IB_OK);
  TH_CHECK_MSG(rc_writer_write(wr, &w) == IB_OK, "write actor %u: %s", actor, ib_errmsg());
  TH_CHECK_MSG(rc_writer_close(wr) == IB_OK, "flush actor %u: %s", actor, ib_errmsg());
  rc_batch_free(&w);
}

/* Starts `n` shards (shard `extra_at` with the extra flags `extra`, may be NULL) and the guard.
 * Returns 0, or -1 with what was started stopped again. */
static int fx_start(fixture *f, int n, int extra_at, const char *const *extra) {
  IB_CHECK(n >= 1 && n <= FX_MAX);
  memset(f, 0, sizeof *f);
  f->n = n;
  for (int k = 0; k < n; k++) {
    if (rt_shard_start(&f->s[k], k == extra_at ? extra : NULL) != 0) {
      for (int j = 0; j < k; j++) {
        rt_shard_stop_ok(&f->s[j]);
        f->up[j] = 0;
      }
      return -1;
    }
    f->up[k] = 1;
  }
  guard_start(f);
  return 0;
}

/* A client over shards [0, k) of f with `deadline_ms` and keepalive off (a dropped connection must
 * not be what ends a wait), or NULL after a failed check. */
static rc_client *fx_client(fixture *f, int k, long deadline_ms, uint64_t seed) {
  char shards[FX_MAX * 64];
  shards[0] = '\0';
  for (int j = 0; j < k; j++)
    snprintf(shards + strlen(shards), sizeof shards - strlen(shards), "%s%s", j ? "," : "", f->s[j].target);
  rc_opts o = {0};
  o.shards = shards;
  o.deadline_ms = (int)deadline_ms;
  o.seed = seed;
  o.keepalive_ms = -1;
  rc_client *c = NULL;
  int rc = rc_client_open(&c, &o);
  TH_CHECK_MSG(rc == IB_OK, "open %s: %s", shards, ib_errmsg());
  return rc == IB_OK ? c : NULL;
}

static void fx_close(fixture *f);

/* `n` shards with ROWS online rows each (actor k on shard k; shard 1 started with the extra
 * flags `extra1`, may be NULL), a client over them all with `deadline_ms` and keepalive off, and
 * a batch; then, unless shard 1 has extra flags, samples until every shard served rows.
 * Returns 0, or -1 with the fixture closed. */
static int fx_open(fixture *f, int n, long deadline_ms, uint64_t seed, const char *const *extra1) {
  if (fx_start(f, n, 1, extra1) != 0) return -1;
  f->c = fx_client(f, n, deadline_ms, seed);
  rc_batch_init(&f->b, BATCH, OD, AD);
  if (f->c == NULL) {
    fx_close(f);
    return -1;
  }
  for (int k = 0; k < n; k++) put_rows(f, (uint32_t)k);
  if (extra1 != NULL) return 0;
  int seen = 0;
  for (int it = 0; it < 20; it++) {
    TH_CHECK_MSG(rc_sample(f->c, &f->b, BATCH, -1) == IB_OK, "warm-up sample %d: %s", it, ib_errmsg());
    for (int r = 0; r < f->b.n; r++) seen |= 1 << (f->b.actor_id[r] % (uint32_t)n);
  }
  TH_CHECK_MSG(seen == (1 << n) - 1, "the warm-up samples must draw rows from every shard (seen mask %d)", seen);
  return 0;
}

/* Thaws what is frozen, closes the client, stops the shards (they must exit 0), reaps the guard. */
static void fx_close(fixture *f) {
  for (int k = 0; k < f->n; k++) thaw(f, k);
  rc_client_close(f->c);
  f->c = NULL;
  rc_batch_free(&f->b);
  for (int k = 0; k < f->n; k++) {
    if (!f->up[k]) continue;
    rt_shard_stop_ok(&f->s[k]);
    f->up[k] = 0;
  }
  guard_stop(f);
}

/* ---- sampling around a frozen shard ---- */

typedef int (*draw_fn)(void *ctx, rc_batch *b);

static int draw_sample(void *ctx, rc_batch *b) { return rc_sample(ctx, b, BATCH, -1); }
static int draw_sampler(void *ctx, rc_batch *b) { return rc_sampler_next(ctx, b); }

/* Freezes shard 1, draws for FROZEN_S, checks that at most one draw waited (more than half a
 * deadline) and that every batch from that one on skipped shard 1 and holds shard 0's rows only;
 * `prefetched` batches drawn before the freeze may come first (an rc_sampler's batch in flight).
 * Then thaws it and checks that a batch has shard 1 back within REJOIN_BOUND_S. */
static void frozen_then_thawed(fixture *f, draw_fn draw, void *ctx, int prefetched) {
  TH_CHECK_MSG(freeze(f, 1) == 0, "shard 1 must stop on SIGSTOP within 5 s");
  int calls = 0, slow = 0, first_slow = -1, bad_skip = 0, bad_rows = 0, errors = 0, before = 0;
  double worst = 0, t_end = ib_now_s() + FROZEN_S;
  while (ib_now_s() < t_end) {
    double t0 = ib_now_s();
    int rc = draw(ctx, &f->b);
    double dt = ib_now_s() - t0;
    if (dt > worst) worst = dt;
    if (rc != IB_OK) {
      if (errors++ == 0) fprintf(stderr, "  draw %d failed: %s\n", calls, ib_errmsg());
      calls++;
      continue;
    }
    if (dt > DEADLINE_MS / 2000.0) {
      slow++;
      if (first_slow < 0) first_slow = calls;
    }
    if (f->b.shards_skipped == 0 && first_slow < 0 && before < prefetched) {
      before++; /* drawn before the freeze: rows of both shards */
    } else {
      bad_skip += f->b.shards_skipped != 2;
      for (int r = 0; r < f->b.n; r++) bad_rows += f->b.actor_id[r] != 0;
    }
    calls++;
  }
  fprintf(stderr, "  shard 1 frozen %.1f s: %d draws, %d slower than %.1f s (first at draw %d), slowest %.3f s\n",
          FROZEN_S, calls, slow, DEADLINE_MS / 2000.0, first_slow, worst);
  TH_CHECK_MSG(errors == 0, "%d draws failed with shard 0 up", errors);
  TH_CHECK_MSG(slow <= 1, "%d draws waited for the frozen shard (at most the first may)", slow);
  TH_CHECK_MSG(first_slow <= before, "the draw that waited was draw %d, not the first after the freeze (%d)",
               first_slow, before);
  TH_CHECK_MSG(bad_skip == 0, "%d batches after the freeze do not say shard 1 was skipped", bad_skip);
  TH_CHECK_MSG(bad_rows == 0, "%d rows after the freeze claim to come from the frozen shard 1", bad_rows);
  TH_CHECK_MSG(calls > 1 + prefetched, "only %d draws in %.1f s", calls, FROZEN_S);
  TH_CHECK_EQ_INT(rc_client_shards_down(f->c), 2);

  thaw(f, 1);
  double t0 = ib_now_s(), back = -1;
  while (ib_now_s() - t0 < REJOIN_BOUND_S) {
    int rc = draw(ctx, &f->b);
    if (rc == IB_OK && f->b.shards_skipped == 0) {
      back = ib_now_s() - t0;
      break;
    }
    usleep(20 * 1000);
  }
  fprintf(stderr, "  shard 1 thawed: back in the sample after %.2f s\n", back);
  TH_CHECK_MSG(back >= 0, "shard 1 was not back in the sample %.0f s after it was thawed", REJOIN_BOUND_S);
  int from1 = 0;
  for (int r = 0; r < f->b.n; r++) from1 += f->b.actor_id[r] == 1;
  TH_CHECK_MSG(back < 0 || from1 > 0, "the batch with no shard skipped has no row of shard 1");
  TH_CHECK_EQ_INT(rc_client_shards_down(f->c), 0);
}

static void test_sample_skips_frozen_shard(void) {
  fixture f;
  if (fx_open(&f, 2, DEADLINE_MS, 21, NULL) != 0) return;
  frozen_then_thawed(&f, draw_sample, f.c, 0);
  fx_close(&f);
}

static void test_sampler_skips_frozen_shard(void) {
  fixture f;
  if (fx_open(&f, 2, DEADLINE_MS, 22, NULL) != 0) return;
  rc_sampler *sp = NULL;
  TH_CHECK_MSG(rc_sampler_open(&sp, f.c, BATCH, -1) == IB_OK, "%s", ib_errmsg());
  if (sp != NULL) {
    /* A few batches first, so one is in flight (prefetched) when the shard freezes. */
    for (int it = 0; it < 5; it++) TH_CHECK_MSG(rc_sampler_next(sp, &f.b) == IB_OK, "%s", ib_errmsg());
    frozen_then_thawed(&f, draw_sampler, sp, 1);
    rc_sampler_close(sp);
  }
  fx_close(&f);
}

/* Every shard frozen, for 1, 2 and 3 shards (a client over shards [0, k) each, deadline D =
 * ALL_DOWN_DEADLINE_MS): each sample still asks them (so it waits a deadline at least) and fails
 * with IB_ETIMEDOUT within 2 D, every time, never a hang: one deadline, not one per shard (asked
 * one after another, 3 shards took 3 D per sample); once they are thawed, sampling works again. */
static void test_all_frozen_fails_in_time(void) {
  fixture f;
  if (fx_open(&f, FX_MAX, ALL_DOWN_DEADLINE_MS, 23, NULL) != 0) return;
  rc_client *cs[FX_MAX] = {NULL}; /* cs[k - 1]: over shards [0, k) */
  cs[FX_MAX - 1] = f.c;
  for (int k = 1; k < FX_MAX; k++) {
    cs[k - 1] = fx_client(&f, k, ALL_DOWN_DEADLINE_MS, 23 + (uint64_t)k);
    if (cs[k - 1] != NULL) /* connected, sizes cached: as a learner's client is when its shards die */
      TH_CHECK_MSG(rc_sample(cs[k - 1], &f.b, BATCH, -1) == IB_OK, "warm-up over %d shard(s): %s", k, ib_errmsg());
  }
  int frozen = 0;
  for (int k = 0; k < FX_MAX; k++) frozen += freeze(&f, k) == 0;
  TH_CHECK_MSG(frozen == FX_MAX, "only %d of %d shards stopped on SIGSTOP within 5 s", frozen, FX_MAX);
  double d = ALL_DOWN_DEADLINE_MS / 1000.0, bound = 2 * d;
  for (int k = 1; k <= FX_MAX && frozen == FX_MAX; k++) {
    if (cs[k - 1] == NULL) continue;
    for (int it = 0; it < ALL_DOWN_SAMPLES; it++) {
      double t0 = ib_now_s();
      int rc = rc_sample(cs[k - 1], &f.b, BATCH, -1);
      double dt = ib_now_s() - t0;
      fprintf(stderr, "  %d shard(s), every one frozen, deadline %.1f s: sample %d rc %d after %.3f s%s%s\n", k, d,
              it, rc, dt, it == 0 ? ": " : "", it == 0 ? ib_errmsg() : "");
      /* Frozen shards accept nothing and refuse nothing: every call runs out of time, and the
       * error says so (IB_ETIMEDOUT), whether the Sample or the size reads before it found them. */
      TH_CHECK_MSG(rc == IB_ETIMEDOUT, "%d shards, sample %d: rc %d, not IB_ETIMEDOUT (%s)", k, it, rc, ib_errmsg());
      TH_CHECK_MSG(strstr(ib_errmsg(), "within the deadline") != NULL, "%d shards, sample %d: message %s", k, it,
                   ib_errmsg());
      TH_CHECK_EQ_INT(f.b.n, 0);
      TH_CHECK_MSG(dt < bound, "%d shards, sample %d took %.3f s with every shard frozen (bound %.1f s = 2 deadlines)",
                   k, it, dt, bound);
      TH_CHECK_MSG(dt > 0.9 * d, "%d shards, sample %d failed after %.3f s: it did not wait for any shard", k, it, dt);
    }
    TH_CHECK_EQ_INT(rc_client_shards_down(cs[k - 1]), (1 << k) - 1);
  }
  for (int k = 0; k < FX_MAX; k++) thaw(&f, k);
  for (int k = 1; k <= FX_MAX; k++) {
    if (cs[k - 1] == NULL) continue;
    double t0 = ib_now_s();
    int rc = -1;
    while (rc != IB_OK && ib_now_s() - t0 < REJOIN_BOUND_S) rc = rc_sample(cs[k - 1], &f.b, BATCH, -1);
    fprintf(stderr, "  %d shard(s) thawed: a sample worked after %.2f s\n", k, ib_now_s() - t0);
    TH_CHECK_MSG(rc == IB_OK, "%d shards: sampling did not work again within %.0f s of the thaw: %s", k,
                 REJOIN_BOUND_S, ib_errmsg());
  }
  for (int k = 1; k < FX_MAX; k++) rc_client_close(cs[k - 1]);
  fx_close(&f);
}

/* Two of three shards frozen while every cached size is stale (older than the client's 1 s size
 * cache): the sample reads the three shards' sizes in one round, so it waits one deadline for the
 * two frozen ones together (asked one after another: two deadlines), then draws every row from
 * the shard that answered and says which two it skipped. The next sample does not wait. */
static void test_stale_frozen_shards_cost_one_deadline(void) {
  fixture f;
  if (fx_open(&f, FX_MAX, DEADLINE_MS, 26, NULL) != 0) return;
  TH_CHECK_MSG(freeze(&f, 1) == 0 && freeze(&f, 2) == 0, "shards 1 and 2 must stop on SIGSTOP within 5 s");
  usleep(1200 * 1000); /* past the size cache's 1 s: every shard's sizes must be read again */
  double d = DEADLINE_MS / 1000.0;
  for (int it = 0; it < 2; it++) {
    double t0 = ib_now_s();
    int rc = rc_sample(f.c, &f.b, BATCH, -1);
    double dt = ib_now_s() - t0;
    fprintf(stderr, "  shards 1 and 2 frozen, sizes stale: sample %d rc %d after %.3f s, skipped mask %llu\n", it, rc,
            dt, (unsigned long long)f.b.shards_skipped);
    TH_CHECK_MSG(rc == IB_OK, "sample %d with shard 0 up: %s", it, ib_errmsg());
    TH_CHECK_EQ_INT(f.b.n, BATCH);
    TH_CHECK_EQ_INT((int)f.b.shards_skipped, 6);
    int bad_rows = 0;
    for (int r = 0; r < f.b.n; r++) bad_rows += f.b.actor_id[r] != 0;
    TH_CHECK_MSG(bad_rows == 0, "sample %d: %d rows claim to come from a frozen shard", it, bad_rows);
    if (it == 0) {
      TH_CHECK_MSG(dt < 1.5 * d, "the sample that found 2 frozen shards took %.3f s (bound 1.5 deadlines, %.1f s)",
                   dt, 1.5 * d);
      TH_CHECK_MSG(dt > 0.9 * d, "the first sample took %.3f s: it did not ask the frozen shards", dt);
    } else {
      TH_CHECK_MSG(dt < 0.5 * d, "sample %d waited %.3f s for shards already found down", it, dt);
    }
  }
  TH_CHECK_EQ_INT(rc_client_shards_down(f.c), 6);
  fx_close(&f);
}

/* A refusal and a frozen shard in the same round of size reads: shard 0 wants a token the client
 * does not send, shard 1 is frozen. The sample fails with shard 0's refusal (IB_EINVAL, its
 * message, not the frozen shard's later timeout) within about one deadline, and the frozen shard
 * is marked down all the same. */
static void test_refusal_with_frozen_shard(void) {
  static const char *const token[] = {"--token", "s3cret", NULL};
  fixture f;
  if (fx_start(&f, 2, 0, token) != 0) return;
  rc_batch_init(&f.b, BATCH, OD, AD);
  f.c = fx_client(&f, 2, ALL_DOWN_DEADLINE_MS, 27);
  if (f.c != NULL) {
    rc_shard_info *info = ib_xmalloc(sizeof *info);
    TH_CHECK_MSG(rc_info_get(f.c, 1, info) == IB_OK, "Info of shard 1: %s", ib_errmsg()); /* connected */
    free(info);
    TH_CHECK_MSG(freeze(&f, 1) == 0, "shard 1 must stop on SIGSTOP within 5 s");
    double d = ALL_DOWN_DEADLINE_MS / 1000.0, t0 = ib_now_s();
    int rc = rc_sample(f.c, &f.b, BATCH, -1);
    double dt = ib_now_s() - t0;
    fprintf(stderr, "  shard 0 refuses, shard 1 frozen: rc %d after %.3f s: %s\n", rc, dt, ib_errmsg());
    TH_CHECK_MSG(rc == IB_EINVAL, "rc %d, not IB_EINVAL: %s", rc, ib_errmsg());
    TH_CHECK_MSG(strstr(ib_errmsg(), "replay shard 0") != NULL && strstr(ib_errmsg(), "UNAUTHENTICATED") != NULL,
                 "the message does not carry shard 0's refusal: %s", ib_errmsg());
    TH_CHECK_EQ_INT(f.b.n, 0);
    TH_CHECK_MSG(dt < 2 * d, "the sample took %.3f s (bound 2 deadlines, %.1f s)", dt, 2 * d);
    TH_CHECK_EQ_INT(rc_client_shards_down(f.c), 2);
  }
  fx_close(&f);
}

/* Closing the client while its probe of a frozen shard is in flight does not wait for the probe's
 * deadline (here 2 s: the client's 3 s, bounded). */
static void test_close_with_probe_in_flight(void) {
  fixture f;
  if (fx_open(&f, 2, 3000, 24, NULL) != 0) return;
  TH_CHECK_MSG(freeze(&f, 1) == 0, "shard 1 must stop on SIGSTOP within 5 s");
  int rc = rc_sample(f.c, &f.b, BATCH, -1); /* finds shard 1 down (one deadline) */
  TH_CHECK_MSG(rc == IB_OK && f.b.shards_skipped == 2, "rc %d, skipped %llu: %s", rc,
               (unsigned long long)f.b.shards_skipped, ib_errmsg());
  double t0 = ib_now_s();
  while (rc__probes_in_flight(f.c) == 0 && ib_now_s() - t0 < 3.0) usleep(5000);
  TH_CHECK_MSG(rc__probes_in_flight(f.c) == 1, "no probe of the frozen shard started within 3 s of the failure");
  usleep(200 * 1000); /* well inside the probe's 2 s */
  TH_CHECK_MSG(rc__probes_in_flight(f.c) == 1, "the probe of the frozen shard ended early");
  t0 = ib_now_s();
  rc_client_close(f.c);
  f.c = NULL;
  double dt = ib_now_s() - t0;
  fprintf(stderr, "  close with a probe in flight: %.3f s\n", dt);
  TH_CHECK_MSG(dt < 0.5, "close took %.3f s with a probe of a frozen shard in flight", dt);
  fx_close(&f);
}

/* A shard that answers Info at once but whose rate limiter holds every Sample to the deadline
 * (online table under --min-size) is left out longer each time it fails again after its probe
 * brought it back (1 s, 2 s, 4 s): over 7 s at most 3 samples wait for it. Letting it back after
 * 1 s each time, as before the probe, gives 5. */
static void test_rate_limited_shard_backs_off(void) {
  static const char *const min_size[] = {"--min-size", "1000", NULL};
  fixture f;
  if (fx_open(&f, 2, 500, 25, min_size) != 0) return;
  int calls = 0, slow = 0, errors = 0, bad_rows = 0;
  double t_end = ib_now_s() + 7.0;
  while (ib_now_s() < t_end) {
    double t0 = ib_now_s();
    int rc = rc_sample(f.c, &f.b, BATCH, -1);
    double dt = ib_now_s() - t0;
    calls++;
    if (rc != IB_OK) {
      if (errors++ == 0) fprintf(stderr, "  sample %d failed: %s\n", calls, ib_errmsg());
      continue;
    }
    slow += dt > 0.25;
    for (int r = 0; r < f.b.n; r++) bad_rows += f.b.actor_id[r] != 0;
    usleep(2000);
  }
  fprintf(stderr, "  shard 1 held by its rate limiter for 7 s: %d samples, %d waited for it\n", calls, slow);
  TH_CHECK_MSG(errors == 0, "%d samples failed with shard 0 up", errors);
  TH_CHECK_MSG(bad_rows == 0, "%d rows came from the rate-limited shard 1", bad_rows);
  TH_CHECK_MSG(slow >= 1, "no sample waited for the rate-limited shard: it was never tried");
  TH_CHECK_MSG(slow <= 3, "%d samples in 7 s waited for the rate-limited shard (its backoff must grow)", slow);
  fx_close(&f);
}

static const th_case cases[] = {
    {"rc_sample: a frozen shard costs one deadline, then is skipped, and rejoins after the thaw",
     test_sample_skips_frozen_shard},
    {"rc_sampler: a frozen shard costs one deadline, then is skipped, and rejoins after the thaw",
     test_sampler_skips_frozen_shard},
    {"every shard frozen (1, 2, 3 shards): rc_sample fails within one deadline, not one per shard",
     test_all_frozen_fails_in_time},
    {"two stale frozen shards of three cost one deadline together", test_stale_frozen_shards_cost_one_deadline},
    {"a refusal and a frozen shard in one round of size reads: the refusal is reported",
     test_refusal_with_frozen_shard},
    {"close does not wait for a probe in flight", test_close_with_probe_in_flight},
    {"a shard held by its rate limiter is kept out longer each time", test_rate_limited_shard_backs_off},
    {NULL, NULL},
};

int main(int argc, char **argv) { return rt_main(argc, argv, cases); }
