/* env_mw.c: the Sawyer base of the four Meta-World v2 tasks on MuJoCo 2.2.2 (see env_mw.h).
 *
 * Design. One env = one private mjModel (fixture bodies are moved by editing it) + one mjData,
 * driven the way Meta-World v2 drives its Sawyer and the way IBRL wraps it:
 *  - Control is by mocap. An inner Meta-World step clips the 4-d action to [-1, 1], moves the
 *    mocap target by 1 cm per unit (clipped to the task's hand box), holds the gripper
 *    orientation fixed, sets the two finger position actuators to (a3, -a3) and runs 5 mj_steps
 *    of 2.5 ms. The mocap drags the hand through the weld equality "mocap"-"hand".
 *  - The weld fix: MuJoCo 2.2 stores a weld as anchor(3), relpose(3+4), torquescale(1), and the
 *    compiler fills relpose from the model's initial pose, which keeps the hand about 1 m away
 *    from the mocap. Like Meta-World's reset_mocap_welds we overwrite it with a zero offset,
 *    the identity rotation and torquescale 1 (MuJoCo 2.1's behaviour).
 *  - One env_step is one IBRL agent step = 2 inner steps with the same action (action repeat 2);
 *    the default horizon is 100 agent steps. Success is judged after the last inner step.
 *  - The observation (39 floats) is Meta-World's goal-observable one: the newest frame (hand
 *    xyz, gripper opening, 14 object slots), the frame before it (Meta-World updates it every
 *    inner step, so with action repeat it is the frame after the first inner step), the goal.
 *  - Reset: Meta-World resets the data, then holds the hand at its start for 50 x 5 mj_steps
 *    with the gripper open. That part does not depend on the seed, so it is simulated once at
 *    create time and kept as a snapshot; a reset is a copy of it (mj_copyData) followed by the
 *    seeded layout (task->place), mj_forward, and, like IBRL's wrapper, one inner step with a
 *    zero action. Because the fixtures are placed from scratch every time and the snapshot never
 *    changes, the initial state is a pure function of the seed (not of the previous episode, as
 *    it can be in Meta-World, which runs the hand reset with the old fixture positions).
 *  - Stepping allocates nothing; MuJoCo's own stack lives in mjData.
 * Errors: missing folders/files return IB_EIO naming the path with a HINT about
 * IBRL_METAWORLD_ASSETS; MuJoCo's load error text is passed through. A simulation that MuJoCo
 * had to reset because of a bad acceleration returns IB_ENONFINITE (reset the env). */
#include "env_mw.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mujoco/mujoco.h>

#include "ib.h"
#include "mw_task.h"

/* The weld layout written below is MuJoCo 2.2's; other versions store the weld differently. */
_Static_assert(mjNEQDATA == 11, "the weld eq_data layout of MuJoCo 2.2 is anchor(3) relpose(7) torquescale(1)");

#define MW_FRAME_SKIP 5       /* mj_steps per inner Meta-World step */
#define MW_ACTION_REPEAT 2    /* inner steps per agent step (IBRL) */
#define MW_ACTION_SCALE 0.01  /* metres of mocap motion per unit of action */
#define MW_HAND_RESET_STEPS 50
#define MW_DEFAULT_HORIZON 100
#define MW_ENV_VAR "IBRL_METAWORLD_ASSETS"
#define MW_HINT "HINT: set " MW_ENV_VAR " to the folder that holds sawyer_xyz/ (e.g. shared/assets/metaworld-v2)"

typedef struct mw_env {
  const mw_task *task;       /* borrowed: static table */
  mw_sim s;                  /* model and data (owned through s) */
  mjData *snap;              /* owned: the state after the hand reset */
  int hand_body, rpad_site, lpad_site, mocap;
  double prev[MW_FRAME_DIM]; /* the frame before s.frame */
  int ready;                 /* a reset happened and no instability since */
  char model_path[4096];
} mw_env;

static const env_obs_key mw_obs_keys[] = {
    {"hand_pos", 3}, {"gripper", 1}, {"obj", MW_OBJ_DIM}, {"prev", MW_FRAME_DIM}, {"goal", 3},
};

static const char *const mw_task_names[] = {"assembly", "boxclose", "coffeepush", "stickpull", NULL};

const char *const *env_mw_tasks(void) { return mw_task_names; }

/* ---- asset folder ---- */

const char *env_mw_assets_dir(const env_config *cfg) {
  if (cfg && cfg->metaworld_assets && cfg->metaworld_assets[0]) return cfg->metaworld_assets;
  const char *v = getenv(MW_ENV_VAR);
  if (v && v[0]) return v;
#ifdef IB_METAWORLD_ASSETS_DEFAULT
  return IB_METAWORLD_ASSETS_DEFAULT;
#else
  return "";
#endif
}

