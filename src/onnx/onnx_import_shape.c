/*
 * onnx_import_shape.c -- import: the output shapes (and axis tags) of the nodes that read the
 * dynamic data, so that the Shape nodes after them fold.
 */
#include <math.h>
#include <string.h>

#include "onnx_import.h"

/* ---- shape inference for the dynamic nodes (so that Shape nodes after them fold) ---- */

int bpx_auto_pad_is(const Onnx__NodeProto *n, const char *what)
{
    const Onnx__AttributeProto *a = bpx_attr(n, "auto_pad");
    const size_t len = strlen(what);
    return a != NULL && a->has_s && a->s.len == len && memcmp(a->s.data, what, len) == 0;
}

int bpx_auto_pad_same(const Onnx__NodeProto *n)
{
    return bpx_auto_pad_is(n, "SAME_UPPER") || bpx_auto_pad_is(n, "SAME_LOWER");
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
int bpx_infer_recurrent(const Onnx__NodeProto *n, const bpx_value *x, size_t out, size_t *rank,
                        int64_t *dims, char *tags)
{
    const int64_t layout = bpx_attr_i(n, "layout", 0), hidden = bpx_attr_i(n, "hidden_size", 0);
    const Onnx__AttributeProto *dir = bpx_attr_of(n, "direction");
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
        const bpx_tensor *a = bpx_in_const(im, n, 1);
        if (n->n_input < 2 || n->input[1][0] == '\0') return 0;
        if (a == NULL || a->type != BPX_I64 || a->count > BPX_MAX_RANK) return -1;
        if (a->count) memcpy(axes, a->i, a->count * sizeof(int64_t));
        *count = a->count;
        return 0;
    }
    const Onnx__AttributeProto *a = bpx_attr_of(n, "axes");
    if (a == NULL) return 0;
    if (a->n_ints > BPX_MAX_RANK) return -1;
    if (a->n_ints) memcpy(axes, a->ints, a->n_ints * sizeof(int64_t)); /* NULL when empty */
    *count = a->n_ints;
    return 0;
}

int bpx_infer_shape(importer *im, const Onnx__NodeProto *n, const bpx_value *x, size_t *rank,
                    int64_t *dims, char *tags)
{
    const char *op = n->op_type;
    *rank = x->rank;
    memcpy(dims, x->dims, x->rank * sizeof(int64_t));
    memcpy(tags, x->tag, sizeof x->tag);
    if (strcmp(op, "Transpose") == 0) {
        const Onnx__AttributeProto *a = bpx_attr_of(n, "perm");
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
        const bpx_tensor *table = bpx_in_const(im, n, 0);
        if (table != NULL) {
            /* an embedding: the rows of a constant table picked by the data */
            if (table->rank != 2 || x->rank + 1 > BPX_MAX_RANK) return -1;
            dims[x->rank] = table->dims[1];
            tags[x->rank] = 'F';
            *rank = x->rank + 1;
            tags[*rank] = '\0';
            return 0;
        }
        const bpx_tensor *idx = bpx_in_const(im, n, 1);
        int64_t axis = bpx_attr_i(n, "axis", 0);
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
    if (bpx_is_recurrent(op)) return bpx_infer_recurrent(n, x, 0, rank, dims, tags);
    static const char *const same[] = {
        "Relu",     "LeakyRelu",  "Elu",     "Sigmoid",  "Tanh",
        "Softplus", "Softmax",    "Dropout", "Identity", "BatchNormalization",
        "Erf",      "Sqrt",       "Exp",     "Neg",      "Cast",
        "Pow",      "Add",        "Sub",     "Mul",      "Div",
        "Log",      "Reciprocal", "Pad",     NULL};
    for (const char *const *p = same; *p != NULL; p++)
        if (strcmp(op, *p) == 0) return 0;
    if (strcmp(op, "Gemm") == 0 || strcmp(op, "MatMul") == 0) {
        const bpx_tensor *w = bpx_in_const(im, n, 1);
        if (w == NULL || w->rank != 2) return -1;
        const int tb = strcmp(op, "Gemm") == 0 && bpx_attr_i(n, "transB", 0) != 0;
        dims[x->rank - 1] = tb ? w->dims[0] : w->dims[1];
        return 0;
    }
    if (strcmp(op, "Conv") == 0 || strcmp(op, "MaxPool") == 0 || strcmp(op, "AveragePool") == 0) {
        if (x->rank != 4) return -1;
        int64_t k[2], s[2] = {1, 1}, p[4] = {0, 0, 0, 0};
        const Onnx__AttributeProto *a = bpx_attr_of(n, "kernel_shape");
        if (a != NULL && a->n_ints == 2) {
            k[0] = a->ints[0];
            k[1] = a->ints[1];
        } else if (op[0] == 'C') {
            const bpx_tensor *w = bpx_in_const(im, n, 1);
            if (w == NULL || w->rank != 4) return -1;
            k[0] = w->dims[2];
            k[1] = w->dims[3];
        } else {
            return -1;
        }
        if ((a = bpx_attr_of(n, "strides")) != NULL && a->n_ints == 2) {
            s[0] = a->ints[0];
            s[1] = a->ints[1];
        }
        if ((a = bpx_attr_of(n, "pads")) != NULL && a->n_ints == 4)
            for (int j = 0; j < 4; j++)
                p[j] = a->ints[j];
        const int ceil_mode = bpx_attr_i(n, "ceil_mode", 0) != 0;
        if (bpx_auto_pad_same(n)) {
            for (int j = 0; j < 2; j++)
                dims[2 + j] = (x->dims[2 + j] + s[j] - 1) / s[j];
            if (op[0] == 'C') {
                const bpx_tensor *w = bpx_in_const(im, n, 1);
                if (w == NULL || w->rank != 4) return -1;
                dims[1] = w->dims[0];
            }
            return 0;
        }
        if (op[0] == 'C') {
            const bpx_tensor *w = bpx_in_const(im, n, 1);
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
        int64_t axis = bpx_attr_i(n, "axis", 1);
        if (axis < 0) axis += (int64_t)x->rank;
        if (axis != 1 || x->tag[0] != 'N') return -1;
        dims[1] = (int64_t)bpx_row_size(x->rank, x->dims);
        *rank = 2;
        memcpy(tags, "NF", 3);
        return 0;
    }
    if (strcmp(op, "Reshape") == 0 && x->tag[0] != 'N') {
        /* Batch not first (time-major recurrent outputs): 0 copies a dimension (the batch
         * too), -1 takes what is left; exactly one batch axis. */
        const bpx_tensor *sh = bpx_in_const(im, n, 1);
        if (sh == NULL || sh->type != BPX_I64 || sh->rank != 1 || sh->count < 1 ||
            sh->count > BPX_MAX_RANK)
            return -1;
        const size_t total = bpx_value_row(x);
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
        const bpx_tensor *sh = bpx_in_const(im, n, 1);
        if (sh == NULL || sh->type != BPX_I64 || sh->rank != 1 || sh->count < 1 ||
            sh->count > BPX_MAX_RANK)
            return -1;
        const size_t total = bpx_row_size(x->rank, x->dims);
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
        if (bpx_row_size(*rank, dims) != total) return -1;
        reshape_tags(x, *rank, dims, tags);
        return 0;
    }
    return -1;
}
