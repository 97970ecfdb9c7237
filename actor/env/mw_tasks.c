/* mw_tasks.c: the four Meta-World v2 tasks of the IBRL paper (Assembly, BoxClose, CoffeePush,
 * StickPull): their constants, reset layouts, observation slots, success checks and scripted
 * experts. The Sawyer base that runs them is env_mw.c; the contract is mw_task.h.
 *
 * Design. Each task is a row of constants plus five small functions. The numbers are Meta-World
 * v2's (commit 04be337, which IBRL pins), re-derived from the behaviour described in
 * shared/docs/mujoco-tasks.md section 2 and written here from scratch:
 *  - the reset layout is a uniform 6-d vector (object xyz, goal xyz), resampled by the base while
 *    object and goal are closer than min_sep in xy;
 *  - fixtures (the peg, the box, the coffee machine) are moved by editing m->body_pos, exactly as
 *    Meta-World does, so the model is private to one env;
 *  - objects with a free joint are placed by writing the position part of their qpos and zeroing
 *    their velocity; the orientation left by the (seed-independent) hand reset is kept;
 *  - the experts are Meta-World's state machines: pick a target point and a grip effort from the
 *    observation, then act = p * (target - hand). The base clips the result to [-1, 1].
 * Quaternion order follows Meta-World: Assembly and BoxClose report MuJoCo's body xquat (w x y z);
 * CoffeePush and StickPull report scipy's Rotation.from_matrix(...).as_quat() (x y z w), whose
 * sign convention mat_to_quat_xyzw reproduces. */
#include <math.h>
#include <string.h>

#include "ib.h"
#include "mw_task.h"

/* ---- small helpers ---- */

int mw__lookup(mw_sim *s, int type, const char *name, int *id) {
  int i = mj_name2id(s->m, type, name);
  if (i < 0)
    return ib_fail(IB_EPROTO,
                   "model %s has no %s named '%s' (HINT: the folder must hold the Meta-World v2 "
                   "assets of commit 04be337; set IBRL_METAWORLD_ASSETS to it)",
                   s->model_path, mju_type2Str(type), name);
  *id = i;
  return IB_OK;
}

/* The qpos and dof addresses of the free joint of `body`. */
static int free_joint(mw_sim *s, int body, const char *name, int *qadr, int *dadr) {
  const mjModel *m = s->m;
  int j = m->body_jntadr[body];
  if (m->body_jntnum[body] != 1 || j < 0 || m->jnt_type[j] != mjJNT_FREE)
    return ib_fail(IB_EPROTO, "model %s: body '%s' should have exactly one free joint (HINT: use the "
                   "Meta-World v2 asset files unchanged)", s->model_path, name);
  *qadr = m->jnt_qposadr[j];
  *dadr = m->jnt_dofadr[j];
  return IB_OK;
}

static int slide_joint(mw_sim *s, const char *name, int *qadr, int *dadr) {
  int j = -1;
  int rc = mw__lookup(s, mjOBJ_JOINT, name, &j);
  if (rc) return rc;
  if (s->m->jnt_type[j] != mjJNT_SLIDE)
    return ib_fail(IB_EPROTO, "model %s: joint '%s' should be a slide joint", s->model_path, name);
  *qadr = s->m->jnt_qposadr[j];
  *dadr = s->m->jnt_dofadr[j];
  return IB_OK;
}

/* Places a free-jointed object at xyz, keeping its orientation, at rest. */
static void put_free_object(mw_sim *s, int qadr, int dadr, double x, double y, double z) {
  s->d->qpos[qadr + 0] = x;
  s->d->qpos[qadr + 1] = y;
  s->d->qpos[qadr + 2] = z;
  memset(s->d->qvel + dadr, 0, 6 * sizeof(double));
}

static void copy3(double *dst, const double *src) { memcpy(dst, src, 3 * sizeof(double)); }

static double dist_xy(const double *a, const double *b) { return hypot(a[0] - b[0], a[1] - b[1]); }

static double dist_xyz(const double *a, const double *b) {
  double dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
  return sqrt(dx * dx + dy * dy + dz * dz);
}

/* Proportional move of the mocap towards `target`: Meta-World's move(from, to, p). */
static void move_to(double act[MW_ACT_DIM], const double hand[3], const double target[3], double p) {
  for (int i = 0; i < 3; i++) act[i] = p * (target[i] - hand[i]);
}

/* Rotation matrix (row-major 3x3) to a unit quaternion in x y z w order with scipy's sign rule:
 * of (m00, m11, m22, trace) take the largest (first on ties); the quaternion component that
 * belongs to it is made positive. This is the standard Shepperd construction. */
