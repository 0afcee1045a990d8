/* test_sequence.c -- sequence-shaped nets (issue 14): creation and shapes, the steps carried
 * through the layers, refusals of image layers, flatten, per-step dense/activation layers
 * against a per-step reference, save/load (format version 2) and clone. */
#include "test_util.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
