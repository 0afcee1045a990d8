/* activation.c -- elementwise activations fused with the bias add, and their derivatives.
 *
 * Forward is one pass: z = acc + b, y = f(z). Backward overwrites dy with dz = dy * f'(z),
 * computed from y wherever the derivative allows (sigmoid, tanh, ReLU family, ELU,
 * softplus), so z is only kept for GELU, SiLU and softmax (whose z gives exact log-probs). */
#include "util.h"
#include "activation.h"

#include "act_math.h"

#include <math.h>
#include <string.h>

int bp__act_valid(int act)
{
    return act >= BP_ACT_IDENTITY && act <= BP_ACT_SOFTMAX;
}

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

/* One row-wise loop per activation: the switch is outside the loops, so each inner loop is
 * a simple map the compiler can vectorise. */
#define BP__ROWS(body)                                                                             \
    if (z != NULL) {                                                                               \
        for (size_t i = 0; i < n; i++) {                                                           \
            const float *restrict ai = acc + i * out;                                              \
            float *restrict yi = y + i * out;                                                      \
            float *restrict zi = z + i * out;                                                      \
            for (size_t j = 0; j < out; j++) {                                                     \
                const float v = ai[j] + b[j];                                                      \
                zi[j] = v;                                                                         \
                yi[j] = (body);                                                                    \
            }                                                                                      \
        }                                                                                          \
    } else if (acc == y) {                                                                         \
        /* In place (the dense layer's case): one restrict pointer, or the vectoriser's            \
         * run-time overlap check sees acc == y and falls back to the scalar loop. */              \
        for (size_t i = 0; i < n; i++) {                                                           \
            float *restrict yi = y + i * out;                                                      \
            for (size_t j = 0; j < out; j++) {                                                     \
                const float v = yi[j] + b[j];                                                      \
                yi[j] = (body);                                                                    \
            }                                                                                      \
        }                                                                                          \
    } else {                                                                                       \
        for (size_t i = 0; i < n; i++) {                                                           \
            const float *ai = acc + i * out; /* may overlap yi */                                  \
            float *yi = y + i * out;                                                               \
            for (size_t j = 0; j < out; j++) {                                                     \
                const float v = ai[j] + b[j];                                                      \
                yi[j] = (body);                                                                    \
            }                                                                                      \
        }                                                                                          \
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
    const bp__act_params q = *p; /* a local copy: the settings stay in registers */
#define bp__act_one_q(A, P, V, N) bp__act_one(A, &q, V, N)
    switch (act) {
    case BP_ACT_IDENTITY: BP__ROWS(v) break;
    case BP_ACT_SIGMOID:
        /* Narrow rows run scalar, where libm's table-driven expf has a shorter dependency
         * chain than the polynomial. */
        if (out < BP__NARROW_WIDTH) {
            BP__ROWS(bp__act_one_q(BP_ACT_SIGMOID, p, v, 1))
        } else {
            BP__ROWS(bp__act_one_q(BP_ACT_SIGMOID, p, v, 0))
        }
        break;
    case BP_ACT_TANH: BP__ROWS(bp__act_one_q(BP_ACT_TANH, p, v, 0)) break;
    case BP_ACT_RELU: BP__ROWS(bp__act_one_q(BP_ACT_RELU, p, v, 0)) break;
    case BP_ACT_LEAKY_RELU: BP__ROWS(bp__act_one_q(BP_ACT_LEAKY_RELU, p, v, 0)) break;
    case BP_ACT_ELU: BP__ROWS(bp__act_one_q(BP_ACT_ELU, p, v, 0)) break;
    case BP_ACT_GELU: BP__ROWS(bp__act_one_q(BP_ACT_GELU, p, v, 0)) break;
    case BP_ACT_SILU: BP__ROWS(bp__act_one_q(BP_ACT_SILU, p, v, 0)) break;
    case BP_ACT_SOFTPLUS: BP__ROWS(bp__act_one_q(BP_ACT_SOFTPLUS, p, v, 0)) break;
    case BP_ACT_SOFTMAX:
        for (size_t i = 0; i < n; i++) {
            const float *ai = acc + i * out;
            float *yi = y + i * out;
            float *zi = z != NULL ? z + i * out : NULL;
            float mx = -INFINITY;
            for (size_t j = 0; j < out; j++) {
                const float v = b != NULL ? ai[j] + b[j] : ai[j];
                if (zi != NULL) zi[j] = v;
                yi[j] = v;
                mx = v > mx ? v : mx;
            }
            float sum = 0.0f;
            for (size_t j = 0; j < out; j++) {
                yi[j] = bp__exp_neg(yi[j] - mx);
                sum += yi[j];
            }
            const float inv = 1.0f / sum;
            for (size_t j = 0; j < out; j++)
                yi[j] *= inv;
        }
        break;
    default: break; /* validated by the caller */
    }
}

#undef bp__act_one_q
#undef BP__ROWS

BP__KERNEL
static void act_forward(int act, const bp__act_params *p, size_t n, size_t out, const float *acc,
                        const float *b, float *z, float *y)
{
    act_forward_body(act, p, n, out, acc, b, z, y);
}

void bp__act_forward(int act, const bp__act_params *p, size_t n, size_t out, const float *acc,
                     const float *b, float *z, float *y)
{
    act_forward(act, p, n, out, acc, b, z, y);
}

/* Zero bias for bp__act_apply: constant memory shared by every layer. */
#define BP__ACT_ZEROS 1024u
static const float act_zeros[BP__ACT_ZEROS];

