/* ib.c: status strings, the per-thread error message, aborting allocation, clock and CRC-32. */
#define _POSIX_C_SOURCE 200809L
#include "ib.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char errbuf[1024];

const char *ib_strerror(int code) {
  switch (code) {
  case IB_OK: return "IB_OK (success)";
  case IB_EINVAL: return "IB_EINVAL (invalid argument)";
  case IB_EIO: return "IB_EIO (input/output error)";
  case IB_EPROTO: return "IB_EPROTO (malformed message or file)";
  case IB_ENONFINITE: return "IB_ENONFINITE (NaN or Inf)";
  case IB_EMISMATCH: return "IB_EMISMATCH (shape or version mismatch)";
  case IB_ECHECKSUM: return "IB_ECHECKSUM (checksum mismatch)";
  case IB_ENOTFOUND: return "IB_ENOTFOUND (not found)";
  case IB_ETIMEDOUT: return "IB_ETIMEDOUT (deadline exceeded)";
  case IB_EUNAVAIL: return "IB_EUNAVAIL (unavailable)";
  case IB_EFULL: return "IB_EFULL (full)";
  case IB_ESTATE: return "IB_ESTATE (invalid state)";
  case IB_EMISSING: return "IB_EMISSING (data missing)";
  default: return "unknown ibrl status";
  }
}

int ib_fail(int code, const char *fmt, ...) {
  /* Formatted into a scratch buffer first: callers may pass ib_errmsg() itself as an argument
   * (to wrap a cause in more context), and vsnprintf into the buffer it reads from is undefined
   * (it printed an empty or garbled cause). */
  static _Thread_local char tmp[sizeof errbuf];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  memcpy(errbuf, tmp, sizeof errbuf);
  return code;
}

const char *ib_errmsg(void) { return errbuf; }

void ib__panic(const char *file, int line, const char *expr) {
  fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
  fflush(stderr);
  abort();
}

static void oom(size_t n) {
  fprintf(stderr, "ibrl: out of memory allocating %zu bytes\n", n);
  abort();
}

uint64_t ib_mem_limit(int *by_rlimit) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  uint64_t lim = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
  struct rlimit rl;
  int as = getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (lim == 0 || (uint64_t)rl.rlim_cur < lim);
  if (as) lim = (uint64_t)rl.rlim_cur;
  if (by_rlimit) *by_rlimit = as;
  return lim;
}

void *ib_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *ib_xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) oom(count * size);
  return p;
}

void *ib_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

void *ib_xaligned(size_t n) {
  size_t rounded = (n + 63) / 64 * 64;
  void *p = aligned_alloc(64, rounded ? rounded : 64);
  if (!p) oom(n);
  memset(p, 0, rounded ? rounded : 64);
  return p;
}

char *ib_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = ib_xmalloc(n);
  memcpy(d, s, n);
  return d;
}

uint64_t ib_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double ib_now_s(void) { return (double)ib_now_ns() * 1e-9; }

/* Table-driven CRC-32 with the reflected polynomial 0xEDB88320; the table is built on first use. */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

uint32_t ib_crc32(uint32_t crc, const void *data, size_t n) {
  pthread_once(&crc_once, crc_init);
  const unsigned char *p = data;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

long ib_first_nonfinite(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return (long)i;
  return -1;
}
