/* net.c -- the network handle: layer list, parameter arena, workspace, forward/backward walk,
 * train_step and predict. */
#include "util.h"
#include "pool.h"
#include "rng.h"
#include "activation.h"
#include "loss.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "fit.h"
#include "optimizer.h"
#include "meta.h"

#include <math.h>
#include <stdio.h>
#include <string.h>


#define NET_CHECK(net, fn)                                                                        \
    do {                                                                                          \
        if (!bp__net_ok(net))                                                                     \
            return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: invalid net handle", fn);              \
    } while (0)

/* ------------------------------------------------------------------------------------------
 * Creation and destruction
 * ----------------------------------------------------------------------------------------*/

bp_status bp_net_create_ex(bp_net **out, size_t inputs, uint64_t seed, bp_alloc_fn alloc_fn,
                           bp_free_fn free_fn, void *user)
{
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_create: out is NULL");
    *out = NULL;
    if (inputs == 0 || inputs > BP__MAX_WIDTH)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_create: inputs = %zu is outside 1..%zu",
                        inputs, BP__MAX_WIDTH);
    if ((alloc_fn == NULL) != (free_fn == NULL))
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_net_create_ex: alloc_fn and free_fn must both be set or both NULL");
    bp__alloc a = bp__default_alloc;
    if (alloc_fn != NULL) {
        a.alloc = alloc_fn;
        a.free = free_fn;
        a.user = user;
    }
    bp_net *net = bp__calloc(&a, 1, sizeof *net);
    if (net == NULL)
        return bp__fail(NULL, BP_ERR_NOMEM, "bp_net_create: out of memory (%zu bytes)",
                        sizeof *net);
    net->magic = BP__MAGIC_NET;
    net->alloc = a;
    net->inputs = inputs;
    net->in_c = inputs;
    net->in_h = 1;
    net->in_w = 1;
    net->max_width = inputs;
    net->huber_delta = 1.0;
    if (bp__fit_create(net) != BP_OK) {
        bp__free(&a, net);
        return bp__fail(NULL, BP_ERR_NOMEM, "bp_net_create: out of memory (training state)");
    }
    bp__rng_seed(&net->rng, seed);
    *out = net;
    return BP_OK;
}

bp_status bp_net_create(bp_net **out, size_t inputs, uint64_t seed)
{
    return bp_net_create_ex(out, inputs, seed, NULL, NULL, NULL);
}

bp_status bp_net_create_image_ex(bp_net **out, size_t channels, size_t height, size_t width,
                                 uint64_t seed, bp_alloc_fn alloc_fn, bp_free_fn free_fn,
                                 void *user)
{
    if (out == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_create_image: out is NULL");
    *out = NULL;
    size_t plane, inputs;
    if (channels == 0 || height == 0 || width == 0 || bp__mul_size(height, width, &plane) != 0 ||
        bp__mul_size(plane, channels, &inputs) != 0 || inputs > BP__MAX_WIDTH)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_net_create_image: shape %zu x %zu x %zu is empty or exceeds %zu "
                        "inputs",
                        channels, height, width, BP__MAX_WIDTH);
    BP_CHECK(bp_net_create_ex(out, inputs, seed, alloc_fn, free_fn, user));
    (*out)->in_c = channels;
    (*out)->in_h = height;
    (*out)->in_w = width;
    return BP_OK;
}

bp_status bp_net_create_image(bp_net **out, size_t channels, size_t height, size_t width,
                              uint64_t seed)
{
    return bp_net_create_image_ex(out, channels, height, width, seed, NULL, NULL, NULL);
}

bp_status bp_net_input_shape(const bp_net *net, size_t *channels, size_t *height, size_t *width)
{
    NET_CHECK(net, "bp_net_input_shape");
    if (channels == NULL || height == NULL || width == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_input_shape: outputs must not be NULL");
    *channels = net->in_c;
    *height = net->in_h;
    *width = net->in_w;
    return BP_OK;
}

static void ws_release(bp_net *net, bp__workspace *ws)
{
    bp__free_aligned(&net->alloc, ws->block);
    memset(ws, 0, sizeof *ws);
}

void bp_net_free(bp_net *net)
{
    if (!bp__net_ok(net)) return;
    const bp__alloc a = net->alloc;
    for (size_t i = 0; i < net->nlayers; i++) bp__layer_discard(net, net->layers[i]);
    bp__free(&a, net->layers);
    bp__free_aligned(&a, net->params);
    bp__free_aligned(&a, net->grads);
    ws_release(net, &net->ws);
    ws_release(net, &net->pws);
    bp__meta_free(net);
    bp__fit_free(net);
    bp__pool_free(net->pool, &a);
    net->magic = 0;
    bp__free(&a, net);
}

const char *bp_net_last_error(const bp_net *net)
{
    return bp__net_ok(net) ? net->err : bp__invalid_handle_msg;
}

/* ------------------------------------------------------------------------------------------
 * Layers and the parameter arena
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

    bp_layer **layers = net->layers;
    size_t cap = net->cap_layers;
    if (net->nlayers == cap) {
        cap = cap ? cap * 2 : 8;
        layers = bp__calloc(a, cap, sizeof *layers);
        if (layers == NULL) goto fail_nomem;
        if (net->nlayers) memcpy(layers, net->layers, net->nlayers * sizeof *layers);
    }
    float *params = bp__malloc_aligned(a, total * sizeof(float));
    if (params == NULL) goto fail_free_layers;
    float *grads = bp__malloc_aligned(a, total * sizeof(float));
    if (grads == NULL) goto fail_free_params;

    /* Commit: nothing below can fail. */
    if (net->nparams) {
        memcpy(params, net->params, net->nparams * sizeof(float));
        memcpy(grads, net->grads, net->nparams * sizeof(float));
    }
    memset(grads + net->nparams, 0, np * sizeof(float));
    bp__free_aligned(a, net->params);
    bp__free_aligned(a, net->grads);
    net->params = params;
    net->grads = grads;
    if (layers != net->layers) {
        bp__free(a, net->layers);
        net->layers = layers;
        net->cap_layers = cap;
    }
    l->magic = BP__MAGIC_LAYER;
    l->net = net;
    l->index = net->nlayers;
    if (l->in_c == 0) bp__net_out_shape(net, &l->in_c, &l->in_h, &l->in_w);
    if (l->out_c == 0) l->out_c = l->out, l->out_h = 1, l->out_w = 1;
    if (l->fan_in == 0) l->fan_in = l->in;
    if (l->fan_out == 0) l->fan_out = l->out;
    l->param_off = net->nparams;
    net->layers[net->nlayers++] = l;
    net->nparams = total;
    if (l->out > net->max_width) net->max_width = l->out;
    net->shape_hash = bp__optimizer_shape_hash(net);
    bp__layer_init_params(l, init_scheme, init_value);
    /* Shapes changed: the workspaces are replanned on the next call. */
    ws_release(net, &net->ws);
    ws_release(net, &net->pws);
    return BP_OK;

fail_free_params:
    bp__free_aligned(a, params);
fail_free_layers:
    if (layers != net->layers) bp__free(a, layers);
fail_nomem:
    return bp__fail(net->err, BP_ERR_NOMEM, "layer %zu: out of memory for %zu parameters",
                    net->nlayers, total);
}

