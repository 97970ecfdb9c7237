/* persist.h: durability for a replay store: atomic checkpoints and an optional write-ahead log.
 *
 * A store directory holds:
 *   store.ckpt  the last checkpoint: magic, format version, epoch, the table specs, every table's
 *               items, counters and per-actor dedup state, and a CRC-32 over everything
 *               (ib_crc32). Written as store.ckpt.tmp, fsync'ed, renamed over store.ckpt, then the
 *               directory is fsync'ed, so a crash leaves either the old or the new checkpoint.
 *   store.wal.<epoch as 16 hex digits>   (PERSIST_WAL only) the write-ahead log since checkpoint
 *               <epoch>: a header, then (if a cut made it) a link record naming the previous
 *               log's length, then one record per insert batch (length, CRC-32, table, items).
 *               store_insert returns only after its record, and every log byte before it, is
 *               fsync'ed (group commit: one fdatasync serves every batch written before it), so an
 *               acknowledged item survives a crash of the process or the machine.
 *   store.counts  the counters the log does not hold (samples, duplicates, each actor's
 *               duplicates, rejected batches) and how many rows were acknowledged as durable,
 *               when the server saves them (persist_counts_save, about once a second): advisory,
 *               written and renamed without a flush (persist_counts.c).
 *
 * A checkpoint does not stop the store: it holds every table's write lock only for the cut (switch
 * appends to log epoch+1, fork()); no disk flush runs under the locks. A child process then writes
 * the file from a copy-on-write image while inserts and samples go on, and the old log's tail is
 * flushed by the next group commit (before any byte of the new log counts as durable) or covered
 * by the checkpoint once it is durable. If fork() is not possible the file is written with the
 * store locked instead (persist_ckpt_info says which). After the new checkpoint is durable, the
 * logs older than it are deleted.
 *
 * Restore = checkpoint k (if any) + logs k, k+1, ... in order (several only after failed
 * checkpoints, or a crash during one). Logs older than the checkpoint are deleted (their records
 * are in it). A torn record (a crash in the middle of a write, or a tail never flushed) fails its
 * length or CRC check and is dropped with everything after it in that file; the file is truncated
 * there. A log that is whole but shorter than the next log's link says lost its tail the same way.
 * Either way, when the short log is not the last one, every later log is deleted too (their
 * records were stored after the lost ones and none was acknowledged; replaying them would make an
 * actor's retry of the lost rows look like duplicates); persist_restore_info counts them and a
 * warning names each file.
 *
 * The end-of-recovery checkpoint (PERSIST_WAL): a restore reads the logs through the page cache,
 * which can hold bytes the disk does not: the unflushed tail of a process that was killed, or
 * pages whose writeback failed (EIO) and that the kernel then marked clean, so they never reach
 * the disk and a later fdatasync returns 0 (the error went to the dead process). If the new
 * process built on them (acknowledging a retry of those rows as a duplicate, or new rows in a
 * later log), a machine crash would tear the old log and the rule above would drop the later
 * logs with acknowledged rows in them. So after a restore that found any log content past the
 * checkpoint (a record or torn bytes; a log holding only its link does not count), or dropped a
 * log, persist_open writes a checkpoint of the restored store from memory (as every
 * checkpoint: fsync, rename, directory fsync) and deletes the old logs before it returns, as
 * PostgreSQL does at the end of its recovery. If that checkpoint fails, persist_open still
 * succeeds (samples can be served) but durability starts broken: persist_health_get says so, and
 * inserts and persist_barrier are refused until a checkpoint succeeds.
 *
 * Refused, with a message saying
 * what differs (the server decides: stop, or keep every intact row with persist_open_salvage): a damaged checkpoint
 * (bad magic, version, CRC, size, a row that is not finite), one whose specs differ from the store's, a damaged log header,
 * a log chain with a gap or starting after the checkpoint (data missing), a log whose records hold
 * more items than the store's max_insert_batch.
 *
 * What a checkpoint does not hold: the rate limiter (re-seed it with rlim_counts_restore from
 * store_table_info) and the insert/sample rate meters. What the log does not hold: calls that
 * stored nothing, and samples; so after a log replay the duplicates, rejected_batches and
 * total_samples counters are those of the checkpoint (items, dedup state, per-actor history and
 * total_inserts are exact), raised to those of dir/store.counts when persist_counts_save wrote
 * one since (each actor's duplicates too).
 *
 * Thread safety: persist_open and persist_close must not race with other calls on the store.
 * persist_checkpoint is thread-safe with respect to inserts, samples and other checkpoints (which
 * wait for it). Only one persist object may be attached to a store. The background writer is a
 * child process: a server that reaps children with a SIGCHLD handler must not reap it (waitpid on
 * its own pid). */
