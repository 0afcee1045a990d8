/*
 * onnx_import.c -- ONNX model -> bp_net.
 *
 * 1. Parse the ModelProto with a bounded allocator; check the IR and operator-set versions.
 * 2. One pass over the nodes in order: fold constant and shape-only nodes (onnx_fold.c);
 *    every other node must read the dynamic data, and its output shape is inferred so that
 *    later Shape nodes fold.
 * 3. Walk the dynamic nodes as a chain from the graph input to the graph output, segment by
 *    segment: a segment is one node, or a subgraph with one entry and one exit whose nodes
 *    are elementwise (a decomposed activation such as GELU's tanh form, recognised by
 *    evaluating it). Each segment becomes a planned step (dense, conv2d, batchnorm,
 *    activation, pooling, flatten) or nothing (Dropout, Identity).
 * 4. Fuse activations into the preceding dense or conv2d step, then build the net through the
 *    public API and copy the weights, biases and running statistics in.
 *
 * Adding an operator = a case in infer_shape() and one in map_node() (the sequence layers
 * will add RNN/LSTM/GRU and Gather-as-embedding there).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx_internal.h"

/* Most nodes, initializers and graph inputs a model may have (chains are short; bounding
 * them keeps the name lookups cheap on hostile input). */
#define MAX_NODES 4096

enum step_kind {
    S_DENSE = 1,
    S_CONV,
    S_BN,
    S_ACT,
    S_MAXPOOL,
    S_AVGPOOL,
    S_GAP,
    S_FLATTEN,
    S_RNN,
    S_LSTM,
    S_GRU,
    S_EMBED
};

typedef struct step {
    int kind;
    const char *node; /* for messages */
    int act;          /* enum bp_activation (dense, conv2d, activation) */
    double act_param; /* leaky slope or ELU alpha; < 0 when unused */
    size_t units, kh, kw, stride, pad;
    float *w, *b; /* dense [units x in], conv [F x C x kh x kw], bn gamma; biases */
    size_t nw, nb;
    float *state; /* bn: mean then var [2C] */
    size_t nstate;
    double eps, momentum;
    int bias_open;    /* MatMul without its Add yet */
    int flags;        /* rnn, lstm, gru: enum bp_recurrent_flag */
    size_t vocab;     /* embedding: rows of the table */
    size_t out_width; /* floats per row of its output */
} step;

typedef struct importer {
    bpx_graph gr;
    const Onnx__GraphProto *g;
    step *steps;
    size_t nsteps, cap;
    size_t file_size;
    /* input shape (rank includes the batch) */
    size_t in_rank;
    int64_t in_dims[BPX_MAX_RANK];
    const char *input_name;
    int int_input;          /* the graph input holds integer token ids (an embedding) */
    unsigned char *dynamic; /* [n_node]: node reads dynamic data */
    /* scalers read from per-feature Sub/Mul at the start and Div/Add at the end of the
     * chain: [0] inputs, [1] targets; offset then scale, [width] each */
    float *scaler[2][2];
    size_t scaler_width[2];
} importer;

/* ---- small helpers ---- */

static const Onnx__AttributeProto *attr_of(const Onnx__NodeProto *n, const char *name)
{
    return bpx_attr(n, name);
}

static int64_t attr_i(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = attr_of(n, name);
    return a != NULL && a->has_i ? a->i : def;
}

static double attr_f(const Onnx__NodeProto *n, const char *name, double def)
{
    const Onnx__AttributeProto *a = attr_of(n, name);
    return a != NULL && a->has_f ? (double)a->f : def;
}

#define NODE_FAIL(st, n, ...) node_fail((st), (n), __VA_ARGS__)
static bp_status node_fail(bp_status st, const Onnx__NodeProto *n, const char *fmt, ...)
    BPX_PRINTF(3, 4);
static bp_status node_fail(bp_status st, const Onnx__NodeProto *n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bpx_fail(st, "node '%s' (%s): %s", bpx_node_name(n), n->op_type, msg);
}

/* Allow only the listed attributes: any other is reported by name. */
static bp_status check_attrs(const Onnx__NodeProto *n, const char *const *known)
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

static bpx_value *in_value(importer *im, const Onnx__NodeProto *n, size_t k)
{
    if (k >= n->n_input || n->input[k] == NULL || n->input[k][0] == '\0') return NULL;
    return bpx_find(&im->gr, n->input[k]);
}

static const bpx_tensor *in_const(importer *im, const Onnx__NodeProto *n, size_t k)
{
    const bpx_value *v = in_value(im, n, k);
    return v != NULL && v->is_const ? &v->t : NULL;
}

static size_t row_size(size_t rank, const int64_t *dims)
{
    size_t s = 1;
    for (size_t k = 1; k < rank; k++)
        s *= (size_t)dims[k];
    return s;
}

/* Floats per row of value @p v: the product of its dimensions but the batch's. */
static size_t value_row(const bpx_value *v)
{
    size_t s = 1;
    for (size_t k = 0; k < v->rank; k++)
        if (v->dims[k] != BPX_BATCH) s *= (size_t)v->dims[k];
    return s;
}

static int is_recurrent(const char *op)
{
    return strcmp(op, "RNN") == 0 || strcmp(op, "GRU") == 0 || strcmp(op, "LSTM") == 0;
}

/* The layout of @p v without its axes of size 1 other than the batch ("TNF", "NF" ...). */
static void core_tags(const bpx_value *v, char *out)
{
    size_t m = 0;
    for (size_t k = 0; k < v->rank; k++)
        if (v->tag[k] == 'N' || v->dims[k] != 1) out[m++] = v->tag[k];
    out[m] = '\0';
}

/* 1 when a value of core layout @p core (core_tags) holds its rows as the library does:
 * the batch first, then the steps, then the features (a recurrent output's directions
 * before its features), or images [N x C x H x W]. */
static int batch_first(const char *core)
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

static step *new_step(importer *im, int kind, const Onnx__NodeProto *n)
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

static float *copy_floats(const float *src, size_t n)
{
    float *d = malloc((n > 0 ? n : 1) * sizeof(float));
    if (d != NULL && n > 0) memcpy(d, src, n * sizeof(float));
    return d;
}

/* ---- shape inference for the dynamic nodes (so that Shape nodes after them fold) ---- */

static int auto_pad_is(const Onnx__NodeProto *n, const char *what)
{
    const Onnx__AttributeProto *a = bpx_attr(n, "auto_pad");
    const size_t len = strlen(what);
    return a != NULL && a->has_s && a->s.len == len && memcmp(a->s.data, what, len) == 0;
}

static int auto_pad_same(const Onnx__NodeProto *n)
{
    return auto_pad_is(n, "SAME_UPPER") || auto_pad_is(n, "SAME_LOWER");
}

/* Output size of a window along one axis: floor or ceil. */
static int64_t win_out(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1, int ceil_mode)
{
    const int64_t span = in + p0 + p1 - k;
    if (span < 0 || s <= 0) return -1;
    return (ceil_mode ? (span + s - 1) / s : span / s) + 1;
}

/* The tags of a reshape of @p x to @p dims: output axes are formed by consecutive input
 * axes; one real axis keeps its tag, direction then features merge into features, and a
 * whole row merging into one axis (a flatten to [N x features]) is features; anything else
 * is '?' (no layer reads that layout). */
static void reshape_tags(const bpx_value *x, size_t rank, const int64_t *dims, char *tags)
{
    size_t i = 0;
    for (size_t j = 0; j < rank; j++) {
        if (dims[j] == BPX_BATCH) {
            while (i < x->rank && x->dims[i] == 1)
                i++;
            tags[j] = i < x->rank && x->dims[i] == BPX_BATCH ? 'N' : '?';
            i++;
            continue;
        }
        if (dims[j] == 1 && (i >= x->rank || x->dims[i] != 1)) {
            tags[j] = '1';
            continue;
        }
        char group[BPX_MAX_RANK + 1];
        size_t ng = 0, prod = 1;
        while (i < x->rank && x->dims[i] != BPX_BATCH && prod < (size_t)dims[j]) {
            if (x->dims[i] != 1) group[ng++] = x->tag[i];
            prod *= (size_t)x->dims[i++];
        }
        while (i < x->rank && x->dims[i] == 1 && j + 1 == rank) /* trailing unit axes */
            i++;
        group[ng] = '\0';
        if (prod != (size_t)dims[j])
            tags[j] = '?';
        else if (ng == 1)
            tags[j] = group[0];
        else if (ng == 0)
            tags[j] = '1';
        else if (strcmp(group, "DF") == 0 || rank == 2) /* directions joined; a flatten */
            tags[j] = 'F';
        else
            tags[j] = '?';
    }
    tags[rank] = '\0';
}

/* Shapes of a recurrent node's outputs Y [T, D, N, H] (layout 0) or [N, T, D, H] (layout 1)
 * and Y_h, Y_c [D, N, H] or [N, D, H]; -1 when unknown. */
