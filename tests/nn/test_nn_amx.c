/* test_nn_amx.c: the AMX bf16 / bf16x3 matrix product (nn_amx.h) and its dispatch (nn_gemm.h).
 *
 * Witnesses:
 *  - a naive double loop. bf16 mode is compared with the double product of the bf16-rounded
 *    inputs (rounded here by a scalar round-to-nearest-even on the bits, independent of the
 *    kernel's VCVTNE2PS2BF16): bf16 products are exact in fp32, so the only error is fp32
 *    summation, tol = 2^-24·(2K + 8)·Σ|a·b|. bf16x3 is compared with the double product of the
 *    fp32 inputs, tol = 3·2^-16·Σ|a·b| (~4.6e-5) + the same summation term: each product a·b
 *    loses lo(a)·lo(b) (<= 2^-16 |a·b|) and two bf16 roundings of lo (<= 2^-16 |a·b| each),
 *    a worst-case bound; the largest relative error seen is printed. One wrong, missing or
 *    duplicated product, a lost lo term (~2^-9 relative) or a wrong transpose is far outside.
 *    Sizes: every combination of {1, 7, 16, 17, 33} in all 4 layouts × beta 0/1, each of the
 *    brief's edge sizes {1..257} in turn against mid-size others, and the learner's big shapes
 *    (256 and 128 rows × 1024 × 1024, 256 × 76 / 69 → 1024) in their layouts, checked on
 *    sampled rows, and K = 2100 (C is revisited after the first 2048). Padding of A, B
 *    (ld > width) holds NaN and must not leak; C beyond its window holds a sentinel that must
 *    survive; beta 0 runs over a NaN-filled C.
 *  - PyTorch (tests/data/nn_amx.tv, tests/nn/gen_amx_vectors.py): torch's bf16 rounding of fixed
 *    inputs (incl. ties and values near powers of two) must equal the kernel's bit for bit (a
 *    1×K·K×1 product through amx_gemm recovers each rounded value exactly), torch.matmul in
 *    float64 of the bf16-rounded inputs against bf16 mode, and a Linear layer forward/backward
 *    (float64 in torch) against nn_linear_forward/backward in bf16x3 mode.
 *  - finite differences: an ib_nn MLP of the critic's kind (LayerNorm + ReLU, 33→64→64→1) in
 *    bf16x3 mode, analytic dW/dx vs central differences of a double loss.
 *  - row independence (bits of a row do not depend on M) and the nn_set_matmul API errors.
 * Every case skips (th_skip) when amx_available() is 0. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "nn.h"
#include "nn_amx.h"
#include "nn_gemm.h"
#include "nt.h"
#include "rng.h"
#include "th.h"

static int have_amx(void) {
  if (amx_available()) return 1;
  th_skip("no AMX-BF16 on this CPU/kernel (amx_available() is 0)");
  return 0;
}

/* Round to nearest even bf16 (NaN kept quiet), returned as a float; denormals flushed to zero as
 * the hardware does. */
static float bf16_round(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0) u &= 0x80000000u; /* denormal or zero: signed zero */
  else if ((u & 0x7fffffffu) > 0x7f800000u) u = (u | 0x00400000u) & 0xffff0000u;
  else u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  float r;
  memcpy(&r, &u, 4);
  return r;
}

/* bf16x3's bound per product (header): lo·lo dropped (<= 2^-16 |a·b|) and each lo rounded
 * (<= 2^-8 of |x - hi| <= 2^-8 |x|, so 2^-16 of |a·b| each): 3·2^-16 ~ 4.6e-5 of Σ|a·b|. */
#define X3_REL (3.0 / 65536.0)

static double worst_rel_x3; /* largest |c - ref| / Σ|a·b| seen in bf16x3 mode */
static double worst_rel_b1; /* same in bf16 mode, against the rounded-input reference */

/* One case: operands with NaN padding, C with a sentinel around the window, compare sampled rows
 * (every row when rstep is 1). Returns 1 if all close. */
