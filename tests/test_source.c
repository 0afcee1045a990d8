/* test_source.c -- streaming sources (bp_source, bp_net_fit_source, bp_net_evaluate_source):
 * a generator trains bit-identically to the same rows in memory, a pipe without size or
 * rewind gives one pass, the shuffle buffer's order (seeded, independent of chunking,
 * bounded look-ahead), callback failures and NaN rows stop training with the weights of the
 * last good step, evaluation equals bp_net_evaluate, bad arguments, allocation failures. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "rng.h"
#include "source.h"

/* ---- a generator over fixed rows: y = x0 - 2 x1 + 0.5 (or a class index) --------------- */

typedef struct gen {
    const float *x, *y; /* [n x 2], [n x 1] */
    size_t n, next;
    size_t chunk;       /* rows per read at most (0: as many as asked) */
    size_t reads;       /* read calls so far */
    size_t fail_read;   /* fail this read call (1-based; 0: never) */
    int fail_value;     /* what the failing read returns */
    size_t rewinds;     /* rewind calls so far */
    size_t fail_rewind; /* fail this rewind call (1-based; 0: never) */
    size_t over;        /* report this many rows more than room on a read (0: never) */
} gen;

static int gen_read(void *user, float *x, float *y, size_t capacity, size_t *rows)
{
    gen *g = user;
    g->reads++;
    if (g->fail_read != 0 && g->reads == g->fail_read) return g->fail_value;
    size_t k = g->n - g->next;
    if (k > capacity) k = capacity;
    if (g->chunk != 0 && k > g->chunk) k = g->chunk;
    memcpy(x, g->x + g->next * 2, k * 2 * sizeof(float));
    memcpy(y, g->y + g->next, k * sizeof(float));
    g->next += k;
    *rows = k + (k > 0 ? g->over : 0);
    return 0;
}

static int gen_rewind(void *user)
{
    gen *g = user;
    g->rewinds++;
    if (g->fail_rewind != 0 && g->rewinds == g->fail_rewind) return BP_ERR_IO;
    g->next = 0;
    return 0;
}

typedef struct rows {
    float *x, *y;
    size_t n;
} rows;

static rows make_rows(size_t n, uint64_t seed, int classes)
{
    rows r = {malloc(n * 2 * sizeof(float)), malloc(n * sizeof(float)), n};
    assert_non_null(r.x);
    assert_non_null(r.y);
    bp_test_fill_uniform(r.x, n * 2, -1.0f, 1.0f, &seed);
    for (size_t i = 0; i < n; i++)
        r.y[i] = classes ? (float)(r.x[2 * i] > r.x[2 * i + 1])
                         : r.x[2 * i] - 2.0f * r.x[2 * i + 1] + 0.5f;
    return r;
}

static void free_rows(rows *r)
{
    free(r->x);
    free(r->y);
}

static gen make_gen(const rows *r)
{
    gen g;
    memset(&g, 0, sizeof g);
    g.x = r->x;
    g.y = r->y;
    g.n = r->n;
    return g;
}

static bp_net *make_net(uint64_t seed, size_t out, int act)
{
    bp_net *net;
    assert_status(bp_net_create(&net, 2, seed), BP_OK);
    assert_status(bp_net_add_dense(net, 8, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, out, act), BP_OK);
    return net;
}

static bp_optimizer *make_opt(void)
{
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.01), BP_OK);
    return opt;
}

static void set(bp_net *net, int key, double value)
{
    assert_status(bp_net_set(net, key, value), BP_OK);
}

static int same_params(bp_net *a, bp_net *b)
{
    size_t na, nb;
    const float *pa = bp_net_params(a, &na), *pb = bp_net_params(b, &nb);
    return na == nb && memcmp(pa, pb, na * sizeof(float)) == 0;
}

/* ---- training --------------------------------------------------------------------------- */

/* In stream order, a generator trains exactly as bp_net_fit on the same rows in memory
 * without shuffling: same batches, same steps, same history. */
