/* test_net.c -- the network and layer handles: construction, queries, parameters, forward,
 * backward, predict, settings, clone, bad input and allocation failures. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "net.h"
#include "layer.h"
#include "optimizer.h"

static bp_net *make_net(size_t in, const size_t *widths, const int *acts, size_t nl, uint64_t seed)
{
    bp_net *net = NULL;
    assert_status(bp_net_create(&net, in, seed), BP_OK);
    for (size_t i = 0; i < nl; i++)
        assert_status(bp_net_add_dense(net, widths[i], acts[i]), BP_OK);
    return net;
}

static void create_rejects_bad_arguments(void **state)
{
    (void)state;
    bp_net *net = (bp_net *)(uintptr_t)1;
    assert_status(bp_net_create(NULL, 3, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create(&net, 0, 1), BP_ERR_INVALID_ARG);
    assert_null(net);
    assert_non_null(strstr(bp_last_error(), "inputs = 0"));
    net = (bp_net *)(uintptr_t)1;
    assert_status(bp_net_create_ex(&net, 3, 1, bp_test_alloc_fn, NULL, NULL), BP_ERR_INVALID_ARG);
    assert_null(net);
    bp_net_free(NULL); /* harmless */
}

static void create_reports_out_of_memory(void **state)
{
    (void)state;
    bp_test_alloc ta = {.fail_at = 1};
    bp_net *net = (bp_net *)(uintptr_t)1;
    assert_status(bp_net_create_ex(&net, 3, 1, bp_test_alloc_fn, bp_test_free_fn, &ta),
                  BP_ERR_NOMEM);
    assert_null(net);
    assert_int_equal(ta.live, 0);
}

static void add_dense_builds_shapes_and_counts(void **state)
{
    (void)state;
    const size_t w[] = {4, 3, 2};
    const int a[] = {BP_ACT_RELU, BP_ACT_TANH, BP_ACT_SOFTMAX};
    bp_net *net = make_net(5, w, a, 3, 1);
    assert_int_equal(bp_net_layer_count(net), 3);
    assert_int_equal(bp_net_input_size(net), 5);
    assert_int_equal(bp_net_output_size(net), 2);
    assert_int_equal(bp_net_param_count(net), (5 * 4 + 4) + (4 * 3 + 3) + (3 * 2 + 2));
    bp_layer *l1 = bp_net_layer(net, 1);
    assert_non_null(l1);
    assert_int_equal(bp_layer_kind(l1), BP_LAYER_DENSE);
    assert_int_equal(bp_layer_activation(l1), BP_ACT_TANH);
    assert_int_equal(bp_layer_input_size(l1), 4);
    assert_int_equal(bp_layer_output_size(l1), 3);
    assert_int_equal(bp_layer_param_count(l1), 15);
    assert_null(bp_net_layer(net, 3));
    bp_net_free(net);
}

static void add_dense_rejects_bad_arguments_and_keeps_net(void **state)
{
    (void)state;
    const size_t w[] = {4, 2};
    const int a[] = {BP_ACT_RELU, BP_ACT_SOFTMAX};
    bp_net *net = make_net(3, w, a, 2, 1);
    const size_t np = bp_net_param_count(net);
    assert_status(bp_net_add_dense(NULL, 3, BP_ACT_RELU), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_dense(net, 0, BP_ACT_RELU), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_dense(net, 3, 42), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_net_last_error(net), "activation 42"));
    assert_status(bp_net_add_dense(net, 3, -1), BP_ERR_INVALID_ARG);
    /* Softmax must stay last. */
    assert_status(bp_net_add_dense(net, 3, BP_ACT_RELU), BP_ERR_STATE);
    assert_non_null(strstr(bp_net_last_error(net), "softmax"));
    assert_int_equal(bp_net_layer_count(net), 2);
    assert_int_equal(bp_net_param_count(net), np);
    bp_net_free(net);
}

static void add_dense_out_of_memory_leaves_net_usable(void **state)
{
    (void)state;
    /* Fail each allocation of the second add in turn: the net keeps its first layer. */
    for (long k = 1; k < 20; k++) {
        bp_test_alloc ta = {0};
        bp_net *net;
        assert_status(bp_net_create_ex(&net, 3, 1, bp_test_alloc_fn, bp_test_free_fn, &ta), BP_OK);
        assert_status(bp_net_add_dense(net, 4, BP_ACT_RELU), BP_OK);
        float before[16];
        assert_status(bp_layer_get_weights(bp_net_layer(net, 0), before, 16), BP_OK);
        ta.fail_at = (long)ta.attempts + k;
        const bp_status s = bp_net_add_dense(net, 2, BP_ACT_IDENTITY);
        ta.fail_at = 0;
        if (s == BP_OK) {
            assert_int_equal(bp_net_layer_count(net), 2);
            bp_net_free(net);
            assert_int_equal(ta.live, 0);
            assert_true(k > 1); /* at least one allocation was exercised */
            return;
        }
        assert_int_equal(s, BP_ERR_NOMEM);
        assert_int_equal(bp_net_layer_count(net), 1);
        float after[16];
        assert_status(bp_layer_get_weights(bp_net_layer(net, 0), after, 16), BP_OK);
        assert_memory_equal(before, after, 12 * sizeof(float));
        /* Still usable. */
        const float x[3] = {1, 2, 3};
        float y[4];
        assert_status(bp_net_predict(net, x, 1, y, 4), BP_OK);
        bp_net_free(net);
        assert_int_equal(ta.live, 0);
    }
    fail_msg("add_dense never succeeded");
}

