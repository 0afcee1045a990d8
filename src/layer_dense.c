/* layer_dense.c -- fully connected layer: y = f(x W^T + b).
 *
 * On sequence rows [T x F] it works per step with one W [units x F] and b shared by all steps:
 * the n rows of T steps are n*T rows of F (step-major rows are stored that way), so the same
 * kernels run with n*T rows (bp__layer_rows) and the step widths; output [T x units].
 *
 * Forward:  one sgemm (x [n x in] times W^T [in x out]) plus one fused bias+activation pass.
 * Backward: dz = dy * f'(z) (fused), db = column sums of dz, dW = dz^T x, dx = dz W; the
 *           first layer skips dx. */
#include "util.h"
#include "gemm.h"
#include "activation.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"

#include "act_math.h"

#include <math.h>

/* Training keeps the pre-activation z for activations whose derivative needs it. */
static size_t dense_scratch(const bp_layer *l, size_t n, int training)
{
    return training && bp__act_needs_z(l->activation) ? n * l->out : 0;
}

/* dot(w, x) over @p in floats. Sixteen partial sums, combined pairwise at the end, let the
 * compiler keep the sum in vector registers (a single running sum is a serial chain of adds
 * it may not reorder); the order is fixed, so the result is the same on every run. */
static BP__ALWAYS_INLINE float dot_row(const float *restrict w, const float *restrict x, size_t in)
{
    enum { L = 16 };
    size_t i = 0;
    float s = 0.0f;
    if (in >= 4 * L) { /* below that the final combine costs more than it saves */
        float acc[L] = {0};
        for (; i + L <= in; i += L)
            for (size_t j = 0; j < L; j++)
                acc[j] += w[i + j] * x[i + j];
        for (size_t h = L / 2; h > 0; h /= 2)
            for (size_t j = 0; j < h; j++)
                acc[j] += acc[j + h];
        s = acc[0];
    }
    for (; i < in; i++)
        s += w[i] * x[i];
    return s;
}

/* y[o] = dot(W[o], x) for o < out (x: [in], w: [out x in], y: [out]); with rows under 64
 * floats, four outputs at a time, each its own running sum in dot_row's order (the same
 * floats): x[i] is loaded once for four products, and four independent chains overlap. */
static BP__ALWAYS_INLINE void row_sums(const float *restrict w, const float *restrict x, size_t in,
                                       size_t out, float *restrict y)
{
    size_t o = 0;
    if (in < 64) {
        for (; o + 4 <= out; o += 4) {
            const float *restrict w0 = w + o * in, *restrict w1 = w0 + in;
            const float *restrict w2 = w1 + in, *restrict w3 = w2 + in;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            for (size_t i = 0; i < in; i++) {
                const float xi = x[i];
                s0 += w0[i] * xi;
                s1 += w1[i] * xi;
                s2 += w2[i] * xi;
                s3 += w3[i] * xi;
            }
            y[o] = s0, y[o + 1] = s1, y[o + 2] = s2, y[o + 3] = s3;
        }
    }
    for (; o < out; o++)
        y[o] = dot_row(w + o * in, x, in);
}

/* One row (online training, single predictions): y = W x, z = y + b, y = f(z); no GEMM
 * dispatch. */
static BP__ALWAYS_INLINE void row_forward(const bp_layer *l, const float *x, float *z, float *y)
{
    /* x: [in], w: [out x in], b: [out], y: [out], z (scratch): [out] or NULL */
    const size_t in = l->in, out = l->out;
    row_sums(bp__layer_w(l), x, in, out, y);
    bp__act_forward(l->activation, &l->act, 1, out, y, bp__layer_b(l), z, y);
}

/* One row: dy -> dz = dy * f'(z) unless dy_is_dz, db (+)= dz, dW (+)= dz x^T (outer product),
 * dx = W^T dz unless dx is NULL. */
