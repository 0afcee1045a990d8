/* layer_dense.c -- fully connected layer: y = f(x W^T + b).
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

#include "dense_row.h"

#include <math.h>

/* Training keeps the pre-activation z for activations whose derivative needs it. */
static size_t dense_scratch(const bp_layer *l, size_t n, int training)
{
    return training && bp__act_needs_z(l->activation) ? n * l->out : 0;
}

/* One row (online training, single predictions): y = W x, z = y + b, y = f(z); no GEMM
 * dispatch. Shared by dense_forward and bp__dense_row_forward (scalar: the activation's
 * scalar twin), so both compute the same floats in the same order. */
static BP__ALWAYS_INLINE void row_forward(const bp_layer *l, const float *x, float *z, float *y,
                                          int scalar)
{
    /* x: [in], w: [out x in], b: [out], y: [out], z (scratch): [out] or NULL */
    const size_t in = l->in, out = l->out;
    bp__dense_row_sums(bp__layer_w(l), x, in, out, y);
    if (scalar)
        bp__act_forward_row(l->activation, &l->act, out, bp__layer_b(l), z, y);
    else
        bp__act_forward(l->activation, &l->act, 1, out, y, bp__layer_b(l), z, y);
}

/* One row: dy -> dz = dy * f'(z) unless dy_is_dz, db (+)= dz, dW (+)= dz x^T (outer product),
 * dx = W^T dz unless dx is NULL. */
static BP__ALWAYS_INLINE void row_backward(const bp_layer *l, const float *x, const float *z,
                                           const float *y, float *dy, int dy_is_dz, float *dx,
                                           int accumulate, int scalar)
{
    /* x: [in], dy -> dz: [out], dw: [out x in], db: [out], dx: [in] or NULL */
    const size_t in = l->in, out = l->out;
    if (!dy_is_dz && scalar) bp__act_backward_row(l->activation, &l->act, out, z, y, dy);
    if (!dy_is_dz && !scalar) bp__act_backward(l->activation, &l->act, 1, out, z, y, dy);
    const float *dz = dy;
    float *restrict db = bp__layer_db(l);
    float *restrict dw = bp__layer_dw(l);
    const float *restrict w = bp__layer_w(l);
    for (size_t o = 0; o < out; o++) {
        const float d = dz[o];
        float *restrict dwo = dw + o * in;
        if (accumulate) {
            db[o] += d;
            for (size_t i = 0; i < in; i++) dwo[i] += d * x[i];
        } else {
            db[o] = d;
            for (size_t i = 0; i < in; i++) dwo[i] = d * x[i];
        }
    }
    if (dx != NULL) {
        for (size_t i = 0; i < in; i++) dx[i] = 0.0f;
        for (size_t o = 0; o < out; o++) {
            const float d = dz[o];
            const float *restrict wo = w + o * in;
            for (size_t i = 0; i < in; i++) dx[i] += d * wo[i];
        }
    }
}

BP__SCALAR
void bp__dense_row_forward(const bp_layer *l, const float *x, float *z, float *y)
{
    row_forward(l, x, z, y, 1);
}

BP__SCALAR
void bp__dense_row_backward(const bp_layer *l, const float *x, const float *z, const float *y,
                            float *dy, int dy_is_dz, float *dx)
{
    row_backward(l, x, z, y, dy, dy_is_dz, dx, 0, 1);
}

BP__KERNEL
static void dense_forward(bp_layer *l, size_t n, const float *x, float *z, float *y,
                          int training)
{
    /* x: [n x in], w: [out x in], b: [out], y: [n x out], z (scratch): [n x out] or NULL */
    (void)training;
    if (n == 1) {
        row_forward(l, x, z, y, 0);
        return;
    }
    const size_t in = l->in, out = l->out;
    /* y = x W^T */
    bp__gemm(0, 1, n, out, in, 1.0f, x, in, bp__layer_w(l), in, 0.0f, y, out);
    /* z = y + b; y = f(z) */
    bp__act_forward(l->activation, &l->act, n, out, y, bp__layer_b(l), z, y);
}

