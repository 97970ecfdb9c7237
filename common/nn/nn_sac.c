/* nn_sac.c: the tanh-squashed diagonal Gaussian policy head of SAC (Haarnoja et al. 2018).
 *
 * Design. Stateless: forward and backward both take the net output h = [mean | log_std] and the
 * noise eps, so the caller owns every buffer and the backward recomputes the few scalars it
 * needs instead of caching them. With ls = clamp(log_std), s = exp(ls), u = mean + s·eps:
 *   a    = tanh(u)
 *   logp = Σ_j [ -eps_j²/2 - ls_j - log(2π)/2 ] - Σ_j log(1 - tanh²(u_j)).
 * The Gaussian term uses eps directly: (u - mean)/s is eps exactly under the reparameterisation,
 * and writing it so avoids dividing by a tiny s. The correction uses the identity
 *   log(1 - tanh²u) = 2·(log 2 - u - softplus(-2u)),
 * which stays finite where 1 - tanh²u underflows to 0 in float (|u| > ~9).
 * Gradients (eps is a constant of the sample):
 *   dlogp/du = -d/du log(1 - tanh²u) = 2·tanh(u);   da/du = 1 - tanh²u
 *   du/dmean = 1;  du/dls = s·eps;  dlogp/dls (direct) = -1;  dls/dlog_std = 1 inside the clamp
 * (torch.clamp passes the gradient at the bounds too), 0 outside. */
#include <math.h>

#include "ib.h"
#include "nn.h"

static const float HALF_LOG_2PI = 0.91893853320467274f;
static const float LOG_2 = 0.69314718055994531f;

static float clamp_ls(float x) {
  return x < NN_SAC_LOG_STD_MIN ? NN_SAC_LOG_STD_MIN : x > NN_SAC_LOG_STD_MAX ? NN_SAC_LOG_STD_MAX : x;
}

/* softplus(x) = log(1 + e^x) without overflow. */
static float softplus(float x) {
  return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
}

/* 1 - tanh²u computed as 4e^{-2|u|}/(1+e^{-2|u|})², which keeps relative accuracy for large |u|
 * where 1 - a·a would cancel to 0. */
static float sech2(float u) {
  float e = expf(-2.0f * fabsf(u));
  float d = 1.0f + e;
  return 4.0f * e / (d * d);
}

void nn_sac_noise(float *eps, size_t n, rng *r) {
  IB_CHECK(eps && r);
  for (size_t i = 0; i < n; i++) eps[i] = rng_normal(r);
}

void nn_sac_forward(float *a, float *logp, const float *h, const float *eps, int B, int A) {
  IB_CHECK(a && h && eps && B > 0 && A > 0);
  for (int b = 0; b < B; b++) {
    const float *mu = h + (size_t)b * 2 * A, *ls = mu + A, *e = eps + (size_t)b * A;
    float lp = 0.0f;
    for (int j = 0; j < A; j++) {
      float l = clamp_ls(ls[j]);
      float u = mu[j] + expf(l) * e[j];
      a[(size_t)b * A + j] = tanhf(u);
      lp += -0.5f * e[j] * e[j] - l - HALF_LOG_2PI - 2.0f * (LOG_2 - u - softplus(-2.0f * u));
    }
    if (logp) logp[b] = lp;
  }
}

void nn_sac_backward(float *dh, const float *da, const float *dlogp, const float *h,
                     const float *eps, int B, int A) {
  IB_CHECK(dh && h && eps && B > 0 && A > 0);
  for (int b = 0; b < B; b++) {
    const float *mu = h + (size_t)b * 2 * A, *ls = mu + A, *e = eps + (size_t)b * A;
    float *dmu = dh + (size_t)b * 2 * A, *dls = dmu + A;
    float gl = dlogp ? dlogp[b] : 0.0f;
    for (int j = 0; j < A; j++) {
      float l = clamp_ls(ls[j]);
      float s = expf(l);
      float u = mu[j] + s * e[j];
      float gu = gl * 2.0f * tanhf(u);
      if (da) gu += da[(size_t)b * A + j] * sech2(u);
      dmu[j] += gu;
      int inside = ls[j] >= NN_SAC_LOG_STD_MIN && ls[j] <= NN_SAC_LOG_STD_MAX;
      if (inside) dls[j] += gu * s * e[j] - gl;
    }
  }
}

void nn_sac_mean(float *a, const float *h, int B, int A) {
  IB_CHECK(a && h && B > 0 && A > 0);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < A; j++) a[(size_t)b * A + j] = tanhf(h[(size_t)b * 2 * A + j]);
}
