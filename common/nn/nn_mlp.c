/* nn_mlp.c: the MLP container and the critic ensemble of nn.h.
 *
 * Design. An MLP is a list of Linear layers whose tensors are views into four flat arenas
 * (params, grads, adam_m, adam_v) with one layout (see nn.h). Workspaces are allocated once at
 * init for spec.max_batch rows:
 *   z[l]    (B, out_l)  Linear output incl. bias; only for LayerNorm layers (LN backward needs it)
 *   h[l]    (B, out_l)  the layer's output after LN/dropout/ReLU (hidden) or out_act (last);
 *                       it is the input of layer l+1 and, for ReLU/tanh, all their backward needs
 *   mask[l] (B, out_l)  dropout masks of the last train-mode forward
 *   mean[l], rstd[l] (B) LayerNorm statistics
 *   d0, d1  (B, max width) gradient ping-pong buffers
 * Forward per hidden layer is one sgemm (beta 0) followed by ONE fused row pass that adds the
 * bias, normalises, applies the dropout mask and the ReLU, so each activation is touched once
 * after the matmul. Backward per hidden layer is one fused row pass that gates by ReLU and the
 * mask, runs the LayerNorm backward in place, and accumulates db and the LN affine grads, then
 * the dW (beta 1) and dX (beta 0 into the other buffer) sgemms. Dropout after LayerNorm and
 * before ReLU equals dropout after ReLU since the mask is non-negative. Every matrix product
 * ("sgemm" here) goes through nn_gemm (nn_gemm.h): fp32 OpenBLAS, or AMX bf16x3/bf16 after
 * nn_set_matmul; its path never depends on the rows, so the team's row splits keep their bits.
 *
 * An ensemble owns one arena set of E·head_params floats; each head is an nn_mlp whose arenas
 * are views into slice e (owns_arenas 0) and which reads its input from the ensemble's copy of
 * x, so E heads cost one input copy. Heads are evaluated one after another: their weights
 * differ, so there is no shared matmul to batch, and each sgemm is already large. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ib.h"
#include "nn.h"
#include "nn_gemm.h"
#include "nn_par.h"

struct nn_mlp_ws {
  float *x;         /* (max_batch, in) owned input copy; NULL for ensemble heads */
  const float *in0; /* input of the last forward (x, or the ensemble's copy) */
  float *z[NN_MAX_HIDDEN + 1];
  float *h[NN_MAX_HIDDEN + 1];
  float *mask[NN_MAX_HIDDEN + 1];
  float *mean[NN_MAX_HIDDEN + 1], *rstd[NN_MAX_HIDDEN + 1];
  int masked;       /* 1 if the last forward applied dropout masks */
  float *d0, *d1;
  float *part;      /* (2, NN_PAR_MAX, 3, max width) per-member column sums of a team backward,
                       double-buffered by layer parity */
  int wmax;         /* max layer width */
};

/* ---- big buffers ----
 * Arenas and workspaces of a few MiB and more (a 1024-wide critic ensemble has four 44 MB arenas)
 * are aligned to 2 MiB and advised MADV_HUGEPAGE before they are first touched, so where
 * transparent huge pages are in "madvise" mode (Debian's default) the kernel backs them with 2 MiB
 * pages: Adam, Polyak and the sgemm packing stream through them with ~500x fewer TLB entries.
 * Smaller buffers stay on the 64-byte path. Both are released with free(). */
#define NN_HUGE_MIN ((size_t)4 << 20)
#define NN_HUGE_ALIGN ((size_t)2 << 20)

static float *big_alloc(size_t bytes) {
  if (bytes < NN_HUGE_MIN) return ib_xaligned(bytes);
  size_t rounded = (bytes + NN_HUGE_ALIGN - 1) / NN_HUGE_ALIGN * NN_HUGE_ALIGN;
  void *p = aligned_alloc(NN_HUGE_ALIGN, rounded);
  if (!p) return ib_xaligned(bytes); /* aborts with the size if memory is really short */
#ifdef MADV_HUGEPAGE
  (void)madvise(p, rounded, MADV_HUGEPAGE); /* advice only: 4 KiB pages work the same */
#endif
  memset(p, 0, rounded);
  return p;
}

/* ---- spec and layout ---- */

