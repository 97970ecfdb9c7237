/* learner_main.c: ibrl-learner, the MPI learner group (launch with mpirun -np N).
 *
 * Design. Settings come from three layers, later ones winning: the built-in defaults, then
 * --preset (tcfg presets shared with ibrl-train), then every other flag. Each flag can also be
 * given as an environment variable IBRL_LEARNER_<FLAG> (upper case, '-' -> '_'; e.g.
 * IBRL_LEARNER_REPLAY=replay-0:50051, IBRL_LEARNER_RESUME=1) for Kubernetes; a command-line
 * flag beats its variable. All values are collected first as strings, then applied in the
 * layer order, so a preset never overwrites an explicit flag whatever the argument order.
 * Flags are parsed before MPI starts, so --help and bad flags work without mpirun (exit 0 / 2);
 * only rank 0 prints. SIGTERM / SIGINT set a flag that the ranks agree on at the next update
 * (lstep.h); the run then writes its final checkpoint and exits 0. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "ib.h"
#include "log.h"
#include "lrun.h"
#include "nn.h"
#include "tcfg.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

enum {
  O_REPLAY = 0, O_PARAMS, O_TOKEN, O_TASK, O_OBS, O_ACT, O_IL, O_METHOD, O_BACKBONE, O_PRESET, O_BATCH,
  O_CRITIC_UPDATES, O_UPDATES, O_MINUTES, O_PUBLISH, O_CHECK, O_CKPT, O_LOG, O_OUT, O_RESUME, O_SEED,
  O_DEADLINE, O_MAXMB, O_WAIT, O_THREADS, O_MATMUL, O_QUIET, O_HELP, O_COUNT
};

static const struct option opts[] = {
    {"replay", required_argument, NULL, O_REPLAY},
    {"params", required_argument, NULL, O_PARAMS},
    {"token", required_argument, NULL, O_TOKEN},
    {"task", required_argument, NULL, O_TASK},
    {"obs-dim", required_argument, NULL, O_OBS},
    {"act-dim", required_argument, NULL, O_ACT},
    {"il", required_argument, NULL, O_IL},
    {"method", required_argument, NULL, O_METHOD},
    {"backbone", required_argument, NULL, O_BACKBONE},
    {"preset", required_argument, NULL, O_PRESET},
    {"batch", required_argument, NULL, O_BATCH},
    {"critic-updates", required_argument, NULL, O_CRITIC_UPDATES},
    {"updates", required_argument, NULL, O_UPDATES},
    {"minutes", required_argument, NULL, O_MINUTES},
    {"publish-every", required_argument, NULL, O_PUBLISH},
    {"check-every", required_argument, NULL, O_CHECK},
    {"ckpt-every", required_argument, NULL, O_CKPT},
    {"log-every", required_argument, NULL, O_LOG},
    {"out", required_argument, NULL, O_OUT},
    {"resume", no_argument, NULL, O_RESUME},
    {"seed", required_argument, NULL, O_SEED},
    {"deadline-ms", required_argument, NULL, O_DEADLINE},
    {"max-message-mb", required_argument, NULL, O_MAXMB},
    {"wait", required_argument, NULL, O_WAIT},
    {"threads", required_argument, NULL, O_THREADS},
    {"matmul", required_argument, NULL, O_MATMUL},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: mpirun -np N ibrl-learner --replay HOST:PORT[,...] --out RUN_DIR [options]\n"
          "The IBRL learner group: every rank samples its share of the global batch from the replay\n"
          "shards, computes the IBRL update, gradients are averaged with one MPI allreduce per network,\n"
          "and rank 0 publishes the acting weights to ibrl.Params. Every flag may also be set as\n"
          "IBRL_LEARNER_<FLAG> (e.g. IBRL_LEARNER_REPLAY=replay-0:50051, IBRL_LEARNER_RESUME=1); the\n"
          "command line wins.\n"
          "  --replay LIST          replay shards host:port,... (required)\n"
          "  --params HOST:PORT     shard serving ibrl.Params [the first replay shard]\n"
          "  --token T              shared token of the replay service\n"
          "  --task NAME            dims from the env registry x --preset's chunk and frame stack\n"
          "  --obs-dim N --act-dim N  explicit dims (default: --task, else what the shards hold)\n"
          "  --il PATH              IL checkpoint (ibrl-il train --out) for ibrl and its ablations\n"
          "  --method M             ibrl ibrl-noact ibrl-noboot ibrl-neither rlpd [ibrl]\n"
          "  --backbone td3|sac     RL backbone [td3]\n"
          "  --preset NAME          hyperparameters: nav2d-quick nav2d metaworld-state paper-state\n"
          "  --batch N              GLOBAL batch, split evenly over the ranks [preset's]\n"
          "  --critic-updates G     critic updates per actor update [preset's]\n"
          "  --updates N            stop after N critic updates in total (0 = no limit) [0]\n"
          "  --minutes M            stop after M minutes (0 = no limit) [0]\n"
          "  --publish-every P      publish weights every P critic updates [100]\n"
          "  --check-every C        compare weight checksums across ranks every C updates [500]\n"
          "  --ckpt-every K         checkpoint every K updates (0 = only at the end) [5000]\n"
          "  --log-every L          metrics.csv row and progress line every L updates [200]\n"
          "  --out RUN_DIR          run directory (required)\n"
          "  --resume               continue the run in RUN_DIR from its last checkpoint\n"
          "  --seed S               seed of every random stream [1]\n"
          "  --deadline-ms MS       deadline of each replay call [5000]\n"
          "  --max-message-mb N     gRPC message limit; the weight blob must fit (the Params shard's\n"
          "                         ibrl-replay needs the same --max-message-mb) [16]\n"
          "  --wait S               give up after S seconds without a batch [300]\n"
          "  --threads N            compute threads per rank (nn library, 1..8) [1]\n"
          "  --matmul P             matrix-product precision: fp32, bf16x3 (near-fp32, AMX-BF16),\n"
          "                         bf16, or auto (bf16x3 with AMX-BF16, else fp32) [fp32; paper-state: auto]\n"
          "  --quiet                no progress lines\n"
          "  --help                 this text\n"
          "Runs until --updates / --minutes, or SIGTERM / SIGINT (then: final checkpoint, exit 0).\n"
          "Exit codes: 0 done, 1 a runtime error (replay, MPI, disk), 2 bad flags or setup (a missing\n"
          "--il file, an --out that holds a run or cannot be created or written, dims that do not match\n"
          "the shards or the IL policy). Flags and local files (--il, --out) are checked before any\n"
          "replay is contacted; dims once the shards answer (an unreachable replay is 1 after --wait).\n");
}

/* Only one rank talks about the command line (all ranks parse the same arguments). */
static int is_first_rank(void) {
  const char *r = getenv("OMPI_COMM_WORLD_RANK");
  if (!r) r = getenv("PMI_RANK");
  return !r || strcmp(r, "0") == 0;
}

