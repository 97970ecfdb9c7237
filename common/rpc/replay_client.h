/* replay_client.h: the client of the sharded replay service (ibrl-replay, proto/ibrl.proto).
 * Actors stream their transitions to one shard through an rc_writer; the learner samples
 * mixed demo/online batches from all shards in proportion to their sizes (rc_sample, or
 * rc_sampler to keep the next batch in flight while it trains on this one); tools read Info,
 * ask for checkpoints, steer the rate limiter and check health.
 *
 * Connection model: one rc_client holds one gRPC channel per shard ("host:port,..."), an
 * optional shared token (sent as "authorization: Bearer <token>") and optional TLS roots, plus
 * a background thread that polls the channels so a shard that went away is reconnected within
 * the reconnect backoff (docs/grpc-core.md pitfall 4), and probes the shards that sampling found
 * down (see rc_sample). Every call has a deadline: a shard that is down gives IB_EUNAVAIL (fail
 * fast) or IB_ETIMEDOUT, never a hang. Every channel also pings
 * its shard (keepalive, WIRE_DEFAULT_KEEPALIVE_MS in wire.h), so a shard that vanished without
 * closing the connection (its machine or network died, or it is frozen) is dropped within two
 * keepalive periods (20 s): calls in flight then fail IB_EUNAVAIL and the next call reconnects,
 * instead of every call timing out on a dead connection that never reconnects.
 *
 * Status mapping (gRPC -> IB_E*): UNAVAILABLE, CANCELLED -> IB_EUNAVAIL; DEADLINE_EXCEEDED ->
 * IB_ETIMEDOUT; INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED -> IB_EINVAL; NOT_FOUND ->
 * IB_ENOTFOUND; RESOURCE_EXHAUSTED -> IB_EFULL; FAILED_PRECONDITION -> IB_ESTATE; anything else
 * (UNIMPLEMENTED, INTERNAL, a reply that does not decode) -> IB_EPROTO. ib_errmsg() then names
 * the shard and the method, carries the server's message and gives a HINT.
 *
 * Thread-safety: an rc_client is thread-safe (the channels are; the sampling rng, the cached
 * table sizes and the shards' down state are under the client's mutex); several threads may call
 * rc_sample, rc_info_get, ... on one client at once. An rc_writer belongs to one thread. */
#ifndef IB_REPLAY_CLIENT_H
#define IB_REPLAY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

#define RC_MAX_SHARDS 64
#define RC_MAX_ACTORS 64 /* actor records per shard in rc_shard_info (the proto bound) */
#define RC_DEFAULT_DEADLINE_MS 5000
#define RC_PROPOSER_IL 0
#define RC_PROPOSER_RL 1
#define RC_PROPOSER_DEMO 2

/* ---- connection ---- */

typedef struct rc_opts {
  const char *shards;    /* "host:port,host:port,..." (required; 1..RC_MAX_SHARDS entries) */
  const char *token;     /* shared token or NULL/"" (none) */
  const char *tls_roots; /* PEM file of trusted roots: use TLS; NULL = plaintext */
  int deadline_ms;       /* deadline of each call; 0 = RC_DEFAULT_DEADLINE_MS */
  long max_message_bytes; /* receive limit; 0 = 16 MiB (the server's default) */
  int reconnect_ms;      /* reconnect backoff; 0 = 250 ms */
  uint64_t seed;         /* seed of the sampling rng (shard choice per row) */
  int keepalive_ms;      /* channel keepalive: 0 = WIRE_DEFAULT_KEEPALIVE_MS (wire.h), -1 = off */
} rc_opts;

typedef struct rc_client rc_client;

/* Parses the shard list and creates one channel per shard (no I/O yet: connecting happens on
 * the first call). Calls grpc_init() (balanced by rc_client_close). On success *out owns the
 * client. Errors: IB_EINVAL (empty or malformed shard list, too many shards: the message
 * names the entry), IB_EIO (unreadable TLS roots file). */
int rc_client_open(rc_client **out, const rc_opts *opts);
/* Stops the poller, destroys the channels, frees the client. Accepts NULL. No call may be
 * running on the client, and its writers must be closed first. A probe of a down shard in flight
 * (see rc_sample) is cancelled, not waited for: close does not wait for a shard's deadline. */
