/* layer_pool.c -- 2-D pooling over NCHW rows, without padding: max and average over
 * size x size windows moved by stride (OH = (H - size) / stride + 1), and global average
 * pooling ([C x H x W] -> [C x 1 x 1]).
 *
 * Max pooling's backward routes each dy to the first position of its window holding the
 * maximum (the argmax, found again from x and y: the forward output is an exact copy of that
 * input value), so no mask is stored; overlapping windows (stride < size) add up. */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "workers.h"

#include <string.h>

/* Max and average pooling: save size and stride (no padding). */
typedef struct bp__pool_priv {
    size_t size, stride;
} bp__pool_priv;

/* Max pooling over planes [p0, p1) of the n*C planes; training splits the planes across the
 * worker threads (each plane alone: the split changes no float). */
typedef struct pool_job {
    const bp_layer *l;
    const float *x, *y, *dy;
    float *yw, *dx;
} pool_job;

/* m = the window's largest value: the first element, then each element that compares greater
 * (so a NaN first element stays, a later NaN is skipped). */
static void maxpool_forward_range(void *ctx, size_t p0, size_t p1)
{
    /* x: [planes x H x W], y: [planes x OH x OW] */
    const pool_job *j = ctx;
    const bp__pool_priv *p = j->l->priv;
    const size_t W = j->l->in_w, OH = j->l->out_h, OW = j->l->out_w, sz = p->size, s = p->stride;
    const size_t in_plane = j->l->in_h * W;
    for (size_t pl = p0; pl < p1; pl++) {
        const float *xc = j->x + pl * in_plane;
        float *yc = j->yw + pl * OH * OW;
        if (sz == 2 && s == 2) { /* the common case, unrolled (the same comparisons) */
            for (size_t oy = 0; oy < OH; oy++) {
                const float *restrict r0 = xc + 2 * oy * W, *restrict r1 = r0 + W;
                float *restrict yr = yc + oy * OW;
                for (size_t ox = 0; ox < OW; ox++) {
                    float m = r0[2 * ox];
                    m = r0[2 * ox + 1] > m ? r0[2 * ox + 1] : m;
                    m = r1[2 * ox] > m ? r1[2 * ox] : m;
                    m = r1[2 * ox + 1] > m ? r1[2 * ox + 1] : m;
                    yr[ox] = m;
                }
            }
            continue;
        }
        for (size_t oy = 0; oy < OH; oy++)
            for (size_t ox = 0; ox < OW; ox++) {
                const float *win = xc + oy * s * W + ox * s;
                float m = win[0];
                for (size_t a = 0; a < sz; a++)
                    for (size_t b = 0; b < sz; b++)
                        m = win[a * W + b] > m ? win[a * W + b] : m;
                yc[oy * OW + ox] = m;
            }
    }
}

static void maxpool_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                            int training)
{
    /* x: [n x C x H x W], y: [n x C x OH x OW] */
    (void)scratch;
    pool_job job = {l, x, NULL, NULL, y, NULL};
    const size_t planes = n * l->out_c;
    if (training) /* inference may run on several threads at once: no workers there */
        bp__workers_run_items(&l->net->workers, &l->net->alloc, planes, n * (l->in + l->out),
                              maxpool_forward_range, &job);
    else
        maxpool_forward_range(&job, 0, planes);
}

/* dx of planes [p0, p1): each dy goes to the first position of its window (in scan order)
 * holding the maximum y, or to the window's first position when none does (NaN). */
