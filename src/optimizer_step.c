/* optimizer_step.c -- one optimizer step over a net's parameter arena: the settings-only
 * scalars prepared once per settings change, the algorithm's kernel over every trainable
 * layer's segment (split across the net's worker threads when long), and the update guard
 * that proves every parameter and state value stays finite or changes nothing. The
 * algorithms themselves are rows of optimizer.c's table (optimizer_algo.h) with their kernels
 * in optimizer_kernels.c. */
#include "util.h"
#include "workers.h"
#include "net.h"
#include "optimizer.h"
#include "optimizer_kernels.h"
#include "optimizer_algo.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Step
 * ----------------------------------------------------------------------------------------*/

/* Update one layer's segment [off, off + n) with the state slots at the same offsets. */
static BP__ALWAYS_INLINE void update_segment(const bp_optimizer *o, const bp__opt_scalars *k,
                                             float *p, const float *g, size_t off, size_t n)
{
    const bp__opt_algo *a = bp__opt_algo_of(o);
    float *const s0 = o->state + off;
    const size_t np = o->bound_nparams;
    const bp__opt_slots s = {s0, a->nslots > 1 ? s0 + np : NULL,
                             a->nslots > 2 ? s0 + 2 * np : NULL};
    a->update(o, k, p, g, s, n);
}
/* One update_segment over a slice of a segment, run by the pool's threads. */
typedef struct update_job {
    const bp_optimizer *opt;
    const bp__opt_scalars *k;
    float *p;
    const float *g;
    size_t off;
} update_job;

static void update_range(void *ctx, size_t begin, size_t end)
{
    const update_job *j = ctx;
    update_segment(j->opt, j->k, j->p + begin, j->g + begin, j->off + begin, end - begin);
}

/* update_segment, split across the net's worker threads when the segment is long enough to
 * gain (the kernels are elementwise: any split computes the same floats). */
static BP__ALWAYS_INLINE void update_segment_par(const bp_optimizer *o, const bp__opt_scalars *k,
                                                 bp_net *net, size_t off, size_t n)
{
    float *p = net->params + off;
    const float *g = net->grads + off;
    if (n < BP__WORKERS_MIN_FLOATS) {
        update_segment(o, k, p, g, off, n);
        return;
    }
    update_job job = {o, k, p, g, off};
    bp__workers_run(&net->workers, &net->alloc, n, update_range, &job);
}

static BP__ALWAYS_INLINE bp_status step_update(bp_optimizer *opt, bp_net *net, double g_bound);

/* Every gradient the update will read must be finite before any parameter moves; *@p g_bound
 * receives the largest |gradient| (the update guard's bound). */
static bp_status grads_finite(bp_optimizer *opt, const bp_net *net, const char *fn, double *g_bound)
{
    double gb = 0.0;
    for (size_t li = 0; li < net->nlayers; li++) {
        const bp_layer *l = net->layers[li];
        if (!l->trainable) continue;
        const size_t n = l->nweights + l->nbiases;
        const float m = bp__max_abs(net->grads + l->param_off, n);
        if (!isfinite(m)) {
            const size_t bad = bp__first_nonfinite(net->grads + l->param_off, n);
            const int is_w = bad < l->nweights;
            return bp__fail(opt->err, BP_ERR_NONFINITE,
                            "%s: layer %zu: gradient of %s %zu is %g; "
                            "parameters unchanged",
                            fn, li, is_w ? "weight" : "bias", is_w ? bad : bad - l->nweights,
                            (double)net->grads[l->param_off + bad]);
        }
        if ((double)m > gb) gb = (double)m;
    }
    *g_bound = gb;
    return BP_OK;
}

bp_status bp_optimizer_step(bp_optimizer *opt, bp_net *net)
{
    BP_CHECK(bp__optimizer_validate_for(opt, net));
    double g_bound;
    BP_CHECK(grads_finite(opt, net, "bp_optimizer_step", &g_bound));
    const unsigned csr = bp__fp_enter(); /* denormals flushed while the kernels run */
    const bp_status s = step_update(opt, net, g_bound);
    bp__fp_leave(csr);
    return s;
}

