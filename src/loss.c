/* loss.c -- losses: one descriptor per loss (loss.h) with its kernel (value and gradient,
 * mean over the batch, see enum bp_loss) and its accuracy count. */
#include "util.h"
#include "loss.h"

#include "act_math.h"

#include <float.h>
#include <math.h>
#include <stdio.h>

/* ------------------------------------------------------------------------------------------
 * Kernels: mean loss over the batch and its gradient (see bp__loss_desc.kernel)
 * ----------------------------------------------------------------------------------------*/

/* L = mean (p - t)^2, dL/dp = 2 (p - t) / total. */
static double mse_kernel(const float *pred, const float *logits, const float *target, size_t n,
                         size_t width, double delta, float *grad)
{
    (void)logits, (void)delta;
    const size_t total = n * width;
    const float inv_total = 1.0f / (float)total;
    double acc = 0.0;
    for (size_t k = 0; k < total; k++) {
        const float d = pred[k] - target[k];
        acc += (double)(d * d);
        if (grad) grad[k] = 2.0f * d * inv_total;
    }
    return acc / (double)total;
}

/* L = mean |p - t|, dL/dp = sign(p - t) / total (0 at p = t). */
static double mae_kernel(const float *pred, const float *logits, const float *target, size_t n,
                         size_t width, double delta, float *grad)
{
    (void)logits, (void)delta;
    const size_t total = n * width;
    const float inv_total = 1.0f / (float)total;
    double acc = 0.0;
    for (size_t k = 0; k < total; k++) {
        const float d = pred[k] - target[k];
        acc += (double)fabsf(d);
        if (grad) grad[k] = (d > 0.0f ? inv_total : d < 0.0f ? -inv_total : 0.0f);
    }
    return acc / (double)total;
}

/* L = mean of d^2 / 2 where |d| <= delta, delta (|d| - delta / 2) beyond (d = p - t);
 * dL/dp = d / total, or delta sign(d) / total beyond. */
static double huber_kernel(const float *pred, const float *logits, const float *target, size_t n,
                           size_t width, double delta, float *grad)
{
    (void)logits;
    const size_t total = n * width;
    const float inv_total = 1.0f / (float)total;
    const float dl = (float)delta;
    double acc = 0.0;
    for (size_t k = 0; k < total; k++) {
        const float d = pred[k] - target[k];
        const float a = fabsf(d);
        if (a <= dl) {
            acc += 0.5 * (double)(d * d);
            if (grad) grad[k] = d * inv_total;
        } else {
            acc += (double)(dl * (a - 0.5f * dl));
            if (grad) grad[k] = (d > 0.0f ? dl : -dl) * inv_total;
        }
    }
    return acc / (double)total;
}

/* Binary cross-entropy on logits z: L = mean max(z, 0) - z t + log(1 + e^-|z|) (stable for
 * any z), dL/dz = (sigmoid(z) - t) / total. */
static double bce_logits_kernel(const float *pred, const float *logits, const float *target,
                                size_t n, size_t width, double delta, float *grad)
{
    (void)logits, (void)delta;
    const size_t total = n * width;
    const float inv_total = 1.0f / (float)total;
    double acc = 0.0;
    for (size_t k = 0; k < total; k++) {
        const float zz = pred[k], t = target[k];
        /* softplus(z) - z t; the exp and log are act_math.h's branch-free ones */
        acc += (double)(bp__softplusf(zz) - zz * t);
        if (grad) grad[k] = (bp__sigmoidf(zz) - t) * inv_total;
    }
    return acc / (double)total;
}

/* log of softmax(z)_j for one row, from the logits: z_j - max - log(sum e^(z - max)), the
 * exps and the log by act_math.h's branch-free functions (the sum >= 1 is a normal float). */
static double row_logsumexp(const float *z, size_t width)
{
    float mx = -INFINITY;
    for (size_t j = 0; j < width; j++)
        mx = z[j] > mx ? z[j] : mx;
    float s = 0.0f;
    for (size_t j = 0; j < width; j++)
        s += bp__exp_neg(z[j] - mx);
    return (double)mx + (double)bp__log_pos(s);
}

