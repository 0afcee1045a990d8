/* test_mapped.c -- the binary data-set file and memory-mapped data sets (issue 19): round
 * trips (float32, uint8), views, training through the mapping (bit-identical to memory),
 * corruption found where it is read, truncated and hostile files. */
#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "dataset.h"
#include "crc32_table.h"

#define tmpdir bp_test_tmpdir()

static const char *tmp_path(const char *name)
{
    return bp_test_tmp_path(name);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    const long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const unsigned char *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The header's CRC recomputed after an edit (a hostile file, not a corrupted one). */
static void reseal_header(unsigned char *b)
{
    put_le(b + 60, bp__crc32(0, b, 60), 4);
}

/* n rows of @p in inputs and one class index target in [0, classes); inputs q / 255 when
 * @p bytes (a uint8-codable set), else uniform floats. */
static bp_dataset *make_set(size_t n, size_t in, size_t classes, int bytes, uint64_t seed)
{
    float *x = malloc(n * in * sizeof(float)), *y = malloc(n * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    uint64_t st = seed;
    bp_test_fill_uniform(x, n * in, -1.0f, 1.0f, &st);
    for (size_t i = 0; i < n * in; i++)
        if (bytes) x[i] = (float)(unsigned)((x[i] + 1.0f) * 127.9f) / 255.0f;
    for (size_t r = 0; r < n; r++) {
        /* a learnable label: the sign pattern of the first inputs */
        size_t c = 0;
        for (size_t k = 0; k < classes - 1 && k < in; k++)
            c += x[r * in + k] > (bytes ? 0.5f : 0.0f);
        y[r] = (float)(c % classes);
    }
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, x, y, n, in, 1), BP_OK);
    free(x);
    free(y);
    return ds;
}

