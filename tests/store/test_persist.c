/* test_persist.c: checkpoints and the write-ahead log: round trips that compare every slot
 * (checkpoints are written by a forked child), damaged and mismatching checkpoints refused, log
 * replay with a torn tail, a log that is not the last one ending early (the later logs dropped,
 * the lost rows retried), the restore's own checkpoint (and its failure on a bad disk), stale
 * and missing logs, a failed checkpoint that keeps the log chain,
 * logged inserts racing with checkpoints, and a real crash: a forked child inserting with the
 * log is SIGKILLed mid-stream and every item it acknowledged must be restored. The cut itself
 * and machine crashes around it are in test_persist_cut.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ib.h"
#include "persist.h"
#include "rng.h"
#include "store.h"
#include "store_fixture.h"
#include "store_testdir.h"
#include "th.h"

/* ---- helpers ---- */

/* A log made by persist_open is its 44-byte header; one made by a checkpoint's cut also starts
 * with a link record (8 bytes of length and CRC, table and count, one item of FX_O/FX_A floats
 * and 32 bytes of metadata) naming the previous log's length. */
#define LOG_HDR 44
#define LOG_CUT (LOG_HDR + 16 + (2 * FX_O + FX_A + 2) * 4 + 32)

/* How many store.wal.* files `dir` holds. */
static int count_logs(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) n += strncmp(e->d_name, "store.wal.", 10) == 0;
  if (d) closedir(d);
  return n;
}

static long file_size(const char *dir, const char *name) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* Copies file dir_a/name_a to dir_b/name_b. */
static void copy_path(const char *dir_a, const char *name_a, const char *dir_b, const char *name_b) {
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/%s", dir_a, name_a);
  snprintf(b, sizeof b, "%s/%s", dir_b, name_b);
  FILE *f = fopen(a, "rb"), *g = fopen(b, "wb");
  IB_CHECK(f && g);
  char buf[4096];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0) IB_CHECK(fwrite(buf, 1, k, g) == k);
  fclose(f);
  fclose(g);
}

static void copy_file(const char *dir, const char *from, const char *to) { copy_path(dir, from, dir, to); }

static store *mk(uint64_t demo_cap, uint64_t online_cap) {
  store_spec sp[2];
  store_specs_default(sp, FX_O, FX_A, demo_cap, online_cap);
  store *s = NULL;
  IB_CHECK(store_create(&s, sp, 2, NULL) == IB_OK);
  return s;
}

static void put(store *s, const char *table, uint32_t actor, uint64_t from, uint64_t to, int bs) {
  fx_item xs[32];
  store_item v[32];
  IB_CHECK(bs <= 32);
  for (uint64_t q = from; q < to;) {
    int n = 0;
    while (n < bs && q < to)
      fx_fill(&xs[n++], actor, q++, actor == 9 ? STORE_PROPOSER_DEMO : STORE_PROPOSER_RL);
    fx_views(v, xs, n);
    int rc = store_insert(s, table, v, (size_t)n, NULL);
    TH_CHECK_MSG(rc == IB_OK, "insert: %s", ib_errmsg());
  }
}

/* slot -> key map of one table, found by sampling until every slot was seen (or a bound).
 * Every sampled row is also checked field by field. Returns the number of slots seen. */
static uint64_t slot_map(store *s, bool demo, uint64_t *map, uint64_t cap, int *bad_rows) {
  store_batch b;
  store_batch_init(&b, 256, FX_O, FX_A);
  rng r;
  rng_seed(&r, 11, "test", demo, "slots");
  int t = store_table_of_kind(s, demo ? STORE_DEMO : STORE_ONLINE);
  store_table_info ti;
  store_table_info_get(s, t, &ti);
  for (uint64_t i = 0; i < cap; i++) map[i] = UINT64_MAX;
  uint64_t seen = 0;
  for (int k = 0; k < 4000 && seen < ti.size; k++) {
    if (store_sample(s, &r, 256, demo ? 1.0 : 0.0, &b) != IB_OK) break;
    for (uint32_t i = 0; i < b.n; i++) {
      if (!fx_row_ok(&b, i)) (*bad_rows)++;
      if (map[b.slot[i]] == UINT64_MAX) seen++;
      map[b.slot[i]] = b.weight_version[i];
    }
  }
  store_batch_free(&b);
  return seen;
}

/* Checks that two stores hold the same items in the same slots and the same counters. The
 * duplicate counter is compared only for checkpoints: the log holds stored items, not the calls
 * that stored nothing. */
static void same_store_(store *a, store *b, uint64_t demo_cap, uint64_t online_cap, bool dups) {
  for (int demo = 0; demo <= 1; demo++) {
    uint64_t cap = demo ? demo_cap : online_cap;
    uint64_t *ma = calloc(cap, 8), *mb = calloc(cap, 8);
    int bad = 0;
    uint64_t na = slot_map(a, demo, ma, cap, &bad), nb = slot_map(b, demo, mb, cap, &bad);
    TH_CHECK_EQ_INT(na, nb);
    TH_CHECK_EQ_INT(bad, 0);
    int diff = 0;
    for (uint64_t i = 0; i < cap; i++) diff += ma[i] != mb[i];
    TH_CHECK_MSG(diff == 0, "%s table: %d slots differ", demo ? "demo" : "online", diff);
    int t = store_table_of_kind(a, demo ? STORE_DEMO : STORE_ONLINE);
    store_table_info ia, ib;
    store_table_info_get(a, t, &ia);
    store_table_info_get(b, t, &ib);
    TH_CHECK_EQ_INT(ia.size, ib.size);
    TH_CHECK_EQ_INT(ia.size, na);
    TH_CHECK_EQ_INT(ia.total_inserts, ib.total_inserts);
    TH_CHECK_EQ_INT(ia.total_evicted, ib.total_evicted);
    if (dups) TH_CHECK_EQ_INT(ia.duplicates, ib.duplicates);
    TH_CHECK_EQ_INT(ia.wv_min, ib.wv_min);
    TH_CHECK_EQ_INT(ia.wv_max, ib.wv_max);
    TH_CHECK_EQ_INT(ia.wv_last, ib.wv_last);
    TH_CHECK_EQ_INT(ia.episodes, ib.episodes);
    TH_CHECK_EQ_INT(ia.successes, ib.successes);
    TH_CHECK_EQ_INT(ia.actors, ib.actors);
    free(ma);
    free(mb);
  }
}

static void same_store(store *a, store *b, uint64_t demo_cap, uint64_t online_cap) {
  same_store_(a, b, demo_cap, online_cap, true);
}
static void same_items(store *a, store *b, uint64_t demo_cap, uint64_t online_cap) {
  same_store_(a, b, demo_cap, online_cap, false);
}

/* A store with wrapped online ring, demo items, two actors and some duplicates. */
static void fill(store *s) {
  put(s, "demo", 9, 0, 50, 7);
  put(s, "online", 1, 0, 30, 4);
  put(s, "online", 2, 0, 10, 3);
  put(s, "online", 1, 20, 34, 5); /* 20..29 are duplicates */
}

/* ---- checkpoint ---- */

static void test_ckpt_round_trip(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(64, 16);
  persist *pa = NULL;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_CKPT_ONLY, &ri), IB_OK);
  TH_CHECK(!ri.ckpt_found && !ri.wal_found);
  fill(a);
  persist_ckpt_info ci;
  TH_CHECK_EQ_INT(persist_checkpoint(pa, &ci), IB_OK);
  TH_CHECK_EQ_INT(ci.epoch, 1);
  TH_CHECK_EQ_INT(ci.items, 50 + 16);
  TH_CHECK_EQ_INT(file_size(dir, "store.ckpt"), (long)ci.bytes);
  TH_CHECK_EQ_INT(file_size(dir, "store.ckpt.tmp"), -1);
  TH_CHECK_EQ_INT(count_logs(dir), 0); /* checkpoint-only mode writes no log */
  TH_CHECK(ci.background);             /* written by a forked child */
  TH_CHECK(ci.blocked_seconds <= ci.seconds);

  persist_ckpt_summary sum;
  TH_CHECK_EQ_INT(persist_ckpt_inspect(dir, &sum), IB_OK);
  TH_CHECK_EQ_INT(sum.ntables, 2);
  TH_CHECK_EQ_INT(sum.epoch, 1);
  TH_CHECK(strcmp(sum.specs[1].name, "online") == 0);
  TH_CHECK_EQ_INT(sum.sizes[0], 50);
  TH_CHECK_EQ_INT(sum.sizes[1], 16);
  TH_CHECK_EQ_INT(sum.total_inserts[1], 44); /* 30 + 10 + 4 new of 14 */

  store *b = mk(64, 16);
  persist *pb = NULL;
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_CKPT_ONLY, &ri), IB_OK);
  TH_CHECK(ri.ckpt_found);
  TH_CHECK_EQ_INT(ri.ckpt_items, 66);
  same_store(a, b, 64, 16);
  /* The dedup state came back: a retried batch is all duplicates in both. */
  fx_item xs[4];
  store_item v[4];
  for (int i = 0; i < 4; i++) fx_fill(&xs[i], 1, (uint64_t)(30 + i), STORE_PROPOSER_RL);
  fx_views(v, xs, 4);
  store_insert_result r;
  TH_CHECK_EQ_INT(store_insert(b, "online", v, 4, &r), IB_OK);
  TH_CHECK_EQ_INT(r.duplicates, 4);
  TH_CHECK_EQ_INT(store_insert(a, "online", v, 4, &r), IB_OK);
  TH_CHECK_EQ_INT(r.duplicates, 4);
  /* The ring continues at the same head: one more item in both gives the same slots. */
  put(a, "online", 2, 10, 13, 3);
  put(b, "online", 2, 10, 13, 3);
  same_store(a, b, 64, 16);
  /* Per-actor success history is restored too. */
  store_actor_info x, y;
  TH_CHECK_EQ_INT(store_actor_get(a, 1, 1, &x), IB_OK);
  TH_CHECK_EQ_INT(store_actor_get(b, 1, 1, &y), IB_OK);
  TH_CHECK_EQ_INT(x.recent_successes, y.recent_successes);
  TH_CHECK_EQ_INT(x.episodes, y.episodes);
  TH_CHECK_EQ_INT(x.highest_seq, 33);
  TH_CHECK_EQ_INT(y.highest_seq, 33);
  persist_close(pa);
  persist_close(pb);
  store_destroy(a);
  store_destroy(b);
  fx_rmdir_all(dir);
}

