/* test_onnx.c -- ONNX import and export (libbackprop_onnx) through its public API.
 *
 * Models exported by PyTorch (tests/onnx/data/<name>.onnx, written by make_models.py with the
 * outputs PyTorch computed in <name>.ref) must predict the same within 1e-5 relative; an import
 * fine-tunes; every net exported re-imports with identical predictions (and is written to
 * BP_ONNX_OUT for the onnx.checker test); hostile and unsupported inputs give statuses and
 * messages. BP_ONNX_MODELS overrides the model directory (fresh exports from torch). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backprop_onnx.h"

/* Local helpers (this program links libbackprop_onnx and libbackprop, not the static twin
 * the core tests use, so it does not share tests/test_util.c). */
#define bp_add_test(name) cmocka_unit_test(name)
#define assert_status(expr, expected)                                                              \
    do {                                                                                           \
        const int got_ = (int)(expr);                                                              \
        if (got_ != (int)(expected))                                                               \
            print_error("%s = %d: %s | %s\n", #expr, got_, bp_last_error(), bp_onnx_last_error()); \
        assert_int_equal(got_, (int)(expected));                                                   \
    } while (0)
#define assert_close(a, b, rtol, atol)                                                             \
    do {                                                                                           \
        const double a_ = (double)(a), b_ = (double)(b);                                           \
        if (!(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_)))                                          \
            print_error("%s = %.9g, %s = %.9g\n", #a, a_, #b, b_);                                 \
        assert_true(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_));                                    \
    } while (0)

static void bp_test_fill_uniform(float *v, size_t count, float lo, float hi, uint64_t *state)
{
    for (size_t k = 0; k < count; k++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        const double u = (double)(*state >> 11) / 9007199254740992.0;
        v[k] = lo + (float)u * (hi - lo);
    }
}

static const char *models_dir(void)
{
    const char *d = getenv("BP_ONNX_MODELS");
    return d != NULL && d[0] != '\0' ? d : BP_ONNX_DATA_DIR;
}

typedef struct ref {
    size_t n, in, out;
    float *x, *y;
} ref;

static int read_ref(ref *r, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.ref", models_dir(), name);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    int ok = fscanf(f, "%zu %zu %zu", &r->n, &r->in, &r->out) == 3;
    r->x = ok ? malloc(r->n * r->in * sizeof(float)) : NULL;
    r->y = ok ? malloc(r->n * r->out * sizeof(float)) : NULL;
    for (size_t k = 0; ok && k < r->n * r->in; k++)
        ok = fscanf(f, "%f", &r->x[k]) == 1;
    for (size_t k = 0; ok && k < r->n * r->out; k++)
        ok = fscanf(f, "%f", &r->y[k]) == 1;
    fclose(f);
    return ok ? 0 : -1;
}

static void free_ref(ref *r)
{
    free(r->x);
    free(r->y);
}

static bp_net *import_model(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.onnx", models_dir(), name);
    bp_net *net = NULL;
    const bp_status s = bp_onnx_import(&net, path, 7);
    if (s != BP_OK) print_error("%s: %s\n", path, bp_onnx_last_error());
    assert_int_equal(s, BP_OK);
    return net;
}

/* Export @p net, re-import it, compare predictions on @p x bit for bit; write the export to
 * $BP_ONNX_OUT/<name>.onnx when set. */