static int check_case(amx_mode mode, int ta, int tb, float beta, int M, int N, int K, int pad, int rstep, rng *r) {
  const int arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
  const int lda = acols + pad, ldb = bcols + pad, ldc = N + pad;
  const size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)(M + 1) * ldc;
  float *A = malloc(sizeof(float) * (na + 1)), *B = malloc(sizeof(float) * (nb + 1));
  float *C = malloc(sizeof(float) * nc), *C0 = malloc(sizeof(float) * nc);
  for (size_t i = 0; i < na; i++) A[i] = (int)(i % lda) < acols ? rng_uniform(r) * 2.0f - 1.0f : NAN;
  for (size_t i = 0; i < nb; i++) B[i] = (int)(i % ldb) < bcols ? rng_uniform(r) * 2.0f - 1.0f : NAN;
  for (size_t i = 0; i < nc; i++) {
    const int in_c = i < (size_t)M * ldc && (int)(i % ldc) < N;
    C[i] = in_c ? (beta != 0.0f ? rng_uniform(r) * 2.0f - 1.0f : NAN) : -7.25f;
  }
  memcpy(C0, C, sizeof(float) * nc);
  amx_gemm(C, A, B, beta, ta, tb, M, N, K, lda, ldb, ldc, mode);
  int ok = 1;
  for (int i = 0; i <= M && ok; i++) {
    const int sampled = i == M || i % rstep == 0 || i == M - 1;
    if (!sampled) continue;
    for (int j = 0; j < ldc && ok; j++) {
      const float c = C[(size_t)i * ldc + j];
      if (i == M || j >= N) {
        if (memcmp(&c, &C0[(size_t)i * ldc + j], sizeof c)) {
          TH_CHECK_MSG(0, "%c%c beta %g M %d N %d K %d pad %d: C[%d][%d] outside C changed to %g", ta ? 'T' : 'N',
                       tb ? 'T' : 'N', beta, M, N, K, pad, i, j, c);
          ok = 0;
        }
        continue;
      }
      double s = beta != 0.0f ? C0[(size_t)i * ldc + j] : 0.0, mag = fabs(s);
      for (int k = 0; k < K; k++) {
        float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        if (mode == AMX_BF16) a = bf16_round(a), b = bf16_round(b);
        s += (double)a * b;
        mag += fabs((double)a * b);
      }
      const double sum_tol = ldexp(1.0, -24) * (2.0 * K + 8) * mag;
      const double tol = (mode == AMX_BF16X3 ? X3_REL * mag : 0.0) + sum_tol + 1e-30;
      const double err = fabs(c - s), rel = mag > 0 ? err / mag : err;
      double *worst = mode == AMX_BF16X3 ? &worst_rel_x3 : &worst_rel_b1;
      if (rel > *worst) *worst = rel;
      if (!(err <= tol)) {
        TH_CHECK_MSG(0, "%s %c%c beta %g M %d N %d K %d pad %d: C[%d][%d] = %.9g, reference %.9g (tol %.3g)",
                     mode == AMX_BF16 ? "bf16" : "bf16x3", ta ? 'T' : 'N', tb ? 'T' : 'N', beta, M, N, K, pad, i,
                     j, c, s, tol);
        ok = 0;
      }
    }
  }
  free(A), free(B), free(C), free(C0);
  return ok;
}

static void sweep_small(amx_mode mode) {
  rng r;
  rng_seed(&r, 42, "test", (int)mode, "amx small");
  static const int sz[] = {1, 7, 16, 17, 33};
  const int ns = (int)(sizeof sz / sizeof sz[0]);
  for (int t = 0; t < 4; t++)
    for (int bi = 0; bi < 2; bi++)
      for (int a = 0; a < ns; a++)
        for (int b = 0; b < ns; b++)
          for (int c = 0; c < ns; c++)
            if (!check_case(mode, t >> 1, t & 1, (float)bi, sz[a], sz[b], sz[c], (a + b + c) % 3, 1, &r)) return;
}

/* Each edge size of the brief in each dimension, the other two mid-size (not multiples of 16). */
static void sweep_edges(amx_mode mode) {
  rng r;
  rng_seed(&r, 43, "test", (int)mode, "amx edges");
  static const int sz[] = {1, 7, 15, 16, 17, 31, 32, 33, 69, 76, 100, 257};
  for (int t = 0; t < 4; t++)
    for (size_t s = 0; s < sizeof sz / sizeof sz[0]; s++)
      for (int d = 0; d < 3; d++) {
        const int M = d == 0 ? sz[s] : 45, N = d == 1 ? sz[s] : 50, K = d == 2 ? sz[s] : 67;
        if (!check_case(mode, t >> 1, t & 1, (float)((s + d) & 1), M, N, K, 3, 1, &r)) return;
      }
}