static void generator_trains_like_the_same_rows_in_memory(void **state)
{
    (void)state;
    rows r = make_rows(250, 7, 0);
    gen g = make_gen(&r);
    g.chunk = 13; /* the library asks again until a batch is full */
    bp_source *src;
    assert_status(bp_source_create(&src, 2, 1, 250, gen_read, gen_rewind, &g), BP_OK);
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, r.x, r.y, r.n, 2, 1), BP_OK);
    bp_net *a = make_net(3, 1, BP_ACT_IDENTITY), *b = make_net(3, 1, BP_ACT_IDENTITY);
    bp_optimizer *oa = make_opt(), *ob = make_opt();
    for (int k = 0; k < 2; k++) {
        bp_net *net = k ? b : a;
        set(net, BP_FIT_EPOCHS, 4);
        set(net, BP_FIT_BATCH_SIZE, 32);
        set(net, BP_FIT_SHUFFLE, 0);
    }
    assert_status(bp_net_fit_source(a, oa, BP_LOSS_MSE, src, ds), BP_OK);
    assert_status(bp_net_fit(b, ob, BP_LOSS_MSE, ds, ds), BP_OK);
    assert_true(same_params(a, b));
    assert_int_equal(bp_net_history_length(a), 4);
    assert_int_equal(g.rewinds, 3); /* the first pass reads the fresh source */
    for (size_t e = 0; e < 4; e++) {
        double va, vb;
        assert_status(bp_net_history_get(a, e, BP_METRIC_LOSS, &va), BP_OK);
        assert_status(bp_net_history_get(b, e, BP_METRIC_LOSS, &vb), BP_OK);
        assert_true(va == vb);
        assert_status(bp_net_history_get(a, e, BP_METRIC_VAL_LOSS, &va), BP_OK);
        assert_status(bp_net_history_get(b, e, BP_METRIC_VAL_LOSS, &vb), BP_OK);
        assert_true(va == vb);
    }
    double h0, h3;
    assert_status(bp_net_history_get(a, 0, BP_METRIC_LOSS, &h0), BP_OK);
    assert_status(bp_net_history_get(a, 3, BP_METRIC_LOSS, &h3), BP_OK);
    assert_true(h3 < h0); /* it learns */
    bp_optimizer_free(oa);
    bp_optimizer_free(ob);
    bp_net_free(a);
    bp_net_free(b);
    bp_dataset_free(ds);
    bp_source_free(src);
    free_rows(&r);
}

typedef struct progress {
    size_t calls, last_batch, last_batches, zero_batches;
} progress;

static void on_batch(void *user, const bp_net *net, size_t epoch, size_t batch, size_t batches,
                     double loss)
{
    progress *p = user;
    (void)net;
    (void)epoch;
    (void)loss;
    p->calls++;
    p->last_batch = batch;
    p->last_batches = batches;
    p->zero_batches += batches == 0;
}

/* A pipe: no size, no rewind, odd chunks. One epoch trains (as the same rows in memory); a
 * second pass fails up front, before anything changes. */