void rc_client_close(rc_client *c);

int rc_client_shard_count(const rc_client *c);
/* The "host:port" of shard i (borrowed, valid while c is open). */
const char *rc_client_target(const rc_client *c, int i);
/* The shard an actor's inserts go to: actor_id % shard count. */
int rc_client_shard_of(const rc_client *c, uint32_t actor_id);
/* The shards that sampling found down and leaves out until their probe succeeds (see rc_sample):
 * bit i for shard i, 0 when all are up. A caller that reads shards only for bookkeeping (Info for
 * metrics) can skip these rather than wait a deadline for a frozen one. Thread-safe; a snapshot. */
uint64_t rc_client_shards_down(rc_client *c);

/* ---- batches (caller-owned, structure of arrays) ---- */

/* Rows of transitions. For inserts the caller fills rows [0, n); rc_writer_write stamps
 * actor_id and seq. rc_sample fills rows [0, n): the demo rows first (rows [0, n_demo), unless
 * a shard's demo table was empty and it fell back to online items), then the online rows;
 * `from_demo` tells each row's table and `proposer` who acted; actor_id, seq, weight_version,
 * episode_end and episode_success are the stored item's (so episodes can be rebuilt). */
typedef struct rc_batch {
  int cap;                 /* rows allocated */
  int obs_dim, act_dim;
  int n;                   /* rows filled */
  float *obs;              /* [cap x obs_dim] owned */
  float *action;           /* [cap x act_dim] owned */
  float *reward;           /* [cap] owned */
  float *discount;         /* [cap] owned */
  float *next_obs;         /* [cap x obs_dim] owned */
  uint8_t *proposer;       /* [cap] owned: RC_PROPOSER_* */
  uint8_t *episode_end;    /* [cap] owned: 0/1 */
  uint8_t *episode_success; /* [cap] owned: 0/1 */
  uint8_t *from_demo;      /* [cap] owned: sample only, 1 if the row came from a demo table */
  uint32_t *actor_id;      /* [cap] owned */
  uint64_t *seq;           /* [cap] owned */
  uint64_t *weight_version; /* [cap] owned */
  int n_demo;              /* sample only: rows drawn from demo tables */
  uint64_t shards_skipped; /* sample only: bit i set if shard i was down and the rows came from the others */
} rc_batch;

/* Allocates `b` for up to `cap` rows (all > 0, else a bug; OOM aborts); n = 0. */
void rc_batch_init(rc_batch *b, int cap, int obs_dim, int act_dim);
/* Frees the arrays and zeroes `b`. Accepts a zeroed batch. */
void rc_batch_free(rc_batch *b);

/* ---- insert (actor side) ---- */

typedef struct rc_writer rc_writer;

typedef struct rc_writer_stats {
  uint64_t acked;       /* items the server acknowledged (inserted + duplicates) */
  uint64_t inserted;    /* of those, newly stored */
  uint64_t duplicates;  /* of those, already stored (a retry of an earlier send) */
  uint64_t pending;     /* items sent or buffered but not acknowledged yet */
  uint64_t awaiting;    /* of those, items of a half-closed stream whose reply is not read yet: the shard
                         * may have acknowledged (and made durable) them already */
  uint64_t retries;     /* stream restarts after a failure */
  uint64_t partial;     /* streams the shard acknowledged in part: its rate limiter held them past the
                         * writer's max_wait (rc_writer_max_wait); the rest was resent, not counted in
                         * retries */
  uint64_t next_seq;    /* the seq the next written item gets */
  uint64_t lost;        /* acknowledged items the shard no longer holds (found from its replies'
                         * counts after it restarted: a disk that lost flushed data, --salvage, or
                         * --durability ckpt); each new loss is also logged. 0 normally */
} rc_writer_stats;

/* Opens a writer for `actor_id` into table `table` ("online", "demo"; NULL = "online") of
 * shard actor_id % n_shards. Items get seq = first_seq, first_seq + 1, ... in write order.
 * `max_pending` bounds the items kept for retry (1..8192, the store's dedup window; 0 = 1024):
 * when a write would exceed it, the writer flushes first. No I/O happens until the first
 * write. `c` is borrowed and must outlive the writer. Errors: IB_EINVAL (bad table name or
 * max_pending). */
