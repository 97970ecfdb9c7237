/* bench_nn.c: `ibrl-bench nn`: one training step (forward, backward, Adam) of the
 * paper's state critic ensemble and actor, against plain cblas_sgemm on the same shapes.
 *
 * Networks (ibrl-reference.md 8): critic ensemble E=5, each 76→1024→1024→1024→1 with LayerNorm;
 * actor 69→1024→1024→1024→7, dropout 0.5 in train mode, tanh output; batch 256.
 * FLOPs are counted analytically from the matmuls only (2·B·in·out per product): forward, dW,
 * and dX for every layer but the first (the input gradient is not requested). The peer is the
 * same sequence of sgemm calls (same shapes, same transposes, same beta) on preallocated,
 * cache-warm buffers, timed in the same run and thread setting: the ratio nn/sgemm is how much
 * of the BLAS rate the whole step keeps after bias, LayerNorm, ReLU, dropout, the input copy
 * and Adam. The backward overwrites the grads (NN_GRADS_SET, as the learner's critic update
 * does), so there is no zero-grad pass; the "zero ms" column stays for the JSON consumers and is
 * ~0. Threads: ibrl runs its own team (nn_set_threads, one-thread sgemm per member); the sgemm
 * peers run OpenBLAS's threads. Every figure is the median over --reps timed repeats after 2 warm-ups. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "cli.h"
#include "ib.h"
#include "nn.h"
#include "rng.h"

enum { BATCH = 256, HID = 1024, E = 5, OBS = 69, ACT = 7 };

typedef struct bn_times {
  double zero, fwd, bwd, adam, step, sgemm, sgemm_net;
  double step_min, sgemm_min, sgemm_net_min; /* best repeat: robust to other load on the machine */
  double step_cpu, sgemm_cpu;                 /* medians of the calling thread's CPU time */
} bn_times;

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* CPU time of the calling thread: with one BLAS thread all the work runs here, so this is the
 * work done, not counting time the scheduler gave to other processes on a shared machine. */
static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double minimum(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
  return m;
}

static double median(double *v, int n) {
  qsort(v, n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Matmul FLOPs of one step of a net (per head), with no input gradient. */
static double step_flops(const nn_mlp *net, int B) {
  double f = 0;
  for (int l = 0; l < net->n_layers; l++) {
    double mm = 2.0 * B * net->layer[l].in * net->layer[l].out;
    f += mm * (l == 0 ? 2 : 3);
  }
  return f;
}

/* The plain-sgemm peers: the step's matmuls and nothing else, in two memory settings.
 * warm: one weight, one input and one output buffer reused by every call, so the operands stay
 *       in cache (the setting of the sgemm figures in shared/docs/anchors.md);
 * net:  every head and layer has its own W, dW and activations, as in the network, so the
 *       weights stream through the caches exactly as they do in a training step.
 * The gap between the two is the BLAS's own cost of a large working set, not ours. */
typedef struct peer {
  int heads, layers;
  float *x, *w, *y, *d, *dw, *dx;       /* warm buffers */
  float *nw[E][4], *ndw[E][4], *na[E][5]; /* net buffers: W, dW per layer; activations per layer */
  float *nd0, *nd1;
} peer;

static float *randbuf(size_t n, rng *r) {
  float *p = ib_xaligned(n * 4);
  for (size_t i = 0; i < n; i++) p[i] = rng_uniform(r) - 0.5f;
  return p;
}

static void peer_init(peer *p, const nn_mlp *net, int heads, int B) {
  memset(p, 0, sizeof *p);
  rng r;
  rng_seed(&r, 1, "bench", 0, "peer");
  size_t big = (size_t)HID * HID, act = (size_t)B * HID;
  p->heads = heads, p->layers = net->n_layers;
  p->x = randbuf(act, &r), p->w = randbuf(big, &r), p->y = randbuf(act, &r);
  p->d = randbuf(act, &r), p->dw = randbuf(big, &r), p->dx = randbuf(act, &r);
  for (int h = 0; h < heads; h++) {
    p->na[h][0] = randbuf((size_t)B * net->layer[0].in, &r);
    for (int l = 0; l < net->n_layers; l++) {
      size_t n = (size_t)net->layer[l].in * net->layer[l].out;
      p->nw[h][l] = randbuf(n, &r);
      p->ndw[h][l] = randbuf(n, &r);
      p->na[h][l + 1] = randbuf((size_t)B * net->layer[l].out, &r);
    }
  }
  p->nd0 = randbuf(act, &r), p->nd1 = randbuf(act, &r);
}

static void peer_free(peer *p) {
  free(p->x), free(p->w), free(p->y), free(p->d), free(p->dw), free(p->dx), free(p->nd0), free(p->nd1);
  for (int h = 0; h < p->heads; h++) {
    free(p->na[h][0]);
    for (int l = 0; l < p->layers; l++) free(p->nw[h][l]), free(p->ndw[h][l]), free(p->na[h][l + 1]);
  }
}

static void peer_step(peer *p, const nn_mlp *net, int B, int warm) {
  for (int h = 0; h < p->heads; h++)
    for (int l = 0; l < net->n_layers; l++) {
      int in = net->layer[l].in, out = net->layer[l].out;
      const float *x = warm ? p->x : p->na[h][l], *w = warm ? p->w : p->nw[h][l];
      float *y = warm ? p->y : p->na[h][l + 1];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    }
  for (int h = 0; h < p->heads; h++) {
    float *d = warm ? p->d : p->nd0, *dn = warm ? p->dx : p->nd1;
    for (int l = net->n_layers - 1; l >= 0; l--) {
      int in = net->layer[l].in, out = net->layer[l].out;
      const float *x = warm ? p->x : p->na[h][l], *w = warm ? p->w : p->nw[h][l];
      float *dw = warm ? p->dw : p->ndw[h][l];
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, d, out, x, in, 0.0f, dw, in); /* beta 0: NN_GRADS_SET */
      if (l > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, d, out, w, in, 0.0f, dn, in);
        if (!warm) {
          float *t = d;
          d = dn, dn = t;
        }
      }
    }
  }
}

