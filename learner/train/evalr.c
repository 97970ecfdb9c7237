/* evalr.c: N seeded evaluation episodes stepped in lockstep with one batched policy call.
 *
 * Design. Each round gathers the observations of the episodes still running into rows
 * [0, B) of bobs, asks the policy once, and steps each of those episodes with its row. An
 * episode that finishes drops out of the next round, so the batch shrinks as episodes end. The
 * order of rows is the episode order, which keeps results independent of timing. */
#include "evalr.h"

#include <stdlib.h>
#include <string.h>

#include "ib.h"

int evalr_init(evalr *ev, const char *task, const env_config *ecfg, const chunk_config *ccfg, int n) {
  memset(ev, 0, sizeof *ev);
  IB_CHECK(n > 0);
  ev->envs = ib_xcalloc((size_t)n, sizeof *ev->envs);
  ev->runners = ib_xcalloc((size_t)n, sizeof *ev->runners);
  ev->n = n;
  for (int j = 0; j < n; j++) {
    int rc = env_create(task, ecfg, &ev->envs[j]);
    if (rc == IB_OK) rc = chunk_runner_init(&ev->runners[j], ev->envs[j], ccfg);
    if (rc != IB_OK) {
      evalr_free(ev);
      return rc;
    }
  }
  ev->obs_dim = chunk_obs_dim(&ev->runners[0]);
  ev->act_dim = chunk_act_dim(&ev->runners[0]);
  ev->obs = ib_xcalloc((size_t)n * ev->obs_dim, sizeof(float));
  ev->bobs = ib_xcalloc((size_t)n * ev->obs_dim, sizeof(float));
  ev->bact = ib_xcalloc((size_t)n * ev->act_dim, sizeof(float));
  ev->idx = ib_xcalloc((size_t)n, sizeof(int));
  return IB_OK;
}

void evalr_free(evalr *ev) {
  if (ev->runners)
    for (int j = 0; j < ev->n; j++) chunk_runner_free(&ev->runners[j]);
  if (ev->envs)
    for (int j = 0; j < ev->n; j++) env_destroy(ev->envs[j]);
  free(ev->runners);
  free(ev->envs);
  free(ev->obs);
  free(ev->bobs);
  free(ev->bact);
  free(ev->idx);
  memset(ev, 0, sizeof *ev);
}

int evalr_run(evalr *ev, double *success, uint64_t seed0, evalr_act_fn act, void *ctx) {
  int rc;
  size_t od = (size_t)ev->obs_dim, ad = (size_t)ev->act_dim;
  for (int j = 0; j < ev->n; j++)
    if ((rc = chunk_reset(&ev->runners[j], seed0 + (uint64_t)j, ev->obs + j * od)) != IB_OK) return rc;
  ev->env_steps = 0;
  int solved = 0;
  for (;;) {
    int B = 0;
    for (int j = 0; j < ev->n; j++) {
      if (ev->runners[j].done) continue;
      memcpy(ev->bobs + B * od, ev->obs + j * od, od * sizeof(float));
      ev->idx[B++] = j;
    }
    if (B == 0) break;
    if ((rc = act(ctx, ev->bact, ev->bobs, B)) != IB_OK) return rc;
    for (int i = 0; i < B; i++) {
      int j = ev->idx[i];
      chunk_result res;
      if ((rc = chunk_step(&ev->runners[j], &res, ev->obs + j * od, ev->bact + i * ad)) != IB_OK) return rc;
      ev->env_steps += res.steps;
      if (res.done && ev->runners[j].success) solved++;
    }
  }
  *success = (double)solved / ev->n;
  return IB_OK;
}

uint64_t evalr_seed0(uint64_t run_seed) { return 0x00E7A1000000000ULL + run_seed * 1000003ULL; }
