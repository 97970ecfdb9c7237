/* soak_check.h: the judgements of `ibrl-bench soak`: the memory the configuration predicts, the
 * loss check of one shard against the writers' acknowledgements, and the verdict over the whole
 * timeline (bounded, flat, clean, durable). Pure functions of the records (no I/O but the loss
 * check's messages on stderr), so any thread may call them on data it owns. Shapes: a shard's
 * timeline is pts[0, run->n); acked is [cfg->actors]. Errors: none returned (a failed check is a
 * finding, recorded in the output struct); inputs are borrowed for the call. */
#ifndef IB_SOAK_CHECK_H
#define IB_SOAK_CHECK_H

#include "soak.h"

/* The memory verdict of one shard. */
typedef struct soak_mem {
  double warm_t;           /* the fit window starts here */
  int ring_full_ckpt;      /* 1 if the ring filled and a checkpoint was done before warm_t (restarts: a
                              checkpoint done in the judged incarnation) */
  int n_fit;               /* points in the window */
  double warm_rss, end_rss, peak_hwm;
  double slope, slope_med, spread, spread_bound; /* MB/min (least squares, median), MB */
  double active;                                 /* share of window points with inserts flowing */
  int fds_min, fds_max, thr_min, thr_max;
  double info_max_ms; /* slowest timeline Info call */
  int stalls;         /* timeline Info calls slower than 1 s */
  double max_gap;     /* longest time between two timeline points that no restart separated (s) */
  int gaps;           /* gaps over 3 s: the soak or the shard did not run (a SIGSTOP from outside, a stalled
                         machine, an Info that hung) */
  double gap_s;       /* their total length */
  int bounded, flat;
  int n_inc, judged_inc; /* incarnations; the one judged flat (-1: none ran long enough) */
  int worst_inc;         /* the incarnation with the highest peak */
  uint64_t online_inserted, checkpoints; /* at the last point */
} soak_mem;

typedef struct soak_verdict {
  soak_mem m[SOAK_MAX_SHARDS];
  double predicted_mb; /* per shard */
  int bounded, flat, clean, durable; /* every shard's */
  uint64_t rows_written, rows_sampled, errors, bad_sent, bad_refused, churns, infos;
  uint64_t errors_down, bad_down, samples_down, samples_skipped, lost;
  uint64_t partial_acks, dup_acks; /* the writers' partial acknowledgements and duplicates acknowledged */
  int partial_ok;                  /* --expect-partial: some stream was acknowledged in part (else 1) */
} soak_verdict;

/* The memory the configuration predicts for one table, as `ibrl-replay --help` states it. */
double soak_check_table_bytes(long cap, int obs, int act);

/* The table `name` of an Info answer, or NULL if it has none (borrowed from `in`). */
const rc_table_info *soak_check_table(const rc_shard_info *in, const char *name);

/* The loss check of `shard` from its Info `in` (soak_check.c's design comment): acked[a], for the shard's actors
 * a (a % shards == shard), says actor a has seqs [0, acked[a]) acknowledged. (1) an actor whose top
 * (highest stored seq + 1, 0 if not listed) is below acked[a] lost at least the difference, and a
 * demo table under the preloaded rows lost the rest; (2) inserted > sum(top) is a row counted
 * twice; (3) size != min(capacity, inserted) is a ring that holds the wrong number of rows. With
 * `exact` (nothing in flight, writers closed: the end of the run) also inserted < sum(top): seqs
 * below some top that were never stored, i.e. acknowledged rows lost (a writer resumes at its first
 * unacknowledged seq), whether the ring evicted them since or not. Failures are printed. */
void soak_check_shard(const soak_cfg *c, int shard, const rc_shard_info *in, const uint64_t *acked, int exact,
                      soak_check *k);

/* The points [*i0, *i1) of incarnation `inc` among pts[0, n) (empty if it has none). */
void soak_check_inc_range(const soak_point *pts, int n, int inc, int *i0, int *i1);

/* The peak RSS (VmHWM) of the points [i0, i1). */
double soak_check_peak(const soak_point *pts, int i0, int i1);

/* The verdict of the run: every shard's memory, the call counts of sh, the restarts' and the end's
 * loss checks. Pure: reads its inputs, writes *v. */
void soak_check_judge(const soak_cfg *c, const soak_shared *sh, const soak_run *run, soak_verdict *v);

#endif
