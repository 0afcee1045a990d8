/*
 * onnx_import.c -- ONNX model -> bp_net: the helpers the importer's files share, fusing and
 * building, reading the graph and the public entry points.
 *
 * 1. Parse the ModelProto with a bounded allocator; check the IR and operator-set versions.
 * 2. One pass over the nodes in order: fold constant and shape-only nodes (onnx_fold.c);
 *    every other node must read the dynamic data, and its output shape is inferred
 *    (onnx_import_shape.c) so that later Shape nodes fold.
 * 3. Walk the dynamic nodes as a chain from the graph input to the graph output, segment by
 *    segment (onnx_import_walk.c): a segment is one node, or a subgraph with one entry and
 *    one exit whose nodes are elementwise (a decomposed activation such as GELU's tanh form,
 *    recognised by evaluating it). Each segment becomes a planned step (dense, conv2d,
 *    batchnorm, activation, pooling, flatten: onnx_import_map.c; recurrent, embedding:
 *    onnx_import_seq.c) or nothing (Dropout, Identity).
 * 4. Fuse activations into the preceding dense or conv2d step, then build the net through the
 *    public API and copy the weights, biases and running statistics in.
 *
 * Adding an operator = a case in bpx_infer_shape() and one in bpx_map_node() (as RNN, LSTM,
 * GRU and Gather-as-embedding have, in onnx_import_seq.c).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx_import.h"

/* Most nodes, initializers and graph inputs a model may have (chains are short; bounding
 * them keeps the name lookups cheap on hostile input). */
#define MAX_NODES 4096

/* ---- small helpers ---- */

const Onnx__AttributeProto *bpx_attr_of(const Onnx__NodeProto *n, const char *name)
{
    return bpx_attr(n, name);
}

int64_t bpx_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = bpx_attr_of(n, name);
    return a != NULL && a->has_i ? a->i : def;
}

double bpx_attr_f(const Onnx__NodeProto *n, const char *name, double def)
{
    const Onnx__AttributeProto *a = bpx_attr_of(n, name);
    return a != NULL && a->has_f ? (double)a->f : def;
}

bp_status bpx_node_fail(bp_status st, const Onnx__NodeProto *n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bpx_fail(st, "node '%s' (%s): %s", bpx_node_name(n), n->op_type, msg);
}

/* Allow only the listed attributes: any other is reported by name. */
bp_status bpx_check_attrs(const Onnx__NodeProto *n, const char *const *known)
{
    for (size_t k = 0; k < n->n_attribute; k++) {
        const char *name = n->attribute[k]->name != NULL ? n->attribute[k]->name : "";
        int ok = 0;
        for (const char *const *p = known; *p != NULL; p++)
            if (strcmp(*p, name) == 0) ok = 1;
        if (!ok) return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute '%s' is not supported", name);
    }
    return BP_OK;
}

bpx_value *bpx_in_value(importer *im, const Onnx__NodeProto *n, size_t k)
{
    if (k >= n->n_input || n->input[k] == NULL || n->input[k][0] == '\0') return NULL;
    return bpx_find(&im->gr, n->input[k]);
}

const bpx_tensor *bpx_in_const(importer *im, const Onnx__NodeProto *n, size_t k)
{
    const bpx_value *v = bpx_in_value(im, n, k);
    return v != NULL && v->is_const ? &v->t : NULL;
}

size_t bpx_row_size(size_t rank, const int64_t *dims)
{
    size_t s = 1;
    for (size_t k = 1; k < rank; k++)
        s *= (size_t)dims[k];
    return s;
}

/* Floats per row of value @p v: the product of its dimensions but the batch's. */
size_t bpx_value_row(const bpx_value *v)
{
    size_t s = 1;
    for (size_t k = 0; k < v->rank; k++)
        if (v->dims[k] != BPX_BATCH) s *= (size_t)v->dims[k];
    return s;
}

int bpx_is_recurrent(const char *op)
{
    return strcmp(op, "RNN") == 0 || strcmp(op, "GRU") == 0 || strcmp(op, "LSTM") == 0;
}

/* The layout of @p v without its axes of size 1 other than the batch ("TNF", "NF" ...). */
void bpx_core_tags(const bpx_value *v, char *out)
{
    size_t m = 0;
    for (size_t k = 0; k < v->rank; k++)
        if (v->tag[k] == 'N' || v->dims[k] != 1) out[m++] = v->tag[k];
    out[m] = '\0';
}

