/* layer_conv2d.c -- 2-D convolution (cross-correlation, as in every framework) over NCHW
 * rows with a fused bias + activation, by im2col + sgemm over chunks of the batch.
 *
 * Shapes: x [n x C x H x W], W [F x C x kh x kw] (= [F x K], K = C*kh*kw), b [F],
 * y [n x F x OH x OW] (P = OH*OW), OH = (H + 2 pad - kh) / stride + 1 (likewise OW), zero
 * padding of pad on every side.
 *
 * The batch goes in chunks of S samples (conv_chunk: S*K*P within a budget of floats, at
 * least one sample), each with one GEMM per product over all its samples' columns:
 * Forward: cols [K x S*P] = im2col of the chunk's samples side by side; t [F x S*P] = W cols
 *   + b (one sgemm, bias pre-filled, beta = 1), copied to y's NCHW rows; then one fused
 *   activation pass over the batch.
 * Backward: dz = dy * f'(z); per chunk t [F x S*P] = dz gathered filter-major (with each
 *   sample's per-filter sums for db), dW (+)= t cols^T (one sgemm), dcols [K x S*P] = W^T t
 *   (one sgemm) and dx = col2im(dcols) per sample (skipped for the first layer).
 * Training keeps every chunk's columns (n*K*P floats) from forward to backward, so im2col
 * runs once per step. All products go through bp__gemm. In training the passes around the
 * GEMMs (im2col + bias, the copy into y, the gather, col2im) are split by sample across the
 * worker threads (workers.c); each sample's floats are computed alone, so the split changes
 * no result. */
#include "util.h"
#include "gemm.h"
#include "activation.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "workers.h"

#include <stddef.h>
#include <string.h>

/* Convolution: save filters (= out_c), kernel_h, kernel_w, stride, padding; the activation
 * is struct bp_layer.activation. Nothing here grows with the output size: the activation
 * pass takes no bias buffer (bp__act_apply), the output lives in the net's workspace. */
typedef struct bp__conv_priv {
    size_t kh, kw, stride, pad;
    size_t k;       /* in_c * kh * kw: rows of the im2col matrix */
    size_t p;       /* out_h * out_w: columns of the im2col matrix */
    size_t train_s; /* samples per chunk of the last training forward (backward reads its
                       columns in that layout) */
} bp__conv_priv;

/* Floats of im2col columns per chunk. With a thread budget of 2 or more, 1 Mi floats (4 MiB):
 * products of thousands of columns, which OpenBLAS's threads share well. On one thread,
 * 64 Ki floats (256 KiB, one sample's columns for most layers): a chunk's columns then stay in
 * L2 from im2col to the GEMMs, which measured 8-15% faster per epoch for the example
 * network (docs/performance.md). The workspace is always planned for the wide chunks, so a
 * change of the thread budget between steps needs no new plan. A chunk holds at least one
 * sample. bp__conv_chunk_floats, when not 0, replaces both (tests force several chunks). */
size_t bp__conv_chunk_floats = 0;
enum { CHUNK_WIDE = 1 << 20, CHUNK_L2 = 1 << 16 };

/* Samples per chunk for a batch of n within @p budget floats of columns. */
static size_t chunk_within(const bp__conv_priv *p, size_t n, size_t budget)
{
    size_t s = budget / (p->k * p->p);
    if (s < 1) s = 1;
    return s < n ? s : n;
}

/* Samples per chunk the workspace is planned for (the most any pass uses). */
static size_t conv_chunk_planned(const bp__conv_priv *p, size_t n)
{
    return chunk_within(p, n, bp__conv_chunk_floats ? bp__conv_chunk_floats : CHUNK_WIDE);
}

/* Samples per chunk for a pass now (at most conv_chunk_planned). */
static size_t conv_chunk(const bp__conv_priv *p, size_t n)
{
    const size_t budget = bp__conv_chunk_floats      ? bp__conv_chunk_floats
                          : bp_get_num_threads() > 1 ? CHUNK_WIDE
                                                     : CHUNK_L2;
    return chunk_within(p, n, budget);
}

