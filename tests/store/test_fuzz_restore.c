/* test_fuzz_restore.c: seeded mutation fuzzing of what a replay shard reads back from disk: the
 * checkpoint (store.ckpt) and the write-ahead log (store.wal.*), through persist_open.
 *
 * Design. Real files first: a store with both tables (a demo table and an online ring that wraps)
 * gets batches from several actors, a checkpoint (so its log starts with a link record) and more
 * batches, under PERSIST_WAL; its store.ckpt and logs are kept in memory. Each iteration copies
 * them into a fresh directory with one of them damaged: generic mutations (bit flips, bytes set,
 * ranges inserted, deleted or duplicated, truncation) and ones aimed at the format's fields (the
 * checkpoint's table counts, dims, head, size and actor count; a log record's length, table and
 * item count; values set to 0, 1, 2^31, 2^32 - 1, 2^63, one off a bound). Then, most of the time,
 * the CRCs are recomputed where the format keeps them (the checkpoint's footer; the log header's
 * and every record's whose length lies inside the file), so that the parser behind the CRC check
 * is what gets exercised, not only the check. persist_open on a fresh store must then either
 * refuse with an IB_E* and a message naming the file, or restore a store that is consistent
 * (every table's size within its capacity) and still works (a sample, an insert, a checkpoint).
 * A quarter of the refusals go on to persist_open_salvage, which must keep such a store too, or
 * refuse with IB_EMISMATCH or IB_EFULL (fields that make the settings differ).
 * Under ASan+UBSan any over-read or UB fails the run.
 *
 * Determinism: iteration k draws from rng_seed(seed, "restore", k, "fuzz") only; a failure names
 * IB_FUZZ_SEED and the iteration, and IB_FUZZ_FROM=k IB_FUZZ_ITERS=1 replays it. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ib.h"
#include "persist.h"
#include "rng.h"
#include "store.h"
#include "store_testdir.h"
#include "th.h"

#define O 3 /* small tables: the files stay a few kB, so many iterations fit */
#define A 2
#define DEMO_CAP 24
#define ONLINE_CAP 16
#define MAX_REPORTS 5
#define ITEM_BYTES ((2 * O + A + 2) * 4 + 32) /* one item in a log record (persist.c, persist__item_bytes) */

typedef struct fz {
  rng r;
  uint64_t seed;
  long iter;
  int failures;
} fz;

#define FZ_CHECK(z, cond, ...)                                                                              \
  do {                                                                                                      \
    if (!(cond)) {                                                                                          \
      (z)->failures++;                                                                                      \
      if ((z)->failures <= MAX_REPORTS) {                                                                   \
        char fz_m_[1536];                                                                                   \
        snprintf(fz_m_, sizeof fz_m_, __VA_ARGS__);                                                         \
        th__fail(__FILE__, __LINE__, "%s [IB_FUZZ_SEED=%llu IB_FUZZ_FROM=%ld IB_FUZZ_ITERS=1]", fz_m_,      \
                 (unsigned long long)(z)->seed, (z)->iter);                                                 \
      }                                                                                                     \
    }                                                                                                       \
  } while (0)

static uint32_t below(fz *z, uint32_t n) { return n == 0 ? 0 : rng_below(&z->r, n); }

/* ---- files in memory ---- */

typedef struct file {
  char name[256];
  uint8_t *p;
  size_t n, cap;
} file;

static void f_reserve(file *f, size_t n) {
  if (n <= f->cap) return;
  f->cap = IB_MAX(n, 2 * f->cap);
  f->p = ib_xrealloc(f->p, f->cap);
}

static void f_read(file *f, const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(f->name, sizeof f->name, "%s", name);
  FILE *fp = fopen(path, "rb");
  IB_CHECK(fp != NULL);
  f->n = 0;
  uint8_t buf[4096];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, fp)) > 0) {
    f_reserve(f, f->n + k);
    memcpy(f->p + f->n, buf, k);
    f->n += k;
  }
  fclose(fp);
}

static void f_write(const file *f, const char *dir) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, f->name);
  FILE *fp = fopen(path, "wb");
  IB_CHECK(fp != NULL);
  IB_CHECK(f->n == 0 || fwrite(f->p, 1, f->n, fp) == f->n);
  IB_CHECK(fclose(fp) == 0);
}

