/* fit_state.c -- the fit state a net carries between bp_net_fit calls (fit.h): the fit
 * settings (network keys 400..416: names, bounds, defaults), the counters a resumed fit
 * continues from, and their checkpoint section FIT (docs/format.md). The training loop that
 * reads them is train.c. */
#include "fileio.h"
#include "util.h"
#include "codec.h"
#include "net.h"
#include "fit.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * The fit state (fit.h) and its settings (network keys 400..413)
 * ----------------------------------------------------------------------------------------*/

typedef struct fit_key_info {
    const char *name;
    double lo, hi, def;
    int whole; /* counts, flags and enums must be whole numbers */
} fit_key_info;

static const fit_key_info fit_keys[FIT_KEY_COUNT] = {
    {"BP_FIT_EPOCHS", 1.0, 1e9, 10.0, 1},
    {"BP_FIT_BATCH_SIZE", 1.0, 2147483648.0, 32.0, 1},
    {"BP_FIT_SHUFFLE", 0.0, 1.0, 1.0, 1},
    {"BP_FIT_PATIENCE", 0.0, 1e9, 0.0, 1},
    {"BP_FIT_MIN_DELTA", 0.0, 1e9, 0.0, 0},
    {"BP_FIT_RESTORE_BEST", 0.0, 1.0, 1.0, 1},
    {"BP_FIT_SCHEDULE", BP_SCHEDULE_CONSTANT, BP_SCHEDULE_PLATEAU, BP_SCHEDULE_CONSTANT, 1},
    {"BP_FIT_LR_STEP", 1.0, 1e9, 10.0, 1},
    {"BP_FIT_LR_GAMMA", DBL_TRUE_MIN, 1.0, 0.1, 0}, /* (0, 1] */
    {"BP_FIT_LR_MIN", 0.0, 1e3, 0.0, 0},
    {"BP_FIT_WARMUP_EPOCHS", 0.0, 1e9, 0.0, 1},
    {"BP_FIT_PLATEAU_PATIENCE", 1.0, 1e9, 5.0, 1},
    {"BP_FIT_COSINE_EPOCHS", 0.0, 1e9, 0.0, 1},
    {"BP_FIT_INITIAL_EPOCH", 0.0, 1e9, 0.0, 1},
    {"BP_FIT_KEEP_BEST", 0.0, 1.0, 0.0, 1},
    {"BP_FIT_PROGRESS_SECONDS", 0.0, 3600.0, 0.1, 0},
    {"BP_FIT_SHUFFLE_BUFFER", 1.0, 2147483648.0, 1024.0, 1},
};

/* Settings 400..413 existed in 0.1 (always written to checkpoints). */
#define FIT_KEYS_V01 14u

void bp__fit_reset_counters(struct bp__fit *f)
{
    f->next_epoch = 0;
    f->plateau_lr = 0.0;
    f->plateau_best = HUGE_VAL;
    f->plateau_wait = 0;
    f->stop_best = HUGE_VAL;
    f->stop_wait = 0;
    f->stop_best_epoch = 0;
}

bp_status bp__fit_create(bp_net *net)
{
    struct bp__fit *f = bp__calloc(&net->alloc, 1, sizeof *f);
    if (f == NULL) return BP_ERR_NOMEM;
    for (size_t k = 0; k < FIT_KEY_COUNT; k++)
        f->set[k] = fit_keys[k].def;
    bp__fit_reset_counters(f);
    net->fit = f;
    return BP_OK;
}

void bp__fit_free(bp_net *net)
{
    if (net->fit == NULL) return;
    bp__history_free(net);
    bp__free(&net->alloc, net->fit);
    net->fit = NULL;
}

void bp__fit_copy(bp_net *dst, const bp_net *src)
{
    bp__history_free(dst);
    *dst->fit = *src->fit;    /* settings, callback, counters ... */
    dst->fit->history = NULL; /* ... but not the history */
    dst->fit->history_len = dst->fit->history_cap = 0;
}

int bp__fit_is_key(int key)
{
    return key >= FIT_KEY_FIRST && key < FIT_KEY_FIRST + FIT_KEY_COUNT;
}

