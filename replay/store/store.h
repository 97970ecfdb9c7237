/* store.h: the replay store of one shard: a demo table and an online table of chunked
 * transitions, with validated and deduplicated batch inserts and mixed uniform sampling.
 *
 * The store is pure memory and numerics: no gRPC, no MPI, no files (persist.h adds checkpoints
 * and a write-ahead log on top through a log hook; ratelim.h is the samples-per-insert limiter
 * the server puts in front of it). Everything is preallocated at store_create from the table
 * capacities, so memory stays flat over a long run; the record arenas and the per-slot metadata
 * arrays are also touched there (pre-faulted: resident memory is the full capacity from the
 * start), and an arena of 8 MiB or more is advised to use transparent huge pages (best effort,
 * faster random sampling).
 *
 * Item model (shared with the RPC layer; one item = one chunked transition):
 *   obs[obs_dim]       the stacked observation
 *   action[act_dim]    the whole action chunk (k x a, flattened)
 *   reward             the n-step discounted reward
 *   discount           the bootstrap discount in [0, 1] (0 when terminal)
 *   next_obs[obs_dim]  the observation n steps later
 *   proposer           STORE_PROPOSER_IL / _RL / _DEMO
 *   actor_id, seq      who inserted it and its per-actor sequence number (deduplication)
 *   weight_version     the weight version that acted
 *   episode_end, episode_success   set on the last transition of an episode
 *
 * Tables: at most one table of kind STORE_DEMO (preloaded, never evicted; inserting into a full
 * demo table fails with IB_EFULL) and at most one of kind STORE_ONLINE (a FIFO ring: when full the
 * oldest item is overwritten). Both tables of a store have the same obs_dim and act_dim, because
 * sampling mixes them into one batch.
 *
 * Deduplication (per table, per actor): the table remembers, for each actor_id, the highest seq
 * stored and a window of the STORE_DEDUP_WINDOW seqs below it. An item is a duplicate (skipped,
 * counted, not an error) if its seq is marked in the window, or if it is older than the window
 * (seq <= highest - STORE_DEDUP_WINDOW: too old to tell, assumed already stored). So a retried
 * batch is never stored twice, and batches may arrive out of order by up to the window. Actors
 * must therefore retry an unacknowledged batch before they run STORE_DEDUP_WINDOW seqs ahead of it.
 * An actor that restarts must not restart its seqs below what it already stored under the same
 * actor_id (they would all be skipped as duplicates): continue from store_actor_get's
 * highest_seq + 1 (the server can report it), or use a fresh actor_id.
 * seq == STORE_SEQ_NONE switches deduplication off for that item (e.g. a demo loader that never
 * retries). The number of distinct actors per table is bounded by store_config.max_actors; an
 * insert that would add one more fails with IB_EFULL and stores nothing.
 *
 * Errors: every function that the outside world can make fail returns IB_OK or a negative IB_E*
 * and leaves a message (naming the table, field, index and value, with a HINT) for ib_errmsg().
 * A failed call has no effect (one exception: a failed durability sync, see store_insert). Passing
 * NULL where an object is required is a bug and aborts.
 *
 * Thread safety: a store is thread-safe. Each table has a writer-preferring rwlock: store_insert
 * takes it for writing, store_sample and the info calls take it for reading (sampling holds both
 * tables' read locks while it copies the rows into the caller's batch, so no pointer into the
 * store ever escapes and the sizes it reports match the rows; store_read holds one table's read
 * lock while it copies a page). The sample counter and the rate meters have their own small
 * mutex per table. store_create and store_destroy are not thread-safe with respect to other
 * calls on the same store. */
#ifndef IB_STORE_H
#define IB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* ---- limits and constants ---- */
#define STORE_NAME_MAX 32           /* table name buffer, including the terminating NUL */
#define STORE_MAX_TABLES 2          /* one demo table and one online table */
#define STORE_DEDUP_WINDOW 8192     /* seqs remembered below each actor's highest seq */
#define STORE_SUCCESS_WINDOW 32     /* recent episodes remembered per actor for success rates */
#define STORE_SEQ_NONE UINT64_MAX   /* seq value meaning "do not deduplicate this item" */
#define STORE_ACTOR_DEMO UINT32_MAX /* conventional actor_id for demonstration loaders */