static int spec_check(const nn_mlp_spec *s) {
  if (s->in_dim <= 0)
    return ib_fail(IB_EINVAL, "nn spec: in_dim %d is not positive (HINT: the observation size)", s->in_dim);
  if (s->out_dim <= 0)
    return ib_fail(IB_EINVAL, "nn spec: out_dim %d is not positive", s->out_dim);
  if (s->n_hidden < 0 || s->n_hidden > NN_MAX_HIDDEN)
    return ib_fail(IB_EINVAL, "nn spec: n_hidden %d is outside 0..%d", s->n_hidden, NN_MAX_HIDDEN);
  for (int i = 0; i < s->n_hidden; i++)
    if (s->hidden[i] <= 0)
      return ib_fail(IB_EINVAL, "nn spec: hidden[%d] = %d is not positive", i, s->hidden[i]);
  if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
    return ib_fail(IB_EINVAL, "nn spec: dropout %g is outside [0,1) (HINT: 0 disables it)",
                   (double)s->dropout);
  if (s->out_act != NN_ACT_NONE && s->out_act != NN_ACT_TANH)
    return ib_fail(IB_EINVAL, "nn spec: out_act %d is not NN_ACT_NONE or NN_ACT_TANH", (int)s->out_act);
  if (s->layernorm != 0 && s->layernorm != 1)
    return ib_fail(IB_EINVAL, "nn spec: layernorm %d is not 0 or 1", s->layernorm);
  if (s->max_batch <= 0)
    return ib_fail(IB_EINVAL, "nn spec: max_batch %d is not positive (HINT: the largest batch you will forward)",
                   s->max_batch);
  return IB_OK;
}

/* Fills net->layer[] shapes and offsets; returns the arena size. */
static size_t layout_plan(nn_mlp *net) {
  const nn_mlp_spec *s = &net->spec;
  size_t off = 0;
  int in = s->in_dim;
  net->n_layers = s->n_hidden + 1;
  for (int l = 0; l < net->n_layers; l++) {
    nn_layer *L = &net->layer[l];
    int hidden = l < s->n_hidden;
    L->in = in;
    L->out = hidden ? s->hidden[l] : s->out_dim;
    L->ln = hidden && s->layernorm;
    L->offset = off;
    L->size = (size_t)L->out * L->in + L->out + (L->ln ? 2u * L->out : 0u);
    off += L->size;
    in = L->out;
  }
  return off;
}

/* Points the layer views into the arenas (grads may be NULL). */
static void layout_bind(nn_mlp *net) {
  for (int l = 0; l < net->n_layers; l++) {
    nn_layer *L = &net->layer[l];
    size_t wsz = (size_t)L->out * L->in;
    float *p = net->params + L->offset;
    L->w = p;
    L->b = p + wsz;
    L->ln_g = L->ln ? p + wsz + L->out : NULL;
    L->ln_b = L->ln ? p + wsz + 2 * (size_t)L->out : NULL;
    if (net->grads) {
      float *g = net->grads + L->offset;
      L->dw = g;
      L->db = g + wsz;
      L->dln_g = L->ln ? g + wsz + L->out : NULL;
      L->dln_b = L->ln ? g + wsz + 2 * (size_t)L->out : NULL;
    } else {
      L->dw = L->db = L->dln_g = L->dln_b = NULL;
    }
  }
}

static void params_init(nn_mlp *net, rng *r) {
  for (int l = 0; l < net->n_layers; l++) {
    nn_layer *L = &net->layer[l];
    if (r) {
      /* torch.nn.Linear.reset_parameters: kaiming_uniform_(a=√5) is U(-1/√in, 1/√in) for W,
       * and the bias is U(-1/√in, 1/√in) too. */
      float bound = 1.0f / sqrtf((float)L->in);
      size_t wsz = (size_t)L->out * L->in;
      for (size_t i = 0; i < wsz; i++) L->w[i] = (2.0f * rng_uniform(r) - 1.0f) * bound;
      for (int i = 0; i < L->out; i++) L->b[i] = (2.0f * rng_uniform(r) - 1.0f) * bound;
    }
    if (L->ln)
      for (int i = 0; i < L->out; i++) {
        L->ln_g[i] = 1.0f;
        L->ln_b[i] = 0.0f;
      }
  }
}

/* Allocates the workspaces; own_input 0 for ensemble heads. */
static struct nn_mlp_ws *ws_create(const nn_mlp *net, int own_input) {
  struct nn_mlp_ws *ws = ib_xcalloc(1, sizeof *ws);
  const nn_mlp_spec *s = &net->spec;
  size_t B = (size_t)s->max_batch;
  int wmax = s->in_dim;
  if (own_input) ws->x = ib_xaligned(B * s->in_dim * sizeof(float));
  for (int l = 0; l < net->n_layers; l++) {
    const nn_layer *L = &net->layer[l];
    int hidden = l < s->n_hidden;
    ws->h[l] = big_alloc(B * L->out * sizeof(float));
    if (L->ln) {
      ws->z[l] = big_alloc(B * L->out * sizeof(float));
      ws->mean[l] = ib_xaligned(B * sizeof(float));
      ws->rstd[l] = ib_xaligned(B * sizeof(float));
    }
    if (hidden && s->dropout > 0.0f) ws->mask[l] = big_alloc(B * L->out * sizeof(float));
    wmax = IB_MAX(wmax, L->out);
  }
  ws->d0 = big_alloc(B * wmax * sizeof(float));
  ws->d1 = big_alloc(B * wmax * sizeof(float));
  ws->part = ib_xaligned((size_t)2 * NN_PAR_MAX * 3 * wmax * sizeof(float));
  ws->wmax = wmax;
  return ws;
}

