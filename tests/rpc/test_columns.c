/* test_columns.c: the columnar batches of the replay wire (ItemColumns in InsertRequest.columns
 * and SampleReply.columns, proto/ibrl.proto) against the per-item encoding they replace.
 *   - codec: columns written by ic_cols_put and read back by the client's reply decoder give the
 *     same rows, whatever the slicing of the received message (slices of 24 to 29 bytes, so most
 *     columns, floats and varints straddle a border); the NaN/Inf check inside the sliced copy
 *     finds a value whose bytes are split over two slices; every truncation and a sweep of corrupted bytes are refused
 *     or decoded without reading out of bounds (ASan build). No network.
 *   - equality: two shards with the same seed get the same rows, one as items, one as columns;
 *     their sampled batches, asked for as items and as columns, are identical field by field,
 *     and every sampled row is exactly the inserted row with its seq.
 *   - persistence: rows inserted as columns through rc_writer survive WAL replay after kill -9
 *     and a checkpoint + restart, bit for bit.
 *   - malformed columns: wrong byte lengths, n over the bound, n differing between columns, NaN
 *     or Inf in each float column, an unknown table, a wrong wire type: INVALID_ARGUMENT with a
 *     message naming the thing, nothing stored, and the shard keeps serving; a NaN in row 777 of
 *     a 1000-row message (received over several slices) likewise; a good 1000-row message then
 *     samples back value for value. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "itemcodec.h"
#include "replay_client.h"
#include "rng.h"
#include "rpc_server.h"
#include "rpc_testutil.h"
#include "th.h"
#include "wire.h"

#define OBS 6
#define ACT 4
#define TMO 5000

/* Distinct rows: row i of actor `actor` has seq first + i and values that identify it. */
static void fill_rows(rc_batch *b, int n, uint32_t actor, uint64_t first, uint64_t seed) {
  rng r;
  rng_seed(&r, seed, "test", 0, "columns");
  b->n = n;
  for (int i = 0; i < n * b->obs_dim; i++) b->obs[i] = rng_normal(&r), b->next_obs[i] = rng_normal(&r);
  for (int i = 0; i < n * b->act_dim; i++) b->action[i] = 2 * rng_uniform(&r) - 1;
  for (int i = 0; i < n; i++) {
    b->reward[i] = rng_normal(&r);
    b->discount[i] = i % 7 == 0 ? 0.0f : 0.97f;
    b->proposer[i] = (uint8_t)(i % 2);
    b->actor_id[i] = actor;
    b->seq[i] = first + (uint64_t)i;
    b->weight_version[i] = 1000 + (uint64_t)i * 3;
    b->episode_end[i] = i % 5 == 4;
    b->episode_success[i] = i % 10 == 9;
  }
}

/* 1 if row i of a equals row j of b in every field (floats compared by bits). */
static int row_eq(const rc_batch *a, int i, const rc_batch *b, int j) {
  size_t od = (size_t)a->obs_dim, ad = (size_t)a->act_dim;
  return memcmp(a->obs + i * od, b->obs + j * od, od * 4) == 0 &&
         memcmp(a->next_obs + i * od, b->next_obs + j * od, od * 4) == 0 &&
         memcmp(a->action + i * ad, b->action + j * ad, ad * 4) == 0 && memcmp(&a->reward[i], &b->reward[j], 4) == 0 &&
         memcmp(&a->discount[i], &b->discount[j], 4) == 0 && a->proposer[i] == b->proposer[j] &&
         a->actor_id[i] == b->actor_id[j] && a->seq[i] == b->seq[j] && a->weight_version[i] == b->weight_version[j] &&
         a->episode_end[i] == b->episode_end[j] && a->episode_success[i] == b->episode_success[j];
}

/* Every row of s [0, s->n) is the row of src with the same seq (src rows have seqs first..). */
static int rows_match_source(const rc_batch *s, const rc_batch *src, uint64_t first) {
  for (int i = 0; i < s->n; i++) {
    uint64_t k = s->seq[i] - first;
    if (s->seq[i] < first || k >= (uint64_t)src->n || !row_eq(s, i, src, (int)k)) return 0;
  }
  return 1;
}

/* A byte buffer of `len` bytes cut into a first slice of `first` bytes (0: piece), then slices
 * of `piece` bytes. grpc merges slices of at most 23 bytes (stored inline) into their
 * neighbour, so only pieces of 24 bytes or more are sure to stay separate slices. */
static grpc_byte_buffer *sliced_at(const uint8_t *p, size_t len, size_t first, size_t piece) {
  if (first == 0 || first > len) first = IB_MIN(piece, len);
  size_t ns = 1 + (len - first + piece - 1) / piece;
  grpc_slice *sl = ib_xmalloc(ns * sizeof *sl);
  sl[0] = grpc_slice_from_copied_buffer((const char *)p, first);
  for (size_t k = 1; k < ns; k++) {
    size_t at = first + (k - 1) * piece;
    sl[k] = grpc_slice_from_copied_buffer((const char *)p + at, IB_MIN(piece, len - at));
  }
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(sl, ns);
  for (size_t k = 0; k < ns; k++) grpc_slice_unref(sl[k]);
  free(sl);
  return bb;
}

