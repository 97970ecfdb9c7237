/* bench_main.c: `ibrl-bench <what> [flags]`, the committed benchmarks of ibrl.
 *
 * Each benchmark lives in its own bench_<what>.c and defines `int bench_<what>(int argc, char
 * **argv)`; CMake compiles the ones present and defines IB_BENCH_<WHAT> for each, so this table
 * lists exactly what was built. Benchmarks print medians and the peer figure measured in the same
 * run; timings are never asserted by tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn.h"

typedef struct bench_entry {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *what;
} bench_entry;

#define BENCH_DECL(x) int bench_##x(int argc, char **argv);
#ifdef IB_BENCH_NN
BENCH_DECL(nn)
#endif
#ifdef IB_BENCH_ENVS
BENCH_DECL(envs)
#endif
#ifdef IB_BENCH_STORE
BENCH_DECL(store)
#endif
#ifdef IB_BENCH_REPLAY
BENCH_DECL(replay)
#endif
#ifdef IB_BENCH_LEARNER
BENCH_DECL(learner)
#endif
#ifdef IB_BENCH_E2E
BENCH_DECL(e2e)
#endif
#ifdef IB_BENCH_GEMM
BENCH_DECL(gemm)
#endif
#ifdef IB_BENCH_SOAK
BENCH_DECL(soak)
#endif

static const bench_entry benches[] = {
#ifdef IB_BENCH_NN
    {"nn", bench_nn, "forward+backward+Adam of the paper's critic ensemble and actor vs plain sgemm"},
#endif
#ifdef IB_BENCH_ENVS
    {"envs", bench_envs, "env steps/s per task"},
#endif
#ifdef IB_BENCH_STORE
    {"store", bench_store, "in-process replay store: batch gathering, checkpoints, write-ahead log"},
#endif
#ifdef IB_BENCH_REPLAY
    {"replay", bench_replay, "replay insert/sample throughput over loopback gRPC"},
#endif
#ifdef IB_BENCH_LEARNER
    {"learner", bench_learner, "one IBRL learning step (5 critic + 1 actor update)"},
#endif
#ifdef IB_BENCH_E2E
    {"e2e", bench_e2e, "env steps/s and updates/s of the whole system"},
#endif
#ifdef IB_BENCH_GEMM
    {"gemm", bench_gemm, "AMX bf16x3/bf16 matrix products vs cblas_sgemm on the learner's shapes (1 thread)"},
#endif
#ifdef IB_BENCH_SOAK
    {"soak", bench_soak, "an ibrl-replay child under mixed gRPC traffic: RSS bounded by configuration and flat"},
#endif
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
  fprintf(f, "usage: ibrl-bench <benchmark> [flags]   (ibrl-bench <benchmark> --help for its flags)\n\nbenchmarks:\n");
  for (const bench_entry *b = benches; b->name; b++) fprintf(f, "  %-8s %s\n", b->name, b->what);
  fprintf(f, "\nexit codes: 0 done, 1 a benchmark failed while running (or a bound given by its flags was\n"
             "exceeded), 2 bad usage (no or an unknown benchmark, bad flags) or setup.\n");
}

int main(int argc, char **argv) {
  /* `nn` alternates ibrl's own thread team with sgemm peers on OpenBLAS's thread pool. OpenBLAS's
   * idle workers busy-wait for 2^28 polls after each call (its THREAD_TIMEOUT of 28), so they keep
   * the core that ibrl's team needs next (measured at 2 threads: critic step 149 ms with them
   * spinning, 84 ms without). With OPENBLAS_THREAD_TIMEOUT=4 they go to sleep at once, which
   * also lets the peers start each call from idle cores. The variable is read when libopenblas
   * loads, so it is set here and the program re-executed, once. */
  if (argc >= 2 && !strcmp(argv[1], "nn") && !getenv("OPENBLAS_THREAD_TIMEOUT")) {
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    nn_blas_autoselect(argv); /* re-executes itself if it must set the kernel too */
    execv("/proc/self/exe", argv);
    fprintf(stderr, "ibrl-bench: could not re-execute with OPENBLAS_THREAD_TIMEOUT=4; the 2-thread figures will "
            "suffer from OpenBLAS's spinning workers (HINT: export OPENBLAS_THREAD_TIMEOUT=4)\n");
  }
  nn_blas_autoselect(argv); /* the right OpenBLAS kernel for this CPU, before any timing */
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const bench_entry *b = benches; b->name; b++)
    if (!strcmp(b->name, argv[1])) return b->fn(argc - 1, argv + 1);
  fprintf(stderr, "ibrl-bench: unknown benchmark '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
