/* layer_registry.c -- layer kinds by id, for loading saved networks, and the hyper-parameter
 * helpers every kind's persistence hooks share.
 *
 * Registering a new kind: give it an enum bp_layer_kind id, fill the persistence members of
 * its vtable (hyper, construct; state_* if it has non-parameter state) and add its vtable to
 * `kinds` below. serialize.c then saves and loads it without knowing it. */
#include "internal.h"


static const bp__layer_vtable *const kinds[] = {
    &bp__dense_vtable,
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
    const bp__hyper s[3] = {
        {BP_LAYER_TRAINABLE, l->trainable ? 1.0 : 0.0},
        {BP_LAYER_LEAKY_SLOPE, (double)l->act.leaky_slope},
        {BP_LAYER_ELU_ALPHA, (double)l->act.elu_alpha},
    };
    for (size_t i = 0; i < 3; i++, at++)
        if (at < cap) hp[at] = s[i];
    return at;
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
