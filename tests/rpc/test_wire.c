/* test_wire.c: the message layer (common/rpc/wire.h) without a network: the hand-written Item
 * codec must produce exactly nanopb's bytes and decode what any protobuf peer may send (packed
 * or unpacked floats, any field order, unknown fields), refuse what exceeds the bounds, and the
 * byte-buffer and blob helpers must fail cleanly on bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "ib.h"
#include "rng.h"
#include "th.h"
#include "wire.h"

#define NITEMS 40

static ibrl_Item *g_items; /* [NITEMS] reference items */

/* Random items covering the cases where omission rules matter: zero scalars, empty arrays,
 * -0.0f (nonzero bits: must be written), NaN, full arrays, large varints. */
static void make_items(void) {
  g_items = ib_xcalloc(NITEMS, sizeof *g_items);
  rng r;
  rng_seed(&r, 7, "test", 0, "wire");
  for (int i = 0; i < NITEMS; i++) {
    ibrl_Item *it = &g_items[i];
    int full = i == 1;
    it->obs_count = full ? 512 : (pb_size_t)(i % 5 == 0 ? 0 : 1 + rng_below(&r, 40));
    it->action_count = full ? 128 : (pb_size_t)(i % 7 == 0 ? 0 : 1 + rng_below(&r, 12));
    it->next_obs_count = full ? 512 : it->obs_count;
    for (pb_size_t j = 0; j < it->obs_count; j++) it->obs[j] = rng_normal(&r);
    for (pb_size_t j = 0; j < it->next_obs_count; j++) it->next_obs[j] = rng_normal(&r);
    for (pb_size_t j = 0; j < it->action_count; j++) it->action[j] = rng_uniform(&r) * 2 - 1;
    it->reward = i % 3 == 0 ? 0.0f : (i % 3 == 1 ? -0.0f : rng_normal(&r));
    it->discount = i % 4 == 0 ? 0.0f : 0.99f;
    if (i == 2) it->reward = NAN;
    it->proposer = (uint32_t)(i % 3);
    it->actor_id = i % 6 == 0 ? 0 : (uint32_t)rng_u64(&r);
    it->seq = i % 2 ? rng_u64(&r) : (uint64_t)i;
    it->weight_version = i % 5 ? (uint64_t)i * 1000 : 0;
    it->episode_end = i % 2 == 0;
    it->episode_success = i % 4 == 0;
  }
}

static void get_ref(void *arg, size_t i, ibrl_Item *it) {
  (void)arg;
  *it = g_items[i];
}

static grpc_byte_buffer *bb_from(const uint8_t *p, size_t n) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)p, n);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

static size_t bb_bytes(const grpc_byte_buffer *bb, uint8_t *out, size_t cap) {
  grpc_byte_buffer_reader r;
  IB_CHECK(grpc_byte_buffer_reader_init(&r, (grpc_byte_buffer *)bb));
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  size_t n = GRPC_SLICE_LENGTH(s);
  IB_CHECK(n <= cap);
  memcpy(out, GRPC_SLICE_START_PTR(s), n);
  grpc_slice_unref(s);
  return n;
}

static int items_equal(const ibrl_Item *a, const ibrl_Item *b) {
  return a->obs_count == b->obs_count && a->action_count == b->action_count && a->next_obs_count == b->next_obs_count &&
         memcmp(a->obs, b->obs, a->obs_count * 4) == 0 && memcmp(a->action, b->action, a->action_count * 4) == 0 &&
         memcmp(a->next_obs, b->next_obs, a->next_obs_count * 4) == 0 && memcmp(&a->reward, &b->reward, 4) == 0 &&
         memcmp(&a->discount, &b->discount, 4) == 0 && a->proposer == b->proposer && a->actor_id == b->actor_id &&
         a->seq == b->seq && a->weight_version == b->weight_version && a->episode_end == b->episode_end &&
         a->episode_success == b->episode_success;
}

/* ---- encode: same bytes as nanopb ---- */