/* The learner's shapes, layouts as ib_nn calls them; rows sampled (the reference is O(MNK)). */
static void sweep_big(amx_mode mode) {
  rng r;
  rng_seed(&r, 44, "test", (int)mode, "amx big");
  check_case(mode, 0, 1, 0.0f, 256, 1024, 1024, 0, 23, &r); /* forward X·Wᵀ */
  check_case(mode, 0, 0, 0.0f, 128, 1024, 1024, 0, 11, &r); /* dX = dZ·W (a thread's half) */
  check_case(mode, 1, 0, 1.0f, 1024, 1024, 256, 0, 97, &r); /* dW += dZᵀ·X */
  check_case(mode, 0, 1, 0.0f, 256, 1024, 76, 0, 7, &r);    /* first layer, K small */
  check_case(mode, 1, 0, 1.0f, 1024, 69, 256, 0, 31, &r);   /* first layer dW */
  for (int t = 0; t < 4; t++) /* K > 2048: more than one pass over C (nn_amx.c KCB) */
    check_case(mode, t >> 1, t & 1, (float)(t & 1), 33, 40, 2100, 1, 1, &r);
}

static void test_bf16_small(void) { if (have_amx()) sweep_small(AMX_BF16); }
static void test_bf16x3_small(void) { if (have_amx()) sweep_small(AMX_BF16X3); }
static void test_bf16_edges(void) { if (have_amx()) sweep_edges(AMX_BF16); }
static void test_bf16x3_edges(void) {
  if (!have_amx()) return;
  worst_rel_x3 = 0;
  sweep_edges(AMX_BF16X3);
  printf("  edge sizes: largest |c - ref| / sum|a*b| in bf16x3 %.3g\n", worst_rel_x3);
}
static void test_bf16_big(void) { if (have_amx()) sweep_big(AMX_BF16); }
static void test_bf16x3_big(void) {
  if (!have_amx()) return;
  worst_rel_x3 = 0;
  sweep_big(AMX_BF16X3);
  printf("  learner shapes: largest |c - ref| / sum|a*b| in bf16x3 %.3g; bf16 (vs rounded inputs, all sweeps "
         "so far) %.3g\n", worst_rel_x3, worst_rel_b1);
}

/* The check can fail: bf16 mode judged by the bf16x3 tolerance against the fp32 reference must
 * be red (its error is ~2^-9), i.e. the tolerance separates the two modes. */
static void test_modes_differ(void) {
  if (!have_amx()) return;
  const int M = 16, N = 16, K = 64;
  float A[16 * 64], B[64 * 16], C1[256], C3[256];
  rng r;
  rng_seed(&r, 45, "test", 0, "amx modes");
  nt_fill(A, sizeof A / sizeof A[0], -1, 1, &r);
  nt_fill(B, sizeof B / sizeof B[0], -1, 1, &r);
  amx_gemm(C1, A, B, 0.0f, AMX_N, AMX_N, M, N, K, K, N, N, AMX_BF16);
  amx_gemm(C3, A, B, 0.0f, AMX_N, AMX_N, M, N, K, K, N, N, AMX_BF16X3);
  double e1 = 0, e3 = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0, mag = 0;
      for (int k = 0; k < K; k++) {
        const double p = (double)A[i * K + k] * B[k * N + j];
        s += p;
        mag += fabs(p);
      }
      e1 = fmax(e1, fabs(C1[i * N + j] - s) / mag);
      e3 = fmax(e3, fabs(C3[i * N + j] - s) / mag);
    }
  printf("  16x16x64: bf16 worst rel %.3g, bf16x3 worst rel %.3g\n", e1, e3);
  TH_CHECK_MSG(e1 > X3_REL, "bf16 mode is as accurate as bf16x3 (%.3g): the tolerance cannot tell them apart",
               e1);
  TH_CHECK_MSG(e3 < X3_REL, "bf16x3 error %.3g", e3);
}

