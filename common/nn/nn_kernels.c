/* nn_kernels.c: the stateless layer kernels, Adam and the arena helpers of nn.h.
 *
 * Design. Each kernel is a plain function over row-major arrays, written to be read next to
 * the PyTorch doc it mirrors. Matrix products go through nn_gemm (nn_gemm.h: cblas_sgemm, or
 * AMX bf16 tiles after nn_set_matmul) with the three layouts of docs/style.md 2.5 (forward NT
 * with beta 0, dX NN and dW TN with beta 1, so backward accumulates). Elementwise loops are
 * simple enough for the compiler to vectorise; reductions that feed a normalisation (LayerNorm
 * mean/variance, norms) are accumulated in double so the result does not depend on the row
 * width. These kernels are the reference the fused MLP path (nn_mlp.c) is tested against;
 * they favour clarity over the last percent of speed. */
#include <cblas.h> /* openblas_set_num_threads, openblas_get_corename */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ib.h"
#include "nn.h"
#include "nn_gemm.h"
#include "nn_par.h"

/* ---- Linear (https://pytorch.org/docs/stable/generated/torch.nn.Linear.html) ---- */

void nn_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                       int B, int C, int OC) {
  IB_CHECK(out && inp && weight && B > 0 && C > 0 && OC > 0);
  /* out (B,OC) = inp (B,C) · weightᵀ (C,OC) */
  nn_gemm(out, inp, weight, 0.0f, NN_GEMM_N, NN_GEMM_T, B, OC, C, C, C, OC);
  if (bias)
    for (int b = 0; b < B; b++) {
      float *o = out + (size_t)b * OC;
      for (int j = 0; j < OC; j++) o[j] += bias[j];
    }
}

void nn_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int B, int C, int OC) {
  IB_CHECK(dout && B > 0 && C > 0 && OC > 0);
  if (dinp) { /* dinp (B,C) += dout (B,OC) · weight (OC,C) */
    IB_CHECK(weight);
    nn_gemm(dinp, dout, weight, 1.0f, NN_GEMM_N, NN_GEMM_N, B, C, OC, OC, C, C);
  }
  if (dweight) { /* dweight (OC,C) += doutᵀ (OC,B) · inp (B,C) */
    IB_CHECK(inp);
    nn_gemm(dweight, dout, inp, 1.0f, NN_GEMM_T, NN_GEMM_N, OC, C, B, OC, C, C);
  }
  if (dbias)
    for (int b = 0; b < B; b++) {
      const float *d = dout + (size_t)b * OC;
      for (int j = 0; j < OC; j++) dbias[j] += d[j];
    }
}

/* ---- LayerNorm (https://pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html) ---- */

void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *weight, const float *bias, int B, int C) {
  IB_CHECK(out && mean && rstd && inp && weight && bias && B > 0 && C > 0);
  for (int b = 0; b < B; b++) {
    const float *x = inp + (size_t)b * C;
    float *o = out + (size_t)b * C;
    /* Two passes (mean, then the centred second moment) avoid the cancellation of E[x²]-E[x]². */
    double s = 0.0;
    for (int i = 0; i < C; i++) s += x[i];
    double m = s / C;
    double ss = 0.0;
    for (int i = 0; i < C; i++) ss += (x[i] - m) * (x[i] - m);
    float r = (float)(1.0 / sqrt(ss / C + (double)NN_LN_EPS));
    float mf = (float)m;
    for (int i = 0; i < C; i++) o[i] = (x[i] - mf) * r * weight[i] + bias[i];
    mean[b] = mf;
    rstd[b] = r;
  }
}

void nn_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *mean, const float *rstd,
                           const float *weight, int B, int C) {
  IB_CHECK(dout && inp && mean && rstd && weight && B > 0 && C > 0);
  for (int b = 0; b < B; b++) {
    const float *x = inp + (size_t)b * C, *dy = dout + (size_t)b * C;
    float m = mean[b], r = rstd[b];
    /* With xhat = (x-m)·r and g = dy·weight:
     *   dx = r · (g - mean(g) - xhat·mean(g·xhat)). */
    double sg = 0.0, sgx = 0.0;
    for (int i = 0; i < C; i++) {
      float xh = (x[i] - m) * r;
      float g = dy[i] * weight[i];
      sg += g;
      sgx += (double)g * xh;
    }
    float mg = (float)(sg / C), mgx = (float)(sgx / C);
    for (int i = 0; i < C; i++) {
      float xh = (x[i] - m) * r;
      if (dweight) dweight[i] += dy[i] * xh;
      if (dbias) dbias[i] += dy[i];
      if (dinp) dinp[(size_t)b * C + i] += r * (dy[i] * weight[i] - mg - xh * mgx);
    }
  }
}

