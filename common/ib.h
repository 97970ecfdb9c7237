/* ib.h: the base of every ibrl module: status codes, the last-error message, checks that abort
 * on bugs, allocation that aborts on out-of-memory, a monotonic clock and a CRC-32.
 *
 * Policy (docs/style.md, 2.3): bugs abort through IB_CHECK / IB_ASSERT; anything the outside world
 * can cause (bad files, bad flags, bad messages) returns a negative IB_E* status and leaves a
 * human-readable message in a thread-local buffer that ib_errmsg() returns. Only main() exits. */
#ifndef IB_H
#define IB_H

#include <stddef.h>
#include <stdint.h>

/* ---- status codes: 0 is success, errors are negative ---- */
enum {
  IB_OK = 0,
  IB_EINVAL = -1,      /* a bad argument, flag, dimension or value */
  IB_EIO = -2,         /* a file or socket operation failed */
  IB_EPROTO = -3,      /* a malformed or oversized message or file */
  IB_ENONFINITE = -4,  /* NaN or Inf where a finite number was required */
  IB_EMISMATCH = -5,   /* shapes, versions or layouts differ */
  IB_ECHECKSUM = -6,   /* stored checksum does not match the content */
  IB_ENOTFOUND = -7,   /* an unknown name (task, table, key, file) */
  IB_ETIMEDOUT = -8,   /* a deadline passed */
  IB_EUNAVAIL = -9,    /* a peer or resource is not available now; try again */
  IB_EFULL = -10,      /* a bounded buffer or queue is full */
  IB_ESTATE = -11,     /* the call is not valid in the object's current state */
  IB_EMISSING = -12,   /* data that must be there is not (e.g. a gap in a chain of log files) */
};

/* The name of a status code, e.g. "IB_EINVAL (invalid argument)". Never NULL. */
const char *ib_strerror(int code);

/* Records a message for the calling thread and returns `code`, so a failing function can write
 * `return ib_fail(IB_EINVAL, "obs_dim %d is not positive (HINT: ...)", d);`. */
int ib_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The calling thread's last message set by ib_fail ("" if none). Valid until the next ib_fail. */
const char *ib_errmsg(void);

/* ---- checks: for programming errors only, never for bad input ---- */
void ib__panic(const char *file, int line, const char *expr) __attribute__((noreturn));
#define IB_CHECK(cond) ((cond) ? (void)0 : ib__panic(__FILE__, __LINE__, #cond))
#ifdef NDEBUG
#define IB_ASSERT(cond) ((void)0)
#else
#define IB_ASSERT(cond) IB_CHECK(cond)
#endif

/* ---- allocation: out-of-memory aborts with the size (docs/style.md 2.3.3) ---- */
void *ib_xmalloc(size_t n);
void *ib_xcalloc(size_t count, size_t size);
void *ib_xrealloc(void *p, size_t n);
/* 64-byte aligned, zeroed; release with free(). */
void *ib_xaligned(size_t n);
char *ib_xstrdup(const char *s);
/* The bytes this process can hope to hold: the machine's physical memory, or the address-space
 * limit (RLIMIT_AS, `ulimit -v`) when one is set and smaller; *by_rlimit (may be NULL) says
 * which. For refusing a size up front with a usage error instead of aborting in ib_xmalloc.
 * 0 if neither can be read. */
uint64_t ib_mem_limit(int *by_rlimit);

/* ---- time ---- */
uint64_t ib_now_ns(void); /* CLOCK_MONOTONIC in nanoseconds */
double ib_now_s(void);    /* the same, in seconds */

/* ---- checksums ---- */
/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32). Pass 0 as `crc` to start, or a previous
 * result to continue over more bytes. */
uint32_t ib_crc32(uint32_t crc, const void *data, size_t n);

/* ---- fixed-width fields in byte buffers (native byte order, any alignment) ---- */
static inline void ib_put_u32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }
static inline void ib_put_u64(void *p, uint64_t v) { __builtin_memcpy(p, &v, 8); }
static inline uint32_t ib_get_u32(const void *p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}
static inline uint64_t ib_get_u64(const void *p) {
  uint64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

/* ---- small numeric helpers ---- */
/* Index of the first non-finite element of x[0..n), or -1 if all are finite. */
long ib_first_nonfinite(const float *x, size_t n);

#define IB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define IB_MAX(a, b) ((a) > (b) ? (a) : (b))
#define IB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* IB_H */
