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
 * bounds' justification (measured clean runs and a planted leak) is in docs/results/replay-soak.md.
 *
 * Restarts (--restart-every S > 0; issue #5: "survive restarts without losing acknowledged data").
 * Every S seconds the watching (main) thread kills the shard, SIGKILL and SIGTERM in turn (or one
 * of them, --restart-signal), waits for it, and starts it again with the same flags, the same
 * --ckpt-dir and the port the first incarnation picked (the server does not set SO_REUSEPORT, and
 * gRPC's listener sets SO_REUSEADDR, so the port binds again at once; a start that still fails is
 * retried for 10 s). The shard prints its port only after it restored its checkpoint and replayed
 * its log, so "listening" means ready. The clients are never told: writers, samplers, Info and
 * fresh clients ride through with rc_client's reconnect and rc_writer's resend. A call that fails
 * while an outage lasts (from the kill until the main client's first Info answered after the
 * restart, plus --down-grace) is counted as "failed while down", not as a failure.
 * No acknowledged loss: each writer session starts at its actor's first unacknowledged seq (seqs
 * are contiguous from 0 per actor), so "actor a has seqs [0, acked[a]) acknowledged" is exact.
 * The shard's Info lists each actor's highest stored seq; right after each restart every actor
 * must reach its acked[] as snapshotted after the kill, the demo table must hold the preloaded
 * rows, and at the end (writers closed, nothing pending) the online table must hold exactly
 * sum(highest seq + 1) rows, i.e. no hole below any actor's top. That needs a ring that never
 * evicts: the online capacity must exceed --insert-rate x --seconds (checked; with restarts the
 * rate must be capped) and at most RC_MAX_ACTORS actors (Info's list). With --durability ckpt a
 * SIGKILL loses the inserts since the last checkpoint by design, so the check is valid only for
 * SIGTERM restarts there (it goes red under SIGKILL: that is how its failure was shown).
 * Memory is judged per incarnation: each one's peak under the prediction, and the last one with
 * enough points after its own warm-up (a checkpoint done in it and --warmup of its length) flat.
 * With --restart-every 0 everything is as before.
 * --token T goes to the shard and every client; then one bad request in four is a valid Insert
 * from a client with a wrong token, which must come back UNAUTHENTICATED. --tls makes a
 * self-signed certificate for 127.0.0.1 with openssl (skipped with a message if that fails),
 * serves with it and has every client trust it. */
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
#define SOAK_MIN_FIT 8           /* points after warm-up an incarnation needs to be judged flat */
#define SOAK_SIG_ALTERNATE 0     /* --restart-signal alternate: SIGKILL, SIGTERM, SIGKILL, ... */

int bench_soak(int argc, char **argv);

typedef struct soak_cfg {
  const char *replay_bin, *ckpt_dir, *durability, *csv;
  int obs_dim, act_dim, writers, samplers, batch, reopen, actors, server_threads, json, deadline_ms;
  int slope_median; /* flat judges the median per-second growth instead of the least-squares slope */
  int reconnect_ms; /* every client's rc_opts.reconnect_ms (0 = the client's default) */
  long online_cap, demo_cap, demo_rows;
  double seconds, ckpt_period, demo_fraction, insert_rate, sample_rate, churn_every, bad_every, progress;
  double allowance_mb, max_slope, max_spread, max_spread_mb, warmup;
  double restart_every, down_grace; /* 0 = no restarts; seconds after an outage still counted as down */
  int restart_sig;                  /* SOAK_SIG_ALTERNATE, SIGKILL or SIGTERM */
  const char *token;                /* shared token of shard and clients, or NULL */
  int tls;                          /* --tls asked */
  const char *tls_cert, *tls_key;   /* set at run time when the certificate was made */
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
  int inc;                     /* incarnation of the shard (0, then +1 per restart) */
} soak_point;

/* What the threads share; counters are atomics, the rest is read-only while they run. */
typedef struct soak_shared {
  const soak_cfg *cfg;
  rc_client *c; /* borrowed: the shared client of writers, samplers and misc */
  const char *target;
  atomic_int stop;
  atomic_uint_fast64_t rows_written, rows_sampled, errors, bad_sent, bad_refused, churns, infos, reopens;
  atomic_uint_fast64_t errors_down, bad_down; /* calls that failed while the shard was down (restarts) */
  /* The last outage: from down_from_ns (the kill) to down_to_ns (INT64_MAX while it lasts). */
  atomic_int_fast64_t down_from_ns, down_to_ns;
  atomic_uint_fast64_t *acked; /* owned [cfg->actors]: actor a has seqs [0, acked[a]) acknowledged */
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
          "  --reconnect-ms N      every client's reconnect backoff, which gRPC also takes as the connect\n"
          "                        timeout (TLS handshakes under ASan need more than 250 ms); 0 = the\n"
          "                        client's default (250) [0]\n"
          "  --allowance-mb M      RSS allowed beyond the tables [64]\n"
          "  --max-slope M         flat: RSS slope bound after warm-up, MB/min [1]\n"
          "  --slope ls|median     the slope judged: least squares over the window, or the median of the\n"
          "                        per-second growth (robust to the heap's rare high-water steps) [ls]\n"
          "  --max-spread P        flat: RSS max-min bound after warm-up, %% of the warm RSS [5]\n"
          "  --max-spread-mb M     flat: floor of the spread bound in MB [2]\n"
          "  --warmup F            warm-up lasts at least this share of the run (with restarts: of each\n"
          "                        incarnation) [0.2]\n"
          "  --progress S          seconds between progress lines [5]\n"
          "  --csv FILE            write the timeline (one row a second) as CSV\n"
          "  --json                print the verdict as one JSON line at the end\n"
          "  --replay-bin P        the ibrl-replay binary [next to ibrl-bench]\n"
          "  --restart-every S     kill and restart the shard every S s (same port and --ckpt-dir), and check\n"
          "                        after each restart and at the end that no acknowledged row was lost;\n"
          "                        needs --insert-rate > 0, --online-capacity over --insert-rate x --seconds\n"
          "                        (nothing evicted) and --actors <= %d; 0 = off [0]\n"
          "  --restart-signal kill|term|alternate   how the shard is stopped for a restart [alternate]\n"
          "                        (--durability ckpt loses the inserts since the last checkpoint on kill)\n"
          "  --down-grace S        a call that fails up to S s after the restarted shard answered still\n"
          "                        counts as failed while down [1]\n"
          "  --token T             shared token of the shard and every client; adds a bad request with a\n"
          "                        wrong token, which must be refused UNAUTHENTICATED [none]\n"
          "  --tls                 serve TLS with a self-signed certificate made by openssl (skipped with a\n"
          "                        message if openssl fails); the clients trust it [off]\n"
          "  --help                this text\n",
          SOAK_MAX_WRITERS, SOAK_MAX_SAMPLERS, RC_MAX_ACTORS);
}

