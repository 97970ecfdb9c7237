/* test_client_basic.c: the replay client library against one ibrl-replay child process on
 * 127.0.0.1: insert/flush/sample round trips with values that encode their identity, ack
 * counts and deduplication of a resend, demo fractions, Info/Health/RateLimit/Checkpoint, and
 * the failure paths (NaN items, wrong dims, bad shard lists, an unreachable shard, a missing
 * token). Every wait is bounded by the client's deadline. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "params_client.h"
#include "replay_client.h"
#include "rpc_server.h"
#include "rpc_testutil.h"
#include "th.h"

#define OD 5
#define AD 3

/* Row r of a test batch for actor a, item index k: obs[j] = v + j, next_obs[j] = v + 100 + j,
 * action[j] = (j - 1) * 0.5, reward = v, discount = 0.99, v = a * 1e4 + k. */
static void fill_rows(rc_batch *b, uint32_t actor, int k0, int n, int proposer) {
  b->n = n;
  for (int r = 0; r < n; r++) {
    float v = (float)(actor * 10000u + (uint32_t)(k0 + r));
    for (int j = 0; j < b->obs_dim; j++) {
      b->obs[(size_t)r * b->obs_dim + j] = v + (float)j;
      b->next_obs[(size_t)r * b->obs_dim + j] = v + 100 + (float)j;
    }
    for (int j = 0; j < b->act_dim; j++) b->action[(size_t)r * b->act_dim + j] = ((float)j - 1) * 0.5f;
    b->reward[r] = v;
    b->discount[r] = 0.99f;
    b->proposer[r] = (uint8_t)proposer;
    b->weight_version[r] = 7;
    b->episode_end[r] = (k0 + r) % 10 == 9;
    b->episode_success[r] = (k0 + r) % 20 == 19;
  }
}

/* 1 if row r of a sampled batch is intact (obs/next_obs/action agree with its reward). */
static int row_intact(const rc_batch *b, int r) {
  float v = b->reward[r];
  for (int j = 0; j < b->obs_dim; j++) {
    if (b->obs[(size_t)r * b->obs_dim + j] != v + (float)j) return 0;
    if (b->next_obs[(size_t)r * b->obs_dim + j] != v + 100 + (float)j) return 0;
  }
  for (int j = 0; j < b->act_dim; j++)
    if (b->action[(size_t)r * b->act_dim + j] != ((float)j - 1) * 0.5f) return 0;
  return 1;
}

static rt_server srv;
static int srv_up;

static rc_client *open_client(const char *shards, const char *token) { return rt_rc_open(shards, token, 42); }

static int start_default(void) {
  static const char *const args[] = {"--obs-dim", "5", "--act-dim", "3", "--threads", "3", NULL};
  return rt_server_once(&srv, &srv_up, args);
}