static void pipe_without_size_gives_one_pass(void **state)
{
    (void)state;
    rows r = make_rows(101, 9, 0);
    gen g = make_gen(&r);
    g.chunk = 7;
    bp_source *src;
    assert_status(bp_source_create(&src, 2, 1, 0, gen_read, NULL, &g), BP_OK);
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, r.x, r.y, r.n, 2, 1), BP_OK);
    bp_net *a = make_net(5, 1, BP_ACT_IDENTITY), *b = make_net(5, 1, BP_ACT_IDENTITY);
    bp_optimizer *oa = make_opt(), *ob = make_opt();
    for (int k = 0; k < 2; k++) {
        bp_net *net = k ? b : a;
        set(net, BP_FIT_EPOCHS, 2);
        set(net, BP_FIT_BATCH_SIZE, 10);
        set(net, BP_FIT_SHUFFLE, 0);
        set(net, BP_FIT_PROGRESS_SECONDS, 3600);
    }
    /* Two epochs of a one-pass source: refused before anything changes. */
    assert_status(bp_net_fit_source(a, oa, BP_LOSS_MSE, src, NULL), BP_ERR_STATE);
    assert_non_null(strstr(bp_net_last_error(a), "no rewind"));
    assert_int_equal(g.reads, 0);
    assert_true(same_params(a, b));
    set(a, BP_FIT_EPOCHS, 1);
    set(b, BP_FIT_EPOCHS, 1);
    progress pr = {0};
    assert_status(bp_net_set_batch_callback(a, on_batch, &pr), BP_OK);
    assert_status(bp_net_fit_source(a, oa, BP_LOSS_MSE, src, NULL), BP_OK);
    assert_status(bp_net_fit(b, ob, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_true(same_params(a, b));
    /* Unknown length: the only call (PROGRESS_SECONDS 3600) comes after the pass ended, with
     * the count of its 11 batches. */
    assert_int_equal(pr.calls, 1);
    assert_int_equal(pr.last_batch, 10);
    assert_int_equal(pr.last_batches, 11);
    /* With a call after every batch, batches is 0 while the pass runs. */
    memset(&pr, 0, sizeof pr);
    set(a, BP_FIT_PROGRESS_SECONDS, 0);
    /* The pass was given: neither fit nor evaluate gets another. */
    assert_status(bp_net_fit_source(a, oa, BP_LOSS_MSE, src, NULL), BP_ERR_STATE);
    assert_non_null(strstr(bp_net_last_error(a), "gave already"));
    double m[4];
    assert_status(bp_net_evaluate_source(a, BP_LOSS_MSE, src, m, 4), BP_ERR_STATE);
    assert_non_null(strstr(bp_net_last_error(a), "rewind"));
    bp_source_free(src);
    /* A fresh pipe, a call after every batch. */
    g = make_gen(&r);
    g.chunk = 7;
    assert_status(bp_source_create(&src, 2, 1, 0, gen_read, NULL, &g), BP_OK);
    assert_status(bp_net_fit_source(a, oa, BP_LOSS_MSE, src, NULL), BP_OK);
    assert_int_equal(pr.calls, 11);
    assert_int_equal(pr.zero_batches, 11);
    assert_int_equal(pr.last_batch, 10);
    bp_optimizer_free(oa);
    bp_optimizer_free(ob);
    bp_net_free(a);
    bp_net_free(b);
    bp_dataset_free(ds);
    bp_source_free(src);
    free_rows(&r);
}

/* ---- the shuffle buffer ----------------------------------------------------------------- */

/* One pass through a buffer of @p cap rows drawn with @p seed, read in chunks of @p chunk:
 * out[i] is the stream index of the i-th row given (the rows carry their index). */
static void shuffled_pass(size_t n, size_t cap, size_t chunk, uint64_t seed, size_t *out)
{
    float *x = malloc(n * 2 * sizeof(float)), *y = malloc(n * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    for (size_t i = 0; i < n; i++) {
        x[2 * i] = (float)i;
        x[2 * i + 1] = -(float)i;
        y[i] = (float)i;
    }
    rows r = {x, y, n};
    gen g = make_gen(&r);
    g.chunk = chunk;
    bp_source *src;
    assert_status(bp_source_create(&src, 2, 1, 0, gen_read, NULL, &g), BP_OK);
    const size_t bs = 8;
    float *bx = malloc(cap * 2 * sizeof(float)), *by = malloc(cap * sizeof(float));
    float *tx = malloc(bs * 2 * sizeof(float)), *ty = malloc(bs * sizeof(float));
    float ox[8 * 2], oy[8];
    bp__rng rng;
    bp__rng_seed(&rng, seed);
    bp__pass pass;
    assert_status(bp__pass_begin(&pass, src, &rng, bx, by, cap, tx, ty, bs), BP_OK);
    size_t total = 0, got;
    do {
        assert_status(bp__pass_next(&pass, ox, oy, bs, &got), BP_OK);
        for (size_t k = 0; k < got; k++) {
            assert_true(ox[2 * k] == oy[k] && ox[2 * k + 1] == -oy[k]); /* rows stay whole */
            out[total + k] = (size_t)oy[k];
        }
        total += got;
        assert_true(got == bs || total == n); /* short only at the end */
    } while (got > 0);
    assert_int_equal(total, n);
    free(bx);
    free(by);
    free(tx);
    free(ty);
    free(x);
    free(y);
    bp_source_free(src);
}

static void shuffle_buffer_is_seeded_bounded_and_chunk_independent(void **state)
{
    (void)state;
    enum { N = 300, CAP = 20 };
    size_t a[N], b[N], c[N], seen[N] = {0};
    shuffled_pass(N, CAP, 0, 11, a);
    shuffled_pass(N, CAP, 3, 11, b); /* other chunks, same rows, same seed */
    shuffled_pass(N, CAP, 0, 12, c); /* another seed */
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    size_t moved = 0;
    for (size_t i = 0; i < N; i++) {
        seen[a[i]]++;
        moved += a[i] != i;
        /* Row j enters the buffer once j - CAP + 1 rows have left it. */
        assert_true(i + CAP >= a[i] + 1);
    }
    for (size_t i = 0; i < N; i++)
        assert_int_equal(seen[i], 1); /* a permutation */
    assert_true(moved > N / 2);
}

/* Through fit: the same seed gives the same weights, another seed other weights, and a
 * buffer of 1 row is the stream's order (as no shuffling). */
static void fit_source_shuffles_deterministically_from_the_net_seed(void **state)
{
    (void)state;
    rows r = make_rows(200, 21, 0);
    bp_net *nets[4];
    for (int k = 0; k < 4; k++) {
        gen g = make_gen(&r);
        g.chunk = k == 1 ? 5 : 0;
        bp_source *src;
        assert_status(bp_source_create(&src, 2, 1, k == 1 ? 0 : 200, gen_read, gen_rewind, &g),
                      BP_OK);
        nets[k] = make_net(k == 2 ? 99 : 42, 1, BP_ACT_IDENTITY);
        if (k == 2) { /* the initial weights of seed 42, another generator state */
            bp_net *twin = make_net(42, 1, BP_ACT_IDENTITY);
            size_t np;
            float *p = bp_net_params(nets[2], &np);
            memcpy(p, bp_net_params(twin, &np), np * sizeof(float));
            bp_net_free(twin);
        }
        bp_optimizer *opt = make_opt();
        set(nets[k], BP_FIT_EPOCHS, 3);
        set(nets[k], BP_FIT_BATCH_SIZE, 16);
        set(nets[k], BP_FIT_SHUFFLE_BUFFER, k == 3 ? 1 : 64);
        assert_status(bp_net_fit_source(nets[k], opt, BP_LOSS_MSE, src, NULL), BP_OK);
        bp_optimizer_free(opt);
        bp_source_free(src);
    }
    assert_true(same_params(nets[0], nets[1])); /* chunking does not matter */
    assert_false(same_params(nets[0], nets[2]));
    /* A one-row buffer: stream order, as bp_net_fit without shuffling. */
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, r.x, r.y, r.n, 2, 1), BP_OK);
    bp_net *ref = make_net(42, 1, BP_ACT_IDENTITY);
    bp_optimizer *opt = make_opt();
    set(ref, BP_FIT_EPOCHS, 3);
    set(ref, BP_FIT_BATCH_SIZE, 16);
    set(ref, BP_FIT_SHUFFLE, 0);
    assert_status(bp_net_fit(ref, opt, BP_LOSS_MSE, ds, NULL), BP_OK);
    assert_true(same_params(nets[3], ref));
    assert_false(same_params(nets[0], ref));
    bp_optimizer_free(opt);
    bp_net_free(ref);
    bp_dataset_free(ds);
    for (int k = 0; k < 4; k++)
        bp_net_free(nets[k]);
    free_rows(&r);
}

