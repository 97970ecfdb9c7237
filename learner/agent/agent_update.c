/* agent_update.c: the IBRL bootstrap target, the critic and actor updates (TD3 / SAC), the RFT
 * actor term and BC pretraining of the RL actor.
 *
 * Design (shared/docs/ibrl-reference.md 3.2, 4, 10.2). Every update is "grads" then "apply":
 * grads zeroes the arena, runs the forward/backward and checks the loss and the gradient norm
 * for finiteness; apply runs Adam and the Polyak EMA of the matching target. Between them the
 * MPI learner may allreduce the gradient arena; the single-process path calls both.
 *
 * Arithmetic of one critic update (per row; n rows):
 *   target: actor_target (TD3) or actor (SAC) forward on s'; IL forward on s' (if the bootstrap
 *   proposal is on); the n_min heads of subset P1 on the 2n candidate rows; the heads of P2 that
 *   are NOT in P1 on the n chosen rows only (heads shared with P1 already scored both
 *   candidates, so their value of the chosen one is read back, not recomputed); then the E
 *   online heads forward and backward (dW, and dX for all but the first layer).
 * With boot_fresh_pair 0 (P2 = P1) this is exactly the arithmetic of the PyTorch bench's
 * "brief" mode.
 *
 * The clamp after the noise is straight-through in the actor loss (as the reference's
 * TruncatedNormal): dL/d(actor output) = dL/d(noisy action). */
#include <math.h>
#include <string.h>

#include "agent_impl.h"
#include "ib.h"

/* ---- helpers ---- */

/* Copies n floats x -> y. */
static void fcopy(float *y, const float *x, size_t n) { memcpy(y, x, n * sizeof(float)); }

static int in_set(const int *set, int k, int e) {
  for (int j = 0; j < k; j++)
    if (set[j] == e) return j;
  return -1;
}

/* RL candidate on s' into w->a_rl (and w->logp for SAC). */
static void boot_rl_candidate(agent *a, const float *s2, int n) {
  const agent_config *c = &a->cfg;
  struct agent_ws *w = a->ws;
  const int A = c->act_dim;
  if (c->backbone == AGENT_TD3) {
    /* The target actor runs in TRAIN mode: dropout on (reference 3.2). */
    const float *mu = nn_mlp_forward(&a->actor_target, NULL, s2, n, 1, &a->r_dropout);
    agent__noisy(w->a_rl, mu, (size_t)n * A, c->target_noise, c->noise_clip, &a->r_target_noise);
  } else {
    const float *h = nn_mlp_forward(&a->actor, NULL, s2, n, c->actor_dropout > 0.0f, &a->r_dropout);
    nn_sac_noise(w->eps, (size_t)n * A, &a->r_sac);
    nn_sac_forward(w->a_rl, w->logp, h, w->eps, n, A);
  }
}