int rc_writer_open(rc_writer **out, rc_client *c, const char *table, uint32_t actor_id,
                   uint64_t first_seq, int max_pending);

/* Checks rows [0, b->n) (finite values, discount in [0, 1], a known proposer: IB_ENONFINITE /
 * IB_EINVAL naming the row and field, and nothing is taken), stamps them with actor_id and
 * consecutive seqs, encodes them into one message kept for retry, and sends it on the open
 * Insert stream (opening it if needed). The send completes in the background: the next write
 * or flush waits for it (at most the client's deadline). The rows count as acknowledged only
 * after a flush succeeds.
 * Returns IB_OK (buffered and sent or being sent; a send that fails is retried by the flush),
 * or a flush error (see rc_writer_flush) when the buffer had to be flushed first; then nothing
 * of `b` was taken and the caller may retry the same call. IB_EINVAL if b->n exceeds
 * max_pending or b's dims differ from the first batch's. */
int rc_writer_write(rc_writer *w, const rc_batch *b);

/* Finishes the open stream and waits for the server's reply, which acknowledges every pending
 * item. If the stream or the reply fails, the stream is reopened and every pending item is
 * resent with the same seqs (the shard drops the ones it already stored), with backoff (20 ms
 * doubling to 1 s), until `timeout_ms` (< 0: the client's deadline) has passed. Retried:
 * IB_EUNAVAIL, IB_ETIMEDOUT and IB_EFULL (the shard's rate limiter gave up, or a full demo
 * table). Partial acknowledgements: every message carries the writer's max_wait (see
 * rc_writer_max_wait), the most time the shard may hold the stream in its rate limiter; past it
 * the shard stores no more of the stream and acknowledges the messages it stored, which are then
 * dropped from the pending ones (the rest is resent at once, with no backoff, when some were
 * acknowledged), so under backpressure rows stored once are not resent and counted as duplicates;
 * a retry after the rate limiter held the stream is not started unless max_wait (plus 50 ms)
 * remains, so that the flush does not cancel a stream the shard may still store.
 * Returns IB_OK (all acknowledged), or the last error with the items still pending (IB_EFULL
 * "rate limited" when the limiter held the rest for the whole timeout).
 * Refusals a resend cannot fix (IB_EINVAL: a malformed item, NaN/Inf, an unknown table, a
 * missing token; IB_ENOTFOUND, IB_ESTATE, IB_EPROTO) are not retried: the pending items are
 * dropped, and the message says how many. */
int rc_writer_flush(rc_writer *w, long timeout_ms);

/* on = 1: pipelined. The writer half-closes its stream each time it holds max_pending / 2 rows and
 * goes on with a fresh stream at once, reading the previous stream's reply (the acknowledgement)
 * only when the fresh one is full in turn; so a fast writer never waits for a reply. The shard may
 * store the two streams' rows out of order: if the writer fails for good or its process dies, its
 * unacknowledged rows can be a gap below rows that were stored, where an in-order writer (on = 0,
 * the default) only leaves a tail. For bulk loading (ibrl-bench replay uses it with max_pending
 * 8192); an actor restarted from the shard's highest stored seq would never fill such a gap. When
 * the half-closed stream is acknowledged in part, the fresh one is half-closed too and its reply
 * read (within the shard's wait budget), so the rows the shard stored from either are dropped and
 * only the rest are resent.
 * Switch only while nothing is pending (after rc_writer_open or a successful flush): IB_ESTATE
 * otherwise. */
int rc_writer_pipeline(rc_writer *w, int on);

/* Sets the wait budget that the messages written from now on carry (InsertRequest.max_wait_ms):
 * the most time, summed over a stream, that the shard may hold the stream in its rate limiter
 * before it acknowledges what it stored and leaves the rest to a resend. Default: half the
 * client's deadline. Keep it below the timeouts given to rc_writer_flush, or a flush gives up
 * (cancelling the stream) before the shard's partial acknowledgement comes. 0 = off: a blocked
 * stream is then cancelled at the flush timeout and resent whole. IB_EINVAL outside
 * [0, 3600000]. */