static void ws_destroy(struct nn_mlp_ws *ws) {
  if (!ws) return;
  free(ws->x);
  for (int l = 0; l < NN_MAX_HIDDEN + 1; l++) {
    free(ws->z[l]);
    free(ws->h[l]);
    free(ws->mask[l]);
    free(ws->mean[l]);
    free(ws->rstd[l]);
  }
  free(ws->d0);
  free(ws->d1);
  free(ws->part);
  free(ws);
}

int nn_mlp_init(nn_mlp *net, const nn_mlp_spec *spec, rng *init_rng) {
  IB_CHECK(net && spec);
  memset(net, 0, sizeof *net);
  int rc = spec_check(spec);
  if (rc != IB_OK) return rc;
  net->spec = *spec;
  net->n_params = layout_plan(net);
  size_t bytes = net->n_params * sizeof(float);
  net->params = big_alloc(bytes);
  if (!spec->no_train) {
    net->grads = big_alloc(bytes);
    net->adam_m = big_alloc(bytes);
    net->adam_v = big_alloc(bytes);
  }
  net->owns_arenas = 1;
  layout_bind(net);
  params_init(net, init_rng);
  net->ws = ws_create(net, 1);
  return IB_OK;
}

void nn_mlp_free(nn_mlp *net) {
  if (!net) return;
  if (net->owns_arenas) {
    free(net->params);
    free(net->grads);
    free(net->adam_m);
    free(net->adam_v);
  }
  ws_destroy(net->ws);
  memset(net, 0, sizeof *net);
}

/* ---- row reductions ----
 * LayerNorm needs two row sums per row in each direction. A plain `double s += x[i]` loop is one long
 * dependency chain (the compiler may not reorder float additions), which costs ~4 cycles per
 * element. These keep NN_LANES independent double partial sums, combined at the end: the same
 * double accuracy, but the lanes vectorise and pipeline. */
#define NN_LANES 8

/* The row passes are compute-bound on L1-resident rows, so they get an AVX-512 clone next to the
 * baseline x86-64 one, chosen once at load time (GCC function multiversioning). Same source, same
 * operation order per element, so results do not depend on the clone beyond what vector width
 * changes in the lane sums (none: the lanes are explicit). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NN_NO_CLONES)
#define NN_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define NN_CLONES
#endif

/* z += bias, and the sum and sum of squares of the result, in one pass. */
/* always_inline: the helpers must be compiled into each clone of their callers, or they stay
 * baseline x86-64 code (measured: 3.7% of a learning step in the non-inlined SSE2 version). */
__attribute__((always_inline)) static inline void lane_bias_moments(double *sum, double *sumsq, float *z, const float *bias, int n) {
  double a[NN_LANES] = {0}, q[NN_LANES] = {0};
  int i = 0;
  for (; i + NN_LANES <= n; i += NN_LANES)
    for (int j = 0; j < NN_LANES; j++) {
      float v = z[i + j] + bias[i + j];
      z[i + j] = v;
      a[j] += v;
      q[j] += (double)v * v;
    }
  double s = 0.0, t = 0.0;
  for (; i < n; i++) {
    float v = z[i] + bias[i];
    z[i] = v;
    s += v;
    t += (double)v * v;
  }
  for (int j = 0; j < NN_LANES; j++) s += a[j], t += q[j];
  *sum = s;
  *sumsq = t;
}

/* sg = Σ g·gamma and sgx = Σ g·gamma·xhat with xhat = (z - m)·r, for the LayerNorm backward. */
__attribute__((always_inline)) static inline void lane_ln_sums(double *sg, double *sgx, const float *g, const float *gamma, const float *z, float m,
                         float r, int n) {
  double a[NN_LANES] = {0}, b[NN_LANES] = {0};
  int i = 0;
  for (; i + NN_LANES <= n; i += NN_LANES)
    for (int j = 0; j < NN_LANES; j++) {
      float gw = g[i + j] * gamma[i + j];
      a[j] += gw;
      b[j] += (double)gw * ((z[i + j] - m) * r);
    }
  double s = 0.0, t = 0.0;
  for (; i < n; i++) {
    float gw = g[i] * gamma[i];
    s += gw;
    t += (double)gw * ((z[i] - m) * r);
  }
  for (int j = 0; j < NN_LANES; j++) s += a[j], t += b[j];
  *sg = s;
  *sgx = t;
}

/* ---- forward ---- */

/* The fused row pass of a hidden layer: h = relu(mask ⊙ LN(z + b)) or relu(mask ⊙ (z + b)).
 * Without LayerNorm, z and h are the same buffer (the sgemm wrote into h). */
