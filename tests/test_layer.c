/* test_layer.c -- the layer settings family (layer_settings.c) and the kinds' key tables:
 * which keys apply to which kind, bounds, reset to defaults, messages of const calls. */
#include "test_util.h"

#include <math.h>
#include <string.h>

static const int all_keys[] = {BP_LAYER_TRAINABLE,   BP_LAYER_LEAKY_SLOPE, BP_LAYER_ELU_ALPHA,
                               BP_LAYER_BN_MOMENTUM, BP_LAYER_BN_EPSILON,  BP_LAYER_DROPOUT_RATE,
                               BP_LAYER_L2,          BP_LAYER_L1};
enum { NKEYS = sizeof all_keys / sizeof all_keys[0] };

/* One layer of every kind, on an image net: conv, bn, act, maxpool, avgpool, dropout,
 * flatten, dense, global average pooling is tested on its own net below. */
static bp_net *every_kind(void)
{
    bp_net *net = NULL;
    assert_status(bp_net_create_image(&net, 1, 6, 6, 3), BP_OK);
    assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 1, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_ELU), BP_OK);
    assert_status(bp_net_add_maxpool2d(net, 2, 1), BP_OK);
    assert_status(bp_net_add_avgpool2d(net, 2, 1), BP_OK);
    assert_status(bp_net_add_dropout(net, 0.25), BP_OK);
    assert_status(bp_net_add_flatten(net), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_TANH), BP_OK);
    return net;
}

/* Which keys each kind lists, as the header documents them. */
static int documented(int kind, int key)
{
    if (key == BP_LAYER_TRAINABLE) return 1;
    switch (kind) {
    case BP_LAYER_DENSE:
    case BP_LAYER_CONV2D:
        return key == BP_LAYER_LEAKY_SLOPE || key == BP_LAYER_ELU_ALPHA || key == BP_LAYER_L2 ||
               key == BP_LAYER_L1;
    case BP_LAYER_ACTIVATION: return key == BP_LAYER_LEAKY_SLOPE || key == BP_LAYER_ELU_ALPHA;
    case BP_LAYER_BATCHNORM: return key == BP_LAYER_BN_MOMENTUM || key == BP_LAYER_BN_EPSILON;
    case BP_LAYER_DROPOUT: return key == BP_LAYER_DROPOUT_RATE;
    default: return 0;
    }
}

static void every_kind_accepts_exactly_its_documented_keys(void **state)
{
    (void)state;
    bp_net *net = every_kind();
    for (size_t i = 0; i < bp_net_layer_count(net); i++) {
        bp_layer *l = bp_net_layer(net, i);
        for (size_t k = 0; k < NKEYS; k++) {
            double v = -1.0, lo, hi;
            const int want = documented(bp_layer_kind(l), all_keys[k]);
            assert_status(bp_layer_param_bounds(all_keys[k], &lo, &hi), BP_OK);
            assert_status(bp_layer_get(l, all_keys[k], &v), want ? BP_OK : BP_ERR_INVALID_ARG);
            assert_status(bp_layer_set(l, all_keys[k], lo), want ? BP_OK : BP_ERR_INVALID_ARG);
            if (!want) {
                /* The message names the key and the kind. */
                assert_non_null(strstr(bp_net_last_error(net), "does not apply"));
                continue;
            }
            assert_status(bp_layer_get(l, all_keys[k], &v), BP_OK);
            assert_close(v, lo, 1e-7, 0);
            assert_status(bp_layer_set(l, all_keys[k], hi), BP_OK);
            assert_status(bp_layer_get(l, all_keys[k], &v), BP_OK);
            assert_close(v, hi, 1e-7, 0);
            assert_status(bp_layer_set(l, all_keys[k], nextafter(hi, HUGE_VAL)),
                          BP_ERR_OUT_OF_RANGE);
        }
    }
    bp_net_free(net);
}

static void reset_settings_restores_defaults_and_leaves_the_dropout_rate(void **state)
{
    (void)state;
    bp_net *net = every_kind();
    /* Move every applicable key to its upper bound, then reset. */
    for (size_t i = 0; i < bp_net_layer_count(net); i++)
        for (size_t k = 0; k < NKEYS; k++) {
            double lo, hi;
            assert_status(bp_layer_param_bounds(all_keys[k], &lo, &hi), BP_OK);
            (void)bp_layer_set(bp_net_layer(net, i), all_keys[k],
                               all_keys[k] == BP_LAYER_TRAINABLE ? 0.0 : hi);
        }
    float before[64];
    bp_layer *conv = bp_net_layer(net, 0);
    assert_status(bp_layer_get_weights(conv, before, 64), BP_OK);
    for (size_t i = 0; i < bp_net_layer_count(net); i++)
        assert_status(bp_layer_reset_settings(bp_net_layer(net, i)), BP_OK);
    static const struct {
        size_t layer;
        int key;
        double value;
    } want[] = {
        {0, BP_LAYER_TRAINABLE, 1.0},
        {0, BP_LAYER_LEAKY_SLOPE, 0.01},
        {0, BP_LAYER_ELU_ALPHA, 1.0},
        {0, BP_LAYER_L2, 0.0},
        {0, BP_LAYER_L1, 0.0},
        {1, BP_LAYER_BN_MOMENTUM, 0.99},
        {1, BP_LAYER_BN_EPSILON, 1e-5},
        {2, BP_LAYER_ELU_ALPHA, 1.0},
        {5, BP_LAYER_DROPOUT_RATE, 0x1.fffffffffffffp-1},
        {5, BP_LAYER_TRAINABLE, 1.0},
        {7, BP_LAYER_LEAKY_SLOPE, 0.01},
        {7, BP_LAYER_L1, 0.0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double v;
        assert_status(bp_layer_get(bp_net_layer(net, want[i].layer), want[i].key, &v), BP_OK);
        assert_close(v, want[i].value, 1e-6, 0);
    }
    /* Parameters are not settings. */
    float after[64];
    assert_status(bp_layer_get_weights(conv, after, 64), BP_OK);
    assert_memory_equal(before, after, bp_layer_param_count(conv) - 2);
    assert_status(bp_layer_reset_settings(NULL), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_last_error(), "bp_layer_reset_settings"));
    bp_net_free(net);
}

