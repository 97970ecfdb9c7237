/* test_store_read.c: store_read, the paged scan in age order: every row once, oldest first, each
 * field equal to what was inserted (values are a function of the row's seq), across a wrapped
 * FIFO ring and a demo table, with the record's metadata copy (dims with room in the pad) and
 * without it; the column path equal to the batch path byte for byte; the size and insert counter
 * it reports; reads not counted as samples; bad arguments refused with nothing written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "store.h"
#include "th.h"

/* Row values of seq q: obs[j] = q + j/8, next_obs[j] = -(q + j/8), action[j] = q/2 + j,
 * reward = q/4, discount 0 or 0.99 by parity, proposer q % 3, weight version 1000 + q,
 * episode_end every 7th, success every 14th. Exact in float for q < 2^20. */
static void row_fill(float *obs, float *next, float *act, int od, int ad, uint64_t q, store_item *it) {
  for (int j = 0; j < od; j++) {
    obs[j] = (float)q + 0.125f * (float)j;
    next[j] = -obs[j];
  }
  for (int j = 0; j < ad; j++) act[j] = 0.5f * (float)q + (float)j;
  memset(it, 0, sizeof *it);
  it->obs = obs;
  it->next_obs = next;
  it->action = act;
  it->obs_n = it->next_obs_n = (uint32_t)od;
  it->act_n = (uint32_t)ad;
  it->reward = 0.25f * (float)q;
  it->discount = q % 2 ? 0.99f : 0.0f;
  it->proposer = (uint32_t)(q % 3);
  it->actor_id = 5;
  it->seq = q;
  it->weight_version = 1000 + q;
  it->episode_end = q % 7 == 6;
  it->episode_success = q % 14 == 13;
}

/* Inserts seqs [from, to) into `table` in batches of bs (<= 16). */
static void put(store *s, const char *table, int od, int ad, uint64_t from, uint64_t to, int bs) {
  float *buf = ib_xmalloc((size_t)16 * (2 * (size_t)od + (size_t)ad) * sizeof(float));
  store_item it[16];
  for (uint64_t q = from; q < to;) {
    int n = 0;
    while (n < bs && q < to) {
      float *o = buf + (size_t)n * (2 * (size_t)od + (size_t)ad);
      row_fill(o, o + od, o + 2 * od, od, ad, q++, &it[n]);
      n++;
    }
    int rc = store_insert(s, table, it, (size_t)n, NULL);
    TH_CHECK_MSG(rc == IB_OK, "insert: %s", ib_errmsg());
  }
  free(buf);
}

/* Number of rows of b[0, b->n) that differ from the row of seq want0 + i in any field. */
static int rows_bad(const store_batch *b, uint64_t want0, int demo) {
  int od = b->obs_dim, ad = b->act_dim, bad = 0;
  float obs[64], next[64], act[64];
  for (uint32_t i = 0; i < b->n; i++) {
    uint64_t q = want0 + i;
    store_item w;
    row_fill(obs, next, act, od, ad, q, &w);
    int ok = b->seq[i] == q && b->weight_version[i] == w.weight_version && b->actor_id[i] == 5 &&
             b->proposer[i] == w.proposer && b->reward[i] == w.reward && b->discount[i] == w.discount &&
             b->episode_end[i] == w.episode_end && b->episode_success[i] == w.episode_success &&
             b->from_demo[i] == demo && !memcmp(b->obs + (size_t)i * od, obs, (size_t)od * 4) &&
             !memcmp(b->next_obs + (size_t)i * od, next, (size_t)od * 4) &&
             !memcmp(b->action + (size_t)i * ad, act, (size_t)ad * 4);
    if (!ok && bad < 3)
      fprintf(stderr, "  row %u: seq %llu, wanted %llu (or another field differs)\n", i,
              (unsigned long long)b->seq[i], (unsigned long long)q);
    bad += !ok;
  }
  return bad;
}

static store *mk(int od, int ad, uint64_t demo_cap, uint64_t online_cap) {
  store_spec sp[2];
  store_specs_default(sp, od, ad, demo_cap, online_cap);
  store *s = NULL;
  TH_CHECK_MSG(store_create(&s, sp, 2, NULL) == IB_OK, "store_create: %s", ib_errmsg());
  return s;
}

/* Pages of `page` rows over table `name` must give seqs first, first + 1, ... in order, `size`
 * rows in all, then an empty page at the end. */