static void f_copy(file *dst, const file *src) {
  snprintf(dst->name, sizeof dst->name, "%s", src->name);
  f_reserve(dst, src->n + 1);
  memcpy(dst->p, src->p, src->n);
  dst->n = src->n;
}

/* Removes every file of dir (the directory stays). */
static void dir_clear(const char *dir) {
  DIR *d = opendir(dir);
  IB_CHECK(d != NULL);
  struct dirent *e;
  char path[1024];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (unlink(path) != 0) fx_rmdir_all(path); /* a salvage's damaged-* */
  }
  closedir(d);
}

/* ---- the real files ---- */

/* A store of 64 actor slots per table, not the default 4,096: the originals use 4, and the
 * default's actor tables (about 9 MB each) were zeroed at every iteration's store_create and
 * refused restore, which took this test to 32 s, and to the edge of its 120 s timeout under ASan
 * (23 Nov). A damaged actor count above 64 is refused as a mismatch instead of being parsed. */
static store *mk(void) {
  store_spec sp[2];
  store_specs_default(sp, O, A, DEMO_CAP, ONLINE_CAP);
  store_config cfg = {0};
  cfg.max_actors = 64;
  store *s = NULL;
  IB_CHECK(store_create(&s, sp, 2, &cfg) == IB_OK);
  return s;
}

/* n valid items of actor `actor` with seqs from `seq`, into `table`. */
static void put(store *s, const char *table, uint32_t actor, uint64_t seq, int n) {
  float obs[64 * O], nobs[64 * O], act[64 * A];
  store_item it[64];
  IB_CHECK(n <= 64);
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < O; j++) obs[i * O + j] = (float)(seq + (uint64_t)i) + 0.25f * (float)j, nobs[i * O + j] = -obs[i * O + j];
    for (int j = 0; j < A; j++) act[i * A + j] = 0.5f * (float)j - 0.1f * (float)i;
    it[i] = (store_item){obs + i * O, act + i * A, nobs + i * O, O, A, O, 1.5f * (float)i, 0.99f,
                         table[0] == 'd' ? 2u : (uint32_t)(i % 2), actor, seq + (uint64_t)i, 7 + (uint64_t)i,
                         i % 5 == 4, i % 10 == 9};
  }
  store_insert_result res;
  IB_CHECK(store_insert(s, table, it, (size_t)n, &res) == IB_OK);
}

typedef struct originals {
  file f[8];
  int n;
} originals;

/* Writes the real files in dir and keeps them in o: with_ckpt 1, a checkpoint (of a wrapped
 * ring) and the log that follows it, starting with a link record; 0, a log alone (epoch 0, no
 * link), which a restore replays onto an empty store. */
static void originals_make(originals *o, const char *dir, int with_ckpt) {
  store *s = mk();
  persist *p = NULL;
  IB_CHECK(persist_open(&p, s, dir, PERSIST_WAL, NULL) == IB_OK);
  put(s, "demo", 1, 0, 10);
  put(s, "online", 2, 0, 12);
  put(s, "online", 3, 100, 9); /* the ring (16) wraps */
  if (with_ckpt) IB_CHECK(persist_checkpoint(p, NULL) == IB_OK);
  put(s, "online", 2, 12, 5);
  put(s, "demo", 1, 10, 4);
  put(s, "online", 4, 0, 3);
  persist_close(p);
  store_destroy(s);
  memset(o, 0, sizeof *o);
  DIR *d = opendir(dir);
  IB_CHECK(d != NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, "store.ckpt") == 0 || strncmp(e->d_name, "store.wal.", 10) == 0) {
      IB_CHECK(o->n < 8);
      f_read(&o->f[o->n++], dir, e->d_name);
    }
  closedir(d);
}

/* ---- mutations ---- */

static const uint64_t special[] = {0, 1, 2, 3, ONLINE_CAP - 1, ONLINE_CAP, ONLINE_CAP + 1, DEMO_CAP, DEMO_CAP + 1,
                                   4096, 4097, 0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu, 1ull << 32,
                                   1ull << 63, UINT64_MAX};

static void set_word(file *f, size_t at, int bytes, uint64_t v) {
  if (at + (size_t)bytes > f->n) return;
  memcpy(f->p + at, &v, (size_t)bytes); /* little-endian: the low bytes */
}

static uint64_t get_word(const file *f, size_t at, int bytes) {
  uint64_t v = 0;
  if (at + (size_t)bytes <= f->n) memcpy(&v, f->p + at, (size_t)bytes);
  return v;
}

