/* act_math.h -- the scalar activation functions of activation.c's kernels (the multi-versioned
 * and the scalar single-row instances compute the same floats by construction). Private:
 * included by activation.c only. */
#ifndef BP_ACT_MATH_H
#define BP_ACT_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* a if take, else b, through the bits: a conditional on a float comparison is kept as a
 * branch under -ftrapping-math (GCC will not speculate the operations around a compare that
 * may trap), which stops a loop from vectorising. */
static inline float bp__select_f(int take, float a, float b)
{
    uint32_t ua, ub;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    const uint32_t m = 0u - (uint32_t)take;
    const uint32_t r = (ua & m) | (ub & ~m);
    float out;
    memcpy(&out, &r, sizeof out);
    return out;
}

/* e^x for x <= 0, branch-free so that loops calling it vectorise (libm's expf is a call
 * per element): x = n ln2 + r with |r| <= ln2/2, e^r by Cephes' degree-6 polynomial, 2^n
 * through the exponent bits. Relative error within 2 ulp of e^x; below -87.3 the result
 * is e^-87.3 (1.2e-38) rather than a subnormal or 0. */
static inline float bp__exp_neg(float x)
{
    x = bp__select_f(x > -87.3f, x, -87.3f);
    const float fx = x * 1.44269504088896341f + 0.5f;
    float n = (float)(int32_t)fx; /* floor(fx) for fx in (-126, 1] */
    n = bp__select_f(n > fx, n - 1.0f, n);
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float er = p * (r * r) + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return er * scale;
}

/* The logistic function, branch-free: e = e^-|z| never overflows; the sign picks 1/(1+e)
 * or e/(1+e) by a bit mask (a conditional compiled to a branch that XOR-like data
 * mispredicts half the time). */
static inline float bp__sigmoidf(float z)
{
    const float e = bp__exp_neg(-fabsf(z));
    const float inv = 1.0f / (1.0f + e), neg = e * inv;
    return bp__select_f(z >= 0.0f, inv, neg);
}

/* The same function through libm's expf (scalar; for narrow rows). */
static inline float bp__sigmoid_libm(float z)
{
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    const float e = expf(z);
    return e / (1.0f + e);
}

#define BP__GELU_C 0.7978845608028654f /* sqrt(2 / pi) */
#define BP__GELU_A 0.044715f

static inline float bp__geluf(float z)
{
    return 0.5f * z * (1.0f + tanhf(BP__GELU_C * (z + BP__GELU_A * z * z * z)));
}

static inline float bp__gelu_grad(float z)
{
    const float t = tanhf(BP__GELU_C * (z + BP__GELU_A * z * z * z));
    return 0.5f * (1.0f + t) +
           0.5f * z * (1.0f - t * t) * BP__GELU_C * (1.0f + 3.0f * BP__GELU_A * z * z);
}

static inline float bp__softplusf(float z)
{
    return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z)));
}

#endif /* BP_ACT_MATH_H */
