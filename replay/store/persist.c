/* persist.c: checkpoints and the write-ahead log of a replay store (file formats and the crash
 * rules are in persist.h; this is how they are kept). This file has the small I/O helpers, the
 * health state, the recovery checkpoint and the public calls (open, checkpoint, barrier, close);
 * persist_ckpt.c writes and reads the checkpoint file, persist_wal.c keeps the log; what the three
 * share is in persist_impl.h (persist__ names).
 *
 * Checkpoint file (native little-endian, checked through an endian word):
 *   file header   magic "IBRLCKPT", u32 version, u32 endian 0x01020304, u32 ntables, u32 0,
 *                 u64 epoch
 *   table headers ntables x { spec, stride, head, size, counters, nactors }
 *   table bodies  ntables x { actor entries, records [size x stride] floats, proposer[size],
 *                 flags[size], actor_id[size], seq[size], wv[size] }
 *   footer        u32 CRC-32 of every byte before it, magic "IBRLDONE"
 * Restore first streams the file once to check the CRC and the footer, and only then parses, so
 * a damaged file never half-fills the store.
 *
 * Checkpoints do not stop the store. persist_checkpoint takes every table's write lock only for
 * the cut: it switches appends to the log of the next epoch (created and fsynced beforehand) and
 * fork()s. No disk flush happens under the locks, and the cut does not wait for one that is
 * running: a flush of the old log takes as long as the disk wants, and every insert and sample of
 * the shard would wait for it. The child process owns a copy-on-write image of the store at the
 * cut, reserves the file's whole size (statfs, then fallocate: a disk without room fails the
 * checkpoint before any byte is written) and writes the file with plain write() calls from a
 * buffer allocated before the fork (no malloc, no locks, no stdio in the child), then reports
 * through a pipe and _exit()s. The parent
 * releases the locks at once, so inserts and samples continue while the child writes; only pages
 * the parent modifies meanwhile are copied by the kernel. If fork() fails (e.g. strict
 * overcommit), the same writer runs in the calling thread with the locks held, as Reverb does.
 *
 * Log files store.wal.<epoch, 16 hex digits>: header { magic "IBRLWAL1", u32 version, u32 endian,
 * u64 epoch, u32 ntables, u32 obs_dim, u32 act_dim, u32 CRC of the header before it }, then
 * records { u32 payload length, u32 CRC of the payload, payload = u32 table, u32 n, n fixed-size
 * items }. Log k holds the batches stored after cut k. A record is built in a preallocated buffer
 * and written with one write() under the log mutex (the store calls the append hook with the
 * table's write lock held, so log order = memory order per table). Every log made by a cut starts
 * with a link record: table LINK_TABLE, one item whose seq is the previous log's epoch and whose
 * weight_version is that log's length in bytes at the cut (its actor_id is LINK_ACTOR, so tools
 * that walk records see an item of nobody). A link has the shape of an ordinary record so that
 * readers of the format (tests/bench/soak/soak_tear.c) need not know it.
 *
 * Durability is group commit over a chain of at most two open logs. Positions are logical byte
 * counts that only grow across log switches: `written` (appended), `synced` (durable), and, after
 * a cut, `cut_pos` (the logical end of the previous log). One fdatasync runs at a time, outside the
 * mutex (sync_fd says on which fd); a syncer whose ticket is not yet durable either waits for the
 * running one or becomes the syncer. Bytes become durable in log order: while the previous log is
 * pending (synced < cut_pos), a syncer first fdatasyncs it (target cut_pos) and only then the
 * current log (target written), so synced passes cut_pos only once the whole previous log, and its
 * tail that ends where the next log's link says, is on disk. A completed checkpoint (file renamed,
 * directory fsynced) also makes everything before its cut durable, so it advances synced to
 * cut_pos itself. The previous log is closed once it is durable or covered and no fdatasync is
 * running on it (else the running syncer closes it when it returns: zombie_fd), so no fd is
 * flushed after it was closed or reused. A syncer that was already flushing the old log when the
 * cut came stays correct: its target is <= cut_pos. Before the next cut the previous log must be
 * settled: persist_checkpoint syncs it first, outside the store locks (it is pending then only
 * if the last checkpoint failed).
 *
 * Errors: a failed write or fdatasync breaks the chain: the tickets in (synced, written] at that
 * moment can never become durable through the log (a restore drops everything after a hole) and
 * get IB_EIO (lost_lo, lost_hi: ranges are merged, which may refuse an in-flight ticket that was
 * durable, never the reverse), and appends fail with IB_EIO until a checkpoint starts a fresh
 * log. A cut over a broken chain keeps the hole: the old log becomes a previous log that only
 * the checkpoint of that cut can cover (prev_broken), so tickets of the fresh log wait for it; if
 * it fails, they are refused too and the next checkpoint tries again.
 *
 * Health. Nothing here retries: the caller asks persist_health_get and decides (ibrl-replay's main
 * loop retries the checkpoint with backoff). Every failure notes its operation, file and errno
 * under mu and starts the "since" clock; a checkpoint whose cut is past every lost ticket
 * (covered_pos >= lost_hi) ends it. The rows of lost tickets are in memory (the store applies a
 * batch before it syncs it): an actor's retry of them is a duplicate, and before this the shard
 * acknowledged it although the row was in no durable place. persist_barrier lets the server hold
 * such an acknowledgement until the rows are durable (synced through the log, or covered by a
 * checkpoint's cut), and refuse it while they cannot be.
 *
 * Restore: checkpoint k (or none: k = 0), then logs k, k+1, ... in order (more than one exists
 * only if a checkpoint failed after its cut, or a crash hit between a cut and the checkpoint).
 * Logs older than k are already in the checkpoint and are deleted; a gap in the chain, or a first
 * log newer than the checkpoint, means data is missing and is refused. A log that ends early is
 * the trace of a machine crash before its tail was synced: either a record fails its length or CRC
 * check, or the log is whole but shorter than the next log's link says. Its tail was never
 * acknowledged, and neither was anything in the later logs (acks there needed the whole previous
 * log durable), but those later records were stored after the lost ones: replaying them would let
 * an actor's dedup window run past the lost rows, and a client retrying them would be told
 * "duplicate". So the later logs are deleted (newest first, the directory fsynced after each
 * one, so that no crash leaves a gap even where directory operations are not committed in order),
 * and only then is the short log truncated: a crash in between leaves the tear in place to be
 * found again.
 *
 * End of recovery (PERSIST_WAL): what the restore read of the logs may be only in the page cache
 * (a killed process's unflushed tail, or pages whose writeback failed and that the kernel marked
 * clean: a later fdatasync returns 0 and they never reach the disk, so syncing the replayed logs
 * proves nothing). Nothing may be acknowledged on top of them, neither a retry of their rows as a
 * duplicate nor new records in a later log, or a machine crash tears the old log and the rule
 * above drops the later ones, acknowledged rows included. So when the restore found records or
 * torn bytes in a log (beyond the link a checkpoint's log starts with) or dropped a log,
 * persist_open counts the restored rows as one lost ticket in a broken log and writes a
 * checkpoint at once (recovery_ckpt): its cut makes the old log a broken previous log that only
 * that checkpoint covers, exactly like the healing after an fdatasync error. If it succeeds, the
 * old logs are deleted and appends go to the fresh log; if it fails, the shard starts in that
 * broken state and the caller's healing checkpoint ends it. */