typedef enum store_kind {
  STORE_DEMO = 0,   /* preloaded demonstrations: never evicted, full -> IB_EFULL */
  STORE_ONLINE = 1, /* online transitions: FIFO ring, the oldest item is evicted when full */
} store_kind;

typedef enum store_proposer {
  STORE_PROPOSER_IL = 0,   /* the imitation (BC) policy proposed the executed action */
  STORE_PROPOSER_RL = 1,   /* the RL actor proposed it */
  STORE_PROPOSER_DEMO = 2, /* a demonstration */
} store_proposer;

/* Which table a sample fell back to because the requested one was empty. */
typedef enum store_fallback {
  STORE_FALLBACK_NONE = 0,
  STORE_FALLBACK_DEMO_EMPTY = 1,   /* demo share was taken from the online table */
  STORE_FALLBACK_ONLINE_EMPTY = 2, /* online share was taken from the demo table */
} store_fallback;

/* The declared spec of one table. */
typedef struct store_spec {
  char name[STORE_NAME_MAX]; /* unique, non-empty; "demo" and "online" by default */
  int obs_dim;               /* > 0 */
  int act_dim;               /* > 0 (k x a for an action chunk) */
  uint64_t capacity;         /* > 0 transitions; memory is preallocated for all of them */
  store_kind kind;
} store_spec;

/* Store-wide settings. Zero fields take the defaults given. */
typedef struct store_config {
  uint32_t max_actors;       /* distinct actor_ids per table (default 4096) */
  uint32_t max_insert_batch; /* items per store_insert call (default 4096) */
  double rate_window_s;      /* window of the inserts/s and samples/s meters (default 10 s) */
} store_config;

/* One item to insert. All pointers are borrowed for the duration of store_insert. The lengths
 * are what the sender claimed (e.g. the decoded repeated-field counts); they are checked against
 * the table spec, so a malformed message is rejected instead of read out of bounds. */
typedef struct store_item {
  const float *obs;      /* [obs_n] */
  const float *action;   /* [act_n] */
  const float *next_obs; /* [next_obs_n] */
  uint32_t obs_n, act_n, next_obs_n;
  float reward;
  float discount;    /* in [0, 1] */
  uint32_t proposer; /* a store_proposer value */
  uint32_t actor_id;
  uint64_t seq; /* per-actor sequence number, or STORE_SEQ_NONE */
  uint64_t weight_version;
  bool episode_end;
  bool episode_success; /* only meaningful when episode_end */
} store_item;

/* What one store_insert did. */
typedef struct store_insert_result {
  uint32_t stored;     /* items written to the table */
  uint32_t duplicates; /* items skipped because their (actor_id, seq) was already stored */
  uint32_t evicted;    /* online items overwritten to make room (FIFO) */
} store_insert_result;

/* A caller-owned sample batch in structure-of-arrays layout, sized once by store_batch_init for
 * at most `cap` items. store_sample fills the first n rows. Items from the demo table come first
 * (rows [0, n_demo)), then the online items (rows [n_demo, n)). */
typedef struct store_batch {
  uint32_t cap; /* rows allocated */
  int obs_dim, act_dim;
  uint32_t n;               /* rows filled by the last store_sample */
  float *obs;               /* [cap x obs_dim] owned */
  float *action;            /* [cap x act_dim] owned */
  float *reward;            /* [cap] owned */
  float *discount;          /* [cap] owned */
  float *next_obs;          /* [cap x obs_dim] owned */
  uint8_t *proposer;        /* [cap] owned */
  uint8_t *from_demo;       /* [cap] owned: 1 if the row came from the demo table */
  uint32_t *actor_id;       /* [cap] owned */
  uint64_t *weight_version; /* [cap] owned */
  uint64_t *slot;           /* [cap] owned: the table slot each row was copied from */
  uint64_t *seq;            /* [cap] owned: each row's per-actor seq (STORE_SEQ_NONE if none) */
  uint8_t *episode_end;     /* [cap] owned: 1 if the row ended its episode */
  uint8_t *episode_success; /* [cap] owned: 1 if that episode succeeded (only with episode_end) */
  /* Result of the last store_sample: */
  uint32_t n_demo, n_online; /* rows taken from each table (n_demo + n_online == n) */
  store_fallback fallback;   /* whether an empty table's share came from the other one */
  uint64_t demo_size;        /* table sizes seen by the sample (0 if the table does not exist) */
  uint64_t online_size;
} store_batch;

