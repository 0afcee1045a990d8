/* test_activation.c -- the elementwise activations (activation.c, act_math.h): maximum error
 * of the branch-free transcendental formulas against double precision over every float of a
 * range (bit patterns stepped by BP_TEST_ACT_STRIDE, default 251; 1 walks all of them, as
 * docs/performance.md's figures did; BP_TEST_ACT_ONLY=name runs that function's walk alone),
 * forward and backward; the multi-versioned kernels and the scalar row kernels give the same
 * floats; NaN, Inf and the softmax.
 *
 * Error units. Forward: ulps of the double result, |y - ref| / ulp(ref) with ulp(ref) =
 * 2^(floor(log2 |ref|) - 23); where |ref| is below TINY = 2^-122 (1.9e-37) the result must be
 * within TINY of it instead: e^x is flushed to 0 below x = -87.3 (e^-87.3 = 1.2e-38, next to
 * FLT_MIN), so sigmoid(z) and GELU's z sigmoid(2u) (|z| <= 10) are 0 where they would be
 * that small. Backward
 * (dy = 1, so the kernel returns f'): |g - ref| / (2^-23 max(|ref|, 1)), ulps of 1 where the
 * derivative is below 1: the derivatives of sigmoid, tanh, ELU and softplus are computed from
 * y = f(z), whose rounding alone costs about 2^-24 near saturation. */
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "activation.h"

#define BLOCK 4096
#define TINY  1.8807909613156600e-37 /* 2^-122 */

typedef struct act_case {
    int act;
    const char *name;
    float lo, hi;     /* the range walked */
    double fwd_bound; /* ulps */
    double bwd_bound; /* ulps of max(|f'|, 1) */
} act_case;

static const double gelu_c = 0.79788456080286535588; /* sqrt(2 / pi) */
static const double gelu_a = 0.044715;