#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ib.h"
#include "log.h"
#include "persist_impl.h"

/* ---- small I/O helpers ---- */

int persist__io_fail(const char *what, const char *path) {
  return ib_fail(IB_EIO,
                 "%s '%s' failed: %s (HINT: check that the directory exists, is writable "
                 "and the disk is not full)",
                 what, path, strerror(errno));
}

int persist__write_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t k = write(fd, b, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    b += k;
    n -= (size_t)k;
  }
  return 0;
}

int persist__fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return persist__io_fail("open directory", dir);
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc == 0 ? IB_OK : persist__io_fail("fsync directory", dir);
}

/* n bytes for a message: "N bytes" below 1 MB, else "X.Y MB". */
static const char *fmt_size(char *out, size_t cap, uint64_t n) {
  if (n < 1000000)
    snprintf(out, cap, "%llu bytes", (unsigned long long)n);
  else
    snprintf(out, cap, "%.1f MB", (double)n / 1e6);
  return out;
}

int64_t persist__dir_free_bytes(const char *dir) {
  struct statfs v;
  if (statfs(dir, &v) != 0) return -1;
  uint64_t blocks = geteuid() == 0 ? (uint64_t)v.f_bfree : (uint64_t)v.f_bavail;
  return (int64_t)(blocks * (uint64_t)(v.f_frsize ? v.f_frsize : v.f_bsize));
}

