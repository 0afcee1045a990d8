/* test_train.c -- bp_net_train_step end to end: learning XOR and a linear map, determinism,
 * the fused softmax-CE path, clipping, frozen layers, no allocation in the steady state, and
 * bad input that must leave the network untouched. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "layer.h"
#include "net.h"
#include "layer_kinds.h"

static const float xor_x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
static const float xor_y[4] = {0, 1, 1, 0};

static bp_optimizer *make_opt(int kind, double lr, double momentum)
{
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, kind), BP_OK);
    if (kind != BP_OPTIMIZER_IRPROP_MINUS)
        assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, lr), BP_OK);
    if (momentum > 0) assert_status(bp_optimizer_set(opt, BP_OPT_MOMENTUM, momentum), BP_OK);
    return opt;
}

/* Train 2-8-1 on XOR; return 1 if all four outputs are on the right side of 0.5. */
static int xor_solved(int kind, double lr, double momentum, uint64_t seed, int steps)
{
    bp_net *net;
    assert_status(bp_net_create(&net, 2, seed), BP_OK);
    assert_status(bp_net_add_dense(net, 8, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_SIGMOID), BP_OK);
    bp_optimizer *opt = make_opt(kind, lr, momentum);
    for (int i = 0; i < steps; i++)
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, xor_x, xor_y, 4, NULL), BP_OK);
    float out[4];
    assert_status(bp_net_predict(net, xor_x, 4, out, 4), BP_OK);
    int ok = 1;
    for (int i = 0; i < 4; i++)
        ok &= (out[i] > 0.5f) == (xor_y[i] > 0.5f);
    bp_optimizer_free(opt);
    bp_net_free(net);
    return ok;
}

static void xor_is_learned_by_sgd_momentum_adam_and_irprop(void **state)
{
    (void)state;
    int sgd = 0, adam = 0, rprop = 0;
    for (uint64_t seed = 1; seed <= 10; seed++) {
        sgd += xor_solved(BP_OPTIMIZER_SGD, 0.5, 0.9, seed, 1000);
        adam += xor_solved(BP_OPTIMIZER_ADAM, 0.05, 0, seed, 1000);
        rprop += xor_solved(BP_OPTIMIZER_IRPROP_MINUS, 0, 0, seed, 300);
    }
    print_message("XOR solved from 10 seeds: SGD+momentum %d, Adam %d, iRprop- %d\n", sgd, adam,
                  rprop);
    assert_true(sgd >= 9);
    assert_true(adam >= 9);
    assert_true(rprop >= 9);
}

static void linear_regression_recovers_true_weights(void **state)
{
    (void)state;
    enum { N = 256, IN = 3 };
    const float w_true[IN] = {1.5f, -2.0f, 0.25f}, b_true = 0.75f;
    static float x[N * IN], y[N];
    uint64_t st = 77;
    bp_test_fill_uniform(x, N * IN, -1, 1, &st);
    for (int i = 0; i < N; i++) {
        y[i] = b_true;
        for (int k = 0; k < IN; k++)
            y[i] += w_true[k] * x[i * IN + k];
    }
    bp_net *net;
    assert_status(bp_net_create(&net, IN, 3), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.3, 0.5);
    float loss = 1;
    for (int i = 0; i < 400; i++)
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, N, &loss), BP_OK);
    float w[IN], b;
    assert_status(bp_layer_get_weights(bp_net_layer(net, 0), w, IN), BP_OK);
    assert_status(bp_layer_get_biases(bp_net_layer(net, 0), &b, 1), BP_OK);
    for (int k = 0; k < IN; k++)
        assert_close(w[k], w_true[k], 0, 1e-3);
    assert_close(b, b_true, 0, 1e-3);
    assert_true(loss < 1e-6f);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void train(bp_net *net, bp_optimizer *opt, int steps)
{
    enum { N = 32 };
    float x[N * 4], y[N];
    uint64_t st = 5;
    for (int s = 0; s < steps; s++) {
        bp_test_fill_uniform(x, N * 4, -1, 1, &st);
        for (int i = 0; i < N; i++)
            y[i] = (float)(i % 3);
        assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL), BP_OK);
    }
}

