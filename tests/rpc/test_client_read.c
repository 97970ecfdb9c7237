/* test_client_read.c: Replay.Read through rc_read against ibrl-replay children on 127.0.0.1:
 * paging a wrapped online ring and a demo table returns every row once, oldest first, each row
 * intact with its own seq; the size and insert counter each page reports, and the counter moving
 * when rows arrive between pages; reads are not counted as samples nor by the rate limiter; the
 * Items encoding of the reply (a request without columns) decoded with the SampleReply decoder;
 * an unknown table, a start beyond the size and a count above the shard's bound refused with
 * INVALID_ARGUMENT naming them; a token-protected shard refusing a client without the token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "replay_client.h"
#include "rpc_testutil.h"
#include "th.h"
#include "wire.h"

#define OD 5
#define AD 3
#define ONLINE_CAP 300

/* Row k of actor a: obs[j] = v + j, next_obs[j] = v + 100 + j, action[j] = j * 0.25 - 0.5,
 * reward = v, v = a * 1e4 + k (k is also the row's seq when written from seq 0). */
static void fill_rows(rc_batch *b, uint32_t actor, int k0, int n) {
  b->n = n;
  for (int r = 0; r < n; r++) {
    float v = (float)(actor * 10000u + (uint32_t)(k0 + r));
    for (int j = 0; j < OD; j++) {
      b->obs[(size_t)r * OD + j] = v + (float)j;
      b->next_obs[(size_t)r * OD + j] = v + 100 + (float)j;
    }
    for (int j = 0; j < AD; j++) b->action[(size_t)r * AD + j] = (float)j * 0.25f - 0.5f;
    b->reward[r] = v;
    b->discount[r] = 0.99f;
    b->proposer[r] = actor == 9 ? RC_PROPOSER_DEMO : RC_PROPOSER_RL;
    b->weight_version[r] = 7;
    b->episode_end[r] = (k0 + r) % 10 == 9;
    b->episode_success[r] = (k0 + r) % 20 == 19;
  }
}

/* Number of rows [0, b->n) that are not exactly row `k0 + r` of `actor` (seq, values, flags). */
static int rows_bad(const rc_batch *b, uint32_t actor, uint64_t k0) {
  int bad = 0;
  for (int r = 0; r < b->n; r++) {
    uint64_t k = k0 + (uint64_t)r;
    float v = (float)(actor * 10000u + (uint32_t)k);
    int ok = b->seq[r] == k && b->actor_id[r] == actor && b->reward[r] == v && b->discount[r] == 0.99f &&
             b->weight_version[r] == 7 && b->episode_end[r] == (k % 10 == 9) && b->episode_success[r] == (k % 20 == 19);
    for (int j = 0; j < OD; j++)
      ok &= b->obs[(size_t)r * OD + j] == v + (float)j && b->next_obs[(size_t)r * OD + j] == v + 100 + (float)j;
    for (int j = 0; j < AD; j++) ok &= b->action[(size_t)r * AD + j] == (float)j * 0.25f - 0.5f;
    if (!ok && bad < 3)
      fprintf(stderr, "  row %d: seq %llu actor %u, wanted seq %llu of actor %u\n", r, (unsigned long long)b->seq[r],
              b->actor_id[r], (unsigned long long)k, actor);
    bad += !ok;
  }
  return bad;
}

static rt_server srv;
static int srv_up;

static int start_shard(void) {
  static const char *const args[] = {"--obs-dim", "5", "--act-dim", "3", "--online-capacity", "300",
                                     "--demo-capacity", "200", "--threads", "3", NULL};
  return rt_server_once(&srv, &srv_up, args);
}

static rc_client *open_client(const char *shards, const char *token) { return rt_rc_open(shards, token, 5); }