static BP__ALWAYS_INLINE void row_backward(const bp_layer *l, const float *x, const float *z,
                                           const float *y, float *dy, int dy_is_dz, float *dx,
                                           int accumulate)
{
    /* x: [in], dy -> dz: [out], dw: [out x in], db: [out], dx: [in] or NULL */
    const size_t in = l->in, out = l->out;
    if (!dy_is_dz) bp__act_backward(l->activation, &l->act, 1, out, z, y, dy);
    const float *dz = dy;
    float *restrict db = bp__layer_db(l);
    float *restrict dw = bp__layer_dw(l);
    const float *restrict w = bp__layer_w(l);
    for (size_t o = 0; o < out; o++) {
        const float d = dz[o];
        float *restrict dwo = dw + o * in;
        if (accumulate) {
            db[o] += d;
            for (size_t i = 0; i < in; i++)
                dwo[i] += d * x[i];
        } else {
            db[o] = d;
            for (size_t i = 0; i < in; i++)
                dwo[i] = d * x[i];
        }
    }
    if (dx != NULL) {
        for (size_t i = 0; i < in; i++)
            dx[i] = 0.0f;
        for (size_t o = 0; o < out; o++) {
            const float d = dz[o];
            const float *restrict wo = w + o * in;
            for (size_t i = 0; i < in; i++)
                dx[i] += d * wo[i];
        }
    }
}

/* The single-row kernels of narrow layers (in and out under BP__NARROW_WIDTH: online
 * training of tiny nets, where the walk around the arithmetic is most of the step). The same
 * floats as the vectorised row kernels above, in the same order, with no vector code and
 * no call per activation: each output's sum (row_sums), then + b and the activation
 * (bp__act_one, the formula activation.c's kernels use); backward each output's dz =
 * dy f'(z) (bp__act_grad_one), db and dW's row, then dx[i] = sum over the outputs in order
 * of dz_o W[o][i] (from 0, as above). Softmax, which is row-wise, goes through activation.c's
 * scalar row functions. */
static int row_is_narrow(const bp_layer *l)
{
    return l->in < BP__NARROW_WIDTH && l->out < BP__NARROW_WIDTH;
}

/* The narrow kernels' bodies for @p in inputs; called with in = 1 .. 4 as a constant, so
 * that the loops over the inputs unroll completely (tiny nets: no loop overhead). */
static BP__ALWAYS_INLINE void narrow_forward(const bp_layer *l, size_t in, int act, const float *x,
                                             float *z, float *y)
{
    /* x: [in], w: [out x in], b: [out], y: [out], z (scratch): [out] or NULL */
    const size_t out = l->out;
    const float *restrict w = bp__layer_w(l);
    const float *restrict b = bp__layer_b(l);
    if (act == BP_ACT_SOFTMAX) {
        row_sums(w, x, in, out, y);
        bp__act_forward_row(act, &l->act, out, b, z, y);
        return;
    }
    /* The sigmoid as activation.c computes it for rows of this width (libm's expf below
     * BP__NARROW_WIDTH, which is every row this kernel gets from the layer). */
    const int narrow_sigmoid = out < BP__NARROW_WIDTH;
    for (size_t o = 0; o < out; o++) {
        const float *restrict wo = w + o * in;
        float s = 0.0f; /* row_sums' order: from 0, over the inputs in order */
        for (size_t i = 0; i < in; i++)
            s += wo[i] * x[i];
        const float v = s + b[o];
        if (z != NULL) z[o] = v;
        y[o] = bp__act_one(act, &l->act, v, narrow_sigmoid);
    }
}

/* Returns 1 when dW and db are proven finite (not accumulated), with l->grad_bound set:
 * dW[o][i] is the one rounded product dz_o x_i and db_o = dz_o, and rounding is monotonic, so
 * every |dz_o x_i| and |dz_o| is at most the rounded dz_o max(max|x|, 1), and all are finite
 * exactly when that product is (max|x| through the bits: a NaN pattern when x holds a NaN or
 * Inf, which makes the product non-finite too); one product per output proves its row and
 * bounds it. */
