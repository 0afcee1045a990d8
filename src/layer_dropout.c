/* layer_dropout.c -- inverted dropout (Srivastava et al. 2014): in training each activation
 * is kept with probability 1 - rate and scaled by 1 / (1 - rate), else zeroed, so that the
 * expected output equals the input and inference is the identity.
 *
 * The mask (0 or 1 / (1 - rate) per element) is drawn from the network's generator (so the
 * same seed gives the same masks) and kept in the training scratch for backward:
 * dx = dy * mask. */
#include "util.h"
#include "rng.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "workers.h"

#include <string.h>

/* Dropout: save rate. */
typedef struct bp__dropout_priv {
    double rate; /* probability of zeroing an activation, [0, 1) */
} bp__dropout_priv;

static size_t dropout_scratch(const bp_layer *l, size_t n, int training)
{
    return training ? n * l->out : 0;
}

/* out = in * mask over [b, e) (training only; split across the worker threads, elementwise). */
typedef struct dropout_job {
    const float *in, *mask;
    float *out;
} dropout_job;

static void dropout_range(void *ctx, size_t b, size_t e)
{
    const dropout_job *j = ctx;
    const float *restrict in = j->in, *restrict mask = j->mask;
    float *restrict out = j->out;
    for (size_t k = b; k < e; k++)
        out[k] = in[k] * mask[k];
}

static void dropout_forward(bp_layer *l, size_t n, const float *x, float *mask, float *y,
                            int training)
{
    /* x, y, mask: [n x out] */
    const size_t total = n * l->out;
    const bp__dropout_priv *p = l->priv;
    if (!training || p->rate == 0.0) {
        memcpy(y, x, total * sizeof(float));
        if (training) {
            for (size_t k = 0; k < total; k++)
                mask[k] = 1.0f;
        }
        return;
    }
    /* Keep when u >= rate, u uniform in [0, 1) with 24 random bits: P(keep) = 1 - rate up to
     * the 2^-24 resolution of the threshold. */
    const float rate = (float)p->rate, keep = (float)(1.0 / (1.0 - p->rate));
    bp__rng *rng = &l->net->rng;
    for (size_t k = 0; k < total; k++) /* one generator: drawn in order, on this thread */
        mask[k] = bp__rng_uniform(rng) >= rate ? keep : 0.0f;
    dropout_job job = {x, mask, y};
    bp__workers_run(&l->net->workers, &l->net->alloc, total, dropout_range, &job);
}

static int dropout_backward(bp_layer *l, size_t n, const float *x, float *mask, const float *y,
                            float *dy, int dy_is_dz, float *dx, int accumulate)
{
    (void)x, (void)y, (void)dy_is_dz, (void)accumulate;
    if (dx == NULL) return 0;
    dropout_job job = {dy, mask, dx};
    bp__workers_run(&l->net->workers, &l->net->alloc, n * l->out, dropout_range, &job);
    return 0;
}

static bp_status dropout_clone(bp_layer *dst, const bp_layer *src)
{
    return bp__layer_copy_priv(dst, src, sizeof(bp__dropout_priv));
}

static void dropout_set_rate(bp_layer *l, double v)
{
    ((bp__dropout_priv *)l->priv)->rate = v;
}
static double dropout_get_rate(const bp_layer *l)
{
    return ((const bp__dropout_priv *)l->priv)->rate;
}

static const bp__layer_key dropout_keys[] = {
    BP__KEY_TRAINABLE,
    {BP_LAYER_DROPOUT_RATE, dropout_set_rate, dropout_get_rate},
    BP__KEY_END,
};

static bp_status dropout_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    static const uint32_t known[] = {0};
    double rate;
    BP_CHECK(bp__hyper_expect_params(net, "dropout", 0, expect));
    if (bp__hyper_find(hp, count, BP_LAYER_DROPOUT_RATE, &rate) != 0)
        return bp__fail(net->err, BP_ERR_FORMAT, "layer %zu (dropout): rate missing", net->nlayers);
    const bp_status s = bp_net_add_dropout(net, rate);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

const bp__layer_vtable bp__dropout_vtable = {
    .kind = BP_LAYER_DROPOUT,
    .name = "dropout",
    .scratch_floats = dropout_scratch,
    .forward = dropout_forward,
    .draws_rng = 1,
    .backward = dropout_backward,
    .destroy = bp__layer_free_priv,
    .clone = dropout_clone,
    .keys = dropout_keys,
    .hyper = bp__hyper_settings_only,
    .construct = dropout_construct,
};

bp_status bp_net_add_dropout(bp_net *net, double rate)
{
    BP__NET_CHECK(net, "bp_net_add_dropout");
    double lo, hi;
    bp_layer_param_bounds(BP_LAYER_DROPOUT_RATE, &lo, &hi);
    if (!(rate >= lo && rate <= hi))
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_net_add_dropout: rate %g is outside [0, 1)", rate);
    BP_CHECK(bp__net_check_append(net, "bp_net_add_dropout"));
    size_t c, h, w;
    bp__net_out_shape(net, &c, &h, &w);
    bp_layer *l =
        bp__layer_new(net, "bp_net_add_dropout", &bp__dropout_vtable, BP_ACT_IDENTITY, c, h, w);
    if (l == NULL) return BP_ERR_NOMEM;
    bp__dropout_priv *p = bp__malloc(&net->alloc, sizeof *p);
    if (p == NULL) {
        bp__layer_discard(net, l);
        return bp__fail(net->err, BP_ERR_NOMEM, "bp_net_add_dropout: out of memory");
    }
    p->rate = rate;
    l->priv = p;
    l->out_steps = l->in_steps; /* elementwise: sequences stay sequences */
    return bp__net_append_or_discard(net, l, BP_INIT_DEFAULT, 0.0);
}
