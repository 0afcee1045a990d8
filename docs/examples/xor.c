/* xor.c -- the smallest complete training program: learn XOR with bp_net_fit.
 *
 *   xor [--epochs N] [--seed S]
 *
 * A 2-8-1 network (tanh hidden layer, one logit out) trained with Adam on binary
 * cross-entropy. The last line printed is machine-readable:
 *   result: accuracy=1.0000 loss=0.0123 epochs=300 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backprop.h>

/* Print the library's message for a failed call and exit. */
static void check(bp_status s, const bp_net *net, const char *what)
{
    if (s == BP_OK) return;
    fprintf(stderr, "xor: %s: %s (%s)\n", what, net ? bp_net_last_error(net) : bp_last_error(),
            bp_status_string(s));
    exit(1);
}

int main(int argc, char **argv)
{
    unsigned long epochs = 300, seed = 42;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && strcmp(argv[i], "--epochs") == 0)
            epochs = strtoul(argv[i + 1], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--seed") == 0)
            seed = strtoul(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: xor [--epochs N] [--seed S]\n");
            return 1;
        }
    }

    /* The four rows of XOR: inputs [4 x 2], targets [4 x 1]. */
    const float x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    const float y[4] = {0, 1, 1, 0};
    bp_dataset *data;
    check(bp_dataset_create(&data, x, y, 4, 2, 1), NULL, "data set");

    bp_net *net;
    check(bp_net_create(&net, 2, seed), NULL, "network");
    check(bp_net_add_dense(net, 8, BP_ACT_TANH), net, "hidden layer");
    check(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), net, "output layer"); /* a logit */

    bp_optimizer *opt;
    check(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), NULL, "optimizer");
    check(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.05), NULL, "learning rate");

    check(bp_net_set(net, BP_FIT_EPOCHS, (double)epochs), net, "--epochs");
    check(bp_net_set(net, BP_FIT_BATCH_SIZE, 4), net, "batch size"); /* the whole set */
    check(bp_net_fit(net, opt, BP_LOSS_BCE_LOGITS, data, NULL), net, "training");

    float logit[4];
    check(bp_net_predict(net, x, 4, logit, 4), net, "predict");
    for (int i = 0; i < 4; i++)
        printf("%g xor %g = %g  (logit %+.3f)\n", (double)x[2 * i], (double)x[2 * i + 1],
               logit[i] > 0 ? 1.0 : 0.0, (double)logit[i]);

    double m[2]; /* BP_METRIC_LOSS, BP_METRIC_ACCURACY */
    check(bp_net_evaluate(net, BP_LOSS_BCE_LOGITS, data, m, 2), net, "evaluate");
    printf("result: accuracy=%.4f loss=%.4f epochs=%zu\n", m[BP_METRIC_ACCURACY], m[BP_METRIC_LOSS],
           bp_net_history_length(net));

    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(data);
    return 0;
}
