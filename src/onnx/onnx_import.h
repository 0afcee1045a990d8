/*
 * onnx_import.h -- private to the importer's files (onnx_import*.c): the planned steps, the
 * importer's state, and the helpers and passes one of those files defines and another uses.
 */
#ifndef BP_ONNX_IMPORT_H
#define BP_ONNX_IMPORT_H

#include "onnx_internal.h"

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

/* ---- small helpers (onnx_import.c) ---- */
const Onnx__AttributeProto *bpx_attr_of(const Onnx__NodeProto *n, const char *name);
int64_t bpx_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def);
double bpx_attr_f(const Onnx__NodeProto *n, const char *name, double def);
bp_status bpx_check_attrs(const Onnx__NodeProto *n, const char *const *known);
bpx_value *bpx_in_value(importer *im, const Onnx__NodeProto *n, size_t k);
const bpx_tensor *bpx_in_const(importer *im, const Onnx__NodeProto *n, size_t k);
size_t bpx_row_size(size_t rank, const int64_t *dims);
size_t bpx_value_row(const bpx_value *v);
int bpx_is_recurrent(const char *op);
void bpx_core_tags(const bpx_value *v, char *out);
int bpx_batch_first(const char *core);
step *bpx_new_step(importer *im, int kind, const Onnx__NodeProto *n);
float *bpx_copy_floats(const float *src, size_t n);
#define NODE_FAIL(st, n, ...) bpx_node_fail((st), (n), __VA_ARGS__)
bp_status bpx_node_fail(bp_status st, const Onnx__NodeProto *n, const char *fmt, ...)
    BPX_PRINTF(3, 4);

/* ---- shape inference (onnx_import_shape.c) ---- */
int bpx_auto_pad_is(const Onnx__NodeProto *n, const char *what);
int bpx_auto_pad_same(const Onnx__NodeProto *n);
int bpx_infer_shape(importer *im, const Onnx__NodeProto *n, const bpx_value *x, size_t *rank,
                    int64_t *dims, char *tags);
int bpx_infer_recurrent(const Onnx__NodeProto *n, const bpx_value *x, size_t out, size_t *rank,
                        int64_t *dims, char *tags);

/* ---- the chain walk (onnx_import_walk.c) ---- */
bp_status bpx_walk_chain(importer *im);

/* ---- mapping one node onto planned steps (onnx_import_map.c, onnx_import_seq.c) ---- */
bp_status bpx_add_act(importer *im, const Onnx__NodeProto *n, int act, double param);
bp_status bpx_map_node(importer *im, const Onnx__NodeProto *n, const bpx_value *x,
                       const bpx_value *y);
bp_status bpx_map_recurrent(importer *im, const Onnx__NodeProto *n, const bpx_value *x,
                            const bpx_value *y);
bp_status bpx_map_gather(importer *im, const Onnx__NodeProto *n, const bpx_value *x,
                         const bpx_value *y);

#endif /* BP_ONNX_IMPORT_H */