/* Training: the columns of every chunk (chunk c at cols + c*S*K*P, [K x s*P] for its s
 * samples), then z (GELU/SiLU only), then t [F x S*P], dcols [K x S*P] and the bias gradient's
 * per-sample sums u [n x F]. Inference: one chunk's columns, then t. */
static size_t conv_scratch(const bp_layer *l, size_t n, int training)
{
    const bp__conv_priv *p = l->priv;
    const size_t sp = conv_chunk_planned(p, n) * p->p;
    if (!training) return p->k * sp + l->out_c * sp;
    return n * p->k * p->p + (bp__act_needs_z(l->activation) ? n * l->out : 0) + l->out_c * sp +
           p->k * sp + n * l->out_c;
}

/* The output columns ox in [lo, hi) whose input column ix = ox*s - pad + kx lies inside a
 * plane of width W (lo == hi when there is none). */
static void col_range(size_t W, size_t OW, size_t s, size_t pad, size_t kx, size_t *lo, size_t *hi)
{
    size_t a = pad > kx ? (pad - kx + s - 1) / s : 0;         /* first ox with ix >= 0 */
    size_t b = W + pad > kx ? (W + pad - kx + s - 1) / s : 0; /* first ox with ix >= W */
    if (b > OW) b = OW;
    if (a > b) a = b;
    *lo = a, *hi = b;
}

/* One row of the im2col matrix for kernel offset (ky, kx) of input channel plane xc [H x W]:
 * dst[oy * OW + ox] = xc[oy*s - pad + ky][ox*s - pad + kx], 0 outside the plane. */
static void im2col_row(const float *xc, size_t H, size_t W, size_t OH, size_t OW, size_t s,
                       size_t pad, size_t ky, size_t kx, float *dst)
{
    size_t lo, hi;
    col_range(W, OW, s, pad, kx, &lo, &hi);
    if (s == 1 && OW == W && OH == H) {
        /* "Same" padding: the row is the plane shifted by (ky - pad) rows and (kx - pad)
         * columns, i.e. one copy at a constant offset, zero where it reads outside the plane,
         * then zeros in the columns outside it (ox < lo or ox >= hi) */
        const ptrdiff_t off =
            ((ptrdiff_t)ky - (ptrdiff_t)pad) * (ptrdiff_t)W + ((ptrdiff_t)kx - (ptrdiff_t)pad);
        const size_t total = H * W;
        const size_t a = off < 0 ? (size_t)-off : 0;
        const size_t b = off <= 0 ? total : (size_t)off < total ? total - (size_t)off : 0;
        if (a >= b) {
            memset(dst, 0, total * sizeof(float));
            return;
        }
        memset(dst, 0, a * sizeof(float));
        memcpy(dst + a, xc + (ptrdiff_t)a + off, (b - a) * sizeof(float));
        memset(dst + b, 0, (total - b) * sizeof(float));
        for (size_t oy = 0; oy < OH; oy++) {
            for (size_t ox = 0; ox < lo; ox++)
                dst[oy * OW + ox] = 0.0f;
            for (size_t ox = hi; ox < OW; ox++)
                dst[oy * OW + ox] = 0.0f;
        }
        return;
    }
    for (size_t oy = 0; oy < OH; oy++, dst += OW) {
        const size_t iy = oy * s + ky; /* row iy - pad of the plane */
        if (iy < pad || iy - pad >= H || lo == hi) {
            memset(dst, 0, OW * sizeof(float));
            continue;
        }
        const float *src = xc + (iy - pad) * W + (lo * s + kx - pad);
        for (size_t ox = 0; ox < lo; ox++)
            dst[ox] = 0.0f;
        if (s == 1) {
            memcpy(dst + lo, src, (hi - lo) * sizeof(float));
        } else {
            for (size_t ox = lo; ox < hi; ox++, src += s)
                dst[ox] = *src;
        }
        for (size_t ox = hi; ox < OW; ox++)
            dst[ox] = 0.0f;
    }
}