/* Cross-entropy of softmax outputs p against targets t (one-hot, soft or class indices):
 * L = -mean over rows of sum_j t_j log p_j. With the logits z, log p_j = z_j - logsumexp(z)
 * and dL/dz = (p * s - t) / n with s = sum_j t_j (softmax and cross-entropy fused; the exact
 * gradient of L for any targets: s = 1 for one-hot rows and class indices, where p * s is p
 * bit for bit); without, log p_j from p and dL/dp = -t / (n p). */
static BP__ALWAYS_INLINE double softmax_ce(const float *pred, const float *logits,
                                           const float *target, size_t n, size_t width, float *grad,
                                           int sparse)
{
    const float inv_n = 1.0f / (float)n;
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *pi = pred + i * width;
        float *gi = grad ? grad + i * width : NULL;
        const double lse = logits ? row_logsumexp(logits + i * width, width) : 0.0;
        float s = 1.0f; /* sum of the row's targets (1 for class indices) */
        if (!sparse && gi != NULL && logits != NULL) {
            s = 0.0f;
            for (size_t j = 0; j < width; j++)
                s += target[i * width + j];
        }
        for (size_t j = 0; j < width; j++) {
            const float t = sparse ? ((size_t)target[i] == j ? 1.0f : 0.0f) : target[i * width + j];
            if (t != 0.0f) {
                const double logp =
                    logits ? (double)logits[i * width + j] - lse : log(fmax((double)pi[j], 1e-45));
                acc -= (double)t * logp;
            }
            if (gi != NULL) {
                if (logits != NULL) {
                    gi[j] = (pi[j] * s - t) * inv_n; /* fused: dL/dz of softmax + CE */
                } else {
                    gi[j] = -t * inv_n / fmaxf(pi[j], FLT_MIN); /* dL/dp */
                }
            }
        }
    }
    return acc / (double)n;
}

static double softmax_ce_kernel(const float *pred, const float *logits, const float *target,
                                size_t n, size_t width, double delta, float *grad)
{
    (void)delta;
    return softmax_ce(pred, logits, target, n, width, grad, 0);
}

static double sparse_softmax_ce_kernel(const float *pred, const float *logits, const float *target,
                                       size_t n, size_t width, double delta, float *grad)
{
    (void)delta;
    return softmax_ce(pred, logits, target, n, width, grad, 1);
}

/* ------------------------------------------------------------------------------------------
 * Accuracy: hits of a batch (see bp__loss_desc.hits)
 * ----------------------------------------------------------------------------------------*/

