/* env.h: the environment interface of ibrl, and the task registry.
 *
 * An environment is a single-episode simulator with a sparse 0/1 success reward. Tasks are found
 * by name (env_create("nav2d", ...), env_create("metaworld/coffeepush", ...)); an unknown name
 * fails with IB_ENOTFOUND and a message that lists the known names.
 *
 * Contract of every task:
 *  - env_reset(e, seed, obs) starts a new episode whose initial state is a pure function of
 *    `seed` (seeded reset), and writes the first observation (obs_dim floats).
 *  - env_step(e, action, obs, &info) applies one action of act_dim floats in [-1, 1] (values
 *    outside are clipped by the task), writes the next observation and fills `info`.
 *    info.reward is 1 on the step the task is solved and 0 otherwise; info.success is the task's
 *    success predicate after the step. Stepping a finished episode is allowed (time limits and
 *    termination on success are the episode runner's job, see chunk.h).
 *  - env_expert(e, rng, noise, action) writes the scripted expert's action for the current
 *    state, with Gaussian noise of std `noise` added and the result clipped to [-1, 1]. It may
 *    keep internal state (a plan), which env_reset clears. Tasks without an expert return
 *    IB_ESTATE.
 *  - Errors: bad arguments return IB_EINVAL; missing asset files IB_EIO; each with ib_errmsg().
 *
 * Ownership: env_create returns a heap object the caller releases with env_destroy (NULL is
 * allowed). An env is used by one thread at a time. */
#ifndef IB_ENV_H
#define IB_ENV_H

#include <stdint.h>

#include "rng.h"

typedef struct env env;

typedef struct env_info {
  float reward; /* sparse: 1 on success, else 0 */
  int success;  /* the task's success predicate after this step */
} env_info;

/* Settings common to every task. Zero-initialise and set what you need. */
typedef struct env_config {
  const char *metaworld_assets; /* folder of the Meta-World v2 model files; NULL: the environment
                                   variable IBRL_METAWORLD_ASSETS, then the build default */
  int horizon;                  /* 0: the task's default time limit in env steps */
} env_config;

/* The per-task operations. A task implementation fills one of these; see env.c. */
typedef struct env_ops {
  int (*reset)(env *e, uint64_t seed, float *obs);
  int (*step)(env *e, const float *action, float *obs, env_info *info);
  int (*expert)(env *e, rng *r, float noise, float *action);
  void (*destroy)(env *e); /* releases everything the task allocated, the env struct included */
} env_ops;

/* One named part of an observation, as stored in a robomimic-style demo file (obs/<name>). */
typedef struct env_obs_key {
  const char *name; /* e.g. "state", "lidar", "hand_pos" */
  int dim;          /* floats */
} env_obs_key;

struct env {
  const env_ops *ops; /* borrowed: static table of the task */
  const env_obs_key *obs_keys; /* borrowed: the observation is these parts concatenated in order
                                  (NULL with n_obs_keys 0: demo files store one part "obs") */
  int n_obs_keys;
  char name[64];      /* registry name, e.g. "metaworld/coffeepush" */
  int obs_dim;        /* floats per observation (one frame) */
  int act_dim;        /* floats per action */
  int horizon;        /* time limit in env steps */
  void *impl;         /* owned by the task */
};

/* Creates the task `name`. On success *out owns a new env and IB_OK is returned. Unknown
 * names return IB_ENOTFOUND with the list of known names in ib_errmsg(). */
int env_create(const char *name, const env_config *cfg, env **out);
void env_destroy(env *e);

int env_reset(env *e, uint64_t seed, float *obs);
int env_step(env *e, const float *action, float *obs, env_info *info);
int env_expert(env *e, rng *r, float noise, float *action);

/* The registered task names, NULL-terminated. */
const char *const *env_names(void);

#endif /* IB_ENV_H */
