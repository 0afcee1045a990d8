/* test_workers.c -- the library's worker threads (workers.c): passes split across the thread
 * budget cover every element once, run with the caller's FTZ/DAZ bits, give the same floats
 * as one thread, survive fork, and fall back to the caller's thread when they cannot start. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include "test_util.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#endif

#include "util.h"
#include "workers.h"
#include "net.h"
#include "layer_kinds.h"

typedef struct cover_job {
    unsigned char *hits;
} cover_job;

/* Each chunk counts its own elements (chunks are disjoint). */
static void cover_range(void *ctx, size_t begin, size_t end)
{
    cover_job *j = ctx;
    for (size_t i = begin; i < end; i++)
        j->hits[i]++;
}

static void pass_covers_every_element_once_for_any_length_and_thread_count(void **state)
{
    (void)state;
    const int saved = bp_get_num_threads();
    bp__workers *pool = NULL;
    const size_t lengths[] = {0,
                              1,
                              17,
                              BP__WORKERS_MIN_FLOATS - 1,
                              BP__WORKERS_MIN_FLOATS,
                              BP__WORKERS_MIN_FLOATS + 15,
                              3 * BP__WORKERS_MIN_FLOATS + 7,
                              1000003};
    for (int threads = 1; threads <= 4; threads++) {
        assert_status(bp_set_num_threads(threads), BP_OK);
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            const size_t n = lengths[li];
            cover_job job = {calloc(n + 1, 1)};
            assert_non_null(job.hits);
            bp__workers_run(&pool, &bp__default_alloc, n, cover_range, &job);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(job.hits[i], 1);
            assert_int_equal(job.hits[n], 0);
            free(job.hits);
        }
        /* Workers exist only once a pass was long enough to share, and never more than the
         * budget needs (the caller's thread is one of the threads). */
        if (threads == 1) assert_null(pool);
        if (threads > 1) {
            assert_non_null(pool);
            assert_int_equal(bp__workers_count(pool), threads - 1);
        }
    }
    bp__workers_free(pool, &bp__default_alloc);
    assert_status(bp_set_num_threads(saved), BP_OK);
}

/* Passes by items (bp__workers_run_items): every item once, for few items of many floats
 * (a chunk of 3 samples), many items of few floats (planes), and items too small to share. */
static void pass_by_items_covers_every_item_once(void **state)
{
    (void)state;
    const int saved = bp_get_num_threads();
    bp__workers *pool = NULL;
    /* items, floats of the whole pass */
    const size_t cases[][2] = {{0, 0},
                               {1, 1000000},
                               {2, 2 * BP__WORKERS_MIN_FLOATS},
                               {3, 900000},
                               {7, 10},
                               {8192, 8192 * 49},
                               {100003, 100003 * 3}};
    for (int threads = 1; threads <= 4; threads++) {
        assert_status(bp_set_num_threads(threads), BP_OK);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const size_t n = cases[c][0];
            cover_job job = {calloc(n + 1, 1)};
            assert_non_null(job.hits);
            bp__workers_run_items(&pool, &bp__default_alloc, n, cases[c][1], cover_range, &job);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(job.hits[i], 1);
            assert_int_equal(job.hits[n], 0);
            free(job.hits);
        }
        if (threads == 1) assert_null(pool);
        if (threads > 1) assert_int_equal(bp__workers_count(pool), threads - 1);
    }
    bp__workers_free(pool, &bp__default_alloc);
    assert_status(bp_set_num_threads(saved), BP_OK);
}

#if defined(__x86_64__) && !defined(BP_NO_FTZ)
#include <xmmintrin.h>

typedef struct csr_job {
    float *out;
} csr_job;

/* Writes, per element, whether FTZ|DAZ were set on the thread that computed it. */
static void csr_range(void *ctx, size_t begin, size_t end)
{
    csr_job *j = ctx;
    const float bits = (float)(_mm_getcsr() & 0x8040u);
    for (size_t i = begin; i < end; i++)
        j->out[i] = bits;
}

/* Out of line and opaque to constant propagation, so that the multiply happens between the
 * two _mm_setcsr calls. */
#if defined(__clang__)
#define BP_TEST_OPAQUE __attribute__((noinline, optnone))
#else
#define BP_TEST_OPAQUE __attribute__((noinline, noipa))
#endif
BP_TEST_OPAQUE static float twice(volatile float v)
{
    return v * 2.0f;
}

