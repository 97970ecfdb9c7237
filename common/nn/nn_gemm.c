/* nn_gemm.c: the dispatch of ib_nn's matrix products and the process-wide precision setting
 * (nn_gemm.h, nn_set_matmul in nn.h).
 *
 * The setting is one atomic int: set once at start-up, read by every product (relaxed loads:
 * it carries no other data). nn_set_matmul asks amx_available() so a bf16 mode is refused up
 * front on a machine that cannot run it, never in the middle of a step. */
#include "nn_gemm.h"

#include <cblas.h>
#include <string.h>

#include "ib.h"
#include "nn.h"
#include "nn_amx.h"

static int g_matmul = NN_MATMUL_FP32;

const char *nn_matmul_name(nn_matmul m) {
  switch (m) {
  case NN_MATMUL_FP32: return "fp32";
  case NN_MATMUL_BF16X3: return "bf16x3";
  case NN_MATMUL_BF16: return "bf16";
  case NN_MATMUL_AUTO: return "auto";
  }
  return "?";
}

int nn_matmul_parse(nn_matmul *out, const char *s) {
  static const nn_matmul all[] = {NN_MATMUL_FP32, NN_MATMUL_BF16X3, NN_MATMUL_BF16, NN_MATMUL_AUTO};
  for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
    if (strcmp(s, nn_matmul_name(all[i])) == 0) {
      *out = all[i];
      return IB_OK;
    }
  return ib_fail(IB_EINVAL,
                 "unknown matmul precision '%s' (HINT: one of fp32 (OpenBLAS sgemm), bf16x3 (AMX, ~1e-5 "
                 "relative), bf16 (AMX, ~1e-3 relative), auto (bf16x3 with AMX, else fp32))",
                 s ? s : "(null)");
}

nn_matmul nn_matmul_resolve(nn_matmul m) {
  if (m != NN_MATMUL_AUTO) return m;
  return amx_available() ? NN_MATMUL_BF16X3 : NN_MATMUL_FP32;
}

int nn_set_matmul(nn_matmul m) {
  if (m != NN_MATMUL_FP32 && m != NN_MATMUL_BF16X3 && m != NN_MATMUL_BF16 && m != NN_MATMUL_AUTO)
    return ib_fail(IB_EINVAL,
                   "matmul precision %d is not an nn_matmul (HINT: NN_MATMUL_FP32, _BF16X3, _BF16 or _AUTO)", (int)m);
  m = nn_matmul_resolve(m);
  if (m != NN_MATMUL_FP32 && !amx_available())
    return ib_fail(IB_EUNAVAIL,
                   "matmul precision %s needs AMX-BF16 (CPU flags amx_tile, amx_bf16, avx512_bf16 and Linux >= "
                   "5.16 granting the tile state), which this machine or build lacks (HINT: --matmul fp32)",
                   nn_matmul_name(m));
  __atomic_store_n(&g_matmul, (int)m, __ATOMIC_RELAXED);
  return IB_OK;
}

nn_matmul nn_get_matmul(void) { return (nn_matmul)__atomic_load_n(&g_matmul, __ATOMIC_RELAXED); }

int nn_gemm_uses_amx(int M, int N, int K) {
  (void)M; /* the rule never reads M (nn_gemm.h) */
  return nn_get_matmul() != NN_MATMUL_FP32 && N >= NN_GEMM_AMX_MIN_N && K >= NN_GEMM_AMX_MIN_K;
}

void nn_gemm(float *C, const float *A, const float *B, float beta, int ta, int tb, int M, int N, int K, int lda,
             int ldb, int ldc) {
  IB_CHECK(M >= 0 && N >= 0 && K >= 0);
  IB_CHECK(ta == NN_GEMM_N || ta == NN_GEMM_T);
  IB_CHECK(tb == NN_GEMM_N || tb == NN_GEMM_T);
  IB_CHECK(beta == 0.0f || beta == 1.0f);
  if (M == 0 || N == 0) return;
  if (K == 0) { /* C = beta·C; cblas would scale by 0 and keep NaN */
    IB_CHECK(C && ldc >= N);
    if (beta == 0.0f)
      for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, sizeof(float) * (size_t)N);
    return;
  }
  if (nn_gemm_uses_amx(M, N, K)) {
    amx_gemm(C, A, B, beta, ta, tb, M, N, K, lda, ldb, ldc,
             nn_get_matmul() == NN_MATMUL_BF16 ? AMX_BF16 : AMX_BF16X3);
    return;
  }
  IB_CHECK(C && A && B);
  cblas_sgemm(CblasRowMajor, ta == NN_GEMM_T ? CblasTrans : CblasNoTrans, tb == NN_GEMM_T ? CblasTrans : CblasNoTrans,
              M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}
