/* test_dropout.c -- regularisation: inverted dropout (rate, scaling, inference identity,
 * backward through the mask, reproducibility), L2/L1 weight penalties, per-layer gradient
 * norms, and bad input. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "net.h"

static uint64_t rng_state = 99;

static void training_zeros_about_rate_and_scales_the_rest(void **state)
{
    (void)state;
    enum { N = 100, F = 200 };
    const double rates[] = {0.1, 0.3, 0.5, 0.8};
    float *x = malloc(N * F * sizeof *x), *pred = malloc(N * F * sizeof *pred);
    assert_true(x != NULL && pred != NULL);
    bp_test_fill_uniform(x, N * F, 0.5f, 2.0f, &rng_state);
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        const double p = rates[r];
        bp_net *net;
        assert_status(bp_net_create(&net, F, 7 + r), BP_OK);
        assert_status(bp_net_add_dropout(net, p), BP_OK);
        const float *y;
        assert_status(bp_net_forward(net, x, N, &y), BP_OK);
        size_t zeros = 0;
        for (size_t k = 0; k < N * F; k++) {
            if (y[k] == 0.0f) {
                zeros++;
            } else {
                assert_close(y[k], (double)x[k] / (1.0 - p), 1e-6, 0.0);
            }
        }
        /* 20000 Bernoulli(p) draws: standard deviation <= 0.0036; allow 4 sigma-ish. */
        assert_close((double)zeros / (N * F), p, 0.0, 0.015);
        /* Inference: identity, nothing dropped. */
        assert_status(bp_net_predict(net, x, N, pred, N * F), BP_OK);
        assert_memory_equal(pred, x, N * F * sizeof *x);
        bp_net_free(net);
    }
    free(x);
    free(pred);
}

static void rate_zero_is_identity_in_training(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_status(bp_net_add_dropout(net, 0.0), BP_OK);
    const float x[6] = {1, -2, 3, 4, 5, -6};
    const float *y;
    assert_status(bp_net_forward(net, x, 2, &y), BP_OK);
    assert_memory_equal(y, x, sizeof x);
    bp_net_free(net);
}

/* With W = 0 and b = 1 the dense output is all ones, so the dropout output is its mask and
 * dL/db of the dense layer (dy = 1) is the column sum of the mask. */
