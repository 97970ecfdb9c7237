/* nn_amx_probe.c: amx_available() (nn_amx.h).
 *
 * Why a file of its own: nn_amx.c is compiled with the AMX and AVX-512 flags, and the compiler
 * may use those instructions anywhere in it, even in scalar code. The check that decides whether
 * the CPU has them must therefore be compiled for the baseline CPU, or asking for a bf16 matmul on
 * an older machine would die of SIGILL instead of getting nn_set_matmul's message. IB_AMX is
 * defined here exactly when nn_amx.c holds the real kernels (not its stub). */
#include "nn_amx.h"

#include "ib.h"

#ifndef IB_AMX

int amx_available(void) { return 0; }

#else

#include <cpuid.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };

static pthread_once_t avail_once = PTHREAD_ONCE_INIT;
static int avail;

static void avail_probe(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
  const int avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return;
  const int avx512_bf16 = (a >> 5) & 1;
  if (!(avx512f && avx512bw && amx_bf16 && amx_tile && avx512_bf16)) return;
  /* Linux (>= 5.16) keeps the 8 KB tile state out of a process until it asks for it. */
  if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return;
  avail = 1;
}

int amx_available(void) {
  IB_CHECK(pthread_once(&avail_once, avail_probe) == 0);
  return avail;
}

#endif
