/* layer_dense.c -- fully connected layer: y = f(x W^T + b).
 *
 * Forward:  one sgemm (x [n x in] times W^T [in x out]) plus one fused bias+activation pass.
 * Backward: dz = dy * f'(z) (fused), db = column sums of dz, dW = dz^T x, dx = dz W; the
 *           first layer skips dx. */
#include "internal.h"

/* Training keeps the pre-activation z for activations whose derivative needs it. */
static size_t dense_scratch(const bp_layer *l, size_t n, int training)
{
    return training && bp__act_needs_z(l->activation) ? n * l->out : 0;
}

static void dense_forward(bp_layer *l, size_t n, const float *x, float *z, float *y,
                          int training)
{
    /* x: [n x in], w: [out x in], b: [out], y: [n x out], z (scratch): [n x out] or NULL */
    (void)training;
    const size_t in = l->in, out = l->out;
    /* y = x W^T */
    bp__gemm(0, 1, n, out, in, 1.0f, x, in, bp__layer_w(l), in, 0.0f, y, out);
    /* z = y + b; y = f(z) */
    bp__act_forward(l->activation, &l->act, n, out, y, bp__layer_b(l), z, y);
}

static void dense_backward(bp_layer *l, size_t n, const float *x, float *z, const float *y,
                           float *dy, int dy_is_dz, float *dx, int accumulate)
{
    /* x: [n x in], dy -> dz: [n x out], dw: [out x in], db: [out], dx: [n x in] */
    const size_t in = l->in, out = l->out;
    if (!dy_is_dz) bp__act_backward(l->activation, &l->act, n, out, z, y, dy);
    const float *dz = dy;

    /* db (+)= sum over rows of dz */
    float *restrict db = bp__layer_db(l);
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

const bp__layer_vtable bp__dense_vtable = {
    .kind = BP_LAYER_DENSE,
    .name = "dense",
    .scratch_floats = dense_scratch,
    .forward = dense_forward,
    .backward = dense_backward,
    .keys = BP__LAYER_KEY_BIT(BP_LAYER_TRAINABLE) | BP__LAYER_KEY_BIT(BP_LAYER_LEAKY_SLOPE) |
            BP__LAYER_KEY_BIT(BP_LAYER_ELU_ALPHA) | BP__LAYER_KEY_BIT(BP_LAYER_L2) |
            BP__LAYER_KEY_BIT(BP_LAYER_L1),
    .grad_bound_dense = 1,
};
