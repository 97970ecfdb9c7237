/* test_client_sampler.c: the prefetching sampler (rc_sampler_*, replay_client.h) against
 * ibrl-replay shards on 127.0.0.1. Its batches must be what rc_sample gives: n rows, every row
 * intact, the exact demo share, rows drawn in proportion to the shards' sizes (5 sigma binomial
 * bounds); a shard killed while a prefetched request is out is skipped (bounded time, the batch
 * says which) and with every shard down the error is IB_EUNAVAIL; bad arguments and empty tables
 * give the same errors as rc_sample, after which the sampler starts afresh; closing with a
 * request in flight, even one the shard's rate limiter holds, returns at once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "replay_client.h"
#include "rpc_testutil.h"
#include "th.h"

#define OD 4
#define AD 2

/* Row r for actor a, item k: obs[j] = v + j, next_obs[j] = v + 100 + j, action = -v, reward = v,
 * with v = a * 1e4 + k (exact in float), so a sampled row can be checked on its own. */
static void fill(rc_batch *b, uint32_t actor, int k0, int n, int proposer) {
  b->n = n;
  for (int r = 0; r < n; r++) {
    float v = (float)(actor * 10000u + (uint32_t)(k0 + r));
    for (int j = 0; j < OD; j++) b->obs[r * OD + j] = v + (float)j, b->next_obs[r * OD + j] = v + 100 + (float)j;
    for (int j = 0; j < AD; j++) b->action[r * AD + j] = -v;
    b->reward[r] = v;
    b->discount[r] = 0.9f;
    b->proposer[r] = (uint8_t)proposer;
  }
}

static int row_intact(const rc_batch *b, int r) {
  float v = b->reward[r];
  for (int j = 0; j < OD; j++)
    if (b->obs[r * OD + j] != v + (float)j || b->next_obs[r * OD + j] != v + 100 + (float)j) return 0;
  for (int j = 0; j < AD; j++)
    if (b->action[r * AD + j] != -v) return 0;
  /* The actor id the shard stored must be the one the value was made from. */
  return (uint32_t)(v / 10000.0f) == b->actor_id[r];
}

static void put(rc_client *c, const char *table, uint32_t actor, int n, int proposer) {
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, table, actor, 0, 0) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 100, OD, AD);
  for (int k = 0; k < n; k += 100) {
    fill(&b, actor, k, IB_MIN(100, n - k), proposer);
    TH_CHECK_MSG(rc_writer_write(w, &b) == IB_OK, "%s", ib_errmsg());
  }
  TH_CHECK_MSG(rc_writer_close(w) == IB_OK, "%s", ib_errmsg());
  rc_batch_free(&b);
}

static rc_client *open_client(const char *shards, uint64_t seed) { return rt_rc_open(shards, NULL, seed); }

static const char *const shard_args[] = {"--obs-dim", "4", "--act-dim", "2", "--threads", "3", NULL};

static int start2(rt_server *s0, rt_server *s1, char *shards, size_t cap) {
  int code;
  if (rt_server_start(s0, shard_args, &code) != 0) {
    TH_CHECK_MSG(0, "shard 0 did not start (%d)", code);
    return -1;
  }
  if (rt_server_start(s1, shard_args, &code) != 0) {
    TH_CHECK_MSG(0, "shard 1 did not start (%d)", code);
    rt_server_stop(s0, 9);
    return -1;
  }
  snprintf(shards, cap, "%s,%s", s0->target, s1->target);
  return 0;
}

/* Batches from two shards: sizes, intact rows, exact demo share, proportions; then a shard
 * killed with a request in flight, then both. */