static uint64_t pick_value(fz *z, uint64_t old) {
  switch (below(z, 4)) {
    case 0: return old + 1;
    case 1: return old - 1;
    case 2: return old ^ (1ull << below(z, 64));
    default: return special[below(z, IB_ARRAY_LEN(special))];
  }
}

static void generic(fz *z, file *f) {
  size_t n = f->n;
  if (n == 0) return;
  int op = (int)below(z, 7);
  switch (op) {
    case 0: { /* one draw per statement: the order must not depend on the compiler */
      size_t at = below(z, (uint32_t)n);
      f->p[at] ^= (uint8_t)(1u << below(z, 8));
      break;
    }
    case 1:
    case 2: { /* a byte set to 0x00 or 0xff (1), or to a random value (2) */
      size_t at = below(z, (uint32_t)n);
      uint8_t v = (uint8_t)(rng_u64(&z->r) >> 56);
      f->p[at] = op == 2 ? v : v & 1 ? 0xff : 0x00;
      break;
    }
    case 3: { /* insert random bytes */
      size_t at = below(z, (uint32_t)n + 1), k = 1 + below(z, 16);
      f_reserve(f, n + k);
      memmove(f->p + at + k, f->p + at, n - at);
      for (size_t i = 0; i < k; i++) f->p[at + i] = (uint8_t)rng_u64(&z->r);
      f->n += k;
      break;
    }
    case 4: { /* delete a range */
      size_t at = below(z, (uint32_t)n), k = 1 + below(z, (uint32_t)IB_MIN(n - at, 64));
      memmove(f->p + at, f->p + at + k, n - at - k);
      f->n -= k;
      break;
    }
    case 5: { /* duplicate a range in place after itself */
      size_t at = below(z, (uint32_t)n), k = 1 + below(z, (uint32_t)IB_MIN(n - at, 128));
      f_reserve(f, n + k);
      memmove(f->p + at + k, f->p + at, n - at);
      f->n += k;
      break;
    }
    default: f->n = below(z, (uint32_t)n + 1); /* truncate */
  }
}

/* Checkpoint layout (persist.c): 32-byte file header, then per table 160 bytes: name[32],
 * obs_dim u32 @32, act_dim u32 @36, capacity u64 @40, kind u32 @48, stride u32 @52, 12 u64
 * counters @56 (head, size, total_inserts, ...), nactors u32 @152, pad u32 @156. */
static void ckpt_fields(fz *z, file *f) {
  static const struct {
    int off, bytes;
  } hdr[] = {{8, 4}, {12, 4}, {16, 4}, {24, 8}};
  static const struct {
    int off, bytes;
  } th[] = {{32, 4}, {36, 4}, {40, 8}, {48, 4}, {52, 4}, {56, 8}, {64, 8}, {72, 8}, {80, 8}, {152, 4}, {156, 4}};
  if (below(z, 5) == 0) {
    int k = (int)below(z, IB_ARRAY_LEN(hdr));
    set_word(f, (size_t)hdr[k].off, hdr[k].bytes, pick_value(z, get_word(f, (size_t)hdr[k].off, hdr[k].bytes)));
  } else {
    int k = (int)below(z, IB_ARRAY_LEN(th));
    size_t at = 32 + 160 * below(z, 2) + (size_t)th[k].off;
    set_word(f, at, th[k].bytes, pick_value(z, get_word(f, at, th[k].bytes)));
  }
}

/* Log layout: 44-byte header (magic, version u32 @8, endian @12, epoch u64 @16, ntables @24,
 * obs_dim @28, act_dim @32, CRC @36), then records {u32 length, u32 CRC, u32 table, u32 n, items}. */
static void wal_fields(fz *z, file *f) {
  if (below(z, 5) == 0) {
    static const int off[] = {8, 12, 16, 24, 28, 32};
    int k = (int)below(z, IB_ARRAY_LEN(off));
    int bytes = off[k] == 16 ? 8 : 4;
    set_word(f, (size_t)off[k], bytes, pick_value(z, get_word(f, (size_t)off[k], bytes)));
    return;
  }
  size_t recs[256];
  int nr = 0;
  for (size_t at = 44; at + 16 <= f->n && nr < 256;) {
    uint32_t len = (uint32_t)get_word(f, at, 4);
    recs[nr++] = at;
    if (len < 8 || at + 8 + len > f->n) break;
    at += 8 + len;
  }
  if (nr == 0) return;
  size_t at = recs[below(z, (uint32_t)nr)];
  int which = (int)below(z, 4); /* length, table, n, or a word inside the first item */
  size_t w = which == 0 ? at : which == 1 ? at + 8 : which == 2 ? at + 12 : at + 16 + 4 * below(z, 2 * O + A + 10);
  set_word(f, w, 4, pick_value(z, get_word(f, w, 4)));
}