/* Every row of @p m read through the accessor equals @p ds's. */
static void assert_same_rows(const bp_dataset *m, const bp_dataset *ds, size_t start)
{
    const size_t n = bp_dataset_size(m), in = bp_dataset_input_size(m),
                 out = bp_dataset_output_size(m);
    float *x = malloc(n * in * sizeof(float)), *y = malloc(n * out * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    assert_status(bp__dataset_read(m, NULL, 0, n, x, y), BP_OK);
    assert_memory_equal(x, bp_dataset_inputs(ds) + start * in, n * in * sizeof(float));
    assert_memory_equal(y, bp_dataset_targets(ds) + start * out, n * out * sizeof(float));
    free(x);
    free(y);
}

/* Bit-at-a-time CRC-32 (the definition) for the checks below. */
static uint32_t crc_bitwise(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* One CRC-32 for model and data-set files (bp__crc32, slice-by-8 over constant tables): the
 * tables are what their definition gives, and the function equals the bit-at-a-time CRC at
 * every length and alignment, chains, and gives the check value of "123456789". */
static void crc_is_the_one_bp_crc32(void **state)
{
    (void)state;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t v = i;
        for (int k = 0; k < 8; k++)
            v = (v >> 1) ^ (0xEDB88320u & (0u - (v & 1u)));
        assert_int_equal(bp__crc32_table[0][i], v);
        for (int t = 1; t < 8; t++)
            assert_int_equal(bp__crc32_table[t][i],
                             (bp__crc32_table[t - 1][i] >> 8) ^
                                 bp__crc32_table[0][bp__crc32_table[t - 1][i] & 0xFFu]);
    }
    unsigned char b[1000];
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (unsigned char)(i * 131u + 7u);
    for (size_t at = 0; at < 8; at++)
        for (size_t len = 0; at + len < sizeof b; len += 37) {
            assert_int_equal(bp__crc32(0, b + at, len), crc_bitwise(0, b + at, len));
            assert_int_equal(bp__crc32(bp__crc32(0, b, at), b + at, len),
                             crc_bitwise(0, b, at + len));
        }
    assert_int_equal(bp__crc32(0, "123456789", 9), 0xCBF43926u);
}

static void float32_round_trip(void **state)
{
    (void)state;
    bp_dataset *ds = make_set(300, 5, 3, 0, 1), *m;
    assert_status(bp_dataset_save_binary(ds, tmp_path("f.bpds"), BP_DATA_FLOAT32), BP_OK);
    assert_status(bp_dataset_open_mapped(&m, tmp_path("f.bpds")), BP_OK);
    assert_int_equal(bp_dataset_size(m), 300);
    assert_int_equal(bp_dataset_input_size(m), 5);
    assert_int_equal(bp_dataset_output_size(m), 1);
    assert_null(bp_dataset_inputs(m));
    assert_null(bp_dataset_targets(m));
    assert_same_rows(m, ds, 0);
    /* Its size: header 64, CRC list + CRC (one block) 8 -> 128, rows 300 x 24. */
    struct stat st;
    assert_int_equal(stat(tmp_path("f.bpds"), &st), 0);
    assert_int_equal(st.st_size, 128 + 300 * 24);
    /* Saved again from the mapping: the same bytes. */
    assert_status(bp_dataset_save_binary(m, tmp_path("g.bpds"), BP_DATA_FLOAT32), BP_OK);
    size_t la, lb;
    unsigned char *a = read_all(tmp_path("f.bpds"), &la), *b = read_all(tmp_path("g.bpds"), &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    bp_dataset_free(m);
    bp_dataset_free(ds);
}

static void uint8_round_trip_is_exact(void **state)
{
    (void)state;
    bp_dataset *ds = make_set(500, 7, 4, 1, 2), *m;
    assert_status(bp_dataset_save_binary(ds, tmp_path("u.bpds"), BP_DATA_UINT8), BP_OK);
    assert_status(bp_dataset_open_mapped(&m, tmp_path("u.bpds")), BP_OK);
    assert_same_rows(m, ds, 0);
    struct stat st;
    assert_int_equal(stat(tmp_path("u.bpds"), &st), 0);
    assert_int_equal(st.st_size, 64 + 1024 + 8 + 56 + 500 * (7 + 4)); /* data at 1152 */
    bp_dataset_free(m);
    bp_dataset_free(ds);
    /* More than 256 distinct values: refused, nothing written. */
    ds = make_set(100, 10, 2, 0, 3);
    assert_status(bp_dataset_save_binary(ds, tmp_path("v.bpds"), BP_DATA_UINT8),
                  BP_ERR_OUT_OF_RANGE);
    assert_non_null(strstr(bp_last_error(), "256"));
    assert_int_equal(access(tmp_path("v.bpds"), F_OK), -1);
    bp_dataset_free(ds);
}

/* Every code 0..255 present: tables q / 255, q * 0.25 (decoded arithmetically) and an
 * irregular one (decoded by lookup) all read back exactly. */
static void uint8_decoding_forms_are_exact(void **state)
{
    (void)state;
    float x[512], y[2] = {0, 1};
    for (int form = 0; form < 3; form++) {
        for (int k = 0; k < 512; k++) {
            const int q = (k * 7) % 256;
            x[k] = form == 0   ? (float)q / 255.0f
                   : form == 1 ? (float)q * 0.25f
                               : (float)(q * q) / 7.0f - 3.0f;
        }
        bp_dataset *ds, *m;
        assert_status(bp_dataset_create(&ds, x, y, 2, 256, 1), BP_OK);
        assert_status(bp_dataset_save_binary(ds, tmp_path("q.bpds"), BP_DATA_UINT8), BP_OK);
        assert_status(bp_dataset_open_mapped(&m, tmp_path("q.bpds")), BP_OK);
        assert_same_rows(m, ds, 0);
        bp_dataset_free(m);
        bp_dataset_free(ds);
    }
}

static void views_share_the_file(void **state)
{
    (void)state;
    bp_dataset *ds = make_set(100, 3, 2, 0, 4), *m, *a, *b, *c;
    assert_status(bp_dataset_save_binary(ds, tmp_path("w.bpds"), BP_DATA_FLOAT32), BP_OK);
    assert_status(bp_dataset_open_mapped(&m, tmp_path("w.bpds")), BP_OK);
    assert_status(bp_dataset_split(&a, &b, m, 0.3), BP_OK);
    assert_int_equal(bp_dataset_size(a), 30);
    assert_int_equal(bp_dataset_size(b), 70);
    assert_status(bp_dataset_subset(&c, b, 10, 20), BP_OK); /* a view of a view */
    bp_dataset_free(m);                                     /* the views keep the mapping */
    assert_same_rows(a, ds, 0);
    assert_same_rows(b, ds, 30);
    assert_same_rows(c, ds, 40);
    assert_status(bp_dataset_subset(&m, c, 15, 6), BP_ERR_OUT_OF_RANGE);
    assert_null(m);
    bp_dataset_free(a);
    bp_dataset_free(b);
    bp_dataset_free(c);
    bp_dataset_free(ds);
}

static void read_only_operations_are_refused(void **state)
{
    (void)state;
    bp_dataset *ds = make_set(20, 2, 2, 0, 5), *m, *o = NULL;
    assert_status(bp_dataset_save_binary(ds, tmp_path("r.bpds"), BP_DATA_FLOAT32), BP_OK);
    assert_status(bp_dataset_open_mapped(&m, tmp_path("r.bpds")), BP_OK);
    float off[2] = {0, 0}, sc[2] = {1, 1};
    size_t classes;
    assert_status(bp_dataset_shuffle(m, 1), BP_ERR_UNSUPPORTED);
    assert_status(bp_dataset_fit_scaler(m, BP_SCALE_STANDARD, BP_SCALE_INPUTS, off, sc, 2),
                  BP_ERR_UNSUPPORTED);
    assert_status(bp_dataset_apply_scaler(m, BP_SCALE_INPUTS, off, sc, 2), BP_ERR_UNSUPPORTED);
    assert_status(bp_dataset_class_count(m, &classes), BP_ERR_UNSUPPORTED);
    assert_status(bp_dataset_one_hot(&o, m, 2), BP_ERR_UNSUPPORTED);
    assert_null(o);
    assert_status(bp_dataset_save_fann(m, tmp_path("r.data")), BP_ERR_UNSUPPORTED);
    assert_non_null(strstr(bp_last_error(), "mapped"));
    assert_same_rows(m, ds, 0); /* unchanged */
    bp_dataset_free(m);
    bp_dataset_free(ds);
}

static void bad_arguments(void **state)
{
    (void)state;
    bp_dataset *ds = make_set(10, 2, 2, 0, 6), *m = (bp_dataset *)ds;
    assert_status(bp_dataset_save_binary(NULL, tmp_path("a.bpds"), BP_DATA_FLOAT32),
                  BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_save_binary(ds, NULL, BP_DATA_FLOAT32), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_save_binary(ds, tmp_path("a.bpds"), 0), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_save_binary(ds, tmp_path("a.bpds"), 3), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_save_binary(ds, tmpdir, BP_DATA_FLOAT32), BP_ERR_IO);
    assert_status(bp_dataset_open_mapped(NULL, tmp_path("a.bpds")), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_open_mapped(&m, NULL), BP_ERR_INVALID_ARG);
    assert_null(m);
    assert_status(bp_dataset_open_mapped(&m, tmp_path("missing.bpds")), BP_ERR_IO);
    assert_status(bp_dataset_open_mapped(&m, tmpdir), BP_ERR_IO);
    assert_null(m);
    bp_dataset_free(NULL);
    bp_dataset_free(ds);
}

/* A net 6-8-3 (tanh, softmax) with a fixed seed. */
static bp_net *small_net(size_t in)
{
    bp_net *net;
    assert_status(bp_net_create(&net, in, 42), BP_OK);
    assert_status(bp_net_add_dense(net, 8, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    return net;
}

/* Fit @p net for @p epochs on @p train (validation @p val) with SGD; the fit's status. */
static bp_status fit(bp_net *net, const bp_dataset *train, const bp_dataset *val, size_t epochs,
                     size_t batch, int shuffle)
{
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_SGD), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, (double)epochs), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_BATCH_SIZE, (double)batch), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_SHUFFLE, shuffle), BP_OK);
    const bp_status s = bp_net_fit(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, train, val);
    bp_optimizer_free(opt);
    return s;
}

