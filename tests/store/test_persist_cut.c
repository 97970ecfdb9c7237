/* test_persist_cut.c: the checkpoint's cut with the write-ahead log holds the store without any
 * disk flush, and acknowledged rows survive a machine crash at any point around it.
 *
 * How a flush is observed without a hook in the product: this executable defines fdatasync()
 * itself. ib_store is a static library, so the linker binds persist*.c's calls to this definition
 * (as LD_PRELOAD would, without a preload). It passes through to the system call, and can
 *   - hold every caller at a gate (a flush that the disk does not finish),
 *   - fail the next calls with EIO (a disk error),
 *   - remember, per file, the length it had when a flush of it succeeded: what a machine crash
 *     cannot take away (the durable model).
 * A simulated machine crash copies the store directory with every log cut to a length between its
 * durable length and its current length (the kernel may have written back any part of the rest,
 * and a record may be torn anywhere) and restores the copy: every row acknowledged before the copy
 * began must be there, and each actor's rows must be a gapless run of seqs (an actor inserts one
 * batch at a time, so a hole means records after a lost one were replayed).
 *
 * The bounded waits below (BOUND_S) turn a hang into a failure: a checkpoint that waits for a
 * flush held at the gate never returns. They are not speed limits; nothing here times the cut
 * (that is measured, see the report of this change). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
#define CAP 16384  /* online capacity: nothing is evicted in these tests */
#define MAX_FILES 256

/* ---- fdatasync, as seen by persist*.c ---- */

static pthread_mutex_t fs_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fs_cv = PTHREAD_COND_INITIALIZER;
static int fs_gate_closed; /* callers wait while set */
static int fs_blocked;     /* callers waiting at the gate now */
static int fs_fail;        /* the next fs_fail calls fail with EIO */
static int fs_calls;       /* calls that reached the disk */
static int fs_jitter; /* if set, a call may first sleep up to 2 ms (a slower disk, wider windows) */
static rng fs_rng;    /* for the jitter, under fs_mu */
static struct {
  char path[256];
  uint64_t len;
} fs_durable[MAX_FILES]; /* per file: its length at the start of its last successful flush */
static int fs_nfiles;

static void fs_note(const char *path, uint64_t len) {
  for (int i = 0; i < fs_nfiles; i++)
    if (strcmp(fs_durable[i].path, path) == 0) {
      if (len > fs_durable[i].len) fs_durable[i].len = len;
      return;
    }
  IB_CHECK(fs_nfiles < MAX_FILES);
  snprintf(fs_durable[fs_nfiles].path, sizeof fs_durable[0].path, "%s", path);
  fs_durable[fs_nfiles++].len = len;
}

/* Durable length of `path` by the model, or `dflt` if it was never flushed by fdatasync. */
static uint64_t fs_durable_len(const char *path, uint64_t dflt) {
  pthread_mutex_lock(&fs_mu);
  uint64_t v = dflt;
  for (int i = 0; i < fs_nfiles; i++)
    if (strcmp(fs_durable[i].path, path) == 0)
      v = fs_durable[i].len > dflt ? fs_durable[i].len : dflt;
  pthread_mutex_unlock(&fs_mu);
  return v;
}

int fdatasync(int fd) {
  /* The length before the flush starts: the bytes written before the call are what it must make
   * durable (later appends may or may not be, so the model does not count them). */
  char link[64], path[256];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t k = readlink(link, path, sizeof path - 1);
  path[k > 0 ? k : 0] = '\0';
  struct stat st;
  uint64_t len = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
  pthread_mutex_lock(&fs_mu);
  fs_blocked++;
  pthread_cond_broadcast(&fs_cv);
  while (fs_gate_closed) pthread_cond_wait(&fs_cv, &fs_mu);
  fs_blocked--;
  if (fs_fail > 0) {
    fs_fail--;
    pthread_mutex_unlock(&fs_mu);
    errno = EIO;
    return -1;
  }
  fs_calls++;
  long nap = fs_jitter ? (long)rng_below(&fs_rng, 2000) * 1000L : 0;
  pthread_mutex_unlock(&fs_mu);
  if (nap > 0) {
    struct timespec ts = {0, nap};
    nanosleep(&ts, NULL);
  }
  long rc = syscall(SYS_fdatasync, fd);
  if (rc == 0) {
    pthread_mutex_lock(&fs_mu);
    fs_note(path, len);
    pthread_mutex_unlock(&fs_mu);
  }
  return (int)rc;
}

