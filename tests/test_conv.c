/* test_conv.c -- image layers: conv2d against a direct convolution, gradients of conv2d
 * (stride, padding, non-square kernels), max/avg/global-average pooling, flatten and whole
 * small CNNs against a double-precision reference; shapes, summary, clone, bad input and
 * allocation failures. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "net.h"
#include "layer_kinds.h"
#include "ref_net.h"

static uint64_t rng_state = 777;

/* Direct convolution in double, from the definition (no im2col). */
static double direct_conv(const float *x, const float *w, const float *b, size_t C, size_t H,
                          size_t W, size_t kh, size_t kw, size_t s, size_t pad, size_t f, size_t oy,
                          size_t ox)
{
    double z = (double)b[f];
    for (size_t c = 0; c < C; c++)
        for (size_t a = 0; a < kh; a++)
            for (size_t d = 0; d < kw; d++) {
                const long iy = (long)(oy * s + a) - (long)pad, ix = (long)(ox * s + d) - (long)pad;
                if (iy >= 0 && ix >= 0 && iy < (long)H && ix < (long)W)
                    z += (double)w[((f * C + c) * kh + a) * kw + d] *
                         (double)x[(c * H + (size_t)iy) * W + (size_t)ix];
            }
    return z;
}

static void conv_matches_direct_convolution(void **state)
{
    (void)state;
    /* C, H, W, filters, kh, kw, stride, pad */
    static const size_t cfg[][8] = {
        {1, 5, 5, 2, 3, 3, 1, 0},
        {2, 6, 7, 3, 3, 3, 1, 1},
        {3, 7, 5, 2, 3, 2, 2, 1},
        {2, 9, 8, 4, 4, 3, 3, 2},
        {1, 4, 4, 1, 1, 1, 1, 0},
        {3, 5, 6, 5, 5, 5, 1, 4},
        /* "same" padding (im2col's shifted-copy rows), down to planes smaller than the kernel */
        {2, 5, 8, 2, 5, 5, 1, 2},
        {1, 1, 3, 2, 3, 3, 1, 1},
        {2, 2, 2, 1, 3, 3, 1, 1},
        {1, 3, 1, 2, 3, 3, 1, 1},
    };
    enum { N = 3 };
    for (size_t t = 0; t < sizeof cfg / sizeof cfg[0]; t++) {
        const size_t C = cfg[t][0], H = cfg[t][1], W = cfg[t][2], F = cfg[t][3], kh = cfg[t][4],
                     kw = cfg[t][5], s = cfg[t][6], pad = cfg[t][7];
        bp_net *net;
        assert_status(bp_net_create_image(&net, C, H, W, t + 1), BP_OK);
        assert_status(bp_net_add_conv2d(net, F, kh, kw, s, pad, BP_ACT_IDENTITY), BP_OK);
        bp_layer *l = bp_net_layer(net, 0);
        size_t oc, oh, ow;
        assert_status(bp_layer_output_shape(l, &oc, &oh, &ow), BP_OK);
        assert_int_equal(oc, F);
        assert_int_equal(oh, (H + 2 * pad - kh) / s + 1);
        assert_int_equal(ow, (W + 2 * pad - kw) / s + 1);
        assert_int_equal(bp_layer_param_count(l), F * C * kh * kw + F);
        const size_t in = C * H * W, out = F * oh * ow;
        float *x = malloc(N * in * sizeof *x), *y = malloc(N * out * sizeof *y);
        float *w = malloc(F * C * kh * kw * sizeof *w), b[8];
        assert_true(x != NULL && y != NULL && w != NULL);
        bp_test_fill_uniform(x, N * in, -1.0f, 1.0f, &rng_state);
        bp_test_fill_uniform(b, F, -0.5f, 0.5f, &rng_state);
        assert_status(bp_layer_set_biases(l, b, F), BP_OK);
        assert_status(bp_layer_get_weights(l, w, F * C * kh * kw), BP_OK);
        assert_status(bp_net_predict(net, x, N, y, N * out), BP_OK);
        const float *yt;
        assert_status(bp_net_forward(net, x, N, &yt), BP_OK);
        for (size_t i = 0; i < N; i++)
            for (size_t f = 0; f < F; f++)
                for (size_t oy = 0; oy < oh; oy++)
                    for (size_t ox = 0; ox < ow; ox++) {
                        const size_t at = i * out + (f * oh + oy) * ow + ox;
                        const double want =
                            direct_conv(x + i * in, w, b, C, H, W, kh, kw, s, pad, f, oy, ox);
                        assert_close(y[at], want, 1e-5, 1e-5);
                        assert_close(yt[at], want, 1e-5, 1e-5);
                    }
        free(x);
        free(y);
        free(w);
        bp_net_free(net);
    }
}