/* 1 when a value of core layout @p core (bpx_core_tags) holds its rows as the library does:
 * the batch first, then the steps, then the features (a recurrent output's directions
 * before its features), or images [N x C x H x W]. */
int bpx_batch_first(const char *core)
{
    if (core[0] != 'N') return 0;
    size_t k = 1;
    if (core[k] == 'C' || core[k] == 'Y' || core[k] == 'X') { /* images (unit axes dropped) */
        const char *order = "CYX";
        while (core[k] != '\0' && (order = strchr(order, core[k])) != NULL) {
            order++;
            k++;
        }
        return core[k] == '\0';
    }
    if (core[k] == 'T') k++;
    if (core[k] == 'D') k++;
    while (core[k] == 'F')
        k++;
    return core[k] == '\0';
}

step *bpx_new_step(importer *im, int kind, const Onnx__NodeProto *n)
{
    if (im->nsteps == im->cap) {
        const size_t cap = im->cap ? 2 * im->cap : 16;
        step *s = realloc(im->steps, cap * sizeof *s);
        if (s == NULL) return NULL;
        im->steps = s;
        im->cap = cap;
    }
    step *s = &im->steps[im->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->node = bpx_node_name(n);
    s->act = BP_ACT_IDENTITY;
    s->act_param = -1.0;
    return s;
}

float *bpx_copy_floats(const float *src, size_t n)
{
    float *d = malloc((n > 0 ? n : 1) * sizeof(float));
    if (d != NULL && n > 0) memcpy(d, src, n * sizeof(float));
    return d;
}

/* ---- fusing and building ---- */

static void fuse(importer *im)
{
    size_t out = 0;
    for (size_t k = 0; k < im->nsteps; k++) {
        step *s = &im->steps[k];
        step *prev = out > 0 ? &im->steps[out - 1] : NULL;
        if (s->kind == S_ACT && prev != NULL &&
            (prev->kind == S_DENSE || (prev->kind == S_CONV && s->act != BP_ACT_SOFTMAX)) &&
            prev->act == BP_ACT_IDENTITY) {
            prev->act = s->act;
            prev->act_param = s->act_param;
            continue;
        }
        im->steps[out++] = *s;
    }
    im->nsteps = out;
}

static bp_status set_act_param(bp_layer *l, const step *s)
{
    if (s->act_param < 0.0) return BP_OK;
    const int key = s->act == BP_ACT_LEAKY_RELU ? BP_LAYER_LEAKY_SLOPE : BP_LAYER_ELU_ALPHA;
    return bp_layer_set(l, key, s->act_param);
}

static bp_status build(importer *im, bp_net **out, uint64_t seed)
{
    bp_net *net = NULL;
    bp_status s;
    const int64_t *d = im->in_dims;
    /* Sequence rows [T x F] for token ids and for [N x T x F] inputs that a recurrent layer,
     * a per-step dense layer or a per-step softmax reads (an elementwise graph on a rank-3
     * input keeps flat rows). */
    int seq = im->int_input;
    for (size_t k = 0; k < im->nsteps && im->in_rank == 3; k++) {
        const int kind = im->steps[k].kind;
        if (kind == S_RNN || kind == S_LSTM || kind == S_GRU || kind == S_DENSE ||
            (kind == S_ACT && im->steps[k].act == BP_ACT_SOFTMAX))
            seq = 1;
    }
    if (im->in_rank == 4)
        s = bp_net_create_image(&net, (size_t)d[1], (size_t)d[2], (size_t)d[3], seed);
    else if (seq && im->int_input)
        s = bp_net_create_sequence(&net, (size_t)d[1], 1, seed);
    else if (seq)
        s = bp_net_create_sequence(&net, (size_t)d[1], (size_t)d[2], seed);
    else
        s = bp_net_create(&net, bpx_row_size(im->in_rank, d), seed);
    if (s != BP_OK)
        return bpx_fail_core(s == BP_ERR_NOMEM ? s : BP_ERR_UNSUPPORTED, "creating the net");
    for (size_t k = 0; k < im->nsteps; k++) {
        const step *st = &im->steps[k];
        switch (st->kind) {
        case S_DENSE: s = bp_net_add_dense(net, st->units, st->act); break;
        case S_CONV:
            s = bp_net_add_conv2d(net, st->units, st->kh, st->kw, st->stride, st->pad, st->act);
            break;
        case S_BN: s = bp_net_add_batchnorm(net); break;
        case S_ACT: s = bp_net_add_activation(net, st->act); break;
        case S_MAXPOOL: s = bp_net_add_maxpool2d(net, st->kh, st->stride); break;
        case S_AVGPOOL: s = bp_net_add_avgpool2d(net, st->kh, st->stride); break;
        case S_GAP: s = bp_net_add_global_avgpool(net); break;
        case S_RNN: s = bp_net_add_rnn(net, st->units, st->act, st->flags); break;
        case S_LSTM: s = bp_net_add_lstm(net, st->units, st->flags); break;
        case S_GRU: s = bp_net_add_gru(net, st->units, st->flags); break;
        case S_EMBED: s = bp_net_add_embedding(net, st->vocab, st->units); break;
        default: s = bp_net_add_flatten(net); break;
        }
        bp_layer *l = s == BP_OK ? bp_net_layer(net, bp_net_layer_count(net) - 1) : NULL;
        if (s == BP_OK && (st->kind == S_DENSE || st->kind == S_CONV || st->kind == S_ACT))
            s = set_act_param(l, st);
        if (s == BP_OK && st->w != NULL) s = bp_layer_set_weights(l, st->w, st->nw);
        if (s == BP_OK && st->b != NULL) s = bp_layer_set_biases(l, st->b, st->nb);
        if (s == BP_OK && st->state != NULL) s = bp_layer_set_state(l, st->state, st->nstate);
        if (s == BP_OK && st->kind == S_BN) {
            s = bp_layer_set(l, BP_LAYER_BN_EPSILON, st->eps);
            if (s == BP_OK) s = bp_layer_set(l, BP_LAYER_BN_MOMENTUM, st->momentum);
        }
        if (s != BP_OK) {
            char what[300];
            snprintf(what, sizeof what, "node '%s': building layer %zu", st->node, k);
            const bp_status r = s == BP_ERR_NOMEM || s == BP_ERR_NONFINITE ? s : BP_ERR_UNSUPPORTED;
            bpx_fail_core(r, what);
            bp_net_free(net);
            return r;
        }
    }
    static const int parts[2] = {BP_SCALE_INPUTS, BP_SCALE_TARGETS};
    for (int p = 0; p < 2; p++) {
        if (im->scaler[p][0] == NULL) continue;
        s = bp_net_set_scaler(net, parts[p], im->scaler[p][0], im->scaler[p][1],
                              im->scaler_width[p]);
        if (s != BP_OK) {
            const bp_status r = s == BP_ERR_NOMEM || s == BP_ERR_NONFINITE ? s : BP_ERR_UNSUPPORTED;
            bpx_fail_core(r, p == 0 ? "the input scaler (Sub, Mul/Div at the graph input)"
                                    : "the target scaler (Div/Mul, Add at the graph output)");
            bp_net_free(net);
            return r;
        }
    }
    *out = net;
    return BP_OK;
}

/* ---- reading the graph ---- */

static bp_status read_input(importer *im)
{
    const Onnx__GraphProto *g = im->g;
    const Onnx__ValueInfoProto *input = NULL;
    for (size_t k = 0; k < g->n_input; k++) {
        const Onnx__ValueInfoProto *v = g->input[k];
        if (v->name == NULL || v->name[0] == '\0')
            return bpx_fail(BP_ERR_FORMAT, "graph input %zu has no name", k);
        const bpx_value *known = bpx_find(&im->gr, v->name);
        if (known != NULL && known->is_const) continue; /* an initializer listed as input */
        if (input != NULL)
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "graph inputs '%s' and '%s': only one data "
                            "input is supported (weights must be initializers)",
                            input->name, v->name);
        input = v;
    }
    if (input == NULL) return bpx_fail(BP_ERR_UNSUPPORTED, "the graph has no data input");
    const Onnx__TypeProto *t = input->type;
    if (t == NULL || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || t->tensor_type == NULL)
        return bpx_fail(BP_ERR_UNSUPPORTED, "graph input '%s': only tensors are supported",
                        input->name);
    const Onnx__TypeProto__Tensor *tt = t->tensor_type;
    const int elem = tt->has_elem_type ? tt->elem_type : 0;
    /* Integer token ids [N x T] feed an embedding (a Gather from a constant table). */
    im->int_input = (elem == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
                     elem == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) &&
                    tt->shape != NULL && tt->shape->n_dim == 2;
    if (elem != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && !im->int_input)
        return bpx_fail(BP_ERR_UNSUPPORTED,
                        "graph input '%s': element type %d, only float32 (or int32/int64 "
                        "token ids [N x T] for an embedding) is supported",
                        input->name, elem);
    if (tt->shape == NULL || tt->shape->n_dim < 1 || tt->shape->n_dim > BPX_MAX_RANK)
        return bpx_fail(BP_ERR_UNSUPPORTED,
                        "graph input '%s': its shape must be given, rank 1 "
                        "to %d",
                        input->name, BPX_MAX_RANK);
    im->in_rank = tt->shape->n_dim;
    size_t width = 1;
    for (size_t k = 0; k < im->in_rank; k++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[k];
        const int has_value =
            dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (k == 0) {
            im->in_dims[0] = has_value ? dim->dim_value : -1; /* the batch it was exported with */
            continue;
        }
        if (!has_value || dim->dim_value < 1 || dim->dim_value > (1 << 24))
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "graph input '%s': dimension %zu must be a "
                            "fixed size of 1 .. 2^24 (only the batch may be symbolic)",
                            input->name, k);
        im->in_dims[k] = dim->dim_value;
        width *= (size_t)dim->dim_value;
        if (width > ((size_t)1 << 24))
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "graph input '%s': rows of more than 2^24 "
                            "features",
                            input->name);
    }
    if (im->in_rank == 1) im->in_rank = 2, im->in_dims[1] = 1; /* [N] rows of one feature */
    bpx_value *v = bpx_add(&im->gr, input->name);
    if (v == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    v->has_shape = 1;
    v->rank = im->in_rank;
    v->dims[0] = BPX_BATCH;
    for (size_t k = 1; k < im->in_rank; k++)
        v->dims[k] = im->in_dims[k];
    /* [N x F] rows, [N x T x F] sequences, [N x C x H x W] images, else flat rows */
    v->tag[0] = 'N';
    for (size_t k = 1; k < im->in_rank; k++)
        v->tag[k] = im->in_rank == 3   ? "NTF"[k]
                    : im->in_rank == 4 ? "NCYX"[k]
                    : im->int_input    ? 'T'
                                       : 'F';
    im->input_name = input->name;
    return BP_OK;
}

