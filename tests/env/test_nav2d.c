/* test_nav2d.c: the task registry and the nav2d task (actor/env/env.h, nav2d.h).
 *
 * The golden episode pins the dynamics, the LiDAR and the seeded layout: a fixed seed and a fixed
 * pseudo-random action sequence give an observation trajectory whose CRC-32 is committed below.
 * Any change to the physics, the raycasts, the observation layout or the layout sampler changes
 * the CRC and fails the test. If such a change is intended, regenerate the value with
 *     build/tests/test_nav2d golden      (the failure message prints the new CRC)
 * and commit it together with the change, saying why in the commit message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "env.h"
#include "ib.h"
#include "nav2d.h"
#include "th.h"

/* CRC-32 of the golden trajectories: trajectory_crc(env, seed 20261121, 200 steps), generated
 * 2026-11-21 on x86-64 (gcc, -O2, glibc libm). */
#define GOLDEN_NAV2D_CRC 0x3da649aau
#define GOLDEN_NAV2D_HARD_CRC 0x909c07e2u

static env *make(const char *name) {
  env *e = NULL;
  int rc = env_create(name, NULL, &e);
  TH_CHECK_MSG(rc == IB_OK, "env_create(%s): %s", name, ib_errmsg());
  return e;
}

/* ---- registry ---- */

static void test_registry(void) {
  const char *const *names = env_names();
  const char *want[] = {"nav2d", "nav2d-hard", "metaworld/assembly", "metaworld/boxclose", "metaworld/coffeepush",
                        "metaworld/stickpull"};
  for (size_t i = 0; i < IB_ARRAY_LEN(want); i++) {
    int found = 0;
    for (const char *const *n = names; *n; n++) found |= !strcmp(*n, want[i]);
    TH_CHECK_MSG(found, "registry lacks %s", want[i]);
  }
  env *e = NULL;
  TH_CHECK_EQ_INT(env_create("nav3d", NULL, &e), IB_ENOTFOUND);
  TH_CHECK(e == NULL);
  const char *msg = ib_errmsg();
  TH_CHECK_MSG(strstr(msg, "nav3d") && strstr(msg, "nav2d-hard") && strstr(msg, "metaworld/coffeepush"),
               "the unknown-name message must name it and list the known names: %s", msg);
  TH_CHECK_EQ_INT(env_create("metaworld/pickplace", NULL, &e), IB_ENOTFOUND);
  env_config bad = {.horizon = -3};
  TH_CHECK_EQ_INT(env_create("nav2d", &bad, &e), IB_EINVAL);
  env_destroy(NULL);
}

static void test_shapes_and_ranges(void) {
  env *e = make("nav2d");
  if (!e) return;
  TH_CHECK_EQ_INT(e->obs_dim, 37);
  TH_CHECK_EQ_INT(e->act_dim, 2);
  TH_CHECK_EQ_INT(e->horizon, 200);
  TH_CHECK_EQ_INT(e->n_obs_keys, 2);
  TH_CHECK(!strcmp(e->obs_keys[0].name, "state") && e->obs_keys[0].dim == 5);
  TH_CHECK(!strcmp(e->obs_keys[1].name, "lidar") && e->obs_keys[1].dim == 32);
  float obs[37];
  rng r;
  rng_seed(&r, 5, "test", 0, "actions");
  int bad = 0;
  for (int ep = 0; ep < 20; ep++) {
    TH_CHECK_EQ_INT(env_reset(e, (uint64_t)ep, obs), IB_OK);
    for (int t = 0; t < 100; t++) {
      float a[2] = {2.0f * rng_uniform(&r) - 1.0f, 2.0f * rng_uniform(&r) - 1.0f};
      env_info info;
      env_step(e, a, obs, &info);
      for (int j = 5; j < 37; j++) bad += !(obs[j] >= 0.0f && obs[j] <= 1.0f);
      bad += ib_first_nonfinite(obs, 37) >= 0;
      nav2d_pose p;
      nav2d_get_pose(&p, e);
      bad += !(p.x >= 0.2f && p.x <= 9.8f && p.y >= 0.2f && p.y <= 9.8f); /* never through the arena wall */
    }
  }
  TH_CHECK_EQ_INT(bad, 0);
  env_config cfg = {.horizon = 50};
  env *e2 = NULL;
  TH_CHECK_EQ_INT(env_create("nav2d", &cfg, &e2), IB_OK);
  if (e2) TH_CHECK_EQ_INT(e2->horizon, 50);
  env_destroy(e2);
  env_destroy(e);
}

/* Runs `steps` steps from reset(seed) with actions from a fixed stream; returns the CRC-32 of
 * every observation (reset included) and of the rewards. */
