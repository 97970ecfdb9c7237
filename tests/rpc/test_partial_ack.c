/* test_partial_ack.c: partial acknowledgements of Insert streams that the shard's rate limiter
 * holds (InsertRequest.max_wait_ms, InsertReply.unacked_messages), through rc_writer against an
 * ibrl-replay child on 127.0.0.1.
 *
 * The shard runs with --samples-per-insert 1 --error-buffer 250 --min-size 0: the band admits 250
 * online rows before anything is sampled, so of four messages of 100 rows the first two are stored
 * and the third waits for a sample. With a wait budget the writer gets the first two acknowledged
 * and resends only the other two; without one (the old behaviour) the blocked stream is cancelled
 * at the flush timeout and the two stored messages come back as duplicates. Every wait is bounded
 * by the flush timeouts given here. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "replay_client.h"
#include "rpc_testutil.h"
#include "th.h"

#define OD 5
#define AD 3

static const char *const limited_args[] = {"--obs-dim", "5", "--act-dim", "3", "--samples-per-insert", "1",
                                           "--error-buffer", "250", "--min-size", "0", "--threads", "3", NULL};

static void fill(rc_batch *b, int k0, int n) {
  b->n = n;
  for (int r = 0; r < n; r++) {
    float v = (float)(k0 + r);
    for (int j = 0; j < OD; j++) b->obs[(size_t)r * OD + j] = b->next_obs[(size_t)r * OD + j] = v;
    for (int j = 0; j < AD; j++) b->action[(size_t)r * AD + j] = 0.5f;
    b->reward[r] = v;
    b->discount[r] = 0.99f;
    b->proposer[r] = RC_PROPOSER_RL;
    b->weight_version[r] = 1;
    b->episode_end[r] = b->episode_success[r] = 0;
  }
}

/* Starts the limited shard and a client with a 3 s deadline. Returns 0, or -1 (failed check). */
static int start_limited(rt_server *srv, rc_client **c) {
  int code;
  *c = NULL;
  if (rt_server_start(srv, limited_args, &code) != 0) {
    TH_CHECK_MSG(0, "ibrl-replay with a rate limiter did not start (exit %d)", code);
    srv->pid = 0;
    return -1;
  }
  *c = rt_rc_open(srv->target, NULL, 3);
  return *c == NULL ? -1 : 0;
}

/* Starts the limited shard and a client with a 3 s deadline; writes 4 messages of 100 rows for
 * actor 7 with the writer's wait budget set to max_wait_ms. Returns the writer, or NULL (failed
 * check). */
static rc_writer *setup(rt_server *srv, rc_client **c, int max_wait_ms) {
  if (start_limited(srv, c) != 0) return NULL;
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, *c, "online", 7, 0, 0) == IB_OK);
  TH_CHECK_MSG(rc_writer_max_wait(w, max_wait_ms) == IB_OK, "%s", ib_errmsg());
  rc_batch b;
  rc_batch_init(&b, 100, OD, AD);
  for (int k = 0; k < 4; k++) {
    fill(&b, k * 100, 100);
    TH_CHECK_MSG(rc_writer_write(w, &b) == IB_OK, "%s", ib_errmsg());
  }
  rc_batch_free(&b);
  return w;
}

/* Samples n rows, which lets n more rows through the band. */
static void release(rc_client *c, int n) {
  rc_batch s;
  rc_batch_init(&s, n, OD, AD);
  TH_CHECK_MSG(rc_sample(c, &s, n, -1) == IB_OK, "sample %d: %s", n, ib_errmsg());
  rc_batch_free(&s);
}

/* Closes the writer (which must flush cleanly when given) and the client, and stops the shard. */
static void teardown(rt_server *srv, rc_client *c, rc_writer *w) {
  if (w != NULL) TH_CHECK_MSG(rc_writer_close(w) == IB_OK, "%s", ib_errmsg());
  rc_client_close(c);
  if (srv->pid > 0) TH_CHECK_EQ_INT(rt_server_stop(srv, SIGTERM), 0);
}

static void online_counts(rc_client *c, uint64_t *size, uint64_t *dups, uint64_t *partial) {
  rc_shard_info si;
  *size = *dups = *partial = UINT64_MAX;
  TH_CHECK_MSG(rc_info_get(c, 0, &si) == IB_OK, "%s", ib_errmsg());
  for (int t = 0; t < si.n_tables; t++)
    if (strcmp(si.tables[t].name, "online") == 0) *size = si.tables[t].size, *dups = si.tables[t].duplicates;
  *partial = si.limiter.insert_partial_acks;
}

/* Flushes w, whose 400 rows must then all be acknowledged and stored once, with the online table
 * holding online_size rows and no duplicate. */
