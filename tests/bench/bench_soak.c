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
 * A shard's Info gives, per actor, the highest seq stored (from the table's dedup registry, which
 * eviction never touches and which checkpoint and log both restore), and for the online table its
 * size and `inserted`, the items ever stored (kept in the checkpoint and recounted by the log
 * replay: persist.h). With top[a] = highest + 1 (0 if not listed), right after each restart of a
 * shard, over that shard's actors:
 *   (1) top[a] >= acked[a] as it was when the shard was stopped, and the demo table holds its
 *       preloaded rows;
 *   (2) inserted <= sum(top): no row counted twice (Info reads the tables before the actors, so
 *       inserts racing the check can only lower the left side);
 *   (3) size == min(capacity, inserted): the FIFO ring holds as many rows as it should;
 * and at the end (writers closed, nothing in flight) (1), (3) and inserted == sum(top): each seq
 * below each top was stored exactly once. A writer never resends an acknowledged row, so a row lost
 * in a restart stays a hole in these counts for good, whether the ring evicted it later or not.
 * When the ring did not wrap (size == inserted) this is the exact check "the table holds exactly
 * sum(top) rows". When it wrapped, it checks the shard's bookkeeping, not the rows themselves: a
 * restore that kept the counts but dropped a row's payload is invisible once the ring has wrapped
 * past that row; and the sums are per shard, so a hole in one actor could cancel a double in
 * another (the store's dedup makes doubles impossible by construction). Info lists at most
 * RC_MAX_ACTORS actors, hence --actors <= RC_MAX_ACTORS with restarts. With --durability ckpt a
 * SIGKILL loses the inserts since the last checkpoint by design, so the check is valid only for
 * SIGTERM restarts there (it goes red under SIGKILL: that is how its failure was shown).
 * Memory is judged per incarnation: each one's peak under the prediction, and the last one with
 * enough points after its own warm-up (a checkpoint done in it and --warmup of its length) flat.
 * With --restart-every 0 everything is as before.
 * Shards (--shards N, 1..SOAK_MAX_SHARDS): N children, each on its own port with its own checkpoint
 * directory and --shard-index, the same flags. One rc_client holds all N targets: actor a's writer
 * goes to shard a % N (rc_client_shard_of), the samplers draw from all shards in proportion to their
 * sizes, the demo rows are preloaded into every shard (one demo actor id per shard), and Info, fresh
 * clients and bad requests go to the shards in turn. Restarts take the shards in turn (restart k
 * stops shard k % N; --restart-signal alternate alternates per shard), so the others keep serving:
 * a call to a live shard that fails is a failure. A sample spans all shards: rc_sample skips a down
 * shard, so the samples that failed while any shard was down are counted apart, and those that came
 * back with a shard skipped are counted too. Memory is judged per shard (each its own prediction,
 * incarnations and flat window). The CSV keeps the one-shard columns for shard 0 and appends, per
 * further shard k, its own columns suffixed _s<k>.
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
#define SOAK_MAX_SHARDS 4
#define SOAK_ANY_SHARD (-1)      /* a call that spans the shards (a sample) */
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
  int shards;       /* shard children, 1..SOAK_MAX_SHARDS */
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
  int inc;                     /* incarnation of the shard (0, then +1 per restart of this shard) */
} soak_point;

/* What the threads share; counters are atomics, the rest is read-only while they run. */
typedef struct soak_shared {
  const soak_cfg *cfg;
  rc_client *c; /* borrowed: the shared client of writers, samplers and misc (all shards) */
  const char *target; /* "host:port,..." of the shards, in shard order */
  atomic_int stop;
  atomic_uint_fast64_t rows_written, rows_sampled, errors, bad_sent, bad_refused, churns, infos, reopens;
  atomic_uint_fast64_t errors_down, bad_down; /* calls to a shard that failed while it was down (restarts) */
  atomic_uint_fast64_t samples_down;          /* samples (all shards) that failed while one was down */
  atomic_uint_fast64_t samples_skipped;       /* samples that came back with a down shard skipped */
  /* Each shard's last outage: from down_from_ns (the kill) to down_to_ns (INT64_MAX while it lasts). */
  atomic_int_fast64_t down_from_ns[SOAK_MAX_SHARDS], down_to_ns[SOAK_MAX_SHARDS];
  atomic_uint_fast64_t *acked; /* owned [cfg->actors]: actor a has seqs [0, acked[a]) acknowledged */
} soak_shared;

/* ---- flags ---- */

static void soak_usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench soak [flags]\n"
          "Runs an ibrl-replay child (or --shards N) on 127.0.0.1 under inserts (rc_writer, reopened now\n"
          "and then), samples (rc_sample and rc_sampler, demo + online), Info calls, connection churn and\n"
          "refused bad requests for --seconds, samples each shard's VmRSS once a second and judges: RSS\n"
          "bounded by the configuration's prediction, flat after warm-up, no failed call, every bad request\n"
          "refused (with --restart-every: no acknowledged row lost). Exit 0 pass, 1 fail, 2 bad flags or a\n"
          "shard that does not start.\n"
          "  --seconds S           length of the traffic [60]\n"
          "  --obs-dim N --act-dim N   item sizes [69, 7: the paper's state setting]\n"
          "  --shards N            ibrl-replay children, each its own port and checkpoint directory (1..%d);\n"
          "                        writers go to shard actor %% N, samples span all, restarts take them in\n"
          "                        turn, memory is judged per shard [1]\n"
          "  --online-capacity N   online ring of each shard [50000]\n"
          "  --demo-capacity N     demo table of each shard [10000]\n"
          "  --demo-rows N         demo rows preloaded into each shard before the traffic [half the demo\n"
          "                        capacity]\n"
          "  --durability ckpt|wal the shard's --durability [wal]\n"
          "  --ckpt-period S       the shard's periodic checkpoints; 0 = none [10]\n"
          "  --ckpt-dir DIR        checkpoint directory (must be empty or new; with --shards > 1 shard k uses\n"
          "                        DIR/shard<k>) [a fresh /tmp/ibrl-soak-* per shard, removed]\n"
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
          "  --restart-every S     kill and restart a shard every S s (the shards in turn; same port and\n"
          "                        directory), and check after each restart and at the end that no\n"
          "                        acknowledged row was lost (exactly while the ring has not wrapped; by\n"
          "                        the shard's insert and per-actor counts once it has); needs --actors <= %d;\n"
          "                        0 = off [0]\n"
          "  --restart-signal kill|term|alternate   how a shard is stopped for a restart (alternate: per\n"
          "                        shard) [alternate]\n"
          "                        (--durability ckpt loses the inserts since the last checkpoint on kill)\n"
          "  --down-grace S        a call that fails up to S s after the restarted shard answered still\n"
          "                        counts as failed while down [1]\n"
          "  --token T             shared token of the shard and every client; adds a bad request with a\n"
          "                        wrong token, which must be refused UNAUTHENTICATED [none]\n"
          "  --tls                 serve TLS with a self-signed certificate made by openssl (skipped with a\n"
          "                        message if openssl fails); the clients trust it [off]\n"
          "  --help                this text\n",
          SOAK_MAX_SHARDS, SOAK_MAX_WRITERS, SOAK_MAX_SAMPLERS, RC_MAX_ACTORS);
}