int env_mw_assets_present(const env_config *cfg) {
  const char *dir = env_mw_assets_dir(cfg);
  struct stat st;
  return dir[0] && stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- the simulation ---- */

static double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* Computes the newest frame from the current kinematics into w->s.frame. */
static void frame_update(mw_env *w) {
  const mjData *d = w->s.d;
  double *f = w->s.frame;
  memcpy(f, d->xpos + 3 * w->hand_body, 3 * sizeof(double));
  const double *r = d->site_xpos + 3 * w->rpad_site, *l = d->site_xpos + 3 * w->lpad_site;
  double dx = r[0] - l[0], dy = r[1] - l[1], dz = r[2] - l[2];
  /* The fingers open to about 10 cm; normalise to [0, 1] (MuJoCo overshoots by < 1 mm). */
  f[3] = clampd(sqrt(dx * dx + dy * dy + dz * dz) / 0.1, 0.0, 1.0);
  w->task->objects(&w->s, f + 4);
}

/* Points the mocap at `pos` with the fixed downward gripper orientation and sets the fingers. */
static void set_mocap_and_grip(mw_env *w, const double pos[3], double grip) {
  mjData *d = w->s.d;
  memcpy(d->mocap_pos + 3 * w->mocap, pos, 3 * sizeof(double));
  /* Meta-World writes (1, 0, 1, 0); the unit version of it. */
  double *q = d->mocap_quat + 4 * w->mocap;
  q[0] = M_SQRT1_2, q[1] = 0.0, q[2] = M_SQRT1_2, q[3] = 0.0;
  d->ctrl[0] = grip;  /* right finger: +1 closes */
  d->ctrl[1] = -grip; /* left finger moves the other way */
}

/* One inner Meta-World step with an already clipped action; updates prev and frame. */
static void inner_step(mw_env *w, const double a[MW_ACT_DIM]) {
  const mw_task *t = w->task;
  double target[3];
  const double *mp = w->s.d->mocap_pos + 3 * w->mocap;
  for (int i = 0; i < 3; i++) target[i] = clampd(mp[i] + MW_ACTION_SCALE * a[i], t->hand_low[i], t->hand_high[i]);
  set_mocap_and_grip(w, target, a[3]);
  for (int k = 0; k < MW_FRAME_SKIP; k++) mj_step(w->s.m, w->s.d);
  memcpy(w->prev, w->s.frame, sizeof w->prev);
  frame_update(w);
}

static void obs_write(const mw_env *w, float *obs) {
  for (int i = 0; i < MW_FRAME_DIM; i++) obs[i] = (float)w->s.frame[i];
  for (int i = 0; i < MW_FRAME_DIM; i++) obs[MW_FRAME_DIM + i] = (float)w->prev[i];
  for (int i = 0; i < 3; i++) obs[2 * MW_FRAME_DIM + i] = (float)w->s.goal[i];
}

/* MuJoCo resets the data itself when the acceleration becomes bad (and prints a warning); an
 * episode that went through that is meaningless, so it is reported. */
static int check_stable(mw_env *w, int badqacc_before, const char *when) {
  const mjData *d = w->s.d;
  int bad = d->warning[mjWARN_BADQACC].number != badqacc_before;
  long nf = -1;
  for (int i = 0; i < MW_FRAME_DIM && nf < 0; i++)
    if (!isfinite(w->s.frame[i])) nf = i;
  if (bad || nf >= 0) {
    w->ready = 0;
    return ib_fail(IB_ENONFINITE, "%s: the simulation became unstable during %s (%s) (HINT: reset the env; "
                   "check that the actions are finite and the model files are unchanged)",
                   w->model_path, when, bad ? "MuJoCo reported a bad acceleration" : "non-finite observation");
  }
  return IB_OK;
}

/* ---- env_ops ---- */

static int mw_reset(env *e, uint64_t seed, float *obs) {
  mw_env *w = e->impl;
  const mw_task *t = w->task;
  if (!obs) return ib_fail(IB_EINVAL, "%s reset: obs is NULL", e->name);
  /* The layout vector, resampled while object and goal are too close (Meta-World's rule). The
   * ranges always allow a valid layout, so the bound only guards against a broken table. */
  rng r;
  rng_seed(&r, seed, "env", 0, e->name);
  double v[6];
  int tries = 0;
  do {
    IB_CHECK(tries++ < 10000);
    for (int i = 0; i < 6; i++) v[i] = t->rand_low[i] + (t->rand_high[i] - t->rand_low[i]) * rng_uniform_d(&r);
  } while (hypot(v[0] - v[3], v[1] - v[4]) < t->min_sep);

  mj_copyData(w->s.d, w->s.m, w->snap);
  t->place(&w->s, v);
  mj_forward(w->s.m, w->s.d);
  frame_update(w);
  /* IBRL's wrapper takes one zero-action step after Meta-World's reset; its observation (with
   * the reset frame as the previous frame) is the first one the agent sees. */
  int before = w->s.d->warning[mjWARN_BADQACC].number;
  const double zero[MW_ACT_DIM] = {0, 0, 0, 0};
  inner_step(w, zero);
  w->ready = 1;
  int rc = check_stable(w, before, "reset");
  if (rc) return rc;
  obs_write(w, obs);
  return IB_OK;
}

static int mw_step(env *e, const float *action, float *obs, env_info *info) {
  mw_env *w = e->impl;
  if (!action || !obs || !info) return ib_fail(IB_EINVAL, "%s step: NULL action, obs or info", e->name);
  if (!w->ready)
    return ib_fail(IB_ESTATE, "%s step before reset (or after an unstable step) (HINT: call env_reset first)", e->name);
  double a[MW_ACT_DIM];
  for (int i = 0; i < MW_ACT_DIM; i++) {
    if (isnan(action[i]))
      return ib_fail(IB_ENONFINITE, "%s step: action[%d] is NaN (HINT: check the policy output)", e->name, i);
    a[i] = clampd((double)action[i], -1.0, 1.0); /* +-Inf would clip to +-1 (env_step refuses it first) */
  }
  int before = w->s.d->warning[mjWARN_BADQACC].number;
  for (int k = 0; k < MW_ACTION_REPEAT; k++) inner_step(w, a);
  int rc = check_stable(w, before, "a step");
  if (rc) return rc;
  obs_write(w, obs);
  info->success = w->task->success(&w->s);
  info->reward = info->success ? 1.0f : 0.0f;
  return IB_OK;
}

static int mw_expert(env *e, rng *r, float noise, float *action) {
  mw_env *w = e->impl;
  if (!action) return ib_fail(IB_EINVAL, "%s expert: action is NULL", e->name);
  if (!(noise >= 0.0f) || !isfinite(noise))
    return ib_fail(IB_EINVAL, "%s expert: noise std %g is not a finite number >= 0", e->name, (double)noise);
  if (noise > 0.0f && !r) return ib_fail(IB_EINVAL, "%s expert: noise %g needs an rng", e->name, (double)noise);
  if (!w->ready) return ib_fail(IB_ESTATE, "%s expert before reset (HINT: call env_reset first)", e->name);
  double a[MW_ACT_DIM];
  w->task->expert(&w->s, a);
  for (int i = 0; i < MW_ACT_DIM; i++) {
    /* Clip first (IBRL records clipped expert actions), then perturb and clip again. */
    double x = clampd(a[i], -1.0, 1.0);
    if (noise > 0.0f) x = clampd(x + (double)noise * (double)rng_normal(r), -1.0, 1.0);
    action[i] = (float)x;
  }
  return IB_OK;
}

static void mw_free(mw_env *w) {
  if (!w) return;
  mj_deleteData(w->snap);
  mj_deleteData(w->s.d);
  mj_deleteModel(w->s.m);
  free(w);
}

static void mw_destroy(env *e) {
  if (!e) return;
  mw_free(e->impl);
  e->impl = NULL;
  free(e);
}

static const env_ops mw_ops = {mw_reset, mw_step, mw_expert, mw_destroy};

/* ---- creation ---- */

/* The Sawyer parts every task shares; fails with IB_EPROTO if the file is not a Meta-World one. */
static int bind_base(mw_env *w) {
  mw_sim *s = &w->s;
  int rc, mocap_body;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "hand", &w->hand_body))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_SITE, "rightEndEffector", &w->rpad_site))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_SITE, "leftEndEffector", &w->lpad_site))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "mocap", &mocap_body))) return rc;
  w->mocap = s->m->body_mocapid[mocap_body];
  if (w->mocap < 0) return ib_fail(IB_EPROTO, "model %s: body 'mocap' is not a mocap body", w->model_path);
  if (s->m->nu != 2)
    return ib_fail(IB_EPROTO, "model %s has %d actuators, expected the 2 finger actuators", w->model_path, s->m->nu);
  /* The weld that ties the hand to the mocap: zero offset, identity rotation, torquescale 1. */
  int weld = -1;
  for (int i = 0; i < s->m->neq; i++)
    if (s->m->eq_type[i] == mjEQ_WELD && (s->m->eq_obj1id[i] == mocap_body || s->m->eq_obj2id[i] == mocap_body))
      weld = i;
  if (weld < 0) return ib_fail(IB_EPROTO, "model %s has no weld between 'mocap' and 'hand'", w->model_path);
  static const double fix[mjNEQDATA] = {0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1};
  memcpy(s->m->eq_data + mjNEQDATA * weld, fix, sizeof fix);
  return IB_OK;
}

