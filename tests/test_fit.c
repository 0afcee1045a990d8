/* test_fit.c -- the training loop: settings, learning-rate schedules, early stopping, the
 * epoch callback, metrics and bp_net_evaluate against hand computations, history and its
 * CSV, resuming, no allocation per step, clipping, bp_argmax, and bad input. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "net.h"

/* ---- helpers -------------------------------------------------------------------------- */

/* y = x0 - 2 x1 + 0.5 on n rows of x in [-1, 1)^2. */
static bp_dataset *make_linear(size_t n, uint64_t seed)
{
    float *x = malloc(n * 2 * sizeof(float)), *y = malloc(n * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    bp_test_fill_uniform(x, n * 2, -1.0f, 1.0f, &seed);
    for (size_t i = 0; i < n; i++)
        y[i] = x[2 * i] - 2.0f * x[2 * i + 1] + 0.5f;
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, x, y, n, 2, 1), BP_OK);
    free(x);
    free(y);
    return ds;
}

static bp_net *make_net(uint64_t seed, size_t in, size_t hidden, size_t out, int out_act)
{
    bp_net *net;
    assert_status(bp_net_create(&net, in, seed), BP_OK);
    if (hidden) assert_status(bp_net_add_dense(net, hidden, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, out, out_act), BP_OK);
    return net;
}

static bp_optimizer *make_opt(int kind, double lr)
{
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, kind), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, lr), BP_OK);
    return opt;
}

static void set(bp_net *net, int key, double value)
{
    assert_status(bp_net_set(net, key, value), BP_OK);
}

static double hist(const bp_net *net, size_t epoch, int metric)
{
    double v;
    assert_status(bp_net_history_get(net, epoch, metric, &v), BP_OK);
    return v;
}

static float *copy_params(bp_net *net, size_t *count)
{
    size_t np;
    const float *p = bp_net_params(net, &np);
    float *c = malloc(np * sizeof(float));
    assert_non_null(c);
    memcpy(c, p, np * sizeof(float));
    if (count) *count = np;
    return c;
}

/* ---- settings ------------------------------------------------------------------------- */

static void fit_keys_have_documented_defaults_bounds_and_checks(void **state)
{
    (void)state;
    static const struct {
        int key;
        double def, lo, hi;
    } k[] = {
        {BP_FIT_EPOCHS, 10, 1, 1e9},
        {BP_FIT_BATCH_SIZE, 32, 1, 2147483648.0},
        {BP_FIT_SHUFFLE, 1, 0, 1},
        {BP_FIT_PATIENCE, 0, 0, 1e9},
        {BP_FIT_MIN_DELTA, 0, 0, 1e9},
        {BP_FIT_RESTORE_BEST, 1, 0, 1},
        {BP_FIT_SCHEDULE, BP_SCHEDULE_CONSTANT, 0, BP_SCHEDULE_PLATEAU},
        {BP_FIT_LR_STEP, 10, 1, 1e9},
        {BP_FIT_LR_GAMMA, 0.1, 0, 1},
        {BP_FIT_LR_MIN, 0, 0, 1e3},
        {BP_FIT_WARMUP_EPOCHS, 0, 0, 1e9},
        {BP_FIT_PLATEAU_PATIENCE, 5, 1, 1e9},
        {BP_FIT_COSINE_EPOCHS, 0, 0, 1e9},
        {BP_FIT_INITIAL_EPOCH, 0, 0, 1e9},
        {BP_FIT_KEEP_BEST, 0, 0, 1},
        {BP_FIT_PROGRESS_SECONDS, 0.1, 0, 3600},
        {BP_FIT_SHUFFLE_BUFFER, 1024, 1, 2147483648.0},
    };
    bp_net *net = make_net(1, 2, 0, 1, BP_ACT_IDENTITY);
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        double v, lo, hi;
        assert_status(bp_net_get(net, k[i].key, &v), BP_OK);
        assert_true(v == k[i].def);
        assert_status(bp_net_param_bounds(k[i].key, &lo, &hi), BP_OK);
        assert_true(hi == k[i].hi);
        if (k[i].key == BP_FIT_LR_GAMMA)
            assert_true(lo > 0.0 && lo < 1e-300); /* open bound: nearest double inside */
        else
            assert_true(lo == k[i].lo);
        assert_status(bp_net_set(net, k[i].key, hi), BP_OK);
        assert_status(bp_net_set(net, k[i].key, hi * 2 + 1), BP_ERR_OUT_OF_RANGE);
        assert_status(bp_net_set(net, k[i].key, (double)NAN), BP_ERR_OUT_OF_RANGE);
        assert_status(bp_net_get(net, k[i].key, &v), BP_OK);
        assert_true(v == hi); /* a refused value changes nothing */
    }
    assert_status(bp_net_set(net, BP_FIT_LR_GAMMA, 0.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, 0.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, 2.5), BP_ERR_OUT_OF_RANGE);
    assert_non_null(strstr(bp_net_last_error(net), "whole"));
    assert_status(bp_net_set(net, BP_FIT_SCHEDULE, 5), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set(net, BP_FIT_MIN_DELTA, 0.25), BP_OK); /* not a count */
    assert_status(bp_net_set(net, 417, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_set(net, 399 + 101, 1), BP_ERR_INVALID_ARG);
    double v;
    assert_status(bp_net_get(net, 417, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_net_get(net, BP_FIT_EPOCHS, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_param_bounds(417, &v, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_net_param_bounds(BP_FIT_EPOCHS, NULL, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_net_set(NULL, BP_FIT_EPOCHS, 3), BP_ERR_INVALID_ARG);
    bp_net_free(net);
}

static int stop_at_two(void *user, size_t epoch, const double *metrics, size_t count)
{
    (void)metrics;
    (void)count;
    ++*(int *)user;
    return epoch >= 2;
}

static void clone_copies_fit_settings_and_callback_not_history(void **state)
{
    (void)state;
    bp_net *net = make_net(3, 2, 0, 1, BP_ACT_IDENTITY);
    bp_dataset *ds = make_linear(16, 5);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.05);
    int calls = 0;
    set(net, BP_FIT_EPOCHS, 7);
    set(net, BP_FIT_BATCH_SIZE, 5);
    set(net, BP_FIT_LR_GAMMA, 0.25);
    assert_status(bp_net_set_epoch_callback(net, stop_at_two, &calls), BP_OK);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(bp_net_history_length(net), 3);
    bp_net *copy;
    assert_status(bp_net_clone(&copy, net), BP_OK);
    double v;
    assert_status(bp_net_get(copy, BP_FIT_EPOCHS, &v), BP_OK);
    assert_true(v == 7);
    assert_status(bp_net_get(copy, BP_FIT_BATCH_SIZE, &v), BP_OK);
    assert_true(v == 5);
    assert_status(bp_net_get(copy, BP_FIT_LR_GAMMA, &v), BP_OK);
    assert_true(v == 0.25);
    assert_int_equal(bp_net_history_length(copy), 0);
    calls = 0;
    bp_optimizer *opt2 = make_opt(BP_OPTIMIZER_SGD, 0.05);
    assert_status(bp_net_fit(copy, opt2, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(calls, 3); /* the clone's callback is the same one */
    assert_int_equal(bp_net_history_length(copy), 3);
    bp_optimizer_free(opt2);
    bp_net_free(copy);
    bp_optimizer_free(opt);
    bp_dataset_free(ds);
    bp_net_free(net);
}

/* ---- schedules ------------------------------------------------------------------------ */

/* Fit @p epochs epochs of SGD at base rate 0.1 and return the history's learning rates. */
static void fit_rates(bp_net *net, size_t epochs, double *rates)
{
    bp_dataset *ds = make_linear(12, 9);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.1);
    set(net, BP_FIT_EPOCHS, (double)epochs);
    set(net, BP_FIT_BATCH_SIZE, 4);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(bp_net_history_length(net), epochs);
    for (size_t e = 0; e < epochs; e++)
        rates[e] = hist(net, e, BP_METRIC_LEARNING_RATE);
    double lr;
    assert_status(bp_optimizer_get(opt, BP_OPT_LEARNING_RATE, &lr), BP_OK);
    assert_true(lr == 0.1); /* the base rate is restored */
    bp_optimizer_free(opt);
    bp_dataset_free(ds);
}

static void schedules_follow_their_documented_formulas(void **state)
{
    (void)state;
    const double base = 0.1, pi = 3.14159265358979323846;
    double r[12];
    bp_net *net = make_net(1, 2, 0, 1, BP_ACT_IDENTITY);

    fit_rates(net, 4, r); /* constant */
    for (size_t e = 0; e < 4; e++)
        assert_true(r[e] == base);

    set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_STEP);
    set(net, BP_FIT_LR_STEP, 3);
    set(net, BP_FIT_LR_GAMMA, 0.5);
    fit_rates(net, 8, r); /* 0.1 0.1 0.1 0.05 0.05 0.05 0.025 0.025 */
    for (size_t e = 0; e < 8; e++)
        assert_close(r[e], base * pow(0.5, (double)(e / 3)), 1e-15, 0);
    assert_close(r[7], 0.025, 1e-15, 0);

    set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_EXPONENTIAL);
    set(net, BP_FIT_LR_GAMMA, 0.9);
    fit_rates(net, 5, r);
    for (size_t e = 0; e < 5; e++)
        assert_close(r[e], base * pow(0.9, (double)e), 1e-15, 0);

    /* Warm-up 2 epochs, then step: base (e+1)/W, then base gamma^floor((e-W)/step). */
    set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_STEP);
    set(net, BP_FIT_WARMUP_EPOCHS, 2);
    set(net, BP_FIT_LR_STEP, 2);
    set(net, BP_FIT_LR_GAMMA, 0.5);
    fit_rates(net, 6, r); /* 0.05 0.1 | 0.1 0.1 0.05 0.05 */
    const double warm_step[6] = {0.05, 0.1, 0.1, 0.1, 0.05, 0.05};
    for (size_t e = 0; e < 6; e++)
        assert_close(r[e], warm_step[e], 1e-15, 0);

    /* Cosine over the remaining epochs (T = EPOCHS - W = 8) after 2 warm-up epochs. */
    set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_COSINE);
    set(net, BP_FIT_LR_MIN, 0.01);
    fit_rates(net, 10, r);
    assert_close(r[0], 0.05, 1e-15, 0);
    assert_close(r[1], 0.1, 1e-15, 0);
    for (size_t e = 2; e < 10; e++)
        assert_close(r[e], 0.01 + 0.09 * (1 + cos(pi * (double)(e - 2) / 8.0)) / 2, 1e-14, 0);
    assert_close(r[2], 0.1, 1e-15, 0);
    assert_close(r[6], 0.055, 1e-14, 0); /* half way: the mean of base and min */

    /* Explicit period T = 4 without warm-up: reaches min at epoch 4 and stays there. */
    set(net, BP_FIT_WARMUP_EPOCHS, 0);
    set(net, BP_FIT_COSINE_EPOCHS, 4);
    fit_rates(net, 7, r);
    for (size_t e = 0; e < 4; e++)
        assert_close(r[e], 0.01 + 0.09 * (1 + cos(pi * (double)e / 4.0)) / 2, 1e-14, 0);
    for (size_t e = 4; e < 7; e++)
        assert_close(r[e], 0.01, 1e-15, 0);
    bp_net_free(net);
}

