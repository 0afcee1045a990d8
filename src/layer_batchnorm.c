/* layer_batchnorm.c -- batch normalisation (Ioffe & Szegedy 2015) of the previous layer's
 * output, per feature for flat rows and per channel for NCHW image rows:
 *
 *   training:   mu, var = mean and biased variance of the batch (over n rows, and over H*W
 *               positions of each channel); xhat = (x - mu) / sqrt(var + eps);
 *               y = gamma * xhat + beta; running = m * running + (1 - m) * batch, where
 *               the running variance takes the unbiased batch variance var * M / (M - 1)
 *               over the M values of a channel (PyTorch's rule; the biased one when M = 1).
 *   inference:  the same with the running mean and variance.
 *
 * Parameters: gamma [C] (the layer's "weights", initialised to 1) then beta [C] ("biases",
 * 0). Backward in closed form, per channel over its m = n*H*W values:
 *   dbeta = sum dy, dgamma = sum dy * xhat,
 *   dx = gamma / (m * sqrt(var + eps)) * (m * dy - dbeta - xhat * dgamma).
 * Training scratch: xhat [n x out], 1/sqrt(var + eps) [C], then the staged running mean and
 * variance [C] [C] (kept by bn_commit once the step succeeds). Sums run in eight float
 * lanes per row and channel and are combined in double. */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "workers.h"

#include <math.h>
#include <string.h>

/* Batch normalisation: save momentum, epsilon, running_mean and running_var. */
typedef struct bp__bn_priv {
    size_t channels;     /* C: per channel for image data, per feature for flat data */
    size_t spatial;      /* H*W of each channel (1 for flat data) */
    double momentum;     /* running = momentum * running + (1 - momentum) * batch */
    double epsilon;      /* added to the variance */
    float *running_mean; /* [channels] */
    float *running_var;  /* [channels] (unbiased batch variance, as PyTorch) */
} bp__bn_priv;

/* Sums over one channel's run of S values, in eight float lanes (vectorised; each lane adds
 * S/8 values) combined in double. */
enum { LANES = 8 };

static double lane_total(const float *acc)
{
    double t = 0.0;
    for (size_t j = 0; j < LANES; j++)
        t += (double)acc[j];
    return t;
}

/* sum v */
static double run_sum(const float *v, size_t S)
{
    float acc[LANES] = {0};
    size_t k = 0;
    for (; k + LANES <= S; k += LANES)
        for (size_t j = 0; j < LANES; j++)
            acc[j] += v[k + j];
    for (; k < S; k++)
        acc[0] += v[k];
    return lane_total(acc);
}

/* sum (v - mu)^2 */
static double run_sq_dev(const float *v, size_t S, float mu)
{
    float acc[LANES] = {0};
    size_t k = 0;
    for (; k + LANES <= S; k += LANES)
        for (size_t j = 0; j < LANES; j++)
            acc[j] += (v[k + j] - mu) * (v[k + j] - mu);
    for (; k < S; k++)
        acc[0] += (v[k] - mu) * (v[k] - mu);
    return lane_total(acc);
}

/* sum d and sum d * h */
static void run_dot(const float *d, const float *h, size_t S, double *sd, double *sdh)
{
    float a[LANES] = {0}, b[LANES] = {0};
    size_t k = 0;
    for (; k + LANES <= S; k += LANES)
        for (size_t j = 0; j < LANES; j++) {
            a[j] += d[k + j];
            b[j] += d[k + j] * h[k + j];
        }
    for (; k < S; k++) {
        a[0] += d[k];
        b[0] += d[k] * h[k];
    }
    *sd += lane_total(a);
    *sdh += lane_total(b);
}

static size_t bn_scratch(const bp_layer *l, size_t n, int training)
{
    const bp__bn_priv *p = l->priv;
    return training ? n * l->out + 3 * p->channels : 0;
}

/* One pass over channels [c0, c1) (the passes split the channels across the worker
 * threads in training: every channel is computed alone, so the split changes no float). */
typedef struct bn_job {
    bp_layer *l;
    size_t n;
    const float *x, *dy;
    float *y, *scratch, *dx;
    int accumulate; /* backward: add to dgamma, dbeta */
} bn_job;