NN_CLONES static void hidden_rows_forward(struct nn_mlp_ws *ws, const nn_layer *L, int l, int b0, int b1,
                                const float *mask) {
  const int C = L->out;
  for (int b = b0; b < b1; b++) {
    float *h = ws->h[l] + (size_t)b * C;
    const float *mk = mask ? mask + (size_t)b * C : NULL;
    if (L->ln) {
      float *z = ws->z[l] + (size_t)b * C;
      double sum, sumsq;
      lane_bias_moments(&sum, &sumsq, z, L->b, C);
      double m = sum / C;
      /* One pass: in double, E[z²] - m² loses only ~1e-16·(m² + var)/var of the variance, far
       * below float precision unless |mean| exceeds the std by ~10^4 (never for a Linear
       * output); the clamp guards the rounding when var is ~0. */
      double var = sumsq / C - m * m;
      var = var > 0.0 ? var : 0.0;
      float r = (float)(1.0 / sqrt(var + (double)NN_LN_EPS));
      float mf = (float)m;
      ws->mean[l][b] = mf;
      ws->rstd[l][b] = r;
      if (mk)
        for (int i = 0; i < C; i++) {
          float y = ((z[i] - mf) * r * L->ln_g[i] + L->ln_b[i]) * mk[i];
          h[i] = y > 0.0f ? y : 0.0f;
        }
      else
        for (int i = 0; i < C; i++) {
          float y = (z[i] - mf) * r * L->ln_g[i] + L->ln_b[i];
          h[i] = y > 0.0f ? y : 0.0f;
        }
    } else if (mk) {
      for (int i = 0; i < C; i++) {
        float y = (h[i] + L->b[i]) * mk[i];
        h[i] = y > 0.0f ? y : 0.0f;
      }
    } else {
      for (int i = 0; i < C; i++) {
        float y = h[i] + L->b[i];
        h[i] = y > 0.0f ? y : 0.0f;
      }
    }
  }
}

/* Rows [b0, b1) of a forward whose masks (if any) are already drawn: per layer one sgemm on those
 * rows and the fused row pass. Rows are independent in a forward, so team members run this on
 * their own rows with no synchronisation. */
static void mlp_forward_rows(nn_mlp *net, const float *in0, int b0, int b1) {
  const nn_mlp_spec *s = &net->spec;
  struct nn_mlp_ws *ws = net->ws;
  const int M = b1 - b0;
  if (M <= 0) return;
  const float *inp = in0 + (size_t)b0 * s->in_dim;
  for (int l = 0; l < net->n_layers; l++) {
    const nn_layer *L = &net->layer[l];
    float *dst = (L->ln ? ws->z[l] : ws->h[l]) + (size_t)b0 * L->out;
    nn_gemm(dst, inp, L->w, 0.0f, NN_GEMM_N, NN_GEMM_T, M, L->out, L->in, L->in, L->in, L->out);
    if (l < s->n_hidden) {
      hidden_rows_forward(ws, L, l, b0, b1, ws->masked ? ws->mask[l] : NULL);
    } else {
      for (int b = b0; b < b1; b++) {
        float *o = ws->h[l] + (size_t)b * L->out;
        if (s->out_act == NN_ACT_TANH)
          for (int i = 0; i < L->out; i++) o[i] = tanhf(o[i] + L->b[i]);
        else
          for (int i = 0; i < L->out; i++) o[i] += L->b[i];
      }
    }
    inp = ws->h[l] + (size_t)b0 * L->out;
  }
}

/* Below this many rows a pass is not worth a team (acting on one observation, tests). */
#define NN_PAR_MIN_ROWS 32

/* The member's share of B rows. */
static void team_rows(int *b0, int *b1, int B, const nn_team *tm) {
  size_t lo, hi;
  nn_par_range(&lo, &hi, (size_t)B, tm->tid, tm->nt, 8);
  *b0 = (int)lo;
  *b1 = (int)hi;
}

/* Draws the dropout masks of a train-mode forward, layer by layer in row order (the same draws
 * whatever the team size), and records what the backward needs. */
static void mlp_forward_prepare(nn_mlp *net, const float *in0, int B, int train, rng *r) {
  const nn_mlp_spec *s = &net->spec;
  struct nn_mlp_ws *ws = net->ws;
  IB_CHECK(B >= 1 && B <= s->max_batch);
  int use_mask = train && s->dropout > 0.0f;
  IB_CHECK(!use_mask || r != NULL);
  ws->in0 = in0;
  ws->masked = use_mask;
  if (use_mask)
    for (int l = 0; l < s->n_hidden; l++)
      nn_dropout_mask(ws->mask[l], (size_t)B * net->layer[l].out, s->dropout, r);
  net->batch = B;
}

/* One MLP pass handed to the team (forward: in0 and B; backward: dx, dout, accum). */
typedef struct mlp_job {
  nn_mlp *net;
  const float *in0;
  int B;
  float *dx;
  const float *dout;
  int accum;
} mlp_job;

/* Runs fn on the team, or on the caller alone for batches too small to split. */
static void team_run_rows(nn_par_fn fn, void *ctx, int B) {
  if (B >= NN_PAR_MIN_ROWS) {
    nn_par_run(fn, ctx);
  } else {
    nn_team solo = {0, 1};
    fn(ctx, &solo);
  }
}

