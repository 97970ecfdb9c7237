/* agent.h: the IBRL agent core: acting proposals, the IBRL critic/actor update (TD3 or SAC
 * backbone), and the RLPD / RFT / BC baselines, over flat weight arenas.
 *
 * This is pure numerics (shared/docs/ibrl-reference.md sections 2-4, 10): no gRPC, no MPI, no
 * files except agent_save/agent_load. The single-process trainer, the distributed actors and
 * the MPI learner all call this same code.
 *
 * Nets (obs = stacked observation, obs_dim floats; act = an action chunk, act_dim = k x a):
 *   actor          obs -> act (TD3: tanh) or obs -> [mean | log_std] (2 act_dim; SAC head, nn.h),
 *                  hidden Linear -> Dropout(actor_dropout) -> ReLU.
 *   actor_target   EMA copy of the actor (TD3; used in the bootstrap with dropout ON). SAC has
 *                  none: its bootstrap samples the online actor (dropout ON if any).
 *   critic         E heads (obs || act) -> 1, hidden Linear -> LayerNorm -> ReLU (nn_ens).
 *   critic_target  EMA copy of the critic; scores proposals and gives the bootstrap value.
 *   il             the FROZEN IL policy (il.h): the agent's own copy of every layer (IBRL only).
 *
 * One learning step (the trainer calls it every U env steps): G critic updates, each followed by
 * a critic-target EMA, then one actor update (on the last critic batch) followed by an
 * actor-target EMA (agent_learn_step). Each update is split into "compute grads" and "apply"
 * (Adam + EMA), so the MPI learner can allreduce the gradient arena (agent_arena) in between.
 *
 * Bootstrap (agent_target_compute), per batch row with s' = next_obs:
 *   a'_rl = TD3: clamp(actor_target(s'; dropout on) + clip(N(0, target_noise^2), +-noise_clip))
 *           SAC: a tanh-Gaussian sample of actor(s') with log-prob logp
 *   a'_il = il(s') (dropout off)           [only if the bootstrap proposal is on]
 *   v_rl = min_{k in P1} Q'_k(s', a'_rl) - [SAC] alpha * logp;  v_il = min_{k in P1} Q'_k(s', a'_il)
 *   choose a* per row: greedy argmax (ties -> RL) or soft: IL with prob softmax(beta*[v_rl,v_il])
 *   y = reward + discount * (min_{k in P2} Q'_k(s', a*) - [SAC, a* = a'_rl] alpha * logp)
 * P1 and P2 are independent random 2-subsets (n_min heads) of the E target heads, shared by the
 * batch (reference 3.2); boot_fresh_pair 0 reuses P1 for P2 (then y is the max itself, the
 * paper's form, and the arithmetic of the bench's "brief" mode). reward and discount are the
 * precomputed n-step return and bootstrap discount of each row (0 when terminal).
 * Critic loss = mean_b sum_{k<E} (Q_k(s,a) - y)^2.
 * TD3 actor loss = -mean_b min_{all k} Q_k(s, clamp(actor(s; dropout on) + clip(N(0, target_noise^2),
 *   +-noise_clip)))
 *   (online critic; clamp straight-through) [+ RFT term]. actor_q_mean 1 uses the mean over
 *   heads instead of the min.
 * SAC actor loss = mean_b (alpha * logp(a|s) - red_k Q_k(s,a)), a ~ pi(s) (reparameterised),
 *   red = min over all heads, or the mean with actor_q_mean 1 (RLPD's choice, the SAC default);
 *   temperature loss = mean_b alpha * (-logp - target_entropy), over log(alpha).
 * RFT adds rft_bc_weight * ratio * mean_b sum_j (actor(s_d) - a_d)^2 on a separate demo batch
 *   (actor(s) = the deterministic action: TD3 output, SAC tanh(mean); ratio is a constant),
 *   ratio = fraction of demo rows with min_{P} Q(s_d, a_d) > min_{P} Q(s_d, actor(s_d)) (online
 *   critic, a random pair P, actor in eval mode).
 *
 * Acting (agent_act): a_rl = actor mean (+ N(0, act_noise^2), unclipped, TD3; a sample, SAC),
 * dropout OFF, clamped to +-(1 - 1e-6); a_il = il(s); the TARGET critic scores both with one
 * random pair; greedy or soft pick per row. The actor proposal can be switched off (RL only;
 * this applies to the EXPLORE and both IBRL eval modes).
 *
 * Randomness: every draw comes from a named stream seeded from (cfg.seed, "agent", cfg.rank,
 * name): "dropout", "target_noise", "heads", "select", "sac" (learning), "act_noise" (EVERY
 * acting draw: noise, the head subset and soft picks, so acting never shifts the learning
 * streams), "init" (weights). Same seed, same calls -> bit-identical arenas (with
 * OPENBLAS_NUM_THREADS=1).
 *
 * Errors: bad configs return IB_EINVAL naming the field with a HINT; a non-finite loss or
 * gradient returns IB_ENONFINITE from the grads step (nothing applied); files return IB_EIO,
 * IB_EPROTO, IB_ECHECKSUM, IB_EMISMATCH. Passing a batch larger than max_batch, or calling an
 * update on an acting-only agent, is a bug (abort).
 * Ownership: caller-allocated agent, agent_init / agent_free (free accepts a zeroed struct).
 * All batch pointers are borrowed for the call. Threads: one thread at a time per agent.
 * No allocation after agent_init. */
