/* co2_forecast.c -- forecast the weekly Mauna Loa CO2 series with an LSTM.
 *
 *   co2_forecast [--epochs E] [--steps W] [--horizon H] [--seed N] [--out FILE]
 *                [--data FILE]
 *
 * Data: the weekly atmospheric CO2 concentration at Mauna Loa, March 1958 to December 2001
 * (2284 weeks, ppm), as shipped by Debian's python3-statsmodels
 * (statsmodels/datasets/co2/co2.csv: "date,co2" rows such as "19580329,316.1"). 59 weeks
 * have no value: they are filled by linear interpolation between their neighbours.
 *
 * Task: from the W past weeks (--steps, default 52) forecast the value H weeks after the
 * last of them (--horizon, default 1). The series trends upwards (about 1.5 ppm a year)
 * out of the range the training years cover, so the net sees each window relative to its
 * last value: input step k is (v[t-W+1+k] - v[t]) / 4 ppm, the target (v[t+H] - v[t]) /
 * 4 ppm, and the forecast is v[t] + 4 ppm * output.
 *
 *  1. Split in time: windows whose target lies in the first 80% of the weeks train the net
 *     (the latest 10% of them are the validation set that early stopping watches); windows
 *     whose target lies in the last 20% are the test set (their inputs may reach back into
 *     the training years, as a real forecast's would).
 *  2. A sequence net of W steps of 1 feature: LSTM of 32 units returning its last step only
 *     (BP_RNN_LAST_STEP), a dense layer of 1 (identity); MSE, Adam 3e-3, batches of 32,
 *     gradient-norm clipping at 1, up to --epochs (default 60) epochs, early stopping after
 *     15 epochs without a better validation loss; the net keeps the weights of the epoch
 *     with the best validation loss (BP_FIT_KEEP_BEST).
 *  3. Test RMSE in ppm next to two baselines: seasonal naive (the value 52 weeks before the
 *     target week: the same season a year earlier) and persistence (the last value seen).
 *
 * With --out FILE it writes "year truth forecast seasonal_naive" rows of the test weeks for
 * docs/figures/co2_forecast.gp (docs/figures/co2_forecast.png).
 *
 * Last line: result: test_rmse=R seasonal_naive_rmse=S persistence_rmse=P epochs=N
 *            train_seconds=T
 * Exits 2 if python3-statsmodels is not installed. docs/sequences.md walks through it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backprop.h>

#define DEFAULT_CSV "/usr/lib/python3/dist-packages/statsmodels/datasets/co2/co2.csv"
#define SCALE       4.0 /* ppm per unit of the net's inputs and outputs */
#define SEASON      52  /* weeks */
#define MAX_WEEKS   100000

static void check(bp_status s, const bp_net *net, const char *what)
{
    if (s == BP_OK) return;
    fprintf(stderr, "co2_forecast: %s: %s (%s)\n", what,
            net ? bp_net_last_error(net) : bp_last_error(), bp_status_string(s));
    exit(1);
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes != 0 ? bytes : 1);
    if (p == NULL) {
        fprintf(stderr, "co2_forecast: out of memory\n");
        exit(1);
    }
    return p;
}

/* Reads the csv: value[i] (NAN where missing) and year[i] (decimal year) for each week. */
static size_t load_series(const char *path, double *value, double *year)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr,
                "co2_forecast: %s not found: install the Debian package python3-statsmodels "
                "(apt-get install python3-statsmodels)\n",
                path);
        exit(2);
    }
    char line[256];
    size_t n = 0, lineno = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (lineno == 1 && strncmp(line, "date,", 5) == 0) continue; /* header */
        unsigned long date;
        char *end;
        date = strtoul(line, &end, 10);
        if (end == line || *end != ',' || date < 10000101UL || date > 99991231UL ||
            n == MAX_WEEKS) {
            fprintf(stderr, "co2_forecast: %s:%zu: not a \"yyyymmdd,value\" row\n", path, lineno);
            exit(1);
        }
        const char *v = end + 1;
        double x = (double)NAN;
        if (*v != '\n' && *v != '\r' && *v != '\0') {
            x = strtod(v, &end);
            if (end == v || !(x > 0 && x < 1e4)) {
                fprintf(stderr, "co2_forecast: %s:%zu: bad value\n", path, lineno);
                exit(1);
            }
        }
        const double y = (double)(date / 10000), m = (double)(date / 100 % 100),
                     d = (double)(date % 100);
        year[n] = y + (m - 1) / 12.0 + (d - 1) / 365.25;
        value[n++] = x;
    }
    fclose(f);
    return n;
}

