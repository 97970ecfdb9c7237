/* store_bench.h: measurement hooks for the replay store, for `ibrl-bench` (the bench front end
 * lives in tests/bench and belongs to the replay-bench owner; these functions do the timing).
 *
 * store_bench_gather fills an online table (and a small demo table) and times store_sample of
 * one learner batch, the hot path of the replay shard (anchors.md: ~35-100 us for 256 x 147
 * floats from a 1 GiB replay on the development machine). store_bench_persist times logged
 * inserts (1 and N threads, showing the group commit), a checkpoint (and how long a thread that
 * samples meanwhile waits at worst) and a restore. store_bench_acks times acknowledgements with
 * and without checkpoints, and store_bench_thp what a checkpoint's fork does to huge pages.
 *
 * Each allocates what it needs, prints progress with log_info, and returns IB_OK or the IB_E* of
 * the store call that failed (message in ib_errmsg()). Not thread-safe; run one at a time. */
#ifndef IB_STORE_BENCH_H
#define IB_STORE_BENCH_H

#include <stdint.h>

typedef struct store_bench_gather_cfg {
  int obs_dim, act_dim;   /* e.g. 69 and 7: 147 floats per transition with reward and discount */
  uint64_t capacity;      /* online items, e.g. 1826091 (~1.2 GB) */
  uint64_t demo_capacity; /* demo items, e.g. 10000 */
  uint32_t batch;         /* rows per sample, e.g. 256 */
  double demo_fraction;   /* as store_sample */
  int iters;              /* timed samples per repetition */
  int reps;               /* repetitions (the median of each is reported) */
  uint64_t seed;
} store_bench_gather_cfg;

typedef struct store_bench_gather_result {
  double fill_inserts_per_s; /* single-threaded, no log, batches of 256 */
  uint64_t table_bytes;
  double us_median[8]; /* per repetition (reps <= 8): median us per batch */
  double us_p10[8], us_p90[8];
} store_bench_gather_result;

/* Errors: IB_EINVAL for a bad config (reps outside 1..8, iters < 1, ...), else a store error. */
int store_bench_gather(const store_bench_gather_cfg *cfg, store_bench_gather_result *out);

/* store_bench_thp: what a checkpoint's fork does to the huge pages of the record arenas, and what
 * store_huge_collapse gives back. It fills the online table, then measures three states in turn:
 * fresh; after a fork whose child lives while the parent rewrites every online row (what inserts
 * do while a checkpoint writer runs; the child then exits); and after store_huge_collapse. In each
 * state: the arenas' bytes in huge pages (AnonHugePages of /proc/self/smaps_rollup, whole process),
 * the median store_sample time as store_bench_gather (after iters / 4 untimed samples), and the
 * median time of a fork whose child
 * exits at once (the page-table copy a checkpoint's cut pays with the store held). */
typedef struct store_bench_thp_state {
  double huge_mb;       /* AnonHugePages of the process, MB; -1 if unreadable */
  double us_median;     /* store_sample of one batch */
  double fork_ms_median; /* fork() in the parent, over `forks` forks */
} store_bench_thp_state;

typedef struct store_bench_thp_cfg {
  int obs_dim, act_dim;
  uint64_t capacity;      /* online items, e.g. 300000 (~190 MB) */
  uint32_t batch;         /* rows per sample */
  double demo_fraction;   /* as store_sample */
  int iters;              /* timed samples per state */
  int forks;              /* timed forks per state */
  uint64_t seed;
} store_bench_thp_cfg;

typedef struct store_bench_thp_result {
  uint64_t table_bytes;
  store_bench_thp_state fresh, split, collapsed;
  double collapse_ms;     /* the store_huge_collapse call */
  uint64_t collapse_bytes; /* what it returned */
} store_bench_thp_result;

/* Errors: IB_EINVAL for a bad config, IB_EIO if a fork fails, else a store error. */
int store_bench_thp(const store_bench_thp_cfg *cfg, store_bench_thp_result *out);

typedef struct store_bench_persist_cfg {
  const char *dir; /* an empty scratch directory (created; files are left for inspection) */
  int obs_dim, act_dim;
  uint64_t capacity; /* online items the checkpoint holds, e.g. 300000 */
  int threads;       /* inserter threads for the group-commit figure (1..16) */
  int batches;       /* logged batches per thread */
  uint32_t batch;    /* items per logged batch */
} store_bench_persist_cfg;

typedef struct store_bench_persist_result {
  double wal1_batches_per_s; /* one thread, each batch waits for its own fdatasync (median of 3) */
  double waln_batches_per_s; /* `threads` threads sharing fdatasyncs (group commit), median of 3 */
  double bulk_items_per_s;   /* logged batches of 4096 */
  double ckpt_mb_per_s, ckpt_s;
  double ckpt_blocked_s;            /* how long the checkpoint held the store (the cut) */
  int ckpt_background;              /* 1 if a forked child wrote it */
  double sample_max_us_during_ckpt; /* worst store_sample latency of a thread sampling meanwhile */
  uint64_t samples_during_ckpt;     /* batches that thread completed during the checkpoint */
  double restore_mb_per_s, restore_s;
  uint64_t ckpt_bytes;
} store_bench_persist_result;

int store_bench_persist(const store_bench_persist_cfg *cfg, store_bench_persist_result *out);

/* store_bench_acks: how checkpoints change the acknowledgement latency of logged inserts. Threads
 * insert batches with the log (each store_insert returns once its record is durable) for `seconds`,
 * once with a checkpoint started every `period_ms` and once without, alternating `rounds` times.
 * Each checkpoint's cut switches to a new log, so the first group commit after it flushes the old
 * log's tail and then the new log (two fdatasyncs in a row), and the fork makes the inserts' page
 * writes copy on write for a while; then the forked writer's file competes with the log's flushes
 * for the disk. Reported: every ack's median / p99 / max in each mode; per checkpoint, the worst
 * ack that started within `window_ms` of its start and the worst in the rest of its period; and
 * the same for windows at the same times of the run without checkpoints. */
typedef struct store_bench_acks_cfg {
  const char *dir; /* an empty scratch directory */
  int obs_dim, act_dim;
  uint64_t capacity; /* online capacity (the checkpoint holds a full table after the first seconds) */
  int threads;       /* inserting threads (1..16) */
  uint32_t batch;    /* items per logged batch */
  double seconds;    /* per mode and round */
  int period_ms;     /* between checkpoint starts */
  int window_ms;     /* after each checkpoint start */
  int rounds;        /* each runs both modes, the order alternating (1..8) */
} store_bench_acks_cfg;

typedef struct store_bench_acks_stats {
  uint64_t acks;                   /* acknowledged batches */
  double p50_ms, p99_ms, max_ms;   /* over every ack */
  int windows;                     /* checkpoint starts (or the same times without checkpoints) */
  double win_med_ms, win_max_ms;   /* over windows: median and max of the worst ack in each */
  double rest_med_ms, rest_max_ms; /* the same for the rest of each period (window_ms .. period_ms) */
} store_bench_acks_stats;

typedef struct store_bench_acks_result {
  store_bench_acks_stats with_ckpt, without;
  double cut_med_ms, cut_max_ms; /* the store held by each cut (persist_ckpt_info.blocked_seconds) */
  double ckpt_med_s;             /* a whole checkpoint */
} store_bench_acks_result;

int store_bench_acks(const store_bench_acks_cfg *cfg, store_bench_acks_result *out);

#endif /* IB_STORE_BENCH_H */
