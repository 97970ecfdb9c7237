/* test_agent_state.c: the agent as a stateful object.
 *  - determinism: same seed -> bit-identical arenas after N learning steps (and a different seed
 *    differs, so the check can fail);
 *  - the frozen IL policy cannot move: its checksum survives many RL updates and acting, and
 *    changing the caller's policy after agent_il_set does not reach the agent;
 *  - checkpoints resume bit-identically; corrupt, truncated, mismatched and missing files fail
 *    with the right code and leave the agent unchanged;
 *  - the critic regresses to the rewards (discount 0) and the actor climbs the critic;
 *  - the acting-weights blob moves a learner's policy into an acting-only agent;
 *  - bad configs, names and calls give clear errors; NaN rewards give IB_ENONFINITE. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "ib.h"
#include "th.h"

enum { O = 6, A = 4, NB = 16, G = 2 };

static agent_config small_cfg(agent_method m, agent_backbone bb) {
  agent_config c = agent_config_default(m, bb);
  c.obs_dim = O;
  c.act_dim = A;
  c.actor_layers = 2;
  c.actor_hidden = 16;
  c.critic_layers = 2;
  c.critic_hidden = 16;
  c.n_critics = 4;
  c.max_batch = NB;
  c.lr_actor = c.lr_critic = 1e-3f;
  c.il.n_layers = 1;
  c.il.hidden = 8;
  c.il.max_batch = NB;
  c.seed = 21;
  return c;
}

typedef struct data {
  float obs[G][NB * O], act[G][NB * A], rew[G][NB], disc[G][NB], next[G][NB * O];
  agent_batch b[G];
} data;

static void make_data(data *d, uint64_t seed, float discount) {
  rng r;
  rng_seed(&r, seed, "test", 0, "state");
  for (int g = 0; g < G; g++) {
    for (int i = 0; i < NB * O; i++) {
      d->obs[g][i] = 2.0f * rng_uniform(&r) - 1.0f;
      d->next[g][i] = 2.0f * rng_uniform(&r) - 1.0f;
    }
    for (int i = 0; i < NB * A; i++) d->act[g][i] = 1.8f * rng_uniform(&r) - 0.9f;
    for (int i = 0; i < NB; i++) {
      d->rew[g][i] = d->obs[g][i * O] > 0.0f ? 1.0f : 0.0f;
      d->disc[g][i] = discount;
    }
    agent_batch b = {d->obs[g], d->act[g], d->rew[g], d->disc[g], d->next[g], NB};
    d->b[g] = b;
  }
}

static void set_il(agent *a, uint64_t seed) {
  il_config ic = a->cfg.il;
  ic.seed = seed;
  il_policy il;
  TH_CHECK_EQ_INT(il_init(&il, &ic), IB_OK);
  TH_CHECK_EQ_INT(agent_il_set(a, &il), IB_OK);
  il_free(&il);
}

static int arenas_equal(agent *x, agent *y) {
  const agent_net nets[] = {AGENT_NET_ACTOR, AGENT_NET_ACTOR_TARGET, AGENT_NET_CRITIC,
                            AGENT_NET_CRITIC_TARGET, AGENT_NET_TEMPERATURE, AGENT_NET_IL};
  for (size_t i = 0; i < IB_ARRAY_LEN(nets); i++) {
    agent_arena p = agent_arena_get(x, nets[i]), q = agent_arena_get(y, nets[i]);
    if (p.n != q.n || (p.n && memcmp(p.params, q.params, p.n * sizeof(float)) != 0)) return 0;
  }
  return x->critic.adam_t == y->critic.adam_t && x->actor.adam_t == y->actor.adam_t &&
         (!x->critic.adam_m || !memcmp(x->critic.adam_m, y->critic.adam_m, x->critic.n_params * sizeof(float)));
}

/* Learning steps interleaved with acting, as a trainer does. */
static void run(agent *a, const data *d, int steps) {
  float act[NB * A];
  uint8_t who[NB];
  for (int s = 0; s < steps; s++) {
    TH_CHECK_EQ_INT(agent_act(a, act, who, d->obs[0], 3, AGENT_MODE_EXPLORE), IB_OK);
    TH_CHECK_EQ_INT(agent_learn_step(a, d->b, G, &d->b[0]), IB_OK);
  }
}

