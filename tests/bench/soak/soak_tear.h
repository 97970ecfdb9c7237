/* soak_tear.h: `ibrl-bench soak --crash-tear`: turns a killed shard's directory into a state a
 * machine crash could have left. A crash, unlike a kill -9, may lose what was written but not yet
 * fsynced, and may leave the record being written half on disk. The write-ahead log promises that an
 * acknowledged insert was fdatasynced first, so a crash may lose or tear only bytes no client was
 * told are stored. This module parses the newest log of the directory (store.wal.<epoch>, format in
 * replay/store/persist.c's opening comment), finds the shortest prefix that holds every row the
 * writers were told is acknowledged, and cuts the file at a random point between that prefix and its
 * end, sometimes writing garbage over the bytes after the cut (a torn sector) instead of removing
 * them. Older logs are left alone (since the checkpoint's cut stopped flushing, an older log's tail
 * can be lost too: tests/store/test_persist_cut.c covers that case in process).
 * Shapes: acked is [n_actors] (actor a < n_actors has seqs [0, acked[a]) acknowledged); the demo
 * actor's seqs [0, demo_rows) are all acknowledged. Ownership: everything is borrowed for the call.
 * Errors: IB_OK, or a negative IB_E* with a message naming the file and a HINT (no log, a damaged
 * header, a record that does not parse, an I/O error); the file is then left as it was. Thread-safety:
 * none needed; the caller runs it on a directory no process has open (the shard is dead and reaped). */
#ifndef IB_SOAK_TEAR_H
#define IB_SOAK_TEAR_H

#include <limits.h>
#include <stdint.h>

#include "rng.h"

/* Who is acknowledged, for one shard's log. */
typedef struct soak_tear_acked {
  const uint64_t *acked; /* borrowed [n_actors]: writer actor a has seqs [0, acked[a]) acknowledged */
  const uint64_t *maybe; /* borrowed [n_actors]: seqs [0, maybe[a]) may be acknowledged (>= acked[a]) */
  int n_actors;          /* writer actor ids are 0..n_actors-1 (the ones of other shards are simply absent) */
  uint32_t demo_actor;   /* the shard's demo preloader id: its seqs [0, demo_rows) are acknowledged */
  uint64_t demo_rows;
} soak_tear_acked;

/* What one tear did. */
typedef struct soak_tear {
  char path[PATH_MAX];   /* the log torn (the newest of the directory) */
  uint64_t len;          /* its bytes before the tear */
  uint64_t records;      /* whole records in it before the tear */
  uint64_t rows;         /* rows in those records */
  uint64_t need;         /* the shortest prefix holding every acknowledged row in it (>= the 44-byte header) */
  uint64_t cut;          /* where it was cut, in [need, len] */
  uint64_t garbage;      /* bytes of garbage written from the cut on (0: the tail was removed) */
  int garbage_zero;      /* the garbage is zeros (a sector never written) rather than random bytes */
  uint64_t rows_cut;     /* rows in records past valid_end (lost with the tear; none acknowledged) */
  uint64_t len_after;    /* the file's bytes after the tear: cut + garbage */
  uint64_t valid_end;    /* end of the records of the torn file that check out: what a restore keeps */
  uint64_t missing;      /* acknowledged rows of actors present in this log that are not in it: a FAIL */
  int actors_missing;    /* actors with such rows */
} soak_tear;

/* Tears the newest log of `dir` as described above; the cut point and the garbage come from `r`.
 * Returns IB_OK (with *out filled; out->missing > 0 is a finding, printed naming the actors), or
 * IB_ENOTFOUND (no log), IB_EPROTO (a header or record that does not parse), IB_EIO. */
int soak_tear_log(soak_tear *out, const char *dir, const soak_tear_acked *ack, rng *r);

#endif
