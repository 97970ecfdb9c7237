/* store.c: tables, validated and deduplicated batch inserts, mixed uniform sampling, statistics.
 *
 * Design (see store_impl.h for the memory layout):
 *  - Everything is allocated in store_create; inserts and samples never allocate. An insert
 *    uses per-table scratch arrays sized for max_insert_batch, a sample uses the caller's batch.
 *  - An insert validates the whole batch without a lock (specs never change), then under the
 *    table's write lock: deduplicates item by item while saving every actor entry it is about to
 *    change (an undo log, so a later failure restores the registry exactly), checks room (demo
 *    full, actor registry full), hands the kept items to the log hook, and only then copies them
 *    into the ring. So a failed call leaves no trace. The log fsync (group commit) happens after
 *    the lock is released, so sampling is not stalled by the disk.
 *    Deduplication marks a run of an actor's consecutive new seqs (the usual batch) with one shift
 *    of its window instead of one per item, and the kept items are copied aside only for the log
 *    hook. Records are written with streaming stores (slot_writer): the ring is not read back until
 *    random samples much later, so the lines need not be fetched or kept in cache.
 *  - Record arenas are touched at creation (no page faults while serving) and, when large, backed
 *    by transparent huge pages where the kernel allows (arena_alloc). A checkpoint's fork splits
 *    those the inserts write while its child lives; store_huge_collapse mends them afterwards.
 *  - A sample draws all slots first (one rng_below per row), then gathers the rows with a software
 *    prefetch 32 records ahead into the L2 cache, which roughly halves the gather time of random
 *    600-byte records from DRAM (anchors.md, "replay batch gathering"); huge pages cut it further.
 *    The prefetch is an asm statement (prefetch_line): GCC 12 silently deleted the builtin's. The
 *    gather is bound by how many cache misses can be in flight, so a row's metadata is read from
 *    the copy in its record's pad when there is room (store_impl.h): 10 lines a row instead of 15. Both
 *    tables' read locks are held together (in index order, as every multi-lock path does) so the
 *    sizes and the rows agree. The rows go either into the caller's store_batch or,
 *    with store_sample_cols, into byte columns of the caller's choosing (the replay server's
 *    reply message), which saves the server a copy of the whole batch.
 *  - Counters changed by inserts live under the write lock; the sample counter and both rate
 *    meters have their own mutex because samplers only hold the read lock.
 *  - store_insert_prechecked is store_insert without the NaN/Inf scan, for the replay server,
 *    which checks while it decodes; on that path item floats are read with memcpy only, since
 *    they may point (unaligned) into a received message.
 *  - store_read (a paged scan for inspection, e.g. an export) computes the slots of positions
 *    [start, start + n) counted from the oldest row and runs the sampling gather over them, under
 *    the one table's read lock; it leaves the sample counter and meters alone. */
#include "store_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ib.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Orders the streaming stores of slot_writer before whatever follows (the lock release that
 * publishes the records to samplers and to checkpoints). */