static void test_determinism(void) {
  const agent_method ms[3] = {AGENT_IBRL, AGENT_RLPD, AGENT_RFT};
  const agent_backbone bs[3] = {AGENT_TD3, AGENT_SAC, AGENT_TD3};
  data d;
  make_data(&d, 1, 0.97f);
  for (int k = 0; k < 3; k++) {
    agent x, y, z;
    agent_config c = small_cfg(ms[k], bs[k]);
    TH_CHECK_EQ_INT(agent_init(&x, &c), IB_OK);
    TH_CHECK_EQ_INT(agent_init(&y, &c), IB_OK);
    c.seed = 22;
    TH_CHECK_EQ_INT(agent_init(&z, &c), IB_OK);
    if (ms[k] == AGENT_IBRL) {
      set_il(&x, 4);
      set_il(&y, 4);
      set_il(&z, 4);
    }
    run(&x, &d, 6);
    run(&y, &d, 6);
    run(&z, &d, 6);
    TH_CHECK_MSG(arenas_equal(&x, &y), "%s: same seed gave different arenas", agent_method_name(ms[k]));
    TH_CHECK_MSG(!arenas_equal(&x, &z), "%s: different seeds gave identical arenas", agent_method_name(ms[k]));
    TH_CHECK_EQ_INT(x.metrics.critic_updates, 6 * G);
    TH_CHECK_EQ_INT(x.metrics.actor_updates, 6);
    agent_free(&x);
    agent_free(&y);
    agent_free(&z);
  }
}

static void test_frozen_il(void) {
  agent_config c = small_cfg(AGENT_IBRL, AGENT_TD3);
  agent a;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
  il_config ic = a.cfg.il;
  il_policy src;
  TH_CHECK_EQ_INT(il_init(&src, &ic), IB_OK);
  TH_CHECK_EQ_INT(agent_il_set(&a, &src), IB_OK);
  uint32_t crc0 = agent_arena_crc(&a, AGENT_NET_IL);
  TH_CHECK_EQ_INT(crc0, il_checksum(&src));
  /* The agent's copy shares no memory with the source or the RL arenas. */
  TH_CHECK(a.il.net.params != src.net.params && a.il.net.grads == NULL && a.il.net.adam_m == NULL);
  agent_arena ar[4] = {agent_arena_get(&a, AGENT_NET_ACTOR), agent_arena_get(&a, AGENT_NET_ACTOR_TARGET),
                       agent_arena_get(&a, AGENT_NET_CRITIC), agent_arena_get(&a, AGENT_NET_CRITIC_TARGET)};
  const float *ip = a.il.net.params, *ie = ip + a.il.net.n_params;
  for (int i = 0; i < 4; i++) TH_CHECK(ie <= ar[i].params || ip >= ar[i].params + ar[i].n);
  /* Many RL updates and acting calls. */
  data d;
  make_data(&d, 2, 0.97f);
  uint32_t actor0 = agent_arena_crc(&a, AGENT_NET_ACTOR);
  run(&a, &d, 30);
  TH_CHECK(agent_arena_crc(&a, AGENT_NET_ACTOR) != actor0); /* the RL side did move */
  TH_CHECK_EQ_INT(agent_arena_crc(&a, AGENT_NET_IL), crc0);
  /* Training the caller's policy afterwards does not reach the agent. */
  for (int s = 0; s < 5; s++) TH_CHECK_EQ_INT(il_train_step(&src, d.obs[0], d.act[0], NB), IB_OK);
  TH_CHECK(il_checksum(&src) != crc0);
  TH_CHECK_EQ_INT(agent_arena_crc(&a, AGENT_NET_IL), crc0);
  /* And the agent's IL actions equal a fresh prediction of the frozen weights. */
  float x1[NB * A], x2[NB * A];
  TH_CHECK_EQ_INT(agent_act(&a, x1, NULL, d.obs[1], NB, AGENT_MODE_EVAL_IL), IB_OK);
  il_predict(&a.il, x2, d.obs[1], NB);
  TH_CHECK(memcmp(x1, x2, sizeof x1) == 0);
  il_free(&src);
  agent_free(&a);
}

