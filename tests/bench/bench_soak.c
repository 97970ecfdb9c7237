/* bench_soak.c: `ibrl-bench soak`: watches one real ibrl-replay process under mixed gRPC traffic for
 * a long time and judges its memory (issue #5: "bounded by configuration; flat over a long run").
 *
 * Design. The shard is a child process (fork + exec before gRPC starts here, stdout piped to read
 * "listening on HOST:PORT", SIGKILLed if this process dies) on 127.0.0.1 port 0, with a small
 * online ring so it wraps many times, a fresh checkpoint directory, periodic checkpoints and the
 * write-ahead log by default. Against it run, for --seconds:
 *   writers   K threads, each streaming batches through an rc_writer for actor ids from a fixed
 *             pool (thread k owns the ids i with i % K == k); every --reopen batches the writer is
 *             closed and the next id of the thread's set opened, continuing that id's seqs, so no
 *             item is a duplicate by accident and the shard's actor registry stays bounded;
 *   samplers  1-2 threads alternating rc_sample and a freshly opened rc_sampler (every
 *             SAMPLE_PHASE batches), mixed demo/online batches; demo rows are preloaded first;
 *   misc      one thread: Info a few times a second, a fresh rc_client (open, Info, health, close)
 *             every --churn-every seconds, and every --bad-every seconds one malformed Insert (a NaN
 *             row, rows one obs wider than the shard's, an unknown table; as columns or items), sent
 *             raw with rc__unary, which must come back INVALID_ARGUMENT naming the fault, while the
 *             Info right after it still succeeds.
 * The main thread samples the child's VmRSS, VmHWM, thread count and open fds from /proc once a
 * second, with the client-side insert and sample rates and the shard's Info, keeps the timeline
 * (preallocated), prints progress and writes it as CSV. Rates can be capped (--insert-rate,
 * --sample-rate) so a long run does not take both cores of a shared machine or write the disk flat
 * out through the log.
 *
 * Verdict, after the shard was stopped with SIGTERM (it must exit 0: drained, final checkpoint):
 *   bounded  the peak RSS (VmHWM) stays under the configuration's prediction: the tables' bytes as
 *            `ibrl-replay --help` states them, capacity x (round16(2 obs + act + 2) x 4 + 22) per
 *            table, plus a fixed allowance (--allowance-mb, default 64) for the rest of the process:
 *            code, gRPC, thread stacks, the heap that keeps freed message buffers (ibrl-replay keeps
 *            up to 128 MB of free heap by mallopt), the log's buffers;
 *   flat     after warm-up (the later of: the ring full and a first checkpoint done, and
 *            --warmup of the run), the RSS slope is under --max-slope MB/min and the max-min spread
 *            under --max-spread % of the RSS at warm-up (--max-spread-mb is the floor of that bound
 *            in MB, for small processes whose few MB of heap steps are many percent), with inserts
 *            flowing in at least half of the window. The slope is the least-squares one, or with
 *            --slope median the median of the per-second growth: ibrl-replay keeps freed heap, so a
 *            clean shard's RSS is the heap's high-water mark, which rises in rare steps (a burst of
 *            concurrent messages after a stall) that tilt a short window's least-squares line,
 *            while a leak per message grows it every second and moves the median fully;
 *   clean    no call failed, and every bad request was refused as it should be.
 * Exit 0 if all hold, 1 if not (each failed check named with its figures), 2 on bad flags or a
 * shard that does not start. The
 * bounds' justification (measured clean runs and a planted leak) is in docs/results/replay-soak.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ib.h"
#include "replay_client.h"
#include "wire.h"

#define SOAK_MAX_WRITERS 16
#define SOAK_MAX_SAMPLERS 2
#define SOAK_SAMPLE_PHASE 100    /* sample calls before a sampler thread switches API */
#define SOAK_DEMO_ACTOR 1000000u /* the demo preloader's actor id (outside the writers' pool) */
#define SOAK_BAD_ACTOR 2000000u  /* the bad requests' actor id */
#define SOAK_MAX_ERRMSG 10       /* failures printed in full; the rest are only counted */

int bench_soak(int argc, char **argv);

typedef struct soak_cfg {
  const char *replay_bin, *ckpt_dir, *durability, *csv;
  int obs_dim, act_dim, writers, samplers, batch, reopen, actors, server_threads, json, deadline_ms;
  int slope_median; /* flat judges the median per-second growth instead of the least-squares slope */
  long online_cap, demo_cap, demo_rows;
  double seconds, ckpt_period, demo_fraction, insert_rate, sample_rate, churn_every, bad_every, progress;
  double allowance_mb, max_slope, max_spread, max_spread_mb, warmup;
} soak_cfg;

/* One second of the timeline. */
typedef struct soak_point {
  double t;                    /* seconds since the traffic started */
  double rss_mb, hwm_mb;       /* the child's VmRSS, VmHWM */
  int fds, threads;
  double ins_per_s, smp_per_s; /* rows/s acknowledged by the writers / received by the samplers */
  uint64_t online_size, online_inserted, demo_size, checkpoints;
  uint64_t errors, bad_refused;
  double info_ms;              /* round trip of this point's Info call: a stalled shard shows here */
} soak_point;

/* What the threads share; counters are atomics, the rest is read-only while they run. */
typedef struct soak_shared {
  const soak_cfg *cfg;
  rc_client *c; /* borrowed: the shared client of writers, samplers and misc */
  const char *target;
  atomic_int stop;
  atomic_uint_fast64_t rows_written, rows_sampled, errors, bad_sent, bad_refused, churns, infos, reopens;
} soak_shared;

/* ---- flags ---- */

static void soak_usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench soak [flags]\n"
          "Runs an ibrl-replay child on 127.0.0.1 under inserts (rc_writer, reopened now and then), samples\n"
          "(rc_sample and rc_sampler, demo + online), Info calls, connection churn and refused bad requests\n"
          "for --seconds, samples its VmRSS once a second and judges: RSS bounded by the configuration's\n"
          "prediction, flat after warm-up, no failed call, every bad request refused. Exit 0 pass, 1 fail,\n"
          "2 bad flags or a shard that does not start.\n"
          "  --seconds S           length of the traffic [60]\n"
          "  --obs-dim N --act-dim N   item sizes [69, 7: the paper's state setting]\n"
          "  --online-capacity N   online ring of the shard [50000]\n"
          "  --demo-capacity N     demo table of the shard [10000]\n"
          "  --demo-rows N         demo rows preloaded before the traffic [half the demo capacity]\n"
          "  --durability ckpt|wal the shard's --durability [wal]\n"
          "  --ckpt-period S       the shard's periodic checkpoints; 0 = none [10]\n"
          "  --ckpt-dir DIR        checkpoint directory (must be empty or new) [a fresh /tmp/ibrl-soak-*, removed]\n"
          "  --writers K           inserting threads (1..%d) [4]\n"
          "  --samplers N          sampling threads (0..%d) [2]\n"
          "  --batch N             rows per insert and per sample [256]\n"
          "  --reopen N            batches before a writer is closed and reopened [200]\n"
          "  --actors N            actor id pool (>= writers) [16]\n"
          "  --demo-fraction X     demo share of each sampled batch [0.5]\n"
          "  --insert-rate R       cap on inserted rows/s, all writers; 0 = none [0]\n"
          "  --sample-rate R       cap on sampled rows/s, all samplers; 0 = none [0]\n"
          "  --churn-every S       seconds between fresh client connections; 0 = none [2]\n"
          "  --bad-every S         seconds between bad requests; 0 = none [1]\n"
          "  --server-threads N    the shard's --threads [4]\n"
          "  --deadline-ms N       every client call's deadline [30000]\n"
          "  --allowance-mb M      RSS allowed beyond the tables [64]\n"
          "  --max-slope M         flat: RSS slope bound after warm-up, MB/min [1]\n"
          "  --slope ls|median     the slope judged: least squares over the window, or the median of the\n"
          "                        per-second growth (robust to the heap's rare high-water steps) [ls]\n"
          "  --max-spread P        flat: RSS max-min bound after warm-up, %% of the warm RSS [5]\n"
          "  --max-spread-mb M     flat: floor of the spread bound in MB [2]\n"
          "  --warmup F            warm-up lasts at least this share of the run [0.2]\n"
          "  --progress S          seconds between progress lines [5]\n"
          "  --csv FILE            write the timeline (one row a second) as CSV\n"
          "  --json                print the verdict as one JSON line at the end\n"
          "  --replay-bin P        the ibrl-replay binary [next to ibrl-bench]\n"
          "  --help                this text\n",
          SOAK_MAX_WRITERS, SOAK_MAX_SAMPLERS);
}

