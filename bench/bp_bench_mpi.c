/* bp_bench_mpi.c -- data-parallel training benchmarks for libbackprop_mpi; run under mpiexec.
 *
 *   mpiexec -n P bp_bench_mpi [--case NAME[,NAME...]] [--steps N] [--data DIR]
 *
 * Cases (all by default):
 *   allreduce  MPI_Allreduce (float sum) of 4 B .. 64 MiB: median time per size and the
 *              ring-model fit T = 2(p-1)/p * bytes / bandwidth + 2(p-1) * latency
 *   fmnist     Fashion-MNIST MLP 784-256-128-10 (ReLU, softmax CE), global batch 64, SGD;
 *              data from DIR (default /usr/share/datasets/fashion-mnist)
 *   fmnist_fit the fmnist model trained by bp_mpi_fit() for --steps epochs (default 1) of the
 *              whole set, shuffled, global batch 64: wall time of the slowest rank
 *   gemm_mlp   MLP 1024-4096-4096-1024 (ReLU, MSE), global batch 256, random data, SGD
 * For the training cases each step is timed three ways, every time as the maximum over the
 * ranks after a barrier: the local gradient computation (bp_net_compute_grads() on this
 * rank's shard), the gradient allreduce alone (bp_mpi_allreduce_grads()), and the whole
 * bp_mpi_train_step(); medians over --steps steps after one warm-up step.
 *
 * Rank 0 prints one JSON line per case with "case", "ranks", "threads" (BLAS threads per
 * rank: 1, set here), "git" and the case's figures. Run with OPENBLAS_NUM_THREADS=1 too.
 */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backprop_mpi.h"

#include "bp_git_revision.h" /* BP_BENCH_GIT, generated at build time */

typedef struct run_opts {
    int rank, size;
    long steps; /* 0: the case's default */
    const char *data_dir;
} run_opts;

/* Seconds since an arbitrary origin. */
static double now_s(void)
{
    return (double)bench_now_ns() * 1e-9;
}

