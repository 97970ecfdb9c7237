/* test_persist_restart.c: a shard restarted on a live machine must not build on log bytes that
 * are only in the page cache (the end-of-recovery checkpoint, persist.h).
 *
 * The trap: a process whose log flush failed (EIO), or that died with an unflushed log tail,
 * leaves log bytes in the page cache that are not on the disk; after a failed writeback the
 * kernel even marks them clean, so they never get there and a later fdatasync returns 0. A new
 * process restores them with plain reads. If it then acknowledges a retry of those rows as a
 * duplicate, or new rows behind them, a machine crash tears the old log and the restore drops
 * everything after the tear: acknowledged rows lost
 * (docs/results/runs/replay-eio/README.md, "stale-restart-eio").
 *
 * The disk model, without a hook in the product: this executable defines fdatasync() and fsync()
 * (ib_store is a static library, so persist*.c's calls bind here, in the forked checkpoint writer
 * too). Per file it keeps the durable length (its length when its last successful fdatasync
 * started; a log's header is made durable by fsync when the log is created) and the bytes whose
 * flush failed ("poisoned": a crash copy zeroes them, whatever later flushes returned). A machine
 * crash copies the store directory with every log cut to its durable length and its poisoned
 * bytes zeroed, plus store.ckpt (renamed into place only when complete and fsynced). fsync can be
 * made to fail, or to end the process that calls it (a checkpoint writer killed with its server),
 * for files whose name contains a given string. fallocate and statfs are defined here too, so a
 * case can give the checkpoint's reservation less room than it needs. A "dead" process is a store and persist object
 * that are abandoned without any further flush (persist_close flushes nothing).
 *
 * Each case acknowledges rows like the server does (a batch that was partly or all duplicates
 * only after persist_barrier) and checks, after the crash copy is restored, that every
 * acknowledged row of each actor is there exactly once. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ib.h"
#include "persist.h"
#include "rng.h"
#include "store.h"
#include "store_fixture.h"
#include "store_testdir.h"
#include "th.h"

#define BOUND_S 20 /* a hang bound, not a speed limit */
#define CAP 4096   /* online capacity: nothing is evicted in these tests */
#define MAX_FILES 64
#define WAL_HDR_BYTES 44

/* ---- the disk model: fdatasync and fsync as seen by persist*.c ---- */

static pthread_mutex_t fs_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fs_cv = PTHREAD_COND_INITIALIZER;
static int fs_fail;          /* the next fs_fail fdatasyncs fail with EIO */
static int fs_hold_next;     /* the next fdatasync waits while fs_held (a flush not finished) */
static int fs_held;          /* a caller waits in fdatasync now */
static char fs_fsync_fail[64]; /* fsync of a file whose path contains this fails with ENOSPC */
static char fs_fsync_die[64];  /* ... ends the calling process, if it is not the test's own */
static pid_t fs_pid;           /* the test process */
static struct {
  char path[256];
  uint64_t dur;              /* durable length */
  uint64_t poison_lo, poison_hi; /* bytes [lo, hi) whose flush failed: never on the disk */
} fs_files[MAX_FILES];
static int fs_nfiles;

static int fs_find(const char *path) { /* fs_mu held */
  for (int i = 0; i < fs_nfiles; i++)
    if (strcmp(fs_files[i].path, path) == 0) return i;
  IB_CHECK(fs_nfiles < MAX_FILES);
  memset(&fs_files[fs_nfiles], 0, sizeof fs_files[0]);
  snprintf(fs_files[fs_nfiles].path, sizeof fs_files[0].path, "%s", path);
  fs_files[fs_nfiles].dur = WAL_HDR_BYTES;
  return fs_nfiles++;
}

static void fd_path(int fd, char *out, size_t n) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t k = readlink(link, out, n - 1);
  out[k > 0 ? k : 0] = '\0';
}