int rc_writer_max_wait(rc_writer *w, int ms);

void rc_writer_stats_get(const rc_writer *w, rc_writer_stats *out);

/* Flushes (with the client's deadline) and frees the writer. Returns the flush status (items
 * still pending are lost and counted in the message). Accepts NULL (returns IB_OK). */
int rc_writer_close(rc_writer *w);

/* ---- sample (learner side) ---- */

/* Draws `n` rows (1..b->cap) into `b` from all shards. demo_fraction in [0, 1]:
 * round(n * demo_fraction) rows from the demo tables and the rest from the online tables (when
 * every demo table is empty all rows come from the online ones, and the other way round;
 * b->n_demo says how many came from demo tables); < 0: plain proportional to the total sizes.
 * Each row's shard is drawn in proportion to that shard's table size (sizes cached from each
 * shard's last reply; a shard whose sizes are older than 1 s, or every shard when all cached
 * sizes are 0, is asked with Info first), and the per-shard calls run in parallel (the Info calls
 * too, so one round of them waits one deadline at most; a shard that fails its Info as down is
 * left out of the draw as below).
 * Down shards: a shard whose call fails with UNAVAILABLE or DEADLINE_EXCEEDED is marked down and
 * skipped: the rows are drawn from the live shards in proportion to their sizes, b->shards_skipped
 * has its bit set, and a warning names it (once per outage). A down shard stays out of every
 * rc_sample and rc_sampler batch until a probe succeeds: the client's poller thread, off the
 * sampling path, asks it for Info (deadline: the client's, at most 2 s) 1 s after it went down and
 * then 1 s after each failed probe; a successful probe refreshes its sizes and brings it back ("is
 * back in the sample" in the log). So only the call that finds a shard down waits for it (up to one
 * deadline); later samples never do, however long it stays down. A shard that answers Info but
 * whose Sample timed out (its rate limiter held the call, e.g. an online table under min_size) is
 * kept out at least 1 s after each failure, 2 s and then 4 s when it fails again each time it is
 * back, until one of its Samples succeeds. When every shard is down, rc_sample tries them all, at
 * once: with none answering it fails within one deadline, whatever the number of shards, instead
 * of waiting for a probe (a shard that answers Info and then not its Sample adds one deadline).
 * b's dims must match the shards'. Errors: IB_EINVAL (bad n or fraction, dims), IB_ESTATE (all
 * tables of the live shards empty), IB_ETIMEDOUT (every shard tried ran out of time: rate limiters
 * holding the calls, e.g. online tables below min_size, or slow or frozen shards), IB_EUNAVAIL (no
 * shard reachable; the message carries the last shard's error), server errors; on error b->n = 0. */
int rc_sample(rc_client *c, rc_batch *b, int n, double demo_fraction);

/* A prefetching sampler: rc_sample with one sample kept in flight ahead of the caller, so the
 * shards draw, gather and send batch i+1 while the caller decodes (and then trains on) batch i.
 * Each rc_sampler_next returns the batch that was in flight (drawn when the previous call
 * returned, so one batch older than rc_sample's would be) and starts the next one. The first
 * call, and any call after a shard went down, an error or a failed start, samples synchronously with
 * rc_sample's rules (retries without a down shard, the same errors). Down shards are left out
 * of the batches started after they were found down, until their probe succeeds, as in rc_sample:
 * a batch already in flight to a shard that then stops answering waits for it (one deadline), the
 * next ones do not. Every batch is `n` rows with
 * the same demo_fraction as rc_sample takes. A shard's rate limiter counts the prefetched
 * sample when it serves it; one that the limiter holds waits there like any sample (up to the
 * client's deadline), and rc_sampler_close cancels it instead of waiting for it. Between calls nothing of the caller's thread runs: the client's
 * poller (after 20 ms idle) and gRPC's own threads move the prefetched reply.
 * Errors: rc_sampler_open IB_EINVAL (n < 1, bad fraction); rc_sampler_next as rc_sample, plus
 * IB_EINVAL when n exceeds b->cap; on error b->n = 0 and the next call starts afresh.
 * Ownership: `c` is borrowed and must outlive the sampler. Thread-safety: a sampler belongs
 * to one thread (other threads may use the client meanwhile). */