static void test_insert_sample_roundtrip(void) {
  if (!start_default()) return;
  rc_client *c = open_client(srv.target, NULL);
  if (!c) return;
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, "online", 3, 0, 0) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 100, OD, AD);
  for (int k = 0; k < 3; k++) {
    fill_rows(&b, 3, k * 100, 100, RC_PROPOSER_RL);
    TH_CHECK_MSG(rc_writer_write(w, &b) == IB_OK, "%s", ib_errmsg());
  }
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.pending, 300);
  TH_CHECK_EQ_INT(st.acked, 0); /* nothing counts before the server's reply */
  TH_CHECK_MSG(rc_writer_flush(w, -1) == IB_OK, "%s", ib_errmsg());
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.acked, 300);
  TH_CHECK_EQ_INT(st.inserted, 300);
  TH_CHECK_EQ_INT(st.duplicates, 0);
  TH_CHECK_EQ_INT(st.pending, 0);
  TH_CHECK_EQ_INT(st.next_seq, 300);
  /* More than max_pending rows in total: the writer flushes on its own. */
  rc_writer *w2 = NULL;
  TH_CHECK(rc_writer_open(&w2, c, NULL, 4, 0, 150) == IB_OK);
  fill_rows(&b, 4, 0, 100, RC_PROPOSER_IL);
  TH_CHECK(rc_writer_write(w2, &b) == IB_OK);
  fill_rows(&b, 4, 100, 100, RC_PROPOSER_IL);
  TH_CHECK(rc_writer_write(w2, &b) == IB_OK);
  rc_writer_stats_get(w2, &st);
  TH_CHECK_EQ_INT(st.acked, 100);
  TH_CHECK_EQ_INT(st.pending, 100);
  TH_CHECK(rc_writer_close(w2) == IB_OK);

  rc_shard_info *info = malloc(sizeof *info);
  TH_CHECK(rc_info_get(c, 0, info) == IB_OK);
  TH_CHECK_EQ_INT(info->obs_dim, OD);
  TH_CHECK_EQ_INT(info->act_dim, AD);
  uint64_t online = 0;
  for (int t = 0; t < info->n_tables; t++)
    if (info->tables[t].kind == 1) online = info->tables[t].size;
  TH_CHECK_EQ_INT(online, 500);
  /* The shard's own meters and sizes: 500 items just stored (a 10 s window, so > 0 now), and at
   * least the record arena (obs, next_obs, action, reward, discount floats) preallocated. */
  for (int t = 0; t < info->n_tables; t++) {
    const rc_table_info *ti = &info->tables[t];
    if (ti->kind == 1) TH_CHECK_MSG(ti->inserts_per_s > 0, "online inserts/s %g", ti->inserts_per_s);
    TH_CHECK_MSG(ti->bytes >= ti->capacity * (uint64_t)(2 * OD + AD + 2) * 4, "table %s: %llu bytes for capacity %llu",
                 ti->name, (unsigned long long)ti->bytes, (unsigned long long)ti->capacity);
  }
  int found3 = 0;
  for (int a = 0; a < info->n_actors; a++)
    if (info->actors[a].actor_id == 3) {
      found3 = 1;
      TH_CHECK_EQ_INT(info->actors[a].last_seq, 299);
      TH_CHECK_EQ_INT(info->actors[a].weight_version, 7);
    }
  TH_CHECK(found3);

  rc_batch s;
  rc_batch_init(&s, 256, OD, AD);
  TH_CHECK_MSG(rc_sample(c, &s, 256, -1) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(s.n, 256);
  TH_CHECK_EQ_INT(s.n_demo, 0);
  int intact = 0, ids_ok = 1;
  for (int r = 0; r < s.n; r++) {
    intact += row_intact(&s, r);
    uint32_t a = s.actor_id[r];
    uint64_t k = (uint64_t)s.reward[r] - (uint64_t)a * 10000u;
    ids_ok &= (a == 3 || a == 4) && k < (a == 3 ? 300u : 200u) && s.weight_version[r] == 7 && !s.from_demo[r];
    /* Both writers started at seq 0, so the stamped seq is k; the episode flags come back as sent
     * (an exporter rebuilds episodes from them). */
    ids_ok &= s.seq[r] == k && s.episode_end[r] == (k % 10 == 9) && s.episode_success[r] == (k % 20 == 19);
    ids_ok &= s.proposer[r] == (a == 3 ? RC_PROPOSER_RL : RC_PROPOSER_IL);
    if (!ids_ok) {
      printf("    row %d: actor %u seq %llu k %llu wv %llu demo %d proposer %d end %d\n", r, a,
             (unsigned long long)s.seq[r], (unsigned long long)k, (unsigned long long)s.weight_version[r],
             s.from_demo[r], s.proposer[r], s.episode_end[r]);
      break;
    }
  }
  TH_CHECK_EQ_INT(intact, 256);
  TH_CHECK(ids_ok);

  /* A resend with the same seqs is acknowledged but stored as duplicates. */
  rc_writer *w3 = NULL;
  TH_CHECK(rc_writer_open(&w3, c, "online", 3, 100, 0) == IB_OK);
  fill_rows(&b, 3, 100, 100, RC_PROPOSER_RL);
  TH_CHECK(rc_writer_write(w3, &b) == IB_OK);
  TH_CHECK(rc_writer_flush(w3, -1) == IB_OK);
  rc_writer_stats_get(w3, &st);
  TH_CHECK_EQ_INT(st.acked, 100);
  TH_CHECK_EQ_INT(st.inserted, 0);
  TH_CHECK_EQ_INT(st.duplicates, 100);
  TH_CHECK(rc_writer_close(w3) == IB_OK);
  TH_CHECK(rc_info_get(c, 0, info) == IB_OK);
  for (int t = 0; t < info->n_tables; t++)
    if (info->tables[t].kind == 1) TH_CHECK_EQ_INT(info->tables[t].size, 500);

  TH_CHECK(rc_writer_close(w) == IB_OK);
  free(info);
  rc_batch_free(&b);
  rc_batch_free(&s);
  rc_client_close(c);
}

