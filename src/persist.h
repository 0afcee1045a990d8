/*
 * persist.h -- per-net persistence data: scalers, metadata (serialize.c).
 */
#ifndef BP_PERSIST_H
#define BP_PERSIST_H

#include "util.h"

/* Per-net persistence data (serialize.c): released by bp_net_free, copied by bp_net_clone. */
void bp__persist_free(bp_net *net);
bp_status bp__persist_clone(bp_net *dst, const bp_net *src);

/* Training-state records saved in a checkpoint's TRST section (docs/format.md): free-form
 * (key, bytes) pairs kept on the net, e.g. the fit loop's versioned state blob under the key
 * "fit". put copies @p len bytes of @p data (data may be NULL when len is 0) and replaces a
 * record with the same key; a NULL @p data with len 0 removes the record (BP_OK if absent).
 * Keys: 1 .. 255 bytes, NUL-terminated; records: at most 65536 per net, each at most
 * 2^30 bytes. BP_ERR_INVALID_ARG, BP_ERR_OUT_OF_RANGE, BP_ERR_NOMEM (net unchanged). */
bp_status bp__ckpt_state_put(bp_net *net, const char *key, const void *data, size_t len);
/* Find a record: *data (borrowed until the next put on @p net or its free) and *len.
 * BP_ERR_INDEX when absent (then *data = NULL, *len = 0). */
bp_status bp__ckpt_state_get(const bp_net *net, const char *key, const void **data,
                             size_t *len);

#endif /* BP_PERSIST_H */
