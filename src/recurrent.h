/*
 * recurrent.h -- the machinery the recurrent layer kinds share (recurrent.c): the layer
 * geometry, backpropagation through time around a cell's fused step kernels, the stateful
 * mode's carried state, persistence. The cells themselves (their gates) are in
 * layer_rnn.c, layer_lstm.c and layer_gru.c.
 *
 * Shapes (one direction; bidirectional layers run this twice, the reverse direction with the
 * steps in reverse order): n rows, T steps, F input features, H hidden units, G gates
 * (rnn 1, lstm 4, gru 3), GH = G * H.
 *
 *   forward:  A = X W_ih^T               one GEMM, X [nT x F] (the rows' steps), A [nT x GH]
 *             for each step t (in the direction's order):
 *               R = h_prev W_hh^T        one GEMM, h_prev [n x H] (rows strided T*H)
 *               cell: gates from A_t + R + b_ih + b_hh, written over A_t; h_t, c_t
 *   backward: for each step in reverse order, dh_t = dY_t + dh from the later step:
 *               cell: dZ_t (dL/d of the input pre-activations), dZh_t (of the hidden
 *                     ones: the same but for the gru's n gate), dc_{t-1}
 *               dh_prev = dZh_t W_hh (+ the cell's direct term)   one GEMM per step
 *             then over all steps at once: dW_ih (+)= dZ^T X, dW_hh (+)= dZh^T Hin,
 *             db_ih (+)= sum dZ, db_hh (+)= sum dZh, dX (+)= dZ W_ih   (three GEMMs)
 *
 * Hin [nT x H] holds, at (i, t), the hidden state step t started from (h0 at the direction's
 * first step), so that dW_hh is one GEMM whatever the direction. */
#ifndef BP_RECURRENT_H
#define BP_RECURRENT_H

#include "util.h"
#include "layer.h"

/* Construction keys of the recurrent layer records (docs/format.md). Kept here, not in
 * layer.h's list, and numbered from 20 so that other kinds' keys (below 20) never collide. */
enum {
    BP__HP_HIDDEN = 20,    /* rnn, lstm, gru: hidden units H */
    BP__HP_RNN_FLAGS = 21, /* rnn, lstm, gru: enum bp_recurrent_flag bits */
    BP__HP_RNN_ACT = 22,   /* rnn: BP_ACT_TANH or BP_ACT_RELU */
    BP__HP_STATE_ROWS = 23 /* stateful rnn, lstm, gru with a carried state: its rows (the
                              state floats of the record are rows x D x carries x H) */
};

/* One step of a cell over n rows, forward. Row i of each buffer is at ptr + i * stride. */
typedef struct bp__rstep {
    size_t n, H;
    float *a; /* [n x GH], stride sa: in x W_ih^T, out the gate activations */
    size_t sa;
    const float *hh;     /* [n x GH] h_prev W_hh^T (contiguous) */
    const float *b_ih;   /* [GH] */
    const float *b_hh;   /* [GH] */
    const float *h_prev; /* [n x H], stride sh */
    size_t sh;
    float *h_out; /* [n x H], stride sho */
    size_t sho;
    const float *c_prev; /* lstm: [n x H], stride sc */
    size_t sc;
    float *c_out; /* lstm: [n x H], stride sco */
    size_t sco;
    float *aux; /* lstm: tanh(c_t); gru: W_hn h_prev + b_hn; [n x H], stride sx */
    size_t sx;
    const bp_layer *l; /* rnn: its activation */
} bp__rstep;

/* One step of a cell over n rows, backward (the forward step's buffers, read). */
typedef struct bp__rstep_back {
    size_t n, H;
    const float *a; /* gate activations, stride sa */
    size_t sa;
    const float *h_prev; /* stride sh */
    size_t sh;
    const float *c_prev; /* lstm, stride sc */
    size_t sc;
    const float *aux; /* stride sx */
    size_t sx;
    const float *dh; /* [n x H] dL/dh_t */
    float *dc;       /* lstm: [n x H] in dL/dc_t from the later steps, out dL/dc_{t-1} */
    float *dz;       /* [n x GH], stride sz: dL/d(input pre-activations) */
    float *dzh;      /* gru: [n x GH], stride sz: dL/d(hidden pre-activations) */
    size_t sz;
    float *dh_prev; /* [n x H]: the direct part of dL/dh_{t-1} (gru), if the cell has one */
    const bp_layer *l;
} bp__rstep_back;

/* A cell: its gates, carried states and per-step kernels. */
typedef struct bp__cell {
    const bp__layer_vtable *vt;
    const char *fn; /* its bp_net_add_* name, for messages */
    size_t gates;   /* G */
    size_t carries; /* 1 (h) or 2 (h, c) */
    size_t aux;     /* per-step floats of aux per row in units of H (0 or 1) */
    int split_dzh;  /* 1 when dZh differs from dZ (gru) */
    void (*forward)(const bp__rstep *s);
    /* Returns 1 when it wrote the direct part of dL/dh_{t-1} into dh_prev, else 0 (the
     * whole gradient then comes through W_hh). */
    int (*backward)(const bp__rstep_back *s);
} bp__cell;

/* Append a recurrent layer of @p cell (the kinds' bp_net_add_*): hidden units, activation
 * (rnn; BP_ACT_TANH for the others), flags. */
bp_status bp__rec_add(bp_net *net, const bp__cell *cell, size_t hidden, int activation, int flags);
/* The vtable entries the kinds share. */
size_t bp__rec_scratch(const bp_layer *l, size_t n, int training);
void bp__rec_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y, int training);
int bp__rec_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                     float *dy, int dy_is_dz, float *dx, int accumulate);
bp_status bp__rec_commit(bp_layer *l, const float *scratch, size_t n, int apply);
void bp__rec_destroy(bp_layer *l);
bp_status bp__rec_clone(bp_layer *dst, const bp_layer *src);
size_t bp__rec_hyper(const bp_layer *l, bp__hyper *hp, size_t cap);
bp_status bp__rec_construct(bp_net *net, const bp__cell *cell, const bp__hyper *hp, size_t count,
                            size_t expect_params);
size_t bp__rec_state_floats(const bp_layer *l);
void bp__rec_state_write(const bp_layer *l, float *dst);
bp_status bp__rec_state_read(bp_layer *l, const float *src, size_t count);
extern const bp__layer_key bp__rec_keys[];

/* Is @p l a recurrent layer (rnn, lstm, gru)? */
int bp__rec_is(const bp_layer *l);

/* The vtable of a recurrent kind: every entry is this module's except the kind, its name and
 * its construct (which passes its bp__cell to bp__rec_construct). */
#define BP__REC_VTABLE(KIND, NAME, CONSTRUCT)                                                      \
    {                                                                                              \
        .kind = (KIND), .name = (NAME), .scratch_floats = bp__rec_scratch,                         \
        .forward = bp__rec_forward, .backward = bp__rec_backward, .destroy = bp__rec_destroy,      \
        .clone = bp__rec_clone, .hyper = bp__rec_hyper, .construct = (CONSTRUCT),                  \
        .state_floats = bp__rec_state_floats, .state_write = bp__rec_state_write,                  \
        .state_read = bp__rec_state_read, .keys = bp__rec_keys, .commit = bp__rec_commit,          \
    }

#endif /* BP_RECURRENT_H */
