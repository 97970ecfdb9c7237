/* nn_amx.c: bf16 / bf16x3 matrix product on AMX tiles (nn_amx.h).
 *
 * Design. Operands are packed per call into the tile layouts (weights change after every Adam
 * step, so nothing is cached between calls): op(A) whole, op(B) NCB columns at a time:
 *   Ap: for each 16-row tile of op(A), for each 32-wide k block, P tiles of 16 lines × 32 bf16
 *       (line m = the 32 k of row m), P = 1 (bf16) or 2 (hi then lo, bf16x3);
 *   Bp: for each 16-column tile of op(B), for each 32-wide k block, P tiles in the "VNNI" layout
 *       TDPBF16PS wants (line r = 16 pairs (k 2r, k 2r+1) of the 16 columns).
 * Rows, columns and k beyond the matrix are packed as zeros, so the kernel never sees an edge
 * except when it stores C. Packing converts with VCVTNE2PS2BF16 (two fp32 vectors to 32 bf16,
 * round to nearest even); layouts whose source runs the wrong way (A stored (K,M), B stored
 * (N,K)) go through one 16×16 dword transpose per block, since a bf16 pair is one dword.
 * For bf16x3 the lo part is bf16(x - float(bf16(x))), computed in the same pass.
 *
 * Kernel: a 32×32 block of C in four accumulator tiles (tmm0..3), two A tiles (tmm4,5), two B
 * tiles (tmm6,7): per k block 4 loads and 4 TDPBF16PS in bf16 mode; in bf16x3 mode 6 loads and
 * 12 products (A hi·B lo, then A hi·B hi, then A lo·B hi: B hi overwrites B lo, A lo overwrites
 * A hi, so no tile is loaded twice). The accumulators start from C itself (tile load with row
 * stride ldc) when beta is 1, from zero when beta is 0, and are stored straight into C; a tile
 * that sticks out of C goes through a 16×16 scratch, copied with the valid rows and columns.
 * Loop nest: for each block of NCB columns, pack it (K·NCB bf16, ×2 in bf16x3: 512 KB at K
 * 1024), then run every 32-row block of Ap over it, so the Bp block stays in L2 (2 MB) next to
 * Ap (1 MB at 256 rows, bf16x3). The tile configuration (all eight tiles 16 × 64 bytes) is
 * loaded at the start of each call and released at its end, so a thread holds no tile state
 * between calls and nothing can leave it configured differently. Measured against a
 * per-thread "configured once, never released" flag (ibrl-bench gemm, best of 9, the shapes
 * where a call is shortest: 1..32 rows × 1024 × 1024, 256 × 7 × 1024, 256 × 16 × 1024): no
 * difference above the run-to-run spread (e.g. 256 × 7: once 0.49-0.82x cblas, per call
 * 0.61-0.68x).
 *
 * Numerics: a C element is fp32 sums of k blocks in increasing order, independent of M and of
 * the other rows. The whole file is compiled with the AMX and AVX-512 flags (the compiler may
 * use those instructions anywhere in it), so nothing here may run before amx_available() has
 * said yes; that check lives in nn_amx_probe.c, compiled for the baseline CPU. */
#include "nn_amx.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

static void args_check(const float *C, const float *A, const float *B, float beta, int ta, int tb, int M, int N,
                       int K, int lda, int ldb, int ldc, amx_mode mode) {
  IB_CHECK(M >= 0 && N >= 0 && K >= 0);
  IB_CHECK(ta == AMX_N || ta == AMX_T);
  IB_CHECK(tb == AMX_N || tb == AMX_T);
  IB_CHECK(beta == 0.0f || beta == 1.0f);
  IB_CHECK(mode == AMX_BF16 || mode == AMX_BF16X3);
  if (M == 0 || N == 0) return;
  IB_CHECK(C && ldc >= N);
  if (K == 0) return;
  IB_CHECK(A && lda >= (ta == AMX_N ? K : M));
  IB_CHECK(B && ldb >= (tb == AMX_N ? N : K));
}

#ifndef IB_AMX /* ---- the compiler cannot build AMX code: a stub ---- */