static void workers_run_with_the_callers_flush_to_zero_bits(void **state)
{
    (void)state;
    const int saved = bp_get_num_threads();
    assert_status(bp_set_num_threads(2), BP_OK);
    bp__workers *pool = NULL;
    const size_t n = 4 * BP__WORKERS_MIN_FLOATS;
    csr_job job = {malloc(n * sizeof(float))};
    assert_non_null(job.out);
    const unsigned mine = _mm_getcsr();
    /* valgrind keeps MXCSR per thread but does not honour FTZ/DAZ: skip where a subnormal
     * operand survives with DAZ set. */
    _mm_setcsr(mine | 0x8040u);
    const float kept = twice(1e-40f);
    _mm_setcsr(mine);
    if (kept != 0.0f) {
        free(job.out);
        assert_status(bp_set_num_threads(saved), BP_OK);
        skip();
    }
    for (int on = 1; on >= 0; on--) {
        _mm_setcsr(on ? (mine | 0x8040u) : (mine & ~0x8040u));
        bp__workers_run(&pool, &bp__default_alloc, n, csr_range, &job);
        _mm_setcsr(mine);
        for (size_t i = 0; i < n; i++)
            assert_true(job.out[i] == (on ? (float)0x8040u : 0.0f));
    }
    assert_int_equal(bp__workers_count(pool), 1);
    free(job.out);
    bp__workers_free(pool, &bp__default_alloc);
    assert_status(bp_set_num_threads(saved), BP_OK);
}
#endif

typedef struct who_job {
    pthread_mutex_t mu;
    pthread_t seen[8];
    int nseen;
} who_job;

/* Records each distinct thread that runs a chunk; each chunk takes tens of microseconds,
 * long enough for every woken worker to find one. */
static void who_range(void *ctx, size_t begin, size_t end)
{
    (void)begin, (void)end;
    volatile unsigned spin = 0;
    for (unsigned i = 0; i < 20000; i++)
        spin = spin + 1;
    who_job *j = ctx;
    pthread_mutex_lock(&j->mu);
    int known = 0;
    for (int i = 0; i < j->nseen; i++)
        known |= pthread_equal(j->seen[i], pthread_self());
    if (!known && j->nseen < 8) j->seen[j->nseen++] = pthread_self();
    pthread_mutex_unlock(&j->mu);
}

/* Workers started under a larger budget stay out of passes once it shrinks. */
static void a_shrunk_budget_keeps_extra_workers_out(void **state)
{
    (void)state;
    const int saved = bp_get_num_threads();
    bp__workers *pool = NULL;
    const size_t n = 64 * BP__WORKERS_MIN_FLOATS; /* many chunks: every woken thread finds one */
    assert_status(bp_set_num_threads(4), BP_OK);
    who_job job = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};
    bp__workers_run(&pool, &bp__default_alloc, n, who_range, &job);
    assert_int_equal(bp__workers_count(pool), 3);
    assert_true(job.nseen >= 1 && job.nseen <= 4);
    /* Joins from here on: at most one per 2-thread pass (worker 1), plus up to 3 late
     * joins of the 4-thread pass above; without the budget check all three workers join
     * every pass (about 3 x 20). */
    const unsigned long joins = bp__workers_joins(pool);
    for (int threads = 2; threads >= 1; threads--) {
        assert_status(bp_set_num_threads(threads), BP_OK);
        for (int pass = 0; pass < 20; pass++) {
            job.nseen = 0;
            bp__workers_run(&pool, &bp__default_alloc, n, who_range, &job);
            assert_true(job.nseen >= 1 && job.nseen <= threads);
        }
    }
    assert_true(bp__workers_joins(pool) - joins <= 20 + 3);
    bp__workers_free(pool, &bp__default_alloc);
    assert_status(bp_set_num_threads(saved), BP_OK);
}

/* After a split pass the workers may not run on the CPU the caller ran on (Linux, when
 * the caller may use more than one CPU): otherwise the scheduler tends to stack them there
 * while OpenBLAS's idle thread spins on the other core. */
static void workers_are_kept_off_the_callers_cpu(void **state)
{
    (void)state;
    const int saved = bp_get_num_threads();
    assert_status(bp_set_num_threads(2), BP_OK);
    bp__workers *pool = NULL;
    const size_t n = 4 * BP__WORKERS_MIN_FLOATS;
    cover_job job = {calloc(n, 1)};
    assert_non_null(job.hits);
    bp__workers_run(&pool, &bp__default_alloc, n, cover_range, &job);
    int cpu;
    const int kept = bp__workers_kept_off(pool, &cpu);
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    if (CPU_COUNT(&set) > 1) {
        assert_int_equal(kept, 1);
        assert_true(cpu >= 0);
    }
#endif
    assert_true(kept != 0);
    free(job.hits);
    bp__workers_free(pool, &bp__default_alloc);
    assert_status(bp_set_num_threads(saved), BP_OK);
}

/* A 320-320 dense net (102,720 parameters: enough for 3 threads of BP__WORKERS_MIN_FLOATS / 2)
 * and its gradients for a fixed batch. */
static bp_net *big_net(void)
{
    bp_net *net;
    assert_status(bp_net_create(&net, 320, 7), BP_OK);
    assert_status(bp_net_add_dense(net, 320, BP_ACT_TANH), BP_OK);
    return net;
}