void agent_target_compute(agent *a, float *y, const agent_batch *b) {
  IB_CHECK(a && y && b && b->next_obs && b->reward && b->discount);
  IB_CHECK(!a->cfg.acting_only && a->critic.params);
  const agent_config *c = &a->cfg;
  struct agent_ws *w = a->ws;
  const int n = b->n, O = c->obs_dim, A = c->act_dim, X = O + A, k = c->n_min;
  IB_CHECK(n >= 1 && n <= c->max_batch);
  const int use_il = c->method == AGENT_IBRL && c->boot_proposal;
  IB_CHECK(!use_il || a->has_il);
  const int sac = c->backbone == AGENT_SAC;
  const float alpha = sac ? expf(a->log_alpha[0]) : 0.0f;
  const int ent = sac && c->sac_backup_entropy;

  boot_rl_candidate(a, b->next_obs, n);
  agent__rows(w->xin, b->next_obs, w->a_rl, n, O, A);
  int rows = n;
  if (use_il) {
    il_predict(&a->il, w->a_il, b->next_obs, n);
    agent__rows(w->xin + (size_t)n * X, b->next_obs, w->a_il, n, O, A);
    rows = 2 * n;
  }
  /* Selection subset P1: scores both candidates in one forward of k target heads. */
  rng_choose(&a->r_heads, c->n_critics, k, w->heads_sel);
  nn_ens_forward(&a->critic_target, w->q, w->xin, rows, w->heads_sel, k, 0, NULL);
  nn_ens_min_forward(w->qmin, w->argmin, w->q, rows, k);
  for (int i = 0; i < n; i++) {
    w->v_rl[i] = w->qmin[i] - (ent ? alpha * w->logp[i] : 0.0f);
    w->v_il[i] = use_il ? w->qmin[n + i] : -INFINITY;
  }
  if (use_il)
    ibrl_select(w->pick, w->v_rl, w->v_il, n, c->boot_select, c->beta, &a->r_select);
  else
    memset(w->pick, 0, (size_t)n);

  /* Evaluation subset P2. */
  if (c->boot_fresh_pair)
    rng_choose(&a->r_heads, c->n_critics, k, w->heads_eval);
  else
    memcpy(w->heads_eval, w->heads_sel, sizeof(int) * (size_t)k);
  int extra[NN_MAX_HEADS], n_extra = 0;
  for (int j = 0; j < k; j++)
    if (in_set(w->heads_sel, k, w->heads_eval[j]) < 0) extra[n_extra++] = w->heads_eval[j];
  if (n_extra > 0) {
    /* Only the chosen candidate's rows: [s' | a*]. Reuse the RL rows in place for rows that
     * picked RL; rows that picked IL are copied from the IL block. The buffer is free now. */
    if (use_il)
      for (int i = 0; i < n; i++)
        if (w->pick[i])
          memcpy(w->xin + (size_t)i * X + O, w->a_il + (size_t)i * A, (size_t)A * sizeof(float));
    nn_ens_forward(&a->critic_target, w->q2, w->xin, n, extra, n_extra, 0, NULL);
  }
  double ysum = 0.0;
  long il_wins = 0;
  for (int i = 0; i < n; i++) {
    const int row = w->pick[i] ? n + i : i;
    float v = INFINITY;
    for (int j = 0; j < k; j++) {
      int e = w->heads_eval[j];
      int js = in_set(w->heads_sel, k, e);
      float qv = js >= 0 ? w->q[(size_t)row * k + js] : w->q2[(size_t)i * n_extra + in_set(extra, n_extra, e)];
      v = qv < v ? qv : v;
    }
    if (ent && !w->pick[i]) v -= alpha * w->logp[i]; /* entropy term: RL candidate only */
    y[i] = b->reward[i] + b->discount[i] * v;
    ysum += y[i];
    il_wins += w->pick[i];
  }
  if (y != w->y) fcopy(w->y, y, (size_t)n);
  if (use_il) { /* the IL-win ratio counts only rows where the IL candidate competed */
    a->metrics.boot_il += il_wins;
    a->metrics.boot_total += n;
  }
  a->metrics.target_mean = ysum / n;
  w->last_n = n;
  w->last_il = use_il;
  w->last_logp = sac;
}

agent_target_view agent_target_last(const agent *a) {
  IB_CHECK(a && a->ws);
  const struct agent_ws *w = a->ws;
  agent_target_view v;
  memset(&v, 0, sizeof v);
  v.a_rl = w->a_rl;
  v.a_il = w->last_il ? w->a_il : NULL;
  v.v_rl = w->v_rl;
  v.v_il = w->v_il;
  v.logp = w->last_logp ? w->logp : NULL;
  v.pick_il = w->pick;
  v.y = w->y;
  v.n_min = a->cfg.n_min;
  memcpy(v.heads_select, w->heads_sel, sizeof v.heads_select);
  memcpy(v.heads_eval, w->heads_eval, sizeof v.heads_eval);
  v.n = w->last_n;
  return v;
}

/* ---- critic ---- */

int agent_critic_grads(agent *a, const agent_batch *b) {
  IB_CHECK(a && b && b->obs && b->action);
  IB_CHECK(!a->cfg.acting_only);
  const agent_config *c = &a->cfg;
  struct agent_ws *w = a->ws;
  const int n = b->n, O = c->obs_dim, A = c->act_dim, E = c->n_critics;
  IB_CHECK(n >= 1 && n <= c->max_batch);
  agent_target_compute(a, w->y, b);

  agent__rows(w->xin, b->obs, b->action, n, O, A);
  nn_ens_forward(&a->critic, w->q, w->xin, n, NULL, E, 1, &a->r_dropout);
  /* L = mean_b sum_k (Q_k - y)^2  =>  dL/dQ_k = 2 (Q_k - y) / n. */
  double loss = 0.0, qsum = 0.0;
  const float scale = 2.0f / (float)n;
  for (int i = 0; i < n; i++)
    for (int e = 0; e < E; e++) {
      float d = w->q[(size_t)i * E + e] - w->y[i];
      loss += (double)d * d;
      qsum += w->q[(size_t)i * E + e];
      w->dq[(size_t)i * E + e] = scale * d;
    }
  loss /= n;
  a->metrics.critic_loss = loss;
  a->metrics.q_mean = qsum / ((double)n * E);
  if (!isfinite(loss))
    return ib_fail(IB_ENONFINITE, "agent critic: loss is %g after %ld critic updates (HINT: check the "
                   "batch rewards/discounts for NaN, or lower lr_critic)", loss, a->metrics.critic_updates);
  /* Every head is in this backward, so it overwrites the whole grad arena: no zero-grad pass. */
  nn_ens_backward(&a->critic, NULL, w->dq, NN_GRADS_SET);
  double gn = agent__norm(a->critic.grads, a->critic.n_params);
  a->metrics.critic_grad_norm = gn;
  if (!isfinite(gn))
    return ib_fail(IB_ENONFINITE, "agent critic: gradient norm is %g after %ld critic updates "
                   "(HINT: lower lr_critic)", gn, a->metrics.critic_updates);
  return IB_OK;
}

