/* persist.c: checkpoints and the write-ahead log of a replay store (file formats and the crash
 * rules are in persist.h; this is how they are kept).
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
#include "store_impl.h"

#define CKPT_MAGIC "IBRLCKPT"
#define CKPT_END "IBRLDONE"
#define WAL_MAGIC "IBRLWAL1"
/* Checkpoint format: 2 = actor windows of STORE_DEDUP_WINDOW (8192) seqs; 1 = windows of 1024 seqs
 * (still read: the seqs between 1024 and 8192 below an actor's highest are marked stored, as
 * version 1 assumed of everything older than its window). */
#define FMT_VERSION 2u
#define FMT_V1_WIN_WORDS (1024 / 64)
/* Log format: 2 = a log made by a cut starts with a link record; 1 = no links (written before the
 * cut stopped flushing; still read, and appended to after an upgrade). An older binary refuses a
 * version 2 log by its header, naming the version. */
#define WAL_VERSION 2u
#define ENDIAN_WORD 0x01020304u
#define PATH_MAX_LEN PERSIST_PATH_MAX
#define WBUF_BYTES (1u << 20) /* checkpoint write buffer, allocated before any fork */
/* Log files one restore accepts: one more per checkpoint that failed after its cut. A shard that
 * retries a checkpoint on its own while a disk is bad can fail many (a disk with room for a log
 * header but not a checkpoint): 64 would take only about half an hour of 30 s retries. */
#define MAX_LOGS 1024

#define LINK_TABLE 0xffffffffu /* table id of a link record (a cut's log starts with one) */
#define LINK_ACTOR 0xffffffffu /* its item's actor_id: nobody's */
#define LINK_MAGIC 0x4b4e494cu /* its item's proposer: "LINK" */

struct persist {
  store *s;
  persist_mode mode;
  char dir[PATH_MAX_LEN];
  char ckpt_path[PATH_MAX_LEN + 16];
  char ckpt_tmp[PATH_MAX_LEN + 32];
  uint64_t epoch;                   /* epoch of the current log: the next checkpoint is epoch + 1 */
  pthread_mutex_t ckpt_mu;          /* one checkpoint at a time */
  uint8_t *wbuf;                    /* [WBUF_BYTES] owned: the checkpoint writer's buffer */
  uint64_t huge_at_ns, huge_ns;     /* under ckpt_mu: when the last store_huge_collapse ended, its length */
  /* Log state, under mu (see the top of this file). */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int fd;                            /* owned: the current log, or -1 */
  char wal_path[PATH_MAX_LEN + 32];  /* its path */
  uint64_t fd_len;                   /* its length in bytes (header and records) */
  bool broken;                       /* appends fail until a checkpoint starts a fresh log */
  int prev_fd;                       /* owned: the previous log while pending, or -1 */
  char prev_path[PATH_MAX_LEN + 32]; /* its path */
  uint64_t cut_pos;                  /* logical end of the previous log */
  bool prev_broken;                  /* a hole before cut_pos: only a checkpoint covers it */
  int sync_fd;                       /* the fd an fdatasync runs on outside the mutex, or -1 */
  int zombie_fd;                     /* owned: a retired log that sync_fd still flushes, or -1 */
  uint64_t written;                  /* logical bytes appended (grows across log switches) */
  uint64_t synced;                   /* logical bytes known durable */
  uint64_t lost_lo, lost_hi;         /* tickets in (lost_lo, lost_hi] are never durable: IB_EIO */
  /* Health, under mu (see the top of this file). */
  uint64_t covered_pos;     /* logical position of the last successful checkpoint's cut */
  bool append_failing;      /* the last append's write failed (and was cut off again) */
  uint64_t since_ns, since_unix_ms; /* when the trouble began, 0 when healthy */
  int cause_errno;
  char cause[384];          /* the error that began the trouble */
  char last_error[384];
  uint64_t failed_ckpts;    /* since the trouble began */
  uint64_t io_errors;       /* all time */
  int ckpt_errno;           /* errno of the last failed checkpoint (0 if unknown) */
  uint8_t *buf;                      /* record buffer for max_insert_batch items */
  size_t buf_cap;
};

/* ---- small I/O helpers ---- */

static int io_fail(const char *what, const char *path) {
  return ib_fail(IB_EIO,
                 "%s '%s' failed: %s (HINT: check that the directory exists, is writable "
                 "and the disk is not full)",
                 what, path, strerror(errno));
}

static int write_all(int fd, const void *p, size_t n) {
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

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return io_fail("open directory", dir);
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc == 0 ? IB_OK : io_fail("fsync directory", dir);
}

/* n bytes for a message: "N bytes" below 1 MB, else "X.Y MB". */
static const char *fmt_size(char *out, size_t cap, uint64_t n) {
  if (n < 1000000)
    snprintf(out, cap, "%llu bytes", (unsigned long long)n);
  else
    snprintf(out, cap, "%.1f MB", (double)n / 1e6);
  return out;
}

/* Bytes this process may still allocate in dir's file system (root may use the blocks reserved
 * for it), or -1 (errno set). statfs, not statvfs, which may read /proc/mounts through stdio:
 * the forked checkpoint writer calls this, and may not allocate. */
static int64_t dir_free_bytes(const char *dir) {
  struct statfs v;
  if (statfs(dir, &v) != 0) return -1;
  uint64_t blocks = geteuid() == 0 ? (uint64_t)v.f_bfree : (uint64_t)v.f_bavail;
  return (int64_t)(blocks * (uint64_t)(v.f_frsize ? v.f_frsize : v.f_bsize));
}

/* Item bytes in a log record for table tb. */
static size_t item_bytes(const store_spec *sp) {
  return (size_t)(2 * sp->obs_dim + sp->act_dim + 2) * sizeof(float) + 4 + 4 + 8 + 8 + 8;
}

/* A buffered writer on a file descriptor that keeps a running CRC. It only uses write(), memcpy
 * and ib_crc32 on a buffer allocated beforehand, so it is safe in a forked child of a
 * multithreaded process. `err` keeps the first errno. With fd -1 it only counts the bytes. */
typedef struct wr {
  int fd;
  uint8_t *buf;
  size_t len;
  uint32_t crc;
  uint64_t bytes;
  int err;
} wr;

static void wr_flush(wr *w) {
  if (!w->err && w->len > 0 && write_all(w->fd, w->buf, w->len) != 0) w->err = errno ? errno : EIO;
  w->len = 0;
}

static void wr_put(wr *w, const void *p, size_t n) {
  if (w->err || n == 0) return;
  if (w->fd < 0) { /* a counting writer: only the size (ckpt_image_bytes) */
    w->bytes += n;
    return;
  }
  w->crc = ib_crc32(w->crc, p, n);
  w->bytes += n;
  if (n >= WBUF_BYTES) { /* large arrays go straight to the file */
    wr_flush(w);
    if (!w->err && write_all(w->fd, p, n) != 0) w->err = errno ? errno : EIO;
    return;
  }
  const uint8_t *b = p;
  while (n > 0) {
    size_t k = IB_MIN(n, (size_t)WBUF_BYTES - w->len);
    memcpy(w->buf + w->len, b, k);
    w->len += k;
    b += k;
    n -= k;
    if (w->len == WBUF_BYTES) wr_flush(w);
  }
}
static void wr_u32(wr *w, uint32_t v) { wr_put(w, &v, 4); }
static void wr_u64(wr *w, uint64_t v) { wr_put(w, &v, 8); }

/* A reader over a whole file in memory would double the footprint of a large store; this one
 * reads through stdio and reports short reads as a format error. */
typedef struct rd {
  FILE *f;
  const char *path;
  int err; /* 0 or an IB_E* already recorded with ib_fail */
} rd;

static void rd_get(rd *r, void *p, size_t n, const char *what) {
  if (r->err || n == 0) return;
  if (fread(p, 1, n, r->f) != n)
    r->err = ib_fail(IB_EPROTO,
                     "checkpoint '%s' ends early while reading %s (HINT: the file is "
                     "truncated; restore an older copy or start empty)",
                     r->path, what);
}
static uint32_t rd_u32(rd *r, const char *what) {
  uint32_t v = 0;
  rd_get(r, &v, 4, what);
  return v;
}
static uint64_t rd_u64(rd *r, const char *what) {
  uint64_t v = 0;
  rd_get(r, &v, 8, what);
  return v;
}

/* ---- checkpoint: table header ---- */

typedef struct thdr {
  store_spec spec;
  uint32_t stride;
  uint64_t head, size, total_inserts, total_evicted, duplicates, rejected, episodes, successes;
  uint64_t wv_min, wv_max, wv_last, total_samples;
  uint32_t nactors;
} thdr;

