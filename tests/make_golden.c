/* make_golden.c -- writes tests/data/golden_model.bpm and golden_model.txt, the committed
 * model that test_serialize checks every later version still loads and predicts with.
 *
 *     build/tests/make_golden tests/data [tests/fuzz/corpus/model]
 *
 * With a second directory it also writes small seed files for the fuzz_model target: two
 * checkpoints (SGD with momentum, iRprop-) with metadata, and the golden model again. (The
 * committed seeds were written when bp_optimizer_set() still accepted keys that do not apply:
 * seed_checkpoint_8.bpc holds BP_OPT_MOMENTUM = 0.5 for iRprop-; test_serialize loads that
 * copy, tests/data/golden_ckpt_v1_irprop.bpc, to check such files still load.)
 *
 * It also writes golden_cnn.bpm/.txt: a small image network with every layer kind (conv2d,
 * batch norm, activation, max and average pooling, global average pooling, flatten, dense,
 * dropout), trained a few steps so that the running statistics are not the initial ones.
 *
 * And golden_seq.bpm/.txt (format version 2): a sequence network of token ids with the
 * sequence kinds of 0.2 (embedding, layer normalisation) and per-step dense, activation and
 * dropout layers, trained a few steps with a per-step loss.
 *
 * Run it again only when the format version changes on purpose (and keep the old file as
 * golden_model_v<N>.bpm with its own test). The .txt holds "n in out", then n x in inputs
 * and the n x out outputs this version predicted, as C99 hex floats (exact). */
#include <stdio.h>
#include <stdlib.h>

#include "backprop.h"

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if ((expr) != BP_OK) {                                                                     \
            fprintf(stderr, "%s: %s\n", #expr, bp_last_error());                                   \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Inputs and outputs as C99 hex floats: "n in out", then the rows. */
static int write_io(const char *path, const float *x, const float *out, int n, int in, int nout)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) return 1;
    fprintf(f, "%d %d %d\n", n, in, nout);
    for (int i = 0; i < n * in; i++)
        fprintf(f, "%a%c", (double)x[i], (i + 1) % in ? ' ' : '\n');
    for (int i = 0; i < n * nout; i++)
        fprintf(f, "%a%c", (double)out[i], (i + 1) % nout ? ' ' : '\n');
    return fclose(f) != 0;
}

static int write_cnn(const char *dir)
{
    enum { N = 4, IN = 36, OUT = 3, TRAIN = 12 };
    float x[TRAIN * IN], y[TRAIN];
    for (int i = 0; i < TRAIN * IN; i++)
        x[i] = (float)((i * 13 + 5) % 17) / 8.0f - 1.0f;
    for (int i = 0; i < TRAIN; i++)
        y[i] = (float)(i % OUT);
    bp_net *net;
    bp_optimizer *opt;
    CHECK(bp_net_create_image(&net, 1, 6, 6, 20241129));
    CHECK(bp_net_add_conv2d(net, 2, 3, 3, 1, 1, BP_ACT_IDENTITY)); /* [2 x 6 x 6] */
    CHECK(bp_net_add_batchnorm(net));
    CHECK(bp_net_add_activation(net, BP_ACT_RELU));
    CHECK(bp_net_add_maxpool2d(net, 2, 2));                          /* [2 x 3 x 3] */
    CHECK(bp_net_add_conv2d(net, 3, 2, 2, 1, 0, BP_ACT_LEAKY_RELU)); /* [3 x 2 x 2] */
    CHECK(bp_net_add_avgpool2d(net, 2, 1));                          /* [3 x 1 x 1] */
    CHECK(bp_net_add_global_avgpool(net));
    CHECK(bp_net_add_flatten(net));
    CHECK(bp_net_add_dense(net, 4, BP_ACT_ELU));
    CHECK(bp_net_add_dropout(net, 0.2));
    CHECK(bp_net_add_dense(net, OUT, BP_ACT_SOFTMAX));
    CHECK(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_BN_MOMENTUM, 0.5));
    CHECK(bp_layer_set(bp_net_layer(net, 4), BP_LAYER_LEAKY_SLOPE, 0.1));
    CHECK(bp_layer_set(bp_net_layer(net, 8), BP_LAYER_L2, 0.001));
    CHECK(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM));
    CHECK(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.05));
    for (int s = 0; s < 20; s++)
        CHECK(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, TRAIN, 0));
    char path[4096];
    snprintf(path, sizeof path, "%s/golden_cnn.bpm", dir);
    CHECK(bp_net_save(net, path));
    float out[N * OUT];
    CHECK(bp_net_predict(net, x, N, out, N * OUT));
    snprintf(path, sizeof path, "%s/golden_cnn.txt", dir);
    const int rc = write_io(path, x, out, N, IN, OUT);
    bp_optimizer_free(opt);
    bp_net_free(net);
    return rc;
}

/* Sequences (#14): [T x 1] token ids -> embedding -> layernorm -> dense per step -> dropout
 * -> activation -> dense softmax per step. */