static bp_net *small_classifier(uint64_t seed)
{
    bp_net *net;
    assert_status(bp_net_create(&net, 4, seed), BP_OK);
    assert_status(bp_net_add_dense(net, 16, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    return net;
}

static void same_seed_gives_bit_identical_weights_after_100_steps(void **state)
{
    (void)state;
    bp_net *a = small_classifier(42), *b = small_classifier(42), *c = small_classifier(43);
    bp_optimizer *oa = make_opt(BP_OPTIMIZER_ADAM, 0.01, 0),
                 *ob = make_opt(BP_OPTIMIZER_ADAM, 0.01, 0),
                 *oc = make_opt(BP_OPTIMIZER_ADAM, 0.01, 0);
    train(a, oa, 100);
    train(b, ob, 100);
    train(c, oc, 100);
    size_t np;
    const float *pa = bp_net_params(a, &np), *pb = bp_net_params(b, NULL),
                *pc = bp_net_params(c, NULL);
    assert_memory_equal(pa, pb, np * sizeof(float));
    assert_memory_not_equal(pa, pc, np * sizeof(float));
    assert_int_equal(bp_optimizer_step_count(oa), 100);
    bp_optimizer_free(oa);
    bp_optimizer_free(ob);
    bp_optimizer_free(oc);
    bp_net_free(a);
    bp_net_free(b);
    bp_net_free(c);
}

static void fused_softmax_ce_gradients_match_the_unfused_path(void **state)
{
    (void)state;
    enum { N = 5 };
    bp_net *net = small_classifier(9);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.0, 0); /* lr 0: gradients only */
    float x[N * 4], y[N] = {0, 1, 2, 1, 0}, onehot[N * 3] = {0};
    uint64_t st = 3;
    bp_test_fill_uniform(x, N * 4, -1, 1, &st);
    for (int i = 0; i < N; i++)
        onehot[i * 3 + (int)y[i]] = 1;
    size_t np;
    const float *g = bp_net_grads(net, &np);
    float *fused = malloc(np * sizeof(float)), *fused1h = malloc(np * sizeof(float));
    assert_non_null(fused);
    assert_non_null(fused1h);
    float lf, l1h, lu;
    assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &lf), BP_OK);
    memcpy(fused, g, np * sizeof(float));
    assert_status(bp_net_train_step(net, opt, BP_LOSS_SOFTMAX_CE, x, onehot, N, &l1h), BP_OK);
    memcpy(fused1h, g, np * sizeof(float));
    const float *out;
    float dy[N * 3];
    assert_status(bp_net_forward(net, x, N, &out), BP_OK);
    assert_status(bp_loss_eval(BP_LOSS_SOFTMAX_CE, 0, out, onehot, N, 3, &lu, dy), BP_OK);
    assert_status(bp_net_backward(net, dy, N), BP_OK);
    assert_close(lf, lu, 1e-5, 0);
    assert_close(l1h, lu, 1e-5, 0);
    for (size_t k = 0; k < np; k++) {
        assert_close(fused[k], g[k], 1e-4, 1e-6);
        assert_close(fused1h[k], g[k], 1e-4, 1e-6);
    }
    free(fused);
    free(fused1h);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void compute_grads_then_step_equals_train_step(void **state)
{
    (void)state;
    enum { N = 6 };
    bp_net *a = small_classifier(21), *b = small_classifier(21);
    bp_optimizer *oa = make_opt(BP_OPTIMIZER_ADAM, 0.01, 0),
                 *ob = make_opt(BP_OPTIMIZER_ADAM, 0.01, 0);
    float x[N * 4], y[N] = {0, 1, 2, 2, 1, 0};
    uint64_t st = 8;
    bp_test_fill_uniform(x, N * 4, -1, 1, &st);
    float la, lb;
    for (int i = 0; i < 3; i++) {
        assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &la), BP_OK);
        assert_status(bp_net_compute_grads(b, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &lb), BP_OK);
        assert_status(bp_optimizer_step(ob, b), BP_OK);
        assert_true(la == lb);
    }
    const size_t np = bp_net_param_count(a);
    assert_memory_equal(bp_net_params(a, NULL), bp_net_params(b, NULL), np * sizeof(float));
    /* Accumulating two half batches gives the sum of their mean gradients. */
    float *g1 = malloc(np * sizeof(float));
    assert_non_null(g1);
    assert_status(bp_net_compute_grads(b, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, 3, NULL), BP_OK);
    memcpy(g1, bp_net_grads(b, NULL), np * sizeof(float));
    assert_status(bp_net_compute_grads(b, BP_LOSS_SPARSE_SOFTMAX_CE, x + 12, y + 3, 3, NULL),
                  BP_OK);
    for (size_t k = 0; k < np; k++)
        g1[k] += bp_net_grads(b, NULL)[k];
    assert_status(bp_net_set(b, BP_NET_ACCUMULATE_GRADS, 1), BP_OK);
    assert_status(bp_net_zero_grad(b), BP_OK);
    assert_status(bp_net_compute_grads(b, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, 3, NULL), BP_OK);
    assert_status(bp_net_compute_grads(b, BP_LOSS_SPARSE_SOFTMAX_CE, x + 12, y + 3, 3, NULL),
                  BP_OK);
    for (size_t k = 0; k < np; k++)
        assert_close(bp_net_grads(b, NULL)[k], g1[k], 1e-5, 1e-7);
    assert_status(bp_net_compute_grads(NULL, BP_LOSS_MSE, x, y, 1, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_compute_grads(b, BP_LOSS_MSE, NULL, y, 1, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_compute_grads(b, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, 0, NULL),
                  BP_ERR_INVALID_ARG);
    free(g1);
    bp_optimizer_free(oa);
    bp_optimizer_free(ob);
    bp_net_free(a);
    bp_net_free(b);
}

typedef struct hook_log {
    int calls, last_status, fail_with;
    size_t last_rows;
    float scale, loss_out;
} hook_log;

static int test_hook(void *user, bp_net *net, int status, size_t rows, float *loss_value)
{
    hook_log *h = user;
    h->calls++;
    h->last_status = status;
    h->last_rows = rows;
    if (status != BP_OK) return status;
    size_t np;
    float *g = bp_net_grads(net, &np);
    for (size_t k = 0; k < np; k++)
        g[k] *= h->scale;
    *loss_value = h->loss_out;
    return h->fail_with;
}

static void grad_hook_runs_between_gradients_and_update(void **state)
{
    (void)state;
    enum { N = 6 };
    bp_net *a = small_classifier(31), *b = small_classifier(31);
    bp_optimizer *oa = make_opt(BP_OPTIMIZER_SGD, 0.1, 0), *ob = make_opt(BP_OPTIMIZER_SGD, 0.2, 0);
    float x[N * 4], y[N] = {0, 1, 2, 2, 1, 0};
    uint64_t st = 9;
    bp_test_fill_uniform(x, N * 4, -1, 1, &st);
    /* Doubling the gradients in the hook with rate 0.1 equals rate 0.2 without a hook. */
    hook_log h = {.scale = 2.0f, .loss_out = 1.25f};
    assert_status(bp_net_set_grad_hook(a, test_hook, &h), BP_OK);
    float la, lb;
    assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &la), BP_OK);
    assert_status(bp_net_train_step(b, ob, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &lb), BP_OK);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.last_rows, N);
    assert_true(la == 1.25f); /* the hook's loss is the step's */
    const size_t np = bp_net_param_count(a);
    for (size_t k = 0; k < np; k++)
        assert_close(bp_net_params(a, NULL)[k], bp_net_params(b, NULL)[k], 1e-6, 1e-7);
    /* A hook error stops the step before the update. */
    float *before = malloc(np * sizeof(float));
    assert_non_null(before);
    memcpy(before, bp_net_params(a, NULL), np * sizeof(float));
    h.fail_with = BP_ERR_IO;
    assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &la), BP_ERR_IO);
    assert_memory_equal(before, bp_net_params(a, NULL), np * sizeof(float));
    /* A local failure still calls the hook (collectives stay in step) and stands. */
    h.fail_with = BP_OK;
    x[5] = (float)NAN;
    assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &la),
                  BP_ERR_NONFINITE);
    assert_int_equal(h.calls, 3);
    assert_int_equal(h.last_status, BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(a), "row 1"));
    assert_memory_equal(before, bp_net_params(a, NULL), np * sizeof(float));
    /* A non-finite loss from the hook is refused; removing the hook restores plain steps. */
    x[5] = 0.5f;
    h.loss_out = (float)INFINITY;
    assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &la),
                  BP_ERR_NONFINITE);
    assert_status(bp_net_set_grad_hook(a, NULL, NULL), BP_OK);
    assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &la), BP_OK);
    assert_int_equal(h.calls, 4);
    /* compute_grads never calls it. */
    assert_status(bp_net_set_grad_hook(b, test_hook, &h), BP_OK);
    assert_status(bp_net_compute_grads(b, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL), BP_OK);
    assert_int_equal(h.calls, 4);
    assert_status(bp_net_set_grad_hook(NULL, test_hook, &h), BP_ERR_INVALID_ARG);
    free(before);
    bp_optimizer_free(oa);
    bp_optimizer_free(ob);
    bp_net_free(a);
    bp_net_free(b);
}