static void thdr_write(wr *w, const store__table *tb, uint64_t total_samples) {
  wr_put(w, tb->spec.name, STORE_NAME_MAX);
  wr_u32(w, (uint32_t)tb->spec.obs_dim);
  wr_u32(w, (uint32_t)tb->spec.act_dim);
  wr_u64(w, tb->spec.capacity);
  wr_u32(w, (uint32_t)tb->spec.kind);
  wr_u32(w, tb->stride);
  uint64_t v[] = {tb->head,          tb->size,       tb->total_inserts,
                  tb->total_evicted, tb->duplicates, tb->rejected_batches,
                  tb->episodes,      tb->successes,  tb->wv_min,
                  tb->wv_max,        tb->wv_last,    total_samples};
  for (size_t i = 0; i < IB_ARRAY_LEN(v); i++) wr_u64(w, v[i]);
  wr_u32(w, tb->nactors);
  wr_u32(w, 0);
}

static void thdr_read(rd *r, thdr *h) {
  memset(h, 0, sizeof *h);
  rd_get(r, h->spec.name, STORE_NAME_MAX, "a table name");
  h->spec.name[STORE_NAME_MAX - 1] = 0;
  h->spec.obs_dim = (int)rd_u32(r, "obs_dim");
  h->spec.act_dim = (int)rd_u32(r, "act_dim");
  h->spec.capacity = rd_u64(r, "capacity");
  h->spec.kind = (store_kind)rd_u32(r, "kind");
  h->stride = rd_u32(r, "stride");
  uint64_t *v[] = {&h->head,       &h->size,     &h->total_inserts, &h->total_evicted,
                   &h->duplicates, &h->rejected, &h->episodes,      &h->successes,
                   &h->wv_min,     &h->wv_max,   &h->wv_last,       &h->total_samples};
  for (size_t i = 0; i < IB_ARRAY_LEN(v); i++) *v[i] = rd_u64(r, "table counters");
  h->nactors = rd_u32(r, "nactors");
  (void)rd_u32(r, "padding");
}

static void actor_write(wr *w, const store__actor *a) {
  wr_u32(w, a->id);
  wr_u32(w, a->has_seq);
  wr_u64(w, a->high);
  wr_put(w, a->win, sizeof a->win);
  wr_u64(w, a->inserts);
  wr_u64(w, a->duplicates);
  wr_u64(w, a->last_wv);
  wr_u64(w, a->episodes);
  wr_u32(w, a->success_bits);
  wr_u32(w, 0);
}

static void actor_read(rd *r, store__actor *a, uint32_t version) {
  memset(a, 0, sizeof *a);
  a->id = rd_u32(r, "an actor id");
  a->has_seq = (uint8_t)(rd_u32(r, "an actor entry") != 0);
  a->high = rd_u64(r, "an actor entry");
  if (version == 1) {
    _Static_assert(FMT_V1_WIN_WORDS <= STORE__WIN_WORDS, "the window only grew");
    rd_get(r, a->win, FMT_V1_WIN_WORDS * sizeof a->win[0], "an actor window");
    if (a->has_seq)
      for (unsigned w = FMT_V1_WIN_WORDS; w < STORE__WIN_WORDS; w++) a->win[w] = ~0ull;
  } else {
    rd_get(r, a->win, sizeof a->win, "an actor window");
  }
  a->inserts = rd_u64(r, "an actor entry");
  a->duplicates = rd_u64(r, "an actor entry");
  a->last_wv = rd_u64(r, "an actor entry");
  a->episodes = rd_u64(r, "an actor entry");
  a->success_bits = rd_u32(r, "an actor entry");
  (void)rd_u32(r, "padding");
}

/* ---- checkpoint: write ---- */

/* Where a checkpoint write failed, for the message. */
enum { CK_OK = 0, CK_CREATE, CK_RESERVE, CK_WRITE, CK_FSYNC, CK_CLOSE, CK_RENAME, CK_DIRSYNC };
static const char *ck_step_name(int step) {
  static const char *names[] = {"ok",    "create", "reserve space for", "write", "fsync",
                                "close", "rename", "fsync directory of"};
  return step >= 0 && step < (int)IB_ARRAY_LEN(names) ? names[step] : "write";
}

/* What the checkpoint writer reports (through a pipe when it runs in a child). */
typedef struct ck_result {
  int step;       /* CK_OK or the failing step */
  int err;        /* errno of the failure */
  uint64_t bytes; /* file size written (CK_RESERVE: the size it could not reserve) */
} ck_result;

/* Bytes of one actor entry in a checkpoint. */
static uint64_t actor_entry_bytes(void) {
  wr w = {-1, NULL, 0, 0, 0, 0};
  store__actor one = {0};
  actor_write(&w, &one);
  return w.bytes;
}

/* Emits checkpoint `epoch` of the store through w, up to and with the footer (w->fd -1: counts
 * its bytes, without walking the actor slots: one entry per used slot, nactors of them).
 * `samples` are the tables' total_samples at the cut. */
static void ckpt_emit(wr *w, const store *s, uint64_t epoch, const uint64_t *samples) {
  wr_put(w, CKPT_MAGIC, 8);
  wr_u32(w, FMT_VERSION);
  wr_u32(w, ENDIAN_WORD);
  wr_u32(w, (uint32_t)s->ntables);
  wr_u32(w, 0);
  wr_u64(w, epoch);
  for (int t = 0; t < s->ntables; t++) thdr_write(w, &s->tables[t], samples[t]);
  for (int t = 0; t < s->ntables; t++) {
    const store__table *tb = &s->tables[t];
    if (w->fd < 0)
      w->bytes += (uint64_t)tb->nactors * actor_entry_bytes();
    else
      for (uint32_t i = 0; i < tb->actor_cap; i++)
        if (tb->actors[i].used) actor_write(w, &tb->actors[i]);
    wr_put(w, tb->rec, (size_t)tb->size * tb->stride * sizeof(float));
    wr_put(w, tb->proposer, (size_t)tb->size);
    wr_put(w, tb->flags, (size_t)tb->size);
    wr_put(w, tb->actor_id, (size_t)tb->size * sizeof(uint32_t));
    wr_put(w, tb->seq, (size_t)tb->size * sizeof(uint64_t));
    wr_put(w, tb->wv, (size_t)tb->size * sizeof(uint64_t));
  }
  uint32_t crc = w->crc;
  wr_u32(w, crc);
  wr_put(w, CKPT_END, 8);
}

/* The size in bytes of the checkpoint of the store as it is (the caller holds the tables) or, with
 * `full`, of the same store with every table at capacity and every actor slot in use: the most
 * a checkpoint of it can take. */
static uint64_t ckpt_image_bytes(const store *s, bool full) {
  uint64_t samples[STORE_MAX_TABLES] = {0};
  wr w = {-1, NULL, 0, 0, 0, 0};
  ckpt_emit(&w, s, 0, samples);
  if (full)
    for (int t = 0; t < s->ntables; t++) {
      const store__table *tb = &s->tables[t];
      uint64_t row = (uint64_t)tb->stride * sizeof(float) + 1 + 1 + 4 + 8 + 8;
      w.bytes += (tb->spec.capacity - tb->size) * row;
      w.bytes += (uint64_t)(IB_MAX(tb->max_actors, tb->nactors) - tb->nactors) * actor_entry_bytes();
    }
  return w.bytes;
}

/* Writes checkpoint `epoch` of the store (all table locks held by the caller, or a forked image)
 * to p->ckpt_tmp, fsyncs it, renames it onto p->ckpt_path and fsyncs the directory. Uses no
 * malloc, no locks and no stdio. `samples` are the tables' total_samples at the cut.
 *
 * It first reserves the file's whole size. On a disk without room that fails at once with nothing
 * written: a doomed checkpoint neither spends seconds writing nor takes the last free blocks from
 * the log's appends while it runs. The free space is asked first (statfs), because fallocate
 * itself may take blocks until the disk is full before it fails (tmpfs does, and gives them back
 * only then), which a concurrent log append would see as a full disk; fallocate then catches a
 * race with other writers. A file system without fallocate is written as before. */
static ck_result ckpt_write_image(persist *p, uint64_t epoch, const uint64_t *samples) {
  ck_result res = {CK_OK, 0, 0};
  store *s = p->s;
  int fd = open(p->ckpt_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return (ck_result){CK_CREATE, errno, 0};
  uint64_t need = ckpt_image_bytes(s, false);
  int64_t room = dir_free_bytes(p->dir);
  int no_room = room >= 0 && (uint64_t)room < need ? ENOSPC : 0;
  if (!no_room && fallocate(fd, 0, 0, (off_t)need) != 0 && (errno == ENOSPC || errno == EDQUOT))
    no_room = errno;
  if (no_room) {
    res = (ck_result){CK_RESERVE, no_room, need};
    close(fd);
    unlink(p->ckpt_tmp);
    return res;
  }
  wr w = {fd, p->wbuf, 0, 0, 0, 0};
  ckpt_emit(&w, s, epoch, samples);
  wr_flush(&w);
  res.bytes = w.bytes;
  if (w.err)
    res = (ck_result){CK_WRITE, w.err, 0};
  else if (w.bytes != need && ftruncate(fd, (off_t)w.bytes) != 0) /* never: the same walk */
    res = (ck_result){CK_WRITE, errno, 0};
  else if (fsync(fd) != 0)
    res = (ck_result){CK_FSYNC, errno, 0};
  if (close(fd) != 0 && res.step == CK_OK) res = (ck_result){CK_CLOSE, errno, 0};
  if (res.step == CK_OK && rename(p->ckpt_tmp, p->ckpt_path) != 0)
    res = (ck_result){CK_RENAME, errno, 0};
  if (res.step != CK_OK) {
    unlink(p->ckpt_tmp);
    return res;
  }
  int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) res = (ck_result){CK_DIRSYNC, errno, res.bytes};
  if (dfd >= 0) close(dfd);
  return res;
}