static grpc_byte_buffer *sliced(const uint8_t *p, size_t len, size_t piece) { return sliced_at(p, len, 0, piece); }

static ic_rows rows_view(rc_batch *b) {
  ic_rows r = {b->obs_dim, b->act_dim, b->obs, b->action, b->next_obs, b->reward, b->discount, b->proposer,
               b->episode_end, b->episode_success, b->actor_id, b->seq, b->weight_version};
  return r;
}

/* A SampleReply holding rows [0, n) of b as columns, then n_demo / n_online; *len its size. */
static uint8_t *reply_columns(rc_batch *b, int n, uint32_t n_demo, size_t *len) {
  ic_rows r = rows_view(b);
  size_t total = ic_cols_len(IC_REPLY_COLUMNS, (size_t)n, b->obs_dim, b->act_dim) +
                 ic_varint_field_len(IC_REPLY_N_DEMO, n_demo) + ic_varint_field_len(IC_REPLY_N_DEMO + 1, (uint64_t)n - n_demo);
  uint8_t *buf = ib_xmalloc(total), *p = buf;
  p = ic_cols_put(p, IC_REPLY_COLUMNS, &r, 0, (size_t)n, NULL, NULL);
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO, n_demo);
  p = ic_put_varint_field(p, IC_REPLY_N_DEMO + 1, (uint64_t)n - n_demo);
  IB_CHECK((size_t)(p - buf) == total);
  *len = total;
  return buf;
}

/* ---- codec, no network ---- */

static void test_codec_slices(void) {
  enum { N = 37 };
  rc_batch src, dst;
  rc_batch_init(&src, N, OBS, ACT);
  rc_batch_init(&dst, N, OBS, ACT);
  fill_rows(&src, N, 9, 100, 1);
  size_t len;
  uint8_t *msg = reply_columns(&src, N, 10, &len);
  const size_t pieces[] = {1, 3, 24, 25, 27, 29, 64, 1000, 1 << 20};
  for (size_t k = 0; k < IB_ARRAY_LEN(pieces); k++) {
    grpc_byte_buffer *bb = sliced(msg, len, pieces[k]);
    memset(dst.obs, 0xff, (size_t)N * OBS * 4);
    rc__reply_info info;
    /* 10 demo rows go to the end of the batch, the 27 online rows to the front. */
    int rc = rc__decode_sample_reply(&dst, 27, 10, 0, N, bb, &info, "test");
    TH_CHECK_MSG(rc == IB_OK, "slices of %zu bytes: %s", pieces[k], ib_errmsg());
    TH_CHECK_EQ_INT(info.n_items, N);
    TH_CHECK_EQ_INT(info.n_demo, 10);
    int same = 1;
    for (int i = 0; i < N; i++) same &= row_eq(&src, i, &dst, i < 10 ? 27 + i : i - 10);
    TH_CHECK_MSG(same, "slices of %zu bytes: decoded rows differ from the encoded ones", pieces[k]);
    grpc_byte_buffer_destroy(bb);
  }
  /* More rows than asked for: refused. */
  grpc_byte_buffer *bb = sliced(msg, len, 100);
  rc__reply_info info;
  TH_CHECK_EQ_INT(rc__decode_sample_reply(&dst, 0, 0, 0, N - 1, bb, &info, "test"), IB_EPROTO);
  TH_CHECK(strstr(ib_errmsg(), "columns") != NULL);
  grpc_byte_buffer_destroy(bb);
  /* Every truncation inside the columns field is refused (a cut after it only loses the
   * counts, which is a legal shorter reply). */
  int refused = 1;
  size_t cols = ic_cols_len(IC_REPLY_COLUMNS, N, OBS, ACT);
  for (size_t cut = 1; cut < cols; cut++) {
    bb = sliced(msg, cut, 13);
    refused &= rc__decode_sample_reply(&dst, 0, 0, 0, N, bb, &info, "test") != IB_OK || info.n_items != N;
    grpc_byte_buffer_destroy(bb);
  }
  TH_CHECK_MSG(refused, "a truncated columns reply decoded as complete");
  /* Corrupted bytes: any result but a crash or an out-of-bounds read (ASan). */
  uint8_t *bad = ib_xmalloc(len);
  rng r;
  rng_seed(&r, 5, "test", 0, "corrupt");
  for (int t = 0; t < 400; t++) {
    memcpy(bad, msg, len);
    size_t at = rng_below(&r, t < 200 ? IB_MIN(len, 64) : len); /* the headers first */
    bad[at] = (uint8_t)rng_below(&r, 256);
    bb = sliced(bad, len, 1 + rng_below(&r, 50));
    (void)rc__decode_sample_reply(&dst, 0, 0, 0, N, bb, &info, "test");
    grpc_byte_buffer_destroy(bb);
  }
  free(bad);
  free(msg);
  rc_batch_free(&src);
  rc_batch_free(&dst);
}

