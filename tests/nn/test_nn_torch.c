/* test_nn_torch.c: the nn kernels against vectors PyTorch computed in float64
 * (tests/ref/gen_nn_vectors.py writes tests/data/nn_*.tv; torch is not needed to run this).
 *
 * Each case loads the inputs, runs the C kernel in float32 and compares with
 * |c - ref| <= atol + rtol·|ref|. Tolerances: 1e-5/1e-4 for a single kernel, looser after
 * Adam steps and for the 5-step trajectory, where float32 rounding compounds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "nn.h"
#include "nt.h"
#include "th.h"

static int load(nt_tv *tv, const char *file) {
  int rc = nt_tv_load(tv, file);
  TH_CHECK_MSG(rc == IB_OK, "%s", ib_errmsg());
  return rc == IB_OK;
}

#define GET(tv, name, n) nt_tv_get(tv, name, n)

static nn_adam_cfg cfg_from(const float *c) {
  nn_adam_cfg cfg = {.lr = c[0], .beta1 = c[1], .beta2 = c[2], .eps = c[3], .weight_decay = c[4]};
  return cfg;
}

static void test_linear(void) {
  nt_tv tv;
  if (!load(&tv, "nn_linear.tv")) return;
  const char *tags[] = {"b3", "b1"};
  const int Bs[] = {3, 1};
  for (int t = 0; t < 2; t++) {
    const int B = Bs[t], C = 5, OC = 2;
    char n[96];
#define G(field, cnt) (snprintf(n, sizeof n, "%s.%s", tags[t], field), GET(&tv, n, cnt))
    const float *x = G("x", B * C), *w = G("w", OC * C), *b = G("b", OC), *dout = G("dout", B * OC);
    const float *y = G("y", B * OC), *dx = G("dx", B * C), *dw = G("dw", OC * C), *db = G("db", OC);
    if (!x || !w || !b || !dout || !y || !dx || !dw || !db) break;
    float yc[3 * 2], dxc[3 * 5] = {0}, dwc[2 * 5] = {0}, dbc[2] = {0};
    nn_linear_forward(yc, x, w, b, B, C, OC);
    nn_linear_backward(dxc, dwc, dbc, dout, x, w, B, C, OC);
    TH_CHECK(th_allclose("linear y", yc, y, B * OC, 1e-5, 1e-4));
    TH_CHECK(th_allclose("linear dx", dxc, dx, B * C, 1e-5, 1e-4));
    TH_CHECK(th_allclose("linear dW", dwc, dw, OC * C, 1e-5, 1e-4));
    TH_CHECK(th_allclose("linear db", dbc, db, OC, 1e-5, 1e-4));
    /* 3 Adam steps on (W, b) as one arena [W | b], for each optimiser config. */
    const char *cn[] = {"adam", "adamwd"};
    for (int k = 0; k < 2; k++) {
      float p[12], m[12] = {0}, v[12] = {0}, g[12];
      memcpy(p, w, sizeof(float) * 10);
      memcpy(p + 10, b, sizeof(float) * 2);
      snprintf(n, sizeof n, "%s.opt.%s.cfg", tags[t], cn[k]);
      const float *c = GET(&tv, n, 5);
      if (!c) break;
      nn_adam_cfg cfg = cfg_from(c);
      for (int s = 1; s <= 3; s++) {
        memset(g, 0, sizeof g);
        nn_linear_backward(NULL, g, g + 10, dout, x, p, B, C, OC);
        nn_adam_update(p, m, v, g, 12, &cfg, s);
        char n0[96], n1[96];
        snprintf(n0, sizeof n0, "%s.opt.%s.step%d.p0", tags[t], cn[k], s);
        snprintf(n1, sizeof n1, "%s.opt.%s.step%d.p1", tags[t], cn[k], s);
        const float *rw = GET(&tv, n0, 10), *rb = GET(&tv, n1, 2);
        if (!rw || !rb) break;
        char what[96];
        snprintf(what, sizeof what, "linear %s %s step %d W", tags[t], cn[k], s);
        TH_CHECK(th_allclose(what, p, rw, 10, 1e-6, 1e-5));
        snprintf(what, sizeof what, "linear %s %s step %d b", tags[t], cn[k], s);
        TH_CHECK(th_allclose(what, p + 10, rb, 2, 1e-6, 1e-5));
      }
    }
#undef G
  }
  nt_tv_free(&tv);
}

