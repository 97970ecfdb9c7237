/* bench_soak.c: `ibrl-bench soak`: watches one real ibrl-replay process (or --shards N) under mixed
 * gRPC traffic for a long time and judges its memory (issue #5: "bounded by configuration; flat over
 * a long run"), and with --restart-every that restarts lose no acknowledged row.
 *
 * Design. This file is the subcommand: its flags, and the main flow. The work is in soak/, one
 * module a job, all on the structs of soak/soak.h:
 *   1. start the shards: ibrl-replay children on 127.0.0.1 port 0, each with a fresh checkpoint
 *      directory (soak/soak_child.c: fork + exec, the port, /proc, directories, --tls files);
 *   2. preload the demo rows and run the client threads for --seconds: writers, samplers, and a
 *      misc thread for Info, connection churn and bad requests that must be refused
 *      (soak/soak_traffic.c, which also says how calls failing during a restart are counted);
 *   3. meanwhile, on this (main) thread: one timeline point a second per shard, progress lines,
 *      and every --restart-every seconds a shard killed and restarted, with the loss check after
 *      it; at the end of the traffic the exact loss check (soak/soak_watch.c);
 *   4. stop the shards with SIGTERM (each must exit 0: drained, final checkpoint), judge bounded,
 *      flat, clean and durable (soak/soak_check.c, where the bounds and the loss check are
 *      explained), and report, with --json and --csv (soak/soak_out.c).
 * Exit 0 if all hold, 1 if not (each failed check named with its figures), 2 on bad flags or a
 * shard that does not start. The bounds' justification (measured clean runs and a planted leak)
 * is in docs/results/replay-soak.md.
 * --token T goes to the shard and every client; then one bad request in four is a valid Insert
 * from a client with a wrong token, which must come back UNAUTHENTICATED. --tls makes a
 * self-signed certificate for 127.0.0.1 with openssl (skipped with a message if that fails),
 * serves with it and has every client trust it.
 * --restart-mode all stops every shard at the same instant and starts them all again (two shards
 * down at once); --crash-tear (the log, SIGKILL) then turns each killed shard's newest log into what
 * a machine crash could have left, cut or garbled after the last acknowledged row, before it starts
 * (soak/soak_tear.c).
 * --against-fresh R then runs shard 0, aged by the run, against a fresh shard of the same
 * configuration, in turns, and judges whether the aged one got slower (soak/soak_fresh.c). */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ib.h"
#include "soak.h"
#include "soak_check.h"
#include "soak_child.h"
#include "soak_fresh.h"
#include "soak_out.h"
#include "soak_traffic.h"
#include "soak_watch.h"