size_t persist__item_bytes(const store_spec *sp) {
  return (size_t)(2 * sp->obs_dim + sp->act_dim + 2) * sizeof(float) + 4 + 4 + 8 + 8 + 8;
}

/* ---- health ---- */

static uint64_t unix_ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)(ts.tv_nsec / 1000000);
}

void persist__health_trouble(persist *p) {
  if (p->since_ns != 0) return;
  p->since_ns = ib_now_ns();
  p->since_unix_ms = unix_ms_now();
}

void persist__health_note(persist *p, const char *op, const char *path, int err) {
  snprintf(p->last_error, sizeof p->last_error, "%s '%s': %s", op, path, strerror(err));
  p->io_errors++;
  if (p->since_ns == 0) {
    snprintf(p->cause, sizeof p->cause, "%s", p->last_error);
    p->cause_errno = err;
  }
  persist__health_trouble(p);
}

static bool health_undurable(const persist *p) { return p->lost_hi > p->covered_pos; }

/* Whether only a checkpoint can restore durability (mu held). */
static bool health_needs_ckpt(const persist *p) {
  return p->broken || (p->prev_fd >= 0 && p->prev_broken) || health_undurable(p);
}

void persist__health_settle(persist *p) {
  if (health_needs_ckpt(p) || p->append_failing) return;
  p->since_ns = p->since_unix_ms = 0;
  p->failed_ckpts = 0;
  p->cause[0] = '\0';
  p->cause_errno = 0;
}

/* ---- the recovery checkpoint ---- */

/* The end-of-recovery checkpoint (PERSIST_WAL; see the top of this file): persist_open read log
 * content past the checkpoint, which the disk may not hold, so it is made durable from memory
 * before anything can be acknowledged again. Until then the restored rows count as one lost
 * ticket (logical position 1) in a broken log: appends and persist_barrier are refused, and only
 * a checkpoint, this one or a later one, can cover them (its cut turns the log into a broken
 * previous log). If it fails, persist_open still succeeds, in that state: persist_health_get
 * says why and the caller retries the checkpoint. */