/* Writes rows [k0, k1) of `actor` into `table` (seqs k0 .. k1 - 1). */
static void put(rc_client *c, const char *table, uint32_t actor, int k0, int k1) {
  rc_writer *w = NULL;
  TH_CHECK_MSG(rc_writer_open(&w, c, table, actor, (uint64_t)k0, 0) == IB_OK, "%s", ib_errmsg());
  if (w == NULL) return;
  rc_batch b;
  rc_batch_init(&b, 100, OD, AD);
  for (int k = k0; k < k1; k += 100) {
    fill_rows(&b, actor, k, IB_MIN(100, k1 - k));
    TH_CHECK_MSG(rc_writer_write(w, &b) == IB_OK, "%s", ib_errmsg());
  }
  TH_CHECK_MSG(rc_writer_close(w) == IB_OK, "%s", ib_errmsg());
  rc_batch_free(&b);
}

/* Pages of `page` rows over `table` give rows first, first + 1, ... of `actor`, `size` in all,
 * each page reporting `size` and `inserted`, then an empty page at the end. */
static void scan(rc_client *c, const char *table, uint32_t actor, int page, uint64_t first, uint64_t size,
                 uint64_t inserted) {
  rc_batch b;
  rc_batch_init(&b, 128, OD, AD);
  uint64_t pos = 0;
  int bad = 0, calls = 0;
  while (pos < size && calls++ < 100) {
    uint64_t sz = 0, ins = 0;
    int rc = rc_read(c, 0, table, pos, &b, page, &sz, &ins);
    TH_CHECK_MSG(rc == IB_OK, "read %s at %llu: %s", table, (unsigned long long)pos, ib_errmsg());
    if (rc != IB_OK) break;
    TH_CHECK_EQ_INT(sz, size);
    TH_CHECK_EQ_INT(ins, inserted);
    TH_CHECK_EQ_INT(b.n, IB_MIN((uint64_t)page, size - pos));
    if (b.n == 0) break;
    bad += rows_bad(&b, actor, first + pos);
    pos += (uint64_t)b.n;
  }
  TH_CHECK_MSG(bad == 0, "table %s, pages of %d: %d rows out of order or wrong", table, page, bad);
  TH_CHECK_EQ_INT(pos, size);
  uint64_t sz = 1;
  TH_CHECK_EQ_INT(rc_read(c, 0, table, size, &b, page, &sz, NULL), IB_OK);
  TH_CHECK_EQ_INT(b.n, 0);
  TH_CHECK_EQ_INT(sz, size);
  rc_batch_free(&b);
}

/* 700 rows into a ring of 300 (wrapped: the oldest is seq 400) and 150 demo rows: every row once
 * in age order; the reads are neither samples nor limiter traffic; inserts between two pages move
 * the counter and shift the full ring by as many positions. */
static void test_paging(void) {
  if (!start_shard()) return;
  rc_client *c = open_client(srv.target, NULL);
  if (!c) return;
  put(c, "online", 1, 0, 700);
  put(c, "demo", 9, 0, 150);
  scan(c, "online", 1, 64, 400, ONLINE_CAP, 700);
  scan(c, "online", 1, 128, 400, ONLINE_CAP, 700);
  scan(c, NULL, 1, 7, 400, ONLINE_CAP, 700); /* NULL = "online" */
  scan(c, "demo", 9, 100, 0, 150, 150);
  rc_shard_info *info = malloc(sizeof *info);
  TH_CHECK(rc_info_get(c, 0, info) == IB_OK);
  for (int t = 0; t < info->n_tables; t++)
    TH_CHECK_MSG(info->tables[t].sampled == 0, "table %s: %llu sampled after reads only", info->tables[t].name,
                 (unsigned long long)info->tables[t].sampled);
  TH_CHECK_EQ_INT(info->limiter.samples, 0);
  free(info);

  rc_batch b;
  rc_batch_init(&b, 64, OD, AD);
  uint64_t i1 = 0, i2 = 0;
  TH_CHECK_EQ_INT(rc_read(c, 0, "online", 0, &b, 50, NULL, &i1), IB_OK);
  put(c, "online", 1, 700, 720);
  TH_CHECK_EQ_INT(rc_read(c, 0, "online", 50, &b, 50, NULL, &i2), IB_OK);
  TH_CHECK_EQ_INT(i2 - i1, 20);
  TH_CHECK_EQ_INT(rows_bad(&b, 1, 420 + 50), 0); /* the oldest is now seq 420 */
  rc_batch_free(&b);
  rc_client_close(c);
}

