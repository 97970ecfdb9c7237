/* il_main.c: `ibrl-il`, train an imitation (IL) policy on demonstrations and evaluate it.
 *
 *   ibrl-il train --demos F --arch bc|cvae --chunk K --out il.ckpt [flags]
 *   ibrl-il eval --policy il.ckpt --task T --episodes N [flags]
 *
 * Design. train: every step samples B (episode, step) pairs uniformly over all demo steps with
 * replacement (as IBRL's BC dataset; demos are NOT cut at success for BC, reference 9.1) and
 * builds the chunked, frame-stacked (obs, action chunk) rows with demo_transition, then takes
 * one il_train_step. Batches come from a named rng stream of --seed, so training is
 * reproducible. The checkpoint is il_save's files plus a meta file (ilfile.h) that also records
 * how the policy was trained (steps, batch, lr, seed, demo file), which ibrl-train, ibrl-learner
 * and the actors' evaluator copy into their config.json. eval: rolls out
 * the policy deterministically (dropout off, z = 0) on N seeded episodes in a batch (evalr.h)
 * with the same episode seeds ibrl-train uses for --seed, and prints the success rate.
 * Exit codes: 0 success, 1 a runtime error, 2 bad usage or a setup error. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "cli.h"
#include "demo.h"
#include "env.h"
#include "evalr.h"
#include "ib.h"
#include "il.h"
#include "ilfile.h"
#include "log.h"
#include "nn.h"
#include "rng.h"
#include "tcfg.h"

#define PROG "ibrl-il"

static void usage(FILE *f) {
  fprintf(f, "usage: " PROG " train --demos F --arch bc|cvae --chunk K --out il.ckpt [flags]\n"
             "       " PROG " eval --policy il.ckpt --task T --episodes N [flags]\n"
             "\n"
             PROG " <command> --help shows the command's flags.\n"
             "exit codes: 0 done, 1 a runtime error (training or evaluation failed, a write failed),\n"
             "2 bad usage or setup (bad flags, a missing or malformed demo file or checkpoint, an\n"
             "unknown task, mismatched shapes).\n");
}

static void usage_train(FILE *f) {
  fprintf(f,
          "usage: " PROG " train --demos F --arch bc|cvae --chunk K --out il.ckpt [flags]\n"
          "\n"
          "  --demos F         demonstrations (robomimic-style HDF5)\n"
          "  --arch A          bc (MLP, MSE on chunks) or cvae (chunk CVAE) (default bc)\n"
          "  --chunk K         actions per chunk (default 1)\n"
          "  --n-stack S       frames per observation (default 1)\n"
          "  --out F           checkpoint path (F and F.meta; F.enc for cvae)\n"
          "  --task T          task the policy is for: its obs keys order the demo data (default: the\n"
          "                    demo file's env_name, else the file's key order)\n"
          "  --obs-keys K      demo obs keys in order (overrides --task's)\n"
          "  --preset P        IL sizes of a preset (nav2d-quick, nav2d, metaworld-state, paper-state)\n"
          "  --steps N         training steps (default 3000)\n"
          "  --batch B         batch rows (default 128)\n"
          "  --lr X            Adam learning rate (default 1e-3)\n"
          "  --hidden H        hidden width (default 256); --layers L hidden layers (default 2)\n"
          "  --dropout P       dropout after each hidden layer (default 0.5)\n"
          "  --latent Z        cvae latent size (default 8); --kl-weight W (default 0.01)\n"
          "  --max-demos N     use the first N demos (default all)\n"
          "  --seed S          seed (default 1)\n"
          "  --threads N       compute threads of the nn library, 1..8 (default 1)\n"
          "  --quiet           no progress lines\n"
          "  -h, --help        this text\n"
          "exit codes: 0 done, 1 training or writing the checkpoint failed, 2 bad usage or setup.\n");
}

static void usage_eval(FILE *f) {
  fprintf(f,
          "usage: " PROG " eval --policy il.ckpt --task T --episodes N [flags]\n"
          "\n"
          "  --policy F        IL checkpoint from " PROG " train\n"
          "  --task T          task (default: the one in the checkpoint's meta)\n"
          "  --episodes N      seeded episodes (default 50)\n"
          "  --seed S          selects the episode layouts, as ibrl-train --seed (default 1)\n"
          "  --horizon H       time limit in env steps (default the task's)\n"
          "  --threads N       compute threads of the nn library, 1..8 (default 1)\n"
          "  -h, --help        this text\n"
          "exit codes: 0 done, 1 the evaluation failed, 2 bad usage or setup.\n");
}

/* A flag getopt_long refused (c is '?' or ':'): unknown, without its value, or with a value it
 * does not take. */
