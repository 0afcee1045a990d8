/*
 * onnx_fold.c -- constant folding and shape propagation before mapping (import).
 *
 * Exporters surround the layers with shape arithmetic: torch.onnx.export writes
 * x.view(x.size(0), -1) as Shape -> Gather -> Unsqueeze -> Concat -> Reshape, and builds
 * constants with Constant, ConstantOfShape and Cast. One pass over the nodes in their
 * (topological) order evaluates every node whose inputs are all constant, and Shape of a
 * dynamic value whose shape is known (its batch dimension becomes the marker BPX_BATCH,
 * which arithmetic refuses), and propagates the shapes of dynamic values through the
 * operators import maps, so that later Shape nodes see them. Folded tensors are small
 * (BPX_MAX_FOLD_ELEMS elements each): this is shape arithmetic, not a compute engine.
 *
 * A constant built over the batch -- ConstantOfShape or Expand to a shape that holds the
 * marker, as torch.onnx.export builds the zero initial state of nn.LSTM/GRU/RNN from
 * x.size(0) -- becomes a batch-repeated value (bpx_value.bcast): the constant with that axis
 * of size 1. Slice, Squeeze, Unsqueeze, Transpose, Expand, Identity and Cast keep it so;
 * anything else that reads one is left unfolded with a reason in gr->why (import reports
 * it), and a recurrent layer's mapping reads an all-zero one as "no initial state".
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = bpx_attr(n, name);
    return a != NULL && a->has_i ? a->i : def;
}

/* Inputs of a node as values; absent optional inputs (empty names) are NULL. Returns -1 if a
 * named input is unknown. */
static int node_inputs(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, size_t cap)
{
    for (size_t k = 0; k < n->n_input && k < cap; k++) {
        in[k] = NULL;
        if (n->input[k] == NULL || n->input[k][0] == '\0') continue;
        in[k] = bpx_find(gr, n->input[k]);
        if (in[k] == NULL) return -1;
    }
    return 0;
}

/* Read a constant int64 list (an input such as axes or a shape) into @p out. */
static int const_ints(const bpx_value *v, int64_t *out, size_t cap, size_t *count)
{
    if (v == NULL || !v->is_const || v->t.type != BPX_I64 || v->t.count > cap) return -1;
    if (v->t.count) memcpy(out, v->t.i, v->t.count * sizeof(int64_t));
    *count = v->t.count;
    return 0;
}

static int attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, size_t cap,
                     size_t *count)
{
    const Onnx__AttributeProto *a = bpx_attr(n, name);
    if (a == NULL || a->n_ints > cap) return -1;
    if (a->n_ints) memcpy(out, a->ints, a->n_ints * sizeof(int64_t)); /* ints is NULL when empty */
    *count = a->n_ints;
    return 0;
}

/* Leave node @p n unfolded and say why (gr->why, reported by import): BP_OK. */
static bp_status decline(bpx_graph *gr, const char *fmt, ...) BPX_PRINTF(2, 3);
static bp_status decline(bpx_graph *gr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(gr->why, sizeof gr->why, fmt, ap);
    va_end(ap);
    return BP_OK;
}

int bpx_is_zero_bcast(const bpx_value *v)
{
    if (v == NULL || !v->bcast) return 0;
    for (size_t k = 0; k < v->t.count; k++)
        if (v->t.type == BPX_F32 ? v->t.f[k] != 0.0f : v->t.i[k] != 0) return 0;
    return 1;
}

/* The elements of a tensor of @p rank dimensions @p dims, or 0 when more than the folding
 * cap (checked before allocating anything). */
static size_t capped_count(size_t rank, const int64_t *dims)
{
    size_t count = 1;
    for (size_t k = 0; k < rank; k++) {
        if (dims[k] < 0 || dims[k] > BPX_MAX_FOLD_ELEMS) return 0;
        count *= (size_t)dims[k];
        if (count > BPX_MAX_FOLD_ELEMS) return 0;
    }
    return count > 0 ? count : 1;
}