static int write_seq(const char *dir)
{
    enum { N = 3, T = 4, V = 6, C = 3, TRAIN = 8 };
    float x[TRAIN * T], y[TRAIN * T];
    for (int i = 0; i < TRAIN * T; i++) {
        x[i] = (float)((i * 5 + 2) % V);
        y[i] = (float)((i * 5 + 3) % C);
    }
    bp_net *net;
    bp_optimizer *opt;
    CHECK(bp_net_create_sequence(&net, T, 1, 20261205));
    CHECK(bp_net_add_embedding(net, V, 3));           /* [4 x 3] */
    CHECK(bp_net_add_layernorm(net));                 /* per step */
    CHECK(bp_net_add_dense(net, 5, BP_ACT_IDENTITY)); /* [4 x 5] */
    CHECK(bp_net_add_dropout(net, 0.1));
    CHECK(bp_net_add_activation(net, BP_ACT_TANH));
    CHECK(bp_net_add_dense(net, C, BP_ACT_SOFTMAX)); /* [4 x 3] */
    CHECK(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_L2, 0.001));
    CHECK(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_LN_EPSILON, 1e-3));
    CHECK(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM));
    CHECK(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.05));
    for (int s = 0; s < 10; s++)
        CHECK(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, TRAIN, 0));
    char path[4096];
    snprintf(path, sizeof path, "%s/golden_seq.bpm", dir);
    CHECK(bp_net_save(net, path));
    float out[N * T * C];
    CHECK(bp_net_predict(net, x, N, out, N * T * C));
    snprintf(path, sizeof path, "%s/golden_seq.txt", dir);
    const int rc = write_io(path, x, out, N, T, T * C);
    bp_optimizer_free(opt);
    bp_net_free(net);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s <data directory> [<fuzz corpus directory>]\n", argv[0]);
        return 2;
    }
    enum { N = 6, IN = 3, OUT = 2, TRAIN = 16 };
    float x[TRAIN * IN], y[TRAIN * OUT];
    for (int i = 0; i < TRAIN; i++) {
        for (int k = 0; k < IN; k++)
            x[i * IN + k] = (float)((i * 7 + k * 3) % 11) / 5.0f - 1.0f;
        y[i * OUT] = x[i * IN] * 0.5f - x[i * IN + 2];
        y[i * OUT + 1] = x[i * IN + 1] * x[i * IN + 1];
    }
    bp_net *net;
    bp_optimizer *opt;
    CHECK(bp_net_create(&net, IN, 20240601));
    CHECK(bp_net_add_dense(net, 5, BP_ACT_TANH));
    CHECK(bp_net_add_dense(net, 4, BP_ACT_LEAKY_RELU));
    CHECK(bp_net_add_dense(net, OUT, BP_ACT_IDENTITY));
    CHECK(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_LEAKY_SLOPE, 0.2));
    CHECK(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM));
    CHECK(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.02));
    for (int s = 0; s < 50; s++)
        CHECK(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, TRAIN, 0));
    const float off[IN] = {0.0f, -0.5f, 0.25f}, sc[IN] = {1.0f, 2.0f, 0.5f};
    CHECK(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, IN));
    CHECK(bp_net_set_meta(net, "written_by", "tests/make_golden.c"));
    CHECK(bp_net_set_meta(net, "purpose", "format version 1 compatibility"));

    char path[4096];
    snprintf(path, sizeof path, "%s/golden_model.bpm", argv[1]);
    CHECK(bp_net_save(net, path));
    float out[N * OUT];
    CHECK(bp_net_predict(net, x, N, out, N * OUT));
    snprintf(path, sizeof path, "%s/golden_model.txt", argv[1]);
    if (write_io(path, x, out, N, IN, OUT) != 0) return 1;
    if (argc == 3) {
        snprintf(path, sizeof path, "%s/golden_model.bpm", argv[2]);
        CHECK(bp_net_save(net, path));
        const int kinds[2] = {BP_OPTIMIZER_SGD, BP_OPTIMIZER_IRPROP_MINUS};
        for (int i = 0; i < 2; i++) {
            bp_net *small;
            bp_optimizer *o;
            CHECK(bp_net_create(&small, IN, 7));
            CHECK(bp_net_add_dense(small, 2, BP_ACT_RELU));
            CHECK(bp_net_add_dense(small, OUT, BP_ACT_SOFTMAX));
            CHECK(bp_optimizer_create(&o, kinds[i]));
            if (kinds[i] == BP_OPTIMIZER_SGD) CHECK(bp_optimizer_set(o, BP_OPT_MOMENTUM, 0.5));
            for (int s = 0; s < 3; s++)
                CHECK(bp_net_train_step(small, o, BP_LOSS_SOFTMAX_CE, x, y, 4, 0));
            CHECK(bp_net_set_meta(small, "k", "v"));
            snprintf(path, sizeof path, "%s/seed_checkpoint_%d.bpc", argv[2], kinds[i]);
            CHECK(bp_checkpoint_save(small, o, path));
            bp_optimizer_free(o);
            bp_net_free(small);
        }
    }
    bp_optimizer_free(opt);
    bp_net_free(net);
    return write_cnn(argv[1]) || write_seq(argv[1]);
}
