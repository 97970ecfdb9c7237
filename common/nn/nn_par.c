/* nn_par.c: the small persistent thread pool that runs the elementwise arena passes (Adam,
 * Polyak EMA, zero-grad) on all the BLAS threads.
 *
 * Design. Between two matrix products the OpenBLAS workers sit idle, so at 2 threads half the
 * machine waited for single-threaded Adam/EMA/zero passes over the multi-megabyte arenas. The
 * pool holds nn_set_threads(n) - 1 helper threads, created once and parked on a condition
 * variable. nn_par_for(fn, ctx, n) cuts [0, n) into one contiguous slice per thread (slice
 * boundaries on 64-byte multiples), wakes the helpers, runs slice 0 on the caller and waits.
 * Every job given to the pool is per-element (element i's result depends only on element i), so
 * the result is bit-identical for any thread count and any slicing; jobs that reduce must not
 * use the pool. Small ranges run inline: waking a thread costs more than streaming a few
 * hundred kilobytes. One job runs at a time: a second caller that finds the pool busy (another
 * thread of the process) runs its job inline instead of waiting. */
#include <pthread.h>
#include <string.h>

#include "ib.h"
#include "nn.h"

#define PAR_MAX 16                 /* threads, caller included */
#define PAR_MIN_ELEMS ((size_t)1 << 17) /* below this a range runs inline */

static struct {
  pthread_mutex_t mu;       /* guards everything below */
  pthread_cond_t wake, done;
  pthread_mutex_t busy;     /* held by the caller of the running job */
  int n_threads;            /* caller + helpers */
  int n_started;            /* helpers created so far (never shrinks) */
  unsigned long gen;        /* bumped for each job */
  int pending;              /* helpers still working on the current job */
  int active;               /* slices of the current job */
  nn_par_fn fn;
  void *ctx;
  size_t n;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_MUTEX_INITIALIZER, 1, 0, 0, 0, 0, NULL, NULL, 0};

/* Slice k of `parts` over [0, n): contiguous, 16-float aligned boundaries. */
static void par_slice(size_t *lo, size_t *hi, size_t n, int k, int parts) {
  size_t per = (n / (size_t)parts + 15) & ~(size_t)15;
  size_t a = per * (size_t)k, b = a + per;
  *lo = a < n ? a : n;
  *hi = b < n && k + 1 < parts ? b : n;
}

static void *par_helper(void *arg) {
  const int id = (int)(intptr_t)arg; /* 1 .. PAR_MAX-1 */
  unsigned long seen = 0;
  pthread_mutex_lock(&pool.mu);
  seen = pool.gen;
  for (;;) {
    while (pool.gen == seen) pthread_cond_wait(&pool.wake, &pool.mu);
    seen = pool.gen;
    if (id >= pool.active) continue; /* not needed for this job */
    nn_par_fn fn = pool.fn;
    void *ctx = pool.ctx;
    size_t lo, hi;
    par_slice(&lo, &hi, pool.n, id, pool.active);
    pthread_mutex_unlock(&pool.mu);
    if (hi > lo) fn(ctx, lo, hi);
    pthread_mutex_lock(&pool.mu);
    if (--pool.pending == 0) pthread_cond_signal(&pool.done);
  }
  return NULL;
}

void nn_par_set_threads(int n) {
  IB_CHECK(n >= 1);
  if (n > PAR_MAX) n = PAR_MAX;
  pthread_mutex_lock(&pool.busy);
  pthread_mutex_lock(&pool.mu);
  while (pool.n_started < n - 1) {
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &at, par_helper, (void *)(intptr_t)(pool.n_started + 1));
    pthread_attr_destroy(&at);
    if (rc != 0) break; /* fewer helpers: the passes just run on fewer threads */
    pool.n_started++;
  }
  pool.n_threads = 1 + (n - 1 < pool.n_started ? n - 1 : pool.n_started);
  pthread_mutex_unlock(&pool.mu);
  pthread_mutex_unlock(&pool.busy);
}

void nn_par_for(nn_par_fn fn, void *ctx, size_t n) {
  IB_CHECK(fn);
  if (n == 0) return;
  if (n < PAR_MIN_ELEMS || pthread_mutex_trylock(&pool.busy) != 0) {
    fn(ctx, 0, n);
    return;
  }
  pthread_mutex_lock(&pool.mu);
  int parts = pool.n_threads;
  if (parts <= 1) {
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.busy);
    fn(ctx, 0, n);
    return;
  }
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  pool.active = parts;
  pool.pending = parts - 1;
  pool.gen++;
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mu);
  size_t lo, hi;
  par_slice(&lo, &hi, n, 0, parts);
  if (hi > lo) fn(ctx, lo, hi);
  pthread_mutex_lock(&pool.mu);
  while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
  pthread_mutex_unlock(&pool.busy);
}
