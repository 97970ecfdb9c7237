/* nt.h: the numerical witnesses of the nn tests: a naive gemm and LayerNorm, finite-difference
 * gradient checks that RETURN a status, and a reader for the PyTorch vector files (.tv).
 *
 * Everything here is deliberately simple (triple loops, double accumulation) because it is the
 * reference the optimised code is compared against. Not thread-safe (plain test code). */
#ifndef IB_NT_H
#define IB_NT_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* ---- naive references ---- */

/* out (B,OC) = inp (B,C) · w (OC,C)ᵀ + b (OC or NULL), a triple loop in double. */
void nt_linear_naive(float *out, const float *inp, const float *w, const float *b, int B, int C, int OC);
/* Scalar LayerNorm in double: out (B,C). */
void nt_layernorm_naive(float *out, const float *inp, const float *g, const float *b, int B, int C, double eps);
/* Fills x[0..n) with U(lo, hi) from r. */
void nt_fill(float *x, size_t n, float lo, float hi, rng *r);
/* Fills x with values of magnitude in [gap, 1] and random sign (inputs away from a ReLU kink). */
void nt_fill_away(float *x, size_t n, float gap, rng *r);

/* ---- gradient checks ---- */

/* A scalar loss of the current parameter values, computed in double (e.g. Σ out ⊙ R). */
typedef double (*nt_loss_fn)(void *ctx);

/* Central differences on every element of theta[0..n): gn = (L(θ+h·eᵢ) - L(θ-h·eᵢ)) / 2h,
 * compared with the analytic grad[i]: pass if |ga - gn| <= tol · max(|ga| + |gn|, floor).
 * theta is restored exactly. Returns IB_OK, or IB_EMISMATCH with ib_errmsg() naming `what`, the
 * worst index and both values; prints a one-line summary either way. */
int nt_gradcheck(const char *what, float *theta, const float *grad, size_t n, nt_loss_fn f, void *ctx,
                 double h, double tol, double floor);

/* Random-direction check (kann's kad_check_grad, but returning a status): δ = h·s with s random
 * ±1 per element; compares Σ grad·δ with (L(θ+δ) - L(θ-δ)) / 2 by relative error < tol. */
int nt_dircheck(const char *what, float *theta, const float *grad, size_t n, nt_loss_fn f, void *ctx,
                double h, double tol, rng *r);

/* ---- .tv files (written by tests/ref/gen_nn_vectors.py) ---- */

typedef struct nt_tensor {
  char *name;
  int ndim;
  int dims[8];
  size_t n;
  float *data;
} nt_tensor;

typedef struct nt_tv {
  int count;
  nt_tensor *t;
} nt_tv;

/* Loads IB_TESTDATA_DIR/<file>. Returns IB_OK or an IB_E* status with a HINT to re-run the
 * generator. Free with nt_tv_free. */
int nt_tv_load(nt_tv *tv, const char *file);
void nt_tv_free(nt_tv *tv);
/* The tensor called name, or NULL; if n_expect > 0 it must have that many elements, else the
 * call fails the running test case (th) and returns NULL. */
const float *nt_tv_get(const nt_tv *tv, const char *name, size_t n_expect);

#endif /* IB_NT_H */
