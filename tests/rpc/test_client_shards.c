/* test_client_shards.c: two ibrl-replay shards on 127.0.0.1. Inserts route to actor_id % 2;
 * sampling draws from both shards in proportion to their table sizes, for the online share
 * and for the demo share separately; the observed fractions over many rows must match the
 * size ratios within a binomial tolerance (5 sigma). A shard that goes down is skipped (the rows
 * come from the live one, and the batch says which shard was skipped); with every shard down
 * the sample fails with IB_EUNAVAIL instead of hanging. */
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

static void fill(rc_batch *b, int n, int proposer) {
  b->n = n;
  for (int r = 0; r < n; r++) {
    for (int j = 0; j < OD; j++) b->obs[r * OD + j] = b->next_obs[r * OD + j] = (float)(r + j);
    for (int j = 0; j < AD; j++) b->action[r * AD + j] = 0.25f;
    b->reward[r] = 1;
    b->discount[r] = 0.9f;
    b->proposer[r] = (uint8_t)proposer;
  }
}

/* Writes `n` items for `actor` into `table`. */
static void put(rc_client *c, const char *table, uint32_t actor, int n, int proposer) {
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, table, actor, 0, 0) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 100, OD, AD);
  for (int k = 0; k < n; k += 100) {
    fill(&b, IB_MIN(100, n - k), proposer);
    TH_CHECK_MSG(rc_writer_write(w, &b) == IB_OK, "%s", ib_errmsg());
  }
  TH_CHECK_MSG(rc_writer_close(w) == IB_OK, "%s", ib_errmsg());
  rc_batch_free(&b);
}