static void test_checkpoint(void) {
  data d;
  make_data(&d, 3, 0.97f);
  const agent_backbone bs[2] = {AGENT_TD3, AGENT_SAC};
  for (int k = 0; k < 2; k++) {
    agent_config c = small_cfg(AGENT_IBRL, bs[k]);
    agent x, y;
    TH_CHECK_EQ_INT(agent_init(&x, &c), IB_OK);
    set_il(&x, 9);
    run(&x, &d, 3);
    char path[512];
    snprintf(path, sizeof path, "%s/test_agent_%d.ckpt", IB_BINARY_DIR, k);
    TH_CHECK_EQ_INT(agent_save(&x, path), IB_OK);
    c.seed = 77; /* a different start: everything must come from the file */
    TH_CHECK_EQ_INT(agent_init(&y, &c), IB_OK);
    TH_CHECK(!arenas_equal(&x, &y));
    TH_CHECK_EQ_INT(agent_load(&y, path), IB_OK);
    TH_CHECK(arenas_equal(&x, &y));
    TH_CHECK_EQ_INT(y.metrics.critic_updates, 3 * G);
    run(&x, &d, 3);
    run(&y, &d, 3);
    TH_CHECK_MSG(arenas_equal(&x, &y), "backbone %d: resumed run differs from the uninterrupted one", k);
    if (bs[k] == AGENT_SAC) TH_CHECK(x.log_alpha[0] == y.log_alpha[0] && x.log_alpha[0] != 0.0f);

    /* Failures leave the agent unchanged. */
    uint32_t before = agent_arena_crc(&y, AGENT_NET_CRITIC);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)size);
    TH_CHECK(fread(buf, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    char bad[600];
    snprintf(bad, sizeof bad, "%s.bad", path);
    /* flipped byte in the middle of the critic */
    buf[size / 2] ^= 0x40;
    f = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)size, f);
    fclose(f);
    int rc = agent_load(&y, bad);
    TH_CHECK_MSG(rc == IB_ECHECKSUM || rc == IB_ENONFINITE, "flipped byte: rc %d (%s)", rc, ib_errmsg());
    buf[size / 2] ^= 0x40;
    /* truncated */
    f = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)size - 100, f);
    fclose(f);
    TH_CHECK_EQ_INT(agent_load(&y, bad), IB_EPROTO);
    TH_CHECK(strstr(ib_errmsg(), "truncated") != NULL);
    /* wrong magic */
    buf[0] = 'X';
    f = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)size, f);
    fclose(f);
    TH_CHECK_EQ_INT(agent_load(&y, bad), IB_EPROTO);
    TH_CHECK(strstr(ib_errmsg(), "magic") != NULL);
    free(buf);
    remove(bad);
    TH_CHECK_EQ_INT(agent_load(&y, "/nonexistent/agent.ckpt"), IB_EIO);
    TH_CHECK(strstr(ib_errmsg(), "/nonexistent/agent.ckpt") != NULL);
    /* another shape */
    agent z;
    agent_config cz = c;
    cz.critic_hidden = 12;
    TH_CHECK_EQ_INT(agent_init(&z, &cz), IB_OK);
    TH_CHECK_EQ_INT(agent_load(&z, path), IB_EMISMATCH);
    TH_CHECK(strstr(ib_errmsg(), "critic_hidden") != NULL);
    agent_free(&z);
    TH_CHECK_EQ_INT(agent_arena_crc(&y, AGENT_NET_CRITIC), before);
    remove(path);
    agent_free(&x);
    agent_free(&y);
  }
}

static void test_critic_regression(void) {
  /* discount 0: y = r exactly, so the critic must fit the rewards (loss falls 10x). */
  agent_config c = small_cfg(AGENT_RLPD, AGENT_TD3);
  agent a;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
  data d;
  make_data(&d, 4, 0.0f);
  TH_CHECK_EQ_INT(agent_critic_update(&a, &d.b[0]), IB_OK);
  double first = a.metrics.critic_loss;
  TH_CHECK_NEAR(a.metrics.target_mean, 0.0, 1.0); /* sanity: targets are rewards in {0,1} */
  for (int s = 0; s < 300; s++) TH_CHECK_EQ_INT(agent_critic_update(&a, &d.b[0]), IB_OK);
  TH_CHECK_MSG(a.metrics.critic_loss < 0.1 * first, "critic loss %g -> %g did not fall 10x", first,
               a.metrics.critic_loss);
  /* The actor then climbs the frozen critic: its loss (-Q) falls. */
  TH_CHECK_EQ_INT(agent_actor_update(&a, &d.b[0], NULL), IB_OK);
  double a0 = a.metrics.actor_loss;
  for (int s = 0; s < 100; s++) TH_CHECK_EQ_INT(agent_actor_update(&a, &d.b[0], NULL), IB_OK);
  TH_CHECK_MSG(a.metrics.actor_loss < a0 - 1e-3, "actor loss %g -> %g did not fall", a0, a.metrics.actor_loss);
  agent_free(&a);
}