static void recovery_ckpt(persist *p, persist_restore_info *ri) {
  bool wal = p->mode == PERSIST_WAL;
  if (wal) {
    pthread_mutex_lock(&p->mu);
    p->written = 1;
    p->broken = true;
    persist__wal_mark_lost(p); /* (lost_lo, lost_hi] = (0, 1]; starts the "since" clock */
    pthread_mutex_unlock(&p->mu);
  }
  uint64_t t0 = ib_now_ns();
  persist_ckpt_info ci;
  int rc = persist_checkpoint(p, &ci);
  ri->recovery_ckpt = true;
  ri->recovery_ckpt_seconds = (double)(ib_now_ns() - t0) * 1e-9;
  if (rc == IB_OK) {
    ri->recovery_ckpt_epoch = ci.epoch;
    return;
  }
  if (!wal) { /* checkpoint-only (a salvage): nothing to refuse, the next checkpoint tries again */
    ri->recovery_ckpt_failed = true;
    log_error("persist: the checkpoint after the restore failed; the restored rows are in memory "
              "only until a checkpoint succeeds: %s", ib_errmsg());
    return;
  }
  pthread_mutex_lock(&p->mu);
  bool covered = !health_undurable(p); /* it is durable; only deleting the old logs failed */
  if (!covered && p->cause[0] == '\0') { /* the failed checkpoint is the cause */
    snprintf(p->cause, sizeof p->cause,
             "the checkpoint after a restore from the log failed: %.300s", p->last_error);
    p->cause_errno = p->ckpt_errno;
  }
  pthread_mutex_unlock(&p->mu);
  if (covered) {
    ri->recovery_ckpt_epoch = p->epoch;
    log_warn("persist: the checkpoint after the restore is durable, but: %s", ib_errmsg());
    return;
  }
  ri->recovery_ckpt_failed = true;
  log_error("persist: the checkpoint after the restore from the log failed; inserts are refused "
            "until a checkpoint succeeds: %s", ib_errmsg());
}

/* ---- public ---- */

uint64_t persist_ckpt_bytes(store *s, bool at_capacity) {
  IB_CHECK(s != NULL);
  store__lock_all(s);
  uint64_t n = persist__ckpt_image_bytes(s, at_capacity);
  store__unlock_all(s);
  return n;
}

/* Warns when the directory's free space cannot hold the largest checkpoint this store can make
 * (each one is written next to the last before it replaces it). Only a warning: a disk may grow,
 * and a store that never fills needs less. */
static void space_check(const persist *p) {
  uint64_t full = persist_ckpt_bytes(p->s, true);
  int64_t freeb = persist__dir_free_bytes(p->dir);
  char have[32], need[32];
  if (freeb >= 0 && (uint64_t)freeb < full)
    log_warn("persist: '%s' has %s free, but a checkpoint of this store at capacity takes %s "
             "(HINT: give the shard a larger disk or smaller tables, or checkpoints will fail "
             "with 'No space left on device' once the tables fill)",
             p->dir, fmt_size(have, sizeof have, (uint64_t)freeb),
             fmt_size(need, sizeof need, full));
}

int persist__open_check(store *s, const char *dir, persist_mode mode) {
  if (mode != PERSIST_CKPT_ONLY && mode != PERSIST_WAL)
    return ib_fail(IB_EINVAL, "persist: unknown durability mode %d (HINT: checkpoint-only or wal)",
                   (int)mode);
  if (strlen(dir) == 0 || strlen(dir) >= PATH_MAX_LEN)
    return ib_fail(IB_EINVAL, "persist: directory name '%s' is empty or too long", dir);
  if (s->log_append != NULL)
    return ib_fail(IB_ESTATE, "persist: this store already has durability attached");
  for (int t = 0; t < s->ntables; t++)
    if (s->tables[t].size != 0 || s->tables[t].total_inserts != 0)
      return ib_fail(IB_ESTATE,
                     "persist: table '%s' already holds items; restore needs an empty store "
                     "(HINT: call persist_open right after store_create)",
                     s->tables[t].spec.name);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return persist__io_fail("create directory", dir);
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return ib_fail(IB_EIO,
                   "persist: '%s' is not a directory (HINT: give a directory for the store's "
                   "checkpoint and log)",
                   dir);
  return IB_OK;
}