static void test_proportional_two_shards(void) {
  static const char *const args[] = {"--obs-dim", "4", "--act-dim", "2", "--threads", "2", NULL};
  rt_server s0, s1;
  int code;
  if (rt_server_start(&s0, args, &code) != 0) {
    TH_CHECK_MSG(0, "shard 0 did not start (%d)", code);
    return;
  }
  if (rt_server_start(&s1, args, &code) != 0) {
    TH_CHECK_MSG(0, "shard 1 did not start (%d)", code);
    rt_server_stop(&s0, 9);
    return;
  }
  char shards[160];
  snprintf(shards, sizeof shards, "%s,%s", s0.target, s1.target);
  rc_opts o = {0};
  o.shards = shards;
  o.deadline_ms = 3000;
  o.seed = 7;
  rc_client *c = NULL;
  TH_CHECK(rc_client_open(&c, &o) == IB_OK);
  TH_CHECK_EQ_INT(rc_client_shard_count(c), 2);
  TH_CHECK_EQ_INT(rc_client_shard_of(c, 4), 0);
  TH_CHECK_EQ_INT(rc_client_shard_of(c, 7), 1);
  /* online: 300 on shard 0 (actor 0), 100 on shard 1 (actor 1);
   * demo: 50 on shard 0 (actor 2), 150 on shard 1 (actor 3). */
  put(c, "online", 0, 300, RC_PROPOSER_RL);
  put(c, "online", 1, 100, RC_PROPOSER_RL);
  put(c, "demo", 2, 50, RC_PROPOSER_DEMO);
  put(c, "demo", 3, 150, RC_PROPOSER_DEMO);
  rc_shard_info *info = malloc(sizeof *info);
  TH_CHECK(rc_info_get(c, 1, info) == IB_OK);
  /* Shard 1 saw actor 1 (and 3, in its demo table), never actor 0. */
  int saw0 = 0, saw1 = 0;
  for (int k = 0; k < info->n_actors; k++) {
    saw0 |= info->actors[k].actor_id == 0;
    saw1 |= info->actors[k].actor_id == 1;
  }
  TH_CHECK(saw1 && !saw0);
  uint64_t sizes[2] = {0, 0};
  for (int t = 0; t < info->n_tables; t++) sizes[info->tables[t].kind == 1] = info->tables[t].size;
  TH_CHECK_EQ_INT(sizes[0], 150);
  TH_CHECK_EQ_INT(sizes[1], 100);
  free(info);

  rc_batch b;
  rc_batch_init(&b, 256, OD, AD);
  /* demo_fraction 0.5: demo rows 50/200 from shard 0, online rows 300/400 from shard 0. */
  long demo_rows = 0, demo_s0 = 0, online_rows = 0, online_s0 = 0;
  for (int it = 0; it < 40; it++) {
    TH_CHECK_MSG(rc_sample(c, &b, 256, 0.5) == IB_OK, "%s", ib_errmsg());
    TH_CHECK_EQ_INT(b.n_demo, 128);
    for (int r = 0; r < b.n; r++) {
      uint32_t a = b.actor_id[r];
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
  double pd = (double)demo_s0 / demo_rows, po = (double)online_s0 / online_rows;
  double sd_d = sqrt(0.25 * 0.75 / demo_rows), sd_o = sqrt(0.75 * 0.25 / online_rows);
  TH_CHECK_NEAR(pd, 0.25, 5 * sd_d);
  TH_CHECK_NEAR(po, 0.75, 5 * sd_o);
  /* No fraction: rows follow the total sizes: 350/600 of rows from shard 0 and demo 200/600. */
  long rows = 0, s0rows = 0, drows = 0;
  for (int it = 0; it < 40; it++) {
    TH_CHECK(rc_sample(c, &b, 256, -1) == IB_OK);
    for (int r = 0; r < b.n; r++) {
      rows++;
      s0rows += b.actor_id[r] == 0 || b.actor_id[r] == 2;
      drows += b.from_demo[r];
    }
  }
  double p0 = 350.0 / 600, pdm = 200.0 / 600;
  TH_CHECK_NEAR((double)s0rows / rows, p0, 5 * sqrt(p0 * (1 - p0) / rows));
  TH_CHECK_NEAR((double)drows / rows, pdm, 5 * sqrt(pdm * (1 - pdm) / rows));
  TH_CHECK_EQ_INT((int)b.shards_skipped, 0);
  /* Shard 1 goes away: sampling goes on from shard 0 alone (its rows only, the demo share kept)
   * and says which shard it skipped; it must not wait for a deadline to find out. */
  TH_CHECK_EQ_INT(rt_server_stop(&s1, 9), 128 + 9);
  double t0 = ib_now_s();
  for (int it = 0; it < 3; it++) {
    int rc = rc_sample(c, &b, 256, 0.5);
    TH_CHECK_MSG(rc == IB_OK, "sample with shard 1 down: %s", ib_errmsg());
    TH_CHECK_EQ_INT(b.n, 256);
    TH_CHECK_EQ_INT(b.n_demo, 128);
    TH_CHECK_EQ_INT((int)b.shards_skipped, 2);
    int only_s0 = 1;
    for (int r = 0; r < b.n; r++) only_s0 &= b.actor_id[r] == 0 || b.actor_id[r] == 2;
    TH_CHECK_MSG(only_s0, "round %d: a row claims to come from the stopped shard 1", it);
  }
  TH_CHECK_MSG(ib_now_s() - t0 < 5, "sampling around a down shard took %.3f s", ib_now_s() - t0);
  /* Both down: a clear error naming a shard, no rows, no hang. */
  TH_CHECK_EQ_INT(rt_server_stop(&s0, 9), 128 + 9);
  t0 = ib_now_s();
  int rc = rc_sample(c, &b, 256, 0.5);
  TH_CHECK_MSG(rc == IB_EUNAVAIL, "rc %d (%s)", rc, ib_errmsg());
  TH_CHECK_MSG(strstr(ib_errmsg(), "no replay shard") != NULL && strstr(ib_errmsg(), "127.0.0.1:") != NULL,
               "message: %s", ib_errmsg());
  TH_CHECK_EQ_INT(b.n, 0);
  TH_CHECK(ib_now_s() - t0 < 5);
  rc_batch_free(&b);
  rc_client_close(c);
}

/* The client caches table sizes; a shard that was empty must still join once it fills. */
static void test_empty_shard_joins(void) {
  static const char *const args[] = {"--obs-dim", "4", "--act-dim", "2", "--threads", "2", NULL};
  rt_server s0, s1;
  int code;
  if (rt_server_start(&s0, args, &code) != 0 || rt_server_start(&s1, args, &code) != 0) {
    TH_CHECK_MSG(0, "shards did not start (%d)", code);
    return;
  }
  char shards[160];
  snprintf(shards, sizeof shards, "%s,%s", s0.target, s1.target);
  rc_opts o = {0};
  o.shards = shards;
  o.deadline_ms = 3000;
  o.seed = 11;
  rc_client *c = NULL;
  TH_CHECK(rc_client_open(&c, &o) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 256, OD, AD);
  /* Everything empty: a clear error, then data right away is seen at once. */
  TH_CHECK_EQ_INT(rc_sample(c, &b, 16, -1), IB_ESTATE);
  TH_CHECK(strstr(ib_errmsg(), "empty") != NULL);
  put(c, "online", 0, 100, RC_PROPOSER_RL);
  TH_CHECK_MSG(rc_sample(c, &b, 256, -1) == IB_OK, "%s", ib_errmsg());
  int from1 = 0;
  for (int r = 0; r < b.n; r++) from1 += b.actor_id[r] == 1;
  TH_CHECK_EQ_INT(from1, 0);
  /* Shard 1 fills; within the size cache's lifetime (1 s) it takes its share. */
  put(c, "online", 1, 100, RC_PROPOSER_RL);
  usleep(1200 * 1000);
  long rows = 0;
  from1 = 0;
  for (int it = 0; it < 10; it++) {
    TH_CHECK(rc_sample(c, &b, 256, -1) == IB_OK);
    for (int r = 0; r < b.n; r++) from1 += b.actor_id[r] == 1;
    rows += b.n;
  }
  TH_CHECK_NEAR((double)from1 / rows, 0.5, 5 * sqrt(0.25 / rows));
  rc_batch_free(&b);
  rc_client_close(c);
  rt_server_stop(&s0, 15);
  rt_server_stop(&s1, 15);
}

static const th_case cases[] = {
    {"proportional sampling over two shards, a down shard skipped", test_proportional_two_shards},
    {"an empty shard joins once it fills", test_empty_shard_joins},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