static bp_status import_graph(importer *im, bp_net **out, uint64_t seed)
{
    const Onnx__GraphProto *g = im->g;
    if (g->n_node > MAX_NODES || g->n_initializer > MAX_NODES || g->n_input > MAX_NODES)
        return bpx_fail(BP_ERR_UNSUPPORTED,
                        "graph of %zu nodes and %zu initializers: at most %d "
                        "each",
                        g->n_node, g->n_initializer, MAX_NODES);
    if (g->n_output != 1)
        return bpx_fail(BP_ERR_UNSUPPORTED, "the graph has %zu outputs: exactly one is supported",
                        g->n_output);
    if (g->n_sparse_initializer > 0)
        return bpx_fail(BP_ERR_UNSUPPORTED, "sparse initializers are not supported");
    for (size_t k = 0; k < g->n_initializer; k++) {
        const Onnx__TensorProto *tp = g->initializer[k];
        if (tp->name == NULL || tp->name[0] == '\0')
            return bpx_fail(BP_ERR_FORMAT, "initializer %zu has no name", k);
        char what[300];
        snprintf(what, sizeof what, "initializer '%s'", tp->name);
        bpx_value *v = bpx_add(&im->gr, tp->name);
        if (v == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        BP_CHECK(bpx_tensor_decode(&v->t, tp, what));
        v->is_const = 1;
    }
    BP_CHECK(read_input(im));
    im->dynamic = calloc(g->n_node + 1, 1);
    if (im->dynamic == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < g->n_node; k++) {
        const Onnx__NodeProto *n = g->node[k];
        if (n->op_type == NULL || n->n_output == 0 || n->output[0] == NULL)
            return bpx_fail(BP_ERR_FORMAT, "node %zu has no operator or output", k);
        if (n->domain != NULL && n->domain[0] != '\0' && strcmp(n->domain, "ai.onnx") != 0)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "operator domain '%s' is not supported",
                             n->domain);
        for (size_t j = 0; j < n->n_attribute; j++)
            if (n->attribute[j]->g != NULL || n->attribute[j]->n_graphs > 0)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "attribute '%s': subgraphs (control "
                                 "flow) are not supported",
                                 n->attribute[j]->name);
        for (size_t j = 0; j < n->n_input; j++)
            if (n->input[j][0] != '\0' && bpx_find(&im->gr, n->input[j]) == NULL)
                return NODE_FAIL(BP_ERR_FORMAT, n,
                                 "input '%s' is not defined before the node "
                                 "(nodes must be in topological order)",
                                 n->input[j]);
        int done = 0;
        BP_CHECK(bpx_fold_node(&im->gr, n, &done));
        if (done) continue;
        /* A node of the data path: exactly which input is dynamic decides the shape. */
        const bpx_value *x = NULL;
        for (size_t j = 0; j < n->n_input && x == NULL; j++) {
            const bpx_value *v = bpx_find(&im->gr, n->input[j]);
            if (v != NULL && !v->is_const && !v->bcast) x = v;
        }
        if (x == NULL)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "cannot be folded at import: %s",
                             im->gr.why[0] ? im->gr.why : "it reads no data");
        im->dynamic[k] = 1;
        for (size_t j = 0; j < n->n_output; j++) {
            if (n->output[j][0] == '\0') continue;
            if (bpx_find(&im->gr, n->output[j]) != NULL)
                return NODE_FAIL(BP_ERR_FORMAT, n, "output '%s' is defined twice", n->output[j]);
            size_t rank = 0;
            int64_t dims[BPX_MAX_RANK];
            char tags[BPX_MAX_RANK + 1];
            int known = 0;
            if (x->has_shape && j == 0)
                known = bpx_infer_shape(im, n, x, &rank, dims, tags) == 0;
            else if (x->has_shape && j <= 2 && bpx_is_recurrent(n->op_type))
                known = bpx_infer_recurrent(n, x, j, &rank, dims, tags) == 0;
            bpx_value *v = bpx_add(&im->gr, n->output[j]);
            if (v == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
            if (known) {
                v->has_shape = 1;
                v->rank = rank;
                memcpy(v->dims, dims, rank * sizeof(int64_t));
                memcpy(v->tag, tags, sizeof v->tag);
                v->tag[rank] = '\0';
            }
        }
    }
    const char *out_name = g->output[0]->name;
    const bpx_value *ov = out_name != NULL ? bpx_find(&im->gr, out_name) : NULL;
    if (ov == NULL || ov->is_const)
        return bpx_fail(BP_ERR_UNSUPPORTED, "graph output '%s' is not computed from the input",
                        out_name != NULL ? out_name : "");
    BP_CHECK(bpx_walk_chain(im));
    for (size_t k = 0; k < im->nsteps; k++)
        if (im->steps[k].bias_open) im->steps[k].bias_open = 0; /* MatMul without bias */
    fuse(im);
    if (im->nsteps == 0) {
        /* Only Identity/Dropout: a net needs a layer, the identity activation is one. */
        step *st = bpx_new_step(im, S_ACT, g->node[0]);
        if (st == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        st->out_width = bpx_row_size(im->in_rank, im->in_dims);
    }
    /* Bound what the net will allocate by what the file holds: parameters come from the
     * file's tensors; the layers' per-row outputs (which the net allocates for every row of
     * a batch) may total 2^22 floats plus 64 per byte of the file. */
    size_t per_row = bpx_row_size(im->in_rank, im->in_dims);
    const size_t limit = ((size_t)1 << 22) + 64 * im->file_size;
    for (size_t k = 0; k < im->nsteps; k++) {
        if (im->steps[k].out_width == 0)
            return bpx_fail(BP_ERR_UNSUPPORTED, "node '%s': output shape unknown",
                            im->steps[k].node);
        per_row += im->steps[k].out_width;
        if (per_row > limit)
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "node '%s': the layers' outputs would total "
                            "more than %zu floats per row for a %zu-byte model (docs/onnx.md, "
                            "Limits)",
                            im->steps[k].node, limit, im->file_size);
    }
    return build(im, out, seed);
}