static int infer_recurrent(const Onnx__NodeProto *n, const bpx_value *x, size_t out, size_t *rank,
                           int64_t *dims, char *tags)
{
    const int64_t layout = attr_i(n, "layout", 0), hidden = attr_i(n, "hidden_size", 0);
    const Onnx__AttributeProto *dir = attr_of(n, "direction");
    const int64_t d = dir != NULL && dir->has_s && dir->s.len == 13 &&
                              memcmp(dir->s.data, "bidirectional", 13) == 0
                          ? 2
                          : 1;
    if (x->rank != 3 || hidden < 1 || hidden > (1 << 24) || (layout != 0 && layout != 1)) return -1;
    const int64_t t = x->dims[layout ? 1 : 0], b = x->dims[layout ? 0 : 1];
    if (out == 0) {
        const int64_t y0[4] = {t, d, b, hidden}, y1[4] = {b, t, d, hidden};
        memcpy(dims, layout ? y1 : y0, sizeof y0);
        memcpy(tags, layout ? "NTDF" : "TDNF", 5);
        *rank = 4;
    } else {
        const int64_t h0[3] = {d, b, hidden}, h1[3] = {b, d, hidden};
        memcpy(dims, layout ? h1 : h0, sizeof h0);
        memcpy(tags, layout ? "NDF" : "DNF", 4);
        *rank = 3;
    }
    /* the time and batch axes must be what the input's layout says */
    const char want[2] = {layout ? 'N' : 'T', layout ? 'T' : 'N'};
    return x->tag[0] == want[0] && x->tag[1] == want[1] && x->tag[2] == 'F' ? 0 : -1;
}

/* The axes a Squeeze or Unsqueeze node names (input since opset 13, attribute before). */
static int node_axes(importer *im, const Onnx__NodeProto *n, int64_t *axes, size_t *count)
{
    *count = 0;
    if (im->gr.opset >= 13) {
        const bpx_tensor *a = in_const(im, n, 1);
        if (n->n_input < 2 || n->input[1][0] == '\0') return 0;
        if (a == NULL || a->type != BPX_I64 || a->count > BPX_MAX_RANK) return -1;
        if (a->count) memcpy(axes, a->i, a->count * sizeof(int64_t));
        *count = a->count;
        return 0;
    }
    const Onnx__AttributeProto *a = attr_of(n, "axes");
    if (a == NULL) return 0;
    if (a->n_ints > BPX_MAX_RANK) return -1;
    if (a->n_ints) memcpy(axes, a->ints, a->n_ints * sizeof(int64_t)); /* NULL when empty */
    *count = a->n_ints;
    return 0;
}

static int infer_shape(importer *im, const Onnx__NodeProto *n, const bpx_value *x, size_t *rank,
                       int64_t *dims, char *tags)
{
    const char *op = n->op_type;
    *rank = x->rank;
    memcpy(dims, x->dims, x->rank * sizeof(int64_t));
    memcpy(tags, x->tag, sizeof x->tag);
    if (strcmp(op, "Transpose") == 0) {
        const Onnx__AttributeProto *a = attr_of(n, "perm");
        unsigned char used[BPX_MAX_RANK] = {0};
        for (size_t k = 0; k < x->rank; k++) {
            const int64_t p =
                a != NULL ? (k < a->n_ints ? a->ints[k] : -1) : (int64_t)(x->rank - 1 - k);
            if (a != NULL && a->n_ints != x->rank) return -1;
            if (p < 0 || p >= (int64_t)x->rank || used[p]) return -1;
            used[p] = 1;
            dims[k] = x->dims[p];
            tags[k] = x->tag[p];
        }
        return 0;
    }
    if (strcmp(op, "Squeeze") == 0 || strcmp(op, "Unsqueeze") == 0) {
        int64_t axes[BPX_MAX_RANK];
        size_t na = 0;
        if (node_axes(im, n, axes, &na) != 0) return -1;
        if (op[0] == 'S') {
            unsigned char drop[BPX_MAX_RANK] = {0};
            for (size_t k = 0; k < na; k++) {
                const int64_t a = axes[k] < 0 ? axes[k] + (int64_t)x->rank : axes[k];
                if (a < 0 || a >= (int64_t)x->rank || x->dims[a] != 1) return -1;
                drop[a] = 1;
            }
            size_t m = 0;
            for (size_t k = 0; k < x->rank; k++)
                if (!(na == 0 ? x->dims[k] == 1 : drop[k])) {
                    dims[m] = x->dims[k];
                    tags[m++] = x->tag[k];
                }
            *rank = m;
        } else {
            const size_t out = x->rank + na;
            unsigned char add[BPX_MAX_RANK] = {0};
            if (na == 0 || out > BPX_MAX_RANK) return -1;
            for (size_t k = 0; k < na; k++) {
                const int64_t a = axes[k] < 0 ? axes[k] + (int64_t)out : axes[k];
                if (a < 0 || a >= (int64_t)out || add[a]) return -1;
                add[a] = 1;
            }
            size_t src = 0;
            for (size_t k = 0; k < out; k++) {
                dims[k] = add[k] ? 1 : x->dims[src];
                tags[k] = add[k] ? '1' : x->tag[src++];
            }
            *rank = out;
        }
        tags[*rank] = '\0';
        return 0;
    }
    if (strcmp(op, "Gather") == 0) {
        const bpx_tensor *table = in_const(im, n, 0);
        if (table != NULL) {
            /* an embedding: the rows of a constant table picked by the data */
            if (table->rank != 2 || x->rank + 1 > BPX_MAX_RANK) return -1;
            dims[x->rank] = table->dims[1];
            tags[x->rank] = 'F';
            *rank = x->rank + 1;
            tags[*rank] = '\0';
            return 0;
        }
        const bpx_tensor *idx = in_const(im, n, 1);
        int64_t axis = attr_i(n, "axis", 0);
        if (axis < 0) axis += (int64_t)x->rank;
        if (idx == NULL || idx->count != 1 || axis < 0 || axis >= (int64_t)x->rank ||
            x->dims[axis] == BPX_BATCH)
            return -1;
        if (idx->rank == 1) {
            dims[axis] = 1;
            return 0;
        }
        size_t m = 0;
        for (size_t k = 0; k < x->rank; k++)
            if ((int64_t)k != axis) {
                dims[m] = x->dims[k];
                tags[m++] = x->tag[k];
            }
        *rank = m;
        tags[m] = '\0';
        return 0;
    }
    if (is_recurrent(op)) return infer_recurrent(n, x, 0, rank, dims, tags);
    static const char *const same[] = {
        "Relu",     "LeakyRelu",  "Elu",     "Sigmoid",  "Tanh",
        "Softplus", "Softmax",    "Dropout", "Identity", "BatchNormalization",
        "Erf",      "Sqrt",       "Exp",     "Neg",      "Cast",
        "Pow",      "Add",        "Sub",     "Mul",      "Div",
        "Log",      "Reciprocal", "Pad",     NULL};
    for (const char *const *p = same; *p != NULL; p++)
        if (strcmp(op, *p) == 0) return 0;
    if (strcmp(op, "Gemm") == 0 || strcmp(op, "MatMul") == 0) {
        const bpx_tensor *w = in_const(im, n, 1);
        if (w == NULL || w->rank != 2) return -1;
        const int tb = strcmp(op, "Gemm") == 0 && attr_i(n, "transB", 0) != 0;
        dims[x->rank - 1] = tb ? w->dims[0] : w->dims[1];
        return 0;
    }
    if (strcmp(op, "Conv") == 0 || strcmp(op, "MaxPool") == 0 || strcmp(op, "AveragePool") == 0) {
        if (x->rank != 4) return -1;
        int64_t k[2], s[2] = {1, 1}, p[4] = {0, 0, 0, 0};
        const Onnx__AttributeProto *a = attr_of(n, "kernel_shape");
        if (a != NULL && a->n_ints == 2) {
            k[0] = a->ints[0];
            k[1] = a->ints[1];
        } else if (op[0] == 'C') {
            const bpx_tensor *w = in_const(im, n, 1);
            if (w == NULL || w->rank != 4) return -1;
            k[0] = w->dims[2];
            k[1] = w->dims[3];
        } else {
            return -1;
        }
        if ((a = attr_of(n, "strides")) != NULL && a->n_ints == 2) {
            s[0] = a->ints[0];
            s[1] = a->ints[1];
        }
        if ((a = attr_of(n, "pads")) != NULL && a->n_ints == 4)
            for (int j = 0; j < 4; j++)
                p[j] = a->ints[j];
        const int ceil_mode = attr_i(n, "ceil_mode", 0) != 0;
        if (auto_pad_same(n)) {
            for (int j = 0; j < 2; j++)
                dims[2 + j] = (x->dims[2 + j] + s[j] - 1) / s[j];
            if (op[0] == 'C') {
                const bpx_tensor *w = in_const(im, n, 1);
                if (w == NULL || w->rank != 4) return -1;
                dims[1] = w->dims[0];
            }
            return 0;
        }
        if (op[0] == 'C') {
            const bpx_tensor *w = in_const(im, n, 1);
            if (w == NULL || w->rank != 4) return -1;
            dims[1] = w->dims[0];
        }
        dims[2] = win_out(x->dims[2], k[0], s[0], p[0], p[2], ceil_mode);
        dims[3] = win_out(x->dims[3], k[1], s[1], p[1], p[3], ceil_mode);
        return dims[2] > 0 && dims[3] > 0 ? 0 : -1;
    }
    if (strcmp(op, "GlobalAveragePool") == 0) {
        for (size_t j = 2; j < x->rank; j++)
            dims[j] = 1;
        return x->rank >= 3 ? 0 : -1;
    }
    if (strcmp(op, "Flatten") == 0) {
        int64_t axis = attr_i(n, "axis", 1);
        if (axis < 0) axis += (int64_t)x->rank;
        if (axis != 1 || x->tag[0] != 'N') return -1;
        dims[1] = (int64_t)row_size(x->rank, x->dims);
        *rank = 2;
        memcpy(tags, "NF", 3);
        return 0;
    }
    if (strcmp(op, "Reshape") == 0 && x->tag[0] != 'N') {
        /* Batch not first (time-major recurrent outputs): 0 copies a dimension (the batch
         * too), -1 takes what is left; exactly one batch axis. */
        const bpx_tensor *sh = in_const(im, n, 1);
        if (sh == NULL || sh->type != BPX_I64 || sh->rank != 1 || sh->count < 1 ||
            sh->count > BPX_MAX_RANK)
            return -1;
        const size_t total = value_row(x);
        size_t known = 1, batches = 0;
        int infer = -1;
        for (size_t j = 0; j < sh->count; j++) {
            int64_t d = sh->i[j];
            if (d == 0 && j < x->rank) d = x->dims[j];
            if (d == BPX_BATCH) {
                batches++;
            } else if (d == -1) {
                if (infer >= 0) return -1;
                infer = (int)j;
            } else if (d <= 0) {
                return -1;
            } else {
                known *= (size_t)d;
            }
            dims[j] = d;
        }
        if (batches != 1) return -1;
        if (infer >= 0) {
            if (known == 0 || total % known != 0) return -1;
            dims[infer] = (int64_t)(total / known);
            known *= (size_t)dims[infer];
        }
        if (known != total) return -1;
        *rank = sh->count;
        reshape_tags(x, *rank, dims, tags);
        return 0;
    }
    if (strcmp(op, "Reshape") == 0) {
        const bpx_tensor *sh = in_const(im, n, 1);
        if (sh == NULL || sh->type != BPX_I64 || sh->rank != 1 || sh->count < 1 ||
            sh->count > BPX_MAX_RANK)
            return -1;
        const size_t total = row_size(x->rank, x->dims);
        size_t known = 1;
        int infer = -1;
        /* The first entry must keep the batch: the batch marker, 0 (copy), or -1 with all
         * other entries known. */
        for (size_t j = 0; j < sh->count; j++) {
            int64_t d = sh->i[j];
            if (j == 0 && (d == BPX_BATCH || d == 0)) {
                dims[0] = BPX_BATCH;
                continue;
            }
            if (d == 0 && j < x->rank) d = x->dims[j];
            if (d == -1) {
                if (infer >= 0) return -1;
                infer = (int)j;
                continue;
            }
            if (d <= 0) return -1;
            dims[j] = d;
            if (j > 0) known *= (size_t)d;
        }
        if (infer == 0) {
            /* [-1, rest]: the batch is inferred, the row must keep its size. */
            if (known != total) return -1;
            dims[0] = BPX_BATCH;
        } else if (infer > 0) {
            if (known == 0 || total % known != 0) return -1;
            dims[infer] = (int64_t)(total / known);
        } else if (dims[0] != BPX_BATCH) {
            /* A fixed first entry: accepted when it is the batch the model was exported
             * with and the row keeps its size. */
            if (sh->i[0] != im->in_dims[0] || known != total) return -1;
            dims[0] = BPX_BATCH;
        }
        if (dims[0] != BPX_BATCH) return -1;
        *rank = sh->count;
        if (row_size(*rank, dims) != total) return -1;
        reshape_tags(x, *rank, dims, tags);
        return 0;
    }
    return -1;
}

