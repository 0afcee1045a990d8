/*
 * onnx_import_map.c -- import: mapping one node onto planned steps (Gemm, MatMul and its Add,
 * Conv, pooling, BatchNormalization, Softmax, activations, reshaping); the recurrent layers
 * and Gather are in onnx_import_seq.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_import.h"

/* ---- mapping one node onto planned steps ---- */

bp_status bpx_add_act(importer *im, const Onnx__NodeProto *n, int act, double param)
{
    step *s = bpx_new_step(im, S_ACT, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->act = act;
    s->act_param = param;
    return BP_OK;
}

static bp_status map_gemm(importer *im, const Onnx__NodeProto *n, const bpx_value *x)
{
    static const char *const known[] = {"alpha", "beta", "transA", "transB", NULL};
    BP_CHECK(bpx_check_attrs(n, known));
    if (bpx_attr_i(n, "transA", 0) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'transA' = 1 is not supported");
    if (x->rank != 2 || strcmp(n->input[0], x->name) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input A must be the [N x K] data (rank %zu)",
                         x->rank);
    const bpx_tensor *w = bpx_in_const(im, n, 1);
    if (w == NULL || w->rank != 2 || w->type != BPX_F32)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input B must be a constant float matrix");
    const int tb = bpx_attr_i(n, "transB", 0) != 0;
    const size_t out = (size_t)(tb ? w->dims[0] : w->dims[1]),
                 in = (size_t)(tb ? w->dims[1] : w->dims[0]);
    if (in != (size_t)x->dims[1])
        return NODE_FAIL(BP_ERR_FORMAT, n, "B is %lldx%lld for %zu inputs", (long long)w->dims[0],
                         (long long)w->dims[1], (size_t)x->dims[1]);
    const double alpha = bpx_attr_f(n, "alpha", 1.0), beta = bpx_attr_f(n, "beta", 1.0);
    const bpx_tensor *c = bpx_in_const(im, n, 2);
    if (n->n_input > 2 && n->input[2][0] != '\0' && c == NULL)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input C must be a constant");
    if (c != NULL && !(c->count == out || c->count == 1))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input C has %zu elements: only a bias of %zu "
                         "(or 1) broadcast over rows is supported",
                         c->count, out);
    if (c != NULL && c->type != BPX_F32)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input C must be float");
    step *s = bpx_new_step(im, S_DENSE, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->units = out;
    s->nw = out * in;
    s->nb = out;
    s->w = malloc(s->nw * sizeof(float));
    s->b = calloc(out, sizeof(float));
    if (s->w == NULL || s->b == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    for (size_t o = 0; o < out; o++)
        for (size_t i = 0; i < in; i++)
            s->w[o * in + i] = (float)(alpha * (double)(tb ? w->f[o * in + i] : w->f[i * out + o]));
    if (c != NULL)
        for (size_t o = 0; o < out; o++)
            s->b[o] = (float)(beta * (double)c->f[c->count == 1 ? 0 : o]);
    return BP_OK;
}

static bp_status map_matmul(importer *im, const Onnx__NodeProto *n, const bpx_value *x)
{
    char core[BPX_MAX_RANK + 1];
    bpx_core_tags(x, core);
    /* [N x K] rows, or sequences [N x T x K] / [T x N x K] (one matrix for every step) */
    const int seq = x->rank == 3 && (strcmp(core, "NTF") == 0 || strcmp(core, "TNF") == 0);
    if ((x->rank != 2 && !seq) || strcmp(n->input[0], x->name) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "only [N x K] data (or sequences [N x T x K]) times a constant "
                         "[K x M] matrix is supported (data rank %zu)",
                         x->rank);
    const int64_t k_in = x->dims[x->rank - 1];
    const bpx_tensor *w = bpx_in_const(im, n, 1);
    if (w == NULL || w->rank != 2 || w->type != BPX_F32 || w->dims[0] != k_in)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input B must be a constant float [%lld x M] "
                         "matrix",
                         (long long)k_in);
    const size_t in = (size_t)w->dims[0], out = (size_t)w->dims[1];
    step *s = bpx_new_step(im, S_DENSE, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->units = out;
    s->nw = out * in;
    s->nb = out;
    s->w = malloc(s->nw * sizeof(float));
    s->b = calloc(out, sizeof(float));
    if (s->w == NULL || s->b == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    for (size_t o = 0; o < out; o++)
        for (size_t i = 0; i < in; i++)
            s->w[o * in + i] = w->f[i * out + o];
    s->bias_open = 1;
    return BP_OK;
}

static bp_status map_add_bias(importer *im, const Onnx__NodeProto *n, const bpx_value *x)
{
    step *prev = im->nsteps > 0 ? &im->steps[im->nsteps - 1] : NULL;
    const int other = strcmp(n->input[0], x->name) == 0 ? 1 : 0;
    const bpx_tensor *c = bpx_in_const(im, n, (size_t)other);
    if (prev == NULL || !prev->bias_open || c == NULL || c->type != BPX_F32 ||
        !(c->count == prev->units || c->count == 1) || (c->rank == 2 && c->dims[0] != 1) ||
        c->rank > 2)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "Add is supported only as the bias of the "
                         "MatMul right before it (a constant of its width or a scalar)");
    for (size_t o = 0; o < prev->units; o++)
        prev->b[o] = c->f[c->count == 1 ? 0 : o];
    prev->bias_open = 0;
    return BP_OK;
}

/* Kernel, stride and symmetric padding of a Conv or pooling node over data [N x C x H x W]
 * (@p hw = {H, W}); auto_pad SAME_* becomes explicit padding when it is symmetric. */
static bp_status window_attrs(const Onnx__NodeProto *n, const int64_t *hw, size_t *kh, size_t *kw,
                              size_t *stride, size_t *pad, int conv)
{
    const Onnx__AttributeProto *a = bpx_attr_of(n, "auto_pad");
    if (a != NULL && a->has_s && a->s.len > 0 && !bpx_auto_pad_is(n, "NOTSET") &&
        !bpx_auto_pad_is(n, "VALID") && !bpx_auto_pad_same(n))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'auto_pad' = %.*s is not supported",
                         (int)a->s.len, (const char *)a->s.data);
    if ((a = bpx_attr_of(n, "dilations")) != NULL)
        for (size_t k = 0; k < a->n_ints; k++)
            if (a->ints[k] != 1)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "attribute 'dilations' = %lld: only 1 "
                                 "is supported",
                                 (long long)a->ints[k]);
    if ((a = bpx_attr_of(n, "kernel_shape")) != NULL) {
        if (a->n_ints != 2 || a->ints[0] < 1 || a->ints[1] < 1 || a->ints[0] > 1024 ||
            a->ints[1] > 1024)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "attribute 'kernel_shape': only 2-D kernels "
                             "of 1 .. 1024 are supported");
        *kh = (size_t)a->ints[0];
        *kw = (size_t)a->ints[1];
    } else if (!conv) {
        return NODE_FAIL(BP_ERR_FORMAT, n, "attribute 'kernel_shape' is missing");
    }
    *stride = 1;
    if ((a = bpx_attr_of(n, "strides")) != NULL) {
        if (a->n_ints != 2 || a->ints[0] != a->ints[1] || a->ints[0] < 1 || a->ints[0] > 1024)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "attribute 'strides': only equal strides "
                             "of 1 .. 1024 in both directions are supported");
        *stride = (size_t)a->ints[0];
    }
    *pad = 0;
    if ((a = bpx_attr_of(n, "pads")) != NULL) {
        if (a->n_ints != 4)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'pads': only 2-D is supported");
        for (int k = 1; k < 4; k++)
            if (a->ints[k] != a->ints[0])
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "attribute 'pads' = [%lld, %lld, %lld, "
                                 "%lld]: only symmetric padding, equal on every side, is "
                                 "supported",
                                 (long long)a->ints[0], (long long)a->ints[1],
                                 (long long)a->ints[2], (long long)a->ints[3]);
        if (a->ints[0] < 0 || a->ints[0] > 1023)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'pads' out of range");
        *pad = (size_t)a->ints[0];
    }
    if (bpx_auto_pad_same(n)) {
        /* Output ceil(in / stride); the total padding must split evenly, equal for H, W. */
        const size_t k[2] = {*kh, *kw};
        size_t p[2];
        for (int j = 0; j < 2; j++) {
            const int64_t in = hw[j], s = (int64_t)*stride, out = (in + s - 1) / s;
            int64_t total = (out - 1) * s + (int64_t)k[j] - in;
            if (total < 0) total = 0;
            if (total % 2 != 0)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "attribute 'auto_pad' = SAME_*: the "
                                 "padding (%lld) is not symmetric for this input",
                                 (long long)total);
            p[j] = (size_t)(total / 2);
        }
        if (p[0] != p[1])
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "attribute 'auto_pad' = SAME_*: padding %zu "
                             "and %zu differ between height and width",
                             p[0], p[1]);
        *pad = p[0];
    }
    return BP_OK;
}

