/* bp_bench.c -- libbackprop benchmarks: one JSON line per case on stdout.
 *
 *   bp_bench [--case NAME[,NAME...]]... [--threads N] [--repeat N] [--m N --n N --k N]
 *            [--samples N] [--fmnist DIR] [--census FILE] [--list]
 *
 * Every line carries "case", "threads", "backend" (bp_backend_info()) and "git" (the source
 * revision at build time) plus the case's own figures, so runs on different machines or
 * revisions compare as ratios. Each measurement is a warm-up call followed by the median of
 * --repeat samples.
 *
 * Adding a case: write `static int case_<name>(const bench_opts *o, bench_json *out)` that
 * adds its figures to @p out and returns 0 (or prints to stderr and returns non-zero), then
 * add one row to the `cases` table below.
 */
#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "util.h"
#include "rng.h"
#include "gemm.h"
#include "layer_kinds.h"
#include "optimizer.h"
#include "dataset.h"

#include "bp_git_revision.h" /* BP_BENCH_GIT, generated at build time */

/* ------------------------------------------------------------------------------------------
 * Case: sgemm -- raw BLAS throughput on one shape (C[m x n] = A[m x k] B[k x n]).
 * ----------------------------------------------------------------------------------------*/

typedef struct gemm_args {
    size_t m, n, k;
    const float *a, *b; /* a: [m x k], b: [k x n] */
    float *c;           /* c: [m x n] */
    int naive;
} gemm_args;

static void run_gemm(void *p)
{
    const gemm_args *g = p;
    if (g->naive)
        bp__gemm_naive(0, 0, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->n, 0.0f, g->c, g->n);
    else
        bp__gemm_blas(0, 0, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->n, 0.0f, g->c, g->n);
}

/* Allocates and fills a, b, c for an [m x k] x [k x n] product; 0 on success. */
static int gemm_alloc(gemm_args *g, size_t m, size_t n, size_t k)
{
    memset(g, 0, sizeof *g);
    g->m = m, g->n = n, g->k = k;
    float *a = malloc(m * k * sizeof *a), *b = malloc(k * n * sizeof *b);
    g->c = calloc(m * n, sizeof *g->c);
    if (a == NULL || b == NULL || g->c == NULL) {
        free(a), free(b), free(g->c);
        fprintf(stderr, "bp_bench: out of memory for a %zux%zux%zu GEMM\n", m, n, k);
        return -1;
    }
    bench_fill(a, m * k, 1);
    bench_fill(b, k * n, 2);
    g->a = a, g->b = b;
    return 0;
}

static void gemm_release(gemm_args *g)
{
    free((void *)(uintptr_t)g->a);
    free((void *)(uintptr_t)g->b);
    free(g->c);
}