persist *persist__new(store *s, const char *dir, persist_mode mode) {
  persist *p = ib_xcalloc(1, sizeof *p);
  p->s = s;
  p->mode = mode;
  p->fd = p->prev_fd = p->sync_fd = p->zombie_fd = -1;
  snprintf(p->dir, sizeof p->dir, "%s", dir);
  snprintf(p->ckpt_path, sizeof p->ckpt_path, "%s/store.ckpt", dir);
  snprintf(p->ckpt_tmp, sizeof p->ckpt_tmp, "%s/store.ckpt.tmp", dir);
  size_t maxib = 0;
  for (int t = 0; t < s->ntables; t++) maxib = IB_MAX(maxib, persist__item_bytes(&s->tables[t].spec));
  p->buf_cap = 16 + (size_t)s->cfg.max_insert_batch * maxib;
  p->buf = ib_xmalloc(p->buf_cap);
  p->wbuf = ib_xmalloc(WBUF_BYTES);
  IB_CHECK(pthread_mutex_init(&p->mu, NULL) == 0);
  IB_CHECK(pthread_cond_init(&p->cv, NULL) == 0);
  IB_CHECK(pthread_mutex_init(&p->ckpt_mu, NULL) == 0);
  return p;
}

int persist__open_fail(persist *p, int rc) {
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", ib_errmsg());
  store__lock_all(p->s);
  persist__tables_clear(p->s);
  store__unlock_all(p->s);
  persist_close(p);
  return ib_fail(rc, "%s", msg);
}

int persist__open_log(persist *p, bool append) {
  if (p->mode != PERSIST_WAL) return IB_OK;
  if (!append) {
    p->fd_len = WAL_HDR;
    return persist__wal_create(p, p->epoch, &p->fd, p->wal_path);
  }
  persist__wal_name(p, p->epoch, p->wal_path, sizeof p->wal_path);
  p->fd = open(p->wal_path, O_WRONLY | O_APPEND | O_CLOEXEC);
  struct stat lst;
  if (p->fd < 0 || fstat(p->fd, &lst) != 0) return persist__io_fail("open log for appending", p->wal_path);
  p->fd_len = (uint64_t)lst.st_size;
  return IB_OK;
}

void persist__open_finish(persist *p, bool recover, persist_restore_info *ri) {
  persist__counts_apply(p, ri);
  if (p->mode == PERSIST_WAL) store_log_hook_set(p->s, persist__wal_append, persist__wal_sync, p);
  space_check(p);
  if (recover) recovery_ckpt(p, ri);
}

int persist_open(persist **out, store *s, const char *dir, persist_mode mode,
                 persist_restore_info *info) {
  IB_CHECK(out != NULL && s != NULL && dir != NULL);
  *out = NULL;
  persist_restore_info ri;
  memset(&ri, 0, sizeof ri);
  int rc = persist__open_check(s, dir, mode);
  if (rc != IB_OK) return rc;
  persist *p = persist__new(s, dir, mode);

  uint64_t epoch = 0, items = 0, content = 0;
  rc = persist__ckpt_load(p, &epoch, &items);
  if (rc == IB_OK) {
    ri.ckpt_found = true;
    ri.ckpt_epoch = epoch;
    ri.ckpt_items = items;
  } else if (rc == IB_ENOTFOUND) {
    rc = IB_OK;
  }
  /* The chain of logs to replay: epoch, epoch + 1, ... with no gap. */
  uint64_t ep[MAX_LOGS];
  int nlogs = 0, first = 0;
  if (rc == IB_OK) {
    nlogs = persist__wal_list(p, ep, MAX_LOGS);
    if (nlogs < 0) rc = nlogs;
  }
  if (rc == IB_OK) {
    while (first < nlogs && ep[first] < epoch) first++;
    ri.wal_stale = first > 0;
    if (first < nlogs && ep[first] != epoch)
      rc = ib_fail(
        IB_EMISSING,
          "directory '%s': the oldest log has epoch %llu but the checkpoint has "
          "epoch %llu%s, so the records in between are missing (HINT: put back the matching "
          "store.ckpt, or move the logs away to accept the loss)",
          dir, (unsigned long long)ep[first], (unsigned long long)epoch,
          ri.ckpt_found ? "" : " (none found)");
    for (int i = first + 1; rc == IB_OK && i < nlogs; i++)
      if (ep[i] != ep[i - 1] + 1)
        rc = ib_fail(
        IB_EMISSING,
            "directory '%s': log epoch %llu follows %llu; a log in between is "
            "missing (HINT: restore the missing store.wal.* file, or move the later logs away "
            "to accept the loss)",
            dir, (unsigned long long)ep[i], (unsigned long long)ep[i - 1]);
  }
  if (rc == IB_OK && first < nlogs) /* may delete logs at the end of the chain: nlogs drops */
    rc = persist__wal_chain_replay(p, ep + first, &nlogs, nlogs - first, &ri, &content);
  p->epoch = (first < nlogs) ? ep[nlogs - 1] : epoch;
  if (rc == IB_OK) rc = persist__open_log(p, first < nlogs);
  if (rc == IB_OK && ri.wal_stale) {
    log_info("persist: removing logs older than checkpoint epoch %llu (their records are in it)",
             (unsigned long long)epoch);
    rc = persist__wal_remove_older(p, epoch, NULL);
  }
  if (rc != IB_OK) return persist__open_fail(p, rc);
  persist__open_finish(p, mode == PERSIST_WAL && (content > 0 || ri.wal_dropped_logs > 0), &ri);
  if (info) *info = ri;
  *out = p;
  return IB_OK;
}