static void test_layernorm(void) {
  nt_tv tv;
  if (!load(&tv, "nn_layernorm.tv")) return;
  const char *tags[] = {"b3", "b1"};
  const int Bs[] = {3, 1};
  for (int t = 0; t < 2; t++) {
    const int B = Bs[t], C = 7;
    char n[96];
#define G(field, cnt) (snprintf(n, sizeof n, "%s.%s", tags[t], field), GET(&tv, n, cnt))
    const float *x = G("x", B * C), *g = G("g", C), *b = G("b", C), *dout = G("dout", B * C);
    const float *y = G("y", B * C), *dx = G("dx", B * C), *dg = G("dg", C), *db = G("db", C);
    if (!x || !g || !b || !dout || !y || !dx || !dg || !db) break;
    float yc[21], mean[3], rstd[3], dxc[21] = {0}, dgc[7] = {0}, dbc[7] = {0};
    nn_layernorm_forward(yc, mean, rstd, x, g, b, B, C);
    nn_layernorm_backward(dxc, dgc, dbc, dout, x, mean, rstd, g, B, C);
    /* Row 2 of b3 is nearly constant, so its output depends on eps: a wrong eps fails here. */
    TH_CHECK(th_allclose("layernorm y", yc, y, B * C, 1e-5, 1e-4));
    TH_CHECK(th_allclose("layernorm dx", dxc, dx, B * C, 1e-4, 1e-4));
    TH_CHECK(th_allclose("layernorm dgamma", dgc, dg, C, 1e-5, 1e-4));
    TH_CHECK(th_allclose("layernorm dbeta", dbc, db, C, 1e-5, 1e-4));
    const char *cn[] = {"adam", "adamwd"};
    for (int k = 0; k < 2; k++) {
      float p[14], m[14] = {0}, v[14] = {0}, gr[14];
      memcpy(p, g, sizeof(float) * 7);
      memcpy(p + 7, b, sizeof(float) * 7);
      snprintf(n, sizeof n, "%s.opt.%s.cfg", tags[t], cn[k]);
      const float *c = GET(&tv, n, 5);
      if (!c) break;
      nn_adam_cfg cfg = cfg_from(c);
      for (int s = 1; s <= 3; s++) {
        memset(gr, 0, sizeof gr);
        nn_layernorm_forward(yc, mean, rstd, x, p, p + 7, B, C);
        nn_layernorm_backward(NULL, gr, gr + 7, dout, x, mean, rstd, p, B, C);
        nn_adam_update(p, m, v, gr, 14, &cfg, s);
        char n0[96], n1[96];
        snprintf(n0, sizeof n0, "%s.opt.%s.step%d.p0", tags[t], cn[k], s);
        snprintf(n1, sizeof n1, "%s.opt.%s.step%d.p1", tags[t], cn[k], s);
        const float *rg = GET(&tv, n0, 7), *rb = GET(&tv, n1, 7);
        if (!rg || !rb) break;
        char what[96];
        snprintf(what, sizeof what, "layernorm %s %s step %d gamma", tags[t], cn[k], s);
        TH_CHECK(th_allclose(what, p, rg, 7, 1e-6, 1e-5));
        snprintf(what, sizeof what, "layernorm %s %s step %d beta", tags[t], cn[k], s);
        TH_CHECK(th_allclose(what, p + 7, rb, 7, 1e-6, 1e-5));
      }
    }
#undef G
  }
  nt_tv_free(&tv);
}

static void test_activations(void) {
  nt_tv tv;
  if (!load(&tv, "nn_act.tv")) return;
  enum { N = 15 };
  const char *names[] = {"relu", "tanh"};
  for (int k = 0; k < 2; k++) {
    char n[64];
#define G(field) (snprintf(n, sizeof n, "%s.%s", names[k], field), GET(&tv, n, N))
    const float *x = G("x"), *dout = G("dout"), *y = G("y"), *dx = G("dx");
#undef G
    if (!x || !dout || !y || !dx) continue;
    float yc[N], dxc[N] = {0};
    if (k == 0) {
      nn_relu_forward(yc, x, N);
      nn_relu_backward(dxc, dout, yc, N);
    } else {
      nn_tanh_forward(yc, x, N);
      nn_tanh_backward(dxc, dout, yc, N);
    }
    snprintf(n, sizeof n, "%s y", names[k]);
    TH_CHECK(th_allclose(n, yc, y, N, 1e-6, 1e-5));
    snprintf(n, sizeof n, "%s dx", names[k]);
    TH_CHECK(th_allclose(n, dxc, dx, N, 1e-6, 1e-5));
  }
  const float *x = GET(&tv, "dropout.x", N), *keep = GET(&tv, "dropout.keep", N), *p = GET(&tv, "dropout.p", 1);
  const float *dout = GET(&tv, "dropout.dout", N), *y = GET(&tv, "dropout.y", N), *dx = GET(&tv, "dropout.dx", N);
  if (x && keep && p && dout && y && dx) {
    float mask[N], yc[N], dxc[N] = {0};
    for (int i = 0; i < N; i++) mask[i] = keep[i] * (1.0f / (1.0f - p[0]));
    nn_dropout_forward(yc, x, mask, N);
    nn_dropout_backward(dxc, dout, mask, N);
    TH_CHECK(th_allclose("dropout y", yc, y, N, 1e-6, 1e-5));
    TH_CHECK(th_allclose("dropout dx", dxc, dx, N, 1e-6, 1e-5));
  }
  nt_tv_free(&tv);
}