static int bad(const char *fmt, const char *a, const char *b) {
  if (is_first_rank()) {
    fprintf(stderr, "ibrl-learner: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(see ibrl-learner --help)\n");
  }
  return -1;
}

static int parse_double(double *out, const char *s, double lo, double hi, const char *flag) {
  if (cli_double_in(out, s, lo, hi) == 0) return 0;
  char why[160]; /* the value goes in as text, never as a format */
  snprintf(why, sizeof why, "'%.80s' is not a number in [%g, %g]", s, lo, hi);
  return bad("%s %s", flag, why);
}

/* Applies the collected values in layer order. Returns 0 or -1 (message printed). */
static int apply(const char *const *val, const char *const *src, lrun_opts *o, tcfg *tc) {
  const char *P = "ibrl-learner";
  char flag[64];
#define FLAG(i) (snprintf(flag, sizeof flag, "%s%s", src[i], opts[i].name), flag)
  tcfg_defaults(tc);
  if (val[O_PRESET] && tcfg_preset_apply(tc, val[O_PRESET]) != IB_OK) return bad("%s: %s", FLAG(O_PRESET), ib_errmsg());
  if (val[O_TASK] && tcfg_set_str(tc->task, sizeof tc->task, val[O_TASK], P, FLAG(O_TASK))) return -1;
  o->task_given = val[O_TASK] != NULL;
  if (val[O_METHOD]) {
    int m = tcfg_method_parse(val[O_METHOD]);
    if (m < 0) return bad("%s: %s", FLAG(O_METHOD), ib_errmsg());
    tc->method = m;
  }
  if (val[O_BACKBONE]) {
    if (strcmp(val[O_BACKBONE], "td3") == 0) tc->backbone = 0;
    else if (strcmp(val[O_BACKBONE], "sac") == 0) tc->backbone = 1;
    else return bad("%s: '%s' is not td3 or sac", FLAG(O_BACKBONE), val[O_BACKBONE]);
  }
  if (val[O_BATCH] && tcfg_parse_int(&tc->batch, val[O_BATCH], 2, 4096, P, FLAG(O_BATCH))) return -1;
  if (val[O_CRITIC_UPDATES] && tcfg_parse_int(&tc->critic_updates, val[O_CRITIC_UPDATES], 1, 64, P, FLAG(O_CRITIC_UPDATES)))
    return -1;
  if (val[O_SEED] && tcfg_parse_u64(&tc->seed, val[O_SEED], P, FLAG(O_SEED))) return -1;
  if (val[O_OUT] && tcfg_set_str(tc->out, sizeof tc->out, val[O_OUT], P, FLAG(O_OUT))) return -1;
  if (val[O_IL] && tcfg_set_str(tc->il, sizeof tc->il, val[O_IL], P, FLAG(O_IL))) return -1;
  if (val[O_IL]) snprintf(o->il, sizeof o->il, "%s", tc->il);
  /* Checked here, where the flag's source is known: later, ilfile_load only sees the path. */
  if (val[O_IL] && access(val[O_IL], R_OK) != 0)
    return bad("%s: cannot read '%s' HINT: train a policy with ibrl-il (or ibrl-train), or fix the path", FLAG(O_IL),
               val[O_IL]);
  if (!val[O_REPLAY]) return bad("%s%s: no replay shards (HINT: --replay host:port[,host:port...])", "--replay", "");
  if (snprintf(o->replay, sizeof o->replay, "%s", val[O_REPLAY]) >= (int)sizeof o->replay)
    return bad("%s: list too long%s", FLAG(O_REPLAY), "");
  if (val[O_PARAMS] && snprintf(o->params, sizeof o->params, "%s", val[O_PARAMS]) >= (int)sizeof o->params)
    return bad("%s: too long%s", FLAG(O_PARAMS), "");
  if (val[O_TOKEN] && snprintf(o->token, sizeof o->token, "%s", val[O_TOKEN]) >= (int)sizeof o->token)
    return bad("%s: too long%s", FLAG(O_TOKEN), "");
  if (!tc->out[0]) return bad("%s%s: no run directory (HINT: --out RUN_DIR)", "--out", "");
  if (val[O_OBS] && tcfg_parse_int(&o->obs_dim, val[O_OBS], 1, 1 << 20, P, FLAG(O_OBS))) return -1;
  if (val[O_ACT] && tcfg_parse_int(&o->act_dim, val[O_ACT], 1, 1 << 20, P, FLAG(O_ACT))) return -1;
  if ((o->obs_dim > 0) != (o->act_dim > 0))
    return bad("%s: give both --obs-dim and --act-dim, or neither%s", FLAG(o->obs_dim > 0 ? O_OBS : O_ACT), "");
  o->updates = 0;
  o->minutes = 0;
  o->publish_every = 100;
  o->check_every = 500;
  o->ckpt_every = 5000;
  o->log_every = 200;
  o->deadline_ms = 5000;
  o->max_message_mb = 16;
  o->wait_s = 300;
  if (val[O_UPDATES] && tcfg_parse_long(&o->updates, val[O_UPDATES], 0, (long)1e15, P, FLAG(O_UPDATES))) return -1;
  if (val[O_MINUTES] && parse_double(&o->minutes, val[O_MINUTES], 0, 1e7, FLAG(O_MINUTES))) return -1;
  if (val[O_PUBLISH] && tcfg_parse_long(&o->publish_every, val[O_PUBLISH], 0, (long)1e12, P, FLAG(O_PUBLISH))) return -1;
  if (val[O_CHECK] && tcfg_parse_long(&o->check_every, val[O_CHECK], 0, (long)1e12, P, FLAG(O_CHECK))) return -1;
  if (val[O_CKPT] && tcfg_parse_long(&o->ckpt_every, val[O_CKPT], 0, (long)1e12, P, FLAG(O_CKPT))) return -1;
  if (val[O_LOG] && tcfg_parse_long(&o->log_every, val[O_LOG], 1, (long)1e12, P, FLAG(O_LOG))) return -1;
  if (val[O_DEADLINE] && tcfg_parse_int(&o->deadline_ms, val[O_DEADLINE], 1, 3600000, P, FLAG(O_DEADLINE))) return -1;
  if (val[O_MAXMB] && tcfg_parse_int(&o->max_message_mb, val[O_MAXMB], 1, 2047, P, FLAG(O_MAXMB))) return -1;
  if (val[O_WAIT] && parse_double(&o->wait_s, val[O_WAIT], 0.1, 1e7, FLAG(O_WAIT))) return -1;
  if (val[O_THREADS] && tcfg_parse_int(&tc->threads, val[O_THREADS], 1, 8, P, FLAG(O_THREADS))) return -1;
  if (val[O_MATMUL] && tcfg_parse_matmul(&tc->matmul, val[O_MATMUL], P, FLAG(O_MATMUL))) return -1;
  o->resume = val[O_RESUME] && strcmp(val[O_RESUME], "0") != 0;
  o->quiet = val[O_QUIET] && strcmp(val[O_QUIET], "0") != 0;
  if (tcfg_resolve(tc) != IB_OK) return bad("%s%s", ib_errmsg(), "");
#undef FLAG
  return 0;
}