static int case_sgemm(const bench_opts *o, bench_json *out)
{
    gemm_args g;
    if (gemm_alloc(&g, o->m, o->n, o->k) != 0) return -1;
    const double ns = bench_time_ns(run_gemm, &g, o->repeat, 1000000);
    gemm_release(&g);
    if (ns < 0) return -1;
    bench_json_field_int(out, "m", (long long)o->m);
    bench_json_field_int(out, "n", (long long)o->n);
    bench_json_field_int(out, "k", (long long)o->k);
    bench_json_field_int(out, "repeat", o->repeat);
    bench_json_field_num(out, "ns", ns);
    bench_json_field_num(out, "gflops", 2.0 * (double)o->m * (double)o->n * (double)o->k / ns);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Case: gemm-crossover -- plain loop vs BLAS on square products m = n = k = 2 .. 48, to set
 * bp__gemm_small_threshold (src/gemm.c) from a measurement.
 * ----------------------------------------------------------------------------------------*/

enum { CROSS_MIN = 2, CROSS_MAX = 48 };

static int case_gemm_crossover(const bench_opts *o, bench_json *out)
{
    gemm_args g;
    if (gemm_alloc(&g, CROSS_MAX, CROSS_MAX, CROSS_MAX) != 0) return -1;
    double naive_ns[CROSS_MAX + 1], blas_ns[CROSS_MAX + 1];
    int failed = 0;
    bench_json_key(out, "sizes");
    bench_json_open(out, '[');
    for (size_t s = CROSS_MIN; s <= CROSS_MAX && !failed; s++) {
        g.m = g.n = g.k = s;
        g.naive = 1;
        naive_ns[s] = bench_time_ns(run_gemm, &g, o->repeat, 100000);
        g.naive = 0;
        blas_ns[s] = bench_time_ns(run_gemm, &g, o->repeat, 100000);
        failed = naive_ns[s] < 0 || blas_ns[s] < 0;
        bench_json_open(out, '{');
        bench_json_field_int(out, "size", (long long)s);
        bench_json_field_num(out, "naive_ns", naive_ns[s]);
        bench_json_field_num(out, "blas_ns", blas_ns[s]);
        bench_json_close(out, '}');
    }
    bench_json_close(out, ']');
    gemm_release(&g);
    if (failed) return -1;

    /* The first size at which BLAS wins, and the size from which it wins at every larger
     * size measured (robust to a noisy sample); null when BLAS never wins. */
    size_t first = 0, from = 0;
    for (size_t s = CROSS_MIN; s <= CROSS_MAX; s++) {
        if (blas_ns[s] < naive_ns[s]) {
            if (first == 0) first = s;
            if (from == 0) from = s;
        } else {
            from = 0;
        }
    }
    bench_json_key(out, "first_blas_win");
    first ? bench_json_int(out, (long long)first) : bench_json_null(out);
    bench_json_key(out, "crossover_size");
    from ? bench_json_int(out, (long long)from) : bench_json_null(out);
    bench_json_key(out, "crossover_mnk");
    from ? bench_json_int(out, (long long)(from * from * from)) : bench_json_null(out);
    bench_json_field_int(out, "threshold_mnk", (long long)bp__gemm_small_threshold);
    bench_json_field_int(out, "repeat", o->repeat);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Case: dense-gemm-bound -- MLP 1024-4096-4096-1024 (ReLU, identity output, MSE, SGD), batch
 * 256: samples/s and GFLOP/s of bp_net_train_step against the raw sgemm rate of the same
 * eight GEMMs (3 forward, 3 dW, 2 dX: the first layer skips dX) measured in the same run.
 * ----------------------------------------------------------------------------------------*/

enum { DG_BATCH = 256, DG_LAYERS = 3 };
static const size_t dg_width[DG_LAYERS + 1] = {1024, 4096, 4096, 1024};

typedef struct dense_args {
    bp_net *net;
    bp_optimizer *opt;
    const float *x, *y;
    size_t n;
    int status;
} dense_args;

static void run_train_step(void *p)
{
    dense_args *d = p;
    const bp_status s = bp_net_train_step(d->net, d->opt, BP_LOSS_MSE, d->x, d->y, d->n, NULL);
    if (s != BP_OK) d->status = s;
}

/* ------------------------------------------------------------------------------------------
 * The GEMMs of an MLP training step alone (dense-gemm-bound, fmnist-mlp-epoch): y = x W^T per
 * layer, then per layer from the top dW = dz^T x and dx = dz W (the first layer skips dx), the
 * shapes and transposes of net.c's dense layers, on buffers of random data.
 * ----------------------------------------------------------------------------------------*/

enum { MLP_MAX_LAYERS = 3 };

typedef struct mlp_gemms {
    const size_t *width; /* layers + 1 widths */
    size_t layers;
    float *y[MLP_MAX_LAYERS], *dz[MLP_MAX_LAYERS], *w[MLP_MAX_LAYERS], *dw[MLP_MAX_LAYERS],
        *dx[MLP_MAX_LAYERS];
} mlp_gemms;

static void mlp_gemms_free(mlp_gemms *g)
{
    for (size_t l = 0; l < MLP_MAX_LAYERS; l++)
        free(g->y[l]), free(g->dz[l]), free(g->w[l]), free(g->dw[l]), free(g->dx[l]);
    memset(g, 0, sizeof *g);
}

/* Buffers for up to @p rows rows; W and dz filled from seeds @p seed + l and @p seed + 10 + l.
 * Returns 0, or -1 out of memory (nothing left allocated). */
static int mlp_gemms_alloc(mlp_gemms *g, const size_t *width, size_t layers, size_t rows,
                           unsigned seed)
{
    memset(g, 0, sizeof *g);
    g->width = width;
    g->layers = layers;
    for (size_t l = 0; l < layers; l++) {
        const size_t i = width[l], o = width[l + 1];
        g->y[l] = malloc(rows * o * sizeof(float));
        g->dz[l] = malloc(rows * o * sizeof(float));
        g->w[l] = malloc(i * o * sizeof(float));
        g->dw[l] = malloc(i * o * sizeof(float));
        g->dx[l] = malloc(rows * i * sizeof(float));
        if (!g->y[l] || !g->dz[l] || !g->w[l] || !g->dw[l] || !g->dx[l]) {
            mlp_gemms_free(g);
            return -1;
        }
        bench_fill(g->w[l], i * o, seed + (unsigned)l);
        bench_fill(g->dz[l], rows * o, seed + 10 + (unsigned)l);
    }
    return 0;
}

/* One step's GEMMs on @p n rows of input @p x. */
static void mlp_gemms_step(const mlp_gemms *g, const float *x, size_t n)
{
    const size_t *width = g->width;
    const float *in = x;
    for (size_t l = 0; l < g->layers; l++) {
        bp__gemm_blas(0, 1, n, width[l + 1], width[l], 1.0f, in, width[l], g->w[l], width[l], 0.0f,
                      g->y[l], width[l + 1]);
        in = g->y[l];
    }
    for (size_t l = g->layers; l-- > 0;) {
        const size_t i = width[l], o = width[l + 1];
        const float *xl = l ? g->y[l - 1] : x;
        bp__gemm_blas(1, 0, o, i, n, 1.0f, g->dz[l], o, xl, i, 0.0f, g->dw[l], i);
        if (l) bp__gemm_blas(0, 0, n, i, o, 1.0f, g->dz[l], o, g->w[l], i, 0.0f, g->dx[l], i);
    }
}

typedef struct raw_gemms {
    const mlp_gemms *g;
    const float *x;
} raw_gemms;

/* The GEMMs of one training step of the same MLP, with the same shapes and transposes. */
static void run_raw_gemms(void *p)
{
    const raw_gemms *r = p;
    mlp_gemms_step(r->g, r->x, DG_BATCH);
}

static int case_dense_gemm_bound(const bench_opts *o, bench_json *out)
{
    const size_t n = DG_BATCH;
    dense_args d = {0};
    mlp_gemms g = {0};
    raw_gemms r = {&g, NULL};
    int rc = -1;
    float *x = malloc(n * dg_width[0] * sizeof *x), *y = malloc(n * dg_width[3] * sizeof *y);
    const int ok = x != NULL && y != NULL && mlp_gemms_alloc(&g, dg_width, DG_LAYERS, n, 10) == 0;
    double weights = 0, real_flops = 0;
    for (size_t l = 0; l < DG_LAYERS; l++) {
        const size_t i = dg_width[l], on = dg_width[l + 1];
        weights += (double)i * (double)on;
        real_flops += 2.0 * (double)n * (double)i * (double)on * (l ? 3.0 : 2.0);
    }
    if (!ok) {
        fprintf(stderr, "bp_bench: out of memory for dense-gemm-bound\n");
        goto done;
    }
    bench_fill(x, n * dg_width[0], 3);
    bench_fill(y, n * dg_width[3], 4);
    r.x = x;
    if (bp_net_create(&d.net, dg_width[0], 1) != BP_OK ||
        bp_net_add_dense(d.net, dg_width[1], BP_ACT_RELU) != BP_OK ||
        bp_net_add_dense(d.net, dg_width[2], BP_ACT_RELU) != BP_OK ||
        bp_net_add_dense(d.net, dg_width[3], BP_ACT_IDENTITY) != BP_OK ||
        bp_optimizer_create(&d.opt, BP_OPTIMIZER_SGD) != BP_OK ||
        bp_optimizer_set(d.opt, BP_OPT_LEARNING_RATE, 1e-4) != BP_OK) {
        fprintf(stderr, "bp_bench: dense-gemm-bound setup: %s\n", bp_last_error());
        goto done;
    }
    d.x = x, d.y = y, d.n = n;
    /* Interleave the two measurements so both see the same machine state. */
    double step_ns = 0, gemm_ns = 0;
    const int rounds = 3;
    double steps[3], gemms[3];
    for (int k = 0; k < rounds; k++) {
        steps[k] = bench_time_ns(run_train_step, &d, o->repeat, 0);
        gemms[k] = bench_time_ns(run_raw_gemms, &r, o->repeat, 0);
    }
    step_ns = bench_median(steps, rounds);
    gemm_ns = bench_median(gemms, rounds);
    if (d.status != BP_OK || step_ns < 0 || gemm_ns < 0) {
        fprintf(stderr, "bp_bench: dense-gemm-bound: %s\n", bp_last_error());
        goto done;
    }
    const double gflops = 6.0 * weights * (double)n / step_ns;
    const double sgemm_gflops = real_flops / gemm_ns;
    bench_json_field_str(out, "shape", "1024-4096-4096-1024");
    bench_json_field_int(out, "batch", (long long)n);
    bench_json_field_int(out, "repeat", o->repeat);
    bench_json_field_num(out, "step_ms", step_ns / 1e6);
    bench_json_field_num(out, "samples_per_s", (double)n * 1e9 / step_ns);
    bench_json_field_num(out, "gflops", gflops);
    bench_json_field_num(out, "sgemm_gflops", sgemm_gflops);
    bench_json_field_num(out, "ratio", gflops / sgemm_gflops);
    bench_json_field_num(out, "gemm_ms", gemm_ns / 1e6);
    bench_json_field_num(out, "time_ratio", gemm_ns / step_ns);
    rc = 0;
done:
    bp_optimizer_free(d.opt);
    bp_net_free(d.net);
    mlp_gemms_free(&g);
    free(x);
    free(y);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Cases: tanh-spiral, tanh-mlp8 -- tanh MLPs IN-64-64-64-1 trained full batch with Adam (MSE):
 * microseconds per bp_net_train_step. 2 inputs at 193 rows is a two-spiral-sized problem; 8
 * at 256 rows the second shape. Transcendental activations dominate these steps.
 * ----------------------------------------------------------------------------------------*/

static int tanh_mlp_case(const bench_opts *o, bench_json *out, size_t in, size_t n,
                         const char *shape)
{
    dense_args d = {0};
    int rc = -1;
    float *x = malloc(n * in * sizeof *x), *y = malloc(n * sizeof *y);
    if (x == NULL || y == NULL) {
        fprintf(stderr, "bp_bench: out of memory for %s\n", shape);
        goto done;
    }
    bench_fill(x, n * in, 5);
    bench_fill(y, n, 6);
    if (bp_net_create(&d.net, in, 1) != BP_OK ||
        bp_net_add_dense(d.net, 64, BP_ACT_TANH) != BP_OK ||
        bp_net_add_dense(d.net, 64, BP_ACT_TANH) != BP_OK ||
        bp_net_add_dense(d.net, 64, BP_ACT_TANH) != BP_OK ||
        bp_net_add_dense(d.net, 1, BP_ACT_IDENTITY) != BP_OK ||
        bp_optimizer_create(&d.opt, BP_OPTIMIZER_ADAM) != BP_OK ||
        bp_optimizer_set(d.opt, BP_OPT_LEARNING_RATE, 1e-3) != BP_OK) {
        fprintf(stderr, "bp_bench: %s setup: %s\n", shape, bp_last_error());
        goto done;
    }
    d.x = x, d.y = y, d.n = n;
    const double ns = bench_time_ns(run_train_step, &d, o->repeat, 20000000);
    if (d.status != BP_OK || ns < 0) {
        fprintf(stderr, "bp_bench: %s: %s\n", shape, bp_last_error());
        goto done;
    }
    bench_json_field_str(out, "shape", shape);
    bench_json_field_int(out, "batch", (long long)n);
    bench_json_field_int(out, "repeat", o->repeat);
    bench_json_field_num(out, "step_us", ns / 1e3);
    bench_json_field_num(out, "samples_per_s", (double)n * 1e9 / ns);
    rc = 0;
done:
    bp_optimizer_free(d.opt);
    bp_net_free(d.net);
    free(x);
    free(y);
    return rc;
}

static int case_tanh_spiral(const bench_opts *o, bench_json *out)
{
    return tanh_mlp_case(o, out, 2, 193, "2-64-64-64-1");
}

static int case_tanh_mlp8(const bench_opts *o, bench_json *out)
{
    return tanh_mlp_case(o, out, 8, 256, "8-64-64-64-1");
}

/* ------------------------------------------------------------------------------------------
 * Case: tiny-online -- 2-4-1 sigmoid net, batch 1, SGD, cycling over the XOR samples:
 * nanoseconds per bp_net_train_step (FANN-style online training).
 * ----------------------------------------------------------------------------------------*/

typedef struct online_args {
    bp_net *net;
    bp_optimizer *opt;
    const float *x, *y;
    size_t in, rows, next;
    int status;
} online_args;

enum { ONLINE_BURST = 1000 };

static void run_online(void *p)
{
    online_args *a = p;
    for (int k = 0; k < ONLINE_BURST; k++) {
        const size_t r = a->next;
        a->next = r + 1 == a->rows ? 0 : r + 1;
        const bp_status s =
            bp_net_train_step(a->net, a->opt, BP_LOSS_MSE, a->x + r * a->in, a->y + r, 1, NULL);
        if (s != BP_OK) a->status = s;
    }
}

static int online_case(const bench_opts *o, bench_json *out, size_t in, size_t hidden,
                       const float *x, const float *y, size_t rows, const char *shape)
{
    online_args a = {0};
    int rc = -1;
    if (bp_net_create(&a.net, in, 1) != BP_OK ||
        bp_net_add_dense(a.net, hidden, BP_ACT_SIGMOID) != BP_OK ||
        bp_net_add_dense(a.net, 1, BP_ACT_SIGMOID) != BP_OK ||
        bp_optimizer_create(&a.opt, BP_OPTIMIZER_SGD) != BP_OK ||
        bp_optimizer_set(a.opt, BP_OPT_LEARNING_RATE, 0.7) != BP_OK) {
        fprintf(stderr, "bp_bench: online setup: %s\n", bp_last_error());
        goto done;
    }
    a.x = x, a.y = y, a.in = in, a.rows = rows;
    const double ns = bench_time_ns(run_online, &a, o->repeat, 20000000) / ONLINE_BURST;
    if (a.status != BP_OK || ns < 0) {
        fprintf(stderr, "bp_bench: online: %s\n", bp_last_error());
        goto done;
    }
    bench_json_field_str(out, "shape", shape);
    bench_json_field_int(out, "batch", 1);
    bench_json_field_int(out, "repeat", o->repeat);
    bench_json_field_num(out, "ns_per_update", ns);
    bench_json_field_num(out, "samples_per_s", 1e9 / ns);
    rc = 0;
done:
    bp_optimizer_free(a.opt);
    bp_net_free(a.net);
    return rc;
}

static int case_tiny_online(const bench_opts *o, bench_json *out)
{
    static const float x[8] = {0, 0, 0, 1, 1, 0, 1, 1}, y[4] = {0, 1, 1, 0};
    return online_case(o, out, 2, 4, x, y, 4, "2-4-1");
}

static int case_small_online(const bench_opts *o, bench_json *out)
{
    /* census-house (FANN's example data set, 16 inputs, 1 output) when libfann-dev's examples
     * are installed, else random data of the same shape. */
    bp_dataset *ds = NULL;
    const char *data = "census-house";
    float *rx = NULL, *ry = NULL;
    const float *x, *y;
    size_t rows;
    if (bp_dataset_load_fann(&ds, o->census_path) == BP_OK && bp_dataset_input_size(ds) == 16 &&
        bp_dataset_output_size(ds) == 1) {
        rows = bp_dataset_size(ds);
        x = bp_dataset_inputs(ds), y = bp_dataset_targets(ds);
    } else {
        data = "random";
        rows = 11392;
        rx = malloc(rows * 16 * sizeof *rx), ry = malloc(rows * sizeof *ry);
        if (rx == NULL || ry == NULL) {
            free(rx), free(ry), bp_dataset_free(ds);
            fprintf(stderr, "bp_bench: out of memory for small-online\n");
            return -1;
        }
        bench_fill(rx, rows * 16, 5);
        bench_fill(ry, rows, 6);
        x = rx, y = ry;
    }
    if (o->samples < rows) rows = o->samples;
    bench_json_field_str(out, "data", data);
    const int rc = online_case(o, out, 16, 32, x, y, rows, "16-32-1");
    bp_dataset_free(ds);
    free(rx), free(ry);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Fashion-MNIST MLP 784-256-128-10 (ReLU, ReLU, softmax; sparse softmax-CE; Adam; batch 64):
 * the data (real when installed, else random of the same shape) and the net.
 * ----------------------------------------------------------------------------------------*/

enum { FM_IN = 784, FM_H1 = 256, FM_H2 = 128, FM_OUT = 10, FM_BATCH = 64, FM_LAYERS = 3 };
static const size_t fm_width[FM_LAYERS + 1] = {FM_IN, FM_H1, FM_H2, FM_OUT};

typedef struct fm_data {
    bp_dataset *train, *test;
    float *buf;           /* random data when the real set is missing (owns x and y) */
    const float *x, *y;   /* training inputs [n x 784], class indices [n] */
    const float *tx, *ty; /* test set, or NULL */
    size_t n, tn;
    const char *name;
} fm_data;

static void fm_free(fm_data *d)
{
    bp_dataset_free(d->train);
    bp_dataset_free(d->test);
    free(d->buf);
    memset(d, 0, sizeof *d);
}

static int fm_load(const bench_opts *o, fm_data *d)
{
    memset(d, 0, sizeof *d);
    char img[1024], lab[1024];
    const char *dir = o->fmnist_dir;
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte.gz", dir);
    if (bp_dataset_load_idx(&d->train, img, lab, 0) == BP_OK &&
        bp_dataset_input_size(d->train) == FM_IN) {
        d->name = "fashion-mnist";
        d->x = bp_dataset_inputs(d->train), d->y = bp_dataset_targets(d->train);
        d->n = bp_dataset_size(d->train);
        snprintf(img, sizeof img, "%s/t10k-images-idx3-ubyte.gz", dir);
        snprintf(lab, sizeof lab, "%s/t10k-labels-idx1-ubyte.gz", dir);
        if (bp_dataset_load_idx(&d->test, img, lab, 0) == BP_OK &&
            bp_dataset_input_size(d->test) == FM_IN) {
            d->tx = bp_dataset_inputs(d->test), d->ty = bp_dataset_targets(d->test);
            d->tn = bp_dataset_size(d->test);
        }
    } else {
        bp_dataset_free(d->train);
        d->train = NULL;
        d->name = "random";
        d->n = 60000;
        d->buf = malloc(d->n * (FM_IN + 1) * sizeof(float));
        if (d->buf == NULL) {
            fprintf(stderr, "bp_bench: out of memory for random Fashion-MNIST-shaped data\n");
            return -1;
        }
        float *x = d->buf, *y = d->buf + d->n * FM_IN;
        bench_fill(x, d->n * FM_IN, 7);
        for (size_t k = 0; k < d->n * FM_IN; k++)
            x[k] = 0.5f * (x[k] + 1.0f); /* [0, 1) */
        bench_fill(y, d->n, 8);
        for (size_t k = 0; k < d->n; k++)
            y[k] = (float)(int)(5.0f * (y[k] + 1.0f)); /* 0..9 */
        d->x = x, d->y = y;
    }
    if (o->samples < d->n) d->n = o->samples;
    if (o->samples < d->tn) d->tn = o->samples;
    return 0;
}

static int fm_net(bp_net **net, bp_optimizer **opt)
{
    *net = NULL, *opt = NULL;
    if (bp_net_create(net, FM_IN, 42) != BP_OK ||
        bp_net_add_dense(*net, FM_H1, BP_ACT_RELU) != BP_OK ||
        bp_net_add_dense(*net, FM_H2, BP_ACT_RELU) != BP_OK ||
        bp_net_add_dense(*net, FM_OUT, BP_ACT_SOFTMAX) != BP_OK ||
        bp_optimizer_create(opt, BP_OPTIMIZER_ADAM) != BP_OK) {
        fprintf(stderr, "bp_bench: Fashion-MNIST MLP setup: %s\n", bp_last_error());
        bp_net_free(*net), bp_optimizer_free(*opt);
        *net = NULL, *opt = NULL;
        return -1;
    }
    return 0;
}

/* Share of the test set classified correctly (argmax of the outputs), or -1. */
static double fm_accuracy(bp_net *net, const fm_data *d)
{
    if (d->tx == NULL || d->tn == 0) return -1.0;
    float *p = malloc(d->tn * FM_OUT * sizeof *p);
    if (p == NULL || bp_net_predict(net, d->tx, d->tn, p, d->tn * FM_OUT) != BP_OK) {
        free(p);
        return -1.0;
    }
    size_t hits = 0;
    for (size_t i = 0; i < d->tn; i++) {
        size_t best = 0;
        for (size_t j = 1; j < FM_OUT; j++)
            if (p[i * FM_OUT + j] > p[i * FM_OUT + best]) best = j;
        hits += (float)best == d->ty[i];
    }
    free(p);
    return (double)hits / (double)d->tn;
}

/* ------------------------------------------------------------------------------------------
 * Case: fmnist-mlp-epoch -- one epoch (shuffled batches of 64, the last one smaller) of
 * bp_net_train_step on the Fashion-MNIST MLP, the same work as one bp_net_fit epoch, against
 * the time the same epoch's GEMMs alone take (3 forward, 3 dW, 2 dX per batch, same shapes),
 * measured interleaved in the same run. Reports the test accuracy after the first epoch of a
 * fresh net (seed 42, shuffle seed 1): a fixed-seed check that optimisations keep accuracy.
 * ----------------------------------------------------------------------------------------*/

typedef struct fm_epoch {
    const fm_data *d;
    bp_net *net;
    bp_optimizer *opt;
    size_t *perm;
    float *bx, *by; /* gathered batch [64 x 784], [64] */
    mlp_gemms g;    /* the epoch's GEMMs alone */
    bp__rng rng;
    double loss_sum;
    int status;
} fm_epoch;

/* Fisher-Yates over the identity order, as bp_net_fit does each epoch. */
static void fm_shuffle(fm_epoch *e)
{
    const size_t n = e->d->n;
    for (size_t i = 0; i < n; i++)
        e->perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        const size_t j = (size_t)bp__rng_below(&e->rng, i);
        const size_t t = e->perm[i - 1];
        e->perm[i - 1] = e->perm[j];
        e->perm[j] = t;
    }
}

static void fm_train_epoch(void *p)
{
    fm_epoch *e = p;
    const fm_data *d = e->d;
    fm_shuffle(e);
    e->loss_sum = 0.0;
    for (size_t r = 0; r < d->n; r += FM_BATCH) {
        const size_t rows = d->n - r < FM_BATCH ? d->n - r : FM_BATCH;
        for (size_t i = 0; i < rows; i++) {
            const size_t src = e->perm[r + i];
            /* The row two ahead is prefetched, as bp_net_fit's gather does (bp__dataset_read) */
            if (i + 2 < rows)
                for (size_t b = 0; b < FM_IN * sizeof(float); b += 64)
                    __builtin_prefetch((const char *)(d->x + e->perm[r + i + 2] * FM_IN) + b);
            memcpy(e->bx + i * FM_IN, d->x + src * FM_IN, FM_IN * sizeof(float));
            e->by[i] = d->y[src];
        }
        float loss;
        const bp_status s =
            bp_net_train_step(e->net, e->opt, BP_LOSS_SPARSE_SOFTMAX_CE, e->bx, e->by, rows, &loss);
        if (s != BP_OK) {
            e->status = s;
            return;
        }
        e->loss_sum += (double)loss * (double)rows;
    }
}

/* The GEMMs of fm_train_epoch alone: per batch y = x W^T (3), dW = dz^T x (3), dx = dz W
 * (2; the first layer skips it), on the real input rows. */
static void fm_gemm_epoch(void *p)
{
    fm_epoch *e = p;
    const fm_data *d = e->d;
    for (size_t r = 0; r < d->n; r += FM_BATCH) {
        const size_t n = d->n - r < FM_BATCH ? d->n - r : FM_BATCH;
        mlp_gemms_step(&e->g, d->x + r * FM_IN, n);
    }
}

static double fm_time_once(void (*fn)(void *), void *arg)
{
    const uint64_t t0 = bench_now_ns();
    fn(arg);
    return (double)(bench_now_ns() - t0);
}

static int case_fmnist_mlp_epoch(const bench_opts *o, bench_json *out)
{
    fm_data d;
    fm_epoch e;
    memset(&e, 0, sizeof e);
    if (fm_load(o, &d) != 0) return -1;
    int rc = -1;
    e.d = &d;
    e.perm = malloc(d.n * sizeof *e.perm);
    e.bx = malloc(FM_BATCH * FM_IN * sizeof(float));
    e.by = malloc(FM_BATCH * sizeof(float));
    const int ok = e.perm != NULL && e.bx != NULL && e.by != NULL &&
                   mlp_gemms_alloc(&e.g, fm_width, FM_LAYERS, FM_BATCH, 30) == 0;
    if (!ok) {
        fprintf(stderr, "bp_bench: out of memory for fmnist-mlp-epoch\n");
        goto done;
    }
    if (fm_net(&e.net, &e.opt) != 0) goto done;
    bp__rng_seed(&e.rng, 1);

    /* Round 0: the first epoch of the fresh net (timed too, but also the accuracy check);
     * then --repeat interleaved rounds of (training epoch, GEMM-only epoch). */
    const int rounds = o->repeat;
    double *t_epoch = malloc((size_t)rounds * sizeof(double));
    double *t_gemm = malloc((size_t)rounds * sizeof(double));
    if (t_epoch == NULL || t_gemm == NULL) {
        free(t_epoch), free(t_gemm);
        fprintf(stderr, "bp_bench: out of memory for fmnist-mlp-epoch\n");
        goto done;
    }
    const double first_ns = fm_time_once(fm_train_epoch, &e);
    const double first_loss = e.loss_sum / (double)d.n;
    const double acc = e.status == BP_OK ? fm_accuracy(e.net, &d) : -1.0;
    fm_gemm_epoch(&e); /* warm-up */
    for (int k = 0; k < rounds && e.status == BP_OK; k++) {
        t_epoch[k] = fm_time_once(fm_train_epoch, &e);
        t_gemm[k] = fm_time_once(fm_gemm_epoch, &e);
    }
    if (e.status != BP_OK) {
        free(t_epoch), free(t_gemm);
        fprintf(stderr, "bp_bench: fmnist-mlp-epoch: %s\n", bp_last_error());
        goto done;
    }
    const double epoch_ns = bench_median(t_epoch, (size_t)rounds);
    const double gemm_ns = bench_median(t_gemm, (size_t)rounds);
    free(t_epoch), free(t_gemm);
    bench_json_field_str(out, "shape", "784-256-128-10");
    bench_json_field_str(out, "data", d.name);
    bench_json_field_int(out, "samples", (long long)d.n);
    bench_json_field_int(out, "batch", FM_BATCH);
    bench_json_field_int(out, "repeat", rounds);
    bench_json_field_num(out, "epoch_s", epoch_ns / 1e9);
    bench_json_field_num(out, "gemm_only_s", gemm_ns / 1e9);
    bench_json_field_num(out, "epoch_over_gemm", epoch_ns / gemm_ns);
    bench_json_field_num(out, "samples_per_s", (double)d.n * 1e9 / epoch_ns);
    bench_json_field_num(out, "first_epoch_s", first_ns / 1e9);
    bench_json_field_num(out, "first_epoch_loss", first_loss);
    bench_json_key(out, "test_accuracy");
    acc >= 0.0 ? bench_json_num(out, acc) : bench_json_null(out);
    rc = 0;
done:
    bp_optimizer_free(e.opt);
    bp_net_free(e.net);
    mlp_gemms_free(&e.g);
    free(e.perm), free(e.bx), free(e.by);
    fm_free(&d);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Case: mapped-epoch -- one bp_net_fit epoch (shuffled, batch 64) of the Fashion-MNIST MLP
 * from a memory-mapped uint8 data-set file (bp_dataset_save_binary, bp_dataset_open_mapped)
 * against the same epoch from the rows in memory, interleaved in one run, fresh nets of the
 * same seed, alternating which goes first: mapped_over_memory is the ratio of the medians of
 * the wall-clock times (issue 19's floor: <= 1.05), mapped_over_memory_cpu that of the
 * process's CPU times (the work itself, less exposed to a loaded machine's scheduler),
 * mapped_over_memory_cpu_paired the median of each round's CPU-time ratio, and the weights
 * after each pair must be bit-identical. first_mapped_epoch_s: an epoch from a
 * freshly opened mapping, which also checks every block's CRC-32.
 * ----------------------------------------------------------------------------------------*/

typedef struct mapped_run {
    const bp_dataset *ds;
    bp_net *net;
    int status;
} mapped_run;

static void mapped_fit(void *p)
{
    mapped_run *r = p;
    bp_optimizer *opt = NULL;
    r->status = bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM);
    if (r->status == BP_OK) r->status = bp_net_set(r->net, BP_FIT_EPOCHS, 1);
    if (r->status == BP_OK) r->status = bp_net_set(r->net, BP_FIT_BATCH_SIZE, FM_BATCH);
    if (r->status == BP_OK)
        r->status = bp_net_fit(r->net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, r->ds, NULL);
    bp_optimizer_free(opt);
}

/* CPU time of the process in ns: on a shared, loaded machine the wall clock of an epoch
 * measures the scheduler as much as the work. */
static uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Time one epoch of a fresh net (seed 42) on @p ds, wall clock (returned) and CPU time
 * (*cpu_ns); its weights stay in *net. */
static double mapped_epoch(const bp_dataset *ds, bp_net **net, int *status, double *cpu_ns)
{
    bp_optimizer *unused = NULL;
    if (fm_net(net, &unused) != 0) {
        *status = BP_ERR_NOMEM;
        return 0.0;
    }
    bp_optimizer_free(unused);
    mapped_run r = {ds, *net, BP_OK};
    const uint64_t c0 = cpu_now_ns();
    const double ns = fm_time_once(mapped_fit, &r);
    if (cpu_ns != NULL) *cpu_ns = (double)(cpu_now_ns() - c0);
    *status = r.status;
    return ns;
}

static int same_weights(bp_net *a, bp_net *b)
{
    size_t na, nb;
    const float *pa = bp_net_params(a, &na), *pb = bp_net_params(b, &nb);
    return na == nb && memcmp(pa, pb, na * sizeof(float)) == 0;
}

static int case_mapped_epoch(const bench_opts *o, bench_json *out)
{
    fm_data d;
    if (fm_load(o, &d) != 0) return -1;
    int rc = -1;
    bp_dataset *mem = NULL, *mapped = NULL, *fresh = NULL;
    char path[1024];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/bp_bench_mapped_%ld.bpds",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", (long)getpid());
    if (d.train == NULL) /* random data: quantise to q / 255 so that it codes as uint8 */
        for (size_t k = 0; k < d.n * FM_IN; k++)
            d.buf[k] = (float)(int)(d.buf[k] * 255.0f) / 255.0f;
    bp_status s = d.train != NULL && d.n == bp_dataset_size(d.train)
                      ? bp_dataset_subset(&mem, d.train, 0, d.n)
                      : bp_dataset_create(&mem, d.x, d.y, d.n, FM_IN, 1);
    if (s == BP_OK) s = bp_dataset_save_binary(mem, path, BP_DATA_UINT8);
    if (s == BP_OK) s = bp_dataset_open_mapped(&fresh, path);
    if (s == BP_OK) s = bp_dataset_open_mapped(&mapped, path);
    if (s != BP_OK) {
        fprintf(stderr, "bp_bench: mapped-epoch: %s\n", bp_last_error());
        goto done;
    }
    /* A first epoch from the fresh mapping (CRC checks included), then warm-up of both. */
    bp_net *a = NULL, *b = NULL;
    int st1, st2;
    const double first_ns = mapped_epoch(fresh, &a, &st1, NULL);
    bp_net_free(a);
    (void)mapped_epoch(mapped, &a, &st2, NULL);
    bp_net_free(a);
    const int rounds = o->repeat;
    double *tm = malloc((size_t)rounds * 4 * sizeof(double));
    double *tp = tm != NULL ? tm + rounds : NULL, *cm = tm + 2 * rounds, *cp = tm + 3 * rounds;
    int identical = 1;
    for (int k = 0; tm != NULL && k < rounds && st1 == BP_OK && st2 == BP_OK; k++) {
        /* Alternate which goes first (ABBA), so that an order effect cancels. */
        if (k % 2 == 0) {
            tm[k] = mapped_epoch(mem, &a, &st1, &cm[k]);
            tp[k] = mapped_epoch(mapped, &b, &st2, &cp[k]);
        } else {
            tp[k] = mapped_epoch(mapped, &b, &st2, &cp[k]);
            tm[k] = mapped_epoch(mem, &a, &st1, &cm[k]);
        }
        if (st1 == BP_OK && st2 == BP_OK) identical &= same_weights(a, b);
        bp_net_free(a);
        bp_net_free(b);
    }
    if (tm == NULL || st1 != BP_OK || st2 != BP_OK) {
        fprintf(stderr, "bp_bench: mapped-epoch: %s\n",
                tm == NULL ? "out of memory" : bp_last_error());
        free(tm);
        goto done;
    }
    const double mem_ns = bench_median(tm, (size_t)rounds);
    const double map_ns = bench_median(tp, (size_t)rounds);
    for (int k = 0; k < rounds; k++) /* each round's own ratio: paired, so load cancels */
        tp[k] = cp[k] / cm[k];
    const double pair_cpu = bench_median(tp, (size_t)rounds);
    const double mem_cpu = bench_median(cm, (size_t)rounds); /* (sorts in place) */
    const double map_cpu = bench_median(cp, (size_t)rounds);
    free(tm);
    bench_json_field_str(out, "shape", "784-256-128-10");
    bench_json_field_str(out, "data", d.name);
    bench_json_field_int(out, "samples", (long long)d.n);
    bench_json_field_int(out, "batch", FM_BATCH);
    bench_json_field_int(out, "repeat", rounds);
    bench_json_field_num(out, "memory_epoch_s", mem_ns / 1e9);
    bench_json_field_num(out, "mapped_epoch_s", map_ns / 1e9);
    bench_json_field_num(out, "mapped_over_memory", map_ns / mem_ns);
    bench_json_field_num(out, "memory_epoch_cpu_s", mem_cpu / 1e9);
    bench_json_field_num(out, "mapped_epoch_cpu_s", map_cpu / 1e9);
    bench_json_field_num(out, "mapped_over_memory_cpu", map_cpu / mem_cpu);
    bench_json_field_num(out, "mapped_over_memory_cpu_paired", pair_cpu);
    bench_json_field_num(out, "floor", 1.05);
    bench_json_field_num(out, "first_mapped_epoch_s", first_ns / 1e9);
    bench_json_field_int(out, "bit_identical", identical);
    rc = identical ? 0 : -1;
    if (!identical) fprintf(stderr, "bp_bench: mapped-epoch: weights differ from memory's\n");
done:
    bp_dataset_free(mem);
    bp_dataset_free(mapped);
    bp_dataset_free(fresh);
    remove(path);
    fm_free(&d);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Case: inference-latency -- bp_net_predict on the Fashion-MNIST MLP: one sample, and a
 * batch of 256.
 * ----------------------------------------------------------------------------------------*/

typedef struct predict_args {
    bp_net *net;
    const float *x;
    float *y;
    size_t n, rows, next;
    int status;
} predict_args;

static void run_predict(void *p)
{
    predict_args *a = p;
    const size_t r = a->next;
    a->next = r + a->n + a->n > a->rows ? 0 : r + a->n;
    const bp_status s = bp_net_predict(a->net, a->x + r * FM_IN, a->n, a->y, a->n * FM_OUT);
    if (s != BP_OK) a->status = s;
}

static int case_inference_latency(const bench_opts *o, bench_json *out)
{
    fm_data d;
    if (fm_load(o, &d) != 0) return -1;
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    float *y = malloc(256 * FM_OUT * sizeof *y);
    int rc = -1;
    if (y == NULL || d.n < 256 || fm_net(&net, &opt) != 0) {
        fprintf(stderr, "bp_bench: inference-latency setup failed\n");
        goto done;
    }
    predict_args one = {net, d.x, y, 1, d.n, 0, BP_OK};
    predict_args batch = {net, d.x, y, 256, d.n, 0, BP_OK};
    const double one_ns = bench_time_ns(run_predict, &one, o->repeat, 20000000);
    const double batch_ns = bench_time_ns(run_predict, &batch, o->repeat, 20000000);
    if (one.status != BP_OK || batch.status != BP_OK || one_ns < 0 || batch_ns < 0) {
        fprintf(stderr, "bp_bench: inference-latency: %s\n", bp_last_error());
        goto done;
    }
    bench_json_field_str(out, "shape", "784-256-128-10");
    bench_json_field_str(out, "data", d.name);
    bench_json_field_int(out, "repeat", o->repeat);
    bench_json_field_num(out, "single_ns", one_ns);
    bench_json_field_num(out, "batch256_ns", batch_ns);
    bench_json_field_num(out, "samples_per_s", 256.0 * 1e9 / batch_ns);
    bench_json_field_num(out, "single_samples_per_s", 1e9 / one_ns);
    const double w = 784.0 * 256 + 256.0 * 128 + 128.0 * 10;
    bench_json_field_num(out, "gflops", 2.0 * w * 256.0 / batch_ns);
    rc = 0;
done:
    bp_optimizer_free(opt);
    bp_net_free(net);
    free(y);
    fm_free(&d);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Case: cnn-epoch -- training time of a two-convolution Fashion-MNIST CNN (recipe A' of
 * docs/performance.md: conv 32 3x3 - BN - ReLU - pool - dropout - conv 64 3x3 - BN - ReLU -
 * pool - dropout - dense 128 - dropout - dense 10) on synthetic 28x28 images, batches of 128:
 * 8 * --repeat batches are timed and scaled to an epoch of 60000 images. From the profiled
 * build of the convolution layer (BP_PROFILE, see bench/CMakeLists.txt): the convolution
 * layers' share of the time, and within them the shares of sgemm and of im2col/col2im.
 * ----------------------------------------------------------------------------------------*/

enum { CNN_BATCH = 128, CNN_EPOCH = 60000 };

/* The GEMMs of one training step of a Fashion-MNIST CNN alone (this case's net and
 * cnn-example-epoch's), at the shapes the layers use with one chunk per batch
 * (layer_conv2d.c): per convolution (F filters, K = C*3*3, P output pixels) forward
 * [F x K] [K x n*P], dW [F x n*P] [n*P x K]^T and, for all but the first, dX [K x F]^T
 * [F x n*P]; then the dense layers (mlp_gemms, plus the first one's dX). Random data. */
enum { CNN_MAX_CONVS = 4 };
#define CNN_CONVS(shape) ((int)(sizeof(shape) / sizeof((shape)[0])))
typedef struct cnn_gemms {
    const size_t (*shape)[3]; /* F, K, P of each convolution */
    int convs;
    const size_t *dense_width; /* [3]: flattened input, hidden, classes */
    float *w[CNN_MAX_CONVS], *cols[CNN_MAX_CONVS], *t[CNN_MAX_CONVS], *dw[CNN_MAX_CONVS];
    float *dcols, *flat;
    mlp_gemms dense;
} cnn_gemms;

static const size_t cnn_conv_shape[2][3] = {{32, 9, 26 * 26}, {64, 288, 11 * 11}};
static const size_t cnn_dense_width[3] = {1600, 128, 10};

static void cnn_gemms_free(cnn_gemms *g)
{
    for (int c = 0; c < CNN_MAX_CONVS; c++)
        free(g->w[c]), free(g->cols[c]), free(g->t[c]), free(g->dw[c]);
    free(g->dcols);
    free(g->flat);
    mlp_gemms_free(&g->dense);
    memset(g, 0, sizeof *g);
}

static int cnn_gemms_alloc(cnn_gemms *g, const size_t (*shape)[3], int convs,
                           const size_t *dense_width)
{
    memset(g, 0, sizeof *g);
    g->shape = shape;
    g->convs = convs;
    g->dense_width = dense_width;
    const size_t n = CNN_BATCH, flat = dense_width[0];
    size_t most = 0; /* the largest dX product, K*P */
    int ok = 1;
    for (int c = 0; c < convs && ok; c++) {
        const size_t F = shape[c][0], K = shape[c][1], P = shape[c][2];
        g->w[c] = malloc(F * K * sizeof(float));
        g->dw[c] = malloc(F * K * sizeof(float));
        g->cols[c] = malloc(K * n * P * sizeof(float));
        g->t[c] = malloc(F * n * P * sizeof(float));
        ok = g->w[c] && g->dw[c] && g->cols[c] && g->t[c];
        if (ok) {
            bench_fill(g->w[c], F * K, 40 + (unsigned)c);
            bench_fill(g->cols[c], K * n * P, 44 + (unsigned)c);
            bench_fill(g->t[c], F * n * P, 48 + (unsigned)c);
        }
        if (c > 0 && K * P > most) most = K * P;
    }
    g->dcols = ok ? malloc(most * n * sizeof(float)) : NULL;
    g->flat = ok ? malloc(n * flat * sizeof(float)) : NULL;
    ok = ok && g->dcols && g->flat && mlp_gemms_alloc(&g->dense, dense_width, 2, n, 50) == 0;
    if (!ok) {
        cnn_gemms_free(g);
        return -1;
    }
    bench_fill(g->flat, n * flat, 53);
    return 0;
}

static void run_cnn_gemms(void *p)
{
    const cnn_gemms *g = p;
    const size_t n = CNN_BATCH, flat = g->dense_width[0], hidden = g->dense_width[1];
    for (int c = 0; c < g->convs; c++) {
        const size_t F = g->shape[c][0], K = g->shape[c][1], NP = n * g->shape[c][2];
        bp__gemm_blas(0, 0, F, NP, K, 1.0f, g->w[c], K, g->cols[c], NP, 1.0f, g->t[c], NP);
        bp__gemm_blas(0, 1, F, K, NP, 1.0f, g->t[c], NP, g->cols[c], NP, 0.0f, g->dw[c], K);
        if (c > 0) bp__gemm_blas(1, 0, K, NP, F, 1.0f, g->w[c], K, g->t[c], NP, 0.0f, g->dcols, NP);
    }
    mlp_gemms_step(&g->dense, g->flat, n);
    /* the first dense layer's dX, which mlp_gemms_step leaves out (the convolutions need it) */
    bp__gemm_blas(0, 0, n, flat, hidden, 1.0f, g->dense.dz[0], hidden, g->dense.w[0], flat, 0.0f,
                  g->dense.dx[0], flat);
}

/* The Fashion-MNIST CNNs: two blocks of @p convs x (conv 3x3 with @p pad - BN - ReLU), max
 * pool 2 and dropout 0.25 each (32, then 64 filters), then dense 128 ReLU, dropout @p drop
 * and dense 10 softmax. cnn-epoch's net: padding 0, one conv per block, dropout 0.5;
 * cnn-example-epoch's (docs/examples/fashion_mnist_cnn): padding 1, two per block, 0.4. */
static bp_status cnn_build(bp_net **out, size_t pad, int convs, double drop)
{
    bp_net *net;
    BP_CHECK(bp_net_create_image(&net, 1, 28, 28, 1));
    bp_status s = BP_OK;
    for (int block = 0; block < 2; block++) {
        const size_t f = block == 0 ? 32 : 64;
        for (int k = 0; k < convs; k++) {
            if (s == BP_OK) s = bp_net_add_conv2d(net, f, 3, 3, 1, pad, BP_ACT_IDENTITY);
            if (s == BP_OK) s = bp_net_add_batchnorm(net);
            if (s == BP_OK) s = bp_net_add_activation(net, BP_ACT_RELU);
        }
        if (s == BP_OK) s = bp_net_add_maxpool2d(net, 2, 2);
        if (s == BP_OK) s = bp_net_add_dropout(net, 0.25);
    }
    if (s == BP_OK) s = bp_net_add_flatten(net);
    if (s == BP_OK) s = bp_net_add_dense(net, 128, BP_ACT_RELU);
    if (s == BP_OK) s = bp_net_add_dropout(net, drop);
    if (s == BP_OK) s = bp_net_add_dense(net, 10, BP_ACT_SOFTMAX);
    if (s != BP_OK) {
        bp_net_free(net);
        return s;
    }
    *out = net;
    return BP_OK;
}

static int case_cnn_epoch(const bench_opts *o, bench_json *out)
{
    const size_t batches = 8 * (size_t)o->repeat, pool = 16; /* distinct batches cycled */
    float *x = malloc(pool * CNN_BATCH * 784 * sizeof *x),
          *y = malloc(pool * CNN_BATCH * sizeof *y);
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    cnn_gemms g;
    memset(&g, 0, sizeof g);
    int rc = -1;
    if (x == NULL || y == NULL ||
        cnn_gemms_alloc(&g, cnn_conv_shape, CNN_CONVS(cnn_conv_shape), cnn_dense_width) != 0 ||
        cnn_build(&net, 0, 1, 0.5) != BP_OK ||
        bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM) != BP_OK) {
        fprintf(stderr, "bp_bench: cnn-epoch: %s\n", bp_last_error());
        goto done;
    }
    bench_fill(x, pool * CNN_BATCH * 784, 3);
    for (size_t k = 0; k < pool * CNN_BATCH * 784; k++)
        x[k] = 0.5f + 0.5f * x[k];
    for (size_t k = 0; k < pool * CNN_BATCH; k++)
        y[k] = (float)(k % 10);
    /* warm-up: plans the workspace and binds the optimizer */
    if (bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, CNN_BATCH, NULL) != BP_OK)
        goto fail;
    memset(bp__conv_prof_ns, 0, sizeof bp__conv_prof_ns);
    const uint64_t t0 = bench_now_ns();
    for (size_t b = 0; b < batches; b++) {
        const size_t at = b % pool;
        if (bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x + at * CNN_BATCH * 784,
                              y + at * CNN_BATCH, CNN_BATCH, NULL) != BP_OK)
            goto fail;
    }
    const double ns = (double)(bench_now_ns() - t0);
    const double conv = bp__conv_prof_ns[BP__PROF_TOTAL];
    const double gemm_ns = bench_time_ns(run_cnn_gemms, &g, o->repeat, 0);
    const double per_epoch = (double)((CNN_EPOCH + CNN_BATCH - 1) / CNN_BATCH);
    bench_json_field_int(out, "batch", CNN_BATCH);
    bench_json_field_int(out, "batches", (long long)batches);
    bench_json_field_num(out, "batch_ms", ns / (double)batches * 1e-6);
    bench_json_field_num(out, "epoch_s", ns / (double)batches * per_epoch * 1e-9);
    bench_json_field_num(out, "conv_share", conv / ns);
    bench_json_field_num(out, "conv_sgemm_share", bp__conv_prof_ns[BP__PROF_GEMM] / conv);
    bench_json_field_num(out, "conv_im2col_share", bp__conv_prof_ns[BP__PROF_COLS] / conv);
    bench_json_field_num(out, "gemm_only_s", gemm_ns * per_epoch * 1e-9);
    bench_json_field_num(out, "epoch_over_gemm", ns / (double)batches / gemm_ns);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bp_bench: cnn-epoch: %s\n", bp_net_last_error(net));
done:
    bp_optimizer_free(opt);
    bp_net_free(net);
    cnn_gemms_free(&g);
    free(x);
    free(y);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Case: cnn-example-epoch -- the net of docs/examples/fashion_mnist_cnn exactly ([1x28x28] ->
 * 2 x (conv 32 3x3 pad 1 - BN - ReLU) - max pool 2 - dropout 0.25 - 2 x (conv 64 3x3 pad 1 -
 * BN - ReLU) - max pool 2 - dropout 0.25 - dense 128 ReLU - dropout 0.4 - dense 10 softmax),
 * Adam, batches of 128 of synthetic 28x28 images. --repeat rounds, each timing some training
 * steps then the same step's GEMMs alone once (interleaved, so both see the same machine);
 * the timed batches are 8 per round, or --samples / 128 in all when --samples is given.
 * epoch_s: the median batch time scaled to 60000 images; gemm_only_s: the median GEMM-only
 * time likewise; epoch_over_gemm: their ratio.
 *
 * The GEMMs alone: cnn_gemms (above) at this net's shapes, four convolutions with P = 28*28
 * or 14*14 and the dense layers 3136-128-10.
 * ----------------------------------------------------------------------------------------*/

static const size_t cnnx_conv_shape[4][3] = {
    {32, 9, 784}, {32, 288, 784}, {64, 288, 196}, {64, 576, 196}}; /* F, K, P */
static const size_t cnnx_dense_width[3] = {3136, 128, 10};

/* The example's network (docs/examples/fashion_mnist_cnn.c, build()), seed 1. */
static int case_cnn_example_epoch(const bench_opts *o, bench_json *out)
{
    const size_t pool = 16; /* distinct batches cycled */
    const size_t rounds = (size_t)o->repeat;
    size_t total = o->samples != (size_t)-1 ? o->samples / CNN_BATCH : 8 * rounds;
    if (total < rounds) total = rounds;
    float *x = malloc(pool * CNN_BATCH * 784 * sizeof *x),
          *y = malloc(pool * CNN_BATCH * sizeof *y);
    double *step = malloc(rounds * sizeof *step), *gemm = malloc(rounds * sizeof *gemm);
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    cnn_gemms g;
    memset(&g, 0, sizeof g);
    int rc = -1;
    if (x == NULL || y == NULL || step == NULL || gemm == NULL ||
        cnn_gemms_alloc(&g, cnnx_conv_shape, CNN_CONVS(cnnx_conv_shape), cnnx_dense_width) != 0 ||
        cnn_build(&net, 1, 2, 0.4) != BP_OK ||
        bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM) != BP_OK) {
        fprintf(stderr, "bp_bench: cnn-example-epoch: %s\n", bp_last_error());
        goto done;
    }
    bench_fill(x, pool * CNN_BATCH * 784, 5);
    for (size_t k = 0; k < pool * CNN_BATCH * 784; k++)
        x[k] = 0.5f + 0.5f * x[k];
    for (size_t k = 0; k < pool * CNN_BATCH; k++)
        y[k] = (float)(k % 10);
    /* warm-up: plans the workspace and binds the optimizer; the GEMMs' first touch */
    if (bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, CNN_BATCH, NULL) != BP_OK)
        goto fail;
    run_cnn_gemms(&g);
    size_t b = 0;
    for (size_t r = 0; r < rounds; r++) {
        const size_t here = total / rounds + (r < total % rounds);
        const uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < here; i++, b++) {
            const size_t at = b % pool;
            if (bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x + at * CNN_BATCH * 784,
                                  y + at * CNN_BATCH, CNN_BATCH, NULL) != BP_OK)
                goto fail;
        }
        step[r] = (double)(bench_now_ns() - t0) / (double)here;
        const uint64_t t1 = bench_now_ns();
        run_cnn_gemms(&g);
        gemm[r] = (double)(bench_now_ns() - t1);
    }
    const double step_ns = bench_median(step, rounds), gemm_ns = bench_median(gemm, rounds);
    const double per_epoch = (double)((CNN_EPOCH + CNN_BATCH - 1) / CNN_BATCH);
    bench_json_field_int(out, "batch", CNN_BATCH);
    bench_json_field_int(out, "batches", (long long)total);
    bench_json_field_num(out, "batch_ms", step_ns * 1e-6);
    bench_json_field_num(out, "epoch_s", step_ns * per_epoch * 1e-9);
    bench_json_field_num(out, "gemm_only_s", gemm_ns * per_epoch * 1e-9);
    bench_json_field_num(out, "epoch_over_gemm", step_ns / gemm_ns);
    bench_json_field_num(out, "samples_per_s", (double)CNN_BATCH * 1e9 / step_ns);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bp_bench: cnn-example-epoch: %s\n", bp_net_last_error(net));