static void test_acting_blob(void) {
  agent_config c = small_cfg(AGENT_IBRL, AGENT_TD3);
  agent L, act;
  TH_CHECK_EQ_INT(agent_init(&L, &c), IB_OK);
  set_il(&L, 5);
  data d;
  make_data(&d, 5, 0.97f);
  run(&L, &d, 4);
  agent_config ca = c;
  ca.acting_only = 1;
  ca.rank = 3;
  TH_CHECK_EQ_INT(agent_init(&act, &ca), IB_OK);
  TH_CHECK(act.critic.params == NULL && act.actor.grads == NULL);
  size_t n = agent_acting_size(&L);
  TH_CHECK_EQ_INT(n, agent_acting_size(&act));
  float *blob = malloc(n * sizeof(float));
  agent_acting_pack(&L, blob);
  TH_CHECK_EQ_INT(agent_acting_unpack(&act, blob, n - 1), IB_EMISMATCH);
  float keep = blob[7];
  blob[7] = NAN;
  TH_CHECK_EQ_INT(agent_acting_unpack(&act, blob, n), IB_ENONFINITE);
  TH_CHECK(act.has_il == 0);
  blob[7] = keep;
  TH_CHECK_EQ_INT(agent_acting_unpack(&act, blob, n), IB_OK);
  float x1[NB * A], x2[NB * A];
  const agent_mode modes[3] = {AGENT_MODE_EVAL_IL, AGENT_MODE_EVAL_RL, AGENT_MODE_EVAL_GREEDY};
  for (int m = 0; m < 3; m++) {
    /* The head subset of the greedy mode comes from the acting stream: align the streams. */
    act.r_act_noise = L.r_act_noise;
    TH_CHECK_EQ_INT(agent_act(&L, x1, NULL, d.obs[0], NB, modes[m]), IB_OK);
    TH_CHECK_EQ_INT(agent_act(&act, x2, NULL, d.obs[0], NB, modes[m]), IB_OK);
    TH_CHECK_MSG(memcmp(x1, x2, sizeof x1) == 0, "mode %d: acting-only agent acts differently", m);
  }
  free(blob);
  agent_free(&L);
  agent_free(&act);
}