static double grad_norm(bp_net *net)
{
    size_t np;
    const float *g = bp_net_grads(net, &np);
    double s = 0;
    for (size_t k = 0; k < np; k++)
        s += (double)g[k] * (double)g[k];
    return sqrt(s);
}

static void clipping_bounds_the_global_norm_and_each_value(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 8, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.0, 0);
    const float x[2] = {10, -10}, y[1] = {1000};
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    const double unclipped = grad_norm(net);
    assert_true(unclipped > 1.0);
    assert_status(bp_net_set(net, BP_NET_CLIP_NORM, 1.0), BP_OK);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    assert_close(grad_norm(net), 1.0, 1e-5, 0);
    assert_status(bp_net_set(net, BP_NET_CLIP_NORM, 0), BP_OK);
    assert_status(bp_net_set(net, BP_NET_CLIP_VALUE, 0.01), BP_OK);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    size_t np;
    const float *g = bp_net_grads(net, &np);
    int at_bound = 0;
    for (size_t k = 0; k < np; k++) {
        assert_true(fabsf(g[k]) <= 0.01f);
        at_bound += fabsf(g[k]) == 0.01f;
    }
    assert_true(at_bound > 0);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void frozen_layer_is_not_updated(void **state)
{
    (void)state;
    bp_net *net = small_classifier(4);
    bp_layer *l0 = bp_net_layer(net, 0);
    assert_status(bp_layer_set(l0, BP_LAYER_TRAINABLE, 0), BP_OK);
    float before[4 * 16 + 16], after[4 * 16 + 16], last_before[51], last_after[51];
    memcpy(before, bp__layer_w(l0), sizeof before);
    memcpy(last_before, bp__layer_w(bp_net_layer(net, 1)), sizeof last_before);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.01, 0);
    train(net, opt, 5);
    memcpy(after, bp__layer_w(l0), sizeof after);
    memcpy(last_after, bp__layer_w(bp_net_layer(net, 1)), sizeof last_after);
    assert_memory_equal(before, after, sizeof before);
    assert_memory_not_equal(last_before, last_after, sizeof last_before);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void no_allocation_after_the_first_step_at_a_batch_size(void **state)
{
    (void)state;
    bp_test_alloc ta = {0};
    bp_net *net;
    assert_status(bp_net_create_ex(&net, 4, 1, bp_test_alloc_fn, bp_test_free_fn, &ta), BP_OK);
    assert_status(bp_net_add_dense(net, 32, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.01, 0);
    float x[64 * 4], y[64];
    uint64_t st = 1;
    bp_test_fill_uniform(x, 64 * 4, -1, 1, &st);
    for (int i = 0; i < 64; i++)
        y[i] = (float)(i % 3);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, 64, NULL), BP_OK);
    const size_t after_first = ta.attempts;
    for (int s = 0; s < 50; s++)
        assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, 64, NULL),
                      BP_OK);
    /* A smaller (last) batch reuses the plan too. */
    assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, 17, NULL), BP_OK);
    assert_int_equal(ta.attempts, after_first);
    bp_optimizer_free(opt);
    bp_net_free(net);
    assert_int_equal(ta.live, 0);
}

static void first_step_out_of_memory_leaves_net_usable(void **state)
{
    (void)state;
    bp_test_alloc ta = {0};
    bp_net *net;
    assert_status(bp_net_create_ex(&net, 2, 1, bp_test_alloc_fn, bp_test_free_fn, &ta), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_SIGMOID), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.1, 0);
    float before[17];
    assert_int_equal(bp_net_param_count(net), 17);
    memcpy(before, bp_net_params(net, NULL), sizeof before);
    ta.fail_at = (long)ta.attempts + 1;
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, xor_x, xor_y, 4, NULL), BP_ERR_NOMEM);
    ta.fail_at = 0;
    assert_memory_equal(before, bp_net_params(net, NULL), sizeof before);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, xor_x, xor_y, 4, NULL), BP_OK);
    bp_optimizer_free(opt);
    bp_net_free(net);
    assert_int_equal(ta.live, 0);
}

static void bad_input_leaves_the_network_untouched(void **state)
{
    (void)state;
    bp_net *net = small_classifier(2), *reg, *empty;
    assert_status(bp_net_create(&reg, 4, 1), BP_OK);
    assert_status(bp_net_add_dense(reg, 3, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_create(&empty, 4, 1), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.01, 0);
    float x[8] = {0.1f, 0.2f, 0.3f, 0.4f, -0.1f, -0.2f, -0.3f, -0.4f}, y[2] = {0, 2};
    float xnan[8], ybad[2] = {0, 3}, yhalf[2] = {0, 1.5f}, t6[6] = {0}, t6nan[6] = {0};
    memcpy(xnan, x, sizeof x);
    xnan[5] = (float)NAN;
    t6nan[4] = (float)INFINITY;
    size_t np;
    const float *params = bp_net_params(net, &np);
    float *snapshot = malloc(np * sizeof(float));
    assert_non_null(snapshot);
    memcpy(snapshot, params, np * sizeof(float));
    float lv = 123;
    const int S = BP_LOSS_SPARSE_SOFTMAX_CE;
    assert_status(bp_net_train_step(NULL, opt, S, x, y, 2, &lv), BP_ERR_INVALID_ARG);
    assert_status(bp_net_train_step(net, NULL, S, x, y, 2, &lv), BP_ERR_INVALID_ARG);
    assert_status(bp_net_train_step(net, opt, S, NULL, y, 2, &lv), BP_ERR_INVALID_ARG);
    assert_status(bp_net_train_step(net, opt, S, x, NULL, 2, &lv), BP_ERR_INVALID_ARG);
    assert_status(bp_net_train_step(net, opt, S, x, y, 0, &lv), BP_ERR_INVALID_ARG);
    assert_status(bp_net_train_step(net, opt, 77, x, y, 2, &lv), BP_ERR_INVALID_ARG);
    assert_status(bp_net_train_step(empty, opt, S, x, y, 2, &lv), BP_ERR_STATE);
    assert_status(bp_net_train_step(net, opt, S, xnan, y, 2, &lv), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "row 1, column 1"));
    assert_status(bp_net_train_step(net, opt, S, x, ybad, 2, &lv), BP_ERR_INDEX);
    assert_non_null(strstr(bp_net_last_error(net), "row 1"));
    assert_status(bp_net_train_step(net, opt, S, x, yhalf, 2, &lv), BP_ERR_INDEX);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, t6nan, 2, &lv), BP_ERR_NONFINITE);
    assert_memory_equal(snapshot, bp_net_params(net, NULL), np * sizeof(float));
    assert_int_equal(bp_optimizer_step_count(opt), 0);
    /* Softmax CE needs a softmax output layer. */
    assert_status(bp_net_train_step(reg, opt, BP_LOSS_SOFTMAX_CE, x, t6, 2, &lv), BP_ERR_STATE);
    assert_non_null(strstr(bp_net_last_error(reg), "softmax"));
    /* An optimizer bound to one shape refuses another net, which stays untouched. */
    assert_status(bp_net_train_step(net, opt, S, x, y, 2, &lv), BP_OK);
    float reg_before[15];
    memcpy(reg_before, bp_net_params(reg, NULL), sizeof reg_before);
    assert_status(bp_net_train_step(reg, opt, BP_LOSS_MSE, x, t6, 2, &lv), BP_ERR_STATE);
    assert_true(strlen(bp_net_last_error(reg)) > 0);
    assert_memory_equal(reg_before, bp_net_params(reg, NULL), sizeof reg_before);
    free(snapshot);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_net_free(reg);
    bp_net_free(empty);
}

