/*
 * optimizer_kernels.h -- each algorithm's per-step scalars and its update of one segment of
 * parameters (optimizer_kernels.c), named by the rows of optimizer.c's algorithm table.
 */
#ifndef BP_OPTIMIZER_KERNELS_H
#define BP_OPTIMIZER_KERNELS_H

#include "util.h"
#include "optimizer.h"

/* The state slots of one segment: s[i] points at slot i of the segment's first parameter
 * (NULL beyond the algorithm's slots). */
typedef float *const bp__opt_slots[BP__OPT_MAX_SLOTS];

/* Setting @p key of optimizer @p o (a valid enum bp_optimizer_key). */
#define BP__OPT_SET(o, key) ((o)->set[(key)-BP__OPT_KEY_FIRST])

/* Scalars of step t beyond the common ones optimizer.c computes (lr, wd, mom, b1, b2, eps,
 * c1, c2, rho, c_rho). */
void bp__opt_sgd_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k);
void bp__opt_adam_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k);
void bp__opt_adamw_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k);
void bp__opt_adamax_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k);
void bp__opt_nadam_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k);

/* Update n parameters p from their gradients g and their state slots s. */
void bp__opt_sgd_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p, const float *g,
                        bp__opt_slots s, size_t n);
void bp__opt_adagrad_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p,
                            const float *g, bp__opt_slots s, size_t n);
void bp__opt_rmsprop_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p,
                            const float *g, bp__opt_slots s, size_t n);
void bp__opt_adam_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p, const float *g,
                         bp__opt_slots s, size_t n);
void bp__opt_adamax_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p,
                           const float *g, bp__opt_slots s, size_t n);
void bp__opt_nadam_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p, const float *g,
                          bp__opt_slots s, size_t n);
void bp__opt_irprop_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p,
                           const float *g, bp__opt_slots s, size_t n);

/* Each algorithm's bound on one update, in double and in place: from the bounds in @p b
 * (bp__opt_bounds, optimizer.h) before the update, writes to b->p and b->s the bounds after
 * it (b->g unchanged) and returns a bound on the largest magnitude any intermediate or result
 * of its kernel can take (INFINITY when none can be given, e.g. a zero epsilon). */
double bp__opt_sgd_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b);
double bp__opt_adagrad_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b);
double bp__opt_rmsprop_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b);
double bp__opt_adam_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b);
double bp__opt_adamax_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b);
double bp__opt_nadam_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b);
double bp__opt_irprop_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b);

/* After a successful update: the scalar state (SGD's buffer flag, NAdam's product). */
void bp__opt_sgd_stepped(bp_optimizer *o, const bp__opt_scalars *k);
void bp__opt_nadam_stepped(bp_optimizer *o, const bp__opt_scalars *k);

#endif /* BP_OPTIMIZER_KERNELS_H */