static void test_encode_matches_nanopb(void) {
  static uint8_t fast[1 << 20], ref[1 << 20];
  ibrl_InsertRequest req = ibrl_InsertRequest_init_zero;
  snprintf(req.table, sizeof req.table, "online");
  ibrl_Item *scratch = ib_xmalloc(sizeof *scratch);
  wire_items_src src = {NITEMS, get_ref, NULL, scratch};
  wire_items_set_src(&req.items, &src);
  grpc_byte_buffer *bb = NULL;
  TH_CHECK_EQ_INT(wire_encode(&bb, ibrl_InsertRequest_fields, &req), IB_OK);
  size_t nf = bb_bytes(bb, fast, sizeof fast);
  grpc_byte_buffer_destroy(bb);

  /* Reference: the table field by nanopb, then each item as field 2 by nanopb's generic encoder. */
  ibrl_InsertRequest head = ibrl_InsertRequest_init_zero;
  snprintf(head.table, sizeof head.table, "online");
  pb_ostream_t os = pb_ostream_from_buffer(ref, sizeof ref);
  TH_CHECK(pb_encode(&os, ibrl_InsertRequest_fields, &head));
  for (int i = 0; i < NITEMS; i++) {
    size_t n = 0;
    TH_CHECK(pb_get_encoded_size(&n, ibrl_Item_fields, &g_items[i]));
    TH_CHECK(pb_encode_tag(&os, PB_WT_STRING, ibrl_InsertRequest_items_tag));
    TH_CHECK(pb_encode_varint(&os, n));
    TH_CHECK(pb_encode(&os, ibrl_Item_fields, &g_items[i]));
  }
  TH_CHECK_EQ_INT(nf, os.bytes_written);
  size_t first = 0;
  while (first < nf && first < os.bytes_written && fast[first] == ref[first]) first++;
  TH_CHECK_MSG(nf == os.bytes_written && first == nf, "encodings differ at byte %zu of %zu", first, nf);
  free(scratch);
}

/* ---- decode: round trip and foreign encodings ---- */

typedef struct collect {
  ibrl_Item *out; /* [NITEMS] */
} collect;

static int put_collect(void *arg, size_t i, const ibrl_Item *it) {
  collect *c = arg;
  if (i >= NITEMS) return 1;
  c->out[i] = *it;
  return 0;
}

static void test_roundtrip(void) {
  ibrl_InsertRequest req = ibrl_InsertRequest_init_zero;
  ibrl_Item *scratch = ib_xmalloc(sizeof *scratch);
  wire_items_src src = {NITEMS, get_ref, NULL, scratch};
  wire_items_set_src(&req.items, &src);
  grpc_byte_buffer *bb = NULL;
  TH_CHECK_EQ_INT(wire_encode(&bb, ibrl_InsertRequest_fields, &req), IB_OK);
  collect c = {ib_xcalloc(NITEMS, sizeof(ibrl_Item))};
  ibrl_InsertRequest got = ibrl_InsertRequest_init_zero;
  wire_items_sink sink = {put_collect, &c, scratch, NITEMS, 0};
  wire_items_set_sink(&got.items, &sink);
  TH_CHECK_EQ_INT(wire_decode(&got, ibrl_InsertRequest_fields, bb, "InsertRequest"), IB_OK);
  TH_CHECK_EQ_INT(sink.n, NITEMS);
  for (int i = 0; i < NITEMS; i++) TH_CHECK_MSG(items_equal(&c.out[i], &g_items[i]), "item %d differs after a round trip", i);
  /* One item fewer allowed than sent: "too many items". */
  sink.max_n = NITEMS - 1;
  wire_items_set_sink(&got.items, &sink);
  TH_CHECK_EQ_INT(wire_decode(&got, ibrl_InsertRequest_fields, bb, "InsertRequest"), IB_EPROTO);
  TH_CHECK_MSG(strstr(ib_errmsg(), "too many items") != NULL, "message: %s", ib_errmsg());
  grpc_byte_buffer_destroy(bb);
  free(c.out);
  free(scratch);
}

/* One item as a peer might send it: actor_id first, obs as three unpacked I32 fields, an
 * unknown varint field 15 and an unknown LEN field 16, reward last, action packed. */
static const uint8_t foreign_item[] = {
    0x38, 0x05,                         /* actor_id = 5 */
    0x0d, 0x00, 0x00, 0x80, 0x3f,       /* obs += 1.0 (unpacked) */
    0x78, 0x2a,                         /* field 15 varint 42 (unknown) */
    0x0d, 0x00, 0x00, 0x00, 0x40,       /* obs += 2.0 */
    0x82, 0x01, 0x02, 0xaa, 0xbb,       /* field 16 LEN 2 (unknown) */
    0x0d, 0x00, 0x00, 0x40, 0x40,       /* obs += 3.0 */
    0x12, 0x04, 0x00, 0x00, 0x80, 0xbf, /* action = [-1.0] packed */
    0x1d, 0x00, 0x00, 0x20, 0x41,       /* reward = 10.0 */
    0x40, 0x96, 0x01,                   /* seq = 150 */
};