/* ---- recognising decomposed activations: evaluate the subgraph ---- */

static int is_elementwise(const char *op)
{
    static const char *const ops[] = {
        "Add", "Sub", "Mul", "Div",  "Pow",      "Tanh",       "Sigmoid",  "Erf", "Sqrt",
        "Exp", "Log", "Neg", "Relu", "Softplus", "Reciprocal", "Identity", NULL};
    for (const char *const *p = ops; *p != NULL; p++)
        if (strcmp(op, *p) == 0) return 1;
    return 0;
}

#define NPTS 25

typedef struct region {
    const Onnx__NodeProto *nodes[64];
    size_t n;
} region;

/* Evaluate the region at points xs in double. vals hold one NPTS vector per region value. */
static int eval_region(importer *im, const region *r, const char *entry, double out[NPTS])
{
    double vals[65][NPTS];
    const char *names[65];
    size_t nv = 1;
    names[0] = entry;
    for (int j = 0; j < NPTS; j++)
        vals[0][j] = -6.0 + 12.0 * j / (NPTS - 1);
    for (size_t k = 0; k < r->n; k++) {
        const Onnx__NodeProto *n = r->nodes[k];
        double args[2][NPTS];
        const size_t nin = n->n_input;
        if (nin < 1 || nin > 2) return -1;
        for (size_t a = 0; a < nin; a++) {
            size_t v;
            for (v = 0; v < nv; v++)
                if (strcmp(names[v], n->input[a]) == 0) break;
            if (v < nv) {
                memcpy(args[a], vals[v], sizeof args[a]);
                continue;
            }
            const bpx_tensor *c = in_const(im, n, a);
            if (c == NULL || c->count != 1) return -1;
            const double cv = c->type == BPX_F32 ? (double)c->f[0] : (double)c->i[0];
            for (int j = 0; j < NPTS; j++)
                args[a][j] = cv;
        }
        const char *op = n->op_type;
        double *y = vals[nv];
        for (int j = 0; j < NPTS; j++) {
            const double p = args[0][j], q = nin > 1 ? args[1][j] : 0.0;
            double v;
            if (strcmp(op, "Add") == 0)
                v = p + q;
            else if (strcmp(op, "Sub") == 0)
                v = p - q;
            else if (strcmp(op, "Mul") == 0)
                v = p * q;
            else if (strcmp(op, "Div") == 0)
                v = p / q;
            else if (strcmp(op, "Pow") == 0)
                v = pow(p, q);
            else if (strcmp(op, "Tanh") == 0)
                v = tanh(p);
            else if (strcmp(op, "Sigmoid") == 0)
                v = 1.0 / (1.0 + exp(-p));
            else if (strcmp(op, "Erf") == 0)
                v = erf(p);
            else if (strcmp(op, "Sqrt") == 0)
                v = sqrt(p);
            else if (strcmp(op, "Exp") == 0)
                v = exp(p);
            else if (strcmp(op, "Log") == 0)
                v = log(p);
            else if (strcmp(op, "Neg") == 0)
                v = -p;
            else if (strcmp(op, "Relu") == 0)
                v = p > 0 ? p : 0.0;
            else if (strcmp(op, "Softplus") == 0)
                v = log1p(exp(p));
            else if (strcmp(op, "Reciprocal") == 0)
                v = 1.0 / p;
            else if (strcmp(op, "Identity") == 0)
                v = p;
            else
                return -1;
            y[j] = v;
        }
        names[nv++] = n->output[0];
    }
    memcpy(out, vals[nv - 1], sizeof(double) * NPTS);
    return 0;
}

static double ref_act(int which, double z)
{
    switch (which) {
    case 0: return 0.5 * z * (1.0 + tanh(0.79788456080286535588 * (z + 0.044715 * z * z * z)));
    case 1: return z / (1.0 + exp(-z));
    case 2: return 0.5 * z * (1.0 + erf(z / sqrt(2.0)));
    default: return 0.0;
    }
}

/* The activation the region computes: an enum bp_activation, -2 for the exact (erf) GELU,
 * -1 for none, -3 when it cannot be evaluated. */