done:
    bp_optimizer_free(opt);
    bp_net_free(net);
    cnn_gemms_free(&g);
    free(x);
    free(y);
    free(step);
    free(gemm);
    return rc;
}

#ifdef BP_BENCH_SEQUENCE /* the header declares the sequence layers (bench/CMakeLists.txt) */
/* ------------------------------------------------------------------------------------------
 * Case: lstm-charlm -- the character language model of issue #14's floors (docs/sequences.md,
 * docs/examples/char_lm.c, bench/charlm_torch.py): token ids -> embedding 64 -> LSTM 256
 * (every step) -> dense softmax over a 114-token vocabulary per step; T = 64, batches of 32
 * windows, sparse softmax cross-entropy, Adam 2e-3, gradient-norm clipping at 5. Random
 * token ids (the speed does not depend on the text). tokens_per_s = 32 * 64 / the median
 * update time. gemm_only: the same update's GEMMs alone on random buffers (the input
 * projection of all steps, the 64 recurrent products, the output layer; backward: their
 * gradient products), the bound the layers' other work adds to (update_over_gemm).
 * ----------------------------------------------------------------------------------------*/

enum { CLM_T = 64, CLM_N = 32, CLM_E = 64, CLM_H = 256, CLM_V = 114, CLM_POOL = 8 };

