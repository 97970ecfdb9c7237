/* test_agent_target.c: the IBRL bootstrap target and the proposal rules, on tiny nets whose
 * weights are set by hand so every expected value is computed here from tanh and the linear
 * critics, independently of the agent code:
 *  - the TD3 target y on hand-checked rows (RL wins, IL wins, terminal);
 *  - the bootstrap-proposal ablation never uses the IL candidate; the actor-proposal ablation
 *    acts with RL only; both switches really switch (the IL candidate wins when they are on);
 *  - a fresh head subset evaluates the chosen action (E=3), and reusing the pair gives the max;
 *  - SAC: the alpha*logp term is applied to the RL candidate only;
 *  - soft selection picks IL with probability softmax(beta*q), greedy always takes the max. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "ib.h"
#include "th.h"

enum { NR = 8 };

/* Hand critics: Q_e(s, a) = ws[e] s + wa[e] a + b[e]. */
static const float CWS[3] = {1.0f, 0.5f, -0.25f};
static const float CWA[3] = {2.0f, 3.0f, 1.0f};
static const float CB[3] = {0.0f, -0.1f, 0.4f};

static double hq(int e, double s, double a) { return CWS[e] * s + CWA[e] * a + CB[e]; }

/* IL: a = tanh(w2 relu(w1 s + b1) + b2) with w1 = -1, b1 = 0, w2 = 2, b2 = 0. */
static double h_il(double s) { return tanh(2.0 * fmax(-s, 0.0)); }
/* Actor (and target): a = tanh(s). */
static double h_rl(double s) { return tanh(s); }

static agent_config tiny_cfg(agent_backbone bb, int E) {
  agent_config c = agent_config_default(AGENT_IBRL, bb);
  c.obs_dim = 1;
  c.act_dim = 1;
  c.actor_layers = 0;
  c.critic_layers = 0;
  c.n_critics = E;
  c.n_min = 2;
  c.max_batch = NR;
  c.target_noise = 0.0f;
  c.actor_dropout = 0.0f;
  c.act_select = AGENT_SELECT_GREEDY;
  c.boot_select = AGENT_SELECT_GREEDY;
  c.il.n_layers = 1;
  c.il.hidden = 1;
  c.il.dropout = 0.0f;
  c.il.max_batch = NR;
  return c;
}

static void set_critic(nn_ens *ens) {
  for (int e = 0; e < ens->E; e++) {
    float *p = ens->params + (size_t)e * ens->head_params;
    p[0] = CWS[e];
    p[1] = CWA[e];
    p[2] = CB[e];
  }
}

/* Builds the agent with hand weights everywhere. */
static void build(agent *a, const agent_config *c) {
  TH_CHECK_EQ_INT(agent_init(a, c), IB_OK);
  il_config ic = c->il;
  ic.obs_dim = 1;
  ic.act_dim = 1;
  il_policy il;
  TH_CHECK_EQ_INT(il_init(&il, &ic), IB_OK);
  float w[4] = {-1.0f, 0.0f, 2.0f, 0.0f};
  memcpy(il.net.params, w, sizeof w);
  TH_CHECK_EQ_INT(agent_il_set(a, &il), IB_OK);
  il_free(&il);
  if (c->backbone == AGENT_TD3) {
    a->actor.params[0] = 1.0f;
    a->actor.params[1] = 0.0f;
    nn_mlp_copy_params(&a->actor_target, &a->actor);
  }
  set_critic(&a->critic);
  set_critic(&a->critic_target);
}

static const float S2[3] = {0.5f, -0.5f, 0.2f};
static const float R[3] = {0.3f, 0.0f, 1.0f};
static const float D[3] = {0.9703f, 0.970299f, 0.0f};

static agent_batch batch3(void) {
  static float zero[3] = {0, 0, 0};
  agent_batch b = {zero, zero, R, D, S2, 3};
  return b;
}

static double qmin2(double s, double a) { return fmin(hq(0, s, a), hq(1, s, a)); }

