/* replay_client_impl.h: what the parts of the replay client share. Not a public header: callers
 * use replay_client.h. The parts, all with the rc_ prefix (rc__ for the names they share):
 * - replay_client.c: channels and the poller, unary calls, shards that are down and their probes,
 *   Info and the control calls;
 * - replay_rows.c: batches and the hand codec of the item messages;
 * - replay_writer.c: inserts (rc_writer);
 * - replay_sample.c: sampling (rc_sample, rc_sampler) and paged reads (rc_read). */
#ifndef IB_REPLAY_CLIENT_IMPL_H
#define IB_REPLAY_CLIENT_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include "replay_client.h"
#include "rng.h"
#include "wire.h"

#define RC_CQ_POOL 16 /* idle pluck queues kept for reuse by unary calls */
#define RC_SIZES_TTL_MS 1000 /* cached table sizes of a shard not sampled lately are re-read after this */
#define RC_PROBE_MAX_MS 2000 /* a probe's deadline: the client's, but at most this (keeps probe rounds short) */
#define RC_DOWN_MAX_SHIFT 2  /* a shard that fails again after each rejoin is kept out up to 4 x RC_SIZES_TTL_MS */

/* One unary call in flight: its tag, and where the 6-op batch puts its results. */
typedef struct ucall {
  grpc_call *call;
  grpc_metadata_array md_init, md_trail;
  grpc_byte_buffer *reply;
  grpc_status_code status;
  grpc_slice details;
  const char *error_string;
} ucall;

typedef struct shard {
  char *target;      /* owned */
  grpc_channel *ch;  /* owned */
  uint64_t sizes_ns; /* when the cached sizes were read (0 = never); under client lock */
  /* Down state, under client lock. 0 = up (sampled). Else the shard is down: left out of every
   * sample until a probe (Info from the poller thread) succeeds, and not probed before this time. */
  uint64_t down_until_ns;
  int strikes;  /* times it went down since its last successful Sample (grows its backoff) */
  int probing;  /* a probe of it is in flight: probe[i] of the client holds the call */
  uint64_t demo_size, online_size;
} shard;

struct rc_client {
  int n;
  shard sh[RC_MAX_SHARDS];
  wire_auth auth;    /* owned */
  long deadline_ms;
  long max_msg;
  pthread_mutex_t lock; /* guards rng and the cached sizes */
  rng r;
  grpc_completion_queue *poll_cq; /* owned: kept polled so channels make progress */
  pthread_t poller;
  atomic_int plucking;            /* threads inside a pluck on one of this client's calls */
  _Atomic uint64_t pluck_end_ns;  /* ib_now_ns() when the last such pluck returned */
  atomic_int stop;
  pthread_mutex_t cq_mu;          /* guards the pool of idle pluck queues */
  grpc_completion_queue *cq_idle[RC_CQ_POOL]; /* owned: idle, nothing pending on them */
  int n_cq_idle;
  ucall probe[RC_MAX_SHARDS]; /* probe[i]: the Info probe of shard i while sh[i].probing (on poll_cq) */
};

/* ---- replay_client.c ---- */

/* Records the failure of a call to shard i (what: "Sample", ...) and returns its IB_E* code. */
int rc__call_fail(const rc_client *c, int i, const char *what, grpc_status_code st, grpc_slice details);

/* Starts a unary call of `path` on shard i with `req` on `cq`, tagged by `u` (one 6-op batch);
 * deadline_ms < 0: the client's deadline. */
void rc__ucall_start(rc_client *c, int i, ucall *u, grpc_completion_queue *cq, const char *path,
                     grpc_byte_buffer *req, long deadline_ms);
/* Releases what a finished call holds, but not its reply (the caller destroys that). */
void rc__ucall_release(ucall *u);
/* A pluck queue from the client's pool (or a new one), and back to it with nothing pending. */
grpc_completion_queue *rc__cq_get(rc_client *c);
void rc__cq_put(rc_client *c, grpc_completion_queue *cq);
/* Shuts down, drains and destroys a queue with nothing pending on it. */
void rc__cq_destroy(grpc_completion_queue *cq);
/* grpc_completion_queue_pluck, counted so that the poller stands by while calls are plucked. */
grpc_event rc__pluck(rc_client *c, grpc_completion_queue *cq, void *tag, gpr_timespec deadline);

/* Whether a call error means "the shard is not there" (sampling then goes on without it) rather
 * than a refusal that the other shards would repeat. */
static inline int rc__is_down(int rc) { return rc == IB_EUNAVAIL || rc == IB_ETIMEDOUT; }
/* Marks shard i down after the error in ib_errmsg(), or up after a good Sample. */
void rc__shard_mark_down(rc_client *c, int i);
void rc__shard_mark_up(rc_client *c, int i);
/* The demo and online table sizes in an Info reply. */
void rc__info_sizes(const ibrl_InfoReply *rep, uint64_t *demo, uint64_t *online);

/* ---- replay_rows.c ---- */

/* Encodes rows [lo, hi) of b as an InsertRequest for `table` into one new slice (caller unrefs),
 * with max_wait_ms (0: left out); see replay_rows.c. */
grpc_slice rc__encode_rows(const rc_batch *b, int lo, int hi, const char *table, int columns, int stamp,
                           uint32_t actor_id, uint64_t seq0, uint32_t max_wait_ms, int *finite);

#endif