/* The slowest rank's duration of a phase that started after a barrier. */
static double max_over_ranks(double seconds)
{
    double worst = seconds;
    MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

/* The worst status over the ranks, so that every rank leaves a loop together. */
static bp_status agree(bp_status s)
{
    int v = (int)s;
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return (bp_status)v;
}

static void header(bench_json *j, const char *name, const run_opts *o)
{
    bench_json_init(j);
    bench_json_open(j, '{');
    bench_json_field_str(j, "case", name);
    bench_json_field_int(j, "ranks", o->size);
    bench_json_field_int(j, "threads", bp_get_num_threads());
    bench_json_field_str(j, "git", BP_BENCH_GIT);
}

/* Close and print the line on rank 0; 0 on success. */
static int finish(bench_json *j, const run_opts *o)
{
    bench_json_close(j, '}');
    int rc = bench_json_failed(j);
    if (rc == 0 && o->rank == 0) printf("%s\n", j->buf);
    fflush(stdout);
    bench_json_free(j);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Case allreduce
 * ----------------------------------------------------------------------------------------*/

enum { AR_SIZES = 13 }; /* 4^0 .. 4^12 floats: 4 B .. 64 MiB */

static int case_allreduce(const run_opts *o)
{
    const size_t max_count = (size_t)1 << 24;
    float *buf = malloc(max_count * sizeof(float));
    double *samples = malloc(200 * sizeof(double));
    if (buf == NULL || samples == NULL) {
        free(buf), free(samples);
        fprintf(stderr, "bp_bench_mpi: out of memory\n");
        return 1;
    }
    bench_fill(buf, max_count, 3);
    double sec[AR_SIZES];
    size_t counts[AR_SIZES];
    for (int i = 0; i < AR_SIZES; i++) {
        const size_t count = (size_t)1 << (2 * i);
        const size_t bytes = count * sizeof(float);
        const int reps = bytes >= ((size_t)1 << 22) ? 9 : bytes >= ((size_t)1 << 16) ? 50 : 200;
        counts[i] = count;
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        for (int r = 0; r < reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            const double t = now_s();
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            samples[r] = max_over_ranks(now_s() - t);
            /* keep the values bounded: the sum doubles them at every call */
            if (r % 16 == 15) bench_fill(buf, count, (uint64_t)r);
        }
        sec[i] = bench_median(samples, (size_t)reps);
    }
    /* Ring model for p ranks: T(bytes) = 2(p-1)/p * bytes / bw + 2(p-1) * lat. Latency from
     * the smallest message, bandwidth from the largest. Meaningless for one rank. */
    const double p = o->size, steps = 2.0 * (p - 1.0);
    const double lat = o->size > 1 ? sec[0] / steps : 0.0;
    const double big = (double)(counts[AR_SIZES - 1] * sizeof(float));
    const double bw = o->size > 1 ? steps / p * big / (sec[AR_SIZES - 1] - steps * lat) : 0.0;

    bench_json j;
    header(&j, "allreduce", o);
    bench_json_key(&j, "bytes");
    bench_json_open(&j, '[');
    for (int i = 0; i < AR_SIZES; i++)
        bench_json_int(&j, (long long)(counts[i] * sizeof(float)));
    bench_json_close(&j, ']');
    bench_json_key(&j, "us");
    bench_json_open(&j, '[');
    for (int i = 0; i < AR_SIZES; i++)
        bench_json_num(&j, sec[i] * 1e6);
    bench_json_close(&j, ']');
    bench_json_field_num(&j, "ring_latency_us", lat * 1e6);
    bench_json_field_num(&j, "ring_bandwidth_gbs", bw * 1e-9);
    free(buf);
    free(samples);
    return finish(&j, o);
}

/* ------------------------------------------------------------------------------------------
 * Training cases
 * ----------------------------------------------------------------------------------------*/

typedef struct train_case {
    const char *name;
    size_t in, out, batch; /* global batch */
    const size_t *hidden;
    size_t nhidden;
    int loss, out_act;
    double lr;
    const float *x, *y; /* [rows x in], [rows x out] */
    size_t rows;
    long steps;
} train_case;

static bp_status build(const train_case *c, bp_net **net, bp_optimizer **opt)
{
    *net = NULL;
    *opt = NULL;
    bp_status s = bp_net_create(net, c->in, 1234);
    for (size_t i = 0; s == BP_OK && i < c->nhidden; i++)
        s = bp_net_add_dense(*net, c->hidden[i], BP_ACT_RELU);
    if (s == BP_OK) s = bp_net_add_dense(*net, c->out, c->out_act);
    if (s == BP_OK) s = bp_optimizer_create(opt, BP_OPTIMIZER_SGD);
    if (s == BP_OK) s = bp_optimizer_set(*opt, BP_OPT_LEARNING_RATE, c->lr);
    return s;
}

static int run_training(const train_case *c, const run_opts *o)
{
    bp_net *net;
    bp_optimizer *opt;
    bp_status s = build(c, &net, &opt);
    if (s == BP_OK) s = bp_mpi_broadcast_params(net, 0, MPI_COMM_WORLD);
    size_t start = 0, count = 0;
    if (s == BP_OK) s = bp_mpi_shard(c->batch, o->rank, o->size, &start, &count);
    const long steps = o->steps > 0 ? o->steps : c->steps;
    double *compute = malloc((size_t)steps * sizeof(double));
    double *reduce = malloc((size_t)steps * sizeof(double));
    double *step = malloc((size_t)steps * sizeof(double));
    if (compute == NULL || reduce == NULL || step == NULL) s = BP_ERR_NOMEM;
    const size_t batches = c->rows / c->batch;
    float loss = 0.0f;
    /* Phases alone: the gradients of the local shard, then their allreduce. */
    for (long i = -1; s == BP_OK && i < steps; i++) {
        const size_t b = (size_t)(i + 1) % batches, r0 = b * c->batch + start;
        MPI_Barrier(MPI_COMM_WORLD);
        double t = now_s();
        s = bp_net_compute_grads(net, c->loss, c->x + r0 * c->in, c->y + r0 * c->out, count, NULL);
        const double tc = max_over_ranks(now_s() - t);
        s = agree(s); /* before the next collective */
        MPI_Barrier(MPI_COMM_WORLD);
        t = now_s();
        if (s == BP_OK) s = bp_mpi_allreduce_grads(net, MPI_COMM_WORLD);
        const double tr = max_over_ranks(now_s() - t);
        if (i >= 0) compute[i] = tc, reduce[i] = tr;
    }
    /* Whole steps. */
    for (long i = -1; s == BP_OK && i < steps; i++) {
        const size_t b = (size_t)(i + 1) % batches, r0 = b * c->batch + start;
        MPI_Barrier(MPI_COMM_WORLD);
        const double t = now_s();
        s = bp_mpi_train_step(net, opt, c->loss, c->x + r0 * c->in, c->y + r0 * c->out, count,
                              &loss, MPI_COMM_WORLD);
        const double ts = max_over_ranks(now_s() - t);
        if (i >= 0) step[i] = ts;
    }
    int equal = 0;
    if (s == BP_OK) s = bp_mpi_replicas_equal(net, &equal, MPI_COMM_WORLD);
    int rc = 1;
    if (s != BP_OK) {
        fprintf(stderr, "bp_bench_mpi: %s: %s (%s)\n", c->name, bp_status_string(s),
                bp_mpi_last_error()[0] ? bp_mpi_last_error() : bp_net_last_error(net));
    } else {
        const size_t params = bp_net_param_count(net);
        const double tc = bench_median(compute, (size_t)steps);
        const double tr = bench_median(reduce, (size_t)steps);
        const double ts = bench_median(step, (size_t)steps);
        bench_json j;
        header(&j, c->name, o);
        bench_json_field_int(&j, "global_batch", (long long)c->batch);
        bench_json_field_int(&j, "params", (long long)params);
        bench_json_field_int(&j, "allreduce_bytes", (long long)(params * sizeof(float)));
        bench_json_field_int(&j, "steps", steps);
        bench_json_field_num(&j, "compute_ms", tc * 1e3);
        bench_json_field_num(&j, "allreduce_ms", tr * 1e3);
        bench_json_field_num(&j, "step_ms", ts * 1e3);
        bench_json_field_num(&j, "samples_per_s", (double)c->batch / ts);
        bench_json_field_num(&j, "last_loss", (double)loss);
        bench_json_field_int(&j, "replicas_equal", equal);
        rc = finish(&j, o);
    }
    free(compute), free(reduce), free(step);
    bp_optimizer_free(opt);
    bp_net_free(net);
    return rc;
}

static int case_fmnist(const run_opts *o)
{
    char images[1024], labels[1024];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", o->data_dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", o->data_dir);
    bp_dataset *ds = NULL;
    if (bp_dataset_load_idx(&ds, images, labels, 10) != BP_OK) {
        fprintf(stderr, "bp_bench_mpi: fmnist: %s\n", bp_last_error());
        return 1;
    }
    static const size_t hidden[] = {256, 128};
    const train_case c = {"fmnist",
                          784,
                          10,
                          64,
                          hidden,
                          2,
                          BP_LOSS_SOFTMAX_CE,
                          BP_ACT_SOFTMAX,
                          0.05,
                          bp_dataset_inputs(ds),
                          bp_dataset_targets(ds),
                          bp_dataset_size(ds),
                          200};
    const int rc = run_training(&c, o);
    bp_dataset_free(ds);
    return rc;
}

/* One epoch (or --steps epochs) of bp_mpi_fit() on Fashion-MNIST with the fmnist model:
 * global batch 64, shuffled; the slowest rank's wall time. */
static int case_fmnist_fit(const run_opts *o)
{
    char images[1024], labels[1024];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", o->data_dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", o->data_dir);
    bp_dataset *ds = NULL;
    bp_status s = bp_dataset_load_idx(&ds, images, labels, 10);
    if (s != BP_OK) {
        fprintf(stderr, "bp_bench_mpi: fmnist_fit: %s\n", bp_last_error());
        return 1;
    }
    static const size_t hidden[] = {256, 128};
    const train_case c = {"fmnist_fit",   784,  10,   64,   hidden, 2, BP_LOSS_SOFTMAX_CE,
                          BP_ACT_SOFTMAX, 0.05, NULL, NULL, 0,      0};
    const long epochs = o->steps > 0 ? o->steps : 1;
    bp_net *net;
    bp_optimizer *opt;
    s = build(&c, &net, &opt);
    if (s == BP_OK) s = bp_net_set(net, BP_FIT_EPOCHS, (double)epochs);
    if (s == BP_OK) s = bp_net_set(net, BP_FIT_BATCH_SIZE, 64);
    s = agree(s);
    MPI_Barrier(MPI_COMM_WORLD);
    const double t = now_s();
    if (s == BP_OK) s = bp_mpi_fit(net, opt, c.loss, ds, NULL, MPI_COMM_WORLD);
    const double seconds = max_over_ranks(now_s() - t);
    int equal = 0, rc = 1;
    if (s == BP_OK) s = bp_mpi_replicas_equal(net, &equal, MPI_COMM_WORLD);
    double loss = 0.0;
    if (s == BP_OK) s = bp_net_history_get(net, (size_t)epochs - 1, BP_METRIC_LOSS, &loss);
    if (s != BP_OK) {
        fprintf(stderr, "bp_bench_mpi: fmnist_fit: %s (%s)\n", bp_status_string(s),
                bp_mpi_last_error());
    } else {
        const size_t used = bp_dataset_size(ds) / (size_t)o->size * (size_t)o->size;
        bench_json j;
        header(&j, c.name, o);
        bench_json_field_int(&j, "global_batch", 64);
        bench_json_field_int(&j, "rows", (long long)used);
        bench_json_field_int(&j, "epochs", epochs);
        bench_json_field_num(&j, "seconds", seconds);
        bench_json_field_num(&j, "samples_per_s", (double)used * (double)epochs / seconds);
        bench_json_field_num(&j, "last_epoch_loss", loss);
        bench_json_field_int(&j, "replicas_equal", equal);
        rc = finish(&j, o);
    }
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(ds);
    return rc;
}

