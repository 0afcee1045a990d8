/* test_threads.c -- concurrent inference on one trained network (bp_net_predict_ws), const
 * calls (save, getters) beside it, and independent handles trained on distinct threads.
 * Also run under ThreadSanitizer (preset ci-tsan, label "threads"). Shapes stay small so
 * the GEMMs take the plain-loop path (OpenBLAS's own threads confuse TSan). */
#include "test_util.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { THREADS = 6, ROUNDS = 25, N = 20, IN = 6, OUT = 4 }; /* every GEMM <= 4096 */

static float xs[N * IN];

/* Fill xs from @p seed and train @p net 20 Adam steps on it (classes i mod OUT). */
static bp_net *train_20_steps(bp_net *net, uint64_t seed)
{
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    uint64_t st = seed;
    bp_test_fill_uniform(xs, N * IN, -1, 1, &st);
    float y[N];
    for (int i = 0; i < N; i++)
        y[i] = (float)(i % OUT);
    for (int s = 0; s < 20; s++)
        assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, xs, y, N, NULL),
                      BP_OK);
    bp_optimizer_free(opt);
    return net;
}

static bp_net *trained_net(uint64_t seed)
{
    bp_net *net;
    assert_status(bp_net_create(&net, IN, seed), BP_OK);
    assert_status(bp_net_add_dense(net, 16, BP_ACT_GELU), BP_OK);
    assert_status(bp_net_add_dense(net, 8, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, OUT, BP_ACT_SOFTMAX), BP_OK);
    return train_20_steps(net, seed);
}

typedef struct job {
    const bp_net *net;
    const float *want; /* [N x OUT] single-threaded result */
    const unsigned char *file;
    size_t file_size;
    int mismatches;
    int failures;
} job;

static void *predict_worker(void *arg)
{
    job *j = arg;
    const size_t sf = bp_net_predict_scratch_floats(j->net, N);
    float *scratch = malloc(sf * sizeof(float));
    float y[N * OUT];
    for (int r = 0; r < ROUNDS; r++) {
        memset(y, 0, sizeof y);
        if (bp_net_predict_ws(j->net, xs, N, y, N * OUT, scratch, sf) != BP_OK) j->failures++;
        if (memcmp(y, j->want, sizeof y) != 0) j->mismatches++;
    }
    free(scratch);
    return NULL;
}

static void *save_worker(void *arg)
{
    job *j = arg;
    unsigned char *buf = malloc(j->file_size);
    for (int r = 0; r < ROUNDS; r++) {
        size_t size = 0;
        if (bp_net_save_buffer(j->net, buf, j->file_size, &size) != BP_OK) j->failures++;
        if (size != j->file_size || memcmp(buf, j->file, size) != 0) j->mismatches++;
        if (bp_net_output_size(j->net) != OUT || bp_net_param_count(j->net) == 0) j->failures++;
    }
    free(buf);
    return NULL;
}

/* A CNN with every stateful kind (conv, batch norm's running statistics, pooling, dropout)
 * on [1 x 2 x 3] images, so that its rows have the same width as the dense net's. */
static bp_net *trained_cnn(uint64_t seed)
{
    bp_net *net;
    assert_int_equal(IN, 6);
    assert_status(bp_net_create_image(&net, 1, 2, 3, seed), BP_OK);
    assert_status(bp_net_add_conv2d(net, 4, 2, 2, 1, 1, BP_ACT_IDENTITY), BP_OK); /* 4x3x4 */
    assert_status(bp_net_add_batchnorm(net), BP_OK);
    assert_status(bp_net_add_activation(net, BP_ACT_RELU), BP_OK);
    assert_status(bp_net_add_maxpool2d(net, 2, 1), BP_OK); /* 4x2x3 */
    assert_status(bp_net_add_dropout(net, 0.2), BP_OK);
    assert_status(bp_net_add_dense(net, OUT, BP_ACT_SOFTMAX), BP_OK);
    return train_20_steps(net, seed);
}

