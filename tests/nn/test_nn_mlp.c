/* test_nn_mlp.c: the MLP container and the critic ensemble against a naive layer-by-layer
 * reference, finite differences (every parameter and the input), a random-direction check, the
 * frozen (no param grad) backward, the min-over-subset path, overfitting one batch, Polyak and
 * copy, spec validation, and proof that the gradient checks can fail.
 *
 * Kinks: ReLU and min are not differentiable at a tie, so each check draws inputs until every
 * pre-ReLU value and every min gap is at least KINK_GAP away from the kink (far more than the
 * finite-difference step can move it). The dropout masks of a train-mode forward are fixed by
 * restoring the same rng state before every evaluation of the loss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "nn.h"
#include "nt.h"
#include "th.h"

#define H_FD 1e-3
#define TOL_FD 1e-2
/* Whole-network losses carry ~1e-7 relative float32 noise per output, i.e. ~3e-5 absolute in
 * a central difference with h = 1e-3; the floor keeps gradients below ~1e-4 from being judged
 * on that noise alone (layer-level checks in test_nn_layers.c use 1e-3). */
#define FLOOR_FD 1e-2
#define KINK_GAP 0.03

static double dot_d(const float *a, const float *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* ---- a naive reference forward ---- */

/* Runs the net's layers one kernel at a time from the naive references; the dropout masks are
 * drawn from `r` in the container's order (layer by layer, B·out each). Writes out (B,out_dim)
 * and returns the smallest |pre-ReLU| value seen. */
static double naive_forward(float *out, const nn_mlp *net, const float *x, int B, int train, rng *r) {
  const nn_mlp_spec *s = &net->spec;
  int wmax = s->in_dim;
  for (int l = 0; l < net->n_layers; l++) wmax = IB_MAX(wmax, net->layer[l].out);
  float *a = malloc(sizeof(float) * B * wmax), *z = malloc(sizeof(float) * B * wmax);
  float *mask = malloc(sizeof(float) * B * wmax);
  memcpy(a, x, sizeof(float) * B * s->in_dim);
  double gap = INFINITY;
  for (int l = 0; l < net->n_layers; l++) {
    const nn_layer *L = &net->layer[l];
    size_t n = (size_t)B * L->out;
    nt_linear_naive(z, a, L->w, L->b, B, L->in, L->out);
    if (l < s->n_hidden) {
      if (L->ln) {
        nt_layernorm_naive(a, z, L->ln_g, L->ln_b, B, L->out, 1e-5);
        memcpy(z, a, n * sizeof(float));
      }
      if (train && s->dropout > 0.0f) {
        nn_dropout_mask(mask, n, s->dropout, r);
        for (size_t i = 0; i < n; i++) z[i] *= mask[i];
      }
      for (size_t i = 0; i < n; i++) {
        if (z[i] != 0.0f || !(train && s->dropout > 0.0f)) gap = fmin(gap, fabs(z[i]));
        a[i] = z[i] > 0.0f ? z[i] : 0.0f;
      }
    } else {
      for (size_t i = 0; i < n; i++) out[i] = s->out_act == NN_ACT_TANH ? tanhf(z[i]) : z[i];
    }
  }
  free(a), free(z), free(mask);
  return gap;
}

static nn_mlp_spec small_spec(int in, int h1, int h2, int out, int ln, float p, nn_act act, int maxb) {
  nn_mlp_spec s;
  memset(&s, 0, sizeof s);
  s.in_dim = in;
  s.n_hidden = h2 > 0 ? 2 : 1;
  s.hidden[0] = h1;
  s.hidden[1] = h2;
  s.out_dim = out;
  s.layernorm = ln;
  s.dropout = p;
  s.out_act = act;
  s.max_batch = maxb;
  return s;
}

static void test_mlp_vs_naive(void) {
  const nn_mlp_spec specs[] = {
      small_spec(5, 7, 6, 2, 1, 0.3f, NN_ACT_TANH, 4),
      small_spec(5, 7, 0, 2, 0, 0.0f, NN_ACT_NONE, 4),
      small_spec(69, 33, 17, 7, 0, 0.5f, NN_ACT_TANH, 8),
  };
  for (size_t k = 0; k < IB_ARRAY_LEN(specs); k++) {
    rng init, r;
    rng_seed(&init, 10 + k, "test", 0, "init");
    nn_mlp net;
    TH_CHECK_EQ_INT(nn_mlp_init(&net, &specs[k], &init), IB_OK);
    int B = specs[k].max_batch - 1;
    float *x = malloc(sizeof(float) * B * specs[k].in_dim), *yr = malloc(sizeof(float) * B * specs[k].out_dim);
    nt_fill(x, (size_t)B * specs[k].in_dim, -1, 1, &init);
    for (int train = 0; train < 2; train++) {
      rng_seed(&r, 99, "test", 0, "dropout");
      rng r2 = r;
      const float *y = nn_mlp_forward(&net, NULL, x, B, train, &r);
      naive_forward(yr, &net, x, B, train, &r2);
      char what[64];
      snprintf(what, sizeof what, "mlp spec %zu %s", k, train ? "train" : "eval");
      TH_CHECK(th_allclose(what, y, yr, (size_t)B * specs[k].out_dim, 1e-5, 1e-4));
    }
    free(x), free(yr);
    nn_mlp_free(&net);
  }
}

/* ---- finite differences over the whole MLP ---- */

typedef struct mlp_ctx {
  nn_mlp *net;
  float *x, *R;
  int B, train;
  rng r0; /* the dropout stream state every evaluation starts from */
} mlp_ctx;

static double mlp_loss(void *p) {
  mlp_ctx *c = p;
  rng r = c->r0;
  const float *y = nn_mlp_forward(c->net, NULL, c->x, c->B, c->train, &r);
  return dot_d(y, c->R, (size_t)c->B * c->net->spec.out_dim);
}

/* Draws x until no pre-ReLU value is within KINK_GAP of 0; returns 0 if none found. */
static int draw_away_from_kinks(mlp_ctx *c, rng *r) {
  float *tmp = malloc(sizeof(float) * c->B * c->net->spec.out_dim);
  for (int tries = 0; tries < 500; tries++) {
    nt_fill(c->x, (size_t)c->B * c->net->spec.in_dim, -1, 1, r);
    rng rr = c->r0;
    if (naive_forward(tmp, c->net, c->x, c->B, c->train, &rr) >= KINK_GAP) {
      free(tmp);
      return 1;
    }
  }
  free(tmp);
  return 0;
}

static void gradcheck_mlp(const char *name, const nn_mlp_spec *spec, int B, int train) {
  rng init;
  rng_seed(&init, 20, "test", B, name);
  nn_mlp net;
  TH_CHECK_EQ_INT(nn_mlp_init(&net, spec, &init), IB_OK);
  mlp_ctx c = {.net = &net, .B = B, .train = train};
  c.x = malloc(sizeof(float) * B * spec->in_dim);
  c.R = malloc(sizeof(float) * B * spec->out_dim);
  float *dx = calloc((size_t)B * spec->in_dim, sizeof(float));
  rng_seed(&c.r0, 21, "test", B, "dropout");
  nt_fill(c.R, (size_t)B * spec->out_dim, -1, 1, &init);
  if (!draw_away_from_kinks(&c, &init)) {
    TH_CHECK_MSG(0, "%s: could not draw an input away from the ReLU kinks", name);
    goto out;
  }
  nn_mlp_zero_grad(&net);
  mlp_loss(&c);
  nn_mlp_backward(&net, dx, c.R, 1);
  char what[96];
  snprintf(what, sizeof what, "%s params", name);
  float *g = malloc(net.n_params * sizeof(float));
  memcpy(g, net.grads, net.n_params * sizeof(float));
  TH_CHECK(nt_gradcheck(what, net.params, g, net.n_params, mlp_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  snprintf(what, sizeof what, "%s dx", name);
  TH_CHECK(nt_gradcheck(what, c.x, dx, (size_t)B * spec->in_dim, mlp_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  free(g);
out:
  free(c.x), free(c.R), free(dx);
  nn_mlp_free(&net);
}

static void test_mlp_fd(void) {
  nn_mlp_spec a = small_spec(5, 7, 6, 2, 1, 0.3f, NN_ACT_TANH, 3);
  gradcheck_mlp("mlp ln+drop+tanh B=3", &a, 3, 1);
  gradcheck_mlp("mlp ln+drop+tanh B=1", &a, 1, 1);
  nn_mlp_spec b = small_spec(5, 7, 0, 2, 0, 0.0f, NN_ACT_NONE, 3);
  gradcheck_mlp("mlp plain B=3", &b, 3, 0);
  nn_mlp_spec d = small_spec(4, 9, 5, 3, 0, 0.5f, NN_ACT_TANH, 3);
  gradcheck_mlp("mlp drop(actor-like) B=3", &d, 3, 1);
}

static void test_mlp_dircheck(void) {
  nn_mlp_spec s = small_spec(9, 16, 16, 3, 1, 0.0f, NN_ACT_TANH, 8);
  rng init, dir;
  rng_seed(&init, 30, "test", 0, "init");
  rng_seed(&dir, 31, "test", 0, "dir");
  nn_mlp net;
  TH_CHECK_EQ_INT(nn_mlp_init(&net, &s, &init), IB_OK);
  mlp_ctx c = {.net = &net, .B = 8, .train = 0};
  c.x = malloc(sizeof(float) * 8 * 9);
  c.R = malloc(sizeof(float) * 8 * 3);
  nt_fill(c.x, 8 * 9, -1, 1, &init);
  nt_fill(c.R, 8 * 3, -1, 1, &init);
  nn_mlp_zero_grad(&net);
  mlp_loss(&c);
  nn_mlp_backward(&net, NULL, c.R, 1);
  float *g = malloc(net.n_params * sizeof(float));
  memcpy(g, net.grads, net.n_params * sizeof(float));
  /* A direction of ±1e-4 per element moves few ReLUs across 0 in a net of this size; the check
   * is on one scalar, so any systematic error shows. */
  TH_CHECK(nt_dircheck("mlp all params", net.params, g, net.n_params, mlp_loss, &c, 1e-4, 1e-2, &dir) == IB_OK);
  free(g), free(c.x), free(c.R);
  nn_mlp_free(&net);
}

/* A frozen backward (accum_params 0) gives the same input gradient and leaves grads alone. */
static void test_mlp_frozen_backward(void) {
  nn_mlp_spec s = small_spec(6, 8, 8, 1, 1, 0.0f, NN_ACT_NONE, 5);
  rng init;
  rng_seed(&init, 40, "test", 0, "init");
  nn_mlp net;
  TH_CHECK_EQ_INT(nn_mlp_init(&net, &s, &init), IB_OK);
  float x[5 * 6], R[5], dx1[5 * 6] = {0}, dx2[5 * 6] = {0};
  nt_fill(x, 30, -1, 1, &init);
  nt_fill(R, 5, -1, 1, &init);
  for (size_t i = 0; i < net.n_params; i++) net.grads[i] = (float)i; /* a sentinel pattern */
  nn_mlp_forward(&net, NULL, x, 5, 0, NULL);
  nn_mlp_backward(&net, dx1, R, 0);
  int untouched = 1;
  for (size_t i = 0; i < net.n_params; i++) untouched &= net.grads[i] == (float)i;
  TH_CHECK_MSG(untouched, "accum_params 0 must not write grads");
  nn_mlp_zero_grad(&net);
  nn_mlp_backward(&net, dx2, R, 1);
  TH_CHECK(th_allclose("frozen dx == trainable dx", dx1, dx2, 30, 0, 0));
  /* A no_train net (a frozen BC policy) has no grads but still gives dx. */
  nn_mlp_spec fs = s;
  fs.no_train = 1;
  nn_mlp frozen;
  TH_CHECK_EQ_INT(nn_mlp_init(&frozen, &fs, NULL), IB_OK);
  TH_CHECK(frozen.grads == NULL && frozen.adam_m == NULL);
  nn_mlp_copy_params(&frozen, &net);
  float dx3[5 * 6] = {0};
  nn_mlp_forward(&frozen, NULL, x, 5, 0, NULL);
  nn_mlp_backward(&frozen, dx3, R, 0);
  TH_CHECK(th_allclose("no_train dx", dx3, dx2, 30, 0, 0));
  nn_mlp_free(&frozen);
  nn_mlp_free(&net);
}

/* ---- ensemble ---- */

typedef struct ens_ctx {
  nn_ens *ens;
  float *x, *R, *q, *qmin;
  int *argmin;
  int B, k;
  const int *heads;
  int use_min;
} ens_ctx;

static double ens_loss(void *p) {
  ens_ctx *c = p;
  nn_ens_forward(c->ens, c->q, c->x, c->B, c->heads, c->k, 0, NULL);
  if (!c->use_min) return dot_d(c->q, c->R, (size_t)c->B * c->k);
  nn_ens_min_forward(c->qmin, c->argmin, c->q, c->B, c->k);
  return dot_d(c->qmin, c->R, (size_t)c->B);
}

/* Smallest |gap| between the min and the runner-up in any row of q (B,k). */
static double min_gap(const float *q, int B, int k) {
  double g = INFINITY;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < k; i++)
      for (int j = i + 1; j < k; j++) g = fmin(g, fabs((double)q[b * k + i] - q[b * k + j]));
  return g;
}

static void gradcheck_ens(const char *name, int use_min, const int *heads, int k) {
  enum { E = 3, B = 3, IN = 5 };
  nn_mlp_spec s = small_spec(IN, 7, 6, 1, 1, 0.0f, NN_ACT_NONE, B);
  rng init;
  rng_seed(&init, 50, "test", use_min, name);
  nn_ens ens;
  TH_CHECK_EQ_INT(nn_ens_init(&ens, E, &s, &init), IB_OK);
  float x[B * IN], R[B * E], q[B * E], qmin[B], dq[B * E], dx[B * IN] = {0}, tmp[B];
  int argmin[B];
  ens_ctx c = {&ens, x, R, q, qmin, argmin, B, k, heads, use_min};
  nt_fill(R, B * E, -1, 1, &init);
  int ok = 0;
  for (int tries = 0; tries < 500 && !ok; tries++) {
    nt_fill(x, B * IN, -1, 1, &init);
    ok = 1;
    for (int j = 0; j < k; j++) { /* every evaluated head away from its ReLU kinks */
      int e = heads ? heads[j] : j;
      ok &= naive_forward(tmp, &ens.head[e], x, B, 0, NULL) >= KINK_GAP;
    }
    ens_loss(&c);
    if (use_min) ok &= min_gap(q, B, k) >= 0.01;
  }
  TH_CHECK_MSG(ok, "%s: could not draw an input away from the kinks", name);
  if (!ok) goto out;
  nn_ens_zero_grad(&ens);
  ens_loss(&c);
  memset(dq, 0, sizeof dq);
  if (use_min) nn_ens_min_backward(dq, R, argmin, B, k);
  else memcpy(dq, R, sizeof(float) * B * k);
  nn_ens_backward(&ens, dx, dq, 1);
  float *g = malloc(ens.n_params * sizeof(float));
  memcpy(g, ens.grads, ens.n_params * sizeof(float));
  char what[96];
  snprintf(what, sizeof what, "%s params", name);
  TH_CHECK(nt_gradcheck(what, ens.params, g, ens.n_params, ens_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  snprintf(what, sizeof what, "%s dx", name);
  TH_CHECK(nt_gradcheck(what, x, dx, B * IN, ens_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  /* Heads outside the subset get exactly zero gradient. */
  for (int e = 0; e < E; e++) {
    int in = heads == NULL;
    for (int j = 0; heads && j < k; j++) in |= heads[j] == e;
    if (in) continue;
    double n = nn_arena_norm(g + e * ens.head_params, ens.head_params);
    TH_CHECK_MSG(n == 0.0, "head %d is not evaluated but has grad norm %g", e, n);
  }
  free(g);
out:
  nn_ens_free(&ens);
}

static void test_ens_fd(void) {
  static const int pair[2] = {2, 0};
  gradcheck_ens("ens all heads", 0, NULL, 3);
  gradcheck_ens("ens pair {2,0}", 0, pair, 2);
  gradcheck_ens("ens min over pair", 1, pair, 2);
  gradcheck_ens("ens min over all", 1, NULL, 3);
}

/* Each ensemble head computes what a standalone MLP with the same params computes. */
static void test_ens_matches_mlp(void) {
  enum { E = 4, B = 5, IN = 6 };
  nn_mlp_spec s = small_spec(IN, 8, 8, 1, 1, 0.0f, NN_ACT_NONE, B);
  rng init;
  rng_seed(&init, 60, "test", 0, "init");
  nn_ens ens;
  nn_mlp one;
  TH_CHECK_EQ_INT(nn_ens_init(&ens, E, &s, &init), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_init(&one, &s, NULL), IB_OK);
  TH_CHECK_EQ_INT(ens.n_params, E * one.n_params);
  float x[B * IN], q[B * E], qe[B];
  nt_fill(x, B * IN, -1, 1, &init);
  static const int order[E] = {3, 1, 0, 2};
  nn_ens_forward(&ens, q, x, B, order, E, 0, NULL);
  for (int j = 0; j < E; j++) {
    memcpy(one.params, ens.params + order[j] * ens.head_params, one.n_params * sizeof(float));
    nn_mlp_forward(&one, qe, x, B, 0, NULL);
    float col[B];
    for (int b = 0; b < B; b++) col[b] = q[b * E + j];
    char what[48];
    snprintf(what, sizeof what, "ensemble column %d = head %d", j, order[j]);
    TH_CHECK(th_allclose(what, col, qe, B, 0, 0));
  }
  /* Distinct heads draw distinct initial weights... */
  TH_CHECK(memcmp(ens.params, ens.params + ens.head_params, 64) != 0);
  /* ...exactly those of E nn_mlp_init calls on one stream (the header's promise). */
  rng again;
  rng_seed(&again, 60, "test", 0, "init");
  for (int e = 0; e < E; e++) {
    nn_mlp h;
    TH_CHECK_EQ_INT(nn_mlp_init(&h, &s, &again), IB_OK);
    TH_CHECK_MSG(memcmp(h.params, ens.params + e * ens.head_params, h.n_params * sizeof(float)) == 0,
                 "head %d init differs from a standalone init", e);
    nn_mlp_free(&h);
  }
  nn_mlp_free(&one);
  nn_ens_free(&ens);
}

static void test_ens_min_ties(void) {
  const float q[2 * 3] = {1.0f, -2.0f, -2.0f, 0.5f, 0.25f, 3.0f};
  float qmin[2], dq[6] = {0};
  const float dqmin[2] = {1.5f, -1.0f};
  int am[2];
  nn_ens_min_forward(qmin, am, q, 2, 3);
  TH_CHECK_EQ_INT(am[0], 1); /* first of the tied minima, as torch.min */
  TH_CHECK_EQ_INT(am[1], 1);
  TH_CHECK(qmin[0] == -2.0f && qmin[1] == 0.25f);
  nn_ens_min_backward(dq, dqmin, am, 2, 3);
  const float want[6] = {0, 1.5f, 0, 0, -1.0f, 0};
  TH_CHECK(th_allclose("min backward routes to argmin", dq, want, 6, 0, 0));
}

/* ---- training ---- */

static void test_overfit(void) {
  enum { B = 16, IN = 6, OUT = 3, STEPS = 300 };
  nn_mlp_spec s = small_spec(IN, 32, 32, OUT, 1, 0.0f, NN_ACT_TANH, B);
  rng init;
  rng_seed(&init, 70, "test", 0, "init");
  nn_mlp net;
  TH_CHECK_EQ_INT(nn_mlp_init(&net, &s, &init), IB_OK);
  float x[B * IN], y[B * OUT], dout[B * OUT];
  nt_fill(x, B * IN, -1, 1, &init);
  nt_fill(y, B * OUT, -0.8f, 0.8f, &init);
  nn_adam_cfg cfg = nn_adam_defaults(3e-3f);
  double first = 0, last = 0;
  for (int step = 0; step < STEPS; step++) {
    nn_mlp_zero_grad(&net);
    const float *o = nn_mlp_forward(&net, NULL, x, B, 1, NULL);
    double loss = 0;
    for (int i = 0; i < B * OUT; i++) {
      loss += (double)(o[i] - y[i]) * (o[i] - y[i]) / (B * OUT);
      dout[i] = 2.0f * (o[i] - y[i]) / (B * OUT);
    }
    if (step == 0) first = loss;
    last = loss;
    nn_mlp_backward(&net, NULL, dout, 1);
    nn_mlp_adam_step(&net, &cfg);
  }
  printf("    overfit: loss %.6g -> %.6g (%.0fx) in %d Adam steps\n", first, last, first / last, STEPS);
  TH_CHECK_MSG(last * 100.0 <= first, "loss fell only from %g to %g", first, last);
  TH_CHECK_EQ_INT(net.adam_t, STEPS);
  nn_mlp_free(&net);
}

static void test_polyak_copy(void) {
  nn_mlp_spec s = small_spec(5, 7, 6, 2, 1, 0.0f, NN_ACT_NONE, 2);
  rng r1, r2;
  rng_seed(&r1, 80, "test", 0, "a");
  rng_seed(&r2, 81, "test", 0, "b");
  nn_mlp on, tg;
  TH_CHECK_EQ_INT(nn_mlp_init(&on, &s, &r1), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_init(&tg, &s, &r2), IB_OK);
  float *want = malloc(on.n_params * sizeof(float));
  for (size_t i = 0; i < on.n_params; i++) want[i] = 0.99f * tg.params[i] + 0.01f * on.params[i];
  nn_mlp_polyak(&tg, &on, 0.01f);
  TH_CHECK(th_allclose("polyak tau 0.01", tg.params, want, on.n_params, 1e-7, 1e-6));
  nn_mlp_copy_params(&tg, &on);
  TH_CHECK(memcmp(tg.params, on.params, on.n_params * sizeof(float)) == 0);
  free(want);
  nn_mlp_free(&on);
  nn_mlp_free(&tg);
}

/* PyTorch's default init bounds, LayerNorm 1/0, and the same seed giving the same weights. */
static void test_init(void) {
  nn_mlp_spec s = small_spec(76, 64, 32, 1, 1, 0.0f, NN_ACT_NONE, 1);
  rng r1, r2;
  rng_seed(&r1, 90, "test", 0, "init");
  r2 = r1;
  nn_mlp a, b;
  TH_CHECK_EQ_INT(nn_mlp_init(&a, &s, &r1), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_init(&b, &s, &r2), IB_OK);
  TH_CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
  TH_CHECK_EQ_INT(a.n_params, 76 * 64 + 64 + 2 * 64 + 64 * 32 + 32 + 2 * 32 + 32 + 1);
  for (int l = 0; l < a.n_layers; l++) {
    const nn_layer *L = &a.layer[l];
    float bound = 1.0f / sqrtf((float)L->in), wmax = 0;
    double mean = 0;
    for (int i = 0; i < L->out * L->in; i++) {
      wmax = fmaxf(wmax, fabsf(L->w[i]));
      mean += L->w[i];
    }
    for (int i = 0; i < L->out; i++) wmax = fmaxf(wmax, fabsf(L->b[i]));
    TH_CHECK_MSG(wmax <= bound && wmax > 0.9f * bound, "layer %d: max |w| %g vs bound %g", l, wmax, bound);
    TH_CHECK_MSG(fabs(mean / (L->out * L->in)) < 0.1 * bound, "layer %d: weight mean %g", l, mean);
    for (int i = 0; L->ln && i < L->out; i++) TH_CHECK(L->ln_g[i] == 1.0f && L->ln_b[i] == 0.0f);
  }
  nn_mlp_free(&a);
  nn_mlp_free(&b);
}

static void test_bad_specs(void) {
  struct {
    nn_mlp_spec s;
    const char *word;
  } bad[] = {
      {small_spec(0, 7, 6, 2, 1, 0.0f, NN_ACT_NONE, 4), "in_dim"},
      {small_spec(5, 7, 6, 0, 1, 0.0f, NN_ACT_NONE, 4), "out_dim"},
      {small_spec(5, 7, 6, 2, 1, 1.0f, NN_ACT_NONE, 4), "dropout"},
      {small_spec(5, 7, 6, 2, 1, NAN, NN_ACT_NONE, 4), "dropout"},
      {small_spec(5, 7, 6, 2, 1, 0.0f, NN_ACT_RELU, 4), "out_act"},
      {small_spec(5, 7, 6, 2, 1, 0.0f, NN_ACT_NONE, 0), "max_batch"},
      {small_spec(5, -3, 6, 2, 1, 0.0f, NN_ACT_NONE, 4), "hidden[0]"},
  };
  bad[0].s.n_hidden = 2;
  for (size_t i = 0; i < IB_ARRAY_LEN(bad); i++) {
    nn_mlp net;
    int rc = nn_mlp_init(&net, &bad[i].s, NULL);
    TH_CHECK_EQ_INT(rc, IB_EINVAL);
    TH_CHECK_MSG(strstr(ib_errmsg(), bad[i].word) != NULL, "message '%s' should name %s", ib_errmsg(), bad[i].word);
    nn_mlp_free(&net); /* safe after a failed init */
  }
  nn_mlp_spec s = small_spec(5, 7, 6, 2, 1, 0.0f, NN_ACT_NONE, 4);
  s.n_hidden = NN_MAX_HIDDEN + 1;
  nn_mlp net;
  TH_CHECK_EQ_INT(nn_mlp_init(&net, &s, NULL), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "n_hidden") != NULL);
  nn_ens ens;
  nn_mlp_spec h = small_spec(5, 7, 6, 2, 1, 0.0f, NN_ACT_NONE, 4);
  TH_CHECK_EQ_INT(nn_ens_init(&ens, 3, &h, NULL), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "out_dim") != NULL);
  h.out_dim = 1;
  TH_CHECK_EQ_INT(nn_ens_init(&ens, 0, &h, NULL), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "heads") != NULL);
  nn_ens_free(&ens);
}

/* Same seeds, same inputs: bit-identical outputs, gradients and Adam steps (style.md 2.5). */
static void test_determinism(void) {
  nn_mlp_spec s = small_spec(69, 64, 48, 7, 1, 0.5f, NN_ACT_TANH, 32);
  nn_mlp a, b;
  rng ia, ib_, da, db;
  rng_seed(&ia, 5, "learner", 0, "init");
  ib_ = ia;
  rng_seed(&da, 5, "learner", 0, "dropout");
  db = da;
  TH_CHECK_EQ_INT(nn_mlp_init(&a, &s, &ia), IB_OK);
  TH_CHECK_EQ_INT(nn_mlp_init(&b, &s, &ib_), IB_OK);
  float x[32 * 69], d[32 * 7];
  rng r;
  rng_seed(&r, 6, "test", 0, "data");
  nt_fill(x, 32 * 69, -1, 1, &r);
  nt_fill(d, 32 * 7, -1, 1, &r);
  nn_adam_cfg cfg = nn_adam_defaults(1e-3f);
  nn_mlp *nets[2] = {&a, &b};
  rng *drs[2] = {&da, &db};
  for (int k = 0; k < 2; k++)
    for (int step = 0; step < 3; step++) {
      nn_mlp_zero_grad(nets[k]);
      nn_mlp_forward(nets[k], NULL, x, 32, 1, drs[k]);
      nn_mlp_backward(nets[k], NULL, d, 1);
      nn_mlp_adam_step(nets[k], &cfg);
    }
  TH_CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
  TH_CHECK(memcmp(a.grads, b.grads, a.n_params * sizeof(float)) == 0);
  TH_CHECK(memcmp(&da, &db, sizeof da) == 0);
  /* Eval mode neither applies dropout nor draws from the stream it is given. */
  rng before = da;
  float y1[32 * 7], y2[32 * 7];
  nn_mlp_forward(&a, y1, x, 32, 0, &da);
  nn_mlp_forward(&a, y2, x, 32, 0, NULL);
  TH_CHECK(memcmp(&before, &da, sizeof da) == 0);
  TH_CHECK(memcmp(y1, y2, sizeof y1) == 0);
  nn_mlp_free(&a);
  nn_mlp_free(&b);
}

/* The checks above are only worth something if they can fail: corrupt one analytic gradient
 * element in memory and require both checks to report it. */
static void test_checks_can_fail(void) {
  nn_mlp_spec s = small_spec(5, 7, 6, 2, 1, 0.0f, NN_ACT_TANH, 3);
  rng init, dir;
  rng_seed(&init, 95, "test", 0, "init");
  rng_seed(&dir, 96, "test", 0, "dir");
  nn_mlp net;
  TH_CHECK_EQ_INT(nn_mlp_init(&net, &s, &init), IB_OK);
  mlp_ctx c = {.net = &net, .B = 3, .train = 0};
  c.x = malloc(sizeof(float) * 3 * 5);
  c.R = malloc(sizeof(float) * 3 * 2);
  nt_fill(c.R, 6, -1, 1, &init);
  TH_CHECK(draw_away_from_kinks(&c, &init));
  nn_mlp_zero_grad(&net);
  mlp_loss(&c);
  nn_mlp_backward(&net, NULL, c.R, 1);
  float *g = malloc(net.n_params * sizeof(float));
  memcpy(g, net.grads, net.n_params * sizeof(float));
  size_t i = net.layer[1].offset + 3; /* an element of W of layer 1 */
  g[i] = g[i] * 1.5f + 0.05f;
  printf("    (the next two checks are expected to report FAILED)\n");
  TH_CHECK(nt_gradcheck("corrupted grad", net.params, g, net.n_params, mlp_loss, &c, H_FD, TOL_FD, FLOOR_FD) ==
           IB_EMISMATCH);
  TH_CHECK(strstr(ib_errmsg(), "corrupted grad") != NULL);
  /* The direction check sees a sign flip of a whole layer's gradient. */
  for (size_t j = net.layer[0].offset; j < net.layer[0].offset + net.layer[0].size; j++) g[j] = -g[j];
  TH_CHECK(nt_dircheck("flipped layer 0", net.params, g, net.n_params, mlp_loss, &c, 1e-4, 1e-2, &dir) ==
           IB_EMISMATCH);
  free(g), free(c.x), free(c.R);
  nn_mlp_free(&net);
}

static const th_case cases[] = {
    {"mlp forward vs naive", test_mlp_vs_naive},
    {"mlp gradcheck", test_mlp_fd},
    {"mlp direction check", test_mlp_dircheck},
    {"mlp frozen backward", test_mlp_frozen_backward},
    {"ensemble gradcheck", test_ens_fd},
    {"ensemble heads = mlp", test_ens_matches_mlp},
    {"ensemble min ties", test_ens_min_ties},
    {"overfit one batch", test_overfit},
    {"polyak and copy", test_polyak_copy},
    {"init", test_init},
    {"bad specs", test_bad_specs},
    {"determinism", test_determinism},
    {"checks can fail", test_checks_can_fail},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