static void gate_set(int closed) {
  pthread_mutex_lock(&fs_mu);
  fs_gate_closed = closed;
  pthread_cond_broadcast(&fs_cv);
  pthread_mutex_unlock(&fs_mu);
}

static int gate_blocked(void) {
  pthread_mutex_lock(&fs_mu);
  int n = fs_blocked;
  pthread_mutex_unlock(&fs_mu);
  return n;
}

static void fail_next(int n) {
  pthread_mutex_lock(&fs_mu);
  fs_fail = n;
  pthread_mutex_unlock(&fs_mu);
}

/* Waits until `n` callers are held at the gate; false after BOUND_S. */
static bool gate_wait_blocked(int n) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += BOUND_S;
  pthread_mutex_lock(&fs_mu);
  int rc = 0;
  while (fs_blocked < n && rc == 0) rc = pthread_cond_timedwait(&fs_cv, &fs_mu, &dl);
  bool ok = fs_blocked >= n;
  pthread_mutex_unlock(&fs_mu);
  return ok;
}

/* ---- files ---- */

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Copies the first `len` bytes of `from` (or all if len < 0) to `to`; false if `from` is gone. */
static bool copy_prefix(const char *from, const char *to, long len) { return th_copy_cut(from, to, len, 0, 0) == 0; }

/* Epochs of the logs in dir, ascending. */
static int list_logs(const char *dir, uint64_t *ep, int max) {
  DIR *d = opendir(dir);
  IB_CHECK(d != NULL);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < max) {
    if (strncmp(e->d_name, "store.wal.", 10) != 0 || strlen(e->d_name) != 26) continue;
    ep[n++] = strtoull(e->d_name + 10, NULL, 16);
  }
  closedir(d);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && ep[j - 1] > ep[j]; j--) {
      uint64_t t = ep[j];
      ep[j] = ep[j - 1];
      ep[j - 1] = t;
    }
  return n;
}

/* ---- store ---- */

static store *mk(void) { return fx_store(CAP); }

/* Inserts actor's seqs [from, to) (at most 32) in one call; returns store_insert's status. */
static int ins(store *s, uint32_t actor, uint64_t from, uint64_t to) {
  fx_item xs[32];
  store_item v[32];
  IB_CHECK(to > from && to - from <= 32);
  int n = 0;
  for (uint64_t q = from; q < to; q++) fx_fill(&xs[n++], actor, q, STORE_PROPOSER_RL);
  fx_views(v, xs, n);
  return store_insert(s, "online", v, (size_t)n, NULL);
}

typedef struct ins_call {
  store *s;
  uint32_t actor;
  uint64_t from, to;
  int rc;
} ins_call;

static void *ins_thread(void *arg) {
  ins_call *c = arg;
  c->rc = ins(c->s, c->actor, c->from, c->to);
  return NULL;
}

/* A checkpoint in its own thread, so a caller can tell "returned" from "hangs". */
typedef struct ck_call {
  persist *p;
  persist_ckpt_info ci;
  int rc;
  bool done;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t th;
} ck_call;

