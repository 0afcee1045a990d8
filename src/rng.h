/*
 * rng.h -- seeded random numbers (rng.c).
 */
#ifndef BP_RNG_H
#define BP_RNG_H

#include "util.h"

/* ------------------------------------------------------------------------------------------
 * Random numbers: xoshiro256** seeded through splitmix64 (portable, documented, fast)
 * ----------------------------------------------------------------------------------------*/

typedef struct bp__rng {
    uint64_t s[4];
} bp__rng;

void bp__rng_seed(bp__rng *r, uint64_t seed);
uint64_t bp__rng_next(bp__rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float bp__rng_uniform(bp__rng *r);
/* Standard normal (Box-Muller on 53-bit uniforms), in double. */
double bp__rng_normal(bp__rng *r);
/* Uniform integer in [0, bound), unbiased (Lemire). bound >= 1. */
uint64_t bp__rng_below(bp__rng *r, uint64_t bound);

#endif /* BP_RNG_H */