bp_status bp__optimizer_step_trusted(bp_optimizer *opt, bp_net *net)
{
    BP_CHECK(bp__optimizer_validate_for(opt, net));
    double g_bound;
    BP_CHECK(grads_finite(opt, net, "after the gradient hook", &g_bound));
    return step_update(opt, net, g_bound);
}

bp_status bp__optimizer_update(bp_optimizer *opt, bp_net *net, double g_bound)
{
    return step_update(opt, net, g_bound);
}

/* ---- The update guard ----
 * An update that would leave a parameter or a state value NaN or infinite (a learning rate far
 * too large for its gradients, inputs near FLT_MAX) fails with nothing changed: a net holding
 * such a value predicts garbage and could not be saved. Copying the parameters and the state
 * before every update would cost about as much as the update itself, so the net keeps a bound
 * on |parameter| (net->p_bound), the optimizer one per state slot (bnd.s), the walk bounds the
 * gradients, and the algorithm's bound function (optimizer_kernels.c) turns them into a bound
 * on every value its kernel computes. Below GUARD_LIMIT (FLT_MAX is about 2^128) no float can
 * overflow: the update runs as it is, and the bounds after it become the tracked ones. Else
 * (huge gradients or weights, a zero epsilon, parameters lent out and written with NaN) the
 * update is guarded: parameters and state are copied, updated, scanned, and restored when a
 * value is not finite. A tracked bound above GUARD_RESCAN is measured anew at the next
 * update, so that the bounds stay tight. */
#define GUARD_LIMIT  0x1p120
#define GUARD_RESCAN 0x1p100

/* The largest |value| of each of @p opt's state slots. */
static void measure_state(bp_optimizer *opt)
{
    const bp__opt_algo *a = bp__opt_algo_of(opt);
    const size_t np = opt->bound_nparams;
    for (size_t i = 0; i < a->nslots; i++)
        opt->bnd.s[i] = (double)bp__max_abs(opt->state + i * np, np);
    opt->s_known = 1;
}

/* Run the kernels over every trainable layer's segment. */
static BP__ALWAYS_INLINE void run_update(const bp_optimizer *opt, const bp__opt_scalars *k,
                                         bp_net *net)
{
    /* The layers' segments tile the arena in order: one pass over it when every layer
     * trains (the kernels are elementwise, so the floats are the same as per segment). */
    if (net->nfrozen == 0) {
        update_segment_par(opt, k, net, 0, net->nparams);
        return;
    }
    for (size_t li = 0; li < net->nlayers; li++) {
        const bp_layer *l = net->layers[li];
        if (!l->trainable) continue;
        update_segment_par(opt, k, net, l->param_off, l->nweights + l->nbiases);
    }
}

/* The layer holding parameter @p idx of @p net. */
static const bp_layer *layer_of(const bp_net *net, size_t idx)
{
    size_t li = 0;
    while (li + 1 < net->nlayers && net->layers[li + 1]->param_off <= idx)
        li++;
    return net->layers[li];
}

/* The guarded update: copy, update, prove finite or restore. On success the tracked bounds
 * are the measured maxima. */
