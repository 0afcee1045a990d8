/*
 * layer_kinds.h -- the layer kinds' vtables, for the registry (layer_registry.c).
 */
#ifndef BP_LAYER_KINDS_H
#define BP_LAYER_KINDS_H

#include "layer.h"

/* Layer kinds and helpers (layer.c, layer_*.c). */
extern const bp__layer_vtable bp__dense_vtable;
extern const bp__layer_vtable bp__batchnorm_vtable;
extern const bp__layer_vtable bp__dropout_vtable;
extern const bp__layer_vtable bp__activation_vtable;
extern const bp__layer_vtable bp__conv2d_vtable;
extern const bp__layer_vtable bp__maxpool2d_vtable;
extern const bp__layer_vtable bp__avgpool2d_vtable;
extern const bp__layer_vtable bp__global_avgpool_vtable;
extern const bp__layer_vtable bp__flatten_vtable;
/* sequences */
extern const bp__layer_vtable bp__embedding_vtable;
extern const bp__layer_vtable bp__layernorm_vtable;
/* recurrent layers (layer_rnn.c, layer_lstm.c, layer_gru.c; shared code in recurrent.c) */
extern const bp__layer_vtable bp__rnn_vtable;
extern const bp__layer_vtable bp__lstm_vtable;
extern const bp__layer_vtable bp__gru_vtable;

/* Tests only: the dense layer's single-row forward and backward (n = 1) with the kernel
 * chosen by @p narrow (1: the scalar kernels of narrow rows, 0: the vectorised ones) whatever
 * the layer's widths; its forward and backward choose by BP__NARROW_WIDTH. Arguments as the
 * vtable's forward and backward (backward returns 1 when the kernel proved dW and db
 * finite). */
void bp__dense_row_forward_with(bp_layer *l, int narrow, const float *x, float *z, float *y);
int bp__dense_row_backward_with(bp_layer *l, int narrow, const float *x, float *z, const float *y,
                                float *dy, int dy_is_dz, float *dx, int accumulate);

/* Floats of im2col columns per convolution chunk (layer_conv2d.c; default 0: 1 Mi with a
 * thread budget above 1, 64 Ki on one thread). Written only by tests and the benchmarks, to
 * force several chunks per batch; never while a net runs. */
extern size_t bp__conv_chunk_floats;

#ifdef BP_PROFILE
/* Only in the bench's profiled build of layer_conv2d.c: nanoseconds spent in im2col and
 * col2im, in the layer's sgemm calls, and in the whole layer (forward + backward). */
enum { BP__PROF_COLS, BP__PROF_GEMM, BP__PROF_TOTAL };
extern double bp__conv_prof_ns[3];
#endif

#endif /* BP_LAYER_KINDS_H */
