/* layer_registry.c -- layer kinds by id, for loading saved networks, and the hyper-parameter
 * helpers every kind's persistence hooks share.
 *
 * Registering a new kind: give it an enum bp_layer_kind id, fill the persistence members of
 * its vtable (hyper, construct; state_* if it has non-parameter state) and add its vtable to
 * `kinds` below. serialize.c then saves and loads it without knowing it. */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"

#include <math.h>


static const bp__layer_vtable *const kinds[] = {
    &bp__dense_vtable,        &bp__batchnorm_vtable,     &bp__dropout_vtable,
    &bp__conv2d_vtable,       &bp__maxpool2d_vtable,     &bp__avgpool2d_vtable,
    &bp__flatten_vtable,      &bp__global_avgpool_vtable, &bp__activation_vtable,
};

const bp__layer_vtable *bp__layer_vtable_of(int kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i]->kind == kind) return kinds[i];
    return NULL;
}

bp_status bp__layer_construct(bp_net *net, int kind, const bp__hyper *hp, size_t count,
                              size_t expect_params)
{
    const bp__layer_vtable *vt = bp__layer_vtable_of(kind);
    if (vt == NULL || vt->construct == NULL)
        return bp__fail(net->err, BP_ERR_VERSION,
                        "layer %zu: unknown layer kind %d (written by a newer library?)",
                        net->nlayers, kind);
    return vt->construct(net, hp, count, expect_params);
}

int bp__hyper_find(const bp__hyper *hp, size_t count, uint32_t key, double *value)
{
    for (size_t i = 0; i < count; i++) {
        if (hp[i].key == key) {
            *value = hp[i].value;
            return 0;
        }
    }
    return -1;
}

size_t bp__hyper_put_settings(const bp_layer *l, bp__hyper *hp, size_t cap, size_t at)
{
    for (unsigned bit = 0; bit < 32; bit++) {
        if (!(l->vt->keys & (1u << bit))) continue;
        const int key = (int)(BP__LAYER_KEY_FIRST + bit);
        double v;
        if (bp_layer_get(l, key, &v) != BP_OK) continue;
        if (at < cap) hp[at] = (bp__hyper){(uint32_t)key, v};
        at++;
    }
    return at;
}

bp_status bp__hyper_get_size(bp_net *net, const char *kind, const bp__hyper *hp, size_t count,
                             uint32_t key, size_t lo, size_t hi, size_t *out)
{
    double v;
    if (bp__hyper_find(hp, count, key, &v) != 0)
        return bp__fail(net->err, BP_ERR_FORMAT, "layer %zu (%s): construction key %lu missing",
                        net->nlayers, kind, (unsigned long)key);
    if (!(v >= (double)lo && v <= (double)hi && v == floor(v)))
        return bp__fail(net->err, BP_ERR_FORMAT,
                        "layer %zu (%s): construction key %lu = %g is not an integer in "
                        "%zu..%zu",
                        net->nlayers, kind, (unsigned long)key, v, lo, hi);
    *out = (size_t)v;
    return BP_OK;
}

static int is_known(const uint32_t *known, uint32_t key)
{
    for (; *known != 0; known++)
        if (*known == key) return 1;
    return 0;
}

bp_status bp__hyper_apply_settings(bp_layer *l, const bp__hyper *hp, size_t count,
                                   const uint32_t *known)
{
    char *err = l->net->err;
    for (size_t i = 0; i < count; i++) {
        const uint32_t key = hp[i].key;
        if (is_known(known, key)) continue;
        double lo, hi;
        if (key > INT32_MAX || bp_layer_param_bounds((int)key, &lo, &hi) != BP_OK)
            return bp__fail(err, BP_ERR_VERSION,
                            "layer %zu: unknown hyper-parameter key %lu (written by a newer "
                            "library?)",
                            l->index, (unsigned long)key);
        if (bp_layer_set(l, (int)key, hp[i].value) != BP_OK)
            return bp__fail(err, BP_ERR_FORMAT, "layer %zu: %s", l->index, bp_last_error());
    }
    return BP_OK;
}

bp_status bp__hyper_add_failed(bp_net *net, bp_status s)
{
    if (s == BP_ERR_INVALID_ARG || s == BP_ERR_STATE || s == BP_ERR_SHAPE ||
        s == BP_ERR_OUT_OF_RANGE)
        return bp__fail(net->err, BP_ERR_FORMAT, "layer %zu: %s", net->nlayers, bp_last_error());
    return s;
}

bp_status bp__hyper_expect_params(bp_net *net, const char *kind, size_t want, size_t expect)
{
    if (want != expect)
        return bp__fail(net->err, BP_ERR_FORMAT,
                        "layer %zu (%s) needs %zu parameters, the file holds %zu", net->nlayers,
                        kind, want, expect);
    return BP_OK;
}

size_t bp__hyper_settings_only(const bp_layer *l, bp__hyper *hp, size_t cap)
{
    return bp__hyper_put_settings(l, hp, cap, 0);
}
