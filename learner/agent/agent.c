/* agent.c: configuration, construction, arenas and the acting-weights blob of the agent.
 *
 * Design. agent_init builds each net from the "init" stream in a fixed order (actor, critic,
 * then the IL placeholder), copies the targets from their online nets, and carves one
 * workspace block (agent_impl.h). An acting-only agent skips everything agent_act does not
 * read (online critic, actor target, Adam arenas), which is what an actor process wants: about
 * a quarter of the learner's memory.
 *
 * The IL policy lives inside the agent as a frozen il_policy (no grads, no Adam): agent_il_set
 * copies parameters INTO it, so the caller's policy and the agent never share memory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent_impl.h"
#include "ib.h"

/* ---- configuration ---- */

agent_config agent_config_default(agent_method method, agent_backbone backbone) {
  agent_config c;
  memset(&c, 0, sizeof c);
  c.method = method;
  c.backbone = backbone;
  c.obs_dim = 69;
  c.act_dim = 7;
  c.actor_layers = 3;
  c.actor_hidden = 1024;
  c.actor_dropout = method == AGENT_IBRL ? 0.5f : 0.0f;
  c.critic_layers = 3;
  c.critic_hidden = 1024;
  c.critic_layernorm = 1;
  c.n_critics = 5;
  c.n_min = 2;
  c.boot_fresh_pair = 1;
  c.actor_q_mean = backbone == AGENT_SAC ? 1 : 0;
  c.max_batch = 256;
  c.lr_actor = 1e-4f;
  c.lr_critic = 1e-4f;
  c.tau = 0.01f;
  c.act_noise = 0.1f;
  c.target_noise = 0.1f;
  c.noise_clip = 0.3f;
  int il = method == AGENT_IBRL;
  c.actor_proposal = il;
  c.boot_proposal = il;
  c.act_select = AGENT_SELECT_SOFT;
  c.boot_select = AGENT_SELECT_SOFT;
  c.beta = 10.0f;
  c.init_temperature = 1.0f;
  c.target_entropy = NAN; /* resolved by agent_init to -act_dim / 2 */
  c.lr_temperature = 3e-4f;
  c.sac_backup_entropy = 1;
  c.rft_bc_weight = 0.1f;
  c.demo_ratio = method == AGENT_RLPD ? 0.5f : 0.0f;
  c.il = il_config_default();
  c.seed = 1;
  return c;
}

static int finite_pos(float x) { return isfinite(x) && x > 0.0f; }

