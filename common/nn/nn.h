/* nn.h: the neural-network core of ibrl: layer kernels, an MLP container, a critic ensemble,
 * a tanh-squashed Gaussian (SAC) head, Adam, Polyak averaging and checkpoints, on OpenBLAS.
 *
 * Conventions (docs/style.md 2.5). Row-major. Activations are (B, C): B batch rows, C features.
 * A Linear has W (OC, C) and b (OC), exactly as torch.nn.Linear, so Y = X·Wᵀ + b. Kernel
 * arguments are outputs first, then inputs, then sizes; a gradient is d<name>. Forward
 * OVERWRITES its outputs; backward ACCUMULATES (+=) into every gradient it writes, including
 * the input gradient; zeroing is explicit (nn_mlp_zero_grad, nn_ens_zero_grad), or a backward
 * with NN_GRADS_SET overwrites the parameter gradients.
 *
 * Arenas (style.md 2.4.5). A network keeps params, grads, Adam m and Adam v in four flat float
 * arrays of n_params floats with the same layout; per-layer tensors are views into them. So an
 * MPI allreduce of gradients is one call on (grads, n_params), a broadcast is one call on
 * (params, n_params), Adam is one loop, and a checkpoint is one write. Arena layout of a net:
 * for each Linear layer l in order: W_l (out·in), b_l (out), then, if the layer has LayerNorm,
 * gamma_l (out), beta_l (out). This is the order of torch's Sequential.parameters().
 * An ensemble's arena is the E head arenas back to back (head 0 first).
 *
 * Memory. Every workspace (activations, masks, LayerNorm statistics, gradient scratch) is sized
 * at init for spec.max_batch rows; forward/backward/Adam never allocate. Out-of-memory aborts.
 *
 * Errors. Programming errors (B > max_batch, NULL where not allowed, backward without forward,
 * param-grad backward on a net built with no_train) abort through IB_CHECK. Bad specs and bad
 * files return a negative IB_E* status with ib_errmsg() naming the thing and giving a HINT.
 *
 * Threads. An nn_mlp / nn_ens belongs to one thread at a time (forward caches activations in
 * the object). Different objects may be used from different threads concurrently (a call made
 * while another thread holds the nn thread team runs on the calling thread alone). Threading is
 * global to the process (nn_set_threads).
 *
 * Numerics know nothing of gRPC or MPI. Randomness comes only from explicit rng streams. */
#ifndef IB_NN_H
#define IB_NN_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#define NN_MAX_HIDDEN 8   /* hidden layers per MLP */
#define NN_MAX_HEADS 16   /* heads per ensemble */
#define NN_LN_EPS 1e-5f   /* LayerNorm eps, as torch.nn.LayerNorm's default */

/* ------------------------------------------------------------------------------------------ */
/* ---- layer kernels (stateless; used by the containers and by the tests) ---- */

/* Linear forward: out = inp·weightᵀ + bias. out (B,OC), inp (B,C), weight (OC,C), bias (OC)
 * or NULL. One cblas_sgemm with beta 0, then the bias. */
void nn_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                       int B, int C, int OC);
/* Linear backward, accumulating: dinp += dout·weight, dweight += doutᵀ·inp, dbias += colsum(dout).
 * dinp (B,C), dweight (OC,C), dbias (OC); any of the three may be NULL to skip it. */
void nn_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int B, int C, int OC);

/* LayerNorm over the last dim (torch.nn.LayerNorm(C), eps NN_LN_EPS, biased variance):
 * out = (inp - mean) * rstd * weight + bias. out, inp (B,C); weight, bias (C); mean, rstd (B)
 * are written for the backward. Statistics are accumulated in double. */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *weight, const float *bias, int B, int C);
/* LayerNorm backward, accumulating into dinp (B,C), dweight (C), dbias (C) (any may be NULL). */
void nn_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *mean, const float *rstd,
                           const float *weight, int B, int C);