typedef struct clm_args {
    bp_net *net;
    bp_optimizer *opt;
    const float *x, *y; /* CLM_POOL batches of [CLM_N x CLM_T] */
    size_t next;
    int status;
} clm_args;

static void run_clm_update(void *p)
{
    clm_args *a = p;
    const size_t at = a->next++ % CLM_POOL * CLM_N * CLM_T;
    const bp_status s = bp_net_train_step(a->net, a->opt, BP_LOSS_SPARSE_SOFTMAX_CE, a->x + at,
                                          a->y + at, CLM_N, NULL);
    if (s != BP_OK) a->status = s;
}

/* The GEMMs of one update, rows batch-major (row n*T + t) like the net's sequence rows. */
enum {
    CLM_X,
    CLM_WIH,
    CLM_WHH,
    CLM_WD,
    CLM_P,
    CLM_HS,
    CLM_LOGITS,
    CLM_DLOGITS,
    CLM_DWD,
    CLM_DH,
    CLM_DZ,
    CLM_DWHH,
    CLM_DWIH,
    CLM_DX,
    CLM_BUFS
};

typedef struct clm_gemms {
    float *b[CLM_BUFS];
} clm_gemms;

static void clm_gemms_free(clm_gemms *g)
{
    for (size_t i = 0; i < CLM_BUFS; i++)
        free(g->b[i]);
    memset(g, 0, sizeof *g);
}

