/* train.c -- the training loop (step five, "repeat"): bp_net_fit over bp_net_train_step with
 * batching, shuffling, metrics, validation, learning-rate schedules, early stopping, the
 * epoch callback and the history; bp_net_evaluate and bp_argmax.
 *
 * Memory: a fit call allocates its buffers once (shuffle order, one gathered batch, the
 * validation outputs, the best weights) and the history's first rows; every step after
 * that runs in the net's planned workspaces, so nothing is allocated per step. */
#include "fileio.h"
#include "util.h"
#include "codec.h"
#include "rng.h"
#include "loss.h"
#include "net.h"
#include "walk.h"
#include "fit.h"
#include "optimizer.h"
#include "dataset.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <time.h>

#define NET_CHECK(net, fn)                                                                         \
    do {                                                                                           \
        if (!bp__net_ok(net))                                                                      \
            return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: invalid net handle", fn);               \
    } while (0)

#define BP__PI 3.14159265358979323846
/* Rows per inference chunk in evaluate and validation (bp_net_predict's own chunk). */
#define EVAL_CHUNK ((size_t)1024)
/* History rows reserved at the start of a fit call (beyond: doubling, once per epoch). */
#define HISTORY_RESERVE ((size_t)4096)

/* ------------------------------------------------------------------------------------------
 * The fit state (fit.h) and its settings (network keys 400..413)
 * ----------------------------------------------------------------------------------------*/

/* Settings are stored by key: set[key - FIT_KEY_FIRST] for enum bp_fit_key. */
#define FIT_KEY_FIRST 400
#define FIT_KEY_COUNT 14
/* A history row: the absolute epoch number, then the BP_METRIC_COUNT metrics. */
#define FIT_ROW (1 + BP_METRIC_COUNT)

struct bp__fit {
    double set[FIT_KEY_COUNT]; /* settings */
    bp_epoch_fn callback;      /* per-epoch callback or NULL */
    void *callback_user;
    /* History of the last bp_net_fit call: history_len rows of FIT_ROW doubles, room for
     * history_cap rows, allocated from the net's allocator. */
    double *history;
    size_t history_len, history_cap;
    /* Counters that survive between fit calls, for a bit-identical resume (a checkpoint
     * saves them with net->rng and set[] in its FIT section; a fit call with INITIAL_EPOCH
     * == 0 resets them, one with INITIAL_EPOCH > 0 continues from them): */
    size_t next_epoch;      /* absolute index of the epoch after the last completed one */
    double plateau_lr;      /* reduce-on-plateau: current rate (0: not started) */
    double plateau_best;    /* best monitored loss seen by the plateau schedule */
    size_t plateau_wait;    /* epochs since that loss last improved */
    double stop_best;       /* early stopping: best monitored loss (+inf: none yet) */
    size_t stop_wait;       /* epochs since it last improved */
    size_t stop_best_epoch; /* absolute epoch at which it was reached */
};

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
};

/* Setting @p key of @p f; the key must be valid. */
#define FIT_SET(f, key) ((f)->set[(key)-FIT_KEY_FIRST])

static void reset_counters(struct bp__fit *f)
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
    reset_counters(f);
    net->fit = f;
    return BP_OK;
}

static void history_free(bp_net *net)
{
    bp__free(&net->alloc, net->fit->history);
    net->fit->history = NULL;
    net->fit->history_len = net->fit->history_cap = 0;
}

void bp__fit_free(bp_net *net)
{
    if (net->fit == NULL) return;
    history_free(net);
    bp__free(&net->alloc, net->fit);
    net->fit = NULL;
}

