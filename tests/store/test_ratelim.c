/* test_ratelim.c: the samples-per-insert limiter: the worked example of ratelim.h step by step,
 * blocking and release by another thread, timeouts, pause, undo, shutdown, oversized batches and
 * the realised ratio under two racing threads. All waits are bounded by deadlines of <= 5 s. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "ib.h"
#include "ratelim.h"
#include "th.h"

#define MS 1000000ull

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static rlim *mk(double spi, double eb, uint64_t min_size) {
  rlim_config c = {.samples_per_insert = spi, .error_buffer = eb, .min_size_to_sample = min_size};
  rlim *l = NULL;
  int rc = rlim_create(&l, &c);
  TH_CHECK_MSG(rc == IB_OK, "rlim_create: %s", ib_errmsg());
  return l;
}

static void test_config_errors(void) {
  rlim *l = NULL;
  rlim_config c = {.samples_per_insert = 0, .error_buffer = 10, .min_size_to_sample = 1};
  TH_CHECK_EQ_INT(rlim_create(&l, &c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "samples_per_insert") != NULL);
  c.samples_per_insert = NAN;
  TH_CHECK_EQ_INT(rlim_create(&l, &c), IB_EINVAL);
  c.samples_per_insert = 4;
  c.error_buffer = 3;
  TH_CHECK_EQ_INT(rlim_create(&l, &c), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "error_buffer 3") != NULL && strstr(ib_errmsg(), "HINT") != NULL);
  c.error_buffer = NAN;
  TH_CHECK_EQ_INT(rlim_create(&l, &c), IB_EINVAL);
  TH_CHECK(l == NULL);
  c.error_buffer = INFINITY;
  TH_CHECK_EQ_INT(rlim_create(&l, &c), IB_OK);
  /* A bad update leaves the settings as they were. */
  rlim_config bad = c;
  bad.samples_per_insert = -1;
  TH_CHECK_EQ_INT(rlim_config_set(l, &bad), IB_EINVAL);
  rlim_info inf;
  rlim_info_get(l, &inf);
  TH_CHECK_NEAR(inf.cfg.samples_per_insert, 4, 0);
  rlim_destroy(l);
}

static void test_worked_example(void) {
  rlim *l = mk(2, 50, 100);
  rlim_info inf;
  rlim_info_get(l, &inf);
  TH_CHECK_NEAR(inf.min_diff, 150, 0);
  TH_CHECK_NEAR(inf.max_diff, 250, 0);
  /* Before min_size, samples wait. */
  TH_CHECK_EQ_INT(rlim_await_sample(l, 1, 0), IB_ETIMEDOUT);
  for (int i = 0; i < 100; i++) TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_OK);
  rlim_info_get(l, &inf);
  TH_CHECK_NEAR(inf.cursor, 200, 0);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 32, 0), IB_OK);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 32, 0), IB_ETIMEDOUT);
  TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_OK);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 32, 0), IB_ETIMEDOUT);
  for (int i = 0; i < 5; i++) TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_OK);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 32, 0), IB_ETIMEDOUT); /* c = 180: 148 < 150 */
  TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_OK);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 32, 0), IB_OK); /* c = 182: 150 >= 150 */
  rlim_info_get(l, &inf);
  TH_CHECK_NEAR(inf.cursor, 150, 0);
  /* Inserts pass until c = 250: exactly 50 more. */
  int passed = 0;
  while (rlim_await_insert(l, 1, 0) == IB_OK && passed < 1000) passed++;
  TH_CHECK_EQ_INT(passed, 50);
  rlim_info_get(l, &inf);
  TH_CHECK_NEAR(inf.cursor, 250, 0);
  TH_CHECK_EQ_INT(inf.sample_timeouts, 4);
  TH_CHECK_EQ_INT(inf.insert_timeouts, 1);
  rlim_destroy(l);
}

typedef struct later {
  rlim *l;
  int delay_ms;
  int what; /* 0 insert 1, 1 sample 8, 2 shutdown, 3 resume */
} later;

static void *do_later(void *arg) {
  later *x = arg;
  sleep_ms(x->delay_ms);
  if (x->what == 0) TH_CHECK_EQ_INT(rlim_await_insert(x->l, 1, ib_now_ns() + 5000 * MS), IB_OK);
  if (x->what == 1) TH_CHECK_EQ_INT(rlim_await_sample(x->l, 8, ib_now_ns() + 5000 * MS), IB_OK);
  if (x->what == 2) rlim_shutdown(x->l);
  return NULL;
}