static void maxpool_backward_range(void *ctx, size_t p0, size_t p1)
{
    const pool_job *j = ctx;
    const bp__pool_priv *p = j->l->priv;
    const size_t H = j->l->in_h, W = j->l->in_w, OH = j->l->out_h, OW = j->l->out_w;
    const size_t sz = p->size, s = p->stride, in_plane = H * W;
    for (size_t pl = p0; pl < p1; pl++) {
        const float *xc = j->x + pl * in_plane, *yc = j->y + pl * OH * OW;
        const float *dc = j->dy + pl * OH * OW;
        float *dxc = j->dx + pl * in_plane;
        if (sz == 2 && s == 2) {
            /* Disjoint windows: each is written whole (dy at the argmax, 0 elsewhere), then
             * the rows and the column the windows leave out (odd H or W) are zeroed. */
            for (size_t oy = 0; oy < OH; oy++) {
                const float *restrict r0 = xc + 2 * oy * W, *restrict r1 = r0 + W;
                float *restrict d0 = dxc + 2 * oy * W, *restrict d1 = d0 + W;
                for (size_t ox = 0; ox < OW; ox++) {
                    /* 0 + dy as the general path adds it (-0 becomes +0) */
                    const float m = yc[oy * OW + ox], g = 0.0f + dc[oy * OW + ox];
                    const size_t c = 2 * ox;
                    /* branch-free: which of the four is the first to equal m */
                    const int e0 = r0[c] == m, e1 = r0[c + 1] == m, e2 = r1[c] == m,
                              e3 = r1[c + 1] == m;
                    const int a1 = (!e0) & e1, a2 = (!e0) & (!e1) & e2,
                              a3 = (!e0) & (!e1) & (!e2) & e3;
                    const int a0 = !(a1 | a2 | a3);
                    d0[c] = a0 ? g : 0.0f;
                    d0[c + 1] = a1 ? g : 0.0f;
                    d1[c] = a2 ? g : 0.0f;
                    d1[c + 1] = a3 ? g : 0.0f;
                }
                if (W > 2 * OW) d0[W - 1] = d1[W - 1] = 0.0f;
            }
            if (H > 2 * OH) memset(dxc + 2 * OH * W, 0, (H - 2 * OH) * W * sizeof(float));
            continue;
        }
        memset(dxc, 0, in_plane * sizeof(float));
        for (size_t oy = 0; oy < OH; oy++)
            for (size_t ox = 0; ox < OW; ox++) {
                const size_t base = oy * s * W + ox * s;
                const float m = yc[oy * OW + ox];
                size_t at = base;
                for (size_t a = sz; a-- > 0;) /* reverse scan: the first match wins */
                    for (size_t b = sz; b-- > 0;)
                        if (xc[base + a * W + b] == m) at = base + a * W + b;
                dxc[at] += dc[oy * OW + ox];
            }
    }
}

static int maxpool_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                            float *dy, int dy_is_dz, float *dx, int accumulate)
{
    (void)scratch, (void)dy_is_dz, (void)accumulate;
    if (dx == NULL) return 0;
    pool_job job = {l, x, y, dy, NULL, dx};
    bp__workers_run_items(&l->net->workers, &l->net->alloc, n * l->out_c,
                          n * (2 * l->in + 2 * l->out), maxpool_backward_range, &job);
    return 0;
}

static void avgpool_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                            int training)
{
    (void)scratch, (void)training;
    const bp__pool_priv *p = l->priv;
    const size_t W = l->in_w, OH = l->out_h, OW = l->out_w, sz = p->size, s = p->stride;
    const size_t planes = n * l->out_c, in_plane = l->in_h * W;
    const float inv = 1.0f / (float)(sz * sz);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xc = x + pl * in_plane;
        float *yc = y + pl * OH * OW;
        for (size_t oy = 0; oy < OH; oy++)
            for (size_t ox = 0; ox < OW; ox++) {
                const float *win = xc + oy * s * W + ox * s;
                float t = 0.0f;
                for (size_t a = 0; a < sz; a++)
                    for (size_t b = 0; b < sz; b++)
                        t += win[a * W + b];
                yc[oy * OW + ox] = t * inv;
            }
    }
}