static void *ck_thread(void *arg) {
  ck_call *c = arg;
  int rc = persist_checkpoint(c->p, &c->ci);
  pthread_mutex_lock(&c->mu);
  c->rc = rc;
  c->done = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* Starts a checkpoint and waits for it at most BOUND_S. Returns whether it finished; either way
 * ck_join must follow (after opening the gate if it did not finish). */
static bool ck_start_wait(ck_call *c, persist *p) {
  memset(c, 0, sizeof *c);
  c->p = p;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  IB_CHECK(pthread_create(&c->th, NULL, ck_thread, c) == 0);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += BOUND_S;
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  while (!c->done && rc == 0) rc = pthread_cond_timedwait(&c->cv, &c->mu, &dl);
  bool done = c->done;
  pthread_mutex_unlock(&c->mu);
  return done;
}

static void ck_join(ck_call *c) {
  pthread_join(c->th, NULL);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
}

/* A checkpoint that fails (a directory planted at its temporary file's path) while a log flush is
 * held at the gate: it must return anyway (bounded by BOUND_S; the gate is opened if it does not).
 * Returns its status. */
static int ck_fail_while_held(persist *p, const char *planted) {
  IB_CHECK(mkdir(planted, 0755) == 0);
  ck_call ck;
  bool done = ck_start_wait(&ck, p);
  TH_CHECK_MSG(done, "the checkpoint did not return within %d s while a log flush was held",
               BOUND_S);
  if (!done) gate_set(0);
  ck_join(&ck);
  rmdir(planted);
  return ck.rc;
}

/* Waits until `path` is `len` bytes long (an append another thread makes); false after BOUND_S. */
static bool wait_size(const char *path, long len) {
  for (int i = 0; i < BOUND_S * 1000; i++) {
    if (file_size(path) == len) return true;
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* ---- crash copies ---- */

/* Copies the store directory `dir` into the fresh directory `out` as a machine crash could leave
 * it: each log cut at a length between its durable length (by the model; the header is made
 * durable when the log is created) and its current length, chosen by pick[i] for the i-th log in
 * epoch order: 0 durable only, 1 all of it, 2 random in between (a tear anywhere). The checkpoint
 * is copied after the logs: a checkpoint is renamed into place only when complete, and logs are
 * deleted only after a newer checkpoint is durable, so the copy is a state a crash can leave. */
static int crash_copy(const char *dir, const char *out, const int *pick, rng *r) {
  uint64_t ep[64];
  int n = list_logs(dir, ep, 64);
  char a[512], b[512];
  for (int i = 0; i < n; i++) {
    snprintf(a, sizeof a, "%s/store.wal.%016llx", dir, (unsigned long long)ep[i]);
    snprintf(b, sizeof b, "%s/store.wal.%016llx", out, (unsigned long long)ep[i]);
    long cur = file_size(a);
    if (cur < 0) continue; /* deleted since the listing: a newer checkpoint covers it */
    long dur = (long)fs_durable_len(a, 44);
    if (dur > cur) dur = cur;
    long len = pick[i] == 0   ? dur
               : pick[i] == 1 ? cur
                              : dur + (long)rng_below(r, (uint32_t)(cur - dur + 1));
    copy_prefix(a, b, len);
  }
  snprintf(a, sizeof a, "%s/store.ckpt", dir);
  snprintf(b, sizeof b, "%s/store.ckpt", out);
  copy_prefix(a, b, -1);
  return n;
}

/* Restores the crash copy `out` and checks actors 1..nact: seqs [0, acked[a]) all present and
 * each actor's rows a gapless run from seq 0. Returns the number of bad actors (0 = good).
 * `ri` receives the restore's report. */
static int crash_check(const char *out, const uint64_t *acked, int nact, const char *what,
                       persist_restore_info *ri) {
  store *s = mk();
  persist *p = NULL;
  int rc = persist_open(&p, s, out, PERSIST_WAL, ri);
  TH_CHECK_MSG(rc == IB_OK, "%s: restore refused: %s", what, ib_errmsg());
  int bad = 0;
  for (int a = 1; rc == IB_OK && a <= nact; a++) {
    store_actor_info ai;
    int g = store_actor_get(s, 1, (uint32_t)a, &ai);
    uint64_t have = g == IB_OK ? ai.highest_seq + 1 : 0;
    bool gapless = g != IB_OK || ai.inserts == have;
    if (have < acked[a] || !gapless) {
      bad++;
      TH_CHECK_MSG(false,
                   "%s: actor %d acknowledged seqs [0, %llu) but the restore holds %llu rows up to "
                   "seq %lld%s",
                   what, a, (unsigned long long)acked[a],
                   (unsigned long long)(g == IB_OK ? ai.inserts : 0), (long long)have - 1,
                   gapless ? "" : " with holes");
    }
  }
  persist_close(p);
  store_destroy(s);
  return bad;
}

/* Every combination of durable-only / whole / torn for the logs of dir, each restored, checked. */
static void crash_all(const char *dir, const uint64_t *acked, int nact, const char *stage, rng *r,
                      int *dropped_runs) {
  uint64_t ep[64];
  int n = list_logs(dir, ep, 64);
  IB_CHECK(n >= 1 && n <= 4);
  int combos = 1;
  for (int i = 0; i < n; i++) combos *= 3;
  for (int c = 0; c < combos; c++) {
    int pick[4], x = c;
    char what[160];
    int len = snprintf(what, sizeof what, "%s, logs cut", stage);
    for (int i = 0; i < n; i++, x /= 3) {
      pick[i] = x % 3;
      len += snprintf(what + len, sizeof what - (size_t)len, " %s",
                      pick[i] == 0   ? "durable"
                      : pick[i] == 1 ? "whole"
                                     : "torn");
    }
    char out[64];
    fx_tmpdir(out, sizeof out, "ibrl-cut-test");
    crash_copy(dir, out, pick, r);
    persist_restore_info ri;
    crash_check(out, acked, nact, what, &ri);
    if (ri.wal_dropped_logs > 0) (*dropped_runs)++;
    fx_rmdir_all(out);
  }
}

/* ---- cases ---- */

/* An fdatasync of the log is held at the gate (a disk that does not finish a flush): a checkpoint
 * must still complete, since its cut neither flushes nor waits for the running flush. The held
 * insert is then covered by the checkpoint, and its caller is acknowledged once its flush
 * returns. */
static void test_cut_does_not_wait_for_flush(void) {
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-cut-test");
  store *s = mk();
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_OK);
  TH_CHECK_EQ_INT(ins(s, 1, 0, 8), IB_OK);
  gate_set(1);
  ins_call c1 = {s, 1, 8, 12, 99};
  pthread_t t1;
  IB_CHECK(pthread_create(&t1, NULL, ins_thread, &c1) == 0);
  TH_CHECK_MSG(gate_wait_blocked(1), "the insert never reached fdatasync");
  ck_call ck;
  bool done = ck_start_wait(&ck, p);
  TH_CHECK_MSG(done,
               "the checkpoint did not return within %d s while a log flush was held: the cut "
               "waits for a disk flush",
               BOUND_S);
  if (!done) { /* let it finish (the store is held meanwhile), then stop */
    gate_set(0);
    ck_join(&ck);
    pthread_join(t1, NULL);
    persist_close(p);
    store_destroy(s);
    fx_rmdir_all(dir);
    return;
  }
  TH_CHECK_EQ_INT(gate_blocked(), 1); /* the held flush had still not returned */
  TH_CHECK_MSG(ck.rc == IB_OK, "checkpoint: %s", ib_errmsg());
  TH_CHECK(ck.ci.background);
  printf("  checkpoint with a flush held: store held %.3f ms\n", ck.ci.blocked_seconds * 1e3);
  /* While the flush is still held, samples go on (the store is not held). */
  store_batch b;
  store_batch_init(&b, 16, FX_O, FX_A);
  rng r;
  rng_seed(&r, 3, "test", 0, "cut");
  TH_CHECK_EQ_INT(store_sample(s, &r, 16, 0.0, &b), IB_OK);
  store_batch_free(&b);
  gate_set(0);
  ck_join(&ck);
  pthread_join(t1, NULL);
  TH_CHECK_EQ_INT(c1.rc, IB_OK);
  TH_CHECK_EQ_INT(ins(s, 1, 12, 16), IB_OK); /* the new log works */
  persist_close(p);
  store_destroy(s);
  uint64_t acked[2] = {0, 16};
  persist_restore_info ri;
  TH_CHECK_EQ_INT(crash_check(dir, acked, 1, "after close", &ri), 0);
  TH_CHECK_EQ_INT(ri.ckpt_epoch, 1);
  fx_rmdir_all(dir);
}

/* Rows logged before a cut but acknowledged after it, with a crash copy at each step. Actor 1's
 * batch is held in its flush of log 0 at the gate; actor 3's batch is appended to log 0 behind it
 * (not covered by that flush); then a checkpoint's cut (the checkpoint fails, so log 0 stays the
 * pending previous log) and actor 2's batch in log 1. Before the gate opens nothing of theirs is
 * acknowledged, and a copy where log 1 reached the disk but log 0's tail did not must drop log 1.
 * After it opens all three are acknowledged: log 0 had to be flushed in full before log 1 counted,
 * so no crash copy may lose them. */
static void test_ack_after_cut_survives_crash(void) {
  char dir[64], path0[128], path1[128], planted[128];
  fx_tmpdir(dir, sizeof dir, "ibrl-cut-test");
  snprintf(path0, sizeof path0, "%s/store.wal.%016x", dir, 0);
  snprintf(path1, sizeof path1, "%s/store.wal.%016x", dir, 1);
  snprintf(planted, sizeof planted, "%s/store.ckpt.tmp", dir);
  const long rec = 16 + 4 * ((2 * FX_O + FX_A + 2) * 4 + 32),
             link = 16 + (2 * FX_O + FX_A + 2) * 4 + 32;
  store *s = mk();
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_OK);
  TH_CHECK_EQ_INT(ins(s, 1, 0, 4), IB_OK);
  TH_CHECK_EQ_INT(ins(s, 1, 4, 8), IB_OK);
  rng r;
  rng_seed(&r, 17, "test", 0, "crash-copies");
  int dropped = 0;
  uint64_t acked[4] = {0, 8, 0, 0};
  crash_all(dir, acked, 3, "before the cut", &r, &dropped);

  gate_set(1);
  ins_call c1 = {s, 1, 8, 12, 99}, c3 = {s, 3, 0, 4, 99}, c2 = {s, 2, 0, 4, 99};
  pthread_t t1, t2, t3;
  IB_CHECK(pthread_create(&t1, NULL, ins_thread, &c1) == 0);
  TH_CHECK_MSG(gate_wait_blocked(1), "actor 1's insert never reached fdatasync");
  IB_CHECK(pthread_create(&t3, NULL, ins_thread, &c3) == 0);
  TH_CHECK_MSG(wait_size(path0, 44 + 4 * rec), "actor 3's batch was not appended to log 0");
  TH_CHECK_EQ_INT(ck_fail_while_held(p, planted), IB_EIO); /* the cut happened, the file was not written */
  IB_CHECK(pthread_create(&t2, NULL, ins_thread, &c2) == 0);
  TH_CHECK_MSG(wait_size(path1, 44 + link + rec), "actor 2's batch was not appended to log 1");
  TH_CHECK_EQ_INT(c1.rc + c2.rc + c3.rc, 3 * 99); /* nobody acknowledged yet */
  crash_all(dir, acked, 3, "after the cut, flush held", &r, &dropped);
  TH_CHECK_MSG(dropped > 0, "no crash copy dropped log 1 although log 0's tail was not durable");
  /* The copy that matters most: log 1 reached the disk, log 0's tail did not. Log 1 must go, so
   * actor 2's batch is not restored (it would sit after actor 3's lost one). */
  {
    char out[64];
    fx_tmpdir(out, sizeof out, "ibrl-cut-test");
    int pick[2] = {0, 1};
    crash_copy(dir, out, pick, &r);
    store *t = mk();
    persist *q = NULL;
    persist_restore_info ri;
    TH_CHECK_EQ_INT(persist_open(&q, t, out, PERSIST_WAL, &ri), IB_OK);
    store_actor_info ai;
    TH_CHECK_EQ_INT(store_actor_get(t, 1, 2, &ai), IB_ENOTFOUND);
    TH_CHECK_EQ_INT(store_actor_get(t, 1, 3, &ai), IB_ENOTFOUND);
    TH_CHECK_EQ_INT(ri.wal_dropped_logs, 1);
    TH_CHECK_EQ_INT(ri.wal_dropped_bytes, link + rec);
    persist_close(q);
    store_destroy(t);
    fx_rmdir_all(out);
  }
  gate_set(0);
  pthread_join(t1, NULL);
  pthread_join(t3, NULL);
  pthread_join(t2, NULL);
  TH_CHECK_EQ_INT(c1.rc, IB_OK);
  TH_CHECK_EQ_INT(c3.rc, IB_OK);
  TH_CHECK_EQ_INT(c2.rc, IB_OK);
  acked[1] = 12, acked[2] = 4, acked[3] = 4;
  TH_CHECK_EQ_INT(fs_durable_len(path0, 44), 44 + 4 * rec); /* log 0 was flushed to its end */
  crash_all(dir, acked, 3, "after the acks", &r, &dropped);
  /* The next checkpoint settles everything. */
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL), IB_OK);
  crash_all(dir, acked, 3, "after a good checkpoint", &r, &dropped);
  persist_close(p);
  store_destroy(s);
  fx_rmdir_all(dir);
}

