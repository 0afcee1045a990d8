/* deep_mlp.c -- vanishing gradients in a deep network, and the cure (docs/deep-networks.md).
 *
 * Two 10-hidden-layer MLPs (64 units each, then a softmax output) trained identically on a
 * Fashion-MNIST subset with SGD (learning rate 0.05, momentum 0.9, batches of 64):
 *
 *   naive: sigmoid layers, weights drawn from N(0, 0.01^2) (BP_INIT_NORMAL): each layer
 *          multiplies the backpropagated gradient by about 0.25 * 0.01 * sqrt(64) = 0.02,
 *          so the first layers receive nothing and the network does not learn;
 *   bn:    dense (He normal init) -> batch norm -> ReLU, ten times: the gradient keeps its
 *          scale through all the layers and the network trains.
 *
 * After every step it reads each dense layer's gradient norm (bp_layer_grad_norm) and
 * prints, per epoch, the loss, the test accuracy and the mean gradient norm of every dense
 * layer. With --out FILE it writes "depth naive bn" rows (mean over all steps) for
 * docs/figures/deep_mlp_grad_norms.gp.
 *
 *   deep_mlp [--epochs N] [--seed S] [--data DIR] [--train N] [--out FILE] [--threads T]
 *
 * Last line: result: naive_test_accuracy=... bn_test_accuracy=... epochs=... seconds=... */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backprop.h>

#include "fashion_mnist.h"

enum { DEPTH = 10, UNITS = 64, BATCH = 64, CLASSES = 10, PIXELS = 784 };

/* One of the two networks; dense[k] is the index of the k-th dense layer. */
typedef struct run {
    const char *name;
    bp_net *net;
    bp_optimizer *opt;
    size_t dense[DEPTH + 1];
    double norm_sum[DEPTH + 1];
    size_t steps;
    double accuracy;
} run;

static bp_status build(run *r, int with_bn, uint64_t seed)
{
    bp_status s = bp_net_create(&r->net, PIXELS, seed);
    for (size_t k = 0; k < DEPTH && s == BP_OK; k++) {
        r->dense[k] = bp_net_layer_count(r->net);
        s = bp_net_add_dense(r->net, UNITS, with_bn ? BP_ACT_IDENTITY : BP_ACT_SIGMOID);
        bp_layer *l = bp_net_layer(r->net, r->dense[k]);
        if (s == BP_OK)
            s = with_bn ? bp_layer_init_weights(l, BP_INIT_HE_NORMAL, 0.0)
                        : bp_layer_init_weights(l, BP_INIT_NORMAL, 0.01);
        if (s == BP_OK && with_bn) s = bp_net_add_batchnorm(r->net);
        if (s == BP_OK && with_bn) s = bp_net_add_activation(r->net, BP_ACT_RELU);
    }
    r->dense[DEPTH] = bp_net_layer_count(r->net);
    if (s == BP_OK) s = bp_net_add_dense(r->net, CLASSES, BP_ACT_SOFTMAX);
    if (s == BP_OK && !with_bn)
        s = bp_layer_init_weights(bp_net_layer(r->net, r->dense[DEPTH]), BP_INIT_NORMAL, 0.01);
    if (s == BP_OK) s = bp_optimizer_create(&r->opt, BP_OPTIMIZER_SGD);
    if (s == BP_OK) s = bp_optimizer_set(r->opt, BP_OPT_LEARNING_RATE, 0.05);
    if (s == BP_OK) s = bp_optimizer_set(r->opt, BP_OPT_MOMENTUM, 0.9);
    if (s != BP_OK) fprintf(stderr, "deep_mlp: %s\n", bp_last_error());
    return s;
}

static double accuracy(bp_net *net, const bp_dataset *ds, float *out)
{
    const size_t n = bp_dataset_size(ds);
    if (bp_net_predict(net, bp_dataset_inputs(ds), n, out, n * CLASSES) != BP_OK) return -1.0;
    const float *y = bp_dataset_targets(ds);
    size_t right = 0;
    for (size_t i = 0; i < n; i++) {
        size_t best = 0;
        for (size_t k = 1; k < CLASSES; k++)
            if (out[i * CLASSES + k] > out[i * CLASSES + best]) best = k;
        right += best == (size_t)y[i];
    }
    return (double)right / (double)n;
}

