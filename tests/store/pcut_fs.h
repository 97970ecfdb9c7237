/* pcut_fs.h: a power-cut model of one directory, for the persistence tests (test_persist_power).
 *
 * What it models: on Linux, creating, renaming and unlinking a directory entry is durable only
 * after an fsync of the directory, and a file's bytes only after an fsync/fdatasync of the file.
 * The test executable that links pcut_fs.c defines open, rename, unlink, fsync, fdatasync and
 * ftruncate itself; ib_store is a static library, so persist*.c's calls bind to these definitions.
 * Calls on the watched directory are journaled, then passed to the kernel with syscall(); every
 * other call goes straight through.
 *
 * The journal lives in MAP_SHARED memory with a process-shared lock, so the checkpoint writer (a
 * forked child) journals into the same place as its parent. It keeps:
 *   - the namespace as of the last completed directory fsync (durable), and the directory
 *     operations issued since (pending: creates, renames, unlinks, in issue order);
 *   - per file (a "fid": one inode's life, found by inode number) its durable length (its length
 *     when its last successful flush started) and, once it was unlinked, replaced by a rename or
 *     truncated, a shadow copy of its bytes, because a crash can bring the old name or bytes back.
 * A crash state is the durable namespace plus a prefix (or, optionally, any subset) of the
 * pending operations, with each file cut to a length between its durable length and its length at
 * the crash (pcut_variants, pcut_file_range, pcut_build).
 *
 * Crash points: every journaled call is an event, numbered in arrival order. pcut_hold_at(n)
 * stops the caller of event n before the call runs (in the parent or the child) until the test
 * has copied the crash states (pcut_hold_wait, pcut_hold_release). pcut_freeze stops every new
 * event instead (for copies while threads run). pcut_hold_after_failure holds a few events after
 * the next failed call (see Failures below). Gates (pcut_gate_*) stop the first call of a kind
 * until opened, so a test can order threads deterministically; a gate is passed before a hold.
 *
 * Failures (pcut_fail_rate): a failing disk. A journaled call of a kind the test names fails with
 * the errno it names instead of running, drawn per call from the journal's generator (shared, so
 * the checkpoint writer's calls fail too); calls outside the watched directory never fail, and
 * no call fails unless the test asks (pcut_watch turns failures off). What a failure leaves:
 *   - create (open with O_CREAT), rename, unlink, truncation: -1 and nothing done, nothing
 *     journaled (the entry is as before; an O_TRUNC open truncates nothing);
 *   - directory fsync: -1 and nothing committed: the pending operations stay pending, so a crash
 *     may keep any prefix of them, and a later directory fsync that succeeds commits them. That
 *     is lenient, and chosen: on ext4 and XFS a directory fsync commits the journal holding
 *     every earlier change to the namespace, and a failed commit aborts the journal (every later
 *     fsync fails too), so a later success means they were committed. A stricter model (they may
 *     never become durable) would matter only to a writer that counts on a later directory
 *     fsync to cover an operation whose own fsync failed; persist.c does not (a failed step
 *     fails its checkpoint, and the next one makes a new rename with its own directory fsync);
 *   - file fsync/fdatasync: -1 and the durable length stays; it is also capped there for the
 *     rest of the file's life (pcut_file.capped): Linux marks the pages of a failed writeback
 *     clean, and they may never reach the disk even when a later flush returns 0. So a crash may
 *     cut that file anywhere past the cap however often it was flushed since. Only a truncation
 *     to at most the cap (O_TRUNC, ftruncate) lifts it: the dropped pages go with the bytes, and
 *     what is written after is new and flushed as usual (without this, a temporary file whose
 *     flush failed and whose unlink failed too would, reopened with O_TRUNC, stay empty after a
 *     good flush: a state no kernel leaves).
 *
 * Errors: setup failures abort (IB_CHECK): a test cannot run without its model. Thread safety:
 * every function may be called from any thread; the control functions (watch, hold, gate, fail,
 * freeze, snapshot) are for the test's main thread. Never call an interposed function on a
 * watched file while holding the journal lock (the module does not). */
#ifndef IB_PCUT_FS_H
#define IB_PCUT_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "rng.h"

