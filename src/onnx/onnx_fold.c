/*
 * onnx_fold.c -- constant folding and shape propagation before mapping (import): the helpers
 * the folder's files share and bpx_fold_node(), which folds the simple operators itself and
 * hands Slice, Expand, Transpose, Equal/Where, Reshape and the binary arithmetic to
 * onnx_fold_ops.c.
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

#include "onnx_fold.h"

int64_t bpx_fold_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def)
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
int bpx_fold_const_ints(const bpx_value *v, int64_t *out, size_t cap, size_t *count)
{
    if (v == NULL || !v->is_const || v->t.type != BPX_I64 || v->t.count > cap) return -1;
    if (v->t.count) memcpy(out, v->t.i, v->t.count * sizeof(int64_t));
    *count = v->t.count;
    return 0;
}

int bpx_fold_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, size_t cap,
                       size_t *count)
{
    const Onnx__AttributeProto *a = bpx_attr(n, name);
    if (a == NULL || a->n_ints > cap) return -1;
    if (a->n_ints) memcpy(out, a->ints, a->n_ints * sizeof(int64_t)); /* ints is NULL when empty */
    *count = a->n_ints;
    return 0;
}

/* Leave node @p n unfolded and say why (gr->why, reported by import): BP_OK. */

bp_status bpx_fold_decline(bpx_graph *gr, const char *fmt, ...)
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
size_t bpx_fold_capped_count(size_t rank, const int64_t *dims)
{
    size_t count = 1;
    for (size_t k = 0; k < rank; k++) {
        if (dims[k] < 0 || dims[k] > BPX_MAX_FOLD_ELEMS) return 0;
        count *= (size_t)dims[k];
        if (count > BPX_MAX_FOLD_ELEMS) return 0;
    }
    return count > 0 ? count : 1;
}

bp_status bpx_fold_out_bcast(bpx_graph *gr, const Onnx__NodeProto *n, bpx_tensor *t, size_t axis)
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

bp_status bpx_fold_out_const(bpx_graph *gr, const Onnx__NodeProto *n, bpx_tensor *t)
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

