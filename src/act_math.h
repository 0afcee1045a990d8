/* act_math.h -- each activation's formula and its derivative's, for one element: the one
 * definition that activation.c's kernels (multi-versioned and scalar single-row instances)
 * and the dense layer's narrow single-row kernels (layer_dense.c) inline, so that all of them
 * compute the same floats by construction; also the branch-free exp/log that the softmax and
 * the cross-entropies (loss.c) use, and the recurrent cells' fused gates (layer_rnn.c,
 * layer_lstm.c, layer_gru.c: sigmoid and tanh). Private to those files. */
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

/* NaN when @p x is NaN, else @p r: the branch-free formulas below clamp their argument (so
 * that the float-to-int conversions stay defined), which would turn a NaN into a number. */
static inline float bp__keep_nan(float x, float r)
{
    return bp__select_f(x == x, r, x);
}

/* The vectorisable transcendental functions below are branch-free (selects through the bits,
 * integer exponent arithmetic, fixed-degree polynomials) so that GCC vectorises the loops
 * that call them in the multi-versioned kernels (libm's expf/tanhf/expm1f/log1pf are a call
 * per element). No contraction (-std=c11 implies -ffp-contract=off): every kernel variant and
 * the scalar row kernels compute the same floats. Measured maximum errors against double
 * precision: tests/test_activation.c and docs/performance.md. */

/* e^x = 2^n e^r for x in [-87.3, 0]: n = round(x / ln2), r = x - n ln2 (Cody-Waite split,
 * |r| <= ln2/2); returns e^r - 1 by Cephes' degree-6 polynomial (r + r^2 p(r)) and writes
 * 2^n (built from the exponent bits) to @p scale. */
static inline float bp__exp_core(float x, float *scale)
{
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
    const int32_t bits = ((int32_t)n + 127) << 23;
    memcpy(scale, &bits, sizeof *scale);
    return p * (r * r) + r;
}

/* e^x for x <= 0 (NaN stays NaN). Relative error within 2 ulp of e^x; below -87.3 the result
 * is 0 (flushed: e^-87.3 is 1.2e-38, next to the smallest normal float), never a subnormal. */
static inline float bp__exp_neg(float x)
{
    const float xc = bp__select_f(x > -87.3f, x, -87.3f);
    float scale;
    const float er = bp__exp_core(xc, &scale) + 1.0f;
    return bp__keep_nan(x, bp__select_f(x >= -87.3f, er * scale, 0.0f));
}

/* e^x - 1 for x <= 0 without cancellation near 0: 2^n (e^r - 1) + (2^n - 1), where 2^n - 1
 * is exact and e^r - 1 is the polynomial itself (exactly e^x - 1's formula for |x| <=
 * ln2/2, where n = 0). NaN stays NaN; below -87.3 the result is -1. */
static inline float bp__expm1_neg(float x)
{
    const float xc = bp__select_f(x > -87.3f, x, -87.3f);
    float scale;
    const float em1 = bp__exp_core(xc, &scale);
    return bp__keep_nan(x, scale * em1 + (scale - 1.0f));
}

/* log(x) for a positive, normal, finite x (NaN stays NaN): x = m 2^e with m in
 * [sqrt(1/2), sqrt(2)) through the bits, log(m) by Cephes' logf polynomial in m - 1 (exact
 * by Sterbenz), e ln2 split in two parts. Within 2 ulp. */
static inline float bp__log_pos(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    float e = (float)((int32_t)(u >> 23) - 126); /* x = m 2^e, m in [0.5, 1) */
    u = (u & 0x007fffffu) | 0x3f000000u;
    float m;
    memcpy(&m, &u, sizeof m);
    const int low = m < 0.707106781186547524f;
    e = bp__select_f(low, e - 1.0f, e);
    m = bp__select_f(low, m + m, m) - 1.0f;
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * e;
    y += -0.5f * z;
    float r = m + y;
    r += 0.693359375f * e;
    return bp__keep_nan(x, r);
}

/* log(1 + u) for u in [0, 1] (NaN stays NaN): log(w) for w = 1 + u rounded, plus the first-
 * order correction (u - (w - 1)) / w for that rounding, so small u keep their digits. */
