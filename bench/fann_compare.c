/* fann_compare.c -- the reference point for docs/examples/house_prices: FANN 2.2's own
 * iRprop- (FANN_TRAIN_RPROP, its default algorithm) on census-house, full batch, with the
 * test MSE computed on census-house.test exactly as house_prices computes it (mean of the
 * squared error over the test rows, on the shipped [0, 1] target scale).
 *
 *   fann_compare [--epochs N] [--hidden H1,H2] [--seed S] [--data DIR]
 *
 * Built only when libfann-dev is installed (pkg-config fann). Prints progress to stderr and,
 * as its last line on stdout, "result: test_mse=... train_mse=... epochs=... seconds=...".
 * Exits 2 when the data files are missing. */
#include <fann.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_DIR "/usr/share/doc/libfann-dev/examples/datasets"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Mean squared error of @p ann on @p data, in double over every output. */
static double mse(struct fann *ann, struct fann_train_data *data)
{
    const unsigned n = fann_length_train_data(data), out = fann_num_output_train_data(data);
    double s = 0.0;
    for (unsigned i = 0; i < n; i++) {
        const fann_type *y = fann_run(ann, data->input[i]);
        for (unsigned j = 0; j < out; j++) {
            const double d = (double)y[j] - (double)data->output[i][j];
            s += d * d;
        }
    }
    return s / ((double)n * (double)out);
}

int main(int argc, char **argv)
{
    unsigned epochs = 500, h1 = 64, h2 = 32, seed = 1;
    const char *dir = DEFAULT_DIR;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v != NULL && strcmp(a, "--epochs") == 0) {
            epochs = (unsigned)strtoul(v, NULL, 10);
        } else if (v != NULL && strcmp(a, "--hidden") == 0) {
            if (sscanf(v, "%u,%u", &h1, &h2) < 1) h1 = 0;
            if (strchr(v, ',') == NULL) h2 = 0;
        } else if (v != NULL && strcmp(a, "--seed") == 0) {
            seed = (unsigned)strtoul(v, NULL, 10);
        } else if (v != NULL && strcmp(a, "--data") == 0) {
            dir = v;
        } else {
            fprintf(stderr, "usage: %s [--epochs N] [--hidden H1[,H2]] [--seed S] [--data DIR]\n",
                    argv[0]);
            return 1;
        }
    }
    if (epochs == 0 || h1 == 0) {
        fprintf(stderr, "fann_compare: --epochs and --hidden must be positive\n");
        return 1;
    }
    char train_path[4096], test_path[4096];
    snprintf(train_path, sizeof train_path, "%s/census-house.train", dir);
    snprintf(test_path, sizeof test_path, "%s/census-house.test", dir);
    FILE *probe = fopen(train_path, "r");
    if (probe == NULL) {
        fprintf(stderr, "fann_compare: %s not found: install libfann-dev\n", train_path);
        return 2;
    }
    fclose(probe);

    struct fann_train_data *train = fann_read_train_from_file(train_path);
    struct fann_train_data *test = fann_read_train_from_file(test_path);
    if (train == NULL || test == NULL) {
        fprintf(stderr, "fann_compare: cannot read the census-house files\n");
        return 1;
    }
    srand(seed); /* FANN draws its initial weights from rand() */
    const unsigned in = fann_num_input_train_data(train), out = fann_num_output_train_data(train);
    struct fann *ann =
        h2 ? fann_create_standard(4, in, h1, h2, out) : fann_create_standard(3, in, h1, out);
    fann_set_training_algorithm(ann, FANN_TRAIN_RPROP); /* FANN's iRprop- (its default) */
    fann_set_activation_function_hidden(ann, FANN_SIGMOID_SYMMETRIC);
    fann_set_activation_function_output(ann, FANN_LINEAR);
    fann_init_weights(ann, train); /* Nguyen-Widrow, as FANN recommends */

    const double t0 = now();
    for (unsigned e = 1; e <= epochs; e++) {
        const float train_mse = fann_train_epoch(ann, train);
        if (e % 100 == 0 || e == epochs)
            fprintf(stderr, "epoch %u: train MSE %.6f\n", e, (double)train_mse);
    }
    const double seconds = now() - t0;
    const double test_mse = mse(ann, test), train_mse = mse(ann, train);
    printf("FANN %s iRprop-: %u-%u%s%.0u-%u, sigmoid-symmetric hidden, linear output, "
           "full batch\n",
           "2.2", in, h1, h2 ? "-" : "", h2, out);
    printf("result: test_mse=%.6f train_mse=%.6f epochs=%u seconds=%.1f\n", test_mse, train_mse,
           epochs, seconds);
    fann_destroy(ann);
    fann_destroy_train(train);
    fann_destroy_train(test);
    return 0;
}
