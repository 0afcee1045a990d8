/* history.c -- the history of the last bp_net_fit call (rows recorded by train.c: the
 * absolute epoch number, then the metrics): its queries, best epoch and CSV file; the metric
 * names; bp_argmax. Split from train.c; the fit state (fit.h) is fit_state.c's. */
#include "fileio.h"
#include "util.h"
#include "loss.h"
#include "net.h"
#include "fit.h"

#include <math.h>
#include <string.h>

void bp__history_free(bp_net *net)
{
    bp__free(&net->alloc, net->fit->history);
    net->fit->history = NULL;
    net->fit->history_len = net->fit->history_cap = 0;
}

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

/* ------------------------------------------------------------------------------------------
 * History
 * ----------------------------------------------------------------------------------------*/

/* Make room for @p rows history rows (keeping the recorded ones). */
bp_status bp__history_reserve(bp_net *net, size_t rows)
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
    BP__NET_CHECK(net, "bp_net_history_get");
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

bp_status bp_net_history_best(const bp_net *net, size_t *row)
{
    BP__NET_CHECK(net, "bp_net_history_best");
    if (row == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_history_best: row is NULL");
    const struct bp__fit *f = net->fit;
    if (f->history_len == 0)
        return bp__fail(NULL, BP_ERR_STATE, "bp_net_history_best: the history is empty");
    /* The monitored loss: validation loss when the call had a validation set (never NaN
     * then), otherwise the training loss; the first row with the lowest one. */
    const int key = isnan(f->history[1 + BP_METRIC_VAL_LOSS]) ? BP_METRIC_LOSS : BP_METRIC_VAL_LOSS;
    size_t best = 0;
    for (size_t i = 1; i < f->history_len; i++)
        if (f->history[i * FIT_ROW + 1 + key] < f->history[best * FIT_ROW + 1 + key]) best = i;
    *row = best;
    return BP_OK;
}

bp_status bp_net_history_save_csv(const bp_net *net, const char *path)
{
    BP__NET_CHECK(net, "bp_net_history_save_csv");
    char *err = NULL; /* a const net: bp_last_error() only */
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