/* Removes the checkpoint and the logs of `dir` (a restore writes its own checkpoint and log, so
 * a test that damages files in turn starts each from copies). */
static void clear_store(const char *dir) {
  char p[512];
  snprintf(p, sizeof p, "%s/store.ckpt", dir);
  unlink(p);
  for (uint64_t e = 0; e < 8; e++) {
    snprintf(p, sizeof p, "%s/%s", dir, fx_wal(e));
    unlink(p);
  }
}

/* clear_store, then log 0 from the copy `name`. */
static void restart_from(const char *dir, const char *name) {
  clear_store(dir);
  copy_file(dir, name, fx_wal(0));
}

static void truncate_by(const char *dir, const char *name, long bytes) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  long sz = file_size(dir, name);
  IB_CHECK(truncate(p, sz - bytes) == 0);
}

/* Opening a fresh store on `dir` must fail with `code` and a message holding `needle`; the
 * store must stay empty. */
static void expect_refused(const char *dir, uint64_t demo_cap, uint64_t online_cap, int code,
                           const char *needle) {
  store *s = mk(demo_cap, online_cap);
  persist *p = NULL;
  int rc = persist_open(&p, s, dir, PERSIST_CKPT_ONLY, NULL);
  TH_CHECK_MSG(rc == code, "expected %s, got %s: %s", ib_strerror(code), ib_strerror(rc),
               ib_errmsg());
  TH_CHECK_MSG(strstr(ib_errmsg(), needle) != NULL, "message '%s' lacks '%s'", ib_errmsg(), needle);
  TH_CHECK(p == NULL);
  for (int t = 0; t < 2; t++) {
    store_table_info ti;
    store_table_info_get(s, t, &ti);
    TH_CHECK_EQ_INT(ti.size, 0);
    TH_CHECK_EQ_INT(ti.total_inserts, 0);
  }
  store_destroy(s);
}

static void test_ckpt_corrupt_and_mismatch_refused(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(64, 16);
  persist *pa = NULL;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_CKPT_ONLY, NULL), IB_OK);
  fill(a);
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_OK);
  persist_close(pa);
  store_destroy(a);
  copy_file(dir, "store.ckpt", "wal.copy"); /* a pristine copy to restore between cases */

  /* Spec mismatches, each naming the field and both values. */
  expect_refused(dir, 64, 32, IB_EMISMATCH, "capacity is 16 in the checkpoint but 32");
  {
    store_spec sp[2];
    store_specs_default(sp, FX_O + 1, FX_A, 64, 16);
    store *s = NULL;
    IB_CHECK(store_create(&s, sp, 2, NULL) == IB_OK);
    persist *p = NULL;
    TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_CKPT_ONLY, NULL), IB_EMISMATCH);
    TH_CHECK(strstr(ib_errmsg(), "obs_dim is 5 in the checkpoint but 6") != NULL);
    store_destroy(s);
    store_specs_default(sp, FX_O, FX_A, 64, 16);
    snprintf(sp[1].name, STORE_NAME_MAX, "fresh");
    IB_CHECK(store_create(&s, sp, 2, NULL) == IB_OK);
    TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_CKPT_ONLY, NULL), IB_EMISMATCH);
    TH_CHECK(strstr(ib_errmsg(), "'online'") != NULL && strstr(ib_errmsg(), "'fresh'") != NULL);
    store_destroy(s);
  }
  /* A flipped byte in the records, in the header, in the CRC itself. */
  long sz = file_size(dir, "store.ckpt");
  long offs[] = {sz / 2, 3, sz - 12};
  for (size_t i = 0; i < IB_ARRAY_LEN(offs); i++) {
    copy_file(dir, "wal.copy", "store.ckpt");
    fx_flip_byte(dir, "store.ckpt", offs[i]);
    expect_refused(dir, 64, 16, IB_ECHECKSUM, "CRC-32");
  }
  /* Truncated: no end marker. Too short to be a checkpoint at all. */
  copy_file(dir, "wal.copy", "store.ckpt");
  truncate_by(dir, "store.ckpt", 100);
  expect_refused(dir, 64, 16, IB_EPROTO, "no end marker");
  truncate_by(dir, "store.ckpt", file_size(dir, "store.ckpt") - 10);
  expect_refused(dir, 64, 16, IB_EPROTO, "too short");
  persist_ckpt_summary sum;
  TH_CHECK_EQ_INT(persist_ckpt_inspect(dir, &sum), IB_EPROTO);
  /* The pristine copy still restores (the refusals changed nothing on disk). */
  copy_file(dir, "wal.copy", "store.ckpt");
  store *b = mk(64, 16);
  persist *pb = NULL;
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_CKPT_ONLY, NULL), IB_OK);
  persist_close(pb);
  store_destroy(b);
  /* No checkpoint at all: inspect says so; open starts empty. */
  fx_rmdir_all(dir);
  TH_CHECK_EQ_INT(persist_ckpt_inspect(dir, &sum), IB_ENOTFOUND);
  fx_rmdir_all(dir);
}

static void test_open_requires_empty_store(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *s = mk(8, 8);
  put(s, "online", 1, 0, 2, 2);
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_ESTATE);
  store_destroy(s);
  s = mk(8, 8);
  TH_CHECK_EQ_INT(persist_open(&p, s, "/proc/definitely/not/here", PERSIST_WAL, NULL), IB_EIO);
  TH_CHECK(strstr(ib_errmsg(), "/proc/definitely/not/here") != NULL);
  store_destroy(s);
  fx_rmdir_all(dir);
}

/* ---- write-ahead log ---- */

static void test_wal_recovery_and_truncation(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(64, 16);
  persist *pa = NULL;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(0)), LOG_HDR);
  fill(a);
  /* "Crash": drop the process state without a checkpoint. */
  persist_close(pa);
  store *b = mk(64, 16);
  persist *pb = NULL;
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK(!ri.ckpt_found && ri.wal_found && !ri.wal_stale);
  TH_CHECK_EQ_INT(ri.wal_records, 8 + 8 + 4 + 1); /* duplicates-only batches are not logged */
  TH_CHECK_EQ_INT(ri.wal_items, 50 + 30 + 10 + 4);
  TH_CHECK_EQ_INT(ri.wal_torn_bytes, 0);
  same_items(a, b, 64, 16);
  /* The restore ends with its own checkpoint (1): the replayed log is inside it and deleted. */
  TH_CHECK(ri.recovery_ckpt && !ri.recovery_ckpt_failed);
  TH_CHECK_EQ_INT(ri.recovery_ckpt_epoch, 1);
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(1)), LOG_CUT);
  TH_CHECK_EQ_INT(count_logs(dir), 1);
  /* Checkpoint truncates the log; later inserts go to the fresh log; restore = ckpt + log. */
  TH_CHECK_EQ_INT(persist_checkpoint(pb, NULL), IB_OK);
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(2)), LOG_CUT);
  TH_CHECK_EQ_INT(count_logs(dir), 1); /* log 1 is inside checkpoint 2 and was deleted */
  put(b, "online", 3, 0, 9, 4);
  put(a, "online", 3, 0, 9, 4);
  persist_close(pb);
  store *c = mk(64, 16);
  persist *pc = NULL;
  TH_CHECK_EQ_INT(persist_open(&pc, c, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK(ri.ckpt_found);
  TH_CHECK_EQ_INT(ri.ckpt_epoch, 2);
  TH_CHECK_EQ_INT(ri.wal_records, 3);
  TH_CHECK_EQ_INT(ri.wal_items, 9);
  same_items(a, c, 64, 16);
  persist_close(pc);
  store_destroy(a);
  store_destroy(b);
  store_destroy(c);
  fx_rmdir_all(dir);
}

/* Sets the version field of log `name`'s header and re-seals the header CRC. */
static void set_log_version(const char *dir, const char *name, uint32_t version) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_RDWR);
  IB_CHECK(fd >= 0);
  uint8_t h[LOG_HDR];
  IB_CHECK(pread(fd, h, LOG_HDR, 0) == LOG_HDR);
  memcpy(h + 8, &version, 4);
  uint32_t crc = ib_crc32(0, h, 36);
  memcpy(h + 36, &crc, 4);
  IB_CHECK(pwrite(fd, h, LOG_HDR, 0) == LOG_HDR);
  close(fd);
}