static int clm_gemms_alloc(clm_gemms *g)
{
    const size_t r = CLM_N * CLM_T, G = 4 * CLM_H;
    const size_t sizes[CLM_BUFS] = {r * CLM_E, G * CLM_E, G * CLM_H, CLM_V * CLM_H, r * G,
                                    r * CLM_H, r * CLM_V, r * CLM_V, CLM_V * CLM_H, r * CLM_H,
                                    r * G,     G * CLM_H, G * CLM_E, r * CLM_E};
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < CLM_BUFS; i++) {
        if ((g->b[i] = malloc(sizes[i] * sizeof(float))) == NULL) {
            clm_gemms_free(g);
            return -1;
        }
        bench_fill(g->b[i], sizes[i], 40 + (unsigned)i);
    }
    return 0;
}

static void run_clm_gemms(void *p)
{
    float *const *b = ((const clm_gemms *)p)->b;
    const size_t T = CLM_T, N = CLM_N, E = CLM_E, H = CLM_H, V = CLM_V, G = 4 * CLM_H, R = N * T;
    /* forward: P = X W_ih^T for all steps, then per step P_t += h_{t-1} W_hh^T; logits */
    bp__gemm_blas(0, 1, R, G, E, 1.0f, b[CLM_X], E, b[CLM_WIH], E, 0.0f, b[CLM_P], G);
    for (size_t t = 1; t < T; t++)
        bp__gemm_blas(0, 1, N, G, H, 1.0f, b[CLM_HS] + (t - 1) * H, T * H, b[CLM_WHH], H, 1.0f,
                      b[CLM_P] + t * G, T * G);
    bp__gemm_blas(0, 1, R, V, H, 1.0f, b[CLM_HS], H, b[CLM_WD], H, 0.0f, b[CLM_LOGITS], V);
    /* backward: output layer, per step dh_{t-1} += dz_t W_hh, then the weight gradients */
    bp__gemm_blas(1, 0, V, H, R, 1.0f, b[CLM_DLOGITS], V, b[CLM_HS], H, 0.0f, b[CLM_DWD], H);
    bp__gemm_blas(0, 0, R, H, V, 1.0f, b[CLM_DLOGITS], V, b[CLM_WD], H, 0.0f, b[CLM_DH], H);
    for (size_t t = T - 1; t >= 1; t--)
        bp__gemm_blas(0, 0, N, H, G, 1.0f, b[CLM_DZ] + t * G, T * G, b[CLM_WHH], H, 1.0f,
                      b[CLM_DH] + (t - 1) * H, T * H);
    bp__gemm_blas(1, 0, G, H, R, 1.0f, b[CLM_DZ], G, b[CLM_HS], H, 0.0f, b[CLM_DWHH], H);
    bp__gemm_blas(1, 0, G, E, R, 1.0f, b[CLM_DZ], G, b[CLM_X], E, 0.0f, b[CLM_DWIH], E);
    bp__gemm_blas(0, 0, R, E, G, 1.0f, b[CLM_DZ], G, b[CLM_WIH], E, 0.0f, b[CLM_DX], E);
}