static void test_td3_target_hand(void) {
  agent_config c = tiny_cfg(AGENT_TD3, 2);
  agent a;
  build(&a, &c);
  agent_batch b = batch3();
  float y[3];
  agent_target_compute(&a, y, &b);
  agent_target_view v = agent_target_last(&a);
  int il_wins = 0;
  for (int i = 0; i < 3; i++) {
    double s = S2[i], arl = h_rl(s), ail = h_il(s);
    int pick = qmin2(s, ail) > qmin2(s, arl);
    double want = R[i] + D[i] * qmin2(s, pick ? ail : arl);
    TH_CHECK_NEAR(y[i], want, 1e-5);
    TH_CHECK_EQ_INT(v.pick_il[i], pick);
    TH_CHECK_NEAR(v.a_rl[i], arl, 1e-6);
    TH_CHECK_NEAR(v.a_il[i], ail, 1e-6);
    il_wins += pick;
  }
  /* The hand case has one IL win (row 1) and a terminal row (y = r). */
  TH_CHECK_EQ_INT(il_wins, 1);
  TH_CHECK_EQ_INT(v.pick_il[1], 1);
  TH_CHECK_NEAR(y[2], 1.0, 1e-7);
  TH_CHECK_EQ_INT(a.metrics.boot_il, 1);
  TH_CHECK_EQ_INT(a.metrics.boot_total, 3);
  /* Written out for row 1: a_il = tanh(1), Q0 = -0.5 + 2 tanh(1), Q1 = -0.25 + 3 tanh(1) - 0.1. */
  double t1 = tanh(1.0);
  TH_CHECK_NEAR(y[1], 0.970299 * fmin(-0.5 + 2 * t1, -0.35 + 3 * t1), 1e-5);
  agent_free(&a);
}

static void test_boot_ablation(void) {
  agent_config c = tiny_cfg(AGENT_TD3, 2);
  c.boot_proposal = 0;
  agent a;
  build(&a, &c);
  agent_batch b = batch3();
  float y[3];
  for (int rep = 0; rep < 5; rep++) {
    agent_target_compute(&a, y, &b);
    agent_target_view v = agent_target_last(&a);
    TH_CHECK(v.a_il == NULL);
    for (int i = 0; i < 3; i++) {
      TH_CHECK_EQ_INT(v.pick_il[i], 0);
      TH_CHECK_NEAR(y[i], R[i] + D[i] * qmin2(S2[i], h_rl(S2[i])), 1e-5);
    }
  }
  TH_CHECK_EQ_INT(a.metrics.boot_il, 0);
  TH_CHECK_EQ_INT(a.metrics.boot_total, 0); /* no IL candidate competed: no IL-win ratio */
  /* Row 1 would have used the IL candidate with the proposal on: the switch changed y. */
  TH_CHECK(fabs(y[1] - D[1] * qmin2(S2[1], h_il(S2[1]))) > 0.1);
  agent_free(&a);
}

static void test_actor_proposal(void) {
  for (int on = 0; on < 2; on++) {
    agent_config c = tiny_cfg(AGENT_TD3, 2);
    c.actor_proposal = on;
    agent a;
    build(&a, &c);
    float obs[2] = {0.5f, -0.5f}, act[2];
    uint8_t who[2];
    TH_CHECK_EQ_INT(agent_act(&a, act, who, obs, 2, AGENT_MODE_EVAL_GREEDY), IB_OK);
    TH_CHECK_NEAR(act[0], h_rl(0.5), 1e-6);
    TH_CHECK_EQ_INT(who[0], 1);
    if (on) { /* row 1: the IL action has the higher target Q */
      TH_CHECK_NEAR(act[1], h_il(-0.5), 1e-6);
      TH_CHECK_EQ_INT(who[1], 0);
      TH_CHECK_EQ_INT(a.metrics.act_il, 1);
      TH_CHECK_EQ_INT(a.metrics.act_total, 2);
    } else {
      TH_CHECK_NEAR(act[1], h_rl(-0.5), 1e-6);
      TH_CHECK_EQ_INT(who[1], 1);
      TH_CHECK_EQ_INT(a.metrics.act_il, 0);
    }
    /* Eval modes: IL only and RL only ignore the selection. */
    TH_CHECK_EQ_INT(agent_act(&a, act, who, obs, 2, AGENT_MODE_EVAL_IL), IB_OK);
    TH_CHECK_NEAR(act[0], h_il(0.5), 1e-6);
    TH_CHECK_NEAR(act[1], h_il(-0.5), 1e-6);
    TH_CHECK(who[0] == 0 && who[1] == 0);
    TH_CHECK_EQ_INT(agent_act(&a, act, who, obs, 2, AGENT_MODE_EVAL_RL), IB_OK);
    TH_CHECK_NEAR(act[1], h_rl(-0.5), 1e-6);
    TH_CHECK(who[0] == 1 && who[1] == 1);
    /* Explore: the noisy RL action is clamped inside (-1, 1) even where tanh saturates; the IL
     * action (a tanh, no noise) stays in [-1, 1]. */
    float big[2] = {40.0f, -40.0f};
    TH_CHECK_EQ_INT(agent_act(&a, act, who, big, 2, AGENT_MODE_EXPLORE), IB_OK);
    for (int i = 0; i < 2; i++) {
      TH_CHECK(act[i] >= -1.0f && act[i] <= 1.0f);
      if (who[i]) TH_CHECK(act[i] > -1.0f && act[i] < 1.0f);
    }
    TH_CHECK_EQ_INT(who[0], 1); /* Q rises with a: RL's ~1 beats IL's tanh(0) = 0 */
    agent_free(&a);
  }
}