static void overflowing_gradient_stops_before_the_update(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    const float big[6] = {3e37f, 3e37f, 3e37f, 3e37f, 0, 0};
    assert_status(bp_layer_set_weights(bp_net_layer(net, 0), big, 4), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.1, 0);
    float before[9];
    memcpy(before, bp_net_params(net, NULL), sizeof before);
    const float x[2] = {10, 10}, y[1] = {0};
    const bp_status s = bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL);
    assert_int_equal(s, BP_ERR_NONFINITE);
    assert_memory_equal(before, bp_net_params(net, NULL), sizeof before);
    assert_int_equal(bp_optimizer_step_count(opt), 0);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* A 1-1 identity net with weight w and bias b. */
static bp_net *one_weight_net(float w, float b)
{
    bp_net *net;
    assert_status(bp_net_create(&net, 1, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_layer_set_weights(bp_net_layer(net, 0), &w, 1), BP_OK);
    assert_status(bp_layer_set_biases(bp_net_layer(net, 0), &b, 1), BP_OK);
    return net;
}

static void net_params(bp_net *net, float out[2])
{
    assert_status(bp_layer_get_weights(bp_net_layer(net, 0), out, 1), BP_OK);
    assert_status(bp_layer_get_biases(bp_net_layer(net, 0), out + 1, 1), BP_OK);
}

/* Every gradient finite, but the update itself overflows a weight (SGD, learning rate 10, MAE,
 * an input of 3e38: w - 10 * 3e38 = -inf): the step fails with BP_ERR_NONFINITE and the net
 * and the optimizer are as they were; a sane step then trains. */
static void overflowing_update_fails_with_nothing_changed(void **state)
{
    (void)state;
    bp_net *net = one_weight_net(1.0f, 0.0f);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 10.0, 0);
    const float x[1] = {3e38f}, y[1] = {0.0f};
    float before[2], after[2], p[1], q[1];
    net_params(net, before);
    assert_status(bp_net_predict(net, x, 1, p, 1), BP_OK);
    float lv = -1.0f;
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MAE, x, y, 1, &lv), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "update would make layer 0's weight 0"));
    assert_non_null(strstr(bp_net_last_error(net), "unchanged"));
    assert_float_equal(lv, -1.0f, 0.0f);
    net_params(net, after);
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(bp_optimizer_step_count(opt), 0);
    assert_status(bp_net_predict(net, x, 1, q, 1), BP_OK);
    assert_memory_equal(p, q, sizeof p);
    /* The same through compute_grads + bp_optimizer_step. */
    assert_status(bp_net_compute_grads(net, BP_LOSS_MAE, x, y, 1, NULL), BP_OK);
    assert_status(bp_optimizer_step(opt, net), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_optimizer_last_error(opt), "update would make"));
    net_params(net, after);
    assert_memory_equal(before, after, sizeof before);
    /* A sane step trains. */
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.01), BP_OK);
    const float x1[1] = {1.0f};
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MAE, x1, y, 1, &lv), BP_OK);
    net_params(net, after);
    assert_float_equal(after[0], 0.99f, 1e-6f);
    assert_int_equal(bp_optimizer_step_count(opt), 1);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* Adam with a gradient of 1e25: its squared-gradient average overflows to +Inf while the
 * weight would stay finite. The step fails and the state is as it was: a later sane step gives
 * exactly what a fresh optimizer's first step gives. */
static void overflowing_optimizer_state_fails_with_nothing_changed(void **state)
{
    (void)state;
    bp_net *net = one_weight_net(0.5f, 0.0f), *ref = one_weight_net(0.5f, 0.0f);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.001, 0);
    bp_optimizer *fresh = make_opt(BP_OPTIMIZER_ADAM, 0.001, 0);
    const float xh[1] = {1e25f}, x[1] = {0.5f}, y[1] = {0.0f};
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MAE, xh, y, 1, NULL), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "Adam state slot 1"));
    assert_int_equal(bp_optimizer_step_count(opt), 0);
    for (int i = 0; i < 3; i++) {
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
        assert_status(bp_net_train_step(ref, fresh, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    }
    float a[2], b[2];
    net_params(net, a);
    net_params(ref, b);
    assert_memory_equal(a, b, sizeof a);
    bp_optimizer_free(opt);
    bp_optimizer_free(fresh);
    bp_net_free(net);
    bp_net_free(ref);
}

/* Weights beyond the guard's fast bound (2e36 > 2^120) take the guarded path, which updates
 * exactly as the plain one when nothing overflows. */
static void huge_but_finite_update_is_applied(void **state)
{
    (void)state;
    bp_net *net = one_weight_net(2e36f, 0.0f);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.5, 0);
    const float x[1] = {1e-3f}, y[1] = {0.0f};
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MAE, x, y, 1, NULL), BP_OK);
    float p[2];
    net_params(net, p);
    assert_float_equal(p[0], 2e36f - 0.5f * 1e-3f, 0.0f);
    assert_float_equal(p[1], -0.5f, 0.0f);
    assert_int_equal(bp_optimizer_step_count(opt), 1);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* Parameters written through bp_net_params()'s pointer between steps are measured again: a
 * weight of 3.3e38 with weight decay 1 at learning rate 3 (w * (1 - 3) overflows) fails. */