static int case_lstm_charlm(const bench_opts *o, bench_json *out)
{
    const size_t rows = CLM_POOL * CLM_N * CLM_T;
    float *ids = malloc(rows * sizeof *ids), *next = malloc(rows * sizeof *next);
    clm_args a = {0};
    clm_gemms g;
    memset(&g, 0, sizeof g);
    int rc = -1;
    if (ids == NULL || next == NULL || clm_gemms_alloc(&g) != 0) {
        fprintf(stderr, "bp_bench: lstm-charlm: out of memory\n");
        goto done;
    }
    bench_fill(ids, rows, 41);
    for (size_t i = 0; i < rows; i++) /* [-1, 1) -> ids in [0, V) */
        ids[i] = (float)(size_t)((ids[i] + 1.0f) * 0.5f * (CLM_V - 1) + 0.5f);
    for (size_t i = 0; i < rows; i++) /* the next token of each window; wraps at the end */
        next[i] = (i + 1) % CLM_T != 0 ? ids[i + 1] : ids[i + 1 - CLM_T];
    if (bp_net_create_sequence(&a.net, CLM_T, 1, 1) != BP_OK ||
        bp_net_add_embedding(a.net, CLM_V, CLM_E) != BP_OK ||
        bp_net_add_lstm(a.net, CLM_H, 0) != BP_OK ||
        bp_net_add_dense(a.net, CLM_V, BP_ACT_SOFTMAX) != BP_OK ||
        bp_net_set(a.net, BP_NET_CLIP_NORM, 5.0) != BP_OK ||
        bp_optimizer_create(&a.opt, BP_OPTIMIZER_ADAM) != BP_OK ||
        bp_optimizer_set(a.opt, BP_OPT_LEARNING_RATE, 2e-3) != BP_OK) {
        fprintf(stderr, "bp_bench: lstm-charlm setup: %s\n", bp_last_error());
        goto done;
    }
    a.x = ids, a.y = next;
    /* Samples of at least 0.2 s (3-5 updates here): 9 samples by default, ~40 updates. */
    const double ns = bench_time_ns(run_clm_update, &a, o->repeat, 200000000);
    if (a.status != BP_OK || ns < 0) {
        fprintf(stderr, "bp_bench: lstm-charlm: %s\n", bp_net_last_error(a.net));
        goto done;
    }
    const double gemm_ns = bench_time_ns(run_clm_gemms, &g, o->repeat, 0);
    bench_json_field_str(out, "shape", "embed64-lstm256-dense114");
    bench_json_field_int(out, "steps", CLM_T);
    bench_json_field_int(out, "batch", CLM_N);
    bench_json_field_int(out, "repeat", o->repeat);
    bench_json_field_int(out, "updates", (long long)a.next);
    bench_json_field_num(out, "update_ms", ns * 1e-6);
    bench_json_field_num(out, "tokens_per_s", (double)(CLM_N * CLM_T) * 1e9 / ns);
    bench_json_field_num(out, "gemm_only_ms", gemm_ns * 1e-6);
    bench_json_field_num(out, "update_over_gemm", ns / gemm_ns);
    rc = 0;
done:
    bp_optimizer_free(a.opt);
    bp_net_free(a.net);
    clm_gemms_free(&g);
    free(ids);
    free(next);
    return rc;
}
#endif /* BP_BENCH_SEQUENCE */

