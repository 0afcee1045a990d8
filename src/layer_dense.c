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

/* dot(w, x) over @p in floats. Sixteen partial sums, combined pairwise at the end, let the
 * compiler keep the sum in vector registers (a single running sum is a serial chain of adds
 * it may not reorder); the order is fixed, so the result is the same on every run. */
static inline float dot_row(const float *restrict w, const float *restrict x, size_t in)
{
    enum { L = 16 };
    size_t i = 0;
    float s = 0.0f;
    if (in >= 4 * L) { /* below that the final combine costs more than it saves */
        float acc[L] = {0};
        for (; i + L <= in; i += L)
            for (size_t j = 0; j < L; j++) acc[j] += w[i + j] * x[i + j];
        for (size_t h = L / 2; h > 0; h /= 2)
            for (size_t j = 0; j < h; j++) acc[j] += acc[j + h];
        s = acc[0];
    }
    for (; i < in; i++) s += w[i] * x[i];
    return s;
}

BP__KERNEL
static void dense_forward(bp_layer *l, size_t n, const float *x, float *z, float *y,
                          int training)
{
    /* x: [n x in], w: [out x in], b: [out], y: [n x out], z (scratch): [n x out] or NULL */
    (void)training;
    const size_t in = l->in, out = l->out;
    const float *restrict w = bp__layer_w(l);
    if (n == 1) {
        /* One row (online training, single predictions): y = W x, no GEMM dispatch. */
        for (size_t o = 0; o < out; o++) y[o] = dot_row(w + o * in, x, in);
    } else {
        /* y = x W^T */
        bp__gemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    }
    /* z = y + b; y = f(z) */
    bp__act_forward(l->activation, &l->act, n, out, y, bp__layer_b(l), z, y);
}

BP__KERNEL
static void dense_backward(bp_layer *l, size_t n, const float *x, float *z, const float *y,
                           float *dy, int dy_is_dz, float *dx, int accumulate)
{
    /* x: [n x in], dy -> dz: [n x out], dw: [out x in], db: [out], dx: [n x in] */
    const size_t in = l->in, out = l->out;
    if (!dy_is_dz) bp__act_backward(l->activation, &l->act, n, out, z, y, dy);
    const float *dz = dy;

    float *restrict db = bp__layer_db(l);
    if (n == 1) {
        /* One row: db (+)= dz, dW (+)= dz x^T (outer product), dx = W^T dz. */
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
        return;
    }
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

const bp__layer_vtable bp__dense_vtable = {
    BP_LAYER_DENSE, "dense", dense_scratch, dense_forward, dense_backward, NULL, NULL,
};