/* Elementwise activations over n values. Backward accumulates into dinp and takes the forward
 * OUTPUT (relu: out > 0; tanh: 1 - out²). out may equal inp for the forwards. */
void nn_relu_forward(float *out, const float *inp, size_t n);
void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n);
void nn_tanh_forward(float *out, const float *inp, size_t n);
void nn_tanh_backward(float *dinp, const float *dout, const float *out, size_t n);

/* Inverted dropout (torch.nn.Dropout in train mode). nn_dropout_mask fills mask[0..n) with 0
 * (probability p) or 1/(1-p) by comparing a 24-bit uniform with p (two uniforms per rng_u64
 * draw, elements in order), so a mask is reproducible from the rng state. p must be in [0,1). forward: out = inp * mask; backward: dinp += dout * mask. */
void nn_dropout_mask(float *mask, size_t n, float p, rng *r);
void nn_dropout_forward(float *out, const float *inp, const float *mask, size_t n);
void nn_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* ---- MLP ---- */

typedef enum nn_act { NN_ACT_NONE = 0, NN_ACT_RELU = 1, NN_ACT_TANH = 2 } nn_act;

/* What an MLP is. A zeroed spec plus in_dim, n_hidden, hidden[], out_dim and max_batch is a
 * plain trainable ReLU MLP. Each hidden layer is
 *     Linear → [LayerNorm if layernorm] → [Dropout(dropout) if dropout > 0] → ReLU
 * (the IBRL actor/BC is Linear→Dropout→ReLU, the critic Linear→LayerNorm→ReLU), and the output
 * layer is Linear → out_act (NN_ACT_NONE or NN_ACT_TANH). */
typedef struct nn_mlp_spec {
  int in_dim;                  /* input features, > 0 */
  int n_hidden;                /* hidden layers, 0..NN_MAX_HIDDEN */
  int hidden[NN_MAX_HIDDEN];   /* their widths, > 0 */
  int out_dim;                 /* output features, > 0 */
  int layernorm;               /* 1: LayerNorm (affine, eps 1e-5) after each hidden Linear */
  float dropout;               /* dropout probability in [0,1) after each hidden layer; 0: none */
  nn_act out_act;              /* NN_ACT_NONE or NN_ACT_TANH */
  int max_batch;               /* largest B ever passed to forward, > 0 */
  int no_train;                /* 1: no grads and no Adam arenas (frozen BC, target nets); the
                                  input gradient is still available (nn_mlp_backward, accum 0) */
} nn_mlp_spec;

/* Views of one Linear layer (and its LayerNorm) into the arenas. Never freed by the user. */
typedef struct nn_layer {
  int in, out;        /* Linear (out, in) */
  int ln;             /* 1 if followed by LayerNorm */
  size_t offset;      /* index of w in the arenas */
  size_t size;        /* floats of this layer in the arenas (w, b, and gamma, beta if ln) */
  float *w, *b;       /* (out,in), (out): views into params */
  float *ln_g, *ln_b; /* (out), (out) views into params, or NULL */
  float *dw, *db;     /* views into grads, NULL if no_train */
  float *dln_g, *dln_b;
} nn_layer;

/* An MLP. Caller-allocated (a struct, like libuv handles); nn_mlp_init fills it and
 * nn_mlp_free releases it. Fields are read-only for users except the arena CONTENTS
 * (params may be overwritten, e.g. by a broadcast; grads by an allreduce). */
typedef struct nn_mlp {
  nn_mlp_spec spec;
  int n_layers;              /* Linear layers = n_hidden + 1 */
  nn_layer layer[NN_MAX_HIDDEN + 1];
  size_t n_params;           /* floats in each arena */
  float *params;             /* (n_params) owned unless the net is an ensemble head */
  float *grads;              /* (n_params) or NULL if no_train */
  float *adam_m, *adam_v;    /* (n_params) or NULL if no_train */
  long adam_t;               /* Adam steps taken (torch's `step`); saved in checkpoints */
  int batch;                 /* B of the last forward, 0 before any */
  int owns_arenas;           /* internal */
  struct nn_mlp_ws *ws;      /* owned workspaces (internal) */
} nn_mlp;

