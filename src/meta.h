/*
 * meta.h -- what a net keeps for its files besides its layers: the input/target scalers and
 * the key/value metadata (meta.c), with their file sections SCAL and META (docs/format.md).
 */
#ifndef BP_META_H
#define BP_META_H

#include "util.h"

struct bp__wr;
struct bp__rd;

/* Released by bp_net_free, copied by bp_net_clone (BP_ERR_NOMEM: dst keeps what was copied,
 * freed with it). */
void bp__meta_free(bp_net *net);
bp_status bp__meta_clone(bp_net *dst, const bp_net *src);

/* BP_NET_APPLY_SCALERS, for predict and evaluate (walk.c): point *x at a copy of its @p rows
 * input rows with the stored input scaler applied (leave it when there is none), in a
 * buffer the net keeps (allocated at the first call, grown when a larger chunk comes); and
 * invert the stored target scaler on @p rows output rows in place. Failures (BP_ERR_NOMEM,
 * BP_ERR_NONFINITE when a value scales to Inf) with "@p fn: ..." on the net. */
bp_status bp__meta_scale_inputs(bp_net *net, const char *fn, const float **x, size_t rows);
bp_status bp__meta_unscale_outputs(bp_net *net, const char *fn, float *y, size_t rows);

/* For a save: BP_OK unless the target scaler no longer fits the net's output width
 * (BP_ERR_STATE, "@p fn: ..." in bp_last_error() only). */
bp_status bp__meta_check_save(const bp_net *net, const char *fn);

/* Section codecs, for serialize.c. has_* says whether the section is written at all; encode
 * writes the payload (counts only when w->p is NULL); decode reads it into a net that has
 * none yet, every value validated as the setters do; failures as the status with the message
 * in bp_last_error(). */
int bp__meta_has_scalers(const bp_net *net);
void bp__meta_encode_scalers(struct bp__wr *w, const bp_net *net);
bp_status bp__meta_decode_scalers(bp_net *net, struct bp__rd *r);
int bp__meta_has_entries(const bp_net *net);
void bp__meta_encode_entries(struct bp__wr *w, const bp_net *net);
bp_status bp__meta_decode_entries(bp_net *net, struct bp__rd *r);

#endif /* BP_META_H */
