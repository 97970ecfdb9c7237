/* demo.h: demonstration datasets in robomimic's low-dim HDF5 layout: read, validate, write, and
 * turn into the chunked, frame-stacked transitions that the replay store holds.
 *
 * File layout (the same as robomimic's, so users can train on their own low-dim datasets):
 *   data/                      attrs: total (int64, sum of num_samples), env_args (JSON string,
 *                              e.g. {"env_name": "nav2d", "type": "ibrl", "env_kwargs": {...}})
 *   data/demo_<i>/             attrs: num_samples (int64) = T
 *   data/demo_<i>/obs/<key>    (T, dim) or (T,) numbers, one dataset per observation part
 *   data/demo_<i>/next_obs/<key>  optional, same shapes (written when given, never required)
 *   data/demo_<i>/actions      (T, act_dim), every value in [-1, 1]
 *   data/demo_<i>/rewards      (T,)
 *   data/demo_<i>/dones        (T,)
 * Demos are ordered by the number after "demo_" (demo_2 before demo_10). Any numeric HDF5 type
 * is accepted on read and converted to float.
 *
 * In memory a loaded dataset is a list of episodes whose observation rows are the chosen obs keys
 * concatenated in the chosen order (a setting: "state,lidar" or "robot0_eef_pos,object"). With
 * no setting, every low-dim key is taken (image-like datasets of rank > 2 are left out), in the
 * file's creation order when the file tracks it (files written here do) and in name order
 * otherwise (most robomimic files). Naming an image key explicitly is an error.
 *
 * Errors (each with ib_errmsg() naming the file, the demo and the dataset, plus a HINT):
 *   IB_EIO       the file is missing, unreadable or not HDF5, or a write failed;
 *   IB_ENOTFOUND a required group/dataset is missing, or a requested obs key is absent (the
 *                message lists the keys the file has);
 *   IB_EPROTO    ragged arrays (lengths disagree with each other or with num_samples), wrong
 *                ranks, empty episodes, non-numeric data;
 *   IB_EMISMATCH per-key or action widths differ between demos;
 *   IB_EINVAL    an action outside [-1, 1];
 *   IB_ENONFINITE NaN or Inf anywhere in obs, actions or rewards.
 * On failure nothing is returned (the output set stays zeroed) and no file is left behind.
 *
 * Ownership: a demo_set owns all of its arrays; release it with demo_set_free (a zeroed set is
 * fine). Thread-safety: HDF5 (the Debian build) is not thread-safe, so call the file functions
 * from one thread at a time; demo_transition only reads a loaded set and may run concurrently. */
#ifndef IB_DEMO_H
#define IB_DEMO_H

#include <stdint.h>

#define DEMO_NAME_MAX 64

/* One observation part: its dataset name under obs/ and its width in floats. */
typedef struct demo_key {
  char name[DEMO_NAME_MAX];
  int dim;
} demo_key;

/* One episode of T steps. Row t of obs is the observation the action of row t was taken in. */
typedef struct demo_episode {
  char name[DEMO_NAME_MAX]; /* "demo_3" */
  int T;                    /* steps (= num_samples) */
  float *obs;               /* owned, (T, obs_dim): the chosen keys concatenated in order */
  float *actions;           /* owned, (T, act_dim) */
  float *rewards;           /* owned, (T) */
  uint8_t *dones;           /* owned, (T): 1 where the file says done */
} demo_episode;

typedef struct demo_set {
  int n_episodes;
  demo_episode *episodes; /* owned, n_episodes */
  int n_keys;
  demo_key *keys;   /* owned, n_keys, in concatenation order */
  int obs_dim;      /* sum of keys[i].dim */
  int act_dim;
  long total_steps; /* sum of T */
  char *env_args;   /* owned, the data/env_args JSON text, or NULL if the file has none */
  char env_name[DEMO_NAME_MAX]; /* "env_name" from env_args, or "" */
} demo_set;

typedef struct demo_load_opts {
  const char *obs_keys; /* comma-separated keys in concatenation order; NULL or "": all keys */
  int cut_at_success;   /* 1: end each episode at its first reward >= 1 and mark that step done
                           (what IBRL does with demos); episodes with no success are kept whole */
  int max_episodes;     /* 0: all; otherwise the first max_episodes in demo order */
} demo_load_opts;

/* ---- reading ---- */

/* Loads and validates `path` into *out (zeroed by the caller or not; it is overwritten).
 * `opts` may be NULL (all keys, no cutting, all episodes). Errors: see the top of this file. */