static uint32_t trajectory_crc(env *e, uint64_t seed, int steps) {
  float obs[64];
  rng r;
  rng_seed(&r, 42, "test", 0, "golden-actions");
  IB_CHECK(e->obs_dim <= 64);
  if (env_reset(e, seed, obs) < 0) return 0;
  uint32_t crc = ib_crc32(0, obs, (size_t)e->obs_dim * sizeof(float));
  for (int t = 0; t < steps; t++) {
    /* A drift toward forward motion so the robot travels and meets obstacles. */
    float a[2] = {1.5f * rng_uniform(&r) - 0.3f, 2.2f * rng_uniform(&r) - 1.1f}; /* some outside [-1, 1] */
    env_info info;
    env_step(e, a, obs, &info);
    crc = ib_crc32(crc, obs, (size_t)e->obs_dim * sizeof(float));
    crc = ib_crc32(crc, &info.reward, sizeof info.reward);
  }
  return crc;
}

static void test_seeded_determinism(void) {
  env *a = make("nav2d"), *b = make("nav2d");
  if (!a || !b) return;
  uint32_t c1 = trajectory_crc(a, 7, 200);
  /* Interleave other episodes on b first: a reset must not depend on history. */
  trajectory_crc(b, 99, 37);
  trajectory_crc(b, 3, 11);
  uint32_t c2 = trajectory_crc(b, 7, 200);
  TH_CHECK_MSG(c1 == c2, "same seed, same actions: %08x vs %08x", c1, c2);
  uint32_t c3 = trajectory_crc(a, 8, 200);
  TH_CHECK_MSG(c1 != c3, "different seeds gave the same trajectory %08x", c1);
  /* First observations of many seeds are pairwise different (layouts really vary). */
  float o1[37], o2[37];
  env_reset(a, 1000, o1);
  env_reset(a, 1001, o2);
  TH_CHECK(memcmp(o1, o2, sizeof o1) != 0);
  env_destroy(a);
  env_destroy(b);
}

static void test_golden_episode(void) {
  struct {
    const char *name;
    uint32_t want;
  } g[] = {{"nav2d", GOLDEN_NAV2D_CRC}, {"nav2d-hard", GOLDEN_NAV2D_HARD_CRC}};
  for (size_t i = 0; i < IB_ARRAY_LEN(g); i++) {
    env *e = make(g[i].name);
    if (!e) continue;
    uint32_t got = trajectory_crc(e, 20261121, 200);
    TH_CHECK_MSG(got == g[i].want,
                 "%s golden trajectory CRC is 0x%08xu, committed 0x%08xu (HINT: the dynamics, LiDAR, observation or "
                 "layout sampler changed; if intended, commit the new value in tests/env/test_nav2d.c)",
                 g[i].name, got, g[i].want);
    env_destroy(e);
  }
}

static void test_action_clipping_and_nan(void) {
  env *a = make("nav2d"), *b = make("nav2d");
  if (!a || !b) return;
  float oa[37], ob[37];
  env_reset(a, 11, oa);
  env_reset(b, 11, ob);
  env_info ia, ib;
  for (int t = 0; t < 30; t++) {
    float big[2] = {7.0f, -3.0f}, unit[2] = {1.0f, -1.0f};
    env_step(a, big, oa, &ia);
    env_step(b, unit, ob, &ib);
  }
  TH_CHECK_MSG(memcmp(oa, ob, sizeof oa) == 0, "actions outside [-1, 1] must act as clipped");
  float nan_a[2] = {NAN, 0.0f};
  TH_CHECK_EQ_INT(env_step(a, nan_a, oa, &ia), IB_ENONFINITE);
  TH_CHECK_MSG(strstr(ib_errmsg(), "action[0]") != NULL, "message: %s", ib_errmsg());
  float inf_a[2] = {0.0f, INFINITY};
  TH_CHECK_EQ_INT(env_step(a, inf_a, oa, &ia), IB_ENONFINITE);
  rng r;
  rng_seed(&r, 1, "test", 0, "noise");
  float act[2];
  TH_CHECK_EQ_INT(env_expert(a, &r, -0.1f, act), IB_EINVAL);
  TH_CHECK_EQ_INT(env_expert(a, &r, NAN, act), IB_EINVAL);
  env_destroy(a);
  env_destroy(b);
}

static void test_collisions_block_motion(void) {
  /* Drive straight for a long time from many starts: the robot must never enter an obstacle
   * (checked through the LiDAR: no range below the robot radius) and must stay in the arena. */
  env *e = make("nav2d-hard");
  if (!e) return;
  float obs[37];
  int bad = 0;
  for (int ep = 0; ep < 30; ep++) {
    env_reset(e, (uint64_t)(500 + ep), obs);
    for (int t = 0; t < 150; t++) {
      float a[2] = {1.0f, t % 40 < 5 ? 0.7f : 0.0f};
      env_info info;
      env_step(e, a, obs, &info);
      for (int j = 5; j < 37; j++) bad += obs[j] * 5.0f < 0.2f - 1e-4f; /* a range shorter than the radius */
    }
  }
  TH_CHECK_MSG(bad == 0, "%d LiDAR ranges shorter than the robot radius: the robot entered an obstacle", bad);
  env_destroy(e);
}