/* One epoch over @p train; adds each dense layer's gradient norm after every step. */
static int train_epoch(run *r, const bp_dataset *train, double *loss)
{
    const size_t n = bp_dataset_size(train);
    const float *x = bp_dataset_inputs(train), *y = bp_dataset_targets(train);
    double sum = 0.0;
    size_t batches = 0;
    for (size_t at = 0; at + BATCH <= n; at += BATCH) {
        float l;
        if (bp_net_train_step(r->net, r->opt, BP_LOSS_SPARSE_SOFTMAX_CE, x + at * PIXELS, y + at,
                              BATCH, &l) != BP_OK) {
            fprintf(stderr, "deep_mlp: %s: %s\n", r->name, bp_net_last_error(r->net));
            return -1;
        }
        for (size_t k = 0; k <= DEPTH; k++) {
            double g;
            bp_layer_grad_norm(bp_net_layer(r->net, r->dense[k]), &g);
            r->norm_sum[k] += g;
        }
        r->steps++;
        sum += (double)l;
        batches++;
    }
    *loss = sum / (double)batches;
    return 0;
}

int main(int argc, char **argv)
{
    int epochs = 5, threads = 1;
    unsigned long long seed = 1;
    size_t train_n = 20000;
    const char *dir = FASHION_MNIST_DIR, *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        const int more = i + 1 < argc;
        if (strcmp(argv[i], "--epochs") == 0 && more)
            epochs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && more)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--data") == 0 && more)
            dir = argv[++i];
        else if (strcmp(argv[i], "--train") == 0 && more)
            train_n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--out") == 0 && more)
            out_path = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && more)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--epochs N] [--seed S] [--data DIR] [--train N] "
                    "[--out FILE] [--threads T]\n",
                    argv[0]);
            return 2;
        }
    }
    if (epochs < 1) epochs = 1;
    if (threads > 0) bp_set_num_threads(threads);
    bp_dataset *full = NULL, *train = NULL, *test_full = NULL, *test = NULL;
    if (fashion_mnist_load(&full, dir, "train") != BP_OK ||
        fashion_mnist_load(&test_full, dir, "t10k") != BP_OK) {
        fprintf(stderr, "deep_mlp: %s\n", bp_last_error());
        return 1;
    }
    if (train_n < BATCH || train_n > bp_dataset_size(full)) train_n = bp_dataset_size(full);
    if (bp_dataset_subset(&train, full, 0, train_n) != BP_OK ||
        bp_dataset_subset(&test, test_full, 0, 2000) != BP_OK) {
        fprintf(stderr, "deep_mlp: %s\n", bp_last_error());
        return 1;
    }
    bp_dataset_free(full);
    bp_dataset_free(test_full);
    float *out = malloc(2000 * CLASSES * sizeof *out);
    run runs[2] = {{.name = "naive"}, {.name = "bn"}};
    if (out == NULL || build(&runs[0], 0, seed) != BP_OK || build(&runs[1], 1, seed) != BP_OK)
        return 1;
    printf("%d hidden layers of %d units; train %zu, test %zu images; batch %d\n", DEPTH, UNITS,
           bp_dataset_size(train), bp_dataset_size(test), BATCH);
    const double t0 = example_seconds();
    for (int e = 0; e < epochs; e++) {
        bp_dataset_shuffle(train, seed * 100 + (uint64_t)e); /* same order for both runs */
        for (size_t r = 0; r < 2; r++) {
            double loss;
            const size_t steps0 = runs[r].steps;
            double before[DEPTH + 1];
            memcpy(before, runs[r].norm_sum, sizeof before);
            if (train_epoch(&runs[r], train, &loss) != 0) return 1;
            runs[r].accuracy = accuracy(runs[r].net, test, out);
            printf("epoch %d %-5s loss %.4f test accuracy %.4f  grad norms by depth:", e + 1,
                   runs[r].name, loss, runs[r].accuracy);
            for (size_t k = 0; k <= DEPTH; k++)
                printf(" %.1e",
                       (runs[r].norm_sum[k] - before[k]) / (double)(runs[r].steps - steps0));
            printf("\n");
        }
        fflush(stdout);
    }
    if (out_path != NULL) {
        FILE *f = fopen(out_path, "w");
        if (f == NULL) {
            perror(out_path);
            return 1;
        }
        fprintf(f,
                "# depth  naive_mean_grad_norm  bn_mean_grad_norm  (dense layers; %d is the "
                "softmax output)\n",
                DEPTH + 1);
        for (size_t k = 0; k <= DEPTH; k++)
            fprintf(f, "%zu %.6e %.6e\n", k + 1, runs[0].norm_sum[k] / (double)runs[0].steps,
                    runs[1].norm_sum[k] / (double)runs[1].steps);
        fclose(f);
    }
    printf("result: naive_test_accuracy=%.4f bn_test_accuracy=%.4f epochs=%d seconds=%.1f\n",
           runs[0].accuracy, runs[1].accuracy, epochs, example_seconds() - t0);
    for (size_t r = 0; r < 2; r++) {
        bp_optimizer_free(runs[r].opt);
        bp_net_free(runs[r].net);
    }
    bp_dataset_free(train);
    bp_dataset_free(test);
    free(out);
    return 0;
}