/* The GEMMs run on one BLAS thread (OpenBLAS's own threads are not TSan-instrumented and
 * this file runs under TSan in CI); the thread budget is back to what it was for the
 * optimizer step, the pass under test. */
static void big_grads(bp_net *net)
{
    float x[4 * 320], y[4 * 320];
    uint64_t rng = 99;
    bp_test_fill_uniform(x, 4 * 320, -1, 1, &rng);
    bp_test_fill_uniform(y, 4 * 320, -1, 1, &rng);
    const int threads = bp_get_num_threads();
    assert_status(bp_set_num_threads(1), BP_OK);
    assert_status(bp_net_compute_grads(net, BP_LOSS_MSE, x, y, 4, NULL), BP_OK);
    assert_status(bp_set_num_threads(threads), BP_OK);
}

/* Every optimizer's update split across 1, 2 and 3 threads gives the same floats. */
static void split_optimizer_update_is_bit_identical_to_one_thread(void **state)
{
    (void)state;
    const int saved = bp_get_num_threads();
    const int kinds[] = {BP_OPTIMIZER_SGD,   BP_OPTIMIZER_ADAGRAD,     BP_OPTIMIZER_RMSPROP,
                         BP_OPTIMIZER_ADAM,  BP_OPTIMIZER_ADAMW,       BP_OPTIMIZER_ADAMAX,
                         BP_OPTIMIZER_NADAM, BP_OPTIMIZER_IRPROP_MINUS};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        float *ref = NULL;
        size_t np = 0;
        for (int threads = 1; threads <= 3; threads++) {
            assert_status(bp_set_num_threads(threads), BP_OK);
            bp_net *net = big_net();
            bp_optimizer *opt;
            assert_status(bp_optimizer_create(&opt, kinds[k]), BP_OK);
            if (kinds[k] == BP_OPTIMIZER_SGD)
                assert_status(bp_optimizer_set(opt, BP_OPT_MOMENTUM, 0.9), BP_OK);
            for (int step = 0; step < 3; step++) {
                big_grads(net);
                assert_status(bp_optimizer_step(opt, net), BP_OK);
            }
            assert_int_equal(bp__workers_count(net->workers), threads - 1);
            const float *p = bp_net_params(net, &np);
            if (ref == NULL) {
                ref = malloc(np * sizeof *ref);
                assert_non_null(ref);
                memcpy(ref, p, np * sizeof *ref);
            } else {
                assert_memory_equal(ref, p, np * sizeof *ref);
            }
            bp_optimizer_free(opt);
            bp_net_free(net);
        }
        free(ref);
    }
    assert_status(bp_set_num_threads(saved), BP_OK);
}

/* A CNN (batch norm, convolution, batch norm, ReLU, max pooling, dropout, dense) whose
 * batch-parallel passes (im2col and col2im per sample, batch norm per channel, max pooling per
 * plane, ReLU) are split across 2 and 3 threads trains to the same floats as on one thread.
 * The convolution goes in chunks of 8 samples so that every GEMM stays below OpenBLAS's own
 * threading threshold (m*n*k < 262144): the passes are the only split. */
static void split_cnn_passes_train_bit_identically_to_one_thread(void **state)
{
    (void)state;
    enum { N = 128, C = 4, H = 16, W = 16, IN = C * H * W };
    const int saved = bp_get_num_threads();
    const size_t saved_chunk = bp__conv_chunk_floats;
    bp__conv_chunk_floats = 36 * 256 * 8; /* K x P x 8 samples */
    float *x = malloc(N * IN * sizeof *x), y[N], out[N * 3], ref_out[N * 3];
    assert_non_null(x);
    uint64_t r = 17;
    bp_test_fill_uniform(x, N * IN, -1.0f, 1.0f, &r);
    for (size_t i = 0; i < N; i++)
        y[i] = (float)(i % 3);
    float *ref = NULL;
    size_t np = 0;
    for (int threads = 1; threads <= 3; threads++) {
        assert_status(bp_set_num_threads(threads), BP_OK);
        bp_net *net;
        bp_optimizer *opt;
        assert_status(bp_net_create_image(&net, C, H, W, 9), BP_OK);
        assert_status(bp_net_add_batchnorm(net), BP_OK);
        assert_status(bp_net_add_conv2d(net, 2, 3, 3, 1, 1, BP_ACT_IDENTITY), BP_OK);
        assert_status(bp_net_add_batchnorm(net), BP_OK);
        assert_status(bp_net_add_activation(net, BP_ACT_RELU), BP_OK);
        assert_status(bp_net_add_maxpool2d(net, 2, 2), BP_OK);
        assert_status(bp_net_add_dropout(net, 0.25), BP_OK);
        assert_status(bp_net_add_flatten(net), BP_OK);
        assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
        assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
        for (int step = 0; step < 3; step++)
            assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL),
                          BP_OK);
        assert_int_equal(bp__workers_count(net->workers), threads - 1);
        assert_status(bp_net_predict(net, x, N, out, N * 3), BP_OK);
        const float *p = bp_net_params(net, &np);
        if (ref == NULL) {
            ref = malloc(np * sizeof *ref);
            assert_non_null(ref);
            memcpy(ref, p, np * sizeof *ref);
            memcpy(ref_out, out, sizeof out);
        } else {
            assert_memory_equal(ref, p, np * sizeof *ref);
            assert_memory_equal(ref_out, out, sizeof out); /* the running statistics too */
        }
        bp_optimizer_free(opt);
        bp_net_free(net);
    }
    free(ref);
    free(x);
    bp__conv_chunk_floats = saved_chunk;
    assert_status(bp_set_num_threads(saved), BP_OK);
}