static bp_status out_bcast(bpx_graph *gr, const Onnx__NodeProto *n, bpx_tensor *t, size_t axis)
{
    if (t->count > gr->fold_budget) {
        bpx_tensor_free(t);
        return bpx_fail(BP_ERR_UNSUPPORTED, "node '%s' (%s): folding exceeds the budget",
                        bpx_node_name(n), n->op_type);
    }
    bpx_value *v = bpx_add(gr, n->output[0]);
    if (v == NULL) {
        bpx_tensor_free(t);
        return bpx_fail(BP_ERR_NOMEM, "out of memory");
    }
    gr->fold_budget -= t->count;
    v->bcast = 1;
    v->bcast_axis = axis;
    v->t = *t;
    return BP_OK;
}

static bp_status out_const(bpx_graph *gr, const Onnx__NodeProto *n, bpx_tensor *t)
{
    const int copy = strcmp(n->op_type, "Identity") == 0 || strcmp(n->op_type, "Cast") == 0;
    if ((!copy && t->count > BPX_MAX_FOLD_ELEMS) || t->count > gr->fold_budget) {
        bpx_tensor_free(t);
        return bpx_fail(BP_ERR_UNSUPPORTED,
                        "node '%s' (%s): folding it would make a constant "
                        "of %zu elements (at most %d)",
                        bpx_node_name(n), n->op_type, t->count, BPX_MAX_FOLD_ELEMS);
    }
    bpx_value *v = bpx_add(gr, n->output[0]);
    if (v == NULL) {
        bpx_tensor_free(t);
        return bpx_fail(BP_ERR_NOMEM, "out of memory");
    }
    gr->fold_budget -= t->count;
    v->is_const = 1;
    v->t = *t;
    return BP_OK;
}

static double get_num(const bpx_tensor *t, size_t k)
{
    return t->type == BPX_F32 ? (double)t->f[k] : (double)t->i[k];
}

/* Elementwise binary arithmetic with numpy broadcasting restricted to equal shapes or one
 * operand of a single element. */
static bp_status fold_binary(bpx_graph *gr, const Onnx__NodeProto *n, const bpx_value *a,
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
        const double p = get_num(x, x->count == 1 ? 0 : k), q = get_num(y, y->count == 1 ? 0 : k);
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
    return out_const(gr, n, &t);
}

