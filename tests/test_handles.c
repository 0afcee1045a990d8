/* test_handles.c -- handle validation across the public API: a NULL handle, a handle of
 * another kind (a bp_optimizer* passed as a bp_net* ...) and a freed-looking handle (magic
 * word zeroed, as *_free leaves it) must give BP_ERR_INVALID_ARG (or the documented neutral
 * value for queries), never a crash. Also: a gradient that overflows inside a middle layer
 * stops the step with BP_ERR_NONFINITE naming that layer, weights untouched. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "net.h"

static bp_net *good_net;
static bp_optimizer *good_opt;
static bp_dataset *good_ds;
static void *zeroed; /* a "freed" handle: every magic word zero */

static int setup(void **state)
{
    (void)state;
    const float x[4] = {0, 1, 2, 3}, y[2] = {0, 1};
    if (bp_net_create(&good_net, 2, 1) != BP_OK ||
        bp_net_add_dense(good_net, 2, BP_ACT_TANH) != BP_OK ||
        bp_optimizer_create(&good_opt, BP_OPTIMIZER_SGD) != BP_OK ||
        bp_dataset_create(&good_ds, x, y, 2, 2, 1) != BP_OK)
        return -1;
    zeroed = calloc(1, 4096);
    return zeroed == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    bp_net_free(good_net);
    bp_optimizer_free(good_opt);
    bp_dataset_free(good_ds);
    free(zeroed);
    return 0;
}

#define BAD(expr) assert_status((expr), BP_ERR_INVALID_ARG)

static void net_functions_reject_foreign_handles(void **state)
{
    (void)state;
    void *const bads[] = {NULL, good_opt, good_ds, zeroed, bp_net_layer(good_net, 0)};
    float buf[64] = {0}, y[64];
    const float *py;
    char text[64];
    size_t n;
    double v;
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        bp_net *net = bads[i];
        bp_net *out;
        bp_net_free(net); /* a no-op on a foreign handle */
        BAD(bp_net_clone(&out, net));
        assert_string_equal(bp_net_last_error(net), bp__invalid_handle_msg);
        BAD(bp_net_add_dense(net, 3, BP_ACT_RELU));
        assert_int_equal(bp_net_layer_count(net), 0);
        assert_null(bp_net_layer(net, 0));
        assert_int_equal(bp_net_input_size(net), 0);
        assert_int_equal(bp_net_output_size(net), 0);
        assert_int_equal(bp_net_param_count(net), 0);
        BAD(bp_net_set(net, BP_NET_CLIP_NORM, 1));
        BAD(bp_net_get(net, BP_NET_CLIP_NORM, &v));
        BAD(bp_net_summary(net, text, sizeof text, &n));
        BAD(bp_net_forward(net, buf, 1, &py));
        BAD(bp_net_backward(net, buf, 1));
        BAD(bp_net_zero_grad(net));
        BAD(bp_net_train_step(net, good_opt, BP_LOSS_MSE, buf, buf, 1, NULL));
        BAD(bp_net_compute_grads(net, BP_LOSS_MSE, buf, buf, 1, NULL));
        BAD(bp_net_predict(net, buf, 1, y, 64));
        BAD(bp_net_predict_ws(net, buf, 1, y, 64, buf, 64));
        assert_int_equal(bp_net_predict_scratch_floats(net, 1), 0);
        assert_null(bp_net_params(net, &n));
        assert_int_equal(n, 0);
        assert_null(bp_net_grads(net, &n));
        BAD(bp_net_save(net, "never-written.bpm"));
        BAD(bp_net_save_buffer(net, text, sizeof text, &n));
        BAD(bp_checkpoint_save(net, good_opt, "never-written.bpc"));
        BAD(bp_checkpoint_save_buffer(net, good_opt, text, sizeof text, &n));
        BAD(bp_net_set_scaler(net, BP_SCALE_INPUTS, buf, buf, 2));
        BAD(bp_net_get_scaler(net, BP_SCALE_INPUTS, buf, y, 2, &n));
        BAD(bp_net_set_meta(net, "k", "v"));
        BAD(bp_net_get_meta(net, "k", text, sizeof text, &n));
        BAD(bp_net_set_epoch_callback_v2(net, NULL, NULL));
        BAD(bp_net_set_batch_callback(net, NULL, NULL));
        BAD(bp_net_history_best(net, &n));
        BAD(bp_net_set(net, BP_NET_APPLY_SCALERS, 1));
        BAD(bp_net_input_steps(net, &n)); /* sequences (#14) */
        /* recurrent layers */
        BAD(bp_net_add_rnn(net, 3, BP_ACT_TANH, 0));
        BAD(bp_net_add_lstm(net, 3, 0));
        BAD(bp_net_add_gru(net, 3, 0));
        BAD(bp_net_reset_state(net));
        /* The optimizer slot of the two-handle calls (with every non-optimizer). */
        bp_optimizer *opt = bads[i] == (void *)good_opt ? (void *)good_net : bads[i];
        BAD(bp_net_train_step(good_net, opt, BP_LOSS_MSE, buf, buf, 1, NULL));
        BAD(bp_checkpoint_save_buffer(good_net, opt, text, sizeof text, &n));
    }
}

