/* store_bench.c: the timing behind store_bench.h.
 *
 * Design: every figure is a rate or a per-call latency measured with ib_now_ns around real store
 * calls on realistic shapes; item contents are constant (the store does not look at values
 * beyond the finiteness check). Latency figures keep every sample and report the median and the
 * 10th/90th percentiles, because one-off stalls (page faults, another process) skew a mean. */
#include "store_bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ib.h"
#include "log.h"
#include "persist.h"
#include "rng.h"
#include "store.h"

#define FILL_BATCH 4096

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A batch of n constant items for `actor` with seqs [seq0, seq0 + n). */
static void make_items(store_item *it, uint32_t n, const float *obs, const float *act, int O, int A,
                       uint32_t actor, uint64_t seq0, uint32_t proposer) {
  for (uint32_t i = 0; i < n; i++) {
    memset(&it[i], 0, sizeof it[i]);
    it[i].obs = obs;
    it[i].next_obs = obs;
    it[i].action = act;
    it[i].obs_n = it[i].next_obs_n = (uint32_t)O;
    it[i].act_n = (uint32_t)A;
    it[i].discount = 0.99f;
    it[i].proposer = proposer;
    it[i].actor_id = actor;
    it[i].seq = seq0 + i;
    it[i].weight_version = 1;
  }
}

/* Constant item contents and a batch of items pointing at them (the store copies the values). */
typedef struct item_src {
  float *obs, *act;
  store_item *it; /* [n] */
} item_src;

static void item_src_init(item_src *x, int O, int A, uint32_t n) {
  x->obs = ib_xcalloc((size_t)O, sizeof(float));
  x->act = ib_xcalloc((size_t)A, sizeof(float));
  x->it = ib_xcalloc(n, sizeof *x->it);
}

static void item_src_free(item_src *x) {
  free(x->it);
  free(x->obs);
  free(x->act);
}

static int fill(store *s, const char *table, uint64_t count, int O, int A, uint32_t actor,
                uint32_t proposer, const float *obs, const float *act, store_item *it) {
  for (uint64_t q = 0; q < count; q += FILL_BATCH) {
    uint32_t n = (uint32_t)IB_MIN((uint64_t)FILL_BATCH, count - q);
    make_items(it, n, obs, act, O, A, actor, q, proposer);
    int rc = store_insert(s, table, it, n, NULL);
    if (rc) return rc;
    if ((q / FILL_BATCH) % 256 == 255)
      log_info("bench: filled %llu of %llu %s items", (unsigned long long)(q + n),
               (unsigned long long)count, table);
  }
  return IB_OK;
}

/* A store of the default two tables for obs_dim x act_dim items, and constant items to fill it. */
static int bench_store_new(int O, int A, uint64_t demo_cap, uint64_t cap, store **s, item_src *src) {
  store_spec sp[2];
  store_specs_default(sp, O, A, demo_cap, cap);
  store_config sc = {.max_insert_batch = FILL_BATCH};
  *s = NULL;
  int rc = store_create(s, sp, 2, &sc);
  if (rc) return rc;
  item_src_init(src, O, A, FILL_BATCH);
  return IB_OK;
}