/* A checkpoint failed with `err` (0 if unknown): keep its message (ib_errmsg(), naming the step
 * and the file). */
static void ckpt_note_failure(persist *p, int err) {
  pthread_mutex_lock(&p->mu);
  snprintf(p->last_error, sizeof p->last_error, "%s", ib_errmsg());
  p->ckpt_errno = err;
  p->io_errors++;
  if (p->since_ns != 0) p->failed_ckpts++;
  pthread_mutex_unlock(&p->mu);
}

int persist_checkpoint(persist *p, persist_ckpt_info *info) {
  IB_CHECK(p != NULL);
  store *s = p->s;
  pthread_mutex_lock(&p->ckpt_mu);
  uint64_t t0 = ib_now_ns();
  /* Only checkpoints change the epoch and the log fds, and they are serialised by ckpt_mu, so the
   * epoch can be read here without the log mutex (they change it under mu as well). The next log
   * is created (and fsynced) before the store is held: if we crash before the cut it is just an
   * empty log at the end of the chain. */
  uint64_t next = p->epoch + 1;
  int nfd = -1;
  char npath[PATH_MAX_LEN + 32];
  if (p->mode == PERSIST_WAL) {
    int rc = persist__wal_create(p, next, &nfd, npath);
    if (rc != IB_OK) {
      ckpt_note_failure(p, errno);
      pthread_mutex_unlock(&p->ckpt_mu);
      return rc;
    }
    persist__wal_prev_flush(p);
  }
  uint64_t t_lock = ib_now_ns();
  store__lock_all(s);
  uint64_t cut_at = 0; /* every ticket <= cut_at is a row this checkpoint holds */
  pthread_mutex_lock(&p->mu); /* persist_counts_save reads the epoch under mu alone */
  if (p->mode == PERSIST_WAL) {
    cut_at = p->written;
    persist__wal_cut(p, nfd, npath);
  }
  p->epoch = next;
  pthread_mutex_unlock(&p->mu);
  int rc = IB_OK;
  uint64_t samples[STORE_MAX_TABLES] = {0}, items = 0;
  for (int t = 0; t < s->ntables; t++) {
    pthread_mutex_lock(&s->tables[t].stat_mu);
    samples[t] = s->tables[t].total_samples;
    pthread_mutex_unlock(&s->tables[t].stat_mu);
    items += s->tables[t].size;
  }
  /* ib_crc32 builds its table under pthread_once: make sure that happened before the fork, so
   * the child can never inherit a half-run initialisation. */
  (void)ib_crc32(0, "", 0);
  /* Fork a writer that owns a copy-on-write image of this cut; fall back to writing here. The log
   * mutex is not held across the fork (the child never touches it), so syncers of the old log go
   * on while the kernel copies the page tables. */
  ck_result res = {CK_OK, 0, 0};
  int pfd[2] = {-1, -1};
  pid_t pid = -1;
  if (pipe2(pfd, O_CLOEXEC) == 0) {
    pid_t parent = getpid();
    pid = fork();
    if (pid == 0) {
      /* If the server dies (even by SIGKILL), the writer dies too: an orphan finishing later could
       * rename an old checkpoint over a newer one written by the restarted server. The forking
       * thread waits for the writer, so "parent thread exits" means the server died. */
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(1);
      /* The writer finishes even if the terminal or the launcher signals the whole process group
       * (the parent waits for it, and SIGKILL still works). */
      signal(SIGINT, SIG_IGN);
      signal(SIGTERM, SIG_IGN);
      close(pfd[0]);
      res = persist__ckpt_write_image(p, next, samples);
      (void)!write(pfd[1], &res, sizeof res);
      _exit(res.step == CK_OK ? 0 : 1);
    }
    close(pfd[1]);
    if (pid < 0) close(pfd[0]);
  }
  bool forked = pid > 0;
  if (!forked) {
    log_warn("persist: fork for a background checkpoint failed (%s); writing with the store locked",
             strerror(errno));
    res = persist__ckpt_write_image(p, next, samples);
  }
  store__unlock_all(s);
  uint64_t t_unlock = ib_now_ns();
  if (forked) {
    ssize_t k;
    do {
      k = read(pfd[0], &res, sizeof res);
    } while (k < 0 && errno == EINTR);
    if (k != (ssize_t)sizeof res) res = (ck_result){CK_WRITE, ECHILD, 0};
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  /* The writer shared the arenas copy-on-write: every record written meanwhile split its huge page
   * (store_huge_collapse). Mend them now that nothing shares them; the store is not held. The
   * kernel copies each split 2 MiB region (about 0.3 s for 190 MB all split, on the development
   * VM), so a shard whose inserts rewrite its ring during every checkpoint would spend most of a
   * short period mending what the next fork splits again: mending waits until 10 times its last
   * length has passed since it ended, which caps it at a tenth of one thread. */
  double huge_s = 0;
  uint64_t huge_bytes = 0;
  uint64_t h0 = ib_now_ns();
  if (forked && h0 - p->huge_at_ns >= 10 * p->huge_ns) {
    huge_bytes = store_huge_collapse(s);
    p->huge_at_ns = ib_now_ns();
    p->huge_ns = p->huge_at_ns - h0;
    huge_s = (double)p->huge_ns * 1e-9;
  }
  if (p->mode == PERSIST_WAL) persist__wal_ckpt_done(p, res.step == CK_OK, cut_at);
  if (res.step == CK_RESERVE) {
    char need[32], have[64];
    fmt_size(need, sizeof need, res.bytes);
    int64_t freeb = persist__dir_free_bytes(p->dir);
    if (freeb >= 0)
      fmt_size(have, sizeof have, (uint64_t)freeb);
    else
      snprintf(have, sizeof have, "unknown (%s)", strerror(errno));
    rc = ib_fail(IB_EIO,
                 "checkpoint: reserving %s for '%s' failed: %s; free in '%s': %s (HINT: the "
                 "directory needs room for a new checkpoint next to the last one and the logs "
                 "since it; free space, or give the shard a larger disk. Nothing was written; "
                 "the previous checkpoint and the logs since it are still valid)",
                 need, p->ckpt_tmp, strerror(res.err), p->dir, have);
  } else if (res.step != CK_OK) {
    const char *path = res.step == CK_RENAME    ? p->ckpt_path
                       : res.step == CK_DIRSYNC ? p->dir
                                                : p->ckpt_tmp;
    rc = ib_fail(IB_EIO,
                 "checkpoint: %s '%s' failed: %s%s (HINT: check free space and permissions; "
                 "the previous checkpoint and the logs since it are still valid)",
                 persist__ck_step_name(res.step), path,
                 res.err == ECHILD ? "the writer process died" : strerror(res.err),
                 forked ? " (in the background writer)" : "");
  } else {
    /* Checkpoint `next` holds everything the older logs held (their fds are closed or left to the
     * one running fdatasync, which a deleted file does not disturb). */
    rc = persist__wal_remove_older(p, next, NULL);
  }
  if (rc != IB_OK) /* errno: of the failed removal; a writer that died is an I/O error */
    ckpt_note_failure(p, res.step == CK_OK ? errno : res.err == ECHILD ? EIO : res.err);
  if (rc == IB_OK && info) {
    info->epoch = next;
    info->items = items;
    info->bytes = res.bytes;
    info->seconds = (double)(ib_now_ns() - t0) * 1e-9;
    info->blocked_seconds = (double)(t_unlock - t_lock) * 1e-9;
    info->background = forked;
    info->huge_seconds = huge_s;
    info->huge_bytes = huge_bytes;
  }
  pthread_mutex_unlock(&p->ckpt_mu);
  return rc;
}

void persist_health_get(persist *p, persist_health *out) {
  IB_CHECK(p != NULL && out != NULL);
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&p->mu);
  out->needs_checkpoint = health_needs_ckpt(p);
  out->refusing = p->broken;
  out->append_failing = p->append_failing;
  out->undurable = health_undurable(p);
  out->since_unix_ms = p->since_unix_ms;
  out->since_ns = p->since_ns;
  out->cause_errno = p->cause_errno;
  snprintf(out->cause, sizeof out->cause, "%s", p->cause);
  snprintf(out->last_error, sizeof out->last_error, "%s", p->last_error);
  if (p->mode == PERSIST_WAL) snprintf(out->log_path, sizeof out->log_path, "%s", p->wal_path);
  out->failed_checkpoints = p->failed_ckpts;
  out->io_errors = p->io_errors;
  pthread_mutex_unlock(&p->mu);
}