static void plateau_schedule_cuts_the_rate_when_the_loss_stalls(void **state)
{
    (void)state;
    bp_net *net = make_net(2, 2, 0, 1, BP_ACT_IDENTITY);
    set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_PLATEAU);
    set(net, BP_FIT_PLATEAU_PATIENCE, 2);
    set(net, BP_FIT_LR_GAMMA, 0.5);
    set(net, BP_FIT_LR_MIN, 0.02);
    /* An improvement must exceed 1e9: only the first epoch (best = +inf) improves. */
    set(net, BP_FIT_MIN_DELTA, 1e9);
    double r[9];
    fit_rates(net, 9, r);
    /* e0 improves; e1, e2 stall -> 0.05 from e3; e3, e4 -> 0.025 from e5; e5, e6 -> the
     * floor 0.02 from e7. */
    const double want[9] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02};
    for (size_t e = 0; e < 9; e++)
        assert_close(r[e], want[e], 1e-15, 0);

    /* A loss that keeps improving (MIN_DELTA 0, training converging) never cuts the rate. */
    set(net, BP_FIT_MIN_DELTA, 0);
    fit_rates(net, 4, r);
    for (size_t e = 0; e < 4; e++)
        assert_true(r[e] == 0.1);
    bp_net_free(net);
}

/* ---- early stopping and the callback -------------------------------------------------- */

typedef struct snapshots {
    bp_net *net;
    float w[256][2];
    size_t epochs[256];
    double loss[256];
    size_t calls;
} snapshots;

static int snapshot_cb(void *user, size_t epoch, const double *metrics, size_t count)
{
    snapshots *s = user;
    assert_int_equal(count, BP_METRIC_COUNT);
    if (s->calls < 256) {
        size_t np;
        const float *p = bp_net_params(s->net, &np);
        s->w[s->calls][0] = p[0];
        s->w[s->calls][1] = p[1];
        s->epochs[s->calls] = epoch;
        s->loss[s->calls] = metrics[BP_METRIC_VAL_LOSS];
    }
    s->calls++;
    return 0;
}

/* 1-1 identity net from w = 0, b = 0, trained on y = x; validated on y = 0.5 x, whose loss
 * falls while w < 0.5 and rises after: early stopping must trigger. */
static void early_stop_run(int restore, snapshots *s, size_t *best_out)
{
    const float x[8] = {-1, -0.75f, -0.5f, -0.25f, 0.25f, 0.5f, 0.75f, 1};
    float yt[8], yv[8];
    for (int i = 0; i < 8; i++)
        yt[i] = x[i], yv[i] = 0.5f * x[i];
    bp_dataset *tr, *va;
    assert_status(bp_dataset_create(&tr, x, yt, 8, 1, 1), BP_OK);
    assert_status(bp_dataset_create(&va, x, yv, 8, 1, 1), BP_OK);
    bp_net *net = make_net(4, 1, 0, 1, BP_ACT_IDENTITY);
    assert_status(bp_layer_init_weights(bp_net_layer(net, 0), BP_INIT_ZEROS, 0), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.05);
    set(net, BP_FIT_EPOCHS, 200);
    set(net, BP_FIT_BATCH_SIZE, 8);
    set(net, BP_FIT_PATIENCE, 3);
    set(net, BP_FIT_RESTORE_BEST, restore);
    memset(s, 0, sizeof *s);
    s->net = net;
    assert_status(bp_net_set_epoch_callback(net, snapshot_cb, s), BP_OK);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, tr, va), BP_OK);

    const size_t len = bp_net_history_length(net);
    size_t best = 0;
    for (size_t e = 1; e < len; e++)
        if (hist(net, e, BP_METRIC_VAL_LOSS) < hist(net, best, BP_METRIC_VAL_LOSS)) best = e;
    print_message("early stop: best epoch %zu, %zu epochs run (restore %d)\n", best, len, restore);
    assert_true(best >= 2);          /* the validation loss really fell first ... */
    assert_int_equal(len, best + 4); /* ... and training stopped 3 epochs after its minimum */
    assert_int_equal(s->calls, len); /* the callback saw every epoch, */
    for (size_t e = 0; e < len; e++) {
        assert_int_equal(s->epochs[e], e);
        assert_true(s->loss[e] == hist(net, e, BP_METRIC_VAL_LOSS)); /* with its metrics */
    }
    size_t np;
    const float *p = bp_net_params(net, &np);
    const size_t want = restore ? best : len - 1;
    assert_true(p[0] == s->w[want][0] && p[1] == s->w[want][1]);
    if (restore) assert_true(p[0] != s->w[len - 1][0]);
    *best_out = best;
    bp_optimizer_free(opt);
    bp_dataset_free(tr);
    bp_dataset_free(va);
    bp_net_free(net);
}

