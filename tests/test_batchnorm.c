/* test_batchnorm.c -- batch normalisation: batch statistics in training, running statistics
 * in inference, gradients against a double-precision reference (flat and per channel),
 * settings and bad input. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "net.h"
#include "ref_net.h"

static uint64_t rng_state = 2024;

static void training_output_has_zero_mean_unit_variance_per_feature(void **state)
{
    (void)state;
    enum { N = 16, F = 5 };
    bp_net *net;
    assert_status(bp_net_create(&net, F, 1), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    float x[N * F];
    bp_test_fill_uniform(x, N * F, -3.0f, 7.0f, &rng_state);
    for (size_t i = 0; i < N; i++)
        x[i * F + 2] = 4.0f + 100.0f * x[i * F + 2]; /* wide */
    const float *y;
    assert_status(bp_net_forward(net, x, N, &y), BP_OK);
    double eps;
    assert_status(bp_layer_get(bp_net_layer(net, 0), BP_LAYER_BN_EPSILON, &eps), BP_OK);
    for (size_t j = 0; j < F; j++) {
        double m = 0, v = 0, xm = 0, xv = 0;
        for (size_t i = 0; i < N; i++)
            m += (double)y[i * F + j], xm += (double)x[i * F + j];
        m /= N, xm /= N;
        for (size_t i = 0; i < N; i++) {
            v += ((double)y[i * F + j] - m) * ((double)y[i * F + j] - m);
            xv += ((double)x[i * F + j] - xm) * ((double)x[i * F + j] - xm);
        }
        v /= N, xv /= N;
        assert_close(m, 0.0, 0.0, 1e-5);
        assert_close(v, xv / (xv + eps), 1e-4, 0.0); /* biased variance, eps in the root */
    }
    bp_net_free(net);
}

static void image_rows_are_normalised_per_channel(void **state)
{
    (void)state;
    enum { N = 3, C = 2, H = 3, W = 4, S = H * W };
    bp_net *net;
    assert_status(bp_net_create_image(&net, C, H, W, 1), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_int_equal(bp_layer_param_count(bp_net_layer(net, 0)), 2 * C);
    float x[N * C * S];
    bp_test_fill_uniform(x, N * C * S, -1.0f, 1.0f, &rng_state);
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < S; k++)
            x[(i * C + 1) * S + k] = 10.0f + 5.0f * x[(i * C + 1) * S + k];
    const float gamma[C] = {2.0f, 0.5f}, beta[C] = {1.0f, -3.0f};
    assert_status(bp_layer_set_weights(bp_net_layer(net, 0), gamma, C), BP_OK);
    assert_status(bp_layer_set_biases(bp_net_layer(net, 0), beta, C), BP_OK);
    const float *y;
    assert_status(bp_net_forward(net, x, N, &y), BP_OK);
    for (size_t c = 0; c < C; c++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < N; i++)
            for (size_t k = 0; k < S; k++)
                m += (double)y[(i * C + c) * S + k];
        m /= N * S;
        for (size_t i = 0; i < N; i++)
            for (size_t k = 0; k < S; k++)
                v += pow((double)y[(i * C + c) * S + k] - m, 2);
        v /= N * S;
        assert_close(m, (double)beta[c], 0.0, 1e-5);
        assert_close(sqrt(v), (double)gamma[c], 1e-3, 0.0);
    }
    bp_net_free(net);
}