static void bn_forward_range(void *ctx, size_t c0, size_t c1)
{
    const bn_job *j = ctx;
    bp__bn_priv *p = j->l->priv;
    const size_t n = j->n, S = p->spatial, row = j->l->out, C = p->channels;
    const float *x = j->x, *gamma = bp__layer_w(j->l), *beta = bp__layer_b(j->l);
    float *y = j->y, *xhat = j->scratch, *inv_std = j->scratch + n * row;
    /* The new running statistics are staged after inv_std, kept by bn_commit. */
    float *new_mean = inv_std + C, *new_var = new_mean + C;
    const double m = (double)n * (double)S, mom = p->momentum;
    for (size_t c = c0; c < c1; c++) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += run_sum(x + i * row + c * S, S);
        const double mean = sum / m;
        double ss = 0.0; /* two-pass variance: no cancellation */
        for (size_t i = 0; i < n; i++)
            ss += run_sq_dev(x + i * row + c * S, S, (float)mean);
        const double var = ss / m;
        const float inv = (float)(1.0 / sqrt(var + p->epsilon));
        const float mu = (float)mean, g = gamma[c], b = beta[c];
        inv_std[c] = inv;
        for (size_t i = 0; i < n; i++) {
            const float *restrict xi = x + i * row + c * S;
            float *restrict hi = xhat + i * row + c * S;
            float *restrict yi = y + i * row + c * S;
            for (size_t k = 0; k < S; k++) {
                hi[k] = (xi[k] - mu) * inv;
                yi[k] = g * hi[k] + b;
            }
        }
        new_mean[c] = (float)(mom * (double)p->running_mean[c] + (1.0 - mom) * mean);
        const double uvar = m > 1.0 ? var * m / (m - 1.0) : var; /* unbiased */
        new_var[c] = (float)(mom * (double)p->running_var[c] + (1.0 - mom) * uvar);
    }
}

static void bn_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                       int training)
{
    /* x, y: [n x C x S] (S = H*W, 1 for flat rows); gamma, beta: [C] */
    bp__bn_priv *p = l->priv;
    const size_t C = p->channels, S = p->spatial, row = l->out;
    const float *gamma = bp__layer_w(l), *beta = bp__layer_b(l);
    if (!training) { /* inference may run on several threads at once: no workers here */
        for (size_t c = 0; c < C; c++) {
            const float inv = (float)(1.0 / sqrt((double)p->running_var[c] + p->epsilon));
            const float a = gamma[c] * inv, b = beta[c] - a * p->running_mean[c];
            for (size_t i = 0; i < n; i++) {
                const float *restrict xi = x + i * row + c * S;
                float *restrict yi = y + i * row + c * S;
                for (size_t k = 0; k < S; k++)
                    yi[k] = a * xi[k] + b;
            }
        }
        return;
    }
    bn_job job = {l, n, x, NULL, y, scratch, NULL, 0};
    /* reads x twice, writes xhat and y */
    bp__workers_run_items(&l->net->workers, &l->net->alloc, C, 4 * n * row, bn_forward_range, &job);
}

/* Verify (@p apply 0) or keep (1) the running statistics bn_forward staged in @p scratch:
 * they must be finite (a variance of inputs near 1e20 overflows a float) and the variance
 * non-negative, as a loaded file must hold them. */
static bp_status bn_commit(bp_layer *l, const float *scratch, size_t n, int apply)
{
    bp__bn_priv *p = l->priv;
    const size_t C = p->channels;
    const float *new_mean = scratch + n * l->out + C, *new_var = new_mean + C;
    if (apply) {
        memcpy(p->running_mean, new_mean, C * sizeof(float));
        memcpy(p->running_var, new_var, C * sizeof(float));
        return BP_OK;
    }
    for (size_t c = 0; c < C; c++)
        if (!isfinite(new_mean[c]) || !isfinite(new_var[c]) || new_var[c] < 0.0f)
            return bp__fail(l->net->err, BP_ERR_NONFINITE,
                            "layer %zu (batchnorm): channel %zu's running %s would become %g "
                            "(the batch's values are too large); nothing changed",
                            l->index, c, isfinite(new_mean[c]) ? "variance" : "mean",
                            (double)(isfinite(new_mean[c]) ? new_var[c] : new_mean[c]));
    return BP_OK;
}