/* A failed flush of the previous log: the rows after it cannot be acknowledged (IB_EIO, appends
 * refused too) until a checkpoint covers the hole; then the store takes inserts again, and the rows
 * that were in memory at that checkpoint are restored. */
static void test_prev_flush_failure(void) {
  char dir[64], path0[128], planted[128];
  fx_tmpdir(dir, sizeof dir, "ibrl-cut-test");
  snprintf(path0, sizeof path0, "%s/store.wal.%016x", dir, 0);
  snprintf(planted, sizeof planted, "%s/store.ckpt.tmp", dir);
  store *s = mk();
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_OK);
  TH_CHECK_EQ_INT(ins(s, 1, 0, 4), IB_OK);
  gate_set(1);
  ins_call c1 = {s, 1, 4, 8, 99}, c2 = {s, 2, 0, 4, 99};
  pthread_t t1, t2;
  IB_CHECK(pthread_create(&t1, NULL, ins_thread, &c1) == 0);
  TH_CHECK_MSG(gate_wait_blocked(1), "the insert never reached fdatasync");
  (void)ck_fail_while_held(p, planted);
  IB_CHECK(pthread_create(&t2, NULL, ins_thread, &c2) == 0);
  char path1[128];
  snprintf(path1, sizeof path1, "%s/store.wal.%016x", dir, 1);
  const long rec = 16 + 4 * ((2 * FX_O + FX_A + 2) * 4 + 32),
             link = 16 + (2 * FX_O + FX_A + 2) * 4 + 32;
  TH_CHECK_MSG(wait_size(path1, 44 + link + rec), "actor 2's batch was not appended to log 1");
  fail_next(1); /* the held flush of log 0 fails */
  gate_set(0);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  TH_CHECK_EQ_INT(c1.rc, IB_EIO);
  TH_CHECK_EQ_INT(c2.rc, IB_EIO); /* after the hole: never durable through the log */
  TH_CHECK_EQ_INT(ins(s, 3, 0, 4), IB_EIO);
  TH_CHECK(strstr(ib_errmsg(), "store.wal.0000000000000001") != NULL &&
           strstr(ib_errmsg(), "HINT") != NULL);
  TH_CHECK_EQ_INT(persist_checkpoint(p, NULL), IB_OK); /* covers the hole, starts log 2 */
  TH_CHECK_EQ_INT(ins(s, 3, 0, 4), IB_OK);
  persist_close(p);
  store_destroy(s);
  /* Rows 1:[0,8) and 2:[0,4) were in memory at the checkpoint; 3:[0,4) came after it. */
  uint64_t acked[4] = {0, 8, 4, 4};
  persist_restore_info ri;
  TH_CHECK_EQ_INT(crash_check(dir, acked, 3, "after the failure and a checkpoint", &ri), 0);
  fx_rmdir_all(dir);
}