/* ---- checkpoint: read ---- */

/* Streams the file once: checks the length, the CRC and the end magic. */
static int ckpt_verify(const char *path, FILE *f, uint64_t *file_bytes) {
  if (fseek(f, 0, SEEK_END) != 0) return io_fail("seek checkpoint", path);
  long len = ftell(f);
  if (len < 0) return io_fail("tell checkpoint", path);
  *file_bytes = (uint64_t)len;
  const long hdr = 8 + 4 * 4 + 8, foot = 4 + 8;
  if (len < hdr + foot)
    return ib_fail(IB_EPROTO,
                   "checkpoint '%s' is %ld bytes, too short to be a checkpoint (HINT: it "
                   "was truncated; move it away to start empty)",
                   path, len);
  rewind(f);
  uint8_t *buf = ib_xmalloc(1 << 20);
  uint32_t crc = 0;
  long left = len - foot;
  while (left > 0) {
    size_t want = (size_t)IB_MIN(left, 1L << 20);
    if (fread(buf, 1, want, f) != want) {
      free(buf);
      return io_fail("read checkpoint", path);
    }
    crc = ib_crc32(crc, buf, want);
    left -= (long)want;
  }
  uint32_t stored = 0;
  char end[8];
  int ok = fread(&stored, 4, 1, f) == 1 && fread(end, 8, 1, f) == 1;
  free(buf);
  if (!ok) return io_fail("read checkpoint footer of", path);
  if (memcmp(end, CKPT_END, 8) != 0)
    return ib_fail(IB_EPROTO,
                   "checkpoint '%s' has no end marker (HINT: it was truncated or is not a "
                   "checkpoint; move it away to start empty)",
                   path);
  if (stored != crc)
    return ib_fail(IB_ECHECKSUM,
                   "checkpoint '%s' CRC-32 is 0x%08x but the content gives 0x%08x (HINT: "
                   "the file is corrupted; restore an older copy or move it away to start empty)",
                   path, stored, crc);
  rewind(f);
  return IB_OK;
}

static int ckpt_header(rd *r, uint32_t *ntables, uint64_t *epoch, uint32_t *version_out) {
  char magic[8];
  rd_get(r, magic, 8, "the magic");
  if (r->err) return r->err;
  if (memcmp(magic, CKPT_MAGIC, 8) != 0)
    return ib_fail(IB_EPROTO,
                   "'%s' is not a replay checkpoint (bad magic) (HINT: wrong file or "
                   "directory)",
                   r->path);
  uint32_t version = rd_u32(r, "the version");
  uint32_t endian = rd_u32(r, "the endian word");
  *ntables = rd_u32(r, "the table count");
  (void)rd_u32(r, "padding");
  *epoch = rd_u64(r, "the epoch");
  if (r->err) return r->err;
  if (version != 1 && version != FMT_VERSION)
    return ib_fail(IB_EMISMATCH,
                   "checkpoint '%s' has format version %u, this build reads 1 and %u (HINT: "
                   "restore with the matching ibrl version)",
                   r->path, version, FMT_VERSION);
  *version_out = version;
  if (endian != ENDIAN_WORD)
    return ib_fail(IB_EMISMATCH, "checkpoint '%s' was written on a machine of another byte order (HINT: "
                   "restore it on a machine like the one that wrote it, or start without it)", r->path);
  if (*ntables < 1 || *ntables > STORE_MAX_TABLES)
    return ib_fail(IB_EPROTO, "checkpoint '%s' claims %u tables, not 1 to %d (HINT: the file is corrupted; "
                   "restore an older copy or move it away to start empty)", r->path, *ntables, STORE_MAX_TABLES);
  return IB_OK;
}

static int spec_compare(const char *path, int t, const thdr *h, const store__table *tb) {
  const store_spec *a = &h->spec, *b = &tb->spec;
  const char *what = NULL;
  long long va = 0, vb = 0;
  if (strcmp(a->name, b->name) != 0) {
    return ib_fail(IB_EMISMATCH,
                   "checkpoint '%s' table %d is named '%s', this store's is '%s' (HINT: "
                   "start with the same table specs, or move the checkpoint away to start empty)",
                   path, t, a->name, b->name);
  } else if (a->kind != b->kind) {
    what = "kind", va = a->kind, vb = b->kind;
  } else if (a->obs_dim != b->obs_dim) {
    what = "obs_dim", va = a->obs_dim, vb = b->obs_dim;
  } else if (a->act_dim != b->act_dim) {
    what = "act_dim", va = a->act_dim, vb = b->act_dim;
  } else if (a->capacity != b->capacity) {
    what = "capacity", va = (long long)a->capacity, vb = (long long)b->capacity;
  } else if (h->stride != tb->stride) {
    what = "record stride", va = h->stride, vb = tb->stride;
  }
  if (what)
    return ib_fail(
        IB_EMISMATCH,
        "checkpoint '%s' table '%s': %s is %lld in the checkpoint but %lld in "
        "this store (HINT: start with the same table specs, or move the checkpoint away to "
        "start empty)",
        path, a->name, what, va, vb);
  /* Slots [0, size) are filled and the ring writes at head (store_impl.h), so a partly filled table
   * has head == size. */
  bool ring_ok = h->size <= a->capacity && h->head < a->capacity &&
                 (h->size == a->capacity || h->head == h->size);
  if (!ring_ok || h->nactors > tb->max_actors)
    return ib_fail(
        h->nactors > tb->max_actors ? IB_EMISMATCH : IB_EPROTO,
        "checkpoint '%s' table '%s': size %llu, head %llu or actors %u do not fit capacity %llu "
        "/ max_actors %u (HINT: raise max_actors, or the file is damaged)",
        path, a->name, (unsigned long long)h->size, (unsigned long long)h->head, h->nactors,
        (unsigned long long)a->capacity, tb->max_actors);
  return IB_OK;
}

/* Empties every table (after a failed restore). All locks held. */
static void tables_clear(store *s) {
  for (int t = 0; t < s->ntables; t++) {
    store__table *tb = &s->tables[t];
    tb->head = tb->size = 0;
    tb->total_inserts = tb->total_evicted = tb->duplicates = tb->rejected_batches = 0;
    tb->episodes = tb->successes = tb->wv_min = tb->wv_max = tb->wv_last = 0;
    memset(tb->actors, 0, (size_t)tb->actor_cap * sizeof *tb->actors);
    tb->nactors = 0;
    pthread_mutex_lock(&tb->stat_mu);
    tb->total_samples = 0;
    pthread_mutex_unlock(&tb->stat_mu);
  }
}

