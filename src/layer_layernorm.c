/* layer_layernorm.c -- layer normalisation (Ba, Kiros & Hinton 2016), PyTorch's nn.LayerNorm
 * over the last dimension: each row's F features (flat rows: the whole row; image rows: all
 * C*H*W values; sequence rows: each step's F features, n*T rows):
 *
 *   mu = mean x, var = mean (x - mu)^2 (biased), rstd = 1 / sqrt(var + eps),
 *   xhat = (x - mu) rstd, y = g * xhat + b.
 *
 * The same in training and inference (no running statistics). Parameters: gain g [F] (the
 * layer's "weights", initialised to 1) then bias b [F] (0). Backward, per row, with
 * dxhat = g * dy:
 *   db += sum over rows dy, dg += sum over rows dy * xhat,
 *   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
 * Training scratch: xhat [rows x F] then rstd [rows]. Row sums are taken in double. */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"

#include <math.h>
#include <string.h>

typedef struct bp__ln_priv {
    double epsilon; /* BP_LAYER_LN_EPSILON */
} bp__ln_priv;

/* Features per normalised row (a step's on sequences). */
static size_t ln_width(const bp_layer *l)
{
    return l->nweights;
}

static size_t ln_scratch(const bp_layer *l, size_t n, int training)
{
    const size_t rows = bp__layer_rows(l, n);
    return training ? rows * ln_width(l) + rows : 0;
}

static void ln_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                       int training)
{
    /* x, y: [rows x F]; scratch (training): xhat [rows x F], rstd [rows] */
    const size_t rows = bp__layer_rows(l, n), F = ln_width(l);
    const double eps = ((const bp__ln_priv *)l->priv)->epsilon;
    const float *g = bp__layer_w(l), *b = bp__layer_b(l);
    float *xhat = training ? scratch : NULL;
    float *rstd_out = training ? scratch + rows * F : NULL;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * F;
        double sum = 0.0;
        for (size_t f = 0; f < F; f++)
            sum += (double)xr[f];
        const double mu = sum / (double)F;
        double ss = 0.0;
        for (size_t f = 0; f < F; f++)
            ss += ((double)xr[f] - mu) * ((double)xr[f] - mu);
        const double rstd = 1.0 / sqrt(ss / (double)F + eps);
        float *yr = y + r * F;
        for (size_t f = 0; f < F; f++) {
            const float h = (float)(((double)xr[f] - mu) * rstd);
            if (xhat != NULL) xhat[r * F + f] = h;
            yr[f] = g[f] * h + b[f];
        }
        if (rstd_out != NULL) rstd_out[r] = (float)rstd;
    }
}

static int ln_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                       float *dy, int dy_is_dz, float *dx, int accumulate)
{
    /* dy: [rows x F]; dw = dg: [F], db: [F]; dx: [rows x F] or NULL */
    (void)x, (void)y, (void)dy_is_dz;
    const size_t rows = bp__layer_rows(l, n), F = ln_width(l);
    const float *xhat = scratch, *rstd = scratch + rows * F;
    const float *g = bp__layer_w(l);
    float *dg = bp__layer_dw(l), *db = bp__layer_db(l);
    if (!accumulate) {
        memset(dg, 0, F * sizeof(float));
        memset(db, 0, F * sizeof(float));
    }
    for (size_t r = 0; r < rows; r++) {
        const float *dyr = dy + r * F, *hr = xhat + r * F;
        for (size_t f = 0; f < F; f++) {
            db[f] += dyr[f];
            dg[f] += dyr[f] * hr[f];
        }
        if (dx == NULL) continue;
        double s1 = 0.0, s2 = 0.0; /* sum dxhat, sum dxhat * xhat */
        for (size_t f = 0; f < F; f++) {
            const double d = (double)g[f] * (double)dyr[f];
            s1 += d;
            s2 += d * (double)hr[f];
        }
        const double m1 = s1 / (double)F, m2 = s2 / (double)F, rs = (double)rstd[r];
        float *dxr = dx + r * F;
        for (size_t f = 0; f < F; f++)
            dxr[f] = (float)(rs * ((double)g[f] * (double)dyr[f] - m1 - (double)hr[f] * m2));
    }
    return 0;
}

static bp_status ln_clone(bp_layer *dst, const bp_layer *src)
{
    return bp__layer_copy_priv(dst, src, sizeof(bp__ln_priv));
}

static void ln_set_epsilon(bp_layer *l, double v)
{
    ((bp__ln_priv *)l->priv)->epsilon = v;
}
static double ln_get_epsilon(const bp_layer *l)
{
    return ((const bp__ln_priv *)l->priv)->epsilon;
}

static const bp__layer_key ln_keys[] = {
    BP__KEY_TRAINABLE,
    {BP_LAYER_LN_EPSILON, ln_set_epsilon, ln_get_epsilon},
    BP__KEY_END,
};

static bp_status ln_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    static const uint32_t known[] = {0};
    const size_t F = bp__net_out_step_width(net);
    BP_CHECK(bp__hyper_expect_params(net, "layernorm", 2 * F, expect)); /* before allocating */
    const bp_status s = bp_net_add_layernorm(net);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

const bp__layer_vtable bp__layernorm_vtable = {
    .kind = BP_LAYER_LAYERNORM,
    .name = "layernorm",
    .scratch_floats = ln_scratch,
    .forward = ln_forward,
    .backward = ln_backward,
    .destroy = bp__layer_free_priv,
    .clone = ln_clone,
    .keys = ln_keys,
    .hyper = bp__hyper_settings_only,
    .construct = ln_construct,
};

bp_status bp_net_add_layernorm(bp_net *net)
{
    static const char fn[] = "bp_net_add_layernorm";
    BP__NET_CHECK(net, fn);
    BP_CHECK(bp__net_check_append(net, fn));
    size_t c, h, w;
    bp__net_out_shape(net, &c, &h, &w);
    bp_layer *l = bp__layer_new(net, fn, &bp__layernorm_vtable, BP_ACT_IDENTITY, c, h, w);
    if (l == NULL) return BP_ERR_NOMEM;
    bp__ln_priv *p = bp__malloc(&net->alloc, sizeof *p);
    if (p == NULL) {
        bp__layer_discard(net, l);
        return bp__fail(net->err, BP_ERR_NOMEM, "%s: out of memory", fn);
    }
    p->epsilon = 1e-5; /* BP_LAYER_LN_EPSILON's default (layer_settings.c) */
    l->priv = p;
    l->out_steps = l->in_steps; /* per step on sequences */
    const size_t F = bp__net_out_step_width(net);
    l->nweights = F;
    l->nbiases = F;
    return bp__net_append_or_discard(net, l, BP_INIT_CONSTANT, 1.0);
}