static void early_stopping_restores_the_best_weights(void **state)
{
    (void)state;
    snapshots *s = malloc(sizeof *s);
    assert_non_null(s);
    size_t best_restore, best_keep;
    early_stop_run(1, s, &best_restore);
    early_stop_run(0, s, &best_keep);
    assert_int_equal(best_restore, best_keep);
    free(s);
}

static int stop_after(void *user, size_t epoch, const double *metrics, size_t count)
{
    (void)metrics;
    (void)count;
    return epoch + 1 >= *(const size_t *)user;
}

static void callback_can_stop_training_and_be_cleared(void **state)
{
    (void)state;
    bp_net *net = make_net(5, 2, 4, 1, BP_ACT_IDENTITY);
    bp_dataset *ds = make_linear(20, 1);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.01);
    size_t limit = 4;
    set(net, BP_FIT_EPOCHS, 50);
    assert_status(bp_net_set_epoch_callback(net, stop_after, &limit), BP_OK);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(bp_net_history_length(net), 4);
    assert_status(bp_net_set_epoch_callback(net, NULL, NULL), BP_OK);
    set(net, BP_FIT_EPOCHS, 6);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(bp_net_history_length(net), 6);
    assert_status(bp_net_set_epoch_callback(NULL, stop_after, &limit), BP_ERR_INVALID_ARG);
    bp_optimizer_free(opt);
    bp_dataset_free(ds);
    bp_net_free(net);
}

/* ---- issue 17: checkpoints from the callback, keep-best, progress ---------------------- */

enum { CK_EPOCHS = 5 };

typedef struct ckpts {
    bp_net *net; /* the net fit trains (the v2 callback must receive it) */
    bp_optimizer *opt;
    void *buf[CK_EPOCHS];
    size_t size[CK_EPOCHS];
    size_t calls;
} ckpts;

static int checkpoint_cb(void *user, bp_net *net, size_t epoch, const double *metrics, size_t count)
{
    ckpts *c = user;
    (void)metrics;
    assert_int_equal(count, BP_METRIC_COUNT);
    assert_ptr_equal(net, c->net);
    assert_int_equal(epoch, c->calls);
    size_t size;
    assert_status(bp_checkpoint_save_buffer(net, c->opt, NULL, 0, &size), BP_ERR_BUFFER_TOO_SMALL);
    c->buf[epoch] = malloc(size);
    assert_non_null(c->buf[epoch]);
    assert_status(bp_checkpoint_save_buffer(net, c->opt, c->buf[epoch], size, &c->size[epoch]),
                  BP_OK);
    c->calls++;
    return 0;
}

/* Found 1: a checkpoint saved from the epoch callback at every epoch of a scheduled run,
 * resumed from each, ends bit-identical to the uninterrupted run (0.1 stored the scheduled
 * rate as the optimizer's base rate). */
static void checkpoint_from_callback_resumes_bit_identically(void **state)
{
    (void)state;
    bp_dataset *ds = make_linear(40, 3);
    bp_net *net = make_net(17, 2, 6, 1, BP_ACT_IDENTITY);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.003);
    set(net, BP_FIT_EPOCHS, CK_EPOCHS);
    set(net, BP_FIT_BATCH_SIZE, 8);
    set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_COSINE);
    set(net, BP_FIT_WARMUP_EPOCHS, 1);
    ckpts c = {.net = net, .opt = opt};
    assert_status(bp_net_set_epoch_callback_v2(net, checkpoint_cb, &c), BP_OK);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(c.calls, CK_EPOCHS);
    double lr;
    assert_status(bp_optimizer_get(opt, BP_OPT_LEARNING_RATE, &lr), BP_OK);
    assert_true(lr == 0.003);
    for (size_t k = 0; k + 1 < CK_EPOCHS; k++) {
        bp_net *r;
        bp_optimizer *ro;
        assert_status(bp_checkpoint_load_buffer(&r, &ro, c.buf[k], c.size[k]), BP_OK);
        assert_status(bp_optimizer_get(ro, BP_OPT_LEARNING_RATE, &lr), BP_OK);
        assert_true(lr == 0.003); /* the base rate, not the scheduled one */
        double first;
        assert_status(bp_net_get(r, BP_FIT_INITIAL_EPOCH, &first), BP_OK);
        assert_true(first == (double)(k + 1));
        assert_status(bp_net_fit(r, ro, BP_LOSS_MSE, ds, NULL), BP_OK);
        assert_int_equal(bp_net_history_length(r), CK_EPOCHS - 1 - k);
        assert_memory_equal(bp_net_params(r, NULL), bp_net_params(net, NULL),
                            bp_net_param_count(net) * sizeof(float));
        bp_optimizer_free(ro);
        bp_net_free(r);
    }
    for (size_t k = 0; k < CK_EPOCHS; k++)
        free(c.buf[k]);
    /* Setting the 0.1 callback replaces the v2 one, and NULL clears. */
    c.calls = 0;
    assert_status(bp_net_set_epoch_callback(net, stop_after, &(size_t){1}), BP_OK);
    set(net, BP_FIT_EPOCHS, 3);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(c.calls, 0);
    assert_int_equal(bp_net_history_length(net), 1);
    assert_status(bp_net_set_epoch_callback_v2(net, NULL, NULL), BP_OK);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(bp_net_history_length(net), 3);
    assert_status(bp_net_set_epoch_callback_v2(NULL, checkpoint_cb, &c), BP_ERR_INVALID_ARG);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(ds);
}

/* Found 4: BP_FIT_KEEP_BEST restores the best epoch's weights when the epoch budget runs out
 * (no early stopping), and bp_net_history_best names that epoch. */
static void keep_best_restores_the_best_epoch_however_training_ends(void **state)
{
    (void)state;
    const float x[8] = {-1, -0.75f, -0.5f, -0.25f, 0.25f, 0.5f, 0.75f, 1};
    float yt[8], yv[8];
    for (int i = 0; i < 8; i++)
        yt[i] = x[i], yv[i] = 0.5f * x[i];
    bp_dataset *tr, *va;
    assert_status(bp_dataset_create(&tr, x, yt, 8, 1, 1), BP_OK);
    assert_status(bp_dataset_create(&va, x, yv, 8, 1, 1), BP_OK);
    snapshots *s = malloc(sizeof *s);
    assert_non_null(s);
    for (int keep = 0; keep <= 1; keep++) {
        bp_net *net = make_net(4, 1, 0, 1, BP_ACT_IDENTITY);
        assert_status(bp_layer_init_weights(bp_net_layer(net, 0), BP_INIT_ZEROS, 0), BP_OK);
        bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.05);
        size_t row;
        assert_status(bp_net_history_best(net, &row), BP_ERR_STATE); /* no fit yet */
        set(net, BP_FIT_EPOCHS, 40);
        set(net, BP_FIT_BATCH_SIZE, 8);
        set(net, BP_FIT_KEEP_BEST, keep);
        memset(s, 0, sizeof *s);
        s->net = net;
        assert_status(bp_net_set_epoch_callback(net, snapshot_cb, s), BP_OK);
        assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, tr, va), BP_OK);
        assert_int_equal(bp_net_history_length(net), 40); /* the budget ran out */
        assert_status(bp_net_history_best(net, &row), BP_OK);
        for (size_t e = 0; e < 40; e++)
            assert_true(hist(net, row, BP_METRIC_VAL_LOSS) <= hist(net, e, BP_METRIC_VAL_LOSS));
        assert_true(row >= 2 && row < 30); /* the validation loss fell, then rose */
        const float *p = bp_net_params(net, NULL);
        const size_t want = keep ? row : 39;
        assert_true(p[0] == s->w[want][0] && p[1] == s->w[want][1]);
        if (keep) assert_true(p[0] != s->w[39][0]);
        /* Without a validation set the training loss is monitored. */
        assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, tr, NULL), BP_OK);
        assert_status(bp_net_history_best(net, &row), BP_OK);
        for (size_t e = 0; e < 40; e++)
            assert_true(hist(net, row, BP_METRIC_LOSS) <= hist(net, e, BP_METRIC_LOSS));
        bp_optimizer_free(opt);
        bp_net_free(net);
    }
    assert_status(bp_net_history_best(NULL, &(size_t){0}), BP_ERR_INVALID_ARG);
    bp_net *net = make_net(4, 1, 0, 1, BP_ACT_IDENTITY);
    assert_status(bp_net_history_best(net, NULL), BP_ERR_INVALID_ARG);
    bp_net_free(net);
    free(s);
    bp_dataset_free(tr);
    bp_dataset_free(va);
}

