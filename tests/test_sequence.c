/* test_sequence.c -- sequence-shaped nets (issue 14): creation and shapes, the steps carried
 * through the layers, refusals of image layers, flatten, per-step dense/activation layers
 * against a per-step reference, save/load (format version 2) and clone; the embedding and
 * layer-normalisation layers and the per-step losses against finite differences of the
 * double-precision reference (tests/ref_net.c) over T = 1..7; bad input (widths, ids, NaN)
 * leaving the net untouched; fit/evaluate with per-step targets. */
#include "test_util.h"
#include "ref_net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 1414;

static size_t out_steps(bp_net *net, size_t i)
{
    size_t t = 99;
    assert_status(bp_layer_output_steps(bp_net_layer(net, i), &t), BP_OK);
    return t;
}

static void assert_shape(bp_net *net, size_t i, size_t c, size_t h, size_t w)
{
    size_t oc, oh, ow;
    assert_status(bp_layer_output_shape(bp_net_layer(net, i), &oc, &oh, &ow), BP_OK);
    assert_int_equal(oc, c);
    assert_int_equal(oh, h);
    assert_int_equal(ow, w);
}

static void create_sequence_reports_shape_and_steps(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create_sequence(&net, 5, 3, 1), BP_OK);
    size_t c, h, w, t = 0;
    assert_status(bp_net_input_shape(net, &c, &h, &w), BP_OK);
    assert_int_equal(c, 1);
    assert_int_equal(h, 5);
    assert_int_equal(w, 3);
    assert_status(bp_net_input_steps(net, &t), BP_OK);
    assert_int_equal(t, 5);
    assert_int_equal(bp_net_input_size(net), 15);
    assert_int_equal(bp_net_output_size(net), 15);
    bp_net_free(net);

    /* Flat and image nets have no steps, nor do their layers. */
    assert_status(bp_net_create_image(&net, 1, 5, 3, 1), BP_OK);
    assert_status(bp_net_input_steps(net, &t), BP_OK);
    assert_int_equal(t, 0);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_RELU), BP_OK);
    assert_int_equal(out_steps(net, 0), 0);
    assert_shape(net, 0, 4, 1, 1);
    bp_net_free(net);
}

static void create_sequence_rejects_bad_arguments(void **state)
{
    (void)state;
    bp_net *net = (bp_net *)&rng_state;
    assert_status(bp_net_create_sequence(NULL, 5, 3, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create_sequence(&net, 0, 3, 1), BP_ERR_INVALID_ARG);
    assert_null(net);
    assert_status(bp_net_create_sequence(&net, 5, 0, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create_sequence(&net, (size_t)1 << 13, (size_t)1 << 12, 1),
                  BP_ERR_INVALID_ARG);
    assert_status(bp_net_create_sequence(&net, SIZE_MAX, 2, 1), BP_ERR_INVALID_ARG);
    assert_null(net);
    assert_status(bp_net_create_sequence_ex(&net, 2, 2, 1, bp_test_alloc_fn, NULL, NULL),
                  BP_ERR_INVALID_ARG);
    /* The allocator is used. */
    bp_test_alloc ta = {0};
    assert_status(bp_net_create_sequence_ex(&net, 4, 2, 1, bp_test_alloc_fn, bp_test_free_fn, &ta),
                  BP_OK);
    assert_true(ta.allocs > 0);
    bp_net_free(net);
    assert_int_equal(ta.live, 0);
    size_t t;
    assert_status(bp_net_input_steps(NULL, &t), BP_ERR_INVALID_ARG);
    assert_status(bp_net_create_sequence(&net, 4, 2, 1), BP_OK);
    assert_status(bp_net_input_steps(net, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_TANH), BP_OK);
    assert_status(bp_layer_output_steps(NULL, &t), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_output_steps(bp_net_layer(net, 0), NULL), BP_ERR_INVALID_ARG);
    bp_net_free(net);
}

static void steps_flow_through_per_step_layers(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create_sequence(&net, 6, 4, 2), BP_OK);
    assert_status(bp_net_add_dense(net, 7, BP_ACT_RELU), BP_OK); /* [6 x 7] */
    assert_status(bp_net_add_dropout(net, 0.25), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK); /* [6 x 3] */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(out_steps(net, i), 6);
        assert_shape(net, i, 1, 6, 7);
        assert_int_equal(bp_layer_output_size(bp_net_layer(net, i)), 42);
    }
    assert_int_equal(out_steps(net, 3), 6);
    assert_shape(net, 3, 1, 6, 3);
    /* One weight matrix shared by the steps: [units x step width]. */
    assert_int_equal(bp_layer_param_count(bp_net_layer(net, 0)), 7 * 4 + 7);
    assert_int_equal(bp_layer_param_count(bp_net_layer(net, 3)), 3 * 7 + 3);
    assert_int_equal(bp_layer_input_size(bp_net_layer(net, 3)), 42);
    assert_int_equal(bp_net_output_size(net), 18);
    char buf[1024];
    assert_status(bp_net_summary(net, buf, sizeof buf, NULL), BP_OK);
    assert_non_null(strstr(buf, "[n x 6 x 4]"));
    assert_non_null(strstr(buf, "[n x 6 x 3]"));
    bp_net_free(net);
}