static void assert_same_params(bp_net *a, bp_net *b)
{
    size_t na, nb;
    const float *pa = bp_net_params(a, &na), *pb = bp_net_params(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na * sizeof(float));
}

static void mapped_training_is_bit_identical(void **state)
{
    (void)state;
    for (int type = BP_DATA_FLOAT32; type <= BP_DATA_UINT8; type++) {
        bp_dataset *ds = make_set(400, 6, 3, type == BP_DATA_UINT8, 7), *m, *tr, *va, *mt, *mv;
        assert_status(bp_dataset_save_binary(ds, tmp_path("t.bpds"), type), BP_OK);
        assert_status(bp_dataset_open_mapped(&m, tmp_path("t.bpds")), BP_OK);
        assert_status(bp_dataset_split(&tr, &va, ds, 0.75), BP_OK);
        assert_status(bp_dataset_split(&mt, &mv, m, 0.75), BP_OK);
        for (int shuffle = 0; shuffle <= 1; shuffle++) {
            bp_net *a = small_net(6), *b = small_net(6);
            assert_status(fit(a, tr, va, 3, 32, shuffle), BP_OK);
            assert_status(fit(b, mt, mv, 3, 32, shuffle), BP_OK);
            assert_same_params(a, b);
            for (size_t e = 0; e < 3; e++)
                for (int k = BP_METRIC_LOSS; k <= BP_METRIC_VAL_RMSE; k++) {
                    double ha, hb;
                    assert_status(bp_net_history_get(a, e, k, &ha), BP_OK);
                    assert_status(bp_net_history_get(b, e, k, &hb), BP_OK);
                    assert_true((isnan(ha) && isnan(hb)) || ha == hb);
                }
            double ea[4], eb[4];
            assert_status(bp_net_evaluate(a, BP_LOSS_SPARSE_SOFTMAX_CE, va, ea, 4), BP_OK);
            assert_status(bp_net_evaluate(b, BP_LOSS_SPARSE_SOFTMAX_CE, mv, eb, 4), BP_OK);
            assert_memory_equal(ea, eb, 2 * sizeof(double)); /* loss, accuracy */
            bp_net_free(a);
            bp_net_free(b);
        }
        bp_dataset_free(tr);
        bp_dataset_free(va);
        bp_dataset_free(mt);
        bp_dataset_free(mv);
        bp_dataset_free(m);
        bp_dataset_free(ds);
    }
}

