/* test_mw.c: the Meta-World tasks (actor/env/env_mw.c, mw_tasks.c): observation layout, seeded
 * determinism, action clipping, error paths and the scripted experts' success rates.
 *
 * Cases that need the model files skip (with how to set IBRL_METAWORLD_ASSETS) when the asset
 * folder is absent; the error-path cases always run. Expected figures (measured on the dev VM,
 * MuJoCo 2.2.2, noise 0): over seeds 0..19 the experts succeed 20/19/20/19 times (Assembly,
 * BoxClose, CoffeePush, StickPull) within the 100-step horizon; the test requires >= 17/20. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env.h"
#include "env_mw.h"
#include "ib.h"
#include "rng.h"
#include "th.h"

#define OBS 39
#define ACT 4
#define EPISODES 20
#define MIN_SUCCESS_RATE 0.85

static const char *const tasks[] = {"assembly", "boxclose", "coffeepush", "stickpull"};

/* Returns 1 if the assets are there; otherwise marks the case skipped with the fix. */
static int need_assets(void) {
  if (env_mw_assets_present(NULL)) return 1;
  char why[1024];
  snprintf(why, sizeof why,
           "Meta-World assets not found at '%s'; set IBRL_METAWORLD_ASSETS to the folder that holds "
           "sawyer_xyz/ (e.g. shared/assets/metaworld-v2) to run this case",
           env_mw_assets_dir(NULL));
  th_skip(why);
  return 0;
}

static env *make(const char *task) {
  env *e = NULL;
  int rc = env_mw_create(task, NULL, &e);
  TH_CHECK_MSG(rc == IB_OK, "env_mw_create(%s): %s", task, ib_errmsg());
  return rc == IB_OK ? e : NULL;
}

/* ---- interface and layout ---- */

static void test_shapes_and_keys(void) {
  if (!need_assets()) return;
  for (size_t k = 0; k < IB_ARRAY_LEN(tasks); k++) {
    env *e = make(tasks[k]);
    if (!e) continue;
    TH_CHECK_EQ_INT(e->obs_dim, OBS);
    TH_CHECK_EQ_INT(e->act_dim, ACT);
    TH_CHECK_EQ_INT(e->horizon, 100);
    char want[64];
    snprintf(want, sizeof want, "metaworld/%s", tasks[k]);
    TH_CHECK_MSG(strcmp(e->name, want) == 0, "name %s, want %s", e->name, want);
    int sum = 0;
    for (int i = 0; i < e->n_obs_keys; i++) sum += e->obs_keys[i].dim;
    TH_CHECK_EQ_INT(sum, OBS);
    TH_CHECK(e->n_obs_keys == 5 && strcmp(e->obs_keys[0].name, "hand_pos") == 0 &&
             strcmp(e->obs_keys[4].name, "goal") == 0 && e->obs_keys[4].dim == 3);
    env_destroy(e);
  }
  /* A horizon setting overrides the default; a negative one is refused. */
  env_config cfg = {0};
  cfg.horizon = 250;
  env *e = NULL;
  TH_CHECK_EQ_INT(env_mw_create("coffeepush", &cfg, &e), IB_OK);
  if (e) TH_CHECK_EQ_INT(e->horizon, 250);
  env_destroy(e);
  cfg.horizon = -1;
  e = NULL;
  TH_CHECK_EQ_INT(env_mw_create("coffeepush", &cfg, &e), IB_EINVAL);
  TH_CHECK(e == NULL);
}

/* The reset places the hand where Meta-World holds it (this fails without the weld eq_data fix:
 * the hand then stays ~1 m from the mocap), the goal in the task's range, and unit quaternions
 * in the object slots. */
