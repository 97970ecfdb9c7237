/* bench_e2e.c: `ibrl-bench e2e`: what the whole system does on this host, and what one actor's
 * decision costs.
 *
 * Part 1, in process: the per-chunk inference cost of an actor at batch 1 (agent_act in explore
 * mode = IL forward + RL actor forward + target-critic scoring of both proposals on a random head
 * pair + the selection), next to the IL and RL forwards alone, for the nav2d-quick shapes the
 * main job uses (obs 37, chunk 2; actor 2x128, 5 critics 2x128 LN, IL 2x256) and the paper's
 * state shapes (obs 69, act 7; 3x1024 nets). Median of --repeats runs of --calls calls.
 *
 * Part 2, the system: for each actor count in --actors (1,2,4) it starts one replay shard (no
 * rate limiter, so actors run as fast as they can), that many ibrl-actor processes and
 * `mpirun -np --ranks ibrl-learner` (nav2d-quick, IBRL, a quickly trained IL policy), waits
 * --warmup seconds, then measures over --window seconds: env steps/s (online items the shard
 * received, from Info, x chunk 1), learner updates/s and the learner's wait for batches (its
 * metrics.csv: sample_ms, ms per update, and its share of the update's time). Every process is
 * stopped (SIGTERM, then SIGKILL after 15 s) before the next count. It prints the scaling ratio
 * of env steps/s against 1 actor and the load average, because the machine is shared: on 2 cores
 * actors and learner ranks compete, and the figures say how much.
 * Nothing is asserted: speed is reported, never tested. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, readlink */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "ib.h"
#include "il.h"
#include "nn.h"
#include "replay_client.h"

int bench_e2e(int argc, char **argv);

/* ---- part 1: inference cost ---- */

typedef struct shapes {
  const char *name;
  int obs, act, a_layers, a_hidden, c_layers, c_hidden, heads, il_layers, il_hidden;
} shapes;

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median microseconds per agent_act(mode) call at B = 1. */
static double time_act(agent *ag, agent_mode mode, const float *obs, float *act, int calls, int repeats) {
  double med[32];
  for (int r = 0; r < repeats && r < 32; r++) {
    double t0 = ib_now_s();
    for (int i = 0; i < calls; i++) IB_CHECK(agent_act(ag, act, NULL, obs, 1, mode) == IB_OK);
    med[r] = (ib_now_s() - t0) / calls * 1e6;
  }
  qsort(med, (size_t)IB_MIN(repeats, 32), sizeof med[0], cmp_d);
  return med[IB_MIN(repeats, 32) / 2];
}

static int bench_inference(int calls, int repeats) {
  const shapes S[] = {
      {"nav2d-quick", 37, 2, 2, 128, 2, 128, 5, 2, 256},
      {"paper-state", 69, 7, 3, 1024, 3, 1024, 5, 3, 1024},
  };
  printf("per-chunk inference cost of one actor, batch 1 (median of %d x %d calls, 1 BLAS thread)\n", repeats, calls);
  printf("  %-12s %12s %12s %12s %14s\n", "shapes", "IL fwd us", "RL fwd us", "IBRL act us", "decisions/s");
  for (size_t s = 0; s < IB_ARRAY_LEN(S); s++) {
    const shapes *h = &S[s];
    il_config ic = il_config_default();
    ic.kind = IL_BC;
    ic.obs_dim = h->obs;
    ic.act_dim = h->act;
    ic.n_layers = h->il_layers;
    ic.hidden = h->il_hidden;
    ic.max_batch = 1;
    il_policy il;
    if (il_init(&il, &ic) != IB_OK) {
      fprintf(stderr, "bench e2e: %s\n", ib_errmsg());
      return 1;
    }
    agent_config ac = agent_config_default(AGENT_IBRL, AGENT_TD3);
    ac.obs_dim = h->obs;
    ac.act_dim = h->act;
    ac.actor_layers = h->a_layers;
    ac.actor_hidden = h->a_hidden;
    ac.critic_layers = h->c_layers;
    ac.critic_hidden = h->c_hidden;
    ac.n_critics = h->heads;
    ac.max_batch = 1;
    ac.il = ic;
    ac.acting_only = 1;
    agent ag;
    if (agent_init(&ag, &ac) != IB_OK || agent_il_set(&ag, &il) != IB_OK) {
      fprintf(stderr, "bench e2e: %s\n", ib_errmsg());
      il_free(&il);
      return 1;
    }
    float *obs = ib_xcalloc((size_t)h->obs, sizeof(float)), *act = ib_xcalloc((size_t)h->act, sizeof(float));
    for (int i = 0; i < h->obs; i++) obs[i] = 0.01f * (float)(i % 17) - 0.08f;
    int n = h->a_hidden >= 1024 ? IB_MAX(calls / 20, 20) : calls;
    time_act(&ag, AGENT_MODE_EXPLORE, obs, act, n / 10 + 1, 1); /* warm caches */
    double t_il = time_act(&ag, AGENT_MODE_EVAL_IL, obs, act, n, repeats);
    double t_rl = time_act(&ag, AGENT_MODE_EVAL_RL, obs, act, n, repeats);
    double t_ibrl = time_act(&ag, AGENT_MODE_EXPLORE, obs, act, n, repeats);
    printf("  %-12s %12.1f %12.1f %12.1f %14.0f\n", h->name, t_il, t_rl, t_ibrl, 1e6 / t_ibrl);
    free(obs);
    free(act);
    agent_free(&ag);
    il_free(&il);
  }
  return 0;
}

