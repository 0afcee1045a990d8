/*
 * onnx_export.c -- bp_net -> ONNX model (IR 8, opset BP_ONNX_EXPORT_OPSET).
 *
 * The model is built as protobuf-c structs whose memory is owned by a small arena (every
 * allocation is recorded and freed together), then packed. Each layer becomes one node (or
 * a few: an activation after a Gemm or Conv, a Flatten before a Gemm on image rows, the
 * decomposition of GELU and SiLU, which opset 13 has no operator for).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

typedef struct arena {
    void **ptrs;
    size_t n, cap;
    int failed;
} arena;

static void *arena_keep(arena *a, void *p)
{
    if (p == NULL) {
        a->failed = 1;
        return NULL;
    }
    if (a->n == a->cap) {
        const size_t cap = a->cap ? 2 * a->cap : 256;
        void **v = realloc(a->ptrs, cap * sizeof *v);
        if (v == NULL) {
            free(p);
            a->failed = 1;
            return NULL;
        }
        a->ptrs = v;
        a->cap = cap;
    }
    a->ptrs[a->n++] = p;
    return p;
}

static void *arena_calloc(arena *a, size_t n, size_t size)
{
    return arena_keep(a, calloc(n > 0 ? n : 1, size));
}

static char *arena_str(arena *a, const char *s)
{
    const size_t len = strlen(s) + 1;
    char *d = arena_calloc(a, len, 1);
    if (d != NULL) memcpy(d, s, len);
    return d;
}

static void arena_free(arena *a)
{
    for (size_t k = 0; k < a->n; k++)
        free(a->ptrs[k]);
    free(a->ptrs);
}

/* Growable pointer arrays for the graph's repeated fields. */
typedef struct plist {
    void **v;
    size_t n, cap;
} plist;

static void plist_push(arena *a, plist *l, void *p)
{
    if (p == NULL || a->failed) {
        a->failed = 1;
        return;
    }
    if (l->n == l->cap) {
        const size_t cap = l->cap ? 2 * l->cap : 16;
        void **v = arena_calloc(a, cap, sizeof *v);
        if (v == NULL) return;
        if (l->n > 0) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
}

typedef struct exporter {
    arena a;
    plist nodes, inits;
    size_t counter; /* for unique value names */
    char cur[96];   /* the current data value */
    size_t rank;    /* of the current value: 2 (flat), 3 (sequence [N x T x F]) or 4 */
    size_t in_feat; /* features per step of the current value (sequences) */
} exporter;

static char *fresh(exporter *e, const char *stem)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s_%zu", stem, e->counter++);
    return arena_str(&e->a, buf);
}

static Onnx__NodeProto *node(exporter *e, const char *op, const char *name, size_t nin,
                             const char *const *in)
{
    Onnx__NodeProto *n = arena_calloc(&e->a, 1, sizeof *n);
    if (n == NULL) return NULL;
    onnx__node_proto__init(n);
    n->op_type = arena_str(&e->a, op);
    n->name = arena_str(&e->a, name);
    n->n_input = nin;
    n->input = arena_calloc(&e->a, nin, sizeof(char *));
    n->n_output = 1;
    n->output = arena_calloc(&e->a, 1, sizeof(char *));
    if (e->a.failed) return NULL;
    for (size_t k = 0; k < nin; k++)
        n->input[k] = arena_str(&e->a, in[k]);
    n->output[0] = fresh(e, name);
    plist_push(&e->a, &e->nodes, n);
    if (!e->a.failed) snprintf(e->cur, sizeof e->cur, "%s", n->output[0]);
    return e->a.failed ? NULL : n;
}

static void attr_add(exporter *e, Onnx__NodeProto *n, Onnx__AttributeProto *at)
{
    if (n == NULL || at == NULL) {
        e->a.failed = 1;
        return;
    }
    Onnx__AttributeProto **v = arena_calloc(&e->a, n->n_attribute + 1, sizeof *v);
    if (v == NULL) return;
    if (n->n_attribute > 0) memcpy(v, n->attribute, n->n_attribute * sizeof *v);
    v[n->n_attribute++] = at;
    n->attribute = v;
}

