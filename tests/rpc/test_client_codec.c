/* test_client_codec.c: the replay client's hand codec of InsertRequest / SampleReply against
 * nanopb (the reference implementation of proto/ibrl.proto), in both directions, plus what a
 * conforming protobuf parser must accept (unpacked and split packed floats, unknown fields,
 * any field order) and must refuse without reading out of bounds (every truncation, random
 * byte corruption, arrays of the wrong size, more items than asked for). No network. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>

#include "ib.h"
#include "replay_client.h"
#include "rng.h"
#include "rpc_testutil.h"
#include "th.h"
#include "wire.h"

#define OD 5
#define AD 3
#define N 7

static void fill_random(rc_batch *b, uint64_t seed) {
  rng r;
  rng_seed(&r, seed, "test", 0, "codec");
  b->n = b->cap;
  for (int i = 0; i < b->n * b->obs_dim; i++) b->obs[i] = rng_normal(&r), b->next_obs[i] = rng_normal(&r);
  for (int i = 0; i < b->n * b->act_dim; i++) b->action[i] = 2 * rng_uniform(&r) - 1;
  for (int i = 0; i < b->n; i++) {
    b->reward[i] = i == 1 ? 0.0f : rng_normal(&r); /* a default value in the mix */
    b->discount[i] = i % 3 ? 0.99f : 0.0f;
    b->proposer[i] = (uint8_t)(i % 3);
    b->actor_id[i] = i == 2 ? UINT32_MAX : (uint32_t)rng_u64(&r);
    b->seq[i] = i == 3 ? 0 : rng_u64(&r) >> (i * 5);
    b->weight_version[i] = (uint64_t)i * 1000000007ull;
    b->episode_end[i] = i % 2;
    b->episode_success[i] = i % 4 == 1;
  }
}

/* nanopb sink: collects decoded items into a batch. */
static int put_into(void *arg, size_t i, const ibrl_Item *it) {
  rc_batch *b = arg;
  if ((int)i >= b->cap || it->obs_count != (pb_size_t)b->obs_dim || it->next_obs_count != (pb_size_t)b->obs_dim ||
      it->action_count != (pb_size_t)b->act_dim)
    return ib_fail(IB_EMISMATCH, "item %zu sizes", i);
  memcpy(b->obs + i * OD, it->obs, OD * 4);
  memcpy(b->next_obs + i * OD, it->next_obs, OD * 4);
  memcpy(b->action + i * AD, it->action, AD * 4);
  b->reward[i] = it->reward;
  b->discount[i] = it->discount;
  b->proposer[i] = (uint8_t)it->proposer;
  b->actor_id[i] = it->actor_id;
  b->seq[i] = it->seq;
  b->weight_version[i] = it->weight_version;
  b->episode_end[i] = it->episode_end;
  b->episode_success[i] = it->episode_success;
  b->n = (int)i + 1;
  return 0;
}

static void get_from(void *arg, size_t i, ibrl_Item *it) {
  const rc_batch *b = arg;
  *it = (ibrl_Item)ibrl_Item_init_zero;
  it->obs_count = OD;
  memcpy(it->obs, b->obs + i * OD, OD * 4);
  it->next_obs_count = OD;
  memcpy(it->next_obs, b->next_obs + i * OD, OD * 4);
  it->action_count = AD;
  memcpy(it->action, b->action + i * AD, AD * 4);
  it->reward = b->reward[i];
  it->discount = b->discount[i];
  it->proposer = b->proposer[i];
  it->actor_id = b->actor_id[i];
  it->seq = b->seq[i];
  it->weight_version = b->weight_version[i];
  it->episode_end = b->episode_end[i];
  it->episode_success = b->episode_success[i];
}

