/* net.c -- the network handle: creation, destruction, clone, queries, settings and summary.
 * The walks over its layers (forward, backward, train_step, predict) are in walk.c; appending
 * layers and the parameter arena in layer.c. */
#include "util.h"
#include "workers.h"
#include "rng.h"
#include "activation.h"
#include "layer.h"
#include "net.h"
#include "fit.h"
#include "optimizer.h"
#include "meta.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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
    bp__net_settings_defaults(net);
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
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_create_image: out is NULL");
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

bp_status bp_net_create_sequence_ex(bp_net **out, size_t steps, size_t features, uint64_t seed,
                                    bp_alloc_fn alloc_fn, bp_free_fn free_fn, void *user)
{
    if (out == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_create_sequence: out is NULL");
    *out = NULL;
    size_t inputs;
    if (steps == 0 || features == 0 || bp__mul_size(steps, features, &inputs) != 0 ||
        inputs > BP__MAX_WIDTH)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_net_create_sequence: %zu steps x %zu features is empty or exceeds "
                        "%zu inputs",
                        steps, features, BP__MAX_WIDTH);
    BP_CHECK(bp_net_create_ex(out, inputs, seed, alloc_fn, free_fn, user));
    (*out)->in_c = 1;
    (*out)->in_h = steps;
    (*out)->in_w = features;
    (*out)->in_steps = steps;
    return BP_OK;
}

bp_status bp_net_create_sequence(bp_net **out, size_t steps, size_t features, uint64_t seed)
{
    return bp_net_create_sequence_ex(out, steps, features, seed, NULL, NULL, NULL);
}