int fdatasync(int fd) {
  char path[256];
  fd_path(fd, path, sizeof path);
  struct stat st;
  uint64_t len = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
  pthread_mutex_lock(&fs_mu);
  if (fs_hold_next) {
    fs_hold_next = 0;
    fs_held = 1;
    pthread_cond_broadcast(&fs_cv);
    while (fs_held) pthread_cond_wait(&fs_cv, &fs_mu);
  }
  if (fs_fail > 0) {
    /* The kernel drops the dirty pages' error state: they stay in the page cache, clean, and
     * never reach the disk. */
    fs_fail--;
    int i = fs_find(path);
    if (len > fs_files[i].dur) {
      if (fs_files[i].poison_hi == 0) fs_files[i].poison_lo = fs_files[i].dur;
      fs_files[i].poison_hi = len;
    }
    pthread_mutex_unlock(&fs_mu);
    errno = EIO;
    return -1;
  }
  pthread_mutex_unlock(&fs_mu);
  long rc = syscall(SYS_fdatasync, fd);
  if (rc == 0) {
    pthread_mutex_lock(&fs_mu);
    int i = fs_find(path);
    if (len > fs_files[i].dur) fs_files[i].dur = len;
    pthread_mutex_unlock(&fs_mu);
  }
  return (int)rc;
}

int fsync(int fd) {
  char path[256];
  fd_path(fd, path, sizeof path);
  /* No lock: the forked checkpoint writer runs this too (it reads its own copy of the flags). */
  if (fs_fsync_die[0] && strstr(path, fs_fsync_die) && getpid() != fs_pid) _exit(1);
  if (fs_fsync_fail[0] && strstr(path, fs_fsync_fail)) {
    errno = ENOSPC;
    return -1;
  }
  return (int)syscall(SYS_fsync, fd);
}

/* Free bytes for the checkpoint file's reservation: fallocate of more than this on a file whose
 * path contains "store.ckpt" fails with ENOSPC, as on a disk with that much room (a race: statfs
 * said there was room). -1: no limit. fs_statfs_free, if >= 0, is the free space statfs
 * reports. The forked writer reads its own copies, set before the checkpoint starts; it counts
 * its fallocate calls in shared memory (fs_fallocs, mapped by main). */
static int64_t fs_ckpt_room = -1, fs_statfs_free = -1;
static uint64_t *fs_fallocs;

int fallocate(int fd, int mode, off_t off, off_t len) {
  char path[256];
  fd_path(fd, path, sizeof path);
  if (strstr(path, "store.ckpt")) __atomic_add_fetch(fs_fallocs, 1, __ATOMIC_RELAXED);
  if (fs_ckpt_room >= 0 && strstr(path, "store.ckpt") && off + len > fs_ckpt_room) {
    errno = ENOSPC;
    return -1;
  }
  return (int)syscall(SYS_fallocate, fd, mode, off, len);
}

int statfs(const char *path, struct statfs *v) {
  if (syscall(SYS_statfs, path, v) != 0) return -1;
  if (fs_statfs_free >= 0) {
    uint64_t unit = (uint64_t)(v->f_frsize ? v->f_frsize : v->f_bsize);
    v->f_bfree = v->f_bavail = (uint64_t)fs_statfs_free / unit;
  }
  return 0;
}
int statfs64(const char *path, struct statfs64 *v) { return statfs(path, (struct statfs *)v); }

static void fs_reset(void) {
  pthread_mutex_lock(&fs_mu);
  fs_fail = fs_hold_next = fs_held = 0;
  fs_nfiles = 0;
  fs_fsync_fail[0] = fs_fsync_die[0] = '\0';
  fs_ckpt_room = fs_statfs_free = -1;
  pthread_mutex_unlock(&fs_mu);
}

/* Waits until a caller is held in fdatasync; false after BOUND_S. */
static bool fs_wait_held(void) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += BOUND_S;
  pthread_mutex_lock(&fs_mu);
  int rc = 0;
  while (!fs_held && rc == 0) rc = pthread_cond_timedwait(&fs_cv, &fs_mu, &dl);
  bool ok = fs_held != 0;
  pthread_mutex_unlock(&fs_mu);
  return ok;
}

static void fs_release(void) {
  pthread_mutex_lock(&fs_mu);
  fs_held = 0;
  pthread_cond_broadcast(&fs_cv);
  pthread_mutex_unlock(&fs_mu);
}

/* ---- a machine crash ---- */

/* Copies the first `len` bytes of `from` to `to` with bytes [zlo, zhi) zeroed; false if `from`
 * is gone. */
static bool copy_cut(const char *from, const char *to, long len, uint64_t zlo, uint64_t zhi) {
  return th_copy_cut(from, to, len, zlo, zhi) == 0;
}

/* Copies the store directory `dir` into the fresh directory `out` as a machine crash leaves it
 * by the model (see the top of this file). Returns the number of logs copied. */
