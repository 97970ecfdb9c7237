/* nn_par.h: the thread team of ib_nn (internal to common/nn).
 *
 * Why. OpenBLAS threads only its matrix products; the passes between them (bias, LayerNorm,
 * ReLU, dropout, Adam, Polyak, zero-grad, norms) then run on one core while the others spin in
 * OpenBLAS's idle loop. With 2 cores that left a third of a critic step single-threaded. So ib_nn
 * runs its own team: OpenBLAS is set to one thread, and each team member calls the
 * single-threaded sgemm on its part of the work (rows of a forward, rows of dX, a block of dW)
 * and then runs the elementwise passes on the same part, with no hand-over between cores.
 *
 * Contract. nn_par_run(fn, ctx) calls fn(ctx, tm) once on every member (the caller is member 0)
 * and returns when all have returned; inside fn, nn_par_barrier(tm) waits for all members. One
 * team per process, sized by nn_par_set. A call made while the team is busy (from another thread
 * or from inside fn) runs fn serially in the caller with a one-member team, so objects used from
 * several threads stay correct (nn.h's threading contract). Idle workers spin briefly, then
 * sleep on a condition variable, so a team costs nothing between training steps.
 *
 * A child made by fork() has a one-member team (the workers stay with the parent).
 *
 * Partitions are contiguous and depend only on (n, members), so results for a given team size
 * are reproducible run to run. */
#ifndef IB_NN_PAR_H
#define IB_NN_PAR_H

#include <stddef.h>

#define NN_PAR_MAX 8 /* largest team */

typedef struct nn_team {
  int tid; /* this member, 0..nt-1 (0 is the caller of nn_par_run) */
  int nt;  /* members */
} nn_team;

typedef void (*nn_par_fn)(void *ctx, const nn_team *tm);

/* Team size n (1..NN_PAR_MAX): starts or stops workers. Not thread-safe; call it at start-up. */
void nn_par_set(int n);
/* Current team size (1 before any nn_par_set). */
int nn_par_size(void);
/* Runs fn on every member; see above. */
void nn_par_run(nn_par_fn fn, void *ctx);
/* Waits until every member of tm's team has reached it. A no-op for a one-member team. */
void nn_par_barrier(const nn_team *tm);
/* [*lo, *hi) = member tid's contiguous share of [0, n) out of nt, with interior boundaries on
 * multiples of `align` (>= 1). */
void nn_par_range(size_t *lo, size_t *hi, size_t n, int tid, int nt, size_t align);

#endif /* IB_NN_PAR_H */