static int bad_flag(int c, char **argv, const char *cmd, const struct option *opts) {
  char why[256];
  fprintf(stderr, PROG " %s: %s (HINT: " PROG " %s --help)\n", cmd,
          cli_bad_option_msg(why, sizeof why, c, argv[optind - 1], opts), cmd);
  return 2;
}

/* ---- train ---- */

enum { T_DEMOS = 256, T_ARCH, T_CHUNK, T_STACK, T_OUT, T_TASK, T_KEYS, T_PRESET, T_STEPS, T_BATCH, T_LR, T_HIDDEN,
       T_LAYERS, T_DROPOUT, T_LATENT, T_KL, T_MAXD, T_SEED, T_THREADS, T_QUIET };

static int cmd_train(int argc, char **argv) {
  static const struct option o[] = {
      {"demos", 1, 0, T_DEMOS},   {"arch", 1, 0, T_ARCH},       {"chunk", 1, 0, T_CHUNK},   {"n-stack", 1, 0, T_STACK},
      {"out", 1, 0, T_OUT},       {"task", 1, 0, T_TASK},       {"obs-keys", 1, 0, T_KEYS}, {"preset", 1, 0, T_PRESET},
      {"steps", 1, 0, T_STEPS},   {"batch", 1, 0, T_BATCH},     {"lr", 1, 0, T_LR},         {"hidden", 1, 0, T_HIDDEN},
      {"layers", 1, 0, T_LAYERS}, {"dropout", 1, 0, T_DROPOUT}, {"latent", 1, 0, T_LATENT}, {"kl-weight", 1, 0, T_KL},
      {"max-demos", 1, 0, T_MAXD}, {"seed", 1, 0, T_SEED},      {"threads", 1, 0, T_THREADS}, {"quiet", 0, 0, T_QUIET},
      {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
  tcfg c;
  tcfg_defaults(&c);
  c.task[0] = 0;
  /* the preset first, wherever it is on the line, so explicit flags win */
  for (int i = 1; i < argc; i++) {
    const char *p = NULL;
    if (!strcmp(argv[i], "--preset") && i + 1 < argc) p = argv[i + 1];
    else if (!strncmp(argv[i], "--preset=", 9)) p = argv[i] + 9;
    if (p) {
      char task[TCFG_STR];
      snprintf(task, sizeof task, "%s", c.task);
      if (tcfg_preset_apply(&c, p) != IB_OK) {
        fprintf(stderr, PROG " train: --preset: %s\n", ib_errmsg());
        return 2;
      }
      snprintf(c.task, sizeof c.task, "%s", task); /* the task comes from --task or the demos */
    }
  }
  int ch, quiet = 0;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":h", o, NULL)) != -1) {
    int bad = 0;
    switch (ch) {
    case 'h': usage_train(stdout); return 0;
    case T_DEMOS: bad = tcfg_set_str(c.demos, sizeof c.demos, optarg, PROG, "--demos"); break;
    case T_ARCH:
      if (!strcmp(optarg, "bc")) c.il_arch = 0;
      else if (!strcmp(optarg, "cvae")) c.il_arch = 1;
      else {
        fprintf(stderr, PROG " train: --arch '%s' is not bc or cvae\n", optarg);
        return 2;
      }
      break;
    case T_CHUNK: bad = tcfg_parse_int(&c.chunk, optarg, 1, 64, PROG, "--chunk"); break;
    case T_STACK: bad = tcfg_parse_int(&c.n_stack, optarg, 1, 16, PROG, "--n-stack"); break;
    case T_OUT: bad = tcfg_set_str(c.out, sizeof c.out, optarg, PROG, "--out"); break;
    case T_TASK: bad = tcfg_set_str(c.task, sizeof c.task, optarg, PROG, "--task"); break;
    case T_KEYS: bad = tcfg_set_str(c.obs_keys, sizeof c.obs_keys, optarg, PROG, "--obs-keys"); break;
    case T_PRESET: break;
    case T_STEPS: bad = tcfg_parse_long(&c.il_steps, optarg, 1, 100000000L, PROG, "--steps"); break;
    case T_BATCH: bad = tcfg_parse_int(&c.il_batch, optarg, 1, 4096, PROG, "--batch"); break;
    case T_LR: bad = tcfg_parse_float(&c.il_lr, optarg, 1e-9f, 1.0f, PROG, "--lr"); break;
    case T_HIDDEN: bad = tcfg_parse_int(&c.il_hidden, optarg, 1, 8192, PROG, "--hidden"); break;
    case T_LAYERS: bad = tcfg_parse_int(&c.il_layers, optarg, 1, 8, PROG, "--layers"); break;
    case T_DROPOUT: bad = tcfg_parse_float(&c.il_dropout, optarg, 0.0f, 0.95f, PROG, "--dropout"); break;
    case T_LATENT: bad = tcfg_parse_int(&c.il_latent, optarg, 1, 1024, PROG, "--latent"); break;
    case T_KL: bad = tcfg_parse_float(&c.il_kl_weight, optarg, 0.0f, 1e6f, PROG, "--kl-weight"); break;
    case T_MAXD: bad = tcfg_parse_int(&c.max_demos, optarg, 0, 1000000, PROG, "--max-demos"); break;
    case T_SEED: bad = tcfg_parse_u64(&c.seed, optarg, PROG, "--seed"); break;
    case T_THREADS: bad = tcfg_parse_int(&c.threads, optarg, 1, 8, PROG, "--threads"); break;
    case T_QUIET: quiet = 1; break;
    default: return bad_flag(ch, argv, "train", o);
    }
    if (bad) return 2;
  }
  if (optind < argc) {
    fprintf(stderr, PROG " train: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (!c.demos[0] || !c.out[0]) {
    fprintf(stderr, PROG " train: --demos and --out are required (HINT: " PROG " train --help)\n");
    return 2;
  }
  nn_set_threads(c.threads);

  /* Obs keys: explicit, else the task's (so rows match what the env produces), else the file's. */
  int rc;
  env *e = NULL;
  char keys[TCFG_STR] = "";
  if (!c.obs_keys[0] && !c.task[0]) {
    /* a first look at the file for its env_name */
    demo_set peek = {0};
    demo_load_opts po = {0};
    po.max_episodes = 1;
    if ((rc = demo_load(&peek, c.demos, &po)) != IB_OK) {
      fprintf(stderr, PROG " train: %s\n", ib_errmsg());
      return 2;
    }
    snprintf(c.task, sizeof c.task, "%s", peek.env_name);
    demo_set_free(&peek);
  }
  if (!c.obs_keys[0] && c.task[0]) {
    env_config ec = {0};
    if ((rc = env_create(c.task, &ec, &e)) != IB_OK) {
      fprintf(stderr, PROG " train: %s\n", ib_errmsg());
      return 2;
    }
    size_t n = 0;
    for (int i = 0; i < e->n_obs_keys; i++)
      n += (size_t)snprintf(keys + n, sizeof keys - n, "%s%s", i ? "," : "", e->obs_keys[i].name);
    snprintf(c.obs_keys, sizeof c.obs_keys, "%s", keys);
  }
  demo_set ds = {0};
  demo_load_opts lo = {0};
  lo.obs_keys = c.obs_keys[0] ? c.obs_keys : NULL;
  lo.max_episodes = c.max_demos;
  if ((rc = demo_load(&ds, c.demos, &lo)) != IB_OK) {
    fprintf(stderr, PROG " train: %s\n", ib_errmsg());
    env_destroy(e);
    return 2;
  }
  if (e && (ds.obs_dim != e->obs_dim || ds.act_dim != e->act_dim)) {
    fprintf(stderr, PROG " train: demos %s have obs %d / action %d floats but task %s has %d / %d (HINT: demos of another task?)\n",
            c.demos, ds.obs_dim, ds.act_dim, c.task, e->obs_dim, e->act_dim);
    demo_set_free(&ds);
    env_destroy(e);
    return 2;
  }
  env_destroy(e);
  if (!c.obs_keys[0]) {
    size_t n = 0;
    for (int i = 0; i < ds.n_keys; i++) n += (size_t)snprintf(keys + n, sizeof keys - n, "%s%s", i ? "," : "", ds.keys[i].name);
    snprintf(c.obs_keys, sizeof c.obs_keys, "%s", keys);
  }

  il_config ic = il_config_default();
  ic.kind = c.il_arch ? IL_CVAE : IL_BC;
  ic.obs_dim = ds.obs_dim * c.n_stack;
  ic.act_dim = ds.act_dim * c.chunk;
  ic.n_layers = c.il_layers;
  ic.hidden = c.il_hidden;
  ic.dropout = c.il_dropout;
  ic.latent = c.il_latent;
  ic.kl_weight = c.il_kl_weight;
  ic.lr = c.il_lr;
  ic.max_batch = c.il_batch;
  ic.seed = c.seed;
  il_policy p;
  if ((rc = il_init(&p, &ic)) != IB_OK) {
    fprintf(stderr, PROG " train: %s\n", ib_errmsg());
    demo_set_free(&ds);
    return 2;
  }
  int B = c.il_batch;
  float *obs = ib_xmalloc((size_t)B * ic.obs_dim * sizeof(float));
  float *act = ib_xmalloc((size_t)B * ic.act_dim * sizeof(float));
  float *scratch = ib_xmalloc((size_t)ic.obs_dim * sizeof(float));
  long *start = ib_xmalloc(((size_t)ds.n_episodes + 1) * sizeof(long));
  start[0] = 0;
  for (int i = 0; i < ds.n_episodes; i++) start[i + 1] = start[i] + ds.episodes[i].T;
  rng r;
  rng_seed(&r, c.seed, "il", 0, "batches");
  if (!quiet)
    log_info("%s: %d demos, %ld steps, obs %d x stack %d, action %d x chunk %d, %s %dx%d, %ld steps of batch %d",
             c.demos, ds.n_episodes, ds.total_steps, ds.obs_dim, c.n_stack, ds.act_dim, c.chunk, c.il_arch ? "cvae" : "bc",
             c.il_layers, c.il_hidden, c.il_steps, B);
  /* Progress lines report means over the window since the previous line (one step's loss is
   * noisy); for the CVAE the recon and kl parts are window means too, so loss = recon +
   * kl_weight * kl holds for the printed numbers. */
  double t0 = ib_now_s(), loss_sum = 0, recon_sum = 0, kl_sum = 0;
  long loss_n = 0, every = IB_MAX(1, c.il_steps / 10);
  rc = IB_OK;
  for (long step = 0; step < c.il_steps; step++) {
    for (int b = 0; b < B; b++) {
      long g = (long)rng_below(&r, (uint32_t)ds.total_steps);
      int ep = 0;
      while (start[ep + 1] <= g) ep++;
      float rew, disc;
      demo_transition(obs + (size_t)b * ic.obs_dim, act + (size_t)b * ic.act_dim, &rew, &disc, scratch, &ds, ep,
                      (int)(g - start[ep]), c.chunk, c.n_stack, 0.99f);
    }
    if ((rc = il_train_step(&p, obs, act, B)) != IB_OK) {
      fprintf(stderr, PROG " train: step %ld: %s: %s\n", step, ib_strerror(rc), ib_errmsg());
      break;
    }
    loss_sum += p.stats.loss;
    recon_sum += p.stats.recon;
    kl_sum += p.stats.kl;
    loss_n++;
    if (!quiet && ((step + 1) % every == 0 || step + 1 == c.il_steps)) {
      double sps = (step + 1) / (ib_now_s() - t0);
      if (ic.kind == IL_CVAE)
        log_info("step %ld/%ld | mean of the last %ld steps: loss %.5f = recon %.5f + kl_weight %g x kl %.5f | "
                 "%.0f steps/s", step + 1, c.il_steps, loss_n, loss_sum / loss_n, recon_sum / loss_n,
                 (double)ic.kl_weight, kl_sum / loss_n, sps);
      else
        log_info("step %ld/%ld | loss %.5f (mean of the last %ld steps) | %.0f steps/s", step + 1, c.il_steps,
                 loss_sum / loss_n, loss_n, sps);
      loss_sum = recon_sum = kl_sum = 0;
      loss_n = 0;
    }
  }
  if (rc == IB_OK) {
    ilfile_meta m;
    memset(&m, 0, sizeof m);
    m.il = p.cfg;
    m.frame_dim = ds.obs_dim;
    m.step_dim = ds.act_dim;
    m.chunk = c.chunk;
    m.n_stack = c.n_stack;
    snprintf(m.task, sizeof m.task, "%.127s", c.task); /* registry names are short; the bound keeps -Wformat-truncation quiet */
    snprintf(m.obs_keys, sizeof m.obs_keys, "%s", c.obs_keys);
    /* the training record: a run that loads this policy copies it into its config.json */
    m.trained = 1;
    m.steps = c.il_steps;
    m.batch = c.il_batch;
    m.lr = c.il_lr;
    m.seed = c.seed;
    m.max_demos = c.max_demos;
    char *abs = realpath(c.demos, NULL); /* exists: demo_load read it */
    snprintf(m.demos, sizeof m.demos, "%s", abs && strlen(abs) < sizeof m.demos ? abs : c.demos);
    free(abs);
    if ((rc = ilfile_save(&p, &m, c.out)) != IB_OK) fprintf(stderr, PROG " train: %s\n", ib_errmsg());
    else if (!quiet) log_info("wrote %s (+ %s.meta)", c.out, c.out);
  }
  free(obs);
  free(act);
  free(scratch);
  free(start);
  il_free(&p);
  demo_set_free(&ds);
  return rc == IB_OK ? 0 : 1;
}