/* Per-table statistics (a snapshot). */
typedef struct store_table_info {
  store_spec spec;
  uint64_t size;             /* items stored now */
  uint64_t bytes;            /* bytes preallocated for the items and their metadata */
  uint64_t total_inserts;    /* items stored since creation (restored from checkpoints) */
  uint64_t total_samples;    /* items sampled from this table since creation */
  uint64_t total_evicted;    /* online items overwritten */
  uint64_t duplicates;       /* items skipped as duplicates */
  uint64_t rejected_batches; /* insert calls refused by validation or IB_EFULL */
  double inserts_per_s;      /* over the last rate_window_s (or since creation if shorter) */
  double samples_per_s;
  uint64_t wv_min, wv_max, wv_last; /* weight versions of stored items; 0 if none yet */
  uint32_t actors;                  /* distinct actor_ids seen */
  uint64_t episodes;                /* items with episode_end stored */
  uint64_t successes;               /* of those, with episode_success */
} store_table_info;

/* Per-actor statistics of one table. */
typedef struct store_actor_info {
  uint32_t actor_id;
  uint64_t highest_seq; /* highest seq stored (0 if only STORE_SEQ_NONE items) */
  uint64_t inserts;     /* items stored for this actor */
  uint64_t duplicates;  /* items of this actor skipped as duplicates */
  uint64_t last_weight_version;
  uint64_t last_insert_ns;   /* ib_now_ns() of the last stored item (0 after a restore) */
  uint64_t episodes;         /* episodes ended (all time) */
  uint32_t recent_episodes;  /* min(episodes, STORE_SUCCESS_WINDOW) */
  uint32_t recent_successes; /* successes among the recent_episodes most recent episodes */
} store_actor_info;

typedef struct store store;

/* ---- lifecycle ---- */

/* Creates a store with `n` tables (1..STORE_MAX_TABLES) from `specs` (copied) and `cfg` (copied;
 * NULL for the defaults), preallocating every table. On success *out owns the store; release it
 * with store_destroy. Errors: IB_EINVAL for a bad spec or config (names the table and field),
 * IB_EMISMATCH if the two tables differ in obs_dim/act_dim or have the same kind or name.
 * Out of memory aborts. */
int store_create(store **out, const store_spec *specs, int n, const store_config *cfg);

/* Destroys the store and everything it owns. Accepts NULL. No call may be running on it. */
void store_destroy(store *s);

/* The default spec pair of a shard: "demo" (STORE_DEMO) and "online" (STORE_ONLINE). */
void store_specs_default(store_spec out[2], int obs_dim, int act_dim, uint64_t demo_capacity,
                         uint64_t online_capacity);

/* The bytes store_create would preallocate for a table of spec `sp` under `cfg` (NULL for the
 * defaults), the same figure store_table_info reports as `bytes`; the per-insert scratch buffers
 * (a few hundred KB) are not counted. Pure arithmetic: lets a caller refuse a capacity the
 * machine cannot hold (store_create aborts when memory runs out). The spec is not validated. */
uint64_t store_spec_bytes(const store_spec *sp, const store_config *cfg);

/* ---- tables ---- */

int store_table_count(const store *s);
/* The index of the table called `name`, or IB_ENOTFOUND (message lists the known tables). */
int store_table_find(const store *s, const char *name);
/* The index of the table of `kind`, or IB_ENOTFOUND. */
int store_table_of_kind(const store *s, store_kind kind);
/* The spec of table `t` (0 <= t < store_table_count, else a bug). */
const store_spec *store_table_spec(const store *s, int t);

/* ---- insert ---- */

/* Inserts items[0..n) into the table called `table`. The whole batch is validated first: the
 * table must exist (IB_ENOTFOUND), n <= max_insert_batch (IB_EINVAL), each item must have
 * obs_n == next_obs_n == obs_dim and act_n == act_dim (IB_EINVAL), finite obs, action, reward,
 * discount and next_obs (IB_ENONFINITE), discount in [0, 1] and a known proposer (IB_EINVAL).
 * Then duplicates are skipped (see the top of this file; duplicates within the batch too). If the
 * rest would overflow a demo table (IB_EFULL) or the actor registry (IB_EFULL), or the log hook
 * fails, nothing is stored. On any error nothing is stored and the message names the table,
 * the field, the item index and the bad value. `res` (may be NULL) receives the counts.
 * n == 0 is a valid no-op. When a log hook is set (persist.h), the call returns only after the
 * stored items are durable, so a caller may acknowledge them. The one error after which items
 * stay stored is a failed durability sync (IB_EIO from the hook's sync): they are in memory but
 * possibly not on disk; the caller must not acknowledge, and a retry reports them as duplicates
 * (durable once the next checkpoint succeeds). Thread-safe. */
