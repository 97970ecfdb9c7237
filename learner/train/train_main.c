/* train_main.c: `ibrl-train`, single-process IBRL / RLPD / RFT / BC training on one machine.
 *
 *   ibrl-train --task T --demos F --il il.ckpt --method M --env-steps N --seed S --out RUN_DIR
 *   ibrl-train --resume RUN_DIR [--env-steps N]
 *
 * Design. Flags are collected first and applied in two passes: defaults, then --preset, then
 * every other flag in command-line order, so an explicit flag always beats the preset whatever
 * their order. --resume takes every setting from RUN_DIR/config.bin (the exact struct the run
 * started with); only --env-steps, --stop-after, --threads, --matmul and --quiet may change. All the work
 * is in trainer.c. Exit codes: 0 success, 1 a failure during training, 2 bad usage or a setup
 * error (unknown task, missing file, mismatched shapes). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "cli.h"
#include "env.h"
#include "ib.h"
#include "nn.h"
#include "tcfg.h"
#include "trainer.h"

#define PROG "ibrl-train"

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " --task T --demos F --il il.ckpt --method M --env-steps N --seed S --out RUN_DIR [flags]\n"
          "       " PROG " --resume RUN_DIR [--env-steps N]\n"
          "\n"
          "One process holds the env, an in-process replay (ib_store) and the IBRL learner (ib_agent).\n"
          "Writes RUN_DIR/{config.json, metrics.csv, summary.json, curve.png} and checkpoints.\n"
          "\n"
          "  --task T            task (default nav2d); known:");
  for (const char *const *n = env_names(); *n; n++) fprintf(f, " %s", *n);
  fprintf(f,
          "\n"
          "  --demos F           demonstrations (robomimic-style HDF5, from ibrl-demos generate)\n"
          "  --il F              IL policy checkpoint (from ibrl-il train); needed by ibrl*, bc\n"
          "  --method M          ibrl | rlpd | rft | bc | ibrl-noact | ibrl-noboot | ibrl-neither (default ibrl)\n"
          "  --env-steps N       env steps of the RL phase, warm-up excluded (default 20000)\n"
          "  --seed S            seed of every random stream (default 1)\n"
          "  --out RUN_DIR       run directory (created; must not hold a run)\n"
          "  --preset P          settings bundle, applied before the other flags (the defaults shown\n"
          "                      here are those without a preset):\n");
  for (const char *const *n = tcfg_preset_names(); *n; n++) fprintf(f, "                        %-16s %s\n", *n, tcfg_preset_about(*n));
  fprintf(f,
          "  --backbone B        td3 | sac (default td3)\n"
          "  --demo-ratio R      demo share of every batch in [0,1], or -1 uniform over demos+online\n"
          "                      (default: 0.5 for rlpd, -1 otherwise)\n"
          "  --chunk K           actions per chunk (default 1)\n"
          "  --n-stack S         frames per observation (default 1)\n"
          "  --nstep N           chunk transitions per n-step return (default 3)\n"
          "  --gamma G           discount per env step (default 0.99)\n"
          "  --batch B           batch rows (default 128)\n"
          "  --update-every U    chunk transitions between learning steps (default 2)\n"
          "  --critic-updates G  critic updates per learning step, then 1 actor update (default 2)\n"
          "  --hidden H          actor hidden width (default 256); --layers L its hidden layers (default 2)\n"
          "  --critic-hidden H   critic hidden width (default 256); --critic-layers L (default 2);\n"
          "                      --heads E critics in the ensemble (default 5)\n"
          "  --lr X              Adam learning rate of actor and critic (default 3e-4)\n"
          "  --tau X             target EMA rate (default 0.01)\n"
          "  --dropout P         actor dropout (default 0.5 for ibrl*, 0 otherwise)\n"
          "  --soft | --greedy   IBRL selection (default greedy); --beta X soft temperature (10)\n"
          "  --warmup N          warm-up episodes (default 10)\n"
          "  --replay N          online replay capacity in transitions (default 200000)\n"
          "  --max-demos N       use the first N demos (default all)\n"
          "  --obs-keys K        demo obs keys in order (default: the task's)\n"
          "  --horizon H         episode time limit in env steps (default the task's)\n"
          "  --eval-every N      env steps between evaluations (default 2000)\n"
          "  --eval-episodes N   episodes per evaluation (default 20)\n"
          "  --eval-mode M       policy the evaluations score: auto (default: ibrl and ibrl-noboot the IBRL\n"
          "                      hybrid, other RL methods the RL actor, bc the IL policy), il, rl, ibrl or\n"
          "                      greedy (the hybrid with greedy selection); il/ibrl/greedy need an ibrl* method\n"
          "  --ckpt-every N      env steps between checkpoints, taken at episode ends (default 5000)\n"
          "  --rft-pretrain N    RFT: BC pretraining steps of the actor (default 2000)\n"
          "  --stop-after N      stop at the first checkpoint at or after N env steps (to test --resume)\n"
          "  --resume RUN_DIR    continue the run in RUN_DIR from its last checkpoint\n"
          "  --threads N         compute threads of the nn library, 1..8 (default 1)\n"
          "  --matmul P          matrix-product precision: fp32 (default), bf16x3 (near-fp32 from three bf16\n"
          "                      products; needs AMX-BF16), bf16 (fastest, 8-bit mantissa inputs) or auto\n"
          "                      (bf16x3 with AMX-BF16, else fp32; paper-state's default)\n"
          "  --quiet             no progress lines\n"
          "  -h, --help          this text\n"
          "\n"
          "Exit codes: 0 success, 1 training failed, 2 bad usage or setup error.\n");
}

enum {
  O_TASK = 256, O_DEMOS, O_IL, O_METHOD, O_STEPS, O_SEED, O_OUT, O_PRESET, O_BACKBONE, O_RATIO, O_CHUNK, O_STACK,
  O_NSTEP, O_GAMMA, O_BATCH, O_UEVERY, O_CUPD, O_HIDDEN, O_LAYERS, O_CHIDDEN, O_CLAYERS, O_HEADS, O_LR, O_TAU,
  O_DROPOUT, O_SOFT, O_GREEDY, O_BETA, O_WARMUP, O_REPLAY, O_MAXDEMOS, O_OBSKEYS, O_HORIZON, O_EEVERY, O_EEPIS,
  O_CKPT, O_RFTPRE, O_STOP, O_RESUME, O_THREADS, O_QUIET, O_EVALMODE, O_MATMUL,
};

static const struct option opts[] = {
    {"task", required_argument, 0, O_TASK},         {"demos", required_argument, 0, O_DEMOS},
    {"il", required_argument, 0, O_IL},             {"method", required_argument, 0, O_METHOD},
    {"env-steps", required_argument, 0, O_STEPS},   {"seed", required_argument, 0, O_SEED},
    {"out", required_argument, 0, O_OUT},           {"preset", required_argument, 0, O_PRESET},
    {"backbone", required_argument, 0, O_BACKBONE}, {"demo-ratio", required_argument, 0, O_RATIO},
    {"chunk", required_argument, 0, O_CHUNK},       {"n-stack", required_argument, 0, O_STACK},
    {"nstep", required_argument, 0, O_NSTEP},       {"gamma", required_argument, 0, O_GAMMA},
    {"batch", required_argument, 0, O_BATCH},       {"update-every", required_argument, 0, O_UEVERY},
    {"critic-updates", required_argument, 0, O_CUPD}, {"hidden", required_argument, 0, O_HIDDEN},
    {"layers", required_argument, 0, O_LAYERS},     {"critic-hidden", required_argument, 0, O_CHIDDEN},
    {"critic-layers", required_argument, 0, O_CLAYERS}, {"heads", required_argument, 0, O_HEADS},
    {"lr", required_argument, 0, O_LR},             {"tau", required_argument, 0, O_TAU},
    {"dropout", required_argument, 0, O_DROPOUT},   {"soft", no_argument, 0, O_SOFT},
    {"greedy", no_argument, 0, O_GREEDY},           {"beta", required_argument, 0, O_BETA},
    {"warmup", required_argument, 0, O_WARMUP},     {"replay", required_argument, 0, O_REPLAY},
    {"max-demos", required_argument, 0, O_MAXDEMOS}, {"obs-keys", required_argument, 0, O_OBSKEYS},
    {"horizon", required_argument, 0, O_HORIZON},   {"eval-every", required_argument, 0, O_EEVERY},
    {"eval-episodes", required_argument, 0, O_EEPIS}, {"ckpt-every", required_argument, 0, O_CKPT},
    {"rft-pretrain", required_argument, 0, O_RFTPRE}, {"stop-after", required_argument, 0, O_STOP},
    {"resume", required_argument, 0, O_RESUME},     {"threads", required_argument, 0, O_THREADS},
    {"quiet", no_argument, 0, O_QUIET},             {"help", no_argument, 0, 'h'},
    {"eval-mode", required_argument, 0, O_EVALMODE}, {"matmul", required_argument, 0, O_MATMUL},
    {0, 0, 0, 0},
};

/* Applies one flag to c. Returns 0 or -1 (message printed). */
static int apply(tcfg *c, int o, const char *a) {
  const long BIG = 1000000000L;
  switch (o) {
  case O_TASK: return tcfg_set_str(c->task, sizeof c->task, a, PROG, "--task");
  case O_DEMOS: return tcfg_set_str(c->demos, sizeof c->demos, a, PROG, "--demos");
  case O_IL: return tcfg_set_str(c->il, sizeof c->il, a, PROG, "--il");
  case O_OUT: return tcfg_set_str(c->out, sizeof c->out, a, PROG, "--out");
  case O_OBSKEYS: return tcfg_set_str(c->obs_keys, sizeof c->obs_keys, a, PROG, "--obs-keys");
  case O_METHOD: {
    int m = tcfg_method_parse(a);
    if (m < 0) {
      fprintf(stderr, PROG ": --method: %s\n", ib_errmsg());
      return -1;
    }
    c->method = m;
    return 0;
  }
  case O_BACKBONE:
    if (!strcmp(a, "td3")) c->backbone = 0;
    else if (!strcmp(a, "sac")) c->backbone = 1;
    else {
      fprintf(stderr, PROG ": --backbone '%s' is not td3 or sac\n", a);
      return -1;
    }
    return 0;
  case O_STEPS: return tcfg_parse_long(&c->env_steps, a, 1, 100 * BIG, PROG, "--env-steps");
  case O_SEED: return tcfg_parse_u64(&c->seed, a, PROG, "--seed");
  case O_RATIO:
    if (!strcmp(a, "-1")) {
      c->demo_ratio = -1.0f;
      return 0;
    }
    return tcfg_parse_float(&c->demo_ratio, a, 0.0f, 1.0f, PROG, "--demo-ratio");
  case O_CHUNK: return tcfg_parse_int(&c->chunk, a, 1, 64, PROG, "--chunk");
  case O_STACK: return tcfg_parse_int(&c->n_stack, a, 1, 16, PROG, "--n-stack");
  case O_NSTEP: return tcfg_parse_int(&c->nstep, a, 1, 16, PROG, "--nstep");
  case O_GAMMA: return tcfg_parse_float(&c->gamma, a, 1e-6f, 1.0f, PROG, "--gamma");
  case O_BATCH: return tcfg_parse_int(&c->batch, a, 2, 4096, PROG, "--batch");
  case O_UEVERY: return tcfg_parse_int(&c->update_every, a, 1, 100000, PROG, "--update-every");
  case O_CUPD: return tcfg_parse_int(&c->critic_updates, a, 1, 64, PROG, "--critic-updates");
  case O_HIDDEN: return tcfg_parse_int(&c->actor_hidden, a, 1, 8192, PROG, "--hidden");
  case O_LAYERS: return tcfg_parse_int(&c->actor_layers, a, 1, 8, PROG, "--layers");
  case O_CHIDDEN: return tcfg_parse_int(&c->critic_hidden, a, 1, 8192, PROG, "--critic-hidden");
  case O_CLAYERS: return tcfg_parse_int(&c->critic_layers, a, 1, 8, PROG, "--critic-layers");
  case O_HEADS: return tcfg_parse_int(&c->critic_heads, a, 2, 16, PROG, "--heads");
  case O_LR: return tcfg_parse_float(&c->lr, a, 1e-9f, 1.0f, PROG, "--lr");
  case O_TAU: return tcfg_parse_float(&c->tau, a, 1e-6f, 1.0f, PROG, "--tau");
  case O_DROPOUT: return tcfg_parse_float(&c->actor_dropout, a, 0.0f, 0.95f, PROG, "--dropout");
  case O_SOFT: c->soft = 1; return 0;
  case O_GREEDY: c->soft = 0; return 0;
  case O_BETA: return tcfg_parse_float(&c->beta, a, 1e-6f, 1e6f, PROG, "--beta");
  case O_WARMUP: return tcfg_parse_int(&c->warmup_episodes, a, 0, 1000000, PROG, "--warmup");
  case O_REPLAY: return tcfg_parse_long(&c->replay_capacity, a, 1000, BIG, PROG, "--replay");
  case O_MAXDEMOS: return tcfg_parse_int(&c->max_demos, a, 0, 1000000, PROG, "--max-demos");
  case O_HORIZON: return tcfg_parse_int(&c->horizon, a, 0, 1000000, PROG, "--horizon");
  case O_EEVERY: return tcfg_parse_long(&c->eval_every, a, 1, 100 * BIG, PROG, "--eval-every");
  case O_EEPIS: return tcfg_parse_int(&c->eval_episodes, a, 1, 4096, PROG, "--eval-episodes");
  case O_CKPT: return tcfg_parse_long(&c->ckpt_every, a, 1, 100 * BIG, PROG, "--ckpt-every");
  case O_RFTPRE: return tcfg_parse_long(&c->rft_pretrain_steps, a, 0, BIG, PROG, "--rft-pretrain");
  case O_STOP: return tcfg_parse_long(&c->stop_after, a, 1, 100 * BIG, PROG, "--stop-after");
  case O_THREADS: return tcfg_parse_int(&c->threads, a, 1, 8, PROG, "--threads");
  case O_QUIET: c->quiet = 1; return 0;
  case O_EVALMODE:
    if (tcfg_eval_mode_parse(&c->eval_mode, a) == IB_OK) return 0;
    fprintf(stderr, PROG ": --eval-mode: %s\n", ib_errmsg());
    return -1;
  case O_MATMUL: return tcfg_parse_matmul(&c->matmul, a, PROG, "--matmul");
  default: IB_CHECK(0); return -1;
  }
}