/* Recomputes the CRCs where the format has them (each with probability 7/8). */
static void fix_crcs(fz *z, file *f, int is_ckpt) {
  if (is_ckpt) {
    if (f->n >= 12 + 32 && below(z, 8) != 0) {
      uint32_t crc = ib_crc32(0, f->p, f->n - 12);
      memcpy(f->p + f->n - 12, &crc, 4);
      if (below(z, 8) != 0) memcpy(f->p + f->n - 8, "IBRLDONE", 8);
    }
    return;
  }
  if (f->n >= 44 && below(z, 8) != 0) {
    uint32_t crc = ib_crc32(0, f->p, 36);
    memcpy(f->p + 36, &crc, 4);
  }
  if (below(z, 8) == 0) return;
  for (size_t at = 44; at + 8 <= f->n;) {
    uint32_t len = (uint32_t)get_word(f, at, 4);
    if (len < 8 || at + 8 + len > f->n) break;
    uint32_t crc = ib_crc32(0, f->p + at + 8, len);
    memcpy(f->p + at + 4, &crc, 4);
    at += 8 + len;
  }
}

/* 1 if the replay would reach a record (length and CRC intact) naming a table in [2^31, 2^32 - 2]:
 * what crashed persist.c before the fix of test_known_table_index. */
static int wal_hits_negative_table(const file *f) {
  if (f->n < 44) return 0;
  for (size_t at = 44; at + 8 <= f->n;) {
    uint32_t len = (uint32_t)get_word(f, at, 4), crc = (uint32_t)get_word(f, at + 4, 4);
    if (len < 8 || at + 8 + len > f->n || ib_crc32(0, f->p + at + 8, len) != crc) return 0;
    uint32_t t = (uint32_t)get_word(f, at + 8, 4);
    if (t >= 0x80000000u && t != 0xffffffffu) return 1;
    at += 8 + len;
  }
  return 0;
}

/* 1 if the format says a replay of this log must fail: a record it reaches (every record before
 * it has an intact length and CRC) has an intact CRC but the wrong shape: a table other than 0, 1
 * and the link's 0xffffffff, more than the default max_insert_batch items, a length other than
 * 8 + n items, or a link record that is not first or not one item. */
static int wal_must_refuse(const file *f) {
  if (f->n < 44) return 0;
  for (size_t at = 44; at + 8 <= f->n;) {
    uint32_t len = (uint32_t)get_word(f, at, 4), crc = (uint32_t)get_word(f, at + 4, 4);
    if (len < 8 || at + 8 + len > f->n || ib_crc32(0, f->p + at + 8, len) != crc) return 0; /* torn: cut here */
    uint32_t t = (uint32_t)get_word(f, at + 8, 4), n = (uint32_t)get_word(f, at + 12, 4);
    if (t == 0xffffffffu) {
      if (at != 44 || n != 1 || len != 8 + ITEM_BYTES) return 1;
    } else if (t > 1 || n > 4096 || (uint64_t)len != 8 + (uint64_t)n * ITEM_BYTES) {
      return 1;
    }
    at += 8 + len;
  }
  return 0;
}

/* ---- the check ---- */

/* After a successful restore: sizes within capacity, and the store still samples, inserts and
 * checkpoints. */