static BP__ALWAYS_INLINE int narrow_backward(bp_layer *l, size_t in, int act, const float *x,
                                             const float *z, const float *y, float *dy,
                                             int dy_is_dz, float *dx, int accumulate)
{
    /* x: [in], dy -> dz: [out], dw: [out x in], db: [out], dx: [in] or NULL */
    const size_t out = l->out;
    if (!dy_is_dz && act == BP_ACT_SOFTMAX) {
        bp__act_backward_row(act, &l->act, out, z, y, dy);
        dy_is_dz = 1;
    }
    float *restrict db = bp__layer_db(l);
    float *restrict dw = bp__layer_dw(l);
    const float *restrict w = bp__layer_w(l);
    uint32_t mxb = 0;
    for (size_t i = 0; i < in; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7fffffffu;
        mxb = u > mxb ? u : mxb;
    }
    /* max(max|x|, 1) through the bits (a NaN pattern stays one) */
    const uint32_t mxxb = mxb > 0x3f800000u ? mxb : 0x3f800000u;
    float mxx;
    memcpy(&mxx, &mxxb, sizeof mxx);
    uint32_t mg = 0; /* max |dz_o| max(max|x|, 1) as bits */
    for (size_t o = 0; o < out; o++) {
        const float d =
            dy_is_dz ? dy[o] : bp__act_grad_one(act, &l->act, z != NULL ? z[o] : 0.0f, y[o], dy[o]);
        float *restrict dwo = dw + o * in;
        dy[o] = d;
        const float pd = d * mxx;
        uint32_t u;
        memcpy(&u, &pd, sizeof u);
        u &= 0x7fffffffu;
        mg = u > mg ? u : mg;
        if (accumulate) {
            db[o] += d;
            for (size_t i = 0; i < in; i++)
                dwo[i] += d * x[i];
        } else {
            db[o] = d;
            for (size_t i = 0; i < in; i++)
                dwo[i] = d * x[i];
        }
    }
    if (dx != NULL && out == 1) { /* one output (a regression or binary head): no loop */
        for (size_t i = 0; i < in; i++)
            dx[i] = 0.0f + dy[0] * w[i]; /* the sum below, from 0 (-0 becomes +0 there too) */
    } else if (dx != NULL) {
        for (size_t i = 0; i < in; i++) {
            float s = 0.0f;
            for (size_t o = 0; o < out; o++)
                s += dy[o] * w[o * in + i];
            dx[i] = s;
        }
    }
    /* The update guard's gradient bound (walk.c): |dW|, |db| <= max|dz| max(max|x|, 1). */
    float gb;
    memcpy(&gb, &mg, sizeof gb);
    l->grad_bound = (double)gb;
    return !accumulate && mg < 0x7f800000u;
}

/* The narrow kernels for activation @p act (a constant where the caller names one): inputs
 * 1 .. 4 get their own copy. */
static BP__ALWAYS_INLINE void narrow_forward_in(const bp_layer *l, int act, const float *x,
                                                float *z, float *y)
{
    switch (l->in) {
    case 1: narrow_forward(l, 1, act, x, z, y); break;
    case 2: narrow_forward(l, 2, act, x, z, y); break;
    case 3: narrow_forward(l, 3, act, x, z, y); break;
    case 4: narrow_forward(l, 4, act, x, z, y); break;
    default: narrow_forward(l, l->in, act, x, z, y); break;
    }
}

static BP__ALWAYS_INLINE int narrow_backward_in(bp_layer *l, int act, const float *x,
                                                const float *z, const float *y, float *dy,
                                                int dy_is_dz, float *dx, int accumulate)
{
    switch (l->in) {
    case 1: return narrow_backward(l, 1, act, x, z, y, dy, dy_is_dz, dx, accumulate);
    case 2: return narrow_backward(l, 2, act, x, z, y, dy, dy_is_dz, dx, accumulate);
    case 3: return narrow_backward(l, 3, act, x, z, y, dy, dy_is_dz, dx, accumulate);
    case 4: return narrow_backward(l, 4, act, x, z, y, dy, dy_is_dz, dx, accumulate);
    default: return narrow_backward(l, l->in, act, x, z, y, dy, dy_is_dz, dx, accumulate);
    }
}