static bp_status map_conv(importer *im, const Onnx__NodeProto *n, const bpx_value *x)
{
    static const char *const known[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                        "pads",     "strides",   NULL};
    BP_CHECK(bpx_check_attrs(n, known));
    if (bpx_attr_i(n, "group", 1) != 1)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'group' = %lld: only group 1 is "
                         "supported",
                         (long long)bpx_attr_i(n, "group", 1));
    if (x->rank != 4)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "only 2-D convolutions of [N x C x H x W] data "
                         "are supported (data rank %zu)",
                         x->rank);
    const bpx_tensor *w = bpx_in_const(im, n, 1);
    if (w == NULL || w->rank != 4 || w->type != BPX_F32 || w->dims[1] != x->dims[1])
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input W must be a constant float [F x %lld x "
                         "kh x kw] tensor",
                         (long long)x->dims[1]);
    size_t kh = (size_t)w->dims[2], kw = (size_t)w->dims[3], stride, pad;
    size_t akh = kh, akw = kw;
    BP_CHECK(window_attrs(n, x->dims + 2, &akh, &akw, &stride, &pad, 1));
    if (akh != kh || akw != kw)
        return NODE_FAIL(BP_ERR_FORMAT, n, "attribute 'kernel_shape' disagrees with W");
    if (pad >= kh || pad >= kw)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'pads' = %zu: padding must be smaller "
                         "than the kernel (%zux%zu)",
                         pad, kh, kw);
    const size_t f = (size_t)w->dims[0];
    const bpx_tensor *b = bpx_in_const(im, n, 2);
    if (n->n_input > 2 && n->input[2][0] != '\0' &&
        (b == NULL || b->type != BPX_F32 || b->count != f))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input B must be a constant float [%zu]", f);
    step *s = bpx_new_step(im, S_CONV, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->units = f;
    s->kh = kh;
    s->kw = kw;
    s->stride = stride;
    s->pad = pad;
    s->nw = w->count;
    s->nb = f;
    s->w = bpx_copy_floats(w->f, w->count);
    s->b = b != NULL ? bpx_copy_floats(b->f, f) : calloc(f, sizeof(float));
    if (s->w == NULL || s->b == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    return BP_OK;
}

static bp_status map_pool(importer *im, const Onnx__NodeProto *n, const bpx_value *x, int max)
{
    static const char *const known[] = {"auto_pad",      "ceil_mode",    "count_include_pad",
                                        "dilations",     "kernel_shape", "pads",
                                        "storage_order", "strides",      NULL};
    BP_CHECK(bpx_check_attrs(n, known));
    if (x->rank != 4)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "only 2-D pooling of [N x C x H x W] data is "
                         "supported (data rank %zu)",
                         x->rank);
    if (n->n_output > 1 && n->output[1][0] != '\0')
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "output 'Indices' is not supported");
    if (bpx_attr_i(n, "storage_order", 0) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'storage_order' = 1 is not supported");
    size_t kh = 0, kw = 0, stride, pad;
    BP_CHECK(window_attrs(n, x->dims + 2, &kh, &kw, &stride, &pad, 0));
    if (kh != kw)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'kernel_shape' = [%zu, %zu]: only "
                         "square windows are supported",
                         kh, kw);
    if (pad != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'pads' = %zu: pooling without "
                         "padding only",
                         pad);
    if (bpx_attr_i(n, "ceil_mode", 0) != 0) {
        /* ceil_mode changes nothing when the windows tile the input exactly. */
        if (((size_t)x->dims[2] - kh) % stride != 0 || ((size_t)x->dims[3] - kh) % stride != 0)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "attribute 'ceil_mode' = 1 with windows "
                             "that do not tile the %lldx%lld input",
                             (long long)x->dims[2], (long long)x->dims[3]);
    }
    if ((size_t)x->dims[2] < kh || (size_t)x->dims[3] < kh)
        return NODE_FAIL(BP_ERR_FORMAT, n, "window %zu larger than the input", kh);
    step *s = bpx_new_step(im, max ? S_MAXPOOL : S_AVGPOOL, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->kh = kh;
    s->stride = stride;
    return BP_OK;
}