static grpc_byte_buffer *wrap_items(const uint8_t *item, size_t n) {
  uint8_t buf[512];
  IB_CHECK(n < 120);
  buf[0] = 0x12; /* InsertRequest.items */
  buf[1] = (uint8_t)n;
  memcpy(buf + 2, item, n);
  return bb_from(buf, n + 2);
}

static void test_foreign_encoding(void) {
  ibrl_Item *scratch = ib_xmalloc(sizeof *scratch);
  collect c = {ib_xcalloc(NITEMS, sizeof(ibrl_Item))};
  grpc_byte_buffer *bb = wrap_items(foreign_item, sizeof foreign_item);
  ibrl_InsertRequest got = ibrl_InsertRequest_init_zero;
  wire_items_sink sink = {put_collect, &c, scratch, NITEMS, 0};
  wire_items_set_sink(&got.items, &sink);
  TH_CHECK_EQ_INT(wire_decode(&got, ibrl_InsertRequest_fields, bb, "InsertRequest"), IB_OK);
  grpc_byte_buffer_destroy(bb);
  TH_CHECK_EQ_INT(sink.n, 1);
  /* nanopb's generic decoder on the same bytes is the reference. */
  ibrl_Item *ref = ib_xcalloc(1, sizeof *ref);
  pb_istream_t is = pb_istream_from_buffer(foreign_item, sizeof foreign_item);
  TH_CHECK(pb_decode(&is, ibrl_Item_fields, ref));
  TH_CHECK_EQ_INT(ref->obs_count, 3);
  TH_CHECK(items_equal(&c.out[0], ref));
  TH_CHECK_EQ_INT(c.out[0].obs_count, 3);
  TH_CHECK_NEAR(c.out[0].obs[2], 3.0, 0);
  TH_CHECK_EQ_INT(c.out[0].actor_id, 5);
  TH_CHECK_EQ_INT(c.out[0].seq, 150);
  TH_CHECK_NEAR(c.out[0].reward, 10.0, 0);
  free(ref);
  free(c.out);
  free(scratch);
}

static void expect_bad(const uint8_t *item, size_t n, const char *needle, const char *what) {
  ibrl_Item *scratch = ib_xmalloc(sizeof *scratch);
  collect c = {ib_xcalloc(NITEMS, sizeof(ibrl_Item))};
  grpc_byte_buffer *bb = wrap_items(item, n);
  ibrl_InsertRequest got = ibrl_InsertRequest_init_zero;
  wire_items_sink sink = {put_collect, &c, scratch, NITEMS, 0};
  wire_items_set_sink(&got.items, &sink);
  int rc = wire_decode(&got, ibrl_InsertRequest_fields, bb, "InsertRequest");
  TH_CHECK_MSG(rc == IB_EPROTO, "%s: decoded (rc %d) but should fail", what, rc);
  TH_CHECK_MSG(strstr(ib_errmsg(), needle) != NULL, "%s: message '%s' lacks '%s'", what, ib_errmsg(), needle);
  grpc_byte_buffer_destroy(bb);
  free(c.out);
  free(scratch);
}

static void test_bad_items(void) {
  static const uint8_t odd_len[] = {0x0a, 0x03, 0x00, 0x00, 0x80};  /* packed floats, 3 bytes */
  expect_bad(odd_len, sizeof odd_len, "multiple of 4", "packed length 3");
  static const uint8_t reward_varint[] = {0x18, 0x01};               /* reward as a varint */
  expect_bad(reward_varint, sizeof reward_varint, "wrong wire type", "reward wire type");
  static const uint8_t truncated[] = {0x0a, 0x08, 0x00, 0x00, 0x80, 0x3f}; /* claims 8, has 4 */
  expect_bad(truncated, sizeof truncated, "", "truncated array");
  /* 129 unpacked action floats: over the bound of 128. */
  uint8_t over[129 * 5];
  for (int i = 0; i < 129; i++) {
    over[5 * i] = 0x15;
    memset(over + 5 * i + 1, 0, 4);
  }
  ibrl_Item *scratch = ib_xmalloc(sizeof *scratch);
  collect c = {ib_xcalloc(NITEMS, sizeof(ibrl_Item))};
  uint8_t buf[700];
  buf[0] = 0x12;
  buf[1] = 0x85; /* varint 645 = 0x85 0x05 */
  buf[2] = 0x05;
  memcpy(buf + 3, over, sizeof over);
  grpc_byte_buffer *bb = bb_from(buf, 3 + sizeof over);
  ibrl_InsertRequest got = ibrl_InsertRequest_init_zero;
  wire_items_sink sink = {put_collect, &c, scratch, NITEMS, 0};
  wire_items_set_sink(&got.items, &sink);
  TH_CHECK_EQ_INT(wire_decode(&got, ibrl_InsertRequest_fields, bb, "InsertRequest"), IB_EPROTO);
  TH_CHECK_MSG(strstr(ib_errmsg(), "array overflow") != NULL, "message: %s", ib_errmsg());
  grpc_byte_buffer_destroy(bb);
  free(c.out);
  free(scratch);
}