/* ---- eval ---- */

enum { E_POLICY = 256, E_TASK, E_EPIS, E_SEED, E_HORIZON, E_THREADS };

static int act_il(void *ctx, float *act, const float *obs, int B) {
  il_predict(ctx, act, obs, B);
  return IB_OK;
}

static int cmd_eval(int argc, char **argv) {
  static const struct option o[] = {{"policy", 1, 0, E_POLICY}, {"task", 1, 0, E_TASK},     {"episodes", 1, 0, E_EPIS},
                                    {"seed", 1, 0, E_SEED},     {"horizon", 1, 0, E_HORIZON}, {"threads", 1, 0, E_THREADS},
                                    {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
  const char *policy = NULL, *task = NULL;
  int episodes = 50, horizon = 0, threads = 1, ch;
  uint64_t seed = 1;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":h", o, NULL)) != -1) {
    int bad = 0;
    switch (ch) {
    case 'h': usage_eval(stdout); return 0;
    case E_POLICY: policy = optarg; break;
    case E_TASK: task = optarg; break;
    case E_EPIS: bad = tcfg_parse_int(&episodes, optarg, 1, 4096, PROG, "--episodes"); break;
    case E_SEED: bad = tcfg_parse_u64(&seed, optarg, PROG, "--seed"); break;
    case E_HORIZON: bad = tcfg_parse_int(&horizon, optarg, 0, 1000000, PROG, "--horizon"); break;
    case E_THREADS: bad = tcfg_parse_int(&threads, optarg, 1, 8, PROG, "--threads"); break;
    default: return bad_flag(ch, argv, "eval", o);
    }
    if (bad) return 2;
  }
  if (optind < argc) {
    fprintf(stderr, PROG " eval: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (!policy) {
    fprintf(stderr, PROG " eval: --policy is required (HINT: " PROG " eval --help)\n");
    return 2;
  }
  nn_set_threads(threads);
  il_policy p;
  ilfile_meta m;
  int rc = ilfile_load(&p, &m, policy, episodes);
  if (rc != IB_OK) {
    fprintf(stderr, PROG " eval: %s\n", ib_errmsg());
    return 2;
  }
  if (!task) task = m.task;
  if (!task[0]) {
    fprintf(stderr, PROG " eval: the checkpoint names no task; pass --task\n");
    il_free(&p);
    return 2;
  }
  env_config ec = {0};
  ec.horizon = horizon;
  chunk_config cc = chunk_config_default();
  cc.k = m.chunk;
  cc.n_stack = m.n_stack;
  cc.horizon = horizon;
  evalr ev;
  if ((rc = evalr_init(&ev, task, &ec, &cc, episodes)) != IB_OK) {
    fprintf(stderr, PROG " eval: %s\n", ib_errmsg());
    il_free(&p);
    return 2;
  }
  if (ev.obs_dim != m.il.obs_dim || ev.act_dim != m.il.act_dim) {
    fprintf(stderr, PROG " eval: policy %s takes obs %d / gives %d floats but task %s has %d / %d (HINT: a policy of another task?)\n",
            policy, m.il.obs_dim, m.il.act_dim, task, ev.obs_dim, ev.act_dim);
    evalr_free(&ev);
    il_free(&p);
    return 2;
  }
  double succ = 0;
  double t0 = ib_now_s();
  rc = evalr_run(&ev, &succ, evalr_seed0(seed), act_il, &p);
  if (rc != IB_OK) fprintf(stderr, PROG " eval: %s\n", ib_errmsg());
  else
    printf("success rate %.3f (%d/%d episodes, task %s, %ld env steps, %.1f s)\n", succ, (int)lround(succ * episodes), episodes,
           task, ev.env_steps, ib_now_s() - t0);
  evalr_free(&ev);
  il_free(&p);
  return rc == IB_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  nn_blas_autoselect(argv); /* may re-execute with the right OpenBLAS kernel for this CPU */
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
  if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 1, argv + 1);
  fprintf(stderr, PROG ": unknown command '%s' (HINT: train or eval)\n", argv[1]);
  return 2;
}