static void fwd_task(void *ctx, const nn_team *tm) {
  const mlp_job *j = ctx;
  int b0, b1;
  team_rows(&b0, &b1, j->B, tm);
  mlp_forward_rows(j->net, j->in0, b0, b1);
}

/* Forward from an input the workspace does not own (the ensemble's copy) or its own copy. */
static const float *mlp_forward_from(nn_mlp *net, const float *in0, int B, int train, rng *r) {
  mlp_forward_prepare(net, in0, B, train, r);
  mlp_job j = {.net = net, .in0 = in0, .B = B};
  team_run_rows(fwd_task, &j, B);
  return net->ws->h[net->n_layers - 1];
}

const float *nn_mlp_forward(nn_mlp *net, float *out, const float *x, int B, int train, rng *r) {
  IB_CHECK(net && net->ws && net->ws->x && x);
  IB_CHECK(B >= 1 && B <= net->spec.max_batch);
  memcpy(net->ws->x, x, (size_t)B * net->spec.in_dim * sizeof(float));
  const float *y = mlp_forward_from(net, net->ws->x, B, train, r);
  if (out) memcpy(out, y, (size_t)B * net->spec.out_dim * sizeof(float));
  return y;
}

/* ---- backward ---- */

/* In place on d (B, C): d = dLoss/dz of hidden layer l from d = dLoss/dh, accumulating db and,
 * with LayerNorm, dgamma and dbeta when accum is set. */
NN_CLONES static void hidden_rows_backward(struct nn_mlp_ws *ws, const nn_layer *L, int l, int b0, int b1,
                                 float *d, float *db, float *dg, float *dbeta) {
  const int C = L->out;
  const int accum = db != NULL;
  const float *mask = ws->masked ? ws->mask[l] : NULL;
  for (int b = b0; b < b1; b++) {
    float *g = d + (size_t)b * C;
    const float *h = ws->h[l] + (size_t)b * C;
    const float *mk = mask ? mask + (size_t)b * C : NULL;
    /* Through ReLU (h > 0) and the dropout mask: g = dLoss/d(LN output). */
    if (mk)
      for (int i = 0; i < C; i++) g[i] = h[i] > 0.0f ? g[i] * mk[i] : 0.0f;
    else
      for (int i = 0; i < C; i++) g[i] = h[i] > 0.0f ? g[i] : 0.0f;
    if (L->ln) {
      const float *z = ws->z[l] + (size_t)b * C;
      const float m = ws->mean[l][b], r = ws->rstd[l][b];
      if (accum)
        for (int i = 0; i < C; i++) {
          dg[i] += g[i] * ((z[i] - m) * r);
          dbeta[i] += g[i];
        }
      double sg, sgx;
      lane_ln_sums(&sg, &sgx, g, L->ln_g, z, m, r, C);
      const float mg = (float)(sg / C), mgx = (float)(sgx / C);
      for (int i = 0; i < C; i++) {
        float xh = (z[i] - m) * r;
        g[i] = r * (g[i] * L->ln_g[i] - mg - xh * mgx);
      }
    }
    if (accum)
      for (int i = 0; i < C; i++) db[i] += g[i];
  }
}

/* One member's part of a backward (the whole of it for a one-member team). Rows are split for
 * the row passes and dX; dW needs every row, so each layer waits at a barrier and then splits dW
 * by its larger dimension. The barrier is needed without parameter grads too: the ping-pong
 * buffers hold layers of different widths, so one member's rows of layer l-1 overlap another
 * member's rows of layer l+1 in the same buffer. The column sums (db, LayerNorm affine
 * grads) of a multi-member team go to per-member partials, added in member order after the
 * barrier, so a team size always gives the same result; a one-member team accumulates straight
 * into the grads, in the order of the plain serial code. Buffer reuse: dX of layer l overwrites
 * the buffer that held dz of layer l+1; every member passed layer l's barrier, so nobody still
 * reads it. */