enum {
  F_SECONDS = 1, F_OBS, F_ACT, F_ONCAP, F_DEMOCAP, F_DEMOROWS, F_DUR, F_CKPER, F_CKDIR, F_WRITERS, F_SAMPLERS,
  F_BATCH, F_REOPEN, F_ACTORS, F_FRAC, F_IRATE, F_SRATE, F_CHURN, F_BAD, F_SRVTHREADS, F_DEADLINE, F_ALLOW,
  F_SLOPE, F_SLOPEKIND, F_SPREAD, F_SPREADMB, F_WARMUP, F_PROGRESS, F_CSV, F_JSON, F_BIN, F_HELP
};

static const struct option soak_opts[] = {
    {"seconds", required_argument, NULL, F_SECONDS},     {"obs-dim", required_argument, NULL, F_OBS},
    {"act-dim", required_argument, NULL, F_ACT},         {"online-capacity", required_argument, NULL, F_ONCAP},
    {"demo-capacity", required_argument, NULL, F_DEMOCAP}, {"demo-rows", required_argument, NULL, F_DEMOROWS},
    {"durability", required_argument, NULL, F_DUR},      {"ckpt-period", required_argument, NULL, F_CKPER},
    {"ckpt-dir", required_argument, NULL, F_CKDIR},      {"writers", required_argument, NULL, F_WRITERS},
    {"samplers", required_argument, NULL, F_SAMPLERS},   {"batch", required_argument, NULL, F_BATCH},
    {"reopen", required_argument, NULL, F_REOPEN},       {"actors", required_argument, NULL, F_ACTORS},
    {"demo-fraction", required_argument, NULL, F_FRAC},  {"insert-rate", required_argument, NULL, F_IRATE},
    {"sample-rate", required_argument, NULL, F_SRATE},   {"churn-every", required_argument, NULL, F_CHURN},
    {"bad-every", required_argument, NULL, F_BAD},       {"server-threads", required_argument, NULL, F_SRVTHREADS},
    {"deadline-ms", required_argument, NULL, F_DEADLINE}, {"allowance-mb", required_argument, NULL, F_ALLOW},
    {"max-slope", required_argument, NULL, F_SLOPE},     {"slope", required_argument, NULL, F_SLOPEKIND},     {"max-spread", required_argument, NULL, F_SPREAD},
    {"max-spread-mb", required_argument, NULL, F_SPREADMB}, {"warmup", required_argument, NULL, F_WARMUP},
    {"progress", required_argument, NULL, F_PROGRESS},   {"csv", required_argument, NULL, F_CSV},
    {"json", no_argument, NULL, F_JSON},                 {"replay-bin", required_argument, NULL, F_BIN},
    {"help", no_argument, NULL, F_HELP},                 {NULL, 0, NULL, 0},
};

static void soak_cfg_default(soak_cfg *c) {
  memset(c, 0, sizeof *c);
  c->durability = "wal";
  c->obs_dim = 69;
  c->act_dim = 7;
  c->writers = 4;
  c->samplers = 2;
  c->batch = 256;
  c->reopen = 200;
  c->actors = 16;
  c->server_threads = 4;
  c->deadline_ms = 30000;
  c->online_cap = 50000;
  c->demo_cap = 10000;
  c->demo_rows = -1;
  c->seconds = 60;
  c->ckpt_period = 10;
  c->demo_fraction = 0.5;
  c->churn_every = 2;
  c->bad_every = 1;
  c->progress = 5;
  c->allowance_mb = 64;
  c->max_slope = 1;
  c->max_spread = 5;
  c->max_spread_mb = 2;
  c->warmup = 0.2;
}

/* Applies one flag; 0, or -1 after printing what was wrong. */
static int soak_flag(soak_cfg *c, int id, const char *v) {
  const char *p = "ibrl-bench soak";
  long l = 0;
  int rc = 0;
  switch (id) {
    case F_SECONDS: return cli_parse_double(&c->seconds, p, "seconds", v, 5, 7 * 86400);
    case F_OBS: rc = cli_parse_long(&l, p, "obs-dim", v, 1, 512); c->obs_dim = (int)l; return rc;
    case F_ACT: rc = cli_parse_long(&l, p, "act-dim", v, 1, 128); c->act_dim = (int)l; return rc;
    case F_ONCAP: return cli_parse_long(&c->online_cap, p, "online-capacity", v, 1, 1L << 31);
    case F_DEMOCAP: return cli_parse_long(&c->demo_cap, p, "demo-capacity", v, 1, 1L << 31);
    case F_DEMOROWS: return cli_parse_long(&c->demo_rows, p, "demo-rows", v, 0, 1L << 31);
    case F_DUR:
      if (strcmp(v, "wal") != 0 && strcmp(v, "ckpt") != 0) {
        fprintf(stderr, "%s: --durability '%s' is unknown HINT: use ckpt or wal\n", p, v);
        return -1;
      }
      c->durability = v;
      return 0;
    case F_CKPER: return cli_parse_double(&c->ckpt_period, p, "ckpt-period", v, 0, 86400);
    case F_CKDIR: c->ckpt_dir = v; return 0;
    case F_WRITERS: rc = cli_parse_long(&l, p, "writers", v, 1, SOAK_MAX_WRITERS); c->writers = (int)l; return rc;
    case F_SAMPLERS: rc = cli_parse_long(&l, p, "samplers", v, 0, SOAK_MAX_SAMPLERS); c->samplers = (int)l; return rc;
    case F_BATCH: rc = cli_parse_long(&l, p, "batch", v, 1, 1024); c->batch = (int)l; return rc;
    case F_REOPEN: rc = cli_parse_long(&l, p, "reopen", v, 1, 1000000); c->reopen = (int)l; return rc;
    case F_ACTORS: rc = cli_parse_long(&l, p, "actors", v, 1, 4096); c->actors = (int)l; return rc;
    case F_FRAC: return cli_parse_double(&c->demo_fraction, p, "demo-fraction", v, 0, 1);
    case F_IRATE: return cli_parse_double(&c->insert_rate, p, "insert-rate", v, 0, 1e9);
    case F_SRATE: return cli_parse_double(&c->sample_rate, p, "sample-rate", v, 0, 1e9);
    case F_CHURN: return cli_parse_double(&c->churn_every, p, "churn-every", v, 0, 86400);
    case F_BAD: return cli_parse_double(&c->bad_every, p, "bad-every", v, 0, 86400);
    case F_SRVTHREADS: rc = cli_parse_long(&l, p, "server-threads", v, 1, 64); c->server_threads = (int)l; return rc;
    case F_DEADLINE: rc = cli_parse_long(&l, p, "deadline-ms", v, 100, 600000); c->deadline_ms = (int)l; return rc;
    case F_ALLOW: return cli_parse_double(&c->allowance_mb, p, "allowance-mb", v, 0, 1e6);
    case F_SLOPE: return cli_parse_double(&c->max_slope, p, "max-slope", v, 0, 1e6);
    case F_SLOPEKIND:
      if (strcmp(v, "ls") != 0 && strcmp(v, "median") != 0) {
        fprintf(stderr, "%s: --slope '%s' is unknown HINT: use ls or median\n", p, v);
        return -1;
      }
      c->slope_median = strcmp(v, "median") == 0;
      return 0;
    case F_SPREAD: return cli_parse_double(&c->max_spread, p, "max-spread", v, 0, 100);
    case F_SPREADMB: return cli_parse_double(&c->max_spread_mb, p, "max-spread-mb", v, 0, 1e6);
    case F_WARMUP: return cli_parse_double(&c->warmup, p, "warmup", v, 0, 0.9);
    case F_PROGRESS: return cli_parse_double(&c->progress, p, "progress", v, 1, 86400);
    case F_CSV: c->csv = v; return 0;
    case F_JSON: c->json = 1; return 0;
    case F_BIN: c->replay_bin = v; return 0;
    default: return -1;
  }
}