static void predict_concurrently(bp_net *net)
{
    float want[N * OUT], plain[N * OUT];
    const size_t sf = bp_net_predict_scratch_floats(net, N);
    assert_true(sf > 0);
    float *scratch = malloc(sf * sizeof(float));
    assert_status(bp_net_predict_ws(net, xs, N, want, N * OUT, scratch, sf), BP_OK);
    assert_status(bp_net_predict(net, xs, N, plain, N * OUT), BP_OK);
    assert_memory_equal(want, plain, sizeof want);
    free(scratch);
    size_t fsize;
    assert_status(bp_net_save_buffer(net, NULL, 0, &fsize), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *file = malloc(fsize);
    assert_status(bp_net_save_buffer(net, file, fsize, &fsize), BP_OK);

    pthread_t tid[THREADS + 1];
    job jobs[THREADS + 1];
    for (int t = 0; t <= THREADS; t++) {
        jobs[t] = (job){net, want, file, fsize, 0, 0};
        assert_int_equal(
            pthread_create(&tid[t], NULL, t < THREADS ? predict_worker : save_worker, &jobs[t]), 0);
    }
    int mismatches = 0, failures = 0;
    for (int t = 0; t <= THREADS; t++) {
        assert_int_equal(pthread_join(tid[t], NULL), 0);
        mismatches += jobs[t].mismatches;
        failures += jobs[t].failures;
    }
    print_message("%d threads x %d predictions + 1 saving thread: %d mismatches, %d failures\n",
                  THREADS, ROUNDS, mismatches, failures);
    assert_int_equal(mismatches, 0);
    assert_int_equal(failures, 0);
    free(file);
    bp_net_free(net);
}

static void threads_predict_on_one_net_like_a_single_thread(void **state)
{
    (void)state;
    predict_concurrently(trained_net(7));
}

static void threads_predict_on_one_cnn_like_a_single_thread(void **state)
{
    (void)state;
    predict_concurrently(trained_cnn(8));
}

typedef struct train_job {
    bp_net *net;
    int status;
} train_job;

static void *train_worker(void *arg)
{
    train_job *j = arg;
    bp_optimizer *opt;
    j->status = bp_optimizer_create(&opt, BP_OPTIMIZER_SGD);
    float y[N * OUT];
    for (int i = 0; i < N * OUT; i++)
        y[i] = (float)(i % 3) * 0.25f;
    for (int s = 0; s < 30 && j->status == BP_OK; s++)
        j->status = bp_net_train_step(j->net, opt, BP_LOSS_MSE, xs, y, N, NULL);
    bp_optimizer_free(opt);
    return NULL;
}

static void distinct_nets_train_independently_on_distinct_threads(void **state)
{
    (void)state;
    bp_net *base = trained_net(3);
    assert_status(bp_layer_init_weights(bp_net_layer(base, 2), BP_INIT_GLOROT_UNIFORM, 0), 0);
    bp_net *nets[4];
    pthread_t tid[4];
    train_job jobs[4];
    for (int t = 0; t < 4; t++) {
        assert_status(bp_net_clone(&nets[t], base), BP_OK);
        jobs[t] = (train_job){nets[t], BP_OK};
    }
    /* Reference first, on this thread, from another clone. */
    bp_net *ref;
    assert_status(bp_net_clone(&ref, base), BP_OK);
    train_job rj = {ref, BP_OK};
    train_worker(&rj);
    assert_status(rj.status, BP_OK);
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&tid[t], NULL, train_worker, &jobs[t]), 0);
    for (int t = 0; t < 4; t++) {
        assert_int_equal(pthread_join(tid[t], NULL), 0);
        assert_status(jobs[t].status, BP_OK);
        assert_memory_equal(bp_net_params(nets[t], NULL), bp_net_params(ref, NULL),
                            bp_net_param_count(ref) * sizeof(float));
        bp_net_free(nets[t]);
    }
    bp_net_free(ref);
    bp_net_free(base);
}

static void predict_ws_matches_predict_across_chunks_and_checks_arguments(void **state)
{
    (void)state;
    bp_net *net = trained_net(9);
    enum { BIG = 2500 };
    float *x = malloc(BIG * IN * sizeof(float)), *a = malloc(BIG * OUT * sizeof(float));
    float *b = malloc(BIG * OUT * sizeof(float));
    uint64_t st = 1;
    bp_test_fill_uniform(x, BIG * IN, -3, 3, &st);
    const size_t sf = bp_net_predict_scratch_floats(net, BIG);
    assert_int_equal(sf, bp_net_predict_scratch_floats(net, 1024)); /* chunked */
    assert_true(bp_net_predict_scratch_floats(net, 1) < sf);
    float *scratch = malloc(sf * sizeof(float));
    assert_status(bp_net_predict_ws(net, x, BIG, a, BIG * OUT, scratch, sf), BP_OK);
    assert_status(bp_net_predict(net, x, BIG, b, BIG * OUT), BP_OK);
    assert_memory_equal(a, b, BIG * OUT * sizeof(float));

    assert_status(bp_net_predict_ws(net, x, BIG, a, BIG * OUT, scratch, sf - 1),
                  BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_net_predict_ws(net, x, BIG, a, BIG * OUT - 1, scratch, sf),
                  BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_net_predict_ws(net, NULL, 1, a, OUT, scratch, sf), BP_ERR_INVALID_ARG);
    assert_status(bp_net_predict_ws(net, x, 1, NULL, OUT, scratch, sf), BP_ERR_INVALID_ARG);
    assert_status(bp_net_predict_ws(net, x, 1, a, OUT, NULL, sf), BP_ERR_INVALID_ARG);
    assert_status(bp_net_predict_ws(net, x, 0, a, OUT, scratch, sf), BP_ERR_INVALID_ARG);
    assert_status(bp_net_predict_ws(NULL, x, 1, a, OUT, scratch, sf), BP_ERR_INVALID_ARG);
    x[IN + 2] = NAN;
    assert_status(bp_net_predict_ws(net, x, 2, a, 2 * OUT, scratch, sf), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_last_error(), "row 1, column 2"));
    assert_int_equal(bp_net_predict_scratch_floats(NULL, 5), 0);
    assert_int_equal(bp_net_predict_scratch_floats(net, 0), 0);
    bp_net *empty;
    assert_status(bp_net_create(&empty, IN, 1), BP_OK);
    assert_int_equal(bp_net_predict_scratch_floats(empty, 5), 0);
    assert_status(bp_net_predict_ws(empty, x, 1, a, OUT, scratch, sf), BP_ERR_STATE);
    bp_net_free(empty);
    free(scratch);
    free(x);
    free(a);
    free(b);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(threads_predict_on_one_net_like_a_single_thread),
        bp_add_test(threads_predict_on_one_cnn_like_a_single_thread),
        bp_add_test(distinct_nets_train_independently_on_distinct_threads),
        bp_add_test(predict_ws_matches_predict_across_chunks_and_checks_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
