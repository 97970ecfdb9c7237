/* nav2d.h: the built-in pure-C task: a differential-drive robot with a 2-D LiDAR navigating a
 * random obstacle field to a goal (shared/docs/mujoco-tasks.md section 5). It needs no assets,
 * runs at several hundred thousand steps/s per core, and is the default task for CI and sweeps.
 *
 * World: a 10 m x 10 m walled arena, disc obstacles (radius 0.3-0.8 m) and, in the hard variant,
 * straight 3 m wall segments. The robot is a disc of radius 0.2 m.
 * Action (2 floats in [-1, 1], clipped): forward speed * 1 m/s and turn rate * 2 rad/s, held
 * for dt = 0.1 s (unicycle model; a move that would collide is cancelled, the turn is kept).
 * Observation (5 + n_rays floats), keys "state" (5) then "lidar" (n_rays):
 *   state = [goal x, goal y in the robot frame / 10 m, goal distance / 10 m, last speed action,
 *            last turn action];
 *   lidar = ranges / 5 m of n_rays rays spread evenly, ray 0 straight ahead, counter-clockwise.
 * Reward: sparse, 1 on the step the robot centre comes within 0.3 m of the goal.
 * Reset(seed): obstacles, start pose and goal (at least 5 m apart) are a pure function of the
 * seed. A layout whose goal cannot be reached on the planner's grid (0.1 m cells, obstacles
 * inflated by 0.4 m) is rejected and resampled, so every episode has a path.
 * Expert: A* on that grid (8-connected, no corner cutting) and a pure-pursuit follower with a
 * 0.4 m lookahead; it replans when pushed more than 0.7 m off its path.
 *
 * Variants (registry names): "nav2d" (8 discs, 32 rays, horizon 200) and "nav2d-hard" (10 discs
 * + 4 walls, 32 rays, horizon 300). Ownership and threads: as env.h. */
#ifndef IB_NAV2D_H
#define IB_NAV2D_H

#include "env.h"

typedef struct nav2d_params {
  int n_discs;  /* disc obstacles, 0..32 */
  int n_walls;  /* 3 m wall segments, 0..8 */
  int n_rays;   /* LiDAR rays, 4..256 */
  int horizon;  /* default time limit in env steps */
} nav2d_params;

/* The parameters of a registry variant ("nav2d", "nav2d-hard"); IB_ENOTFOUND otherwise. */
int nav2d_variant(nav2d_params *out, const char *name);

/* Creates a nav2d env with explicit parameters; `name` is stored as the env's name. IB_EINVAL
 * names the first parameter out of range. cfg may be NULL (cfg->horizon overrides p->horizon). */
int nav2d_create(const char *name, const nav2d_params *p, const env_config *cfg, env **out);

/* The robot pose and goal of the current episode, for tests and visualisation. */
typedef struct nav2d_pose {
  float x, y, heading; /* metres, radians */
  float goal_x, goal_y;
} nav2d_pose;
void nav2d_get_pose(nav2d_pose *out, const env *e);

/* Whether the current layout has a planner path from the robot's cell to the goal cell (the
 * reset guarantees it at step 0). */
int nav2d_has_path(const env *e);

#endif /* IB_NAV2D_H */