static void test_fresh_pair(void) {
  for (int fresh = 0; fresh < 2; fresh++) {
    agent_config c = tiny_cfg(AGENT_TD3, 3);
    c.boot_fresh_pair = fresh;
    agent a;
    build(&a, &c);
    agent_batch b = batch3();
    float y[3];
    int differs = 0, disjointish = 0;
    for (int rep = 0; rep < 40; rep++) {
      agent_target_compute(&a, y, &b);
      agent_target_view v = agent_target_last(&a);
      int same = 0;
      for (int j = 0; j < 2; j++)
        for (int l = 0; l < 2; l++) same += v.heads_select[j] == v.heads_eval[l];
      differs += same < 2;
      disjointish += same == 1;
      for (int i = 0; i < 3; i++) {
        double s = S2[i], arl = h_rl(s), ail = h_il(s);
        double sel_rl = fmin(hq(v.heads_select[0], s, arl), hq(v.heads_select[1], s, arl));
        double sel_il = fmin(hq(v.heads_select[0], s, ail), hq(v.heads_select[1], s, ail));
        int pick = sel_il > sel_rl;
        double as = pick ? ail : arl;
        double ev = fmin(hq(v.heads_eval[0], s, as), hq(v.heads_eval[1], s, as));
        TH_CHECK_EQ_INT(v.pick_il[i], pick);
        TH_CHECK_NEAR(y[i], R[i] + D[i] * ev, 1e-5);
        if (!fresh) TH_CHECK_NEAR(y[i], R[i] + D[i] * fmax(sel_rl, sel_il), 1e-5);
      }
    }
    if (fresh) TH_CHECK_MSG(differs > 5 && disjointish > 2, "fresh subsets drawn: %d differ, %d share one head",
                            differs, disjointish);
    else TH_CHECK_EQ_INT(differs, 0);
    agent_free(&a);
  }
}

static void test_sac_entropy_rl_only(void) {
  agent_config c = tiny_cfg(AGENT_SAC, 2);
  c.init_temperature = 2.0f;
  c.max_batch = NR;
  agent a;
  build(&a, &c);
  /* Actor head: mean = 0.3 s, log_std = log(0.3). W (2x1) then b (2). */
  a.actor.params[0] = 0.3f;
  a.actor.params[1] = 0.0f;
  a.actor.params[2] = 0.0f;
  a.actor.params[3] = logf(0.3f);
  float s2[NR], r[NR], d[NR], zero[NR];
  for (int i = 0; i < NR; i++) {
    s2[i] = -1.0f + 2.0f * (float)i / (NR - 1);
    r[i] = 0.1f * (float)i;
    d[i] = 0.97f;
    zero[i] = 0.0f;
  }
  agent_batch b = {zero, zero, r, d, s2, NR};
  float y[NR];
  const double alpha = 2.0;
  int rl_rows = 0, il_rows = 0;
  for (int rep = 0; rep < 4; rep++) {
    agent_target_compute(&a, y, &b);
    agent_target_view v = agent_target_last(&a);
    TH_CHECK(v.logp != NULL);
    for (int i = 0; i < NR; i++) {
      double s = s2[i], arl = v.a_rl[i], ail = h_il(s), lp = v.logp[i];
      /* logp by hand from the action: u = atanh(a), eps = (u - mean)/std. */
      double u = atanh(arl), sd = 0.3, e = (u - 0.3 * s) / sd;
      double lp_hand = -0.5 * e * e - log(sd) - 0.5 * log(2 * M_PI) - log(1 - arl * arl);
      TH_CHECK_NEAR(lp, lp_hand, 2e-3);
      double vrl = qmin2(s, arl) - alpha * lp, vil = qmin2(s, ail);
      int pick = vil > vrl;
      TH_CHECK_EQ_INT(v.pick_il[i], pick);
      double want = r[i] + d[i] * (pick ? qmin2(s, ail) : qmin2(s, arl) - alpha * lp);
      TH_CHECK_NEAR(y[i], want, 1e-4);
      pick ? il_rows++ : rl_rows++;
    }
  }
  TH_CHECK_MSG(il_rows > 0 && rl_rows > 0, "the case must exercise both candidates (IL %d, RL %d)",
               il_rows, rl_rows);
  agent_free(&a);
}