static int crash_copy(const char *dir, const char *out) {
  DIR *d = opendir(dir);
  IB_CHECK(d != NULL);
  struct dirent *e;
  char a[512], b[512];
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, "store.wal.", 10) != 0 || strlen(e->d_name) != 26) continue;
    snprintf(a, sizeof a, "%s/%s", dir, e->d_name);
    snprintf(b, sizeof b, "%s/%s", out, e->d_name);
    pthread_mutex_lock(&fs_mu);
    int i = fs_find(a);
    uint64_t dur = fs_files[i].dur, zlo = fs_files[i].poison_lo, zhi = fs_files[i].poison_hi;
    pthread_mutex_unlock(&fs_mu);
    if (copy_cut(a, b, (long)dur, zlo, zhi)) n++;
  }
  closedir(d);
  snprintf(a, sizeof a, "%s/store.ckpt", dir);
  snprintf(b, sizeof b, "%s/store.ckpt", out);
  copy_cut(a, b, -1, 0, 0);
  return n;
}

/* ---- store ---- */

static store *mk(void) { return fx_store(CAP); }

/* Inserts actor's seqs [from, to) (at most 32) in one call and decides the acknowledgement as
 * the server does: a batch with duplicates only after persist_barrier (p may be NULL for a store
 * whose caller never acknowledges). Returns IB_OK if acknowledged. */
static int ins(store *s, persist *p, uint32_t actor, uint64_t from, uint64_t to) {
  fx_item xs[32];
  store_item v[32];
  IB_CHECK(to > from && to - from <= 32);
  int n = 0;
  for (uint64_t q = from; q < to; q++) fx_fill(&xs[n++], actor, q, STORE_PROPOSER_RL);
  fx_views(v, xs, n);
  store_insert_result res = {0, 0, 0};
  int rc = store_insert(s, "online", v, (size_t)n, &res);
  if (rc == IB_OK && res.duplicates > 0 && p != NULL) rc = persist_barrier(p);
  return rc;
}

typedef struct ins_call {
  store *s;
  uint32_t actor;
  uint64_t from, to;
  int rc;
} ins_call;

static void *ins_thread(void *arg) {
  ins_call *c = arg;
  c->rc = ins(c->s, NULL, c->actor, c->from, c->to);
  return NULL;
}

/* Restores the crash copy of `dir` and checks actors 1..nact: seqs [0, acked[a]) all there, each
 * once, and no row of anybody else. Returns the number of bad actors (0 = good). */
static int crash_check(const char *dir, const uint64_t *acked, int nact, const char *what) {
  char out[64];
  fx_tmpdir(out, sizeof out, "ibrl-restart-crash");
  crash_copy(dir, out);
  store *s = mk();
  persist *p = NULL;
  persist_restore_info ri;
  int rc = persist_open(&p, s, out, PERSIST_WAL, &ri);
  TH_CHECK_MSG(rc == IB_OK, "%s: restore after the crash refused: %s", what, ib_errmsg());
  int bad = 0;
  uint64_t total = 0;
  for (int a = 1; rc == IB_OK && a <= nact; a++) {
    store_actor_info ai;
    int g = store_actor_get(s, 1, (uint32_t)a, &ai);
    uint64_t have = g == IB_OK ? ai.highest_seq + 1 : 0, rows = g == IB_OK ? ai.inserts : 0;
    total += acked[a];
    if (have < acked[a] || rows != have) {
      bad++;
      TH_CHECK_MSG(false,
                   "%s: actor %d had seqs [0, %llu) acknowledged, but after the crash the store "
                   "holds %llu of its rows, up to seq %lld (%llu records replayed, %llu torn "
                   "bytes, %llu logs dropped)",
                   what, a, (unsigned long long)acked[a], (unsigned long long)rows,
                   (long long)have - 1, (unsigned long long)ri.wal_records,
                   (unsigned long long)ri.wal_torn_bytes, (unsigned long long)ri.wal_dropped_logs);
    }
  }
  if (rc == IB_OK) {
    store_table_info ti;
    store_table_info_get(s, 1, &ti);
    TH_CHECK_MSG(ti.size == total, "%s: the online table holds %llu rows, acknowledged were %llu",
                 what, (unsigned long long)ti.size, (unsigned long long)total);
  }
  persist_close(p);
  store_destroy(s);
  fx_rmdir_all(out);
  return bad;
}