double bpx_fold_get_num(const bpx_tensor *t, size_t k)
{
    return t->type == BPX_F32 ? (double)t->f[k] : (double)t->i[k];
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
        return bpx_fold_out_const(gr, n, &t);
    }
    if (strcmp(op, "Shape") == 0) {
        const bpx_value *x = in[0];
        if (x == NULL || (!x->is_const && !x->bcast && !x->has_shape)) return BP_OK;
        const int tensor = x->is_const || x->bcast;
        const size_t rank = tensor ? x->t.rank : x->rank;
        const int64_t *d = tensor ? x->t.dims : x->dims;
        int64_t start = bpx_fold_attr_int(n, "start", 0),
                end = bpx_fold_attr_int(n, "end", (int64_t)rank);
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
        return bpx_fold_out_const(gr, n, &t);
    }
    /* Everything else needs every named input constant or batch-repeated. */
    const bpx_value *rep = NULL;
    for (size_t k = 0; k < n->n_input && k < 8; k++) {
        if (in[k] != NULL && !in[k]->is_const && !in[k]->bcast) return BP_OK; /* reads data */
        if (in[k] != NULL && in[k]->bcast && rep == NULL) rep = in[k];
    }
    if (n->n_input > 8) return bpx_fold_decline(gr, "%zu inputs (at most 8 fold)", n->n_input);
    if (n->n_input == 0 || in[0] == NULL) return bpx_fold_decline(gr, "its first input is missing");
    const bpx_tensor *x = &in[0]->t;
    static const char bcast_why[] =
        "input '%s' repeats a constant over the batch (a shape built from the data's batch "
        "size, as exporters build RNN initial states): only the initial state of RNN, LSTM "
        "and GRU may be one";
    if (strcmp(op, "Identity") == 0 || strcmp(op, "Cast") == 0) {
        int type = x->type;
        if (strcmp(op, "Cast") == 0) {
            const int64_t to = bpx_fold_attr_int(n, "to", 0);
            if (to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
                to == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
                to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16)
                type = BPX_F32;
            else if (to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
                     to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32)
                type = BPX_I64;
            else
                return bpx_fold_decline(gr,
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
                return bpx_fold_decline(gr, "a value beyond the exact integer range");
            } else
                t.i[k] = (int64_t)x->f[k];
        }
        *done = 1;
        return in[0]->bcast ? bpx_fold_out_bcast(gr, n, &t, in[0]->bcast_axis)
                            : bpx_fold_out_const(gr, n, &t);
    }
    if (strcmp(op, "Slice") == 0) return bpx_fold_slice(gr, n, in, done);
    if (strcmp(op, "Transpose") == 0) return bpx_fold_transpose(gr, n, in[0], done);
    if (strcmp(op, "Expand") == 0) {
        if (n->n_input != 2 || in[1] == NULL)
            return bpx_fold_decline(gr, "input 'shape' is missing");
        if (in[1]->bcast) return bpx_fold_decline(gr, bcast_why, in[1]->name);
        return bpx_fold_expand(gr, n, in[0], in[1], done);
    }
    if (strcmp(op, "ConstantOfShape") == 0) {
        if (x->type != BPX_I64 || x->rank != 1 || x->count > BPX_MAX_RANK || in[0]->bcast)
            return bpx_fold_decline(
                gr, "input 'input' must be a constant shape of at most %d integers", BPX_MAX_RANK);
        int64_t dims[BPX_MAX_RANK];
        int batch_axis = -1;
        for (size_t k = 0; k < x->count; k++) {
            dims[k] = x->i[k];
            if (x->i[k] != BPX_BATCH) continue;
            if (batch_axis >= 0)
                return bpx_fold_decline(gr, "the shape holds the batch size twice");
            batch_axis = (int)k;
            dims[k] = 1;
        }
        if (bpx_fold_capped_count(x->count, dims) == 0)
            return bpx_fold_decline(gr, "a shape of more than %d elements (or negative)",
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
        return batch_axis >= 0 ? bpx_fold_out_bcast(gr, n, &t, (size_t)batch_axis)
                               : bpx_fold_out_const(gr, n, &t);
    }
    if (strcmp(op, "Unsqueeze") == 0 || strcmp(op, "Squeeze") == 0) {
        int64_t axes[BPX_MAX_RANK];
        size_t naxes = 0;
        if (gr->opset >= 13) {
            if (n->n_input > 1 && bpx_fold_const_ints(in[1], axes, BPX_MAX_RANK, &naxes) != 0)
                return bpx_fold_decline(gr, "input 'axes' must be a constant integer list");
        } else if (bpx_fold_attr_ints(n, "axes", axes, BPX_MAX_RANK, &naxes) != 0) {
            naxes = 0;
        }
        const int rep0 = in[0]->bcast;
        size_t axis = in[0]->bcast_axis, new_axis = 0;
        int64_t dims[BPX_MAX_RANK];
        size_t rank = 0;
        if (op[0] == 'U') {
            const size_t out_rank = x->rank + naxes;
            if (out_rank > BPX_MAX_RANK || naxes == 0)
                return bpx_fold_decline(gr, "input 'axes': rank %zu out of range", out_rank);
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
                    return bpx_fold_decline(gr, "input 'axes': axis %lld is not of size 1",
                                            (long long)axes[k]);
                if (rep0 && (size_t)a == axis)
                    return bpx_fold_decline(gr, "squeezes axis %lld, the batch axis of input '%s'",
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
            bpx_fold_copy_elem(&t, k, x, k);
        *done = 1;
        return rep0 ? bpx_fold_out_bcast(gr, n, &t, new_axis) : bpx_fold_out_const(gr, n, &t);
    }
    if (rep != NULL) return bpx_fold_decline(gr, bcast_why, rep->name);
    if (strcmp(op, "Add") == 0 || strcmp(op, "Sub") == 0 || strcmp(op, "Mul") == 0 ||
        strcmp(op, "Div") == 0) {
        if (n->n_input != 2 || in[1] == NULL) return bpx_fold_decline(gr, "two inputs expected");
        BP_CHECK(bpx_fold_binary(gr, n, in[0], in[1], done));
        if (!*done)
            return bpx_fold_decline(
                gr, "arithmetic on the batch size (left open at import), on values "
                    "beyond the exact integer range, or on shapes that do not match");
        return BP_OK;
    }
    if (strcmp(op, "Sqrt") == 0 && x->type == BPX_F32) {
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, BPX_F32, x->rank, x->dims));
        for (size_t k = 0; k < x->count; k++)
            t.f[k] = sqrtf(x->f[k]);
        *done = 1;
        return bpx_fold_out_const(gr, n, &t);
    }
    if (strcmp(op, "Gather") == 0) {
        if (n->n_input != 2 || in[1] == NULL || in[1]->t.type != BPX_I64)
            return bpx_fold_decline(gr, "input 'indices' must be constant integers");
        if (bpx_fold_attr_int(n, "axis", 0) != 0 || x->rank != 1)
            return bpx_fold_decline(gr,
                                    "attribute 'axis' = %lld on rank %zu: only gathers from a "
                                    "1-D constant fold",
                                    (long long)bpx_fold_attr_int(n, "axis", 0), x->rank);
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
            bpx_fold_copy_elem(&t, k, x, (size_t)j);
        }
        *done = 1;
        return bpx_fold_out_const(gr, n, &t);
    }
    if (strcmp(op, "Concat") == 0) {
        size_t total = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            if (in[k] == NULL || in[k]->t.rank != 1 || in[k]->t.type != x->type)
                return bpx_fold_decline(gr, "only 1-D constants of one element type concatenate");
            total += in[k]->t.count;
        }
        const int64_t d = (int64_t)total;
        bpx_tensor t;
        BP_CHECK(bpx_tensor_new(&t, x->type, 1, &d));
        size_t at = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            const bpx_tensor *s = &in[k]->t;
            for (size_t j = 0; j < s->count; j++)
                bpx_fold_copy_elem(&t, at + j, s, j);
            at += s->count;
        }
        *done = 1;
        return bpx_fold_out_const(gr, n, &t);
    }
    if (strcmp(op, "Reshape") == 0) return bpx_fold_reshape(gr, n, in, done);
    if (strcmp(op, "Equal") == 0 || strcmp(op, "Where") == 0)
        return bpx_fold_select(gr, n, in, done);
    return bpx_fold_decline(
        gr,
        "operator '%s' on constants is not folded at import (folded: Constant, "
        "Shape, Identity, Cast, Add, Sub, Mul, Div, Sqrt, Gather, Concat, Slice, "
        "Squeeze, Unsqueeze, Reshape, Transpose, Expand, ConstantOfShape, Equal, "
        "Where)",
        op);
}
