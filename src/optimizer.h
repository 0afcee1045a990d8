/*
 * optimizer.h -- the optimizer handle, its update and its checkpoint section (optimizer.c,
 * optimizer_step.c).
 * Which algorithms exist, their settings, state slots and kernels are optimizer.c's table;
 * the kernels themselves are in optimizer_kernels.c.
 */
#ifndef BP_OPTIMIZER_H
#define BP_OPTIMIZER_H

#include "util.h"

struct bp__wr;
struct bp__rd;

#define BP__MAGIC_OPT 0x4f505442u /* "BTPO" */

/* ---- optimizer ---- */

/* Settings are stored by key: set[key - BP__OPT_KEY_FIRST] for enum bp_optimizer_key. */
#define BP__OPT_KEY_FIRST 100
#define BP__OPT_KEY_COUNT 17
/* Most per-parameter state slots any algorithm uses (Adam/AdamW/RMSprop: 3). */
#define BP__OPT_MAX_SLOTS 3

/* Per-step scalars, computed once in double and rounded to float for the kernels. The
 * complements 1 - b are rounded from the double difference, not computed in float from the
 * rounded b (1 - 0.999f is 1.3e-5 away from 0.001 in relative terms). */
typedef struct bp__opt_scalars {
    float lr, wd, mom, b1, b2, eps;
    float c1, c2;           /* 1 - b1, 1 - b2 */
    float rho, c_rho;       /* RMSprop alpha, 1 - alpha */
    float a, c, kd, kb;     /* SGD momentum coefficients */
    float decay;            /* AdamW */
    float step, inv_bc2;    /* Adam family */
    float cg, cm;           /* NAdam */
    double mu_product_next; /* NAdam: P_t */
} bp__opt_scalars;

/* Magnitude bounds for the update guard (optimizer_step.c): every |parameter| <= p, every
 * |gradient| <= g, every |value| of state slot i <= s[i]. */
typedef struct bp__opt_bounds {
    double p, g, s[BP__OPT_MAX_SLOTS];
} bp__opt_bounds;

/* The optimizer. Its per-parameter state is ONE aligned block of nslots * bound_nparams
 * floats, slot-major: slot s of parameter i is state[s * bound_nparams + i], so each slot of
 * a layer is a contiguous run parallel to net->params (see optimizer.c's table for each
 * algorithm's slots). Only the optimizer modules interpret the settings and the state. Everything a
 * checkpoint must save: kind, set[], steps, bound, bound_nparams, bound_nlayers, bound_hash,
 * sgd_buf_ready, nadam_mu_product and the state floats. */
struct bp_optimizer {
    uint32_t magic;
    int kind;        /* enum bp_optimizer_kind */
    bp__alloc alloc; /* for the state block (the struct itself too) */
    double set[BP__OPT_KEY_COUNT];
    uint64_t steps;       /* successful updates since create/reset */
    int bound;            /* 0: no state yet (allocated and bound at the next step) */
    size_t bound_nparams; /* shape of the net the state belongs to */
    size_t bound_nlayers;
    uint64_t bound_hash;     /* bp__optimizer_shape_hash() of that net */
    float *state;            /* bp__malloc_aligned; NULL until the first step */
    size_t state_cap;        /* floats allocated (kept across reset for reuse) */
    int sgd_buf_ready;       /* SGD: momentum buffer holds a value (PyTorch's buf != None) */
    double nadam_mu_product; /* NAdam: product of mu_1 .. mu_t (1 when t = 0) */
    /* The per-step work that depends only on the settings (optimizer.c, prepare): 1 when the
     * algorithm's settings check has passed and k holds the scalars of the current settings
     * (for SGD also of sgd_buf_ready; the algorithms whose scalars change every step add
     * theirs to a copy). Every write to set[], to sgd_buf_ready or to the binding clears it:
     * a cache, never saved. */
    int ready;
    bp__opt_scalars k;
    /* The update guard (optimizer_step.c): bnd.s[i] >= every |value| of state slot i while
     * s_known (bnd.p and bnd.g: the step's inputs, then bnd.p its result, for the algorithm's
     * bound function, which works in place); undo holds the parameters and state of a guarded
     * update until it is proven finite (allocated on first need, undo_cap floats). Not saved:
     * measured after a load. */
    bp__opt_bounds bnd;
    int s_known;
    float *undo;
    size_t undo_cap;
    char err[BP__ERR_CAP];
};