/* Opens a second "process" on dir: a new store and persist_open, which must succeed. */
static store *reopen(const char *dir, persist **p, persist_restore_info *ri) {
  store *s = mk();
  int rc = persist_open(p, s, dir, PERSIST_WAL, ri);
  TH_CHECK_MSG(rc == IB_OK, "the restart's persist_open failed: %s", ib_errmsg());
  IB_CHECK(rc == IB_OK); /* nothing below can run without it */
  return s;
}

/* The first process: 16 rows of actor 1 acknowledged, then a batch (seqs 16..19) whose
 * fdatasync fails with EIO, not acknowledged; the process dies. Returns its directory. */
static void first_life_eio(char *dir, size_t n) {
  fx_tmpdir(dir, n, "ibrl-restart-test");
  store *s = mk();
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_OK);
  TH_CHECK_EQ_INT(ins(s, p, 1, 0, 8), IB_OK);
  TH_CHECK_EQ_INT(ins(s, p, 1, 8, 16), IB_OK);
  pthread_mutex_lock(&fs_mu);
  fs_fail = 1;
  pthread_mutex_unlock(&fs_mu);
  TH_CHECK_EQ_INT(ins(s, p, 1, 16, 20), IB_EIO); /* not acknowledged */
  persist_close(p); /* the process dies: nothing more is flushed */
  store_destroy(s);
}

/* ---- cases ---- */

/* stale-restart-eio in process: the restart restores the failed batch from the page cache; the
 * writer's retry of it and new batches are acknowledged; then the machine crashes. */
static void test_eio_then_restart(void) {
  fs_reset();
  char dir[64];
  first_life_eio(dir, sizeof dir);
  persist *p = NULL;
  persist_restore_info ri;
  store *s = reopen(dir, &p, &ri);
  TH_CHECK_EQ_INT(ri.wal_records, 3); /* the failed batch too: the page cache still has it */
  persist_health h;
  persist_health_get(p, &h);
  TH_CHECK_MSG(!h.needs_checkpoint, "health after the restart: %s", h.cause);
#ifndef EOR_OLD_API
  TH_CHECK(ri.recovery_ckpt && !ri.recovery_ckpt_failed);
  TH_CHECK_EQ_INT(ri.recovery_ckpt_epoch, 1);
  printf("  recovery checkpoint: epoch %llu in %.3f ms\n",
         (unsigned long long)ri.recovery_ckpt_epoch, ri.recovery_ckpt_seconds * 1e3);
#endif
  TH_CHECK_EQ_INT(ins(s, p, 1, 16, 20), IB_OK); /* the retry: all duplicates, acknowledged */
  TH_CHECK_EQ_INT(ins(s, p, 1, 20, 28), IB_OK);
  TH_CHECK_EQ_INT(ins(s, p, 2, 0, 8), IB_OK);
  uint64_t acked[3] = {0, 28, 8};
  TH_CHECK_EQ_INT(crash_check(dir, acked, 2, "EIO, restart, crash"), 0);
  persist_close(p);
  store_destroy(s);
  fx_rmdir_all(dir);
}

/* The same without any I/O error: the first process dies with an unflushed tail in log 0 (its
 * batch's fdatasync has not returned) after a checkpoint's cut started log 1, while the
 * checkpoint writer was still writing (it dies with its server). The restart restores the tail
 * from the page cache and appends to the newest log; a crash before the kernel writes the old
 * tail back leaves log 0 shorter than log 1's link says. */
