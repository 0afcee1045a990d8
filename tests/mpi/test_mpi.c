/* test_mpi.c -- libbackprop_mpi under mpirun (ctest runs it with 1, 2 and 4 ranks).
 *
 * Every rank runs every test in the same order, so the collective calls inside the tests
 * match. The reference for data parallelism is the same network trained in one process
 * (each rank computes it locally) with the whole global batch per step. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backprop_mpi.h"

static int rank_, size_;

enum { IN = 5, HIDDEN = 8, OUT = 3, STEPS = 50 };

static bp_net *make_net(uint64_t seed, size_t hidden)
{
    bp_net *net = NULL;
    assert_status(bp_net_create(&net, IN, seed), BP_OK);
    assert_status(bp_net_add_dense(net, hidden, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, OUT, BP_ACT_SOFTMAX), BP_OK);
    return net;
}

static bp_optimizer *make_sgd(double lr, double momentum)
{
    bp_optimizer *opt = NULL;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_SGD), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, lr), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_MOMENTUM, momentum), BP_OK);
    return opt;
}

/* n rows of inputs in [-1, 1) and one-hot targets of a class that depends on the inputs. */
static void make_data(float *x, float *y, size_t n, uint64_t seed)
{
    uint64_t state = seed;
    bp_test_fill_uniform(x, n * IN, -1.0f, 1.0f, &state);
    for (size_t r = 0; r < n; r++) {
        const float *row = x + r * IN;
        const size_t cls = row[0] + row[1] > 0.5f ? 0 : row[2] - row[3] > 0.0f ? 1 : 2;
        for (size_t c = 0; c < OUT; c++)
            y[r * OUT + c] = c == cls ? 1.0f : 0.0f;
    }
}

static uint64_t checksum(bp_net *net)
{
    uint64_t c = 0;
    assert_status(bp_mpi_weights_checksum(net, &c), BP_OK);
    return c;
}

/* Every rank's copy of @p value equals rank 0's. */
static void assert_same_on_every_rank(uint64_t value)
{
    uint64_t v[2] = {value, ~value};
    assert_int_equal(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD),
                     MPI_SUCCESS);
    assert_true(v[0] == ~v[1]);
}