static void round_trip(bp_net *net, const char *name, const float *x, size_t n)
{
    size_t size = 0;
    assert_int_equal(bp_onnx_export_buffer(net, NULL, 0, &size, BP_ONNX_DYNAMIC_BATCH),
                     BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *buf = malloc(size);
    size_t got = 0;
    assert_status(bp_onnx_export_buffer(net, buf, size, &got, BP_ONNX_DYNAMIC_BATCH), BP_OK);
    assert_int_equal(got, size);
    const char *dir = getenv("BP_ONNX_OUT");
    if (dir != NULL && dir[0] != '\0') {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
        if (bp_onnx_export(net, path, BP_ONNX_DYNAMIC_BATCH) != BP_OK)
            print_error("%s\n", bp_onnx_last_error());
        snprintf(path, sizeof path, "%s/%s_fixed.onnx", dir, name);
        assert_int_equal(bp_onnx_export(net, path, 0), BP_OK);
    }
    bp_net *again = NULL;
    const bp_status s = bp_onnx_import_buffer(&again, buf, size, 3);
    if (s != BP_OK) print_error("re-import of %s: %s\n", name, bp_onnx_last_error());
    assert_int_equal(s, BP_OK);
    const size_t out = bp_net_output_size(net);
    assert_int_equal(bp_net_output_size(again), out);
    assert_int_equal(bp_net_param_count(again), bp_net_param_count(net));
    float *y1 = malloc(n * out * sizeof(float)), *y2 = malloc(n * out * sizeof(float));
    assert_status(bp_net_predict(net, x, n, y1, n * out), BP_OK);
    assert_status(bp_net_predict(again, x, n, y2, n * out), BP_OK);
    for (size_t k = 0; k < n * out; k++)
        assert_close(y2[k], y1[k], 1e-6, 1e-7);
    free(y1);
    free(y2);
    free(buf);
    bp_net_free(again);
}

static void check_model(const char *name)
{
    ref r;
    assert_int_equal(read_ref(&r, name), 0);
    bp_net *net = import_model(name);
    assert_int_equal(bp_net_input_size(net), r.in);
    assert_int_equal(bp_net_output_size(net), r.out);
    float *y = malloc(r.n * r.out * sizeof(float));
    assert_status(bp_net_predict(net, r.x, r.n, y, r.n * r.out), BP_OK);
    for (size_t k = 0; k < r.n * r.out; k++)
        assert_close(y[k], r.y[k], 1e-5, 1e-6);
    round_trip(net, name, r.x, r.n);
    free(y);
    free_ref(&r);
    bp_net_free(net);
}

static void mlp_matches_pytorch(void **state)
{
    (void)state;
    check_model("mlp");
}

static void activations_and_matmul_match_pytorch(void **state)
{
    (void)state;
    check_model("acts");
}

static void cnn_with_bn_and_pooling_matches_pytorch(void **state)
{
    (void)state;
    check_model("cnn");
}

static void cnn_with_global_pooling_matches_pytorch(void **state)
{
    (void)state;
    check_model("cnn_gap");
}

/* Recurrent models exported by PyTorch 1.13 (make_models.py): the zero initial state folded
 * away, the layout nodes around the RNN/LSTM/GRU node understood, gates reordered. */
static void lstm_last_step_matches_pytorch(void **state)
{
    (void)state;
    check_model("lstm");
}

static void stacked_lstm_matches_pytorch(void **state)
{
    (void)state;
    check_model("lstm2");
}

static void bidirectional_gru_sequence_matches_pytorch(void **state)
{
    (void)state;
    check_model("gru_bi_seq");
}

static void relu_rnn_final_state_matches_pytorch(void **state)
{
    (void)state;
    check_model("rnn_relu_hn");
}

static void embedding_and_lstm_match_pytorch(void **state)
{
    (void)state;
    check_model("embed_lstm");
}

/* The imported LSTM model trains: a few Adam steps on fixed targets lower the loss. */
static void imported_lstm_fine_tunes(void **state)
{
    (void)state;
    ref r;
    assert_int_equal(read_ref(&r, "lstm"), 0);
    bp_net *net = import_model("lstm");
    bp_optimizer *opt = NULL;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.02), BP_OK);
    float *t = malloc(r.n * r.out * sizeof(float));
    uint64_t seed = 9;
    bp_test_fill_uniform(t, r.n * r.out, -1.0f, 1.0f, &seed);
    float first = 0.0f, loss = 0.0f;
    for (int step = 0; step < 40; step++) {
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, r.x, t, r.n, &loss), BP_OK);
        if (step == 0) first = loss;
    }
    assert_true(loss < 0.5f * first);
    free(t);
    free_ref(&r);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* Sequence nets built here: every recurrent kind, both directions, whole sequences and last
 * steps, per-step dense and softmax, an embedding, a flatten of a sequence. */