int store_bench_gather(const store_bench_gather_cfg *cfg, store_bench_gather_result *out) {
  IB_CHECK(cfg != NULL && out != NULL);
  memset(out, 0, sizeof *out);
  if (cfg->reps < 1 || cfg->reps > 8 || cfg->iters < 1 || cfg->batch < 1)
    return ib_fail(IB_EINVAL,
                   "bench: reps %d (1..8), iters %d (>= 1) or batch %u (>= 1) out of range",
                   cfg->reps, cfg->iters, cfg->batch);
  store *s;
  item_src src;
  int rc = bench_store_new(cfg->obs_dim, cfg->act_dim, cfg->demo_capacity, cfg->capacity, &s, &src);
  if (rc) return rc;
  float *obs = src.obs, *act = src.act;
  store_item *it = src.it;
  double *ts = ib_xmalloc((size_t)cfg->iters * sizeof *ts);
  store_batch b = {0};
  uint64_t t0 = ib_now_ns();
  rc = fill(s, "online", cfg->capacity, cfg->obs_dim, cfg->act_dim, 1, STORE_PROPOSER_RL, obs, act,
            it);
  double dt = (double)(ib_now_ns() - t0) * 1e-9;
  if (!rc)
    rc = fill(s, "demo", cfg->demo_capacity, cfg->obs_dim, cfg->act_dim, STORE_ACTOR_DEMO,
              STORE_PROPOSER_DEMO, obs, act, it);
  if (!rc) {
    out->fill_inserts_per_s = (double)cfg->capacity / dt;
    store_table_info ti;
    store_table_info_get(s, store_table_find(s, "online"), &ti);
    out->table_bytes = ti.bytes;
    store_batch_init(&b, cfg->batch, cfg->obs_dim, cfg->act_dim);
    rng r;
    rng_seed(&r, cfg->seed, "bench", 0, "sample");
    for (int rep = 0; rep < cfg->reps && !rc; rep++) {
      for (int i = 0; i < cfg->iters && !rc; i++) {
        uint64_t a = ib_now_ns();
        rc = store_sample(s, &r, cfg->batch, cfg->demo_fraction, &b);
        ts[i] = (double)(ib_now_ns() - a) * 1e-3;
      }
      qsort(ts, (size_t)cfg->iters, sizeof *ts, cmp_double);
      out->us_median[rep] = ts[cfg->iters / 2];
      out->us_p10[rep] = ts[cfg->iters / 10];
      out->us_p90[rep] = ts[(cfg->iters * 9) / 10];
      log_info("bench: gather rep %d: median %.1f us per %u-row batch", rep, out->us_median[rep],
               cfg->batch);
    }
  }
  store_batch_free(&b);
  free(ts);
  item_src_free(&src);
  store_destroy(s);
  return rc;
}

/* ---- huge pages and the checkpoint's fork ---- */

/* AnonHugePages of this process in MB, or -1 if /proc/self/smaps_rollup cannot be read. */
static double anon_huge_mb(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  if (f == NULL) return -1;
  char line[256];
  double mb = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long long kb;
    if (sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) mb = (double)kb / 1024.0;
  }
  fclose(f);
  return mb;
}

