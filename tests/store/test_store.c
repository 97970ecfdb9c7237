/* test_store.c: the replay store in memory: round trip, mixing ratios, FIFO order, dedup,
 * validation with no partial effects, capacity and registry limits, statistics, and concurrent
 * inserts and samples; the record layout written from unaligned sources for a sweep of dims; huge
 * pages mended after a fork (store_huge_collapse). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ib.h"
#include "rng.h"
#include "store.h"
#include "store_fixture.h"
#include "store_impl.h" /* the record arena, for the record layout test */
#include "th.h"

#define MAXB 64

static store *mk(uint64_t demo_cap, uint64_t online_cap, const store_config *cfg) {
  store_spec sp[2];
  store_specs_default(sp, FX_O, FX_A, demo_cap, online_cap);
  store *s = NULL;
  int rc = store_create(&s, sp, 2, cfg);
  TH_CHECK_MSG(rc == IB_OK, "store_create: %s", ib_errmsg());
  return s;
}

/* Inserts seqs [from, to) of `actor` into `table` in batches of `bs`; returns the stored count. */
static uint64_t put_range(store *s, const char *table, uint32_t actor, uint64_t from, uint64_t to,
                          int bs, uint32_t proposer) {
  fx_item xs[MAXB];
  store_item v[MAXB];
  uint64_t stored = 0;
  for (uint64_t q = from; q < to;) {
    int n = 0;
    while (n < bs && q < to) fx_fill(&xs[n++], actor, q++, proposer);
    fx_views(v, xs, n);
    store_insert_result r;
    int rc = store_insert(s, table, v, (size_t)n, &r);
    TH_CHECK_MSG(rc == IB_OK, "insert: %s", ib_errmsg());
    stored += r.stored;
  }
  return stored;
}

static uint64_t table_size(store *s, const char *name) {
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, name), &ti);
  return ti.size;
}

static void test_round_trip(void) {
  store *s = mk(16, 16, NULL);
  TH_CHECK_EQ_INT(put_range(s, "online", 3, 0, 10, 4, STORE_PROPOSER_RL), 10);
  store_batch b;
  store_batch_init(&b, 256, FX_O, FX_A);
  rng r;
  rng_seed(&r, 1, "test", 0, "sample");
  int seen[10] = {0};
  TH_CHECK_EQ_INT(store_sample(s, &r, 200, 0.0, &b), IB_OK);
  TH_CHECK_EQ_INT(b.n, 200);
  TH_CHECK_EQ_INT(b.n_online, 200);
  TH_CHECK_EQ_INT(b.fallback, STORE_FALLBACK_NONE);
  int bad = 0;
  for (uint32_t i = 0; i < b.n; i++) {
    bad += !fx_row_ok(&b, i);
    uint64_t seq = b.weight_version[i] - fx_key(3, 0);
    TH_CHECK(seq < 10);
    if (seq < 10) seen[seq]++;
    TH_CHECK_EQ_INT(b.proposer[i], STORE_PROPOSER_RL);
    TH_CHECK_EQ_INT(b.from_demo[i], 0);
  }
  TH_CHECK_EQ_INT(bad, 0);
  for (int q = 0; q < 10; q++) TH_CHECK_MSG(seen[q] > 0, "item %d never sampled in 200 draws", q);
  store_batch_free(&b);
  store_destroy(s);
}

/* The store streams each record out in 16-byte pieces planned once per insert call from the
 * item's separate runs (obs, next_obs, action, then reward, discount and the pad; slot_writer in
 * store.c), so the runs' lengths and the record's pieces cut each other in every way: for every
 * obs_dim 1..9 and act_dim 1..6, and the paper's 69 / 7 and 23, 17 and 150 / 40 (long runs),
 * rows whose floats lie at odd byte addresses (as in a received message;
 * store_insert_prechecked reads them with memcpy only) land in the arena as exactly
 * [obs | next_obs | action | reward | discount | zeros], and sample back bit for bit. */
static void test_record_layout_sweep(void) {
  enum { N = 5 };
  int bad_rec = 0, bad_sample = 0, cases = 0;
  static const int big[][2] = {{69, 7}, {23, 17}, {150, 40}};
  for (int c = 0; c < 9 * 6 + 3; c++) {
    int od = c < 54 ? 1 + c / 6 : big[c - 54][0], ad = c < 54 ? 1 + c % 6 : big[c - 54][1];
    store_spec sp[2];
    store_specs_default(sp, od, ad, 8, 8);
    store *s = NULL;
    TH_CHECK_MSG(store_create(&s, sp, 2, NULL) == IB_OK, "store_create: %s", ib_errmsg());
    if (s == NULL) return;
    size_t rowf = 2 * (size_t)od + (size_t)ad;
    uint8_t *raw = ib_xmalloc(N * rowf * 4 + 1);
    store_item it[N];
    for (int i = 0; i < N; i++) {
      uint8_t *base = raw + 1 + (size_t)i * rowf * 4; /* odd addresses */
      for (size_t j = 0; j < rowf; j++) {
        float v = (float)(i * 1000 + (int)j) + 0.5f;
        memcpy(base + 4 * j, &v, 4);
      }
      memset(&it[i], 0, sizeof it[i]);
      it[i].obs = (const float *)(const void *)base;
      it[i].next_obs = (const float *)(const void *)(base + 4 * (size_t)od);
      it[i].action = (const float *)(const void *)(base + 8 * (size_t)od);
      it[i].obs_n = it[i].next_obs_n = (uint32_t)od;
      it[i].act_n = (uint32_t)ad;
      it[i].reward = -(float)i - 0.25f;
      it[i].discount = 0.5f;
      it[i].proposer = (uint32_t)(i % 3);
      it[i].episode_end = i % 2 == 1;
      it[i].episode_success = i == 3;
      it[i].actor_id = 1;
      it[i].seq = (uint64_t)i;
      it[i].weight_version = (uint64_t)i;
    }
    store_insert_result r;
    TH_CHECK_MSG(store_insert_prechecked(s, "online", it, N, &r) == IB_OK, "insert: %s", ib_errmsg());
    const store__table *tb = &s->tables[store_table_find(s, "online")];
    /* The pad holds the metadata copy when it has room (6 floats: seq, weight version, actor id,
     * proposer + flags bytes; see store_impl.h), zeros elsewhere. */
    size_t pad = tb->stride - (rowf + 2);
    if (tb->meta_off != (pad >= STORE__META_FLOATS ? rowf + 2 : 0)) bad_rec++;
    for (int i = 0; i < N; i++) {
      const float *rec = tb->rec + (size_t)i * tb->stride;
      uint32_t meta[STORE__META_FLOATS] = {(uint32_t)i, 0, (uint32_t)i, 0, 1,
                                           (uint32_t)(i % 3) | (uint32_t)(i % 2 == 1 ? 1u : 0u) << 8 |
                                               (uint32_t)(i == 3 ? 2u : 0u) << 8};
      for (size_t j = 0; j < tb->stride; j++) {
        float want = j < rowf ? (float)(i * 1000 + (int)j) + 0.5f
                     : j == rowf ? -(float)i - 0.25f : j == rowf + 1 ? 0.5f : 0.0f;
        uint32_t a, b;
        memcpy(&a, &rec[j], 4);
        memcpy(&b, &want, 4);
        if (tb->meta_off && j >= tb->meta_off && j < tb->meta_off + STORE__META_FLOATS) b = meta[j - tb->meta_off];
        if (a != b) bad_rec++;
      }
    }
    store_batch b;
    store_batch_init(&b, 16, od, ad);
    rng g;
    rng_seed(&g, 3, "test", 0, "layout");
    TH_CHECK_EQ_INT(store_sample(s, &g, 16, 0.0, &b), IB_OK);
    for (uint32_t k = 0; k < b.n; k++) {
      int i = (int)b.weight_version[k];
      for (int j = 0; j < od; j++) {
        bad_sample += b.obs[k * (uint32_t)od + (uint32_t)j] != (float)(i * 1000 + j) + 0.5f;
        bad_sample += b.next_obs[k * (uint32_t)od + (uint32_t)j] != (float)(i * 1000 + od + j) + 0.5f;
      }
      for (int j = 0; j < ad; j++)
        bad_sample += b.action[k * (uint32_t)ad + (uint32_t)j] != (float)(i * 1000 + 2 * od + j) + 0.5f;
      bad_sample += b.reward[k] != -(float)i - 0.25f || b.discount[k] != 0.5f;
      bad_sample += b.seq[k] != (uint64_t)i || b.actor_id[k] != 1 || b.proposer[k] != i % 3;
      bad_sample += b.episode_end[k] != (i % 2 == 1) || b.episode_success[k] != (i == 3);
    }
    store_batch_free(&b);
    free(raw);
    store_destroy(s);
    cases++;
  }
  TH_CHECK_EQ_INT(cases, 57);
  TH_CHECK_MSG(bad_rec == 0, "%d record floats differ from [obs | next_obs | action | reward | discount | metadata or 0]", bad_rec);
  TH_CHECK_MSG(bad_sample == 0, "%d sampled values differ from the inserted ones", bad_sample);
}