static int avgpool_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                            float *dy, int dy_is_dz, float *dx, int accumulate)
{
    (void)x, (void)scratch, (void)y, (void)dy_is_dz, (void)accumulate;
    if (dx == NULL) return 0;
    const bp__pool_priv *p = l->priv;
    const size_t W = l->in_w, OH = l->out_h, OW = l->out_w, sz = p->size, s = p->stride;
    const size_t planes = n * l->out_c, in_plane = l->in_h * W;
    const float inv = 1.0f / (float)(sz * sz);
    memset(dx, 0, n * l->in * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++) {
        const float *dc = dy + pl * OH * OW;
        float *dxc = dx + pl * in_plane;
        for (size_t oy = 0; oy < OH; oy++)
            for (size_t ox = 0; ox < OW; ox++) {
                float *win = dxc + oy * s * W + ox * s;
                const float g = dc[oy * OW + ox] * inv;
                for (size_t a = 0; a < sz; a++)
                    for (size_t b = 0; b < sz; b++)
                        win[a * W + b] += g;
            }
    }
    return 0;
}

static void gap_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                        int training)
{
    /* x: [n x C x S], y: [n x C] */
    (void)scratch, (void)training;
    const size_t planes = n * l->out_c, S = l->in_h * l->in_w;
    const float inv = 1.0f / (float)S;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xc = x + pl * S;
        float t = 0.0f;
        for (size_t k = 0; k < S; k++)
            t += xc[k];
        y[pl] = t * inv;
    }
}

static int gap_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                        float *dy, int dy_is_dz, float *dx, int accumulate)
{
    (void)x, (void)scratch, (void)y, (void)dy_is_dz, (void)accumulate;
    if (dx == NULL) return 0;
    const size_t planes = n * l->out_c, S = l->in_h * l->in_w;
    const float inv = 1.0f / (float)S;
    for (size_t pl = 0; pl < planes; pl++) {
        const float g = dy[pl] * inv;
        float *dxc = dx + pl * S;
        for (size_t k = 0; k < S; k++)
            dxc[k] = g;
    }
    return 0;
}

static bp_status pool_clone(bp_layer *dst, const bp_layer *src)
{
    return bp__layer_copy_priv(dst, src, sizeof(bp__pool_priv));
}

/* ---- persistence: window size and stride (global average pooling: nothing) ---- */

static size_t pool_hyper(const bp_layer *l, bp__hyper *hp, size_t cap)
{
    const bp__pool_priv *p = l->priv;
    const bp__hyper c[2] = {{BP__HP_POOL_SIZE, (double)p->size},
                            {BP__HP_STRIDE, (double)p->stride}};
    for (size_t i = 0; i < 2 && i < cap; i++)
        hp[i] = c[i];
    return bp__hyper_put_settings(l, hp, cap, 2);
}

static bp_status pool_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect,
                                int max)
{
    static const uint32_t known[] = {BP__HP_POOL_SIZE, BP__HP_STRIDE, 0};
    const char *kind = max ? "maxpool2d" : "avgpool2d";
    size_t size, stride;
    BP_CHECK(bp__hyper_expect_params(net, kind, 0, expect));
    BP_CHECK(bp__hyper_get_size(net, kind, hp, count, BP__HP_POOL_SIZE, 1, 1024, &size));
    BP_CHECK(bp__hyper_get_size(net, kind, hp, count, BP__HP_STRIDE, 1, 1024, &stride));
    const bp_status s =
        max ? bp_net_add_maxpool2d(net, size, stride) : bp_net_add_avgpool2d(net, size, stride);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

static bp_status maxpool_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    return pool_construct(net, hp, count, expect, 1);
}

static bp_status avgpool_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    return pool_construct(net, hp, count, expect, 0);
}

static bp_status gap_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    static const uint32_t known[] = {0};
    BP_CHECK(bp__hyper_expect_params(net, "global_avgpool", 0, expect));
    const bp_status s = bp_net_add_global_avgpool(net);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

static const bp__layer_key pool_keys[] = {BP__KEY_TRAINABLE, BP__KEY_END};