static void mat_to_quat_xyzw(double q[4], const double *mat) {
  double dec[4] = {mat[0], mat[4], mat[8], mat[0] + mat[4] + mat[8]};
  int c = 0;
  for (int i = 1; i < 4; i++)
    if (dec[i] > dec[c]) c = i;
#define M(r, col) mat[3 * (r) + (col)]
  if (c != 3) {
    int i = c, j = (i + 1) % 3, k = (j + 1) % 3;
    q[i] = 1.0 - dec[3] + 2.0 * M(i, i);
    q[j] = M(j, i) + M(i, j);
    q[k] = M(k, i) + M(i, k);
    q[3] = M(k, j) - M(j, k);
  } else {
    q[0] = M(2, 1) - M(1, 2);
    q[1] = M(0, 2) - M(2, 0);
    q[2] = M(1, 0) - M(0, 1);
    q[3] = 1.0 + dec[3];
  }
#undef M
  double n = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  for (int i = 0; i < 4; i++) q[i] /= n;
}

/* ---- Assembly: pick the wrench (RoundNut) by its handle and drop its ring over the peg ---- */
enum { AS_NUT_BODY, AS_HANDLE_SITE, AS_CENTER_SITE, AS_PEG_BODY, AS_NUT_QPOS, AS_NUT_DOF };

static int assembly_bind(mw_sim *s) {
  int *id = s->ids, rc;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "RoundNut", &id[AS_NUT_BODY]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_SITE, "RoundNut-8", &id[AS_HANDLE_SITE]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_SITE, "RoundNut", &id[AS_CENTER_SITE]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "peg", &id[AS_PEG_BODY]))) return rc;
  return free_joint(s, id[AS_NUT_BODY], "RoundNut", &id[AS_NUT_QPOS], &id[AS_NUT_DOF]);
}

static void assembly_place(mw_sim *s, const double v[6]) {
  put_free_object(s, s->ids[AS_NUT_QPOS], s->ids[AS_NUT_DOF], v[0], v[1], v[2]);
  copy3(s->goal, v + 3);
  /* The peg is 10 cm tall with its body origin at its middle; its top is the goal. */
  double *peg = s->m->body_pos + 3 * s->ids[AS_PEG_BODY];
  peg[0] = v[3];
  peg[1] = v[4];
  peg[2] = v[5] - 0.05;
}

static void assembly_objects(const mw_sim *s, double out[MW_OBJ_DIM]) {
  memset(out, 0, MW_OBJ_DIM * sizeof(double));
  copy3(out, s->d->site_xpos + 3 * s->ids[AS_HANDLE_SITE]);
  memcpy(out + 3, s->d->xquat + 4 * s->ids[AS_NUT_BODY], 4 * sizeof(double)); /* w x y z */
}

static int assembly_success(const mw_sim *s) {
  const double *ring = s->d->site_xpos + 3 * s->ids[AS_CENTER_SITE];
  /* The ring's centre is within 2 cm of the peg axis and below the peg top: it is on the peg. */
  return dist_xy(s->goal, ring) < 0.02 && s->goal[2] - ring[2] > 0.0;
}

static void assembly_expert(const mw_sim *s, double act[MW_ACT_DIM]) {
  const double *hand = s->frame, *wrench_obs = s->frame + 4;
  double wrench[3] = {wrench_obs[0] - 0.02, wrench_obs[1], wrench_obs[2]};
  double peg[3] = {s->goal[0] + 0.12, s->goal[1], s->goal[2] + 0.14}; /* hand over the peg */
  double t[3];
  double dxy_wrench = dist_xy(hand, wrench), dxy_peg = dist_xy(hand, peg);
  if (dxy_wrench > 0.02) { /* hover 10 cm above the handle */
    t[0] = wrench[0], t[1] = wrench[1], t[2] = wrench[2] + 0.1;
  } else if (dxy_peg <= 0.02) { /* over the peg (the handle moved with the hand): drop */
    t[0] = peg[0], t[1] = peg[1], t[2] = peg[2] - 0.2;
  } else if (fabs(hand[2] - wrench[2]) > 0.05) { /* descend onto the handle */
    t[0] = wrench[0], t[1] = wrench[1], t[2] = wrench[2] + 0.03;
  } else if (fabs(hand[2] - peg[2]) > 0.04) { /* lift straight up to the carrying height */
    t[0] = hand[0], t[1] = hand[1], t[2] = peg[2];
  } else { /* carry over the peg */
    copy3(t, peg);
  }
  move_to(act, hand, t, 10.0);
  act[3] = (dxy_wrench > 0.02 || fabs(hand[2] - wrench[2]) > 0.12) ? 0.0 : 0.6;
}

