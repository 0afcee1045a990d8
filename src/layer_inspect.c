/*
 * layer_inspect.c -- what an interchange format needs to read and write a layer besides its
 * parameters: the kernel geometry of convolution and pooling layers and the non-parameter
 * state (batch-norm running statistics). Both go through the kinds' persistence hooks
 * (vtable hyper() and state_*), so this file names no layer kind.
 */
#include "layer.h"
#include "net.h"

bp_status bp_layer_kernel_shape(const bp_layer *layer, size_t *kernel_h, size_t *kernel_w,
                                size_t *stride, size_t *padding)
{
    BP__CHECK_HANDLE(bp__layer_ok(layer), "layer", "bp_layer_kernel_shape");
    if (kernel_h == NULL || kernel_w == NULL || stride == NULL || padding == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_layer_kernel_shape: NULL output");
    bp__hyper hp[BP__HYPER_MAX];
    size_t count = layer->vt->hyper(layer, hp, BP__HYPER_MAX);
    if (count > BP__HYPER_MAX) count = BP__HYPER_MAX;
    double kh, kw, st, pad = 0.0;
    if (bp__hyper_find(hp, count, BP__HP_POOL_SIZE, &kh) == 0) {
        kw = kh;
    } else if (bp__hyper_find(hp, count, BP__HP_KERNEL_H, &kh) != 0 ||
               bp__hyper_find(hp, count, BP__HP_KERNEL_W, &kw) != 0) {
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_layer_kernel_shape: layer %zu (%s) has "
                        "no kernel",
                        layer->index, layer->vt->name);
    }
    if (bp__hyper_find(hp, count, BP__HP_STRIDE, &st) != 0) st = 1.0;
    (void)bp__hyper_find(hp, count, BP__HP_PADDING, &pad);
    *kernel_h = (size_t)kh;
    *kernel_w = (size_t)kw;
    *stride = (size_t)st;
    *padding = (size_t)pad;
    return BP_OK;
}

bp_status bp_layer_get_state(const bp_layer *layer, float *dst, size_t capacity, size_t *count)
{
    BP__CHECK_HANDLE(bp__layer_ok(layer), "layer", "bp_layer_get_state");
    const size_t n = layer->vt->state_floats != NULL ? layer->vt->state_floats(layer) : 0;
    if (count != NULL) *count = n;
    if (n == 0) return BP_OK;
    if (dst == NULL || capacity < n)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_layer_get_state: layer %zu (%s) "
                        "has %zu state floats, capacity %zu",
                        layer->index, layer->vt->name, n, capacity);
    layer->vt->state_write(layer, dst);
    return BP_OK;
}

bp_status bp_layer_set_state(bp_layer *layer, const float *src, size_t count)
{
    BP__CHECK_HANDLE(bp__layer_ok(layer), "layer", "bp_layer_set_state");
    const size_t n = layer->vt->state_floats != NULL ? layer->vt->state_floats(layer) : 0;
    if (count != n)
        return bp__fail(layer->net->err, BP_ERR_SHAPE,
                        "bp_layer_set_state: layer %zu (%s) has "
                        "%zu state floats, got %zu",
                        layer->index, layer->vt->name, n, count);
    if (n == 0) return BP_OK;
    if (src == NULL)
        return bp__fail(layer->net->err, BP_ERR_INVALID_ARG, "bp_layer_set_state: NULL src");
    const bp_status s = layer->vt->state_read(layer, src, count);
    /* state_read reports a wrong count as a file error; here it is the caller's argument. */
    return s == BP_ERR_FORMAT ? BP_ERR_SHAPE : s;
}