static void test_mix_exact_count(void) {
  store *s = mk(200, 200, NULL);
  put_range(s, "demo", 7, 0, 100, 50, STORE_PROPOSER_DEMO);
  put_range(s, "online", 1, 0, 100, 50, STORE_PROPOSER_IL);
  store_batch b;
  store_batch_init(&b, 256, FX_O, FX_A);
  rng r;
  rng_seed(&r, 2, "test", 0, "sample");
  const struct {
    uint32_t n;
    double f;
    uint32_t want;
  } cases[] = {{256, 0.25, 64}, {255, 0.5, 128}, {256, 0.0, 0},
               {256, 1.0, 256}, {10, 0.33, 3},   {7, 0.5, 4}};
  for (size_t c = 0; c < IB_ARRAY_LEN(cases); c++) {
    TH_CHECK_EQ_INT(store_sample(s, &r, cases[c].n, cases[c].f, &b), IB_OK);
    TH_CHECK_EQ_INT(b.n_demo, cases[c].want);
    TH_CHECK_EQ_INT(b.n_online, cases[c].n - cases[c].want);
    int wrong = 0;
    for (uint32_t i = 0; i < b.n; i++) {
      bool demo_row = i < b.n_demo;
      wrong += b.from_demo[i] != demo_row;
      wrong += (b.proposer[i] == STORE_PROPOSER_DEMO) != demo_row;
      wrong += !fx_row_ok(&b, i);
    }
    TH_CHECK_MSG(wrong == 0, "case %zu: %d rows in the wrong part or damaged", c, wrong);
  }
  store_batch_free(&b);
  store_destroy(s);
}

static void test_mix_proportional_and_uniform(void) {
  store *s = mk(300, 100, NULL);
  put_range(s, "demo", 7, 0, 300, 60, STORE_PROPOSER_DEMO);
  put_range(s, "online", 1, 0, 100, 50, STORE_PROPOSER_RL);
  store_batch b;
  store_batch_init(&b, 256, FX_O, FX_A);
  rng r;
  rng_seed(&r, 3, "test", 0, "sample");
  /* Proportional: 75% demo. 400 batches x 250 = 1e5 draws, sd of the fraction 0.00137. */
  uint64_t demo = 0, total = 0;
  for (int k = 0; k < 400; k++) {
    TH_CHECK_EQ_INT(store_sample(s, &r, 250, -1.0, &b), IB_OK);
    demo += b.n_demo;
    total += b.n;
  }
  double frac = (double)demo / (double)total;
  TH_CHECK_NEAR(frac, 0.75, 0.01);
  /* Uniform within the online table: 100 items, 2000 x 256 draws, expected 5120 each, sd ~71.
   * A chi-square over 99 degrees of freedom has mean 99 and sd 14; 200 is > 7 sd. */
  uint64_t cnt[100] = {0};
  for (int k = 0; k < 2000; k++) {
    TH_CHECK_EQ_INT(store_sample(s, &r, 256, 0.0, &b), IB_OK);
    for (uint32_t i = 0; i < b.n; i++) cnt[b.weight_version[i] - fx_key(1, 0)]++;
  }
  double chi2 = 0;
  for (int q = 0; q < 100; q++)
    chi2 += ((double)cnt[q] - 5120.0) * ((double)cnt[q] - 5120.0) / 5120.0;
  TH_CHECK_MSG(chi2 < 200, "online sampling not uniform: chi2 %.1f over 99 dof", chi2);
  /* Exact fraction 0.5 over many batches of an odd size: always round(n/2) demo rows. */
  store_batch_free(&b);
  store_destroy(s);
}