static void test_batches_and_failover(void) {
  rt_server s0, s1;
  char shards[160];
  if (start2(&s0, &s1, shards, sizeof shards) != 0) return;
  rc_client *c = open_client(shards, 7);
  /* online 300 on shard 0 (actor 0) and 100 on shard 1 (actor 1); demo 50 (actor 2) and 150 (actor 3). */
  put(c, "online", 0, 300, RC_PROPOSER_RL);
  put(c, "online", 1, 100, RC_PROPOSER_RL);
  put(c, "demo", 2, 50, RC_PROPOSER_DEMO);
  put(c, "demo", 3, 150, RC_PROPOSER_DEMO);
  rc_sampler *sp = NULL;
  TH_CHECK_MSG(rc_sampler_open(&sp, c, 200, 0.25) == IB_OK, "%s", ib_errmsg());
  rc_batch b;
  rc_batch_init(&b, 256, OD, AD);
  long demo_rows = 0, demo_s0 = 0, online_rows = 0, online_s0 = 0, broken = 0;
  for (int it = 0; it < 40; it++) {
    TH_CHECK_MSG(rc_sampler_next(sp, &b) == IB_OK, "batch %d: %s", it, ib_errmsg());
    TH_CHECK_EQ_INT(b.n, 200);
    TH_CHECK_EQ_INT(b.n_demo, 50);
    TH_CHECK_EQ_INT((int)b.shards_skipped, 0);
    for (int r = 0; r < b.n; r++) {
      uint32_t a = b.actor_id[r];
      broken += !row_intact(&b, r);
      if (b.from_demo[r]) {
        demo_rows++;
        demo_s0 += a == 2;
        TH_CHECK(a == 2 || a == 3);
      } else {
        online_rows++;
        online_s0 += a == 0;
        TH_CHECK(a == 0 || a == 1);
      }
    }
  }
  TH_CHECK_MSG(broken == 0, "%ld sampled rows do not match what was inserted", broken);
  TH_CHECK_EQ_INT(demo_rows, 40 * 50);
  /* Shard 0 holds 50 of 200 demo rows and 300 of 400 online rows. */
  TH_CHECK_NEAR((double)demo_s0 / demo_rows, 0.25, 5 * sqrt(0.25 * 0.75 / demo_rows));
  TH_CHECK_NEAR((double)online_s0 / online_rows, 0.75, 5 * sqrt(0.75 * 0.25 / online_rows));

  /* Shard 1 dies while the sampler has a request out to it (and maybe to shard 0). */
  TH_CHECK_EQ_INT(rt_server_stop(&s1, 9), 128 + 9);
  double t0 = ib_now_s();
  int skipped_seen = 0;
  for (int it = 0; it < 4; it++) {
    int rc = rc_sampler_next(sp, &b);
    TH_CHECK_MSG(rc == IB_OK, "batch %d with shard 1 down: %s", it, ib_errmsg());
    TH_CHECK_EQ_INT(b.n, 200);
    TH_CHECK_EQ_INT(b.n_demo, 50);
    skipped_seen |= (int)b.shards_skipped;
    /* The first may be the batch prefetched before the kill, with its rows from both shards. */
    if (it == 0 && b.shards_skipped == 0) continue;
    TH_CHECK_EQ_INT((int)b.shards_skipped, 2);
    int only_s0 = 1;
    for (int r = 0; r < b.n; r++) only_s0 &= (b.actor_id[r] == 0 || b.actor_id[r] == 2) && row_intact(&b, r);
    TH_CHECK_MSG(only_s0, "batch %d: a row claims to come from the killed shard 1, or is damaged", it);
  }
  TH_CHECK_EQ_INT(skipped_seen, 2);
  TH_CHECK_MSG(ib_now_s() - t0 < 5, "sampling around a killed shard took %.3f s", ib_now_s() - t0);
  /* Both down: the error of rc_sample, no rows, no hang; the sampler stays usable (error again). */
  TH_CHECK_EQ_INT(rt_server_stop(&s0, 9), 128 + 9);
  t0 = ib_now_s();
  int rc = rc_sampler_next(sp, &b);
  if (rc == IB_OK) rc = rc_sampler_next(sp, &b); /* at most one prefetched batch may have arrived before the kill */
  TH_CHECK_MSG(rc == IB_EUNAVAIL, "rc %d (%s)", rc, ib_errmsg());
  TH_CHECK_MSG(strstr(ib_errmsg(), "no replay shard") != NULL, "message: %s", ib_errmsg());
  TH_CHECK_EQ_INT(b.n, 0);
  TH_CHECK_EQ_INT(rc_sampler_next(sp, &b), IB_EUNAVAIL);
  TH_CHECK(ib_now_s() - t0 < 8);
  rc_sampler_close(sp);
  rc_batch_free(&b);
  rc_client_close(c);
}

