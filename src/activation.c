/* activation.c -- elementwise activations fused with the bias add, and their derivatives.
 *
 * Forward is one pass: z = acc + b, y = f(z). Backward overwrites dy with dz = dy * f'(z),
 * computed from y wherever the derivative allows (sigmoid, tanh, ReLU family, ELU,
 * softplus), so z is only kept for GELU, SiLU and softmax (whose z gives exact log-probs). */
#include "internal.h"

#include <math.h>
#include <string.h>

int bp__act_valid(int act) { return act >= BP_ACT_IDENTITY && act <= BP_ACT_SOFTMAX; }

const char *bp__act_name(int act)
{
    static const char *const names[] = {"identity", "sigmoid", "tanh", "relu",     "leaky_relu",
                                        "elu",      "gelu",    "silu", "softplus", "softmax"};
    return bp__act_valid(act) ? names[act] : "invalid";
}

int bp__act_needs_z(int act)
{
    return act == BP_ACT_GELU || act == BP_ACT_SILU || act == BP_ACT_SOFTMAX;
}

/* a if take, else b, through the bits: a conditional on a float comparison is kept as a
 * branch under -ftrapping-math (GCC will not speculate the operations around a compare that
 * may trap), which stops a loop from vectorising. */
static inline float select_f(int take, float a, float b)
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
static inline float exp_neg(float x)
{
    x = select_f(x > -87.3f, x, -87.3f);
    const float fx = x * 1.44269504088896341f + 0.5f;
    float n = (float)(int32_t)fx; /* floor(fx) for fx in (-126, 1] */
    n = select_f(n > fx, n - 1.0f, n);
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
static inline float sigmoidf(float z)
{
    const float e = exp_neg(-fabsf(z));
    const float inv = 1.0f / (1.0f + e), neg = e * inv;
    return select_f(z >= 0.0f, inv, neg);
}

/* The same function through libm's expf (scalar; for narrow rows). */
static inline float sigmoid_libm(float z)
{
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    const float e = expf(z);
    return e / (1.0f + e);
}

#define GELU_C 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

static inline float geluf(float z)
{
    return 0.5f * z * (1.0f + tanhf(GELU_C * (z + GELU_A * z * z * z)));
}

static inline float gelu_grad(float z)
{
    const float t = tanhf(GELU_C * (z + GELU_A * z * z * z));
    return 0.5f * (1.0f + t) + 0.5f * z * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * z * z);
}

static inline float softplusf(float z) { return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))); }

/* One row-wise loop per activation: the switch is outside the loops, so each inner loop is
 * a simple map the compiler can vectorise. */
#define BP__ROWS(body)                                                                            \
    if (z != NULL) {                                                                              \
        for (size_t i = 0; i < n; i++) {                                                          \
            const float *restrict ai = acc + i * out;                                             \
            float *restrict yi = y + i * out;                                                     \
            float *restrict zi = z + i * out;                                                     \
            for (size_t j = 0; j < out; j++) {                                                    \
                const float v = ai[j] + b[j];                                                     \
                zi[j] = v;                                                                        \
                yi[j] = (body);                                                                   \
            }                                                                                     \
        }                                                                                         \
    } else if (acc == y) {                                                                        \
        /* In place (the dense layer's case): one restrict pointer, or the vectoriser's       \
         * run-time overlap check sees acc == y and falls back to the scalar loop. */          \
        for (size_t i = 0; i < n; i++) {                                                          \
            float *restrict yi = y + i * out;                                                     \
            for (size_t j = 0; j < out; j++) {                                                    \
                const float v = yi[j] + b[j];                                                     \
                yi[j] = (body);                                                                   \
            }                                                                                     \
        }                                                                                         \
    } else {                                                                                      \
        for (size_t i = 0; i < n; i++) {                                                          \
            const float *ai = acc + i * out; /* may overlap yi */                                 \
            float *yi = y + i * out;                                                              \
            for (size_t j = 0; j < out; j++) {                                                    \
                const float v = ai[j] + b[j];                                                     \
                yi[j] = (body);                                                                   \
            }                                                                                     \
        }                                                                                         \
    }

/* The bodies are instantiated twice: as multi-versioned kernels and as scalar single-row
 * functions (BP__SCALAR). The kernels are static: GCC gives the ifunc and resolver symbols
 * of an extern multi-versioned function default visibility, which would export them from
 * the library. */
