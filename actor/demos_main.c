/* demos_main.c: `ibrl-demos`, expert demonstrations as robomimic-style HDF5 files.
 *
 *   ibrl-demos generate --task T --episodes N --noise S --seed X --out F.hdf5
 *   ibrl-demos info F.hdf5 [--obs-keys a,b]
 *
 * Design. `generate` rolls out the task's scripted expert (env_expert, Gaussian action noise of
 * std S) with the chunk runner (k = 1, no stacking: files hold raw frames; stacking and chunking
 * are applied when transitions are built, see demo_transition). An episode is kept only if it
 * succeeds, and it is cut at its first success because the runner ends episodes on success. It
 * tries as many episodes as it needs, up to --max-tries, and reports how many it tried: kept /
 * tried is the expert's success rate at that noise. Episode seeds come from a named rng stream
 * of --seed, so a run is reproducible. The file appears only when complete (demo_writer).
 * Exit codes (as ibrl-il / ibrl-train): 0 success, 2 bad usage or setup (bad flags, an unknown
 * task or one that cannot be created, e.g. without its Meta-World assets, an --out that cannot
 * be created, an `info` file that is missing, unreadable, malformed or lacks a requested key),
 * 1 a runtime error (the expert falls short, a write fails midway).
 * Messages go to stderr. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "cli.h"
#include "demo.h"
#include "env.h"
#include "ib.h"
#include "rng.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-demos <command> [flags]\n"
          "\n"
          "commands:\n"
          "  generate  roll out a task's scripted expert and write the successful episodes to HDF5\n"
          "  info      print a demo file's episodes, lengths, obs keys and shapes, and action range\n"
          "\n"
          "ibrl-demos <command> --help shows the command's flags.\n"
          "exit codes: 0 done, 2 bad usage or setup (flags, an unknown task or one that cannot be\n"
          "created, e.g. without its Meta-World assets, a missing, unreadable or malformed file, an\n"
          "--out that cannot be created), 1 a runtime error (the expert falls short).\n");
}

static void usage_generate(FILE *f) {
  fprintf(f,
          "usage: ibrl-demos generate --out F.hdf5 [flags]\n"
          "\n"
          "  --task T        task name (default nav2d); known:");
  for (const char *const *n = env_names(); *n; n++) fprintf(f, " %s", *n);
  fprintf(f,
          "\n"
          "  --episodes N    successful episodes to write (default 10)\n"
          "  --noise S       std of the Gaussian noise added to expert actions (default 0)\n"
          "  --seed X        base seed of episode layouts and noise (default 1)\n"
          "  --out F         output file (written as F.tmp, renamed when complete)\n"
          "  --max-tries M   give up after M episodes (default 10*N + 20)\n"
          "  --horizon H     time limit in env steps (default: the task's)\n"
          "  --quiet         no progress lines\n"
          "  -h, --help      this text\n");
}

static void usage_info(FILE *f) {
  fprintf(f,
          "usage: ibrl-demos info F.hdf5 [--obs-keys a,b,...]\n"
          "\n"
          "  --obs-keys K    comma-separated obs keys to load, in order (default: all)\n"
          "  -h, --help      this text\n");
}

static int parse_long(long *out, const char *s, long lo, long hi, const char *flag) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    fprintf(stderr, "ibrl-demos: %s '%s' is not an integer in [%ld, %ld]\n", flag, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

/* A flag getopt_long refused: unknown, without its value, or a value for a flag that takes none. */
static int bad_option(const char *cmd, int c, char **argv, const struct option *opts) {
  char why[256];
  fprintf(stderr, "ibrl-demos %s: %s (see ibrl-demos %s --help)\n", cmd,
          cli_bad_option_msg(why, sizeof why, c, argv[optind - 1], opts), cmd);
  return 2;
}

/* ---- generate ---- */