static void bad_targets_are_found_per_batch(void **state)
{
    (void)state;
    bp_dataset *ds = make_set(100, 6, 3, 0, 8), *m;
    assert_status(bp_dataset_save_binary(ds, tmp_path("c.bpds"), BP_DATA_FLOAT32), BP_OK);
    assert_status(bp_dataset_open_mapped(&m, tmp_path("c.bpds")), BP_OK);
    bp_net *net;
    assert_status(bp_net_create(&net, 6, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_SOFTMAX), BP_OK); /* 2 classes, data has 3 */
    double e[4];
    assert_status(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, m, e, 4), BP_ERR_INDEX);
    assert_status(fit(net, m, NULL, 1, 10, 0), BP_ERR_INDEX);
    bp_net_free(net);
    bp_dataset_free(m);
    bp_dataset_free(ds);
}

/* 64 float inputs + 1 target: 260-byte rows, 4032 rows a block. */
#define C_IN   64
#define C_ROWS 10000
#define C_RPB  4032

static void corruption_is_found_where_it_is_read(void **state)
{
    (void)state;
    bp_dataset *ds = make_set(C_ROWS, C_IN, 3, 0, 9), *m, *head;
    assert_status(bp_dataset_save_binary(ds, tmp_path("k.bpds"), BP_DATA_FLOAT32), BP_OK);
    size_t len;
    unsigned char *b = read_all(tmp_path("k.bpds"), &len);
    assert_int_equal(b[12] | b[13] << 8, C_RPB);
    const size_t data = (size_t)le64(b + 40), stride = C_IN * 4 + 4;
    b[data + (C_RPB + 100) * stride + 5] ^= 0x10; /* a row of block 1 */
    write_all(tmp_path("k.bpds"), b, len);
    free(b);
    assert_status(bp_dataset_open_mapped(&m, tmp_path("k.bpds")), BP_OK); /* rows not read */
    /* Training in order, batches of 1000: the fifth batch (rows 4000..4999) reaches block 1;
     * the weights are those after the four good steps, as from training on rows 0..3999. */
    bp_net *a = small_net(C_IN), *ref = small_net(C_IN);
    assert_status(fit(a, m, NULL, 1, 1000, 0), BP_ERR_CHECKSUM);
    assert_non_null(strstr(bp_net_last_error(a), "block 1 (rows 4032..8063)"));
    assert_non_null(strstr(bp_last_error(), "k.bpds"));
    assert_status(bp_dataset_subset(&head, ds, 0, 4000), BP_OK);
    assert_status(fit(ref, head, NULL, 1, 1000, 0), BP_OK);
    assert_same_params(a, ref);
    double e[4];
    assert_status(bp_net_evaluate(a, BP_LOSS_SPARSE_SOFTMAX_CE, m, e, 4), BP_ERR_CHECKSUM);
    /* A view that avoids block 1 reads fine; one that reaches it fails when it does. */
    bp_dataset *v;
    assert_status(bp_dataset_subset(&v, m, 8064, C_ROWS - 8064), BP_OK);
    assert_status(bp_net_evaluate(a, BP_LOSS_SPARSE_SOFTMAX_CE, v, e, 4), BP_OK);
    bp_dataset_free(v);
    assert_status(bp_dataset_save_binary(m, tmp_path("k2.bpds"), BP_DATA_FLOAT32), BP_ERR_CHECKSUM);
    bp_net_free(a);
    bp_net_free(ref);
    bp_dataset_free(head);
    bp_dataset_free(m);
    bp_dataset_free(ds);
}

