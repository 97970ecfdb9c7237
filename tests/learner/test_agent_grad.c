/* test_agent_grad.c: finite-difference checks of the agent's gradients (style.md 2.5, witness 3).
 *  - TD3 actor loss through the (frozen) LayerNorm critic ensemble: -mean_b min_k Q_k(s,
 *    clamp(pi(s) + clipped noise)), dropout on, for every actor parameter;
 *  - SAC actor loss alpha*logp - min_k Q_k through the tanh-Gaussian head, and the temperature
 *    gradient against a finite difference in log(alpha);
 *  - the critic loss mean_b sum_k (Q_k - y)^2 for every critic parameter (y from the targets).
 * Every random draw (dropout masks, noise, head subsets) is replayed by restoring the agent's
 * rng streams before each evaluation, so the loss is a deterministic function of the weights.
 * Pass: |ga - gn| <= 1e-2 (|ga| + |gn|) or |ga - gn| <= ABS_TOL (float forward, h = 1e-3), with
 * a retry at h/4 for kinks (at most 5% of the elements). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "ib.h"
#include "th.h"

enum { O = 5, A = 3, NB = 6 };
#define ABS_TOL 3e-4
#define H 1e-3f

typedef struct streams {
  rng r[6];
} streams;

static streams save_streams(const agent *a) {
  streams s = {{a->r_dropout, a->r_target_noise, a->r_act_noise, a->r_heads, a->r_select, a->r_sac}};
  return s;
}
static void load_streams(agent *a, const streams *s) {
  a->r_dropout = s->r[0];
  a->r_target_noise = s->r[1];
  a->r_act_noise = s->r[2];
  a->r_heads = s->r[3];
  a->r_select = s->r[4];
  a->r_sac = s->r[5];
}

static agent_config small_cfg(agent_method m, agent_backbone bb) {
  agent_config c = agent_config_default(m, bb);
  c.obs_dim = O;
  c.act_dim = A;
  c.actor_layers = 2;
  c.actor_hidden = 8;
  c.critic_layers = 2;
  c.critic_hidden = 7;
  c.n_critics = 3;
  c.max_batch = NB;
  c.il.n_layers = 1;
  c.il.hidden = 4;
  c.il.max_batch = NB;
  c.seed = 14;
  return c;
}

typedef struct data {
  float obs[NB * O], act[NB * A], rew[NB], disc[NB], next[NB * O];
  agent_batch b;
} data;

static void make_data(data *d) {
  rng r;
  rng_seed(&r, 5, "test", 0, "grad");
  for (int i = 0; i < NB * O; i++) {
    d->obs[i] = 2.0f * rng_uniform(&r) - 1.0f;
    d->next[i] = 2.0f * rng_uniform(&r) - 1.0f;
  }
  for (int i = 0; i < NB * A; i++) d->act[i] = 1.6f * rng_uniform(&r) - 0.8f;
  for (int i = 0; i < NB; i++) {
    d->rew[i] = rng_uniform(&r);
    d->disc[i] = i % 3 ? 0.97f : 0.0f;
  }
  agent_batch b = {d->obs, d->act, d->rew, d->disc, d->next, NB};
  d->b = b;
}

static void set_il(agent *a) {
  il_config ic = a->cfg.il;
  il_policy il;
  TH_CHECK_EQ_INT(il_init(&il, &ic), IB_OK);
  TH_CHECK_EQ_INT(agent_il_set(a, &il), IB_OK);
  il_free(&il);
}

/* Central difference of loss() in p[i] with step h (streams replayed). */
static double fd_at(agent *a, float *p, size_t i, float h, const streams *st,
                    double (*loss)(agent *, const data *), const data *d) {
  float x0 = p[i];
  p[i] = x0 + h;
  load_streams(a, st);
  double lp = loss(a, d);
  p[i] = x0 - h;
  load_streams(a, st);
  double lm = loss(a, d);
  p[i] = x0;
  return (lp - lm) / (2.0 * (double)h);
}

static int fd_ok(double ga, double gn) {
  double diff = fabs(ga - gn);
  return diff <= 1e-2 * (fabs(ga) + fabs(gn)) || diff <= ABS_TOL;
}

/* Compares the analytic gradient g (n) of params p with central differences of loss(). An
 * element that fails at h is retried at h/4: a ReLU, min or clamp kink within h of the point
 * bends one difference but not both, while a wrong gradient fails at every step. Retries are
 * counted and must stay rare. */
