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


#ifdef BP_PROFILE
/* Only in the bench's profiled build of layer_conv2d.c: nanoseconds spent in im2col and
 * col2im, in the layer's sgemm calls, and in the whole layer (forward + backward). */
enum { BP__PROF_COLS, BP__PROF_GEMM, BP__PROF_TOTAL };
extern double bp__conv_prof_ns[3];
#endif

#endif /* BP_LAYER_KINDS_H */