static void restored_ok(fz *z, store *s, persist *p, long *nonfinite) {
  for (int t = 0; t < store_table_count(s); t++) {
    store_table_info ti;
    store_table_info_get(s, t, &ti);
    FZ_CHECK(z, ti.size <= ti.spec.capacity, "table '%s' restored with %llu items, capacity %llu", ti.spec.name,
             (unsigned long long)ti.size, (unsigned long long)ti.spec.capacity);
  }
  store_batch b;
  store_batch_init(&b, 8, O, A);
  rng r;
  rng_seed(&r, 1, "fuzz", 0, "sample");
  int rc = store_sample(s, &r, 8, -1.0, &b);
  FZ_CHECK(z, rc == IB_OK || rc == IB_EUNAVAIL, "sampling the restored store: %d (%s)", rc, ib_errmsg());
  /* A checkpoint's records are not validated on load (the log's are): count what gets through. */
  if (rc == IB_OK && (ib_first_nonfinite(b.obs, 8 * O) >= 0 || ib_first_nonfinite(b.next_obs, 8 * O) >= 0 ||
                      ib_first_nonfinite(b.action, 8 * A) >= 0 || ib_first_nonfinite(b.reward, 8) >= 0 ||
                      ib_first_nonfinite(b.discount, 8) >= 0))
    (*nonfinite)++;
  store_batch_free(&b);
  float obs[O] = {1, 2, 3}, act[A] = {0.5f, -0.5f};
  store_item it = {obs, act, obs, O, A, O, 1.0f, 0.9f, 1, 99, 5, 1, false, false};
  store_insert_result res;
  rc = store_insert(s, "online", &it, 1, &res);
  FZ_CHECK(z, rc == IB_OK, "inserting into the restored store: %d (%s)", rc, ib_errmsg());
  if (below(z, 4) == 0) { /* a checkpoint forks and fsyncs: a quarter of the stores is enough */
    rc = persist_checkpoint(p, NULL);
    FZ_CHECK(z, rc == IB_OK, "a checkpoint of the restored store: %d (%s)", rc, ib_errmsg());
  }
}

