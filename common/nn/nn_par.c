/* nn_par.c: the thread team of ib_nn (see nn_par.h).
 *
 * Design. Workers wait on a generation counter: nn_par_run stores the job, bumps the counter and
 * runs member 0 itself; each worker runs the job and bumps a done counter the caller spins on.
 * A waiting worker polls for about NN_PAR_SPIN polls (a few milliseconds: longer than the serial
 * gaps of a training step, such as drawing dropout masks), then sleeps on a condition variable; the caller signals it only
 * when a sleeper is registered. The sleeper count and the generation are sequentially
 * consistent atomics, so "worker registers then re-checks the generation" and "caller bumps the
 * generation then reads the sleeper count" cannot both miss each other. The barrier is a
 * counting barrier with a generation. Every busy-wait pauses and yields the core every few dozen
 * polls (spin_poll): without that, a waiter placed on the same core as the thread it waits for
 * burned whole time slices (learning steps took 1.7 s instead of 1.0 s in 1 run of 3). The busy flag makes the team single-entry: a second
 * caller (another thread, or a nested call) gets a serial run instead of a deadlock. */
#include "nn_par.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "ib.h"

#define NN_PAR_SPIN 100000 /* polls (~5 ms) before a waiting worker sleeps: longer than the serial
                                   gaps inside a learning step, so the team stays awake through one */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* One poll of a busy-wait: a pause, and every NN_PAR_YIELD_EVERY polls a sched_yield, so a waiter
 * that the scheduler put on the same core as the thread it waits for hands the core over within
 * microseconds instead of a time slice (alone on its core, the yield returns at once). */
#define NN_PAR_YIELD_EVERY 64
static inline void spin_poll(int *spins) {
  if (++*spins % NN_PAR_YIELD_EVERY == 0) sched_yield();
  else cpu_relax();
}

static struct {
  int nt;
  pthread_t th[NN_PAR_MAX];
  nn_par_fn fn;
  void *ctx;
  atomic_uint gen;
  atomic_int done;
  atomic_int sleepers;
  atomic_int quit;
  atomic_int busy;
  atomic_uint bar_count;
  atomic_uint bar_gen;
  unsigned start_gen; /* gen when the workers were created: their first "seen" value */
  pthread_mutex_t mu;
  pthread_cond_t cv;
} team = {.nt = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *worker_main(void *arg) {
  nn_team tm = {.tid = (int)(size_t)arg, .nt = team.nt};
  unsigned seen = team.start_gen; /* not a fresh load: a job may already have been posted */
  for (;;) {
    unsigned g;
    int spins = 0;
    while ((g = atomic_load(&team.gen)) == seen) {
      if (atomic_load(&team.quit)) return NULL;
      if (spins < NN_PAR_SPIN) {
        spin_poll(&spins);
        continue;
      }
      pthread_mutex_lock(&team.mu);
      atomic_fetch_add(&team.sleepers, 1);
      while (atomic_load(&team.gen) == seen && !atomic_load(&team.quit))
        pthread_cond_wait(&team.cv, &team.mu);
      atomic_fetch_sub(&team.sleepers, 1);
      pthread_mutex_unlock(&team.mu);
      spins = 0;
    }
    seen = g;
    if (atomic_load(&team.quit)) return NULL;
    team.fn(team.ctx, &tm);
    atomic_fetch_add(&team.done, 1);
  }
}

static void team_stop(void) {
  if (team.nt <= 1) return;
  pthread_mutex_lock(&team.mu);
  atomic_store(&team.quit, 1);
  pthread_cond_broadcast(&team.cv);
  pthread_mutex_unlock(&team.mu);
  for (int i = 1; i < team.nt; i++) pthread_join(team.th[i], NULL);
  atomic_store(&team.quit, 0);
  team.nt = 1;
}

/* A forked child has only the forking thread: it must not wait for workers it does not have. */
static void team_after_fork_child(void) {
  team.nt = 1;
  atomic_store(&team.busy, 0);
  atomic_store(&team.sleepers, 0);
  atomic_store(&team.quit, 0);
  atomic_store(&team.bar_count, 0);
  pthread_mutex_init(&team.mu, NULL);
  pthread_cond_init(&team.cv, NULL);
}

void nn_par_set(int n) {
  static int atfork_done;
  IB_CHECK(n >= 1 && n <= NN_PAR_MAX);
  IB_CHECK(atomic_load(&team.busy) == 0);
  if (n == team.nt) return;
  if (!atfork_done) {
    IB_CHECK(pthread_atfork(NULL, NULL, team_after_fork_child) == 0);
    atfork_done = 1;
  }
  team_stop();
  team.nt = n;
  team.start_gen = atomic_load(&team.gen);
  for (int i = 1; i < n; i++)
    IB_CHECK(pthread_create(&team.th[i], NULL, worker_main, (void *)(size_t)i) == 0);
}

int nn_par_size(void) { return team.nt; }

void nn_par_run(nn_par_fn fn, void *ctx) {
  IB_CHECK(fn);
  int expect = 0;
  if (team.nt == 1 || !atomic_compare_exchange_strong(&team.busy, &expect, 1)) {
    nn_team solo = {.tid = 0, .nt = 1};
    fn(ctx, &solo);
    return;
  }
  team.fn = fn;
  team.ctx = ctx;
  atomic_store(&team.done, 0);
  atomic_fetch_add(&team.gen, 1);
  if (atomic_load(&team.sleepers) > 0) {
    pthread_mutex_lock(&team.mu);
    pthread_cond_broadcast(&team.cv);
    pthread_mutex_unlock(&team.mu);
  }
  nn_team me = {.tid = 0, .nt = team.nt};
  fn(ctx, &me);
  int spins = 0;
  while (atomic_load(&team.done) < team.nt - 1) spin_poll(&spins);
  atomic_store(&team.busy, 0);
}

void nn_par_barrier(const nn_team *tm) {
  if (tm->nt <= 1) return;
  unsigned g = atomic_load(&team.bar_gen);
  if (atomic_fetch_add(&team.bar_count, 1) == (unsigned)tm->nt - 1) {
    atomic_store(&team.bar_count, 0);
    atomic_fetch_add(&team.bar_gen, 1);
    return;
  }
  int spins = 0;
  while (atomic_load(&team.bar_gen) == g) spin_poll(&spins);
}

void nn_par_range(size_t *lo, size_t *hi, size_t n, int tid, int nt, size_t align) {
  IB_CHECK(lo && hi && nt >= 1 && tid >= 0 && tid < nt && align >= 1);
  size_t units = (n + align - 1) / align;
  size_t a = units * (size_t)tid / (size_t)nt * align, b = units * (size_t)(tid + 1) / (size_t)nt * align;
  *lo = a < n ? a : n;
  *hi = b < n ? b : n;
}
