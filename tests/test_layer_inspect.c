/* test_layer_inspect.c -- bp_layer_kernel_shape(), bp_layer_get_state() and
 * bp_layer_set_state() (src/layer_inspect.c): what an interchange format reads and writes
 * besides weights and biases. */
#include <math.h>
#include <string.h>

#include "test_util.h"

static void kernel_shape_of_conv_and_pooling(void **state)
{
    (void)state;
    bp_net *net = NULL;
    assert_status(bp_net_create_image(&net, 2, 9, 9, 1), BP_OK);
    assert_status(bp_net_add_conv2d(net, 3, 3, 2, 2, 1, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_maxpool2d(net, 2, 1), BP_OK);
    assert_status(bp_net_add_avgpool2d(net, 1, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    size_t kh = 0, kw = 0, st = 0, pad = 9;
    assert_status(bp_layer_kernel_shape(bp_net_layer(net, 0), &kh, &kw, &st, &pad), BP_OK);
    assert_int_equal(kh, 3);
    assert_int_equal(kw, 2);
    assert_int_equal(st, 2);
    assert_int_equal(pad, 1);
    assert_status(bp_layer_kernel_shape(bp_net_layer(net, 1), &kh, &kw, &st, &pad), BP_OK);
    assert_int_equal(kh, 2);
    assert_int_equal(kw, 2);
    assert_int_equal(st, 1);
    assert_int_equal(pad, 0);
    assert_status(bp_layer_kernel_shape(bp_net_layer(net, 2), &kh, &kw, &st, &pad), BP_OK);
    assert_int_equal(kh, 1);
    /* no kernel, NULL outputs, invalid handle: nothing written */
    kh = 77;
    assert_int_equal(bp_layer_kernel_shape(bp_net_layer(net, 3), &kh, &kw, &st, &pad),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(kh, 77);
    assert_non_null(strstr(bp_last_error(), "no kernel"));
    assert_int_equal(bp_layer_kernel_shape(bp_net_layer(net, 0), NULL, &kw, &st, &pad),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(bp_layer_kernel_shape(NULL, &kh, &kw, &st, &pad), BP_ERR_INVALID_ARG);
    bp_net_free(net);
}

static void batchnorm_state_round_trips_and_is_validated(void **state)
{
    (void)state;
    bp_net *net = NULL;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    bp_layer *bn = bp_net_layer(net, 0);
    size_t count = 0;
    assert_int_equal(bp_layer_get_state(bn, NULL, 0, &count), BP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(count, 6);
    float s[6];
    assert_status(bp_layer_get_state(bn, s, 6, &count), BP_OK);
    for (int k = 0; k < 3; k++) {
        assert_true(s[k] == 0.0f);     /* running mean starts at 0 */
        assert_true(s[3 + k] == 1.0f); /* running variance at 1 */
    }
    const float want[6] = {0.5f, -1.0f, 2.0f, 4.0f, 0.25f, 1.0f};
    assert_status(bp_layer_set_state(bn, want, 6), BP_OK);
    float got[6];
    assert_status(bp_layer_get_state(bn, got, 6, NULL), BP_OK);
    assert_memory_equal(got, want, sizeof want);
    /* predict uses them: x = mean gives beta = 0 for every feature */
    const float x[3] = {0.5f, -1.0f, 2.0f};
    float y1[2], y2[2];
    assert_status(bp_net_predict(net, x, 1, y1, 2), BP_OK);
    float zero[3] = {0.0f, 0.0f, 0.0f};
    assert_status(bp_layer_set_state(bn, (const float[6]){0, 0, 0, 1, 1, 1}, 6), BP_OK);
    assert_status(bp_net_predict(net, zero, 1, y2, 2), BP_OK);
    assert_memory_equal(y1, y2, sizeof y1);
    /* bad counts and values leave the state alone */
    assert_status(bp_layer_set_state(bn, want, 6), BP_OK);
    assert_int_equal(bp_layer_set_state(bn, want, 5), BP_ERR_SHAPE);
    const float bad_var[6] = {0, 0, 0, 1, -1, 1};
    assert_int_equal(bp_layer_set_state(bn, bad_var, 6), BP_ERR_NONFINITE);
    const float nan_mean[6] = {NAN, 0, 0, 1, 1, 1};
    assert_int_equal(bp_layer_set_state(bn, nan_mean, 6), BP_ERR_NONFINITE);
    assert_status(bp_layer_get_state(bn, got, 6, NULL), BP_OK);
    assert_memory_equal(got, want, sizeof want);
    assert_int_equal(bp_layer_set_state(bn, NULL, 6), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_layer_get_state(bn, got, 5, &count), BP_ERR_BUFFER_TOO_SMALL);
    /* kinds without state: count 0 */
    bp_layer *dense = bp_net_layer(net, 1);
    count = 9;
    assert_status(bp_layer_get_state(dense, NULL, 0, &count), BP_OK);
    assert_int_equal(count, 0);
    assert_status(bp_layer_set_state(dense, NULL, 0), BP_OK);
    assert_int_equal(bp_layer_set_state(dense, want, 1), BP_ERR_SHAPE);
    assert_int_equal(bp_layer_get_state(NULL, got, 6, &count), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_layer_set_state(NULL, want, 6), BP_ERR_INVALID_ARG);
    /* the state is what a saved model carries */
    size_t need = 0;
    assert_int_equal(bp_net_save_buffer(net, NULL, 0, &need), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *img = test_malloc(need);
    assert_status(bp_net_save_buffer(net, img, need, &need), BP_OK);
    bp_net *copy = NULL;
    assert_status(bp_net_load_buffer(&copy, img, need), BP_OK);
    assert_status(bp_layer_get_state(bp_net_layer(copy, 0), got, 6, NULL), BP_OK);
    assert_memory_equal(got, want, sizeof want);
    test_free(img);
    bp_net_free(copy);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(kernel_shape_of_conv_and_pooling),
        bp_add_test(batchnorm_state_round_trips_and_is_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
