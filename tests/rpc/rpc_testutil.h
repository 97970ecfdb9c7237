/* rpc_testutil.h: helpers for the rpc tests: start ibrl-replay as a child process on
 * 127.0.0.1 port 0 and read its port, a minimal blocking gRPC client (any path, unary or client
 * stream, optional token), and encoders for test items whose values encode their identity.
 * Everything is bounded in time: waits take a timeout and fail the check instead of hanging. */
#ifndef IB_RPC_TESTUTIL_H
#define IB_RPC_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <grpc/grpc.h>

#include "th.h"
#include "wire.h"

typedef struct rt_server {
  pid_t pid;
  int port;
  char target[64];
} rt_server;

/* Starts $IBRL_REPLAY_BIN with --port 0 plus `args` (NULL-terminated), waits up to 10 s for
 * "listening on HOST:PORT". Returns 0, or -1 (the child is killed) if it exited or timed out;
 * *exit_code then holds its exit status when it exited (else -1). */
int rt_server_start(rt_server *s, const char *const *args, int *exit_code);
/* Sends `sig` and waits up to 20 s; returns the exit code (128+sig if killed by a signal), -1 on timeout. */
int rt_server_stop(rt_server *s, int sig);
/* A shard with the tests' usual tables (obs 6, action 4, online 5000, demo 1000, 4 threads) plus
 * `extra` (NULL-terminated, may be NULL): rt_server_start, and a failed check naming the exit code
 * when it does not start. Returns 0 or -1. */
int rt_shard_start(rt_server *s, const char *const *extra);
/* A shard shared by a test file's cases: starts it with `args` on the first call (*up = 1), a
 * failed check naming the exit code if it does not start. Returns 1 when it is up, else 0. */
int rt_server_once(rt_server *s, int *up, const char *const *args);
/* SIGTERM, and a failed check unless the shard exits with 0. */
void rt_shard_stop_ok(rt_server *s);
/* Runs the binary with `args` to completion (for flag tests), 10 s bound; returns its exit code. */
int rt_run_binary(const char *const *args);
/* Freezes process `pid` as a dead machine would look to its clients: SIGSTOP, then waits (up to
 * 5 s) until every thread of it is stopped (kill() returns before the stop is delivered, and a
 * thread still running could answer). Returns 0, or -1 (not stopped in time, or no such process).
 * The caller thaws it with SIGCONT. */
int rt_freeze(pid_t pid);

typedef struct rc_client rc_client;
/* An rc_client (common/rpc/replay_client.h) for `shards` with `token` (may be NULL), a 3 s call
 * deadline and sampling seed `seed`; a failed check naming the shards and NULL if it cannot open. */
rc_client *rt_rc_open(const char *shards, const char *token, uint64_t seed);

typedef struct rt_client {
  grpc_channel *ch;
  grpc_completion_queue *cq;
  wire_auth auth;
} rt_client;

void rt_client_open(rt_client *c, const char *target, const char *token);
void rt_client_close(rt_client *c);

/* One call to `path` sending msgs[0..n) (n >= 1; n == 1 is a unary call) with a deadline of
 * timeout_ms. *resp (may be NULL) receives the reply buffer (caller destroys) or NULL; details
 * (may be NULL) the status message. Returns the status code. */
grpc_status_code rt_call(rt_client *c, const char *path, grpc_byte_buffer *const *msgs, size_t n,
                         grpc_byte_buffer **resp, char *details, size_t cap, long timeout_ms);

/* Test items: item k of actor a has obs[j] = v + j, next_obs[j] = v + 100 + j, action[j] = -v - j,
 * reward = v, with v = a * 1e4 + k (exactly representable). */
typedef struct rt_items {
  uint32_t actor;
  uint64_t first_seq;
  size_t n;
  int obs_dim, act_dim;
  int nan_at;          /* item index whose obs[0] is NaN, or -1 */
  int wrong_obs_n;     /* if > 0: every item claims this many obs */
  uint32_t proposer;
} rt_items;

/* Encodes an InsertRequest for `table` with the items described by `it`. */
grpc_byte_buffer *rt_insert_msg(const char *table, const rt_items *it);
/* Stream one InsertRequest; returns the status; *rep receives counts if OK (may be NULL). */
grpc_status_code rt_insert(rt_client *c, const char *table, const rt_items *it, ibrl_InsertReply *rep,
                           char *details, size_t cap, long timeout_ms);

/* Decoded sample: up to 4096 rows, obs_dim <= 64, act_dim <= 16 (test sizes). */
typedef struct rt_sample {
  size_t n;
  float reward[4096];
  uint32_t proposer[4096];
  int intact[4096]; /* 1 if obs/next_obs/action match the reward as rt_items encodes them */
  ibrl_SampleReply rep;
} rt_sample;

/* Samples `batch` items (demo_fraction < 0 = unset). Returns the status. `out` is heap-sized. */
grpc_status_code rt_sample_call(rt_client *c, uint32_t batch, double demo_fraction, rt_sample *out,
                                char *details, size_t cap, long timeout_ms);

/* Info as a heap struct (caller frees). Returns the status. */
grpc_status_code rt_info(rt_client *c, ibrl_InfoReply *out, long timeout_ms);

/* A fresh empty directory under /tmp for this test; the caller removes it with rt_rmdir. */
void rt_tmpdir(char *out, size_t cap, const char *tag);
void rt_rmdir(const char *dir);

/* A test file's main: th_main(argc, argv, cases) between grpc_init and grpc_shutdown_blocking. */
int rt_main(int argc, char **argv, const th_case *cases);

#endif /* IB_RPC_TESTUTIL_H */
