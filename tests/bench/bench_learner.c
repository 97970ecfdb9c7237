/* bench_learner.c: `ibrl-bench learner`: the time of one IBRL learning step (G critic updates +
 * 1 actor update) of learner/agent, next to the PyTorch peer measured in the same run.
 *
 * Preset paper-state (shared/bench/README.md): E=5 critics 76->1024x3->1 with LayerNorm, actor
 * 69->1024x3->7 with dropout 0.5, a frozen BC policy of the actor's shape, batch 256, G=5, Adam
 * 1e-4, EMA 0.01, target noise 0.1 clip 0.3. The C step runs with greedy bootstrap selection and
 * boot_fresh_pair 0, which is exactly the arithmetic of the peer's "brief" mode (one forward of a
 * random pair of target critics over both candidates; the max is the target). --fresh-pair
 * measures the reference's extra evaluation subset instead (a little more work than brief).
 * Batches are gathered from a synthetic replay of uniform random rows, as the peer does, and the
 * gather is inside the timed step.
 *
 * For each thread count the C median is measured first, then the peer is spawned as
 *   OMP_NUM_THREADS=t OPENBLAS_NUM_THREADS=t [OMP_WAIT_POLICY=PASSIVE] /usr/bin/python3 SCRIPT
 *     --threads t --ens loop --mode brief --warmup 3 --steps N
 * and its JSON line's step_s_median is read. The load average is printed with each figure,
 * because the machine is shared, and so is the OpenBLAS kernel (a fallback "Prescott" kernel on
 * CPUs OpenBLAS 0.3.21 does not know is ~3x slower for both sides: export OPENBLAS_CORETYPE).
 * Nothing here is asserted: speed is reported, never tested. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "ib.h"
#include "nn.h"

/* The source tree: IB_SOURCE_DIR from the environment, else the folder this file was compiled
 * from (__FILE__ is absolute under CMake), so the default peer path works from any build dir. */
static void source_dir(char *out, size_t n) {
  const char *env = getenv("IB_SOURCE_DIR");
  if (env && *env) {
    snprintf(out, n, "%s", env);
    return;
  }
  snprintf(out, n, "%s", __FILE__);
  char *cut = strstr(out, "/tests/bench/bench_learner.c");
  if (cut) *cut = '\0';
  else snprintf(out, n, ".");
}

typedef struct bl_opts {
  int steps, warmup, torch_steps, G, fresh_pair, no_torch, replay_rows;
  int threads[4], n_threads;
  char torch_script[1024];
  int torch_given;       /* --torch-script was passed: a missing script is then an error */
  nn_matmul matmul;      /* precision of the C side's matrix products (the peer stays fp32) */
} bl_opts;

static void bl_usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench learner [--preset paper-state] [--steps N] [--warmup N] [--threads 1,2]\n"
          "                          [--torch-script PATH] [--torch-steps N] [--no-torch] [--fresh-pair]\n"
          "                          [--matmul auto|fp32|bf16x3|bf16]\n"
          "  Times one IBRL learning step (G=5 critic updates + 1 actor update) of learner/agent and\n"
          "  the PyTorch peer (shared/bench/torch_ibrl_step.py, --mode brief --ens loop) in the same run.\n"
          "  --preset NAME        only paper-state (E=5 3x1024 LN critics, 3x1024 dropout actor, B=256)\n"
          "  --steps N            timed C steps per thread count (default 8)\n"
          "  --warmup N           untimed C steps first (default 2)\n"
          "  --threads LIST       comma-separated BLAS thread counts (default 1,2)\n"
          "  --torch-script PATH  the peer (default IB_SOURCE_DIR/../shared/bench/torch_ibrl_step.py;\n"
          "                       a missing default is skipped with a note, a missing PATH exits 2)\n"
          "  --torch-steps N      timed peer steps (default: --steps)\n"
          "  --no-torch           skip the peer\n"
          "  --fresh-pair         evaluate the chosen bootstrap action with a fresh head pair (reference)\n"
          "  --matmul M           precision of the C side's matrix products (nn_set_matmul): auto (default,\n"
          "                       as the paper-state preset: bf16x3 with AMX-BF16, else fp32), fp32, bf16x3\n"
          "                       or bf16; the PyTorch peer always runs fp32 (Debian's torch computes fp32\n"
          "                       whatever set_float32_matmul_precision says)\n");
}

static int parse_int(const char *s, int lo, int hi, int *out, const char *flag) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "ibrl-bench learner: %s '%s' is not an integer in [%d, %d]\n", flag, s, lo, hi);
    return -1;
  }
  *out = (int)v;
  return 0;
}