static void scan_check(store *s, const char *name, int od, int ad, uint32_t page, uint64_t first, uint64_t size,
                       uint64_t inserted) {
  int t = store_table_find(s, name);
  store_batch b;
  store_batch_init(&b, 64, od, ad);
  int demo = store_table_spec(s, t)->kind == STORE_DEMO;
  uint64_t pos = 0, sz = 0, ins = 0;
  int bad = 0, pages = 0;
  while (pos < size && pages < 1000) {
    int rc = store_read(s, t, pos, page, &b, NULL, &sz, &ins);
    TH_CHECK_MSG(rc == IB_OK, "read %s at %llu: %s", name, (unsigned long long)pos, ib_errmsg());
    if (rc != IB_OK) break;
    TH_CHECK_EQ_INT(sz, size);
    TH_CHECK_EQ_INT(ins, inserted);
    TH_CHECK_EQ_INT(b.n, IB_MIN((uint64_t)page, size - pos));
    TH_CHECK_EQ_INT(demo ? b.n_demo : b.n_online, b.n);
    TH_CHECK_EQ_INT(demo ? b.demo_size : b.online_size, size);
    bad += rows_bad(&b, first + pos, demo);
    pos += b.n;
    pages++;
  }
  TH_CHECK_MSG(bad == 0, "table %s (obs %d, act %d, page %u): %d rows out of order or wrong", name, od, ad, page,
               bad);
  TH_CHECK_EQ_INT(pos, size);
  TH_CHECK_EQ_INT(store_read(s, t, size, page, &b, NULL, NULL, NULL), IB_OK);
  TH_CHECK_EQ_INT(b.n, 0);
  store_batch_free(&b);
}

/* A ring that has not wrapped, then one that wrapped several times (the oldest row is at the
 * head, not at slot 0), for dims without (5, 3) and with (3, 2) the metadata copy in the pad. */
static void test_online_ring(void) {
  static const int dims[2][2] = {{5, 3}, {3, 2}};
  for (int d = 0; d < 2; d++) {
    int od = dims[d][0], ad = dims[d][1];
    store *s = mk(od, ad, 8, 16);
    if (s == NULL) return;
    put(s, "online", od, ad, 0, 10, 4);
    scan_check(s, "online", od, ad, 3, 0, 10, 10);
    put(s, "online", od, ad, 10, 45, 7); /* 45 rows into 16 slots: the oldest is seq 29 at slot 13 */
    scan_check(s, "online", od, ad, 5, 29, 16, 45);
    scan_check(s, "online", od, ad, 16, 29, 16, 45);
    scan_check(s, "online", od, ad, 64, 29, 16, 45);
    store_destroy(s);
  }
}

static void test_demo_table(void) {
  store *s = mk(3, 2, 20, 8);
  if (s == NULL) return;
  put(s, "demo", 3, 2, 100, 117, 5);
  scan_check(s, "demo", 3, 2, 4, 100, 17, 17);
  /* The online table is empty: start 0 is its end. */
  store_batch b;
  store_batch_init(&b, 8, 3, 2);
  uint64_t sz = 99, ins = 99;
  TH_CHECK_EQ_INT(store_read(s, store_table_find(s, "online"), 0, 8, &b, NULL, &sz, &ins), IB_OK);
  TH_CHECK_EQ_INT(b.n, 0);
  TH_CHECK_EQ_INT(sz, 0);
  TH_CHECK_EQ_INT(ins, 0);
  store_batch_free(&b);
  store_destroy(s);
}

/* The column path writes the same rows as the batch path, byte for byte, at odd addresses. */
static void test_cols_equal_batch(void) {
  for (int d = 0; d < 2; d++) {
    int od = d ? 3 : 5, ad = d ? 2 : 3;
    store *s = mk(od, ad, 8, 16);
    if (s == NULL) return;
    put(s, "online", od, ad, 0, 37, 6);
    int t = store_table_find(s, "online");
    enum { N = 11 };
    store_batch b, c;
    store_batch_init(&b, 16, od, ad);
    store_batch_init(&c, 16, od, ad);
    size_t w[10] = {(size_t)od * 4 * N, (size_t)ad * 4 * N, (size_t)od * 4 * N, 4 * N, 4 * N, N, 4 * N, 8 * N,
                    8 * N, N};
    uint8_t *col[10];
    for (int k = 0; k < 10; k++) {
      col[k] = ib_xmalloc(w[k] + 1);
      memset(col[k], 0xee, w[k] + 1);
    }
    store_cols sc = {col[0] + 1, col[1] + 1, col[2] + 1, col[3] + 1, col[4] + 1,
                     col[5] + 1, col[6] + 1, col[7] + 1, col[8] + 1, col[9] + 1};
    uint64_t i1 = 0, i2 = 0;
    TH_CHECK_EQ_INT(store_read(s, t, 3, N, &b, NULL, NULL, &i1), IB_OK);
    TH_CHECK_EQ_INT(store_read(s, t, 3, N, &c, &sc, NULL, &i2), IB_OK);
    TH_CHECK_EQ_INT(i1, 37);
    TH_CHECK_EQ_INT(i2, 37);
    TH_CHECK_EQ_INT(c.n, N);
    TH_CHECK_EQ_INT(rows_bad(&b, 21 + 3, 0), 0);
    TH_CHECK(!memcmp(sc.obs, b.obs, w[0]) && !memcmp(sc.action, b.action, w[1]) &&
             !memcmp(sc.next_obs, b.next_obs, w[2]) && !memcmp(sc.reward, b.reward, w[3]) &&
             !memcmp(sc.discount, b.discount, w[4]) && !memcmp(sc.proposer, b.proposer, w[5]) &&
             !memcmp(sc.actor_id, b.actor_id, w[6]) && !memcmp(sc.seq, b.seq, w[7]) &&
             !memcmp(sc.weight_version, b.weight_version, w[8]));
    int flags_ok = 1;
    for (int i = 0; i < N; i++) flags_ok &= sc.flags[i] == (b.episode_end[i] | b.episode_success[i] << 1);
    TH_CHECK(flags_ok);
    for (int k = 0; k < 10; k++) {
      TH_CHECK_MSG(col[k][0] == 0xee, "column %d: a byte before the rows was written", k);
      free(col[k]);
    }
    store_batch_free(&b);
    store_batch_free(&c);
    store_destroy(s);
  }
}