#define MAX_FLAGS 256

int main(int argc, char **argv) {
  nn_blas_autoselect(argv); /* may re-execute with the right OpenBLAS kernel for this CPU */
  int flag_o[MAX_FLAGS];
  const char *flag_a[MAX_FLAGS];
  int nflags = 0, o;
  const char *preset = NULL, *resume = NULL;
  opterr = 0;
  while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (o == 'h') {
      usage(stdout);
      return 0;
    }
    if (o == '?' || o == ':') {
      char why[256];
      fprintf(stderr, PROG ": %s (HINT: " PROG " --help lists the flags)\n",
              cli_bad_option_msg(why, sizeof why, o, argv[optind - 1], opts));
      return 2;
    }
    if (o == O_PRESET) preset = optarg;
    else if (o == O_RESUME) resume = optarg;
    else {
      if (nflags == MAX_FLAGS) {
        fprintf(stderr, PROG ": too many flags\n");
        return 2;
      }
      flag_o[nflags] = o;
      flag_a[nflags++] = optarg;
    }
  }
  if (optind < argc) {
    fprintf(stderr, PROG ": unexpected argument '%s' (HINT: " PROG " --help)\n", argv[optind]);
    return 2;
  }

  tcfg c;
  if (resume) {
    if (preset) {
      fprintf(stderr, PROG ": --preset cannot be combined with --resume (the run's settings are in %s/config.bin)\n", resume);
      return 2;
    }
    if (trainer_config_load(&c, resume) != IB_OK) {
      fprintf(stderr, PROG ": --resume %s: %s\n", resume, ib_errmsg());
      return 2;
    }
    c.stop_after = 0;
    for (int i = 0; i < nflags; i++) {
      int f = flag_o[i];
      if (f != O_STEPS && f != O_STOP && f != O_THREADS && f != O_QUIET && f != O_MATMUL) {
        fprintf(stderr,
                PROG ": with --resume only --env-steps, --stop-after, --threads, --matmul and --quiet may be given "
                "(HINT: the other settings come from %s/config.bin)\n", resume);
        return 2;
      }
      if (apply(&c, f, flag_a[i])) return 2;
    }
    tcfg_set_str(c.out, sizeof c.out, resume, PROG, "--resume");
  } else {
    if (nflags == 0 && !preset) {
      usage(stderr);
      return 2;
    }
    tcfg_defaults(&c);
    if (preset && tcfg_preset_apply(&c, preset) != IB_OK) {
      fprintf(stderr, PROG ": --preset: %s\n", ib_errmsg());
      return 2;
    }
    for (int i = 0; i < nflags; i++)
      if (apply(&c, flag_o[i], flag_a[i])) return 2;
  }
  if (tcfg_resolve(&c) != IB_OK) {
    fprintf(stderr, PROG ": %s\n", ib_errmsg());
    return 2;
  }
  nn_set_threads(c.threads);
  if (nn_set_matmul((nn_matmul)c.matmul) != IB_OK) {
    fprintf(stderr, PROG ": --matmul %s: %s\n", nn_matmul_name((nn_matmul)c.matmul), ib_errmsg());
    return 2;
  }

  trainer *t;
  int rc = trainer_open(&t, &c, resume != NULL);
  if (rc != IB_OK) {
    fprintf(stderr, PROG ": %s\n", ib_errmsg());
    return 2;
  }
  int stopped = 0;
  rc = trainer_run(t, &stopped);
  trainer_close(t);
  if (rc != IB_OK) {
    fprintf(stderr, PROG ": training failed: %s: %s\n", ib_strerror(rc), ib_errmsg());
    return 1;
  }
  if (stopped) fprintf(stderr, PROG ": stopped after a checkpoint as asked; continue with --resume %s\n", c.out);
  return 0;
}