static void importer_free(importer *im)
{
    for (size_t k = 0; k < im->gr.nvalues; k++)
        bpx_tensor_free(&im->gr.values[k].t);
    free(im->gr.values);
    for (size_t k = 0; k < im->nsteps; k++) {
        free(im->steps[k].w);
        free(im->steps[k].b);
        free(im->steps[k].state);
    }
    free(im->steps);
    free(im->dynamic);
    for (int p = 0; p < 2; p++) {
        free(im->scaler[p][0]);
        free(im->scaler[p][1]);
    }
}

bp_status bp_onnx_import_buffer(bp_net **out, const void *buf, size_t size, uint64_t seed)
{
    bpx_clear_error();
    if (out != NULL) *out = NULL;
    if (out == NULL || buf == NULL || size == 0)
        return bpx_fail(BP_ERR_INVALID_ARG, "bp_onnx_import_buffer: NULL argument or empty "
                                            "buffer");
    if (!bpx_nesting_ok(buf, size))
        return bpx_fail(BP_ERR_FORMAT,
                        "not an ONNX model: messages nested more than %d levels "
                        "deep",
                        BPX_MAX_NESTING);
    ProtobufCAllocator alloc;
    bpx_budget budget;
    bpx_allocator_init(&alloc, &budget, size);
    Onnx__ModelProto *m = onnx__model_proto__unpack(&alloc, size, buf);
    if (m == NULL) {
        if (budget.exceeded)
            return bpx_fail(BP_ERR_FORMAT,
                            "not an ONNX model: decoding %zu bytes would allocate "
                            "more than %zu bytes",
                            size, budget.limit);
        return bpx_fail(BP_ERR_FORMAT, "not an ONNX model (the protobuf ModelProto does not "
                                       "parse)");
    }
    bp_status s = BP_OK;
    importer im;
    memset(&im, 0, sizeof im);
    im.file_size = size;
    int64_t opset = -1;
    for (size_t k = 0; k < m->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[k];
        if (o->domain == NULL || o->domain[0] == '\0' || strcmp(o->domain, "ai.onnx") == 0)
            opset = o->has_version ? o->version : -1;
    }
    if (!m->has_ir_version || m->ir_version < 3) {
        s = bpx_fail(BP_ERR_UNSUPPORTED, "model IR version %lld: at least 3 is needed",
                     (long long)(m->has_ir_version ? m->ir_version : 0));
    } else if (opset < BP_ONNX_OPSET_MIN || opset > BP_ONNX_OPSET_MAX) {
        s = bpx_fail(BP_ERR_UNSUPPORTED,
                     "operator set %lld of the default domain: %d to %d are "
                     "supported",
                     (long long)opset, BP_ONNX_OPSET_MIN, BP_ONNX_OPSET_MAX);
    } else if (m->graph == NULL) {
        s = bpx_fail(BP_ERR_FORMAT, "the model has no graph");
    } else {
        im.g = m->graph;
        im.gr.g = m->graph;
        im.gr.opset = opset;
        im.gr.fold_budget = (size_t)1 << 20;
        s = import_graph(&im, out, seed);
    }
    importer_free(&im);
    onnx__model_proto__free_unpacked(m, &alloc);
    return s;
}

