/* soak.h: the shared state of `ibrl-bench soak` (tests/bench/bench_soak.c): its configuration, the
 * timeline points, the counters its client threads share, and the run record the watching thread
 * keeps. The modules of tests/bench/soak/ all work on these structs:
 *   soak_child    the ibrl-replay children: start, stop, /proc sampling, directories, TLS files;
 *   soak_traffic  the client threads (writers, samplers, misc) and the failure accounting;
 *   soak_watch    the watching loop: one timeline point a second, restarts, the end-of-run check;
 *   soak_check    the loss checks and the memory verdict (pure functions of the records);
 *   soak_tear     --crash-tear: a killed shard's newest log cut (and garbled) as a machine crash could;
 *   soak_out      progress lines, the final report, the JSON line and the CSV;
 *   soak_fresh    --against-fresh: after the traffic, shard 0 against a fresh shard, in turns.
 * Shapes: a soak_run holds cfg->shards soak_shard_run, each with a preallocated timeline of
 * run->cap points (one a second; run->n filled, the same seconds for every shard); acked and snap
 * are [cfg->actors]. Ownership: bench_soak allocates and frees everything here; fields say owned or
 * borrowed. Thread-safety: soak_shared's counters are atomics written by every client thread; the
 * rest of soak_shared and all of soak_cfg are read-only while the threads run; soak_run belongs to
 * the main thread alone. */
#ifndef IB_SOAK_H
#define IB_SOAK_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "replay_client.h"
#include "rng.h"

#define SOAK_MAX_WRITERS 16
#define SOAK_MAX_SHARDS 4
#define SOAK_ANY_SHARD (-1)  /* a call that spans the shards (a sample) */
#define SOAK_MAX_SAMPLERS 2
#define SOAK_MIN_FIT 8       /* points after warm-up an incarnation needs to be judged flat */
#define SOAK_SIG_ALTERNATE 0 /* --restart-signal alternate: SIGKILL, SIGTERM, SIGKILL, ... */
#define SOAK_MAX_FRESH_ROUNDS 20 /* --against-fresh */

typedef struct soak_cfg {
  const char *replay_bin, *ckpt_dir, *durability, *csv;
  int obs_dim, act_dim, writers, samplers, batch, reopen, actors, server_threads, json, deadline_ms;
  int slope_median; /* flat judges the median per-second growth instead of the least-squares slope */
  int reconnect_ms; /* every client's rc_opts.reconnect_ms (0 = the client's default) */
  int shards;       /* shard children, 1..SOAK_MAX_SHARDS */
  long online_cap, demo_cap, demo_rows;
  double seconds, ckpt_period, demo_fraction, insert_rate, sample_rate, churn_every, bad_every, progress;
  double info_every; /* the misc thread's round: one Info each; churn and bad requests come in rounds */
  double allowance_mb, max_slope, max_spread, max_spread_mb, warmup;
  double restart_every, down_grace; /* 0 = no restarts; seconds after an outage still counted as down */
  int restart_sig;                  /* SOAK_SIG_ALTERNATE, SIGKILL or SIGTERM */
  int restart_all;                  /* --restart-mode all: every shard stopped at once, then all started */
  int crash_tear;                   /* --crash-tear: each SIGKILLed shard's newest log torn before its start */
  uint64_t tear_seed;               /* --tear-seed: the seed of the tears' rng stream */
  const char *token;                /* shared token of shard and clients, or NULL */
  int tls;                          /* --tls asked */
  const char *tls_cert, *tls_key;   /* set at run time when the certificate was made */
  int fresh_rounds;                 /* --against-fresh R: rounds after the traffic (0 = off) */
  double fresh_window, max_decay;   /* --fresh-window S, --max-decay P (%) */
  uint32_t actor_base;              /* the writers' actor ids start here (0; soak_fresh moves it per window) */
  double spi;                       /* --samples-per-insert: the shards' rate limiter ratio (0 = off) */
  int max_wait_ms;                  /* --max-wait-ms: the writers' rc_writer_max_wait (-1 = its default) */
  int expect_partial;               /* --expect-partial: fail unless some stream was acknowledged in part */
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
  atomic_int stop;          /* writers and the misc thread stop */
  atomic_int samplers_stop; /* samplers stop: after the writers, whose last flush a rate limiter
                             * (--samples-per-insert) lets through only while samples go on */
  atomic_uint_fast64_t rows_written, rows_sampled, errors, bad_sent, bad_refused, churns, infos, reopens;
  atomic_uint_fast64_t errors_down, bad_down; /* calls to a shard that failed while it was down (restarts) */
  atomic_uint_fast64_t samples_down;          /* samples (all shards) that failed while one was down */
  atomic_uint_fast64_t samples_skipped;       /* samples that came back with a down shard skipped */
  atomic_uint_fast64_t partial_acks, dup_acks; /* the writers' rc_writer_stats.partial and .duplicates */
  /* Each shard's last outage: from down_from_ns (the kill) to down_to_ns (INT64_MAX while it lasts). */
  atomic_int_fast64_t down_from_ns[SOAK_MAX_SHARDS], down_to_ns[SOAK_MAX_SHARDS];
  atomic_uint_fast64_t *acked; /* owned [cfg->actors]: actor a has seqs [0, acked[a]) acknowledged */
  /* owned [cfg->actors]: seqs [0, maybe[a]) may be acknowledged by the shard: acked[a] plus the rows of
   * a half-closed stream whose reply the writer has not read yet (rc_writer_stats.awaiting). The
   * shard sends that reply once the rows are durable, so a crash tear must not cut them. */
  atomic_uint_fast64_t *maybe;
  /* Writer thread k's current rc_writer call: when it started (ns), 0 when it is outside any call with
   * its acknowledgements published to acked[]. A restart's snapshot waits for the calls that began
   * before the kill (soak_watch.c says why). */
  atomic_int_fast64_t call_ns[SOAK_MAX_WRITERS];
} soak_shared;