static void test_every_reset_has_a_path(void) {
  const char *names[] = {"nav2d", "nav2d-hard"};
  for (int v = 0; v < 2; v++) {
    env *e = make(names[v]);
    if (!e) continue;
    float obs[37];
    int no_path = 0, close = 0;
    for (int s = 0; s < 300; s++) {
      TH_CHECK_EQ_INT(env_reset(e, (uint64_t)s, obs), IB_OK);
      no_path += !nav2d_has_path(e);
      nav2d_pose p;
      nav2d_get_pose(&p, e);
      close += hypotf(p.goal_x - p.x, p.goal_y - p.y) < 5.0f;
    }
    TH_CHECK_MSG(no_path == 0, "%s: %d of 300 resets have no path", names[v], no_path);
    TH_CHECK_MSG(close == 0, "%s: %d of 300 resets put the goal closer than 5 m", names[v], close);
    env_destroy(e);
  }
}

/* The expert, run through the chunk runner (end on success, the task's horizon). */
static double expert_rate(const char *name, float noise, int episodes, double *mean_len) {
  env *e = make(name);
  *mean_len = 0.0;
  if (!e) return 0.0;
  chunk_config cfg = chunk_config_default();
  chunk_runner run;
  IB_CHECK(chunk_runner_init(&run, e, &cfg) == IB_OK);
  rng r;
  rng_seed(&r, 3, "test", 0, "expert-noise");
  float obs[37], act[2];
  chunk_result res;
  int ok = 0;
  long len = 0;
  for (int ep = 0; ep < episodes; ep++) {
    chunk_reset(&run, (uint64_t)(10000 + ep), obs);
    while (!run.done) {
      env_expert(e, &r, noise, act);
      chunk_step(&run, &res, obs, act);
    }
    if (run.success) {
      ok++;
      len += run.t;
    }
  }
  chunk_runner_free(&run);
  env_destroy(e);
  *mean_len = ok ? (double)len / ok : 0.0;
  return (double)ok / episodes;
}

static void test_expert_success(void) {
  const char *names[] = {"nav2d", "nav2d-hard"};
  const float noises[] = {0.0f, 0.3f};
  for (int v = 0; v < 2; v++)
    for (int k = 0; k < 2; k++) {
      double len, rate = expert_rate(names[v], noises[k], 100, &len);
      printf("    %s expert at noise %.1f: success %.2f, mean length %.1f steps\n", names[v], (double)noises[k], rate, len);
      TH_CHECK_MSG(rate >= 0.9, "%s expert success %.2f < 0.9 at noise %.1f", names[v], rate, (double)noises[k]);
    }
  /* The reward is sparse: a random policy essentially never succeeds. */
  env *e = make("nav2d");
  if (!e) return;
  rng r;
  rng_seed(&r, 9, "test", 0, "random");
  float obs[37];
  int succ = 0;
  for (int ep = 0; ep < 100; ep++) {
    env_reset(e, (uint64_t)ep, obs);
    for (int t = 0; t < 200; t++) {
      float a[2] = {2.0f * rng_uniform(&r) - 1.0f, 2.0f * rng_uniform(&r) - 1.0f};
      env_info info;
      env_step(e, a, obs, &info);
      if (info.success) {
        succ++;
        break;
      }
    }
  }
  TH_CHECK_MSG(succ <= 5, "random policy succeeded %d/100 times: the task is too easy", succ);
  env_destroy(e);
}

static void test_bad_params(void) {
  env *e = NULL;
  nav2d_params p = {.n_discs = 8, .n_walls = 0, .n_rays = 2, .horizon = 200};
  TH_CHECK_EQ_INT(nav2d_create("x", &p, NULL, &e), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "n_rays") != NULL, "message: %s", ib_errmsg());
  p.n_rays = 32;
  p.n_discs = 100;
  TH_CHECK_EQ_INT(nav2d_create("x", &p, NULL, &e), IB_EINVAL);
  TH_CHECK_EQ_INT(nav2d_variant(&p, "nav2d-extreme"), IB_ENOTFOUND);
  /* A custom variant with more rays has a matching observation size. */
  p = (nav2d_params){.n_discs = 4, .n_walls = 2, .n_rays = 64, .horizon = 100};
  TH_CHECK_EQ_INT(nav2d_create("nav2d-custom", &p, NULL, &e), IB_OK);
  if (e) {
    TH_CHECK_EQ_INT(e->obs_dim, 69);
    float obs[69];
    TH_CHECK_EQ_INT(env_reset(e, 1, obs), IB_OK);
  }
  env_destroy(e);
}

static const th_case cases[] = {
    {"registry lists tasks and rejects unknown names", test_registry},
    {"shapes, ranges, arena bounds", test_shapes_and_ranges},
    {"seeded determinism", test_seeded_determinism},
    {"golden episode CRC", test_golden_episode},
    {"action clipping, NaN actions, bad noise", test_action_clipping_and_nan},
    {"collisions block motion", test_collisions_block_motion},
    {"every reset has a path", test_every_reset_has_a_path},
    {"expert success rates, sparse reward", test_expert_success},
    {"bad parameters", test_bad_params},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
