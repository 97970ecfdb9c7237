/* test_chunk.c: frame stacking and action-chunk arithmetic (actor/env/chunk.h).
 *
 * A scripted "counter" task makes every number predictable: its observation is (t, 10 t + 1)
 * after t steps, its reward is 1 exactly on the success step S (and 0 elsewhere), and it records
 * every action it executed, so the tests can check which chunk rows ran. Expected values are
 * computed independently here (double-precision powers of gamma), not copied from the code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "ib.h"
#include "th.h"

/* ---- the counter task ---- */

typedef struct counter {
  env e;
  int t, success_at;
  float executed[64][2];
  int n_exec;
} counter;

static void counter_obs(const counter *c, float *obs) {
  obs[0] = (float)c->t;
  obs[1] = 10.0f * (float)c->t + 1.0f;
}

static int counter_reset(env *e, uint64_t seed, float *obs) {
  counter *c = (counter *)e;
  (void)seed;
  c->t = 0;
  c->n_exec = 0;
  counter_obs(c, obs);
  return IB_OK;
}

static int counter_step(env *e, const float *a, float *obs, env_info *info) {
  counter *c = (counter *)e;
  if (c->n_exec < 64) {
    c->executed[c->n_exec][0] = a[0];
    c->executed[c->n_exec][1] = a[1];
    c->n_exec++;
  }
  c->t++;
  info->success = c->t >= c->success_at;
  info->reward = c->t == c->success_at ? 1.0f : 0.0f;
  counter_obs(c, obs);
  return IB_OK;
}

static void counter_destroy(env *e) { free(e); }

static const env_ops counter_ops = {counter_reset, counter_step, NULL, counter_destroy};

static counter *counter_new(int success_at, int horizon) {
  counter *c = ib_xcalloc(1, sizeof *c);
  c->e.ops = &counter_ops;
  snprintf(c->e.name, sizeof c->e.name, "counter");
  c->e.obs_dim = 2;
  c->e.act_dim = 2;
  c->e.horizon = horizon;
  c->success_at = success_at;
  return c;
}

/* ---- frame stacking ---- */

static void test_stack_newest_first_zero_padded(void) {
  stack_frames s;
  stack_init(&s, 2, 3);
  float f0[2] = {1, 2}, f1[2] = {3, 4}, f2[2] = {5, 6}, f3[2] = {7, 8}, out[6];
  stack_reset(&s, f0);
  stack_get(out, &s);
  const float e0[6] = {1, 2, 0, 0, 0, 0};
  th_allclose("after reset", out, e0, 6, 0, 0);
  stack_push(&s, f1);
  stack_get(out, &s);
  const float e1[6] = {3, 4, 1, 2, 0, 0};
  th_allclose("after 1 push", out, e1, 6, 0, 0);
  stack_push(&s, f2);
  stack_push(&s, f3);
  stack_get(out, &s);
  const float e3[6] = {7, 8, 5, 6, 3, 4};
  th_allclose("after 3 pushes (oldest dropped)", out, e3, 6, 0, 0);
  /* A new episode must not leak old frames. */
  stack_reset(&s, f0);
  stack_get(out, &s);
  th_allclose("after second reset", out, e0, 6, 0, 0);
  stack_free(&s);
  stack_free(&s); /* a freed (zeroed) stack may be freed again */
}

static void test_stack_single_frame(void) {
  stack_frames s;
  stack_init(&s, 3, 1);
  float a[3] = {1, 2, 3}, b[3] = {4, 5, 6}, out[3];
  stack_reset(&s, a);
  stack_push(&s, b);
  stack_get(out, &s);
  th_allclose("n_stack 1 is the newest frame", out, b, 3, 0, 0);
  stack_free(&s);
}

/* ---- chunks ---- */

static void fill_chunk(float *a, int k) {
  for (int j = 0; j < k; j++) {
    a[2 * j] = 0.1f * (float)(j + 1);
    a[2 * j + 1] = -0.1f * (float)(j + 1);
  }
}

