/*
 * onnx_fold_ops.c -- constant folding (import): the operators with more arithmetic than a
 * copy: elementwise binary arithmetic, Slice, Expand, Transpose, Equal and Where, Reshape.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_fold.h"

/* Elementwise binary arithmetic with numpy broadcasting restricted to equal shapes or one
 * operand of a single element. */
bp_status bpx_fold_binary(bpx_graph *gr, const Onnx__NodeProto *n, const bpx_value *a,
                          const bpx_value *b, int *done)
{
    const bpx_tensor *x = &a->t, *y = &b->t;
    const bpx_tensor *shape = x->count >= y->count ? x : y;
    if (!(x->count == 1 || y->count == 1 || x->count == y->count)) return BP_OK;
    const int type = (x->type == BPX_F32 || y->type == BPX_F32) ? BPX_F32 : BPX_I64;
    for (size_t k = 0; k < x->count; k++)
        if (x->type == BPX_I64 && x->i[k] == BPX_BATCH) return BP_OK;
    for (size_t k = 0; k < y->count; k++)
        if (y->type == BPX_I64 && y->i[k] == BPX_BATCH) return BP_OK;
    size_t rank = x->rank >= y->rank ? x->rank : y->rank;
    if (x->count == y->count) rank = shape->rank;
    int64_t dims[BPX_MAX_RANK] = {0};
    memcpy(dims, shape->dims, shape->rank * sizeof(int64_t));
    if (rank > shape->rank) rank = shape->rank;
    bpx_tensor t;
    BP_CHECK(bpx_tensor_new(&t, type, rank, dims));
    const char *op = n->op_type;
    for (size_t k = 0; k < t.count; k++) {
        const double p = bpx_fold_get_num(x, x->count == 1 ? 0 : k),
                     q = bpx_fold_get_num(y, y->count == 1 ? 0 : k);
        double r;
        if (strcmp(op, "Add") == 0) {
            r = p + q;
        } else if (strcmp(op, "Sub") == 0) {
            r = p - q;
        } else if (strcmp(op, "Mul") == 0) {
            r = p * q;
        } else {
            if (type == BPX_I64 && q == 0.0) {
                bpx_tensor_free(&t);
                return bpx_fail(BP_ERR_FORMAT, "node '%s' (Div): integer division by zero",
                                bpx_node_name(n));
            }
            r = type == BPX_I64 ? trunc(p / q) : p / q;
        }
        if (type == BPX_F32) {
            t.f[k] = (float)r;
        } else {
            if (!(fabs(r) < 9.0e15)) {
                bpx_tensor_free(&t);
                return BP_OK; /* leave it: out of the exact range */
            }
            t.i[k] = (int64_t)r;
        }
    }
    *done = 1;
    return bpx_fold_out_const(gr, n, &t);
}

/* Copy element @p from of @p src to element @p to of @p dst (same type). */
void bpx_fold_copy_elem(bpx_tensor *dst, size_t to, const bpx_tensor *src, size_t from)
{
    if (src->type == BPX_F32)
        dst->f[to] = src->f[from];
    else
        dst->i[to] = src->i[from];
}

/* Row-major strides of @p t. */
static void strides_of(const bpx_tensor *t, size_t *st)
{
    size_t s = 1;
    for (size_t k = t->rank; k-- > 0;) {
        st[k] = s;
        s *= (size_t)t->dims[k];
    }
}

/* Slice (opset 10+: starts, ends, axes, steps as inputs; 1-9: attributes) of a constant or
 * batch-repeated value @p xv over any axes but the batch axis. */
