/* test_base.c: the base module (status strings, error messages, CRC-32) and the RNG streams. */
#include <math.h>
#include <string.h>

#include "ib.h"
#include "rng.h"
#include "th.h"

static void test_crc32_known_value(void) {
  /* The standard check value of CRC-32/IEEE for the ASCII digits 1..9. */
  TH_CHECK_EQ_INT(ib_crc32(0, "123456789", 9), 0xCBF43926u);
  /* Incremental use gives the same result as one call. */
  uint32_t c = ib_crc32(0, "1234", 4);
  TH_CHECK_EQ_INT(ib_crc32(c, "56789", 5), 0xCBF43926u);
}

static void test_fail_message(void) {
  int rc = ib_fail(IB_EINVAL, "obs_dim %d is bad", -3);
  TH_CHECK_EQ_INT(rc, IB_EINVAL);
  TH_CHECK(strcmp(ib_errmsg(), "obs_dim -3 is bad") == 0);
  TH_CHECK(strstr(ib_strerror(IB_ECHECKSUM), "checksum") != NULL);
}

/* Wrapping a cause in context passes ib_errmsg() back into ib_fail (actx.c, lrun.c do). */
static void test_fail_wraps_its_own_message(void) {
  ib_fail(IB_EUNAVAIL, "shard %d is down", 2);
  int rc = ib_fail(IB_EUNAVAIL, "actor 7: %s (HINT: is ibrl-replay running?)", ib_errmsg());
  TH_CHECK_EQ_INT(rc, IB_EUNAVAIL);
  TH_CHECK_MSG(strcmp(ib_errmsg(), "actor 7: shard 2 is down (HINT: is ibrl-replay running?)") == 0, "got '%s'",
               ib_errmsg());
}

static void test_rng_deterministic_and_streams_independent(void) {
  rng a, b, c, d;
  rng_seed(&a, 7, "learner", 0, "dropout");
  rng_seed(&b, 7, "learner", 0, "dropout");
  rng_seed(&c, 7, "learner", 1, "dropout");
  rng_seed(&d, 7, "learner", 0, "noise");
  int same_ab = 1, same_ac = 0, same_ad = 0;
  for (int i = 0; i < 100; i++) {
    uint64_t x = rng_u64(&a), y = rng_u64(&b), z = rng_u64(&c), w = rng_u64(&d);
    same_ab &= x == y;
    same_ac += x == z;
    same_ad += x == w;
  }
  TH_CHECK(same_ab);
  TH_CHECK_EQ_INT(same_ac, 0);
  TH_CHECK_EQ_INT(same_ad, 0);
}

static void test_rng_moments(void) {
  rng r;
  rng_seed(&r, 1, "test", 0, "moments");
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  float umin = 1, umax = 0;
  for (int i = 0; i < n; i++) {
    float u = rng_uniform(&r);
    su += u;
    if (u < umin) umin = u;
    if (u > umax) umax = u;
    double z = rng_normal(&r);
    sn += z;
    sn2 += z * z;
  }
  TH_CHECK(umin >= 0.0f && umax < 1.0f);
  TH_CHECK_NEAR(su / n, 0.5, 0.005);
  TH_CHECK_NEAR(sn / n, 0.0, 0.01);
  TH_CHECK_NEAR(sn2 / n, 1.0, 0.02);
}

static void test_rng_below_and_choose(void) {
  rng r;
  rng_seed(&r, 3, "test", 0, "below");
  int counts[5] = {0};
  for (int i = 0; i < 50000; i++) {
    uint32_t k = rng_below(&r, 5);
    TH_CHECK(k < 5);
    if (k < 5) counts[k]++;
  }
  for (int i = 0; i < 5; i++) TH_CHECK_NEAR(counts[i] / 50000.0, 0.2, 0.01);
  int pair_counts[5][5] = {{0}};
  for (int i = 0; i < 20000; i++) {
    int out[2];
    rng_choose(&r, 5, 2, out);
    TH_CHECK(out[0] != out[1]);
    TH_CHECK(out[0] >= 0 && out[0] < 5 && out[1] >= 0 && out[1] < 5);
    pair_counts[out[0]][out[1]]++;
  }
  /* 20 ordered pairs, each with probability 1/20. */
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 5; j++)
      if (i != j) TH_CHECK_NEAR(pair_counts[i][j] / 20000.0, 0.05, 0.01);
}

static const th_case cases[] = {
    {"crc32 known value", test_crc32_known_value},
    {"ib_fail message", test_fail_message},
    {"ib_fail wraps its own message", test_fail_wraps_its_own_message},
    {"rng deterministic, streams independent", test_rng_deterministic_and_streams_independent},
    {"rng uniform and normal moments", test_rng_moments},
    {"rng below and choose", test_rng_below_and_choose},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
