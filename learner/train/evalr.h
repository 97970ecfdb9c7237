/* evalr.h: batched evaluation: N seeded episodes of a task run side by side, one env per
 * episode, and the policy is asked for the actions of all running episodes in one call (one
 * network forward of B <= N rows instead of N forwards of one row).
 *
 * Episode j starts from env_reset(seed0 + j), so two evaluations with the same seed0 see the
 * same N layouts (IL-only, RL and IBRL evaluations of a run are compared on identical episodes).
 * Episodes end on success or at the time limit (chunk.h). The score is the share that succeeded.
 *
 * Ownership: evalr_init creates N envs and runners owned by the evaluator; evalr_free releases
 * them (accepts a zeroed struct). No allocation in evalr_run. One thread. */
#ifndef IB_EVALR_H
#define IB_EVALR_H

#include <stdint.h>

#include "chunk.h"
#include "env.h"

/* The policy: write actions (B, act_dim) for observations (B, obs_dim). Returns IB_OK or an
 * IB_E* error, which stops the evaluation. */
typedef int (*evalr_act_fn)(void *ctx, float *act, const float *obs, int B);

typedef struct evalr {
  int n;                 /* episodes per evaluation */
  int obs_dim, act_dim;  /* stacked obs and chunk floats */
  env **envs;            /* owned, n */
  chunk_runner *runners; /* owned, n */
  float *obs;            /* owned (n, obs_dim): current obs of every episode */
  float *bobs, *bact;    /* owned (n, obs_dim), (n, act_dim): the batch of running episodes */
  int *idx;              /* owned (n): episode of each batch row */
  long env_steps;        /* env steps of the last evalr_run */
} evalr;

/* Creates n envs of `task` with `ecfg` and chunk runners with `ccfg`. Env errors pass through. */
int evalr_init(evalr *ev, const char *task, const env_config *ecfg, const chunk_config *ccfg, int n);
void evalr_free(evalr *ev);

/* Runs the n episodes and writes the success share to *success. */
int evalr_run(evalr *ev, double *success, uint64_t seed0, evalr_act_fn act, void *ctx);

/* The seed0 of a run's evaluation episodes: disjoint from the training episode seeds (those are
 * drawn from a 64-bit rng stream), equal for every evaluation of the run. */
uint64_t evalr_seed0(uint64_t run_seed);

#endif /* IB_EVALR_H */
