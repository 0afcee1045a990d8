/* layer.c -- the layer framework: appending layers to a net (the layer list and parameter
 * arena, called by every kind's bp_net_add_*), parameter initialisation, and the public
 * layer handle: queries, parameter access, settings. */
#include "util.h"
#include "rng.h"
#include "layer.h"
#include "net.h"
#include "optimizer.h"

#include <math.h>
#include <string.h>

int bp__init_valid(int scheme)
{
    return scheme >= BP_INIT_DEFAULT && scheme <= BP_INIT_NORMAL;
}

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
    bp__net_params_changed(l->net);
}

/* ------------------------------------------------------------------------------------------
 * Appending a layer to a net: the layer list and the parameter arena
 * ----------------------------------------------------------------------------------------*/

/* Append a layer whose struct the caller filled (vt, activation, in, out, nweights, nbiases,
 * priv); allocates its slot and grows the arena. On failure the net is unchanged and the
 * layer is not freed. */
bp_status bp__net_append_layer(bp_net *net, bp_layer *l, int init_scheme, double init_value)
{
    const bp__alloc *a = &net->alloc;
    size_t np = l->nweights + l->nbiases;
    if (np < l->nweights || net->nparams > SIZE_MAX / sizeof(float) - np)
        return bp__fail(net->err, BP_ERR_NOMEM, "layer %zu: parameter count overflows",
                        net->nlayers);
    const size_t total = net->nparams + np;

    /* The layer list and the arena grow geometrically (doubling, or to what is needed):
     * appending L layers copies O(L + parameters) in all, not O(L^2). */
    bp_layer **layers = net->layers;
    size_t cap = net->cap_layers;
    if (net->nlayers == cap) {
        cap = cap ? cap * 2 : 8;
        layers = bp__calloc(a, cap, sizeof *layers);
        if (layers == NULL) goto fail_nomem;
        if (net->nlayers) memcpy(layers, net->layers, net->nlayers * sizeof *layers);
    }
    float *params = net->params, *grads = net->grads;
    size_t pcap = net->cap_params;
    if (total > pcap || params == NULL) {
        pcap = pcap <= SIZE_MAX / sizeof(float) / 2 ? 2 * pcap : total;
        if (pcap < total) pcap = total;
        if (pcap < 16) pcap = 16;
        params = bp__malloc_aligned(a, pcap * sizeof(float));
        if (params == NULL) goto fail_free_layers;
        grads = bp__malloc_aligned(a, pcap * sizeof(float));
        if (grads == NULL) goto fail_free_params;
    }

    /* Commit: nothing below can fail. */
    if (params != net->params) {
        if (net->nparams) {
            memcpy(params, net->params, net->nparams * sizeof(float));
            memcpy(grads, net->grads, net->nparams * sizeof(float));
        }
        bp__free_aligned(a, net->params);
        bp__free_aligned(a, net->grads);
        net->params = params;
        net->grads = grads;
        net->cap_params = pcap;
    }
    memset(grads + net->nparams, 0, np * sizeof(float));
    if (layers != net->layers) {
        bp__free(a, net->layers);
        net->layers = layers;
        net->cap_layers = cap;
    }
    l->magic = BP__MAGIC_LAYER;
    l->net = net;
    l->index = net->nlayers;
    if (l->in_c == 0) {
        bp__net_out_shape(net, &l->in_c, &l->in_h, &l->in_w);
        l->in_steps = bp__net_out_steps(net);
    }
    if (l->out_c == 0) l->out_c = l->out, l->out_h = 1, l->out_w = 1;
    if (l->fan_in == 0) l->fan_in = l->in;
    if (l->fan_out == 0) l->fan_out = l->out;
    l->param_off = net->nparams;
    if (net->nlayers == 0) net->in_check = l->vt->check_input;
    net->layers[net->nlayers++] = l;
    net->nparams = total;
    if (l->out > net->max_width) net->max_width = l->out;
    net->nstaged += l->vt->commit != NULL || l->vt->draws_rng;
    net->shape_hash = bp__optimizer_shape_hash_layer(net->shape_hash, l);
    bp__layer_init_params(l, init_scheme, init_value);
    /* Shapes changed: the workspaces are replanned on the next call. */
    bp__ws_release(net, &net->ws);
    bp__ws_release(net, &net->pws);
    return BP_OK;

fail_free_params:
    if (params != net->params) bp__free_aligned(a, params);
fail_free_layers:
    if (layers != net->layers) bp__free(a, layers);
fail_nomem:
    return bp__fail(net->err, BP_ERR_NOMEM, "layer %zu: out of memory for %zu parameters",
                    net->nlayers, total);
}