/* Loads the checkpoint at p->ckpt_path into the (empty) store. IB_ENOTFOUND if there is none. */
static int ckpt_load(persist *p, uint64_t *epoch, uint64_t *items) {
  store *s = p->s;
  FILE *f = fopen(p->ckpt_path, "rb");
  if (!f) {
    if (errno == ENOENT) return IB_ENOTFOUND;
    return io_fail("open checkpoint", p->ckpt_path);
  }
  uint64_t file_bytes = 0;
  int rc = ckpt_verify(p->ckpt_path, f, &file_bytes);
  if (rc) {
    fclose(f);
    return rc;
  }
  rd r = {f, p->ckpt_path, 0};
  uint32_t nt = 0, version = 0;
  rc = ckpt_header(&r, &nt, epoch, &version);
  if (rc) {
    fclose(f);
    return rc;
  }
  if ((int)nt != s->ntables) {
    fclose(f);
    return ib_fail(IB_EMISMATCH,
                   "checkpoint '%s' holds %u tables, this store has %d (HINT: start with "
                   "the same table specs, or move the checkpoint away to start empty)",
                   p->ckpt_path, nt, s->ntables);
  }
  thdr h[STORE_MAX_TABLES];
  for (int t = 0; t < s->ntables; t++) thdr_read(&r, &h[t]);
  if (r.err) {
    fclose(f);
    return r.err;
  }
  for (int t = 0; t < s->ntables; t++) {
    if ((rc = spec_compare(p->ckpt_path, t, &h[t], &s->tables[t]))) {
      fclose(f);
      return rc;
    }
  }
  store__lock_all(s);
  *items = 0;
  for (int t = 0; t < s->ntables && !r.err; t++) {
    store__table *tb = &s->tables[t];
    for (uint32_t k = 0; k < h[t].nactors && !r.err; k++) {
      store__actor a;
      actor_read(&r, &a, version);
      store__actor *dst = store__actor_find(tb, a.id, false);
      if (dst) {
        r.err = ib_fail(IB_EPROTO, "checkpoint '%s' table '%s' lists actor %u twice (HINT: the file is "
                        "corrupted; restore an older copy or move it away to start empty)", p->ckpt_path, tb->spec.name,
                        a.id);
        break;
      }
      dst = store__actor_find(tb, a.id, true);
      IB_CHECK(dst != NULL); /* nactors <= max_actors was checked */
      *dst = a;
      dst->used = 1;
    }
    size_t sz = (size_t)h[t].size;
    rd_get(&r, tb->rec, sz * tb->stride * sizeof(float), "the records");
    /* Rows were checked when they were inserted, so a NaN here is damage the CRC did not catch (a
     * file rewritten with a fresh CRC): refuse it rather than hand it to a learner. */
    size_t data = 2 * (size_t)tb->spec.obs_dim + (size_t)tb->spec.act_dim + 2; /* floats before the pad */
    for (size_t k = 0; k < sz && !r.err; k++)
      if (ib_first_nonfinite(tb->rec + k * tb->stride, data) >= 0)
        r.err = ib_fail(IB_EPROTO, "checkpoint '%s' table '%s' row %zu holds a NaN or Inf (HINT: the file is "
                        "corrupted; restore an older copy or move it away to start empty)", p->ckpt_path,
                        tb->spec.name, k);
    rd_get(&r, tb->proposer, sz, "the proposers");
    rd_get(&r, tb->flags, sz, "the flags");
    rd_get(&r, tb->actor_id, sz * sizeof(uint32_t), "the actor ids");
    rd_get(&r, tb->seq, sz * sizeof(uint64_t), "the seqs");
    rd_get(&r, tb->wv, sz * sizeof(uint64_t), "the weight versions");
    tb->head = h[t].head;
    tb->size = h[t].size;
    if (!r.err) store__meta_rebuild(tb); /* the arrays are the truth; older checkpoints have zero pads */
    tb->total_inserts = h[t].total_inserts;
    tb->total_evicted = h[t].total_evicted;
    tb->duplicates = h[t].duplicates;
    tb->rejected_batches = h[t].rejected;
    tb->episodes = h[t].episodes;
    tb->successes = h[t].successes;
    tb->wv_min = h[t].wv_min;
    tb->wv_max = h[t].wv_max;
    tb->wv_last = h[t].wv_last;
    pthread_mutex_lock(&tb->stat_mu);
    tb->total_samples = h[t].total_samples;
    pthread_mutex_unlock(&tb->stat_mu);
    *items += tb->size;
  }
  rc = r.err;
  if (rc) tables_clear(s);
  store__unlock_all(s);
  fclose(f);
  return rc;
}

int persist_ckpt_inspect(const char *dir, persist_ckpt_summary *out) {
  IB_CHECK(dir != NULL && out != NULL);
  memset(out, 0, sizeof *out);
  char path[PATH_MAX_LEN + 16];
  snprintf(path, sizeof path, "%s/store.ckpt", dir);
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT)
      return ib_fail(IB_ENOTFOUND,
                     "no checkpoint '%s' (HINT: the server writes one on request, on its "
                     "period and on SIGTERM)",
                     path);
    return io_fail("open checkpoint", path);
  }
  int rc = ckpt_verify(path, f, &out->file_bytes);
  rd r = {f, path, 0};
  uint32_t nt = 0, version = 0;
  if (!rc) rc = ckpt_header(&r, &nt, &out->epoch, &version);
  if (!rc) {
    out->version = version;
    out->ntables = (int)nt;
    for (uint32_t t = 0; t < nt && !r.err; t++) {
      thdr h;
      thdr_read(&r, &h);
      out->specs[t] = h.spec;
      out->sizes[t] = h.size;
      out->total_inserts[t] = h.total_inserts;
    }
    rc = r.err;
  }
  fclose(f);
  return rc;
}

/* ---- write-ahead log ---- */

static void wal_header_bytes(const persist *p, uint64_t epoch, uint8_t out[44]) {
  const store_spec *sp = &p->s->tables[0].spec;
  uint32_t v32[] = {WAL_VERSION, ENDIAN_WORD};
  memcpy(out, WAL_MAGIC, 8);
  memcpy(out + 8, v32, 8);
  memcpy(out + 16, &epoch, 8);
  uint32_t w[] = {(uint32_t)p->s->ntables, (uint32_t)sp->obs_dim, (uint32_t)sp->act_dim};
  memcpy(out + 24, w, 12);
  uint32_t crc = ib_crc32(0, out, 36);
  memcpy(out + 36, &crc, 4);
  memset(out + 40, 0, 4);
}
#define WAL_HDR 44

static void wal_name(const persist *p, uint64_t epoch, char *out, size_t n) {
  snprintf(out, n, "%s/store.wal.%016llx", p->dir, (unsigned long long)epoch);
}

/* Creates the log of `epoch` (tmp + fsync + rename + fsync dir), opened for appending in *fd_out,
 * its path in path_out[PATH_MAX_LEN + 32]. Nothing changes on error. */
static int wal_create(persist *p, uint64_t epoch, int *fd_out, char *path_out) {
  char path[PATH_MAX_LEN + 32], tmp[PATH_MAX_LEN + 48];
  wal_name(p, epoch, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  /* O_APPEND: when a write fails part way (a disk that fills up takes what fits), the partial
   * record is cut off with ftruncate, which does not move the file position; without O_APPEND the
   * next record would land past the cut, behind a hole a restore reads as a torn record, and
   * every acknowledged record after it would be dropped. */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return io_fail("create log", tmp);
  uint8_t hdr[WAL_HDR];
  wal_header_bytes(p, epoch, hdr);
  if (write_all(fd, hdr, WAL_HDR) != 0 || fsync(fd) != 0) {
    int e = errno, rc = io_fail("write log header", tmp); /* e: the cause, for persist_health */
    close(fd);
    unlink(tmp);
    errno = e;
    return rc;
  }
  if (rename(tmp, path) != 0) {
    int e = errno, rc = io_fail("rename log onto", path);
    close(fd);
    unlink(tmp);
    errno = e;
    return rc;
  }
  int rc = fsync_dir(p->dir);
  if (rc) {
    close(fd);
    return rc;
  }
  *fd_out = fd;
  memcpy(path_out, path, sizeof path);
  return IB_OK;
}

/* ---- health ---- */

static uint64_t unix_ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)(ts.tv_nsec / 1000000);
}

/* Starts the "since" clock if it is not running (mu held). */
static void health_trouble(persist *p) {
  if (p->since_ns != 0) return;
  p->since_ns = ib_now_ns();
  p->since_unix_ms = unix_ms_now();
}

/* Records an I/O error: `op` on `path` failed with `err` (mu held). */
static void health_note(persist *p, const char *op, const char *path, int err) {
  snprintf(p->last_error, sizeof p->last_error, "%s '%s': %s", op, path, strerror(err));
  p->io_errors++;
  if (p->since_ns == 0) {
    snprintf(p->cause, sizeof p->cause, "%s", p->last_error);
    p->cause_errno = err;
  }
  health_trouble(p);
}

static bool health_undurable(const persist *p) { return p->lost_hi > p->covered_pos; }

/* Whether only a checkpoint can restore durability (mu held). */
static bool health_needs_ckpt(const persist *p) {
  return p->broken || (p->prev_fd >= 0 && p->prev_broken) || health_undurable(p);
}

/* Stops the clock once every condition has cleared (mu held). */
static void health_settle(persist *p) {
  if (health_needs_ckpt(p) || p->append_failing) return;
  p->since_ns = p->since_unix_ms = 0;
  p->failed_ckpts = 0;
  p->cause[0] = '\0';
  p->cause_errno = 0;
}

/* Marks the tickets in (synced, written] as never durable (mu held); see the top of this file. */
static void wal_mark_lost(persist *p) {
  if (p->written <= p->synced) return;
  health_trouble(p);
  if (p->lost_hi == 0) p->lost_lo = p->synced; /* else merge: keep the older, lower start */
  p->lost_hi = IB_MAX(p->lost_hi, p->written);
}

/* Closes a log fd that is no longer needed, or leaves it to the running fdatasync that still uses
 * it (mu held). */
