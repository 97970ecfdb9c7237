/* dist.h: thin MPI wrappers for the learner group (ibrl-learner): start/stop MPI, who am I, and
 * the four collectives the data-parallel IBRL update needs over flat float arenas:
 *   - allreduce-mean of a gradient arena in place (one MPI_Allreduce per network per update),
 *   - broadcast of an arena (or any bytes) from a root rank,
 *   - a checksum comparison across ranks that names the first rank whose value differs,
 *   - small reductions of control values (a stop flag, metric sums) so every rank takes the
 *     same decision at the same update.
 * The numerics stay in ib_agent / ib_nn; this module knows nothing about networks or losses.
 *
 * Shapes: arenas are float[n] with 0 <= n; n above INT_MAX is split into several calls (never
 * the case for our arenas, but MPI counts are int).
 *
 * Errors: MPI_COMM_WORLD is switched to MPI_ERRORS_RETURN, so a failing MPI call returns
 * IB_EIO with ib_errmsg() naming the call and MPI's own error string, plus a HINT. A checksum
 * that differs returns IB_EMISMATCH naming the first differing rank. Calling anything before
 * dist_init (or after dist_finalize) is a bug and aborts.
 *
 * Timing: every collective adds its wall time to per-process counters (dist_stats_get), so the
 * learner can report the allreduce cost per update.
 *
 * Thread-safety: MPI is initialised with MPI_THREAD_FUNNELED: call everything from the thread
 * that called dist_init. Collectives must be called by every rank in the same order. */
#ifndef IB_DIST_H
#define IB_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Initialises MPI (argc/argv may be NULL). Returns IB_OK or IB_EIO. Calling it twice is a bug. */
int dist_init(int *argc, char ***argv);
/* Finalises MPI. Safe to call when dist_init failed or was never called. */
void dist_finalize(void);
/* 1 between dist_init and dist_finalize. */
int dist_active(void);

int dist_rank(void);
int dist_size(void);

/* x[0..n) <- mean over ranks of x[0..n), in place: one MPI_Allreduce(SUM) then a scale by
 * 1/size. Every rank gets bit-identical results (the MPI sum is computed once per element
 * position and the scale is the same float multiply everywhere; checked by the tests). */
int dist_allreduce_mean(float *x, size_t n);

/* x[0..n) <- sum (or max) over ranks, doubles, in place (metrics, counters, flags). */
int dist_allreduce_sum_d(double *x, int n);
int dist_allreduce_max_d(double *x, int n);

/* Broadcasts x[0..n) floats / bytes from `root` to every rank. */
int dist_bcast_f(float *x, size_t n, int root);
int dist_bcast_bytes(void *buf, size_t bytes, int root);

/* Gathers every rank's `value` and compares it with rank 0's. Returns IB_OK when all agree,
 * else IB_EMISMATCH with ib_errmsg() "<what>: rank R has 0x.. but rank 0 has 0x.. (HINT: ...)"
 * for the lowest differing rank R; *first_bad (may be NULL) gets R or -1. Collective. */
int dist_check_same_u32(uint32_t value, const char *what, int *first_bad);

/* Rank `root` receives every rank's `bytes` bytes of `mine`, back to back in rank order, in
 * `all` (size x bytes; only read on root, may be NULL elsewhere). Collective. */
int dist_gather_bytes(void *all, const void *mine, size_t bytes, int root);

/* Blocks until every rank arrives. */
int dist_barrier(void);

/* Cumulative wall time and call counts of the collectives of this process. */
typedef struct dist_stats {
  double allreduce_s;   /* dist_allreduce_mean only (the gradient averaging) */
  long allreduce_calls;
  double allreduce_bytes;
  double bcast_s;
  long bcast_calls;
  double other_s;       /* small reductions, checksum gathers, barriers */
} dist_stats;
void dist_stats_get(dist_stats *out);
void dist_stats_reset(void);

#endif /* IB_DIST_H */
