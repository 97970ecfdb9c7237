/* test_nn_layers.c: the layer kernels of nn.h against a naive reference and finite differences.
 *
 * Shapes are small and odd (B=3, C=5, H=7, OC=2, and B=1) so a swapped stride or a missing
 * transpose cannot cancel out. Every gradient check uses the loss L = Σ out ⊙ R with R fixed,
 * so dL/dout = R feeds the backward. */
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
#define FLOOR_FD 1e-3

static double dot_d(const float *a, const float *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* ---- naive references ---- */

static void test_linear_naive(void) {
  const int shapes[][3] = {{3, 5, 2}, {1, 5, 2}, {17, 33, 9}, {4, 76, 1}};
  rng r;
  rng_seed(&r, 1, "test", 0, "linear");
  for (size_t s = 0; s < IB_ARRAY_LEN(shapes); s++) {
    int B = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
    float *x = malloc(sizeof(float) * B * C), *w = malloc(sizeof(float) * OC * C), *b = malloc(sizeof(float) * OC);
    float *y = malloc(sizeof(float) * B * OC), *yr = malloc(sizeof(float) * B * OC);
    nt_fill(x, (size_t)B * C, -1, 1, &r);
    nt_fill(w, (size_t)OC * C, -1, 1, &r);
    nt_fill(b, OC, -1, 1, &r);
    for (int i = 0; i < B * OC; i++) y[i] = NAN; /* forward must overwrite, not accumulate */
    nn_linear_forward(y, x, w, b, B, C, OC);
    nt_linear_naive(yr, x, w, b, B, C, OC);
    char what[64];
    snprintf(what, sizeof what, "linear fwd %dx%dx%d", B, C, OC);
    TH_CHECK(th_allclose(what, y, yr, (size_t)B * OC, 1e-5, 1e-5));
    free(x), free(w), free(b), free(y), free(yr);
  }
}

static void test_layernorm_naive(void) {
  enum { B = 4, C = 7 };
  float x[B * C], g[C], b[C], y[B * C], yr[B * C], mean[B], rstd[B];
  rng r;
  rng_seed(&r, 2, "test", 0, "ln");
  nt_fill(x, B * C, -2, 2, &r);
  nt_fill(g, C, 0.5f, 1.5f, &r);
  nt_fill(b, C, -1, 1, &r);
  for (int c = 0; c < C; c++) x[3 * C + c] = 0.5f + 1e-4f * rng_uniform(&r); /* variance << eps */
  nn_layernorm_forward(y, mean, rstd, x, g, b, B, C);
  nt_layernorm_naive(yr, x, g, b, B, C, 1e-5);
  TH_CHECK(th_allclose("layernorm fwd", y, yr, B * C, 1e-5, 1e-5));
}

/* ---- finite differences, one layer at a time ---- */

typedef struct lin_ctx {
  float *x, *w, *b, *y, *R;
  int B, C, OC;
} lin_ctx;

static double lin_loss(void *p) {
  lin_ctx *c = p;
  nn_linear_forward(c->y, c->x, c->w, c->b, c->B, c->C, c->OC);
  return dot_d(c->y, c->R, (size_t)c->B * c->OC);
}

static void gradcheck_linear(int B, int C, int OC) {
  rng r;
  rng_seed(&r, 3, "test", B, "lin_fd");
  lin_ctx c = {.B = B, .C = C, .OC = OC};
  c.x = malloc(sizeof(float) * B * C), c.w = malloc(sizeof(float) * OC * C), c.b = malloc(sizeof(float) * OC);
  c.y = malloc(sizeof(float) * B * OC), c.R = malloc(sizeof(float) * B * OC);
  float *dx = calloc((size_t)B * C, 4), *dw = calloc((size_t)OC * C, 4), *db = calloc(OC, 4);
  nt_fill(c.x, (size_t)B * C, -1, 1, &r);
  nt_fill(c.w, (size_t)OC * C, -1, 1, &r);
  nt_fill(c.b, OC, -1, 1, &r);
  nt_fill(c.R, (size_t)B * OC, -1, 1, &r);
  lin_loss(&c);
  nn_linear_backward(dx, dw, db, c.R, c.x, c.w, B, C, OC);
  TH_CHECK(nt_gradcheck("linear dx", c.x, dx, (size_t)B * C, lin_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  TH_CHECK(nt_gradcheck("linear dW", c.w, dw, (size_t)OC * C, lin_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  TH_CHECK(nt_gradcheck("linear db", c.b, db, OC, lin_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  /* Backward accumulates: a second call doubles every gradient. */
  float *dw2 = malloc(sizeof(float) * OC * C);
  memcpy(dw2, dw, sizeof(float) * OC * C);
  nn_linear_backward(NULL, dw, NULL, c.R, c.x, c.w, B, C, OC);
  for (int i = 0; i < OC * C; i++) dw2[i] *= 2.0f;
  TH_CHECK(th_allclose("linear dW accumulates", dw, dw2, (size_t)OC * C, 1e-6, 1e-6));
  free(dw2), free(dx), free(dw), free(db), free(c.x), free(c.w), free(c.b), free(c.y), free(c.R);
}

static void test_linear_fd(void) {
  gradcheck_linear(3, 5, 2);
  gradcheck_linear(1, 5, 2);
  gradcheck_linear(3, 7, 5);
}

typedef struct ln_ctx {
  float *x, *g, *b, *y, *mean, *rstd, *R;
  int B, C;
} ln_ctx;

static double ln_loss(void *p) {
  ln_ctx *c = p;
  nn_layernorm_forward(c->y, c->mean, c->rstd, c->x, c->g, c->b, c->B, c->C);
  return dot_d(c->y, c->R, (size_t)c->B * c->C);
}

static void test_layernorm_fd(void) {
  enum { B = 3, C = 7 };
  float x[B * C], g[C], b[C], y[B * C], mean[B], rstd[B], R[B * C];
  float dx[B * C] = {0}, dg[C] = {0}, db[C] = {0};
  rng r;
  rng_seed(&r, 4, "test", 0, "ln_fd");
  nt_fill(x, B * C, -2, 2, &r);
  nt_fill(g, C, 0.5f, 1.5f, &r);
  nt_fill(b, C, -1, 1, &r);
  nt_fill(R, B * C, -1, 1, &r);
  ln_ctx c = {x, g, b, y, mean, rstd, R, B, C};
  ln_loss(&c);
  nn_layernorm_backward(dx, dg, db, R, x, mean, rstd, g, B, C);
  TH_CHECK(nt_gradcheck("layernorm dx", x, dx, B * C, ln_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  TH_CHECK(nt_gradcheck("layernorm dgamma", g, dg, C, ln_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  TH_CHECK(nt_gradcheck("layernorm dbeta", b, db, C, ln_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
}

typedef struct act_ctx {
  float *x, *y, *R, *mask;
  size_t n;
  int kind; /* 0 relu, 1 tanh, 2 dropout */
} act_ctx;

static double act_loss(void *p) {
  act_ctx *c = p;
  if (c->kind == 0) nn_relu_forward(c->y, c->x, c->n);
  else if (c->kind == 1) nn_tanh_forward(c->y, c->x, c->n);
  else nn_dropout_forward(c->y, c->x, c->mask, c->n);
  return dot_d(c->y, c->R, c->n);
}

static void test_activations_fd(void) {
  enum { N = 3 * 5 };
  const char *names[] = {"relu dx", "tanh dx", "dropout dx"};
  rng r;
  rng_seed(&r, 5, "test", 0, "act_fd");
  for (int kind = 0; kind < 3; kind++) {
    float x[N], y[N], R[N], mask[N], dx[N] = {0};
    nt_fill_away(x, N, 0.1f, &r); /* 100·h from the ReLU kink */
    nt_fill(R, N, -1, 1, &r);
    nn_dropout_mask(mask, N, 0.5f, &r);
    act_ctx c = {x, y, R, mask, N, kind};
    act_loss(&c);
    if (kind == 0) nn_relu_backward(dx, R, y, N);
    else if (kind == 1) nn_tanh_backward(dx, R, y, N);
    else nn_dropout_backward(dx, R, mask, N);
    TH_CHECK(nt_gradcheck(names[kind], x, dx, N, act_loss, &c, H_FD, TOL_FD, FLOOR_FD) == IB_OK);
  }
}

/* ---- dropout masks come from the rng and only from it ---- */

static void test_dropout_mask(void) {
  enum { N = 20001 };
  float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
  rng r1, r2;
  rng_seed(&r1, 7, "learner", 0, "dropout");
  r2 = r1;
  nn_dropout_mask(a, N, 0.3f, &r1);
  nn_dropout_mask(b, N, 0.3f, &r2);
  TH_CHECK_MSG(memcmp(a, b, N * sizeof(float)) == 0, "same rng state must give the same mask");
  TH_CHECK_MSG(memcmp(&r1, &r2, sizeof r1) == 0, "the rng must advance identically");
  nn_dropout_mask(b, N, 0.3f, &r2); /* the next mask differs */
  TH_CHECK_MSG(memcmp(a, b, N * sizeof(float)) != 0, "consecutive masks must differ");
  int zeros = 0, bad = 0;
  for (int i = 0; i < N; i++) {
    if (a[i] == 0.0f) zeros++;
    else if (fabsf(a[i] - 1.0f / 0.7f) > 1e-6f) bad++;
  }
  TH_CHECK_EQ_INT(bad, 0);
  /* p = 0.3 over 20001 draws: sd of the count is ~65, so ±400 is over 6 sd. */
  TH_CHECK_MSG(abs(zeros - 6000) < 400, "dropped %d of %d, expected about 6000", zeros, N);
  /* Exactly the documented draws: two 24-bit uniforms per rng_u64, high bits first, the last odd
   * element from the high bits of one more draw; and the stream ends where those draws end. */
  rng r3, r4;
  rng_seed(&r3, 11, "learner", 0, "dropout");
  r4 = r3;
  nn_dropout_mask(a, N, 0.3f, &r3);
  int diff = 0;
  for (int i = 0; i + 1 < N; i += 2) {
    uint64_t u = rng_u64(&r4);
    float m0 = (float)(u >> 40) / 16777216.0f < 0.3f ? 0.0f : 1.0f / 0.7f;
    float m1 = (float)((u >> 8) & 0xffffffu) / 16777216.0f < 0.3f ? 0.0f : 1.0f / 0.7f;
    diff += a[i] != m0 || a[i + 1] != m1;
  }
  float ml = (float)(rng_u64(&r4) >> 40) / 16777216.0f < 0.3f ? 0.0f : 1.0f / 0.7f;
  diff += a[N - 1] != ml;
  TH_CHECK_EQ_INT(diff, 0);
  TH_CHECK_MSG(memcmp(&r3, &r4, sizeof r3) == 0, "the mask consumes exactly ceil(n/2) draws");
  free(a), free(b);
}

/* The kernel check either passes or names the kernel and the environment variable to set. */
static void test_blas_check(void) {
  const char *core = nn_blas_core();
  TH_CHECK(core != NULL && core[0] != '\0');
  int rc = nn_blas_check();
  printf("    OpenBLAS core %s: %s\n", core, rc == IB_OK ? "ok" : ib_errmsg());
  if (rc != IB_OK) {
    TH_CHECK_EQ_INT(rc, IB_ESTATE);
    TH_CHECK(strstr(ib_errmsg(), core) != NULL && strstr(ib_errmsg(), "OPENBLAS_CORETYPE") != NULL);
  }
}

static const th_case cases[] = {
    {"linear forward vs naive", test_linear_naive},
    {"layernorm forward vs naive", test_layernorm_naive},
    {"linear gradcheck", test_linear_fd},
    {"layernorm gradcheck", test_layernorm_fd},
    {"activation gradcheck", test_activations_fd},
    {"dropout mask from rng", test_dropout_mask},
    {"blas kernel check", test_blas_check},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