/* Bits of a row do not depend on M (row splits between threads), beta 0 = beta 1 over zeros. */
static void test_rows_independent(void) {
  if (!have_amx()) return;
  const int M = 77, N = 100, K = 130;
  float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
  float *C = malloc(sizeof(float) * M * N), *P = malloc(sizeof(float) * M * N), *Z = calloc((size_t)M * N, 4);
  rng r;
  rng_seed(&r, 46, "test", 0, "amx rows");
  nt_fill(A, (size_t)M * K, -1, 1, &r);
  nt_fill(B, (size_t)K * N, -1, 1, &r);
  for (int mode = 0; mode < 2; mode++) {
    amx_gemm(C, A, B, 0.0f, AMX_N, AMX_T, M, N, K, K, K, N, (amx_mode)mode);
    amx_gemm(P, A, B, 0.0f, AMX_N, AMX_T, 40, N, K, K, K, N, (amx_mode)mode);
    amx_gemm(P + 40 * N, A + 40 * K, B, 0.0f, AMX_N, AMX_T, M - 40, N, K, K, K, N, (amx_mode)mode);
    memset(Z, 0, sizeof(float) * M * N);
    amx_gemm(Z, A, B, 1.0f, AMX_N, AMX_T, M, N, K, K, K, N, (amx_mode)mode);
    TH_CHECK_MSG(memcmp(C, P, sizeof(float) * M * N) == 0, "mode %d: rows split 40 + 37 differ from one call", mode);
    TH_CHECK_MSG(memcmp(C, Z, sizeof(float) * M * N) == 0, "mode %d: beta 0 differs from beta 1 over zeros", mode);
  }
  free(A), free(B), free(C), free(P), free(Z);
}

/* ---- PyTorch vectors ---- */

static int tv_load(nt_tv *tv) {
  if (nt_tv_load(tv, "nn_amx.tv") == IB_OK) return 1;
  TH_CHECK_MSG(0, "%s (this file is written by: OMP_NUM_THREADS=1 /usr/bin/python3 tests/nn/gen_amx_vectors.py)",
               ib_errmsg());
  return 0;
}

/* bf16 rounding bit for bit: C (1,n) = x (1,1)... a K=1 product x·1 in bf16 mode gives bf16(x). */
static void test_torch_rounding(void) {
  if (!have_amx()) return;
  nt_tv tv;
  if (!tv_load(&tv)) return;
  const float *x = nt_tv_get(&tv, "round.x", 0), *xr = nt_tv_get(&tv, "round.bf16", 0);
  const float *one = nt_tv_get(&tv, "round.one", 1);
  if (x && xr && one) {
    size_t n = 0;
    for (int i = 0; i < tv.count; i++)
      if (strcmp(tv.t[i].name, "round.x") == 0) n = tv.t[i].n;
    float *c = malloc(sizeof(float) * n);
    /* C (n,1) = x (n,1) · 1 (1,1): every output is exactly bf16(x) (one exact product) */
    amx_gemm(c, x, one, 0.0f, AMX_N, AMX_N, (int)n, 1, 1, 1, 1, 1, AMX_BF16);
    int bad = 0;
    for (size_t i = 0; i < n && bad < 5; i++)
      if (memcmp(&c[i], &xr[i], 4) != 0 && !(c[i] == 0.0f && xr[i] == 0.0f)) { /* +0 + -0 is +0 */
        TH_CHECK_MSG(0, "bf16(%.9g): kernel %.9g, torch %.9g", x[i], c[i], xr[i]);
        bad++;
      }
    /* the test's own rounding (the naive reference of the sweeps) agrees with torch too */
    for (size_t i = 0; i < n && bad < 5; i++)
      if (memcmp(&(float){bf16_round(x[i])}, &xr[i], 4) != 0) {
        TH_CHECK_MSG(0, "bf16_round(%.9g) = %.9g, torch %.9g", x[i], bf16_round(x[i]), xr[i]);
        bad++;
      }
    free(c);
  }
  nt_tv_free(&tv);
}

