/* il.c: BC and chunk-CVAE imitation policies (il.h).
 *
 * Design. A policy is one or two nn_mlp nets plus one scratch block carved at init for
 * max_batch rows, so a train step never allocates. BC is the IBRL state BC: a dropout MLP with a
 * tanh output trained on the summed squared error of the whole chunk. The CVAE follows the
 * ACT-style recipe without the transformer: encoder (obs || chunk) -> [mean | logvar], a
 * reparameterised z, decoder (obs || z) -> chunk; at inference z = 0 (the prior mean).
 *
 * Gradients of the CVAE loss (per row, then / B for the batch mean):
 *   d recon / d dec_out = 2 (dec - a)
 *   z = mean + exp(logvar / 2) * eps  =>  dz/dmean = 1, dz/dlogvar = exp(logvar / 2) * eps / 2
 *   KL = -1/2 sum (1 + logvar - mean^2 - exp(logvar))
 *        => dKL/dmean = mean, dKL/dlogvar = (exp(logvar) - 1) / 2
 * The decoder's input gradient supplies dL/dz (its last `latent` columns).
 *
 * Invariant: a failed step (non-finite loss or gradient) changes no parameter; the grads
 * arenas are scratch and zeroed at the start of every step. */
#include "il.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

/* ---- config ---- */

il_config il_config_default(void) {
  il_config c;
  memset(&c, 0, sizeof c);
  c.kind = IL_BC;
  c.n_layers = 3;
  c.hidden = 1024;
  c.dropout = 0.5f;
  c.latent = 16;
  c.kl_weight = 1.0f;
  c.lr = 1e-4f;
  c.grad_clip = 100.0f;
  c.max_batch = 256;
  c.seed = 1;
  return c;
}

static int cfg_check(const il_config *c) {
  if (c->kind != IL_BC && c->kind != IL_CVAE)
    return ib_fail(IB_EINVAL, "il config: kind %d is not IL_BC (0) or IL_CVAE (1)", (int)c->kind);
  if (c->obs_dim <= 0)
    return ib_fail(IB_EINVAL, "il config: obs_dim %d is not positive (HINT: stacked obs floats)", c->obs_dim);
  if (c->act_dim <= 0)
    return ib_fail(IB_EINVAL, "il config: act_dim %d is not positive (HINT: chunk k x action dim)", c->act_dim);
  if (c->n_layers < 1 || c->n_layers > NN_MAX_HIDDEN)
    return ib_fail(IB_EINVAL, "il config: n_layers %d is outside 1..%d", c->n_layers, NN_MAX_HIDDEN);
  if (c->hidden <= 0) return ib_fail(IB_EINVAL, "il config: hidden %d is not positive", c->hidden);
  if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
    return ib_fail(IB_EINVAL, "il config: dropout %g is outside [0,1)", (double)c->dropout);
  if (c->kind == IL_CVAE && c->latent <= 0)
    return ib_fail(IB_EINVAL, "il config: latent %d must be positive for the CVAE", c->latent);
  if (!(c->kl_weight >= 0.0f) || !isfinite(c->kl_weight))
    return ib_fail(IB_EINVAL, "il config: kl_weight %g must be finite and >= 0", (double)c->kl_weight);
  if (!(c->lr > 0.0f) || !isfinite(c->lr))
    return ib_fail(IB_EINVAL, "il config: lr %g must be positive (HINT: IBRL uses 1e-4)", (double)c->lr);
  if (c->max_batch <= 0)
    return ib_fail(IB_EINVAL, "il config: max_batch %d is not positive", c->max_batch);
  return IB_OK;
}

/* ---- scratch layout ---- */

typedef struct il_views {
  float *dout;   /* (B, A) dLoss/d(decoder or BC output) */
  float *enc_in; /* (B, obs + A)   CVAE */
  float *dec_in; /* (B, obs + L)   CVAE */
  float *eps;    /* (B, L) */
  float *ddec;   /* (B, obs + L)   decoder input gradient */
  float *denc;   /* (B, 2L)        encoder output gradient */
  float *hbuf;   /* (B, 2L)        copy of the encoder output */
} il_views;