const bp__layer_vtable bp__maxpool2d_vtable = {
    .kind = BP_LAYER_MAXPOOL2D,
    .name = "maxpool2d",
    .scratch_floats = bp__no_scratch,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .destroy = bp__layer_free_priv,
    .clone = pool_clone,
    .keys = pool_keys,
    .hyper = pool_hyper,
    .construct = maxpool_construct,
};

const bp__layer_vtable bp__avgpool2d_vtable = {
    .kind = BP_LAYER_AVGPOOL2D,
    .name = "avgpool2d",
    .scratch_floats = bp__no_scratch,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .destroy = bp__layer_free_priv,
    .clone = pool_clone,
    .keys = pool_keys,
    .hyper = pool_hyper,
    .construct = avgpool_construct,
};

const bp__layer_vtable bp__global_avgpool_vtable = {
    .kind = BP_LAYER_GLOBAL_AVGPOOL,
    .name = "global_avgpool",
    .scratch_floats = bp__no_scratch,
    .forward = gap_forward,
    .backward = gap_backward,
    .keys = pool_keys,
    .hyper = bp__hyper_settings_only,
    .construct = gap_construct,
};

static bp_status add_pool(bp_net *net, const char *fn, const bp__layer_vtable *vt, size_t size,
                          size_t stride)
{
    BP__NET_CHECK(net, fn);
    if (size == 0 || stride == 0 || size > 1024 || stride > 1024)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "%s: size %zu and stride %zu must be in 1..1024", fn, size, stride);
    BP_CHECK(bp__net_check_append(net, fn));
    BP_CHECK(bp__net_refuse_sequence(net, fn, "pooling takes images"));
    size_t C, H, W;
    bp__net_out_shape(net, &C, &H, &W);
    if (size > H || size > W)
        return bp__fail(net->err, BP_ERR_SHAPE, "%s: window %zu x %zu exceeds the input %zu x %zu",
                        fn, size, size, H, W);
    const size_t OH = (H - size) / stride + 1, OW = (W - size) / stride + 1;
    bp_layer *l = bp__layer_new(net, fn, vt, BP_ACT_IDENTITY, C, OH, OW);
    if (l == NULL) return BP_ERR_NOMEM;
    bp__pool_priv *p = bp__malloc(&net->alloc, sizeof *p);
    if (p == NULL) {
        bp__layer_discard(net, l);
        return bp__fail(net->err, BP_ERR_NOMEM, "%s: out of memory", fn);
    }
    p->size = size;
    p->stride = stride;
    l->priv = p;
    return bp__net_append_or_discard(net, l, BP_INIT_DEFAULT, 0.0);
}

bp_status bp_net_add_maxpool2d(bp_net *net, size_t size, size_t stride)
{
    return add_pool(net, "bp_net_add_maxpool2d", &bp__maxpool2d_vtable, size, stride);
}

bp_status bp_net_add_avgpool2d(bp_net *net, size_t size, size_t stride)
{
    return add_pool(net, "bp_net_add_avgpool2d", &bp__avgpool2d_vtable, size, stride);
}

bp_status bp_net_add_global_avgpool(bp_net *net)
{
    BP__NET_CHECK(net, "bp_net_add_global_avgpool");
    BP_CHECK(bp__net_check_append(net, "bp_net_add_global_avgpool"));
    BP_CHECK(bp__net_refuse_sequence(net, "bp_net_add_global_avgpool", "pooling takes images"));
    size_t C, H, W;
    bp__net_out_shape(net, &C, &H, &W);
    bp_layer *l = bp__layer_new(net, "bp_net_add_global_avgpool", &bp__global_avgpool_vtable,
                                BP_ACT_IDENTITY, C, 1, 1);
    if (l == NULL) return BP_ERR_NOMEM;
    return bp__net_append_or_discard(net, l, BP_INIT_DEFAULT, 0.0);
}