/* ---- byte buffers and blobs ---- */

static void test_null_and_blob(void) {
  ibrl_InfoRequest q = ibrl_InfoRequest_init_zero;
  TH_CHECK_EQ_INT(wire_decode(&q, ibrl_InfoRequest_fields, NULL, "InfoRequest"), IB_EPROTO);
  TH_CHECK(strstr(ib_errmsg(), "InfoRequest") != NULL);
  /* A blob round trip across a multi-slice buffer, then a sink too small for it. */
  enum { N = 300000 };
  uint8_t *blob = ib_xmalloc(N);
  for (size_t i = 0; i < N; i++) blob[i] = (uint8_t)(i * 7u + 1u);
  ibrl_PublishRequest pr = ibrl_PublishRequest_init_zero;
  pr.version = 9;
  wire_blob_src src = {blob, N};
  wire_blob_set_src(&pr.blob, &src);
  grpc_byte_buffer *one = NULL;
  TH_CHECK_EQ_INT(wire_encode(&one, ibrl_PublishRequest_fields, &pr), IB_OK);
  /* Re-split the encoding into 3 slices, as a large received message may be. */
  uint8_t *flat = ib_xmalloc(N + 64);
  size_t n = bb_bytes(one, flat, N + 64);
  grpc_byte_buffer_destroy(one);
  grpc_slice parts[3] = {grpc_slice_from_copied_buffer((const char *)flat, 10),
                         grpc_slice_from_copied_buffer((const char *)flat + 10, 100000),
                         grpc_slice_from_copied_buffer((const char *)flat + 100010, n - 100010)};
  grpc_byte_buffer *multi = grpc_raw_byte_buffer_create(parts, 3);
  for (int i = 0; i < 3; i++) grpc_slice_unref(parts[i]);
  ibrl_PublishRequest got = ibrl_PublishRequest_init_zero;
  wire_blob_sink sink = {NULL, 0, 0, N};
  wire_blob_set_sink(&got.blob, &sink);
  TH_CHECK_EQ_INT(wire_decode(&got, ibrl_PublishRequest_fields, multi, "PublishRequest"), IB_OK);
  TH_CHECK_EQ_INT(got.version, 9);
  TH_CHECK(sink.len == N && memcmp(sink.data, blob, N) == 0);
  wire_blob_sink small = {NULL, 0, 0, N - 1};
  got = (ibrl_PublishRequest)ibrl_PublishRequest_init_zero;
  wire_blob_set_sink(&got.blob, &small);
  TH_CHECK_EQ_INT(wire_decode(&got, ibrl_PublishRequest_fields, multi, "PublishRequest"), IB_EPROTO);
  TH_CHECK_MSG(strstr(ib_errmsg(), "blob too large") != NULL, "message: %s", ib_errmsg());
  grpc_byte_buffer_destroy(multi);
  free(sink.data);
  free(small.data);
  free(flat);
  free(blob);
  /* Status names and auth metadata. */
  TH_CHECK(strcmp(wire_status_name(GRPC_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED") == 0);
  TH_CHECK(strcmp(wire_status_name((grpc_status_code)99), "UNKNOWN_STATUS") == 0);
  wire_auth a;
  wire_auth_init(&a, "tok");
  TH_CHECK(a.set && grpc_slice_str_cmp(a.md.value, "Bearer tok") == 0);
  wire_auth_free(&a);
  wire_auth_init(&a, "");
  TH_CHECK(!a.set);
  wire_auth_free(&a);
}

static const th_case cases[] = {
    {"item encoding equals nanopb's", test_encode_matches_nanopb},
    {"item round trip", test_roundtrip},
    {"foreign encodings decode like nanopb", test_foreign_encoding},
    {"bad items are refused", test_bad_items},
    {"null buffer, blobs, auth", test_null_and_blob},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  grpc_init();
  make_items();
  int rc = th_main(argc, argv, cases);
  free(g_items);
  grpc_shutdown_blocking();
  return rc;
}