/* ---- part 2: the system ---- */

typedef struct procs {
  pid_t pid[80];
  int n;
} procs;

static char g_dir[PATH_MAX];  /* work directory */
static char g_bin[PATH_MAX];  /* the build's bin directory */

/* Starts argv with stdout+stderr to dir/log. Returns the pid or -1. */
static pid_t spawn(procs *P, const char *log, char *const argv[]) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", g_dir, log);
  unlink(path); /* a reader must never see the previous run's log */
  pid_t p = fork();
  if (p < 0) return -1;
  if (p == 0) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    execvp(argv[0], argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  if (P && P->n < (int)IB_ARRAY_LEN(P->pid)) P->pid[P->n++] = p;
  return p;
}

/* Runs argv to completion (output to dir/log); returns its exit status or -1. */
static int run(const char *log, char *const argv[]) {
  pid_t p = spawn(NULL, log, argv);
  if (p < 0) return -1;
  int st = 0;
  if (waitpid(p, &st, 0) < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void stop_all(procs *P) {
  for (int i = P->n - 1; i >= 0; i--) kill(P->pid[i], SIGTERM);
  double t0 = ib_now_s();
  for (int i = P->n - 1; i >= 0; i--) {
    int st;
    while (waitpid(P->pid[i], &st, WNOHANG) == 0) {
      if (ib_now_s() - t0 > 15.0) {
        kill(P->pid[i], SIGKILL);
        waitpid(P->pid[i], &st, 0);
        break;
      }
      struct timespec ts = {0, 50000000L};
      nanosleep(&ts, NULL);
    }
  }
  P->n = 0;
}

static void nap(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* "listening on HOST:PORT" from the shard's log, waiting up to 30 s. */
static int wait_listen(char *addr, size_t cap, const char *log) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", g_dir, log);
  for (int t = 0; t < 300; t++) {
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      char *p = strstr(line, "listening on ");
      if (p && sscanf(p + 13, "%255s", addr) == 1 && cap > 16) {
        fclose(f);
        return IB_OK;
      }
    }
    if (f) fclose(f);
    nap(0.1);
  }
  return ib_fail(IB_ETIMEDOUT, "the replay shard did not listen within 30 s (see %s)", path);
}

/* The last metrics.csv row of the learner: updates (column 3) and wall_s (column 2); *wait_s
 * receives the time a rank waited for batches up to that row (the sample_ms column, per update,
 * times each row's updates; NAN when the learner does not write the column). */
static int learner_progress(long *updates, double *wall, double *wait_s) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/learner/metrics.csv", g_dir);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[4096];
  int got = 0, col = -1;
  long prev = 0;
  double wait = 0;
  while (fgets(line, sizeof line, f)) {
    if (col < 0 && strncmp(line, "env_steps,", 10) == 0) { /* the header: find sample_ms */
      int c = 0;
      for (char *tok = strtok(line, ",\n"); tok; tok = strtok(NULL, ",\n"), c++)
        if (strcmp(tok, "sample_ms") == 0) col = c;
      if (col < 0) wait = NAN;
      continue;
    }
    long es, u;
    double w;
    if (sscanf(line, "%ld,%lf,%ld", &es, &w, &u) != 3) continue;
    if (col >= 0) {
      const char *p = line;
      for (int c = 0; c < col && p; c++) { /* past `col` commas */
        p = strchr(p, ',');
        if (p) p++;
      }
      double ms = p ? strtod(p, NULL) : NAN;
      wait += ms * 1e-3 * (double)(u - prev);
    }
    prev = u;
    *updates = u;
    *wall = w;
    got = 1;
  }
  fclose(f);
  *wait_s = wait;
  return got;
}

