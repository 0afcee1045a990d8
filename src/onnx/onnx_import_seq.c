/*
 * onnx_import_seq.c -- import: the sequence nodes onto planned steps: RNN, GRU and LSTM onto
 * the recurrent layers, Gather onto an embedding or a recurrent layer's last step.
 */
#include <stdlib.h>
#include <string.h>

#include "onnx_import.h"

/* 1 when the optional input @p k of @p n is absent or all zeros (a constant, or a constant
 * repeated over the batch as PyTorch builds an RNN's initial state). */
static int zero_or_absent(importer *im, const Onnx__NodeProto *n, size_t k)
{
    const bpx_value *v = bpx_in_value(im, n, k);
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
    const Onnx__AttributeProto *a = bpx_attr_of(n, name);
    const size_t len = strlen(s);
    return a != NULL && a->has_s && a->s.len == len && memcmp(a->s.data, s, len) == 0;
}

/* RNN, GRU, LSTM -> the recurrent layers (PyTorch's semantics and parameter layout). ONNX
 * orders the gates i, o, f, c (LSTM) and z, r, h (GRU); the library, like PyTorch, i, f, g,
 * o and r, z, n. Y (every step) gives a sequence, Y_h (the last state of each direction,
 * PyTorch's h_n) a flat row: BP_RNN_LAST_STEP. */
bp_status bpx_map_recurrent(importer *im, const Onnx__NodeProto *n, const bpx_value *x,
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
    BP_CHECK(bpx_check_attrs(n, lstm ? known_lstm : gru ? known_gru : known_rnn));
    static const char *const unsupported[] = {"clip", "activation_alpha", "activation_beta"};
    for (int k = 0; k < 3; k++)
        if (bpx_attr_of(n, unsupported[k]) != NULL)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute '%s' is not supported",
                             unsupported[k]);
    if (bpx_attr_i(n, "input_forget", 0) != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n, "attribute 'input_forget' = 1 is not supported");
    if (gru && bpx_attr_i(n, "linear_before_reset", 0) != 1)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "attribute 'linear_before_reset' = 0: only 1 (PyTorch's nn.GRU, the "
                         "reset gate applied after the hidden matmul) is supported");
    const Onnx__AttributeProto *dir = bpx_attr_of(n, "direction");
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
    const Onnx__AttributeProto *acts = bpx_attr_of(n, "activations");
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
    const int64_t layout = bpx_attr_i(n, "layout", 0);
    if (strcmp(n->input[0], x->name) != 0 || x->rank != 3 ||
        strcmp(x->tag, layout ? "NTF" : "TNF") != 0)
        return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                         "input X has the layout %s (N batch, T steps, F features; a graph "
                         "input's first axis is its batch): layout %lld needs %s data",
                         x->tag, (long long)layout, layout ? "[N x T x F]" : "[T x N x F]");
    const size_t steps = (size_t)x->dims[layout ? 1 : 0], f = (size_t)x->dims[2];
    const int64_t hid = bpx_attr_i(n, "hidden_size", 0);
    const bpx_tensor *w = bpx_in_const(im, n, 1), *r = bpx_in_const(im, n, 2),
                     *b = bpx_in_const(im, n, 3);
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
    step *s = bpx_new_step(im, lstm ? S_LSTM : gru ? S_GRU : S_RNN, n);
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
bp_status bpx_map_gather(importer *im, const Onnx__NodeProto *n, const bpx_value *x,
                         const bpx_value *y)
{
    static const char *const known[] = {"axis", NULL};
    BP_CHECK(bpx_check_attrs(n, known));
    const bpx_tensor *table = bpx_in_const(im, n, 0);
    if (table != NULL) {
        if (!im->int_input || strcmp(x->name, im->input_name) != 0 || im->nsteps != 0 ||
            bpx_attr_i(n, "axis", 0) != 0)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "a Gather from a constant table is supported as the first layer "
                             "(an embedding) on the integer graph input [N x T], axis 0");
        if (table->rank != 2 || table->type != BPX_F32 || table->dims[0] < 1 || table->dims[1] < 1)
            return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                             "input 'data' must be a constant float table [V x E]");
        step *s = bpx_new_step(im, S_EMBED, n);
        if (s == NULL) return bpx_fail(BP_ERR_NOMEM, "out of memory");
        s->vocab = (size_t)table->dims[0];
        s->units = (size_t)table->dims[1];
        s->nw = table->count;
        s->w = bpx_copy_floats(table->f, table->count);
        return s->w != NULL ? BP_OK : bpx_fail(BP_ERR_NOMEM, "out of memory");
    }
    const bpx_tensor *idx = bpx_in_const(im, n, 1);
    int64_t axis = bpx_attr_i(n, "axis", 0);
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
        prev->out_width = bpx_value_row(y);
        return BP_OK;
    }
    return NODE_FAIL(BP_ERR_UNSUPPORTED, n,
                     "attribute 'axis' = %lld, index %lld: only the last step (index -1 on the "
                     "time axis) of a recurrent layer's output, right after it, is supported",
                     (long long)axis, (long long)idx->i[0]);
}