void bp__fit_copy(bp_net *dst, const bp_net *src)
{
    history_free(dst);
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
    bp__w_u32(w, FIT_KEY_COUNT);
    for (uint32_t k = 0; k < FIT_KEY_COUNT; k++) {
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

/* ------------------------------------------------------------------------------------------
 * Metrics
 * ----------------------------------------------------------------------------------------*/

size_t bp_metric_count(void)
{
    return BP_METRIC_COUNT;
}

static const char *const metric_names[BP_METRIC_COUNT] = {
    "loss",         "accuracy", "mae",      "rmse",          "val_loss",
    "val_accuracy", "val_mae",  "val_rmse", "learning_rate", "seconds"};

const char *bp_metric_name(int metric)
{
    return metric >= 0 && metric < BP_METRIC_COUNT ? metric_names[metric] : "unknown";
}

/* Sums over the rows seen so far, turned into LOSS, ACCURACY, MAE, RMSE by metrics_finish. */
typedef struct metric_sums {
    double loss; /* sum of batch loss * batch rows */
    double hits; /* correct rows (softmax CE) or elements (BCE) */
    double abs, sq;
    size_t rows;
} metric_sums;

/* Add a batch: @p value is its mean loss, pred [rows x width] the outputs, target
 * [rows x width] (or [rows] class indices for a sparse-target loss). */
static void metrics_add(metric_sums *m, int loss, float value, const float *pred,
                        const float *target, size_t rows, size_t width)
{
    const bp__loss_desc *d = bp__loss_get(loss);
    m->loss += (double)value * (double)rows;
    m->rows += rows;
    if (d->hits != NULL) {
        m->hits += d->hits(pred, target, rows, width);
        return;
    }
    double a = 0.0, s = 0.0;
    for (size_t k = 0; k < rows * width; k++) {
        const double e = (double)pred[k] - (double)target[k];
        a += fabs(e);
        s += e * e;
    }
    m->abs += a;
    m->sq += s;
}

/* out[0..4): LOSS, ACCURACY, MAE, RMSE. */
static void metrics_finish(const metric_sums *m, int loss, size_t width, double *out)
{
    const double rows = (double)m->rows, elems = rows * (double)width;
    out[BP_METRIC_LOSS] = m->loss / rows;
    out[BP_METRIC_ACCURACY] = (double)NAN;
    out[BP_METRIC_MAE] = (double)NAN;
    out[BP_METRIC_RMSE] = (double)NAN;
    const bp__loss_desc *d = bp__loss_get(loss);
    if (d->hits != NULL) {
        out[BP_METRIC_ACCURACY] = m->hits / (d->hits_per_element ? elems : rows);
    } else {
        out[BP_METRIC_MAE] = m->abs / elems;
        out[BP_METRIC_RMSE] = sqrt(m->sq / elems);
    }
}

/* ------------------------------------------------------------------------------------------
 * Argument checks shared by fit and evaluate
 * ----------------------------------------------------------------------------------------*/

static size_t out_width(const bp_net *net)
{
    return net->layers[net->nlayers - 1]->out;
}

/* Re-record the thread's last message on the net, prefixed with @p fn and @p what. */
static bp_status refail(bp_net *net, bp_status s, const char *fn, const char *what)
{
    char msg[BP__ERR_CAP];
    snprintf(msg, sizeof msg, "%s", bp_last_error());
    return bp__fail(net->err, s, "%s: %s: %s", fn, what, msg);
}

static bp_status check_net_loss(bp_net *net, const char *fn, int loss)
{
    return bp__walk_check_loss(net, fn, loss);
}

/* @p ds (named @p what in messages) fits @p net and @p loss: widths and target values. */
static bp_status check_set(bp_net *net, const char *fn, const char *what, int loss,
                           const bp_dataset *ds)
{
    if (!bp__dataset_ok(ds))
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: the %s set is not a valid data set", fn,
                        what);
    if (ds->in != net->inputs)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "%s: the %s set has %zu input columns, the net "
                        "takes %zu",
                        fn, what, ds->in, net->inputs);
    const size_t out = out_width(net);
    const bp__loss_desc *d = bp__loss_get(loss);
    if (d->sparse_targets && ds->out != 1)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "%s: the %s set has %zu target columns; "
                        "%s takes 1 (class indices)",
                        fn, what, ds->out, d->name);
    if (!d->sparse_targets && ds->out != out)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "%s: the %s set has %zu target columns, the "
                        "net has %zu outputs",
                        fn, what, ds->out, out);
    const bp_status s = bp__loss_check_targets(NULL, loss, ds->y, ds->n, out);
    if (s != BP_OK) {
        char where[48];
        snprintf(where, sizeof where, "the %s set", what);
        return refail(net, s, fn, where);
    }
    return BP_OK;
}