bp_status bpx_fold_slice(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, int *done)
{
    const bpx_value *xv = in[0];
    const bpx_tensor *x = &xv->t;
    int64_t starts[BPX_MAX_RANK], ends[BPX_MAX_RANK], axes[BPX_MAX_RANK], steps[BPX_MAX_RANK];
    size_t ns = 0, ne = 0, na = 0, nst = 0;
    if (gr->opset >= 10) {
        if (n->n_input < 3 || bpx_fold_const_ints(in[1], starts, BPX_MAX_RANK, &ns) != 0 ||
            bpx_fold_const_ints(in[2], ends, BPX_MAX_RANK, &ne) != 0)
            return bpx_fold_decline(gr,
                                    "inputs 'starts' and 'ends' must be constant integer lists");
        if (n->n_input > 3 && in[3] != NULL &&
            bpx_fold_const_ints(in[3], axes, BPX_MAX_RANK, &na) != 0)
            return bpx_fold_decline(gr, "input 'axes' must be a constant integer list");
        if (n->n_input > 4 && in[4] != NULL &&
            bpx_fold_const_ints(in[4], steps, BPX_MAX_RANK, &nst) != 0)
            return bpx_fold_decline(gr, "input 'steps' must be a constant integer list");
    } else if (bpx_fold_attr_ints(n, "starts", starts, BPX_MAX_RANK, &ns) != 0 ||
               bpx_fold_attr_ints(n, "ends", ends, BPX_MAX_RANK, &ne) != 0 ||
               (bpx_attr(n, "axes") != NULL &&
                bpx_fold_attr_ints(n, "axes", axes, BPX_MAX_RANK, &na) != 0)) {
        return bpx_fold_decline(
            gr, "attributes 'starts', 'ends', 'axes' must be lists of at most %d", BPX_MAX_RANK);
    }
    if (ns != ne || (na != 0 && na != ns) || (nst != 0 && nst != ns) || ns == 0)
        return bpx_fail(BP_ERR_FORMAT,
                        "node '%s' (Slice): starts, ends, axes and steps differ "
                        "in length",
                        bpx_node_name(n));
    int64_t lo[BPX_MAX_RANK], step[BPX_MAX_RANK], dims[BPX_MAX_RANK];
    unsigned char seen[BPX_MAX_RANK] = {0};
    for (size_t k = 0; k < x->rank; k++) {
        lo[k] = 0;
        step[k] = 1;
        dims[k] = x->dims[k];
    }
    for (size_t j = 0; j < ns; j++) {
        int64_t a = na ? axes[j] : (int64_t)j;
        if (a < 0) a += (int64_t)x->rank;
        if (a < 0 || a >= (int64_t)x->rank || seen[a])
            return bpx_fail(BP_ERR_FORMAT, "node '%s' (Slice): axis %lld out of range or repeated",
                            bpx_node_name(n), (long long)(na ? axes[j] : (int64_t)j));
        seen[a] = 1;
        const int64_t st = nst ? steps[j] : 1;
        if (st == 0) return bpx_fail(BP_ERR_FORMAT, "node '%s' (Slice): step 0", bpx_node_name(n));
        if (xv->bcast && (size_t)a == xv->bcast_axis) {
            /* The batch axis: only all of it (start 0, end past any batch, step 1). */
            if (starts[j] != 0 || ends[j] < INT32_MAX || st != 1)
                return bpx_fold_decline(
                    gr,
                    "slices axis %lld, the batch axis of input '%s' (its size is "
                    "left open at import)",
                    (long long)a, xv->name);
            continue;
        }
        const int64_t len = x->dims[a];
        int64_t b = starts[j], e = ends[j];
        if (b < 0) b += len;
        if (e < 0) e += len;
        if (st > 0) {
            b = b < 0 ? 0 : (b > len ? len : b);
            e = e < 0 ? 0 : (e > len ? len : e);
            dims[a] = e > b ? (e - b - 1) / st + 1 : 0; /* no overflow for any step */
        } else {
            b = b < 0 ? -1 : (b > len - 1 ? len - 1 : b);
            e = e < -1 ? -1 : (e > len - 1 ? len - 1 : e);
            const uint64_t mag = (uint64_t)(-(st + 1)) + 1; /* |st|, also for INT64_MIN */
            dims[a] = b > e ? (int64_t)((uint64_t)(b - e - 1) / mag) + 1 : 0;
        }
        lo[a] = b;
        step[a] = st;
    }
    const size_t count = bpx_fold_capped_count(x->rank, dims);
    if (count == 0)
        return bpx_fold_decline(gr, "the result would exceed %d elements", BPX_MAX_FOLD_ELEMS);
    bpx_tensor t;
    BP_CHECK(bpx_tensor_new(&t, x->type, x->rank, dims));
    size_t xs[BPX_MAX_RANK], idx[BPX_MAX_RANK] = {0};
    strides_of(x, xs);
    for (size_t k = 0; k < t.count; k++) {
        size_t from = 0;
        for (size_t a = 0; a < x->rank; a++)
            from += (size_t)(lo[a] + (int64_t)idx[a] * step[a]) * xs[a];
        bpx_fold_copy_elem(&t, k, x, from);
        for (size_t a = x->rank; a-- > 0;) /* next multi-index */
            if (++idx[a] < (size_t)dims[a])
                break;
            else
                idx[a] = 0;
    }
    *done = 1;
    return xv->bcast ? bpx_fold_out_bcast(gr, n, &t, xv->bcast_axis)
                     : bpx_fold_out_const(gr, n, &t);
}