static bp_status map_bn(importer *im, const Onnx__NodeProto *n, const bpx_value *x)
{
    static const char *const known[] = {"epsilon", "momentum", "training_mode", "spatial", NULL};
    BP_CHECK(bpx_check_attrs(n, known));
    if (bpx_attr_i(n, "training_mode", 0) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'training_mode' = 1: only the "
                         "inference form is supported");
    if (bpx_attr_i(n, "spatial", 1) != 1)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'spatial' = 0 is not supported");
    for (size_t k = 1; k < n->n_output; k++)
        if (n->output[k][0] != '\0')
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "training outputs (running mean/var) are "
                             "not supported");
    if (x->rank != 2 && x->rank != 4)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "only [N x C] or [N x C x H x W] data is "
                         "supported (rank %zu)",
                         x->rank);
    const size_t c = (size_t)x->dims[1];
    const bpx_tensor *t[4];
    static const char *const names[4] = {"scale", "B", "input_mean", "input_var"};
    for (size_t k = 0; k < 4; k++) {
        t[k] = bpx_in_const(im, n, k + 1);
        if (t[k] == NULL || t[k]->type != BPX_F32 || t[k]->count != c)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input '%s' must be a constant float [%zu]",
                             names[k], c);
    }
    const double eps = bpx_attr_f(n, "epsilon", 1e-5), mom = bpx_attr_f(n, "momentum", 0.9);
    if (!(eps >= 1e-12 && eps <= 1.0))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'epsilon' = %g outside [1e-12, 1]", eps);
    if (!(mom >= 0.0 && mom <= 1.0))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'momentum' = %g outside [0, 1]", mom);
    step *s = bpx_new_step(im, S_BN, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->eps = eps;
    s->momentum = mom;
    s->nw = s->nb = c;
    s->nstate = 2 * c;
    s->w = bpx_copy_floats(t[0]->f, c);
    s->b = bpx_copy_floats(t[1]->f, c);
    s->state = malloc(2 * c * sizeof(float));
    if (s->w == NULL || s->b == NULL || s->state == NULL)
        return bpx_fail(BP_ERR_NOMEM, "out of memory");
    memcpy(s->state, t[2]->f, c * sizeof(float));
    memcpy(s->state + c, t[3]->f, c * sizeof(float));
    return BP_OK;
}