static void gradients_match_reference_for_flat_features(void **state)
{
    (void)state;
    enum { N = 6, IN = 4 };
    bp_net *net;
    assert_status(bp_net_create(&net, IN, 3), BP_OK);
    assert_status(bp_net_add_dense(net, 5, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK); /* last: MSE on its output */
    /* gamma, beta away from 1, 0 so that every term of the closed form matters */
    for (size_t li = 1; li < 4; li += 2) {
        float g[5], b[5];
        const size_t c = bp_layer_output_size(bp_net_layer(net, li));
        bp_test_fill_uniform(g, c, 0.5f, 1.5f, &rng_state);
        bp_test_fill_uniform(b, c, -0.5f, 0.5f, &rng_state);
        assert_status(bp_layer_set_weights(bp_net_layer(net, li), g, c), BP_OK);
        assert_status(bp_layer_set_biases(bp_net_layer(net, li), b, c), BP_OK);
    }
    float x[N * IN], t[N * 3];
    bp_test_fill_uniform(x, N * IN, -2.0f, 2.0f, &rng_state);
    bp_test_fill_uniform(t, N * 3, -1.0f, 1.0f, &rng_state);
    /* float32 library vs double reference: sums of <= 6 terms per channel, so 2e-3 relative
     * plus 1e-4 of the largest gradient, as for the dense layers (test_grad.c). */
    ref_check_grads(net, BP_LOSS_MSE, x, t, N, 2e-3, 1e-4);
    bp_net_free(net);
}

static void gradients_match_reference_per_channel(void **state)
{
    (void)state;
    enum { N = 3, C = 2, H = 4, W = 4 };
    bp_net *net;
    assert_status(bp_net_create_image(&net, C, H, W, 5), BP_OK);
    assert_status(bp_net_add_conv2d(net, 3, 3, 3, 1, 1, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    float g[3] = {1.3f, 0.7f, 1.1f}, b[3] = {0.2f, -0.1f, 0.3f};
    assert_status(bp_layer_set_weights(bp_net_layer(net, 1), g, 3), BP_OK);
    assert_status(bp_layer_set_biases(bp_net_layer(net, 1), b, 3), BP_OK);
    float x[N * C * H * W], t[N] = {0, 2, 1};
    bp_test_fill_uniform(x, N * C * H * W, -1.0f, 1.0f, &rng_state);
    /* Per-channel sums run over n*H*W = 48 values: float rounding of the closed form grows
     * with them, hence 5e-3 relative (still far below a wrong term's error). */
    ref_check_grads(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, t, N, 5e-3, 2e-4);
    bp_net_free(net);
}

/* y = gamma (x - rm) / sqrt(rv + eps) + beta for a single-feature net with gamma 1, beta 0. */
static void inference_uses_running_statistics(void **state)
{
    (void)state;
    enum { N = 4 };
    bp_net *net;
    assert_status(bp_net_create(&net, 1, 1), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    bp_layer *bn = bp_net_layer(net, 0);
    assert_status(bp_layer_set(bn, BP_LAYER_BN_MOMENTUM, 0.75), BP_OK);
    assert_status(bp_layer_set(bn, BP_LAYER_BN_EPSILON, 1e-3), BP_OK);
    const float b1[N] = {1, 2, 3, 6}, b2[N] = {-4, 0, 0, 8};
    /* Before any training pass: running mean 0, variance 1. */
    float q[2] = {2.0f, -1.0f}, out[2];
    assert_status(bp_net_predict(net, q, 2, out, 2), BP_OK);
    assert_close(out[0], 2.0 / sqrt(1.001), 1e-6, 0.0);
    const float *y;
    assert_status(bp_net_forward(net, b1, N, &y), BP_OK);
    assert_status(bp_net_forward(net, b2, N, &y), BP_OK);
    /* batch 1: mean 3, var (4+1+0+9)/4 = 3.5; batch 2: mean 1, var (25+1+1+49)/4 = 19;
     * the running variance takes the unbiased ones, 3.5 * 4/3 and 19 * 4/3 (as PyTorch's
     * BatchNorm1d: torch's running_var after these two batches with momentum 0.25 is
     * 0.75 * (0.75 * 1 + 0.25 * 14/3) + 0.25 * 76/3 = 373/48 = 7.7708333, PyTorch 1.13:
     * 7.770833492279053 in float32) */
    double rm = 0.0, rv = 1.0;
    rm = 0.75 * rm + 0.25 * 3.0, rv = 0.75 * rv + 0.25 * (3.5 * 4.0 / 3.0);
    rm = 0.75 * rm + 0.25 * 1.0, rv = 0.75 * rv + 0.25 * (19.0 * 4.0 / 3.0);
    assert_close(rv, 373.0 / 48.0, 1e-12, 0.0);
    assert_status(bp_net_predict(net, q, 2, out, 2), BP_OK);
    for (size_t i = 0; i < 2; i++)
        assert_close(out[i], ((double)q[i] - rm) / sqrt(rv + 1e-3), 1e-5, 1e-6);
    /* Inference updates nothing: the same result again, row by row as in a batch. */
    float again;
    assert_status(bp_net_predict(net, q + 1, 1, &again, 1), BP_OK);
    assert_close(again, out[1], 0.0, 0.0);
    /* Momentum 0: the running statistics are the last batch's (its mean and unbiased
     * variance 14/3), so inference on that batch is the training output scaled by
     * sqrt((3.5 + eps) / (14/3 + eps)). */
    assert_status(bp_layer_set(bn, BP_LAYER_BN_MOMENTUM, 0.0), BP_OK);
    assert_status(bp_net_forward(net, b1, N, &y), BP_OK);
    float train_y[N], pred[N];
    memcpy(train_y, y, sizeof train_y);
    assert_status(bp_net_predict(net, b1, N, pred, N), BP_OK);
    const double ratio = sqrt((3.5 + 1e-3) / (14.0 / 3.0 + 1e-3));
    for (size_t i = 0; i < N; i++)
        assert_close(pred[i], (double)train_y[i] * ratio, 1e-5, 1e-6);
    bp_net_free(net);
}

static void clone_copies_running_statistics(void **state)
{
    (void)state;
    bp_net *net, *copy;
    assert_status(bp_net_create(&net, 2, 1), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_BN_MOMENTUM, 0.5), BP_OK);
    const float x[6] = {1, 5, 2, 7, 3, 9};
    const float *y;
    assert_status(bp_net_forward(net, x, 3, &y), BP_OK);
    assert_status(bp_net_clone(&copy, net), BP_OK);
    float a[6], b[6];
    assert_status(bp_net_predict(net, x, 3, a, 6), BP_OK);
    assert_status(bp_net_predict(copy, x, 3, b, 6), BP_OK);
    assert_memory_equal(a, b, sizeof a);
    double m;
    assert_status(bp_layer_get(bp_net_layer(copy, 0), BP_LAYER_BN_MOMENTUM, &m), BP_OK);
    assert_close(m, 0.5, 0.0, 0.0);
    /* independent: training the original changes only its statistics */
    assert_status(bp_net_forward(net, x, 3, &y), BP_OK);
    assert_status(bp_net_predict(copy, x, 3, a, 6), BP_OK);
    assert_memory_equal(a, b, sizeof a);
    bp_net_free(copy);
    bp_net_free(net);
}

static void settings_have_bounds_and_apply_only_to_batchnorm(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    bp_layer *d = bp_net_layer(net, 0), *bn = bp_net_layer(net, 1);
    double v, lo, hi;
    assert_status(bp_layer_get(bn, BP_LAYER_BN_MOMENTUM, &v), BP_OK);
    assert_close(v, 0.99, 0.0, 0.0);
    assert_status(bp_layer_get(bn, BP_LAYER_BN_EPSILON, &v), BP_OK);
    assert_close(v, 1e-5, 0.0, 0.0);
    assert_status(bp_layer_param_bounds(BP_LAYER_BN_MOMENTUM, &lo, &hi), BP_OK);
    assert_true(lo == 0.0 && hi == 1.0);
    assert_status(bp_layer_param_bounds(BP_LAYER_BN_EPSILON, &lo, &hi), BP_OK);
    assert_true(lo > 0.0 && hi == 1.0);
    assert_status(bp_layer_set(bn, BP_LAYER_BN_MOMENTUM, 1.5), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_set(bn, BP_LAYER_BN_MOMENTUM, (double)NAN), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_set(bn, BP_LAYER_BN_EPSILON, 0.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_set(bn, BP_LAYER_BN_EPSILON, 1e-3), BP_OK);
    assert_status(bp_layer_get(bn, BP_LAYER_BN_EPSILON, &v), BP_OK);
    assert_close(v, 1e-3, 0.0, 0.0);
    /* keys of other kinds are rejected, with a message naming the kind */
    assert_status(bp_layer_set(d, BP_LAYER_BN_MOMENTUM, 0.9), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_net_last_error(net), "dense"));
    assert_status(bp_layer_get(d, BP_LAYER_BN_EPSILON, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(bn, BP_LAYER_DROPOUT_RATE, 0.5), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(bn, BP_LAYER_LEAKY_SLOPE, 0.5), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(bn, BP_LAYER_L2, 0.5), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(bn, BP_LAYER_TRAINABLE, 0), BP_OK);
    assert_int_equal(bp_layer_kind(bn), BP_LAYER_BATCHNORM);
    bp_net_free(net);
}

static void add_batchnorm_rejects_bad_input(void **state)
{
    (void)state;
    assert_status(bp_net_add_batchnorm(NULL), BP_ERR_INVALID_ARG);
    bp_net *net;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_ERR_STATE);
    assert_int_equal(bp_net_layer_count(net), 1);
    bp_net_free(net);
    /* every allocation failure leaves nothing behind */
    for (long k = 1;; k++) {
        bp_test_alloc ta = {.fail_at = k};
        if (bp_net_create_ex(&net, 4, 1, bp_test_alloc_fn, bp_test_free_fn, &ta) != BP_OK) continue;
        const bp_status s = bp_net_add_batchnorm(net);
        if (s == BP_OK)
            assert_int_equal(bp_net_layer_count(net), 1);
        else {
            assert_int_equal(s, BP_ERR_NOMEM);
            assert_int_equal(bp_net_layer_count(net), 0);
        }
        bp_net_free(net);
        assert_int_equal(ta.live, 0);
        if (s == BP_OK) break;
    }
}

/* The whole state of a net as its checkpoint-free model image (parameters, running
 * statistics, the generator). */
static unsigned char *image_of(const bp_net *net, size_t *size)
{
    assert_status(bp_net_save_buffer(net, NULL, 0, size), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *img = malloc(*size);
    assert_non_null(img);
    assert_status(bp_net_save_buffer(net, img, *size, size), BP_OK);
    return img;
}

static void assert_same_state(const bp_net *a, const bp_net *b)
{
    size_t sa, sb;
    unsigned char *ia = image_of(a, &sa), *ib = image_of(b, &sb);
    assert_int_equal(sa, sb);
    assert_memory_equal(ia, ib, sa);
    free(ia);
    free(ib);
}

/* Issue 18, finding 4: a step that fails after its forward pass (here the loss overflows)
 * leaves the running statistics and the net's generator (dropout masks) as they were: the
 * net's image equals that of a clone taken before the step. Also finding 3: inputs of
 * magnitude 1e20 make the running variance overflow a float; the step, compute_grads and
 * bp_net_forward fail with BP_ERR_NONFINITE instead of keeping +Inf (which saved, but could
 * never be loaded). */
static void failed_steps_keep_running_statistics_and_generator(void **state)
{
    (void)state;
    enum { N = 4, F = 3 };
    bp_net *net;
    assert_status(bp_net_create(&net, F, 77), BP_OK);
    assert_status(bp_net_add_dense(net, 6, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_dropout(net, 0.5), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_SGD), BP_OK);
    float x[N * F], y[N] = {0.5f, -0.5f, 1.0f, 0.0f};
    bp_test_fill_uniform(x, N * F, -1, 1, &rng_state);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, N, NULL), BP_OK);
    bp_net *before;
    assert_status(bp_net_clone(&before, net), BP_OK);
    /* Targets of 3e38: the loss overflows after the forward pass. */
    const float huge[N] = {3e38f, -3e38f, 3e38f, -3e38f};
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, huge, N, NULL), BP_ERR_NONFINITE);
    assert_same_state(net, before);
    assert_status(bp_net_compute_grads(net, BP_LOSS_MSE, x, huge, N, NULL), BP_ERR_NONFINITE);
    assert_same_state(net, before);
    bp_net_free(before);

    /* Batch norm straight on inputs of 1e20: the variance 1e40 is no float. */
    bp_net *bn;
    assert_status(bp_net_create(&bn, 2, 5), BP_OK);
    assert_status(bp_net_add_batchnorm(bn), BP_OK);
    assert_status(bp_net_add_dense(bn, 1, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_clone(&before, bn), BP_OK);
    const float big[4] = {1e20f, -1e20f, -1e20f, 1e20f}, t[2] = {0.0f, 1.0f};
    const float *out;
    bp_optimizer_free(opt); /* a fresh one for the new net */
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_SGD), BP_OK);
    assert_status(bp_net_train_step(bn, opt, BP_LOSS_MSE, big, t, 2, NULL), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(bn), "running variance"));
    assert_same_state(bn, before);
    assert_status(bp_net_compute_grads(bn, BP_LOSS_MSE, big, t, 2, NULL), BP_ERR_NONFINITE);
    assert_status(bp_net_forward(bn, big, 2, &out), BP_ERR_NONFINITE);
    assert_same_state(bn, before);
    /* What it saves loads back; ordinary inputs still train. */
    size_t size;
    unsigned char *img = image_of(bn, &size);
    bp_net *back;
    assert_status(bp_net_load_buffer(&back, img, size), BP_OK);
    bp_net_free(back);
    free(img);
    const float small[4] = {1.0f, -1.0f, -1.0f, 1.0f};
    assert_status(bp_net_train_step(bn, opt, BP_LOSS_MSE, small, t, 2, NULL), BP_OK);
    bp_net_free(before);
    bp_net_free(bn);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(training_output_has_zero_mean_unit_variance_per_feature),
        bp_add_test(image_rows_are_normalised_per_channel),
        bp_add_test(gradients_match_reference_for_flat_features),
        bp_add_test(gradients_match_reference_per_channel),
        bp_add_test(inference_uses_running_statistics),
        bp_add_test(clone_copies_running_statistics),
        bp_add_test(settings_have_bounds_and_apply_only_to_batchnorm),
        bp_add_test(add_batchnorm_rejects_bad_input),
        bp_add_test(failed_steps_keep_running_statistics_and_generator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
