/* bench_fann.c -- the peer workloads of bp_bench run with FANN 2.2 (libfann-dev), for
 * bench/compare. One JSON line per case, with the same case names and figures as bp_bench:
 *
 *   bench_fann [--case NAME[,NAME...]] [--repeat N] [--samples N] [--fmnist DIR] [--census FILE]
 *
 *   tiny-online        2-4-1, XOR, fann_train (incremental, batch 1): ns_per_update
 *   small-online       16-32-1 on census-house (or random data of that shape): ns_per_update
 *   fmnist-mlp-epoch   784-256-128-10 on Fashion-MNIST (or random data of that shape), one
 *                      shuffled epoch of fann_train (FANN_TRAIN_INCREMENTAL): epoch_s
 *
 * FANN is single-threaded ("threads": 1 always). Activations: FANN_SIGMOID everywhere, the
 * same function as backprop's BP_ACT_SIGMOID in the online cases (FANN's default
 * FANN_SIGMOID_STEPWISE, a piecewise-linear approximation, is reported beside it as
 * ns_per_update_stepwise). FANN 2.2 has neither ReLU nor softmax, so its Fashion-MNIST net
 * uses sigmoid hidden and output units with FANN's MSE; the work per sample (the three
 * matrix-vector products forward, two back, and the weight update) is the same size.
 * Data are loaded with libbackprop's loaders (the library under comparison is not timed). */
#include "bench_util.h"

#include <fann.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backprop.h"

typedef struct fann_opts {
    bench_opts o;
    int selected[3], any;
} fann_opts;

static const char *const names[3] = {"tiny-online", "small-online", "fmnist-mlp-epoch"};

typedef struct online {
    struct fann *ann;
    const float *x, *y;
    size_t in, out, rows, next;
} online;

enum { BURST = 1000 };

static void run_online(void *p)
{
    online *a = p;
    for (int k = 0; k < BURST; k++) {
        const size_t r = a->next;
        a->next = r + 1 == a->rows ? 0 : r + 1;
        /* fann_train takes non-const pointers but only reads them. */
        fann_train(a->ann, (fann_type *)(uintptr_t)(a->x + r * a->in),
                   (fann_type *)(uintptr_t)(a->y + r * a->out));
    }
}

/* Time online training of an in-hidden-1 sigmoid net; *ns gets the FANN_SIGMOID figure and
 * *ns_step the FANN_SIGMOID_STEPWISE one. 0 on success. */
static int online_ns(const bench_opts *o, unsigned in, unsigned hidden, const float *x,
                     const float *y, size_t rows, double *ns, double *ns_step)
{
    for (int pass = 0; pass < 2; pass++) {
        online a = {0};
        a.ann = fann_create_standard(3, in, hidden, 1u);
        if (a.ann == NULL) return -1;
        fann_set_training_algorithm(a.ann, FANN_TRAIN_INCREMENTAL);
        fann_set_learning_rate(a.ann, 0.7f);
        const enum fann_activationfunc_enum f = pass ? FANN_SIGMOID_STEPWISE : FANN_SIGMOID;
        fann_set_activation_function_hidden(a.ann, f);
        fann_set_activation_function_output(a.ann, f);
        a.x = x, a.y = y, a.in = in, a.out = 1, a.rows = rows;
        const double t = bench_time_ns(run_online, &a, o->repeat, 20000000) / BURST;
        fann_destroy(a.ann);
        if (t < 0) return -1;
        *(pass ? ns_step : ns) = t;
    }
    return 0;
}

static void online_fields(bench_json *j, const char *shape, const char *data, double ns,
                          double ns_step, int repeat)
{
    bench_json_field_str(j, "shape", shape);
    bench_json_field_str(j, "data", data);
    bench_json_field_int(j, "batch", 1);
    bench_json_field_int(j, "repeat", repeat);
    bench_json_field_num(j, "ns_per_update", ns);
    bench_json_field_num(j, "samples_per_s", 1e9 / ns);
    bench_json_field_num(j, "ns_per_update_stepwise", ns_step);
}

