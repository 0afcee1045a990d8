/*
 * onnx_export.c -- bp_net -> ONNX model (IR 8, opset BP_ONNX_EXPORT_OPSET): the arena, the
 * node, attribute and initializer builders, the model around the layers' nodes and the
 * public entry points. The layers themselves become nodes in onnx_export_layer.c.
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

#include "onnx_export.h"

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

void *bpx_arena_calloc(arena *a, size_t n, size_t size)
{
    return arena_keep(a, calloc(n > 0 ? n : 1, size));
}

char *bpx_arena_str(arena *a, const char *s)
{
    const size_t len = strlen(s) + 1;
    char *d = bpx_arena_calloc(a, len, 1);
    if (d != NULL) memcpy(d, s, len);
    return d;
}

static void arena_free(arena *a)
{
    for (size_t k = 0; k < a->n; k++)
        free(a->ptrs[k]);
    free(a->ptrs);
}

static void plist_push(arena *a, plist *l, void *p)
{
    if (p == NULL || a->failed) {
        a->failed = 1;
        return;
    }
    if (l->n == l->cap) {
        const size_t cap = l->cap ? 2 * l->cap : 16;
        void **v = bpx_arena_calloc(a, cap, sizeof *v);
        if (v == NULL) return;
        if (l->n > 0) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
}

char *bpx_fresh(exporter *e, const char *stem)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s_%zu", stem, e->counter++);
    return bpx_arena_str(&e->a, buf);
}

Onnx__NodeProto *bpx_node(exporter *e, const char *op, const char *name, size_t nin,
                          const char *const *in)
{
    Onnx__NodeProto *n = bpx_arena_calloc(&e->a, 1, sizeof *n);
    if (n == NULL) return NULL;
    onnx__node_proto__init(n);
    n->op_type = bpx_arena_str(&e->a, op);
    n->name = bpx_arena_str(&e->a, name);
    n->n_input = nin;
    n->input = bpx_arena_calloc(&e->a, nin, sizeof(char *));
    n->n_output = 1;
    n->output = bpx_arena_calloc(&e->a, 1, sizeof(char *));
    if (e->a.failed) return NULL;
    for (size_t k = 0; k < nin; k++)
        n->input[k] = bpx_arena_str(&e->a, in[k]);
    n->output[0] = bpx_fresh(e, name);
    plist_push(&e->a, &e->nodes, n);
    if (!e->a.failed) snprintf(e->cur, sizeof e->cur, "%s", n->output[0]);
    return e->a.failed ? NULL : n;
}

void bpx_attr_add(exporter *e, Onnx__NodeProto *n, Onnx__AttributeProto *at)
{
    if (n == NULL || at == NULL) {
        e->a.failed = 1;
        return;
    }
    Onnx__AttributeProto **v = bpx_arena_calloc(&e->a, n->n_attribute + 1, sizeof *v);
    if (v == NULL) return;
    if (n->n_attribute > 0) memcpy(v, n->attribute, n->n_attribute * sizeof *v);
    v[n->n_attribute++] = at;
    n->attribute = v;
}

Onnx__AttributeProto *bpx_attr_new(exporter *e, const char *name, int type)
{
    Onnx__AttributeProto *at = bpx_arena_calloc(&e->a, 1, sizeof *at);
    if (at == NULL) return NULL;
    onnx__attribute_proto__init(at);
    at->name = bpx_arena_str(&e->a, name);
    at->has_type = 1;
    at->type = type;
    return at;
}

void bpx_attr_int(exporter *e, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *at = bpx_attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (at != NULL) {
        at->has_i = 1;
        at->i = v;
    }
    bpx_attr_add(e, n, at);
}

void bpx_attr_float(exporter *e, Onnx__NodeProto *n, const char *name, double v)
{
    Onnx__AttributeProto *at = bpx_attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (at != NULL) {
        at->has_f = 1;
        at->f = (float)v;
    }
    bpx_attr_add(e, n, at);
}

void bpx_attr_ints(exporter *e, Onnx__NodeProto *n, const char *name, size_t count,
                   const int64_t *v)
{
    Onnx__AttributeProto *at = bpx_attr_new(e, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (at != NULL) {
        at->ints = bpx_arena_calloc(&e->a, count, sizeof(int64_t));
        if (at->ints != NULL) {
            memcpy(at->ints, v, count * sizeof(int64_t));
            at->n_ints = count;
        }
    }
    bpx_attr_add(e, n, at);
}

/* A float32 initializer (raw little-endian data); returns its name. */
const char *bpx_init_floats(exporter *e, const char *name, size_t rank, const int64_t *dims,
                            const float *data, size_t count)
{
    Onnx__TensorProto *t = bpx_arena_calloc(&e->a, 1, sizeof *t);
    if (t == NULL) return NULL;
    onnx__tensor_proto__init(t);
    t->name = bpx_arena_str(&e->a, name);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_dims = rank;
    t->dims = bpx_arena_calloc(&e->a, rank, sizeof(int64_t));
    uint8_t *raw = bpx_arena_calloc(&e->a, count, 4);
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
const char *bpx_init_ints(exporter *e, const char *stem, const int64_t *v, size_t count)
{
    char name[96];
    snprintf(name, sizeof name, "%s_%zu", stem, e->counter++);
    Onnx__TensorProto *t = bpx_arena_calloc(&e->a, 1, sizeof *t);
    if (t == NULL) return NULL;
    onnx__tensor_proto__init(t);
    t->name = bpx_arena_str(&e->a, name);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_dims = 1;
    t->dims = bpx_arena_calloc(&e->a, 1, sizeof(int64_t));
    uint8_t *raw = bpx_arena_calloc(&e->a, count, 8);
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

const char *bpx_scalar(exporter *e, const char *stem, float v)
{
    char name[96];
    snprintf(name, sizeof name, "%s_%zu", stem, e->counter++);
    return bpx_init_floats(e, name, 0, NULL, &v, 1);
}

/* Flatten image or sequence rows to [N x features] (Gemm and row-wise Softmax need it). */
void bpx_flatten(exporter *e, const char *name)
{
    if (e->rank == 2) return;
    const char *in[1] = {e->cur};
    bpx_attr_int(e, bpx_node(e, "Flatten", name, 1, in), "axis", 1);
    e->rank = 2;
}

static Onnx__ValueInfoProto *value_info(exporter *e, const char *name, size_t rank,
                                        const int64_t *dims, int dynamic, int elem_type)
{
    Onnx__ValueInfoProto *v = bpx_arena_calloc(&e->a, 1, sizeof *v);
    Onnx__TypeProto *t = bpx_arena_calloc(&e->a, 1, sizeof *t);
    Onnx__TypeProto__Tensor *tt = bpx_arena_calloc(&e->a, 1, sizeof *tt);
    Onnx__TensorShapeProto *sh = bpx_arena_calloc(&e->a, 1, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = bpx_arena_calloc(&e->a, rank, sizeof *dv);
    if (e->a.failed) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (size_t k = 0; k < rank; k++) {
        Onnx__TensorShapeProto__Dimension *d = bpx_arena_calloc(&e->a, 1, sizeof *d);
        if (d == NULL) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (k == 0 && dynamic) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = bpx_arena_str(&e->a, "N");
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
    v->name = bpx_arena_str(&e->a, name);
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
    float *offset = bpx_arena_calloc(&e->a, width, sizeof(float));
    float *scale = bpx_arena_calloc(&e->a, width, sizeof(float));
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s = bp_net_get_scaler(net, part, offset, scale, width, &width);
    if (s != BP_OK) return bpx_fail_core(s, "reading a scaler");
    const int in = part == BP_SCALE_INPUTS;
    const char *base = in ? "scaler.input" : "scaler.target";
    char name[96];
    snprintf(name, sizeof name, "%s.offset", base);
    const char *off = bpx_init_floats(e, name, rank, row_dims, offset, width);
    snprintf(name, sizeof name, "%s.scale", base);
    const char *sc = bpx_init_floats(e, name, rank, row_dims, scale, width);
    if (e->a.failed) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    char v[96];
    snprintf(v, sizeof v, "%s", e->cur);
    const char *x[2] = {v, in ? off : sc};
    bpx_node(e, in ? "Sub" : "Div", base, 2, x);
    snprintf(v, sizeof v, "%s", e->cur);
    x[1] = in ? sc : off;
    bpx_node(e, in ? "Mul" : "Add", base, 2, x);
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
        s = bpx_export_layer(&e, bp_net_layer(net, k), k);
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
        bpx_node(&e, "Identity", "output_identity", 1, x);
    }
    Onnx__NodeProto *last = e.nodes.n > 0 ? e.nodes.v[e.nodes.n - 1] : NULL;
    if (last != NULL) last->output[0] = bpx_arena_str(&e.a, "output");
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
    opset.domain = bpx_arena_str(&e.a, "");
    opset.has_version = 1;
    opset.version = BP_ONNX_EXPORT_OPSET;
    m.has_ir_version = 1;
    m.ir_version = 8;
    m.producer_name = bpx_arena_str(&e.a, "backprop");
    m.producer_version = bpx_arena_str(&e.a, bp_version_string());
    m.n_opset_import = 1;
    m.opset_import = opsets;
    m.graph = &g;
    g.name = bpx_arena_str(&e.a, "backprop");
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
