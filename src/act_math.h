/* act_math.h -- each activation's formula and its derivative's, for one element: the one
 * definition that activation.c's kernels (multi-versioned and scalar single-row instances)
 * and the dense layer's narrow single-row kernels (layer_dense.c) inline, so that all of them
 * compute the same floats by construction. Private to those two files. */
#ifndef BP_ACT_MATH_H
#define BP_ACT_MATH_H

#include "activation.h"

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

/* y = f(v) for an elementwise activation @p act (softmax is row-wise: activation.c); @p narrow
 * for rows under BP__NARROW_WIDTH floats, where the sigmoid takes libm's expf (a shorter
 * dependency chain than the vector polynomial when nothing is vectorised). With a constant
 * @p act the switch folds away. */
static BP__ALWAYS_INLINE float bp__act_one(int act, const bp__act_params *p, float v, int narrow)
{
    switch (act) {
    case BP_ACT_SIGMOID: return narrow ? bp__sigmoid_libm(v) : bp__sigmoidf(v);
    case BP_ACT_TANH: return tanhf(v);
    case BP_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case BP_ACT_LEAKY_RELU: return v > 0.0f ? v : p->leaky_slope * v;
    case BP_ACT_ELU: return v > 0.0f ? v : p->elu_alpha * expm1f(v);
    case BP_ACT_GELU: return bp__geluf(v);
    case BP_ACT_SILU: return v * bp__sigmoidf(v);
    case BP_ACT_SOFTPLUS: return bp__softplusf(v);
    default: return v; /* identity */
    }
}

/* dz = dy f'(z) for an elementwise activation @p act, from y = f(z) wherever the derivative
 * allows (z is read only for GELU and SiLU: pass anything for the others). ReLU and leaky
 * ReLU are selects, not products with a 0/1 factor: GCC does not if-convert the product
 * under -ftrapping-math, and a branch on a random sign pattern mispredicts half the time
 * (measured: 20% of a CNN's training step). Softplus: sigmoid(z) = 1 - e^-softplus(z). */
static BP__ALWAYS_INLINE float bp__act_grad_one(int act, const bp__act_params *p, float z, float y,
                                                float dy)
{
    switch (act) {
    case BP_ACT_SIGMOID: return dy * (y * (1.0f - y));
    case BP_ACT_TANH: return dy * (1.0f - y * y);
    case BP_ACT_RELU: return y > 0.0f ? dy : 0.0f;
    case BP_ACT_LEAKY_RELU: return y > 0.0f ? dy : p->leaky_slope * dy;
    case BP_ACT_ELU: return dy * (y > 0.0f ? 1.0f : y + p->elu_alpha);
    case BP_ACT_GELU: return dy * bp__gelu_grad(z);
    case BP_ACT_SILU: return dy * (bp__sigmoidf(z) * (1.0f + z * (1.0f - bp__sigmoidf(z))));
    case BP_ACT_SOFTPLUS: return dy * (-expm1f(-y));
    default: return dy; /* identity */
    }
}

#endif /* BP_ACT_MATH_H */