static void test_sac(void) {
  nt_tv tv;
  if (!load(&tv, "nn_sac.tv")) return;
  enum { B = 4, A = 3 };
  const float *h = GET(&tv, "sac.h", B * 2 * A), *eps = GET(&tv, "sac.eps", B * A), *da = GET(&tv, "sac.da", B * A);
  const float *dlogp = GET(&tv, "sac.dlogp", B), *a = GET(&tv, "sac.a", B * A), *logp = GET(&tv, "sac.logp", B);
  const float *dh = GET(&tv, "sac.dh", B * 2 * A), *ma = GET(&tv, "sac.mean_a", B * A);
  if (h && eps && da && dlogp && a && logp && dh && ma) {
    float ac[B * A], lc[B], dhc[B * 2 * A] = {0}, mc[B * A];
    nn_sac_forward(ac, lc, h, eps, B, A);
    nn_sac_backward(dhc, da, dlogp, h, eps, B, A);
    nn_sac_mean(mc, h, B, A);
    TH_CHECK(th_allclose("sac a", ac, a, B * A, 1e-6, 1e-5));
    TH_CHECK(th_allclose("sac logp", lc, logp, B, 1e-4, 1e-5));
    TH_CHECK(th_allclose("sac dh", dhc, dh, B * 2 * A, 1e-5, 1e-4));
    TH_CHECK(th_allclose("sac mean action", mc, ma, B * A, 1e-6, 1e-5));
  }
  nt_tv_free(&tv);
}

/* 5 Adam steps of Linear-LN-ReLU x2 + Linear-tanh with an MSE loss, from torch's initial
 * weights (our arena layout is torch's parameter order, so the flat vectors load directly). */
static void test_mlp_trajectory(void) {
  nt_tv tv;
  if (!load(&tv, "nn_mlp.tv")) return;
  const float *dims = GET(&tv, "mlp.dims", 4);
  if (!dims) goto out;
  const int B = 3, IN = (int)dims[0], OUT = (int)dims[3];
  nn_mlp_spec s;
  memset(&s, 0, sizeof s);
  s.in_dim = IN;
  s.n_hidden = 2;
  s.hidden[0] = (int)dims[1];
  s.hidden[1] = (int)dims[2];
  s.out_dim = OUT;
  s.layernorm = 1;
  s.out_act = NN_ACT_TANH;
  s.max_batch = B;
  nn_mlp net;
  TH_CHECK_EQ_INT(nn_mlp_init(&net, &s, NULL), IB_OK);
  const float *x = GET(&tv, "mlp.x", B * IN), *y = GET(&tv, "mlp.y", B * OUT);
  const float *init = GET(&tv, "mlp.init", net.n_params), *fin = GET(&tv, "mlp.final", net.n_params);
  const float *out0 = GET(&tv, "mlp.out0", B * OUT), *grad0 = GET(&tv, "mlp.grad0", net.n_params);
  const float *losses = GET(&tv, "mlp.losses", 5), *c = GET(&tv, "mlp.cfg", 5);
  if (x && y && init && fin && out0 && grad0 && losses && c) {
    memcpy(net.params, init, net.n_params * sizeof(float));
    nn_adam_cfg cfg = cfg_from(c);
    float dout[64];
    for (int step = 0; step < 5; step++) {
      nn_mlp_zero_grad(&net);
      const float *o = nn_mlp_forward(&net, NULL, x, B, 0, NULL);
      double loss = 0;
      for (int i = 0; i < B * OUT; i++) {
        loss += (double)(o[i] - y[i]) * (o[i] - y[i]) / (B * OUT);
        dout[i] = 2.0f * (o[i] - y[i]) / (B * OUT);
      }
      if (step == 0) TH_CHECK(th_allclose("mlp output step 0", o, out0, B * OUT, 1e-5, 1e-4));
      nn_mlp_backward(&net, NULL, dout, 1);
      if (step == 0) TH_CHECK(th_allclose("mlp grads step 0", net.grads, grad0, net.n_params, 1e-5, 1e-3));
      printf("    step %d loss C %.7f torch %.7f\n", step, loss, losses[step]);
      TH_CHECK_NEAR(loss, losses[step], 1e-5 + 1e-4 * losses[step]);
      nn_mlp_adam_step(&net, &cfg);
    }
    TH_CHECK(th_allclose("mlp params after 5 Adam steps", net.params, fin, net.n_params, 1e-5, 1e-4));
  }
  nn_mlp_free(&net);
out:
  nt_tv_free(&tv);
}

static void test_missing_file(void) {
  nt_tv tv;
  TH_CHECK_EQ_INT(nt_tv_load(&tv, "no_such_file.tv"), IB_EIO);
  TH_CHECK(strstr(ib_errmsg(), "gen_nn_vectors.py") != NULL);
}

static const th_case cases[] = {
    {"torch linear", test_linear},
    {"torch layernorm", test_layernorm},
    {"torch activations", test_activations},
    {"torch sac", test_sac},
    {"torch mlp trajectory", test_mlp_trajectory},
    {"vector file missing", test_missing_file},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