/* Scatter-add of im2col_row: xc[...] += src[oy * OW + ox] for the in-plane positions. */
static void col2im_row(const float *src, size_t H, size_t W, size_t OH, size_t OW, size_t s,
                       size_t pad, size_t ky, size_t kx, float *xc)
{
    size_t lo, hi;
    col_range(W, OW, s, pad, kx, &lo, &hi);
    for (size_t oy = 0; oy < OH; oy++, src += OW) {
        const size_t iy = oy * s + ky;
        if (iy < pad || iy - pad >= H || lo == hi) continue;
        float *dst = xc + (iy - pad) * W + (lo * s + kx - pad);
        if (s == 1) { /* contiguous: vectorised, the same additions */
            float *restrict d = dst;
            const float *restrict v = src + lo;
            for (size_t k = 0; k < hi - lo; k++)
                d[k] += v[k];
            continue;
        }
        for (size_t ox = lo; ox < hi; ox++, dst += s)
            *dst += src[ox];
    }
}

/* cols [K x P] of one sample x [C x H x W], rows @p ld floats apart. */
static void im2col(const bp_layer *l, const float *x, float *cols, size_t ld)
{
    const bp__conv_priv *p = l->priv;
    const size_t H = l->in_h, W = l->in_w, OH = l->out_h, OW = l->out_w;
    for (size_t c = 0; c < l->in_c; c++)
        for (size_t ky = 0; ky < p->kh; ky++)
            for (size_t kx = 0; kx < p->kw; kx++) {
                const size_t r = (c * p->kh + ky) * p->kw + kx;
                im2col_row(x + c * H * W, H, W, OH, OW, p->stride, p->pad, ky, kx, cols + r * ld);
            }
}

/* dx [C x H x W] = col2im(dcols [K x P], rows @p ld floats apart) (overwrites dx). */
static void col2im(const bp_layer *l, const float *dcols, size_t ld, float *dx)
{
    const bp__conv_priv *p = l->priv;
    const size_t H = l->in_h, W = l->in_w, OH = l->out_h, OW = l->out_w;
    memset(dx, 0, l->in * sizeof(float));
    for (size_t c = 0; c < l->in_c; c++)
        for (size_t ky = 0; ky < p->kh; ky++)
            for (size_t kx = 0; kx < p->kw; kx++) {
                const size_t r = (c * p->kh + ky) * p->kw + kx;
                col2im_row(dcols + r * ld, H, W, OH, OW, p->stride, p->pad, ky, kx, dx + c * H * W);
            }
}

#ifdef BP_PROFILE
/* Bench-only split of the convolution time (bench/bp_bench.c, case cnn-epoch): the library
 * itself is never built with BP_PROFILE. */
#include <time.h>

double bp__conv_prof_ns[3];
static double prof_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}
#define PROF_START(t)      const double t = prof_now()
#define PROF_STOP(t, slot) (bp__conv_prof_ns[slot] += prof_now() - (t))
#else
#define PROF_START(t)      ((void)0)
#define PROF_STOP(t, slot) ((void)0)
#endif

/* The passes around each chunk's GEMMs, over samples [i0 + a, i0 + b) of the chunk (in
 * training split across the worker threads: every sample's floats are computed alone, so the
 * split changes none). */
typedef struct conv_job {
    const bp_layer *l;
    size_t i0, s; /* the chunk: samples i0 .. i0 + s - 1 */
    const float *x, *dz;
    float *cols, *t, *y, *dcols, *dx, *u;
} conv_job;