static void test_dirty_tail_then_restart(void) {
  fs_reset();
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-restart-test");
  store *s0 = mk();
  persist *p0 = NULL;
  TH_CHECK_EQ_INT(persist_open(&p0, s0, dir, PERSIST_WAL, NULL), IB_OK);
  TH_CHECK_EQ_INT(ins(s0, p0, 1, 0, 8), IB_OK);
  TH_CHECK_EQ_INT(ins(s0, p0, 1, 8, 16), IB_OK);
  pthread_mutex_lock(&fs_mu);
  fs_hold_next = 1;
  pthread_mutex_unlock(&fs_mu);
  ins_call c = {s0, 1, 16, 20, 99};
  pthread_t th;
  IB_CHECK(pthread_create(&th, NULL, ins_thread, &c) == 0);
  bool held = fs_wait_held();
  TH_CHECK_MSG(held, "the batch never reached fdatasync");
  if (!held) {
    fs_release();
    pthread_join(th, NULL);
    persist_close(p0);
    store_destroy(s0);
    fx_rmdir_all(dir);
    return;
  }
  snprintf(fs_fsync_die, sizeof fs_fsync_die, "store.ckpt.tmp");
  TH_CHECK(persist_checkpoint(p0, NULL) != IB_OK); /* its writer died before the rename */
  fs_fsync_die[0] = '\0';
  /* The first process is dead from here on (its held flush is released after the crash copy). */
  persist *p = NULL;
  persist_restore_info ri;
  store *s = reopen(dir, &p, &ri);
  TH_CHECK_EQ_INT(ri.wal_records, 3);
#ifndef EOR_OLD_API
  TH_CHECK(ri.recovery_ckpt && !ri.recovery_ckpt_failed);
#endif
  TH_CHECK_EQ_INT(ins(s, p, 1, 16, 20), IB_OK); /* the retry of the unacknowledged batch */
  TH_CHECK_EQ_INT(ins(s, p, 1, 20, 28), IB_OK);
  TH_CHECK_EQ_INT(ins(s, p, 2, 0, 8), IB_OK);
  uint64_t acked[3] = {0, 28, 8};
  TH_CHECK_EQ_INT(crash_check(dir, acked, 2, "dirty tail, restart, crash"), 0);
  fs_release();
  pthread_join(th, NULL);
  persist_close(p0);
  store_destroy(s0);
  persist_close(p);
  store_destroy(s);
  fx_rmdir_all(dir);
}

/* The recovery checkpoint fails (`fail_at`: the checkpoint file's fsync, in the writer process,
 * after the cut; or the next log's creation, before it): persist_open still succeeds, samples
 * are served, but durability starts broken: inserts and the acknowledgement of duplicates are
 * refused until a checkpoint succeeds. */
static void recovery_ckpt_fails(const char *fail_at) {
  fs_reset();
  char dir[64];
  first_life_eio(dir, sizeof dir);
  snprintf(fs_fsync_fail, sizeof fs_fsync_fail, "%s", fail_at);
  persist *p = NULL;
  persist_restore_info ri;
  store *s = reopen(dir, &p, &ri);
  TH_CHECK_EQ_INT(ri.wal_records, 3);
#ifndef EOR_OLD_API
  TH_CHECK(ri.recovery_ckpt && ri.recovery_ckpt_failed);
  TH_CHECK_EQ_INT(ri.recovery_ckpt_epoch, 0);
#endif
  persist_health h;
  persist_health_get(p, &h);
  TH_CHECK(h.needs_checkpoint && h.refusing && h.undurable);
  TH_CHECK_MSG(strstr(h.cause, fail_at) != NULL && h.cause_errno == ENOSPC,
               "the cause should name the failed checkpoint's file and ENOSPC: '%s' (errno %d)",
               h.cause, h.cause_errno);
  TH_CHECK(h.failed_checkpoints == 1);
  store_batch b;
  store_batch_init(&b, 8, FX_O, FX_A);
  rng r;
  rng_seed(&r, 5, "test", 0, "restart");
  TH_CHECK_EQ_INT(store_sample(s, &r, 8, 0.0, &b), IB_OK); /* samples are served */
  store_batch_free(&b);
  TH_CHECK_EQ_INT(ins(s, p, 1, 16, 20), IB_EIO); /* the duplicate is not acknowledged */
  TH_CHECK_EQ_INT(ins(s, p, 1, 20, 24), IB_EIO); /* nor a new batch */
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL) != IB_OK, 1); /* the disk is still bad */
  persist_health_get(p, &h);
  TH_CHECK(h.needs_checkpoint && h.failed_checkpoints == 2);
  uint64_t none[3] = {0, 16, 0};
  TH_CHECK_EQ_INT(crash_check(dir, none, 1, "recovery checkpoint failed, crash"), 0);
  fs_fsync_fail[0] = '\0'; /* the disk heals: the server's next checkpoint succeeds */
  persist_ckpt_info ci;
  TH_CHECK_MSG(persist_checkpoint(p, &ci) == IB_OK, "healing checkpoint: %s", ib_errmsg());
  persist_health_get(p, &h);
  TH_CHECK_MSG(!h.needs_checkpoint && !h.refusing && !h.undurable && h.since_ns == 0,
               "health after the healing checkpoint: %s", h.cause);
  TH_CHECK_EQ_INT(ins(s, p, 1, 16, 20), IB_OK);
  TH_CHECK_EQ_INT(ins(s, p, 1, 20, 28), IB_OK);
  uint64_t acked[2] = {0, 28};
  TH_CHECK_EQ_INT(crash_check(dir, acked, 1, "healed after a failed recovery checkpoint, crash"),
                  0);
  persist_close(p);
  store_destroy(s);
  fx_rmdir_all(dir);
}

