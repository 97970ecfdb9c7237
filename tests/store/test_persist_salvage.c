/* test_persist_salvage.c: persist_open_salvage, for store directories that the strict restore
 * refuses (a damaged checkpoint, a damaged log header, a gap in the chain of logs): every intact
 * row is kept and nothing else, each row field by field; the files as they were are linked into
 * dir/damaged-<time> byte for byte; the next strict persist_open accepts the directory with the
 * same rows, and inserts after the salvage are durable. Also: a directory the strict restore
 * accepts is restored as by persist_open (nothing set aside); specs that differ are still
 * refused with nothing changed; a salvage whose own checkpoint fails leaves a directory that a
 * second salvage takes; checkpoint-only mode. The lying disk that leaves such directories is in
 * test_persist_power.c ("a disk that lies about flushes"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ib.h"
#include "persist.h"
#include "store.h"
#include "store_fixture.h"
#include "store_testdir.h"
#include "th.h"

#define CAP 256     /* online capacity: nothing is evicted here */
#define MAXK 1024   /* keys a table read returns at most */

/* ---- helpers ---- */

static store *mk(void) { return fx_store_slots(CAP, 16); }

static void path_of(char *out, size_t n, const char *dir, const char *name) {
  snprintf(out, n, "%s/%s", dir, name);
}

/* Inserts actor's seqs [from, to) into "online", 4 at a time. */
static void put(store *s, uint32_t actor, uint64_t from, uint64_t to) {
  for (uint64_t q = from; q < to; q += 4) {
    fx_item xs[4];
    store_item v[4];
    int n = 0;
    for (uint64_t k = q; k < to && n < 4; k++) fx_fill(&xs[n++], actor, k, STORE_PROPOSER_RL);
    fx_views(v, xs, n);
    int rc = store_insert(s, "online", v, (size_t)n, NULL);
    TH_CHECK_MSG(rc == IB_OK, "insert: %s", ib_errmsg());
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The keys (fx_key) of every online row, sorted; each row is checked field by field. */
static int keys_of(store *s, uint64_t *keys) {
  int t = store_table_find(s, "online");
  store_batch b;
  store_batch_init(&b, 64, FX_O, FX_A);
  int n = 0;
  for (uint64_t pos = 0;; pos += b.n) {
    IB_CHECK(store_read(s, t, pos, 64, &b, NULL, NULL, NULL) == IB_OK);
    if (b.n == 0) break;
    for (uint32_t i = 0; i < b.n; i++) {
      TH_CHECK_MSG(fx_row_ok(&b, i), "row %llu does not hold the item of its key %llu",
                   (unsigned long long)(pos + i), (unsigned long long)b.weight_version[i]);
      IB_CHECK(n < MAXK);
      keys[n++] = b.weight_version[i];
    }
  }
  store_batch_free(&b);
  qsort(keys, (size_t)n, sizeof *keys, cmp_u64);
  return n;
}

/* Whether the online rows are exactly actor a's seqs [lo[a], hi[a]) for actors 1..3. */
static bool rows_are(store *s, const uint64_t lo[4], const uint64_t hi[4], const char *what) {
  uint64_t got[MAXK], want[MAXK];
  int n = keys_of(s, got), m = 0;
  for (uint32_t a = 1; a <= 3; a++)
    for (uint64_t q = lo[a]; q < hi[a]; q++) want[m++] = fx_key(a, q);
  qsort(want, (size_t)m, sizeof *want, cmp_u64);
  bool ok = n == m && memcmp(got, want, (size_t)n * sizeof *got) == 0;
  TH_CHECK_MSG(ok, "%s: the table holds %d rows, expected %d (actor 1 [%llu,%llu), 2 [%llu,%llu), "
               "3 [%llu,%llu))", what, n, m, (unsigned long long)lo[1], (unsigned long long)hi[1],
               (unsigned long long)lo[2], (unsigned long long)hi[2], (unsigned long long)lo[3],
               (unsigned long long)hi[3]);
  return ok;
}

/* A file's bytes (malloc'ed, *len), or NULL if it is not there. */
static char *slurp(const char *dir, const char *name, long *len) {
  char p[512];
  path_of(p, sizeof p, dir, name);
  FILE *f = fopen(p, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *len = ftell(f);
  rewind(f);
  char *b = ib_xmalloc((size_t)*len + 1);
  IB_CHECK(fread(b, 1, (size_t)*len, f) == (size_t)*len);
  fclose(f);
  return b;
}

/* The store files of `dir` (names and bytes), to compare with what salvage set aside. */
typedef struct files {
  int n;
  char name[16][40];
  char *data[16];
  long len[16];
} files;

static void files_read(const char *dir, files *out) {
  memset(out, 0, sizeof *out);
  DIR *d = opendir(dir);
  IB_CHECK(d != NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, "store.", 6) != 0) continue;
    IB_CHECK(out->n < 16 && strlen(e->d_name) < 40);
    snprintf(out->name[out->n], 40, "%s", e->d_name);
    out->data[out->n] = slurp(dir, e->d_name, &out->len[out->n]);
    out->n++;
  }
  closedir(d);
}

static void files_free(files *f) {
  for (int i = 0; i < f->n; i++) free(f->data[i]);
}

/* Whether `dir` holds exactly the files of `f`, byte for byte. */
static bool files_same(const char *dir, const files *f) {
  files g;
  files_read(dir, &g);
  bool ok = g.n == f->n;
  for (int i = 0; ok && i < f->n; i++) {
    long len = 0;
    char *b = slurp(dir, f->name[i], &len);
    ok = b != NULL && len == f->len[i] && memcmp(b, f->data[i], (size_t)len) == 0;
    TH_CHECK_MSG(ok, "'%s/%s' is not the file as it was", dir, f->name[i]);
    free(b);
  }
  TH_CHECK_MSG(g.n == f->n, "'%s' holds %d store files, expected %d", dir, g.n, f->n);
  files_free(&g);
  return ok;
}

/* How many damaged-* directories `dir` holds. */
static int count_aside(const char *dir) {
  DIR *d = opendir(dir);
  IB_CHECK(d != NULL);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += strncmp(e->d_name, "damaged-", 8) == 0;
  closedir(d);
  return n;
}

/* A directory with checkpoint 1 (actor 1's seqs [0, 8)), then in log 1 actor 1's [8, 16), then
 * (a checkpoint that failed after its cut) in log 2 actor 2's [0, 8), then (another) in log 3
 * actor 3's [0, 8). */
static void build(char *dir, size_t n, persist_mode mode) {
  fx_tmpdir(dir, n, "ibrl-salvage");
  store *s = mk();
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, mode, NULL), IB_OK);
  put(s, 1, 0, 8);
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL), IB_OK);
  put(s, 1, 8, 16);
  char planted[512];
  path_of(planted, sizeof planted, dir, "store.ckpt.tmp");
  IB_CHECK(mkdir(planted, 0755) == 0); /* the next checkpoints fail after their cut */
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL), IB_EIO);
  put(s, 2, 0, 8);
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL), IB_EIO);
  put(s, 3, 0, 8);
  IB_CHECK(rmdir(planted) == 0);
  persist_close(p);
  store_destroy(s);
}