/* Before the forward GEMM: the sample's im2col columns and its bias columns of t. */
static void conv_pre_range(void *ctx, size_t a, size_t b)
{
    const conv_job *j = ctx;
    const bp__conv_priv *p = j->l->priv;
    const size_t F = j->l->out_c, P = p->p, sp = j->s * P;
    const float *bias = bp__layer_b(j->l);
    for (size_t i = a; i < b; i++) {
        im2col(j->l, j->x + (j->i0 + i) * j->l->in, j->cols + i * P, sp);
        for (size_t f = 0; f < F; f++) {
            float *restrict tf = j->t + f * sp + i * P;
            for (size_t q = 0; q < P; q++)
                tf[q] = bias[f];
        }
    }
}

/* After the forward GEMM: the sample's rows of t [F x s*P] into y's NCHW row. */
static void conv_out_range(void *ctx, size_t a, size_t b)
{
    const conv_job *j = ctx;
    const size_t F = j->l->out_c, P = ((const bp__conv_priv *)j->l->priv)->p, sp = j->s * P;
    for (size_t i = a; i < b; i++)
        for (size_t f = 0; f < F; f++)
            memcpy(j->y + (j->i0 + i) * j->l->out + f * P, j->t + f * sp + i * P,
                   P * sizeof(float));
}

/* Run @p fn over the chunk's samples: split across the worker threads in training (when
 * @p par), on this thread otherwise (inference may run on several threads at once). */
static void conv_pass(const bp_layer *l, conv_job *job, size_t floats, int par, bp__range_fn fn)
{
    if (par)
        bp__workers_run_items(&l->net->workers, &l->net->alloc, job->s, floats, fn, job);
    else
        fn(job, 0, job->s);
}

static void conv_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                         int training)
{
    /* x: [n x in], w: [F x K], b: [F], y: [n x F x P]; scratch: cols (+ z) + t */
    bp__conv_priv *p = l->priv;
    const size_t F = l->out_c, K = p->k, P = p->p, S = conv_chunk(p, n);
    const float *w = bp__layer_w(l);
    if (training) p->train_s = S; /* (inference may run on several threads: no write) */
    float *t = training ? scratch + n * K * P + (bp__act_needs_z(l->activation) ? n * l->out : 0)
                        : scratch + K * S * P; /* [F x S*P] */
    PROF_START(t_all);
    for (size_t i0 = 0; i0 < n; i0 += S) {
        const size_t s = n - i0 < S ? n - i0 : S, sp = s * P;
        float *cols = training ? scratch + i0 * K * P : scratch; /* [K x s*P] */
        /* One sample per chunk: t [F x P] has the layout of the sample's row of y, so the
         * bias and the GEMM go there directly (no copy). */
        float *tc = s == 1 ? y + i0 * l->out : t;
        conv_job job = {l, i0, s, x, NULL, cols, tc, y, NULL, NULL, NULL};
        PROF_START(t_cols);
        conv_pass(l, &job, s * (l->in + K * P + F * P), training, conv_pre_range);
        PROF_STOP(t_cols, BP__PROF_COLS);
        PROF_START(t_gemm);
        bp__gemm(0, 0, F, sp, K, 1.0f, w, K, cols, sp, 1.0f, tc, sp);
        PROF_STOP(t_gemm, BP__PROF_GEMM);
        if (s > 1) conv_pass(l, &job, 2 * s * l->out, training, conv_out_range);
    }
    if (l->activation != BP_ACT_IDENTITY) {
        float *z = training && bp__act_needs_z(l->activation) ? scratch + n * K * P : NULL;
        bp__act_apply(l->activation, &l->act, n * F, P, y, z, y);
    }
    PROF_STOP(t_all, BP__PROF_TOTAL);
}

/* Before the backward GEMMs: the sample's dz [F x P] gathered into t [F x s*P], and its
 * per-filter sums u[i][f] = sum_q dz[f][q] (in q order, as the bias gradient adds them; four
 * filters at a time for four independent chains). */