static int match_region(importer *im, const region *r, const char *entry)
{
    for (size_t k = 0; k < r->n; k++)
        if (!is_elementwise(r->nodes[k]->op_type)) return -3;
    double y[NPTS];
    if (eval_region(im, r, entry, y) != 0) return -3;
    static const int acts[] = {BP_ACT_GELU, BP_ACT_SILU, -2};
    for (int which = 0; which < 3; which++) {
        int ok = 1;
        for (int j = 0; j < NPTS && ok; j++) {
            const double z = -6.0 + 12.0 * j / (NPTS - 1), want = ref_act(which, z);
            if (!(fabs(y[j] - want) <= 1e-6 + 1e-6 * fabs(want))) ok = 0;
        }
        if (ok) return acts[which];
    }
    return -1;
}

/* The single consumer of @p name among the dynamic nodes from @p from, if it is an
 * elementwise node whose other input is a scalar constant (a factor such as GELU's 0.5). */
static const Onnx__NodeProto *scalar_consumer(importer *im, const char *name, size_t from,
                                              size_t *at);

static bp_status classify_region(importer *im, region *r, const char *entry, int *act,
                                 const char **exit_name, size_t *pos)
{
    const Onnx__NodeProto *first = r->nodes[0];
    char ops[256] = "";
    for (size_t k = 0; k < r->n; k++) {
        const size_t len = strlen(ops);
        snprintf(ops + len, sizeof ops - len, "%s%s", k ? ", " : "", r->nodes[k]->op_type);
    }
    for (size_t k = 0; k < r->n; k++)
        if (!is_elementwise(r->nodes[k]->op_type))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, r->nodes[k],
                             "operator not supported here "
                             "(the graph branches around it: only chains of layers and "
                             "decomposed activations are imported; subgraph %s)",
                             ops);
    int m = match_region(im, r, entry);
    /* Constant factors and offsets may follow the branching part (0.5 * (x * (1 + tanh)):
     * extend the region by such nodes while it matches nothing. */
    region ext = *r;
    const char *ext_exit = *exit_name;
    size_t ext_pos = *pos;
    for (int extra = 0; extra < 4 && m == -1 && ext.n < 64; extra++) {
        size_t at;
        const Onnx__NodeProto *n = scalar_consumer(im, ext_exit, ext_pos, &at);
        if (n == NULL) break;
        ext.nodes[ext.n++] = n;
        ext_exit = n->output[0];
        ext_pos = at + 1;
        const int me = match_region(im, &ext, entry);
        if (me >= 0 || me == -2) {
            m = me;
            *r = ext;
            *exit_name = ext_exit;
            *pos = ext_pos;
        }
    }
    if (m == -3)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, first,
                         "subgraph of %zu nodes (%s) with non-scalar "
                         "constants or several inputs: not a recognisable activation",
                         r->n, ops);
    if (m == -2)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, first,
                         "subgraph (%s) computes the exact (erf) "
                         "GELU; the library's GELU is the tanh approximation: export with "
                         "nn.GELU(approximate='tanh')",
                         ops);
    if (m == -1)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, first,
                         "subgraph of %zu nodes (%s) computes no "
                         "supported activation (recognised: GELU tanh form, SiLU)",
                         r->n, ops);
    *act = m;
    return BP_OK;
}

/* ---- mapping one node onto planned steps ---- */

static bp_status add_act(importer *im, const Onnx__NodeProto *n, int act, double param)
{
    step *s = new_step(im, S_ACT, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->act = act;
    s->act_param = param;
    return BP_OK;
}

static bp_status map_gemm(importer *im, const Onnx__NodeProto *n, const bpx_value *x)
{
    static const char *const known[] = {"alpha", "beta", "transA", "transB", NULL};
    BP_CHECK(check_attrs(n, known));
    if (attr_i(n, "transA", 0) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'transA' = 1 is not supported");
    if (x->rank != 2 || strcmp(n->input[0], x->name) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input A must be the [N x K] data (rank %zu)",
                         x->rank);
    const bpx_tensor *w = in_const(im, n, 1);
    if (w == NULL || w->rank != 2 || w->type != BPX_F32)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input B must be a constant float matrix");
    const int tb = attr_i(n, "transB", 0) != 0;
    const size_t out = (size_t)(tb ? w->dims[0] : w->dims[1]),
                 in = (size_t)(tb ? w->dims[1] : w->dims[0]);
    if (in != (size_t)x->dims[1])
        return NODE_FAIL(BP_ERR_FORMAT, n, "B is %lldx%lld for %zu inputs", (long long)w->dims[0],
                         (long long)w->dims[1], (size_t)x->dims[1]);
    const double alpha = attr_f(n, "alpha", 1.0), beta = attr_f(n, "beta", 1.0);
    const bpx_tensor *c = in_const(im, n, 2);
    if (n->n_input > 2 && n->input[2][0] != '\0' && c == NULL)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input C must be a constant");
    if (c != NULL && !(c->count == out || c->count == 1))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input C has %zu elements: only a bias of %zu "
                         "(or 1) broadcast over rows is supported",
                         c->count, out);
    if (c != NULL && c->type != BPX_F32)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input C must be float");
    step *s = new_step(im, S_DENSE, n);
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
    core_tags(x, core);
    /* [N x K] rows, or sequences [N x T x K] / [T x N x K] (one matrix for every step) */
    const int seq = x->rank == 3 && (strcmp(core, "NTF") == 0 || strcmp(core, "TNF") == 0);
    if ((x->rank != 2 && !seq) || strcmp(n->input[0], x->name) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "only [N x K] data (or sequences [N x T x K]) times a constant "
                         "[K x M] matrix is supported (data rank %zu)",
                         x->rank);
    const int64_t k_in = x->dims[x->rank - 1];
    const bpx_tensor *w = in_const(im, n, 1);
    if (w == NULL || w->rank != 2 || w->type != BPX_F32 || w->dims[0] != k_in)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input B must be a constant float [%lld x M] "
                         "matrix",
                         (long long)k_in);
    const size_t in = (size_t)w->dims[0], out = (size_t)w->dims[1];
    step *s = new_step(im, S_DENSE, n);
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
    const bpx_tensor *c = in_const(im, n, (size_t)other);
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
    const Onnx__AttributeProto *a = attr_of(n, "auto_pad");
    if (a != NULL && a->has_s && a->s.len > 0 && !auto_pad_is(n, "NOTSET") &&
        !auto_pad_is(n, "VALID") && !auto_pad_same(n))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'auto_pad' = %.*s is not supported",
                         (int)a->s.len, (const char *)a->s.data);
    if ((a = attr_of(n, "dilations")) != NULL)
        for (size_t k = 0; k < a->n_ints; k++)
            if (a->ints[k] != 1)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "attribute 'dilations' = %lld: only 1 "
                                 "is supported",
                                 (long long)a->ints[k]);
    if ((a = attr_of(n, "kernel_shape")) != NULL) {
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
    if ((a = attr_of(n, "strides")) != NULL) {
        if (a->n_ints != 2 || a->ints[0] != a->ints[1] || a->ints[0] < 1 || a->ints[0] > 1024)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "attribute 'strides': only equal strides "
                             "of 1 .. 1024 in both directions are supported");
        *stride = (size_t)a->ints[0];
    }
    *pad = 0;
    if ((a = attr_of(n, "pads")) != NULL) {
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
    if (auto_pad_same(n)) {
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
    BP_CHECK(check_attrs(n, known));
    if (attr_i(n, "group", 1) != 1)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'group' = %lld: only group 1 is "
                         "supported",
                         (long long)attr_i(n, "group", 1));
    if (x->rank != 4)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "only 2-D convolutions of [N x C x H x W] data "
                         "are supported (data rank %zu)",
                         x->rank);
    const bpx_tensor *w = in_const(im, n, 1);
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
    const bpx_tensor *b = in_const(im, n, 2);
    if (n->n_input > 2 && n->input[2][0] != '\0' &&
        (b == NULL || b->type != BPX_F32 || b->count != f))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input B must be a constant float [%zu]", f);
    step *s = new_step(im, S_CONV, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->units = f;
    s->kh = kh;
    s->kw = kw;
    s->stride = stride;
    s->pad = pad;
    s->nw = w->count;
    s->nb = f;
    s->w = copy_floats(w->f, w->count);
    s->b = b != NULL ? copy_floats(b->f, f) : calloc(f, sizeof(float));
    if (s->w == NULL || s->b == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    return BP_OK;
}

static bp_status map_pool(importer *im, const Onnx__NodeProto *n, const bpx_value *x, int max)
{
    static const char *const known[] = {"auto_pad",      "ceil_mode",    "count_include_pad",
                                        "dilations",     "kernel_shape", "pads",
                                        "storage_order", "strides",      NULL};
    BP_CHECK(check_attrs(n, known));
    if (x->rank != 4)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "only 2-D pooling of [N x C x H x W] data is "
                         "supported (data rank %zu)",
                         x->rank);
    if (n->n_output > 1 && n->output[1][0] != '\0')
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "output 'Indices' is not supported");
    if (attr_i(n, "storage_order", 0) != 0)
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
    if (attr_i(n, "ceil_mode", 0) != 0) {
        /* ceil_mode changes nothing when the windows tile the input exactly. */
        if (((size_t)x->dims[2] - kh) % stride != 0 || ((size_t)x->dims[3] - kh) % stride != 0)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "attribute 'ceil_mode' = 1 with windows "
                             "that do not tile the %lldx%lld input",
                             (long long)x->dims[2], (long long)x->dims[3]);
    }
    if ((size_t)x->dims[2] < kh || (size_t)x->dims[3] < kh)
        return NODE_FAIL(BP_ERR_FORMAT, n, "window %zu larger than the input", kh);
    step *s = new_step(im, max ? S_MAXPOOL : S_AVGPOOL, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->kh = kh;
    s->stride = stride;
    return BP_OK;
}