static void params_written_through_the_lent_pointer_are_guarded(void **state)
{
    (void)state;
    bp_net *net = one_weight_net(0.25f, 0.0f);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 3.0, 0);
    assert_status(bp_optimizer_set(opt, BP_OPT_WEIGHT_DECAY, 1.0), BP_OK);
    const float x[1] = {0.0f}, y[1] = {0.0f};
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    float *params = bp_net_params(net, NULL);
    params[0] = 3.3e38f;
    float before[2], after[2];
    net_params(net, before);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_ERR_NONFINITE);
    net_params(net, after);
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(bp_optimizer_step_count(opt), 1);
    /* bp_layer_set_weights() is seen too. */
    const float w = 3.3e38f;
    bp_net *other = one_weight_net(0.25f, 0.0f);
    assert_status(bp_net_train_step(other, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    assert_status(bp_layer_set_weights(bp_net_layer(other, 0), &w, 1), BP_OK);
    assert_status(bp_net_train_step(other, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_ERR_NONFINITE);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_net_free(other);
}

/* A gradient hook that leaves a huge (finite) gradient: the update after it is guarded. */
static int huge_grad_hook(void *user, bp_net *net, int status, size_t n, float *loss)
{
    (void)user, (void)status, (void)n, (void)loss;
    size_t count;
    float *g = bp_net_grads(net, &count);
    for (size_t i = 0; i < count; i++)
        g[i] = 3e38f;
    return BP_OK;
}

static void update_after_a_hook_is_guarded(void **state)
{
    (void)state;
    bp_net *net = one_weight_net(1.0f, 0.0f);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 10.0, 0);
    assert_status(bp_net_set_grad_hook(net, huge_grad_hook, NULL), BP_OK);
    const float x[1] = {0.5f}, y[1] = {0.0f};
    float before[2], after[2];
    net_params(net, before);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_ERR_NONFINITE);
    net_params(net, after);
    assert_memory_equal(before, after, sizeof before);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* The checkpoint image of (net, opt) in a new buffer; NULL when it cannot be saved. */
static unsigned char *checkpoint_image(const bp_net *net, const bp_optimizer *opt, size_t *size)
{
    const bp_status q = bp_checkpoint_save_buffer(net, opt, NULL, 0, size);
    if (q != BP_OK && q != BP_ERR_BUFFER_TOO_SMALL) return NULL;
    unsigned char *buf = malloc(*size);
    assert_non_null(buf);
    if (bp_checkpoint_save_buffer(net, opt, buf, *size, size) != BP_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Property: whatever the magnitudes (inputs up to 3e38, learning rates up to 1e3, weight decay
 * up to 1e3, epsilon down to 0), every algorithm's step either succeeds and leaves a net and
 * optimizer that save (every parameter and state value finite), or fails and leaves both
 * byte for byte as they were (their checkpoint image is unchanged). */
static void every_update_is_finite_or_fails_with_nothing_changed(void **state)
{
    (void)state;
    static const int kinds[] = {BP_OPTIMIZER_SGD,   BP_OPTIMIZER_ADAGRAD,     BP_OPTIMIZER_RMSPROP,
                                BP_OPTIMIZER_ADAM,  BP_OPTIMIZER_ADAMW,       BP_OPTIMIZER_ADAMAX,
                                BP_OPTIMIZER_NADAM, BP_OPTIMIZER_IRPROP_MINUS};
    uint64_t r = 0x9e3779b97f4a7c15u;
    size_t failed = 0, passed = 0;
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++) {
        for (int variant = 0; variant < 2; variant++) {
            bp_net *net;
            assert_status(bp_net_create(&net, 3, 7 + ki), BP_OK);
            assert_status(bp_net_add_dense(net, 4, BP_ACT_IDENTITY), BP_OK);
            assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
            bp_optimizer *opt;
            assert_status(bp_optimizer_create(&opt, kinds[ki]), BP_OK);
            if (variant) {
                (void)bp_optimizer_set(opt, BP_OPT_MOMENTUM, 0.9);
                (void)bp_optimizer_set(opt, BP_OPT_CENTERED, 1.0);
                (void)bp_optimizer_set(opt, BP_OPT_AMSGRAD, 1.0);
                (void)bp_optimizer_set(opt, BP_OPT_EPSILON, 0.0);
            }
            for (int step = 0; step < 60; step++) {
                r = r * 6364136223846793005u + 1442695040888963407u;
                const double u1 = (double)(r >> 11) / 9007199254740992.0;
                r = r * 6364136223846793005u + 1442695040888963407u;
                const double u2 = (double)(r >> 11) / 9007199254740992.0;
                if (kinds[ki] != BP_OPTIMIZER_IRPROP_MINUS) {
                    (void)bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, pow(10.0, -4.0 + 7.0 * u1));
                    (void)bp_optimizer_set(opt, BP_OPT_WEIGHT_DECAY,
                                           u2 < 0.5 ? 0.0 : pow(10.0, -3.0 + 6.0 * u2));
                }
                const float mag = (float)pow(10.0, -3.0 + 41.0 * u2) * (u1 < 0.5 ? 1.0f : 0.3f);
                float x[6], y[4];
                for (int i = 0; i < 6; i++)
                    x[i] = (i % 2 ? -mag : mag) * (float)(i + 1) / 6.0f;
                for (int i = 0; i < 4; i++)
                    y[i] = (float)(i - 2);
                size_t n0, n1;
                unsigned char *before = checkpoint_image(net, opt, &n0);
                if (before == NULL)
                    fprintf(stderr, "kind %d variant %d step %d: %s\n", kinds[ki], variant, step,
                            bp_last_error());
                assert_non_null(before);
                const bp_status st = bp_net_train_step(net, opt, BP_LOSS_MAE, x, y, 2, NULL);
                unsigned char *after = checkpoint_image(net, opt, &n1);
                if (st == BP_OK) {
                    assert_non_null(after); /* saves: everything finite */
                    passed++;
                } else {
                    assert_int_equal(st, BP_ERR_NONFINITE);
                    assert_non_null(after);
                    assert_int_equal(n0, n1);
                    assert_memory_equal(before, after, n0);
                    failed++;
                }
                free(before);
                free(after);
            }
            bp_optimizer_free(opt);
            bp_net_free(net);
        }
    }
    /* Both outcomes were exercised. */
    assert_true(passed > 100);
    assert_true(failed > 20);
}

/* A wide input (>= 256 floats) has its max |x| measured by the input check and reused in
 * the first layer's gradient bound: an input near FLT_MAX must still send the bound to the
 * full scan, which finds the infinite weight gradient before anything moves. Covers
 * train_step and forward + backward (which bounds with the max of its forward's input). */
static void wide_input_gradient_overflow_is_caught_by_the_measured_input_bound(void **state)
{
    (void)state;
    enum { IN = 128, ROWS = 2 };
    bp_net *net;
    assert_status(bp_net_create(&net, IN, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    float w[IN], x[ROWS * IN], y[ROWS] = {0, 0};
    for (size_t i = 0; i < IN; i++)
        w[i] = 1e-38f;
    for (size_t i = 0; i < ROWS * IN; i++)
        x[i] = 3e38f;
    assert_status(bp_layer_set_weights(bp_net_layer(net, 0), w, IN), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.1, 0);
    float before[IN + 1];
    memcpy(before, bp_net_params(net, NULL), sizeof before);
    float lv = -1.0f;
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, ROWS, &lv), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "layer 0"));
    assert_memory_equal(before, bp_net_params(net, NULL), sizeof before);
    assert_int_equal(bp_optimizer_step_count(opt), 0);
    const float *out;
    assert_status(bp_net_forward(net, x, ROWS, &out), BP_OK);
    assert_true(isfinite(out[0]) && isfinite(out[1]));
    const float dy[ROWS] = {1000.0f, 1000.0f};
    assert_status(bp_net_backward(net, dy, ROWS), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "layer 0"));
    /* A modest input of the same width trains. */
    for (size_t i = 0; i < ROWS * IN; i++)
        x[i] = 0.5f;
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, ROWS, &lv), BP_OK);
    assert_true(isfinite(lv));
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* ------------------------------------------------------------------------------------------
 * Single rows: the dense layer's row kernels against its batch kernels, and its narrow
 * (scalar) row kernels against the vectorised ones
 * ----------------------------------------------------------------------------------------*/