typedef struct rc_sampler rc_sampler;
int rc_sampler_open(rc_sampler **out, rc_client *c, int n, double demo_fraction);
int rc_sampler_next(rc_sampler *s, rc_batch *b);
/* Cancels the prefetched sample and frees the sampler. Accepts NULL. */
void rc_sampler_close(rc_sampler *s);

/* ---- read (inspection: a paged scan of one table) ---- */

/* Reads rows [start, start + n) of table `table` ("demo" or "online"; NULL = "online") of shard
 * `shard` into rows [0, b->n) of b, in age order, oldest first (position 0 is the oldest row the
 * table holds now), in one Read call. A page that reaches past the end of the table holds the rows
 * up to it (b->n < n), and start equal to the table's size gives b->n = 0: the end. Every field of
 * a row is the stored item's (as rc_sample fills them); from_demo is 0 and n_demo 0 (the caller
 * knows the table). *table_size and *inserted (each may be NULL) receive the table's size and its
 * total inserted count (Info's `inserted`) when the page was read: if *inserted differs between
 * two pages, the table changed in between (appended rows, or a full FIFO ring whose rows moved
 * towards the oldest position by that many: some missed, none repeated). The shard's rate
 * limiter does not count or hold a Read, nor do its sample counters. n is 1..b->cap and at most
 * the shard's max sample batch (4096 by default). Errors: IB_EINVAL (bad shard index, n, table
 * name; and from the shard, INVALID_ARGUMENT: an unknown table, start beyond the table's size, n
 * above its bound; UNAUTHENTICATED: a missing or wrong token), IB_EMISMATCH (b's dims differ
 * from the shard's), IB_EUNAVAIL / IB_ETIMEDOUT (shard down or slow), IB_EPROTO (a shard
 * without Read: UNIMPLEMENTED; a malformed reply); on error b->n = 0. Thread-safe. */
int rc_read(rc_client *c, int shard, const char *table, uint64_t start, rc_batch *b, int n, uint64_t *table_size,
            uint64_t *inserted);

/* ---- info and control ---- */

typedef struct rc_table_info {
  char name[32];
  int kind; /* 0 = DEMO, 1 = ONLINE */
  uint64_t size, capacity, inserted, sampled, duplicates;
  double inserts_per_s, samples_per_s; /* the shard's own meters (10 s window) */
  uint64_t bytes;                      /* memory the shard preallocated for the table */
} rc_table_info;

typedef struct rc_limiter_info {
  bool paused;
  double samples_per_insert, error_buffer;
  uint64_t min_size, inserts, samples;
  double insert_blocked_s, sample_blocked_s;
  uint64_t insert_timeouts, sample_timeouts;
  uint64_t insert_partial_acks; /* Insert streams acknowledged in part: the limiter held them past their
                                 * max_wait (not counted in insert_timeouts, which are failed calls) */
} rc_limiter_info;

typedef struct rc_actor_info {
  uint32_t actor_id;
  uint64_t last_seq;
  uint32_t episodes, successes;
  uint64_t weight_version;
  uint64_t inserted;   /* its items stored in the online table, all time */
  uint64_t duplicates; /* its items dropped as already stored */
} rc_actor_info;

typedef struct rc_shard_info {
  int shard_index;
  int obs_dim, act_dim;
  int n_tables;
  rc_table_info tables[4];
  rc_limiter_info limiter;
  int n_actors;
  rc_actor_info actors[RC_MAX_ACTORS];
  uint64_t params_version, checkpoints;
  double params_age_s;               /* seconds since params_version was published (0 if none) */
  uint64_t params_published_unix_ms; /* wall-clock ms of that publish (0 if none) */
  uint64_t params_bytes;             /* size of the published blob */
  char durability[8];
  /* Durability health (ibrl-replay with --ckpt-dir): broken while inserts cannot be made durable
   * as configured (a failed write or fsync of the log: disk full, I/O errors; or, --durability
   * ckpt, a failed checkpoint). A shard older than these fields reports not broken. */
  bool durability_broken;
  char durability_error[384];   /* the cause: operation, file, error text ("" when not broken) */
  double durability_broken_s;   /* for how long */
  uint64_t durability_retries;  /* checkpoints that failed since it broke */
  double durability_retry_in_s; /* until the shard's next attempt of its own (0: none due) */
  char salvage[512];            /* what a --salvage start kept and lost, and where the files are ("" if
                                   the shard did not need it) */
  uint64_t restore_missing_acked; /* acknowledged rows its restore at start did not find (a disk that
                                     lost flushed data); 0 normally */
  double rtt_ms; /* measured round trip of this Info call */
} rc_shard_info;