typedef struct progress {
    const bp_net *net;
    size_t calls, epoch[64], batch[64], batches[64];
    double loss[64];
} progress;

static void progress_cb(void *user, const bp_net *net, size_t epoch, size_t batch, size_t batches,
                        double loss)
{
    progress *p = user;
    assert_ptr_equal(net, p->net);
    if (p->calls < 64) {
        p->epoch[p->calls] = epoch;
        p->batch[p->calls] = batch;
        p->batches[p->calls] = batches;
        p->loss[p->calls] = loss;
    }
    p->calls++;
}

/* Issue 17 item 2: the batch callback, every batch with PROGRESS_SECONDS 0, only the last
 * batch of each epoch with a long interval; the running loss ends at the epoch's loss. */
static void batch_callback_reports_progress_at_a_bounded_rate(void **state)
{
    (void)state;
    bp_dataset *ds = make_linear(20, 5);
    bp_net *net = make_net(6, 2, 4, 1, BP_ACT_IDENTITY);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.01);
    set(net, BP_FIT_EPOCHS, 3);
    set(net, BP_FIT_BATCH_SIZE, 6); /* 4 batches: 6, 6, 6, 2 rows */
    set(net, BP_FIT_PROGRESS_SECONDS, 0);
    progress p = {.net = net};
    assert_status(bp_net_set_batch_callback(net, progress_cb, &p), BP_OK);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(p.calls, 12);
    for (size_t i = 0; i < 12; i++) {
        assert_int_equal(p.epoch[i], i / 4);
        assert_int_equal(p.batch[i], i % 4);
        assert_int_equal(p.batches[i], 4);
        assert_true(isfinite(p.loss[i]) && p.loss[i] >= 0.0);
    }
    for (size_t e = 0; e < 3; e++)
        assert_close(p.loss[e * 4 + 3], hist(net, e, BP_METRIC_LOSS), 1e-12, 0.0);
    memset(&p, 0, sizeof p);
    p.net = net;
    set(net, BP_FIT_PROGRESS_SECONDS, 3600);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(p.calls, 3); /* the last batch of each epoch only */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(p.batch[i], 3);
    /* Copied by clone; cleared with NULL. */
    bp_net *c;
    memset(&p, 0, sizeof p);
    assert_status(bp_net_clone(&c, net), BP_OK);
    p.net = c;
    assert_status(bp_net_fit(c, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(p.calls, 3);
    assert_status(bp_net_set_batch_callback(net, NULL, &p), BP_OK);
    p.calls = 0;
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(p.calls, 0);
    assert_status(bp_net_set_batch_callback(NULL, progress_cb, &p), BP_ERR_INVALID_ARG);
    bp_net_free(c);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(ds);
}

/* Found 5: BP_NET_APPLY_SCALERS makes predict and evaluate one call from raw inputs to raw
 * outputs, equal to the five calls by hand; fit (and its validation) never applies them. */
static void apply_scalers_predicts_and_evaluates_in_raw_units(void **state)
{
    (void)state;
    enum { N = 30 };
    bp_dataset *raw = make_linear(N, 41), *raw_val = make_linear(N, 42);
    bp_net *net = make_net(8, 2, 5, 1, BP_ACT_IDENTITY);
    const float in_off[2] = {0.25f, -0.5f}, in_sc[2] = {2.0f, 0.5f};
    const float y_off[1] = {0.5f}, y_sc[1] = {0.25f};
    double v;
    assert_status(bp_net_get(net, BP_NET_APPLY_SCALERS, &v), BP_OK);
    assert_true(v == 0.0);
    float x[N * 2], by_hand[N], one_call[N];
    memcpy(x, bp_dataset_inputs(raw), sizeof x);
    const float *targets = bp_dataset_targets(raw);
    /* Without scalers stored the setting changes nothing. */
    assert_status(bp_net_predict(net, x, N, by_hand, N), BP_OK);
    set(net, BP_NET_APPLY_SCALERS, 1);
    assert_status(bp_net_predict(net, x, N, one_call, N), BP_OK);
    assert_memory_equal(by_hand, one_call, sizeof by_hand);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, in_off, in_sc, 2), BP_OK);
    assert_status(bp_net_set_scaler(net, BP_SCALE_TARGETS, y_off, y_sc, 1), BP_OK);
    /* By hand: scale, predict with the setting off, invert. */
    float xs[N * 2];
    memcpy(xs, x, sizeof xs);
    assert_status(bp_scaler_apply(in_off, in_sc, 2, xs, N), BP_OK);
    set(net, BP_NET_APPLY_SCALERS, 0);
    assert_status(bp_net_predict(net, xs, N, by_hand, N), BP_OK);
    assert_status(bp_scaler_invert(y_off, y_sc, 1, by_hand, N), BP_OK);
    set(net, BP_NET_APPLY_SCALERS, 1);
    assert_status(bp_net_predict(net, x, N, one_call, N), BP_OK);
    assert_memory_equal(by_hand, one_call, sizeof by_hand);
    /* evaluate: the raw set, loss and metrics in raw units. */
    double m[4], mse = 0.0, mae = 0.0;
    assert_status(bp_net_evaluate(net, BP_LOSS_MSE, raw, m, 4), BP_OK);
    for (size_t i = 0; i < N; i++) {
        const double t = targets[i];
        mse += ((double)one_call[i] - t) * ((double)one_call[i] - t) / N;
        mae += fabs((double)one_call[i] - t) / N;
    }
    assert_close(m[BP_METRIC_LOSS], mse, 1e-6, 1e-9);
    assert_close(m[BP_METRIC_MAE], mae, 1e-6, 1e-9);
    /* fit and its validation ignore the setting: the same history and weights as with it
     * off (on a clone, which copies the setting). */
    bp_net *c;
    assert_status(bp_net_clone(&c, net), BP_OK);
    assert_status(bp_net_get(c, BP_NET_APPLY_SCALERS, &v), BP_OK);
    assert_true(v == 1.0);
    assert_status(bp_net_reset_settings(c), BP_OK); /* a setting like any other: default 0 */
    assert_status(bp_net_get(c, BP_NET_APPLY_SCALERS, &v), BP_OK);
    assert_true(v == 0.0);
    bp_optimizer *o1 = make_opt(BP_OPTIMIZER_ADAM, 0.01), *o2 = make_opt(BP_OPTIMIZER_ADAM, 0.01);
    set(net, BP_FIT_EPOCHS, 3);
    set(c, BP_FIT_EPOCHS, 3);
    assert_status(bp_net_fit(net, o1, BP_LOSS_MSE, raw, raw_val), BP_OK);
    assert_status(bp_net_fit(c, o2, BP_LOSS_MSE, raw, raw_val), BP_OK);
    for (size_t e = 0; e < 3; e++)
        assert_true(hist(net, e, BP_METRIC_VAL_LOSS) == hist(c, e, BP_METRIC_VAL_LOSS));
    assert_memory_equal(bp_net_params(net, NULL), bp_net_params(c, NULL),
                        bp_net_param_count(net) * sizeof(float));
    /* Not saved with the model. */
    size_t size;
    assert_status(bp_net_save_buffer(net, NULL, 0, &size), BP_ERR_BUFFER_TOO_SMALL);
    void *img = malloc(size);
    assert_non_null(img);
    assert_status(bp_net_save_buffer(net, img, size, &size), BP_OK);
    bp_net *loaded;
    assert_status(bp_net_load_buffer(&loaded, img, size), BP_OK);
    assert_status(bp_net_get(loaded, BP_NET_APPLY_SCALERS, &v), BP_OK);
    assert_true(v == 0.0);
    free(img);
    bp_net_free(loaded);
    /* Bad values: a setting not 0/1; an input that scales to Inf fails with a message. */
    assert_status(bp_net_set(net, BP_NET_APPLY_SCALERS, 0.5), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set(net, BP_NET_APPLY_SCALERS, (double)NAN), BP_ERR_OUT_OF_RANGE);
    double lo, hi;
    assert_status(bp_net_param_bounds(BP_NET_APPLY_SCALERS, &lo, &hi), BP_OK);
    assert_true(lo == 0.0 && hi == 1.0);
    const float big[2] = {3e38f, 0.0f};
    float out;
    assert_status(bp_net_predict(net, big, 1, &out, 1), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "BP_NET_APPLY_SCALERS"));
    bp_optimizer_free(o1);
    bp_optimizer_free(o2);
    bp_net_free(c);
    bp_net_free(net);
    bp_dataset_free(raw);
    bp_dataset_free(raw_val);
}

