/* agent_act.c: acting: the RL proposal, the IL proposal, and the IBRL selection rule.
 *
 * Design (shared/docs/ibrl-reference.md 3.1, 3.3). The RL actor runs in eval mode (dropout off);
 * in EXPLORE mode TD3 adds unclipped N(0, act_noise^2) and SAC samples its tanh-Gaussian; eval
 * modes use the mean. Both candidates are clamped to +-(1 - 1e-6) (the IL output is a tanh, so
 * the clamp only matters for the noisy RL action). The TARGET critic scores [s | a_rl] and
 * [s | a_il] in one forward of a random n_min-subset of its heads, shared by the rows, and the
 * per-row min is the score. All acting draws (noise, the head subset, soft picks) come from the
 * "act_noise" stream, so acting never shifts the learner's streams.
 *
 * Soft selection: P(IL) = softmax(beta * [q_rl, q_il])[1] = 1 / (1 + exp(beta (q_rl - q_il))),
 * computed in that logistic form so a large beta*q never overflows. */
#include <math.h>
#include <string.h>

#include "agent_impl.h"
#include "ib.h"

void ibrl_select(uint8_t *pick_il, const float *q_rl, const float *q_il, int B, agent_select mode,
                 float beta, rng *r) {
  IB_CHECK(pick_il && q_rl && q_il && B >= 0);
  IB_CHECK(mode == AGENT_SELECT_GREEDY || r != NULL);
  for (int b = 0; b < B; b++) {
    if (mode == AGENT_SELECT_GREEDY) {
      pick_il[b] = q_il[b] > q_rl[b]; /* ties keep RL, as torch.argmax returns the first */
    } else {
      double z = (double)beta * ((double)q_rl[b] - (double)q_il[b]);
      double p_il = z >= 0.0 ? exp(-z) / (1.0 + exp(-z)) : 1.0 / (1.0 + exp(z));
      pick_il[b] = rng_uniform_d(r) < p_il;
    }
  }
}

static void clamp_actions(float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = x[i] < -AGENT_ACT_LIMIT ? -AGENT_ACT_LIMIT : x[i] > AGENT_ACT_LIMIT ? AGENT_ACT_LIMIT : x[i];
}

/* RL proposal into out (B, A). */
static void rl_proposal(agent *a, float *out, const float *obs, int B, int explore) {
  const agent_config *c = &a->cfg;
  struct agent_ws *w = a->ws;
  const int A = c->act_dim;
  const float *h = nn_mlp_forward(&a->actor, NULL, obs, B, 0, NULL);
  if (c->backbone == AGENT_TD3) {
    if (explore)
      agent__noisy(out, h, (size_t)B * A, c->act_noise, 0.0f, &a->r_act_noise);
    else {
      memcpy(out, h, sizeof(float) * (size_t)B * A);
      clamp_actions(out, (size_t)B * A);
    }
  } else {
    if (explore) {
      nn_sac_noise(w->eps, (size_t)B * A, &a->r_act_noise);
      nn_sac_forward(out, NULL, h, w->eps, B, A);
    } else {
      nn_sac_mean(out, h, B, A);
    }
    clamp_actions(out, (size_t)B * A);
  }
}

int agent_act(agent *a, float *action, uint8_t *proposer, const float *obs, int B, agent_mode mode) {
  IB_CHECK(a && action && obs && a->ws);
  IB_CHECK(B >= 1 && B <= a->cfg.max_batch);
  IB_CHECK((unsigned)mode <= AGENT_MODE_EVAL_GREEDY);
  const agent_config *c = &a->cfg;
  struct agent_ws *w = a->ws;
  const int O = c->obs_dim, A = c->act_dim, X = O + A, k = c->n_min;
  const int want_il = mode == AGENT_MODE_EVAL_IL || c->method == AGENT_BC;
  if (want_il || (c->method == AGENT_IBRL && c->actor_proposal && mode != AGENT_MODE_EVAL_RL)) {
    if (!a->has_il)
      return ib_fail(IB_ESTATE, "agent act: no IL policy loaded (HINT: call agent_il_set with the "
                     "trained BC/CVAE policy, or use method rlpd/rft)");
  }
  if (want_il) {
    if (!agent__uses_il(a))
      return ib_fail(IB_ESTATE, "agent act: method %s has no IL policy to evaluate",
                     agent_method_name(c->method));
    il_predict(&a->il, action, obs, B);
    if (proposer) memset(proposer, 0, (size_t)B);
    return IB_OK;
  }
  const int explore = mode == AGENT_MODE_EXPLORE;
  const int compete = c->method == AGENT_IBRL && c->actor_proposal && mode != AGENT_MODE_EVAL_RL;
  if (!compete) {
    rl_proposal(a, action, obs, B, explore);
    if (proposer) memset(proposer, 1, (size_t)B);
    return IB_OK;
  }
  rl_proposal(a, w->a_rl, obs, B, explore);
  il_predict(&a->il, w->a_il, obs, B);
  agent__rows(w->xin, obs, w->a_rl, B, O, A);
  agent__rows(w->xin + (size_t)B * X, obs, w->a_il, B, O, A);
  int heads[NN_MAX_HEADS];
  rng_choose(&a->r_act_noise, c->n_critics, k, heads);
  nn_ens_forward(&a->critic_target, w->q, w->xin, 2 * B, heads, k, 0, NULL);
  nn_ens_min_forward(w->qmin, w->argmin, w->q, 2 * B, k);
  agent_select sel = mode == AGENT_MODE_EVAL_GREEDY ? AGENT_SELECT_GREEDY : c->act_select;
  ibrl_select(w->pick, w->qmin, w->qmin + B, B, sel, c->beta, &a->r_act_noise);
  long il = 0;
  for (int b = 0; b < B; b++) {
    const float *src = w->pick[b] ? w->a_il : w->a_rl;
    memcpy(action + (size_t)b * A, src + (size_t)b * A, sizeof(float) * (size_t)A);
    if (proposer) proposer[b] = w->pick[b] ? 0 : 1;
    il += w->pick[b];
  }
  a->metrics.act_il += il;
  a->metrics.act_total += B;
  return IB_OK;
}