/* Copy element @p from of @p src to element @p to of @p dst (same type). */
static void copy_elem(bpx_tensor *dst, size_t to, const bpx_tensor *src, size_t from)
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
static bp_status fold_slice(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, int *done)
{
    const bpx_value *xv = in[0];
    const bpx_tensor *x = &xv->t;
    int64_t starts[BPX_MAX_RANK], ends[BPX_MAX_RANK], axes[BPX_MAX_RANK], steps[BPX_MAX_RANK];
    size_t ns = 0, ne = 0, na = 0, nst = 0;
    if (gr->opset >= 10) {
        if (n->n_input < 3 || const_ints(in[1], starts, BPX_MAX_RANK, &ns) != 0 ||
            const_ints(in[2], ends, BPX_MAX_RANK, &ne) != 0)
            return decline(gr, "inputs 'starts' and 'ends' must be constant integer lists");
        if (n->n_input > 3 && in[3] != NULL && const_ints(in[3], axes, BPX_MAX_RANK, &na) != 0)
            return decline(gr, "input 'axes' must be a constant integer list");
        if (n->n_input > 4 && in[4] != NULL && const_ints(in[4], steps, BPX_MAX_RANK, &nst) != 0)
            return decline(gr, "input 'steps' must be a constant integer list");
    } else if (attr_ints(n, "starts", starts, BPX_MAX_RANK, &ns) != 0 ||
               attr_ints(n, "ends", ends, BPX_MAX_RANK, &ne) != 0 ||
               (bpx_attr(n, "axes") != NULL &&
                attr_ints(n, "axes", axes, BPX_MAX_RANK, &na) != 0)) {
        return decline(gr, "attributes 'starts', 'ends', 'axes' must be lists of at most %d",
                       BPX_MAX_RANK);
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
                return decline(gr,
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
    const size_t count = capped_count(x->rank, dims);
    if (count == 0) return decline(gr, "the result would exceed %d elements", BPX_MAX_FOLD_ELEMS);
    bpx_tensor t;
    BP_CHECK(bpx_tensor_new(&t, x->type, x->rank, dims));
    size_t xs[BPX_MAX_RANK], idx[BPX_MAX_RANK] = {0};
    strides_of(x, xs);
    for (size_t k = 0; k < t.count; k++) {
        size_t from = 0;
        for (size_t a = 0; a < x->rank; a++)
            from += (size_t)(lo[a] + (int64_t)idx[a] * step[a]) * xs[a];
        copy_elem(&t, k, x, from);
        for (size_t a = x->rank; a-- > 0;) /* next multi-index */
            if (++idx[a] < (size_t)dims[a])
                break;
            else
                idx[a] = 0;
    }
    *done = 1;
    return xv->bcast ? out_bcast(gr, n, &t, xv->bcast_axis) : out_const(gr, n, &t);
}

/* Expand @p xv (constant or batch-repeated) to the shape @p sh (numpy broadcasting); a
 * BPX_BATCH entry makes the result batch-repeated along that axis. */
static bp_status fold_expand(bpx_graph *gr, const Onnx__NodeProto *n, const bpx_value *xv,
                             const bpx_value *shv, int *done)
{
    const bpx_tensor *x = &xv->t;
    int64_t sh[BPX_MAX_RANK];
    size_t nsh = 0;
    if (const_ints(shv, sh, BPX_MAX_RANK, &nsh) != 0)
        return decline(gr, "input 'shape' must be a constant list of at most %d integers",
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
            if (batch_axis >= 0) return decline(gr, "the shape holds the batch size twice");
            if (sd != BPX_BATCH && sd != 1)
                return decline(gr, "expands the batch axis of input '%s' to %lld", xv->name,
                               (long long)sd);
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
    if (capped_count(rank, dims) == 0)
        return decline(gr, "the result would exceed %d elements", BPX_MAX_FOLD_ELEMS);
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
        copy_elem(&t, k, x, from);
        for (size_t a = rank; a-- > 0;)
            if (++idx[a] < (size_t)dims[a])
                break;
            else
                idx[a] = 0;
    }
    *done = 1;
    if (batch_axis >= 0) return out_bcast(gr, n, &t, (size_t)batch_axis);
    return out_const(gr, n, &t);
}

/* Transpose of a constant or batch-repeated value (the batch axis moves with it). */
static bp_status fold_transpose(bpx_graph *gr, const Onnx__NodeProto *n, const bpx_value *xv,
                                int *done)
{
    const bpx_tensor *x = &xv->t;
    int64_t perm[BPX_MAX_RANK];
    size_t np = 0;
    if (bpx_attr(n, "perm") == NULL) {
        np = x->rank;
        for (size_t k = 0; k < np; k++)
            perm[k] = (int64_t)(np - 1 - k);
    } else if (attr_ints(n, "perm", perm, BPX_MAX_RANK, &np) != 0 || np != x->rank) {
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
        copy_elem(&t, k, x, from);
        for (size_t a = np; a-- > 0;)
            if (++idx[a] < (size_t)dims[a])
                break;
            else
                idx[a] = 0;
    }
    *done = 1;
    return xv->bcast ? out_bcast(gr, n, &t, axis) : out_const(gr, n, &t);
}

/* Equal and Where on constants (torch writes them around Expand's shape: where(shape == -1,
 * 1, shape)). The batch marker equals itself and no number below 1. */
static bp_status fold_select(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, int *done)
{
    const int where = strcmp(n->op_type, "Where") == 0;
    const size_t nin = where ? 3 : 2;
    if (n->n_input != nin) return decline(gr, "%zu inputs expected", nin);
    size_t count = 1;
    const bpx_tensor *big = NULL;
    for (size_t k = 0; k < nin; k++) {
        if (in[k] == NULL) return decline(gr, "an input is missing");
        if (big == NULL || in[k]->t.count > count) {
            count = in[k]->t.count;
            big = &in[k]->t;
        }
    }
    for (size_t k = 0; k < nin; k++)
        if (in[k]->t.count != 1 && in[k]->t.count != count)
            return decline(gr,
                           "inputs of %zu and %zu elements (only equal shapes or "
                           "scalars fold)",
                           count, in[k]->t.count);
    const bpx_tensor *a = &in[where ? 1 : 0]->t, *b = &in[where ? 2 : 1]->t;
    if (a->type != b->type) return decline(gr, "inputs of different element types");
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
                return decline(gr, "input 'condition' is the batch size");
            }
            copy_elem(&t, k, cond ? a : b, cond ? ka : kb);
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
                return decline(gr, "compares the batch size (left open at import) with %lld",
                               (long long)other);
            }
            t.i[k] = 0;
        } else {
            t.i[k] = p == q;
        }
    }
    *done = 1;
    return out_const(gr, n, &t);
}