/* Logs are version 2 (a cut's log starts with a link). A version 1 log (no links, written before
 * the cut stopped flushing) still replays (and the restore's checkpoint replaces it with a
 * version 2 log); a newer version is refused with a message naming it, and so is a link record
 * inside a version 1 log. */
static void test_wal_versions(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(64, 16);
  persist *pa = NULL;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_WAL, &ri), IB_OK);
  fill(a);
  persist_close(pa);
  /* The first log has no link: as version 1 it replays exactly. */
  set_log_version(dir, fx_wal(0), 1);
  store *b = mk(64, 16);
  persist *pb = NULL;
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK_EQ_INT(ri.wal_items, 50 + 30 + 10 + 4);
  same_items(a, b, 64, 16);
  TH_CHECK(ri.recovery_ckpt && !ri.recovery_ckpt_failed);
  /* Appended to after the upgrade (log 1), then cut: every new log is version 2 with its link. */
  put(b, "online", 3, 0, 9, 4);
  put(a, "online", 3, 0, 9, 4);
  TH_CHECK_EQ_INT(persist_checkpoint(pb, NULL), IB_OK);
  put(b, "online", 4, 0, 5, 4);
  put(a, "online", 4, 0, 5, 4);
  persist_close(pb);
  store *c = mk(64, 16);
  persist *pc = NULL;
  TH_CHECK_EQ_INT(persist_open(&pc, c, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK_EQ_INT(ri.wal_items, 5);
  same_items(a, c, 64, 16);
  persist_close(pc);
  /* The only log now is the restore checkpoint's fresh one: its link, nothing else. */
  uint64_t last = ri.recovery_ckpt_epoch;
  TH_CHECK_EQ_INT(last, 3);
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(last)), LOG_CUT);
  /* A log from a newer binary is refused by its version. */
  set_log_version(dir, fx_wal(last), 3);
  expect_refused(dir, 64, 16, IB_EMISMATCH, "version 3");
  /* A link record in a version 1 log is damage, not a link. */
  set_log_version(dir, fx_wal(last), 1);
  expect_refused(dir, 64, 16, IB_EPROTO, "link record");
  store_destroy(a);
  store_destroy(b);
  store_destroy(c);
  fx_rmdir_all(dir);
}

/* Draws the same 30 batches from two stores with the same rng seed: equal sizes give equal slots,
 * so equal contents give equal rows. Every row is also checked field by field. */
static void same_samples(store *a, store *b) {
  store_batch x, y;
  store_batch_init(&x, 256, FX_O, FX_A);
  store_batch_init(&y, 256, FX_O, FX_A);
  rng ra, rb;
  rng_seed(&ra, 12, "test", 0, "same-samples");
  rng_seed(&rb, 12, "test", 0, "same-samples");
  int bad = 0, diff = 0;
  for (int k = 0; k < 30; k++) {
    TH_CHECK_EQ_INT(store_sample(a, &ra, 256, -1.0, &x), IB_OK);
    TH_CHECK_EQ_INT(store_sample(b, &rb, 256, -1.0, &y), IB_OK);
    for (uint32_t i = 0; i < x.n; i++) {
      bad += !fx_row_ok(&x, i) + !fx_row_ok(&y, i);
      diff += x.slot[i] != y.slot[i] || x.weight_version[i] != y.weight_version[i] || x.seq[i] != y.seq[i] ||
              memcmp(&x.obs[i * FX_O], &y.obs[i * FX_O], sizeof(float) * FX_O) != 0;
    }
  }
  TH_CHECK_EQ_INT(bad, 0);
  TH_CHECK_EQ_INT(diff, 0);
  store_batch_free(&x);
  store_batch_free(&y);
}

/* The huge-page arena (an online table of >= 8 MiB of records, written with streaming stores)
 * through a checkpoint and a log replay: the restored store samples exactly the same rows. */
static void test_large_arena_ckpt_and_wal(void) {
  enum { CAP = 140000 }; /* 64-byte records: 8.96 MB */
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(64, CAP);
  persist *pa = NULL;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_WAL, &ri), IB_OK);
  put(a, "demo", 9, 0, 50, 32);
  for (uint32_t k = 1; k <= 8; k++) put(a, "online", k, 0, 10000, 32);
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_OK);
  for (uint32_t k = 10; k <= 16; k++) put(a, "online", k, 0, 10000, 32); /* wraps the ring */
  persist_close(pa);
  store *b = mk(64, CAP);
  persist *pb = NULL;
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK(ri.ckpt_found && ri.wal_found);
  TH_CHECK_EQ_INT(ri.wal_items, 70000);
  same_samples(a, b);
  persist_close(pb);
  store_destroy(a);
  store_destroy(b);
  fx_rmdir_all(dir);
}