static void test_chunk_reward_and_discount(void) {
  const float gamma = 0.9f;
  counter *c = counter_new(6, 100); /* success on env step 6 */
  chunk_config cfg = chunk_config_default();
  cfg.k = 4;
  cfg.n_stack = 2;
  cfg.gamma = gamma;
  chunk_runner r;
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_OK);
  TH_CHECK_EQ_INT(chunk_obs_dim(&r), 4);
  TH_CHECK_EQ_INT(chunk_act_dim(&r), 8);
  float obs[4], next[4], act[8];
  fill_chunk(act, 4);
  TH_CHECK_EQ_INT(chunk_reset(&r, 1, obs), IB_OK);
  const float o0[4] = {0, 1, 0, 0};
  th_allclose("first obs is zero-padded", obs, o0, 4, 0, 0);

  /* Chunk 1: steps 1..4, no reward, full chunk: discount gamma^4. */
  chunk_result res;
  TH_CHECK_EQ_INT(chunk_step(&r, &res, next, act), IB_OK);
  TH_CHECK_EQ_INT(res.steps, 4);
  TH_CHECK_NEAR(res.reward, 0.0, 0);
  TH_CHECK_NEAR(res.discount, pow(gamma, 4), 1e-6);
  TH_CHECK(!res.done && !res.success && !res.timeout);
  const float n1[4] = {4, 41, 3, 31};
  th_allclose("next obs after 4 steps (newest first)", next, n1, 4, 0, 0);
  TH_CHECK_EQ_INT(c->n_exec, 4);
  TH_CHECK_NEAR(c->executed[3][0], 0.4f, 0);

  /* Chunk 2: steps 5, 6 -> success at the 2nd step of the chunk; reward gamma^1, terminal. */
  TH_CHECK_EQ_INT(chunk_step(&r, &res, next, act), IB_OK);
  TH_CHECK_EQ_INT(res.steps, 2);
  TH_CHECK_NEAR(res.reward, gamma, 1e-6);
  TH_CHECK_NEAR(res.discount, 0.0, 0);
  TH_CHECK(res.done && res.success && !res.timeout);
  TH_CHECK_EQ_INT(c->n_exec, 6); /* the last two rows of the chunk never ran */
  TH_CHECK_NEAR(c->executed[5][0], 0.2f, 0);
  const float n2[4] = {6, 61, 5, 51};
  th_allclose("next obs at success", next, n2, 4, 0, 0);
  TH_CHECK(r.success);
  TH_CHECK_NEAR(r.episode_return, 1.0, 0);

  /* Stepping a finished episode is a state error, not a crash. */
  TH_CHECK_EQ_INT(chunk_step(&r, &res, next, act), IB_ESTATE);
  TH_CHECK_MSG(strstr(ib_errmsg(), "chunk_reset") != NULL, "message: %s", ib_errmsg());
  chunk_runner_free(&r);
  env_destroy(&c->e);
}

static void test_chunk_time_limit(void) {
  const float gamma = 0.5f;
  counter *c = counter_new(1000, 100); /* never succeeds within the horizon */
  chunk_config cfg = chunk_config_default();
  cfg.k = 3;
  cfg.gamma = gamma;
  cfg.horizon = 5; /* overrides the env's 100 */
  cfg.timeout_is_terminal = 0;
  chunk_runner r;
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_OK);
  float obs[2], next[2], act[6];
  fill_chunk(act, 3);
  chunk_result res;
  chunk_reset(&r, 0, obs);
  chunk_step(&r, &res, next, act);
  TH_CHECK_EQ_INT(res.steps, 3);
  TH_CHECK(!res.done);
  chunk_step(&r, &res, next, act); /* steps 4, 5: the limit cuts the chunk after 2 steps */
  TH_CHECK_EQ_INT(res.steps, 2);
  TH_CHECK(res.done && res.timeout && !res.success);
  TH_CHECK_NEAR(res.discount, 0.25, 1e-7); /* gamma^2: bootstrapped when timeouts are not terminal */
  TH_CHECK_EQ_INT(r.t, 5);
  /* The IBRL default treats the time limit as terminal. */
  cfg.timeout_is_terminal = 1;
  chunk_runner_free(&r);
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_OK);
  chunk_reset(&r, 0, obs);
  chunk_step(&r, &res, next, act);
  chunk_step(&r, &res, next, act);
  TH_CHECK(res.timeout);
  TH_CHECK_NEAR(res.discount, 0.0, 0);
  chunk_runner_free(&r);
  env_destroy(&c->e);
}

