/*
 * backprop_onnx.h -- ONNX interchange: import models trained elsewhere into a bp_net, export
 * a bp_net as an ONNX model.
 *
 * An optional component: libbackprop_onnx (CMake target backprop::onnx), built when
 * protobuf-c and the ONNX schema are found (BP_WITH_ONNX). libbackprop itself never links
 * protobuf-c; this library uses only its public API (backprop.h). docs/onnx.md lists the
 * operators, how each is mapped and its limits.
 *
 *     bp_net *net;
 *     if (bp_onnx_import(&net, "mlp.onnx", 42) != BP_OK) {      // trained in PyTorch
 *         fprintf(stderr, "%s\n", bp_onnx_last_error());        // names op, node, attribute
 *         return 1;
 *     }
 *     bp_net_predict(net, x, n, y, n * bp_net_output_size(net));  // or fine-tune it:
 *     bp_net_train_step(net, opt, BP_LOSS_MSE, x, t, n, &loss);
 *     bp_onnx_export(net, "tuned.onnx", BP_ONNX_DYNAMIC_BATCH);  // back to other runtimes
 *
 * Import reads a graph whose operators form a chain from its one dynamic input to its one
 * output (after folding constant and shape-only subgraphs) and maps it onto layers: Gemm or
 * MatMul + Add -> dense, Conv -> conv2d, BatchNormalization -> batchnorm (with its running
 * statistics), pooling, flatten, RNN/LSTM/GRU -> the recurrent layers (with the layout nodes
 * exporters write around them), activations (fused into the preceding dense or conv layer
 * when it has none); per-feature Sub + Mul (or Div) at the start of the chain and Div (or
 * Mul) + Add at its end become the net's input and target scalers (bp_net_set_scaler(), as
 * BP_ONNX_SCALERS writes them). The imported net is an ordinary net: trainable, savable,
 * clonable.
 * Every construct outside that subset fails with BP_ERR_UNSUPPORTED and a message naming
 * the operator, the node and the attribute.
 *
 * Hostile input: messages nested more than 64 levels deep are refused before parsing, the
 * parser's allocations are capped at BP_ONNX_PARSE_FACTOR times the input's size plus
 * 64 KiB, tensors are checked against the bytes they hold before
 * anything is allocated for them, and the net an import builds is bounded by the input's
 * size (docs/onnx.md "Limits"); a malformed input gives BP_ERR_FORMAT, never a crash.
 *
 * Errors: every function returns a bp_status; the message is in the thread-local
 * bp_onnx_last_error() (the core library's bp_last_error() keeps its own messages).
 * Thread safety: as backprop.h (distinct nets are independent; no global state except the
 * thread-local message).
 */
#ifndef BACKPROP_ONNX_H
#define BACKPROP_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "backprop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @def BP_ONNX_API
 * Marks the exported functions of libbackprop_onnx (as BP_API does for libbackprop). Define
 * BP_STATIC when linking the static libraries on Windows. */
#ifndef BP_ONNX_API
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(BP_ONNX_BUILDING_SHARED)
#define BP_ONNX_API __declspec(dllexport)
#elif defined(BP_STATIC)
#define BP_ONNX_API
#else
#define BP_ONNX_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#define BP_ONNX_API __attribute__((visibility("default")))
#else
#define BP_ONNX_API
#endif
#endif

/** The lowest and highest ONNX operator-set versions (default domain) that import accepts;
 *  export writes BP_ONNX_EXPORT_OPSET. Opsets 11-17 are what PyTorch and other current
 *  exporters write and what the tests exercise with PyTorch models; older models load when
 *  their operators use the current forms (the legacy attributes of opsets 1-6, such as
 *  consumed_inputs, broadcast or is_test on BatchNormalization, are reported as
 *  unsupported). */
#define BP_ONNX_OPSET_MIN    1
#define BP_ONNX_OPSET_MAX    17
#define BP_ONNX_EXPORT_OPSET 13

/** Parsing allocates at most this many bytes per byte of input (plus 64 KiB). A protobuf
 *  message of two bytes can decode into a struct of a few hundred bytes, so hostile input
 *  could otherwise make the parser allocate over 100 times its size; real models stay far
 *  below this (their bulk is tensor data, decoded one to one). */
#define BP_ONNX_PARSE_FACTOR 64