/* A request without columns: the rows come as Items under SampleReply's field 1, which the
 * SampleReply decoder reads; table_size and inserted follow (fields 7, 8). */
static void test_items_encoding(void) {
  if (!start_shard()) return;
  rt_client rc;
  rt_client_open(&rc, srv.target, NULL);
  ibrl_ReadRequest req = ibrl_ReadRequest_init_zero;
  snprintf(req.table, sizeof req.table, "demo");
  req.start = 140;
  req.count = 30;
  grpc_byte_buffer *q = NULL, *rep = NULL;
  TH_CHECK(wire_encode(&q, ibrl_ReadRequest_fields, &req) == IB_OK);
  char det[512] = "";
  grpc_status_code st = rt_call(&rc, "/ibrl.Replay/Read", &q, 1, &rep, det, sizeof det, 3000);
  TH_CHECK_MSG(st == GRPC_STATUS_OK, "Read: %s", det);
  grpc_byte_buffer_destroy(q);
  if (st == GRPC_STATUS_OK) {
    rc_batch b;
    rc_batch_init(&b, 64, OD, AD);
    rc__reply_info ri;
    TH_CHECK_MSG(rc__decode_sample_reply(&b, 0, 30, 0, 30, rep, &ri, "read") == IB_OK, "%s", ib_errmsg());
    b.n = ri.n_items;
    TH_CHECK_EQ_INT(b.n, 10); /* rows 140..149: the page stops at the end of the table */
    TH_CHECK_EQ_INT(rows_bad(&b, 9, 140), 0);
    TH_CHECK_EQ_INT(ri.table_size, 150);
    TH_CHECK_EQ_INT(ri.inserted, 150);
    rc_batch_free(&b);
  }
  if (rep) grpc_byte_buffer_destroy(rep);
  rt_client_close(&rc);
}

/* Bad requests: INVALID_ARGUMENT naming the table, the start and the count. */
static void test_bad_requests(void) {
  if (!start_shard()) return;
  rc_client *c = open_client(srv.target, NULL);
  if (!c) return;
  rc_batch b;
  rc_batch_init(&b, 5000, OD, AD);
  uint64_t sz = 0;
  TH_CHECK_EQ_INT(rc_read(c, 0, "nope", 0, &b, 10, &sz, NULL), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "INVALID_ARGUMENT") && strstr(ib_errmsg(), "'nope'") &&
                   strstr(ib_errmsg(), "HINT"), "unknown table: %s", ib_errmsg());
  TH_CHECK_EQ_INT(rc_read(c, 0, "online", ONLINE_CAP + 1, &b, 10, &sz, NULL), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "INVALID_ARGUMENT") && strstr(ib_errmsg(), "start 301") &&
                   strstr(ib_errmsg(), "size 300"), "start beyond the size: %s", ib_errmsg());
  TH_CHECK_EQ_INT(rc_read(c, 0, "online", 0, &b, 4097, &sz, NULL), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "INVALID_ARGUMENT") && strstr(ib_errmsg(), "count 4097") &&
                   strstr(ib_errmsg(), "1..4096"), "count above the bound: %s", ib_errmsg());
  /* Refused on the client before any call. */
  TH_CHECK_EQ_INT(rc_read(c, 0, "online", 0, &b, 0, &sz, NULL), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "n 0") != NULL, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(rc_read(c, 1, "online", 0, &b, 5, &sz, NULL), IB_EINVAL);
  TH_CHECK_EQ_INT(rc_read(c, 0, "", 0, &b, 5, &sz, NULL), IB_EINVAL);
  TH_CHECK_EQ_INT(b.n, 0);
  /* A batch of other dims: the shard's rows do not fit. */
  rc_batch w;
  rc_batch_init(&w, 8, OD + 1, AD);
  TH_CHECK_EQ_INT(rc_read(c, 0, "demo", 0, &w, 8, NULL, NULL), IB_EMISMATCH);
  TH_CHECK_EQ_INT(w.n, 0);
  rc_batch_free(&w);
  rc_batch_free(&b);
  rc_client_close(c);
}

