/* house_prices.c -- regression: predict house prices from census data (census-house).
 *
 *   house_prices [--epochs N] [--seed S] [--data DIR]
 *
 * The census-house set from FANN's examples (Debian package libfann-dev: 11392 training and
 * 11392 test rows, 16 census features of a block -> its median house price). FANN ships the
 * prices already scaled to [0, 1] (the original dollar scale is not in the package), so
 * "the data's units" below are that shipped scale; docs/tutorial.md walks through this
 * program step by step.
 *
 *  1. Load both files; set 10% of the training rows aside (after a seeded shuffle) as the
 *     validation set that early stopping and the plateau schedule watch.
 *  2. Standardise inputs and targets with scalers fitted on the training rows only, applied
 *     unchanged to the validation rows; the test rows stay raw.
 *  3. Train 16-64-32-1 (tanh) on MSE with Adam: batches of 32, the rate halved when the
 *     validation loss stalls for 4 epochs, early stopping after 20 epochs without
 *     improvement (at most --epochs, default 200), restoring the best epoch's weights.
 *  4. Keep both scalers with the net and set BP_NET_APPLY_SCALERS: one bp_net_predict call
 *     then takes the raw test rows and gives prices on the shipped scale (the input scaler
 *     applied, the target scaler inverted); report MSE, RMSE and MAE there, next to a few
 *     true prices. A saved model carries the scalers: after bp_net_load, setting
 *     BP_NET_APPLY_SCALERS is all a program needs to predict in original units.
 *
 * Last line: result: test_mse=0.00xxxx test_rmse=0.0xxx test_mae=0.0xxx epochs=N
 *            train_seconds=S
 * Exits 2 if the data files are not installed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <backprop.h>

#define DEFAULT_DIR "/usr/share/doc/libfann-dev/examples/datasets"

static void check(bp_status s, const bp_net *net, const char *what)
{
    if (s == BP_OK) return;
    fprintf(stderr, "house_prices: %s: %s (%s)\n", what,
            net ? bp_net_last_error(net) : bp_last_error(), bp_status_string(s));
    exit(1);
}

static bp_dataset *load(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, R_OK) != 0) {
        fprintf(stderr,
                "house_prices: %s not found: install the Debian package libfann-dev "
                "(apt-get install libfann-dev)\n",
                path);
        exit(2);
    }
    bp_dataset *ds;
    check(bp_dataset_load_fann(&ds, path), NULL, name);
    return ds;
}

static int on_epoch(void *user, size_t epoch, const double *m, size_t count)
{
    (void)user;
    (void)count;
    /* The net sees standardised prices, so these MSEs are in units of their variance. */
    printf("epoch %3zu: MSE (standardised prices) train %.4f, validation %.4f; rate %.1e\n",
           epoch + 1, m[BP_METRIC_LOSS], m[BP_METRIC_VAL_LOSS], m[BP_METRIC_LEARNING_RATE]);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long epochs = 200, seed = 1;
    const char *dir = DEFAULT_DIR;
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val != NULL && strcmp(opt, "--epochs") == 0)
            epochs = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--seed") == 0)
            seed = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--data") == 0)
            dir = val;
        else {
            fprintf(stderr, "usage: house_prices [--epochs N] [--seed S] [--data DIR]\n");
            return 1;
        }
    }

    /* 1. Data: training rows split 90/10 into train and validation; the test file as is. */
    bp_dataset *all = load(dir, "census-house.train"), *test = load(dir, "census-house.test");
    bp_dataset *train, *val;
    check(bp_dataset_shuffle(all, seed), NULL, "shuffle");
    check(bp_dataset_split(&train, &val, all, 0.9), NULL, "split");
    bp_dataset_free(all);
    const size_t in = bp_dataset_input_size(train);
    printf("census-house: %zu training, %zu validation, %zu test rows; %zu features\n",
           bp_dataset_size(train), bp_dataset_size(val), bp_dataset_size(test), in);

    /* 2. Scalers fitted on the training rows only. */
    float in_off[64], in_scale[64], y_off[1], y_scale[1];
    check(bp_dataset_fit_scaler(train, BP_SCALE_STANDARD, BP_SCALE_INPUTS, in_off, in_scale, 64),
          NULL, "input scaler");
    check(bp_dataset_fit_scaler(train, BP_SCALE_STANDARD, BP_SCALE_TARGETS, y_off, y_scale, 1),
          NULL, "target scaler");
    bp_dataset *sets[2] = {train, val}; /* the test rows stay raw: see step 4 */
    for (int k = 0; k < 2; k++) {
        check(bp_dataset_apply_scaler(sets[k], BP_SCALE_INPUTS, in_off, in_scale, in), NULL,
              "scaling inputs");
        check(bp_dataset_apply_scaler(sets[k], BP_SCALE_TARGETS, y_off, y_scale, 1), NULL,
              "scaling targets");
    }

    /* 3. The network and the training loop. */
    bp_net *net;
    check(bp_net_create(&net, in, seed), NULL, "network");
    check(bp_net_add_dense(net, 64, BP_ACT_TANH), net, "layer 1");
    check(bp_net_add_dense(net, 32, BP_ACT_TANH), net, "layer 2");
    check(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), net, "layer 3");
    bp_optimizer *opt;
    check(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), NULL, "optimizer");
    check(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 1e-3), NULL, "learning rate");
    const struct {
        int key;
        double value;
    } settings[] = {
        {BP_FIT_EPOCHS, (double)epochs},
        {BP_FIT_BATCH_SIZE, 32},
        {BP_FIT_SCHEDULE, BP_SCHEDULE_PLATEAU},
        {BP_FIT_LR_GAMMA, 0.5},
        {BP_FIT_PLATEAU_PATIENCE, 4},
        {BP_FIT_PATIENCE, 20},
        {BP_FIT_RESTORE_BEST, 1},
    };
    for (size_t k = 0; k < sizeof settings / sizeof settings[0]; k++)
        check(bp_net_set(net, settings[k].key, settings[k].value), net, "fit setting");
    check(bp_net_set_epoch_callback(net, on_epoch, NULL), net, "callback");
    check(bp_net_fit(net, opt, BP_LOSS_MSE, train, val), net, "training");
    double train_seconds = 0, s;
    for (size_t e = 0; e < bp_net_history_length(net); e++) {
        check(bp_net_history_get(net, e, BP_METRIC_SECONDS, &s), net, "history");
        train_seconds += s;
    }

    /* 4. Raw test rows in, prices on the shipped scale out: the net applies the scalers it
     *    keeps (v' = (v - offset) * scale on the inputs, v = v' / scale + offset on the
     *    outputs) once BP_NET_APPLY_SCALERS is set. */
    check(bp_net_set_scaler(net, BP_SCALE_INPUTS, in_off, in_scale, in), net, "input scaler");
    check(bp_net_set_scaler(net, BP_SCALE_TARGETS, y_off, y_scale, 1), net, "target scaler");
    check(bp_net_set(net, BP_NET_APPLY_SCALERS, 1), net, "apply scalers");
    const size_t n = bp_dataset_size(test);
    float *pred = malloc(n * sizeof(float)), *truth = malloc(n * sizeof(float));
    if (pred == NULL || truth == NULL) {
        fprintf(stderr, "house_prices: out of memory\n");
        return 1;
    }
    check(bp_net_predict(net, bp_dataset_inputs(test), n, pred, n), net, "predict");
    memcpy(truth, bp_dataset_targets(test), n * sizeof(float));
    double se = 0, ae = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)pred[i] - (double)truth[i];
        se += d * d;
        ae += fabs(d);
    }
    const double mse = se / (double)n, rmse = sqrt(mse), mae = ae / (double)n;

    printf("\n%-6s %12s %12s\n", "row", "true price", "predicted");
    for (size_t i = 0; i < 8; i++)
        printf("%-6zu %12.4f %12.4f\n", i, (double)truth[i], (double)pred[i]);
    printf("\ntest set (%zu rows, prices on the shipped [0, 1] scale): MSE %.6f, RMSE %.4f, "
           "MAE %.4f\n",
           n, mse, rmse, mae);
    printf("result: test_mse=%.6f test_rmse=%.4f test_mae=%.4f epochs=%zu train_seconds=%.1f\n",
           mse, rmse, mae, bp_net_history_length(net), train_seconds);

    free(pred);
    free(truth);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(train);
    bp_dataset_free(val);
    bp_dataset_free(test);
    return 0;
}
