/* th.c: see th.h. */
#include "th.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_fail_checks;
static int case_failed;
static int case_skipped;

void th__fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stdout, "    FAILED %s:%d: ", file, line);
  vfprintf(stdout, fmt, ap);
  fprintf(stdout, "\n");
  va_end(ap);
  n_fail_checks++;
  case_failed = 1;
}

void th_skip(const char *why) {
  fprintf(stdout, "    skipped: %s\n", why);
  case_skipped = 1;
}

int th_failures(void) { return n_fail_checks; }

uint64_t th_env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return dflt;
  char *end;
  unsigned long long x = strtoull(v, &end, 0);
  if (*end != '\0') {
    fprintf(stderr, "%s='%s' is not a number HINT: e.g. %s=12345\n", name, v, name);
    exit(2);
  }
  return x;
}

int th_copy_cut(const char *from, const char *to, long len, uint64_t zlo, uint64_t zhi) {
  FILE *f = fopen(from, "rb");
  if (f == NULL) return -1;
  FILE *g = fopen(to, "wb");
  if (g == NULL) {
    fprintf(stderr, "th_copy_cut: cannot create '%s'\n", to);
    abort();
  }
  char buf[8192];
  long done = 0;
  while (len < 0 || done < len) {
    size_t want = sizeof buf;
    if (len >= 0 && (long)want > len - done) want = (size_t)(len - done);
    size_t k = fread(buf, 1, want, f);
    if (k == 0) break;
    for (size_t j = 0; j < k; j++)
      if ((uint64_t)done + j >= zlo && (uint64_t)done + j < zhi) buf[j] = 0;
    if (fwrite(buf, 1, k, g) != k) {
      fprintf(stderr, "th_copy_cut: writing '%s' failed\n", to);
      abort();
    }
    done += (long)k;
  }
  fclose(f);
  fclose(g);
  return 0;
}

int th_allclose(const char *what, const float *a, const float *b, size_t n, double atol, double rtol) {
  size_t worst = 0;
  double worst_excess = -INFINITY;
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    double lim = atol + rtol * fabs((double)b[i]);
    double excess = isnan(d) ? INFINITY : d - lim;
    if (excess > 0) bad++;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (bad) {
    th__fail(__FILE__, __LINE__, "%s: %d of %zu elements differ; worst [%zu]: %.9g vs ref %.9g (atol %g rtol %g)",
             what, bad, n, worst, (double)a[worst], (double)b[worst], atol, rtol);
    return 0;
  }
  return 1;
}

int th_main(int argc, char **argv, const th_case *cases) {
  const char *only = argc > 1 ? argv[1] : NULL;
  int passed = 0, failed = 0, skipped = 0, ran = 0;
  for (const th_case *c = cases; c->name; c++) {
    if (only && !strstr(c->name, only)) continue;
    case_failed = 0;
    case_skipped = 0;
    ran++;
    fprintf(stdout, "  %s ...\n", c->name);
    fflush(stdout);
    c->fn();
    if (case_failed) {
      failed++;
      fprintf(stdout, "  FAIL %s\n", c->name);
    } else if (case_skipped) {
      skipped++;
      fprintf(stdout, "  SKIP %s\n", c->name);
    } else {
      passed++;
      fprintf(stdout, "  PASS %s\n", c->name);
    }
    fflush(stdout);
  }
  if (only && ran == 0) {
    fprintf(stdout, "no case matches '%s'\n", only);
    return 2;
  }
  fprintf(stdout, "%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