static void weights_round_trip_row_major(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    /* W[o][i]: output 0 = 1*x0 + 2*x1 + 3*x2, output 1 = -x2. */
    const float w[6] = {1, 2, 3, 0, 0, -1}, b[2] = {0.5f, -0.5f};
    assert_status(bp_layer_set_weights(l, w, 6), BP_OK);
    assert_status(bp_layer_set_biases(l, b, 2), BP_OK);
    float wr[6], br[2];
    assert_status(bp_layer_get_weights(l, wr, 6), BP_OK);
    assert_status(bp_layer_get_biases(l, br, 2), BP_OK);
    assert_memory_equal(w, wr, sizeof w);
    assert_memory_equal(b, br, sizeof b);
    const float x[6] = {1, 1, 1, 2, 0, 1};
    float y[4];
    assert_status(bp_net_predict(net, x, 2, y, 4), BP_OK);
    assert_close(y[0], 6.5, 0, 1e-6);
    assert_close(y[1], -1.5, 0, 1e-6);
    assert_close(y[2], 5.5, 0, 1e-6);
    assert_close(y[3], -1.5, 0, 1e-6);
    /* params() exposes the same numbers in the documented layout. */
    size_t np;
    const float *p = bp_net_params(net, &np);
    assert_int_equal(np, 8);
    assert_memory_equal(p, w, sizeof w);
    assert_memory_equal(p + 6, b, sizeof b);
    bp_net_free(net);
}