void bp__act_apply(int act, const bp__act_params *p, size_t n, size_t out, const float *x, float *z,
                   float *y)
{
    if (act == BP_ACT_SOFTMAX) { /* row-wise: the softmax branch takes no bias (NULL) */
        act_forward(act, p, n, out, x, NULL, z, y);
        return;
    }
    if (out <= BP__ACT_ZEROS) { /* the rows as they are (the kernels pick by row width) */
        act_forward(act, p, n, out, x, act_zeros, z, y);
        return;
    }
    /* Elementwise: the n x out floats as rows of BP__ACT_ZEROS and one shorter rest. */
    const size_t total = n * out, rows = total / BP__ACT_ZEROS, rest = total % BP__ACT_ZEROS;
    const size_t done = rows * BP__ACT_ZEROS;
    act_forward(act, p, rows, BP__ACT_ZEROS, x, act_zeros, z, y);
    if (rest)
        act_forward(act, p, 1, rest, x + done, act_zeros, z != NULL ? z + done : NULL, y + done);
}

BP__SCALAR
void bp__act_forward_row(int act, const bp__act_params *p, size_t out, const float *b, float *z,
                         float *y)
{
    act_forward_body(act, p, 1, out, y, b, z, y);
}

/* dy[k] = dy[k] f'(z[k]) over the rows (the formulas: bp__act_grad_one, act_math.h); z is
 * read only for the activations that need it. */
#define BP__MAP(ACT, zk)                                                                           \
    for (size_t k = 0; k < total; k++)                                                             \
        dy[k] = bp__act_grad_one(ACT, &q, (zk), y[k], dy[k]);

static BP__ALWAYS_INLINE void act_backward_body(int act, const bp__act_params *p, size_t n,
                                                size_t out, const float *restrict z,
                                                const float *restrict y, float *restrict dy)
{
    /* z, y, dy: [n x out]; dy becomes dz in place. */
    const size_t total = n * out;
    const bp__act_params q = *p; /* a local copy: the settings stay in registers */
    switch (act) {
    case BP_ACT_IDENTITY: break;
    case BP_ACT_SIGMOID: BP__MAP(BP_ACT_SIGMOID, 0.0f) break;
    case BP_ACT_TANH: BP__MAP(BP_ACT_TANH, 0.0f) break;
    case BP_ACT_RELU: BP__MAP(BP_ACT_RELU, 0.0f) break;
    case BP_ACT_LEAKY_RELU: BP__MAP(BP_ACT_LEAKY_RELU, 0.0f) break;
    case BP_ACT_ELU: BP__MAP(BP_ACT_ELU, 0.0f) break;
    case BP_ACT_GELU: BP__MAP(BP_ACT_GELU, z[k]) break;
    case BP_ACT_SILU: BP__MAP(BP_ACT_SILU, z[k]) break;
    case BP_ACT_SOFTPLUS: BP__MAP(BP_ACT_SOFTPLUS, 0.0f) break;
    case BP_ACT_SOFTMAX:
        /* Jacobian-vector product per row: dz_j = y_j (dy_j - sum_k dy_k y_k). */
        for (size_t i = 0; i < n; i++) {
            const float *yi = y + i * out;
            float *di = dy + i * out;
            float dot = 0.0f;
            for (size_t j = 0; j < out; j++)
                dot += di[j] * yi[j];
            for (size_t j = 0; j < out; j++)
                di[j] = yi[j] * (di[j] - dot);
        }
        break;
    default: break;
    }
}

#undef BP__MAP

/* dx[k] = dy[k] f'(z[k]) for the elementwise activations (not softmax): the same floats as
 * act_backward_body, written to another buffer (dy is left as it is). */
#define BP__MAP_TO(ACT, zk)                                                                        \
    for (size_t k = 0; k < total; k++)                                                             \
        dx[k] = bp__act_grad_one(ACT, &q, (zk), y[k], dy[k]);

BP__KERNEL
static void act_backward_to(int act, const bp__act_params *p, size_t total, const float *restrict z,
                            const float *restrict y, const float *restrict dy, float *restrict dx)
{
    const bp__act_params q = *p;
    switch (act) {
    case BP_ACT_SIGMOID: BP__MAP_TO(BP_ACT_SIGMOID, 0.0f) break;
    case BP_ACT_TANH: BP__MAP_TO(BP_ACT_TANH, 0.0f) break;
    case BP_ACT_RELU: BP__MAP_TO(BP_ACT_RELU, 0.0f) break;
    case BP_ACT_LEAKY_RELU: BP__MAP_TO(BP_ACT_LEAKY_RELU, 0.0f) break;
    case BP_ACT_ELU: BP__MAP_TO(BP_ACT_ELU, 0.0f) break;
    case BP_ACT_GELU: BP__MAP_TO(BP_ACT_GELU, z[k]) break;
    case BP_ACT_SILU: BP__MAP_TO(BP_ACT_SILU, z[k]) break;
    case BP_ACT_SOFTPLUS: BP__MAP_TO(BP_ACT_SOFTPLUS, 0.0f) break;
    default: memcpy(dx, dy, total * sizeof(float)); break; /* identity */
    }
}

#undef BP__MAP_TO

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

void bp__act_backward_to(int act, const bp__act_params *p, size_t total, const float *z,
                         const float *y, const float *dy, float *dx)
{
    act_backward_to(act, p, total, z, y, dy, dx);
}