static void native_sequence_nets_round_trip(void **state)
{
    (void)state;
    float x[3 * 5 * 4];
    uint64_t seed = 17;
    bp_test_fill_uniform(x, sizeof x / sizeof x[0], -1.0f, 1.0f, &seed);
    bp_net *net = NULL;
    assert_status(bp_net_create_sequence(&net, 5, 4, 1), BP_OK);
    assert_status(bp_net_add_lstm(net, 6, BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_net_add_dense(net, 5, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_gru(net, 4, 0), BP_OK);
    assert_status(bp_net_add_rnn(net, 3, BP_ACT_RELU, BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    round_trip(net, "native_seq", x, 3);
    bp_net_free(net);

    assert_status(bp_net_create_sequence(&net, 5, 4, 2), BP_OK);
    assert_status(bp_net_add_gru(net, 7, BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_net_add_lstm(net, 5, BP_RNN_LAST_STEP | BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    round_trip(net, "native_seq_last", x, 3);
    bp_net_free(net);

    assert_status(bp_net_create_sequence(&net, 5, 4, 3), BP_OK);
    assert_status(bp_net_add_rnn(net, 4, BP_ACT_TANH, BP_RNN_LAST_STEP), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_SIGMOID), BP_OK);
    round_trip(net, "native_rnn_last", x, 3);
    bp_net_free(net);

    float ids[3 * 5];
    for (size_t k = 0; k < 15; k++)
        ids[k] = (float)((k * 7 + 3) % 11);
    assert_status(bp_net_create_sequence(&net, 5, 1, 4), BP_OK);
    assert_status(bp_net_add_embedding(net, 11, 4), BP_OK);
    assert_status(bp_net_add_lstm(net, 3, 0), BP_OK);
    assert_status(bp_net_add_flatten(net), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    round_trip(net, "native_embedding", ids, 3);
    bp_net_free(net);
}

/* The imported CNN is an ordinary net: a few Adam steps on fixed targets lower the loss. */
static void imported_cnn_fine_tunes(void **state)
{
    (void)state;
    ref r;
    assert_int_equal(read_ref(&r, "cnn"), 0);
    bp_net *net = import_model("cnn");
    bp_optimizer *opt = NULL;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.01), BP_OK);
    float *t = malloc(r.n * r.out * sizeof(float));
    uint64_t seed = 5;
    bp_test_fill_uniform(t, r.n * r.out, -1.0f, 1.0f, &seed);
    float first = 0.0f, loss = 0.0f;
    for (int step = 0; step < 30; step++) {
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, r.x, t, r.n, &loss), BP_OK);
        if (step == 0) first = loss;
    }
    assert_true(loss < 0.5f * first);
    free(t);
    free_ref(&r);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* Nets built here, covering every layer kind and activation with an ONNX form. */
static void native_nets_round_trip(void **state)
{
    (void)state;
    float x[4 * 3 * 8 * 8];
    uint64_t seed = 11;
    bp_test_fill_uniform(x, sizeof x / sizeof x[0], -1.0f, 1.0f, &seed);
    bp_net *net = NULL;
    assert_status(bp_net_create(&net, 12, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 10, BP_ACT_GELU), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_dropout(net, 0.3), BP_OK);
    assert_status(bp_net_add_dense(net, 9, BP_ACT_SILU), BP_OK);
    assert_status(bp_net_add_dense(net, 8, BP_ACT_LEAKY_RELU), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 4), BP_LAYER_LEAKY_SLOPE, 0.125), BP_OK);
    assert_status(bp_net_add_dense(net, 8, BP_ACT_ELU), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 5), BP_LAYER_ELU_ALPHA, 0.5), BP_OK);
    assert_status(bp_net_add_dense(net, 7, BP_ACT_SOFTPLUS), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 6, BP_ACT_SIGMOID), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_SOFTMAX), BP_OK);
    /* non-default running statistics */
    float xs[32 * 12];
    bp_test_fill_uniform(xs, 32 * 12, -2.0f, 3.0f, &seed);
    const float *y;
    assert_status(bp_net_forward(net, xs, 32, &y), BP_OK);
    round_trip(net, "native_mlp", xs, 8);
    bp_net_free(net);

    assert_status(bp_net_create_image(&net, 3, 8, 8, 2), BP_OK);
    assert_status(bp_net_add_conv2d(net, 4, 3, 3, 1, 1, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_ELU), BP_OK);
    assert_status(bp_net_add_maxpool2d(net, 2, 2), BP_OK);
    assert_status(bp_net_add_conv2d(net, 5, 3, 2, 1, 0, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_avgpool2d(net, 2, 1), BP_OK);
    assert_status(bp_net_add_flatten(net), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_forward(net, x, 4, &y), BP_OK);
    round_trip(net, "native_cnn", x, 4);
    bp_net_free(net);

    assert_status(bp_net_create_image(&net, 3, 8, 8, 3), BP_OK);
    assert_status(bp_net_add_conv2d(net, 6, 5, 5, 2, 2, BP_ACT_GELU), BP_OK);
    assert_status(bp_net_add_global_avgpool(net), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_SOFTMAX), BP_OK);
    round_trip(net, "native_gap", x, 4);
    bp_net_free(net);
}

