/* test_loss.c -- bp_loss_eval: values computed by hand, gradients, stability, bad input. */
#include "test_util.h"

#include <math.h>
#include <string.h>

static void mse_mae_huber_match_hand_values(void **state)
{
    (void)state;
    const float p[4] = {1, 2, 3, 4}, t[4] = {1.5f, 2, 1, 4.25f};
    float v, g[4];
    /* d = -0.5, 0, 2, -0.25 over n*w = 4 elements. */
    assert_status(bp_loss_eval(BP_LOSS_MSE, 0, p, t, 2, 2, &v, g), BP_OK);
    assert_close(v, (0.25 + 0 + 4 + 0.0625) / 4, 1e-6, 0);
    assert_close(g[0], 2 * -0.5 / 4, 1e-6, 0);
    assert_close(g[2], 2 * 2.0 / 4, 1e-6, 0);
    assert_status(bp_loss_eval(BP_LOSS_MAE, 0, p, t, 2, 2, &v, g), BP_OK);
    assert_close(v, (0.5 + 0 + 2 + 0.25) / 4, 1e-6, 0);
    assert_close(g[0], -0.25, 1e-6, 0);
    assert_close(g[1], 0, 0, 0);
    assert_close(g[2], 0.25, 1e-6, 0);
    /* Huber, delta 1: 0.125, 0, 1*(2 - 0.5) = 1.5, 0.03125. */
    assert_status(bp_loss_eval(BP_LOSS_HUBER, 1.0, p, t, 2, 2, &v, g), BP_OK);
    assert_close(v, (0.125 + 0 + 1.5 + 0.03125) / 4, 1e-6, 0);
    assert_close(g[0], -0.5 / 4, 1e-6, 0);
    assert_close(g[2], 1.0 / 4, 1e-6, 0);
    /* delta 3: all quadratic. */
    assert_status(bp_loss_eval(BP_LOSS_HUBER, 3.0, p, t, 2, 2, &v, NULL), BP_OK);
    assert_close(v, 0.5 * (0.25 + 4 + 0.0625) / 4, 1e-6, 0);
}

static void bce_logits_is_stable_for_large_logits(void **state)
{
    (void)state;
    const float z[4] = {0, 100, -100, 2}, t[4] = {1, 1, 1, 0};
    float v, g[4];
    assert_status(bp_loss_eval(BP_LOSS_BCE_LOGITS, 0, z, t, 4, 1, &v, g), BP_OK);
    /* log 2 + 0 + 100 + (2 + log(1 + e^-2)), over 4. */
    const double expect = (log(2.0) + 0 + 100 + 2 + log1p(exp(-2.0))) / 4;
    assert_close(v, expect, 1e-5, 0);
    assert_true(isfinite(g[1]) && isfinite(g[2]));
    assert_close(g[0], (0.5 - 1) / 4, 1e-6, 0);
    assert_close(g[2], (0 - 1) / 4.0, 1e-6, 1e-7);
}

static void softmax_ce_one_hot_and_sparse_agree(void **state)
{
    (void)state;
    const float p[6] = {0.7f, 0.2f, 0.1f, 0.1f, 0.1f, 0.8f};
    const float onehot[6] = {1, 0, 0, 0, 0, 1}, idx[2] = {0, 2};
    float v1, v2, g1[6], g2[6];
    assert_status(bp_loss_eval(BP_LOSS_SOFTMAX_CE, 0, p, onehot, 2, 3, &v1, g1), BP_OK);
    assert_status(bp_loss_eval(BP_LOSS_SPARSE_SOFTMAX_CE, 0, p, idx, 2, 3, &v2, g2), BP_OK);
    assert_close(v1, -(log(0.7) + log(0.8)) / 2, 1e-6, 0);
    assert_close(v1, v2, 1e-7, 0);
    for (int k = 0; k < 6; k++)
        assert_close(g1[k], g2[k], 1e-7, 0);
    assert_close(g1[0], -1 / (2 * 0.7), 1e-6, 0);
    assert_close(g1[1], 0, 0, 0);
}