/* Times reps steps of either the ensemble (ens != NULL) or the actor. */
static bn_times run(nn_ens *ens, nn_mlp *actor, int B, int reps, int threads, rng *r) {
  const nn_mlp *shape = ens ? &ens->head[0] : actor;
  int heads = ens ? E : 1, in = shape->spec.in_dim, out = ens ? E : shape->spec.out_dim;
  float *x = ib_xaligned((size_t)B * in * 4), *dout = ib_xaligned((size_t)B * out * 4);
  float *q = ib_xaligned((size_t)B * out * 4);
  for (int i = 0; i < B * in; i++) x[i] = rng_uniform(r) * 2 - 1;
  for (int i = 0; i < B * out; i++) dout[i] = (rng_uniform(r) * 2 - 1) / B;
  nn_adam_cfg cfg = nn_adam_defaults(1e-4f);
  int n = reps + 2;
  double *t[9];
  for (int k = 0; k < 9; k++) t[k] = calloc(n, sizeof(double));
  peer p;
  peer_init(&p, shape, heads, B);
  for (int i = 0; i < n; i++) {
    double c0 = thread_cpu_s();
    double t0 = ib_now_s();
    double t1 = ib_now_s(); /* no zero-grad: the backward overwrites the grads (NN_GRADS_SET) */
    if (ens) nn_ens_forward(ens, q, x, B, NULL, E, 0, NULL);
    else nn_mlp_forward(actor, NULL, x, B, 1, r);
    double t2 = ib_now_s();
    if (ens) nn_ens_backward(ens, NULL, dout, NN_GRADS_SET);
    else nn_mlp_backward(actor, NULL, dout, NN_GRADS_SET);
    double t3 = ib_now_s();
    if (ens) nn_ens_adam_step(ens, &cfg);
    else nn_mlp_adam_step(actor, &cfg);
    double t4 = ib_now_s();
    /* The peers use OpenBLAS's own threads; ib_nn runs one-thread sgemm on its own team. */
    openblas_set_num_threads(threads);
    double c1 = thread_cpu_s();
    double t4b = ib_now_s();
    peer_step(&p, shape, B, 1);
    double t5 = ib_now_s();
    double c2 = thread_cpu_s();
    peer_step(&p, shape, B, 0);
    double t6 = ib_now_s();
    openblas_set_num_threads(1);
    t[0][i] = t1 - t0, t[1][i] = t2 - t1, t[2][i] = t3 - t2, t[3][i] = t4 - t3, t[4][i] = t4 - t0;
    t[5][i] = t5 - t4b, t[6][i] = t6 - t5, t[7][i] = c1 - c0, t[8][i] = c2 - c1;
  }
  bn_times m = {median(t[0] + 2, reps), median(t[1] + 2, reps), median(t[2] + 2, reps),
                median(t[3] + 2, reps), median(t[4] + 2, reps), median(t[5] + 2, reps),
                median(t[6] + 2, reps), minimum(t[4] + 2, reps), minimum(t[5] + 2, reps),
                minimum(t[6] + 2, reps), median(t[7] + 2, reps), median(t[8] + 2, reps)};
  for (int k = 0; k < 9; k++) free(t[k]);
  peer_free(&p);
  free(x), free(dout), free(q);
  return m;
}