static void bn_backward_range(void *ctx, size_t c0, size_t c1)
{
    const bn_job *j = ctx;
    const bp__bn_priv *p = j->l->priv;
    const size_t n = j->n, S = p->spatial, row = j->l->out;
    const float *dy = j->dy, *xhat = j->scratch, *inv_std = j->scratch + n * row;
    const float *gamma = bp__layer_w(j->l);
    float *dgamma = bp__layer_dw(j->l), *dbeta = bp__layer_db(j->l), *dx = j->dx;
    const int accumulate = j->accumulate;
    const double m = (double)n * (double)S;
    for (size_t c = c0; c < c1; c++) {
        double sb = 0.0, sg = 0.0;
        for (size_t i = 0; i < n; i++)
            run_dot(dy + i * row + c * S, xhat + i * row + c * S, S, &sb, &sg);
        dgamma[c] = (accumulate ? dgamma[c] : 0.0f) + (float)sg;
        dbeta[c] = (accumulate ? dbeta[c] : 0.0f) + (float)sb;
        if (dx == NULL) continue;
        const float scale = gamma[c] * inv_std[c];
        const float mb = (float)(sb / m), mg = (float)(sg / m);
        for (size_t i = 0; i < n; i++) {
            const float *restrict di = dy + i * row + c * S, *restrict hi = xhat + i * row + c * S;
            float *restrict xi = dx + i * row + c * S;
            for (size_t k = 0; k < S; k++)
                xi[k] = scale * (di[k] - mb - hi[k] * mg);
        }
    }
}

static int bn_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                       float *dy, int dy_is_dz, float *dx, int accumulate)
{
    (void)x, (void)y, (void)dy_is_dz;
    const bp__bn_priv *p = l->priv;
    bn_job job = {l, n, NULL, dy, NULL, scratch, dx, accumulate};
    /* reads dy and xhat twice, writes dx */
    bp__workers_run_items(&l->net->workers, &l->net->alloc, p->channels,
                          (dx != NULL ? 5 : 2) * n * l->out, bn_backward_range, &job);
    return 0;
}

static void bn_destroy(bp_layer *l)
{
    bp__bn_priv *p = l->priv;
    if (p == NULL) return;
    const bp__alloc *a = &l->net->alloc;
    bp__free(a, p->running_mean);
    bp__free(a, p->running_var);
    bp__free(a, p);
    l->priv = NULL;
}

/* Allocate the private state for @p channels; NULL when out of memory. */
static bp__bn_priv *bn_priv_new(const bp__alloc *a, size_t channels)
{
    bp__bn_priv *p = bp__calloc(a, 1, sizeof *p);
    if (p == NULL) return NULL;
    p->running_mean = bp__calloc(a, channels, sizeof(float));
    p->running_var = bp__calloc(a, channels, sizeof(float));
    if (p->running_mean == NULL || p->running_var == NULL) {
        bp__free(a, p->running_mean);
        bp__free(a, p->running_var);
        bp__free(a, p);
        return NULL;
    }
    p->channels = channels;
    return p;
}

static bp_status bn_clone(bp_layer *dst, const bp_layer *src)
{
    const bp__bn_priv *s = src->priv;
    bp__bn_priv *p = bn_priv_new(&dst->net->alloc, s->channels);
    if (p == NULL) return BP_ERR_NOMEM;
    float *mean = p->running_mean, *var = p->running_var;
    *p = *s;
    p->running_mean = mean;
    p->running_var = var;
    memcpy(mean, s->running_mean, s->channels * sizeof(float));
    memcpy(var, s->running_var, s->channels * sizeof(float));
    dst->priv = p;
    return BP_OK;
}

static void bn_set_momentum(bp_layer *l, double v)
{
    ((bp__bn_priv *)l->priv)->momentum = v;
}
static double bn_get_momentum(const bp_layer *l)
{
    return ((const bp__bn_priv *)l->priv)->momentum;
}
static void bn_set_epsilon(bp_layer *l, double v)
{
    ((bp__bn_priv *)l->priv)->epsilon = v;
}
static double bn_get_epsilon(const bp_layer *l)
{
    return ((const bp__bn_priv *)l->priv)->epsilon;
}

