/* lstep.h: the data-parallel IBRL update of the MPI learner group: every rank computes the
 * gradients of its share of the global batch with the single-process agent code (ib_agent),
 * the gradient arena of each network is averaged with one allreduce, and every rank applies
 * the same Adam step and target EMA, so all replicas stay bit-identical.
 *
 * Random streams (agent.h "Randomness"). The agent is built with cfg.rank = 0 on every rank, so
 * every stream starts identical; lstep_streams_split then reseeds the streams whose draws are
 * PER ROW (one draw per batch element) from the rank:
 *   per rank  "dropout" (masks), "target_noise" (smoothing noise), "select" (soft bootstrap
 *             choice per row), "sac" (reparameterisation noise), "act_noise" (unused here):
 *             rank r's rows are different rows, so they need independent draws, exactly as the
 *             rows of one large single-process batch do;
 *   shared    "heads" (the random n_min-subset of critic heads, ONE draw per update shared by the
 *             whole batch, reference 3.2) and "init": every rank must use the same subset, or
 *             the averaged gradient would mix different targets and no longer equal the
 *             gradient of the global batch.
 * Weight identity itself does not depend on any of this (after the allreduce every rank applies
 * the same averaged gradient); the split is what makes N ranks x B/N rows equal one rank x B
 * rows. Rank 0 keeps the single-process streams, so with the per-row randomness switched off
 * (dropout 0, noise 0, greedy selection) a 2 x 128 update equals a 1 x 256 update up to float
 * summation order (tests/mpi/test_lstep.c).
 *
 * Consensus. Every update starts with one tiny allreduce of control flags, so all ranks take
 * the same branch: a rank that wants to stop (a signal, a deadline), a rank without a batch
 * (sampling failed), or a rank whose loss or gradient is not finite makes every rank skip the
 * update together; nobody is left waiting in a collective.
 *
 * Errors: IB_ENONFINITE (some rank's loss or gradient was not finite; the message names the
 * lowest such rank; nothing applied anywhere), IB_EUNAVAIL (some rank had no batch), MPI
 * failures as IB_EIO (dist.h). Collective: every rank calls the same functions in the same
 * order. One thread. No allocation. */
#ifndef IB_LSTEP_H
#define IB_LSTEP_H

#include <stdint.h>

#include "agent.h"

/* Reseeds the per-row streams of `a` from (seed, "agent", rank, name); see the top. With
 * rank 0 this is a no-op relative to agent_init with cfg.rank = 0. */
void lstep_streams_split(agent *a, uint64_t seed, int rank);

/* Control flags in, consensus out. */
typedef struct lstep_ctl {
  int stop;      /* in: this rank wants to stop; out: 1 if any rank does */
  int no_batch;  /* in: this rank has no batch for this update; out: 1 if any rank has none */
} lstep_ctl;

/* One critic update: grads on this rank's rows `b` (may be NULL when ctl->no_batch or ctl->stop), consensus,
 * allreduce-mean of the critic gradient arena, Adam + critic-target EMA. Returns IB_OK
 * (applied), 1 (stopped by consensus: ctl->stop or ctl->no_batch set, nothing applied), or an
 * error (see the top; nothing applied). */
int lstep_critic(agent *a, const agent_batch *b, lstep_ctl *ctl);

/* One actor update on this rank's rows `b` (and `demo` for RFT): grads, consensus,
 * allreduce-mean of the actor arena (and the SAC temperature arena), Adam + actor-target EMA.
 * Returns as lstep_critic. */
int lstep_actor(agent *a, const agent_batch *b, const agent_batch *demo, lstep_ctl *ctl);

/* Rank 0's parameters of every network (actor, actor target, critic, critic target,
 * temperature, IL) are broadcast to all ranks. Adam state is not touched (all ranks start it
 * at zero, or load it from the same checkpoint). */
int lstep_params_bcast(agent *a);

/* CRC-32 over the parameters of every network of `a`, in a fixed order (actor, actor target,
 * critic, critic target, temperature, IL). */
uint32_t lstep_params_crc(agent *a);

/* Compares lstep_params_crc across ranks: IB_OK, or IB_EMISMATCH naming the first rank that
 * differs (dist.h). *crc (may be NULL) gets this rank's value. Collective. */
int lstep_params_check(agent *a, uint32_t *crc);

#endif /* IB_LSTEP_H */