static void test_fallback_and_empty(void) {
  store *s = mk(10, 10, NULL);
  store_batch b;
  store_batch_init(&b, 32, FX_O, FX_A);
  rng r;
  rng_seed(&r, 4, "test", 0, "sample");
  TH_CHECK_EQ_INT(store_sample(s, &r, 8, 0.5, &b), IB_EUNAVAIL);
  TH_CHECK(strstr(ib_errmsg(), "empty") != NULL);
  put_range(s, "demo", 9, 0, 5, 5, STORE_PROPOSER_DEMO);
  TH_CHECK_EQ_INT(store_sample(s, &r, 8, 0.5, &b), IB_OK);
  TH_CHECK_EQ_INT(b.n_demo, 8);
  TH_CHECK_EQ_INT(b.fallback, STORE_FALLBACK_ONLINE_EMPTY);
  TH_CHECK_EQ_INT(b.online_size, 0);
  /* A fraction 1.0 with an empty online table is not a fallback. */
  TH_CHECK_EQ_INT(store_sample(s, &r, 8, 1.0, &b), IB_OK);
  TH_CHECK_EQ_INT(b.fallback, STORE_FALLBACK_NONE);
  store_destroy(s);

  s = mk(10, 10, NULL);
  put_range(s, "online", 2, 0, 5, 5, STORE_PROPOSER_RL);
  TH_CHECK_EQ_INT(store_sample(s, &r, 9, 0.5, &b), IB_OK);
  TH_CHECK_EQ_INT(b.n_online, 9);
  TH_CHECK_EQ_INT(b.fallback, STORE_FALLBACK_DEMO_EMPTY);
  /* Proportional mode with an empty demo table: all online, no fallback. */
  TH_CHECK_EQ_INT(store_sample(s, &r, 9, -1.0, &b), IB_OK);
  TH_CHECK_EQ_INT(b.n_online, 9);
  TH_CHECK_EQ_INT(b.fallback, STORE_FALLBACK_NONE);
  store_batch_free(&b);
  store_destroy(s);
}

static void test_sample_bad_args(void) {
  store *s = mk(10, 10, NULL);
  put_range(s, "online", 2, 0, 5, 5, STORE_PROPOSER_RL);
  store_batch b, wrong;
  store_batch_init(&b, 16, FX_O, FX_A);
  store_batch_init(&wrong, 16, FX_O + 1, FX_A);
  rng r;
  rng_seed(&r, 5, "test", 0, "sample");
  TH_CHECK_EQ_INT(store_sample(s, &r, 0, 0.5, &b), IB_EINVAL);
  TH_CHECK_EQ_INT(store_sample(s, &r, 17, 0.5, &b), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "capacity 16") != NULL);
  TH_CHECK_EQ_INT(store_sample(s, &r, 4, 1.5, &b), IB_EINVAL);
  TH_CHECK_EQ_INT(store_sample(s, &r, 4, NAN, &b), IB_EINVAL);
  TH_CHECK_EQ_INT(store_sample(s, &r, 4, 0.5, &wrong), IB_EMISMATCH);
  TH_CHECK(strstr(ib_errmsg(), "obs_dim 6") != NULL);
  store_batch_free(&b);
  store_batch_free(&wrong);
  store_destroy(s);
}

/* Which seqs of actor 1 the online table holds, found through many samples (slot -> seq). */
static void online_contents(store *s, rng *r, uint64_t cap, int64_t *slot_seq) {
  store_batch b;
  store_batch_init(&b, 256, FX_O, FX_A);
  for (uint64_t i = 0; i < cap; i++) slot_seq[i] = -1;
  for (int k = 0; k < 20; k++) {
    TH_CHECK_EQ_INT(store_sample(s, r, 256, 0.0, &b), IB_OK);
    for (uint32_t i = 0; i < b.n; i++)
      slot_seq[b.slot[i]] = (int64_t)(b.weight_version[i] - fx_key(1, 0));
  }
  store_batch_free(&b);
}

static void test_fifo_eviction_order(void) {
  store *s = mk(4, 8, NULL);
  rng r;
  rng_seed(&r, 6, "test", 0, "sample");
  uint64_t evicted = 0;
  fx_item xs[3];
  store_item v[3];
  for (uint64_t q = 0; q < 20; q += 3) {
    int n = 0;
    for (uint64_t k = q; k < q + 3 && k < 20; k++) fx_fill(&xs[n++], 1, k, STORE_PROPOSER_RL);
    fx_views(v, xs, n);
    store_insert_result res;
    TH_CHECK_EQ_INT(store_insert(s, "online", v, (size_t)n, &res), IB_OK);
    evicted += res.evicted;
  }
  TH_CHECK_EQ_INT(evicted, 12);
  TH_CHECK_EQ_INT(table_size(s, "online"), 8);
  int64_t slot_seq[8];
  online_contents(s, &r, 8, slot_seq);
  /* The ring holds the newest 8 (12..19) and item k sits in slot k mod 8. */
  for (int i = 0; i < 8; i++) {
    int64_t q = slot_seq[i];
    TH_CHECK_MSG(q >= 12 && q <= 19 && q % 8 == i, "slot %d holds seq %lld", i, (long long)q);
  }
  /* One more insert evicts exactly the oldest (12). */
  fx_fill(&xs[0], 1, 20, STORE_PROPOSER_RL);
  store_insert_result res;
  TH_CHECK_EQ_INT(store_insert(s, "online", &xs[0].it, 1, &res), IB_OK);
  TH_CHECK_EQ_INT(res.evicted, 1);
  online_contents(s, &r, 8, slot_seq);
  int has12 = 0, has20 = 0;
  for (int i = 0; i < 8; i++) {
    has12 += slot_seq[i] == 12;
    has20 += slot_seq[i] == 20;
  }
  TH_CHECK_EQ_INT(has12, 0);
  TH_CHECK_EQ_INT(has20, 1);
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, "online"), &ti);
  TH_CHECK_EQ_INT(ti.total_evicted, 13);
  TH_CHECK_EQ_INT(ti.total_inserts, 21);
  store_destroy(s);
}

static int insert_seqs(store *s, uint32_t actor, const uint64_t *seqs, int n,
                       store_insert_result *res) {
  fx_item xs[MAXB];
  store_item v[MAXB];
  for (int i = 0; i < n; i++) fx_fill(&xs[i], actor, seqs[i], STORE_PROPOSER_RL);
  fx_views(v, xs, n);
  return store_insert(s, "online", v, (size_t)n, res);
}