static void mlp_backward_team(nn_mlp *net, float *dx, const float *dout, int accum, const nn_team *tm) {
  struct nn_mlp_ws *ws = net->ws;
  const nn_mlp_spec *s = &net->spec;
  const int B = net->batch, Lo = net->n_layers - 1, nt = tm->nt;
  const nn_layer *last = &net->layer[Lo];
  int b0, b1;
  team_rows(&b0, &b1, B, tm);
  const int M = b1 - b0;

  /* dLoss/dz of the output layer. */
  const float *dz;
  if (s->out_act == NN_ACT_TANH) {
    const float *y = ws->h[Lo];
    for (size_t i = (size_t)b0 * last->out; i < (size_t)b1 * last->out; i++)
      ws->d0[i] = dout[i] * (1.0f - y[i] * y[i]);
    dz = ws->d0;
  } else {
    dz = dout;
  }
  float *next = s->out_act == NN_ACT_TANH ? ws->d1 : ws->d0;

  for (int l = Lo; l >= 0; l--) {
    const nn_layer *L = &net->layer[l];
    const float *inp = l > 0 ? ws->h[l - 1] : ws->in0;
    const int C = L->out;
    /* Partials of layer l live in buffer l&1: a member that runs ahead into layer l-1 zeroes its
     * other buffer, while the rest may still be adding up this one. */
    float *part = ws->part + (size_t)(l & 1) * NN_PAR_MAX * 3 * ws->wmax;
    float *pt = part + (size_t)tm->tid * 3 * ws->wmax;
    const int set = accum == NN_GRADS_SET; /* this layer's grads are written, not added to */
    if (set && nt == 1) { /* the one-member path adds straight into these small vectors */
      memset(L->db, 0, sizeof(float) * (size_t)C);
      if (L->ln) {
        memset(L->dln_g, 0, sizeof(float) * (size_t)C);
        memset(L->dln_b, 0, sizeof(float) * (size_t)C);
      }
    }
    if (l < Lo) {
      if (!accum) hidden_rows_backward(ws, L, l, b0, b1, (float *)dz, NULL, NULL, NULL);
      else if (nt == 1) hidden_rows_backward(ws, L, l, b0, b1, (float *)dz, L->db, L->dln_g, L->dln_b);
      else {
        memset(pt, 0, sizeof(float) * 3 * (size_t)C);
        hidden_rows_backward(ws, L, l, b0, b1, (float *)dz, pt, pt + C, pt + 2 * C);
      }
    }
    /* Every member finished layer l+1 (its dX read the buffer this layer's dX overwrites, with
     * other row strides) and this layer's row pass (dW needs every row). */
    nn_par_barrier(tm);
    if (accum) {
      if (nt == 1 && l == Lo) {
        for (int b = 0; b < B; b++)
          for (int i = 0; i < C; i++) L->db[i] += dz[(size_t)b * C + i];
      }
      if (nt > 1) { /* column sums of the member's share of the columns */
        size_t c0, c1;
        nn_par_range(&c0, &c1, (size_t)C, tm->tid, nt, 16);
        if (set && c1 > c0) {
          memset(L->db + c0, 0, sizeof(float) * (c1 - c0));
          if (L->ln) {
            memset(L->dln_g + c0, 0, sizeof(float) * (c1 - c0));
            memset(L->dln_b + c0, 0, sizeof(float) * (c1 - c0));
          }
        }
        if (l == Lo) {
          for (int b = 0; b < B; b++)
            for (size_t i = c0; i < c1; i++) L->db[i] += dz[(size_t)b * C + i];
        } else {
          for (int t = 0; t < nt; t++) {
            const float *q = part + (size_t)t * 3 * ws->wmax;
            for (size_t i = c0; i < c1; i++) L->db[i] += q[i];
            if (L->ln)
              for (size_t i = c0; i < c1; i++) {
                L->dln_g[i] += q[C + i];
                L->dln_b[i] += q[2 * C + i];
              }
          }
        }
      }
      /* dW (out,in) += dzᵀ · inp (or = with NN_GRADS_SET: beta 0, no zeroing pass), this
       * member's block */
      const float beta = set ? 0.0f : 1.0f;
      size_t lo, hi;
      if (L->out >= L->in) {
        nn_par_range(&lo, &hi, (size_t)L->out, tm->tid, nt, 16);
        if (hi > lo)
          nn_gemm(L->dw + lo * L->in, dz + lo, inp, beta, NN_GEMM_T, NN_GEMM_N, (int)(hi - lo), L->in, B, L->out,
                  L->in, L->in);
      } else {
        nn_par_range(&lo, &hi, (size_t)L->in, tm->tid, nt, 16);
        if (hi > lo)
          nn_gemm(L->dw + lo, dz, inp + lo, beta, NN_GEMM_T, NN_GEMM_N, L->out, (int)(hi - lo), B, L->out, L->in,
                  L->in);
      }
    }
    if (l > 0) { /* dLoss/dh of layer l-1 = dz · W, overwriting the other buffer (own rows) */
      if (M > 0)
        nn_gemm(next + (size_t)b0 * L->in, dz + (size_t)b0 * L->out, L->w, 0.0f, NN_GEMM_N, NN_GEMM_N, M, L->in,
                L->out, L->out, L->in, L->in);
      dz = next;
      next = next == ws->d0 ? ws->d1 : ws->d0;
    } else if (dx && M > 0) {
      nn_gemm(dx + (size_t)b0 * L->in, dz + (size_t)b0 * L->out, L->w, 1.0f, NN_GEMM_N, NN_GEMM_N, M, L->in, L->out,
              L->out, L->in, L->in);
    }
  }
}

static void bwd_task(void *ctx, const nn_team *tm) {
  const mlp_job *j = ctx;
  mlp_backward_team(j->net, j->dx, j->dout, j->accum, tm);
}