static int cmd_generate(int argc, char **argv) {
  const char *task = "nav2d", *out = NULL;
  long episodes = 10, max_tries = 0, horizon = 0;
  double noise = 0.0;
  uint64_t seed = 1;
  int quiet = 0;
  static const struct option opts[] = {
      {"task", required_argument, NULL, 't'},    {"episodes", required_argument, NULL, 'n'},
      {"noise", required_argument, NULL, 's'},   {"seed", required_argument, NULL, 'x'},
      {"out", required_argument, NULL, 'o'},     {"max-tries", required_argument, NULL, 'm'},
      {"horizon", required_argument, NULL, 'H'}, {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
  };
  int c;
  optind = 1;
  opterr = 0; /* our message names the command and says why (cli_bad_option_msg) */
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    char *end;
    switch (c) {
    case 't': task = optarg; break;
    case 'n':
      if (parse_long(&episodes, optarg, 1, 1000000, "--episodes") < 0) return 2;
      break;
    case 's':
      errno = 0;
      noise = strtod(optarg, &end);
      if (errno || end == optarg || *end || !isfinite(noise) || noise < 0.0) {
        fprintf(stderr, "ibrl-demos: --noise '%s' is not a finite number >= 0 (HINT: e.g. 0.1)\n", optarg);
        return 2;
      }
      break;
    case 'x':
      errno = 0;
      seed = strtoull(optarg, &end, 10);
      if (errno || end == optarg || *end || optarg[0] == '-') {
        fprintf(stderr, "ibrl-demos: --seed '%s' is not a non-negative integer\n", optarg);
        return 2;
      }
      break;
    case 'o': out = optarg; break;
    case 'm':
      if (parse_long(&max_tries, optarg, 1, 100000000, "--max-tries") < 0) return 2;
      break;
    case 'H':
      if (parse_long(&horizon, optarg, 1, 1000000, "--horizon") < 0) return 2;
      break;
    case 'q': quiet = 1; break;
    case 'h': usage_generate(stdout); return 0;
    default: return bad_option("generate", c, argv, opts);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ibrl-demos generate: unexpected argument '%s'\n", argv[optind]);
    usage_generate(stderr);
    return 2;
  }
  if (!out) {
    fprintf(stderr, "ibrl-demos generate: --out is required (HINT: --out demos.hdf5)\n");
    return 2;
  }
  if (!max_tries) max_tries = 10 * episodes + 20;
  if (max_tries < episodes) {
    fprintf(stderr, "ibrl-demos generate: --max-tries %ld is below --episodes %ld\n", max_tries, episodes);
    return 2;
  }

  env_config ecfg = {.horizon = (int)horizon};
  env *e = NULL;
  int rc = env_create(task, &ecfg, &e);
  if (rc < 0) {
    /* Nothing was generated yet: an unknown task, a missing Meta-World asset folder or a model
     * that does not load is setup (exit 2), as in ibrl-il and ibrl-train. */
    fprintf(stderr, "ibrl-demos: %s\n", ib_errmsg());
    return 2;
  }
  chunk_config ccfg = chunk_config_default();
  chunk_runner run;
  if ((rc = chunk_runner_init(&run, e, &ccfg)) < 0) {
    fprintf(stderr, "ibrl-demos: %s\n", ib_errmsg());
    env_destroy(e);
    return 1;
  }
  const int H = run.cfg.horizon, O = e->obs_dim, A = e->act_dim;

  /* Obs keys of the file: the task's parts, or one "obs" key if it declares none. */
  int nk = e->n_obs_keys > 0 ? e->n_obs_keys : 1;
  demo_key *keys = ib_xcalloc((size_t)nk, sizeof *keys);
  int ksum = 0;
  for (int i = 0; i < nk; i++) {
    snprintf(keys[i].name, sizeof keys[i].name, "%s", e->n_obs_keys > 0 ? e->obs_keys[i].name : "obs");
    keys[i].dim = e->n_obs_keys > 0 ? e->obs_keys[i].dim : O;
    ksum += keys[i].dim;
  }
  IB_CHECK(ksum == O); /* a task's keys must cover its observation exactly */

  char env_args[512];
  snprintf(env_args, sizeof env_args,
           "{\"env_name\": \"%s\", \"type\": \"ibrl\", \"env_kwargs\": {\"horizon\": %d, \"expert_noise\": %g, "
           "\"seed\": %" PRIu64 ", \"obs_dim\": %d, \"act_dim\": %d}}",
           task, H, noise, seed, O, A);
  demo_writer *w = NULL;
  if ((rc = demo_writer_open(&w, out, keys, nk, A, env_args)) < 0) {
    /* Nothing was generated yet: an --out that cannot be created is a setup error. */
    fprintf(stderr, "ibrl-demos: %s\n", ib_errmsg());
    free(keys);
    chunk_runner_free(&run);
    env_destroy(e);
    return 2;
  }

  float *obs = ib_xmalloc((size_t)(H + 1) * O * sizeof(float));
  float *act = ib_xmalloc((size_t)H * A * sizeof(float));
  float *rew = ib_xmalloc((size_t)H * sizeof(float));
  uint8_t *done = ib_xmalloc((size_t)H);
  chunk_result res;
  rng noise_rng, seed_rng;
  rng_seed(&noise_rng, seed, "demos", 0, "expert_noise");
  rng_seed(&seed_rng, seed, "demos", 0, "episode_seed");
  long kept = 0, tried = 0, steps_kept = 0;
  double t0 = ib_now_s(), last_print = t0;
  rc = IB_OK;
  while (kept < episodes && tried < max_tries && rc >= 0) {
    uint64_t ep_seed = rng_u64(&seed_rng);
    tried++;
    if ((rc = chunk_reset(&run, ep_seed, obs)) < 0) break;
    int T = 0;
    while (!run.done) {
      if ((rc = env_expert(e, &noise_rng, (float)noise, act + (size_t)T * A)) < 0) break;
      if ((rc = chunk_step(&run, &res, obs + (size_t)(T + 1) * O, act + (size_t)T * A)) < 0) break;
      rew[T] = res.reward;
      done[T] = (uint8_t)res.success;
      T++;
    }
    if (rc < 0) break;
    if (run.success) {
      /* obs rows 0..T-1 are the observations acted in; rows 1..T are the next observations. */
      if ((rc = demo_writer_add(w, obs, act, rew, done, obs + O, T)) < 0) break;
      kept++;
      steps_kept += T;
    }
    double now = ib_now_s();
    if (!quiet && (now - last_print > 1.0 || kept == episodes)) {
      fprintf(stderr, "ibrl-demos: %s: %ld/%ld episodes kept, %ld tried (%.1f s)\n", task, kept, episodes, tried, now - t0);
      last_print = now;
    }
  }
  int exit_code = 0;
  if (rc < 0) {
    fprintf(stderr, "ibrl-demos: %s\n", ib_errmsg());
    demo_writer_abort(w);
    exit_code = 1;
  } else if (kept < episodes) {
    fprintf(stderr,
            "ibrl-demos: the %s expert succeeded in only %ld of %ld tries at noise %g, short of %ld episodes; no file "
            "written (HINT: lower --noise or raise --max-tries)\n",
            task, kept, tried, noise, episodes);
    demo_writer_abort(w);
    exit_code = 1;
  } else if ((rc = demo_writer_close(w)) < 0) {
    fprintf(stderr, "ibrl-demos: %s\n", ib_errmsg());
    exit_code = 1;
  } else {
    printf("%s: wrote %ld episodes (%ld steps, mean length %.1f) to %s; tried %ld episodes: expert success rate %.1f%% "
           "at noise %g\n",
           task, kept, steps_kept, (double)steps_kept / (double)kept, out, tried, 100.0 * (double)kept / (double)tried, noise);
  }
  free(obs);
  free(act);
  free(rew);
  free(done);
  free(keys);
  chunk_runner_free(&run);
  env_destroy(e);
  return exit_code;
}

/* ---- info ---- */

static int cmd_info(int argc, char **argv) {
  const char *keys = NULL;
  static const struct option opts[] = {
      {"obs-keys", required_argument, NULL, 'k'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
    case 'k': keys = optarg; break;
    case 'h': usage_info(stdout); return 0;
    default: return bad_option("info", c, argv, opts);
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "ibrl-demos info: expected exactly one file\n");
    usage_info(stderr);
    return 2;
  }
  const char *path = argv[optind];
  demo_set s;
  demo_load_opts lo = {.obs_keys = keys};
  int rc = demo_load(&s, path, &lo);
  if (rc < 0) {
    /* Every demo_load error is about the input file or --obs-keys (demo.h): usage, exit 2. */
    fprintf(stderr, "ibrl-demos: %s\n", ib_errmsg());
    return 2;
  }
  int lmin = s.episodes[0].T, lmax = 0, n_success = 0;
  for (int i = 0; i < s.n_episodes; i++) {
    const demo_episode *e = &s.episodes[i];
    lmin = IB_MIN(lmin, e->T);
    lmax = IB_MAX(lmax, e->T);
    n_success += e->rewards[e->T - 1] >= 1.0f;
  }
  printf("file:        %s\n", path);
  printf("env:         %s\n", s.env_name[0] ? s.env_name : "(no env_args)");
  if (s.env_args) printf("env_args:    %s\n", s.env_args);
  printf("episodes:    %d (%d end with reward 1)\n", s.n_episodes, n_success);
  printf("steps:       %ld (length min %d, mean %.1f, max %d)\n", s.total_steps, lmin,
         (double)s.total_steps / s.n_episodes, lmax);
  printf("obs:         %d floats =", s.obs_dim);
  for (int k = 0; k < s.n_keys; k++) printf("%s %s (%d)", k ? " +" : "", s.keys[k].name, s.keys[k].dim);
  printf("\nactions:     %d floats\n", s.act_dim);
  for (int j = 0; j < s.act_dim; j++) {
    float lo_v = INFINITY, hi_v = -INFINITY;
    for (int i = 0; i < s.n_episodes; i++)
      for (int t = 0; t < s.episodes[i].T; t++) {
        float a = s.episodes[i].actions[(size_t)t * s.act_dim + j];
        lo_v = fminf(lo_v, a);
        hi_v = fmaxf(hi_v, a);
      }
    printf("  action[%d]  range [%+.4f, %+.4f]\n", j, (double)lo_v, (double)hi_v);
  }
  printf("lengths:    ");
  for (int i = 0; i < s.n_episodes && i < 50; i++) printf(" %d", s.episodes[i].T);
  printf("%s\n", s.n_episodes > 50 ? " ..." : "");
  demo_set_free(&s);
  return 0;
}

int main(int argc, char **argv) {
  demo_writer_init(); /* a full disk must give an error, not a crash at exit */
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "generate")) return cmd_generate(argc - 1, argv + 1);
  if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
  fprintf(stderr, "ibrl-demos: unknown command '%s'\n", cmd);
  usage(stderr);
  return 2;
}