void amx_gemm(float *C, const float *A, const float *B, float beta, int ta, int tb, int M, int N, int K, int lda,
              int ldb, int ldc, amx_mode mode) {
  args_check(C, A, B, beta, ta, tb, M, N, K, lda, ldb, ldc, mode);
  IB_CHECK(!"amx_gemm called in a build without AMX (check amx_available())");
}

#else /* ---- AMX ---- */

#include <immintrin.h>
#include <pthread.h>

enum {
  TR = 16,        /* rows of a tile (C rows / A rows / B k pairs) */
  TK = 32,        /* bf16 per tile line: the k of one block */
  TILE = TR * TK, /* bf16 per packed tile (1 KB) */
  NCB = 128,      /* columns of op(B) packed and used per block: K 1024 in bf16x3 is 512 KB,
                     which stays in L2 (2 MB) next to Ap of 256 rows (1 MB). Measured
                     (ibrl-bench gemm, 256x1024x1024 NT, best of 7-9): 64 0.50-0.53x cblas,
                     96 and 128 0.34-0.39x, 256 0.47-0.67x, all of N at once 0.62-0.67x */
  KCB = 64,       /* k blocks (of 32) per pass over C: 64, i.e. K <= 2048 in one pass. Measured
                     (ibrl-bench gemm, 256x1024x1024, best of 7, NCB 128, same runs): 8 k
                     blocks per pass (32 rows of Ap in L1) 0.40-0.43x cblas, one pass
                     0.33-0.37x */
};

/* ---- per-thread packing buffer ---- */

static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static _Thread_local uint16_t *tl_buf;
static _Thread_local size_t tl_cap; /* bytes */

static void buf_key_make(void) { IB_CHECK(pthread_key_create(&buf_key, free) == 0); }

/* The calling thread's buffer of at least `bytes`, 64-byte aligned. Grows in 1 MB steps so a
 * thread settles after its first few calls; the key's destructor frees it at thread exit. */
static uint16_t *buf_get(size_t bytes) {
  if (bytes > tl_cap) {
    IB_CHECK(pthread_once(&buf_once, buf_key_make) == 0);
    free(tl_buf);
    tl_cap = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    tl_buf = ib_xaligned(tl_cap);
    IB_CHECK(pthread_setspecific(buf_key, tl_buf) == 0);
  }
  return tl_buf;
}

/* ---- packing ---- */

static inline __mmask16 mask16(int n) { /* the first n lanes, n clamped to 0..16 */
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* 32 bf16 of x0 (elements 0..15) and x1 (16..31), rounded to nearest even. */
static inline __m512i cvt32(__m512 x0, __m512 x1) { return (__m512i)_mm512_cvtne2ps_pbh(x1, x0); }

/* 16 bf16 (one half of a cvt32 result) back to fp32: exact, a bf16 is the top of an fp32. */
static inline __m512 bf16_to_ps(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* cvt32(x0, x1) as the hi part, and in *lo the bf16 of what rounding lost (x - float(hi), exact
 * in fp32): the split of bf16x3. */
static inline __m512i cvt32_split(__m512i *lo, __m512 x0, __m512 x1) {
  const __m512i hi = cvt32(x0, x1);
  const __m512 r0 = _mm512_sub_ps(x0, bf16_to_ps(_mm512_castsi512_si256(hi)));
  const __m512 r1 = _mm512_sub_ps(x1, bf16_to_ps(_mm512_extracti64x4_epi64(hi, 1)));
  *lo = cvt32(r0, r1);
  return hi;
}

/* Transposes r[0..16) as a 16×16 matrix of dwords (lane j of r[i] becomes lane i of r[j]). */
static inline __attribute__((always_inline)) void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xDD);
  }
}

/* Packs X into P tiles per (16-wide tile, 32-wide k block), see the design above.
 * kc_rows: X is stored with k contiguous (A with ta N, B with tb T): block line i is stored row
 *   i of the tile, 32 k; otherwise X is stored with the tile's 16 indices contiguous and k along
 *   rows (A with ta T, B with tb N): block line r interleaves stored rows 2r and 2r+1.
 * transpose: the tile wants the other orientation (A from pairs, B from k-contiguous rows).
 * n: rows of op(A) or columns of op(B); K: the product's K. */