static Onnx__AttributeProto *attr_new(exporter *e, const char *name, int type)
{
    Onnx__AttributeProto *at = arena_calloc(&e->a, 1, sizeof *at);
    if (at == NULL) return NULL;
    onnx__attribute_proto__init(at);
    at->name = arena_str(&e->a, name);
    at->has_type = 1;
    at->type = type;
    return at;
}

static void attr_int(exporter *e, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *at = attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (at != NULL) {
        at->has_i = 1;
        at->i = v;
    }
    attr_add(e, n, at);
}

static void attr_float(exporter *e, Onnx__NodeProto *n, const char *name, double v)
{
    Onnx__AttributeProto *at = attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (at != NULL) {
        at->has_f = 1;
        at->f = (float)v;
    }
    attr_add(e, n, at);
}

static void attr_ints(exporter *e, Onnx__NodeProto *n, const char *name, size_t count,
                      const int64_t *v)
{
    Onnx__AttributeProto *at = attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (at != NULL) {
        at->ints = arena_calloc(&e->a, count, sizeof(int64_t));
        if (at->ints != NULL) {
            memcpy(at->ints, v, count * sizeof(int64_t));
            at->n_ints = count;
        }
    }
    attr_add(e, n, at);
}

/* A float32 initializer (raw little-endian data); returns its name. */
static const char *init_floats(exporter *e, const char *name, size_t rank, const int64_t *dims,
                               const float *data, size_t count)
{
    Onnx__TensorProto *t = arena_calloc(&e->a, 1, sizeof *t);
    if (t == NULL) return NULL;
    onnx__tensor_proto__init(t);
    t->name = arena_str(&e->a, name);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_dims = rank;
    t->dims = arena_calloc(&e->a, rank, sizeof(int64_t));
    uint8_t *raw = arena_calloc(&e->a, count, 4);
    if (e->a.failed) return NULL;
    if (rank > 0) memcpy(t->dims, dims, rank * sizeof(int64_t));
    for (size_t k = 0; k < count; k++) {
        uint32_t u;
        memcpy(&u, &data[k], 4);
        for (int b = 0; b < 4; b++)
            raw[4 * k + (size_t)b] = (uint8_t)(u >> (8 * b));
    }
    t->has_raw_data = 1;
    t->raw_data.len = 4 * count;
    t->raw_data.data = raw;
    plist_push(&e->a, &e->inits, t);
    return t->name;
}

/* An int64 initializer [count] (shapes for Reshape); returns its name. */
static const char *init_ints(exporter *e, const char *stem, const int64_t *v, size_t count)
{
    char name[96];
    snprintf(name, sizeof name, "%s_%zu", stem, e->counter++);
    Onnx__TensorProto *t = arena_calloc(&e->a, 1, sizeof *t);
    if (t == NULL) return NULL;
    onnx__tensor_proto__init(t);
    t->name = arena_str(&e->a, name);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_dims = 1;
    t->dims = arena_calloc(&e->a, 1, sizeof(int64_t));
    uint8_t *raw = arena_calloc(&e->a, count, 8);
    if (e->a.failed) return NULL;
    t->dims[0] = (int64_t)count;
    for (size_t k = 0; k < count; k++)
        for (int b = 0; b < 8; b++)
            raw[8 * k + (size_t)b] = (uint8_t)((uint64_t)v[k] >> (8 * b));
    t->has_raw_data = 1;
    t->raw_data.len = 8 * count;
    t->raw_data.data = raw;
    plist_push(&e->a, &e->inits, t);
    return t->name;
}

static const char *scalar(exporter *e, const char *stem, float v)
{
    char name[96];
    snprintf(name, sizeof name, "%s_%zu", stem, e->counter++);
    return init_floats(e, name, 0, NULL, &v, 1);
}