static void conv_gather_range(void *ctx, size_t a, size_t b)
{
    const conv_job *j = ctx;
    const size_t F = j->l->out_c, P = ((const bp__conv_priv *)j->l->priv)->p, sp = j->s * P;
    for (size_t i = a; i < b; i++) {
        const float *d = j->dz + (j->i0 + i) * j->l->out;
        float *u = j->u + (j->i0 + i) * F;
        size_t f = 0;
        for (; f + 4 <= F; f += 4) {
            const float *restrict d0 = d + f * P, *restrict d1 = d0 + P, *restrict d2 = d1 + P,
                                  *restrict d3 = d2 + P;
            float u0 = 0.0f, u1 = 0.0f, u2 = 0.0f, u3 = 0.0f;
            for (size_t q = 0; q < P; q++) {
                u0 += d0[q];
                u1 += d1[q];
                u2 += d2[q];
                u3 += d3[q];
            }
            u[f] = u0, u[f + 1] = u1, u[f + 2] = u2, u[f + 3] = u3;
        }
        for (; f < F; f++) {
            const float *restrict df = d + f * P;
            float uf = 0.0f;
            for (size_t q = 0; q < P; q++)
                uf += df[q];
            u[f] = uf;
        }
        if (j->t == NULL) continue; /* one sample per chunk: dz is used in place */
        for (f = 0; f < F; f++)
            memcpy(j->t + f * sp + i * P, d + f * P, P * sizeof(float));
    }
}

/* After the dX GEMM: the sample's dx = col2im of its columns of dcols. */
static void conv_col2im_range(void *ctx, size_t a, size_t b)
{
    const conv_job *j = ctx;
    const size_t P = ((const bp__conv_priv *)j->l->priv)->p, sp = j->s * P;
    for (size_t i = a; i < b; i++)
        col2im(j->l, j->dcols + i * P, sp, j->dx + (j->i0 + i) * j->l->in);
}

static int conv_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                         float *dy, int dy_is_dz, float *dx, int accumulate)
{
    (void)x, (void)dy_is_dz;
    PROF_START(t_all);
    const bp__conv_priv *p = l->priv;
    /* the chunks of the training forward whose columns backward reads */
    const size_t F = l->out_c, K = p->k, P = p->p,
                 S = p->train_s ? p->train_s : conv_chunk_planned(p, n);
    const int keep_z = bp__act_needs_z(l->activation);
    const float *z = keep_z ? scratch + n * K * P : NULL;
    float *t = scratch + n * K * P + (keep_z ? n * l->out : 0); /* [F x S*P] */
    float *dcols = t + F * S * P;                               /* [K x S*P] */
    float *u = dcols + K * S * P;                               /* [n x F] */
    bp__act_backward(l->activation, &l->act, n * F, P, z, y, dy);
    const float *dz = dy; /* [n x F x P] */
    float *dw = bp__layer_dw(l);
    const float *w = bp__layer_w(l);
    for (size_t i0 = 0; i0 < n; i0 += S) {
        const size_t s = n - i0 < S ? n - i0 : S, sp = s * P;
        const float *cols = scratch + i0 * K * P; /* [K x s*P] */
        /* One sample per chunk: its dz [F x P] is t already (only the sums are taken). */
        const float *tc = s == 1 ? dz + i0 * l->out : t;
        conv_job job = {l, i0, s, NULL, dz, NULL, s == 1 ? NULL : t, NULL, dcols, dx, u};
        conv_pass(l, &job, 2 * s * l->out, 1, conv_gather_range);
        PROF_START(t_gemm);
        /* dW [F x K] (+)= t [F x s*P] cols^T */
        bp__gemm(0, 1, F, K, sp, 1.0f, tc, sp, cols, sp, accumulate || i0 > 0 ? 1.0f : 0.0f, dw, K);
        if (dx != NULL) /* dcols [K x s*P] = W^T t */
            bp__gemm(1, 0, K, sp, F, 1.0f, w, K, tc, sp, 0.0f, dcols, sp);
        PROF_STOP(t_gemm, BP__PROF_GEMM);
        if (dx != NULL) {
            PROF_START(t_cols);
            conv_pass(l, &job, s * (K * P + 2 * l->in), 1, conv_col2im_range);
            PROF_STOP(t_cols, BP__PROF_COLS);
        }
    }
    /* db = sum over the samples, in order, of their per-filter sums */
    float *restrict db = bp__layer_db(l);
    for (size_t f = 0; f < F; f++) {
        float sum = accumulate ? db[f] : 0.0f;
        for (size_t i = 0; i < n; i++)
            sum += u[i * F + f];
        db[f] = sum;
    }
    PROF_STOP(t_all, BP__PROF_TOTAL);
    return 0;
}