static void wal_fd_retire(persist *p, int fd) {
  if (fd < 0) return;
  if (fd == p->sync_fd) {
    IB_CHECK(p->zombie_fd < 0); /* one fdatasync at a time, so one fd in use */
    p->zombie_fd = fd;
  } else {
    close(fd);
  }
}

/* The previous log is durable or covered by a checkpoint: forget it (mu held). */
static void wal_prev_settle(persist *p) {
  wal_fd_retire(p, p->prev_fd);
  p->prev_fd = -1;
  p->prev_broken = false;
}

/* Whether the previous log still has to be made durable (mu held). */
static bool wal_prev_pending(const persist *p) { return p->prev_fd >= 0 && p->synced < p->cut_pos; }

static int wal_append(void *ctx, int table, const store_item *items, size_t n, uint64_t *ticket) {
  persist *p = ctx;
  const store_spec *sp = &p->s->tables[table].spec;
  size_t ib = item_bytes(sp), payload = 8 + n * ib, total = 8 + payload;
  IB_CHECK(total <= p->buf_cap);
  /* The buffer is shared by both tables' inserts, so it is filled under the log mutex too. */
  pthread_mutex_lock(&p->mu);
  uint8_t *b = p->buf;
  uint32_t hdr[2] = {(uint32_t)table, (uint32_t)n};
  memcpy(b + 8, hdr, 8);
  uint8_t *q = b + 16;
  size_t O = (size_t)sp->obs_dim, A = (size_t)sp->act_dim;
  for (size_t i = 0; i < n; i++) {
    const store_item *it = &items[i];
    memcpy(q, it->obs, O * 4), q += O * 4;
    memcpy(q, it->next_obs, O * 4), q += O * 4;
    memcpy(q, it->action, A * 4), q += A * 4;
    memcpy(q, &it->reward, 4), q += 4;
    memcpy(q, &it->discount, 4), q += 4;
    uint32_t u[2] = {it->proposer, it->actor_id};
    memcpy(q, u, 8), q += 8;
    memcpy(q, &it->seq, 8), q += 8;
    memcpy(q, &it->weight_version, 8), q += 8;
    uint8_t fl[8] = {it->episode_end, it->episode_success, 0, 0, 0, 0, 0, 0};
    memcpy(q, fl, 8), q += 8;
  }
  IB_ASSERT((size_t)(q - b) == total);
  uint32_t len = (uint32_t)payload, crc = ib_crc32(0, b + 8, payload);
  memcpy(b, &len, 4);
  memcpy(b + 4, &crc, 4);
  int rc = IB_OK;
  if (p->broken || p->fd < 0) {
    rc = ib_fail(IB_EIO,
                 "log '%s' is unusable after an earlier write or fsync error (HINT: a "
                 "checkpoint starts a fresh log; check the disk)",
                 p->wal_path);
  } else {
    if (write_all(p->fd, b, total) != 0) {
      int err = errno;
      rc = io_fail("append to log", p->wal_path);
      health_note(p, "append to log", p->wal_path, err);
      p->append_failing = true;
      /* Cut the partial record off; if even that fails, no later record may follow it. */
      if (ftruncate(p->fd, (off_t)p->fd_len) != 0) {
        p->broken = true;
        wal_mark_lost(p);
      }
    } else {
      p->written += total;
      p->fd_len += total;
      *ticket = p->written;
      if (p->append_failing) {
        p->append_failing = false;
        health_settle(p);
      }
    }
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* Runs one fdatasync as the only syncer (mu held on entry and exit, released around the call):
 * of the previous log up to cut_pos if it is pending, else of the current log up to written. */
static void wal_sync_once(persist *p) {
  bool prev = wal_prev_pending(p);
  int fd = prev ? p->prev_fd : p->fd;
  uint64_t target = prev ? p->cut_pos : p->written;
  char path[PATH_MAX_LEN + 32];
  memcpy(path, prev ? p->prev_path : p->wal_path, sizeof path);
  IB_CHECK(fd >= 0 && p->sync_fd < 0);
  p->sync_fd = fd;
  pthread_mutex_unlock(&p->mu);
  int e = fdatasync(fd);
  int err = errno;
  pthread_mutex_lock(&p->mu);
  p->sync_fd = -1;
  if (p->zombie_fd == fd) { /* retired while we flushed it (a cut, or a checkpoint covered it) */
    close(fd);
    p->zombie_fd = -1;
  }
  if (e != 0 && target > p->synced) {
    /* Nothing after the hole can become durable through the log: refuse those tickets, and the
     * appends, until a checkpoint covers the hole and starts a fresh log. */
    log_error("log '%s': fdatasync failed: %s", path, strerror(err));
    health_note(p, "fdatasync log", path, err);
    wal_mark_lost(p);
    p->broken = true;
    if (wal_prev_pending(p)) p->prev_broken = true;
  } else if (e == 0 && target > p->synced) {
    p->synced = target;
  }
  if (p->prev_fd >= 0 && p->synced >= p->cut_pos) wal_prev_settle(p);
  pthread_cond_broadcast(&p->cv);
}

static int wal_sync(void *ctx, uint64_t ticket) {
  persist *p = ctx;
  pthread_mutex_lock(&p->mu);
  int rc = IB_OK;
  for (;;) {
    /* A lost ticket stays lost even if synced later passes it (a checkpoint, a fresh log). */
    if (ticket > p->lost_lo && ticket <= p->lost_hi) {
      rc = ib_fail(IB_EIO,
                   "log '%s': a write or fsync failed, the batch is not durable (HINT: check the "
                   "disk; a checkpoint starts a fresh log)",
                   p->wal_path);
      break;
    }
    if (p->synced >= ticket) break;
    if (p->sync_fd >= 0) { /* group commit: the running fdatasync may cover us */
      pthread_cond_wait(&p->cv, &p->mu);
      continue;
    }
    if (wal_prev_pending(p) && p->prev_broken) {
      /* A ticket of a fresh log after a hole: only the running checkpoint can make it durable;
       * its end (either way) wakes us. */
      pthread_cond_wait(&p->cv, &p->mu);
      continue;
    }
    if (!wal_prev_pending(p) && p->broken) { /* no ticket can be here (appends are refused) */
      rc = ib_fail(IB_EIO, "log '%s' is broken, the batch is not durable (HINT: check the disk)",
                   p->wal_path);
      break;
    }
    wal_sync_once(p);
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* What wal_replay found in one log. */
typedef struct wal_scan {
  uint64_t file_len;  /* the file's length */
  uint64_t valid_len; /* the end of its last intact record (== file_len unless torn) */
  const char *torn;   /* why the record at valid_len does not check out, or NULL */
  bool link_short;    /* its link says the previous log was longer: nothing of it was applied */
  uint64_t link_len;  /* the previous log's length its link records (if it has a link) */
} wal_scan;

/* Replays the log file `path` of epoch `want_epoch` into the store, up to its first record that
 * fails its length or CRC check. Does not change the file (the caller decides what to cut).
 * `prev_len` is the intact length of the previous log of the chain, or UINT64_MAX when there is
 * none to check (the first log replayed): if this log's link says the previous log was longer,
 * nothing is applied and out->link_short is set. */
static int wal_replay(persist *p, const char *path, uint64_t want_epoch, uint64_t prev_len,
                      persist_restore_info *info, wal_scan *out) {
  store *s = p->s;
  memset(out, 0, sizeof *out);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_fail("open log", path);
  info->wal_found = true;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int rc = io_fail("stat log", path);
    close(fd);
    return rc;
  }
  uint64_t len = (uint64_t)st.st_size;
  out->file_len = out->valid_len = len;
  uint8_t hdr[WAL_HDR];
  if (len < WAL_HDR || pread(fd, hdr, WAL_HDR, 0) != WAL_HDR) {
    /* A crash while creating a fresh log leaves at most a short tmp file, never a short log (the
     * rename comes after the fsync), so a short header is damage. */
    close(fd);
    return ib_fail(IB_EPROTO,
                   "log '%s' is %llu bytes, shorter than its header (HINT: the file is "
                   "damaged; move it away to restore from the checkpoint alone)",
                   path, (unsigned long long)len);
  }
  uint32_t crc, ver, endian, nt, od, ad;
  uint64_t epoch;
  memcpy(&ver, hdr + 8, 4);
  memcpy(&endian, hdr + 12, 4);
  memcpy(&epoch, hdr + 16, 8);
  memcpy(&nt, hdr + 24, 4);
  memcpy(&od, hdr + 28, 4);
  memcpy(&ad, hdr + 32, 4);
  memcpy(&crc, hdr + 36, 4);
  if (memcmp(hdr, WAL_MAGIC, 8) != 0 || crc != ib_crc32(0, hdr, 36)) {
    close(fd);
    return ib_fail(IB_ECHECKSUM,
                   "log '%s' has a bad magic or header CRC (HINT: not a replay log, or "
                   "damaged; move it away to restore from the checkpoint alone)",
                   path);
  }
  const store_spec *sp = &s->tables[0].spec;
  if ((ver != 1 && ver != WAL_VERSION) || endian != ENDIAN_WORD || (int)nt != s->ntables ||
      (int)od != sp->obs_dim || (int)ad != sp->act_dim) {
    close(fd);
    return ib_fail(
        IB_EMISMATCH,
        "log '%s' was written for version %u, %u tables, obs_dim %u, act_dim %u; "
        "this store reads versions 1 and %u, with %d tables, obs_dim %d, act_dim %d (HINT: start "
        "with the same table specs, and a binary at least as new as the one that wrote the log)",
        path, ver, nt, od, ad, WAL_VERSION, s->ntables, sp->obs_dim, sp->act_dim);
  }
  if (epoch != want_epoch) {
    close(fd);
    return ib_fail(IB_EPROTO,
                   "log '%s' says epoch %llu inside but its name says %llu (HINT: log files "
                   "must not be renamed; move it away to restore without it)",
                   path, (unsigned long long)epoch, (unsigned long long)want_epoch);
  }
  /* Records, one at a time through the preallocated buffer. */
  uint64_t off = WAL_HDR;
  int rc = IB_OK;
  store_item *items =
      ib_xcalloc(s->cfg.max_insert_batch ? s->cfg.max_insert_batch : 1, sizeof *items);
  const size_t link_bytes = 8 + item_bytes(sp);
  for (;;) {
    if (off == len) break;
    uint32_t rh[2];
    const char *why = NULL;
    if (len - off < 8 || pread(fd, rh, 8, (off_t)off) != 8) {
      why = "a torn record header";
    } else if (rh[0] < 8 || (uint64_t)rh[0] + 8 > len - off) {
      why = "a record length past the end of the file";
    } else {
      /* A complete record larger than this store's batches (a log written with a larger
       * max_insert_batch) grows the buffer, so it is refused below with a clear message instead
       * of being mistaken for a torn tail and cut off. */
      if (p->buf_cap < (size_t)rh[0] + 16) {
        p->buf_cap = (size_t)rh[0] + 16;
        p->buf = ib_xrealloc(p->buf, p->buf_cap);
      }
      if (pread(fd, p->buf, rh[0], (off_t)(off + 8)) != (ssize_t)rh[0]) {
        rc = io_fail("read log", path);
        break;
      }
      if (ib_crc32(0, p->buf, rh[0]) != rh[1]) why = "a record CRC mismatch";
    }
    if (why) {
      out->valid_len = off;
      out->torn = why;
      break;
    }
    uint32_t t, n;
    memcpy(&t, p->buf, 4);
    memcpy(&n, p->buf + 4, 4);
    if (t == LINK_TABLE) {
      /* The link to the previous log: only as the first record, with the item layout of table 0. */
      uint32_t u[2] = {0, 0};
      uint64_t prev_epoch = 0, plen = 0;
      size_t at = 8 + (size_t)(2 * sp->obs_dim + sp->act_dim + 2) * 4;
      if (n == 1 && rh[0] == link_bytes) {
        memcpy(u, p->buf + at, 8);
        memcpy(&prev_epoch, p->buf + at + 8, 8);
        memcpy(&plen, p->buf + at + 16, 8);
      }
      if (ver < 2 || off != WAL_HDR || n != 1 || rh[0] != link_bytes || u[0] != LINK_MAGIC ||
          u[1] != LINK_ACTOR || prev_epoch + 1 != want_epoch || plen < WAL_HDR) {
        rc = ib_fail(IB_EPROTO,
                     "log '%s': a link record at byte %llu is malformed or misplaced (it must "
                     "come first and name epoch %llu) (HINT: the file is damaged or was renamed; "
                     "move it away to restore without it)",
                     path, (unsigned long long)off, (unsigned long long)(want_epoch - 1));
        break;
      }
      out->link_len = plen;
      if (prev_len != UINT64_MAX && plen > prev_len) {
        out->link_short = true; /* the previous log lost its tail: apply nothing of this one */
        break;
      }
      if (prev_len != UINT64_MAX && plen < prev_len) {
        rc = ib_fail(IB_EPROTO,
                     "log '%s': its link says log epoch %llu ended at byte %llu, but that log has "
                     "%llu intact bytes (HINT: records were appended to an old log; move the logs "
                     "away to restore from the checkpoint alone)",
                     path, (unsigned long long)prev_epoch, (unsigned long long)plen,
                     (unsigned long long)prev_len);
        break;
      }
      off += 8 + rh[0];
      continue;
    }
    /* t is unsigned: compared as an int, a table of 2^31 or more would pass as negative. */
    bool known = t < (uint32_t)s->ntables;
    if (known && n > s->cfg.max_insert_batch &&
        (uint64_t)rh[0] == 8 + (uint64_t)n * item_bytes(&s->tables[t].spec)) {
      rc = ib_fail(
          IB_EMISMATCH,
          "log '%s': record at byte %llu holds %u items, above this store's "
          "max_insert_batch %u (HINT: restart with the max_insert_batch the log was written "
          "with)",
          path, (unsigned long long)off, n, s->cfg.max_insert_batch);
      break;
    }
    if (!known || n > s->cfg.max_insert_batch ||
        (uint64_t)rh[0] != 8 + (uint64_t)n * item_bytes(&s->tables[t].spec)) {
      rc = ib_fail(IB_EPROTO,
                   "log '%s': record at byte %llu has a valid CRC but names table %u with %u "
                   "items in %u bytes (HINT: written by another build?)",
                   path, (unsigned long long)off, t, n, rh[0]);
      break;
    }
    const store_spec *ts = &s->tables[t].spec;
    size_t O = (size_t)ts->obs_dim, A = (size_t)ts->act_dim;
    const uint8_t *q = p->buf + 8;
    for (uint32_t i = 0; i < n; i++) {
      store_item *it = &items[i];
      memset(it, 0, sizeof *it);
      it->obs = (const float *)q, q += O * 4;
      it->next_obs = (const float *)q, q += O * 4;
      it->action = (const float *)q, q += A * 4;
      it->obs_n = it->next_obs_n = (uint32_t)O;
      it->act_n = (uint32_t)A;
      memcpy(&it->reward, q, 4), q += 4;
      memcpy(&it->discount, q, 4), q += 4;
      uint32_t u[2];
      memcpy(u, q, 8), q += 8;
      it->proposer = u[0];
      it->actor_id = u[1];
      memcpy(&it->seq, q, 8), q += 8;
      memcpy(&it->weight_version, q, 8), q += 8;
      it->episode_end = q[0] != 0;
      it->episode_success = q[1] != 0;
      q += 8;
    }
    rc = store__validate(s, (int)t, items, n);
    store_insert_result res = {0, 0, 0};
    if (rc == IB_OK) rc = store__insert_apply(s, (int)t, items, n, false, &res);
    if (rc != IB_OK) {
      char msg[768];
      snprintf(msg, sizeof msg, "%s", ib_errmsg());
      rc = ib_fail(rc, "log '%s': record at byte %llu cannot be replayed: %s", path,
                   (unsigned long long)off, msg);
      break;
    }
    info->wal_records++;
    info->wal_items += res.stored;
    off += 8 + rh[0];
  }
  free(items);
  close(fd);
  return rc;
}

/* Cuts log `path` at byte `len` and syncs it. */
static int wal_truncate(const char *path, uint64_t len) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return io_fail("open log to truncate", path);
  int rc = ftruncate(fd, (off_t)len) == 0 && fsync(fd) == 0 ? IB_OK : io_fail("truncate log", path);
  close(fd);
  return rc;
}

/* ---- log files ---- */

/* Epochs of the log files in p->dir, ascending, into epochs[0..max). Returns the count or a
 * negative IB_E*. Ignores every other name (including *.tmp). */
static int wal_list(const persist *p, uint64_t *epochs, int max) {
  DIR *d = opendir(p->dir);
  if (!d) return io_fail("list directory", p->dir);
  int n = 0, rc = IB_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *nm = e->d_name;
    if (strncmp(nm, "store.wal.", 10) != 0 || strlen(nm) != 26) continue;
    uint64_t v = 0;
    bool ok = true;
    for (int i = 10; i < 26 && ok; i++) {
      char c = nm[i];
      int x = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
      ok = x >= 0;
      v = (v << 4) | (uint64_t)(x < 0 ? 0 : x);
    }
    if (!ok) continue;
    if (n == max) {
      rc = ib_fail(IB_EPROTO,
                   "directory '%s' holds more than %d log files (HINT: checkpoints keep "
                   "failing; check the disk and the server log)",
                   p->dir, max);
      break;
    }
    epochs[n++] = v;
  }
  closedir(d);
  if (rc) return rc;
  for (int i = 1; i < n; i++) { /* insertion sort: a handful of entries */
    uint64_t v = epochs[i];
    int j = i - 1;
    while (j >= 0 && epochs[j] > v) {
      epochs[j + 1] = epochs[j];
      j--;
    }
    epochs[j + 1] = v;
  }
  return n;
}

/* Deletes the logs older than `epoch` (already contained in checkpoint `epoch`). */
static int wal_remove_older(persist *p, uint64_t epoch, bool *removed) {
  uint64_t ep[MAX_LOGS];
  int n = wal_list(p, ep, MAX_LOGS);
  if (n < 0) return n;
  char path[PATH_MAX_LEN + 32];
  bool any = false;
  for (int i = 0; i < n; i++) {
    if (ep[i] >= epoch) continue;
    wal_name(p, ep[i], path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) return io_fail("remove the old log", path);
    any = true;
  }
  if (removed) *removed = any;
  return any ? fsync_dir(p->dir) : IB_OK;
}

/* Replays the chain of logs ep[0..n) (consecutive epochs after the checkpoint) and settles a
 * crash's damage: at the first log that ends early (a torn record, or shorter than the next log's
 * link says), the later logs are deleted, newest first, and only then is that log truncated (see
 * the top of this file). *nlogs (the index past the caller's last log) drops by the logs
 * deleted. *content gets the bytes of the logs read past their headers and leading links
 * (records and torn tails). */
static int wal_chain_replay(persist *p, const uint64_t *ep, int *nlogs, int n,
                            persist_restore_info *ri, uint64_t *content) {
  char path[PATH_MAX_LEN + 32];
  uint64_t prev_len = UINT64_MAX;
  int keep = n;         /* logs [0, keep) stay */
  int torn = -1;        /* the log to truncate, or -1 */
  uint64_t torn_at = 0; /* its intact length */
  wal_scan sc = {0, 0, NULL, false, 0};
  for (int i = 0; i < n; i++) {
    wal_name(p, ep[i], path, sizeof path);
    int rc = wal_replay(p, path, ep[i], prev_len, ri, &sc);
    if (rc != IB_OK) return rc;
    /* wal_replay refuses a file shorter than its header; a link alone is no content */
    *content += sc.file_len - WAL_HDR - (sc.link_len ? 16 + item_bytes(&p->s->tables[0].spec) : 0);
    if (sc.link_short) { /* log i - 1 is whole but shorter than it was at the cut */
      keep = i;
      char prev[PATH_MAX_LEN + 32];
      wal_name(p, ep[i - 1], prev, sizeof prev);
      log_warn("log '%s' ends at byte %llu but the next log's link says it had %llu at the cut: "
               "its tail was lost in a machine crash",
               prev, (unsigned long long)prev_len, (unsigned long long)sc.link_len);
      break;
    }
    if (sc.torn) {
      keep = i + 1;
      torn = i;
      torn_at = sc.valid_len;
      ri->wal_torn_bytes += sc.file_len - sc.valid_len;
      break;
    }
    prev_len = sc.file_len;
  }
  /* Later logs hold only records stored after the lost ones, none acknowledged: delete them. */
  uint64_t dropped = 0;
  for (int i = n - 1; i >= keep; i--) {
    wal_name(p, ep[i], path, sizeof path);
    struct stat st;
    uint64_t bytes = 0;
    if (stat(path, &st) == 0 && (uint64_t)st.st_size > WAL_HDR)
      bytes = (uint64_t)st.st_size - WAL_HDR;
    if (unlink(path) != 0) return io_fail("remove the log after a lost tail", path);
    log_warn("log '%s': dropping its %llu bytes of records: they follow records lost in a crash "
             "(none was acknowledged; replaying them would hide the lost rows from a retry)",
             path, (unsigned long long)bytes);
    dropped += bytes;
    ri->wal_dropped_logs++;
    /* Each deletion is durable before the next, older one is made: a crash in between must leave
     * a chain without a gap (a gap is refused as missing data). POSIX does not order directory
     * operations that no directory fsync separates; ext4 and XFS commit them in order, other
     * file systems need not (tests/store/test_persist_power.c, its subset model). */
    int rc = fsync_dir(p->dir);
    if (rc != IB_OK) return rc;
  }
  ri->wal_dropped_bytes += dropped;
  if (torn >= 0) {
    wal_name(p, ep[torn], path, sizeof path);
    log_warn("log '%s': %s at byte %llu; dropping the last %llu bytes (a write torn by a crash)",
             path, sc.torn, (unsigned long long)torn_at,
             (unsigned long long)(sc.file_len - torn_at));
    int rc = wal_truncate(path, torn_at);
    if (rc != IB_OK) return rc;
  }
  *nlogs -= n - keep;
  return IB_OK;
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
  pthread_mutex_lock(&p->mu);
  p->written = 1;
  p->broken = true;
  wal_mark_lost(p); /* (lost_lo, lost_hi] = (0, 1]; starts the "since" clock */
  pthread_mutex_unlock(&p->mu);
  uint64_t t0 = ib_now_ns();
  persist_ckpt_info ci;
  int rc = persist_checkpoint(p, &ci);
  ri->recovery_ckpt = true;
  ri->recovery_ckpt_seconds = (double)(ib_now_ns() - t0) * 1e-9;
  if (rc == IB_OK) {
    ri->recovery_ckpt_epoch = ci.epoch;
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
  uint64_t n = ckpt_image_bytes(s, at_capacity);
  store__unlock_all(s);
  return n;
}

/* Warns when the directory's free space cannot hold the largest checkpoint this store can make
 * (each one is written next to the last before it replaces it). Only a warning: a disk may grow,
 * and a store that never fills needs less. */
static void space_check(const persist *p) {
  uint64_t full = persist_ckpt_bytes(p->s, true);
  int64_t freeb = dir_free_bytes(p->dir);
  char have[32], need[32];
  if (freeb >= 0 && (uint64_t)freeb < full)
    log_warn("persist: '%s' has %s free, but a checkpoint of this store at capacity takes %s "
             "(HINT: give the shard a larger disk or smaller tables, or checkpoints will fail "
             "with 'No space left on device' once the tables fill)",
             p->dir, fmt_size(have, sizeof have, (uint64_t)freeb),
             fmt_size(need, sizeof need, full));
}

int persist_open(persist **out, store *s, const char *dir, persist_mode mode,
                 persist_restore_info *info) {
  IB_CHECK(out != NULL && s != NULL && dir != NULL);
  *out = NULL;
  persist_restore_info ri;
  memset(&ri, 0, sizeof ri);
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
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return io_fail("create directory", dir);
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return ib_fail(IB_EIO,
                   "persist: '%s' is not a directory (HINT: give a directory for the store's "
                   "checkpoint and log)",
                   dir);

  persist *p = ib_xcalloc(1, sizeof *p);
  p->s = s;
  p->mode = mode;
  p->fd = p->prev_fd = p->sync_fd = p->zombie_fd = -1;
  snprintf(p->dir, sizeof p->dir, "%s", dir);
  snprintf(p->ckpt_path, sizeof p->ckpt_path, "%s/store.ckpt", dir);
  snprintf(p->ckpt_tmp, sizeof p->ckpt_tmp, "%s/store.ckpt.tmp", dir);
  size_t maxib = 0;
  for (int t = 0; t < s->ntables; t++) maxib = IB_MAX(maxib, item_bytes(&s->tables[t].spec));
  p->buf_cap = 16 + (size_t)s->cfg.max_insert_batch * maxib;
  p->buf = ib_xmalloc(p->buf_cap);
  p->wbuf = ib_xmalloc(WBUF_BYTES);
  IB_CHECK(pthread_mutex_init(&p->mu, NULL) == 0);
  IB_CHECK(pthread_cond_init(&p->cv, NULL) == 0);
  IB_CHECK(pthread_mutex_init(&p->ckpt_mu, NULL) == 0);

  uint64_t epoch = 0, items = 0, content = 0;
  int rc = ckpt_load(p, &epoch, &items);
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
    nlogs = wal_list(p, ep, MAX_LOGS);
    if (nlogs < 0) rc = nlogs;
  }
  if (rc == IB_OK) {
    while (first < nlogs && ep[first] < epoch) first++;
    ri.wal_stale = first > 0;
    if (first < nlogs && ep[first] != epoch)
      rc = ib_fail(
          IB_EMISMATCH,
          "directory '%s': the oldest log has epoch %llu but the checkpoint has "
          "epoch %llu%s, so the records in between are missing (HINT: put back the matching "
          "store.ckpt, or move the logs away to accept the loss)",
          dir, (unsigned long long)ep[first], (unsigned long long)epoch,
          ri.ckpt_found ? "" : " (none found)");
    for (int i = first + 1; rc == IB_OK && i < nlogs; i++)
      if (ep[i] != ep[i - 1] + 1)
        rc = ib_fail(
            IB_EMISMATCH,
            "directory '%s': log epoch %llu follows %llu; a log in between is "
            "missing (HINT: restore the missing store.wal.* file, or move the later logs away "
            "to accept the loss)",
            dir, (unsigned long long)ep[i], (unsigned long long)ep[i - 1]);
  }
  if (rc == IB_OK && first < nlogs) /* may delete logs at the end of the chain: nlogs drops */
    rc = wal_chain_replay(p, ep + first, &nlogs, nlogs - first, &ri, &content);
  p->epoch = (first < nlogs) ? ep[nlogs - 1] : epoch;
  if (rc == IB_OK && mode == PERSIST_WAL) {
    if (first < nlogs) {
      wal_name(p, p->epoch, p->wal_path, sizeof p->wal_path);
      p->fd = open(p->wal_path, O_WRONLY | O_APPEND | O_CLOEXEC);
      struct stat lst;
      if (p->fd < 0 || fstat(p->fd, &lst) != 0)
        rc = io_fail("open log for appending", p->wal_path);
      else
        p->fd_len = (uint64_t)lst.st_size;
    } else {
      rc = wal_create(p, p->epoch, &p->fd, p->wal_path);
      p->fd_len = WAL_HDR;
    }
  }
  if (rc == IB_OK && ri.wal_stale) {
    log_info("persist: removing logs older than checkpoint epoch %llu (their records are in it)",
             (unsigned long long)epoch);
    rc = wal_remove_older(p, epoch, NULL);
  }
  if (rc != IB_OK) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ib_errmsg());
    store__lock_all(s);
    tables_clear(s);
    store__unlock_all(s);
    if (p->fd >= 0) close(p->fd);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->ckpt_mu);
    free(p->buf);
    free(p->wbuf);
    free(p);
    ib_fail(rc, "%s", msg);
    return rc;
  }
  if (mode == PERSIST_WAL) store_log_hook_set(s, wal_append, wal_sync, p);
  space_check(p);
  if (mode == PERSIST_WAL && (content > 0 || ri.wal_dropped_logs > 0)) recovery_ckpt(p, &ri);
  if (info) *info = ri;
  *out = p;
  return IB_OK;
}

