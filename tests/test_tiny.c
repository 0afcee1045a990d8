/* test_tiny.c -- the fused tiny-net training step (src/net_tiny.c) against train_step_row and
 * the general walk: the same losses, outputs, gradients and parameters bit for bit for every
 * step it takes, the same status, message and untouched state for every step that fails,
 * and proof (net->tiny_steps) that it really ran. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "net.h"

/* The three paths of bp_net_train_step at batch 1. */
enum { TINY, ROW, GENERAL, PATHS };

/* A dense net in -> widths[0] -> ... -> widths[nw - 1], hidden activation act, output
 * activation out_act, set to take path @p path. */
static bp_net *make_net(size_t in, const size_t *widths, size_t nw, int act, int out_act,
                        int path)
{
    bp_net *net;
    assert_status(bp_net_create(&net, in, 11), BP_OK);
    for (size_t i = 0; i < nw; i++)
        assert_status(bp_net_add_dense(net, widths[i], i + 1 < nw ? act : out_act), BP_OK);
    net->tiny_path_off = path != TINY;
    net->row_path_off = path == GENERAL;
    return net;
}

static bp_optimizer *sgd(double lr, double wd)
{
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_SGD), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, lr), BP_OK);
    if (wd > 0) assert_status(bp_optimizer_set(opt, BP_OPT_WEIGHT_DECAY, wd), BP_OK);
    return opt;
}

/* The output activation for loss: for MSE the hidden one (FANN's nets) or, in variant 2,
 * identity. */
static int output_activation(int loss, int act, int variant)
{
    switch (loss) {
    case BP_LOSS_MSE: return variant == 2 ? BP_ACT_IDENTITY : act;
    case BP_LOSS_MAE: return BP_ACT_TANH;
    default: return BP_ACT_IDENTITY; /* Huber, BCE on logits */
    }
}

/* rows x out targets: {0, 1} for BCE, uniform in [-1, 1) otherwise. */
static void fill_targets(float *t, size_t count, int loss, uint64_t *rng)
{
    bp_test_fill_uniform(t, count, -1.0f, 1.0f, rng);
    if (loss == BP_LOSS_BCE_LOGITS)
        for (size_t k = 0; k < count; k++) t[k] = t[k] > 0.0f ? 1.0f : 0.0f;
}

typedef struct shape {
    size_t in, widths[3], nw;
} shape;

/* Does the tiny path run this net through hidden1_step (net_tiny.c)? in -> h -> 1 with
 * in <= 4, h <= 8, MSE and one of its activation pairs. */
static int takes_hidden1(const shape *s, int loss, int act, int out_act)
{
    if (s->nw != 2 || s->in > 4 || s->widths[0] > 8 || s->widths[1] != 1 || loss != BP_LOSS_MSE)
        return 0;
    return (act == BP_ACT_SIGMOID && out_act == BP_ACT_SIGMOID) ||
           (act == BP_ACT_TANH && out_act == BP_ACT_TANH) ||
           (act == BP_ACT_TANH && out_act == BP_ACT_IDENTITY) ||
           (act == BP_ACT_RELU && out_act == BP_ACT_IDENTITY);
}

/* Every activation but softmax, the four losses the tiny path takes, plain SGD with and
 * without weight decay, a frozen layer, one to three layers of odd widths up to 15 (and
 * in -> h -> 1 nets on both sides of hidden1_step's limits): STEPS steps through each path
 * give bit-identical losses, outputs (what bp_net_fit's metrics read), gradients and
 * parameters, and the tiny path ran every step after the first (which binds the optimizer
 * and plans the workspace), through hidden1_step where it applies. */