static uint64_t hash_string(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

/* A distributed replica that starts from the reference's weights: rank 0 builds it with the
 * reference seed, the others with other seeds, and the broadcast makes them equal. */
static bp_net *make_replica(uint64_t ref_seed, bp_net *ref)
{
    bp_net *net = make_net(rank_ == 0 ? ref_seed : 1000u + (uint64_t)rank_, HIDDEN);
    assert_status(bp_mpi_broadcast_params(net, 0, MPI_COMM_WORLD), BP_OK);
    assert_true(checksum(net) == checksum(ref));
    return net;
}

/* Train the reference on whole batches of @p batch rows and a replica on this rank's shards
 * for STEPS steps; compare losses and weights. */
static void check_equivalence(int loss_kind, size_t batch, double momentum, double clip_norm,
                              double clip_value)
{
    const size_t rows = batch * STEPS;
    float *x = malloc(rows * IN * sizeof(float)), *y = malloc(rows * OUT * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    make_data(x, y, rows, 99);

    bp_net *ref = make_net(7, HIDDEN);
    bp_net *net = make_replica(7, ref);
    const uint64_t initial = checksum(net);
    bp_optimizer *ref_opt = make_sgd(0.2, momentum), *opt = make_sgd(0.2, momentum);
    bp_net *both[2] = {ref, net};
    for (int i = 0; i < 2; i++) {
        assert_status(bp_net_set(both[i], BP_NET_CLIP_NORM, clip_norm), BP_OK);
        assert_status(bp_net_set(both[i], BP_NET_CLIP_VALUE, clip_value), BP_OK);
    }
    size_t start, count;
    assert_status(bp_mpi_shard(batch, rank_, size_, &start, &count), BP_OK);
    for (size_t s = 0; s < STEPS; s++) {
        const float *bx = x + s * batch * IN, *by = y + s * batch * OUT;
        float ref_loss, loss;
        assert_status(bp_net_train_step(ref, ref_opt, loss_kind, bx, by, batch, &ref_loss), BP_OK);
        assert_status(bp_mpi_train_step(net, opt, loss_kind, bx + start * IN, by + start * OUT,
                                        count, &loss, MPI_COMM_WORLD),
                      BP_OK);
        assert_close(loss, ref_loss, 1e-5, 1e-7);
    }
    size_t np = 0, np_ref = 0;
    const float *p = bp_net_params(net, &np), *q = bp_net_params(ref, &np_ref);
    assert_int_equal(np, np_ref);
    if (size_ == 1) {
        /* One rank is bp_net_train_step exactly. */
        assert_memory_equal(p, q, np * sizeof(float));
    } else {
        float scale = 0.0f;
        for (size_t k = 0; k < np; k++)
            scale = fmaxf(scale, fabsf(q[k]));
        for (size_t k = 0; k < np; k++)
            assert_close(p[k], q[k], 1e-5, 1e-5 * (double)scale);
    }
    assert_true(checksum(net) != initial); /* it did train */
    int equal = 0;
    assert_status(bp_mpi_replicas_equal(net, &equal, MPI_COMM_WORLD), BP_OK);
    assert_int_equal(equal, 1);
    assert_same_on_every_rank(checksum(net));
    bp_optimizer_free(opt);
    bp_optimizer_free(ref_opt);
    bp_net_free(net);
    bp_net_free(ref);
    free(x);
    free(y);
}

static void train_step_matches_one_process_with_the_global_batch(void **state)
{
    (void)state;
    check_equivalence(BP_LOSS_SOFTMAX_CE, 12, 0.0, 0.0, 0.0);
    check_equivalence(BP_LOSS_MSE, 12, 0.5, 0.0, 0.0);
}

static void train_step_weights_unequal_shards_by_their_rows(void **state)
{
    (void)state;
    check_equivalence(BP_LOSS_SOFTMAX_CE, 10, 0.0, 0.0,
                      0.0); /* 4 ranks: shards of 3, 3, 2, 2 rows */
}

static void train_step_clips_the_averaged_gradient_like_train_step(void **state)
{
    (void)state;
    check_equivalence(BP_LOSS_SOFTMAX_CE, 8, 0.9, 0.05,
                      0.0); /* the norm clip is active at every step */
    check_equivalence(BP_LOSS_SOFTMAX_CE, 8, 0.0, 0.0, 0.002); /* value clip */
}

static void train_step_accepts_ranks_without_rows(void **state)
{
    (void)state;
    /* A global batch with fewer rows than ranks: the last rank's shard is empty. */
    check_equivalence(BP_LOSS_SOFTMAX_CE, size_ > 1 ? (size_t)size_ - 1 : 1, 0.0, 0.0, 0.0);
}

static void nan_on_one_rank_fails_on_every_rank(void **state)
{
    (void)state;
    enum { B = 8 };
    const int bad = size_ > 1 ? 1 : 0;
    float x[B * IN], y[B * OUT];
    make_data(x, y, B, 5);
    bp_net *net = make_net(3, HIDDEN);
    bp_optimizer *opt = make_sgd(0.1, 0.0);
    assert_status(bp_mpi_broadcast_params(net, 0, MPI_COMM_WORLD), BP_OK);
    const uint64_t before = checksum(net);
    size_t start, count;
    assert_status(bp_mpi_shard(B, rank_, size_, &start, &count), BP_OK);
    float *mine = x + start * IN;
    if (rank_ == bad) mine[0] = NAN;
    float loss = -1.0f;
    assert_int_equal(bp_mpi_train_step(net, opt, BP_LOSS_SOFTMAX_CE, mine, y + start * OUT, count,
                                       &loss, MPI_COMM_WORLD),
                     BP_ERR_NONFINITE);
    /* The same detailed message everywhere, naming the failing rank; nothing changed. */
    char expect[16];
    snprintf(expect, sizeof expect, "rank %d: ", bad);
    assert_non_null(strstr(bp_mpi_last_error(), expect));
    assert_non_null(strstr(bp_mpi_last_error(), "nan"));
    assert_same_on_every_rank(hash_string(bp_mpi_last_error()));
    assert_true(checksum(net) == before);
    assert_close(loss, -1.0, 0.0, 0.0);
    /* The collectives stay matched: the next good step succeeds everywhere. */
    if (rank_ == bad) mine[0] = 0.5f;
    assert_status(bp_mpi_train_step(net, opt, BP_LOSS_SOFTMAX_CE, mine, y + start * OUT, count,
                                    &loss, MPI_COMM_WORLD),
                  BP_OK);
    assert_true(checksum(net) != before);
    assert_same_on_every_rank(checksum(net));
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void bad_arguments_on_one_rank_fail_on_every_rank(void **state)
{
    (void)state;
    enum { B = 4 };
    float x[B * IN], y[B * OUT];
    make_data(x, y, B, 6);
    const int last = size_ - 1;
    bp_net *net = make_net(3, HIDDEN);
    bp_optimizer *opt = make_sgd(0.1, 0.0);
    assert_status(bp_mpi_broadcast_params(net, 0, MPI_COMM_WORLD), BP_OK);
    const uint64_t before = checksum(net);
    MPI_Comm w = MPI_COMM_WORLD;

    /* NULL handles on one rank. */
    assert_int_equal(
        bp_mpi_train_step(rank_ == last ? NULL : net, opt, BP_LOSS_SOFTMAX_CE, x, y, B, NULL, w),
        BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_mpi_last_error(), "network handle"));
    assert_int_equal(
        bp_mpi_train_step(net, rank_ == 0 ? NULL : opt, BP_LOSS_SOFTMAX_CE, x, y, B, NULL, w),
        BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_mpi_last_error(), "optimizer handle"));
    /* Bad loss, NULL data on one rank, empty global batch, accumulating net. */
    assert_int_equal(bp_mpi_train_step(net, opt, 999, x, y, B, NULL, w), BP_ERR_INVALID_ARG);
    assert_int_equal(
        bp_mpi_train_step(net, opt, BP_LOSS_SOFTMAX_CE, rank_ == last ? NULL : x, y, B, NULL, w),
        BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_train_step(net, opt, BP_LOSS_SOFTMAX_CE, NULL, NULL, 0, NULL, w),
                     BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_mpi_last_error(), "global batch is empty"));
    assert_status(bp_net_set(net, BP_NET_ACCUMULATE_GRADS, rank_ == last ? 1.0 : 0.0), BP_OK);
    assert_int_equal(bp_mpi_train_step(net, opt, BP_LOSS_SOFTMAX_CE, x, y, B, NULL, w),
                     BP_ERR_STATE);
    assert_status(bp_net_set(net, BP_NET_ACCUMULATE_GRADS, 0.0), BP_OK);
    assert_int_equal(bp_mpi_train_step(net, opt, BP_LOSS_SOFTMAX_CE, x, y, B, NULL, MPI_COMM_NULL),
                     BP_ERR_INVALID_ARG);
    assert_true(checksum(net) == before);

    /* Broadcast: bad root, NULL net on one rank, roots that differ between ranks. */
    assert_int_equal(bp_mpi_broadcast_params(net, size_, w), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_broadcast_params(net, -1, w), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_broadcast_params(rank_ == last ? NULL : net, 0, w), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_broadcast_params(net, 0, MPI_COMM_NULL), BP_ERR_INVALID_ARG);
    if (size_ > 1) {
        assert_int_equal(bp_mpi_broadcast_params(net, rank_, w), BP_ERR_SHAPE);
        assert_non_null(strstr(bp_mpi_last_error(), "root"));
    }

    /* Gradient allreduce, replica comparison, checksum. */
    assert_int_equal(bp_mpi_allreduce_grads(rank_ == 0 ? NULL : net, w), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_allreduce_grads(net, MPI_COMM_NULL), BP_ERR_INVALID_ARG);
    int equal = -1;
    assert_int_equal(bp_mpi_replicas_equal(net, rank_ == last ? NULL : &equal, w),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_replicas_equal(rank_ == last ? NULL : net, &equal, w),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(equal, -1);
    assert_int_equal(bp_mpi_replicas_equal(net, &equal, MPI_COMM_NULL), BP_ERR_INVALID_ARG);
    uint64_t c = 0;
    assert_int_equal(bp_mpi_weights_checksum(NULL, &c), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_weights_checksum(net, NULL), BP_ERR_INVALID_ARG);
    bp_net *empty = NULL;
    assert_status(bp_net_create(&empty, IN, 1), BP_OK);
    assert_int_equal(bp_mpi_weights_checksum(empty, &c), BP_ERR_STATE);
    assert_int_equal(bp_mpi_broadcast_params(rank_ == last ? empty : net, 0, w), BP_ERR_STATE);
    assert_true(checksum(net) == before);
    bp_net_free(empty);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void networks_of_different_sizes_fail_on_every_rank(void **state)
{
    (void)state;
    if (size_ < 2) skip();
    enum { B = 4 };
    float x[B * IN], y[B * OUT];
    make_data(x, y, B, 8);
    bp_net *net = make_net(3, rank_ == 0 ? HIDDEN + 1 : HIDDEN);
    bp_optimizer *opt = make_sgd(0.1, 0.0);
    assert_int_equal(bp_mpi_broadcast_params(net, 0, MPI_COMM_WORLD), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_mpi_last_error(), "parameter count"));
    assert_int_equal(bp_mpi_train_step(net, opt, BP_LOSS_SOFTMAX_CE, x, y, B, NULL, MPI_COMM_WORLD),
                     BP_ERR_SHAPE);
    assert_int_equal(bp_mpi_allreduce_grads(net, MPI_COMM_WORLD), BP_ERR_SHAPE);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void allreduce_grads_averages_over_ranks(void **state)
{
    (void)state;
    bp_net *net = make_net(3, HIDDEN);
    size_t np = 0;
    float *g = bp_net_grads(net, &np);
    assert_non_null(g);
    for (size_t k = 0; k < np; k++)
        g[k] = (float)(rank_ + 1) * (float)(k % 7) * 0.25f;
    assert_status(bp_mpi_allreduce_grads(net, MPI_COMM_WORLD), BP_OK);
    const double mean_factor = (size_ + 1) / 2.0; /* mean of 1 .. size */
    for (size_t k = 0; k < np; k++)
        assert_close(g[k], mean_factor * (k % 7) * 0.25, 1e-6, 0.0);
    bp_net_free(net);
}

static void allreduce_grads_reports_a_nonfinite_rank(void **state)
{
    (void)state;
    bp_net *net = make_net(3, HIDDEN);
    size_t np = 0;
    float *g = bp_net_grads(net, &np);
    for (size_t k = 0; k < np; k++)
        g[k] = (float)rank_;
    if (rank_ == size_ - 1) g[3] = INFINITY;
    assert_int_equal(bp_mpi_allreduce_grads(net, MPI_COMM_WORLD), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_mpi_last_error(), "gradient element 3"));
    assert_close(g[0], rank_, 0.0, 0.0); /* nobody's gradients changed */
    bp_net_free(net);
}

static void replicas_equal_detects_one_changed_weight(void **state)
{
    (void)state;
    bp_net *net = make_net(1000u + (uint64_t)rank_, HIDDEN);
    int equal = -1;
    assert_status(bp_mpi_replicas_equal(net, &equal, MPI_COMM_WORLD), BP_OK);
    assert_int_equal(equal, size_ == 1); /* different seeds: different weights */
    assert_status(bp_mpi_broadcast_params(net, size_ - 1, MPI_COMM_WORLD), BP_OK);
    assert_status(bp_mpi_replicas_equal(net, &equal, MPI_COMM_WORLD), BP_OK);
    assert_int_equal(equal, 1);
    size_t np = 0;
    float *p = bp_net_params(net, &np);
    if (rank_ == size_ - 1) p[np / 2] = nextafterf(p[np / 2], 1.0f); /* one ulp */
    assert_status(bp_mpi_replicas_equal(net, &equal, MPI_COMM_WORLD), BP_OK);
    assert_int_equal(equal, size_ == 1);
    bp_net_free(net);
}

static void checksum_is_fnv1a_of_little_endian_floats(void **state)
{
    (void)state;
    bp_net *net = NULL;
    assert_status(bp_net_create(&net, 1, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    const float w = 1.0f, b = -2.0f;
    assert_status(bp_layer_set_weights(bp_net_layer(net, 0), &w, 1), BP_OK);
    assert_status(bp_layer_set_biases(bp_net_layer(net, 0), &b, 1), BP_OK);
    /* 1.0f = 0x3f800000, -2.0f = 0xc0000000, least significant byte first. */
    const unsigned char bytes[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < sizeof bytes; i++)
        h = (h ^ bytes[i]) * UINT64_C(0x100000001b3);
    assert_true(checksum(net) == h);
    bp_net_free(net);
}

static void shard_covers_every_row_once_in_rank_order(void **state)
{
    (void)state;
    for (int size = 1; size <= 6; size++) {
        for (size_t n = 0; n <= 13; n++) {
            size_t next = 0;
            for (int r = 0; r < size; r++) {
                size_t start = 99, count = 99;
                assert_status(bp_mpi_shard(n, r, size, &start, &count), BP_OK);
                assert_int_equal(start, next);
                assert_true(count == n / (size_t)size || count == n / (size_t)size + 1);
                assert_int_equal(count, n / (size_t)size + ((size_t)r < n % (size_t)size));
                next += count;
            }
            assert_int_equal(next, n);
        }
    }
}

static void shard_rejects_bad_arguments(void **state)
{
    (void)state;
    size_t start, count;
    assert_int_equal(bp_mpi_shard(10, 0, 0, &start, &count), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_shard(10, 2, 2, &start, &count), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_shard(10, -1, 2, &start, &count), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_mpi_last_error(), "rank -1"));
    assert_int_equal(bp_mpi_shard(10, 0, 2, NULL, &count), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_shard(10, 0, 2, &start, NULL), BP_ERR_INVALID_ARG);
}

/* A fresh directory made by rank 0, its name sent to every rank. */
static void shared_tmpdir(char *dir, size_t cap)
{
    assert_true(cap >= 32);
    if (rank_ == 0) {
        snprintf(dir, cap, "/tmp/bp_mpi_XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    assert_int_equal(MPI_Bcast(dir, (int)cap, MPI_CHAR, 0, MPI_COMM_WORLD), MPI_SUCCESS);
}

static void save_writes_rank_0s_model_once(void **state)
{
    (void)state;
    char dir[64], path[96], bad[128];
    shared_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.bpm", dir);
    snprintf(bad, sizeof bad, "%s/missing/model.bpm", dir);
    bp_net *net = make_net(1000u + (uint64_t)rank_, HIDDEN); /* differ until broadcast */
    assert_status(bp_mpi_broadcast_params(net, 0, MPI_COMM_WORLD), BP_OK);
    /* The path is only read on rank 0. */
    assert_status(bp_mpi_save(net, rank_ == 0 ? path : NULL, MPI_COMM_WORLD), BP_OK);
    bp_net *loaded = NULL;
    assert_status(bp_net_load(&loaded, path), BP_OK); /* one file system here */
    assert_true(checksum(loaded) == checksum(net));
    bp_net_free(loaded);

    /* Rank 0's failure is every rank's. */
    assert_int_equal(bp_mpi_save(net, bad, MPI_COMM_WORLD), BP_ERR_IO);
    assert_non_null(strstr(bp_mpi_last_error(), "rank 0: bp_mpi_save: "));
    assert_same_on_every_rank(hash_string(bp_mpi_last_error()));
    assert_int_equal(bp_mpi_save(net, rank_ == 0 ? NULL : path, MPI_COMM_WORLD),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_save(net, path, MPI_COMM_NULL), BP_ERR_INVALID_ARG);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0) {
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
    }
    bp_net_free(net);
}

static void checkpoint_of_rank_0_resumes_every_rank_bit_identically(void **state)
{
    (void)state;
    enum { B = 8, K = 3 };
    float x[2 * K * B * IN], y[2 * K * B * OUT];
    make_data(x, y, 2 * K * B, 21);
    char dir[64], path[96];
    shared_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/run.bpc", dir);
    bp_net *net = make_net(5, HIDDEN);
    bp_optimizer *opt = NULL;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    size_t start, count;
    assert_status(bp_mpi_shard(B, rank_, size_, &start, &count), BP_OK);
    for (size_t s = 0; s < 2 * K; s++) {
        if (s == K) assert_status(bp_mpi_checkpoint_save(net, opt, path, MPI_COMM_WORLD), BP_OK);
        const size_t r0 = s * B + start;
        assert_status(bp_mpi_train_step(net, opt, BP_LOSS_SOFTMAX_CE, x + r0 * IN, y + r0 * OUT,
                                        count, NULL, MPI_COMM_WORLD),
                      BP_OK);
    }
    /* Every rank resumes from rank 0's checkpoint and repeats the last K steps. */
    bp_net *again = NULL;
    bp_optimizer *opt_again = NULL;
    assert_status(bp_checkpoint_load(&again, &opt_again, path), BP_OK);
    for (size_t s = K; s < 2 * K; s++) {
        const size_t r0 = s * B + start;
        assert_status(bp_mpi_train_step(again, opt_again, BP_LOSS_SOFTMAX_CE, x + r0 * IN,
                                        y + r0 * OUT, count, NULL, MPI_COMM_WORLD),
                      BP_OK);
    }
    assert_true(checksum(again) == checksum(net));
    assert_same_on_every_rank(checksum(again));
    assert_int_equal(bp_mpi_checkpoint_save(net, rank_ == 0 ? NULL : opt, path, MPI_COMM_WORLD),
                     BP_ERR_INVALID_ARG);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0) {
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
    }
    bp_optimizer_free(opt_again);
    bp_net_free(again);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static bp_dataset *make_set(size_t n, uint64_t seed)
{
    float *x = malloc(n * IN * sizeof(float)), *y = malloc(n * OUT * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    make_data(x, y, n, seed);
    bp_dataset *ds = NULL;
    assert_status(bp_dataset_create(&ds, x, y, n, IN, OUT), BP_OK);
    free(x);
    free(y);
    return ds;
}

static void assert_metrics_close(const double *got, const double *want)
{
    for (int k = 0; k < 4; k++) {
        assert_int_equal(isnan(got[k]) != 0, isnan(want[k]) != 0);
        if (!isnan(want[k])) assert_close(got[k], want[k], 1e-6, 1e-9);
    }
}

static void evaluate_matches_one_process_on_the_whole_set(void **state)
{
    (void)state;
    bp_net *net = make_net(9, HIDDEN);
    const size_t sizes[2] = {37, 3}; /* 3 rows: with 4 ranks, one has none */
    const int losses[2] = {BP_LOSS_SOFTMAX_CE, BP_LOSS_MSE};
    for (int i = 0; i < 2; i++) {
        bp_dataset *ds = make_set(sizes[i], 40 + (uint64_t)i);
        for (int l = 0; l < 2; l++) {
            double want[4], got[4];
            assert_status(bp_net_evaluate(net, losses[l], ds, want, 4), BP_OK);
            assert_status(bp_mpi_evaluate(net, losses[l], ds, got, 4, MPI_COMM_WORLD), BP_OK);
            assert_metrics_close(got, want);
            for (int k = 0; k < 4; k++) { /* the same bits everywhere */
                uint64_t bits;
                memcpy(&bits, &got[k], sizeof bits);
                assert_same_on_every_rank(bits);
            }
        }
        /* Fewer slots than metrics: only the first are written. */
        double two[3] = {-1.0, -1.0, -7.0};
        assert_status(bp_mpi_evaluate(net, BP_LOSS_SOFTMAX_CE, ds, two, 2, MPI_COMM_WORLD), BP_OK);
        assert_true(two[0] > 0.0 && two[1] >= 0.0 && two[1] <= 1.0);
        assert_close(two[2], -7.0, 0.0, 0.0);
        bp_dataset_free(ds);
    }
    bp_net_free(net);
}

static void evaluate_fails_on_every_rank(void **state)
{
    (void)state;
    const int last = size_ - 1;
    bp_net *net = make_net(9, HIDDEN);
    bp_dataset *ds = make_set(11, 50), *other = make_set(12, 51);
    double m[4] = {-1.0, -1.0, -1.0, -1.0};
    MPI_Comm w = MPI_COMM_WORLD;
    assert_int_equal(bp_mpi_evaluate(net, BP_LOSS_MSE, ds, rank_ == last ? NULL : m, 4, w),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_evaluate(net, BP_LOSS_MSE, ds, m, rank_ == last ? 0 : 4, w),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_evaluate(net, BP_LOSS_MSE, rank_ == 0 ? NULL : ds, m, 4, w),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_evaluate(rank_ == last ? NULL : net, BP_LOSS_MSE, ds, m, 4, w),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_evaluate(net, 999, ds, m, 4, w), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_evaluate(net, BP_LOSS_MSE, ds, m, 4, MPI_COMM_NULL),
                     BP_ERR_INVALID_ARG);
    if (size_ > 1) {
        assert_int_equal(bp_mpi_evaluate(net, BP_LOSS_MSE, rank_ == 0 ? other : ds, m, 4, w),
                         BP_ERR_SHAPE);
        assert_non_null(strstr(bp_mpi_last_error(), "data set rows"));
    }
    for (int k = 0; k < 4; k++)
        assert_close(m[k], -1.0, 0.0, 0.0); /* nothing written on failure */
    bp_dataset_free(other);
    bp_dataset_free(ds);
    bp_net_free(net);
}

/* ----------------------------------------------------------------------------------------
 * bp_mpi_fit
 * ----------------------------------------------------------------------------------------*/

/* Fit settings shared by a replica and its one-process reference. */
static void set_fit(bp_net *net, double epochs, double batch, double shuffle)
{
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, epochs), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_BATCH_SIZE, batch), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_SHUFFLE, shuffle), BP_OK);
}

