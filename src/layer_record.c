/* layer_record.c -- the vocabulary of layer records: the (key, value) hyper-parameters that
 * every kind's persistence hooks (bp__layer_vtable.hyper / .construct) write and read, and the
 * checks a loader applies to them (docs/format.md, "Layer records"). */
#include "util.h"
#include "layer.h"
#include "net.h"

#include <math.h>
#include <stdint.h>

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
    for (const bp__layer_key *k = l->vt->keys; k != NULL && k->key != 0; k++) {
        if (at < cap) hp[at] = (bp__hyper){(uint32_t)k->key, k->get(l)};
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

bp_status bp__hyper_check_unique(bp_net *net, const char *kind, const bp__hyper *hp, size_t count)
{
    /* count <= BP__HYPER_MAX: quadratic is a few hundred comparisons at most. */
    for (size_t i = 1; i < count; i++)
        for (size_t j = 0; j < i; j++)
            if (hp[i].key == hp[j].key)
                return bp__fail(net->err, BP_ERR_FORMAT,
                                "layer %zu (%s): key %lu appears twice (records %zu and %zu)",
                                net->nlayers, kind, (unsigned long)hp[i].key, j, i);
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