#ifndef IB_AGENT_H
#define IB_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "il.h"
#include "nn.h"
#include "rng.h"

/* ---- configuration ---- */

typedef enum agent_method {
  AGENT_IBRL = 0, /* IL policy proposes in acting and in the bootstrap */
  AGENT_RLPD = 1, /* no IL policy; demos are mixed into the batch by the replay (demo_ratio) */
  AGENT_RFT = 2,  /* no IL policy; BC-pretrained actor + Q-filtered BC loss on a demo batch */
  AGENT_BC = 3,   /* the IL policy alone (agent_act with AGENT_MODE_EVAL_IL); no updates */
} agent_method;

typedef enum agent_backbone { AGENT_TD3 = 0, AGENT_SAC = 1 } agent_backbone;

typedef enum agent_select {
  AGENT_SELECT_GREEDY = 0, /* argmax over {RL, IL}; ties pick RL */
  AGENT_SELECT_SOFT = 1,   /* categorical draw from softmax(beta * q) on the raw q */
} agent_select;

typedef enum agent_mode {
  AGENT_MODE_EXPLORE = 0,     /* training rollouts: noisy RL proposal, IBRL selection */
  AGENT_MODE_EVAL_IL = 1,     /* the IL policy alone */
  AGENT_MODE_EVAL_RL = 2,     /* the RL actor's mean action alone, dropout off */
  AGENT_MODE_EVAL_IBRL = 3,   /* mean RL action vs IL action, selection per act_select */
  AGENT_MODE_EVAL_GREEDY = 4, /* mean RL action vs IL action, greedy selection */
} agent_mode;

