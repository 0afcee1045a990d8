/* train.c -- the training loop (step five, "repeat"): bp_net_fit over bp_net_train_step with
 * batching, shuffling, metrics, validation, learning-rate schedules, early stopping, the
 * epoch and batch callbacks, recording the history (queried in history.c); bp_net_evaluate.
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
#include "source.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <time.h>

#define BP__PI 3.14159265358979323846
/* Rows per inference chunk in evaluate and validation (bp_net_predict's own chunk). */
#define EVAL_CHUNK ((size_t)1024)
/* History rows reserved at the start of a fit call (beyond: doubling, once per epoch). */
#define HISTORY_RESERVE ((size_t)4096)

/* ------------------------------------------------------------------------------------------
 * Metrics
 * ----------------------------------------------------------------------------------------*/

/* Sums over the rows seen so far, turned into LOSS, ACCURACY, MAE, RMSE by metrics_finish. */
typedef struct metric_sums {
    double loss; /* sum of batch loss * batch rows */
    double hits; /* correct rows (softmax CE) or elements (BCE) */
    double abs, sq;
    size_t rows;
} metric_sums;

/* Add a batch: @p value is its mean loss, pred [rows x width] the outputs (rows: n*T step
 * rows on sequences, width: a step's), target
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

/* How @p loss sees the net's output rows (bp__loss_rows): steps T of sequence outputs (0:
 * none), the width of a step (of the row without steps) and the targets per data-set row. */
typedef struct loss_view {
    size_t steps, width, yw;
} loss_view;

static loss_view view_of(const bp_net *net, int loss)
{
    const bp_layer *last = net->layers[net->nlayers - 1];
    loss_view v;
    size_t rows;
    v.steps = last->out_steps;
    bp__loss_rows(1, v.steps, last->out, &rows, &v.width);
    v.yw = bp__loss_target_width(bp__loss_get(loss), v.width) * rows;
    return v;
}

/* The step rows in @p rows data-set rows. */
static size_t step_rows(const loss_view *v, size_t rows)
{
    return v->steps ? rows * v->steps : rows;
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

/* Rows of @p in inputs and @p outs targets (a set or source named @p what) fit @p net and
 * @p loss. */
static bp_status check_widths(bp_net *net, const char *fn, const char *what, int loss, size_t in,
                              size_t outs)
{
    if (in != net->inputs)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "%s: the %s has %zu input columns, the net "
                        "takes %zu",
                        fn, what, in, net->inputs);
    const size_t out = out_width(net);
    const bp__loss_desc *d = bp__loss_get(loss);
    const loss_view v = view_of(net, loss); /* class indices: one per step on sequences */
    if (d->sparse_targets && outs != v.yw)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "%s: the %s has %zu target columns; "
                        "%s takes %zu (class indices%s)",
                        fn, what, outs, d->name, v.yw, v.steps ? ", one per step" : "");
    if (!d->sparse_targets && outs != out)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "%s: the %s has %zu target columns, the "
                        "net has %zu outputs",
                        fn, what, outs, out);
    return BP_OK;
}

/* @p ds (named @p what in messages) fits @p net and @p loss: widths and target values. */
static bp_status check_set(bp_net *net, const char *fn, const char *what, int loss,
                           const bp_dataset *ds)
{
    if (!bp__dataset_ok(ds))
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: the %s set is not a valid data set", fn,
                        what);
    char name[48];
    snprintf(name, sizeof name, "%s set", what);
    BP_CHECK(check_widths(net, fn, name, loss, ds->in, ds->out));
    const loss_view v = view_of(net, loss);
    /* Resident targets are checked here; a mapped set's per batch as they are read. */
    const bp_status s = bp__dataset_resident(ds)
                            ? bp__loss_check_targets(NULL, loss, ds->y, ds->n, v.steps, v.width)
                            : BP_OK;
    if (s != BP_OK) {
        char where[48];
        snprintf(where, sizeof where, "the %s set", what);
        return refail(net, s, fn, where);
    }
    return BP_OK;
}