static bp_status guarded_update(bp_optimizer *opt, const bp__opt_scalars *k, bp_net *net)
{
    const bp__opt_algo *a = bp__opt_algo_of(opt);
    const size_t np = net->nparams, ns = a->nslots * np, total = np + ns;
    if (opt->undo == NULL || opt->undo_cap < total) {
        float *undo = bp__malloc_aligned(&opt->alloc, total * sizeof(float));
        if (undo == NULL)
            return bp__fail(opt->err, BP_ERR_NOMEM,
                            "optimizer: out of memory for the guarded update's copy of %zu "
                            "floats; parameters unchanged",
                            total);
        bp__free_aligned(&opt->alloc, opt->undo);
        opt->undo = undo;
        opt->undo_cap = total;
    }
    memcpy(opt->undo, net->params, np * sizeof(float));
    if (ns) memcpy(opt->undo + np, opt->state, ns * sizeof(float));
    run_update(opt, k, net);
    const size_t bad_p = bp__first_nonfinite(net->params, np);
    const size_t bad_s = bad_p == np && ns ? bp__first_nonfinite(opt->state, ns) : ns;
    if (bad_p == np && bad_s == ns) {
        net->p_bound = (double)bp__max_abs(net->params, np);
        net->p_bound_known = 1;
        measure_state(opt);
        return BP_OK;
    }
    /* Report, then put everything back. */
    bp_status s;
    if (bad_p < np) {
        const bp_layer *l = layer_of(net, bad_p);
        const size_t j = bad_p - l->param_off;
        const int is_w = j < l->nweights;
        s = bp__fail(opt->err, BP_ERR_NONFINITE,
                     "optimizer: the update would make layer %zu's %s %zu %g (it is %g, its "
                     "gradient %g); parameters and optimizer state unchanged: lower the "
                     "learning rate, or clip the gradients",
                     l->index, is_w ? "weight" : "bias", is_w ? j : j - l->nweights,
                     (double)net->params[bad_p], (double)opt->undo[bad_p],
                     (double)net->grads[bad_p]);
    } else {
        const size_t slot = bad_s / np, i = bad_s % np;
        s = bp__fail(opt->err, BP_ERR_NONFINITE,
                     "optimizer: the update would make %s state slot %zu of parameter %zu %g "
                     "(its gradient is %g); parameters and optimizer state unchanged: lower "
                     "the learning rate, or clip the gradients",
                     a->name, slot, i, (double)opt->state[bad_s], (double)net->grads[i]);
    }
    memcpy(net->params, opt->undo, np * sizeof(float));
    if (ns) memcpy(opt->state, opt->undo + np, ns * sizeof(float));
    return s;
}

/* The update proper: the caller has validated @p opt for @p net and proven the gradients
 * finite and at most @p g_bound in magnitude. */
static BP__ALWAYS_INLINE bp_status step_update(bp_optimizer *opt, bp_net *net, double g_bound)
{
    const int was_bound = opt->bound;
    if (!was_bound) BP_CHECK(bp__optimizer_bind(opt, net));
    if (!opt->ready) {
        /* Validated before, so the check passes; kept for callers that changed settings. */
        const bp_status s = bp__optimizer_prepare(opt);
        if (s != BP_OK) {
            if (!was_bound) (void)bp_optimizer_reset(opt); /* unbound, as it was */
            return s;
        }
    }

    const uint64_t t = opt->steps + 1;
    const bp__opt_algo *a = bp__opt_algo_of(opt);
    /* The scalars of step t: those of the settings (opt->k), with the algorithm's own for
     * this step added to a copy when they change at every step. */
    bp__opt_scalars kt;
    const bp__opt_scalars *k = &opt->k;
    if (a->per_step) {
        kt = opt->k;
        a->scalars(opt, t, &kt);
        k = &kt;
    }
    if (!opt->s_known) measure_state(opt);
    if (!net->p_bound_known || net->params_lent) {
        net->p_bound = (double)bp__max_abs(net->params, net->nparams); /* INFINITY for NaN/Inf */
        net->p_bound_known = 1;
    }
    /* The bounds work in place: opt->bnd.s are the state's bounds, bnd.p and bnd.g this step's
     * inputs; after the call they are the bounds after the update. */
    bp__opt_bounds *b = &opt->bnd;
    b->p = net->p_bound;
    b->g = g_bound;
    const double worst = a->bound(opt, k, b);
    if (worst < GUARD_LIMIT) {
        run_update(opt, k, net);
        /* The new bounds; worst is at least each of them. */
        net->p_bound = b->p;
        const int tight = worst < GUARD_RESCAN;
        net->p_bound_known = tight;
        opt->s_known = tight;
    } else {
        /* The bounds now describe an update that may not happen: measured anew after it
         * (guarded_update does so on success). */
        net->p_bound_known = 0;
        opt->s_known = 0;
        const bp_status s = guarded_update(opt, k, net);
        if (s != BP_OK) {
            if (!was_bound) (void)bp_optimizer_reset(opt); /* unbound, as it was */
            return s;
        }
    }
    opt->steps = t;
    if (a->stepped != NULL) a->stepped(opt, k);
    return BP_OK;
}