static void bad_input_is_rejected_with_a_message(void **state)
{
    (void)state;
    const float p[2] = {0.5f, 0.5f}, t[2] = {1, 0}, nan2[2] = {(float)NAN, 0};
    const float badidx[1] = {2}, fracidx[1] = {0.5f};
    float v = 42;
    assert_status(bp_loss_eval(0, 0, p, t, 1, 2, &v, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_loss_eval(99, 0, p, t, 1, 2, &v, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_loss_eval(BP_LOSS_MSE, 0, NULL, t, 1, 2, &v, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_loss_eval(BP_LOSS_MSE, 0, p, NULL, 1, 2, &v, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_loss_eval(BP_LOSS_MSE, 0, p, t, 1, 2, NULL, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_loss_eval(BP_LOSS_MSE, 0, p, t, 0, 2, &v, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_loss_eval(BP_LOSS_MSE, 0, p, t, 1, 0, &v, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_loss_eval(BP_LOSS_HUBER, 0, p, t, 1, 2, &v, NULL), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_loss_eval(BP_LOSS_HUBER, (double)NAN, p, t, 1, 2, &v, NULL),
                  BP_ERR_OUT_OF_RANGE);
    assert_status(bp_loss_eval(BP_LOSS_MSE, 0, nan2, t, 1, 2, &v, NULL), BP_ERR_NONFINITE);
    assert_status(bp_loss_eval(BP_LOSS_MSE, 0, p, nan2, 1, 2, &v, NULL), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_last_error(), "row 0, column 0"));
    assert_status(bp_loss_eval(BP_LOSS_SPARSE_SOFTMAX_CE, 0, p, badidx, 1, 2, &v, NULL),
                  BP_ERR_INDEX);
    assert_non_null(strstr(bp_last_error(), "class index 2"));
    assert_status(bp_loss_eval(BP_LOSS_SPARSE_SOFTMAX_CE, 0, p, fracidx, 1, 2, &v, NULL),
                  BP_ERR_INDEX);
    assert_status(bp_loss_eval(BP_LOSS_SPARSE_SOFTMAX_CE, 0, p, nan2, 1, 2, &v, NULL),
                  BP_ERR_NONFINITE);
    assert_close(v, 42, 0, 0); /* untouched on failure */
}

/* Soft targets whose rows do not sum to 1 (issue 17): the fused softmax + CE gradient of
 * bp_net_compute_grads equals the unfused one (bp_loss_eval's dL/dp through the softmax
 * layer), which is the exact gradient of L = -sum t log p; with 0.1's (p - t) / n the two
 * differed by p (s - 1) / n. */
static void softmax_ce_unnormalised_targets_fused_matches_loss(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 3, 5), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_SOFTMAX), BP_OK);
    const float x[6] = {0.5f, -1, 0.25f, 1, 0.3f, -0.7f};
    const float t[8] = {0.2f, 0.9f, 0, 0.4f, /* sums to 1.5 */ 0, 0.1f, 0.2f, 0.1f /* 0.4 */};
    float fused_loss;
    size_t np;
    assert_status(bp_net_compute_grads(net, BP_LOSS_SOFTMAX_CE, x, t, 2, &fused_loss), BP_OK);
    const float *g = bp_net_grads(net, &np);
    float fused[16 + 4];
    assert_int_equal(np, 16);
    memcpy(fused, g, np * sizeof(float));
    const float *y;
    float v, dy[8];
    assert_status(bp_net_forward(net, x, 2, &y), BP_OK);
    assert_status(bp_loss_eval(BP_LOSS_SOFTMAX_CE, 0, y, t, 2, 4, &v, dy), BP_OK);
    assert_close(v, fused_loss, 1e-6, 1e-7);
    assert_status(bp_net_zero_grad(net), BP_OK);
    assert_status(bp_net_backward(net, dy, 2), BP_OK);
    double diff = 0.0, scale = 0.0;
    for (size_t k = 0; k < np; k++) {
        diff = fmax(diff, fabs((double)g[k] - (double)fused[k]));
        scale = fmax(scale, fabs((double)g[k]));
    }
    assert_true(scale > 1e-3);
    assert_true(diff <= 1e-5 * scale);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(mse_mae_huber_match_hand_values),
        bp_add_test(bce_logits_is_stable_for_large_logits),
        bp_add_test(softmax_ce_one_hot_and_sparse_agree),
        bp_add_test(softmax_ce_unnormalised_targets_fused_matches_loss),
        bp_add_test(bad_input_is_rejected_with_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
