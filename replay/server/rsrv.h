/* rsrv.h: the replay shard service: one process = one shard = a store (demo + online table),
 * its rate limiter, its persistence and the latest published weights, served over gRPC as
 * ibrl.Replay, ibrl.Params and grpc.health.v1.Health (proto/ibrl.proto). ibrl-replay's main()
 * parses flags into an rsrv_config and runs rsrv_start / rsrv_stop; tests may do the same
 * in-process.
 *
 * Status mapping (what clients see): malformed protobuf, wrong sizes, NaN/Inf, unknown tables,
 * bad batch sizes or fractions -> INVALID_ARGUMENT; a rate-limited call that waited until its
 * own deadline -> DEADLINE_EXCEEDED, until the server's cap (max_block_ms) or with every blocking
 * slot taken -> RESOURCE_EXHAUSTED; a full demo table or actor registry -> RESOURCE_EXHAUSTED;
 * sampling two empty tables, a checkpoint without a directory, a stale weight version ->
 * FAILED_PRECONDITION; a failing disk -> UNAVAILABLE; restoring or shutting down -> UNAVAILABLE
 * (health "" says NOT_SERVING then; "liveness" stays SERVING while the process runs); a missing or wrong
 * token -> UNAUTHENTICATED; unknown methods -> UNIMPLEMENTED. Every message names the thing
 * and gives a HINT.
 *
 * A failing disk (durability wal): a failed write or fsync of the log breaks it, and inserts get
 * UNAVAILABLE with a message naming the log, since when, the error and the cure, until a
 * checkpoint succeeds; rsrv_tick retries that checkpoint on its own (1 s doubling to 30 s, never
 * longer than --ckpt-period when one is set), so the shard heals once the disk is back. Sample,
 * Read, Info and health keep working, and health stays SERVING: the shard still serves its
 * data, a readiness probe that failed would take sampling away too, and a restart cures no disk
 * (it would only drop the rows not yet durable). Info says durability_broken, the cause, for how
 * long and when the next attempt runs. An actor's retry of rows whose flush failed is a duplicate
 * (the rows are in memory): it is refused (UNAVAILABLE) until they are durable again.
 *
 * Threads: rsrv_start/rsrv_checkpoint/rsrv_tick/rsrv_stop are called by one controlling thread; the
 * handlers run on the server's worker threads, one per two calls in progress taking calls (at
 * most `pollers`; a handler about to wait hands its turn to a standby worker, rpc_server.h). A blocked
 * call (rate limiter, GetIfNewer long poll) holds a worker, so at most threads-1 calls may block
 * at once; further ones do not wait. */
#ifndef IB_RSRV_H
#define IB_RSRV_H

#include <stdint.h>

#include "persist.h"

#define RSRV_MAX_INSERT_ITEMS 1024 /* items per InsertRequest message */

typedef struct rsrv_config {
  const char *bind;          /* listen host (default "127.0.0.1") */
  int port;                  /* 0 = any free port */
  int shard_index;
  int obs_dim, act_dim;      /* > 0, <= the proto bounds (512, 128) */
  uint64_t online_capacity, demo_capacity;
  double samples_per_insert; /* 0 = no ratio (only the min_size gate) */
  double error_buffer;       /* 0 = max(1, spi) * 1000 */
  uint64_t min_size;         /* online items before sampling may start */
  const char *ckpt_dir;      /* NULL = no persistence */
  double ckpt_period_s;      /* 0 = only on request and at shutdown (driven by the caller) */
  persist_mode durability;   /* PERSIST_CKPT_ONLY or PERSIST_WAL (needs ckpt_dir) */
  bool salvage;              /* a ckpt_dir the restore refuses as damaged or missing data: keep
                                every intact row and set the files aside (persist_open_salvage)
                                instead of failing to start */
  const char *token;         /* NULL = no token */
  const char *tls_cert, *tls_key;
  long max_message_bytes;
  int threads;               /* worker threads, >= 1 */
  int pollers;               /* of those, the most taking calls at once: 1..threads (0 = threads) */
  uint32_t max_sample_batch; /* largest Sample batch_size (default 4096) */
  long max_block_ms;         /* cap on any blocking wait (default 10000) */
  uint64_t seed;             /* sampling rng seed */
} rsrv_config;

/* Fills the defaults above (bind 127.0.0.1, port 0, obs/act dims unset = 0, capacities 1e6 online /
 * 1e5 demo, 4 threads, 16 MiB messages, ckpt durability). */
void rsrv_config_default(rsrv_config *cfg);

typedef struct rsrv rsrv;

/* Validates cfg, creates the store and limiter, starts listening (health "liveness" SERVING,
 * "" NOT_SERVING, other calls UNAVAILABLE), restores from cfg->ckpt_dir (checkpoint + log), then
 * turns ready (health "" SERVING) and returns. Requires grpc_init(). On success
 * *out owns the running service. Errors: IB_EINVAL (a bad setting, named, with a HINT; also a
 * non-loopback bind without a token unless `insecure`), the persist_open errors, the
 * rpc_server_create errors. */
int rsrv_start(rsrv **out, const rsrv_config *cfg, int insecure);

/* The bound port. */
int rsrv_port(const rsrv *s);

/* Writes a checkpoint now (as the Checkpoint RPC does). IB_ESTATE without a ckpt_dir. */
int rsrv_checkpoint(rsrv *s, persist_ckpt_info *info);

#define RSRV_HEAL_MIN_S 1.0  /* first retry of a checkpoint that would restore durability */
#define RSRV_HEAL_MAX_S 30.0 /* the backoff doubles up to this */
/* Healing checkpoints rewrite the whole store to the failing disk: after a failed one the wait is
 * also at least (1 / RSRV_HEAL_DUTY - 1) times its duration (within the cap), so a large store
 * spends at most about this share of the time writing checkpoints the disk refuses. */
#define RSRV_HEAL_DUTY 0.1
#define RSRV_COUNTS_PERIOD_S 1.0 /* the counters file (persist_counts_save) is saved this often */

/* The shard's timed work; the controlling thread calls it every ~100 ms (ibrl-replay's main loop
 * does; an in-process server that never calls it neither checkpoints on its period nor heals).
 * Saves the counters file once a second when the counters changed (persist_counts_save; a failure
 * is logged once). Runs the periodic checkpoint when due (a failed one is retried at the period, logged each
 * time), and, while persistence says only a checkpoint can restore durability, a healing
 * checkpoint with backoff (RSRV_HEAL_MIN_S doubling to RSRV_HEAL_MAX_S, capped by the period,
 * at least 9 times the failed attempt's duration within that cap: RSRV_HEAL_DUTY; reset on
 * success), one log line per attempt, one when the trouble starts and one when
 * durability is back. Never blocks longer than one checkpoint. */
void rsrv_tick(rsrv *s);

/* Drains and stops: health NOT_SERVING, blocked calls released (UNAVAILABLE), the gRPC server
 * shut down in order, a final checkpoint if ckpt_dir is set, everything freed. Returns the status
 * of the final checkpoint (IB_OK without one). Accepts NULL. */
int rsrv_stop(rsrv *s);

#endif /* IB_RSRV_H */