static void test_reset_layout(void) {
  if (!need_assets()) return;
  static const double hand_init[4][3] = {{0, 0.6, 0.2}, {0, 0.6, 0.2}, {0, 0.4, 0.2}, {0, 0.6, 0.2}};
  static const double goal_lo[4][3] = {{-0.1, 0.75, 0.1}, {-0.1, 0.7, 0.133}, {-0.05, 0.7, -0.001}, {0.35, 0.45, 0.02}};
  static const double quat_rest[4][4] = {
      {M_SQRT1_2, 0, 0, M_SQRT1_2}, {M_SQRT1_2, 0, 0, M_SQRT1_2}, {0, 0, M_SQRT1_2, M_SQRT1_2}, {0, 0, 0, 1}};
  static const double goal_hi[4][3] = {{0.1, 0.85, 0.1}, {0.1, 0.8, 0.133}, {0.05, 0.75, 0.001}, {0.45, 0.55, 0.02}};
  for (size_t k = 0; k < IB_ARRAY_LEN(tasks); k++) {
    env *e = make(tasks[k]);
    if (!e) continue;
    float obs[OBS];
    for (uint64_t seed = 0; seed < 5; seed++) {
      TH_CHECK_EQ_INT(env_reset(e, seed, obs), IB_OK);
      TH_CHECK_MSG(ib_first_nonfinite(obs, OBS) < 0, "%s: non-finite obs", tasks[k]);
      double d = 0;
      for (int i = 0; i < 3; i++) d += (obs[i] - hand_init[k][i]) * (obs[i] - hand_init[k][i]);
      TH_CHECK_MSG(sqrt(d) < 0.03, "%s seed %d: hand %.3f %.3f %.3f is %.3f m from its start",
                   tasks[k], (int)seed, obs[0], obs[1], obs[2], sqrt(d));
      TH_CHECK_MSG(obs[3] > 0.5f && obs[3] <= 1.0f, "%s: gripper opening %.3f, want open", tasks[k], obs[3]);
      for (int i = 0; i < 3; i++)
        TH_CHECK_MSG(obs[36 + i] >= goal_lo[k][i] - 1e-6 && obs[36 + i] <= goal_hi[k][i] + 1e-6,
                     "%s: goal[%d] = %.4f outside [%.3f, %.3f]", tasks[k], i, obs[36 + i], goal_lo[k][i], goal_hi[k][i]);
      double qn = 0;
      for (int i = 7; i < 11; i++) qn += obs[i] * obs[i];
      TH_CHECK_NEAR(qn, 1.0, 1e-5);
      /* The objects rest as the model file places them: the nut and the lid turned 90 degrees
       * about z, reported w x y z; the stick unrotated and the mug's mesh geom (which MuJoCo
       * aligns with the mesh's inertia axes) turned 90 degrees about z, both reported x y z w
       * (scipy's order, with the sign that makes the largest Shepperd term positive). */
      for (int i = 0; i < 4; i++)
        TH_CHECK_MSG(fabs(obs[7 + i] - quat_rest[k][i]) < 0.05, "%s: object quaternion[%d] = %.3f, want %.3f",
                     tasks[k], i, obs[7 + i], quat_rest[k][i]);
      TH_CHECK_MSG(ib_first_nonfinite(obs + 18, 18) < 0 && obs[18 + 3] > 0.5f, "%s: previous frame", tasks[k]);
    }
    env_destroy(e);
  }
}

/* ---- determinism ---- */

/* Runs `steps` steps from seed with the clean expert (plus a fixed perturbation so that the
 * trajectory is not trivially the same for every seed) and writes all observations. */
static int rollout(env *e, uint64_t seed, int steps, float *traj) {
  if (env_reset(e, seed, traj) != IB_OK) return -1;
  rng r;
  rng_seed(&r, 1234, "test", 0, "perturb");
  env_info info;
  for (int t = 1; t <= steps; t++) {
    float a[ACT];
    if (env_expert(e, &r, 0.0f, a) != IB_OK) return -1;
    for (int i = 0; i < ACT; i++) a[i] += 0.3f * (rng_uniform(&r) - 0.5f);
    if (env_step(e, a, traj + (size_t)t * OBS, &info) != IB_OK) return -1;
  }
  return 0;
}

