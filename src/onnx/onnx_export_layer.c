/*
 * onnx_export_layer.c -- export: one layer of the net -> its ONNX nodes and initializers
 * (Gemm, Conv, pooling, BatchNormalization, the activations and their decompositions, the
 * recurrent layers, Gather for an embedding).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_export.h"

static bp_status activation(exporter *e, const bp_layer *l, int act, const char *base)
{
    char name[96];
    snprintf(name, sizeof name, "%s.act", base);
    const char *x[1] = {e->cur};
    double p = 0.0;
    switch (act) {
    case BP_ACT_IDENTITY: return BP_OK;
    case BP_ACT_SIGMOID: bpx_node(e, "Sigmoid", name, 1, x); break;
    case BP_ACT_TANH: bpx_node(e, "Tanh", name, 1, x); break;
    case BP_ACT_RELU: bpx_node(e, "Relu", name, 1, x); break;
    case BP_ACT_SOFTPLUS: bpx_node(e, "Softplus", name, 1, x); break;
    case BP_ACT_LEAKY_RELU:
        if (bp_layer_get(l, BP_LAYER_LEAKY_SLOPE, &p) != BP_OK)
            return bpx_fail_core(BP_ERR_STATE, base);
        bpx_attr_float(e, bpx_node(e, "LeakyRelu", name, 1, x), "alpha", p);
        break;
    case BP_ACT_ELU:
        if (bp_layer_get(l, BP_LAYER_ELU_ALPHA, &p) != BP_OK)
            return bpx_fail_core(BP_ERR_STATE, base);
        bpx_attr_float(e, bpx_node(e, "Elu", name, 1, x), "alpha", p);
        break;
    case BP_ACT_SOFTMAX:
        if (e->rank == 4) bpx_flatten(e, name); /* over each image row; per step on sequences */
        x[0] = e->cur;
        bpx_attr_int(e, bpx_node(e, "Softmax", name, 1, x), "axis", -1);
        break;
    case BP_ACT_SILU: {
        char v[96];
        snprintf(v, sizeof v, "%s", e->cur);
        bpx_node(e, "Sigmoid", name, 1, x);
        const char *in[2] = {v, e->cur};
        bpx_node(e, "Mul", name, 2, in);
        break;
    }
    case BP_ACT_GELU: {
        /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as torch writes its tanh form. */
        char v[96], t[96];
        snprintf(v, sizeof v, "%s", e->cur);
        const char *in[2] = {v, v};
        bpx_node(e, "Mul", name, 2, in); /* x^2 */
        snprintf(t, sizeof t, "%s", e->cur);
        in[1] = t;
        bpx_node(e, "Mul", name, 2, in); /* x^3 */
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = bpx_scalar(e, "gelu_kappa", 0.044715f);
        in[1] = t;
        bpx_node(e, "Mul", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = v;
        in[1] = t;
        bpx_node(e, "Add", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = bpx_scalar(e, "gelu_beta", 0.7978845608028654f);
        in[1] = t;
        bpx_node(e, "Mul", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = t;
        bpx_node(e, "Tanh", name, 1, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = bpx_scalar(e, "gelu_one", 1.0f);
        in[1] = t;
        bpx_node(e, "Add", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = v;
        in[1] = t;
        bpx_node(e, "Mul", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = bpx_scalar(e, "gelu_half", 0.5f);
        in[1] = t;
        bpx_node(e, "Mul", name, 2, in);
        break;
    }
    default: return bpx_fail(BP_ERR_UNSUPPORTED, "%s: activation %d has no ONNX form", base, act);
    }
    return e->a.failed ? bpx_fail(BP_ERR_NOMEM, "out of memory") : BP_OK;
}

/* Copy a layer's weights and biases into fresh arena buffers. */
static bp_status layer_params(exporter *e, const bp_layer *l, float **w, size_t *nw, float **b,
                              size_t *nb, const char *base)
{
    const size_t total = bp_layer_param_count(l);
    size_t c, h, wd;
    size_t steps = 0;
    if (bp_layer_output_shape(l, &c, &h, &wd) != BP_OK || bp_layer_output_steps(l, &steps) != BP_OK)
        return bpx_fail_core(BP_ERR_STATE, base);
    *nb = steps > 0 ? wd : c; /* sequences [1 x T x units]: the features are the last axis */
    *nw = total - *nb;
    *w = bpx_arena_calloc(&e->a, *nw, sizeof(float));
    *b = bpx_arena_calloc(&e->a, *nb, sizeof(float));
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    bp_status s = bp_layer_get_weights(l, *w, *nw);
    if (s == BP_OK) s = bp_layer_get_biases(l, *b, *nb);
    return s == BP_OK ? BP_OK : bpx_fail_core(s, base);
}

/* A dense layer on sequence rows (one matrix for every step): MatMul by W^T [in x out],
 * Add of the bias, then its activation. */
static bp_status export_step_dense(exporter *e, const bp_layer *l, const char *base)
{
    char name[96];
    float *wt, *b;
    size_t nw, nb;
    BP_CHECK(layer_params(e, l, &wt, &nw, &b, &nb, base));
    const size_t in = nb > 0 ? nw / nb : 0;
    float *tr = bpx_arena_calloc(&e->a, nw, sizeof(float));
    if (tr == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    for (size_t o = 0; o < nb; o++)
        for (size_t i = 0; i < in; i++)
            tr[i * nb + o] = wt[o * in + i];
    const int64_t wd[2] = {(int64_t)in, (int64_t)nb}, bd[1] = {(int64_t)nb};
    const char *x[2] = {e->cur, NULL};
    char v[96];
    snprintf(v, sizeof v, "%s", e->cur);
    x[0] = v;
    snprintf(name, sizeof name, "%s.weight", base);
    x[1] = bpx_init_floats(e, name, 2, wd, tr, nw);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    bpx_node(e, "MatMul", base, 2, x);
    snprintf(v, sizeof v, "%s", e->cur);
    snprintf(name, sizeof name, "%s.bias", base);
    x[1] = bpx_init_floats(e, name, 1, bd, b, nb);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    bpx_node(e, "Add", base, 2, x);
    e->in_feat = nb;
    return activation(e, l, bp_layer_activation(l), base);
}

static void attr_string(exporter *e, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *at = bpx_attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (at != NULL) {
        at->has_s = 1;
        at->s.len = strlen(v);
        at->s.data = (uint8_t *)bpx_arena_str(&e->a, v);
    }
    bpx_attr_add(e, n, at);
}

static void attr_strings(exporter *e, Onnx__NodeProto *n, const char *name, size_t count,
                         const char *v)
{
    Onnx__AttributeProto *at =
        bpx_attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    if (at != NULL) {
        at->strings = bpx_arena_calloc(&e->a, count, sizeof(ProtobufCBinaryData));
        if (at->strings != NULL) {
            at->n_strings = count;
            for (size_t k = 0; k < count; k++) {
                at->strings[k].len = strlen(v);
                at->strings[k].data = (uint8_t *)bpx_arena_str(&e->a, v);
            }
        }
    }
    bpx_attr_add(e, n, at);
}

/* rnn, lstm, gru -> ONNX RNN, LSTM, GRU (layout 0, as opset 13 has it): Transpose to
 * [T x N x F], the node (gates reordered from the library's i, f, g, o / r, z, n to ONNX's
 * i, o, f, c / z, r, h; GRU with linear_before_reset 1), then back to batch-first rows:
 * Y [T x D x N x H] -> [N x T x D*H], or Y_h [D x N x H] -> [N x D*H] for the last step. */
static bp_status export_recurrent(exporter *e, const bp_layer *l, size_t index, int kind)
{
    const int lstm = kind == BP_LAYER_LSTM, gru = kind == BP_LAYER_GRU;
    const size_t g = lstm ? 4 : gru ? 3 : 1;
    char base[64], name[96];
    snprintf(base, sizeof base, "%s%zu", lstm ? "lstm" : gru ? "gru" : "rnn", index);
    if (e->rank != 3) return bpx_fail(BP_ERR_STATE, "%s: not on sequence rows", base);
    size_t c, h, w, steps = 0;
    if (bp_layer_output_shape(l, &c, &h, &w) != BP_OK || bp_layer_output_steps(l, &steps) != BP_OK)
        return bpx_fail_core(BP_ERR_STATE, base);
    const int last = steps == 0;
    const size_t width = last ? c * h * w : w, f = e->in_feat, p = bp_layer_param_count(l);
    /* one direction or two: the parameter count tells */
    size_t nd = 0;
    if (p == g * width * (f + width + 2))
        nd = 1;
    else if (width % 2 == 0 && p == g * width * (f + width / 2 + 2))
        nd = 2;
    if (nd == 0) return bpx_fail(BP_ERR_STATE, "%s: parameter count %zu does not fit", base, p);
    const size_t hid = width / nd, gh = g * hid, nw = nd * gh * (f + hid), nb = nd * 2 * gh;
    float *wt = bpx_arena_calloc(&e->a, nw, sizeof(float)),
          *bs = bpx_arena_calloc(&e->a, nb, sizeof(float));
    float *ow = bpx_arena_calloc(&e->a, nd * gh * f, sizeof(float));
    float *orr = bpx_arena_calloc(&e->a, nd * gh * hid, sizeof(float));
    float *ob = bpx_arena_calloc(&e->a, nb, sizeof(float));
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    if (bp_layer_get_weights(l, wt, nw) != BP_OK || bp_layer_get_biases(l, bs, nb) != BP_OK)
        return bpx_fail_core(BP_ERR_STATE, base);
    /* the library's (PyTorch's) gate block written at each ONNX gate position */
    static const size_t lstm_src[4] = {0, 3, 1, 2}, gru_src[3] = {1, 0, 2}, rnn_src[1] = {0};
    const size_t *src = lstm ? lstm_src : gru ? gru_src : rnn_src;
    const float *wd = wt, *bd = bs;
    for (size_t d = 0; d < nd; d++) {
        for (size_t q = 0; q < g; q++) {
            memcpy(ow + (d * gh + q * hid) * f, wd + src[q] * hid * f, hid * f * sizeof(float));
            memcpy(orr + (d * gh + q * hid) * hid, wd + gh * f + src[q] * hid * hid,
                   hid * hid * sizeof(float));
            for (size_t part = 0; part < 2; part++)
                memcpy(ob + d * 2 * gh + part * gh + q * hid, bd + part * gh + src[q] * hid,
                       hid * sizeof(float));
        }
        wd += gh * (f + hid);
        bd += 2 * gh;
    }
    const int64_t wdim[3] = {(int64_t)nd, (int64_t)gh, (int64_t)f};
    const int64_t rdim[3] = {(int64_t)nd, (int64_t)gh, (int64_t)hid};
    const int64_t bdim[2] = {(int64_t)nd, (int64_t)(2 * gh)};
    char v[96];
    snprintf(v, sizeof v, "%s", e->cur);
    const char *x[4] = {v, NULL, NULL, NULL};
    const int64_t tperm[3] = {1, 0, 2};
    bpx_attr_ints(e, bpx_node(e, "Transpose", base, 1, x), "perm", 3, tperm);
    snprintf(v, sizeof v, "%s", e->cur);
    snprintf(name, sizeof name, "%s.W", base);
    x[1] = bpx_init_floats(e, name, 3, wdim, ow, nd * gh * f);
    snprintf(name, sizeof name, "%s.R", base);
    x[2] = bpx_init_floats(e, name, 3, rdim, orr, nd * gh * hid);
    snprintf(name, sizeof name, "%s.B", base);
    x[3] = bpx_init_floats(e, name, 2, bdim, ob, nb);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    Onnx__NodeProto *n = bpx_node(e, lstm ? "LSTM" : gru ? "GRU" : "RNN", base, 4, x);
    if (n == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    bpx_attr_int(e, n, "hidden_size", (int64_t)hid);
    if (nd == 2) attr_string(e, n, "direction", "bidirectional");
    if (gru) bpx_attr_int(e, n, "linear_before_reset", 1);
    if (kind == BP_LAYER_RNN && bp_layer_activation(l) == BP_ACT_RELU)
        attr_strings(e, n, "activations", nd, "Relu");
    if (last) {
        /* only Y_h: outputs ("", Y_h) */
        char **outs = bpx_arena_calloc(&e->a, 2, sizeof(char *));
        if (outs == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        outs[0] = bpx_arena_str(&e->a, "");
        outs[1] = n->output[0];
        n->n_output = 2;
        n->output = outs;
    }
    snprintf(v, sizeof v, "%s", e->cur);
    x[0] = v;
    const int64_t yperm[4] = {2, 0, 1, 3}, hperm[3] = {1, 0, 2};
    bpx_attr_ints(e, bpx_node(e, "Transpose", base, 1, x), "perm", last ? 3 : 4,
                  last ? hperm : yperm);
    snprintf(v, sizeof v, "%s", e->cur);
    const int64_t keep[3] = {0, 0, -1};
    x[1] = bpx_init_ints(e, "shape", last ? keep + 1 : keep, last ? 2 : 3);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    bpx_node(e, "Reshape", base, 2, x);
    e->rank = last ? 2 : 3;
    e->in_feat = width;
    return e->a.failed ? bpx_fail(BP_ERR_NOMEM, "out of memory") : BP_OK;
}

bp_status bpx_export_layer(exporter *e, bp_layer *l, size_t index)
{
    const int kind = bp_layer_kind(l);
    char base[64], name[96];
    size_t c, h, w;
    BP_CHECK(bp_layer_output_shape(l, &c, &h, &w) == BP_OK ? BP_OK
                                                           : bpx_fail_core(BP_ERR_STATE, "layer"));
    const char *x[5] = {e->cur};
    if (e->rank != 4 && (kind == BP_LAYER_CONV2D || kind == BP_LAYER_MAXPOOL2D ||
                         kind == BP_LAYER_AVGPOOL2D || kind == BP_LAYER_GLOBAL_AVGPOOL))
        return bpx_fail(BP_ERR_UNSUPPORTED,
                        "layer %zu (kind %d) works on images but follows "
                        "flat rows (or a 1x1 input): no ONNX form is written for that",
                        index, kind);
    switch (kind) {
    case BP_LAYER_DENSE: {
        snprintf(base, sizeof base, "dense%zu", index);
        if (e->rank == 3) return export_step_dense(e, l, base);
        bpx_flatten(e, base);
        float *wt, *b;
        size_t nw, nb;
        BP_CHECK(layer_params(e, l, &wt, &nw, &b, &nb, base));
        const size_t in = nb > 0 ? nw / nb : 0;
        const int64_t wd[2] = {(int64_t)nb, (int64_t)in}, bd[1] = {(int64_t)nb};
        snprintf(name, sizeof name, "%s.weight", base);
        x[0] = e->cur;
        x[1] = bpx_init_floats(e, name, 2, wd, wt, nw);
        snprintf(name, sizeof name, "%s.bias", base);
        x[2] = bpx_init_floats(e, name, 1, bd, b, nb);
        if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        bpx_attr_int(e, bpx_node(e, "Gemm", base, 3, x), "transB", 1);
        return activation(e, l, bp_layer_activation(l), base);
    }
    case BP_LAYER_CONV2D: {
        snprintf(base, sizeof base, "conv%zu", index);
        size_t kh, kw, st, pad;
        if (bp_layer_kernel_shape(l, &kh, &kw, &st, &pad) != BP_OK)
            return bpx_fail_core(BP_ERR_STATE, base);
        float *wt, *b;
        size_t nw, nb;
        BP_CHECK(layer_params(e, l, &wt, &nw, &b, &nb, base));
        const size_t cin = nw / (nb * kh * kw);
        const int64_t wd[4] = {(int64_t)nb, (int64_t)cin, (int64_t)kh, (int64_t)kw};
        const int64_t bd[1] = {(int64_t)nb};
        snprintf(name, sizeof name, "%s.weight", base);
        x[1] = bpx_init_floats(e, name, 4, wd, wt, nw);
        snprintf(name, sizeof name, "%s.bias", base);
        x[2] = bpx_init_floats(e, name, 1, bd, b, nb);
        if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        Onnx__NodeProto *n = bpx_node(e, "Conv", base, 3, x);
        const int64_t k2[2] = {(int64_t)kh, (int64_t)kw}, s2[2] = {(int64_t)st, (int64_t)st};
        const int64_t p4[4] = {(int64_t)pad, (int64_t)pad, (int64_t)pad, (int64_t)pad};
        bpx_attr_ints(e, n, "kernel_shape", 2, k2);
        bpx_attr_ints(e, n, "strides", 2, s2);
        bpx_attr_ints(e, n, "pads", 4, p4);
        return activation(e, l, bp_layer_activation(l), base);
    }
    case BP_LAYER_BATCHNORM: {
        snprintf(base, sizeof base, "bn%zu", index);
        if (e->rank == 3)
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "%s: batch normalisation of sequence rows has no ONNX form here "
                            "(BatchNormalization normalises axis 1, the steps)",
                            base);
        float *g, *b;
        size_t ng, nb, ns = 0;
        BP_CHECK(layer_params(e, l, &g, &ng, &b, &nb, base));
        const bp_status q = bp_layer_get_state(l, NULL, 0, &ns);
        if ((q != BP_OK && q != BP_ERR_BUFFER_TOO_SMALL) || ns != 2 * nb)
            return bpx_fail_core(BP_ERR_STATE, base);
        float *st = bpx_arena_calloc(&e->a, ns, sizeof(float));
        if (st == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        if (bp_layer_get_state(l, st, ns, NULL) != BP_OK) return bpx_fail_core(BP_ERR_STATE, base);
        const int64_t d[1] = {(int64_t)nb};
        static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
        const float *data[4] = {g, b, st, st + nb};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "%s.%s", base, parts[k]);
            x[k + 1] = bpx_init_floats(e, name, 1, d, data[k], nb);
        }
        if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        double eps = 1e-5, mom = 0.9;
        (void)bp_layer_get(l, BP_LAYER_BN_EPSILON, &eps);
        (void)bp_layer_get(l, BP_LAYER_BN_MOMENTUM, &mom);
        Onnx__NodeProto *n = bpx_node(e, "BatchNormalization", base, 5, x);
        bpx_attr_float(e, n, "epsilon", eps);
        bpx_attr_float(e, n, "momentum", mom);
        break;
    }
    case BP_LAYER_DROPOUT: return BP_OK; /* the identity at inference */
    case BP_LAYER_MAXPOOL2D:
    case BP_LAYER_AVGPOOL2D: {
        snprintf(base, sizeof base, "%s%zu", kind == BP_LAYER_MAXPOOL2D ? "maxpool" : "avgpool",
                 index);
        size_t kh, kw, st, pad;
        if (bp_layer_kernel_shape(l, &kh, &kw, &st, &pad) != BP_OK)
            return bpx_fail_core(BP_ERR_STATE, base);
        Onnx__NodeProto *n =
            bpx_node(e, kind == BP_LAYER_MAXPOOL2D ? "MaxPool" : "AveragePool", base, 1, x);
        const int64_t k2[2] = {(int64_t)kh, (int64_t)kw}, s2[2] = {(int64_t)st, (int64_t)st};
        bpx_attr_ints(e, n, "kernel_shape", 2, k2);
        bpx_attr_ints(e, n, "strides", 2, s2);
        break;
    }
    case BP_LAYER_GLOBAL_AVGPOOL:
        snprintf(base, sizeof base, "gap%zu", index);
        bpx_node(e, "GlobalAveragePool", base, 1, x);
        break;
    case BP_LAYER_FLATTEN:
        snprintf(base, sizeof base, "flatten%zu", index);
        bpx_flatten(e, base);
        break;
    case BP_LAYER_ACTIVATION:
        snprintf(base, sizeof base, "act%zu", index);
        return activation(e, l, bp_layer_activation(l), base);
    case BP_LAYER_RNN:
    case BP_LAYER_LSTM:
    case BP_LAYER_GRU: return export_recurrent(e, l, index, kind);
    case BP_LAYER_EMBEDDING: {
        /* Gather of the table by the graph input, int64 token ids [N x T] */
        snprintf(base, sizeof base, "embedding%zu", index);
        if (strcmp(e->cur, "input") != 0 || e->rank != 3)
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "%s: an embedding is exported as the first layer only", base);
        const size_t nw = bp_layer_param_count(l), dim = w;
        float *wt = bpx_arena_calloc(&e->a, nw, sizeof(float));
        if (wt == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        if (bp_layer_get_weights(l, wt, nw) != BP_OK) return bpx_fail_core(BP_ERR_STATE, base);
        const int64_t d[2] = {(int64_t)(nw / dim), (int64_t)dim};
        snprintf(name, sizeof name, "%s.weight", base);
        x[0] = bpx_init_floats(e, name, 2, d, wt, nw);
        x[1] = "input";
        if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        bpx_node(e, "Gather", base, 2, x);
        e->in_feat = dim;
        break;
    }
    default:
        return bpx_fail(BP_ERR_UNSUPPORTED, "layer %zu: kind %d has no ONNX form", index, kind);
    }
    return e->a.failed ? bpx_fail(BP_ERR_NOMEM, "out of memory") : BP_OK;
}