static void tiny_path_matches_the_row_and_general_paths_bit_for_bit(void **state)
{
    (void)state;
    enum { ROWS = 7, STEPS = 60 };
    static const shape shapes[] = {
        {2, {4, 1, 0}, 2},  {3, {5, 2, 0}, 2}, {1, {1, 0, 0}, 1}, {15, {13, 15, 3}, 3},
        {7, {9, 11, 1}, 3}, {4, {8, 1, 0}, 2}, {1, {3, 1, 0}, 2}, {5, {4, 1, 0}, 2},
        {3, {9, 1, 0}, 2}};
    size_t hidden1_nets = 0;
    static const int losses[] = {BP_LOSS_MSE, BP_LOSS_MAE, BP_LOSS_HUBER, BP_LOSS_BCE_LOGITS};
    float x[ROWS * 15], t[ROWS * 15];
    for (int act = BP_ACT_IDENTITY; act < BP_ACT_SOFTMAX; act++) {
        for (size_t li = 0; li < sizeof losses / sizeof *losses; li++) {
            const int loss = losses[li];
            for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
                for (int variant = 0; variant < 3; variant++) {
                    const shape *s = &shapes[sh];
                    const size_t out = s->widths[s->nw - 1];
                    const int out_act = output_activation(loss, act, variant);
                    uint64_t rng = 500u + (uint64_t)(act * 1000 + loss * 100) + sh * 10 + variant;
                    bp_test_fill_uniform(x, ROWS * s->in, -1.0f, 1.0f, &rng);
                    fill_targets(t, ROWS * out, loss, &rng);
                    bp_net *net[PATHS];
                    bp_optimizer *opt[PATHS];
                    for (int p = 0; p < PATHS; p++) {
                        net[p] = make_net(s->in, s->widths, s->nw, act, out_act, p);
                        opt[p] = sgd(variant == 1 ? 0.02 : 0.05, variant == 1 ? 1e-2 : 0.0);
                        if (variant == 2 && s->nw > 1)
                            assert_status(bp_layer_set(bp_net_layer(net[p], 0),
                                                       BP_LAYER_TRAINABLE, 0), BP_OK);
                    }
                    for (int k = 0; k < STEPS; k++) {
                        const size_t r = (size_t)k % ROWS;
                        float value[PATHS];
                        for (int p = 0; p < PATHS; p++) {
                            const bp_status st = bp_net_train_step(
                                net[p], opt[p], loss, x + r * s->in, t + r * out, 1, &value[p]);
                            if (st != BP_OK)
                                print_message("act %d loss %d shape %zu variant %d step %d "
                                              "path %d: %s\n", act, loss, sh, variant, k, p,
                                              bp_net_last_error(net[p]));
                            assert_int_equal(st, BP_OK);
                        }
                        for (int p = 1; p < PATHS; p++) {
                            assert_memory_equal(&value[0], &value[p], sizeof value[0]);
                            assert_memory_equal(net[0]->ws.y[s->nw - 1],
                                                net[p]->ws.y[s->nw - 1], out * sizeof(float));
                        }
                    }
                    size_t np = 0;
                    const float *p0 = bp_net_params(net[TINY], &np);
                    for (int p = 1; p < PATHS; p++) {
                        assert_memory_equal(p0, bp_net_params(net[p], NULL), np * sizeof(float));
                        assert_memory_equal(bp_net_grads(net[TINY], NULL),
                                            bp_net_grads(net[p], NULL), np * sizeof(float));
                        assert_int_equal(bp_optimizer_step_count(opt[p]), STEPS);
                        assert_int_equal(net[p]->tiny_steps, 0);
                    }
                    assert_int_equal(bp_optimizer_step_count(opt[TINY]), STEPS);
                    assert_int_equal(net[TINY]->tiny_steps, STEPS - 1);
                    const int h1 = takes_hidden1(s, loss, act, out_act);
                    assert_int_equal(net[TINY]->tiny_hidden1_steps, h1 ? STEPS - 1 : 0);
                    hidden1_nets += (size_t)h1;
                    for (int p = 0; p < PATHS; p++) {
                        bp_optimizer_free(opt[p]);
                        bp_net_free(net[p]);
                    }
                }
            }
        }
    }
    /* 3 shapes x (2 same-activation pairs x variants 0, 1 + 2 pairs with a linear output x
     * variant 2) */
    assert_int_equal(hidden1_nets, 3 * (2 * 2 + 2 * 1));
}

/* One step on a net whose optimizer is bound (so that the tiny path would be entered) that
 * must fail on every path with @p expected: the same message on each, parameters, the
 * optimizer's step count and the tiny path's count unchanged, and the same gradients. */