/* Linear interpolation of the NAN runs (a run at either end takes the nearest value). */
static size_t fill_gaps(double *v, size_t n)
{
    size_t filled = 0, prev = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i])) continue;
        if (prev == (size_t)-1) {
            for (size_t j = 0; j < i; j++)
                v[j] = v[i];
            filled += i;
        } else {
            for (size_t j = prev + 1; j < i; j++)
                v[j] = v[prev] + (v[i] - v[prev]) * (double)(j - prev) / (double)(i - prev);
            filled += i - prev - 1;
        }
        prev = i;
    }
    if (prev == (size_t)-1) return (size_t)-1;
    for (size_t j = prev + 1; j < n; j++)
        v[j] = v[prev];
    return filled + (n - 1 - prev);
}

/* The windows whose last input week t runs over [first, last]: inputs [W x 1] relative to
 * v[t], target (v[t+H] - v[t]) / SCALE. */
static bp_dataset *windows(const double *v, size_t first, size_t last, size_t w, size_t h)
{
    const size_t n = last - first + 1;
    float *x = xmalloc(n * w * sizeof(float)), *y = xmalloc(n * sizeof(float));
    for (size_t r = 0; r < n; r++) {
        const size_t t = first + r;
        for (size_t k = 0; k < w; k++)
            x[r * w + k] = (float)((v[t + 1 - w + k] - v[t]) / SCALE);
        y[r] = (float)((v[t + h] - v[t]) / SCALE);
    }
    bp_dataset *ds;
    check(bp_dataset_create(&ds, x, y, n, w, 1), NULL, "windows");
    free(x);
    free(y);
    return ds;
}