/* Expand @p xv (constant or batch-repeated) to the shape @p sh (numpy broadcasting); a
 * BPX_BATCH entry makes the result batch-repeated along that axis. */
bp_status bpx_fold_expand(bpx_graph *gr, const Onnx__NodeProto *n, const bpx_value *xv,
                          const bpx_value *shv, int *done)
{
    const bpx_tensor *x = &xv->t;
    int64_t sh[BPX_MAX_RANK];
    size_t nsh = 0;
    if (bpx_fold_const_ints(shv, sh, BPX_MAX_RANK, &nsh) != 0)
        return bpx_fold_decline(gr, "input 'shape' must be a constant list of at most %d integers",
                                BPX_MAX_RANK);
    const size_t rank = nsh > x->rank ? nsh : x->rank;
    int64_t dims[BPX_MAX_RANK];
    int batch_axis = -1;
    for (size_t k = 0; k < rank; k++) {
        const size_t off_x = rank - x->rank, off_s = rank - nsh;
        const int64_t xd = k >= off_x ? x->dims[k - off_x] : 1;
        const int64_t sd = k >= off_s ? sh[k - off_s] : 1;
        const int x_batch = xv->bcast && k >= off_x && k - off_x == xv->bcast_axis;
        if (sd == BPX_BATCH || x_batch) {
            if (batch_axis >= 0)
                return bpx_fold_decline(gr, "the shape holds the batch size twice");
            if (sd != BPX_BATCH && sd != 1)
                return bpx_fold_decline(gr, "expands the batch axis of input '%s' to %lld",
                                        xv->name, (long long)sd);
            if (xd != 1)
                return bpx_fail(BP_ERR_FORMAT,
                                "node '%s' (Expand): dimension %lld does not "
                                "broadcast to the batch",
                                bpx_node_name(n), (long long)xd);
            batch_axis = (int)k;
            dims[k] = 1;
            continue;
        }
        if (sd < 0 || (xd != 1 && sd != 1 && sd != xd))
            return bpx_fail(BP_ERR_FORMAT,
                            "node '%s' (Expand): dimension %lld does not "
                            "broadcast to %lld",
                            bpx_node_name(n), (long long)xd, (long long)sd);
        dims[k] = xd == 1 ? sd : xd;
    }
    if (bpx_fold_capped_count(rank, dims) == 0)
        return bpx_fold_decline(gr, "the result would exceed %d elements", BPX_MAX_FOLD_ELEMS);
    bpx_tensor t;
    BP_CHECK(bpx_tensor_new(&t, x->type, rank, dims));
    size_t xs[BPX_MAX_RANK], idx[BPX_MAX_RANK] = {0};
    strides_of(x, xs);
    for (size_t k = 0; k < t.count; k++) {
        size_t from = 0;
        for (size_t a = rank - x->rank; a < rank; a++) {
            const size_t xa = a - (rank - x->rank);
            if (x->dims[xa] != 1) from += idx[a] * xs[xa];
        }
        bpx_fold_copy_elem(&t, k, x, from);
        for (size_t a = rank; a-- > 0;)
            if (++idx[a] < (size_t)dims[a])
                break;
            else
                idx[a] = 0;
    }
    *done = 1;
    if (batch_axis >= 0) return bpx_fold_out_bcast(gr, n, &t, (size_t)batch_axis);
    return bpx_fold_out_const(gr, n, &t);
}