static void check_all_stored(rc_client *c, rc_writer *w, uint64_t online_size) {
  TH_CHECK_MSG(rc_writer_flush(w, 3000) == IB_OK, "%s", ib_errmsg());
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.acked, 400);
  TH_CHECK_EQ_INT(st.inserted, 400);
  TH_CHECK_EQ_INT(st.duplicates, 0);
  TH_CHECK_EQ_INT(st.pending, 0);
  TH_CHECK_EQ_INT(st.lost, 0);
  uint64_t size, dups, partial;
  online_counts(c, &size, &dups, &partial);
  TH_CHECK_EQ_INT(size, online_size);
  TH_CHECK_EQ_INT(dups, 0);
}

static void test_partial(void) {
  rt_server srv = {0};
  rc_client *c;
  rc_writer *w = setup(&srv, &c, 300);
  if (w == NULL) goto out;
  /* The shard stores messages 1 and 2, holds message 3 for 300 ms and then acknowledges 1 and 2;
   * the writer resends 3 and 4 at once, which are held again, until the flush's 1.5 s are up. */
  double t0 = ib_now_s();
  int rc = rc_writer_flush(w, 1500);
  double dt = ib_now_s() - t0;
  TH_CHECK_MSG(rc == IB_EFULL, "flush under backpressure: rc %d (%s)", rc, ib_errmsg());
  TH_CHECK_MSG(strstr(ib_errmsg(), "rate limited: 0 of 200 items stored") != NULL, "%s", ib_errmsg());
  TH_CHECK_MSG(dt < 2.5, "the flush took %.2f s (timeout 1.5 s, budget 0.3 s)", dt);
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.acked, 200);
  TH_CHECK_EQ_INT(st.inserted, 200);
  TH_CHECK_EQ_INT(st.duplicates, 0);
  TH_CHECK_EQ_INT(st.pending, 200);
  TH_CHECK_MSG(st.partial >= 2, "partial %llu (the first reply and at least one resend)", (unsigned long long)st.partial);
  uint64_t size, dups, partial;
  online_counts(c, &size, &dups, &partial);
  TH_CHECK_EQ_INT(size, 200);
  TH_CHECK_MSG(partial >= 2 && partial <= st.partial, "shard's partial acks %llu, writer's %llu",
               (unsigned long long)partial, (unsigned long long)st.partial);
  rc_shard_info si;
  TH_CHECK_MSG(rc_info_get(c, 0, &si) == IB_OK, "%s", ib_errmsg());
  TH_CHECK_MSG(si.limiter.insert_timeouts == 0, "%llu insert timeouts: a budget that ran out is a partial "
               "acknowledgement, not a failed call", (unsigned long long)si.limiter.insert_timeouts);
  /* A sample of 200 makes room: the rest goes through, and nothing was stored twice. */
  release(c, 200);
  check_all_stored(c, w, 400);
out:
  teardown(&srv, c, w);
}

/* The same traffic without a budget: the stream blocked in the limiter is cancelled at the flush
 * timeout, and the stored messages come back as duplicates when it is resent whole. This is what
 * the budget removes, and it shows that test_partial's zero duplicates are not a given. */
static void test_without_budget(void) {
  rt_server srv = {0};
  rc_client *c;
  rc_writer *w = setup(&srv, &c, 0);
  if (w == NULL) goto out;
  int rc = rc_writer_flush(w, 800);
  TH_CHECK_MSG(rc == IB_ETIMEDOUT, "flush under backpressure without a budget: rc %d (%s)", rc, ib_errmsg());
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.acked, 0);
  TH_CHECK_EQ_INT(st.pending, 400);
  TH_CHECK_EQ_INT(st.partial, 0);
  release(c, 200);
  TH_CHECK_MSG(rc_writer_flush(w, 3000) == IB_OK, "%s", ib_errmsg());
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.acked, 400);
  TH_CHECK_MSG(st.duplicates >= 200, "duplicates %llu: the cancelled stream's stored messages come back",
               (unsigned long long)st.duplicates);
  uint64_t size, dups, partial;
  online_counts(c, &size, &dups, &partial);
  TH_CHECK_EQ_INT(size, 400);
  TH_CHECK_EQ_INT(partial, 0);
out:
  teardown(&srv, c, w);
}

/* A budget the shard cannot meet at all (the limiter never admits the first message) acknowledges
 * nothing: the writer backs off between resends (counted as retries, not as progress) and the
 * flush ends at its timeout with every row still pending. */
static void test_no_progress(void) {
  rt_server srv = {0};
  rc_client *c;
  rc_writer *w = setup(&srv, &c, 200);
  if (w == NULL) goto out;
  (void)rc_writer_flush(w, 1000); /* messages 1 and 2 acknowledged, 3 and 4 held */
  rc_writer_stats st0, st;
  rc_writer_stats_get(w, &st0);
  TH_CHECK_EQ_INT(st0.pending, 200);
  double t0 = ib_now_s();
  int rc = rc_writer_flush(w, 1200);
  TH_CHECK_MSG(rc == IB_EFULL, "rc %d (%s)", rc, ib_errmsg());
  TH_CHECK(ib_now_s() - t0 < 2.2);
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.pending, 200);
  TH_CHECK_EQ_INT(st.acked, st0.acked);
  TH_CHECK_MSG(st.retries > st0.retries, "retries %llu -> %llu", (unsigned long long)st0.retries,
               (unsigned long long)st.retries);
  /* Under the 1.2 s timeout and a 0.2 s budget, at most 1.2 / 0.2 = 6 attempts fit. */
  TH_CHECK_MSG(st.partial - st0.partial <= 6, "%llu partial replies in 1.2 s", (unsigned long long)(st.partial - st0.partial));
  release(c, 200);
  TH_CHECK_MSG(rc_writer_flush(w, 3000) == IB_OK, "%s", ib_errmsg());
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.duplicates, 0);
  TH_CHECK_EQ_INT(st.acked, 400);