/* Loss and metrics of @p net on @p ds into out[0..4), predicting @p chunk rows at a time
 * into @p buf [chunk x out]. */
static bp_status eval_set(bp_net *net, int loss, const bp_dataset *ds, float *buf, size_t chunk,
                          double *out)
{
    const size_t width = out_width(net), yw = bp__loss_target_width(bp__loss_get(loss), width);
    metric_sums m = {0};
    for (size_t r = 0; r < ds->n; r += chunk) {
        const size_t rows = ds->n - r < chunk ? ds->n - r : chunk;
        const float *target = ds->y + r * yw;
        BP_CHECK(bp_net_predict(net, ds->x + r * ds->in, rows, buf, chunk * width));
        float value;
        int is_dz;
        BP_CHECK(bp__loss_compute(net->err, loss, net->huber_delta, buf, NULL, target, rows, width,
                                  &value, NULL, &is_dz));
        metrics_add(&m, loss, value, buf, target, rows, width);
    }
    metrics_finish(&m, loss, width, out);
    return BP_OK;
}

bp_status bp_net_evaluate(bp_net *net, int loss, const bp_dataset *ds, double *metrics,
                          size_t count)
{
    static const char fn[] = "bp_net_evaluate";
    NET_CHECK(net, fn);
    if (metrics == NULL || count == 0)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: metrics is NULL or count is 0", fn);
    BP_CHECK(check_net_loss(net, fn, loss));
    BP_CHECK(check_set(net, fn, "evaluation", loss, ds));
    const size_t chunk = ds->n < EVAL_CHUNK ? ds->n : EVAL_CHUNK;
    const size_t floats = chunk * out_width(net); /* <= 1024 * 2^24: no overflow */
    float *buf = bp__malloc(&net->alloc, floats * sizeof(float));
    if (buf == NULL)
        return bp__fail(net->err, BP_ERR_NOMEM, "%s: out of memory for %zu output floats", fn,
                        floats);
    double m[4];
    const bp_status s = eval_set(net, loss, ds, buf, chunk, m);
    bp__free(&net->alloc, buf);
    if (s != BP_OK) return s;
    for (size_t k = 0; k < count && k < 4; k++)
        metrics[k] = m[k];
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Schedules
 * ----------------------------------------------------------------------------------------*/

/* The learning rate of absolute epoch @p e (formulas in backprop.h, "Training loop"). */
static double schedule_rate(const struct bp__fit *f, double base, size_t e, size_t epochs)
{
    const size_t warm = (size_t)FIT_SET(f, BP_FIT_WARMUP_EPOCHS);
    if (e < warm) return base * (double)(e + 1) / (double)warm;
    const size_t k = e - warm;
    const double gamma = FIT_SET(f, BP_FIT_LR_GAMMA), lr_min = FIT_SET(f, BP_FIT_LR_MIN);
    switch ((int)FIT_SET(f, BP_FIT_SCHEDULE)) {
    case BP_SCHEDULE_STEP:
        return base * pow(gamma, (double)(k / (size_t)FIT_SET(f, BP_FIT_LR_STEP)));
    case BP_SCHEDULE_EXPONENTIAL: return base * pow(gamma, (double)k);
    case BP_SCHEDULE_COSINE: {
        size_t t = (size_t)FIT_SET(f, BP_FIT_COSINE_EPOCHS);
        if (t == 0) t = epochs > warm ? epochs - warm : 1;
        const double kk = (double)(k < t ? k : t);
        return lr_min + (base - lr_min) * (1.0 + cos(BP__PI * kk / (double)t)) / 2.0;
    }
    case BP_SCHEDULE_PLATEAU: return f->plateau_lr;
    default: return base;
    }
}

static int improved(double loss, double best, double min_delta)
{
    return loss < best - min_delta;
}

/* ------------------------------------------------------------------------------------------
 * History
 * ----------------------------------------------------------------------------------------*/

/* Make room for @p rows history rows (keeping the recorded ones). */
static bp_status history_reserve(bp_net *net, size_t rows)
{
    struct bp__fit *f = net->fit;
    if (rows <= f->history_cap) return BP_OK;
    size_t bytes;
    if (bp__mul_size(rows, FIT_ROW * sizeof(double), &bytes) != 0)
        return bp__fail(net->err, BP_ERR_NOMEM, "bp_net_fit: history of %zu epochs overflows",
                        rows);
    double *h = bp__malloc(&net->alloc, bytes);
    if (h == NULL)
        return bp__fail(net->err, BP_ERR_NOMEM,
                        "bp_net_fit: out of memory for a history of "
                        "%zu epochs",
                        rows);
    if (f->history_len) memcpy(h, f->history, f->history_len * FIT_ROW * sizeof(double));
    bp__free(&net->alloc, f->history);
    f->history = h;
    f->history_cap = rows;
    return BP_OK;
}

size_t bp_net_history_length(const bp_net *net)
{
    return bp__net_ok(net) ? net->fit->history_len : 0;
}

bp_status bp_net_history_get(const bp_net *net, size_t epoch, int metric, double *value)
{
    NET_CHECK(net, "bp_net_history_get");
    if (value == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_history_get: value is NULL");
    if (metric < 0 || metric >= BP_METRIC_COUNT)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_history_get: unknown metric %d", metric);
    if (epoch >= net->fit->history_len)
        return bp__fail(NULL, BP_ERR_INDEX,
                        "bp_net_history_get: epoch row %zu is out of range "
                        "(the history has %zu)",
                        epoch, net->fit->history_len);
    *value = net->fit->history[epoch * FIT_ROW + 1 + (size_t)metric];
    return BP_OK;
}

bp_status bp_net_history_save_csv(const bp_net *net, const char *path)
{
    NET_CHECK(net, "bp_net_history_save_csv");
    char *err = (char *)(uintptr_t)net->err; /* the message buffer is logically mutable */
    if (path == NULL)
        return bp__fail(err, BP_ERR_INVALID_ARG, "bp_net_history_save_csv: path is NULL");
    bp__atomic_file w;
    BP_CHECK(bp__atomic_open(&w, err, path));
    bp__c_locale loc; /* numbers with '.', whatever the caller's locale */
    const bp_status s = bp__c_locale_begin(&loc, err, "bp_net_history_save_csv");
    if (s != BP_OK) {
        bp__atomic_abort(&w);
        return s;
    }
    fputs("epoch", w.f);
    for (int k = 0; k < BP_METRIC_COUNT; k++)
        fprintf(w.f, ",%s", metric_names[k]);
    fputc('\n', w.f);
    for (size_t i = 0; i < net->fit->history_len; i++) {
        const double *row = net->fit->history + i * FIT_ROW;
        fprintf(w.f, "%.0f", row[0]);
        for (int k = 1; k < FIT_ROW; k++) {
            if (isnan(row[k]))
                fputs(",nan", w.f);
            else
                fprintf(w.f, ",%.9g", row[k]);
        }
        fputc('\n', w.f);
    }
    bp__c_locale_end(&loc);
    return bp__atomic_commit(&w, err, path);
}

/* ------------------------------------------------------------------------------------------
 * Fit
 * ----------------------------------------------------------------------------------------*/

bp_status bp_net_set_epoch_callback(bp_net *net, bp_epoch_fn fn, void *user)
{
    NET_CHECK(net, "bp_net_set_epoch_callback");
    net->fit->callback = fn;
    net->fit->callback_user = fn != NULL ? user : NULL;
    return BP_OK;
}

/* Buffers of one fit call, carved from one allocation. */
typedef struct fit_plan {
    void *block;
    size_t *order; /* [n] row order of the epoch (shuffling only) */
    float *xb;     /* [bs x in] gathered inputs (shuffling only) */
    float *yb;     /* [bs x yw] gathered targets (shuffling only) */
    float *vout;   /* [vchunk x out] validation outputs (with a validation set) */
    float *best;   /* [nparams] best weights (early stopping with restore) */
} fit_plan;

static bp_status plan_fit(bp_net *net, fit_plan *p, size_t n, size_t bs, size_t yw, int shuffle,
                          size_t vchunk, int keep_best)
{
    const size_t in = net->inputs, out = out_width(net);
    size_t sizes[5] = {0, 0, 0, 0, 0}, total = 0;
    int bad = 0;
    if (shuffle) {
        bad |= bp__mul_size(n, sizeof(size_t), &sizes[0]);
        bad |= bp__mul_size(bs, in * sizeof(float), &sizes[1]);
        bad |= bp__mul_size(bs, yw * sizeof(float), &sizes[2]);
    }
    bad |= bp__mul_size(vchunk, out * sizeof(float), &sizes[3]);
    if (keep_best) sizes[4] = net->nparams * sizeof(float); /* the arena's size: no overflow */
    for (int k = 0; k < 5 && !bad; k++) {
        sizes[k] = (sizes[k] + 63u) & ~(size_t)63u;
        bad |= total > SIZE_MAX - sizes[k];
        total += sizes[k];
    }
    if (bad)
        return bp__fail(net->err, BP_ERR_NOMEM, "bp_net_fit: buffers for %zu rows overflow", n);
    memset(p, 0, sizeof *p);
    if (total == 0) return BP_OK;
    unsigned char *b = bp__malloc_aligned(&net->alloc, total);
    if (b == NULL)
        return bp__fail(net->err, BP_ERR_NOMEM,
                        "bp_net_fit: out of memory for %zu bytes of "
                        "batch buffers",
                        total);
    p->block = b;
    if (sizes[0]) p->order = (size_t *)(void *)b;
    b += sizes[0];
    if (sizes[1]) p->xb = (float *)(void *)b;
    b += sizes[1];
    if (sizes[2]) p->yb = (float *)(void *)b;
    b += sizes[2];
    if (sizes[3]) p->vout = (float *)(void *)b;
    b += sizes[3];
    if (sizes[4]) p->best = (float *)(void *)b;
    return BP_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One epoch of training steps over @p train in the order @p order (NULL: 0..n-1); the
 * training metrics go into m[0..4). */
static bp_status train_epoch(bp_net *net, bp_optimizer *opt, int loss, const bp_dataset *train,
                             const fit_plan *p, size_t bs, size_t epoch, double *m)
{
    const size_t n = train->n, in = net->inputs, width = out_width(net);
    const size_t yw = bp__loss_target_width(bp__loss_get(loss), width);
    metric_sums sums = {0};
    if (p->order != NULL) {
        /* A fresh Fisher-Yates shuffle of the identity: only the generator state matters. */
        for (size_t i = 0; i < n; i++)
            p->order[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            const size_t j = (size_t)bp__rng_below(&net->rng, (uint64_t)i + 1);
            const size_t t = p->order[i];
            p->order[i] = p->order[j];
            p->order[j] = t;
        }
    }
    for (size_t r = 0; r < n; r += bs) {
        const size_t rows = n - r < bs ? n - r : bs;
        const float *xb = train->x + r * in, *yb = train->y + r * yw;
        if (p->order != NULL) {
            for (size_t i = 0; i < rows; i++) {
                const size_t src = p->order[r + i];
                memcpy(p->xb + i * in, train->x + src * in, in * sizeof(float));
                memcpy(p->yb + i * yw, train->y + src * yw, yw * sizeof(float));
            }
            xb = p->xb;
            yb = p->yb;
        }
        float value;
        const bp_status s = bp_net_train_step(net, opt, loss, xb, yb, rows, &value);
        if (s != BP_OK) {
            char where[80];
            snprintf(where, sizeof where, "epoch %zu, batch of rows %zu..%zu", epoch, r,
                     r + rows - 1);
            return refail(net, s, "bp_net_fit", where);
        }
        /* The outputs of this batch's forward walk (before the update). */
        metrics_add(&sums, loss, value, bp__walk_outputs(net), yb, rows, width);
    }
    metrics_finish(&sums, loss, width, m);
    return BP_OK;
}

/* After epoch @p e with monitored loss @p mon: update the plateau rate and the
 * early-stopping counters. Returns 1 when early stopping asks to stop. */
static int update_counters(bp_net *net, size_t e, double mon, const fit_plan *p, int *have_best)
{
    struct bp__fit *f = net->fit;
    const double delta = FIT_SET(f, BP_FIT_MIN_DELTA);
    if ((int)FIT_SET(f, BP_FIT_SCHEDULE) == BP_SCHEDULE_PLATEAU &&
        e >= (size_t)FIT_SET(f, BP_FIT_WARMUP_EPOCHS)) {
        if (improved(mon, f->plateau_best, delta)) {
            f->plateau_best = mon;
            f->plateau_wait = 0;
        } else if (++f->plateau_wait >= (size_t)FIT_SET(f, BP_FIT_PLATEAU_PATIENCE)) {
            const double lr_min = FIT_SET(f, BP_FIT_LR_MIN),
                         next = f->plateau_lr * FIT_SET(f, BP_FIT_LR_GAMMA);
            f->plateau_lr = next > lr_min ? next : lr_min;
            f->plateau_wait = 0;
        }
    }
    if (improved(mon, f->stop_best, delta)) {
        f->stop_best = mon;
        f->stop_wait = 0;
        f->stop_best_epoch = e;
        if (p->best != NULL) {
            memcpy(p->best, net->params, net->nparams * sizeof(float));
            *have_best = 1;
        }
        return 0;
    }
    f->stop_wait++;
    const size_t patience = (size_t)FIT_SET(f, BP_FIT_PATIENCE);
    return patience > 0 && f->stop_wait >= patience;
}

bp_status bp_net_fit(bp_net *net, bp_optimizer *opt, int loss, const bp_dataset *train,
                     const bp_dataset *val)
{
    static const char fn[] = "bp_net_fit";
    NET_CHECK(net, fn);
    struct bp__fit *f = net->fit;
    BP_CHECK(check_net_loss(net, fn, loss));
    if (net->accumulate)
        return bp__fail(net->err, BP_ERR_STATE,
                        "%s: BP_NET_ACCUMULATE_GRADS is on; fit updates "
                        "after every batch, turn it off",
                        fn);
    bp_status s = bp__optimizer_validate_for(opt, net);
    if (s != BP_OK) return refail(net, s, fn, "optimizer");
    BP_CHECK(check_set(net, fn, "training", loss, train));
    if (val != NULL) BP_CHECK(check_set(net, fn, "validation", loss, val));

    const size_t epochs = (size_t)FIT_SET(f, BP_FIT_EPOCHS);
    const size_t start = (size_t)FIT_SET(f, BP_FIT_INITIAL_EPOCH);
    const size_t batch = (size_t)FIT_SET(f, BP_FIT_BATCH_SIZE);
    const size_t n = train->n, bs = batch < n ? batch : n;
    const int shuffle = FIT_SET(f, BP_FIT_SHUFFLE) != 0.0;
    const int keep_best =
        FIT_SET(f, BP_FIT_PATIENCE) > 0.0 && FIT_SET(f, BP_FIT_RESTORE_BEST) != 0.0;
    const size_t vchunk = val == NULL ? 0 : val->n < EVAL_CHUNK ? val->n : EVAL_CHUNK;
    const size_t yw = bp__loss_target_width(bp__loss_get(loss), out_width(net));
    /* The rate the schedule drives (held, not used, by an algorithm without one: iRprop-). */
    const double base = bp__optimizer_rate(opt);

    /* Everything that can fail before training is done; then the state changes. */
    const size_t todo = start < epochs ? epochs - start : 0;
    BP_CHECK(history_reserve(net, todo < HISTORY_RESERVE ? todo : HISTORY_RESERVE));
    fit_plan p;
    BP_CHECK(plan_fit(net, &p, n, bs, yw, shuffle, vchunk, keep_best));
    f->history_len = 0;
    if (start == 0) reset_counters(f);
    if (start == 0 || f->plateau_lr <= 0.0) f->plateau_lr = base;
    const int mon_key = val != NULL ? BP_METRIC_VAL_LOSS : BP_METRIC_LOSS;
    int have_best = 0;

    for (size_t e = start; e < epochs; e++) {
        const double t0 = now_seconds();
        const double lr = schedule_rate(f, base, e, epochs);
        s = bp__optimizer_set_rate(opt, lr);
        if (s != BP_OK) {
            s = refail(net, s, fn, "learning rate");
            break;
        }
        double m[BP_METRIC_COUNT];
        s = train_epoch(net, opt, loss, train, &p, bs, e, m);
        if (s != BP_OK) break;
        for (int k = BP_METRIC_VAL_LOSS; k <= BP_METRIC_VAL_RMSE; k++)
            m[k] = (double)NAN;
        if (val != NULL) {
            s = eval_set(net, loss, val, p.vout, vchunk, m + BP_METRIC_VAL_LOSS);
            if (s != BP_OK) {
                s = refail(net, s, fn, "validation");
                break;
            }
        }
        m[BP_METRIC_LEARNING_RATE] = lr;
        m[BP_METRIC_SECONDS] = now_seconds() - t0;

        if (f->history_len == f->history_cap) {
            s = history_reserve(net, f->history_cap * 2);
            if (s != BP_OK) break;
        }
        double *row = f->history + f->history_len++ * FIT_ROW;
        row[0] = (double)e;
        memcpy(row + 1, m, sizeof m);

        const int early = update_counters(net, e, m[mon_key], &p, &have_best);
        f->next_epoch = e + 1;
        const int asked =
            f->callback != NULL && f->callback(f->callback_user, e, m, BP_METRIC_COUNT) != 0;
        if (early) {
            if (have_best && FIT_SET(f, BP_FIT_RESTORE_BEST) != 0.0)
                memcpy(net->params, p.best, net->nparams * sizeof(float));
            break;
        }
        if (asked) break;
    }
    /* The base rate goes back (within bounds: it came from the optimizer). */
    (void)bp__optimizer_set_rate(opt, base);
    bp__free_aligned(&net->alloc, p.block);
    return s;
}

/* ------------------------------------------------------------------------------------------
 * argmax
 * ----------------------------------------------------------------------------------------*/

bp_status bp_argmax(const float *values, size_t n, size_t width, size_t *index, size_t capacity)
{
    size_t total;
    if (values == NULL || index == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_argmax: values and index must not be "
                        "NULL");
    if (n == 0 || width == 0 || bp__mul_size(n, width, &total) != 0)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_argmax: n = %zu and width = %zu must be "
                        ">= 1 and their product representable",
                        n, width);
    if (capacity < n)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL, "bp_argmax: %zu rows, index holds %zu", n,
                        capacity);
    for (size_t k = 0; k < total; k++)
        if (isnan(values[k]))
            return bp__fail(NULL, BP_ERR_NONFINITE, "bp_argmax: row %zu, column %zu is NaN",
                            k / width, k % width);
    for (size_t i = 0; i < n; i++)
        index[i] = bp__row_argmax(values + i * width, width);
    return BP_OK;
}