/* The server's validating read: a NaN whose 4 bytes straddle two slices is found and named. */
/* Reads the first field of bb (an ItemColumns body) into dst's rows with the NaN/Inf check on,
 * at most max_rows rows; returns ic_msg_cols_read's code, *e its error. */
static int read_first_columns(grpc_byte_buffer *bb, ic_flat *scratch, rc_batch *dst, size_t max_rows, ic_error *e) {
  ic_msg m;
  IB_CHECK(ic_msg_init(&m, bb, scratch) == 0);
  uint32_t f;
  int wt;
  uint64_t v;
  size_t flen, n = 0;
  TH_CHECK_EQ_INT(ic_msg_next_hdr(&m, &f, &wt, &v, &flen), 1);
  ic_rows dr = rows_view(dst);
  ic_cols_dst d = {&dr, max_rows, SIZE_MAX, 0, 0, 1};
  return ic_msg_cols_read(&m, flen, &d, &n, e);
}

static void test_codec_nan_straddling(void) {
  enum { N = 5 };
  rc_batch src, dst;
  rc_batch_init(&src, N, OBS, ACT);
  rc_batch_init(&dst, N, OBS, ACT);
  const char *names[5] = {"obs", "action", "reward", "discount", "next_obs"};
  for (int col = 0; col < 5; col++) {
    fill_rows(&src, N, 1, 0, 2);
    float *where = col == 0 ? &src.obs[3 * OBS + 2] : col == 1 ? &src.action[3 * ACT + 2] : col == 2 ? &src.reward[3]
                   : col == 3 ? &src.discount[3] : &src.next_obs[3 * OBS + 2];
    *where = col == 2 ? INFINITY : NAN;
    ic_rows r = rows_view(&src);
    size_t len = ic_cols_len(IC_INSERT_COLUMNS, N, OBS, ACT);
    uint8_t *buf = ib_xmalloc(len);
    int finite = 1;
    IB_CHECK(ic_cols_put(buf, IC_INSERT_COLUMNS, &r, 0, N, NULL, &finite) == buf + len);
    TH_CHECK_MSG(!finite, "the encoder's copy check missed the bad %s value", names[col]);
    /* Cut the message inside the bad float (2 of its 4 bytes in each slice). */
    uint32_t bits;
    memcpy(&bits, where, 4);
    size_t at = 0;
    for (size_t k = 0; k + 4 <= len && at == 0; k++)
      if (memcmp(buf + k, &bits, 4) == 0) at = k;
    TH_CHECK(at > 24);
    grpc_byte_buffer *bb = sliced_at(buf, len, at + 2, 29);
    ic_flat scratch = {0};
    ic_error e;
    TH_CHECK_EQ_INT(read_first_columns(bb, &scratch, &dst, N, &e), IC_ENONFINITE);
    TH_CHECK_MSG(strcmp(e.field, names[col]) == 0, "named '%s' instead of '%s'", e.field, names[col]);
    TH_CHECK_EQ_INT(e.row, 3);
    TH_CHECK_EQ_INT(e.index, col == 2 || col == 3 ? 0 : 2);
    ic_flat_free(&scratch);
    grpc_byte_buffer_destroy(bb);
    free(buf);
  }
  rc_batch_free(&src);
  rc_batch_free(&dst);
}

/* A column whose length disagrees with n (given first, as every encoder writes it) is refused
 * before a byte of it is copied. */
static void test_codec_refuse_before_copy(void) {
  enum { N = 4 };
  rc_batch src, dst;
  rc_batch_init(&src, N + 1, OBS, ACT);
  rc_batch_init(&dst, 8, OBS, ACT);
  fill_rows(&src, N + 1, 1, 0, 3);
  /* ItemColumns with n = 4 and an obs column of 5 rows. */
  size_t cap = ic_cols_len(IC_INSERT_COLUMNS, N + 1, OBS, ACT);
  uint8_t *body = ib_xmalloc(cap), *p = body;
  p = ic_put_varint_field(p, 1, N);
  p = ic_put_bytes_field(p, 2, src.obs, (size_t)(N + 1) * OBS * 4);
  size_t blen = (size_t)(p - body);
  uint8_t *msg = ib_xmalloc(blen + 16), *q = msg;
  q = ic_put_bytes_field(q, IC_INSERT_COLUMNS, body, blen);
  grpc_byte_buffer *bb = sliced(msg, (size_t)(q - msg), 64);
  memset(dst.obs, 0x5a, 8 * OBS * 4);
  ic_flat scratch = {0};
  ic_error e;
  TH_CHECK_EQ_INT(read_first_columns(bb, &scratch, &dst, 8, &e), IC_EDIMS);
  TH_CHECK(strcmp(e.field, "obs") == 0 && e.got == (N + 1) * OBS * 4 && e.want == N * OBS * 4);
  int untouched = 1;
  for (size_t k = 0; k < 8 * OBS * 4; k++) untouched &= ((const uint8_t *)dst.obs)[k] == 0x5a;
  TH_CHECK_MSG(untouched, "the over-long obs column was copied before it was refused");
  ic_flat_free(&scratch);
  grpc_byte_buffer_destroy(bb);
  free(msg);
  free(body);
  rc_batch_free(&src);
  rc_batch_free(&dst);
}