/* The activations of tiny nets (FANN's logistic and tanh nets, ReLU or linear layers) get
 * copies with the activation a constant (no switch per element); the others share one. */
BP__SCALAR BP__ALWAYS_INLINE static void row_forward_narrow(const bp_layer *l, const float *x,
                                                            float *z, float *y)
{
    switch (l->activation) {
    case BP_ACT_IDENTITY: narrow_forward_in(l, BP_ACT_IDENTITY, x, z, y); break;
    case BP_ACT_SIGMOID: narrow_forward_in(l, BP_ACT_SIGMOID, x, z, y); break;
    case BP_ACT_TANH: narrow_forward_in(l, BP_ACT_TANH, x, z, y); break;
    case BP_ACT_RELU: narrow_forward_in(l, BP_ACT_RELU, x, z, y); break;
    default: narrow_forward_in(l, l->activation, x, z, y); break;
    }
}

BP__SCALAR BP__ALWAYS_INLINE static int row_backward_narrow(bp_layer *l, const float *x,
                                                            const float *z, const float *y,
                                                            float *dy, int dy_is_dz, float *dx,
                                                            int accumulate)
{
#define BP__NARROW_BW(act) narrow_backward_in(l, act, x, z, y, dy, dy_is_dz, dx, accumulate)
    switch (l->activation) {
    case BP_ACT_IDENTITY: return BP__NARROW_BW(BP_ACT_IDENTITY);
    case BP_ACT_SIGMOID: return BP__NARROW_BW(BP_ACT_SIGMOID);
    case BP_ACT_TANH: return BP__NARROW_BW(BP_ACT_TANH);
    case BP_ACT_RELU: return BP__NARROW_BW(BP_ACT_RELU);
    default: return BP__NARROW_BW(l->activation);
    }
#undef BP__NARROW_BW
}

/* The vectorised single-row kernels (rows of BP__NARROW_WIDTH floats or more). */
BP__KERNEL
static void row_forward_wide(const bp_layer *l, const float *x, float *z, float *y)
{
    row_forward(l, x, z, y);
}

BP__KERNEL
static void row_backward_wide(const bp_layer *l, const float *x, const float *z, const float *y,
                              float *dy, int dy_is_dz, float *dx, int accumulate)
{
    row_backward(l, x, z, y, dy, dy_is_dz, dx, accumulate);
}

/* Rows and widths of the batch kernels: n rows of in/out, or n*T rows of the step widths. */
static BP__ALWAYS_INLINE void batch_dims(const bp_layer *l, size_t *n, size_t *in, size_t *out)
{
    const size_t steps = l->in_steps ? l->in_steps : 1;
    *n *= steps;
    *in = l->in / steps;
    *out = l->out / steps;
}

BP__KERNEL
static void batch_forward(bp_layer *l, size_t n, const float *x, float *z, float *y)
{
    /* x: [n x in], w: [out x in], b: [out], y: [n x out], z (scratch): [n x out] or NULL */
    size_t in, out;
    batch_dims(l, &n, &in, &out);
    /* y = x W^T */
    bp__gemm(0, 1, n, out, in, 1.0f, x, in, bp__layer_w(l), in, 0.0f, y, out);
    /* z = y + b; y = f(z) */
    bp__act_forward(l->activation, &l->act, n, out, y, bp__layer_b(l), z, y);
}

