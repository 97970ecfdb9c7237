/* store_impl.h: the insides of a store, shared by store.c and persist*.c only (not installed,
 * not for the server). Names with a double underscore are internal to ib_store.
 *
 * Layout of one table: `rec` is one 64-byte aligned arena of capacity records; a record is
 * [obs (O) | next_obs (O) | action (A) | reward | discount | pad] floats, `stride` floats long,
 * with stride a multiple of 16 so every record starts on a cache line (the gather prefetches whole
 * records). Per-slot metadata lives in parallel arrays (the source of truth: checkpoints, info).
 * When the pad has room (STORE__META_FLOATS floats, as for the paper's obs 69 / action 7: 13 floats
 * of pad), a copy of the metadata also sits in the pad at float `meta_off` (seq, weight version,
 * actor id, then proposer and flags bytes), so a sampled row costs the record's lines only instead of
 * five more random lines in the arrays: the gather is bound by how many cache misses it can have in
 * flight. Slots [0, size) are always filled: the ring writes slot `head` and wraps at capacity, so
 * uniform sampling draws a slot in [0, size). */
#ifndef IB_STORE_IMPL_H
#define IB_STORE_IMPL_H

#include <pthread.h>

#include "store.h"

#define STORE__WIN_WORDS (STORE_DEDUP_WINDOW / 64)
#define STORE__META_FLOATS 6 /* seq (2), weight version (2), actor id (1), proposer + flags (1) */
#define STORE__METER_SLOTS 64 /* one-second buckets; rate_window_s is capped below this */

/* Per-actor state of one table (open-addressing hash entry). */
typedef struct store__actor {
  uint32_t id;
  uint8_t used;
  uint8_t has_seq;                /* a seq other than STORE_SEQ_NONE was stored */
  uint64_t high;                  /* highest seq stored */
  uint64_t win[STORE__WIN_WORDS]; /* bit i set <=> seq high - i is stored */
  uint64_t inserts, duplicates, last_wv, last_ns, episodes;
  uint32_t success_bits; /* bit 0 = the most recent episode succeeded */
  uint64_t touch_gen;    /* the insert call that last saved this entry for undo */
} store__actor;

typedef struct store__meter {
  uint64_t sec[STORE__METER_SLOTS];
  uint64_t count[STORE__METER_SLOTS];
} store__meter;

typedef struct store__table {
  store_spec spec;
  int idx;
  pthread_rwlock_t lock; /* write: insert, restore, checkpoint; read: sample, info */
  uint32_t stride;       /* floats per record */
  uint32_t meta_off;     /* float offset of the metadata copy in each record; 0 = none (no room) */
  float *rec;            /* [capacity x stride] owned */
  size_t huge_bytes;     /* rec's length rounded up to 2 MiB if it asked for huge pages; 0 if not */
  uint8_t *proposer;     /* [capacity] owned */
  uint8_t *flags;        /* [capacity] owned: bit 0 episode_end, bit 1 success */
  uint32_t *actor_id;    /* [capacity] owned */
  uint64_t *seq;         /* [capacity] owned */
  uint64_t *wv;          /* [capacity] owned */
  uint64_t head, size;
  /* Counters changed only under the write lock. */
  uint64_t total_inserts, total_evicted, duplicates, rejected_batches, episodes, successes;
  uint64_t wv_min, wv_max, wv_last;
  /* Actor registry. */
  store__actor *actors; /* [actor_cap] owned, actor_cap a power of two */
  uint32_t actor_cap, nactors, max_actors;
  uint64_t gen; /* insert-call counter for the undo log */
  /* Scratch for one insert call (used under the write lock). */
  uint8_t *keep;      /* [max_insert_batch] owned */
  store_item *kept;   /* [max_insert_batch] owned */
  store__actor *undo; /* [max_insert_batch] owned: saved entries */
  uint32_t *undo_pos; /* [max_insert_batch] owned: their hash positions */
  /* Sample counter and rate meters: changed under stat_mu (samplers hold only the read lock). */
  pthread_mutex_t stat_mu;
  uint64_t total_samples;
  store__meter m_insert, m_sample;
} store__table;

struct store {
  store_config cfg;
  int ntables;
  store__table tables[STORE_MAX_TABLES];
  uint64_t created_ns;
  store_log_append_fn log_append;
  store_log_sync_fn log_sync;
  void *log_ctx;
};

/* Stores items[0..n) into table t: the body of store_insert after validation, with the log hook
 * used only if `use_log`. Takes the table's write lock. */
int store__insert_apply(store *s, int t, const store_item *items, size_t n, bool use_log,
                        store_insert_result *res);
/* Validates items for table t (no lock needed: specs are immutable). */
int store__validate(const store *s, int t, const store_item *items, size_t n);
/* Finds the actor entry of `id` in table tb; creates it if `create` and there is room.
 * Returns NULL if absent (or full when creating). Caller holds the write lock. */
store__actor *store__actor_find(store__table *tb, uint32_t id, bool create);
/* Takes / releases every table's write lock, in index order. */
void store__lock_all(store *s);
void store__unlock_all(store *s);
/* Writes the metadata copy of records [0, size) from the arrays (after a restore: checkpoints from
 * before the copy existed have zero pads). No-op when the table has no copy. Lock held. */
void store__meta_rebuild(store__table *tb);
/* Writes one stored record back into an item view (pointers into the table). Lock held. */
void store__slot_item(const store__table *tb, uint64_t slot, store_item *out);

#endif /* IB_STORE_IMPL_H */
