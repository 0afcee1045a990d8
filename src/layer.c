/* layer.c -- the public layer handle: queries, parameter access, initialisation, settings. */
#include "util.h"
#include "rng.h"
#include "layer.h"
#include "net.h"

#include <math.h>
#include <string.h>

#define LAYER_CHECK(l, fn)                                                                        \
    do {                                                                                          \
        if (!bp__layer_ok(l))                                                                     \
            return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: invalid layer handle", fn);            \
    } while (0)

int bp__init_valid(int scheme) { return scheme >= BP_INIT_DEFAULT && scheme <= BP_INIT_NORMAL; }

static int relu_family(int act)
{
    return act == BP_ACT_RELU || act == BP_ACT_LEAKY_RELU || act == BP_ACT_ELU ||
           act == BP_ACT_GELU || act == BP_ACT_SILU;
}

void bp__layer_init_params(bp_layer *l, int scheme, double value)
{
    bp__rng *rng = &l->net->rng;
    float *w = bp__layer_w(l);
    const size_t nw = l->nweights;
    const double fan_in = (double)l->fan_in, fan_out = (double)l->fan_out;
    if (scheme == BP_INIT_DEFAULT)
        scheme = relu_family(l->activation) ? BP_INIT_HE_NORMAL : BP_INIT_GLOROT_UNIFORM;
    double a = 0.0, sd = 0.0;
    switch (scheme) {
    case BP_INIT_GLOROT_UNIFORM: a = sqrt(6.0 / (fan_in + fan_out)); break;
    case BP_INIT_GLOROT_NORMAL: sd = sqrt(2.0 / (fan_in + fan_out)); break;
    case BP_INIT_HE_UNIFORM: a = sqrt(6.0 / fan_in); break;
    case BP_INIT_HE_NORMAL: sd = sqrt(2.0 / fan_in); break;
    case BP_INIT_LECUN_NORMAL: sd = sqrt(1.0 / fan_in); break;
    case BP_INIT_NORMAL: sd = value; break;
    default: break;
    }
    for (size_t k = 0; k < nw; k++) {
        switch (scheme) {
        case BP_INIT_GLOROT_UNIFORM:
        case BP_INIT_HE_UNIFORM:
            w[k] = (float)((2.0 * (double)bp__rng_uniform(rng) - 1.0) * a);
            break;
        case BP_INIT_GLOROT_NORMAL:
        case BP_INIT_HE_NORMAL:
        case BP_INIT_LECUN_NORMAL:
        case BP_INIT_NORMAL: w[k] = (float)(bp__rng_normal(rng) * sd); break;
        case BP_INIT_ZEROS: w[k] = 0.0f; break;
        case BP_INIT_CONSTANT: w[k] = (float)value; break;
        default: break;
        }
    }
    memset(bp__layer_b(l), 0, l->nbiases * sizeof(float));
}

int bp_layer_kind(const bp_layer *layer) { return bp__layer_ok(layer) ? layer->vt->kind : 0; }

int bp_layer_activation(const bp_layer *layer)
{
    return bp__layer_ok(layer) ? layer->activation : -1;
}

size_t bp_layer_input_size(const bp_layer *layer) { return bp__layer_ok(layer) ? layer->in : 0; }

size_t bp_layer_output_size(const bp_layer *layer)
{
    return bp__layer_ok(layer) ? layer->out : 0;
}

size_t bp_layer_param_count(const bp_layer *layer)
{
    return bp__layer_ok(layer) ? layer->nweights + layer->nbiases : 0;
}

/* Failures of the const getters go to bp_last_error() only (STYLE §4). */
static bp_status copy_out(const bp_layer *l, const char *fn, const char *what, const float *src,
                          size_t count, float *dst, size_t capacity)
{
    if (dst == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: dst is NULL", fn);
    if (capacity < count)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "%s: layer %zu has %zu %s, buffer holds %zu", fn, l->index, count, what,
                        capacity);
    if (count > 0) memcpy(dst, src, count * sizeof(float));
    return BP_OK;
}

static bp_status copy_in(bp_layer *l, const char *fn, const char *what, float *dst, size_t count,
                         const float *src, size_t n)
{
    if (src == NULL)
        return bp__fail(l->net->err, BP_ERR_INVALID_ARG, "%s: src is NULL", fn);
    if (n != count)
        return bp__fail(l->net->err, BP_ERR_SHAPE, "%s: layer %zu has %zu %s, got %zu", fn,
                        l->index, count, what, n);
    const size_t bad = bp__first_nonfinite(src, n);
    if (bad != n)
        return bp__fail(l->net->err, BP_ERR_NONFINITE, "%s: element %zu is %g", fn, bad,
                        (double)src[bad]);
    memcpy(dst, src, n * sizeof(float));
    return BP_OK;
}

bp_status bp_layer_get_weights(const bp_layer *layer, float *dst, size_t capacity)
{
    LAYER_CHECK(layer, "bp_layer_get_weights");
    return copy_out(layer, "bp_layer_get_weights", "weights", bp__layer_w(layer), layer->nweights,
                    dst, capacity);
}

bp_status bp_layer_set_weights(bp_layer *layer, const float *src, size_t count)
{
    LAYER_CHECK(layer, "bp_layer_set_weights");
    return copy_in(layer, "bp_layer_set_weights", "weights", bp__layer_w(layer), layer->nweights,
                   src, count);
}

bp_status bp_layer_get_biases(const bp_layer *layer, float *dst, size_t capacity)
{
    LAYER_CHECK(layer, "bp_layer_get_biases");
    return copy_out(layer, "bp_layer_get_biases", "biases", bp__layer_b(layer), layer->nbiases,
                    dst, capacity);
}

bp_status bp_layer_set_biases(bp_layer *layer, const float *src, size_t count)
{
    LAYER_CHECK(layer, "bp_layer_set_biases");
    return copy_in(layer, "bp_layer_set_biases", "biases", bp__layer_b(layer), layer->nbiases,
                   src, count);
}

bp_status bp_layer_get_weight_grad(const bp_layer *layer, float *dst, size_t capacity)
{
    LAYER_CHECK(layer, "bp_layer_get_weight_grad");
    return copy_out(layer, "bp_layer_get_weight_grad", "weights", bp__layer_dw(layer),
                    layer->nweights, dst, capacity);
}

bp_status bp_layer_get_bias_grad(const bp_layer *layer, float *dst, size_t capacity)
{
    LAYER_CHECK(layer, "bp_layer_get_bias_grad");
    return copy_out(layer, "bp_layer_get_bias_grad", "biases", bp__layer_db(layer),
                    layer->nbiases, dst, capacity);
}

bp_status bp_layer_init_weights(bp_layer *layer, int scheme, double value)
{
    LAYER_CHECK(layer, "bp_layer_init_weights");
    if (!bp__init_valid(scheme))
        return bp__fail(layer->net->err, BP_ERR_INVALID_ARG,
                        "bp_layer_init_weights: unknown scheme %d", scheme);
    if (scheme == BP_INIT_CONSTANT && !(fabs(value) <= 3.4e38))
        return bp__fail(layer->net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_layer_init_weights: constant %g is not a finite float", value);
    if (scheme == BP_INIT_NORMAL && !(value >= 0.0 && value <= 1e3))
        return bp__fail(layer->net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_layer_init_weights: standard deviation %g is outside [0, 1e3]",
                        value);
    bp__layer_init_params(layer, scheme, value);
    return BP_OK;
}

bp_status bp_layer_output_shape(const bp_layer *layer, size_t *channels, size_t *height,
                                size_t *width)
{
    LAYER_CHECK(layer, "bp_layer_output_shape");
    if (channels == NULL || height == NULL || width == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_layer_output_shape: outputs must not be NULL");
    *channels = layer->out_c;
    *height = layer->out_h;
    *width = layer->out_w;
    return BP_OK;
}

bp_status bp_layer_grad_norm(const bp_layer *layer, double *norm)
{
    LAYER_CHECK(layer, "bp_layer_grad_norm");
    if (norm == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_layer_grad_norm: norm is NULL");
    const float *g = bp__layer_dw(layer);
    const size_t np = layer->nweights + layer->nbiases;
    double ss = 0.0;
    for (size_t k = 0; k < np; k++) ss += (double)g[k] * (double)g[k];
    *norm = sqrt(ss);
    return BP_OK;
}