static const bp__layer_key bn_keys[] = {
    BP__KEY_TRAINABLE,
    {BP_LAYER_BN_MOMENTUM, bn_set_momentum, bn_get_momentum},
    {BP_LAYER_BN_EPSILON, bn_set_epsilon, bn_get_epsilon},
    BP__KEY_END,
};

/* ---- persistence: settings (momentum, epsilon, trainable) and the running statistics ---- */

static bp_status bn_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    static const uint32_t known[] = {0};
    size_t c, h, w;
    bp__net_out_shape(net, &c, &h, &w);
    BP_CHECK(bp__hyper_expect_params(net, "batchnorm", 2 * c, expect));
    const bp_status s = bp_net_add_batchnorm(net);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

static size_t bn_state_floats(const bp_layer *l)
{
    return 2 * ((const bp__bn_priv *)l->priv)->channels;
}

static void bn_state_write(const bp_layer *l, float *dst)
{
    const bp__bn_priv *p = l->priv;
    memcpy(dst, p->running_mean, p->channels * sizeof(float));
    memcpy(dst + p->channels, p->running_var, p->channels * sizeof(float));
}

static bp_status bn_state_read(bp_layer *l, const float *src, size_t count)
{
    bp__bn_priv *p = l->priv;
    const size_t c = p->channels;
    if (count != 2 * c)
        return bp__fail(l->net->err, BP_ERR_FORMAT,
                        "layer %zu (batchnorm): %zu state floats, "
                        "expected %zu",
                        l->index, count, 2 * c);
    for (size_t i = 0; i < 2 * c; i++)
        if (!isfinite(src[i]) || (i >= c && src[i] < 0.0f))
            return bp__fail(l->net->err, BP_ERR_NONFINITE,
                            "layer %zu (batchnorm): running "
                            "statistic %zu is %g",
                            l->index, i, (double)src[i]);
    memcpy(p->running_mean, src, c * sizeof(float));
    memcpy(p->running_var, src + c, c * sizeof(float));
    return BP_OK;
}

const bp__layer_vtable bp__batchnorm_vtable = {
    .kind = BP_LAYER_BATCHNORM,
    .name = "batchnorm",
    .scratch_floats = bn_scratch,
    .forward = bn_forward,
    .commit = bn_commit,
    .backward = bn_backward,
    .destroy = bn_destroy,
    .clone = bn_clone,
    .keys = bn_keys,
    .hyper = bp__hyper_settings_only,
    .construct = bn_construct,
    .state_floats = bn_state_floats,
    .state_write = bn_state_write,
    .state_read = bn_state_read,
};

bp_status bp_net_add_batchnorm(bp_net *net)
{
    BP__NET_CHECK(net, "bp_net_add_batchnorm");
    BP_CHECK(bp__net_check_append(net, "bp_net_add_batchnorm"));
    BP_CHECK(bp__net_refuse_sequence(net, "bp_net_add_batchnorm",
                                     "normalise sequences with bp_net_add_layernorm()"));
    size_t c, h, w;
    bp__net_out_shape(net, &c, &h, &w);
    bp_layer *l =
        bp__layer_new(net, "bp_net_add_batchnorm", &bp__batchnorm_vtable, BP_ACT_IDENTITY, c, h, w);
    if (l == NULL) return BP_ERR_NOMEM;
    bp__bn_priv *p = bn_priv_new(&net->alloc, c);
    if (p == NULL) {
        bp__layer_discard(net, l);
        return bp__fail(net->err, BP_ERR_NOMEM, "bp_net_add_batchnorm: out of memory");
    }
    p->spatial = h * w;
    p->momentum = 0.99;
    p->epsilon = 1e-5;
    for (size_t k = 0; k < c; k++)
        p->running_var[k] = 1.0f;
    l->priv = p;
    l->nweights = c;
    l->nbiases = c;
    return bp__net_append_or_discard(net, l, BP_INIT_CONSTANT, 1.0);
}