typedef struct agent_config {
  agent_method method;
  agent_backbone backbone;
  int obs_dim;            /* stacked observation floats, > 0 */
  int act_dim;            /* chunk floats k x a, > 0 */
  /* actor (and the frozen IL policy's default shape) */
  int actor_layers;       /* hidden layers, 1..NN_MAX_HIDDEN (3) */
  int actor_hidden;       /* width (1024) */
  float actor_dropout;    /* [0,1) (IBRL 0.5; RLPD/RFT 0) */
  /* critic ensemble */
  int critic_layers;      /* hidden layers (3) */
  int critic_hidden;      /* width (1024) */
  int critic_layernorm;   /* 1 (reference) */
  int n_critics;          /* E, 2..NN_MAX_HEADS (5) */
  int n_min;              /* heads in a random subset, 1..E (2) */
  int boot_fresh_pair;    /* 1: a fresh subset evaluates the chosen bootstrap action (reference) */
  int actor_q_mean;       /* 0: actor loss uses min over all heads (IBRL); 1: mean (RLPD SAC) */
  /* optimisation */
  int max_batch;          /* largest batch (and demo batch) rows, > 0 (256) */
  float lr_actor, lr_critic;  /* Adam (1e-4) */
  float tau;              /* EMA rate of both targets (0.01) */
  /* noise */
  float act_noise;        /* TD3 acting std, unclipped (0.1) */
  float target_noise;     /* TD3 smoothing std in the bootstrap and the actor loss (0.1) */
  float noise_clip;       /* its clip (0.3) */
  /* IBRL proposals */
  int actor_proposal;     /* 1: IL competes while acting; 0: act with RL only (ablation) */
  int boot_proposal;      /* 1: IL competes in the bootstrap; 0: RL candidate only (ablation) */
  agent_select act_select, boot_select; /* (soft, soft for state; greedy for pixel configs) */
  float beta;             /* soft-selection inverse temperature on raw Q (10) */
  /* SAC */
  float init_temperature; /* alpha at start, > 0 (1.0) */
  float target_entropy;   /* NaN (default): -act_dim / 2, resolved by agent_init */
  float lr_temperature;   /* Adam on log(alpha) (3e-4) */
  int sac_backup_entropy; /* 1: subtract alpha*logp from the RL candidate in the bootstrap */
  /* RFT */
  float rft_bc_weight;    /* 0.1 */
  /* the replay mixing the trainer asks for; stored here so a checkpoint carries it */
  float demo_ratio;       /* fraction of each batch from the demo table, [0,1] (RLPD 0.5) */
  /* IL policy shape (IBRL and BC); kind IL_BC or IL_CVAE */
  il_config il;
  int acting_only;        /* 1: only what agent_act needs (actor, critic_target, il); no updates */
  uint64_t seed;
  int rank;
} agent_config;

/* The paper's state configuration for `method` and `backbone` (values in parentheses above; the
 * SAC values are RLPD's: temperature 1, lr 3e-4, target entropy NaN = -act_dim/2 of the final
 * act_dim, resolved by agent_init):
 * obs 69, act 7, actor 3x1024, critic 5 x 3x1024 LN, n_min 2, boot_fresh_pair 1, batch 256,
 * lr 1e-4, tau 0.01, soft selection beta 10, both proposals on. RLPD/RFT: actor_dropout 0,
 * demo_ratio 0.5 (RLPD) / 0 (RFT), no proposals. SAC: actor_q_mean 1. The caller then sets
 * obs_dim, act_dim (and il.obs_dim/act_dim follow them in agent_init). */
agent_config agent_config_default(agent_method method, agent_backbone backbone);

/* Checks every field; IB_OK or IB_EINVAL with a message naming the field. */
int agent_config_check(const agent_config *cfg);

/* Parses names used on command lines: "ibrl" "rlpd" "rft" "bc"; "td3" "sac"; "greedy" "soft";
 * "il" "rl" "ibrl" "greedy" (eval modes) "explore". IB_OK or IB_ENOTFOUND listing the names. */
int agent_method_parse(agent_method *out, const char *name);
int agent_backbone_parse(agent_backbone *out, const char *name);
int agent_select_parse(agent_select *out, const char *name);
int agent_mode_parse(agent_mode *out, const char *name);
const char *agent_method_name(agent_method m);

/* ---- batches, metrics ---- */

/* A borrowed view of n rows (e.g. of a store_batch: same field names). */
typedef struct agent_batch {
  const float *obs;      /* (n, obs_dim) */
  const float *action;   /* (n, act_dim) */
  const float *reward;   /* (n) n-step discounted return */
  const float *discount; /* (n) bootstrap discount, 0 when terminal */
  const float *next_obs; /* (n, obs_dim) */
  int n;                 /* 1..max_batch */
} agent_batch;