/* ---- BoxClose: pick the lid by its handle and put it on the box ---- */
enum { BX_LID_BODY, BX_BOX_BODY, BX_LID_QPOS, BX_LID_DOF, BX_GOAL_SITE, BX_LIDROOT_BODY };

static int boxclose_bind(mw_sim *s) {
  int *id = s->ids, rc;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "top_link", &id[BX_LID_BODY]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "boxbody", &id[BX_BOX_BODY]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "boxbodytop", &id[BX_LIDROOT_BODY]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_SITE, "goal", &id[BX_GOAL_SITE]))) return rc;
  return free_joint(s, id[BX_LIDROOT_BODY], "boxbodytop", &id[BX_LID_QPOS], &id[BX_LID_DOF]);
}

static void boxclose_place(mw_sim *s, const double v[6]) {
  /* The lid's height is fixed (it lies on the table); only its xy is random. */
  put_free_object(s, s->ids[BX_LID_QPOS], s->ids[BX_LID_DOF], v[0], v[1], 0.02);
  copy3(s->goal, v + 3);
  double *box = s->m->body_pos + 3 * s->ids[BX_BOX_BODY];
  box[0] = v[3]; /* the box keeps its height (on the table) */
  box[1] = v[4];
  copy3(s->m->site_pos + 3 * s->ids[BX_GOAL_SITE], s->goal); /* visual marker only */
}

static void boxclose_objects(const mw_sim *s, double out[MW_OBJ_DIM]) {
  memset(out, 0, MW_OBJ_DIM * sizeof(double));
  copy3(out, s->d->xpos + 3 * s->ids[BX_LID_BODY]);
  memcpy(out + 3, s->d->xquat + 4 * s->ids[BX_LID_BODY], 4 * sizeof(double)); /* w x y z */
}

static int boxclose_success(const mw_sim *s) {
  return dist_xyz(s->d->xpos + 3 * s->ids[BX_LID_BODY], s->goal) < 0.08;
}

static void boxclose_expert(const mw_sim *s, double act[MW_ACT_DIM]) {
  const double *hand = s->frame, *lid_obs = s->frame + 4;
  double lid[3] = {lid_obs[0], lid_obs[1], lid_obs[2] + 0.02}; /* the handle */
  double box[3] = {s->goal[0], s->goal[1], 0.15};
  double t[3];
  double dxy = dist_xy(hand, lid);
  if (dxy > 0.01) { /* hover at 20 cm over the handle */
    t[0] = lid[0], t[1] = lid[1], t[2] = 0.2;
  } else if (fabs(hand[2] - lid[2]) > 0.05) { /* descend onto the handle */
    copy3(t, lid);
  } else if (fabs(hand[2] - box[2]) > 0.04) { /* lift to the carrying height */
    t[0] = hand[0], t[1] = hand[1], t[2] = box[2];
  } else { /* carry over the box; the lid is inside the success radius there */
    copy3(t, box);
  }
  move_to(act, hand, t, 25.0);
  act[3] = (dxy > 0.01 || fabs(hand[2] - lid[2]) > 0.13) ? 0.5 : 1.0;
}

/* ---- CoffeePush: slide the mug under the coffee machine's spout ---- */
enum { CF_MUG_BODY, CF_MUG_GEOM, CF_MACHINE_BODY, CF_MUG_QPOS, CF_MUG_DOF, CF_GOAL_SITE };

static int coffeepush_bind(mw_sim *s) {
  int *id = s->ids, rc;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "obj", &id[CF_MUG_BODY]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_GEOM, "mug", &id[CF_MUG_GEOM]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "coffee_machine", &id[CF_MACHINE_BODY]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_SITE, "mug_goal", &id[CF_GOAL_SITE]))) return rc;
  return free_joint(s, id[CF_MUG_BODY], "obj", &id[CF_MUG_QPOS], &id[CF_MUG_DOF]);
}

static void coffeepush_place(mw_sim *s, const double v[6]) {
  put_free_object(s, s->ids[CF_MUG_QPOS], s->ids[CF_MUG_DOF], v[0], v[1], v[2]);
  copy3(s->goal, v + 3);
  /* The machine stands 22 cm behind the goal so that the goal is under its spout. */
  double *machine = s->m->body_pos + 3 * s->ids[CF_MACHINE_BODY];
  machine[0] = v[3];
  machine[1] = v[4] + 0.22;
  machine[2] = v[5];
  copy3(s->m->site_pos + 3 * s->ids[CF_GOAL_SITE], s->goal); /* visual marker only */
}