/* After fork() the child has no workers: its steps run on its own thread and freeing the
 * net does not wait for threads that are not there. The parent's pool still works. */
static void forked_child_trains_and_frees_without_the_parents_workers(void **state)
{
    (void)state;
    const int saved = bp_get_num_threads();
    assert_status(bp_set_num_threads(2), BP_OK);
    bp_net *net = big_net();
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    big_grads(net);
    assert_status(bp_optimizer_step(opt, net), BP_OK);
    assert_int_equal(bp__workers_count(net->workers), 1);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60); /* a hang would be the failure this test looks for */
        /* The parent's gradients again; no GEMM, which would start BLAS threads here. */
        const bp_status s = bp_optimizer_step(opt, net);
        bp_optimizer_free(opt);
        bp_net_free(net);
        _exit(s == BP_OK ? 0 : 1);
    }
    int wstatus = 0;
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFEXITED(wstatus));
    assert_int_equal(WEXITSTATUS(wstatus), 0);
    big_grads(net);
    assert_status(bp_optimizer_step(opt, net), BP_OK);
    bp_optimizer_free(opt);
    bp_net_free(net);
    assert_status(bp_set_num_threads(saved), BP_OK);
}

/* A pool that cannot be allocated leaves the update on the caller's thread: the step
 * succeeds with the same floats. */
static void failed_pool_allocation_falls_back_to_the_callers_thread(void **state)
{
    (void)state;
    const int saved = bp_get_num_threads();
    bp_test_alloc counter = {0};
    bp_net *net;
    assert_status(bp_net_create_ex(&net, 320, 7, bp_test_alloc_fn, bp_test_free_fn, &counter),
                  BP_OK);
    assert_status(bp_net_add_dense(net, 320, BP_ACT_TANH), BP_OK);
    bp_net *ref = big_net();
    bp_optimizer *opt, *ropt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_create(&ropt, BP_OPTIMIZER_ADAM), BP_OK);
    /* First step on one thread: every other lazy allocation happens here. */
    assert_status(bp_set_num_threads(1), BP_OK);
    for (int step = 0; step < 2; step++) {
        big_grads(net);
        big_grads(ref);
        if (step == 1) {
            assert_status(bp_set_num_threads(2), BP_OK);
            counter.fail_at = (long)counter.attempts + 1; /* the next allocation: the pool's */
        }
        assert_status(bp_optimizer_step(opt, net), BP_OK);
        assert_status(bp_optimizer_step(ropt, ref), BP_OK);
    }
    assert_true((long)counter.attempts >= counter.fail_at); /* the pool was attempted */
    assert_null(net->workers);
    assert_int_equal(bp__workers_count(ref->workers), 1);
    size_t np;
    const float *p = bp_net_params(ref, &np);
    assert_memory_equal(p, bp_net_params(net, NULL), np * sizeof(float));
    bp_optimizer_free(opt);
    bp_optimizer_free(ropt);
    bp_net_free(net);
    bp_net_free(ref);
    assert_int_equal(counter.live, 0);
    assert_status(bp_set_num_threads(saved), BP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(pass_covers_every_element_once_for_any_length_and_thread_count),
        bp_add_test(pass_by_items_covers_every_item_once),
#if defined(__x86_64__) && !defined(BP_NO_FTZ)
        bp_add_test(workers_run_with_the_callers_flush_to_zero_bits),
#endif
        bp_add_test(workers_are_kept_off_the_callers_cpu),
        bp_add_test(a_shrunk_budget_keeps_extra_workers_out),
        bp_add_test(split_optimizer_update_is_bit_identical_to_one_thread),
        bp_add_test(split_cnn_passes_train_bit_identically_to_one_thread),
        bp_add_test(forked_child_trains_and_frees_without_the_parents_workers),
        bp_add_test(failed_pool_allocation_falls_back_to_the_callers_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