#ifndef IB_PERSIST_H
#define IB_PERSIST_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

typedef enum persist_mode {
  PERSIST_CKPT_ONLY = 0, /* checkpoints only: inserts since the last checkpoint can be lost */
  PERSIST_WAL = 1,       /* checkpoints + write-ahead log: acknowledged inserts are durable */
} persist_mode;

/* What persist_open found and restored. */
typedef struct persist_restore_info {
  bool ckpt_found;            /* a checkpoint was loaded */
  uint64_t ckpt_epoch;        /* its epoch (0 if none) */
  uint64_t ckpt_items;        /* items it held, all tables */
  bool wal_found;             /* a current log file was replayed */
  bool wal_stale;             /* logs older than the checkpoint were found and deleted */
  uint64_t wal_records;       /* records replayed */
  uint64_t wal_items;         /* items stored by the replay (after dedup) */
  uint64_t wal_torn_bytes;    /* bytes dropped from log tails (a torn or corrupt record) */
  uint64_t wal_dropped_logs;  /* later logs deleted because an earlier log lost its tail */
  uint64_t wal_dropped_bytes; /* their record bytes (headers not counted) */
  bool recovery_ckpt;         /* the end-of-recovery checkpoint was attempted (PERSIST_WAL, some
                                 log content was found past the checkpoint) */
  bool recovery_ckpt_failed;  /* it failed: durability starts broken (persist_health_get) */
  uint64_t recovery_ckpt_epoch;   /* the epoch it wrote (0 if failed or not attempted) */
  double recovery_ckpt_seconds;   /* how long it took, failed or not */
  uint64_t counts_samples;        /* samples that store.counts added to the restored counters */
  uint64_t counts_duplicates;     /* duplicates it added */
  /* Rows store.counts says were acknowledged as durable (PERSIST_WAL) that the restore does not
   * hold, all tables: only a disk that lost flushed data (or a salvage) leaves any. A lower bound
   * of the loss: the file is saved about once a second and not flushed, and is not used when it
   * is damaged or when nothing was restored. A file of a later epoch than the restored chain is
   * compared (the chain lost a log or checkpoint), though its other counters are not used. */
  uint64_t acked_missing;
  uint64_t counts_acked;          /* that file's count of acknowledged rows, all tables (0 when
                                     the file was not used) */
} persist_restore_info;

/* What one persist_checkpoint wrote. */
typedef struct persist_ckpt_info {
  uint64_t epoch;
  uint64_t items;
  uint64_t bytes;
  double seconds;         /* the whole call */
  double blocked_seconds; /* how long inserts and samples were held (the cut) */
  bool background;        /* written by a forked child (false: written with the store locked) */
  double huge_seconds;    /* store_huge_collapse after the child exited (0 if not forked or skipped) */
  uint64_t huge_bytes;    /* what it returned: arena bytes in huge pages again */
} persist_ckpt_info;

/* A checkpoint's header, read without a store (for inspection tools). */
typedef struct persist_ckpt_summary {
  uint32_t version;
  uint64_t epoch;
  int ntables;
  store_spec specs[STORE_MAX_TABLES];
  uint64_t sizes[STORE_MAX_TABLES];
  uint64_t total_inserts[STORE_MAX_TABLES];
  uint64_t file_bytes;
} persist_ckpt_summary;

typedef struct persist persist;

#define PERSIST_PATH_MAX 1024 /* longest store directory name (persist_open refuses longer) */

/* Attaches durability in directory `dir` (created if missing, one level) to the store `s`, which
 * must be empty (freshly created; else IB_ESTATE). First restores: loads dir/store.ckpt if present,
 * then replays the chain of logs dir/store.wal.* (in either mode, so no logged item is lost when
 * switching modes), truncating a torn tail, deleting the logs after a log that lost its tail, and
 * deleting logs older than the checkpoint. Then, in PERSIST_WAL mode, opens the newest log (or a
 * fresh one) for appending and installs the store's log hook; if any log content was found, it
 * writes the end-of-recovery checkpoint (see the top of this file), which starts a fresh log. A
 * failure of that checkpoint is not an error of persist_open: it returns IB_OK with
 * info->recovery_ckpt_failed set and the health broken (appends and persist_barrier fail with
 * IB_EIO until a persist_checkpoint succeeds). `info` (may be NULL) says what was restored.
 * Errors (nothing attached and the store is left empty): IB_EIO (cannot create or open the
 * directory or files), IB_EPROTO / IB_ECHECKSUM (damaged checkpoint, log header or link record, or
 * a log record under a valid CRC that no writer stores), IB_EMISSING (logs are missing from the
 * chain), IB_EMISMATCH (settings differ: checkpoint specs other than the store's, the message
 * naming the table and field, or logs written with a larger max_insert_batch), IB_EFULL (a demo
 * table or max_actors too small for the rows), IB_ESTATE (store not empty). So IB_EPROTO,
 * IB_ECHECKSUM and IB_EMISSING are the damage that persist_open_salvage takes.
 * On success *out is owned by the caller; release it with persist_close. */