static void test_demo_fraction(void) {
  if (!start_default()) return;
  rc_client *c = open_client(srv.target, NULL);
  if (!c) return;
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, "demo", 9, 0, 0) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 50, OD, AD);
  fill_rows(&b, 9, 0, 50, RC_PROPOSER_DEMO);
  TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  TH_CHECK(rc_writer_close(w) == IB_OK);
  rc_batch s;
  rc_batch_init(&s, 200, OD, AD);
  TH_CHECK_MSG(rc_sample(c, &s, 200, 0.25) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(s.n_demo, 50);
  int demo_rows = 0, ok = 1;
  for (int r = 0; r < s.n; r++) {
    demo_rows += s.from_demo[r];
    ok &= s.from_demo[r] == (s.actor_id[r] == 9);
    ok &= s.from_demo[r] ? s.proposer[r] == RC_PROPOSER_DEMO : s.proposer[r] != RC_PROPOSER_DEMO;
    ok &= row_intact(&s, r);
  }
  TH_CHECK_EQ_INT(demo_rows, 50);
  TH_CHECK(ok);
  /* The demo rows come first. */
  for (int r = 0; r < 50; r++) TH_CHECK(s.from_demo[r]);
  TH_CHECK(rc_sample(c, &s, 10, 1.0) == IB_OK);
  TH_CHECK_EQ_INT(s.n_demo, 10);
  /* Bad arguments. */
  TH_CHECK_EQ_INT(rc_sample(c, &s, 0, 0.5), IB_EINVAL);
  TH_CHECK_EQ_INT(rc_sample(c, &s, 201, 0.5), IB_EINVAL);
  TH_CHECK_EQ_INT(rc_sample(c, &s, 10, 1.5), IB_EINVAL);
  TH_CHECK_EQ_INT(rc_sample(c, &s, 10, NAN), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "demo fraction") != NULL);
  rc_batch wrong;
  rc_batch_init(&wrong, 10, OD + 1, AD);
  int rc = rc_sample(c, &wrong, 10, 0.5);
  TH_CHECK_EQ_INT(rc, IB_EMISMATCH);
  TH_CHECK_MSG(strstr(ib_errmsg(), "obs-dim") != NULL, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(wrong.n, 0);
  rc_batch_free(&wrong);
  rc_batch_free(&b);
  rc_batch_free(&s);
  rc_client_close(c);
}

