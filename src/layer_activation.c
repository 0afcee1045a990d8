/* layer_activation.c -- a standalone activation y = f(x), shape unchanged: for f after a
 * normalisation (dense/conv -> batch norm -> ReLU) where it cannot be fused into the layer.
 *
 * Forward and backward reuse the fused kernels of activation.c with a zero bias. A softmax
 * activation layer keeps its input (the logits) in the scratch like a dense softmax layer, so
 * the fused softmax + cross-entropy path works with it too. */
#include "util.h"
#include "activation.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "workers.h"

#include <string.h>

/* Activation layer: save nothing but struct bp_layer.activation (and its act settings). It
 * has no private data: its output lives in the net's workspace, planned when the net first
 * runs, and its forward pass takes no bias (bp__act_apply), so a loaded or appended
 * activation layer allocates nothing in proportion to its width. */

static size_t act_scratch(const bp_layer *l, size_t n, int training)
{
    return training && bp__act_needs_z(l->activation) ? n * l->out : 0;
}

/* Training passes over [b, e) of the n*out floats, split across the worker threads:
 * elementwise (every activation but softmax), so any split gives the same floats. */
typedef struct act_job {
    const bp_layer *l;
    const float *x, *z, *y;
    float *zw, *yw, *dy, *dx;
    int dy_is_dz;
} act_job;

static void act_forward_range(void *ctx, size_t b, size_t e)
{
    const act_job *j = ctx;
    bp__act_apply(j->l->activation, &j->l->act, 1, e - b, j->x + b,
                  j->zw != NULL ? j->zw + b : NULL, j->yw + b);
}

static void act_backward_range(void *ctx, size_t b, size_t e)
{
    const act_job *j = ctx;
    if (j->dy_is_dz)
        memcpy(j->dx + b, j->dy + b, (e - b) * sizeof(float));
    else
        bp__act_backward_to(j->l->activation, &j->l->act, e - b, j->z != NULL ? j->z + b : NULL,
                            j->y + b, j->dy + b, j->dx + b);
}

static void act_forward(bp_layer *l, size_t n, const float *x, float *z, float *y, int training)
{
    /* x, y, z (scratch or NULL): [n x out]; per step on sequences (softmax over each step's
     * features): n*T rows of out/T */
    const size_t rows = bp__layer_rows(l, n);
    if (training && l->activation != BP_ACT_SOFTMAX) {
        /* (inference may run on several threads at once: it never uses the workers) */
        act_job job = {l, x, NULL, NULL, z, y, NULL, NULL, 0};
        bp__workers_run(&l->net->workers, &l->net->alloc, n * l->out, act_forward_range, &job);
        return;
    }
    bp__act_apply(l->activation, &l->act, rows, n * l->out / rows, x, z, y);
}

static int act_backward(bp_layer *l, size_t n, const float *x, float *z, const float *y, float *dy,
                        int dy_is_dz, float *dx, int accumulate)
{
    (void)x, (void)accumulate;
    if (dx == NULL) return 0;
    const size_t rows = bp__layer_rows(l, n);
    if (l->activation != BP_ACT_SOFTMAX) {
        act_job job = {l, NULL, z, y, NULL, NULL, dy, dx, dy_is_dz};
        bp__workers_run(&l->net->workers, &l->net->alloc, n * l->out, act_backward_range, &job);
        return 0;
    }
    if (!dy_is_dz) bp__act_backward(l->activation, &l->act, rows, n * l->out / rows, z, y, dy);
    memcpy(dx, dy, n * l->out * sizeof(float));
    return 0;
}

static size_t act_hyper(const bp_layer *l, bp__hyper *hp, size_t cap)
{
    if (cap > 0) hp[0] = (bp__hyper){BP__HP_ACTIVATION, (double)l->activation};
    return bp__hyper_put_settings(l, hp, cap, 1);
}

static bp_status act_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    static const uint32_t known[] = {BP__HP_ACTIVATION, 0};
    size_t act;
    BP_CHECK(bp__hyper_expect_params(net, "activation", 0, expect));
    BP_CHECK(bp__hyper_get_size(net, "activation", hp, count, BP__HP_ACTIVATION, 0, 1000, &act));
    const bp_status s = bp_net_add_activation(net, (int)act);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

static const bp__layer_key act_keys[] = {BP__KEY_TRAINABLE, BP__KEY_ACTIVATION, BP__KEY_END};

const bp__layer_vtable bp__activation_vtable = {
    .kind = BP_LAYER_ACTIVATION,
    .name = "activation",
    .scratch_floats = act_scratch,
    .forward = act_forward,
    .backward = act_backward,
    .keys = act_keys,
    .hyper = act_hyper,
    .construct = act_construct,
};

bp_status bp_net_add_activation(bp_net *net, int activation)
{
    BP__NET_CHECK(net, "bp_net_add_activation");
    if (!bp__act_valid(activation))
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "bp_net_add_activation: unknown activation %d", activation);
    BP_CHECK(bp__net_check_append(net, "bp_net_add_activation"));
    size_t c, h, w;
    bp__net_out_shape(net, &c, &h, &w);
    bp_layer *l =
        bp__layer_new(net, "bp_net_add_activation", &bp__activation_vtable, activation, c, h, w);
    if (l == NULL) return BP_ERR_NOMEM;
    l->out_steps = l->in_steps; /* per step on sequences */
    return bp__net_append_or_discard(net, l, BP_INIT_DEFAULT, 0.0);
}
