/* ctl_hdf5.c: `ibrl-replayctl export` and `import-demos`: replay tables <-> robomimic-style HDF5
 * files through ib_demo (common/demo/demo.h).
 *
 * Import. Each step t of each loaded episode becomes one transition built by demo_transition_n
 * (frame stack --stack, action chunk --chunk, the n-step return over --nstep chunks with --gamma:
 * the rule the actors use for online items, so both tables bootstrap alike; the exact arithmetic
 * is documented in demo.h), with proposer = demonstration, weight version 0,
 * episode_end on the last step and episode_success when that episode reached reward >= 1. The
 * transitions go to the demo tables through one rc_writer per shard, whose actor id is the
 * largest uint32 that maps to that shard (so demo loaders never collide with real actors, which
 * count up from 0) and whose seqs start at --seq-base: importing a file twice is idempotent.
 * The shard's --obs-dim / --act-dim must equal stack x obs width and chunk x action width.
 *
 * Export. Each shard's table is read in pages of EXPORT_PAGE rows with Replay.Read (rc_read),
 * positions 0 .. its size as Info gave it at the start, oldest row first: one pass, every row
 * once. (Before Read, export sampled the tables uniformly again and again, about 12 draws a row,
 * keeping distinct keys: 2 shards x 200,000 rows of obs 37 took 7.2-7.3 s; now 2.4-2.8 s, of
 * which reading is 0.4-0.5 s and the rest chaining and writing the file, as measured by
 * tests/rpc/export_bench.py.) A Read is inspection: the shard's rate limiter and sample
 * counters leave it alone. Each page carries the table's insert counter; if
 * it moved between pages (or since Info), or Info's counters moved over the export, actors
 * inserted while it ran and the file is no snapshot, which is reported: in a full online ring
 * every insert evicts the oldest row and moves every other one position towards the oldest, so
 * the scan skips as many rows as were inserted between its pages (they moved behind its read
 * position) and ends with as many of the newest rows instead; rows appended to a table that is
 * not full are left out. Rows are kept once per (actor_id, seq), the key the shard deduplicates
 * inserts by, which guards against a row met twice (none can be in one pass, but a shard restored
 * mid-export could serve one); fewer rows than Info counted is INCOMPLETE (exit 1). The key, not
 * the content, tells items apart: an actor that repeats an episode exactly stores equal items
 * under different seqs, and each is a row of the table. --max-draws (the sampling export's draw
 * cap) is accepted and unused. A shard that stops answering ends the export (exit 3, nothing
 * written).
 *
 * Episodes are rebuilt by chaining (link_successors): a non-terminal item is followed by the
 * next item in seq order of the same actor whose obs equals its next_obs bit for bit; chains
 * start at items that follow nothing, and an item with discount 0 or episode_end ends its
 * chain. Each chain is written as one demo: obs (one key "obs"), next_obs, actions (the stored
 * chunk), rewards (the stored chunk reward) and dones (1 on a terminal last row). A file
 * exported this way re-imports to the same transitions with --chunk 1 --stack 1 --nstep 1
 * --no-cut and --gamma equal to the stored discount of non-terminal items, except for what the
 * importer (demo_transition_n) decides itself: a terminal item's next_obs becomes its obs
 * (unused, discount 0), and the last row of a chain that ends on a non-terminal item (an
 * "open end": its follower was never stored) becomes terminal. With items covering s > 1 env
 * steps (chunks, n-step) the chains are the s interleaved sub-sequences t, t+s, ... of an
 * episode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "demo.h"
#include "ib.h"
#include "replay_client.h"

#define IMPORT_BATCH 256
#define EXPORT_PAGE 1024 /* rows per Read call */

/* ---- import ---- */

static uint32_t demo_actor_for_shard(int shard, int n) {
  uint32_t top = UINT32_MAX;
  uint32_t r = top % (uint32_t)n;
  return top - ((r + (uint32_t)n - (uint32_t)shard) % (uint32_t)n);
}