static void flatten_makes_a_sequence_flat(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create_sequence(&net, 3, 2, 3), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_flatten(net), BP_OK);
    assert_int_equal(out_steps(net, 1), 0);
    assert_shape(net, 1, 12, 1, 1);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK); /* over the whole row */
    assert_int_equal(out_steps(net, 2), 0);
    assert_int_equal(bp_layer_param_count(bp_net_layer(net, 2)), 2 * 12 + 2);
    /* flatten passes the values through unchanged */
    float x[6], y[12], z[12];
    bp_test_fill_uniform(x, 6, -1.0f, 1.0f, &rng_state);
    bp_net *head;
    assert_status(bp_net_create_sequence(&head, 3, 2, 3), BP_OK);
    assert_status(bp_net_add_dense(head, 4, BP_ACT_IDENTITY), BP_OK);
    float w[8], b[4];
    assert_status(bp_layer_get_weights(bp_net_layer(net, 0), w, 8), BP_OK);
    assert_status(bp_layer_get_biases(bp_net_layer(net, 0), b, 4), BP_OK);
    assert_status(bp_layer_set_weights(bp_net_layer(head, 0), w, 8), BP_OK);
    assert_status(bp_layer_set_biases(bp_net_layer(head, 0), b, 4), BP_OK);
    assert_status(bp_net_predict(head, x, 1, y, 12), BP_OK);
    /* the flatten layer's output is the dense layer's */
    bp_net *upto;
    assert_status(bp_net_clone(&upto, head), BP_OK);
    assert_status(bp_net_add_flatten(upto), BP_OK);
    assert_status(bp_net_predict(upto, x, 1, z, 12), BP_OK);
    assert_memory_equal(y, z, sizeof y);
    bp_net_free(upto);
    bp_net_free(head);
    /* flatten right after the input sequence */
    bp_net_free(net);
    assert_status(bp_net_create_sequence(&net, 3, 2, 3), BP_OK);
    assert_status(bp_net_add_flatten(net), BP_OK);
    assert_int_equal(out_steps(net, 0), 0);
    assert_shape(net, 0, 6, 1, 1);
    bp_net_free(net);
}

static void image_layers_refuse_sequences(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create_sequence(&net, 8, 8, 4), BP_OK);
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 0, BP_ACT_RELU), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_net_last_error(net), "sequences"));
    assert_status(bp_net_add_maxpool2d(net, 2, 2), BP_ERR_SHAPE);
    assert_status(bp_net_add_avgpool2d(net, 2, 2), BP_ERR_SHAPE);
    assert_status(bp_net_add_global_avgpool(net), BP_ERR_SHAPE);
    assert_status(bp_net_add_batchnorm(net), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_net_last_error(net), "layernorm"));
    assert_int_equal(bp_net_layer_count(net), 0);
    /* also after a per-step layer */
    assert_status(bp_net_add_dense(net, 8, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 0, BP_ACT_RELU), BP_ERR_SHAPE);
    assert_int_equal(bp_net_layer_count(net), 1);
    /* once flat, what takes flat rows works again */
    assert_status(bp_net_add_flatten(net), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    bp_net_free(net);
}

/* y[r][t] = f(W x[r][t] + b) for each step, in double. */
static void dense_reference(const float *x, size_t n, size_t T, size_t F, const float *w,
                            const float *b, size_t U, int softmax, double *y)
{
    for (size_t r = 0; r < n * T; r++) {
        double *yr = y + r * U;
        double mx = -INFINITY;
        for (size_t u = 0; u < U; u++) {
            double z = (double)b[u];
            for (size_t f = 0; f < F; f++)
                z += (double)w[u * F + f] * (double)x[r * F + f];
            yr[u] = softmax ? z : tanh(z);
            if (z > mx) mx = z;
        }
        if (softmax) {
            double sum = 0.0;
            for (size_t u = 0; u < U; u++)
                sum += (yr[u] = exp(yr[u] - mx));
            for (size_t u = 0; u < U; u++)
                yr[u] /= sum;
        }
    }
}