static void test_seeded_determinism(void) {
  if (!need_assets()) return;
  enum { STEPS = 40 };
  static float a[(STEPS + 1) * OBS], b[(STEPS + 1) * OBS], c[(STEPS + 1) * OBS];
  for (size_t k = 0; k < IB_ARRAY_LEN(tasks); k++) {
    env *e1 = make(tasks[k]), *e2 = make(tasks[k]);
    if (!e1 || !e2) {
      env_destroy(e1);
      env_destroy(e2);
      continue;
    }
    /* Same seed, two envs: bit-identical trajectories. */
    TH_CHECK(rollout(e1, 7, STEPS, a) == 0);
    TH_CHECK(rollout(e2, 7, STEPS, b) == 0);
    TH_CHECK_MSG(memcmp(a, b, sizeof a) == 0, "%s: two envs, same seed, different trajectories", tasks[k]);
    /* Same env, other episodes in between: the reset does not depend on history. */
    TH_CHECK(rollout(e1, 8, STEPS, c) == 0);
    TH_CHECK(rollout(e1, 7, STEPS, b) == 0);
    TH_CHECK_MSG(memcmp(a, b, sizeof a) == 0, "%s: reset depends on the previous episode", tasks[k]);
    /* Another seed gives another layout. */
    TH_CHECK_MSG(memcmp(a, c, OBS * sizeof(float)) != 0, "%s: seeds 7 and 8 give the same first obs", tasks[k]);
    env_destroy(e1);
    env_destroy(e2);
  }
}

/* ---- actions ---- */

static void test_actions_clipped(void) {
  if (!need_assets()) return;
  env *e = make("boxclose");
  if (!e) return;
  float o1[OBS], o2[OBS], o3[OBS];
  env_info info;
  const float big[ACT] = {5.0f, -7.0f, 3.0f, 9.0f}, unit[ACT] = {1.0f, -1.0f, 1.0f, 1.0f};
  TH_CHECK_EQ_INT(env_reset(e, 3, o1), IB_OK);
  TH_CHECK_EQ_INT(env_step(e, big, o1, &info), IB_OK);
  TH_CHECK_EQ_INT(env_reset(e, 3, o2), IB_OK);
  TH_CHECK_EQ_INT(env_step(e, unit, o2, &info), IB_OK);
  TH_CHECK_MSG(memcmp(o1, o2, sizeof o1) == 0, "an action outside [-1, 1] was not clipped");
  /* The clipped action moved the hand: +x, -y, +z by about 2 cm of mocap motion in total. */
  TH_CHECK_EQ_INT(env_reset(e, 3, o3), IB_OK);
  TH_CHECK(o2[0] > o3[0] && o2[1] < o3[1] && o2[2] > o3[2]);
  /* NaN and Inf are refused (not clipped), naming the element; stepping before a reset is a
   * state error. */
  const float nan_a[ACT] = {0.0f, NAN, 0.0f, 0.0f}, inf_a[ACT] = {0.0f, 0.0f, INFINITY, 0.0f};
  TH_CHECK_EQ_INT(env_step(e, nan_a, o1, &info), IB_ENONFINITE);
  TH_CHECK_MSG(strstr(ib_errmsg(), "action[1]") != NULL, "message: %s", ib_errmsg());
  TH_CHECK_EQ_INT(env_step(e, inf_a, o1, &info), IB_ENONFINITE);
  TH_CHECK_MSG(strstr(ib_errmsg(), "action[2]") != NULL, "message: %s", ib_errmsg());
  env_destroy(e);
  e = make("coffeepush");
  if (!e) return;
  TH_CHECK_EQ_INT(env_step(e, unit, o1, &info), IB_ESTATE);
  float a[ACT];
  rng r;
  rng_seed(&r, 1, "test", 0, "noise");
  TH_CHECK_EQ_INT(env_expert(e, &r, 0.0f, a), IB_ESTATE);
  env_destroy(e);
}

static void test_expert_noise(void) {
  if (!need_assets()) return;
  env *e = make("coffeepush");
  if (!e) return;
  float obs[OBS], a0[ACT], a1[ACT], an[ACT];
  rng r;
  rng_seed(&r, 5, "test", 0, "noise");
  TH_CHECK_EQ_INT(env_reset(e, 1, obs), IB_OK);
  TH_CHECK_EQ_INT(env_expert(e, &r, 0.0f, a0), IB_OK);
  TH_CHECK_EQ_INT(env_expert(e, &r, 0.0f, a1), IB_OK);
  TH_CHECK(memcmp(a0, a1, sizeof a0) == 0);
  TH_CHECK_EQ_INT(env_expert(e, &r, 0.5f, an), IB_OK);
  int differ = 0;
  for (int i = 0; i < ACT; i++) {
    TH_CHECK(an[i] >= -1.0f && an[i] <= 1.0f && a0[i] >= -1.0f && a0[i] <= 1.0f);
    differ += an[i] != a0[i];
  }
  TH_CHECK_MSG(differ > 0, "noise 0.5 left the expert action unchanged");
  TH_CHECK_EQ_INT(env_expert(e, &r, -0.1f, an), IB_EINVAL);
  TH_CHECK_EQ_INT(env_expert(e, &r, NAN, an), IB_EINVAL);
  env_destroy(e);
}

