/* il.h: imitation-learning (IL) policies of ibrl: behaviour cloning (BC) and a chunk CVAE.
 *
 * An IL policy maps a stacked observation (obs_dim floats) to an action chunk (act_dim = k x a
 * floats, row-major: step j of the chunk is act[j*a .. j*a+a)), every value in (-1, 1) (tanh).
 *  - BC (IL_BC): one MLP obs -> act_dim, hidden layers Linear -> Dropout(p) -> ReLU, tanh output;
 *    loss = mean over the batch of the sum over the chunk of (pi(s) - a)^2 (IBRL bc_policy.py).
 *  - Chunk CVAE (IL_CVAE): an encoder MLP (obs || chunk) -> (mean, logvar) of a latent z
 *    (latent floats each) and a decoder MLP (obs || z) -> chunk (tanh). Training uses
 *    z = mean + exp(logvar/2) * eps, eps ~ N(0, I), and the loss
 *      mean_b sum_j (dec - a)^2 + kl_weight * mean_b KL(N(mean, exp(logvar)) || N(0, I)),
 *      KL = -1/2 sum_l (1 + logvar - mean^2 - exp(logvar)).
 *    Inference uses the decoder alone with z = 0.
 * Prediction (il_predict) is deterministic: dropout off, z = 0.
 *
 * A FROZEN policy (il_clone with frozen = 1) owns its own copy of every layer in no-train nets
 * (no gradient or Adam arenas): nothing else in the process shares its memory, and no il_ or
 * agent_ function writes its parameters except il_clone / il_load / agent_il_set. The IBRL agent
 * keeps such a copy.
 *
 * Randomness: dropout masks and the CVAE noise come from two rng streams seeded in il_init from
 * (seed, "il", rank, "dropout"/"latent"); same seed, same data -> bit-identical parameters.
 *
 * Errors: bad configs return IB_EINVAL naming the field; a non-finite loss returns IB_ENONFINITE
 * and leaves the parameters as they were; files return the nn_*_load errors plus IB_EMISMATCH.
 * Ownership: caller-allocated il_policy, il_init / il_free (free accepts a zeroed struct).
 * Threads: one thread at a time per policy. No allocation after il_init. */
#ifndef IB_IL_H
#define IB_IL_H

#include <stdint.h>

#include "nn.h"
#include "rng.h"

typedef enum il_kind { IL_BC = 0, IL_CVAE = 1 } il_kind;

typedef struct il_config {
  il_kind kind;
  int obs_dim;        /* stacked observation floats, > 0 */
  int act_dim;        /* chunk floats (k x a), > 0 */
  int n_layers;       /* hidden layers of each MLP, 1..NN_MAX_HIDDEN (IBRL: 3) */
  int hidden;         /* their width (IBRL: 1024) */
  float dropout;      /* dropout after each hidden Linear, [0,1) (IBRL BC: 0.5) */
  int latent;         /* CVAE latent floats (> 0 for IL_CVAE; ignored for IL_BC) */
  float kl_weight;    /* CVAE KL weight, >= 0 */
  float lr;           /* Adam learning rate (IBRL: 1e-4) */
  float grad_clip;    /* global grad-norm clip; <= 0: none (IBRL state BC: 100) */
  int max_batch;      /* largest B passed to il_train_step / il_predict, > 0 */
  uint64_t seed;      /* stream seed */
  int rank;           /* stream rank (e.g. MPI rank or actor id) */
} il_config;

/* IBRL's state BC: 3 x 1024, dropout 0.5, lr 1e-4, clip 100, max_batch 256, latent 16,
 * kl_weight 1 (CVAE only), seed 1. The caller sets kind, obs_dim and act_dim. */
il_config il_config_default(void);

typedef struct il_stats {
  double loss;        /* total loss of the last step */
  double recon;       /* reconstruction (MSE-sum) part */
  double kl;          /* KL part (CVAE; 0 for BC), before the weight */
  double grad_norm;   /* global gradient norm before clipping */
  long steps;         /* train steps taken */
} il_stats;

typedef struct il_policy {
  il_config cfg;
  int frozen;         /* 1: no-train nets (a frozen copy); il_train_step refuses */
  nn_mlp net;         /* BC: obs -> act (tanh). CVAE: the decoder (obs || z) -> act (tanh) */
  nn_mlp enc;         /* CVAE only: (obs || act) -> 2*latent = [mean | logvar]; zeroed for BC */
  rng r_dropout, r_latent;
  il_stats stats;
  float *ws;          /* owned scratch (internal) */
  size_t ws_n;        /* its floats */
} il_policy;

/* Validates cfg, builds the nets (PyTorch default init from stream (seed, "il", rank, "init")).
 * Returns IB_OK or IB_EINVAL (p zeroed, il_free safe). */
int il_init(il_policy *p, const il_config *cfg);
void il_free(il_policy *p);

/* dst = an independent copy of src's parameters with src's config. frozen 1: no-train nets.
 * dst must be zeroed or freed; it is initialised here. Returns IB_OK or IB_EINVAL. */
int il_clone(il_policy *dst, const il_policy *src, int frozen);
/* The same with the copy's max_batch set to max_batch (> 0), e.g. the agent's batch size. */
int il_clone_sized(il_policy *dst, const il_policy *src, int frozen, int max_batch);
/* Copies parameters between two initialised policies of the same shape (IB_EMISMATCH if not). */
int il_copy_params(il_policy *dst, const il_policy *src);

/* One minibatch step: forward with dropout (and, CVAE, a sampled z), loss, backward, optional
 * grad-norm clip, Adam. obs (B, obs_dim), act (B, act_dim). Returns IB_OK, IB_ENONFINITE (loss
 * or gradient not finite; no parameter changed) or IB_ESTATE (frozen policy). */
int il_train_step(il_policy *p, const float *obs, const float *act, int B);

/* Deterministic prediction act (B, act_dim) from obs (B, obs_dim): dropout off, z = 0. */
void il_predict(il_policy *p, float *act, const float *obs, int B);

/* The loss il_train_step would minimise, without changing anything except the rng streams
 * (validation). Returns the loss; writes the parts into *st if non-NULL. */
double il_eval_loss(il_policy *p, il_stats *st, const float *obs, const float *act, int B);

/* CRC-32 over the bytes of every param arena (net, then encoder): used to prove a frozen
 * policy did not move. */
uint32_t il_checksum(const il_policy *p);

/* Checkpoint: "<path>" holds the net (and "<path>.enc" the CVAE encoder), via nn_mlp_save with
 * Adam state when trainable. Load requires the same config shapes. IB_OK or IB_E*. */
int il_save(const il_policy *p, const char *path);
int il_load(il_policy *p, const char *path);

#endif /* IB_IL_H */