/* Writes the link record (the first record of a log made by a cut) into buf: the previous log's
 * epoch and length. Returns its size. */
static size_t wal_link_bytes(const persist *p, uint64_t prev_epoch, uint64_t prev_len,
                             uint8_t *buf) {
  const store_spec *sp = &p->s->tables[0].spec;
  size_t ib = item_bytes(sp), payload = 8 + ib;
  IB_CHECK(8 + payload <= p->buf_cap);
  memset(buf, 0, 8 + payload);
  uint32_t h[2] = {LINK_TABLE, 1};
  memcpy(buf + 8, h, 8);
  uint8_t *q = buf + 16 + (size_t)(2 * sp->obs_dim + sp->act_dim + 2) * 4; /* after the floats */
  uint32_t u[2] = {LINK_MAGIC, LINK_ACTOR};                               /* proposer, actor_id */
  memcpy(q, u, 8);
  memcpy(q + 8, &prev_epoch, 8); /* seq */
  memcpy(q + 16, &prev_len, 8);  /* weight_version */
  uint32_t len = (uint32_t)payload, crc = ib_crc32(0, buf + 8, payload);
  memcpy(buf, &len, 4);
  memcpy(buf + 4, &crc, 4);
  return 8 + payload;
}

/* The cut (every table write-locked, mu held): the current log becomes the previous log and the
 * already created log `nfd` of the next epoch the current one. No disk flush here, and no waiting
 * for a running one (see the top of this file). The previous log of the last cut is settled or
 * broken by now (persist_checkpoint syncs it before taking the locks). */