/* Returns CLI_RUN, CLI_HELP or CLI_BAD (message printed). */
static int soak_parse(soak_cfg *c, int argc, char **argv) {
  int id, bad = 0;
  optind = 1;
  while ((id = getopt_long(argc, argv, "h", soak_opts, NULL)) != -1) {
    if (id == F_HELP || id == 'h') return CLI_HELP;
    if (id == '?') {
      fprintf(stderr, "ibrl-bench soak: bad flag (see ibrl-bench soak --help)\n");
      return CLI_BAD;
    }
    bad |= soak_flag(c, id, optarg) != 0;
  }
  if (optind < argc) {
    fprintf(stderr, "ibrl-bench soak: unexpected argument '%s' (see --help)\n", argv[optind]);
    return CLI_BAD;
  }
  if (bad) return CLI_BAD;
  if (c->actors < c->writers) {
    fprintf(stderr, "ibrl-bench soak: --actors %d is fewer than --writers %d HINT: every writer needs its own ids\n",
            c->actors, c->writers);
    return CLI_BAD;
  }
  if (c->demo_rows < 0) c->demo_rows = c->demo_cap / 2;
  if (c->demo_rows > c->demo_cap) {
    fprintf(stderr, "ibrl-bench soak: --demo-rows %ld exceeds --demo-capacity %ld HINT: a full demo table refuses "
            "inserts\n", c->demo_rows, c->demo_cap);
    return CLI_BAD;
  }
  return CLI_RUN;
}

/* ---- the ibrl-replay child ---- */

typedef struct soak_child {
  pid_t pid;
  int out_fd; /* read end of its stdout (kept open so a late write cannot SIGPIPE it) */
  char target[64];
} soak_child;

/* The memory the configuration predicts for one table, as `ibrl-replay --help` states it. */
static double soak_table_bytes(long cap, int obs, int act) {
  long floats = ((2L * obs + act + 2 + 15) / 16) * 16;
  return (double)cap * (double)(floats * 4 + 22);
}

/* Reads the child's stdout until "listening on HOST:PORT" (20 s bound). Returns the port or -1. */
static int soak_child_port(int fd) {
  char buf[512];
  size_t len = 0;
  double until = ib_now_s() + 20;
  while (len + 1 < sizeof buf) {
    struct pollfd p = {fd, POLLIN, 0};
    int left = (int)((until - ib_now_s()) * 1000);
    if (left <= 0 || poll(&p, 1, left) <= 0) return -1;
    ssize_t n = read(fd, buf + len, 1);
    if (n <= 0) return -1;
    if (buf[len++] != '\n') continue;
    buf[len] = '\0';
    const char *colon = strrchr(buf, ':');
    if (strncmp(buf, "listening on ", 13) == 0 && colon != NULL) return atoi(colon + 1);
    len = 0;
  }
  return -1;
}

/* Starts the shard with the soak's configuration. Returns IB_OK or an IB_E* (message set). */
static int soak_child_start(soak_child *ch, const soak_cfg *c, const char *dir) {
  char obs[16], act[16], on[24], demo[24], per[32], thr[16];
  snprintf(obs, sizeof obs, "%d", c->obs_dim);
  snprintf(act, sizeof act, "%d", c->act_dim);
  snprintf(on, sizeof on, "%ld", c->online_cap);
  snprintf(demo, sizeof demo, "%ld", c->demo_cap);
  snprintf(per, sizeof per, "%g", c->ckpt_period);
  snprintf(thr, sizeof thr, "%d", c->server_threads);
  const char *argv[] = {c->replay_bin, "--port", "0", "--obs-dim", obs, "--act-dim", act, "--online-capacity", on,
                        "--demo-capacity", demo, "--threads", thr, "--durability", c->durability, "--ckpt-dir", dir,
                        "--ckpt-period", per, NULL};
  int fd[2];
  if (pipe(fd) != 0) return ib_fail(IB_EIO, "pipe: %s", strerror(errno));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return ib_fail(IB_EIO, "fork: %s", strerror(errno));
  if (pid == 0) {
    /* Die with the soak (a ctest timeout kills only the soak): no orphan shard keeps its port. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    execv(c->replay_bin, (char *const *)argv);
    _exit(127);
  }
  close(fd[1]);
  ch->pid = pid;
  ch->out_fd = fd[0];
  int port = soak_child_port(fd[0]);
  if (port <= 0) {
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    ch->pid = -1;
    close(fd[0]);
    if (WIFEXITED(st))
      return ib_fail(IB_EUNAVAIL, "%s exited with status %d before printing 'listening on HOST:PORT' HINT: run it by "
                     "hand with the same flags; see its messages above", c->replay_bin, WEXITSTATUS(st));
    return ib_fail(IB_ETIMEDOUT, "%s did not print 'listening on HOST:PORT' within 20 s (killed) HINT: run it by hand "
                   "with the same flags", c->replay_bin);
  }
  snprintf(ch->target, sizeof ch->target, "127.0.0.1:%d", port);
  return IB_OK;
}

/* SIGTERM, then waits up to `secs`; returns the exit code, 128+signal, or -1 (killed after the wait). */
static int soak_child_stop(soak_child *ch, double secs) {
  if (ch->pid <= 0) return -1;
  kill(ch->pid, SIGTERM);
  double until = ib_now_s() + secs;
  int st = 0, code = -1;
  for (;;) {
    pid_t r = waitpid(ch->pid, &st, WNOHANG);
    if (r == ch->pid) {
      code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    if (r < 0 || ib_now_s() > until) {
      kill(ch->pid, SIGKILL);
      waitpid(ch->pid, &st, 0);
      break;
    }
    usleep(20000);
  }
  close(ch->out_fd);
  ch->pid = -1;
  return code;
}

/* 1 if the child already exited (reaped; *code = its status), else 0. */
static int soak_child_gone(soak_child *ch, int *code) {
  int st = 0;
  if (waitpid(ch->pid, &st, WNOHANG) != ch->pid) return 0;
  *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  close(ch->out_fd);
  ch->pid = -1;
  return 1;
}

/* ---- /proc ---- */

/* VmRSS, VmHWM (MB) and Threads of `pid` from /proc/<pid>/status, open fds from /proc/<pid>/fd.
 * Returns 0, or -1 if the process is gone. */
static int soak_proc_read(pid_t pid, soak_point *p) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long kb;
  while (fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) p->rss_mb = (double)kb / 1024.0;
    else if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) p->hwm_mb = (double)kb / 1024.0;
    else if (sscanf(line, "Threads: %ld", &kb) == 1) p->threads = (int)kb;
  }
  fclose(f);
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  p->fds = 0;
  if (d != NULL) {
    for (struct dirent *e; (e = readdir(d)) != NULL;)
      if (e->d_name[0] != '.') p->fds++;
    closedir(d);
  }
  return 0;
}