/* Validates `spec`, allocates the arenas and workspaces, and initialises the parameters as
 * PyTorch does by default: W and b of each Linear ~ U(-1/√in, 1/√in) drawn from `init_rng`
 * (W row-major first, then b, layer by layer), LayerNorm gamma 1 and beta 0. init_rng NULL
 * leaves W and b zero (for a net that will receive a copy or a checkpoint). Grads and Adam
 * moments start at zero, adam_t 0.
 * Returns IB_OK, or IB_EINVAL naming the bad field (net is then zeroed; nn_mlp_free is safe). */
int nn_mlp_init(nn_mlp *net, const nn_mlp_spec *spec, rng *init_rng);
/* Releases everything init allocated. Accepts a zeroed or freed struct. */
void nn_mlp_free(nn_mlp *net);

/* Forward pass for B rows (1 <= B <= max_batch). x (B, in_dim) is copied, so the caller may
 * reuse it at once. train 1: dropout active with masks drawn from `r` (r must be non-NULL when
 * dropout > 0; the masks are drawn with nn_dropout_mask layer by layer, B·hidden[l] values
 * each, so the same r state gives the same masks); train 0: dropout is the identity and r is
 * unused (may be NULL). Activations are
 * cached for one following backward. If out is non-NULL the output (B, out_dim) is also copied
 * there. Returns the net's own output buffer (B, out_dim), valid until the next forward. */
const float *nn_mlp_forward(nn_mlp *net, float *out, const float *x, int B, int train, rng *r);

/* accum_params value of nn_mlp_backward / nn_ens_backward that OVERWRITES the parameter
 * gradients instead of adding to them: the same result as zero-grad + accumulate, without the
 * zeroing pass over the arena (the dW products run with beta 0). */
#define NN_GRADS_SET 2

/* Backward from dout (B, out_dim) of the LAST forward (same B). accum_params 1: accumulates the
 * parameter gradients into net->grads (requires a trainable net); NN_GRADS_SET: writes them
 * (every parameter gradient of the net, so no zero-grad is needed). accum_params 0: leaves
 * grads untouched (a frozen critic inside the actor loss). dx (B, in_dim), if non-NULL,
 * receives += the gradient w.r.t. the input (used for dQ/da). With accum_params 0 and dx NULL
 * it does nothing. The cached activations stay valid, so backward may be called again. */
void nn_mlp_backward(nn_mlp *net, float *dx, const float *dout, int accum_params);

/* grads = 0. */
void nn_mlp_zero_grad(nn_mlp *net);
/* dst->params = src->params; both nets must have the same layer shapes (IB_CHECK). Works between
 * a trainable and a no_train net. */
void nn_mlp_copy_params(nn_mlp *dst, const nn_mlp *src);
/* target = (1 - tau)·target + tau·online over the param arenas (same shapes, IB_CHECK). */
void nn_mlp_polyak(nn_mlp *target, const nn_mlp *online, float tau);
/* 1 if both nets have the same layer shapes (and LayerNorm flags), else 0. */
int nn_mlp_same_shape(const nn_mlp *a, const nn_mlp *b);

/* ------------------------------------------------------------------------------------------ */
/* ---- critic ensemble ---- */

/* E heads with the same spec (out_dim 1), all params in one arena (head e at e·head_params).
 * Each head has ordinary per-unit biases and its OWN LayerNorm gamma/beta. NOTE: the IBRL
 * reference (rl/critic.py MultiFcQ) uses a single scalar bias per head per layer and one
 * LayerNorm affine shared by all heads; that quirk is deliberately NOT reproduced here. */