/* ---- failures ----------------------------------------------------------------------------- */

/* A net trained by hand on rows [0, 10 * steps) in batches of 10: the weights a failing fit
 * must have kept. */
static bp_net *reference(const rows *r, size_t steps)
{
    bp_net *net = make_net(8, 1, BP_ACT_IDENTITY);
    bp_optimizer *opt = make_opt();
    float loss;
    for (size_t s = 0; s < steps; s++)
        assert_status(
            bp_net_train_step(net, opt, BP_LOSS_MSE, r->x + s * 20, r->y + s * 10, 10, &loss),
            BP_OK);
    bp_optimizer_free(opt);
    return net;
}

/* Fit one epoch (batches of 10, stream order) of a generator set up by @p g; returns the
 * status, the net in *out. */
static int fit_gen(gen *g, size_t announced, size_t epochs, bp_net **out)
{
    bp_source *src;
    assert_status(bp_source_create(&src, 2, 1, announced, gen_read, gen_rewind, g), BP_OK);
    bp_net *net = make_net(8, 1, BP_ACT_IDENTITY);
    bp_optimizer *opt = make_opt();
    set(net, BP_FIT_EPOCHS, (double)epochs);
    set(net, BP_FIT_BATCH_SIZE, 10);
    set(net, BP_FIT_SHUFFLE, 0);
    const int s = bp_net_fit_source(net, opt, BP_LOSS_MSE, src, NULL);
    double lr;
    assert_status(bp_optimizer_get(opt, BP_OPT_LEARNING_RATE, &lr), BP_OK);
    assert_true(lr == 0.01); /* the base rate is back */
    bp_optimizer_free(opt);
    bp_source_free(src);
    *out = net;
    return s;
}