/* ---- the checkpoint directory ---- */

/* Removes the files of `dir` (one level: the shard writes no subdirectories) and `dir`. */
static void soak_dir_remove(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  char path[PATH_MAX];
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

/* ---- traffic ---- */

static void soak_error(soak_shared *sh, const char *who, int rc) {
  uint64_t k = atomic_fetch_add(&sh->errors, 1);
  if (k < SOAK_MAX_ERRMSG)
    fprintf(stderr, "soak: %s failed (%d): %s%s\n", who, rc, ib_errmsg(),
            k + 1 == SOAK_MAX_ERRMSG ? " (further failures are only counted)" : "");
}

/* Sleeps so that `rows` more rows keep a thread at `rate` rows/s (0 = no cap). A thread that fell
 * behind (the shard stalled) does not burst to catch up: bursts of concurrent messages would raise
 * the heap's high-water mark at random times and look like growth. */
static void soak_pace(double *t_next, double rows, double rate) {
  if (rate <= 0) return;
  double now = ib_now_s();
  if (*t_next < now) *t_next = now;
  *t_next += rows / rate;
  double wait = *t_next - now;
  if (wait > 0) {
    struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
    nanosleep(&ts, NULL);
  }
}

/* Finite rows that vary with the seqs; the values do not matter, only that they are valid. */
static void soak_fill(rc_batch *b, int n, int proposer, uint64_t salt) {
  b->n = n;
  for (int i = 0; i < n; i++) {
    float v = (float)((salt + (uint64_t)i) % 1000) * 1e-3f;
    for (int j = 0; j < b->obs_dim; j++) {
      b->obs[(size_t)i * b->obs_dim + j] = v + (float)j;
      b->next_obs[(size_t)i * b->obs_dim + j] = v - (float)j;
    }
    for (int j = 0; j < b->act_dim; j++) b->action[(size_t)i * b->act_dim + j] = v - 0.5f;
    b->reward[i] = v;
    b->discount[i] = 0.99f;
    b->proposer[i] = (uint8_t)proposer;
    b->episode_end[i] = (uint8_t)((salt + (uint64_t)i) % 50 == 49);
    b->episode_success[i] = 0;
    b->weight_version[i] = salt / 1000;
  }
}

typedef struct soak_writer_job {
  soak_shared *sh;
  int k; /* thread index */
} soak_writer_job;

/* One writer session: open actor `id` at *seq, write up to cfg->reopen batches, close; *seq
 * continues where the writer stopped. Returns 0, or -1 when the traffic should stop. */
static int soak_writer_session(soak_shared *sh, rc_batch *b, uint32_t id, uint64_t *seq, double *t_next) {
  const soak_cfg *c = sh->cfg;
  rc_writer *w = NULL;
  int rc = rc_writer_open(&w, sh->c, "online", id, *seq, 0);
  if (rc != IB_OK) {
    soak_error(sh, "rc_writer_open", rc);
    return -1;
  }
  uint64_t acked = 0;
  for (int i = 0; i < c->reopen && !atomic_load(&sh->stop); i++) {
    soak_fill(b, c->batch, i % 2 ? RC_PROPOSER_RL : RC_PROPOSER_IL, *seq + (uint64_t)i * (uint64_t)c->batch);
    rc = rc_writer_write(w, b);
    if (rc != IB_OK) {
      soak_error(sh, "rc_writer_write", rc);
      break;
    }
    rc_writer_stats st;
    rc_writer_stats_get(w, &st);
    atomic_fetch_add(&sh->rows_written, st.acked - acked);
    acked = st.acked;
    soak_pace(t_next, c->batch, c->insert_rate / c->writers);
  }
  rc_writer_stats st;
  rc_writer_stats_get(w, &st);
  *seq = st.next_seq;
  int crc = rc_writer_close(w);
  if (crc != IB_OK) soak_error(sh, "rc_writer_close", crc);
  else atomic_fetch_add(&sh->rows_written, st.acked + st.pending - acked);
  atomic_fetch_add(&sh->reopens, 1);
  return 0;
}

static void *soak_writer_main(void *arg) {
  soak_writer_job *j = arg;
  soak_shared *sh = j->sh;
  const soak_cfg *c = sh->cfg;
  int mine = 0;
  for (int a = j->k; a < c->actors; a += c->writers) mine++;
  uint64_t *seq = ib_xcalloc((size_t)mine, sizeof *seq);
  rc_batch b;
  rc_batch_init(&b, c->batch, c->obs_dim, c->act_dim);
  double t_next = 0;
  for (int s = 0; !atomic_load(&sh->stop); s++) {
    int slot = s % mine;
    uint32_t id = (uint32_t)(j->k + slot * c->writers);
    if (soak_writer_session(sh, &b, id, &seq[slot], &t_next) != 0) break;
  }
  rc_batch_free(&b);
  free(seq);
  return NULL;
}

typedef struct soak_sampler_job {
  soak_shared *sh;
  int k;
} soak_sampler_job;

/* SOAK_SAMPLE_PHASE samples, with rc_sample (api 0) or a fresh rc_sampler (api 1). */
static void soak_sample_phase(soak_shared *sh, rc_batch *b, int api, double *t_next) {
  const soak_cfg *c = sh->cfg;
  rc_sampler *smp = NULL;
  if (api == 1) {
    int rc = rc_sampler_open(&smp, sh->c, c->batch, c->demo_fraction);
    if (rc != IB_OK) {
      soak_error(sh, "rc_sampler_open", rc);
      return;
    }
  }
  for (int i = 0; i < SOAK_SAMPLE_PHASE && !atomic_load(&sh->stop); i++) {
    int rc = api == 1 ? rc_sampler_next(smp, b) : rc_sample(sh->c, b, c->batch, c->demo_fraction);
    if (rc != IB_OK) {
      soak_error(sh, api == 1 ? "rc_sampler_next" : "rc_sample", rc);
      break;
    }
    atomic_fetch_add(&sh->rows_sampled, (uint64_t)b->n);
    soak_pace(t_next, c->batch, c->sample_rate / c->samplers);
  }
  rc_sampler_close(smp);
}

static void *soak_sampler_main(void *arg) {
  soak_sampler_job *j = arg;
  soak_shared *sh = j->sh;
  rc_batch b;
  rc_batch_init(&b, sh->cfg->batch, sh->cfg->obs_dim, sh->cfg->act_dim);
  double t_next = 0;
  for (int phase = j->k; !atomic_load(&sh->stop); phase++) soak_sample_phase(sh, &b, phase % 2, &t_next);
  rc_batch_free(&b);
  return NULL;
}

/* Preloads the demo table (before the traffic starts). */
static int soak_preload_demos(soak_shared *sh) {
  const soak_cfg *c = sh->cfg;
  if (c->demo_rows == 0) return IB_OK;
  rc_writer *w = NULL;
  int rc = rc_writer_open(&w, sh->c, "demo", SOAK_DEMO_ACTOR, 0, 0);
  if (rc != IB_OK) return rc;
  rc_batch b;
  rc_batch_init(&b, c->batch, c->obs_dim, c->act_dim);
  for (long done = 0; done < c->demo_rows && rc == IB_OK;) {
    int n = (int)(c->demo_rows - done < c->batch ? c->demo_rows - done : c->batch);
    soak_fill(&b, n, RC_PROPOSER_DEMO, (uint64_t)done);
    rc = rc_writer_write(w, &b);
    done += n;
  }
  int crc = rc_writer_close(w);
  rc_batch_free(&b);
  return rc != IB_OK ? rc : crc;
}

/* ---- bad requests ---- */

typedef struct soak_bad {
  rc_batch ok;   /* 4 valid rows; one is made NaN for the NaN request */
  rc_batch wide; /* 4 rows one obs wider than the shard's */
  uint64_t seq;
} soak_bad;

/* Sends bad request number k and checks the refusal: INVALID_ARGUMENT (IB_EINVAL) with a message
 * naming the fault. Kinds rotate NaN / wrong dims / unknown table; the encoding alternates
 * columns (ibrl's client) and items (other clients) every three. Returns 1 if refused as it
 * should be, 0 if not (printed). */
static int soak_bad_one(soak_shared *sh, soak_bad *bd, uint64_t k) {
  int kind = (int)(k % 3), items = (int)((k / 3) % 2);
  static const char *const names[] = {"a NaN row", "rows of obs_dim + 1", "an unknown table"};
  static const char *const expect[] = {"not finite", "obs", "nosuch"};
  rc_batch *b = kind == 1 ? &bd->wide : &bd->ok;
  for (int i = 0; i < 4; i++) b->actor_id[i] = SOAK_BAD_ACTOR, b->seq[i] = bd->seq++;
  b->obs[1] = kind == 0 ? NAN : 1.0f;
  const char *table = kind == 2 ? "nosuch" : "online";
  grpc_byte_buffer *req = items ? rc__encode_insert(b, 0, 4, table) : rc__encode_insert_columns(b, 0, 4, table);
  grpc_byte_buffer *rep = NULL;
  int rc = rc__unary(sh->c, 0, WIRE_PATH_INSERT, "Insert (bad request)", req, &rep, -1);
  grpc_byte_buffer_destroy(req);
  if (rep != NULL) grpc_byte_buffer_destroy(rep);
  b->obs[1] = 1.0f;
  if (rc == IB_EINVAL && strstr(ib_errmsg(), expect[kind]) != NULL) return 1;
  fprintf(stderr, "soak: bad request %llu (%s, as %s) was not refused as INVALID_ARGUMENT naming '%s': rc %d, '%s'\n",
          (unsigned long long)k, names[kind], items ? "items" : "columns", expect[kind], rc,
          rc == IB_OK ? "accepted" : ib_errmsg());
  return 0;
}

/* A fresh client: open, Info, health, close (connection churn). */
static void soak_churn(soak_shared *sh, rc_shard_info *info) {
  rc_opts o;
  memset(&o, 0, sizeof o);
  o.shards = sh->target;
  o.deadline_ms = sh->cfg->deadline_ms;
  o.seed = atomic_load(&sh->churns) + 7;
  rc_client *c = NULL;
  int rc = rc_client_open(&c, &o);
  if (rc == IB_OK) rc = rc_info_get(c, 0, info);
  int serving = 0;
  if (rc == IB_OK) rc = rc_health(c, 0, "", &serving);
  if (rc == IB_OK && !serving) rc = ib_fail(IB_EUNAVAIL, "health says NOT_SERVING during the soak");
  if (rc != IB_OK) soak_error(sh, "connection churn", rc);
  rc_client_close(c);
  atomic_fetch_add(&sh->churns, 1);
}

/* Info a few times a second, churn and bad requests at their periods. */
static void *soak_misc_main(void *arg) {
  soak_shared *sh = arg;
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  soak_bad bd;
  rc_batch_init(&bd.ok, 4, c->obs_dim, c->act_dim);
  rc_batch_init(&bd.wide, 4, c->obs_dim + 1, c->act_dim);
  soak_fill(&bd.ok, 4, RC_PROPOSER_RL, 0);
  soak_fill(&bd.wide, 4, RC_PROPOSER_RL, 0);
  bd.seq = 0;
  double t0 = ib_now_s(), next_churn = t0 + c->churn_every, next_bad = t0 + c->bad_every;
  while (!atomic_load(&sh->stop)) {
    usleep(200000);
    double now = ib_now_s();
    if (c->bad_every > 0 && now >= next_bad) {
      uint64_t k = atomic_fetch_add(&sh->bad_sent, 1);
      if (soak_bad_one(sh, &bd, k)) atomic_fetch_add(&sh->bad_refused, 1);
      next_bad = now + c->bad_every;
    }
    if (c->churn_every > 0 && now >= next_churn) {
      soak_churn(sh, info);
      next_churn = now + c->churn_every;
    }
    /* Right after a bad request too: the shard must go on serving. */
    int rc = rc_info_get(sh->c, 0, info);
    if (rc != IB_OK) soak_error(sh, "Info", rc);
    atomic_fetch_add(&sh->infos, 1);
  }
  rc_batch_free(&bd.ok);
  rc_batch_free(&bd.wide);
  free(info);
  return NULL;
}

/* ---- the timeline ---- */

typedef struct soak_run {
  soak_point *pts; /* owned [cap] */
  int n, cap;
  double tables_mb, info_tables_mb; /* predicted by the --help formula; as the shard's Info says */
  uint64_t dup_online;
  int child_exit;
  int child_died; /* the shard exited during the traffic */
  char dir[PATH_MAX];
} soak_run;

static const rc_table_info *soak_table(const rc_shard_info *in, const char *name) {
  for (int i = 0; i < in->n_tables; i++)
    if (strcmp(in->tables[i].name, name) == 0) return &in->tables[i];
  return NULL;
}

/* Fills the shard's figures of point p from Info (counted as a failure if Info fails). */
static void soak_point_info(soak_shared *sh, rc_shard_info *info, soak_point *p, soak_run *run) {
  int rc = rc_info_get(sh->c, 0, info);
  if (rc != IB_OK) {
    soak_error(sh, "Info (timeline)", rc);
    return;
  }
  const rc_table_info *on = soak_table(info, "online"), *dm = soak_table(info, "demo");
  if (on != NULL) p->online_size = on->size, p->online_inserted = on->inserted, run->dup_online = on->duplicates;
  if (dm != NULL) p->demo_size = dm->size;
  p->checkpoints = info->checkpoints;
  p->info_ms = info->rtt_ms;
  run->info_tables_mb = 0;
  for (int i = 0; i < info->n_tables; i++) run->info_tables_mb += (double)info->tables[i].bytes / 1048576.0;
}

static void soak_progress(const soak_point *p, const soak_shared *sh, long cap) {
  printf("t %6.0fs  rss %7.1f MB (hwm %7.1f)  fds %3d thr %3d  ins %7.0f/s smp %7.0f/s  online %llu/%ld (wrapped "
         "%.1fx)  ckpt %llu  bad refused %llu/%llu  churn %llu  errors %llu\n",
         p->t, p->rss_mb, p->hwm_mb, p->fds, p->threads, p->ins_per_s, p->smp_per_s,
         (unsigned long long)p->online_size, cap, (double)p->online_inserted / (double)cap,
         (unsigned long long)p->checkpoints, (unsigned long long)p->bad_refused,
         (unsigned long long)atomic_load(&sh->bad_sent), (unsigned long long)atomic_load(&sh->churns),
         (unsigned long long)p->errors);
  fflush(stdout);
}

/* Samples once a second until cfg->seconds have passed or the child exited. */
static void soak_watch(soak_shared *sh, soak_child *ch, soak_run *run) {
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  double t0 = ib_now_s(), next_progress = c->progress;
  uint64_t last_w = atomic_load(&sh->rows_written), last_s = atomic_load(&sh->rows_sampled);
  double last_t = 0;
  for (int i = 1; run->n < run->cap; i++) {
    double wait = t0 + i - ib_now_s();
    if (wait > 0) usleep((useconds_t)(wait * 1e6));
    else i = (int)(ib_now_s() - t0); /* late (a stalled Info): the next point is a second from now */
    soak_point *p = &run->pts[run->n];
    memset(p, 0, sizeof *p);
    p->t = ib_now_s() - t0;
    if (soak_child_gone(ch, &run->child_exit) || soak_proc_read(ch->pid, p) != 0) {
      run->child_died = 1;
      fprintf(stderr, "soak: the shard exited during the traffic (status %d) HINT: see its log above\n",
              run->child_exit);
      break;
    }
    uint64_t w = atomic_load(&sh->rows_written), s = atomic_load(&sh->rows_sampled);
    p->ins_per_s = (double)(w - last_w) / (p->t - last_t);
    p->smp_per_s = (double)(s - last_s) / (p->t - last_t);
    last_w = w, last_s = s, last_t = p->t;
    soak_point_info(sh, info, p, run);
    p->errors = atomic_load(&sh->errors);
    p->bad_refused = atomic_load(&sh->bad_refused);
    run->n++;
    if (p->t >= next_progress) {
      soak_progress(p, sh, c->online_cap);
      next_progress += c->progress;
    }
    if (p->t >= c->seconds) break;
  }
  free(info);
}

static int soak_csv_write(const char *path, const soak_run *run) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return ib_fail(IB_EIO, "--csv %s: %s HINT: check the directory exists and is writable", path,
                                strerror(errno));
  fprintf(f, "t_s,rss_mb,hwm_mb,fds,threads,inserts_per_s,samples_per_s,online_size,online_inserted,demo_size,"
             "checkpoints,errors,bad_refused,info_ms\n");
  for (int i = 0; i < run->n; i++) {
    const soak_point *p = &run->pts[i];
    fprintf(f, "%.2f,%.2f,%.2f,%d,%d,%.0f,%.0f,%llu,%llu,%llu,%llu,%llu,%llu,%.1f\n", p->t, p->rss_mb, p->hwm_mb, p->fds,
            p->threads, p->ins_per_s, p->smp_per_s, (unsigned long long)p->online_size,
            (unsigned long long)p->online_inserted, (unsigned long long)p->demo_size,
            (unsigned long long)p->checkpoints, (unsigned long long)p->errors, (unsigned long long)p->bad_refused, p->info_ms);
  }
  if (fclose(f) != 0) return ib_fail(IB_EIO, "--csv %s: write failed HINT: disk full?", path);
  return IB_OK;
}

