/* nn_gemm.h: the one matrix product every ib_nn layer goes through (fp32 OpenBLAS, or the AMX
 * bf16 kernels of nn_amx.h, chosen process-wide by nn_set_matmul in nn.h).
 *
 * Contract. nn_gemm(C, A, B, beta, ta, tb, M, N, K, lda, ldb, ldc) computes, row-major,
 *     C (M,N) = op(A) (M,K) · op(B) (K,N) + beta · C
 * with the meaning of cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C,
 * ldc): op(A) is A stored (M,K) (ta NN_GEMM_N) or Aᵀ with A stored (K,M) (NN_GEMM_T); op(B) is B
 * stored (K,N) or Bᵀ with B stored (N,K). alpha is 1; beta is 0 (C written, never read) or 1.
 * M, N, K >= 0 (M or N 0: nothing; K 0: C = beta·C). A violated contract aborts (IB_CHECK);
 * the product cannot fail.
 *
 * Which path. NN_MATMUL_FP32 (the default): always cblas_sgemm. NN_MATMUL_BF16X3 / _BF16:
 * amx_gemm in that mode when N >= NN_GEMM_AMX_MIN_N and K >= NN_GEMM_AMX_MIN_K, else
 * cblas_sgemm (fp32: more accurate, and as fast or faster there). The rule reads N and K only,
 * never M, so splitting rows between threads never changes the path, and amx_gemm's rows do not
 * depend on M: a row split gives the same bits as one call.
 * Rule decided by `ibrl-bench gemm` (1 thread, bf16x3 time / cblas time in the same run, 256
 * rows unless said; ranges over 3-4 runs on the shared 2-vCPU VM, whose speed changes by up
 * to 2x from minute to minute): N = 1 7.7-10x, N = 2 6.5-8.2x, N = 4 0.68-1.23x (unclear: left
 * to cblas), N = 7 0.52-0.61x, N = 16 0.70-0.85x, N = 32 0.62-0.74x, N = 64 0.50-0.72x, N = 76
 * 0.65-0.75x (dX of the 76-wide input), N = 1024 0.33-0.71x; K = 7 0.75-1.11x (unclear: left to
 * cblas), K = 16 0.63-0.80x, K = 32 0.43-0.61x, K = 69/76 0.44-0.77x. Small M costs AMX more
 * (every call packs all of op(B) however few rows use it: M = 1 0.86-1.20x, M = 7 0.65-1.16x,
 * M = 8 0.74-1.09x, M = 32 0.58-0.88x) but stays out of the rule for the reason above; those
 * shapes (acting on one observation) are a tiny share of the learner's work.
 *
 * Threads. Reentrant (amx_gemm keeps per-thread buffers; OpenBLAS runs with the thread count the
 * process set, 1 in ib_nn). */
#ifndef IB_NN_GEMM_H
#define IB_NN_GEMM_H

enum { NN_GEMM_N = 0, NN_GEMM_T = 1 }; /* op(X) = X or Xᵀ */

/* Narrowest N and shortest K that go to AMX in the bf16 modes (figures above). */
#define NN_GEMM_AMX_MIN_N 7
#define NN_GEMM_AMX_MIN_K 16

/* C (M,N) = op(A) · op(B) + beta · C, row-major; see the contract above. */
void nn_gemm(float *C, const float *A, const float *B, float beta, int ta, int tb, int M, int N, int K, int lda,
             int ldb, int ldc);

/* 1 if nn_gemm takes the AMX path for this shape under the current nn_get_matmul(), else 0. */
int nn_gemm_uses_amx(int M, int N, int K);

#endif /* IB_NN_GEMM_H */