static void callback_failures_stop_with_the_last_good_weights(void **state)
{
    (void)state;
    rows r = make_rows(60, 31, 0);
    bp_net *ref2 = reference(&r, 2), *net;

    /* A read that fails with a value that is no bp_status: BP_ERR_IO, named. */
    gen g = make_gen(&r);
    g.fail_read = 3;
    g.fail_value = 7;
    assert_status(fit_gen(&g, 0, 1, &net), BP_ERR_IO);
    assert_non_null(strstr(bp_net_last_error(net), "bp_net_fit_source: epoch 0"));
    assert_non_null(strstr(bp_net_last_error(net), "read callback"));
    assert_non_null(strstr(bp_net_last_error(net), "returned 7"));
    assert_non_null(strstr(bp_net_last_error(net), "after 20 rows"));
    assert_true(same_params(net, ref2));
    assert_int_equal(bp_net_history_length(net), 0);
    bp_net_free(net);

    /* A bp_status passes through. */
    g = make_gen(&r);
    g.fail_read = 3;
    g.fail_value = BP_ERR_FORMAT;
    assert_status(fit_gen(&g, 60, 1, &net), BP_ERR_FORMAT);
    assert_true(same_params(net, ref2));
    bp_net_free(net);

    /* A failing rewind stops before the second epoch: one epoch in the history. */
    g = make_gen(&r);
    g.fail_rewind = 1;
    assert_status(fit_gen(&g, 60, 3, &net), BP_ERR_IO);
    assert_non_null(strstr(bp_net_last_error(net), "epoch 1"));
    assert_non_null(strstr(bp_net_last_error(net), "rewind callback"));
    assert_int_equal(bp_net_history_length(net), 1);
    bp_net *ref6 = reference(&r, 6);
    assert_true(same_params(net, ref6));
    bp_net_free(ref6);
    bp_net_free(net);

    /* More rows than room. */
    g = make_gen(&r);
    g.over = 1;
    assert_status(fit_gen(&g, 0, 1, &net), BP_ERR_STATE);
    assert_non_null(strstr(bp_net_last_error(net), "for room of"));
    bp_net_free(net);

    /* Fewer or more rows than announced. */
    g = make_gen(&r);
    assert_status(fit_gen(&g, 61, 1, &net), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_net_last_error(net), "announced 61 rows and gave 60"));
    bp_net_free(net);
    g = make_gen(&r);
    assert_status(fit_gen(&g, 25, 1, &net), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_net_last_error(net), "announced 25"));
    assert_true(same_params(net, ref2)); /* rows 20..29 were read, not trained on */
    bp_net_free(net);

    /* A pass without rows. */
    rows none = {r.x, r.y, 0};
    g = make_gen(&none);
    assert_status(fit_gen(&g, 0, 1, &net), BP_ERR_STATE);
    assert_non_null(strstr(bp_net_last_error(net), "no rows"));
    bp_net_free(net);

    bp_net_free(ref2);
    free_rows(&r);
}