/* in -> h -> h -> out, hidden activation act, output activation and targets fitting loss. */
static bp_net *row_net(size_t in, size_t h, size_t out, int act, int out_act)
{
    bp_net *net;
    assert_status(bp_net_create(&net, in, 7), BP_OK);
    assert_status(bp_net_add_dense(net, h, act), BP_OK);
    assert_status(bp_net_add_dense(net, h, act), BP_OK);
    assert_status(bp_net_add_dense(net, out, out_act), BP_OK);
    return net;
}

static int loss_output_activation(int loss)
{
    switch (loss) {
    case BP_LOSS_MSE: return BP_ACT_SIGMOID;
    case BP_LOSS_MAE: return BP_ACT_TANH;
    case BP_LOSS_SOFTMAX_CE:
    case BP_LOSS_SPARSE_SOFTMAX_CE: return BP_ACT_SOFTMAX;
    default: return BP_ACT_IDENTITY; /* Huber, BCE on logits */
    }
}

/* rows x out targets for loss (rows class indices for sparse softmax-CE). */
static void row_targets(float *t, size_t rows, size_t out, int loss, uint64_t *rng)
{
    bp_test_fill_uniform(t, rows * out, 0.0f, 1.0f, rng);
    for (size_t r = 0; r < rows; r++) {
        const size_t cls = (size_t)(t[r * out] * (float)out) % out;
        for (size_t j = 0; j < out; j++) {
            float *v = &t[r * out + j];
            if (loss == BP_LOSS_BCE_LOGITS) *v = *v > 0.5f ? 1.0f : 0.0f;
            if (loss == BP_LOSS_SOFTMAX_CE) *v = j == cls ? 1.0f : 0.0f;
        }
        if (loss == BP_LOSS_SPARSE_SOFTMAX_CE) t[r] = (float)cls;
    }
}

static bp_optimizer *row_opt(int variant)
{
    switch (variant) {
    case 0: return make_opt(BP_OPTIMIZER_SGD, 0.05, 0);
    case 1: return make_opt(BP_OPTIMIZER_SGD, 0.02, 0.9);
    case 2: {
        bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.02, 0.9);
        assert_status(bp_optimizer_set(opt, BP_OPT_NESTEROV, 1), BP_OK);
        assert_status(bp_optimizer_set(opt, BP_OPT_WEIGHT_DECAY, 1e-3), BP_OK);
        return opt;
    }
    default: return make_opt(BP_OPTIMIZER_ADAM, 0.01, 0);
    }
}

/* sum (a - b)^2 / sum b^2 over count floats (0 when both are 0). */
static double nmse(const float *a, const float *b, size_t count)
{
    double num = 0.0, den = 0.0;
    for (size_t k = 0; k < count; k++) {
        const double d = (double)a[k] - (double)b[k];
        num += d * d;
        den += (double)b[k] * (double)b[k];
    }
    return den > 0.0 ? num / den : num;
}

/* Every hidden activation, every loss, SGD (plain, momentum, Nesterov with weight decay)
 * and Adam, narrow layers (the scalar row kernels) and wide ones (the vectorised row
 * kernels): 100 steps of one row give the gradients, losses and parameters of 100 steps of a
 * batch of that row twice, which runs the batch (GEMM) kernels. The mean over two equal rows
 * is the row's loss and gradient in exact arithmetic; the kernels add in other orders (BLAS
 * fuses multiply-adds), so the floats agree to rounding, not bit for bit. */
static void single_row_steps_match_the_batch_kernels(void **state)
{
    (void)state;
    enum { ROWS = 10, STEPS = 100 };
    static const size_t shapes[2][3] = {{3, 5, 2}, {20, 24, 17}};
    float x[ROWS * 20], t[ROWS * 17], x2[2 * 20], t2[2 * 17];
    for (int act = BP_ACT_IDENTITY; act < BP_ACT_SOFTMAX; act++) {
        for (int loss = BP_LOSS_MSE; loss <= BP_LOSS_SPARSE_SOFTMAX_CE; loss++) {
            for (int variant = 0; variant < 4; variant++) {
                for (int sh = 0; sh < 2; sh++) {
                    const size_t in = shapes[sh][0], h = shapes[sh][1], out = shapes[sh][2];
                    const size_t tw = loss == BP_LOSS_SPARSE_SOFTMAX_CE ? 1 : out;
                    uint64_t rng = 1000u + (uint64_t)(act * 100 + loss * 10 + variant);
                    bp_test_fill_uniform(x, ROWS * in, -1.0f, 1.0f, &rng);
                    row_targets(t, ROWS, out, loss, &rng);
                    const int oa = loss_output_activation(loss);
                    bp_net *single = row_net(in, h, out, act, oa);
                    bp_net *batch = row_net(in, h, out, act, oa);
                    bp_optimizer *o1 = row_opt(variant), *o2 = row_opt(variant);
                    for (int k = 0; k < STEPS; k++) {
                        const size_t r = (size_t)k % ROWS;
                        for (int d = 0; d < 2; d++) {
                            memcpy(x2 + (size_t)d * in, x + r * in, in * sizeof(float));
                            memcpy(t2 + (size_t)d * tw, t + r * tw, tw * sizeof(float));
                        }
                        float l1 = 0.0f, l2 = 0.0f;
                        const bp_status s1 =
                            bp_net_train_step(single, o1, loss, x + r * in, t + r * tw, 1, &l1);
                        const bp_status s2 = bp_net_train_step(batch, o2, loss, x2, t2, 2, &l2);
                        if (s1 != BP_OK || s2 != BP_OK)
                            print_message("act %d loss %d opt %d shape %d step %d: %d %d %s\n", act,
                                          loss, variant, sh, k, s1, s2, bp_net_last_error(single));
                        assert_int_equal(s1, BP_OK);
                        assert_int_equal(s2, BP_OK);
                        assert_true(fabsf(l1 - l2) <= 1e-4f * (1.0f + fabsf(l2)));
                    }
                    size_t np = 0;
                    const float *p1 = bp_net_params(single, &np);
                    const double ep = nmse(p1, bp_net_params(batch, NULL), np);
                    const double eg =
                        nmse(bp_net_grads(single, NULL), bp_net_grads(batch, NULL), np);
                    if (!(ep < 1e-9 && eg < 1e-6))
                        print_message("act %d loss %d opt %d shape %d: NMSE params %g grads %g\n",
                                      act, loss, variant, sh, ep, eg);
                    assert_true(ep < 1e-9);
                    assert_true(eg < 1e-6);
                    bp_optimizer_free(o1);
                    bp_optimizer_free(o2);
                    bp_net_free(single);
                    bp_net_free(batch);
                }
            }
        }
    }
}

