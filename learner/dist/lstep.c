/* lstep.c: the data-parallel update (see lstep.h for the stream split and the consensus).
 *
 * Design. One update on every rank is:
 *   grads (ib_agent, this rank's rows)  ->  control allreduce (3 doubles, MAX)
 *     -> if any rank stops / lacks a batch / is not finite: everyone returns, nothing applied
 *     -> allreduce-mean of each gradient arena (one MPI_Allreduce per network)
 *     -> apply (Adam + target EMA, ib_agent): identical inputs give identical outputs.
 * The loss is a mean over rows, so the mean over ranks of per-rank mean gradients equals the
 * gradient of the global batch when every rank has the same number of rows (the learner
 * enforces batch % ranks == 0).
 * The flags are encoded for MAX: stop and no_batch as 0/1, and a non-finite rank r as
 * (size - r), so the maximum names the lowest such rank. */
#include "lstep.h"

#include <stdio.h>

#include "dist.h"
#include "ib.h"

void lstep_streams_split(agent *a, uint64_t seed, int rank) {
  IB_CHECK(a && rank >= 0);
  rng_seed(&a->r_dropout, seed, "agent", rank, "dropout");
  rng_seed(&a->r_target_noise, seed, "agent", rank, "target_noise");
  rng_seed(&a->r_act_noise, seed, "agent", rank, "act_noise");
  rng_seed(&a->r_select, seed, "agent", rank, "select");
  rng_seed(&a->r_sac, seed, "agent", rank, "sac");
  /* r_heads stays the shared stream seeded by agent_init with cfg.rank = 0. */
}

/* Agrees on whether to go on. Returns IB_OK (go), 1 (stop / no batch), or an error. */
static int consensus(int grads_rc, lstep_ctl *ctl, const char *what) {
  int size = dist_size(), rank = dist_rank();
  double v[3] = {ctl->stop ? 1.0 : 0.0, ctl->no_batch ? 1.0 : 0.0,
                 grads_rc == IB_ENONFINITE ? (double)(size - rank) : 0.0};
  /* Any other grads error is a bug or a config problem already caught at setup; make it
   * visible rather than silently skipping. */
  IB_CHECK(grads_rc == IB_OK || grads_rc == IB_ENONFINITE);
  char local_msg[256];
  snprintf(local_msg, sizeof local_msg, "%s", grads_rc == IB_ENONFINITE ? ib_errmsg() : "");
  int rc = dist_allreduce_max_d(v, 3);
  if (rc != IB_OK) return rc;
  ctl->stop = v[0] > 0.0;
  ctl->no_batch = v[1] > 0.0;
  if (v[2] > 0.0) {
    int bad = size - (int)v[2];
    if (bad == rank)
      return ib_fail(IB_ENONFINITE, "%s update: rank %d: %s", what, rank, local_msg);
    return ib_fail(IB_ENONFINITE, "%s update: rank %d had a non-finite loss or gradient; nothing applied on any rank "
                   "(HINT: see rank %d's log; check the replay data for NaN and lower the learning rate)", what, bad, bad);
  }
  if (ctl->stop || ctl->no_batch) return 1;
  return IB_OK;
}

static int mean_grads(agent *a, agent_net which) {
  agent_arena r = agent_arena_get(a, which);
  if (r.n == 0 || !r.grads) return IB_OK;
  return dist_allreduce_mean(r.grads, r.n);
}

int lstep_critic(agent *a, const agent_batch *b, lstep_ctl *ctl) {
  IB_CHECK(a && ctl);
  IB_CHECK(b != NULL || ctl->no_batch || ctl->stop);
  int g = IB_OK;
  if (!ctl->no_batch && !ctl->stop) g = agent_critic_grads(a, b);
  int rc = consensus(g, ctl, "critic");
  if (rc != IB_OK) return rc;
  rc = mean_grads(a, AGENT_NET_CRITIC);
  if (rc != IB_OK) return rc;
  agent_critic_apply(a);
  return IB_OK;
}

int lstep_actor(agent *a, const agent_batch *b, const agent_batch *demo, lstep_ctl *ctl) {
  IB_CHECK(a && ctl);
  IB_CHECK(b != NULL || ctl->no_batch || ctl->stop);
  int g = IB_OK;
  if (!ctl->no_batch && !ctl->stop) {
    g = agent_actor_grads(a, b, demo);
    /* IB_EINVAL here means RFT without a demo batch: the learner always samples one, so it is
     * a bug if it happens. */
    IB_CHECK(g != IB_EINVAL);
  }
  int rc = consensus(g, ctl, "actor");
  if (rc != IB_OK) return rc;
  rc = mean_grads(a, AGENT_NET_ACTOR);
  if (rc == IB_OK) rc = mean_grads(a, AGENT_NET_TEMPERATURE);
  if (rc != IB_OK) return rc;
  agent_actor_apply(a);
  return IB_OK;
}

static const agent_net all_nets[] = {AGENT_NET_ACTOR, AGENT_NET_ACTOR_TARGET, AGENT_NET_CRITIC,
                                     AGENT_NET_CRITIC_TARGET, AGENT_NET_TEMPERATURE, AGENT_NET_IL};

int lstep_params_bcast(agent *a) {
  IB_CHECK(a);
  for (size_t i = 0; i < IB_ARRAY_LEN(all_nets); i++) {
    agent_arena r = agent_arena_get(a, all_nets[i]);
    if (r.n == 0) continue;
    int rc = dist_bcast_f(r.params, r.n, 0);
    if (rc != IB_OK) return rc;
  }
  return IB_OK;
}

uint32_t lstep_params_crc(agent *a) {
  IB_CHECK(a);
  uint32_t crc = 0;
  for (size_t i = 0; i < IB_ARRAY_LEN(all_nets); i++) {
    agent_arena r = agent_arena_get(a, all_nets[i]);
    if (r.n) crc = ib_crc32(crc, r.params, r.n * sizeof(float));
  }
  return crc;
}

int lstep_params_check(agent *a, uint32_t *crc) {
  uint32_t c = lstep_params_crc(a);
  if (crc) *crc = c;
  return dist_check_same_u32(c, "learner weights (actor, targets, critic, temperature, IL)", NULL);
}