static void test_wal_torn_tail(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(8, 64);
  persist *pa = NULL;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_WAL, NULL), IB_OK);
  put(a, "online", 1, 0, 12, 4); /* three records */
  persist_close(pa);
  copy_file(dir, fx_wal(0), "w0.copy"); /* each damage below starts from this log */
  /* Tear the last record: cut 10 bytes off its end. */
  truncate_by(dir, fx_wal(0), 10);
  store *b = mk(8, 64);
  persist *pb = NULL;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK_EQ_INT(ri.wal_records, 2);
  TH_CHECK_EQ_INT(ri.wal_items, 8);
  TH_CHECK(ri.wal_torn_bytes > 0);
  store_actor_info ai;
  TH_CHECK_EQ_INT(store_actor_get(b, 1, 1, &ai), IB_OK);
  TH_CHECK_EQ_INT(ai.highest_seq, 7);
  /* The restore's checkpoint holds the 8 rows; the actor's retry of the unacknowledged batch
   * lands in the fresh log. */
  TH_CHECK(ri.recovery_ckpt && !ri.recovery_ckpt_failed);
  TH_CHECK_EQ_INT(count_logs(dir), 1);
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(1)), LOG_CUT);
  put(b, "online", 1, 8, 12, 4);
  persist_close(pb);
  store *c = mk(8, 64);
  persist *pc = NULL;
  TH_CHECK_EQ_INT(persist_open(&pc, c, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK_EQ_INT(ri.ckpt_epoch, 1);
  TH_CHECK_EQ_INT(ri.ckpt_items, 8);
  TH_CHECK_EQ_INT(ri.wal_records, 1);
  TH_CHECK_EQ_INT(ri.wal_torn_bytes, 0);
  same_items(a, c, 8, 64);
  persist_close(pc);
  /* A flipped byte in the last record's payload is a CRC mismatch: dropped the same way. */
  restart_from(dir, "w0.copy");
  fx_flip_byte(dir, fx_wal(0), -5);
  store *d = mk(8, 64);
  persist *pd = NULL;
  TH_CHECK_EQ_INT(persist_open(&pd, d, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK_EQ_INT(ri.wal_records, 2);
  TH_CHECK(ri.wal_torn_bytes > 0);
  persist_close(pd);
  /* A damaged log header is refused, not silently ignored. */
  restart_from(dir, "w0.copy");
  fx_flip_byte(dir, fx_wal(0), 20);
  store *e = mk(8, 64);
  persist *pe = NULL;
  TH_CHECK_EQ_INT(persist_open(&pe, e, dir, PERSIST_WAL, &ri), IB_ECHECKSUM);
  TH_CHECK(strstr(ib_errmsg(), fx_wal(0)) != NULL);
  store_destroy(a);
  store_destroy(b);
  store_destroy(c);
  store_destroy(d);
  store_destroy(e);
  fx_rmdir_all(dir);
}

/* Inserts actor's seqs [from, to) in one call; returns how many were stored (checks the call). */
static uint64_t put_count(store *s, uint32_t actor, uint64_t from, uint64_t to) {
  fx_item xs[32];
  store_item v[32];
  IB_CHECK(to - from <= 32);
  int n = 0;
  for (uint64_t q = from; q < to; q++) fx_fill(&xs[n++], actor, q, STORE_PROPOSER_RL);
  fx_views(v, xs, n);
  store_insert_result r;
  int rc = store_insert(s, "online", v, (size_t)n, &r);
  TH_CHECK_MSG(rc == IB_OK, "insert: %s", ib_errmsg());
  return r.stored;
}

/* A machine crash after a cut but before the previous log's tail reached the disk: log 1 (not the
 * last) ends early, and log 2 holds records stored after the lost ones (none acknowledged, since
 * acks there wait for log 1 to be durable). Restore must drop log 2 and cut log 1, so the actor's
 * retries of the lost rows are stored, not refused as duplicates: log 2 runs its seqs more than
 * the dedup window (1024) past them. Three ways log 1 ends early: a torn record (CRC), a whole
 * last record missing (only the next log's link can tell), and one record too many (damage the
 * link reveals: refused). */
static void test_wal_torn_nonlast_log(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(8, 4096);
  persist *pa = NULL;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_WAL, NULL), IB_OK);
  put(a, "online", 1, 0, 40, 4);                        /* log 0 */
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_OK); /* checkpoint 1, log 1 */
  put(a, "online", 1, 40, 80, 4);                       /* log 1: 10 records of 4 items */
  char planted[512];
  snprintf(planted, sizeof planted, "%s/store.ckpt.tmp", dir);
  IB_CHECK(mkdir(planted, 0755) == 0);
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_EIO); /* cut 2 happened: log 2 exists */
  rmdir(planted);
  put(a, "online", 1, 80, 1280, 20); /* log 2: far past the window */
  put(a, "online", 2, 0, 8, 4);
  persist_close(pa);
  store_destroy(a);
  const long rec = 16 + 4 * (LOG_CUT - LOG_HDR - 16); /* a record of 4 items */
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(1)), LOG_CUT + 10 * rec);
  copy_file(dir, fx_wal(1), "w1.copy");
  copy_file(dir, fx_wal(2), "w2.copy");
  copy_file(dir, "store.ckpt", "ckpt.copy");
  for (int mode = 0; mode < 3; mode++) {
    clear_store(dir); /* each mode starts from the files above */
    copy_file(dir, "w1.copy", fx_wal(1));
    copy_file(dir, "w2.copy", fx_wal(2));
    copy_file(dir, "ckpt.copy", "store.ckpt");
    if (mode == 0) truncate_by(dir, fx_wal(1), 10);  /* the last record torn */
    if (mode == 1) truncate_by(dir, fx_wal(1), rec); /* the last record never written back */
    if (mode == 2) {                              /* a record more than the link says */
      char p[512];
      snprintf(p, sizeof p, "%s/%s", dir, fx_wal(1));
      /* A valid record of 4 items: the first record after the link, appended again. */
      FILE *g = fopen(p, "ab"), *h = fopen(p, "rb");
      IB_CHECK(g != NULL);
      IB_CHECK(h != NULL);
      char *buf = malloc((size_t)rec);
      IB_CHECK(fseek(h, LOG_CUT, SEEK_SET) == 0 && fread(buf, 1, (size_t)rec, h) == (size_t)rec);
      IB_CHECK(fwrite(buf, 1, (size_t)rec, g) == (size_t)rec);
      free(buf);
      fclose(h);
      fclose(g);
      store *b = mk(8, 4096);
      persist *pb = NULL;
      TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, NULL), IB_EPROTO);
      TH_CHECK_MSG(strstr(ib_errmsg(), fx_wal(2)) != NULL && strstr(ib_errmsg(), "link") != NULL,
                   "message: %s", ib_errmsg());
      TH_CHECK(pb == NULL);
      TH_CHECK(file_size(dir, fx_wal(2)) > LOG_CUT); /* a refusal deletes nothing */
      store_destroy(b);
      continue;
    }
    long w2 = file_size(dir, fx_wal(2));
    store *b = mk(8, 4096);
    persist *pb = NULL;
    persist_restore_info ri;
    TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, &ri), IB_OK);
    TH_CHECK_EQ_INT(ri.ckpt_epoch, 1);
    TH_CHECK_EQ_INT(ri.ckpt_items, 40);
    TH_CHECK_EQ_INT(ri.wal_records, 9);
    TH_CHECK_EQ_INT(ri.wal_torn_bytes, (mode == 0 ? rec - 10 : 0));
    TH_CHECK_EQ_INT(ri.wal_dropped_logs, 1);
    TH_CHECK_EQ_INT(ri.wal_dropped_bytes, w2 - LOG_HDR);
    /* Log 2 was dropped, log 1 cut to its 9 intact records; then the restore's checkpoint (2,
     * the next epoch after log 1) took them in and started a fresh log 2. */
    TH_CHECK(ri.recovery_ckpt && !ri.recovery_ckpt_failed);
    TH_CHECK_EQ_INT(ri.recovery_ckpt_epoch, 2);
    TH_CHECK_EQ_INT(file_size(dir, fx_wal(1)), -1);
    TH_CHECK_EQ_INT(file_size(dir, fx_wal(2)), LOG_CUT);
    TH_CHECK_EQ_INT(count_logs(dir), 1);
    store_actor_info ai;
    TH_CHECK_EQ_INT(store_actor_get(b, 1, 1, &ai), IB_OK);
    TH_CHECK_EQ_INT(ai.highest_seq, 75);
    TH_CHECK_EQ_INT(ai.inserts, 76);
    TH_CHECK_EQ_INT(store_actor_get(b, 1, 2, &ai), IB_ENOTFOUND);
    /* The lost rows and the dropped ones, retried: all stored again, none a duplicate. */
    TH_CHECK_EQ_INT(put_count(b, 1, 76, 80), 4);
    uint64_t stored = 0;
    for (uint64_t q = 80; q < 1280; q += 20) stored += put_count(b, 1, q, q + 20);
    TH_CHECK_EQ_INT(stored, 1200);
    TH_CHECK_EQ_INT(put_count(b, 2, 0, 8), 8);
    persist_close(pb);
    /* They went to the fresh log 2: the next restore has every row once. */
    store *c = mk(8, 4096);
    persist *pc = NULL;
    TH_CHECK_EQ_INT(persist_open(&pc, c, dir, PERSIST_WAL, &ri), IB_OK);
    TH_CHECK_EQ_INT(ri.wal_dropped_logs, 0);
    TH_CHECK_EQ_INT(ri.wal_torn_bytes, 0);
    store_table_info ti;
    store_table_info_get(c, 1, &ti);
    TH_CHECK_EQ_INT(ti.size, 1288);
    TH_CHECK_EQ_INT(ti.total_inserts, 1288);
    persist_close(pc);
    store_destroy(b);
    store_destroy(c);
  }
  fx_rmdir_all(dir);
}

static void test_wal_stale_and_orphan(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(8, 64);
  persist *pa = NULL;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_WAL, NULL), IB_OK);
  put(a, "online", 1, 0, 12, 4);
  copy_file(dir, fx_wal(0), "wal.copy"); /* the log as it was just before the checkpoint */
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_OK);
  persist_close(pa);
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(0)), -1);
  /* Crash after the checkpoint, before the old log was deleted: log 0 next to checkpoint 1.
   * Its records are in the checkpoint and must not be applied twice. */
  copy_file(dir, "wal.copy", fx_wal(0));
  store *b = mk(8, 64);
  persist *pb = NULL;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK(ri.wal_stale);
  TH_CHECK_EQ_INT(ri.wal_records, 0);
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(0)), -1);
  same_store(a, b, 8, 64);
  put(b, "online", 1, 12, 16, 4);
  persist_close(pb);
  /* Log 1 continues checkpoint 1; without that checkpoint it is refused. */
  copy_file(dir, "store.ckpt", "ckpt.copy");
  char p[512];
  snprintf(p, sizeof p, "%s/store.ckpt", dir);
  unlink(p);
  store *c = mk(8, 64);
  persist *pc = NULL;
  TH_CHECK_EQ_INT(persist_open(&pc, c, dir, PERSIST_WAL, &ri), IB_EMISSING);
  TH_CHECK(strstr(ib_errmsg(), "missing") != NULL);
  copy_file(dir, "ckpt.copy", "store.ckpt");
  store_destroy(a);
  store_destroy(b);
  store_destroy(c);
  fx_rmdir_all(dir);
}