static int case_gemm_mlp(const run_opts *o)
{
    enum { IN = 1024, OUT = 1024, BATCH = 256 };
    float *x = malloc((size_t)BATCH * IN * sizeof(float));
    float *y = malloc((size_t)BATCH * OUT * sizeof(float));
    if (x == NULL || y == NULL) {
        free(x), free(y);
        fprintf(stderr, "bp_bench_mpi: out of memory\n");
        return 1;
    }
    bench_fill(x, (size_t)BATCH * IN, 11); /* the same data on every rank */
    bench_fill(y, (size_t)BATCH * OUT, 12);
    static const size_t hidden[] = {4096, 4096};
    const train_case c = {"gemm_mlp",      IN,   OUT, BATCH, hidden, 2, BP_LOSS_MSE,
                          BP_ACT_IDENTITY, 1e-4, x,   y,     BATCH,  5};
    const int rc = run_training(&c, o);
    free(x), free(y);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

typedef struct bench_case {
    const char *name;
    int (*run)(const run_opts *o);
} bench_case;

static const bench_case cases[] = {
    {"allreduce", case_allreduce},
    {"fmnist", case_fmnist},
    {"fmnist_fit", case_fmnist_fit},
    {"gemm_mlp", case_gemm_mlp},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static int usage(int rank)
{
    if (rank == 0)
        fprintf(stderr,
                "usage: mpiexec -n P bp_bench_mpi [--case allreduce,fmnist,fmnist_fit,gemm_mlp] "
                "[--steps N] [--data DIR]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) return 1;
    run_opts o = {0, 1, 0, "/usr/share/datasets/fashion-mnist"};
    MPI_Comm_rank(MPI_COMM_WORLD, &o.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &o.size);
    bp_set_num_threads(1); /* one BLAS thread per rank */
    int selected[NCASES], any = 0, rc = 0;
    memset(selected, 0, sizeof selected);
    for (int i = 1; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
            char list[256];
            snprintf(list, sizeof list, "%s", argv[++i]);
            for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
                int found = 0;
                for (int c = 0; c < NCASES; c++)
                    if (strcmp(tok, cases[c].name) == 0) selected[c] = found = any = 1;
                if (!found) rc = usage(o.rank);
            }
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            o.steps = strtol(argv[++i], NULL, 10);
            if (o.steps < 1 || o.steps > 1000000) rc = usage(o.rank);
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            o.data_dir = argv[++i];
        } else {
            rc = usage(o.rank);
        }
    }
    for (int c = 0; c < NCASES && rc == 0; c++)
        if (!any || selected[c]) rc = cases[c].run(&o);
    MPI_Finalize();
    return rc;
}