static void test_select_stats(void) {
  enum { N = 20000 };
  static float qr[N], qi[N];
  static uint8_t pick[N];
  rng r;
  rng_seed(&r, 3, "test", 0, "select");
  const float beta = 10.0f;
  const float cases[4][2] = {{1.0f, 1.1f}, {1.0f, 0.9f}, {-3.0f, -3.0f}, {0.0f, 0.25f}};
  for (int k = 0; k < 4; k++) {
    for (int i = 0; i < N; i++) {
      qr[i] = cases[k][0];
      qi[i] = cases[k][1];
    }
    ibrl_select(pick, qr, qi, N, AGENT_SELECT_SOFT, beta, &r);
    long il = 0;
    for (int i = 0; i < N; i++) il += pick[i];
    double p = exp(beta * qi[0]) / (exp(beta * qi[0]) + exp(beta * qr[0]));
    double sd = sqrt(p * (1 - p) / N);
    TH_CHECK_MSG(fabs((double)il / N - p) < 4.5 * sd, "soft case %d: IL share %.4f, softmax says %.4f",
                 k, (double)il / N, p);
  }
  /* Greedy: always the max, ties to RL; also no overflow for huge beta*q in soft mode. */
  for (int i = 0; i < N; i++) {
    qr[i] = 2.0f * rng_uniform(&r) - 1.0f;
    qi[i] = i % 10 == 0 ? qr[i] : 2.0f * rng_uniform(&r) - 1.0f;
  }
  ibrl_select(pick, qr, qi, N, AGENT_SELECT_GREEDY, beta, NULL);
  int wrong = 0;
  for (int i = 0; i < N; i++) wrong += pick[i] != (qi[i] > qr[i]);
  TH_CHECK_EQ_INT(wrong, 0);
  for (int i = 0; i < N; i++) {
    qr[i] = 1e4f * (2.0f * rng_uniform(&r) - 1.0f);
    qi[i] = 1e4f * (2.0f * rng_uniform(&r) - 1.0f);
  }
  ibrl_select(pick, qr, qi, N, AGENT_SELECT_SOFT, 1e3f, &r);
  wrong = 0;
  for (int i = 0; i < N; i++) wrong += fabsf(qr[i] - qi[i]) > 0.1f && pick[i] != (qi[i] > qr[i]);
  TH_CHECK_EQ_INT(wrong, 0);
}


/* Soft selection is wired into both the bootstrap and acting: with hand weights the IL share of
 * many draws matches softmax(beta * [q_rl, q_il]) computed here from the hand critics. */