static void test_failed_checkpoint_keeps_log_chain(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(8, 64);
  persist *pa = NULL;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_WAL, NULL), IB_OK);
  put(a, "online", 1, 0, 8, 4);
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_OK); /* checkpoint 1, log 1 */
  put(a, "online", 1, 8, 16, 4);
  /* A directory where the temporary checkpoint goes makes the next checkpoint fail. */
  char p[512];
  snprintf(p, sizeof p, "%s/store.ckpt.tmp", dir);
  IB_CHECK(mkdir(p, 0755) == 0);
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_EIO); /* cut 2 happened: log 2 exists */
  TH_CHECK(strstr(ib_errmsg(), "store.ckpt.tmp") != NULL &&
           strstr(ib_errmsg(), "still valid") != NULL);
  put(a, "online", 2, 0, 8, 4); /* goes to log 2 */
  TH_CHECK_EQ_INT(count_logs(dir), 2);
  persist_close(pa);
  /* Restore = checkpoint 1 + log 1 + log 2. The restore's own checkpoint (3) fails on the same
   * disk: the restore stands, but inserts are refused until a checkpoint succeeds. */
  store *b = mk(8, 64);
  persist *pb = NULL;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK_EQ_INT(ri.ckpt_epoch, 1);
  TH_CHECK_EQ_INT(ri.wal_records, 4);
  TH_CHECK(ri.recovery_ckpt && ri.recovery_ckpt_failed);
  same_items(a, b, 8, 64);
  persist_health h;
  persist_health_get(pb, &h);
  TH_CHECK(h.needs_checkpoint && h.refusing && h.undurable);
  TH_CHECK(strstr(h.cause, "store.ckpt.tmp") != NULL);
  fx_item x;
  fx_fill(&x, 3, 0, STORE_PROPOSER_RL);
  TH_CHECK_EQ_INT(store_insert(b, "online", &x.it, 1, NULL), IB_EIO);
  /* Once the disk is fine again, the next checkpoint (4) replaces the whole chain. */
  rmdir(p);
  persist_ckpt_info ci;
  TH_CHECK_EQ_INT(persist_checkpoint(pb, &ci), IB_OK);
  TH_CHECK_EQ_INT(ci.epoch, 4);
  persist_health_get(pb, &h);
  TH_CHECK(!h.needs_checkpoint && !h.refusing && !h.undurable);
  TH_CHECK_EQ_INT(count_logs(dir), 1);
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(4)), LOG_CUT);
  persist_close(pb);
  /* A gap in the chain (log 4 kept, log 5 missing, log 6 present) is refused. */
  copy_file(dir, fx_wal(4), fx_wal(6));
  store *c = mk(8, 64);
  persist *pc = NULL;
  TH_CHECK_EQ_INT(persist_open(&pc, c, dir, PERSIST_WAL, &ri), IB_EMISSING);
  TH_CHECK(strstr(ib_errmsg(), "missing") != NULL);
  snprintf(p, sizeof p, "%s/%s", dir, fx_wal(6));
  unlink(p);
  /* A renamed log (file 5 whose header says 4) is refused too. */
  copy_file(dir, fx_wal(4), fx_wal(5));
  TH_CHECK_EQ_INT(persist_open(&pc, c, dir, PERSIST_WAL, &ri), IB_EPROTO);
  TH_CHECK(strstr(ib_errmsg(), "renamed") != NULL);
  store_destroy(a);
  store_destroy(b);
  store_destroy(c);
  fx_rmdir_all(dir);
}

static void test_wal_batch_limit_mismatch(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store_spec sp[2];
  store_specs_default(sp, FX_O, FX_A, 8, 64);
  store_config big = {.max_insert_batch = 64}, small = {.max_insert_batch = 16};
  store *a = NULL, *b = NULL;
  IB_CHECK(store_create(&a, sp, 2, &big) == IB_OK);
  persist *pa = NULL, *pb = NULL;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_WAL, NULL), IB_OK);
  put(a, "online", 1, 0, 32, 32); /* one record of 32 items */
  persist_close(pa);
  long before = file_size(dir, fx_wal(0));
  /* A store that only takes batches of 16 refuses the log instead of cutting it as torn. */
  IB_CHECK(store_create(&b, sp, 2, &small) == IB_OK);
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, NULL), IB_EMISMATCH);
  TH_CHECK(strstr(ib_errmsg(), "max_insert_batch 16") != NULL);
  TH_CHECK_EQ_INT(file_size(dir, fx_wal(0)), before);
  store_destroy(a);
  store_destroy(b);
  fx_rmdir_all(dir);
}

/* ---- group commit and checkpoints under concurrent inserts ---- */

typedef struct wal_worker {
  store *s;
  uint32_t actor;
  int errors;
} wal_worker;

static void *wal_inserter(void *arg) {
  wal_worker *w = arg;
  fx_item xs[8];
  store_item v[8];
  for (uint64_t q = 0; q < 400; q += 8) {
    for (int i = 0; i < 8; i++) fx_fill(&xs[i], w->actor, q + (uint64_t)i, STORE_PROPOSER_RL);
    fx_views(v, xs, 8);
    if (store_insert(w->s, "online", v, 8, NULL) != IB_OK) w->errors++;
  }
  return NULL;
}

typedef struct ckpt_worker {
  persist *p;
  int count, errors;
} ckpt_worker;

static void *checkpointer(void *arg) {
  ckpt_worker *c = arg;
  for (int i = 0; i < 5; i++) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    if (persist_checkpoint(c->p, NULL) != IB_OK)
      c->errors++;
    else
      c->count++;
  }
  return NULL;
}

static void test_wal_concurrent_with_checkpoints(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  store *a = mk(8, 2048);
  persist *pa = NULL;
  TH_CHECK_EQ_INT(persist_open(&pa, a, dir, PERSIST_WAL, NULL), IB_OK);
  wal_worker w[3] = {{a, 1, 0}, {a, 2, 0}, {a, 3, 0}};
  ckpt_worker c = {pa, 0, 0};
  pthread_t th[4];
  for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, wal_inserter, &w[i]);
  pthread_create(&th[3], NULL, checkpointer, &c);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  TH_CHECK_EQ_INT(w[0].errors + w[1].errors + w[2].errors, 0);
  TH_CHECK_EQ_INT(c.errors, 0);
  TH_CHECK_EQ_INT(c.count, 5);
  persist_close(pa);
  /* Whatever interleaving happened, checkpoint + log restore exactly the same store. */
  store *b = mk(8, 2048);
  persist *pb = NULL;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(persist_open(&pb, b, dir, PERSIST_WAL, &ri), IB_OK);
  TH_CHECK_EQ_INT(ri.ckpt_epoch, 5);
  store_table_info ti;
  store_table_info_get(b, 1, &ti);
  TH_CHECK_EQ_INT(ti.total_inserts, 1200);
  same_items(a, b, 8, 2048);
  persist_close(pb);
  store_destroy(a);
  store_destroy(b);
  fx_rmdir_all(dir);
}

/* ---- crash: SIGKILL a child in the middle of logged inserts ---- */

#define CRASH_CAP 8192

typedef struct crash_ckpt {
  persist *p;
} crash_ckpt;

/* Checkpoints every ~15 ms until the process is killed. */
static void *crash_checkpointer(void *arg) {
  crash_ckpt *c = arg;
  for (;;) {
    struct timespec ts = {0, 15 * 1000000L};
    nanosleep(&ts, NULL);
    if (persist_checkpoint(c->p, NULL) != IB_OK) _exit(6);
  }
  return NULL;
}

static void crash_child(const char *dir, int wfd, bool checkpoints) {
  store *s = mk(8, CRASH_CAP);
  persist *p = NULL;
  if (persist_open(&p, s, dir, PERSIST_WAL, NULL) != IB_OK) _exit(3);
  static crash_ckpt cc;
  cc.p = p;
  pthread_t th;
  if (checkpoints && pthread_create(&th, NULL, crash_checkpointer, &cc) != 0) _exit(7);
  fx_item xs[4];
  store_item v[4];
  for (uint64_t q = 0; q + 4 <= CRASH_CAP / 2; q += 4) {
    for (int i = 0; i < 4; i++) fx_fill(&xs[i], 1, q + (uint64_t)i, STORE_PROPOSER_RL);
    fx_views(v, xs, 4);
    if (store_insert(s, "online", v, 4, NULL) != IB_OK) _exit(4);
    uint64_t acked = q + 3; /* acknowledged: seqs <= acked are durable */
    if (write(wfd, &acked, sizeof acked) != (ssize_t)sizeof acked) _exit(5);
  }
  for (;;) pause(); /* wait for the kill */
}

static void crash_run(bool checkpoints) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  int fds[2];
  IB_CHECK(pipe(fds) == 0);
  fflush(NULL);
  pid_t pid = fork();
  IB_CHECK(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(dir, fds[1], checkpoints);
    _exit(0);
  }
  close(fds[1]);
  /* Read acknowledgements for a while, then kill in the middle of the stream. */
  uint64_t acked = 0, got = 0, v;
  uint64_t t_end = ib_now_ns() + 400000000ull;
  while (ib_now_ns() < t_end && got < 600) {
    ssize_t k = read(fds[0], &v, sizeof v);
    if (k != (ssize_t)sizeof v) break;
    acked = v;
    got++;
  }
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  TH_CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
               "child did not die by SIGKILL (status %d)", st);
  /* Acknowledgements already in the pipe count too. */
  while (read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) {
    acked = v;
    got++;
  }
  close(fds[0]);
  TH_CHECK_MSG(got > 0, "the child acknowledged nothing");
  if (got == 0) {
    fx_rmdir_all(dir);
    return;
  }
  store *s = mk(8, CRASH_CAP);
  persist *p = NULL;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, &ri), IB_OK);
  store_table_info ti;
  store_table_info_get(s, 1, &ti);
  printf("  crash%s: %llu batches acknowledged (last seq %llu), restored %llu items: checkpoint "
         "epoch %llu with %llu, then %llu log records; torn tail %llu bytes\n",
         checkpoints ? " during checkpoints" : "", (unsigned long long)got,
         (unsigned long long)acked, (unsigned long long)ti.size, (unsigned long long)ri.ckpt_epoch,
         (unsigned long long)ri.ckpt_items, (unsigned long long)ri.wal_records,
         (unsigned long long)ri.wal_torn_bytes);
  TH_CHECK(ti.size >= acked + 1);
  /* Slot q holds seq q (FIFO from slot 0, no eviction): check every acknowledged one. */
  uint64_t *map = calloc(CRASH_CAP, 8);
  int bad = 0;
  slot_map(s, false, map, CRASH_CAP, &bad);
  TH_CHECK_EQ_INT(bad, 0);
  uint64_t missing = 0;
  for (uint64_t q = 0; q <= acked; q++) missing += map[q] != fx_key(1, q);
  TH_CHECK_MSG(missing == 0, "%llu acknowledged items missing after the crash",
               (unsigned long long)missing);
  free(map);
  persist_close(p);
  store_destroy(s);
  fx_rmdir_all(dir);
}