/* Online items the shard received so far (three tries: the machine may be busy), or -1. */
static long online_inserted(rc_client *c) {
  rc_shard_info info;
  for (int k = 0; k < 3; k++) {
    if (rc_info_get(c, 0, &info) == IB_OK) {
      for (int t = 0; t < info.n_tables; t++)
        if (info.tables[t].kind == 1) return (long)info.tables[t].inserted;
      return -1;
    }
  }
  return -1;
}

static double loadavg(void) {
  double l = NAN;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = NAN;
    fclose(f);
  }
  return l;
}

typedef struct sys_result {
  double env_sps, ups, load;
  double wait_ms; /* the learner's wait for batches, ms per update (sample_ms over the window) */
} sys_result;

static int bench_system(int n_actors, int ranks, double warmup, double window, sys_result *res) {
  procs P = {0};
  char bin[PATH_MAX + 32], addr[256], il[PATH_MAX + 32], out[PATH_MAX + 32], ranks_s[16], id[16];
  snprintf(il, sizeof il, "%s/il.ckpt", g_dir);
  snprintf(out, sizeof out, "%s/learner", g_dir);
  snprintf(ranks_s, sizeof ranks_s, "%d", ranks);
  char rm_cmd[PATH_MAX + 64];
  snprintf(rm_cmd, sizeof rm_cmd, "%s/learner", g_dir);
  char *rm_argv[] = {"rm", "-rf", rm_cmd, NULL};
  run("rm.log", rm_argv);
  snprintf(bin, sizeof bin, "%s/ibrl-replay", g_bin);
  char *r_argv[] = {bin, "--port", "0", "--obs-dim", "37", "--act-dim", "2", "--min-size", "300", "--threads", "6", NULL};
  if (spawn(&P, "replay.log", r_argv) < 0 || wait_listen(addr, sizeof addr, "replay.log") != IB_OK) {
    stop_all(&P);
    return IB_EUNAVAIL;
  }
  char abin[PATH_MAX + 32], lbin[PATH_MAX + 32];
  snprintf(abin, sizeof abin, "%s/ibrl-actor", g_bin);
  snprintf(lbin, sizeof lbin, "%s/ibrl-learner", g_bin);
  for (int i = 0; i < n_actors; i++) {
    char log[32];
    snprintf(id, sizeof id, "%d", i);
    snprintf(log, sizeof log, "actor-%d.log", i);
    char *a_argv[] = {abin, "--replay", addr, "--il", il, "--preset", "nav2d-quick", "--actor-id", id, "--log-every", "5", NULL};
    spawn(&P, log, a_argv);
  }
  char *l_argv[] = {"mpirun", "--bind-to", "none", "-np", ranks_s, lbin, "--replay", addr, "--il", il, "--preset",
                    "nav2d-quick", "--task", "nav2d", "--log-every", "10", "--publish-every", "50", "--ckpt-every", "0",
                    "--out", out, NULL};
  spawn(&P, "learner.log", l_argv);
  rc_opts ro = {0};
  ro.shards = addr;
  ro.deadline_ms = 5000;
  rc_client *c = NULL;
  int rc = rc_client_open(&c, &ro);
  if (rc != IB_OK) {
    stop_all(&P);
    return rc;
  }
  /* Warm-up: the learner starts (its first metrics row, at most 90 s), then the actors get
   * their first weights and everything settles for `warmup` seconds. */
  long u0 = 0, u1 = 0;
  double w0 = 0, w1 = 0, s0 = 0, s1 = 0;
  for (double t = ib_now_s(); ib_now_s() - t < 90.0 && !learner_progress(&u0, &w0, &s0);) nap(0.2);
  nap(warmup);
  int have0 = learner_progress(&u0, &w0, &s0);
  long i0 = online_inserted(c);
  double t0 = ib_now_s();
  nap(window);
  long i1 = online_inserted(c);
  double t1 = ib_now_s();
  int have1 = learner_progress(&u1, &w1, &s1);
  res->load = loadavg();
  res->env_sps = i0 >= 0 && i1 >= 0 ? (double)(i1 - i0) / (t1 - t0) : NAN;
  res->ups = have0 && have1 && w1 > w0 ? (double)(u1 - u0) / (w1 - w0) : NAN;
  res->wait_ms = have0 && have1 && u1 > u0 ? 1e3 * (s1 - s0) / (double)(u1 - u0) : NAN;
  rc_client_close(c);
  stop_all(&P);
  return IB_OK;
}