/* torch.matmul (float64) of bf16-rounded inputs against bf16 mode, in the three layouts. */
static void test_torch_matmul(void) {
  if (!have_amx()) return;
  nt_tv tv;
  if (!tv_load(&tv)) return;
  enum { M = 21, K = 75, N = 34 };
  const float *a = nt_tv_get(&tv, "mm.a", M * K), *b = nt_tv_get(&tv, "mm.b", K * N);
  const float *bt = nt_tv_get(&tv, "mm.bt", N * K), *at = nt_tv_get(&tv, "mm.at", K * M);
  const float *ref = nt_tv_get(&tv, "mm.ref_bf16", M * N), *ref32 = nt_tv_get(&tv, "mm.ref_fp32", M * N);
  if (a && b && bt && at && ref && ref32) {
    float c[M * N];
    /* bf16: K = 75 products exact in fp32, summed in fp32: 2^-24·(2K+8) of Σ|a·b| <= 75 */
    const double atol = ldexp(1.0, -24) * (2 * K + 8) * K;
    amx_gemm(c, a, b, 0.0f, AMX_N, AMX_N, M, N, K, K, N, N, AMX_BF16);
    th_allclose("bf16 NN vs torch", c, ref, M * N, atol, 0);
    amx_gemm(c, a, bt, 0.0f, AMX_N, AMX_T, M, N, K, K, K, N, AMX_BF16);
    th_allclose("bf16 NT vs torch", c, ref, M * N, atol, 0);
    amx_gemm(c, at, b, 0.0f, AMX_T, AMX_N, M, N, K, M, N, N, AMX_BF16);
    th_allclose("bf16 TN vs torch", c, ref, M * N, atol, 0);
    /* bf16x3 vs the float64 product of the fp32 inputs: X3_REL of Σ|a·b| <= K */
    amx_gemm(c, a, bt, 0.0f, AMX_N, AMX_T, M, N, K, K, K, N, AMX_BF16X3);
    th_allclose("bf16x3 NT vs torch fp64", c, ref32, M * N, X3_REL * K + atol, 0);
  }
  nt_tv_free(&tv);
}

/* A Linear layer forward/backward through ib_nn with nn_set_matmul(BF16X3) against torch fp64. */
static void test_torch_linear(void) {
  if (!have_amx()) return;
  nt_tv tv;
  if (!tv_load(&tv)) return;
  enum { B = 24, C = 69, OC = 48 };
  const float *x = nt_tv_get(&tv, "lin.x", B * C), *w = nt_tv_get(&tv, "lin.w", OC * C);
  const float *bias = nt_tv_get(&tv, "lin.b", OC), *dy = nt_tv_get(&tv, "lin.dy", B * OC);
  const float *y = nt_tv_get(&tv, "lin.y", B * OC), *dx = nt_tv_get(&tv, "lin.dx", B * C);
  const float *dw = nt_tv_get(&tv, "lin.dw", OC * C), *db = nt_tv_get(&tv, "lin.db", OC);
  if (x && w && bias && dy && y && dx && dw && db) {
    float *o = malloc(sizeof(float) * B * OC), *gx = calloc(B * C, 4), *gw = calloc(OC * C, 4), *gb = calloc(OC, 4);
    TH_CHECK_EQ_INT(nn_set_matmul(NN_MATMUL_BF16X3), IB_OK);
    nn_linear_forward(o, x, w, bias, B, C, OC);
    nn_linear_backward(gx, gw, gb, dy, x, w, B, C, OC);
    TH_CHECK_EQ_INT(nn_set_matmul(NN_MATMUL_FP32), IB_OK);
    /* |x|, |dy| <= 1, |w| <= 0.12: Σ|a·b| <= K·max|a||b| */
    const double u = ldexp(1.0, -24);
    th_allclose("linear y (bf16x3)", o, y, B * OC, (X3_REL + u * (2 * C + 8)) * 0.12 * C + 1e-6, 0);
    th_allclose("linear dx (bf16x3)", gx, dx, B * C, (X3_REL + u * (2 * OC + 8)) * 0.12 * OC, 0);
    th_allclose("linear dw (bf16x3)", gw, dw, OC * C, (X3_REL + u * (2 * B + 8)) * B, 0);
    th_allclose("linear db", gb, db, OC, 1e-5 * B, 0);
    free(o), free(gx), free(gw), free(gb);
  }
  nt_tv_free(&tv);
}

/* ---- finite differences of an MLP in bf16x3 mode ---- */

typedef struct fd_ctx {
  nn_mlp *net;
  float *x, *R;
  int B;
} fd_ctx;

static double fd_loss(void *p) {
  fd_ctx *c = p;
  const float *y = nn_mlp_forward(c->net, NULL, c->x, c->B, 0, NULL);
  double s = 0;
  for (int i = 0; i < c->B; i++) s += (double)y[i] * c->R[i];
  return s;
}