/* Read rows of @p ds through the data-set accessor (bp__dataset_read); a failure (a mapped
 * file's checksum or value) is recorded on @p net too. */
static bp_status read_rows(bp_net *net, const bp_dataset *ds, const size_t *idx, size_t start,
                           size_t k, float *x, float *y)
{
    const bp_status s = bp__dataset_read(ds, idx, start, k, x, y);
    if (s != BP_OK) {
        char msg[BP__ERR_CAP];
        snprintf(msg, sizeof msg, "%s", bp_last_error());
        return bp__fail(net->err, s, "%s", msg);
    }
    return BP_OK;
}

/* Add the loss and metrics of @p net on @p rows rows (x [rows x in], target [rows x yw]) to
 * @p m, predicting into @p buf [chunk x out]. */
static bp_status eval_rows(bp_net *net, int loss, const float *x, const float *target, size_t rows,
                           float *buf, size_t chunk, int scalers, metric_sums *m)
{
    const size_t width = out_width(net);
    const loss_view v = view_of(net, loss); /* per step on sequences */
    BP_CHECK(bp__walk_predict(net, x, rows, buf, chunk * width, scalers));
    float value;
    int is_dz;
    const size_t srows = step_rows(&v, rows);
    BP_CHECK(bp__loss_compute(net->err, loss, net->huber_delta, buf, NULL, target, srows, v.width,
                              &value, NULL, &is_dz));
    metrics_add(m, loss, value, buf, target, srows, v.width);
    return BP_OK;
}

/* Loss and metrics of @p net on @p ds into out[0..4), predicting @p chunk rows at a time
 * into @p buf [chunk x out]; a mapped @p ds is read @p chunk rows at a time into @p xb
 * [chunk x in] and @p yb [chunk x yw] (unused for a resident one). */
static bp_status eval_set(bp_net *net, int loss, const bp_dataset *ds, float *buf, size_t chunk,
                          float *xb, float *yb, double *out, int scalers)
{
    const loss_view v = view_of(net, loss); /* per step on sequences */
    metric_sums m = {0};
    for (size_t r = 0; r < ds->n; r += chunk) {
        const size_t rows = ds->n - r < chunk ? ds->n - r : chunk;
        const float *x = xb, *target = yb;
        if (bp__dataset_resident(ds)) {
            x = ds->x + r * ds->in;
            target = ds->y + r * v.yw;
        } else {
            BP_CHECK(read_rows(net, ds, NULL, r, rows, xb, yb));
            BP_CHECK(bp__loss_check_targets(net->err, loss, yb, rows, v.steps, v.width));
        }
        BP_CHECK(eval_rows(net, loss, x, target, rows, buf, chunk, scalers, &m));
    }
    metrics_finish(&m, loss, v.width, out);
    return BP_OK;
}

bp_status bp_net_evaluate(bp_net *net, int loss, const bp_dataset *ds, double *metrics,
                          size_t count)
{
    static const char fn[] = "bp_net_evaluate";
    BP__NET_CHECK(net, fn);
    if (metrics == NULL || count == 0)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: metrics is NULL or count is 0", fn);
    BP_CHECK(check_net_loss(net, fn, loss));
    BP_CHECK(check_set(net, fn, "evaluation", loss, ds));
    const size_t chunk = ds->n < EVAL_CHUNK ? ds->n : EVAL_CHUNK;
    /* Outputs, and for a mapped set the rows read: chunk x (out + in + yw) floats (each
     * width <= 2^24, chunk <= 1024: no overflow). */
    const size_t width = out_width(net), yw = view_of(net, loss).yw;
    const size_t floats = chunk * (width + (bp__dataset_resident(ds) ? 0 : ds->in + yw));
    float *buf = bp__malloc(&net->alloc, floats * sizeof(float));
    if (buf == NULL)
        return bp__fail(net->err, BP_ERR_NOMEM, "%s: out of memory for %zu floats", fn, floats);
    double m[4];
    float *xb = NULL, *yb = NULL;
    if (!bp__dataset_resident(ds)) {
        xb = buf + chunk * width;
        yb = xb + chunk * ds->in;
    }
    const bp_status s = eval_set(net, loss, ds, buf, chunk, xb, yb, m, net->apply_scalers);
    bp__free(&net->alloc, buf);
    if (s != BP_OK) return s;
    for (size_t k = 0; k < count && k < 4; k++)
        metrics[k] = m[k];
    return BP_OK;
}

