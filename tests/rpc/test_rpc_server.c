/* test_rpc_server.c: the polling turn of common/rpc/rpc_server (rpc_server.h): one worker per two
 * calls in progress takes calls (at most `pollers`), and a handler about to wait hands its turn to
 * a standby worker with rpc_server_will_wait. An in-process server on 127.0.0.1 port 0 with
 * Wait, whose handler waits (up to 1.5 s) until Release's handler lets it go, Release, and Idle,
 * a client stream that the test opens and leaves open to raise the calls in progress.
 * The witnesses run both ways: with rpc_server_will_wait, Release is served while Wait waits;
 * without it, with one call in progress, Release cannot be served until Wait gives up (so the turn
 * is real and the first case could fail); with three idle streams open there are two turns, and
 * Release is served again, unless pollers is 1. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ib.h"
#include "rpc_server.h"
#include "rpc_testutil.h"
#include "th.h"

#define WAIT_PATH "/ibrl.test.Turn/Wait"
#define RELEASE_PATH "/ibrl.test.Turn/Release"
#define IDLE_PATH "/ibrl.test.Turn/Idle"

typedef struct turn_state {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int yield;    /* the Wait handler calls rpc_server_will_wait before it waits */
  int entered;  /* the Wait handler is waiting */
  int released; /* Release ran */
  int saw_release; /* the Wait handler was let go by Release, not by its own timeout */
} turn_state;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void h_wait(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req, rpc_reply *rep) {
  (void)info;
  (void)req;
  (void)rep;
  turn_state *t = ctx;
  if (t->yield) rpc_server_will_wait();
  pthread_mutex_lock(&t->mu);
  t->entered = 1;
  pthread_cond_broadcast(&t->cv);
  double until = now_s() + 1.5;
  while (!t->released && now_s() < until) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000 * 1000;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
  }
  t->saw_release = t->released;
  pthread_mutex_unlock(&t->mu);
}

static void h_release(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req, rpc_reply *rep) {
  (void)info;
  (void)req;
  (void)rep;
  turn_state *t = ctx;
  pthread_mutex_lock(&t->mu);
  t->released = 1;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static int h_idle(void *ctx, rpc_call_info *info, const grpc_byte_buffer *msg, rpc_reply *rep) {
  (void)ctx;
  (void)info;
  (void)msg;
  (void)rep;
  return 0;
}

/* Opens a client stream to Idle (initial metadata only) and leaves it open; NULL on failure. */
static grpc_call *open_idle(grpc_channel *ch, grpc_completion_queue *cq) {
  grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, grpc_slice_from_static_string(IDLE_PATH),
                                             NULL, gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(20, GPR_TIMESPAN)),
                                             NULL);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  op.flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
  if (grpc_call_start_batch(call, &op, 1, call, NULL) != GRPC_CALL_OK) {
    grpc_call_unref(call);
    return NULL;
  }
  grpc_event ev = grpc_completion_queue_pluck(cq, call, gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                                     gpr_time_from_seconds(5, GPR_TIMESPAN)), NULL);
  if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
    grpc_call_cancel(call, NULL);
    grpc_call_unref(call);
    return NULL;
  }
  return call;
}

typedef struct waiter {
  const char *target;
  grpc_status_code st;
} waiter;

static grpc_byte_buffer *empty_msg(void) { return grpc_raw_byte_buffer_create(NULL, 0); }

static void *wait_call(void *arg) {
  waiter *w = arg;
  rt_client c;
  rt_client_open(&c, w->target, NULL);
  grpc_byte_buffer *m = empty_msg();
  char det[256] = "";
  w->st = rt_call(&c, WAIT_PATH, &m, 1, NULL, det, sizeof det, 5000);
  grpc_byte_buffer_destroy(m);
  rt_client_close(&c);
  return NULL;
}

/* On one server with `idle` Idle streams open, `rounds` times: runs Wait in a thread, then Release
 * (deadline 700 ms) once Wait's handler waits. Returns the first Release status that is not OK
 * (else OK); *wait_st is the first such Wait status, *saw_release whether Release let Wait go in
 * every round. */
