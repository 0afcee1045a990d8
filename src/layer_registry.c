/* layer_registry.c -- layer kinds by id, for loading saved networks. The only module that
 * names every kind; the kinds themselves use only layer.c, layer_record.c and below.
 *
 * Registering a new kind: give it an enum bp_layer_kind id, fill the persistence members of
 * its vtable (hyper, construct; state_* if it has non-parameter state) and add its vtable to
 * `kinds` below. serialize.c then saves and loads it without knowing it. */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"

static const bp__layer_vtable *const kinds[] = {
    &bp__dense_vtable,
    &bp__batchnorm_vtable,
    &bp__dropout_vtable,
    &bp__conv2d_vtable,
    &bp__maxpool2d_vtable,
    &bp__avgpool2d_vtable,
    &bp__flatten_vtable,
    &bp__global_avgpool_vtable,
    &bp__activation_vtable,
    /* sequences */
    &bp__embedding_vtable,
    &bp__layernorm_vtable,
    /* recurrent layers */
    &bp__rnn_vtable,
    &bp__lstm_vtable,
    &bp__gru_vtable,
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
    BP_CHECK(bp__hyper_check_unique(net, vt->name, hp, count));
    return vt->construct(net, hp, count, expect_params);
}