int bench_soak(int argc, char **argv);

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
          "  --info-every S        seconds between the Info calls of the misc thread (0.01..10); fresh\n"
          "                        clients and bad requests come at these rounds, so at most this often [0.2]\n"
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
          "  --restart-every S     kill and restart a shard every S s (the shards in turn, or all at once with\n"
          "                        --restart-mode all; same port and directory), and check after each\n"
          "                        restart and at the end that no acknowledged row was lost (exactly while\n"
          "                        the ring has not wrapped; by the shard's insert and per-actor counts once\n"
          "                        it has), and that the shard's own count of rows lost at start (Info's\n"
          "                        restore_missing_acked) is 0, or at most the rows a --crash-tear cut;\n"
          "                        needs --actors <= %d; 0 = off [0]\n"
          "  --restart-signal kill|term|alternate   how a shard is stopped for a restart (alternate: per\n"
          "                        shard) [alternate]\n"
          "                        (--durability ckpt loses the inserts since the last checkpoint on kill)\n"
          "  --restart-mode one|all   one: one shard per restart, the shards in turn; all: every shard stopped\n"
          "                        at the same instant (each with its signal), then all started again [one].\n"
          "                        A call to a shard that fails from its signal until it answered the main\n"
          "                        client's Info again (+ --down-grace) counts as failed while down, not as a\n"
          "                        failure. A sample spans the shards: while some are down it skips them\n"
          "                        (counted as skipping); with every shard down it fails, counted as failed\n"
          "                        while down. The loss checks run on every restarted shard.\n"
          "  --crash-tear          after each SIGKILL, before the restart, cut the shard's newest log\n"
          "                        (store.wal.*) at a random point between the end of its last record holding\n"
          "                        an acknowledged row and its end, and half the time write garbage of random\n"
          "                        length (random bytes or zeros) after the cut: what a machine crash could\n"
          "                        leave of writes not yet fsynced. The shard must drop exactly those bytes\n"
          "                        and keep every acknowledged row; an acknowledged row missing from the log\n"
          "                        before the tear fails. Needs --restart-every, --durability wal and\n"
          "                        --restart-signal kill or alternate [off]\n"
          "  --tear-seed N         seed of the tears' random stream (cut points, garbage) [1]\n"
          "  --down-grace S        a call that fails up to S s after the restarted shard answered still\n"
          "                        counts as failed while down [1]\n"
          "  --token T             shared token of the shard and every client; adds a bad request with a\n"
          "                        wrong token, which must be refused UNAUTHENTICATED [none]\n"
          "  --tls                 serve TLS with a self-signed certificate made by openssl (skipped with a\n"
          "                        message if openssl fails); the clients trust it [off]\n"
          "  --against-fresh R     after the traffic, start a fresh shard of the same configuration, warm it\n"
          "                        until its online ring has wrapped twice, then give shard 0 (aged by the run)\n"
          "                        and the fresh one R rounds each of --fresh-window s of uncapped traffic (no\n"
          "                        churn or bad requests), in turns, and judge the aged shard's median insert\n"
          "                        and sample rows/s against the fresh one's: a shard that slows with its\n"
          "                        lifetime fails, a machine that drifted during the run does not (1..%d; 0 =\n"
          "                        off) [0]\n"
          "  --fresh-window S      seconds of each window of --against-fresh (2..600) [10]\n"
          "  --max-decay P         --against-fresh fails if the aged shard's median is below (100 - P)%% of\n"
          "                        the fresh one's, for inserts or samples [5]\n"
          "  --samples-per-insert X   the shards' rate limiter ratio (their --samples-per-insert): the samplers\n"
          "                        then set the pace of the inserts, and writers wait in the limiter [0: off]\n"
          "  --max-wait-ms N       the writers' wait budget per Insert stream (rc_writer_max_wait): past it a\n"
          "                        shard acknowledges what it stored and the writer resends the rest; 0 = off\n"
          "                        [the writer's default: half of --deadline-ms]\n"
          "  --expect-partial      fail unless some stream was acknowledged in part (the run exercised the\n"
          "                        partial acknowledgements; with --samples-per-insert) [off]\n"
          "  --help                this text\n",
          SOAK_MAX_SHARDS, SOAK_MAX_WRITERS, SOAK_MAX_SAMPLERS, RC_MAX_ACTORS, SOAK_MAX_FRESH_ROUNDS);
}

enum {
  F_SECONDS = 1, F_OBS, F_ACT, F_ONCAP, F_DEMOCAP, F_DEMOROWS, F_DUR, F_CKPER, F_CKDIR, F_WRITERS, F_SAMPLERS,
  F_BATCH, F_REOPEN, F_ACTORS, F_FRAC, F_IRATE, F_SRATE, F_CHURN, F_BAD, F_SRVTHREADS, F_DEADLINE, F_ALLOW,
  F_SLOPE, F_SLOPEKIND, F_SPREAD, F_SPREADMB, F_WARMUP, F_PROGRESS, F_CSV, F_JSON, F_BIN, F_RESTART, F_RESTARTSIG,
  F_GRACE, F_TOKEN, F_TLS, F_RECONNECT, F_SHARDS, F_RESTARTMODE, F_CRASHTEAR, F_TEARSEED, F_INFO, F_FRESH,
  F_FRESHWIN, F_DECAY, F_SPI, F_MAXWAIT, F_EXPECTPARTIAL, F_HELP
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
    {"shards", required_argument, NULL, F_SHARDS},       {"restart-mode", required_argument, NULL, F_RESTARTMODE},
    {"crash-tear", no_argument, NULL, F_CRASHTEAR},      {"tear-seed", required_argument, NULL, F_TEARSEED},
    {"info-every", required_argument, NULL, F_INFO},     {"against-fresh", required_argument, NULL, F_FRESH},
    {"fresh-window", required_argument, NULL, F_FRESHWIN}, {"max-decay", required_argument, NULL, F_DECAY},
    {"samples-per-insert", required_argument, NULL, F_SPI}, {"max-wait-ms", required_argument, NULL, F_MAXWAIT},
    {"expect-partial", no_argument, NULL, F_EXPECTPARTIAL},
    {"help", no_argument, NULL, F_HELP},
    {NULL, 0, NULL, 0},
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
  c->info_every = 0.2;
  c->progress = 5;
  c->allowance_mb = 64;
  c->max_slope = 1;
  c->max_spread = 5;
  c->max_spread_mb = 2;
  c->warmup = 0.2;
  c->down_grace = 1;
  c->restart_sig = SOAK_SIG_ALTERNATE;
  c->shards = 1;
  c->tear_seed = 1;
  c->fresh_window = 10;
  c->max_decay = 5;
  c->max_wait_ms = -1;
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
    case F_INFO: return cli_parse_double(&c->info_every, p, "info-every", v, 0.01, 10);
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
    case F_RESTARTMODE:
      if (strcmp(v, "one") != 0 && strcmp(v, "all") != 0) {
        fprintf(stderr, "%s: --restart-mode '%s' is unknown HINT: use one (a shard at a time) or all (every shard "
                "at once)\n", p, v);
        return -1;
      }
      c->restart_all = strcmp(v, "all") == 0;
      return 0;
    case F_CRASHTEAR: c->crash_tear = 1; return 0;
    case F_TEARSEED: rc = cli_parse_long(&l, p, "tear-seed", v, 0, LONG_MAX); c->tear_seed = (uint64_t)l; return rc;
    case F_FRESH:
      rc = cli_parse_long(&l, p, "against-fresh", v, 0, SOAK_MAX_FRESH_ROUNDS);
      c->fresh_rounds = (int)l;
      return rc;
    case F_FRESHWIN: return cli_parse_double(&c->fresh_window, p, "fresh-window", v, 2, 600);
    case F_DECAY: return cli_parse_double(&c->max_decay, p, "max-decay", v, 0, 100);
    case F_SPI: return cli_parse_double(&c->spi, p, "samples-per-insert", v, 0, 1e6);
    case F_MAXWAIT: rc = cli_parse_long(&l, p, "max-wait-ms", v, 0, 3600000); c->max_wait_ms = (int)l; return rc;
    case F_EXPECTPARTIAL: c->expect_partial = 1; return 0;
    default: return -1;
  }
}

