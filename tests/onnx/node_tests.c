/* node_tests.c -- the ONNX project's node test cases (Debian libonnx-testdata:
 * <dir>/test_<name>/model.onnx with test_data_set_0/input_N.pb and output_0.pb) for the
 * operators libbackprop_onnx maps.
 *
 * Every case whose nodes all use supported operators is tried: its extra inputs (weights,
 * biases, BN statistics; our nets hold them as parameters) become initializers, the model
 * is imported, input_0 is predicted and compared with output_0 (rtol 1e-3, atol 1e-7: the
 * ONNX backend tests' defaults, which compare with NumPy). A case the importer rejects as
 * unsupported is listed as SKIP with the importer's reason; any other failure is FAIL.
 * Usage: onnx_node_tests DIR. Exit 0 when nothing fails, 77 (skipped) without DIR. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backprop_onnx.h"
#include "onnx.pb-c.h"

static const char *const supported[] = {
    "Gemm",     "MatMul",    "Add",     "Conv",        "BatchNormalization",
    "Relu",     "LeakyRelu", "Elu",     "Sigmoid",     "Tanh",
    "Softplus", "Softmax",   "MaxPool", "AveragePool", "GlobalAveragePool",
    "Flatten",  "Reshape",   "Dropout", "Identity",    "Pad",
    "RNN",      "GRU",       "LSTM",    "Gather",      "Transpose",
    "Squeeze",  "Unsqueeze", NULL};

static int is_supported(const char *op)
{
    for (const char *const *p = supported; *p != NULL; p++)
        if (strcmp(*p, op) == 0) return 1;
    return 0;
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            unsigned char *b = realloc(buf, cap);
            if (b == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *size = n;
    return buf;
}

static Onnx__TensorProto *load_tensor(const char *path)
{
    size_t size;
    unsigned char *buf = slurp(path, &size);
    if (buf == NULL) return NULL;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, size, buf);
    free(buf);
    return t;
}

/* Float values of a float tensor (raw or float_data); NULL for other types. */
static float *tensor_floats(const Onnx__TensorProto *t, size_t *count)
{
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) return NULL;
    size_t n = 1;
    for (size_t k = 0; k < t->n_dims; k++)
        n *= (size_t)t->dims[k];
    float *v = malloc((n > 0 ? n : 1) * sizeof(float));
    if (v == NULL) return NULL;
    if (t->has_raw_data && t->raw_data.len == 4 * n)
        memcpy(v, t->raw_data.data, 4 * n);
    else if (t->n_float_data == n)
        memcpy(v, t->float_data, 4 * n);
    else {
        free(v);
        return NULL;
    }
    *count = n;
    return v;
}

typedef struct tally {
    int passed, skipped, failed, other;
} tally;