/* ---- metrics and evaluate ------------------------------------------------------------- */

static void evaluate_matches_hand_computation(void **state)
{
    (void)state;
    /* Regression: y = x0 - x1 + 0.5 (w = [1, -1], b = 0.5). */
    bp_net *net = make_net(1, 2, 0, 1, BP_ACT_IDENTITY);
    const float w[2] = {1, -1}, b[1] = {0.5f};
    assert_status(bp_layer_set_weights(bp_net_layer(net, 0), w, 2), BP_OK);
    assert_status(bp_layer_set_biases(bp_net_layer(net, 0), b, 1), BP_OK);
    const float x[6] = {1, 0, 0, 1, 2, 2}; /* predictions 1.5, -0.5, 0.5 */
    const float y[3] = {1, 0, 2.5f};       /* errors 0.5, -0.5, -2 */
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, x, y, 3, 2, 1), BP_OK);
    double m[BP_METRIC_COUNT];
    for (size_t k = 0; k < BP_METRIC_COUNT; k++)
        m[k] = -7;
    assert_status(bp_net_evaluate(net, BP_LOSS_MSE, ds, m, BP_METRIC_COUNT), BP_OK);
    assert_close(m[BP_METRIC_LOSS], (0.25 + 0.25 + 4) / 3, 1e-6, 0);
    assert_true(isnan(m[BP_METRIC_ACCURACY]));
    assert_close(m[BP_METRIC_MAE], 3.0 / 3, 1e-6, 0);
    assert_close(m[BP_METRIC_RMSE], sqrt(4.5 / 3), 1e-6, 0);
    assert_true(m[4] == -7); /* only the first four are written */
    m[1] = -7;
    assert_status(bp_net_evaluate(net, BP_LOSS_MAE, ds, m, 1), BP_OK);
    assert_close(m[BP_METRIC_LOSS], 1.0, 1e-6, 0);
    assert_true(m[1] == -7); /* count 1: only the loss */
    assert_status(bp_net_evaluate(net, BP_LOSS_HUBER, ds, m, 4), BP_OK);
    assert_close(m[BP_METRIC_LOSS], (0.125 + 0.125 + 1.5) / 3, 1e-6, 0); /* delta 1 */
    assert_close(m[BP_METRIC_MAE], 1.0, 1e-6, 0);
    /* BCE on logits: logit > 0 vs target >= 0.5 -> rows 1 (1.5 vs 1: hit), 2 (-0.5 vs 0:
     * hit), 3 (0.5 vs 2.5... targets must be in [0, 1] for BCE: use 0.4 -> miss). */
    const float yb[3] = {1, 0, 0.4f};
    bp_dataset *dsb;
    assert_status(bp_dataset_create(&dsb, x, yb, 3, 2, 1), BP_OK);
    assert_status(bp_net_evaluate(net, BP_LOSS_BCE_LOGITS, dsb, m, 4), BP_OK);
    double bce = 0;
    const double z[3] = {1.5, -0.5, 0.5};
    for (int i = 0; i < 3; i++)
        bce += fmax(z[i], 0) - z[i] * (double)yb[i] + log1p(exp(-fabs(z[i])));
    assert_close(m[BP_METRIC_LOSS], bce / 3, 1e-6, 0);
    assert_close(m[BP_METRIC_ACCURACY], 2.0 / 3, 1e-12, 0);
    assert_true(isnan(m[BP_METRIC_MAE]) && isnan(m[BP_METRIC_RMSE]));
    bp_dataset_free(dsb);
    bp_dataset_free(ds);
    bp_net_free(net);

    /* Classification: 2-2 softmax with W = I, b = 0; rows (1,0) (0,1) (2,1), all class 0. */
    net = make_net(1, 2, 0, 2, BP_ACT_SOFTMAX);
    const float eye[4] = {1, 0, 0, 1}, zero[2] = {0, 0};
    assert_status(bp_layer_set_weights(bp_net_layer(net, 0), eye, 4), BP_OK);
    assert_status(bp_layer_set_biases(bp_net_layer(net, 0), zero, 2), BP_OK);
    const float xc[6] = {1, 0, 0, 1, 2, 1}, cls[3] = {0, 0, 0};
    assert_status(bp_dataset_create(&ds, xc, cls, 3, 2, 1), BP_OK);
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, ds, m, 4), BP_OK);
    /* -log p0: row 1 log(1 + e^-1), row 2 log(1 + e^1), row 3 log(1 + e^-1). */
    const double ce = (2 * log1p(exp(-1.0)) + log1p(exp(1.0))) / 3;
    assert_close(m[BP_METRIC_LOSS], ce, 1e-6, 0);
    assert_close(m[BP_METRIC_ACCURACY], 2.0 / 3, 1e-12, 0);
    assert_true(isnan(m[BP_METRIC_MAE]));
    bp_dataset *oh;
    assert_status(bp_dataset_one_hot(&oh, ds, 2), BP_OK);
    assert_status(bp_net_evaluate(net, BP_LOSS_SOFTMAX_CE, oh, m, 4), BP_OK);
    assert_close(m[BP_METRIC_LOSS], ce, 1e-6, 0);
    assert_close(m[BP_METRIC_ACCURACY], 2.0 / 3, 1e-12, 0);
    bp_dataset_free(oh);
    bp_dataset_free(ds);
    bp_net_free(net);
}

static void evaluate_covers_sets_larger_than_one_chunk(void **state)
{
    (void)state;
    /* 2500 rows (3 inference chunks): evaluate equals the metrics of one predict call. */
    bp_net *net = make_net(6, 2, 5, 1, BP_ACT_IDENTITY);
    bp_dataset *ds = make_linear(2500, 11);
    float *pred = malloc(2500 * sizeof(float));
    assert_non_null(pred);
    assert_status(bp_net_predict(net, bp_dataset_inputs(ds), 2500, pred, 2500), BP_OK);
    const float *y = bp_dataset_targets(ds);
    double se = 0, ae = 0;
    for (size_t i = 0; i < 2500; i++) {
        const double d = (double)pred[i] - (double)y[i];
        se += d * d;
        ae += fabs(d);
    }
    double m[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_MSE, ds, m, 4), BP_OK);
    assert_close(m[BP_METRIC_LOSS], se / 2500, 1e-5, 0);
    assert_close(m[BP_METRIC_MAE], ae / 2500, 1e-9, 0);
    assert_close(m[BP_METRIC_RMSE], sqrt(se / 2500), 1e-9, 0);
    free(pred);
    bp_dataset_free(ds);
    bp_net_free(net);
}