/* Export with BP_ONNX_SCALERS, re-import: the same scalers, the same raw predictions; without
 * the flag no scaler is written. */
static void scaler_round_trip(bp_net *net, const char *name, const float *x, size_t n)
{
    size_t size = 0;
    assert_int_equal(
        bp_onnx_export_buffer(net, NULL, 0, &size, BP_ONNX_SCALERS | BP_ONNX_DYNAMIC_BATCH),
        BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *buf = malloc(size);
    assert_status(
        bp_onnx_export_buffer(net, buf, size, &size, BP_ONNX_SCALERS | BP_ONNX_DYNAMIC_BATCH),
        BP_OK);
    const char *dir = getenv("BP_ONNX_OUT");
    if (dir != NULL && dir[0] != '\0') {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
        assert_status(bp_onnx_export(net, path, BP_ONNX_SCALERS), BP_OK);
    }
    bp_net *again = NULL;
    assert_status(bp_onnx_import_buffer(&again, buf, size, 3), BP_OK);
    static const int parts[2] = {BP_SCALE_INPUTS, BP_SCALE_TARGETS};
    for (int p = 0; p < 2; p++) {
        float o1[256], s1[256], o2[256], s2[256];
        size_t w1 = 0, w2 = 0;
        assert_status(bp_net_get_scaler(net, parts[p], o1, s1, 256, &w1), BP_OK);
        assert_status(bp_net_get_scaler(again, parts[p], o2, s2, 256, &w2), BP_OK);
        assert_int_equal(w2, w1);
        assert_true(w1 > 0);
        assert_memory_equal(o2, o1, w1 * sizeof(float));
        assert_memory_equal(s2, s1, w1 * sizeof(float));
    }
    const size_t out = bp_net_output_size(net);
    float *y1 = malloc(n * out * sizeof(float)), *y2 = malloc(n * out * sizeof(float));
    assert_status(bp_net_set(net, BP_NET_APPLY_SCALERS, 1), BP_OK);
    assert_status(bp_net_set(again, BP_NET_APPLY_SCALERS, 1), BP_OK);
    assert_status(bp_net_predict(net, x, n, y1, n * out), BP_OK);
    assert_status(bp_net_predict(again, x, n, y2, n * out), BP_OK);
    for (size_t k = 0; k < n * out; k++)
        assert_close(y2[k], y1[k], 1e-6, 1e-6);
    bp_net_free(again);
    free(buf);
    /* Without the flag: the layers only. */
    assert_status(bp_onnx_export_buffer(net, NULL, 0, &size, 0), BP_ERR_BUFFER_TOO_SMALL);
    buf = malloc(size);
    assert_status(bp_onnx_export_buffer(net, buf, size, &size, 0), BP_OK);
    assert_status(bp_onnx_import_buffer(&again, buf, size, 3), BP_OK);
    size_t w = 1;
    assert_status(bp_net_get_scaler(again, BP_SCALE_INPUTS, NULL, NULL, 0, &w), BP_OK);
    assert_int_equal(w, 0);
    assert_status(bp_net_get_scaler(again, BP_SCALE_TARGETS, NULL, NULL, 0, &w), BP_OK);
    assert_int_equal(w, 0);
    bp_net_free(again);
    free(buf);
    free(y1);
    free(y2);
}

/* The scalers kept with a net (as `backprop train` stores them) travel with BP_ONNX_SCALERS:
 * flat rows and image rows (constants of the row's shape [C x H x W]). */
static void scalers_are_exported_and_imported(void **state)
{
    (void)state;
    float x[4 * 2 * 4 * 4], off[32], sc[32];
    uint64_t seed = 21;
    bp_test_fill_uniform(x, sizeof x / sizeof x[0], -5.0f, 9.0f, &seed);
    bp_test_fill_uniform(off, 32, -3.0f, 3.0f, &seed);
    bp_test_fill_uniform(sc, 32, 0.1f, 4.0f, &seed);
    bp_net *net = NULL;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 5, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, 3), BP_OK);
    const float toff[2] = {100.0f, -3.0f}, tsc[2] = {0.5f, 8.0f};
    assert_status(bp_net_set_scaler(net, BP_SCALE_TARGETS, toff, tsc, 2), BP_OK);
    scaler_round_trip(net, "native_scalers", x, 8);
    bp_net_free(net);

    assert_status(bp_net_create_image(&net, 2, 4, 4, 2), BP_OK);
    assert_status(bp_net_add_conv2d(net, 3, 3, 3, 1, 1, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_global_avgpool(net), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_SIGMOID), BP_OK);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, 32), BP_OK);
    assert_status(bp_net_set_scaler(net, BP_SCALE_TARGETS, toff, tsc, 2), BP_OK);
    scaler_round_trip(net, "native_image_scalers", x, 4);
    bp_net_free(net);

    /* sequences: constants of the row's shape [T x F] */
    assert_status(bp_net_create_sequence(&net, 4, 8, 3), BP_OK);
    assert_status(bp_net_add_gru(net, 3, 0), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, 32), BP_OK);
    const float soff[8] = {1, 2, 3, 4, 5, 6, 7, 8}, ssc[8] = {2, 2, 2, 2, 4, 4, 4, 4};
    assert_status(bp_net_set_scaler(net, BP_SCALE_TARGETS, soff, ssc, 8), BP_OK);
    scaler_round_trip(net, "native_sequence_scalers", x, 4);
    bp_net_free(net);
}