static void test_crash_sigkill_keeps_acknowledged(void) { crash_run(false); }

/* The same while another thread checkpoints every ~15 ms: the kill can land during a cut, while a
 * background writer runs (it dies with its parent), or between checkpoint and log cleanup. */
static void test_crash_during_checkpoints(void) { crash_run(true); }

/* Copies the fixture file tests/data/<name>/store.ckpt into dir. */
static void fixture_copy(const char *name, const char *dir) {
  char src[512], dst[600];
  snprintf(src, sizeof src, "%s/%s/store.ckpt", IB_TESTDATA_DIR, name);
  snprintf(dst, sizeof dst, "%s/store.ckpt", dir);
  FILE *f = fopen(src, "rb"), *g = fopen(dst, "wb");
  TH_CHECK_MSG(f != NULL, "cannot open the fixture %s", src);
  IB_CHECK(g != NULL);
  char buf[8192];
  size_t k;
  while (f && (k = fread(buf, 1, sizeof buf, f)) > 0) IB_CHECK(fwrite(buf, 1, k, g) == k);
  if (f) fclose(f);
  fclose(g);
}

/* A checkpoint written before records carried a copy of their metadata (commit d29a116; made by
 * tests/store/store_ckpt_fixture.c, which says how): its record pads are zero, and the store reads
 * sampled rows' metadata from the pad. After the restore every sampled row must still carry the
 * metadata it was inserted with. */
static void test_restore_prepad_checkpoint(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  fixture_copy("store-ckpt-prepad", dir);
  store_spec sp[2];
  store_specs_default(sp, 3, 2, 16, 64); /* as the fixture */
  store *s = NULL;
  IB_CHECK(store_create(&s, sp, 2, NULL) == IB_OK);
  persist *p = NULL;
  persist_restore_info ri;
  TH_CHECK_MSG(persist_open(&p, s, dir, PERSIST_CKPT_ONLY, &ri) == IB_OK, "restore: %s", ib_errmsg());
  TH_CHECK(ri.ckpt_found);
  store_batch b;
  store_batch_init(&b, 64, 3, 2);
  rng g2;
  rng_seed(&g2, 5, "test", 0, "prepad");
  int bad = 0, rows = 0, seen[40] = {0};
  for (int rep = 0; rep < 20; rep++) {
    TH_CHECK_EQ_INT(store_sample(s, &g2, 64, 0.0, &b), IB_OK);
    for (uint32_t r = 0; r < b.n; r++) {
      int i = (int)b.reward[r];
      if (i < 0 || i >= 40 || b.obs[r * 3] != (float)i) {
        bad++;
        continue;
      }
      seen[i] = 1;
      rows++;
      bad += b.seq[r] != 1000u + (uint64_t)i || b.weight_version[r] != 5000000000ull + (uint64_t)i;
      bad += b.actor_id[r] != 7u + (uint32_t)(i % 2) || b.proposer[r] != i % 3;
      bad += b.episode_end[r] != (i % 5 == 4) || b.episode_success[r] != (i % 10 == 9);
    }
  }
  int distinct = 0;
  for (int i = 0; i < 40; i++) distinct += seen[i];
  TH_CHECK_MSG(bad == 0, "%d metadata mismatches in %d sampled rows after restoring a pre-copy checkpoint", bad, rows);
  TH_CHECK_MSG(distinct == 40, "only %d of the 40 rows were sampled", distinct);
  store_batch_free(&b);
  persist_close(p);
  store_destroy(s);
  fx_rmdir_all(dir);
}

/* Inserts actor `actor`'s seqs q[0..n) one by one and returns how many were stored. */
static int insert_seqs(store *s, uint32_t actor, const uint64_t *q, int n) {
  int stored = 0;
  for (int i = 0; i < n; i++) {
    fx_item x;
    fx_fill(&x, actor, q[i], STORE_PROPOSER_RL);
    store_insert_result r;
    TH_CHECK_MSG(store_insert(s, "online", &x.it, 1, &r) == IB_OK, "insert: %s", ib_errmsg());
    stored += (int)r.stored;
  }
  return stored;
}

/* A checkpoint of format 1 (dedup windows of 1024 seqs; made by tests/store/store_ckpt_fixture.c,
 * which says how): actor 7 stored seqs 0..2999 but 2500, actor 9 seqs 0..9. Format 1 took every
 * seq more than 1024 below an actor's highest as stored, so the wider window of format 2 must too:
 * after the restore, 2500 and 3000 are new, and 100, 1500 (old) and 2000 (in the old window) are
 * duplicates. A checkpoint written now is of format 2 and restores the same windows. */
static void test_restore_v1_window_checkpoint(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  fixture_copy("store-ckpt-v1", dir);
  persist_ckpt_summary sum;
  TH_CHECK_MSG(persist_ckpt_inspect(dir, &sum) == IB_OK, "inspect: %s", ib_errmsg());
  TH_CHECK_EQ_INT((int)sum.version, 1);
  for (int round = 0; round < 2; round++) {
    store *s = fx_store(64);
    persist *p = NULL;
    persist_restore_info ri;
    TH_CHECK_MSG(persist_open(&p, s, dir, PERSIST_CKPT_ONLY, &ri) == IB_OK, "restore: %s", ib_errmsg());
    TH_CHECK(ri.ckpt_found);
    store_actor_info ai;
    TH_CHECK_EQ_INT(store_actor_get(s, 1, 7, &ai), IB_OK);
    TH_CHECK_EQ_INT((long)ai.highest_seq, round == 0 ? 2999 : 3000);
    TH_CHECK_EQ_INT((long)ai.inserts, round == 0 ? 2999 : 3001);
    const uint64_t old[] = {100, 1500, 1975, 2000, 2999};
    TH_CHECK_EQ_INT(insert_seqs(s, 7, old, 5), 0);
    if (round == 0) {
      const uint64_t fresh[] = {2500, 3000};
      TH_CHECK_EQ_INT(insert_seqs(s, 7, fresh, 2), 2);
      const uint64_t nine[] = {3, 9, 10};
      TH_CHECK_EQ_INT(insert_seqs(s, 9, nine, 3), 1); /* only 10 */
      persist_ckpt_info ci;
      TH_CHECK_MSG(persist_checkpoint(p, &ci) == IB_OK, "checkpoint: %s", ib_errmsg());
      TH_CHECK_MSG(persist_ckpt_inspect(dir, &sum) == IB_OK, "inspect: %s", ib_errmsg());
      TH_CHECK_EQ_INT((int)sum.version, 2);
    } else {
      const uint64_t again[] = {2500, 3000};
      TH_CHECK_EQ_INT(insert_seqs(s, 7, again, 2), 0);
      const uint64_t next[] = {3001};
      TH_CHECK_EQ_INT(insert_seqs(s, 7, next, 1), 1);
    }
    persist_close(p);
    store_destroy(s);
  }
  fx_rmdir_all(dir);
}

/* ---- the counters file ---- */

/* Samples n rows (half demo) from s. */
static void draw(store *s, uint32_t n) {
  store_batch b;
  store_batch_init(&b, n, FX_O, FX_A);
  rng r;
  rng_seed(&r, 5, "test", n, "draw");
  TH_CHECK_MSG(store_sample(s, &r, n, 0.5, &b) == IB_OK, "%s", ib_errmsg());
  store_batch_free(&b);
}

/* Both tables' total_samples, and their duplicates. */
static uint64_t samples_of(store *s, uint64_t *dups) {
  uint64_t n = 0;
  if (dups) *dups = 0;
  for (int t = 0; t < 2; t++) {
    store_table_info ti;
    store_table_info_get(s, t, &ti);
    n += ti.total_samples;
    if (dups) *dups += ti.duplicates;
  }
  return n;
}

/* A store (64 demo rows, `online_cap` online) opened on dir by persist_open, which must succeed. */
static store *open_store(const char *dir, uint64_t online_cap, persist_mode mode, persist **p,
                         persist_restore_info *ri) {
  store *s = mk(64, online_cap);
  *p = NULL;
  TH_CHECK_MSG(persist_open(p, s, dir, mode, ri) == IB_OK, "open %s: %s", dir, ib_errmsg());
  return s;
}