static int bl_parse(bl_opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->steps = 8;
  o->warmup = 2;
  o->G = 5;
  o->replay_rows = 20000;
  o->matmul = NN_MATMUL_AUTO; /* the paper-state preset's setting */
  o->threads[0] = 1;
  o->threads[1] = 2;
  o->n_threads = 2;
  char src[900];
  source_dir(src, sizeof src);
  snprintf(o->torch_script, sizeof o->torch_script, "%s/../shared/bench/torch_ibrl_step.py", src);
  static const struct option longopts[] = {
      {"preset", required_argument, NULL, 'p'},   {"steps", required_argument, NULL, 's'},
      {"warmup", required_argument, NULL, 'w'},   {"threads", required_argument, NULL, 't'},
      {"torch-script", required_argument, NULL, 'S'}, {"torch-steps", required_argument, NULL, 'T'},
      {"no-torch", no_argument, NULL, 'n'},       {"fresh-pair", no_argument, NULL, 'f'},
      {"matmul", required_argument, NULL, 'm'},  {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (c) {
    case 'p':
      if (strcmp(optarg, "paper-state") != 0) {
        fprintf(stderr, "ibrl-bench learner: unknown preset '%s' (HINT: paper-state)\n", optarg);
        return 2;
      }
      break;
    case 's': if (parse_int(optarg, 1, 100000, &o->steps, "--steps")) return 2; break;
    case 'w': if (parse_int(optarg, 0, 100000, &o->warmup, "--warmup")) return 2; break;
    case 'T': if (parse_int(optarg, 1, 100000, &o->torch_steps, "--torch-steps")) return 2; break;
    case 'S':
      snprintf(o->torch_script, sizeof o->torch_script, "%s", optarg);
      o->torch_given = 1;
      break;
    case 'n': o->no_torch = 1; break;
    case 'm':
      if (nn_matmul_parse(&o->matmul, optarg) != IB_OK) {
        fprintf(stderr, "ibrl-bench learner: --matmul: %s\n", ib_errmsg());
        return 2;
      }
      break;
    case 'f': o->fresh_pair = 1; break;
    case 't': {
      o->n_threads = 0;
      char buf[64];
      snprintf(buf, sizeof buf, "%s", optarg);
      for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (o->n_threads == 4) {
          fprintf(stderr, "ibrl-bench learner: --threads takes at most 4 counts\n");
          return 2;
        }
        if (parse_int(tok, 1, 256, &o->threads[o->n_threads++], "--threads")) return 2;
      }
      if (o->n_threads == 0) {
        fprintf(stderr, "ibrl-bench learner: --threads '%s' lists no count\n", optarg);
        return 2;
      }
      break;
    }
    case 'h': bl_usage(stdout); return 1;
    default: {
      char why[256];
      fprintf(stderr, "ibrl-bench learner: %s (HINT: ibrl-bench learner --help lists the flags)\n",
              cli_bad_option_msg(why, sizeof why, c, argv[optind - 1], longopts));
      return 2;
    }
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ibrl-bench learner: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (!o->torch_steps) o->torch_steps = o->steps;
  /* An explicit peer that is not there is a usage error (found before any timing starts);
   * only the default path may be missing (a checkout without shared/: a note, no peer). */
  if (o->torch_given && !o->no_torch && access(o->torch_script, R_OK) != 0) {
    fprintf(stderr, "ibrl-bench learner: --torch-script %s: cannot read it: %s (HINT: the path of "
            "torch_ibrl_step.py, or --no-torch to skip the peer)\n", o->torch_script, strerror(errno));
    return 2;
  }
  return 0;
}

static double loadavg(void) {
  double l = -1.0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1.0;
    fclose(f);
  }
  return l;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* GEMM GFLOP of one brief step (the peer's count_flops("brief")). */
static double brief_gflop(int G) {
  const double B = 256, H = 1024, CIN = 76, OBS = 69, ACT = 7;
  const double C[4][2] = {{CIN, H}, {H, H}, {H, H}, {H, 1}}, P[4][2] = {{OBS, H}, {H, H}, {H, H}, {H, ACT}};
  double fc = 0, fp = 0, bc_wx = 0, bc_x = 0, bp = 0;
  for (int i = 0; i < 4; i++) {
    fc += 2 * C[i][0] * C[i][1];
    fp += 2 * P[i][0] * P[i][1];
    bc_wx += 2 * C[i][0] * C[i][1] + (i > 0 ? 2 * C[i][0] * C[i][1] : 0);
    bc_x += 2 * C[i][0] * C[i][1];
    bp += 2 * P[i][0] * P[i][1] + (i > 0 ? 2 * P[i][0] * P[i][1] : 0);
  }
  double critic = 2 * fp * B + 2 * fc * 2 * B + 5 * fc * B + 5 * bc_wx * B;
  double actor = fp * B + 5 * fc * B + 5 * bc_x * B + bp * B;
  return (G * critic + actor) / 1e9;
}

/* Runs the peer; returns its median s/step or a negative value. */
static double run_torch(const bl_opts *o, int t) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d %s /usr/bin/python3 '%s' --threads %d --ens loop "
           "--mode brief --warmup 3 --steps %d 2>&1",
           t, t, t > 1 ? "OMP_WAIT_POLICY=PASSIVE" : "", o->torch_script, t, o->torch_steps);
  FILE *p = popen(cmd, "r");
  if (!p) {
    fprintf(stderr, "  torch: cannot run the peer (popen failed)\n");
    return -1.0;
  }
  char line[8192];
  double med = -1.0;
  while (fgets(line, sizeof line, p)) {
    const char *k = strstr(line, "\"step_s_median\":");
    if (line[0] == '{' && k) med = strtod(k + strlen("\"step_s_median\":"), NULL);
    else if (line[0] != '{') fprintf(stderr, "  torch: %s", line);
  }
  int st = pclose(p);
  if (st != 0 || med <= 0.0) {
    fprintf(stderr, "  torch: the peer failed (exit status %d) or printed no step_s_median\n", st);
    return -1.0;
  }
  return med;
}

int bench_learner(int argc, char **argv);
int bench_learner(int argc, char **argv) {
  bl_opts o;
  int rc = bl_parse(&o, argc, argv);
  if (rc) return rc == 1 ? 0 : 2;
  if (nn_set_matmul(o.matmul) != IB_OK) {
    fprintf(stderr, "ibrl-bench learner: %s\n", ib_errmsg());
    return 2;
  }
  int torch = !o.no_torch;
  if (torch && access(o.torch_script, R_OK) != 0) {
    printf("torch peer: the default %s is not there; skipping it (HINT: --torch-script PATH runs the peer "
           "from elsewhere, --no-torch skips it without this note)\n", o.torch_script);
    torch = 0;
  }

  agent_config cfg = agent_config_default(AGENT_IBRL, AGENT_TD3);
  cfg.boot_select = AGENT_SELECT_GREEDY;
  cfg.boot_fresh_pair = o.fresh_pair;
  agent a;
  if (agent_init(&a, &cfg) != IB_OK) {
    fprintf(stderr, "ibrl-bench learner: %s\n", ib_errmsg());
    return 1;
  }
  il_config ic = cfg.il;
  ic.obs_dim = cfg.obs_dim;
  ic.act_dim = cfg.act_dim;
  il_policy bc;
  if (il_init(&bc, &ic) != IB_OK || agent_il_set(&a, &bc) != IB_OK) {
    fprintf(stderr, "ibrl-bench learner: %s\n", ib_errmsg());
    return 1;
  }
  il_free(&bc);

  /* Synthetic replay and G batch buffers. */
  const int N = o.replay_rows, O = cfg.obs_dim, A = cfg.act_dim, B = cfg.max_batch;
  float *R_obs = ib_xmalloc((size_t)N * O * sizeof(float)), *R_next = ib_xmalloc((size_t)N * O * sizeof(float));
  float *R_act = ib_xmalloc((size_t)N * A * sizeof(float)), *R_rew = ib_xmalloc((size_t)N * sizeof(float));
  float *R_disc = ib_xmalloc((size_t)N * sizeof(float));
  rng r;
  rng_seed(&r, 1, "bench", 0, "replay");
  for (size_t i = 0; i < (size_t)N * O; i++) {
    R_obs[i] = rng_normal(&r);
    R_next[i] = rng_normal(&r);
  }
  for (size_t i = 0; i < (size_t)N * A; i++) R_act[i] = 2.0f * rng_uniform(&r) - 1.0f;
  for (int i = 0; i < N; i++) {
    R_rew[i] = rng_uniform(&r);
    R_disc[i] = rng_uniform(&r) < 0.005f ? 0.0f : 0.970299f;
  }
  float *bo = ib_xmalloc((size_t)o.G * B * O * sizeof(float)), *bn = ib_xmalloc((size_t)o.G * B * O * sizeof(float));
  float *ba = ib_xmalloc((size_t)o.G * B * A * sizeof(float)), *br = ib_xmalloc((size_t)o.G * B * sizeof(float));
  float *bd = ib_xmalloc((size_t)o.G * B * sizeof(float));
  agent_batch batches[8];
  for (int g = 0; g < o.G; g++) {
    agent_batch b = {bo + (size_t)g * B * O, ba + (size_t)g * B * A, br + (size_t)g * B, bd + (size_t)g * B,
                     bn + (size_t)g * B * O, B};
    batches[g] = b;
  }
  double *ts = ib_xmalloc((size_t)o.steps * sizeof(double));
  const double gflop = brief_gflop(o.G);

  /* Both sides load the same OpenBLAS with the same environment, so a fallback kernel slows
   * both; say so, since the absolute figures then mean little. */
  const char *core_env = getenv("OPENBLAS_CORETYPE");
  printf("OpenBLAS kernel: %s (OPENBLAS_CORETYPE=%s; the peer inherits the environment)\n", nn_blas_core(),
         core_env ? core_env : "unset");
  if (nn_blas_check() != IB_OK) printf("WARNING: %s\n", ib_errmsg());
  printf("ibrl-bench learner: preset paper-state, G=%d critic updates + 1 actor update, E=%d, batch %d, "
         "%s bootstrap pair, %.1f GFLOP/step (brief count)\n",
         o.G, cfg.n_critics, B, o.fresh_pair ? "fresh (reference)" : "shared (brief)", gflop);
  printf("matmul: C side %s (nn_set_matmul, asked: %s), PyTorch peer fp32\n", nn_matmul_name(nn_get_matmul()),
         nn_matmul_name(o.matmul));
  printf("%-8s %-12s %-12s %-10s %-10s %-8s %s\n", "threads", "C s/step", "torch s/step", "C/torch",
         "C GFLOP/s", "load", "note");
  int status = 0;
  for (int ti = 0; ti < o.n_threads; ti++) {
    const int t = o.threads[ti];
    nn_set_threads(t);
    double load0 = loadavg();
    for (int s = 0; s < o.warmup + o.steps; s++) {
      double t0 = ib_now_s();
      for (int g = 0; g < o.G; g++)
        for (int i = 0; i < B; i++) {
          uint32_t j = rng_below(&r, (uint32_t)N);
          memcpy(bo + ((size_t)g * B + i) * O, R_obs + (size_t)j * O, (size_t)O * sizeof(float));
          memcpy(bn + ((size_t)g * B + i) * O, R_next + (size_t)j * O, (size_t)O * sizeof(float));
          memcpy(ba + ((size_t)g * B + i) * A, R_act + (size_t)j * A, (size_t)A * sizeof(float));
          br[(size_t)g * B + i] = R_rew[j];
          bd[(size_t)g * B + i] = R_disc[j];
        }
      rc = agent_learn_step(&a, batches, o.G, NULL);
      double dt = ib_now_s() - t0;
      if (rc != IB_OK) {
        fprintf(stderr, "ibrl-bench learner: step failed: %s\n", ib_errmsg());
        status = 1;
        break;
      }
      if (s >= o.warmup) ts[s - o.warmup] = dt;
      fprintf(stderr, "\r  C, %d thread(s): step %d/%d  %.3f s  critic loss %.4g", t, s + 1, o.warmup + o.steps,
              dt, a.metrics.critic_loss);
    }
    fprintf(stderr, "\n");
    if (status) break;
    qsort(ts, (size_t)o.steps, sizeof(double), cmp_double);
    double med = o.steps % 2 ? ts[o.steps / 2] : 0.5 * (ts[o.steps / 2 - 1] + ts[o.steps / 2]);
    double tmed = -1.0, load1 = load0;
    if (torch) {
      fprintf(stderr, "  torch, %d thread(s): running %d+3 steps ...\n", t, o.torch_steps);
      tmed = run_torch(&o, t);
      load1 = loadavg();
    }
    char tbuf[32] = "-", rbuf[32] = "-";
    if (tmed > 0) {
      snprintf(tbuf, sizeof tbuf, "%.3f", tmed);
      snprintf(rbuf, sizeof rbuf, "%.3f", med / tmed);
    }
    printf("%-8d %-12.3f %-12s %-10s %-10.1f %.2f/%.2f %s\n", t, med, tbuf, rbuf, gflop / med, load0, load1,
           tmed > 0 ? (med <= 0.6 * tmed ? "target met (<= 0.6)" : "target NOT met (> 0.6)") : "no peer");
    fflush(stdout);
  }
  printf("(target: C <= 0.6 x torch; load = 1-min load average before C / after the peer)\n");
  free(ts);
  free(R_obs); free(R_next); free(R_act); free(R_rew); free(R_disc);
  free(bo); free(bn); free(ba); free(br); free(bd);
  agent_free(&a);
  return status;
}