/* Reshape of a constant (shape arithmetic; 0 copies a dimension, -1 is inferred). */
static bp_status fold_reshape(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, int *done)
{
    const bpx_tensor *x = &in[0]->t;
    int64_t sh[BPX_MAX_RANK];
    size_t nsh = 0;
    if (n->n_input < 2 || const_ints(in[1], sh, BPX_MAX_RANK, &nsh) != 0)
        return decline(gr, "input 'shape' must be a constant list of at most %d integers",
                       BPX_MAX_RANK);
    const int allowzero = attr_int(n, "allowzero", 0) != 0;
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
            return decline(gr, "input 'shape' holds %lld", (long long)sh[k]);
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
        copy_elem(&t, k, x, k);
    *done = 1;
    return out_const(gr, n, &t);
}

/* Fold node @p n if it is a constant or shape operator with constant inputs; *done = 1 when
 * folded. */
bp_status bpx_fold_node(bpx_graph *gr, const Onnx__NodeProto *n, int *done)
{
    const char *op = n->op_type;
    bpx_value *in[8] = {NULL};
    *done = 0;
    gr->why[0] = '\0';
    if (n->n_output < 1 || n->output[0] == NULL || n->output[0][0] == '\0') return BP_OK;
    if (node_inputs(gr, n, in, 8) != 0) return BP_OK; /* the mapper reports it */
    if (strcmp(op, "Constant") == 0) {
        const Onnx__AttributeProto *a = NULL;
        bpx_tensor t;
        if ((a = bpx_attr(n, "value")) != NULL && a->t != NULL) {
            char what[300];
            snprintf(what, sizeof what, "node '%s' (Constant): attribute 'value'",
                     bpx_node_name(n));
            BP_CHECK(bpx_tensor_decode(&t, a->t, what));
            /* Weights may come as Constant nodes: no folding cap for them. */
            bpx_value *v = bpx_add(gr, n->output[0]);
            if (v == NULL) {
                bpx_tensor_free(&t);
                return bpx_fail(BP_ERR_NOMEM, "out of memory");
            }
            v->is_const = 1;
            v->t = t;
            *done = 1;
            return BP_OK;
        }
        int64_t one = 1;
        if ((a = bpx_attr(n, "value_float")) != NULL && a->has_f) {
            BP_CHECK(bpx_tensor_new(&t, BPX_F32, 0, &one));
            t.f[0] = a->f;
        } else if ((a = bpx_attr(n, "value_int")) != NULL && a->has_i) {
            BP_CHECK(bpx_tensor_new(&t, BPX_I64, 0, &one));
            t.i[0] = a->i;
        } else if ((a = bpx_attr(n, "value_floats")) != NULL) {
            const int64_t d = (int64_t)a->n_floats;
            BP_CHECK(bpx_tensor_new(&t, BPX_F32, 1, &d));
            for (size_t k = 0; k < a->n_floats; k++)
                t.f[k] = a->floats[k];
        } else if ((a = bpx_attr(n, "value_ints")) != NULL) {
            const int64_t d = (int64_t)a->n_ints;
            BP_CHECK(bpx_tensor_new(&t, BPX_I64, 1, &d));
            for (size_t k = 0; k < a->n_ints; k++)
                t.i[k] = a->ints[k];
        } else {
            return bpx_fail(BP_ERR_UNSUPPORTED,
                            "node '%s' (Constant): no supported value "
                            "attribute (value, value_float(s), value_int(s))",
                            bpx_node_name(n));
        }
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "Shape") == 0) {
        const bpx_value *x = in[0];
        if (x == NULL || (!x->is_const && !x->bcast && !x->has_shape)) return BP_OK;
        const int tensor = x->is_const || x->bcast;
        const size_t rank = tensor ? x->t.rank : x->rank;
        const int64_t *d = tensor ? x->t.dims : x->dims;
        int64_t start = attr_int(n, "start", 0), end = attr_int(n, "end", (int64_t)rank);
        if (start < 0) start += (int64_t)rank;
        if (end < 0) end += (int64_t)rank;
        if (start < 0) start = 0;
        if (end > (int64_t)rank) end = (int64_t)rank;
        if (end < start) end = start;
        const int64_t len = end - start;
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, BPX_I64, 1, &len));
        for (int64_t k = 0; k < len; k++)
            t.i[k] = x->bcast && (size_t)(start + k) == x->bcast_axis ? BPX_BATCH : d[start + k];
        *done = 1;
        return out_const(gr, n, &t);
    }
    /* Everything else needs every named input constant or batch-repeated. */
    const bpx_value *rep = NULL;
    for (size_t k = 0; k < n->n_input && k < 8; k++) {
        if (in[k] != NULL && !in[k]->is_const && !in[k]->bcast) return BP_OK; /* reads data */
        if (in[k] != NULL && in[k]->bcast && rep == NULL) rep = in[k];
    }
    if (n->n_input > 8) return decline(gr, "%zu inputs (at most 8 fold)", n->n_input);
    if (n->n_input == 0 || in[0] == NULL) return decline(gr, "its first input is missing");
    const bpx_tensor *x = &in[0]->t;
    static const char bcast_why[] =
        "input '%s' repeats a constant over the batch (a shape built from the data's batch "
        "size, as exporters build RNN initial states): only the initial state of RNN, LSTM "
        "and GRU may be one";
    if (strcmp(op, "Identity") == 0 || strcmp(op, "Cast") == 0) {
        int type = x->type;
        if (strcmp(op, "Cast") == 0) {
            const int64_t to = attr_int(n, "to", 0);
            if (to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
                to == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
                to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16)
                type = BPX_F32;
            else if (to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
                     to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32)
                type = BPX_I64;
            else
                return decline(gr,
                               "attribute 'to' = %lld: only casts to float and int32/64 "
                               "fold",
                               (long long)to);
        }
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, type, x->rank, x->dims));
        for (size_t k = 0; k < x->count; k++) {
            if (type == BPX_F32)
                t.f[k] = x->type == BPX_F32 ? x->f[k] : (float)x->i[k];
            else if (x->type == BPX_I64)
                t.i[k] = x->i[k];
            else if (!(fabsf(x->f[k]) < 9.0e15f)) {
                bpx_tensor_free(&t);
                return decline(gr, "a value beyond the exact integer range");
            } else
                t.i[k] = (int64_t)x->f[k];
        }
        *done = 1;
        return in[0]->bcast ? out_bcast(gr, n, &t, in[0]->bcast_axis) : out_const(gr, n, &t);
    }
    if (strcmp(op, "Slice") == 0) return fold_slice(gr, n, in, done);
    if (strcmp(op, "Transpose") == 0) return fold_transpose(gr, n, in[0], done);
    if (strcmp(op, "Expand") == 0) {
        if (n->n_input != 2 || in[1] == NULL) return decline(gr, "input 'shape' is missing");
        if (in[1]->bcast) return decline(gr, bcast_why, in[1]->name);
        return fold_expand(gr, n, in[0], in[1], done);
    }
    if (strcmp(op, "ConstantOfShape") == 0) {
        if (x->type != BPX_I64 || x->rank != 1 || x->count > BPX_MAX_RANK || in[0]->bcast)
            return decline(gr, "input 'input' must be a constant shape of at most %d integers",
                           BPX_MAX_RANK);
        int64_t dims[BPX_MAX_RANK];
        int batch_axis = -1;
        for (size_t k = 0; k < x->count; k++) {
            dims[k] = x->i[k];
            if (x->i[k] != BPX_BATCH) continue;
            if (batch_axis >= 0) return decline(gr, "the shape holds the batch size twice");
            batch_axis = (int)k;
            dims[k] = 1;
        }
        if (capped_count(x->count, dims) == 0)
            return decline(gr, "a shape of more than %d elements (or negative)",
                           BPX_MAX_FOLD_ELEMS);
        const Onnx__AttributeProto *a = bpx_attr(n, "value");
        bpx_tensor val = {0};
        if (a != NULL && a->t != NULL) {
            char what[300];
            snprintf(what, sizeof what, "node '%s' (ConstantOfShape): attribute 'value'",
                     bpx_node_name(n));
            BP_CHECK(bpx_tensor_decode(&val, a->t, what));
            if (val.count != 1) {
                bpx_tensor_free(&val);
                return bpx_fail(BP_ERR_FORMAT,
                                "node '%s' (ConstantOfShape): attribute 'value' "
                                "must hold one element",
                                bpx_node_name(n));
            }
        }
        bpx_tensor t;
        const int type = a != NULL && a->t != NULL ? val.type : BPX_F32;
        const bp_status s = bpx_tensor_new(&t, type, x->count, dims);
        if (s != BP_OK) {
            bpx_tensor_free(&val);
            return s;
        }
        for (size_t k = 0; k < t.count; k++) {
            if (type == BPX_F32)
                t.f[k] = val.f != NULL ? val.f[0] : 0.0f;
            else
                t.i[k] = val.i[0];
        }
        bpx_tensor_free(&val);
        *done = 1;
        return batch_axis >= 0 ? out_bcast(gr, n, &t, (size_t)batch_axis) : out_const(gr, n, &t);
    }
    if (strcmp(op, "Unsqueeze") == 0 || strcmp(op, "Squeeze") == 0) {
        int64_t axes[BPX_MAX_RANK];
        size_t naxes = 0;
        if (gr->opset >= 13) {
            if (n->n_input > 1 && const_ints(in[1], axes, BPX_MAX_RANK, &naxes) != 0)
                return decline(gr, "input 'axes' must be a constant integer list");
        } else if (attr_ints(n, "axes", axes, BPX_MAX_RANK, &naxes) != 0) {
            naxes = 0;
        }
        const int rep0 = in[0]->bcast;
        size_t axis = in[0]->bcast_axis, new_axis = 0;
        int64_t dims[BPX_MAX_RANK];
        size_t rank = 0;
        if (op[0] == 'U') {
            const size_t out_rank = x->rank + naxes;
            if (out_rank > BPX_MAX_RANK || naxes == 0)
                return decline(gr, "input 'axes': rank %zu out of range", out_rank);
            unsigned char is_new[BPX_MAX_RANK] = {0};
            for (size_t k = 0; k < naxes; k++) {
                const int64_t a = axes[k] < 0 ? axes[k] + (int64_t)out_rank : axes[k];
                if (a < 0 || a >= (int64_t)out_rank || is_new[a])
                    return bpx_fail(BP_ERR_FORMAT,
                                    "node '%s' (Unsqueeze): axis %lld out of "
                                    "range or repeated",
                                    bpx_node_name(n), (long long)axes[k]);
                is_new[a] = 1;
            }
            size_t src = 0;
            for (size_t k = 0; k < out_rank; k++) {
                if (!is_new[k] && src == axis) new_axis = k;
                dims[k] = is_new[k] ? 1 : x->dims[src++];
            }
            rank = out_rank;
        } else {
            unsigned char drop[BPX_MAX_RANK] = {0};
            for (size_t k = 0; k < naxes; k++) {
                const int64_t a = axes[k] < 0 ? axes[k] + (int64_t)x->rank : axes[k];
                if (a < 0 || a >= (int64_t)x->rank || x->dims[a] != 1)
                    return decline(gr, "input 'axes': axis %lld is not of size 1",
                                   (long long)axes[k]);
                if (rep0 && (size_t)a == axis)
                    return decline(gr, "squeezes axis %lld, the batch axis of input '%s'",
                                   (long long)a, in[0]->name);
                drop[a] = 1;
            }
            for (size_t k = 0; k < x->rank; k++) {
                const int keep_batch = rep0 && k == axis;
                if (keep_batch) new_axis = rank;
                if (keep_batch || !(naxes == 0 ? x->dims[k] == 1 : drop[k]))
                    dims[rank++] = x->dims[k];
            }
        }
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, x->type, rank, dims));
        for (size_t k = 0; k < x->count; k++)
            copy_elem(&t, k, x, k);
        *done = 1;
        return rep0 ? out_bcast(gr, n, &t, new_axis) : out_const(gr, n, &t);
    }
    if (rep != NULL) return decline(gr, bcast_why, rep->name);
    if (strcmp(op, "Add") == 0 || strcmp(op, "Sub") == 0 || strcmp(op, "Mul") == 0 ||
        strcmp(op, "Div") == 0) {
        if (n->n_input != 2 || in[1] == NULL) return decline(gr, "two inputs expected");
        BP_CHECK(fold_binary(gr, n, in[0], in[1], done));
        if (!*done)
            return decline(gr, "arithmetic on the batch size (left open at import), on values "
                               "beyond the exact integer range, or on shapes that do not match");
        return BP_OK;
    }
    if (strcmp(op, "Sqrt") == 0 && x->type == BPX_F32) {
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, BPX_F32, x->rank, x->dims));
        for (size_t k = 0; k < x->count; k++)
            t.f[k] = sqrtf(x->f[k]);
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "Gather") == 0) {
        if (n->n_input != 2 || in[1] == NULL || in[1]->t.type != BPX_I64)
            return decline(gr, "input 'indices' must be constant integers");
        if (attr_int(n, "axis", 0) != 0 || x->rank != 1)
            return decline(gr,
                           "attribute 'axis' = %lld on rank %zu: only gathers from a "
                           "1-D constant fold",
                           (long long)attr_int(n, "axis", 0), x->rank);
        const bpx_tensor *idx = &in[1]->t;
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, x->type, idx->rank, idx->dims));
        for (size_t k = 0; k < idx->count; k++) {
            int64_t j = idx->i[k];
            if (j < 0) j += (int64_t)x->count;
            if (j < 0 || j >= (int64_t)x->count) {
                bpx_tensor_free(&t);
                return bpx_fail(BP_ERR_FORMAT, "node '%s' (Gather): index %lld out of range",
                                bpx_node_name(n), (long long)idx->i[k]);
            }
            copy_elem(&t, k, x, (size_t)j);
        }
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "Concat") == 0) {
        size_t total = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            if (in[k] == NULL || in[k]->t.rank != 1 || in[k]->t.type != x->type)
                return decline(gr, "only 1-D constants of one element type concatenate");
            total += in[k]->t.count;
        }
        const int64_t d = (int64_t)total;
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, x->type, 1, &d));
        size_t at = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            const bpx_tensor *s = &in[k]->t;
            for (size_t j = 0; j < s->count; j++)
                copy_elem(&t, at + j, s, j);
            at += s->count;
        }
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "Reshape") == 0) return fold_reshape(gr, n, in, done);
    if (strcmp(op, "Equal") == 0 || strcmp(op, "Where") == 0) return fold_select(gr, n, in, done);
    return decline(gr,
                   "operator '%s' on constants is not folded at import (folded: Constant, "
                   "Shape, Identity, Cast, Add, Sub, Mul, Div, Sqrt, Gather, Concat, Slice, "
                   "Squeeze, Unsqueeze, Reshape, Transpose, Expand, ConstantOfShape, Equal, "
                   "Where)",
                   op);
}
