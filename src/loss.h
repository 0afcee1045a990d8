/*
 * loss.h -- losses and their gradients (loss.c).
 */
#ifndef BP_LOSS_H
#define BP_LOSS_H

#include "util.h"

int bp__loss_valid(int loss);
const char *bp__loss_name(int loss);
/* Check targets: finite values, or integer class indices in [0, width) for the sparse loss. */
bp_status bp__loss_check_targets(char *err, int loss, const float *target, size_t n,
                                 size_t width);
/* Loss value and gradient. pred: [n x width] network outputs. logits: the output layer's
 * pre-softmax z when it is a softmax layer and the loss is a softmax CE (fused path: grad
 * receives dL/dz and *grad_is_dz = 1), else NULL (grad receives dL/dpred). grad may be NULL.
 * Fails with BP_ERR_NONFINITE if the value is not finite. */
bp_status bp__loss_compute(char *err, int loss, double delta, const float *pred,
                           const float *logits, const float *target, size_t n, size_t width,
                           float *value, float *grad, int *grad_is_dz);

#endif /* BP_LOSS_H */
