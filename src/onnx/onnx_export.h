/*
 * onnx_export.h -- private to the exporter's files (onnx_export*.c): the arena that owns the
 * model's memory, the exporter's state, and the builders onnx_export.c defines for the
 * layers' nodes (onnx_export_layer.c).
 */
#ifndef BP_ONNX_EXPORT_H
#define BP_ONNX_EXPORT_H

#include "onnx_internal.h"

typedef struct arena {
    void **ptrs;
    size_t n, cap;
    int failed;
} arena;

/* Growable pointer arrays for the graph's repeated fields. */
typedef struct plist {
    void **v;
    size_t n, cap;
} plist;

typedef struct exporter {
    arena a;
    plist nodes, inits;
    size_t counter; /* for unique value names */
    char cur[96];   /* the current data value */
    size_t rank;    /* of the current value: 2 (flat), 3 (sequence [N x T x F]) or 4 */
    size_t in_feat; /* features per step of the current value (sequences) */
} exporter;

/* ---- the arena and the builders (onnx_export.c) ---- */
void *bpx_arena_calloc(arena *a, size_t n, size_t size);
char *bpx_arena_str(arena *a, const char *s);
char *bpx_fresh(exporter *e, const char *stem);
Onnx__NodeProto *bpx_node(exporter *e, const char *op, const char *name, size_t nin,
                          const char *const *in);
void bpx_attr_add(exporter *e, Onnx__NodeProto *n, Onnx__AttributeProto *at);
Onnx__AttributeProto *bpx_attr_new(exporter *e, const char *name, int type);
void bpx_attr_int(exporter *e, Onnx__NodeProto *n, const char *name, int64_t v);
void bpx_attr_float(exporter *e, Onnx__NodeProto *n, const char *name, double v);
void bpx_attr_ints(exporter *e, Onnx__NodeProto *n, const char *name, size_t count,
                   const int64_t *v);
const char *bpx_init_floats(exporter *e, const char *name, size_t rank, const int64_t *dims,
                            const float *data, size_t count);
const char *bpx_init_ints(exporter *e, const char *stem, const int64_t *v, size_t count);
const char *bpx_scalar(exporter *e, const char *stem, float v);
void bpx_flatten(exporter *e, const char *name);

/* ---- one layer -> nodes (onnx_export_layer.c) ---- */
bp_status bpx_export_layer(exporter *e, bp_layer *l, size_t index);

#endif /* BP_ONNX_EXPORT_H */