/* The committed bad_*.onnx (make_hostile.py): status and a fragment of the message. */
static void unsupported_and_malformed_models_are_reported(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        bp_status status;
        const char *fragment;
    } cases[] = {
        {"bad_op", BP_ERR_UNSUPPORTED, "node 'hm' (Hardmax)"},
        {"bad_group", BP_ERR_UNSUPPORTED, "attribute 'group' = 2"},
        {"bad_pads", BP_ERR_UNSUPPORTED, "attribute 'pads'"},
        {"bad_branch", BP_ERR_UNSUPPORTED, "chains"},
        {"bad_two_inputs", BP_ERR_UNSUPPORTED, "only one data input"},
        {"bad_type", BP_ERR_UNSUPPORTED, "data type STRING"},
        {"bad_size", BP_ERR_FORMAT, "declares 12000000 elements"},
        {"bad_huge_dims", BP_ERR_FORMAT, "overflows"},
        {"bad_huge_input", BP_ERR_UNSUPPORTED, "2^24"},
        {"bad_opset", BP_ERR_UNSUPPORTED, "operator set 18"},
        {"bad_erf_gelu", BP_ERR_UNSUPPORTED, "exact (erf) GELU"},
        {"bad_add", BP_ERR_UNSUPPORTED, "node 'shift' (Add)"},
        {"bad_batch_zeros", BP_ERR_UNSUPPORTED,
         "node 'add_state' (Add): input 'zeros' repeats a constant over the batch"},
        /* found by fuzz_onnx: Equal of an empty and a 2-element constant */
        {"fuzz_where_counts", BP_ERR_UNSUPPORTED, "inputs of 2 and 0 elements"},
        /* found by fuzz_onnx in CI: a Transpose whose 'perm' is empty (NULL ints) */
        {"fuzz_empty_ints", BP_ERR_FORMAT, "attribute 'perm' does not match rank 2"},
        {"bad_gru_reset", BP_ERR_UNSUPPORTED, "attribute 'linear_before_reset' = 0"},
        {"bad_lstm_state", BP_ERR_UNSUPPORTED, "input 'initial_h' is not zero"},
        {"bad_batch_arith", BP_ERR_UNSUPPORTED,
         "node 'double_batch' (Mul): cannot be folded at import: arithmetic on the batch size"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", BP_ONNX_DATA_DIR, cases[k].file);
        bp_net *net = (bp_net *)&net; /* must be reset to NULL */
        const bp_status s = bp_onnx_import(&net, path, 1);
        if (s != cases[k].status || strstr(bp_onnx_last_error(), cases[k].fragment) == NULL)
            print_error("%s: %d %s\n", cases[k].file, (int)s, bp_onnx_last_error());
        assert_int_equal(s, cases[k].status);
        assert_non_null(strstr(bp_onnx_last_error(), cases[k].fragment));
        assert_null(net);
    }
}