int main(int argc, char **argv) {
  nn_blas_autoselect(argv); /* before MPI_Init: may re-execute with the right OpenBLAS kernel */
  const char *val[O_COUNT] = {0};
  const char *src[O_COUNT];
  cli_env_layer(val, src, opts, O_HELP, "IBRL_LEARNER_");
  switch (cli_cmdline_layer(val, src, opts, O_HELP, ":", argc, argv, "ibrl-learner", is_first_rank())) {
  case CLI_HELP:
    if (is_first_rank()) usage(stdout);
    return 0;
  case CLI_BAD: return 2;
  default: break;
  }
  lrun_opts o;
  memset(&o, 0, sizeof o);
  tcfg tc;
  if (apply(val, src, &o, &tc) != 0) return 2;

  /* --threads (default 1) sizes the nn library's compute team and sets OpenBLAS to one thread
   * under it, whatever OPENBLAS_NUM_THREADS said, so processes sharing a host never
   * oversubscribe the cores by accident. */
  nn_set_threads(tc.threads);
  if (nn_set_matmul((nn_matmul)tc.matmul) != IB_OK) {
    fprintf(stderr, "ibrl-learner: --matmul %s: %s\n", nn_matmul_name((nn_matmul)tc.matmul), ib_errmsg());
    return 2;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  if (dist_init(&argc, &argv) != IB_OK) {
    fprintf(stderr, "ibrl-learner: %s\n", ib_errmsg());
    return 1;
  }
  log_set_role("learner", dist_rank());
  if (o.quiet) log_set_level(1);
  int code = lrun_main(&o, &tc, &g_stop);
  dist_finalize();
  return code;
}