static void test_recovery_ckpt_fails_in_writer(void) { recovery_ckpt_fails("store.ckpt.tmp"); }
static void test_recovery_ckpt_fails_at_log(void) {
  recovery_ckpt_fails("store.wal.0000000000000001.tmp");
}

/* A restart after a clean shutdown (a checkpoint, then an empty log) writes no checkpoint; after
 * a restart that did, the next restart replays nothing and writes none either. */
static void test_no_recovery_ckpt_without_log_content(void) {
  fs_reset();
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-restart-test");
  store *s = mk();
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_OK);
  TH_CHECK_EQ_INT(ins(s, p, 1, 0, 8), IB_OK);
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL), IB_OK);
  persist_close(p);
  store_destroy(s);
  persist_restore_info ri;
  s = reopen(dir, &p, &ri);
  TH_CHECK(ri.ckpt_found && ri.ckpt_items == 8 && ri.wal_records == 0);
#ifndef EOR_OLD_API
  TH_CHECK(!ri.recovery_ckpt);
#endif
  persist_close(p);
  store_destroy(s);
  fx_rmdir_all(dir);
}

/* Size of dir's store.ckpt in bytes (-1 if there is none). */
static int64_t ckpt_file_bytes(const char *dir) {
  char path[128];
  snprintf(path, sizeof path, "%s/store.ckpt", dir);
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Inserts seqs [from, to) of `actor` into `table` in batches of up to 32. */
static void fill(store *s, const char *table, uint32_t actor, uint64_t from, uint64_t to) {
  for (uint64_t q = from; q < to; q += 32) {
    fx_item xs[32];
    store_item v[32];
    int n = 0;
    for (uint64_t k = q; k < to && n < 32; k++) fx_fill(&xs[n++], actor, k, STORE_PROPOSER_RL);
    fx_views(v, xs, n);
    IB_CHECK(store_insert(s, table, v, (size_t)n, NULL) == IB_OK);
  }
}

/* A checkpoint reserves its whole size before it writes: on a disk without room it fails at
 * once, names the size and the free space, writes nothing and leaves the last checkpoint and the
 * log chain as they were; once there is room, the next one heals. persist_ckpt_bytes gives each
 * checkpoint's exact size, and at capacity the size of a full store's. */
static void test_ckpt_reserves_its_size(void) {
  fs_reset();
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-restart-test");
  store *s = fx_store_slots(CAP, 2); /* the tables of mk(), for crash_check */
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_OK);
  uint64_t full = persist_ckpt_bytes(s, true), empty = persist_ckpt_bytes(s, false);
  TH_CHECK_MSG(empty < full, "empty store %llu bytes, at capacity %llu",
               (unsigned long long)empty, (unsigned long long)full);
  TH_CHECK_EQ_INT(ins(s, p, 1, 0, 32), IB_OK);
  uint64_t want = persist_ckpt_bytes(s, false);
  persist_ckpt_info ci;
  TH_CHECK_MSG(persist_checkpoint(p, &ci) == IB_OK, "first checkpoint: %s", ib_errmsg());
  int64_t first = ckpt_file_bytes(dir);
  TH_CHECK_MSG(first == (int64_t)want && ci.bytes == want,
               "the checkpoint file has %lld bytes (reported %llu), persist_ckpt_bytes said %llu",
               (long long)first, (unsigned long long)ci.bytes, (unsigned long long)want);

  TH_CHECK_EQ_INT(ins(s, p, 1, 32, 64), IB_OK);
  want = persist_ckpt_bytes(s, false);
  /* statfs reports too little room: refused without touching the disk (no fallocate, which
   * takes the last free blocks until it gives up). */
  fs_statfs_free = (int64_t)want - 4096;
  uint64_t fallocs0 = __atomic_load_n(fs_fallocs, __ATOMIC_RELAXED);
  int rc = persist_checkpoint(p, NULL);
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", ib_errmsg());
  char need[32], have[48];
  snprintf(need, sizeof need, "reserving %llu bytes", (unsigned long long)want);
  snprintf(have, sizeof have, "': %llu bytes (HINT", (unsigned long long)(want - 4096) / 4096 * 4096);
  TH_CHECK_MSG(rc == IB_EIO && strstr(msg, need) && strstr(msg, strerror(ENOSPC)) &&
                   strstr(msg, have) && strstr(msg, "Nothing was written"),
               "a checkpoint that statfs says has no room: rc %d, '%s' (want '%s', '%s')", rc,
               msg, need, have);
  TH_CHECK_EQ_INT(__atomic_load_n(fs_fallocs, __ATOMIC_RELAXED), fallocs0);
  /* statfs says there is room, fallocate finds there is not (another writer took it). */
  fs_statfs_free = -1;
  fs_ckpt_room = (int64_t)want - 1; /* one byte short */
  rc = persist_checkpoint(p, NULL);
  snprintf(msg, sizeof msg, "%s", ib_errmsg());
  TH_CHECK_MSG(rc == IB_EIO && strstr(msg, need) && strstr(msg, strerror(ENOSPC)) &&
                   strstr(msg, "free in") && strstr(msg, "Nothing was written"),
               "a checkpoint without room: rc %d, '%s' (want '%s')", rc, msg, need);
  TH_CHECK_EQ_INT(__atomic_load_n(fs_fallocs, __ATOMIC_RELAXED), fallocs0 + 1);
  char tmp[128];
  snprintf(tmp, sizeof tmp, "%s/store.ckpt.tmp", dir);
  TH_CHECK_MSG(access(tmp, F_OK) != 0, "the refused checkpoint left %s behind", tmp);
  TH_CHECK_EQ_INT(ckpt_file_bytes(dir), first); /* the last checkpoint stays */
  persist_health h;
  persist_health_get(p, &h);
  TH_CHECK_MSG(!h.needs_checkpoint && h.io_errors == 2 && strstr(h.last_error, need),
               "health after the refused checkpoint (the log is intact): needs %d, %llu I/O "
               "errors, last '%s'",
               h.needs_checkpoint, (unsigned long long)h.io_errors, h.last_error);
  TH_CHECK_EQ_INT(ins(s, p, 1, 64, 96), IB_OK); /* the log still takes rows */
  uint64_t acked[2] = {0, 96};
  TH_CHECK_EQ_INT(crash_check(dir, acked, 1, "after a checkpoint without room, crash"), 0);

  fs_ckpt_room = (int64_t)persist_ckpt_bytes(s, false); /* exactly enough */
  TH_CHECK_MSG(persist_checkpoint(p, NULL) == IB_OK, "with room: %s", ib_errmsg());
  persist_health_get(p, &h);
  TH_CHECK_MSG(!h.needs_checkpoint && h.since_ns == 0, "health after room came back: %s", h.cause);
  TH_CHECK_EQ_INT(ckpt_file_bytes(dir), fs_ckpt_room);

  /* Every table at capacity, every actor slot used: the checkpoint is the at-capacity size. */
  fs_ckpt_room = -1;
  fill(s, "demo", 1, 0, 4);
  fill(s, "demo", 2, 0, 4);
  fill(s, "online", 1, 96, CAP / 2);
  fill(s, "online", 2, 0, CAP / 2);
  TH_CHECK_EQ_INT(persist_ckpt_bytes(s, false), full);
  TH_CHECK_EQ_INT(persist_ckpt_bytes(s, true), full);
  TH_CHECK_MSG(persist_checkpoint(p, NULL) == IB_OK, "full store: %s", ib_errmsg());
  TH_CHECK_EQ_INT(ckpt_file_bytes(dir), (int64_t)full);
  persist_close(p);
  store_destroy(s);
  fx_rmdir_all(dir);
}

static const th_case cases[] = {
    {"EIO, restart, retry and new rows, crash", test_eio_then_restart},
    {"dirty log tail, restart, retry and new rows, crash", test_dirty_tail_then_restart},
    {"recovery checkpoint fails in its writer", test_recovery_ckpt_fails_in_writer},
    {"recovery checkpoint fails creating its log", test_recovery_ckpt_fails_at_log},
    {"no recovery checkpoint without log content", test_no_recovery_ckpt_without_log_content},
    {"a checkpoint reserves its size: no room, refused before writing; room, healed",
     test_ckpt_reserves_its_size},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  fs_pid = getpid();
  fs_fallocs = mmap(NULL, sizeof *fs_fallocs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  IB_CHECK(fs_fallocs != MAP_FAILED);
  return th_main(argc, argv, cases);
}