static inline float bp__log1p_unit(float u)
{
    const float w = 1.0f + u;
    return bp__log_pos(w) + (u - (w - 1.0f)) / w;
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

/* The logistic function and 1 - sigmoid(z) = sigmoid(-z), both without cancellation (the
 * other branch of the same two quotients). */
static inline float bp__sigmoid2(float z, float *one_minus)
{
    const float e = bp__exp_neg(-fabsf(z));
    const float inv = 1.0f / (1.0f + e), neg = e * inv;
    const int pos = z >= 0.0f;
    *one_minus = bp__select_f(pos, neg, inv);
    return bp__select_f(pos, inv, neg);
}

/* The same function through libm's expf (scalar; for narrow rows). */
static inline float bp__sigmoid_libm(float z)
{
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    const float e = expf(z);
    return e / (1.0f + e);
}

/* tanh, branch-free: Cephes' odd polynomial x + x^3 P(x^2) below |x| = 0.625, else
 * (1 - e) / (1 + e) with e = e^-2|x| <= 0.29 (no cancellation), sign copied from x. NaN
 * takes the polynomial (a failed >= compare) and stays NaN; +-Inf give +-1. */
static inline float bp__tanhf(float x)
{
    const float ax = fabsf(x);
    const float e = bp__exp_neg(-2.0f * ax);
    const float big = copysignf((1.0f - e) / (1.0f + e), x);
    const float s = x * x;
    float p = -5.70498872745e-3f;
    p = p * s + 2.06390887954e-2f;
    p = p * s - 5.37397155531e-2f;
    p = p * s + 1.33314422036e-1f;
    p = p * s - 3.33332819422e-1f;
    const float small = p * s * x + x;
    return bp__select_f(ax >= 0.625f, big, small);
}

#define BP__GELU_C  0.7978845608028654f /* sqrt(2 / pi) */
#define BP__GELU_A  0.044715f
#define BP__GELU_2C 1.5957691216057308f /* 2 sqrt(2 / pi) */

/* GELU's tanh form 0.5 z (1 + tanh(u)), u = C (z + A z^3), as z sigmoid(2u) (the same
 * function: 1 + tanh(u) = 2 sigmoid(2u)), which keeps its relative accuracy for z << 0
 * where 1 + tanh(u) cancels. */
static inline float bp__geluf(float z)
{
    return z * bp__sigmoidf(BP__GELU_2C * (z + BP__GELU_A * z * z * z));
}

/* d/dz z s(2u) = s + z s (1 - s) 2u'(z), 2u' = 2C (1 + 3 A z^2), with 1 - s from the other
 * branch of the sigmoid (no cancellation). */
static inline float bp__gelu_grad(float z)
{
    float om;
    const float s = bp__sigmoid2(BP__GELU_2C * (z + BP__GELU_A * z * z * z), &om);
    return s + z * (s * om) * (BP__GELU_2C * (1.0f + 3.0f * BP__GELU_A * z * z));
}

/* SiLU's derivative s (1 + z (1 - s)), s = sigmoid(z). */
static inline float bp__silu_grad(float z)
{
    float om;
    const float s = bp__sigmoid2(z, &om);
    return s * (1.0f + z * om);
}

/* softplus(z) = max(z, 0) + log(1 + e^-|z|), stable for any z. */
static inline float bp__softplusf(float z)
{
    return bp__select_f(z > 0.0f, z, 0.0f) + bp__log1p_unit(bp__exp_neg(-fabsf(z)));
}

/* ELU's e^v - 1 branch for v <= 0 (positive v take the identity: clamped to 0 here so that
 * the branch-free formula stays in its range; NaN stays NaN). */
static inline float bp__elu_neg(float alpha, float v)
{
    return alpha * bp__expm1_neg(bp__select_f(v > 0.0f, 0.0f, v));
}

/* y = f(v) for an elementwise activation @p act (softmax is row-wise: activation.c); @p narrow
 * for rows under BP__NARROW_WIDTH floats, where the sigmoid takes libm's expf (a shorter
 * dependency chain than the vector polynomial when nothing is vectorised). With a constant
 * @p act the switch folds away. */
static BP__ALWAYS_INLINE float bp__act_one(int act, const bp__act_params *p, float v, int narrow)
{
    switch (act) {
    case BP_ACT_SIGMOID: return narrow ? bp__sigmoid_libm(v) : bp__sigmoidf(v);
    case BP_ACT_TANH: return bp__tanhf(v);
    case BP_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case BP_ACT_LEAKY_RELU: return v > 0.0f ? v : p->leaky_slope * v;
    case BP_ACT_ELU: return bp__select_f(v > 0.0f, v, bp__elu_neg(p->elu_alpha, v));
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
    case BP_ACT_SILU: return dy * bp__silu_grad(z);
    case BP_ACT_SOFTPLUS: return dy * -bp__expm1_neg(-y);
    default: return dy; /* identity */
    }
}

#endif /* BP_ACT_MATH_H */