static void wal_cut(persist *p, int nfd, const char *npath) {
  IB_CHECK(!wal_prev_pending(p) || p->prev_broken);
  /* A hole anywhere before the cut (a broken current log, or a previous log only a checkpoint
   * can cover) is a hole before the new log too: only this cut's checkpoint covers it. */
  bool hole = p->broken || (wal_prev_pending(p) && p->prev_broken);
  wal_fd_retire(p, p->prev_fd);
  p->prev_fd = p->fd;
  memcpy(p->prev_path, p->wal_path, sizeof p->prev_path);
  p->cut_pos = p->written;
  p->prev_broken = hole;
  uint64_t prev_len = p->fd_len;
  p->fd = nfd;
  snprintf(p->wal_path, sizeof p->wal_path, "%s", npath);
  p->fd_len = WAL_HDR;
  p->broken = false;
  /* The link: if the previous log's tail is lost in a crash, a restore sees it is shorter than
   * this says and drops this log's records (acked only once the previous log is durable). It is
   * one small write() to the page cache; syncs of this log make it durable with the records. */
  size_t k = wal_link_bytes(p, p->epoch, prev_len, p->buf);
  if (write_all(p->fd, p->buf, k) != 0) {
    int err = errno;
    log_error("log '%s': writing its link record failed: %s", p->wal_path, strerror(err));
    health_note(p, "write the link record of log", p->wal_path, err);
    p->broken = true; /* no ticket is in it yet; appends fail until the next checkpoint */
  } else {
    p->written += k;
    p->fd_len += k;
  }
  if (!hole && p->synced >= p->cut_pos) wal_prev_settle(p); /* nothing of it left to flush */
}