void agent_critic_apply(agent *a) {
  IB_CHECK(a && !a->cfg.acting_only);
  nn_adam_cfg ac = nn_adam_defaults(a->cfg.lr_critic);
  nn_ens_adam_step(&a->critic, &ac);
  nn_ens_polyak(&a->critic_target, &a->critic, a->cfg.tau);
  a->metrics.critic_updates++;
}

int agent_critic_update(agent *a, const agent_batch *b) {
  int rc = agent_critic_grads(a, b);
  if (rc != IB_OK) return rc;
  agent_critic_apply(a);
  return IB_OK;
}

/* ---- actor ---- */

/* dq (n,E) for the reduction of Q over heads used by the actor loss -mean_b red_k Q_k, and
 * returns mean_b red_k Q_k. */
static double actor_q_reduce(agent *a, int n, float weight) {
  struct agent_ws *w = a->ws;
  const int E = a->cfg.n_critics;
  double s = 0.0;
  memset(w->dq, 0, sizeof(float) * (size_t)n * E);
  if (a->cfg.actor_q_mean) {
    const float g = -weight / ((float)n * E);
    for (int i = 0; i < n; i++)
      for (int e = 0; e < E; e++) {
        s += w->q[(size_t)i * E + e];
        w->dq[(size_t)i * E + e] = g;
      }
    return s / ((double)n * E);
  }
  nn_ens_min_forward(w->qmin, w->argmin, w->q, n, E);
  for (int i = 0; i < n; i++) {
    s += w->qmin[i];
    w->dqmin[i] = -weight / (float)n;
  }
  nn_ens_min_backward(w->dq, w->dqmin, w->argmin, n, E);
  return s / n;
}

/* The deterministic action of the actor for obs (n rows) into out: TD3 its tanh output, SAC
 * tanh(mean). train selects dropout. Returns the raw net output (valid until the next forward). */
static const float *actor_mean(agent *a, float *out, const float *obs, int n, int train) {
  const int A = a->cfg.act_dim;
  const float *h = nn_mlp_forward(&a->actor, NULL, obs, n, train, train ? &a->r_dropout : NULL);
  if (a->cfg.backbone == AGENT_SAC) nn_sac_mean(out, h, n, A);
  else memcpy(out, h, sizeof(float) * (size_t)n * A);
  return h;
}

/* BC MSE mean_b sum_j (mean action - act)^2 of the LAST actor forward, whose deterministic action
 * is in `out`; accumulates weight * its gradient into the actor grads (skipped when weight is 0).
 * For SAC the gradient reaches the mean half of the head through tanh; log_std gets none. */
static double actor_bc_backward(agent *a, const float *out, const float *act, int n, float weight) {
  struct agent_ws *w = a->ws;
  const int A = a->cfg.act_dim, sac = a->cfg.backbone == AGENT_SAC;
  double mse = 0.0;
  const float g = weight * 2.0f / (float)n;
  if (sac) memset(w->dh, 0, sizeof(float) * (size_t)n * 2 * A);
  for (int b = 0; b < n; b++)
    for (int j = 0; j < A; j++) {
      size_t i = (size_t)b * A + j;
      float e = out[i] - act[i];
      mse += (double)e * e;
      if (sac) w->dh[(size_t)b * 2 * A + j] = g * e * (1.0f - out[i] * out[i]);
      else w->da[i] = g * e;
    }
  if (g != 0.0f) nn_mlp_backward(&a->actor, NULL, sac ? w->dh : w->da, 1);
  return mse / n;
}