static void pack(uint16_t *restrict dst, const float *X, size_t ld, int kc_rows, int transpose, int n, int K,
                 int P) {
  const int kbn = (K + TK - 1) / TK;
  /* interleave lanes 0..15 (first row) with 16..31 (second row) as bf16 pairs */
  const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  /* Block order follows memory: k-contiguous sources walk k blocks along 16 rows (16 streams);
   * the others walk across their rows for one k block (32 streams), not down a column strip
   * (measured: the column-strip order left the loads waiting on memory). */
  const int ntl = (n + TR - 1) / TR;
  for (int q = 0; q < ntl * kbn; q++) {
    const int t = (kc_rows ? q / kbn : q % ntl) * TR, kb = kc_rows ? q % kbn : q / ntl;
    {
      const int nv = n - t < TR ? n - t : TR;
      const int k0 = kb * TK, kv = K - k0 < TK ? K - k0 : TK;
      __m512i hi[16], lo[16];
      if (kc_rows) {
        const float *src = X + (size_t)t * ld + k0;
        const __mmask16 m0 = mask16(kv), m1 = mask16(kv - 16);
        for (int i = 0; i < 16; i++) {
          __m512 x0 = _mm512_setzero_ps(), x1 = _mm512_setzero_ps();
          if (i < nv) {
            x0 = _mm512_maskz_loadu_ps(m0, src + (size_t)i * ld);
            x1 = _mm512_maskz_loadu_ps(m1, src + (size_t)i * ld + 16);
          }
          hi[i] = P == 2 ? cvt32_split(&lo[i], x0, x1) : cvt32(x0, x1);
        }
      } else {
        const float *src = X + (size_t)k0 * ld + t;
        const __mmask16 m = mask16(nv);
        for (int r = 0; r < 16; r++) {
          __m512 x0 = _mm512_setzero_ps(), x1 = _mm512_setzero_ps();
          if (2 * r < kv) x0 = _mm512_maskz_loadu_ps(m, src + (size_t)(2 * r) * ld);
          if (2 * r + 1 < kv) x1 = _mm512_maskz_loadu_ps(m, src + (size_t)(2 * r + 1) * ld);
          if (P == 2) {
            hi[r] = _mm512_permutexvar_epi16(ilv, cvt32_split(&lo[r], x0, x1));
            lo[r] = _mm512_permutexvar_epi16(ilv, lo[r]);
          } else {
            hi[r] = _mm512_permutexvar_epi16(ilv, cvt32(x0, x1));
          }
        }
      }
      if (transpose) {
        transpose16(hi);
        if (P == 2) transpose16(lo);
      }
      uint16_t *d = dst + ((size_t)(t / TR) * kbn + kb) * P * TILE;
      for (int i = 0; i < 16; i++) _mm512_store_si512(d + i * TK, hi[i]);
      if (P == 2)
        for (int i = 0; i < 16; i++) _mm512_store_si512(d + TILE + i * TK, lo[i]);
    }
  }
}

/* ---- kernel ---- */