static void test_blocks_then_released(void) {
  /* A sample waits for min_size; a thread inserts the missing item after 100 ms. */
  rlim *l = mk(1, 10, 5);
  for (int i = 0; i < 4; i++) TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_OK);
  later x = {l, 100, 0};
  pthread_t th;
  pthread_create(&th, NULL, do_later, &x);
  uint64_t t0 = ib_now_ns();
  int rc = rlim_await_sample(l, 1, t0 + 5000 * MS);
  uint64_t dt = ib_now_ns() - t0;
  pthread_join(th, NULL);
  TH_CHECK_EQ_INT(rc, IB_OK);
  TH_CHECK_MSG(dt >= 80 * MS && dt < 4000 * MS, "released after %.1f ms", (double)dt / 1e6);
  rlim_info inf;
  rlim_info_get(l, &inf);
  TH_CHECK_MSG(inf.sample_blocked_ns >= 80 * MS, "blocked %.1f ms",
               (double)inf.sample_blocked_ns / 1e6);
  TH_CHECK_EQ_INT(inf.waiting_samples, 0);

  /* An insert waits for the learner: cursor at the top of the band, a sample frees room. */
  rlim *m = mk(8, 8, 0);                              /* band [-8, 8] */
  TH_CHECK_EQ_INT(rlim_await_insert(m, 1, 0), IB_OK); /* c = 8 */
  TH_CHECK_EQ_INT(rlim_await_insert(m, 1, 0), IB_ETIMEDOUT);
  /* A wait that ends at the caller's own budget times out alike but is not counted. */
  TH_CHECK_EQ_INT(rlim_await_insert_budget(m, 1, ib_now_ns() + 20 * MS), IB_ETIMEDOUT);
  rlim_info_get(m, &inf);
  TH_CHECK_EQ_INT(inf.insert_timeouts, 1);
  TH_CHECK_MSG(inf.insert_blocked_ns >= 15 * MS, "blocked %.1f ms", (double)inf.insert_blocked_ns / 1e6);
  later y = {m, 100, 1};
  pthread_create(&th, NULL, do_later, &y);
  t0 = ib_now_ns();
  rc = rlim_await_insert(m, 1, t0 + 5000 * MS);
  dt = ib_now_ns() - t0;
  pthread_join(th, NULL);
  TH_CHECK_EQ_INT(rc, IB_OK);
  TH_CHECK(dt >= 80 * MS);
  rlim_info_get(m, &inf);
  TH_CHECK(inf.insert_blocked_ns >= 80 * MS);
  rlim_destroy(m);
  rlim_destroy(l);
}

static void test_timeout(void) {
  rlim *l = mk(1, 10, 5);
  uint64_t t0 = ib_now_ns();
  int rc = rlim_await_sample(l, 1, t0 + 150 * MS);
  uint64_t dt = ib_now_ns() - t0;
  TH_CHECK_EQ_INT(rc, IB_ETIMEDOUT);
  TH_CHECK(strstr(ib_errmsg(), "min_size_to_sample") != NULL);
  TH_CHECK_MSG(dt >= 150 * MS && dt < 3000 * MS, "timed out after %.1f ms", (double)dt / 1e6);
  rlim_info inf;
  rlim_info_get(l, &inf);
  TH_CHECK_EQ_INT(inf.sample_timeouts, 1);
  TH_CHECK_EQ_INT(inf.samples, 0); /* nothing counted */
  /* A deadline in the past returns at once. */
  t0 = ib_now_ns();
  TH_CHECK_EQ_INT(rlim_await_sample(l, 1, 1), IB_ETIMEDOUT);
  TH_CHECK(ib_now_ns() - t0 < 100 * MS);
  rlim_destroy(l);
}

static void test_pause_undo_counts(void) {
  rlim *l = mk(1, 4, 100);
  rlim_pause(l, true);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 50, 0), IB_OK); /* not enforced, but counted */
  rlim_info inf;
  rlim_info_get(l, &inf);
  TH_CHECK_EQ_INT(inf.samples, 50);
  rlim_pause(l, false);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 1, 0), IB_ETIMEDOUT);
  rlim_undo_sample(l, 50);
  for (int i = 0; i < 100; i++) TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_OK);
  TH_CHECK_EQ_INT(rlim_await_insert(l, 5, 0), IB_ETIMEDOUT); /* 105 > 104 */
  TH_CHECK_EQ_INT(rlim_await_insert(l, 4, 0), IB_OK);
  rlim_undo_insert(l, 4);
  rlim_info_get(l, &inf);
  TH_CHECK_EQ_INT(inf.inserts, 100);
  TH_CHECK_EQ_INT(inf.samples, 0);
  /* Restore-style counter seeding. */
  rlim_counts_set(l, 1000, 900);
  rlim_info_get(l, &inf);
  TH_CHECK_NEAR(inf.cursor, 100, 0);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 4, 0), IB_OK);
  rlim_destroy(l);
}