static double sigmoid_d(double z)
{
    return z >= 0.0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

static double ref_forward(int act, double z)
{
    switch (act) {
    case BP_ACT_SIGMOID: return sigmoid_d(z);
    case BP_ACT_TANH: return tanh(z);
    case BP_ACT_ELU: return z > 0.0 ? z : expm1(z); /* alpha = 1 */
    case BP_ACT_GELU: return z * sigmoid_d(2.0 * gelu_c * (z + gelu_a * z * z * z));
    case BP_ACT_SILU: return z * sigmoid_d(z);
    case BP_ACT_SOFTPLUS: return fmax(z, 0.0) + log1p(exp(-fabs(z)));
    default: return NAN;
    }
}

static double ref_backward(int act, double z)
{
    switch (act) {
    case BP_ACT_SIGMOID: return sigmoid_d(z) * sigmoid_d(-z);
    case BP_ACT_TANH: {
        const double c = cosh(z);
        return 1.0 / (c * c);
    }
    case BP_ACT_ELU: return z > 0.0 ? 1.0 : exp(z);
    case BP_ACT_GELU: {
        const double u2 = 2.0 * gelu_c * (z + gelu_a * z * z * z);
        const double s = sigmoid_d(u2), om = sigmoid_d(-u2);
        return s + z * s * om * 2.0 * gelu_c * (1.0 + 3.0 * gelu_a * z * z);
    }
    case BP_ACT_SILU: return sigmoid_d(z) * (1.0 + z * sigmoid_d(-z));
    case BP_ACT_SOFTPLUS: return sigmoid_d(z);
    default: return NAN;
    }
}

static double ulp_of(double v)
{
    int e;
    frexp(fabs(v), &e); /* |v| = m 2^e, m in [0.5, 1) */
    return ldexp(1.0, e - 24);
}

typedef struct err_stats {
    double fwd, bwd; /* maximum errors in the units above */
    float fwd_at, bwd_at;
    int tiny_ok;     /* every reference below TINY met within TINY */
    int same_floats; /* kernel == row kernel, forward and backward */
    size_t count;
} err_stats;

static void check_block(const act_case *c, const bp__act_params *p, const float *x, size_t m,
                        err_stats *st)
{
    static float zero[BLOCK], y[BLOCK], yr[BLOCK], zr[BLOCK], g[BLOCK], gr[BLOCK];
    bp__act_forward(c->act, p, 1, m, x, zero, NULL, y);
    memcpy(yr, x, m * sizeof *x);
    bp__act_forward_row(c->act, p, m, zero, zr, yr);
    for (size_t k = 0; k < m; k++) {
        g[k] = 1.0f;
        gr[k] = 1.0f;
    }
    bp__act_backward(c->act, p, 1, m, x, y, g);
    bp__act_backward_row(c->act, p, m, x, y, gr);
    if (memcmp(y, yr, m * sizeof *y) != 0 || memcmp(g, gr, m * sizeof *g) != 0) st->same_floats = 0;
    for (size_t k = 0; k < m; k++) {
        const double z = (double)x[k];
        const double rf = ref_forward(c->act, z), rb = ref_backward(c->act, z);
        if (fabs(rf) < TINY) {
            if (fabs((double)y[k] - rf) > TINY) st->tiny_ok = 0;
        } else {
            const double e = fabs((double)y[k] - rf) / ulp_of(rf);
            if (!(e <= st->fwd)) {
                st->fwd = e;
                st->fwd_at = x[k];
            }
        }
        const double eb = fabs((double)g[k] - rb) / ((double)FLT_EPSILON * fmax(fabs(rb), 1.0));
        if (!(eb <= st->bwd)) {
            st->bwd = eb;
            st->bwd_at = x[k];
        }
    }
    st->count += m;
}

static size_t stride_from_env(void)
{
    const char *s = getenv("BP_TEST_ACT_STRIDE");
    const long v = s != NULL ? strtol(s, NULL, 10) : 0;
    return v >= 1 ? (size_t)v : 251;
}

/* Every float of [lo, hi] whose bit pattern (sign cleared) is a multiple of the stride, with
 * both signs where the range has them. */
static void walk_case(const act_case *c)
{
    const bp__act_params p = {0.01f, 1.0f};
    const size_t stride = stride_from_env();
    const char *only = getenv("BP_TEST_ACT_ONLY");
    if (only != NULL && strcmp(only, c->name) != 0) skip();
    static float x[BLOCK];
    err_stats st = {0.0, 0.0, 0.0f, 0.0f, 1, 1, 0};
    size_t m = 0;
    const float amax = fmaxf(fabsf(c->lo), fabsf(c->hi));
    uint32_t top;
    memcpy(&top, &amax, sizeof top);
    for (uint64_t u = 0; u <= top; u += stride) {
        for (int sign = 0; sign < 2; sign++) {
            const uint32_t bits = (uint32_t)u | (sign ? 0x80000000u : 0u);
            float v;
            memcpy(&v, &bits, sizeof v);
            if (v < c->lo || v > c->hi) continue;
            x[m++] = v;
            if (m == BLOCK) {
                check_block(c, &p, x, m, &st);
                m = 0;
            }
        }
    }
    if (m > 0) check_block(c, &p, x, m, &st);
    print_message("%-8s [%g, %g] %zu floats (stride %zu): forward %.2f ulp (at %.9g), "
                  "backward %.2f (at %.9g)\n",
                  c->name, (double)c->lo, (double)c->hi, st.count, stride, st.fwd,
                  (double)st.fwd_at, st.bwd, (double)st.bwd_at);
    assert_true(st.same_floats);
    assert_true(st.tiny_ok);
    assert_true(st.fwd <= c->fwd_bound);
    assert_true(st.bwd <= c->bwd_bound);
}

/* The documented bounds (docs/performance.md): measured maximum over every float of the
 * range, rounded up. GELU's argument z + A z^3 is rounded in float before the exponential,
 * which for |z| near 10 amplifies its relative error by |2u| (conditioning, not the
 * exponential): hence its larger bound over [-10, 10]; over [-3, 3] (|2u| <= 7.3) it is tight. */
static const act_case cases[] = {
    {BP_ACT_SIGMOID, "sigmoid", -20.0f, 20.0f, 4.0, 2.0},
    {BP_ACT_TANH, "tanh", -20.0f, 20.0f, 4.0, 2.0},
    {BP_ACT_ELU, "elu", -20.0f, 20.0f, 4.0, 2.0},
    {BP_ACT_GELU, "gelu", -10.0f, 10.0f, 256.0, 2.0},
    {BP_ACT_GELU, "gelu3", -3.0f, 3.0f, 32.0, 2.0},
    {BP_ACT_SILU, "silu", -20.0f, 20.0f, 4.0, 4.0},
    {BP_ACT_SOFTPLUS, "softplus", -20.0f, 20.0f, 4.0, 2.0},
};

static void sigmoid_within_bound_of_double(void **state)
{
    (void)state;
    walk_case(&cases[0]);
}

static void tanh_within_bound_of_double(void **state)
{
    (void)state;
    walk_case(&cases[1]);
}

static void elu_within_bound_of_double(void **state)
{
    (void)state;
    walk_case(&cases[2]);
}

static void gelu_within_bound_of_double(void **state)
{
    (void)state;
    walk_case(&cases[3]);
}

static void gelu_near_zero_within_tighter_bound(void **state)
{
    (void)state;
    walk_case(&cases[4]);
}

static void silu_within_bound_of_double(void **state)
{
    (void)state;
    walk_case(&cases[5]);
}

static void softplus_within_bound_of_double(void **state)
{
    (void)state;
    walk_case(&cases[6]);
}

/* NaN stays NaN in every activation (the formulas clamp their arguments internally); the
 * infinities reach the limits. */
static void nan_propagates_and_infinities_saturate(void **state)
{
    (void)state;
    const bp__act_params p = {0.01f, 1.0f};
    const int acts[] = {BP_ACT_SIGMOID, BP_ACT_TANH, BP_ACT_ELU,
                        BP_ACT_GELU,    BP_ACT_SILU, BP_ACT_SOFTPLUS};
    float zero[32] = {0};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        float x[32], y[32];
        for (size_t k = 0; k < 32; k++)
            x[k] = (k % 2) ? NAN : 0.5f;
        bp__act_forward(acts[a], &p, 1, 32, x, zero, NULL, y);
        for (size_t k = 0; k < 32; k++)
            assert_true((k % 2) ? isnan(y[k]) : isfinite(y[k]));
    }
    float x[32], y[32];
    for (size_t k = 0; k < 32; k++)
        x[k] = (k % 2) ? INFINITY : -INFINITY;
    bp__act_forward(BP_ACT_TANH, &p, 1, 32, x, zero, NULL, y);
    for (size_t k = 0; k < 32; k++)
        assert_true(y[k] == ((k % 2) ? 1.0f : -1.0f));
    bp__act_forward(BP_ACT_SIGMOID, &p, 1, 32, x, zero, NULL, y);
    for (size_t k = 0; k < 32; k++)
        assert_true(y[k] == ((k % 2) ? 1.0f : 0.0f));
    bp__act_forward(BP_ACT_ELU, &p, 1, 32, x, zero, NULL, y);
    for (size_t k = 0; k < 32; k++)
        assert_true((k % 2) ? isinf(y[k]) : y[k] == -1.0f);
}