void nn_mlp_backward(nn_mlp *net, float *dx, const float *dout, int accum_params) {
  IB_CHECK(net && net->ws && dout);
  IB_CHECK(net->batch > 0); /* backward needs a forward */
  IB_CHECK(accum_params >= 0 && accum_params <= NN_GRADS_SET);
  IB_CHECK(!accum_params || net->grads != NULL);
  if (!accum_params && !dx) return;
  mlp_job j = {.net = net, .dx = dx, .dout = dout, .accum = accum_params};
  team_run_rows(bwd_task, &j, net->batch);
}

/* ---- arena operations ---- */

int nn_mlp_same_shape(const nn_mlp *a, const nn_mlp *b) {
  if (a->n_layers != b->n_layers || a->n_params != b->n_params) return 0;
  for (int l = 0; l < a->n_layers; l++)
    if (a->layer[l].in != b->layer[l].in || a->layer[l].out != b->layer[l].out ||
        a->layer[l].ln != b->layer[l].ln)
      return 0;
  return 1;
}

void nn_mlp_zero_grad(nn_mlp *net) {
  IB_CHECK(net && net->grads);
  nn_arena_zero(net->grads, net->n_params);
}

void nn_mlp_copy_params(nn_mlp *dst, const nn_mlp *src) {
  IB_CHECK(dst && src && nn_mlp_same_shape(dst, src));
  memcpy(dst->params, src->params, dst->n_params * sizeof(float));
}

void nn_mlp_polyak(nn_mlp *target, const nn_mlp *online, float tau) {
  IB_CHECK(target && online && nn_mlp_same_shape(target, online));
  nn_arena_polyak(target->params, online->params, target->n_params, tau);
}

void nn_mlp_adam_step(nn_mlp *net, const nn_adam_cfg *cfg) {
  IB_CHECK(net && net->grads && cfg);
  net->adam_t++;
  nn_adam_update(net->params, net->adam_m, net->adam_v, net->grads, net->n_params, cfg, net->adam_t);
}

/* ---- ensemble ---- */

int nn_ens_init(nn_ens *ens, int E, const nn_mlp_spec *head_spec, rng *init_rng) {
  IB_CHECK(ens && head_spec);
  memset(ens, 0, sizeof *ens);
  if (E < 1 || E > NN_MAX_HEADS)
    return ib_fail(IB_EINVAL, "nn ensemble: E = %d heads is outside 1..%d", E, NN_MAX_HEADS);
  if (head_spec->out_dim != 1)
    return ib_fail(IB_EINVAL, "nn ensemble: head out_dim is %d, must be 1 (one Q value per head)",
                   head_spec->out_dim);
  int rc = spec_check(head_spec);
  if (rc != IB_OK) return rc;
  ens->E = E;
  /* Plan one head to learn its size, then carve all heads from one arena set. */
  nn_mlp probe;
  memset(&probe, 0, sizeof probe);
  probe.spec = *head_spec;
  ens->head_params = layout_plan(&probe);
  ens->n_params = (size_t)E * ens->head_params;
  size_t bytes = ens->n_params * sizeof(float);
  ens->params = big_alloc(bytes);
  if (!head_spec->no_train) {
    ens->grads = big_alloc(bytes);
    ens->adam_m = big_alloc(bytes);
    ens->adam_v = big_alloc(bytes);
  }
  ens->x = ib_xaligned((size_t)head_spec->max_batch * head_spec->in_dim * sizeof(float));
  ens->dh = ib_xaligned((size_t)head_spec->max_batch * sizeof(float));
  for (int e = 0; e < E; e++) {
    nn_mlp *h = &ens->head[e];
    size_t off = (size_t)e * ens->head_params;
    h->spec = *head_spec;
    h->n_params = layout_plan(h);
    h->params = ens->params + off;
    if (ens->grads) {
      h->grads = ens->grads + off;
      h->adam_m = ens->adam_m + off;
      h->adam_v = ens->adam_v + off;
    }
    h->owns_arenas = 0;
    layout_bind(h);
    params_init(h, init_rng);
    h->ws = ws_create(h, 0);
  }
  return IB_OK;
}

void nn_ens_free(nn_ens *ens) {
  if (!ens) return;
  for (int e = 0; e < NN_MAX_HEADS; e++) nn_mlp_free(&ens->head[e]);
  free(ens->params);
  free(ens->grads);
  free(ens->adam_m);
  free(ens->adam_v);
  free(ens->x);
  free(ens->dh);
  memset(ens, 0, sizeof *ens);
}

typedef struct ens_job {
  nn_ens *ens;
  float *q;        /* forward output (B,k) */
  const float *dq; /* backward input (B,k); NULL for a forward */
  int accum;
  float *dx;
} ens_job;

/* One member's share of an ensemble pass, heads one after another: a forward (dq NULL) writes
 * column c of q from head c's output rows; a backward runs head c from column c of dq. ens->dh
 * holds that column: with parameter grads, head c's output-layer dW reads every row of it, so
 * members meet at a barrier before overwriting it; without, each member reads only its rows. */