/* Info of shard i into *out (also refreshes the cached table sizes). */
int rc_info_get(rc_client *c, int shard, rc_shard_info *out);

typedef struct rc_checkpoint_info {
  char path[256];
  uint64_t items;
  double seconds;
} rc_checkpoint_info;

/* Asks shard i to write a checkpoint now (out may be NULL). IB_ESTATE if the shard has no
 * checkpoint directory. */
int rc_checkpoint(rc_client *c, int shard, rc_checkpoint_info *out);

typedef enum rc_limit_op {
  RC_LIMIT_GET = 0,
  RC_LIMIT_PAUSE = 1,  /* stop limiting, e.g. while preloading demos */
  RC_LIMIT_RESUME = 2,
  RC_LIMIT_SET = 3,    /* set samples_per_insert, error_buffer, min_size */
} rc_limit_op;

/* Rate-limiter control on shard i; `set` is read for RC_LIMIT_SET only (its three settings),
 * `out` (may be NULL) receives the limiter state after the operation. */
int rc_ratelimit(rc_client *c, int shard, rc_limit_op op, const rc_limiter_info *set,
                 rc_limiter_info *out);

/* grpc.health.v1 Check of `service` ("" = the server) on shard i: *serving = 1 for SERVING,
 * 0 otherwise. Returns the call status (IB_EUNAVAIL when unreachable, IB_ENOTFOUND for an
 * unknown service name). */
int rc_health(rc_client *c, int shard, const char *service, int *serving);

/* ---- internal, shared with params_client.c ---- */

/* Runs one unary call of `path` on shard i: sends `req` (borrowed), waits up to deadline_ms
 * (< 0: the client's), and returns the reply in *reply (caller destroys it) or an IB_E* with
 * the message naming the shard and `what`. */
int rc__unary(rc_client *c, int shard, const char *path, const char *what, grpc_byte_buffer *req,
              grpc_byte_buffer **reply, long deadline_ms);
long rc__max_message_bytes(const rc_client *c);
/* How many probes of down shards are in flight now (for tests). */
int rc__probes_in_flight(rc_client *c);

/* The hand codec of the hot messages (exposed for tests). rc__encode_insert returns a new
 * InsertRequest for `table` holding rows [lo, hi) of b (caller destroys it). */
grpc_byte_buffer *rc__encode_insert(const rc_batch *b, int lo, int hi, const char *table);
/* The same rows as one ItemColumns (InsertRequest.columns), as rc_writer_write sends them. */
grpc_byte_buffer *rc__encode_insert_columns(const rc_batch *b, int lo, int hi, const char *table);

typedef struct rc__reply_info {
  uint32_t n_demo, n_online;
  uint64_t demo_size, online_size;
  int n_items;
  uint64_t table_size, inserted; /* ReadReply only (its fields 7 and 8; a SampleReply has neither) */
} rc__reply_info;

/* Parses SampleReply `bb` (borrowed) into b (or a ReadReply: its rows use the same field numbers,
 * and its table_size and inserted land in out): item i goes to row demo_off + i for
 * i < n_demo_req, else online_off + (i - n_demo_req); at most max_items items. The rows may come as items, as
 * columns (what rc_sample asks for) or both (items first); n_items counts both. Returns IB_OK, IB_EPROTO
 * (malformed, too many items) or IB_EMISMATCH (array sizes differ from b's dims), with the
 * message starting with `who`. Rows written before an error hold partial data. */
int rc__decode_sample_reply(rc_batch *b, int demo_off, int n_demo_req, int online_off, int max_items,
                            const grpc_byte_buffer *bb, rc__reply_info *out, const char *who);

#endif /* IB_REPLAY_CLIENT_H */