/* NaN and Inf in a source's rows: found as they are read, named by row and column. */
static void nonfinite_rows_are_refused_before_the_step(void **state)
{
    (void)state;
    rows r = make_rows(60, 41, 0);
    bp_net *ref1 = reference(&r, 1), *net;
    r.x[2 * 15 + 1] = NAN;
    gen g = make_gen(&r);
    assert_status(fit_gen(&g, 60, 1, &net), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "source row 15, input column 1"));
    assert_true(same_params(net, ref1));
    bp_net_free(net);
    r.x[2 * 15 + 1] = 0.0f;
    r.y[12] = INFINITY;
    g = make_gen(&r);
    g.chunk = 4;
    assert_status(fit_gen(&g, 60, 1, &net), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "source row 12, target column 0"));
    assert_true(same_params(net, ref1));
    bp_net_free(net);
    /* Through a shuffle buffer too. */
    g = make_gen(&r);
    bp_source *src;
    assert_status(bp_source_create(&src, 2, 1, 60, gen_read, gen_rewind, &g), BP_OK);
    net = make_net(8, 1, BP_ACT_IDENTITY);
    bp_optimizer *opt = make_opt();
    set(net, BP_FIT_BATCH_SIZE, 10);
    assert_status(bp_net_fit_source(net, opt, BP_LOSS_MSE, src, NULL), BP_ERR_NONFINITE);
    double m[4];
    assert_status(bp_net_evaluate_source(net, BP_LOSS_MSE, src, m, 4), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_net_last_error(net), "bp_net_evaluate_source"));
    assert_non_null(strstr(bp_net_last_error(net), "source row 12"));
    bp_optimizer_free(opt);
    bp_source_free(src);
    bp_net_free(net);
    bp_net_free(ref1);
    free_rows(&r);
}

/* Class indices out of range: the step (fit) or the evaluation refuses them. */
static void bad_targets_are_refused(void **state)
{
    (void)state;
    rows r = make_rows(40, 51, 1);
    r.y[33] = 2.0f; /* 2 classes */
    gen g = make_gen(&r);
    bp_source *src;
    assert_status(bp_source_create(&src, 2, 1, 40, gen_read, gen_rewind, &g), BP_OK);
    bp_net *net = make_net(4, 2, BP_ACT_SOFTMAX);
    bp_optimizer *opt = make_opt();
    set(net, BP_FIT_SHUFFLE, 0);
    set(net, BP_FIT_BATCH_SIZE, 10);
    assert_status(bp_net_fit_source(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, src, NULL), BP_ERR_INDEX);
    assert_non_null(strstr(bp_net_last_error(net), "rows 30..39"));
    double m[4];
    assert_status(bp_net_evaluate_source(net, BP_LOSS_SPARSE_SOFTMAX_CE, src, m, 4), BP_ERR_INDEX);
    assert_non_null(strstr(bp_net_last_error(net), "source rows 0..39"));
    bp_optimizer_free(opt);
    bp_source_free(src);
    bp_net_free(net);
    free_rows(&r);
}

/* ---- evaluation --------------------------------------------------------------------------- */

