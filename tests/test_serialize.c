/* test_serialize.c -- model files and checkpoints: round trips through buffers and files,
 * the format's byte layout, hostile and corrupted input, scalers, metadata, the training
 * loop's section, bit-identical resumption in a fresh process, atomic saves under file faults, and
 * the committed golden model. */
#include "test_util.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"
#include "rng.h"
#include "layer.h"
#include "net.h"
#include "optimizer.h"

/* ---- helpers ------------------------------------------------------------------------- */

static void path_in_dir(char *dst, size_t cap, const char *name)
{
    snprintf(dst, cap, "%s/%s", bp_test_tmpdir(), name);
}

/* Files in the temporary directory whose name contains ".tmp" (left-over temporary files). */
static int temp_files_left(void)
{
    return bp_test_tmp_entries_containing(".tmp") != 0;
}

/* A 5-4-6-3 net with mixed activations and non-default settings. */
static bp_net *make_net(uint64_t seed)
{
    bp_net *net;
    assert_status(bp_net_create(&net, 5, seed), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_LEAKY_RELU), BP_OK);
    assert_status(bp_net_add_dense(net, 6, BP_ACT_ELU), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_LEAKY_SLOPE, 0.125), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_ELU_ALPHA, 0.5), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_TRAINABLE, 0), BP_OK);
    assert_status(bp_net_set(net, BP_NET_CLIP_NORM, 2.5), BP_OK);
    assert_status(bp_net_set(net, BP_NET_HUBER_DELTA, 0.75), BP_OK);
    return net;
}

static unsigned char *save_to_buffer(const bp_net *net, const bp_optimizer *opt, size_t *size)
{
    size_t need = 0;
    if (opt != NULL)
        assert_status(bp_checkpoint_save_buffer(net, opt, NULL, 0, &need), BP_ERR_BUFFER_TOO_SMALL);
    else
        assert_status(bp_net_save_buffer(net, NULL, 0, &need), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *buf = malloc(need);
    assert_non_null(buf);
    if (opt != NULL)
        assert_status(bp_checkpoint_save_buffer(net, opt, buf, need, size), BP_OK);
    else
        assert_status(bp_net_save_buffer(net, buf, need, size), BP_OK);
    assert_int_equal(*size, need);
    return buf;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* After editing a file image: rewrite its total length and CRC so that only the edit is
 * judged (the hostile-content tests must get past the checksum). */
static void reseal(unsigned char *b, size_t size)
{
    put64(b + 16, size);
    put32(b + size - 4, bp__crc32(0, b, size - 4));
}

/* Offset of section @p tag in a file image (the first section starts at 24). */
static size_t find_section(const unsigned char *b, size_t size, const char *tag)
{
    size_t at = 24;
    while (at + 16 <= size - 4) {
        if (memcmp(b + at, tag, 4) == 0) return at;
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--)
            len = len << 8 | b[at + 8 + i];
        at += 16 + (size_t)len;
    }
    fail_msg("section %s not found", tag);
    return 0;
}

static void assert_same_predictions(bp_net *a, bp_net *b)
{
    enum { N = 7 };
    float x[N * 5], ya[N * 3], yb[N * 3];
    uint64_t st = 5;
    bp_test_fill_uniform(x, N * 5, -2, 2, &st);
    assert_status(bp_net_predict(a, x, N, ya, N * 3), BP_OK);
    assert_status(bp_net_predict(b, x, N, yb, N * 3), BP_OK);
    assert_memory_equal(ya, yb, sizeof ya);
}

/* ---- round trips ------------------------------------------------------------------------ */

static void model_round_trips_through_a_buffer(void **state)
{
    (void)state;
    bp_net *net = make_net(11);
    const float off[5] = {1, 2, 3, 4, 5}, sc[5] = {0.5f, 0.25f, 2, 4, 8};
    const float toff[3] = {-1, 0, 1}, tsc[3] = {3, 3, 3};
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, 5), BP_OK);
    assert_status(bp_net_set_scaler(net, BP_SCALE_TARGETS, toff, tsc, 3), BP_OK);
    assert_status(bp_net_set_meta(net, "dataset", "iris.csv"), BP_OK);
    assert_status(bp_net_set_meta(net, "empty", ""), BP_OK);
    size_t size;
    unsigned char *buf = save_to_buffer(net, NULL, &size);

    bp_net *back;
    assert_status(bp_net_load_buffer(&back, buf, size), BP_OK);
    assert_int_equal(bp_net_layer_count(back), 3);
    assert_int_equal(bp_net_input_size(back), 5);
    assert_int_equal(bp_net_output_size(back), 3);
    size_t np, nb;
    const float *pa = bp_net_params(net, &np);
    const float *pb = bp_net_params(back, &nb);
    assert_int_equal(np, nb);
    assert_memory_equal(pa, pb, np * sizeof(float));
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(bp_layer_activation(bp_net_layer(back, i)),
                         bp_layer_activation(bp_net_layer(net, i)));
        for (int key = BP_LAYER_TRAINABLE; key <= BP_LAYER_ELU_ALPHA; key++) {
            double va, vb;
            assert_status(bp_layer_get(bp_net_layer(net, i), key, &va), BP_OK);
            assert_status(bp_layer_get(bp_net_layer(back, i), key, &vb), BP_OK);
            assert_true(va == vb);
        }
    }
    for (int key = BP_NET_ACCUMULATE_GRADS; key <= BP_NET_CLIP_VALUE; key++) {
        double va, vb;
        assert_status(bp_net_get(net, key, &va), BP_OK);
        assert_status(bp_net_get(back, key, &vb), BP_OK);
        assert_true(va == vb);
    }
    assert_memory_equal(net->rng.s, back->rng.s, sizeof net->rng.s);
    float o[5], s[5];
    size_t count;
    assert_status(bp_net_get_scaler(back, BP_SCALE_INPUTS, o, s, 5, &count), BP_OK);
    assert_int_equal(count, 5);
    assert_memory_equal(o, off, sizeof off);
    assert_memory_equal(s, sc, sizeof sc);
    assert_status(bp_net_get_scaler(back, BP_SCALE_TARGETS, o, s, 5, &count), BP_OK);
    assert_int_equal(count, 3);
    assert_memory_equal(o, toff, sizeof toff);
    char value[32];
    assert_status(bp_net_get_meta(back, "dataset", value, sizeof value, NULL), BP_OK);
    assert_string_equal(value, "iris.csv");
    assert_status(bp_net_get_meta(back, "empty", value, sizeof value, NULL), BP_OK);
    assert_string_equal(value, "");
    assert_same_predictions(net, back);

    /* Saving the loaded net reproduces the file byte for byte. */
    size_t size2;
    unsigned char *buf2 = save_to_buffer(back, NULL, &size2);
    assert_int_equal(size, size2);
    assert_memory_equal(buf, buf2, size);
    free(buf2);
    free(buf);
    bp_net_free(back);
    bp_net_free(net);
}

static void model_round_trips_through_a_file(void **state)
{
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "model.bpm");
    bp_net *net = make_net(12);
    assert_status(bp_net_save(net, path), BP_OK);
    bp_net *back;
    assert_status(bp_net_load(&back, path), BP_OK);
    assert_same_predictions(net, back);
    bp_net *ex;
    bp_test_alloc ta = {0};
    assert_status(bp_net_load_ex(&ex, path, bp_test_alloc_fn, bp_test_free_fn, &ta), BP_OK);
    assert_same_predictions(net, ex);
    assert_true(ta.live > 0);
    bp_net_free(ex);
    assert_int_equal(ta.live, 0);
    assert_false(temp_files_left());
    bp_net_free(back);
    bp_net_free(net);
}

static void empty_net_round_trips(void **state)
{
    (void)state;
    bp_net *net, *back;
    assert_status(bp_net_create(&net, 3, 1), BP_OK);
    size_t size;
    unsigned char *buf = save_to_buffer(net, NULL, &size);
    assert_status(bp_net_load_buffer(&back, buf, size), BP_OK);
    assert_int_equal(bp_net_layer_count(back), 0);
    assert_int_equal(bp_net_input_size(back), 3);
    free(buf);
    bp_net_free(back);
    bp_net_free(net);
}

