/* th.h: the ibrl test harness: a case table, checks that record failures, and a runner.
 *
 * A test file defines `static void test_x(void)` functions and a table, then calls th_main:
 *   static const th_case cases[] = {{"layernorm forward", test_ln_fwd}, {NULL, NULL}};
 *   int main(int argc, char **argv) { return th_main(argc, argv, cases); }
 * `prog NAME` runs only the cases whose name contains NAME. Each case prints PASS/FAIL; the
 * runner ends with "N passed, N failed" and exits 1 if any check failed (a test must be able
 * to fail). A case may call th_skip("why") to be reported as skipped. */
#ifndef IB_TH_H
#define IB_TH_H

#include <stddef.h>
#include <stdint.h>

typedef struct th_case {
  const char *name;
  void (*fn)(void);
} th_case;

int th_main(int argc, char **argv, const th_case *cases);

/* Recording checks: the case continues, the failure is counted and printed with file:line. */
void th__fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void th_skip(const char *why);

#define TH_CHECK(cond)                                          \
  do {                                                          \
    if (!(cond)) th__fail(__FILE__, __LINE__, "%s", #cond);     \
  } while (0)

#define TH_CHECK_MSG(cond, ...)                                 \
  do {                                                          \
    if (!(cond)) th__fail(__FILE__, __LINE__, __VA_ARGS__);     \
  } while (0)

#define TH_CHECK_EQ_INT(a, b)                                                              \
  do {                                                                                     \
    long long th_a_ = (long long)(a), th_b_ = (long long)(b);                              \
    if (th_a_ != th_b_) th__fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, th_a_, th_b_); \
  } while (0)

#define TH_CHECK_NEAR(a, b, tol)                                                           \
  do {                                                                                     \
    double th_a_ = (double)(a), th_b_ = (double)(b), th_t_ = (double)(tol);                \
    if (!(th_a_ - th_b_ <= th_t_ && th_b_ - th_a_ <= th_t_))                               \
      th__fail(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %.3g)", #a, #b, th_a_, th_b_, th_t_); \
  } while (0)

/* Compares two float arrays with |a-b| <= atol + rtol*|b|; on failure prints the worst index
 * and both values. Returns 1 if close. */
int th_allclose(const char *what, const float *a, const float *b, size_t n, double atol, double rtol);

/* Number of failed checks so far in this process (for tests that must prove a check can fail). */
int th_failures(void);

/* The unsigned number in environment variable `name` (decimal, or 0x hex), or dflt when it is
 * unset or empty: how a test takes a seed or an iteration count from the person running it. A
 * value that is not a number exits 2 with a message naming the variable. */
uint64_t th_env_u64(const char *name, uint64_t dflt);

/* Copies the first `len` bytes of file `from` (all of it if len < 0) to `to` (created or
 * truncated), with the bytes at offsets [zlo, zhi) written as zeros (zlo >= zhi: none): how the
 * store tests build the files a crash would leave. Returns 0, or -1 if `from` cannot be opened;
 * a failure to write `to` aborts. */
int th_copy_cut(const char *from, const char *to, long len, uint64_t zlo, uint64_t zhi);

#endif /* IB_TH_H */