/* Smallest |pre-ReLU value| of the net on x (naive reference kernels, fp64 inside). */
static double min_kink_gap(const nn_mlp *net, const float *x, int B) {
  static float a[8 * 64], z[8 * 64], h[8 * 64];
  double gap = INFINITY;
  const float *in = x;
  for (int l = 0; l < net->spec.n_hidden; l++) {
    const nn_layer *L = &net->layer[l];
    nt_linear_naive(z, in, L->w, L->b, B, L->in, L->out);
    nt_layernorm_naive(a, z, L->ln_g, L->ln_b, B, L->out, 1e-5);
    for (int i = 0; i < B * L->out; i++) {
      gap = fmin(gap, fabs(a[i]));
      h[i] = a[i] > 0 ? a[i] : 0;
    }
    in = h; /* read by the next layer's naive linear before h is rewritten */
  }
  return gap;
}

/* Tolerance. bf16x3 keeps ~1e-5 of each product, and perturbing one parameter changes the
 * rounding of everything downstream, so a central difference carries ~1e-5·|L|/h of noise:
 * with h 2e-3 up to ~3e-3 absolute on gradients of 0.01..0.2 (measured: worst 1.6e-2 relative
 * in bf16x3, 9.6e-4 in fp32; bf16 mode fails at 1.0, so the check tells the precisions apart).
 * Hence tol 3e-2 relative with a floor of 0.1 (|ga - gn| <= 3e-3 for small gradients), and a
 * step no larger because the LayerNorm curvature and the ReLU kinks (inputs drawn so that every
 * normalised pre-ReLU value is >= FD_GAP from 0, ~5x the shift the step can cause) limit it. */
#ifndef FD_H /* (-D overrides for experiments) */
#define FD_H 2e-3
#define FD_TOL 3e-2
#define FD_FLOOR 0.1
#define FD_GAP 0.01
#endif

/* Gradient checks of the net in `mode`: returns 1 if both (params unless dx_only, and dx)
 * pass. The failures are recorded by the caller, so a check expected to fail can be run. */
static int fd_run(nn_matmul mode, int dx_only) {
  nn_mlp_spec s = {.in_dim = 33, .n_hidden = 2, .hidden = {64, 64}, .out_dim = 1, .layernorm = 1, .max_batch = 8};
  enum { B = 4 };
  rng init;
  rng_seed(&init, 47, "test", 0, "amx fd");
  nn_mlp net;
  TH_CHECK_EQ_INT(nn_mlp_init(&net, &s, &init), IB_OK);
  float x[B * 33], R[B], dx[B * 33] = {0};
  fd_ctx c = {&net, x, R, B};
  nt_fill(R, B, -1, 1, &init);
  TH_CHECK_EQ_INT(nn_set_matmul(mode), IB_OK);
  /* the LayerNorm'd pre-ReLU values are O(1): redraw x until none is within FD_GAP of the kink */
  int found = 0;
  for (int tries = 0; tries < 500 && !found; tries++) {
    nt_fill(x, (size_t)B * 33, -1, 1, &init);
    found = min_kink_gap(&net, x, B) >= FD_GAP;
  }
  TH_CHECK_MSG(found, "could not draw an input away from the ReLU kinks");
  nn_mlp_zero_grad(&net);
  fd_loss(&c);
  nn_mlp_backward(&net, dx, R, 1);
  float *g = malloc(sizeof(float) * net.n_params);
  memcpy(g, net.grads, sizeof(float) * net.n_params);
  const char *name = nn_matmul_name(mode);
  char what[64];
  int ok = 1;
  if (!dx_only) {
    snprintf(what, sizeof what, "mlp %s params", name);
    ok &= nt_gradcheck(what, net.params, g, net.n_params, fd_loss, &c, FD_H, FD_TOL, FD_FLOOR) == IB_OK;
  }
  snprintf(what, sizeof what, "mlp %s dx", name);
  ok &= nt_gradcheck(what, x, dx, (size_t)B * 33, fd_loss, &c, FD_H, FD_TOL, FD_FLOOR) == IB_OK;
  TH_CHECK_EQ_INT(nn_set_matmul(NN_MATMUL_FP32), IB_OK);
  free(g);
  nn_mlp_free(&net);
  return ok;
}

static void test_fd_mlp(void) {
  if (have_amx()) TH_CHECK_MSG(fd_run(NN_MATMUL_BF16X3, 0), "bf16x3 gradients do not match finite differences");
}

/* The check can fail: in bf16 mode (~2^-9 per product) the same check must be red. */
static void test_fd_can_fail(void) {
  if (have_amx()) TH_CHECK_MSG(!fd_run(NN_MATMUL_BF16, 1), "the gradient check passes bf16 mode: too loose");
}

/* ---- the API ---- */

