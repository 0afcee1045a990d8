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

static bp_status copy_out(const bp_layer *l, const char *fn, const char *what, const float *src,
                          size_t count, float *dst, size_t capacity)
{
    if (dst == NULL)
        return bp__fail(l->net->err, BP_ERR_INVALID_ARG, "%s: dst is NULL", fn);
    if (capacity < count)
        return bp__fail(l->net->err, BP_ERR_BUFFER_TOO_SMALL,
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

static const char *key_name(int key)
{
    switch (key) {
    case BP_LAYER_TRAINABLE: return "BP_LAYER_TRAINABLE";
    case BP_LAYER_LEAKY_SLOPE: return "BP_LAYER_LEAKY_SLOPE";
    case BP_LAYER_ELU_ALPHA: return "BP_LAYER_ELU_ALPHA";
    case BP_LAYER_BN_MOMENTUM: return "BP_LAYER_BN_MOMENTUM";
    case BP_LAYER_BN_EPSILON: return "BP_LAYER_BN_EPSILON";
    case BP_LAYER_DROPOUT_RATE: return "BP_LAYER_DROPOUT_RATE";
    case BP_LAYER_L2: return "BP_LAYER_L2";
    case BP_LAYER_L1: return "BP_LAYER_L1";
    default: return NULL;
    }
}

/* Inclusive bounds of every key; flags are 0/1. Returns 0 for an unknown key. */
static int key_bounds(int key, double *lo, double *hi, int *flag)
{
    *flag = 0;
    switch (key) {
    case BP_LAYER_TRAINABLE: *lo = 0.0, *hi = 1.0, *flag = 1; return 1;
    case BP_LAYER_LEAKY_SLOPE: *lo = 0.0, *hi = 1.0; return 1;
    case BP_LAYER_ELU_ALPHA: *lo = 0.0, *hi = 100.0; return 1;
    case BP_LAYER_BN_MOMENTUM: *lo = 0.0, *hi = 1.0; return 1;
    case BP_LAYER_BN_EPSILON: *lo = 1e-12, *hi = 1.0; return 1;
    case BP_LAYER_DROPOUT_RATE: *lo = 0.0, *hi = nextafter(1.0, 0.0); return 1;
    case BP_LAYER_L2:
    case BP_LAYER_L1: *lo = 0.0, *hi = 1e3; return 1;
    default: return 0;
    }
}

/* BP_OK if @p key is known and applies to the layer's kind. */
static bp_status check_key(const bp_layer *l, const char *fn, int key, char *err)
{
    const char *name = key_name(key);
    if (name == NULL) return bp__fail(err, BP_ERR_INVALID_ARG, "%s: unknown key %d", fn, key);
    if (!(l->vt->keys & BP__LAYER_KEY_BIT(key)))
        return bp__fail(err, BP_ERR_INVALID_ARG, "%s: %s does not apply to layer %zu (%s)", fn,
                        name, l->index, l->vt->name);
    return BP_OK;
}

bp_status bp_layer_set(bp_layer *layer, int key, double value)
{
    LAYER_CHECK(layer, "bp_layer_set");
    char *err = layer->net->err;
    BP_CHECK(check_key(layer, "bp_layer_set", key, err));
    double lo = 0.0, hi = 0.0;
    int flag;
    key_bounds(key, &lo, &hi, &flag);
    if (flag && value != 0.0 && value != 1.0)
        return bp__fail(err, BP_ERR_OUT_OF_RANGE, "%s = %g is not 0 or 1", key_name(key), value);
    if (!(value >= lo && value <= hi))
        return bp__fail(err, BP_ERR_OUT_OF_RANGE, "%s = %g is outside [%g, %g]", key_name(key),
                        value, lo, hi);
    switch (key) {
    case BP_LAYER_TRAINABLE: layer->trainable = value != 0.0; break;
    case BP_LAYER_LEAKY_SLOPE: layer->act.leaky_slope = (float)value; break;
    case BP_LAYER_ELU_ALPHA: layer->act.elu_alpha = (float)value; break;
    case BP_LAYER_L2: layer->l2 = value; break;
    case BP_LAYER_L1: layer->l1 = value; break;
    default: layer->vt->set_key(layer, key, value); break;
    }
    return BP_OK;
}

bp_status bp_layer_get(const bp_layer *layer, int key, double *value)
{
    LAYER_CHECK(layer, "bp_layer_get");
    if (value == NULL)
        return bp__fail(layer->net->err, BP_ERR_INVALID_ARG, "bp_layer_get: value is NULL");
    BP_CHECK(check_key(layer, "bp_layer_get", key, layer->net->err));
    switch (key) {
    case BP_LAYER_TRAINABLE: *value = layer->trainable; break;
    case BP_LAYER_LEAKY_SLOPE: *value = (double)layer->act.leaky_slope; break;
    case BP_LAYER_ELU_ALPHA: *value = (double)layer->act.elu_alpha; break;
    case BP_LAYER_L2: *value = layer->l2; break;
    case BP_LAYER_L1: *value = layer->l1; break;
    default: *value = layer->vt->get_key(layer, key); break;
    }
    return BP_OK;
}

bp_status bp_layer_param_bounds(int key, double *lo, double *hi)
{
    if (lo == NULL || hi == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_layer_param_bounds: lo and hi must not "
                                                   "be NULL");
    int flag;
    if (!key_bounds(key, lo, hi, &flag))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_layer_param_bounds: unknown key %d", key);
    return BP_OK;
}

bp_status bp_layer_output_shape(const bp_layer *layer, size_t *channels, size_t *height,
                                size_t *width)
{
    LAYER_CHECK(layer, "bp_layer_output_shape");
    if (channels == NULL || height == NULL || width == NULL)
        return bp__fail(layer->net->err, BP_ERR_INVALID_ARG,
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
        return bp__fail(layer->net->err, BP_ERR_INVALID_ARG, "bp_layer_grad_norm: norm is NULL");
    const float *g = bp__layer_dw(layer);
    const size_t np = layer->nweights + layer->nbiases;
    double ss = 0.0;
    for (size_t k = 0; k < np; k++) ss += (double)g[k] * (double)g[k];
    *norm = sqrt(ss);
    return BP_OK;
}