static void training_metrics_are_measured_before_each_update(void **state)
{
    (void)state;
    /* One batch per epoch, no shuffling: epoch e's training metrics are those of the weights
     * before its single step, i.e. what evaluate says before the fit call. */
    bp_net *net = make_net(7, 2, 3, 1, BP_ACT_IDENTITY);
    bp_dataset *ds = make_linear(30, 3);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.05);
    double before[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_MSE, ds, before, 4), BP_OK);
    set(net, BP_FIT_EPOCHS, 1);
    set(net, BP_FIT_BATCH_SIZE, 30);
    set(net, BP_FIT_SHUFFLE, 0);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, ds), BP_OK);
    assert_close(hist(net, 0, BP_METRIC_LOSS), before[0], 1e-6, 0);
    assert_close(hist(net, 0, BP_METRIC_MAE), before[2], 1e-6, 0);
    assert_close(hist(net, 0, BP_METRIC_RMSE), before[3], 1e-6, 0);
    assert_true(isnan(hist(net, 0, BP_METRIC_ACCURACY)));
    /* The validation metrics are those after the step. */
    double after[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_MSE, ds, after, 4), BP_OK);
    assert_true(after[0] < before[0]);
    for (int k = 0; k < 4; k++)
        if (!isnan(after[k]))
            assert_close(hist(net, 0, BP_METRIC_VAL_LOSS + k), after[k], 1e-12, 0);
    assert_true(hist(net, 0, BP_METRIC_SECONDS) >= 0);
    /* Without a validation set the val_* metrics are NaN. */
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    for (int k = BP_METRIC_VAL_LOSS; k <= BP_METRIC_VAL_RMSE; k++)
        assert_true(isnan(hist(net, 0, k)));
    bp_optimizer_free(opt);
    bp_dataset_free(ds);
    bp_net_free(net);
}

static void fit_learns_iris_to_high_accuracy(void **state)
{
    (void)state;
    bp_dataset *ds;
    assert_status(bp_dataset_load_csv(&ds, BP_TEST_DATA_DIR "/iris.csv", ',', 1, 4, 1), BP_OK);
    float off[4], sc[4];
    assert_status(bp_dataset_fit_scaler(ds, BP_SCALE_STANDARD, BP_SCALE_INPUTS, off, sc, 4), BP_OK);
    assert_status(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, off, sc, 4), BP_OK);
    bp_net *net = make_net(42, 4, 16, 3, BP_ACT_SOFTMAX);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.01);
    set(net, BP_FIT_EPOCHS, 60);
    set(net, BP_FIT_BATCH_SIZE, 16);
    assert_status(bp_net_fit(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, ds, NULL), BP_OK);
    const double first = hist(net, 0, BP_METRIC_LOSS), last = hist(net, 59, BP_METRIC_LOSS);
    double m[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, ds, m, 4), BP_OK);
    print_message("iris: loss %.4f -> %.4f, train accuracy %.4f (evaluate %.4f)\n", first, last,
                  hist(net, 59, BP_METRIC_ACCURACY), m[BP_METRIC_ACCURACY]);
    assert_true(last < first / 4);
    assert_true(hist(net, 59, BP_METRIC_ACCURACY) >= 0.95);
    assert_true(m[BP_METRIC_ACCURACY] >= 0.95);
    /* evaluate's accuracy is argmax of predict against the labels. */
    float out[150 * 3];
    size_t cls[150];
    assert_status(bp_net_predict(net, bp_dataset_inputs(ds), 150, out, 450), BP_OK);
    assert_status(bp_argmax(out, 150, 3, cls, 150), BP_OK);
    size_t hits = 0;
    for (size_t i = 0; i < 150; i++)
        hits += cls[i] == (size_t)bp_dataset_targets(ds)[i];
    assert_close(m[BP_METRIC_ACCURACY], (double)hits / 150, 1e-12, 0);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(ds);
}

/* ---- history -------------------------------------------------------------------------- */