typedef struct tilecfg {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tilecfg;

static void tiles_config(void) {
  tilecfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
  _tile_loadconfig(&cfg);
}

/* A C tile's valid part, and the scratch a partial tile goes through. */
typedef struct ctile {
  float *c;   /* top-left of the tile in C */
  int rows;   /* valid rows (<= 0: the tile is outside C) */
  int cols;   /* valid columns */
} ctile;

static inline void scratch_in(float *scr, const ctile *t, int ldc) {
  memset(scr, 0, sizeof(float) * 256);
  for (int i = 0; i < t->rows; i++) memcpy(scr + 16 * i, t->c + (size_t)i * ldc, sizeof(float) * (size_t)t->cols);
}

static inline void scratch_out(const float *scr, const ctile *t, int ldc) {
  for (int i = 0; i < t->rows; i++) memcpy(t->c + (size_t)i * ldc, scr + 16 * i, sizeof(float) * (size_t)t->cols);
}

/* Tile numbers are part of the instruction, so each C tile is its own macro expansion. */
#define C_IN(tmm, t)                                                     \
  do {                                                                   \
    if (!beta1) {                                                        \
      _tile_zero(tmm);                                                   \
    } else if ((t).rows == 16 && (t).cols == 16) {                       \
      _tile_loadd(tmm, (t).c, (size_t)ldc * sizeof(float));              \
    } else {                                                             \
      scratch_in(scr, &(t), ldc);                                        \
      _tile_loadd(tmm, scr, 64);                                         \
    }                                                                    \
  } while (0)
#define C_OUT(tmm, t)                                                    \
  do {                                                                   \
    if ((t).rows == 16 && (t).cols == 16) {                              \
      _tile_stored(tmm, (t).c, (size_t)ldc * sizeof(float));             \
    } else if ((t).rows > 0 && (t).cols > 0) {                           \
      _tile_stored(tmm, scr, 64);                                        \
      scratch_out(scr, &(t), ldc);                                       \
    }                                                                    \
  } while (0)

/* C[0:mv, 0:nv] (+)= A rows × B columns of one block, mt (1,2) row tiles × nt (1,2) column
 * tiles, over kbn k blocks of P packed tiles. a/b: the first row/column tile's packed blocks;
 * the second starts `str` bf16 later. */
static inline __attribute__((always_inline)) void kern(const int mt, const int nt, const int P, int kbn,
                                                         const uint16_t *a, const uint16_t *b, size_t str,
                                                         float *c, int ldc, int beta1, int mv, int nv,
                                                         float *scr) {
  ctile t00 = {c, mv < 16 ? mv : 16, nv < 16 ? nv : 16};
  ctile t01 = {c + 16, t00.rows, nv - 16};
  ctile t10 = {c + (size_t)16 * ldc, mv - 16, t00.cols};
  ctile t11 = {c + (size_t)16 * ldc + 16, mv - 16, nv - 16};
  C_IN(0, t00);
  if (nt > 1) C_IN(1, t01);
  if (mt > 1) C_IN(2, t10);
  if (mt > 1 && nt > 1) C_IN(3, t11);
  const size_t kstep = (size_t)P * TILE;
  for (int kb = 0; kb < kbn; kb++, a += kstep, b += kstep) {
    if (P == 1) {
      _tile_loadd(4, a, 64);
      if (mt > 1) _tile_loadd(5, a + str, 64);
      _tile_loadd(6, b, 64);
      if (nt > 1) _tile_loadd(7, b + str, 64);
    } else { /* A hi · B lo first */
      _tile_loadd(4, a, 64);
      if (mt > 1) _tile_loadd(5, a + str, 64);
      _tile_loadd(6, b + TILE, 64);
      if (nt > 1) _tile_loadd(7, b + str + TILE, 64);
    }
    _tile_dpbf16ps(0, 4, 6);
    if (nt > 1) _tile_dpbf16ps(1, 4, 7);
    if (mt > 1) _tile_dpbf16ps(2, 5, 6);
    if (mt > 1 && nt > 1) _tile_dpbf16ps(3, 5, 7);
    if (P == 2) {
      _tile_loadd(6, b, 64); /* A hi · B hi */
      if (nt > 1) _tile_loadd(7, b + str, 64);
      _tile_dpbf16ps(0, 4, 6);
      if (nt > 1) _tile_dpbf16ps(1, 4, 7);
      if (mt > 1) _tile_dpbf16ps(2, 5, 6);
      if (mt > 1 && nt > 1) _tile_dpbf16ps(3, 5, 7);
      _tile_loadd(4, a + TILE, 64); /* A lo · B hi */
      if (mt > 1) _tile_loadd(5, a + str + TILE, 64);
      _tile_dpbf16ps(0, 4, 6);
      if (nt > 1) _tile_dpbf16ps(1, 4, 7);
      if (mt > 1) _tile_dpbf16ps(2, 5, 6);
      if (mt > 1 && nt > 1) _tile_dpbf16ps(3, 5, 7);
    }
  }
  C_OUT(0, t00);
  if (nt > 1) C_OUT(1, t01);
  if (mt > 1) C_OUT(2, t10);
  if (mt > 1 && nt > 1) C_OUT(3, t11);
}

#define KERN_FN(name, MT, NT, P)                                                                              \
  static void name(int kbn, const uint16_t *a, const uint16_t *b, size_t str, float *c, int ldc, int beta1,   \
                   int mv, int nv, float *scr) {                                                              \
    kern(MT, NT, P, kbn, a, b, str, c, ldc, beta1, mv, nv, scr);                                              \
  }
KERN_FN(kern22_1, 2, 2, 1)
KERN_FN(kern21_1, 2, 1, 1)
KERN_FN(kern12_1, 1, 2, 1)
KERN_FN(kern11_1, 1, 1, 1)
KERN_FN(kern22_2, 2, 2, 2)
KERN_FN(kern21_2, 2, 1, 2)
KERN_FN(kern12_2, 1, 2, 2)
KERN_FN(kern11_2, 1, 1, 2)

typedef void (*kern_fn)(int, const uint16_t *, const uint16_t *, size_t, float *, int, int, int, int, float *);

/* ---- entry point ---- */

void amx_gemm(float *C, const float *A, const float *B, float beta, int ta, int tb, int M, int N, int K, int lda,
              int ldb, int ldc, amx_mode mode) {
  args_check(C, A, B, beta, ta, tb, M, N, K, lda, ldb, ldc, mode);
  IB_CHECK(amx_available());
  if (M == 0 || N == 0) return;
  if (K == 0) { /* C = beta·C: only beta 0 writes (C may hold NaN, so no scaling) */
    if (beta == 0.0f)
      for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, sizeof(float) * (size_t)N);
    return;
  }
  const int P = mode == AMX_BF16X3 ? 2 : 1;
  const int kbn = (K + TK - 1) / TK, mtn = (M + TR - 1) / TR, ntn = (N + TR - 1) / TR;
  const size_t str = (size_t)kbn * P * TILE; /* bf16 from one tile's packed blocks to the next */
  const int nbt = ntn < NCB / TR ? ntn : NCB / TR; /* column tiles of one Bp block */
  uint16_t *ap = buf_get(sizeof(uint16_t) * str * (size_t)(mtn + nbt) + 256 * sizeof(float));
  uint16_t *bp = ap + str * (size_t)mtn;
  float *scr = (float *)(bp + str * (size_t)nbt);
  pack(ap, A, (size_t)lda, ta == AMX_N, ta == AMX_T, M, K, P);
  static const kern_fn kerns[2][2][2] = {{{kern11_1, kern12_1}, {kern21_1, kern22_1}},
                                         {{kern11_2, kern12_2}, {kern21_2, kern22_2}}};
  const int beta1 = beta != 0.0f;
  tiles_config();
  const size_t kstep = (size_t)P * TILE;
  for (int jc = 0; jc < ntn; jc += NCB / TR) {
    const int jn = ntn - jc < NCB / TR ? ntn : jc + NCB / TR;
    const int j0 = jc * TR, nc = (jn * TR < N ? jn * TR : N) - j0; /* columns of this block */
    pack(bp, tb == AMX_T ? B + (size_t)j0 * ldb : B + j0, (size_t)ldb, tb == AMX_T, tb == AMX_T, nc, K, P);
    for (int kc = 0; kc < kbn; kc += KCB) {
      const int kcn = kbn - kc < KCB ? kbn - kc : KCB;
      const int load_c = beta1 || kc > 0; /* later k blocks add to what the first stored */
      for (int mi = 0; mi < mtn; mi += 2) {
        const int mt = mtn - mi < 2 ? 1 : 2, mv = M - mi * TR;
        for (int nj = jc; nj < jn; nj += 2) {
          const int nt = jn - nj < 2 ? 1 : 2, nv = N - nj * TR;
          kerns[P - 1][mt - 1][nt - 1](kcn, ap + str * (size_t)mi + kstep * (size_t)kc,
                                       bp + str * (size_t)(nj - jc) + kstep * (size_t)kc, str,
                                       C + (size_t)mi * TR * ldc + (size_t)nj * TR, ldc, load_c, mv < 32 ? mv : 32,
                                       nv < 32 ? nv : 32, scr);
        }
      }
    }
  }
  _tile_release();
}

#endif /* IB_AMX */