/* ---- activations ---- */

void nn_relu_forward(float *out, const float *inp, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
  for (size_t i = 0; i < n; i++) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void nn_tanh_forward(float *out, const float *inp, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

void nn_tanh_backward(float *dinp, const float *dout, const float *out, size_t n) {
  for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}

/* ---- dropout (https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html) ---- */

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* The float with these bits (0 or keep). */
static inline float mask_value(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

void nn_dropout_mask(float *mask, size_t n, float p, rng *r) {
  IB_CHECK(mask && r && p >= 0.0f && p < 1.0f);
  float keep = 1.0f / (1.0f - p);
  /* Two 24-bit uniforms per 64-bit draw: the mask is the hot part of a dropout forward
   * (B·width draws per layer), and 24 bits resolve p as finely as a float uniform does. The
   * xoshiro256** step of rng_u64 runs here on a local copy of the state (written back at the
   * end): the same draws, but the state stays in registers instead of going through memory and
   * a call per draw (measured 7.5 ns a mask element before, the serial part of a dropout
   * forward that no thread team can split). */
  /* u24 · 2^-24 < p  <=>  u24 < p · 2^24  <=>  u24 < ceil(p · 2^24) for an integer u24 (u24 · 2^-24
   * and p · 2^24 are exact), so the comparison runs on integers: the same mask, without the
   * 64-bit-unsigned-to-float conversions that dominated the loop on baseline x86-64. */
  const uint32_t thr = (uint32_t)ceil((double)p * 16777216.0);
  /* Branch-free select on the float's bits: with p = 0.5 a branch mispredicts half the time. */
  uint32_t keep_bits;
  memcpy(&keep_bits, &keep, sizeof keep_bits);
  uint64_t s0 = r->s[0], s1 = r->s[1], s2 = r->s[2], s3 = r->s[3];
#define NN_XOSHIRO_NEXT(out)         \
  do {                               \
    (out) = rotl64(s1 * 5, 7) * 9;   \
    uint64_t t_ = s1 << 17;          \
    s2 ^= s0;                        \
    s3 ^= s1;                        \
    s1 ^= s2;                        \
    s0 ^= s3;                        \
    s2 ^= t_;                        \
    s3 = rotl64(s3, 45);             \
  } while (0)
  size_t i = 0;
  for (; i + 1 < n; i += 2) {
    uint64_t u;
    NN_XOSHIRO_NEXT(u);
    mask[i] = mask_value(keep_bits & -(uint32_t)((uint32_t)(u >> 40) >= thr));
    mask[i + 1] = mask_value(keep_bits & -(uint32_t)((uint32_t)((u >> 8) & 0xffffffu) >= thr));
  }
  if (i < n) {
    uint64_t u;
    NN_XOSHIRO_NEXT(u);
    mask[i] = mask_value(keep_bits & -(uint32_t)((uint32_t)(u >> 40) >= thr));
  }
#undef NN_XOSHIRO_NEXT
  r->s[0] = s0, r->s[1] = s1, r->s[2] = s2, r->s[3] = s3;
}

void nn_dropout_forward(float *out, const float *inp, const float *mask, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = inp[i] * mask[i];
}

void nn_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n) {
  for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

/* ---- Adam (https://pytorch.org/docs/stable/generated/torch.optim.Adam.html) ---- */

nn_adam_cfg nn_adam_defaults(float lr) {
  nn_adam_cfg c = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
  return c;
}

/* Arena passes (Adam, Polyak, scale, zero, norm) are memory bound: above NN_PAR_MIN_FLOATS
 * each team member streams its own contiguous part (cut on 16-float boundaries, 64 bytes), so
 * the element-wise results do not depend on the team size. */
#define NN_PAR_MIN_FLOATS ((size_t)1 << 16)

/* AVX-512 clones of the arena loops next to the baseline (as nn_mlp.c's row passes): the double
 * lanes of the norm and Adam's divide and square root are compute-bound without them. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NN_NO_CLONES)
#define NN_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define NN_CLONES
#endif

typedef struct arena_job {
  float *p, *m, *v, *t;
  const float *g;
  size_t n;
  const nn_adam_cfg *cfg;
  long step;
  float s;
  double part[NN_PAR_MAX];
} arena_job;

static void arena_part(size_t *lo, size_t *hi, const arena_job *j, const nn_team *tm) {
  nn_par_range(lo, hi, j->n, tm->tid, tm->nt, 16);
}

/* Runs fn over the job's arena on the team, or on the caller alone below NN_PAR_MIN_FLOATS. */
static void arena_run(nn_par_fn fn, arena_job *j) {
  if (j->n < NN_PAR_MIN_FLOATS) {
    nn_team solo = {0, 1};
    fn(j, &solo);
  } else {
    nn_par_run(fn, j);
  }
}

NN_CLONES static void adam_range(float *params, float *m, float *v, const float *grads, size_t lo, size_t hi,
                       const nn_adam_cfg *cfg, long t) {
  /* torch computes the bias corrections in double-precision Python floats; so do we, once. */
  double bc1 = 1.0 - pow((double)cfg->beta1, (double)t);
  double bc2 = 1.0 - pow((double)cfg->beta2, (double)t);
  const float step = (float)(cfg->lr / bc1);
  const float bc2s = (float)sqrt(bc2);
  const float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps, wd = cfg->weight_decay;
  const float c1 = 1.0f - b1, c2 = 1.0f - b2;
  /* One pass over the four arrays: they are streamed once, which is what bounds this loop.
   * denom = sqrt(v)/sqrt(bc2) + eps is torch's _single_tensor_adam order (eps after the sqrt of
   * the bias-corrected v). */
  for (size_t i = lo; i < hi; i++) {
    float g = grads[i] + wd * params[i];
    float mi = b1 * m[i] + c1 * g;
    float vi = b2 * v[i] + c2 * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] -= step * mi / (sqrtf(vi) / bc2s + eps);
  }
}

static void adam_task(void *ctx, const nn_team *tm) {
  const arena_job *j = ctx;
  size_t lo, hi;
  arena_part(&lo, &hi, j, tm);
  adam_range(j->p, j->m, j->v, j->g, lo, hi, j->cfg, j->step);
}

void nn_adam_update(float *params, float *m, float *v, const float *grads, size_t n,
                    const nn_adam_cfg *cfg, long t) {
  IB_CHECK(params && m && v && grads && cfg && t >= 1);
  arena_job j = {.p = params, .m = m, .v = v, .g = grads, .n = n, .cfg = cfg, .step = t};
  arena_run(adam_task, &j);
}

/* ---- arena helpers ---- */

NN_CLONES static void polyak_task(void *ctx, const nn_team *tm) {
  const arena_job *j = ctx;
  size_t lo, hi;
  arena_part(&lo, &hi, j, tm);
  /* torch's lerp form t + tau·(o - t) equals (1-tau)·t + tau·o in exact arithmetic. */
  const float tau = j->s;
  for (size_t i = lo; i < hi; i++) j->t[i] += tau * (j->g[i] - j->t[i]);
}

void nn_arena_polyak(float *target, const float *online, size_t n, float tau) {
  IB_CHECK(target && online && tau >= 0.0f && tau <= 1.0f);
  arena_job j = {.t = target, .g = online, .n = n, .s = tau};
  arena_run(polyak_task, &j);
}

/* Sum of squares in NN_NORM_LANES independent double lanes (a single running double sum is one
 * dependency chain, ~4 cycles an element; lanes vectorise and keep double accuracy). */
#define NN_NORM_LANES 8
NN_CLONES static double sumsq_range(const float *x, size_t lo, size_t hi) {
  double a[NN_NORM_LANES] = {0};
  size_t i = lo;
  for (; i + NN_NORM_LANES <= hi; i += NN_NORM_LANES)
    for (int l = 0; l < NN_NORM_LANES; l++) a[l] += (double)x[i + l] * x[i + l];
  double s = 0.0;
  for (; i < hi; i++) s += (double)x[i] * x[i];
  for (int l = 0; l < NN_NORM_LANES; l++) s += a[l];
  return s;
}

static void norm_task(void *ctx, const nn_team *tm) {
  arena_job *j = ctx;
  size_t lo, hi;
  arena_part(&lo, &hi, j, tm);
  j->part[tm->tid] = sumsq_range(j->t, lo, hi);
}

double nn_arena_norm(const float *x, size_t n) {
  IB_CHECK(x || n == 0);
  if (n < NN_PAR_MIN_FLOATS) return sqrt(sumsq_range(x, 0, n));
  arena_job j = {.t = (float *)x, .n = n};
  for (int t = 0; t < NN_PAR_MAX; t++) j.part[t] = 0.0;
  nn_par_run(norm_task, &j);
  double s = 0.0; /* member order: the same sum for the same team size */
  for (int t = 0; t < NN_PAR_MAX; t++) s += j.part[t];
  return sqrt(s);
}

static void scale_task(void *ctx, const nn_team *tm) {
  const arena_job *j = ctx;
  size_t lo, hi;
  arena_part(&lo, &hi, j, tm);
  for (size_t i = lo; i < hi; i++) j->t[i] *= j->s;
}

void nn_arena_scale(float *x, size_t n, float s) {
  arena_job j = {.t = x, .n = n, .s = s};
  arena_run(scale_task, &j);
}

static void zero_task(void *ctx, const nn_team *tm) {
  const arena_job *j = ctx;
  size_t lo, hi;
  arena_part(&lo, &hi, j, tm);
  if (hi > lo) memset(j->t + lo, 0, (hi - lo) * sizeof(float));
}

void nn_arena_zero(float *x, size_t n) {
  IB_CHECK(x || n == 0);
  arena_job j = {.t = x, .n = n};
  arena_run(zero_task, &j);
}

void nn_set_threads(int n) {
  IB_CHECK(n >= 1);
  /* ib_nn splits its work over its own team (nn_par.h) and calls the single-threaded sgemm from
   * each member: OpenBLAS threads would only spin on the cores the team needs. */
  openblas_set_num_threads(1);
  nn_par_set(n > NN_PAR_MAX ? NN_PAR_MAX : n);
}

int nn_threads(void) { return nn_par_size(); }

const char *nn_blas_core(void) {
  const char *c = openblas_get_corename();
  return c ? c : "unknown";
}

/* 1 if the kernel name is one of the listed ones (case-insensitive). */
static int core_is(const char *core, const char *const *names, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcasecmp(core, names[i])) return 1;
  return 0;
}

int nn_blas_check(void) {
#if defined(__x86_64__) || defined(__i386__)
  static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  static const char *const avx2[] = {"SkylakeX", "Cooperlake", "SapphireRapids", "Haswell", "Zen"};
  const char *core = nn_blas_core();
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && !core_is(core, avx512, IB_ARRAY_LEN(avx512)))
    return ib_fail(IB_ESTATE, "OpenBLAS uses the '%s' kernel on a CPU with AVX-512 (HINT: export "
                   "OPENBLAS_CORETYPE=SkylakeX before starting the process)", core);
  if (__builtin_cpu_supports("avx2") && !core_is(core, avx2, IB_ARRAY_LEN(avx2)))
    return ib_fail(IB_ESTATE, "OpenBLAS uses the '%s' kernel on a CPU with AVX2 (HINT: export "
                   "OPENBLAS_CORETYPE=Haswell before starting the process)", core);
#endif
  return IB_OK;
}

void nn_blas_autoselect(char **argv) {
#if defined(__x86_64__) || defined(__i386__)
  if (getenv("OPENBLAS_CORETYPE") || getenv("IB_BLAS_REEXEC")) return;
  if (nn_blas_check() == IB_OK) return;
  __builtin_cpu_init();
  const char *core = __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell";
  /* The variable is read when libopenblas loads, so it only takes effect in a new image. The
   * guard variable stops a loop if the new image still reports a fallback kernel. */
  setenv("OPENBLAS_CORETYPE", core, 1);
  setenv("IB_BLAS_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  fprintf(stderr, "ibrl: could not re-execute with OPENBLAS_CORETYPE=%s (%s); continuing with the "
          "slower '%s' kernel (HINT: export OPENBLAS_CORETYPE=%s)\n", core, strerror(errno),
          nn_blas_core(), core);
#else
  (void)argv;
#endif
}