/* Simulates the seed-independent part of the reset once and keeps it in w->snap. */
static void make_snapshot(mw_env *w) {
  mjModel *m = w->s.m;
  mjData *d = w->s.d;
  mj_resetData(m, d);
  for (int i = 0; i < MW_HAND_RESET_STEPS; i++) {
    set_mocap_and_grip(w, w->task->hand_init, -1.0); /* gripper open */
    for (int k = 0; k < MW_FRAME_SKIP; k++) mj_step(m, d);
  }
  w->snap = mj_makeData(m);
  IB_CHECK(w->snap != NULL);
  mj_copyData(w->snap, m, d);
}

static int fail_unknown_task(const char *task) {
  char list[256] = "";
  for (const char *const *n = mw_task_names; *n; n++) {
    strncat(list, n == mw_task_names ? "" : ", ", sizeof list - strlen(list) - 1);
    strncat(list, "metaworld/", sizeof list - strlen(list) - 1);
    strncat(list, *n, sizeof list - strlen(list) - 1);
  }
  return ib_fail(IB_ENOTFOUND, "unknown Meta-World task 'metaworld/%s' (HINT: known tasks: %s)", task, list);
}

int env_mw_create(const char *task, const env_config *cfg, env **out) {
  if (!task || !out) return ib_fail(IB_EINVAL, "env_mw_create: NULL task or out");
  const mw_task *t = mw__task_find(task);
  if (!t) return fail_unknown_task(task);
  int horizon = cfg ? cfg->horizon : 0;
  if (horizon < 0) return ib_fail(IB_EINVAL, "metaworld/%s: horizon %d is negative (HINT: 0 means the default %d)",
                                  task, horizon, MW_DEFAULT_HORIZON);

  const char *dir = env_mw_assets_dir(cfg);
  if (!dir[0]) return ib_fail(IB_EIO, "metaworld/%s: no Meta-World asset folder is configured (%s)", task, MW_HINT);
  struct stat st;
  if (stat(dir, &st) != 0)
    return ib_fail(IB_EIO, "metaworld/%s: the Meta-World asset folder '%s': %s (%s)", task, dir, strerror(errno), MW_HINT);
  if (!S_ISDIR(st.st_mode))
    return ib_fail(IB_EIO, "metaworld/%s: the Meta-World asset folder '%s' is not a directory (%s)", task, dir, MW_HINT);

  mw_env *w = ib_xcalloc(1, sizeof *w);
  w->task = t;
  w->s.model_path = w->model_path;
  int n = snprintf(w->model_path, sizeof w->model_path, "%s/%s", dir, t->model_file);
  if (n < 0 || (size_t)n >= sizeof w->model_path) {
    mw_free(w);
    return ib_fail(IB_EINVAL, "metaworld/%s: the asset folder path '%s' is too long", task, dir);
  }
  if (access(w->model_path, R_OK) != 0) {
    int err = errno;
    mw_free(w);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, t->model_file);
    return ib_fail(IB_EIO, "metaworld/%s: cannot read the model file %s: %s (%s)", task, path, strerror(err), MW_HINT);
  }
  if (mj_version() != mjVERSION_HEADER) {
    mw_free(w);
    return ib_fail(IB_EMISMATCH, "metaworld/%s: MuJoCo library version %d differs from the header version %d "
                   "(HINT: install one libmujoco-dev, 2.2.2)", task, mj_version(), mjVERSION_HEADER);
  }

  char err[1000] = "";
  w->s.m = mj_loadXML(w->model_path, NULL, err, sizeof err);
  if (!w->s.m) {
    char path[4096];
    snprintf(path, sizeof path, "%s", w->model_path);
    mw_free(w);
    return ib_fail(IB_EIO, "metaworld/%s: MuJoCo could not load %s: %s (%s)", task, path, err, MW_HINT);
  }
  w->s.d = mj_makeData(w->s.m);
  IB_CHECK(w->s.d != NULL);
  int rc = bind_base(w);
  if (!rc) rc = t->bind(&w->s);
  if (rc) {
    mw_free(w);
    return rc;
  }
  make_snapshot(w);

  env *e = ib_xcalloc(1, sizeof *e);
  e->ops = &mw_ops;
  e->obs_keys = mw_obs_keys;
  e->n_obs_keys = (int)IB_ARRAY_LEN(mw_obs_keys);
  snprintf(e->name, sizeof e->name, "metaworld/%s", t->name);
  e->obs_dim = MW_OBS_DIM;
  e->act_dim = MW_ACT_DIM;
  e->horizon = horizon ? horizon : MW_DEFAULT_HORIZON;
  e->impl = w;
  *out = e;
  return IB_OK;
}