static void per_step_dense_matches_reference(void **state)
{
    (void)state;
    /* T = 1 (the single-row kernels at n = 1) .. 7, narrow and wide layers. */
    static const size_t cfg[][3] = {{1, 3, 2}, {2, 3, 5},  {3, 1, 4}, {4, 17, 20},
                                    {5, 2, 3}, {6, 33, 9}, {7, 4, 16}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        const size_t T = cfg[c][0], F = cfg[c][1], U = cfg[c][2];
        for (int softmax = 0; softmax < 2; softmax++)
            for (size_t n = 1; n <= 3; n += 2) {
                bp_net *net;
                assert_status(bp_net_create_sequence(&net, T, F, c + 1), BP_OK);
                assert_status(bp_net_add_dense(net, U, softmax ? BP_ACT_SOFTMAX : BP_ACT_TANH),
                              BP_OK);
                float *x = malloc(n * T * F * sizeof *x), *y = malloc(n * T * U * sizeof *y);
                float *w = malloc(U * F * sizeof *w), *b = malloc(U * sizeof *b);
                double *ref = malloc(n * T * U * sizeof *ref);
                assert_true(x && y && w && b && ref);
                bp_test_fill_uniform(x, n * T * F, -1.0f, 1.0f, &rng_state);
                bp_test_fill_uniform(b, U, -0.5f, 0.5f, &rng_state);
                assert_status(bp_layer_set_biases(bp_net_layer(net, 0), b, U), BP_OK);
                assert_status(bp_layer_get_weights(bp_net_layer(net, 0), w, U * F), BP_OK);
                dense_reference(x, n, T, F, w, b, U, softmax, ref);
                assert_status(bp_net_predict(net, x, n, y, n * T * U), BP_OK);
                for (size_t k = 0; k < n * T * U; k++)
                    assert_close(y[k], ref[k], 1e-5, 1e-6);
                const float *fy;
                assert_status(bp_net_forward(net, x, n, &fy), BP_OK);
                for (size_t k = 0; k < n * T * U; k++)
                    assert_close(fy[k], ref[k], 1e-5, 1e-6);
                free(x), free(y), free(w), free(b), free(ref);
                bp_net_free(net);
            }
    }
}