static BP__ALWAYS_INLINE void act_forward_body(int act, const bp__act_params *p, size_t n,
                                               size_t out, const float *acc, const float *b,
                                               float *z, float *y)
{
    /* acc: [n x out] (may alias y), b: [out], z: [n x out] or NULL, y: [n x out] */
    switch (act) {
    case BP_ACT_IDENTITY: BP__ROWS(v) break;
    case BP_ACT_SIGMOID:
        /* Rows narrower than a vector run scalar, where libm's table-driven expf has a
         * shorter dependency chain than the polynomial. */
        if (out < 16) {
            BP__ROWS(sigmoid_libm(v))
        } else {
            BP__ROWS(sigmoidf(v))
        }
        break;
    case BP_ACT_TANH: BP__ROWS(tanhf(v)) break;
    case BP_ACT_RELU: BP__ROWS(v > 0.0f ? v : 0.0f) break;
    case BP_ACT_LEAKY_RELU: {
        const float s = p->leaky_slope;
        BP__ROWS(v > 0.0f ? v : s * v)
        break;
    }
    case BP_ACT_ELU: {
        const float a = p->elu_alpha;
        BP__ROWS(v > 0.0f ? v : a * expm1f(v))
        break;
    }
    case BP_ACT_GELU: BP__ROWS(geluf(v)) break;
    case BP_ACT_SILU: BP__ROWS(v * sigmoidf(v)) break;
    case BP_ACT_SOFTPLUS: BP__ROWS(softplusf(v)) break;
    case BP_ACT_SOFTMAX:
        for (size_t i = 0; i < n; i++) {
            const float *ai = acc + i * out;
            float *yi = y + i * out;
            float *zi = z != NULL ? z + i * out : NULL;
            float mx = -INFINITY;
            for (size_t j = 0; j < out; j++) {
                const float v = ai[j] + b[j];
                if (zi != NULL) zi[j] = v;
                yi[j] = v;
                mx = v > mx ? v : mx;
            }
            float sum = 0.0f;
            for (size_t j = 0; j < out; j++) {
                yi[j] = exp_neg(yi[j] - mx);
                sum += yi[j];
            }
            const float inv = 1.0f / sum;
            for (size_t j = 0; j < out; j++) yi[j] *= inv;
        }
        break;
    default: break; /* validated by the caller */
    }
}

#undef BP__ROWS

BP__KERNEL
static void act_forward(int act, const bp__act_params *p, size_t n, size_t out,
                        const float *acc, const float *b, float *z, float *y)
{
    act_forward_body(act, p, n, out, acc, b, z, y);
}

void bp__act_forward(int act, const bp__act_params *p, size_t n, size_t out, const float *acc,
                     const float *b, float *z, float *y)
{
    act_forward(act, p, n, out, acc, b, z, y);
}

BP__SCALAR
void bp__act_forward_row(int act, const bp__act_params *p, size_t out, const float *b, float *z,
                         float *y)
{
    act_forward_body(act, p, 1, out, y, b, z, y);
}

#define BP__MAP(expr)                                                                             \
    for (size_t k = 0; k < total; k++) dy[k] *= (expr);

static BP__ALWAYS_INLINE void act_backward_body(int act, const bp__act_params *p, size_t n,
                                                size_t out, const float *restrict z,
                                                const float *restrict y, float *restrict dy)
{
    /* z, y, dy: [n x out]; dy becomes dz in place. */
    const size_t total = n * out;
    switch (act) {
    case BP_ACT_IDENTITY: break;
    case BP_ACT_SIGMOID: BP__MAP(y[k] * (1.0f - y[k])) break;
    case BP_ACT_TANH: BP__MAP(1.0f - y[k] * y[k]) break;
    /* ReLU and leaky ReLU as selects, not products with a 0/1 factor: GCC does not
     * if-convert the product under -ftrapping-math, and a branch on a random sign pattern
     * mispredicts half the time (measured: 20% of a CNN's training step). */
    case BP_ACT_RELU:
        for (size_t k = 0; k < total; k++) dy[k] = y[k] > 0.0f ? dy[k] : 0.0f;
        break;
    case BP_ACT_LEAKY_RELU: {
        const float s = p->leaky_slope;
        for (size_t k = 0; k < total; k++) dy[k] = y[k] > 0.0f ? dy[k] : s * dy[k];
        break;
    }
    case BP_ACT_ELU: {
        const float a = p->elu_alpha;
        BP__MAP(y[k] > 0.0f ? 1.0f : y[k] + a)
        break;
    }
    case BP_ACT_GELU: BP__MAP(gelu_grad(z[k])) break;
    case BP_ACT_SILU: BP__MAP(sigmoidf(z[k]) * (1.0f + z[k] * (1.0f - sigmoidf(z[k])))) break;
    case BP_ACT_SOFTPLUS: BP__MAP(-expm1f(-y[k])) break; /* sigmoid(z) = 1 - e^-softplus(z) */
    case BP_ACT_SOFTMAX:
        /* Jacobian-vector product per row: dz_j = y_j (dy_j - sum_k dy_k y_k). */
        for (size_t i = 0; i < n; i++) {
            const float *yi = y + i * out;
            float *di = dy + i * out;
            float dot = 0.0f;
            for (size_t j = 0; j < out; j++) dot += di[j] * yi[j];
            for (size_t j = 0; j < out; j++) di[j] = yi[j] * (di[j] - dot);
        }
        break;
    default: break;
    }
}

#undef BP__MAP

BP__KERNEL
static void act_backward(int act, const bp__act_params *p, size_t n, size_t out,
                         const float *restrict z, const float *restrict y, float *restrict dy)
{
    act_backward_body(act, p, n, out, z, y, dy);
}

BP__SCALAR
void bp__act_backward_row(int act, const bp__act_params *p, size_t out, const float *z,
                          const float *y, float *dy)
{
    act_backward_body(act, p, 1, out, z, y, dy);
}

void bp__act_backward(int act, const bp__act_params *p, size_t n, size_t out, const float *z,
                      const float *y, float *dy)
{
    act_backward(act, p, n, out, z, y, dy);
}
