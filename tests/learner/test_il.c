/* test_il.c: the IL policies (learner/agent/il.h): BC and chunk-CVAE training reduce the loss
 * on a fixed batch, prediction is deterministic, a frozen clone is independent of its source
 * and refuses training, the CVAE gradient matches finite differences, and bad input fails with
 * a message naming the thing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "il.h"
#include "th.h"

enum { O = 6, A = 4, B = 32 };

static il_config small_cfg(il_kind kind) {
  il_config c = il_config_default();
  c.kind = kind;
  c.obs_dim = O;
  c.act_dim = A;
  c.n_layers = 2;
  c.hidden = 32;
  c.dropout = 0.1f;
  c.latent = 3;
  c.kl_weight = 0.01f;
  c.lr = 1e-3f;
  c.max_batch = B;
  c.seed = 7;
  return c;
}

/* A learnable batch: actions are a smooth function of the observation, inside (-1, 1). */
static void make_data(float *obs, float *act, int n, uint64_t seed) {
  rng r;
  rng_seed(&r, seed, "test", 0, "data");
  for (int i = 0; i < n * O; i++) obs[i] = 2.0f * rng_uniform(&r) - 1.0f;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < A; j++)
      act[i * A + j] = 0.8f * tanhf(obs[i * O + j % O] - 0.5f * obs[i * O + (j + 1) % O]);
}

static void overfit(il_kind kind) {
  il_config c = small_cfg(kind);
  il_policy p;
  TH_CHECK_EQ_INT(il_init(&p, &c), IB_OK);
  float obs[B * O], act[B * A];
  make_data(obs, act, B, 1);
  /* Loss of the deterministic predictor, before and after. */
  float pred[B * A];
  double before = 0.0, after = 0.0;
  il_predict(&p, pred, obs, B);
  for (int i = 0; i < B * A; i++) before += (pred[i] - act[i]) * (pred[i] - act[i]);
  for (int s = 0; s < 400; s++) TH_CHECK_EQ_INT(il_train_step(&p, obs, act, B), IB_OK);
  il_predict(&p, pred, obs, B);
  for (int i = 0; i < B * A; i++) after += (pred[i] - act[i]) * (pred[i] - act[i]);
  TH_CHECK_MSG(after < 0.1 * before, "%s: prediction error %g -> %g did not fall 10x",
               kind == IL_BC ? "BC" : "CVAE", before / B, after / B);
  TH_CHECK(isfinite(p.stats.loss) && p.stats.steps == 400);
  if (kind == IL_CVAE) TH_CHECK(p.stats.kl >= 0.0);
  /* Prediction is deterministic. */
  float pred2[B * A];
  il_predict(&p, pred2, obs, B);
  TH_CHECK(memcmp(pred, pred2, sizeof pred) == 0);
  for (int i = 0; i < B * A; i++) TH_CHECK(pred[i] > -1.0f && pred[i] < 1.0f);
  il_free(&p);
}

static void test_bc_overfit(void) { overfit(IL_BC); }
static void test_cvae_overfit(void) { overfit(IL_CVAE); }

static void test_frozen_clone(void) {
  for (int kind = 0; kind < 2; kind++) {
    il_config c = small_cfg((il_kind)kind);
    il_policy p, f;
    TH_CHECK_EQ_INT(il_init(&p, &c), IB_OK);
    TH_CHECK_EQ_INT(il_clone(&f, &p, 1), IB_OK);
    TH_CHECK(f.frozen && f.net.grads == NULL && f.net.params != p.net.params);
    uint32_t crc0 = il_checksum(&f);
    TH_CHECK_EQ_INT(crc0, il_checksum(&p));
    float obs[B * O], act[B * A], a1[B * A], a2[B * A];
    make_data(obs, act, B, 2);
    il_predict(&p, a1, obs, B);
    il_predict(&f, a2, obs, B);
    TH_CHECK(memcmp(a1, a2, sizeof a1) == 0);
    /* Training the source moves it but not the clone. */
    for (int s = 0; s < 20; s++) TH_CHECK_EQ_INT(il_train_step(&p, obs, act, B), IB_OK);
    TH_CHECK(il_checksum(&p) != crc0);
    TH_CHECK_EQ_INT(il_checksum(&f), crc0);
    /* The frozen copy refuses to train. */
    TH_CHECK_EQ_INT(il_train_step(&f, obs, act, B), IB_ESTATE);
    TH_CHECK(strstr(ib_errmsg(), "frozen") != NULL);
    TH_CHECK_EQ_INT(il_checksum(&f), crc0);
    il_free(&f);
    il_free(&p);
  }
}

static void test_bad_input(void) {
  il_config c = small_cfg(IL_BC);
  il_policy p;
  c.obs_dim = 0;
  TH_CHECK_EQ_INT(il_init(&p, &c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "obs_dim") != NULL);
  il_free(&p); /* zeroed: safe */
  c = small_cfg(IL_CVAE);
  c.latent = 0;
  TH_CHECK_EQ_INT(il_init(&p, &c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "latent") != NULL);
  c = small_cfg(IL_BC);
  c.dropout = 1.0f;
  TH_CHECK_EQ_INT(il_init(&p, &c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "dropout") != NULL);
  /* NaN in the demo actions: IB_ENONFINITE and the parameters do not move. */
  c = small_cfg(IL_BC);
  TH_CHECK_EQ_INT(il_init(&p, &c), IB_OK);
  float obs[B * O], act[B * A];
  make_data(obs, act, B, 3);
  act[5] = NAN;
  uint32_t crc = il_checksum(&p);
  TH_CHECK_EQ_INT(il_train_step(&p, obs, act, B), IB_ENONFINITE);
  TH_CHECK(strstr(ib_errmsg(), "NaN") != NULL);
  TH_CHECK_EQ_INT(il_checksum(&p), crc);
  /* A missing file names the path. */
  TH_CHECK(il_load(&p, "/nonexistent/il.ckpt") != IB_OK);
  TH_CHECK(strstr(ib_errmsg(), "/nonexistent/il.ckpt") != NULL);
  il_free(&p);
}