static double history(const bp_net *net, size_t epoch, int metric)
{
    double v = -1.0;
    assert_status(bp_net_history_get(net, epoch, metric, &v), BP_OK);
    return v;
}

static void assert_double_same_on_every_rank(double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    assert_same_on_every_rank(bits);
}

/* Weights of @p net equal those of @p ref: bit for bit on one rank, else to 1e-5 of the
 * largest weight. */
static void assert_weights_match(bp_net *net, bp_net *ref)
{
    size_t np = 0, np_ref = 0;
    const float *p = bp_net_params(net, &np), *q = bp_net_params(ref, &np_ref);
    assert_int_equal(np, np_ref);
    if (size_ == 1) {
        assert_memory_equal(p, q, np * sizeof(float));
        return;
    }
    float scale = 0.0f;
    for (size_t k = 0; k < np; k++)
        scale = fmaxf(scale, fabsf(q[k]));
    for (size_t k = 0; k < np; k++)
        assert_close(p[k], q[k], 1e-5, 1e-5 * (double)scale);
}

/* The last error names rank @p failing and is the same text on every rank. */
static void assert_error_from_rank(int failing)
{
    char expect[32];
    snprintf(expect, sizeof expect, "rank %d: ", failing);
    assert_non_null(strstr(bp_mpi_last_error(), expect));
    assert_same_on_every_rank(hash_string(bp_mpi_last_error()));
}