/* ---- the verdict ---- */

typedef struct soak_verdict {
  double warm_t;           /* the fit window starts here */
  int ring_full_ckpt;      /* 1 if the ring filled and a checkpoint was done before warm_t */
  int n_fit;               /* points in the window */
  double warm_rss, end_rss, peak_hwm, predicted_mb;
  double slope, slope_med, spread, spread_bound; /* MB/min (least squares, median), MB */
  double active;                                 /* share of window points with inserts flowing */
  int fds_min, fds_max, thr_min, thr_max;
  double info_max_ms; /* slowest timeline Info call */
  int stalls;         /* timeline Info calls slower than 1 s */
  int bounded, flat, clean;
  uint64_t rows_written, rows_sampled, online_inserted, checkpoints, errors, bad_sent, bad_refused, churns, infos;
} soak_verdict;

/* The later of (ring full and a checkpoint done) and warmup x the run. */
static double soak_warm_t(const soak_cfg *c, const soak_run *run, int *ready) {
  double floor_t = c->warmup * c->seconds;
  int need_ckpt = c->ckpt_period > 0;
  *ready = 0;
  for (int i = 0; i < run->n; i++) {
    const soak_point *p = &run->pts[i];
    if (p->online_size >= (uint64_t)c->online_cap && (!need_ckpt || p->checkpoints >= 1)) {
      *ready = 1;
      return p->t > floor_t ? p->t : floor_t;
    }
  }
  return floor_t;
}