#define PCUT_NAME 48        /* longest entry name in the watched directory, with its NUL */
#define PCUT_MAX_OPS 64     /* pending directory operations between two directory fsyncs */
#define PCUT_MAX_FILES 96   /* files the journal tracks at once */
#define PCUT_MAX_NAMES 32   /* entries in one namespace */
#define PCUT_MAX_VARIANTS 256

/* Event kinds (journal order) and what a gate can wait for. */
enum { PCUT_CREATE = 1, PCUT_RENAME, PCUT_UNLINK, PCUT_DSYNC, PCUT_FSYNC, PCUT_TRUNC, PCUT_NKINDS };

typedef struct pcut_op {
  int kind; /* PCUT_CREATE, PCUT_RENAME or PCUT_UNLINK */
  int fid;
  char name[PCUT_NAME];
  char to[PCUT_NAME]; /* rename target */
} pcut_op;

typedef struct pcut_ns {
  int n;
  struct {
    char name[PCUT_NAME];
    int fid;
  } e[PCUT_MAX_NAMES];
} pcut_ns;

typedef struct pcut_file {
  int used;
  int live;                 /* has a name in the real directory now */
  uint64_t ino;             /* 0 once another file may have its number */
  char live_name[PCUT_NAME];
  uint64_t dur;             /* durable length */
  int shrunk;               /* truncated since its last flush: bytes past its length may be back */
  uint64_t cur_dead;        /* its length when it lost its last name */
  uint64_t shadow_len;      /* bytes in its shadow copy (0: none) */
  uint32_t gen;             /* names the shadow copy */
  int capped;               /* a flush of it failed: dur never passes cap again */
  uint64_t cap;             /* its durable length when the first flush failed */
} pcut_file;

/* A copy of the journal at a crash point (taken while held or frozen). */
typedef struct pcut_snap {
  pcut_ns durable;
  int nops;
  pcut_op ops[PCUT_MAX_OPS];
  pcut_file files[PCUT_MAX_FILES];
  uint64_t cur[PCUT_MAX_FILES]; /* each file's length at the snapshot */
  char dir[256];
  char shadow[256];
} pcut_snap;

/* Maps the shared journal (once, before any store is opened). */
void pcut_init(void);
/* Starts journaling directory `dir` (an absolute path without symlinks, existing): its current
 * files count as durable. Resets events, holds, gates and failures (off). */
void pcut_watch(const char *dir);
/* Stops journaling and removes the shadow copies. */
void pcut_unwatch(void);

/* Events so far, and per kind (k in 1..PCUT_NKINDS-1). */
uint64_t pcut_events(void);
uint64_t pcut_events_of(int kind);

/* Holds the caller of event n (-1: none) before its call runs. */
void pcut_hold_at(int64_t n);
/* Waits until the hold is reached (returns 1), or pcut_done_set(1) was called (0), or bound_s
 * passed (-1). */
int pcut_hold_wait(int bound_s);
/* Lets the held caller go on (and lifts the freeze a hold implies). */
void pcut_hold_release(void);
/* The scenario's end, for pcut_hold_wait. */
void pcut_done_set(int v);

/* Each file flush first sleeps up to max_us (0: off): a slower disk, so more bytes are in flight
 * at a crash. */
void pcut_jitter(uint32_t max_us);

/* Stops new events (callers wait), and lets them go. */
void pcut_freeze(void);
void pcut_thaw(void);

/* Gate `slot` (0 or 1) stops the first event of `kind` whose entry name contains `name_sub` (""
 * for any; a file flush's name is its current name) until opened: before a hold on that same
 * event (PCUT_GATE_BEFORE_HOLD), after it (PCUT_GATE_AFTER_HOLD: a crash point there sees the
 * state before the gate's waiting is over), or once the call is done (PCUT_GATE_AFTER_CALL:
 * directory operations and flushes; the caller has not returned yet). */
enum { PCUT_GATE_BEFORE_HOLD = 0, PCUT_GATE_AFTER_HOLD = 1, PCUT_GATE_AFTER_CALL = 2 };
void pcut_gate_arm(int slot, int kind, const char *name_sub, int when);
/* Waits until a caller waits at the gate; false after bound_s. */
bool pcut_gate_wait(int slot, int bound_s);
void pcut_gate_open(int slot);