static void history_csv_round_trips(void **state)
{
    (void)state;
    bp_net *net = make_net(8, 2, 3, 1, BP_ACT_IDENTITY);
    bp_dataset *ds = make_linear(24, 4);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.01);
    set(net, BP_FIT_EPOCHS, 5);
    set(net, BP_FIT_INITIAL_EPOCH, 2);
    set(net, BP_FIT_BATCH_SIZE, 5);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, ds), BP_OK);
    assert_int_equal(bp_net_history_length(net), 3);
    double v;
    assert_status(bp_net_get(net, BP_FIT_INITIAL_EPOCH, &v), BP_OK);
    assert_true(v == 2); /* fit leaves it as it was */

    char path[] = "/tmp/bp_test_fit_XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_status(bp_net_history_save_csv(net, path), BP_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "epoch,loss,accuracy,mae,rmse,val_loss,val_accuracy,val_mae,"
                              "val_rmse,learning_rate,seconds\n");
    for (size_t k = 0; k < BP_METRIC_COUNT; k++)
        assert_non_null(strstr(line, bp_metric_name((int)k)));
    size_t rows = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = line, *end;
        assert_int_equal(strtoul(p, &end, 10), 2 + rows); /* absolute epoch numbers */
        p = end;
        for (int k = 0; k < BP_METRIC_COUNT; k++) {
            assert_int_equal(*p, ',');
            p++;
            const double x = strtod(p, &end);
            assert_true(end > p);
            p = end;
            const double want = hist(net, rows, k);
            if (isnan(want))
                assert_true(isnan(x));
            else
                assert_close(x, want, 1e-8, 0); /* 9 significant digits */
        }
        assert_int_equal(*p, '\n');
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, 3);
    /* "nan" is spelled out for the metrics that do not apply. */
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, ",nan,"));
    fclose(f);
    unlink(path);

    assert_status(bp_net_history_save_csv(net, "/nonexistent-dir/h.csv"), BP_ERR_IO);
    assert_non_null(strstr(bp_last_error(), "h.csv")); /* a const net: bp_last_error() only */
    assert_status(bp_net_history_save_csv(net, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_history_save_csv(NULL, path), BP_ERR_INVALID_ARG);

    assert_status(bp_net_history_get(net, 3, BP_METRIC_LOSS, &v), BP_ERR_INDEX);
    assert_status(bp_net_history_get(net, 0, BP_METRIC_COUNT, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_net_history_get(net, 0, -1, &v), BP_ERR_INVALID_ARG);
    assert_status(bp_net_history_get(net, 0, BP_METRIC_LOSS, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_history_get(NULL, 0, BP_METRIC_LOSS, &v), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_net_history_length(NULL), 0);

    /* Nothing to do: INITIAL_EPOCH >= EPOCHS trains nothing and empties the history. */
    set(net, BP_FIT_INITIAL_EPOCH, 5);
    float *p0 = copy_params(net, NULL);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(bp_net_history_length(net), 0);
    assert_memory_equal(p0, bp_net_params(net, NULL), bp_net_param_count(net) * sizeof(float));
    free(p0);
    bp_optimizer_free(opt);
    bp_dataset_free(ds);
    bp_net_free(net);
}

static void metric_names_and_count(void **state)
{
    (void)state;
    assert_int_equal(bp_metric_count(), BP_METRIC_COUNT);
    assert_string_equal(bp_metric_name(BP_METRIC_LOSS), "loss");
    assert_string_equal(bp_metric_name(BP_METRIC_VAL_ACCURACY), "val_accuracy");
    assert_string_equal(bp_metric_name(BP_METRIC_LEARNING_RATE), "learning_rate");
    assert_string_equal(bp_metric_name(BP_METRIC_SECONDS), "seconds");
    assert_string_equal(bp_metric_name(BP_METRIC_COUNT), "unknown");
    assert_string_equal(bp_metric_name(-1), "unknown");
}

/* ---- resume, determinism, allocation -------------------------------------------------- */

static void resumed_fit_gives_bit_identical_weights(void **state)
{
    (void)state;
    bp_dataset *ds = make_linear(50, 21);
    bp_net *a = make_net(33, 2, 6, 1, BP_ACT_IDENTITY), *b = make_net(33, 2, 6, 1, BP_ACT_IDENTITY);
    bp_optimizer *oa = make_opt(BP_OPTIMIZER_ADAM, 0.02), *ob = make_opt(BP_OPTIMIZER_ADAM, 0.02);
    bp_net *nets[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        set(nets[i], BP_FIT_BATCH_SIZE, 7);
        set(nets[i], BP_FIT_SCHEDULE, BP_SCHEDULE_PLATEAU);
        set(nets[i], BP_FIT_PLATEAU_PATIENCE, 1);
        set(nets[i], BP_FIT_MIN_DELTA, 1e9); /* the plateau rate changes every epoch */
        set(nets[i], BP_FIT_LR_GAMMA, 0.5);
    }
    set(a, BP_FIT_EPOCHS, 3);
    assert_status(bp_net_fit(a, oa, BP_LOSS_MSE, ds, NULL), BP_OK);

    set(b, BP_FIT_EPOCHS, 2);
    assert_status(bp_net_fit(b, ob, BP_LOSS_MSE, ds, NULL), BP_OK);
    set(b, BP_FIT_EPOCHS, 3);
    set(b, BP_FIT_INITIAL_EPOCH, 2);
    assert_status(bp_net_fit(b, ob, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_int_equal(bp_net_history_length(b), 1);
    assert_true(hist(b, 0, BP_METRIC_LEARNING_RATE) == hist(a, 2, BP_METRIC_LEARNING_RATE));
    /* e0 improves (from +inf), e1 does not -> the rate halves from e2 (patience 1). */
    assert_true(hist(a, 1, BP_METRIC_LEARNING_RATE) == 0.02);
    assert_true(hist(a, 2, BP_METRIC_LEARNING_RATE) == 0.02 * 0.5);
    assert_true(hist(b, 0, BP_METRIC_LOSS) == hist(a, 2, BP_METRIC_LOSS));
    assert_memory_equal(bp_net_params(a, NULL), bp_net_params(b, NULL),
                        bp_net_param_count(a) * sizeof(float));

    /* Shuffling differs per epoch and per seed, and is deterministic per seed. */
    bp_net *c = make_net(33, 2, 6, 1, BP_ACT_IDENTITY);
    bp_optimizer *oc = make_opt(BP_OPTIMIZER_ADAM, 0.02);
    set(c, BP_FIT_BATCH_SIZE, 7);
    set(c, BP_FIT_EPOCHS, 3);
    set(c, BP_FIT_SHUFFLE, 0);
    assert_status(bp_net_fit(c, oc, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_memory_not_equal(bp_net_params(a, NULL), bp_net_params(c, NULL),
                            bp_net_param_count(a) * sizeof(float));
    bp_optimizer_free(oc);
    bp_net_free(c);
    bp_optimizer_free(oa);
    bp_optimizer_free(ob);
    bp_net_free(a);
    bp_net_free(b);
    bp_dataset_free(ds);
}

/* Allocations a fit of @p epochs epochs makes on a fresh counted net (with validation). */
static size_t fit_allocations(size_t epochs, size_t *second_call)
{
    bp_test_alloc ta = {0};
    bp_net *net;
    assert_status(bp_net_create_ex(&net, 2, 9, bp_test_alloc_fn, bp_test_free_fn, &ta), BP_OK);
    assert_status(bp_net_add_dense(net, 8, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    bp_dataset *ds = make_linear(100, 2), *va = make_linear(30, 8);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.01);
    set(net, BP_FIT_EPOCHS, (double)epochs);
    set(net, BP_FIT_BATCH_SIZE, 16); /* 7 batches, the last one of 4 rows */
    set(net, BP_FIT_PATIENCE, 1000); /* best-weights copies every improving epoch */
    set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_COSINE);
    const size_t before = ta.allocs;
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, va), BP_OK);
    const size_t used = ta.allocs - before;
    const size_t again = ta.allocs;
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, va), BP_OK);
    *second_call = ta.allocs - again;
    bp_optimizer_free(opt);
    bp_dataset_free(ds);
    bp_dataset_free(va);
    bp_net_free(net);
    assert_int_equal(ta.live, 0);
    return used;
}

static void fit_allocates_nothing_per_step_or_epoch(void **state)
{
    (void)state;
    size_t again1, again12;
    const size_t one = fit_allocations(1, &again1), twelve = fit_allocations(12, &again12);
    print_message("fit allocations: 1 epoch %zu, 12 epochs %zu; a second call %zu\n", one, twelve,
                  again12);
    assert_int_equal(one, twelve);
    assert_int_equal(again1, again12);
    assert_true(again12 < twelve); /* the workspaces are planned once per net */
}

static void fit_out_of_memory_fails_cleanly(void **state)
{
    (void)state;
    bp_dataset *ds = make_linear(40, 2);
    int succeeded = 0;
    for (long fail = 1; fail < 50 && !succeeded; fail++) {
        bp_test_alloc ta = {0};
        bp_net *net;
        assert_status(bp_net_create_ex(&net, 2, 9, bp_test_alloc_fn, bp_test_free_fn, &ta), BP_OK);
        assert_status(bp_net_add_dense(net, 4, BP_ACT_TANH), BP_OK);
        assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
        set(net, BP_FIT_EPOCHS, 3);
        set(net, BP_FIT_BATCH_SIZE, 8);
        set(net, BP_FIT_PATIENCE, 2);
        bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 0.1);
        float *p0 = copy_params(net, NULL);
        ta.fail_at = (long)ta.attempts + fail;
        const bp_status s = bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL);
        if (s == BP_OK) {
            succeeded = 1;
            assert_int_equal(bp_net_history_length(net), 3);
        } else {
            assert_status(s, BP_ERR_NOMEM);
            assert_memory_equal(p0, bp_net_params(net, NULL),
                                bp_net_param_count(net) * sizeof(float));
            double lr;
            assert_status(bp_optimizer_get(opt, BP_OPT_LEARNING_RATE, &lr), BP_OK);
            assert_true(lr == 0.1);
        }
        free(p0);
        bp_optimizer_free(opt);
        bp_net_free(net);
        assert_int_equal(ta.live, 0);
    }
    assert_true(succeeded);
    bp_dataset_free(ds);
}

/* ---- clipping, non-finite ------------------------------------------------------------- */

/* L2 distance the weights move in one fit epoch of one full batch of SGD at rate 1. */
static double one_step_move(double clip_norm)
{
    bp_net *net = make_net(12, 2, 4, 1, BP_ACT_IDENTITY);
    bp_dataset *ds = make_linear(20, 6);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 1.0);
    set(net, BP_NET_CLIP_NORM, clip_norm);
    set(net, BP_FIT_EPOCHS, 1);
    set(net, BP_FIT_BATCH_SIZE, 20);
    size_t np;
    float *p0 = copy_params(net, &np);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    const float *p = bp_net_params(net, NULL);
    double ss = 0;
    for (size_t k = 0; k < np; k++)
        ss += ((double)p[k] - (double)p0[k]) * ((double)p[k] - (double)p0[k]);
    free(p0);
    bp_optimizer_free(opt);
    bp_dataset_free(ds);
    bp_net_free(net);
    return sqrt(ss);
}

static void fit_applies_gradient_clipping(void **state)
{
    (void)state;
    const double free_move = one_step_move(0), clipped = one_step_move(0.01);
    print_message("one SGD step at rate 1: moves %.4f unclipped, %.6f with clip norm 0.01\n",
                  free_move, clipped);
    assert_true(free_move > 0.05);
    assert_close(clipped, 0.01, 1e-4, 0);
}

static void nonfinite_loss_stops_training_with_finite_weights(void **state)
{
    (void)state;
    float x[16], y[8];
    for (int i = 0; i < 8; i++) {
        x[2 * i] = (float)(i + 1) * 1e15f;
        x[2 * i + 1] = -(float)i * 1e15f;
        y[i] = 1.0f;
    }
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, x, y, 8, 2, 1), BP_OK);
    bp_net *net = make_net(1, 2, 0, 1, BP_ACT_IDENTITY);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_SGD, 1e3);
    set(net, BP_FIT_EPOCHS, 20);
    set(net, BP_FIT_BATCH_SIZE, 2);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, ds, NULL), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "bp_net_fit: epoch"));
    assert_true(bp_net_history_length(net) < 20);
    size_t np;
    const float *p = bp_net_params(net, &np);
    for (size_t k = 0; k < np; k++)
        assert_true(isfinite(p[k]));
    double lr;
    assert_status(bp_optimizer_get(opt, BP_OPT_LEARNING_RATE, &lr), BP_OK);
    assert_true(lr == 1e3);
    bp_optimizer_free(opt);
    bp_dataset_free(ds);
    bp_net_free(net);
}

/* ---- argmax --------------------------------------------------------------------------- */

