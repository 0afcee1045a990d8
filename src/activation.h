/*
 * activation.h -- elementwise activations and their derivatives (activation.c).
 */
#ifndef BP_ACTIVATION_H
#define BP_ACTIVATION_H

#include "util.h"

typedef struct bp__act_params {
    float leaky_slope;
    float elu_alpha;
} bp__act_params;

int bp__act_valid(int act);
const char *bp__act_name(int act);
/* Does the derivative need the pre-activation z (not just y = f(z))? */
int bp__act_needs_z(int act);
/* Fused bias + activation, one pass: z = acc + b (row-wise broadcast), y = f(z).
 * acc, y: [n x out]; b: [out]; z: [n x out] or NULL (then not stored). acc may equal y. */
void bp__act_forward(int act, const bp__act_params *p, size_t n, size_t out, const float *acc,
                     const float *b, float *z, float *y);
/* bp__act_forward without a bias: y = f(x) (z = x stored when z is not NULL); x may equal y.
 * Allocates nothing: the layers without parameters (activation, conv's activation pass) need
 * no zero-bias buffer of their width. */
void bp__act_apply(int act, const bp__act_params *p, size_t n, size_t out, const float *x, float *z,
                   float *y);
/* One row (n = 1, in place: y = f(y + b)) without the vectoriser, for tiny layers (see
 * BP__SCALAR); same results as bp__act_forward / bp__act_backward. */
void bp__act_forward_row(int act, const bp__act_params *p, size_t out, const float *b, float *z,
                         float *y);
void bp__act_backward_row(int act, const bp__act_params *p, size_t out, const float *z,
                          const float *y, float *dy);
/* dz = dy * f'(z) in place on dy (for softmax: the Jacobian-vector product per row). */
void bp__act_backward(int act, const bp__act_params *p, size_t n, size_t out, const float *z,
                      const float *y, float *dy);
/* dx = dy * f'(z) over @p total floats for an elementwise activation (any but softmax), dy
 * unchanged: the same floats as bp__act_backward followed by a copy, in one pass. z, y, dy,
 * dx: [total]; dx must not overlap dy. */
void bp__act_backward_to(int act, const bp__act_params *p, size_t total, const float *z,
                         const float *y, const float *dy, float *dx);

#endif /* BP_ACTIVATION_H */
