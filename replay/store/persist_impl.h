/* persist_impl.h: what the parts of the replay store's persistence share: persist.c (helpers,
 * health, the public calls), persist_ckpt.c (the checkpoint file) and persist_wal.c (the log).
 * Not a public header: callers use persist.h. */
#ifndef IB_PERSIST_IMPL_H
#define IB_PERSIST_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "persist.h"
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

#define WAL_HDR 44 /* bytes of a log header */

/* Where a checkpoint write failed, for the message. */
enum { CK_OK = 0, CK_CREATE, CK_RESERVE, CK_WRITE, CK_FSYNC, CK_CLOSE, CK_RENAME, CK_DIRSYNC };

/* What the checkpoint writer reports (through a pipe when it runs in a child). */
typedef struct ck_result {
  int step;       /* CK_OK or the failing step */
  int err;        /* errno of the failure */
  uint64_t bytes; /* file size written (CK_RESERVE: the size it could not reserve) */
} ck_result;

#define PERSIST_COUNTS_PENDING 8 /* saves whose rows may still wait for their flush */

struct persist {
  store *s;
  persist_mode mode;
  char dir[PATH_MAX_LEN];
  char ckpt_path[PATH_MAX_LEN + 16];
  char ckpt_tmp[PATH_MAX_LEN + 32];
  uint64_t epoch;                   /* epoch of the current log: the next checkpoint is epoch + 1;
                                       changed under ckpt_mu and mu */
  pthread_mutex_t ckpt_mu;          /* one checkpoint at a time */
  uint8_t *wbuf;                    /* [WBUF_BYTES] owned: the checkpoint writer's buffer */
  uint64_t huge_at_ns, huge_ns;     /* under ckpt_mu: when the last store_huge_collapse ended, its length */
  /* Log state, under mu (see the top of persist.c). */
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
  /* Health, under mu (see the top of persist.c). */
  uint64_t covered_pos;     /* logical position of the last successful checkpoint's cut */
  bool append_failing;      /* the last append's write failed (and was cut off again) */
  uint64_t since_ns, since_unix_ms; /* when the trouble began, 0 when healthy */
  int cause_errno;
  char cause[384];          /* the error that began the trouble */
  char last_error[384];
  uint64_t failed_ckpts;    /* since the trouble began */
  uint64_t io_errors;       /* all time */
  int ckpt_errno;           /* errno of the last failed checkpoint (0 if unknown) */
  uint64_t counts_sum;               /* persist_counts_save: the counters' sum it wrote last */
  /* persist_counts_save's watermark of acknowledged rows (PERSIST_WAL; only its caller's thread):
   * acked_ins[t] rows of table t are known durable; the last saves' pairs: pend_ins[k][t] rows
   * were stored when the log had pend_written[k] bytes, and are durable once every ticket up to
   * there is (a ring, pend_next the next to fill). */
  uint64_t acked_ins[STORE_MAX_TABLES];
  uint64_t pend_ins[PERSIST_COUNTS_PENDING][STORE_MAX_TABLES], pend_written[PERSIST_COUNTS_PENDING];
  uint32_t pend_next;
  uint8_t *buf;                      /* record buffer for max_insert_batch items */
  size_t buf_cap;
};


/* ---- persist_counts.c ---- */

/* After a restore (p->epoch set, before the recovery checkpoint): raises the tables' counters to
 * those of dir/store.counts when it belongs to the restored chain, or deletes it when nothing was
 * restored. Never fails: a file it cannot use is logged and ignored. */
void persist__counts_apply(persist *p, persist_restore_info *ri);

/* ---- persist.c ---- */

/* Bytes this process may still allocate in dir's file system (root may use the blocks reserved
 * for it), or -1 (errno set). statfs, not statvfs, which may read /proc/mounts through stdio:
 * the forked checkpoint writer calls this, and may not allocate. */
int64_t persist__dir_free_bytes(const char *dir);

int persist__fsync_dir(const char *dir);

/* Records an I/O error: `op` on `path` failed with `err` (mu held). */
void persist__health_note(persist *p, const char *op, const char *path, int err);

/* Stops the clock once every condition has cleared (mu held). */
void persist__health_settle(persist *p);

/* Starts the "since" clock if it is not running (mu held). */
void persist__health_trouble(persist *p);

int persist__io_fail(const char *what, const char *path);

/* Item bytes in a log record for table tb. */
size_t persist__item_bytes(const store_spec *sp);

int persist__write_all(int fd, const void *p, size_t n);

/* persist_open's steps, which persist_salvage.c shares. */
/* Checks the arguments and that the store is empty; creates the directory (one level). */
int persist__open_check(store *s, const char *dir, persist_mode mode);
/* A persist object for `dir`, not attached (no log open, no hook). Released with persist_close. */
persist *persist__new(store *s, const char *dir, persist_mode mode);
/* A failed open: empties the store's tables, releases p and returns rc with its message. */
int persist__open_fail(persist *p, int rc);
/* PERSIST_WAL: opens the log of p->epoch for appending (`append`: it exists, the newest of the
 * chain) or creates it fresh; nothing in checkpoint-only mode. */