static store_table_info online_info(store *s) {
  store_table_info ti;
  store_table_info_get(s, store_table_find(s, "online"), &ti);
  return ti;
}

/* Writes buf[0..n) to dir/name. */
static void put_file(const char *dir, const char *name, const void *buf, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  IB_CHECK(f != NULL && fwrite(buf, 1, n, f) == n && fclose(f) == 0);
}

/* Actor `actor`'s duplicates in the online table (0 if it has no record). */
static uint64_t actor_dups(store *s, uint32_t actor) {
  store_actor_info ai;
  return store_actor_get(s, store_table_find(s, "online"), actor, &ai) == IB_OK ? ai.duplicates : 0;
}

/* Writes a version-1 counters file (no per-actor section, before 24 Nov) into dir: the online
 * table with `samples`, the demo table with none. */
static void write_counts_v1(const char *dir, uint64_t samples) {
  uint8_t buf[32 + 2 * (STORE_NAME_MAX + 24) + 4] = {0}, *w = buf;
  memcpy(w, "IBRLCNT1", 8);
  ib_put_u32(w + 8, 1);
  ib_put_u32(w + 12, 0x01020304u);
  ib_put_u32(w + 16, 2);
  ib_put_u64(w + 24, 0);
  w += 32;
  const char *names[2] = {"demo", "online"};
  for (int t = 0; t < 2; t++, w += STORE_NAME_MAX + 24) {
    snprintf((char *)w, STORE_NAME_MAX, "%s", names[t]);
    ib_put_u64(w + STORE_NAME_MAX, t == 1 ? samples : 0);
  }
  ib_put_u32(w, ib_crc32(0, buf, (size_t)(w - buf)));
  put_file(dir, "store.counts", buf, sizeof buf);
}

/* The log holds no samples: without store.counts a crash sets total_samples back to the last
 * checkpoint's. With it, the restore counts what was sampled up to its last save, and the
 * duplicates of each table and actor; a damaged file and one in a directory that restores nothing
 * are not used, nor are the counters of one of another lineage (an epoch past the restored chain:
 * only its watermark is compared); a version-1 file (tables only) still is. */
static void test_counts_survive_crash(void) {
  char dir[64], dir2[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  fx_tmpdir(dir2, sizeof dir2, "ibrl-store-test");
  persist_restore_info ri;
  persist *pa;
  store *a = open_store(dir, 16, PERSIST_WAL, &pa, &ri);
  fill(a);
  draw(a, 40);
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_OK); /* 40 samples, 10 duplicates in it */
  draw(a, 100);
  put(a, "online", 1, 30, 40, 5);
  put(a, "online", 1, 35, 38, 3); /* 30..33 and these 3: 7 more duplicates */
  put(a, "online", 2, 5, 12, 3);  /* 5..9: 5 duplicates of actor 2 */
  TH_CHECK_EQ_INT(persist_counts_save(pa), IB_OK);
  uint64_t dups_saved, saved = samples_of(a, &dups_saved);
  TH_CHECK_EQ_INT(saved, 140);
  TH_CHECK_EQ_INT(dups_saved, 22);
  TH_CHECK_EQ_INT(actor_dups(a, 1), 17);
  TH_CHECK_EQ_INT(actor_dups(a, 2), 5);
  draw(a, 25); /* after the last save: lost with the crash */
  persist_close(pa); /* "crash" */

  persist *pb;
  store *b = open_store(dir, 16, PERSIST_WAL, &pb, &ri);
  uint64_t dups;
  TH_CHECK_MSG(samples_of(b, &dups) == saved, "restored %llu samples, saved %llu (the checkpoint had 40)",
               (unsigned long long)samples_of(b, NULL), (unsigned long long)saved);
  TH_CHECK_EQ_INT(dups, dups_saved);
  TH_CHECK_EQ_INT(ri.counts_samples, 100);
  TH_CHECK_EQ_INT(ri.counts_duplicates, 12);
  TH_CHECK_MSG(actor_dups(b, 1) == 17 && actor_dups(b, 2) == 5,
               "actors' duplicates restored as %llu and %llu, saved 17 and 5 (the checkpoint had 10 and 0)",
               (unsigned long long)actor_dups(b, 1), (unsigned long long)actor_dups(b, 2));
  draw(b, 30);
  TH_CHECK_EQ_INT(persist_counts_save(pb), IB_OK);
  persist_close(pb);

  /* A damaged file is ignored: the recovery checkpoint's 140 stand. */
  fx_flip_byte(dir, "store.counts", 40);
  persist *pc;
  store *c = open_store(dir, 16, PERSIST_WAL, &pc, &ri);
  TH_CHECK_EQ_INT(samples_of(c, NULL), 140);
  TH_CHECK_EQ_INT(ri.counts_samples, 0);
  draw(c, 7);
  TH_CHECK_EQ_INT(persist_counts_save(pc), IB_OK); /* epoch 2 or later */
  /* Nothing changed since: a save writes nothing; a sample later, it writes again. */
  char path[128];
  snprintf(path, sizeof path, "%s/store.counts", dir);
  TH_CHECK_EQ_INT(unlink(path), 0);
  TH_CHECK_EQ_INT(persist_counts_save(pc), IB_OK);
  TH_CHECK_MSG(file_size(dir, "store.counts") < 0, "a save with no counter changed wrote the file");
  draw(c, 1);
  TH_CHECK_EQ_INT(persist_counts_save(pc), IB_OK);
  TH_CHECK_MSG(file_size(dir, "store.counts") > 0, "a save after a sample wrote nothing");
  persist_close(pc);

  /* Another lineage: a store of epoch 0 in dir2, then dir's file put beside it. */
  persist *pd;
  store *d = open_store(dir2, 16, PERSIST_WAL, &pd, &ri);
  fill(d);
  persist_close(pd);
  copy_path(dir, "store.counts", dir2, "store.counts");
  persist *pe;
  store *e = open_store(dir2, 16, PERSIST_WAL, &pe, &ri);
  TH_CHECK_EQ_INT(samples_of(e, NULL), 0);
  TH_CHECK_EQ_INT(ri.counts_samples, 0);
  /* Its watermark is still compared: the file cannot tell another store from a chain that lost
   * its later logs, so the rows it counted past this store's are reported (8 online rows). */
  store_table_info dm;
  store_table_info_get(e, store_table_find(e, "demo"), &dm);
  TH_CHECK_EQ_INT(ri.acked_missing, ri.counts_acked - online_info(e).total_inserts - dm.total_inserts);
  TH_CHECK_EQ_INT(ri.acked_missing, 8);
  persist_close(pe);

  /* A directory that restores nothing deletes the file. */
  fx_rmdir_all(dir2);
  IB_CHECK(mkdir(dir2, 0755) == 0);
  copy_path(dir, "store.counts", dir2, "store.counts");
  persist *pf;
  store *f = open_store(dir2, 16, PERSIST_WAL, &pf, &ri);
  TH_CHECK_EQ_INT(samples_of(f, NULL), 0);
  TH_CHECK_MSG(file_size(dir2, "store.counts") < 0, "a fresh store kept another store's counters file");
  persist_close(pf);

  /* A version-1 file, as a shard from before the actors' section left it, is still read. */
  write_counts_v1(dir, 5000);
  persist *pg;
  store *g = open_store(dir, 16, PERSIST_WAL, &pg, &ri);
  TH_CHECK_EQ_INT(online_info(g).total_samples, 5000);
  TH_CHECK(ri.counts_samples > 0);
  TH_CHECK_EQ_INT(actor_dups(g, 1), 17);
  persist_close(pg);
  store *all[] = {a, b, c, d, e, f, g};
  for (int i = 0; i < 7; i++) store_destroy(all[i]);
  fx_rmdir_all(dir);
  fx_rmdir_all(dir2);
}

/* The counters file's watermark of acknowledged rows: a disk that drops a flushed record (the last
 * batch's, cut off the log after the "crash") leaves a restore with fewer rows than were
 * acknowledged, and the restore says how many (ri.acked_missing, an error in the log). An honest
 * crash reports none, and neither does checkpoint-only mode (it acknowledges nothing as durable). */