typedef struct nn_ens {
  int E;
  nn_mlp head[NN_MAX_HEADS]; /* heads; their arenas are views into the arenas below. Use them
                                for reading shapes and params only: nn_mlp_forward and
                                nn_mlp_save on a head abort (it has no input buffer of its own
                                and does not own its arenas) */
  size_t head_params;        /* floats per head */
  size_t n_params;           /* E · head_params */
  float *params, *grads;     /* (n_params), owned; grads NULL if no_train */
  float *adam_m, *adam_v;    /* (n_params), owned; NULL if no_train */
  long adam_t;
  int batch;                 /* B of the last forward */
  int k;                     /* heads evaluated by the last forward */
  int idx[NN_MAX_HEADS];     /* which heads, in output column order */
  float *x;                  /* (max_batch, in_dim) copy of the last input (owned) */
  float *dh;                 /* (max_batch) scratch (internal) */
} nn_ens;

/* Builds E (1..NN_MAX_HEADS) heads of `head_spec` (out_dim must be 1). Head e is initialised
 * from init_rng in order e = 0..E-1, exactly as E separate nn_mlp_init calls on one stream.
 * Returns IB_OK or IB_EINVAL (ens zeroed; nn_ens_free is safe). */
int nn_ens_init(nn_ens *ens, int E, const nn_mlp_spec *head_spec, rng *init_rng);
void nn_ens_free(nn_ens *ens);

/* Evaluates the k heads listed in heads[0..k) (distinct, in [0,E)) on the same input x (B,in),
 * writing q (B,k) with q[b*k + j] = Q_{heads[j]}(x_b). heads NULL means all E heads in order
 * (k must then be E). train/r as in nn_mlp_forward. Caches for one backward. */
void nn_ens_forward(nn_ens *ens, float *q, const float *x, int B, const int *heads, int k,
                    int train, rng *r);
/* Backward of the last forward from dq (B,k). accum_params as in nn_mlp_backward (only the
 * evaluated heads get gradients; with NN_GRADS_SET the other heads' grads are left as they are). dx (B,in), if non-NULL, gets += the sum over heads. */
void nn_ens_backward(nn_ens *ens, float *dx, const float *dq, int accum_params);

/* Min over the k columns of q (B,k): qmin (B), argmin (B) the column of the minimum (the first
 * one on ties, as torch.min). */
void nn_ens_min_forward(float *qmin, int *argmin, const float *q, int B, int k);
/* Backward of the min: dq[b*k + argmin[b]] += dqmin[b]; other columns get nothing. */
void nn_ens_min_backward(float *dq, const float *dqmin, const int *argmin, int B, int k);

/* As the nn_mlp_ versions, over the whole ensemble arena (same E and head shapes, IB_CHECK). */
void nn_ens_zero_grad(nn_ens *ens);
void nn_ens_copy_params(nn_ens *dst, const nn_ens *src);
void nn_ens_polyak(nn_ens *target, const nn_ens *online, float tau);

/* ------------------------------------------------------------------------------------------ */
/* ---- SAC head: tanh-squashed diagonal Gaussian ---- */

/* log_std is clamped to [NN_SAC_LOG_STD_MIN, NN_SAC_LOG_STD_MAX] (hard clamp as torch.clamp:
 * zero gradient outside the range), the range of the original SAC code. */
#define NN_SAC_LOG_STD_MIN (-20.0f)
#define NN_SAC_LOG_STD_MAX (2.0f)

/* eps[0..n) ~ N(0,1) from r (rng_normal). */
void nn_sac_noise(float *eps, size_t n, rng *r);
/* From the net output h (B, 2A) = [mean (A) | log_std (A)] per row and noise eps (B,A):
 *   u = mean + exp(clamp(log_std))·eps,  a = tanh(u)   (a: (B,A))
 *   logp = Σ_j [ -eps_j²/2 - log_std_j - log(2π)/2 - log(1 - tanh²(u_j)) ]   (logp: (B))
 * with log(1 - tanh²u) = 2·(log 2 - u - softplus(-2u)) (stable for large |u|). logp may be NULL. */