bp_status bp__fit_set(bp_net *net, int key, double value)
{
    const fit_key_info *k = &fit_keys[key - FIT_KEY_FIRST];
    if (!(value >= k->lo && value <= k->hi))
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE, "%s = %g is outside [%g, %g]", k->name,
                        value, k->lo, k->hi);
    if (k->whole && value != floor(value))
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE, "%s = %g is not a whole number", k->name,
                        value);
    FIT_SET(net->fit, key) = value;
    return BP_OK;
}

bp_status bp__fit_get(const bp_net *net, int key, double *value)
{
    *value = FIT_SET(net->fit, key);
    return BP_OK;
}

void bp__fit_reset_settings(bp_net *net)
{
    for (size_t k = 0; k < FIT_KEY_COUNT; k++)
        net->fit->set[k] = fit_keys[k].def;
}

bp_status bp__fit_bounds(int key, double *lo, double *hi)
{
    *lo = fit_keys[key - FIT_KEY_FIRST].lo;
    *hi = fit_keys[key - FIT_KEY_FIRST].hi;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Checkpoint section FIT (docs/format.md): the settings and the counters a resumed bp_net_fit
 * continues from, so that k epochs + checkpoint + the remaining epochs equal all epochs in
 * one go
 * ----------------------------------------------------------------------------------------*/

void bp__fit_encode(bp__wr *w, const bp_net *net)
{
    const struct bp__fit *f = net->fit;
    /* The 0.1 settings always; later ones only when not at their default (a reader fills
     * in the default for a missing key), so a checkpoint that does not use them is byte
     * for byte what 0.1 wrote. */
    uint32_t nset = 0;
    for (uint32_t k = 0; k < FIT_KEY_COUNT; k++)
        nset += k < FIT_KEYS_V01 || f->set[k] != fit_keys[k].def;
    bp__w_u32(w, nset);
    for (uint32_t k = 0; k < FIT_KEY_COUNT; k++) {
        if (k >= FIT_KEYS_V01 && f->set[k] == fit_keys[k].def) continue;
        bp__w_u32(w, FIT_KEY_FIRST + k);
        bp__w_f64(w, f->set[k]);
    }
    bp__w_u64(w, f->next_epoch);
    bp__w_f64(w, f->plateau_lr);
    bp__w_f64(w, f->plateau_best);
    bp__w_u64(w, f->plateau_wait);
    bp__w_f64(w, f->stop_best);
    bp__w_u64(w, f->stop_wait);
    bp__w_u64(w, f->stop_best_epoch);
}

bp_status bp__fit_decode(bp_net *net, bp__rd *r)
{
    const uint32_t nset = bp__r_u32(r);
    if (r->short_read) return bp__r_truncated();
    if (nset > 1000) return bp__fail(NULL, BP_ERR_FORMAT, "%lu settings", (unsigned long)nset);
    BP_CHECK(bp__r_need(r, nset, 12, "settings"));
    for (uint32_t k = 0; k < nset; k++) {
        const uint32_t key = bp__r_u32(r);
        const double value = bp__r_f64(r);
        if (!bp__fit_is_key((int)key)) continue; /* a newer library's setting: not ours */
        BP_CHECK(bp__fit_set(net, (int)key, value));
    }
    const uint64_t next = bp__r_u64(r);
    const double plr = bp__r_f64(r), pbest = bp__r_f64(r);
    const uint64_t pwait = bp__r_u64(r);
    const double sbest = bp__r_f64(r);
    const uint64_t swait = bp__r_u64(r), sepoch = bp__r_u64(r);
    if (r->short_read) return bp__r_truncated();
    if (next > 1000000000u || pwait > next || swait > next || sepoch > next ||
        !(plr >= 0.0 && plr <= 1e3) || isnan(pbest) || isnan(sbest))
        return bp__fail(NULL, BP_ERR_FORMAT, "training-loop counters out of range");
    struct bp__fit *f = net->fit;
    f->next_epoch = (size_t)next;
    f->plateau_lr = plr;
    f->plateau_best = pbest;
    f->plateau_wait = (size_t)pwait;
    f->stop_best = sbest;
    f->stop_wait = (size_t)swait;
    f->stop_best_epoch = (size_t)sepoch;
    /* The next bp_net_fit continues after the last completed epoch. */
    return bp__fit_set(net, BP_FIT_INITIAL_EPOCH, (double)next);
}