/* ---- against ibrl-replay ---- */

/* One Insert stream of one message; returns the status, *rep the reply when OK. */
static grpc_status_code insert_bb(rt_client *c, grpc_byte_buffer *msg, ibrl_InsertReply *rep, char *det, size_t cap) {
  grpc_byte_buffer *resp = NULL;
  grpc_status_code st = rt_call(c, WIRE_PATH_INSERT, &msg, 1, &resp, det, cap, TMO);
  if (rep != NULL) *rep = (ibrl_InsertReply)ibrl_InsertReply_init_zero;
  if (resp != NULL) {
    if (rep != NULL) IB_CHECK(wire_decode(rep, ibrl_InsertReply_fields, resp, "InsertReply") == IB_OK);
    grpc_byte_buffer_destroy(resp);
  }
  return st;
}

/* Samples n rows as items or columns into b. Returns the status. */
static grpc_status_code sample_bb(rt_client *c, int n, int columns, rc_batch *b) {
  ibrl_SampleRequest req = ibrl_SampleRequest_init_zero;
  req.batch_size = (uint32_t)n;
  req.columns = columns;
  grpc_byte_buffer *q = NULL, *resp = NULL;
  IB_CHECK(wire_encode(&q, ibrl_SampleRequest_fields, &req) == IB_OK);
  grpc_status_code st = rt_call(c, WIRE_PATH_SAMPLE, &q, 1, &resp, NULL, 0, TMO);
  grpc_byte_buffer_destroy(q);
  b->n = 0;
  if (st == GRPC_STATUS_OK) {
    rc__reply_info info;
    int rc = rc__decode_sample_reply(b, 0, 0, 0, n, resp, &info, "test");
    TH_CHECK_MSG(rc == IB_OK, "%s", ib_errmsg());
    TH_CHECK_EQ_INT(info.n_items, n);
    b->n = info.n_items;
  }
  if (resp != NULL) grpc_byte_buffer_destroy(resp);
  return st;
}

static int batch_eq(const rc_batch *a, const rc_batch *b) {
  if (a->n != b->n) return 0;
  for (int i = 0; i < a->n; i++)
    if (!row_eq(a, i, b, i)) return 0;
  return 1;
}