int agent_config_check(const agent_config *c) {
  IB_CHECK(c);
  if ((unsigned)c->method > AGENT_BC)
    return ib_fail(IB_EINVAL, "agent config: method %d is unknown (HINT: ibrl, rlpd, rft, bc)", (int)c->method);
  if ((unsigned)c->backbone > AGENT_SAC)
    return ib_fail(IB_EINVAL, "agent config: backbone %d is unknown (HINT: td3 or sac)", (int)c->backbone);
  if (c->obs_dim <= 0)
    return ib_fail(IB_EINVAL, "agent config: obs_dim %d is not positive (HINT: stacked obs floats)", c->obs_dim);
  if (c->act_dim <= 0)
    return ib_fail(IB_EINVAL, "agent config: act_dim %d is not positive (HINT: k x action dim)", c->act_dim);
  if (c->actor_layers < 0 || c->actor_layers > NN_MAX_HIDDEN || c->critic_layers < 0 ||
      c->critic_layers > NN_MAX_HIDDEN)
    return ib_fail(IB_EINVAL, "agent config: actor_layers %d / critic_layers %d outside 0..%d",
                   c->actor_layers, c->critic_layers, NN_MAX_HIDDEN);
  if ((c->actor_layers > 0 && c->actor_hidden <= 0) || (c->critic_layers > 0 && c->critic_hidden <= 0))
    return ib_fail(IB_EINVAL, "agent config: actor_hidden %d / critic_hidden %d must be positive",
                   c->actor_hidden, c->critic_hidden);
  if (!(c->actor_dropout >= 0.0f && c->actor_dropout < 1.0f))
    return ib_fail(IB_EINVAL, "agent config: actor_dropout %g outside [0,1)", (double)c->actor_dropout);
  if (c->n_critics < 1 || c->n_critics > NN_MAX_HEADS)
    return ib_fail(IB_EINVAL, "agent config: n_critics %d outside 1..%d", c->n_critics, NN_MAX_HEADS);
  if (c->n_min < 1 || c->n_min > c->n_critics)
    return ib_fail(IB_EINVAL, "agent config: n_min %d outside 1..n_critics (%d) (HINT: IBRL uses 2 of 5)",
                   c->n_min, c->n_critics);
  if (c->max_batch <= 0)
    return ib_fail(IB_EINVAL, "agent config: max_batch %d is not positive", c->max_batch);
  if (!finite_pos(c->lr_actor) || !finite_pos(c->lr_critic))
    return ib_fail(IB_EINVAL, "agent config: lr_actor %g / lr_critic %g must be positive",
                   (double)c->lr_actor, (double)c->lr_critic);
  if (!(c->tau > 0.0f && c->tau <= 1.0f))
    return ib_fail(IB_EINVAL, "agent config: tau %g outside (0,1] (HINT: 0.01)", (double)c->tau);
  if (!(c->act_noise >= 0.0f) || !(c->target_noise >= 0.0f) || !(c->noise_clip >= 0.0f) ||
      !isfinite(c->act_noise) || !isfinite(c->target_noise) || !isfinite(c->noise_clip))
    return ib_fail(IB_EINVAL, "agent config: act_noise %g, target_noise %g, noise_clip %g must be finite and >= 0",
                   (double)c->act_noise, (double)c->target_noise, (double)c->noise_clip);
  if ((unsigned)c->act_select > AGENT_SELECT_SOFT || (unsigned)c->boot_select > AGENT_SELECT_SOFT)
    return ib_fail(IB_EINVAL, "agent config: act_select %d / boot_select %d unknown (HINT: greedy or soft)",
                   (int)c->act_select, (int)c->boot_select);
  if (!(c->beta >= 0.0f) || !isfinite(c->beta))
    return ib_fail(IB_EINVAL, "agent config: beta %g must be finite and >= 0", (double)c->beta);
  if (c->backbone == AGENT_SAC) {
    if (!finite_pos(c->init_temperature) || !finite_pos(c->lr_temperature) ||
        (!isnan(c->target_entropy) && !isfinite(c->target_entropy)))
      return ib_fail(IB_EINVAL, "agent config: SAC init_temperature %g and lr_temperature %g must be positive, "
                     "target_entropy %g finite or NaN (auto)", (double)c->init_temperature, (double)c->lr_temperature,
                     (double)c->target_entropy);
  }
  if (!(c->rft_bc_weight >= 0.0f) || !isfinite(c->rft_bc_weight))
    return ib_fail(IB_EINVAL, "agent config: rft_bc_weight %g must be finite and >= 0", (double)c->rft_bc_weight);
  if (!(c->demo_ratio >= 0.0f && c->demo_ratio <= 1.0f))
    return ib_fail(IB_EINVAL, "agent config: demo_ratio %g outside [0,1]", (double)c->demo_ratio);
  if (c->method != AGENT_IBRL && (c->actor_proposal || c->boot_proposal))
    return ib_fail(IB_EINVAL, "agent config: method %s has no IL policy, so actor_proposal and boot_proposal "
                   "must be 0 (HINT: use agent_config_default)", agent_method_name(c->method));
  return IB_OK;
}

/* ---- names ---- */