static void save_buffer_reports_the_size_needed(void **state)
{
    (void)state;
    bp_net *net = make_net(3);
    size_t need = 0, got = 0;
    assert_status(bp_net_save_buffer(net, NULL, 0, &need), BP_ERR_BUFFER_TOO_SMALL);
    assert_true(need > 24);
    unsigned char *buf = malloc(need);
    assert_status(bp_net_save_buffer(net, buf, need - 1, &got), BP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(got, need);
    assert_status(bp_net_save_buffer(net, buf, need, &got), BP_OK);
    assert_int_equal(got, need);
    assert_status(bp_net_save_buffer(net, NULL, 5, &got), BP_ERR_INVALID_ARG);
    assert_status(bp_net_save_buffer(net, buf, need, NULL), BP_ERR_INVALID_ARG);
    free(buf);
    bp_net_free(net);
}

static void file_layout_is_little_endian_with_magic_version_and_crc(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 9), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    const float w[2] = {1.0f, -2.0f}, b[1] = {0.5f};
    assert_status(bp_layer_set_weights(bp_net_layer(net, 0), w, 2), BP_OK);
    assert_status(bp_layer_set_biases(bp_net_layer(net, 0), b, 1), BP_OK);
    size_t size;
    unsigned char *buf = save_to_buffer(net, NULL, &size);
    const unsigned char magic[8] = {0x89, 'B', 'P', 'M', '\r', '\n', 0x1a, '\n'};
    assert_memory_equal(buf, magic, 8);
    assert_int_equal(le32(buf + 8), 1); /* the lowest version that holds it (not a sequence) */
    assert_int_equal(bp_format_version(), BP_FORMAT_VERSION);
    assert_int_equal(le32(buf + 16), size);
    assert_int_equal(le32(buf + size - 4), bp__crc32(0, buf, size - 4));
    assert_memory_equal(buf + 24, "NET ", 4);
    /* The weights 1.0f, -2.0f, 0.5f appear as 00 00 80 3f, 00 00 00 c0, 00 00 00 3f. */
    const unsigned char f[12] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f};
    int found = 0;
    for (size_t i = 0; i + 12 <= size; i++)
        found |= memcmp(buf + i, f, 12) == 0;
    assert_true(found);
    free(buf);
    bp_net_free(net);
}

static void crc32_matches_the_standard_check_value(void **state)
{
    (void)state;
    assert_int_equal(bp__crc32(0, "123456789", 9), 0xcbf43926u);
    assert_int_equal(bp__crc32(bp__crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
    assert_int_equal(bp__crc32(0, "", 0), 0);
}

/* ---- hostile and corrupted input --------------------------------------------------------- */

static void every_truncation_is_rejected(void **state)
{
    (void)state;
    bp_net *net = make_net(4);
    assert_status(bp_net_set_meta(net, "k", "v"), BP_OK);
    size_t size;
    unsigned char *buf = save_to_buffer(net, NULL, &size);
    for (size_t len = 0; len < size; len++) {
        unsigned char *copy = malloc(len + 1); /* exact size: ASan sees any over-read */
        memcpy(copy, buf, len);
        bp_net *out = (bp_net *)(uintptr_t)1;
        assert_status(bp_net_load_buffer(&out, copy, len), BP_ERR_FORMAT);
        assert_null(out);
        free(copy);
    }
    free(buf);
    bp_net_free(net);
}

static void every_flipped_byte_is_detected(void **state)
{
    (void)state;
    bp_net *net = make_net(5);
    size_t size;
    unsigned char *buf = save_to_buffer(net, NULL, &size);
    for (size_t i = 0; i < size; i++) {
        buf[i] ^= 0x10;
        bp_net *out;
        const bp_status s = bp_net_load_buffer(&out, buf, size);
        assert_true(s == BP_ERR_CHECKSUM || s == BP_ERR_FORMAT || s == BP_ERR_VERSION);
        assert_null(out);
        buf[i] ^= 0x10;
    }
    bp_net *out;
    assert_status(bp_net_load_buffer(&out, buf, size), BP_OK);
    bp_net_free(out);
    buf[size / 2] ^= 1;
    assert_status(bp_net_load_buffer(&out, buf, size), BP_ERR_CHECKSUM);
    assert_non_null(strstr(bp_last_error(), "CRC"));
    free(buf);
    bp_net_free(net);
}

static void future_format_version_is_refused_with_a_clear_message(void **state)
{
    (void)state;
    bp_net *net = make_net(6);
    size_t size;
    unsigned char *buf = save_to_buffer(net, NULL, &size);
    put32(buf + 8, BP_FORMAT_VERSION + 1);
    reseal(buf, size);
    bp_net *out;
    assert_status(bp_net_load_buffer(&out, buf, size), BP_ERR_VERSION);
    assert_non_null(strstr(bp_last_error(), "newer"));
    put32(buf + 8, 0);
    assert_status(bp_net_load_buffer(&out, buf, size), BP_ERR_FORMAT);
    buf[0] = 'X';
    assert_status(bp_net_load_buffer(&out, buf, size), BP_ERR_FORMAT);
    assert_non_null(strstr(bp_last_error(), "magic"));
    free(buf);
    bp_net_free(net);
}

/* Append a section (tag, flags, payload) before the CRC; returns the new image. */
static unsigned char *with_extra_section(const unsigned char *buf, size_t size, const char *tag,
                                         uint32_t flags, size_t *new_size)
{
    const unsigned char payload[5] = {1, 2, 3, 4, 5};
    *new_size = size + 16 + sizeof payload;
    unsigned char *b = malloc(*new_size);
    memcpy(b, buf, size - 4);
    unsigned char *s = b + size - 4;
    memcpy(s, tag, 4);
    put32(s + 4, flags);
    put64(s + 8, sizeof payload);
    memcpy(s + 16, payload, sizeof payload);
    reseal(b, *new_size);
    return b;
}

static void unknown_optional_sections_are_skipped_required_ones_refused(void **state)
{
    (void)state;
    bp_net *net = make_net(7);
    size_t size, n2;
    unsigned char *buf = save_to_buffer(net, NULL, &size);
    unsigned char *opt = with_extra_section(buf, size, "ZZZZ", 0, &n2);
    bp_net *out;
    assert_status(bp_net_load_buffer(&out, opt, n2), BP_OK);
    assert_same_predictions(net, out);
    bp_net_free(out);
    unsigned char *req = with_extra_section(buf, size, "ZZZZ", 1, &n2);
    assert_status(bp_net_load_buffer(&out, req, n2), BP_ERR_VERSION);
    assert_non_null(strstr(bp_last_error(), "ZZZZ"));
    unsigned char *dup = with_extra_section(buf, size, "META", 0, &n2);
    assert_status(bp_net_load_buffer(&out, dup, n2), BP_ERR_FORMAT);
    free(dup);
    free(req);
    free(opt);
    free(buf);
    bp_net_free(net);
}

/* Offset of the first layer record's parameter count within a 1-layer dense net image. */
static void hostile_values_behind_a_valid_checksum_are_rejected(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 9), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_TANH), BP_OK);
    size_t size;
    unsigned char *buf = save_to_buffer(net, NULL, &size);
    const size_t sec = find_section(buf, size, "NET ") + 16;
    /* NET: inputs u64, input shape 3 x u64, rng 4 x u64, 3 x f64, accumulate u32, nlayers
     * u32, then the layer: kind u32, nhyper u32, nhyper x (u32, f64), nparams u64, floats,
     * nstate u64. */
    const size_t layer = sec + 8 + 24 + 32 + 24 + 8;
    const uint32_t nh = le32(buf + layer + 4);
    const size_t nparams_at = layer + 8 + 12 * (size_t)nh;
    unsigned char *b = malloc(size);
    bp_net *out;
    struct {
        size_t at;
        int width;
        uint64_t value;
        bp_status expect;
    } cases[] = {
        {sec, 8, 0, BP_ERR_FORMAT},                         /* zero inputs */
        {sec, 8, (uint64_t)1 << 40, BP_ERR_FORMAT},         /* huge inputs */
        {sec + 8, 8, 0, BP_ERR_FORMAT},                     /* zero channels */
        {sec + 8, 8, 3, BP_ERR_FORMAT},                     /* shape 3 x 1 x 1 != 2 inputs */
        {sec + 16, 8, 2, BP_ERR_FORMAT},                    /* shape 2 x 2 x 1 != 2 inputs */
        {sec + 24, 8, (uint64_t)1 << 62, BP_ERR_FORMAT},    /* product overflows */
        {sec + 32, 8, 0, BP_OK},                            /* one rng word 0: fine */
        {sec + 88, 4, 7, BP_ERR_FORMAT},                    /* accumulate = 7 */
        {sec + 92, 4, 0xffffffffu, BP_ERR_FORMAT},          /* 4 billion layers */
        {sec + 92, 4, 2, BP_ERR_FORMAT},                    /* a layer more than held */
        {layer, 4, 99, BP_ERR_VERSION},                     /* unknown kind */
        {layer + 4, 4, 1000, BP_ERR_FORMAT},                /* too many hyper-parameters */
        {layer + 8, 4, 777, BP_ERR_FORMAT},                 /* units missing */
        {layer + 8 + 24, 4, 777, BP_ERR_VERSION},           /* unknown setting key */
        {layer + 8 + 24, 4, 50, BP_ERR_VERSION},            /* unknown construction key */
        {nparams_at, 8, (uint64_t)1 << 60, BP_ERR_FORMAT},  /* parameter count overflow */
        {nparams_at, 8, 8, BP_ERR_FORMAT},                  /* count differs from the shape */
        {nparams_at + 8, 4, 0x7fc00000u, BP_ERR_NONFINITE}, /* NaN weight */
        {nparams_at + 8, 4, 0x7f800000u, BP_ERR_NONFINITE}, /* Inf weight */
        {nparams_at + 8 + 36, 8, 3, BP_ERR_FORMAT},         /* dense has no extra state */
        {nparams_at + 8 + 36, 8, (uint64_t)-1, BP_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, buf, size);
        for (int k = 0; k < cases[i].width; k++)
            b[cases[i].at + (size_t)k] = (unsigned char)(cases[i].value >> (8 * k));
        reseal(b, size);
        const bp_status s = bp_net_load_buffer(&out, b, size);
        if (s != cases[i].expect) print_error("case %zu: %s\n", i, bp_last_error());
        assert_status(s, cases[i].expect);
        if (s == BP_OK)
            bp_net_free(out);
        else
            assert_null(out);
    }
    /* Each hyper-parameter value: units 0, a fractional activation, NaN slope. */
    const struct {
        uint32_t key;
        double value;
    } hv[] = {{BP__HP_UNITS, 0.0},
              {BP__HP_ACTIVATION, 2.5},
              {BP__HP_ACTIVATION, 55.0},
              {BP_LAYER_LEAKY_SLOPE, (double)NAN},
              {BP_LAYER_TRAINABLE, 3.0}};
    for (size_t i = 0; i < sizeof hv / sizeof hv[0]; i++) {
        memcpy(b, buf, size);
        for (uint32_t k = 0; k < nh; k++) {
            unsigned char *pair = b + layer + 8 + 12 * (size_t)k;
            if (le32(pair) != hv[i].key) continue;
            uint64_t u;
            memcpy(&u, &hv[i].value, 8);
            put64(pair + 4, u);
        }
        reseal(b, size);
        assert_status(bp_net_load_buffer(&out, b, size), BP_ERR_FORMAT);
    }
    free(b);
    free(buf);
    bp_net_free(net);
}

