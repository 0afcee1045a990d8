/*
 * fit.h -- the training loop's own state (train.c): its settings (net keys 400..), the epoch
 * callback, the history of the last bp_net_fit call, the counters a resumed fit continues
 * from, and their checkpoint section FIT (docs/format.md). Each net holds one, created with
 * the net; only train.c interprets it.
 */
#ifndef BP_FIT_H
#define BP_FIT_H

#include "util.h"

struct bp__wr;
struct bp__rd;

/* Give @p net its fit state (net->fit): default settings, no callback, empty history, reset
 * counters; allocated from the net's allocator. BP_ERR_NOMEM (message left to the caller). */
bp_status bp__fit_create(bp_net *net);
/* Free net->fit and its history (NULL: no-op). */
void bp__fit_free(bp_net *net);
/* Copy settings, callback and counters from src's fit state into dst's (bp_net_clone); the
 * history is not copied (dst's is freed and left empty). Does not allocate. */
void bp__fit_copy(bp_net *dst, const bp_net *src);
/* Is @p key one of the fit settings (block 400)? */
int bp__fit_is_key(int key);
/* bp_net_set / bp_net_get / bp_net_param_bounds for the fit keys. */
bp_status bp__fit_set(bp_net *net, int key, double value);
bp_status bp__fit_get(const bp_net *net, int key, double *value);
bp_status bp__fit_bounds(int key, double *lo, double *hi);
/* Every fit setting back to its default (bp_net_reset_settings). */
void bp__fit_reset_settings(bp_net *net);

/* Checkpoint section FIT, for serialize.c: write the payload (counts only when w->p is NULL);
 * read one into @p net's fit state, every value validated (failures as the status with the
 * message in bp_last_error()). */
void bp__fit_encode(struct bp__wr *w, const bp_net *net);
bp_status bp__fit_decode(bp_net *net, struct bp__rd *r);

#endif /* BP_FIT_H */
