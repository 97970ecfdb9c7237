/* test_keepalive.c: a client notices a shard that stops answering without closing its connection.
 *
 * A shard frozen with SIGSTOP keeps its TCP connections open but never answers: from the client
 * this looks like a shard whose machine or network died. Without keepalive the channel stays
 * READY, a call waits for its whole deadline, and the channel never reconnects. With the channel's
 * keepalive (wire.h; 1 s here instead of the default 10 s, to keep the test short) the unanswered
 * ping closes the connection: a call in flight fails UNAVAILABLE long before its deadline, and an
 * idle channel leaves READY. Both cases go red with keepalive_ms = -1 (off). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "ib.h"
#include "rpc_testutil.h"
#include "th.h"
#include "wire.h"

#define KEEPALIVE_MS 1000
#define CALL_DEADLINE_MS 20000 /* far beyond what keepalive needs: 2 x KEEPALIVE_MS + polling */
#define NOTICE_BOUND_S 10.0

/* A test client whose channel pings every KEEPALIVE_MS. */
static void open_keepalive_client(rt_client *c, const char *target) {
  rt_client_open(c, target, NULL);
  grpc_channel_destroy(c->ch);
  wire_channel_opts o = {0, NULL, 0, KEEPALIVE_MS};
  c->ch = wire_channel_create(target, &o);
  IB_CHECK(c->ch != NULL);
}

static grpc_status_code health_call(rt_client *c, long timeout_ms) {
  grpc_health_v1_HealthCheckRequest q = grpc_health_v1_HealthCheckRequest_init_zero;
  grpc_byte_buffer *bb = NULL, *resp = NULL;
  IB_CHECK(wire_encode(&bb, grpc_health_v1_HealthCheckRequest_fields, &q) == IB_OK);
  char details[256] = "";
  grpc_status_code st = rt_call(c, WIRE_PATH_HEALTH_CHECK, &bb, 1, &resp, details, sizeof details, timeout_ms);
  grpc_byte_buffer_destroy(bb);
  if (resp) grpc_byte_buffer_destroy(resp);
  if (st != GRPC_STATUS_OK) fprintf(stderr, "  health call: %s (%s)\n", wire_status_name(st), details);
  return st;
}

static void test_call_to_frozen_shard_fails_fast(void) {
  rt_server s;
  if (rt_shard_start(&s, NULL) != 0) return;
  rt_client c;
  open_keepalive_client(&c, s.target);
  TH_CHECK_MSG(health_call(&c, 5000) == GRPC_STATUS_OK, "the first call to the shard must succeed");
  TH_CHECK_MSG(rt_freeze(s.pid) == 0, "the shard must stop on SIGSTOP within 5 s");
  uint64_t t0 = ib_now_ns();
  grpc_status_code st = health_call(&c, CALL_DEADLINE_MS);
  double took = (double)(ib_now_ns() - t0) * 1e-9;
  fprintf(stderr, "  call to the frozen shard: %s after %.2f s (deadline %.0f s)\n", wire_status_name(st), took,
          CALL_DEADLINE_MS / 1000.0);
  TH_CHECK_MSG(st == GRPC_STATUS_UNAVAILABLE, "a call to a frozen shard must fail UNAVAILABLE through keepalive, not wait for its deadline");
  TH_CHECK_MSG(took < NOTICE_BOUND_S, "keepalive must end the call well before its deadline");
  TH_CHECK(kill(s.pid, SIGCONT) == 0);
  /* Thawed, the shard answers again on a fresh connection. A connection opened while it was frozen
   * (the kernel completes TCP handshakes from the listen backlog) may still be dropped by a ping the
   * thawing shard answered late, so retry for a bounded time, as a client's next calls would. */
  grpc_status_code again = GRPC_STATUS_UNKNOWN;
  uint64_t t1 = ib_now_ns();
  while (again != GRPC_STATUS_OK && (double)(ib_now_ns() - t1) * 1e-9 < 15.0) again = health_call(&c, 2000);
  TH_CHECK_MSG(again == GRPC_STATUS_OK, "the channel must reconnect once the shard answers again (15 s)");
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
}

static void test_idle_channel_leaves_ready(void) {
  rt_server s;
  if (rt_shard_start(&s, NULL) != 0) return;
  rt_client c;
  open_keepalive_client(&c, s.target);
  TH_CHECK_MSG(health_call(&c, 5000) == GRPC_STATUS_OK, "the first call to the shard must succeed");
  TH_CHECK_EQ_INT(grpc_channel_check_connectivity_state(c.ch, 0), GRPC_CHANNEL_READY);
  TH_CHECK_MSG(rt_freeze(s.pid) == 0, "the shard must stop on SIGSTOP within 5 s");
  uint64_t t0 = ib_now_ns();
  grpc_connectivity_state state = GRPC_CHANNEL_READY;
  while (state == GRPC_CHANNEL_READY && (double)(ib_now_ns() - t0) * 1e-9 < NOTICE_BOUND_S) {
    /* Watch for a change (this also polls the channel, so the keepalive timers run). */
    gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(200, GPR_TIMESPAN));
    grpc_channel_watch_connectivity_state(c.ch, state, until, c.cq, &state);
    grpc_event ev = grpc_completion_queue_pluck(c.cq, &state, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    IB_CHECK(ev.type == GRPC_OP_COMPLETE);
    state = grpc_channel_check_connectivity_state(c.ch, 0);
  }
  double took = (double)(ib_now_ns() - t0) * 1e-9;
  fprintf(stderr, "  idle channel to the frozen shard: state %d after %.2f s\n", (int)state, took);
  TH_CHECK_MSG(state != GRPC_CHANNEL_READY, "an idle channel to a frozen shard must leave READY through keepalive");
  TH_CHECK(kill(s.pid, SIGCONT) == 0);
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
}

static const th_case cases[] = {
    {"a call to a frozen shard fails UNAVAILABLE within the keepalive bound", test_call_to_frozen_shard_fails_fast},
    {"an idle channel to a frozen shard leaves READY", test_idle_channel_leaves_ready},
    {NULL, NULL},
};

int main(int argc, char **argv) { return rt_main(argc, argv, cases); }