/* Median time of `n` forks whose child exits at once (the parent waits for each). */
static int fork_ms_median(int n, double *ts, double *out) {
  for (int i = 0; i < n; i++) {
    uint64_t a = ib_now_ns();
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    ts[i] = (double)(ib_now_ns() - a) * 1e-6;
    if (pid < 0) return ib_fail(IB_EIO, "bench: fork failed: %s", strerror(errno));
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  qsort(ts, (size_t)n, sizeof *ts, cmp_double);
  *out = ts[n / 2];
  return IB_OK;
}

static int thp_state(store *s, const store_bench_thp_cfg *cfg, store_batch *b, rng *r, double *ts,
                     store_bench_thp_state *st, const char *name) {
  st->huge_mb = anon_huge_mb();
  for (int i = 0; i < cfg->iters / 4; i++) { /* untimed: the first samples after a change pay for it */
    int rc = store_sample(s, r, cfg->batch, cfg->demo_fraction, b);
    if (rc) return rc;
  }
  for (int i = 0; i < cfg->iters; i++) {
    uint64_t a = ib_now_ns();
    int rc = store_sample(s, r, cfg->batch, cfg->demo_fraction, b);
    if (rc) return rc;
    ts[i] = (double)(ib_now_ns() - a) * 1e-3;
  }
  qsort(ts, (size_t)cfg->iters, sizeof *ts, cmp_double);
  st->us_median = ts[cfg->iters / 2];
  int rc = fork_ms_median(cfg->forks, ts, &st->fork_ms_median);
  if (rc) return rc;
  log_info("bench: thp %s: %.0f MB in huge pages, sample %.1f us, fork %.2f ms", name, st->huge_mb, st->us_median,
           st->fork_ms_median);
  return IB_OK;
}

int store_bench_thp(const store_bench_thp_cfg *cfg, store_bench_thp_result *out) {
  IB_CHECK(cfg != NULL && out != NULL);
  memset(out, 0, sizeof *out);
  if (cfg->iters < 1 || cfg->forks < 1 || cfg->batch < 1 || cfg->capacity < 1)
    return ib_fail(IB_EINVAL, "bench: iters %d, forks %d, batch %u and capacity %llu must be >= 1", cfg->iters,
                   cfg->forks, cfg->batch, (unsigned long long)cfg->capacity);
  store *s;
  item_src src;
  int rc = bench_store_new(cfg->obs_dim, cfg->act_dim, 10000, cfg->capacity, &s, &src);
  if (rc) return rc;
  double *ts = ib_xmalloc((size_t)IB_MAX(cfg->iters, cfg->forks) * sizeof *ts);
  store_batch b = {0};
  store_batch_init(&b, cfg->batch, cfg->obs_dim, cfg->act_dim);
  rng r;
  rng_seed(&r, cfg->seed, "bench", 0, "thp");
  rc = fill(s, "online", cfg->capacity, cfg->obs_dim, cfg->act_dim, 1, STORE_PROPOSER_RL, src.obs, src.act, src.it);
  if (!rc)
    rc = fill(s, "demo", 10000, cfg->obs_dim, cfg->act_dim, STORE_ACTOR_DEMO, STORE_PROPOSER_DEMO, src.obs, src.act,
              src.it);
  if (!rc) {
    store_table_info ti;
    store_table_info_get(s, store_table_find(s, "online"), &ti);
    out->table_bytes = ti.bytes;
    rc = thp_state(s, cfg, &b, &r, ts, &out->fresh, "fresh");
  }
  if (!rc) {
    /* A child that holds the fork's image until the parent has rewritten every online row (a
     * second actor's seqs, so none is a duplicate), as a checkpoint writer does while inserts go on. */
    int pfd[2];
    if (pipe(pfd) != 0) rc = ib_fail(IB_EIO, "bench: pipe failed: %s", strerror(errno));
    pid_t pid = rc ? -1 : fork();
    if (pid == 0) {
      char c;
      close(pfd[1]);
      while (read(pfd[0], &c, 1) < 0 && errno == EINTR) {
      }
      _exit(0);
    }
    if (!rc && pid < 0) {
      rc = ib_fail(IB_EIO, "bench: fork failed: %s", strerror(errno));
      close(pfd[0]);
      close(pfd[1]);
    }
    if (!rc) {
      close(pfd[0]);
      rc = fill(s, "online", cfg->capacity, cfg->obs_dim, cfg->act_dim, 2, STORE_PROPOSER_RL, src.obs, src.act,
                src.it);
      close(pfd[1]);
      int st;
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
  }
  if (!rc) rc = thp_state(s, cfg, &b, &r, ts, &out->split, "after a fork and a rewrite");
  if (!rc) {
    uint64_t a = ib_now_ns();
    out->collapse_bytes = store_huge_collapse(s);
    out->collapse_ms = (double)(ib_now_ns() - a) * 1e-6;
    rc = thp_state(s, cfg, &b, &r, ts, &out->collapsed, "after store_huge_collapse");
  }
  store_batch_free(&b);
  free(ts);
  item_src_free(&src);
  store_destroy(s);
  return rc;
}

typedef struct wal_job {
  store *s;
  const store_bench_persist_cfg *cfg;
  uint32_t actor;
  int rc;
} wal_job;

static void *wal_worker(void *arg) {
  wal_job *j = arg;
  const store_bench_persist_cfg *c = j->cfg;
  item_src src;
  item_src_init(&src, c->obs_dim, c->act_dim, c->batch);
  float *obs = src.obs, *act = src.act;
  store_item *it = src.it;
  for (int k = 0; k < c->batches && !j->rc; k++) {
    make_items(it, c->batch, obs, act, c->obs_dim, c->act_dim, j->actor, (uint64_t)k * c->batch,
               STORE_PROPOSER_RL);
    j->rc = store_insert(j->s, "online", it, c->batch, NULL);
  }
  item_src_free(&src);
  return NULL;
}

typedef struct sample_job {
  store *s;
  int obs_dim, act_dim;
  volatile int stop; /* written by the bench thread, read by the sampler; a late read is harmless */
  double max_us;
  uint64_t count;
  int rc;
} sample_job;

static void *sample_worker(void *arg) {
  sample_job *j = arg;
  store_batch b;
  store_batch_init(&b, 256, j->obs_dim, j->act_dim);
  rng r;
  rng_seed(&r, 1, "bench", 1, "ckpt-sampler");
  while (!__atomic_load_n(&j->stop, __ATOMIC_ACQUIRE) && !j->rc) {
    uint64_t a = ib_now_ns();
    j->rc = store_sample(j->s, &r, 256, 0.0, &b);
    double us = (double)(ib_now_ns() - a) * 1e-3;
    if (us > j->max_us) j->max_us = us;
    j->count++;
  }
  store_batch_free(&b);
  return NULL;
}

/* Runs `n` threads of logged inserts; returns batches per second. */
static int wal_round(store *s, const store_bench_persist_cfg *cfg, int n, uint32_t actor0,
                     double *bps) {
  pthread_t th[16];
  wal_job jobs[16];
  uint64_t t0 = ib_now_ns();
  for (int i = 0; i < n; i++) {
    jobs[i] = (wal_job){s, cfg, actor0 + (uint32_t)i, IB_OK};
    IB_CHECK(pthread_create(&th[i], NULL, wal_worker, &jobs[i]) == 0);
  }
  int rc = IB_OK;
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    if (jobs[i].rc && !rc) rc = jobs[i].rc;
  }
  *bps = (double)n * cfg->batches / ((double)(ib_now_ns() - t0) * 1e-9);
  return rc;
}

int store_bench_persist(const store_bench_persist_cfg *cfg, store_bench_persist_result *out) {
  IB_CHECK(cfg != NULL && out != NULL && cfg->dir != NULL);
  memset(out, 0, sizeof *out);
  if (cfg->threads < 1 || cfg->threads > 16 || cfg->batches < 1 || cfg->batch < 1 ||
      cfg->batch > FILL_BATCH)
    return ib_fail(IB_EINVAL,
                   "bench: threads %d (1..16), batches %d (>= 1) or batch %u (1..%d) out of "
                   "range",
                   cfg->threads, cfg->batches, cfg->batch, FILL_BATCH);
  store_spec sp[2];
  store_specs_default(sp, cfg->obs_dim, cfg->act_dim, 16, cfg->capacity);
  store_config sc = {.max_insert_batch = FILL_BATCH};
  store *s = NULL;
  persist *p = NULL;
  persist_restore_info ri;
  int rc = store_create(&s, sp, 2, &sc);
  if (!rc) rc = persist_open(&p, s, cfg->dir, PERSIST_WAL, &ri);
  if (!rc && (ri.ckpt_found || ri.wal_records > 0))
    rc = ib_fail(IB_ESTATE, "bench: '%s' already holds a store (HINT: give an empty directory)",
                 cfg->dir);
  /* fsync latency drifts with whatever else uses the disk, so the 1-thread and N-thread rounds are
   * interleaved three times and the medians compared. */
  double r1[3] = {0}, rn[3] = {0};
  for (int k = 0; k < 3 && !rc; k++) {
    rc = wal_round(s, cfg, 1, 1000 + 100 * (uint32_t)k, &r1[k]);
    if (!rc) rc = wal_round(s, cfg, cfg->threads, 2000 + 100 * (uint32_t)k, &rn[k]);
  }
  qsort(r1, 3, sizeof *r1, cmp_double);
  qsort(rn, 3, sizeof *rn, cmp_double);
  out->wal1_batches_per_s = r1[1];
  out->waln_batches_per_s = rn[1];
  if (!rc) {
    log_info("bench: logged batches of %u: %.0f/s with 1 thread, %.0f/s with %d", cfg->batch,
             out->wal1_batches_per_s, out->waln_batches_per_s, cfg->threads);
    item_src src;
    item_src_init(&src, cfg->obs_dim, cfg->act_dim, FILL_BATCH);
    float *obs = src.obs, *act = src.act;
    store_item *it = src.it;
    uint64_t t0 = ib_now_ns();
    rc = fill(s, "online", cfg->capacity, cfg->obs_dim, cfg->act_dim, 7, STORE_PROPOSER_RL, obs,
              act, it);
    out->bulk_items_per_s = (double)cfg->capacity / ((double)(ib_now_ns() - t0) * 1e-9);
    item_src_free(&src);
  }
  persist_ckpt_info ci;
  if (!rc) {
    sample_job sj = {s, cfg->obs_dim, cfg->act_dim, 0, 0, 0, IB_OK};
    pthread_t th;
    IB_CHECK(pthread_create(&th, NULL, sample_worker, &sj) == 0);
    rc = persist_checkpoint(p, &ci);
    __atomic_store_n(&sj.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    if (!rc) rc = sj.rc;
    out->sample_max_us_during_ckpt = sj.max_us;
    out->samples_during_ckpt = sj.count;
  }
  if (!rc) {
    out->ckpt_bytes = ci.bytes;
    out->ckpt_s = ci.seconds;
    out->ckpt_blocked_s = ci.blocked_seconds;
    out->ckpt_background = ci.background;
    out->ckpt_mb_per_s = (double)ci.bytes / 1e6 / ci.seconds;
    log_info(
        "bench: checkpoint of %llu bytes in %.3f s (store held %.4f s, %s); a sampler ran %llu "
        "batches meanwhile, worst %.0f us",
        (unsigned long long)ci.bytes, ci.seconds, ci.blocked_seconds,
        ci.background ? "background writer" : "written in place",
        (unsigned long long)out->samples_during_ckpt, out->sample_max_us_during_ckpt);
  }
  persist_close(p);
  p = NULL;
  store_destroy(s);
  s = NULL;
  if (!rc) {
    rc = store_create(&s, sp, 2, &sc);
    uint64_t t0 = ib_now_ns();
    if (!rc) rc = persist_open(&p, s, cfg->dir, PERSIST_WAL, &ri);
    out->restore_s = (double)(ib_now_ns() - t0) * 1e-9;
    out->restore_mb_per_s = (double)out->ckpt_bytes / 1e6 / out->restore_s;
  }
  persist_close(p);
  store_destroy(s);
  return rc;
}

/* ---- acknowledgement latency with and without checkpoints ---- */

#define ACK_KEEP 262144 /* acks kept per thread and phase; a logged insert waits for a disk flush,
                         * so a thread acknowledges hundreds to a few thousand batches a second */
#define ACK_WINDOWS 4096

typedef struct ack_job {
  store *s;
  const store_bench_acks_cfg *cfg;
  uint32_t actor;
  int *stop; /* set by the bench thread (atomic builtins) */
  uint64_t *t0; /* [ACK_KEEP] start of each kept ack, ns */
  float *ms;    /* [ACK_KEEP] its latency */
  uint64_t kept;
  int rc;
} ack_job;

static void *ack_worker(void *arg) {
  ack_job *j = arg;
  const store_bench_acks_cfg *c = j->cfg;
  item_src src;
  item_src_init(&src, c->obs_dim, c->act_dim, c->batch);
  float *obs = src.obs, *act = src.act;
  store_item *it = src.it;
  for (uint64_t k = 0; !__atomic_load_n(j->stop, __ATOMIC_ACQUIRE) && !j->rc; k++) {
    make_items(it, c->batch, obs, act, c->obs_dim, c->act_dim, j->actor, k * c->batch, STORE_PROPOSER_RL);
    uint64_t a = ib_now_ns();
    j->rc = store_insert(j->s, "online", it, c->batch, NULL);
    uint64_t b = ib_now_ns();
    if (j->kept < ACK_KEEP) {
      j->t0[j->kept] = a;
      j->ms[j->kept] = (float)((double)(b - a) * 1e-6);
      j->kept++;
    }
  }
  item_src_free(&src);
  return NULL;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

static void sleep_until_ns(uint64_t t) {
  for (uint64_t now = ib_now_ns(); now < t; now = ib_now_ns()) {
    uint64_t d = t - now;
    struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
    nanosleep(&ts, NULL);
  }
}

/* What the phases of one mode gathered, over all rounds. */
typedef struct ack_acc {
  float *all;    /* every ack's latency, ms */
  uint64_t n, cap;
  double win[ACK_WINDOWS];  /* worst ack starting in each window right after a (would-be) checkpoint start, ms */
  double rest[ACK_WINDOWS]; /* worst ack starting in the rest of that period, ms */
  int nwin;
} ack_acc;

/* One phase: cfg->threads inserters for cfg->seconds; with `ckpt`, a checkpoint starts every
 * period_ms (else only the window times are noted). */
static int acks_phase(store *s, persist *p, const store_bench_acks_cfg *cfg, int ckpt, uint32_t actor0,
                      ack_job *jobs, ack_acc *acc, double *cuts, double *ckpt_s, int *ncuts) {
  int stop = 0, rc = IB_OK;
  pthread_t th[16];
  for (int i = 0; i < cfg->threads; i++) {
    jobs[i].s = s;
    jobs[i].cfg = cfg;
    jobs[i].actor = actor0 + (uint32_t)i;
    jobs[i].stop = &stop;
    jobs[i].kept = 0;
    jobs[i].rc = IB_OK;
    IB_CHECK(pthread_create(&th[i], NULL, ack_worker, &jobs[i]) == 0);
  }
  uint64_t t_start = ib_now_ns() + 200000000ull; /* let the threads start */
  uint64_t t_end = t_start + (uint64_t)(cfg->seconds * 1e9);
  uint64_t period = (uint64_t)cfg->period_ms * 1000000ull, window = (uint64_t)cfg->window_ms * 1000000ull;
  uint64_t ws[ACK_WINDOWS];
  int nw = 0;
  for (uint64_t next = t_start; next + window <= t_end && nw < ACK_WINDOWS && !rc; next += period) {
    sleep_until_ns(next);
    ws[nw++] = ib_now_ns();
    if (ckpt) {
      persist_ckpt_info ci;
      rc = persist_checkpoint(p, &ci);
      if (!rc && *ncuts < ACK_WINDOWS) {
        cuts[*ncuts] = ci.blocked_seconds * 1e3;
        ckpt_s[(*ncuts)++] = ci.seconds;
      }
    }
  }
  sleep_until_ns(t_end);
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < cfg->threads; i++) {
    pthread_join(th[i], NULL);
    if (jobs[i].rc && !rc) rc = jobs[i].rc;
  }
  for (int i = 0; i < cfg->threads; i++) {
    for (uint64_t k = 0; k < jobs[i].kept; k++) {
      if (acc->n == acc->cap) {
        acc->cap = acc->cap ? 2 * acc->cap : 65536;
        acc->all = realloc(acc->all, acc->cap * sizeof *acc->all);
        IB_CHECK(acc->all != NULL);
      }
      acc->all[acc->n++] = jobs[i].ms[k];
    }
  }
  for (int w = 0; w < nw && acc->nwin < ACK_WINDOWS; w++) {
    double worst = 0, worst_rest = 0;
    uint64_t end = w + 1 < nw ? ws[w + 1] : IB_MIN(ws[w] + period, t_end);
    for (int i = 0; i < cfg->threads; i++)
      for (uint64_t k = 0; k < jobs[i].kept; k++) {
        uint64_t t = jobs[i].t0[k];
        double ms = jobs[i].ms[k];
        if (t >= ws[w] && t < ws[w] + window && ms > worst) worst = ms;
        if (t >= ws[w] + window && t < end && ms > worst_rest) worst_rest = ms;
      }
    acc->rest[acc->nwin] = worst_rest;
    acc->win[acc->nwin++] = worst;
  }
  return rc;
}

static void acks_stats(ack_acc *acc, store_bench_acks_stats *o) {
  memset(o, 0, sizeof *o);
  o->acks = acc->n;
  if (acc->n > 0) {
    qsort(acc->all, acc->n, sizeof *acc->all, cmp_float);
    o->p50_ms = acc->all[acc->n / 2];
    o->p99_ms = acc->all[(acc->n * 99) / 100];
    o->max_ms = acc->all[acc->n - 1];
  }
  o->windows = acc->nwin;
  if (acc->nwin > 0) {
    qsort(acc->win, (size_t)acc->nwin, sizeof acc->win[0], cmp_double);
    qsort(acc->rest, (size_t)acc->nwin, sizeof acc->rest[0], cmp_double);
    o->win_med_ms = acc->win[acc->nwin / 2];
    o->win_max_ms = acc->win[acc->nwin - 1];
    o->rest_med_ms = acc->rest[acc->nwin / 2];
    o->rest_max_ms = acc->rest[acc->nwin - 1];
  }
}

int store_bench_acks(const store_bench_acks_cfg *cfg, store_bench_acks_result *out) {
  IB_CHECK(cfg != NULL && out != NULL && cfg->dir != NULL);
  memset(out, 0, sizeof *out);
  if (cfg->threads < 1 || cfg->threads > 16 || cfg->batch < 1 || cfg->batch > FILL_BATCH || cfg->rounds < 1 ||
      cfg->rounds > 8 || !(cfg->seconds >= 1 && cfg->seconds <= 3600) || cfg->period_ms < 10 ||
      cfg->window_ms < 1 || cfg->window_ms > cfg->period_ms)
    return ib_fail(IB_EINVAL,
                   "bench: threads %d (1..16), batch %u (1..%d), rounds %d (1..8), seconds %g (1..3600), "
                   "period %d ms (>= 10) or window %d ms (1..period) out of range",
                   cfg->threads, cfg->batch, FILL_BATCH, cfg->rounds, cfg->seconds, cfg->period_ms, cfg->window_ms);
  store_spec sp[2];
  store_specs_default(sp, cfg->obs_dim, cfg->act_dim, 16, cfg->capacity);
  store_config sc = {.max_insert_batch = FILL_BATCH};
  store *s = NULL;
  persist *p = NULL;
  persist_restore_info ri;
  int rc = store_create(&s, sp, 2, &sc);
  if (!rc) rc = persist_open(&p, s, cfg->dir, PERSIST_WAL, &ri);
  if (!rc && (ri.ckpt_found || ri.wal_records > 0))
    rc = ib_fail(IB_ESTATE, "bench: '%s' already holds a store (HINT: give an empty directory)", cfg->dir);
  if (!rc) { /* a full table, so each checkpoint writes `capacity` items */
    item_src src;
    item_src_init(&src, cfg->obs_dim, cfg->act_dim, FILL_BATCH);
    float *obs = src.obs, *act = src.act;
    store_item *it = src.it;
    rc = fill(s, "online", cfg->capacity, cfg->obs_dim, cfg->act_dim, 7, STORE_PROPOSER_RL, obs, act, it);
    item_src_free(&src);
  }
  ack_job jobs[16];
  for (int i = 0; i < cfg->threads; i++) {
    jobs[i].t0 = ib_xcalloc(ACK_KEEP, sizeof *jobs[i].t0);
    jobs[i].ms = ib_xcalloc(ACK_KEEP, sizeof *jobs[i].ms);
  }
  ack_acc *acc = ib_xcalloc(2, sizeof *acc); /* [0] with checkpoints, [1] without */
  double *cuts = ib_xcalloc(ACK_WINDOWS, sizeof *cuts), *ck_s = ib_xcalloc(ACK_WINDOWS, sizeof *ck_s);
  int ncuts = 0;
  /* The disk's flush time drifts with whatever else runs, so the modes alternate, each first in
   * turn, and every round uses fresh actors (no batch is a duplicate). */
  for (int r = 0; r < cfg->rounds && !rc; r++) {
    for (int h = 0; h < 2 && !rc; h++) {
      int with = (r + h) % 2 == 0;
      log_info("bench: acks round %d of %d, %s checkpoints every %d ms, %g s", r + 1, cfg->rounds,
               with ? "with" : "without", cfg->period_ms, cfg->seconds);
      rc = acks_phase(s, p, cfg, with, 10000u + 100u * (uint32_t)(2 * r + h), jobs, &acc[with ? 0 : 1], cuts, ck_s,
                      &ncuts);
    }
  }
  if (!rc) {
    acks_stats(&acc[0], &out->with_ckpt);
    acks_stats(&acc[1], &out->without);
    if (ncuts > 0) {
      qsort(cuts, (size_t)ncuts, sizeof *cuts, cmp_double);
      qsort(ck_s, (size_t)ncuts, sizeof *ck_s, cmp_double);
      out->cut_med_ms = cuts[ncuts / 2];
      out->cut_max_ms = cuts[ncuts - 1];
      out->ckpt_med_s = ck_s[ncuts / 2];
    }
  }
  for (int i = 0; i < cfg->threads; i++) {
    free(jobs[i].t0);
    free(jobs[i].ms);
  }
  free(acc[0].all);
  free(acc[1].all);
  free(acc);
  free(cuts);
  free(ck_s);
  persist_close(p);
  store_destroy(s);
  return rc;
}