static void test_chunk_k1_is_plain_loop(void) {
  const float gamma = 0.99f;
  counter *c = counter_new(3, 100);
  chunk_config cfg = chunk_config_default();
  chunk_runner r;
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_OK);
  float obs[2], next[2], act[2] = {0.5f, 0.5f};
  chunk_result res;
  chunk_reset(&r, 0, obs);
  for (int i = 1; i <= 3; i++) {
    TH_CHECK_EQ_INT(chunk_step(&r, &res, next, act), IB_OK);
    TH_CHECK_EQ_INT(res.steps, 1);
    TH_CHECK_NEAR(res.reward, i == 3 ? 1.0 : 0.0, 0);
    TH_CHECK_NEAR(res.discount, i == 3 ? 0.0 : gamma, 1e-7);
    TH_CHECK_EQ_INT(res.done, i == 3);
  }
  chunk_runner_free(&r);
  env_destroy(&c->e);
}

static void test_chunk_no_end_on_success(void) {
  counter *c = counter_new(2, 100);
  chunk_config cfg = chunk_config_default();
  cfg.k = 4;
  cfg.gamma = 0.5f;
  cfg.end_on_success = 0;
  chunk_runner r;
  chunk_runner_init(&r, &c->e, &cfg);
  float obs[2], next[2], act[8];
  fill_chunk(act, 4);
  chunk_result res;
  chunk_reset(&r, 0, obs);
  chunk_step(&r, &res, next, act);
  TH_CHECK_EQ_INT(res.steps, 4); /* success does not stop the chunk */
  TH_CHECK(res.success && !res.done);
  TH_CHECK_NEAR(res.reward, 0.5, 0);      /* reward 1 on step 2 -> gamma^1 */
  TH_CHECK_NEAR(res.discount, 0.0625, 0); /* gamma^4 */
  chunk_runner_free(&r);
  env_destroy(&c->e);
}

static void test_chunk_bad_config(void) {
  counter *c = counter_new(2, 100);
  chunk_runner r;
  chunk_config cfg = chunk_config_default();
  cfg.k = 0;
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "chunk size") != NULL, "message: %s", ib_errmsg());
  cfg = chunk_config_default();
  cfg.gamma = 1.5f;
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_EINVAL);
  cfg.gamma = NAN;
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_EINVAL);
  cfg = chunk_config_default();
  cfg.n_stack = 0;
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_EINVAL);
  cfg = chunk_config_default();
  cfg.horizon = -1;
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_EINVAL);
  chunk_runner_free(&r); /* zeroed by the failed init: safe */
  /* Stepping before any reset. */
  cfg = chunk_config_default();
  TH_CHECK_EQ_INT(chunk_runner_init(&r, &c->e, &cfg), IB_OK);
  float next[2], act[2] = {0, 0};
  chunk_result res;
  TH_CHECK_EQ_INT(chunk_step(&r, &res, next, act), IB_ESTATE);
  /* A NaN action is refused by the env layer and ends the episode. */
  float obs[2], bad[2] = {NAN, 0};
  chunk_reset(&r, 0, obs);
  TH_CHECK_EQ_INT(chunk_step(&r, &res, next, bad), IB_ENONFINITE);
  TH_CHECK_EQ_INT(c->n_exec, 0);
  chunk_runner_free(&r);
  env_destroy(&c->e);
}

/* IBRL's n-step rule by hand: k = 1, n = 3, gamma 0.5, success (terminal) on step 5 (T = 5).
 * R_t = sum_{j<3} gamma^j r_{t+j} (truncated), discount gamma^3 if t < T - 3 else 0. */