enum {
  F_SECONDS = 1, F_OBS, F_ACT, F_ONCAP, F_DEMOCAP, F_DEMOROWS, F_DUR, F_CKPER, F_CKDIR, F_WRITERS, F_SAMPLERS,
  F_BATCH, F_REOPEN, F_ACTORS, F_FRAC, F_IRATE, F_SRATE, F_CHURN, F_BAD, F_SRVTHREADS, F_DEADLINE, F_ALLOW,
  F_SLOPE, F_SLOPEKIND, F_SPREAD, F_SPREADMB, F_WARMUP, F_PROGRESS, F_CSV, F_JSON, F_BIN, F_RESTART, F_RESTARTSIG,
  F_GRACE, F_TOKEN, F_TLS, F_RECONNECT, F_HELP
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
    {"max-slope", required_argument, NULL, F_SLOPE},     {"slope", required_argument, NULL, F_SLOPEKIND},
    {"max-spread", required_argument, NULL, F_SPREAD},
    {"max-spread-mb", required_argument, NULL, F_SPREADMB}, {"warmup", required_argument, NULL, F_WARMUP},
    {"progress", required_argument, NULL, F_PROGRESS},   {"csv", required_argument, NULL, F_CSV},
    {"json", no_argument, NULL, F_JSON},                 {"replay-bin", required_argument, NULL, F_BIN},
    {"restart-every", required_argument, NULL, F_RESTART}, {"restart-signal", required_argument, NULL, F_RESTARTSIG},
    {"down-grace", required_argument, NULL, F_GRACE},    {"token", required_argument, NULL, F_TOKEN},
    {"tls", no_argument, NULL, F_TLS},                   {"reconnect-ms", required_argument, NULL, F_RECONNECT},
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
  c->down_grace = 1;
  c->restart_sig = SOAK_SIG_ALTERNATE;
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
    case F_RESTART:
      if (cli_parse_double(&c->restart_every, p, "restart-every", v, 0, 86400) != 0) return -1;
      if (c->restart_every > 0 && c->restart_every < 5) {
        fprintf(stderr, "%s: --restart-every '%s' is under 5 s HINT: a restart (kill, restore, reconnect) takes "
                "seconds; use 0 (off) or 5 and more\n", p, v);
        return -1;
      }
      return 0;
    case F_RESTARTSIG:
      if (strcmp(v, "kill") == 0) c->restart_sig = SIGKILL;
      else if (strcmp(v, "term") == 0) c->restart_sig = SIGTERM;
      else if (strcmp(v, "alternate") == 0) c->restart_sig = SOAK_SIG_ALTERNATE;
      else {
        fprintf(stderr, "%s: --restart-signal '%s' is unknown HINT: use kill, term or alternate\n", p, v);
        return -1;
      }
      return 0;
    case F_GRACE: return cli_parse_double(&c->down_grace, p, "down-grace", v, 0, 60);
    case F_TOKEN:
      if (v[0] == '\0' || strlen(v) > 256 || strpbrk(v, " \t\r\n") != NULL) {
        fprintf(stderr, "%s: --token '%s' is empty, longer than 256 or has white space HINT: a shared secret of "
                "printable characters\n", p, v);
        return -1;
      }
      c->token = v;
      return 0;
    case F_TLS: c->tls = 1; return 0;
    case F_RECONNECT: rc = cli_parse_long(&l, p, "reconnect-ms", v, 0, 60000); c->reconnect_ms = (int)l; return rc;
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
  if (c->restart_every > 0) {
    /* The loss check reads every actor's highest stored seq and the table size: an evicted row
     * would look lost, and Info lists at most RC_MAX_ACTORS actors. */
    if (c->actors > RC_MAX_ACTORS) {
      fprintf(stderr, "ibrl-bench soak: --actors %d exceeds %d with --restart-every HINT: Info lists at most %d actors, "
              "and the loss check needs all of them\n", c->actors, RC_MAX_ACTORS, RC_MAX_ACTORS);
      return CLI_BAD;
    }
    if (c->insert_rate <= 0) {
      fprintf(stderr, "ibrl-bench soak: --restart-every needs --insert-rate > 0 HINT: the loss check needs a ring that "
              "never evicts, so the rows a run inserts must be bounded by the rate x --seconds\n");
      return CLI_BAD;
    }
    /* The pacer never bursts, so a run inserts at most rate x seconds, plus what is in flight. */
    double most = c->insert_rate * c->seconds * 1.02 + (double)c->writers * 1024;
    if ((double)c->online_cap < most) {
      fprintf(stderr, "ibrl-bench soak: --online-capacity %ld is under the %.0f rows this run may insert (--insert-rate "
              "%g x --seconds %g, + 2%% + 1024 per writer) HINT: with --restart-every nothing may be evicted (an evicted "
              "row would look lost): raise --online-capacity or lower --insert-rate / --seconds\n", c->online_cap, most,
              c->insert_rate, c->seconds);
      return CLI_BAD;
    }
    if (strcmp(c->durability, "ckpt") == 0 && c->restart_sig != SIGTERM)
      fprintf(stderr, "ibrl-bench soak: NOTE --durability ckpt with SIGKILL restarts: the inserts acknowledged since "
              "the last checkpoint are lost by design, so expect 'acknowledged rows lost' above 0 (the check is "
              "valid for SIGTERM restarts only, --restart-signal term)\n");
  }
  return CLI_RUN;
}

/* ---- the ibrl-replay child ---- */