/* Many threads inserting while checkpoints run (every third one failing, so previous logs stay
 * pending for a while), and crash copies taken meanwhile: every row acknowledged before a copy
 * began is in its restore. */
typedef struct stress {
  store *s;
  persist *p;
  uint32_t actor;
  volatile int stop;
  uint64_t acked; /* seqs [0, acked) acknowledged; read with __atomic */
  int errors;
  int ckpts, ckpt_failed;
  char planted[128];
} stress;

static void *stress_inserter(void *arg) {
  stress *w = arg;
  for (uint64_t q = 0; q + 4 <= CAP / 4 && !__atomic_load_n(&w->stop, __ATOMIC_RELAXED); q += 4) {
    if (ins(w->s, w->actor, q, q + 4) != IB_OK) {
      w->errors++;
      break;
    }
    __atomic_store_n(&w->acked, q + 4, __ATOMIC_RELEASE);
  }
  return NULL;
}

static void *stress_checkpointer(void *arg) {
  stress *c = arg;
  for (int i = 0; !__atomic_load_n(&c->stop, __ATOMIC_RELAXED); i++) {
    bool fail = i % 3 == 2;
    if (fail) IB_CHECK(mkdir(c->planted, 0755) == 0);
    int rc = persist_checkpoint(c->p, NULL);
    if (fail) rmdir(c->planted);
    if (rc == IB_OK)
      c->ckpts++;
    else
      c->ckpt_failed++;
    if (rc != IB_OK && !fail) c->errors++;
    struct timespec ts = {0, 3 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static void test_crash_copies_under_load(void) {
  enum { NW = 3, COPIES = 24 };
  char dir[64];
  fx_tmpdir(dir, sizeof dir, "ibrl-cut-test");
  pthread_mutex_lock(&fs_mu);
  rng_seed(&fs_rng, 29, "test", 0, "jitter");
  fs_jitter = 1;
  pthread_mutex_unlock(&fs_mu);
  store *s = mk();
  persist *p = NULL;
  TH_CHECK_EQ_INT(persist_open(&p, s, dir, PERSIST_WAL, NULL), IB_OK);
  stress w[NW + 1];
  memset(w, 0, sizeof w);
  pthread_t th[NW + 1];
  for (int i = 0; i <= NW; i++) {
    w[i].s = s;
    w[i].p = p;
    w[i].actor = (uint32_t)(i + 1);
    snprintf(w[i].planted, sizeof w[i].planted, "%s/store.ckpt.tmp", dir);
    IB_CHECK(pthread_create(&th[i], NULL, i < NW ? stress_inserter : stress_checkpointer, &w[i]) ==
             0);
  }
  rng r;
  rng_seed(&r, 23, "test", 0, "crash-copies");
  int dropped = 0, torn = 0, max_logs = 0;
  for (int k = 0; k < COPIES; k++) {
    struct timespec ts = {0, (long)(2 + rng_below(&r, 12)) * 1000000L};
    nanosleep(&ts, NULL);
    uint64_t acked[NW + 1] = {0};
    for (int i = 0; i < NW; i++) acked[i + 1] = __atomic_load_n(&w[i].acked, __ATOMIC_ACQUIRE);
    char out[64], what[64];
    fx_tmpdir(out, sizeof out, "ibrl-cut-test");
    int pick[64];
    for (int i = 0; i < 64; i++) pick[i] = (int)rng_below(&r, 3);
    int n = crash_copy(dir, out, pick, &r);
    if (n > max_logs) max_logs = n;
    snprintf(what, sizeof what, "crash copy %d (%d logs)", k, n);
    persist_restore_info ri;
    crash_check(out, acked, NW, what, &ri);
    dropped += ri.wal_dropped_logs > 0;
    torn += ri.wal_torn_bytes > 0;
    fx_rmdir_all(out);
  }
  for (int i = 0; i <= NW; i++) __atomic_store_n(&w[i].stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i <= NW; i++) pthread_join(th[i], NULL);
  pthread_mutex_lock(&fs_mu);
  fs_jitter = 0;
  pthread_mutex_unlock(&fs_mu);
  int errors = 0;
  for (int i = 0; i <= NW; i++) errors += w[i].errors;
  TH_CHECK_EQ_INT(errors, 0);
  TH_CHECK(w[NW].ckpts > 0);
  printf(
      "  %d crash copies: %d with later logs dropped, %d with a torn tail, up to %d logs; %d "
      "checkpoints (%d made to fail); acked rows %llu/%llu/%llu\n",
      COPIES, dropped, torn, max_logs, w[NW].ckpts + w[NW].ckpt_failed, w[NW].ckpt_failed,
      (unsigned long long)w[0].acked, (unsigned long long)w[1].acked,
      (unsigned long long)w[2].acked);
  persist_close(p);
  store_destroy(s);
  /* And the clean end: close, restore, every acknowledged row. */
  uint64_t acked[NW + 1] = {0};
  for (int i = 0; i < NW; i++) acked[i + 1] = w[i].acked;
  persist_restore_info ri;
  TH_CHECK_EQ_INT(crash_check(dir, acked, NW, "after close", &ri), 0);
  fx_rmdir_all(dir);
}

static const th_case cases[] = {
    {"the cut does not wait for a held log flush", test_cut_does_not_wait_for_flush},
    {"rows acknowledged after the cut survive any crash copy", test_ack_after_cut_survives_crash},
    {"a failed flush of the previous log refuses the rows after it", test_prev_flush_failure},
    {"crash copies while threads insert and checkpoints run", test_crash_copies_under_load},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  return th_main(argc, argv, cases);
}