static void test_save_load(void) {
  for (int kind = 0; kind < 2; kind++) {
    il_config c = small_cfg((il_kind)kind);
    il_policy p, q;
    TH_CHECK_EQ_INT(il_init(&p, &c), IB_OK);
    c.seed = 99;
    TH_CHECK_EQ_INT(il_init(&q, &c), IB_OK);
    TH_CHECK(il_checksum(&p) != il_checksum(&q));
    char path[256];
    snprintf(path, sizeof path, "%s/test_il_%d.ckpt", IB_BINARY_DIR, kind);
    TH_CHECK_EQ_INT(il_save(&p, path), IB_OK);
    TH_CHECK_EQ_INT(il_load(&q, path), IB_OK);
    TH_CHECK_EQ_INT(il_checksum(&q), il_checksum(&p));
    il_free(&p);
    il_free(&q);
    remove(path);
    if (kind == IL_CVAE) {
      char enc[300];
      snprintf(enc, sizeof enc, "%s.enc", path);
      remove(enc);
    }
  }
}

/* Finite differences on the CVAE loss (dropout 0, the latent noise replayed from a saved rng),
 * for every parameter of the decoder's last layer and the encoder's first layer. */
static void test_cvae_gradcheck(void) {
  il_config c = small_cfg(IL_CVAE);
  c.dropout = 0.0f;
  c.kl_weight = 0.5f;
  c.hidden = 8;
  c.grad_clip = 0.0f;
  il_policy p;
  TH_CHECK_EQ_INT(il_init(&p, &c), IB_OK);
  enum { n = 5 };
  float obs[B * O], act[B * A];
  make_data(obs, act, B, 4);
  /* Analytic gradients: one train step leaves them in the grads arenas (no clipping); the
   * parameters it moved are then restored from a copy. */
  rng keep = p.r_latent;
  size_t ne = p.enc.n_params, nd = p.net.n_params;
  float *enc0 = malloc(ne * sizeof(float)), *dec0 = malloc(nd * sizeof(float));
  memcpy(enc0, p.enc.params, ne * sizeof(float));
  memcpy(dec0, p.net.params, nd * sizeof(float));
  TH_CHECK_EQ_INT(il_train_step(&p, obs, act, n), IB_OK);
  float *genc = malloc(ne * sizeof(float)), *gdec = malloc(nd * sizeof(float));
  memcpy(genc, p.enc.grads, ne * sizeof(float));
  memcpy(gdec, p.net.grads, nd * sizeof(float));
  memcpy(p.enc.params, enc0, ne * sizeof(float));
  memcpy(p.net.params, dec0, nd * sizeof(float));
  int bad = 0, checked = 0, retried = 0;
  struct { float *par; const float *g; size_t lo, hi; } sets[2] = {
      {p.enc.params, genc, 0, (size_t)p.enc.layer[0].out * p.enc.layer[0].in},
      {p.net.params, gdec, p.net.layer[p.net.n_layers - 1].offset, nd}};
  for (int s = 0; s < 2; s++)
    for (size_t i = sets[s].lo; i < sets[s].hi; i++) {
      double ga = sets[s].g[i], gn = 0.0;
      int ok = 0;
      /* A ReLU kink within h bends one difference; retry once at h/4 (counted). */
      for (int t = 0; t < 2 && !ok; t++) {
        const float h = t ? 2.5e-4f : 1e-3f;
        float x0 = sets[s].par[i];
        sets[s].par[i] = x0 + h;
        p.r_latent = keep;
        double lp = il_eval_loss(&p, NULL, obs, act, n);
        sets[s].par[i] = x0 - h;
        p.r_latent = keep;
        double lm = il_eval_loss(&p, NULL, obs, act, n);
        sets[s].par[i] = x0;
        gn = (lp - lm) / (2.0 * h);
        ok = fabs(ga - gn) <= 1e-2 * (fabs(ga) + fabs(gn)) || fabs(ga - gn) <= 2e-4;
        retried += !ok && t == 0;
      }
      checked++;
      if (!ok) {
        if (bad < 5) printf("  net %d param %zu: analytic %.6g numeric %.6g\n", s, i, ga, gn);
        bad++;
      }
    }
  printf("  %d gradients checked, %d retried at h/4, %d bad\n", checked, retried, bad);
  TH_CHECK_MSG(retried <= checked / 20, "%d of %d elements needed a retry", retried, checked);
  TH_CHECK_MSG(bad == 0, "%d of %d CVAE gradients disagree with finite differences", bad, checked);
  free(enc0); free(dec0); free(genc); free(gdec);
  il_free(&p);
}

static const th_case cases[] = {
    {"bc overfit", test_bc_overfit},
    {"cvae overfit", test_cvae_overfit},
    {"frozen clone", test_frozen_clone},
    {"bad input", test_bad_input},
    {"save load", test_save_load},
    {"cvae gradcheck", test_cvae_gradcheck},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