BP__KERNEL
static void dense_backward(bp_layer *l, size_t n, const float *x, float *z, const float *y,
                           float *dy, int dy_is_dz, float *dx, int accumulate)
{
    /* x: [n x in], dy -> dz: [n x out], dw: [out x in], db: [out], dx: [n x in] */
    if (n == 1) {
        row_backward(l, x, z, y, dy, dy_is_dz, dx, accumulate, 0);
        return;
    }
    const size_t in = l->in, out = l->out;
    if (!dy_is_dz) bp__act_backward(l->activation, &l->act, n, out, z, y, dy);
    const float *dz = dy;
    float *restrict db = bp__layer_db(l);
    /* db (+)= sum over rows of dz */
    if (!accumulate)
        for (size_t j = 0; j < out; j++) db[j] = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float *restrict dzi = dz + i * out;
        for (size_t j = 0; j < out; j++) db[j] += dzi[j];
    }
    /* dW (+)= dz^T x */
    bp__gemm(1, 0, out, in, n, 1.0f, dz, out, x, in, accumulate ? 1.0f : 0.0f, bp__layer_dw(l), in);
    /* dx = dz W */
    if (dx != NULL) bp__gemm(0, 0, n, in, out, 1.0f, dz, out, bp__layer_w(l), in, 0.0f, dx, in);
}

/* Persistence: units and activation construct the layer; the settings follow. */
static size_t dense_hyper(const bp_layer *l, bp__hyper *hp, size_t cap)
{
    const bp__hyper c[2] = {{BP__HP_UNITS, (double)l->out},
                            {BP__HP_ACTIVATION, (double)l->activation}};
    for (size_t i = 0; i < 2 && i < cap; i++) hp[i] = c[i];
    return bp__hyper_put_settings(l, hp, cap, 2);
}

static bp_status dense_construct(bp_net *net, const bp__hyper *hp, size_t count,
                                 size_t expect_params)
{
    static const uint32_t known[] = {BP__HP_UNITS, BP__HP_ACTIVATION, 0};
    double units, act;
    if (bp__hyper_find(hp, count, BP__HP_UNITS, &units) != 0 ||
        bp__hyper_find(hp, count, BP__HP_ACTIVATION, &act) != 0)
        return bp__fail(net->err, BP_ERR_FORMAT, "layer %zu (dense): units or activation "
                        "missing", net->nlayers);
    if (!(units >= 1.0 && units <= 16777216.0 && units == floor(units)) ||
        !(act >= 0.0 && act <= 1000.0 && act == floor(act)))
        return bp__fail(net->err, BP_ERR_FORMAT, "layer %zu (dense): units %g or activation %g "
                        "is not a valid integer", net->nlayers, units, act);
    const size_t out = (size_t)units;
    const size_t in = net->nlayers ? net->layers[net->nlayers - 1]->out : net->inputs;
    size_t nw;
    /* (in + 1) * out parameters: checked against the file before anything is allocated. */
    if (bp__mul_size(in + 1, out, &nw) != 0 || nw != expect_params)
        return bp__fail(net->err, BP_ERR_FORMAT, "layer %zu (dense): %zu x %zu needs %zu + %zu "
                        "parameters, the file holds %zu", net->nlayers, out, in, out * in, out,
                        expect_params);
    const bp_status s = bp_net_add_dense(net, out, (int)act);
    if (s == BP_ERR_INVALID_ARG || s == BP_ERR_STATE) /* unknown activation, softmax inside */
        return bp__fail(net->err, BP_ERR_FORMAT, "%s", bp_last_error());
    if (s != BP_OK) return s;
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

static const bp__layer_key dense_keys[] = {BP__KEY_TRAINABLE, BP__KEY_ACTIVATION, BP__KEY_PENALTIES, BP__KEY_END};

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