static void evaluate_source_equals_evaluate_on_the_same_rows(void **state)
{
    (void)state;
    rows r = make_rows(2600, 61, 1); /* more than one chunk of 1024 rows */
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, r.x, r.y, r.n, 2, 1), BP_OK);
    bp_net *net = make_net(6, 2, BP_ACT_SOFTMAX);
    double want[4], got[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, ds, want, 4), BP_OK);
    for (int k = 0; k < 2; k++) {
        gen g = make_gen(&r);
        g.chunk = k ? 100 : 0;
        bp_source *src;
        assert_status(bp_source_create(&src, 2, 1, k ? 0 : 2600, gen_read, gen_rewind, &g), BP_OK);
        for (int pass = 0; pass < 2; pass++) {
            memset(got, 0, sizeof got);
            assert_status(bp_net_evaluate_source(net, BP_LOSS_SPARSE_SOFTMAX_CE, src, got, 4),
                          BP_OK);
            assert_true(got[0] == want[0] && got[1] == want[1]);
            assert_true(isnan(got[2]) && isnan(got[3]));
        }
        assert_int_equal(g.rewinds, 1);
        /* count 1: only the loss is written. */
        double one[2] = {0.0, -1.0};
        assert_status(bp_net_evaluate_source(net, BP_LOSS_SPARSE_SOFTMAX_CE, src, one, 1), BP_OK);
        assert_true(one[0] == want[0] && one[1] == -1.0);
        bp_source_free(src);
    }
    bp_net_free(net);
    bp_dataset_free(ds);
    free_rows(&r);
}

/* ---- arguments ---------------------------------------------------------------------------- */