/* Transpose of a constant or batch-repeated value (the batch axis moves with it). */
bp_status bpx_fold_transpose(bpx_graph *gr, const Onnx__NodeProto *n, const bpx_value *xv,
                             int *done)
{
    const bpx_tensor *x = &xv->t;
    int64_t perm[BPX_MAX_RANK];
    size_t np = 0;
    if (bpx_attr(n, "perm") == NULL) {
        np = x->rank;
        for (size_t k = 0; k < np; k++)
            perm[k] = (int64_t)(np - 1 - k);
    } else if (bpx_fold_attr_ints(n, "perm", perm, BPX_MAX_RANK, &np) != 0 || np != x->rank) {
        return bpx_fail(BP_ERR_FORMAT,
                        "node '%s' (Transpose): attribute 'perm' does not match "
                        "rank %zu",
                        bpx_node_name(n), x->rank);
    }
    unsigned char used[BPX_MAX_RANK] = {0};
    int64_t dims[BPX_MAX_RANK];
    size_t axis = 0;
    for (size_t k = 0; k < np; k++) {
        if (perm[k] < 0 || perm[k] >= (int64_t)np || used[perm[k]])
            return bpx_fail(BP_ERR_FORMAT,
                            "node '%s' (Transpose): attribute 'perm' is not a "
                            "permutation",
                            bpx_node_name(n));
        used[perm[k]] = 1;
        dims[k] = x->dims[perm[k]];
        if (xv->bcast && (size_t)perm[k] == xv->bcast_axis) axis = k;
    }
    bpx_tensor t;
    BP_CHECK(bpx_tensor_new(&t, x->type, np, dims));
    size_t xs[BPX_MAX_RANK], idx[BPX_MAX_RANK] = {0};
    strides_of(x, xs);
    for (size_t k = 0; k < t.count; k++) {
        size_t from = 0;
        for (size_t a = 0; a < np; a++)
            from += idx[a] * xs[perm[a]];
        bpx_fold_copy_elem(&t, k, x, from);
        for (size_t a = np; a-- > 0;)
            if (++idx[a] < (size_t)dims[a])
                break;
            else
                idx[a] = 0;
    }
    *done = 1;
    return xv->bcast ? bpx_fold_out_bcast(gr, n, &t, axis) : bpx_fold_out_const(gr, n, &t);
}

/* Equal and Where on constants (torch writes them around Expand's shape: where(shape == -1,
 * 1, shape)). The batch marker equals itself and no number below 1. */