static void store_fence(void) {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

/* Rows ahead of the one being copied whose record is prefetched (prefetch_line says why 32). */
#define PREFETCH_AHEAD 32

/* madvise advice 25 of Linux 6.1's uapi (store_huge_collapse), which glibc 2.36 does not name; an
 * older kernel answers EINVAL. */
#if defined(__linux__) && !defined(MADV_COLLAPSE)
#define MADV_COLLAPSE 25
#endif

/* Record arenas of at least this many bytes are aligned to and backed by transparent huge pages. */
#define HUGE_MIN_BYTES (8u << 20)
#define HUGE_PAGE (2u << 20)

/* calloc with every page touched now, for the per-slot metadata arrays: like the record arena,
 * resident from the start (store.h promises flat memory; untouched, they grew the RSS by 22 B a row
 * until the ring first filled). A write per page faults it in; calloc+memset could be folded into a
 * plain calloc by the compiler. */
static void *meta_alloc(size_t n, size_t size) {
  unsigned char *p = ib_xcalloc(n, size);
  volatile unsigned char *v = p;
  for (size_t off = 0; off < n * size; off += 4096) v[off] = 0;
  return p;
}

/* Allocates a zeroed, 64-byte aligned record arena of `bytes`, every page touched now, so no
 * insert pays a page fault (memory = the configured capacity from the start, as before). A large
 * arena is aligned to 2 MiB and advised MADV_HUGEPAGE before it is touched, so the kernel backs it
 * with transparent huge pages where it can (THP "madvise" mode is common): random sampling then
 * misses the TLB far less (anchors.md: the prefetched gather of 256 random records drops from ~51
 * to ~35 us). The advice is best effort; without THP the arena is the same memory in 4 kB pages.
 * *huge_bytes receives the advised length (0 for a small arena). */
static float *arena_alloc(size_t bytes, size_t *huge_bytes) {
  *huge_bytes = 0;
  if (bytes < HUGE_MIN_BYTES) return ib_xaligned(bytes);
  size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
  void *p = aligned_alloc(HUGE_PAGE, rounded);
  if (p == NULL) return ib_xaligned(bytes); /* aborts with the usual message if memory is short */
#ifdef MADV_HUGEPAGE
  (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
  memset(p, 0, rounded);
  *huge_bytes = rounded;
  return p;
}

static const char *kind_name(store_kind k) { return k == STORE_DEMO ? "demo" : "online"; }

/* ---- rate meters: one-second buckets ---- */

static void meter_add(store__meter *m, uint64_t now_ns, uint64_t n) {
  uint64_t sec = now_ns / 1000000000ull;
  unsigned b = (unsigned)(sec % STORE__METER_SLOTS);
  if (m->sec[b] != sec) {
    m->sec[b] = sec;
    m->count[b] = 0;
  }
  m->count[b] += n;
}

/* Events per second over the last `window` seconds (the current partial second included), or
 * over the store's lifetime when that is shorter. */
static double meter_rate(const store__meter *m, uint64_t now_ns, uint64_t created_ns,
                         double window) {
  uint64_t sec = now_ns / 1000000000ull;
  int w = (int)window;
  if (w < 1) w = 1;
  if (w > STORE__METER_SLOTS - 1) w = STORE__METER_SLOTS - 1;
  uint64_t sum = 0;
  for (int i = 0; i < w; i++) {
    if (sec < (uint64_t)i) break;
    unsigned b = (unsigned)((sec - (uint64_t)i) % STORE__METER_SLOTS);
    if (m->sec[b] == sec - (uint64_t)i) sum += m->count[b];
  }
  double span = (double)(w - 1) + (double)(now_ns % 1000000000ull) * 1e-9;
  double age = (double)(now_ns - created_ns) * 1e-9;
  if (age < span) span = age;
  if (span < 1e-3) span = 1e-3;
  return (double)sum / span;
}

/* ---- lifecycle ---- */

void store_specs_default(store_spec out[2], int obs_dim, int act_dim, uint64_t demo_capacity,
                         uint64_t online_capacity) {
  memset(out, 0, 2 * sizeof *out);
  snprintf(out[0].name, STORE_NAME_MAX, "demo");
  out[0].obs_dim = obs_dim;
  out[0].act_dim = act_dim;
  out[0].capacity = demo_capacity;
  out[0].kind = STORE_DEMO;
  snprintf(out[1].name, STORE_NAME_MAX, "online");
  out[1].obs_dim = obs_dim;
  out[1].act_dim = act_dim;
  out[1].capacity = online_capacity;
  out[1].kind = STORE_ONLINE;
}

/* Floats per record: obs, action, next_obs, reward, discount, rounded up to 16 (64 bytes). */
static uint32_t row_stride(int obs_dim, int act_dim) {
  uint32_t raw = 2u * (uint32_t)obs_dim + (uint32_t)act_dim + 2u;
  return (raw + 15u) / 16u * 16u;
}

/* What store_create preallocates for one table: the record arena, the per-slot metadata
 * (proposer, flags, actor_id, seq, weight version) and the actor registry. */
static uint64_t table_bytes(uint64_t cap, uint32_t stride, uint32_t actor_cap) {
  return cap * ((uint64_t)stride * sizeof(float) + 2 + sizeof(uint32_t) + 2 * sizeof(uint64_t)) +
         (uint64_t)actor_cap * sizeof(store__actor);
}

static int spec_check(const store_spec *sp, int i) {
  size_t len = strnlen(sp->name, STORE_NAME_MAX);
  if (len == 0 || len == STORE_NAME_MAX)
    return ib_fail(IB_EINVAL,
                   "table %d: name is empty or not NUL-terminated within %d bytes "
                   "(HINT: use a short name such as \"demo\" or \"online\")",
                   i, STORE_NAME_MAX);
  if (sp->obs_dim <= 0)
    return ib_fail(IB_EINVAL,
                   "table '%s': obs_dim %d is not positive (HINT: set the stacked "
                   "observation size)",
                   sp->name, sp->obs_dim);
  if (sp->act_dim <= 0)
    return ib_fail(IB_EINVAL,
                   "table '%s': act_dim %d is not positive (HINT: set k x a of the "
                   "action chunk)",
                   sp->name, sp->act_dim);
  if (sp->capacity == 0 || sp->capacity > (uint64_t)INT32_MAX)
    return ib_fail(IB_EINVAL,
                   "table '%s': capacity %llu is outside [1, %d] (HINT: capacity counts "
                   "transitions)",
                   sp->name, (unsigned long long)sp->capacity, INT32_MAX);
  if (sp->kind != STORE_DEMO && sp->kind != STORE_ONLINE)
    return ib_fail(IB_EINVAL, "table '%s': unknown kind %d (HINT: STORE_DEMO or STORE_ONLINE)",
                   sp->name, (int)sp->kind);
  return IB_OK;
}

static uint32_t pow2_at_least(uint32_t x) {
  uint32_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

uint64_t store_spec_bytes(const store_spec *sp, const store_config *cfg) {
  IB_CHECK(sp != NULL);
  uint32_t max_actors = cfg != NULL && cfg->max_actors != 0 ? cfg->max_actors : 4096;
  return table_bytes(sp->capacity, row_stride(sp->obs_dim, sp->act_dim), pow2_at_least(2u * max_actors));
}

int store_create(store **out, const store_spec *specs, int n, const store_config *cfg) {
  IB_CHECK(out != NULL && specs != NULL);
  *out = NULL;
  if (n < 1 || n > STORE_MAX_TABLES)
    return ib_fail(IB_EINVAL,
                   "store: %d tables requested, 1..%d allowed (HINT: one demo and one "
                   "online table)",
                   n, STORE_MAX_TABLES);
  store_config c = {0};
  if (cfg) c = *cfg;
  if (c.max_actors == 0) c.max_actors = 4096;
  if (c.max_insert_batch == 0) c.max_insert_batch = 4096;
  if (c.rate_window_s == 0) c.rate_window_s = 10;
  if (!(c.rate_window_s >= 1 && c.rate_window_s <= STORE__METER_SLOTS - 1))
    return ib_fail(IB_EINVAL, "store: rate_window_s %g is outside [1, %d] seconds", c.rate_window_s,
                   STORE__METER_SLOTS - 1);
  if (c.max_actors > (1u << 24))
    return ib_fail(IB_EINVAL, "store: max_actors %u is above %u", c.max_actors, 1u << 24);
  for (int i = 0; i < n; i++) {
    int rc = spec_check(&specs[i], i);
    if (rc) return rc;
  }
  if (n == 2) {
    if (strcmp(specs[0].name, specs[1].name) == 0)
      return ib_fail(IB_EMISMATCH,
                     "store: both tables are called '%s' (HINT: names must be unique)",
                     specs[0].name);
    if (specs[0].kind == specs[1].kind)
      return ib_fail(IB_EMISMATCH,
                     "store: tables '%s' and '%s' are both of kind %s (HINT: one demo "
                     "and one online table)",
                     specs[0].name, specs[1].name, kind_name(specs[0].kind));
    if (specs[0].obs_dim != specs[1].obs_dim || specs[0].act_dim != specs[1].act_dim)
      return ib_fail(
          IB_EMISMATCH,
          "store: table '%s' has obs_dim %d act_dim %d but '%s' has obs_dim %d "
          "act_dim %d (HINT: sampling mixes both tables into one batch, so dims must agree)",
          specs[0].name, specs[0].obs_dim, specs[0].act_dim, specs[1].name, specs[1].obs_dim,
          specs[1].act_dim);
  }
  store *s = ib_xcalloc(1, sizeof *s);
  s->cfg = c;
  s->ntables = n;
  s->created_ns = ib_now_ns();
  for (int i = 0; i < n; i++) {
    store__table *tb = &s->tables[i];
    tb->spec = specs[i];
    tb->idx = i;
    uint64_t cap = tb->spec.capacity;
    uint32_t raw = 2u * (uint32_t)tb->spec.obs_dim + (uint32_t)tb->spec.act_dim + 2u;
    tb->stride = row_stride(tb->spec.obs_dim, tb->spec.act_dim);
    tb->meta_off = tb->stride - raw >= STORE__META_FLOATS ? raw : 0;
    tb->rec = arena_alloc((size_t)cap * tb->stride * sizeof(float), &tb->huge_bytes);
    tb->proposer = meta_alloc(cap, 1);
    tb->flags = meta_alloc(cap, 1);
    tb->actor_id = meta_alloc(cap, sizeof *tb->actor_id);
    tb->seq = meta_alloc(cap, sizeof *tb->seq);
    tb->wv = meta_alloc(cap, sizeof *tb->wv);
    tb->actor_cap = pow2_at_least(2u * c.max_actors);
    tb->max_actors = c.max_actors;
    tb->actors = ib_xcalloc(tb->actor_cap, sizeof *tb->actors);
    tb->keep = ib_xcalloc(c.max_insert_batch, 1);
    tb->kept = ib_xcalloc(c.max_insert_batch, sizeof *tb->kept);
    tb->undo = ib_xcalloc(c.max_insert_batch, sizeof *tb->undo);
    tb->undo_pos = ib_xcalloc(c.max_insert_batch, sizeof *tb->undo_pos);
    /* Writer preference: with several learner threads sampling back to back, a reader-preferring
     * lock (the glibc default) could starve inserts forever. */
    pthread_rwlockattr_t la;
    IB_CHECK(pthread_rwlockattr_init(&la) == 0);
    IB_CHECK(pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP) == 0);
    IB_CHECK(pthread_rwlock_init(&tb->lock, &la) == 0);
    pthread_rwlockattr_destroy(&la);
    IB_CHECK(pthread_mutex_init(&tb->stat_mu, NULL) == 0);
  }
  *out = s;
  return IB_OK;
}

void store_destroy(store *s) {
  if (!s) return;
  for (int i = 0; i < s->ntables; i++) {
    store__table *tb = &s->tables[i];
    free(tb->rec);
    free(tb->proposer);
    free(tb->flags);
    free(tb->actor_id);
    free(tb->seq);
    free(tb->wv);
    free(tb->actors);
    free(tb->keep);
    free(tb->kept);
    free(tb->undo);
    free(tb->undo_pos);
    pthread_rwlock_destroy(&tb->lock);
    pthread_mutex_destroy(&tb->stat_mu);
  }
  free(s);
}

/* ---- memory ---- */

size_t store_huge_collapse(store *s) {
  IB_CHECK(s != NULL);
  size_t done = 0;
#ifdef MADV_COLLAPSE
  for (int i = 0; i < s->ntables; i++) {
    store__table *tb = &s->tables[i];
    /* No lock: the arena's address and length never change, and the kernel keeps its contents.
     * One call per 2 MiB region, so one region the kernel cannot collapse (no free huge page)
     * does not hide the others; a region that is whole returns at once. */
    for (size_t off = 0; off < tb->huge_bytes; off += HUGE_PAGE) {
      if (madvise((char *)tb->rec + off, HUGE_PAGE, MADV_COLLAPSE) == 0) done += HUGE_PAGE;
      else if (errno == EINVAL) return done; /* a kernel before 6.1: no such advice */
    }
  }
#endif
  return done;
}

/* ---- tables ---- */

int store_table_count(const store *s) { return s->ntables; }

int store_table_find(const store *s, const char *name) {
  IB_CHECK(s != NULL);
  if (name) {
    for (int i = 0; i < s->ntables; i++)
      if (strcmp(s->tables[i].spec.name, name) == 0) return i;
  }
  return ib_fail(IB_ENOTFOUND, "unknown table '%s' (HINT: this shard has %s%s%s%s)",
                 name ? name : "(null)", s->tables[0].spec.name, s->ntables > 1 ? " and '" : "",
                 s->ntables > 1 ? s->tables[1].spec.name : "", s->ntables > 1 ? "'" : "");
}

int store_table_of_kind(const store *s, store_kind kind) {
  for (int i = 0; i < s->ntables; i++)
    if (s->tables[i].spec.kind == kind) return i;
  return ib_fail(IB_ENOTFOUND, "this shard has no %s table", kind_name(kind));
}

const store_spec *store_table_spec(const store *s, int t) {
  IB_CHECK(t >= 0 && t < s->ntables);
  return &s->tables[t].spec;
}

void store__lock_all(store *s) {
  for (int i = 0; i < s->ntables; i++) IB_CHECK(pthread_rwlock_wrlock(&s->tables[i].lock) == 0);
}

void store__unlock_all(store *s) {
  for (int i = s->ntables - 1; i >= 0; i--) pthread_rwlock_unlock(&s->tables[i].lock);
}

/* ---- validation ---- */

static int validate(const store *s, int t, const store_item *items, size_t n, bool finite);

static int check_finite(const char *table, size_t i, const char *field, const float *x,
                        uint32_t n) {
  long bad = ib_first_nonfinite(x, n);
  if (bad < 0) return IB_OK;
  return ib_fail(IB_ENONFINITE,
                 "table '%s' item %zu: %s[%ld] = %g is not finite (HINT: the actor "
                 "produced NaN/Inf; check the env, the policy and the n-step reward)",
                 table, i, field, bad, (double)x[bad]);
}

int store__validate(const store *s, int t, const store_item *items, size_t n) {
  return validate(s, t, items, n, true);
}

static int validate(const store *s, int t, const store_item *items, size_t n, bool finite) {
  const store_spec *sp = &s->tables[t].spec;
  if (n > s->cfg.max_insert_batch)
    return ib_fail(IB_EINVAL,
                   "table '%s': batch of %zu items is above max_insert_batch %u (HINT: "
                   "split the batch)",
                   sp->name, n, s->cfg.max_insert_batch);
  IB_CHECK(n == 0 || items != NULL);
  for (size_t i = 0; i < n; i++) {
    const store_item *it = &items[i];
    if (it->obs_n != (uint32_t)sp->obs_dim)
      return ib_fail(
          IB_EINVAL,
          "table '%s' item %zu: obs has %u values, the table's obs_dim is %d "
          "(HINT: actor and replay were configured with different tasks or frame stacks)",
          sp->name, i, it->obs_n, sp->obs_dim);
    if (it->next_obs_n != (uint32_t)sp->obs_dim)
      return ib_fail(
          IB_EINVAL,
          "table '%s' item %zu: next_obs has %u values, the table's obs_dim is %d "
          "(HINT: actor and replay were configured with different tasks or frame stacks)",
          sp->name, i, it->next_obs_n, sp->obs_dim);
    if (it->act_n != (uint32_t)sp->act_dim)
      return ib_fail(IB_EINVAL,
                     "table '%s' item %zu: action has %u values, the table's act_dim is %d "
                     "(HINT: act_dim is chunk length x action size)",
                     sp->name, i, it->act_n, sp->act_dim);
    IB_CHECK(it->obs != NULL && it->next_obs != NULL && it->action != NULL);
    if (it->proposer > STORE_PROPOSER_DEMO)
      return ib_fail(IB_EINVAL,
                     "table '%s' item %zu: proposer %u is unknown (HINT: 0 = IL, 1 = RL, "
                     "2 = demo)",
                     sp->name, i, it->proposer);
    int rc;
    if (finite) {
      if ((rc = check_finite(sp->name, i, "obs", it->obs, it->obs_n))) return rc;
      if ((rc = check_finite(sp->name, i, "action", it->action, it->act_n))) return rc;
      if ((rc = check_finite(sp->name, i, "next_obs", it->next_obs, it->next_obs_n))) return rc;
      if ((rc = check_finite(sp->name, i, "reward", &it->reward, 1))) return rc;
      if ((rc = check_finite(sp->name, i, "discount", &it->discount, 1))) return rc;
    } /* else: store_insert_prechecked, the caller checked them while decoding */
    if (!(it->discount >= 0.0f && it->discount <= 1.0f))
      return ib_fail(IB_EINVAL,
                     "table '%s' item %zu: discount %g is outside [0, 1] (HINT: it is "
                     "gamma^n, or 0 at a terminal)",
                     sp->name, i, (double)it->discount);
  }
  return IB_OK;
}

/* ---- actor registry ---- */

static uint32_t actor_hash(uint32_t id, uint32_t cap) {
  return (uint32_t)((id * 2654435761u) & (cap - 1u));
}

/* Position of `id` in the registry, or of the empty slot where it would go. */
static uint32_t actor_pos(const store__table *tb, uint32_t id) {
  uint32_t p = actor_hash(id, tb->actor_cap);
  while (tb->actors[p].used && tb->actors[p].id != id) p = (p + 1u) & (tb->actor_cap - 1u);
  return p;
}

store__actor *store__actor_find(store__table *tb, uint32_t id, bool create) {
  uint32_t p = actor_pos(tb, id);
  store__actor *a = &tb->actors[p];
  if (a->used) return a;
  if (!create || tb->nactors >= tb->max_actors) return NULL;
  memset(a, 0, sizeof *a);
  a->used = 1;
  a->id = id;
  tb->nactors++;
  return a;
}

/* Whether `seq` is already stored for `a` (or too old to tell). */
static bool seq_seen(const store__actor *a, uint64_t seq) {
  if (!a->has_seq || seq > a->high) return false;
  uint64_t d = a->high - seq;
  if (d >= STORE_DEDUP_WINDOW) return true;
  return (a->win[d / 64] >> (d % 64)) & 1u;
}

static void seq_mark(store__actor *a, uint64_t seq) {
  if (!a->has_seq) {
    memset(a->win, 0, sizeof a->win);
    a->has_seq = 1;
    a->high = seq;
    a->win[0] = 1;
    return;
  }
  if (seq > a->high) {
    uint64_t sh = seq - a->high;
    if (sh >= STORE_DEDUP_WINDOW) {
      memset(a->win, 0, sizeof a->win);
    } else {
      /* Shift the window left by sh bits (towards older seqs), word by word. */
      unsigned ws = (unsigned)(sh / 64), bs = (unsigned)(sh % 64);
      for (int w = STORE__WIN_WORDS - 1; w >= 0; w--) {
        uint64_t v = 0;
        if (w - (int)ws >= 0) {
          v = a->win[w - (int)ws] << bs;
          if (bs && w - (int)ws - 1 >= 0) v |= a->win[w - (int)ws - 1] >> (64 - bs);
        }
        a->win[w] = v;
      }
    }
    a->high = seq;
    a->win[0] |= 1;
    return;
  }
  uint64_t d = a->high - seq;
  IB_ASSERT(d < STORE_DEDUP_WINDOW);
  a->win[d / 64] |= 1ull << (d % 64);
}

/* Marks seqs seq0 .. seq0 + k - 1 for `a`, where seq0 == a->high + 1 and 1 <= k <= the window:
 * the same window as k calls of seq_mark, with one shift instead of k (an actor's batch is a run
 * of consecutive seqs, and shifting the 16-word window once per item showed in profiles). */
static void seq_mark_run(store__actor *a, uint64_t seq0, uint64_t k) {
  IB_ASSERT(a->has_seq && seq0 == a->high + 1 && k >= 1 && k <= STORE_DEDUP_WINDOW);
  seq_mark(a, seq0 + k - 1); /* shifts by k and sets bit 0 (seq0 + k - 1) */
  /* Bits 1 .. k-1 are seqs seq0 + k - 2 down to seq0. */
  uint64_t bits = k;
  for (unsigned w = 0; bits > 0 && w < STORE__WIN_WORDS; w++) {
    uint64_t take = bits >= 64 ? 64 : bits;
    a->win[w] |= take == 64 ? ~0ull : (1ull << take) - 1u;
    bits -= take;
  }
}

/* ---- insert ---- */

void store__slot_item(const store__table *tb, uint64_t slot, store_item *out) {
  const float *r = tb->rec + slot * tb->stride;
  uint32_t O = (uint32_t)tb->spec.obs_dim, A = (uint32_t)tb->spec.act_dim;
  memset(out, 0, sizeof *out);
  out->obs = r;
  out->next_obs = r + O;
  out->action = r + 2 * O;
  out->obs_n = out->next_obs_n = O;
  out->act_n = A;
  out->reward = r[2 * O + A];
  out->discount = r[2 * O + A + 1];
  out->proposer = tb->proposer[slot];
  out->actor_id = tb->actor_id[slot];
  out->seq = tb->seq[slot];
  out->weight_version = tb->wv[slot];
  out->episode_end = tb->flags[slot] & 1u;
  out->episode_success = (tb->flags[slot] >> 1) & 1u;
}

/* The metadata copy of a record (see store_impl.h), packed into STORE__META_FLOATS floats. */
static void meta_pack(float *m, uint64_t seq, uint64_t wv, uint32_t actor_id, uint8_t proposer, uint8_t flags) {
  uint8_t pf[4] = {proposer, flags, 0, 0};
  memcpy(m, &seq, 8);
  memcpy(m + 2, &wv, 8);
  memcpy(m + 4, &actor_id, 4);
  memcpy(m + 5, pf, 4);
}

void store__meta_rebuild(store__table *tb) {
  if (tb->meta_off == 0) return;
  for (uint64_t i = 0; i < tb->size; i++)
    meta_pack(tb->rec + i * tb->stride + tb->meta_off, tb->seq[i], tb->wv[i], tb->actor_id[i], tb->proposer[i],
              tb->flags[i]);
}

/* Restores every actor entry saved by the current call, newest first, so new entries vanish and
 * changed ones get their old window back. */
static void undo_actors(store__table *tb, uint32_t nundo, uint32_t nactors_before) {
  for (uint32_t k = nundo; k-- > 0;) tb->actors[tb->undo_pos[k]] = tb->undo[k];
  tb->nactors = nactors_before;
}

/* Writes rows into the ring. The ring is written once and then read back only by random samples
 * much later, so caching the written lines buys nothing: where SSE2 is available a record is
 * written with non-temporal (streaming) stores of 16 bytes, which skip reading each line before it
 * is overwritten and keep the ring out of the caches. The 16-byte pieces are loaded straight from
 * the item's arrays (any alignment) by a plan made once per call (rec_piece): a run of pieces that
 * lie inside obs, next_obs or action is one unaligned load each; the few pieces across a border
 * (obs/next_obs, next_obs/action) and those of the tail (reward, discount, the metadata copy, the
 * zero pad) are assembled in a register from 4-byte loads (which store forwarding serves, where a
 * 16-byte load of freshly written bytes would stall). This replaced staging each record in a
 * buffer and streaming it out a row later: its three memcpy calls alone were a third of the
 * store's time in ibrl-bench replay --only decode (2026-11-23). Use: slot_writer_init,
 * slot_writer_put per row; then the caller issues store_fence() before others may read them. */
#define REC_SRC_TAIL 3 /* rec_piece sources: 0 obs, 1 next_obs, 2 action, 3 the row's tail words */
#define REC_TAIL_WORDS (2 + STORE__META_FLOATS) /* reward, discount, the metadata copy */
#define REC_MAX_PIECES 16 /* at most 3 runs, 2 border pieces and 5 tail pieces (the tail is < 18 floats) */

/* A piece of the record plan: either `n` 16-byte pieces copied from source src[0] at byte off[0]
 * on (n >= 1, a run), or one piece (n = 0) of four 4-byte words, word j from src[j] at off[j]
 * (src 4: zero). */
typedef struct rec_piece {
  uint32_t n;
  uint8_t src[4];
  uint32_t off[4];
} rec_piece;

typedef struct slot_writer {
  store__table *tb;
#if defined(__SSE2__)
  uint32_t npieces;
  rec_piece plan[REC_MAX_PIECES];
#endif
} slot_writer;

#if defined(__SSE2__)
/* The source of record float i: src/off in *src, *off (src 4: a zero). */
static void rec_word(const store__table *tb, size_t i, uint8_t *src, uint32_t *off) {
  size_t O = (size_t)tb->spec.obs_dim, A = (size_t)tb->spec.act_dim, T = 2 * O + A;
  *src = 4, *off = 0;
  if (i < O) *src = 0, *off = (uint32_t)(4 * i);
  else if (i < 2 * O) *src = 1, *off = (uint32_t)(4 * (i - O));
  else if (i < T) *src = 2, *off = (uint32_t)(4 * (i - 2 * O));
  else if (i < T + 2) *src = REC_SRC_TAIL, *off = (uint32_t)(4 * (i - T));
  else if (tb->meta_off && i >= tb->meta_off && i < tb->meta_off + STORE__META_FLOATS)
    *src = REC_SRC_TAIL, *off = (uint32_t)(4 * (2 + i - tb->meta_off));
}

static inline uint32_t load32(const uint8_t *p) {
  uint32_t x;
  memcpy(&x, p, 4);
  return x;
}
#endif

static void slot_writer_init(slot_writer *w, store__table *tb) {
  w->tb = tb;
#if defined(__SSE2__)
  /* Cut the record into 16-byte pieces and merge neighbours that come from one array. */
  w->npieces = 0;
  for (size_t i = 0; i < tb->stride; i += 4) {
    rec_piece p = {0, {0, 0, 0, 0}, {0, 0, 0, 0}};
    for (int j = 0; j < 4; j++) rec_word(tb, i + (size_t)j, &p.src[j], &p.off[j]);
    int run = p.src[0] < REC_SRC_TAIL;
    for (int j = 1; j < 4; j++) run &= p.src[j] == p.src[0] && p.off[j] == p.off[0] + 4u * (uint32_t)j;
    rec_piece *last = w->npieces ? &w->plan[w->npieces - 1] : NULL;
    if (run && last != NULL && last->n > 0 && last->src[0] == p.src[0] && last->off[0] + 16u * last->n == p.off[0]) {
      last->n++;
      continue;
    }
    IB_CHECK(w->npieces < REC_MAX_PIECES);
    p.n = run ? 1 : 0;
    w->plan[w->npieces++] = p;
  }
#endif
}

/* Writes row `it` into record `slot`. */
static void slot_writer_put(slot_writer *w, uint64_t slot, const store_item *it) {
  store__table *tb = w->tb;
  float *r = tb->rec + slot * tb->stride;
  uint8_t flags = (uint8_t)((it->episode_end ? 1u : 0u) | (it->episode_end && it->episode_success ? 2u : 0u));
#if defined(__SSE2__)
  static const uint8_t zero[4] = {0, 0, 0, 0};
  float tail[REC_TAIL_WORDS] = {it->reward, it->discount};
  if (tb->meta_off) meta_pack(tail + 2, it->seq, it->weight_version, it->actor_id, (uint8_t)it->proposer, flags);
  const uint8_t *src[5] = {(const uint8_t *)it->obs, (const uint8_t *)it->next_obs, (const uint8_t *)it->action,
                           (const uint8_t *)tail, zero};
  __m128i *d = (__m128i *)(void *)r;
  for (uint32_t k = 0; k < w->npieces; k++) {
    const rec_piece *p = &w->plan[k];
    if (p->n > 0) {
      const uint8_t *q = src[p->src[0]] + p->off[0];
      for (uint32_t j = 0; j < p->n; j++)
        _mm_stream_si128(d++, _mm_loadu_si128((const __m128i *)(const void *)(q + 16 * j)));
    } else {
      __m128i v = _mm_set_epi32((int)load32(src[p->src[3]] + p->off[3]), (int)load32(src[p->src[2]] + p->off[2]),
                                (int)load32(src[p->src[1]] + p->off[1]), (int)load32(src[p->src[0]] + p->off[0]));
      _mm_stream_si128(d++, v);
    }
  }
#else
  size_t O = (size_t)tb->spec.obs_dim, A = (size_t)tb->spec.act_dim;
  memcpy(r, it->obs, O * sizeof(float));
  memcpy(r + O, it->next_obs, O * sizeof(float));
  memcpy(r + 2 * O, it->action, A * sizeof(float));
  r[2 * O + A] = it->reward;
  r[2 * O + A + 1] = it->discount;
  if (tb->meta_off)
    meta_pack(r + tb->meta_off, it->seq, it->weight_version, it->actor_id, (uint8_t)it->proposer, flags);
#endif
  tb->proposer[slot] = (uint8_t)it->proposer;
  tb->actor_id[slot] = it->actor_id;
  tb->seq[slot] = it->seq;
  tb->wv[slot] = it->weight_version;
  tb->flags[slot] = flags;
}

int store__insert_apply(store *s, int t, const store_item *items, size_t n, bool use_log,
                        store_insert_result *res) {
  store__table *tb = &s->tables[t];
  store_insert_result r = {0, 0, 0};
  IB_CHECK(pthread_rwlock_wrlock(&tb->lock) == 0);
  tb->gen++;
  uint32_t nundo = 0, nactors_before = tb->nactors;
  uint32_t nkeep = 0;
  int rc = IB_OK;
  /* The kept items are only needed by the log hook: without one, they are counted, not copied. */
  bool keep_items = use_log && s->log_append != NULL;
  /* Pass 1: deduplicate, saving each actor entry before its first change in this call. */
  for (size_t i = 0; i < n; i++) {
    const store_item *it = &items[i];
    uint32_t pos = actor_pos(tb, it->actor_id);
    store__actor *a = &tb->actors[pos];
    if (!a->used || a->touch_gen != tb->gen) {
      tb->undo[nundo] = *a;
      tb->undo_pos[nundo] = pos;
      nundo++;
    }
    if (!a->used) {
      a = store__actor_find(tb, it->actor_id, true);
      if (!a) {
        rc = ib_fail(IB_EFULL,
                     "table '%s' item %zu: actor_id %u would be actor number %u, above "
                     "max_actors %u (HINT: raise max_actors or reuse actor ids)",
                     tb->spec.name, i, it->actor_id, tb->nactors + 1, s->cfg.max_actors);
        break;
      }
    }
    a->touch_gen = tb->gen;
    tb->keep[i] = 1;
    if (it->seq != STORE_SEQ_NONE && a->has_seq && it->seq == a->high + 1) {
      /* The common case: this actor's next seqs, in a run. None can be a duplicate (all are
       * above the highest stored), so mark the whole run with one window shift. */
      size_t k = 1;
      while (i + k < n && k < STORE_DEDUP_WINDOW && items[i + k].actor_id == it->actor_id &&
             items[i + k].seq == it->seq + k && items[i + k].seq != STORE_SEQ_NONE)
        k++;
      seq_mark_run(a, it->seq, k);
      for (size_t m = 0; m < k; m++) {
        tb->keep[i + m] = 1;
        if (keep_items) tb->kept[nkeep] = items[i + m];
        nkeep++;
      }
      i += k - 1;
      continue;
    }
    if (it->seq != STORE_SEQ_NONE) {
      if (seq_seen(a, it->seq)) {
        tb->keep[i] = 0;
      } else {
        seq_mark(a, it->seq);
      }
    }
    if (tb->keep[i]) {
      if (keep_items) tb->kept[nkeep] = *it;
      nkeep++;
    }
  }
  if (rc == IB_OK && tb->spec.kind == STORE_DEMO && tb->size + nkeep > tb->spec.capacity)
    rc = ib_fail(IB_EFULL,
                 "table '%s' is a demo table holding %llu of %llu items; %u more do not fit "
                 "(HINT: raise the demo capacity; demo tables never evict)",
                 tb->spec.name, (unsigned long long)tb->size, (unsigned long long)tb->spec.capacity,
                 nkeep);
  uint64_t ticket = 0;
  if (rc == IB_OK && use_log && s->log_append && nkeep > 0)
    rc = s->log_append(s->log_ctx, t, tb->kept, nkeep, &ticket);
  if (rc != IB_OK) {
    undo_actors(tb, nundo, nactors_before);
    tb->rejected_batches++;
    pthread_rwlock_unlock(&tb->lock);
    return rc;
  }
  /* Pass 2: commit. */
  uint64_t now = ib_now_ns();
  slot_writer sw;
  slot_writer_init(&sw, tb);
  store__actor *a = NULL; /* the previous row's actor: a batch is usually one actor's run */
  for (size_t i = 0; i < n; i++) {
    const store_item *it = &items[i];
    if (a == NULL || a->id != it->actor_id) a = store__actor_find(tb, it->actor_id, false);
    IB_ASSERT(a != NULL);
    if (!tb->keep[i]) {
      a->duplicates++;
      r.duplicates++;
      continue;
    }
    uint64_t slot = tb->head;
    if (tb->size == tb->spec.capacity) {
      r.evicted++;
    } else {
      tb->size++;
    }
    slot_writer_put(&sw, slot, it);
    tb->head = (tb->head + 1 == tb->spec.capacity) ? 0 : tb->head + 1;
    if (tb->total_inserts == 0 || it->weight_version < tb->wv_min) tb->wv_min = it->weight_version;
    if (tb->total_inserts == 0 || it->weight_version > tb->wv_max) tb->wv_max = it->weight_version;
    tb->wv_last = it->weight_version;
    tb->total_inserts++;
    a->inserts++;
    a->last_wv = it->weight_version;
    a->last_ns = now;
    if (it->episode_end) {
      tb->episodes++;
      a->episodes++;
      a->success_bits = (a->success_bits << 1) | (it->episode_success ? 1u : 0u);
      if (it->episode_success) tb->successes++;
    }
    r.stored++;
  }
  store_fence();
  tb->total_evicted += r.evicted;
  tb->duplicates += r.duplicates;
  pthread_rwlock_unlock(&tb->lock);

  pthread_mutex_lock(&tb->stat_mu);
  meter_add(&tb->m_insert, now, r.stored);
  pthread_mutex_unlock(&tb->stat_mu);

  if (res) *res = r;
  if (use_log && s->log_sync && r.stored > 0) {
    rc = s->log_sync(s->log_ctx, ticket);
    if (rc != IB_OK) return rc;
  }
  return IB_OK;
}

static int insert_(store *s, const char *table, const store_item *items, size_t n, bool finite,
                   store_insert_result *res) {
  IB_CHECK(s != NULL);
  if (res) memset(res, 0, sizeof *res);
  int t = store_table_find(s, table);
  if (t < 0) return t;
  int rc = validate(s, t, items, n, finite);
  if (rc != IB_OK) {
    store__table *tb = &s->tables[t];
    pthread_rwlock_wrlock(&tb->lock);
    tb->rejected_batches++;
    pthread_rwlock_unlock(&tb->lock);
    return rc;
  }
  if (n == 0) return IB_OK;
  return store__insert_apply(s, t, items, n, true, res);
}

int store_insert(store *s, const char *table, const store_item *items, size_t n,
                 store_insert_result *res) {
  return insert_(s, table, items, n, true, res);
}

int store_insert_prechecked(store *s, const char *table, const store_item *items, size_t n,
                            store_insert_result *res) {
  return insert_(s, table, items, n, false, res);
}

void store_log_hook_set(store *s, store_log_append_fn append, store_log_sync_fn sync, void *ctx) {
  s->log_append = append;
  s->log_sync = sync;
  s->log_ctx = ctx;
}

/* ---- sample ---- */

void store_batch_init(store_batch *b, uint32_t cap, int obs_dim, int act_dim) {
  IB_CHECK(b != NULL && cap > 0 && obs_dim > 0 && act_dim > 0);
  memset(b, 0, sizeof *b);
  b->cap = cap;
  b->obs_dim = obs_dim;
  b->act_dim = act_dim;
  b->obs = ib_xaligned((size_t)cap * (size_t)obs_dim * sizeof(float));
  b->next_obs = ib_xaligned((size_t)cap * (size_t)obs_dim * sizeof(float));
  b->action = ib_xaligned((size_t)cap * (size_t)act_dim * sizeof(float));
  b->reward = ib_xaligned((size_t)cap * sizeof(float));
  b->discount = ib_xaligned((size_t)cap * sizeof(float));
  b->proposer = ib_xcalloc(cap, 1);
  b->from_demo = ib_xcalloc(cap, 1);
  b->actor_id = ib_xcalloc(cap, sizeof *b->actor_id);
  b->weight_version = ib_xcalloc(cap, sizeof *b->weight_version);
  b->slot = ib_xcalloc(cap, sizeof *b->slot);
  b->seq = ib_xcalloc(cap, sizeof *b->seq);
  b->episode_end = ib_xcalloc(cap, 1);
  b->episode_success = ib_xcalloc(cap, 1);
}

void store_batch_free(store_batch *b) {
  if (!b) return;
  free(b->obs);
  free(b->next_obs);
  free(b->action);
  free(b->reward);
  free(b->discount);
  free(b->proposer);
  free(b->from_demo);
  free(b->actor_id);
  free(b->weight_version);
  free(b->slot);
  free(b->seq);
  free(b->episode_end);
  free(b->episode_success);
  memset(b, 0, sizeof *b);
}

/* Starts fetching the cache line of p into the L2 cache for a read soon. prefetcht2, 32 rows (320
 * lines, 20 kB) ahead: the gather is bound by how many misses are in flight, and the L2 tracks more
 * of them than the L1, which prefetchnta fills on AMD. On the "AMD EPYC" VMs of 24 Nov this took a
 * batch of 256 rows from 23.4 to 18.6 us at 300,000 rows and from 27.4 to 23.6 us at 1.8 M
 * (docs/results/replay-throughput.md, "Tuning the prefetch"); the earlier VM of that day showed no
 * setting apart from the noise. An asm statement, not __builtin_prefetch: GCC 12 at -O2 deleted
 * every __builtin_prefetch of prefetch_record below (its side-effect analysis, ipa-modref, finds
 * that a static function which only prefetches does nothing, and drops the calls), so until 24 Nov
 * the gather ran without any prefetch. The compiler keeps a volatile asm;
 * tests/store/store_prefetch.sh checks the code. Off x86 the builtin stays (locality 1: the L2 as
 * well), and prefetch_record is forced inline, which keeps it there too. */
static inline void prefetch_line(const void *p) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht2 %0" : : "m"(*(const char *)p));
#else
  __builtin_prefetch(p, 0, 1);
#endif
}

static inline __attribute__((always_inline)) void prefetch_record(const store__table *tb, uint64_t slot) {
  const char *p = (const char *)(tb->rec + slot * tb->stride);
  size_t bytes = (size_t)tb->stride * sizeof(float);
  for (size_t off = 0; off < bytes; off += 64) prefetch_line(p + off);
  if (tb->meta_off) return; /* the gather reads the record's copy of the metadata */
  /* The slot's metadata sits in five parallel arrays: for a random slot each is a miss too. */
  prefetch_line(&tb->seq[slot]);
  prefetch_line(&tb->wv[slot]);
  prefetch_line(&tb->actor_id[slot]);
  prefetch_line(&tb->proposer[slot]);
  prefetch_line(&tb->flags[slot]);
}

/* Copies rows [r0, r1) of `b` from the slots already drawn into b->slot. */
static void gather(const store__table *tb, store_batch *b, uint32_t r0, uint32_t r1, bool demo) {
  size_t O = (size_t)tb->spec.obs_dim, A = (size_t)tb->spec.act_dim;
  for (uint32_t i = r0; i < r0 + PREFETCH_AHEAD && i < r1; i++) prefetch_record(tb, b->slot[i]);
  for (uint32_t i = r0; i < r1; i++) {
    if (i + PREFETCH_AHEAD < r1) prefetch_record(tb, b->slot[i + PREFETCH_AHEAD]);
    uint64_t slot = b->slot[i];
    const float *r = tb->rec + slot * tb->stride;
    memcpy(b->obs + i * O, r, O * sizeof(float));
    memcpy(b->next_obs + i * O, r + O, O * sizeof(float));
    memcpy(b->action + i * A, r + 2 * O, A * sizeof(float));
    b->reward[i] = r[2 * O + A];
    b->discount[i] = r[2 * O + A + 1];
    uint8_t flags;
    if (tb->meta_off) {
      const float *m = r + tb->meta_off;
      uint8_t pf[4];
      memcpy(&b->seq[i], m, 8);
      memcpy(&b->weight_version[i], m + 2, 8);
      memcpy(&b->actor_id[i], m + 4, 4);
      memcpy(pf, m + 5, 4);
      b->proposer[i] = pf[0];
      flags = pf[1];
    } else {
      b->proposer[i] = tb->proposer[slot];
      b->actor_id[i] = tb->actor_id[slot];
      b->weight_version[i] = tb->wv[slot];
      b->seq[i] = tb->seq[slot];
      flags = tb->flags[slot];
    }
    b->episode_end[i] = flags & 1u;
    b->episode_success[i] = (flags >> 1) & 1u;
    b->from_demo[i] = demo ? 1 : 0;
  }
}

/* gather() into byte columns (any alignment, every value through memcpy): the rows go straight
 * into their final place, e.g. the replay server's reply message, instead of through the batch. */
static void gather_cols(const store__table *tb, store_batch *b, const store_cols *c, uint32_t r0, uint32_t r1,
                        bool demo) {
  size_t O = (size_t)tb->spec.obs_dim, A = (size_t)tb->spec.act_dim;
  for (uint32_t i = r0; i < r0 + PREFETCH_AHEAD && i < r1; i++) prefetch_record(tb, b->slot[i]);
  for (uint32_t i = r0; i < r1; i++) {
    if (i + PREFETCH_AHEAD < r1) prefetch_record(tb, b->slot[i + PREFETCH_AHEAD]);
    uint64_t slot = b->slot[i];
    const float *r = tb->rec + slot * tb->stride;
    memcpy(c->obs + i * O * 4, r, O * 4);
    memcpy(c->next_obs + i * O * 4, r + O, O * 4);
    memcpy(c->action + i * A * 4, r + 2 * O, A * 4);
    memcpy(c->reward + (size_t)i * 4, r + 2 * O + A, 4);
    memcpy(c->discount + (size_t)i * 4, r + 2 * O + A + 1, 4);
    if (tb->meta_off) {
      const float *m = r + tb->meta_off;
      uint8_t pf[4];
      memcpy(c->seq + (size_t)i * 8, m, 8);
      memcpy(c->weight_version + (size_t)i * 8, m + 2, 8);
      memcpy(c->actor_id + (size_t)i * 4, m + 4, 4);
      memcpy(pf, m + 5, 4);
      c->proposer[i] = pf[0];
      c->flags[i] = pf[1] & 3u;
    } else {
      c->proposer[i] = tb->proposer[slot];
      memcpy(c->actor_id + (size_t)i * 4, &tb->actor_id[slot], 4);
      memcpy(c->weight_version + (size_t)i * 8, &tb->wv[slot], 8);
      memcpy(c->seq + (size_t)i * 8, &tb->seq[slot], 8);
      c->flags[i] = tb->flags[slot] & 3u;
    }
    b->from_demo[i] = demo ? 1 : 0;
  }
}

static int sample_impl(store *s, rng *r, uint32_t n, double demo_fraction, store_batch *out, const store_cols *cols);

int store_sample(store *s, rng *r, uint32_t n, double demo_fraction, store_batch *out) {
  return sample_impl(s, r, n, demo_fraction, out, NULL);
}

int store_sample_cols(store *s, rng *r, uint32_t n, double demo_fraction, store_batch *out, const store_cols *cols) {
  IB_CHECK(cols != NULL);
  return sample_impl(s, r, n, demo_fraction, out, cols);
}

static int sample_impl(store *s, rng *r, uint32_t n, double demo_fraction, store_batch *out, const store_cols *cols) {
  IB_CHECK(s != NULL && r != NULL && out != NULL);
  if (n == 0) return ib_fail(IB_EINVAL, "sample: batch size 0 (HINT: ask for at least one item)");
  if (n > out->cap)
    return ib_fail(IB_EINVAL,
                   "sample: batch size %u is above the batch buffer's capacity %u (HINT: "
                   "store_batch_init with a larger cap)",
                   n, out->cap);
  if (isnan(demo_fraction) || demo_fraction > 1.0)
    return ib_fail(IB_EINVAL,
                   "sample: demo_fraction %g is not in [0, 1] (HINT: a negative value "
                   "means 'in proportion to the table sizes')",
                   demo_fraction);
  const store_spec *sp0 = &s->tables[0].spec;
  if (out->obs_dim != sp0->obs_dim || out->act_dim != sp0->act_dim)
    return ib_fail(IB_EMISMATCH,
                   "sample: batch buffer is for obs_dim %d act_dim %d but the tables "
                   "hold obs_dim %d act_dim %d",
                   out->obs_dim, out->act_dim, sp0->obs_dim, sp0->act_dim);
  int td = -1, to = -1;
  for (int i = 0; i < s->ntables; i++) {
    if (s->tables[i].spec.kind == STORE_DEMO)
      td = i;
    else
      to = i;
  }
  for (int i = 0; i < s->ntables; i++) IB_CHECK(pthread_rwlock_rdlock(&s->tables[i].lock) == 0);
  store__table *D = td >= 0 ? &s->tables[td] : NULL;
  store__table *L = to >= 0 ? &s->tables[to] : NULL;
  uint64_t nd_size = D ? D->size : 0, no_size = L ? L->size : 0;
  if (nd_size == 0 && no_size == 0) {
    for (int i = s->ntables - 1; i >= 0; i--) pthread_rwlock_unlock(&s->tables[i].lock);
    return ib_fail(IB_EUNAVAIL, "sample: both tables are empty (HINT: load demos or wait for "
                                "inserts; the rate limiter's min_size_to_sample avoids this)");
  }
  uint32_t k; /* rows from the demo table */
  store_fallback fb = STORE_FALLBACK_NONE;
  if (demo_fraction < 0) {
    /* Uniform over the union: each row picks an index in [0, nd + no); the demo rows are those
     * below nd. Counting first keeps demo rows first without a second pass. */
    uint64_t total = nd_size + no_size;
    k = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint64_t u = rng_below(r, (uint32_t)IB_MIN(total, (uint64_t)UINT32_MAX));
      if (u < nd_size) k++;
    }
  } else {
    k = (uint32_t)floor((double)n * demo_fraction + 0.5);
    if (k > n) k = n;
    if (k > 0 && nd_size == 0) {
      k = 0;
      fb = STORE_FALLBACK_DEMO_EMPTY;
    } else if (k < n && no_size == 0) {
      k = n;
      fb = STORE_FALLBACK_ONLINE_EMPTY;
    }
  }
  for (uint32_t i = 0; i < k; i++) out->slot[i] = rng_below(r, (uint32_t)nd_size);
  for (uint32_t i = k; i < n; i++) out->slot[i] = rng_below(r, (uint32_t)no_size);
  if (cols != NULL) {
    if (k > 0) gather_cols(D, out, cols, 0, k, true);
    if (k < n) gather_cols(L, out, cols, k, n, false);
  } else {
    if (k > 0) gather(D, out, 0, k, true);
    if (k < n) gather(L, out, k, n, false);
  }
  for (int i = s->ntables - 1; i >= 0; i--) pthread_rwlock_unlock(&s->tables[i].lock);

  out->n = n;
  out->n_demo = k;
  out->n_online = n - k;
  out->fallback = fb;
  out->demo_size = nd_size;
  out->online_size = no_size;
  uint64_t now = ib_now_ns();
  if (k > 0) {
    pthread_mutex_lock(&D->stat_mu);
    D->total_samples += k;
    meter_add(&D->m_sample, now, k);
    pthread_mutex_unlock(&D->stat_mu);
  }
  if (k < n) {
    pthread_mutex_lock(&L->stat_mu);
    L->total_samples += n - k;
    meter_add(&L->m_sample, now, n - k);
    pthread_mutex_unlock(&L->stat_mu);
  }
  return IB_OK;
}