/* RFT: Q-filtered BC term on the demo batch, accumulated into the actor grads. */
static double rft_term(agent *a, const agent_batch *d) {
  const agent_config *c = &a->cfg;
  struct agent_ws *w = a->ws;
  const int n = d->n, O = c->obs_dim, A = c->act_dim, X = O + A, k = c->n_min;
  IB_CHECK(n >= 1 && n <= c->max_batch);
  /* ratio: Q(s, a_demo) > Q(s, pi(s)) under the online critic, min over a random subset, with
   * pi's deterministic action (eval mode). */
  actor_mean(a, w->a_pi, d->obs, n, 0);
  agent__rows(w->xin, d->obs, d->action, n, O, A);
  agent__rows(w->xin + (size_t)n * X, d->obs, w->a_pi, n, O, A);
  int heads[NN_MAX_HEADS];
  rng_choose(&a->r_heads, c->n_critics, k, heads);
  nn_ens_forward(&a->critic, w->q, w->xin, 2 * n, heads, k, 0, NULL);
  nn_ens_min_forward(w->qmin, w->argmin, w->q, 2 * n, k);
  int better = 0;
  for (int i = 0; i < n; i++) better += w->qmin[i] > w->qmin[n + i];
  const float ratio = (float)better / (float)n;
  /* BC MSE with the actor in train mode (its dropout; 0 in the RFT configs). */
  actor_mean(a, w->a_pi, d->obs, n, 1);
  double mse = actor_bc_backward(a, w->a_pi, d->action, n, c->rft_bc_weight * ratio);
  a->metrics.rft_ratio = ratio;
  a->metrics.rft_bc_loss = mse;
  return (double)c->rft_bc_weight * ratio * mse;
}

int agent_actor_grads(agent *a, const agent_batch *b, const agent_batch *demo) {
  IB_CHECK(a && b && b->obs);
  IB_CHECK(!a->cfg.acting_only);
  const agent_config *c = &a->cfg;
  struct agent_ws *w = a->ws;
  const int n = b->n, O = c->obs_dim, A = c->act_dim, X = O + A, E = c->n_critics;
  IB_CHECK(n >= 1 && n <= c->max_batch);
  if (c->method == AGENT_RFT && (!demo || !demo->obs || !demo->action))
    return ib_fail(IB_EINVAL, "agent actor: RFT needs a demo batch (HINT: sample one from the demo table)");
  nn_mlp_zero_grad(&a->actor);
  double loss = 0.0;
  if (c->method == AGENT_RFT) loss += rft_term(a, demo);

  if (c->backbone == AGENT_TD3) {
    const float *mu = nn_mlp_forward(&a->actor, NULL, b->obs, n, 1, &a->r_dropout);
    agent__noisy(w->a_pi, mu, (size_t)n * A, c->target_noise, c->noise_clip, &a->r_target_noise);
    agent__rows(w->xin, b->obs, w->a_pi, n, O, A);
    nn_ens_forward(&a->critic, w->q, w->xin, n, NULL, E, 0, NULL);
    double qv = actor_q_reduce(a, n, 1.0f);
    loss += -qv;
    memset(w->dxin, 0, sizeof(float) * (size_t)n * X);
    nn_ens_backward(&a->critic, w->dxin, w->dq, 0); /* dQ/da only: the critic is frozen here */
    for (int i = 0; i < n; i++) fcopy(w->da + (size_t)i * A, w->dxin + (size_t)i * X + O, (size_t)A);
    nn_mlp_backward(&a->actor, NULL, w->da, 1); /* straight-through clamp */
  } else {
    const float alpha = expf(a->log_alpha[0]);
    const float *h = nn_mlp_forward(&a->actor, NULL, b->obs, n, c->actor_dropout > 0.0f, &a->r_dropout);
    fcopy(w->h, h, (size_t)n * 2 * A);
    nn_sac_noise(w->eps, (size_t)n * A, &a->r_sac);
    nn_sac_forward(w->a_pi, w->logp, w->h, w->eps, n, A);
    agent__rows(w->xin, b->obs, w->a_pi, n, O, A);
    nn_ens_forward(&a->critic, w->q, w->xin, n, NULL, E, 0, NULL);
    double qv = actor_q_reduce(a, n, 1.0f);
    double lp = 0.0;
    for (int i = 0; i < n; i++) {
      lp += w->logp[i];
      w->dqmin[i] = alpha / (float)n; /* dL/dlogp, reusing dqmin as scratch */
    }
    lp /= n;
    loss += alpha * lp - qv;
    memset(w->dxin, 0, sizeof(float) * (size_t)n * X);
    nn_ens_backward(&a->critic, w->dxin, w->dq, 0);
    for (int i = 0; i < n; i++) fcopy(w->da + (size_t)i * A, w->dxin + (size_t)i * X + O, (size_t)A);
    memset(w->dh, 0, sizeof(float) * (size_t)n * 2 * A);
    nn_sac_backward(w->dh, w->da, w->dqmin, w->h, w->eps, n, A);
    nn_mlp_backward(&a->actor, NULL, w->dh, 1);
    /* Temperature: L(log a) = a * (-logp - H) (mean), so dL/dlog a = a * (-mean logp - H). */
    a->dlog_alpha[0] = alpha * (float)(-lp - c->target_entropy);
    a->metrics.entropy = -lp;
  }
  a->metrics.actor_loss = loss;
  if (!isfinite(loss))
    return ib_fail(IB_ENONFINITE, "agent actor: loss is %g after %ld actor updates (HINT: the critic "
                   "may have diverged; check critic_loss)", loss, a->metrics.actor_updates);
  double gn = agent__norm(a->actor.grads, a->actor.n_params);
  a->metrics.actor_grad_norm = gn;
  if (!isfinite(gn) || !isfinite(a->dlog_alpha[0]))
    return ib_fail(IB_ENONFINITE, "agent actor: gradient norm is %g after %ld actor updates "
                   "(HINT: lower lr_actor)", gn, a->metrics.actor_updates);
  return IB_OK;
}