static void test_shutdown_wakes_waiters(void) {
  rlim *l = mk(1, 10, 5);
  later x = {l, 50, 2};
  pthread_t th;
  pthread_create(&th, NULL, do_later, &x);
  uint64_t t0 = ib_now_ns();
  int rc = rlim_await_sample(l, 1, t0 + 5000 * MS);
  uint64_t dt = ib_now_ns() - t0;
  pthread_join(th, NULL);
  TH_CHECK_EQ_INT(rc, IB_EUNAVAIL);
  TH_CHECK(dt < 3000 * MS);
  TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_EUNAVAIL);
  rlim_destroy(l);
}

static void test_oversized_batch(void) {
  /* Band [-1, 1] with spi 1: a batch of 10 inserts is wider than the band; it passes when its
   * first item fits, and a sample batch of 10 likewise. */
  rlim *l = mk(1, 1, 0);
  TH_CHECK_EQ_INT(rlim_await_insert(l, 10, 0), IB_OK);
  TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_ETIMEDOUT);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 10, 0), IB_OK); /* c = 0 */
  TH_CHECK_EQ_INT(rlim_await_sample(l, 10, 0), IB_OK); /* c - 1 = -1 >= -1: first item fits */
  TH_CHECK_EQ_INT(rlim_await_sample(l, 10, 0), IB_ETIMEDOUT);
  rlim_destroy(l);
}

typedef struct racer {
  rlim *l;
  atomic_int *stop;
  uint64_t count;
  int errors;
} racer;

static void *race_insert(void *arg) {
  racer *r = arg;
  for (int i = 0; i < 400; i++) {
    if (rlim_await_insert(r->l, 1, ib_now_ns() + 5000 * MS) != IB_OK)
      r->errors++;
    else
      r->count++;
  }
  *r->stop = 1;
  return NULL;
}

static void *race_sample(void *arg) {
  racer *r = arg;
  while (!*r->stop) {
    int rc = rlim_await_sample(r->l, 8, ib_now_ns() + 20 * MS);
    if (rc == IB_OK)
      r->count += 8;
    else if (rc != IB_ETIMEDOUT)
      r->errors++;
  }
  return NULL;
}

static void test_realised_ratio_two_threads(void) {
  /* spi 4, min 10, eb 24: band [16, 64]; 2*eb = 48 >= 8 + 1*4, so no deadlock. */
  rlim *l = mk(4, 24, 10);
  atomic_int stop = 0;
  racer ri = {l, &stop, 0, 0}, rs = {l, &stop, 0, 0};
  pthread_t a, b;
  pthread_create(&b, NULL, race_sample, &rs);
  pthread_create(&a, NULL, race_insert, &ri);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  TH_CHECK_EQ_INT(ri.errors + rs.errors, 0);
  TH_CHECK_EQ_INT(ri.count, 400);
  rlim_info inf;
  rlim_info_get(l, &inf);
  TH_CHECK_EQ_INT(inf.samples, rs.count);
  /* The cursor stayed in the band: S = 4*400 - c with c in [16, 64]. */
  TH_CHECK_MSG(inf.cursor >= 16 && inf.cursor <= 64, "cursor %.1f left the band [16, 64]",
               inf.cursor);
  TH_CHECK(rs.count >= 1600 - 64 && rs.count <= 1600 - 16);
  rlim_destroy(l);
}

/* An inserter that records when it got through (order of completion across threads). */
typedef struct queued {
  rlim *l;
  atomic_int *order; /* next completion number */
  int done_as;       /* 1-based completion number, 0 = not yet */
  int rc;
} queued;

static void *queued_insert(void *arg) {
  queued *q = arg;
  q->rc = rlim_await_insert(q->l, 1, ib_now_ns() + 5000 * MS);
  q->done_as = atomic_fetch_add(q->order, 1) + 1;
  return NULL;
}

static void *short_insert(void *arg) {
  queued *q = arg;
  q->rc = rlim_await_insert(q->l, 1, ib_now_ns() + 150 * MS);
  q->done_as = atomic_fetch_add(q->order, 1) + 1;
  return NULL;
}

