/* rng.h: explicit-state random numbers with independent named streams.
 *
 * There is no global RNG and no time seed anywhere in ibrl (docs/style.md rule 8). Every consumer
 * owns an `rng` seeded from (config seed, role, rank, stream name), e.g.
 *   rng_seed(&r, cfg.seed, "learner", rank, "dropout");
 * Streams with different names are statistically independent, and the same four inputs always
 * give the same sequence on every machine. The generator is xoshiro256** (Blackman & Vigna);
 * the seed words come from SplitMix64 over a 64-bit FNV-1a hash of the inputs. */
#ifndef IB_RNG_H
#define IB_RNG_H

#include <stdint.h>

typedef struct rng {
  uint64_t s[4];
} rng;

/* Seeds `r` from a config seed, a role ("actor", "learner", ...), a rank or actor id, and a
 * stream name ("dropout", "noise", "sample", ...). `role` and `stream` may be NULL (""). */
void rng_seed(rng *r, uint64_t seed, const char *role, int64_t rank, const char *stream);

uint64_t rng_u64(rng *r);
/* Uniform in [0, 1), 24 random bits. */
float rng_uniform(rng *r);
/* Uniform in [0, 1), 53 random bits. */
double rng_uniform_d(rng *r);
/* Standard normal (Box-Muller; one value per call, so the state stays four words). */
float rng_normal(rng *r);
/* Uniform integer in [0, n); n must be > 0. Unbiased (rejection). */
uint32_t rng_below(rng *r, uint32_t n);
/* Writes k distinct indices from [0, n) to out, in random order (partial Fisher-Yates over a
 * small scratch array; requires k <= n <= 64). */
void rng_choose(rng *r, int n, int k, int *out);

#endif /* IB_RNG_H */