static void test_errors(void) {
  agent a;
  agent_config c = small_cfg(AGENT_IBRL, AGENT_TD3);
  c.n_min = 5;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "n_min") != NULL);
  agent_free(&a);
  c = small_cfg(AGENT_RLPD, AGENT_TD3);
  c.boot_proposal = 1;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "boot_proposal") != NULL);
  c = small_cfg(AGENT_IBRL, AGENT_SAC);
  c.init_temperature = 0.0f;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "init_temperature") != NULL);
  c = small_cfg(AGENT_IBRL, AGENT_TD3);
  c.tau = 0.0f;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "tau") != NULL);

  agent_method m;
  TH_CHECK_EQ_INT(agent_method_parse(&m, "rlpd"), IB_OK);
  TH_CHECK_EQ_INT(m, AGENT_RLPD);
  TH_CHECK_EQ_INT(agent_method_parse(&m, "dqn"), IB_ENOTFOUND);
  TH_CHECK(strstr(ib_errmsg(), "dqn") != NULL && strstr(ib_errmsg(), "ibrl") != NULL);
  agent_mode md;
  TH_CHECK_EQ_INT(agent_mode_parse(&md, "greedy"), IB_OK);
  TH_CHECK_EQ_INT(md, AGENT_MODE_EVAL_GREEDY);
  agent_select sl;
  TH_CHECK_EQ_INT(agent_select_parse(&sl, "hard"), IB_ENOTFOUND);

  /* IBRL without an IL policy cannot act; RLPD cannot take one; RFT needs a demo batch. */
  c = small_cfg(AGENT_IBRL, AGENT_TD3);
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
  float obs[NB * O] = {0}, act[NB * A];
  TH_CHECK_EQ_INT(agent_act(&a, act, NULL, obs, 1, AGENT_MODE_EXPLORE), IB_ESTATE);
  TH_CHECK(strstr(ib_errmsg(), "agent_il_set") != NULL);
  TH_CHECK_EQ_INT(agent_act(&a, act, NULL, obs, 1, AGENT_MODE_EVAL_RL), IB_OK);
  /* A mismatched IL policy is refused. */
  il_config ic = c.il;
  ic.obs_dim = O + 1;
  ic.act_dim = A;
  il_policy bad;
  TH_CHECK_EQ_INT(il_init(&bad, &ic), IB_OK);
  TH_CHECK_EQ_INT(agent_il_set(&a, &bad), IB_EMISMATCH);
  il_free(&bad);
  set_il(&a, 1);
  /* NaN reward: IB_ENONFINITE from the grads step, nothing applied by update. */
  data d;
  make_data(&d, 6, 0.97f);
  d.rew[0][3] = NAN;
  uint32_t crc = agent_arena_crc(&a, AGENT_NET_CRITIC);
  TH_CHECK_EQ_INT(agent_critic_update(&a, &d.b[0]), IB_ENONFINITE);
  TH_CHECK(strstr(ib_errmsg(), "critic") != NULL);
  TH_CHECK_EQ_INT(agent_arena_crc(&a, AGENT_NET_CRITIC), crc);
  agent_free(&a);

  c = small_cfg(AGENT_RLPD, AGENT_TD3);
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
  ic = a.cfg.il;
  ic.obs_dim = O;
  ic.act_dim = A;
  il_policy il;
  TH_CHECK_EQ_INT(il_init(&il, &ic), IB_OK);
  TH_CHECK_EQ_INT(agent_il_set(&a, &il), IB_ESTATE);
  il_free(&il);
  agent_free(&a);
  c = small_cfg(AGENT_RFT, AGENT_TD3);
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
  make_data(&d, 6, 0.97f);
  TH_CHECK_EQ_INT(agent_actor_update(&a, &d.b[0], NULL), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "demo") != NULL);
  TH_CHECK_EQ_INT(agent_actor_update(&a, &d.b[0], &d.b[1]), IB_OK);
  TH_CHECK(a.metrics.rft_ratio >= 0.0 && a.metrics.rft_ratio <= 1.0);
  /* BC pretraining of the RL actor reduces its MSE on demos. */
  TH_CHECK_EQ_INT(agent_actor_bc_step(&a, d.obs[1], d.act[1], NB), IB_OK);
  double l0 = a.metrics.pretrain_loss;
  for (int s = 0; s < 200; s++) TH_CHECK_EQ_INT(agent_actor_bc_step(&a, d.obs[1], d.act[1], NB), IB_OK);
  TH_CHECK_MSG(a.metrics.pretrain_loss < 0.5 * l0, "actor BC loss %g -> %g", l0, a.metrics.pretrain_loss);
  agent_actor_sync(&a);
  TH_CHECK(memcmp(a.actor.params, a.actor_target.params, a.actor.n_params * sizeof(float)) == 0);
  agent_free(&a);
}


/* SAC temperature: alpha falls when the policy's entropy is above the target and rises when it
 * is below (the sign of the temperature gradient). */
static void test_sac_temperature(void) {
  data d;
  make_data(&d, 8, 0.97f);
  for (int k = 0; k < 2; k++) {
    agent_config c = small_cfg(AGENT_RLPD, AGENT_SAC);
    c.target_entropy = k == 0 ? -100.0f : 100.0f;
    agent a;
    TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
    for (int s = 0; s < 20; s++) TH_CHECK_EQ_INT(agent_actor_update(&a, &d.b[0], NULL), IB_OK);
    if (k == 0) TH_CHECK_MSG(a.metrics.alpha < 0.999, "entropy %g above target -100: alpha %g should fall",
                             a.metrics.entropy, a.metrics.alpha);
    else TH_CHECK_MSG(a.metrics.alpha > 1.001, "entropy %g below target 100: alpha %g should rise",
                      a.metrics.entropy, a.metrics.alpha);
    agent_free(&a);
  }
}