static grpc_status_code run_turn(int threads, int pollers, int yield, int rounds, int idle, grpc_status_code *wait_st,
                                 int *saw_release) {
  turn_state t;
  memset(&t, 0, sizeof t);
  pthread_mutex_init(&t.mu, NULL);
  pthread_cond_init(&t.cv, NULL);
  t.yield = yield;
  rpc_method m[3] = {{WAIT_PATH, RPC_UNARY, h_wait, NULL, &t},
                     {RELEASE_PATH, RPC_UNARY, h_release, NULL, &t},
                     {IDLE_PATH, RPC_CLIENT_STREAM, NULL, h_idle, NULL}};
  rpc_server_opts so = {"127.0.0.1", 0, threads, 1L << 20, NULL, NULL, NULL, pollers};
  rpc_server *s = NULL;
  IB_CHECK(rpc_server_create(&s, &so, m, 3) == IB_OK);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", rpc_server_port(s));
  rt_client ic;
  rt_client_open(&ic, target, NULL);
  grpc_call *idle_calls[8] = {NULL};
  IB_CHECK(idle <= 8);
  for (int i = 0; i < idle; i++) {
    idle_calls[i] = open_idle(ic.ch, ic.cq);
    TH_CHECK_MSG(idle_calls[i] != NULL, "Idle stream %d did not open", i);
  }
  /* The server counts a stream once a worker has taken it. */
  for (int i = 0; i < 300 && rpc_server_active_calls(s) < idle; i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  TH_CHECK_EQ_INT(rpc_server_active_calls(s), idle);
  grpc_status_code first = GRPC_STATUS_OK;
  *wait_st = GRPC_STATUS_OK;
  *saw_release = 1;
  for (int r = 0; r < rounds; r++) {
    pthread_mutex_lock(&t.mu);
    t.entered = t.released = t.saw_release = 0;
    pthread_mutex_unlock(&t.mu);
    waiter w = {target, GRPC_STATUS_UNKNOWN};
    pthread_t th;
    IB_CHECK(pthread_create(&th, NULL, wait_call, &w) == 0);
    pthread_mutex_lock(&t.mu);
    double until = now_s() + 3.0;
    while (!t.entered && now_s() < until) {
      pthread_mutex_unlock(&t.mu);
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
      pthread_mutex_lock(&t.mu);
    }
    int entered = t.entered;
    pthread_mutex_unlock(&t.mu);
    TH_CHECK_MSG(entered, "round %d: the Wait handler never ran (threads %d, pollers %d)", r, threads, pollers);
    rt_client c;
    rt_client_open(&c, target, NULL);
    grpc_byte_buffer *msg = empty_msg();
    char det[256] = "";
    grpc_status_code st = rt_call(&c, RELEASE_PATH, &msg, 1, NULL, det, sizeof det, 700);
    grpc_byte_buffer_destroy(msg);
    rt_client_close(&c);
    pthread_join(th, NULL);
    if (first == GRPC_STATUS_OK) first = st;
    if (*wait_st == GRPC_STATUS_OK) *wait_st = w.st;
    pthread_mutex_lock(&t.mu);
    if (!t.saw_release) *saw_release = 0;
    pthread_mutex_unlock(&t.mu);
  }
  for (int i = 0; i < idle; i++) {
    if (idle_calls[i] == NULL) continue;
    grpc_call_cancel(idle_calls[i], NULL);
    grpc_call_unref(idle_calls[i]);
  }
  rt_client_close(&ic);
  rpc_server_destroy(s);
  pthread_mutex_destroy(&t.mu);
  pthread_cond_destroy(&t.cv);
  return first;
}

/* run_turn, then checks: Release answered `want` in every round, Wait finished OK, and Release let
 * Wait go exactly when Release was served. */
static void expect_turn(int threads, int pollers, int yield, int rounds, int idle, grpc_status_code want) {
  grpc_status_code wst;
  int saw = -1;
  grpc_status_code st = run_turn(threads, pollers, yield, rounds, idle, &wst, &saw);
  TH_CHECK_MSG(st == want, "threads %d pollers %d yield %d idle %d: Release %d, want %d", threads, pollers, yield,
               idle, (int)st, (int)want);
  TH_CHECK_EQ_INT(wst, GRPC_STATUS_OK);
  TH_CHECK_MSG(saw == (want == GRPC_STATUS_OK), "threads %d pollers %d yield %d idle %d: Wait %s let go by Release",
               threads, pollers, yield, idle, saw ? "was" : "was not");
}

static void test_will_wait_hands_the_turn_on(void) { expect_turn(2, 0, 1, 1, 0, GRPC_STATUS_OK); }

/* One call in progress, one turn, held by the waiting handler: Release's deadline passes first. */
static void test_one_call_one_turn(void) { expect_turn(2, 0, 0, 1, 0, GRPC_STATUS_DEADLINE_EXCEEDED); }

/* 3 idle streams + Wait = 4 calls in progress: two turns, so Release is served; pollers 1 caps
 * them at one. */
static void test_turns_follow_calls(void) {
  expect_turn(3, 0, 0, 1, 3, GRPC_STATUS_OK);
  expect_turn(3, 1, 0, 1, 3, GRPC_STATUS_DEADLINE_EXCEEDED);
}

/* The turn is handed on and taken back again and again on one server: 10 rounds of Wait +
 * Release, with 3 workers, so a finished handler's worker and the standby trade places. */
static void test_turn_survives_hand_overs(void) { expect_turn(3, 0, 1, 10, 0, GRPC_STATUS_OK); }

static void test_bad_pollers(void) {
  rpc_server_opts so = {"127.0.0.1", 0, 2, 1L << 20, NULL, NULL, NULL, 3};
  rpc_server *s = NULL;
  TH_CHECK_EQ_INT(rpc_server_create(&s, &so, NULL, 0), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "pollers 3") != NULL && strstr(ib_errmsg(), "HINT") != NULL, "%s", ib_errmsg());
  TH_CHECK(s == NULL);
  so.pollers = -1;
  TH_CHECK_EQ_INT(rpc_server_create(&s, &so, NULL, 0), IB_EINVAL);
  rpc_server_will_wait(); /* outside a worker thread: nothing to hand on */
}

static const th_case cases[] = {
    {"rpc_server_will_wait hands the polling turn to a standby worker", test_will_wait_hands_the_turn_on},
    {"one call in progress, one turn: a handler waiting without rpc_server_will_wait stalls others", test_one_call_one_turn},
    {"turns follow the calls in progress, up to pollers", test_turns_follow_calls},
    {"the turn survives repeated hand-overs", test_turn_survives_hand_overs},
    {"bad pollers are refused", test_bad_pollers},
    {NULL, NULL},
};

int main(int argc, char **argv) { return rt_main(argc, argv, cases); }