static void test_fuzz_restore(void) {
  char src[256], dir[256];
  fx_tmpdir(src, sizeof src, "ibrl-fuzz-src");
  fx_tmpdir(dir, sizeof dir, "ibrl-fuzz-restore");
  /* Set 0: a checkpoint and its log; set 1: a log alone. */
  static originals sets[2];
  int cks[2] = {-1, -1};
  for (int k = 0; k < 2; k++) {
    originals_make(&sets[k], src, k == 0);
    dir_clear(src);
    for (int i = 0; i < sets[k].n; i++)
      if (strcmp(sets[k].f[i].name, "store.ckpt") == 0) cks[k] = i;
  }
  fx_rmdir_all(src);
  TH_CHECK_MSG(cks[0] >= 0 && sets[0].n == 2 && cks[1] < 0 && sets[1].n == 1,
               "the real files: %d files (checkpoint %d), then %d files (checkpoint %d)", sets[0].n, cks[0], sets[1].n,
               cks[1]);
  if (cks[0] < 0 || sets[0].n != 2 || cks[1] >= 0 || sets[1].n != 1) return;
  /* The untouched files restore: 3 records after the checkpoint; 6 records alone. */
  for (int k = 0; k < 2; k++) {
    dir_clear(dir);
    for (int i = 0; i < sets[k].n; i++) f_write(&sets[k].f[i], dir);
    store *s0 = mk();
    persist *p0 = NULL;
    persist_restore_info ri0;
    TH_CHECK_EQ_INT(persist_open(&p0, s0, dir, PERSIST_CKPT_ONLY, &ri0), IB_OK);
    TH_CHECK(ri0.ckpt_found == (k == 0) && ri0.wal_found && ri0.wal_records == (k == 0 ? 3u : 6u) &&
             ri0.wal_torn_bytes == 0);
    persist_close(p0);
    store_destroy(s0);
  }
  store *s;
  persist *p;
  persist_restore_info ri;

  fz z = {.seed = th_env_u64("IB_FUZZ_SEED", 20261122)};
  long iters = (long)th_env_u64("IB_FUZZ_ITERS", 5000), from = (long)th_env_u64("IB_FUZZ_FROM", 0);
  long restored = 0, refused = 0, nonfinite = 0, by_rc[16] = {0}, salvaged = 0, salvage_refused = 0;
  file m = {0};
  for (long it = from; it < from + iters; it++) {
    z.iter = it;
    rng_seed(&z.r, z.seed, "restore", it, "fuzz");
    dir_clear(dir);
    int set = (int)below(&z, 3) == 0, ck = cks[set];
    const originals *os = &sets[set];
    int victim = (int)below(&z, (uint32_t)os->n), is_ckpt = victim == ck;
    f_copy(&m, &os->f[victim]);
    int rounds = 1 + (int)below(&z, 3);
    for (int k = 0; k < rounds; k++) {
      if (below(&z, 2)) generic(&z, &m);
      else if (is_ckpt) ckpt_fields(&z, &m);
      else wal_fields(&z, &m);
    }
    fix_crcs(&z, &m, is_ckpt);
    for (int i = 0; i < os->n; i++) f_write(i == victim ? &m : &os->f[i], dir);
    s = mk();
    p = NULL;
    int rc = persist_open(&p, s, dir, below(&z, 4) == 0 ? PERSIST_WAL : PERSIST_CKPT_ONLY, &ri);
    if (rc == IB_OK) {
      restored++;
      /* Every item replayed from the logs came from bytes of the logs (a record's items are
       * fixed-size; ITEM_BYTES is the format's item size for these dims). */
      size_t log_bytes = 0;
      for (int i = 0; i < os->n; i++)
        if (i != ck) log_bytes += i == victim ? m.n : os->f[i].n;
      FZ_CHECK(&z, ri.wal_items * ITEM_BYTES <= log_bytes, "%llu items replayed from %zu bytes of logs",
               (unsigned long long)ri.wal_items, log_bytes);
      FZ_CHECK(&z, is_ckpt || !wal_must_refuse(&m), "a log record of the wrong shape (intact CRC) was replayed");
      restored_ok(&z, s, p, &nonfinite);
      persist_close(p);
    } else {
      refused++;
      by_rc[-rc < 16 ? -rc : 0]++;
      const char *msg = ib_errmsg();
      FZ_CHECK(&z, rc == IB_EPROTO || rc == IB_ECHECKSUM || rc == IB_EMISMATCH || rc == IB_EMISSING || rc == IB_EFULL,
               "damaged %s: persist_open returned %d (%s)", m.name, rc, msg);
      FZ_CHECK(&z, strstr(msg, "store.ckpt") != NULL || strstr(msg, "store.wal.") != NULL || strstr(msg, dir) != NULL,
               "damaged %s: the message does not name the file: '%s'", m.name, msg);
      FZ_CHECK(&z, strstr(msg, "HINT") != NULL, "damaged %s: the message has no HINT: '%s'", m.name, msg);
      /* Nothing half-restored: the store is left empty. */
      for (int t = 0; t < store_table_count(s); t++) {
        store_table_info ti;
        store_table_info_get(s, t, &ti);
        FZ_CHECK(&z, ti.size == 0, "a refused restore left %llu items in table '%s'", (unsigned long long)ti.size,
                 ti.spec.name);
      }
      /* A quarter of the refusals are salvaged (each ends with a checkpoint: a fork and fsyncs):
       * it either keeps a consistent, working store or refuses settings that differ (other specs,
       * a demo table or max_actors too small for the rows). */
      if (rc != IB_EIO && rc != IB_EFULL && below(&z, 4) == 0) {
        store_destroy(s);
        s = mk();
        p = NULL;
        persist_salvage_info sv;
        int srv = persist_open_salvage(&p, s, dir, below(&z, 2) ? PERSIST_WAL : PERSIST_CKPT_ONLY, &ri, &sv);
        if (srv == IB_OK) {
          salvaged++;
          FZ_CHECK(&z, sv.salvaged, "damaged %s: salvage returned IB_OK without salvaging", m.name);
          restored_ok(&z, s, p, &nonfinite);
          persist_close(p);
        } else {
          salvage_refused++;
          FZ_CHECK(&z, srv == IB_EMISMATCH || srv == IB_EFULL, "damaged %s: salvage returned %d (%s)", m.name, srv,
                   ib_errmsg());
        }
      }
    }
    store_destroy(s);
    if (z.failures > 50) break;
  }
  printf("    restore: %ld iterations (seed %llu): %ld restored, %ld refused (EPROTO %ld, ECHECKSUM %ld, EMISSING %ld, "
         "EMISMATCH %ld, EFULL %ld)\n", iters,
         (unsigned long long)z.seed, restored, refused, by_rc[-IB_EPROTO], by_rc[-IB_ECHECKSUM], by_rc[-IB_EMISSING],
         by_rc[-IB_EMISMATCH], by_rc[-IB_EFULL]);
  printf("    salvage of a quarter of the refusals: %ld kept a working store, %ld refused (other settings)\n", salvaged,
         salvage_refused);
  /* A restore must refuse a row that is not finite (persist.c checks every checkpoint row). */
  TH_CHECK_MSG(nonfinite == 0, "%ld restored stores sampled a NaN/Inf", nonfinite);
  if (z.failures > MAX_REPORTS) th__fail(__FILE__, __LINE__, "%d more failed checks not shown", z.failures - MAX_REPORTS);
  TH_CHECK(iters < 100 || (restored > iters / 50 && refused > iters / 5 && salvaged > iters / 50));
  free(m.p);
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < sets[k].n; i++) free(sets[k].f[i].p);
  fx_rmdir_all(dir);
}