static int soak_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Over the points at t >= v->warm_t: the least-squares slope and the median per-second growth
 * (MB/min), the spread, the share of points with inserts flowing, fd and thread ranges. A leak
 * per message grows RSS every second, so it moves the median; the heap's high-water steps (a
 * burst of concurrent messages after a stall, once) move the least-squares slope of a short
 * window but not the median. */
static void soak_fit(const soak_run *run, soak_verdict *v) {
  double st = 0, sr = 0, stt = 0, str = 0, lo = INFINITY, hi = -INFINITY;
  double *growth = ib_xcalloc((size_t)run->n + 1, sizeof *growth);
  int n = 0, ng = 0, active = 0;
  const soak_point *prev = NULL;
  v->fds_min = v->thr_min = INT_MAX;
  v->fds_max = v->thr_max = 0;
  for (int i = 0; i < run->n; i++) {
    const soak_point *p = &run->pts[i];
    v->info_max_ms = fmax(v->info_max_ms, p->info_ms);
    v->stalls += p->info_ms > 1000;
    if (p->t < v->warm_t) continue;
    if (n == 0) v->warm_rss = p->rss_mb;
    double t = p->t / 60.0;
    st += t, sr += p->rss_mb, stt += t * t, str += t * p->rss_mb, n++;
    lo = fmin(lo, p->rss_mb), hi = fmax(hi, p->rss_mb);
    active += p->ins_per_s > 0;
    if (prev != NULL && p->t > prev->t) growth[ng++] = (p->rss_mb - prev->rss_mb) / (p->t - prev->t) * 60.0;
    prev = p;
    if (p->fds < v->fds_min) v->fds_min = p->fds;
    if (p->fds > v->fds_max) v->fds_max = p->fds;
    if (p->threads < v->thr_min) v->thr_min = p->threads;
    if (p->threads > v->thr_max) v->thr_max = p->threads;
  }
  v->n_fit = n;
  double den = n * stt - st * st;
  v->slope = n >= 2 && den > 0 ? (n * str - st * sr) / den : NAN;
  qsort(growth, (size_t)ng, sizeof *growth, soak_cmp_double);
  v->slope_med = ng == 0 ? NAN : ng % 2 ? growth[ng / 2] : 0.5 * (growth[ng / 2 - 1] + growth[ng / 2]);
  free(growth);
  v->spread = n >= 1 ? hi - lo : NAN;
  v->active = n >= 1 ? (double)active / n : 0;
}