/* ---- read ---- */

int store_read(store *s, int t, uint64_t start, uint32_t n, store_batch *out, const store_cols *cols,
               uint64_t *size, uint64_t *inserted) {
  IB_CHECK(s != NULL && out != NULL && t >= 0 && t < s->ntables);
  store__table *tb = &s->tables[t];
  if (n == 0) return ib_fail(IB_EINVAL, "read of table '%s': count 0 (HINT: ask for at least one row)", tb->spec.name);
  if (n > out->cap)
    return ib_fail(IB_EINVAL,
                   "read of table '%s': count %u is above the batch buffer's capacity %u (HINT: "
                   "store_batch_init with a larger cap)",
                   tb->spec.name, n, out->cap);
  if (out->obs_dim != tb->spec.obs_dim || out->act_dim != tb->spec.act_dim)
    return ib_fail(IB_EMISMATCH,
                   "read of table '%s': batch buffer is for obs_dim %d act_dim %d but the table "
                   "holds obs_dim %d act_dim %d",
                   tb->spec.name, out->obs_dim, out->act_dim, tb->spec.obs_dim, tb->spec.act_dim);
  IB_CHECK(pthread_rwlock_rdlock(&tb->lock) == 0);
  uint64_t sz = tb->size, ins = tb->total_inserts, cap = tb->spec.capacity;
  if (start > sz) {
    pthread_rwlock_unlock(&tb->lock);
    return ib_fail(IB_EINVAL,
                   "read of table '%s': start %llu is beyond the table's size %llu (HINT: positions "
                   "count from the oldest row, 0 .. size; the table may have been restored smaller)",
                   tb->spec.name, (unsigned long long)start, (unsigned long long)sz);
  }
  uint32_t k = (uint32_t)IB_MIN((uint64_t)n, sz - start);
  /* The ring writes slot `head` next, so the oldest of the `sz` rows sits `sz` slots behind it
   * (slot 0 until the ring first wraps, when head == size). */
  uint64_t slot = (tb->head + cap - sz + start) % cap;
  for (uint32_t i = 0; i < k; i++) {
    out->slot[i] = slot;
    slot = slot + 1 == cap ? 0 : slot + 1;
  }
  bool demo = tb->spec.kind == STORE_DEMO;
  if (k > 0) {
    if (cols != NULL) gather_cols(tb, out, cols, 0, k, demo);
    else gather(tb, out, 0, k, demo);
  }
  pthread_rwlock_unlock(&tb->lock);
  out->n = k;
  out->n_demo = demo ? k : 0;
  out->n_online = demo ? 0 : k;
  out->fallback = STORE_FALLBACK_NONE;
  out->demo_size = demo ? sz : 0;
  out->online_size = demo ? 0 : sz;
  if (size) *size = sz;
  if (inserted) *inserted = ins;
  return IB_OK;
}