/* ---- the scripted experts ---- */

/* Success rate of the clean expert over seeds 0..19 within the horizon. At the success step the
 * observation must agree with the task's own check where the obs carries the checked object. */
static void expert_rate(const char *task) {
  if (!need_assets()) return;
  env *e = make(task);
  if (!e) return;
  float obs[OBS], a[ACT];
  env_info info;
  rng r;
  rng_seed(&r, 0, "test", 0, "expert");
  int ok = 0, len_sum = 0;
  for (uint64_t seed = 0; seed < EPISODES; seed++) {
    if (env_reset(e, seed, obs) != IB_OK) {
      TH_CHECK_MSG(0, "%s reset %d: %s", task, (int)seed, ib_errmsg());
      break;
    }
    int t;
    info.success = 0;
    for (t = 0; t < e->horizon && !info.success; t++) {
      TH_CHECK_EQ_INT(env_expert(e, &r, 0.0f, a), IB_OK);
      if (env_step(e, a, obs, &info) != IB_OK) {
        TH_CHECK_MSG(0, "%s step: %s", task, ib_errmsg());
        break;
      }
      TH_CHECK(info.reward == (info.success ? 1.0f : 0.0f));
    }
    if (info.success) {
      ok++;
      len_sum += t;
      double d = 0;
      for (int i = 0; i < 3; i++) d += (obs[4 + i] - obs[36 + i]) * (obs[4 + i] - obs[36 + i]);
      if (strcmp(task, "coffeepush") == 0) TH_CHECK_MSG(sqrt(d) <= 0.07 + 1e-5, "mug %.3f m from goal at success", sqrt(d));
      if (strcmp(task, "boxclose") == 0) TH_CHECK_MSG(sqrt(d) < 0.08 + 1e-5, "lid %.3f m from goal at success", sqrt(d));
    }
  }
  double rate = (double)ok / EPISODES;
  printf("    %s: expert success %d/%d (%.2f), mean %.1f steps to success\n", task, ok, EPISODES, rate,
         ok ? (double)len_sum / ok : 0.0);
  TH_CHECK_MSG(rate >= MIN_SUCCESS_RATE, "%s: expert success rate %.2f < %.2f", task, rate, MIN_SUCCESS_RATE);
  env_destroy(e);
}

static void test_expert_assembly(void) { expert_rate("assembly"); }
static void test_expert_boxclose(void) { expert_rate("boxclose"); }
static void test_expert_coffeepush(void) { expert_rate("coffeepush"); }
static void test_expert_stickpull(void) { expert_rate("stickpull"); }

/* A policy that does nothing must not be counted as successful (the reward is really sparse). */
static void test_idle_fails(void) {
  if (!need_assets()) return;
  for (size_t k = 0; k < IB_ARRAY_LEN(tasks); k++) {
    env *e = make(tasks[k]);
    if (!e) continue;
    float obs[OBS];
    const float zero[ACT] = {0, 0, 0, 0};
    env_info info;
    int any = 0;
    TH_CHECK_EQ_INT(env_reset(e, 11, obs), IB_OK);
    for (int t = 0; t < 20; t++) {
      TH_CHECK_EQ_INT(env_step(e, zero, obs, &info), IB_OK);
      any |= info.success;
    }
    TH_CHECK_MSG(!any, "%s: success without doing anything", tasks[k]);
    env_destroy(e);
  }
}

/* ---- errors (these need no assets) ---- */

static void test_missing_folder(void) {
  env_config cfg = {0};
  cfg.metaworld_assets = "/nonexistent/ibrl-metaworld-assets";
  env *e = NULL;
  TH_CHECK_EQ_INT(env_mw_create("assembly", &cfg, &e), IB_EIO);
  TH_CHECK(e == NULL);
  const char *msg = ib_errmsg();
  TH_CHECK_MSG(strstr(msg, "/nonexistent/ibrl-metaworld-assets") && strstr(msg, "HINT") &&
               strstr(msg, "IBRL_METAWORLD_ASSETS"), "message: %s", msg);
  TH_CHECK(!env_mw_assets_present(&cfg));
  TH_CHECK(strcmp(env_mw_assets_dir(&cfg), cfg.metaworld_assets) == 0);
}