static int find_bin(char *argv0) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) snprintf(self, sizeof self, "%s", argv0);
  else self[n] = 0;
  char *slash = strrchr(self, '/');
  if (slash) *slash = 0;
  snprintf(g_bin, sizeof g_bin, "%s", self);
  char p[PATH_MAX + 32];
  snprintf(p, sizeof p, "%s/ibrl-actor", g_bin);
  if (access(p, X_OK) != 0)
    return ib_fail(IB_ENOTFOUND, "%s not found (HINT: build ibrl-actor, ibrl-learner, ibrl-replay, ibrl-demos and ibrl-il "
                   "into the same bin directory as ibrl-bench)", p);
  return IB_OK;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench e2e [--actors 1,2,4] [--ranks N] [--warmup S] [--window S] [--calls N]\n"
          "                      [--repeats N] [--inference-only]\n"
          "  Part 1: per-chunk inference cost of one actor at batch 1 (IL + RL forward + critic scoring).\n"
          "  Part 2: env steps/s and learner updates/s of the running system (1 replay shard, no rate\n"
          "  limiter, N actors, mpirun -np --ranks ibrl-learner on nav2d) for each actor count, the\n"
          "  scaling ratio against 1 actor, and the learner's wait for batches (ms per update and share\n"
          "  of its time). Needs the ibrl binaries next to ibrl-bench and mpirun.\n"
          "  --actors LIST      actor counts (default 1,2,4)\n"
          "  --ranks N          learner ranks (default 2)\n"
          "  --warmup S         seconds before measuring each count (default 8)\n"
          "  --window S         seconds measured per count (default 15)\n"
          "  --calls N          calls per inference timing (default 2000)\n"
          "  --repeats N        inference timings, median reported (default 5)\n"
          "  --inference-only   skip part 2\n");
}