static void argmax_returns_the_first_maximum_of_each_row(void **state)
{
    (void)state;
    const float v[12] = {0.1f, 0.7f, 0.2f, 5, 5, -1, -3, -2, -2.5f, 1, -INFINITY, INFINITY};
    size_t idx[4] = {9, 9, 9, 9};
    assert_status(bp_argmax(v, 4, 3, idx, 4), BP_OK);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 0); /* tie: the first */
    assert_int_equal(idx[2], 1);
    assert_int_equal(idx[3], 2);
    assert_status(bp_argmax(v, 12, 1, idx, 4), BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_argmax(v, 1, 12, idx, 1), BP_OK);
    assert_int_equal(idx[0], 11);
    assert_status(bp_argmax(NULL, 1, 3, idx, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_argmax(v, 1, 3, NULL, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_argmax(v, 0, 3, idx, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_argmax(v, 1, 0, idx, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_argmax(v, SIZE_MAX, 2, idx, SIZE_MAX), BP_ERR_INVALID_ARG);
    const float nan_row[3] = {1, NAN, 0};
    idx[0] = 9;
    assert_status(bp_argmax(nan_row, 1, 3, idx, 1), BP_ERR_NONFINITE);
    assert_int_equal(idx[0], 9);
}

/* ---- bad input ------------------------------------------------------------------------ */

static void fit_and_evaluate_reject_bad_input_and_change_nothing(void **state)
{
    (void)state;
    bp_net *net = make_net(1, 2, 3, 2, BP_ACT_SOFTMAX);
    bp_net *reg = make_net(1, 2, 0, 1, BP_ACT_IDENTITY);
    bp_net *empty;
    assert_status(bp_net_create(&empty, 2, 1), BP_OK);
    bp_optimizer *opt = make_opt(BP_OPTIMIZER_ADAM, 0.01);
    const float x3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, cls[3] = {0, 1, 1}, bad_cls[3] = {0, 2, 1};
    const float oh[6] = {1, 0, 0, 1, 0, 1}, y3[9] = {0};
    bp_dataset *ok, *wide_in, *bad_index, *onehot, *three_out;
    assert_status(bp_dataset_create(&ok, x3, cls, 3, 2, 1), BP_OK);      /* x [3 x 2] */
    assert_status(bp_dataset_create(&wide_in, x3, cls, 3, 3, 1), BP_OK); /* x [3 x 3] */
    assert_status(bp_dataset_create(&bad_index, x3, bad_cls, 3, 2, 1), BP_OK);
    assert_status(bp_dataset_create(&onehot, x3, oh, 3, 2, 2), BP_OK);
    assert_status(bp_dataset_create(&three_out, x3, y3, 3, 2, 3), BP_OK);

    /* A first good fit, so that "unchanged" covers the history too. */
    set(net, BP_FIT_EPOCHS, 2);
    assert_status(bp_net_fit(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, ok, NULL), BP_OK);
    float *p0 = copy_params(net, NULL);
    const int sp = BP_LOSS_SPARSE_SOFTMAX_CE;

    assert_status(bp_net_fit(NULL, opt, sp, ok, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_fit(net, NULL, sp, ok, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_fit(net, opt, sp, NULL, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_fit(net, opt, 0, ok, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_fit(net, opt, 99, ok, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_fit(net, opt, sp, wide_in, NULL), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_net_last_error(net), "3 input columns"));
    assert_status(bp_net_fit(net, opt, sp, ok, wide_in), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_net_last_error(net), "validation"));
    assert_status(bp_net_fit(net, opt, sp, onehot, NULL), BP_ERR_SHAPE); /* sparse: 1 column */
    assert_non_null(strstr(bp_net_last_error(net), "class indices"));
    assert_status(bp_net_fit(net, opt, BP_LOSS_SOFTMAX_CE, ok, NULL), BP_ERR_SHAPE);
    assert_status(bp_net_fit(net, opt, BP_LOSS_MSE, three_out, NULL), BP_ERR_SHAPE);
    assert_status(bp_net_fit(net, opt, sp, bad_index, NULL), BP_ERR_INDEX);
    assert_non_null(strstr(bp_net_last_error(net), "row 1"));
    assert_status(bp_net_fit(net, opt, sp, ok, bad_index), BP_ERR_INDEX);
    assert_status(bp_net_fit(reg, opt, sp, ok, NULL), BP_ERR_STATE); /* no softmax layer */
    assert_status(bp_net_fit(empty, opt, BP_LOSS_MSE, ok, NULL), BP_ERR_STATE);
    set(net, BP_NET_ACCUMULATE_GRADS, 1);
    assert_status(bp_net_fit(net, opt, sp, ok, NULL), BP_ERR_STATE);
    set(net, BP_NET_ACCUMULATE_GRADS, 0);
    /* An optimizer bound to another shape (it stepped reg's 3 parameters). */
    bp_optimizer *other = make_opt(BP_OPTIMIZER_SGD, 0.1);
    bp_dataset *reg_ds = make_linear(4, 1);
    assert_status(bp_net_fit(reg, other, BP_LOSS_MSE, reg_ds, NULL), BP_OK);
    assert_status(bp_net_fit(net, other, sp, ok, NULL), BP_ERR_STATE);
    assert_non_null(strstr(bp_net_last_error(net), "optimizer"));

    assert_memory_equal(p0, bp_net_params(net, NULL), bp_net_param_count(net) * sizeof(float));
    assert_int_equal(bp_net_history_length(net), 2);

    double m[4];
    assert_status(bp_net_evaluate(NULL, sp, ok, m, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate(net, sp, NULL, m, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate(net, sp, ok, NULL, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate(net, sp, ok, m, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate(net, 0, ok, m, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate(net, sp, wide_in, m, 4), BP_ERR_SHAPE);
    assert_status(bp_net_evaluate(net, sp, onehot, m, 4), BP_ERR_SHAPE);
    assert_status(bp_net_evaluate(net, sp, bad_index, m, 4), BP_ERR_INDEX);
    assert_status(bp_net_evaluate(reg, sp, ok, m, 4), BP_ERR_STATE);
    assert_status(bp_net_evaluate(empty, BP_LOSS_MSE, ok, m, 4), BP_ERR_STATE);
    assert_status(bp_net_evaluate(net, BP_LOSS_SOFTMAX_CE, onehot, m, 4), BP_OK);

    free(p0);
    bp_dataset_free(reg_ds);
    bp_optimizer_free(other);
    bp_dataset_free(ok);
    bp_dataset_free(wide_in);
    bp_dataset_free(bad_index);
    bp_dataset_free(onehot);
    bp_dataset_free(three_out);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_net_free(reg);
    bp_net_free(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(fit_keys_have_documented_defaults_bounds_and_checks),
        bp_add_test(clone_copies_fit_settings_and_callback_not_history),
        bp_add_test(schedules_follow_their_documented_formulas),
        bp_add_test(plateau_schedule_cuts_the_rate_when_the_loss_stalls),
        bp_add_test(early_stopping_restores_the_best_weights),
        bp_add_test(callback_can_stop_training_and_be_cleared),
        bp_add_test(checkpoint_from_callback_resumes_bit_identically),
        bp_add_test(keep_best_restores_the_best_epoch_however_training_ends),
        bp_add_test(batch_callback_reports_progress_at_a_bounded_rate),
        bp_add_test(apply_scalers_predicts_and_evaluates_in_raw_units),
        bp_add_test(evaluate_matches_hand_computation),
        bp_add_test(evaluate_covers_sets_larger_than_one_chunk),
        bp_add_test(training_metrics_are_measured_before_each_update),
        bp_add_test(fit_learns_iris_to_high_accuracy),
        bp_add_test(history_csv_round_trips),
        bp_add_test(metric_names_and_count),
        bp_add_test(resumed_fit_gives_bit_identical_weights),
        bp_add_test(fit_allocates_nothing_per_step_or_epoch),
        bp_add_test(fit_out_of_memory_fails_cleanly),
        bp_add_test(fit_applies_gradient_clipping),
        bp_add_test(nonfinite_loss_stops_training_with_finite_weights),
        bp_add_test(argmax_returns_the_first_maximum_of_each_row),
        bp_add_test(fit_and_evaluate_reject_bad_input_and_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
