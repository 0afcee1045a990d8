/* ref_net.h -- an independent double-precision re-implementation of the forward pass of
 * networks built from dense, conv2d, batchnorm (training mode: batch statistics),
 * activation, max/avg/global-average pooling and flatten layers, and on sequence rows
 * (per step) embedding, layernorm, dense, activation and rate-0 dropout layers; and central
 * finite differences of a loss (MSE, softmax-CE, sparse softmax-CE; per step on sequence
 * outputs) through it, for checking the library's float gradients. */
#ifndef BP_REF_NET_H
#define BP_REF_NET_H

#include <stddef.h>

#include "backprop.h"

/* Library forward outputs vs the reference's, then the library's gradients (from
 * bp_net_compute_grads on x [n x in], targets t) vs central differences in double of the
 * reference loss: |g - fd| <= rtol * |fd| + atol * max|fd|. Also asserts that the gradient
 * is not all zero. Every layer must be of a kind listed above. */
void ref_check_grads(bp_net *net, int loss, const float *x, const float *t, size_t n, double rtol,
                     double atol);

/* The activation @p act (any kind but softmax, which needs the whole row) of @p z in double,
 * from its definition; leaky ReLU's @p slope and ELU's @p alpha. */
double ref_act(int act, double z, double slope, double alpha);

/* The reference forward pass only: y [n x out] in double from the net's current
 * parameters. */
void ref_forward_net(bp_net *net, const float *x, size_t n, double *y);

#endif