int bench_e2e(int argc, char **argv) {
  int actors[8] = {1, 2, 4}, n_counts = 3, ranks = 2, calls = 2000, repeats = 5, inference_only = 0;
  double warmup = 8, window = 15;
  static const struct option lo[] = {
      {"actors", required_argument, NULL, 'a'}, {"ranks", required_argument, NULL, 'r'},
      {"warmup", required_argument, NULL, 'w'}, {"window", required_argument, NULL, 'W'},
      {"calls", required_argument, NULL, 'c'},  {"repeats", required_argument, NULL, 'R'},
      {"inference-only", no_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
    case 'a': {
      n_counts = 0;
      char buf[128];
      snprintf(buf, sizeof buf, "%s", optarg);
      for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        long v = strtol(tok, &end, 10);
        if (*end || v < 1 || v > 32 || n_counts == 8) {
          fprintf(stderr, "ibrl-bench e2e: --actors '%s': want up to 8 counts in [1, 32], e.g. 1,2,4\n", optarg);
          return 2;
        }
        actors[n_counts++] = (int)v;
      }
      break;
    }
    case 'r': ranks = (int)strtol(optarg, &end, 10); if (*end || ranks < 1 || ranks > 16) goto bad_value; break;
    case 'w': warmup = strtod(optarg, &end); if (*end || !(warmup >= 0 && warmup < 600)) goto bad_value; break;
    case 'W': window = strtod(optarg, &end); if (*end || !(window > 0 && window < 600)) goto bad_value; break;
    case 'c': calls = (int)strtol(optarg, &end, 10); if (*end || calls < 10 || calls > 10000000) goto bad_value; break;
    case 'R': repeats = (int)strtol(optarg, &end, 10); if (*end || repeats < 1 || repeats > 31) goto bad_value; break;
    case 'i': inference_only = 1; break;
    case 'h': usage(stdout); return 0;
    default:
      fprintf(stderr, "ibrl-bench e2e: %s '%s' (see ibrl-bench e2e --help)\n",
              c == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
      return 2;
    }
    continue;
  bad_value: {
    /* Name the flag from the table: argv[optind - 1] is the value itself for "--ranks x". */
    const char *flag = "?";
    for (const struct option *o = lo; o->name; o++)
      if (o->val == c) flag = o->name;
    const char *range = c == 'r' ? "an integer in [1, 16]" : c == 'w' ? "a number of seconds in [0, 600)"
                        : c == 'W' ? "a number of seconds in (0, 600)" : c == 'c' ? "an integer in [10, 10000000]"
                                                                          : "an integer in [1, 31]";
    fprintf(stderr, "ibrl-bench e2e: --%s '%s' is not %s (see ibrl-bench e2e --help)\n", flag, optarg, range);
    return 2;
  }
  }
  if (optind < argc) {
    fprintf(stderr, "ibrl-bench e2e: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  nn_set_threads(1);
  if (bench_inference(calls, repeats) != 0) return 1;
  if (inference_only) return 0;

  if (find_bin(argv[0]) != IB_OK) {
    fprintf(stderr, "ibrl-bench e2e: %s\n", ib_errmsg());
    return 1;
  }
  snprintf(g_dir, sizeof g_dir, "%s/ibrl-bench-e2e.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(g_dir)) {
    fprintf(stderr, "ibrl-bench e2e: cannot create a work directory: %s\n", strerror(errno));
    return 1;
  }
  /* The single-host MPI settings of shared/docs/deploy.md 7.3 (as deploy/local/cluster.sh). */
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  setenv("OMPI_MCA_plm", "isolated", 0);
  setenv("OMPI_MCA_btl", "self,vader", 0);
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
  setenv("OPENBLAS_NUM_THREADS", "1", 1);

  printf("\nsystem on nav2d (nav2d-quick, IBRL), 1 replay shard without rate limiter, %d learner ranks; "
         "warm-up %.0f s, window %.0f s per count; work dir %s\n", ranks, warmup, window, g_dir);
  char bin[PATH_MAX + 32], demos[PATH_MAX + 32], il[PATH_MAX + 32];
  snprintf(bin, sizeof bin, "%s/ibrl-demos", g_bin);
  snprintf(demos, sizeof demos, "%s/demos.hdf5", g_dir);
  snprintf(il, sizeof il, "%s/il.ckpt", g_dir);
  char *d_argv[] = {bin, "generate", "--task", "nav2d", "--episodes", "3", "--noise", "0.3", "--out", demos, "--quiet", NULL};
  char ilbin[PATH_MAX + 32];
  snprintf(ilbin, sizeof ilbin, "%s/ibrl-il", g_bin);
  char *i_argv[] = {ilbin, "train", "--demos", demos, "--task", "nav2d", "--preset", "nav2d-quick", "--steps", "50",
                    "--out", il, "--quiet", NULL};
  if (run("demos.log", d_argv) != 0 || run("il.log", i_argv) != 0) {
    fprintf(stderr, "ibrl-bench e2e: demos or IL training failed (see %s)\n", g_dir);
    return 1;
  }
  printf("  %-7s %14s %14s %16s %8s %16s\n", "actors", "env steps/s", "updates/s", "steps/s vs 1", "load",
         "batch wait");
  double base = NAN;
  for (int k = 0; k < n_counts; k++) {
    sys_result r;
    if (bench_system(actors[k], ranks, warmup, window, &r) != IB_OK) {
      fprintf(stderr, "ibrl-bench e2e: %d actors: %s (logs in %s)\n", actors[k], ib_errmsg(), g_dir);
      return 1;
    }
    if (k == 0) base = r.env_sps / actors[0];
    double scale = r.env_sps / base;
    /* The wait's share of an update's time: ms per update x updates per second. */
    printf("  %-7d %14.0f %14.1f %15.2fx %8.2f %7.3f ms %4.1f%%\n", actors[k], r.env_sps, r.ups, scale, r.load,
           r.wait_ms, r.wait_ms * r.ups / 10.0);
    fflush(stdout);
  }
  printf("  (steps/s vs 1: env steps/s divided by the 1-actor figure per actor; ideal = the actor count)\n");
  printf("  (batch wait: the learner's time waiting for its batch, ms per update and share of the update's time;\n"
         "   anchors.md's T5 asks for under 5%%)\n");
  char *rm_argv[] = {"rm", "-rf", g_dir, NULL};
  run("rm.log", rm_argv);
  return 0;
}