/* The BC baseline acts with the IL policy in every mode. */
static void test_bc_method(void) {
  agent_config c = small_cfg(AGENT_BC, AGENT_TD3);
  c.actor_proposal = c.boot_proposal = 0;
  agent a;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
  set_il(&a, 12);
  data d;
  make_data(&d, 9, 0.97f);
  float x[NB * A], ref[NB * A];
  uint8_t who[NB];
  il_predict(&a.il, ref, d.obs[0], NB);
  const agent_mode modes[3] = {AGENT_MODE_EXPLORE, AGENT_MODE_EVAL_RL, AGENT_MODE_EVAL_IBRL};
  for (int m = 0; m < 3; m++) {
    TH_CHECK_EQ_INT(agent_act(&a, x, who, d.obs[0], NB, modes[m]), IB_OK);
    TH_CHECK(memcmp(x, ref, sizeof x) == 0);
    for (int i = 0; i < NB; i++) TH_CHECK_EQ_INT(who[i], 0);
  }
  agent_free(&a);
}


/* The apply steps: after the first critic update every parameter moved by Adam's first step
 * (-lr * g / (|g| + eps), since m_hat = g and v_hat = g^2), and the target is the EMA of the
 * UPDATED parameters (Adam before EMA); the actor update does the same for the actor target. */
static void test_apply_order(void) {
  agent_config c = small_cfg(AGENT_RLPD, AGENT_TD3);
  agent a;
  TH_CHECK_EQ_INT(agent_init(&a, &c), IB_OK);
  data d;
  make_data(&d, 10, 0.97f);
  for (int net = 0; net < 2; net++) {
    agent_arena on = agent_arena_get(&a, net ? AGENT_NET_ACTOR : AGENT_NET_CRITIC);
    agent_arena tg = agent_arena_get(&a, net ? AGENT_NET_ACTOR_TARGET : AGENT_NET_CRITIC_TARGET);
    size_t n = on.n;
    float *p0 = malloc(n * sizeof(float)), *t0 = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    memcpy(p0, on.params, n * sizeof(float));
    memcpy(t0, tg.params, n * sizeof(float));
    int rc = net ? agent_actor_grads(&a, &d.b[0], NULL) : agent_critic_grads(&a, &d.b[0]);
    TH_CHECK_EQ_INT(rc, IB_OK);
    memcpy(g, on.grads, n * sizeof(float));
    if (net) agent_actor_apply(&a);
    else agent_critic_apply(&a);
    const double lr = net ? c.lr_actor : c.lr_critic;
    int bad_adam = 0, bad_ema = 0;
    for (size_t i = 0; i < n; i++) {
      double step = -lr * g[i] / (fabs(g[i]) + 1e-8);
      if (fabs((on.params[i] - p0[i]) - step) > 1e-6 + 1e-3 * fabs(step)) bad_adam++;
      double ema = (1.0 - c.tau) * t0[i] + c.tau * on.params[i];
      if (fabs(tg.params[i] - ema) > 1e-6 * (1.0 + fabs(ema))) bad_ema++;
    }
    TH_CHECK_MSG(bad_adam == 0, "net %d: %d of %zu params did not take Adam's first step", net, bad_adam, n);
    TH_CHECK_MSG(bad_ema == 0, "net %d: %d of %zu target params are not the EMA of the updated params",
                 net, bad_ema, n);
    free(p0);
    free(t0);
    free(g);
  }
  TH_CHECK_EQ_INT(a.critic.adam_t, 1);
  TH_CHECK_EQ_INT(a.actor.adam_t, 1);
  agent_free(&a);
}

static const th_case cases[] = {
    {"determinism (ibrl td3, rlpd sac, rft td3)", test_determinism},
    {"frozen IL policy cannot move", test_frozen_il},
    {"checkpoint resume and bad files", test_checkpoint},
    {"critic regression and actor ascent", test_critic_regression},
    {"acting weights blob", test_acting_blob},
    {"sac temperature direction", test_sac_temperature},
    {"bc baseline acts with the IL policy", test_bc_method},
    {"apply: Adam then target EMA", test_apply_order},
    {"errors", test_errors},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