static void conv_destroy(bp_layer *l)
{
    bp__conv_priv *p = l->priv;
    if (p == NULL) return;
    bp__free(&l->net->alloc, p);
    l->priv = NULL;
}

static bp__conv_priv *conv_priv_new(const bp__alloc *a, const bp__conv_priv *init)
{
    bp__conv_priv *p = bp__malloc(a, sizeof *p);
    if (p == NULL) return NULL;
    *p = *init;
    return p;
}

static bp_status conv_clone(bp_layer *dst, const bp_layer *src)
{
    dst->priv = conv_priv_new(&dst->net->alloc, src->priv);
    return dst->priv != NULL ? BP_OK : BP_ERR_NOMEM;
}

/* ---- persistence: filters, kernel, stride, padding, activation and settings ---- */

static size_t conv_hyper(const bp_layer *l, bp__hyper *hp, size_t cap)
{
    const bp__conv_priv *p = l->priv;
    const bp__hyper c[6] = {
        {BP__HP_FILTERS, (double)l->out_c}, {BP__HP_KERNEL_H, (double)p->kh},
        {BP__HP_KERNEL_W, (double)p->kw},   {BP__HP_STRIDE, (double)p->stride},
        {BP__HP_PADDING, (double)p->pad},   {BP__HP_ACTIVATION, (double)l->activation}};
    for (size_t i = 0; i < 6 && i < cap; i++)
        hp[i] = c[i];
    return bp__hyper_put_settings(l, hp, cap, 6);
}

static bp_status conv_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    static const uint32_t known[] = {BP__HP_FILTERS,
                                     BP__HP_KERNEL_H,
                                     BP__HP_KERNEL_W,
                                     BP__HP_STRIDE,
                                     BP__HP_PADDING,
                                     BP__HP_ACTIVATION,
                                     0};
    size_t f, kh, kw, stride, pad, act, c, h, w, k, want;
    BP_CHECK(bp__hyper_get_size(net, "conv2d", hp, count, BP__HP_FILTERS, 1, BP__MAX_WIDTH, &f));
    BP_CHECK(bp__hyper_get_size(net, "conv2d", hp, count, BP__HP_KERNEL_H, 1, 1024, &kh));
    BP_CHECK(bp__hyper_get_size(net, "conv2d", hp, count, BP__HP_KERNEL_W, 1, 1024, &kw));
    BP_CHECK(bp__hyper_get_size(net, "conv2d", hp, count, BP__HP_STRIDE, 1, 1024, &stride));
    BP_CHECK(bp__hyper_get_size(net, "conv2d", hp, count, BP__HP_PADDING, 0, 1023, &pad));
    BP_CHECK(bp__hyper_get_size(net, "conv2d", hp, count, BP__HP_ACTIVATION, 0, 1000, &act));
    bp__net_out_shape(net, &c, &h, &w);
    /* filters x (C kh kw) weights + filters biases, checked before anything is allocated. */
    if (bp__mul_size(kh * kw, c, &k) != 0 || bp__mul_size(k + 1, f, &want) != 0)
        return bp__fail(net->err, BP_ERR_FORMAT,
                        "layer %zu (conv2d): parameter count "
                        "overflows",
                        net->nlayers);
    BP_CHECK(bp__hyper_expect_params(net, "conv2d", want, expect));
    const bp_status s = bp_net_add_conv2d(net, f, kh, kw, stride, pad, (int)act);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

