/*
 * fit.h -- the training loop's own state (train.c): its settings (net keys 400..), the epoch
 * and batch callbacks, the history of the last bp_net_fit call, the counters a resumed fit
 * continues from, and their checkpoint section FIT (docs/format.md). Each net holds one,
 * created with the net; train.c interprets it, history.c reads and grows its history.
 */
#ifndef BP_FIT_H
#define BP_FIT_H

#include "util.h"

struct bp__wr;
struct bp__rd;

/* Settings are stored by key: set[key - FIT_KEY_FIRST] for enum bp_fit_key. */
#define FIT_KEY_FIRST 400
#define FIT_KEY_COUNT 17
/* Setting @p key of a struct bp__fit @p f; the key must be valid. */
#define FIT_SET(f, key) ((f)->set[(key)-FIT_KEY_FIRST])
/* A history row: the absolute epoch number, then the BP_METRIC_COUNT metrics. */
#define FIT_ROW (1 + BP_METRIC_COUNT)

struct bp__fit {
    double set[FIT_KEY_COUNT];  /* settings */
    bp_epoch_fn callback;       /* per-epoch callback or NULL ... */
    bp_epoch_fn_v2 callback_v2; /* ... or this one (setting either clears the other) */
    void *callback_user;
    bp_batch_fn batch_fn; /* per-batch progress hook or NULL */
    void *batch_user;
    /* History of the last bp_net_fit call: history_len rows of FIT_ROW doubles, room for
     * history_cap rows, allocated from the net's allocator. */
    double *history;
    size_t history_len, history_cap;
    /* Counters that survive between fit calls, for a bit-identical resume (a checkpoint
     * saves them with net->rng and set[] in its FIT section; a fit call with INITIAL_EPOCH
     * == 0 resets them, one with INITIAL_EPOCH > 0 continues from them): */
    size_t next_epoch;      /* absolute index of the epoch after the last completed one */
    double plateau_lr;      /* reduce-on-plateau: current rate (0: not started) */
    double plateau_best;    /* best monitored loss seen by the plateau schedule */
    size_t plateau_wait;    /* epochs since that loss last improved */
    double stop_best;       /* early stopping: best monitored loss (+inf: none yet) */
    size_t stop_wait;       /* epochs since it last improved */
    size_t stop_best_epoch; /* absolute epoch at which it was reached */
};

/* history.c: free the history (leaving it empty); make room for @p rows rows, keeping the
 * recorded ones (BP_ERR_NOMEM with the message on the net). */
void bp__history_free(bp_net *net);
bp_status bp__history_reserve(bp_net *net, size_t rows);

/* Give @p net its fit state (net->fit): default settings, no callback, empty history, reset
 * counters; allocated from the net's allocator. BP_ERR_NOMEM (message left to the caller). */
bp_status bp__fit_create(bp_net *net);
/* Free net->fit and its history (NULL: no-op). */
void bp__fit_free(bp_net *net);
/* Copy settings, callback and counters from src's fit state into dst's (bp_net_clone); the
 * history is not copied (dst's is freed and left empty). Does not allocate. */
void bp__fit_copy(bp_net *dst, const bp_net *src);
/* Reset the counters a resumed fit continues from (a fit call from epoch 0). */
void bp__fit_reset_counters(struct bp__fit *f);
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