typedef struct soak_child {
  pid_t pid;
  int out_fd; /* read end of its stdout (kept open so a late write cannot SIGPIPE it) */
  int port;
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

/* Starts the shard with the soak's configuration on `port` (0 = let it pick). Returns IB_OK or an
 * IB_E* (message set). */
static int soak_child_start(soak_child *ch, const soak_cfg *c, const char *dir, int port_want) {
  char obs[16], act[16], on[24], demo[24], per[32], thr[16], ports[16];
  snprintf(obs, sizeof obs, "%d", c->obs_dim);
  snprintf(act, sizeof act, "%d", c->act_dim);
  snprintf(on, sizeof on, "%ld", c->online_cap);
  snprintf(demo, sizeof demo, "%ld", c->demo_cap);
  snprintf(per, sizeof per, "%g", c->ckpt_period);
  snprintf(thr, sizeof thr, "%d", c->server_threads);
  snprintf(ports, sizeof ports, "%d", port_want);
  const char *argv[32] = {c->replay_bin, "--port", ports, "--obs-dim", obs, "--act-dim", act, "--online-capacity", on,
                          "--demo-capacity", demo, "--threads", thr, "--durability", c->durability, "--ckpt-dir", dir,
                          "--ckpt-period", per};
  int na = 19;
  if (c->token != NULL) {
    argv[na++] = "--token";
    argv[na++] = c->token;
  }
  if (c->tls_cert != NULL) {
    argv[na++] = "--tls-cert";
    argv[na++] = c->tls_cert;
    argv[na++] = "--tls-key";
    argv[na++] = c->tls_key;
  }
  argv[na] = NULL;
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
  ch->port = port;
  snprintf(ch->target, sizeof ch->target, "127.0.0.1:%d", port);
  return IB_OK;
}

/* Sends `sig`, then waits up to `secs`; returns the exit code, 128+signal, or -1 (killed after the
 * wait). */
static int soak_child_stop(soak_child *ch, int sig, double secs) {
  if (ch->pid <= 0) return -1;
  kill(ch->pid, sig);
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

/* 1 if a call that started at t0_ns and fails now overlapped the last outage of the shard (from
 * its kill until --down-grace after it answered again); never without restarts. */
static int soak_in_outage(soak_shared *sh, int64_t t0_ns) {
  int64_t from = atomic_load(&sh->down_from_ns), to = atomic_load(&sh->down_to_ns);
  return from > 0 && (int64_t)ib_now_ns() >= from && t0_ns <= to;
}

/* Counts a failed call that started at t0_ns: as failed while down if it overlapped an outage,
 * else as a failure (the first SOAK_MAX_ERRMSG printed). */
static void soak_error(soak_shared *sh, const char *who, int rc, int64_t t0_ns) {
  if (soak_in_outage(sh, t0_ns)) {
    atomic_fetch_add(&sh->errors_down, 1);
    return;
  }
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

/* One writer session: open actor `id` at *seq, write up to cfg->reopen batches, flush, close. The
 * session ends at its first failure, so what the shard acknowledged is the prefix [first seq,
 * first seq + acked) (a flush acknowledges every pending row at once, in order); the next session
 * of this actor starts at the first unacknowledged seq (rows of it that the shard did store come
 * back as duplicates), so the actor's seqs stay contiguous and sh->acked[id] exact. Returns 0, or
 * -1 when the traffic should stop. */
static int soak_writer_session(soak_shared *sh, rc_batch *b, uint32_t id, uint64_t *seq, double *t_next) {
  const soak_cfg *c = sh->cfg;
  rc_writer *w = NULL;
  int rc = rc_writer_open(&w, sh->c, "online", id, *seq, 0);
  if (rc != IB_OK) {
    soak_error(sh, "rc_writer_open", rc, (int64_t)ib_now_ns());
    return -1;
  }
  uint64_t acked = 0;
  rc_writer_stats st;
  for (int i = 0; i < c->reopen && !atomic_load(&sh->stop); i++) {
    soak_fill(b, c->batch, i % 2 ? RC_PROPOSER_RL : RC_PROPOSER_IL, *seq + (uint64_t)i * (uint64_t)c->batch);
    int64_t t0 = (int64_t)ib_now_ns();
    rc = rc_writer_write(w, b);
    if (rc != IB_OK) {
      soak_error(sh, "rc_writer_write", rc, t0);
      break;
    }
    rc_writer_stats_get(w, &st);
    atomic_fetch_add(&sh->rows_written, st.acked - acked);
    atomic_store(&sh->acked[id], *seq + st.acked);
    acked = st.acked;
    soak_pace(t_next, c->batch, c->insert_rate / c->writers);
  }
  if (rc == IB_OK) {
    int64_t t0 = (int64_t)ib_now_ns();
    rc = rc_writer_flush(w, -1);
    if (rc != IB_OK) soak_error(sh, "rc_writer_flush", rc, t0);
  }
  rc_writer_stats_get(w, &st);
  atomic_fetch_add(&sh->rows_written, st.acked - acked);
  *seq += st.acked;
  atomic_store(&sh->acked[id], *seq);
  /* After a failure the close flushes (and may fail) again: that failure was counted above. */
  int crc = rc_writer_close(w);
  if (crc != IB_OK && rc == IB_OK) soak_error(sh, "rc_writer_close", crc, (int64_t)ib_now_ns());
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
      soak_error(sh, "rc_sampler_open", rc, (int64_t)ib_now_ns());
      return;
    }
  }
  for (int i = 0; i < SOAK_SAMPLE_PHASE && !atomic_load(&sh->stop); i++) {
    int64_t t0 = (int64_t)ib_now_ns();
    int rc = api == 1 ? rc_sampler_next(smp, b) : rc_sample(sh->c, b, c->batch, c->demo_fraction);
    if (rc != IB_OK) {
      soak_error(sh, api == 1 ? "rc_sampler_next" : "rc_sample", rc, t0);
      usleep(100000); /* a shard that is down fails every call at once: do not spin */
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
  rc_client *wrong; /* owned: a client with a wrong token (only with --token), else NULL */
  uint64_t seq;
} soak_bad;

/* The options of every client of the soak (shared token and TLS roots as configured). */
static void soak_opts_make(rc_opts *o, const soak_shared *sh, uint64_t seed) {
  memset(o, 0, sizeof *o);
  o->shards = sh->target;
  o->deadline_ms = sh->cfg->deadline_ms;
  o->seed = seed;
  o->token = sh->cfg->token;
  o->tls_roots = sh->cfg->tls_cert;
  o->reconnect_ms = sh->cfg->reconnect_ms;
}

/* Bad request outcomes. */
enum { SOAK_BAD_WRONG = 0, SOAK_BAD_REFUSED = 1, SOAK_BAD_DOWN = 2 };

/* Sends bad request number k and checks the refusal: INVALID_ARGUMENT (IB_EINVAL) with a message
 * naming the fault, or UNAUTHENTICATED for the wrong token. Kinds rotate NaN / wrong dims / unknown
 * table (/ a valid Insert with a wrong token, with --token); the encoding alternates columns
 * (ibrl's client) and items (other clients) every round of kinds. Returns SOAK_BAD_REFUSED if
 * refused as it should be, SOAK_BAD_DOWN if the call failed during an outage of the shard,
 * SOAK_BAD_WRONG if not (printed). */
static int soak_bad_one(soak_shared *sh, soak_bad *bd, uint64_t k) {
  int kinds = bd->wrong != NULL ? 4 : 3;
  int kind = (int)(k % (uint64_t)kinds), items = (int)((k / (uint64_t)kinds) % 2);
  static const char *const names[] = {"a NaN row", "rows of obs_dim + 1", "an unknown table", "a wrong token"};
  static const char *const expect[] = {"not finite", "obs", "nosuch", "UNAUTHENTICATED"};
  rc_batch *b = kind == 1 ? &bd->wide : &bd->ok;
  for (int i = 0; i < 4; i++) b->actor_id[i] = SOAK_BAD_ACTOR, b->seq[i] = bd->seq++;
  b->obs[1] = kind == 0 ? NAN : 1.0f;
  const char *table = kind == 2 ? "nosuch" : "online";
  grpc_byte_buffer *req = items ? rc__encode_insert(b, 0, 4, table) : rc__encode_insert_columns(b, 0, 4, table);
  grpc_byte_buffer *rep = NULL;
  int64_t t0 = (int64_t)ib_now_ns();
  int rc = rc__unary(kind == 3 ? bd->wrong : sh->c, 0, WIRE_PATH_INSERT, "Insert (bad request)", req, &rep, -1);
  grpc_byte_buffer_destroy(req);
  if (rep != NULL) grpc_byte_buffer_destroy(rep);
  b->obs[1] = 1.0f;
  if (rc == IB_EINVAL && strstr(ib_errmsg(), expect[kind]) != NULL) return SOAK_BAD_REFUSED;
  if (rc != IB_OK && soak_in_outage(sh, t0)) return SOAK_BAD_DOWN;
  fprintf(stderr, "soak: bad request %llu (%s, as %s) was not refused as %s naming '%s': rc %d, '%s'\n",
          (unsigned long long)k, names[kind], items ? "items" : "columns",
          kind == 3 ? "UNAUTHENTICATED" : "INVALID_ARGUMENT", expect[kind], rc, rc == IB_OK ? "accepted" : ib_errmsg());
  return SOAK_BAD_WRONG;
}

/* A fresh client: open, Info, health, close (connection churn). */
static void soak_churn(soak_shared *sh, rc_shard_info *info) {
  rc_opts o;
  soak_opts_make(&o, sh, atomic_load(&sh->churns) + 7);
  rc_client *c = NULL;
  int64_t t0 = (int64_t)ib_now_ns();
  int rc = rc_client_open(&c, &o);
  if (rc == IB_OK) rc = rc_info_get(c, 0, info);
  int serving = 0;
  if (rc == IB_OK) rc = rc_health(c, 0, "", &serving);
  if (rc == IB_OK && !serving) rc = ib_fail(IB_EUNAVAIL, "health says NOT_SERVING during the soak");
  if (rc != IB_OK) soak_error(sh, "connection churn", rc, t0);
  rc_client_close(c);
  atomic_fetch_add(&sh->churns, 1);
}

/* Info a few times a second, churn and bad requests at their periods. */
static void *soak_misc_main(void *arg) {
  soak_shared *sh = arg;
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  soak_bad bd;
  memset(&bd, 0, sizeof bd);
  rc_batch_init(&bd.ok, 4, c->obs_dim, c->act_dim);
  rc_batch_init(&bd.wide, 4, c->obs_dim + 1, c->act_dim);
  soak_fill(&bd.ok, 4, RC_PROPOSER_RL, 0);
  soak_fill(&bd.wide, 4, RC_PROPOSER_RL, 0);
  if (c->token != NULL) {
    char wrong[300];
    snprintf(wrong, sizeof wrong, "not-%s", c->token);
    rc_opts o;
    soak_opts_make(&o, sh, 5);
    o.token = wrong; /* copied by rc_client_open (it builds the metadata value there) */
    if (rc_client_open(&bd.wrong, &o) != IB_OK) soak_error(sh, "opening the wrong-token client", -1, 0);
  }
  double t0 = ib_now_s(), next_churn = t0 + c->churn_every, next_bad = t0 + c->bad_every;
  while (!atomic_load(&sh->stop)) {
    usleep(200000);
    double now = ib_now_s();
    if (c->bad_every > 0 && now >= next_bad) {
      uint64_t k = atomic_fetch_add(&sh->bad_sent, 1);
      int r = soak_bad_one(sh, &bd, k);
      if (r == SOAK_BAD_REFUSED) atomic_fetch_add(&sh->bad_refused, 1);
      else if (r == SOAK_BAD_DOWN) atomic_fetch_add(&sh->bad_down, 1);
      next_bad = now + c->bad_every;
    }
    if (c->churn_every > 0 && now >= next_churn) {
      soak_churn(sh, info);
      next_churn = now + c->churn_every;
    }
    /* Right after a bad request too: the shard must go on serving. */
    int64_t ti = (int64_t)ib_now_ns();
    int rc = rc_info_get(sh->c, 0, info);
    if (rc != IB_OK) soak_error(sh, "Info", rc, ti);
    atomic_fetch_add(&sh->infos, 1);
  }
  rc_client_close(bd.wrong);
  rc_batch_free(&bd.ok);
  rc_batch_free(&bd.wide);
  free(info);
  return NULL;
}

/* ---- the timeline ---- */

/* One restart of the shard. */
typedef struct soak_restart {
  double t;        /* when the shard was stopped (s since the traffic started) */
  int sig;         /* SIGKILL or SIGTERM */
  int exit_code;   /* of the stopped incarnation: 128+9 after SIGKILL, 0 expected after SIGTERM */
  int start_tries; /* starts until the new incarnation listened (a port still bound fails one) */
  double down_s;   /* from the signal until the restarted shard answered the main client's Info */
  uint64_t acked;  /* rows acknowledged when the shard was stopped (online, all actors, + demo) */
  uint64_t lost;   /* of those, missing after the restart */
} soak_restart;

typedef struct soak_run {
  soak_point *pts; /* owned [cap] */
  int n, cap;
  double tables_mb, info_tables_mb; /* predicted by the --help formula; as the shard's Info says */
  uint64_t dup_online;
  int child_exit;
  int child_died; /* the shard exited during the traffic (or did not come back from a restart) */
  char dir[PATH_MAX];
  /* restarts */
  soak_restart *rs; /* owned [cap_rs] */
  int n_rs, cap_rs;
  uint64_t *snap;   /* owned [actors]: sh->acked as it was when the shard was stopped */
  int restart_failed; /* a restart did not come back, or did not answer Info */
  int term_bad;       /* SIGTERM restarts whose shard did not exit 0 */
  uint64_t lost_restarts;                  /* acknowledged rows missing right after the restarts */
  int final_checked;                       /* the end-of-run check ran */
  uint64_t final_acked, final_stored, final_lost; /* its figures: acknowledged, online size, missing */
} soak_run;

static const rc_table_info *soak_table(const rc_shard_info *in, const char *name) {
  for (int i = 0; i < in->n_tables; i++)
    if (strcmp(in->tables[i].name, name) == 0) return &in->tables[i];
  return NULL;
}

/* Acknowledged rows that the shard's Info `in` does not show. acked[a]: actor a has seqs
 * [0, acked[a]) acknowledged; Info lists each actor's highest stored seq, so an actor whose top
 * (highest + 1, 0 if not listed) is below acked[a] lost at least the difference; a demo table
 * under the preloaded rows lost the rest. With `exact` (nothing in flight, writers closed: the
 * end of the run) also the holes: the online table holds each stored (actor, seq) once and never
 * evicted, so it must hold sum(top) rows; fewer means rows missing below some actor's top, which
 * were acknowledged (a writer resumes at its first unacknowledged seq). *stored = online size. */
static uint64_t soak_lost(const soak_cfg *c, const rc_shard_info *in, const uint64_t *acked, int exact,
                          uint64_t *stored) {
  uint64_t lost = 0, sum_top = 0;
  int printed = 0;
  for (int a = 0; a < c->actors; a++) {
    uint64_t top = 0;
    for (int i = 0; i < in->n_actors; i++)
      if (in->actors[i].actor_id == (uint32_t)a) top = in->actors[i].last_seq + 1;
    sum_top += top;
    if (acked[a] > top) {
      lost += acked[a] - top;
      if (printed++ < 4)
        fprintf(stderr, "soak: actor %d: seqs [0, %llu) acknowledged, the shard's highest stored seq + 1 is %llu: "
                "%llu acknowledged rows lost\n", a, (unsigned long long)acked[a], (unsigned long long)top,
                (unsigned long long)(acked[a] - top));
    }
  }
  const rc_table_info *on = soak_table(in, "online"), *dm = soak_table(in, "demo");
  uint64_t size = on != NULL ? on->size : 0, demo = dm != NULL ? dm->size : 0;
  if (demo < (uint64_t)c->demo_rows) {
    lost += (uint64_t)c->demo_rows - demo;
    fprintf(stderr, "soak: the demo table holds %llu of the %ld preloaded (acknowledged) rows\n",
            (unsigned long long)demo, c->demo_rows);
  }
  if (exact && size < sum_top) {
    lost += sum_top - size;
    fprintf(stderr, "soak: the online table holds %llu rows but the actors' highest seqs span %llu: %llu rows "
            "missing below them\n", (unsigned long long)size, (unsigned long long)sum_top,
            (unsigned long long)(sum_top - size));
  }
  if (stored != NULL) *stored = size;
  return lost;
}

/* Fills the shard's figures of point p from Info (counted as a failure if Info fails). */
static void soak_point_info(soak_shared *sh, rc_shard_info *info, soak_point *p, soak_run *run) {
  int64_t t0 = (int64_t)ib_now_ns();
  int rc = rc_info_get(sh->c, 0, info);
  if (rc != IB_OK) {
    soak_error(sh, "Info (timeline)", rc, t0);
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

static void soak_progress(const soak_point *p, const soak_shared *sh, const soak_run *run, long cap) {
  printf("t %6.0fs  rss %7.1f MB (hwm %7.1f)  fds %3d thr %3d  ins %7.0f/s smp %7.0f/s  online %llu/%ld (wrapped "
         "%.1fx)  ckpt %llu  bad refused %llu/%llu  churn %llu  errors %llu",
         p->t, p->rss_mb, p->hwm_mb, p->fds, p->threads, p->ins_per_s, p->smp_per_s,
         (unsigned long long)p->online_size, cap, (double)p->online_inserted / (double)cap,
         (unsigned long long)p->checkpoints, (unsigned long long)p->bad_refused,
         (unsigned long long)atomic_load(&sh->bad_sent), (unsigned long long)atomic_load(&sh->churns),
         (unsigned long long)p->errors);
  if (sh->cfg->restart_every > 0)
    printf("  restarts %d  lost %llu  failed while down %llu", run->n_rs, (unsigned long long)run->lost_restarts,
           (unsigned long long)(atomic_load(&sh->errors_down) + atomic_load(&sh->bad_down)));
  printf("\n");
  fflush(stdout);
}

/* Stops the shard with this restart's signal, starts it again on the same port with the same
 * directory (it restores its checkpoint and replays its log before it listens), waits until the
 * main client's Info answers, and checks that every row acknowledged before the stop is there.
 * Returns 0, or -1 if the shard did not come back (run->child_died is set). */
static int soak_restart_one(soak_shared *sh, soak_child *ch, soak_run *run, rc_shard_info *info, double t) {
  const soak_cfg *c = sh->cfg;
  IB_CHECK(run->n_rs < run->cap_rs);
  int k = run->n_rs;
  soak_restart *r = &run->rs[run->n_rs++];
  memset(r, 0, sizeof *r);
  r->t = t;
  r->sig = c->restart_sig != SOAK_SIG_ALTERNATE ? c->restart_sig : k % 2 == 0 ? SIGKILL : SIGTERM;
  atomic_store(&sh->down_to_ns, INT64_MAX);
  int64_t t_stop = (int64_t)ib_now_ns();
  atomic_store(&sh->down_from_ns, t_stop);
  int port = ch->port;
  r->exit_code = soak_child_stop(ch, r->sig, 60);
  if (r->sig == SIGTERM && r->exit_code != 0) {
    run->term_bad++;
    fprintf(stderr, "soak: restart %d: the shard exited with %d on SIGTERM (want 0: drained, final checkpoint)\n",
            k + 1, r->exit_code);
  }
  /* Everything acknowledged until the shard died; an acknowledgement still on its way is not in
   * the snapshot but is checked at the end. */
  uint64_t acked = (uint64_t)c->demo_rows;
  for (int a = 0; a < c->actors; a++) acked += run->snap[a] = atomic_load(&sh->acked[a]);
  r->acked = acked;
  int rc = IB_EUNAVAIL;
  for (int tries = 0; tries < 10 && rc != IB_OK; tries++) {
    if (tries > 0) sleep(1);
    rc = soak_child_start(ch, c, run->dir, port);
    r->start_tries = tries + 1;
  }
  if (rc != IB_OK) {
    fprintf(stderr, "soak: restart %d: the shard did not come back on port %d in 10 tries: %s\n", k + 1, port,
            ib_errmsg());
    run->child_died = run->restart_failed = 1;
    run->child_exit = -1;
    return -1;
  }
  /* The main client reconnects within its backoff (its calls fail fast meanwhile). */
  double until = ib_now_s() + 20;
  while ((rc = rc_info_get(sh->c, 0, info)) != IB_OK && ib_now_s() < until) usleep(50000);
  r->down_s = (double)((int64_t)ib_now_ns() - t_stop) * 1e-9;
  atomic_store(&sh->down_to_ns, (int64_t)ib_now_ns() + (int64_t)(c->down_grace * 1e9));
  if (rc != IB_OK) {
    fprintf(stderr, "soak: restart %d: the restarted shard did not answer Info for 20 s: %s\n", k + 1, ib_errmsg());
    run->restart_failed = 1;
    return 0;
  }
  r->lost = soak_lost(c, info, run->snap, 0, NULL);
  run->lost_restarts += r->lost;
  printf("soak: restart %d at %.0f s (%s): shard exit %d, back after %.2f s (%d start%s), %llu acknowledged rows "
         "(online + demo), %llu lost\n", k + 1, t, r->sig == SIGKILL ? "SIGKILL" : "SIGTERM", r->exit_code, r->down_s,
         r->start_tries, r->start_tries == 1 ? "" : "s", (unsigned long long)r->acked, (unsigned long long)r->lost);
  fflush(stdout);
  return 0;
}

/* Samples once a second until cfg->seconds have passed or the child exited; restarts the shard
 * every cfg->restart_every seconds (none in the last 10 s, so the last incarnation runs long
 * enough to be judged). */
static void soak_watch(soak_shared *sh, soak_child *ch, soak_run *run) {
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  double t0 = ib_now_s(), next_progress = c->progress;
  double next_restart = c->restart_every > 0 ? c->restart_every : INFINITY;
  uint64_t last_w = atomic_load(&sh->rows_written), last_s = atomic_load(&sh->rows_sampled);
  double last_t = 0;
  for (int i = 1; run->n < run->cap; i++) {
    double wait = t0 + i - ib_now_s();
    if (wait > 0) usleep((useconds_t)(wait * 1e6));
    else i = (int)(ib_now_s() - t0); /* late (a stalled Info, a restart): the next point is a second from now */
    soak_point *p = &run->pts[run->n];
    memset(p, 0, sizeof *p);
    p->t = ib_now_s() - t0;
    p->inc = run->n_rs;
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
      soak_progress(p, sh, run, c->online_cap);
      next_progress += c->progress;
    }
    if (p->t >= c->seconds) break;
    if (p->t >= next_restart && p->t + fmin(c->restart_every, 10) < c->seconds) {
      if (soak_restart_one(sh, ch, run, info, p->t) != 0) break;
      next_restart += c->restart_every;
    }
  }
  free(info);
}

/* The end-of-run loss check (restarts only): the writers are closed, so nothing is in flight. */
static void soak_final_check(soak_shared *sh, soak_run *run) {
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  int rc = IB_EUNAVAIL;
  double until = ib_now_s() + 10;
  while ((rc = rc_info_get(sh->c, 0, info)) != IB_OK && ib_now_s() < until) usleep(100000);
  if (rc != IB_OK) {
    fprintf(stderr, "soak: the end-of-run loss check could not ask Info: %s\n", ib_errmsg());
  } else {
    run->final_acked = (uint64_t)c->demo_rows;
    for (int a = 0; a < c->actors; a++) run->final_acked += run->snap[a] = atomic_load(&sh->acked[a]);
    run->final_lost = soak_lost(c, info, run->snap, 1, &run->final_stored);
    run->final_checked = 1;
  }
  free(info);
}

static int soak_csv_write(const char *path, const soak_run *run) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return ib_fail(IB_EIO, "--csv %s: %s HINT: check the directory exists and is writable", path,
                                strerror(errno));
  fprintf(f, "t_s,rss_mb,hwm_mb,fds,threads,inserts_per_s,samples_per_s,online_size,online_inserted,demo_size,"
             "checkpoints,errors,bad_refused,info_ms,incarnation\n");
  for (int i = 0; i < run->n; i++) {
    const soak_point *p = &run->pts[i];
    fprintf(f, "%.2f,%.2f,%.2f,%d,%d,%.0f,%.0f,%llu,%llu,%llu,%llu,%llu,%llu,%.1f,%d\n", p->t, p->rss_mb, p->hwm_mb,
            p->fds, p->threads, p->ins_per_s, p->smp_per_s, (unsigned long long)p->online_size,
            (unsigned long long)p->online_inserted, (unsigned long long)p->demo_size,
            (unsigned long long)p->checkpoints, (unsigned long long)p->errors, (unsigned long long)p->bad_refused,
            p->info_ms, p->inc);
  }
  if (fclose(f) != 0) return ib_fail(IB_EIO, "--csv %s: write failed HINT: disk full?", path);
  return IB_OK;
}

/* ---- the verdict ---- */

typedef struct soak_verdict {
  double warm_t;           /* the fit window starts here */
  int ring_full_ckpt;      /* 1 if the ring filled and a checkpoint was done before warm_t (restarts: a
                              checkpoint done in the judged incarnation) */
  int n_fit;               /* points in the window */
  double warm_rss, end_rss, peak_hwm, predicted_mb;
  double slope, slope_med, spread, spread_bound; /* MB/min (least squares, median), MB */
  double active;                                 /* share of window points with inserts flowing */
  int fds_min, fds_max, thr_min, thr_max;
  double info_max_ms; /* slowest timeline Info call */
  int stalls;         /* timeline Info calls slower than 1 s */
  double max_gap;     /* longest time between two timeline points of one incarnation (s) */
  int gaps;           /* gaps over 3 s: the soak or the shard did not run (a SIGSTOP from outside, a stalled
                         machine, an Info that hung) */
  double gap_s;       /* their total length */
  int bounded, flat, clean, durable;
  int n_inc, judged_inc; /* incarnations; the one judged flat (-1: none ran long enough) */
  int worst_inc;         /* the incarnation with the highest peak */
  uint64_t rows_written, rows_sampled, online_inserted, checkpoints, errors, bad_sent, bad_refused, churns, infos;
  uint64_t errors_down, bad_down, lost;
} soak_verdict;

/* Without restarts: the later of (ring full and a checkpoint done) and warmup x the run. With
 * restarts, for incarnation points [i0, i1): the later of (a checkpoint done in it) and warmup x
 * its length after its first point (the ring never fills there). */
static double soak_warm_t(const soak_cfg *c, const soak_run *run, int i0, int i1, int *ready) {
  int need_ckpt = c->ckpt_period > 0, restarts = c->restart_every > 0;
  double floor_t = c->warmup * c->seconds;
  if (restarts) floor_t = run->pts[i0].t + c->warmup * (run->pts[i1 - 1].t - run->pts[i0].t);
  *ready = 0;
  for (int i = i0; i < i1; i++) {
    const soak_point *p = &run->pts[i];
    if ((restarts || p->online_size >= (uint64_t)c->online_cap) && (!need_ckpt || p->checkpoints >= 1)) {
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

/* Over the points [i0, i1) at t >= v->warm_t: the least-squares slope and the median per-second
 * growth (MB/min), the spread, the share of points with inserts flowing, fd and thread ranges. A
 * leak per message grows RSS every second, so it moves the median; the heap's high-water steps (a
 * burst of concurrent messages after a stall, once) move the least-squares slope of a short
 * window but not the median. With `restarts` a second counts as one with inserts flowing
 * when the shard's insert counter moved (small batches are acknowledged in bursts of up to 1024
 * rows a writer, seconds apart). The ring never evicts with restarts, but the store's memory is
 * resident from its creation (records and per-slot arrays), so a filling ring does not grow RSS. */
static void soak_fit(const soak_run *run, int i0, int i1, int restarts, soak_verdict *v) {
  double st = 0, sr = 0, stt = 0, str = 0, lo = INFINITY, hi = -INFINITY;
  double *growth = ib_xcalloc((size_t)run->n + 1, sizeof *growth);
  int n = 0, ng = 0, active = 0;
  const soak_point *prev = NULL;
  double prev_rss = 0;
  v->fds_min = v->thr_min = INT_MAX;
  v->fds_max = v->thr_max = 0;
  for (int i = i0; i < i1; i++) {
    const soak_point *p = &run->pts[i];
    if (p->t < v->warm_t) continue;
    double rss = p->rss_mb;
    if (n == 0) v->warm_rss = rss;
    double t = p->t / 60.0;
    st += t, sr += rss, stt += t * t, str += t * rss, n++;
    lo = fmin(lo, rss), hi = fmax(hi, rss);
    /* Inserts flowing: acknowledged in this second, or (restarts: small batches are acknowledged
     * in bursts of up to 1024 rows a writer) the shard's insert counter moved. */
    active += p->ins_per_s > 0 || (restarts && prev != NULL && p->online_inserted > prev->online_inserted);
    if (prev != NULL && p->t > prev->t) growth[ng++] = (rss - prev_rss) / (p->t - prev->t) * 60.0;
    prev = p, prev_rss = rss;
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

/* The points [*i0, *i1) of incarnation `inc` (empty if it has none). */
static void soak_inc_range(const soak_run *run, int inc, int *i0, int *i1) {
  int a = 0;
  while (a < run->n && run->pts[a].inc < inc) a++;
  int b = a;
  while (b < run->n && run->pts[b].inc == inc) b++;
  *i0 = a, *i1 = b;
}

/* The peak RSS (VmHWM) of the points [i0, i1). */
static double soak_peak(const soak_run *run, int i0, int i1) {
  double peak = 0;
  for (int i = i0; i < i1; i++) peak = fmax(peak, run->pts[i].hwm_mb);
  return peak;
}

static void soak_judge(const soak_cfg *c, const soak_shared *sh, const soak_run *run, soak_verdict *v) {
  memset(v, 0, sizeof *v);
  v->n_inc = run->n > 0 ? run->pts[run->n - 1].inc + 1 : 0;
  v->judged_inc = -1;
  for (int i = 0; i < run->n; i++) {
    v->info_max_ms = fmax(v->info_max_ms, run->pts[i].info_ms);
    v->stalls += run->pts[i].info_ms > 1000;
    if (i > 0 && run->pts[i].inc == run->pts[i - 1].inc) {
      double gap = run->pts[i].t - run->pts[i - 1].t;
      v->max_gap = fmax(v->max_gap, gap);
      if (gap > 3) v->gaps++, v->gap_s += gap;
    }
  }
  if (c->restart_every <= 0) {
    v->warm_t = soak_warm_t(c, run, 0, run->n, &v->ring_full_ckpt);
    soak_fit(run, 0, run->n, 0, v);
    v->judged_inc = 0;
  } else {
    /* The last incarnation with enough points after its own warm-up is judged flat. */
    for (int inc = v->n_inc - 1; inc >= 0 && v->judged_inc < 0; inc--) {
      int i0, i1;
      soak_inc_range(run, inc, &i0, &i1);
      if (i1 - i0 < 2) continue;
      soak_verdict t = *v;
      t.warm_t = soak_warm_t(c, run, i0, i1, &t.ring_full_ckpt);
      soak_fit(run, i0, i1, 1, &t);
      if (t.n_fit < SOAK_MIN_FIT) continue;
      *v = t;
      v->judged_inc = inc;
    }
  }
  const soak_point *last = run->n > 0 ? &run->pts[run->n - 1] : NULL;
  v->end_rss = last ? last->rss_mb : NAN;
  v->peak_hwm = 0;
  for (int inc = 0; inc < v->n_inc; inc++) {
    int i0, i1;
    soak_inc_range(run, inc, &i0, &i1);
    double peak = soak_peak(run, i0, i1);
    if (peak > v->peak_hwm) v->peak_hwm = peak, v->worst_inc = inc;
  }
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
  v->errors_down = atomic_load(&sh->errors_down);
  v->bad_down = atomic_load(&sh->bad_down);
  /* A row lost in a restart stays missing (writers never resend acknowledged rows), so the end's
   * check sees it again, as a hole or a short actor: the distinct rows lost are the larger count. */
  v->lost = run->final_lost > run->lost_restarts ? run->final_lost : run->lost_restarts;
  v->bounded = last != NULL && v->peak_hwm <= v->predicted_mb;
  double slope = c->slope_median ? v->slope_med : v->slope;
  v->flat = v->judged_inc >= 0 && v->n_fit >= 5 && v->active >= 0.5 && slope < c->max_slope &&
            v->spread < v->spread_bound;
  v->clean = v->errors == 0 && v->bad_refused + v->bad_down == v->bad_sent && (c->bad_every <= 0 || v->bad_sent > 0) &&
             !run->child_died && run->child_exit == 0 && run->term_bad == 0 && !run->restart_failed;
  v->durable = c->restart_every <= 0 ||
               (v->lost == 0 && run->final_checked && !run->restart_failed && v->online_inserted <= (uint64_t)c->online_cap);
}

/* Restarts only: one line per incarnation, the outages and the loss check. */
static void soak_report_restarts(const soak_cfg *c, const soak_run *run, const soak_verdict *v) {
  for (int inc = 0; inc < v->n_inc; inc++) {
    int i0, i1;
    soak_inc_range(run, inc, &i0, &i1);
    if (i1 <= i0) continue;
    printf("soak: incarnation %2d: %4.0f-%4.0f s, %3d points, RSS %.1f -> %.1f MB, peak %.1f MB%s\n", inc,
           run->pts[i0].t, run->pts[i1 - 1].t, i1 - i0, run->pts[i0].rss_mb, run->pts[i1 - 1].rss_mb,
           soak_peak(run, i0, i1), inc == v->judged_inc ? " (judged flat)" : "");
  }
  int kills = 0, terms = 0;
  double dmin = INFINITY, dmax = 0, dsum = 0;
  for (int k = 0; k < run->n_rs; k++) {
    kills += run->rs[k].sig == SIGKILL, terms += run->rs[k].sig == SIGTERM;
    dmin = fmin(dmin, run->rs[k].down_s), dmax = fmax(dmax, run->rs[k].down_s), dsum += run->rs[k].down_s;
  }
  printf("soak: restarts %d (%d SIGKILL, %d SIGTERM, SIGTERM exits not 0: %d), down %.2f-%.2f s (mean %.2f); calls "
         "failed while down %llu (+ %llu bad requests), while up %llu\n", run->n_rs, kills, terms, run->term_bad,
         run->n_rs ? dmin : 0.0, dmax, run->n_rs ? dsum / run->n_rs : 0.0, (unsigned long long)v->errors_down,
         (unsigned long long)v->bad_down, (unsigned long long)v->errors);
  printf("soak: end of run: %llu rows acknowledged (online + %ld demo), %llu online rows stored%s\n",
         (unsigned long long)run->final_acked, c->demo_rows, (unsigned long long)run->final_stored,
         run->final_checked ? "" : " (NOT CHECKED: Info failed)");
  printf("soak: acknowledged rows lost: %llu (checked after %d restarts%s: %llu missing right after them, %llu at "
         "the end) %s\n", (unsigned long long)v->lost, run->n_rs, run->final_checked ? " and at the end" : "",
         (unsigned long long)run->lost_restarts, (unsigned long long)run->final_lost, v->durable ? "PASS" : "FAIL");
  if (!v->durable && v->online_inserted > (uint64_t)c->online_cap)
    printf("soak: FAIL durable: the online ring filled (%llu inserted, capacity %ld): evicted rows cannot be told from "
           "lost ones HINT: raise --online-capacity\n", (unsigned long long)v->online_inserted, c->online_cap);
  if (v->lost > 0)
    printf("soak: FAIL durable: %llu acknowledged rows were not in the restarted shard HINT: with --durability ckpt a "
           "SIGKILL loses the inserts since the last checkpoint (use wal); with wal, see the shard's 'restored' log "
           "lines and the actors named above\n", (unsigned long long)v->lost);
}

static void soak_report(const soak_cfg *c, const soak_run *run, const soak_verdict *v) {
  printf("\nsoak: %d points over %.0f s; tables %.1f MB by the --help formula (Info: %.1f MB), prediction %.1f MB "
         "(+ %.0f MB allowance)\n", run->n, run->n ? run->pts[run->n - 1].t : 0.0, run->tables_mb,
         run->info_tables_mb, v->predicted_mb, c->allowance_mb);
  if (c->restart_every > 0) soak_report_restarts(c, run, v);
  if (c->token != NULL || c->tls)
    printf("soak: token %s, TLS %s\n", c->token != NULL ? "on (wrong-token requests in the bad requests)" : "off",
           c->tls_cert != NULL ? "on (self-signed, clients trust it)" : c->tls ? "SKIPPED (no certificate)" : "off");
  printf("soak: warm-up ends at %.0f s (%s); RSS %.1f MB there, %.1f MB at the end, peak (VmHWM) %.1f MB; fds "
         "%d..%d, threads %d..%d after warm-up\n", v->warm_t,
         c->restart_every > 0 ? (v->ring_full_ckpt ? "a checkpoint done in the judged incarnation"
                                                   : "WARNING: no checkpoint in the judged incarnation")
         : v->ring_full_ckpt ? "ring full and a checkpoint done" : "WARNING: ring never full with a checkpoint",
         v->warm_rss, v->end_rss, v->peak_hwm, v->fds_min, v->fds_max, v->thr_min, v->thr_max);
  printf("soak: rows inserted %llu (shard: %llu online, ring wrapped %.1fx, %llu duplicates), sampled %llu; "
         "checkpoints %llu; bad requests refused %llu/%llu; fresh clients %llu; Info calls %llu; failed calls %llu\n",
         (unsigned long long)v->rows_written, (unsigned long long)v->online_inserted,
         (double)v->online_inserted / (double)c->online_cap, (unsigned long long)run->dup_online,
         (unsigned long long)v->rows_sampled, (unsigned long long)v->checkpoints, (unsigned long long)v->bad_refused,
         (unsigned long long)v->bad_sent, (unsigned long long)v->churns, (unsigned long long)v->infos,
         (unsigned long long)v->errors);
  printf("soak: slowest Info %.0f ms; %d Info calls of the timeline took over 1 s (the shard stalled); longest gap "
         "between timeline points %.1f s; %d gaps over 3 s, %.0f s in all%s\n", v->info_max_ms, v->stalls, v->max_gap,
         v->gaps, v->gap_s, v->gaps > 0 ? " (nothing ran then: a SIGSTOP from outside, e.g. another benchmark pausing "
         "the machine, or a stalled Info)" : "");
  printf("soak: bounded by configuration: %s (peak %.1f MB %s %.1f MB%s)\n", v->bounded ? "PASS" : "FAIL",
         v->peak_hwm, v->bounded ? "<=" : ">", v->predicted_mb,
         c->restart_every > 0 ? ", the highest of every incarnation's" : "");
  if (c->restart_every > 0 && v->judged_inc < 0)
    printf("soak: flat after warm-up: FAIL (no incarnation had %d points after its warm-up HINT: raise --restart-every "
           "or --seconds)\n", SOAK_MIN_FIT);
  else
    printf("soak: flat after warm-up: %s (%s slope %+.3f MB/min, bound %.3f [least squares %+.3f, median %+.3f]; "
           "spread %.2f MB, bound %.2f MB; %d points, inserts flowing in %.0f%%)\n", v->flat ? "PASS" : "FAIL",
           c->slope_median ? "median" : "least-squares", c->slope_median ? v->slope_med : v->slope, c->max_slope,
           v->slope, v->slope_med, v->spread, v->spread_bound, v->n_fit, 100 * v->active);
  printf("soak: clean: %s (failed calls %llu, bad requests refused %llu/%llu%s, shard %s, exit %d)\n",
         v->clean ? "PASS" : "FAIL", (unsigned long long)v->errors, (unsigned long long)v->bad_refused,
         (unsigned long long)v->bad_sent, v->bad_down > 0 ? " + failed while down" : "",
         run->child_died ? "died during the traffic" : "stopped by SIGTERM", run->child_exit);
  if (!v->bounded)
    printf("soak: FAIL bounded: the shard's peak RSS %.1f MB exceeds tables %.1f MB + allowance %.0f MB HINT: a leak, "
           "or an allowance too small for this configuration (--allowance-mb)\n", v->peak_hwm, run->tables_mb,
           c->allowance_mb);
  if (!v->flat && v->judged_inc >= 0)
    printf("soak: FAIL flat: RSS grew %+.3f MB/min (%s; bound %.3f) with a spread of %.2f MB (bound %.2f) over %d "
           "points after %.0f s, inserts flowing in %.0f%% of them (need 50%%) HINT: a leak per call or message; "
           "compare the timeline (--csv) with the call counts; a shard that stalled most of the window proves "
           "nothing\n", c->slope_median ? v->slope_med : v->slope, c->slope_median ? "median" : "least squares",
           c->max_slope, v->spread, v->spread_bound, v->n_fit, v->warm_t, 100 * v->active);
  if (c->json)
    printf("{\"pass\":%s,\"bounded\":%s,\"flat\":%s,\"clean\":%s,\"durable\":%s,\"seconds\":%.1f,\"tables_mb\":%.2f,"
           "\"predicted_mb\":%.2f,\"warm_t\":%.1f,\"warm_rss_mb\":%.2f,\"end_rss_mb\":%.2f,\"peak_hwm_mb\":%.2f,"
           "\"slope_mb_per_min\":%.4f,\"median_slope_mb_per_min\":%.4f,\"spread_mb\":%.3f,\"spread_bound_mb\":%.3f,"
           "\"rows_inserted\":%llu,\"rows_sampled\":%llu,\"checkpoints\":%llu,\"bad_sent\":%llu,\"bad_refused\":%llu,"
           "\"churns\":%llu,\"errors\":%llu,\"restarts\":%d,\"incarnation_judged\":%d,\"failed_while_down\":%llu,"
           "\"bad_failed_while_down\":%llu,\"acked_rows\":%llu,\"acked_lost\":%llu,\"online_stored\":%llu,"
           "\"token\":%s,\"tls\":%s}\n",
           v->bounded && v->flat && v->clean && v->durable ? "true" : "false", v->bounded ? "true" : "false",
           v->flat ? "true" : "false", v->clean ? "true" : "false", v->durable ? "true" : "false",
           run->n ? run->pts[run->n - 1].t : 0.0, run->tables_mb, v->predicted_mb, v->warm_t, v->warm_rss, v->end_rss,
           v->peak_hwm, v->slope, v->slope_med, v->spread, v->spread_bound, (unsigned long long)v->rows_written,
           (unsigned long long)v->rows_sampled, (unsigned long long)v->checkpoints, (unsigned long long)v->bad_sent,
           (unsigned long long)v->bad_refused, (unsigned long long)v->churns, (unsigned long long)v->errors, run->n_rs,
           v->judged_inc, (unsigned long long)v->errors_down, (unsigned long long)v->bad_down,
           (unsigned long long)run->final_acked, (unsigned long long)v->lost, (unsigned long long)run->final_stored,
           c->token != NULL ? "true" : "false", c->tls_cert != NULL ? "true" : "false");
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

/* --tls: a self-signed certificate for 127.0.0.1 and localhost in a fresh directory `dir`, made
 * with openssl (as tests/rpc/test_replay_server.c does) before any thread starts. Returns 1 when
 * made (c->tls_cert and c->tls_key point at cert and key), 0 when skipped (printed; dir = ""). */
static int soak_tls_make(soak_cfg *c, char *dir, char *cert, char *key) {
  snprintf(dir, PATH_MAX, "/tmp/ibrl-soak-tls-XXXXXX");
  if (mkdtemp(dir) == NULL) {
    fprintf(stderr, "soak: --tls: mkdtemp /tmp/ibrl-soak-tls-*: %s; TLS is SKIPPED, the soak runs in plaintext\n",
            strerror(errno));
    dir[0] = '\0';
    return 0;
  }
  snprintf(cert, PATH_MAX, "%s/cert.pem", dir);
  snprintf(key, PATH_MAX, "%s/key.pem", dir);
  char cmd[3 * PATH_MAX + 256];
  snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 30 "
           "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1", key, cert);
  int st = system(cmd);
  if (st != 0) {
    fprintf(stderr, "soak: --tls: openssl could not make a self-signed certificate (exit status %d); TLS is SKIPPED, "
            "the soak runs in plaintext HINT: install openssl\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    soak_dir_remove(dir);
    dir[0] = '\0';
    return 0;
  }
  c->tls_cert = cert;
  c->tls_key = key;
  return 1;
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
  if (c->restart_every > 0 && !run->child_died) soak_final_check(sh, run);
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
  /* Made before any thread or gRPC starts (system() forks). */
  char tls_dir[PATH_MAX] = "", tls_cert[PATH_MAX], tls_key[PATH_MAX];
  if (cfg.tls) soak_tls_make(&cfg, tls_dir, tls_cert, tls_key);
  printf("soak: %s, obs %d act %d, online %ld demo %ld (%ld preloaded), durability %s, checkpoints every %g s in %s; "
         "%d writers (batch %d, reopen every %d), %d samplers (demo fraction %g), churn every %g s, bad request every "
         "%g s, %.0f s\n", cfg.replay_bin, cfg.obs_dim, cfg.act_dim, cfg.online_cap, cfg.demo_cap, cfg.demo_rows,
         cfg.durability, cfg.ckpt_period, run.dir, cfg.writers, cfg.batch, cfg.reopen, cfg.samplers,
         cfg.demo_fraction, cfg.churn_every, cfg.bad_every, cfg.seconds);
  if (cfg.restart_every > 0 || cfg.token != NULL || cfg.tls) {
    char restarts[96] = "off";
    if (cfg.restart_every > 0)
      snprintf(restarts, sizeof restarts, "every %g s (%s)", cfg.restart_every,
               cfg.restart_sig == SIGKILL ? "SIGKILL" : cfg.restart_sig == SIGTERM ? "SIGTERM"
               : "SIGKILL and SIGTERM in turn");
    printf("soak: restarts %s, token %s, TLS %s\n", restarts, cfg.token != NULL ? "on" : "off",
           cfg.tls_cert != NULL ? tls_cert : cfg.tls ? "skipped" : "off");
  }
  fflush(stdout);
  /* The first child is forked before gRPC starts in this process; restarts fork from this (main)
   * thread while gRPC runs, which is safe because the child only calls exec (as
   * tests/rpc/test_client_restart.c does), and PR_SET_PDEATHSIG follows the forking thread. */
  soak_child ch;
  memset(&ch, 0, sizeof ch);
  if (soak_child_start(&ch, &cfg, run.dir, 0) != IB_OK) {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    if (owned) soak_dir_remove(run.dir);
    if (tls_dir[0] != '\0') soak_dir_remove(tls_dir);
    return 2; /* setup, as bench_main's exit codes say */
  }
  char target[64];
  snprintf(target, sizeof target, "%s", ch.target); /* restarts reuse the port: it stays valid */
  soak_shared sh;
  memset(&sh, 0, sizeof sh);
  sh.cfg = &cfg;
  sh.target = target;
  sh.acked = ib_xcalloc((size_t)cfg.actors, sizeof *sh.acked);
  for (int a = 0; a < cfg.actors; a++) atomic_init(&sh.acked[a], 0);
  rc_opts o;
  soak_opts_make(&o, &sh, 1);
  run.pts = ib_xcalloc((size_t)run.cap, sizeof *run.pts);
  run.cap_rs = cfg.restart_every > 0 ? (int)(cfg.seconds / cfg.restart_every) + 2 : 1;
  run.rs = ib_xcalloc((size_t)run.cap_rs, sizeof *run.rs);
  run.snap = ib_xcalloc((size_t)cfg.actors, sizeof *run.snap);
  int rc = rc_client_open(&sh.c, &o);
  if (rc == IB_OK) rc = soak_traffic(&sh, &ch, &run);
  else fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
  rc_client_close(sh.c);
  if (!run.child_died) run.child_exit = soak_child_stop(&ch, SIGTERM, 60);
  if (owned) soak_dir_remove(run.dir);
  if (tls_dir[0] != '\0') soak_dir_remove(tls_dir);
  int status = 1;
  if (rc == IB_OK) {
    soak_verdict v;
    soak_judge(&cfg, &sh, &run, &v);
    soak_report(&cfg, &run, &v);
    if (cfg.csv != NULL && soak_csv_write(cfg.csv, &run) != IB_OK) fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    status = v.bounded && v.flat && v.clean && v.durable ? 0 : 1;
    printf("soak: %s\n", status == 0 ? "PASS" : "FAIL");
  }
  free(run.pts);
  free(run.rs);
  free(run.snap);
  free(sh.acked);
  return status;
}