static void load_and_save_reject_bad_arguments(void **state)
{
    (void)state;
    bp_net *net = make_net(8), *out;
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_SGD), BP_OK);
    unsigned char b[64] = {0};
    size_t size;
    assert_status(bp_net_load_buffer(NULL, b, sizeof b), BP_ERR_INVALID_ARG);
    assert_status(bp_net_load_buffer(&out, NULL, 10), BP_ERR_INVALID_ARG);
    assert_null(out);
    assert_status(bp_net_load(&out, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_load_ex(&out, "x", bp_test_alloc_fn, NULL, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_load_buffer_ex(&out, b, sizeof b, NULL, bp_test_free_fn, NULL),
                  BP_ERR_INVALID_ARG);
    assert_status(bp_net_load(&out, "/nonexistent/dir/model.bpm"), BP_ERR_IO);
    assert_non_null(strstr(bp_last_error(), "model.bpm"));
    assert_status(bp_net_save(NULL, "x"), BP_ERR_INVALID_ARG);
    assert_status(bp_net_save(net, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_save((const bp_net *)(const void *)opt, "x"), BP_ERR_INVALID_ARG);
    assert_status(bp_net_save_buffer(NULL, b, sizeof b, &size), BP_ERR_INVALID_ARG);
    assert_status(bp_checkpoint_save(net, NULL, "x"), BP_ERR_INVALID_ARG);
    assert_status(bp_checkpoint_save(net, (const bp_optimizer *)(const void *)net, "x"),
                  BP_ERR_INVALID_ARG);
    assert_status(bp_checkpoint_save_buffer(NULL, opt, b, sizeof b, &size), BP_ERR_INVALID_ARG);
    bp_optimizer *oo;
    assert_status(bp_checkpoint_load_buffer(&out, NULL, b, sizeof b), BP_ERR_INVALID_ARG);
    assert_status(bp_checkpoint_load_buffer(NULL, &oo, b, sizeof b), BP_ERR_INVALID_ARG);
    assert_null(oo);
    assert_status(bp_checkpoint_load(&out, &oo, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_checkpoint_load_ex(&out, &oo, "x", NULL, bp_test_free_fn, NULL),
                  BP_ERR_INVALID_ARG);
    assert_status(bp_checkpoint_load_buffer_ex(&out, &oo, NULL, 3, NULL, NULL, NULL),
                  BP_ERR_INVALID_ARG);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* ---- scalers, metadata, training state --------------------------------------------------- */

static void scalers_are_validated_stored_and_removed(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 1), BP_OK);
    const float off[2] = {1, 2}, sc[2] = {3, 4}, zero[2] = {1, 0}, nan2[2] = {NAN, 1};
    float o[2], s[2];
    size_t count = 99;
    assert_status(bp_net_get_scaler(net, BP_SCALE_INPUTS, NULL, NULL, 0, &count), BP_OK);
    assert_int_equal(count, 0);
    assert_status(bp_net_set_scaler(net, BP_SCALE_TARGETS, off, sc, 1), BP_ERR_SHAPE);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, 3), BP_ERR_SHAPE);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, zero, 2), BP_ERR_NONFINITE);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, nan2, sc, 2), BP_ERR_NONFINITE);
    assert_status(bp_net_set_scaler(net, 7, off, sc, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, NULL, sc, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_set_scaler(NULL, BP_SCALE_INPUTS, off, sc, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, 2), BP_OK);
    assert_status(bp_net_get_scaler(net, BP_SCALE_INPUTS, o, s, 1, &count),
                  BP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(count, 2);
    assert_status(bp_net_get_scaler(net, BP_SCALE_INPUTS, o, s, 2, &count), BP_OK);
    assert_memory_equal(o, off, sizeof off);
    assert_memory_equal(s, sc, sizeof sc);
    assert_status(bp_net_get_scaler(net, BP_SCALE_INPUTS, o, s, 2, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_get_scaler(NULL, BP_SCALE_INPUTS, o, s, 2, &count), BP_ERR_INVALID_ARG);
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, NULL, NULL, 0), BP_OK);
    assert_status(bp_net_get_scaler(net, BP_SCALE_INPUTS, o, s, 2, &count), BP_OK);
    assert_int_equal(count, 0);
    /* A target scaler that no longer matches the outputs blocks saving. */
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_net_set_scaler(net, BP_SCALE_TARGETS, off, sc, 2), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    size_t size;
    assert_status(bp_net_save_buffer(net, NULL, 0, &size), BP_ERR_STATE);
    bp_net_free(net);
}

static void metadata_is_set_replaced_removed_and_bounded(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 1), BP_OK);
    char buf[16];
    size_t need = 0;
    assert_status(bp_net_get_meta(net, "a", buf, sizeof buf, &need), BP_ERR_INDEX);
    assert_status(bp_net_set_meta(net, "a", "first"), BP_OK);
    assert_status(bp_net_set_meta(net, "a", "second value"), BP_OK);
    assert_status(bp_net_get_meta(net, "a", buf, sizeof buf, &need), BP_OK);
    assert_string_equal(buf, "second value");
    assert_int_equal(need, 13);
    assert_status(bp_net_get_meta(net, "a", buf, 4, &need), BP_ERR_BUFFER_TOO_SMALL);
    assert_string_equal(buf, "sec");
    assert_status(bp_net_get_meta(net, "a", NULL, 0, &need), BP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need, 13);
    assert_status(bp_net_set_meta(net, "a", NULL), BP_OK);
    assert_status(bp_net_get_meta(net, "a", buf, sizeof buf, &need), BP_ERR_INDEX);
    assert_status(bp_net_set_meta(net, "never-set", NULL), BP_OK);
    static char big[70000];
    memset(big, 'k', sizeof big - 1);
    assert_status(bp_net_set_meta(net, "", "v"), BP_ERR_OUT_OF_RANGE);
    big[256] = '\0';
    assert_status(bp_net_set_meta(net, big, "v"), BP_ERR_OUT_OF_RANGE);
    big[256] = 'k';
    assert_status(bp_net_set_meta(net, "long", big), BP_ERR_OUT_OF_RANGE);
    big[65535] = '\0';
    assert_status(bp_net_set_meta(net, "long", big), BP_OK);
    big[255] = '\0';
    assert_status(bp_net_set_meta(net, big, "max key"), BP_OK);
    assert_status(bp_net_set_meta(net, NULL, "v"), BP_ERR_INVALID_ARG);
    assert_status(bp_net_set_meta(NULL, "k", "v"), BP_ERR_INVALID_ARG);
    assert_status(bp_net_get_meta(NULL, "k", buf, 1, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_get_meta(net, NULL, buf, 1, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_net_get_meta(net, "long", NULL, 4, NULL), BP_ERR_INVALID_ARG);
    char key[16];
    for (int i = 2; i < 1024; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_status(bp_net_set_meta(net, key, "x"), BP_OK);
    }
    assert_status(bp_net_set_meta(net, "one too many", "x"), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_net_set_meta(net, "k2", "replace is fine"), BP_OK);
    /* The extremes survive a round trip. */
    size_t size;
    unsigned char *img = save_to_buffer(net, NULL, &size);
    bp_net *back;
    assert_status(bp_net_load_buffer(&back, img, size), BP_OK);
    char *value = malloc(65536);
    assert_status(bp_net_get_meta(back, "long", value, 65536, &need), BP_OK);
    assert_int_equal(need, 65536);
    assert_status(bp_net_get_meta(back, big, buf, sizeof buf, NULL), BP_OK);
    assert_string_equal(buf, "max key");
    assert_status(bp_net_get_meta(back, "k1023", buf, sizeof buf, NULL), BP_OK);
    free(value);
    free(img);
    bp_net_free(back);
    bp_net_free(net);
}

static void clone_copies_scalers_metadata_and_fit_settings(void **state)
{
    (void)state;
    bp_net *net = make_net(2), *copy;
    const float off[5] = {0}, sc[5] = {1, 1, 1, 1, 1};
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, 5), BP_OK);
    assert_status(bp_net_set_meta(net, "who", "me"), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, 7), BP_OK);
    assert_status(bp_net_clone(&copy, net), BP_OK);
    bp_net_free(net);
    char buf[8];
    assert_status(bp_net_get_meta(copy, "who", buf, sizeof buf, NULL), BP_OK);
    assert_string_equal(buf, "me");
    size_t count;
    float o[5], s[5];
    assert_status(bp_net_get_scaler(copy, BP_SCALE_INPUTS, o, s, 5, &count), BP_OK);
    assert_int_equal(count, 5);
    double epochs;
    assert_status(bp_net_get(copy, BP_FIT_EPOCHS, &epochs), BP_OK);
    assert_true(epochs == 7.0);
    bp_net_free(copy);
}