static bp_status map_bn(importer *im, const Onnx__NodeProto *n, const bpx_value *x)
{
    static const char *const known[] = {"epsilon", "momentum", "training_mode", "spatial", NULL};
    BP_CHECK(check_attrs(n, known));
    if (attr_i(n, "training_mode", 0) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'training_mode' = 1: only the "
                         "inference form is supported");
    if (attr_i(n, "spatial", 1) != 1)
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
        t[k] = in_const(im, n, k + 1);
        if (t[k] == NULL || t[k]->type != BPX_F32 || t[k]->count != c)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input '%s' must be a constant float [%zu]",
                             names[k], c);
    }
    const double eps = attr_f(n, "epsilon", 1e-5), mom = attr_f(n, "momentum", 0.9);
    if (!(eps >= 1e-12 && eps <= 1.0))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'epsilon' = %g outside [1e-12, 1]", eps);
    if (!(mom >= 0.0 && mom <= 1.0))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'momentum' = %g outside [0, 1]", mom);
    step *s = new_step(im, S_BN, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->eps = eps;
    s->momentum = mom;
    s->nw = s->nb = c;
    s->nstate = 2 * c;
    s->w = copy_floats(t[0]->f, c);
    s->b = copy_floats(t[1]->f, c);
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
    BP_CHECK(check_attrs(n, known));
    int64_t axis = attr_i(n, "axis", im->gr.opset >= 13 ? -1 : 1);
    if (axis < 0) axis += (int64_t)x->rank;
    if (axis < 1 || axis >= (int64_t)x->rank)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "axis %lld: the batch axis cannot be normalised",
                         (long long)attr_i(n, "axis", im->gr.opset >= 13 ? -1 : 1));
    char core[BPX_MAX_RANK + 1];
    core_tags(x, core);
    if (x->tag[axis] == 'F' && axis + 1 == (int64_t)x->rank &&
        (strcmp(core, "NTF") == 0 || strcmp(core, "TNF") == 0))
        return add_act(im, n, BP_ACT_SOFTMAX, -1.0); /* per step of a sequence */
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
                         (long long)attr_i(n, "axis", im->gr.opset >= 13 ? -1 : 1));
    return add_act(im, n, BP_ACT_SOFTMAX, -1.0);
}

/* 1 when the optional input @p k of @p n is absent or all zeros (a constant, or a constant
 * repeated over the batch as PyTorch builds an RNN's initial state). */
static int zero_or_absent(importer *im, const Onnx__NodeProto *n, size_t k)
{
    const bpx_value *v = in_value(im, n, k);
    if (v == NULL) return k >= n->n_input || n->input[k][0] == '\0';
    if (v->bcast) return bpx_is_zero_bcast(v);
    if (!v->is_const) return 0;
    for (size_t j = 0; j < v->t.count; j++)
        if (v->t.type == BPX_F32 ? v->t.f[j] != 0.0f : v->t.i[j] != 0) return 0;
    return 1;
}

/* The string attribute @p name equals @p s. */
static int attr_is(const Onnx__NodeProto *n, const char *name, const char *s)
{
    const Onnx__AttributeProto *a = attr_of(n, name);
    const size_t len = strlen(s);
    return a != NULL && a->has_s && a->s.len == len && memcmp(a->s.data, s, len) == 0;
}

/* RNN, GRU, LSTM -> the recurrent layers (PyTorch's semantics and parameter layout). ONNX
 * orders the gates i, o, f, c (LSTM) and z, r, h (GRU); the library, like PyTorch, i, f, g,
 * o and r, z, n. Y (every step) gives a sequence, Y_h (the last state of each direction,
 * PyTorch's h_n) a flat row: BP_RNN_LAST_STEP. */
static bp_status map_recurrent(importer *im, const Onnx__NodeProto *n, const bpx_value *x,
                               const bpx_value *y)
{
    const char *op = n->op_type;
    const int lstm = op[0] == 'L', gru = op[0] == 'G';
    static const char *const
        known_lstm[] = {"activation_alpha", "activation_beta", "activations", "clip", "direction",
                        "hidden_size",      "input_forget",    "layout",      NULL},
        *const known_gru[] =
            {"activation_alpha", "activation_beta", "activations",         "clip", "direction",
             "hidden_size",      "layout",          "linear_before_reset", NULL},
        *const known_rnn[] = {"activation_alpha", "activation_beta", "activations", "clip",
                              "direction",        "hidden_size",     "layout",      NULL};
    BP_CHECK(check_attrs(n, lstm ? known_lstm : gru ? known_gru : known_rnn));
    static const char *const unsupported[] = {"clip", "activation_alpha", "activation_beta"};
    for (int k = 0; k < 3; k++)
        if (attr_of(n, unsupported[k]) != NULL)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute '%s' is not supported",
                             unsupported[k]);
    if (attr_i(n, "input_forget", 0) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'input_forget' = 1 is not supported");
    if (gru && attr_i(n, "linear_before_reset", 0) != 1)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'linear_before_reset' = 0: only 1 (PyTorch's nn.GRU, the "
                         "reset gate applied after the hidden matmul) is supported");
    const Onnx__AttributeProto *dir = attr_of(n, "direction");
    const int bidir = attr_is(n, "direction", "bidirectional");
    if (dir != NULL && !bidir && !attr_is(n, "direction", "forward"))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'direction' = %.*s: forward and bidirectional are "
                         "supported",
                         dir->has_s ? (int)dir->s.len : 0,
                         dir->has_s ? (const char *)dir->s.data : "");
    const size_t nd = bidir ? 2 : 1, g = lstm ? 4 : gru ? 3 : 1;
    /* activations: the defaults, or ReLU for RNN (the same in both directions) */
    int act = BP_ACT_TANH;
    const Onnx__AttributeProto *acts = attr_of(n, "activations");
    if (acts != NULL) {
        static const char *const def_lstm[] = {"Sigmoid", "Tanh", "Tanh"}, *const def_gru[] = {
                                                                               "Sigmoid", "Tanh"};
        const size_t per = lstm ? 3 : gru ? 2 : 1;
        int ok = acts->n_strings == per * nd;
        for (size_t k = 0; ok && k < acts->n_strings; k++) {
            const ProtobufCBinaryData *a = &acts->strings[k];
            const char *want = lstm ? def_lstm[k % 3] : gru ? def_gru[k % 2] : NULL;
            if (want == NULL) {
                const int relu = a->len == 4 && memcmp(a->data, "Relu", 4) == 0;
                const int tanh_ = a->len == 4 && memcmp(a->data, "Tanh", 4) == 0;
                if (!relu && !tanh_) ok = 0;
                if (k == 0) act = relu ? BP_ACT_RELU : BP_ACT_TANH;
                if ((relu ? BP_ACT_RELU : BP_ACT_TANH) != act) ok = 0;
            } else if (a->len != strlen(want) || memcmp(a->data, want, a->len) != 0) {
                ok = 0;
            }
        }
        if (!ok)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "attribute 'activations': only %s (per direction) is supported",
                             lstm  ? "Sigmoid, Tanh, Tanh"
                             : gru ? "Sigmoid, Tanh"
                                   : "Tanh or Relu");
    }
    const int64_t layout = attr_i(n, "layout", 0);
    if (strcmp(n->input[0], x->name) != 0 || x->rank != 3 ||
        strcmp(x->tag, layout ? "NTF" : "TNF") != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input X has the layout %s (N batch, T steps, F features; a graph "
                         "input's first axis is its batch): layout %lld needs %s data",
                         x->tag, (long long)layout, layout ? "[N x T x F]" : "[T x N x F]");
    const size_t steps = (size_t)x->dims[layout ? 1 : 0], f = (size_t)x->dims[2];
    const int64_t hid = attr_i(n, "hidden_size", 0);
    const bpx_tensor *w = in_const(im, n, 1), *r = in_const(im, n, 2), *b = in_const(im, n, 3);
    if (hid < 1 || hid > (1 << 24))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'hidden_size' missing or out of range");
    const size_t h = (size_t)hid, gh = g * h;
    if (w == NULL || w->type != BPX_F32 || w->rank != 3 || (size_t)w->dims[0] != nd ||
        (size_t)w->dims[1] != gh || (size_t)w->dims[2] != f)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input W must be a constant float [%zu x %zu x %zu]", nd, gh, f);
    if (r == NULL || r->type != BPX_F32 || r->rank != 3 || (size_t)r->dims[0] != nd ||
        (size_t)r->dims[1] != gh || (size_t)r->dims[2] != h)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input R must be a constant float [%zu x %zu x %zu]", nd, gh, h);
    if (n->n_input > 3 && n->input[3][0] != '\0' &&
        (b == NULL || b->type != BPX_F32 || b->rank != 2 || (size_t)b->dims[0] != nd ||
         (size_t)b->dims[1] != 2 * gh))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "input B must be a constant float [%zu x %zu]", nd,
                         2 * gh);
    if (n->n_input > 4 && n->input[4][0] != '\0')
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input 'sequence_lens' is not supported (every row has all %zu steps)",
                         steps);
    static const char *const state_names[] = {"initial_h", "initial_c", "P"};
    for (size_t k = 5; k < n->n_input && k < 8; k++)
        if (!zero_or_absent(im, n, k))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "input '%s' is not zero: only a zero initial state (none) %s",
                             state_names[k - 5],
                             k == 7 ? "and no peepholes are supported" : "is supported");
    if (n->n_input > 8) return NODE_FAIL(BP_ERR_FORMAT, n, "more than 8 inputs");
    int flags = bidir ? BP_RNN_BIDIRECTIONAL : 0;
    if (strcmp(y->name, n->output[0]) != 0) {
        if (n->n_output > 2 && strcmp(y->name, n->output[2]) == 0)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "output Y_c (the cell state) is not supported: use Y or Y_h");
        flags |= BP_RNN_LAST_STEP; /* Y_h */
    }
    step *s = new_step(im, lstm ? S_LSTM : gru ? S_GRU : S_RNN, n);
    if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    s->units = h;
    s->act = act;
    s->flags = flags;
    s->nw = nd * gh * (f + h);
    s->nb = nd * 2 * gh;
    s->w = malloc(s->nw * sizeof(float));
    s->b = calloc(s->nb, sizeof(float));
    if (s->w == NULL || s->b == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
    /* the ONNX gate block holding each of the library's (PyTorch's) gates */
    static const size_t lstm_gate[4] = {0, 2, 3, 1}, gru_gate[3] = {1, 0, 2}, rnn_gate[1] = {0};
    const size_t *gate = lstm ? lstm_gate : gru ? gru_gate : rnn_gate;
    float *wd = s->w, *bd = s->b;
    for (size_t d = 0; d < nd; d++) {
        for (size_t q = 0; q < g; q++) /* W_ih [G*H x F] */
            memcpy(wd + q * h * f, w->f + (d * gh + gate[q] * h) * f, h * f * sizeof(float));
        wd += gh * f;
        for (size_t q = 0; q < g; q++) /* W_hh [G*H x H] */
            memcpy(wd + q * h * h, r->f + (d * gh + gate[q] * h) * h, h * h * sizeof(float));
        wd += gh * h;
        if (b != NULL)
            for (size_t part = 0; part < 2; part++) /* b_ih, b_hh */
                for (size_t q = 0; q < g; q++)
                    memcpy(bd + part * gh + q * h, b->f + d * 2 * gh + part * gh + gate[q] * h,
                           h * sizeof(float));
        bd += 2 * gh;
    }
    return BP_OK;
}