BP__KERNEL
static void batch_backward(bp_layer *l, size_t n, const float *x, float *z, const float *y,
                           float *dy, int dy_is_dz, float *dx, int accumulate)
{
    /* x: [n x in], dy -> dz: [n x out], dw: [out x in], db: [out], dx: [n x in] */
    size_t in, out;
    batch_dims(l, &n, &in, &out);
    if (!dy_is_dz) bp__act_backward(l->activation, &l->act, n, out, z, y, dy);
    const float *dz = dy;
    float *restrict db = bp__layer_db(l);
    /* db (+)= sum over rows of dz */
    if (!accumulate)
        for (size_t j = 0; j < out; j++)
            db[j] = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float *restrict dzi = dz + i * out;
        for (size_t j = 0; j < out; j++)
            db[j] += dzi[j];
    }
    /* dW (+)= dz^T x */
    bp__gemm(1, 0, out, in, n, 1.0f, dz, out, x, in, accumulate ? 1.0f : 0.0f, bp__layer_dw(l), in);
    /* dx = dz W */
    if (dx != NULL) bp__gemm(0, 0, n, in, out, 1.0f, dz, out, bp__layer_w(l), in, 0.0f, dx, in);
}

/* Tests only (layer_kinds.h): one row through the kernel @p narrow names. */
void bp__dense_row_forward_with(bp_layer *l, int narrow, const float *x, float *z, float *y)
{
    if (narrow)
        row_forward_narrow(l, x, z, y);
    else
        row_forward_wide(l, x, z, y);
}

int bp__dense_row_backward_with(bp_layer *l, int narrow, const float *x, float *z, const float *y,
                                float *dy, int dy_is_dz, float *dx, int accumulate)
{
    if (narrow) return row_backward_narrow(l, x, z, y, dy, dy_is_dz, dx, accumulate);
    row_backward_wide(l, x, z, y, dy, dy_is_dz, dx, accumulate);
    return 0;
}

/* The vtable's entries pick the kernel: one row (online training, single predictions) needs
 * no GEMM dispatch, and narrow rows run scalar (inlined here: a call costs about as much as
 * a 2-4-1 layer's arithmetic). These dispatchers are not multi-versioned either. */
BP__SCALAR
static void dense_forward(bp_layer *l, size_t n, const float *x, float *z, float *y, int training)
{
    (void)training;
    if (bp__layer_rows(l, n) != 1)
        batch_forward(l, n, x, z, y);
    else if (row_is_narrow(l))
        row_forward_narrow(l, x, z, y);
    else
        row_forward_wide(l, x, z, y);
}

BP__SCALAR
static int dense_backward(bp_layer *l, size_t n, const float *x, float *z, const float *y,
                          float *dy, int dy_is_dz, float *dx, int accumulate)
{
    const size_t rows = bp__layer_rows(l, n); /* single-row kernels: rows == n == 1 */
    if (rows == 1 && row_is_narrow(l))
        return row_backward_narrow(l, x, z, y, dy, dy_is_dz, dx, accumulate);
    if (rows == 1)
        row_backward_wide(l, x, z, y, dy, dy_is_dz, dx, accumulate);
    else
        batch_backward(l, n, x, z, y, dy, dy_is_dz, dx, accumulate);
    return 0;
}

bp_status bp_net_add_dense(bp_net *net, size_t units, int activation)
{
    BP__NET_CHECK(net, "bp_net_add_dense");
    if (units == 0 || units > BP__MAX_WIDTH)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "bp_net_add_dense: units = %zu is outside 1..%zu", units, BP__MAX_WIDTH);
    if (!bp__act_valid(activation))
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_add_dense: unknown activation %d",
                        activation);
    BP_CHECK(bp__net_check_append(net, "bp_net_add_dense"));
    /* Per step on sequences: in is the step width, the output [T x units]. */
    const size_t in = bp__net_out_step_width(net), steps = bp__net_out_steps(net);
    size_t nw, out;
    if (bp__mul_size(units, in, &nw) != 0)
        return bp__fail(net->err, BP_ERR_NOMEM, "bp_net_add_dense: %zu x %zu weights overflow",
                        units, in);
    if (steps && (bp__mul_size(units, steps, &out) != 0 || out > BP__MAX_WIDTH))
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "bp_net_add_dense: %zu steps x %zu units exceed %zu outputs", steps, units,
                        BP__MAX_WIDTH);
    bp_layer *l =
        steps
            ? bp__layer_new(net, "bp_net_add_dense", &bp__dense_vtable, activation, 1, steps, units)
            : bp__layer_new(net, "bp_net_add_dense", &bp__dense_vtable, activation, units, 1, 1);
    if (l == NULL) return BP_ERR_NOMEM;
    l->out_steps = steps;
    l->nweights = nw;
    l->nbiases = units;
    l->fan_in = in;
    l->fan_out = units;
    return bp__net_append_or_discard(net, l, BP_INIT_DEFAULT, 0.0);
}