/* @p src (named @p what in messages) fits @p net and @p loss. */
static bp_status check_source(bp_net *net, const char *fn, const char *what, int loss,
                              const bp_source *src)
{
    if (!bp__source_ok(src))
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: the %s is not a valid source", fn, what);
    return check_widths(net, fn, what, loss, src->in, src->out);
}

bp_status bp_net_evaluate_source(bp_net *net, int loss, bp_source *src, double *metrics,
                                 size_t count)
{
    static const char fn[] = "bp_net_evaluate_source";
    BP__NET_CHECK(net, fn);
    if (metrics == NULL || count == 0)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: metrics is NULL or count is 0", fn);
    BP_CHECK(check_net_loss(net, fn, loss));
    BP_CHECK(check_source(net, fn, "source", loss, src));
    /* The chunks of bp_net_evaluate, so that the same rows give the same sums. */
    const size_t chunk = src->rows != 0 && src->rows < EVAL_CHUNK ? src->rows : EVAL_CHUNK;
    const size_t width = out_width(net), yw = src->out;
    const loss_view v = view_of(net, loss);               /* per step on sequences */
    const size_t floats = chunk * (width + src->in + yw); /* widths <= 2^24: no overflow */
    float *buf = bp__malloc(&net->alloc, floats * sizeof(float));
    if (buf == NULL)
        return bp__fail(net->err, BP_ERR_NOMEM, "%s: out of memory for %zu floats", fn, floats);
    float *xb = buf + chunk * width, *yb = xb + chunk * src->in;
    metric_sums m = {0};
    bp__pass pass;
    bp_status s = bp__pass_begin(&pass, src, NULL, NULL, NULL, 0, NULL, NULL, 0);
    if (s != BP_OK) s = refail(net, s, fn, "starting a pass");
    for (size_t r = 0; s == BP_OK; r += chunk) {
        size_t rows;
        s = bp__pass_next(&pass, xb, yb, chunk, &rows);
        if (s != BP_OK) {
            s = refail(net, s, fn, "reading the source");
            break;
        }
        if (rows == 0) break;
        s = bp__loss_check_targets(NULL, loss, yb, rows, v.steps, v.width);
        if (s != BP_OK) {
            char where[64];
            snprintf(where, sizeof where, "source rows %zu..%zu", r, r + rows - 1);
            s = refail(net, s, fn, where);
            break;
        }
        s = eval_rows(net, loss, xb, yb, rows, buf, chunk, net->apply_scalers, &m);
    }
    bp__free(&net->alloc, buf);
    if (s != BP_OK) return s;
    double out[4];
    metrics_finish(&m, loss, v.width, out);
    for (size_t k = 0; k < count && k < 4; k++)
        metrics[k] = out[k];
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
 * Fit
 * ----------------------------------------------------------------------------------------*/

bp_status bp_net_set_epoch_callback(bp_net *net, bp_epoch_fn fn, void *user)
{
    BP__NET_CHECK(net, "bp_net_set_epoch_callback");
    net->fit->callback = fn;
    net->fit->callback_v2 = NULL;
    net->fit->callback_user = fn != NULL ? user : NULL;
    return BP_OK;
}

bp_status bp_net_set_epoch_callback_v2(bp_net *net, bp_epoch_fn_v2 fn, void *user)
{
    BP__NET_CHECK(net, "bp_net_set_epoch_callback_v2");
    net->fit->callback = NULL;
    net->fit->callback_v2 = fn;
    net->fit->callback_user = fn != NULL ? user : NULL;
    return BP_OK;
}

bp_status bp_net_set_batch_callback(bp_net *net, bp_batch_fn fn, void *user)
{
    BP__NET_CHECK(net, "bp_net_set_batch_callback");
    net->fit->batch_fn = fn;
    net->fit->batch_user = fn != NULL ? user : NULL;
    return BP_OK;
}

/* Buffers of one fit call, carved from one allocation. */
typedef struct fit_plan {
    void *block;
    size_t *order; /* [n] row order of the epoch (shuffling only) */
    float *xb;     /* [bs x in] gathered inputs (shuffling or a mapped training set) */
    float *yb;     /* [bs x yw] gathered targets (shuffling or a mapped training set) */
    float *vout;   /* [vchunk x out] validation outputs (with a validation set), then for a
                      mapped validation set [vchunk x in] inputs and [vchunk x yw] targets */
    float *best;   /* [nparams] best weights (early stopping with restore) */
    /* A source's shuffle buffer and the staging its rows pass through (scap > 0 only): */
    float *sx;   /* [scap x in] */
    float *sy;   /* [scap x yw] */
    float *tx;   /* [bs x in] */
    float *ty;   /* [bs x yw] */
    size_t scap; /* rows of the shuffle buffer; 0: a source read in stream order, or a set */
} fit_plan;

/* @p shuffle: the order of a data set's rows; @p gather: a batch buffer; @p scap: a source's
 * shuffle buffer of that many rows, and a batch of staging. */
static bp_status plan_fit(bp_net *net, fit_plan *p, size_t n, size_t bs, size_t yw, int shuffle,
                          int gather, size_t vchunk, int val_mapped, int keep_best, size_t scap)
{
    const size_t in = net->inputs, out = out_width(net);
    size_t sizes[7] = {0, 0, 0, 0, 0, 0, 0}, total = 0;
    int bad = 0;
    if (shuffle) bad |= bp__mul_size(n, sizeof(size_t), &sizes[0]);
    if (shuffle || gather) {
        bad |= bp__mul_size(bs, in * sizeof(float), &sizes[1]);
        bad |= bp__mul_size(bs, yw * sizeof(float), &sizes[2]);
    }
    bad |= bp__mul_size(vchunk, (out + (val_mapped ? in + yw : 0)) * sizeof(float), &sizes[3]);
    if (keep_best) sizes[4] = net->nparams * sizeof(float); /* the arena's size: no overflow */
    if (scap > 0) {
        bad |= bp__mul_size(scap, (in + yw) * sizeof(float), &sizes[5]);
        bad |= bp__mul_size(bs, (in + yw) * sizeof(float), &sizes[6]);
    }
    for (int k = 0; k < 7 && !bad; k++) {
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
    b += sizes[4];
    if (scap > 0) {
        p->scap = scap;
        p->sx = (float *)(void *)b;
        p->sy = p->sx + scap * in;
        b += sizes[5];
        p->tx = (float *)(void *)b;
        p->ty = p->tx + bs * in;
    }
    return BP_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One epoch of training steps over @p train in the order p->order (NULL: 0..n-1), or over
 * one pass of @p src (train NULL); the training metrics go into m[0..4). */
static bp_status train_epoch(bp_net *net, bp_optimizer *opt, int loss, const bp_dataset *train,
                             bp_source *src, const fit_plan *p, size_t bs, size_t epoch, double *m)
{
    const size_t n = train != NULL ? train->n : src->rows; /* 0: a stream of unknown length */
    const size_t in = net->inputs;
    const loss_view v = view_of(net, loss); /* per step on sequences */
    const size_t yw = v.yw;
    metric_sums sums = {0};
    struct bp__fit *f = net->fit;
    const size_t batches = (n + bs - 1) / bs;
    const double every = FIT_SET(f, BP_FIT_PROGRESS_SECONDS);
    double last = f->batch_fn != NULL ? now_seconds() : 0.0;
    const char *fn = src != NULL ? "bp_net_fit_source" : "bp_net_fit";
    bp__pass pass;
    if (src != NULL) {
        const bp_status s = bp__pass_begin(&pass, src, p->scap > 0 ? &net->rng : NULL, p->sx, p->sy,
                                           p->scap, p->tx, p->ty, bs);
        if (s != BP_OK) {
            char where[48];
            snprintf(where, sizeof where, "epoch %zu, starting a pass", epoch);
            return refail(net, s, fn, where);
        }
    }
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
    size_t b = 0, told = SIZE_MAX; /* batches done; the last one the callback was told of */
    for (size_t r = 0, rows = 0;; r += rows, b++) {
        const float *xb = p->xb, *yb = p->yb;
        if (src != NULL) {
            /* The next rows of the stream, checked as they come: a failure stops before the
             * step. */
            const bp_status s = bp__pass_next(&pass, p->xb, p->yb, bs, &rows);
            if (s != BP_OK) {
                char where[80];
                snprintf(where, sizeof where, "epoch %zu, reading the source after row %zu", epoch,
                         r);
                return refail(net, s, fn, where);
            }
            if (rows == 0) break;
        } else {
            if (r >= n) break;
            rows = n - r < bs ? n - r : bs;
            /* Resident rows in order are used in place; otherwise the batch is gathered (by
             * index when shuffling) through the data-set accessor, which for a mapped set
             * decodes the rows and checks their blocks: a failure stops before the step. */
            if (p->order == NULL && bp__dataset_resident(train)) {
                xb = train->x + r * in;
                yb = train->y + r * yw;
            } else {
                const bp_status s = read_rows(net, train, p->order, r, rows, p->xb, p->yb);
                if (s != BP_OK) {
                    char where[80];
                    snprintf(where, sizeof where, "epoch %zu, reading rows for batch %zu..%zu",
                             epoch, r, r + rows - 1);
                    return refail(net, s, fn, where);
                }
            }
        }
        float value;
        const bp_status s = bp_net_train_step(net, opt, loss, xb, yb, rows, &value);
        if (s != BP_OK) {
            char where[80];
            snprintf(where, sizeof where, "epoch %zu, batch of rows %zu..%zu", epoch, r,
                     r + rows - 1);
            return refail(net, s, fn, where);
        }
        /* The outputs of this batch's forward walk (before the update). */
        metrics_add(&sums, loss, value, bp__walk_outputs(net), yb, step_rows(&v, rows), v.width);
        if (f->batch_fn != NULL) {
            /* Bounded rate: after the epoch's last batch, and after another one only when
             * BP_FIT_PROGRESS_SECONDS have passed since the previous call (or the start). */
            if (b + 1 == batches || every == 0.0 || now_seconds() - last >= every) {
                f->batch_fn(f->batch_user, net, epoch, b, batches, sums.loss / (double)sums.rows);
                if (every > 0.0) last = now_seconds();
                told = b;
            }
        }
    }
    /* A stream of unknown length: its last batch is known once the pass has ended. */
    if (f->batch_fn != NULL && b > 0 && told != b - 1)
        f->batch_fn(f->batch_user, net, epoch, b - 1, b, sums.loss / (double)sums.rows);
    metrics_finish(&sums, loss, v.width, m);
    return BP_OK;
}

/* After epoch @p e with monitored loss @p mon: update the plateau rate and the
 * early-stopping counters. Returns 1 when early stopping asks to stop. */
static int update_counters(bp_net *net, size_t e, double mon, const fit_plan *p, int *have_best,
                           double *call_best)
{
    struct bp__fit *f = net->fit;
    const int keep = FIT_SET(f, BP_FIT_KEEP_BEST) != 0.0;
    if (keep && mon < *call_best) { /* the lowest monitored loss of this call: its weights */
        *call_best = mon;
        memcpy(p->best, net->params, net->nparams * sizeof(float));
        *have_best = 1;
    }
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
        if (p->best != NULL && !keep) {
            memcpy(p->best, net->params, net->nparams * sizeof(float));
            *have_best = 1;
        }
        return 0;
    }
    f->stop_wait++;
    const size_t patience = (size_t)FIT_SET(f, BP_FIT_PATIENCE);
    return patience > 0 && f->stop_wait >= patience;
}

/* bp_net_fit (@p train) and bp_net_fit_source (@p streaming: @p src, train NULL), named
 * @p fn. */
static bp_status fit(const char *fn, int streaming, bp_net *net, bp_optimizer *opt, int loss,
                     const bp_dataset *train, bp_source *src, const bp_dataset *val)
{
    BP__NET_CHECK(net, fn);
    struct bp__fit *f = net->fit;
    BP_CHECK(check_net_loss(net, fn, loss));
    if (net->accumulate)
        return bp__fail(net->err, BP_ERR_STATE,
                        "%s: BP_NET_ACCUMULATE_GRADS is on; fit updates "
                        "after every batch, turn it off",
                        fn);
    bp_status s = bp__optimizer_validate_for(opt, net);
    if (s != BP_OK) return refail(net, s, fn, "optimizer");
    if (streaming)
        BP_CHECK(check_source(net, fn, "training source", loss, src));
    else
        BP_CHECK(check_set(net, fn, "training", loss, train));
    if (val != NULL) BP_CHECK(check_set(net, fn, "validation", loss, val));

    const size_t epochs = (size_t)FIT_SET(f, BP_FIT_EPOCHS);
    const size_t start = (size_t)FIT_SET(f, BP_FIT_INITIAL_EPOCH);
    const size_t batch = (size_t)FIT_SET(f, BP_FIT_BATCH_SIZE);
    /* n: rows of an epoch, 0 for a stream of unknown length. */
    const size_t n = train != NULL ? train->n : src->rows;
    const size_t bs = n != 0 && n < batch ? n : batch;
    const int shuffle = FIT_SET(f, BP_FIT_SHUFFLE) != 0.0;
    const int keep_all = FIT_SET(f, BP_FIT_KEEP_BEST) != 0.0;
    const int keep_best =
        keep_all || (FIT_SET(f, BP_FIT_PATIENCE) > 0.0 && FIT_SET(f, BP_FIT_RESTORE_BEST) != 0.0);
    const size_t vchunk = val == NULL ? 0 : val->n < EVAL_CHUNK ? val->n : EVAL_CHUNK;
    const size_t yw = view_of(net, loss).yw;
    /* The rate the schedule drives (held, not used, by an algorithm without one: iRprop-). */
    const double base = bp__optimizer_rate(opt);

    /* A source's shuffle buffer: at most the rows of a pass; 1 row is the stream's order. */
    size_t scap = 0;
    if (src != NULL && shuffle) {
        scap = (size_t)FIT_SET(f, BP_FIT_SHUFFLE_BUFFER);
        if (n != 0 && n < scap) scap = n;
        if (scap < 2) scap = 0;
    }

    /* Everything that can fail before training is done; then the state changes. */
    const size_t todo = start < epochs ? epochs - start : 0;
    if (src != NULL && src->rewind == NULL && (todo > 1 || (todo == 1 && src->used)))
        return bp__fail(net->err, BP_ERR_STATE,
                        "%s: the training source has no rewind callback: it gives one pass, "
                        "%s",
                        fn, src->used ? "which it gave already" : "not one per epoch");
    BP_CHECK(bp__history_reserve(net, todo < HISTORY_RESERVE ? todo : HISTORY_RESERVE));
    fit_plan p;
    const int val_mapped = val != NULL && !bp__dataset_resident(val);
    BP_CHECK(plan_fit(net, &p, n, bs, yw, src == NULL && shuffle,
                      src != NULL || !bp__dataset_resident(train), vchunk, val_mapped, keep_best,
                      scap));
    f->history_len = 0;
    if (start == 0) bp__fit_reset_counters(f);
    if (start == 0 || f->plateau_lr <= 0.0) f->plateau_lr = base;
    const int mon_key = val != NULL ? BP_METRIC_VAL_LOSS : BP_METRIC_LOSS;
    int have_best = 0;
    double call_best = HUGE_VAL;

    for (size_t e = start; e < epochs; e++) {
        const double t0 = now_seconds();
        const double lr = schedule_rate(f, base, e, epochs);
        s = bp__optimizer_set_rate(opt, lr);
        if (s != BP_OK) {
            s = refail(net, s, fn, "learning rate");
            break;
        }
        double m[BP_METRIC_COUNT];
        s = train_epoch(net, opt, loss, train, src, &p, bs, e, m);
        if (s != BP_OK) break;
        for (int k = BP_METRIC_VAL_LOSS; k <= BP_METRIC_VAL_RMSE; k++)
            m[k] = (double)NAN;
        if (val != NULL) {
            float *vx = NULL, *vy = NULL;
            if (val_mapped) {
                vx = p.vout + vchunk * out_width(net);
                vy = vx + vchunk * val->in;
            }
            s = eval_set(net, loss, val, p.vout, vchunk, vx, vy, m + BP_METRIC_VAL_LOSS, 0);
            if (s != BP_OK) {
                s = refail(net, s, fn, "validation");
                break;
            }
        }
        m[BP_METRIC_LEARNING_RATE] = lr;
        m[BP_METRIC_SECONDS] = now_seconds() - t0;

        if (f->history_len == f->history_cap) {
            s = bp__history_reserve(net, f->history_cap * 2);
            if (s != BP_OK) break;
        }
        double *row = f->history + f->history_len++ * FIT_ROW;
        row[0] = (double)e;
        memcpy(row + 1, m, sizeof m);

        const int early = update_counters(net, e, m[mon_key], &p, &have_best, &call_best);
        f->next_epoch = e + 1;
        /* The optimizer holds the base rate while the callback runs, so that a checkpoint
         * saved there resumes exactly (the next epoch sets its scheduled rate again). */
        (void)bp__optimizer_set_rate(opt, base);
        int asked = 0;
        if (f->callback != NULL)
            asked = f->callback(f->callback_user, e, m, BP_METRIC_COUNT) != 0;
        else if (f->callback_v2 != NULL)
            asked = f->callback_v2(f->callback_user, net, e, m, BP_METRIC_COUNT) != 0;
        if (early) {
            if (have_best && !keep_all && FIT_SET(f, BP_FIT_RESTORE_BEST) != 0.0) {
                memcpy(net->params, p.best, net->nparams * sizeof(float));
                bp__net_params_changed(net);
            }
            break;
        }
        if (asked) break;
    }
    /* BP_FIT_KEEP_BEST: the best epoch's weights, however training ended (not on errors,
     * which leave the weights as they were before the failing step). */
    if (s == BP_OK && keep_all && have_best) {
        memcpy(net->params, p.best, net->nparams * sizeof(float));
        bp__net_params_changed(net);
    }
    /* The base rate goes back (within bounds: it came from the optimizer). */
    (void)bp__optimizer_set_rate(opt, base);
    bp__free_aligned(&net->alloc, p.block);
    return s;
}

bp_status bp_net_fit(bp_net *net, bp_optimizer *opt, int loss, const bp_dataset *train,
                     const bp_dataset *val)
{
    return fit("bp_net_fit", 0, net, opt, loss, train, NULL, val);
}

bp_status bp_net_fit_source(bp_net *net, bp_optimizer *opt, int loss, bp_source *train,
                            const bp_dataset *val)
{
    return fit("bp_net_fit_source", 1, net, opt, loss, NULL, train, val);
}