/* From now on, each journaled call of a kind in `kinds` (a mask of PCUT_KIND(kind)) fails with
 * errno `err` (e.g. EIO) with probability 1/one_in_n (1: every call; 0: none, failures off for
 * those kinds), decided after any gate and hold, as the call would start. Other kinds keep their
 * rate. See the top of this file for what a failed call leaves. */
#define PCUT_KIND(k) (1u << (k))
void pcut_fail_rate(uint32_t kinds, uint32_t one_in_n, int err);
/* Holds (as pcut_hold_at) the caller of the event `ahead` events after the next failed call of
 * a kind in `kinds` (0: the next event after it; kinds 0 disarms): a crash just after the disk
 * failed, while the writer handles it. */
void pcut_hold_after_failure(uint32_t kinds, int64_t ahead);
/* Calls of `kind` made to fail since pcut_watch. */
uint64_t pcut_failures_of(int kind);

/* A disk that lies about flushes (a volatile write cache that ignores flush requests, a virtual
 * disk configured to skip them): from now on each file flush (PCUT_FSYNC) or directory fsync
 * (PCUT_DSYNC), as `kinds` names, that does not fail lies with probability 1/one_in_n (0: never):
 * it returns 0 and makes nothing durable (the durable length stays; the directory operations stay
 * pending, so a crash may keep any prefix of them). A later honest flush makes everything up to
 * it durable, as a cache that is written back eventually does. Drawn from the shared generator. */
void pcut_lie_rate(uint32_t kinds, uint32_t one_in_n);
/* Flushes of `kind` that lied since pcut_watch. */
uint64_t pcut_lies_of(int kind);

/* Copies the journal (held or frozen only). */
void pcut_snapshot(pcut_snap *out);
/* The namespaces a crash can leave: the durable one plus each prefix of the pending operations
 * (first, *nprefix of them; nprefix may be NULL), then with `subsets` each other subset applied in
 * order (a file system that does not commit directory operations in order), an operation on a
 * missing entry skipped; duplicates removed. Returns the count (at most max; subsets only for at
 * most 8 pending operations). */
int pcut_variants(const pcut_snap *s, bool subsets, pcut_ns *out, int max, int *nprefix);
/* The lengths file `fid` can have after the crash: [lo, hi]. */
void pcut_file_range(const pcut_snap *s, int fid, uint64_t *lo, uint64_t *hi);
/* Writes the crash state into the empty directory `out`: entry i of ns with len[i] bytes. */
void pcut_build(const pcut_snap *s, const pcut_ns *ns, const uint64_t *len, const char *out);

/* Damage a crash can do to the bytes of a file past its durable length, on file systems that
 * commit a file's new size before its new blocks (ext4 with data=writeback, XFS) or that tear a
 * multi-sector write. The unit is a 512-byte sector, written whole or not at all; a sector that
 * was not written reads back as zeros (blocks allocated for the file and never written) or as
 * stale bytes (a block freed by another file; here random bytes). The sector that holds the
 * durable end can only read back as its old self: the durable bytes, then zeros.
 *   PCUT_DMG_ZERO  every byte past the durable length reads zero (the size reached the disk and
 *                  none of the data did);
 *   PCUT_DMG_HOLE  one sector past the durable length is stale, the bytes after it arrived (a
 *                  write torn in the middle: later records intact behind a hole);
 *   PCUT_DMG_MIX   each sector past the durable length independently arrived, reads zero or is
 *                  stale, at least one of them not arrived. */
enum { PCUT_DMG_ZERO = 0, PCUT_DMG_HOLE, PCUT_DMG_MIX, PCUT_NDMG };
#define PCUT_SECTOR 512
/* Rewrites entry i of a state that pcut_build wrote into `out` (with len bytes) with damage `how`
 * past the file's durable length, never below it. Returns the sectors damaged: 0 when the file
 * has no byte past its durable length, or was truncated since its last flush (its bytes past the
 * durable length are then old durable bytes, which a crash does not damage). */
int pcut_damage(const pcut_snap *s, const pcut_ns *ns, int i, uint64_t len, const char *out,
                int how, rng *r);

#endif /* IB_PCUT_FS_H */
