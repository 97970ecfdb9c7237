/* chunk.h: episodes, action chunks and frame stacking on top of an env (env.h).
 *
 * This is the layer that turns single env steps into the transitions the replay store holds
 * (shared/docs/ibrl-reference.md sections 5 and 6):
 *  - Frame stacking: the policy sees the last n_stack frames, NEWEST FIRST, and frames before
 *    the start of the episode are ZEROS (not copies of the first frame).
 *  - Action chunking: the policy emits k actions at once (k * act_dim floats); executing the
 *    chunk is ONE transition. Its reward is the discounted sum inside the chunk,
 *      reward = sum_{j<steps} gamma^j r_j,
 *    the chunk stops early when the task succeeds (with end_on_success) or the time limit hits,
 *    and the bootstrap discount is gamma^steps, where steps is how many env steps ran;
 *    it is 0 when the chunk ended the episode by success, and also at the time limit when
 *    timeout_is_terminal is set (what IBRL does: no time-limit bootstrapping).
 *  - Episodes: a time limit in env steps (the env's horizon unless overridden) and, with
 *    end_on_success, termination on the first success.
 *  - n-step returns: chunk_nstep folds n consecutive chunk transitions into one (IBRL: n = 3).
 * With k = 1 and n_stack = 1 the runner is a plain episode loop.
 * The same arithmetic for recorded demos is demo_transition / demo_transition_n
 * (common/demo/demo.h); tests check that both agree bit for bit.
 *
 * Ownership: a runner borrows its env (which must outlive it) and owns its buffers; init/free
 * pair, free accepts a zeroed runner. No allocation after init. One thread at a time. */
#ifndef IB_CHUNK_H
#define IB_CHUNK_H

#include <stdint.h>

#include "env.h"

/* ---- frame stacking ---- */

typedef struct stack_frames {
  int frame_dim, n_frames;
  float *buf; /* owned, (n_frames, frame_dim), row 0 = newest */
} stack_frames;

void stack_init(stack_frames *s, int frame_dim, int n_frames);
void stack_free(stack_frames *s);
/* Starts an episode: row 0 = frame, every older row = 0. */
void stack_reset(stack_frames *s, const float *frame);
/* Adds a frame: rows shift one older (the oldest drops out), row 0 = frame. */
void stack_push(stack_frames *s, const float *frame);
/* Copies the stacked observation (n_frames * frame_dim floats) to out. */
void stack_get(float *out, const stack_frames *s);

/* ---- chunked episodes ---- */

typedef struct chunk_config {
  int k;                   /* actions per chunk, >= 1 */
  int n_stack;             /* frames per observation, >= 1 */
  float gamma;             /* per-env-step discount in (0, 1] */
  int horizon;             /* episode time limit in env steps; 0: the env's horizon */
  int end_on_success;      /* 1: the first success ends the episode (and the chunk) */
  int timeout_is_terminal; /* 1: the transition that hits the time limit gets discount 0 */
} chunk_config;

/* k 1, n_stack 1, gamma 0.99, the env's horizon, end on success, timeouts terminal (IBRL). */
chunk_config chunk_config_default(void);

typedef struct chunk_result {
  float reward;   /* sum_{j<steps} gamma^j r_j */
  float discount; /* bootstrap discount: 0 when terminal, else gamma^steps */
  int steps;      /* env steps executed, 1..k */
  int success;    /* the task succeeded on some step of this chunk */
  int done;       /* the episode is over (success with end_on_success, or the time limit) */
  int timeout;    /* the episode ended at the time limit (done without end-on-success) */
} chunk_result;

typedef struct chunk_runner {
  env *e;             /* borrowed */
  chunk_config cfg;   /* horizon resolved */
  stack_frames stack;
  float *frame;       /* owned, obs_dim scratch */
  int t;              /* env steps executed in this episode */
  int started, done;  /* an episode is running / it has ended */
  int success;        /* the episode has succeeded */
  float episode_return; /* undiscounted sum of rewards */
} chunk_runner;

/* Validates cfg (IB_EINVAL naming the bad field) and sizes the buffers. */
int chunk_runner_init(chunk_runner *r, env *e, const chunk_config *cfg);
void chunk_runner_free(chunk_runner *r);

/* Floats of one stacked observation (n_stack * obs_dim) and of one chunk (k * act_dim). */
int chunk_obs_dim(const chunk_runner *r);
int chunk_act_dim(const chunk_runner *r);

/* Starts an episode with the env's seeded reset and writes the stacked first observation. */
int chunk_reset(chunk_runner *r, uint64_t seed, float *obs);

/* Executes the chunk `actions` (k * act_dim floats; row j is step j) until it is exhausted, the
 * task succeeds (with end_on_success) or the time limit hits. Writes *res and the stacked
 * observation after the last executed step to next_obs. Errors: IB_ESTATE if no episode is
 * running (call chunk_reset), or the env's error (the episode is then marked done). */
int chunk_step(chunk_runner *r, chunk_result *res, float *next_obs, const float *actions);

/* ---- n-step returns over chunk transitions ----
 *
 * IBRL stores n-step transitions (n = 3 with k = 1; shared/docs/ibrl-reference.md section 5).
 * Over consecutive chunk transitions (r_i, d_i) of one episode the n-step transition of step 0 is
 *   reward   = r_0 + d_0 r_1 + d_0 d_1 r_2 + ... (n terms, fewer at the episode end),
 *   discount = d_0 d_1 ... d_{m-1} over the m <= n transitions available,
 *   obs = obs of transition 0, action = its action, next_obs = next_obs of transition m-1.
 * With k = 1, d_i = gamma except 0 at the (terminal) end, this is IBRL's rule exactly:
 *   R_t = sum_{j<n} gamma^j r_{t+j} (truncated), discount gamma^n if t < T - n, else 0.
 * The buffer is a window of the last n transitions; push returns the oldest one's n-step
 * transition once the window is full, and flush drains the rest at the end of an episode.
 * Outputs go to caller-owned buffers; no allocation after init. */

typedef struct chunk_nstep {
  int n, obs_dim, act_dim;
  int head, count;  /* ring of up to n transitions, head = oldest */
  float *obs, *act, *next_obs; /* owned, (n, obs_dim), (n, act_dim), (n, obs_dim) */
  float *reward, *discount;    /* owned, (n) */
} chunk_nstep;

/* One emitted transition: obs (obs_dim), action (act_dim), next_obs (obs_dim) are caller buffers. */
typedef struct chunk_nstep_out {
  float *obs, *action, *next_obs;
  float reward, discount;
  int n_used; /* chunk transitions folded in, 1..n */
} chunk_nstep_out;

void chunk_nstep_init(chunk_nstep *b, int n, int obs_dim, int act_dim);
void chunk_nstep_free(chunk_nstep *b);
/* Forgets everything pending (use when an episode is abandoned). */
void chunk_nstep_clear(chunk_nstep *b);
/* Adds the next chunk transition of the episode. Returns 1 and fills *out when the window was
 * full (the oldest transition left it), else 0. */
int chunk_nstep_push(chunk_nstep *b, chunk_nstep_out *out, const float *obs, const float *action, float reward, float discount,
               const float *next_obs);
/* After the episode's last push: returns 1 and fills *out with the next pending (truncated)
 * transition, or 0 when none is left (the buffer is then empty and ready for a new episode). */
int chunk_nstep_flush(chunk_nstep *b, chunk_nstep_out *out);

#endif /* IB_CHUNK_H */
