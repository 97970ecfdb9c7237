/* nn_amx.h: a bf16 matrix product on Intel AMX tiles (AMX-BF16), for ib_nn's nn_gemm.
 *
 * Why. One IBRL learning step is mostly fp32 sgemm on a few shapes (256..512 rows × 1024 ×
 * 1024), and OpenBLAS already runs those near the fp32 FMA peak of a core. AMX-BF16 multiplies
 * bf16 16×32 by 32×16 tiles into fp32 16×16 accumulators at about 10x that rate, so a product
 * with bf16 inputs (or three of them, for near-fp32 accuracy) is cheaper than one sgemm.
 *
 * Contract. amx_gemm(C, A, B, beta, ta, tb, M, N, K, lda, ldb, ldc, mode) computes, row-major,
 *     C (M,N) = op(A) (M,K) · op(B) (K,N) + beta · C
 * with the argument meaning of cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1, A, lda, B, ldb,
 * beta, C, ldc): op(A) is A stored (M,K) (ta AMX_N) or Aᵀ with A stored (K,M) (ta AMX_T); op(B)
 * is B stored (K,N) (tb AMX_N) or Bᵀ with B stored (N,K) (tb AMX_T). alpha is always 1, beta is
 * 0 or 1 (beta 0: C is written, never read, so it may hold NaN). Any M, N, K >= 0: M or N 0 does
 * nothing; K 0 gives C = beta·C. Edges are zero-padded in packing and stored through a scratch
 * tile, so nothing outside the operands and the M×N window of C is read or written.
 *
 * Modes (both accumulate in fp32 inside the tiles):
 *   AMX_BF16   each input is rounded to bf16 (round to nearest even, bit for bit as torch's
 *              .to(torch.bfloat16)), products (exact in fp32) summed in fp32: relative error up
 *              to 2^-8 per input, so <= ~2^-7 (7.8e-3) of Σ|a||b| (measured 9.5e-4 at K 64).
 *   AMX_BF16X3 each input x = hi + lo with hi = bf16(x), lo = bf16(x - hi), and
 *              C = Ahi·Bhi + Ahi·Blo + Alo·Bhi (the lo·lo term, <= 2^-16 relative, is dropped;
 *              each lo is itself rounded, <= 2^-16 of |x|): at most 3·2^-16 ~ 4.6e-5 of Σ|a||b|
 *              plus fp32 summation. Measured (tests/nn/test_nn_amx.c, inputs U(-1,1)): largest
 *              |c - exact| / Σ|a||b| 1.8e-5 on the edge sizes (K = 1..257, where one product
 *              can show its whole error) and 2.8e-6 on the learner's shapes (K 256..1024).
 *              This is the scheme of oneDNN's "bf16x3" fp32 math mode.
 * bf16 conversion and the tile products treat denormal inputs as zero and flush denormal
 * results (hardware behaviour of VCVTNE2PS2BF16 and TDPBF16PS); an infinite input gives NaN in
 * AMX_BF16X3 (its lo part is inf - inf). Results do not depend on M or on the other rows of the
 * call: a caller may split rows between threads and get the same bits.
 *
 * Availability. amx_available() is 1 when the CPU has AMX-TILE, AMX-BF16, AVX512-BF16,
 * AVX512F/BW and Linux granted this process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM,
 * asked once, thread-safe; nn_amx_probe.c, built for the baseline CPU). Calling amx_gemm when it is 0 is a bug (IB_CHECK). A build whose
 * compiler lacks the AMX flags compiles a stub whose amx_available() is 0.
 *
 * Errors. A violated contract (NULL operand of a non-empty product, negative size, too small
 * leading dimension, beta not 0/1, bad ta/tb/mode) aborts through IB_CHECK; the product itself
 * cannot fail.
 *
 * Threads and memory. Reentrant: any number of threads may call at once. Each calling thread
 * owns packing buffers (64-byte aligned, grown to the largest call it has made, freed when the
 * thread exits) and loads the tile configuration once per call; a call allocates only when it
 * is larger than any before on its thread. */
#ifndef IB_NN_AMX_H
#define IB_NN_AMX_H

enum { AMX_N = 0, AMX_T = 1 }; /* op(X) = X or Xᵀ (same values as NN_GEMM_N/T) */

typedef enum amx_mode { AMX_BF16 = 0, AMX_BF16X3 = 1 } amx_mode;

/* 1 if this process can use AMX-BF16 (see above), else 0. Computed once. */
int amx_available(void);

/* C (M,N) = op(A) · op(B) + beta · C in `mode`; see the contract above. */
void amx_gemm(float *C, const float *A, const float *B, float beta, int ta, int tb, int M, int N, int K, int lda,
              int ldb, int ldc, amx_mode mode);

#endif /* IB_NN_AMX_H */
