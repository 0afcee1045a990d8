/* layer_flatten.c -- [C x H x W] rows become flat [C*H*W] rows.
 *
 * NCHW rows are stored in flatten order already, so the layer changes only the shape
 * bookkeeping: the workspace aliases its output to its input and the network walk skips it
 * (vtable passthrough). Only as the first layer, whose input is the caller's buffer, does it
 * copy. A dense layer after an image-shaped layer reads the rows flat anyway; flatten is
 * there so that architectures read as they are drawn. */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"

#include <string.h>

static void flatten_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                            int training)
{
    (void)scratch, (void)training;
    memcpy(y, x, n * l->out * sizeof(float));
}

static int flatten_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                            float *dy, int dy_is_dz, float *dx, int accumulate)
{
    (void)x, (void)scratch, (void)y, (void)dy_is_dz, (void)accumulate;
    if (dx != NULL) memcpy(dx, dy, n * l->in * sizeof(float));
    return 0;
}

static bp_status flatten_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    static const uint32_t known[] = {0};
    BP_CHECK(bp__hyper_expect_params(net, "flatten", 0, expect));
    const bp_status s = bp_net_add_flatten(net);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    return bp__hyper_apply_settings(net->layers[net->nlayers - 1], hp, count, known);
}

static const bp__layer_key flatten_keys[] = {BP__KEY_TRAINABLE, BP__KEY_END};

const bp__layer_vtable bp__flatten_vtable = {
    .kind = BP_LAYER_FLATTEN,
    .name = "flatten",
    .scratch_floats = bp__no_scratch,
    .forward = flatten_forward,
    .backward = flatten_backward,
    .keys = flatten_keys,
    .passthrough = 1,
    .hyper = bp__hyper_settings_only,
    .construct = flatten_construct,
};

bp_status bp_net_add_flatten(bp_net *net)
{
    BP__NET_CHECK(net, "bp_net_add_flatten");
    BP_CHECK(bp__net_check_append(net, "bp_net_add_flatten"));
    size_t C, H, W;
    bp__net_out_shape(net, &C, &H, &W);
    bp_layer *l = bp__layer_new(net, "bp_net_add_flatten", &bp__flatten_vtable, BP_ACT_IDENTITY,
                                C * H * W, 1, 1);
    if (l == NULL) return BP_ERR_NOMEM;
    return bp__net_append_or_discard(net, l, BP_INIT_DEFAULT, 0.0);
}