static void coffeepush_objects(const mw_sim *s, double out[MW_OBJ_DIM]) {
  memset(out, 0, MW_OBJ_DIM * sizeof(double));
  copy3(out, s->d->xpos + 3 * s->ids[CF_MUG_BODY]);
  mat_to_quat_xyzw(out + 3, s->d->geom_xmat + 9 * s->ids[CF_MUG_GEOM]);
}

static int coffeepush_success(const mw_sim *s) {
  return dist_xyz(s->d->xpos + 3 * s->ids[CF_MUG_BODY], s->goal) <= 0.07;
}

static void coffeepush_expert(const mw_sim *s, double act[MW_ACT_DIM]) {
  const double *hand = s->frame, *mug_obs = s->frame + 4;
  double mug[3] = {mug_obs[0] + 0.01, mug_obs[1], mug_obs[2] + 0.05};
  double t[3];
  double dxy = dist_xy(hand, mug);
  if (dxy > 0.06) { /* hover 20 cm above the grasp point */
    t[0] = mug[0], t[1] = mug[1], t[2] = mug[2] + 0.2;
  } else if (fabs(hand[2] - mug[2]) > 0.02) { /* descend around the mug */
    copy3(t, mug);
  } else { /* slide it to the goal at a fixed height */
    t[0] = s->goal[0], t[1] = s->goal[1], t[2] = 0.1;
  }
  move_to(act, hand, t, 10.0);
  act[3] = (dxy > 0.06 || fabs(hand[2] - mug[2]) > 0.1) ? -1.0 : 0.5;
}

/* ---- StickPull: hook the stick into the thermos handle and drag the thermos to the goal ---- */
enum { ST_STICK_BODY, ST_HANDLE_SITE, ST_END_SITE, ST_STICK_QPOS, ST_STICK_DOF, ST_SLIDEX_QPOS,
       ST_SLIDEX_DOF, ST_SLIDEY_QPOS, ST_SLIDEY_DOF, ST_GOAL_SITE };

static int stickpull_bind(mw_sim *s) {
  int *id = s->ids, rc;
  if ((rc = mw__lookup(s, mjOBJ_BODY, "stick", &id[ST_STICK_BODY]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_SITE, "insertion", &id[ST_HANDLE_SITE]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_SITE, "stick_end", &id[ST_END_SITE]))) return rc;
  if ((rc = mw__lookup(s, mjOBJ_SITE, "goal", &id[ST_GOAL_SITE]))) return rc;
  if ((rc = free_joint(s, id[ST_STICK_BODY], "stick", &id[ST_STICK_QPOS], &id[ST_STICK_DOF]))) return rc;
  if ((rc = slide_joint(s, "obj_slidex", &id[ST_SLIDEX_QPOS], &id[ST_SLIDEX_DOF]))) return rc;
  return slide_joint(s, "obj_slidey", &id[ST_SLIDEY_QPOS], &id[ST_SLIDEY_DOF]);
}

static void stickpull_place(mw_sim *s, const double v[6]) {
  put_free_object(s, s->ids[ST_STICK_QPOS], s->ids[ST_STICK_DOF], v[0], v[1], 0.02);
  /* The thermos always starts at the same place: slide (0, 0.09) from its model position. */
  s->d->qpos[s->ids[ST_SLIDEX_QPOS]] = 0.0;
  s->d->qpos[s->ids[ST_SLIDEY_QPOS]] = 0.09;
  s->d->qvel[s->ids[ST_SLIDEX_DOF]] = 0.0;
  s->d->qvel[s->ids[ST_SLIDEY_DOF]] = 0.0;
  /* The goal lies on the table (z of the stick), not at the handle's height; Meta-World's
   * success radius of 12 cm in 3-d then leaves about 4 cm in xy for the handle. */
  s->goal[0] = v[3];
  s->goal[1] = v[4];
  s->goal[2] = 0.02;
  copy3(s->m->site_pos + 3 * s->ids[ST_GOAL_SITE], s->goal); /* visual marker only */
}

static void stickpull_objects(const mw_sim *s, double out[MW_OBJ_DIM]) {
  memset(out, 0, MW_OBJ_DIM * sizeof(double));
  copy3(out, s->d->xpos + 3 * s->ids[ST_STICK_BODY]);
  mat_to_quat_xyzw(out + 3, s->d->xmat + 9 * s->ids[ST_STICK_BODY]);
  copy3(out + 7, s->d->site_xpos + 3 * s->ids[ST_HANDLE_SITE]);
}

