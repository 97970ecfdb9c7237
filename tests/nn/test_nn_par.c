/* test_nn_par.c: the elementwise pool of nn.h (nn_par_for) and the arena passes that run on it.
 *
 * The pool must cover [0, n) exactly once for any n and thread count, and Adam, the Polyak EMA
 * and zero-fill over an arena large enough to be split must give the same bits at 1, 2 and 3
 * threads (the determinism the learner's same-seed tests rely on). The plain loop reference is
 * written here, not taken from nn_kernels.c, so a slicing bug cannot hide in both. Times are
 * printed for information only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "nn.h"
#include "rng.h"
#include "th.h"

/* Counts visits: each slice adds 1 to its elements. */
static void visit_slice(void *ctx, size_t lo, size_t hi) {
  unsigned char *c = ctx;
  for (size_t i = lo; i < hi; i++) c[i]++;
}

static void test_cover(void) {
  const size_t sizes[] = {1, 15, 4097, (size_t)1 << 17, ((size_t)1 << 17) + 1, 1000003};
  for (int t = 1; t <= 3; t++) {
    nn_par_set_threads(t);
    for (size_t k = 0; k < IB_ARRAY_LEN(sizes); k++) {
      size_t n = sizes[k];
      unsigned char *c = ib_xcalloc(n, 1);
      nn_par_for(visit_slice, c, n);
      size_t bad = 0;
      for (size_t i = 0; i < n; i++) bad += c[i] != 1;
      TH_CHECK_MSG(bad == 0, "threads %d, n %zu: %zu elements not visited exactly once", t, n, bad);
      free(c);
    }
  }
  nn_par_set_threads(1);
}

static void fill(float *x, size_t n, rng *r, float scale) {
  for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(r);
}

/* Adam, EMA and zero at `threads` threads on copies of the same inputs into p, m, v, tg, z. */
static void run_passes(float *p, float *m, float *v, float *tg, float *z, const float *g,
                       const float *online, size_t n, int threads) {
  nn_par_set_threads(threads);
  nn_adam_cfg cfg = nn_adam_defaults(1e-3f);
  cfg.weight_decay = 0.01f;
  for (long t = 1; t <= 3; t++) nn_adam_update(p, m, v, g, n, &cfg, t);
  nn_arena_polyak(tg, online, n, 0.01f);
  nn_arena_zero(z, n);
  nn_par_set_threads(1);
}

static void test_bit_identical(void) {
  const size_t n = 1000003; /* above the inline threshold, odd so the slices are uneven */
  rng r;
  rng_seed(&r, 7, 0, 0, "par");
  float *g = ib_xmalloc(n * sizeof(float)), *on = ib_xmalloc(n * sizeof(float));
  float *init = ib_xmalloc(n * sizeof(float));
  fill(g, n, &r, 1.0f);
  fill(on, n, &r, 1.0f);
  fill(init, n, &r, 0.1f);
  float *res[3][5];
  for (int t = 0; t < 3; t++) {
    for (int a = 0; a < 5; a++) res[t][a] = ib_xcalloc(n, sizeof(float));
    memcpy(res[t][0], init, n * sizeof(float)); /* params */
    memcpy(res[t][3], init, n * sizeof(float)); /* target */
    memcpy(res[t][4], init, n * sizeof(float)); /* to be zeroed */
    double t0 = (double)ib_now_ns();
    run_passes(res[t][0], res[t][1], res[t][2], res[t][3], res[t][4], g, on, n, t + 1);
    printf("    %d thread(s): 3 Adam + EMA + zero over %zu floats in %.2f ms\n", t + 1, n,
           ((double)ib_now_ns() - t0) / 1e6);
  }
  /* Reference: the plain loops of torch's formulas, one thread. */
  float *rp = ib_xmalloc(n * sizeof(float)), *rm = ib_xcalloc(n, sizeof(float));
  float *rv = ib_xcalloc(n, sizeof(float)), *rt = ib_xmalloc(n * sizeof(float));
  memcpy(rp, init, n * sizeof(float));
  memcpy(rt, init, n * sizeof(float));
  for (long t = 1; t <= 3; t++) {
    float step = (float)(1e-3 / (1.0 - pow(0.9, (double)t)));
    float bc2s = (float)sqrt(1.0 - pow(0.999, (double)t));
    for (size_t i = 0; i < n; i++) {
      float gi = g[i] + 0.01f * rp[i];
      rm[i] = 0.9f * rm[i] + (1.0f - 0.9f) * gi;
      rv[i] = 0.999f * rv[i] + (1.0f - 0.999f) * gi * gi;
      rp[i] -= step * rm[i] / (sqrtf(rv[i]) / bc2s + 1e-8f);
    }
  }
  for (size_t i = 0; i < n; i++) rt[i] += 0.01f * (on[i] - rt[i]);
  const float *ref[4] = {rp, rm, rv, rt};
  const char *what[5] = {"params", "adam m", "adam v", "polyak target", "zeroed arena"};
  for (int t = 0; t < 3; t++)
    for (int a = 0; a < 5; a++) {
      size_t bad = 0, first = n;
      for (size_t i = 0; i < n; i++) {
        float want = a < 4 ? ref[a][i] : 0.0f;
        if (memcmp(&res[t][a][i], &want, sizeof(float)) != 0) {
          bad++;
          if (first == n) first = i;
        }
      }
      TH_CHECK_MSG(bad == 0, "%s at %d thread(s): %zu elements differ from the 1-thread loop (first at %zu)",
                   what[a], t + 1, bad, first);
    }
  for (int t = 0; t < 3; t++)
    for (int a = 0; a < 5; a++) free(res[t][a]);
  free(g), free(on), free(init), free(rp), free(rm), free(rv), free(rt);
}

static const th_case cases[] = {
    {"pool covers every element once", test_cover},
    {"arena passes bit-identical at 1-3 threads", test_bit_identical},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