int ctl_import(rc_client *c, const ctl_args *a) {
  if (a->in == NULL) {
    fprintf(stderr, "ibrl-replayctl: import-demos needs the HDF5 file as its argument (see import-demos --help)\n");
    return CTL_EUSAGE;
  }
  int n_shards = rc_client_shard_count(c);
  rc_shard_info *info = ib_xmalloc(sizeof *info);
  int rc = rc_info_get(c, a->shard >= 0 ? a->shard : 0, info);
  int od = info->obs_dim, ad = info->act_dim;
  free(info);
  if (rc != IB_OK) return ctl_fail(rc, "import-demos");
  demo_set set;
  memset(&set, 0, sizeof set);
  demo_load_opts lo = {a->obs_keys, a->cut_at_success, a->max_episodes};
  rc = demo_load(&set, a->in, &lo);
  if (rc != IB_OK) {
    fprintf(stderr, "ibrl-replayctl: import-demos: %s\n", ib_errmsg());
    return CTL_EUSAGE;
  }
  if (set.obs_dim * a->stack != od || set.act_dim * a->chunk != ad) {
    fprintf(stderr,
            "ibrl-replayctl: import-demos: '%s' has obs width %d and action width %d, so --stack %d --chunk %d gives "
            "obs %d and action %d, but the shard holds obs %d and action %d HINT: pick --stack/--chunk (or --obs-keys) "
            "so that stack x obs = %d and chunk x action = %d\n",
            a->in, set.obs_dim, set.act_dim, a->stack, a->chunk, set.obs_dim * a->stack, set.act_dim * a->chunk, od, ad,
            od, ad);
    demo_set_free(&set);
    return CTL_EUSAGE;
  }
  rc_writer *w[RC_MAX_SHARDS] = {0};
  rc_batch b[RC_MAX_SHARDS];
  memset(b, 0, sizeof b);
  int code = CTL_OK;
  for (int s = 0; s < n_shards && code == CTL_OK; s++) {
    if (a->shard >= 0 && a->shard != s) continue;
    rc = rc_writer_open(&w[s], c, "demo", demo_actor_for_shard(s, n_shards), a->seq_base, 0);
    if (rc != IB_OK) code = ctl_fail(rc, "import-demos");
    rc_batch_init(&b[s], IMPORT_BATCH, od, ad);
  }
  long done = 0;
  for (int e = 0; e < set.n_episodes && code == CTL_OK; e++) {
    int s = a->shard >= 0 ? a->shard : e % n_shards;
    const demo_episode *ep = &set.episodes[e];
    int success = 0;
    for (int t = 0; t < ep->T; t++) success |= ep->rewards[t] >= 1.0f;
    for (int t = 0; t < ep->T && code == CTL_OK; t++) {
      rc_batch *bb = &b[s];
      int r = bb->n;
      demo_transition_n(bb->obs + (size_t)r * od, bb->action + (size_t)r * ad, &bb->reward[r], &bb->discount[r],
                        bb->next_obs + (size_t)r * od, &set, e, t, a->chunk, a->stack, (float)a->gamma, a->nstep);
      bb->proposer[r] = RC_PROPOSER_DEMO;
      bb->weight_version[r] = 0;
      bb->episode_end[r] = t == ep->T - 1;
      bb->episode_success[r] = t == ep->T - 1 && success;
      bb->n++;
      if (bb->n == bb->cap) {
        rc = rc_writer_write(w[s], bb);
        if (rc != IB_OK) code = ctl_fail(rc, "import-demos");
        bb->n = 0;
      }
      done++;
    }
    if (!a->json && (e + 1) % 50 == 0)
      fprintf(stderr, "import-demos: %d/%d episodes, %ld transitions sent\n", e + 1, set.n_episodes, done);
  }
  uint64_t inserted = 0, dups = 0;
  for (int s = 0; s < n_shards; s++) {
    if (w[s] == NULL) continue;
    if (code == CTL_OK && b[s].n > 0) {
      rc = rc_writer_write(w[s], &b[s]);
      if (rc != IB_OK) code = ctl_fail(rc, "import-demos");
    }
    if (code == CTL_OK) {
      rc = rc_writer_flush(w[s], -1);
      if (rc != IB_OK) code = ctl_fail(rc, "import-demos");
    }
    rc_writer_stats st;
    rc_writer_stats_get(w[s], &st);
    inserted += st.inserted;
    dups += st.duplicates;
    rc_writer_close(w[s]);
    rc_batch_free(&b[s]);
  }
  /* Some but not all keys taken: not a repeated import of this file (that is all duplicates and
   * harmless) but an overlap, e.g. another file from the same --seq-base, whose items are lost. */
  if (code == CTL_OK && dups > 0 && inserted > 0)
    fprintf(stderr, "ibrl-replayctl: import-demos: WARNING %llu of the %ld transitions of '%s' were not stored: their "
                    "(actor, seq) keys were already taken by an earlier import from the same --seq-base (another file, "
                    "or this one cut short) HINT: import each file with its own --seq-base, beyond the transitions "
                    "imported before\n", (unsigned long long)dups, done, a->in);
  if (code == CTL_OK) {
    if (a->json) {
      printf("{\"file\":");
      ctl_json_str(a->in);
      printf(",\"episodes\":%d,\"transitions\":%ld,\"inserted\":%llu,\"duplicates\":%llu}\n", set.n_episodes,
             done, (unsigned long long)inserted, (unsigned long long)dups);
    } else {
      printf("imported %d episodes, %ld transitions from %s: %llu stored, %llu duplicates%s\n", set.n_episodes, done,
             a->in, (unsigned long long)inserted, (unsigned long long)dups,
             dups ? " (already imported? use --seq-base to import another file)" : "");
    }
  }
  demo_set_free(&set);
  return code;
}