static int stickpull_success(const mw_sim *s) {
  const double *handle = s->d->site_xpos + 3 * s->ids[ST_HANDLE_SITE];
  const double *end = s->d->site_xpos + 3 * s->ids[ST_END_SITE];
  /* The stick's end went through the handle's loop, and the handle is near the goal. */
  int inserted = end[0] >= handle[0] && fabs(end[1] - handle[1]) <= 0.04 && fabs(end[2] - handle[2]) <= 0.06;
  return inserted && dist_xyz(handle, s->goal) <= 0.12;
}

static void stickpull_expert(const mw_sim *s, double act[MW_ACT_DIM]) {
  const double *hand = s->frame, *st = s->frame + 4, *th = s->frame + 11;
  double stick[3] = {st[0] - 0.015, st[1], st[2] + 0.03};  /* grasp point on the stick */
  double thermos[3] = {th[0] - 0.015, th[1], th[2] + 0.03};
  double t[3];
  if (fabs(stick[0] - thermos[0]) > 0.04) { /* not hooked yet */
    if (dist_xy(hand, stick) > 0.02) { /* hover 10 cm over the grasp point */
      t[0] = stick[0], t[1] = stick[1], t[2] = stick[2] + 0.1;
    } else if (fabs(hand[2] - stick[2]) > 0.02) { /* descend */
      copy3(t, stick);
    } else if (fabs(stick[1] - thermos[1]) > 0.02) { /* line up in y with the handle */
      t[0] = stick[0], t[1] = thermos[1], t[2] = stick[2];
    } else if (fabs(stick[2] - thermos[2]) > 0.02) { /* then in z */
      t[0] = stick[0], t[1] = thermos[1], t[2] = thermos[2];
    } else { /* push the stick through the handle */
      copy3(t, thermos);
    }
  } else { /* hooked: drag to 5 cm short of the goal in x */
    t[0] = s->goal[0] - 0.05, t[1] = s->goal[1], t[2] = s->goal[2];
  }
  move_to(act, hand, t, 25.0);
  act[3] = (dist_xy(hand, stick) > 0.02 || fabs(hand[2] - stick[2]) > 0.1) ? -1.0 : 0.7;
}

/* ---- the table ---- */

const mw_task mw__tasks[] = {
    {"assembly", "sawyer_xyz/sawyer_assembly_peg.xml",
     {0.0, 0.6, 0.2}, {-0.5, 0.40, 0.05}, {0.5, 1.0, 0.5},
     {0.0, 0.6, 0.02, -0.1, 0.75, 0.1}, {0.0, 0.6, 0.02, 0.1, 0.85, 0.1}, 0.1,
     assembly_bind, assembly_place, assembly_objects, assembly_success, assembly_expert},
    {"boxclose", "sawyer_xyz/sawyer_box.xml",
     {0.0, 0.6, 0.2}, {-0.5, 0.40, 0.05}, {0.5, 1.0, 0.5},
     {-0.05, 0.5, 0.02, -0.1, 0.7, 0.133}, {0.05, 0.55, 0.02, 0.1, 0.8, 0.133}, 0.25,
     boxclose_bind, boxclose_place, boxclose_objects, boxclose_success, boxclose_expert},
    {"coffeepush", "sawyer_xyz/sawyer_coffee.xml",
     {0.0, 0.4, 0.2}, {-0.5, 0.40, 0.05}, {0.5, 1.0, 0.5},
     {-0.1, 0.55, -0.001, -0.05, 0.7, -0.001}, {0.1, 0.65, 0.001, 0.05, 0.75, 0.001}, 0.15,
     coffeepush_bind, coffeepush_place, coffeepush_objects, coffeepush_success, coffeepush_expert},
    {"stickpull", "sawyer_xyz/sawyer_stick_obj.xml",
     {0.0, 0.6, 0.2}, {-0.5, 0.35, 0.05}, {0.5, 1.0, 0.5},
     {-0.1, 0.55, 0.0, 0.35, 0.45, 0.0199}, {0.0, 0.65, 0.001, 0.45, 0.55, 0.0201}, 0.1,
     stickpull_bind, stickpull_place, stickpull_objects, stickpull_success, stickpull_expert},
    {NULL, NULL, {0}, {0}, {0}, {0}, {0}, 0, NULL, NULL, NULL, NULL, NULL},
};

const mw_task *mw__task_find(const char *name) {
  for (const mw_task *t = mw__tasks; t->name; t++)
    if (strcmp(t->name, name) == 0) return t;
  return NULL;
}