static void backward_passes_gradient_through_the_mask(void **state)
{
    (void)state;
    enum { N = 8, IN = 3, F = 4 };
    bp_net *net;
    assert_status(bp_net_create(&net, IN, 5), BP_OK);
    assert_status(bp_net_add_dense(net, F, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_dropout(net, 0.5), BP_OK);
    bp_layer *d = bp_net_layer(net, 0);
    assert_status(bp_layer_init_weights(d, BP_INIT_ZEROS, 0.0), BP_OK);
    const float ones[F] = {1, 1, 1, 1};
    assert_status(bp_layer_set_biases(d, ones, F), BP_OK);
    float x[N * IN], dy[N * F];
    bp_test_fill_uniform(x, N * IN, -1.0f, 1.0f, &rng_state);
    for (size_t k = 0; k < N * F; k++)
        dy[k] = 1.0f;
    const float *y;
    assert_status(bp_net_forward(net, x, N, &y), BP_OK);
    float mask[N * F];
    memcpy(mask, y, sizeof mask);
    assert_status(bp_net_backward(net, dy, N), BP_OK);
    float db[F], dw[F * IN];
    assert_status(bp_layer_get_bias_grad(d, db, F), BP_OK);
    assert_status(bp_layer_get_weight_grad(d, dw, F * IN), BP_OK);
    int dropped = 0;
    for (size_t j = 0; j < F; j++) {
        double s = 0.0, sw = 0.0;
        for (size_t i = 0; i < N; i++) {
            s += (double)mask[i * F + j];
            sw += (double)mask[i * F + j] * (double)x[i * IN];
            dropped |= mask[i * F + j] == 0.0f;
        }
        assert_close(db[j], s, 1e-6, 0.0);
        assert_close(dw[j * IN], sw, 1e-5, 1e-6);
    }
    assert_true(dropped);
    bp_net_free(net);
}

static void masks_are_reproducible_from_the_seed(void **state)
{
    (void)state;
    float x[50], a[50];
    for (size_t k = 0; k < 50; k++)
        x[k] = 1.0f;
    bp_net *n1, *n2;
    assert_status(bp_net_create(&n1, 10, 42), BP_OK);
    assert_status(bp_net_create(&n2, 10, 42), BP_OK);
    assert_status(bp_net_add_dropout(n1, 0.4), BP_OK);
    assert_status(bp_net_add_dropout(n2, 0.4), BP_OK);
    const float *y1, *y2;
    assert_status(bp_net_forward(n1, x, 5, &y1), BP_OK);
    memcpy(a, y1, sizeof a);
    assert_status(bp_net_forward(n2, x, 5, &y2), BP_OK);
    assert_memory_equal(a, y2, sizeof a);
    /* the next batch draws a new mask */
    assert_status(bp_net_forward(n1, x, 5, &y1), BP_OK);
    assert_true(memcmp(a, y1, sizeof a) != 0);
    bp_net_free(n1);
    bp_net_free(n2);
}

static void dropout_rate_setting_and_bad_input(void **state)
{
    (void)state;
    assert_status(bp_net_add_dropout(NULL, 0.5), BP_ERR_INVALID_ARG);
    bp_net *net;
    assert_status(bp_net_create(&net, 4, 1), BP_OK);
    assert_status(bp_net_add_dropout(net, 1.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_add_dropout(net, -0.1), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_add_dropout(net, (double)NAN), BP_ERR_OUT_OF_RANGE);
    assert_int_equal(bp_net_layer_count(net), 0);
    assert_status(bp_net_add_dropout(net, 0.25), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    assert_int_equal(bp_layer_kind(l), BP_LAYER_DROPOUT);
    assert_int_equal(bp_layer_param_count(l), 0);
    double v, lo, hi;
    assert_status(bp_layer_get(l, BP_LAYER_DROPOUT_RATE, &v), BP_OK);
    assert_close(v, 0.25, 0.0, 0.0);
    assert_status(bp_layer_set(l, BP_LAYER_DROPOUT_RATE, 0.6), BP_OK);
    assert_status(bp_layer_get(l, BP_LAYER_DROPOUT_RATE, &v), BP_OK);
    assert_close(v, 0.6, 0.0, 0.0);
    assert_status(bp_layer_set(l, BP_LAYER_DROPOUT_RATE, 1.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_param_bounds(BP_LAYER_DROPOUT_RATE, &lo, &hi), BP_OK);
    assert_true(lo == 0.0 && hi < 1.0 && hi > 0.999);
    assert_status(bp_layer_set(l, BP_LAYER_BN_MOMENTUM, 0.5), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(l, BP_LAYER_L2, 0.5), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get(l, BP_LAYER_ELU_ALPHA, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(l, 299, 0.5), BP_ERR_INVALID_ARG);
    /* a cloned dropout layer keeps its rate */
    bp_net *copy;
    assert_status(bp_net_clone(&copy, net), BP_OK);
    assert_status(bp_layer_get(bp_net_layer(copy, 0), BP_LAYER_DROPOUT_RATE, &v), BP_OK);
    assert_close(v, 0.6, 0.0, 0.0);
    bp_net_free(copy);
    bp_net_free(net);
}

/* dW with penalties = dW without + l2 * W + l1 * sign(W); biases untouched. */
static void weight_penalties_add_to_weight_gradient_only(void **state)
{
    (void)state;
    enum { N = 5, IN = 3, OUT = 2 };
    bp_net *net;
    assert_status(bp_net_create_image(&net, 1, 1, IN, 3), BP_OK);
    assert_status(bp_net_add_conv2d(net, 2, 1, 2, 1, 0, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, OUT, BP_ACT_SIGMOID), BP_OK);
    float x[N * IN], t[N * OUT];
    bp_test_fill_uniform(x, N * IN, -1.0f, 1.0f, &rng_state);
    bp_test_fill_uniform(t, N * OUT, 0.0f, 1.0f, &rng_state);
    size_t np;
    bp_net_params(net, &np);
    float *plain = malloc(np * sizeof *plain);
    assert_non_null(plain);
    assert_status(bp_net_compute_grads(net, BP_LOSS_MSE, x, t, N, NULL), BP_OK);
    memcpy(plain, bp_net_grads(net, NULL), np * sizeof *plain);
    const double l2[2] = {0.1, 0.0}, l1[2] = {0.0, 0.05};
    for (size_t i = 0; i < 2; i++) {
        bp_layer *l = bp_net_layer(net, i);
        assert_status(bp_layer_set(l, BP_LAYER_L2, l2[i]), BP_OK);
        assert_status(bp_layer_set(l, BP_LAYER_L1, l1[i]), BP_OK);
        double v;
        assert_status(bp_layer_get(l, BP_LAYER_L2, &v), BP_OK);
        assert_close(v, l2[i], 0.0, 0.0);
    }
    float lv;
    assert_status(bp_net_compute_grads(net, BP_LOSS_MSE, x, t, N, &lv), BP_OK);
    const float *g = bp_net_grads(net, NULL), *p = bp_net_params(net, NULL);
    size_t off = 0;
    for (size_t i = 0; i < 2; i++) {
        const bp_layer *l = bp_net_layer(net, i);
        for (size_t k = 0; k < l->nweights + l->nbiases; k++) {
            const double w = (double)p[off + k];
            const double want = k < l->nweights ? (double)plain[off + k] + l2[i] * w +
                                                      l1[i] * (w > 0   ? 1
                                                               : w < 0 ? -1
                                                                       : 0)
                                                : (double)plain[off + k];
            assert_close(g[off + k], want, 1e-5, 1e-7);
        }
        off += l->nweights + l->nbiases;
    }
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_L2, -1.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_L1, 1e4), BP_ERR_OUT_OF_RANGE);
    free(plain);
    bp_net_free(net);
}

static void grad_norm_is_the_l2_norm_of_weight_and_bias_gradients(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 4, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dropout(net, 0.2), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    float x[8], t[4];
    bp_test_fill_uniform(x, 8, -1.0f, 1.0f, &rng_state);
    bp_test_fill_uniform(t, 4, -1.0f, 1.0f, &rng_state);
    double norm;
    assert_status(bp_layer_grad_norm(bp_net_layer(net, 0), &norm), BP_OK);
    assert_close(norm, 0.0, 0.0, 0.0); /* no backward pass yet */
    assert_status(bp_net_compute_grads(net, BP_LOSS_MSE, x, t, 2, NULL), BP_OK);
    for (size_t i = 0; i < 3; i++) {
        bp_layer *l = bp_net_layer(net, i);
        float dw[16], db[4];
        const size_t nb = bp_layer_output_size(l), nw = bp_layer_param_count(l) - (i == 1 ? 0 : nb);
        double ss = 0.0;
        if (i != 1) {
            assert_status(bp_layer_get_weight_grad(l, dw, 16), BP_OK);
            assert_status(bp_layer_get_bias_grad(l, db, 4), BP_OK);
            for (size_t k = 0; k < nw; k++)
                ss += (double)dw[k] * (double)dw[k];
            for (size_t k = 0; k < nb; k++)
                ss += (double)db[k] * (double)db[k];
            assert_true(ss > 0.0);
        }
        assert_status(bp_layer_grad_norm(l, &norm), BP_OK);
        assert_close(norm, sqrt(ss), 1e-12, 0.0);
    }
    assert_status(bp_layer_grad_norm(NULL, &norm), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_grad_norm(bp_net_layer(net, 0), NULL), BP_ERR_INVALID_ARG);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(training_zeros_about_rate_and_scales_the_rest),
        bp_add_test(rate_zero_is_identity_in_training),
        bp_add_test(backward_passes_gradient_through_the_mask),
        bp_add_test(masks_are_reproducible_from_the_seed),
        bp_add_test(dropout_rate_setting_and_bad_input),
        bp_add_test(weight_penalties_add_to_weight_gradient_only),
        bp_add_test(grad_norm_is_the_l2_norm_of_weight_and_bias_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