/* No release wrote the retired TRST section (training-state records); a file holding one is
 * refused like any unknown required section, and a model file is no checkpoint. */
static void retired_trst_section_is_an_unknown_required_section(void **state)
{
    (void)state;
    bp_net *net = make_net(2), *back;
    bp_optimizer *opt, *oback;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    size_t size;
    unsigned char *img = save_to_buffer(net, opt, &size);
    /* Append "TRST", required, 4 bytes: a record count of 0. */
    const size_t grown = size + 20;
    unsigned char *b = malloc(grown);
    assert_non_null(b);
    memcpy(b, img, size - 4);
    unsigned char *sec = b + size - 4;
    memcpy(sec, "TRST", 4);
    put32(sec + 4, 1);
    put64(sec + 8, 4);
    put32(sec + 16, 0);
    reseal(b, grown);
    assert_status(bp_checkpoint_load_buffer(&back, &oback, b, grown), BP_ERR_VERSION);
    assert_null(back);
    assert_null(oback);
    assert_non_null(strstr(bp_last_error(), "TRST: unknown required section"));
    free(b);
    free(img);
    img = save_to_buffer(net, NULL, &size);
    assert_status(bp_checkpoint_load_buffer(&back, &oback, img, size), BP_ERR_FORMAT);
    assert_non_null(strstr(bp_last_error(), "not a checkpoint"));
    free(img);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* ---- checkpoints and resumption ------------------------------------------------------ */

enum { RN = 48, RIN = 4, ROUT = 3, RBATCH = 8 };
static float rx[RN * RIN], ry[RN * ROUT];

static void make_data(void)
{
    uint64_t st = 99;
    bp_test_fill_uniform(rx, RN * RIN, -1, 1, &st);
    for (int i = 0; i < RN; i++) {
        const int c = (rx[i * RIN] + rx[i * RIN + 1] > 0) + (rx[i * RIN + 2] > 0.5f);
        for (int k = 0; k < ROUT; k++)
            ry[i * ROUT + k] = k == c ? 1.0f : 0.0f;
    }
}

/* One step on a batch chosen by the net's own generator (so its state must survive the
 * checkpoint); iRprop- trains full-batch. */
static void train(bp_net *net, bp_optimizer *opt, int steps)
{
    const int full = bp_optimizer_kind(opt) == BP_OPTIMIZER_IRPROP_MINUS;
    for (int i = 0; i < steps; i++) {
        const size_t b = full ? 0 : (size_t)bp__rng_below(&net->rng, RN / RBATCH);
        const size_t n = full ? RN : RBATCH;
        assert_status(bp_net_train_step(net, opt, BP_LOSS_SOFTMAX_CE, rx + b * RBATCH * RIN,
                                        ry + b * RBATCH * ROUT, n, NULL),
                      BP_OK);
    }
}

static bp_optimizer *resume_opt(int kind)
{
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, kind), BP_OK);
    if (kind == BP_OPTIMIZER_SGD) {
        assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.1), BP_OK);
        assert_status(bp_optimizer_set(opt, BP_OPT_MOMENTUM, 0.9), BP_OK);
    } else if (kind == BP_OPTIMIZER_ADAM) {
        assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.01), BP_OK);
    }
    return opt;
}

static bp_net *resume_net(void)
{
    bp_net *net;
    assert_status(bp_net_create(&net, RIN, 2024), BP_OK);
    assert_status(bp_net_add_dense(net, 10, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, ROUT, BP_ACT_SOFTMAX), BP_OK);
    return net;
}

/* Load the checkpoint @p ckpt in a forked child -- a fresh process image of the state, from
 * the file only --, continue training there with @p cont, and return the child's final
 * parameters (@p np floats, malloc'd). Any failure in the child fails the test. The child
 * frees its copies of the parent's objects (@p parent) before it exits: valgrind follows a
 * fork and would report them as leaks. */
typedef int (*continue_fn)(bp_net *net, bp_optimizer *opt, const void *arg);
typedef struct parent_objects {
    bp_net *net;
    bp_optimizer *opt;
    bp_dataset *ds;
} parent_objects;

static float *continue_in_child(const char *ckpt, continue_fn cont, const void *arg, size_t np,
                                parent_objects parent)
{
    char result[128];
    path_in_dir(result, sizeof result, "resume.params");
    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        bp_net *n2;
        bp_optimizer *o2;
        int code = 1;
        if (bp_checkpoint_load(&n2, &o2, ckpt) == BP_OK) {
            code = cont(n2, o2, arg);
            size_t count;
            const float *p = bp_net_params(n2, &count);
            FILE *f = fopen(result, "wb");
            if (code == 0 && (f == NULL || count != np || fwrite(p, sizeof(float), np, f) != np))
                code = 2;
            if (f != NULL) fclose(f);
            bp_optimizer_free(o2);
            bp_net_free(n2);
        }
        bp_net_free(parent.net);
        bp_optimizer_free(parent.opt);
        bp_dataset_free(parent.ds);
        _exit(code);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    float *got = malloc(np * sizeof(float));
    assert_non_null(got);
    FILE *f = fopen(result, "rb");
    assert_non_null(f);
    assert_int_equal(fread(got, sizeof(float), np, f), np);
    fclose(f);
    return got;
}

/* The child's part of resume_is_bit_identical: *arg more steps. */
static int continue_steps(bp_net *net, bp_optimizer *opt, const void *arg)
{
    const int steps = *(const int *)arg;
    const int full = bp_optimizer_kind(opt) == BP_OPTIMIZER_IRPROP_MINUS;
    for (int i = 0; i < steps; i++) {
        const size_t b = full ? 0 : (size_t)bp__rng_below(&net->rng, RN / RBATCH);
        if (bp_net_train_step(net, opt, BP_LOSS_SOFTMAX_CE, rx + b * RBATCH * RIN,
                              ry + b * RBATCH * ROUT, full ? RN : RBATCH, NULL) != BP_OK)
            return 1;
    }
    return 0;
}

/* Train N steps in one go; train K, checkpoint to a file, and in a forked child load it and
 * train N - K more; both must agree bit for bit. */
static void resume_is_bit_identical(int kind)
{
    enum { N = 60, K = 23 };
    make_data();
    bp_net *ref = resume_net();
    bp_optimizer *ropt = resume_opt(kind);
    train(ref, ropt, N);

    bp_net *net = resume_net();
    bp_optimizer *opt = resume_opt(kind);
    train(net, opt, K);
    char ckpt[128];
    path_in_dir(ckpt, sizeof ckpt, "resume.bpc");
    assert_status(bp_checkpoint_save(net, opt, ckpt), BP_OK);
    bp_optimizer_free(opt);
    bp_net_free(net);

    size_t np;
    const float *want = bp_net_params(ref, &np);
    const int more = N - K;
    float *got =
        continue_in_child(ckpt, continue_steps, &more, np, (parent_objects){ref, ropt, NULL});
    assert_memory_equal(got, want, np * sizeof(float));
    /* And not trivially: training moved the weights away from the checkpoint. */
    bp_net *at_k;
    bp_optimizer *ok;
    assert_status(bp_checkpoint_load(&at_k, &ok, ckpt), BP_OK);
    assert_int_equal(bp_optimizer_step_count(ok), K);
    assert_true(memcmp(bp_net_params(at_k, NULL), want, np * sizeof(float)) != 0);
    bp_optimizer_free(ok);
    bp_net_free(at_k);
    free(got);
    bp_optimizer_free(ropt);
    bp_net_free(ref);
}

static void resume_is_bit_identical_for_sgd_momentum(void **state)
{
    (void)state;
    resume_is_bit_identical(BP_OPTIMIZER_SGD);
}

static void resume_is_bit_identical_for_adam(void **state)
{
    (void)state;
    resume_is_bit_identical(BP_OPTIMIZER_ADAM);
}

static void resume_is_bit_identical_for_irprop_minus(void **state)
{
    (void)state;
    resume_is_bit_identical(BP_OPTIMIZER_IRPROP_MINUS);
}

/* bp_net_fit for N epochs in one go equals: fit K epochs, checkpoint, load in a forked child
 * and fit to N there. Shuffling, a warm-up + plateau schedule and early-stopping counters
 * make the generator, the training-loop counters and the settings part of the state. */