enum {
  F_SECONDS = 1, F_OBS, F_ACT, F_ONCAP, F_DEMOCAP, F_DEMOROWS, F_DUR, F_CKPER, F_CKDIR, F_WRITERS, F_SAMPLERS,
  F_BATCH, F_REOPEN, F_ACTORS, F_FRAC, F_IRATE, F_SRATE, F_CHURN, F_BAD, F_SRVTHREADS, F_DEADLINE, F_ALLOW,
  F_SLOPE, F_SLOPEKIND, F_SPREAD, F_SPREADMB, F_WARMUP, F_PROGRESS, F_CSV, F_JSON, F_BIN, F_RESTART, F_RESTARTSIG,
  F_GRACE, F_TOKEN, F_TLS, F_RECONNECT, F_SHARDS, F_HELP
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
    {"shards", required_argument, NULL, F_SHARDS},
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
  c->shards = 1;
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
    case F_SHARDS: rc = cli_parse_long(&l, p, "shards", v, 1, SOAK_MAX_SHARDS); c->shards = (int)l; return rc;
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
  if (c->actors < c->shards) {
    fprintf(stderr, "ibrl-bench soak: --actors %d is fewer than --shards %d HINT: actor a writes to shard a %% shards, "
            "so every shard needs an actor\n", c->actors, c->shards);
    return CLI_BAD;
  }
  if (c->restart_every > 0) {
    /* The loss check reads every actor's highest stored seq, and Info lists at most RC_MAX_ACTORS
     * actors. A ring that wraps is fine: the check then rests on the counts (top of file). */
    if (c->actors > RC_MAX_ACTORS) {
      fprintf(stderr, "ibrl-bench soak: --actors %d exceeds %d with --restart-every HINT: Info lists at most %d actors, "
              "and the loss check needs all of them\n", c->actors, RC_MAX_ACTORS, RC_MAX_ACTORS);
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

/* Starts shard `index` with the soak's configuration on `port` (0 = let it pick). Returns IB_OK or
 * an IB_E* (message set). */
static int soak_child_start(soak_child *ch, const soak_cfg *c, const char *dir, int port_want, int index) {
  char obs[16], act[16], on[24], demo[24], per[32], thr[16], ports[16], idx[16];
  snprintf(obs, sizeof obs, "%d", c->obs_dim);
  snprintf(act, sizeof act, "%d", c->act_dim);
  snprintf(on, sizeof on, "%ld", c->online_cap);
  snprintf(demo, sizeof demo, "%ld", c->demo_cap);
  snprintf(per, sizeof per, "%g", c->ckpt_period);
  snprintf(thr, sizeof thr, "%d", c->server_threads);
  snprintf(ports, sizeof ports, "%d", port_want);
  snprintf(idx, sizeof idx, "%d", index);
  const char *argv[32] = {c->replay_bin, "--port", ports, "--obs-dim", obs, "--act-dim", act, "--online-capacity", on,
                          "--demo-capacity", demo, "--threads", thr, "--durability", c->durability, "--ckpt-dir", dir,
                          "--ckpt-period", per, "--shard-index", idx};
  int na = 21;
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
      return ib_fail(IB_EUNAVAIL, "shard %d: %s exited with status %d before printing 'listening on HOST:PORT' HINT: "
                     "run it by hand with the same flags; see its messages above", index, c->replay_bin,
                     WEXITSTATUS(st));
    return ib_fail(IB_ETIMEDOUT, "shard %d: %s did not print 'listening on HOST:PORT' within 20 s (killed) HINT: run "
                   "it by hand with the same flags", index, c->replay_bin);
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

/* 1 if a call to `shard` (SOAK_ANY_SHARD: to all of them) that started at t0_ns and fails now
 * overlapped the last outage of that shard (of any shard), from its kill until --down-grace after
 * it answered again; never without restarts. */
static int soak_in_outage(soak_shared *sh, int shard, int64_t t0_ns) {
  int64_t now = (int64_t)ib_now_ns();
  for (int s = 0; s < sh->cfg->shards; s++) {
    if (shard != SOAK_ANY_SHARD && s != shard) continue;
    int64_t from = atomic_load(&sh->down_from_ns[s]), to = atomic_load(&sh->down_to_ns[s]);
    if (from > 0 && now >= from && t0_ns <= to) return 1;
  }
  return 0;
}

/* Counts a failed call to `shard` that started at t0_ns: as failed while down if it overlapped an
 * outage of that shard (a sample, SOAK_ANY_SHARD: of any shard; counted apart), else as a failure
 * (the first SOAK_MAX_ERRMSG printed). */
static void soak_error(soak_shared *sh, int shard, const char *who, int rc, int64_t t0_ns) {
  if (soak_in_outage(sh, shard, t0_ns)) {
    atomic_fetch_add(shard == SOAK_ANY_SHARD ? &sh->samples_down : &sh->errors_down, 1);
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
  int shard = rc_client_shard_of(sh->c, id);
  rc_writer *w = NULL;
  int rc = rc_writer_open(&w, sh->c, "online", id, *seq, 0);
  if (rc != IB_OK) {
    soak_error(sh, shard, "rc_writer_open", rc, (int64_t)ib_now_ns());
    return -1;
  }
  uint64_t acked = 0;
  rc_writer_stats st;
  for (int i = 0; i < c->reopen && !atomic_load(&sh->stop); i++) {
    soak_fill(b, c->batch, i % 2 ? RC_PROPOSER_RL : RC_PROPOSER_IL, *seq + (uint64_t)i * (uint64_t)c->batch);
    int64_t t0 = (int64_t)ib_now_ns();
    rc = rc_writer_write(w, b);
    if (rc != IB_OK) {
      soak_error(sh, shard, "rc_writer_write", rc, t0);
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
    if (rc != IB_OK) soak_error(sh, shard, "rc_writer_flush", rc, t0);
  }
  rc_writer_stats_get(w, &st);
  atomic_fetch_add(&sh->rows_written, st.acked - acked);
  *seq += st.acked;
  atomic_store(&sh->acked[id], *seq);
  /* After a failure the close flushes (and may fail) again: that failure was counted above. */
  int crc = rc_writer_close(w);
  if (crc != IB_OK && rc == IB_OK) soak_error(sh, shard, "rc_writer_close", crc, (int64_t)ib_now_ns());
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
      soak_error(sh, SOAK_ANY_SHARD, "rc_sampler_open", rc, (int64_t)ib_now_ns());
      return;
    }
  }
  for (int i = 0; i < SOAK_SAMPLE_PHASE && !atomic_load(&sh->stop); i++) {
    int64_t t0 = (int64_t)ib_now_ns();
    int rc = api == 1 ? rc_sampler_next(smp, b) : rc_sample(sh->c, b, c->batch, c->demo_fraction);
    if (rc != IB_OK) {
      soak_error(sh, SOAK_ANY_SHARD, api == 1 ? "rc_sampler_next" : "rc_sample", rc, t0);
      usleep(100000); /* a shard that is down fails every call at once: do not spin */
      break;
    }
    atomic_fetch_add(&sh->rows_sampled, (uint64_t)b->n);
    if (b->shards_skipped != 0) atomic_fetch_add(&sh->samples_skipped, 1);
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

/* The demo preloader's actor id for `shard`: SOAK_DEMO_ACTOR rounded down to a multiple of the
 * shard count, plus the shard (writers go to actor_id % shards). */
static uint32_t soak_demo_actor(int shards, int shard) {
  return SOAK_DEMO_ACTOR - SOAK_DEMO_ACTOR % (uint32_t)shards + (uint32_t)shard;
}

/* Preloads the demo table of `shard` (before the traffic starts). */
static int soak_preload_demos(soak_shared *sh, int shard) {
  const soak_cfg *c = sh->cfg;
  if (c->demo_rows == 0) return IB_OK;
  rc_writer *w = NULL;
  uint32_t id = soak_demo_actor(c->shards, shard);
  IB_CHECK(rc_client_shard_of(sh->c, id) == shard);
  int rc = rc_writer_open(&w, sh->c, "demo", id, 0, 0);
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
 * (ibrl's client) and items (other clients) every round of kinds, and the shard changes every two
 * rounds, so each shard gets every kind in both encodings. Returns SOAK_BAD_REFUSED if refused as
 * it should be, SOAK_BAD_DOWN if the call failed during an outage of its shard, SOAK_BAD_WRONG if
 * not (printed). */
static int soak_bad_one(soak_shared *sh, soak_bad *bd, uint64_t k) {
  int kinds = bd->wrong != NULL ? 4 : 3;
  int kind = (int)(k % (uint64_t)kinds), items = (int)((k / (uint64_t)kinds) % 2);
  int shard = (int)((k / (2 * (uint64_t)kinds)) % (uint64_t)sh->cfg->shards);
  static const char *const names[] = {"a NaN row", "rows of obs_dim + 1", "an unknown table", "a wrong token"};
  static const char *const expect[] = {"not finite", "obs", "nosuch", "UNAUTHENTICATED"};
  rc_batch *b = kind == 1 ? &bd->wide : &bd->ok;
  for (int i = 0; i < 4; i++) b->actor_id[i] = SOAK_BAD_ACTOR, b->seq[i] = bd->seq++;
  b->obs[1] = kind == 0 ? NAN : 1.0f;
  const char *table = kind == 2 ? "nosuch" : "online";
  grpc_byte_buffer *req = items ? rc__encode_insert(b, 0, 4, table) : rc__encode_insert_columns(b, 0, 4, table);
  grpc_byte_buffer *rep = NULL;
  int64_t t0 = (int64_t)ib_now_ns();
  int rc = rc__unary(kind == 3 ? bd->wrong : sh->c, shard, WIRE_PATH_INSERT, "Insert (bad request)", req, &rep, -1);
  grpc_byte_buffer_destroy(req);
  if (rep != NULL) grpc_byte_buffer_destroy(rep);
  b->obs[1] = 1.0f;
  if (rc == IB_EINVAL && strstr(ib_errmsg(), expect[kind]) != NULL) return SOAK_BAD_REFUSED;
  if (rc != IB_OK && soak_in_outage(sh, shard, t0)) return SOAK_BAD_DOWN;
  fprintf(stderr, "soak: bad request %llu (%s, as %s, to shard %d) was not refused as %s naming '%s': rc %d, '%s'\n",
          (unsigned long long)k, names[kind], items ? "items" : "columns", shard,
          kind == 3 ? "UNAUTHENTICATED" : "INVALID_ARGUMENT", expect[kind], rc, rc == IB_OK ? "accepted" : ib_errmsg());
  return SOAK_BAD_WRONG;
}

/* A fresh client of all shards: open, Info and health of one shard (the shards in turn), close
 * (connection churn). */
static void soak_churn(soak_shared *sh, rc_shard_info *info) {
  uint64_t k = atomic_load(&sh->churns);
  int shard = (int)(k % (uint64_t)sh->cfg->shards);
  rc_opts o;
  soak_opts_make(&o, sh, k + 7);
  rc_client *c = NULL;
  int64_t t0 = (int64_t)ib_now_ns();
  int rc = rc_client_open(&c, &o);
  if (rc == IB_OK) rc = rc_info_get(c, shard, info);
  int serving = 0;
  if (rc == IB_OK) rc = rc_health(c, shard, "", &serving);
  if (rc == IB_OK && !serving) rc = ib_fail(IB_EUNAVAIL, "shard %d's health says NOT_SERVING during the soak", shard);
  if (rc != IB_OK) soak_error(sh, shard, "connection churn", rc, t0);
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
    if (rc_client_open(&bd.wrong, &o) != IB_OK) soak_error(sh, 0, "opening the wrong-token client", -1, 0);
  }
  double t0 = ib_now_s(), next_churn = t0 + c->churn_every, next_bad = t0 + c->bad_every;
  for (uint64_t round = 0; !atomic_load(&sh->stop); round++) {
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
    /* Right after a bad request too: the shard must go on serving. The shards in turn. */
    int shard = (int)(round % (uint64_t)c->shards);
    int64_t ti = (int64_t)ib_now_ns();
    int rc = rc_info_get(sh->c, shard, info);
    if (rc != IB_OK) soak_error(sh, shard, "Info", rc, ti);
    atomic_fetch_add(&sh->infos, 1);
  }
  rc_client_close(bd.wrong);
  rc_batch_free(&bd.ok);
  rc_batch_free(&bd.wide);
  free(info);
  return NULL;
}

/* ---- the timeline ---- */

/* One restart of a shard. */
typedef struct soak_restart {
  double t;        /* when the shard was stopped (s since the traffic started) */
  int shard;       /* the shard stopped */
  int sig;         /* SIGKILL or SIGTERM */
  int exit_code;   /* of the stopped incarnation: 128+9 after SIGKILL, 0 expected after SIGTERM */
  int start_tries; /* starts until the new incarnation listened (a port still bound fails one) */
  double down_s;   /* from the signal until the restarted shard answered the main client's Info */
  uint64_t acked;  /* rows acknowledged to that shard when it was stopped (its actors' online + demo) */
  uint64_t lost;   /* of those, missing after the restart */
  int counts_bad;  /* a count check failed right after the restart (a row counted twice, a wrong size) */
} soak_restart;

/* What one loss check of one shard found (checks (1)-(3) at the top of this file). */
typedef struct soak_check {
  uint64_t acked;      /* rows acknowledged to the shard: its actors' acked[] + the preloaded demo rows */
  uint64_t short_rows; /* (1): acknowledged rows above their actor's top, + demo rows missing */
  uint64_t sum_top;    /* sum over the shard's actors of highest stored seq + 1 */
  uint64_t inserted, size, capacity; /* the online table's */
  uint64_t doubles;    /* (2): inserted - sum_top when positive */
  uint64_t holes;      /* exact check only: sum_top - inserted when positive */
  int size_bad;        /* (3): size != min(capacity, inserted) */
  uint64_t lost;       /* short_rows + holes */
} soak_check;

/* One shard's child, directory and timeline. */
typedef struct soak_shard_run {
  soak_child ch;
  char dir[PATH_MAX];
  soak_point *pts;       /* owned [run->cap]: one point a second, the same seconds for every shard */
  int restarts;          /* restarts of this shard so far (its current incarnation) */
  int child_exit;        /* exit code of its last incarnation (SIGTERM at the end: 0 expected) */
  uint64_t dup_online;   /* the online table's duplicates, from the last Info */
  double info_tables_mb; /* its tables' bytes as its Info says */
  soak_check final;      /* the end-of-run check */
} soak_shard_run;

typedef struct soak_run {
  soak_shard_run shard[SOAK_MAX_SHARDS];
  uint8_t *restart_after; /* owned [cap]: 1 if a restart followed point i (its gap is not a stall) */
  int n, cap;             /* points per shard */
  double tables_mb;       /* one shard's tables, predicted by the --help formula */
  int child_died; /* a shard exited during the traffic (or did not come back from a restart) */
  /* restarts */
  soak_restart *rs; /* owned [cap_rs] */
  int n_rs, cap_rs;
  uint64_t *snap;   /* owned [actors]: sh->acked as it was when the actor's shard was stopped */
  int restart_failed; /* a restart did not come back, or did not answer Info */
  int term_bad;       /* SIGTERM restarts whose shard did not exit 0 */
  uint64_t lost_restarts;  /* acknowledged rows missing right after the restarts */
  int counts_bad_restarts; /* restarts after which a count check failed */
  int final_checked;       /* the end-of-run check ran on every shard */
  uint64_t final_acked, final_stored, final_lost; /* its figures over all shards: acknowledged, online size, missing */
  int final_counts_bad;                           /* a count check failed at the end */
} soak_run;

static const rc_table_info *soak_table(const rc_shard_info *in, const char *name) {
  for (int i = 0; i < in->n_tables; i++)
    if (strcmp(in->tables[i].name, name) == 0) return &in->tables[i];
  return NULL;
}

/* "shard k: " with several shards, "" with one (the one-shard messages stay as they were). */
static const char *soak_tag(const soak_cfg *c, int shard, char *buf, size_t cap) {
  if (c->shards == 1) return "";
  snprintf(buf, cap, "shard %d: ", shard);
  return buf;
}

/* The loss check of `shard` from its Info `in` (top of this file): acked[a], for the shard's actors
 * a (a % shards == shard), says actor a has seqs [0, acked[a]) acknowledged. (1) an actor whose top
 * (highest stored seq + 1, 0 if not listed) is below acked[a] lost at least the difference, and a
 * demo table under the preloaded rows lost the rest; (2) inserted > sum(top) is a row counted
 * twice; (3) size != min(capacity, inserted) is a ring that holds the wrong number of rows. With
 * `exact` (nothing in flight, writers closed: the end of the run) also inserted < sum(top): seqs
 * below some top that were never stored, i.e. acknowledged rows lost (a writer resumes at its first
 * unacknowledged seq), whether the ring evicted them since or not. Failures are printed. */
static void soak_check_shard(const soak_cfg *c, int shard, const rc_shard_info *in, const uint64_t *acked, int exact,
                             soak_check *k) {
  char tb[32];
  const char *tag = soak_tag(c, shard, tb, sizeof tb);
  memset(k, 0, sizeof *k);
  int printed = 0;
  for (int a = shard; a < c->actors; a += c->shards) {
    uint64_t top = 0;
    for (int i = 0; i < in->n_actors; i++)
      if (in->actors[i].actor_id == (uint32_t)a) top = in->actors[i].last_seq + 1;
    k->sum_top += top;
    k->acked += acked[a];
    if (acked[a] > top) {
      k->short_rows += acked[a] - top;
      if (printed++ < 4)
        fprintf(stderr, "soak: %sactor %d: seqs [0, %llu) acknowledged, the shard's highest stored seq + 1 is %llu: "
                "%llu acknowledged rows lost\n", tag, a, (unsigned long long)acked[a], (unsigned long long)top,
                (unsigned long long)(acked[a] - top));
    }
  }
  const rc_table_info *on = soak_table(in, "online"), *dm = soak_table(in, "demo");
  uint64_t demo = dm != NULL ? dm->size : 0;
  k->acked += (uint64_t)c->demo_rows;
  if (demo < (uint64_t)c->demo_rows) {
    k->short_rows += (uint64_t)c->demo_rows - demo;
    fprintf(stderr, "soak: %sthe demo table holds %llu of the %ld preloaded (acknowledged) rows\n", tag,
            (unsigned long long)demo, c->demo_rows);
  }
  if (on != NULL) k->inserted = on->inserted, k->size = on->size, k->capacity = on->capacity;
  if (k->inserted > k->sum_top) {
    k->doubles = k->inserted - k->sum_top;
    fprintf(stderr, "soak: %sthe online table counts %llu rows inserted but its actors' highest seqs span only %llu: "
            "%llu rows counted twice\n", tag, (unsigned long long)k->inserted, (unsigned long long)k->sum_top,
            (unsigned long long)k->doubles);
  }
  if (exact && k->inserted < k->sum_top) {
    k->holes = k->sum_top - k->inserted;
    fprintf(stderr, "soak: %sthe online table counts %llu rows inserted but its actors' highest seqs span %llu: %llu "
            "rows missing below them%s\n", tag, (unsigned long long)k->inserted, (unsigned long long)k->sum_top,
            (unsigned long long)k->holes, k->inserted > k->capacity ? " (lost, whether evicted since or not)" : "");
  }
  uint64_t want = k->inserted < k->capacity ? k->inserted : k->capacity;
  if (on == NULL || k->size != want) {
    k->size_bad = 1;
    fprintf(stderr, "soak: %sthe online table holds %llu rows, but a ring of %llu that stored %llu must hold %llu\n",
            tag, (unsigned long long)k->size, (unsigned long long)k->capacity, (unsigned long long)k->inserted,
            (unsigned long long)want);
  }
  k->lost = k->short_rows + k->holes;
}

/* Fills the figures of `shard`'s point p from its Info (counted as a failure if Info fails). */
static void soak_point_info(soak_shared *sh, int shard, rc_shard_info *info, soak_point *p, soak_shard_run *sr) {
  int64_t t0 = (int64_t)ib_now_ns();
  int rc = rc_info_get(sh->c, shard, info);
  if (rc != IB_OK) {
    soak_error(sh, shard, "Info (timeline)", rc, t0);
    return;
  }
  const rc_table_info *on = soak_table(info, "online"), *dm = soak_table(info, "demo");
  if (on != NULL) p->online_size = on->size, p->online_inserted = on->inserted, sr->dup_online = on->duplicates;
  if (dm != NULL) p->demo_size = dm->size;
  p->checkpoints = info->checkpoints;
  p->info_ms = info->rtt_ms;
  sr->info_tables_mb = 0;
  for (int i = 0; i < info->n_tables; i++) sr->info_tables_mb += (double)info->tables[i].bytes / 1048576.0;
}

/* One progress line for point i: with one shard as it always was; with several, the traffic first,
 * then each shard's figures in brackets. */
static void soak_progress(int i, const soak_shared *sh, const soak_run *run, long cap) {
  const soak_cfg *c = sh->cfg;
  const soak_point *p = &run->shard[0].pts[i];
  if (c->shards == 1) {
    printf("t %6.0fs  rss %7.1f MB (hwm %7.1f)  fds %3d thr %3d  ins %7.0f/s smp %7.0f/s  online %llu/%ld (wrapped "
           "%.1fx)  ckpt %llu  bad refused %llu/%llu  churn %llu  errors %llu",
           p->t, p->rss_mb, p->hwm_mb, p->fds, p->threads, p->ins_per_s, p->smp_per_s,
           (unsigned long long)p->online_size, cap, (double)p->online_inserted / (double)cap,
           (unsigned long long)p->checkpoints, (unsigned long long)p->bad_refused,
           (unsigned long long)atomic_load(&sh->bad_sent), (unsigned long long)atomic_load(&sh->churns),
           (unsigned long long)p->errors);
  } else {
    printf("t %6.0fs  ins %7.0f/s smp %7.0f/s  bad refused %llu/%llu  churn %llu  errors %llu", p->t, p->ins_per_s,
           p->smp_per_s, (unsigned long long)p->bad_refused, (unsigned long long)atomic_load(&sh->bad_sent),
           (unsigned long long)atomic_load(&sh->churns), (unsigned long long)p->errors);
    for (int s = 0; s < c->shards; s++) {
      const soak_point *q = &run->shard[s].pts[i];
      printf("  [s%d rss %6.1f MB (hwm %6.1f) fds %d thr %d online %llu (wrapped %.1fx) ckpt %llu inc %d]", s,
             q->rss_mb, q->hwm_mb, q->fds, q->threads, (unsigned long long)q->online_size,
             (double)q->online_inserted / (double)cap, (unsigned long long)q->checkpoints, q->inc);
    }
  }
  if (c->restart_every > 0)
    printf("  restarts %d  lost %llu  failed while down %llu", run->n_rs, (unsigned long long)run->lost_restarts,
           (unsigned long long)(atomic_load(&sh->errors_down) + atomic_load(&sh->bad_down) +
                                atomic_load(&sh->samples_down)));
  printf("\n");
  fflush(stdout);
}

/* Restart number run->n_rs: stops shard n_rs % shards with its signal (alternating per shard),
 * starts it again on the same port with the same directory (it restores its checkpoint and replays
 * its log before it listens), waits until the main client's Info of it answers, and checks that
 * every row acknowledged to it before the stop is there. The other shards serve meanwhile.
 * Returns 0, or -1 if the shard did not come back (run->child_died is set). */
static int soak_restart_one(soak_shared *sh, soak_run *run, rc_shard_info *info, double t) {
  const soak_cfg *c = sh->cfg;
  IB_CHECK(run->n_rs < run->cap_rs);
  int k = run->n_rs, s = k % c->shards;
  soak_shard_run *sr = &run->shard[s];
  soak_restart *r = &run->rs[run->n_rs++];
  memset(r, 0, sizeof *r);
  r->t = t;
  r->shard = s;
  r->sig = c->restart_sig != SOAK_SIG_ALTERNATE ? c->restart_sig : sr->restarts % 2 == 0 ? SIGKILL : SIGTERM;
  atomic_store(&sh->down_to_ns[s], INT64_MAX);
  int64_t t_stop = (int64_t)ib_now_ns();
  atomic_store(&sh->down_from_ns[s], t_stop);
  int port = sr->ch.port;
  r->exit_code = soak_child_stop(&sr->ch, r->sig, 60);
  sr->restarts++;
  char tb[32];
  const char *tag = soak_tag(c, s, tb, sizeof tb);
  if (r->sig == SIGTERM && r->exit_code != 0) {
    run->term_bad++;
    fprintf(stderr, "soak: restart %d: %sthe shard exited with %d on SIGTERM (want 0: drained, final checkpoint)\n",
            k + 1, tag, r->exit_code);
  }
  /* Everything acknowledged to this shard until it died; an acknowledgement still on its way is
   * not in the snapshot but is checked at the end. */
  for (int a = s; a < c->actors; a += c->shards) run->snap[a] = atomic_load(&sh->acked[a]);
  int rc = IB_EUNAVAIL;
  for (int tries = 0; tries < 10 && rc != IB_OK; tries++) {
    if (tries > 0) sleep(1);
    rc = soak_child_start(&sr->ch, c, sr->dir, port, s);
    r->start_tries = tries + 1;
  }
  if (rc != IB_OK) {
    fprintf(stderr, "soak: restart %d: %sthe shard did not come back on port %d in 10 tries: %s\n", k + 1, tag, port,
            ib_errmsg());
    run->child_died = run->restart_failed = 1;
    sr->child_exit = -1;
    return -1;
  }
  /* The main client reconnects within its backoff (its calls to this shard fail fast meanwhile). */
  double until = ib_now_s() + 20;
  while ((rc = rc_info_get(sh->c, s, info)) != IB_OK && ib_now_s() < until) usleep(50000);
  r->down_s = (double)((int64_t)ib_now_ns() - t_stop) * 1e-9;
  atomic_store(&sh->down_to_ns[s], (int64_t)ib_now_ns() + (int64_t)(c->down_grace * 1e9));
  if (rc != IB_OK) {
    fprintf(stderr, "soak: restart %d: %sthe restarted shard did not answer Info for 20 s: %s\n", k + 1, tag,
            ib_errmsg());
    run->restart_failed = 1;
    return 0;
  }
  soak_check k1;
  soak_check_shard(c, s, info, run->snap, 0, &k1);
  r->acked = k1.acked;
  r->lost = k1.lost;
  r->counts_bad = k1.doubles > 0 || k1.size_bad;
  run->lost_restarts += r->lost;
  run->counts_bad_restarts += r->counts_bad;
  printf("soak: restart %d at %.0f s (%s%s): shard exit %d, back after %.2f s (%d start%s), %llu acknowledged rows "
         "(online + demo), %llu lost; online inserted %llu, actors' tops %llu, size %llu%s\n", k + 1, t, tag,
         r->sig == SIGKILL ? "SIGKILL" : "SIGTERM", r->exit_code, r->down_s, r->start_tries,
         r->start_tries == 1 ? "" : "s", (unsigned long long)r->acked, (unsigned long long)r->lost,
         (unsigned long long)k1.inserted, (unsigned long long)k1.sum_top, (unsigned long long)k1.size,
         r->counts_bad ? " (COUNTS WRONG)" : "");
  fflush(stdout);
  return 0;
}

/* Samples every shard once a second until cfg->seconds have passed or a shard exited; restarts a
 * shard every cfg->restart_every seconds, the shards in turn (none in the last 10 s, so the last
 * incarnations run long enough to be judged). */
static void soak_watch(soak_shared *sh, soak_run *run) {
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  double t0 = ib_now_s(), next_progress = c->progress;
  double next_restart = c->restart_every > 0 ? c->restart_every : INFINITY;
  uint64_t last_w = atomic_load(&sh->rows_written), last_s = atomic_load(&sh->rows_sampled);
  double last_t = 0;
  for (int i = 1; run->n < run->cap && !run->child_died; i++) {
    double wait = t0 + i - ib_now_s();
    if (wait > 0) usleep((useconds_t)(wait * 1e6));
    else i = (int)(ib_now_s() - t0); /* late (a stalled Info, a restart): the next point is a second from now */
    double t = ib_now_s() - t0;
    uint64_t w = atomic_load(&sh->rows_written), smp = atomic_load(&sh->rows_sampled);
    double ins = (double)(w - last_w) / (t - last_t), spl = (double)(smp - last_s) / (t - last_t);
    last_w = w, last_s = smp, last_t = t;
    for (int s = 0; s < c->shards; s++) {
      soak_shard_run *sr = &run->shard[s];
      soak_point *p = &sr->pts[run->n];
      memset(p, 0, sizeof *p);
      p->t = t;
      p->inc = sr->restarts;
      if (soak_child_gone(&sr->ch, &sr->child_exit) || soak_proc_read(sr->ch.pid, p) != 0) {
        run->child_died = 1;
        fprintf(stderr, "soak: shard %d exited during the traffic (status %d) HINT: see its log above\n", s,
                sr->child_exit);
        break;
      }
      p->ins_per_s = ins;
      p->smp_per_s = spl;
      soak_point_info(sh, s, info, p, sr);
      p->errors = atomic_load(&sh->errors);
      p->bad_refused = atomic_load(&sh->bad_refused);
    }
    if (run->child_died) break;
    run->n++;
    if (t >= next_progress) {
      soak_progress(run->n - 1, sh, run, c->online_cap);
      next_progress += c->progress;
    }
    if (t >= c->seconds) break;
    if (t >= next_restart && t + fmin(c->restart_every, 10) < c->seconds) {
      run->restart_after[run->n - 1] = 1;
      if (soak_restart_one(sh, run, info, t) != 0) break;
      next_restart += c->restart_every;
    }
  }
  free(info);
}

/* The end-of-run loss check of every shard (restarts only): the writers are closed, so nothing is
 * in flight and the exact checks hold. */
static void soak_final_check(soak_shared *sh, soak_run *run) {
  const soak_cfg *c = sh->cfg;
  rc_shard_info *info = ib_xcalloc(1, sizeof *info);
  for (int a = 0; a < c->actors; a++) run->snap[a] = atomic_load(&sh->acked[a]);
  run->final_checked = 1;
  for (int s = 0; s < c->shards; s++) {
    soak_shard_run *sr = &run->shard[s];
    int rc = IB_EUNAVAIL;
    double until = ib_now_s() + 10;
    while ((rc = rc_info_get(sh->c, s, info)) != IB_OK && ib_now_s() < until) usleep(100000);
    if (rc != IB_OK) {
      fprintf(stderr, "soak: the end-of-run loss check could not ask shard %d's Info: %s\n", s, ib_errmsg());
      run->final_checked = 0;
      continue;
    }
    soak_check_shard(c, s, info, run->snap, 1, &sr->final);
    run->final_acked += sr->final.acked;
    run->final_stored += sr->final.size;
    run->final_lost += sr->final.lost;
    run->final_counts_bad |= sr->final.doubles > 0 || sr->final.size_bad;
  }
  free(info);
}

/* The timeline as CSV: the one-shard columns (shard 0's), then for each further shard k its own
 * columns suffixed _s<k>. */
static int soak_csv_write(const char *path, const soak_cfg *c, const soak_run *run) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return ib_fail(IB_EIO, "--csv %s: %s HINT: check the directory exists and is writable", path,
                                strerror(errno));
  fprintf(f, "t_s,rss_mb,hwm_mb,fds,threads,inserts_per_s,samples_per_s,online_size,online_inserted,demo_size,"
             "checkpoints,errors,bad_refused,info_ms,incarnation");
  for (int s = 1; s < c->shards; s++)
    fprintf(f, ",rss_mb_s%d,hwm_mb_s%d,fds_s%d,threads_s%d,online_size_s%d,online_inserted_s%d,demo_size_s%d,"
               "checkpoints_s%d,info_ms_s%d,incarnation_s%d", s, s, s, s, s, s, s, s, s, s);
  fprintf(f, "\n");
  for (int i = 0; i < run->n; i++) {
    const soak_point *p = &run->shard[0].pts[i];
    fprintf(f, "%.2f,%.2f,%.2f,%d,%d,%.0f,%.0f,%llu,%llu,%llu,%llu,%llu,%llu,%.1f,%d", p->t, p->rss_mb, p->hwm_mb,
            p->fds, p->threads, p->ins_per_s, p->smp_per_s, (unsigned long long)p->online_size,
            (unsigned long long)p->online_inserted, (unsigned long long)p->demo_size,
            (unsigned long long)p->checkpoints, (unsigned long long)p->errors, (unsigned long long)p->bad_refused,
            p->info_ms, p->inc);
    for (int s = 1; s < c->shards; s++) {
      const soak_point *q = &run->shard[s].pts[i];
      fprintf(f, ",%.2f,%.2f,%d,%d,%llu,%llu,%llu,%llu,%.1f,%d", q->rss_mb, q->hwm_mb, q->fds, q->threads,
              (unsigned long long)q->online_size, (unsigned long long)q->online_inserted,
              (unsigned long long)q->demo_size, (unsigned long long)q->checkpoints, q->info_ms, q->inc);
    }
    fprintf(f, "\n");
  }
  if (fclose(f) != 0) return ib_fail(IB_EIO, "--csv %s: write failed HINT: disk full?", path);
  return IB_OK;
}

/* ---- the verdict ---- */

/* The memory verdict of one shard. */
typedef struct soak_mem {
  double warm_t;           /* the fit window starts here */
  int ring_full_ckpt;      /* 1 if the ring filled and a checkpoint was done before warm_t (restarts: a
                              checkpoint done in the judged incarnation) */
  int n_fit;               /* points in the window */
  double warm_rss, end_rss, peak_hwm;
  double slope, slope_med, spread, spread_bound; /* MB/min (least squares, median), MB */
  double active;                                 /* share of window points with inserts flowing */
  int fds_min, fds_max, thr_min, thr_max;
  double info_max_ms; /* slowest timeline Info call */
  int stalls;         /* timeline Info calls slower than 1 s */
  double max_gap;     /* longest time between two timeline points that no restart separated (s) */
  int gaps;           /* gaps over 3 s: the soak or the shard did not run (a SIGSTOP from outside, a stalled
                         machine, an Info that hung) */
  double gap_s;       /* their total length */
  int bounded, flat;
  int n_inc, judged_inc; /* incarnations; the one judged flat (-1: none ran long enough) */
  int worst_inc;         /* the incarnation with the highest peak */
  uint64_t online_inserted, checkpoints; /* at the last point */
} soak_mem;

typedef struct soak_verdict {
  soak_mem m[SOAK_MAX_SHARDS];
  double predicted_mb; /* per shard */
  int bounded, flat, clean, durable; /* every shard's */
  uint64_t rows_written, rows_sampled, errors, bad_sent, bad_refused, churns, infos;
  uint64_t errors_down, bad_down, samples_down, samples_skipped, lost;
} soak_verdict;

/* Without restarts: the later of (ring full and a checkpoint done) and warmup x the run. With
 * restarts, for incarnation points [i0, i1): the later of (a checkpoint done in it) and warmup x
 * its length after its first point. */
static double soak_warm_t(const soak_cfg *c, const soak_point *pts, int i0, int i1, int *ready) {
  int need_ckpt = c->ckpt_period > 0, restarts = c->restart_every > 0;
  double floor_t = c->warmup * c->seconds;
  if (restarts) floor_t = pts[i0].t + c->warmup * (pts[i1 - 1].t - pts[i0].t);
  *ready = 0;
  for (int i = i0; i < i1; i++) {
    const soak_point *p = &pts[i];
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
 * window but not the median. With `by_counter` (restarts, or several shards, where the writers'
 * rate is not this shard's) a second counts as one with inserts flowing when the shard's insert
 * counter moved (small batches are acknowledged in bursts of up to 1024 rows a writer, seconds
 * apart). The store's memory is resident from its creation (records and per-slot arrays), so a
 * filling ring does not grow RSS. */
static void soak_fit(const soak_point *pts, int n_all, int i0, int i1, int by_counter, soak_mem *v) {
  double st = 0, sr = 0, stt = 0, str = 0, lo = INFINITY, hi = -INFINITY;
  double *growth = ib_xcalloc((size_t)n_all + 1, sizeof *growth);
  int n = 0, ng = 0, active = 0;
  const soak_point *prev = NULL;
  double prev_rss = 0;
  v->fds_min = v->thr_min = INT_MAX;
  v->fds_max = v->thr_max = 0;
  for (int i = i0; i < i1; i++) {
    const soak_point *p = &pts[i];
    if (p->t < v->warm_t) continue;
    double rss = p->rss_mb;
    if (n == 0) v->warm_rss = rss;
    double t = p->t / 60.0;
    st += t, sr += rss, stt += t * t, str += t * rss, n++;
    lo = fmin(lo, rss), hi = fmax(hi, rss);
    if (by_counter) active += prev != NULL && p->online_inserted > prev->online_inserted;
    else active += p->ins_per_s > 0;
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

/* The points [*i0, *i1) of incarnation `inc` among pts[0, n) (empty if it has none). */
static void soak_inc_range(const soak_point *pts, int n, int inc, int *i0, int *i1) {
  int a = 0;
  while (a < n && pts[a].inc < inc) a++;
  int b = a;
  while (b < n && pts[b].inc == inc) b++;
  *i0 = a, *i1 = b;
}

/* The peak RSS (VmHWM) of the points [i0, i1). */
static double soak_peak(const soak_point *pts, int i0, int i1) {
  double peak = 0;
  for (int i = i0; i < i1; i++) peak = fmax(peak, pts[i].hwm_mb);
  return peak;
}

/* The memory verdict of one shard's timeline. */
static void soak_judge_mem(const soak_cfg *c, const soak_run *run, const soak_point *pts, double predicted_mb,
                           soak_mem *v) {
  memset(v, 0, sizeof *v);
  int n = run->n;
  v->n_inc = n > 0 ? pts[n - 1].inc + 1 : 0;
  v->judged_inc = -1;
  for (int i = 0; i < n; i++) {
    v->info_max_ms = fmax(v->info_max_ms, pts[i].info_ms);
    v->stalls += pts[i].info_ms > 1000;
    if (i > 0 && !run->restart_after[i - 1]) {
      double gap = pts[i].t - pts[i - 1].t;
      v->max_gap = fmax(v->max_gap, gap);
      if (gap > 3) v->gaps++, v->gap_s += gap;
    }
  }
  int by_counter = c->restart_every > 0 || c->shards > 1;
  if (c->restart_every <= 0) {
    v->warm_t = soak_warm_t(c, pts, 0, n, &v->ring_full_ckpt);
    soak_fit(pts, n, 0, n, by_counter, v);
    v->judged_inc = 0;
  } else {
    /* The last incarnation with enough points after its own warm-up is judged flat. */
    for (int inc = v->n_inc - 1; inc >= 0 && v->judged_inc < 0; inc--) {
      int i0, i1;
      soak_inc_range(pts, n, inc, &i0, &i1);
      if (i1 - i0 < 2) continue;
      soak_mem t = *v;
      t.warm_t = soak_warm_t(c, pts, i0, i1, &t.ring_full_ckpt);
      soak_fit(pts, n, i0, i1, by_counter, &t);
      if (t.n_fit < SOAK_MIN_FIT) continue;
      *v = t;
      v->judged_inc = inc;
    }
  }
  const soak_point *last = n > 0 ? &pts[n - 1] : NULL;
  v->end_rss = last ? last->rss_mb : NAN;
  v->peak_hwm = 0;
  for (int inc = 0; inc < v->n_inc; inc++) {
    int i0, i1;
    soak_inc_range(pts, n, inc, &i0, &i1);
    double peak = soak_peak(pts, i0, i1);
    if (peak > v->peak_hwm) v->peak_hwm = peak, v->worst_inc = inc;
  }
  v->spread_bound = fmax(c->max_spread / 100.0 * v->warm_rss, c->max_spread_mb);
  v->online_inserted = last ? last->online_inserted : 0;
  v->checkpoints = last ? last->checkpoints : 0;
  v->bounded = last != NULL && v->peak_hwm <= predicted_mb;
  double slope = c->slope_median ? v->slope_med : v->slope;
  v->flat = v->judged_inc >= 0 && v->n_fit >= 5 && v->active >= 0.5 && slope < c->max_slope &&
            v->spread < v->spread_bound;
}

static void soak_judge(const soak_cfg *c, const soak_shared *sh, const soak_run *run, soak_verdict *v) {
  memset(v, 0, sizeof *v);
  v->predicted_mb = run->tables_mb + c->allowance_mb;
  v->bounded = v->flat = 1;
  int exits_ok = 1;
  for (int s = 0; s < c->shards; s++) {
    soak_judge_mem(c, run, run->shard[s].pts, v->predicted_mb, &v->m[s]);
    v->bounded &= v->m[s].bounded;
    v->flat &= v->m[s].flat;
    exits_ok &= run->shard[s].child_exit == 0;
  }
  v->rows_written = atomic_load(&sh->rows_written);
  v->rows_sampled = atomic_load(&sh->rows_sampled);
  v->errors = atomic_load(&sh->errors);
  v->bad_sent = atomic_load(&sh->bad_sent);
  v->bad_refused = atomic_load(&sh->bad_refused);
  v->churns = atomic_load(&sh->churns);
  v->infos = atomic_load(&sh->infos);
  v->errors_down = atomic_load(&sh->errors_down);
  v->bad_down = atomic_load(&sh->bad_down);
  v->samples_down = atomic_load(&sh->samples_down);
  v->samples_skipped = atomic_load(&sh->samples_skipped);
  /* A row lost in a restart stays missing (writers never resend acknowledged rows), so the end's
   * check sees it again, as a hole or a short actor: the distinct rows lost are the larger count. */
  v->lost = run->final_lost > run->lost_restarts ? run->final_lost : run->lost_restarts;
  v->clean = v->errors == 0 && v->bad_refused + v->bad_down == v->bad_sent && (c->bad_every <= 0 || v->bad_sent > 0) &&
             !run->child_died && exits_ok && run->term_bad == 0 && !run->restart_failed;
  v->durable = c->restart_every <= 0 || (v->lost == 0 && run->counts_bad_restarts == 0 && !run->final_counts_bad &&
                                         run->final_checked && !run->restart_failed);
}

/* Restarts only: one line per incarnation of each shard, the outages and the loss check. */
static void soak_report_restarts(const soak_cfg *c, const soak_run *run, const soak_verdict *v) {
  char tb[32];
  for (int s = 0; s < c->shards; s++) {
    const soak_point *pts = run->shard[s].pts;
    const char *tag = soak_tag(c, s, tb, sizeof tb);
    for (int inc = 0; inc < v->m[s].n_inc; inc++) {
      int i0, i1;
      soak_inc_range(pts, run->n, inc, &i0, &i1);
      if (i1 <= i0) continue;
      printf("soak: %sincarnation %2d: %4.0f-%4.0f s, %3d points, RSS %.1f -> %.1f MB, peak %.1f MB%s\n", tag, inc,
             pts[i0].t, pts[i1 - 1].t, i1 - i0, pts[i0].rss_mb, pts[i1 - 1].rss_mb, soak_peak(pts, i0, i1),
             inc == v->m[s].judged_inc ? " (judged flat)" : "");
    }
  }
  int kills = 0, terms = 0, per[SOAK_MAX_SHARDS] = {0};
  double dmin = INFINITY, dmax = 0, dsum = 0;
  for (int k = 0; k < run->n_rs; k++) {
    kills += run->rs[k].sig == SIGKILL, terms += run->rs[k].sig == SIGTERM;
    per[run->rs[k].shard]++;
    dmin = fmin(dmin, run->rs[k].down_s), dmax = fmax(dmax, run->rs[k].down_s), dsum += run->rs[k].down_s;
  }
  printf("soak: restarts %d (%d SIGKILL, %d SIGTERM, SIGTERM exits not 0: %d", run->n_rs, kills, terms, run->term_bad);
  if (c->shards > 1) {
    printf("; per shard");
    for (int s = 0; s < c->shards; s++) printf("%s%d", s ? "/" : " ", per[s]);
  }
  printf("), down %.2f-%.2f s (mean %.2f); calls failed while down %llu (+ %llu bad requests), while up %llu\n",
         run->n_rs ? dmin : 0.0, dmax, run->n_rs ? dsum / run->n_rs : 0.0, (unsigned long long)v->errors_down,
         (unsigned long long)v->bad_down, (unsigned long long)v->errors);
  printf("soak: samples (all shards) failed while a shard was down %llu; samples that skipped a down shard %llu\n",
         (unsigned long long)v->samples_down, (unsigned long long)v->samples_skipped);
  int wrapped = 0;
  for (int s = 0; s < c->shards; s++) {
    const soak_check *k = &run->shard[s].final;
    wrapped |= k->inserted > k->capacity;
    if (c->shards > 1 && run->final_checked)
      printf("soak: shard %d: end of run: %llu rows acknowledged (online + %ld demo); online inserted %llu (ring "
             "wrapped %.1fx), actors' tops %llu, size %llu of %llu%s\n", s, (unsigned long long)k->acked, c->demo_rows,
             (unsigned long long)k->inserted, k->capacity ? (double)k->inserted / (double)k->capacity : 0.0,
             (unsigned long long)k->sum_top, (unsigned long long)k->size, (unsigned long long)k->capacity,
             k->doubles > 0 || k->size_bad ? " (COUNTS WRONG)" : "");
  }
  printf("soak: end of run: %llu rows acknowledged (online + %ld demo%s), %llu online rows stored%s\n",
         (unsigned long long)run->final_acked, c->demo_rows, c->shards > 1 ? " per shard" : "",
         (unsigned long long)run->final_stored, run->final_checked ? "" : " (NOT CHECKED: Info failed)");
  printf("soak: acknowledged rows lost: %llu (checked after %d restarts%s: %llu missing right after them, %llu at "
         "the end; %s) %s\n", (unsigned long long)v->lost, run->n_rs, run->final_checked ? " and at the end" : "",
         (unsigned long long)run->lost_restarts, (unsigned long long)run->final_lost,
         wrapped ? "a ring wrapped: checked by the shard's insert count against the actors' highest seqs"
                 : "no ring wrapped: exact, the online table holds every acknowledged row",
         v->durable ? "PASS" : "FAIL");
  if (run->counts_bad_restarts > 0 || run->final_counts_bad)
    printf("soak: FAIL durable: a shard's counts disagree (rows counted twice, or a ring holding the wrong number of "
           "rows) after %d restarts%s HINT: see the messages above; the store's restore (persist.c) is suspect\n",
           run->counts_bad_restarts, run->final_counts_bad ? " and at the end" : "");
  if (v->lost > 0)
    printf("soak: FAIL durable: %llu acknowledged rows were not in the restarted shard HINT: with --durability ckpt a "
           "SIGKILL loses the inserts since the last checkpoint (use wal); with wal, see the shard's 'restored' log "
           "lines and the actors named above\n", (unsigned long long)v->lost);
}

/* The memory lines of one shard. */
static void soak_report_mem(const soak_cfg *c, const soak_run *run, const soak_verdict *v, int s) {
  const soak_mem *m = &v->m[s];
  char tb[32];
  const char *tag = soak_tag(c, s, tb, sizeof tb);
  printf("soak: %swarm-up ends at %.0f s (%s); RSS %.1f MB there, %.1f MB at the end, peak (VmHWM) %.1f MB; fds "
         "%d..%d, threads %d..%d after warm-up\n", tag, m->warm_t,
         c->restart_every > 0 ? (m->ring_full_ckpt ? "a checkpoint done in the judged incarnation"
                                                   : "WARNING: no checkpoint in the judged incarnation")
         : m->ring_full_ckpt ? "ring full and a checkpoint done" : "WARNING: ring never full with a checkpoint",
         m->warm_rss, m->end_rss, m->peak_hwm, m->fds_min, m->fds_max, m->thr_min, m->thr_max);
  printf("soak: %sslowest Info %.0f ms; %d Info calls of the timeline took over 1 s (the shard stalled); longest gap "
         "between timeline points %.1f s; %d gaps over 3 s, %.0f s in all%s\n", tag, m->info_max_ms, m->stalls,
         m->max_gap, m->gaps, m->gap_s, m->gaps > 0 ? " (nothing ran then: a SIGSTOP from outside, e.g. another "
         "benchmark pausing the machine, or a stalled Info)" : "");
  printf("soak: %sbounded by configuration: %s (peak %.1f MB %s %.1f MB%s)\n", tag, m->bounded ? "PASS" : "FAIL",
         m->peak_hwm, m->bounded ? "<=" : ">", v->predicted_mb,
         c->restart_every > 0 ? ", the highest of every incarnation's" : "");
  if (c->restart_every > 0 && m->judged_inc < 0)
    printf("soak: %sflat after warm-up: FAIL (no incarnation had %d points after its warm-up HINT: raise "
           "--restart-every or --seconds)\n", tag, SOAK_MIN_FIT);
  else
    printf("soak: %sflat after warm-up: %s (%s slope %+.3f MB/min, bound %.3f [least squares %+.3f, median %+.3f]; "
           "spread %.2f MB, bound %.2f MB; %d points, inserts flowing in %.0f%%)\n", tag, m->flat ? "PASS" : "FAIL",
           c->slope_median ? "median" : "least-squares", c->slope_median ? m->slope_med : m->slope, c->max_slope,
           m->slope, m->slope_med, m->spread, m->spread_bound, m->n_fit, 100 * m->active);
  if (!m->bounded)
    printf("soak: FAIL bounded: %sthe shard's peak RSS %.1f MB exceeds tables %.1f MB + allowance %.0f MB HINT: a "
           "leak, or an allowance too small for this configuration (--allowance-mb)\n", tag, m->peak_hwm,
           run->tables_mb, c->allowance_mb);
  if (!m->flat && m->judged_inc >= 0)
    printf("soak: FAIL flat: %sRSS grew %+.3f MB/min (%s; bound %.3f) with a spread of %.2f MB (bound %.2f) over %d "
           "points after %.0f s, inserts flowing in %.0f%% of them (need 50%%) HINT: a leak per call or message; "
           "compare the timeline (--csv) with the call counts; a shard that stalled most of the window proves "
           "nothing\n", tag, c->slope_median ? m->slope_med : m->slope, c->slope_median ? "median" : "least squares",
           c->max_slope, m->spread, m->spread_bound, m->n_fit, m->warm_t, 100 * m->active);
}

static void soak_report(const soak_cfg *c, const soak_run *run, const soak_verdict *v) {
  const soak_mem *m0 = &v->m[0];
  double t_end = run->n ? run->shard[0].pts[run->n - 1].t : 0.0;
  printf("\nsoak: %d points over %.0f s; tables %.1f MB by the --help formula (Info: %.1f MB), prediction %.1f MB "
         "(+ %.0f MB allowance)%s\n", run->n, t_end, run->tables_mb, run->shard[0].info_tables_mb, v->predicted_mb,
         c->allowance_mb, c->shards > 1 ? " per shard" : "");
  if (c->restart_every > 0) soak_report_restarts(c, run, v);
  if (c->token != NULL || c->tls)
    printf("soak: token %s, TLS %s\n", c->token != NULL ? "on (wrong-token requests in the bad requests)" : "off",
           c->tls_cert != NULL ? "on (self-signed, clients trust it)" : c->tls ? "SKIPPED (no certificate)" : "off");
  uint64_t online = 0, checkpoints = 0;
  for (int s = 0; s < c->shards; s++) online += v->m[s].online_inserted, checkpoints += v->m[s].checkpoints;
  if (c->shards == 1)
    printf("soak: rows inserted %llu (shard: %llu online, ring wrapped %.1fx, %llu duplicates), sampled %llu; "
           "checkpoints %llu; bad requests refused %llu/%llu; fresh clients %llu; Info calls %llu; failed calls %llu\n",
           (unsigned long long)v->rows_written, (unsigned long long)m0->online_inserted,
           (double)m0->online_inserted / (double)c->online_cap, (unsigned long long)run->shard[0].dup_online,
           (unsigned long long)v->rows_sampled, (unsigned long long)m0->checkpoints, (unsigned long long)v->bad_refused,
           (unsigned long long)v->bad_sent, (unsigned long long)v->churns, (unsigned long long)v->infos,
           (unsigned long long)v->errors);
  else {
    printf("soak: rows inserted %llu (shards: %llu online", (unsigned long long)v->rows_written,
           (unsigned long long)online);
    for (int s = 0; s < c->shards; s++)
      printf("%s shard %d %llu, wrapped %.1fx, %llu duplicates", s ? ";" : ":", s,
             (unsigned long long)v->m[s].online_inserted, (double)v->m[s].online_inserted / (double)c->online_cap,
             (unsigned long long)run->shard[s].dup_online);
    printf("), sampled %llu; checkpoints %llu; bad requests refused %llu/%llu; fresh clients %llu; Info calls %llu; "
           "failed calls %llu\n", (unsigned long long)v->rows_sampled, (unsigned long long)checkpoints,
           (unsigned long long)v->bad_refused, (unsigned long long)v->bad_sent, (unsigned long long)v->churns,
           (unsigned long long)v->infos, (unsigned long long)v->errors);
  }
  for (int s = 0; s < c->shards; s++) soak_report_mem(c, run, v, s);
  int exit_worst = 0;
  for (int s = 0; s < c->shards; s++)
    if (run->shard[s].child_exit != 0) exit_worst = run->shard[s].child_exit;
  printf("soak: clean: %s (failed calls %llu, bad requests refused %llu/%llu%s, %s %s, exit %d)\n",
         v->clean ? "PASS" : "FAIL", (unsigned long long)v->errors, (unsigned long long)v->bad_refused,
         (unsigned long long)v->bad_sent, v->bad_down > 0 ? " + failed while down" : "",
         c->shards > 1 ? "shards" : "shard", run->child_died ? "died during the traffic" : "stopped by SIGTERM",
         exit_worst);
  if (c->json) {
    /* The memory keys are shard 0's (the one shard of the runs before --shards); per_shard has all. */
    printf("{\"pass\":%s,\"bounded\":%s,\"flat\":%s,\"clean\":%s,\"durable\":%s,\"seconds\":%.1f,\"tables_mb\":%.2f,"
           "\"predicted_mb\":%.2f,\"warm_t\":%.1f,\"warm_rss_mb\":%.2f,\"end_rss_mb\":%.2f,\"peak_hwm_mb\":%.2f,"
           "\"slope_mb_per_min\":%.4f,\"median_slope_mb_per_min\":%.4f,\"spread_mb\":%.3f,\"spread_bound_mb\":%.3f,"
           "\"rows_inserted\":%llu,\"rows_sampled\":%llu,\"checkpoints\":%llu,\"bad_sent\":%llu,\"bad_refused\":%llu,"
           "\"churns\":%llu,\"errors\":%llu,\"restarts\":%d,\"incarnation_judged\":%d,\"failed_while_down\":%llu,"
           "\"bad_failed_while_down\":%llu,\"samples_failed_while_down\":%llu,\"samples_skipping_a_shard\":%llu,"
           "\"acked_rows\":%llu,\"acked_lost\":%llu,\"online_stored\":%llu,\"token\":%s,\"tls\":%s,\"shards\":%d,"
           "\"per_shard\":[",
           v->bounded && v->flat && v->clean && v->durable ? "true" : "false", v->bounded ? "true" : "false",
           v->flat ? "true" : "false", v->clean ? "true" : "false", v->durable ? "true" : "false", t_end,
           run->tables_mb, v->predicted_mb, m0->warm_t, m0->warm_rss, m0->end_rss, m0->peak_hwm, m0->slope,
           m0->slope_med, m0->spread, m0->spread_bound, (unsigned long long)v->rows_written,
           (unsigned long long)v->rows_sampled, (unsigned long long)checkpoints, (unsigned long long)v->bad_sent,
           (unsigned long long)v->bad_refused, (unsigned long long)v->churns, (unsigned long long)v->errors, run->n_rs,
           m0->judged_inc, (unsigned long long)v->errors_down, (unsigned long long)v->bad_down,
           (unsigned long long)v->samples_down, (unsigned long long)v->samples_skipped,
           (unsigned long long)run->final_acked, (unsigned long long)v->lost, (unsigned long long)run->final_stored,
           c->token != NULL ? "true" : "false", c->tls_cert != NULL ? "true" : "false", c->shards);
    for (int s = 0; s < c->shards; s++) {
      const soak_mem *m = &v->m[s];
      const soak_check *k = &run->shard[s].final;
      printf("%s{\"shard\":%d,\"bounded\":%s,\"flat\":%s,\"peak_hwm_mb\":%.2f,\"slope_mb_per_min\":%.4f,"
             "\"median_slope_mb_per_min\":%.4f,\"spread_mb\":%.3f,\"incarnations\":%d,\"incarnation_judged\":%d,"
             "\"online_inserted\":%llu,\"acked_rows\":%llu,\"acked_lost\":%llu,\"actors_tops\":%llu,"
             "\"online_stored\":%llu,\"exit\":%d}", s ? "," : "", s, m->bounded ? "true" : "false",
             m->flat ? "true" : "false", m->peak_hwm, m->slope, m->slope_med, m->spread, m->n_inc, m->judged_inc,
             (unsigned long long)m->online_inserted, (unsigned long long)k->acked, (unsigned long long)k->lost,
             (unsigned long long)k->sum_top, (unsigned long long)k->size, run->shard[s].child_exit);
    }
    printf("]}\n");
  }
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

/* Makes `dir` if missing and checks it is empty (the shard would restore from it). */
static int soak_dir_empty(const char *dir, const char *what) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return ib_fail(IB_EIO, "%s %s: %s", what, dir, strerror(errno));
  DIR *d = opendir(dir);
  if (d == NULL) return ib_fail(IB_EIO, "%s %s: %s", what, dir, strerror(errno));
  int files = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) files += e->d_name[0] != '.';
  closedir(d);
  if (files > 0)
    return ib_fail(IB_EINVAL, "%s %s is not empty HINT: the shard would restore from it; give a new directory", what,
                   dir);
  return IB_OK;
}

/* The shards' checkpoint directories: with --ckpt-dir, that directory (one shard) or its
 * subdirectories shard<k> (several), created if missing and empty; else a fresh temp dir per
 * shard, removed at the end (*owned). On failure the temp dirs made so far are removed. */
static int soak_dir_make(const soak_cfg *c, soak_run *run, int *owned) {
  *owned = c->ckpt_dir == NULL;
  for (int s = 0; s < c->shards; s++) {
    char *dir = run->shard[s].dir;
    if (*owned) {
      snprintf(dir, PATH_MAX, "/tmp/ibrl-soak-XXXXXX");
      if (mkdtemp(dir) == NULL) {
        int e = errno;
        for (int k = 0; k < s; k++) soak_dir_remove(run->shard[k].dir);
        return ib_fail(IB_EIO, "mkdtemp /tmp/ibrl-soak-*: %s", strerror(e));
      }
      continue;
    }
    if (c->shards == 1) {
      snprintf(dir, PATH_MAX, "%s", c->ckpt_dir);
    } else {
      /* Only the shards' own directories must be empty: they are what a shard restores from. */
      if (s == 0 && mkdir(c->ckpt_dir, 0755) != 0 && errno != EEXIST)
        return ib_fail(IB_EIO, "--ckpt-dir %s: %s", c->ckpt_dir, strerror(errno));
      if (strlen(c->ckpt_dir) + 16 >= PATH_MAX) return ib_fail(IB_EINVAL, "--ckpt-dir %s is too long", c->ckpt_dir);
      snprintf(dir, PATH_MAX, "%s/shard%d", c->ckpt_dir, s);
    }
    int rc = soak_dir_empty(dir, "--ckpt-dir");
    if (rc != IB_OK) return rc;
  }
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

/* Runs the traffic threads against the started shards and watches them. */
static int soak_traffic(soak_shared *sh, soak_run *run) {
  const soak_cfg *c = sh->cfg;
  for (int s = 0; s < c->shards; s++) {
    int rc = soak_preload_demos(sh, s);
    if (rc != IB_OK) {
      fprintf(stderr, "ibrl-bench soak: preloading %ld demo rows into shard %d failed: %s\n", c->demo_rows, s,
              ib_errmsg());
      return rc;
    }
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
  soak_watch(sh, run);
  atomic_store(&sh->stop, 1);
  for (int k = 0; k < c->writers; k++) pthread_join(wt[k], NULL);
  for (int k = 0; k < c->samplers; k++) pthread_join(stt[k], NULL);
  pthread_join(mt, NULL);
  if (c->restart_every > 0 && !run->child_died) soak_final_check(sh, run);
  return IB_OK;
}

/* Stops every shard still running with SIGTERM (drain, final checkpoint) and keeps its exit code. */
static void soak_stop_all(const soak_cfg *c, soak_run *run) {
  for (int s = 0; s < c->shards; s++)
    if (run->shard[s].ch.pid > 0) run->shard[s].child_exit = soak_child_stop(&run->shard[s].ch, SIGTERM, 60);
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
  soak_run *run = ib_xcalloc(1, sizeof *run); /* 4 x PATH_MAX of directories: not on the stack */
  run->cap = (int)cfg.seconds + 64;
  run->tables_mb = (soak_table_bytes(cfg.online_cap, cfg.obs_dim, cfg.act_dim) +
                    soak_table_bytes(cfg.demo_cap, cfg.obs_dim, cfg.act_dim)) / 1048576.0;
  int owned = 0;
  if (soak_dir_make(&cfg, run, &owned) != IB_OK) {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    free(run);
    return 2;
  }
  /* Made before any thread or gRPC starts (system() forks). */
  char tls_dir[PATH_MAX] = "", tls_cert[PATH_MAX], tls_key[PATH_MAX];
  if (cfg.tls) soak_tls_make(&cfg, tls_dir, tls_cert, tls_key);
  printf("soak: %s, %d shard%s, obs %d act %d, online %ld demo %ld (%ld preloaded)%s, durability %s, checkpoints every "
         "%g s in %s%s; %d writers (batch %d, reopen every %d), %d samplers (demo fraction %g), churn every %g s, bad "
         "request every %g s, %.0f s\n", cfg.replay_bin, cfg.shards, cfg.shards == 1 ? "" : "s", cfg.obs_dim,
         cfg.act_dim, cfg.online_cap, cfg.demo_cap, cfg.demo_rows, cfg.shards == 1 ? "" : " each", cfg.durability,
         cfg.ckpt_period, run->shard[0].dir, cfg.shards == 1 ? "" : " and the other shards' directories", cfg.writers,
         cfg.batch, cfg.reopen, cfg.samplers, cfg.demo_fraction, cfg.churn_every, cfg.bad_every, cfg.seconds);
  if (cfg.restart_every > 0 || cfg.token != NULL || cfg.tls) {
    char restarts[128] = "off";
    if (cfg.restart_every > 0)
      snprintf(restarts, sizeof restarts, "every %g s%s (%s)", cfg.restart_every,
               cfg.shards == 1 ? "" : ", the shards in turn",
               cfg.restart_sig == SIGKILL ? "SIGKILL" : cfg.restart_sig == SIGTERM ? "SIGTERM"
               : "SIGKILL and SIGTERM in turn");
    printf("soak: restarts %s, token %s, TLS %s\n", restarts, cfg.token != NULL ? "on" : "off",
           cfg.tls_cert != NULL ? tls_cert : cfg.tls ? "skipped" : "off");
  }
  fflush(stdout);
  /* The first children are forked before gRPC starts in this process; restarts fork from this
   * (main) thread while gRPC runs, which is safe because the child only calls exec (as
   * tests/rpc/test_client_restart.c does), and PR_SET_PDEATHSIG follows the forking thread. */
  char target[SOAK_MAX_SHARDS * 64 + 8] = "";
  for (int s = 0; s < cfg.shards; s++) {
    if (soak_child_start(&run->shard[s].ch, &cfg, run->shard[s].dir, 0, s) != IB_OK) {
      fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
      soak_stop_all(&cfg, run);
      for (int k = 0; owned && k < cfg.shards; k++) soak_dir_remove(run->shard[k].dir);
      if (tls_dir[0] != '\0') soak_dir_remove(tls_dir);
      free(run);
      return 2; /* setup, as bench_main's exit codes say */
    }
    /* Restarts reuse the port: the list stays valid. */
    size_t len = strlen(target);
    snprintf(target + len, sizeof target - len, "%s%s", s ? "," : "", run->shard[s].ch.target);
  }
  soak_shared sh;
  memset(&sh, 0, sizeof sh);
  sh.cfg = &cfg;
  sh.target = target;
  sh.acked = ib_xcalloc((size_t)cfg.actors, sizeof *sh.acked);
  for (int a = 0; a < cfg.actors; a++) atomic_init(&sh.acked[a], 0);
  rc_opts o;
  soak_opts_make(&o, &sh, 1);
  for (int s = 0; s < cfg.shards; s++) run->shard[s].pts = ib_xcalloc((size_t)run->cap, sizeof(soak_point));
  run->restart_after = ib_xcalloc((size_t)run->cap, 1);
  run->cap_rs = cfg.restart_every > 0 ? (int)(cfg.seconds / cfg.restart_every) + 2 : 1;
  run->rs = ib_xcalloc((size_t)run->cap_rs, sizeof *run->rs);
  run->snap = ib_xcalloc((size_t)cfg.actors, sizeof *run->snap);
  int rc = rc_client_open(&sh.c, &o);
  if (rc == IB_OK) {
    IB_CHECK(rc_client_shard_count(sh.c) == cfg.shards);
    rc = soak_traffic(&sh, run);
  } else {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
  }
  rc_client_close(sh.c);
  soak_stop_all(&cfg, run); /* a shard that died keeps the exit code it died with */
  for (int s = 0; owned && s < cfg.shards; s++) soak_dir_remove(run->shard[s].dir);
  if (tls_dir[0] != '\0') soak_dir_remove(tls_dir);
  int status = 1;
  if (rc == IB_OK) {
    soak_verdict v;
    soak_judge(&cfg, &sh, run, &v);
    soak_report(&cfg, run, &v);
    if (cfg.csv != NULL && soak_csv_write(cfg.csv, &cfg, run) != IB_OK)
      fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    status = v.bounded && v.flat && v.clean && v.durable ? 0 : 1;
    printf("soak: %s\n", status == 0 ? "PASS" : "FAIL");
  }
  for (int s = 0; s < cfg.shards; s++) free(run->shard[s].pts);
  free(run->restart_after);
  free(run->rs);
  free(run->snap);
  free(run);
  free(sh.acked);
  return status;
}
