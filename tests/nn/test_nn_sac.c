/* test_nn_sac.c: the tanh-squashed Gaussian head: log-prob against the textbook formula in
 * double, finite differences of a loss using both the action and the log-prob, the clamp of
 * log_std, the stable tail, and reproducible noise. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ib.h"
#include "nn.h"
#include "nt.h"
#include "th.h"

enum { B = 3, A = 2 };

/* log N(u; mu, s) - log(1 - tanh²u) summed over A, straight from the definitions in double. */
static double logp_textbook(const float *h, const float *eps, int b) {
  double lp = 0;
  for (int j = 0; j < A; j++) {
    double mu = h[b * 2 * A + j], ls = h[b * 2 * A + A + j];
    ls = fmin(fmax(ls, NN_SAC_LOG_STD_MIN), NN_SAC_LOG_STD_MAX);
    double s = exp(ls), u = mu + s * eps[b * A + j];
    lp += -0.5 * ((u - mu) / s) * ((u - mu) / s) - ls - 0.5 * log(2 * M_PI) - log(1 - tanh(u) * tanh(u));
  }
  return lp;
}

static void test_sac_logp(void) {
  float h[B * 2 * A], eps[B * A], a[B * A], logp[B];
  rng r;
  rng_seed(&r, 1, "test", 0, "sac");
  nt_fill(h, B * 2 * A, -1, 1, &r);
  nn_sac_noise(eps, B * A, &r);
  nn_sac_forward(a, logp, h, eps, B, A);
  for (int b = 0; b < B; b++) {
    TH_CHECK_NEAR(logp[b], logp_textbook(h, eps, b), 1e-4);
    for (int j = 0; j < A; j++) {
      double u = h[b * 2 * A + j] + exp(h[b * 2 * A + A + j]) * eps[b * A + j];
      TH_CHECK_NEAR(a[b * A + j], tanh(u), 1e-6);
    }
  }
  /* Deep in the tail 1 - tanh²u is 0 in float; the stable form stays finite and close to the
   * asymptote log(1 - tanh²u) ≈ log 4 - 2|u|. */
  float ht[2 * A] = {12.0f, -15.0f, -1.0f, -1.0f}, et[A] = {0.1f, -0.2f}, at[A], lt;
  nn_sac_forward(at, &lt, ht, et, 1, A);
  double want = 0;
  for (int j = 0; j < A; j++) {
    double u = ht[j] + exp(-1.0) * et[j];
    want += -0.5 * et[j] * et[j] + 1.0 - 0.5 * log(2 * M_PI) - (log(4.0) - 2 * fabs(u));
  }
  TH_CHECK_MSG(isfinite(lt), "log-prob in the tail must be finite, got %g", lt);
  TH_CHECK_NEAR(lt, want, 1e-3);
  TH_CHECK(at[0] == 1.0f && at[1] == -1.0f);
  /* The deterministic action. */
  float am[B * A];
  nn_sac_mean(am, h, B, A);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < A; j++) TH_CHECK_NEAR(am[b * A + j], tanh(h[b * 2 * A + j]), 1e-6);
}

typedef struct sac_ctx {
  float *h, *eps, *Ra, *Rl;
} sac_ctx;

static double sac_loss(void *p) {
  sac_ctx *c = p;
  float a[B * A], logp[B];
  nn_sac_forward(a, logp, c->h, c->eps, B, A);
  double s = 0;
  for (int i = 0; i < B * A; i++) s += (double)a[i] * c->Ra[i];
  for (int b = 0; b < B; b++) s += (double)logp[b] * c->Rl[b];
  return s;
}

static void test_sac_fd(void) {
  float h[B * 2 * A], eps[B * A], Ra[B * A], Rl[B], dh[B * 2 * A];
  rng r;
  rng_seed(&r, 2, "test", 0, "sac_fd");
  nt_fill(h, B * 2 * A, -1.5f, 1.0f, &r);
  h[0 * 2 * A + A + 1] = -23.0f; /* log_std below the clamp: its gradient must be 0 */
  h[2 * 2 * A + A + 0] = 2.7f;   /* above */
  nn_sac_noise(eps, B * A, &r);
  nt_fill(Ra, B * A, -1, 1, &r);
  nt_fill(Rl, B, -1, 1, &r);
  for (int mode = 0; mode < 3; mode++) { /* action only, log-prob only, both */
    memset(dh, 0, sizeof dh);
    nn_sac_backward(dh, mode != 1 ? Ra : NULL, mode != 0 ? Rl : NULL, h, eps, B, A);
    float Ra0[B * A] = {0}, Rl0[B] = {0};
    sac_ctx cm = {h, eps, mode != 1 ? Ra : Ra0, mode != 0 ? Rl : Rl0};
    const char *names[] = {"sac d/dh via a", "sac d/dh via logp", "sac d/dh via both"};
    /* h = 1e-2: the head is smooth away from the clamp bounds, and logp carries constants of
     * size ~20 whose float32 rounding would dominate a difference over 1e-3. */
    TH_CHECK(nt_gradcheck(names[mode], h, dh, B * 2 * A, sac_loss, &cm, 1e-2, 1e-2, 1e-3) == IB_OK);
    TH_CHECK(dh[0 * 2 * A + A + 1] == 0.0f && dh[2 * 2 * A + A + 0] == 0.0f);
  }
}

static void test_sac_noise_reproducible(void) {
  float e1[64], e2[64];
  rng r1, r2;
  rng_seed(&r1, 3, "actor", 2, "noise");
  r2 = r1;
  nn_sac_noise(e1, 64, &r1);
  nn_sac_noise(e2, 64, &r2);
  TH_CHECK(memcmp(e1, e2, sizeof e1) == 0);
  double m = 0;
  for (int i = 0; i < 64; i++) m += e1[i];
  TH_CHECK_MSG(fabs(m / 64) < 0.5, "noise mean %g", m / 64);
}

static const th_case cases[] = {
    {"sac log-prob", test_sac_logp},
    {"sac gradcheck", test_sac_fd},
    {"sac noise", test_sac_noise_reproducible},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