/* One running incarnation of a shard: the ibrl-replay child process (soak_child.c). */
typedef struct soak_child {
  pid_t pid;
  int out_fd; /* read end of its stdout (kept open so a late write cannot SIGPIPE it) */
  int port;
  char target[64];
  /* Its output (stdout and stderr share the pipe, relayed to the soak's stderr line by line): */
  char line[1024];       /* the line being read */
  size_t line_len;
  int64_t torn_dropped;  /* from its "restored from ... N torn bytes dropped" line; -1 until seen */
  int torn_warnings;     /* its "dropping the last N bytes (a write torn by a crash)" lines */
} soak_child;

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
  int round;       /* the restart round (with --restart-mode all every shard of a round stopped at once) */
  /* --crash-tear (after a SIGKILL): */
  int torn;              /* 1 if the log was torn, -1 if the tear failed (message printed) */
  uint64_t tear_len, tear_need, tear_cut, tear_garbage, tear_rows_cut; /* soak_tear's figures */
  uint64_t tear_missing;  /* acknowledged rows that were not in the log before the tear */
  uint64_t drop_want;     /* bytes the restore should drop: the torn record and the garbage */
  int64_t drop_seen;      /* bytes the restarted shard said it dropped (-1: no "restored" line seen) */
  uint64_t lost_reported; /* rows its restore said were acknowledged as durable and are gone (Info's
                             restore_missing_acked): at most the rows the tear cut, 0 without a tear */
} soak_restart;

/* What one loss check of one shard found (checks (1)-(3) in soak_check.c's design comment). */
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

/* --against-fresh: shard 0, aged by the run, against a fresh shard of the same configuration started
 * after the traffic, in alternating windows of uncapped traffic (soak_fresh.c). [0] is the aged
 * shard, [1] the fresh one. */
typedef struct soak_fresh {
  int asked;       /* --against-fresh was given */
  int ran;         /* the comparison ran to its end (else `why` says what stopped it) */
  char why[256];
  int rounds;      /* rounds measured */
  double warm_s;   /* the fresh shard's warm-up: until its online ring had wrapped twice */
  double ins[2][SOAK_MAX_FRESH_ROUNDS], smp[2][SOAK_MAX_FRESH_ROUNDS]; /* rows/s of each window */
  double ins_med[2], smp_med[2];
  double ins_ratio, smp_ratio; /* aged / fresh, of the medians */
  uint64_t errors;             /* failed calls in its windows */
  int ok;                      /* ran, no failed call, both ratios >= 1 - max_decay / 100 */
} soak_fresh;

/* Everything the main (watching) thread keeps about the run; only that thread writes it. */
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
  uint64_t *snap_maybe; /* owned [actors]: sh->maybe at the same moment (what a tear must keep) */
  int rounds;       /* restart rounds (one shard each, or with --restart-mode all every shard) */
  int settle_late;  /* writer calls still running from before a kill when its snapshot was taken */
  /* --crash-tear, over all restarts: */
  int tears, tear_failed, tear_garbled, drop_bad; /* tears made, failed, with garbage; drops not as predicted */
  uint64_t tear_bytes, tear_rows_cut, tear_missing;  /* bytes cut or garbled, rows cut, acked rows not logged */
  uint64_t drop_seen;                                /* torn bytes the shards said they dropped */
  uint64_t lost_reported;  /* rows the restarted shards' restores reported gone (restore_missing_acked) */
  int lost_report_bad;     /* restarts whose report exceeded the rows the tear cut (any report without a tear) */
  rng tear_rng;                                      /* the tears' cut points and garbage (--tear-seed) */
  int restart_failed; /* a restart did not come back, or did not answer Info */
  int term_bad;       /* SIGTERM restarts whose shard did not exit 0 */
  uint64_t lost_restarts;  /* acknowledged rows missing right after the restarts */
  int counts_bad_restarts; /* restarts after which a count check failed */
  int final_checked;       /* the end-of-run check ran on every shard */
  uint64_t final_acked, final_stored, final_lost; /* its figures over all shards: acknowledged, online size, missing */
  int final_counts_bad;                           /* a count check failed at the end */
  FILE *csv; /* --csv, open for the run (a row per point as it is taken), or NULL */
  soak_fresh fresh; /* --against-fresh */
} soak_run;

#endif
