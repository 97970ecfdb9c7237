/* chunk.c: frame stacking and chunked episodes (see chunk.h for the semantics).
 *
 * Design. The stack is one (n_frames, frame_dim) array with the newest row first, so the policy
 * input is the buffer itself; a push is one memmove of the older rows. The runner accumulates
 * the chunk reward as `ret += g * r; g *= gamma` in float, step by step, in exactly the order
 * demo_transition uses, so recorded demos and live rollouts give bit-identical transitions.
 * The time limit is checked after every env step, so a chunk never runs past it. */
#include "chunk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

/* ---- frame stacking ---- */

void stack_init(stack_frames *s, int frame_dim, int n_frames) {
  IB_CHECK(s != NULL && frame_dim > 0 && n_frames > 0);
  s->frame_dim = frame_dim;
  s->n_frames = n_frames;
  s->buf = ib_xcalloc((size_t)frame_dim * (size_t)n_frames, sizeof(float));
}

void stack_free(stack_frames *s) {
  if (!s) return;
  free(s->buf);
  memset(s, 0, sizeof *s);
}

void stack_reset(stack_frames *s, const float *frame) {
  memset(s->buf, 0, (size_t)s->frame_dim * (size_t)s->n_frames * sizeof(float));
  memcpy(s->buf, frame, (size_t)s->frame_dim * sizeof(float));
}

void stack_push(stack_frames *s, const float *frame) {
  size_t fd = (size_t)s->frame_dim;
  memmove(s->buf + fd, s->buf, fd * (size_t)(s->n_frames - 1) * sizeof(float));
  memcpy(s->buf, frame, fd * sizeof(float));
}

void stack_get(float *out, const stack_frames *s) {
  memcpy(out, s->buf, (size_t)s->frame_dim * (size_t)s->n_frames * sizeof(float));
}

/* ---- chunked episodes ---- */

chunk_config chunk_config_default(void) {
  return (chunk_config){.k = 1, .n_stack = 1, .gamma = 0.99f, .horizon = 0, .end_on_success = 1, .timeout_is_terminal = 1};
}

int chunk_runner_init(chunk_runner *r, env *e, const chunk_config *cfg) {
  IB_CHECK(r != NULL && e != NULL && cfg != NULL);
  memset(r, 0, sizeof *r);
  if (cfg->k < 1 || cfg->k > 1024) return ib_fail(IB_EINVAL, "chunk size k = %d is outside [1, 1024]", cfg->k);
  if (cfg->n_stack < 1 || cfg->n_stack > 64)
    return ib_fail(IB_EINVAL, "frame stack n_stack = %d is outside [1, 64]", cfg->n_stack);
  if (!(cfg->gamma > 0.0f && cfg->gamma <= 1.0f))
    return ib_fail(IB_EINVAL, "discount gamma = %g is outside (0, 1] (HINT: IBRL uses 0.99)", (double)cfg->gamma);
  if (cfg->horizon < 0) return ib_fail(IB_EINVAL, "horizon = %d is negative (HINT: 0 = the task's default)", cfg->horizon);
  r->e = e;
  r->cfg = *cfg;
  if (r->cfg.horizon == 0) r->cfg.horizon = e->horizon;
  if (r->cfg.horizon <= 0) return ib_fail(IB_EINVAL, "task %s has no positive horizon", e->name);
  stack_init(&r->stack, e->obs_dim, cfg->n_stack);
  r->frame = ib_xmalloc((size_t)e->obs_dim * sizeof(float));
  return IB_OK;
}

void chunk_runner_free(chunk_runner *r) {
  if (!r) return;
  stack_free(&r->stack);
  free(r->frame);
  memset(r, 0, sizeof *r);
}

int chunk_obs_dim(const chunk_runner *r) { return r->cfg.n_stack * r->e->obs_dim; }
int chunk_act_dim(const chunk_runner *r) { return r->cfg.k * r->e->act_dim; }

int chunk_reset(chunk_runner *r, uint64_t seed, float *obs) {
  IB_CHECK(r != NULL && r->e != NULL && obs != NULL);
  r->started = 0;
  int rc = env_reset(r->e, seed, r->frame);
  if (rc < 0) return rc;
  stack_reset(&r->stack, r->frame);
  stack_get(obs, &r->stack);
  r->t = 0;
  r->started = 1;
  r->done = 0;
  r->success = 0;
  r->episode_return = 0.0f;
  return IB_OK;
}