/* Running metrics; counts accumulate until agent_metrics_reset. */
typedef struct agent_metrics {
  long act_il, act_total;   /* acting rows where the IL proposal won / all proposal rows */
  long boot_il, boot_total; /* bootstrap rows where the IL candidate was chosen / rows where it
                               competed (0 without a bootstrap proposal: the ratio is then NaN) */
  long critic_updates, actor_updates;
  double critic_loss;       /* last critic loss */
  double q_mean;            /* last mean Q_k(s,a) over heads and rows */
  double target_mean;       /* last mean y */
  double actor_loss;        /* last actor loss (incl. the RFT term) */
  double alpha;             /* SAC temperature (0 for TD3) */
  double entropy;           /* SAC: -mean logp of the last actor update */
  double rft_ratio;         /* RFT Q-filter ratio of the last actor update */
  double rft_bc_loss;       /* RFT BC MSE of the last actor update */
  double pretrain_loss;     /* last agent_actor_bc_step loss */
  double critic_grad_norm;  /* global gradient norm of the last critic / actor grads step */
  double actor_grad_norm;
} agent_metrics;

/* Read-only views of the last agent_target_compute (for tests and logging), each (n) or (n, A);
 * valid until the next update call. */
typedef struct agent_target_view {
  const float *a_rl, *a_il; /* candidates (a_il NULL when the IL candidate was not used) */
  const float *v_rl, *v_il; /* selection scores (with -alpha*logp for SAC RL) */
  const float *logp;        /* SAC log-probs of a_rl, else NULL */
  const uint8_t *pick_il;   /* 1 where the IL candidate was chosen */
  const float *y;           /* targets */
  int heads_select[NN_MAX_HEADS], heads_eval[NN_MAX_HEADS], n_min;
  int n;
} agent_target_view;

/* ---- the agent ---- */

struct agent_ws; /* workspaces (internal) */

typedef struct agent {
  agent_config cfg;
  nn_mlp actor;            /* owned */
  nn_mlp actor_target;     /* owned, no_train; zeroed for SAC and acting-only */
  nn_ens critic;           /* owned; zeroed when acting-only */
  nn_ens critic_target;    /* owned, no_train */
  il_policy il;            /* owned frozen copy (IBRL/BC), zeroed otherwise */
  int has_il;              /* 1 once agent_il_set ran (IBRL/BC need it before acting/updates) */
  /* SAC temperature as a 1-float arena set */
  float log_alpha[1], dlog_alpha[1], alpha_m[1], alpha_v[1];
  long alpha_t;
  rng r_dropout, r_target_noise, r_act_noise, r_heads, r_select, r_sac;
  agent_metrics metrics;
  struct agent_ws *ws;     /* owned */
} agent;

/* Validates cfg and builds every net (PyTorch default init from the "init" stream; targets are
 * copies). The IL policy is not loaded yet: call agent_il_set. Returns IB_OK or IB_EINVAL
 * (a zeroed, agent_free is safe). */
int agent_init(agent *a, const agent_config *cfg);
void agent_free(agent *a);

/* Copies src's parameters into the agent's own frozen IL policy (IBRL and BC only; src must
 * have obs_dim/act_dim = the agent's, any hidden shape). Returns IB_OK, IB_EMISMATCH (dims) or
 * IB_ESTATE (method has no IL policy). src is borrowed; later changes to src do not reach the
 * agent. */
int agent_il_set(agent *a, const il_policy *src);

/* ---- acting ---- */

/* Actions (B, act_dim) for observations obs (B, obs_dim), B <= max_batch. proposer (B), if
 * non-NULL, gets 0 where the IL policy's action was taken and 1 where the RL actor's was
 * (store_proposer values IL/RL). Updates act_il/act_total in EXPLORE and EVAL_IBRL/GREEDY modes
 * when both proposals competed. IBRL needs agent_il_set first (IB_ESTATE otherwise), as do the
 * EVAL_IL mode and the BC method; RLPD/RFT act with RL only. Returns IB_OK or IB_ESTATE. */
int agent_act(agent *a, float *action, uint8_t *proposer, const float *obs, int B, agent_mode mode);

/* The selection rule alone, for tests and for the actors: pick_il[b] = 1 if the IL candidate
 * wins row b. Greedy: q_il > q_rl. Soft: a uniform draw u from r, IL if
 * u < softmax(beta*[q_rl, q_il])[1] (computed stably). r may be NULL for greedy. */
void ibrl_select(uint8_t *pick_il, const float *q_rl, const float *q_il, int B, agent_select mode,
                 float beta, rng *r);

/* ---- learning ---- */