/* ------------------------------------------------------------------------------------------
 * The case table and the driver
 * ----------------------------------------------------------------------------------------*/

typedef struct bench_case {
    const char *name;
    const char *about;
    int (*run)(const bench_opts *o, bench_json *out);
} bench_case;

static const bench_case cases[] = {
    {"sgemm", "BLAS sgemm throughput on --m x --n x --k (gflops)", case_sgemm},
    {"gemm-crossover", "plain loop vs BLAS for m=n=k in 2..48 (crossover_size)",
     case_gemm_crossover},
    {"dense-gemm-bound", "MLP 1024-4096-4096-1024 train_step, batch 256, vs raw sgemm (ratio)",
     case_dense_gemm_bound},
    {"tanh-spiral", "2-64-64-64-1 tanh MLP, full batch of 193, Adam (step_us)", case_tanh_spiral},
    {"tanh-mlp8", "8-64-64-64-1 tanh MLP, full batch of 256, Adam (step_us)", case_tanh_mlp8},
    {"tiny-online", "2-4-1 sigmoid XOR, batch 1, SGD (ns_per_update)", case_tiny_online},
    {"small-online", "16-32-1 sigmoid on census-house, batch 1, SGD (ns_per_update)",
     case_small_online},
    {"fmnist-mlp-epoch", "784-256-128-10 Adam epoch, batch 64, vs its GEMMs alone (epoch_s)",
     case_fmnist_mlp_epoch},
    {"mapped-epoch", "Fashion-MNIST MLP fit epoch: mapped uint8 file vs memory (ratio)",
     case_mapped_epoch},
    {"inference-latency", "784-256-128-10 predict: 1 sample and 256 (single_ns, batch256_ns)",
     case_inference_latency},
    {"cnn-epoch", "Fashion-MNIST-shaped CNN: epoch_s, conv sgemm and im2col shares, gemm_only_s",
     case_cnn_epoch},
    {"cnn-example-epoch",
     "docs/examples/fashion_mnist_cnn's net, batch 128, Adam: epoch_s, gemm_only_s (ratio)",
     case_cnn_example_epoch},
#ifdef BP_BENCH_SEQUENCE
    {"lstm-charlm", "char LM embed 64, LSTM 256, dense 114; T 64, batch 32, Adam (tokens_per_s)",
     case_lstm_charlm},
#endif
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static void usage(FILE *f)
{
    fprintf(f, "usage: bp_bench [--case NAME[,NAME...]]... [--threads N] [--repeat N]\n"
               "                [--m N] [--n N] [--k N] [--samples N] [--fmnist DIR]\n"
               "                [--census FILE] [--list]\n"
               "Prints one JSON line per case (all cases by default). --samples caps the rows\n"
               "of a data set the epoch cases use; --fmnist and --census locate the data\n"
               "(random data of the same shape when missing).\n");
}

/* Parses a positive integer option value no larger than max; 0 on success. */
static int parse_size(const char *opt, const char *s, size_t max, size_t *out)
{
    char *end;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < 1 || v > max) {
        fprintf(stderr, "bp_bench: %s wants an integer in 1..%zu, not '%s'\n", opt, max, s);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

/* Marks the cases named in a comma-separated list; 0 on success. */
static int select_cases(const char *list, int *selected)
{
    const char *p = list;
    for (;;) {
        const size_t len = strcspn(p, ",");
        int found = 0;
        for (size_t i = 0; i < NCASES; i++) {
            if (strlen(cases[i].name) == len && strncmp(cases[i].name, p, len) == 0) {
                selected[i] = 1;
                found = 1;
            }
        }
        if (!found) {
            fprintf(stderr, "bp_bench: unknown case '%.*s' (see --list)\n", (int)len, p);
            return -1;
        }
        if (p[len] == '\0') return 0;
        p += len + 1;
    }
}

static int run_case(const bench_case *c, const bench_opts *o)
{
    bench_json j;
    bench_json_init(&j);
    bench_json_open(&j, '{');
    bench_json_field_str(&j, "case", c->name);
    bench_json_field_int(&j, "threads", bp_get_num_threads());
    bench_json_field_str(&j, "backend", bp_backend_info());
    bench_json_field_str(&j, "git", BP_BENCH_GIT);
    const int rc = c->run(o, &j);
    bench_json_close(&j, '}');
    if (rc == 0 && bench_json_failed(&j))
        fprintf(stderr, "bp_bench: %s: out of memory for the output\n", c->name);
    else if (rc == 0)
        printf("%s\n", j.buf);
    const int failed = rc != 0 || bench_json_failed(&j);
    bench_json_free(&j);
    fflush(stdout);
    return failed;
}

int main(int argc, char **argv)
{
    bench_opts o = {9,
                    256,
                    1024,
                    1024,
                    (size_t)-1,
                    "/usr/share/datasets/fashion-mnist",
                    "/usr/share/doc/libfann-dev/examples/datasets/census-house.train"};
    int selected[NCASES] = {0}, any = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--list") == 0) {
            for (size_t c = 0; c < NCASES; c++)
                printf("%-18s %s\n", cases[c].name, cases[c].about);
            return 0;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        size_t x = 0;
        if (strcmp(a, "--case") == 0) {
            if (select_cases(v, selected) != 0) return 2;
            any = 1;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_size(a, v, 1024, &x) != 0) return 2;
            if (bp_set_num_threads((int)x) != BP_OK) {
                fprintf(stderr, "bp_bench: %s\n", bp_last_error());
                return 2;
            }
        } else if (strcmp(a, "--repeat") == 0) {
            if (parse_size(a, v, 100000, &x) != 0) return 2;
            o.repeat = (int)x;
        } else if (strcmp(a, "--m") == 0 || strcmp(a, "--n") == 0 || strcmp(a, "--k") == 0) {
            if (parse_size(a, v, 1u << 16, &x) != 0) return 2;
            *(a[2] == 'm' ? &o.m : a[2] == 'n' ? &o.n : &o.k) = x;
        } else if (strcmp(a, "--samples") == 0) {
            if (parse_size(a, v, (size_t)1 << 40, &o.samples) != 0) return 2;
        } else if (strcmp(a, "--fmnist") == 0) {
            o.fmnist_dir = v;
        } else if (strcmp(a, "--census") == 0) {
            o.census_path = v;
        } else {
            fprintf(stderr, "bp_bench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    /* Experiments with the convolution's chunk size (floats of im2col columns per chunk). */
    const char *chunk = getenv("BP_BENCH_CONV_CHUNK");
    if (chunk != NULL &&
        parse_size("BP_BENCH_CONV_CHUNK", chunk, (size_t)1 << 34, &bp__conv_chunk_floats) != 0)
        return 2;
    int failures = 0;
    for (size_t c = 0; c < NCASES; c++)
        if (!any || selected[c]) failures += run_case(&cases[c], &o);
    return failures == 0 ? 0 : 1;
}
