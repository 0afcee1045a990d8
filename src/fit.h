/*
 * fit.h -- the training loop's settings, history and counters (train.c).
 */
#ifndef BP_FIT_H
#define BP_FIT_H

#include "util.h"

/* ---- fit ---- */
/* The training loop's state (train.c), one per network. It sits here rather than at the
 * end of the file because struct bp_net embeds it. */

/* Settings are stored by key: set[key - BP__FIT_KEY_FIRST] for enum bp_fit_key. */
#define BP__FIT_KEY_FIRST 400
#define BP__FIT_KEY_COUNT 14
#define BP__FIT_ROW (1 + BP_METRIC_COUNT)

typedef struct bp__fit_state {
    double set[BP__FIT_KEY_COUNT]; /* settings (defaults from bp__fit_init) */
    bp_epoch_fn callback;          /* per-epoch callback or NULL */
    void *callback_user;
    /* History of the last bp_net_fit call: history_len rows of BP__FIT_ROW doubles (the
     * absolute epoch number, then the BP_METRIC_COUNT metrics), room for history_cap rows,
     * allocated from the net's allocator. */
    double *history;
    size_t history_len, history_cap;
    /* Counters that survive between fit calls, for a bit-identical resume (a checkpoint
     * saves them with net->rng and set[]; a fit call with INITIAL_EPOCH == 0 resets them,
     * one with INITIAL_EPOCH > 0 continues from them): */
    size_t next_epoch;        /* absolute index of the epoch after the last completed one */
    double plateau_lr;        /* reduce-on-plateau: current rate (0: not started) */
    double plateau_best;      /* best monitored loss seen by the plateau schedule */
    size_t plateau_wait;      /* epochs since that loss last improved */
    double stop_best;         /* early stopping: best monitored loss (+inf: none yet) */
    size_t stop_wait;         /* epochs since it last improved */
    size_t stop_best_epoch;   /* absolute epoch at which it was reached */
} bp__fit_state;

/* Default settings, no callback, empty history, reset counters. */
void bp__fit_init(bp__fit_state *f);
/* Free the history (bp_net_free). */
void bp__fit_release(bp_net *net);
/* Copy settings, callback and counters from src's fit state into dst's (bp_net_clone); the
 * history is not copied (dst's is freed and left empty). Does not allocate. */
void bp__fit_copy(bp_net *dst, const bp_net *src);
/* Is @p key one of the fit settings (block 400)? */
int bp__fit_is_key(int key);
/* bp_net_set / bp_net_get / bp_net_param_bounds for the fit keys. */
bp_status bp__fit_set(bp_net *net, int key, double value);
bp_status bp__fit_get(const bp_net *net, int key, double *value);
bp_status bp__fit_bounds(int key, double *lo, double *hi);

#endif /* BP_FIT_H */