/* Waits (up to 2 s) until `want` insert calls are blocked. */
static int wait_blocked(rlim *l, uint32_t want) {
  rlim_info inf;
  for (int i = 0; i < 400; i++) {
    rlim_info_get(l, &inf);
    if (inf.waiting_inserts == want) return 1;
    sleep_ms(5);
  }
  return 0;
}

static void test_fifo_no_barging(void) {
  /* band [-2, 2] (spi 1, eb 2): two inserts fill it; each sample of 1 makes room for one insert. */
  rlim *l = mk(1, 2, 0);
  TH_CHECK_EQ_INT(rlim_await_insert(l, 2, 0), IB_OK);
  atomic_int order = 0;
  queued a = {l, &order, 0, -1}, b = {l, &order, 0, -1};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, queued_insert, &a);
  TH_CHECK(wait_blocked(l, 1)); /* a waits first */
  pthread_create(&tb, NULL, queued_insert, &b);
  TH_CHECK(wait_blocked(l, 2)); /* then b */
  /* Room for one insert. A newcomer that would fit must not overtake the two waiters: it joins
   * the line, and with deadline 0 (try once) it fails at once. */
  TH_CHECK_EQ_INT(rlim_await_sample(l, 1, 0), IB_OK);
  int rc = rlim_await_insert(l, 1, 0);
  TH_CHECK_MSG(rc == IB_ETIMEDOUT, "a newcomer overtook two waiting inserts (rc %d)", rc);
  /* The room goes to a, the first in line; b still waits. */
  for (int i = 0; i < 400 && a.done_as == 0; i++) sleep_ms(5);
  sleep_ms(50);
  TH_CHECK_MSG(a.done_as == 1 && b.done_as == 0, "completion order a=%d b=%d (want a first, b waiting)", a.done_as,
               b.done_as);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 1, 0), IB_OK);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  TH_CHECK_EQ_INT(a.rc, IB_OK);
  TH_CHECK_EQ_INT(b.rc, IB_OK);
  TH_CHECK_EQ_INT(b.done_as, 2);
  rlim_info inf;
  rlim_info_get(l, &inf);
  TH_CHECK_EQ_INT(inf.waiting_inserts, 0);

  /* A head that times out leaves the line, and the call behind it is served next. The cursor
   * is at the top again (a and b inserted after the two samples). */
  atomic_store(&order, 0);
  queued h = {l, &order, 0, -1}, c = {l, &order, 0, -1};
  pthread_t th, tc;
  pthread_create(&th, NULL, short_insert, &h); /* head: 150 ms deadline */
  TH_CHECK(wait_blocked(l, 1));
  pthread_create(&tc, NULL, queued_insert, &c); /* behind it: 5 s */
  TH_CHECK(wait_blocked(l, 2));
  pthread_join(th, NULL);
  TH_CHECK_EQ_INT(h.rc, IB_ETIMEDOUT);
  TH_CHECK(wait_blocked(l, 1));
  TH_CHECK_EQ_INT(rlim_await_sample(l, 1, 0), IB_OK);
  pthread_join(tc, NULL);
  TH_CHECK_EQ_INT(c.rc, IB_OK);
  rlim_destroy(l);
}

/* rlim_try_*: the same answers and counts as an await with deadline 0 (the reference, on a second
 * limiter fed the same calls), but no timeout is counted; it queues behind waiters like the
 * await; paused it passes; shut down it refuses. */
