/* test_dist.c (label mpi, run under mpiexec -n 2): the MPI wrappers of common/dist.
 * Values are computed from the rank so that every rank knows the exact expected result. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "ib.h"
#include "th.h"

static void test_rank_size(void) {
  TH_CHECK(dist_active());
  TH_CHECK(dist_size() >= 1);
  TH_CHECK(dist_rank() >= 0 && dist_rank() < dist_size());
}

static void test_allreduce_mean(void) {
  int rank = dist_rank(), size = dist_size();
  enum { N = 1000 };
  float *x = ib_xmalloc(N * sizeof(float));
  /* Values exactly representable, sums too: the mean is exact. */
  for (int i = 0; i < N; i++) x[i] = (float)(rank * 64) + 0.25f * (float)i;
  dist_stats before;
  dist_stats_get(&before);
  TH_CHECK_EQ_INT(dist_allreduce_mean(x, N), IB_OK);
  int bad = 0;
  for (int i = 0; i < N; i++) {
    float want = (float)(64.0 * (size - 1) / 2.0) + 0.25f * (float)i;
    if (x[i] != want && bad++ < 3) TH_CHECK_MSG(0, "x[%d] = %.9g, want %.9g", i, x[i], want);
  }
  dist_stats after;
  dist_stats_get(&after);
  TH_CHECK_EQ_INT(after.allreduce_calls, before.allreduce_calls + 1);
  TH_CHECK(after.allreduce_bytes - before.allreduce_bytes == N * sizeof(float));
  /* Not exactly representable means: still bit-identical on every rank. */
  for (int i = 0; i < N; i++) x[i] = 1.0f / (float)(3 + rank + i);
  TH_CHECK_EQ_INT(dist_allreduce_mean(x, N), IB_OK);
  TH_CHECK_EQ_INT(dist_check_same_u32(ib_crc32(0, x, N * sizeof(float)), "mean", NULL), IB_OK);
  TH_CHECK_EQ_INT(dist_allreduce_mean(NULL, 0), IB_OK);
  free(x);
}

static void test_bcast(void) {
  int rank = dist_rank();
  float x[37];
  for (int i = 0; i < 37; i++) x[i] = rank == 0 ? (float)i * 1.5f : -1.0f;
  TH_CHECK_EQ_INT(dist_bcast_f(x, 37, 0), IB_OK);
  for (int i = 0; i < 37; i++) TH_CHECK_MSG(x[i] == (float)i * 1.5f, "x[%d] = %g after bcast", i, x[i]);
  char s[16];
  snprintf(s, sizeof s, "%s", rank == 0 ? "hello" : "zzzzz");
  TH_CHECK_EQ_INT(dist_bcast_bytes(s, sizeof s, 0), IB_OK);
  TH_CHECK(strcmp(s, "hello") == 0);
}

static void test_reductions(void) {
  int rank = dist_rank(), size = dist_size();
  double v[2] = {(double)rank, 1.0};
  TH_CHECK_EQ_INT(dist_allreduce_sum_d(v, 2), IB_OK);
  TH_CHECK_NEAR(v[0], size * (size - 1) / 2.0, 0.0);
  TH_CHECK_NEAR(v[1], size, 0.0);
  double m[1] = {(double)rank};
  TH_CHECK_EQ_INT(dist_allreduce_max_d(m, 1), IB_OK);
  TH_CHECK_NEAR(m[0], size - 1, 0.0);
  int mine[2] = {rank, rank * 10};
  int *all = ib_xcalloc((size_t)size * 2, sizeof(int));
  TH_CHECK_EQ_INT(dist_gather_bytes(all, mine, sizeof mine, 0), IB_OK);
  if (rank == 0)
    for (int r = 0; r < size; r++) TH_CHECK(all[2 * r] == r && all[2 * r + 1] == 10 * r);
  free(all);
  TH_CHECK_EQ_INT(dist_barrier(), IB_OK);
}

static void test_check_same(void) {
  int rank = dist_rank(), size = dist_size();
  int bad = 99;
  TH_CHECK_EQ_INT(dist_check_same_u32(0xabcdu, "same", &bad), IB_OK);
  TH_CHECK_EQ_INT(bad, -1);
  if (size < 2) {
    th_skip("a mismatch needs 2 ranks");
    return;
  }
  /* The last rank differs: every rank gets the error naming it. */
  uint32_t v = rank == size - 1 ? 0x1234u : 0xabcdu;
  TH_CHECK_EQ_INT(dist_check_same_u32(v, "weights", &bad), IB_EMISMATCH);
  TH_CHECK_EQ_INT(bad, size - 1);
  char want[32];
  snprintf(want, sizeof want, "rank %d", size - 1);
  TH_CHECK_MSG(strstr(ib_errmsg(), want) && strstr(ib_errmsg(), "weights") && strstr(ib_errmsg(), "HINT"),
               "message '%s'", ib_errmsg());
}

static const th_case cases[] = {
    {"rank and size", test_rank_size},
    {"allreduce mean", test_allreduce_mean},
    {"broadcast", test_bcast},
    {"sum, max, gather, barrier", test_reductions},
    {"checksum comparison names the rank", test_check_same},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv) != IB_OK) {
    fprintf(stderr, "test_dist: %s\n", ib_errmsg());
    return 1;
  }
  int rc = th_main(argc, argv, cases);
  dist_finalize();
  return rc;
}