static void corrupted_metadata_fails_at_open(void **state)
{
    (void)state;
    bp_dataset *ds = make_set(50, 4, 2, 1, 10), *m;
    assert_status(bp_dataset_save_binary(ds, tmp_path("h.bpds"), BP_DATA_UINT8), BP_OK);
    size_t len;
    unsigned char *b = read_all(tmp_path("h.bpds"), &len);
    const size_t spots[] = {20, 64 + 4 * 3, 64 + 1024 + 1}; /* header, table, CRC list */
    for (size_t k = 0; k < 3; k++) {
        b[spots[k]] ^= 1;
        write_all(tmp_path("h2.bpds"), b, len);
        b[spots[k]] ^= 1;
        m = (bp_dataset *)ds;
        assert_status(bp_dataset_open_mapped(&m, tmp_path("h2.bpds")), BP_ERR_CHECKSUM);
        assert_null(m);
    }
    free(b);
    bp_dataset_free(ds);
}

static void hostile_and_truncated_files_fail_cleanly(void **state)
{
    (void)state;
    bp_dataset *ds = make_set(300, 5, 2, 0, 11), *m;
    assert_status(bp_dataset_save_binary(ds, tmp_path("x.bpds"), BP_DATA_FLOAT32), BP_OK);
    size_t len;
    unsigned char *b = read_all(tmp_path("x.bpds"), &len);
    /* Every truncation, and one byte too many. */
    for (size_t cut = 0; cut < len; cut += cut < 200 ? 1 : 97) {
        write_all(tmp_path("y.bpds"), b, cut);
        const bp_status s = bp_dataset_open_mapped(&m, tmp_path("y.bpds"));
        assert_true(s == BP_ERR_FORMAT || s == BP_ERR_CHECKSUM);
        assert_null(m);
    }
    unsigned char *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, b, len);
    longer[len] = 0;
    write_all(tmp_path("y.bpds"), longer, len + 1);
    free(longer);
    assert_status(bp_dataset_open_mapped(&m, tmp_path("y.bpds")), BP_ERR_FORMAT);
    /* Headers with a valid CRC but hostile fields. */
    struct {
        size_t at;
        int bytes;
        uint64_t value;
        bp_status want;
    } edits[] = {
        {0, 1, 'X', BP_ERR_FORMAT},                /* magic */
        {4, 4, 2, BP_ERR_VERSION},                 /* version */
        {8, 4, 7, BP_ERR_FORMAT},                  /* element type */
        {12, 4, 0, BP_ERR_FORMAT},                 /* rows per block 0 */
        {12, 4, 1, BP_ERR_FORMAT},                 /* more blocks than CRCs */
        {16, 8, 0, BP_ERR_FORMAT},                 /* no rows */
        {16, 8, UINT64_MAX, BP_ERR_FORMAT},        /* overflowing size */
        {16, 8, (uint64_t)1 << 40, BP_ERR_FORMAT}, /* rows beyond the file */
        {24, 8, (uint64_t)1 << 62, BP_ERR_FORMAT}, /* huge width */
        {24, 8, 0, BP_ERR_FORMAT},                 /* no inputs */
        {32, 8, 6, BP_ERR_FORMAT},                 /* wider targets than written */
        {40, 8, 0, BP_ERR_FORMAT},                 /* rows over the header */
        {40, 8, UINT64_MAX, BP_ERR_FORMAT},        /* rows beyond the file */
        {48, 8, 1, BP_ERR_FORMAT},                 /* reserved */
    };
    for (size_t k = 0; k < sizeof edits / sizeof edits[0]; k++) {
        unsigned char *c = malloc(len);
        assert_non_null(c);
        memcpy(c, b, len);
        put_le(c + edits[k].at, edits[k].value, edits[k].bytes);
        if (edits[k].at != 0) reseal_header(c);
        write_all(tmp_path("z.bpds"), c, len);
        free(c);
        m = (bp_dataset *)ds;
        assert_status(bp_dataset_open_mapped(&m, tmp_path("z.bpds")), edits[k].want);
        assert_null(m);
    }
    /* A NaN with valid checksums: found when its row is read. */
    const size_t data = (size_t)le64(b + 40);
    const float nan = NAN;
    memcpy(b + data + 7 * 24 + 8, &nan, 4); /* row 7, input 2 */
    const uint32_t crc = bp__crc32(0, b + data, 300 * 24);
    put_le(b + 64, crc, 4);
    put_le(b + 68, bp__crc32(0, b + 64, 4), 4);
    write_all(tmp_path("n.bpds"), b, len);
    free(b);
    assert_status(bp_dataset_open_mapped(&m, tmp_path("n.bpds")), BP_OK);
    float x[5 * 10], y[10];
    assert_status(bp__dataset_read(m, NULL, 0, 10, x, y), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_last_error(), "row 7: input column 2"));
    bp_dataset_free(m);
    bp_dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(crc_is_the_one_bp_crc32),
        bp_add_test(float32_round_trip),
        bp_add_test(uint8_round_trip_is_exact),
        bp_add_test(uint8_decoding_forms_are_exact),
        bp_add_test(views_share_the_file),
        bp_add_test(read_only_operations_are_refused),
        bp_add_test(bad_arguments),
        bp_add_test(mapped_training_is_bit_identical),
        bp_add_test(bad_targets_are_found_per_batch),
        bp_add_test(corruption_is_found_where_it_is_read),
        bp_add_test(corrupted_metadata_fails_at_open),
        bp_add_test(hostile_and_truncated_files_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, bp_test_tmpdir_setup, bp_test_tmpdir_teardown);
}