out:
  teardown(&srv, c, w);
}

/* Writes one batch of 100 rows (values from k0) with w. */
static void write100(rc_writer *w, int k0) {
  rc_batch b;
  rc_batch_init(&b, 100, OD, AD);
  fill(&b, k0, 100);
  TH_CHECK_MSG(rc_writer_write(w, &b) == IB_OK, "%s", ib_errmsg());
  rc_batch_free(&b);
}

/* A pipelined writer (two streams of two messages) whose half-closed stream is acknowledged in
 * part while the fresh stream got a message stored: that message must be acknowledged by the
 * fresh stream's reply, not cancelled and resent as a duplicate (before 24 Nov it was). The band
 * (250 rows) is filled to 100 by another actor; message 1 is stored and message 2 held past its
 * 100 ms budget, so the first stream is acknowledged in part. Messages 3 and 4 carry a budget of
 * 1 s; a sample of 100 lets message 3 through while 4 is held. The write of message 4 rotates the
 * streams and reads both replies. */
static void test_pipelined(void) {
  rt_server srv = {0};
  rc_client *c = NULL;
  rc_writer *w = NULL;
  if (start_limited(&srv, &c) != 0) goto out;
  rc_writer *other = NULL;
  TH_CHECK(rc_writer_open(&other, c, "online", 8, 0, 0) == IB_OK);
  write100(other, 1000);
  TH_CHECK_MSG(rc_writer_close(other) == IB_OK, "%s", ib_errmsg());
  TH_CHECK(rc_writer_open(&w, c, "online", 7, 0, 400) == IB_OK);
  TH_CHECK_EQ_INT(rc_writer_pipeline(w, 1), IB_OK);
  TH_CHECK_EQ_INT(rc_writer_max_wait(w, 100), IB_OK);
  write100(w, 0);
  write100(w, 100); /* the first stream is half-closed: message 1 stored, 2 held */
  usleep(300000); /* its budget is spent: the shard has acknowledged message 1 alone */
  TH_CHECK_EQ_INT(rc_writer_max_wait(w, 1000), IB_OK);
  write100(w, 200); /* on the fresh stream, held */
  release(c, 100);  /* lets message 3 through */
  uint64_t size = 0, dups, partial;
  for (int i = 0; i < 100; i++) {
    online_counts(c, &size, &dups, &partial);
    if (size >= 300) break;
    usleep(20000);
  }
  TH_CHECK_MSG(size == 300, "online size %llu, want 300 (messages 1 and 3 stored)", (unsigned long long)size);
  write100(w, 300); /* the fresh stream is full: both replies are read */
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_EQ_INT(st.acked, 200);
  TH_CHECK_EQ_INT(st.duplicates, 0);
  TH_CHECK_EQ_INT(st.pending, 200);
  TH_CHECK_EQ_INT(st.awaiting, 0);
  TH_CHECK_MSG(st.partial >= 2, "partial %llu (both streams)", (unsigned long long)st.partial);
  release(c, 200);
  check_all_stored(c, w, 500);
out:
  teardown(&srv, c, w);
}

static void test_bad_budget(void) {
  rc_opts o = {0};
  o.shards = "127.0.0.1:1";
  rc_client *c = NULL;
  TH_CHECK(rc_client_open(&c, &o) == IB_OK);
  rc_writer *w = NULL;
  TH_CHECK(rc_writer_open(&w, c, "online", 1, 0, 0) == IB_OK);
  TH_CHECK_EQ_INT(rc_writer_max_wait(w, -1), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "max_wait") != NULL, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(rc_writer_max_wait(w, 3600001), IB_EINVAL);
  TH_CHECK_EQ_INT(rc_writer_max_wait(w, 0), IB_OK);
  TH_CHECK(rc_writer_close(w) == IB_OK);
  rc_client_close(c);
}

static const th_case cases[] = {
    {"a stream held by the rate limiter is acknowledged in part; only the rest is resent", test_partial},
    {"without a budget the blocked stream is cancelled and its stored rows come back as duplicates",
     test_without_budget},
    {"a budget that admits nothing backs off and keeps every row pending", test_no_progress},
    {"a pipelined writer reads the fresh stream's reply when the closing one is acknowledged in part",
     test_pipelined},
    {"bad budgets are refused", test_bad_budget},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