/* Salvages `dir` and checks: it salvaged (or not: `expect`), the rows are those of lo/hi, the
 * files as they were (`before`) are in sv.aside, the next strict open holds the same rows, and a
 * new batch inserted after the salvage is durable. */
static void salvage_check(const char *dir, persist_mode mode, bool expect, const uint64_t lo[4],
                          const uint64_t hi[4], const files *before, persist_salvage_info *sv,
                          const char *what) {
  store *s = mk();
  persist *p = NULL;
  persist_restore_info ri;
  int rc = persist_open_salvage(&p, s, dir, mode, &ri, sv);
  TH_CHECK_MSG(rc == IB_OK, "%s: salvage failed: %s", what, ib_errmsg());
  if (rc != IB_OK) {
    store_destroy(s);
    return;
  }
  TH_CHECK_MSG(sv->salvaged == expect, "%s: salvaged is %d", what, sv->salvaged);
  rows_are(s, lo, hi, what);
  if (expect) {
    TH_CHECK(sv->refusal[0] != '\0');
    TH_CHECK_MSG(files_same(sv->aside, before), "%s: the files set aside differ", what);
    TH_CHECK(ri.recovery_ckpt && !ri.recovery_ckpt_failed);
  } else {
    TH_CHECK_EQ_INT(count_aside(dir), 0);
  }
  put(s, 1, 100, 104);
  persist_close(p);
  store_destroy(s);
  /* The directory is one the strict restore accepts now. */
  s = mk();
  p = NULL;
  rc = persist_open(&p, s, dir, mode, NULL);
  TH_CHECK_MSG(rc == IB_OK, "%s: the strict open after the salvage refused: %s", what, ib_errmsg());
  if (rc == IB_OK) {
    uint64_t got[MAXK];
    int n = keys_of(s, got);
    uint64_t want = 4;
    for (int a = 1; a <= 3; a++) want += hi[a] - lo[a];
    /* checkpoint-only mode keeps only what a checkpoint holds: the batch after it is lost */
    if (mode == PERSIST_CKPT_ONLY) want -= 4;
    TH_CHECK_MSG((uint64_t)n == want, "%s: the strict open holds %d rows, expected %llu", what, n,
                 (unsigned long long)want);
    persist_close(p);
  }
  store_destroy(s);
}