static int count_epochs(void *user, size_t epoch, const double *metrics, size_t count)
{
    (void)epoch;
    (void)metrics;
    (void)count;
    ++*(int *)user;
    return 0;
}

static void fit_matches_one_process_on_the_truncated_set(void **state)
{
    (void)state;
    enum { N = 50, B = 8, EPOCHS = 3 }; /* 4 ranks: 12 rows each, the last 2 rows unused */
    bp_dataset *train = make_set(N, 61), *val = make_set(17, 62);
    const size_t used = N / (size_t)size_ * (size_t)size_;
    bp_dataset *truncated = NULL;
    assert_status(bp_dataset_subset(&truncated, train, 0, used), BP_OK);
    for (int with_val = 0; with_val < 2; with_val++) {
        bp_net *ref = make_net(11, HIDDEN), *net = make_net(11, HIDDEN);
        bp_optimizer *ref_opt = make_sgd(0.3, 0.5), *opt = make_sgd(0.3, 0.5);
        set_fit(ref, EPOCHS, B, 0.0);
        set_fit(net, EPOCHS, B, 0.0);
        int calls = 0;
        assert_status(bp_net_set_epoch_callback(net, count_epochs, &calls), BP_OK);
        const bp_dataset *v = with_val ? val : NULL;
        assert_status(bp_net_fit(ref, ref_opt, BP_LOSS_SOFTMAX_CE, truncated, v), BP_OK);
        assert_status(bp_mpi_fit(net, opt, BP_LOSS_SOFTMAX_CE, train, v, MPI_COMM_WORLD), BP_OK);

        assert_weights_match(net, ref);
        assert_int_equal(calls, EPOCHS); /* the callback ran on this rank */
        assert_int_equal(bp_net_history_length(net), EPOCHS);
        for (size_t e = 0; e < EPOCHS; e++) {
            /* The training loss is the global one, the same bits on every rank. */
            assert_close(history(net, e, BP_METRIC_LOSS), history(ref, e, BP_METRIC_LOSS), 1e-5,
                         1e-7);
            assert_double_same_on_every_rank(history(net, e, BP_METRIC_LOSS));
            if (with_val) {
                assert_close(history(net, e, BP_METRIC_VAL_LOSS),
                             history(ref, e, BP_METRIC_VAL_LOSS), 1e-5, 1e-7);
                assert_double_same_on_every_rank(history(net, e, BP_METRIC_VAL_LOSS));
            }
        }
        int equal = 0;
        assert_status(bp_mpi_replicas_equal(net, &equal, MPI_COMM_WORLD), BP_OK);
        assert_int_equal(equal, 1);
        double batch = 0.0; /* the global batch setting is back */
        assert_status(bp_net_get(net, BP_FIT_BATCH_SIZE, &batch), BP_OK);
        assert_close(batch, B, 0.0, 0.0);
        bp_optimizer_free(opt);
        bp_optimizer_free(ref_opt);
        bp_net_free(net);
        bp_net_free(ref);
    }
    bp_dataset_free(truncated);
    bp_dataset_free(val);
    bp_dataset_free(train);
}

