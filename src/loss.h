/*
 * loss.h -- losses: one descriptor per loss (its rules and its kernel), values and gradients
 * (loss.c).
 */
#ifndef BP_LOSS_H
#define BP_LOSS_H

#include "util.h"

/* One loss: everything the walk (walk.c), the fit loop (train.c) and bp_loss_eval() need to
 * know about it. Adding a loss = one enum bp_loss value, one row in loss.c's table, and its
 * kernel. */
typedef struct bp__loss_desc {
    const char *name;
    /* Targets per row: 1 class index when set (the index is checked to be an integer in
     * [0, width)), else one finite value per output. */
    int sparse_targets;
    /* The output layer must be softmax, and the gradient is taken with respect to its logits
     * z (fused softmax + cross-entropy: the kernel writes dL/dz when given the logits). */
    int softmax_logits;
    /* Metrics of a batch: NULL for a regression loss (then BP_METRIC_MAE and BP_METRIC_RMSE
     * apply), else the number of hits counted for BP_METRIC_ACCURACY, per element when
     * @c hits_per_element (accuracy = hits / elements), else per row. */
    double (*hits)(const float *pred, const float *target, size_t rows, size_t width);
    int hits_per_element;
    /* Mean loss over the batch, and (when grad is not NULL) its gradient: dL/dpred, or dL/dz
     * when logits is not NULL (softmax_logits losses only). pred, grad: [n x width]; target:
     * [n x width] or [n] class indices (sparse_targets); delta: the Huber threshold. */
    double (*kernel)(const float *pred, const float *logits, const float *target, size_t n,
                     size_t width, double delta, float *grad);
} bp__loss_desc;

/* The table (loss.c), indexed by enum bp_loss; rows with a NULL kernel are not losses. */
extern const bp__loss_desc bp__loss_table[];
extern const size_t bp__loss_table_size;

/* The descriptor of enum bp_loss @p loss, or NULL when it is not a loss. */
static inline const bp__loss_desc *bp__loss_get(int loss)
{
    if (loss < 0 || (size_t)loss >= bp__loss_table_size || bp__loss_table[loss].kernel == NULL)
        return NULL;
    return &bp__loss_table[loss];
}
int bp__loss_valid(int loss);
const char *bp__loss_name(int loss);
/* Index of the first largest value of v[0 .. width) (the class of an output row). */
size_t bp__row_argmax(const float *v, size_t width);
/* Target columns per row (per step of sequence rows) for @p out outputs (per step). */
static inline size_t bp__loss_target_width(const bp__loss_desc *d, size_t out)
{
    return d->sparse_targets ? 1 : out;
}
/* Per-step losses: a loss sees @p n output rows of @p out values that are sequences of
 * @p steps steps (0: not sequences) as n*T rows of out/T values (one per step), so that the
 * softmax cross-entropies are per step and every loss is a mean over the n*T steps (MSE and
 * the other elementwise losses: over all n*T*F elements, as without steps). Writes the rows
 * and the width the kernels see. */
static inline void bp__loss_rows(size_t n, size_t steps, size_t out, size_t *rows, size_t *width)
{
    *rows = steps ? n * steps : n;
    *width = steps ? out / steps : out;
}
/* Check the targets of @p n rows of @p steps steps (0: rows are not sequences) of @p width
 * outputs each: finite values, or integer class indices in [0, width) for sparse targets
 * (one per step); messages name the row (and step) and go to @p err and the thread's. */
bp_status bp__loss_check_targets_all(char *err, int loss, const float *target, size_t n,
                                     size_t steps, size_t width);
/* The same, with a few finite targets (online training) accepted inline; @p d is
 * bp__loss_get(@p loss) (the walk looks it up once per step). */
static inline bp_status bp__loss_check_targets_d(char *err, const bp__loss_desc *d, int loss,
                                                 const float *target, size_t n, size_t steps,
                                                 size_t width)
{
    const size_t total = (steps ? n * steps : n) * width;
    if (!d->sparse_targets && loss != BP_LOSS_BCE_LOGITS && total < BP__NARROW_WIDTH &&
        bp__max_abs_bits_short(target, total) < 0x7f800000u)
        return BP_OK;
    return bp__loss_check_targets_all(err, loss, target, n, steps, width);
}
static inline bp_status bp__loss_check_targets(char *err, int loss, const float *target, size_t n,
                                               size_t steps, size_t width)
{
    return bp__loss_check_targets_d(err, bp__loss_get(loss), loss, target, n, steps, width);
}
/* Record the failure of a loss whose value @p value is not finite (BP_ERR_NONFINITE). */
bp_status bp__loss_not_finite(char *err, const bp__loss_desc *d, double value);
/* Loss value and gradient. pred: [n x width] network outputs. logits: the output layer's
 * pre-softmax z when the loss takes softmax logits (fused path: grad receives dL/dz and
 * *grad_is_dz = 1), else NULL (grad receives dL/dpred). grad may be NULL. Fails with
 * BP_ERR_NONFINITE if the value is not finite. */
static inline bp_status bp__loss_compute_d(char *err, const bp__loss_desc *d, double delta,
                                           const float *pred, const float *logits,
                                           const float *target, size_t n, size_t width,
                                           float *value, float *grad, int *grad_is_dz)
{
    if (!d->softmax_logits) logits = NULL;
    const double acc = d->kernel(pred, logits, target, n, width, delta, grad);
    *grad_is_dz = logits != NULL;
    *value = (float)acc;
    /* Finite through the bits (no libm call, no branch on a float compare). */
    uint32_t u;
    memcpy(&u, value, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) return bp__loss_not_finite(err, d, acc);
    return BP_OK;
}
/* bp__loss_compute_d for enum bp_loss @p loss (a valid loss). */
static inline bp_status bp__loss_compute(char *err, int loss, double delta, const float *pred,
                                         const float *logits, const float *target, size_t n,
                                         size_t width, float *value, float *grad, int *grad_is_dz)
{
    return bp__loss_compute_d(err, bp__loss_get(loss), delta, pred, logits, target, n, width, value,
                              grad, grad_is_dz);
}

#endif /* BP_LOSS_H */