/* The entry point bench_main.c dispatches to (it declares it too; there is no bench header). */
int bench_nn(int argc, char **argv);

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench nn [--threads LIST] [--reps N] [--batch B] [--matmul M] [--json] [--help]\n"
          "  Times forward + backward + Adam of the IBRL state critic ensemble (E=5,\n"
          "  76-1024x3-1, LayerNorm) and actor (69-1024x3-7, dropout 0.5, tanh) and plain sgemm on\n"
          "  the same shapes; prints GFLOP/s (matmul FLOPs only), medians over N repeats.\n"
          "  --threads LIST  comma-separated thread counts (default 1,2): nn_set_threads for ibrl,\n"
          "                  OpenBLAS threads for the sgemm peers\n"
          "  --reps N        timed repeats per figure after 2 warm-ups (default 5, 1..1000)\n"
          "  --batch B       batch rows (default 256, 1..4096)\n"
          "  --matmul M      precision of ibrl's matrix products (nn_set_matmul): fp32 (default),\n"
          "                  bf16x3 or bf16 (AMX-BF16), or auto (bf16x3 with AMX-BF16, else fp32);\n"
          "                  the sgemm peers are always fp32\n"
          "  --json          one JSON object per line instead of the table\n");
}

int bench_nn(int argc, char **argv) {
  static const struct option opts[] = {{"threads", required_argument, 0, 't'}, {"reps", required_argument, 0, 'r'},
                                       {"batch", required_argument, 0, 'b'},   {"json", no_argument, 0, 'j'},
                                       {"matmul", required_argument, 0, 'm'},  {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int threads[8] = {1, 2}, nthreads = 2, reps = 5, B = BATCH, json = 0, c;
  nn_matmul matmul = NN_MATMUL_FP32;
  char *end;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":t:r:b:m:jh", opts, NULL)) != -1) {
    switch (c) {
      case 't': {
        nthreads = 0;
        char *s = optarg;
        while (*s && nthreads < 8) {
          long v = strtol(s, &end, 10);
          if (end == s || v < 1 || v > 64 || (*end && *end != ',')) {
            fprintf(stderr, "ibrl-bench nn: --threads '%s' is not a list of counts 1..64 (e.g. 1,2)\n", optarg);
            return 2;
          }
          threads[nthreads++] = (int)v;
          s = *end ? end + 1 : end;
        }
        if (nthreads == 0) {
          fprintf(stderr, "ibrl-bench nn: --threads needs at least one count\n");
          return 2;
        }
        break;
      }
      case 'r':
        reps = (int)strtol(optarg, &end, 10);
        if (*end || reps < 1 || reps > 1000) {
          fprintf(stderr, "ibrl-bench nn: --reps '%s' is not in 1..1000\n", optarg);
          return 2;
        }
        break;
      case 'b':
        B = (int)strtol(optarg, &end, 10);
        if (*end || B < 1 || B > 4096) {
          fprintf(stderr, "ibrl-bench nn: --batch '%s' is not in 1..4096\n", optarg);
          return 2;
        }
        break;
      case 'j': json = 1; break;
      case 'm':
        if (nn_matmul_parse(&matmul, optarg) != IB_OK) {
          fprintf(stderr, "ibrl-bench nn: --matmul: %s\n", ib_errmsg());
          return 2;
        }
        break;
      case 'h': usage(stdout); return 0;
      default: {
        char why[256];
        fprintf(stderr, "ibrl-bench nn: %s (HINT: ibrl-bench nn --help lists the flags)\n",
                cli_bad_option_msg(why, sizeof why, c, argv[optind - 1], opts));
        return 2;
      }
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ibrl-bench nn: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }

  if (nn_set_matmul(matmul) != IB_OK) {
    fprintf(stderr, "ibrl-bench nn: %s\n", ib_errmsg());
    return 2;
  }
  nn_mlp_spec cs = {.in_dim = OBS + ACT, .n_hidden = 3, .hidden = {HID, HID, HID}, .out_dim = 1, .layernorm = 1,
                    .max_batch = B};
  nn_mlp_spec as = {.in_dim = OBS, .n_hidden = 3, .hidden = {HID, HID, HID}, .out_dim = ACT, .dropout = 0.5f,
                    .out_act = NN_ACT_TANH, .max_batch = B};
  if (nn_blas_check() != IB_OK) fprintf(stderr, "ibrl-bench nn: %s\n", ib_errmsg());
  rng r;
  rng_seed(&r, 1, "bench", 0, "init");
  nn_ens critic;
  nn_mlp actor;
  IB_CHECK(nn_ens_init(&critic, E, &cs, &r) == IB_OK);
  IB_CHECK(nn_mlp_init(&actor, &as, &r) == IB_OK);
  double fl_c = E * step_flops(&critic.head[0], B), fl_a = step_flops(&actor, B);
  if (!json)
    printf("ibrl-bench nn: matmul %s (the sgemm peers: fp32), batch %d, %d reps, OpenBLAS core %s; critic E=%d 76-1024x3-1 LN (%.2f GFLOP/step, %zu "
           "params), actor 69-1024x3-7 drop 0.5 (%.2f GFLOP/step, %zu params)\n"
           "  sgemm warm: the same sgemm calls on cache-warm shared buffers; sgemm net: on per-layer buffers;\n"
           "  ratios of medians; best/warm = fastest sgemm-warm repeat / fastest nn repeat; cpu/warm = the\n"
           "  same from the thread's CPU time (1 thread only; robust to other load on a shared machine)\n"
           "%-7s %3s %8s %8s %8s %8s %8s %9s %10s %9s %7s %7s %9s %8s\n",
           nn_matmul_name(matmul), B, reps, nn_blas_core(), E, fl_c * 1e-9, critic.n_params, fl_a * 1e-9, actor.n_params, "net", "thr",
           "zero ms", "fwd ms", "bwd ms", "adam ms", "step ms", "nn GF/s", "warm GF/s", "net GF/s", "/warm",
           "/net", "best/warm", "cpu/warm");
  for (int ti = 0; ti < nthreads; ti++) {
    nn_set_threads(threads[ti]);
    for (int k = 0; k < 2; k++) {
      const char *name = k == 0 ? "critic" : "actor";
      if (!json) fprintf(stderr, "  timing %s at %d thread(s)...\n", name, threads[ti]);
      bn_times m = run(k == 0 ? &critic : NULL, k == 0 ? NULL : &actor, B, reps, threads[ti], &r);
      double fl = k == 0 ? fl_c : fl_a;
      double gn = fl / m.step * 1e-9, gs = fl / m.sgemm * 1e-9, gt = fl / m.sgemm_net * 1e-9;
      if (json)
        printf("{\"bench\":\"nn\",\"matmul\":\"%s\",\"net\":\"%s\",\"threads\":%d,\"batch\":%d,\"reps\":%d,\"blas_core\":\"%s\","
               "\"gflop_per_step\":%.4f,\"zero_ms\":%.3f,\"fwd_ms\":%.3f,\"bwd_ms\":%.3f,\"adam_ms\":%.3f,"
               "\"step_ms\":%.3f,\"sgemm_warm_ms\":%.3f,\"sgemm_net_ms\":%.3f,\"nn_gflops\":%.2f,"
               "\"sgemm_warm_gflops\":%.2f,\"sgemm_net_gflops\":%.2f,\"ratio_warm\":%.4f,\"ratio_net\":%.4f,"
               "\"step_min_ms\":%.3f,\"sgemm_warm_min_ms\":%.3f,\"sgemm_net_min_ms\":%.3f,"
               "\"step_cpu_ms\":%.3f,\"sgemm_warm_cpu_ms\":%.3f}\n",
               nn_matmul_name(matmul), name, threads[ti], B, reps, nn_blas_core(), fl * 1e-9, m.zero * 1e3, m.fwd * 1e3, m.bwd * 1e3,
               m.adam * 1e3, m.step * 1e3, m.sgemm * 1e3, m.sgemm_net * 1e3, gn, gs, gt, gn / gs, gn / gt,
               m.step_min * 1e3, m.sgemm_min * 1e3, m.sgemm_net_min * 1e3, m.step_cpu * 1e3, m.sgemm_cpu * 1e3);
      else {
        char cpu[16] = "       -";
        if (threads[ti] == 1) snprintf(cpu, sizeof cpu, "%7.1f%%", 100 * m.sgemm_cpu / m.step_cpu);
        printf("%-7s %3d %8.2f %8.2f %8.2f %8.2f %8.2f %9.1f %10.1f %9.1f %6.1f%% %6.1f%% %8.1f%% %s\n", name,
               threads[ti], m.zero * 1e3, m.fwd * 1e3, m.bwd * 1e3, m.adam * 1e3, m.step * 1e3, gn, gs, gt,
               100 * gn / gs, 100 * gn / gt, 100 * m.sgemm_min / m.step_min, cpu);
      }
      fflush(stdout);
    }
  }
  nn_ens_free(&critic);
  nn_mlp_free(&actor);
  return 0;
}