int persist_barrier(persist *p) {
  IB_CHECK(p != NULL);
  if (p->mode != PERSIST_WAL) return IB_OK;
  pthread_mutex_lock(&p->mu);
  uint64_t target = p->written; /* every row in memory now was appended at or before it */
  int rc = IB_OK;
  for (;;) {
    if (health_undurable(p)) {
      rc = ib_fail(IB_EIO,
                   "log '%s': rows stored before a failed write or fsync are not durable yet "
                   "(HINT: a checkpoint makes them durable; check the disk)",
                   p->wal_path);
      break;
    }
    if (p->synced >= target || p->covered_pos >= target) break;
    if (p->sync_fd >= 0 || (persist__wal_prev_pending(p) && p->prev_broken)) {
      pthread_cond_wait(&p->cv, &p->mu); /* a running fdatasync or checkpoint decides */
      continue;
    }
    if (!persist__wal_prev_pending(p) && p->broken) { /* the break marked target lost: not reached */
      rc = ib_fail(IB_EIO, "log '%s' is broken (HINT: check the disk)", p->wal_path);
      break;
    }
    persist__wal_sync_once(p);
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

void persist_close(persist *p) {
  if (!p) return;
  if (p->s->log_ctx == p) store_log_hook_set(p->s, NULL, NULL, NULL);
  if (p->fd >= 0) close(p->fd);
  if (p->prev_fd >= 0) close(p->prev_fd);
  if (p->zombie_fd >= 0) close(p->zombie_fd);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->ckpt_mu);
  free(p->buf);
  free(p->wbuf);
  free(p);
}