static int fd_check(const char *what, agent *a, float *p, const float *g, size_t n, const streams *st,
                    double (*loss)(agent *, const data *), const data *d) {
  int bad = 0, retried = 0;
  double worst = 0.0;
  for (size_t i = 0; i < n; i++) {
    double ga = g[i], gn = fd_at(a, p, i, H, st, loss, d);
    if (!fd_ok(ga, gn)) {
      retried++;
      gn = fd_at(a, p, i, 0.25f * H, st, loss, d);
    }
    if (!fd_ok(ga, gn)) {
      if (bad < 5) printf("  %s param %zu: analytic %.6g numeric %.6g\n", what, i, ga, gn);
      bad++;
    }
    worst = fmax(worst, fabs(ga - gn));
  }
  printf("  %s: %zu params, %d bad, %d retried at h/4, worst |ga-gn| %.2e\n", what, n, bad, retried, worst);
  return bad + (retried > (int)(n / 20) ? 1 : 0);
}

static double actor_loss(agent *a, const data *d) {
  TH_CHECK_EQ_INT(agent_actor_grads(a, &d->b, &d->b), IB_OK);
  return a->metrics.actor_loss;
}

static double critic_loss(agent *a, const data *d) {
  TH_CHECK_EQ_INT(agent_critic_grads(a, &d->b), IB_OK);
  return a->metrics.critic_loss;
}

static void actor_check(agent_method m, agent_backbone bb, const char *what) {
  agent_config c = small_cfg(m, bb);
  c.rft_bc_weight = 5.0f; /* make the Q-filtered BC term as large as the Q term */
  agent a;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
  if (m == AGENT_IBRL) set_il(&a);
  data d;
  make_data(&d);
  streams st = save_streams(&a);
  double l0 = actor_loss(&a, &d);
  TH_CHECK(isfinite(l0));
  if (m == AGENT_RFT) /* the BC term must be active for the check to cover it */
    TH_CHECK_MSG(a.metrics.rft_ratio > 0.0 && a.metrics.rft_bc_loss > 0.0, "%s: ratio %g, bc %g", what,
                 a.metrics.rft_ratio, a.metrics.rft_bc_loss);
  size_t n = a.actor.n_params;
  float *g = malloc(n * sizeof(float));
  memcpy(g, a.actor.grads, n * sizeof(float));
  float ga_alpha = a.dlog_alpha[0];
  int bad = fd_check(what, &a, a.actor.params, g, n, &st, actor_loss, &d);
  TH_CHECK_MSG(bad == 0, "%s: %d of %zu actor gradients disagree", what, bad, n);
  if (bb == AGENT_SAC) {
    /* The temperature loss alpha * (-mean logp - H) in log(alpha): finite difference with the
     * actor fixed (logp does not depend on alpha). */
    double lp = -a.metrics.entropy, Ht = a.cfg.target_entropy, la = a.log_alpha[0];
    TH_CHECK_NEAR(Ht, -0.5 * A, 1e-7); /* the NaN default resolves to -act_dim / 2 */
    double num = (exp(la + 1e-3) - exp(la - 1e-3)) / 2e-3 * (-lp - Ht);
    TH_CHECK_NEAR(ga_alpha, num, 1e-3 * fmax(1.0, fabs(num)));
  }
  free(g);
  agent_free(&a);
}

static void test_td3_actor(void) { actor_check(AGENT_IBRL, AGENT_TD3, "td3 actor (dropout 0.5, min over heads)"); }
static void test_sac_actor(void) { actor_check(AGENT_RLPD, AGENT_SAC, "sac actor (mean over heads)"); }
static void test_rft_actor(void) {
  actor_check(AGENT_RFT, AGENT_TD3, "rft actor (TD3 + Q-filtered BC)");
  actor_check(AGENT_RFT, AGENT_SAC, "rft actor (SAC + Q-filtered BC on tanh(mean))");
}

static void test_critic(void) {
  agent_config c = small_cfg(AGENT_IBRL, AGENT_TD3);
  agent a;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
  set_il(&a);
  data d;
  make_data(&d);
  streams st = save_streams(&a);
  critic_loss(&a, &d);
  size_t n = a.critic.n_params;
  float *g = malloc(n * sizeof(float));
  memcpy(g, a.critic.grads, n * sizeof(float));
  int bad = fd_check("critic (LayerNorm, E=3)", &a, a.critic.params, g, n, &st, critic_loss, &d);
  TH_CHECK_MSG(bad == 0, "%d of %zu critic gradients disagree", bad, n);
  free(g);
  agent_free(&a);
}

static const th_case cases[] = {
    {"td3 actor loss gradcheck", test_td3_actor},
    {"sac actor loss gradcheck", test_sac_actor},
    {"rft actor loss gradcheck", test_rft_actor},
    {"critic loss gradcheck", test_critic},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
