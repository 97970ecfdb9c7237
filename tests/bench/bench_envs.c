/* bench_envs.c: `ibrl-bench envs`, env steps per second for every registered task, one core.
 *
 * For each task two policies are timed: uniform random actions (the cost of the simulator
 * alone, resets included whenever an episode ends by success or time limit) and the scripted
 * expert (simulator + planner/controller). Each measurement runs --steps env steps and is
 * repeated --repeats times; the median is printed with the min and max, so a noisy shared VM
 * shows up as spread rather than as a wrong number. Everything runs in the calling thread.
 * Tasks whose assets are missing (Meta-World without IBRL_METAWORLD_ASSETS) are skipped with
 * the reason. The nav2d target from the issue (>= 200k steps/s on one core) is printed next
 * to the figure; it is informative only, never asserted. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "env.h"
#include "ib.h"
#include "rng.h"

int bench_envs(int argc, char **argv);

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Runs `steps` env steps with the given policy; returns steps/s, or -1 on an env error. */
static double run_once(env *e, int expert, long steps, uint64_t seed, long *episodes) {
  float obs[512], act[64];
  IB_CHECK(e->obs_dim <= 512 && e->act_dim <= 64);
  rng r;
  rng_seed(&r, seed, "bench", 0, "actions");
  uint64_t ep_seed = seed * 1000;
  if (env_reset(e, ep_seed++, obs) < 0) return -1;
  long eps = 0;
  int t = 0;
  double t0 = ib_now_s();
  for (long i = 0; i < steps; i++) {
    if (expert) {
      if (env_expert(e, &r, 0.1f, act) < 0) return -1;
    } else {
      for (int j = 0; j < e->act_dim; j++) act[j] = 2.0f * rng_uniform(&r) - 1.0f;
    }
    env_info info;
    if (env_step(e, act, obs, &info) < 0) return -1;
    if (info.success || ++t >= e->horizon) {
      if (env_reset(e, ep_seed++, obs) < 0) return -1;
      t = 0;
      eps++;
    }
  }
  double dt = ib_now_s() - t0;
  *episodes = eps;
  return (double)steps / dt;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench envs [--task NAME] [--steps N] [--mw-steps N] [--repeats R]\n"
          "  --task NAME    only this task (default: every registered task)\n"
          "  --steps N      env steps per repeat for nav2d tasks (default 200000)\n"
          "  --mw-steps N   env steps per repeat for Meta-World tasks (default 2000)\n"
          "  --repeats R    repeats per measurement; the median is reported (default 5)\n");
}

int bench_envs(int argc, char **argv) {
  const char *only = NULL;
  long steps = 200000, mw_steps = 2000, repeats = 5;
  static const struct option opts[] = {
      {"task", required_argument, NULL, 't'},   {"steps", required_argument, NULL, 's'},
      {"mw-steps", required_argument, NULL, 'm'}, {"repeats", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
  };
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    char *end = NULL;
    long v = 0;
    if (c == 's' || c == 'm' || c == 'r') v = strtol(optarg, &end, 10);
    if ((c == 's' || c == 'm' || c == 'r') && (*end || *optarg == '\0' || v <= 0)) {
      fprintf(stderr, "ibrl-bench envs: --%s '%s' is not a positive integer\n",
              c == 's' ? "steps" : c == 'm' ? "mw-steps" : "repeats", optarg);
      return 2;
    }
    switch (c) {
    case 't': only = optarg; break;
    case 's': steps = v; break;
    case 'm': mw_steps = v; break;
    case 'r': repeats = v; break;
    case 'h': usage(stdout); return 0;
    default: {
      char why[256];
      fprintf(stderr, "ibrl-bench envs: %s (HINT: ibrl-bench envs --help lists the flags)\n",
              cli_bad_option_msg(why, sizeof why, c, argv[optind - 1], opts));
      return 2;
    }
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ibrl-bench envs: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (repeats > 101) repeats = 101;
  if (only) {
    int found = 0;
    for (const char *const *n = env_names(); *n; n++) found |= !strcmp(*n, only);
    if (!found) {
      fprintf(stderr, "ibrl-bench envs: unknown task '%s' (HINT: known:", only);
      for (const char *const *n = env_names(); *n; n++) fprintf(stderr, " %s", *n);
      fprintf(stderr, ")\n");
      return 2;
    }
  }
  printf("env steps/s, one thread, median of %ld repeats [min, max]; resets included\n", repeats);
  printf("%-22s %-7s %9s %14s %26s %9s\n", "task", "policy", "steps", "steps/s", "[min, max]", "episodes");
  int errors = 0;
  for (const char *const *n = env_names(); *n; n++) {
    if (only && strcmp(only, *n)) continue;
    env *e = NULL;
    int rc = env_create(*n, NULL, &e);
    if (rc < 0) {
      if (rc == IB_EIO || rc == IB_EUNAVAIL) {
        printf("%-22s skipped: %s\n", *n, ib_errmsg());
      } else {
        printf("%-22s ERROR: %s\n", *n, ib_errmsg());
        errors++;
      }
      continue;
    }
    long n_steps = strncmp(*n, "metaworld/", 10) ? steps : mw_steps;
    for (int expert = 0; expert < 2; expert++) {
      double v[101];
      long eps = 0;
      int bad = 0;
      for (long k = 0; k < repeats && !bad; k++) {
        v[k] = run_once(e, expert, n_steps, (uint64_t)(k + 1), &eps);
        bad = v[k] < 0;
      }
      if (bad) {
        printf("%-22s %-7s ERROR: %s\n", *n, expert ? "expert" : "random", ib_errmsg());
        errors++;
        break;
      }
      qsort(v, (size_t)repeats, sizeof v[0], cmp_double);
      printf("%-22s %-7s %9ld %14.0f   [%10.0f, %10.0f] %9ld%s\n", *n, expert ? "expert" : "random", n_steps,
             v[repeats / 2], v[0], v[repeats - 1], eps,
             !strncmp(*n, "nav2d", 5) && !expert ? (v[repeats / 2] >= 200000 ? "  (target >= 200k: met)" : "  (target >= 200k: NOT met)")
                                                 : "");
      fflush(stdout);
    }
    env_destroy(e);
  }
  return errors ? 1 : 0;
}
