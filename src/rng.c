/* rng.c -- xoshiro256** (Blackman & Vigna, public domain), seeded with splitmix64.
 * Portable and identical on every platform, so a seed reproduces a model everywhere. */
#include "util.h"
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void bp__rng_seed(bp__rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t bp__rng_next(bp__rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float bp__rng_uniform(bp__rng *r)
{
    return (float)(bp__rng_next(r) >> 40) * 0x1.0p-24f;
}

double bp__rng_normal(bp__rng *r)
{
    /* Box-Muller; u1 in (0, 1] so log() is finite. One value per call keeps the stream
     * position simple to reason about (and to checkpoint). */
    const double u1 = ((double)(bp__rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = (double)(bp__rng_next(r) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

uint64_t bp__rng_below(bp__rng *r, uint64_t bound)
{
    /* Unbiased: reject the lowest (2^64 mod bound) values, then reduce. */
    const uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        const uint64_t x = bp__rng_next(r);
        if (x >= threshold) return x % bound;
    }
}