bp_status bp_onnx_import(bp_net **out, const char *path, uint64_t seed)
{
    bpx_clear_error();
    if (out != NULL) *out = NULL;
    if (out == NULL || path == NULL)
        return bpx_fail(BP_ERR_INVALID_ARG, "bp_onnx_import: NULL argument");
    /* A regular file only: a FIFO would block and /dev/zero never end. Its size at open
     * time bounds what is read. */
    struct stat st;
    if (stat(path, &st) != 0) return bpx_fail(BP_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return bpx_fail(BP_ERR_IO, "%s: not a regular file", path);
    if ((uintmax_t)st.st_size > (uintmax_t)(SIZE_MAX / BP_ONNX_PARSE_FACTOR))
        return bpx_fail(BP_ERR_UNSUPPORTED, "%s: file too large", path);
    const size_t want = (size_t)st.st_size;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return bpx_fail(BP_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char *buf = malloc(want > 0 ? want : 1);
    if (buf == NULL) {
        fclose(f);
        return bpx_fail(BP_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, want);
    }
    const size_t size = fread(buf, 1, want, f);
    const int err = ferror(f) || size != want;
    fclose(f);
    if (err) {
        free(buf);
        return bpx_fail(BP_ERR_IO, "%s: read error", path);
    }
    if (size == 0) {
        free(buf);
        return bpx_fail(BP_ERR_FORMAT, "%s: empty file", path);
    }
    const bp_status s = bp_onnx_import_buffer(out, buf, size, seed);
    free(buf);
    if (s != BP_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", bp_onnx_last_error());
        bpx_fail(s, "%s: %s", path, msg);
    }
    return s;
}