/* Softmax over the last axis (opset 13+) or over axis..end (opset 11-12) must cover the
 * whole row for our row-wise softmax. */
static bp_status map_softmax(importer *im, const Onnx__NodeProto *n, const bpx_value *x)
{
    static const char *const known[] = {"axis", NULL};
    BP_CHECK(bpx_check_attrs(n, known));
    int64_t axis = bpx_attr_i(n, "axis", im->gr.opset >= 13 ? -1 : 1);
    if (axis < 0) axis += (int64_t)x->rank;
    if (axis < 1 || axis >= (int64_t)x->rank)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "axis %lld: the batch axis cannot be normalised",
                         (long long)bpx_attr_i(n, "axis", im->gr.opset >= 13 ? -1 : 1));
    char core[BPX_MAX_RANK + 1];
    bpx_core_tags(x, core);
    if (x->tag[axis] == 'F' && axis + 1 == (int64_t)x->rank &&
        (strcmp(core, "NTF") == 0 || strcmp(core, "TNF") == 0))
        return bpx_add_act(im, n, BP_ACT_SOFTMAX, -1.0); /* per step of a sequence */
    size_t before = 1;
    for (int64_t k = 1; k < axis; k++)
        before *= (size_t)x->dims[k];
    if (im->gr.opset >= 13) {
        for (size_t k = (size_t)axis + 1; k < x->rank; k++)
            before *= (size_t)x->dims[k];
    }
    if (before != 1)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "axis %lld: softmax over part of a row is not supported (only over "
                         "all of each row's features)",
                         (long long)bpx_attr_i(n, "axis", im->gr.opset >= 13 ? -1 : 1));
    return bpx_add_act(im, n, BP_ACT_SOFTMAX, -1.0);
}