bp_status bp_net_input_steps(const bp_net *net, size_t *steps)
{
    BP__NET_CHECK(net, "bp_net_input_steps");
    if (steps == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_input_steps: steps is NULL");
    *steps = net->in_steps;
    return BP_OK;
}

bp_status bp_net_input_shape(const bp_net *net, size_t *channels, size_t *height, size_t *width)
{
    BP__NET_CHECK(net, "bp_net_input_shape");
    if (channels == NULL || height == NULL || width == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_input_shape: outputs must not be NULL");
    *channels = net->in_c;
    *height = net->in_h;
    *width = net->in_w;
    return BP_OK;
}

void bp_net_free(bp_net *net)
{
    if (!bp__net_ok(net)) return;
    const bp__alloc a = net->alloc;
    for (size_t i = 0; i < net->nlayers; i++)
        bp__layer_discard(net, net->layers[i]);
    bp__free(&a, net->layers);
    bp__free_aligned(&a, net->params);
    bp__free_aligned(&a, net->grads);
    bp__ws_release(net, &net->ws);
    bp__ws_release(net, &net->pws);
    bp__meta_free(net);
    bp__fit_free(net);
    bp__workers_free(net->workers, &a);
    net->magic = 0;
    bp__free(&a, net);
}

const char *bp_net_last_error(const bp_net *net)
{
    return bp__net_ok(net) ? net->err : bp__invalid_handle_msg;
}

/* ------------------------------------------------------------------------------------------
 * Layers and parameters
 * ----------------------------------------------------------------------------------------*/

size_t bp_net_layer_count(const bp_net *net)
{
    return bp__net_ok(net) ? net->nlayers : 0;
}

bp_layer *bp_net_layer(bp_net *net, size_t index)
{
    if (!bp__net_ok(net) || index >= net->nlayers) return NULL;
    return net->layers[index];
}

size_t bp_net_input_size(const bp_net *net)
{
    return bp__net_ok(net) ? net->inputs : 0;
}

size_t bp_net_output_size(const bp_net *net)
{
    return bp__net_ok(net) ? bp__net_out_width(net) : 0;
}

size_t bp_net_param_count(const bp_net *net)
{
    return bp__net_ok(net) ? net->nparams : 0;
}

float *bp_net_params(bp_net *net, size_t *count)
{
    if (count != NULL) *count = bp__net_ok(net) ? net->nparams : 0;
    if (!bp__net_ok(net) || net->nparams == 0) return NULL;
    net->params_lent = 1; /* writable from now on: the update guard measures (optimizer_step.c) */
    return net->params;
}

float *bp_net_grads(bp_net *net, size_t *count)
{
    if (count != NULL) *count = bp__net_ok(net) ? net->nparams : 0;
    return bp__net_ok(net) && net->nparams ? net->grads : NULL;
}

bp_status bp_net_zero_grad(bp_net *net)
{
    BP__NET_CHECK(net, "bp_net_zero_grad");
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
    BP__NET_CHECK(src, "bp_net_clone");
    bp_net *net;
    BP_CHECK(
        bp_net_create_ex(&net, src->inputs, 0, src->alloc.alloc, src->alloc.free, src->alloc.user));
    const bp__alloc *a = &net->alloc;
    bp_status s = BP_ERR_NOMEM;
    if (src->nlayers) {
        net->layers = bp__calloc(a, src->nlayers, sizeof *net->layers);
        net->params = bp__malloc_aligned(a, src->nparams * sizeof(float));
        net->grads = bp__malloc_aligned(a, src->nparams * sizeof(float));
        if (net->layers == NULL || net->params == NULL || net->grads == NULL) goto fail;
        net->cap_layers = src->nlayers;
        net->cap_params = src->nparams;
        memcpy(net->params, src->params, src->nparams * sizeof(float));
        memset(net->grads, 0, src->nparams * sizeof(float));
        net->nparams = src->nparams;
        for (size_t i = 0; i < src->nlayers; i++) {
            const bp_layer *sl = src->layers[i];
            bp_layer *l = bp__malloc(a, sizeof *l);
            if (l == NULL) {
                s = BP_ERR_NOMEM; /* a previous layer's clone left BP_OK in s */
                goto fail;
            }
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
    net->in_steps = src->in_steps;
    net->max_width = src->max_width;
    net->in_check = src->in_check;
    net->shape_hash = src->shape_hash;
    net->nstaged = src->nstaged;
    net->nfrozen = src->nfrozen;
    net->accumulate = src->accumulate;
    net->huber_delta = src->huber_delta;
    net->clip_norm = src->clip_norm;
    net->clip_value = src->clip_value;
    net->apply_scalers = src->apply_scalers;
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

/* The network settings family (block 300): one row per key with its bounds, default and
 * accessors; bp_net_set/get/param_bounds/reset_settings read it, and pass the fit loop's keys
 * (block 400) to train.c, which owns their table. */
static void set_accumulate(bp_net *n, double v)
{
    n->accumulate = v != 0.0;
}
static double get_accumulate(const bp_net *n)
{
    return n->accumulate;
}
static void set_apply_scalers(bp_net *n, double v)
{
    n->apply_scalers = v != 0.0;
}
static double get_apply_scalers(const bp_net *n)
{
    return n->apply_scalers;
}
static void set_huber(bp_net *n, double v)
{
    n->huber_delta = v;
}
static double get_huber(const bp_net *n)
{
    return n->huber_delta;
}
static void set_clip_norm(bp_net *n, double v)
{
    n->clip_norm = v;
}
static double get_clip_norm(const bp_net *n)
{
    return n->clip_norm;
}
static void set_clip_value(bp_net *n, double v)
{
    n->clip_value = v;
}
static double get_clip_value(const bp_net *n)
{
    return n->clip_value;
}

typedef struct net_key_info {
    int key;
    const char *name;
    double lo, hi;     /* inclusive; an open bound is the nearest double inside it */
    const char *range; /* the bounds as the messages print them */
    double def;
    int flag; /* 0/1 only */
    void (*set)(bp_net *net, double value);
    double (*get)(const bp_net *net);
} net_key_info;

static const net_key_info net_keys[] = {
    {BP_NET_ACCUMULATE_GRADS, "BP_NET_ACCUMULATE_GRADS", 0.0, 1.0, "{0, 1}", 0.0, 1, set_accumulate,
     get_accumulate},
    {BP_NET_HUBER_DELTA, "BP_NET_HUBER_DELTA", 0x1p-1074, 1e6, "(0, 1e6]", 1.0, 0, set_huber,
     get_huber},
    {BP_NET_CLIP_NORM, "BP_NET_CLIP_NORM", 0.0, 1e9, "[0, 1e9]", 0.0, 0, set_clip_norm,
     get_clip_norm},
    {BP_NET_CLIP_VALUE, "BP_NET_CLIP_VALUE", 0.0, 1e9, "[0, 1e9]", 0.0, 0, set_clip_value,
     get_clip_value},
    {BP_NET_APPLY_SCALERS, "BP_NET_APPLY_SCALERS", 0.0, 1.0, "{0, 1}", 0.0, 1, set_apply_scalers,
     get_apply_scalers},
};

static const net_key_info *net_key(int key)
{
    for (size_t i = 0; i < sizeof net_keys / sizeof net_keys[0]; i++)
        if (net_keys[i].key == key) return &net_keys[i];
    return NULL;
}

void bp__net_settings_defaults(bp_net *net)
{
    for (size_t i = 0; i < sizeof net_keys / sizeof net_keys[0]; i++)
        net_keys[i].set(net, net_keys[i].def);
}

bp_status bp_net_set(bp_net *net, int key, double value)
{
    BP__NET_CHECK(net, "bp_net_set");
    if (bp__fit_is_key(key)) return bp__fit_set(net, key, value);
    const net_key_info *k = net_key(key);
    if (k == NULL) return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_set: unknown key %d", key);
    if (k->flag && value != 0.0 && value != 1.0)
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE, "%s = %g is not 0 or 1", k->name, value);
    if (!(value >= k->lo && value <= k->hi))
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE, "%s = %g is outside %s", k->name, value,
                        k->range);
    k->set(net, value);
    return BP_OK;
}

bp_status bp_net_get(const bp_net *net, int key, double *value)
{
    BP__NET_CHECK(net, "bp_net_get");
    if (value == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_get: value is NULL");
    if (bp__fit_is_key(key)) return bp__fit_get(net, key, value);
    const net_key_info *k = net_key(key);
    if (k == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_get: unknown key %d", key);
    *value = k->get(net);
    return BP_OK;
}

bp_status bp_net_reset_settings(bp_net *net)
{
    BP__NET_CHECK(net, "bp_net_reset_settings");
    bp__net_settings_defaults(net);
    bp__fit_reset_settings(net);
    return BP_OK;
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

/* "[n x C]" for flat rows, "[n x T x F]" for sequences (@p steps T), "[n x C x H x W]" for
 * image-shaped ones. */
static void shape_string(char *s, size_t cap, size_t c, size_t h, size_t w, size_t steps)
{
    if (steps)
        snprintf(s, cap, "[n x %zu x %zu]", steps, w);
    else if (h == 1 && w == 1)
        snprintf(s, cap, "[n x %zu]", c);
    else
        snprintf(s, cap, "[n x %zu x %zu x %zu]", c, h, w);
}

bp_status bp_net_summary(const bp_net *net, char *buf, size_t capacity, size_t *needed)
{
    BP__NET_CHECK(net, "bp_net_summary");
    if (buf == NULL && capacity > 0)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_summary: buf is NULL");
    text_buf t = {buf, capacity, 0};
    char shape[80];
    tb_printf(&t, "%-5s %-14s %-22s %12s  %s\n", "layer", "kind", "output", "params", "activation");
    shape_string(shape, sizeof shape, net->in_c, net->in_h, net->in_w, net->in_steps);
    tb_printf(&t, "%-5s %-14s %-22s %12s  %s\n", "in", "input", shape, "0", "-");
    for (size_t i = 0; i < net->nlayers; i++) {
        const bp_layer *l = net->layers[i];
        const int has_act = bp__layer_key_of(l, BP_LAYER_LEAKY_SLOPE) != NULL;
        shape_string(shape, sizeof shape, l->out_c, l->out_h, l->out_w, l->out_steps);
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

bp_status bp_net_param_bounds(int key, double *lo, double *hi)
{
    if (lo == NULL || hi == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_net_param_bounds: lo and hi must not be NULL");
    if (bp__fit_is_key(key)) return bp__fit_bounds(key, lo, hi);
    const net_key_info *k = net_key(key);
    if (k == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_param_bounds: unknown key %d", key);
    *lo = k->lo;
    *hi = k->hi;
    return BP_OK;
}