int store_insert(store *s, const char *table, const store_item *items, size_t n,
                 store_insert_result *res);

/* As store_insert, for a caller that has already checked every float of every item (obs,
 * action, next_obs, reward, discount) for NaN/Inf, e.g. inside its decode copy (the replay
 * server does, itemcodec.h): the store skips that one scan; every other check still runs.
 * Passing a non-finite value here is a bug of the caller (it would be stored). On this path the
 * store reads the items' float arrays only with memcpy, so they may be unaligned (e.g. point
 * straight into a received message). Thread-safe. */
int store_insert_prechecked(store *s, const char *table, const store_item *items, size_t n,
                            store_insert_result *res);

/* ---- sample ---- */

/* Allocates `b` for up to `cap` rows of the given dims (caller-owned; release with
 * store_batch_free). Aborts on out-of-memory; cap, obs_dim, act_dim must be > 0 (bug otherwise). */
void store_batch_init(store_batch *b, uint32_t cap, int obs_dim, int act_dim);
/* Frees the arrays of `b` and zeroes it. Accepts a zeroed batch. */
void store_batch_free(store_batch *b);

/* Copies a uniformly sampled batch of n items (with replacement) into `out`.
 *   demo_fraction in [0, 1]: exactly round(n * demo_fraction) items from the demo table, the
 *     rest from the online table, each uniform within its table;
 *   demo_fraction < 0 ("not given"): uniform over the union of both tables, i.e. in proportion
 *     to the table sizes.
 * If a table with a nonzero share is empty (or absent), its share comes from the other table
 * and out->fallback says so. Uses and advances the caller's `r` (one rng per calling thread).
 * Errors: IB_EINVAL if n == 0, n > out->cap, or demo_fraction > 1 or NaN; IB_EMISMATCH if the
 * batch dims differ from the tables'; IB_EUNAVAIL if both tables are empty. On error `out` is
 * unchanged.
 * Thread-safe; concurrent samplers share each table's read lock. */
int store_sample(store *s, rng *r, uint32_t n, double demo_fraction, store_batch *out);

/* Byte destinations of one sample's columns, for a caller that wants the rows in its own layout
 * (the replay server gathers straight into its reply message). Row i of a column starts at
 * base + i x (the column's row width); any alignment; values are the host's little-endian bytes. */
typedef struct store_cols {
  uint8_t *obs, *action, *next_obs; /* [n x obs_dim], [n x act_dim], [n x obs_dim] float32 */
  uint8_t *reward, *discount;       /* [n] float32 */
  uint8_t *proposer;                /* [n] */
  uint8_t *actor_id;                /* [n] uint32 */
  uint8_t *seq, *weight_version;    /* [n] uint64 */
  uint8_t *flags;                   /* [n] bit 0 episode_end, bit 1 episode_success */
} store_cols;

/* As store_sample, but the rows go to `cols` (borrowed; room for n rows) instead of out's row
 * arrays. `out` still receives slot, from_demo, n, n_demo, n_online, fallback and the table
 * sizes (and must have cap >= n and the tables' dims); its other arrays are not touched. Same
 * errors; on error nothing is written to cols. Thread-safe. */
int store_sample_cols(store *s, rng *r, uint32_t n, double demo_fraction, store_batch *out, const store_cols *cols);

/* ---- read (inspection: a paged scan in age order) ---- */