static void run_case(const char *dir, const char *name, tally *t)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/model.onnx", dir, name);
    size_t size;
    unsigned char *buf = slurp(path, &size);
    if (buf == NULL) return;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, buf);
    free(buf);
    if (m == NULL || m->graph == NULL) {
        if (m != NULL) onnx__model_proto__free_unpacked(m, NULL);
        return;
    }
    Onnx__GraphProto *g = m->graph;
    int ours = g->n_node > 0;
    for (size_t k = 0; k < g->n_node; k++)
        if (!is_supported(g->node[k]->op_type)) ours = 0;
    if (!ours) {
        t->other++;
        onnx__model_proto__free_unpacked(m, NULL);
        return;
    }
    /* Inputs 1.. become initializers (named as the graph inputs they replace). */
    Onnx__TensorProto *extra[16] = {NULL};
    char *own_name[16] = {NULL};
    size_t nextra = 0;
    int ok = g->n_input >= 1 && g->n_input <= 16;
    for (size_t k = 1; ok && k < g->n_input; k++) {
        snprintf(path, sizeof path, "%s/%s/test_data_set_0/input_%zu.pb", dir, name, k);
        extra[nextra] = load_tensor(path);
        if (extra[nextra] == NULL) {
            ok = 0;
            break;
        }
        own_name[nextra] = extra[nextra]->name;
        extra[nextra]->name = g->input[k]->name;
        nextra++;
    }
    Onnx__TensorProto **inits = NULL, **old_inits = g->initializer;
    const size_t old_n = g->n_initializer, old_in = g->n_input;
    unsigned char *img = NULL;
    if (ok) {
        inits = calloc(old_n + nextra + 1, sizeof *inits);
        for (size_t k = 0; k < old_n; k++)
            inits[k] = old_inits[k];
        for (size_t k = 0; k < nextra; k++)
            inits[old_n + k] = extra[k];
        g->initializer = inits;
        g->n_initializer = old_n + nextra;
        g->n_input = 1;
        size = onnx__model_proto__get_packed_size(m);
        img = malloc(size);
        onnx__model_proto__pack(m, img);
        g->initializer = old_inits;
        g->n_initializer = old_n;
        g->n_input = old_in;
    }
    for (size_t k = 0; k < nextra; k++) {
        extra[k]->name = own_name[k]; /* the graph input's name was borrowed */
        onnx__tensor_proto__free_unpacked(extra[k], NULL);
    }
    free(inits);
    onnx__model_proto__free_unpacked(m, NULL);
    if (!ok) {
        printf("SKIP %s: test data unreadable\n", name);
        t->skipped++;
        free(img);
        return;
    }
    bp_net *net = NULL;
    const bp_status s = bp_onnx_import_buffer(&net, img, size, 1);
    free(img);
    if (s == BP_ERR_UNSUPPORTED) {
        printf("SKIP %s: %s\n", name, bp_onnx_last_error());
        t->skipped++;
        return;
    }
    if (s != BP_OK) {
        printf("FAIL %s: import: %s: %s\n", name, bp_status_string(s), bp_onnx_last_error());
        t->failed++;
        return;
    }
    snprintf(path, sizeof path, "%s/%s/test_data_set_0/input_0.pb", dir, name);
    Onnx__TensorProto *xin = load_tensor(path);
    snprintf(path, sizeof path, "%s/%s/test_data_set_0/output_0.pb", dir, name);
    Onnx__TensorProto *yout = load_tensor(path);
    size_t nx = 0, ny = 0;
    float *x = xin != NULL ? tensor_floats(xin, &nx) : NULL;
    float *want = yout != NULL ? tensor_floats(yout, &ny) : NULL;
    const size_t rows = xin != NULL && xin->n_dims > 0 ? (size_t)xin->dims[0] : 1;
    const size_t in = bp_net_input_size(net), out = bp_net_output_size(net);
    if (x == NULL || want == NULL || rows == 0 || nx != rows * in || ny != rows * out) {
        printf("FAIL %s: shapes: %zu input values for %zu rows of %zu, %zu outputs for %zu\n", name,
               nx, rows, in, ny, out);
        t->failed++;
    } else {
        float *y = malloc(ny * sizeof(float));
        const bp_status p = bp_net_predict(net, x, rows, y, ny);
        size_t bad = ny;
        for (size_t k = 0; p == BP_OK && k < ny; k++)
            if (!(fabsf(y[k] - want[k]) <= 1e-7f + 1e-3f * fabsf(want[k]))) {
                bad = k;
                break;
            }
        if (p != BP_OK) {
            printf("FAIL %s: predict: %s\n", name, bp_last_error());
            t->failed++;
        } else if (bad < ny) {
            printf("FAIL %s: output %zu is %.9g, expected %.9g\n", name, bad, (double)y[bad],
                   (double)want[bad]);
            t->failed++;
        } else {
            printf("PASS %s (%zu layers)\n", name, bp_net_layer_count(net));
            t->passed++;
        }
        free(y);
    }
    free(x);
    free(want);
    if (xin != NULL) onnx__tensor_proto__free_unpacked(xin, NULL);
    if (yout != NULL) onnx__tensor_proto__free_unpacked(yout, NULL);
    bp_net_free(net);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/usr/share/libonnx-testdata/data/node";
    DIR *d = opendir(dir);
    if (d == NULL) {
        printf("skipped: %s not found (apt-get install libonnx-testdata)\n", dir);
        return 77;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "test_", 5) != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    tally t = {0, 0, 0, 0};
    for (size_t k = 0; k < n; k++) {
        run_case(dir, names[k], &t);
        free(names[k]);
    }
    free(names);
    printf("node tests for the supported operators: %d passed, %d skipped (listed above with "
           "the reason), %d failed; %d cases of other operators not run\n",
           t.passed, t.skipped, t.failed, t.other);
    return t.failed == 0 && t.passed > 0 ? 0 : 1;
}
