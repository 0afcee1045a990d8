/* fashion_mnist.c -- classify Zalando's Fashion-MNIST clothing images with an MLP.
 *
 *   fashion_mnist [--epochs N] [--seed S] [--limit N] [--history FILE] [--data DIR]
 *                 [--mapped FILE]
 *
 * 784-256-128-10 (ReLU, ReLU, softmax), sparse softmax cross-entropy, Adam (rate 1e-3,
 * cosine-annealed to 0 over the run), batches of 64, on the 60000 training images of the
 * Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist). --limit N
 * trains on the first N training images only (quick checks). The 10000 test images are the
 * validation set of bp_net_fit (reported each epoch; nothing is tuned on them: the schedule
 * does not look at them and there is no early stopping).
 *
 * Prints one line per epoch (on a terminal: one progress line redrawn in place), the test
 * accuracy, the 10x10 confusion matrix, writes the per-epoch history as CSV (--history,
 * default fashion_mnist_history.csv; plot it with docs/figures/plot_history.sh), and ends
 * with a machine-readable line (the figures for each seed: docs/performance.md):
 *   result: test_accuracy=... test_loss=... epochs=10 train_seconds=...
 * --mapped FILE trains from a memory-mapped binary data-set file instead of the training
 * images in memory (bp_dataset_open_mapped; docs/performance.md, "Data larger than memory"):
 * when FILE does not exist it is first written from the training images (after --limit) as
 * uint8 codes, 47 MB instead of 188 MB of floats (bp_dataset_save_binary: the converter). The
 * same seed gives the same weights and accuracy as training from memory.
 * Exits 2 if the data set is not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <backprop.h>

#define DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define CLASSES     10

static const char *const class_names[CLASSES] = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",  "Shirt",   "Sneaker",  "Bag",   "Boot"};

static void check(bp_status s, const bp_net *net, const char *what)
{
    if (s == BP_OK) return;
    fprintf(stderr, "fashion_mnist: %s: %s (%s)\n", what,
            net ? bp_net_last_error(net) : bp_last_error(), bp_status_string(s));
    exit(1);
}

/* What the epoch callback needs to print progress. */
typedef struct progress {
    size_t epochs;  /* total */
    size_t samples; /* training rows per epoch */
    int tty;        /* redraw one line in place */
} progress;

static int on_epoch(void *user, size_t epoch, const double *m, size_t count)
{
    const progress *p = user;
    (void)count;
    /* Training rows per second of the epoch (its time includes the test-set pass). */
    const double rate = (double)p->samples / m[BP_METRIC_SECONDS];
    if (p->tty) {
        char bar[21];
        const size_t done = (epoch + 1) * 20 / p->epochs;
        for (size_t i = 0; i < 20; i++)
            bar[i] = i < done ? '#' : '.';
        bar[20] = '\0';
        printf("\r[%s] epoch %zu/%zu  loss %.4f  acc %.4f  val_acc %.4f  %.0f samples/s ", bar,
               epoch + 1, p->epochs, m[BP_METRIC_LOSS], m[BP_METRIC_ACCURACY],
               m[BP_METRIC_VAL_ACCURACY], rate);
        if (epoch + 1 == p->epochs) putchar('\n');
    } else {
        printf("epoch %zu/%zu: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f "
               "lr %.2e %.1f s (%.0f samples/s)\n",
               epoch + 1, p->epochs, m[BP_METRIC_LOSS], m[BP_METRIC_ACCURACY],
               m[BP_METRIC_VAL_LOSS], m[BP_METRIC_VAL_ACCURACY], m[BP_METRIC_LEARNING_RATE],
               m[BP_METRIC_SECONDS], rate);
    }
    fflush(stdout);
    return 0; /* keep going */
}

/* Load one IDX pair of the data set (class indices as targets); exit 2 if it is missing. */
static bp_dataset *load(const char *dir, const char *prefix)
{
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    if (access(images, R_OK) != 0 || access(labels, R_OK) != 0) {
        fprintf(stderr,
                "fashion_mnist: %s not found: install the Debian package "
                "dataset-fashion-mnist (apt-get install dataset-fashion-mnist)\n",
                images);
        exit(2);
    }
    bp_dataset *ds;
    check(bp_dataset_load_idx(&ds, images, labels, 0), NULL, "loading the images");
    return ds;
}

