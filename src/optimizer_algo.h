/* optimizer_algo.h -- the table of optimizer algorithms, private to optimizer.c (which holds
 * the table, settings, binding and codec) and optimizer_step.c (which runs a step with it). */
#ifndef BP_OPTIMIZER_ALGO_H
#define BP_OPTIMIZER_ALGO_H

#include "util.h"
#include "optimizer.h"
#include "optimizer_kernels.h"

/* A setting that applies to an algorithm, with its default there. */
typedef struct bp__opt_setting {
    int key; /* enum bp_optimizer_key; 0 ends the list */
    double def;
} bp__opt_setting;

#define OPT_MAX_KEYS 8

typedef struct bp__opt_algo {
    const char *name;
    size_t nslots;                      /* per-parameter state floats (<= BP__OPT_MAX_SLOTS) */
    bp__opt_setting keys[OPT_MAX_KEYS]; /* the settings that apply, with their defaults */
    int init_slot, init_key;            /* slot init_slot starts at setting init_key (0: every
                                           slot starts at 0) */
    /* Settings consistency at each step (NULL: nothing to check); message in o->err. */
    bp_status (*check)(bp_optimizer *o);
    /* Scalars of step t beyond the common ones (NULL: none). */
    void (*scalars)(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k);
    /* 1 when those scalars change from step to step (t, NAdam's product): computed at each
     * step; 0 when they depend on the settings alone (SGD: and on sgd_buf_ready, whose
     * change clears the cache), computed once with them (struct bp_optimizer's k). */
    int per_step;
    /* Update n parameters p from their gradients g and their state slots s. */
    void (*update)(const bp_optimizer *o, const bp__opt_scalars *k, float *p, const float *g,
                   bp__opt_slots s, size_t n);
    /* After a successful update: scalar state (NULL: none). */
    void (*stepped)(bp_optimizer *o, const bp__opt_scalars *k);
    /* The update guard's bound on one update (optimizer_kernels.c). Required. */
    double (*bound)(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b);
    /* Checkpoint codec: the slots whose values are never negative (sums of squares, maxima of
     * magnitudes, step sizes); bit s stands for slot s. */
    unsigned nonneg;
} bp__opt_algo;

/* One row per enum bp_optimizer_kind (optimizer.c); row 0 and unknown kinds are empty. */
extern const bp__opt_algo bp__opt_algos[];

/* The row of @p o's algorithm. */
static inline const bp__opt_algo *bp__opt_algo_of(const bp_optimizer *o)
{
    return &bp__opt_algos[o->kind];
}

/* The per-step work that depends on the settings alone, done once after they change
 * (optimizer.c, for optimizer_step.c): the algorithm's settings check, then the scalars kept
 * in o->k. BP_ERR_STATE (message in o->err) when the check fails. */
bp_status bp__optimizer_prepare(bp_optimizer *o);

#endif /* BP_OPTIMIZER_ALGO_H */