int persist_open(persist **out, store *s, const char *dir, persist_mode mode,
                 persist_restore_info *info);

/* What persist_open_salvage did when the strict restore refused. */
typedef struct persist_salvage_info {
  bool salvaged;           /* the strict restore refused and the salvage ran (false: the strict
                              restore succeeded, or refused for a reason salvage does not take) */
  char refusal[512];       /* the strict restore's message */
  char aside[PERSIST_PATH_MAX + 48]; /* dir/damaged-<UTC time>: the files as they were */
  int files_aside;         /* store files put there (hard links, or copies where links fail) */
  bool ckpt_loaded;        /* the checkpoint was intact and its rows are in the store */
  bool ckpt_damaged;       /* a checkpoint was there but unreadable: its rows are lost */
  uint64_t ckpt_items;     /* rows it gave */
  int logs_read;           /* log files read (each up to its first damage) */
  int logs_damaged;        /* of them, those with a bad header, a torn or malformed record, or a
                              record that does not validate: the rest of each is lost */
  uint64_t log_items;      /* rows the logs gave (after dedup) */
  uint64_t log_bytes_lost; /* bytes of the logs past their first damage */
} persist_salvage_info;

/* As persist_open, but when the restore refuses because files are damaged or missing (IB_EPROTO,
 * among others for a log record that holds what no writer stores under a valid CRC;
 * IB_ECHECKSUM; IB_EMISSING for a gap in the chain of logs), it keeps every intact row
 * instead, for a machine whose disk lost or corrupted data it had acknowledged as flushed
 * (persist_open refuses such a directory and leaves the decision to the operator):
 *   1. reads the checkpoint if it is intact, then every log from the checkpoint's epoch on (every
 *      log when there is no intact checkpoint), each in epoch order up to its first damage,
 *      across gaps in the chain; duplicates of (actor_id, seq) are stored once;
 *   2. links every store file into a new directory dir/damaged-<UTC time> (copies it where a hard
 *      link fails; moves the temporary *.tmp files, which the next checkpoint or log would
 *      otherwise rewrite through the link), so nothing is deleted: an operator can still inspect
 *      or restore them;
 *   3. starts a fresh log past every epoch found and writes a checkpoint of what it kept, which
 *      makes the old files stale: the next persist_open takes the new checkpoint. If that
 *      checkpoint fails, this still succeeds with durability broken, as persist_open does after
 *      its end-of-recovery checkpoint fails; until one is durable a crash leaves the old files in
 *      place, and a second salvage starts over (in a new damaged-* directory).
 * Rows of a damaged checkpoint, and the records of a log past its first damage, are lost; so may
 * be rows an actor was told were stored. The counters are those of what was kept (an intact
 * checkpoint's, plus the logs' rows).
 * Still refused, with nothing changed: settings that differ from the files' (IB_EMISMATCH: other
 * specs, or logs written with a larger max_insert_batch; IB_EFULL: a demo table or max_actors
 * too small for the rows), I/O errors (IB_EIO) and every error persist_open returns before it
 * reads a file. Those of persist_open's refusals it returns at once, without reading anything
 * (the same code and message); the others if the salvage's own read runs into them. `sv` (may be NULL) says what was kept and lost. Memory: as a restore
 * of the same rows. */
int persist_open_salvage(persist **out, store *s, const char *dir, persist_mode mode,
                         persist_restore_info *info, persist_salvage_info *sv);

/* Writes a checkpoint of the whole store atomically (see the top of this file); returns when it
 * is durable. Inserts and samples are held only for the cut (the log switch and the fork, no disk
 * flush) unless fork() fails. A previous log left unflushed by a failed checkpoint is flushed
 * first, before the store is held. After a forked writer exited, store_huge_collapse gives the
 * record arenas back the huge pages that the inserts meanwhile split (store.h), outside the cut,
 * unless mending would take more than a tenth of the time (persist.c says how).
 * info->huge_seconds is 0 when it was skipped.
 * The writer first reserves the file's whole size (persist_ckpt_bytes): on a disk without room
 * the checkpoint fails before it writes anything.
 * Errors: IB_EIO naming the file and the failing operation (for a disk without room: the size
 * needed and the free space); the previous checkpoint and the logs since it stay valid, so
 * nothing is lost. `info` may be NULL. */
