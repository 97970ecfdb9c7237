/* rsrv_impl.h: what the parts of the replay shard service share: rsrv.c (start, stop, blocking
 * budget, durability), rsrv_data.c (Insert, Sample, Read) and rsrv_admin.c (Info, RateLimit,
 * Checkpoint, Params). Not a public header: callers use rsrv.h. */
#ifndef IB_RSRV_IMPL_H
#define IB_RSRV_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include "persist.h"
#include "ratelim.h"
#include "rng.h"
#include "rpc_server.h"
#include "rsrv.h"
#include "rsrv_insert.h"
#include "store.h"
#include "wire.h"

/* An insert slot: the decode state of one InsertRequest (rsrv_insert.h), reused across messages
 * and streams. */
typedef struct insert_slot {
  rins_slot dec; /* owned */
  struct insert_slot *next;
} insert_slot;

/* A sampling slot: everything one Sample call needs, reused across calls. */
typedef struct sample_slot {
  rng r;
  store_batch batch; /* owned */
  struct sample_slot *next;
} sample_slot;

struct rsrv {
  rsrv_config cfg;
  char durability[8];
  char salvage[512];      /* Info's salvage: what a --salvage start kept and lost ("" if none) */
  uint64_t restore_missing_acked; /* Info's: acknowledged rows the restore did not find (set once) */
  store *st;       /* owned */
  rlim *lim;       /* owned */
  persist *per;    /* owned; NULL without ckpt_dir */
  rpc_server *rpc; /* owned */
  int t_demo, t_online;
  int ready; /* atomic: 0 while restoring (calls get UNAVAILABLE), then 1 */
  uint64_t checkpoints;     /* atomic: Info reads it without ckpt_mu, which a checkpoint holds for seconds */
  uint64_t insert_partial;  /* atomic: Insert streams acknowledged in part (RateLimitInfo.insert_partial_acks) */
  pthread_mutex_t ckpt_mu; /* one checkpoint at a time */

  /* Durability, under dmu: written by rsrv_tick and rsrv_checkpoint, read by the handlers. */
  pthread_mutex_t dmu;
  double next_ckpt;         /* ib_now_s() of the next periodic checkpoint (INFINITY: none) */
  double heal_at;           /* ib_now_s() of the next healing attempt (0: none scheduled) */
  double heal_backoff_s;    /* the wait after the next failed attempt */
  int trouble_logged;       /* the current trouble was logged (one line when it starts) */
  int ckpt_failing;         /* the last checkpoint failed */
  uint64_t ckpt_failures;   /* consecutive failed checkpoints (any: periodic, healing, requested) */
  double ckpt_fail_since_s; /* ib_now_s() of the first of them */
  char ckpt_error[384];     /* the last one's message */
  /* The counters file (persist_counts_save), touched by rsrv_tick alone. */
  double next_counts;       /* ib_now_s() of the next save */
  int counts_failing;       /* the last save failed (logged once) */

  pthread_mutex_t mu;      /* guards the slot pool and the blocking counter */
  sample_slot *slots_all;  /* owned array */
  sample_slot *free_slots;
  int nslots;
  insert_slot *islots_all; /* owned array [nslots] */
  insert_slot *free_islots;
  int blocked, max_blocked;

  pthread_mutex_t pmu;     /* guards the params */
  pthread_cond_t pcv;
  uint64_t pversion;
  uint64_t ppub_ns;        /* ib_now_ns() of the latest publish (0 = none) */
  uint64_t ppub_unix_ms;   /* its wall-clock time, for people reading Info */
  uint8_t *pblob;          /* owned */
  size_t plen;
  int closing;
};

/* What Info and the Insert error say about durability. */
typedef struct dur_state {
  int broken;
  char error[384];
  double broken_s, retry_in_s;
  uint64_t retries, since_unix_ms;
  persist_health h;
} dur_state;

/* ---- rsrv.c ---- */

/* The blocking budget (see the top of rsrv.c): rsrv__block_enter admits one more waiting handler
 * and returns 1, or 0 when threads - 1 already wait; rsrv__block_leave ends an admitted wait. */
int rsrv__block_enter(rsrv *s);
void rsrv__block_leave(rsrv *s);

/* What Info and the Insert error say about durability, now. */
void rsrv__dur_state_get(rsrv *s, dur_state *d);

/* The Insert error for an IB_EIO of the store or persist_barrier (ib_errmsg() holds theirs): when
 * the disk is the cause, it names the log, since when, the error and the cure. */
void rsrv__insert_io_fail(rsrv *s, rpc_reply *rep, const char *table);

/* Maps a limiter result to a status. */
void rsrv__limiter_fail(rpc_reply *rep, int rc, const char *what, int capped, int could_block, long cap_ms);

/* UNAVAILABLE while the store is being restored. Returns 1 if the call must stop. */
int rsrv__not_ready(rsrv *s, rpc_reply *rep, const char *what);

/* Decodes a handler's request `bb` into `msg` (nanopb `fields`; `what` names the message);
 * on failure replies INVALID_ARGUMENT with the decoder's message and returns 0. */
int rsrv__decode_req(void *msg, const pb_msgdesc_t *fields, const grpc_byte_buffer *bb, const char *what,
                     rpc_reply *rep);

/* The gRPC status of an IB_E* code (rsrv.h has the mapping). */
grpc_status_code rsrv__status_of(int rc);

/* The absolute ib_now_ns() deadline of a wait: the call's deadline capped by max_block_ms.
 * *capped says whether the cap (not the client) set it. */
uint64_t rsrv__wait_deadline(const rsrv *s, gpr_timespec call_deadline, int *capped);

/* ---- rsrv_data.c: handlers (rpc_server.h) of the data calls ---- */

int rsrv__h_insert(void *ctx, rpc_call_info *info, const grpc_byte_buffer *msg, rpc_reply *rep);

/* Read: rows [start, start + count) of one table in age order (store_read), for tools that
 * copy a table (ibrl-replayctl export). It is inspection, not training traffic: the rate limiter
 * neither counts nor holds it, and the store leaves it out of the sample counters (Info's
 * sampled and samples_per_s). It borrows a sampling slot for its batch; the page is copied
 * once more into the reply (unlike Sample's columns, whose row count is known before the lock
 * is taken: a page's is not), which an inspection call can afford. */
void rsrv__h_read(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep);
void rsrv__h_sample(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep);

/* ---- rsrv_admin.c: handlers of the control calls and of the Params service ---- */

void rsrv__h_checkpoint(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep);
void rsrv__h_getifnewer(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep);
void rsrv__h_info(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep);
void rsrv__h_publish(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep);
void rsrv__h_ratelimit(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req_bb, rpc_reply *rep);

#endif
