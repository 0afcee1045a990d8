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
 */
#include <math.h>
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
    memcpy(out, v->t.i, v->t.count * sizeof(int64_t));
    *count = v->t.count;
    return 0;
}

static int attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, size_t cap,
                     size_t *count)
{
    const Onnx__AttributeProto *a = bpx_attr(n, name);
    if (a == NULL || a->n_ints > cap) return -1;
    memcpy(out, a->ints, a->n_ints * sizeof(int64_t));
    *count = a->n_ints;
    return 0;
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

/* Fold node @p n if it is a constant or shape operator with constant inputs; *done = 1 when
 * folded. */
bp_status bpx_fold_node(bpx_graph *gr, const Onnx__NodeProto *n, int *done)
{
    const char *op = n->op_type;
    bpx_value *in[8] = {NULL};
    *done = 0;
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
        if (x == NULL || (!x->is_const && !x->has_shape)) return BP_OK;
        const size_t rank = x->is_const ? x->t.rank : x->rank;
        const int64_t *d = x->is_const ? x->t.dims : x->dims;
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
            t.i[k] = d[start + k];
        *done = 1;
        return out_const(gr, n, &t);
    }
    /* Everything else needs every named input constant. */
    for (size_t k = 0; k < n->n_input && k < 8; k++)
        if (in[k] != NULL && !in[k]->is_const) return BP_OK;
    if (n->n_input > 8 || n->n_input == 0 || in[0] == NULL) return BP_OK;
    const bpx_tensor *x = &in[0]->t;
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
                return BP_OK;
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
                return BP_OK;
            } else
                t.i[k] = (int64_t)x->f[k];
        }
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "Add") == 0 || strcmp(op, "Sub") == 0 || strcmp(op, "Mul") == 0 ||
        strcmp(op, "Div") == 0) {
        if (n->n_input != 2 || in[1] == NULL) return BP_OK;
        return fold_binary(gr, n, in[0], in[1], done);
    }
    if (strcmp(op, "Sqrt") == 0 && x->type == BPX_F32) {
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, BPX_F32, x->rank, x->dims));
        for (size_t k = 0; k < x->count; k++)
            t.f[k] = sqrtf(x->f[k]);
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "Unsqueeze") == 0 || strcmp(op, "Squeeze") == 0) {
        int64_t axes[BPX_MAX_RANK];
        size_t naxes = 0;
        if (gr->opset >= 13) {
            if (n->n_input > 1 && const_ints(in[1], axes, BPX_MAX_RANK, &naxes) != 0) return BP_OK;
        } else if (attr_ints(n, "axes", axes, BPX_MAX_RANK, &naxes) != 0) {
            naxes = 0;
        }
        int64_t dims[BPX_MAX_RANK];
        size_t rank = 0;
        if (op[0] == 'U') {
            const size_t out_rank = x->rank + naxes;
            if (out_rank > BPX_MAX_RANK || naxes == 0) return BP_OK;
            unsigned char is_new[BPX_MAX_RANK] = {0};
            for (size_t k = 0; k < naxes; k++) {
                const int64_t a = axes[k] < 0 ? axes[k] + (int64_t)out_rank : axes[k];
                if (a < 0 || a >= (int64_t)out_rank || is_new[a]) return BP_OK;
                is_new[a] = 1;
            }
            size_t src = 0;
            for (size_t k = 0; k < out_rank; k++)
                dims[k] = is_new[k] ? 1 : x->dims[src++];
            rank = out_rank;
        } else {
            unsigned char drop[BPX_MAX_RANK] = {0};
            for (size_t k = 0; k < naxes; k++) {
                const int64_t a = axes[k] < 0 ? axes[k] + (int64_t)x->rank : axes[k];
                if (a < 0 || a >= (int64_t)x->rank || x->dims[a] != 1) return BP_OK;
                drop[a] = 1;
            }
            for (size_t k = 0; k < x->rank; k++)
                if (!(naxes == 0 ? x->dims[k] == 1 : drop[k])) dims[rank++] = x->dims[k];
        }
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, x->type, rank, dims));
        if (x->type == BPX_F32)
            memcpy(t.f, x->f, x->count * sizeof(float));
        else
            memcpy(t.i, x->i, x->count * sizeof(int64_t));
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "Gather") == 0) {
        if (n->n_input != 2 || in[1] == NULL || in[1]->t.type != BPX_I64) return BP_OK;
        if (attr_int(n, "axis", 0) != 0 || x->rank != 1) return BP_OK;
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
            if (x->type == BPX_F32)
                t.f[k] = x->f[j];
            else
                t.i[k] = x->i[j];
        }
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "Concat") == 0) {
        size_t total = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            if (in[k] == NULL || in[k]->t.rank != 1 || in[k]->t.type != x->type) return BP_OK;
            total += in[k]->t.count;
        }
        const int64_t d = (int64_t)total;
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, x->type, 1, &d));
        size_t at = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            const bpx_tensor *s = &in[k]->t;
            if (s->type == BPX_F32)
                memcpy(t.f + at, s->f, s->count * sizeof(float));
            else
                memcpy(t.i + at, s->i, s->count * sizeof(int64_t));
            at += s->count;
        }
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "Slice") == 0) {
        if (x->rank != 1 || n->n_input < 3) return BP_OK;
        int64_t s0, e0, st = 1, ax = 0;
        size_t c;
        if (const_ints(in[1], &s0, 1, &c) != 0 || c != 1 || const_ints(in[2], &e0, 1, &c) != 0 ||
            c != 1)
            return BP_OK;
        if (n->n_input > 3 && in[3] != NULL && (const_ints(in[3], &ax, 1, &c) != 0 || ax != 0))
            return BP_OK;
        if (n->n_input > 4 && in[4] != NULL && (const_ints(in[4], &st, 1, &c) != 0 || st != 1))
            return BP_OK;
        const int64_t len = (int64_t)x->count;
        if (s0 < 0) s0 += len;
        if (e0 < 0) e0 += len;
        s0 = s0 < 0 ? 0 : (s0 > len ? len : s0);
        e0 = e0 < 0 ? 0 : (e0 > len ? len : e0);
        const int64_t d = e0 > s0 ? e0 - s0 : 0;
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, x->type, 1, &d));
        for (int64_t k = 0; k < d; k++) {
            if (x->type == BPX_F32)
                t.f[k] = x->f[s0 + k];
            else
                t.i[k] = x->i[s0 + k];
        }
        *done = 1;
        return out_const(gr, n, &t);
    }
    if (strcmp(op, "ConstantOfShape") == 0) {
        if (x->type != BPX_I64 || x->rank != 1 || x->count > BPX_MAX_RANK) return BP_OK;
        size_t count = 1;
        for (size_t k = 0; k < x->count; k++) {
            if (x->i[k] < 0 || x->i[k] > BPX_MAX_FOLD_ELEMS) return BP_OK;
            count *= (size_t)x->i[k];
            if (count > BPX_MAX_FOLD_ELEMS) return BP_OK;
        }
        const Onnx__AttributeProto *a = bpx_attr(n, "value");
        bpx_tensor val = {0};
        if (a != NULL && a->t != NULL) {
            char what[300];
            snprintf(what, sizeof what, "node '%s' (ConstantOfShape): attribute 'value'",
                     bpx_node_name(n));
            BP_CHECK(bpx_tensor_decode(&val, a->t, what));
            if (val.count != 1) {
                bpx_tensor_free(&val);
                return BP_OK;
            }
        }
        bpx_tensor t;
        const int type = a != NULL && a->t != NULL ? val.type : BPX_F32;
        const bp_status s = bpx_tensor_new(&t, type, x->count, x->i);
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
        return out_const(gr, n, &t);
    }
    return BP_OK;
}