static size_t views_bind(il_views *v, float *base, const il_config *c) {
  size_t B = (size_t)c->max_batch, A = (size_t)c->act_dim, O = (size_t)c->obs_dim;
  size_t L = c->kind == IL_CVAE ? (size_t)c->latent : 0;
  size_t off = 0;
#define CARVE(field, n)                     \
  do {                                      \
    if (v) v->field = base ? base + off : NULL; \
    off += (n);                             \
  } while (0)
  CARVE(dout, B * A);
  CARVE(enc_in, L ? B * (O + A) : 0);
  CARVE(dec_in, L ? B * (O + L) : 0);
  CARVE(eps, B * L);
  CARVE(ddec, L ? B * (O + L) : 0);
  CARVE(denc, 2 * B * L);
  CARVE(hbuf, 2 * B * L);
#undef CARVE
  return off;
}

static void spec_of(nn_mlp_spec *s, const il_config *c, int in, int out, nn_act act, int frozen) {
  memset(s, 0, sizeof *s);
  s->in_dim = in;
  s->n_hidden = c->n_layers;
  for (int i = 0; i < c->n_layers; i++) s->hidden[i] = c->hidden;
  s->out_dim = out;
  s->dropout = c->dropout;
  s->out_act = act;
  s->max_batch = c->max_batch;
  s->no_train = frozen;
}

static int build(il_policy *p, const il_config *cfg, int frozen, rng *init) {
  memset(p, 0, sizeof *p);
  int rc = cfg_check(cfg);
  if (rc != IB_OK) return rc;
  p->cfg = *cfg;
  p->frozen = frozen;
  nn_mlp_spec s;
  if (cfg->kind == IL_BC) {
    spec_of(&s, cfg, cfg->obs_dim, cfg->act_dim, NN_ACT_TANH, frozen);
    rc = nn_mlp_init(&p->net, &s, init);
  } else {
    /* Encoder first, then decoder, from one init stream (documented order). */
    spec_of(&s, cfg, cfg->obs_dim + cfg->act_dim, 2 * cfg->latent, NN_ACT_NONE, frozen);
    rc = nn_mlp_init(&p->enc, &s, init);
    if (rc == IB_OK) {
      spec_of(&s, cfg, cfg->obs_dim + cfg->latent, cfg->act_dim, NN_ACT_TANH, frozen);
      rc = nn_mlp_init(&p->net, &s, init);
    }
  }
  if (rc != IB_OK) {
    il_free(p);
    return rc;
  }
  rng_seed(&p->r_dropout, cfg->seed, "il", cfg->rank, "dropout");
  rng_seed(&p->r_latent, cfg->seed, "il", cfg->rank, "latent");
  p->ws_n = views_bind(NULL, NULL, cfg);
  p->ws = ib_xaligned(p->ws_n * sizeof(float) + 64);
  return IB_OK;
}

int il_init(il_policy *p, const il_config *cfg) {
  IB_CHECK(p && cfg);
  rng init;
  rng_seed(&init, cfg->seed, "il", cfg->rank, "init");
  return build(p, cfg, 0, &init);
}

void il_free(il_policy *p) {
  if (!p) return;
  nn_mlp_free(&p->net);
  nn_mlp_free(&p->enc);
  free(p->ws);
  memset(p, 0, sizeof *p);
}

int il_copy_params(il_policy *dst, const il_policy *src) {
  IB_CHECK(dst && src);
  if (dst->cfg.kind != src->cfg.kind || !nn_mlp_same_shape(&dst->net, &src->net) ||
      (src->cfg.kind == IL_CVAE && !nn_mlp_same_shape(&dst->enc, &src->enc)))
    return ib_fail(IB_EMISMATCH, "il copy: the policies differ in kind or layer shapes "
                   "(HINT: build both from the same il_config)");
  nn_mlp_copy_params(&dst->net, &src->net);
  if (src->cfg.kind == IL_CVAE) nn_mlp_copy_params(&dst->enc, &src->enc);
  return IB_OK;
}

int il_clone_sized(il_policy *dst, const il_policy *src, int frozen, int max_batch) {
  IB_CHECK(dst && src && src->net.params);
  il_config c = src->cfg;
  if (max_batch > 0) c.max_batch = max_batch;
  int rc = build(dst, &c, frozen, NULL);
  if (rc != IB_OK) return rc;
  return il_copy_params(dst, src);
}

int il_clone(il_policy *dst, const il_policy *src, int frozen) {
  return il_clone_sized(dst, src, frozen, 0);
}

/* ---- forward pieces ---- */

