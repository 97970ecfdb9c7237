/* bench_gemm.c: `ibrl-bench gemm`: the AMX bf16x3 and bf16 products (nn_amx.h) against
 * cblas_sgemm on the learner's matrix shapes, one thread, in the same run.
 *
 * Shapes (M, N, K, op(A), op(B), beta) are the products of one IBRL step at batch 256 (hidden
 * layers 1024 wide): forward NT (x·Wᵀ), dX NN (dz·W), dW TN (dzᵀ·x, beta 1 when accumulating),
 * the target critic on 512 rows, the share one member of a 2-thread team gets (half the rows of
 * forward/dX, half of the 1024 dW rows), the 69/76-wide first layers, the 1- and 7-wide heads,
 * acting with few rows, and narrow N/K that decide nn_gemm's rule (nn_gemm.h). For each: the
 * median GFLOP/s (2·M·N·K per call, packing included) of cblas_sgemm, amx bf16x3 and amx bf16,
 * the time ratios amx/cblas (below 1: amx is faster), and which path nn_gemm takes in bf16x3
 * mode. Operands are filled once and stay cache-warm, as between the learner's calls; each timed
 * repeat runs enough calls for ~20 ms, after one warm-up, and the three paths' repeats alternate
 * so that clock changes of a shared VM hit all alike. OpenBLAS runs with 1 thread. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cli.h"
#include "ib.h"
#include "nn.h"
#include "nn_amx.h"
#include "nn_gemm.h"
#include "rng.h"

typedef struct gb_shape {
  const char *what;
  int M, N, K, ta, tb;
  float beta;
} gb_shape;

static const gb_shape shapes[] = {
    {"fwd NT 256", 256, 1024, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"dX NN 256", 256, 1024, 1024, NN_GEMM_N, NN_GEMM_N, 0.0f},
    {"dW TN K=256", 1024, 1024, 256, NN_GEMM_T, NN_GEMM_N, 0.0f},
    {"dW TN K=256 b1", 1024, 1024, 256, NN_GEMM_T, NN_GEMM_N, 1.0f},
    {"fwd NT 512", 512, 1024, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"2thr fwd NT 128", 128, 1024, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"2thr dX NN 128", 128, 1024, 1024, NN_GEMM_N, NN_GEMM_N, 0.0f},
    {"2thr dW TN 512", 512, 1024, 256, NN_GEMM_T, NN_GEMM_N, 1.0f},
    {"2thr fwd NT 256", 256, 1024, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"in76 fwd NT", 256, 1024, 76, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"in69 fwd NT", 256, 1024, 69, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"in76 dW TN", 1024, 76, 256, NN_GEMM_T, NN_GEMM_N, 1.0f},
    {"in76 dX NN", 256, 76, 1024, NN_GEMM_N, NN_GEMM_N, 1.0f},
    {"head1 fwd NT", 256, 1, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"head7 fwd NT", 256, 7, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"head7 dX NN", 256, 1024, 7, NN_GEMM_N, NN_GEMM_N, 0.0f},
    {"head7 dW TN", 7, 1024, 256, NN_GEMM_T, NN_GEMM_N, 1.0f},
    {"act M=1 NT", 1, 1024, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"act M=8 NT", 8, 1024, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"M=32 NT", 32, 1024, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"N=2 NT", 256, 2, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"N=4 NT", 256, 4, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"N=16 NN", 256, 16, 1024, NN_GEMM_N, NN_GEMM_N, 0.0f},
    {"N=32 NN", 256, 32, 1024, NN_GEMM_N, NN_GEMM_N, 0.0f},
    {"N=64 NT", 256, 64, 1024, NN_GEMM_N, NN_GEMM_T, 0.0f},
    {"K=16 NN", 256, 1024, 16, NN_GEMM_N, NN_GEMM_N, 0.0f},
    {"K=32 NN", 256, 1024, 32, NN_GEMM_N, NN_GEMM_N, 0.0f},
};

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct gb_op {
  const gb_shape *s;
  float *A, *B, *C;
  int lda, ldb, ldc;
} gb_op;

enum { PATH_CBLAS, PATH_X3, PATH_B16, NPATH };

static void run(int path, const gb_op *o) {
  const gb_shape *s = o->s;
  if (path == PATH_CBLAS)
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->M, s->N,
                s->K, 1.0f, o->A, o->lda, o->B, o->ldb, s->beta, o->C, o->ldc);
  else
    amx_gemm(o->C, o->A, o->B, s->beta, s->ta, s->tb, s->M, s->N, s->K, o->lda, o->ldb, o->ldc,
             path == PATH_X3 ? AMX_BF16X3 : AMX_BF16);
}

/* One repeat: `calls` calls, seconds per call. */
static double time_rep(int path, const gb_op *o, int calls) {
  uint64_t t0 = ib_now_ns();
  for (int c = 0; c < calls; c++) run(path, o);
  double t = (double)(ib_now_ns() - t0) * 1e-9 / calls;
  if (o->s->beta != 0.0f) /* keep accumulated values bounded */
    memset(o->C, 0, sizeof(float) * (size_t)o->s->M * o->ldc);
  return t;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench gemm [--reps N] [--only TEXT] [--help]\n"
          "  AMX bf16x3 and bf16 (nn_amx.h) vs cblas_sgemm (1 thread) on the learner's shapes: median\n"
          "  GFLOP/s (packing included) and time ratios amx/cblas (< 1: amx faster).\n"
          "  --reps N     timed repeats per shape and path (default 7; each repeat ~20 ms)\n"
          "  --only TEXT  only shapes whose label contains TEXT (e.g. \"2thr\")\n"
          "  --help       this text\n");
}