size_t bp__row_argmax(const float *v, size_t width)
{
    size_t best = 0;
    for (size_t j = 1; j < width; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

/* Rows whose largest output is the target's largest column (one-hot targets). */
static double argmax_hits(const float *pred, const float *target, size_t rows, size_t width)
{
    double hits = 0.0;
    for (size_t i = 0; i < rows; i++)
        hits +=
            bp__row_argmax(pred + i * width, width) == bp__row_argmax(target + i * width, width);
    return hits;
}

/* Rows whose largest output is the target class index. */
static double class_hits(const float *pred, const float *target, size_t rows, size_t width)
{
    double hits = 0.0;
    for (size_t i = 0; i < rows; i++)
        hits += bp__row_argmax(pred + i * width, width) == (size_t)target[i];
    return hits;
}

/* Elements whose logit has the sign of the target (target >= 0.5 is class 1). */
static double logit_hits(const float *pred, const float *target, size_t rows, size_t width)
{
    double hits = 0.0;
    for (size_t k = 0; k < rows * width; k++)
        hits += (pred[k] > 0.0f) == (target[k] >= 0.5f);
    return hits;
}

/* ------------------------------------------------------------------------------------------
 * The table: one row per enum bp_loss value
 * ----------------------------------------------------------------------------------------*/

const bp__loss_desc bp__loss_table[] = {
    [BP_LOSS_MSE] = {"mse", 0, 0, NULL, 0, mse_kernel},
    [BP_LOSS_MAE] = {"mae", 0, 0, NULL, 0, mae_kernel},
    [BP_LOSS_HUBER] = {"huber", 0, 0, NULL, 0, huber_kernel},
    [BP_LOSS_BCE_LOGITS] = {"bce_logits", 0, 0, logit_hits, 1, bce_logits_kernel},
    [BP_LOSS_SOFTMAX_CE] = {"softmax_ce", 0, 1, argmax_hits, 0, softmax_ce_kernel},
    [BP_LOSS_SPARSE_SOFTMAX_CE] = {"sparse_softmax_ce", 1, 1, class_hits, 0,
                                   sparse_softmax_ce_kernel},
};

const size_t bp__loss_table_size = sizeof bp__loss_table / sizeof bp__loss_table[0];

int bp__loss_valid(int loss)
{
    return bp__loss_get(loss) != NULL;
}

const char *bp__loss_name(int loss)
{
    const bp__loss_desc *d = bp__loss_get(loss);
    return d != NULL ? d->name : "invalid";
}

/* "row r" or "row r, step t" for step-row @p i of rows of @p steps steps (0: none). */
static void where_row(char *s, size_t cap, size_t i, size_t steps)
{
    if (steps)
        snprintf(s, cap, "row %zu, step %zu", i / steps, i % steps);
    else
        snprintf(s, cap, "row %zu", i);
}

bp_status bp__loss_check_targets_all(char *err, int loss, const float *target, size_t n,
                                     size_t steps, size_t width)
{
    const size_t rows = steps ? n * steps : n;
    char at[64];
    if (bp__loss_get(loss)->sparse_targets) {
        for (size_t i = 0; i < rows; i++) {
            const float t = target[i];
            if (!(t >= 0.0f && t < (float)width && t == floorf(t))) {
                where_row(at, sizeof at, i, steps);
                return bp__fail(err, isfinite(t) ? BP_ERR_INDEX : BP_ERR_NONFINITE,
                                "target %s: class index %g is not an integer in 0..%zu", at,
                                (double)t, width - 1);
            }
        }
        return BP_OK;
    }
    const size_t total = rows * width;
    if (total < 64 && loss != BP_LOSS_BCE_LOGITS &&
        bp__max_abs_bits_short(target, total) < 0x7f800000u)
        return BP_OK;
    const size_t bad = bp__first_nonfinite(target, total);
    if (bad != total) {
        where_row(at, sizeof at, bad / width, steps);
        return bp__fail(err, BP_ERR_NONFINITE, "target %s, column %zu is %g", at, bad % width,
                        (double)target[bad]);
    }
    if (loss == BP_LOSS_BCE_LOGITS) /* probabilities: documented range [0, 1] */
        for (size_t k = 0; k < total; k++)
            if (!(target[k] >= 0.0f && target[k] <= 1.0f)) {
                where_row(at, sizeof at, k / width, steps);
                return bp__fail(err, BP_ERR_INVALID_ARG,
                                "target %s, column %zu is %g; bce_logits takes targets in [0, 1]",
                                at, k % width, (double)target[k]);
            }
    return BP_OK;
}

bp_status bp__loss_not_finite(char *err, const bp__loss_desc *d, double value)
{
    return bp__fail(err, BP_ERR_NONFINITE, "%s loss is not finite (%g)", d->name, value);
}

bp_status bp_loss_eval(int loss, double param, const float *pred, const float *target, size_t n,
                       size_t width, float *value, float *dpred)
{
    if (!bp__loss_valid(loss))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_loss_eval: unknown loss %d", loss);
    if (pred == NULL || target == NULL || value == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_loss_eval: pred, target and value must "
                        "not be NULL");
    size_t total;
    if (n == 0 || width == 0 || bp__mul_size(n, width, &total) != 0)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_loss_eval: n (%zu) and width (%zu) must "
                        "be >= 1",
                        n, width);
    if (loss == BP_LOSS_HUBER && !(param > 0.0 && param <= 1e6))
        return bp__fail(NULL, BP_ERR_OUT_OF_RANGE,
                        "bp_loss_eval: Huber delta %g is outside "
                        "(0, 1e6]",
                        param);
    const size_t bad = bp__first_nonfinite(pred, total);
    if (bad != total)
        return bp__fail(NULL, BP_ERR_NONFINITE, "bp_loss_eval: pred row %zu, column %zu is %g",
                        bad / width, bad % width, (double)pred[bad]);
    BP_CHECK(bp__loss_check_targets(NULL, loss, target, n, 0, width));
    float v;
    int is_dz;
    BP_CHECK(bp__loss_compute(NULL, loss, param, pred, NULL, target, n, width, &v, dpred, &is_dz));
    *value = v;
    return BP_OK;
}
