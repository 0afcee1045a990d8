/* bp_bench.c -- libbackprop benchmarks: one JSON line per case on stdout.
 *
 *   bp_bench [--case NAME[,NAME...]]... [--threads N] [--repeat N] [--m N --n N --k N] [--list]
 *
 * Every line carries "case", "threads", "backend" (bp_backend_info()) and "git" (the source
 * revision at configure time) plus the case's own figures, so runs on different machines or
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

#include "internal.h"

#ifndef BP_BENCH_GIT
#define BP_BENCH_GIT "unknown"
#endif

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

typedef struct raw_gemms {
    float *x, *y[DG_LAYERS], *dz[DG_LAYERS], *w[DG_LAYERS], *dw[DG_LAYERS], *dx[DG_LAYERS];
} raw_gemms;

/* The GEMMs of one training step of the same MLP, with the same shapes and transposes. */
static void run_raw_gemms(void *p)
{
    raw_gemms *r = p;
    const size_t n = DG_BATCH;
    const float *in = r->x;
    for (size_t l = 0; l < DG_LAYERS; l++) { /* y = x W^T */
        bp__gemm_blas(0, 1, n, dg_width[l + 1], dg_width[l], 1.0f, in, dg_width[l], r->w[l],
                      dg_width[l], 0.0f, r->y[l], dg_width[l + 1]);
        in = r->y[l];
    }
    for (size_t l = DG_LAYERS; l-- > 0;) {
        const size_t i = dg_width[l], o = dg_width[l + 1];
        const float *xl = l ? r->y[l - 1] : r->x;
        bp__gemm_blas(1, 0, o, i, n, 1.0f, r->dz[l], o, xl, i, 0.0f, r->dw[l], i); /* dz^T x */
        if (l) bp__gemm_blas(0, 0, n, i, o, 1.0f, r->dz[l], o, r->w[l], i, 0.0f, r->dx[l], i);
    }
}

static int case_dense_gemm_bound(const bench_opts *o, bench_json *out)
{
    const size_t n = DG_BATCH;
    dense_args d = {0};
    raw_gemms r;
    memset(&r, 0, sizeof r);
    int rc = -1;
    float *x = malloc(n * dg_width[0] * sizeof *x), *y = malloc(n * dg_width[3] * sizeof *y);
    int ok = x != NULL && y != NULL;
    double weights = 0, real_flops = 0;
    for (size_t l = 0; l < DG_LAYERS && ok; l++) {
        const size_t i = dg_width[l], on = dg_width[l + 1];
        weights += (double)i * (double)on;
        real_flops += 2.0 * (double)n * (double)i * (double)on * (l ? 3.0 : 2.0);
        r.y[l] = malloc(n * on * sizeof(float));
        r.dz[l] = malloc(n * on * sizeof(float));
        r.w[l] = malloc(i * on * sizeof(float));
        r.dw[l] = malloc(i * on * sizeof(float));
        r.dx[l] = malloc(n * i * sizeof(float));
        ok = r.y[l] && r.dz[l] && r.w[l] && r.dw[l] && r.dx[l];
        if (ok) {
            bench_fill(r.w[l], i * on, 10 + l);
            bench_fill(r.dz[l], n * on, 20 + l);
        }
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
    for (size_t l = 0; l < DG_LAYERS; l++) {
        free(r.y[l]), free(r.dz[l]), free(r.w[l]), free(r.dw[l]), free(r.dx[l]);
    }
    free(x);
    free(y);
    return rc;
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
    {"tiny-online", "2-4-1 sigmoid XOR, batch 1, SGD (ns_per_update)", case_tiny_online},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static void usage(FILE *f)
{
    fprintf(f, "usage: bp_bench [--case NAME[,NAME...]]... [--threads N] [--repeat N]\n"
               "                [--m N] [--n N] [--k N] [--list]\n"
               "Prints one JSON line per case (all cases by default).\n");
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
    bench_opts o = {9, 256, 1024, 1024};
    int selected[NCASES] = {0}, any = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--list") == 0) {
            for (size_t c = 0; c < NCASES; c++)
                printf("%-16s %s\n", cases[c].name, cases[c].about);
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
        } else {
            fprintf(stderr, "bp_bench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    int failures = 0;
    for (size_t c = 0; c < NCASES; c++)
        if (!any || selected[c]) failures += run_case(&cases[c], &o);
    return failures == 0 ? 0 : 1;
}