static void soak_judge(const soak_cfg *c, const soak_shared *sh, const soak_run *run, soak_verdict *v) {
  memset(v, 0, sizeof *v);
  v->warm_t = soak_warm_t(c, run, &v->ring_full_ckpt);
  soak_fit(run, v);
  const soak_point *last = run->n > 0 ? &run->pts[run->n - 1] : NULL;
  v->end_rss = last ? last->rss_mb : NAN;
  v->peak_hwm = last ? last->hwm_mb : NAN;
  v->predicted_mb = run->tables_mb + c->allowance_mb;
  v->spread_bound = fmax(c->max_spread / 100.0 * v->warm_rss, c->max_spread_mb);
  v->rows_written = atomic_load(&sh->rows_written);
  v->rows_sampled = atomic_load(&sh->rows_sampled);
  v->online_inserted = last ? last->online_inserted : 0;
  v->checkpoints = last ? last->checkpoints : 0;
  v->errors = atomic_load(&sh->errors);
  v->bad_sent = atomic_load(&sh->bad_sent);
  v->bad_refused = atomic_load(&sh->bad_refused);
  v->churns = atomic_load(&sh->churns);
  v->infos = atomic_load(&sh->infos);
  v->bounded = last != NULL && v->peak_hwm <= v->predicted_mb;
  double slope = c->slope_median ? v->slope_med : v->slope;
  v->flat = v->n_fit >= 5 && v->active >= 0.5 && slope < c->max_slope && v->spread < v->spread_bound;
  v->clean = v->errors == 0 && v->bad_refused == v->bad_sent && (c->bad_every <= 0 || v->bad_sent > 0) &&
             !run->child_died && run->child_exit == 0;
}

static void soak_report(const soak_cfg *c, const soak_run *run, const soak_verdict *v) {
  printf("\nsoak: %d points over %.0f s; tables %.1f MB by the --help formula (Info: %.1f MB), prediction %.1f MB "
         "(+ %.0f MB allowance)\n", run->n, run->n ? run->pts[run->n - 1].t : 0.0, run->tables_mb,
         run->info_tables_mb, v->predicted_mb, c->allowance_mb);
  printf("soak: warm-up ends at %.0f s (%s); RSS %.1f MB there, %.1f MB at the end, peak (VmHWM) %.1f MB; fds %d..%d, "
         "threads %d..%d after warm-up\n", v->warm_t,
         v->ring_full_ckpt ? "ring full and a checkpoint done" : "WARNING: ring never full with a checkpoint",
         v->warm_rss, v->end_rss, v->peak_hwm, v->fds_min, v->fds_max, v->thr_min, v->thr_max);
  printf("soak: rows inserted %llu (shard: %llu online, ring wrapped %.1fx, %llu duplicates), sampled %llu; "
         "checkpoints %llu; bad requests refused %llu/%llu; fresh clients %llu; Info calls %llu; failed calls %llu\n",
         (unsigned long long)v->rows_written, (unsigned long long)v->online_inserted,
         (double)v->online_inserted / (double)c->online_cap, (unsigned long long)run->dup_online,
         (unsigned long long)v->rows_sampled, (unsigned long long)v->checkpoints, (unsigned long long)v->bad_refused,
         (unsigned long long)v->bad_sent, (unsigned long long)v->churns, (unsigned long long)v->infos,
         (unsigned long long)v->errors);
  printf("soak: slowest Info %.0f ms; %d Info calls of the timeline took over 1 s (the shard stalled)\n", v->info_max_ms,
         v->stalls);
  printf("soak: bounded by configuration: %s (peak %.1f MB %s %.1f MB)\n", v->bounded ? "PASS" : "FAIL",
         v->peak_hwm, v->bounded ? "<=" : ">", v->predicted_mb);
  printf("soak: flat after warm-up: %s (%s slope %+.3f MB/min, bound %.3f [least squares %+.3f, median %+.3f]; "
         "spread %.2f MB, bound %.2f MB; %d points, inserts flowing in %.0f%%)\n", v->flat ? "PASS" : "FAIL",
         c->slope_median ? "median" : "least-squares", c->slope_median ? v->slope_med : v->slope, c->max_slope,
         v->slope, v->slope_med, v->spread, v->spread_bound, v->n_fit, 100 * v->active);
  printf("soak: clean: %s (failed calls %llu, bad requests refused %llu/%llu, shard %s, exit %d)\n",
         v->clean ? "PASS" : "FAIL", (unsigned long long)v->errors, (unsigned long long)v->bad_refused,
         (unsigned long long)v->bad_sent, run->child_died ? "died during the traffic" : "stopped by SIGTERM",
         run->child_exit);
  if (!v->bounded)
    printf("soak: FAIL bounded: the shard's peak RSS %.1f MB exceeds tables %.1f MB + allowance %.0f MB HINT: a leak, "
           "or an allowance too small for this configuration (--allowance-mb)\n", v->peak_hwm, run->tables_mb,
           c->allowance_mb);
  if (!v->flat)
    printf("soak: FAIL flat: RSS grew %+.3f MB/min (%s; bound %.3f) with a spread of %.2f MB (bound %.2f) over %d "
           "points after %.0f s, inserts flowing in %.0f%% of them (need 50%%) HINT: a leak per call or message; "
           "compare the timeline (--csv) with the call counts; a shard that stalled most of the window proves "
           "nothing\n", c->slope_median ? v->slope_med : v->slope, c->slope_median ? "median" : "least squares",
           c->max_slope, v->spread, v->spread_bound, v->n_fit, v->warm_t, 100 * v->active);
  if (c->json)
    printf("{\"pass\":%s,\"bounded\":%s,\"flat\":%s,\"clean\":%s,\"seconds\":%.1f,\"tables_mb\":%.2f,"
           "\"predicted_mb\":%.2f,\"warm_t\":%.1f,\"warm_rss_mb\":%.2f,\"end_rss_mb\":%.2f,\"peak_hwm_mb\":%.2f,"
           "\"slope_mb_per_min\":%.4f,\"median_slope_mb_per_min\":%.4f,\"spread_mb\":%.3f,\"spread_bound_mb\":%.3f,\"rows_inserted\":%llu,"
           "\"rows_sampled\":%llu,\"checkpoints\":%llu,\"bad_sent\":%llu,\"bad_refused\":%llu,\"churns\":%llu,"
           "\"errors\":%llu}\n", v->bounded && v->flat && v->clean ? "true" : "false", v->bounded ? "true" : "false",
           v->flat ? "true" : "false", v->clean ? "true" : "false", run->n ? run->pts[run->n - 1].t : 0.0,
           run->tables_mb, v->predicted_mb, v->warm_t, v->warm_rss, v->end_rss, v->peak_hwm, v->slope, v->slope_med, v->spread,
           v->spread_bound, (unsigned long long)v->rows_written, (unsigned long long)v->rows_sampled,
           (unsigned long long)v->checkpoints, (unsigned long long)v->bad_sent, (unsigned long long)v->bad_refused,
           (unsigned long long)v->churns, (unsigned long long)v->errors);
}