static int case_tiny(const bench_opts *o, bench_json *j)
{
    static const float x[8] = {0, 0, 0, 1, 1, 0, 1, 1}, y[4] = {0, 1, 1, 0};
    double ns, ns_step;
    if (online_ns(o, 2, 4, x, y, 4, &ns, &ns_step) != 0) return -1;
    online_fields(j, "2-4-1", "xor", ns, ns_step, o->repeat);
    return 0;
}

static int case_small(const bench_opts *o, bench_json *j)
{
    bp_dataset *ds = NULL;
    float *buf = NULL;
    const float *x, *y;
    size_t rows;
    const char *data = "census-house";
    if (bp_dataset_load_fann(&ds, o->census_path) == BP_OK && bp_dataset_input_size(ds) == 16 &&
        bp_dataset_output_size(ds) == 1) {
        rows = bp_dataset_size(ds);
        x = bp_dataset_inputs(ds), y = bp_dataset_targets(ds);
    } else {
        data = "random";
        rows = 11392;
        buf = malloc(rows * 17 * sizeof *buf);
        if (buf == NULL) return -1;
        bench_fill(buf, rows * 17, 5);
        x = buf, y = buf + rows * 16;
    }
    if (o->samples < rows) rows = o->samples;
    double ns, ns_step;
    const int rc = online_ns(o, 16, 32, x, y, rows, &ns, &ns_step);
    if (rc == 0) online_fields(j, "16-32-1", data, ns, ns_step, o->repeat);
    bp_dataset_free(ds);
    free(buf);
    return rc;
}

/* One shuffled epoch of incremental training on Fashion-MNIST (one-hot targets). */
static int case_fmnist(const bench_opts *o, bench_json *j)
{
    char img[1024], lab[1024];
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte.gz", o->fmnist_dir);
    snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte.gz", o->fmnist_dir);
    bp_dataset *ds = NULL;
    float *buf = NULL;
    const float *x, *y;
    size_t n;
    const char *data = "fashion-mnist";
    if (bp_dataset_load_idx(&ds, img, lab, 10) == BP_OK && bp_dataset_input_size(ds) == 784) {
        n = bp_dataset_size(ds);
        x = bp_dataset_inputs(ds), y = bp_dataset_targets(ds);
    } else {
        data = "random";
        n = 60000;
        buf = calloc(n * 794, sizeof *buf);
        if (buf == NULL) return -1;
        bench_fill(buf, n * 784, 7);
        for (size_t i = 0; i < n; i++)
            buf[n * 784 + i * 10 + i % 10] = 1.0f;
        x = buf, y = buf + n * 784;
    }
    if (o->samples < n) n = o->samples;
    size_t *perm = malloc(n * sizeof *perm);
    struct fann *ann = fann_create_standard(4, 784u, 256u, 128u, 10u);
    int rc = -1;
    if (perm == NULL || ann == NULL) goto done;
    fann_set_training_algorithm(ann, FANN_TRAIN_INCREMENTAL);
    fann_set_learning_rate(ann, 0.1f);
    fann_set_activation_function_hidden(ann, FANN_SIGMOID);
    fann_set_activation_function_output(ann, FANN_SIGMOID);
    uint64_t s = 1;
    double *t = malloc((size_t)o->repeat * sizeof *t);
    if (t == NULL) goto done;
    for (int r = 0; r < o->repeat; r++) {
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        for (size_t i = n; i > 1; i--) { /* Fisher-Yates, LCG-driven */
            s = s * 6364136223846793005u + 1442695040888963407u;
            const size_t k = (size_t)((s >> 33) % i), tmp = perm[i - 1];
            perm[i - 1] = perm[k], perm[k] = tmp;
        }
        const uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < n; i++)
            fann_train(ann, (fann_type *)(uintptr_t)(x + perm[i] * 784),
                       (fann_type *)(uintptr_t)(y + perm[i] * 10));
        t[r] = (double)(bench_now_ns() - t0);
    }
    const double ns = bench_median(t, (size_t)o->repeat);
    free(t);
    bench_json_field_str(j, "shape", "784-256-128-10");
    bench_json_field_str(j, "data", data);
    bench_json_field_int(j, "samples", (long long)n);
    bench_json_field_int(j, "batch", 1);
    bench_json_field_int(j, "repeat", o->repeat);
    bench_json_field_num(j, "epoch_s", ns / 1e9);
    bench_json_field_num(j, "samples_per_s", (double)n * 1e9 / ns);
    rc = 0;