void bp__net_out_shape(const bp_net *net, size_t *c, size_t *h, size_t *w)
{
    if (net->nlayers == 0) {
        *c = net->in_c, *h = net->in_h, *w = net->in_w;
    } else {
        const bp_layer *l = net->layers[net->nlayers - 1];
        *c = l->out_c, *h = l->out_h, *w = l->out_w;
    }
}

size_t bp__net_out_steps(const bp_net *net)
{
    return net->nlayers ? net->layers[net->nlayers - 1]->out_steps : net->in_steps;
}

size_t bp__net_out_step_width(const bp_net *net)
{
    const size_t steps = bp__net_out_steps(net), width = bp__net_out_width(net);
    return steps ? width / steps : width;
}

bp_status bp__net_refuse_sequence(bp_net *net, const char *fn, const char *what)
{
    const size_t steps = bp__net_out_steps(net);
    if (steps == 0) return BP_OK;
    return bp__fail(net->err, BP_ERR_SHAPE,
                    "%s: layer %zu's input rows are sequences (%zu steps x %zu features); %s", fn,
                    net->nlayers, steps, bp__net_out_step_width(net), what);
}

bp_layer *bp__layer_new(bp_net *net, const char *fn, const bp__layer_vtable *vt, int activation,
                        size_t out_c, size_t out_h, size_t out_w)
{
    bp_layer *l = bp__calloc(&net->alloc, 1, sizeof *l);
    if (l == NULL) {
        bp__fail(net->err, BP_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    l->vt = vt;
    l->net = net; /* for vt->destroy before the layer is appended */
    l->activation = activation;
    bp__net_out_shape(net, &l->in_c, &l->in_h, &l->in_w);
    l->in_steps = bp__net_out_steps(net);
    l->in = bp__net_out_width(net);
    l->out_c = out_c, l->out_h = out_h, l->out_w = out_w;
    l->out = out_c * out_h * out_w; /* callers bound each factor's product */
    l->trainable = 1;
    l->act.leaky_slope = BP__DEFAULT_LEAKY_SLOPE;
    l->act.elu_alpha = BP__DEFAULT_ELU_ALPHA;
    return l;
}

void bp__layer_discard(bp_net *net, bp_layer *l)
{
    if (l == NULL) return;
    if (l->vt->destroy != NULL) l->vt->destroy(l);
    l->magic = 0; /* a stale bp_layer pointer is then refused, not used */
    bp__free(&net->alloc, l);
}

size_t bp__no_scratch(const bp_layer *l, size_t n, int training)
{
    (void)l, (void)n, (void)training;
    return 0;
}

void bp__layer_free_priv(bp_layer *l)
{
    bp__free(&l->net->alloc, l->priv);
    l->priv = NULL;
}

bp_status bp__layer_copy_priv(bp_layer *dst, const bp_layer *src, size_t size)
{
    void *p = bp__malloc(&dst->net->alloc, size);
    if (p == NULL) return BP_ERR_NOMEM;
    memcpy(p, src->priv, size);
    dst->priv = p;
    return BP_OK;
}

bp_status bp__net_append_or_discard(bp_net *net, bp_layer *l, int init_scheme, double init_value)
{
    const bp_status s = bp__net_append_layer(net, l, init_scheme, init_value);
    if (s != BP_OK) bp__layer_discard(net, l);
    return s;
}

/* Common checks before appending any layer kind. */
bp_status bp__net_check_append(bp_net *net, const char *fn)
{
    if (net->nlayers > 0 && net->layers[net->nlayers - 1]->activation == BP_ACT_SOFTMAX)
        return bp__fail(net->err, BP_ERR_STATE,
                        "%s: layer %zu is softmax, which must be the output layer", fn,
                        net->nlayers - 1);
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * The public layer handle
 * ----------------------------------------------------------------------------------------*/

int bp_layer_kind(const bp_layer *layer)
{
    return bp__layer_ok(layer) ? layer->vt->kind : 0;
}

int bp_layer_activation(const bp_layer *layer)
{
    return bp__layer_ok(layer) ? layer->activation : -1;
}

size_t bp_layer_input_size(const bp_layer *layer)
{
    return bp__layer_ok(layer) ? layer->in : 0;
}

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
    if (dst == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: dst is NULL", fn);
    if (capacity < count)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL, "%s: layer %zu has %zu %s, buffer holds %zu",
                        fn, l->index, count, what, capacity);
    if (count > 0) memcpy(dst, src, count * sizeof(float));
    return BP_OK;
}

static bp_status copy_in(bp_layer *l, const char *fn, const char *what, float *dst, size_t count,
                         const float *src, size_t n)
{
    if (src == NULL) return bp__fail(l->net->err, BP_ERR_INVALID_ARG, "%s: src is NULL", fn);
    if (n != count)
        return bp__fail(l->net->err, BP_ERR_SHAPE, "%s: layer %zu has %zu %s, got %zu", fn,
                        l->index, count, what, n);
    const size_t bad = bp__first_nonfinite(src, n);
    if (bad != n)
        return bp__fail(l->net->err, BP_ERR_NONFINITE, "%s: element %zu is %g", fn, bad,
                        (double)src[bad]);
    memcpy(dst, src, n * sizeof(float));
    bp__net_params_changed(l->net);
    return BP_OK;
}

bp_status bp_layer_get_weights(const bp_layer *layer, float *dst, size_t capacity)
{
    BP__LAYER_CHECK(layer, "bp_layer_get_weights");
    return copy_out(layer, "bp_layer_get_weights", "weights", bp__layer_w(layer), layer->nweights,
                    dst, capacity);
}

bp_status bp_layer_set_weights(bp_layer *layer, const float *src, size_t count)
{
    BP__LAYER_CHECK(layer, "bp_layer_set_weights");
    return copy_in(layer, "bp_layer_set_weights", "weights", bp__layer_w(layer), layer->nweights,
                   src, count);
}

bp_status bp_layer_get_biases(const bp_layer *layer, float *dst, size_t capacity)
{
    BP__LAYER_CHECK(layer, "bp_layer_get_biases");
    return copy_out(layer, "bp_layer_get_biases", "biases", bp__layer_b(layer), layer->nbiases, dst,
                    capacity);
}

bp_status bp_layer_set_biases(bp_layer *layer, const float *src, size_t count)
{
    BP__LAYER_CHECK(layer, "bp_layer_set_biases");
    return copy_in(layer, "bp_layer_set_biases", "biases", bp__layer_b(layer), layer->nbiases, src,
                   count);
}

bp_status bp_layer_get_weight_grad(const bp_layer *layer, float *dst, size_t capacity)
{
    BP__LAYER_CHECK(layer, "bp_layer_get_weight_grad");
    return copy_out(layer, "bp_layer_get_weight_grad", "weights", bp__layer_dw(layer),
                    layer->nweights, dst, capacity);
}

bp_status bp_layer_get_bias_grad(const bp_layer *layer, float *dst, size_t capacity)
{
    BP__LAYER_CHECK(layer, "bp_layer_get_bias_grad");
    return copy_out(layer, "bp_layer_get_bias_grad", "biases", bp__layer_db(layer), layer->nbiases,
                    dst, capacity);
}

bp_status bp_layer_init_weights(bp_layer *layer, int scheme, double value)
{
    BP__LAYER_CHECK(layer, "bp_layer_init_weights");
    if (!bp__init_valid(scheme))
        return bp__fail(layer->net->err, BP_ERR_INVALID_ARG,
                        "bp_layer_init_weights: unknown scheme %d", scheme);
    if (scheme == BP_INIT_CONSTANT && !(fabs(value) <= 3.4e38))
        return bp__fail(layer->net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_layer_init_weights: constant %g is not a finite float", value);
    if (scheme == BP_INIT_NORMAL && !(value >= 0.0 && value <= 1e3))
        return bp__fail(layer->net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_layer_init_weights: standard deviation %g is outside [0, 1e3]", value);
    bp__layer_init_params(layer, scheme, value);
    return BP_OK;
}

bp_status bp_layer_output_shape(const bp_layer *layer, size_t *channels, size_t *height,
                                size_t *width)
{
    BP__LAYER_CHECK(layer, "bp_layer_output_shape");
    if (channels == NULL || height == NULL || width == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_layer_output_shape: outputs must not be NULL");
    *channels = layer->out_c;
    *height = layer->out_h;
    *width = layer->out_w;
    return BP_OK;
}

bp_status bp_layer_output_steps(const bp_layer *layer, size_t *steps)
{
    BP__LAYER_CHECK(layer, "bp_layer_output_steps");
    if (steps == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_layer_output_steps: steps is NULL");
    *steps = layer->out_steps;
    return BP_OK;
}

bp_status bp_layer_grad_norm(const bp_layer *layer, double *norm)
{
    BP__LAYER_CHECK(layer, "bp_layer_grad_norm");
    if (norm == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_layer_grad_norm: norm is NULL");
    const float *g = bp__layer_dw(layer);
    const size_t np = layer->nweights + layer->nbiases;
    double ss = 0.0;
    for (size_t k = 0; k < np; k++)
        ss += (double)g[k] * (double)g[k];
    *norm = sqrt(ss);
    return BP_OK;
}