/* ---- statistics ---- */

static void actor_info(const store__actor *a, store_actor_info *o) {
  o->actor_id = a->id;
  o->highest_seq = a->has_seq ? a->high : 0;
  o->inserts = a->inserts;
  o->duplicates = a->duplicates;
  o->last_weight_version = a->last_wv;
  o->last_insert_ns = a->last_ns;
  o->episodes = a->episodes;
  o->recent_episodes = (uint32_t)IB_MIN(a->episodes, (uint64_t)STORE_SUCCESS_WINDOW);
  uint32_t mask = o->recent_episodes >= 32 ? 0xffffffffu : ((1u << o->recent_episodes) - 1u);
  o->recent_successes = (uint32_t)__builtin_popcount(a->success_bits & mask);
}

void store_table_info_get(store *s, int t, store_table_info *out) {
  IB_CHECK(s != NULL && out != NULL && t >= 0 && t < s->ntables);
  store__table *tb = &s->tables[t];
  memset(out, 0, sizeof *out);
  IB_CHECK(pthread_rwlock_rdlock(&tb->lock) == 0);
  out->spec = tb->spec;
  out->size = tb->size;
  uint64_t cap = tb->spec.capacity;
  out->bytes = table_bytes(cap, tb->stride, tb->actor_cap);
  out->total_inserts = tb->total_inserts;
  out->total_evicted = tb->total_evicted;
  out->duplicates = tb->duplicates;
  out->rejected_batches = tb->rejected_batches;
  out->wv_min = tb->wv_min;
  out->wv_max = tb->wv_max;
  out->wv_last = tb->wv_last;
  out->actors = tb->nactors;
  out->episodes = tb->episodes;
  out->successes = tb->successes;
  pthread_rwlock_unlock(&tb->lock);
  uint64_t now = ib_now_ns();
  pthread_mutex_lock(&tb->stat_mu);
  out->total_samples = tb->total_samples;
  out->inserts_per_s = meter_rate(&tb->m_insert, now, s->created_ns, s->cfg.rate_window_s);
  out->samples_per_s = meter_rate(&tb->m_sample, now, s->created_ns, s->cfg.rate_window_s);
  pthread_mutex_unlock(&tb->stat_mu);
}