done:
    if (ann != NULL) fann_destroy(ann);
    free(perm);
    free(buf);
    bp_dataset_free(ds);
    return rc;
}

static int parse_count(const char *opt, const char *v, size_t *out)
{
    char *end;
    const unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end != '\0' || v[0] == '-' || x < 1) {
        fprintf(stderr, "bench_fann: %s wants a positive integer, not '%s'\n", opt, v);
        return -1;
    }
    *out = (size_t)x;
    return 0;
}

int main(int argc, char **argv)
{
    fann_opts f = {{3, 0, 0, 0, (size_t)-1, "/usr/share/datasets/fashion-mnist",
                    "/usr/share/doc/libfann-dev/examples/datasets/census-house.train"},
                   {0},
                   0};
    for (int i = 1; i + 1 < argc || (i < argc && strcmp(argv[i], "--list") == 0); i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        size_t x;
        if (strcmp(a, "--list") == 0) {
            for (int c = 0; c < 3; c++)
                printf("%s\n", names[c]);
            return 0;
        } else if (strcmp(a, "--case") == 0) {
            f.any = 1;
            for (int c = 0; c < 3; c++) {
                const char *hit = strstr(v, names[c]);
                const size_t len = strlen(names[c]);
                if (hit != NULL && (hit == v || hit[-1] == ',') &&
                    (hit[len] == '\0' || hit[len] == ','))
                    f.selected[c] = 1;
            }
        } else if (strcmp(a, "--repeat") == 0) {
            if (parse_count(a, v, &x) != 0) return 2;
            f.o.repeat = (int)(x > 100000 ? 100000 : x);
        } else if (strcmp(a, "--samples") == 0) {
            if (parse_count(a, v, &f.o.samples) != 0) return 2;
        } else if (strcmp(a, "--fmnist") == 0) {
            f.o.fmnist_dir = v;
        } else if (strcmp(a, "--census") == 0) {
            f.o.census_path = v;
        } else if (strcmp(a, "--threads") == 0) {
            /* accepted for symmetry with bp_bench; FANN is single-threaded */
        } else {
            fprintf(stderr, "bench_fann: unknown option '%s'\n", a);
            return 2;
        }
    }
    int (*const run[3])(const bench_opts *, bench_json *) = {case_tiny, case_small, case_fmnist};
    int failures = 0;
    for (int c = 0; c < 3; c++) {
        if (f.any && !f.selected[c]) continue;
        bench_json j;
        bench_json_init(&j);
        bench_json_open(&j, '{');
        bench_json_field_str(&j, "case", names[c]);
        bench_json_field_int(&j, "threads", 1);
        bench_json_field_str(&j, "backend", "FANN 2.2 (libfann, float, single-threaded)");
        const int rc = run[c](&f.o, &j);
        bench_json_close(&j, '}');
        if (rc == 0 && !bench_json_failed(&j))
            printf("%s\n", j.buf);
        else
            fprintf(stderr, "bench_fann: %s failed\n", names[c]);
        failures += rc != 0 || bench_json_failed(&j);
        bench_json_free(&j);
        fflush(stdout);
    }
    return failures == 0 ? 0 : 1;
}