/** Flags of bp_onnx_export() (OR them). */
enum bp_onnx_flag {
    BP_ONNX_DYNAMIC_BATCH = 1, /**< the batch dimension of the input and output is the
                                    symbolic "N" instead of 1 */
    BP_ONNX_SCALERS = 2        /**< the scalers kept with the net (bp_net_set_scaler())
                                    become part of the graph, so that it maps raw inputs to
                                    outputs in the targets' original units, as
                                    bp_net_predict() with BP_NET_APPLY_SCALERS = 1 does:
                                    the input scaler as Sub (offset) then Mul (scale)
                                    before the first layer, the target scaler as Div
                                    (scale) then Add (offset) after the last. Import reads
                                    such nodes back into scalers. Nothing is added for a
                                    scaler that is not set. @since 0.2 */
};

/** @return the detailed message of the calling thread's last failed bp_onnx_ call ("" if
 *  none), e.g. "node 'Conv_3' (Conv): attribute 'group' = 2: only group 1 is supported".
 *  Thread-local; valid until the thread's next bp_onnx_ call. @since 0.2 */
BP_ONNX_API const char *bp_onnx_last_error(void);

/** Import an ONNX model file into a new network.
 *  @param out   receives the new network (NULL on failure); free with bp_net_free().
 *  @param path  the .onnx file (a serialised ModelProto).
 *  @param seed  seeds the net's generator (dropout masks and later re-initialisation;
 *               the imported weights do not depend on it).
 *  @return BP_OK, BP_ERR_INVALID_ARG (NULL argument), BP_ERR_IO (cannot read, or not a regular
 *  file: FIFOs and devices are refused without reading), BP_ERR_FORMAT
 *  (not a valid ModelProto, inconsistent tensors or shapes), BP_ERR_UNSUPPORTED (an
 *  operator, attribute, data type or graph shape outside the supported subset),
 *  BP_ERR_NONFINITE (NaN/Inf in a weight), BP_ERR_NOMEM. @since 0.2 */
BP_ONNX_API bp_status bp_onnx_import(bp_net **out, const char *path, uint64_t seed);

/** Import a serialised ModelProto from memory; as bp_onnx_import().
 *  @param out   receives the new network (NULL on failure).
 *  @param buf   the bytes; not retained.
 *  @param size  bytes in @p buf, >= 1.
 *  @param seed  seeds the net's generator.
 *  @return as bp_onnx_import() (without BP_ERR_IO). @since 0.2 */
BP_ONNX_API bp_status bp_onnx_import_buffer(bp_net **out, const void *buf, size_t size,
                                            uint64_t seed);

/** Write the network as an ONNX model (IR version 8, opset BP_ONNX_EXPORT_OPSET): one
 *  graph input "input" of shape [N, in] ([N, C, H, W] for image nets, [N, T, F] for
 *  sequence nets), one output "output", nodes and initializers named after the layers
 *  ("dense0.weight", ...). The net is not modified. Its scalers are written only with
 *  BP_ONNX_SCALERS. Dropout layers are omitted (inference graph); batch normalisation is
 *  written in inference form with its running statistics; recurrent layers as ONNX RNN,
 *  LSTM, GRU (layout 0) between Transpose and Reshape nodes. The file is replaced
 *  atomically (written beside it, then renamed).
 *  @param net    the network (at least one layer).
 *  @param path   the file to write.
 *  @param flags  0 or enum bp_onnx_flag values ORed.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (no layers), BP_ERR_UNSUPPORTED (a layer
 *  with no ONNX form), BP_ERR_IO, BP_ERR_NOMEM. @since 0.2 */
BP_ONNX_API bp_status bp_onnx_export(bp_net *net, const char *path, int flags);

/** Write the network as an ONNX model into a caller buffer; as bp_onnx_export().
 *  @param net       the network.
 *  @param buf       receives the model (may be NULL when @p capacity is 0).
 *  @param capacity  bytes @p buf can hold.
 *  @param size      receives the model's size in bytes (also on BP_ERR_BUFFER_TOO_SMALL, so
 *                   a first call with capacity 0 sizes it).
 *  @param flags     0 or enum bp_onnx_flag values ORed.
 *  @return as bp_onnx_export(), or BP_ERR_BUFFER_TOO_SMALL. @since 0.2 */
BP_ONNX_API bp_status bp_onnx_export_buffer(bp_net *net, void *buf, size_t capacity, size_t *size,
                                            int flags);

#ifdef __cplusplus
}
#endif

#endif /* BACKPROP_ONNX_H */