static int parse_name(int *out, const char *name, const char *const *names, int n, const char *what) {
  IB_CHECK(out);
  for (int i = 0; i < n; i++)
    if (name && names[i] && !strcmp(name, names[i])) {
      *out = i;
      return IB_OK;
    }
  char list[256] = "";
  for (int i = 0; i < n; i++)
    if (names[i]) {
      strncat(list, names[i], sizeof list - strlen(list) - 1);
      if (i + 1 < n) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
  return ib_fail(IB_ENOTFOUND, "unknown %s '%s' (HINT: one of %s)", what, name ? name : "(null)", list);
}

static const char *const method_names[] = {"ibrl", "rlpd", "rft", "bc"};
static const char *const backbone_names[] = {"td3", "sac"};
static const char *const select_names[] = {"greedy", "soft"};
static const char *const mode_names[] = {"explore", "il", "rl", "ibrl", "greedy"};

int agent_method_parse(agent_method *out, const char *name) {
  int v = 0, rc = parse_name(&v, name, method_names, 4, "method");
  if (rc == IB_OK) *out = (agent_method)v;
  return rc;
}
int agent_backbone_parse(agent_backbone *out, const char *name) {
  int v = 0, rc = parse_name(&v, name, backbone_names, 2, "backbone");
  if (rc == IB_OK) *out = (agent_backbone)v;
  return rc;
}
int agent_select_parse(agent_select *out, const char *name) {
  int v = 0, rc = parse_name(&v, name, select_names, 2, "selection");
  if (rc == IB_OK) *out = (agent_select)v;
  return rc;
}
int agent_mode_parse(agent_mode *out, const char *name) {
  int v = 0, rc = parse_name(&v, name, mode_names, 5, "eval mode");
  if (rc == IB_OK) *out = (agent_mode)v;
  return rc;
}
const char *agent_method_name(agent_method m) {
  return (unsigned)m <= AGENT_BC ? method_names[m] : "unknown";
}

/* ---- helpers shared by the agent files ---- */

void agent__rows(float *dst, const float *s, const float *act, int n, int O, int A) {
  for (int b = 0; b < n; b++) {
    memcpy(dst + (size_t)b * (O + A), s + (size_t)b * O, (size_t)O * sizeof(float));
    memcpy(dst + (size_t)b * (O + A) + O, act + (size_t)b * A, (size_t)A * sizeof(float));
  }
}

void agent__noisy(float *out, const float *x, size_t n, float std, float clip, rng *r) {
  for (size_t i = 0; i < n; i++) {
    float e = std * rng_normal(r);
    if (clip > 0.0f) e = e < -clip ? -clip : e > clip ? clip : e;
    float v = x[i] + e;
    out[i] = v < -AGENT_ACT_LIMIT ? -AGENT_ACT_LIMIT : v > AGENT_ACT_LIMIT ? AGENT_ACT_LIMIT : v;
  }
}

/* The gradient norm (a metric and the non-finite guard): nn's arena norm, which the nn thread
 * team splits like the other arena passes. */
double agent__norm(const float *x, size_t n) { return nn_arena_norm(x, n); }

int agent__uses_il(const agent *a) { return a->cfg.method == AGENT_IBRL || a->cfg.method == AGENT_BC; }

/* ---- construction ---- */

static void actor_spec(nn_mlp_spec *s, const agent_config *c, int no_train) {
  memset(s, 0, sizeof *s);
  s->in_dim = c->obs_dim;
  s->n_hidden = c->actor_layers;
  for (int i = 0; i < c->actor_layers; i++) s->hidden[i] = c->actor_hidden;
  s->out_dim = c->backbone == AGENT_SAC ? 2 * c->act_dim : c->act_dim;
  s->dropout = c->actor_dropout;
  s->out_act = c->backbone == AGENT_SAC ? NN_ACT_NONE : NN_ACT_TANH;
  s->max_batch = c->max_batch;
  s->no_train = no_train;
}

static void critic_spec(nn_mlp_spec *s, const agent_config *c, int no_train) {
  memset(s, 0, sizeof *s);
  s->in_dim = c->obs_dim + c->act_dim;
  s->n_hidden = c->critic_layers;
  for (int i = 0; i < c->critic_layers; i++) s->hidden[i] = c->critic_hidden;
  s->out_dim = 1;
  s->layernorm = c->critic_layernorm;
  s->max_batch = 2 * c->max_batch; /* both candidates in one forward */
  s->no_train = no_train;
}

static size_t ws_carve(struct agent_ws *w, char *base, const agent_config *c) {
  size_t Bm = (size_t)c->max_batch, A = (size_t)c->act_dim, X = (size_t)(c->obs_dim + c->act_dim);
  size_t E = (size_t)c->n_critics, off = 0;
#define CARVE(field, type, n)                                         \
  do {                                                                \
    if (base) w->field = (type *)(void *)(base + off);                \
    off += (((n) * sizeof(type)) + 63) & ~(size_t)63;                 \
  } while (0)
  CARVE(xin, float, 2 * Bm * X);
  CARVE(dxin, float, 2 * Bm * X);
  CARVE(q, float, 2 * Bm * E);
  CARVE(q2, float, Bm * E);
  CARVE(qmin, float, 2 * Bm);
  CARVE(argmin, int, 2 * Bm);
  CARVE(dq, float, 2 * Bm * E);
  CARVE(dqmin, float, 2 * Bm);
  CARVE(a_rl, float, Bm * A);
  CARVE(a_il, float, Bm * A);
  CARVE(a_pi, float, Bm * A);
  CARVE(noise, float, Bm * A);
  CARVE(h, float, 2 * Bm * A);
  CARVE(dh, float, 2 * Bm * A);
  CARVE(eps, float, Bm * A);
  CARVE(logp, float, Bm);
  CARVE(da, float, Bm * A);
  CARVE(v_rl, float, Bm);
  CARVE(v_il, float, Bm);
  CARVE(y, float, Bm);
  CARVE(pick, uint8_t, Bm);
#undef CARVE
  return off;
}

static void seed_streams(agent *a) {
  const agent_config *c = &a->cfg;
  rng_seed(&a->r_dropout, c->seed, "agent", c->rank, "dropout");
  rng_seed(&a->r_target_noise, c->seed, "agent", c->rank, "target_noise");
  rng_seed(&a->r_act_noise, c->seed, "agent", c->rank, "act_noise");
  rng_seed(&a->r_heads, c->seed, "agent", c->rank, "heads");
  rng_seed(&a->r_select, c->seed, "agent", c->rank, "select");
  rng_seed(&a->r_sac, c->seed, "agent", c->rank, "sac");
}

int agent_init(agent *a, const agent_config *cfg) {
  IB_CHECK(a && cfg);
  memset(a, 0, sizeof *a);
  int rc = agent_config_check(cfg);
  if (rc != IB_OK) return rc;
  a->cfg = *cfg;
  agent_config *c = &a->cfg;
  if (isnan(c->target_entropy)) c->target_entropy = -0.5f * (float)c->act_dim; /* RLPD's default */
  rng init;
  rng_seed(&init, c->seed, "agent", c->rank, "init");
  nn_mlp_spec s;
  const int ao = c->acting_only;
  actor_spec(&s, c, ao);
  rc = nn_mlp_init(&a->actor, &s, &init);
  if (rc == IB_OK && !ao && c->backbone == AGENT_TD3) {
    actor_spec(&s, c, 1);
    rc = nn_mlp_init(&a->actor_target, &s, NULL);
    if (rc == IB_OK) nn_mlp_copy_params(&a->actor_target, &a->actor);
  }
  if (rc == IB_OK) {
    critic_spec(&s, c, 0);
    if (!ao) rc = nn_ens_init(&a->critic, c->n_critics, &s, &init);
    if (rc == IB_OK) {
      critic_spec(&s, c, 1);
      /* An acting-only agent draws the critic init anyway so its stream matches a learner's;
       * the values are overwritten by agent_acting_unpack. */
      rc = nn_ens_init(&a->critic_target, c->n_critics, &s, ao ? &init : NULL);
      if (rc == IB_OK && !ao) nn_ens_copy_params(&a->critic_target, &a->critic);
    }
  }
  if (rc == IB_OK && agent__uses_il(a)) {
    c->il.obs_dim = c->obs_dim;
    c->il.act_dim = c->act_dim;
    c->il.seed = c->seed;
    c->il.rank = c->rank;
    il_policy fresh;
    rc = il_init(&fresh, &c->il);
    if (rc == IB_OK) rc = il_clone_sized(&a->il, &fresh, 1, c->max_batch);
    il_free(&fresh);
  }
  if (rc != IB_OK) {
    agent_free(a);
    return rc;
  }
  a->log_alpha[0] = c->backbone == AGENT_SAC ? logf(c->init_temperature) : 0.0f;
  seed_streams(a);
  a->ws = ib_xcalloc(1, sizeof *a->ws);
  size_t bytes = ws_carve(a->ws, NULL, c);
  char *base = ib_xaligned(bytes);
  ws_carve(a->ws, base, c);
  a->metrics.alpha = c->backbone == AGENT_SAC ? c->init_temperature : 0.0;
  return IB_OK;
}

void agent_free(agent *a) {
  if (!a) return;
  nn_mlp_free(&a->actor);
  nn_mlp_free(&a->actor_target);
  nn_ens_free(&a->critic);
  nn_ens_free(&a->critic_target);
  il_free(&a->il);
  if (a->ws) free(a->ws->xin); /* the first carve is the block's base */
  free(a->ws);
  memset(a, 0, sizeof *a);
}

int agent_il_set(agent *a, const il_policy *src) {
  IB_CHECK(a && src && src->net.params);
  if (!agent__uses_il(a))
    return ib_fail(IB_ESTATE, "agent: method %s has no IL policy (HINT: only ibrl and bc take one)",
                   agent_method_name(a->cfg.method));
  if (src->cfg.obs_dim != a->cfg.obs_dim || src->cfg.act_dim != a->cfg.act_dim)
    return ib_fail(IB_EMISMATCH, "agent: IL policy maps %d -> %d floats, the agent %d -> %d "
                   "(HINT: same frame stack and chunk length as the demos the IL policy was trained on)",
                   src->cfg.obs_dim, src->cfg.act_dim, a->cfg.obs_dim, a->cfg.act_dim);
  if (il_copy_params(&a->il, src) != IB_OK) {
    /* Another hidden shape: rebuild the frozen copy. */
    il_policy fresh;
    int rc = il_clone_sized(&fresh, src, 1, a->cfg.max_batch);
    if (rc != IB_OK) return rc;
    il_free(&a->il);
    a->il = fresh;
    a->cfg.il = fresh.cfg;
  }
  a->has_il = 1;
  return IB_OK;
}

void agent_metrics_reset(agent *a) {
  IB_CHECK(a);
  double alpha = a->metrics.alpha;
  long cu = a->metrics.critic_updates, au = a->metrics.actor_updates;
  memset(&a->metrics, 0, sizeof a->metrics);
  a->metrics.alpha = alpha;
  a->metrics.critic_updates = cu;
  a->metrics.actor_updates = au;
}

/* ---- arenas ---- */

agent_arena agent_arena_get(agent *a, agent_net which) {
  IB_CHECK(a);
  agent_arena r = {NULL, NULL, 0};
  switch (which) {
  case AGENT_NET_ACTOR: r.params = a->actor.params; r.grads = a->actor.grads; r.n = a->actor.n_params; break;
  case AGENT_NET_ACTOR_TARGET: r.params = a->actor_target.params; r.n = a->actor_target.n_params; break;
  case AGENT_NET_CRITIC: r.params = a->critic.params; r.grads = a->critic.grads; r.n = a->critic.n_params; break;
  case AGENT_NET_CRITIC_TARGET: r.params = a->critic_target.params; r.n = a->critic_target.n_params; break;
  case AGENT_NET_TEMPERATURE:
    if (a->cfg.backbone == AGENT_SAC) {
      r.params = a->log_alpha;
      r.grads = a->dlog_alpha;
      r.n = 1;
    }
    break;
  case AGENT_NET_IL: r.params = a->il.net.params; r.n = a->il.net.n_params; break;
  default: IB_CHECK(0);
  }
  if (!r.params) r.n = 0;
  return r;
}

uint32_t agent_arena_crc(agent *a, agent_net which) {
  agent_arena r = agent_arena_get(a, which);
  if (which == AGENT_NET_IL) return il_checksum(&a->il);
  return r.n ? ib_crc32(0, r.params, r.n * sizeof(float)) : 0;
}

size_t agent_acting_size(const agent *a) {
  IB_CHECK(a);
  return a->actor.n_params + a->critic_target.n_params + a->il.net.n_params + a->il.enc.n_params;
}

void agent_acting_pack(const agent *a, float *dst) {
  IB_CHECK(a && dst);
  const float *src[4] = {a->actor.params, a->critic_target.params, a->il.net.params, a->il.enc.params};
  size_t n[4] = {a->actor.n_params, a->critic_target.n_params, a->il.net.n_params, a->il.enc.n_params};
  for (int i = 0; i < 4; i++)
    if (n[i]) {
      memcpy(dst, src[i], n[i] * sizeof(float));
      dst += n[i];
    }
}

int agent_acting_unpack(agent *a, const float *src, size_t n) {
  IB_CHECK(a && src);
  size_t want = agent_acting_size(a);
  if (n != want)
    return ib_fail(IB_EMISMATCH, "agent: acting weights have %zu floats, this agent needs %zu "
                   "(HINT: actor and learner must use the same network shapes and method)", n, want);
  long bad = ib_first_nonfinite(src, n);
  if (bad >= 0)
    return ib_fail(IB_ENONFINITE, "agent: acting weight %ld of %zu is not finite (HINT: the learner "
                   "diverged; restore a checkpoint)", bad, n);
  float *dst[4] = {a->actor.params, a->critic_target.params, a->il.net.params, a->il.enc.params};
  size_t m[4] = {a->actor.n_params, a->critic_target.n_params, a->il.net.n_params, a->il.enc.n_params};
  for (int i = 0; i < 4; i++)
    if (m[i]) {
      memcpy(dst[i], src, m[i] * sizeof(float));
      src += m[i];
    }
  if (agent__uses_il(a)) a->has_il = 1;
  return IB_OK;
}