/* Found by this fuzzer: a log record with an intact CRC whose table field is in [2^31, 2^32 - 2]
 * crashed persist_open. wal_replay (replay/store/persist_wal.c) checked the table with
 * `(int)t < s->ntables`, true for such a t (negative as an int), and then read s->tables[t].spec
 * with the unsigned t: an access ~2^31 tables past the array, SIGSEGV. Now refused as damage. */
static void test_known_table_index(void) {
  char src[256];
  fx_tmpdir(src, sizeof src, "ibrl-fuzz-repro");
  originals o;
  originals_make(&o, src, 1);
  dir_clear(src);
  for (int i = 0; i < o.n; i++) {
    file *f = &o.f[i];
    if (strncmp(f->name, "store.wal.", 10) == 0 && f->n > 44) {
      /* The last record: walk to it, set its table to 2^31, recompute its CRC. */
      size_t at = 44, last = 44;
      while (at + 8 <= f->n) {
        uint32_t len = (uint32_t)get_word(f, at, 4);
        if (len < 8 || at + 8 + len > f->n) break;
        last = at;
        at += 8 + len;
      }
      set_word(f, last + 8, 4, 0x80000000u);
      uint32_t len = (uint32_t)get_word(f, last, 4), crc = ib_crc32(0, f->p + last + 8, len);
      set_word(f, last + 4, 4, crc);
      TH_CHECK(wal_hits_negative_table(f));
    }
    f_write(f, src);
  }
  store *s = mk();
  persist *p = NULL;
  int rc = persist_open(&p, s, src, PERSIST_CKPT_ONLY, NULL);
  TH_CHECK_MSG(rc == IB_EPROTO, "a record naming table 2^31: %d (%s)", rc, ib_errmsg());
  if (rc == IB_OK) persist_close(p);
  store_destroy(s);
  for (int i = 0; i < o.n; i++) free(o.f[i].p);
  fx_rmdir_all(src);
}

/* A checkpoint row that is not finite, under a valid CRC (a file rewritten by something else): the
 * restore refuses it, naming the row, instead of handing a NaN to a learner. The fuzzer above
 * rarely makes one (a float's exponent must become all ones), so this case plants it: the obs
 * value 104.25 (actor 3, seq 104, obs[1], in the wrapped online ring) becomes a NaN. */
static void test_ckpt_nan_row(void) {
  char src[256];
  fx_tmpdir(src, sizeof src, "ibrl-fuzz-nan");
  originals o;
  originals_make(&o, src, 1);
  dir_clear(src);
  int planted = 0;
  for (int i = 0; i < o.n; i++) {
    file *f = &o.f[i];
    if (strcmp(f->name, "store.ckpt") == 0) {
      const float want = 104.25f, nan = NAN;
      for (size_t at = 0; at + 4 <= f->n - 12 && !planted; at++)
        if (memcmp(f->p + at, &want, 4) == 0) memcpy(f->p + at, &nan, 4), planted = 1;
      uint32_t crc = ib_crc32(0, f->p, f->n - 12);
      memcpy(f->p + f->n - 12, &crc, 4);
    }
    f_write(f, src);
  }
  TH_CHECK_MSG(planted, "the value 104.25 is not in the checkpoint (did put() change?)");
  store *s = mk();
  persist *p = NULL;
  int rc = persist_open(&p, s, src, PERSIST_WAL, NULL);
  TH_CHECK_MSG(rc == IB_EPROTO && strstr(ib_errmsg(), "NaN") != NULL && strstr(ib_errmsg(), "HINT") != NULL,
               "a checkpoint row holding a NaN: %d (%s)", rc, ib_errmsg());
  if (rc == IB_OK) persist_close(p);
  store_destroy(s);
  for (int i = 0; i < o.n; i++) free(o.f[i].p);
  fx_rmdir_all(src);
}

static const th_case cases[] = {
    {"fuzz damaged checkpoints and logs (CRCs recomputed) through persist_open", test_fuzz_restore},
    {"a log record naming table 2^31 with a valid CRC is refused, not read out of bounds", test_known_table_index},
    {"a checkpoint row holding a NaN under a valid CRC is refused", test_ckpt_nan_row},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