static void test_api(void) {
  nn_matmul m = NN_MATMUL_FP32;
  TH_CHECK_EQ_INT(nn_get_matmul(), NN_MATMUL_FP32);
  TH_CHECK_EQ_INT(nn_matmul_parse(&m, "bf16x3"), IB_OK);
  TH_CHECK_EQ_INT(m, NN_MATMUL_BF16X3);
  TH_CHECK_EQ_INT(nn_matmul_parse(&m, "bf16"), IB_OK);
  TH_CHECK_EQ_INT(m, NN_MATMUL_BF16);
  TH_CHECK_EQ_INT(nn_matmul_parse(&m, "fp32"), IB_OK);
  TH_CHECK_EQ_INT(m, NN_MATMUL_FP32);
  TH_CHECK_EQ_INT(nn_matmul_parse(&m, "auto"), IB_OK);
  TH_CHECK_EQ_INT(m, NN_MATMUL_AUTO);
  /* auto is a request: it resolves to the mode this machine can run, and get never returns it */
  const nn_matmul want = amx_available() ? NN_MATMUL_BF16X3 : NN_MATMUL_FP32;
  TH_CHECK_EQ_INT(nn_matmul_resolve(NN_MATMUL_AUTO), want);
  TH_CHECK_EQ_INT(nn_matmul_resolve(NN_MATMUL_BF16), NN_MATMUL_BF16);
  TH_CHECK_EQ_INT(nn_set_matmul(NN_MATMUL_AUTO), IB_OK);
  TH_CHECK_EQ_INT(nn_get_matmul(), want);
  TH_CHECK_EQ_INT(nn_set_matmul(NN_MATMUL_FP32), IB_OK);
  TH_CHECK_EQ_INT(nn_matmul_parse(&m, "fp16"), IB_EINVAL);
  TH_CHECK_MSG(strstr(ib_errmsg(), "fp16") && strstr(ib_errmsg(), "bf16x3") && strstr(ib_errmsg(), "HINT"),
               "message: %s", ib_errmsg());
  TH_CHECK_EQ_INT(nn_matmul_parse(&m, NULL), IB_EINVAL);
  TH_CHECK_EQ_INT(nn_set_matmul((nn_matmul)7), IB_EINVAL);
  TH_CHECK(strcmp(nn_matmul_name(NN_MATMUL_BF16X3), "bf16x3") == 0);
  if (amx_available()) {
    TH_CHECK_EQ_INT(nn_set_matmul(NN_MATMUL_BF16), IB_OK);
    TH_CHECK_EQ_INT(nn_get_matmul(), NN_MATMUL_BF16);
    TH_CHECK(nn_gemm_uses_amx(256, 1024, 1024));
    TH_CHECK(!nn_gemm_uses_amx(256, 1, 1024)); /* N tiny: cblas */
    TH_CHECK(!nn_gemm_uses_amx(256, 1024, 7)); /* K short: cblas */
    TH_CHECK(nn_gemm_uses_amx(1, 1024, 1024));  /* M never decides */
  } else {
    TH_CHECK_EQ_INT(nn_set_matmul(NN_MATMUL_BF16), IB_EUNAVAIL);
    TH_CHECK_MSG(strstr(ib_errmsg(), "AMX-BF16") && strstr(ib_errmsg(), "--matmul fp32"), "message: %s",
                 ib_errmsg());
  }
  TH_CHECK_EQ_INT(nn_set_matmul(NN_MATMUL_FP32), IB_OK);
  TH_CHECK(!nn_gemm_uses_amx(256, 1024, 1024));
}

static const th_case cases[] = {
    {"bf16 small sizes, all layouts", test_bf16_small},
    {"bf16x3 small sizes, all layouts", test_bf16x3_small},
    {"bf16 edge sizes", test_bf16_edges},
    {"bf16x3 edge sizes", test_bf16x3_edges},
    {"bf16 learner shapes", test_bf16_big},
    {"bf16x3 learner shapes", test_bf16x3_big},
    {"tolerance separates the modes", test_modes_differ},
    {"rows independent of M", test_rows_independent},
    {"torch bf16 rounding", test_torch_rounding},
    {"torch matmul", test_torch_matmul},
    {"torch linear bf16x3", test_torch_linear},
    {"finite differences, MLP bf16x3", test_fd_mlp},
    {"finite differences reject bf16", test_fd_can_fail},
    {"nn_matmul API", test_api},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
