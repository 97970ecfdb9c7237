/* test_replay_server.c: ibrl-replay over 127.0.0.1 (port 0), driven by a minimal C client
 * (rpc_testutil.h): insert/sample round trips and mixing ratios, deduplication, every bad-input
 * case (NaN, wrong size, unknown table, malformed bytes, oversized message, bad batch/fraction,
 * missing/wrong token, unknown method), health statuses, the rate limiter blocking and
 * releasing, checkpoint/restore across a restart, kill -9 with --durability wal, Params
 * long-polling, and the binary's flag handling. Each case starts its own server. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ib.h"
#include "rpc_testutil.h"
#include "th.h"
#include "wire.h"

#define OBS 6
#define ACT 4
#define TMO 5000

static rt_items items(uint32_t actor, uint64_t first, size_t n, uint32_t proposer) {
  rt_items it = {actor, first, n, OBS, ACT, -1, 0, proposer};
  return it;
}

static uint64_t table_size(const ibrl_InfoReply *r, const char *name) {
  for (pb_size_t i = 0; i < r->tables_count; i++)
    if (strcmp(r->tables[i].name, name) == 0) return r->tables[i].size;
  return UINT64_MAX;
}

/* ---- round trips and mixing ---- */

static void test_roundtrip_mix(void) {
  rt_server s;
  if (rt_shard_start(&s, NULL) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  ibrl_InsertReply rep;
  char det[512];
  rt_items d = items(7, 0, 100, 2), o = items(1, 0, 300, 1);
  TH_CHECK_EQ_INT(rt_insert(&c, "demo", &d, &rep, det, sizeof det, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(rep.inserted, 100);
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &o, &rep, det, sizeof det, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(rep.inserted, 300);
  TH_CHECK_EQ_INT(rep.received, 300);
  TH_CHECK_EQ_INT(rep.duplicates, 0);

  rt_sample *sm = ib_xcalloc(1, sizeof *sm);
  /* Fixed fractions give exact counts, demo rows first. */
  const double fr[] = {0.0, 0.25, 0.5, 1.0};
  for (size_t k = 0; k < IB_ARRAY_LEN(fr); k++) {
    TH_CHECK_EQ_INT(rt_sample_call(&c, 64, fr[k], sm, det, sizeof det, TMO), GRPC_STATUS_OK);
    uint32_t want = (uint32_t)lround(64 * fr[k]);
    TH_CHECK_EQ_INT(sm->n, 64);
    TH_CHECK_EQ_INT(sm->rep.n_demo, want);
    TH_CHECK_EQ_INT(sm->rep.n_online, 64 - want);
    int order_ok = 1, intact = 1;
    for (size_t i = 0; i < sm->n; i++) {
      int is_demo = sm->reward[i] >= 70000.0f;
      order_ok &= (i < want) == is_demo;
      order_ok &= sm->proposer[i] == (is_demo ? 2u : 1u);
      intact &= sm->intact[i];
    }
    TH_CHECK_MSG(order_ok, "fraction %.2f: demo rows must come first and carry proposer 2", fr[k]);
    TH_CHECK_MSG(intact, "fraction %.2f: a sampled item was corrupted in transit", fr[k]);
  }
  /* No fraction: proportional to sizes, 100 / 400 = 0.25 of the rows from demo on average. */
  uint64_t nd = 0, tot = 0;
  for (int r = 0; r < 20; r++) {
    TH_CHECK_EQ_INT(rt_sample_call(&c, 256, -1.0, sm, det, sizeof det, TMO), GRPC_STATUS_OK);
    nd += sm->rep.n_demo;
    tot += sm->n;
    TH_CHECK_EQ_INT(sm->rep.demo_size, 100);
    TH_CHECK_EQ_INT(sm->rep.online_size, 300);
  }
  /* 5120 draws, p = 0.25: sd = 0.006; 0.03 is 5 sd. */
  TH_CHECK_NEAR((double)nd / (double)tot, 0.25, 0.03);
  free(sm);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
}

static void test_dedup(void) {
  rt_server s;
  if (rt_shard_start(&s, NULL) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  ibrl_InsertReply rep;
  rt_items a = items(3, 0, 50, 1), b = items(3, 25, 50, 1);
  TH_CHECK_EQ_INT(rt_insert(&c, "", &a, &rep, NULL, 0, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(rep.inserted, 50);
  TH_CHECK_EQ_INT(rt_insert(&c, "", &a, &rep, NULL, 0, TMO), GRPC_STATUS_OK); /* a retried batch */
  TH_CHECK_EQ_INT(rep.inserted, 0);
  TH_CHECK_EQ_INT(rep.duplicates, 50);
  TH_CHECK_EQ_INT(rt_insert(&c, "", &b, &rep, NULL, 0, TMO), GRPC_STATUS_OK); /* half overlaps */
  TH_CHECK_EQ_INT(rep.inserted, 25);
  TH_CHECK_EQ_INT(rep.duplicates, 25);
  ibrl_InfoReply *info = ib_xcalloc(1, sizeof *info);
  TH_CHECK_EQ_INT(rt_info(&c, info, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(table_size(info, "online"), 75);
  TH_CHECK_EQ_INT(info->actors_count, 1);
  TH_CHECK_EQ_INT(info->actors[0].actor_id, 3);
  TH_CHECK_EQ_INT(info->actors[0].last_seq, 74);
  TH_CHECK_EQ_INT(info->actors[0].inserted, 75);
  TH_CHECK_EQ_INT(info->actors[0].duplicates, 75);
  free(info);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
}

/* ---- bad input ---- */

static void expect(grpc_status_code got, grpc_status_code want, const char *det, const char *needle, const char *what) {
  TH_CHECK_MSG(got == want, "%s: status %s, want %s (%s)", what, wire_status_name(got), wire_status_name(want), det);
  TH_CHECK_MSG(needle == NULL || strstr(det, needle) != NULL, "%s: message '%s' lacks '%s'", what, det, needle);
}

static void test_bad_input(void) {
  rt_server s;
  const char *extra[] = {"--max-message-mb", "1", NULL};
  if (rt_shard_start(&s, extra) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  char det[512];
  rt_items it = items(1, 0, 4, 1);
  it.nan_at = 2;
  expect(rt_insert(&c, "online", &it, NULL, det, sizeof det, TMO), GRPC_STATUS_INVALID_ARGUMENT, det, "not finite", "NaN obs");
  it = items(1, 0, 4, 1);
  it.wrong_obs_n = OBS + 1;
  expect(rt_insert(&c, "online", &it, NULL, det, sizeof det, TMO), GRPC_STATUS_INVALID_ARGUMENT, det, "obs", "wrong obs size");
  it = items(1, 0, 4, 1);
  expect(rt_insert(&c, "nosuch", &it, NULL, det, sizeof det, TMO), GRPC_STATUS_INVALID_ARGUMENT, det, "nosuch", "unknown table");

  /* Raw bytes that are not a protobuf message: field 2 (items) claims 100 bytes, 3 follow. */
  static const uint8_t junk[] = {0x12, 0x64, 0x01, 0x02, 0x03};
  const char *const paths[] = {WIRE_PATH_INSERT, WIRE_PATH_SAMPLE, WIRE_PATH_PUBLISH};
  grpc_byte_buffer *bb;
  for (size_t k = 0; k < IB_ARRAY_LEN(paths); k++) { /* a fresh buffer per call: sending may consume it */
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)junk, sizeof junk);
    bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    expect(rt_call(&c, paths[k], &bb, 1, NULL, det, sizeof det, TMO), GRPC_STATUS_INVALID_ARGUMENT, det,
           "malformed", paths[k]);
    grpc_byte_buffer_destroy(bb);
  }

  /* Oversized: 2 MB against --max-message-mb 1. */
  size_t big = 2u << 20;
  grpc_slice bs = grpc_slice_malloc(big);
  memset(GRPC_SLICE_START_PTR(bs), 0, big);
  bb = grpc_raw_byte_buffer_create(&bs, 1);
  grpc_slice_unref(bs);
  expect(rt_call(&c, WIRE_PATH_SAMPLE, &bb, 1, NULL, det, sizeof det, TMO), GRPC_STATUS_RESOURCE_EXHAUSTED, det,
         NULL, "oversized message");
  grpc_byte_buffer_destroy(bb);

  rt_sample *sm = ib_xcalloc(1, sizeof *sm);
  expect(rt_sample_call(&c, 8, -1, sm, det, sizeof det, TMO), GRPC_STATUS_FAILED_PRECONDITION, det, "empty",
         "sample from empty tables");
  it = items(1, 0, 4, 1);
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &it, NULL, det, sizeof det, TMO), GRPC_STATUS_OK);
  expect(rt_sample_call(&c, 0, -1, sm, det, sizeof det, TMO), GRPC_STATUS_INVALID_ARGUMENT, det, "batch_size",
         "batch 0");
  expect(rt_sample_call(&c, 100000, -1, sm, det, sizeof det, TMO), GRPC_STATUS_INVALID_ARGUMENT, det, "batch_size",
         "batch too big");
  expect(rt_sample_call(&c, 8, 1.5, sm, det, sizeof det, TMO), GRPC_STATUS_INVALID_ARGUMENT, det, "demo_fraction",
         "fraction 1.5");
  expect(rt_sample_call(&c, 8, NAN, sm, det, sizeof det, TMO), GRPC_STATUS_INVALID_ARGUMENT, det, "demo_fraction",
         "fraction NaN");
  /* Unknown method: UNIMPLEMENTED, not a hang. */
  bb = rt_insert_msg("online", &it);
  expect(rt_call(&c, "/ibrl.Replay/Nope", &bb, 1, NULL, det, sizeof det, TMO), GRPC_STATUS_UNIMPLEMENTED, det,
         "Nope", "unknown method");
  grpc_byte_buffer_destroy(bb);
  /* Checkpoint without a directory. */
  ibrl_CheckpointRequest cr = ibrl_CheckpointRequest_init_zero;
  IB_CHECK(wire_encode(&bb, ibrl_CheckpointRequest_fields, &cr) == IB_OK);
  expect(rt_call(&c, WIRE_PATH_CHECKPOINT, &bb, 1, NULL, det, sizeof det, TMO), GRPC_STATUS_FAILED_PRECONDITION,
         det, "ckpt-dir", "checkpoint without dir");
  grpc_byte_buffer_destroy(bb);
  /* A full demo table (capacity 1000) refuses the batch as a whole; more than 1024 items in one
   * message are refused before anything is stored. */
  rt_items demo = items(8, 0, 1001, 2);
  expect(rt_insert(&c, "demo", &demo, NULL, det, sizeof det, TMO), GRPC_STATUS_RESOURCE_EXHAUSTED, det, "demo",
         "demo table full");
  rt_items many = items(8, 0, 1025, 1);
  expect(rt_insert(&c, "online", &many, NULL, det, sizeof det, TMO), GRPC_STATUS_INVALID_ARGUMENT, det,
         "too many items", "1025 items in one message");
  /* Still serving after all that. */
  TH_CHECK_EQ_INT(rt_sample_call(&c, 8, -1, sm, det, sizeof det, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(sm->n, 8);
  free(sm);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
}

/* ---- encodings the server must accept ---- */

/* The server reads items in place from the received slices; items split across slices, and items
 * a foreign encoder wrote with unpacked floats (legal protobuf), must arrive intact all the same. */
static void test_item_encodings(void) {
  rt_server s;
  if (rt_shard_start(&s, NULL) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  char det[512];
  /* One item of actor 77, k = 3, written by hand: obs as OBS separate fixed32 fields, action and
   * next_obs packed, the scalars after them, and an unknown field that must be skipped. */
  float v = 77 * 1e4f + 3;
  uint8_t buf[512], *p = buf;
  uint8_t body[400], *q = body;
  for (int j = 0; j < OBS; j++) {
    float x = v + (float)j;
    *q++ = 0x0D, memcpy(q, &x, 4), q += 4;
  }
  *q++ = 0x12, *q++ = ACT * 4;
  for (int j = 0; j < ACT; j++) {
    float x = -v - (float)j;
    memcpy(q, &x, 4), q += 4;
  }
  *q++ = 0x2A, *q++ = OBS * 4;
  for (int j = 0; j < OBS; j++) {
    float x = v + 100 + (float)j;
    memcpy(q, &x, 4), q += 4;
  }
  float disc = 0.5f;
  *q++ = 0x1D, memcpy(q, &v, 4), q += 4;
  *q++ = 0x25, memcpy(q, &disc, 4), q += 4;
  *q++ = 0x30, *q++ = 1;          /* proposer RL */
  *q++ = 0x38, *q++ = 77;         /* actor_id */
  *q++ = 0x40, *q++ = 3;          /* seq */
  *q++ = 0xF8, *q++ = 0x07, *q++ = 9; /* field 127, varint: unknown */
  *p++ = 0x0A, *p++ = 6, memcpy(p, "online", 6), p += 6;
  *p++ = 0x12, *p++ = (uint8_t)(q - body);
  TH_CHECK(q - body < 128);
  memcpy(p, body, (size_t)(q - body)), p += q - body;
  grpc_slice sl = grpc_slice_from_copied_buffer((const char *)buf, (size_t)(p - buf));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  grpc_byte_buffer *resp = NULL;
  grpc_status_code st = rt_call(&c, WIRE_PATH_INSERT, &bb, 1, &resp, det, sizeof det, TMO);
  TH_CHECK_MSG(st == GRPC_STATUS_OK, "unpacked item: %s: %s", wire_status_name(st), det);
  grpc_byte_buffer_destroy(bb);
  if (resp) grpc_byte_buffer_destroy(resp);
  rt_sample *sm = ib_xcalloc(1, sizeof *sm);
  TH_CHECK_EQ_INT(rt_sample_call(&c, 4, -1, sm, det, sizeof det, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(sm->n, 4);
  for (size_t i = 0; i < sm->n; i++) {
    TH_CHECK_MSG(sm->intact[i] && sm->reward[i] == v && sm->proposer[i] == 1, "row %zu: intact %d reward %g", i,
                 sm->intact[i], (double)sm->reward[i]);
  }
  /* 1000 items in one ~80 kB message: it arrives in several slices, so items straddle them. */
  rt_items many = items(5, 0, 1000, 1);
  ibrl_InsertReply r = ibrl_InsertReply_init_zero;
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &many, &r, det, sizeof det, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(r.inserted, 1000);
  TH_CHECK_EQ_INT(rt_sample_call(&c, 4000, -1, sm, det, sizeof det, TMO), GRPC_STATUS_OK);
  int intact = 0;
  for (size_t i = 0; i < sm->n; i++) intact += sm->intact[i];
  TH_CHECK_EQ_INT(intact, 4000);
  free(sm);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
}

static grpc_status_code health(rt_client *c, const char *service, int *status) {
  grpc_health_v1_HealthCheckRequest q = grpc_health_v1_HealthCheckRequest_init_zero;
  snprintf(q.service, sizeof q.service, "%s", service);
  grpc_byte_buffer *bb = NULL, *resp = NULL;
  IB_CHECK(wire_encode(&bb, grpc_health_v1_HealthCheckRequest_fields, &q) == IB_OK);
  grpc_status_code st = rt_call(c, WIRE_PATH_HEALTH_CHECK, &bb, 1, &resp, NULL, 0, TMO);
  grpc_byte_buffer_destroy(bb);
  *status = -1;
  if (st == GRPC_STATUS_OK) {
    grpc_health_v1_HealthCheckResponse r = grpc_health_v1_HealthCheckResponse_init_zero;
    IB_CHECK(wire_decode(&r, grpc_health_v1_HealthCheckResponse_fields, resp, "health") == IB_OK);
    *status = (int)r.status;
  }
  if (resp) grpc_byte_buffer_destroy(resp);
  return st;
}

static void test_token_and_health(void) {
  rt_server s;
  const char *extra[] = {"--token", "s3cret", NULL};
  if (rt_shard_start(&s, extra) != 0) return;
  rt_client none, wrong, right;
  rt_client_open(&none, s.target, NULL);
  rt_client_open(&wrong, s.target, "nope");
  rt_client_open(&right, s.target, "s3cret");
  char det[512];
  rt_items it = items(1, 0, 3, 1);
  expect(rt_insert(&none, "online", &it, NULL, det, sizeof det, TMO), GRPC_STATUS_UNAUTHENTICATED, det, "token",
         "no token");
  expect(rt_insert(&wrong, "online", &it, NULL, det, sizeof det, TMO), GRPC_STATUS_UNAUTHENTICATED, det, "token",
         "wrong token");
  ibrl_InfoReply *info = ib_xcalloc(1, sizeof *info);
  TH_CHECK_EQ_INT(rt_info(&none, info, TMO), GRPC_STATUS_UNAUTHENTICATED);
  TH_CHECK_EQ_INT(rt_insert(&right, "online", &it, NULL, det, sizeof det, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(rt_info(&right, info, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(table_size(info, "online"), 3);
  free(info);
  /* Health needs no token (probes carry none). */
  int hs;
  TH_CHECK_EQ_INT(health(&none, "", &hs), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(hs, 1);
  TH_CHECK_EQ_INT(health(&none, "ibrl.Replay", &hs), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(hs, 1);
  TH_CHECK_EQ_INT(health(&none, "no.such.Service", &hs), GRPC_STATUS_NOT_FOUND);
  rt_client_close(&none);
  rt_client_close(&wrong);
  rt_client_close(&right);
  rt_shard_stop_ok(&s);
}

/* ---- rate limiter ---- */

typedef struct delayed_insert {
  const char *target;
  int delay_ms;
  grpc_status_code st;
} delayed_insert;

static void *delayed_insert_main(void *arg) {
  delayed_insert *d = arg;
  usleep((useconds_t)d->delay_ms * 1000);
  rt_client c;
  rt_client_open(&c, d->target, NULL);
  rt_items it = items(9, 100, 10, 1);
  d->st = rt_insert(&c, "online", &it, NULL, NULL, 0, TMO);
  rt_client_close(&c);
  return NULL;
}

static grpc_status_code ratelimit(rt_client *c, ibrl_RateLimitRequest_Op op, ibrl_RateLimitReply *out) {
  ibrl_RateLimitRequest q = ibrl_RateLimitRequest_init_zero;
  q.op = op;
  grpc_byte_buffer *bb = NULL, *resp = NULL;
  IB_CHECK(wire_encode(&bb, ibrl_RateLimitRequest_fields, &q) == IB_OK);
  grpc_status_code st = rt_call(c, WIRE_PATH_RATELIMIT, &bb, 1, &resp, NULL, 0, TMO);
  grpc_byte_buffer_destroy(bb);
  if (st == GRPC_STATUS_OK) {
    *out = (ibrl_RateLimitReply)ibrl_RateLimitReply_init_zero;
    IB_CHECK(wire_decode(out, ibrl_RateLimitReply_fields, resp, "RateLimitReply") == IB_OK);
  }
  if (resp) grpc_byte_buffer_destroy(resp);
  return st;
}

static void test_rate_limiter(void) {
  rt_server s;
  /* spi 1, band [10-8, 10+8] = [2, 18]; sampling needs 10 online items first. */
  const char *extra[] = {"--samples-per-insert", "1", "--error-buffer", "8", "--min-size", "10",
                         "--max-block-ms", "1500", NULL};
  if (rt_shard_start(&s, extra) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  char det[512];
  rt_sample *sm = ib_xcalloc(1, sizeof *sm);
  rt_items few = items(9, 0, 5, 1);
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &few, NULL, det, sizeof det, TMO), GRPC_STATUS_OK);
  /* Below min size: a sample blocks until its own deadline. */
  double t0 = ib_now_s();
  expect(rt_sample_call(&c, 4, -1, sm, det, sizeof det, 300), GRPC_STATUS_DEADLINE_EXCEEDED, det, NULL,
         "sample below min size");
  TH_CHECK_MSG(ib_now_s() - t0 >= 0.25, "the sample returned after %.3f s; it should have waited", ib_now_s() - t0);
  /* With a long deadline, the server's cap (1.5 s) ends the wait: RESOURCE_EXHAUSTED. */
  expect(rt_sample_call(&c, 4, -1, sm, det, sizeof det, TMO), GRPC_STATUS_RESOURCE_EXHAUSTED, det, "rate limited",
         "sample capped");
  /* A blocked sample is released by an insert from another client. */
  delayed_insert d = {s.target, 300, GRPC_STATUS_UNKNOWN};
  pthread_t th;
  pthread_create(&th, NULL, delayed_insert_main, &d);
  t0 = ib_now_s();
  TH_CHECK_EQ_INT(rt_sample_call(&c, 4, -1, sm, det, sizeof det, 3000), GRPC_STATUS_OK);
  double waited = ib_now_s() - t0;
  pthread_join(th, NULL);
  TH_CHECK_EQ_INT(d.st, GRPC_STATUS_OK);
  TH_CHECK_MSG(waited >= 0.2, "sample passed after %.3f s, before the insert that released it", waited);
  TH_CHECK_EQ_INT(sm->n, 4);
  /* Inserts run ahead: I = 15, S = 4, cursor 11; 8 more inserts exceed 18 and block, first
   * until the client's deadline, then (long deadline) until the server's cap. The capped wait is
   * what the blocked-time check below relies on: it does not depend on network timing. */
  rt_items more = items(9, 200, 8, 1);
  expect(rt_insert(&c, "online", &more, NULL, det, sizeof det, 300), GRPC_STATUS_DEADLINE_EXCEEDED, det, NULL,
         "insert ahead of samples");
  expect(rt_insert(&c, "online", &more, NULL, det, sizeof det, TMO), GRPC_STATUS_RESOURCE_EXHAUSTED, det,
         "rate limited", "insert capped");
  ibrl_RateLimitReply rl;
  TH_CHECK_EQ_INT(ratelimit(&c, ibrl_RateLimitRequest_Op_GET, &rl), GRPC_STATUS_OK);
  TH_CHECK_MSG(rl.limiter.sample_blocked_s > 0.5, "Info: sample_blocked_s %.3f", rl.limiter.sample_blocked_s);
  TH_CHECK_MSG(rl.limiter.insert_blocked_s > 1.0, "Info: insert_blocked_s %.3f", rl.limiter.insert_blocked_s);
  TH_CHECK(rl.limiter.sample_timeouts >= 2);
  /* Paused, everything passes. */
  TH_CHECK_EQ_INT(ratelimit(&c, ibrl_RateLimitRequest_Op_PAUSE, &rl), GRPC_STATUS_OK);
  TH_CHECK(rl.limiter.paused);
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &more, NULL, det, sizeof det, 1000), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(ratelimit(&c, ibrl_RateLimitRequest_Op_RESUME, &rl), GRPC_STATUS_OK);
  TH_CHECK(!rl.limiter.paused);
  /* Inserts are ahead again (I = 23, S = 4). A retry of rows already stored (a writer's resend
   * after a timeout) stores nothing and does not wait; one that also holds new rows still does. */
  t0 = ib_now_s();
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &more, NULL, det, sizeof det, 300), GRPC_STATUS_OK);
  TH_CHECK_MSG(ib_now_s() - t0 < 0.25, "a resend of stored rows took %.3f s", ib_now_s() - t0);
  rt_items half = items(9, 204, 8, 1); /* seqs 204..211: 4 stored, 4 new */
  expect(rt_insert(&c, "online", &half, NULL, det, sizeof det, 300), GRPC_STATUS_DEADLINE_EXCEEDED, det, NULL,
         "insert of stored and new rows ahead of samples");
  TH_CHECK_EQ_INT(ratelimit(&c, ibrl_RateLimitRequest_Op_GET, &rl), GRPC_STATUS_OK);
  TH_CHECK_MSG(rl.limiter.inserts == 23, "the limiter counts %llu inserts, 23 stored",
               (unsigned long long)rl.limiter.inserts);
  free(sm);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
}

/* ---- persistence ---- */

static void test_checkpoint_restore(void) {
  char dir[256];
  rt_tmpdir(dir, sizeof dir, "ckpt");
  const char *extra[] = {"--ckpt-dir", dir, NULL};
  rt_server s;
  if (rt_shard_start(&s, extra) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  rt_items d = items(7, 0, 40, 2), o = items(2, 0, 120, 1);
  TH_CHECK_EQ_INT(rt_insert(&c, "demo", &d, NULL, NULL, 0, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &o, NULL, NULL, 0, TMO), GRPC_STATUS_OK);
  ibrl_CheckpointRequest cr = ibrl_CheckpointRequest_init_zero;
  grpc_byte_buffer *bb = NULL, *resp = NULL;
  IB_CHECK(wire_encode(&bb, ibrl_CheckpointRequest_fields, &cr) == IB_OK);
  TH_CHECK_EQ_INT(rt_call(&c, WIRE_PATH_CHECKPOINT, &bb, 1, &resp, NULL, 0, TMO), GRPC_STATUS_OK);
  ibrl_CheckpointReply crep = ibrl_CheckpointReply_init_zero;
  if (resp) {
    TH_CHECK(wire_decode(&crep, ibrl_CheckpointReply_fields, resp, "CheckpointReply") == IB_OK);
    grpc_byte_buffer_destroy(resp);
  }
  grpc_byte_buffer_destroy(bb);
  TH_CHECK_EQ_INT(crep.items, 160);
  /* 30 more after the explicit checkpoint: the SIGTERM checkpoint must keep them too. */
  rt_items o2 = items(2, 120, 30, 1);
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &o2, NULL, NULL, 0, TMO), GRPC_STATUS_OK);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);

  if (rt_shard_start(&s, extra) != 0) return;
  rt_client_open(&c, s.target, NULL);
  ibrl_InfoReply *info = ib_xcalloc(1, sizeof *info);
  TH_CHECK_EQ_INT(rt_info(&c, info, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(table_size(info, "demo"), 40);
  TH_CHECK_EQ_INT(table_size(info, "online"), 150);
  free(info);
  rt_sample *sm = ib_xcalloc(1, sizeof *sm);
  TH_CHECK_EQ_INT(rt_sample_call(&c, 200, 0.2, sm, NULL, 0, TMO), GRPC_STATUS_OK);
  int intact = 1;
  for (size_t i = 0; i < sm->n; i++) intact &= sm->intact[i];
  TH_CHECK_MSG(intact, "restored items differ from the inserted ones");
  free(sm);
  /* Dedup state survived: the same batch again is all duplicates. */
  ibrl_InsertReply rep;
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &o2, &rep, NULL, 0, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(rep.duplicates, 30);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);

  /* A checkpoint that cannot be restored is a setup error (exit 2, DEVELOPERS.md), as is a
   * --ckpt-dir that is a file: other dims than the checkpoint's, then a truncated checkpoint. */
  const char *other_dims[] = {"--obs-dim", "5", "--act-dim", "4", "--online-capacity", "5000", "--demo-capacity", "1000",
                              "--ckpt-dir", dir, NULL};
  TH_CHECK_EQ_INT(rt_run_binary(other_dims), 2);
  char ck[320];
  snprintf(ck, sizeof ck, "%s/store.ckpt", dir);
  TH_CHECK_MSG(truncate(ck, 100) == 0, "truncate %s", ck);
  const char *same_dims[] = {"--obs-dim", "6", "--act-dim", "4", "--online-capacity", "5000", "--demo-capacity", "1000",
                             "--ckpt-dir", dir, NULL};
  TH_CHECK_EQ_INT(rt_run_binary(same_dims), 2);
  const char *file_dir[] = {"--obs-dim", "6", "--act-dim", "4", "--online-capacity", "5000", "--demo-capacity", "1000",
                            "--ckpt-dir", ck, NULL};
  TH_CHECK_EQ_INT(rt_run_binary(file_dir), 2);
  rt_rmdir(dir);
}

static void test_wal_kill9(void) {
  char dir[256];
  rt_tmpdir(dir, sizeof dir, "wal");
  const char *extra[] = {"--ckpt-dir", dir, "--durability", "wal", NULL};
  rt_server s;
  if (rt_shard_start(&s, extra) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  uint64_t acked = 0;
  for (int b = 0; b < 20; b++) {
    rt_items o = items(4, (uint64_t)b * 25, 25, 1);
    ibrl_InsertReply rep;
    if (rt_insert(&c, "online", &o, &rep, NULL, 0, TMO) == GRPC_STATUS_OK) {
      TH_CHECK(rep.durable);
      acked += rep.inserted;
    }
  }
  TH_CHECK_EQ_INT(acked, 500);
  rt_client_close(&c);
  int code = rt_server_stop(&s, SIGKILL);
  TH_CHECK_EQ_INT(code, 128 + SIGKILL);

  if (rt_shard_start(&s, extra) != 0) return;
  rt_client_open(&c, s.target, NULL);
  ibrl_InfoReply *info = ib_xcalloc(1, sizeof *info);
  TH_CHECK_EQ_INT(rt_info(&c, info, TMO), GRPC_STATUS_OK);
  TH_CHECK_MSG(table_size(info, "online") == acked, "after kill -9: %llu items, %llu were acknowledged",
               (unsigned long long)table_size(info, "online"), (unsigned long long)acked);
  TH_CHECK(strcmp(info->durability, "wal") == 0);
  free(info);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
  rt_rmdir(dir);
}

static void test_periodic_checkpoint(void) {
  char dir[256];
  rt_tmpdir(dir, sizeof dir, "period");
  const char *extra[] = {"--ckpt-dir", dir, "--ckpt-period", "0.2", NULL};
  rt_server s;
  if (rt_shard_start(&s, extra) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  rt_items o = items(5, 0, 64, 1);
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &o, NULL, NULL, 0, TMO), GRPC_STATUS_OK);
  /* Wait for a periodic checkpoint to show up in Info (bounded: 5 s). */
  ibrl_InfoReply *info = ib_xcalloc(1, sizeof *info);
  double t0 = ib_now_s();
  uint64_t ck0 = 0;
  TH_CHECK_EQ_INT(rt_info(&c, info, TMO), GRPC_STATUS_OK);
  ck0 = info->checkpoints;
  while (ib_now_s() - t0 < 5.0) {
    usleep(100000);
    TH_CHECK_EQ_INT(rt_info(&c, info, TMO), GRPC_STATUS_OK);
    if (info->checkpoints >= ck0 + 1) break;
  }
  TH_CHECK_MSG(info->checkpoints >= ck0 + 1, "no periodic checkpoint within 5 s (%llu)",
               (unsigned long long)info->checkpoints);
  rt_client_close(&c);
  /* kill -9: no final checkpoint; the periodic one must hold the 64 items. */
  TH_CHECK_EQ_INT(rt_server_stop(&s, SIGKILL), 128 + SIGKILL);
  if (rt_shard_start(&s, extra) != 0) {
    free(info);
    return;
  }
  rt_client_open(&c, s.target, NULL);
  TH_CHECK_EQ_INT(rt_info(&c, info, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(table_size(info, "online"), 64);
  free(info);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
  rt_rmdir(dir);
}

typedef struct delayed_signal {
  pid_t pid;
  int delay_ms;
} delayed_signal;

static void *delayed_signal_main(void *arg) {
  delayed_signal *d = arg;
  usleep((useconds_t)d->delay_ms * 1000);
  kill(d->pid, SIGTERM);
  return NULL;
}

static void test_sigterm_releases_blocked(void) {
  rt_server s;
  const char *extra[] = {"--min-size", "100", NULL};
  if (rt_shard_start(&s, extra) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  rt_items o = items(5, 0, 10, 1);
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &o, NULL, NULL, 0, TMO), GRPC_STATUS_OK);
  delayed_signal d = {s.pid, 300};
  pthread_t th;
  pthread_create(&th, NULL, delayed_signal_main, &d);
  rt_sample *sm = ib_xcalloc(1, sizeof *sm);
  char det[512];
  double t0 = ib_now_s();
  grpc_status_code st = rt_sample_call(&c, 4, -1, sm, det, sizeof det, 8000);
  double waited = ib_now_s() - t0;
  pthread_join(th, NULL);
  TH_CHECK_MSG(st == GRPC_STATUS_UNAVAILABLE || st == GRPC_STATUS_CANCELLED,
               "blocked sample at shutdown: %s (%s)", wire_status_name(st), det);
  TH_CHECK_MSG(waited < 5.0, "the blocked sample was released only after %.3f s", waited);
  free(sm);
  rt_client_close(&c);
  int code = rt_server_stop(&s, SIGTERM); /* already terminating: just reap it */
  TH_CHECK_EQ_INT(code, 0);
}

/* Inserters and samplers hammer the server while it receives SIGTERM: it must exit 0 (no
 * abort from CQ shutdown ordering, docs/grpc-core.md pitfall 2) and every client call must end
 * with a status, not hang. */
typedef struct hammer {
  const char *target;
  uint32_t actor;
  int sampler;
  int ok, failed;
} hammer;

static void *hammer_main(void *arg) {
  hammer *h = arg;
  rt_client c;
  rt_client_open(&c, h->target, NULL);
  rt_sample *sm = h->sampler ? ib_xcalloc(1, sizeof *sm) : NULL;
  double t0 = ib_now_s();
  for (uint64_t k = 0; ib_now_s() - t0 < 3.0; k++) {
    grpc_status_code st;
    if (h->sampler) {
      st = rt_sample_call(&c, 64, 0.5, sm, NULL, 0, 2000);
    } else {
      rt_items it = items(h->actor, k * 32, 32, 1);
      st = rt_insert(&c, "online", &it, NULL, NULL, 0, 2000);
    }
    if (st == GRPC_STATUS_OK) h->ok++;
    else if (++h->failed > 3) break; /* the server is gone: stop soon */
  }
  free(sm);
  rt_client_close(&c);
  return NULL;
}

static void test_shutdown_under_load(void) {
  char dir[256];
  rt_tmpdir(dir, sizeof dir, "load");
  const char *extra[] = {"--ckpt-dir", dir, "--durability", "wal", NULL};
  rt_server s;
  if (rt_shard_start(&s, extra) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  rt_items seed = items(50, 0, 100, 1), demo = items(51, 0, 100, 2);
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &seed, NULL, NULL, 0, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(rt_insert(&c, "demo", &demo, NULL, NULL, 0, TMO), GRPC_STATUS_OK);
  rt_client_close(&c);
  hammer h[4] = {{s.target, 1, 0, 0, 0}, {s.target, 2, 0, 0, 0}, {s.target, 0, 1, 0, 0}, {s.target, 0, 1, 0, 0}};
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, hammer_main, &h[i]);
  usleep(500000);
  double t0 = ib_now_s();
  int code = rt_server_stop(&s, SIGTERM);
  double stop_s = ib_now_s() - t0;
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  TH_CHECK_MSG(code == 0, "exit code %d after SIGTERM under load", code);
  TH_CHECK_MSG(stop_s < 10.0, "stopping took %.3f s", stop_s);
  for (int i = 0; i < 4; i++) TH_CHECK_MSG(h[i].ok > 0, "client %d made no successful call before the stop", i);
  rt_rmdir(dir);
}

static int sh(const char *cmd) {
  int rc = system(cmd);
  return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static void test_tls(void) {
  char dir[256];
  rt_tmpdir(dir, sizeof dir, "tls");
  char cmd[1024], cert[300], key[300];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 -subj /CN=localhost "
           "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1", key, cert);
  if (sh(cmd) != 0) {
    th_skip("openssl could not make a test certificate");
    rt_rmdir(dir);
    return;
  }
  const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
  rt_server s;
  if (rt_shard_start(&s, extra) != 0) return;
  /* A TLS client trusting the self-signed cert works; a plaintext client does not. */
  rt_client c;
  memset(&c, 0, sizeof c);
  wire_channel_opts o = {0, cert, 0, 0};
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", s.port); /* verified against the IP SAN */
  c.ch = wire_channel_create(target, &o);
  TH_CHECK(c.ch != NULL);
  c.cq = grpc_completion_queue_create_for_pluck(NULL);
  rt_items it = items(1, 0, 5, 1);
  ibrl_InsertReply rep;
  char det[512];
  TH_CHECK_EQ_INT(rt_insert(&c, "online", &it, &rep, det, sizeof det, TMO), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(rep.inserted, 5);
  rt_client_close(&c);
  rt_client plain;
  rt_client_open(&plain, s.target, NULL);
  TH_CHECK(rt_insert(&plain, "online", &it, NULL, det, sizeof det, 1000) != GRPC_STATUS_OK);
  rt_client_close(&plain);
  rt_shard_stop_ok(&s);
  /* A missing key file is refused at startup: a setup error, exit code 2. */
  char missing[320];
  snprintf(missing, sizeof missing, "%s/none.pem", dir);
  const char *bad[] = {"--obs-dim", "6", "--act-dim", "4", "--tls-cert", cert, "--tls-key", missing, NULL};
  TH_CHECK_EQ_INT(rt_run_binary(bad), 2);
  rt_rmdir(dir);
}

/* ---- Params ---- */

typedef struct publisher {
  const char *target;
  int delay_ms;
  uint64_t version;
  grpc_status_code st;
} publisher;

static const uint8_t *blob_bytes(size_t n) {
  static uint8_t b[200000];
  IB_CHECK(n <= sizeof b);
  for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(i * 131u + 7u);
  return b;
}

static grpc_status_code publish(rt_client *c, uint64_t version, size_t n, char *det, size_t cap) {
  ibrl_PublishRequest q = ibrl_PublishRequest_init_zero;
  q.version = version;
  wire_blob_src src = {blob_bytes(n), n};
  wire_blob_set_src(&q.blob, &src);
  grpc_byte_buffer *bb = NULL;
  IB_CHECK(wire_encode(&bb, ibrl_PublishRequest_fields, &q) == IB_OK);
  grpc_status_code st = rt_call(c, WIRE_PATH_PUBLISH, &bb, 1, NULL, det, cap, TMO);
  grpc_byte_buffer_destroy(bb);
  return st;
}

static void *publisher_main(void *arg) {
  publisher *p = arg;
  usleep((useconds_t)p->delay_ms * 1000);
  rt_client c;
  rt_client_open(&c, p->target, NULL);
  p->st = publish(&c, p->version, 150000, NULL, 0);
  rt_client_close(&c);
  return NULL;
}

static grpc_status_code get_if_newer(rt_client *c, uint64_t have, uint32_t wait_ms, ibrl_GetIfNewerReply *r,
                                     wire_blob_sink *sink) {
  ibrl_GetIfNewerRequest q = ibrl_GetIfNewerRequest_init_zero;
  q.version = have;
  q.wait_ms = wait_ms;
  grpc_byte_buffer *bb = NULL, *resp = NULL;
  IB_CHECK(wire_encode(&bb, ibrl_GetIfNewerRequest_fields, &q) == IB_OK);
  grpc_status_code st = rt_call(c, WIRE_PATH_GETIFNEWER, &bb, 1, &resp, NULL, 0, TMO);
  grpc_byte_buffer_destroy(bb);
  if (st == GRPC_STATUS_OK) {
    *r = (ibrl_GetIfNewerReply)ibrl_GetIfNewerReply_init_zero;
    wire_blob_set_sink(&r->blob, sink);
    IB_CHECK(wire_decode(r, ibrl_GetIfNewerReply_fields, resp, "GetIfNewerReply") == IB_OK);
  }
  if (resp) grpc_byte_buffer_destroy(resp);
  return st;
}

static void test_params(void) {
  rt_server s;
  if (rt_shard_start(&s, NULL) != 0) return;
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  char det[512];
  wire_blob_sink sink = {NULL, 0, 0, 1 << 20};
  ibrl_GetIfNewerReply r;
  /* Nothing published: a short long-poll returns newer = false after the wait. */
  double t0 = ib_now_s();
  TH_CHECK_EQ_INT(get_if_newer(&c, 0, 200, &r, &sink), GRPC_STATUS_OK);
  TH_CHECK(!r.newer);
  TH_CHECK_MSG(ib_now_s() - t0 >= 0.18, "long poll returned after %.3f s", ib_now_s() - t0);
  TH_CHECK_EQ_INT(publish(&c, 5, 1000, det, sizeof det), GRPC_STATUS_OK);
  TH_CHECK_EQ_INT(get_if_newer(&c, 0, 0, &r, &sink), GRPC_STATUS_OK);
  TH_CHECK(r.newer);
  TH_CHECK_EQ_INT(r.version, 5);
  TH_CHECK_EQ_INT(sink.len, 1000);
  TH_CHECK(sink.len == 1000 && memcmp(sink.data, blob_bytes(1000), 1000) == 0);
  expect(publish(&c, 5, 10, det, sizeof det), GRPC_STATUS_FAILED_PRECONDITION, det, "not newer", "stale version");
  /* A long poll is released by a publish from another client, with the new blob. */
  publisher p = {s.target, 300, 6, GRPC_STATUS_UNKNOWN};
  pthread_t th;
  pthread_create(&th, NULL, publisher_main, &p);
  t0 = ib_now_s();
  TH_CHECK_EQ_INT(get_if_newer(&c, 5, 4000, &r, &sink), GRPC_STATUS_OK);
  double waited = ib_now_s() - t0;
  pthread_join(th, NULL);
  TH_CHECK_EQ_INT(p.st, GRPC_STATUS_OK);
  TH_CHECK(r.newer);
  TH_CHECK_EQ_INT(r.version, 6);
  TH_CHECK(sink.len == 150000 && memcmp(sink.data, blob_bytes(150000), 150000) == 0);
  TH_CHECK_MSG(waited >= 0.2 && waited < 3.9, "long poll released after %.3f s", waited);
  free(sink.data);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
}

/* ---- the binary's flags ---- */

static void test_flags(void) {
  const char *help[] = {"--help", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(help), 0);
  const char *bad[] = {"--obs-dim", "6", "--act-dim", "4", "--bogus", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(bad), 2);
  const char *badnum[] = {"--obs-dim", "six", "--act-dim", "4", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(badnum), 2);
  const char *missing[] = {"--act-dim", "4", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(missing), 2);
  const char *baddur[] = {"--obs-dim", "6", "--act-dim", "4", "--durability", "maybe", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(baddur), 2);
  /* Non-loopback without a token is refused at startup, before listening: setup, exit 2. */
  const char *open_bind[] = {"--obs-dim", "6", "--act-dim", "4", "--bind", "0.0.0.0", "--port", "0", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(open_bind), 2);
  const char *walnodir[] = {"--obs-dim", "6", "--act-dim", "4", "--durability", "wal", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(walnodir), 2);
  const char *novalue[] = {"--obs-dim", "6", "--act-dim", "4", "--insecure=1", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(novalue), 2);
  const char *pollers[] = {"--obs-dim", "6", "--act-dim", "4", "--threads", "2", "--pollers", "3", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(pollers), 2);
  const char *pollers0[] = {"--obs-dim", "6", "--act-dim", "4", "--pollers", "0", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(pollers0), 2);
  /* The environment sets flags too: a bad value there is refused like a flag (but --help
   * still helps: nothing is parsed before it). */
  setenv("IBRL_REPLAY_THREADS", "zero", 1);
  const char *ok[] = {"--obs-dim", "6", "--act-dim", "4", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(ok), 2);
  const char *ok_help[] = {"--obs-dim", "6", "--act-dim", "4", "--help", NULL};
  TH_CHECK_EQ_INT(rt_run_binary(ok_help), 0);
  /* A good value from the environment takes effect (the token guards the server), and a bad
   * one that a flag overrides is never read: rt_shard_start gives --threads and --obs-dim. */
  setenv("IBRL_REPLAY_TOKEN", "from-env", 1);
  setenv("IBRL_REPLAY_OBS_DIM", "abc", 1);
  rt_server s;
  int rc = rt_shard_start(&s, NULL);
  unsetenv("IBRL_REPLAY_TOKEN");
  unsetenv("IBRL_REPLAY_OBS_DIM");
  unsetenv("IBRL_REPLAY_THREADS");
  if (rc != 0) return;
  rt_client anon, tok;
  rt_client_open(&anon, s.target, NULL);
  rt_client_open(&tok, s.target, "from-env");
  rt_items it = items(1, 0, 2, 1);
  TH_CHECK_EQ_INT(rt_insert(&anon, "online", &it, NULL, NULL, 0, TMO), GRPC_STATUS_UNAUTHENTICATED);
  TH_CHECK_EQ_INT(rt_insert(&tok, "online", &it, NULL, NULL, 0, TMO), GRPC_STATUS_OK);
  rt_client_close(&anon);
  rt_client_close(&tok);
  /* A second server on the same port fails to start: setup, exit code 2 (the port is named). */
  char port[16];
  snprintf(port, sizeof port, "%d", s.port);
  const char *same_port[] = {"--obs-dim", "6", "--act-dim", "4", "--port", port, NULL};
  TH_CHECK_EQ_INT(rt_run_binary(same_port), 2);
  rt_shard_stop_ok(&s);
}

static const th_case cases[] = {
    {"roundtrip and mixing ratios", test_roundtrip_mix},
    {"dedup by actor and seq", test_dedup},
    {"bad input gets clear statuses", test_bad_input},
    {"unpacked and slice-straddling items arrive intact", test_item_encodings},
    {"token and health", test_token_and_health},
    {"rate limiter blocks and releases", test_rate_limiter},
    {"checkpoint and restore across restart", test_checkpoint_restore},
    {"wal: kill -9 loses nothing acknowledged", test_wal_kill9},
    {"periodic checkpoint survives kill -9", test_periodic_checkpoint},
    {"SIGTERM releases a blocked call", test_sigterm_releases_blocked},
    {"TLS", test_tls},
    {"SIGTERM under load", test_shutdown_under_load},
    {"params publish and long poll", test_params},
    {"flags", test_flags},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  grpc_init();
  int rc = th_main(argc, argv, cases);
  grpc_shutdown_blocking();
  return rc;
}