/* ---- export ---- */

/* The distinct items collected so far, grown by doubling, and an open-addressing set over
 * their contents (index + 1 per slot, 0 = empty). */
typedef struct pool {
  rc_batch b;
  uint64_t *hash;  /* [b.cap] content hash of each row */
  uint32_t *set;   /* [kcap] */
  size_t kcap;
} pool;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *x = p;
  for (size_t i = 0; i < n; i++) h = (h ^ x[i]) * 0x100000001b3ull;
  return h;
}

/* Hash of an item's key (actor_id, seq): the shard stores one item per key and table. */
static uint64_t row_hash(const rc_batch *b, int r) {
  uint64_t h = 0xcbf29ce484222325ull;
  h = fnv(h, &b->actor_id[r], sizeof(uint32_t));
  return fnv(h, &b->seq[r], sizeof(uint64_t));
}

static int rows_equal(const rc_batch *x, int i, const rc_batch *y, int j) {
  return x->actor_id[i] == y->actor_id[j] && x->seq[i] == y->seq[j];
}

void ctl_batch_copy_row(rc_batch *dst, int d, const rc_batch *src, int r) {
  size_t od = (size_t)src->obs_dim, ad = (size_t)src->act_dim;
  memcpy(dst->obs + d * od, src->obs + r * od, od * sizeof(float));
  memcpy(dst->next_obs + d * od, src->next_obs + r * od, od * sizeof(float));
  memcpy(dst->action + d * ad, src->action + r * ad, ad * sizeof(float));
  dst->reward[d] = src->reward[r];
  dst->discount[d] = src->discount[r];
  dst->actor_id[d] = src->actor_id[r];
  dst->weight_version[d] = src->weight_version[r];
  dst->proposer[d] = src->proposer[r];
  dst->seq[d] = src->seq[r];
  dst->episode_end[d] = src->episode_end[r];
  dst->episode_success[d] = src->episode_success[r];
  dst->from_demo[d] = src->from_demo[r];
}

/* Adds row r of s to the pool unless an item with its key is there. Returns 1 if added. */
static int pool_add(pool *p, const rc_batch *s, int r) {
  uint64_t h = row_hash(s, r);
  size_t m = p->kcap - 1;
  size_t slot = (size_t)(h ^ (h >> 29)) & m;
  for (;; slot = (slot + 1) & m) {
    uint32_t v = p->set[slot];
    if (v == 0) break;
    if (p->hash[v - 1] == h && rows_equal(&p->b, (int)v - 1, s, r)) return 0;
  }
  if (p->b.n == p->b.cap) {
    rc_batch nb;
    rc_batch_init(&nb, p->b.cap * 2, p->b.obs_dim, p->b.act_dim);
    for (int i = 0; i < p->b.n; i++) ctl_batch_copy_row(&nb, i, &p->b, i);
    nb.n = p->b.n;
    rc_batch_free(&p->b);
    p->b = nb;
    p->hash = ib_xrealloc(p->hash, (size_t)p->b.cap * sizeof *p->hash);
  }
  int d = p->b.n++;
  ctl_batch_copy_row(&p->b, d, s, r);
  p->hash[d] = h;
  p->set[slot] = (uint32_t)d + 1;
  return 1;
}