static void test_bad_items_not_retried(void) {
  if (!start_default()) return;
  rc_client *c = open_client(srv.target, NULL);
  if (!c) return;
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, "online", 11, 0, 0) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 10, OD, AD);
  fill_rows(&b, 11, 0, 10, RC_PROPOSER_RL);
  /* Bad rows are refused by the writer itself, alone, before anything is buffered. */
  b.obs[3 * OD + 2] = NAN;
  TH_CHECK_EQ_INT(rc_writer_write(w, &b), IB_ENONFINITE);
  TH_CHECK_MSG(strstr(ib_errmsg(), "row 3") != NULL && strstr(ib_errmsg(), "obs[2]") != NULL, "%s", ib_errmsg());
  fill_rows(&b, 11, 0, 10, RC_PROPOSER_RL);
  b.reward[9] = INFINITY;
  TH_CHECK_EQ_INT(rc_writer_write(w, &b), IB_ENONFINITE);
  fill_rows(&b, 11, 0, 10, RC_PROPOSER_RL);
  b.discount[0] = 1.5f;
  TH_CHECK_EQ_INT(rc_writer_write(w, &b), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "discount") != NULL);
  fill_rows(&b, 11, 0, 10, RC_PROPOSER_RL);
  b.proposer[4] = 7;
  TH_CHECK_EQ_INT(rc_writer_write(w, &b), IB_EINVAL);
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.pending, 0);
  TH_CHECK_EQ_INT(st.next_seq, 0);
  fill_rows(&b, 11, 0, 10, RC_PROPOSER_RL);
  TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  TH_CHECK(rc_writer_flush(w, -1) == IB_OK);
  /* A refusal by the shard that a resend cannot fix (an unknown table) is not retried. */
  rc_writer *w2 = NULL;
  TH_CHECK(rc_writer_open(&w2, c, "nosuch", 12, 0, 0) == IB_OK);
  fill_rows(&b, 12, 0, 10, RC_PROPOSER_RL);
  TH_CHECK(rc_writer_write(w2, &b) == IB_OK);
  double t0 = ib_now_s();
  int rc = rc_writer_flush(w2, 2000);
  TH_CHECK_MSG(rc == IB_EINVAL || rc == IB_ENOTFOUND, "rc %d: %s", rc, ib_errmsg());
  TH_CHECK_MSG(strstr(ib_errmsg(), "nosuch") != NULL, "%s", ib_errmsg());
  TH_CHECK_MSG(strstr(ib_errmsg(), "dropped") != NULL, "%s", ib_errmsg());
  TH_CHECK(ib_now_s() - t0 < 1.5); /* not retried until the timeout */
  rc_writer_stats_get(w2, &st);
  TH_CHECK_EQ_INT(st.pending, 0);
  TH_CHECK_EQ_INT(st.retries, 0);
  rc_writer_close(w2);
  /* Writer argument checks. */
  rc_writer *w3 = NULL;
  TH_CHECK_EQ_INT(rc_writer_open(&w3, c, "online", 1, 0, 8193), IB_EINVAL); /* above the dedup window */
  TH_CHECK_EQ_INT(rc_writer_open(&w3, c, "", 1, 0, 0), IB_EINVAL);
  TH_CHECK(w3 == NULL);
  TH_CHECK(rc_writer_open(&w3, c, "online", 1, 0, 5) == IB_OK);
  TH_CHECK_EQ_INT(rc_writer_write(w3, &b), IB_EINVAL); /* 10 rows > max_pending 5 */
  rc_writer_close(w3);
  rc_writer_close(w);
  rc_batch_free(&b);
  rc_client_close(c);
}

