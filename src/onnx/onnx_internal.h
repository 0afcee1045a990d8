/*
 * onnx_internal.h -- shared between the files of libbackprop_onnx: the thread-local message,
 * the bounded protobuf allocator, tensors decoded to float or int64, and constant folding.
 * Uses only the public API of libbackprop (backprop.h) and the protoc-c bindings.
 */
#ifndef BP_ONNX_INTERNAL_H
#define BP_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "backprop.h"
#include "backprop_onnx.h"
#include "onnx.pb-c.h"

#if defined(__GNUC__)
#define BPX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define BPX_PRINTF(a, b)
#endif

/* Forward a non-OK status unchanged. */
#define BP_CHECK(expr)                                                                             \
    do {                                                                                           \
        const bp_status bpx_check_s_ = (expr);                                                     \
        if (bpx_check_s_ != BP_OK) return bpx_check_s_;                                            \
    } while (0)

/* Record @p status with a message in bp_onnx_last_error(); returns @p status. */
bp_status bpx_fail(bp_status status, const char *fmt, ...) BPX_PRINTF(2, 3);
/* Clear the message (start of every public call). */
void bpx_clear_error(void);
/* A core call failed with @p s: prefix its bp_last_error() with @p what. */
bp_status bpx_fail_core(bp_status s, const char *what);

/* Most dimensions a tensor may have, and most elements a folded (shape) tensor may have. */
#define BPX_MAX_RANK       8
#define BPX_MAX_FOLD_ELEMS 4096

/* A tensor decoded from a TensorProto, a Constant node or folding: float (weights) or int64
 * (shape arithmetic). The special int64 value BPX_BATCH stands for the batch dimension,
 * whose size import leaves open. */
#define BPX_BATCH INT64_MIN
enum { BPX_F32 = 1, BPX_I64 = 7 };
typedef struct bpx_tensor {
    int type; /* BPX_F32 or BPX_I64 */
    size_t rank;
    int64_t dims[BPX_MAX_RANK];
    size_t count; /* product of dims */
    float *f;     /* [count] when BPX_F32 */
    int64_t *i;   /* [count] when BPX_I64 */
} bpx_tensor;

void bpx_tensor_free(bpx_tensor *t);
/* Decode @p tp: float32, float16, bfloat16 and float64 (rounded; out-of-range values are
 * BP_ERR_UNSUPPORTED) to float; int64, int32, int8/16, uint8/16 and bool to int64. The
 * declared element count is checked against the data before allocating (BP_ERR_FORMAT).
 * @p what names the tensor in messages. */
bp_status bpx_tensor_decode(bpx_tensor *t, const Onnx__TensorProto *tp, const char *what);
bp_status bpx_tensor_new(bpx_tensor *t, int type, size_t rank, const int64_t *dims);

/* Messages nested deeper than this are refused before parsing (protobuf-c recurses per
 * level; a 2 MB file can nest 600,000 levels). Real models nest about 8 levels. */
#define BPX_MAX_NESTING 64
/* 0 when @p buf nests messages deeper than BPX_MAX_NESTING. */
int bpx_nesting_ok(const uint8_t *buf, size_t size);

/* The protobuf allocator with a byte budget (BP_ONNX_PARSE_FACTOR x input + 64 KiB). */
typedef struct bpx_budget {
    size_t limit, used;
    int exceeded;
} bpx_budget;
void bpx_allocator_init(ProtobufCAllocator *a, bpx_budget *b, size_t input_size);

/* ---- import graph state shared by the folding pass (onnx_fold.c) ---- */
typedef struct bpx_value {
    const char *name;
    int is_const; /* a constant tensor (initializer, Constant, folded) */
    bpx_tensor t; /* when is_const or bcast */
    int bcast;    /* a constant repeated along the batch axis, whose size import leaves
                     open (ConstantOfShape or Expand to a shape taken from the data, as
                     exporters build RNN initial states): t holds it with that axis of
                     size 1. Neither constant nor data: only an RNN/LSTM/GRU initial
                     state may read one */
    size_t bcast_axis;
    int has_shape; /* a dynamic value with a known shape (one dimension BPX_BATCH) */
    size_t rank;
    int64_t dims[BPX_MAX_RANK];
    /* what each axis of a dynamic value is: 'N' batch, 'T' time steps, 'F' features, 'D'
     * direction of a recurrent layer's output, 'C' 'Y' 'X' channels and image rows and
     * columns, '1' an axis of size 1 added by Unsqueeze, '?' none of these */
    char tag[BPX_MAX_RANK + 1];
} bpx_value;

typedef struct bpx_graph {
    const Onnx__GraphProto *g;
    int64_t opset;
    bpx_value *values; /* [nvalues] */
    size_t nvalues, cap;
    size_t fold_budget; /* elements folding may still create (bounded by the input size) */
    char why[320];      /* why bpx_fold_node() left its last node unfolded ("" if no reason
                           applies: the node reads data) */
} bpx_graph;

/* The value named @p name, or NULL. */
bpx_value *bpx_find(bpx_graph *gr, const char *name);
/* Add a value (the name is borrowed from the protobuf message); NULL when out of memory. */
bpx_value *bpx_add(bpx_graph *gr, const char *name);
/* The node's display name for messages: its name, else its first output. */
const char *bpx_node_name(const Onnx__NodeProto *n);
/* The attribute @p name of @p n, or NULL. */
const Onnx__AttributeProto *bpx_attr(const Onnx__NodeProto *n, const char *name);
/* Fold node @p n when its inputs are all constant (or batch-repeated constants, or it is
 * Shape of a value whose shape is known) and its operator is a constant or shape operator:
 * its output becomes a constant (or batch-repeated) value and *done = 1. Otherwise *done = 0
 * and nothing changes (BP_OK; gr->why says why when the node reads no data), or a
 * failure. */
bp_status bpx_fold_node(bpx_graph *gr, const Onnx__NodeProto *n, int *done);
/* 1 when @p v is a batch-repeated constant of zeros (an RNN initial state that is "none"). */
int bpx_is_zero_bcast(const bpx_value *v);

#endif /* BP_ONNX_INTERNAL_H */
