/* mw_task.h (private to the Meta-World env): what one Meta-World v2 task adds to the shared
 * Sawyer base in env_mw.c.
 *
 * The base (env_mw.c) owns the MuJoCo model and data, the mocap/weld control, the action repeat,
 * the seeded reset and the 39-d observation layout. A task (mw_tasks.c) only says:
 *  - which model file to load and the Sawyer constants (hand start, mocap box),
 *  - the uniform reset ranges of its 6-d layout vector (object xyz, goal xyz) and the minimum xy
 *    distance between object and goal,
 *  - how to look up its bodies/sites/joints (bind), how to apply a sampled layout (place),
 *  - its 14 object slots of the observation, its success predicate and its scripted expert.
 * Facts and their sources: shared/docs/mujoco-tasks.md section 2 (Meta-World v2 at commit
 * 04be337, the commit IBRL pins).
 *
 * Shapes: positions are xyz in metres (world frame), quaternions are 4 numbers in the order the
 * task documents (Meta-World mixes wxyz and xyzw). Everything is double, as in Meta-World; the
 * base converts to float only when it writes the observation.
 * Thread-safety: a mw_sim belongs to one env and so to one thread at a time. The task table is
 * read-only. */
#ifndef IB_MW_TASK_H
#define IB_MW_TASK_H

#include <mujoco/mujoco.h>

#define MW_FRAME_DIM 18 /* hand xyz, gripper opening, 14 object slots */
#define MW_OBJ_DIM 14
#define MW_OBS_DIM 39   /* frame, previous frame, goal xyz */
#define MW_ACT_DIM 4    /* mocap dx dy dz, gripper effort */
#define MW_MAX_IDS 12   /* task-specific MuJoCo ids resolved by bind() */

/* The live simulation of one env, shared between the base and its task. */
typedef struct mw_sim {
  mjModel *m;               /* owned */
  mjData *d;                /* owned */
  const char *model_path;   /* borrowed from the env (for error messages) */
  int ids[MW_MAX_IDS];      /* task-specific ids (bodies, sites, geoms, qpos/dof addresses) */
  double goal[3];           /* the episode's goal position (observation tail), set by place() */
  double frame[MW_FRAME_DIM]; /* the newest frame: hand(3), gripper(1), objects(14) */
} mw_sim;

typedef struct mw_task {
  const char *name;       /* the part after "metaworld/", e.g. "coffeepush" */
  const char *model_file; /* relative to the asset folder, e.g. "sawyer_xyz/sawyer_coffee.xml" */
  double hand_init[3];    /* where the mocap holds the hand during the reset */
  double hand_low[3];     /* the mocap target is clipped to [hand_low, hand_high] */
  double hand_high[3];
  double rand_low[6];     /* the reset layout vector: object xyz then goal xyz, uniform */
  double rand_high[6];
  double min_sep;         /* resample while |object.xy - goal.xy| < min_sep */
  /* Looks up the task's names in s->m and fills s->ids. Returns IB_OK, or IB_EPROTO with
   * ib_fail naming the missing thing when the model is not the expected Meta-World file. */
  int (*bind)(mw_sim *s);
  /* Applies the sampled layout v (6 numbers) to the reset state in s->d (object qpos, zero
   * object velocity) and to s->m (fixture body positions, goal sites), and sets s->goal. The
   * base calls mj_forward afterwards. */
  void (*place)(mw_sim *s, const double v[6]);
  /* Writes the 14 object slots from the current kinematics of s->d. */
  void (*objects)(const mw_sim *s, double out[MW_OBJ_DIM]);
  /* The task's success predicate on the current kinematics (1 or 0). */
  int (*success)(const mw_sim *s);
  /* The scripted expert's action for s->frame and s->goal, before clipping and noise. */
  void (*expert)(const mw_sim *s, double act[MW_ACT_DIM]);
} mw_task;

/* The table of the four tasks, terminated by an entry whose name is NULL. */
extern const mw_task mw__tasks[];

/* The task called `name`, or NULL. */
const mw_task *mw__task_find(const char *name);

/* Looks up a named MuJoCo object of type `type` (mjOBJ_BODY, mjOBJ_SITE, ...) in s->m and
 * writes its id to *id. Returns IB_OK or IB_EPROTO naming the object and the model file. */
int mw__lookup(mw_sim *s, int type, const char *name, int *id);

#endif /* IB_MW_TASK_H */