/* Reads are inspection: no sample counted. Inserts between two pages move the counter. */
static void test_counters(void) {
  store *s = mk(5, 3, 8, 16);
  if (s == NULL) return;
  put(s, "online", 5, 3, 0, 16, 8);
  int t = store_table_find(s, "online");
  store_batch b;
  store_batch_init(&b, 16, 5, 3);
  uint64_t i1 = 0, i2 = 0, sz = 0;
  TH_CHECK_EQ_INT(store_read(s, t, 0, 8, &b, NULL, &sz, &i1), IB_OK);
  put(s, "online", 5, 3, 16, 19, 3); /* the ring is full: every row moves 3 positions */
  TH_CHECK_EQ_INT(store_read(s, t, 8, 8, &b, NULL, &sz, &i2), IB_OK);
  TH_CHECK_EQ_INT(i2 - i1, 3);
  TH_CHECK_EQ_INT(sz, 16);
  TH_CHECK_EQ_INT(rows_bad(&b, 8 + 3, 0), 0); /* position 8 is now seq 11 */
  store_table_info ti;
  store_table_info_get(s, t, &ti);
  TH_CHECK_EQ_INT(ti.total_samples, 0);
  TH_CHECK(ti.samples_per_s == 0);
  store_batch_free(&b);
  store_destroy(s);
}

/* Bad arguments: refused with a message naming the table and the value, nothing written. */
static void test_bad_args(void) {
  store *s = mk(5, 3, 8, 16);
  if (s == NULL) return;
  put(s, "online", 5, 3, 0, 10, 5);
  int t = store_table_find(s, "online");
  store_batch b, wrong;
  store_batch_init(&b, 8, 5, 3);
  store_batch_init(&wrong, 8, 4, 3);
  b.n = 77;
  b.seq[0] = 12345;
  uint64_t sz = 99, ins = 99;
  TH_CHECK_EQ_INT(store_read(s, t, 11, 4, &b, NULL, &sz, &ins), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "start 11") && strstr(ib_errmsg(), "size 10") && strstr(ib_errmsg(), "online") &&
                   strstr(ib_errmsg(), "HINT"),
               "message: %s", ib_errmsg());
  TH_CHECK_EQ_INT(store_read(s, t, 0, 0, &b, NULL, &sz, &ins), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "count 0") != NULL, "message: %s", ib_errmsg());
  TH_CHECK_EQ_INT(store_read(s, t, 0, 9, &b, NULL, &sz, &ins), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "count 9") != NULL, "message: %s", ib_errmsg());
  TH_CHECK_EQ_INT(store_read(s, t, 0, 4, &wrong, NULL, &sz, &ins), IB_EMISMATCH);
  TH_CHECK_EQ_INT(b.n, 77);
  TH_CHECK_EQ_INT(b.seq[0], 12345);
  TH_CHECK_EQ_INT(sz, 99);
  TH_CHECK_EQ_INT(ins, 99);
  store_batch_free(&b);
  store_batch_free(&wrong);
  store_destroy(s);
}

static const th_case cases[] = {
    {"online ring: pages in age order, before and after wrapping", test_online_ring},
    {"demo table and an empty table", test_demo_table},
    {"column path equals the batch path", test_cols_equal_batch},
    {"counters: not a sample; inserts move the counter", test_counters},
    {"bad arguments", test_bad_args},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