void nn_sac_forward(float *a, float *logp, const float *h, const float *eps, int B, int A);
/* Accumulates dh (B,2A) += d(loss)/dh for a loss with dloss/da = da (B,A) and dloss/dlogp =
 * dlogp (B); either may be NULL (zero). Recomputes from h and eps (no state). */
void nn_sac_backward(float *dh, const float *da, const float *dlogp, const float *h,
                     const float *eps, int B, int A);
/* Deterministic action a = tanh(mean) (B,A), for evaluation. */
void nn_sac_mean(float *a, const float *h, int B, int A);

/* ------------------------------------------------------------------------------------------ */
/* ---- optimiser and arena helpers ---- */

/* torch.optim.Adam semantics: with t the step number after increment (1, 2, ...):
 *   g += weight_decay·p   (coupled L2, as Adam's weight_decay, not AdamW)
 *   m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²
 *   p -= lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + eps)            */
typedef struct nn_adam_cfg {
  float lr, beta1, beta2, eps, weight_decay;
} nn_adam_cfg;
/* lr with torch's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0. */
nn_adam_cfg nn_adam_defaults(float lr);
/* One Adam update over a flat arena of n floats at step t (>= 1). One loop, no allocation. */
void nn_adam_update(float *params, float *m, float *v, const float *grads, size_t n,
                    const nn_adam_cfg *cfg, long t);
/* ++adam_t, then nn_adam_update over the whole arena (trainable nets only). */
void nn_mlp_adam_step(nn_mlp *net, const nn_adam_cfg *cfg);
void nn_ens_adam_step(nn_ens *ens, const nn_adam_cfg *cfg);

/* target = (1 - tau)·target + tau·online, n floats. */
void nn_arena_polyak(float *target, const float *online, size_t n, float tau);
/* Euclidean norm (accumulated in double lanes, summed in a fixed order for a given thread
 * count) of x[0..n). */
double nn_arena_norm(const float *x, size_t n);
/* x *= s. (Gradient-norm clipping: s = min(1, max_norm / (norm + 1e-6)), as torch.) */
void nn_arena_scale(float *x, size_t n, float s);
/* x = 0, n floats. */
void nn_arena_zero(float *x, size_t n);

/* Sets the number of threads ib_nn uses for the whole process (1..8; more is clamped to 8).
 * ib_nn runs its own team (forward rows, backward rows and dW blocks, Adam/Polyak/zero/norm
 * over arena parts) and sets OpenBLAS itself to one thread, so this is the only knob. Results
 * are reproducible for a given thread count; between thread counts they differ only in the
 * order of column sums (bias and LayerNorm grads) and norms. Call it at start-up, before
 * other threads use ib_nn. */
void nn_set_threads(int n);
/* Precision of every ib_nn matrix product (nn_gemm.h): fp32 OpenBLAS sgemm, or AMX-BF16 tiles
 * with inputs split in two bf16 terms (bf16x3: C = hi·hi + hi·lo + lo·hi, ~1e-5 of Σ|a||b|) or
 * rounded to one (bf16, ~1e-3, at most ~8e-3), always accumulated in fp32 (nn_amx.h). Very
 * narrow or short products (N < 7 or K < 16, e.g. the critic's 1-wide output; nn_gemm.h) stay
 * fp32 in every mode. The bf16 modes give other bits than fp32, so a run is reproducible only
 * with the same mode (and thread count). */
/* NN_MATMUL_AUTO is a request, not a mode: bf16x3 where the CPU has AMX-BF16, else fp32
 * (nn_matmul_resolve). bf16x3 is the precision PyTorch's set_float32_matmul_precision("high")
 * names (each fp32 value as the sum of two bf16 values); the paper-scale preset asks for it
 * because fp32 sgemm cannot run its 130 GFLOP step fast enough on one core. */