int demo_load(demo_set *out, const char *path, const demo_load_opts *opts);
void demo_set_free(demo_set *s);

/* Lists the obs keys of the first demo of `path` (in the default order of demo_load) into
 * keys[0..cap) and sets *n to how many the file has (which may exceed cap). */
int demo_file_keys(demo_key *keys, int *n, const char *path, int cap);

/* Checks a loaded set's invariants again (ranges, finiteness); demo_load has already done this.
 * Useful after a caller edits a set in memory. */
int demo_set_validate(const demo_set *s, const char *what);

/* ---- writing ---- */

/* Call first in main() of a program that writes demo files, before any other demo_ call: it turns
 * off HDF5's clean-up at exit. When a write fails because the disk is full, HDF5 cannot flush the
 * file's metadata on close either, keeps the file open, and its exit clean-up then crashes on it
 * (SIGSEGV instead of the program's error and exit code). Every file this module writes is closed
 * or thrown away explicitly, so the clean-up has nothing to do otherwise. */
void demo_writer_init(void);

typedef struct demo_writer demo_writer;

/* Creates `path` (written as path.tmp and renamed on a successful close, so a failed run leaves
 * no half file). `keys` (n_keys parts, copied) say how obs rows are split into obs/<key>;
 * `env_args` (copied, may be NULL) is stored as data/env_args. */
int demo_writer_open(demo_writer **out, const char *path, const demo_key *keys, int n_keys, int act_dim,
                     const char *env_args);
/* Appends demo_<n> with T rows: obs (T, obs_dim), actions (T, act_dim), rewards (T), dones (T),
 * and next_obs (T, obs_dim) or NULL. Rejects (IB_EINVAL / IB_ENONFINITE) what demo_load would
 * reject, without writing anything. */
int demo_writer_add(demo_writer *w, const float *obs, const float *actions, const float *rewards,
                    const uint8_t *dones, const float *next_obs, int T);
/* Writes data/total, closes and renames into place. Always releases w (NULL is fine); on error
 * the temporary file is removed. */
int demo_writer_close(demo_writer *w);
/* Discards a writer without creating the file. NULL is fine. */
void demo_writer_abort(demo_writer *w);

/* Writes a whole set (keys, env_args and episodes) to `path`. */
int demo_save(const demo_set *s, const char *path);

/* ---- transitions ---- */

/* The chunked, frame-stacked transition that starts at step t of episode ep, with the same
 * arithmetic as the actor's chunk runner (actor/env/chunk.h):
 *   obs      (n_stack*obs_dim)  frames t, t-1, ..., newest first, zeros before step 0;
 *   action   (k*act_dim)        actions t..t+k-1; rows after the chunk's last executed step repeat
 *                               that step's action (a demo has no other actions to offer);
 *   steps    = min(k, T - t)    env steps the chunk covers (it stops early at a done step);
 *   *reward  = sum_{j<steps} gamma^j r_{t+j};
 *   *discount = 0 if a done step or the episode end lies within the chunk (IBRL treats the end
 *              of a stored episode as terminal), else gamma^steps;
 *   next_obs (n_stack*obs_dim)  the stack at step min(t+steps, T-1) (unused when discount is 0).
 * Returns steps. Preconditions (bugs abort): 0 <= ep < n_episodes, 0 <= t < T, k >= 1,
 * n_stack >= 1. obs, action and next_obs may be NULL when not wanted. Writes only into the
 * caller's buffers; allocation-free. */
int demo_transition(float *obs, float *action, float *reward, float *discount, float *next_obs,
                    const demo_set *s, int ep, int t, int k, int n_stack, float gamma);

/* The n-step version (n >= 1; n = 1 is demo_transition): chains n consecutive chunk
 * transitions, each starting where the previous one ended, with the rule of chunk_nstep in
 * actor/env/chunk.h: reward = r_0 + d_0 r_1 + d_0 d_1 r_2 + ..., discount = d_0 d_1 ...
 * (stopping at the episode end or a zero discount), obs and action from the first, next_obs
 * from the last. With k = 1 this is IBRL's n-step rule. Returns the env steps covered. */
int demo_transition_n(float *obs, float *action, float *reward, float *discount, float *next_obs, const demo_set *s,
                      int ep, int t, int k, int n_stack, float gamma, int n);

/* Parses "a,b,c" into keys[].name (dims 0) and returns how many, or IB_EINVAL for an empty
 * name, a name too long, or more than cap names. */
int demo_keys_parse(demo_key *keys, int cap, const char *csv);

#endif /* IB_DEMO_H */