static void ens_task(void *ctx, const nn_team *tm) {
  const ens_job *j = ctx;
  nn_ens *ens = j->ens;
  const int B = ens->batch, k = ens->k;
  int b0, b1;
  team_rows(&b0, &b1, B, tm);
  for (int c = 0; c < k; c++) {
    nn_mlp *h = &ens->head[ens->idx[c]];
    if (!j->dq) {
      mlp_forward_rows(h, ens->x, b0, b1);
      const float *y = h->ws->h[h->n_layers - 1];
      for (int b = b0; b < b1; b++) j->q[(size_t)b * k + c] = y[b];
      continue;
    }
    if (c > 0 && j->accum) nn_par_barrier(tm); /* head c-1's dW read every row of dh */
    for (int b = b0; b < b1; b++) ens->dh[b] = j->dq[(size_t)b * k + c];
    mlp_backward_team(h, j->dx, ens->dh, j->accum, tm);
  }
}

void nn_ens_forward(nn_ens *ens, float *q, const float *x, int B, const int *heads, int k,
                    int train, rng *r) {
  IB_CHECK(ens && q && x && ens->E > 0);
  IB_CHECK(B >= 1 && B <= ens->head[0].spec.max_batch);
  if (!heads) IB_CHECK(k == ens->E);
  IB_CHECK(k >= 1 && k <= ens->E);
  unsigned used = 0;
  for (int j = 0; j < k; j++) {
    int e = heads ? heads[j] : j;
    IB_CHECK(e >= 0 && e < ens->E && !(used & (1u << e))); /* distinct heads in range */
    used |= 1u << e;
    ens->idx[j] = e;
  }
  memcpy(ens->x, x, (size_t)B * ens->head[0].spec.in_dim * sizeof(float));
  /* Masks first, head by head (the draws of k separate forwards), then one team pass in which
   * each member runs every head on its own rows. */
  for (int j = 0; j < k; j++) mlp_forward_prepare(&ens->head[ens->idx[j]], ens->x, B, train, r);
  ens->batch = B;
  ens->k = k;
  ens_job job = {.ens = ens, .q = q};
  team_run_rows(ens_task, &job, B);
}

void nn_ens_backward(nn_ens *ens, float *dx, const float *dq, int accum_params) {
  IB_CHECK(ens && dq && ens->batch > 0);
  IB_CHECK(accum_params >= 0 && accum_params <= NN_GRADS_SET);
  IB_CHECK(!accum_params || ens->grads != NULL);
  const int B = ens->batch, k = ens->k;
  for (int j = 0; j < k; j++) IB_CHECK(ens->head[ens->idx[j]].batch == B); /* caches from this forward */
  if (!accum_params && !dx) return;
  ens_job job = {.ens = ens, .dq = dq, .accum = accum_params, .dx = dx};
  team_run_rows(ens_task, &job, B);
}

void nn_ens_min_forward(float *qmin, int *argmin, const float *q, int B, int k) {
  IB_CHECK(qmin && argmin && q && B > 0 && k > 0);
  for (int b = 0; b < B; b++) {
    const float *row = q + (size_t)b * k;
    int a = 0;
    for (int j = 1; j < k; j++)
      if (row[j] < row[a]) a = j;
    qmin[b] = row[a];
    argmin[b] = a;
  }
}

void nn_ens_min_backward(float *dq, const float *dqmin, const int *argmin, int B, int k) {
  IB_CHECK(dq && dqmin && argmin && B > 0 && k > 0);
  for (int b = 0; b < B; b++) {
    IB_ASSERT(argmin[b] >= 0 && argmin[b] < k);
    dq[(size_t)b * k + argmin[b]] += dqmin[b];
  }
}

static int ens_same_shape(const nn_ens *a, const nn_ens *b) {
  return a->E == b->E && a->n_params == b->n_params && nn_mlp_same_shape(&a->head[0], &b->head[0]);
}

void nn_ens_zero_grad(nn_ens *ens) {
  IB_CHECK(ens && ens->grads);
  nn_arena_zero(ens->grads, ens->n_params);
}

void nn_ens_copy_params(nn_ens *dst, const nn_ens *src) {
  IB_CHECK(dst && src && ens_same_shape(dst, src));
  memcpy(dst->params, src->params, dst->n_params * sizeof(float));
}

void nn_ens_polyak(nn_ens *target, const nn_ens *online, float tau) {
  IB_CHECK(target && online && ens_same_shape(target, online));
  nn_arena_polyak(target->params, online->params, target->n_params, tau);
}

void nn_ens_adam_step(nn_ens *ens, const nn_adam_cfg *cfg) {
  IB_CHECK(ens && ens->grads && cfg);
  ens->adam_t++;
  nn_adam_update(ens->params, ens->adam_m, ens->adam_v, ens->grads, ens->n_params, cfg, ens->adam_t);
}