static void test_control_calls(void) {
  if (!start_default()) return;
  rc_client *c = open_client(srv.target, NULL);
  if (!c) return;
  int serving = -1;
  TH_CHECK(rc_health(c, 0, "", &serving) == IB_OK);
  TH_CHECK_EQ_INT(serving, 1);
  TH_CHECK_EQ_INT(rc_health(c, 0, "no-such-service", &serving), IB_ENOTFOUND);
  rc_limiter_info l;
  TH_CHECK(rc_ratelimit(c, 0, RC_LIMIT_PAUSE, NULL, &l) == IB_OK);
  TH_CHECK(l.paused);
  TH_CHECK(rc_ratelimit(c, 0, RC_LIMIT_GET, NULL, &l) == IB_OK);
  TH_CHECK(l.paused);
  TH_CHECK(rc_ratelimit(c, 0, RC_LIMIT_RESUME, NULL, &l) == IB_OK);
  TH_CHECK(!l.paused);
  rc_limiter_info set = {0};
  set.samples_per_insert = 4;
  set.error_buffer = 1000;
  set.min_size = 0;
  TH_CHECK_MSG(rc_ratelimit(c, 0, RC_LIMIT_SET, &set, &l) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_NEAR(l.samples_per_insert, 4, 1e-9);
  /* A negative ratio is refused by the shard, named, and changes nothing. */
  set.samples_per_insert = -1;
  set.error_buffer = 1000;
  TH_CHECK_EQ_INT(rc_ratelimit(c, 0, RC_LIMIT_SET, &set, &l), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "RateLimit") != NULL, "%s", ib_errmsg());
  TH_CHECK(rc_ratelimit(c, 0, RC_LIMIT_GET, NULL, &l) == IB_OK);
  TH_CHECK_NEAR(l.samples_per_insert, 4, 1e-9);
  /* A ratio of 0 lifts it again, as --samples-per-insert 0 does at start: reported as 0 with an
   * infinite band (the shard refused 0 before, so a ratio could not be lifted without a restart). */
  set.samples_per_insert = 0;
  set.error_buffer = 0;
  TH_CHECK_MSG(rc_ratelimit(c, 0, RC_LIMIT_SET, &set, &l) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_NEAR(l.samples_per_insert, 0, 0);
  TH_CHECK(isinf(l.error_buffer));
  TH_CHECK(rc_ratelimit(c, 0, RC_LIMIT_GET, NULL, &l) == IB_OK);
  TH_CHECK_NEAR(l.samples_per_insert, 0, 0);
  /* Back to a band too wide to block the other cases. */
  set.samples_per_insert = 1;
  set.error_buffer = 1e15;
  TH_CHECK(rc_ratelimit(c, 0, RC_LIMIT_SET, &set, &l) == IB_OK);
  /* No checkpoint directory: a server error, named. */
  rc_checkpoint_info ci;
  TH_CHECK_EQ_INT(rc_checkpoint(c, 0, &ci), IB_ESTATE);
  TH_CHECK(strstr(ib_errmsg(), "Checkpoint") != NULL);
  rc_shard_info *info = malloc(sizeof *info);
  TH_CHECK_EQ_INT(rc_info_get(c, 1, info), IB_EINVAL);
  free(info);
  rc_client_close(c);
}

static void test_bad_shard_lists(void) {
  const char *bad[] = {"", "localhost", "host:", "host:99999", ":80", "a:1,b", "h:12x"};
  for (size_t i = 0; i < IB_ARRAY_LEN(bad); i++) {
    rc_opts o = {0};
    o.shards = bad[i];
    rc_client *c = (rc_client *)1;
    int rc = rc_client_open(&c, &o);
    TH_CHECK_MSG(rc == IB_EINVAL, "'%s' gave %d", bad[i], rc);
    TH_CHECK(c == NULL);
    TH_CHECK(strstr(ib_errmsg(), "HINT") != NULL);
  }
  rc_opts o = {0};
  o.shards = "127.0.0.1:1";
  o.tls_roots = "/nonexistent/roots.pem";
  rc_client *c = NULL;
  TH_CHECK_EQ_INT(rc_client_open(&c, &o), IB_EIO);
  TH_CHECK(strstr(ib_errmsg(), "/nonexistent/roots.pem") != NULL);
}

static void test_unreachable_is_bounded(void) {
  /* Port 1 on loopback refuses connections: calls fail fast, writers give up at their timeout. */
  rc_client *c = open_client("127.0.0.1:1", NULL);
  if (!c) return;
  double t0 = ib_now_s();
  rc_shard_info *info = malloc(sizeof *info);
  int rc = rc_info_get(c, 0, info);
  free(info);
  TH_CHECK_MSG(rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT, "rc %d", rc);
  TH_CHECK(strstr(ib_errmsg(), "127.0.0.1:1") != NULL);
  rc_batch s;
  rc_batch_init(&s, 4, OD, AD);
  rc = rc_sample(c, &s, 4, 0.5);
  TH_CHECK(rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT);
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, "online", 0, 0, 0) == IB_OK);
  fill_rows(&s, 0, 0, 4, RC_PROPOSER_RL);
  TH_CHECK(rc_writer_write(w, &s) == IB_OK); /* buffered: the error shows at flush */
  rc = rc_writer_flush(w, 800);
  TH_CHECK_MSG(rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT, "rc %d", rc);
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.pending, 4); /* still held for a later retry */
  TH_CHECK(st.retries > 0);
  pc_blob blob = {0};
  rc = pc_get_if_newer(c, 0, 0, 200, &blob, NULL);
  TH_CHECK(rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT);
  TH_CHECK(ib_now_s() - t0 < 10);
  rc = rc_writer_close(w);
  TH_CHECK(rc != IB_OK);
  pc_blob_free(&blob);
  rc_batch_free(&s);
  rc_client_close(c);
}

/* A Sample that the shard's rate limiter holds to the deadline (online table below --min-size)
 * is IB_ETIMEDOUT naming the rate limit, not IB_EUNAVAIL "no shard reachable" (what it was: the
 * timed-out shard was skipped as down, then none was left). */