int chunk_step(chunk_runner *r, chunk_result *res, float *next_obs, const float *actions) {
  IB_CHECK(r != NULL && res != NULL && next_obs != NULL && actions != NULL);
  if (!r->started || r->done)
    return ib_fail(IB_ESTATE, "%s: no episode is running (HINT: call chunk_reset first, and again after done)", r->e->name);
  const int A = r->e->act_dim;
  float ret = 0.0f, g = 1.0f;
  int steps = 0, success = 0, terminal = 0, timeout = 0;
  while (steps < r->cfg.k) {
    env_info info;
    int rc = env_step(r->e, actions + (size_t)steps * A, r->frame, &info);
    if (rc < 0) {
      r->done = 1;
      return rc;
    }
    ret += g * info.reward;
    g *= r->cfg.gamma;
    steps++;
    r->t++;
    r->episode_return += info.reward;
    stack_push(&r->stack, r->frame);
    if (info.success) {
      success = 1;
      if (r->cfg.end_on_success) {
        terminal = 1;
        break;
      }
    }
    if (r->t >= r->cfg.horizon) {
      timeout = 1;
      break;
    }
  }
  if (success) r->success = 1;
  int done = terminal || timeout;
  r->done = done;
  res->reward = ret;
  res->discount = (terminal || (timeout && r->cfg.timeout_is_terminal)) ? 0.0f : g;
  res->steps = steps;
  res->success = success;
  res->done = done;
  res->timeout = timeout && !terminal;
  stack_get(next_obs, &r->stack);
  return IB_OK;
}

/* ---- n-step returns ---- */

void chunk_nstep_init(chunk_nstep *b, int n, int obs_dim, int act_dim) {
  IB_CHECK(b != NULL && n >= 1 && obs_dim > 0 && act_dim > 0);
  memset(b, 0, sizeof *b);
  b->n = n;
  b->obs_dim = obs_dim;
  b->act_dim = act_dim;
  b->obs = ib_xmalloc((size_t)n * obs_dim * sizeof(float));
  b->next_obs = ib_xmalloc((size_t)n * obs_dim * sizeof(float));
  b->act = ib_xmalloc((size_t)n * act_dim * sizeof(float));
  b->reward = ib_xmalloc((size_t)n * sizeof(float));
  b->discount = ib_xmalloc((size_t)n * sizeof(float));
}

void chunk_nstep_free(chunk_nstep *b) {
  if (!b) return;
  free(b->obs);
  free(b->next_obs);
  free(b->act);
  free(b->reward);
  free(b->discount);
  memset(b, 0, sizeof *b);
}

void chunk_nstep_clear(chunk_nstep *b) {
  b->head = 0;
  b->count = 0;
}

/* Folds the pending window (oldest first) into *out and drops the oldest transition. The
 * reward is accumulated forward, `ret += w * r_i; w *= d_i`, stopping at a zero discount. */
static void chunk_nstep_emit(chunk_nstep *b, chunk_nstep_out *out) {
  const int O = b->obs_dim, A = b->act_dim;
  float ret = 0.0f, w = 1.0f;
  int last = b->head, used = 0;
  for (int i = 0; i < b->count; i++) {
    int j = (b->head + i) % b->n;
    ret += w * b->reward[j];
    w *= b->discount[j];
    last = j;
    used++;
    if (w == 0.0f) break;
  }
  memcpy(out->obs, b->obs + (size_t)b->head * O, (size_t)O * sizeof(float));
  memcpy(out->action, b->act + (size_t)b->head * A, (size_t)A * sizeof(float));
  memcpy(out->next_obs, b->next_obs + (size_t)last * O, (size_t)O * sizeof(float));
  out->reward = ret;
  out->discount = w;
  out->n_used = used;
  b->head = (b->head + 1) % b->n;
  b->count--;
}

int chunk_nstep_push(chunk_nstep *b, chunk_nstep_out *out, const float *obs, const float *action, float reward, float discount,
               const float *next_obs) {
  IB_CHECK(b != NULL && out != NULL && obs != NULL && action != NULL && next_obs != NULL);
  const int O = b->obs_dim, A = b->act_dim;
  int j = (b->head + b->count) % b->n;
  memcpy(b->obs + (size_t)j * O, obs, (size_t)O * sizeof(float));
  memcpy(b->act + (size_t)j * A, action, (size_t)A * sizeof(float));
  memcpy(b->next_obs + (size_t)j * O, next_obs, (size_t)O * sizeof(float));
  b->reward[j] = reward;
  b->discount[j] = discount;
  b->count++;
  if (b->count < b->n) return 0;
  chunk_nstep_emit(b, out);
  return 1;
}

int chunk_nstep_flush(chunk_nstep *b, chunk_nstep_out *out) {
  IB_CHECK(b != NULL && out != NULL);
  if (b->count == 0) {
    b->head = 0;
    return 0;
  }
  chunk_nstep_emit(b, out);
  return 1;
}
