/* loss.c -- losses: value and gradient, mean over the batch (see enum bp_loss). */
#include "util.h"
#include "loss.h"

#include <float.h>
#include <math.h>

int bp__loss_valid(int loss) { return loss >= BP_LOSS_MSE && loss <= BP_LOSS_SPARSE_SOFTMAX_CE; }

const char *bp__loss_name(int loss)
{
    static const char *const names[] = {"invalid", "mse",       "mae",       "huber",
                                        "bce_logits", "softmax_ce", "sparse_softmax_ce"};
    return bp__loss_valid(loss) ? names[loss] : "invalid";
}

bp_status bp__loss_check_targets(char *err, int loss, const float *target, size_t n, size_t width)
{
    if (loss == BP_LOSS_SPARSE_SOFTMAX_CE) {
        for (size_t i = 0; i < n; i++) {
            const float t = target[i];
            if (!(t >= 0.0f && t < (float)width && t == floorf(t)))
                return bp__fail(err, isfinite(t) ? BP_ERR_INDEX : BP_ERR_NONFINITE,
                                "target row %zu: class index %g is not an integer in 0..%zu", i,
                                (double)t, width - 1);
        }
        return BP_OK;
    }
    const size_t total = n * width;
    const size_t bad = bp__first_nonfinite(target, total);
    if (bad != total)
        return bp__fail(err, BP_ERR_NONFINITE, "target row %zu, column %zu is %g", bad / width,
                        bad % width, (double)target[bad]);
    return BP_OK;
}

/* log of softmax(z)_j for one row, from the logits: z_j - max - log(sum e^(z - max)). */
static double row_logsumexp(const float *z, size_t width)
{
    float mx = -INFINITY;
    for (size_t j = 0; j < width; j++) mx = z[j] > mx ? z[j] : mx;
    double s = 0.0;
    for (size_t j = 0; j < width; j++) s += exp((double)z[j] - (double)mx);
    return (double)mx + log(s);
}

bp_status bp__loss_compute(char *err, int loss, double delta, const float *pred,
                           const float *logits, const float *target, size_t n, size_t width,
                           float *value, float *grad, int *grad_is_dz)
{
    /* pred, target, grad: [n x width] (target [n] for sparse); logits: [n x width] softmax
     * inputs when the output layer is softmax (fused path), else NULL. */
    const size_t total = n * width;
    const float inv_total = 1.0f / (float)total;
    const float inv_n = 1.0f / (float)n;
    double acc = 0.0;
    *grad_is_dz = 0;
    switch (loss) {
    case BP_LOSS_MSE:
        for (size_t k = 0; k < total; k++) {
            const float d = pred[k] - target[k];
            acc += (double)(d * d);
            if (grad) grad[k] = 2.0f * d * inv_total;
        }
        acc /= (double)total;
        break;
    case BP_LOSS_MAE:
        for (size_t k = 0; k < total; k++) {
            const float d = pred[k] - target[k];
            acc += (double)fabsf(d);
            if (grad) grad[k] = (d > 0.0f ? inv_total : d < 0.0f ? -inv_total : 0.0f);
        }
        acc /= (double)total;
        break;
    case BP_LOSS_HUBER: {
        const float dl = (float)delta;
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
        acc /= (double)total;
        break;
    }
    case BP_LOSS_BCE_LOGITS:
        for (size_t k = 0; k < total; k++) {
            const float zz = pred[k], t = target[k];
            acc += (double)(fmaxf(zz, 0.0f) - zz * t + log1pf(expf(-fabsf(zz))));
            if (grad) {
                const float s = zz >= 0.0f ? 1.0f / (1.0f + expf(-zz))
                                           : expf(zz) / (1.0f + expf(zz));
                grad[k] = (s - t) * inv_total;
            }
        }
        acc /= (double)total;
        break;
    case BP_LOSS_SOFTMAX_CE:
    case BP_LOSS_SPARSE_SOFTMAX_CE: {
        const int sparse = loss == BP_LOSS_SPARSE_SOFTMAX_CE;
        for (size_t i = 0; i < n; i++) {
            const float *pi = pred + i * width;
            float *gi = grad ? grad + i * width : NULL;
            const double lse = logits ? row_logsumexp(logits + i * width, width) : 0.0;
            for (size_t j = 0; j < width; j++) {
                const float t = sparse ? ((size_t)target[i] == j ? 1.0f : 0.0f)
                                       : target[i * width + j];
                if (t != 0.0f) {
                    const double logp = logits ? (double)logits[i * width + j] - lse
                                               : log(fmax((double)pi[j], 1e-45));
                    acc -= (double)t * logp;
                }
                if (gi != NULL) {
                    if (logits != NULL) {
                        gi[j] = (pi[j] - t) * inv_n; /* fused: dL/dz of softmax + CE */
                    } else {
                        gi[j] = -t * inv_n / fmaxf(pi[j], FLT_MIN); /* dL/dp */
                    }
                }
            }
        }
        acc /= (double)n;
        if (logits != NULL) *grad_is_dz = 1;
        break;
    }
    default: break;
    }
    *value = (float)acc;
    if (!isfinite(*value))
        return bp__fail(err, BP_ERR_NONFINITE, "%s loss is not finite (%g)", bp__loss_name(loss),
                        acc);
    return BP_OK;
}

bp_status bp_loss_eval(int loss, double param, const float *pred, const float *target, size_t n,
                       size_t width, float *value, float *dpred)
{
    if (!bp__loss_valid(loss))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_loss_eval: unknown loss %d", loss);
    if (pred == NULL || target == NULL || value == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_loss_eval: pred, target and value must "
                                                   "not be NULL");
    size_t total;
    if (n == 0 || width == 0 || bp__mul_size(n, width, &total) != 0)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_loss_eval: n (%zu) and width (%zu) must "
                                                   "be >= 1", n, width);
    if (loss == BP_LOSS_HUBER && !(param > 0.0 && param <= 1e6))
        return bp__fail(NULL, BP_ERR_OUT_OF_RANGE, "bp_loss_eval: Huber delta %g is outside "
                                                    "(0, 1e6]", param);
    const size_t bad = bp__first_nonfinite(pred, total);
    if (bad != total)
        return bp__fail(NULL, BP_ERR_NONFINITE, "bp_loss_eval: pred row %zu, column %zu is %g",
                        bad / width, bad % width, (double)pred[bad]);
    BP_CHECK(bp__loss_check_targets(NULL, loss, target, n, width));
    float v;
    int is_dz;
    BP_CHECK(bp__loss_compute(NULL, loss, param, pred, NULL, target, n, width, &v, dpred, &is_dz));
    *value = v;
    return BP_OK;
}