uint32_t store_actors_get(store *s, int t, store_actor_info *out, uint32_t max) {
  IB_CHECK(s != NULL && t >= 0 && t < s->ntables && (max == 0 || out != NULL));
  store__table *tb = &s->tables[t];
  IB_CHECK(pthread_rwlock_rdlock(&tb->lock) == 0);
  uint32_t k = 0;
  for (uint32_t p = 0; p < tb->actor_cap && k < max; p++)
    if (tb->actors[p].used) actor_info(&tb->actors[p], &out[k++]);
  uint32_t total = tb->nactors;
  pthread_rwlock_unlock(&tb->lock);
  return total;
}

int store_actor_get(store *s, int t, uint32_t actor_id, store_actor_info *out) {
  IB_CHECK(s != NULL && out != NULL && t >= 0 && t < s->ntables);
  store__table *tb = &s->tables[t];
  IB_CHECK(pthread_rwlock_rdlock(&tb->lock) == 0);
  uint32_t p = actor_pos(tb, actor_id);
  int rc = IB_OK;
  if (tb->actors[p].used)
    actor_info(&tb->actors[p], out);
  else
    rc = ib_fail(IB_ENOTFOUND, "table '%s' has no actor %u", tb->spec.name, actor_id);
  pthread_rwlock_unlock(&tb->lock);
  return rc;
}

size_t store_stored_count(store *s, int t, const store_item *items, size_t n) {
  IB_CHECK(s != NULL && t >= 0 && t < s->ntables && (items != NULL || n == 0));
  store__table *tb = &s->tables[t];
  size_t k = 0;
  IB_CHECK(pthread_rwlock_rdlock(&tb->lock) == 0);
  const store__actor *a = NULL;
  for (size_t i = 0; i < n; i++) {
    if (items[i].seq == STORE_SEQ_NONE) continue;
    if (a == NULL || a->id != items[i].actor_id) { /* a batch is one actor's run: one lookup */
      const store__actor *b = &tb->actors[actor_pos(tb, items[i].actor_id)];
      if (!b->used) {
        a = NULL;
        continue;
      }
      a = b;
    }
    k += seq_seen(a, items[i].seq);
  }
  pthread_rwlock_unlock(&tb->lock);
  return k;
}
