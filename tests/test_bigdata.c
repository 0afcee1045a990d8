/* test_bigdata.c -- a data set larger than the memory this test allows itself (issue 19): a
 * 3 GiB uint8 data-set file is written on the fly in a temporary directory, mapped, and
 * trained for one shuffled epoch (then evaluated) while the process's anonymous memory
 * (RssAnon in /proc/self/status) stays under 200 MB; the file is removed after. Label "big"
 * (not "unit": too large for valgrind). BP_BIGDATA_MB overrides the size (MiB). */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "dataset.h"

#define IN       1020 /* uint8 inputs: 1020 + 4 target bytes = 1 KiB rows */
#define STRIDE   1024
#define LIMIT_KB 200000 /* 200 MB of anonymous memory */

static char dir[256], path[512];

/* RssAnon of this process in kB (-1 when /proc is not there). */
static long rss_anon_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "RssAnon: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

static long peak_kb;

static void sample(void)
{
    const long kb = rss_anon_kb();
    if (kb > peak_kb) peak_kb = kb;
}

/* Rows: pseudo-random bytes; the target is 1 when the first byte (repeated in the next 31)
 * is above 127. */
static bp_status fill(void *user, size_t first, size_t k, unsigned char *dst)
{
    (void)user;
    for (size_t i = 0; i < k; i++) {
        uint64_t s = (first + i) * 0x9E3779B97F4A7C15u + 1u;
        unsigned char *row = dst + i * STRIDE;
        for (size_t c = 0; c < IN; c += 8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            const size_t n = IN - c < 8 ? IN - c : 8;
            memcpy(row + c, &s, n); /* the bytes' order does not matter */
        }
        memset(row + 1, row[0], 31); /* the feature, 32 times: learnt within the epoch */
        const float t = row[0] > 127 ? 1.0f : 0.0f;
        memcpy(row + IN, &t, 4); /* little-endian hosts (as the decoder's fast path) */
    }
    sample();
    return BP_OK;
}

static int epoch_cb(void *user, size_t epoch, const double *metrics, size_t count)
{
    (void)user;
    (void)epoch;
    (void)metrics;
    (void)count;
    sample(); /* the fit's buffers are still allocated here */
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void trains_a_set_larger_than_its_memory(void **state)
{
    (void)state;
    const char *env = getenv("BP_BIGDATA_MB");
    const size_t mb = env != NULL && atoi(env) > 0 ? (size_t)atoi(env) : 3072;
    const size_t rows = mb * (size_t)1024; /* 1 KiB rows */
    float table[256];
    for (int q = 0; q < 256; q++)
        table[q] = (float)q / 255.0f;
    double t0 = now();
    sample();
    assert_status(
        bp__dsfile_write(NULL, "test", path, BP_DATA_UINT8, table, rows, IN, 1, fill, NULL), BP_OK);
    const double t_write = now() - t0;

    bp_dataset *ds;
    assert_status(bp_dataset_open_mapped(&ds, path), BP_OK);
    assert_int_equal(bp_dataset_size(ds), rows);
    bp_net *net;
    bp_optimizer *opt;
    assert_status(bp_net_create(&net, IN, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, 1), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_BATCH_SIZE, 1024), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_SHUFFLE, 1), BP_OK); /* by index, over the file */
    assert_status(bp_net_set_epoch_callback(net, epoch_cb, NULL), BP_OK);
    t0 = now();
    assert_status(bp_net_fit(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, ds, NULL), BP_OK);
    const double t_fit = now() - t0;
    double acc;
    assert_status(bp_net_history_get(net, 0, BP_METRIC_ACCURACY, &acc), BP_OK);
    sample();
    printf("# %zu MiB: write %.1f s, epoch %.1f s, accuracy %.3f, peak RssAnon %ld kB\n", mb,
           t_write, t_fit, acc, peak_kb);
    assert_true(acc > 0.8); /* the rule (first byte > 127) is learnt */
    assert_true(peak_kb > 0 && peak_kb < LIMIT_KB);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(ds);
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bp_test_bigdata_XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    if (mkdtemp(dir) == NULL) return -1;
    snprintf(path, sizeof path, "%s/big.bpds", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove(path);
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(trains_a_set_larger_than_its_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