static void fit_settings(bp_net *net, double epochs)
{
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, epochs), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_BATCH_SIZE, RBATCH), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_PLATEAU), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_PLATEAU_PATIENCE, 1), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_LR_GAMMA, 0.7), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_WARMUP_EPOCHS, 2), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_PATIENCE, 100), BP_OK);
    /* No epoch counts as an improvement: the plateau schedule cuts the rate every epoch
     * after the warm-up, so its state matters for the resumed run. */
    assert_status(bp_net_set(net, BP_FIT_MIN_DELTA, 10), BP_OK);
}

typedef struct fit_more {
    const bp_dataset *ds;
    size_t from, to; /* epochs done at the checkpoint, epochs wanted in all */
} fit_more;

/* The child's part of fit_resume_is_bit_identical: the loaded net starts at epoch `from`. */
static int continue_fit(bp_net *net, bp_optimizer *opt, const void *arg)
{
    const fit_more *m = arg;
    double start = -1;
    if (bp_net_get(net, BP_FIT_INITIAL_EPOCH, &start) != BP_OK || start != (double)m->from)
        return 3;
    if (bp_net_set(net, BP_FIT_EPOCHS, (double)m->to) != BP_OK) return 4;
    if (bp_net_fit(net, opt, BP_LOSS_SOFTMAX_CE, m->ds, m->ds) != BP_OK) return 5;
    return bp_net_history_length(net) == m->to - m->from ? 0 : 6;
}

static void fit_resume_is_bit_identical(int kind)
{
    enum { N = 9, K = 4 };
    make_data();
    bp_dataset *ds;
    /* iRprop- trains full batch, as it wants. */
    const size_t rows = kind == BP_OPTIMIZER_IRPROP_MINUS ? RBATCH : RN;
    assert_status(bp_dataset_create(&ds, rx, ry, rows, RIN, ROUT), BP_OK);
    bp_net *ref = resume_net();
    bp_optimizer *ropt = resume_opt(kind);
    fit_settings(ref, N);
    assert_status(bp_net_fit(ref, ropt, BP_LOSS_SOFTMAX_CE, ds, ds), BP_OK);
    assert_int_equal(bp_net_history_length(ref), N);

    bp_net *net = resume_net();
    bp_optimizer *opt = resume_opt(kind);
    fit_settings(net, K);
    assert_status(bp_net_fit(net, opt, BP_LOSS_SOFTMAX_CE, ds, ds), BP_OK);
    char ckpt[128];
    path_in_dir(ckpt, sizeof ckpt, "fit_resume.bpc");
    assert_status(bp_checkpoint_save(net, opt, ckpt), BP_OK);
    bp_optimizer_free(opt);
    bp_net_free(net);

    size_t np;
    const float *want = bp_net_params(ref, &np);
    const fit_more more = {ds, K, N};
    float *got = continue_in_child(ckpt, continue_fit, &more, np, (parent_objects){ref, ropt, ds});
    assert_memory_equal(got, want, np * sizeof(float));
    free(got);
    bp_optimizer_free(ropt);
    bp_net_free(ref);
    bp_dataset_free(ds);
}

static void fit_resume_is_bit_identical_for_sgd_momentum(void **state)
{
    (void)state;
    fit_resume_is_bit_identical(BP_OPTIMIZER_SGD);
}

static void fit_resume_is_bit_identical_for_adam(void **state)
{
    (void)state;
    fit_resume_is_bit_identical(BP_OPTIMIZER_ADAM);
}

static void fit_resume_is_bit_identical_for_irprop_minus(void **state)
{
    (void)state;
    fit_resume_is_bit_identical(BP_OPTIMIZER_IRPROP_MINUS);
}