/* A shard with a token refuses Read without it (UNAUTHENTICATED) and serves it with it. */
static void test_token(void) {
  rt_server ts;
  static const char *const args[] = {"--obs-dim", "5", "--act-dim", "3", "--token", "s3cret", NULL};
  int code;
  if (rt_server_start(&ts, args, &code) != 0) {
    TH_CHECK_MSG(0, "ibrl-replay --token did not start (exit %d)", code);
    return;
  }
  rc_client *good = open_client(ts.target, "s3cret"), *none = open_client(ts.target, NULL),
            *bad = open_client(ts.target, "wrong");
  if (good && none && bad) {
    put(good, "online", 2, 0, 30);
    rc_batch b;
    rc_batch_init(&b, 64, OD, AD);
    uint64_t sz = 0;
    TH_CHECK_EQ_INT(rc_read(none, 0, "online", 0, &b, 10, &sz, NULL), IB_EINVAL);
    TH_CHECK_MSG(strstr(ib_errmsg(), "UNAUTHENTICATED") && strstr(ib_errmsg(), "token"), "%s", ib_errmsg());
    TH_CHECK_EQ_INT(b.n, 0);
    TH_CHECK_EQ_INT(rc_read(bad, 0, "online", 0, &b, 10, &sz, NULL), IB_EINVAL);
    TH_CHECK_MSG(strstr(ib_errmsg(), "UNAUTHENTICATED") != NULL, "%s", ib_errmsg());
    TH_CHECK_EQ_INT(rc_read(good, 0, "online", 0, &b, 64, &sz, NULL), IB_OK);
    TH_CHECK_EQ_INT(b.n, 30);
    TH_CHECK_EQ_INT(sz, 30);
    TH_CHECK_EQ_INT(rows_bad(&b, 2, 0), 0);
    rc_batch_free(&b);
  }
  rc_client_close(good);
  rc_client_close(none);
  rc_client_close(bad);
  rt_shard_stop_ok(&ts);
}

/* A shard that is not there: IB_EUNAVAIL naming it, within the deadline. */
static void test_unreachable(void) {
  rc_client *c = open_client("127.0.0.1:1", NULL);
  if (!c) return;
  rc_batch b;
  rc_batch_init(&b, 8, OD, AD);
  int rc = rc_read(c, 0, "online", 0, &b, 8, NULL, NULL);
  TH_CHECK_MSG(rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT, "rc %d: %s", rc, ib_errmsg());
  TH_CHECK_MSG(strstr(ib_errmsg(), "127.0.0.1:1") && strstr(ib_errmsg(), "Read"), "%s", ib_errmsg());
  rc_batch_free(&b);
  rc_client_close(c);
}

static void test_stop(void) {
  if (srv_up) rt_shard_stop_ok(&srv);
  srv_up = 0;
}

static const th_case cases[] = {
    {"paging: every row once, oldest first; counters", test_paging},
    {"items encoding read by the SampleReply decoder", test_items_encoding},
    {"bad table, start and count: INVALID_ARGUMENT named", test_bad_requests},
    {"token-protected shard", test_token},
    {"unreachable shard", test_unreachable},
    {"shard exits 0", test_stop},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  grpc_init();
  int rc = th_main(argc, argv, cases);
  if (srv_up) rt_server_stop(&srv, 9);
  grpc_shutdown();
  return rc;
}