static inline int bp__optimizer_ok(const bp_optimizer *o)
{
    return o != NULL && o->magic == BP__MAGIC_OPT;
}

/* Per-parameter floats of state that algorithm @p kind keeps (0 for an unknown kind). */
size_t bp__optimizer_state_slots(int kind);
/* Floats in the bound state block (0 while unbound). */
size_t bp__optimizer_state_floats(const bp_optimizer *opt);
/* Hash of a net's shape (each layer's offset, weight and bias counts): 0 for no layers,
 * then bp__optimizer_shape_hash_layer folded over the layers in order. */
uint64_t bp__optimizer_shape_hash(const bp_net *net);
uint64_t bp__optimizer_shape_hash_layer(uint64_t h, const bp_layer *l);
/* BP_OK if @p opt and @p net are valid handles, the net has parameters, the settings are
 * consistent, and the optimizer is unbound or bound to a net of the same shape. Otherwise
 * the status, with the message in opt->err (when opt is valid) and bp_last_error().
 * bp_net_train_step() calls it before any forward work. Changes nothing else. */
bp_status bp__optimizer_validate_for(bp_optimizer *opt, const bp_net *net);
/* Allocate (or reuse) and initialise the state for @p net's shape and bind to it; steps = 0.
 * Used by the first step and by checkpoint loading. BP_ERR_NOMEM leaves opt unbound. */
bp_status bp__optimizer_bind(bp_optimizer *opt, const bp_net *net);

/* Create an optimizer whose struct and state come from @p a (bp_optimizer_create() passes
 * bp__default_alloc; checkpoint loading passes the caller's allocator). */
bp_status bp__optimizer_create_with(bp_optimizer **out, int kind, const bp__alloc *a);

/* Optimizer entry points used by train_step (optimizer_step.c). */
/* bp_optimizer_step after a gradient hook (train_step): the handles validated again and the
 * gradients the hook left scanned for NaN/Inf (BP_ERR_NONFINITE, nothing updated). */
bp_status bp__optimizer_step_trusted(bp_optimizer *opt, bp_net *net);
/* The update alone: for callers that have already passed bp__optimizer_validate_for(opt, net)
 * with neither handle changed since, and proven every gradient finite and at most
 * @p g_bound in magnitude. An update that would leave a parameter or a state value NaN or
 * infinite fails with BP_ERR_NONFINITE and changes nothing (the update guard). */
bp_status bp__optimizer_update(bp_optimizer *opt, bp_net *net, double g_bound);

/* The learning rate a fit schedule drives (train.c): read and written whatever the algorithm,
 * including one that ignores it (iRprop-), within BP_OPT_LEARNING_RATE's bounds (else
 * BP_ERR_OUT_OF_RANGE, message in opt->err). @p opt must be valid. */
double bp__optimizer_rate(const bp_optimizer *opt);
bp_status bp__optimizer_set_rate(bp_optimizer *opt, double lr);

/* Checkpoint section OPTM (docs/format.md), for serialize.c. */
/* BP_OK if @p opt is a valid handle whose state (if any) is for @p net's shape; otherwise
 * BP_ERR_INVALID_ARG or BP_ERR_STATE with "@p fn: ..." in bp_last_error() only. */
bp_status bp__optimizer_check_save(const bp_optimizer *opt, const bp_net *net, const char *fn);
/* Write the section's payload (counts only when w->p is NULL). */
void bp__optimizer_encode(struct bp__wr *w, const bp_optimizer *opt);
/* Read a payload into a new optimizer allocated from @p alloc, bound to @p net when the file
 * holds state; every value validated. On failure *out = NULL and the status with the message
 * in bp_last_error(): BP_ERR_FORMAT (malformed; setting out of bounds as BP_ERR_OUT_OF_RANGE),
 * BP_ERR_VERSION (unknown kind or key), BP_ERR_NOMEM. */
bp_status bp__optimizer_decode(bp_optimizer **out, const bp__alloc *alloc, const bp_net *net,
                               struct bp__rd *r);

/* Refuse an invalid optimizer handle (BP__CHECK_HANDLE, util.h). */
#define BP__OPT_CHECK(opt, fn) BP__CHECK_HANDLE(bp__optimizer_ok(opt), "optimizer", fn)

#endif /* BP_OPTIMIZER_H */
