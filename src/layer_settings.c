/* layer_settings.c -- the layer settings family (enum bp_layer_key, block 200..299).
 *
 * One table holds the family's names, bounds and defaults (bp_layer_param_bounds() reads
 * it); each layer kind lists the keys that apply to it, with their accessors, in its own
 * vtable (bp__layer_vtable.keys). bp_layer_set()/bp_layer_get() route a key through both:
 * unknown keys and keys the kind does not list fail with BP_ERR_INVALID_ARG, values outside
 * the bounds with BP_ERR_OUT_OF_RANGE (never clamped). A new setting is one row here plus an
 * entry in the tables of the kinds it applies to. */
#include "util.h"
#include "layer.h"
#include "net.h"

#include <math.h>

typedef struct key_info {
    int key;
    const char *name;
    double lo, hi;
    double def; /* bp_layer_reset_settings() value; NAN: none (an argument of the creating
                   call, left as it is) */
    int flag;   /* 0/1 only */
} key_info;

static const key_info family[] = {
    {BP_LAYER_TRAINABLE, "BP_LAYER_TRAINABLE", 0.0, 1.0, 1.0, 1},
    {BP_LAYER_LEAKY_SLOPE, "BP_LAYER_LEAKY_SLOPE", 0.0, 1.0, (double)BP__DEFAULT_LEAKY_SLOPE, 0},
    {BP_LAYER_ELU_ALPHA, "BP_LAYER_ELU_ALPHA", 0.0, 100.0, (double)BP__DEFAULT_ELU_ALPHA, 0},
    {BP_LAYER_BN_MOMENTUM, "BP_LAYER_BN_MOMENTUM", 0.0, 1.0, 0.99, 0},
    {BP_LAYER_BN_EPSILON, "BP_LAYER_BN_EPSILON", 1e-12, 1.0, 1e-5, 0},
    {BP_LAYER_DROPOUT_RATE, "BP_LAYER_DROPOUT_RATE", 0.0, 0x1.fffffffffffffp-1, (double)NAN, 0},
    {BP_LAYER_L2, "BP_LAYER_L2", 0.0, 1e3, 0.0, 0},
    {BP_LAYER_L1, "BP_LAYER_L1", 0.0, 1e3, 0.0, 0},
    {BP_LAYER_LN_EPSILON, "BP_LAYER_LN_EPSILON", 1e-12, 1.0, 1e-5, 0},
    {BP_LAYER_STATEFUL, "BP_LAYER_STATEFUL", 0.0, 1.0, 0.0, 1}, /* rnn, lstm, gru */
};

static const key_info *family_row(int key)
{
    for (size_t i = 0; i < sizeof family / sizeof family[0]; i++)
        if (family[i].key == key) return &family[i];
    return NULL;
}

/* ---- accessors for the settings struct bp_layer holds itself ---- */

void bp__layer_set_trainable(bp_layer *l, double v)
{
    const int t = v != 0.0;
    if (t != l->trainable) { /* the net's count of frozen layers (optimizer_step.c) */
        if (t)
            l->net->nfrozen--;
        else
            l->net->nfrozen++;
    }
    l->trainable = t;
}
double bp__layer_get_trainable(const bp_layer *l)
{
    return l->trainable;
}
void bp__layer_set_leaky_slope(bp_layer *l, double v)
{
    l->act.leaky_slope = (float)v;
}
double bp__layer_get_leaky_slope(const bp_layer *l)
{
    return (double)l->act.leaky_slope;
}
void bp__layer_set_elu_alpha(bp_layer *l, double v)
{
    l->act.elu_alpha = (float)v;
}
double bp__layer_get_elu_alpha(const bp_layer *l)
{
    return (double)l->act.elu_alpha;
}
void bp__layer_set_l2(bp_layer *l, double v)
{
    l->l2 = v;
    l->penalised = l->l2 > 0.0 || l->l1 > 0.0;
}
double bp__layer_get_l2(const bp_layer *l)
{
    return l->l2;
}
void bp__layer_set_l1(bp_layer *l, double v)
{
    l->l1 = v;
    l->penalised = l->l2 > 0.0 || l->l1 > 0.0;
}
double bp__layer_get_l1(const bp_layer *l)
{
    return l->l1;
}

/* ---- the public calls ---- */

const bp__layer_key *bp__layer_key_of(const bp_layer *l, int key)
{
    for (const bp__layer_key *k = l->vt->keys; k != NULL && k->key != 0; k++)
        if (k->key == key) return k;
    return NULL;
}

/* The kind's entry for @p key, or a failure naming the key and the layer. Messages go to
 * @p err: the net's buffer for calls on a mutable handle, NULL (bp_last_error() only) for
 * calls on a const one. */
static bp_status lookup(const bp_layer *l, const char *fn, int key, char *err,
                        const key_info **info, const bp__layer_key **entry)
{
    *info = family_row(key);
    if (*info == NULL) return bp__fail(err, BP_ERR_INVALID_ARG, "%s: unknown key %d", fn, key);
    *entry = bp__layer_key_of(l, key);
    if (*entry == NULL)
        return bp__fail(err, BP_ERR_INVALID_ARG, "%s: %s does not apply to layer %zu (%s)", fn,
                        (*info)->name, l->index, l->vt->name);
    return BP_OK;
}

bp_status bp_layer_set(bp_layer *layer, int key, double value)
{
    BP__CHECK_HANDLE(bp__layer_ok(layer), "layer", "bp_layer_set");
    char *err = layer->net->err;
    const key_info *info;
    const bp__layer_key *entry;
    BP_CHECK(lookup(layer, "bp_layer_set", key, err, &info, &entry));
    if (info->flag && value != 0.0 && value != 1.0)
        return bp__fail(err, BP_ERR_OUT_OF_RANGE, "bp_layer_set: %s = %g is not 0 or 1", info->name,
                        value);
    if (!(value >= info->lo && value <= info->hi))
        return bp__fail(err, BP_ERR_OUT_OF_RANGE, "bp_layer_set: %s = %g is outside [%g, %g]",
                        info->name, value, info->lo, info->hi);
    entry->set(layer, value);
    return BP_OK;
}

bp_status bp_layer_get(const bp_layer *layer, int key, double *value)
{
    BP__CHECK_HANDLE(bp__layer_ok(layer), "layer", "bp_layer_get");
    if (value == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_layer_get: value is NULL");
    const key_info *info;
    const bp__layer_key *entry;
    BP_CHECK(lookup(layer, "bp_layer_get", key, NULL, &info, &entry));
    *value = entry->get(layer);
    return BP_OK;
}

bp_status bp_layer_param_bounds(int key, double *lo, double *hi)
{
    if (lo == NULL || hi == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_layer_param_bounds: lo and hi must not be NULL");
    const key_info *info = family_row(key);
    if (info == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_layer_param_bounds: unknown key %d", key);
    *lo = info->lo;
    *hi = info->hi;
    return BP_OK;
}

bp_status bp_layer_reset_settings(bp_layer *layer)
{
    BP__CHECK_HANDLE(bp__layer_ok(layer), "layer", "bp_layer_reset_settings");
    for (const bp__layer_key *k = layer->vt->keys; k != NULL && k->key != 0; k++) {
        const key_info *info = family_row(k->key);
        if (info != NULL && !isnan(info->def)) k->set(layer, info->def);
    }
    return BP_OK;
}