static void layer_accessors_reject_bad_arguments(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    float buf[6] = {0};
    const float bad[6] = {1, 2, (float)NAN, 4, 5, 6};
    float w_before[6];
    assert_status(bp_layer_get_weights(l, w_before, 6), BP_OK);
    assert_status(bp_layer_get_weights(NULL, buf, 6), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get_weights(l, NULL, 6), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get_weights(l, buf, 5), BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_layer_set_weights(l, buf, 5), BP_ERR_SHAPE);
    assert_status(bp_layer_set_weights(l, NULL, 6), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set_weights(l, bad, 6), BP_ERR_NONFINITE);
    assert_status(bp_layer_set_weights(NULL, buf, 6), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get_biases(NULL, buf, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get_biases(l, buf, 1), BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_layer_set_biases(l, buf, 3), BP_ERR_SHAPE);
    assert_status(bp_layer_set_biases(NULL, buf, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get_weight_grad(NULL, buf, 6), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get_weight_grad(l, buf, 2), BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_layer_get_bias_grad(NULL, buf, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get_bias_grad(l, NULL, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_init_weights(NULL, BP_INIT_ZEROS, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_init_weights(l, 99, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_init_weights(l, BP_INIT_CONSTANT, HUGE_VAL), BP_ERR_OUT_OF_RANGE);
    float w_after[6];
    assert_status(bp_layer_get_weights(l, w_after, 6), BP_OK);
    assert_memory_equal(w_before, w_after, sizeof w_before);
    assert_int_equal(bp_layer_kind(NULL), 0);
    assert_int_equal(bp_layer_activation(NULL), -1);
    assert_int_equal(bp_layer_input_size(NULL), 0);
    assert_int_equal(bp_layer_output_size(NULL), 0);
    assert_int_equal(bp_layer_param_count(NULL), 0);
    /* A struct that is not a layer is rejected by its magic word. */
    bp_layer fake;
    memset(&fake, 0, sizeof fake);
    assert_status(bp_layer_get_weights(&fake, buf, 6), BP_ERR_INVALID_ARG);
    bp_net_free(net);
}

static void layer_settings_validate_and_round_trip(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_LEAKY_RELU), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    double v;
    assert_status(bp_layer_get(l, BP_LAYER_TRAINABLE, &v), BP_OK);
    assert_close(v, 1, 0, 0);
    assert_status(bp_layer_get(l, BP_LAYER_LEAKY_SLOPE, &v), BP_OK);
    assert_close(v, 0.01, 1e-6, 0);
    assert_status(bp_layer_set(l, BP_LAYER_LEAKY_SLOPE, 0.2), BP_OK);
    assert_status(bp_layer_get(l, BP_LAYER_LEAKY_SLOPE, &v), BP_OK);
    assert_close(v, 0.2, 1e-6, 0);
    assert_status(bp_layer_set(l, BP_LAYER_LEAKY_SLOPE, 1.5), BP_ERR_OUT_OF_RANGE);
    assert_non_null(strstr(bp_net_last_error(net), "1.5"));
    assert_status(bp_layer_set(l, BP_LAYER_LEAKY_SLOPE, (double)NAN), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_set(l, BP_LAYER_ELU_ALPHA, -1), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_set(l, BP_LAYER_ELU_ALPHA, 2), BP_OK);
    assert_status(bp_layer_get(l, BP_LAYER_ELU_ALPHA, &v), BP_OK);
    assert_close(v, 2, 0, 0);
    assert_status(bp_layer_set(l, BP_LAYER_TRAINABLE, 0.5), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_set(l, BP_LAYER_TRAINABLE, 0), BP_OK);
    assert_status(bp_layer_get(l, BP_LAYER_TRAINABLE, &v), BP_OK);
    assert_close(v, 0, 0, 0);
    assert_status(bp_layer_set(l, 12345, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get(l, 12345, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get(l, BP_LAYER_TRAINABLE, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(NULL, BP_LAYER_TRAINABLE, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_get(NULL, BP_LAYER_TRAINABLE, &v), BP_ERR_INVALID_ARG);
    /* The slope is used by the forward pass. */
    const float w[6] = {1, 0, 0, -1, 0, 0}, x[3] = {-2, 0, 0};
    assert_status(bp_layer_set_weights(l, w, 6), BP_OK);
    float y[2];
    assert_status(bp_net_predict(net, x, 1, y, 2), BP_OK);
    assert_close(y[0], -0.4, 1e-6, 0);
    assert_close(y[1], 2, 1e-6, 0);
    bp_net_free(net);
}

static void init_schemes_have_documented_statistics(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 400, 3), BP_OK);
    assert_status(bp_net_add_dense(net, 600, BP_ACT_RELU), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    const size_t nw = 400 * 600;
    float *w = malloc(nw * sizeof *w);
    assert_non_null(w);
    const struct {
        int scheme;
        double var;   /* expected variance */
        double bound; /* 0: unbounded */
    } cases[] = {
        {BP_INIT_GLOROT_UNIFORM, 2.0 / 1000, sqrt(6.0 / 1000)},
        {BP_INIT_GLOROT_NORMAL, 2.0 / 1000, 0},
        {BP_INIT_HE_UNIFORM, 2.0 / 400, sqrt(6.0 / 400)},
        {BP_INIT_HE_NORMAL, 2.0 / 400, 0},
        {BP_INIT_LECUN_NORMAL, 1.0 / 400, 0},
        {BP_INIT_DEFAULT, 2.0 / 400, 0}, /* ReLU -> He normal */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_status(bp_layer_init_weights(l, cases[c].scheme, 0), BP_OK);
        assert_status(bp_layer_get_weights(l, w, nw), BP_OK);
        double s = 0, ss = 0, mx = 0;
        for (size_t k = 0; k < nw; k++) {
            s += (double)w[k];
            ss += (double)w[k] * (double)w[k];
            mx = fmax(mx, fabs((double)w[k]));
        }
        const double mean = s / nw, var = ss / nw - mean * mean;
        assert_close(mean, 0, 0, 0.01 * sqrt(cases[c].var));
        assert_close(var, cases[c].var, 0.02, 0);
        if (cases[c].bound > 0) assert_true(mx <= cases[c].bound);
    }
    assert_status(bp_layer_init_weights(l, BP_INIT_CONSTANT, 0.25), BP_OK);
    assert_status(bp_layer_get_weights(l, w, nw), BP_OK);
    for (size_t k = 0; k < nw; k++)
        assert_true(w[k] == 0.25f);
    assert_status(bp_layer_init_weights(l, BP_INIT_ZEROS, 0), BP_OK);
    assert_status(bp_layer_get_weights(l, w, nw), BP_OK);
    for (size_t k = 0; k < nw; k++)
        assert_true(w[k] == 0.0f);
    free(w);
    bp_net_free(net);
}

static void same_seed_same_weights_other_seed_other_weights(void **state)
{
    (void)state;
    const size_t w[] = {8, 3};
    const int a[] = {BP_ACT_TANH, BP_ACT_SIGMOID};
    bp_net *n1 = make_net(4, w, a, 2, 99), *n2 = make_net(4, w, a, 2, 99),
           *n3 = make_net(4, w, a, 2, 100);
    size_t np;
    const float *p1 = bp_net_params(n1, &np), *p2 = bp_net_params(n2, NULL),
                *p3 = bp_net_params(n3, NULL);
    assert_memory_equal(p1, p2, np * sizeof(float));
    assert_memory_not_equal(p1, p3, np * sizeof(float));
    bp_net_free(n1);
    bp_net_free(n2);
    bp_net_free(n3);
}

static void forward_and_predict_agree_for_any_row_count(void **state)
{
    (void)state;
    const size_t w[] = {7, 5};
    const int a[] = {BP_ACT_GELU, BP_ACT_SOFTMAX};
    bp_net *net = make_net(6, w, a, 2, 5);
    const size_t n = 2500; /* more than one predict chunk */
    float *x = malloc(n * 6 * sizeof *x), *y = malloc(n * 5 * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    uint64_t st = 1;
    bp_test_fill_uniform(x, n * 6, -2, 2, &st);
    assert_status(bp_net_predict(net, x, n, y, n * 5), BP_OK);
    const float *yf;
    for (size_t r = 0; r < n; r += 997) {
        assert_status(bp_net_forward(net, x + r * 6, 1, &yf), BP_OK);
        float s = 0;
        for (size_t j = 0; j < 5; j++) {
            assert_close(yf[j], y[r * 5 + j], 1e-5, 1e-7);
            s += yf[j];
        }
        assert_close(s, 1, 1e-5, 0); /* softmax rows sum to 1 */
    }
    /* Predict does not disturb the activations kept for backward. */
    assert_status(bp_net_forward(net, x, 3, &yf), BP_OK);
    float keep[15];
    memcpy(keep, yf, sizeof keep);
    assert_status(bp_net_predict(net, x + 600, 10, y, n * 5), BP_OK);
    assert_memory_equal(keep, net->ws.y[1], sizeof keep);
    free(x);
    free(y);
    bp_net_free(net);
}

static void forward_backward_and_predict_reject_bad_input(void **state)
{
    (void)state;
    const size_t w[] = {3, 2};
    const int a[] = {BP_ACT_RELU, BP_ACT_IDENTITY};
    bp_net *net = make_net(2, w, a, 2, 1), *empty;
    assert_status(bp_net_create(&empty, 2, 1), BP_OK);
    const float x[4] = {1, 2, 3, 4}, xnan[4] = {1, (float)NAN, 3, 4};
    const float dy[4] = {1, 1, 1, 1}, dyinf[4] = {1, 1, (float)INFINITY, 1};
    const float *y;
    float out[4];
    assert_status(bp_net_forward(NULL, x, 2, &y), BP_ERR_INVALID_ARG);
    assert_status(bp_net_forward(net, NULL, 2, &y), BP_ERR_INVALID_ARG);
    assert_status(bp_net_forward(net, x, 2, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_forward(net, x, 0, &y), BP_ERR_INVALID_ARG);
    assert_status(bp_net_forward(empty, x, 2, &y), BP_ERR_STATE);
    assert_status(bp_net_forward(net, xnan, 2, &y), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "row 0, column 1"));
    assert_status(bp_net_backward(net, dy, 2), BP_ERR_STATE); /* no forward yet */
    assert_status(bp_net_forward(net, x, 2, &y), BP_OK);
    assert_status(bp_net_backward(NULL, dy, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_backward(net, NULL, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_backward(net, dy, 1), BP_ERR_SHAPE);
    assert_status(bp_net_backward(net, dyinf, 2), BP_ERR_NONFINITE);
    assert_status(bp_net_backward(net, dy, 2), BP_OK);
    assert_status(bp_net_predict(NULL, x, 2, out, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_predict(net, NULL, 2, out, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_predict(net, x, 2, NULL, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_predict(net, x, 0, out, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_predict(net, x, 2, out, 3), BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_net_predict(net, x, SIZE_MAX / 2, out, 4), BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_net_predict(net, xnan, 2, out, 4), BP_ERR_NONFINITE);
    assert_status(bp_net_predict(empty, x, 2, out, 4), BP_ERR_STATE);
    assert_status(bp_net_zero_grad(NULL), BP_ERR_INVALID_ARG);
    assert_null(bp_net_params(NULL, NULL));
    { /* a net whose layers have no parameters: NULL and a count of 0 (documented) */
        bp_net *pf;
        size_t np = 99;
        assert_status(bp_net_create(&pf, 3, 1), BP_OK);
        assert_status(bp_net_add_activation(pf, BP_ACT_TANH), BP_OK);
        assert_null(bp_net_params(pf, &np));
        assert_int_equal(np, 0);
        np = 99;
        assert_null(bp_net_grads(pf, &np));
        assert_int_equal(np, 0);
        bp_net_free(pf);
    }
    assert_null(bp_net_grads(empty, NULL));
    assert_int_equal(bp_net_layer_count(NULL), 0);
    assert_int_equal(bp_net_input_size(NULL), 0);
    assert_int_equal(bp_net_output_size(NULL), 0);
    assert_int_equal(bp_net_output_size(empty), 2);
    assert_int_equal(bp_net_param_count(NULL), 0);
    assert_null(bp_net_layer(NULL, 0));
    assert_string_equal(bp_net_last_error(NULL), bp__invalid_handle_msg);
    bp_net fake;
    memset(&fake, 0, sizeof fake);
    assert_status(bp_net_forward(&fake, x, 2, &y), BP_ERR_INVALID_ARG);
    bp_net_free(empty);
    bp_net_free(net);
}

static void backward_accumulates_when_asked(void **state)
{
    (void)state;
    const size_t w[] = {4, 2};
    const int a[] = {BP_ACT_TANH, BP_ACT_IDENTITY};
    bp_net *net = make_net(3, w, a, 2, 1);
    const float x[6] = {0.1f, -0.2f, 0.3f, 0.5f, 0.2f, -0.1f}, dy[4] = {1, -1, 0.5f, 2};
    const float *y;
    size_t np;
    const float *g = bp_net_grads(net, &np);
    float once[64];
    assert_status(bp_net_forward(net, x, 2, &y), BP_OK);
    assert_status(bp_net_backward(net, dy, 2), BP_OK);
    memcpy(once, g, np * sizeof(float));
    /* Without accumulation a second backward overwrites. */
    assert_status(bp_net_backward(net, dy, 2), BP_OK);
    assert_memory_equal(once, g, np * sizeof(float));
    double v;
    assert_status(bp_net_set(net, BP_NET_ACCUMULATE_GRADS, 1), BP_OK);
    assert_status(bp_net_get(net, BP_NET_ACCUMULATE_GRADS, &v), BP_OK);
    assert_close(v, 1, 0, 0);
    assert_status(bp_net_backward(net, dy, 2), BP_OK);
    for (size_t k = 0; k < np; k++)
        assert_close(g[k], 2 * once[k], 1e-6, 1e-7);
    assert_status(bp_net_zero_grad(net), BP_OK);
    for (size_t k = 0; k < np; k++)
        assert_true(g[k] == 0.0f);
    assert_status(bp_net_backward(net, dy, 2), BP_OK);
    assert_memory_equal(once, g, np * sizeof(float));
    /* Gradients through the public per-layer getters match the arena. */
    float dw[12], db[4];
    assert_status(bp_layer_get_weight_grad(bp_net_layer(net, 0), dw, 12), BP_OK);
    assert_status(bp_layer_get_bias_grad(bp_net_layer(net, 0), db, 4), BP_OK);
    assert_memory_equal(dw, g, sizeof dw);
    assert_memory_equal(db, g + 12, sizeof db);
    bp_net_free(net);
}

static void net_settings_validate_and_round_trip(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 1), BP_OK);
    double v;
    assert_status(bp_net_get(net, BP_NET_HUBER_DELTA, &v), BP_OK);
    assert_close(v, 1, 0, 0);
    assert_status(bp_net_set(net, BP_NET_HUBER_DELTA, 0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set(net, BP_NET_HUBER_DELTA, (double)NAN), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set(net, BP_NET_HUBER_DELTA, 2.5), BP_OK);
    assert_status(bp_net_get(net, BP_NET_HUBER_DELTA, &v), BP_OK);
    assert_close(v, 2.5, 0, 0);
    assert_status(bp_net_set(net, BP_NET_CLIP_NORM, -1), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set(net, BP_NET_CLIP_NORM, 5), BP_OK);
    assert_status(bp_net_get(net, BP_NET_CLIP_NORM, &v), BP_OK);
    assert_close(v, 5, 0, 0);
    assert_status(bp_net_set(net, BP_NET_CLIP_VALUE, 2e9), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set(net, BP_NET_CLIP_VALUE, 0.5), BP_OK);
    assert_status(bp_net_get(net, BP_NET_CLIP_VALUE, &v), BP_OK);
    assert_close(v, 0.5, 0, 0);
    assert_status(bp_net_set(net, BP_NET_ACCUMULATE_GRADS, 2), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set(net, 999, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_get(net, 999, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_net_get(net, BP_NET_CLIP_VALUE, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_set(NULL, BP_NET_CLIP_VALUE, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_get(NULL, BP_NET_CLIP_VALUE, &v), BP_ERR_INVALID_ARG);
    bp_net_free(net);
}

static void param_bounds_match_what_set_accepts(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_ELU), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    double lo, hi;
    const int net_keys[] = {BP_NET_ACCUMULATE_GRADS, BP_NET_HUBER_DELTA, BP_NET_CLIP_NORM,
                            BP_NET_CLIP_VALUE};
    for (size_t i = 0; i < 4; i++) {
        assert_status(bp_net_param_bounds(net_keys[i], &lo, &hi), BP_OK);
        assert_status(bp_net_set(net, net_keys[i], lo), BP_OK);
        assert_status(bp_net_set(net, net_keys[i], hi), BP_OK);
        assert_status(bp_net_set(net, net_keys[i], nextafter(hi, HUGE_VAL)), BP_ERR_OUT_OF_RANGE);
        assert_status(bp_net_set(net, net_keys[i], nextafter(lo, -HUGE_VAL)), BP_ERR_OUT_OF_RANGE);
    }
    const int layer_keys[] = {BP_LAYER_TRAINABLE, BP_LAYER_LEAKY_SLOPE, BP_LAYER_ELU_ALPHA};
    for (size_t i = 0; i < 3; i++) {
        assert_status(bp_layer_param_bounds(layer_keys[i], &lo, &hi), BP_OK);
        assert_status(bp_layer_set(l, layer_keys[i], lo), BP_OK);
        assert_status(bp_layer_set(l, layer_keys[i], hi), BP_OK);
        assert_status(bp_layer_set(l, layer_keys[i], nextafter(hi, HUGE_VAL)), BP_ERR_OUT_OF_RANGE);
        assert_status(bp_layer_set(l, layer_keys[i], nextafter(lo, -HUGE_VAL)),
                      BP_ERR_OUT_OF_RANGE);
    }
    assert_status(bp_net_param_bounds(1, &lo, &hi), BP_ERR_INVALID_ARG);
    assert_status(bp_net_param_bounds(BP_NET_CLIP_NORM, NULL, &hi), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_param_bounds(1, &lo, &hi), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_param_bounds(BP_LAYER_ELU_ALPHA, &lo, NULL), BP_ERR_INVALID_ARG);
    bp_net_free(net);
}

static void summary_lists_layers_and_reports_size(void **state)
{
    (void)state;
    const size_t w[] = {8, 1};
    const int a[] = {BP_ACT_TANH, BP_ACT_SIGMOID};
    bp_net *net = make_net(2, w, a, 2, 1);
    size_t need = 0;
    char small[16];
    assert_status(bp_net_summary(net, small, sizeof small, &need), BP_ERR_BUFFER_TOO_SMALL);
    assert_true(need > sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    char *buf = malloc(need);
    assert_non_null(buf);
    assert_status(bp_net_summary(net, buf, need, NULL), BP_OK);
    assert_int_equal(strlen(buf) + 1, need);
    assert_non_null(strstr(buf, "tanh"));
    assert_non_null(strstr(buf, "sigmoid"));
    assert_non_null(strstr(buf, "total parameters: 33"));
    assert_status(bp_net_summary(net, NULL, 0, &need), BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_net_summary(net, NULL, 5, &need), BP_ERR_INVALID_ARG);
    assert_status(bp_net_summary(NULL, buf, need, NULL), BP_ERR_INVALID_ARG);
    free(buf);
    bp_net_free(net);
}

static void clone_is_deep_and_independent(void **state)
{
    (void)state;
    const size_t w[] = {5, 3};
    const int a[] = {BP_ACT_ELU, BP_ACT_SOFTMAX};
    bp_net *net = make_net(4, w, a, 2, 11), *copy = NULL;
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_ELU_ALPHA, 0.5), BP_OK);
    assert_status(bp_net_set(net, BP_NET_CLIP_NORM, 3), BP_OK);
    assert_status(bp_net_clone(&copy, net), BP_OK);
    const float x[4] = {0.5f, -1, 2, 0};
    float y1[3], y2[3];
    assert_status(bp_net_predict(net, x, 1, y1, 3), BP_OK);
    assert_status(bp_net_predict(copy, x, 1, y2, 3), BP_OK);
    assert_memory_equal(y1, y2, sizeof y1);
    double v;
    assert_status(bp_net_get(copy, BP_NET_CLIP_NORM, &v), BP_OK);
    assert_close(v, 3, 0, 0);
    assert_status(bp_layer_get(bp_net_layer(copy, 0), BP_LAYER_ELU_ALPHA, &v), BP_OK);
    assert_close(v, 0.5, 0, 0);
    assert_status(bp_layer_init_weights(bp_net_layer(copy, 0), BP_INIT_ZEROS, 0), BP_OK);
    assert_status(bp_net_predict(net, x, 1, y2, 3), BP_OK);
    assert_memory_equal(y1, y2, sizeof y1);
    assert_ptr_equal(bp_net_layer(copy, 0)->net, copy);
    bp_net_free(copy);
    assert_status(bp_net_clone(NULL, net), BP_ERR_INVALID_ARG);
    assert_status(bp_net_clone(&copy, NULL), BP_ERR_INVALID_ARG);
    assert_null(copy);
    bp_net_free(net);
}

static void clone_out_of_memory_leaks_nothing(void **state)
{
    (void)state;
    bp_test_alloc ta = {0};
    bp_net *net, *copy;
    assert_status(bp_net_create_ex(&net, 3, 1, bp_test_alloc_fn, bp_test_free_fn, &ta), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_RELU), BP_OK);
    const size_t live = ta.live;
    int failures = 0;
    for (long k = 1;; k++) {
        ta.fail_at = (long)ta.attempts + k;
        const bp_status s = bp_net_clone(&copy, net);
        ta.fail_at = 0;
        if (s == BP_OK) break;
        assert_int_equal(s, BP_ERR_NOMEM);
        assert_null(copy);
        assert_int_equal(ta.live, live);
        failures++;
    }
    assert_true(failures >= 4);
    bp_net_free(copy);
    bp_net_free(net);
    assert_int_equal(ta.live, 0);
}

static void forward_out_of_memory_is_reported(void **state)
{
    (void)state;
    bp_test_alloc ta = {0};
    bp_net *net;
    assert_status(bp_net_create_ex(&net, 3, 1, bp_test_alloc_fn, bp_test_free_fn, &ta), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_RELU), BP_OK);
    const float x[3] = {1, 2, 3};
    const float *y;
    float out[4];
    ta.fail_at = (long)ta.attempts + 1;
    assert_status(bp_net_forward(net, x, 1, &y), BP_ERR_NOMEM);
    ta.fail_at = (long)ta.attempts + 1;
    assert_status(bp_net_predict(net, x, 1, out, 4), BP_ERR_NOMEM);
    ta.fail_at = 0;
    assert_status(bp_net_forward(net, x, 1, &y), BP_OK);
    bp_net_free(net);
    assert_int_equal(ta.live, 0);
}

/* Issue 18, finding 7: every size product of the public calls is checked before use. Each
 * call gets tiny arrays and a row count whose n x width overflows; the old code read out of
 * bounds (SIGSEGV) for each of them. */
static void size_products_that_overflow_are_invalid_arguments(void **state)
{
    (void)state;
    const size_t widths[] = {3, 2};
    const int acts[] = {BP_ACT_TANH, BP_ACT_IDENTITY};
    bp_net *net = make_net(4, widths, acts, 2, 5);
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_SGD), BP_OK);
    float x[8] = {0}, y[4] = {0}, scratch[64];
    const size_t big[] = {SIZE_MAX, ((size_t)1 << 63) + 1, (size_t)1 << 63, (size_t)1 << 62};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        const size_t n = big[i];
        assert_status(bp_net_predict(net, x, n, y, SIZE_MAX), BP_ERR_INVALID_ARG);
        assert_non_null(strstr(bp_net_last_error(net), "overflow"));
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, n, NULL), BP_ERR_INVALID_ARG);
        assert_status(bp_net_compute_grads(net, BP_LOSS_MSE, x, y, n, NULL), BP_ERR_INVALID_ARG);
        assert_status(bp_net_forward(net, x, n, &(const float *){NULL}), BP_ERR_INVALID_ARG);
        assert_status(bp_net_predict_ws(net, x, n, y, SIZE_MAX, scratch, SIZE_MAX),
                      BP_ERR_INVALID_ARG);
    }
    /* The net is untouched and still works. */
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 2, NULL), BP_OK);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* An allocator counting allocations and the bytes ever allocated (copies made by growth
 * show up in the total). */
typedef struct grow_count {
    size_t allocs, bytes;
} grow_count;

static void *grow_alloc(void *user, size_t size)
{
    grow_count *c = user;
    c->allocs++;
    c->bytes += size;
    return malloc(size);
}

static void grow_free(void *user, void *p)
{
    (void)user;
    free(p);
}

/* Issue 18, finding 2: building or loading L layers is O(L). Counted, not timed: the
 * allocations (each append used to reallocate the parameter arena and its gradients) and
 * the bytes allocated in all (copies of the arena grow with L^2 when it grows by one layer
 * at a time). 20,000 layers, as in the report. */
static void building_and_loading_many_layers_is_linear(void **state)
{
    (void)state;
    enum { L = 20000 };
    grow_count c = {0, 0};
    bp_net *net;
    assert_status(bp_net_create_ex(&net, 1, 3, grow_alloc, grow_free, &c), BP_OK);
    for (size_t i = 0; i < L; i++) {
        if (i % 2 == 0)
            assert_status(bp_net_add_dense(net, 1, BP_ACT_TANH), BP_OK);
        else
            assert_status(bp_net_add_activation(net, BP_ACT_RELU), BP_OK);
    }
    const size_t per_layer = sizeof(bp_layer) + 64;
    /* One allocation per layer (its struct), plus O(log L) for the growing arrays. */
    assert_true(c.allocs <= L + 200);
    /* Bytes: the structs, the layer list and arena doubling (at most 4 x their final size). */
    assert_true(c.bytes <= (size_t)L * per_layer + 4 * (size_t)L * sizeof(void *) +
                               2 * 4 * net->nparams * sizeof(float) + 65536);
    /* The shape hash kept by the appends is the one computed from scratch. */
    assert_true(net->shape_hash == bp__optimizer_shape_hash(net));
    size_t size = 0;
    assert_status(bp_net_save_buffer(net, NULL, 0, &size), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *img = malloc(size);
    assert_status(bp_net_save_buffer(net, img, size, &size), BP_OK);
    grow_count lc = {0, 0};
    bp_net *back;
    assert_status(bp_net_load_buffer_ex(&back, img, size, grow_alloc, grow_free, &lc), BP_OK);
    assert_int_equal(bp_net_layer_count(back), L);
    assert_true(lc.allocs <= L + 200);
    assert_true(lc.bytes <= (size_t)L * per_layer + 4 * (size_t)L * sizeof(void *) +
                                2 * 4 * back->nparams * sizeof(float) + 2 * size + 65536);
    /* Both still train and predict alike. */
    float x = 0.5f, ya, yb;
    assert_status(bp_net_predict(net, &x, 1, &ya, 1), BP_OK);
    assert_status(bp_net_predict(back, &x, 1, &yb, 1), BP_OK);
    assert_true(ya == yb);
    free(img);
    bp_net_free(back);
    bp_net_free(net);
}

static void reset_settings_restores_every_net_and_fit_default(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_TANH), BP_OK);
    static const int keys[] = {BP_NET_ACCUMULATE_GRADS, BP_NET_HUBER_DELTA, BP_NET_CLIP_NORM,
                               BP_NET_CLIP_VALUE,       BP_FIT_EPOCHS,      BP_FIT_BATCH_SIZE,
                               BP_FIT_SCHEDULE,         BP_FIT_LR_GAMMA,    BP_FIT_PATIENCE};
    enum { NK = sizeof keys / sizeof keys[0] };
    double def[NK];
    for (size_t i = 0; i < NK; i++) {
        double lo, hi, v;
        assert_status(bp_net_get(net, keys[i], &def[i]), BP_OK);
        assert_status(bp_net_param_bounds(keys[i], &lo, &hi), BP_OK);
        /* Move each setting away from its default, to a bound that differs from it. */
        assert_status(bp_net_set(net, keys[i], def[i] == hi ? lo : hi), BP_OK);
        assert_status(bp_net_get(net, keys[i], &v), BP_OK);
        assert_true(v != def[i]);
    }
    float w[6], w2[6];
    assert_status(bp_layer_get_weights(bp_net_layer(net, 0), w, 6), BP_OK);
    assert_status(bp_net_reset_settings(net), BP_OK);
    for (size_t i = 0; i < NK; i++) {
        double v;
        assert_status(bp_net_get(net, keys[i], &v), BP_OK);
        assert_close(v, def[i], 0, 0);
    }
    /* Parameters are not settings. */
    assert_status(bp_layer_get_weights(bp_net_layer(net, 0), w2, 6), BP_OK);
    assert_memory_equal(w, w2, sizeof w);
    assert_status(bp_net_reset_settings(NULL), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_last_error(), "bp_net_reset_settings"));
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(create_rejects_bad_arguments),
        bp_add_test(create_reports_out_of_memory),
        bp_add_test(add_dense_builds_shapes_and_counts),
        bp_add_test(add_dense_rejects_bad_arguments_and_keeps_net),
        bp_add_test(add_dense_out_of_memory_leaves_net_usable),
        bp_add_test(weights_round_trip_row_major),
        bp_add_test(layer_accessors_reject_bad_arguments),
        bp_add_test(layer_settings_validate_and_round_trip),
        bp_add_test(init_schemes_have_documented_statistics),
        bp_add_test(same_seed_same_weights_other_seed_other_weights),
        bp_add_test(forward_and_predict_agree_for_any_row_count),
        bp_add_test(forward_backward_and_predict_reject_bad_input),
        bp_add_test(backward_accumulates_when_asked),
        bp_add_test(net_settings_validate_and_round_trip),
        bp_add_test(param_bounds_match_what_set_accepts),
        bp_add_test(reset_settings_restores_every_net_and_fit_default),
        bp_add_test(summary_lists_layers_and_reports_size),
        bp_add_test(clone_is_deep_and_independent),
        bp_add_test(clone_out_of_memory_leaks_nothing),
        bp_add_test(forward_out_of_memory_is_reported),
        bp_add_test(size_products_that_overflow_are_invalid_arguments),
        bp_add_test(building_and_loading_many_layers_is_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