static void test_nstep_ibrl_rule(void) {
  counter *c = counter_new(5, 100);
  chunk_config cfg = chunk_config_default();
  cfg.gamma = 0.5f;
  chunk_runner r;
  chunk_runner_init(&r, &c->e, &cfg);
  chunk_nstep nb;
  chunk_nstep_init(&nb, 3, 2, 2);
  float obs[2], next[2], act[2] = {0.25f, -0.25f}, o_obs[2], o_act[2], o_next[2];
  chunk_nstep_out out = {.obs = o_obs, .action = o_act, .next_obs = o_next};
  const float want_r[5] = {0.0f, 0.0f, 0.25f, 0.5f, 1.0f};
  const float want_d[5] = {0.125f, 0.125f, 0.0f, 0.0f, 0.0f};
  const int want_used[5] = {3, 3, 3, 2, 1};
  int emitted = 0;
  chunk_result res;
  chunk_reset(&r, 0, obs);
  while (!r.done) {
    act[0] = 0.1f * (float)r.t; /* tag each action with its step */
    chunk_step(&r, &res, next, act);
    int got = chunk_nstep_push(&nb, &out, obs, act, res.reward, res.discount, next);
    while (got) {
      int t = emitted++;
      TH_CHECK_MSG(t < 5, "too many transitions");
      if (t >= 5) break;
      TH_CHECK_NEAR(out.reward, want_r[t], 0);
      TH_CHECK_NEAR(out.discount, want_d[t], 0);
      TH_CHECK_EQ_INT(out.n_used, want_used[t]);
      TH_CHECK_NEAR(out.obs[0], (float)t, 0);             /* obs of step t */
      TH_CHECK_NEAR(out.action[0], 0.1f * (float)t, 0);   /* its action */
      TH_CHECK_NEAR(out.next_obs[0], (float)(t + out.n_used), 0); /* obs n_used steps later */
      got = r.done ? chunk_nstep_flush(&nb, &out) : 0;
    }
    memcpy(obs, next, sizeof obs);
  }
  TH_CHECK_EQ_INT(emitted, 5);
  TH_CHECK_EQ_INT(chunk_nstep_flush(&nb, &out), 0);
  chunk_nstep_free(&nb);
  chunk_runner_free(&r);
  env_destroy(&c->e);
}

/* A time limit that is not terminal keeps bootstrapping from the last next_obs. */
static void test_nstep_truncated_bootstrap(void) {
  chunk_nstep nb;
  chunk_nstep_init(&nb, 3, 1, 1);
  float o[1], a[1], no[1], oo[1], oa[1], onx[1];
  chunk_nstep_out out = {.obs = oo, .action = oa, .next_obs = onx};
  /* Two transitions with discount 0.5 each, then the episode is cut (flush). */
  o[0] = 0; a[0] = 0; no[0] = 1;
  TH_CHECK_EQ_INT(chunk_nstep_push(&nb, &out, o, a, 1.0f, 0.5f, no), 0);
  o[0] = 1; no[0] = 2;
  TH_CHECK_EQ_INT(chunk_nstep_push(&nb, &out, o, a, 2.0f, 0.5f, no), 0);
  TH_CHECK_EQ_INT(chunk_nstep_flush(&nb, &out), 1);
  TH_CHECK_NEAR(out.reward, 2.0, 0);   /* 1 + 0.5 * 2 */
  TH_CHECK_NEAR(out.discount, 0.25, 0); /* 0.5 * 0.5: bootstrap from obs 2 */
  TH_CHECK_NEAR(out.next_obs[0], 2.0f, 0);
  TH_CHECK_EQ_INT(chunk_nstep_flush(&nb, &out), 1);
  TH_CHECK_NEAR(out.reward, 2.0, 0);
  TH_CHECK_NEAR(out.discount, 0.5, 0);
  TH_CHECK_EQ_INT(chunk_nstep_flush(&nb, &out), 0);
  /* n = 1 passes transitions through unchanged. */
  chunk_nstep_free(&nb);
  chunk_nstep_init(&nb, 1, 1, 1);
  TH_CHECK_EQ_INT(chunk_nstep_push(&nb, &out, o, a, 0.75f, 0.9f, no), 1);
  TH_CHECK_NEAR(out.reward, 0.75, 0);
  TH_CHECK_NEAR(out.discount, 0.9f, 0);
  chunk_nstep_free(&nb);
  chunk_nstep_free(&nb);
}

static const th_case cases[] = {
    {"stack newest first, zero padded", test_stack_newest_first_zero_padded},
    {"stack of one frame", test_stack_single_frame},
    {"chunk reward, discount, early stop on success", test_chunk_reward_and_discount},
    {"chunk cut by the time limit", test_chunk_time_limit},
    {"k=1 is a plain episode loop", test_chunk_k1_is_plain_loop},
    {"chunk without end-on-success", test_chunk_no_end_on_success},
    {"bad configs and states", test_chunk_bad_config},
    {"n-step: IBRL's rule", test_nstep_ibrl_rule},
    {"n-step: truncated episodes bootstrap", test_nstep_truncated_bootstrap},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
