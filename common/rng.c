/* rng.c: xoshiro256** with SplitMix64 seeding; see rng.h for the contract. */
#include "rng.h"

#include <math.h>

#include "ib.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t fnv1a(uint64_t h, const void *data, unsigned long n) {
  const unsigned char *p = data;
  for (unsigned long i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001B3ull;
  }
  return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s) {
  if (!s) s = "";
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001B3ull;
  }
  /* a separator so that ("ab","c") and ("a","bc") differ */
  h ^= 0xff;
  h *= 0x100000001B3ull;
  return h;
}

void rng_seed(rng *r, uint64_t seed, const char *role, int64_t rank, const char *stream) {
  uint64_t h = 0xCBF29CE484222325ull;
  h = fnv1a(h, &seed, sizeof seed);
  h = fnv1a_str(h, role);
  h = fnv1a(h, &rank, sizeof rank);
  h = fnv1a_str(h, stream);
  uint64_t x = h;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
  /* xoshiro's only bad state is all zeros; SplitMix64 cannot produce four zero words in a row,
   * but keep the guard explicit. */
  if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

float rng_uniform(rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double rng_uniform_d(rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

float rng_normal(rng *r) {
  /* Box-Muller on 53-bit uniforms; u1 in (0, 1] so log() is finite. The second value of the
   * pair is discarded to keep the state a plain 256-bit word (no hidden cache). */
  double u1 = 1.0 - rng_uniform_d(r);
  double u2 = rng_uniform_d(r);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t rng_below(rng *r, uint32_t n) {
  IB_CHECK(n > 0);
  /* Lemire's multiply-shift with rejection of the biased low region. */
  uint64_t m = (uint64_t)(uint32_t)(rng_u64(r) >> 32) * n;
  uint32_t lo = (uint32_t)m;
  if (lo < n) {
    uint32_t thresh = (uint32_t)(-n) % n;
    while (lo < thresh) {
      m = (uint64_t)(uint32_t)(rng_u64(r) >> 32) * n;
      lo = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

void rng_choose(rng *r, int n, int k, int *out) {
  IB_CHECK(k >= 0 && k <= n && n <= 64);
  int idx[64];
  for (int i = 0; i < n; i++) idx[i] = i;
  for (int i = 0; i < k; i++) {
    int j = i + (int)rng_below(r, (uint32_t)(n - i));
    int t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
    out[i] = idx[i];
  }
}