static void fit_with_shuffling_keeps_replicas_identical_and_learns(void **state)
{
    (void)state;
    enum { EPOCHS = 8 };
    bp_dataset *train = make_set(96, 63), *val = make_set(24, 64);
    bp_net *net = make_net(12, HIDDEN);
    bp_optimizer *opt = make_sgd(0.3, 0.5);
    set_fit(net, EPOCHS, 16, 1.0);
    assert_status(bp_net_set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_COSINE), BP_OK);
    assert_status(bp_mpi_fit(net, opt, BP_LOSS_SOFTMAX_CE, train, val, MPI_COMM_WORLD), BP_OK);
    assert_int_equal(bp_net_history_length(net), EPOCHS);
    assert_true(history(net, EPOCHS - 1, BP_METRIC_LOSS) < 0.9 * history(net, 0, BP_METRIC_LOSS));
    assert_true(history(net, EPOCHS - 1, BP_METRIC_VAL_LOSS) < history(net, 0, BP_METRIC_VAL_LOSS));
    for (size_t e = 0; e < EPOCHS; e++) {
        assert_double_same_on_every_rank(history(net, e, BP_METRIC_LOSS));
        assert_double_same_on_every_rank(history(net, e, BP_METRIC_VAL_LOSS));
        assert_double_same_on_every_rank(history(net, e, BP_METRIC_LEARNING_RATE));
    }
    assert_same_on_every_rank(checksum(net));
    /* A second call continues from the same state on every rank. */
    assert_status(bp_mpi_fit(net, opt, BP_LOSS_SOFTMAX_CE, train, NULL, MPI_COMM_WORLD), BP_OK);
    assert_same_on_every_rank(checksum(net));
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(val);
    bp_dataset_free(train);
}