static unsigned char *save(bp_net *net, size_t *size)
{
    assert_status(bp_net_save_buffer(net, NULL, 0, size), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *buf = malloc(*size);
    assert_non_null(buf);
    assert_status(bp_net_save_buffer(net, buf, *size, size), BP_OK);
    return buf;
}

static void sequence_net_saves_loads_and_clones(void **state)
{
    (void)state;
    enum { T = 4, F = 3, N = 2 };
    bp_net *net;
    assert_status(bp_net_create_sequence(&net, T, F, 5), BP_OK);
    assert_status(bp_net_add_dense(net, 6, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_dropout(net, 0.1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_SOFTMAX), BP_OK);
    float x[N * T * F], y0[N * T * 2], y1[N * T * 2];
    bp_test_fill_uniform(x, N * T * F, -1.0f, 1.0f, &rng_state);
    assert_status(bp_net_predict(net, x, N, y0, N * T * 2), BP_OK);
    size_t size;
    unsigned char *buf = save(net, &size);
    assert_int_equal(buf[8], 2); /* format version 2: the net has input steps */
    bp_net *back;
    assert_status(bp_net_load_buffer(&back, buf, size), BP_OK);
    size_t t, c, h, w;
    assert_status(bp_net_input_steps(back, &t), BP_OK);
    assert_int_equal(t, T);
    assert_status(bp_net_input_shape(back, &c, &h, &w), BP_OK);
    assert_true(c == 1 && h == T && w == F);
    assert_int_equal(out_steps(back, 2), T);
    assert_status(bp_net_predict(back, x, N, y1, N * T * 2), BP_OK);
    assert_memory_equal(y0, y1, sizeof y0);
    /* the file is the same when written again */
    size_t size2;
    unsigned char *buf2 = save(back, &size2);
    assert_int_equal(size, size2);
    assert_memory_equal(buf, buf2, size);
    free(buf2);
    bp_net_free(back);

    /* Steps that disagree with the shape are a malformed file; the CRC is fixed up so that
     * the NET section is what is checked. The steps follow the 3 shape fields (offset 24 +
     * 16 section header + 8 inputs + 24 shape). */
    const size_t at = 24 + 16 + 8 + 24;
    assert_int_equal(buf[at], T);
    buf[at] = T + 1;
    uint32_t crc = 0xffffffffu; /* CRC-32 of bytes [0, size - 4) */
    for (size_t i = 0; i < size - 4; i++) {
        crc ^= buf[i];
        for (int k = 0; k < 8; k++)
            crc = crc >> 1 ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    crc ^= 0xffffffffu;
    for (int k = 0; k < 4; k++)
        buf[size - 4 + (size_t)k] = (unsigned char)(crc >> (8 * k));
    back = (bp_net *)&rng_state;
    assert_status(bp_net_load_buffer(&back, buf, size), BP_ERR_FORMAT);
    assert_null(back);
    assert_non_null(strstr(bp_last_error(), "steps"));
    free(buf);

    bp_net *copy;
    assert_status(bp_net_clone(&copy, net), BP_OK);
    assert_status(bp_net_input_steps(copy, &t), BP_OK);
    assert_int_equal(t, T);
    assert_status(bp_net_predict(copy, x, N, y1, N * T * 2), BP_OK);
    assert_memory_equal(y0, y1, sizeof y0);
    bp_net_free(copy);
    bp_net_free(net);
}

#define RTOL 5e-3
#define ATOL 2e-4

/* Targets for @p loss on n rows of T steps of C outputs: class ids [T], one-hot [T x C] or
 * values [T x C]. */
static void make_targets(int loss, float *t, size_t n, size_t T, size_t C)
{
    for (size_t k = 0; k < n * T; k++) {
        const size_t cls = (k * 7 + 3) % C;
        if (loss == BP_LOSS_SPARSE_SOFTMAX_CE) {
            t[k] = (float)cls;
        } else {
            for (size_t j = 0; j < C; j++)
                t[k * C + j] = loss == BP_LOSS_SOFTMAX_CE ? (float)(j == cls)
                                                          : (float)((k + j) % 5) * 0.3f - 0.6f;
        }
    }
}

static void per_step_layers_and_losses_match_finite_differences(void **state)
{
    (void)state;
    static const int losses[] = {BP_LOSS_MSE, BP_LOSS_SOFTMAX_CE, BP_LOSS_SPARSE_SOFTMAX_CE};
    enum { N = 3, F = 3, H = 5, C = 4 };
    for (size_t T = 1; T <= 7; T++)
        for (size_t li = 0; li < 3; li++) {
            const int loss = losses[li];
            bp_net *net;
            assert_status(bp_net_create_sequence(&net, T, F, 100 + T), BP_OK);
            assert_status(bp_net_add_dense(net, H, BP_ACT_TANH), BP_OK);
            assert_status(bp_net_add_layernorm(net), BP_OK);
            assert_status(bp_net_add_dropout(net, 0.0), BP_OK);
            assert_status(bp_net_add_activation(net, BP_ACT_SIGMOID), BP_OK);
            assert_status(
                bp_net_add_dense(net, C, loss == BP_LOSS_MSE ? BP_ACT_IDENTITY : BP_ACT_SOFTMAX),
                BP_OK);
            /* a gain and bias away from 1 and 0 */
            float g[H], b[H];
            bp_test_fill_uniform(g, H, 0.5f, 1.5f, &rng_state);
            bp_test_fill_uniform(b, H, -0.5f, 0.5f, &rng_state);
            assert_status(bp_layer_set_weights(bp_net_layer(net, 1), g, H), BP_OK);
            assert_status(bp_layer_set_biases(bp_net_layer(net, 1), b, H), BP_OK);
            float x[N * 7 * F], t[N * 7 * C];
            bp_test_fill_uniform(x, N * T * F, -1.5f, 1.5f, &rng_state);
            make_targets(loss, t, N, T, C);
            ref_check_grads(net, loss, x, t, N, RTOL, ATOL);
            /* n = 1: the single-row kernels when T = 1 */
            ref_check_grads(net, loss, x, t, 1, RTOL, ATOL);
            bp_net_free(net);
        }
}

static void embedding_gradients_match_finite_differences(void **state)
{
    (void)state;
    enum { N = 3, V = 6, D = 4, C = 3 };
    for (size_t T = 1; T <= 7; T++) {
        bp_net *net;
        assert_status(bp_net_create_sequence(&net, T, 1, 200 + T), BP_OK);
        assert_status(bp_net_add_embedding(net, V, D), BP_OK);
        assert_status(bp_net_add_layernorm(net), BP_OK);
        assert_status(bp_net_add_dense(net, C, BP_ACT_SOFTMAX), BP_OK);
        float x[N * 7], t[N * 7];
        for (size_t k = 0; k < N * T; k++) /* ids repeat within the batch: dW rows add up */
            x[k] = (float)((k * 5 + T) % (V - 1));
        make_targets(BP_LOSS_SPARSE_SOFTMAX_CE, t, N, T, C);
        ref_check_grads(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, t, N, RTOL, ATOL);
        /* id V-1 never appears: its row of dW is exactly 0 */
        float dw[V * D];
        assert_status(bp_layer_get_weight_grad(bp_net_layer(net, 0), dw, V * D), BP_OK);
        for (size_t d = 0; d < D; d++)
            assert_true(dw[(V - 1) * D + d] == 0.0f);
        /* per-step MSE on [T x D] embeddings directly */
        bp_net *e;
        assert_status(bp_net_create_sequence(&e, T, 1, 300 + T), BP_OK);
        assert_status(bp_net_add_embedding(e, V, D), BP_OK);
        float y[N * 7 * D];
        make_targets(BP_LOSS_MSE, y, N, T, D);
        ref_check_grads(e, BP_LOSS_MSE, x, y, N, RTOL, ATOL);
        bp_net_free(e);
        bp_net_free(net);
    }
}

static void layernorm_on_flat_and_image_rows_matches_finite_differences(void **state)
{
    (void)state;
    enum { N = 4 };
    bp_net *net;
    assert_status(bp_net_create(&net, 5, 11), BP_OK);
    assert_status(bp_net_add_dense(net, 6, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_layernorm(net), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_LN_EPSILON, 1e-3), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    float x[N * 5], t[N * 2];
    bp_test_fill_uniform(x, N * 5, -1.0f, 1.0f, &rng_state);
    bp_test_fill_uniform(t, N * 2, -1.0f, 1.0f, &rng_state);
    ref_check_grads(net, BP_LOSS_MSE, x, t, N, RTOL, ATOL);
    bp_net_free(net);

    assert_status(bp_net_create_image(&net, 2, 3, 3, 12), BP_OK);
    assert_status(bp_net_add_conv2d(net, 2, 2, 2, 1, 0, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_add_layernorm(net), BP_OK); /* over all 2 x 2 x 2 values */
    assert_int_equal(bp_layer_param_count(bp_net_layer(net, 1)), 16);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    float xi[N * 18], ti[N];
    bp_test_fill_uniform(xi, N * 18, -1.0f, 1.0f, &rng_state);
    for (size_t i = 0; i < N; i++)
        ti[i] = (float)(i % 3);
    ref_check_grads(net, BP_LOSS_SPARSE_SOFTMAX_CE, xi, ti, N, RTOL, ATOL);
    bp_net_free(net);
}

/* Every parameter of @p net, copied. */
static float *params_copy(bp_net *net, size_t *np)
{
    const float *p = bp_net_params(net, np);
    float *c = malloc(*np * sizeof *c);
    assert_non_null(c);
    memcpy(c, p, *np * sizeof *c);
    return c;
}

static void bad_ids_and_targets_leave_the_net_untouched(void **state)
{
    (void)state;
    enum { T = 3, V = 5, D = 2, C = 4, N = 2 };
    bp_net *net;
    bp_optimizer *opt;
    assert_status(bp_net_create_sequence(&net, T, 1, 9), BP_OK);
    assert_status(bp_net_add_embedding(net, V, D), BP_OK);
    assert_status(bp_net_add_dense(net, C, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    const float good[N * T] = {0, 1, 2, 3, 4, 0}, tgood[N * T] = {1, 2, 3, 0, 1, 2};
    size_t np;
    float *before = params_copy(net, &np);
    float y0[N * T * C], y1[N * T * C];
    assert_status(bp_net_predict(net, good, N, y0, N * T * C), BP_OK);

    static const float bad_ids[] = {5.0f, -1.0f, 2.5f, 1e9f};
    for (size_t b = 0; b < sizeof bad_ids / sizeof bad_ids[0]; b++) {
        float x[N * T];
        memcpy(x, good, sizeof x);
        x[4] = bad_ids[b]; /* row 1, step 1 */
        const float *fy;
        float loss_value = -1.0f;
        assert_status(
            bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, tgood, N, &loss_value),
            BP_ERR_INDEX);
        assert_non_null(strstr(bp_net_last_error(net), "row 1, step 1"));
        assert_true(loss_value == -1.0f);
        assert_status(bp_net_compute_grads(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, tgood, N, NULL),
                      BP_ERR_INDEX);
        assert_status(bp_net_forward(net, x, N, &fy), BP_ERR_INDEX);
        assert_status(bp_net_predict(net, x, N, y1, N * T * C), BP_ERR_INDEX);
        float scratch[4096];
        assert_true(bp_net_predict_scratch_floats(net, N) <= 4096);
        assert_status(bp_net_predict_ws(net, x, N, y1, N * T * C, scratch, 4096), BP_ERR_INDEX);
        assert_non_null(strstr(bp_last_error(), "step 1"));
        bp_dataset *ds;
        assert_status(bp_dataset_create(&ds, x, tgood, N, T, T), BP_OK);
        double m[4];
        assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, ds, m, 4), BP_ERR_INDEX);
        assert_status(bp_net_fit(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, ds, NULL), BP_ERR_INDEX);
        bp_dataset_free(ds);
    }
    /* NaN ids are non-finite inputs */
    float xn[N * T];
    memcpy(xn, good, sizeof xn);
    xn[2] = NAN;
    assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, xn, tgood, N, NULL),
                  BP_ERR_NONFINITE);
    /* class ids per step: out of range names the row and step; too few target columns */
    float t[N * T];
    memcpy(t, tgood, sizeof t);
    t[5] = (float)C;
    assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, good, t, N, NULL),
                  BP_ERR_INDEX);
    assert_non_null(strstr(bp_net_last_error(net), "row 1, step 2"));
    t[5] = NAN;
    assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, good, t, N, NULL),
                  BP_ERR_NONFINITE);
    bp_dataset *narrow;
    assert_status(bp_dataset_create(&narrow, good, tgood, N, T, 1), BP_OK);
    double m[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, narrow, m, 4), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_net_last_error(net), "one per step"));
    bp_dataset_free(narrow);
    /* one-hot targets per step: the data set must hold T x C columns */
    assert_status(bp_dataset_create(&narrow, good, tgood, N, T, T), BP_OK);
    assert_status(bp_net_evaluate(net, BP_LOSS_SOFTMAX_CE, narrow, m, 4), BP_ERR_SHAPE);
    bp_dataset_free(narrow);
    /* inputs of the wrong width */
    assert_status(bp_dataset_create(&narrow, good, tgood, 1, 2 * T, T), BP_OK);
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, narrow, m, 4), BP_ERR_SHAPE);
    bp_dataset_free(narrow);

    /* nothing changed: parameters, predictions, the optimizer (its first step is still to
     * come: a good step now equals a good step on a fresh net) */
    float *after = params_copy(net, &np);
    assert_memory_equal(before, after, np * sizeof *before);
    assert_status(bp_net_predict(net, good, N, y1, N * T * C), BP_OK);
    assert_memory_equal(y0, y1, sizeof y0);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, good, tgood, N, NULL),
                  BP_OK);
    free(before);
    free(after);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void embedding_and_layernorm_reject_bad_arguments(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_add_embedding(NULL, 4, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_layernorm(NULL), BP_ERR_INVALID_ARG);
    /* not a sequence of one feature */
    assert_status(bp_net_create(&net, 4, 1), BP_OK);
    assert_status(bp_net_add_embedding(net, 4, 2), BP_ERR_SHAPE);
    bp_net_free(net);
    assert_status(bp_net_create_sequence(&net, 4, 2, 1), BP_OK);
    assert_status(bp_net_add_embedding(net, 4, 2), BP_ERR_SHAPE);
    bp_net_free(net);
    assert_status(bp_net_create_sequence(&net, 4, 1, 1), BP_OK);
    assert_status(bp_net_add_embedding(net, 0, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_embedding(net, 4, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_embedding(net, ((size_t)1 << 24) + 1, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_embedding(net, 4, (size_t)1 << 23), BP_ERR_SHAPE); /* 4 x 2^23 */
    assert_int_equal(bp_net_layer_count(net), 0);
    assert_status(bp_net_add_embedding(net, 4, 2), BP_OK);
    assert_status(bp_net_add_embedding(net, 4, 2), BP_ERR_STATE); /* only first */
    bp_layer *e = bp_net_layer(net, 0);
    assert_int_equal(bp_layer_kind(e), BP_LAYER_EMBEDDING);
    assert_int_equal(bp_layer_param_count(e), 8);
    assert_shape(net, 0, 1, 4, 2);
    assert_int_equal(out_steps(net, 0), 4);
    double v;
    assert_status(bp_layer_get(e, BP_LAYER_LN_EPSILON, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(e, BP_LAYER_L2, 0.1), BP_OK);
    /* layernorm: settings and bounds */
    assert_status(bp_net_add_layernorm(net), BP_OK);
    bp_layer *ln = bp_net_layer(net, 1);
    assert_int_equal(bp_layer_kind(ln), BP_LAYER_LAYERNORM);
    assert_int_equal(out_steps(net, 1), 4);
    assert_status(bp_layer_get(ln, BP_LAYER_LN_EPSILON, &v), BP_OK);
    assert_true(v == 1e-5);
    double lo, hi;
    assert_status(bp_layer_param_bounds(BP_LAYER_LN_EPSILON, &lo, &hi), BP_OK);
    assert_true(lo == 1e-12 && hi == 1.0);
    assert_status(bp_layer_set(ln, BP_LAYER_LN_EPSILON, 0.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_set(ln, BP_LAYER_LN_EPSILON, 2.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_layer_set(ln, BP_LAYER_LN_EPSILON, 1e-3), BP_OK);
    assert_status(bp_layer_reset_settings(ln), BP_OK);
    assert_status(bp_layer_get(ln, BP_LAYER_LN_EPSILON, &v), BP_OK);
    assert_true(v == 1e-5);
    assert_status(bp_layer_set(ln, BP_LAYER_L2, 0.1), BP_ERR_INVALID_ARG);
    float g[2];
    assert_status(bp_layer_get_weights(ln, g, 2), BP_OK);
    assert_true(g[0] == 1.0f && g[1] == 1.0f);
    /* layernorm after softmax: state error */
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_net_add_layernorm(net), BP_ERR_STATE);
    bp_net_free(net);
}

/* Sequences of ids where the next id is (id + 1) % V: embedding -> layernorm -> dense
 * softmax per step learns it; the metrics count steps. */
static void many_to_many_model_trains_and_counts_steps(void **state)
{
    (void)state;
    enum { T = 5, V = 7, D = 8, N = 28 };
    float x[N * T], y[N * T];
    for (size_t r = 0; r < N; r++)
        for (size_t t = 0; t < T; t++) {
            const size_t id = (r * 3 + t * (r % 2 ? 1 : 2)) % V;
            x[r * T + t] = (float)id;
            y[r * T + t] = (float)((id + 1) % V);
        }
    bp_net *net;
    bp_optimizer *opt;
    bp_dataset *ds;
    assert_status(bp_net_create_sequence(&net, T, 1, 21), BP_OK);
    assert_status(bp_net_add_embedding(net, V, D), BP_OK);
    assert_status(bp_net_add_layernorm(net), BP_OK);
    assert_status(bp_net_add_dense(net, V, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.05), BP_OK);
    assert_status(bp_dataset_create(&ds, x, y, N, T, T), BP_OK);
    double m0[4], m1[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, ds, m0, 4), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, 60), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_BATCH_SIZE, 7), BP_OK);
    assert_status(bp_net_fit(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, ds, NULL), BP_OK);
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, ds, m1, 4), BP_OK);
    assert_true(m1[BP_METRIC_LOSS] < 0.1 * m0[BP_METRIC_LOSS]);
    assert_true(m1[BP_METRIC_ACCURACY] == 1.0);
    /* the evaluated loss is the mean over the n*T steps of -log p(target) */
    float *p = malloc(N * T * V * sizeof *p);
    assert_non_null(p);
    assert_status(bp_net_predict(net, x, N, p, N * T * V), BP_OK);
    double ce = 0.0;
    for (size_t k = 0; k < N * T; k++)
        ce -= log((double)p[k * V + (size_t)y[k]]);
    assert_close(m1[BP_METRIC_LOSS], ce / (N * T), 1e-4, 1e-6);
    free(p);

    /* Accuracy over steps, not rows: make exactly one step of one row wrong. */
    float yw[N * T];
    memcpy(yw, y, sizeof yw);
    yw[3] = (float)(((size_t)y[3] + 1) % V);
    bp_dataset *dw;
    assert_status(bp_dataset_create(&dw, x, yw, N, T, T), BP_OK);
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, dw, m1, 4), BP_OK);
    assert_close(m1[BP_METRIC_ACCURACY], 1.0 - 1.0 / (N * T), 0, 1e-12);
    /* the same with one-hot targets [T x V] */
    float *oh = calloc(N * T * V, sizeof *oh);
    assert_non_null(oh);
    for (size_t k = 0; k < N * T; k++)
        oh[k * V + (size_t)yw[k]] = 1.0f;
    bp_dataset *dh;
    assert_status(bp_dataset_create(&dh, x, oh, N, T, T * V), BP_OK);
    double m2[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_SOFTMAX_CE, dh, m2, 4), BP_OK);
    assert_close(m2[BP_METRIC_ACCURACY], m1[BP_METRIC_ACCURACY], 0, 1e-12);
    assert_close(m2[BP_METRIC_LOSS], m1[BP_METRIC_LOSS], 1e-5, 1e-7);
    free(oh);
    bp_dataset_free(dh);
    bp_dataset_free(dw);

    /* save, load, clone: the same predictions */
    size_t size;
    unsigned char *buf = save(net, &size);
    bp_net *back;
    assert_status(bp_net_load_buffer(&back, buf, size), BP_OK);
    float a[N * T * V], b[N * T * V];
    assert_status(bp_net_predict(net, x, N, a, N * T * V), BP_OK);
    assert_status(bp_net_predict(back, x, N, b, N * T * V), BP_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_status(bp_net_predict(back, x + 1, 1, b, T * V), BP_OK); /* id check still on */
    float bad[T] = {0, 1, 2, 3, (float)V};
    assert_status(bp_net_predict(back, bad, 1, b, T * V), BP_ERR_INDEX);
    bp_net *copy;
    assert_status(bp_net_clone(&copy, back), BP_OK);
    assert_status(bp_net_predict(copy, bad, 1, b, T * V), BP_ERR_INDEX);
    double e;
    assert_status(bp_layer_get(bp_net_layer(copy, 1), BP_LAYER_LN_EPSILON, &e), BP_OK);
    assert_true(e == 1e-5);
    bp_net_free(copy);
    bp_net_free(back);
    free(buf);
    bp_dataset_free(ds);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void layernorm_epsilon_and_hostile_records_load_checked(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create_sequence(&net, 2, 1, 5), BP_OK);
    assert_status(bp_net_add_embedding(net, 3, 2), BP_OK);
    assert_status(bp_net_add_layernorm(net), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_LN_EPSILON, 0.25), BP_OK);
    size_t size;
    unsigned char *buf = save(net, &size);
    bp_net *back;
    assert_status(bp_net_load_buffer(&back, buf, size), BP_OK);
    double e;
    assert_status(bp_layer_get(bp_net_layer(back, 1), BP_LAYER_LN_EPSILON, &e), BP_OK);
    assert_true(e == 0.25);
    bp_net_free(back);
    /* truncations of the file never load */
    for (size_t cut = 1; cut < size; cut += 7) {
        back = (bp_net *)&rng_state;
        assert_true(bp_net_load_buffer(&back, buf, size - cut) != BP_OK);
        assert_null(back);
    }
    free(buf);
    bp_net_free(net);
}

