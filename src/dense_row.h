/* dense_row.h -- the dense layer's single-row sums y = W x, shared by layer_dense.c and the
 * fused tiny-net step (net_tiny.c) so that both add the same floats in the same order by
 * construction. Private: included by those two files only. */
#ifndef BP_DENSE_ROW_H
#define BP_DENSE_ROW_H

#include "util.h"
#include "layer.h"

/* dot(w, x) over @p in floats. Sixteen partial sums, combined pairwise at the end, let the
 * compiler keep the sum in vector registers (a single running sum is a serial chain of adds
 * it may not reorder); the order is fixed, so the result is the same on every run. */
static BP__ALWAYS_INLINE float bp__dot_row(const float *restrict w, const float *restrict x,
                                            size_t in)
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

/* y[o] = dot(W[o], x) for o < out (x: [in], w: [out x in], y: [out]); with rows under 64
 * floats, four outputs at a time, each its own running sum in bp__dot_row's order (the same
 * floats): x[i] is loaded once for four products, and four independent chains overlap. */
static BP__ALWAYS_INLINE void bp__dense_row_sums(const float *restrict w, const float *restrict x,
                                                 size_t in, size_t out, float *restrict y)
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
    for (; o < out; o++) y[o] = bp__dot_row(w + o * in, x, in);
}

#endif /* BP_DENSE_ROW_H */