/* ---- cases ---- */

static void test_damaged_checkpoint(void) {
  for (int m = 0; m < 2; m++) {
    persist_mode mode = m ? PERSIST_CKPT_ONLY : PERSIST_WAL;
    char dir[64];
    build(dir, sizeof dir, mode);
    fx_flip_byte(dir, "store.ckpt", 60);
    /* A temporary checkpoint left by a crash: the salvage's own checkpoint is written under the
     * same name, so it must not write through to the copy set aside. */
    char tmp[512];
    path_of(tmp, sizeof tmp, dir, "store.ckpt.tmp");
    FILE *tf = fopen(tmp, "wb");
    IB_CHECK(tf != NULL && fputs("a checkpoint cut short by a crash", tf) >= 0 && fclose(tf) == 0);
    files before;
    files_read(dir, &before);
    store *s = mk();
    persist *p = NULL;
    TH_CHECK_EQ_INT(persist_open(&p, s, dir, mode, NULL), IB_ECHECKSUM);
    store_destroy(s);
    persist_salvage_info sv;
    /* The checkpoint's rows (actor 1's [0, 8)) are lost; every log is read. In checkpoint-only
     * mode the logs are those of the WAL build, none here: only the checkpoint was written. */
    uint64_t lo[4] = {0, 8, 0, 0}, hi[4] = {0, 16, 8, 8};
    if (mode == PERSIST_CKPT_ONLY) memset(hi, 0, sizeof hi), memset(lo, 0, sizeof lo);
    salvage_check(dir, mode, true, lo, hi, &before, &sv, m ? "damaged checkpoint (ckpt-only)"
                                                           : "damaged checkpoint");
    TH_CHECK(sv.ckpt_damaged && !sv.ckpt_loaded);
    TH_CHECK_EQ_INT(sv.files_aside, before.n);
    if (mode == PERSIST_WAL) {
      TH_CHECK_EQ_INT(sv.logs_read, 3);
      TH_CHECK_EQ_INT(sv.log_items, 24);
      TH_CHECK_EQ_INT(sv.logs_damaged, 0);
    }
    TH_CHECK_EQ_INT(count_aside(dir), 1);
    files_free(&before);
    fx_rmdir_all(dir);
  }
}

static void test_gap_in_chain(void) {
  char dir[64];
  build(dir, sizeof dir, PERSIST_WAL);
  char p2[512];
  path_of(p2, sizeof p2, dir, fx_wal(2));
  IB_CHECK(unlink(p2) == 0);
  files before;
  files_read(dir, &before);
  store *s = mk();
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_EMISSING);
  TH_CHECK(strstr(ib_errmsg(), "missing") != NULL);
  store_destroy(s);
  persist_salvage_info sv;
  uint64_t lo[4] = {0, 0, 0, 0}, hi[4] = {0, 16, 0, 8}; /* actor 2's rows were in log 2 */
  salvage_check(dir, PERSIST_WAL, true, lo, hi, &before, &sv, "gap in the chain");
  TH_CHECK(sv.ckpt_loaded && !sv.ckpt_damaged);
  TH_CHECK_EQ_INT(sv.ckpt_items, 8);
  TH_CHECK_EQ_INT(sv.logs_read, 2);
  TH_CHECK_EQ_INT(sv.log_items, 16);
  TH_CHECK(strstr(sv.refusal, "missing") != NULL);
  files_free(&before);
  fx_rmdir_all(dir);
}

static void test_damaged_log(void) {
  char dir[64];
  build(dir, sizeof dir, PERSIST_WAL);
  /* Log 2's header, and the last record of log 3 (actor 3's [4, 8)): the strict restore refuses
   * the header (a torn last record alone it would cut off); the salvage loses all of log 2 and
   * log 3 from its damaged record on, and keeps the rest. */
  fx_flip_byte(dir, fx_wal(2), 20);
  const long rec4 = 16 + 4 * ((2 * FX_O + FX_A + 2) * 4 + 32);
  fx_flip_byte(dir, fx_wal(3), -rec4 / 2);
  files before;
  files_read(dir, &before);
  store *s = mk();
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_ECHECKSUM);
  TH_CHECK(strstr(ib_errmsg(), fx_wal(2)) != NULL);
  store_destroy(s);
  persist_salvage_info sv;
  uint64_t lo[4] = {0, 0, 0, 0}, hi[4] = {0, 16, 0, 4};
  salvage_check(dir, PERSIST_WAL, true, lo, hi, &before, &sv, "damaged log header and record");
  TH_CHECK(sv.ckpt_loaded);
  TH_CHECK_EQ_INT(sv.logs_read, 3);
  TH_CHECK_EQ_INT(sv.logs_damaged, 2);
  TH_CHECK_EQ_INT(sv.log_items, 12);
  TH_CHECK(sv.log_bytes_lost >= (uint64_t)rec4);
  files_free(&before);
  fx_rmdir_all(dir);
}