/* Settles the previous log before a cut, outside the store locks: flushes it (sharing the group
 * commit) until it is durable or broken. It is pending here only if the last checkpoint failed. */
static void wal_prev_flush(persist *p) {
  pthread_mutex_lock(&p->mu);
  while (wal_prev_pending(p) && !p->prev_broken) {
    if (p->sync_fd >= 0)
      pthread_cond_wait(&p->cv, &p->mu);
    else
      wal_sync_once(p);
  }
  pthread_mutex_unlock(&p->mu);
}

/* After the checkpoint of the last cut (mu not held): if it is durable, everything before the cut
 * is, so the previous log is settled whatever its own flushes did. If it failed and the chain has
 * a hole before the cut, the tickets after it cannot become durable until a later checkpoint:
 * refuse them (the appends too) rather than let their callers wait for one. */
static void wal_ckpt_done(persist *p, bool ok, uint64_t cut_at) {
  pthread_mutex_lock(&p->mu);
  if (ok && cut_at > p->covered_pos) p->covered_pos = cut_at; /* every row before the cut is durable */
  if (p->prev_fd >= 0) {
    if (ok) {
      if (p->synced < p->cut_pos) p->synced = p->cut_pos;
      wal_prev_settle(p);
    } else if (p->prev_broken) {
      wal_mark_lost(p);
      p->broken = true;
    }
  }
  health_settle(p);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
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
   * epoch can be read here without the log mutex. The next log is created (and fsynced) before
   * the store is held: if we crash before the cut it is just an empty log at the end of the
   * chain. */
  uint64_t next = p->epoch + 1;
  int nfd = -1;
  char npath[PATH_MAX_LEN + 32];
  if (p->mode == PERSIST_WAL) {
    int rc = wal_create(p, next, &nfd, npath);
    if (rc != IB_OK) {
      ckpt_note_failure(p, errno);
      pthread_mutex_unlock(&p->ckpt_mu);
      return rc;
    }
    wal_prev_flush(p);
  }
  uint64_t t_lock = ib_now_ns();
  store__lock_all(s);
  uint64_t cut_at = 0; /* every ticket <= cut_at is a row this checkpoint holds */
  if (p->mode == PERSIST_WAL) {
    pthread_mutex_lock(&p->mu);
    cut_at = p->written;
    wal_cut(p, nfd, npath);
    pthread_mutex_unlock(&p->mu);
  }
  p->epoch = next;
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
      res = ckpt_write_image(p, next, samples);
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
    res = ckpt_write_image(p, next, samples);
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
  if (p->mode == PERSIST_WAL) wal_ckpt_done(p, res.step == CK_OK, cut_at);
  if (res.step == CK_RESERVE) {
    char need[32], have[64];
    fmt_size(need, sizeof need, res.bytes);
    int64_t freeb = dir_free_bytes(p->dir);
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
                 ck_step_name(res.step), path,
                 res.err == ECHILD ? "the writer process died" : strerror(res.err),
                 forked ? " (in the background writer)" : "");
  } else {
    /* Checkpoint `next` holds everything the older logs held (their fds are closed or left to the
     * one running fdatasync, which a deleted file does not disturb). */
    rc = wal_remove_older(p, next, NULL);
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
    if (p->sync_fd >= 0 || (wal_prev_pending(p) && p->prev_broken)) {
      pthread_cond_wait(&p->cv, &p->mu); /* a running fdatasync or checkpoint decides */
      continue;
    }
    if (!wal_prev_pending(p) && p->broken) { /* the break marked target lost: not reached */
      rc = ib_fail(IB_EIO, "log '%s' is broken (HINT: check the disk)", p->wal_path);
      break;
    }
    wal_sync_once(p);
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