int main(int argc, char **argv)
{
    unsigned long epochs = 10, seed = 1, limit = 0;
    const char *history = "fashion_mnist_history.csv", *dir = DEFAULT_DIR, *mapped = NULL;
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val != NULL && strcmp(opt, "--epochs") == 0)
            epochs = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--seed") == 0)
            seed = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--limit") == 0)
            limit = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--history") == 0)
            history = val;
        else if (val != NULL && strcmp(opt, "--data") == 0)
            dir = val;
        else if (val != NULL && strcmp(opt, "--mapped") == 0)
            mapped = val;
        else {
            fprintf(stderr, "usage: fashion_mnist [--epochs N] [--seed S] [--limit N] "
                            "[--history FILE] [--data DIR] [--mapped FILE]\n");
            return 1;
        }
    }

    bp_dataset *test = load(dir, "t10k"), *train = NULL;
    if (mapped != NULL && access(mapped, F_OK) != 0) { /* pack the training images first */
        bp_dataset *images = load(dir, "train");
        if (limit > 0 && limit < bp_dataset_size(images)) {
            check(bp_dataset_subset(&train, images, 0, limit), NULL, "--limit");
            bp_dataset_free(images);
            images = train;
        }
        check(bp_dataset_save_binary(images, mapped, BP_DATA_UINT8), NULL, "--mapped: packing");
        printf("packed %zu training images into %s (uint8)\n", bp_dataset_size(images), mapped);
        bp_dataset_free(images);
    }
    if (mapped != NULL)
        check(bp_dataset_open_mapped(&train, mapped), NULL, "--mapped");
    else
        train = load(dir, "train");
    if (limit > 0 && limit < bp_dataset_size(train)) {
        bp_dataset *head;
        check(bp_dataset_subset(&head, train, 0, limit), NULL, "--limit");
        bp_dataset_free(train);
        train = head;
    }
    printf("Fashion-MNIST: %zu training%s and %zu test images of %zu pixels\n",
           bp_dataset_size(train), mapped != NULL ? " (mapped)" : "", bp_dataset_size(test),
           bp_dataset_input_size(train));

    bp_net *net;
    check(bp_net_create(&net, 784, seed), NULL, "network");
    check(bp_net_add_dense(net, 256, BP_ACT_RELU), net, "layer 1");
    check(bp_net_add_dense(net, 128, BP_ACT_RELU), net, "layer 2");
    check(bp_net_add_dense(net, CLASSES, BP_ACT_SOFTMAX), net, "layer 3");

    bp_optimizer *opt;
    check(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), NULL, "optimizer");
    check(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 1e-3), NULL, "learning rate");

    check(bp_net_set(net, BP_FIT_EPOCHS, (double)epochs), net, "--epochs");
    check(bp_net_set(net, BP_FIT_BATCH_SIZE, 64), net, "batch size");
    check(bp_net_set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_COSINE), net, "schedule");
    progress p = {epochs, bp_dataset_size(train), isatty(STDOUT_FILENO)};
    check(bp_net_set_epoch_callback(net, on_epoch, &p), net, "callback");
    check(bp_net_fit(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, train, test), net, "training");
    check(bp_net_history_save_csv(net, history), net, "saving the history");
    double train_seconds = 0;
    for (size_t e = 0; e < bp_net_history_length(net); e++) {
        double s;
        check(bp_net_history_get(net, e, BP_METRIC_SECONDS, &s), net, "history");
        train_seconds += s;
    }

    /* Test accuracy, and the confusion matrix from the predicted classes. */
    double m[2];
    check(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, test, m, 2), net, "evaluate");
    const size_t n = bp_dataset_size(test);
    float *probs = malloc(n * CLASSES * sizeof(float));
    size_t *pred = malloc(n * sizeof(size_t));
    if (probs == NULL || pred == NULL) {
        fprintf(stderr, "fashion_mnist: out of memory\n");
        return 1;
    }
    check(bp_net_predict(net, bp_dataset_inputs(test), n, probs, n * CLASSES), net, "predict");
    check(bp_argmax(probs, n, CLASSES, pred, n), NULL, "argmax");
    unsigned confusion[CLASSES][CLASSES] = {{0}};
    const float *label = bp_dataset_targets(test);
    for (size_t i = 0; i < n; i++)
        confusion[(size_t)label[i]][pred[i]]++;

    printf("\nconfusion matrix (rows: true class, columns: predicted class)\n%9s", "");
    for (int j = 0; j < CLASSES; j++)
        printf(" %8.8s", class_names[j]);
    putchar('\n');
    for (int i = 0; i < CLASSES; i++) {
        printf("%-9s", class_names[i]);
        for (int j = 0; j < CLASSES; j++)
            printf(" %8u", confusion[i][j]);
        putchar('\n');
    }
    printf("\nhistory written to %s\n", history);
    printf("test accuracy %.4f, test loss %.4f\n", m[BP_METRIC_ACCURACY], m[BP_METRIC_LOSS]);
    printf("result: test_accuracy=%.4f test_loss=%.4f epochs=%zu train_seconds=%.1f\n",
           m[BP_METRIC_ACCURACY], m[BP_METRIC_LOSS], bp_net_history_length(net), train_seconds);

    free(probs);
    free(pred);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(train);
    bp_dataset_free(test);
    return 0;
}