int persist_checkpoint(persist *p, persist_ckpt_info *info);

/* ---- health (what a failing disk did, for the server's Info, its messages and its healing) ----
 *
 * A failed write or fdatasync of the log breaks the chain (see persist.c, "Errors"): appends fail
 * with IB_EIO until a checkpoint succeeds and starts a fresh log. Nothing in this module retries
 * that checkpoint: the caller decides when (ibrl-replay's main loop does, with backoff). A failed
 * append whose partial record could be cut off again (a full disk refusing the write) does not
 * break the chain: the next append tries the disk again, and no checkpoint is needed. */
typedef struct persist_health {
  bool needs_checkpoint; /* the chain is broken, or rows in memory are not durable: only a
                            successful checkpoint restores durability */
  bool refusing;         /* appends fail now (the current log is broken) */
  bool append_failing;   /* the last append's write failed (cut off again; chain intact) */
  bool undurable;        /* rows in memory whose flush failed and that no checkpoint covers yet:
                            their duplicates (an actor's retries) must not be acknowledged */
  uint64_t since_unix_ms; /* wall clock when the trouble began (0 when healthy) */
  uint64_t since_ns;      /* the same on ib_now_ns()'s clock (0 when healthy) */
  int cause_errno;        /* errno of the error that began the trouble (0 when healthy) */
  char cause[384];        /* that error: operation, file, strerror ("" when healthy) */
  char last_error[384];   /* the last I/O error or failed checkpoint's message ("" if none) */
  char log_path[PERSIST_PATH_MAX + 32]; /* the current log ("" in checkpoint-only mode) */
  uint64_t failed_checkpoints; /* checkpoints that failed since the trouble began */
  uint64_t io_errors;          /* log writes, log flushes and checkpoints that failed, all time */
} persist_health;

/* Snapshot of p's health. Thread-safe (takes the log mutex briefly; never waits for a flush or a
 * checkpoint). Once every condition has cleared, since_* and failed_checkpoints are 0 again;
 * last_error keeps the last error for the record. */
void persist_health_get(persist *p, persist_health *out);

/* Waits until every row stored so far is durable, through the log or a checkpoint (PERSIST_WAL;
 * IB_OK at once in checkpoint-only mode). For a batch that was all or partly duplicates: the
 * originals may be rows whose flush failed or is still running, and acknowledging the duplicate
 * must not promise more than they have. Returns IB_OK, or IB_EIO when some are not durable and
 * cannot be until a checkpoint succeeds. Thread-safe (one fdatasync shared with the inserts). */
int persist_barrier(persist *p);

/* Saves what the log does not hold to dir/store.counts (written and renamed, not flushed: see
 * persist_counts.c): the tables' total_samples, duplicates and rejected_batches, and each actor's
 * duplicates, so a restore after a crash counts the samples since the last checkpoint too
 * (persist_open raises each counter to the file's value; persist_restore_info.counts_samples says
 * by how much); and, with PERSIST_WAL, how many rows were acknowledged as durable, so a restore
 * that holds fewer reports them (persist_restore_info.acked_missing). Writes nothing when no
 * counter changed since its last write. A server calls it about once a second, from one thread
 * (it may run beside inserts, samples and checkpoints, not beside itself). Returns IB_OK or IB_EIO
 * (nothing depends on the file: log and go on). */
int persist_counts_save(persist *p);

/* Detaches from the store (removes the log hook), closes the files, frees p. Does not write a
 * checkpoint. Accepts NULL. */
void persist_close(persist *p);

/* The size in bytes of a checkpoint of s as it is now or, with at_capacity, the most one can take
 * (every table full, every actor slot of store_config.max_actors in use). Each checkpoint reserves
 * its whole size before it writes (fallocate), so on a disk without room it fails at once, naming
 * the size and the free space, with nothing written; persist_open warns when the directory's free
 * space is below the at_capacity size. Thread-safe (holds the store's tables briefly). */
uint64_t persist_ckpt_bytes(store *s, bool at_capacity);

/* Reads and checks (magic, version, CRC) the checkpoint in `dir` without a store.
 * Errors: IB_ENOTFOUND (no checkpoint), IB_EIO, IB_EPROTO, IB_ECHECKSUM. */
int persist_ckpt_inspect(const char *dir, persist_ckpt_summary *out);

#endif /* IB_PERSIST_H */