/* Bootstrap targets y (n) for batch b (see the top of this file); updates boot_il/boot_total.
 * Changes only the rng streams and the workspaces. */
void agent_target_compute(agent *a, float *y, const agent_batch *b);
agent_target_view agent_target_last(const agent *a);

/* Critic: zero grads, target, loss, backward into critic.grads. IB_OK or IB_ENONFINITE (loss
 * or gradient norm not finite; nothing applied). agent_critic_apply: Adam + critic-target EMA. */
int agent_critic_grads(agent *a, const agent_batch *b);
void agent_critic_apply(agent *a);
/* grads + apply. */
int agent_critic_update(agent *a, const agent_batch *b);

/* Actor: zero grads, actor loss (TD3 / SAC, + RFT term on `demo` when method is RFT; demo is
 * ignored otherwise and may be NULL), backward into actor.grads (and dlog_alpha for SAC).
 * IB_OK, IB_ENONFINITE, or IB_EINVAL (RFT without a demo batch). agent_actor_apply: Adam on the
 * actor (and the temperature), then actor-target EMA (TD3). */
int agent_actor_grads(agent *a, const agent_batch *b, const agent_batch *demo);
void agent_actor_apply(agent *a);
int agent_actor_update(agent *a, const agent_batch *b, const agent_batch *demo);

/* G critic updates on batches[0..G) then one actor update on batches[G-1] (and demo for RFT).
 * Stops at the first error and returns it. */
int agent_learn_step(agent *a, const agent_batch *batches, int G, const agent_batch *demo);

/* RFT pretraining: one BC step of the RL actor (MSE on chunks of its deterministic action:
 * TD3 the tanh output, SAC tanh(mean); dropout per config; Adam lr_actor; no target EMA: the
 * actor target is reset to the actor by agent_actor_sync). obs (B, obs_dim), act (B, act_dim).
 * IB_OK or IB_ENONFINITE (nothing applied). */
int agent_actor_bc_step(agent *a, const float *obs, const float *act, int B);
/* actor_target = actor (after pretraining). */
void agent_actor_sync(agent *a);

/* ---- arenas (MPI allreduce / broadcast) ---- */

typedef enum agent_net {
  AGENT_NET_ACTOR = 0,
  AGENT_NET_ACTOR_TARGET = 1,
  AGENT_NET_CRITIC = 2,
  AGENT_NET_CRITIC_TARGET = 3,
  AGENT_NET_TEMPERATURE = 4, /* the 1-float log(alpha) arena (SAC) */
  AGENT_NET_IL = 5,          /* the frozen IL net (the CVAE decoder); grads NULL */
} agent_net;

typedef struct agent_arena {
  float *params; /* view, n floats, or NULL when the net does not exist */
  float *grads;  /* view or NULL (targets, frozen IL) */
  size_t n;
} agent_arena;
agent_arena agent_arena_get(agent *a, agent_net which);

/* What an actor process needs to act: actor, critic_target and IL params back to back.
 * agent_acting_size is in floats; pack writes that many; unpack reads them (IB_EMISMATCH if n
 * differs, IB_ENONFINITE if a value is not finite; nothing changed on error). */
size_t agent_acting_size(const agent *a);
void agent_acting_pack(const agent *a, float *dst);
int agent_acting_unpack(agent *a, const float *src, size_t n);

/* CRC-32 over an arena's params (determinism and frozen-policy tests). */
uint32_t agent_arena_crc(agent *a, agent_net which);

/* ---- checkpoints ---- */

/* One file: magic "IBAG", version, the config, every arena (params, Adam m and v, adam_t) of
 * actor, actor_target, critic, critic_target, the IL nets, the temperature, all rng states and
 * the metrics, then a CRC-32. Written to "<path>.tmp" then renamed. Load needs an agent built
 * with the same shapes (IB_EMISMATCH naming the field otherwise) and leaves it unchanged on any
 * error. IB_OK, IB_EIO, IB_EPROTO, IB_ECHECKSUM, IB_EMISMATCH. */
int agent_save(const agent *a, const char *path);
int agent_load(agent *a, const char *path);

void agent_metrics_reset(agent *a);

#endif /* IB_AGENT_H */