static void bad_arguments_are_refused(void **state)
{
    (void)state;
    rows r = make_rows(10, 71, 0);
    gen g = make_gen(&r);
    bp_source *src = (bp_source *)&g; /* overwritten: NULL on failure */
    assert_status(bp_source_create(NULL, 2, 1, 0, gen_read, NULL, &g), BP_ERR_INVALID_ARG);
    assert_status(bp_source_create(&src, 2, 1, 0, NULL, NULL, &g), BP_ERR_INVALID_ARG);
    assert_null(src);
    assert_non_null(strstr(bp_last_error(), "read is NULL"));
    assert_status(bp_source_create(&src, 0, 1, 0, gen_read, NULL, &g), BP_ERR_INVALID_ARG);
    assert_status(bp_source_create(&src, 2, 0, 0, gen_read, NULL, &g), BP_ERR_INVALID_ARG);
    assert_status(bp_source_create(&src, SIZE_MAX, 1, 0, gen_read, NULL, &g), BP_ERR_INVALID_ARG);
    assert_null(src);
    bp_source_free(NULL);

    assert_status(bp_source_create(&src, 2, 1, 10, gen_read, gen_rewind, &g), BP_OK);
    bp_net *net = make_net(1, 1, BP_ACT_IDENTITY);
    bp_optimizer *opt = make_opt();
    double m[4];
    assert_status(bp_net_fit_source(NULL, opt, BP_LOSS_MSE, src, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_fit_source(net, NULL, BP_LOSS_MSE, src, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_fit_source(net, opt, 999, src, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_fit_source(net, opt, BP_LOSS_MSE, NULL, NULL), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_net_last_error(net), "training source is not a valid source"));
    assert_status(bp_net_fit_source(net, opt, BP_LOSS_MSE, src, (const bp_dataset *)src),
                  BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate_source(NULL, BP_LOSS_MSE, src, m, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate_source(net, BP_LOSS_MSE, NULL, m, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate_source(net, BP_LOSS_MSE, src, NULL, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate_source(net, BP_LOSS_MSE, src, m, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate_source(net, 999, src, m, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_evaluate_source(net, BP_LOSS_MSE, (bp_source *)net, m, 4),
                  BP_ERR_INVALID_ARG);
    assert_int_equal(g.reads, 0); /* none of these read */
    bp_source_free(src);

    /* Widths that disagree with the net: BP_ERR_SHAPE. */
    assert_status(bp_source_create(&src, 3, 1, 10, gen_read, gen_rewind, &g), BP_OK);
    assert_status(bp_net_fit_source(net, opt, BP_LOSS_MSE, src, NULL), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_net_last_error(net), "training source has 3 input columns"));
    assert_status(bp_net_evaluate_source(net, BP_LOSS_MSE, src, m, 4), BP_ERR_SHAPE);
    bp_source_free(src);
    assert_status(bp_source_create(&src, 2, 2, 10, gen_read, gen_rewind, &g), BP_OK);
    assert_status(bp_net_fit_source(net, opt, BP_LOSS_MSE, src, NULL), BP_ERR_SHAPE);
    bp_source_free(src);
    assert_int_equal(g.reads, 0);

    /* A handle without the magic word (as a freed one) is refused, not followed. */
    bp_source fake;
    memset(&fake, 0, sizeof fake);
    assert_status(bp_net_fit_source(net, opt, BP_LOSS_MSE, &fake, NULL), BP_ERR_INVALID_ARG);
    bp_optimizer_free(opt);
    bp_net_free(net);
    free_rows(&r);
}

/* Every allocation of fit_source and evaluate_source failing in turn: BP_ERR_NOMEM, nothing
 * changed, nothing leaked; then success. */
static void allocation_failures_leave_the_net_unchanged(void **state)
{
    (void)state;
    rows r = make_rows(50, 81, 0);
    for (int which = 0; which < 2; which++) {
        int ok = 0;
        for (long fail = 1; !ok && fail < 100; fail++) {
            bp_test_alloc ta = {0};
            bp_net *net;
            assert_status(bp_net_create_ex(&net, 2, 5, bp_test_alloc_fn, bp_test_free_fn, &ta),
                          BP_OK);
            assert_status(bp_net_add_dense(net, 4, BP_ACT_TANH), BP_OK);
            assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
            bp_optimizer *opt = make_opt();
            set(net, BP_FIT_EPOCHS, 2);
            set(net, BP_FIT_BATCH_SIZE, 8);
            size_t np;
            const float *params = bp_net_params(net, &np);
            float *before = malloc(np * sizeof(float));
            assert_non_null(before);
            memcpy(before, params, np * sizeof(float));
            gen g = make_gen(&r);
            bp_source *src;
            assert_status(bp_source_create(&src, 2, 1, 50, gen_read, gen_rewind, &g), BP_OK);
            ta.fail_at = (long)ta.attempts + fail;
            double m[4];
            const int s = which ? bp_net_evaluate_source(net, BP_LOSS_MSE, src, m, 4)
                                : bp_net_fit_source(net, opt, BP_LOSS_MSE, src, NULL);
            if (s == BP_OK) {
                ok = 1;
            } else {
                assert_int_equal(s, BP_ERR_NOMEM);
                if (which == 0 && g.reads == 0)
                    assert_memory_equal(before, params, np * sizeof(float));
            }
            ta.fail_at = 0;
            bp_source_free(src);
            bp_optimizer_free(opt);
            bp_net_free(net);
            assert_int_equal(ta.live, 0);
            free(before);
        }
        assert_true(ok);
    }
    free_rows(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(generator_trains_like_the_same_rows_in_memory),
        bp_add_test(pipe_without_size_gives_one_pass),
        bp_add_test(shuffle_buffer_is_seeded_bounded_and_chunk_independent),
        bp_add_test(fit_source_shuffles_deterministically_from_the_net_seed),
        bp_add_test(callback_failures_stop_with_the_last_good_weights),
        bp_add_test(nonfinite_rows_are_refused_before_the_step),
        bp_add_test(bad_targets_are_refused),
        bp_add_test(evaluate_source_equals_evaluate_on_the_same_rows),
        bp_add_test(bad_arguments_are_refused),
        bp_add_test(allocation_failures_leave_the_net_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