static size_t net_out_width(const bp_net *net)
{
    return net->nlayers ? net->layers[net->nlayers - 1]->out : net->inputs;
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
    l->in = net_out_width(net);
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

bp_status bp__net_append_or_discard(bp_net *net, bp_layer *l, int init_scheme,
                                    double init_value)
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

bp_status bp_net_add_dense(bp_net *net, size_t units, int activation)
{
    NET_CHECK(net, "bp_net_add_dense");
    if (units == 0 || units > BP__MAX_WIDTH)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "bp_net_add_dense: units = %zu is outside 1..%zu", units, BP__MAX_WIDTH);
    if (!bp__act_valid(activation))
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_add_dense: unknown activation %d",
                        activation);
    BP_CHECK(bp__net_check_append(net, "bp_net_add_dense"));
    const size_t in = net_out_width(net);
    size_t nw;
    if (bp__mul_size(units, in, &nw) != 0)
        return bp__fail(net->err, BP_ERR_NOMEM, "bp_net_add_dense: %zu x %zu weights overflow",
                        units, in);
    bp_layer *l = bp__layer_new(net, "bp_net_add_dense", &bp__dense_vtable, activation, units, 1,
                                1);
    if (l == NULL) return BP_ERR_NOMEM;
    l->nweights = nw;
    l->nbiases = units;
    return bp__net_append_or_discard(net, l, BP_INIT_DEFAULT, 0.0);
}

size_t bp_net_layer_count(const bp_net *net) { return bp__net_ok(net) ? net->nlayers : 0; }

bp_layer *bp_net_layer(bp_net *net, size_t index)
{
    if (!bp__net_ok(net) || index >= net->nlayers) return NULL;
    return net->layers[index];
}

size_t bp_net_input_size(const bp_net *net) { return bp__net_ok(net) ? net->inputs : 0; }

size_t bp_net_output_size(const bp_net *net) { return bp__net_ok(net) ? net_out_width(net) : 0; }

size_t bp_net_param_count(const bp_net *net) { return bp__net_ok(net) ? net->nparams : 0; }

float *bp_net_params(bp_net *net, size_t *count)
{
    if (count != NULL) *count = bp__net_ok(net) ? net->nparams : 0;
    return bp__net_ok(net) && net->nparams ? net->params : NULL;
}

float *bp_net_grads(bp_net *net, size_t *count)
{
    if (count != NULL) *count = bp__net_ok(net) ? net->nparams : 0;
    return bp__net_ok(net) && net->nparams ? net->grads : NULL;
}