/* Concatenate rows: out (B, n1 + n2) = [x1 | x2]. */
static void concat_rows(float *out, const float *x1, int n1, const float *x2, int n2, int B) {
  for (int b = 0; b < B; b++) {
    memcpy(out + (size_t)b * (n1 + n2), x1 + (size_t)b * n1, (size_t)n1 * sizeof(float));
    memcpy(out + (size_t)b * (n1 + n2) + n1, x2 + (size_t)b * n2, (size_t)n2 * sizeof(float));
  }
}

void il_predict(il_policy *p, float *act, const float *obs, int B) {
  IB_CHECK(p && act && obs && B >= 1 && B <= p->cfg.max_batch);
  if (p->cfg.kind == IL_BC) {
    nn_mlp_forward(&p->net, act, obs, B, 0, NULL);
    return;
  }
  il_views v;
  views_bind(&v, p->ws, &p->cfg);
  const int O = p->cfg.obs_dim, L = p->cfg.latent;
  /* z = 0: the prior mean. */
  for (int b = 0; b < B; b++) {
    memcpy(v.dec_in + (size_t)b * (O + L), obs + (size_t)b * O, (size_t)O * sizeof(float));
    memset(v.dec_in + (size_t)b * (O + L) + O, 0, (size_t)L * sizeof(float));
  }
  nn_mlp_forward(&p->net, act, v.dec_in, B, 0, NULL);
}

/* Forward with dropout and sampled z; fills the loss parts and v.dout (dLoss/dout, / B).
 * Leaves the caches ready for the backward. */
static void loss_forward(il_policy *p, il_stats *st, il_views *v, const float *obs, const float *act,
                         int B) {
  const il_config *c = &p->cfg;
  const int A = c->act_dim, O = c->obs_dim, L = c->latent;
  const float *out;
  double kl = 0.0;
  if (c->kind == IL_BC) {
    out = nn_mlp_forward(&p->net, NULL, obs, B, 1, &p->r_dropout);
  } else {
    concat_rows(v->enc_in, obs, O, act, A, B);
    const float *h = nn_mlp_forward(&p->enc, NULL, v->enc_in, B, 1, &p->r_dropout);
    memcpy(v->hbuf, h, (size_t)B * 2 * L * sizeof(float));
    nn_sac_noise(v->eps, (size_t)B * L, &p->r_latent);
    for (int b = 0; b < B; b++) {
      const float *mu = v->hbuf + (size_t)b * 2 * L, *lv = mu + L;
      float *z = v->dec_in + (size_t)b * (O + L) + O;
      memcpy(v->dec_in + (size_t)b * (O + L), obs + (size_t)b * O, (size_t)O * sizeof(float));
      for (int l = 0; l < L; l++) {
        z[l] = mu[l] + expf(0.5f * lv[l]) * v->eps[(size_t)b * L + l];
        kl += -0.5 * (1.0 + lv[l] - (double)mu[l] * mu[l] - exp((double)lv[l]));
      }
    }
    out = nn_mlp_forward(&p->net, NULL, v->dec_in, B, 1, &p->r_dropout);
  }
  double recon = 0.0;
  const float inv_b = 1.0f / (float)B;
  for (size_t i = 0; i < (size_t)B * A; i++) {
    float d = out[i] - act[i];
    recon += (double)d * d;
    v->dout[i] = 2.0f * d * inv_b;
  }
  st->recon = recon / B;
  st->kl = kl / B;
  st->loss = st->recon + (double)c->kl_weight * st->kl;
}

double il_eval_loss(il_policy *p, il_stats *st, const float *obs, const float *act, int B) {
  IB_CHECK(p && obs && act && B >= 1 && B <= p->cfg.max_batch);
  il_views v;
  views_bind(&v, p->ws, &p->cfg);
  il_stats s = p->stats;
  loss_forward(p, &s, &v, obs, act, B);
  if (st) *st = s;
  return s.loss;
}