/* The batch whose rows `by_actor_seq` (qsort has no context argument) orders; set around the
 * one qsort call in link_successors. */
static const rc_batch *sort_batch;

static int by_actor_seq(const void *x, const void *y) {
  int i = *(const int *)x, j = *(const int *)y;
  const rc_batch *b = sort_batch;
  if (b->actor_id[i] != b->actor_id[j]) return b->actor_id[i] < b->actor_id[j] ? -1 : 1;
  if (b->seq[i] != b->seq[j]) return b->seq[i] < b->seq[j] ? -1 : 1;
  return 0;
}

static uint64_t obs_key_hash(const float *obs, size_t od, uint32_t actor) {
  return fnv(fnv(0xcbf29ce484222325ull, obs, od * sizeof(float)), &actor, sizeof actor);
}

/* Links each non-terminal item to the item of the same actor that follows it (succ[i], or -1;
 * pred the inverse), so chains of transitions become episodes. The follower has obs equal to
 * the item's next_obs bit for bit and a larger seq (an actor sends an item only once its n-step
 * window is complete, so the item n steps later always comes after it). Among several candidates
 * (an agent standing still repeats its observation) the one with the smallest larger seq that
 * is still free is taken, predecessors in seq order: that is the true order in time, so
 * chains do not close into loops or end early. Groups of items with equal (actor, obs) are
 * kept sorted by seq with a cursor each, which only moves forward: O(n log n) in all. */
static void link_successors(int *succ, int *pred, const rc_batch *b) {
  int n = b->n;
  size_t od = (size_t)b->obs_dim;
  int *order = ib_xmalloc((size_t)IB_MAX(n, 1) * sizeof *order);
  for (int i = 0; i < n; i++) {
    order[i] = i;
    succ[i] = pred[i] = -1;
  }
  sort_batch = b;
  qsort(order, (size_t)n, sizeof *order, by_actor_seq);
  sort_batch = NULL;
  /* Groups of equal (actor, obs): an open-addressing table of group ids + 1 over a representative
   * row each, then the members of each group in seq order (CSR: start[g] .. start[g + 1]). */
  size_t kcap = 1;
  while (kcap < 2 * (size_t)n + 16) kcap <<= 1;
  int *slot = ib_xcalloc(kcap, sizeof *slot), *group = ib_xmalloc((size_t)IB_MAX(n, 1) * sizeof *group);
  int *rep = ib_xmalloc((size_t)IB_MAX(n, 1) * sizeof *rep), *start = ib_xcalloc((size_t)n + 2, sizeof *start);
  int ng = 0;
  for (int k = 0; k < n; k++) {
    int i = order[k];
    uint64_t h = obs_key_hash(b->obs + i * od, od, b->actor_id[i]);
    size_t q = (size_t)(h ^ (h >> 31)) & (kcap - 1);
    for (;; q = (q + 1) & (kcap - 1)) {
      int g = slot[q] - 1;
      if (g < 0) {
        g = ng++;
        rep[g] = i;
        slot[q] = g + 1;
      } else if (b->actor_id[rep[g]] != b->actor_id[i] ||
                 memcmp(b->obs + rep[g] * od, b->obs + i * od, od * sizeof(float)) != 0) {
        continue; /* another group in this slot: probe on */
      }
      group[i] = g;
      start[g + 1]++;
      break;
    }
  }
  for (int g = 0; g < ng; g++) start[g + 1] += start[g];
  int *member = ib_xmalloc((size_t)IB_MAX(n, 1) * sizeof *member);
  int *fill = ib_xmalloc((size_t)IB_MAX(ng, 1) * sizeof *fill);
  for (int g = 0; g < ng; g++) fill[g] = start[g];
  for (int k = 0; k < n; k++) member[fill[group[order[k]]]++] = order[k]; /* in seq order */
  int *cursor = fill; /* reused: the next candidate of each group */
  for (int g = 0; g < ng; g++) cursor[g] = start[g];
  for (int k = 0; k < n; k++) {
    int i = order[k];
    /* Terminal or the last step of its episode (the shard sends episode_end back): no successor,
     * even when a reset observation happens to equal this next_obs. */
    if (b->discount[i] == 0 || b->episode_end[i]) continue;
    uint64_t h = obs_key_hash(b->next_obs + i * od, od, b->actor_id[i]);
    size_t q = (size_t)(h ^ (h >> 31)) & (kcap - 1);
    int g = -1;
    for (; slot[q] != 0; q = (q + 1) & (kcap - 1)) {
      int r = rep[slot[q] - 1];
      if (b->actor_id[r] == b->actor_id[i] && !memcmp(b->obs + r * od, b->next_obs + i * od, od * sizeof(float))) {
        g = slot[q] - 1;
        break;
      }
    }
    if (g < 0) continue;
    while (cursor[g] < start[g + 1] && b->seq[member[cursor[g]]] <= b->seq[i]) cursor[g]++;
    if (cursor[g] == start[g + 1]) continue;
    int j = member[cursor[g]++];
    succ[i] = j;
    pred[j] = i;
  }
  free(order);
  free(slot);
  free(group);
  free(rep);
  free(start);
  free(member);
  free(fill);
}