/* ok_fold.onnx (make_hostile.py): the Reshape's target [N, 6] comes out of shape arithmetic
 * with a rank-2 Slice, Transpose, Reshape, Equal and Where on constants, and the Gemm's bias
 * out of an Expand: y = W f + 0.5 with W[o][i] = (6 o + i) / 10. */
static void shape_arithmetic_is_folded(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/ok_fold.onnx", BP_ONNX_DATA_DIR);
    bp_net *net = NULL;
    assert_status(bp_onnx_import(&net, path, 1), BP_OK);
    assert_int_equal(bp_net_input_size(net), 6);
    assert_int_equal(bp_net_output_size(net), 3);
    float x[2 * 6], y[2 * 3];
    uint64_t seed = 3;
    bp_test_fill_uniform(x, 12, -1.0f, 1.0f, &seed);
    assert_status(bp_net_predict(net, x, 2, y, 6), BP_OK);
    for (int r = 0; r < 2; r++)
        for (int o = 0; o < 3; o++) {
            double want = 0.5;
            for (int i = 0; i < 6; i++)
                want += (6.0 * o + i) / 10.0 * (double)x[r * 6 + i];
            assert_close(y[r * 3 + o], want, 1e-6, 1e-6);
        }
    bp_net_free(net);
}

/* Scalers written by hand as (x - off) / d and y * m + o (ok_scaler_div.onnx): the input
 * scale is 1 / d, the target scale 1 / m; raw predictions as the graph computes them. */
static void scalers_written_with_div_and_mul_are_read(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/ok_scaler_div.onnx", BP_ONNX_DATA_DIR);
    bp_net *net = NULL;
    assert_status(bp_onnx_import(&net, path, 1), BP_OK);
    assert_int_equal(bp_net_layer_count(net), 1);
    const float off[3] = {1.0f, -2.0f, 0.5f}, d[3] = {2.0f, 0.25f, 4.0f};
    const float w[2][3] = {{0.5f, -1.0f, 0.25f}, {1.5f, 0.75f, -0.5f}}, b[2] = {0.1f, -0.2f};
    const float m[2] = {10.0f, 0.5f}, o[2] = {100.0f, -3.0f};
    float so[3], ss[3];
    size_t width = 0;
    assert_status(bp_net_get_scaler(net, BP_SCALE_INPUTS, so, ss, 3, &width), BP_OK);
    assert_int_equal(width, 3);
    for (int k = 0; k < 3; k++) {
        assert_true(so[k] == off[k]);
        assert_true(ss[k] == 1.0f / d[k]);
    }
    assert_status(bp_net_get_scaler(net, BP_SCALE_TARGETS, so, ss, 3, &width), BP_OK);
    assert_int_equal(width, 2);
    assert_status(bp_net_set(net, BP_NET_APPLY_SCALERS, 1), BP_OK);
    const float x[2][3] = {{3.0f, -1.0f, 2.0f}, {-4.0f, 0.5f, 8.0f}};
    float y[4];
    assert_status(bp_net_predict(net, &x[0][0], 2, y, 4), BP_OK);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 2; j++) {
            double h = (double)b[j];
            for (int i = 0; i < 3; i++)
                h += (double)w[j][i] * ((double)x[r][i] - (double)off[i]) / (double)d[i];
            assert_close(y[r * 2 + j], h * (double)m[j] + (double)o[j], 1e-5, 1e-5);
        }
    bp_net_free(net);
}

/* float16 and float64 initializers are converted: W[o][i] = (4 o + i) / 4, b = {0.5, -1, 2}. */
static void float16_and_float64_weights_are_converted(void **state)
{
    (void)state;
    static const char *const files[] = {"ok_fp16", "ok_fp64"};
    for (size_t f = 0; f < 2; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", BP_ONNX_DATA_DIR, files[f]);
        bp_net *net = NULL;
        assert_status(bp_onnx_import(&net, path, 1), BP_OK);
        const float x[4] = {1.0f, 2.0f, 3.0f, 4.0f}, b[3] = {0.5f, -1.0f, 2.0f};
        float y[3];
        assert_status(bp_net_predict(net, x, 1, y, 3), BP_OK);
        for (int o = 0; o < 3; o++) {
            double want = (double)b[o];
            for (int i = 0; i < 4; i++)
                want += (4.0 * o + i) / 4.0 * (double)x[i];
            assert_close(y[o], want, 1e-6, 0.0);
        }
        bp_net_free(net);
    }
}