/* Rows a[ia] and b[ib] carry the same item (bitwise floats). */
static int same_row(const rc_batch *a, int ia, const rc_batch *b, int ib) {
  return !memcmp(a->obs + ia * OD, b->obs + ib * OD, OD * 4) && !memcmp(a->next_obs + ia * OD, b->next_obs + ib * OD, OD * 4) &&
         !memcmp(a->action + ia * AD, b->action + ib * AD, AD * 4) && !memcmp(&a->reward[ia], &b->reward[ib], 4) &&
         !memcmp(&a->discount[ia], &b->discount[ib], 4) && a->proposer[ia] == b->proposer[ib] &&
         a->actor_id[ia] == b->actor_id[ib] && a->seq[ia] == b->seq[ib] && a->weight_version[ia] == b->weight_version[ib] &&
         a->episode_end[ia] == b->episode_end[ib] && a->episode_success[ia] == b->episode_success[ib];
}

static grpc_byte_buffer *bb_of(const uint8_t *p, size_t n) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)p, n);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

static size_t flat(uint8_t *out, size_t cap, grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  IB_CHECK(grpc_byte_buffer_reader_init(&r, bb));
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  size_t n = GRPC_SLICE_LENGTH(s);
  IB_CHECK(n <= cap);
  memcpy(out, GRPC_SLICE_START_PTR(s), n);
  grpc_slice_unref(s);
  return n;
}

/* A nanopb-encoded SampleReply of all rows of b. */
static grpc_byte_buffer *nanopb_sample_reply(const rc_batch *b, uint32_t n_demo) {
  ibrl_Item *scratch = malloc(sizeof *scratch);
  ibrl_SampleReply rep = ibrl_SampleReply_init_zero;
  wire_items_src src = {(size_t)b->n, get_from, (void *)b, scratch};
  wire_items_set_src(&rep.items, &src);
  rep.n_demo = n_demo;
  rep.n_online = (uint32_t)b->n - n_demo;
  rep.demo_size = 12345678901ull;
  rep.online_size = 42;
  grpc_byte_buffer *bb = NULL;
  IB_CHECK(wire_encode(&bb, ibrl_SampleReply_fields, &rep) == IB_OK);
  free(scratch);
  return bb;
}

static void test_insert_matches_nanopb(void) {
  rc_batch b, got;
  rc_batch_init(&b, N, OD, AD);
  rc_batch_init(&got, N, OD, AD);
  fill_random(&b, 1);
  grpc_byte_buffer *bb = rc__encode_insert(&b, 2, N, "demo");
  ibrl_Item *scratch = malloc(sizeof *scratch);
  ibrl_InsertRequest req = ibrl_InsertRequest_init_zero;
  wire_items_sink sink = {put_into, &got, scratch, N, 0};
  wire_items_set_sink(&req.items, &sink);
  TH_CHECK_MSG(wire_decode(&req, ibrl_InsertRequest_fields, bb, "InsertRequest") == IB_OK, "%s", ib_errmsg());
  TH_CHECK(strcmp(req.table, "demo") == 0);
  TH_CHECK_EQ_INT(sink.n, N - 2);
  for (int i = 0; i < N - 2; i++) TH_CHECK_MSG(same_row(&b, i + 2, &got, i), "row %d differs", i);
  grpc_byte_buffer_destroy(bb);
  /* An empty range is a message with only the table. */
  bb = rc__encode_insert(&b, 3, 3, "online");
  req = (ibrl_InsertRequest)ibrl_InsertRequest_init_zero;
  wire_items_set_sink(&req.items, &sink);
  TH_CHECK(wire_decode(&req, ibrl_InsertRequest_fields, bb, "InsertRequest") == IB_OK);
  TH_CHECK_EQ_INT(sink.n, 0);
  TH_CHECK(strcmp(req.table, "online") == 0);
  grpc_byte_buffer_destroy(bb);
  free(scratch);
  rc_batch_free(&b);
  rc_batch_free(&got);
}