/* Gather: an embedding (rows of a constant table picked by the integer input), the last
 * step of a recurrent layer's sequence (PyTorch's y[:, -1]: BP_RNN_LAST_STEP), or picking
 * the one direction of Y_h. */
static bp_status map_gather(importer *im, const Onnx__NodeProto *n, const bpx_value *x,
                            const bpx_value *y)
{
    static const char *const known[] = {"axis", NULL};
    BP_CHECK(check_attrs(n, known));
    const bpx_tensor *table = in_const(im, n, 0);
    if (table != NULL) {
        if (!im->int_input || strcmp(x->name, im->input_name) != 0 || im->nsteps != 0 ||
            attr_i(n, "axis", 0) != 0)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "a Gather from a constant table is supported as the first layer "
                             "(an embedding) on the integer graph input [N x T], axis 0");
        if (table->rank != 2 || table->type != BPX_F32 || table->dims[0] < 1 || table->dims[1] < 1)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "input 'data' must be a constant float table [V x E]");
        step *s = new_step(im, S_EMBED, n);
        if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        s->vocab = (size_t)table->dims[0];
        s->units = (size_t)table->dims[1];
        s->nw = table->count;
        s->w = copy_floats(table->f, table->count);
        return s->w != NULL ? BP_OK : bpx_fail(BP_ERR_NOMEM, "out of memory");
    }
    const bpx_tensor *idx = in_const(im, n, 1);
    int64_t axis = attr_i(n, "axis", 0);
    if (axis < 0) axis += (int64_t)x->rank;
    if (idx == NULL || idx->type != BPX_I64 || idx->count != 1 || axis < 0 ||
        axis >= (int64_t)x->rank || !y->has_shape)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "only one constant index along one axis of the data is supported");
    const int64_t len = x->dims[axis];
    const int64_t i = idx->i[0] < 0 ? idx->i[0] + len : idx->i[0];
    const char tag = x->tag[axis];
    if (len == 1 && i == 0) return BP_OK; /* an axis of one element */
    step *prev = im->nsteps > 0 ? &im->steps[im->nsteps - 1] : NULL;
    const int recurrent =
        prev != NULL && (prev->kind == S_RNN || prev->kind == S_LSTM || prev->kind == S_GRU);
    if (tag == 'T' && i == len - 1 && recurrent && !(prev->flags & BP_RNN_LAST_STEP)) {
        if (prev->flags & BP_RNN_BIDIRECTIONAL)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "the last step of a bidirectional layer's output (the backward "
                             "direction's first step) is not supported: take Y_h (PyTorch's "
                             "h_n), which the library's last-step output matches");
        prev->flags |= BP_RNN_LAST_STEP;
        prev->out_width = value_row(y);
        return BP_OK;
    }
    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                     "attribute 'axis' = %lld, index %lld: only the last step (index -1 on the "
                     "time axis) of a recurrent layer's output, right after it, is supported",
                     (long long)axis, (long long)idx->i[0]);
}