/* Persistence: units and activation construct the layer; the settings follow. */
static size_t dense_hyper(const bp_layer *l, bp__hyper *hp, size_t cap)
{
    const bp__hyper c[2] = {{BP__HP_UNITS, (double)l->nbiases}, /* units (per step) */
                            {BP__HP_ACTIVATION, (double)l->activation}};
    for (size_t i = 0; i < 2 && i < cap; i++)
        hp[i] = c[i];
    return bp__hyper_put_settings(l, hp, cap, 2);
}

static bp_status dense_construct(bp_net *net, const bp__hyper *hp, size_t count,
                                 size_t expect_params)
{ /* on sequences the weights are [units x step width] (bp_net_add_dense) */
    static const uint32_t known[] = {BP__HP_UNITS, BP__HP_ACTIVATION, 0};
    double units, act;
    if (bp__hyper_find(hp, count, BP__HP_UNITS, &units) != 0 ||
        bp__hyper_find(hp, count, BP__HP_ACTIVATION, &act) != 0)
        return bp__fail(net->err, BP_ERR_FORMAT,
                        "layer %zu (dense): units or activation "
                        "missing",
                        net->nlayers);
    if (!(units >= 1.0 && units <= 16777216.0 && units == floor(units)) ||
        !(act >= 0.0 && act <= 1000.0 && act == floor(act)))
        return bp__fail(net->err, BP_ERR_FORMAT,
                        "layer %zu (dense): units %g or activation %g "
                        "is not a valid integer",
                        net->nlayers, units, act);
    const size_t out = (size_t)units;
    const size_t in = bp__net_out_step_width(net);
    size_t nw;
    /* (in + 1) * out parameters: checked against the file before anything is allocated. */
    if (bp__mul_size(in + 1, out, &nw) != 0 || nw != expect_params)
        return bp__fail(net->err, BP_ERR_FORMAT,
                        "layer %zu (dense): %zu x %zu needs %zu + %zu "
                        "parameters, the file holds %zu",
                        net->nlayers, out, in, out * in, out, expect_params);
    const bp_status s = bp_net_add_dense(net, out, (int)act);
    if (s == BP_ERR_INVALID_ARG || s == BP_ERR_STATE) /* unknown activation, softmax inside */
        return bp__fail(net->err, BP_ERR_FORMAT, "%s", bp_last_error());
    if (s != BP_OK) return s;
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

static const bp__layer_key dense_keys[] = {BP__KEY_TRAINABLE, BP__KEY_ACTIVATION, BP__KEY_PENALTIES,
                                           BP__KEY_END};

const bp__layer_vtable bp__dense_vtable = {
    .kind = BP_LAYER_DENSE,
    .name = "dense",
    .scratch_floats = dense_scratch,
    .forward = dense_forward,
    .backward = dense_backward,
    .destroy = NULL,
    .clone = NULL,
    .hyper = dense_hyper,
    .construct = dense_construct,
    .state_floats = NULL,
    .state_write = NULL,
    .state_read = NULL,
    .keys = dense_keys,
    .grad_bound_dense = 1,
};
