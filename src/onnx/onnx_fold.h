/*
 * onnx_fold.h -- private to the folder's files (onnx_fold.c, onnx_fold_ops.c): the helpers
 * onnx_fold.c defines for the operators of onnx_fold_ops.c, and those operators.
 */
#ifndef BP_ONNX_FOLD_H
#define BP_ONNX_FOLD_H

#include "onnx_internal.h"

/* ---- helpers (onnx_fold.c) ---- */
int64_t bpx_fold_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def);
int bpx_fold_const_ints(const bpx_value *v, int64_t *out, size_t cap, size_t *count);
int bpx_fold_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, size_t cap,
                       size_t *count);
bp_status bpx_fold_decline(bpx_graph *gr, const char *fmt, ...) BPX_PRINTF(2, 3);
size_t bpx_fold_capped_count(size_t rank, const int64_t *dims);
bp_status bpx_fold_out_bcast(bpx_graph *gr, const Onnx__NodeProto *n, bpx_tensor *t, size_t axis);
bp_status bpx_fold_out_const(bpx_graph *gr, const Onnx__NodeProto *n, bpx_tensor *t);
double bpx_fold_get_num(const bpx_tensor *t, size_t k);

/* ---- the operators with more arithmetic (onnx_fold_ops.c) ---- */
bp_status bpx_fold_binary(bpx_graph *gr, const Onnx__NodeProto *n, const bpx_value *a,
                          const bpx_value *b, int *done);
void bpx_fold_copy_elem(bpx_tensor *dst, size_t to, const bpx_tensor *src, size_t from);
bp_status bpx_fold_slice(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, int *done);
bp_status bpx_fold_expand(bpx_graph *gr, const Onnx__NodeProto *n, const bpx_value *xv,
                          const bpx_value *shv, int *done);
bp_status bpx_fold_transpose(bpx_graph *gr, const Onnx__NodeProto *n, const bpx_value *xv,
                             int *done);
bp_status bpx_fold_select(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, int *done);
bp_status bpx_fold_reshape(bpx_graph *gr, const Onnx__NodeProto *n, bpx_value **in, int *done);

#endif /* BP_ONNX_FOLD_H */