static void expect_same_failure(bp_net *const net[PATHS], bp_optimizer *const opt[PATHS],
                                int loss, const float *x, const float *y, size_t n,
                                bp_status expected)
{
    char msg[PATHS][BP__ERR_CAP];
    size_t np = 0;
    (void)bp_net_params(net[0], &np);
    float *before = malloc(np * sizeof *before);
    assert_non_null(before);
    for (int p = 0; p < PATHS; p++) {
        const float *params = bp_net_params(net[p], NULL);
        memcpy(before, params, np * sizeof *before);
        const uint64_t steps = bp_optimizer_step_count(opt[p]);
        const uint64_t tiny = net[p]->tiny_steps;
        float value = -1.0f;
        assert_status(bp_net_train_step(net[p], opt[p], loss, x, y, n, &value), expected);
        snprintf(msg[p], sizeof msg[p], "%s", bp_net_last_error(net[p]));
        assert_memory_equal(before, params, np * sizeof *before);
        assert_int_equal(bp_optimizer_step_count(opt[p]), steps);
        assert_int_equal(net[p]->tiny_steps, tiny);
        assert_true(value == -1.0f);
    }
    for (int p = 1; p < PATHS; p++) {
        assert_string_equal(msg[0], msg[p]);
        assert_memory_equal(bp_net_grads(net[0], NULL), bp_net_grads(net[p], NULL),
                            np * sizeof(float));
    }
    free(before);
}

/* Three in -> in -> 1 nets, one per path, hidden activation act (identity: the tiny path
 * runs layers_step; tanh or ReLU: hidden1_step), linear output, after two good steps: the
 * first binds the optimizer, the second goes through the tiny path. */