/* The dense layer's two single-row kernels (scalar for narrow rows, vectorised for wide
 * ones; the layer picks by BP__NARROW_WIDTH) compute the same floats, for every activation,
 * on both sides of the threshold, with and without accumulation and the fused dL/dz. */
static void narrow_row_kernels_match_the_vectorised_ones_bit_for_bit(void **state)
{
    (void)state;
    static const size_t widths[][2] = {{1, 1}, {2, 4}, {3, 5}, {15, 15}, {15, 16}, {20, 24}};
    for (int act = BP_ACT_IDENTITY; act <= BP_ACT_SOFTMAX; act++) {
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
            const size_t in = widths[w][0], out = widths[w][1];
            bp_net *net;
            assert_status(bp_net_create(&net, in, 3), BP_OK);
            assert_status(bp_net_add_dense(net, out, act), BP_OK);
            bp_layer *l = bp_net_layer(net, 0);
            uint64_t rng = 77u + (uint64_t)act * 10u + w;
            size_t np = 0;
            float *p = bp_net_params(net, &np);
            bp_test_fill_uniform(p, np, -1.5f, 1.5f, &rng);
            float x[24], z[2][24], y[2][24], dy0[24], dy[2][24], dx[2][24], g[2][24 * 25];
            bp_test_fill_uniform(x, in, -2.0f, 2.0f, &rng);
            bp_test_fill_uniform(dy0, out, -1.0f, 1.0f, &rng);
            for (int mode = 0; mode < 4; mode++) { /* bit 0: accumulate, bit 1: dy is dz */
                for (int narrow = 0; narrow < 2; narrow++) {
                    float *grads = bp_net_grads(net, NULL);
                    for (size_t k = 0; k < np; k++)
                        grads[k] = 0.25f;
                    memset(z[narrow], 0, sizeof z[narrow]);
                    bp__dense_row_forward_with(l, narrow, x, z[narrow], y[narrow]);
                    memcpy(dy[narrow], dy0, out * sizeof(float));
                    const int proven =
                        bp__dense_row_backward_with(l, narrow, x, z[narrow], y[narrow], dy[narrow],
                                                    (mode & 2) != 0, dx[narrow], mode & 1);
                    /* The narrow kernel proves unaccumulated gradients finite itself. */
                    assert_int_equal(proven, narrow && !(mode & 1));
                    memcpy(g[narrow], grads, np * sizeof(float));
                }
                assert_memory_equal(y[0], y[1], out * sizeof(float));
                assert_memory_equal(z[0], z[1], out * sizeof(float));
                assert_memory_equal(dy[0], dy[1], out * sizeof(float));
                assert_memory_equal(dx[0], dx[1], in * sizeof(float));
                assert_memory_equal(g[0], g[1], np * sizeof(float));
            }
            /* A dW that overflows (x * dz beyond FLT_MAX) is never claimed proven. */
            if (in <= 15 && out <= 15 && act != BP_ACT_SOFTMAX) {
                x[0] = 3e38f;
                for (size_t o = 0; o < out; o++)
                    dy[1][o] = 100.0f;
                assert_int_equal(
                    bp__dense_row_backward_with(l, 1, x, z[1], y[1], dy[1], 1, dx[1], 0), 0);
            }
            bp_net_free(net);
        }
    }
}

/* One bad single-row step: the expected status and a message, parameters and optimizer
 * untouched. */
static void expect_failure(bp_net *net, int loss, const float *x, const float *y,
                           bp_status expected)
{
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.1, 0);
    size_t np = 0;
    const float *p = bp_net_params(net, &np);
    float *before = malloc(np * sizeof *before);
    assert_non_null(before);
    memcpy(before, p, np * sizeof *before);
    assert_status(bp_net_train_step(net, opt, loss, x, y, 1, NULL), expected);
    assert_true(strlen(bp_net_last_error(net)) > 0);
    assert_memory_equal(before, p, np * sizeof *before);
    assert_int_equal(bp_optimizer_step_count(opt), 0);
    free(before);
    bp_optimizer_free(opt);
}

static void single_row_step_rejects_bad_input_and_leaves_the_net_untouched(void **state)
{
    (void)state;
    bp_net *net = row_net(2, 3, 3, BP_ACT_TANH, BP_ACT_SOFTMAX);
    const float x[2] = {0.5f, -1.0f}, nan_x[2] = {0.5f, NAN};
    const float y[3] = {0, 1, 0}, inf_y[3] = {0, INFINITY, 0};
    const float cls_bad[1] = {3}, cls_frac[1] = {0.5f}, cls_nan[1] = {NAN};
    expect_failure(net, BP_LOSS_SOFTMAX_CE, nan_x, y, BP_ERR_NONFINITE);
    expect_failure(net, BP_LOSS_SOFTMAX_CE, x, inf_y, BP_ERR_NONFINITE);
    expect_failure(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, cls_bad, BP_ERR_INDEX);
    expect_failure(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, cls_frac, BP_ERR_INDEX);
    expect_failure(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, cls_nan, BP_ERR_NONFINITE);
    expect_failure(net, BP_LOSS_MSE + 100, x, y, BP_ERR_INVALID_ARG);
    bp_net_free(net);

    /* A finite loss whose gradient overflows (see overflowing_gradient_stops_before_the_update),
     * and weights so large that the loss itself overflows. */
    const float big[6] = {3e37f, 3e37f, 3e37f, 3e37f, 0, 0}, x10[2] = {10, 10}, y0[1] = {0};
    const float huge[6] = {3e38f, 3e38f, 3e38f, 3e38f, 0, 0};
    const float *weights[2] = {big, huge};
    for (int w = 0; w < 2; w++) {
        assert_status(bp_net_create(&net, 2, 1), BP_OK);
        assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
        assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
        assert_status(bp_layer_set_weights(bp_net_layer(net, 0), weights[w], 4), BP_OK);
        expect_failure(net, BP_LOSS_MSE, x10, y0, BP_ERR_NONFINITE);
        bp_net_free(net);
    }
}