static void test_dedup(void) {
  store *s = mk(4, 100000, NULL);
  store_insert_result r;
  uint64_t a[10];
  for (int i = 0; i < 10; i++) a[i] = (uint64_t)i;
  TH_CHECK_EQ_INT(insert_seqs(s, 1, a, 10, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 10);
  /* The retried batch is not stored twice. */
  TH_CHECK_EQ_INT(insert_seqs(s, 1, a, 10, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 0);
  TH_CHECK_EQ_INT(r.duplicates, 10);
  /* Overlap: 5..14 stores only 10..14. */
  uint64_t b[10];
  for (int i = 0; i < 10; i++) b[i] = (uint64_t)(5 + i);
  TH_CHECK_EQ_INT(insert_seqs(s, 1, b, 10, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 5);
  TH_CHECK_EQ_INT(r.duplicates, 5);
  /* Duplicates inside one batch. */
  uint64_t c[3] = {20, 20, 21};
  TH_CHECK_EQ_INT(insert_seqs(s, 1, c, 3, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 2);
  TH_CHECK_EQ_INT(r.duplicates, 1);
  /* Out of order inside the window: 30, then 25 (new) and 21 (old). */
  uint64_t d1[1] = {30}, d2[2] = {25, 21};
  TH_CHECK_EQ_INT(insert_seqs(s, 1, d1, 1, &r), IB_OK);
  TH_CHECK_EQ_INT(insert_seqs(s, 1, d2, 2, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 1);
  TH_CHECK_EQ_INT(r.duplicates, 1);
  /* A jump far ahead; 25 (now older than the window) counts as seen, 30 + window + 1 is new and
   * an unseen seq just inside the window is new. */
  uint64_t far = 30 + STORE_DEDUP_WINDOW + 100;
  uint64_t e1[1] = {far};
  TH_CHECK_EQ_INT(insert_seqs(s, 1, e1, 1, &r), IB_OK);
  uint64_t e2[3] = {25, far - (STORE_DEDUP_WINDOW - 1), far - 1};
  TH_CHECK_EQ_INT(insert_seqs(s, 1, e2, 3, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 2);
  TH_CHECK_EQ_INT(r.duplicates, 1);
  TH_CHECK_EQ_INT(insert_seqs(s, 1, e2, 3, &r), IB_OK);
  TH_CHECK_EQ_INT(r.duplicates, 3);
  /* Window shift by a non-multiple of 64 keeps older marks: 64 + 7 ahead. */
  uint64_t g1[1] = {far + 71}, g2[2] = {far, far + 70};
  TH_CHECK_EQ_INT(insert_seqs(s, 1, g1, 1, &r), IB_OK);
  TH_CHECK_EQ_INT(insert_seqs(s, 1, g2, 2, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 1);     /* far + 70 is new */
  TH_CHECK_EQ_INT(r.duplicates, 1); /* far was stored before the shift */
  /* A mark near the top of a 64-bit word must carry into the next word on a small shift:
   * mark high - 60, shift by 7 (bit 60 -> bit 67), then the retry must still be a duplicate. */
  uint64_t h = far + 71;
  uint64_t m1[1] = {h - 60}, m2[1] = {h + 7};
  TH_CHECK_EQ_INT(insert_seqs(s, 1, m1, 1, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 1);
  TH_CHECK_EQ_INT(insert_seqs(s, 1, m2, 1, &r), IB_OK);
  TH_CHECK_EQ_INT(insert_seqs(s, 1, m1, 1, &r), IB_OK);
  TH_CHECK_EQ_INT(r.duplicates, 1);
  /* Another actor has its own sequence space. */
  TH_CHECK_EQ_INT(insert_seqs(s, 2, a, 10, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 10);
  /* STORE_SEQ_NONE is never deduplicated. */
  uint64_t none[2] = {STORE_SEQ_NONE, STORE_SEQ_NONE};
  TH_CHECK_EQ_INT(insert_seqs(s, 3, none, 2, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 2);
  store_actor_info ai;
  int t = store_table_find(s, "online");
  TH_CHECK_EQ_INT(store_actor_get(s, t, 1, &ai), IB_OK);
  TH_CHECK_EQ_INT(ai.highest_seq, far + 78);
  TH_CHECK_EQ_INT(ai.duplicates, 10 + 5 + 1 + 1 + 1 + 3 + 1 + 1);
  TH_CHECK_EQ_INT(store_actor_get(s, t, 99, &ai), IB_ENOTFOUND);
  store_table_info ti;
  store_table_info_get(s, t, &ti);
  TH_CHECK_EQ_INT(ti.duplicates, 23);
  TH_CHECK_EQ_INT(ti.actors, 3);
  store_destroy(s);
}

/* A plain model of the dedup rule (every seq ever stored, per actor; anything older than the
 * window below the highest counts as seen), to check the store's window, whose common case marks
 * a whole run of consecutive seqs with one shift, against it over random batches. */
#define DM_ACTORS 3
#define DM_SEQS 40000
typedef struct dedup_model {
  bool has[DM_ACTORS];
  uint64_t high[DM_ACTORS];
  uint8_t stored[DM_ACTORS][DM_SEQS];
} dedup_model;

static bool dm_seen(const dedup_model *m, int a, uint64_t q) {
  if (!m->has[a] || q > m->high[a]) return false;
  return m->high[a] - q >= STORE_DEDUP_WINDOW || m->stored[a][q];
}

static void test_dedup_runs_match_model(void) {
  store *s = mk(4, 4096, NULL);
  dedup_model *m = calloc(1, sizeof *m);
  rng r;
  rng_seed(&r, 5, "test", 0, "dedup-runs");
  fx_item xs[MAXB];
  store_item v[MAXB];
  uint64_t exp_dups = 0;
  int mismatches = 0;
  for (int call = 0; call < 3000 && mismatches == 0; call++) {
    int n = 1 + (int)rng_below(&r, MAXB);
    int a = (int)rng_below(&r, DM_ACTORS);
    uint64_t next = m->has[a] ? m->high[a] + 1 : rng_below(&r, 100);
    int mode = (int)rng_below(&r, 6);
    if (mode == 1 && m->has[a]) next = m->high[a] + 1 + rng_below(&r, 1500); /* a jump ahead */
    if (mode == 2 && m->has[a]) next = m->high[a] > 1200 ? m->high[a] - rng_below(&r, 1200) : 0; /* a retry */
    bool none_ok = mode == 3;
    uint64_t q = next;
    for (int i = 0; i < n; i++) {
      uint32_t actor = (uint32_t)a + 1;
      uint64_t seq = q++;
      uint32_t u = rng_below(&r, 100);
      if (mode == 4 && u < 10) actor = (uint32_t)((a + 1) % DM_ACTORS) + 1; /* another actor cuts the run */
      if (mode == 4 && u >= 10 && u < 20) seq = q - 2;                       /* a repeat inside the run */
      if (none_ok && u < 15) seq = STORE_SEQ_NONE;
      if (seq != STORE_SEQ_NONE && seq >= DM_SEQS) seq = DM_SEQS - 1;
      fx_fill(&xs[i], actor, seq == STORE_SEQ_NONE ? 0 : seq, STORE_PROPOSER_RL);
      xs[i].it.seq = seq;
    }
    fx_views(v, xs, n);
    /* The model, item by item in order (duplicates inside the batch count too). */
    uint32_t want_stored = 0, want_dups = 0;
    for (int i = 0; i < n; i++) {
      int ai = (int)v[i].actor_id - 1;
      uint64_t seq = v[i].seq;
      if (seq == STORE_SEQ_NONE) {
        want_stored++;
      } else if (dm_seen(m, ai, seq)) {
        want_dups++;
      } else {
        want_stored++;
        m->stored[ai][seq] = 1;
        if (!m->has[ai] || seq > m->high[ai]) m->high[ai] = seq;
        m->has[ai] = true;
      }
    }
    store_insert_result res;
    TH_CHECK_EQ_INT(store_insert(s, "online", v, (size_t)n, &res), IB_OK);
    if (res.stored != want_stored || res.duplicates != want_dups) {
      mismatches++;
      TH_CHECK_MSG(0, "call %d (mode %d, %d items from seq %llu): stored %u dups %u, the model says %u / %u", call,
                   mode, n, (unsigned long long)next, res.stored, res.duplicates, want_stored, want_dups);
    }
    exp_dups += want_dups;
  }
  int t = store_table_find(s, "online");
  for (int a = 0; a < DM_ACTORS; a++) {
    store_actor_info ai;
    TH_CHECK_EQ_INT(store_actor_get(s, t, (uint32_t)a + 1, &ai), IB_OK);
    TH_CHECK_EQ_INT(ai.highest_seq, m->high[a]);
  }
  store_table_info ti;
  store_table_info_get(s, t, &ti);
  TH_CHECK_EQ_INT(ti.duplicates, exp_dups);
  free(m);
  store_destroy(s);
}

/* A table big enough for the huge-page arena (>= 8 MiB of records), wrapped: every sampled row is
 * exactly an item that was inserted and not yet evicted (the records are written with streaming
 * stores on x86; this reads them back through the normal gather). */
/* Samples 40 online batches of 256 (seed `seed`) and returns how many rows do not match their
 * (actor, seq) (fx_row_ok, and seq = weight_version % 10000 for seqs below 10000); *old counts the
 * rows of actors 1..old_max. */
static int sample_bad_rows(store *s, uint64_t seed, uint32_t old_max, int *old) {
  store_batch b;
  store_batch_init(&b, 256, FX_O, FX_A);
  rng r;
  rng_seed(&r, seed, "test", 0, "rows");
  int bad = 0;
  *old = 0;
  for (int k = 0; k < 40; k++) {
    TH_CHECK_EQ_INT(store_sample(s, &r, 256, 0.0, &b), IB_OK);
    for (uint32_t i = 0; i < b.n; i++) {
      bad += !fx_row_ok(&b, i);
      bad += b.seq[i] != b.weight_version[i] % 10000u;
      *old += b.actor_id[i] <= old_max;
    }
  }
  store_batch_free(&b);
  return bad;
}

static void test_large_arena_round_trip(void) {
  enum { CAP = 140000, ACTORS = 15, PER = 10000 }; /* 64-byte records: 8.96 MB */
  store *s = mk(4, CAP, NULL);
  for (uint32_t a = 1; a <= ACTORS; a++) put_range(s, "online", a, 0, PER, MAXB, STORE_PROPOSER_RL);
  TH_CHECK_EQ_INT(table_size(s, "online"), CAP);
  int evicted = 0; /* actor 1 was inserted first: all of it was evicted */
  TH_CHECK_EQ_INT(sample_bad_rows(s, 6, 1, &evicted), 0);
  TH_CHECK_EQ_INT(evicted, 0);
  store_destroy(s);
}

/* Asserts that the failed call changed nothing: size, inserts, and the dedup state (the same
 * good items insert afterwards as new, not as duplicates). */
static void check_nothing_stored(store *s, uint64_t size0, uint64_t ins0) {
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, "online"), &ti);
  TH_CHECK_EQ_INT(ti.size, size0);
  TH_CHECK_EQ_INT(ti.total_inserts, ins0);
}

static void test_validation_rejects_whole_batch(void) {
  store *s = mk(4, 100, NULL);
  fx_item xs[4];
  store_item v[4];
  for (int i = 0; i < 4; i++) fx_fill(&xs[i], 5, (uint64_t)i, STORE_PROPOSER_RL);
  struct {
    const char *name;
    int code;
    const char *needle; /* the message must name the field and index */
  } cases[] = {
      {"obs size", IB_EINVAL, "item 2: obs has 4 values"},
      {"next_obs size", IB_EINVAL, "item 2: next_obs has 6 values"},
      {"action size", IB_EINVAL, "item 2: action has 2 values"},
      {"obs NaN", IB_ENONFINITE, "item 2: obs[3] = nan"},
      {"action Inf", IB_ENONFINITE, "item 2: action[1] = inf"},
      {"next_obs -Inf", IB_ENONFINITE, "item 2: next_obs[0] = -inf"},
      {"reward NaN", IB_ENONFINITE, "item 2: reward[0] = nan"},
      {"discount range", IB_EINVAL, "item 2: discount 1.5"},
      {"proposer", IB_EINVAL, "item 2: proposer 7"},
  };
  for (size_t c = 0; c < IB_ARRAY_LEN(cases); c++) {
    fx_views(v, xs, 4);
    float bad[8];
    memcpy(bad, xs[2].obs, sizeof xs[2].obs);
    switch (c) {
    case 0:
      v[2].obs_n = FX_O - 1;
      break;
    case 1:
      v[2].next_obs_n = FX_O + 1;
      break;
    case 2:
      v[2].act_n = FX_A - 1;
      break;
    case 3:
      bad[3] = NAN;
      v[2].obs = bad;
      break;
    case 4:
      memcpy(bad, xs[2].action, sizeof xs[2].action);
      bad[1] = INFINITY;
      v[2].action = bad;
      break;
    case 5:
      memcpy(bad, xs[2].next_obs, sizeof xs[2].next_obs);
      bad[0] = -INFINITY;
      v[2].next_obs = bad;
      break;
    case 6:
      v[2].reward = NAN;
      break;
    case 7:
      v[2].discount = 1.5f;
      break;
    case 8:
      v[2].proposer = 7;
      break;
    }
    store_insert_result r = {9, 9, 9};
    int rc = store_insert(s, "online", v, 4, &r);
    TH_CHECK_MSG(rc == cases[c].code, "%s: rc %d", cases[c].name, rc);
    TH_CHECK_MSG(strstr(ib_errmsg(), cases[c].needle) != NULL && strstr(ib_errmsg(), "'online'") &&
                     strstr(ib_errmsg(), "HINT"),
                 "%s: message '%s' lacks '%s'", cases[c].name, ib_errmsg(), cases[c].needle);
    TH_CHECK_EQ_INT(r.stored, 0);
    check_nothing_stored(s, 0, 0);
  }
  /* Unknown table. */
  fx_views(v, xs, 4);
  TH_CHECK_EQ_INT(store_insert(s, "onlien", v, 4, NULL), IB_ENOTFOUND);
  TH_CHECK(strstr(ib_errmsg(), "onlien") != NULL && strstr(ib_errmsg(), "online") != NULL);
  check_nothing_stored(s, 0, 0);
  /* After all that, the good items are new (no dedup state leaked from the failures). */
  store_insert_result r;
  TH_CHECK_EQ_INT(store_insert(s, "online", v, 4, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 4);
  TH_CHECK_EQ_INT(r.duplicates, 0);
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, "online"), &ti);
  TH_CHECK_EQ_INT(ti.rejected_batches, IB_ARRAY_LEN(cases));
  store_destroy(s);
}

static void test_demo_full_and_registry_full(void) {
  store_config cfg = {.max_actors = 2};
  store *s = mk(10, 100, &cfg);
  TH_CHECK_EQ_INT(put_range(s, "demo", 1, 0, 8, 8, STORE_PROPOSER_DEMO), 8);
  fx_item xs[5];
  store_item v[5];
  for (int i = 0; i < 5; i++) fx_fill(&xs[i], 1, (uint64_t)(8 + i), STORE_PROPOSER_DEMO);
  fx_views(v, xs, 5);
  TH_CHECK_EQ_INT(store_insert(s, "demo", v, 5, NULL), IB_EFULL);
  TH_CHECK(strstr(ib_errmsg(), "'demo'") != NULL && strstr(ib_errmsg(), "never evict") != NULL);
  TH_CHECK_EQ_INT(table_size(s, "demo"), 8);
  /* The rejected seqs were rolled back: two of them still fit and are new. */
  store_insert_result r;
  TH_CHECK_EQ_INT(store_insert(s, "demo", v, 2, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 2);
  TH_CHECK_EQ_INT(table_size(s, "demo"), 10);

  /* Registry: actors 1 and 2 fit, a batch that adds actor 3 fails whole. */
  put_range(s, "online", 1, 0, 3, 3, STORE_PROPOSER_RL);
  put_range(s, "online", 2, 0, 3, 3, STORE_PROPOSER_RL);
  fx_fill(&xs[0], 1, 3, STORE_PROPOSER_RL);
  fx_fill(&xs[1], 3, 0, STORE_PROPOSER_RL);
  fx_views(v, xs, 2);
  TH_CHECK_EQ_INT(store_insert(s, "online", v, 2, NULL), IB_EFULL);
  TH_CHECK(strstr(ib_errmsg(), "max_actors 2") != NULL);
  check_nothing_stored(s, 6, 6);
  TH_CHECK_EQ_INT(store_insert(s, "online", v, 1, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 1); /* actor 1 seq 3 was not marked by the failed call */
  store_destroy(s);
}

static int failing_append(void *ctx, int table, const store_item *items, size_t n,
                          uint64_t *ticket) {
  (void)table, (void)items, (void)n, (void)ticket;
  int *calls = ctx;
  (*calls)++;
  return ib_fail(IB_EIO, "test log: disk on fire");
}

static void test_log_failure_stores_nothing(void) {
  store *s = mk(4, 100, NULL);
  int calls = 0;
  store_log_hook_set(s, failing_append, NULL, &calls);
  uint64_t a[3] = {0, 1, 2};
  store_insert_result r;
  TH_CHECK_EQ_INT(insert_seqs(s, 1, a, 3, &r), IB_EIO);
  TH_CHECK_EQ_INT(calls, 1);
  check_nothing_stored(s, 0, 0);
  store_log_hook_set(s, NULL, NULL, NULL);
  TH_CHECK_EQ_INT(insert_seqs(s, 1, a, 3, &r), IB_OK);
  TH_CHECK_EQ_INT(r.stored, 3);
  store_destroy(s);
}

static void test_create_errors(void) {
  store_spec sp[2];
  store *s = NULL;
  store_specs_default(sp, FX_O, FX_A, 10, 10);
  sp[1].obs_dim = 0;
  TH_CHECK_EQ_INT(store_create(&s, sp, 2, NULL), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "'online'") && strstr(ib_errmsg(), "obs_dim 0"));
  store_specs_default(sp, FX_O, FX_A, 10, 10);
  sp[1].act_dim = FX_A + 1;
  TH_CHECK_EQ_INT(store_create(&s, sp, 2, NULL), IB_EMISMATCH);
  store_specs_default(sp, FX_O, FX_A, 10, 10);
  sp[1].kind = STORE_DEMO;
  TH_CHECK_EQ_INT(store_create(&s, sp, 2, NULL), IB_EMISMATCH);
  store_specs_default(sp, FX_O, FX_A, 10, 0);
  TH_CHECK_EQ_INT(store_create(&s, sp, 2, NULL), IB_EINVAL);
  TH_CHECK_EQ_INT(store_create(&s, sp, 3, NULL), IB_EINVAL);
  TH_CHECK(s == NULL);
  /* One online table alone is a valid store. */
  store_specs_default(sp, FX_O, FX_A, 10, 10);
  TH_CHECK_EQ_INT(store_create(&s, &sp[1], 1, NULL), IB_OK);
  TH_CHECK_EQ_INT(store_table_of_kind(s, STORE_DEMO), IB_ENOTFOUND);
  TH_CHECK_EQ_INT(store_table_find(s, "online"), 0);
  store_destroy(s);
}

static void test_stats(void) {
  store *s = mk(10, 1000, NULL);
  /* Actor 4: 45 episodes of one transition; the last 32 alternate success / failure. */
  fx_item x;
  for (uint64_t q = 0; q < 45; q++) {
    fx_fill(&x, 4, q, STORE_PROPOSER_RL);
    x.it.weight_version = 100 + q;
    x.it.episode_end = true;
    x.it.episode_success = (q % 2) == 0;
    TH_CHECK_EQ_INT(store_insert(s, "online", &x.it, 1, NULL), IB_OK);
  }
  int t = store_table_find(s, "online");
  store_actor_info ai;
  TH_CHECK_EQ_INT(store_actor_get(s, t, 4, &ai), IB_OK);
  TH_CHECK_EQ_INT(ai.episodes, 45);
  TH_CHECK_EQ_INT(ai.recent_episodes, STORE_SUCCESS_WINDOW);
  TH_CHECK_EQ_INT(ai.recent_successes, 16);
  TH_CHECK_EQ_INT(ai.last_weight_version, 144);
  TH_CHECK_EQ_INT(ai.inserts, 45);
  /* Actor 5: 3 episodes, 1 success. */
  for (uint64_t q = 0; q < 3; q++) {
    fx_fill(&x, 5, q, STORE_PROPOSER_IL);
    x.it.weight_version = 7;
    x.it.episode_end = true;
    x.it.episode_success = q == 1;
    TH_CHECK_EQ_INT(store_insert(s, "online", &x.it, 1, NULL), IB_OK);
  }
  TH_CHECK_EQ_INT(store_actor_get(s, t, 5, &ai), IB_OK);
  TH_CHECK_EQ_INT(ai.recent_episodes, 3);
  TH_CHECK_EQ_INT(ai.recent_successes, 1);
  store_actor_info all[4];
  TH_CHECK_EQ_INT(store_actors_get(s, t, all, 4), 2);
  TH_CHECK_EQ_INT(store_actors_get(s, t, all, 1), 2);
  store_batch b;
  store_batch_init(&b, 64, FX_O, FX_A);
  rng r;
  rng_seed(&r, 8, "test", 0, "sample");
  for (int k = 0; k < 5; k++) TH_CHECK_EQ_INT(store_sample(s, &r, 64, 0.0, &b), IB_OK);
  store_table_info ti;
  store_table_info_get(s, t, &ti);
  TH_CHECK_EQ_INT(ti.size, 48);
  TH_CHECK_EQ_INT(ti.total_inserts, 48);
  TH_CHECK_EQ_INT(ti.total_samples, 320);
  TH_CHECK_EQ_INT(ti.wv_min, 7);
  TH_CHECK_EQ_INT(ti.wv_max, 144);
  TH_CHECK_EQ_INT(ti.wv_last, 7);
  TH_CHECK_EQ_INT(ti.episodes, 48);
  TH_CHECK_EQ_INT(ti.successes, 23 + 1);
  TH_CHECK(ti.bytes >= 1000ull * (2 * FX_O + FX_A + 2) * sizeof(float));
  /* Everything happened within the first second or so, so the rate is at least the count over
   * the elapsed time bound: positive and not absurd. */
  TH_CHECK(ti.inserts_per_s > 0 && ti.samples_per_s > ti.inserts_per_s);
  store_table_info dinfo;
  store_table_info_get(s, store_table_find(s, "demo"), &dinfo);
  TH_CHECK_EQ_INT(dinfo.total_samples, 0);
  store_batch_free(&b);
  store_destroy(s);
}

/* Resident set size in bytes, from /proc/self/statm (0 if unavailable). */
static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return res * sysconf(_SC_PAGESIZE);
}

static void test_memory_flat_over_a_long_run(void) {
  store *s = mk(1024, 4096, NULL);
  store_batch b;
  store_batch_init(&b, 256, FX_O, FX_A);
  rng r;
  rng_seed(&r, 10, "test", 0, "sample");
  /* Warm up: fill both tables and touch every path once. */
  put_range(s, "demo", 9, 0, 1024, 64, STORE_PROPOSER_DEMO);
  put_range(s, "online", 1, 0, 4096, 64, STORE_PROPOSER_RL);
  for (int k = 0; k < 10; k++) TH_CHECK_EQ_INT(store_sample(s, &r, 256, 0.5, &b), IB_OK);
  long before = rss_bytes();
  if (before == 0) {
    th_skip("no /proc/self/statm");
    store_batch_free(&b);
    store_destroy(s);
    return;
  }
  /* 25 x capacity more inserts (the ring wraps 25 times) from 8 actors, and 2000 samples. */
  for (uint32_t a = 1; a <= 8; a++)
    put_range(s, "online", a, 4096, 4096 + 12800, 64, STORE_PROPOSER_RL);
  for (int k = 0; k < 2000; k++) TH_CHECK_EQ_INT(store_sample(s, &r, 256, 0.5, &b), IB_OK);
  long after = rss_bytes();
  TH_CHECK_MSG(after - before < 512 * 1024, "RSS grew by %ld KB over 102400 inserts",
               (after - before) / 1024);
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, "online"), &ti);
  TH_CHECK_EQ_INT(ti.size, 4096);
  TH_CHECK_EQ_INT(ti.total_inserts, 4096 + 8 * 12800);
  store_batch_free(&b);
  store_destroy(s);
}

/* Memory is resident from store_create (store.h): filling the ring for the first time must not
 * grow the RSS. The per-slot metadata arrays (22 B a row) used to be faulted in by the first fill. */
static void test_memory_resident_from_creation(void) {
  enum { CAP = 200000 };
  store *s = mk(1024, CAP, NULL);
  long before = rss_bytes();
  if (before == 0) {
    th_skip("no /proc/self/statm");
    store_destroy(s);
    return;
  }
  put_range(s, "online", 1, 0, CAP, MAXB, STORE_PROPOSER_RL);
  put_range(s, "demo", 2, 0, 1024, MAXB, STORE_PROPOSER_DEMO);
  long after = rss_bytes();
  TH_CHECK_MSG(after - before < 1024 * 1024, "RSS grew by %ld KB while the first %d rows filled the ring (the "
               "metadata arrays alone are %d KB)", (after - before) / 1024, CAP, CAP * 22 / 1024);
  store_destroy(s);
}

/* AnonHugePages of this process in kB, or -1 if /proc/self/smaps_rollup cannot be read. */
static long anon_huge_kb(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  if (f == NULL) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

/* A checkpoint's fork shares the arena; rows written while the child lives split its huge pages
 * (Linux 5.8+ copies the 4 kB page written), and store_huge_collapse must bring them back with
 * every row intact. */
static void test_huge_collapse_after_fork(void) {
  enum { CAP = 140000, PER = 10000, OLD = 14 }; /* 64-byte records: 8.96 MB, 5 huge pages */
  store *s = mk(4, CAP, NULL);
  for (uint32_t a = 1; a <= OLD; a++) put_range(s, "online", a, 0, PER, MAXB, STORE_PROPOSER_RL);
  long fresh = anon_huge_kb();
  int pfd[2];
  TH_CHECK(pipe(pfd) == 0);
  pid_t pid = fork();
  TH_CHECK(pid >= 0);
  if (pid == 0) { /* holds the image until the parent closes the pipe */
    char c;
    close(pfd[1]);
    while (read(pfd[0], &c, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  close(pfd[0]);
  /* A second set of actors rewrites every row while the child holds the old ones. */
  for (uint32_t a = OLD + 1; a <= 2 * OLD; a++) put_range(s, "online", a, 0, PER, MAXB, STORE_PROPOSER_RL);
  close(pfd[1]);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  long split = anon_huge_kb();
  size_t n = store_huge_collapse(s);
  long after = anon_huge_kb();
  char why[160];
  if (fresh < 8192) {
    snprintf(why, sizeof why, "the arena got no huge pages here (THP off or none free: %ld kB)", fresh);
    th_skip(why);
  } else if (split > fresh - 4096) {
    snprintf(why, sizeof why, "this kernel kept the huge pages through the fork (%ld kB before, %ld after)", fresh,
             split);
    th_skip(why);
  } else if (n == 0)
    th_skip("MADV_COLLAPSE is unavailable (Linux before 6.1) or found no free huge page");
  else
    TH_CHECK_MSG(after - split >= (long)(n / 1024) / 2, "store_huge_collapse reported %zu bytes, but huge pages "
                 "went only from %ld to %ld kB", n, split, after);
  /* Every row survives the collapse: each sampled row matches its (actor, seq), and none is old. */
  int old = 0;
  TH_CHECK_EQ_INT(sample_bad_rows(s, 7, OLD, &old), 0);
  TH_CHECK_EQ_INT(old, 0);
  store_destroy(s);
}

/* ---- concurrency: two inserters and two samplers on one store ---- */

typedef struct conc {
  store *s;
  int id;
  atomic_int stop;
  uint64_t done, bad;
  int err;
} conc;

static void *inserter(void *arg) {
  conc *c = arg;
  fx_item xs[16];
  store_item v[16];
  for (uint64_t q = 0; q < 3000; q += 16) {
    for (int i = 0; i < 16; i++)
      fx_fill(&xs[i], (uint32_t)c->id, q + (uint64_t)i, STORE_PROPOSER_RL);
    fx_views(v, xs, 16);
    if (store_insert(c->s, "online", v, 16, NULL) != IB_OK) c->err++;
    c->done += 16;
  }
  return NULL;
}

static void *sampler(void *arg) {
  conc *c = arg;
  store_batch b;
  store_batch_init(&b, 128, FX_O, FX_A);
  rng r;
  rng_seed(&r, 9, "test", c->id, "sample");
  /* Keep sampling until the inserters are done, and at least 50 batches either way. */
  while (!c->stop || c->done < 50) {
    int rc = store_sample(c->s, &r, 128, 0.5, &b);
    if (rc != IB_OK) {
      c->err++;
      continue;
    }
    for (uint32_t i = 0; i < b.n; i++) c->bad += !fx_row_ok(&b, i);
    c->done++;
  }
  store_batch_free(&b);
  return NULL;
}

static void test_concurrent_insert_sample(void) {
  store *s = mk(100, 500, NULL);
  put_range(s, "demo", 9, 0, 100, 50, STORE_PROPOSER_DEMO);
  put_range(s, "online", 8, 0, 10, 10, STORE_PROPOSER_RL);
  conc c[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    memset(&c[i], 0, sizeof c[i]);
    c[i].s = s;
    c[i].id = i + 1;
  }
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, inserter, &c[i]);
  for (int i = 2; i < 4; i++) pthread_create(&th[i], NULL, sampler, &c[i]);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  c[2].stop = c[3].stop = 1;
  for (int i = 2; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) TH_CHECK_EQ_INT(c[i].err, 0);
  TH_CHECK_EQ_INT(c[2].bad + c[3].bad, 0);
  TH_CHECK(c[2].done + c[3].done > 0);
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, "online"), &ti);
  TH_CHECK_EQ_INT(ti.total_inserts, 10 + 2 * 3008);
  TH_CHECK_EQ_INT(ti.size, 500);
  store_destroy(s);
}

/* store_stored_count says what a store_insert would skip as duplicates, without storing. */
static void test_stored_count(void) {
  store *s = fx_store(20000);
  int t = store_table_find(s, "online");
  TH_CHECK_EQ_INT(put_range(s, "online", 1, 0, 10, 8, STORE_PROPOSER_RL), 10);
  fx_item xs[16];
  store_item v[16];
  for (int i = 0; i < 16; i++) fx_fill(&xs[i], 1, (uint64_t)(2 + i), STORE_PROPOSER_RL); /* seqs 2..17 */
  fx_views(v, xs, 16);
  TH_CHECK_EQ_INT(store_stored_count(s, t, v, 16), 8); /* 2..9 stored, 10..17 new */
  TH_CHECK_EQ_INT(store_stored_count(s, t, v, 0), 0);
  v[0].seq = STORE_SEQ_NONE; /* never a duplicate */
  v[1].actor_id = 2;         /* an actor the table does not know */
  TH_CHECK_EQ_INT(store_stored_count(s, t, v, 16), 6);
  TH_CHECK_EQ_INT(store_stored_count(s, store_table_find(s, "demo"), v, 16), 0);
  /* It agrees with the insert, and changes nothing. */
  fx_views(v, xs, 16);
  store_table_info ti;
  store_table_info_get(s, t, &ti);
  TH_CHECK_EQ_INT(ti.size, 10);
  store_insert_result r;
  TH_CHECK_EQ_INT(store_insert(s, "online", v, 16, &r), IB_OK);
  TH_CHECK_EQ_INT(r.duplicates, 8);
  TH_CHECK_EQ_INT(store_stored_count(s, t, v, 16), 16);
  /* Older than the dedup window: too old to tell, counted as stored (as the insert skips it). */
  TH_CHECK_EQ_INT(put_range(s, "online", 1, 18, 18 + STORE_DEDUP_WINDOW, 32, STORE_PROPOSER_RL),
                  STORE_DEDUP_WINDOW);
  fx_item old;
  fx_fill(&old, 1, 3, STORE_PROPOSER_RL);
  TH_CHECK_EQ_INT(store_stored_count(s, t, &old.it, 1), 1);
  store_destroy(s);
}

static const th_case cases[] = {
    /* First, while the heap is fresh: arrays from memory an earlier case freed come back touched. */
    {"memory resident from creation", test_memory_resident_from_creation},
    {"round trip: values arrive intact", test_round_trip},
    {"stored count: what an insert would skip as duplicates", test_stored_count},
    {"record layout from unaligned rows, obs_dim 1..9 x act_dim 1..6", test_record_layout_sweep},
    {"mix: exact demo count round(n*f)", test_mix_exact_count},
    {"mix: proportional and uniform within a table", test_mix_proportional_and_uniform},
    {"mix: empty-table fallback", test_fallback_and_empty},
    {"sample: bad arguments", test_sample_bad_args},
    {"fifo eviction order", test_fifo_eviction_order},
    {"dedup: retries, overlap, window", test_dedup},
    {"dedup: runs of seqs match a plain model", test_dedup_runs_match_model},
    {"large (huge-page) arena: wrapped round trip", test_large_arena_round_trip},
    {"huge pages split by a fork come back with store_huge_collapse", test_huge_collapse_after_fork},
    {"validation rejects the whole batch", test_validation_rejects_whole_batch},
    {"demo full and actor registry full", test_demo_full_and_registry_full},
    {"log hook failure stores nothing", test_log_failure_stores_nothing},
    {"create errors", test_create_errors},
    {"stats", test_stats},
    {"memory flat over a long run", test_memory_flat_over_a_long_run},
    {"concurrent inserts and samples", test_concurrent_insert_sample},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