bp_status bpx_map_node(importer *im, const Onnx__NodeProto *n, const bpx_value *x,
                       const bpx_value *y)
{
    const char *op = n->op_type;
    static const char *const none[] = {NULL};
    static const char *const layout_free[] = {
        "MatMul",  "Add",       "Softmax",  "Relu", "Sigmoid", "Tanh",    "Softplus", "LeakyRelu",
        "Elu",     "Dropout",   "Identity", "Cast", "Pad",     "Flatten", "Reshape",  "Transpose",
        "Squeeze", "Unsqueeze", "Gather",   "RNN",  "GRU",     "LSTM",    NULL};
    int free_ = 0;
    for (const char *const *p = layout_free; *p != NULL; p++)
        if (strcmp(op, *p) == 0) free_ = 1;
    char core[BPX_MAX_RANK + 1];
    bpx_core_tags(x, core);
    if (!free_ && x->has_shape && !bpx_batch_first(core))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "its input has the layout %s (N batch, T steps, F features, D "
                         "directions): this operator needs batch-first rows",
                         x->tag);
    if (strcmp(op, "Gemm") == 0) return map_gemm(im, n, x);
    if (strcmp(op, "MatMul") == 0) {
        BP_CHECK(bpx_check_attrs(n, none));
        return map_matmul(im, n, x);
    }
    if (strcmp(op, "Add") == 0) {
        BP_CHECK(bpx_check_attrs(n, none)); /* opsets 1-6: broadcast, axis */
        return map_add_bias(im, n, x);
    }
    if (strcmp(op, "Conv") == 0) return map_conv(im, n, x);
    if (bpx_is_recurrent(op)) return bpx_map_recurrent(im, n, x, y);
    if (strcmp(op, "Gather") == 0) return bpx_map_gather(im, n, x, y);
    if (strcmp(op, "Transpose") == 0 || strcmp(op, "Squeeze") == 0 ||
        strcmp(op, "Unsqueeze") == 0) {
        /* layout only: the layers that read the result check it */
        static const char *const perm[] = {"perm", NULL}, *const axes[] = {"axes", NULL};
        BP_CHECK(bpx_check_attrs(n, op[0] == 'T' ? perm : axes));
        if (!y->has_shape)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "the layout of its output is not understood");
        return BP_OK;
    }
    if (strcmp(op, "MaxPool") == 0) return map_pool(im, n, x, 1);
    if (strcmp(op, "AveragePool") == 0) return map_pool(im, n, x, 0);
    if (strcmp(op, "BatchNormalization") == 0) return map_bn(im, n, x);
    if (strcmp(op, "Softmax") == 0) return map_softmax(im, n, x);
    if (strcmp(op, "Relu") == 0 || strcmp(op, "Sigmoid") == 0 || strcmp(op, "Tanh") == 0 ||
        strcmp(op, "Softplus") == 0) {
        BP_CHECK(bpx_check_attrs(n, none));
        const int act = op[0] == 'R'   ? BP_ACT_RELU
                        : op[0] == 'T' ? BP_ACT_TANH
                        : op[1] == 'i' ? BP_ACT_SIGMOID
                                       : BP_ACT_SOFTPLUS;
        return bpx_add_act(im, n, act, -1.0);
    }
    if (strcmp(op, "LeakyRelu") == 0 || strcmp(op, "Elu") == 0) {
        static const char *const known[] = {"alpha", NULL};
        BP_CHECK(bpx_check_attrs(n, known));
        const int leaky = op[0] == 'L';
        const double alpha = bpx_attr_f(n, "alpha", leaky ? 0.01 : 1.0);
        if (!(alpha >= 0.0 && alpha <= (leaky ? 1.0 : 100.0)))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'alpha' = %g outside [0, %g]", alpha,
                             leaky ? 1.0 : 100.0);
        return bpx_add_act(im, n, leaky ? BP_ACT_LEAKY_RELU : BP_ACT_ELU, alpha);
    }
    if (strcmp(op, "GlobalAveragePool") == 0) {
        BP_CHECK(bpx_check_attrs(n, none));
        if (x->rank != 4)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "only [N x C x H x W] data is supported");
        return bpx_new_step(im, S_GAP, n) != NULL ? BP_OK : bpx_fail(BP_ERR_NOMEM, "out of memory");
    }
    if (strcmp(op, "Flatten") == 0 || strcmp(op, "Reshape") == 0) {
        static const char *const flat[] = {"axis", NULL}, *const reshape[] = {"allowzero", NULL};
        BP_CHECK(bpx_check_attrs(n, op[0] == 'F' ? flat : reshape)); /* opsets 1-4: 'shape' */
        if (bpx_attr_i(n, "allowzero", 0) != 0) {
            const bpx_tensor *sh = bpx_in_const(im, n, 1);
            for (size_t k = 0; sh != NULL && sh->type == BPX_I64 && k < sh->count; k++)
                if (sh->i[k] == 0)
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "attribute 'allowzero' = 1 with a "
                                     "0 in the shape (an empty tensor)");
        }
        char ycore[BPX_MAX_RANK + 1] = "";
        if (y->has_shape) bpx_core_tags(y, ycore);
        if (y->has_shape && y->rank != 2 && strchr(y->tag, '?') == NULL &&
            (strcmp(ycore, "NTF") == 0 || strcmp(ycore, "TNF") == 0 || strcmp(ycore, "NF") == 0))
            return BP_OK; /* a recurrent output's directions joined, unit axes: layout only */
        if (!y->has_shape || y->rank != 2 || strcmp(y->tag, "NF") != 0)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "only a reshape of each row to a flat "
                             "[N x features] row is supported");
        /* to [N x features]: a flatten of images and sequences, nothing on flat rows */
        if (!bpx_batch_first(core))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "flattens data of layout %s (N batch, T steps, F features, D "
                             "directions): only batch-first rows flatten as the library's do",
                             x->tag);
        if (strchr(x->tag, 'T') == NULL && strchr(x->tag, 'C') == NULL) return BP_OK;
        return bpx_new_step(im, S_FLATTEN, n) != NULL ? BP_OK
                                                      : bpx_fail(BP_ERR_NOMEM, "out of memory");
    }
    if (strcmp(op, "Dropout") == 0) {
        static const char *const known[] = {"ratio", "seed", "is_test", NULL};
        BP_CHECK(bpx_check_attrs(n, known));
        for (size_t k = 1; k < n->n_output; k++)
            if (n->output[k][0] != '\0' && bpx_find(&im->gr, n->output[k]) != NULL)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "output 'mask' is not supported");
        const bpx_tensor *tm = bpx_in_const(im, n, 2);
        if (n->n_input > 2 && n->input[2][0] != '\0' &&
            (tm == NULL || tm->count != 1 ||
             (tm->type == BPX_I64 ? tm->i[0] != 0 : tm->f[0] != 0.0f)))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "input 'training_mode' must be constant "
                             "false");
        return BP_OK; /* identity at inference */
    }
    if (strcmp(op, "Identity") == 0) {
        BP_CHECK(bpx_check_attrs(n, none));
        return BP_OK;
    }
    if (strcmp(op, "Pad") == 0) {
        static const char *const known[] = {"mode", NULL};
        BP_CHECK(bpx_check_attrs(n, known));
        const Onnx__AttributeProto *mode = bpx_attr_of(n, "mode");
        if (mode != NULL && mode->has_s &&
            !(mode->s.len == 8 && memcmp(mode->s.data, "constant", 8) == 0))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'mode': only constant padding");
        const bpx_tensor *pads = bpx_in_const(im, n, 1);
        int zero = pads != NULL && pads->type == BPX_I64;
        for (size_t k = 0; zero && k < pads->count; k++)
            if (pads->i[k] != 0) zero = 0;
        if (!zero)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "input 'pads': only a Pad that adds nothing "
                             "(all pads 0, as torch writes before AveragePool) is supported; "
                             "give the padding to Conv instead");
        return BP_OK;
    }
    if (strcmp(op, "Cast") == 0 && bpx_attr_i(n, "to", 0) == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return BP_OK;
    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                     "operator '%s' is not supported (docs/onnx.md lists "
                     "the supported operators)",
                     op);
}