static bp_status map_node(importer *im, const Onnx__NodeProto *n, const bpx_value *x,
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
    core_tags(x, core);
    if (!free_ && x->has_shape && !batch_first(core))
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "its input has the layout %s (N batch, T steps, F features, D "
                         "directions): this operator needs batch-first rows",
                         x->tag);
    if (strcmp(op, "Gemm") == 0) return map_gemm(im, n, x);
    if (strcmp(op, "MatMul") == 0) {
        BP_CHECK(check_attrs(n, none));
        return map_matmul(im, n, x);
    }
    if (strcmp(op, "Add") == 0) {
        BP_CHECK(check_attrs(n, none)); /* opsets 1-6: broadcast, axis */
        return map_add_bias(im, n, x);
    }
    if (strcmp(op, "Conv") == 0) return map_conv(im, n, x);
    if (is_recurrent(op)) return map_recurrent(im, n, x, y);
    if (strcmp(op, "Gather") == 0) return map_gather(im, n, x, y);
    if (strcmp(op, "Transpose") == 0 || strcmp(op, "Squeeze") == 0 ||
        strcmp(op, "Unsqueeze") == 0) {
        /* layout only: the layers that read the result check it */
        static const char *const perm[] = {"perm", NULL}, *const axes[] = {"axes", NULL};
        BP_CHECK(check_attrs(n, op[0] == 'T' ? perm : axes));
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
        BP_CHECK(check_attrs(n, none));
        const int act = op[0] == 'R'   ? BP_ACT_RELU
                        : op[0] == 'T' ? BP_ACT_TANH
                        : op[1] == 'i' ? BP_ACT_SIGMOID
                                       : BP_ACT_SOFTPLUS;
        return add_act(im, n, act, -1.0);
    }
    if (strcmp(op, "LeakyRelu") == 0 || strcmp(op, "Elu") == 0) {
        static const char *const known[] = {"alpha", NULL};
        BP_CHECK(check_attrs(n, known));
        const int leaky = op[0] == 'L';
        const double alpha = attr_f(n, "alpha", leaky ? 0.01 : 1.0);
        if (!(alpha >= 0.0 && alpha <= (leaky ? 1.0 : 100.0)))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'alpha' = %g outside [0, %g]", alpha,
                             leaky ? 1.0 : 100.0);
        return add_act(im, n, leaky ? BP_ACT_LEAKY_RELU : BP_ACT_ELU, alpha);
    }
    if (strcmp(op, "GlobalAveragePool") == 0) {
        BP_CHECK(check_attrs(n, none));
        if (x->rank != 4)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "only [N x C x H x W] data is supported");
        return new_step(im, S_GAP, n) != NULL ? BP_OK : bpx_fail(BP_ERR_NOMEM, "out of memory");
    }
    if (strcmp(op, "Flatten") == 0 || strcmp(op, "Reshape") == 0) {
        static const char *const flat[] = {"axis", NULL}, *const reshape[] = {"allowzero", NULL};
        BP_CHECK(check_attrs(n, op[0] == 'F' ? flat : reshape)); /* opsets 1-4: 'shape' */
        if (attr_i(n, "allowzero", 0) != 0) {
            const bpx_tensor *sh = in_const(im, n, 1);
            for (size_t k = 0; sh != NULL && sh->type == BPX_I64 && k < sh->count; k++)
                if (sh->i[k] == 0)
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "attribute 'allowzero' = 1 with a "
                                     "0 in the shape (an empty tensor)");
        }
        char ycore[BPX_MAX_RANK + 1] = "";
        if (y->has_shape) core_tags(y, ycore);
        if (y->has_shape && y->rank != 2 && strchr(y->tag, '?') == NULL &&
            (strcmp(ycore, "NTF") == 0 || strcmp(ycore, "TNF") == 0 || strcmp(ycore, "NF") == 0))
            return BP_OK; /* a recurrent output's directions joined, unit axes: layout only */
        if (!y->has_shape || y->rank != 2 || strcmp(y->tag, "NF") != 0)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "only a reshape of each row to a flat "
                             "[N x features] row is supported");
        /* to [N x features]: a flatten of images and sequences, nothing on flat rows */
        if (!batch_first(core))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "flattens data of layout %s (N batch, T steps, F features, D "
                             "directions): only batch-first rows flatten as the library's do",
                             x->tag);
        if (strchr(x->tag, 'T') == NULL && strchr(x->tag, 'C') == NULL) return BP_OK;
        return new_step(im, S_FLATTEN, n) != NULL ? BP_OK : bpx_fail(BP_ERR_NOMEM, "out of memory");
    }
    if (strcmp(op, "Dropout") == 0) {
        static const char *const known[] = {"ratio", "seed", "is_test", NULL};
        BP_CHECK(check_attrs(n, known));
        for (size_t k = 1; k < n->n_output; k++)
            if (n->output[k][0] != '\0' && bpx_find(&im->gr, n->output[k]) != NULL)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "output 'mask' is not supported");
        const bpx_tensor *tm = in_const(im, n, 2);
        if (n->n_input > 2 && n->input[2][0] != '\0' &&
            (tm == NULL || tm->count != 1 ||
             (tm->type == BPX_I64 ? tm->i[0] != 0 : tm->f[0] != 0.0f)))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "input 'training_mode' must be constant "
                             "false");
        return BP_OK; /* identity at inference */
    }
    if (strcmp(op, "Identity") == 0) {
        BP_CHECK(check_attrs(n, none));
        return BP_OK;
    }
    if (strcmp(op, "Pad") == 0) {
        static const char *const known[] = {"mode", NULL};
        BP_CHECK(check_attrs(n, known));
        const Onnx__AttributeProto *mode = attr_of(n, "mode");
        if (mode != NULL && mode->has_s &&
            !(mode->s.len == 8 && memcmp(mode->s.data, "constant", 8) == 0))
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'mode': only constant padding");
        const bpx_tensor *pads = in_const(im, n, 1);
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
    if (strcmp(op, "Cast") == 0 && attr_i(n, "to", 0) == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return BP_OK;
    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                     "operator '%s' is not supported (docs/onnx.md lists "
                     "the supported operators)",
                     op);
}

/* ---- the chain walk ---- */

/* Uses of value @p name by dynamic nodes after @p from and by the graph outputs. */
static size_t uses(importer *im, const char *name, size_t from)
{
    size_t u = 0;
    const Onnx__GraphProto *g = im->g;
    for (size_t k = from; k < g->n_node; k++) {
        if (!im->dynamic[k]) continue;
        for (size_t j = 0; j < g->node[k]->n_input; j++)
            if (strcmp(g->node[k]->input[j], name) == 0) u++;
    }
    for (size_t k = 0; k < g->n_output; k++)
        if (g->output[k]->name != NULL && strcmp(g->output[k]->name, name) == 0) u++;
    return u;
}

static const Onnx__NodeProto *scalar_consumer(importer *im, const char *name, size_t from,
                                              size_t *at)
{
    if (uses(im, name, from) != 1) return NULL;
    for (size_t k = from; k < im->g->n_node; k++) {
        if (!im->dynamic[k]) continue;
        const Onnx__NodeProto *n = im->g->node[k];
        int reads = 0;
        for (size_t j = 0; j < n->n_input; j++)
            if (strcmp(n->input[j], name) == 0) reads = 1;
        if (!reads) continue;
        if (n->n_input != 2 || !is_elementwise(n->op_type)) return NULL;
        const bpx_tensor *c = in_const(im, n, strcmp(n->input[0], name) == 0 ? 1 : 0);
        if (c == NULL || c->count != 1) return NULL;
        *at = k;
        return n;
    }
    return NULL;
}

static int is_graph_output(importer *im, const char *name)
{
    for (size_t k = 0; k < im->g->n_output; k++)
        if (im->g->output[k]->name != NULL && strcmp(im->g->output[k]->name, name) == 0) return 1;
    return 0;
}

static int take_scaler(importer *im, const Onnx__NodeProto *n, size_t k, const bpx_value *x,
                       const char **exit_name, size_t *last, bp_status *status);

static bp_status walk_chain(importer *im)
{
    const Onnx__GraphProto *g = im->g;
    const char *cur = im->input_name;
    size_t pos = 0; /* nodes before pos are done */
    for (;;) {
        if (is_graph_output(im, cur)) {
            const bpx_value *ov = bpx_find(&im->gr, cur);
            char core[BPX_MAX_RANK + 1] = "";
            if (ov != NULL && ov->has_shape) core_tags(ov, core);
            if (ov != NULL && ov->has_shape && !batch_first(core))
                return bpx_fail(BP_ERR_UNSUPPORTED,
                                "graph output '%s' has the layout %s (N batch, T steps, F "
                                "features, D directions): the batch must come first",
                                cur, ov->tag);
            if (uses(im, cur, pos) != 1)
                return bpx_fail(BP_ERR_UNSUPPORTED,
                                "value '%s' is the graph output and also "
                                "read by other nodes: only chains are supported",
                                cur);
            for (size_t k = pos; k < g->n_node; k++)
                if (im->dynamic[k])
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, g->node[k],
                                     "node after the graph "
                                     "output: only chains are supported");
            return BP_OK;
        }
        /* The region from cur: nodes in order that read region values. */
        region r = {.n = 0};
        const char *vals[65];
        size_t left[65], nv = 1;
        vals[0] = cur;
        left[0] = uses(im, cur, pos);
        if (left[0] == 0)
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "value '%s' is not used and is not the graph "
                            "output: the graph is not a chain",
                            cur);
        const char *exit_name = NULL;
        size_t k;
        for (k = pos; k < g->n_node; k++) {
            if (!im->dynamic[k]) continue;
            const Onnx__NodeProto *n = g->node[k];
            int reads = 0;
            for (size_t j = 0; j < n->n_input; j++)
                for (size_t v = 0; v < nv; v++)
                    if (strcmp(n->input[j], vals[v]) == 0) {
                        reads = 1;
                        left[v]--;
                    }
            if (!reads) {
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "reads data outside the chain (a "
                                 "second graph input or branch): only chains are supported");
            }
            /* Every other input must be constant. */
            for (size_t j = 0; j < n->n_input; j++) {
                const bpx_value *v = bpx_find(&im->gr, n->input[j]);
                int inside = 0;
                for (size_t q = 0; q < nv; q++)
                    if (strcmp(n->input[j], vals[q]) == 0) inside = 1;
                const int state_input =
                    (j == 5 || (j == 6 && strcmp(n->op_type, "LSTM") == 0)) &&
                    (strcmp(n->op_type, "RNN") == 0 || strcmp(n->op_type, "GRU") == 0 ||
                     strcmp(n->op_type, "LSTM") == 0);
                if (!inside && v != NULL && v->bcast && !state_input)
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "input '%s' repeats a constant over the batch (a shape "
                                     "built from the data's batch size): only the initial state "
                                     "of RNN, LSTM and GRU may be one",
                                     n->input[j]);
                if (!inside && v != NULL && !v->is_const && !v->bcast)
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "input '%s' joins another branch: "
                                     "only chains are supported",
                                     n->input[j]);
            }
            if (r.n == 64 || nv == 65)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "subgraph too large to be an "
                                 "activation: only chains are supported");
            r.nodes[r.n++] = n;
            /* A recurrent node continues with the one output used: Y or Y_h. */
            const char *o = n->output[0];
            if (is_recurrent(n->op_type)) {
                size_t used = 0;
                for (size_t j = 0; j < n->n_output && j < 3; j++)
                    if (n->output[j][0] != '\0' && uses(im, n->output[j], k + 1) > 0) {
                        o = n->output[j];
                        used++;
                    }
                if (used > 1)
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "several of its outputs (Y, Y_h, Y_c) are used: only "
                                     "chains are supported");
            }
            vals[nv] = o;
            left[nv] = uses(im, o, k + 1);
            nv++;
            size_t open = 0;
            for (size_t v = 0; v < nv; v++)
                if (left[v] > 0) open++;
            if (open == 1 && left[nv - 1] > 0) {
                exit_name = o;
                break;
            }
            if (open == 0)
                return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                 "the chain ends without reaching the "
                                 "graph output");
        }
        if (exit_name == NULL)
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "value '%s': the graph does not continue as a "
                            "chain to its output",
                            cur);
        const bpx_value *x = bpx_find(&im->gr, cur);
        const bpx_value *y = bpx_find(&im->gr, exit_name);
        if (x == NULL || y == NULL || !x->has_shape)
            return bpx_fail(BP_ERR_UNSUPPORTED, "value '%s': shape unknown", cur);
        const size_t before = im->nsteps;
        bp_status scaler_status = BP_OK;
        size_t last = k;
        if (r.n == 1 && take_scaler(im, r.nodes[0], k, x, &exit_name, &last, &scaler_status)) {
            BP_CHECK(scaler_status);
            k = last;
            y = bpx_find(&im->gr, exit_name);
            if (y == NULL) return bpx_fail(BP_ERR_FORMAT, "value '%s' undefined", exit_name);
        } else if (r.n == 1 && !(strcmp(r.nodes[0]->op_type, "Mul") == 0 ||
                                 strcmp(r.nodes[0]->op_type, "Div") == 0 ||
                                 strcmp(r.nodes[0]->op_type, "Sub") == 0 ||
                                 strcmp(r.nodes[0]->op_type, "Pow") == 0)) {
            const Onnx__NodeProto *n = r.nodes[0];
            for (size_t j = 1; j < n->n_output; j++)
                if (n->output[j][0] != '\0' && uses(im, n->output[j], k + 1) > 0 &&
                    strcmp(n->op_type, "Dropout") != 0 && !is_recurrent(n->op_type))
                    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                                     "output %zu is used: only the first "
                                     "output is supported",
                                     j);
            BP_CHECK(map_node(im, n, x, y));
        } else {
            int act = 0;
            size_t next = k + 1;
            BP_CHECK(classify_region(im, &r, cur, &act, &exit_name, &next));
            BP_CHECK(add_act(im, r.nodes[0], act, -1.0));
            k = next - 1;
            y = bpx_find(&im->gr, exit_name);
            if (y == NULL) return bpx_fail(BP_ERR_FORMAT, "value '%s' undefined", exit_name);
        }
        for (size_t q = before; q < im->nsteps; q++)
            im->steps[q].out_width = y->has_shape ? value_row(y) : 0;
        cur = exit_name;
        pos = k + 1;
    }
}