static void test_sample_reply_from_nanopb(void) {
  rc_batch b, got;
  rc_batch_init(&b, N, OD, AD);
  rc_batch_init(&got, N + 4, OD, AD);
  fill_random(&b, 2);
  grpc_byte_buffer *bb = nanopb_sample_reply(&b, 3);
  rc__reply_info info;
  /* Demo items 0..2 go to rows 1..3, online items 3..6 to rows 6..9. */
  int rc = rc__decode_sample_reply(&got, 1, 3, 6, N, bb, &info, "test");
  TH_CHECK_MSG(rc == IB_OK, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(info.n_items, N);
  TH_CHECK_EQ_INT(info.n_demo, 3);
  TH_CHECK_EQ_INT(info.n_online, N - 3);
  TH_CHECK(info.demo_size == 12345678901ull);
  TH_CHECK_EQ_INT(info.online_size, 42);
  for (int i = 0; i < N; i++) {
    int row = i < 3 ? 1 + i : 6 + (i - 3);
    TH_CHECK_MSG(same_row(&b, i, &got, row), "item %d (row %d) differs", i, row);
  }
  /* The same bytes split into three slices (as the transport delivers big messages). */
  {
    static uint8_t flatb[8192];
    size_t fl = flat(flatb, sizeof flatb, bb);
    grpc_slice parts[3] = {grpc_slice_from_copied_buffer((const char *)flatb, 7),
                           grpc_slice_from_copied_buffer((const char *)flatb + 7, fl / 2 - 7),
                           grpc_slice_from_copied_buffer((const char *)flatb + fl / 2, fl - fl / 2)};
    grpc_byte_buffer *multi = grpc_raw_byte_buffer_create(parts, 3);
    for (int k = 0; k < 3; k++) grpc_slice_unref(parts[k]);
    rc_batch got2;
    rc_batch_init(&got2, N, OD, AD);
    rc = rc__decode_sample_reply(&got2, 0, 3, 3, N, multi, &info, "test");
    TH_CHECK_MSG(rc == IB_OK, "%s", ib_errmsg());
    TH_CHECK_EQ_INT(info.n_items, N);
    for (int i = 0; i < N; i++) TH_CHECK_MSG(same_row(&b, i, &got2, i), "multi-slice item %d differs", i);
    rc_batch_free(&got2);
    grpc_byte_buffer_destroy(multi);
  }
  /* Asking for fewer items than the reply holds is refused. */
  rc = rc__decode_sample_reply(&got, 0, 0, 0, N - 1, bb, &info, "test");
  TH_CHECK_EQ_INT(rc, IB_EPROTO);
  TH_CHECK(strstr(ib_errmsg(), "more than") != NULL);
  /* Items wider than the batch: a dims mismatch, named. */
  rc_batch narrow;
  rc_batch_init(&narrow, N, OD - 1, AD);
  rc = rc__decode_sample_reply(&narrow, 0, 0, 0, N, bb, &info, "test");
  TH_CHECK_EQ_INT(rc, IB_EMISMATCH);
  TH_CHECK_MSG(strstr(ib_errmsg(), "obs") != NULL && strstr(ib_errmsg(), "HINT") != NULL, "%s", ib_errmsg());
  rc_batch_free(&narrow);
  rc_batch wide;
  rc_batch_init(&wide, N, OD, AD + 2);
  rc = rc__decode_sample_reply(&wide, 0, 0, 0, N, bb, &info, "test");
  TH_CHECK_EQ_INT(rc, IB_EMISMATCH);
  TH_CHECK(strstr(ib_errmsg(), "action") != NULL);
  rc_batch_free(&wide);
  grpc_byte_buffer_destroy(bb);
  TH_CHECK_EQ_INT(rc__decode_sample_reply(&got, 0, 0, 0, N, NULL, &info, "test"), IB_EPROTO);
  /* An empty message is a valid reply with no items. */
  bb = bb_of((const uint8_t *)"", 0);
  TH_CHECK(rc__decode_sample_reply(&got, 0, 0, 0, N, bb, &info, "test") == IB_OK);
  TH_CHECK_EQ_INT(info.n_items, 0);
  grpc_byte_buffer_destroy(bb);
  rc_batch_free(&b);
  rc_batch_free(&got);
}

/* One Item written the unusual (but legal) way: unpacked obs, action packed in two chunks,
 * fields out of order, unknown fields of every wire type, defaults omitted. */
static void test_parser_accepts_legal_variants(void) {
  uint8_t item[512], msg[600];
  uint8_t *p = item;
  float obs[OD] = {1, 2, 3, 4, 5}, nobs[OD] = {-1, -2, -3, -4, -5}, act[AD] = {0.5f, -0.5f, 0.25f};
  *p++ = 0x38, *p++ = 0x07;                  /* actor_id = 7 (before the arrays) */
  *p++ = (12 << 3) | 0, *p++ = 0x96, *p++ = 0x01; /* unknown varint field 12 */
  for (int j = 0; j < OD; j++) {
    *p++ = 0x0D; /* obs, field 1, wire type 5 (unpacked) */
    memcpy(p, &obs[j], 4), p += 4;
  }
  *p++ = 0x12, *p++ = 4, memcpy(p, &act[0], 4), p += 4;      /* action chunk 1 */
  *p++ = 0x12, *p++ = 8, memcpy(p, &act[1], 8), p += 8;      /* action chunk 2 */
  *p++ = (13 << 3) | 2, *p++ = 3, *p++ = 'a', *p++ = 'b', *p++ = 'c'; /* unknown bytes field 13 */
  *p++ = (14 << 3) | 1, memset(p, 0xAB, 8), p += 8;          /* unknown fixed64 field 14 */
  *p++ = (15 << 3) | 5, memset(p, 0xCD, 4), p += 4;          /* unknown fixed32 field 15 */
  *p++ = 0x2A, *p++ = OD * 4, memcpy(p, nobs, OD * 4), p += OD * 4;
  *p++ = 0x40, p = (uint8_t *)memcpy(p, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10) + 10; /* seq = 2^64-1 */
  size_t il = (size_t)(p - item);
  uint8_t *q = msg;
  *q++ = 0x10, *q++ = 0x00;        /* n_demo = 0, before the items */
  *q++ = (9 << 3) | 2, *q++ = 0;   /* unknown empty field 9 */
  *q++ = 0xA0, *q++ = 0x01, *q++ = 5; /* unknown varint field 20 (a two-byte key) */
  *q++ = 0x0A, *q++ = (uint8_t)il; /* items */
  memcpy(q, item, il), q += il;
  *q++ = 0x18, *q++ = 0x01;        /* n_online = 1 */
  grpc_byte_buffer *bb = bb_of(msg, (size_t)(q - msg));
  rc_batch b;
  rc_batch_init(&b, 2, OD, AD);
  b.reward[0] = 9; /* must be reset to the default */
  rc__reply_info info;
  int rc = rc__decode_sample_reply(&b, 0, 0, 0, 2, bb, &info, "test");
  TH_CHECK_MSG(rc == IB_OK, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(info.n_items, 1);
  TH_CHECK_EQ_INT(info.n_online, 1);
  TH_CHECK(memcmp(b.obs, obs, sizeof obs) == 0);
  TH_CHECK(memcmp(b.next_obs, nobs, sizeof nobs) == 0);
  TH_CHECK(memcmp(b.action, act, sizeof act) == 0);
  TH_CHECK_EQ_INT(b.actor_id[0], 7);
  TH_CHECK(b.seq[0] == UINT64_MAX);
  TH_CHECK(b.reward[0] == 0 && b.discount[0] == 0 && b.proposer[0] == 0);
  grpc_byte_buffer_destroy(bb);
  /* Four action floats for act_dim 3 (as one packed chunk), or a fourth unpacked one: refused
   * as a dims mismatch naming the field; a packed length that is not a multiple of 4: malformed. */
  uint8_t bad[64];
  float four[4] = {0, 0, 0, 0};
  for (int variant = 0; variant < 3; variant++) {
    uint8_t *z = bad + 2;
    if (variant == 0) *z++ = 0x12, *z++ = 16, memcpy(z, four, 16), z += 16;
    if (variant == 1) {
      *z++ = 0x12, *z++ = 12, memcpy(z, four, 12), z += 12;
      *z++ = 0x15, memcpy(z, four, 4), z += 4;
    }
    if (variant == 2) *z++ = 0x12, *z++ = 6, memset(z, 0, 6), z += 6;
    bad[0] = 0x0A;
    bad[1] = (uint8_t)(z - bad - 2);
    bb = bb_of(bad, (size_t)(z - bad));
    rc = rc__decode_sample_reply(&b, 0, 0, 0, 2, bb, &info, "test");
    if (variant < 2) {
      TH_CHECK_EQ_INT(rc, IB_EMISMATCH);
      TH_CHECK_MSG(strstr(ib_errmsg(), "4 action") != NULL, "%s", ib_errmsg());
    } else {
      TH_CHECK_EQ_INT(rc, IB_EPROTO);
    }
    grpc_byte_buffer_destroy(bb);
  }
  rc_batch_free(&b);
}

static void test_truncation_and_corruption(void) {
  rc_batch b, got;
  rc_batch_init(&b, 3, OD, AD);
  rc_batch_init(&got, 3, OD, AD);
  fill_random(&b, 3);
  grpc_byte_buffer *full = nanopb_sample_reply(&b, 1);
  static uint8_t buf[8192];
  size_t n = flat(buf, sizeof buf, full);
  grpc_byte_buffer_destroy(full);
  rc__reply_info info;
  int accepted_short = 0;
  for (size_t len = 0; len < n; len++) {
    grpc_byte_buffer *bb = bb_of(buf, len);
    int rc = rc__decode_sample_reply(&got, 0, 1, 1, 3, bb, &info, "test");
    /* A strict prefix is refused, or it ends at a field boundary and is a shorter valid
     * message: then every item it has is intact. */
    if (rc == IB_OK) {
      accepted_short++;
      int ok = info.n_items <= 3;
      for (int i = 0; i < info.n_items && ok; i++) ok = same_row(&b, i, &got, i);
      TH_CHECK_MSG(ok, "prefix of %zu/%zu bytes accepted with damaged items", len, n);
    }
    grpc_byte_buffer_destroy(bb);
  }
  TH_CHECK(accepted_short >= 1 && accepted_short < 16);
  /* Random byte corruption: any result, but no out-of-bounds access (run under ASan). */
  rng r;
  rng_seed(&r, 9, "test", 0, "corrupt");
  int refused = 0;
  for (int k = 0; k < 2000; k++) {
    uint8_t tmp[8192];
    memcpy(tmp, buf, n);
    for (int m = 0; m < 3; m++) tmp[rng_below(&r, (uint32_t)n)] = (uint8_t)rng_u64(&r);
    grpc_byte_buffer *bb = bb_of(tmp, n);
    refused += rc__decode_sample_reply(&got, 0, 1, 1, 3, bb, &info, "test") != IB_OK;
    grpc_byte_buffer_destroy(bb);
  }
  TH_CHECK(refused > 0);
  rc_batch_free(&b);
  rc_batch_free(&got);
}

static const th_case cases[] = {
    {"insert encoding matches nanopb", test_insert_matches_nanopb},
    {"sample reply from nanopb", test_sample_reply_from_nanopb},
    {"parser accepts legal variants", test_parser_accepts_legal_variants},
    {"truncation and corruption", test_truncation_and_corruption},
    {NULL, NULL},
};

int main(int argc, char **argv) { return rt_main(argc, argv, cases); }