void agent_actor_apply(agent *a) {
  IB_CHECK(a && !a->cfg.acting_only);
  const agent_config *c = &a->cfg;
  nn_adam_cfg ac = nn_adam_defaults(c->lr_actor);
  nn_mlp_adam_step(&a->actor, &ac);
  if (c->backbone == AGENT_TD3) {
    nn_mlp_polyak(&a->actor_target, &a->actor, c->tau);
  } else {
    nn_adam_cfg tc = nn_adam_defaults(c->lr_temperature);
    a->alpha_t++;
    nn_adam_update(a->log_alpha, a->alpha_m, a->alpha_v, a->dlog_alpha, 1, &tc, a->alpha_t);
    a->metrics.alpha = expf(a->log_alpha[0]);
  }
  a->metrics.actor_updates++;
}

int agent_actor_update(agent *a, const agent_batch *b, const agent_batch *demo) {
  int rc = agent_actor_grads(a, b, demo);
  if (rc != IB_OK) return rc;
  agent_actor_apply(a);
  return IB_OK;
}

int agent_learn_step(agent *a, const agent_batch *batches, int G, const agent_batch *demo) {
  IB_CHECK(a && batches && G >= 1);
  for (int g = 0; g < G; g++) {
    int rc = agent_critic_update(a, &batches[g]);
    if (rc != IB_OK) return rc;
  }
  return agent_actor_update(a, &batches[G - 1], demo);
}

/* ---- RFT pretraining ---- */

int agent_actor_bc_step(agent *a, const float *obs, const float *act, int B) {
  IB_CHECK(a && obs && act && !a->cfg.acting_only);
  IB_CHECK(B >= 1 && B <= a->cfg.max_batch);
  struct agent_ws *w = a->ws;
  nn_mlp_zero_grad(&a->actor);
  actor_mean(a, w->a_pi, obs, B, 1);
  /* The loss is known before the backward; a non-finite one must not reach the grads. */
  double mse = 0.0;
  for (size_t i = 0; i < (size_t)B * a->cfg.act_dim; i++) {
    float e = w->a_pi[i] - act[i];
    mse += (double)e * e;
  }
  a->metrics.pretrain_loss = mse / B;
  if (!isfinite(mse))
    return ib_fail(IB_ENONFINITE, "agent: actor BC loss is %g (HINT: check the demo actions for NaN)", mse / B);
  actor_bc_backward(a, w->a_pi, act, B, 1.0f);
  nn_adam_cfg ac = nn_adam_defaults(a->cfg.lr_actor);
  nn_mlp_adam_step(&a->actor, &ac);
  return IB_OK;
}

void agent_actor_sync(agent *a) {
  IB_CHECK(a);
  if (a->actor_target.params) nn_mlp_copy_params(&a->actor_target, &a->actor);
}