static void test_missing_model_file(void) {
  /* An existing folder without the model files: the message names the file it wanted. */
  char dir[] = "/tmp/ibrl-mw-empty-XXXXXX";
  if (!mkdtemp(dir)) {
    TH_CHECK_MSG(0, "mkdtemp failed");
    return;
  }
  env_config cfg = {0};
  cfg.metaworld_assets = dir;
  env *e = NULL;
  TH_CHECK_EQ_INT(env_mw_create("stickpull", &cfg, &e), IB_EIO);
  TH_CHECK(e == NULL);
  const char *msg = ib_errmsg();
  TH_CHECK_MSG(strstr(msg, "sawyer_xyz/sawyer_stick_obj.xml") && strstr(msg, dir) && strstr(msg, "HINT"),
               "message: %s", msg);
  /* A model file MuJoCo cannot parse: MuJoCo's own error text is passed on. */
  char sub[128], path[160];
  snprintf(sub, sizeof sub, "%s/sawyer_xyz", dir);
  snprintf(path, sizeof path, "%s/sawyer_box.xml", sub);
  FILE *f = NULL;
  if (mkdir(sub, 0700) == 0 && (f = fopen(path, "w")) != NULL) {
    fputs("<mujoco><worldbody><body name=\"x\"><geom type=\"nosuchtype\"/></body></worldbody></mujoco>\n", f);
    fclose(f);
    TH_CHECK_EQ_INT(env_mw_create("boxclose", &cfg, &e), IB_EIO);
    msg = ib_errmsg();
    TH_CHECK_MSG(strstr(msg, "MuJoCo could not load") && strstr(msg, "sawyer_box.xml") && strstr(msg, "nosuchtype"),
                 "message: %s", msg);
    remove(path);
    /* A valid MuJoCo model that is not the Meta-World one: IB_EPROTO naming what is missing. */
    snprintf(path, sizeof path, "%s/sawyer_coffee.xml", sub);
    if ((f = fopen(path, "w")) != NULL) {
      fputs("<mujoco><worldbody><body name=\"x\"><geom size=\"0.1\"/></body></worldbody></mujoco>\n", f);
      fclose(f);
      TH_CHECK_EQ_INT(env_mw_create("coffeepush", &cfg, &e), IB_EPROTO);
      TH_CHECK(e == NULL);
      msg = ib_errmsg();
      TH_CHECK_MSG(strstr(msg, "sawyer_coffee.xml") && strstr(msg, "'hand'"), "message: %s", msg);
      remove(path);
    }
  } else {
    TH_CHECK_MSG(0, "cannot write %s", path);
  }
  rmdir(sub);
  rmdir(dir);
}

static void test_unknown_task(void) {
  env *e = NULL;
  TH_CHECK_EQ_INT(env_mw_create("pick-place", NULL, &e), IB_ENOTFOUND);
  TH_CHECK(e == NULL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "metaworld/coffeepush") != NULL, "message: %s", ib_errmsg());
  const char *const *names = env_mw_tasks();
  int n = 0;
  while (names[n]) n++;
  TH_CHECK_EQ_INT(n, 4);
}

static const th_case cases[] = {
    {"unknown task lists the known ones", test_unknown_task},
    {"missing asset folder is IB_EIO with a hint", test_missing_folder},
    {"missing/malformed model file is IB_EIO, foreign model IB_EPROTO", test_missing_model_file},
    {"obs dim 39, act dim 4, obs keys", test_shapes_and_keys},
    {"reset layout (hand at start, goal in range)", test_reset_layout},
    {"seeded determinism", test_seeded_determinism},
    {"actions outside [-1,1] are clipped", test_actions_clipped},
    {"expert noise and its errors", test_expert_noise},
    {"idle policy does not succeed", test_idle_fails},
    {"expert assembly >= 0.85", test_expert_assembly},
    {"expert boxclose >= 0.85", test_expert_boxclose},
    {"expert coffeepush >= 0.85", test_expert_coffeepush},
    {"expert stickpull >= 0.85", test_expert_stickpull},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