static void test_rate_limited_sample(void) {
  static const char *const args[] = {"--obs-dim", "5", "--act-dim", "3", "--min-size", "1000", NULL};
  rt_server ls;
  int code;
  if (rt_server_start(&ls, args, &code) != 0) {
    TH_CHECK_MSG(0, "ibrl-replay --min-size 1000 did not start (exit %d)", code);
    return;
  }
  rc_opts o = {0};
  o.shards = ls.target;
  o.deadline_ms = 400;
  o.seed = 5;
  rc_client *c = NULL;
  TH_CHECK_MSG(rc_client_open(&c, &o) == IB_OK, "%s", ib_errmsg());
  rc_batch b;
  rc_batch_init(&b, 16, OD, AD);
  if (c != NULL) {
    rc_writer *w = NULL;
    TH_CHECK(rc_writer_open(&w, c, "online", 3, 0, 0) == IB_OK);
    fill_rows(&b, 3, 0, 16, RC_PROPOSER_RL);
    TH_CHECK(rc_writer_write(w, &b) == IB_OK);
    TH_CHECK_MSG(rc_writer_close(w) == IB_OK, "%s", ib_errmsg());
    double t0 = ib_now_s();
    int rc = rc_sample(c, &b, 8, -1);
    TH_CHECK_MSG(rc == IB_ETIMEDOUT, "rc %d: %s", rc, ib_errmsg());
    TH_CHECK_MSG(strstr(ib_errmsg(), "rate limited") != NULL, "%s", ib_errmsg());
    TH_CHECK(ib_now_s() - t0 < 5);
    TH_CHECK_EQ_INT(b.n, 0);
    rc_client_close(c);
  }
  rc_batch_free(&b);
  TH_CHECK_EQ_INT(rt_server_stop(&ls, SIGTERM), 0);
}

static void test_token(void) {
  static const char *const args[] = {"--obs-dim", "5", "--act-dim", "3", "--token", "s3cret", NULL};
  rt_server ts;
  int code;
  if (rt_server_start(&ts, args, &code) != 0) {
    TH_CHECK_MSG(0, "ibrl-replay --token did not start (exit %d)", code);
    return;
  }
  rc_client *c = open_client(ts.target, NULL);
  rc_shard_info *info = malloc(sizeof *info);
  int rc = rc_info_get(c, 0, info);
  TH_CHECK_EQ_INT(rc, IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "UNAUTHENTICATED") != NULL, "%s", ib_errmsg());
  rc_client_close(c);
  c = open_client(ts.target, "wrong");
  TH_CHECK_EQ_INT(rc_info_get(c, 0, info), IB_EINVAL);
  rc_client_close(c);
  c = open_client(ts.target, "s3cret");
  TH_CHECK_MSG(rc_info_get(c, 0, info) == IB_OK, "%s", ib_errmsg());
  rc_writer *w = NULL;
  rc_batch b;
  rc_batch_init(&b, 8, OD, AD);
  fill_rows(&b, 1, 0, 8, RC_PROPOSER_RL);
  TH_CHECK(rc_writer_open(&w, c, "online", 1, 0, 0) == IB_OK);
  TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  TH_CHECK_MSG(rc_writer_close(w) == IB_OK, "%s", ib_errmsg());
  rc_batch_free(&b);
  rc_client_close(c);
  free(info);
  rt_server_stop(&ts, 15);
}