static void fill_inputs(float *x, size_t count)
{
    bp_test_fill_uniform(x, count, -1.0f, 1.0f, &rng_state);
}

/* Random biases so that every parameter matters. */
static void randomise_biases(bp_net *net)
{
    for (size_t i = 0; i < bp_net_layer_count(net); i++) {
        bp_layer *l = bp_net_layer(net, i);
        const size_t nb = l->nbiases;
        if (nb == 0 || bp_layer_kind(l) == BP_LAYER_BATCHNORM) continue;
        float b[64];
        bp_test_fill_uniform(b, nb, -0.3f, 0.3f, &rng_state);
        assert_status(bp_layer_set_biases(l, b, nb), BP_OK);
    }
}

/* Tolerances for the gradient checks below: float32 library against a double reference,
 * central differences with eps 1e-6 in double (truncation ~1e-12). The library's sums run
 * over at most a few hundred products, so 2e-3 relative plus 1e-4 of the largest gradient
 * leaves ample margin for rounding while a wrong term (an off-by-one window, a missing
 * padding skip) shows up as an O(1) relative error. */
#define RTOL 2e-3
#define ATOL 1e-4

static void conv_gradients_with_stride_and_padding(void **state)
{
    (void)state;
    enum { N = 2, C = 2, H = 7, W = 6 };
    bp_net *net;
    assert_status(bp_net_create_image(&net, C, H, W, 11), BP_OK);
    assert_status(bp_net_add_conv2d(net, 3, 3, 2, 2, 1, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_conv2d(net, 2, 2, 2, 1, 1, BP_ACT_SIGMOID), BP_OK);
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 0, BP_ACT_IDENTITY), BP_OK);
    randomise_biases(net);
    size_t c, h, w;
    assert_status(bp_layer_output_shape(bp_net_layer(net, 2), &c, &h, &w), BP_OK);
    const size_t out = c * h * w;
    float x[N * C * H * W], t[N * 64];
    fill_inputs(x, N * C * H * W);
    bp_test_fill_uniform(t, N * out, -1.0f, 1.0f, &rng_state);
    ref_check_grads(net, BP_LOSS_MSE, x, t, N, RTOL, ATOL);
    bp_net_free(net);
}

/* The same results when the batch goes through the convolutions in several chunks (one
 * sample each, then a few samples each) as in one. */
static void conv_in_several_chunks_matches_reference(void **state)
{
    const size_t saved = bp__conv_chunk_floats;
    const size_t budgets[] = {1, 170}; /* S = 1; S = 2 of 3 samples for 5x5 inputs */
    for (size_t k = 0; k < sizeof budgets / sizeof budgets[0]; k++) {
        bp__conv_chunk_floats = budgets[k];
        conv_matches_direct_convolution(state);
        conv_gradients_with_stride_and_padding(state);
    }
    bp__conv_chunk_floats = saved;
}

static void pool_gradients_match_reference(void **state)
{
    (void)state;
    enum { N = 2, C = 1, H = 8, W = 8 };
    /* max 2/2, max 3/2 (overlapping), avg 2/2, avg 3/1 (overlapping), global average */
    for (int k = 0; k < 5; k++) {
        bp_net *net;
        assert_status(bp_net_create_image(&net, C, H, W, 20 + (uint64_t)k), BP_OK);
        assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 1, BP_ACT_TANH), BP_OK);
        switch (k) {
        case 0: assert_status(bp_net_add_maxpool2d(net, 2, 2), BP_OK); break;
        case 1: assert_status(bp_net_add_maxpool2d(net, 3, 2), BP_OK); break;
        case 2: assert_status(bp_net_add_avgpool2d(net, 2, 2), BP_OK); break;
        case 3: assert_status(bp_net_add_avgpool2d(net, 3, 1), BP_OK); break;
        default: assert_status(bp_net_add_global_avgpool(net), BP_OK); break;
        }
        assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
        randomise_biases(net);
        float x[N * C * H * W];
        const float t[N] = {2, 0};
        fill_inputs(x, N * C * H * W);
        ref_check_grads(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, t, N, RTOL, ATOL);
        bp_net_free(net);
    }
}