static void test_try_once(void) {
  rlim *t = mk(2, 50, 100), *ref = mk(2, 50, 100);
  uint64_t rs = 12345;
  int agree = 0, passed = 0;
  for (int i = 0; i < 2000; i++) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t n = 1 + (rs >> 33) % 40;
    int ins = (rs >> 20) % 3 != 0; /* two inserts for each sample: the cursor moves both ways */
    bool got = ins ? rlim_try_insert(t, n) : rlim_try_sample(t, n);
    int want = ins ? rlim_await_insert(ref, n, 0) : rlim_await_sample(ref, n, 0);
    agree += got == (want == IB_OK);
    passed += got;
  }
  TH_CHECK_EQ_INT(agree, 2000);
  TH_CHECK_MSG(passed > 200 && passed < 1900, "only %d of 2000 tries passed: the sequence did not test both answers",
               passed);
  rlim_info it, ir;
  rlim_info_get(t, &it);
  rlim_info_get(ref, &ir);
  TH_CHECK_EQ_INT(it.inserts, ir.inserts);
  TH_CHECK_EQ_INT(it.samples, ir.samples);
  TH_CHECK_EQ_INT(it.insert_timeouts + it.sample_timeouts, 0);
  TH_CHECK_MSG(ir.insert_timeouts + ir.sample_timeouts > 0, "the reference never refused");
  TH_CHECK(rlim_try_insert(t, 0) && rlim_try_sample(t, 0));
  rlim_destroy(ref);
  rlim_destroy(t);

  /* Behind a waiting insert a try fails even when it would fit, as deadline 0 does. */
  rlim *l = mk(1, 2, 0); /* band [-2, 2] */
  TH_CHECK(rlim_try_insert(l, 2));
  TH_CHECK(!rlim_try_insert(l, 1));
  atomic_int order = 0;
  queued a = {l, &order, 0, -1};
  pthread_t ta;
  pthread_create(&ta, NULL, queued_insert, &a);
  TH_CHECK(wait_blocked(l, 1));
  /* Room for one insert: it is the waiter's, so the try fails whether the waiter has taken it
   * yet (the band is full again) or not (it is first in line). */
  TH_CHECK(rlim_try_sample(l, 1));
  TH_CHECK(!rlim_try_insert(l, 1));
  pthread_join(ta, NULL);
  TH_CHECK_EQ_INT(a.rc, IB_OK);
  rlim_info inf;
  rlim_info_get(l, &inf);
  TH_CHECK_EQ_INT(inf.insert_timeouts, 0);
  rlim_pause(l, true);
  TH_CHECK(rlim_try_insert(l, 100));
  rlim_shutdown(l);
  TH_CHECK(!rlim_try_insert(l, 1) && !rlim_try_sample(l, 1));
  TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_EUNAVAIL);
  rlim_destroy(l);
}

/* Counts restored after a crash: the inserts replayed from the log, the samples only as of the
 * last checkpoint. spi 2, error buffer 50, min_size 100: the band is [150, 250], its middle 200. */
static void test_counts_restore(void) {
  rlim *l = mk(2, 50, 100);
  /* In the band: left as it is. */
  TH_CHECK_EQ_INT(rlim_counts_restore(l, 1000, 1800), 0);
  rlim_info inf;
  rlim_info_get(l, &inf);
  TH_CHECK_NEAR(inf.cursor, 200, 0);
  TH_CHECK_EQ_INT(rlim_counts_restore(l, 1000, 1750), 0); /* cursor 250: the band's top */
  /* 300 samples missing: the cursor 550 is moved to 200, counting 350 samples. */
  TH_CHECK_EQ_INT(rlim_counts_restore(l, 1000, 1450), 350);
  rlim_info_get(l, &inf);
  TH_CHECK_NEAR(inf.cursor, 200, 0);
  TH_CHECK_EQ_INT(inf.samples, 1800);
  /* Inserts go on at once (25 rows to the top), and samples too (25 rows to the bottom). */
  TH_CHECK_EQ_INT(rlim_await_insert(l, 25, 0), IB_OK);
  TH_CHECK_EQ_INT(rlim_await_insert(l, 1, 0), IB_ETIMEDOUT);
  TH_CHECK_EQ_INT(rlim_await_sample(l, 100, 0), IB_OK);
  /* No sample at all restored (no checkpoint before the crash). */
  TH_CHECK_EQ_INT(rlim_counts_restore(l, 100000, 0), 199800);
  rlim_info_get(l, &inf);
  TH_CHECK_NEAR(inf.cursor, 200, 0);
  /* Below the band (samplers ahead): not moved; nor under min_size (warm-up). */
  TH_CHECK_EQ_INT(rlim_counts_restore(l, 1000, 1900), 0);
  TH_CHECK_EQ_INT(rlim_counts_restore(l, 50, 0), 0);
  rlim_destroy(l);
  /* The ratio off (an unbounded band): never moved. */
  l = mk(1, INFINITY, 10);
  TH_CHECK_EQ_INT(rlim_counts_restore(l, 100000, 0), 0);
  rlim_destroy(l);
}

static const th_case cases[] = {
    {"config errors", test_config_errors},
    {"worked example of the header", test_worked_example},
    {"blocks, then released by another thread", test_blocks_then_released},
    {"times out at the deadline", test_timeout},
    {"pause, undo, counts", test_pause_undo_counts},
    {"shutdown wakes waiters", test_shutdown_wakes_waiters},
    {"oversized batches", test_oversized_batch},
    {"realised ratio with two threads", test_realised_ratio_two_threads},
    {"waiting inserts are served in arrival order, newcomers queue behind", test_fifo_no_barging},
    {"try once: a deadline-0 await's answers without counting timeouts", test_try_once},
    {"counts restored after a crash: a cursor past the band is moved to its middle", test_counts_restore},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
