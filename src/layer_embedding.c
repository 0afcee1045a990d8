/* layer_embedding.c -- token ids -> vectors: y[r][t] = W[id(r, t)] (PyTorch's nn.Embedding).
 *
 * Input: sequence rows of T token ids stored as floats ([T x 1], exact integers below 2^24),
 * which is why the layer must be the first: the walks check every id (vtable check_input,
 * run on the input after its finite check) before any call uses it, so a bad id fails the
 * call with BP_ERR_INDEX and nothing changed. Output [T x dimension]; weights
 * W [vocabulary x dimension] (row v is the vector of token v), no bias.
 *
 * Forward: a row copy per step. Backward: dW (+)= for each step, dy[r][t] added to row
 * id(r, t) of dW; the rest of dW is 0 (the dense gradient of PyTorch's nn.Embedding with
 * sparse=False, so every optimizer sees exactly the gradient it would there: Adam's moments
 * of rows not seen decay as in PyTorch). No dx: ids are not differentiable and the layer is
 * first. */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"

#include <math.h>
#include <string.h>

/* The vocabulary is the weight rows: nweights / dimension, dimension = out_w. */
static size_t vocabulary(const bp_layer *l)
{
    return l->nweights / l->out_w;
}

static void embedding_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                              int training)
{
    /* x: [n*T] ids, w: [V x D], y: [n*T x D] */
    (void)scratch, (void)training;
    const size_t rows = bp__layer_rows(l, n), D = l->out_w;
    const float *w = bp__layer_w(l);
    for (size_t k = 0; k < rows; k++)
        memcpy(y + k * D, w + (size_t)x[k] * D, D * sizeof(float));
}

static int embedding_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                              float *dy, int dy_is_dz, float *dx, int accumulate)
{
    /* x: [n*T] ids, dy: [n*T x D], dw: [V x D]; dW[id] += dy[k] */
    (void)scratch, (void)y, (void)dy_is_dz;
    const size_t rows = bp__layer_rows(l, n), D = l->out_w;
    float *dw = bp__layer_dw(l);
    if (!accumulate) memset(dw, 0, l->nweights * sizeof(float));
    for (size_t k = 0; k < rows; k++) {
        float *restrict dwv = dw + (size_t)x[k] * D;
        const float *restrict dyk = dy + k * D;
        for (size_t d = 0; d < D; d++)
            dwv[d] += dyk[d];
    }
    if (dx != NULL) memset(dx, 0, n * l->in * sizeof(float)); /* not reached: first layer */
    return 0;
}

/* Every id an integer in [0, V): BP_ERR_INDEX naming the row and step. */
static bp_status embedding_check_input(const bp_layer *l, char *err, const char *fn, const float *x,
                                       size_t n)
{
    const size_t rows = bp__layer_rows(l, n), T = l->in_steps;
    const float V = (float)vocabulary(l);
    for (size_t k = 0; k < rows; k++) {
        const float id = x[k];
        if (BP__UNLIKELY(!(id >= 0.0f && id < V && id == floorf(id))))
            return bp__fail(err, BP_ERR_INDEX,
                            "%s: input row %zu, step %zu: token id %g is not an integer in "
                            "0..%zu (embedding layer 0's vocabulary)",
                            fn, k / T, k % T, (double)id, vocabulary(l) - 1);
    }
    return BP_OK;
}

static size_t embedding_hyper(const bp_layer *l, bp__hyper *hp, size_t cap)
{
    const bp__hyper c[2] = {{BP__HP_VOCABULARY, (double)vocabulary(l)},
                            {BP__HP_DIMENSION, (double)l->out_w}};
    for (size_t i = 0; i < 2 && i < cap; i++)
        hp[i] = c[i];
    return bp__hyper_put_settings(l, hp, cap, 2);
}

static bp_status embedding_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    static const uint32_t known[] = {BP__HP_VOCABULARY, BP__HP_DIMENSION, 0};
    size_t v, d, nw;
    BP_CHECK(
        bp__hyper_get_size(net, "embedding", hp, count, BP__HP_VOCABULARY, 1, BP__MAX_WIDTH, &v));
    BP_CHECK(
        bp__hyper_get_size(net, "embedding", hp, count, BP__HP_DIMENSION, 1, BP__MAX_WIDTH, &d));
    if (bp__mul_size(v, d, &nw) != 0) nw = SIZE_MAX;
    BP_CHECK(bp__hyper_expect_params(net, "embedding", nw, expect)); /* before allocating */
    const bp_status s = bp_net_add_embedding(net, v, d);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

static const bp__layer_key embedding_keys[] = {BP__KEY_TRAINABLE, BP__KEY_PENALTIES, BP__KEY_END};

const bp__layer_vtable bp__embedding_vtable = {
    .kind = BP_LAYER_EMBEDDING,
    .name = "embedding",
    .scratch_floats = bp__no_scratch,
    .forward = embedding_forward,
    .backward = embedding_backward,
    .check_input = embedding_check_input,
    .keys = embedding_keys,
    .hyper = embedding_hyper,
    .construct = embedding_construct,
};

bp_status bp_net_add_embedding(bp_net *net, size_t vocabulary, size_t dimension)
{
    static const char fn[] = "bp_net_add_embedding";
    BP__NET_CHECK(net, fn);
    if (vocabulary == 0 || vocabulary > BP__MAX_WIDTH || dimension == 0 ||
        dimension > BP__MAX_WIDTH)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "%s: vocabulary %zu and dimension %zu must be in 1..%zu", fn, vocabulary,
                        dimension, BP__MAX_WIDTH);
    if (net->nlayers > 0)
        return bp__fail(net->err, BP_ERR_STATE,
                        "%s: an embedding must be the first layer (its inputs are the net's "
                        "token ids); the net has %zu layers",
                        fn, net->nlayers);
    if (net->in_steps == 0 || net->in_w != 1)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "%s: the input rows must be sequences of one token id per step "
                        "(bp_net_create_sequence(&net, steps, 1, seed)); they are %zu x %zu x %zu",
                        fn, net->in_c, net->in_h, net->in_w);
    const size_t T = net->in_steps;
    size_t nw, out;
    if (bp__mul_size(vocabulary, dimension, &nw) != 0 || nw > SIZE_MAX / sizeof(float))
        return bp__fail(net->err, BP_ERR_NOMEM, "%s: %zu x %zu weights overflow", fn, vocabulary,
                        dimension);
    if (bp__mul_size(T, dimension, &out) != 0 || out > BP__MAX_WIDTH)
        return bp__fail(net->err, BP_ERR_SHAPE, "%s: %zu steps x %zu dimensions exceed %zu outputs",
                        fn, T, dimension, BP__MAX_WIDTH);
    bp_layer *l = bp__layer_new(net, fn, &bp__embedding_vtable, BP_ACT_IDENTITY, 1, T, dimension);
    if (l == NULL) return BP_ERR_NOMEM;
    l->out_steps = T;
    l->nweights = nw;
    l->nbiases = 0;
    l->fan_in = vocabulary;
    l->fan_out = dimension;
    /* N(0, 1), as PyTorch's nn.Embedding. */
    return bp__net_append_or_discard(net, l, BP_INIT_NORMAL, 1.0);
}