static void test_intact_directory(void) {
  char dir[64];
  build(dir, sizeof dir, PERSIST_WAL);
  persist_salvage_info sv;
  uint64_t lo[4] = {0, 0, 0, 0}, hi[4] = {0, 16, 8, 8};
  salvage_check(dir, PERSIST_WAL, false, lo, hi, NULL, &sv, "intact directory");
  TH_CHECK(sv.refusal[0] == '\0' && sv.files_aside == 0);
  fx_rmdir_all(dir);
}

static void test_other_specs_refused(void) {
  char dir[64];
  build(dir, sizeof dir, PERSIST_WAL);
  files before;
  files_read(dir, &before);
  store_spec sp[2];
  store_specs_default(sp, FX_O + 1, FX_A, 8, CAP);
  store *s = NULL;
  IB_CHECK(store_create(&s, sp, 2, NULL) == IB_OK);
  persist *p = NULL;
  persist_salvage_info sv;
  int rc = persist_open_salvage(&p, s, dir, PERSIST_WAL, NULL, &sv);
  TH_CHECK_MSG(rc == IB_EMISMATCH, "got %s: %s", ib_strerror(rc), ib_errmsg());
  TH_CHECK(strstr(ib_errmsg(), "obs_dim") != NULL && strstr(ib_errmsg(), "nothing changed") != NULL);
  TH_CHECK(p == NULL && !sv.salvaged);
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, "online"), &ti);
  TH_CHECK_EQ_INT(ti.size, 0);
  TH_CHECK(files_same(dir, &before));
  TH_CHECK_EQ_INT(count_aside(dir), 0);
  store_destroy(s);
  files_free(&before);
  fx_rmdir_all(dir);
}

/* The salvage's own checkpoint fails (a disk that refuses it): the shard starts with the rows and
 * refuses inserts; the directory still holds the old files (and the fresh log), so a second
 * salvage, on a good disk, keeps the same rows. */
static void test_salvage_twice(void) {
  char dir[64];
  build(dir, sizeof dir, PERSIST_WAL);
  fx_flip_byte(dir, "store.ckpt", 60);
  files before;
  files_read(dir, &before);
  char planted[512];
  path_of(planted, sizeof planted, dir, "store.ckpt.tmp");
  IB_CHECK(mkdir(planted, 0755) == 0);
  store *s = mk();
  persist *p = NULL;
  persist_restore_info ri;
  persist_salvage_info sv;
  TH_CHECK_EQ_INT(persist_open_salvage(&p, s, dir, PERSIST_WAL, &ri, &sv), IB_OK);
  TH_CHECK(sv.salvaged && ri.recovery_ckpt_failed);
  fx_item x;
  fx_fill(&x, 3, 50, STORE_PROPOSER_RL);
  TH_CHECK_EQ_INT(store_insert(s, "online", &x.it, 1, NULL), IB_EIO);
  persist_close(p);
  store_destroy(s);
  IB_CHECK(rmdir(planted) == 0);
  uint64_t lo[4] = {0, 8, 0, 0}, hi[4] = {0, 16, 8, 8};
  persist_salvage_info sv2;
  /* `before` is the first salvage's copy; the second one also holds the fresh empty log. */
  store *s2 = mk();
  p = NULL;
  TH_CHECK_EQ_INT(persist_open_salvage(&p, s2, dir, PERSIST_WAL, &ri, &sv2), IB_OK);
  TH_CHECK(sv2.salvaged && !ri.recovery_ckpt_failed);
  TH_CHECK(sv2.files_aside > before.n); /* and the logs the first salvage made */
  rows_are(s2, lo, hi, "second salvage");
  TH_CHECK_EQ_INT(count_aside(dir), 2);
  TH_CHECK(files_same(sv.aside, &before));
  persist_close(p);
  store_destroy(s2);
  files_free(&before);
  fx_rmdir_all(dir);
}

static const th_case cases[] = {
    {"damaged checkpoint: the logs' rows kept, files set aside", test_damaged_checkpoint},
    {"gap in the chain of logs: rows on both sides kept", test_gap_in_chain},
    {"damaged log header and record: kept up to the damage", test_damaged_log},
    {"intact directory: salvage is persist_open", test_intact_directory},
    {"other specs: refused, nothing changed", test_other_specs_refused},
    {"salvage whose checkpoint fails, then salvage again", test_salvage_twice},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