/* Copies rows [start, start + n) of table t (0 <= t < store_table_count, else a bug) in age
 * order, oldest first (position 0 is the oldest row stored now; a FIFO ring that has wrapped
 * starts at its head), into `out`, with the same values and metadata as sampling: into out's row
 * arrays when `cols` is NULL, else into `cols` (borrowed, room for n rows; out's row arrays are
 * then not touched). A page that reaches past the end stops there: out->n = min(n, size - start),
 * which is 0 when start == size (the end of the table). out->slot receives each row's table slot,
 * out->from_demo the table's kind, out->n_demo / n_online the rows by kind, out->demo_size or
 * online_size the table's size (the other one 0), out->fallback NONE. *size (may be NULL)
 * receives the table's size and *inserted (may be NULL) its total_inserts when the page was read,
 * both under the same lock as the rows: if *inserted differs between two pages, the table changed
 * between them (rows appended, or in a full ring every row moved that many positions towards 0).
 * Rows are read under the table's read lock only; a read is inspection: it counts in neither
 * total_samples nor samples_per_s. Errors: IB_EINVAL if n == 0, n > out->cap, or start is beyond
 * the table's size (the message names the table, start and size); IB_EMISMATCH if out's dims
 * differ from the table's. On error nothing is written. Thread-safe. */
int store_read(store *s, int t, uint64_t start, uint32_t n, store_batch *out, const store_cols *cols,
               uint64_t *size, uint64_t *inserted);

/* ---- statistics ---- */

/* A snapshot of table t's statistics. Thread-safe. */
void store_table_info_get(store *s, int t, store_table_info *out);
/* Copies up to `max` actor records of table t into out (in no particular order) and returns how
 * many actors the table has (which may exceed max). Thread-safe. */
uint32_t store_actors_get(store *s, int t, store_actor_info *out, uint32_t max);
/* The record of one actor of table t, or IB_ENOTFOUND. Thread-safe. */
int store_actor_get(store *s, int t, uint32_t actor_id, store_actor_info *out);
/* How many of items[0..n) table t holds already, by (actor_id, seq) as deduplication decides
 * (items with STORE_SEQ_NONE never count): what a store_insert of them now would skip as
 * duplicates, unless the same actor's rows are inserted meanwhile. Reads only; no validation.
 * Thread-safe (the table's read lock). */
size_t store_stored_count(store *s, int t, const store_item *items, size_t n);

/* ---- memory ---- */

/* Backs the record arenas that asked for transparent huge pages with huge pages again, at once
 * (best effort; persist.h calls it after each checkpoint written by a forked child). A fork shares
 * the arenas copy-on-write, and while the child lives every record the parent writes splits its
 * 2 MiB page into 4 kB pages, of which the kernel copies only the one written; khugepaged mends
 * them far slower than a busy shard checkpoints, so without this a shard under inserts ends up in
 * 4 kB pages: random sampling misses the TLB on most rows again and every fork copies more page
 * tables. This is madvise(MADV_COLLAPSE) (Linux 6.1 and later) over each such arena: the kernel
 * copies each split 2 MiB region into a fresh huge page. Call it only when no child shares the
 * arenas any more (else the copies are wasted). The store stays usable meanwhile: a row in the
 * region being copied waits for it in a page fault (2-4 ms per region on the development VM,
 * where a whole 190 MB arena took 0.26-0.39 s). Returns the
 * bytes of arena the kernel collapsed or found whole; 0 if there is none or the kernel cannot
 * (an older kernel, no free huge page), which changes nothing else. Thread-safe. */
size_t store_huge_collapse(store *s);

/* ---- durability hook (used by persist.h; most callers never touch it) ---- */

/* Called by store_insert with the table's write lock held, after validation and deduplication,
 * before anything is written to memory: `items[0..n)` are exactly the items about to be stored, in
 * order. Must append them to a log (it may buffer) and return IB_OK, or fail with an IB_E* (the
 * insert then stores nothing and returns that error). `*ticket` receives a token for `sync`. */
typedef int (*store_log_append_fn)(void *ctx, int table, const store_item *items, size_t n,
                                   uint64_t *ticket);
/* Called by store_insert after the table lock is released: must return only when everything up to
 * `ticket` is durable (group commit: one fsync may serve many callers). If it fails, the items are
 * in memory but not durable; store_insert returns the error so the caller does not acknowledge. */
typedef int (*store_log_sync_fn)(void *ctx, uint64_t ticket);

/* Installs (or with NULL functions removes) the log hook. Not thread-safe with respect to
 * inserts: call it before the store is shared. */
void store_log_hook_set(store *s, store_log_append_fn append, store_log_sync_fn sync, void *ctx);

#endif /* IB_STORE_H */