typedef enum nn_matmul { NN_MATMUL_FP32 = 0, NN_MATMUL_BF16X3 = 1, NN_MATMUL_BF16 = 2, NN_MATMUL_AUTO = 3 } nn_matmul;
/* Sets the precision of every ib_nn matrix product (process-wide; call before any work, like
 * nn_set_threads); AUTO sets nn_matmul_resolve(AUTO). IB_EUNAVAIL with a message naming the CPU
 * feature when a bf16 mode is asked for on a machine without AMX-BF16 (HINT: --matmul fp32);
 * IB_EINVAL for a value outside the enum. */
int nn_set_matmul(nn_matmul m);
nn_matmul nn_get_matmul(void);                 /* NN_MATMUL_FP32 until set; never AUTO */
nn_matmul nn_matmul_resolve(nn_matmul m);      /* AUTO -> BF16X3 with AMX-BF16, else FP32; others as given */
const char *nn_matmul_name(nn_matmul m);       /* "fp32", "bf16x3", "bf16", "auto" */
int nn_matmul_parse(nn_matmul *out, const char *s); /* IB_EINVAL + message listing the choices */
/* The thread count set by nn_set_threads (1 before any call). */
int nn_threads(void);
/* The OpenBLAS kernel in use (openblas_get_corename), e.g. "SkylakeX", "Haswell", "Prescott". */
const char *nn_blas_core(void);
/* Checks that OpenBLAS picked a kernel that uses the CPU's vector units. OpenBLAS 0.3.21 does
 * not know newer Xeons (e.g. with avx512_fp16) and falls back to the SSE3 "Prescott" kernel,
 * measured 3x slower here. Returns IB_OK, or IB_ESTATE with ib_errmsg() naming the kernel and
 * the HINT (export OPENBLAS_CORETYPE=SkylakeX or Haswell before the process starts; the
 * variable is read when the library loads). Callers log it as a warning; results are correct
 * either way. */
int nn_blas_check(void);

/* Makes the process use the right OpenBLAS kernel without the user setting anything: if
 * nn_blas_check fails and OPENBLAS_CORETYPE is unset, sets it (SkylakeX on AVX-512, Haswell on
 * AVX2) and re-executes the program (/proc/self/exe with the same argv and environment), once.
 * Call it first thing in main(), before threads, MPI_Init or any output; argv must be main's
 * NULL-terminated argv. Returns only if no re-exec was needed or possible (then it logs why). */
void nn_blas_autoselect(char **argv);

/* ------------------------------------------------------------------------------------------ */
/* ---- checkpoints ---- */

/* File: magic "IBNN", version, kind (mlp/ensemble), the spec (in, hidden, out, layernorm,
 * dropout, out_act), E, n_params, adam_t, flags, then params [, adam m, adam v], then a CRC-32
 * (ib_crc32) of everything before it. Written to "<path>.tmp", fsync'd, then renamed over path,
 * so a reader never sees a half-written file. with_adam 1 also stores m, v and adam_t (the net
 * must be trainable, else IB_EINVAL). Non-finite params are written as they are (a diverged net
 * can be kept for a post-mortem); nn_*_load refuses them. Returns IB_OK or IB_EIO naming the
 * path. */
int nn_mlp_save(const nn_mlp *net, const char *path, int with_adam);
int nn_ens_save(const nn_ens *ens, const char *path, int with_adam);
/* Loads into an initialised net of the SAME structure. Refuses (and leaves the net unchanged)
 * with IB_EIO (cannot open/read), IB_EPROTO (bad magic, version, truncated), IB_ECHECKSUM (CRC
 * mismatch), IB_ENONFINITE (a stored parameter is NaN/Inf) or IB_EMISMATCH saying exactly what
 * differs, e.g. "layer 0: file has 1024x76, network has 1024x69" (layer shapes are out x in;
 * layernorm, out_act, dropout and the head count must match too). If the file has Adam state and the net is trainable, m, v and adam_t
 * are loaded too; otherwise the net's Adam state is zeroed (adam_t 0) if it is trainable. */
int nn_mlp_load(nn_mlp *net, const char *path);
int nn_ens_load(nn_ens *ens, const char *path);

#endif /* IB_NN_H */