/* Building, training, saving and loading a sequence net under every allocation failure:
 * BP_ERR_NOMEM and no leak, until it succeeds. */
static void sequence_nets_survive_every_allocation_failure(void **state)
{
    (void)state;
    const float x[2 * 3] = {0, 1, 2, 3, 0, 1}, y[2 * 3] = {1, 2, 0, 0, 1, 2};
    for (long k = 1;; k++) {
        bp_test_alloc ta = {.fail_at = k};
        bp_net *net;
        if (bp_net_create_sequence_ex(&net, 3, 1, 1, bp_test_alloc_fn, bp_test_free_fn, &ta) !=
            BP_OK) {
            assert_int_equal(ta.live, 0);
            continue;
        }
        bp_status s = bp_net_add_embedding(net, 4, 3);
        if (s == BP_OK) s = bp_net_add_layernorm(net);
        if (s == BP_OK) s = bp_net_add_dense(net, 3, BP_ACT_SOFTMAX);
        if (s == BP_OK) s = bp_net_compute_grads(net, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, 2, NULL);
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

/* A streaming source over arrays: rows of @c in inputs and @c out targets. */
typedef struct array_source {
    const float *x, *y;
    size_t n, in, out, at;
} array_source;

static int array_read(void *user, float *x, float *y, size_t capacity, size_t *rows)
{
    array_source *a = user;
    const size_t k = a->n - a->at < capacity ? a->n - a->at : capacity;
    memcpy(x, a->x + a->at * a->in, k * a->in * sizeof(float));
    memcpy(y, a->y + a->at * a->out, k * a->out * sizeof(float));
    a->at += k;
    *rows = k;
    return 0;
}

static int array_rewind(void *user)
{
    ((array_source *)user)->at = 0;
    return 0;
}

/* Streaming sources see sequence outputs per step, as data sets do. */
static void sources_take_per_step_targets(void **state)
{
    (void)state;
    enum { T = 3, V = 4, N = 8 };
    float x[N * T], y[N * T];
    for (size_t k = 0; k < N * T; k++) {
        x[k] = (float)(k % V);
        y[k] = (float)((k + 1) % V);
    }
    bp_net *net;
    bp_dataset *ds;
    bp_source *src;
    array_source a = {x, y, N, T, T, 0};
    assert_status(bp_net_create_sequence(&net, T, 1, 4), BP_OK);
    assert_status(bp_net_add_embedding(net, V, 4), BP_OK);
    assert_status(bp_net_add_dense(net, V, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_dataset_create(&ds, x, y, N, T, T), BP_OK);
    assert_status(bp_source_create(&src, T, T, N, array_read, array_rewind, &a), BP_OK);
    double md[4], ms[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, ds, md, 4), BP_OK);
    assert_status(bp_net_evaluate_source(net, BP_LOSS_SPARSE_SOFTMAX_CE, src, ms, 4), BP_OK);
    assert_true(md[BP_METRIC_LOSS] == ms[BP_METRIC_LOSS]);
    assert_true(md[BP_METRIC_ACCURACY] == ms[BP_METRIC_ACCURACY]);
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.05), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, 40), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_SHUFFLE, 0), BP_OK);
    assert_status(bp_net_fit_source(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, src, NULL), BP_OK);
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, ds, md, 4), BP_OK);
    assert_true(md[BP_METRIC_ACCURACY] == 1.0);
    bp_source_free(src);
    /* a source with one class index per row is refused */
    assert_status(bp_source_create(&src, T, 1, N, array_read, array_rewind, &a), BP_OK);
    assert_status(bp_net_evaluate_source(net, BP_LOSS_SPARSE_SOFTMAX_CE, src, ms, 4), BP_ERR_SHAPE);
    bp_source_free(src);
    bp_optimizer_free(opt);
    bp_dataset_free(ds);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(create_sequence_reports_shape_and_steps),
        bp_add_test(create_sequence_rejects_bad_arguments),
        bp_add_test(steps_flow_through_per_step_layers),
        bp_add_test(flatten_makes_a_sequence_flat),
        bp_add_test(image_layers_refuse_sequences),
        bp_add_test(per_step_dense_matches_reference),
        bp_add_test(sequence_net_saves_loads_and_clones),
        bp_add_test(per_step_layers_and_losses_match_finite_differences),
        bp_add_test(embedding_gradients_match_finite_differences),
        bp_add_test(layernorm_on_flat_and_image_rows_matches_finite_differences),
        bp_add_test(bad_ids_and_targets_leave_the_net_untouched),
        bp_add_test(embedding_and_layernorm_reject_bad_arguments),
        bp_add_test(many_to_many_model_trains_and_counts_steps),
        bp_add_test(layernorm_epsilon_and_hostile_records_load_checked),
        bp_add_test(sequence_nets_survive_every_allocation_failure),
        bp_add_test(sources_take_per_step_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