int persist__open_log(persist *p, bool append);
/* Installs the log hook (PERSIST_WAL), warns about free space and, with `recover`, writes the
 * checkpoint that makes the restored rows durable from memory (PERSIST_WAL: the end-of-recovery
 * checkpoint; checkpoint-only: a plain one), noting it in ri. Never fails: a failed checkpoint
 * is in ri and in the health. */
void persist__open_finish(persist *p, bool recover, persist_restore_info *ri);

/* ---- persist_ckpt.c ---- */

const char *persist__ck_step_name(int step);

/* The size in bytes of the checkpoint of the store as it is (the caller holds the tables) or, with
 * `full`, of the same store with every table at capacity and every actor slot in use: the most
 * a checkpoint of it can take. */
uint64_t persist__ckpt_image_bytes(const store *s, bool full);

/* Loads the checkpoint at p->ckpt_path into the (empty) store. IB_ENOTFOUND if there is none. */
int persist__ckpt_load(persist *p, uint64_t *epoch, uint64_t *items);

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
ck_result persist__ckpt_write_image(persist *p, uint64_t epoch, const uint64_t *samples);

/* Empties every table (after a failed restore). All locks held. */
void persist__tables_clear(store *s);

/* ---- persist_wal.c ---- */

/* The store's log hooks (store_log_hook_set): append a batch as one record, and wait until the
 * record of `ticket` is durable (group commit). */
int persist__wal_append(void *ctx, int table, const store_item *items, size_t n, uint64_t *ticket);
int persist__wal_sync(void *ctx, uint64_t ticket);

/* What persist__wal_replay_file found in one log. */
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
 * nothing is applied and out->link_short is set. On an error the records before it stay applied
 * (out->valid_len is where it stopped). */
int persist__wal_replay_file(persist *p, const char *path, uint64_t want_epoch, uint64_t prev_len,
                             persist_restore_info *info, wal_scan *out);

/* Replays the chain of logs ep[0..n) (consecutive epochs after the checkpoint) and settles a
 * crash's damage: at the first log that ends early (a torn record, or shorter than the next log's
 * link says), the later logs are deleted, newest first, and only then is that log truncated (see
 * the top of persist.c). *nlogs (the index past the caller's last log) drops by the logs
 * deleted. *content gets the bytes of the logs read past their headers and leading links
 * (records and torn tails). */
int persist__wal_chain_replay(persist *p, const uint64_t *ep, int *nlogs, int n,
                               persist_restore_info *ri, uint64_t *content);

/* After the checkpoint of the last cut (mu not held): if it is durable, everything before the cut
 * is, so the previous log is settled whatever its own flushes did. If it failed and the chain has
 * a hole before the cut, the tickets after it cannot become durable until a later checkpoint:
 * refuse them (the appends too) rather than let their callers wait for one. */
void persist__wal_ckpt_done(persist *p, bool ok, uint64_t cut_at);

/* Creates the log of `epoch` (tmp + fsync + rename + fsync dir), opened for appending in *fd_out,
 * its path in path_out[PATH_MAX_LEN + 32]. Nothing changes on error. */
int persist__wal_create(persist *p, uint64_t epoch, int *fd_out, char *path_out);

/* The cut (every table write-locked, mu held): the current log becomes the previous log and the
 * already created log `nfd` of the next epoch the current one. No disk flush here, and no waiting
 * for a running one (see the top of persist.c). The previous log of the last cut is settled or
 * broken by now (persist_checkpoint syncs it before taking the locks). */
void persist__wal_cut(persist *p, int nfd, const char *npath);

/* Epochs of the log files in p->dir, ascending, into epochs[0..max). Returns the count or a
 * negative IB_E*. Ignores every other name (including *.tmp). */
int persist__wal_list(const persist *p, uint64_t *epochs, int max);

/* Marks the tickets in (synced, written] as never durable (mu held); see the top of persist.c. */
void persist__wal_mark_lost(persist *p);

/* The path of the log of `epoch` in p->dir. */
void persist__wal_name(const persist *p, uint64_t epoch, char *out, size_t n);

/* Settles the previous log before a cut, outside the store locks: flushes it (sharing the group
 * commit) until it is durable or broken. It is pending here only if the last checkpoint failed. */
void persist__wal_prev_flush(persist *p);

/* Whether the previous log still has to be made durable (mu held). */
static inline bool persist__wal_prev_pending(const persist *p) { return p->prev_fd >= 0 && p->synced < p->cut_pos; }

/* Deletes the logs older than `epoch` (already contained in checkpoint `epoch`). */
int persist__wal_remove_older(persist *p, uint64_t epoch, bool *removed);

/* Runs one fdatasync as the only syncer (mu held on entry and exit, released around the call):
 * of the previous log up to cut_pos if it is pending, else of the current log up to written. */
void persist__wal_sync_once(persist *p);

#endif