/* Flatten image or sequence rows to [N x features] (Gemm and row-wise Softmax need it). */
static void flatten(exporter *e, const char *name)
{
    if (e->rank == 2) return;
    const char *in[1] = {e->cur};
    attr_int(e, node(e, "Flatten", name, 1, in), "axis", 1);
    e->rank = 2;
}

static bp_status activation(exporter *e, const bp_layer *l, int act, const char *base)
{
    char name[96];
    snprintf(name, sizeof name, "%s.act", base);
    const char *x[1] = {e->cur};
    double p = 0.0;
    switch (act) {
    case BP_ACT_IDENTITY: return BP_OK;
    case BP_ACT_SIGMOID: node(e, "Sigmoid", name, 1, x); break;
    case BP_ACT_TANH: node(e, "Tanh", name, 1, x); break;
    case BP_ACT_RELU: node(e, "Relu", name, 1, x); break;
    case BP_ACT_SOFTPLUS: node(e, "Softplus", name, 1, x); break;
    case BP_ACT_LEAKY_RELU:
        if (bp_layer_get(l, BP_LAYER_LEAKY_SLOPE, &p) != BP_OK)
            return bpx_fail_core(BP_ERR_STATE, base);
        attr_float(e, node(e, "LeakyRelu", name, 1, x), "alpha", p);
        break;
    case BP_ACT_ELU:
        if (bp_layer_get(l, BP_LAYER_ELU_ALPHA, &p) != BP_OK)
            return bpx_fail_core(BP_ERR_STATE, base);
        attr_float(e, node(e, "Elu", name, 1, x), "alpha", p);
        break;
    case BP_ACT_SOFTMAX:
        if (e->rank == 4) flatten(e, name); /* over each image row; per step on sequences */
        x[0] = e->cur;
        attr_int(e, node(e, "Softmax", name, 1, x), "axis", -1);
        break;
    case BP_ACT_SILU: {
        char v[96];
        snprintf(v, sizeof v, "%s", e->cur);
        node(e, "Sigmoid", name, 1, x);
        const char *in[2] = {v, e->cur};
        node(e, "Mul", name, 2, in);
        break;
    }
    case BP_ACT_GELU: {
        /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as torch writes its tanh form. */
        char v[96], t[96];
        snprintf(v, sizeof v, "%s", e->cur);
        const char *in[2] = {v, v};
        node(e, "Mul", name, 2, in); /* x^2 */
        snprintf(t, sizeof t, "%s", e->cur);
        in[1] = t;
        node(e, "Mul", name, 2, in); /* x^3 */
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = scalar(e, "gelu_kappa", 0.044715f);
        in[1] = t;
        node(e, "Mul", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = v;
        in[1] = t;
        node(e, "Add", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = scalar(e, "gelu_beta", 0.7978845608028654f);
        in[1] = t;
        node(e, "Mul", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = t;
        node(e, "Tanh", name, 1, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = scalar(e, "gelu_one", 1.0f);
        in[1] = t;
        node(e, "Add", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = v;
        in[1] = t;
        node(e, "Mul", name, 2, in);
        snprintf(t, sizeof t, "%s", e->cur);
        in[0] = scalar(e, "gelu_half", 0.5f);
        in[1] = t;
        node(e, "Mul", name, 2, in);
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
    *w = arena_calloc(&e->a, *nw, sizeof(float));
    *b = arena_calloc(&e->a, *nb, sizeof(float));
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
    float *tr = arena_calloc(&e->a, nw, sizeof(float));
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
    x[1] = init_floats(e, name, 2, wd, tr, nw);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    node(e, "MatMul", base, 2, x);
    snprintf(v, sizeof v, "%s", e->cur);
    snprintf(name, sizeof name, "%s.bias", base);
    x[1] = init_floats(e, name, 1, bd, b, nb);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    node(e, "Add", base, 2, x);
    e->in_feat = nb;
    return activation(e, l, bp_layer_activation(l), base);
}

static void attr_string(exporter *e, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *at = attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (at != NULL) {
        at->has_s = 1;
        at->s.len = strlen(v);
        at->s.data = (uint8_t *)arena_str(&e->a, v);
    }
    attr_add(e, n, at);
}

static void attr_strings(exporter *e, Onnx__NodeProto *n, const char *name, size_t count,
                         const char *v)
{
    Onnx__AttributeProto *at = attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    if (at != NULL) {
        at->strings = arena_calloc(&e->a, count, sizeof(ProtobufCBinaryData));
        if (at->strings != NULL) {
            at->n_strings = count;
            for (size_t k = 0; k < count; k++) {
                at->strings[k].len = strlen(v);
                at->strings[k].data = (uint8_t *)arena_str(&e->a, v);
            }
        }
    }
    attr_add(e, n, at);
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
    float *wt = arena_calloc(&e->a, nw, sizeof(float)),
          *bs = arena_calloc(&e->a, nb, sizeof(float));
    float *ow = arena_calloc(&e->a, nd * gh * f, sizeof(float));
    float *orr = arena_calloc(&e->a, nd * gh * hid, sizeof(float));
    float *ob = arena_calloc(&e->a, nb, sizeof(float));
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
    attr_ints(e, node(e, "Transpose", base, 1, x), "perm", 3, tperm);
    snprintf(v, sizeof v, "%s", e->cur);
    snprintf(name, sizeof name, "%s.W", base);
    x[1] = init_floats(e, name, 3, wdim, ow, nd * gh * f);
    snprintf(name, sizeof name, "%s.R", base);
    x[2] = init_floats(e, name, 3, rdim, orr, nd * gh * hid);
    snprintf(name, sizeof name, "%s.B", base);
    x[3] = init_floats(e, name, 2, bdim, ob, nb);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    Onnx__NodeProto *n = node(e, lstm ? "LSTM" : gru ? "GRU" : "RNN", base, 4, x);
    if (n == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    attr_int(e, n, "hidden_size", (int64_t)hid);
    if (nd == 2) attr_string(e, n, "direction", "bidirectional");
    if (gru) attr_int(e, n, "linear_before_reset", 1);
    if (kind == BP_LAYER_RNN && bp_layer_activation(l) == BP_ACT_RELU)
        attr_strings(e, n, "activations", nd, "Relu");
    if (last) {
        /* only Y_h: outputs ("", Y_h) */
        char **outs = arena_calloc(&e->a, 2, sizeof(char *));
        if (outs == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        outs[0] = arena_str(&e->a, "");
        outs[1] = n->output[0];
        n->n_output = 2;
        n->output = outs;
    }
    snprintf(v, sizeof v, "%s", e->cur);
    x[0] = v;
    const int64_t yperm[4] = {2, 0, 1, 3}, hperm[3] = {1, 0, 2};
    attr_ints(e, node(e, "Transpose", base, 1, x), "perm", last ? 3 : 4, last ? hperm : yperm);
    snprintf(v, sizeof v, "%s", e->cur);
    const int64_t keep[3] = {0, 0, -1};
    x[1] = init_ints(e, "shape", last ? keep + 1 : keep, last ? 2 : 3);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    node(e, "Reshape", base, 2, x);
    e->rank = last ? 2 : 3;
    e->in_feat = width;
    return e->a.failed ? bpx_fail(BP_ERR_NOMEM, "out of memory") : BP_OK;
}

static bp_status export_layer(exporter *e, bp_layer *l, size_t index)
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
        flatten(e, base);
        float *wt, *b;
        size_t nw, nb;
        BP_CHECK(layer_params(e, l, &wt, &nw, &b, &nb, base));
        const size_t in = nb > 0 ? nw / nb : 0;
        const int64_t wd[2] = {(int64_t)nb, (int64_t)in}, bd[1] = {(int64_t)nb};
        snprintf(name, sizeof name, "%s.weight", base);
        x[0] = e->cur;
        x[1] = init_floats(e, name, 2, wd, wt, nw);
        snprintf(name, sizeof name, "%s.bias", base);
        x[2] = init_floats(e, name, 1, bd, b, nb);
        if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        attr_int(e, node(e, "Gemm", base, 3, x), "transB", 1);
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
        x[1] = init_floats(e, name, 4, wd, wt, nw);
        snprintf(name, sizeof name, "%s.bias", base);
        x[2] = init_floats(e, name, 1, bd, b, nb);
        if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        Onnx__NodeProto *n = node(e, "Conv", base, 3, x);
        const int64_t k2[2] = {(int64_t)kh, (int64_t)kw}, s2[2] = {(int64_t)st, (int64_t)st};
        const int64_t p4[4] = {(int64_t)pad, (int64_t)pad, (int64_t)pad, (int64_t)pad};
        attr_ints(e, n, "kernel_shape", 2, k2);
        attr_ints(e, n, "strides", 2, s2);
        attr_ints(e, n, "pads", 4, p4);
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
        float *st = arena_calloc(&e->a, ns, sizeof(float));
        if (st == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        if (bp_layer_get_state(l, st, ns, NULL) != BP_OK) return bpx_fail_core(BP_ERR_STATE, base);
        const int64_t d[1] = {(int64_t)nb};
        static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
        const float *data[4] = {g, b, st, st + nb};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "%s.%s", base, parts[k]);
            x[k + 1] = init_floats(e, name, 1, d, data[k], nb);
        }
        if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        double eps = 1e-5, mom = 0.9;
        (void)bp_layer_get(l, BP_LAYER_BN_EPSILON, &eps);
        (void)bp_layer_get(l, BP_LAYER_BN_MOMENTUM, &mom);
        Onnx__NodeProto *n = node(e, "BatchNormalization", base, 5, x);
        attr_float(e, n, "epsilon", eps);
        attr_float(e, n, "momentum", mom);
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
            node(e, kind == BP_LAYER_MAXPOOL2D ? "MaxPool" : "AveragePool", base, 1, x);
        const int64_t k2[2] = {(int64_t)kh, (int64_t)kw}, s2[2] = {(int64_t)st, (int64_t)st};
        attr_ints(e, n, "kernel_shape", 2, k2);
        attr_ints(e, n, "strides", 2, s2);
        break;
    }
    case BP_LAYER_GLOBAL_AVGPOOL:
        snprintf(base, sizeof base, "gap%zu", index);
        node(e, "GlobalAveragePool", base, 1, x);
        break;
    case BP_LAYER_FLATTEN:
        snprintf(base, sizeof base, "flatten%zu", index);
        flatten(e, base);
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
        float *wt = arena_calloc(&e->a, nw, sizeof(float));
        if (wt == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        if (bp_layer_get_weights(l, wt, nw) != BP_OK) return bpx_fail_core(BP_ERR_STATE, base);
        const int64_t d[2] = {(int64_t)(nw / dim), (int64_t)dim};
        snprintf(name, sizeof name, "%s.weight", base);
        x[0] = init_floats(e, name, 2, d, wt, nw);
        x[1] = "input";
        if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        node(e, "Gather", base, 2, x);
        e->in_feat = dim;
        break;
    }
    default:
        return bpx_fail(BP_ERR_UNSUPPORTED, "layer %zu: kind %d has no ONNX form", index, kind);
    }
    return e->a.failed ? bpx_fail(BP_ERR_NOMEM, "out of memory") : BP_OK;
}

static Onnx__ValueInfoProto *value_info(exporter *e, const char *name, size_t rank,
                                        const int64_t *dims, int dynamic, int elem_type)
{
    Onnx__ValueInfoProto *v = arena_calloc(&e->a, 1, sizeof *v);
    Onnx__TypeProto *t = arena_calloc(&e->a, 1, sizeof *t);
    Onnx__TypeProto__Tensor *tt = arena_calloc(&e->a, 1, sizeof *tt);
    Onnx__TensorShapeProto *sh = arena_calloc(&e->a, 1, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = arena_calloc(&e->a, rank, sizeof *dv);
    if (e->a.failed) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (size_t k = 0; k < rank; k++) {
        Onnx__TensorShapeProto__Dimension *d = arena_calloc(&e->a, 1, sizeof *d);
        if (d == NULL) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (k == 0 && dynamic) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = arena_str(&e->a, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = k == 0 ? 1 : dims[k];
        }
        dv[k] = d;
    }
    sh->n_dim = rank;
    sh->dim = dv;
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    tt->shape = sh;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->name = arena_str(&e->a, name);
    v->type = t;
    return e->a.failed ? NULL : v;
}

/* The scaler @p part kept with @p net as two elementwise nodes on the current value:
 * inputs (v - offset) * scale, targets v / scale + offset (bp_scaler_apply() and
 * bp_scaler_invert() computed the same way in float). The constants have the row's shape
 * ([W], or [C x H x W] for image rows) and broadcast over the batch. Nothing when unset. */
static bp_status scaler_nodes(exporter *e, const bp_net *net, int part, size_t rank,
                              const int64_t *row_dims)
{
    size_t width = 0;
    bp_status s = bp_net_get_scaler(net, part, NULL, NULL, 0, &width);
    if (s != BP_OK && s != BP_ERR_BUFFER_TOO_SMALL) return bpx_fail_core(s, "reading a scaler");
    if (width == 0) return BP_OK;
    float *offset = arena_calloc(&e->a, width, sizeof(float));
    float *scale = arena_calloc(&e->a, width, sizeof(float));
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s = bp_net_get_scaler(net, part, offset, scale, width, &width);
    if (s != BP_OK) return bpx_fail_core(s, "reading a scaler");
    const int in = part == BP_SCALE_INPUTS;
    const char *base = in ? "scaler.input" : "scaler.target";
    char name[96];
    snprintf(name, sizeof name, "%s.offset", base);
    const char *off = init_floats(e, name, rank, row_dims, offset, width);
    snprintf(name, sizeof name, "%s.scale", base);
    const char *sc = init_floats(e, name, rank, row_dims, scale, width);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    char v[96];
    snprintf(v, sizeof v, "%s", e->cur);
    const char *x[2] = {v, in ? off : sc};
    node(e, in ? "Sub" : "Div", base, 2, x);
    snprintf(v, sizeof v, "%s", e->cur);
    x[1] = in ? sc : off;
    node(e, in ? "Mul" : "Add", base, 2, x);
    return e->a.failed ? bpx_fail(BP_ERR_NOMEM, "out of memory") : BP_OK;
}

/* Build the model and pack it into a malloc'd buffer. */
static bp_status export_model(bp_net *net, int flags, uint8_t **out, size_t *out_size)
{
    exporter e;
    memset(&e, 0, sizeof e);
    bp_status s = BP_OK;
    const size_t nl = bp_net_layer_count(net);
    size_t c, h, w;
    if (bp_net_input_shape(net, &c, &h, &w) != BP_OK)
        return bpx_fail_core(BP_ERR_INVALID_ARG, "bp_onnx_export");
    if (nl == 0) return bpx_fail(BP_ERR_STATE, "bp_onnx_export: the net has no layers");
    const int dyn = (flags & BP_ONNX_DYNAMIC_BATCH) != 0;
    size_t in_steps = 0;
    (void)bp_net_input_steps(net, &in_steps);
    /* sequences [N x T x F] (token ids [N x T] before an embedding), images, flat rows */
    const int seq = in_steps > 0, image = !seq && h * w > 1;
    const int tokens = seq && bp_layer_kind(bp_net_layer(net, 0)) == BP_LAYER_EMBEDDING;
    int64_t in_dims[4] = {1, (int64_t)c, (int64_t)h, (int64_t)w};
    e.rank = seq ? 3 : image ? 4 : 2;
    e.in_feat = w;
    snprintf(e.cur, sizeof e.cur, "input");
    const int scalers = (flags & BP_ONNX_SCALERS) != 0;
    size_t in_scaler = 0;
    (void)bp_net_get_scaler(net, BP_SCALE_INPUTS, NULL, NULL, 0, &in_scaler);
    if (scalers && tokens && in_scaler > 0)
        s = bpx_fail(BP_ERR_UNSUPPORTED, "bp_onnx_export: an input scaler on token ids (the net "
                                         "starts with an embedding) has no ONNX form");
    else if (scalers)
        s = scaler_nodes(&e, net, BP_SCALE_INPUTS,
                         seq     ? 2
                         : image ? 3
                                 : 1,
                         in_dims + (seq ? 2 : 1));
    for (size_t k = 0; k < nl && s == BP_OK; k++) {
        s = export_layer(&e, bp_net_layer(net, k), k);
    }
    if (s == BP_OK && scalers) {
        size_t oc = 0, oh = 0, ow = 0;
        (void)bp_layer_output_shape(bp_net_layer(net, nl - 1), &oc, &oh, &ow);
        const int64_t row[3] = {(int64_t)oc, (int64_t)oh, (int64_t)ow};
        const int64_t flat[1] = {(int64_t)(oc * oh * ow)};
        s = scaler_nodes(&e, net, BP_SCALE_TARGETS,
                         e.rank == 4   ? 3
                         : e.rank == 3 ? 2
                                       : 1,
                         e.rank == 4   ? row
                         : e.rank == 3 ? row + 1
                                       : flat);
    }
    if (s != BP_OK) {
        arena_free(&e.a);
        return s;
    }
    /* The last value is called "output". */
    if (e.nodes.n == 0 || strcmp(e.cur, "input") == 0) {
        const char *x[1] = {e.cur};
        node(&e, "Identity", "output_identity", 1, x);
    }
    Onnx__NodeProto *last = e.nodes.n > 0 ? e.nodes.v[e.nodes.n - 1] : NULL;
    if (last != NULL) last->output[0] = arena_str(&e.a, "output");
    bp_layer *ll = bp_net_layer(net, nl - 1);
    size_t oc, oh, ow;
    (void)bp_layer_output_shape(ll, &oc, &oh, &ow);
    const int64_t out_dims[4] = {1, (int64_t)oc, (int64_t)oh, (int64_t)ow};
    const int64_t flat_out[2] = {1, (int64_t)(oc * oh * ow)};

    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    onnx__model_proto__init(&m);
    onnx__graph_proto__init(&g);
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = arena_str(&e.a, "");
    opset.has_version = 1;
    opset.version = BP_ONNX_EXPORT_OPSET;
    m.has_ir_version = 1;
    m.ir_version = 8;
    m.producer_name = arena_str(&e.a, "backprop");
    m.producer_version = arena_str(&e.a, bp_version_string());
    m.n_opset_import = 1;
    m.opset_import = opsets;
    m.graph = &g;
    g.name = arena_str(&e.a, "backprop");
    const int64_t seq_in[3] = {1, (int64_t)h, (int64_t)w},
                  seq_out[3] = {1, (int64_t)oh, (int64_t)ow};
    Onnx__ValueInfoProto *vin =
        tokens  ? value_info(&e, "input", 2, seq_in, dyn, ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        : seq   ? value_info(&e, "input", 3, seq_in, dyn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        : image ? value_info(&e, "input", 4, in_dims, dyn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
                : value_info(&e, "input", 2, (const int64_t[]){1, (int64_t)c}, dyn,
                             ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    Onnx__ValueInfoProto *vout = value_info(&e, "output", e.rank,
                                            e.rank == 4   ? out_dims
                                            : e.rank == 3 ? seq_out
                                                          : flat_out,
                                            dyn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    Onnx__ValueInfoProto *ins[1] = {vin}, *outs[1] = {vout};
    g.n_input = 1;
    g.input = ins;
    g.n_output = 1;
    g.output = outs;
    g.n_node = e.nodes.n;
    g.node = (Onnx__NodeProto **)e.nodes.v;
    g.n_initializer = e.inits.n;
    g.initializer = (Onnx__TensorProto **)e.inits.v;
    if (e.a.failed) {
        arena_free(&e.a);
        return bpx_fail(BP_ERR_NOMEM, "bp_onnx_export: out of memory");
    }
    const size_t size = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(size > 0 ? size : 1);
    if (buf == NULL) {
        arena_free(&e.a);
        return bpx_fail(BP_ERR_NOMEM, "bp_onnx_export: out of memory (%zu bytes)", size);
    }
    onnx__model_proto__pack(&m, buf);
    arena_free(&e.a);
    *out = buf;
    *out_size = size;
    return BP_OK;
}

static bp_status check_args(bp_net *net, int flags, const char *fn)
{
    if (net == NULL || bp_net_layer_count(net) == 0) {
        size_t c, h, w;
        if (net == NULL || bp_net_input_shape(net, &c, &h, &w) != BP_OK)
            return bpx_fail(BP_ERR_INVALID_ARG, "%s: invalid net handle", fn);
        return bpx_fail(BP_ERR_STATE, "%s: the net has no layers", fn);
    }
    if ((flags & ~(BP_ONNX_DYNAMIC_BATCH | BP_ONNX_SCALERS)) != 0)
        return bpx_fail(BP_ERR_INVALID_ARG, "%s: unknown flags 0x%x", fn, (unsigned)flags);
    return BP_OK;
}

bp_status bp_onnx_export_buffer(bp_net *net, void *buf, size_t capacity, size_t *size, int flags)
{
    bpx_clear_error();
    BP_CHECK(check_args(net, flags, "bp_onnx_export_buffer"));
    if (size == NULL || (buf == NULL && capacity > 0))
        return bpx_fail(BP_ERR_INVALID_ARG, "bp_onnx_export_buffer: NULL argument");
    uint8_t *img;
    size_t n;
    BP_CHECK(export_model(net, flags, &img, &n));
    *size = n;
    bp_status s = BP_OK;
    if (n > capacity)
        s = bpx_fail(BP_ERR_BUFFER_TOO_SMALL,
                     "bp_onnx_export_buffer: the model needs %zu bytes, "
                     "capacity %zu",
                     n, capacity);
    else
        memcpy(buf, img, n);
    free(img);
    return s;
}

bp_status bp_onnx_export(bp_net *net, const char *path, int flags)
{
    bpx_clear_error();
    BP_CHECK(check_args(net, flags, "bp_onnx_export"));
    if (path == NULL) return bpx_fail(BP_ERR_INVALID_ARG, "bp_onnx_export: NULL path");
    uint8_t *img;
    size_t n;
    BP_CHECK(export_model(net, flags, &img, &n));
    /* Write beside the target, then rename over it. */
    const size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (tmp == NULL) {
        free(img);
        return bpx_fail(BP_ERR_NOMEM, "bp_onnx_export: out of memory");
    }
    snprintf(tmp, len + 16, "%s.tmp-onnx", path);
    bp_status s = BP_OK;
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        s = bpx_fail(BP_ERR_IO, "%s: %s", tmp, strerror(errno));
    } else {
        const size_t wrote = fwrite(img, 1, n, f);
        const int bad = wrote != n || fflush(f) != 0;
        if (fclose(f) != 0 || bad) {
            s = bpx_fail(BP_ERR_IO, "%s: write failed", tmp);
        } else if (rename(tmp, path) != 0) {
            s = bpx_fail(BP_ERR_IO, "%s: %s", path, strerror(errno));
        }
        if (s != BP_OK) remove(tmp);
    }
    free(tmp);
    free(img);
    return s;
}