static void test_columns_equal_items(void) {
  enum { N = 600, S = 256 };
  rt_server sa, sb;
  if (rt_shard_start(&sa, NULL) != 0) return;
  if (rt_shard_start(&sb, NULL) != 0) {
    rt_server_stop(&sa, SIGTERM);
    return;
  }
  rt_client ca, cb;
  rt_client_open(&ca, sa.target, NULL);
  rt_client_open(&cb, sb.target, NULL);
  rc_batch src, x, y;
  rc_batch_init(&src, N, OBS, ACT);
  rc_batch_init(&x, S, OBS, ACT);
  rc_batch_init(&y, S, OBS, ACT);
  fill_rows(&src, N, 3, 1000, 11);
  ibrl_InsertReply ra, rb;
  for (int lo = 0; lo < N; lo += 300) { /* two messages each */
    grpc_byte_buffer *mi = rc__encode_insert(&src, lo, lo + 300, "online");
    grpc_byte_buffer *mc = rc__encode_insert_columns(&src, lo, lo + 300, "online");
    TH_CHECK_EQ_INT(insert_bb(&ca, mi, &ra, NULL, 0), GRPC_STATUS_OK);
    TH_CHECK_EQ_INT(insert_bb(&cb, mc, &rb, NULL, 0), GRPC_STATUS_OK);
    TH_CHECK_EQ_INT(ra.inserted, 300);
    TH_CHECK_EQ_INT(rb.inserted, 300);
    grpc_byte_buffer_destroy(mi);
    grpc_byte_buffer_destroy(mc);
  }
  /* The columns message again: all duplicates, as for items. */
  grpc_byte_buffer *mc = rc__encode_insert_columns(&src, 0, 300, "online");
  TH_CHECK_EQ_INT(insert_bb(&cb, mc, &rb, NULL, 0), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(rb.duplicates, 300);
  grpc_byte_buffer_destroy(mc);
  /* Same seed, same table: the k-th sample of each shard draws the same slots. Ask A for items
   * and B for columns, then the other way round. */
  for (int round = 0; round < 2; round++) {
    TH_CHECK_EQ_INT(sample_bb(&ca, S, round, &x), GRPC_STATUS_OK);
    TH_CHECK_EQ_INT(sample_bb(&cb, S, !round, &y), GRPC_STATUS_OK);
    TH_CHECK_MSG(batch_eq(&x, &y), "round %d: the batch sampled as %s differs from the one sampled as %s", round,
                 round ? "columns" : "items", round ? "items" : "columns");
    TH_CHECK_MSG(rows_match_source(&x, &src, 1000), "round %d: a sampled row differs from the inserted row", round);
    TH_CHECK_MSG(rows_match_source(&y, &src, 1000), "round %d: a sampled row differs from the inserted row", round);
  }
  rc_batch_free(&src);
  rc_batch_free(&x);
  rc_batch_free(&y);
  rt_client_close(&ca);
  rt_client_close(&cb);
  rt_shard_stop_ok(&sa);
  rt_shard_stop_ok(&sb);
}

/* Inserts rows through the real client (rc_writer: columns) and checks rc_sample's batches. */
static int write_rows(const char *target, const rc_batch *src, uint32_t actor) {
  rc_opts o = {0};
  o.shards = target;
  rc_client *c = NULL;
  if (rc_client_open(&c, &o) != IB_OK) return -1;
  rc_writer *w = NULL;
  IB_CHECK(rc_writer_open(&w, c, "online", actor, src->seq[0], 0) == IB_OK);
  rc_batch part;
  rc_batch_init(&part, 100, OBS, ACT);
  int rc = IB_OK;
  for (int lo = 0; lo < src->n && rc == IB_OK; lo += 100) {
    int k = IB_MIN(100, src->n - lo);
    part.n = k;
    memcpy(part.obs, src->obs + lo * OBS, (size_t)k * OBS * 4);
    memcpy(part.next_obs, src->next_obs + lo * OBS, (size_t)k * OBS * 4);
    memcpy(part.action, src->action + lo * ACT, (size_t)k * ACT * 4);
    memcpy(part.reward, src->reward + lo, (size_t)k * 4);
    memcpy(part.discount, src->discount + lo, (size_t)k * 4);
    memcpy(part.proposer, src->proposer + lo, (size_t)k);
    memcpy(part.weight_version, src->weight_version + lo, (size_t)k * 8);
    memcpy(part.episode_end, src->episode_end + lo, (size_t)k);
    memcpy(part.episode_success, src->episode_success + lo, (size_t)k);
    rc = rc_writer_write(w, &part);
  }
  if (rc == IB_OK) rc = rc_writer_flush(w, -1);
  TH_CHECK_MSG(rc == IB_OK, "writer: %s", ib_errmsg());
  rc_writer_close(w);
  rc_batch_free(&part);
  rc_client_close(c);
  return rc;
}

static void check_sampled(const char *target, const rc_batch *src, uint64_t first, const char *when) {
  rc_opts o = {0};
  o.shards = target;
  o.seed = 3;
  rc_client *c = NULL;
  IB_CHECK(rc_client_open(&c, &o) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 256, OBS, ACT);
  int rc = rc_sample(c, &b, 256, -1);
  TH_CHECK_MSG(rc == IB_OK, "%s: %s", when, ib_errmsg());
  TH_CHECK_EQ_INT(b.n, 256);
  TH_CHECK_MSG(rows_match_source(&b, src, first), "%s: a sampled row differs from the inserted row", when);
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  TH_CHECK_EQ_INT(rc_info_get(c, 0, info), IB_OK);
  uint64_t online = 0;
  for (int t = 0; t < info->n_tables; t++)
    if (strcmp(info->tables[t].name, "online") == 0) online = info->tables[t].size;
  TH_CHECK_MSG(online == (uint64_t)src->n, "%s: online table holds %llu rows, %d were inserted", when,
               (unsigned long long)online, src->n);
  free(info);
  rc_batch_free(&b);
  rc_client_close(c);
}

static void test_columns_persist(void) {
  enum { N = 700 };
  char dir[256];
  rt_tmpdir(dir, sizeof dir, "colwal");
  const char *extra[] = {"--ckpt-dir", dir, "--durability", "wal", NULL};
  rt_server s;
  if (rt_shard_start(&s, extra) != 0) return;
  rc_batch src;
  rc_batch_init(&src, N, OBS, ACT);
  fill_rows(&src, N, 5, 40, 21);
  TH_CHECK(write_rows(s.target, &src, 5) == IB_OK);
  TH_CHECK_EQ_INT(rt_server_stop(&s, SIGKILL), 128 + SIGKILL);
  /* Nothing was checkpointed: everything comes back from the write-ahead log. */
  if (rt_shard_start(&s, extra) != 0) goto out;
  check_sampled(s.target, &src, 40, "after WAL replay");
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  ibrl_CheckpointRequest cr = ibrl_CheckpointRequest_init_zero;
  grpc_byte_buffer *bb = NULL, *resp = NULL;
  IB_CHECK(wire_encode(&bb, ibrl_CheckpointRequest_fields, &cr) == IB_OK);
  TH_CHECK_EQ_INT(rt_call(&c, WIRE_PATH_CHECKPOINT, &bb, 1, &resp, NULL, 0, TMO), GRPC_STATUS_OK);
  if (resp) grpc_byte_buffer_destroy(resp);
  grpc_byte_buffer_destroy(bb);
  rt_client_close(&c);
  TH_CHECK_EQ_INT(rt_server_stop(&s, SIGKILL), 128 + SIGKILL);
  if (rt_shard_start(&s, extra) != 0) goto out;
  check_sampled(s.target, &src, 40, "after checkpoint and restart");
  rt_shard_stop_ok(&s);
out:
  rc_batch_free(&src);
  rt_rmdir(dir);
}

/* ---- malformed columns ---- */

/* An InsertRequest whose ItemColumns the test shapes: n_field is the n written (or -1: none);
 * rows[f] the rows column f (ItemColumns field number 2..11) holds (-1: omitted); poison_col
 * (2..6) gets a NaN (or Inf with inf) at row prow (1 unless set), element 0; wrong_wt writes obs
 * as a varint. Row i's float column values are (i * width + k) * 0.25 (discount 0.5), its seq
 * 5000 + i. */
typedef struct shape {
  long n_field;
  long rows[12];
  int poison_col, inf, wrong_wt;
  long prow;
} shape;

static shape shape_ok(long n) {
  shape s = {n, {0}, 0, 0, 0, 1};
  for (int f = 2; f < 12; f++) s.rows[f] = n;
  return s;
}

static grpc_byte_buffer *shaped(const char *table, const shape *s) {
  static const size_t wid[12] = {0, 0, OBS * 4, ACT * 4, 4, 4, OBS * 4, 1, 4, 8, 8, 1};
  size_t body = s->n_field >= 0 ? ic_varint_field_len(1, (uint64_t)s->n_field) : 0;
  for (int f = 2; f < 12; f++)
    if (s->rows[f] >= 0) body += ic_bytes_field_len((uint32_t)f, (size_t)s->rows[f] * wid[f]);
  uint8_t *cbuf = ib_xcalloc(1, body), *p = cbuf; /* the ItemColumns body, then the message */
  if (s->n_field >= 0) p = ic_put_varint_field(p, 1, (uint64_t)s->n_field);
  for (int f = 2; f < 12; f++) {
    if (s->rows[f] < 0) continue;
    size_t len = (size_t)s->rows[f] * wid[f];
    p = ic_put_varint(p, (uint64_t)f << 3 | (f == 2 && s->wrong_wt ? 0 : 2));
    p = ic_put_varint(p, len);
    if (f == 2 && s->wrong_wt) continue; /* the "length" was the varint's value */
    for (size_t k = 0; k < len / 4 && f <= 6; k++) {
      float v = f == 5 ? 0.5f : (float)k * 0.25f;
      memcpy(p + 4 * k, &v, 4);
    }
    if (f == 7) memset(p, 1, len);                    /* proposer RL */
    if (f == 9)                                       /* distinct seqs */
      for (size_t k = 0; k < len / 8; k++) {
        uint64_t q = 5000 + k;
        memcpy(p + 8 * k, &q, 8);
      }
    if (f == s->poison_col && s->rows[f] > s->prow) {
      float bad = s->inf ? -INFINITY : NAN;
      memcpy(p + (size_t)s->prow * wid[f], &bad, 4); /* row prow, element 0 */
    }
    p += len;
  }
  body = (size_t)(p - cbuf); /* the wrong-wire-type shape wrote fewer bytes */
  size_t tl = strlen(table);
  size_t total = ic_bytes_field_len(IC_INSERT_TABLE, tl) + ic_bytes_field_len(IC_INSERT_COLUMNS, body);
  uint8_t *buf = ib_xmalloc(total);
  p = ic_put_bytes_field(buf, IC_INSERT_TABLE, table, tl);
  p = ic_put_bytes_field(p, IC_INSERT_COLUMNS, cbuf, body);
  IB_CHECK((size_t)(p - buf) == total);
  grpc_slice sl = grpc_slice_from_copied_buffer((const char *)buf, total);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  free(buf);
  free(cbuf);
  return bb;
}

static void expect_bad(rt_client *c, const char *table, const shape *s, const char *needle, const char *what) {
  grpc_byte_buffer *bb = shaped(table, s);
  char det[512] = "";
  grpc_status_code st = insert_bb(c, bb, NULL, det, sizeof det);
  grpc_byte_buffer_destroy(bb);
  TH_CHECK_MSG(st == GRPC_STATUS_INVALID_ARGUMENT, "%s: status %d (%s), want INVALID_ARGUMENT", what, (int)st, det);
  TH_CHECK_MSG(strstr(det, needle) != NULL && strstr(det, "HINT") != NULL, "%s: message '%s' lacks '%s' or a HINT",
               what, det, needle);
}

static uint64_t online_size(rt_client *c) {
  ibrl_InfoReply *info = ib_xcalloc(1, sizeof *info);
  uint64_t n = UINT64_MAX;
  if (rt_info(c, info, TMO) == GRPC_STATUS_OK)
    for (pb_size_t i = 0; i < info->tables_count; i++)
      if (strcmp(info->tables[i].name, "online") == 0) n = info->tables[i].size;
  free(info);
  return n;
}

static void test_columns_malformed(void) {
  rt_server s;
  if (rt_shard_start(&s, NULL) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  shape ok = shape_ok(8);
  ibrl_InsertReply rep;
  grpc_byte_buffer *bb = shaped("online", &ok);
  TH_CHECK_EQ_INT(insert_bb(&c, bb, &rep, NULL, 0), GRPC_STATUS_OK);
  grpc_byte_buffer_destroy(bb);
  TH_CHECK_EQ_INT(rep.inserted, 8);

  shape sh = shape_ok(8);
  sh.rows[2] = 7; /* obs one row short */
  expect_bad(&c, "online", &sh, "columns.obs", "obs of 7 rows for n = 8");
  sh = shape_ok(8);
  sh.rows[3] = 9;
  expect_bad(&c, "online", &sh, "columns.action", "action of 9 rows for n = 8");
  sh = shape_ok(8);
  sh.rows[10] = -1; /* weight_version missing */
  expect_bad(&c, "online", &sh, "columns.weight_version", "weight_version missing");
  sh = shape_ok(8);
  sh.n_field = -1; /* no n at all: n = 0 and every column is too long */
  expect_bad(&c, "online", &sh, "columns.obs", "columns without n");
  sh = shape_ok(1025);
  expect_bad(&c, "online", &sh, "exceed the bound", "n over the bound");
  sh = shape_ok(2);
  sh.n_field = 1u << 30;
  expect_bad(&c, "online", &sh, "exceed the bound", "huge n with small columns");
  static const char *const fname[7] = {"", "", "obs", "action", "reward", "discount", "next_obs"};
  for (int col = 2; col <= 6; col++) {
    for (int inf = 0; inf < 2; inf++) {
      sh = shape_ok(8);
      sh.poison_col = col;
      sh.inf = inf;
      char needle[64], what[64];
      snprintf(needle, sizeof needle, "(columns row 1): %s[0] = %s", fname[col], inf ? "-inf" : "nan");
      snprintf(what, sizeof what, "%s in %s", inf ? "-Inf" : "NaN", fname[col]);
      expect_bad(&c, "online", &sh, needle, what);
    }
  }
  sh = shape_ok(8);
  sh.wrong_wt = 1;
  expect_bad(&c, "online", &sh, "malformed ItemColumns", "obs with a wrong wire type");
  sh = shape_ok(8);
  expect_bad(&c, "nosuch", &sh, "nosuch", "unknown table");
  /* A bad row deep in a message big enough to arrive in several slices (~94 kB): refused,
   * named, nothing of it stored. */
  sh = shape_ok(1000);
  sh.poison_col = 6;
  sh.prow = 777;
  expect_bad(&c, "online", &sh, "Insert item 777 (columns row 777): next_obs[0] = nan", "NaN in row 777 of 1000");
  sh.poison_col = 3;
  sh.inf = 1;
  sh.prow = 998;
  expect_bad(&c, "online", &sh, "(columns row 998): action[0] = -inf", "-Inf in row 998 of 1000");
  /* Nothing of the refused messages was stored, and the shard still serves. */
  TH_CHECK_EQ_INT(online_size(&c), 8);
  ok = shape_ok(8);
  /* seqs 5000.. again: all duplicates, proving the insert path still runs */
  bb = shaped("online", &ok);
  TH_CHECK_EQ_INT(insert_bb(&c, bb, &rep, NULL, 0), GRPC_STATUS_OK);
  grpc_byte_buffer_destroy(bb);
  TH_CHECK_EQ_INT(rep.duplicates, 8);
  /* A good 1000-row message (several slices): 992 new rows, and every sampled row holds exactly
   * the values its seq was sent with. */
  ok = shape_ok(1000);
  bb = shaped("online", &ok);
  TH_CHECK_EQ_INT(insert_bb(&c, bb, &rep, NULL, 0), GRPC_STATUS_OK);
  grpc_byte_buffer_destroy(bb);
  TH_CHECK_EQ_INT(rep.inserted, 992);
  TH_CHECK_EQ_INT(online_size(&c), 1000);
  rc_batch b;
  rc_batch_init(&b, 256, OBS, ACT);
  TH_CHECK_EQ_INT(sample_bb(&c, 256, 1, &b), GRPC_STATUS_OK);
  int wrong = 0;
  for (int k = 0; k < b.n; k++) {
    long i = (long)b.seq[k] - 5000;
    if (i < 0 || i >= 1000) {
      wrong++;
      continue;
    }
    for (int j = 0; j < OBS; j++) {
      wrong += b.obs[k * OBS + j] != (float)(i * OBS + j) * 0.25f;
      wrong += b.next_obs[k * OBS + j] != (float)(i * OBS + j) * 0.25f;
    }
    for (int j = 0; j < ACT; j++) wrong += b.action[k * ACT + j] != (float)(i * ACT + j) * 0.25f;
    wrong += b.reward[k] != (float)i * 0.25f || b.discount[k] != 0.5f;
  }
  TH_CHECK_MSG(b.n == 256 && wrong == 0, "%d wrong values in %d sampled rows of the 1000-row message", wrong, b.n);
  rc_batch_free(&b);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
}

/* ---- a shard that does not read columns (an older ibrl-replay): acknowledges 0 items ---- */

static int old_insert(void *ctx, rpc_call_info *info, const grpc_byte_buffer *msg, rpc_reply *rep) {
  (void)ctx, (void)info;
  if (msg == NULL) { /* end of stream: every message's items field was empty, so none counted */
    ibrl_InsertReply r = ibrl_InsertReply_init_zero;
    IB_CHECK(wire_encode(&rep->bb, ibrl_InsertReply_fields, &r) == IB_OK);
  }
  return 0;
}

static void old_info(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req, rpc_reply *rep) {
  (void)ctx, (void)info, (void)req;
  ibrl_InfoReply *r = ib_xcalloc(1, sizeof *r);
  r->obs_dim = OBS;
  r->act_dim = ACT;
  r->tables_count = 1;
  snprintf(r->tables[0].name, sizeof r->tables[0].name, "online");
  r->tables[0].kind = 1;
  r->tables[0].size = r->tables[0].capacity = 1000;
  IB_CHECK(wire_encode(&rep->bb, ibrl_InfoReply_fields, r) == IB_OK);
  free(r);
}

static void test_writer_refuses_uncounted_ack(void) {
  rpc_method m[2] = {{WIRE_PATH_INSERT, RPC_CLIENT_STREAM, NULL, old_insert, NULL},
                     {WIRE_PATH_INFO, RPC_UNARY, old_info, NULL, NULL}};
  rpc_server_opts so = {"127.0.0.1", 0, 2, 16L * 1024 * 1024, NULL, NULL, NULL, 0};
  rpc_server *srv = NULL;
  IB_CHECK(rpc_server_create(&srv, &so, m, 2) == IB_OK);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(srv));
  rc_opts o = {0};
  o.shards = target;
  o.deadline_ms = 5000;
  rc_client *c = NULL;
  IB_CHECK(rc_client_open(&c, &o) == IB_OK);
  rc_writer *w = NULL;
  IB_CHECK(rc_writer_open(&w, c, "online", 7, 0, 0) == IB_OK);
  rc_batch b;
  rc_batch_init(&b, 20, OBS, ACT);
  fill_rows(&b, 20, 7, 0, 11);
  int rc = rc_writer_write(w, &b);
  if (rc == IB_OK) rc = rc_writer_flush(w, -1);
  TH_CHECK_MSG(rc == IB_EPROTO, "flush against a shard that counts nothing returned %d (%s)", rc, ib_errmsg());
  TH_CHECK_MSG(strstr(ib_errmsg(), "acknowledged 0 of 20") != NULL, "message: %s", ib_errmsg());
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  TH_CHECK_MSG(st.acked == 0, "%llu items counted as acknowledged", (unsigned long long)st.acked);
  rc_writer_close(w);
  rc_batch_free(&b);
  rc_client_close(c);
  rpc_server_destroy(srv);
}

static const th_case cases[] = {
    {"codec: columns survive any slicing, truncation and corruption is refused", test_codec_slices},
    {"codec: NaN/Inf straddling two slices is found and named", test_codec_nan_straddling},
    {"codec: a column of the wrong length is refused before it is copied", test_codec_refuse_before_copy},
    {"columns and items store and sample identical rows", test_columns_equal_items},
    {"columns survive WAL replay and checkpoint restore", test_columns_persist},
    {"malformed columns: INVALID_ARGUMENT, the shard keeps serving", test_columns_malformed},
    {"a shard that counts fewer items than sent is an error, not an acknowledgement", test_writer_refuses_uncounted_ack},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  grpc_init();
  int rc = th_main(argc, argv, cases);
  grpc_shutdown_blocking();
  return rc;
}