/* Softmax rows (exponentials by the branch-free e^x) against double: each probability within
 * a few ulps, for rows wide enough to vectorise and logits far apart (flushed tails). */
static void softmax_rows_match_double(void **state)
{
    (void)state;
    const bp__act_params p = {0.01f, 1.0f};
    enum { N = 7, OUT = 37 };
    float acc[N * OUT], b[OUT], y[N * OUT];
    uint64_t seed = 12345;
    bp_test_fill_uniform(acc, N * OUT, -30.0f, 30.0f, &seed);
    bp_test_fill_uniform(b, OUT, -1.0f, 1.0f, &seed);
    bp__act_forward(BP_ACT_SOFTMAX, &p, N, OUT, acc, b, NULL, y);
    double worst = 0.0;
    for (size_t i = 0; i < N; i++) {
        double v[OUT], mx = -INFINITY, sum = 0.0;
        for (size_t j = 0; j < OUT; j++) {
            v[j] = (double)(acc[i * OUT + j] + b[j]);
            mx = fmax(mx, v[j]);
        }
        /* the exponent as the kernel rounds it: the float v - max, exact or off by half an
         * ulp of up to 60 (a relative error of e^(v - max) that no exp can undo) */
        for (size_t j = 0; j < OUT; j++)
            sum += exp((double)(float)(v[j] - mx));
        for (size_t j = 0; j < OUT; j++) {
            const double ref = exp((double)(float)(v[j] - mx)) / sum;
            const double e = ref < TINY ? fabs((double)y[i * OUT + j] - ref) / TINY
                                        : fabs((double)y[i * OUT + j] - ref) / ulp_of(ref);
            worst = fmax(worst, e);
        }
    }
    print_message("softmax  %d x %d: %.2f ulp\n", N, OUT, worst);
    assert_true(worst <= 8.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(sigmoid_within_bound_of_double),
        bp_add_test(tanh_within_bound_of_double),
        bp_add_test(elu_within_bound_of_double),
        bp_add_test(gelu_within_bound_of_double),
        bp_add_test(gelu_near_zero_within_tighter_bound),
        bp_add_test(silu_within_bound_of_double),
        bp_add_test(softplus_within_bound_of_double),
        bp_add_test(nan_propagates_and_infinities_saturate),
        bp_add_test(softmax_rows_match_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