/* ---- main ---- */

static int soak_default_bin(soak_cfg *c, char *buf, size_t cap) {
  if (c->replay_bin == NULL) {
    ssize_t n = readlink("/proc/self/exe", buf, cap - 16);
    if (n <= 0) return ib_fail(IB_EIO, "cannot read /proc/self/exe HINT: pass --replay-bin");
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    snprintf(slash ? slash + 1 : buf, cap - (size_t)(slash ? slash + 1 - buf : 0), "ibrl-replay");
    c->replay_bin = buf;
  }
  if (access(c->replay_bin, X_OK) != 0)
    return ib_fail(IB_ENOTFOUND, "'%s' is not an executable HINT: build the ibrl-replay target or pass --replay-bin",
                   c->replay_bin);
  return IB_OK;
}

/* The checkpoint directory: --ckpt-dir (created if missing, must be empty) or a fresh temp dir. */
static int soak_dir_make(const soak_cfg *c, soak_run *run, int *owned) {
  *owned = c->ckpt_dir == NULL;
  if (*owned) {
    snprintf(run->dir, sizeof run->dir, "/tmp/ibrl-soak-XXXXXX");
    if (mkdtemp(run->dir) == NULL) return ib_fail(IB_EIO, "mkdtemp /tmp/ibrl-soak-*: %s", strerror(errno));
    return IB_OK;
  }
  snprintf(run->dir, sizeof run->dir, "%s", c->ckpt_dir);
  if (mkdir(run->dir, 0755) != 0 && errno != EEXIST)
    return ib_fail(IB_EIO, "--ckpt-dir %s: %s", run->dir, strerror(errno));
  DIR *d = opendir(run->dir);
  if (d == NULL) return ib_fail(IB_EIO, "--ckpt-dir %s: %s", run->dir, strerror(errno));
  int files = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) files += e->d_name[0] != '.';
  closedir(d);
  if (files > 0)
    return ib_fail(IB_EINVAL, "--ckpt-dir %s is not empty HINT: the shard would restore from it; give a new directory",
                   run->dir);
  return IB_OK;
}

/* Runs the traffic threads against the started shard and watches it. */
static int soak_traffic(soak_shared *sh, soak_child *ch, soak_run *run) {
  const soak_cfg *c = sh->cfg;
  int rc = soak_preload_demos(sh);
  if (rc != IB_OK) {
    fprintf(stderr, "ibrl-bench soak: preloading %ld demo rows failed: %s\n", c->demo_rows, ib_errmsg());
    return rc;
  }
  pthread_t wt[SOAK_MAX_WRITERS], stt[SOAK_MAX_SAMPLERS], mt;
  soak_writer_job wj[SOAK_MAX_WRITERS];
  soak_sampler_job sj[SOAK_MAX_SAMPLERS];
  for (int k = 0; k < c->writers; k++) {
    wj[k] = (soak_writer_job){sh, k};
    IB_CHECK(pthread_create(&wt[k], NULL, soak_writer_main, &wj[k]) == 0);
  }
  for (int k = 0; k < c->samplers; k++) {
    sj[k] = (soak_sampler_job){sh, k};
    IB_CHECK(pthread_create(&stt[k], NULL, soak_sampler_main, &sj[k]) == 0);
  }
  IB_CHECK(pthread_create(&mt, NULL, soak_misc_main, sh) == 0);
  soak_watch(sh, ch, run);
  atomic_store(&sh->stop, 1);
  for (int k = 0; k < c->writers; k++) pthread_join(wt[k], NULL);
  for (int k = 0; k < c->samplers; k++) pthread_join(stt[k], NULL);
  pthread_join(mt, NULL);
  return IB_OK;
}

int bench_soak(int argc, char **argv) {
  soak_cfg cfg;
  soak_cfg_default(&cfg);
  int pr = soak_parse(&cfg, argc, argv);
  if (pr == CLI_HELP) {
    soak_usage(stdout);
    return 0;
  }
  if (pr == CLI_BAD) return 2;
  char binbuf[PATH_MAX];
  if (soak_default_bin(&cfg, binbuf, sizeof binbuf) != IB_OK) {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    return 2;
  }
  soak_run run;
  memset(&run, 0, sizeof run);
  run.cap = (int)cfg.seconds + 64;
  run.tables_mb = (soak_table_bytes(cfg.online_cap, cfg.obs_dim, cfg.act_dim) +
                   soak_table_bytes(cfg.demo_cap, cfg.obs_dim, cfg.act_dim)) / 1048576.0;
  int owned = 0;
  if (soak_dir_make(&cfg, &run, &owned) != IB_OK) {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    return 2;
  }
  printf("soak: %s, obs %d act %d, online %ld demo %ld (%ld preloaded), durability %s, checkpoints every %g s in %s; "
         "%d writers (batch %d, reopen every %d), %d samplers (demo fraction %g), churn every %g s, bad request every "
         "%g s, %.0f s\n", cfg.replay_bin, cfg.obs_dim, cfg.act_dim, cfg.online_cap, cfg.demo_cap, cfg.demo_rows,
         cfg.durability, cfg.ckpt_period, run.dir, cfg.writers, cfg.batch, cfg.reopen, cfg.samplers,
         cfg.demo_fraction, cfg.churn_every, cfg.bad_every, cfg.seconds);
  fflush(stdout);
  /* The child is forked before gRPC starts in this process (gRPC does not survive a fork). */
  soak_child ch;
  memset(&ch, 0, sizeof ch);
  if (soak_child_start(&ch, &cfg, run.dir) != IB_OK) {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    if (owned) soak_dir_remove(run.dir);
    return 2; /* setup, as bench_main's exit codes say */
  }
  rc_opts o;
  memset(&o, 0, sizeof o);
  o.shards = ch.target;
  o.deadline_ms = cfg.deadline_ms;
  o.seed = 1;
  soak_shared sh;
  memset(&sh, 0, sizeof sh);
  sh.cfg = &cfg;
  sh.target = ch.target;
  run.pts = ib_xcalloc((size_t)run.cap, sizeof *run.pts);
  int rc = rc_client_open(&sh.c, &o);
  if (rc == IB_OK) rc = soak_traffic(&sh, &ch, &run);
  else fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
  rc_client_close(sh.c);
  if (!run.child_died) run.child_exit = soak_child_stop(&ch, 60);
  if (owned) soak_dir_remove(run.dir);
  int status = 1;
  if (rc == IB_OK) {
    soak_verdict v;
    soak_judge(&cfg, &sh, &run, &v);
    soak_report(&cfg, &run, &v);
    if (cfg.csv != NULL && soak_csv_write(cfg.csv, &run) != IB_OK) fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    status = v.bounded && v.flat && v.clean ? 0 : 1;
    printf("soak: %s\n", status == 0 ? "PASS" : "FAIL");
  }
  free(run.pts);
  return status;
}