static void test_counts_notice_lost_rows(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  persist_restore_info ri;
  for (int lie = 0; lie < 2; lie++) {
    persist *pa;
    store *a = open_store(dir, 256, PERSIST_WAL, &pa, &ri);
    put(a, "online", 1, 0, 40, 8);
    put(a, "demo", 9, 0, 10, 5);
    long before = file_size(dir, fx_wal(0));
    put(a, "online", 1, 40, 46, 6); /* acknowledged: its record was flushed */
    long after = file_size(dir, fx_wal(0));
    TH_CHECK_EQ_INT(persist_counts_save(pa), IB_OK);
    persist_close(pa); /* "crash" */
    store_destroy(a);
    if (lie) truncate_by(dir, fx_wal(0), after - before); /* the disk never wrote the flushed record */
    persist *pb;
    store *b = open_store(dir, 256, PERSIST_WAL, &pb, &ri);
    TH_CHECK_EQ_INT(online_info(b).total_inserts, lie ? 40 : 46);
    TH_CHECK_MSG(ri.acked_missing == (lie ? 6u : 0u), "%s: the restore reports %llu acknowledged rows missing",
                 lie ? "a lost flushed record (6 rows)" : "an honest crash", (unsigned long long)ri.acked_missing);
    persist_close(pb);
    store_destroy(b);
    fx_rmdir_all(dir);
    IB_CHECK(mkdir(dir, 0755) == 0);
  }
  /* Checkpoint-only: a crash loses every row since the checkpoint, which none was promised. */
  persist *pc;
  store *c = open_store(dir, 256, PERSIST_CKPT_ONLY, &pc, &ri);
  put(c, "online", 1, 0, 20, 5);
  TH_CHECK_EQ_INT(persist_checkpoint(pc, NULL), IB_OK);
  put(c, "online", 1, 20, 30, 5);
  TH_CHECK_EQ_INT(persist_counts_save(pc), IB_OK);
  persist_close(pc);
  persist *pd;
  store *d = open_store(dir, 256, PERSIST_CKPT_ONLY, &pd, &ri);
  TH_CHECK_EQ_INT(online_info(d).total_inserts, 20);
  TH_CHECK_EQ_INT(ri.acked_missing, 0);
  persist_close(pd);
  store_destroy(c);
  store_destroy(d);
  fx_rmdir_all(dir);
}

/* Copies every file of dir_a but store.counts into dir_b. */
static void copy_data_files(const char *dir_a, const char *dir_b) {
  DIR *d = opendir(dir_a);
  IB_CHECK(d != NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.' && strcmp(e->d_name, "store.counts") != 0) copy_path(dir_a, e->d_name, dir_b, e->d_name);
  closedir(d);
}

/* A chain that lost its later epochs (a disk that dropped a log's or a checkpoint's creation it
 * had reported durable; here, the files of an earlier moment put back under the newer counters
 * file): the restore ends at an earlier epoch than the file's, holds fewer rows than the file
 * counted as acknowledged, and says how many are gone, though the file's other counters are not
 * used. With the file of that earlier moment it reports none. */
static void test_counts_notice_lost_epochs(void) {
  char dir[64], old[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  fx_tmpdir(old, sizeof old, "ibrl-store-test");
  persist_restore_info ri;
  persist *pa;
  store *a = open_store(dir, 256, PERSIST_WAL, &pa, &ri);
  put(a, "online", 1, 0, 40, 8);
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_OK);
  put(a, "online", 1, 40, 50, 5);
  copy_data_files(dir, old); /* the chain as it was at 50 rows */
  TH_CHECK_EQ_INT(persist_counts_save(pa), IB_OK);
  copy_path(dir, "store.counts", old, "store.counts.50");
  TH_CHECK_EQ_INT(persist_checkpoint(pa, NULL), IB_OK);
  put(a, "online", 1, 50, 62, 4); /* acknowledged in the next epoch's log */
  draw(a, 30);
  TH_CHECK_EQ_INT(persist_counts_save(pa), IB_OK);
  persist_close(pa); /* "crash" */
  store_destroy(a);
  for (int newer = 1; newer >= 0; newer--) {
    if (newer)
      copy_path(dir, "store.counts", old, "store.counts");
    else
      copy_path(old, "store.counts.50", old, "store.counts");
    char cp[64];
    fx_tmpdir(cp, sizeof cp, "ibrl-store-test");
    copy_data_files(old, cp);
    copy_path(old, "store.counts", cp, "store.counts");
    persist *pb;
    store *b = open_store(cp, 256, PERSIST_WAL, &pb, &ri);
    TH_CHECK_EQ_INT(online_info(b).total_inserts, 50);
    TH_CHECK_MSG(ri.acked_missing == (newer ? 12u : 0u), "%s: the restore reports %llu acknowledged rows missing",
                 newer ? "a chain that lost its last epoch (12 rows)" : "the file of the chain's own moment",
                 (unsigned long long)ri.acked_missing);
    TH_CHECK_EQ_INT(ri.counts_samples, 0); /* the later epoch's samples are not taken */
    persist_close(pb);
    store_destroy(b);
    fx_rmdir_all(cp);
  }
  fx_rmdir_all(dir);
  fx_rmdir_all(old);
}

/* Reads dir/name whole into buf (at most cap bytes); returns its length. */
static size_t slurp(const char *dir, const char *name, uint8_t *buf, size_t cap) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "rb");
  IB_CHECK(f != NULL);
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

/* A counters file of any content never stops a restore nor reads out of bounds (ASan): cut at
 * every kind of length, or with bytes changed and the CRC made right again, so that the parse
 * behind the CRC sees them (table and actor counts that overrun the file, names without NUL). The
 * counters it applies only grow: no table ends below what the log and checkpoint restored. */
static void test_counts_file_fuzz(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-store-test");
  persist_restore_info ri;
  persist *pa;
  store *a = open_store(dir, 16, PERSIST_WAL, &pa, &ri);
  fill(a);
  draw(a, 40);
  put(a, "online", 2, 5, 12, 3);
  TH_CHECK_EQ_INT(persist_counts_save(pa), IB_OK);
  uint64_t inserted = online_info(a).total_inserts;
  persist_close(pa);
  store_destroy(a);
  uint8_t good[4096], buf[4096];
  size_t n = slurp(dir, "store.counts", good, sizeof good);
  TH_CHECK_MSG(n == 32 + 2 * 72 + 2 * 16 + 4, "counters file of %zu bytes (2 tables, 2 actors with duplicates)", n);
  rng r;
  rng_seed(&r, 11, "test", 0, "counts fuzz");
  int applied = 0, ignored = 0;
  for (int it = 0; it < 120; it++) {
    memcpy(buf, good, n);
    size_t len = n;
    if (it % 3 == 0) {
      len = rng_below(&r, (uint32_t)n);
    } else {
      int k = 1 + (int)rng_below(&r, 4);
      for (int j = 0; j < k; j++) {
        size_t at = rng_below(&r, (uint32_t)(n - 4));
        buf[at] = it % 3 == 1 ? (uint8_t)rng_below(&r, 256) : 0xff;
      }
      ib_put_u32(buf + n - 4, ib_crc32(0, buf, n - 4));
    }
    put_file(dir, "store.counts", buf, len);
    store *b = mk(64, 16);
    persist *pb = NULL;
    int rc = persist_open(&pb, b, dir, PERSIST_WAL, &ri);
    TH_CHECK_MSG(rc == IB_OK, "iteration %d: a counters file of %zu bytes stopped the restore: %s", it, len,
                 ib_errmsg());
    if (rc == IB_OK) {
      TH_CHECK_EQ_INT(online_info(b).total_inserts, inserted); /* the log's rows, whatever the file says */
      if (ri.counts_samples + ri.counts_duplicates > 0) applied++;
      else ignored++;
      persist_close(pb);
    }
    store_destroy(b);
    if (it % 3 == 2) /* keep the next restores' counters low: put the good file back, restore once */
      put_file(dir, "store.counts", good, n);
  }
  TH_CHECK_MSG(applied > 0 && ignored > 0, "fuzzed files applied %d, ignored %d: both should happen", applied,
               ignored);
  fx_rmdir_all(dir);
}

static const th_case cases[] = {
    {"checkpoint round trip", test_ckpt_round_trip},
    {"corrupt or mismatching checkpoint refused", test_ckpt_corrupt_and_mismatch_refused},
    {"open requires an empty store", test_open_requires_empty_store},
    {"wal recovery and truncation by checkpoint", test_wal_recovery_and_truncation},
    {"large (huge-page) arena through checkpoint and log replay", test_large_arena_ckpt_and_wal},
    {"wal torn tail dropped", test_wal_torn_tail},
    {"wal torn non-last log drops the later logs", test_wal_torn_nonlast_log},
    {"wal version 1 logs replay, newer versions refused", test_wal_versions},
    {"wal stale after checkpoint crash; orphan refused", test_wal_stale_and_orphan},
    {"failed checkpoint keeps the log chain", test_failed_checkpoint_keeps_log_chain},
    {"wal written with larger batches refused, not cut", test_wal_batch_limit_mismatch},
    {"wal group commit with concurrent checkpoints", test_wal_concurrent_with_checkpoints},
    {"crash: SIGKILL keeps every acknowledged item", test_crash_sigkill_keeps_acknowledged},
    {"crash during checkpoints keeps every acknowledged item", test_crash_during_checkpoints},
    {"restore a checkpoint from before the metadata copy", test_restore_prepad_checkpoint},
    {"restore a format-1 checkpoint (1024-seq windows)", test_restore_v1_window_checkpoint},
    {"the counters file brings back the samples since the last checkpoint", test_counts_survive_crash},
    {"a counters file of any content never stops a restore", test_counts_file_fuzz},
    {"the counters file notices acknowledged rows a lying disk lost", test_counts_notice_lost_rows},
    {"the counters file notices acknowledged rows of a chain that lost its later epochs",
     test_counts_notice_lost_epochs},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