bp_status bp_net_zero_grad(bp_net *net)
{
    NET_CHECK(net, "bp_net_zero_grad");
    if (net->nparams) memset(net->grads, 0, net->nparams * sizeof(float));
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Clone
 * ----------------------------------------------------------------------------------------*/

bp_status bp_net_clone(bp_net **out, const bp_net *src)
{
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_clone: out is NULL");
    *out = NULL;
    if (!bp__net_ok(src))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_clone: invalid net handle");
    bp_net *net;
    BP_CHECK(bp_net_create_ex(&net, src->inputs, 0, src->alloc.alloc, src->alloc.free,
                              src->alloc.user));
    const bp__alloc *a = &net->alloc;
    bp_status s = BP_ERR_NOMEM;
    if (src->nlayers) {
        net->layers = bp__calloc(a, src->nlayers, sizeof *net->layers);
        net->params = bp__malloc_aligned(a, src->nparams * sizeof(float));
        net->grads = bp__malloc_aligned(a, src->nparams * sizeof(float));
        if (net->layers == NULL || net->params == NULL || net->grads == NULL) goto fail;
        net->cap_layers = src->nlayers;
        memcpy(net->params, src->params, src->nparams * sizeof(float));
        memset(net->grads, 0, src->nparams * sizeof(float));
        net->nparams = src->nparams;
        for (size_t i = 0; i < src->nlayers; i++) {
            const bp_layer *sl = src->layers[i];
            bp_layer *l = bp__malloc(a, sizeof *l);
            if (l == NULL) goto fail;
            *l = *sl;
            l->net = net;
            l->priv = NULL;
            if (sl->vt->clone != NULL && (s = sl->vt->clone(l, sl)) != BP_OK) {
                bp__free(a, l);
                goto fail;
            }
            net->layers[net->nlayers++] = l;
        }
    }
    net->rng = src->rng;
    net->in_c = src->in_c;
    net->in_h = src->in_h;
    net->in_w = src->in_w;
    net->max_width = src->max_width;
    net->shape_hash = src->shape_hash;
    net->accumulate = src->accumulate;
    net->huber_delta = src->huber_delta;
    net->clip_norm = src->clip_norm;
    net->clip_value = src->clip_value;
    bp__fit_copy(net, src);
    if ((s = bp__meta_clone(net, src)) != BP_OK) goto fail;
    *out = net;
    return BP_OK;
fail:
    bp_net_free(net);
    return bp__fail(NULL, s, "bp_net_clone: out of memory copying %zu layers", src->nlayers);
}

/* ------------------------------------------------------------------------------------------
 * Settings and summary
 * ----------------------------------------------------------------------------------------*/

bp_status bp_net_set(bp_net *net, int key, double value)
{
    NET_CHECK(net, "bp_net_set");
    switch (key) {
    case BP_NET_ACCUMULATE_GRADS:
        if (value != 0.0 && value != 1.0)
            return bp__fail(net->err, BP_ERR_OUT_OF_RANGE,
                            "BP_NET_ACCUMULATE_GRADS = %g is not 0 or 1", value);
        net->accumulate = value != 0.0;
        return BP_OK;
    case BP_NET_HUBER_DELTA:
        if (!(value > 0.0 && value <= 1e6))
            return bp__fail(net->err, BP_ERR_OUT_OF_RANGE,
                            "BP_NET_HUBER_DELTA = %g is outside (0, 1e6]", value);
        net->huber_delta = value;
        return BP_OK;
    case BP_NET_CLIP_NORM:
    case BP_NET_CLIP_VALUE:
        if (!(value >= 0.0 && value <= 1e9))
            return bp__fail(net->err, BP_ERR_OUT_OF_RANGE, "%s = %g is outside [0, 1e9]",
                            key == BP_NET_CLIP_NORM ? "BP_NET_CLIP_NORM" : "BP_NET_CLIP_VALUE",
                            value);
        if (key == BP_NET_CLIP_NORM)
            net->clip_norm = value;
        else
            net->clip_value = value;
        return BP_OK;
    default:
        if (bp__fit_is_key(key)) return bp__fit_set(net, key, value);
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_set: unknown key %d", key);
    }
}

bp_status bp_net_get(const bp_net *net, int key, double *value)
{
    NET_CHECK(net, "bp_net_get");
    if (value == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_get: value is NULL");
    switch (key) {
    case BP_NET_ACCUMULATE_GRADS: *value = net->accumulate; return BP_OK;
    case BP_NET_HUBER_DELTA: *value = net->huber_delta; return BP_OK;
    case BP_NET_CLIP_NORM: *value = net->clip_norm; return BP_OK;
    case BP_NET_CLIP_VALUE: *value = net->clip_value; return BP_OK;
    default:
        if (bp__fit_is_key(key)) return bp__fit_get(net, key, value);
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_get: unknown key %d", key);
    }
}

typedef struct text_buf {
    char *buf;
    size_t cap, len; /* len counts what would have been written */
} text_buf;

static void tb_printf(text_buf *t, const char *fmt, ...) BP__PRINTF(2, 3);
static void tb_printf(text_buf *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = t->len < t->cap ? t->buf + t->len : NULL;
    const size_t room = t->len < t->cap ? t->cap - t->len : 0;
    const int k = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (k > 0) t->len += (size_t)k;
}

/* "[n x C]" for flat rows, "[n x C x H x W]" for image-shaped ones. */
static void shape_string(char *s, size_t cap, size_t c, size_t h, size_t w)
{
    if (h == 1 && w == 1)
        snprintf(s, cap, "[n x %zu]", c);
    else
        snprintf(s, cap, "[n x %zu x %zu x %zu]", c, h, w);
}

bp_status bp_net_summary(const bp_net *net, char *buf, size_t capacity, size_t *needed)
{
    NET_CHECK(net, "bp_net_summary");
    if (buf == NULL && capacity > 0)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_summary: buf is NULL");
    text_buf t = {buf, capacity, 0};
    char shape[80];
    tb_printf(&t, "%-5s %-14s %-22s %12s  %s\n", "layer", "kind", "output", "params",
              "activation");
    shape_string(shape, sizeof shape, net->in_c, net->in_h, net->in_w);
    tb_printf(&t, "%-5s %-14s %-22s %12s  %s\n", "in", "input", shape, "0", "-");
    for (size_t i = 0; i < net->nlayers; i++) {
        const bp_layer *l = net->layers[i];
        const int has_act = bp__layer_key_of(l, BP_LAYER_LEAKY_SLOPE) != NULL;
        shape_string(shape, sizeof shape, l->out_c, l->out_h, l->out_w);
        tb_printf(&t, "%-5zu %-14s %-22s %12zu  %s\n", i, l->vt->name, shape,
                  l->nweights + l->nbiases, has_act ? bp__act_name(l->activation) : "-");
    }
    tb_printf(&t, "total parameters: %zu\n", net->nparams);
    if (needed != NULL) *needed = t.len + 1;
    if (t.len + 1 > capacity) {
        if (capacity > 0) buf[capacity - 1] = '\0';
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_summary: needs %zu bytes, buffer has %zu", t.len + 1, capacity);
    }
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Workspace
 * ----------------------------------------------------------------------------------------*/

static size_t round16(size_t v) { return (v + 15u) & ~(size_t)15u; }

/* Plan @p ws for up to @p n rows; training adds the input copy, z buffers and gradients.
 * Reuses the current plan when it is large enough: no allocation in the steady state. */
static bp_status ws_plan(bp_net *net, bp__workspace *ws, size_t n, int training)
{
    if (ws->block != NULL && ws->n >= n) return BP_OK;
    const size_t nl = net->nlayers;
    size_t floats = 0, bad = 0, t;
    const size_t ptr_bytes = (2 * nl * sizeof(float *) + 63u) & ~(size_t)63u;
#define ADD(rows, width)                                                                          \
    do {                                                                                          \
        bad |= (size_t)bp__mul_size((rows), (width), &t);                                         \
        t = round16(t);                                                                           \
        bad |= (size_t)(floats > SIZE_MAX / 8 - t);                                               \
        floats += t;                                                                              \
    } while (0)
    if (training) ADD(n, net->inputs);
    for (size_t i = 0; i < nl; i++) {
        const bp_layer *l = net->layers[i];
        if (!(l->vt->passthrough && i > 0)) ADD(n, l->out);
        ADD(l->vt->scratch_floats(l, n, training), 1);
    }
    if (training) {
        ADD(n, net->max_width);
        ADD(n, net->max_width);
    }
#undef ADD
    if (bad || floats > (SIZE_MAX - ptr_bytes) / sizeof(float))
        return bp__fail(net->err, BP_ERR_NOMEM, "workspace for %zu rows overflows", n);
    void *block = bp__malloc_aligned(&net->alloc, ptr_bytes + floats * sizeof(float));
    if (block == NULL)
        return bp__fail(net->err, BP_ERR_NOMEM, "out of memory planning a workspace of %zu "
                                                 "floats for %zu rows", floats, n);
    ws_release(net, ws);
    ws->block = block;
    ws->n = n;
    ws->y = (float **)block;
    ws->s = ws->y + nl;
    float *p = (float *)((unsigned char *)block + ptr_bytes);
#define TAKE(rows, width) (p += round16((rows) * (width)), p - round16((rows) * (width)))
    if (training) ws->x = TAKE(n, net->inputs);
    for (size_t i = 0; i < nl; i++) {
        const bp_layer *l = net->layers[i];
        const size_t sf = l->vt->scratch_floats(l, n, training);
        /* A passthrough layer's output is its input (not for layer 0, whose input is the
         * caller's x in train_step). */
        ws->y[i] = l->vt->passthrough && i > 0 ? ws->y[i - 1] : TAKE(n, l->out);
        ws->s[i] = sf ? TAKE(sf, 1) : NULL;
    }
    if (training) {
        ws->g0 = TAKE(n, net->max_width);
        ws->g1 = TAKE(n, net->max_width);
    }
#undef TAKE
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Forward and backward walks
 * ----------------------------------------------------------------------------------------*/

static void forward_pass(bp_net *net, bp__workspace *ws, const float *x, size_t n, int training)
{
    const float *in = x;
    for (size_t i = 0; i < net->nlayers; i++) {
        bp_layer *l = net->layers[i];
        if (!(l->vt->passthrough && i > 0)) l->vt->forward(l, n, in, ws->s[i], ws->y[i], training);
        in = ws->y[i];
    }
}

/* Largest |v| over count floats, or INFINITY if any is NaN/Inf: bp__max_abs_bits,
 * multi-versioned. */
BP__KERNEL
static float max_abs(const float *restrict v, size_t count)
{
    const uint32_t m = bp__max_abs_bits(v, count);
    if (m >= 0x7f800000u) return INFINITY;
    float f;
    memcpy(&f, &m, sizeof f);
    return f;
}

/* Inputs must be finite; the message goes to @p err (the net's, or NULL for calls that may
 * run concurrently on one net). Batches of BP__WIDE_INPUT floats or more are checked by
 * max_abs (one vectorised read), whose result also stands in for the input's max |x| in
 * the first layer's gradient bound (prove_grad_finite); *@p x_max is -1 when not measured. */
#define BP__WIDE_INPUT 256
static bp_status check_input_to(const bp_net *net, char *err, const char *fn, const float *x,
                                size_t n, float *x_max)
{
    const size_t total = n * net->inputs;
    *x_max = -1.0f;
    if (total >= BP__WIDE_INPUT) {
        const float m = max_abs(x, total);
        if (isfinite(m)) {
            *x_max = m;
            return BP_OK;
        }
    }
    const size_t bad = bp__first_nonfinite(x, total);
    if (bad != total)
        return bp__fail(err, BP_ERR_NONFINITE, "%s: input row %zu, column %zu is %g", fn,
                        bad / net->inputs, bad % net->inputs, (double)x[bad]);
    return BP_OK;
}

static bp_status check_input(bp_net *net, const char *fn, const float *x, size_t n)
{
    float x_max;
    return check_input_to(net, net->err, fn, x, n, &x_max);
}

/* dW += l2 * W + l1 * sign(W) (weights only, not biases). */
static void add_weight_penalty(const bp_layer *l)
{
    const float l2 = (float)l->l2, l1 = (float)l->l1;
    const float *restrict w = bp__layer_w(l);
    float *restrict dw = bp__layer_dw(l);
    for (size_t k = 0; k < l->nweights; k++)
        dw[k] += l2 * w[k] + (w[k] > 0.0f ? l1 : w[k] < 0.0f ? -l1 : 0.0f);
}

/* Prove layer @p l's gradient finite, after its backward wrote dW and db from dz (@p dz,
 * n x out) and its input @p x (n x in), by whichever reads less: dW and db are scanned
 * unless dz and x are 4x smaller, and always when @p must_scan (accumulated sums, weight
 * penalties, kinds other than dense). Otherwise dz and x are scanned and dW = dz^T x,
 * db = sum dz are bounded by n * max|dz| * max|x|, so dW and db are scanned only when that
 * bound could overflow (large layers, and single rows: 16-32 at batch 1 reads 48 floats
 * instead of 544). */
static bp_status prove_grad_finite(bp_net *net, const bp_layer *l, const float *dz,
                                   const float *x, size_t n, int must_scan)
{
    const size_t np = l->nweights + l->nbiases;
    /* The first layer's x is the step's input, whose max |x| the input check measured. */
    const int x_known = x == net->ws.x_in && net->ws.x_max >= 0.0f;
    const size_t bound_reads = n * l->out + (x_known ? 0 : n * l->in);
    if (must_scan || !l->vt->grad_bound_dense || 4 * bound_reads >= np) {
        /* Scanning dW and db is as cheap as any bound, or no bound applies. */
        if (bp__first_nonfinite(bp__layer_dw(l), np) != np)
            return bp__fail(net->err, BP_ERR_NONFINITE, "layer %zu (%s): gradient is not finite",
                            l->index, l->vt->name);
        return BP_OK;
    }
    const float mdz = max_abs(dz, n * l->out);
    if (!isfinite(mdz))
        return bp__fail(net->err, BP_ERR_NONFINITE,
                        "layer %zu (%s): gradient dL/dz is not finite", l->index, l->vt->name);
    const float mx = x_known ? net->ws.x_max : max_abs(x, n * l->in);
    const double bound = (double)n * (double)mdz * (double)(mx > 1.0f ? mx : 1.0f);
    if (!(bound < 1e37) && bp__first_nonfinite(bp__layer_dw(l), np) != np)
        return bp__fail(net->err, BP_ERR_NONFINITE,
                        "layer %zu (%s): weight gradient is not finite", l->index, l->vt->name);
    return BP_OK;
}

/* Walk the layers in reverse. ws->g0 holds dL/dY of the last layer (or dL/dZ when
 * dy_is_dz). Every layer's gradient is proven finite before the optimizer may read it
 * (prove_grad_finite). Parameter-free kinds are covered by the layers below them;
 * passthrough layers (flatten) are skipped: their dx is dy. */
static bp_status backward_pass(bp_net *net, bp__workspace *ws, size_t n, int dy_is_dz)
{
    float *g = ws->g0, *other = ws->g1;
    for (size_t i = net->nlayers; i-- > 0;) {
        bp_layer *l = net->layers[i];
        if (l->vt->passthrough && i > 0) continue;
        const float *x = i > 0 ? ws->y[i - 1] : ws->x_in;
        float *dx = i > 0 ? other : NULL;
        l->vt->backward(l, n, x, ws->s[i], ws->y[i], g, dy_is_dz, dx, net->accumulate);
        dy_is_dz = 0;
        const int penalty = l->l2 > 0.0 || l->l1 > 0.0;
        if (penalty) add_weight_penalty(l);
        BP_CHECK(prove_grad_finite(net, l, g, x, n, net->accumulate || penalty));
        float *tmp = g;
        g = other;
        other = tmp;
    }
    return BP_OK;
}

/* Switching the SSE control register costs about 20 ns (LDMXCSR serialises), a sixth of a
 * 2-4-1 online step: flush denormals only for calls with real work (rows x parameters
 * >= 4096, i.e. microseconds), where subnormal moments and activations can cost far more.
 * Safe with an invalid handle (the call then fails its own checks). */
static int ftz_worth_it(const bp_net *net, size_t n)
{
    return bp__net_ok(net) && (double)n * (double)net->nparams >= 4096.0;
}

/* Return @p call (a bp_status expression) run with denormals flushed when ftz_worth_it. */
#define WITH_FTZ(net, n, call)                                                                    \
    do {                                                                                          \
        const int ftz_ = ftz_worth_it((net), (n));                                                \
        const unsigned csr_ = ftz_ ? bp__fp_enter() : 0;                                          \
        const bp_status s_ = (call);                                                              \
        if (ftz_) bp__fp_leave(csr_);                                                             \
        return s_;                                                                                \
    } while (0)

static bp_status net_forward(bp_net *net, const float *x, size_t n, const float **y)
{
    NET_CHECK(net, "bp_net_forward");
    if (x == NULL || y == NULL)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_forward: x and y must not be NULL");
    if (n == 0) return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_forward: n is 0");
    if (net->nlayers == 0)
        return bp__fail(net->err, BP_ERR_STATE, "bp_net_forward: the net has no layers");
    float x_max;
    BP_CHECK(check_input_to(net, net->err, "bp_net_forward", x, n, &x_max));
    BP_CHECK(ws_plan(net, &net->ws, n, 1));
    bp__workspace *ws = &net->ws;
    memcpy(ws->x, x, n * net->inputs * sizeof(float));
    ws->x_in = ws->x;
    ws->x_max = x_max;
    forward_pass(net, ws, ws->x, n, 1);
    ws->rows = n;
    *y = ws->y[net->nlayers - 1];
    return BP_OK;
}

bp_status bp_net_forward(bp_net *net, const float *x, size_t n, const float **y)
{
    WITH_FTZ(net, n, net_forward(net, x, n, y));
}

static bp_status net_backward(bp_net *net, const float *dy, size_t n)
{
    NET_CHECK(net, "bp_net_backward");
    if (dy == NULL) return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_backward: dy is NULL");
    bp__workspace *ws = &net->ws;
    if (ws->rows == 0 || net->nlayers == 0)
        return bp__fail(net->err, BP_ERR_STATE,
                        "bp_net_backward: no forward pass to differentiate (call "
                        "bp_net_forward first)");
    if (n != ws->rows)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "bp_net_backward: n = %zu differs from the last forward pass (%zu rows)",
                        n, ws->rows);
    const size_t out = net_out_width(net), total = n * out;
    const size_t bad = bp__first_nonfinite(dy, total);
    if (bad != total)
        return bp__fail(net->err, BP_ERR_NONFINITE, "bp_net_backward: dy row %zu, column %zu is %g",
                        bad / out, bad % out, (double)dy[bad]);
    memcpy(ws->g0, dy, total * sizeof(float));
    return backward_pass(net, ws, n, 0);
}

bp_status bp_net_backward(bp_net *net, const float *dy, size_t n)
{
    WITH_FTZ(net, n, net_backward(net, dy, n));
}

/* Scale or clamp the gradients as BP_NET_CLIP_NORM / BP_NET_CLIP_VALUE ask. */
static void clip_grads(bp_net *net)
{
    float *g = net->grads;
    const size_t np = net->nparams;
    if (net->clip_norm > 0.0) {
        double ss = 0.0;
        for (size_t k = 0; k < np; k++) ss += (double)g[k] * (double)g[k];
        const double norm = sqrt(ss);
        if (norm > net->clip_norm) {
            const float s = (float)(net->clip_norm / norm);
            for (size_t k = 0; k < np; k++) g[k] *= s;
        }
    }
    if (net->clip_value > 0.0) {
        const float v = (float)net->clip_value;
        for (size_t k = 0; k < np; k++) g[k] = g[k] > v ? v : g[k] < -v ? -v : g[k];
    }
}

/* Validation shared by compute_grads and train_step (everything but the optimizer). */
static bp_status check_step_args(bp_net *net, const char *fn, int loss, const float *x,
                                 const float *y, size_t n)
{
    if (x == NULL || y == NULL)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: x and y must not be NULL", fn);
    if (n == 0) return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: n is 0", fn);
    if (!bp__loss_valid(loss))
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: unknown loss %d", fn, loss);
    if (net->nlayers == 0)
        return bp__fail(net->err, BP_ERR_STATE, "%s: the net has no layers", fn);
    const bp_layer *last = net->layers[net->nlayers - 1];
    const int ce = loss == BP_LOSS_SOFTMAX_CE || loss == BP_LOSS_SPARSE_SOFTMAX_CE;
    if (ce && last->activation != BP_ACT_SOFTMAX)
        return bp__fail(net->err, BP_ERR_STATE, "%s: %s needs a softmax output layer; layer %zu "
                                                 "is %s",
                        fn, bp__loss_name(loss), last->index, bp__act_name(last->activation));
    return BP_OK;
}

/* Forward, loss and backward for a validated batch; gradients proven finite on success. */
static bp_status grads_pass(bp_net *net, const char *fn, int loss, const float *x,
                            const float *y, size_t n, float *value)
{
    const bp_layer *last = net->layers[net->nlayers - 1];
    const int ce = loss == BP_LOSS_SOFTMAX_CE || loss == BP_LOSS_SPARSE_SOFTMAX_CE;
    float x_max;
    BP_CHECK(check_input_to(net, net->err, fn, x, n, &x_max));
    BP_CHECK(bp__loss_check_targets(net->err, loss, y, n, last->out));
    BP_CHECK(ws_plan(net, &net->ws, n, 1));

    bp__workspace *ws = &net->ws;
    ws->rows = 0; /* the activations below belong to this step only */
    ws->x_in = x;
    ws->x_max = x_max;
    forward_pass(net, ws, x, n, 1);
    const size_t li = net->nlayers - 1;
    int is_dz;
    /* Fused softmax-CE: the output layer's scratch holds its logits z (dense softmax layers
     * keep z, see layer_dense.c). */
    bp_status s = bp__loss_compute(net->err, loss, net->huber_delta, ws->y[li],
                                   ce ? ws->s[li] : NULL, y, n, last->out, value, ws->g0,
                                   &is_dz);
    if (s == BP_OK) s = backward_pass(net, ws, n, is_dz);
    ws->x_in = NULL; /* the caller's x is not retained */
    ws->x_max = -1.0f;
    return s;
}

static bp_status net_compute_grads(bp_net *net, int loss, const float *x, const float *y, size_t n,
                                   float *loss_value)
{
    NET_CHECK(net, "bp_net_compute_grads");
    BP_CHECK(check_step_args(net, "bp_net_compute_grads", loss, x, y, n));
    float value;
    BP_CHECK(grads_pass(net, "bp_net_compute_grads", loss, x, y, n, &value));
    if (loss_value != NULL) *loss_value = value;
    return BP_OK;
}

bp_status bp_net_set_grad_hook(bp_net *net, bp_grad_fn fn, void *user)
{
    NET_CHECK(net, "bp_net_set_grad_hook");
    net->grad_hook = fn;
    net->grad_hook_user = fn != NULL ? user : NULL;
    return BP_OK;
}

bp_status bp_net_compute_grads(bp_net *net, int loss, const float *x, const float *y, size_t n,
                               float *loss_value)
{
    WITH_FTZ(net, n, net_compute_grads(net, loss, x, y, n, loss_value));
}

/* 1 if train_step_row may run this step: one row, dense layers only without weight penalties,
 * no gradient hook, clipping or accumulation. */
static int row_path_applies(const bp_net *net, size_t n)
{
    if (n != 1 || net->row_path_off || net->grad_hook != NULL || net->accumulate ||
        net->clip_norm > 0.0 || net->clip_value > 0.0)
        return 0;
    for (size_t i = 0; i < net->nlayers; i++) {
        const bp_layer *l = net->layers[i];
        if (l->vt != &bp__dense_vtable || l->l2 > 0.0 || l->l1 > 0.0) return 0;
    }
    return 1;
}

/* Layers whose rows are shorter than a vector register of floats run the scalar single-row
 * kernels; wider ones the multi-versioned kernels (the same floats either way). */
static int row_is_narrow(const bp_layer *l) { return l->in < 16 && l->out < 16; }

/* bp_net_train_step for one row through dense layers (when row_path_applies): the same
 * checks, floats, messages and order as grads_pass + the optimizer update, without the
 * general walk's per-layer dispatch and the optimizer's second validation. It exists for
 * online training of tiny nets, where that overhead was most of the step (2-4-1 XOR:
 * ~2,350 instructions per step, see docs/performance.md, "tiny-online"). The caller has
 * validated the arguments and the optimizer (check_step_args, bp__optimizer_validate_for). */
static bp_status train_step_row(bp_net *net, bp_optimizer *opt, int loss, const float *x,
                                const float *y, float *loss_value)
{
    const char *fn = "bp_net_train_step";
    const size_t li = net->nlayers - 1;
    bp_layer *const *layers = net->layers;
    const int ce = loss == BP_LOSS_SOFTMAX_CE || loss == BP_LOSS_SPARSE_SOFTMAX_CE;
    BP_CHECK(check_input(net, fn, x, 1));
    BP_CHECK(bp__loss_check_targets(net->err, loss, y, 1, layers[li]->out));
    BP_CHECK(ws_plan(net, &net->ws, 1, 1));

    bp__workspace *ws = &net->ws;
    ws->rows = 0; /* the activations below belong to this step only */
    ws->x_in = NULL;
    const float *in = x;
    for (size_t i = 0; i <= li; i++) {
        bp_layer *l = layers[i];
        if (row_is_narrow(l))
            bp__dense_row_forward(l, in, ws->s[i], ws->y[i]);
        else
            l->vt->forward(l, 1, in, ws->s[i], ws->y[i], 1);
        in = ws->y[i];
    }
    float value;
    int is_dz;
    BP_CHECK(bp__loss_compute(net->err, loss, net->huber_delta, ws->y[li], ce ? ws->s[li] : NULL,
                              y, 1, layers[li]->out, &value, ws->g0, &is_dz));
    float *g = ws->g0, *other = ws->g1;
    for (size_t i = li + 1; i-- > 0;) {
        bp_layer *l = layers[i];
        const float *xi = i > 0 ? ws->y[i - 1] : x;
        float *dx = i > 0 ? other : NULL;
        if (row_is_narrow(l))
            bp__dense_row_backward(l, xi, ws->s[i], ws->y[i], g, is_dz, dx);
        else
            l->vt->backward(l, 1, xi, ws->s[i], ws->y[i], g, is_dz, dx, 0);
        is_dz = 0;
        BP_CHECK(prove_grad_finite(net, l, g, xi, 1, 0));
        float *tmp = g;
        g = other;
        other = tmp;
    }
    const bp_status s = bp__optimizer_update(opt, net);
    if (s != BP_OK) return bp__fail(net->err, s, "%s: %s", fn, bp_last_error());
    if (loss_value != NULL) *loss_value = value;
    return BP_OK;
}

static bp_status net_train_step(bp_net *net, bp_optimizer *opt, int loss, const float *x,
                                const float *y, size_t n, float *loss_value)
{
    NET_CHECK(net, "bp_net_train_step");
    BP_CHECK(check_step_args(net, "bp_net_train_step", loss, x, y, n));
    bp_status s = bp__optimizer_validate_for(opt, net);
    if (s != BP_OK) return bp__fail(net->err, s, "bp_net_train_step: %s", bp_last_error());
    if (row_path_applies(net, n)) return train_step_row(net, opt, loss, x, y, loss_value);
    float value = 0.0f;
    s = grads_pass(net, "bp_net_train_step", loss, x, y, n, &value);
    if (net->grad_hook != NULL) {
        /* Called whatever the local outcome, so that cooperating processes stay in step; a
         * local failure stands whatever the hook says. */
        char local[BP__ERR_CAP];
        memcpy(local, net->err, sizeof local);
        const int hs = net->grad_hook(net->grad_hook_user, net, (int)s, n, &value);
        if (s != BP_OK) return bp__fail(net->err, s, "%s", local);
        if (hs != BP_OK)
            return bp__fail(net->err, (bp_status)hs, "bp_net_train_step: gradient hook: %s",
                            bp_last_error());
        if (!isfinite(value))
            return bp__fail(net->err, BP_ERR_NONFINITE,
                            "bp_net_train_step: the gradient hook reported a loss of %g",
                            (double)value);
    }
    if (s != BP_OK) return s;
    if (net->clip_norm > 0.0 || net->clip_value > 0.0) clip_grads(net);
    s = bp__optimizer_step_trusted(opt, net);
    if (s != BP_OK) return bp__fail(net->err, s, "bp_net_train_step: %s", bp_last_error());
    if (loss_value != NULL) *loss_value = value;
    return BP_OK;
}

bp_status bp_net_train_step(bp_net *net, bp_optimizer *opt, int loss, const float *x,
                            const float *y, size_t n, float *loss_value)
{
    if (bp__net_train_step_tiny(net, opt, loss, x, y, n, loss_value)) return BP_OK; /* net_tiny.c */
    WITH_FTZ(net, n, net_train_step(net, opt, loss, x, y, n, loss_value));
}

/* Rows per predict chunk: large enough for GEMM efficiency, small enough for cache. */
#define BP__PREDICT_CHUNK 1024u

/* Rows per predict chunk for @p n rows. */
static size_t ws_rows(size_t n) { return n < BP__PREDICT_CHUNK ? n : BP__PREDICT_CHUNK; }

static bp_status net_predict(bp_net *net, const float *x, size_t n, float *y, size_t capacity)
{
    NET_CHECK(net, "bp_net_predict");
    if (x == NULL || y == NULL)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_predict: x and y must not be NULL");
    if (n == 0) return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_predict: n is 0");
    if (net->nlayers == 0)
        return bp__fail(net->err, BP_ERR_STATE, "bp_net_predict: the net has no layers");
    const size_t out = net_out_width(net);
    size_t need;
    if (bp__mul_size(n, out, &need) != 0 || need > capacity)
        return bp__fail(net->err, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_predict: %zu rows x %zu outputs need %zu floats, y holds %zu", n,
                        out, n * out, capacity);
    BP_CHECK(check_input(net, "bp_net_predict", x, n));
    const size_t chunk = ws_rows(n);
    BP_CHECK(ws_plan(net, &net->pws, chunk, 0));
    for (size_t r = 0; r < n; r += chunk) {
        const size_t rows = n - r < chunk ? n - r : chunk;
        forward_pass(net, &net->pws, x + r * net->inputs, rows, 0);
        memcpy(y + r * out, net->pws.y[net->nlayers - 1], rows * out * sizeof(float));
    }
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Concurrent inference: caller scratch, const net
 * ----------------------------------------------------------------------------------------*/

/* The floats one predict chunk of @p rows needs: two ping-pong activation buffers of
 * rows x max_width and the largest inference scratch of any layer, each rounded to 16. */

static size_t predict_scratch(const bp_net *net, size_t rows)
{
    size_t act, big = 0;
    if (bp__mul_size(rows, net->max_width, &act) != 0 || act > SIZE_MAX / 4) return SIZE_MAX;
    for (size_t i = 0; i < net->nlayers; i++) {
        const bp_layer *l = net->layers[i];
        const size_t sf = l->vt->scratch_floats(l, rows, 0);
        if (sf > big) big = sf;
    }
    if (big > SIZE_MAX / 4) return SIZE_MAX;
    return 2 * round16(act) + round16(big);
}

size_t bp_net_predict_scratch_floats(const bp_net *net, size_t n)
{
    if (!bp__net_ok(net) || net->nlayers == 0 || n == 0) return 0;
    return predict_scratch(net, ws_rows(n));
}

bp_status bp_net_predict_ws(const bp_net *net, const float *x, size_t n, float *y,
                            size_t capacity, float *scratch, size_t scratch_floats)
{
    /* Messages go to the calling thread's bp_last_error() only: net->err is shared. */
    if (!bp__net_ok(net))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_predict_ws: invalid net handle");
    if (x == NULL || y == NULL || scratch == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_net_predict_ws: x, y and scratch must not be NULL");
    if (n == 0) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_predict_ws: n is 0");
    if (net->nlayers == 0)
        return bp__fail(NULL, BP_ERR_STATE, "bp_net_predict_ws: the net has no layers");
    const size_t out = net_out_width(net), rows = ws_rows(n);
    size_t need;
    if (bp__mul_size(n, out, &need) != 0 || need > capacity)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_predict_ws: %zu rows x %zu outputs need %zu floats, y holds %zu",
                        n, out, n * out, capacity);
    const size_t sneed = predict_scratch(net, rows);
    if (sneed > scratch_floats)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_predict_ws: %zu rows need %zu scratch floats, got %zu", n,
                        sneed, scratch_floats);
    float x_max;
    BP_CHECK(check_input_to(net, NULL, "bp_net_predict_ws", x, n, &x_max));
    const size_t act = round16(rows * net->max_width);
    float *buf[2] = {scratch, scratch + act};
    float *ls = scratch + 2 * act;
    for (size_t r = 0; r < n; r += rows) {
        const size_t m = n - r < rows ? n - r : rows;
        const float *in = x + r * net->inputs;
        for (size_t i = 0; i < net->nlayers; i++) {
            /* Inference forward (training 0) does not write the layer (see the vtable), so
             * dropping const here is sound and lets threads share the net. */
            bp_layer *l = (bp_layer *)(uintptr_t)net->layers[i];
            float *dst = i + 1 == net->nlayers ? y + r * out : buf[i & 1];
            l->vt->forward(l, m, in, l->vt->scratch_floats(l, m, 0) ? ls : NULL, dst, 0);
            in = dst;
        }
    }
    return BP_OK;
}

bp_status bp_net_predict(bp_net *net, const float *x, size_t n, float *y, size_t capacity)
{
    WITH_FTZ(net, n, net_predict(net, x, n, y, capacity));
}

bp_status bp_net_param_bounds(int key, double *lo, double *hi)
{
    if (lo == NULL || hi == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_param_bounds: lo and hi must not be "
                                                   "NULL");
    switch (key) {
    case BP_NET_ACCUMULATE_GRADS: *lo = 0.0, *hi = 1.0; return BP_OK;
    case BP_NET_HUBER_DELTA: *lo = nextafter(0.0, 1.0), *hi = 1e6; return BP_OK;
    case BP_NET_CLIP_NORM:
    case BP_NET_CLIP_VALUE: *lo = 0.0, *hi = 1e9; return BP_OK;
    default:
        if (bp__fit_is_key(key)) return bp__fit_bounds(key, lo, hi);
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_param_bounds: unknown key %d", key);
    }
}