/* Bad arguments and empty tables: rc_sample's errors; after them the sampler works. */
static void test_errors_then_recovery(void) {
  rt_server s;
  if (rt_server_start(&s, shard_args, &(int){0}) != 0) {
    TH_CHECK_MSG(0, "shard did not start");
    return;
  }
  rc_client *c = open_client(s.target, 3);
  rc_sampler *sp = NULL;
  TH_CHECK_EQ_INT(rc_sampler_open(&sp, c, 0, 0.5), IB_EINVAL);
  TH_CHECK(sp == NULL && strstr(ib_errmsg(), "sample size 0") != NULL);
  TH_CHECK_EQ_INT(rc_sampler_open(&sp, c, 16, 1.5), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "demo fraction") != NULL);
  TH_CHECK_EQ_INT(rc_sampler_open(&sp, c, 16, NAN), IB_EINVAL);
  TH_CHECK_MSG(rc_sampler_open(&sp, c, 64, -1) == IB_OK, "%s", ib_errmsg());
  rc_batch small, b;
  rc_batch_init(&small, 32, OD, AD);
  rc_batch_init(&b, 64, OD, AD);
  TH_CHECK_EQ_INT(rc_sampler_next(sp, &small), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "batch capacity") != NULL, "message: %s", ib_errmsg());
  TH_CHECK_EQ_INT(small.n, 0);
  /* Empty tables: IB_ESTATE naming them, every time, and no request is left behind. */
  TH_CHECK_EQ_INT(rc_sampler_next(sp, &b), IB_ESTATE);
  TH_CHECK(strstr(ib_errmsg(), "empty") != NULL);
  TH_CHECK_EQ_INT(rc_sampler_next(sp, &b), IB_ESTATE);
  /* Data arrives: the next batches are full and intact. */
  put(c, "online", 5, 100, RC_PROPOSER_RL);
  for (int it = 0; it < 5; it++) {
    TH_CHECK_MSG(rc_sampler_next(sp, &b) == IB_OK, "batch %d: %s", it, ib_errmsg());
    TH_CHECK_EQ_INT(b.n, 64);
    int ok = 1;
    for (int r = 0; r < b.n; r++) ok &= row_intact(&b, r) && b.actor_id[r] == 5 && b.seq[r] < 100;
    TH_CHECK_MSG(ok, "batch %d has a row that was not inserted", it);
  }
  rc_sampler_close(sp);
  rc_sampler_close(NULL);
  /* The shard is unharmed by the cancelled prefetch. */
  rc_shard_info *info = malloc(sizeof *info);
  TH_CHECK_MSG(rc_info_get(c, 0, info) == IB_OK, "%s", ib_errmsg());
  free(info);
  rc_batch_free(&small);
  rc_batch_free(&b);
  rc_client_close(c);
  rt_shard_stop_ok(&s);
}

/* A prefetched request the shard's rate limiter holds (samples ahead of inserts) must not hold
 * up close: the call is cancelled, not waited out. Band [-50, 50] (spi 1, error buffer 50,
 * min size 0): 50 inserts put the cursor at 50; the first batch of 64 takes it to -14, so the
 * batch prefetched after it (-78 < -50) waits in the limiter until its deadline. */
static void test_close_with_blocked_prefetch(void) {
  static const char *const args[] = {"--obs-dim", "4", "--act-dim", "2", "--threads", "3",
                                     "--samples-per-insert", "1", "--error-buffer", "50", "--max-block-ms", "8000",
                                     NULL};
  rt_server s;
  if (rt_server_start(&s, args, &(int){0}) != 0) {
    TH_CHECK_MSG(0, "shard did not start");
    return;
  }
  rc_client *c = open_client(s.target, 5);
  put(c, "online", 1, 50, RC_PROPOSER_RL);
  rc_sampler *sp = NULL;
  TH_CHECK(rc_sampler_open(&sp, c, 64, -1) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 64, OD, AD);
  TH_CHECK_MSG(rc_sampler_next(sp, &b) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(b.n, 64);
  /* The prefetched batch is held, not served: the shard still counts only the first 64 rows. */
  rc_shard_info *info = malloc(sizeof *info);
  usleep(200 * 1000);
  TH_CHECK(rc_info_get(c, 0, info) == IB_OK);
  TH_CHECK_MSG(info->limiter.samples == 64, "the limiter counted %llu sampled rows, expected 64 (the prefetch held)",
               (unsigned long long)info->limiter.samples);
  double t0 = ib_now_s();
  rc_sampler_close(sp);
  double dt = ib_now_s() - t0;
  TH_CHECK_MSG(dt < 1.0, "close took %.3f s with a blocked request in flight", dt);
  /* The client goes on working with the shard. */
  TH_CHECK(rc_info_get(c, 0, info) == IB_OK);
  free(info);
  rc_batch_free(&b);
  rc_client_close(c);
  rt_shard_stop_ok(&s);
}

static const th_case cases[] = {
    {"sampler batches over two shards, a killed shard skipped", test_batches_and_failover},
    {"sampler errors as rc_sample, then recovers", test_errors_then_recovery},
    {"sampler close cancels a prefetch held by the limiter", test_close_with_blocked_prefetch},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