static unsigned char *read_file(const char *name, size_t *size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", BP_ONNX_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return buf;
}

static int allowed_failure(bp_status s)
{
    return s == BP_ERR_FORMAT || s == BP_ERR_UNSUPPORTED || s == BP_ERR_NONFINITE;
}

/* Every truncation and a sweep of byte corruptions of real models (a CNN, and an LSTM with
 * PyTorch's state and layout subgraphs): a status, never a crash (ASan/valgrind in CI watch
 * the memory); what imports also predicts. */
static void truncated_and_corrupted_files_give_statuses(void **state)
{
    (void)state;
    static const char *const files[] = {"cnn.onnx", "lstm.onnx"};
    for (size_t file = 0; file < 2; file++) {
        size_t size;
        unsigned char *buf = read_file(files[file], &size);
        for (size_t len = 1; len < size; len++) {
            bp_net *net = NULL;
            const bp_status s = bp_onnx_import_buffer(&net, buf, len, 1);
            if (s == BP_OK)
                bp_net_free(net);
            else
                assert_true(allowed_failure(s));
        }
        unsigned char *copy = malloc(size);
        static const unsigned char values[] = {0x00, 0xff, 0x80, 0x7f, 0x01, 0x0a, 0x12};
        for (size_t pos = 0; pos < size; pos += 3) {
            for (size_t v = 0; v < sizeof values; v++) {
                memcpy(copy, buf, size);
                copy[pos] = values[v];
                bp_net *net = NULL;
                const bp_status s = bp_onnx_import_buffer(&net, copy, size, 1);
                if (s == BP_OK) {
                    float x[144] = {0}, y[64];
                    const size_t in = bp_net_input_size(net), out = bp_net_output_size(net);
                    if (in <= 144 && out <= 64) (void)bp_net_predict(net, x, 1, y, out);
                    bp_net_free(net);
                } else {
                    assert_true(allowed_failure(s));
                }
            }
        }
        free(copy);
        free(buf);
    }
}