static int on_epoch(void *user, size_t epoch, const double *m, size_t count)
{
    (void)user;
    (void)count;
    /* RMSE of the scaled targets: times SCALE gives ppm. */
    printf("epoch %3zu: RMSE train %.3f ppm, validation %.3f ppm (%.2f s)\n", epoch + 1,
           sqrt(m[BP_METRIC_LOSS]) * SCALE, sqrt(m[BP_METRIC_VAL_LOSS]) * SCALE,
           m[BP_METRIC_SECONDS]);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long epochs = 60, w = 52, h = 1, seed = 1;
    const char *csv = DEFAULT_CSV, *out = NULL;
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val != NULL && strcmp(opt, "--epochs") == 0)
            epochs = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--steps") == 0)
            w = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--horizon") == 0)
            h = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--seed") == 0)
            seed = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--out") == 0)
            out = val;
        else if (val != NULL && strcmp(opt, "--data") == 0)
            csv = val;
        else {
            fprintf(stderr, "usage: co2_forecast [--epochs E] [--steps W] [--horizon H] "
                            "[--seed N] [--out FILE] [--data FILE]\n");
            return 1;
        }
    }
    if (epochs < 1 || w < 1 || w > 1000 || h < 1 || h > SEASON) {
        fprintf(stderr, "co2_forecast: --epochs >= 1, --steps in 1..1000, --horizon in 1..%d\n",
                SEASON);
        return 1;
    }

    /* 1. The series, its gaps filled, and the windows split in time. */
    double *v = xmalloc(MAX_WEEKS * sizeof(double)), *year = xmalloc(MAX_WEEKS * sizeof(double));
    const size_t n = load_series(csv, v, year);
    const size_t filled = fill_gaps(v, n);
    const size_t split = n * 8 / 10; /* weeks [0, split) train, [split, n) test */
    /* Every window needs w weeks of input and, for the baseline, the target's value of a
     * season earlier: t >= max(w - 1, SEASON - h). Training: t + h < split. */
    const size_t t0 = w - 1 > SEASON - h ? w - 1 : SEASON - h;
    if (filled == (size_t)-1 || split < t0 + h + 20 || n - split < 10) {
        fprintf(stderr, "co2_forecast: %s: too few weeks (%zu) for windows of %lu\n", csv, n, w);
        return 1;
    }
    const size_t train_last = split - h - 1, n_train = train_last - t0 + 1;
    const size_t n_val = n_train / 10, fit_last = train_last - n_val;
    bp_dataset *train = windows(v, t0, fit_last, w, h),
               *val = windows(v, fit_last + 1, train_last, w, h),
               *test = windows(v, split - h, n - 1 - h, w, h);
    const size_t n_test = bp_dataset_size(test);
    printf("Mauna Loa CO2: %zu weeks (%.1f to %.1f), %zu gaps interpolated; windows of %lu "
           "weeks, forecast %lu week(s) ahead: %zu training, %zu validation, %zu test "
           "(targets from %.1f)\n",
           n, year[0], year[n - 1], filled, w, h, bp_dataset_size(train), n_val, n_test,
           year[split]);

    /* 2. The model and its training. */
    bp_net *net;
    check(bp_net_create_sequence(&net, w, 1, seed), NULL, "network");
    check(bp_net_add_lstm(net, 32, BP_RNN_LAST_STEP), net, "lstm");
    check(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), net, "dense");
    check(bp_net_set(net, BP_NET_CLIP_NORM, 1.0), net, "clipping");
    bp_optimizer *opt;
    check(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), NULL, "optimizer");
    check(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 3e-3), NULL, "learning rate");
    check(bp_net_set(net, BP_FIT_EPOCHS, (double)epochs), net, "--epochs");
    check(bp_net_set(net, BP_FIT_BATCH_SIZE, 32), net, "batch size");
    check(bp_net_set(net, BP_FIT_PATIENCE, 15), net, "patience");
    check(bp_net_set(net, BP_FIT_KEEP_BEST, 1), net, "keep best");
    check(bp_net_set_epoch_callback(net, on_epoch, NULL), net, "callback");
    check(bp_net_fit(net, opt, BP_LOSS_MSE, train, val), net, "training");
    size_t best;
    check(bp_net_history_best(net, &best), net, "best epoch");
    printf("kept the weights of epoch %zu (the best validation loss)\n", best + 1);
    double train_seconds = 0, s;
    for (size_t e = 0; e < bp_net_history_length(net); e++) {
        check(bp_net_history_get(net, e, BP_METRIC_SECONDS, &s), net, "history");
        train_seconds += s;
    }

    /* 3. Test forecasts in ppm against the truth and the two baselines. */
    float *pred = xmalloc(n_test * sizeof(float));
    check(bp_net_predict(net, bp_dataset_inputs(test), n_test, pred, n_test), net, "predict");
    double se = 0, se_naive = 0, se_persist = 0;
    FILE *dat = out != NULL ? fopen(out, "w") : NULL;
    if (out != NULL && dat == NULL) {
        fprintf(stderr, "co2_forecast: cannot write %s\n", out);
        return 1;
    }
    if (dat != NULL)
        fprintf(dat,
                "# year truth forecast seasonal_naive (ppm; %lu-week windows, %lu week(s) "
                "ahead)\n",
                w, h);
    for (size_t r = 0; r < n_test; r++) {
        const size_t t = split - h + r, target = t + h;
        const double f = v[t] + SCALE * (double)pred[r], naive = v[target - SEASON];
        se += (f - v[target]) * (f - v[target]);
        se_naive += (naive - v[target]) * (naive - v[target]);
        se_persist += (v[t] - v[target]) * (v[t] - v[target]);
        if (dat != NULL) fprintf(dat, "%.4f %.2f %.3f %.2f\n", year[target], v[target], f, naive);
    }
    if (dat != NULL && fclose(dat) != 0) {
        fprintf(stderr, "co2_forecast: cannot write %s\n", out);
        return 1;
    }
    const double rmse = sqrt(se / (double)n_test), rmse_naive = sqrt(se_naive / (double)n_test),
                 rmse_persist = sqrt(se_persist / (double)n_test);
    printf("\n%-10s %8s %9s %9s\n", "week", "truth", "forecast", "naive-52");
    for (size_t r = 0; r < n_test; r += n_test / 8) {
        const size_t target = split + r;
        printf("%-10.2f %8.2f %9.2f %9.2f\n", year[target], v[target],
               v[target - h] + SCALE * (double)pred[r], v[target - SEASON]);
    }
    printf("\ntest RMSE over %zu weeks: LSTM %.3f ppm, seasonal naive %.3f ppm, persistence "
           "%.3f ppm\n",
           n_test, rmse, rmse_naive, rmse_persist);
    if (out != NULL) printf("forecasts written to %s\n", out);
    printf("result: test_rmse=%.4f seasonal_naive_rmse=%.4f persistence_rmse=%.4f epochs=%zu "
           "train_seconds=%.1f\n",
           rmse, rmse_naive, rmse_persist, bp_net_history_length(net), train_seconds);

    free(pred);
    free(v);
    free(year);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(train);
    bp_dataset_free(val);
    bp_dataset_free(test);
    return 0;
}