static const bp__layer_key conv_keys[] = {BP__KEY_TRAINABLE, BP__KEY_ACTIVATION, BP__KEY_PENALTIES,
                                          BP__KEY_END};

const bp__layer_vtable bp__conv2d_vtable = {
    .kind = BP_LAYER_CONV2D,
    .name = "conv2d",
    .scratch_floats = conv_scratch,
    .forward = conv_forward,
    .backward = conv_backward,
    .destroy = conv_destroy,
    .clone = conv_clone,
    .keys = conv_keys,
    .hyper = conv_hyper,
    .construct = conv_construct,
};

#define FN "bp_net_add_conv2d"

bp_status bp_net_add_conv2d(bp_net *net, size_t filters, size_t kernel_h, size_t kernel_w,
                            size_t stride, size_t padding, int activation)
{
    BP__NET_CHECK(net, FN);
    if (!bp__act_valid(activation) || activation == BP_ACT_SOFTMAX)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        FN ": activation %d is unknown or softmax (softmax belongs to a dense "
                           "output layer)",
                        activation);
    if (filters == 0 || filters > BP__MAX_WIDTH || kernel_h == 0 || kernel_w == 0 ||
        kernel_h > 1024 || kernel_w > 1024 || stride == 0 || stride > 1024)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        FN ": filters %zu (1..%zu), kernel %zu x %zu (1..1024), stride %zu "
                           "(1..1024)",
                        filters, BP__MAX_WIDTH, kernel_h, kernel_w, stride);
    if (padding >= kernel_h || padding >= kernel_w)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        FN ": padding %zu must be smaller than the kernel %zu x %zu", padding,
                        kernel_h, kernel_w);
    BP_CHECK(bp__net_check_append(net, FN));
    BP_CHECK(bp__net_refuse_sequence(net, FN, "convolution takes images"));
    size_t C, H, W;
    bp__net_out_shape(net, &C, &H, &W);
    if (H + 2 * padding < kernel_h || W + 2 * padding < kernel_w)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        FN ": kernel %zu x %zu exceeds the padded input %zu x %zu", kernel_h,
                        kernel_w, H + 2 * padding, W + 2 * padding);
    const size_t OH = (H + 2 * padding - kernel_h) / stride + 1;
    const size_t OW = (W + 2 * padding - kernel_w) / stride + 1;
    size_t plane, out, k, nw, kp;
    if (bp__mul_size(OH, OW, &plane) != 0 || bp__mul_size(plane, filters, &out) != 0 ||
        out > BP__MAX_WIDTH || bp__mul_size(kernel_h * kernel_w, C, &k) != 0 ||
        bp__mul_size(k, filters, &nw) != 0 || bp__mul_size(k, plane, &kp) != 0)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        FN ": output %zu x %zu x %zu exceeds %zu values or the weights overflow",
                        filters, OH, OW, BP__MAX_WIDTH);
    bp_layer *l = bp__layer_new(net, FN, &bp__conv2d_vtable, activation, filters, OH, OW);
    if (l == NULL) return BP_ERR_NOMEM;
    const bp__conv_priv init = {kernel_h, kernel_w, stride, padding, k, plane, 0};
    l->priv = conv_priv_new(&net->alloc, &init);
    if (l->priv == NULL) {
        bp__layer_discard(net, l);
        return bp__fail(net->err, BP_ERR_NOMEM, FN ": out of memory");
    }
    l->nweights = nw;
    l->nbiases = filters;
    l->fan_in = k;
    l->fan_out = filters * kernel_h * kernel_w;
    return bp__net_append_or_discard(net, l, BP_INIT_DEFAULT, 0.0);
}
