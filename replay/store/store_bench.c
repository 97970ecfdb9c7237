/* store_bench.c: the timing behind store_bench.h.
 *
 * Design: every figure is a rate or a per-call latency measured with ib_now_ns around real store
 * calls on realistic shapes; item contents are constant (the store does not look at values
 * beyond the finiteness check). Latency figures keep every sample and report the median and the
 * 10th/90th percentiles, because one-off stalls (page faults, another process) skew a mean. */
#include "store_bench.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

int store_bench_gather(const store_bench_gather_cfg *cfg, store_bench_gather_result *out) {
  IB_CHECK(cfg != NULL && out != NULL);
  memset(out, 0, sizeof *out);
  if (cfg->reps < 1 || cfg->reps > 8 || cfg->iters < 1 || cfg->batch < 1)
    return ib_fail(IB_EINVAL,
                   "bench: reps %d (1..8), iters %d (>= 1) or batch %u (>= 1) out of range",
                   cfg->reps, cfg->iters, cfg->batch);
  store_spec sp[2];
  store_specs_default(sp, cfg->obs_dim, cfg->act_dim, cfg->demo_capacity, cfg->capacity);
  store_config sc = {.max_insert_batch = FILL_BATCH};
  store *s = NULL;
  int rc = store_create(&s, sp, 2, &sc);
  if (rc) return rc;
  float *obs = ib_xcalloc((size_t)cfg->obs_dim, sizeof(float));
  float *act = ib_xcalloc((size_t)cfg->act_dim, sizeof(float));
  store_item *it = ib_xcalloc(FILL_BATCH, sizeof *it);
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
  free(it);
  free(obs);
  free(act);
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
  float *obs = ib_xcalloc((size_t)c->obs_dim, sizeof(float));
  float *act = ib_xcalloc((size_t)c->act_dim, sizeof(float));
  store_item *it = ib_xcalloc(c->batch, sizeof *it);
  for (int k = 0; k < c->batches && !j->rc; k++) {
    make_items(it, c->batch, obs, act, c->obs_dim, c->act_dim, j->actor, (uint64_t)k * c->batch,
               STORE_PROPOSER_RL);
    j->rc = store_insert(j->s, "online", it, c->batch, NULL);
  }
  free(it);
  free(obs);
  free(act);
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
    float *obs = ib_xcalloc((size_t)cfg->obs_dim, sizeof(float));
    float *act = ib_xcalloc((size_t)cfg->act_dim, sizeof(float));
    store_item *it = ib_xcalloc(FILL_BATCH, sizeof *it);
    uint64_t t0 = ib_now_ns();
    rc = fill(s, "online", cfg->capacity, cfg->obs_dim, cfg->act_dim, 7, STORE_PROPOSER_RL, obs,
              act, it);
    out->bulk_items_per_s = (double)cfg->capacity / ((double)(ib_now_ns() - t0) * 1e-9);
    free(it);
    free(obs);
    free(act);
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