int bench_gemm(int argc, char **argv);
int bench_gemm(int argc, char **argv) {
  int reps = 7;
  const char *only = NULL;
  static const struct option opts[] = {
      {"reps", required_argument, NULL, 'r'}, {"only", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":r:o:h", opts, NULL)) != -1) {
    switch (c) {
      case 'r': {
        char *end;
        long v = strtol(optarg, &end, 10);
        if (*end || v < 1 || v > 1000) {
          fprintf(stderr, "ibrl-bench gemm: --reps '%s' is not an integer in 1..1000\n", optarg);
          return 2;
        }
        reps = (int)v;
        break;
      }
      case 'o': only = optarg; break;
      case 'h': usage(stdout); return 0;
      default: {
        char why[256];
        fprintf(stderr, "ibrl-bench gemm: %s (HINT: ibrl-bench gemm --help lists the flags)\n",
                cli_bad_option_msg(why, sizeof why, c, argv[optind - 1], opts));
        return 2;
      }
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ibrl-bench gemm: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  if (!amx_available()) {
    fprintf(stderr, "ibrl-bench gemm: no AMX-BF16 on this CPU/kernel (amx_available() is 0); nothing to compare\n");
    return 1;
  }
  if (nn_blas_check() != IB_OK) fprintf(stderr, "ibrl-bench gemm: %s\n", ib_errmsg());
  openblas_set_num_threads(1);
  const size_t maxel = (size_t)1024 * 1024;
  float *A = ib_xaligned(maxel * sizeof(float)), *B = ib_xaligned(maxel * sizeof(float));
  float *C = ib_xaligned(maxel * sizeof(float));
  rng r;
  rng_seed(&r, 1, "bench", 0, "gemm");
  for (size_t i = 0; i < maxel; i++) A[i] = (float)rng_uniform(&r) - 0.5f, B[i] = (float)rng_uniform(&r) - 0.5f;
  double *t = ib_xmalloc(sizeof(double) * NPATH * (size_t)reps);
  printf("# ibrl-bench gemm: 1 thread, OpenBLAS core %s, reps %d, median GFLOP/s (2MNK per call, packing "
         "included)\n",
         nn_blas_core(), reps);
  printf("%-16s %5s %5s %5s %2s %4s %8s %8s %8s %6s %6s %s\n", "shape", "M", "N", "K", "op", "beta", "cblas",
         "bf16x3", "bf16", "x3/cb", "b16/cb", "nn_gemm(bf16x3) uses");
  const nn_matmul saved = nn_get_matmul();
  IB_CHECK(nn_set_matmul(NN_MATMUL_BF16X3) == IB_OK);
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const gb_shape *s = &shapes[i];
    if (only && !strstr(s->what, only)) continue;
    gb_op o = {.s = s, .A = A, .B = B, .C = C};
    o.lda = s->ta ? s->M : s->K;
    o.ldb = s->tb ? s->K : s->N;
    o.ldc = s->N;
    const double flop = 2.0 * s->M * s->N * s->K;
    int calls = (int)(0.02 * 100e9 / flop); /* ~20 ms at 100 GFLOP/s */
    if (calls < 1) calls = 1;
    for (int p = 0; p < NPATH; p++) time_rep(p, &o, calls); /* warm-up, buffers grown */
    for (int rr = 0; rr < reps; rr++)
      for (int p = 0; p < NPATH; p++) t[p * reps + rr] = time_rep(p, &o, calls);
    double g[NPATH];
    for (int p = 0; p < NPATH; p++) g[p] = flop / median(t + p * reps, reps) * 1e-9;
    printf("%-16s %5d %5d %5d %c%c %4.0f %8.1f %8.1f %8.1f %6.2f %6.2f %s\n", s->what, s->M, s->N, s->K,
           s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->beta, g[PATH_CBLAS], g[PATH_X3], g[PATH_B16],
           g[PATH_CBLAS] / g[PATH_X3], g[PATH_CBLAS] / g[PATH_B16],
           nn_gemm_uses_amx(s->M, s->N, s->K) ? "amx" : "cblas");
    fflush(stdout);
  }
  IB_CHECK(nn_set_matmul(saved) == IB_OK);
  free(t), free(A), free(B), free(C);
  return 0;
}