static void const_calls_report_in_the_thread_message_only(void **state)
{
    (void)state;
    bp_net *net = every_kind();
    bp_layer *bn = bp_net_layer(net, 1);
    assert_status(bp_layer_set(bn, BP_LAYER_BN_EPSILON, 2.0), BP_ERR_OUT_OF_RANGE);
    char kept[256];
    strncpy(kept, bp_net_last_error(net), sizeof kept - 1);
    kept[sizeof kept - 1] = '\0';
    double v;
    /* bp_layer_get takes a const layer: its failure must not write the net's message. */
    assert_status(bp_layer_get(bn, BP_LAYER_L2, &v), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_last_error(), "BP_LAYER_L2"));
    assert_string_equal(bp_net_last_error(net), kept);
    assert_status(bp_layer_get(bn, BP_LAYER_BN_EPSILON, NULL), BP_ERR_INVALID_ARG);
    assert_string_equal(bp_net_last_error(net), kept);
    bp_net_free(net);
}

static void settings_survive_save_and_load(void **state)
{
    (void)state;
    bp_net *net = every_kind();
    assert_status(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_BN_MOMENTUM, 0.5), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 7), BP_LAYER_L2, 0.125), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 2), BP_LAYER_TRAINABLE, 0), BP_OK);
    size_t size = 0;
    assert_status(bp_net_save_buffer(net, NULL, 0, &size), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *buf = test_malloc(size);
    assert_status(bp_net_save_buffer(net, buf, size, &size), BP_OK);
    bp_net *back = NULL;
    assert_status(bp_net_load_buffer(&back, buf, size), BP_OK);
    for (size_t i = 0; i < bp_net_layer_count(net); i++)
        for (size_t k = 0; k < NKEYS; k++) {
            double a, b;
            const bp_status s = bp_layer_get(bp_net_layer(net, i), all_keys[k], &a);
            assert_status(bp_layer_get(bp_net_layer(back, i), all_keys[k], &b), s);
            if (s == BP_OK) assert_close(b, a, 0, 0);
        }
    test_free(buf);
    bp_net_free(back);
    bp_net_free(net);
}

/* Train @p net 3 SGD steps; 1 if the first @p frozen floats of the arena (the frozen first
 * layer) stayed as they were and the rest moved. */
static int first_layer_frozen(bp_net *net, size_t frozen)
{
    static const float x[2] = {0.5f, -1.0f}, y[1] = {0.25f};
    size_t count = 0;
    float before[32];
    const float *p = bp_net_params(net, &count);
    assert_true(count <= 32 && count > frozen);
    memcpy(before, p, count * sizeof(float));
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_SGD), BP_OK);
    for (int t = 0; t < 3; t++)
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    bp_optimizer_free(opt);
    p = bp_net_params(net, &count);
    int same = memcmp(before, p, frozen * sizeof(float)) == 0;
    for (size_t i = frozen; i < count; i++)
        if (p[i] == before[i]) same = 0; /* every trainable parameter moves here */
    return same;
}

/* The optimizer skips frozen layers through a count the net keeps: it must follow every way a
 * layer's flag changes (set twice, set back, reset to defaults) and survive clone and load. */
static void frozen_layers_stay_frozen_through_clone_load_and_reset(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 3), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    bp_layer *l0 = bp_net_layer(net, 0), *l1 = bp_net_layer(net, 1);
    assert_status(bp_layer_set(l0, BP_LAYER_TRAINABLE, 0), BP_OK);
    assert_status(bp_layer_set(l0, BP_LAYER_TRAINABLE, 0), BP_OK); /* twice: one frozen layer */
    assert_status(bp_layer_set(l1, BP_LAYER_TRAINABLE, 0), BP_OK);
    assert_status(bp_layer_set(l1, BP_LAYER_TRAINABLE, 1), BP_OK);
    const size_t frozen = 2 * 3 + 3;

    bp_net *copy = NULL, *back = NULL;
    assert_status(bp_net_clone(&copy, net), BP_OK);
    size_t size = 0;
    assert_status(bp_net_save_buffer(net, NULL, 0, &size), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *buf = test_malloc(size);
    assert_status(bp_net_save_buffer(net, buf, size, &size), BP_OK);
    assert_status(bp_net_load_buffer(&back, buf, size), BP_OK);
    test_free(buf);

    assert_true(first_layer_frozen(net, frozen));
    assert_true(first_layer_frozen(copy, frozen));
    assert_true(first_layer_frozen(back, frozen));
    /* Back to defaults: every layer trains again, so the first moves too. */
    assert_status(bp_layer_reset_settings(bp_net_layer(back, 0)), BP_OK);
    assert_false(first_layer_frozen(back, frozen));
    assert_true(first_layer_frozen(back, 0));
    bp_net_free(back);
    bp_net_free(copy);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(every_kind_accepts_exactly_its_documented_keys),
        bp_add_test(reset_settings_restores_defaults_and_leaves_the_dropout_rate),
        bp_add_test(const_calls_report_in_the_thread_message_only),
        bp_add_test(settings_survive_save_and_load),
        bp_add_test(frozen_layers_stay_frozen_through_clone_load_and_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