bp_status bpx_fold_select(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, int *done)
{
    const int where = strcmp(n->op_type, "Where") == 0;
    const size_t nin = where ? 3 : 2;
    if (n->n_input != nin) return bpx_fold_decline(gr, "%zu inputs expected", nin);
    size_t count = 1;
    const bpx_tensor *big = NULL;
    for (size_t k = 0; k < nin; k++) {
        if (in[k] == NULL) return bpx_fold_decline(gr, "an input is missing");
        if (big == NULL || in[k]->t.count > count) {
            count = in[k]->t.count;
            big = &in[k]->t;
        }
    }
    for (size_t k = 0; k < nin; k++)
        if (in[k]->t.count != 1 && in[k]->t.count != count)
            return bpx_fold_decline(gr,
                                    "inputs of %zu and %zu elements (only equal shapes or "
                                    "scalars fold)",
                                    count, in[k]->t.count);
    const bpx_tensor *a = &in[where ? 1 : 0]->t, *b = &in[where ? 2 : 1]->t;
    if (a->type != b->type) return bpx_fold_decline(gr, "inputs of different element types");
    bpx_tensor t;
    BP_CHECK(bpx_tensor_new(&t, where ? a->type : BPX_I64, big->rank, big->dims));
    for (size_t k = 0; k < t.count; k++) {
        const size_t ka = a->count == 1 ? 0 : k, kb = b->count == 1 ? 0 : k;
        if (where) {
            const bpx_tensor *c = &in[0]->t;
            const size_t kc = c->count == 1 ? 0 : k;
            const int cond = c->type == BPX_F32 ? c->f[kc] != 0.0f : c->i[kc] != 0;
            if (c->type == BPX_I64 && c->i[kc] == BPX_BATCH) {
                bpx_tensor_free(&t);
                return bpx_fold_decline(gr, "input 'condition' is the batch size");
            }
            bpx_fold_copy_elem(&t, k, cond ? a : b, cond ? ka : kb);
            continue;
        }
        if (a->type == BPX_F32) {
            t.i[k] = a->f[ka] == b->f[kb];
            continue;
        }
        const int64_t p = a->i[ka], q = b->i[kb];
        if ((p == BPX_BATCH) != (q == BPX_BATCH)) {
            const int64_t other = p == BPX_BATCH ? q : p;
            if (other >= 1) {
                bpx_tensor_free(&t);
                return bpx_fold_decline(gr,
                                        "compares the batch size (left open at import) with %lld",
                                        (long long)other);
            }
            t.i[k] = 0;
        } else {
            t.i[k] = p == q;
        }
    }
    *done = 1;
    return bpx_fold_out_const(gr, n, &t);
}

/* Reshape of a constant (shape arithmetic; 0 copies a dimension, -1 is inferred). */
bp_status bpx_fold_reshape(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, int *done)
{
    const bpx_tensor *x = &in[0]->t;
    int64_t sh[BPX_MAX_RANK];
    size_t nsh = 0;
    if (n->n_input < 2 || bpx_fold_const_ints(in[1], sh, BPX_MAX_RANK, &nsh) != 0)
        return bpx_fold_decline(gr, "input 'shape' must be a constant list of at most %d integers",
                                BPX_MAX_RANK);
    const int allowzero = bpx_fold_attr_int(n, "allowzero", 0) != 0;
    int64_t dims[BPX_MAX_RANK];
    size_t known = 1;
    int infer = -1;
    for (size_t k = 0; k < nsh; k++) {
        int64_t d = sh[k];
        if (d == 0 && !allowzero) {
            if (k >= x->rank)
                return bpx_fail(BP_ERR_FORMAT,
                                "node '%s' (Reshape): 0 beyond "
                                "the input's rank",
                                bpx_node_name(n));
            d = x->dims[k];
        }
        if (d == -1) {
            if (infer >= 0)
                return bpx_fail(BP_ERR_FORMAT, "node '%s' (Reshape): two -1", bpx_node_name(n));
            infer = (int)k;
            dims[k] = 1;
            continue;
        }
        if (d < 0 || d > BPX_MAX_FOLD_ELEMS)
            return bpx_fold_decline(gr, "input 'shape' holds %lld", (long long)sh[k]);
        dims[k] = d;
        known *= (size_t)d;
    }
    if (infer >= 0) {
        if (known == 0 || x->count % known != 0)
            return bpx_fail(BP_ERR_FORMAT,
                            "node '%s' (Reshape): %zu elements do not fill the "
                            "shape",
                            bpx_node_name(n), x->count);
        dims[infer] = (int64_t)(x->count / known);
        known *= (size_t)dims[infer];
    }
    if (known != x->count)
        return bpx_fail(BP_ERR_FORMAT, "node '%s' (Reshape): %zu elements into a shape of %zu",
                        bpx_node_name(n), x->count, known);
    bpx_tensor t;
    BP_CHECK(bpx_tensor_new(&t, x->type, nsh, dims));
    for (size_t k = 0; k < x->count; k++)
        bpx_fold_copy_elem(&t, k, x, k);
    *done = 1;
    return bpx_fold_out_const(gr, n, &t);
}