int il_train_step(il_policy *p, const float *obs, const float *act, int B) {
  IB_CHECK(p && obs && act && B >= 1 && B <= p->cfg.max_batch);
  if (p->frozen)
    return ib_fail(IB_ESTATE, "il train: the policy is a frozen copy (HINT: train the source policy)");
  const il_config *c = &p->cfg;
  il_views v;
  views_bind(&v, p->ws, c);
  il_stats st = p->stats;
  loss_forward(p, &st, &v, obs, act, B);
  if (!isfinite(st.loss))
    return ib_fail(IB_ENONFINITE, "il train: loss is %g at step %ld (HINT: check the demo actions "
                   "for NaN and that they lie in [-1, 1])", st.loss, st.steps);
  nn_mlp_zero_grad(&p->net);
  double sq;
  if (c->kind == IL_BC) {
    nn_mlp_backward(&p->net, NULL, v.dout, 1);
    sq = nn_arena_norm(p->net.grads, p->net.n_params);
    sq *= sq;
  } else {
    const int O = c->obs_dim, L = c->latent;
    memset(v.ddec, 0, (size_t)B * (O + L) * sizeof(float));
    nn_mlp_backward(&p->net, v.ddec, v.dout, 1);
    const float kw = c->kl_weight / (float)B;
    for (int b = 0; b < B; b++) {
      const float *mu = v.hbuf + (size_t)b * 2 * L, *lv = mu + L;
      const float *dz = v.ddec + (size_t)b * (O + L) + O, *e = v.eps + (size_t)b * L;
      float *dmu = v.denc + (size_t)b * 2 * L, *dlv = dmu + L;
      for (int l = 0; l < L; l++) {
        float s = expf(0.5f * lv[l]);
        dmu[l] = dz[l] + kw * mu[l];
        dlv[l] = dz[l] * 0.5f * s * e[l] + kw * 0.5f * (s * s - 1.0f);
      }
    }
    nn_mlp_zero_grad(&p->enc);
    nn_mlp_backward(&p->enc, NULL, v.denc, 1);
    double n1 = nn_arena_norm(p->net.grads, p->net.n_params);
    double n2 = nn_arena_norm(p->enc.grads, p->enc.n_params);
    sq = n1 * n1 + n2 * n2;
  }
  double norm = sqrt(sq);
  if (!isfinite(norm))
    return ib_fail(IB_ENONFINITE, "il train: gradient norm is %g at step %ld (HINT: lower lr)",
                   norm, st.steps);
  st.grad_norm = norm;
  if (c->grad_clip > 0.0f && norm > c->grad_clip) {
    /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6). */
    float s = (float)(c->grad_clip / (norm + 1e-6));
    nn_arena_scale(p->net.grads, p->net.n_params, s);
    if (c->kind == IL_CVAE) nn_arena_scale(p->enc.grads, p->enc.n_params, s);
  }
  nn_adam_cfg ac = nn_adam_defaults(c->lr);
  nn_mlp_adam_step(&p->net, &ac);
  if (c->kind == IL_CVAE) nn_mlp_adam_step(&p->enc, &ac);
  st.steps++;
  p->stats = st;
  return IB_OK;
}

uint32_t il_checksum(const il_policy *p) {
  IB_CHECK(p);
  uint32_t crc = 0;
  if (p->net.params) crc = ib_crc32(crc, p->net.params, p->net.n_params * sizeof(float));
  if (p->enc.params) crc = ib_crc32(crc, p->enc.params, p->enc.n_params * sizeof(float));
  return crc;
}

/* ---- files ---- */

int il_save(const il_policy *p, const char *path) {
  IB_CHECK(p && path);
  int with_adam = !p->frozen;
  int rc = nn_mlp_save(&p->net, path, with_adam);
  if (rc != IB_OK || p->cfg.kind != IL_CVAE) return rc;
  char enc[4096];
  if (snprintf(enc, sizeof enc, "%s.enc", path) >= (int)sizeof enc)
    return ib_fail(IB_EINVAL, "il save: path '%s' is too long", path);
  return nn_mlp_save(&p->enc, enc, with_adam);
}

int il_load(il_policy *p, const char *path) {
  IB_CHECK(p && path);
  if (p->cfg.kind != IL_CVAE) return nn_mlp_load(&p->net, path);
  char enc[4096];
  if (snprintf(enc, sizeof enc, "%s.enc", path) >= (int)sizeof enc)
    return ib_fail(IB_EINVAL, "il load: path '%s' is too long", path);
  /* Load the encoder first: if the decoder then fails, the encoder alone moved; restore it from
   * a copy so a failed load changes nothing. */
  float *keep = ib_xmalloc(p->enc.n_params * sizeof(float));
  memcpy(keep, p->enc.params, p->enc.n_params * sizeof(float));
  int rc = nn_mlp_load(&p->enc, enc);
  if (rc == IB_OK) {
    rc = nn_mlp_load(&p->net, path);
    if (rc != IB_OK) memcpy(p->enc.params, keep, p->enc.n_params * sizeof(float));
  }
  free(keep);
  return rc;
}