/* ---- scalers: per-feature affine nodes at the ends of the chain ---- */

/* The constant input of the binary node @p n other than the data @p data, when it holds one
 * float per feature of rows of shape @p x (broadcasting over the batch: [W], the row's own
 * shape, or that shape with a leading 1). */
static const bpx_tensor *per_feature(importer *im, const Onnx__NodeProto *n, const char *data,
                                     const bpx_value *x)
{
    if (n->n_input != 2 || strcmp(n->input[0], data) != 0) return NULL;
    const bpx_tensor *c = in_const(im, n, 1);
    if (c == NULL || c->type != BPX_F32 || !x->has_shape) return NULL;
    const size_t width = row_size(x->rank, x->dims);
    if (c->count != width) return NULL;
    if (c->rank == 1) return c->dims[0] == (int64_t)width ? c : NULL;
    const size_t lead = c->rank == x->rank ? 1 : 0;
    if (c->rank + 1 - lead != x->rank || (lead && c->dims[0] != 1)) return NULL;
    for (size_t k = 1; k < x->rank; k++)
        if (c->dims[k - 1 + lead] != x->dims[k]) return NULL;
    return c;
}

/* The one dynamic node after @p k that reads @p name as its first input, when @p name has
 * no other use. */
static const Onnx__NodeProto *sole_consumer(importer *im, const char *name, size_t k, size_t *at)
{
    if (uses(im, name, k + 1) != 1) return NULL;
    for (size_t j = k + 1; j < im->g->n_node; j++) {
        if (!im->dynamic[j]) continue;
        const Onnx__NodeProto *n = im->g->node[j];
        for (size_t q = 0; q < n->n_input; q++)
            if (strcmp(n->input[q], name) == 0) {
                *at = j;
                return q == 0 ? n : NULL;
            }
    }
    return NULL;
}

/* Node @p n (at index @p k) reading @p cur: when it and the node after it are a scaler --
 * Sub (offset) then Mul (scale) or Div (1 / scale) reading the graph input before any
 * layer, or Div (scale) or Mul (1 / scale) then Add (offset) writing the graph output --
 * record it, set *exit_name and *last to the pair's output and index, and return 1. */
static int take_scaler(importer *im, const Onnx__NodeProto *n, size_t k, const bpx_value *x,
                       const char **exit_name, size_t *last, bp_status *status)
{
    const char *op = n->op_type;
    const int input_side = strcmp(op, "Sub") == 0 && im->nsteps == 0 && im->scaler[0][0] == NULL &&
                           strcmp(x->name, im->input_name) == 0;
    const int target_side =
        (strcmp(op, "Div") == 0 || strcmp(op, "Mul") == 0) && im->scaler[1][0] == NULL;
    if (!input_side && !target_side) return 0;
    const bpx_tensor *c1 = per_feature(im, n, x->name, x);
    size_t at = 0;
    const Onnx__NodeProto *n2 = c1 != NULL ? sole_consumer(im, n->output[0], k, &at) : NULL;
    if (n2 == NULL || n->n_attribute > 0 || n2->n_attribute > 0) return 0;
    const char *op2 = n2->op_type;
    if (input_side ? !(strcmp(op2, "Mul") == 0 || strcmp(op2, "Div") == 0)
                   : !(strcmp(op2, "Add") == 0 && is_graph_output(im, n2->output[0])))
        return 0;
    const bpx_tensor *c2 = per_feature(im, n2, n->output[0], x);
    if (c2 == NULL) return 0;
    /* offset, then the scale and the node that holds it */
    const bpx_tensor *off = input_side ? c1 : c2, *sc = input_side ? c2 : c1;
    const int direct = input_side ? strcmp(op2, "Mul") == 0 : strcmp(op, "Div") == 0;
    const int part = input_side ? 0 : 1;
    const size_t width = c1->count;
    float *o = copy_floats(off->f, width), *f = copy_floats(sc->f, width);
    if (o == NULL || f == NULL) {
        free(o);
        free(f);
        *status = bpx_fail(BP_ERR_NOMEM, "out of memory");
        return 1;
    }
    /* bp_scaler_apply: (v - offset) * scale; bp_scaler_invert: v / scale + offset. A Mul at
     * the target side or a Div at the input side holds 1 / scale. */
    if (!direct)
        for (size_t j = 0; j < width; j++)
            f[j] = 1.0f / f[j];
    im->scaler[part][0] = o;
    im->scaler[part][1] = f;
    im->scaler_width[part] = width;
    *exit_name = n2->output[0];
    *last = at;
    *status = BP_OK;
    return 1;
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
        s = bp_net_create(&net, row_size(im->in_rank, d), seed);
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
                known = infer_shape(im, n, x, &rank, dims, tags) == 0;
            else if (x->has_shape && j <= 2 && is_recurrent(n->op_type))
                known = infer_recurrent(n, x, j, &rank, dims, tags) == 0;
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
    BP_CHECK(walk_chain(im));
    for (size_t k = 0; k < im->nsteps; k++)
        if (im->steps[k].bias_open) im->steps[k].bias_open = 0; /* MatMul without bias */
    fuse(im);
    if (im->nsteps == 0) {
        /* Only Identity/Dropout: a net needs a layer, the identity activation is one. */
        step *st = new_step(im, S_ACT, g->node[0]);
        if (st == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        st->out_width = row_size(im->in_rank, im->in_dims);
    }
    /* Bound what the net will allocate by what the file holds: parameters come from the
     * file's tensors; the layers' per-row outputs (which the net allocates for every row of
     * a batch) may total 2^22 floats plus 64 per byte of the file. */
    size_t per_row = row_size(im->in_rank, im->in_dims);
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