/* A mapped training set: every rank maps the same file (written once by rank 0) and trains
 * on its contiguous shard, a view; the reference is one process on the rows in the order of
 * the global batches (each the ranks' local batches in rank order). */
static void fit_with_a_mapped_training_set_trains_contiguous_shards(void **state)
{
    (void)state;
    enum { N = 50, B = 8, EPOCHS = 2 };
    const size_t p = (size_t)size_, m = N / p, b = B / p;
    bp_dataset *train = make_set(N, 67), *mapped;
    char dir[64], path[96];
    shared_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/train.bpds", dir);
    if (rank_ == 0) assert_status(bp_dataset_save_binary(train, path, BP_DATA_FLOAT32), BP_OK);
    assert_int_equal(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
    assert_status(bp_dataset_open_mapped(&mapped, path), BP_OK);
    assert_int_equal(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
    if (rank_ == 0) remove(path); /* the mappings stay valid */

    /* The reference order: for each local batch k, rank 0's rows, then rank 1's, ... */
    const float *x = bp_dataset_inputs(train), *y = bp_dataset_targets(train);
    float *rx = malloc(p * m * IN * sizeof(float)), *ry = malloc(p * m * OUT * sizeof(float));
    assert_non_null(rx);
    assert_non_null(ry);
    size_t row = 0;
    for (size_t k = 0; k < m; k += b)
        for (size_t r = 0; r < p; r++)
            for (size_t j = k; j < k + b && j < m; j++, row++) {
                memcpy(rx + row * IN, x + (r * m + j) * IN, IN * sizeof(float));
                memcpy(ry + row * OUT, y + (r * m + j) * OUT, OUT * sizeof(float));
            }
    assert_int_equal(row, p * m);
    bp_dataset *ordered = NULL;
    assert_status(bp_dataset_create(&ordered, rx, ry, p * m, IN, OUT), BP_OK);
    free(rx);
    free(ry);

    bp_net *ref = make_net(14, HIDDEN), *net = make_net(14, HIDDEN);
    bp_optimizer *ref_opt = make_sgd(0.3, 0.5), *opt = make_sgd(0.3, 0.5);
    set_fit(ref, EPOCHS, B, 0.0);
    set_fit(net, EPOCHS, B, 0.0);
    assert_status(bp_net_fit(ref, ref_opt, BP_LOSS_SOFTMAX_CE, ordered, NULL), BP_OK);
    assert_status(bp_mpi_fit(net, opt, BP_LOSS_SOFTMAX_CE, mapped, NULL, MPI_COMM_WORLD), BP_OK);
    assert_weights_match(net, ref);
    for (size_t e = 0; e < EPOCHS; e++) {
        assert_close(history(net, e, BP_METRIC_LOSS), history(ref, e, BP_METRIC_LOSS), 1e-5, 1e-7);
        assert_double_same_on_every_rank(history(net, e, BP_METRIC_LOSS));
    }
    assert_same_on_every_rank(checksum(net));
    /* With shuffling too: the replicas stay identical. */
    set_fit(net, EPOCHS, B, 1.0);
    assert_status(bp_mpi_fit(net, opt, BP_LOSS_SOFTMAX_CE, mapped, mapped, MPI_COMM_WORLD), BP_OK);
    assert_same_on_every_rank(checksum(net));
    assert_double_same_on_every_rank(history(net, EPOCHS - 1, BP_METRIC_VAL_LOSS));
    bp_optimizer_free(opt);
    bp_optimizer_free(ref_opt);
    bp_net_free(net);
    bp_net_free(ref);
    bp_dataset_free(ordered);
    bp_dataset_free(mapped);
    bp_dataset_free(train);
    assert_int_equal(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
    if (rank_ == 0) rmdir(dir);
}

static void fit_early_stopping_stops_on_the_same_epoch_everywhere(void **state)
{
    (void)state;
    enum { N = 64, B = 16, EPOCHS = 60 };
    bp_dataset *train = make_set(N, 65), *val = make_set(20, 66);
    for (int with_val = 0; with_val < 2; with_val++) {
        const bp_dataset *v = with_val ? val : NULL;
        bp_net *ref = make_net(13, HIDDEN), *net = make_net(13, HIDDEN);
        bp_optimizer *ref_opt = make_sgd(0.2, 0.0), *opt = make_sgd(0.2, 0.0);
        bp_net *both[2] = {ref, net};
        for (int i = 0; i < 2; i++) {
            set_fit(both[i], EPOCHS, B, 0.0);
            assert_status(bp_net_set(both[i], BP_FIT_PATIENCE, 2), BP_OK);
            assert_status(bp_net_set(both[i], BP_FIT_MIN_DELTA, 0.01), BP_OK);
        }
        assert_status(bp_net_fit(ref, ref_opt, BP_LOSS_SOFTMAX_CE, train, v), BP_OK);
        assert_status(bp_mpi_fit(net, opt, BP_LOSS_SOFTMAX_CE, train, v, MPI_COMM_WORLD), BP_OK);
        const size_t len = bp_net_history_length(net);
        assert_true(len >= 3 && len < EPOCHS); /* it did stop early */
        assert_int_equal(len, bp_net_history_length(ref));
        assert_same_on_every_rank(len);
        assert_same_on_every_rank(checksum(net)); /* the best weights, restored everywhere */
        assert_weights_match(net, ref);
        bp_optimizer_free(opt);
        bp_optimizer_free(ref_opt);
        bp_net_free(net);
        bp_net_free(ref);
    }
    bp_dataset_free(val);
    bp_dataset_free(train);
}

/* A training set whose row 1 (the first row of rank 1's shard; rank 0's with one rank) has
 * a target of 3e38: its squared error overflows the float loss. */
static bp_dataset *make_overflowing_set(size_t n)
{
    float *x = malloc(n * IN * sizeof(float)), *y = malloc(n * OUT * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    make_data(x, y, n, 67);
    y[1 * OUT] = 3e38f;
    bp_dataset *ds = NULL;
    assert_status(bp_dataset_create(&ds, x, y, n, IN, OUT), BP_OK);
    free(x);
    free(y);
    return ds;
}

static void fit_nonfinite_loss_on_one_rank_fails_on_every_rank(void **state)
{
    (void)state;
    const int bad = size_ > 1 ? 1 : 0;
    bp_dataset *train = make_overflowing_set(32), *good = make_set(32, 68);
    bp_net *net = make_net(14, HIDDEN);
    bp_optimizer *opt = make_sgd(0.1, 0.0);
    set_fit(net, 3, 8, 0.0);
    const uint64_t before = checksum(net);
    assert_int_equal(bp_mpi_fit(net, opt, BP_LOSS_MSE, train, NULL, MPI_COMM_WORLD),
                     BP_ERR_NONFINITE);
    assert_error_from_rank(bad);
    assert_non_null(strstr(bp_mpi_last_error(), "bp_mpi_fit"));
    assert_true(checksum(net) == before); /* the first step failed: nothing changed */
    assert_int_equal(bp_net_history_length(net), 0);
    double batch = 0.0;
    assert_status(bp_net_get(net, BP_FIT_BATCH_SIZE, &batch), BP_OK);
    assert_close(batch, 8, 0.0, 0.0);
    /* The ranks are still in step: the next fit works everywhere. */
    assert_status(bp_mpi_fit(net, opt, BP_LOSS_MSE, good, NULL, MPI_COMM_WORLD), BP_OK);
    assert_int_equal(bp_net_history_length(net), 3);
    assert_same_on_every_rank(checksum(net));
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(good);
    bp_dataset_free(train);
}

static int stop_on_rank_0(void *user, size_t epoch, const double *metrics, size_t count)
{
    (void)user;
    (void)metrics;
    (void)count;
    return rank_ == 0 && epoch == 1;
}

static void fit_a_rank_leaving_early_fails_every_rank_without_a_hang(void **state)
{
    (void)state;
    if (size_ < 2) skip();
    bp_dataset *train = make_set(32, 69);
    bp_net *net = make_net(15, HIDDEN);
    bp_optimizer *opt = make_sgd(0.1, 0.0);
    set_fit(net, 5, 8, 1.0);
    assert_status(bp_net_set_epoch_callback(net, stop_on_rank_0, NULL), BP_OK);
    assert_int_equal(bp_mpi_fit(net, opt, BP_LOSS_SOFTMAX_CE, train, NULL, MPI_COMM_WORLD),
                     BP_ERR_STATE);
    assert_non_null(strstr(bp_mpi_last_error(), "still training"));
    assert_same_on_every_rank(hash_string(bp_mpi_last_error()));
    assert_same_on_every_rank(checksum(net)); /* every rank did the same steps */
    assert_status(bp_net_set_epoch_callback(net, NULL, NULL), BP_OK);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(train);
}

static void fit_rejects_bad_arguments_on_every_rank(void **state)
{
    (void)state;
    const int last = size_ - 1;
    MPI_Comm w = MPI_COMM_WORLD;
    const int ce = BP_LOSS_SOFTMAX_CE;
    bp_dataset *train = make_set(24, 70), *tiny = make_set(3, 71), *wide = NULL;
    bp_net *net = make_net(16, HIDDEN);
    bp_optimizer *opt = make_sgd(0.1, 0.0);
    set_fit(net, 2, 4, 1.0);
    const uint64_t before = checksum(net);

    assert_int_equal(bp_mpi_fit(rank_ == last ? NULL : net, opt, ce, train, NULL, w),
                     BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_mpi_last_error(), "network handle"));
    assert_int_equal(bp_mpi_fit(net, rank_ == 0 ? NULL : opt, ce, train, NULL, w),
                     BP_ERR_INVALID_ARG);
    assert_int_equal(bp_mpi_fit(net, opt, ce, rank_ == last ? NULL : train, NULL, w),
                     BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_mpi_last_error(), "training set"));
    assert_int_equal(bp_mpi_fit(net, opt, ce, train, NULL, MPI_COMM_NULL), BP_ERR_INVALID_ARG);
    /* An unknown loss fails inside bp_net_fit, on every rank. */
    assert_int_equal(bp_mpi_fit(net, opt, 999, train, NULL, w), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_mpi_last_error(), "rank 0: bp_mpi_fit: "));
    /* A validation set of another width fails inside bp_net_fit on one rank only, before
     * its first step: the others stop at theirs. */
    float zx[3 * (IN + 1)] = {0}, zy[3 * OUT] = {0};
    assert_status(bp_dataset_create(&wide, zx, zy, 3, IN + 1, OUT), BP_OK);
    assert_int_equal(bp_mpi_fit(net, opt, ce, train, rank_ == last ? wide : tiny, w), BP_ERR_SHAPE);
    assert_error_from_rank(last);
    if (size_ > 1) {
        /* A global batch that is not a multiple of the ranks; fewer rows than ranks. */
        assert_status(bp_net_set(net, BP_FIT_BATCH_SIZE, 4 * size_ + 1), BP_OK);
        assert_int_equal(bp_mpi_fit(net, opt, ce, train, NULL, w), BP_ERR_INVALID_ARG);
        assert_non_null(strstr(bp_mpi_last_error(), "multiple"));
        assert_status(bp_net_set(net, BP_FIT_BATCH_SIZE, rank_ == 0 ? 2 * size_ : 4 * size_),
                      BP_OK);
        assert_int_equal(bp_mpi_fit(net, opt, ce, train, NULL, w), BP_ERR_SHAPE);
        assert_non_null(strstr(bp_mpi_last_error(), "BP_FIT_BATCH_SIZE"));
        assert_status(bp_net_set(net, BP_FIT_BATCH_SIZE, 4 * size_), BP_OK);
        if (size_ > 3)
            assert_int_equal(bp_mpi_fit(net, opt, ce, tiny, NULL, w), BP_ERR_INVALID_ARG);
        /* Replicas created with different seeds: rank 0's weights would be broadcast, but
         * the generators differ, so the call fails and every rank keeps its weights. */
        bp_net *other = make_net(rank_ == last ? 17 : 16, HIDDEN);
        set_fit(other, 2, 4 * size_, 1.0);
        const uint64_t mine = checksum(other);
        assert_int_equal(bp_mpi_fit(other, opt, ce, train, NULL, w), BP_ERR_STATE);
        assert_non_null(strstr(bp_mpi_last_error(), "same seed"));
        assert_true(checksum(other) == mine);
        bp_net_free(other);
        /* A setting that differs (the learning rate of one rank's optimizer). */
        bp_optimizer *odd = make_sgd(rank_ == last ? 0.2 : 0.1, 0.0);
        assert_int_equal(bp_mpi_fit(net, odd, ce, train, NULL, w), BP_ERR_STATE);
        bp_optimizer_free(odd);
    }
    assert_true(checksum(net) == before);
    assert_int_equal(bp_net_history_length(net), 0);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(wide);
    bp_dataset_free(tiny);
    bp_dataset_free(train);
}

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) return 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    bp_set_num_threads(1); /* one BLAS thread per rank */
    const struct CMUnitTest tests[] = {
        bp_add_test(shard_covers_every_row_once_in_rank_order),
        bp_add_test(shard_rejects_bad_arguments),
        bp_add_test(checksum_is_fnv1a_of_little_endian_floats),
        bp_add_test(replicas_equal_detects_one_changed_weight),
        bp_add_test(allreduce_grads_averages_over_ranks),
        bp_add_test(allreduce_grads_reports_a_nonfinite_rank),
        bp_add_test(train_step_matches_one_process_with_the_global_batch),
        bp_add_test(train_step_weights_unequal_shards_by_their_rows),
        bp_add_test(train_step_clips_the_averaged_gradient_like_train_step),
        bp_add_test(train_step_accepts_ranks_without_rows),
        bp_add_test(nan_on_one_rank_fails_on_every_rank),
        bp_add_test(bad_arguments_on_one_rank_fail_on_every_rank),
        bp_add_test(networks_of_different_sizes_fail_on_every_rank),
        bp_add_test(evaluate_matches_one_process_on_the_whole_set),
        bp_add_test(evaluate_fails_on_every_rank),
        bp_add_test(save_writes_rank_0s_model_once),
        bp_add_test(checkpoint_of_rank_0_resumes_every_rank_bit_identically),
        bp_add_test(fit_matches_one_process_on_the_truncated_set),
        bp_add_test(fit_with_shuffling_keeps_replicas_identical_and_learns),
        bp_add_test(fit_early_stopping_stops_on_the_same_epoch_everywhere),
        bp_add_test(fit_nonfinite_loss_on_one_rank_fails_on_every_rank),
        bp_add_test(fit_a_rank_leaving_early_fails_every_rank_without_a_hang),
        bp_add_test(fit_rejects_bad_arguments_on_every_rank),
        bp_add_test(fit_with_a_mapped_training_set_trains_contiguous_shards),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed == 0 ? 0 : 1;
}