static void test_soft_wired(void) {
  agent_config c = tiny_cfg(AGENT_TD3, 2);
  c.boot_select = AGENT_SELECT_SOFT;
  c.act_select = AGENT_SELECT_SOFT;
  c.beta = 0.3f;
  agent a;
  build(&a, &c);
  float s2[NR], r[NR], d[NR];
  for (int i = 0; i < NR; i++) {
    s2[i] = -0.5f;
    r[i] = 0.0f;
    d[i] = 0.9f;
  }
  agent_batch b = {s2, s2, r, d, s2, NR};
  const double vrl = qmin2(-0.5, h_rl(-0.5)), vil = qmin2(-0.5, h_il(-0.5));
  const double p = 1.0 / (1.0 + exp(0.3 * (vrl - vil)));
  enum { REPS = 500 };
  float y[NR], act[NR];
  uint8_t who[NR];
  for (int k = 0; k < REPS; k++) {
    agent_target_compute(&a, y, &b);
    for (int i = 0; i < NR; i++) /* y is the chosen candidate's value, never a mixture */
      TH_CHECK(fabs(y[i] - 0.9 * vrl) < 1e-5 || fabs(y[i] - 0.9 * vil) < 1e-5);
    TH_CHECK_EQ_INT(agent_act(&a, act, who, s2, NR, AGENT_MODE_EVAL_IBRL), IB_OK);
  }
  const double n = (double)REPS * NR, sd = sqrt(p * (1 - p) / n);
  double boot = a.metrics.boot_il / n, actf = a.metrics.act_il / n;
  TH_CHECK_MSG(fabs(boot - p) < 4.5 * sd, "bootstrap IL share %.4f, softmax %.4f", boot, p);
  TH_CHECK_MSG(fabs(actf - p) < 4.5 * sd, "acting IL share %.4f, softmax %.4f", actf, p);
  /* The greedy eval mode ignores the soft setting: always IL here. */
  agent_metrics_reset(&a);
  TH_CHECK_EQ_INT(agent_act(&a, act, who, s2, NR, AGENT_MODE_EVAL_GREEDY), IB_OK);
  TH_CHECK_EQ_INT(a.metrics.act_il, NR);
  agent_free(&a);
}


/* The bootstrap's RL candidate: target-policy noise is clipped at noise_clip, and the target
 * actor runs with dropout ON (two bootstraps of the same batch differ), while the RL-only eval
 * action is deterministic (dropout off). */
static void test_target_noise_dropout(void) {
  agent_config c = tiny_cfg(AGENT_TD3, 2);
  c.target_noise = 1.0f; /* large, so the clip at 0.3 is hit often */
  agent a;
  build(&a, &c);
  agent_batch b = batch3();
  float y[3];
  int clipped = 0;
  for (int k = 0; k < 200; k++) {
    agent_target_compute(&a, y, &b);
    agent_target_view v = agent_target_last(&a);
    for (int i = 0; i < 3; i++) {
      double e = v.a_rl[i] - h_rl(S2[i]);
      TH_CHECK(fabs(e) <= 0.3 + 1e-6);
      clipped += fabs(fabs(e) - 0.3) < 1e-6;
    }
  }
  TH_CHECK_MSG(clipped > 100, "only %d of 600 noise draws hit the clip at std 1", clipped);
  agent_free(&a);

  /* Dropout: an actor with a hidden layer and p = 0.5. */
  agent_config d = tiny_cfg(AGENT_TD3, 2);
  d.actor_layers = 1;
  d.actor_hidden = 16;
  d.actor_dropout = 0.5f;
  TH_CHECK_EQ_INT(agent_init(&a, &d), IB_OK);
  il_config ic = d.il;
  ic.obs_dim = 1;
  ic.act_dim = 1;
  il_policy il;
  TH_CHECK_EQ_INT(il_init(&il, &ic), IB_OK);
  TH_CHECK_EQ_INT(agent_il_set(&a, &il), IB_OK);
  il_free(&il);
  float r1[3], r2[3], e1[3], e2[3];
  agent_target_compute(&a, y, &b);
  memcpy(r1, agent_target_last(&a).a_rl, sizeof r1);
  agent_target_compute(&a, y, &b);
  memcpy(r2, agent_target_last(&a).a_rl, sizeof r2);
  TH_CHECK_MSG(memcmp(r1, r2, sizeof r1) != 0, "target actor gave the same actions twice: dropout is off");
  TH_CHECK_EQ_INT(agent_act(&a, e1, NULL, S2, 3, AGENT_MODE_EVAL_RL), IB_OK);
  TH_CHECK_EQ_INT(agent_act(&a, e2, NULL, S2, 3, AGENT_MODE_EVAL_RL), IB_OK);
  TH_CHECK(memcmp(e1, e2, sizeof e1) == 0);
  agent_free(&a);
}

static const th_case cases[] = {
    {"td3 target by hand", test_td3_target_hand},
    {"bootstrap proposal off", test_boot_ablation},
    {"actor proposal on/off and eval modes", test_actor_proposal},
    {"fresh pair evaluates the chosen action", test_fresh_pair},
    {"sac entropy term on the RL candidate only", test_sac_entropy_rl_only},
    {"soft vs greedy selection statistics", test_select_stats},
    {"soft selection in the bootstrap and acting", test_soft_wired},
    {"target noise clip and target-actor dropout", test_target_noise_dropout},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