/* Reads the demo or online table of every shard with Info: each shard's size and insert counter
 * into sizes[s] and ins[s] (either may be NULL), their sums into *total and *inserted, and the
 * dims. Returns IB_OK or the failed rc_info_get's status. */
static int table_totals(uint64_t *total, uint64_t *inserted, uint64_t *sizes, uint64_t *ins, int *od, int *ad,
                        rc_client *c, int want_demo) {
  int n_shards = rc_client_shard_count(c);
  *total = *inserted = 0;
  rc_shard_info *info = ib_xmalloc(sizeof *info);
  for (int s = 0; s < n_shards; s++) {
    int rc = rc_info_get(c, s, info);
    if (rc != IB_OK) {
      free(info);
      return rc;
    }
    *od = info->obs_dim;
    *ad = info->act_dim;
    uint64_t sz = 0, in = 0;
    for (int t = 0; t < info->n_tables; t++)
      if ((info->tables[t].kind == 0) == want_demo) {
        sz += info->tables[t].size;
        in += info->tables[t].inserted;
      }
    if (sizes) sizes[s] = sz;
    if (ins) ins[s] = in;
    *total += sz;
    *inserted += in;
  }
  free(info);
  return IB_OK;
}

int ctl_export(rc_client *c, const ctl_args *a) {
  if (a->table == NULL || (strcmp(a->table, "demo") != 0 && strcmp(a->table, "online") != 0)) {
    fprintf(stderr, "ibrl-replayctl: export needs --table demo or --table online (got '%s')\n",
            a->table ? a->table : "");
    return CTL_EUSAGE;
  }
  if (a->out == NULL) {
    fprintf(stderr, "ibrl-replayctl: export needs --out FILE.hdf5\n");
    return CTL_EUSAGE;
  }
  int want_demo = !strcmp(a->table, "demo");
  int n_shards = rc_client_shard_count(c);
  uint64_t total = 0, inserted0 = 0, size_of[RC_MAX_SHARDS], ins_of[RC_MAX_SHARDS];
  int od = 0, ad = 0;
  int rc0 = table_totals(&total, &inserted0, size_of, ins_of, &od, &ad, c, want_demo);
  if (rc0 != IB_OK) return ctl_fail(rc0, "export");
  if (total == 0) {
    fprintf(stderr, "ibrl-replayctl: export: the %s tables of the %d shard(s) are empty HINT: nothing to export\n",
            a->table, n_shards);
    return CTL_ESERVER;
  }
  if (total > 50000000) {
    fprintf(stderr, "ibrl-replayctl: export: %llu items is more than export handles (50M) HINT: checkpoint the shard "
                    "instead\n", (unsigned long long)total);
    return CTL_EUSAGE;
  }
  /* The pool holds every row once: it never grows past `total`, because each shard is read only
   * up to the size Info gave for it. */
  pool p;
  memset(&p, 0, sizeof p);
  rc_batch_init(&p.b, (int)total, od, ad);
  p.hash = ib_xmalloc((size_t)p.b.cap * sizeof *p.hash);
  p.kcap = 1;
  while (p.kcap < 2 * total + 16) p.kcap <<= 1;
  p.set = ib_xcalloc(p.kcap, sizeof *p.set);
  rc_batch pg;
  rc_batch_init(&pg, EXPORT_PAGE, od, ad);
  uint64_t rows_read = 0, pages = 0, repeats = 0;
  int code = CTL_OK, moved_shards = 0;
  double t_last = ib_now_s(), t_read0 = t_last;
  for (int s = 0; s < n_shards && code == CTL_OK; s++) {
    /* Positions [0, size at Info) of this shard, oldest first. Rows appended since Info are left
     * out (the export is of the table as Info saw it). */
    uint64_t pos = 0, lim = size_of[s], ins_prev = ins_of[s];
    int moved = 0;
    while (pos < lim) {
      uint64_t tsz = 0, ins = 0;
      int rc = rc_read(c, s, a->table, pos, &pg, (int)IB_MIN((uint64_t)EXPORT_PAGE, lim - pos), &tsz, &ins);
      if (rc != IB_OK) {
        code = ctl_fail(rc, "export");
        fprintf(stderr, "ibrl-replayctl: export: stopped at row %llu of %llu of shard %d (%s); nothing written "
                        "HINT: check the shard with `ibrl-replayctl health` and export again\n",
                (unsigned long long)pos, (unsigned long long)lim, s, rc_client_target(c, s));
        break;
      }
      pages++;
      /* The insert counter moved since the previous page (or since Info, for the first): the
       * rows shifted under the scan if the ring is full. */
      moved |= ins != ins_prev;
      ins_prev = ins;
      if (tsz < lim) lim = tsz; /* smaller than Info said (a restore): read what is there */
      if (pg.n == 0) break;
      rows_read += (uint64_t)pg.n;
      /* Keyed by (actor, seq): a row met twice (a shard restored mid-export) is kept once. */
      for (int r = 0; r < pg.n; r++) repeats += !pool_add(&p, &pg, r);
      pos += (uint64_t)pg.n;
      if (!a->json && ib_now_s() - t_last > 1.0) {
        fprintf(stderr, "export: shard %d: %llu/%llu rows read; %d items in all\n", s, (unsigned long long)pos,
                (unsigned long long)lim, p.b.n);
        t_last = ib_now_s();
      }
    }
    moved_shards += moved;
  }
  rc_batch_free(&pg);
  double read_s = ib_now_s() - t_read0;
  /* A live table: actors inserted while we read. The export still ends (each shard is read up
   * to its size at the start), but the file is no snapshot, which the user must hear about. */
  uint64_t total1 = 0, inserted1 = inserted0, during = 0;
  if (code == CTL_OK) {
    int rc1 = table_totals(&total1, &inserted1, NULL, NULL, &od, &ad, c, want_demo);
    if (rc1 != IB_OK) code = ctl_fail(rc1, "export");
    during = inserted1 > inserted0 ? inserted1 - inserted0 : 0;
    if (code == CTL_OK && (during > 0 || moved_shards > 0))
      fprintf(stderr, "ibrl-replayctl: export: WARNING the %s tables took %llu inserts while exporting (%d shard(s) "
                      "changed between pages), so the file mixes items from before and during the export (not a "
                      "snapshot): in a full online ring, rows that moved behind the read position are missing and "
                      "as many of the newest stand in their place; rows appended since the start are left out "
                      "HINT: stop the actors first for an exact copy\n", a->table, (unsigned long long)during,
              moved_shards);
  }
  int complete = (uint64_t)p.b.n >= total;
  if (code == CTL_OK && !complete)
    fprintf(stderr, "ibrl-replayctl: export: INCOMPLETE: only %d of %llu items read (%llu rows read, %llu seen twice); "
                    "the file holds those (exit 1) HINT: a shard's table shrank or changed during the export (a "
                    "restart?); export again\n", p.b.n, (unsigned long long)total, (unsigned long long)rows_read,
            (unsigned long long)repeats);
  int n = p.b.n, episodes = 0, open_ends = 0;
  if (code == CTL_OK) {
    int *succ = ib_xmalloc((size_t)n * sizeof *succ), *pred = ib_xmalloc((size_t)n * sizeof *pred);
    uint8_t *seen = ib_xcalloc((size_t)n, 1);
    link_successors(succ, pred, &p.b);
    demo_key key = {"obs", od};
    demo_writer *dw = NULL;
    int rc = demo_writer_open(&dw, a->out, &key, 1, ad, NULL);
    if (rc != IB_OK) {
      fprintf(stderr, "ibrl-replayctl: export: %s\n", ib_errmsg());
      code = CTL_EUSAGE;
    }
    /* Episode rows are gathered contiguously into scratch arrays sized for the whole pool. */
    rc_batch ep;
    rc_batch_init(&ep, IB_MAX(n, 1), od, ad);
    /* Chains start at items nobody leads to; a second pass takes what is left (cycles). */
    for (int pass = 0; pass < 2 && code == CTL_OK; pass++) {
      for (int i = 0; i < n && code == CTL_OK; i++) {
        if (seen[i] || (pass == 0 && pred[i] >= 0)) continue;
        int T = 0, last = i;
        for (int j = i; j >= 0 && !seen[j]; j = succ[j]) {
          seen[j] = 1;
          ctl_batch_copy_row(&ep, T, &p.b, j);
          ep.episode_end[T] = 0;
          last = j;
          T++;
        }
        ep.episode_end[T - 1] = ep.discount[T - 1] == 0 || p.b.episode_end[last];
        /* A chain that stops on a bootstrapping item (an open end): its follower is not in the
         * table, e.g. the newest items of an actor. Imported, its last row becomes terminal. */
        open_ends += !ep.episode_end[T - 1];
        rc = demo_writer_add(dw, ep.obs, ep.action, ep.reward, ep.episode_end, ep.next_obs, T);
        if (rc != IB_OK) { /* the local file (a full disk): exit 2 as for a file that cannot be created */
          fprintf(stderr, "ibrl-replayctl: export: %s\n", ib_errmsg());
          code = CTL_EUSAGE;
        }
        episodes++;
      }
    }
    if (dw != NULL) {
      if (code == CTL_OK) {
        rc = demo_writer_close(dw);
        if (rc != IB_OK) {
          fprintf(stderr, "ibrl-replayctl: export: %s\n", ib_errmsg());
          code = CTL_EUSAGE;
        }
      } else {
        demo_writer_abort(dw);
      }
    }
    rc_batch_free(&ep);
    free(succ);
    free(pred);
    free(seen);
  }
  if (code == CTL_OK) {
    if (a->json) {
      printf("{\"table\":\"%s\",\"out\":", a->table);
      ctl_json_str(a->out);
      printf(",\"items\":%d,\"table_size\":%llu,\"complete\":%s,\"inserts_during\":%llu,\"episodes\":%d,"
             "\"open_ends\":%d,\"rows_read\":%llu,\"pages\":%llu,\"repeats\":%llu,\"read_s\":%.3f,\"seconds\":%.3f}\n",
             n, (unsigned long long)total, complete ? "true" : "false", (unsigned long long)during, episodes, open_ends,
             (unsigned long long)rows_read, (unsigned long long)pages, (unsigned long long)repeats, read_s,
             ib_now_s() - t_read0);
    } else {
      printf("exported %d of %llu items of table '%s' as %d episodes (%d end on a non-terminal item) to %s "
             "(%llu rows read in %llu pages in %.2f s; %.2f s in all)%s\n", n, (unsigned long long)total, a->table,
             episodes, open_ends, a->out, (unsigned long long)rows_read, (unsigned long long)pages, read_s,
             ib_now_s() - t_read0, complete ? "" : ": INCOMPLETE");
    }
    if (!complete) code = CTL_ESERVER;
  }
  free(p.set);
  free(p.hash);
  rc_batch_free(&p.b);
  return code;
}