static size_t put_varint(unsigned char *p, size_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* Protobuf that decodes into far more memory than it occupies is refused by the parser's
 * budget (BP_ONNX_PARSE_FACTOR x its size) instead of being allocated: 200 KB of empty
 * AttributeProto messages (2 bytes each, a 248-byte struct each once decoded). */
static void parse_memory_is_bounded_by_the_input(void **state)
{
    (void)state;
    const size_t attrs = 100000, node_len = 2 * attrs;
    unsigned char *buf = malloc(node_len + 32);
    size_t at = 0;
    unsigned char len[16];
    const size_t nl = put_varint(len, node_len);
    buf[at++] = 0x3a; /* ModelProto.graph (7), length-delimited */
    at += put_varint(buf + at, 1 + nl + node_len);
    buf[at++] = 0x0a; /* GraphProto.node (1) */
    memcpy(buf + at, len, nl);
    at += nl;
    for (size_t k = 0; k < attrs; k++) {
        buf[at++] = 0x2a; /* NodeProto.attribute (5), empty */
        buf[at++] = 0x00;
    }
    bp_net *net = NULL;
    const bp_status s = bp_onnx_import_buffer(&net, buf, at, 1);
    assert_int_equal(s, BP_ERR_FORMAT);
    assert_non_null(strstr(bp_onnx_last_error(), "would allocate more than"));
    assert_null(net);
    free(buf);
}

/* Graph.node -> Node.attribute -> Attribute.g -> Graph ... 200,000 times (2.4 MB): protobuf-c
 * would recurse that deep and overflow the stack; the importer refuses it first. */
static void deeply_nested_messages_are_refused(void **state)
{
    (void)state;
    const size_t levels = 200000, cap = levels * 3 * 6 + 16;
    unsigned char *buf = malloc(cap);
    size_t at = cap, inner = 0; /* written backwards: buf[at .. cap) is the inner message */
    for (size_t k = 0; k < levels; k++) {
        static const unsigned char fields[3] = {6, 5, 1}; /* Attribute.g, .attribute, .node */
        for (int f = 0; f < 3; f++) {
            unsigned char head[12];
            head[0] = (unsigned char)(fields[f] << 3 | 2);
            const size_t hl = 1 + put_varint(head + 1, inner);
            at -= hl;
            memcpy(buf + at, head, hl);
            inner += hl;
        }
    }
    unsigned char head[12];
    head[0] = 0x3a; /* ModelProto.graph */
    const size_t hl = 1 + put_varint(head + 1, inner);
    at -= hl;
    memcpy(buf + at, head, hl);
    bp_net *net = NULL;
    assert_int_equal(bp_onnx_import_buffer(&net, buf + at, cap - at, 1), BP_ERR_FORMAT);
    assert_non_null(strstr(bp_onnx_last_error(), "nested"));
    assert_null(net);
    free(buf);
}

static void invalid_arguments_are_rejected(void **state)
{
    (void)state;
    bp_net *net = NULL;
    const unsigned char one = 0;
    assert_int_equal(bp_onnx_import(NULL, "x.onnx", 1), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_onnx_import(&net, NULL, 1), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_onnx_import(&net, "/nonexistent/model.onnx", 1), BP_ERR_IO);
    assert_non_null(strstr(bp_onnx_last_error(), "/nonexistent/model.onnx"));
    assert_int_equal(bp_onnx_import(&net, "/dev/zero", 1), BP_ERR_IO); /* not a regular file */
    assert_non_null(strstr(bp_onnx_last_error(), "not a regular file"));
    assert_int_equal(bp_onnx_import(&net, BP_ONNX_DATA_DIR, 1), BP_ERR_IO); /* a directory */
    assert_int_equal(bp_onnx_import_buffer(&net, NULL, 4, 1), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_onnx_import_buffer(&net, &one, 0, 1), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_onnx_import_buffer(&net, "garbage!", 8, 1), BP_ERR_FORMAT);
    assert_null(net);
    size_t size = 0;
    assert_int_equal(bp_onnx_export(NULL, "x.onnx", 0), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_onnx_export_buffer(NULL, NULL, 0, &size, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_int_equal(bp_onnx_export_buffer(net, NULL, 0, &size, 0), BP_ERR_STATE);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_RELU), BP_OK);
    assert_int_equal(bp_onnx_export_buffer(net, NULL, 0, NULL, 0), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_onnx_export_buffer(net, NULL, 0, &size, 8), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_onnx_export(net, NULL, 0), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_onnx_export(net, "/nonexistent/dir/x.onnx", 0), BP_ERR_IO);
    unsigned char small[8];
    assert_int_equal(bp_onnx_export_buffer(net, small, sizeof small, &size, 0),
                     BP_ERR_BUFFER_TOO_SMALL);
    assert_true(size > sizeof small);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(mlp_matches_pytorch),
        bp_add_test(activations_and_matmul_match_pytorch),
        bp_add_test(cnn_with_bn_and_pooling_matches_pytorch),
        bp_add_test(cnn_with_global_pooling_matches_pytorch),
        bp_add_test(imported_cnn_fine_tunes),
        bp_add_test(lstm_last_step_matches_pytorch),
        bp_add_test(stacked_lstm_matches_pytorch),
        bp_add_test(bidirectional_gru_sequence_matches_pytorch),
        bp_add_test(relu_rnn_final_state_matches_pytorch),
        bp_add_test(embedding_and_lstm_match_pytorch),
        bp_add_test(imported_lstm_fine_tunes),
        bp_add_test(native_sequence_nets_round_trip),
        bp_add_test(native_nets_round_trip),
        bp_add_test(scalers_are_exported_and_imported),
        bp_add_test(unsupported_and_malformed_models_are_reported),
        bp_add_test(float16_and_float64_weights_are_converted),
        bp_add_test(shape_arithmetic_is_folded),
        bp_add_test(scalers_written_with_div_and_mul_are_read),
        bp_add_test(truncated_and_corrupted_files_give_statuses),
        bp_add_test(parse_memory_is_bounded_by_the_input),
        bp_add_test(deeply_nested_messages_are_refused),
        bp_add_test(invalid_arguments_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