/* Max pooling 2/2 (its unrolled path) on odd planes, with many ties: y is the window's
 * maximum, dy goes to the first position (in scan order) holding it and every other input
 * gets 0, including the row and column no window covers; the same at 1, 2 and 3 threads. */
static void maxpool_2x2_routes_to_the_first_maximum_on_odd_planes(void **state)
{
    (void)state;
    /* 64 x 16 planes: passes long enough to be split (BP__WORKERS_MIN_FLOATS) */
    enum { N = 64, C = 16, H = 7, W = 9, OH = 3, OW = 4, IN = C * H * W, OUT = C * OH * OW };
    const int saved = bp_get_num_threads();
    bp_net *net;
    assert_status(bp_net_create_image(&net, C, H, W, 3), BP_OK);
    assert_status(bp_net_add_maxpool2d(net, 2, 2), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    float *x = malloc(N * IN * sizeof *x), *dx = malloc(N * IN * sizeof *dx);
    float *y = malloc(N * OUT * sizeof *y), *dy = malloc(N * OUT * sizeof *dy);
    float *ref = malloc(N * IN * sizeof *ref);
    assert_true(x && dx && y && dy && ref);
    uint64_t r = 5;
    bp_test_fill_uniform(x, N * IN, 0.0f, 4.0f, &r);
    for (size_t k = 0; k < N * IN; k++)
        x[k] = floorf(x[k]) - 1.0f; /* -1, 0, 1, 2: ties in most windows */
    bp_test_fill_uniform(dy, N * OUT, -1.0f, 1.0f, &r);
    for (size_t k = 0; k < N * IN; k++)
        ref[k] = 0.0f;
    for (size_t pl = 0; pl < N * C; pl++)
        for (size_t oy = 0; oy < OH; oy++)
            for (size_t ox = 0; ox < OW; ox++) {
                const float *xc = x + pl * H * W;
                size_t at = (2 * oy) * W + 2 * ox;
                for (size_t a = 0; a < 2; a++)
                    for (size_t b = 0; b < 2; b++)
                        if (xc[(2 * oy + a) * W + 2 * ox + b] > xc[at])
                            at = (2 * oy + a) * W + 2 * ox + b;
                ref[pl * H * W + at] = dy[(pl * OH + oy) * OW + ox];
            }
    for (int threads = 1; threads <= 3; threads++) {
        assert_status(bp_set_num_threads(threads), BP_OK);
        for (size_t k = 0; k < N * IN; k++)
            dx[k] = 123.0f; /* whatever the buffer held before */
        l->vt->forward(l, N, x, NULL, y, 1);
        for (size_t pl = 0; pl < N * C; pl++)
            for (size_t q = 0; q < OH * OW; q++) {
                const size_t oy = q / OW, ox = q % OW;
                const float *xc = x + pl * H * W;
                float m = xc[2 * oy * W + 2 * ox];
                for (size_t a = 0; a < 2; a++)
                    for (size_t b = 0; b < 2; b++)
                        m = fmaxf(m, xc[(2 * oy + a) * W + 2 * ox + b]);
                assert_true(y[pl * OH * OW + q] == m);
            }
        assert_int_equal(l->vt->backward(l, N, x, NULL, y, dy, 0, dx, 0), 0);
        assert_memory_equal(dx, ref, N * IN * sizeof *dx);
    }
    assert_status(bp_set_num_threads(saved), BP_OK);
    free(x), free(dx), free(y), free(dy), free(ref);
    bp_net_free(net);
}

/* The convolution's chunk size follows the thread budget (wide chunks for BLAS's threads,
 * one sample's columns on one thread). A backward after the budget changed reads the columns
 * in the layout its forward wrote: the gradients are those of a forward and backward at one
 * budget (up to BLAS's summation order). */
static void conv_backward_reads_the_chunks_of_its_forward(void **state)
{
    (void)state;
    enum { N = 4, C = 16, H = 16, W = 16, IN = C * H * W, OUT = 4 * H * W };
    const int saved = bp_get_num_threads();
    bp_net *net;
    assert_status(bp_net_create_image(&net, C, H, W, 12), BP_OK);
    /* K x P = 144 x 256: one sample per chunk on one thread, all four with two */
    assert_status(bp_net_add_conv2d(net, 8, 3, 3, 1, 1, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_conv2d(net, 4, 3, 3, 1, 1, BP_ACT_IDENTITY), BP_OK);
    float *x = malloc(N * IN * sizeof *x), *dy = malloc(N * OUT * sizeof *dy);
    assert_true(x != NULL && dy != NULL);
    bp_test_fill_uniform(x, N * IN, -1.0f, 1.0f, &rng_state);
    bp_test_fill_uniform(dy, N * OUT, -1.0f, 1.0f, &rng_state);
    const float *y;
    size_t np;
    assert_status(bp_set_num_threads(1), BP_OK);
    assert_status(bp_net_forward(net, x, N, &y), BP_OK);
    assert_status(bp_net_backward(net, dy, N), BP_OK);
    const float *g = bp_net_grads(net, &np);
    float *ref = malloc(np * sizeof *ref);
    assert_non_null(ref);
    memcpy(ref, g, np * sizeof *ref);
    for (int order = 0; order < 2; order++) {
        assert_status(bp_set_num_threads(order == 0 ? 2 : 1), BP_OK);
        assert_status(bp_net_forward(net, x, N, &y), BP_OK);
        assert_status(bp_set_num_threads(order == 0 ? 1 : 2), BP_OK);
        assert_status(bp_net_backward(net, dy, N), BP_OK);
        g = bp_net_grads(net, &np);
        for (size_t k = 0; k < np; k++)
            assert_close(g[k], ref[k], 1e-4, 1e-5);
    }
    assert_status(bp_set_num_threads(saved), BP_OK);
    free(ref), free(x), free(dy);
    bp_net_free(net);
}

/* conv - BN - ReLU - pool - conv - BN - ReLU - pool - flatten - dense - softmax. */
static void small_cnn_gradients_match_reference(void **state)
{
    (void)state;
    enum { N = 4, C = 1, H = 10, W = 10 };
    bp_net *net;
    assert_status(bp_net_create_image(&net, C, H, W, 31), BP_OK);
    assert_status(bp_net_add_conv2d(net, 3, 3, 3, 1, 0, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_maxpool2d(net, 2, 2), BP_OK);
    assert_status(bp_net_add_conv2d(net, 4, 2, 2, 1, 1, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_ELU), BP_OK);
    assert_status(bp_net_add_avgpool2d(net, 2, 2), BP_OK);
    assert_status(bp_net_add_flatten(net), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_SOFTMAX), BP_OK);
    randomise_biases(net);
    float x[N * C * H * W];
    const float t[N] = {0, 3, 1, 2};
    fill_inputs(x, N * C * H * W);
    ref_check_grads(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, t, N, RTOL, ATOL);
    bp_net_free(net);
}

static void flatten_is_zero_cost_and_shapes_chain(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create_image(&net, 3, 12, 10, 1), BP_OK);
    size_t c, h, w;
    assert_status(bp_net_input_shape(net, &c, &h, &w), BP_OK);
    assert_true(c == 3 && h == 12 && w == 10);
    assert_int_equal(bp_net_input_size(net), 360);
    assert_status(bp_net_add_conv2d(net, 8, 3, 3, 1, 1, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_maxpool2d(net, 2, 2), BP_OK);
    assert_status(bp_net_add_dropout(net, 0.1), BP_OK);
    assert_status(bp_net_add_flatten(net), BP_OK);
    assert_status(bp_net_add_dense(net, 5, BP_ACT_SOFTMAX), BP_OK);
    const size_t want[5][3] = {{8, 12, 10}, {8, 6, 5}, {8, 6, 5}, {240, 1, 1}, {5, 1, 1}};
    const int kinds[5] = {BP_LAYER_CONV2D, BP_LAYER_MAXPOOL2D, BP_LAYER_DROPOUT, BP_LAYER_FLATTEN,
                          BP_LAYER_DENSE};
    for (size_t i = 0; i < 5; i++) {
        bp_layer *l = bp_net_layer(net, i);
        assert_status(bp_layer_output_shape(l, &c, &h, &w), BP_OK);
        assert_true(c == want[i][0] && h == want[i][1] && w == want[i][2]);
        assert_int_equal(bp_layer_output_size(l), c * h * w);
        assert_int_equal(bp_layer_kind(l), kinds[i]);
    }
    assert_int_equal(bp_layer_input_size(bp_net_layer(net, 4)), 240);
    float x[2 * 360];
    fill_inputs(x, 2 * 360);
    const float *y;
    assert_status(bp_net_forward(net, x, 2, &y), BP_OK);
    /* the flatten layer's output is its input's buffer */
    assert_ptr_equal(net->ws.y[3], net->ws.y[2]);
    const float t[2] = {1, 4};
    float lv;
    assert_status(bp_net_compute_grads(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, t, 2, &lv), BP_OK);
    /* The summary shows image shapes and "-" for kinds without an activation. */
    char buf[2048];
    assert_status(bp_net_summary(net, buf, sizeof buf, NULL), BP_OK);
    assert_non_null(strstr(buf, "[n x 3 x 12 x 10]"));
    assert_non_null(strstr(buf, "[n x 8 x 6 x 5]"));
    assert_non_null(strstr(buf, "[n x 240]"));
    assert_non_null(strstr(buf, "conv2d"));
    assert_non_null(strstr(buf, "maxpool2d"));
    assert_non_null(strstr(buf, "relu"));
    bp_net_free(net);
}

static void flatten_as_first_layer_copies(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create_image(&net, 2, 2, 2, 3), BP_OK);
    assert_status(bp_net_add_flatten(net), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    float x[16], t[4];
    fill_inputs(x, 16);
    bp_test_fill_uniform(t, 4, -1.0f, 1.0f, &rng_state);
    ref_check_grads(net, BP_LOSS_MSE, x, t, 2, RTOL, ATOL);
    bp_net_free(net);
}

/* A softmax activation layer ends the net: the fused softmax + cross-entropy path reads its
 * logits from the layer's scratch, like a dense softmax layer's. */
static void softmax_activation_layer_fuses_with_cross_entropy(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create_image(&net, 2, 3, 3, 4), BP_OK);
    assert_status(bp_net_add_conv2d(net, 3, 2, 2, 1, 0, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_global_avgpool(net), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_SOFTMAX), BP_OK);
    randomise_biases(net);
    float x[3 * 18];
    const float t[3] = {3, 0, 1};
    fill_inputs(x, 3 * 18);
    ref_check_grads(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, t, 3, RTOL, ATOL);
    bp_net_free(net);
}

static void cnn_trains_and_clones(void **state)
{
    (void)state;
    /* Two classes of 6x6 images: a bright vertical or horizontal bar. */
    enum { N = 32, H = 6, W = 6 };
    float x[N * H * W], t[N];
    for (size_t i = 0; i < N; i++) {
        t[i] = (float)(i % 2);
        bp_test_fill_uniform(x + i * H * W, H * W, 0.0f, 0.3f, &rng_state);
        const size_t at = 1 + (i / 2) % 4;
        for (size_t k = 0; k < 6; k++)
            x[i * H * W + (t[i] > 0 ? k * W + at : at * W + k)] += 1.0f;
    }
    bp_net *net;
    bp_optimizer *opt;
    assert_status(bp_net_create_image(&net, 1, H, W, 8), BP_OK);
    assert_status(bp_net_add_conv2d(net, 4, 3, 3, 1, 1, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_maxpool2d(net, 2, 2), BP_OK);
    assert_status(bp_net_add_global_avgpool(net), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.05), BP_OK);
    float first = 0.0f, last = 0.0f;
    for (int e = 0; e < 60; e++) {
        assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, t, N, &last),
                      BP_OK);
        if (e == 0) first = last;
    }
    assert_true(last < 0.5f * first);
    float p[2 * N], q[2 * N];
    assert_status(bp_net_predict(net, x, N, p, 2 * N), BP_OK);
    size_t right = 0;
    for (size_t i = 0; i < N; i++)
        right += (p[2 * i + 1] > p[2 * i]) == (t[i] > 0);
    assert_true(right >= N - 2);
    bp_net *copy;
    assert_status(bp_net_clone(&copy, net), BP_OK);
    assert_status(bp_net_predict(copy, x, N, q, 2 * N), BP_OK);
    assert_memory_equal(p, q, sizeof p);
    bp_net_free(copy);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void image_functions_reject_bad_input(void **state)
{
    (void)state;
    bp_net *net = (bp_net *)(uintptr_t)1;
    assert_status(bp_net_create_image(NULL, 1, 2, 2, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create_image(&net, 0, 2, 2, 1), BP_ERR_INVALID_ARG);
    assert_null(net);
    assert_status(bp_net_create_image(&net, 1, 0, 2, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create_image(&net, 1, 2, 0, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create_image(&net, 4096, 4096, 2, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create_image(&net, SIZE_MAX, SIZE_MAX, 2, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create_image_ex(&net, 1, 2, 2, 1, bp_test_alloc_fn, NULL, NULL),
                  BP_ERR_INVALID_ARG);
    size_t c, h, w;
    assert_status(bp_net_input_shape(NULL, &c, &h, &w), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_output_shape(NULL, &c, &h, &w), BP_ERR_INVALID_ARG);

    assert_status(bp_net_add_conv2d(NULL, 1, 3, 3, 1, 0, BP_ACT_RELU), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_maxpool2d(NULL, 2, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_avgpool2d(NULL, 2, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_global_avgpool(NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_flatten(NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_activation(NULL, BP_ACT_RELU), BP_ERR_INVALID_ARG);

    assert_status(bp_net_create_image(&net, 2, 5, 5, 1), BP_OK);
    assert_status(bp_net_input_shape(net, NULL, &h, &w), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_conv2d(net, 0, 3, 3, 1, 0, BP_ACT_RELU), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_conv2d(net, 2, 0, 3, 1, 0, BP_ACT_RELU), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 0, 0, BP_ACT_RELU), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 3, BP_ACT_RELU), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 0, 99), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 0, BP_ACT_SOFTMAX), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_conv2d(net, 2, 6, 3, 1, 0, BP_ACT_RELU), BP_ERR_SHAPE);
    assert_status(bp_net_add_conv2d(net, 1u << 20, 3, 3, 1, 1, BP_ACT_RELU), BP_ERR_SHAPE);
    assert_status(bp_net_add_maxpool2d(net, 0, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_maxpool2d(net, 2, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_maxpool2d(net, 6, 1), BP_ERR_SHAPE);
    assert_status(bp_net_add_avgpool2d(net, 6, 6), BP_ERR_SHAPE);
    assert_status(bp_net_add_activation(net, -1), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_net_layer_count(net), 0);
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 1, BP_ACT_RELU), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    assert_status(bp_layer_output_shape(l, &c, NULL, &w), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(l, BP_LAYER_DROPOUT_RATE, 0.1), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(l, BP_LAYER_LEAKY_SLOPE, 0.1), BP_OK);
    /* fan_in = C*kh*kw for the initialisation: He normal std sqrt(2/18) */
    assert_status(bp_layer_init_weights(l, BP_INIT_NORMAL, 0.25), BP_OK);
    assert_status(bp_layer_init_weights(l, BP_INIT_NORMAL, -1.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_add_activation(net, BP_ACT_SOFTMAX), BP_OK);
    /* nothing may follow a softmax */
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 1, BP_ACT_RELU), BP_ERR_STATE);
    assert_status(bp_net_add_maxpool2d(net, 2, 2), BP_ERR_STATE);
    assert_status(bp_net_add_avgpool2d(net, 2, 2), BP_ERR_STATE);
    assert_status(bp_net_add_global_avgpool(net), BP_ERR_STATE);
    assert_status(bp_net_add_flatten(net), BP_ERR_STATE);
    assert_status(bp_net_add_activation(net, BP_ACT_RELU), BP_ERR_STATE);
    assert_status(bp_net_add_dropout(net, 0.5), BP_ERR_STATE);
    assert_int_equal(bp_net_layer_count(net), 2);
    bp_net_free(net);
}

/* Conv weights drawn with fan_in = C*kh*kw: the sample variance of He normal weights. */
static void conv_initialisation_uses_receptive_field_fans(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create_image(&net, 4, 8, 8, 5), BP_OK);
    assert_status(bp_net_add_conv2d(net, 64, 3, 3, 1, 1, BP_ACT_RELU), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    const size_t nw = 64 * 4 * 9;
    float *w = malloc(nw * sizeof *w);
    assert_non_null(w);
    assert_status(bp_layer_get_weights(l, w, nw), BP_OK);
    double ss = 0.0;
    for (size_t k = 0; k < nw; k++)
        ss += (double)w[k] * (double)w[k];
    assert_close(ss / nw, 2.0 / 36.0, 0.1, 0.0); /* 2304 samples: ~3% standard error */
    assert_status(bp_layer_init_weights(l, BP_INIT_NORMAL, 0.01), BP_OK);
    assert_status(bp_layer_get_weights(l, w, nw), BP_OK);
    ss = 0.0;
    for (size_t k = 0; k < nw; k++)
        ss += (double)w[k] * (double)w[k];
    assert_close(sqrt(ss / nw), 0.01, 0.05, 0.0);
    free(w);
    bp_net_free(net);
}

static void building_a_cnn_survives_every_allocation_failure(void **state)
{
    (void)state;
    for (long k = 1;; k++) {
        bp_test_alloc ta = {.fail_at = k};
        bp_net *net;
        if (bp_net_create_image_ex(&net, 1, 8, 8, 1, bp_test_alloc_fn, bp_test_free_fn, &ta) !=
            BP_OK) {
            assert_int_equal(ta.live, 0);
            continue;
        }
        bp_status s = bp_net_add_conv2d(net, 2, 3, 3, 1, 1, BP_ACT_RELU);
        if (s == BP_OK) s = bp_net_add_batchnorm(net);
        if (s == BP_OK) s = bp_net_add_activation(net, BP_ACT_RELU);
        if (s == BP_OK) s = bp_net_add_maxpool2d(net, 2, 2);
        if (s == BP_OK) s = bp_net_add_avgpool2d(net, 2, 1);
        if (s == BP_OK) s = bp_net_add_dropout(net, 0.2);
        if (s == BP_OK) s = bp_net_add_flatten(net);
        if (s == BP_OK) s = bp_net_add_global_avgpool(net);
        if (s == BP_OK) s = bp_net_add_dense(net, 2, BP_ACT_SOFTMAX);
        bp_net *copy = NULL;
        if (s == BP_OK) s = bp_net_clone(&copy, net);
        if (s != BP_OK) assert_int_equal(s, BP_ERR_NOMEM);
        bp_net_free(copy);
        bp_net_free(net);
        assert_int_equal(ta.live, 0);
        if (s == BP_OK) break;
        assert_true(k < 1000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(conv_matches_direct_convolution),
        bp_add_test(conv_gradients_with_stride_and_padding),
        bp_add_test(conv_in_several_chunks_matches_reference),
        bp_add_test(conv_backward_reads_the_chunks_of_its_forward),
        bp_add_test(pool_gradients_match_reference),
        bp_add_test(maxpool_2x2_routes_to_the_first_maximum_on_odd_planes),
        bp_add_test(small_cnn_gradients_match_reference),
        bp_add_test(flatten_is_zero_cost_and_shapes_chain),
        bp_add_test(flatten_as_first_layer_copies),
        bp_add_test(softmax_activation_layer_fuses_with_cross_entropy),
        bp_add_test(cnn_trains_and_clones),
        bp_add_test(image_functions_reject_bad_input),
        bp_add_test(conv_initialisation_uses_receptive_field_fans),
        bp_add_test(building_a_cnn_survives_every_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