static void make_bound_nets(bp_net *net[PATHS], bp_optimizer *opt[PATHS], double lr, size_t in,
                            int act)
{
    const size_t widths[2] = {in, 1};
    const float x[2] = {0.1f, -0.05f}, y[1] = {0.1f};
    for (int p = 0; p < PATHS; p++) {
        net[p] = make_net(in, widths, 2, act, BP_ACT_IDENTITY, p);
        opt[p] = sgd(lr, 0.0);
        for (int k = 0; k < 2; k++)
            assert_status(bp_net_train_step(net[p], opt[p], BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    }
    assert_int_equal(net[TINY]->tiny_steps, 1);
    assert_int_equal(net[TINY]->tiny_hidden1_steps, act != BP_ACT_IDENTITY);
}

static void free_nets(bp_net *net[PATHS], bp_optimizer *opt[PATHS])
{
    for (int p = 0; p < PATHS; p++) {
        bp_optimizer_free(opt[p]);
        bp_net_free(net[p]);
    }
}

/* Bad arguments and data, a finite loss whose weight gradient overflows, a loss that
 * overflows: each fails alike on the three paths and leaves the parameters as they were,
 * whether the tiny path would have run layers_step or hidden1_step. */
static void tiny_path_failures_match_the_other_paths(void **state)
{
    (void)state;
    static const int acts[2] = {BP_ACT_IDENTITY, BP_ACT_TANH};
    bp_net *net[PATHS];
    bp_optimizer *opt[PATHS];
    const float x[2] = {0.5f, -1.0f}, nan_x[2] = {0.5f, NAN}, inf_x[2] = {-INFINITY, 0};
    const float y[1] = {0.25f}, nan_y[1] = {NAN}, inf_y[1] = {INFINITY};
    for (int a = 0; a < 2; a++) {
        make_bound_nets(net, opt, 0.1, 2, acts[a]);
        expect_same_failure(net, opt, BP_LOSS_MSE, nan_x, y, 1, BP_ERR_NONFINITE);
        expect_same_failure(net, opt, BP_LOSS_MAE, inf_x, y, 1, BP_ERR_NONFINITE);
        expect_same_failure(net, opt, BP_LOSS_MSE, x, nan_y, 1, BP_ERR_NONFINITE);
        expect_same_failure(net, opt, BP_LOSS_BCE_LOGITS, x, inf_y, 1, BP_ERR_NONFINITE);
        expect_same_failure(net, opt, BP_LOSS_MSE, NULL, y, 1, BP_ERR_INVALID_ARG);
        expect_same_failure(net, opt, BP_LOSS_MSE, x, NULL, 1, BP_ERR_INVALID_ARG);
        expect_same_failure(net, opt, BP_LOSS_MSE, x, y, 0, BP_ERR_INVALID_ARG);
        expect_same_failure(net, opt, BP_LOSS_MSE + 100, x, y, 1, BP_ERR_INVALID_ARG);
        expect_same_failure(net, opt, BP_LOSS_SOFTMAX_CE, x, y, 1, BP_ERR_STATE);

        /* An optimizer bound to another net's shape. */
        bp_net *other;
        assert_status(bp_net_create(&other, 3, 1), BP_OK);
        assert_status(bp_net_add_dense(other, 1, BP_ACT_IDENTITY), BP_OK);
        const float x3[3] = {1, 2, 3};
        bp_optimizer *wrong[PATHS];
        for (int p = 0; p < PATHS; p++) {
            wrong[p] = sgd(0.1, 0.0);
            assert_status(bp_net_train_step(other, wrong[p], BP_LOSS_MSE, x3, y, 1, NULL),
                          BP_OK);
        }
        expect_same_failure(net, wrong, BP_LOSS_MSE, x, y, 1, BP_ERR_STATE);
        for (int p = 0; p < PATHS; p++) bp_optimizer_free(wrong[p]);
        bp_net_free(other);

        if (acts[a] == BP_ACT_IDENTITY) {
            /* Hidden values that overflow to Inf, so that the loss overflows. */
            const float big[4] = {3e37f, 3e37f, 3e37f, 3e37f};
            const float huge[4] = {3e38f, 3e38f, 3e38f, 3e38f};
            const float x10[2] = {10, 10}, y0[1] = {0};
            for (int p = 0; p < PATHS; p++)
                assert_status(bp_layer_set_weights(bp_net_layer(net[p], 0), big, 4), BP_OK);
            expect_same_failure(net, opt, BP_LOSS_MSE, x10, y0, 1, BP_ERR_NONFINITE);
            for (int p = 0; p < PATHS; p++)
                assert_status(bp_layer_set_weights(bp_net_layer(net[p], 0), huge, 4), BP_OK);
            expect_same_failure(net, opt, BP_LOSS_MSE, x10, y0, 1, BP_ERR_NONFINITE);
            expect_same_failure(net, opt, BP_LOSS_HUBER, x10, y0, 1, BP_ERR_NONFINITE);
        }
        free_nets(net, opt);

        /* 1-1-1 nets (identity or ReLU hidden units) with a finite loss and a gradient that
         * overflows: in the first layer's dW = dz x only (x = 1e38, dz ~ 1e4), in dz itself
         * (dx = 2e19 * 1e20), in the second layer's dW only (dz 2e10, its x 1e30). */
        const float w_small[1] = {1e-38f}, w_100[1] = {100.0f}, w_1[1] = {1.0f};
        const float w_e20[1] = {1e20f}, w_e30[1] = {1e30f}, w_em20[1] = {1e-20f};
        const float x_e38[1] = {1e38f}, x_tenth[1] = {0.1f}, x_1[1] = {1.0f}, t0[1] = {0};
        const float *const w0s[3] = {w_small, w_1, w_e30}, *const w1s[3] = {w_100, w_e20, w_em20};
        const float *const xs[3] = {x_e38, x_tenth, x_1};
        for (int c = 0; c < 3; c++) {
            make_bound_nets(net, opt, 0.01, 1, a == 0 ? BP_ACT_IDENTITY : BP_ACT_RELU);
            for (int p = 0; p < PATHS; p++) {
                assert_status(bp_layer_set_weights(bp_net_layer(net[p], 0), w0s[c], 1), BP_OK);
                assert_status(bp_layer_set_weights(bp_net_layer(net[p], 1), w1s[c], 1), BP_OK);
            }
            const float *pred;
            float value;
            assert_status(bp_net_forward(net[GENERAL], xs[c], 1, &pred), BP_OK);
            assert_status(bp_loss_eval(BP_LOSS_MSE, 0.0, pred, t0, 1, 1, &value, NULL), BP_OK);
            assert_true(isfinite(value)); /* the loss itself is finite */
            expect_same_failure(net, opt, BP_LOSS_MSE, xs[c], t0, 1, BP_ERR_NONFINITE);
            free_nets(net, opt);
        }
    }
}

/* A learning rate of 1000 on large inputs: the weights grow to Inf within a few steps and
 * the steps then fail. Every path takes the same sequence of statuses, messages, losses and
 * parameters. */
static void diverging_training_fails_alike_on_every_path(void **state)
{
    (void)state;
    static const int acts[2] = {BP_ACT_IDENTITY, BP_ACT_TANH};
    for (int a = 0; a < 2; a++) {
        bp_net *net[PATHS];
        bp_optimizer *opt[PATHS];
        make_bound_nets(net, opt, 1000.0, 2, acts[a]);
        const float x[4] = {3e3f, -2e3f, 1e3f, 4e3f}, y[2] = {1e3f, -5e2f};
        int failures = 0;
        for (int k = 0; k < 12; k++) {
            bp_status st[PATHS];
            float value[PATHS] = {0};
            for (int p = 0; p < PATHS; p++)
                st[p] = bp_net_train_step(net[p], opt[p], BP_LOSS_MSE, x + 2 * (k % 2),
                                          y + k % 2, 1, &value[p]);
            size_t np = 0;
            const float *p0 = bp_net_params(net[TINY], &np);
            for (int p = 1; p < PATHS; p++) {
                assert_int_equal(st[0], st[p]);
                assert_memory_equal(&value[0], &value[p], sizeof value[0]);
                assert_string_equal(bp_net_last_error(net[0]), bp_net_last_error(net[p]));
                assert_memory_equal(p0, bp_net_params(net[p], NULL), np * sizeof(float));
                assert_int_equal(bp_optimizer_step_count(opt[0]),
                                 bp_optimizer_step_count(opt[p]));
            }
            failures += st[0] != BP_OK;
        }
        assert_true(failures > 0); /* the test reached the failing steps */
        assert_true(net[TINY]->tiny_steps > 1);
        free_nets(net, opt);
    }
}

/* Settings the tiny path does not cover send the step down the other paths (the results
 * are those paths' own, compared in test_train.c). */
static void tiny_path_is_not_taken_outside_its_cases(void **state)
{
    (void)state;
    static const size_t narrow[2] = {4, 1}, wide[2] = {16, 1}, soft[2] = {4, 3};
    const float x[4] = {0.5f, -1.0f, 0.25f, 1.0f}, y[3] = {0, 1, 0};
    typedef struct setup {
        const size_t *widths;
        int out_act, loss, opt_kind, batch;
        double momentum;
        int net_key;
    } setup;
    static const setup cases[] = {
        {wide, BP_ACT_SIGMOID, BP_LOSS_MSE, BP_OPTIMIZER_SGD, 1, 0.0, 0},
        {narrow, BP_ACT_SIGMOID, BP_LOSS_MSE, BP_OPTIMIZER_SGD, 1, 0.9, 0},
        {narrow, BP_ACT_SIGMOID, BP_LOSS_MSE, BP_OPTIMIZER_ADAM, 1, 0.0, 0},
        {narrow, BP_ACT_SIGMOID, BP_LOSS_MSE, BP_OPTIMIZER_SGD, 2, 0.0, 0},
        {soft, BP_ACT_SOFTMAX, BP_LOSS_SOFTMAX_CE, BP_OPTIMIZER_SGD, 1, 0.0, 0},
        {soft, BP_ACT_SOFTMAX, BP_LOSS_MSE, BP_OPTIMIZER_SGD, 1, 0.0, 0},
        {narrow, BP_ACT_SIGMOID, BP_LOSS_MSE, BP_OPTIMIZER_SGD, 1, 0.0, BP_NET_CLIP_NORM},
        {narrow, BP_ACT_SIGMOID, BP_LOSS_MSE, BP_OPTIMIZER_SGD, 1, 0.0, BP_NET_CLIP_VALUE},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const setup *s = &cases[c];
        bp_net *net = make_net(2, s->widths, 2, BP_ACT_TANH, s->out_act, TINY);
        if (s->net_key != 0) assert_status(bp_net_set(net, s->net_key, 1.0), BP_OK);
        bp_optimizer *opt;
        assert_status(bp_optimizer_create(&opt, s->opt_kind), BP_OK);
        if (s->momentum > 0) assert_status(bp_optimizer_set(opt, BP_OPT_MOMENTUM, 0.9), BP_OK);
        for (int k = 0; k < 3; k++)
            assert_status(bp_net_train_step(net, opt, s->loss, x, y, (size_t)s->batch, NULL),
                          BP_OK);
        assert_int_equal(net->tiny_steps, 0);
        bp_optimizer_free(opt);
        bp_net_free(net);
    }
    /* An L2 penalty switched on after the tiny path has run turns it off. */
    bp_net *net = make_net(2, narrow, 2, BP_ACT_TANH, BP_ACT_SIGMOID, TINY);
    bp_optimizer *opt = sgd(0.1, 0.0);
    for (int k = 0; k < 3; k++)
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    assert_int_equal(net->tiny_steps, 2);
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_L2, 1e-3), BP_OK);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    assert_int_equal(net->tiny_steps, 2);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(tiny_path_matches_the_row_and_general_paths_bit_for_bit),
        bp_add_test(tiny_path_failures_match_the_other_paths),
        bp_add_test(diverging_training_fails_alike_on_every_path),
        bp_add_test(tiny_path_is_not_taken_outside_its_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