static void model_files_carry_no_training_loop_state(void **state)
{
    (void)state;
    bp_net *net = resume_net();
    bp_optimizer *opt = resume_opt(BP_OPTIMIZER_ADAM);
    fit_settings(net, 3);
    make_data();
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, rx, ry, RN, RIN, ROUT), BP_OK);
    assert_status(bp_net_fit(net, opt, BP_LOSS_SOFTMAX_CE, ds, NULL), BP_OK);
    size_t size;
    assert_status(bp_net_save_buffer(net, NULL, 0, &size), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *buf = malloc(size);
    assert_non_null(buf);
    assert_status(bp_net_save_buffer(net, buf, size, &size), BP_OK);
    bp_net *m;
    assert_status(bp_net_load_buffer(&m, buf, size), BP_OK);
    double v;
    assert_status(bp_net_get(m, BP_FIT_INITIAL_EPOCH, &v), BP_OK);
    assert_close(v, 0, 0, 0);
    /* A checkpoint of the same net continues at epoch 3. */
    assert_status(bp_checkpoint_save_buffer(net, opt, NULL, 0, &size), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *cb = malloc(size);
    assert_non_null(cb);
    assert_status(bp_checkpoint_save_buffer(net, opt, cb, size, &size), BP_OK);
    bp_net *c;
    bp_optimizer *co;
    assert_status(bp_checkpoint_load_buffer(&c, &co, cb, size), BP_OK);
    assert_status(bp_net_get(c, BP_FIT_INITIAL_EPOCH, &v), BP_OK);
    assert_close(v, 3, 0, 0);
    assert_status(bp_net_get(c, BP_FIT_SCHEDULE, &v), BP_OK);
    assert_close(v, BP_SCHEDULE_PLATEAU, 0, 0);
    free(buf);
    free(cb);
    bp_net_free(m);
    bp_net_free(c);
    bp_optimizer_free(co);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(ds);
}

static void checkpoint_restores_every_optimizer_kind_and_the_generator(void **state)
{
    (void)state;
    make_data();
    for (int kind = BP_OPTIMIZER_SGD; kind <= BP_OPTIMIZER_IRPROP_MINUS; kind++) {
        bp_net *net = resume_net(), *back;
        bp_optimizer *opt = resume_opt(kind), *oback;
        if (kind == BP_OPTIMIZER_ADAM) assert_status(bp_optimizer_set(opt, BP_OPT_AMSGRAD, 1), 0);
        if (kind == BP_OPTIMIZER_RMSPROP)
            assert_status(bp_optimizer_set(opt, BP_OPT_CENTERED, 1), BP_OK);
        train(net, opt, 5);
        size_t size;
        unsigned char *img = save_to_buffer(net, opt, &size);
        bp_test_alloc ta = {0};
        assert_status(bp_checkpoint_load_buffer_ex(&back, &oback, img, size, bp_test_alloc_fn,
                                                   bp_test_free_fn, &ta),
                      BP_OK);
        assert_int_equal(bp_optimizer_kind(oback), kind);
        assert_int_equal(bp_optimizer_step_count(oback), 5);
        assert_int_equal(oback->steps, opt->steps);
        assert_int_equal(oback->sgd_buf_ready, opt->sgd_buf_ready);
        assert_true(oback->nadam_mu_product == opt->nadam_mu_product);
        assert_memory_equal(oback->set, opt->set, sizeof opt->set);
        const size_t ns = bp__optimizer_state_floats(opt);
        assert_int_equal(bp__optimizer_state_floats(oback), ns);
        assert_memory_equal(oback->state, opt->state, ns * sizeof(float));
        /* The generator continues where it was. */
        assert_status(bp_layer_init_weights(bp_net_layer(net, 0), BP_INIT_HE_NORMAL, 0), 0);
        assert_status(bp_layer_init_weights(bp_net_layer(back, 0), BP_INIT_HE_NORMAL, 0), 0);
        assert_memory_equal(bp_net_params(net, NULL), bp_net_params(back, NULL),
                            bp_net_param_count(net) * sizeof(float));
        bp_optimizer_free(oback);
        bp_net_free(back);
        assert_int_equal(ta.live, 0);
        free(img);
        bp_optimizer_free(opt);
        bp_net_free(net);
    }
}

static void checkpoint_of_an_unbound_optimizer_round_trips(void **state)
{
    (void)state;
    bp_net *net = resume_net(), *back;
    bp_optimizer *opt = resume_opt(BP_OPTIMIZER_ADAM), *oback;
    size_t size;
    unsigned char *img = save_to_buffer(net, opt, &size);
    assert_status(bp_checkpoint_load_buffer(&back, &oback, img, size), BP_OK);
    assert_int_equal(bp_optimizer_step_count(oback), 0);
    assert_int_equal(bp__optimizer_state_floats(oback), 0);
    double lr;
    assert_status(bp_optimizer_get(oback, BP_OPT_LEARNING_RATE, &lr), BP_OK);
    assert_true(lr == 0.01);
    /* A model loader reads a checkpoint and ignores the optimizer. */
    bp_net *model;
    assert_status(bp_net_load_buffer(&model, img, size), BP_OK);
    bp_net_free(model);
    free(img);
    bp_optimizer_free(oback);
    bp_net_free(back);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void checkpoint_refuses_an_optimizer_bound_to_another_shape(void **state)
{
    (void)state;
    make_data();
    bp_net *net = resume_net(), *other;
    bp_optimizer *opt = resume_opt(BP_OPTIMIZER_SGD);
    train(net, opt, 1);
    assert_status(bp_net_create(&other, RIN, 1), BP_OK);
    assert_status(bp_net_add_dense(other, 2, BP_ACT_TANH), BP_OK);
    size_t size;
    assert_status(bp_checkpoint_save_buffer(other, opt, NULL, 0, &size), BP_ERR_STATE);
    bp_net_free(other);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void hostile_optimizer_state_is_rejected(void **state)
{
    (void)state;
    make_data();
    bp_net *net = resume_net(), *back;
    bp_optimizer *opt = resume_opt(BP_OPTIMIZER_ADAM), *oback;
    train(net, opt, 2);
    size_t size;
    unsigned char *img = save_to_buffer(net, opt, &size);
    const size_t sec = find_section(img, size, "OPTM") + 16;
    const size_t tail = sec + 8 + 12 * BP__OPT_KEY_COUNT; /* steps, bound, ready, mu, ns */
    const size_t np = bp_net_param_count(net);
    unsigned char *b = malloc(size);
    struct {
        size_t at;
        int width;
        uint64_t value;
        bp_status expect;
    } cases[] = {
        {sec, 4, 99, BP_ERR_VERSION},                        /* unknown kind */
        {sec + 4, 4, 100000, BP_ERR_FORMAT},                 /* too many settings */
        {sec + 8, 4, 150, BP_ERR_VERSION},                   /* unknown setting key */
        {sec + 12, 8, 0xc000000000000000u, BP_ERR_FORMAT},   /* learning rate -2 */
        {sec + 24, 8, 0x4000000000000000u, BP_ERR_FORMAT},   /* momentum 2: not Adam's, but
                                                                still within its bounds */
        {tail + 8, 4, 2, BP_ERR_FORMAT},                     /* bound = 2 */
        {tail + 12, 4, 5, BP_ERR_FORMAT},                    /* momentum flag 5 */
        {tail + 16, 8, 0, BP_ERR_FORMAT},                    /* NAdam product 0 */
        {tail + 24, 8, 7, BP_ERR_FORMAT},                    /* state count wrong */
        {tail + 32 + 4 * np, 4, 0xbf800000u, BP_ERR_FORMAT}, /* v = -1 */
        {tail + 32, 4, 0x7f800000u, BP_ERR_FORMAT},          /* m = Inf */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, img, size);
        for (int k = 0; k < cases[i].width; k++)
            b[cases[i].at + (size_t)k] = (unsigned char)(cases[i].value >> (8 * k));
        reseal(b, size);
        const bp_status s = bp_checkpoint_load_buffer(&back, &oback, b, size);
        if (s != cases[i].expect) print_error("case %zu: %s\n", i, bp_last_error());
        assert_status(s, cases[i].expect);
        assert_null(back);
        assert_null(oback);
    }
    /* An in-bounds value for a setting Adam does not read (momentum 0.5, as writers before
     * 0.2 could store) loads and is dropped: the image written back is the original. */
    memcpy(b, img, size);
    assert_int_equal(le32(b + sec + 20), BP_OPT_MOMENTUM);
    put64(b + sec + 24, 0x3fe0000000000000u);
    reseal(b, size);
    assert_status(bp_checkpoint_load_buffer(&back, &oback, b, size), BP_OK);
    double v = 42.0;
    assert_status(bp_optimizer_get(oback, BP_OPT_MOMENTUM, &v), BP_ERR_INVALID_ARG);
    size_t size2;
    unsigned char *again = save_to_buffer(back, oback, &size2);
    assert_int_equal(size2, size);
    assert_memory_equal(again, img, size);
    free(again);
    bp_optimizer_free(oback);
    bp_net_free(back);
    free(b);
    free(img);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* ---- atomic saves under file faults ------------------------------------------------------ */

static void assert_file_is_model_of(const char *path, bp_net *net)
{
    bp_net *back;
    assert_status(bp_net_load(&back, path), BP_OK);
    assert_same_predictions(net, back);
    bp_net_free(back);
}

static void failed_saves_leave_the_previous_file_intact(void **state)
{
    (void)state;
    bp_net *old = make_net(20), *big;
    char path[128], dir[128], bad[160];
    path_in_dir(path, sizeof path, "keep.bpm");
    assert_status(bp_net_save(old, path), BP_OK);

    /* The path is a directory: the rename fails, nothing is left behind. */
    path_in_dir(dir, sizeof dir, "a_directory");
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_status(bp_net_save(old, dir), BP_ERR_IO);
    struct stat stt;
    assert_int_equal(stat(dir, &stt), 0);
    assert_true(S_ISDIR(stt.st_mode));
    /* A directory that does not exist. */
    snprintf(bad, sizeof bad, "%s/missing/model.bpm", bp_test_tmpdir());
    assert_status(bp_net_save(old, bad), BP_ERR_IO);
    assert_non_null(strstr(bp_last_error(), "model.bpm"));
    assert_status(bp_checkpoint_save(old, NULL, bad), BP_ERR_INVALID_ARG);

    /* Disk full, realistically: a file-size limit makes write() fail with EFBIG (SIGXFSZ
     * ignored). In a child, so that the limit cannot touch anything else. */
    assert_status(bp_net_create(&big, 64, 1), BP_OK);
    assert_status(bp_net_add_dense(big, 256, BP_ACT_RELU), BP_OK);
    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        int code = setrlimit(RLIMIT_FSIZE, &rl) != 0 ? 10 : 0;
        if (code == 0) {
            const bp_status s = bp_net_save(big, path);
            code = s == BP_ERR_IO ? 0 : 11;
            if (code == 0 && strstr(bp_last_error(), "too large") == NULL) code = 12;
        }
        bp_net_free(big);
        bp_net_free(old);
        _exit(code);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_file_is_model_of(path, old);
    assert_false(temp_files_left());
    /* Without the limit the same save succeeds and replaces the file. */
    assert_status(bp_net_save(big, path), BP_OK);
    bp_net *back;
    assert_status(bp_net_load(&back, path), BP_OK);
    assert_int_equal(bp_net_param_count(back), bp_net_param_count(big));
    bp_net_free(back);
    bp_net_free(big);
    bp_net_free(old);
}

/* ---- the golden model ------------------------------------------------------------------ */

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

/* tests/data/golden_<name>.bpm were written by tests/make_golden.c of format version 1; the
 * .txt beside each holds its test inputs and the outputs it gave then (C99 hex floats). */
static bp_net *check_golden(const char *bpm, const char *txt)
{
    bp_net *net;
    assert_status(bp_net_load(&net, bpm), BP_OK);
    FILE *f = fopen(txt, "r");
    assert_non_null(f);
    size_t n, in, out;
    assert_int_equal(fscanf(f, "%zu %zu %zu", &n, &in, &out), 3);
    assert_int_equal(in, bp_net_input_size(net));
    assert_int_equal(out, bp_net_output_size(net));
    float *x = malloc(n * in * sizeof(float)), *want = malloc(n * out * sizeof(float));
    float *got = malloc(n * out * sizeof(float));
    for (size_t i = 0; i < n * in; i++)
        assert_int_equal(fscanf(f, "%a", &x[i]), 1);
    for (size_t i = 0; i < n * out; i++)
        assert_int_equal(fscanf(f, "%a", &want[i]), 1);
    fclose(f);
    assert_status(bp_net_predict(net, x, n, got, n * out), BP_OK);
    for (size_t i = 0; i < n * out; i++)
        assert_close(got[i], want[i], 1e-5, 1e-6);
    /* This version writes the same bytes again (update the golden file, with a format
     * version bump, only when the writer changes on purpose). */
    size_t gsize, size;
    unsigned char *golden = read_all(bpm, &gsize);
    unsigned char *img = save_to_buffer(net, NULL, &size);
    assert_int_equal(size, gsize);
    assert_memory_equal(img, golden, size);
    free(img);
    free(golden);
    free(x);
    free(want);
    free(got);
    return net;
}

static void golden_model_still_loads_and_predicts_the_same(void **state)
{
    (void)state;
    bp_net *net =
        check_golden(BP_TEST_DATA_DIR "/golden_model.bpm", BP_TEST_DATA_DIR "/golden_model.txt");
    char meta[64];
    assert_status(bp_net_get_meta(net, "written_by", meta, sizeof meta, NULL), BP_OK);
    assert_string_equal(meta, "tests/make_golden.c");
    size_t count;
    float off[8], sc[8];
    assert_status(bp_net_get_scaler(net, BP_SCALE_INPUTS, off, sc, 8, &count), BP_OK);
    assert_int_equal(count, bp_net_input_size(net));
    bp_net_free(net);
}

/* tests/data/golden_ckpt_v1_{sgd,irprop}.bpc: checkpoints written by tests/make_golden.c of
 * format version 1 (copies of its fuzz seeds) while bp_optimizer_set() still accepted keys
 * that do not apply: SGD with momentum 0.5, and iRprop- holding BP_OPT_MOMENTUM = 0.5 too.
 * Both load with their state bit for bit; this version writes the SGD one back byte for
 * byte, and the iRprop- one with that inapplicable setting at its held value, 0. */
static void golden_checkpoints_still_load_and_save_the_same(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        int kind;
    } files[] = {{BP_TEST_DATA_DIR "/golden_ckpt_v1_sgd.bpc", BP_OPTIMIZER_SGD},
                 {BP_TEST_DATA_DIR "/golden_ckpt_v1_irprop.bpc", BP_OPTIMIZER_IRPROP_MINUS}};
    for (size_t i = 0; i < 2; i++) {
        size_t gsize, size;
        unsigned char *golden = read_all(files[i].path, &gsize);
        bp_net *net;
        bp_optimizer *opt;
        assert_status(bp_checkpoint_load(&net, &opt, files[i].path), BP_OK);
        assert_int_equal(bp_optimizer_kind(opt), files[i].kind);
        assert_int_equal(bp_optimizer_step_count(opt), 3);
        double v;
        if (files[i].kind == BP_OPTIMIZER_SGD) {
            assert_status(bp_optimizer_get(opt, BP_OPT_MOMENTUM, &v), BP_OK);
            assert_true(v == 0.5);
        } else {
            assert_status(bp_optimizer_get(opt, BP_OPT_MOMENTUM, &v), BP_ERR_INVALID_ARG);
            assert_status(bp_optimizer_get(opt, BP_OPT_RPROP_ETA_PLUS, &v), BP_OK);
            assert_true(v == 1.2);
        }
        /* The state floats are the file's (slot-major, after the settings and scalars). */
        const size_t at = find_section(golden, gsize, "OPTM");
        const size_t nset = le32(golden + at + 20);
        const size_t ns = bp__optimizer_state_floats(opt);
        assert_int_equal(ns, (files[i].kind == BP_OPTIMIZER_SGD ? 1 : 2) * bp_net_param_count(net));
        assert_memory_equal(opt->state, golden + at + 24 + 12 * nset + 32, ns * sizeof(float));
        unsigned char *img = save_to_buffer(net, opt, &size);
        assert_int_equal(size, gsize);
        if (files[i].kind == BP_OPTIMIZER_IRPROP_MINUS) {
            /* Settings are (u32 key, f64 value) pairs in key order from 100: momentum is the
             * second. */
            assert_int_equal(le32(golden + at + 24 + 12), BP_OPT_MOMENTUM);
            put64(golden + at + 24 + 12 + 4, 0); /* +0.0 */
            reseal(golden, gsize);
        }
        assert_memory_equal(img, golden, size);
        free(img);
        free(golden);
        bp_optimizer_free(opt);
        bp_net_free(net);
    }
}

/* Format version 2 (#14): a sequence net (input steps in NET) with the kinds of 0.2:
 * embedding, layernorm, and per-step dense, dropout and activation layers. */
static void golden_sequence_net_still_loads_and_predicts_the_same(void **state)
{
    (void)state;
    bp_net *net =
        check_golden(BP_TEST_DATA_DIR "/golden_seq.bpm", BP_TEST_DATA_DIR "/golden_seq.txt");
    size_t steps = 0;
    assert_status(bp_net_input_steps(net, &steps), BP_OK);
    assert_int_equal(steps, 4);
    static const int kinds[] = {BP_LAYER_EMBEDDING, BP_LAYER_LAYERNORM,  BP_LAYER_DENSE,
                                BP_LAYER_DROPOUT,   BP_LAYER_ACTIVATION, BP_LAYER_DENSE};
    assert_int_equal(bp_net_layer_count(net), sizeof kinds / sizeof kinds[0]);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        assert_int_equal(bp_layer_kind(bp_net_layer(net, i)), kinds[i]);
        assert_status(bp_layer_output_steps(bp_net_layer(net, i), &steps), BP_OK);
        assert_int_equal(steps, 4);
    }
    double v;
    assert_status(bp_layer_get(bp_net_layer(net, 0), BP_LAYER_L2, &v), BP_OK);
    assert_close(v, 0.001, 1e-6, 0);
    assert_status(bp_layer_get(bp_net_layer(net, 1), BP_LAYER_LN_EPSILON, &v), BP_OK);
    assert_close(v, 1e-3, 1e-12, 0);
    unsigned char head[12];
    FILE *f = fopen(BP_TEST_DATA_DIR "/golden_seq.bpm", "rb");
    assert_non_null(f);
    assert_int_equal(fread(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    assert_int_equal(le32(head + 8), 2);
    bp_net_free(net);
}

/* Every layer kind: conv2d, batch norm (with running statistics), activation, max, average
 * and global average pooling, flatten, dense, dropout; and the image input shape. */
static void golden_cnn_with_every_layer_kind_still_loads_and_predicts_the_same(void **state)
{
    (void)state;
    bp_net *net =
        check_golden(BP_TEST_DATA_DIR "/golden_cnn.bpm", BP_TEST_DATA_DIR "/golden_cnn.txt");
    size_t c, h, w;
    assert_status(bp_net_input_shape(net, &c, &h, &w), BP_OK);
    assert_true(c == 1 && h == 6 && w == 6);
    static const int kinds[] = {BP_LAYER_CONV2D,         BP_LAYER_BATCHNORM, BP_LAYER_ACTIVATION,
                                BP_LAYER_MAXPOOL2D,      BP_LAYER_CONV2D,    BP_LAYER_AVGPOOL2D,
                                BP_LAYER_GLOBAL_AVGPOOL, BP_LAYER_FLATTEN,   BP_LAYER_DENSE,
                                BP_LAYER_DROPOUT,        BP_LAYER_DENSE};
    assert_int_equal(bp_net_layer_count(net), sizeof kinds / sizeof kinds[0]);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        assert_int_equal(bp_layer_kind(bp_net_layer(net, i)), kinds[i]);
    double v;
    assert_status(bp_layer_get(bp_net_layer(net, 1), BP_LAYER_BN_MOMENTUM, &v), BP_OK);
    assert_close(v, 0.5, 0, 0);
    assert_status(bp_layer_get(bp_net_layer(net, 4), BP_LAYER_LEAKY_SLOPE, &v), BP_OK);
    assert_close(v, 0.1, 1e-6, 0);
    assert_status(bp_layer_get(bp_net_layer(net, 8), BP_LAYER_L2, &v), BP_OK);
    assert_close(v, 0.001, 1e-6, 0);
    assert_status(bp_layer_get(bp_net_layer(net, 9), BP_LAYER_DROPOUT_RATE, &v), BP_OK);
    assert_close(v, 0.2, 1e-6, 0);
    assert_status(bp_layer_output_shape(bp_net_layer(net, 3), &c, &h, &w), BP_OK);
    assert_true(c == 2 && h == 3 && w == 3);
    bp_net_free(net);
}

/* A checkpoint of a CNN resumes bit-identically too: batch-norm running statistics and the
 * dropout masks' generator state are part of it. */
static void cnn_checkpoint_resumes_bit_identically(void **state)
{
    (void)state;
    enum { N = 8, IN = 64 };
    float x[N * IN], y[N];
    uint64_t st = 5;
    bp_test_fill_uniform(x, N * IN, -1, 1, &st);
    for (int i = 0; i < N; i++)
        y[i] = (float)(i % 2);
    bp_net *nets[2];
    bp_optimizer *opts[2];
    for (int k = 0; k < 2; k++) {
        assert_status(bp_net_create_image(&nets[k], 1, 8, 8, 77), BP_OK);
        assert_status(bp_net_add_conv2d(nets[k], 3, 3, 3, 1, 1, BP_ACT_IDENTITY), BP_OK);
        assert_status(bp_net_add_batchnorm(nets[k]), BP_OK);
        assert_status(bp_net_add_activation(nets[k], BP_ACT_RELU), BP_OK);
        assert_status(bp_net_add_maxpool2d(nets[k], 2, 2), BP_OK);
        assert_status(bp_net_add_dropout(nets[k], 0.3), BP_OK);
        assert_status(bp_net_add_dense(nets[k], 2, BP_ACT_SOFTMAX), BP_OK);
        assert_status(bp_optimizer_create(&opts[k], BP_OPTIMIZER_ADAM), BP_OK);
    }
    for (int s = 0; s < 10; s++)
        assert_status(bp_net_train_step(nets[0], opts[0], BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL),
                      BP_OK);
    for (int s = 0; s < 4; s++)
        assert_status(bp_net_train_step(nets[1], opts[1], BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL),
                      BP_OK);
    size_t size;
    assert_status(bp_checkpoint_save_buffer(nets[1], opts[1], NULL, 0, &size),
                  BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *buf = malloc(size);
    assert_non_null(buf);
    assert_status(bp_checkpoint_save_buffer(nets[1], opts[1], buf, size, &size), BP_OK);
    bp_optimizer_free(opts[1]);
    bp_net_free(nets[1]);
    assert_status(bp_checkpoint_load_buffer(&nets[1], &opts[1], buf, size), BP_OK);
    for (int s = 4; s < 10; s++)
        assert_status(bp_net_train_step(nets[1], opts[1], BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, NULL),
                      BP_OK);
    const size_t np = bp_net_param_count(nets[0]);
    assert_memory_equal(bp_net_params(nets[0], NULL), bp_net_params(nets[1], NULL),
                        np * sizeof(float));
    float p0[N * 2], p1[N * 2];
    assert_status(bp_net_predict(nets[0], x, N, p0, N * 2), BP_OK); /* running statistics */
    assert_status(bp_net_predict(nets[1], x, N, p1, N * 2), BP_OK);
    assert_memory_equal(p0, p1, sizeof p0);
    free(buf);
    for (int k = 0; k < 2; k++) {
        bp_optimizer_free(opts[k]);
        bp_net_free(nets[k]);
    }
}

/* Issue 18, finding 1: loading allocates in proportion to the file, however wide the layers
 * it declares. A net of 2^18 inputs followed by 16 parameter-free activation layers, and one
 * of 16 one-filter 1x1 convolutions of a 512 x 512 image (files of about a kilobyte): every
 * such layer used to allocate a zero bias of its output width at construction (1 MiB each:
 * 16 MiB for the file). Now the peak stays within 16 x the file + 64 KiB, as a model and as
 * a checkpoint (which the model image is not); the first run allocates the workspace, and a
 * second run nothing. */
static void assert_load_is_bounded(const bp_net *net)
{
    size_t size;
    unsigned char *img = save_to_buffer(net, NULL, &size);
    const size_t bound = 16 * size + 65536;
    bp_test_bytes tb = {0, 0, 0};
    bp_net *back = NULL;
    assert_status(
        bp_net_load_buffer_ex(&back, img, size, bp_test_bytes_alloc_fn, bp_test_bytes_free_fn, &tb),
        BP_OK);
    if (tb.peak > bound)
        fail_msg("loading %zu bytes allocated %zu (bound %zu)", size, tb.peak, bound);
    /* The first run plans the workspace; a second one allocates nothing. */
    const size_t in = bp_net_input_size(back), out = bp_net_output_size(back);
    float *x = calloc(in, sizeof(float)), *y = calloc(out, sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    x[0] = 1.0f;
    assert_status(bp_net_predict(back, x, 1, y, out), BP_OK);
    const size_t live = tb.live, peak = tb.peak;
    assert_status(bp_net_predict(back, x, 1, y, out), BP_OK);
    assert_int_equal(tb.live, live);
    assert_int_equal(tb.peak, peak);
    assert_true(y[0] == 1.0f); /* ReLU of ReLU of ... 1 */
    bp_net_free(back);
    assert_int_equal(tb.live, 0);
    /* As a checkpoint: refused ("no optimizer"), within the same bound. */
    bp_test_bytes tc = {0, 0, 0};
    bp_optimizer *opt = NULL;
    assert_status(bp_checkpoint_load_buffer_ex(&back, &opt, img, size, bp_test_bytes_alloc_fn,
                                               bp_test_bytes_free_fn, &tc),
                  BP_ERR_FORMAT);
    if (tc.peak > bound)
        fail_msg("checkpoint-loading %zu bytes allocated %zu (bound %zu)", size, tc.peak, bound);
    assert_int_equal(tc.live, 0);
    free(x);
    free(y);
    free(img);
}

static void loading_allocates_in_proportion_to_the_file(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, (size_t)1 << 18, 1), BP_OK);
    for (int i = 0; i < 16; i++)
        assert_status(bp_net_add_activation(net, BP_ACT_RELU), BP_OK);
    assert_load_is_bounded(net);
    bp_net_free(net);
    assert_status(bp_net_create_image(&net, 1, 512, 512, 1), BP_OK);
    for (int i = 0; i < 16; i++)
        assert_status(bp_net_add_conv2d(net, 1, 1, 1, 1, 0, BP_ACT_RELU), BP_OK);
    /* Weights 1, biases 0: every layer passes its input through. */
    float *p = bp_net_params(net, NULL);
    for (size_t i = 0; i < 16; i++)
        p[2 * i] = 1.0f, p[2 * i + 1] = 0.0f;
    assert_load_is_bounded(net);
    bp_net_free(net);
}

/* Issue 18, finding 9: a layer record holding one of its construction keys twice is
 * malformed (which value would count?). The dense layer's last setting is rewritten into a
 * second copy of its first construction key (same value): it used to load. */
static void a_duplicated_construction_key_is_refused(void **state)
{
    (void)state;
    bp_net *net;
    assert_status(bp_net_create(&net, 2, 9), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_TANH), BP_OK);
    size_t size;
    unsigned char *buf = save_to_buffer(net, NULL, &size);
    const size_t sec = find_section(buf, size, "NET ") + 16;
    const size_t layer = sec + 8 + 24 + 32 + 24 + 8;
    const uint32_t nh = le32(buf + layer + 4);
    assert_true(nh >= 3);
    bp_net *out = NULL;
    assert_status(bp_net_load_buffer(&out, buf, size), BP_OK);
    bp_net_free(out);
    memcpy(buf + layer + 8 + 12 * (size_t)(nh - 1), buf + layer + 8, 12);
    reseal(buf, size);
    assert_status(bp_net_load_buffer(&out, buf, size), BP_ERR_FORMAT);
    assert_null(out);
    assert_non_null(strstr(bp_last_error(), "appears twice"));
    free(buf);
    bp_net_free(net);
}

/* Issue 18, finding 3: a net the loader would refuse is not saved (a save over a good model
 * would destroy it). A NaN parameter (here written through bp_net_params(), as an update
 * overflow would leave one) and an Inf optimizer moment: every save fails with
 * BP_ERR_NONFINITE and a message naming the value, and the file on disk is kept. */
static void a_net_that_could_not_be_loaded_is_not_saved(void **state)
{
    (void)state;
    bp_net *net = make_net(3);
    bp_optimizer *opt;
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    float x[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, y[3] = {0.0f, 1.0f, 0.5f};
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL), BP_OK);
    char path[128];
    path_in_dir(path, sizeof path, "refuse.bpm");
    assert_status(bp_net_save(net, path), BP_OK);
    float *p = bp_net_params(net, NULL);
    const float keep = p[7];
    p[7] = (float)NAN;
    size_t size;
    unsigned char buf[64];
    assert_status(bp_net_save(net, path), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_last_error(), "could not be loaded"));
    assert_status(bp_net_save_buffer(net, buf, sizeof buf, &size), BP_ERR_NONFINITE);
    assert_status(bp_checkpoint_save_buffer(net, opt, buf, sizeof buf, &size), BP_ERR_NONFINITE);
    bp_net *back;
    assert_status(bp_net_load(&back, path), BP_OK); /* the earlier file is intact */
    bp_net_free(back);
    p[7] = keep;
    opt->state[2] = (float)INFINITY;
    assert_status(bp_checkpoint_save_buffer(net, opt, buf, sizeof buf, &size), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_last_error(), "optimizer"));
    assert_status(bp_net_save(net, path), BP_OK); /* the model alone is fine */
    bp_optimizer_free(opt);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(golden_cnn_with_every_layer_kind_still_loads_and_predicts_the_same),
        bp_add_test(golden_sequence_net_still_loads_and_predicts_the_same),
        bp_add_test(golden_checkpoints_still_load_and_save_the_same),
        bp_add_test(cnn_checkpoint_resumes_bit_identically),
        bp_add_test(fit_resume_is_bit_identical_for_sgd_momentum),
        bp_add_test(fit_resume_is_bit_identical_for_adam),
        bp_add_test(fit_resume_is_bit_identical_for_irprop_minus),
        bp_add_test(model_files_carry_no_training_loop_state),
        bp_add_test(model_round_trips_through_a_buffer),
        bp_add_test(model_round_trips_through_a_file),
        bp_add_test(empty_net_round_trips),
        bp_add_test(save_buffer_reports_the_size_needed),
        bp_add_test(file_layout_is_little_endian_with_magic_version_and_crc),
        bp_add_test(crc32_matches_the_standard_check_value),
        bp_add_test(every_truncation_is_rejected),
        bp_add_test(every_flipped_byte_is_detected),
        bp_add_test(future_format_version_is_refused_with_a_clear_message),
        bp_add_test(unknown_optional_sections_are_skipped_required_ones_refused),
        bp_add_test(hostile_values_behind_a_valid_checksum_are_rejected),
        bp_add_test(loading_allocates_in_proportion_to_the_file),
        bp_add_test(a_duplicated_construction_key_is_refused),
        bp_add_test(a_net_that_could_not_be_loaded_is_not_saved),
        bp_add_test(load_and_save_reject_bad_arguments),
        bp_add_test(scalers_are_validated_stored_and_removed),
        bp_add_test(metadata_is_set_replaced_removed_and_bounded),
        bp_add_test(clone_copies_scalers_metadata_and_fit_settings),
        bp_add_test(retired_trst_section_is_an_unknown_required_section),
        bp_add_test(resume_is_bit_identical_for_sgd_momentum),
        bp_add_test(resume_is_bit_identical_for_adam),
        bp_add_test(resume_is_bit_identical_for_irprop_minus),
        bp_add_test(checkpoint_restores_every_optimizer_kind_and_the_generator),
        bp_add_test(checkpoint_of_an_unbound_optimizer_round_trips),
        bp_add_test(checkpoint_refuses_an_optimizer_bound_to_another_shape),
        bp_add_test(hostile_optimizer_state_is_rejected),
        bp_add_test(failed_saves_leave_the_previous_file_intact),
        bp_add_test(golden_model_still_loads_and_predicts_the_same),
    };
    return cmocka_run_group_tests(tests, bp_test_tmpdir_setup, bp_test_tmpdir_teardown);
}
