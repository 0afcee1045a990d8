/*
 * walk.h -- the walks over a net's layers (walk.c): forward, loss, backward with the
 * gradients' finite proof, and the training step built from them; predict; the workspace
 * they run in.
 */
#ifndef BP_WALK_H
#define BP_WALK_H

#include "util.h"

/* The checks every loss-driven call makes on its net and loss, in this order: @p loss is a
 * loss (BP_ERR_INVALID_ARG), the net has layers (BP_ERR_STATE), and a loss on softmax logits
 * has a softmax output layer (BP_ERR_STATE). The message, prefixed with @p fn, goes to the
 * net's and the thread's. */
bp_status bp__walk_check_loss(bp_net *net, const char *fn, int loss);
/* The outputs [n x out] of the last training walk (bp_net_forward, bp_net_train_step,
 * bp_net_compute_grads), valid until the next call that walks or changes the net: the fit
 * loop reads a batch's predictions here after its step. */
const float *bp__walk_outputs(const bp_net *net);
/* bp_net_predict with the scalers applied (@p scalers nonzero: the stored input scaler on
 * the inputs, the target scaler inverted on the outputs) or not, whatever
 * BP_NET_APPLY_SCALERS says: bp_net_evaluate follows the setting, fit's validation never. */
bp_status bp__walk_predict(bp_net *net, const float *x, size_t n, float *y, size_t capacity,
                           int scalers);

#endif /* BP_WALK_H */