/* Issue 18, finding 9 and 3: a hook's error gets a message of its own (not one left over from
 * an earlier call) and a defined status; NaN a hook writes into the gradients is caught
 * before the update (the update after a hook used to skip the gradient check). */
typedef struct bad_hook {
    int ret;
    int nan_at; /* -1: none; else the gradient index that becomes NaN */
} bad_hook;

static int writing_hook(void *user, bp_net *net, int status, size_t rows, float *loss_value)
{
    (void)rows, (void)loss_value;
    const bad_hook *h = user;
    if (status != BP_OK) return status;
    if (h->nan_at >= 0) bp_net_grads(net, NULL)[h->nan_at] = (float)NAN;
    return h->ret;
}

static void hook_errors_are_fresh_and_defined_and_nan_gradients_are_caught(void **state)
{
    (void)state;
    enum { N = 6 };
    bp_net *a = small_classifier(41);
    bp_optimizer *oa = make_opt(BP_OPTIMIZER_ADAM, 0.01, 0);
    float x[N * 4], y[N] = {0, 1, 2, 2, 1, 0};
    uint64_t st = 19;
    bp_test_fill_uniform(x, N * 4, -1, 1, &st);
    const size_t np = bp_net_param_count(a);
    float *before = malloc(np * sizeof(float));
    assert_non_null(before);
    memcpy(before, bp_net_params(a, NULL), np * sizeof(float));
    bad_hook h = {BP_ERR_SHAPE, -1};
    assert_status(bp_net_set_grad_hook(a, writing_hook, &h), BP_OK);
    /* An earlier failure leaves its message in bp_last_error(). */
    assert_status(bp_net_predict(a, NULL, 1, NULL, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL), BP_ERR_SHAPE);
    assert_null(strstr(bp_net_last_error(a), "must not be NULL"));
    assert_non_null(strstr(bp_net_last_error(a), "-200"));
    /* Values that are no bp_status error become BP_ERR_STATE, naming the value. */
    const int odd[] = {42, -7, 1, -99999};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        h.ret = odd[i];
        assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL),
                      BP_ERR_STATE);
        char want[32];
        snprintf(want, sizeof want, "returned %d", odd[i]);
        assert_non_null(strstr(bp_net_last_error(a), want));
    }
    assert_memory_equal(before, bp_net_params(a, NULL), np * sizeof(float));
    /* NaN written by the hook into a weight's and a bias's gradient: refused, untouched. */
    const int at[] = {0, (int)np - 1};
    for (size_t i = 0; i < 2; i++) {
        h.ret = BP_OK;
        h.nan_at = at[i];
        assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL),
                      BP_ERR_NONFINITE);
        assert_non_null(strstr(bp_net_last_error(a), "gradient hook"));
        assert_memory_equal(before, bp_net_params(a, NULL), np * sizeof(float));
    }
    /* With the hook behaving, the step goes on. */
    h.nan_at = -1;
    assert_status(bp_net_train_step(a, oa, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL), BP_OK);
    free(before);
    bp_optimizer_free(oa);
    bp_net_free(a);
}

/* Issue 18, finding 9: BP_LOSS_BCE_LOGITS takes targets in [0, 1] (documented); -1 and 1.5
 * are refused before anything moves. */
static void bce_logits_targets_outside_zero_one_are_refused(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 3), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.1, 0);
    const float x[4] = {0.5f, -0.5f, 1.0f, 0.25f};
    float pred[2] = {0.1f, -0.2f}, v;
    const float bad[][2] = {{-1.0f, 0.5f}, {0.0f, 1.5f}, {-0.001f, 1.0f}};
    const size_t np = bp_net_param_count(net);
    float before[8];
    memcpy(before, bp_net_params(net, NULL), np * sizeof(float));
    for (size_t i = 0; i < 3; i++) {
        assert_status(bp_net_train_step(net, opt, BP_LOSS_BCE_LOGITS, x, bad[i], 2, NULL),
                      BP_ERR_INVALID_ARG);
        assert_non_null(strstr(bp_net_last_error(net), "[0, 1]"));
        assert_status(bp_net_compute_grads(net, BP_LOSS_BCE_LOGITS, x, bad[i], 2, NULL),
                      BP_ERR_INVALID_ARG);
        assert_status(bp_loss_eval(BP_LOSS_BCE_LOGITS, 0.0, pred, bad[i], 2, 1, &v, NULL),
                      BP_ERR_INVALID_ARG);
        /* One row: the short inline target check must not let it through either. */
        assert_status(bp_net_train_step(net, opt, BP_LOSS_BCE_LOGITS, x, bad[i], 1, NULL),
                      i == 1 ? BP_OK : BP_ERR_INVALID_ARG);
        if (i == 1) memcpy(before, bp_net_params(net, NULL), np * sizeof(float));
    }
    assert_memory_equal(before, bp_net_params(net, NULL), np * sizeof(float));
    const float good[2] = {0.0f, 1.0f};
    assert_status(bp_net_train_step(net, opt, BP_LOSS_BCE_LOGITS, x, good, 2, NULL), BP_OK);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(xor_is_learned_by_sgd_momentum_adam_and_irprop),
        bp_add_test(linear_regression_recovers_true_weights),
        bp_add_test(same_seed_gives_bit_identical_weights_after_100_steps),
        bp_add_test(fused_softmax_ce_gradients_match_the_unfused_path),
        bp_add_test(compute_grads_then_step_equals_train_step),
        bp_add_test(grad_hook_runs_between_gradients_and_update),
        bp_add_test(hook_errors_are_fresh_and_defined_and_nan_gradients_are_caught),
        bp_add_test(bce_logits_targets_outside_zero_one_are_refused),
        bp_add_test(clipping_bounds_the_global_norm_and_each_value),
        bp_add_test(frozen_layer_is_not_updated),
        bp_add_test(no_allocation_after_the_first_step_at_a_batch_size),
        bp_add_test(first_step_out_of_memory_leaves_net_usable),
        bp_add_test(bad_input_leaves_the_network_untouched),
        bp_add_test(overflowing_gradient_stops_before_the_update),
        bp_add_test(overflowing_update_fails_with_nothing_changed),
        bp_add_test(overflowing_optimizer_state_fails_with_nothing_changed),
        bp_add_test(huge_but_finite_update_is_applied),
        bp_add_test(params_written_through_the_lent_pointer_are_guarded),
        bp_add_test(update_after_a_hook_is_guarded),
        bp_add_test(every_update_is_finite_or_fails_with_nothing_changed),
        bp_add_test(wide_input_gradient_overflow_is_caught_by_the_measured_input_bound),
        bp_add_test(single_row_steps_match_the_batch_kernels),
        bp_add_test(narrow_row_kernels_match_the_vectorised_ones_bit_for_bit),
        bp_add_test(single_row_step_rejects_bad_input_and_leaves_the_net_untouched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
