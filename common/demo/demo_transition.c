/* demo_transition.c: chunked, frame-stacked and n-step transitions from loaded demos (see
 * demo.h). The arithmetic mirrors actor/env/chunk.c step for step (rewards accumulated forward
 * in float as `ret += g * r; g *= gamma`), so tests can compare recorded demos with live
 * rollouts bit for bit. Allocation-free. */
#include <string.h>

#include "demo.h"
#include "ib.h"

static void stack_at(float *dst, const demo_episode *e, int t, int n_stack, int obs_dim) {
  for (int i = 0; i < n_stack; i++) {
    float *row = dst + (size_t)i * obs_dim;
    int src = t - i;
    if (src >= 0) memcpy(row, e->obs + (size_t)src * obs_dim, (size_t)obs_dim * sizeof(float));
    else memset(row, 0, (size_t)obs_dim * sizeof(float));
  }
}

int demo_transition(float *obs, float *action, float *reward, float *discount, float *next_obs, const demo_set *s, int ep,
                    int t, int k, int n_stack, float gamma) {
  IB_CHECK(s != NULL && ep >= 0 && ep < s->n_episodes && k >= 1 && n_stack >= 1);
  const demo_episode *e = &s->episodes[ep];
  IB_CHECK(t >= 0 && t < e->T);
  int A = s->act_dim;
  int steps = 0, terminal = 0;
  float ret = 0.0f, g = 1.0f;
  while (steps < k && t + steps < e->T) {
    int u = t + steps;
    ret += g * e->rewards[u];
    g *= gamma;
    steps++;
    if (e->dones[u]) {
      terminal = 1;
      break;
    }
  }
  if (t + steps >= e->T) terminal = 1;
  for (int j = 0; j < k && action; j++) {
    int u = t + (j < steps ? j : steps - 1);
    memcpy(action + (size_t)j * A, e->actions + (size_t)u * A, (size_t)A * sizeof(float));
  }
  *reward = ret;
  *discount = terminal ? 0.0f : g;
  if (obs) stack_at(obs, e, t, n_stack, s->obs_dim);
  if (next_obs) stack_at(next_obs, e, IB_MIN(t + steps, e->T - 1), n_stack, s->obs_dim);
  return steps;
}

int demo_transition_n(float *obs, float *action, float *reward, float *discount, float *next_obs, const demo_set *s,
                      int ep, int t, int k, int n_stack, float gamma, int n) {
  IB_CHECK(n >= 1);
  const demo_episode *e = &s->episodes[ep];
  float r, d, ret = 0.0f, w = 1.0f;
  int u = t, covered = 0;
  for (int i = 0; i < n && u < e->T; i++) {
    int steps = demo_transition(i == 0 ? obs : NULL, i == 0 ? action : NULL, &r, &d, next_obs, s, ep, u, k, n_stack, gamma);
    ret += w * r;
    w *= d;
    u += steps;
    covered += steps;
    if (w == 0.0f) break;
  }
  *reward = ret;
  *discount = w;
  return covered;
}