static void test_tls(void) {
  char dir[256], cmd[1024], cert[300], key[300];
  rt_tmpdir(dir, sizeof dir, "client_tls");
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -subj /CN=localhost "
           "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -days 2 >/dev/null 2>&1", key, cert);
  if (system(cmd) != 0) {
    rt_rmdir(dir);
    th_skip("openssl cannot make a test certificate");
    return;
  }
  const char *args[] = {"--obs-dim", "5", "--act-dim", "3", "--tls-cert", cert, "--tls-key", key, NULL};
  rt_server ts;
  int code;
  if (rt_server_start(&ts, args, &code) != 0) {
    TH_CHECK_MSG(0, "ibrl-replay with TLS did not start (exit %d)", code);
    rt_rmdir(dir);
    return;
  }
  rc_opts o = {0};
  o.shards = ts.target;
  o.tls_roots = cert;
  o.deadline_ms = 3000;
  rc_client *c = NULL;
  TH_CHECK(rc_client_open(&c, &o) == IB_OK);
  int serving = 0;
  TH_CHECK_MSG(rc_health(c, 0, "", &serving) == IB_OK && serving, "%s", ib_errmsg());
  rc_batch b;
  rc_batch_init(&b, 16, OD, AD);
  fill_rows(&b, 2, 0, 16, RC_PROPOSER_RL);
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, "online", 2, 0, 0) == IB_OK);
  TH_CHECK(rc_writer_write(w, &b) == IB_OK);
  TH_CHECK_MSG(rc_writer_close(w) == IB_OK, "%s", ib_errmsg());
  TH_CHECK(rc_sample(c, &b, 16, -1) == IB_OK);
  TH_CHECK(row_intact(&b, 5));
  rc_client_close(c);
  /* Plaintext against a TLS shard: unavailable, with the TLS hint. */
  o.tls_roots = NULL;
  o.deadline_ms = 1500;
  TH_CHECK(rc_client_open(&c, &o) == IB_OK);
  int rc = rc_health(c, 0, "", &serving);
  TH_CHECK(rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT);
  TH_CHECK_MSG(strstr(ib_errmsg(), "TLS roots") != NULL, "%s", ib_errmsg());
  /* The client library serves ibrl-actor and ibrl-learner (--replay) as well as ibrl-replayctl
   * (--shards): its HINT names no flag of one of them. */
  TH_CHECK_MSG(strstr(ib_errmsg(), "--shards") == NULL && strstr(ib_errmsg(), "IBRL_REPLAY_SHARDS") == NULL, "%s",
               ib_errmsg());
  rc_client_close(c);
  rc_batch_free(&b);
  rt_server_stop(&ts, 15);
  rt_rmdir(dir);
}

static void test_zz_stop_server(void) {
  if (srv_up) TH_CHECK_EQ_INT(rt_server_stop(&srv, 15), 0);
  srv_up = 0;
}

/* NOT_SERVING (what a shard reports while it restores a checkpoint, or stops) reaches the
 * client as "not serving", and changes back: an in-process server whose statuses the test sets. */
static void test_health_not_serving(void) {
  rpc_server_opts so = {"127.0.0.1", 0, 1, 1L << 20, NULL, NULL, NULL, 0};
  rpc_server *s = NULL;
  IB_CHECK(rpc_server_create(&s, &so, NULL, 0) == IB_OK);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(s));
  rc_client *c = open_client(target, NULL);
  if (c) {
    int serving = -1;
    rpc_server_health_set(s, "ibrl.Replay", 2); /* NOT_SERVING */
    TH_CHECK_MSG(rc_health(c, 0, "ibrl.Replay", &serving) == IB_OK, "%s", ib_errmsg());
    TH_CHECK_EQ_INT(serving, 0);
    TH_CHECK(rc_health(c, 0, "", &serving) == IB_OK); /* "" starts NOT_SERVING (rpc_server.h) */
    TH_CHECK_EQ_INT(serving, 0);
    rpc_server_health_set(s, "ibrl.Replay", 1);
    TH_CHECK(rc_health(c, 0, "ibrl.Replay", &serving) == IB_OK);
    TH_CHECK_EQ_INT(serving, 1);
    rc_client_close(c);
  }
  rpc_server_destroy(s);
}

static const th_case cases[] = {
    {"insert sample roundtrip", test_insert_sample_roundtrip},
    {"health: NOT_SERVING reaches the client, and SERVING after it", test_health_not_serving},
    {"demo fraction", test_demo_fraction},
    {"bad items not retried", test_bad_items_not_retried},
    {"control calls", test_control_calls},
    {"bad shard lists", test_bad_shard_lists},
    {"unreachable is bounded", test_unreachable_is_bounded},
    {"a rate-limited sample is a timeout, not an unreachable shard", test_rate_limited_sample},
    {"token", test_token},
    {"tls", test_tls},
    {"zz stop server", test_zz_stop_server},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  int rc = th_main(argc, argv, cases);
  if (srv_up) rt_server_stop(&srv, 9);
  return rc;
}