/* Returns CLI_RUN, CLI_HELP or CLI_BAD (message printed). */
static int soak_parse(soak_cfg *c, int argc, char **argv) {
  int id, bad = 0;
  optind = 1;
  opterr = 0;
  while ((id = getopt_long(argc, argv, ":h", soak_opts, NULL)) != -1) {
    if (id == F_HELP || id == 'h') return CLI_HELP;
    if (id == '?' || id == ':') {
      char why[256];
      fprintf(stderr, "ibrl-bench soak: %s (HINT: ibrl-bench soak --help lists the flags)\n",
              cli_bad_option_msg(why, sizeof why, id, argv[optind - 1], soak_opts));
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
  if (c->crash_tear) {
    const char *why = c->restart_every <= 0 ? "needs --restart-every S: there are no kills to tear after"
                      : strcmp(c->durability, "wal") != 0 ? "needs --durability wal: there is no log to tear"
                      : c->restart_sig == SIGTERM ? "needs SIGKILL restarts (--restart-signal kill or alternate): a "
                                                    "SIGTERM drains and checkpoints, it is no crash"
                      : NULL;
    if (why != NULL) {
      fprintf(stderr, "ibrl-bench soak: --crash-tear %s HINT: e.g. --restart-every 30 --durability wal "
              "--restart-signal kill --crash-tear\n", why);
      return CLI_BAD;
    }
  }
  if (c->fresh_rounds > 0 && c->restart_every > 0) {
    fprintf(stderr, "ibrl-bench soak: --against-fresh with --restart-every: a restarted shard is no older than its "
            "last restart, so there is no aged shard to compare HINT: run the comparison without restarts\n");
    return CLI_BAD;
  }
  if (c->expect_partial && (c->spi <= 0 || c->max_wait_ms == 0)) {
    fprintf(stderr, "ibrl-bench soak: --expect-partial needs --samples-per-insert X and a wait budget (--max-wait-ms "
            "not 0) HINT: without a rate limiter holding streams nothing is acknowledged in part\n");
    return CLI_BAD;
  }
  if (c->restart_all && c->restart_every <= 0) {
    fprintf(stderr, "ibrl-bench soak: --restart-mode all needs --restart-every S HINT: it says how restarts stop the "
            "shards; without --restart-every there are none\n");
    return CLI_BAD;
  }
  if (c->restart_every > 0) {
    /* The loss check reads every actor's highest stored seq, and Info lists at most RC_MAX_ACTORS
     * actors. A ring that wraps is fine: the check then rests on the counts (soak/soak_check.c). */
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

/* ---- the main flow ---- */

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
  if (soak_child_bin_find(&cfg, binbuf, sizeof binbuf) != IB_OK) {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    return 2;
  }
  soak_run *run = ib_xcalloc(1, sizeof *run); /* 4 x PATH_MAX of directories: not on the stack */
  run->cap = (int)cfg.seconds + 64;
  run->tables_mb = (soak_check_table_bytes(cfg.online_cap, cfg.obs_dim, cfg.act_dim) +
                    soak_check_table_bytes(cfg.demo_cap, cfg.obs_dim, cfg.act_dim)) / 1048576.0;
  if (cfg.csv != NULL && (run->csv = soak_out_csv_open(cfg.csv, &cfg)) == NULL) {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    free(run);
    return 2;
  }
  int owned = 0;
  if (soak_child_dirs_make(&cfg, run, &owned) != IB_OK) {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
    if (run->csv != NULL) fclose(run->csv);
    free(run);
    return 2;
  }
  /* Made before any thread or gRPC starts (system() forks). */
  char tls_dir[PATH_MAX] = "", tls_cert[PATH_MAX], tls_key[PATH_MAX];
  if (cfg.tls) soak_child_tls_make(&cfg, tls_dir, tls_cert, tls_key);
  soak_out_banner(&cfg, run);
  /* The first children are forked before gRPC starts in this process (restarts fork later, from
   * this thread: why that is safe is in soak/soak_child.c). */
  char target[SOAK_MAX_SHARDS * 64 + 8] = "";
  for (int s = 0; s < cfg.shards; s++) {
    if (soak_child_start(&run->shard[s].ch, &cfg, run->shard[s].dir, 0, s) != IB_OK) {
      fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
      soak_child_stop_all(&cfg, run);
      for (int k = 0; owned && k < cfg.shards; k++) soak_child_dir_remove(run->shard[k].dir);
      if (tls_dir[0] != '\0') soak_child_dir_remove(tls_dir);
      if (run->csv != NULL) fclose(run->csv);
      free(run);
      return 2; /* setup, as bench_main's exit codes say */
    }
    /* Restarts reuse the port: the list stays valid. */
    size_t len = strlen(target);
    snprintf(target + len, sizeof target - len, "%s%s", s ? "," : "", run->shard[s].ch.target);
  }
  soak_shared sh;
  soak_traffic_shared_init(&sh, &cfg, target);
  rc_opts o;
  soak_traffic_opts(&o, &sh, 1);
  for (int s = 0; s < cfg.shards; s++) run->shard[s].pts = ib_xcalloc((size_t)run->cap, sizeof(soak_point));
  run->restart_after = ib_xcalloc((size_t)run->cap, 1);
  run->cap_rs = cfg.restart_every > 0 ? ((int)(cfg.seconds / cfg.restart_every) + 2) * (cfg.restart_all ? cfg.shards : 1)
                                      : 1;
  rng_seed(&run->tear_rng, cfg.tear_seed, "soak", 0, "tear");
  run->rs = ib_xcalloc((size_t)run->cap_rs, sizeof *run->rs);
  run->snap = ib_xcalloc((size_t)cfg.actors, sizeof *run->snap);
  run->snap_maybe = ib_xcalloc((size_t)cfg.actors, sizeof *run->snap_maybe);
  int rc = rc_client_open(&sh.c, &o);
  if (rc == IB_OK) {
    IB_CHECK(rc_client_shard_count(sh.c) == cfg.shards);
    soak_traffic tr;
    rc = soak_traffic_start(&tr, &sh);
    if (rc == IB_OK) {
      soak_watch_run(&sh, run);
      soak_traffic_stop(&tr);
      if (cfg.restart_every > 0 && !run->child_died) soak_watch_final_check(&sh, run);
      if (cfg.fresh_rounds > 0 && !run->child_died) soak_fresh_run(&cfg, run);
    }
  } else {
    fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
  }
  rc_client_close(sh.c);
  soak_child_stop_all(&cfg, run); /* a shard that died keeps the exit code it died with */
  for (int s = 0; owned && s < cfg.shards; s++) soak_child_dir_remove(run->shard[s].dir);
  if (tls_dir[0] != '\0') soak_child_dir_remove(tls_dir);
  int status = 1;
  int csv_bad = run->csv != NULL && soak_out_csv_close(run->csv, cfg.csv) != IB_OK; /* the timeline is short */
  if (csv_bad) fprintf(stderr, "ibrl-bench soak: %s\n", ib_errmsg());
  if (rc == IB_OK) {
    soak_verdict v;
    soak_check_judge(&cfg, &sh, run, &v);
    soak_out_report(&cfg, run, &v);
    status = v.bounded && v.flat && v.clean && v.durable && v.partial_ok && !csv_bad &&
                     (cfg.fresh_rounds == 0 || run->fresh.ok)
                 ? 0
                 : 1;
    printf("soak: %s\n", status == 0 ? "PASS" : "FAIL");
  }
  for (int s = 0; s < cfg.shards; s++) free(run->shard[s].pts);
  free(run->restart_after);
  free(run->rs);
  free(run->snap);
  free(run->snap_maybe);
  free(run);
  soak_traffic_shared_free(&sh);
  return status;
}