static void layer_functions_reject_foreign_handles(void **state)
{
    (void)state;
    void *const bads[] = {NULL, good_net, good_opt, good_ds, zeroed};
    float buf[16] = {0};
    double v;
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        bp_layer *l = bads[i];
        assert_int_equal(bp_layer_kind(l), 0);
        assert_int_equal(bp_layer_activation(l), -1);
        assert_int_equal(bp_layer_input_size(l), 0);
        assert_int_equal(bp_layer_output_size(l), 0);
        assert_int_equal(bp_layer_param_count(l), 0);
        BAD(bp_layer_get_weights(l, buf, 16));
        BAD(bp_layer_set_weights(l, buf, 4));
        BAD(bp_layer_get_biases(l, buf, 16));
        BAD(bp_layer_set_biases(l, buf, 2));
        BAD(bp_layer_get_weight_grad(l, buf, 16));
        BAD(bp_layer_get_bias_grad(l, buf, 16));
        BAD(bp_layer_init_weights(l, BP_INIT_ZEROS, 0));
        BAD(bp_layer_set(l, BP_LAYER_TRAINABLE, 0));
        BAD(bp_layer_get(l, BP_LAYER_TRAINABLE, &v));
        size_t steps;
        BAD(bp_layer_output_steps(l, &steps)); /* sequences (#14) */
    }
}

static void optimizer_functions_reject_foreign_handles(void **state)
{
    (void)state;
    void *const bads[] = {NULL, good_net, good_ds, zeroed};
    double v;
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        bp_optimizer *opt = bads[i];
        bp_optimizer_free(opt);
        assert_string_equal(bp_optimizer_last_error(opt), bp__invalid_handle_msg);
        assert_int_equal(bp_optimizer_kind(opt), 0);
        BAD(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.1));
        BAD(bp_optimizer_get(opt, BP_OPT_LEARNING_RATE, &v));
        BAD(bp_optimizer_step(opt, good_net));
        BAD(bp_optimizer_reset(opt));
        BAD(bp_optimizer_reset_settings(opt));
        assert_int_equal(bp_optimizer_step_count(opt), 0);
        /* The net slot of bp_optimizer_step (with every non-net). */
        BAD(bp_optimizer_step(good_opt, bads[i] == (void *)good_net ? (void *)good_opt : bads[i]));
    }
}

static void dataset_functions_reject_foreign_handles(void **state)
{
    (void)state;
    void *const bads[] = {NULL, good_net, good_opt, zeroed};
    float o[4], s[4] = {1, 1, 1, 1};
    size_t classes;
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        bp_dataset *ds = bads[i], *a, *b;
        bp_dataset_free(ds);
        assert_string_equal(bp_dataset_last_error(ds), bp__invalid_handle_msg);
        assert_int_equal(bp_dataset_size(ds), 0);
        assert_int_equal(bp_dataset_input_size(ds), 0);
        assert_int_equal(bp_dataset_output_size(ds), 0);
        assert_null(bp_dataset_inputs(ds));
        assert_null(bp_dataset_targets(ds));
        BAD(bp_dataset_save_fann(ds, "never-written.fann"));
        BAD(bp_dataset_shuffle(ds, 1));
        BAD(bp_dataset_split(&a, &b, ds, 0.5));
        BAD(bp_dataset_subset(&a, ds, 0, 1));
        BAD(bp_dataset_fit_scaler(ds, BP_SCALE_STANDARD, BP_SCALE_INPUTS, o, s, 4));
        BAD(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, o, s, 2));
        BAD(bp_dataset_class_count(ds, &classes));
        BAD(bp_dataset_one_hot(&a, ds, 2));
    }
}

/* Layer 0 multiplies by 1e20, layer 1 by 1e-40 (forward stays near 1), layer 2 by 1e20:
 * backward, dL/dz of layer 1 is ~1e20 and its weight gradient dz^T x ~ 1e40 overflows. */
static void nonfinite_gradient_in_a_middle_layer_names_that_layer(void **state)
{
    (void)state;
    bp_net *net;
    bp_optimizer *opt;
    assert_status(bp_net_create(&net, 2, 1), BP_OK);
    for (int i = 0; i < 4; i++)
        assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    const double scale[4] = {1e20, 1e-40, 1e20, 1.0};
    for (size_t i = 0; i < 4; i++)
        assert_status(bp_layer_init_weights(bp_net_layer(net, i), BP_INIT_CONSTANT, scale[i]),
                      BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_SGD), BP_OK);
    const float x[2] = {1, 1}, y[2] = {0, 0};
    size_t np;
    const float *p = bp_net_params(net, &np);
    float *before = malloc(np * sizeof(float));
    memcpy(before, p, np * sizeof(float));
    float out[2];
    assert_status(bp_net_predict(net, x, 1, out, 2), BP_OK);
    assert_true(isfinite(out[0]) && isfinite(out[1]));
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "layer 1 (dense)"));
    assert_memory_equal(bp_net_params(net, NULL), before, np * sizeof(float));
    assert_int_equal(bp_optimizer_step_count(opt), 0);
    assert_status(bp_net_compute_grads(net, BP_LOSS_MSE, x, y, 1, NULL), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "layer 1"));
    free(before);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(net_functions_reject_foreign_handles),
        bp_add_test(layer_functions_reject_foreign_handles),
        bp_add_test(optimizer_functions_reject_foreign_handles),
        bp_add_test(dataset_functions_reject_foreign_handles),
        bp_add_test(nonfinite_gradient_in_a_middle_layer_names_that_layer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
