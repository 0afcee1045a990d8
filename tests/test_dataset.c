/* test_dataset.c -- data set handle, loaders (CSV, FANN, IDX), shuffle, split, scalers. */
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

#define DATA(name) BP_TEST_DATA_DIR "/" name

#define tmpdir bp_test_tmpdir()
static char pathbuf[512];

static const char *write_tmp(const char *name, const void *bytes, size_t len)
{
    return bp_test_write_tmp(name, bytes, len);
}

static const char *write_text(const char *name, const char *text)
{
    return write_tmp(name, text, strlen(text));
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void assert_error_contains(const char *needle)
{
    if (strstr(bp_last_error(), needle) == NULL) {
        print_error("bp_last_error() = \"%s\" lacks \"%s\"\n", bp_last_error(), needle);
        fail();
    }
}

/* ---- handle ------------------------------------------------------------------------- */

static const float x6[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}; /* [6 x 2] */
static const float y6[] = {0, 1, 2, 0, 1, 2};                      /* [6 x 1] */

static void create_copies_arrays_and_reports_sizes(void **state)
{
    (void)state;
    float x[12], y[6];
    memcpy(x, x6, sizeof x);
    memcpy(y, y6, sizeof y);
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, x, y, 6, 2, 1), BP_OK);
    x[0] = 99.0f;
    y[0] = 99.0f;
    assert_int_equal(bp_dataset_size(ds), 6);
    assert_int_equal(bp_dataset_input_size(ds), 2);
    assert_int_equal(bp_dataset_output_size(ds), 1);
    assert_memory_equal(bp_dataset_inputs(ds), x6, sizeof x6);
    assert_memory_equal(bp_dataset_targets(ds), y6, sizeof y6);
    assert_string_equal(bp_dataset_last_error(ds), "");
    bp_dataset_free(ds);
}

static void create_rejects_null_zero_and_overflowing_sizes(void **state)
{
    (void)state;
    bp_dataset *ds = (bp_dataset *)&ds;
    assert_status(bp_dataset_create(NULL, x6, y6, 6, 2, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_create(&ds, NULL, y6, 6, 2, 1), BP_ERR_INVALID_ARG);
    assert_null(ds);
    assert_status(bp_dataset_create(&ds, x6, NULL, 6, 2, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_create(&ds, x6, y6, 0, 2, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_create(&ds, x6, y6, 6, 0, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_create(&ds, x6, y6, 6, 2, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_create(&ds, x6, y6, SIZE_MAX / 2, 3, 1), BP_ERR_INVALID_ARG);
    assert_error_contains("overflow");
    assert_null(ds);
}

/* Sizes whose element count fits in size_t but whose byte size does not: no array that big
 * exists, so the call must fail before it reads (it used to scan x past its end). */
static void create_and_scalers_reject_byte_size_overflow_before_reading(void **state)
{
    (void)state;
    bp_dataset *ds = (bp_dataset *)&ds;
    const size_t huge = (size_t)1 << (sizeof(size_t) * 8 - 2); /* 2^62: x 4 bytes wraps */
    assert_status(bp_dataset_create(&ds, x6, y6, huge, 1, 1), BP_ERR_INVALID_ARG);
    assert_error_contains("overflow");
    assert_null(ds);
    assert_status(bp_dataset_create(&ds, x6, y6, 6, 2, huge), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_create(&ds, x6, y6, huge / 2 + 1, 2, 1), BP_ERR_INVALID_ARG);
    float values[2] = {1, 2};
    const float offset[1] = {0}, scale[1] = {1};
    assert_status(bp_scaler_apply(offset, scale, 1, values, huge), BP_ERR_INVALID_ARG);
    assert_status(bp_scaler_invert(offset, scale, 1, values, huge), BP_ERR_INVALID_ARG);
    assert_true(values[0] == 1.0f && values[1] == 2.0f);
}

static void create_rejects_nonfinite_with_row_and_column(void **state)
{
    (void)state;
    float x[12];
    memcpy(x, x6, sizeof x);
    x[5] = (float)NAN;
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, x, y6, 6, 2, 1), BP_ERR_NONFINITE);
    assert_error_contains("input row 2 column 1");
    float y[6];
    memcpy(y, y6, sizeof y);
    y[4] = (float)INFINITY;
    assert_status(bp_dataset_create(&ds, x6, y, 6, 2, 1), BP_ERR_NONFINITE);
    assert_error_contains("target row 4 column 0");
    assert_null(ds);
}

static void invalid_handles_give_zero_null_and_static_message(void **state)
{
    (void)state;
    bp_dataset_free(NULL);
    assert_int_equal(bp_dataset_size(NULL), 0);
    assert_int_equal(bp_dataset_input_size(NULL), 0);
    assert_int_equal(bp_dataset_output_size(NULL), 0);
    assert_null(bp_dataset_inputs(NULL));
    assert_null(bp_dataset_targets(NULL));
    assert_string_equal(bp_dataset_last_error(NULL), bp__invalid_handle_msg);
    struct bp_dataset fake;
    memset(&fake, 0, sizeof fake); /* wrong magic, like a freed handle */
    assert_int_equal(bp_dataset_size(&fake), 0);
    assert_status(bp_dataset_shuffle(&fake, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_shuffle(NULL, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_save_fann(NULL, "x"), BP_ERR_INVALID_ARG);
    bp_dataset_free(&fake); /* no-op */
}

/* ---- CSV ---------------------------------------------------------------------------- */

static void csv_loads_iris_with_150_rows_4_inputs_3_classes(void **state)
{
    (void)state;
    bp_dataset *ds;
    assert_status(bp_dataset_load_csv(&ds, DATA("iris.csv"), ',', 1, 4, 1), BP_OK);
    assert_int_equal(bp_dataset_size(ds), 150);
    assert_int_equal(bp_dataset_input_size(ds), 4);
    assert_int_equal(bp_dataset_output_size(ds), 1);
    size_t classes = 0;
    assert_status(bp_dataset_class_count(ds, &classes), BP_OK);
    assert_int_equal(classes, 3);
    const float *x = bp_dataset_inputs(ds), *y = bp_dataset_targets(ds);
    const float first[4] = {5.1f, 3.5f, 1.4f, 0.2f}, last[4] = {5.9f, 3.0f, 5.1f, 1.8f};
    assert_memory_equal(x, first, sizeof first);
    assert_memory_equal(x + 149 * 4, last, sizeof last);
    size_t per_class[3] = {0, 0, 0};
    for (size_t i = 0; i < 150; i++)
        per_class[(size_t)y[i]]++;
    assert_int_equal(per_class[0], 50);
    assert_int_equal(per_class[1], 50);
    assert_int_equal(per_class[2], 50);
    bp_dataset_free(ds);
}

static void csv_handles_crlf_quotes_blank_lines_and_no_final_newline(void **state)
{
    (void)state;
    const char *p = write_text("ok.csv", "\"a\",\"b, quoted\",c\r\n"
                                         "1, \"2.5\" ,3\r\n"
                                         "\r\n"
                                         "  \n"
                                         "-4e2;x,5,6\r\n"
                                         "7,8,9");
    bp_dataset *ds;
    /* ';' inside a cell makes it non-numeric with ',' as delimiter. */
    assert_status(bp_dataset_load_csv(&ds, p, ',', 1, 2, 1), BP_ERR_FORMAT);
    assert_error_contains("ok.csv:5: column 1: '-4e2;x' is not a number");
    p = write_text("ok.csv", "\"a\",\"b, quoted\",c\r\n"
                             "1, \"2.5\" ,3\r\n"
                             "\r\n"
                             "  \n"
                             "-4e2,5,6\r\n"
                             "7,8,9");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 1, 2, 1), BP_OK);
    assert_int_equal(bp_dataset_size(ds), 3);
    const float x[6] = {1, 2.5f, -400, 5, 7, 8}, y[3] = {3, 6, 9};
    assert_memory_equal(bp_dataset_inputs(ds), x, sizeof x);
    assert_memory_equal(bp_dataset_targets(ds), y, sizeof y);
    bp_dataset_free(ds);
}

static void csv_targets_may_be_a_middle_range_and_other_delimiters(void **state)
{
    (void)state;
    const char *p = write_text("mid.csv", "1\t10\t20\t2\n3\t30\t40\t4\n");
    bp_dataset *ds;
    assert_status(bp_dataset_load_csv(&ds, p, '\t', 0, 1, 2), BP_OK);
    const float x[4] = {1, 2, 3, 4}, y[4] = {10, 20, 30, 40};
    assert_int_equal(bp_dataset_input_size(ds), 2);
    assert_int_equal(bp_dataset_output_size(ds), 2);
    assert_memory_equal(bp_dataset_inputs(ds), x, sizeof x);
    assert_memory_equal(bp_dataset_targets(ds), y, sizeof y);
    bp_dataset_free(ds);
    p = write_text("semi.csv", "1;2\n3;4\n");
    assert_status(bp_dataset_load_csv(&ds, p, ';', 0, 0, 1), BP_OK);
    const float y2[2] = {1, 3};
    assert_memory_equal(bp_dataset_targets(ds), y2, sizeof y2);
    bp_dataset_free(ds);
}

static void csv_reports_line_and_column_of_non_numeric_cell(void **state)
{
    (void)state;
    const char *p = write_text("bad.csv", "a,b,c\n1,2,3\n4,abc,6\n");
    bp_dataset *ds = (bp_dataset *)&ds;
    assert_status(bp_dataset_load_csv(&ds, p, ',', 1, 2, 1), BP_ERR_FORMAT);
    assert_null(ds);
    assert_error_contains("bad.csv:3: column 2: 'abc' is not a number");
    p = write_text("bad.csv", "1,2,3\n4,,6\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 2, 1), BP_ERR_FORMAT);
    assert_error_contains("bad.csv:2: column 2: empty cell");
    p = write_text("bad.csv", "1,2,3\n4,5 6,6\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 2, 1), BP_ERR_FORMAT);
    assert_error_contains("'5 6' is not a number");
}

static void csv_rejects_ragged_row_with_line(void **state)
{
    (void)state;
    bp_dataset *ds;
    const char *p = write_text("ragged.csv", "1,2,3\n4,5,6\n7,8\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 2, 1), BP_ERR_FORMAT);
    assert_error_contains("ragged.csv:3: 2 columns, expected 3 (as on line 1)");
    p = write_text("ragged.csv", "x,y,z\n1,2,3,4\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 1, 2, 1), BP_ERR_FORMAT);
    assert_error_contains("ragged.csv:2: 4 columns, expected 3");
    assert_null(ds);
}

static void csv_rejects_empty_file_header_only_and_missing_targets(void **state)
{
    (void)state;
    bp_dataset *ds;
    const char *p = write_text("empty.csv", "");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 0, 1), BP_ERR_FORMAT);
    assert_error_contains("no data rows (empty file)");
    p = write_text("empty.csv", "\n \r\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 0, 1), BP_ERR_FORMAT);
    p = write_text("header.csv", "a,b\r\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 1, 0, 1), BP_ERR_FORMAT);
    assert_error_contains("no data rows after the header");
    p = write_text("short.csv", "1,2\n3,4\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 1, 2), BP_ERR_FORMAT);
    assert_error_contains("short.csv:1: 2 columns, but the targets are columns 2 .. 3");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, SIZE_MAX, SIZE_MAX), BP_ERR_FORMAT);
    /* A range that wraps around is printed as given, not as "columns 0 .. 18446744073709551614". */
    char want[128];
    snprintf(want, sizeof want,
             "short.csv:1: 2 columns, but the targets are %zu columns from "
             "index %zu (counting from 0)",
             (size_t)SIZE_MAX, (size_t)SIZE_MAX);
    assert_error_contains(want);
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, SIZE_MAX, 1), BP_ERR_FORMAT);
    snprintf(want, sizeof want, "1 columns from index %zu", (size_t)SIZE_MAX);
    assert_error_contains(want);
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 0, 2), BP_ERR_FORMAT);
    assert_error_contains("no column is left for the inputs");
    assert_null(ds);
}

static void csv_rejects_nonfinite_and_unterminated_quote(void **state)
{
    (void)state;
    bp_dataset *ds;
    const char *p = write_text("nan.csv", "1,2\nnan,4\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 1, 1), BP_ERR_NONFINITE);
    assert_error_contains("nan.csv:2: column 1: 'nan' is not a finite float");
    p = write_text("big.csv", "1,2\n3,1e39\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 1, 1), BP_ERR_NONFINITE);
    assert_error_contains("big.csv:2: column 2");
    p = write_text("quote.csv", "1,2\n3,\"4\n5,6\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 1, 1), BP_ERR_FORMAT);
    assert_error_contains("quote.csv:2: column 2: unterminated quote");
    p = write_text("quote.csv", "1,\"2\"x\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 1, 1), BP_ERR_FORMAT);
    assert_error_contains("text after the closing quote");
    static const char binary[] = {'1', ',', '\0', '2', '\n'};
    p = write_tmp("nul.csv", binary, sizeof binary);
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 1, 1), BP_ERR_FORMAT);
    assert_error_contains("'?2' is not a number");
    assert_null(ds);
}

static void csv_accepts_a_utf8_byte_order_mark(void **state)
{
    (void)state;
    bp_dataset *ds;
    /* Data on the first line: the mark is not part of the first cell. */
    const char *p = write_text("bom.csv", "\xef\xbb\xbf"
                                          "1,2\n3,4\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 1, 1), BP_OK);
    assert_int_equal(bp_dataset_size(ds), 2);
    assert_true(bp_dataset_inputs(ds)[0] == 1.0f && bp_dataset_targets(ds)[1] == 4.0f);
    bp_dataset_free(ds);
    /* And with a header, quoted first cell, CRLF. */
    p = write_text("bom.csv", "\xef\xbb\xbf\"a\",b\r\n5,6\r\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 1, 1, 1), BP_OK);
    assert_int_equal(bp_dataset_size(ds), 1);
    bp_dataset_free(ds);
    /* Only at the very start: elsewhere it is still not a number. */
    p = write_text("bom.csv", "1,2\n\xef\xbb\xbf"
                              "3,4\n");
    assert_status(bp_dataset_load_csv(&ds, p, ',', 0, 1, 1), BP_ERR_FORMAT);
    assert_error_contains("bom.csv:2: column 1");
}

/* Memory in proportion to the data: one row of 200,000 columns (0.4 MB of text, 0.8 MB of
 * floats) used to reserve 64 rows (51 MB); the rows a file holds are counted first. */
static void csv_memory_is_in_proportion_to_the_data(void **state)
{
    (void)state;
    const size_t cols = 200000;
    char *text = malloc(cols * 2 + 1);
    assert_non_null(text);
    for (size_t c = 0; c < cols; c++) {
        text[2 * c] = (char)('0' + c % 10);
        text[2 * c + 1] = c + 1 < cols ? ',' : '\n';
    }
    const char *p = write_tmp("wide.csv", text, cols * 2);
    bp_test_bytes tb = {0, 0, 0};
    const bp__alloc a = {bp_test_bytes_alloc_fn, bp_test_bytes_free_fn, &tb};
    bp_dataset *ds;
    assert_status(bp__dataset_load_csv_with(&ds, &a, p, ',', 0, 0, 1, 0), BP_OK);
    assert_int_equal(bp_dataset_size(ds), 1);
    assert_int_equal(bp_dataset_input_size(ds), cols - 1);
    const size_t data = cols * sizeof(float), file = cols * 2 + 1;
    assert_true(tb.live <= data + 1024);        /* what the data set keeps */
    assert_true(tb.peak <= data + file + 1024); /* while loading: the file and the data */
    bp_dataset_free(ds);
    /* Many rows: still exactly the rows (no doubling reserve kept). */
    for (size_t c = 0; c < 1000; c++)
        memcpy(text + 4 * c, "7,8\n", 4);
    p = write_tmp("tall.csv", text, 4000);
    assert_status(bp__dataset_load_csv_with(&ds, &a, p, ',', 0, 1, 1, 0), BP_OK);
    assert_int_equal(bp_dataset_size(ds), 1000);
    assert_true(tb.live <= 1000 * 2 * sizeof(float) + 1024);
    bp_dataset_free(ds);
    /* A short first row followed by long ones, and the other way round: the error is the
     * ragged row's, and nothing is reserved for rows that are not there. */
    memcpy(text, "1,2\n", 4);
    for (size_t c = 0; c < 1000; c++)
        memcpy(text + 4 + 2 * c, c + 1 < 1000 ? "5," : "5\n", 2);
    p = write_tmp("ragged.csv", text, 4 + 2000);
    tb.peak = 0;
    assert_status(bp__dataset_load_csv_with(&ds, &a, p, ',', 0, 1, 1, 0), BP_ERR_FORMAT);
    assert_error_contains("ragged.csv:2: 1000 columns, expected 2 (as on line 1)");
    assert_true(tb.peak <= 2 * 4006 + 1024);
    for (size_t r = 0; r < 1000; r++)
        memcpy(text + 4 + 2000 + 2 * r, "9\n", 2);
    p = write_tmp("ragged.csv", text + 4, 2000 + 2000);
    tb.peak = 0;
    assert_status(bp__dataset_load_csv_with(&ds, &a, p, ',', 0, 0, 1, 0), BP_ERR_FORMAT);
    assert_error_contains("ragged.csv:2: 1 columns, expected 1000 (as on line 1)");
    assert_true(tb.peak <= 3 * 4000 + 1024); /* was 1000 rows x 1000 columns reserved */
    assert_int_equal(tb.live, 0);
    free(text);
}

static void csv_rejects_invalid_arguments(void **state)
{
    (void)state;
    bp_dataset *ds = (bp_dataset *)&ds;
    const char *iris = DATA("iris.csv");
    assert_status(bp_dataset_load_csv(NULL, iris, ',', 1, 4, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_csv(&ds, NULL, ',', 1, 4, 1), BP_ERR_INVALID_ARG);
    assert_null(ds);
    assert_status(bp_dataset_load_csv(&ds, iris, '.', 1, 4, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_csv(&ds, iris, 'e', 1, 4, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_csv(&ds, iris, 0, 1, 4, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_csv(&ds, iris, ',', 2, 4, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_csv(&ds, iris, ',', 1, 4, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_csv(&ds, DATA("no-such-file.csv"), ',', 1, 4, 1), BP_ERR_IO);
    assert_error_contains("no-such-file.csv: cannot open");
    assert_status(bp_dataset_load_csv(&ds, BP_TEST_DATA_DIR, ',', 1, 4, 1), BP_ERR_IO);
    assert_null(ds);
}

/* ---- FANN --------------------------------------------------------------------------- */

static void fann_loads_file_with_irregular_whitespace(void **state)
{
    (void)state;
    bp_dataset *ds;
    assert_status(bp_dataset_load_fann(&ds, DATA("xor.fann")), BP_OK);
    assert_int_equal(bp_dataset_size(ds), 4);
    assert_int_equal(bp_dataset_input_size(ds), 2);
    assert_int_equal(bp_dataset_output_size(ds), 1);
    const float x[8] = {0, 0, 0, 1, 1, 0, 1, 1}, y[4] = {0, 1, 1, 0};
    assert_memory_equal(bp_dataset_inputs(ds), x, sizeof x);
    assert_memory_equal(bp_dataset_targets(ds), y, sizeof y);
    bp_dataset_free(ds);
}

static size_t count_tmp_files(void)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

static void fann_round_trips_exact_floats_through_save(void **state)
{
    (void)state;
    float x[7 * 5], y[7 * 3];
    uint64_t s = 12345;
    bp_test_fill_uniform(x, 35, -1e6f, 1e6f, &s);
    bp_test_fill_uniform(y, 21, -1e-6f, 1e-6f, &s);
    x[0] = 1e-40f; /* subnormal */
    x[1] = -3.4028235e38f;
    bp_dataset *ds, *back;
    assert_status(bp_dataset_create(&ds, x, y, 7, 5, 3), BP_OK);
    snprintf(pathbuf, sizeof pathbuf, "%s/round.train", tmpdir);
    char path[512];
    strcpy(path, pathbuf);
    write_text("round.train", "old contents");
    assert_status(bp_dataset_save_fann(ds, path), BP_OK);
    assert_int_equal(count_tmp_files(), 0);
    assert_status(bp_dataset_load_fann(&back, path), BP_OK);
    assert_int_equal(bp_dataset_size(back), 7);
    assert_int_equal(bp_dataset_input_size(back), 5);
    assert_int_equal(bp_dataset_output_size(back), 3);
    assert_memory_equal(bp_dataset_inputs(back), x, sizeof x);
    assert_memory_equal(bp_dataset_targets(back), y, sizeof y);
    size_t len;
    unsigned char *text = read_all(path, &len);
    assert_true(len > 6 && memcmp(text, "7 5 3\n", 6) == 0);
    free(text);
    bp_dataset_free(back);
    bp_dataset_free(ds);
}

static void fann_rejects_counts_that_disagree_with_the_header(void **state)
{
    (void)state;
    bp_dataset *ds = (bp_dataset *)&ds;
    const char *p = write_text("few.train", "3 2 1\n1 2\n3\n4 5\n6\n7 8\n          \n");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_error_contains("file ends after 8 of the 9 numbers its header announces (sample 2)");
    p = write_text("many.train", "2 2 1\n1 2\n3\n4 5\n6\n7\n");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_error_contains("many.train:6: more numbers than the 2 x (2 + 1)");
    p = write_text("word.train", "2 1 1\n1 2\n3 four\n");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_error_contains("word.train:3: sample 1 output 0: 'four' is not a number");
    p = write_text("inf.train", "1 1 1\n1 inf\n");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_NONFINITE);
    assert_null(ds);
}

static void fann_rejects_bad_and_overflowing_headers_before_allocating(void **state)
{
    (void)state;
    bp_dataset *ds;
    const char *p = write_text("huge.train", "4000000000 4000000000 1\n1 2\n");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_error_contains("the rest of the file holds at most");
    p = write_text("huge.train", "4000000000 4000000000 4000000000\n1\n");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_error_contains("overflow");
    p = write_text("huge.train", "99999999999999999999999 1 1\n1\n");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_error_contains("is not a count");
    p = write_text("hdr.train", "2 -1 1\n");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_error_contains("header num_input '-1' is not a count");
    p = write_text("hdr.train", "0 1 1\n");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_error_contains("header num_data is 0");
    p = write_text("hdr.train", "2 1");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_error_contains("header ends before num_output");
    p = write_text("hdr.train", "");
    assert_status(bp_dataset_load_fann(&ds, p), BP_ERR_FORMAT);
    assert_null(ds);
}

static void fann_rejects_invalid_arguments_and_unwritable_paths(void **state)
{
    (void)state;
    bp_dataset *ds = (bp_dataset *)&ds;
    assert_status(bp_dataset_load_fann(NULL, DATA("xor.fann")), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_fann(&ds, NULL), BP_ERR_INVALID_ARG);
    assert_null(ds);
    assert_status(bp_dataset_load_fann(&ds, DATA("missing.train")), BP_ERR_IO);
    assert_status(bp_dataset_create(&ds, x6, y6, 6, 2, 1), BP_OK);
    assert_status(bp_dataset_save_fann(ds, NULL), BP_ERR_INVALID_ARG);
    snprintf(pathbuf, sizeof pathbuf, "%s/no/such/dir/out.train", tmpdir);
    assert_status(bp_dataset_save_fann(ds, pathbuf), BP_ERR_IO);
    assert_non_null(strstr(bp_last_error(), "out.train"));
    /* A directory in the way: the rename fails, the temporary file is removed. */
    snprintf(pathbuf, sizeof pathbuf, "%s/adir", tmpdir);
    assert_int_equal(mkdir(pathbuf, 0755), 0);
    assert_status(bp_dataset_save_fann(ds, pathbuf), BP_ERR_IO);
    assert_int_equal(count_tmp_files(), 0);
    rmdir(pathbuf);
    bp_dataset_free(ds);
}

/* ---- IDX ---------------------------------------------------------------------------- */

static const float tiny_pixels[12] = {0, 255, 128, 1, 10, 20, 30, 40, 255, 255, 0, 0};
static const float tiny_labels[3] = {2, 0, 1};

static void assert_tiny_idx(const bp_dataset *ds, size_t classes)
{
    assert_int_equal(bp_dataset_size(ds), 3);
    assert_int_equal(bp_dataset_input_size(ds), 4);
    const float *x = bp_dataset_inputs(ds), *y = bp_dataset_targets(ds);
    for (size_t i = 0; i < 12; i++)
        assert_true(x[i] == tiny_pixels[i] / 255.0f);
    if (classes == 0) {
        assert_int_equal(bp_dataset_output_size(ds), 1);
        assert_memory_equal(y, tiny_labels, sizeof tiny_labels);
        return;
    }
    assert_int_equal(bp_dataset_output_size(ds), classes);
    for (size_t i = 0; i < 3; i++)
        for (size_t c = 0; c < classes; c++)
            assert_true(y[i * classes + c] == (c == (size_t)tiny_labels[i] ? 1.0f : 0.0f));
}

static void idx_loads_class_indices_and_one_hot(void **state)
{
    (void)state;
    bp_dataset *ds;
    const char *img = DATA("tiny-images-idx3-ubyte"), *lab = DATA("tiny-labels-idx1-ubyte");
    assert_status(bp_dataset_load_idx(&ds, img, lab, 0), BP_OK);
    assert_tiny_idx(ds, 0);
    bp_dataset_free(ds);
    assert_status(bp_dataset_load_idx(&ds, img, lab, 10), BP_OK);
    assert_tiny_idx(ds, 10);
    bp_dataset_free(ds);
    assert_status(bp_dataset_load_idx(&ds, img, lab, 2), BP_ERR_INDEX);
    assert_error_contains("item 0 has label 2, not below 2 classes");
    assert_null(ds);
}

static void idx_detects_gzip_by_magic_not_name(void **state)
{
    (void)state;
    bp_dataset *ds = (bp_dataset *)&ds;
    size_t len;
    unsigned char *gz = read_all(DATA("tiny-images-idx3-ubyte.gz"), &len);
    char img[512];
    strcpy(img, write_tmp("images.bin", gz, len)); /* no .gz in the name */
#ifdef BP_HAVE_ZLIB
    assert_status(bp_dataset_load_idx(&ds, img, DATA("tiny-labels-idx1-ubyte.gz"), 3), BP_OK);
    assert_tiny_idx(ds, 3);
    bp_dataset_free(ds);
    /* Truncated and corrupted streams. */
    write_tmp("images.bin", gz, len - 5);
    assert_status(bp_dataset_load_idx(&ds, img, DATA("tiny-labels-idx1-ubyte"), 0), BP_ERR_FORMAT);
    assert_error_contains("images.bin: truncated gzip stream");
    gz[len - 6] ^= 0x55; /* in the CRC-32 trailer */
    write_tmp("images.bin", gz, len);
    assert_status(bp_dataset_load_idx(&ds, img, DATA("tiny-labels-idx1-ubyte"), 0), BP_ERR_FORMAT);
    assert_error_contains("images.bin: corrupt gzip data");
    gz[len - 6] ^= 0x55;
    unsigned char twice[128];
    memcpy(twice, gz, len);
    memcpy(twice + len, "junk", 4);
    write_tmp("images.bin", twice, len + 4);
    assert_status(bp_dataset_load_idx(&ds, img, DATA("tiny-labels-idx1-ubyte"), 0), BP_ERR_FORMAT);
    assert_error_contains("4 bytes of trailing data");
    /* Two concatenated members are one valid gzip file (like `cat a.gz b.gz`). */
    size_t llen;
    unsigned char *lgz = read_all(DATA("tiny-labels-idx1-ubyte.gz"), &llen);
    memcpy(twice, lgz, llen);
    static const unsigned char more[] = {
        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3,
        3,    0,    0, 0, 0, 0, 0, 0, 0, 0}; /* empty member (gzip -n of nothing) */
    memcpy(twice + llen, more, sizeof more);
    write_tmp("labels.bin", twice, llen + sizeof more);
    snprintf(pathbuf, sizeof pathbuf, "%s/labels.bin", tmpdir);
    assert_status(bp_dataset_load_idx(&ds, DATA("tiny-images-idx3-ubyte"), pathbuf, 0), BP_OK);
    assert_tiny_idx(ds, 0);
    bp_dataset_free(ds);
    free(lgz);
#else
    assert_status(bp_dataset_load_idx(&ds, img, DATA("tiny-labels-idx1-ubyte"), 0),
                  BP_ERR_UNSUPPORTED);
    assert_error_contains("built without zlib");
    assert_null(ds);
#endif
    free(gz);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void idx_rejects_wrong_magic_lengths_and_overflow(void **state)
{
    (void)state;
    bp_dataset *ds = (bp_dataset *)&ds;
    const char *lab = DATA("tiny-labels-idx1-ubyte"), *img = DATA("tiny-images-idx3-ubyte");
    unsigned char b[64];
    size_t len;
    unsigned char *orig = read_all(img, &len);
    assert_int_equal(len, 28);
    char path[512];
    memcpy(b, orig, len);
    put_be32(b, 0x00000801); /* a labels magic in the images file */
    strcpy(path, write_tmp("i.idx", b, len));
    assert_status(bp_dataset_load_idx(&ds, path, lab, 0), BP_ERR_FORMAT);
    assert_error_contains("i.idx: magic 0x00000801 is not an unsigned-byte IDX file");
    put_be32(b, 0x00000d03); /* float IDX */
    write_tmp("i.idx", b, len);
    assert_status(bp_dataset_load_idx(&ds, path, lab, 0), BP_ERR_FORMAT);
    write_tmp("i.idx", orig, len - 1); /* truncated body */
    assert_status(bp_dataset_load_idx(&ds, path, lab, 0), BP_ERR_FORMAT);
    assert_error_contains("header announces 3 items of 4 bytes (12 bytes) but the file holds 11");
    write_tmp("i.idx", orig, 10); /* truncated header */
    assert_status(bp_dataset_load_idx(&ds, path, lab, 0), BP_ERR_FORMAT);
    assert_error_contains("truncated header");
    write_tmp("i.idx", orig, 2);
    assert_status(bp_dataset_load_idx(&ds, path, lab, 0), BP_ERR_FORMAT);
    memcpy(b, orig, len);
    b[len] = 7; /* one byte too many */
    write_tmp("i.idx", b, len + 1);
    assert_status(bp_dataset_load_idx(&ds, path, lab, 0), BP_ERR_FORMAT);
    /* 2^31 x 2^31 x 2^31 items overflow; 2^31 x 2^31 x 1 disagrees with the length. */
    put_be32(b + 4, 0x80000000u);
    put_be32(b + 8, 0x80000000u);
    put_be32(b + 12, 0x80000000u);
    write_tmp("i.idx", b, len);
    assert_status(bp_dataset_load_idx(&ds, path, lab, 0), BP_ERR_FORMAT);
    assert_error_contains("overflow");
    put_be32(b + 12, 1);
    write_tmp("i.idx", b, len);
    assert_status(bp_dataset_load_idx(&ds, path, lab, 0), BP_ERR_FORMAT);
    put_be32(b + 8, 0);
    write_tmp("i.idx", b, len);
    assert_status(bp_dataset_load_idx(&ds, path, lab, 0), BP_ERR_FORMAT);
    assert_error_contains("dimension 1 is 0");
    /* Image and label counts that differ. */
    static const unsigned char two_labels[10] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 1};
    strcpy(path, write_tmp("l.idx", two_labels, sizeof two_labels));
    assert_status(bp_dataset_load_idx(&ds, img, path, 0), BP_ERR_FORMAT);
    assert_error_contains("holds 3 images but l.idx holds 2 labels");
    assert_status(bp_dataset_load_idx(&ds, img, img, 0), BP_ERR_FORMAT); /* images as labels */
    assert_null(ds);
    free(orig);
}

static void idx_rejects_invalid_arguments(void **state)
{
    (void)state;
    bp_dataset *ds = (bp_dataset *)&ds;
    const char *img = DATA("tiny-images-idx3-ubyte"), *lab = DATA("tiny-labels-idx1-ubyte");
    assert_status(bp_dataset_load_idx(NULL, img, lab, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_idx(&ds, NULL, lab, 0), BP_ERR_INVALID_ARG);
    assert_null(ds);
    assert_status(bp_dataset_load_idx(&ds, img, NULL, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_idx(&ds, img, lab, ((size_t)1 << 24) + 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_idx(&ds, img, DATA("missing-labels"), 0), BP_ERR_IO);
    assert_status(bp_dataset_load_idx(&ds, DATA("missing-images"), lab, 0), BP_ERR_IO);
    assert_null(ds);
}

/* ---- real data sets (skipped when the Debian packages are absent) -------------------- */

#define FASHION "/usr/share/datasets/fashion-mnist/"
#define CENSUS  "/usr/share/doc/libfann-dev/examples/datasets/census-house.train"

static void real_fashion_mnist_t10k_loads_when_present(void **state)
{
    (void)state;
#ifndef BP_HAVE_ZLIB
    skip();
#endif
    if (access(FASHION "t10k-images-idx3-ubyte.gz", R_OK) != 0) skip();
    bp_dataset *ds, *hot;
    assert_status(bp_dataset_load_idx(&ds, FASHION "t10k-images-idx3-ubyte.gz",
                                      FASHION "t10k-labels-idx1-ubyte.gz", 0),
                  BP_OK);
    assert_int_equal(bp_dataset_size(ds), 10000);
    assert_int_equal(bp_dataset_input_size(ds), 784);
    size_t classes;
    assert_status(bp_dataset_class_count(ds, &classes), BP_OK);
    assert_int_equal(classes, 10);
    /* The label file starts 09 02 01 01 06 (see `zcat | xxd`). */
    const float first[5] = {9, 2, 1, 1, 6};
    assert_memory_equal(bp_dataset_targets(ds), first, sizeof first);
    assert_status(bp_dataset_one_hot(&hot, ds, 10), BP_OK);
    assert_true(bp_dataset_targets(hot)[9] == 1.0f);
    bp_dataset_free(hot);
    bp_dataset_free(ds);
}

static void real_fann_census_house_loads_when_present(void **state)
{
    (void)state;
    if (access(CENSUS, R_OK) != 0) skip();
    bp_dataset *ds;
    assert_status(bp_dataset_load_fann(&ds, CENSUS), BP_OK);
    assert_int_equal(bp_dataset_size(ds), 11392);
    assert_int_equal(bp_dataset_input_size(ds), 16);
    assert_int_equal(bp_dataset_output_size(ds), 1);
    assert_true(bp_dataset_inputs(ds)[0] == 0.000049f);
    assert_true(bp_dataset_targets(ds)[0] == 0.029998f);
    bp_dataset_free(ds);
}

/* ---- shuffle, split, subset --------------------------------------------------------- */

static void shuffle_is_seeded_and_keeps_rows_paired(void **state)
{
    (void)state;
    enum { N = 50 };
    float x[N * 3], y[N];
    for (size_t i = 0; i < N; i++) {
        x[i * 3] = (float)i;
        x[i * 3 + 1] = (float)i + 0.5f;
        x[i * 3 + 2] = -(float)i;
        y[i] = (float)(i * 10);
    }
    bp_dataset *a, *b, *c;
    assert_status(bp_dataset_create(&a, x, y, N, 3, 1), BP_OK);
    assert_status(bp_dataset_create(&b, x, y, N, 3, 1), BP_OK);
    assert_status(bp_dataset_create(&c, x, y, N, 3, 1), BP_OK);
    assert_status(bp_dataset_shuffle(a, 7), BP_OK);
    assert_status(bp_dataset_shuffle(b, 7), BP_OK);
    assert_status(bp_dataset_shuffle(c, 8), BP_OK);
    assert_memory_equal(bp_dataset_inputs(a), bp_dataset_inputs(b), sizeof x);
    assert_memory_equal(bp_dataset_targets(a), bp_dataset_targets(b), sizeof y);
    assert_memory_not_equal(bp_dataset_targets(a), bp_dataset_targets(c), sizeof y);
    assert_memory_not_equal(bp_dataset_targets(a), y, sizeof y);
    int seen[N] = {0};
    const float *sx = bp_dataset_inputs(a), *sy = bp_dataset_targets(a);
    for (size_t r = 0; r < N; r++) {
        const size_t i = (size_t)sx[r * 3];
        assert_true(i < N);
        seen[i]++;
        assert_true(sx[r * 3 + 1] == (float)i + 0.5f);
        assert_true(sx[r * 3 + 2] == -(float)i);
        assert_true(sy[r] == (float)(i * 10));
    }
    for (size_t i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    bp_dataset_free(a);
    bp_dataset_free(b);
    bp_dataset_free(c);
}

static void split_gives_rounded_parts_in_order(void **state)
{
    (void)state;
    bp_dataset *ds, *first, *second;
    assert_status(bp_dataset_create(&ds, x6, y6, 6, 2, 1), BP_OK);
    assert_status(bp_dataset_split(&first, &second, ds, 0.7), BP_OK); /* 4.2 -> 4 */
    assert_int_equal(bp_dataset_size(first), 4);
    assert_int_equal(bp_dataset_size(second), 2);
    assert_memory_equal(bp_dataset_inputs(first), x6, 8 * sizeof(float));
    assert_memory_equal(bp_dataset_inputs(second), x6 + 8, 4 * sizeof(float));
    assert_memory_equal(bp_dataset_targets(second), y6 + 4, 2 * sizeof(float));
    bp_dataset_free(first);
    bp_dataset_free(second);
    assert_status(bp_dataset_split(&first, &second, ds, 0.75), BP_OK); /* 4.5 -> 5 */
    assert_int_equal(bp_dataset_size(first), 5);
    bp_dataset_free(first);
    bp_dataset_free(second);
    assert_status(bp_dataset_split(&first, &second, ds, 0.05), BP_ERR_OUT_OF_RANGE);
    assert_error_contains("leaves an empty part");
    assert_null(first);
    assert_null(second);
    assert_status(bp_dataset_split(&first, &second, ds, 0.95), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_dataset_split(&first, &second, ds, 0.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_dataset_split(&first, &second, ds, 1.0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_dataset_split(&first, &second, ds, (double)NAN), BP_ERR_OUT_OF_RANGE);
    assert_non_null(strstr(bp_last_error(), "fraction"));
    assert_status(bp_dataset_split(NULL, &second, ds, 0.5), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_split(&first, NULL, ds, 0.5), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_split(&first, &first, ds, 0.5), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_split(&first, &second, NULL, 0.5), BP_ERR_INVALID_ARG);
    bp_dataset_free(ds);
}

static void subset_copies_rows_and_checks_range(void **state)
{
    (void)state;
    bp_dataset *ds, *sub = NULL;
    assert_status(bp_dataset_create(&ds, x6, y6, 6, 2, 1), BP_OK);
    assert_status(bp_dataset_subset(&sub, ds, 2, 3), BP_OK);
    assert_int_equal(bp_dataset_size(sub), 3);
    assert_memory_equal(bp_dataset_inputs(sub), x6 + 4, 6 * sizeof(float));
    assert_memory_equal(bp_dataset_targets(sub), y6 + 2, 3 * sizeof(float));
    bp_dataset_free(sub);
    assert_status(bp_dataset_subset(&sub, ds, 5, 1), BP_OK);
    bp_dataset_free(sub);
    assert_status(bp_dataset_subset(&sub, ds, 5, 2), BP_ERR_OUT_OF_RANGE);
    assert_null(sub);
    assert_status(bp_dataset_subset(&sub, ds, 6, 1), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_dataset_subset(&sub, ds, 2, SIZE_MAX), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_dataset_subset(&sub, ds, 0, 0), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_dataset_subset(NULL, ds, 0, 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_subset(&sub, NULL, 0, 1), BP_ERR_INVALID_ARG);
    bp_dataset_free(ds);
}

/* ---- scalers ------------------------------------------------------------------------ */

static void fit_scaler_computes_standard_and_minmax_and_guards_constant_columns(void **state)
{
    (void)state;
    /* column 0: 1 2 3 4 (mean 2.5, population sd sqrt(1.25)); column 1: constant 0.1 */
    const float x[8] = {1, 0.1f, 2, 0.1f, 3, 0.1f, 4, 0.1f}, y[4] = {10, 20, 30, 50};
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, x, y, 4, 2, 1), BP_OK);
    float off[3] = {-1, -1, -1}, sc[3] = {-1, -1, -1};
    assert_status(bp_dataset_fit_scaler(ds, BP_SCALE_STANDARD, BP_SCALE_INPUTS, off, sc, 3), BP_OK);
    assert_close(off[0], 2.5, 1e-7, 0);
    assert_close(sc[0], 1.0 / sqrt(1.25), 1e-6, 0);
    assert_true(off[1] == 0.1f);
    assert_true(sc[1] == 1.0f);
    assert_true(off[2] == -1.0f); /* beyond the width: untouched */
    assert_status(bp_dataset_fit_scaler(ds, BP_SCALE_MINMAX, BP_SCALE_TARGETS, off, sc, 1), BP_OK);
    assert_true(off[0] == 10.0f);
    assert_close(sc[0], 1.0 / 40.0, 1e-7, 0);
    assert_status(bp_dataset_fit_scaler(ds, BP_SCALE_MINMAX, BP_SCALE_INPUTS, off, sc, 2), BP_OK);
    assert_true(off[0] == 1.0f && off[1] == 0.1f);
    assert_close(sc[0], 1.0 / 3.0, 1e-7, 0);
    assert_true(sc[1] == 1.0f);
    /* Apply: the constant column becomes 0, never Inf/NaN; inputs get mean 0. */
    assert_status(bp_dataset_fit_scaler(ds, BP_SCALE_STANDARD, BP_SCALE_INPUTS, off, sc, 2), BP_OK);
    assert_status(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, off, sc, 2), BP_OK);
    const float *sx = bp_dataset_inputs(ds);
    double sum = 0, sq = 0;
    for (size_t r = 0; r < 4; r++) {
        sum += (double)sx[r * 2];
        sq += (double)sx[r * 2] * (double)sx[r * 2];
        assert_true(sx[r * 2 + 1] == 0.0f);
    }
    assert_close(sum / 4, 0.0, 0, 1e-6);
    assert_close(sq / 4, 1.0, 1e-6, 0);
    /* Invalid arguments. */
    assert_status(bp_dataset_fit_scaler(ds, BP_SCALE_STANDARD, BP_SCALE_INPUTS, off, sc, 1),
                  BP_ERR_BUFFER_TOO_SMALL);
    assert_status(bp_dataset_fit_scaler(ds, 0, BP_SCALE_INPUTS, off, sc, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_fit_scaler(ds, BP_SCALE_MINMAX, 3, off, sc, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_fit_scaler(ds, BP_SCALE_MINMAX, BP_SCALE_INPUTS, NULL, sc, 2),
                  BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_fit_scaler(ds, BP_SCALE_MINMAX, BP_SCALE_INPUTS, off, NULL, 2),
                  BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_fit_scaler(NULL, BP_SCALE_MINMAX, BP_SCALE_INPUTS, off, sc, 2),
                  BP_ERR_INVALID_ARG);
    bp_dataset_free(ds);
}

static void scaler_fitted_on_train_applies_to_test_and_inverts(void **state)
{
    (void)state;
    const float train_y[4] = {100000, 200000, 300000, 400000}, x[4] = {0, 1, 2, 3};
    bp_dataset *train;
    assert_status(bp_dataset_create(&train, x, train_y, 4, 1, 1), BP_OK);
    float off, sc;
    assert_status(bp_dataset_fit_scaler(train, BP_SCALE_MINMAX, BP_SCALE_TARGETS, &off, &sc, 1),
                  BP_OK);
    assert_status(bp_dataset_apply_scaler(train, BP_SCALE_TARGETS, &off, &sc, 1), BP_OK);
    const float *ty = bp_dataset_targets(train);
    assert_close(ty[0], 0.0, 0, 1e-7);
    assert_close(ty[3], 1.0, 1e-6, 0);
    /* Predictions in scaled units back to prices; unseen values extrapolate. */
    float pred[3] = {0.5f, 1.5f, -0.25f};
    assert_status(bp_scaler_invert(&off, &sc, 1, pred, 3), BP_OK);
    assert_close(pred[0], 250000, 1e-6, 0);
    assert_close(pred[1], 550000, 1e-6, 0);
    assert_close(pred[2], 25000, 1e-5, 0);
    assert_status(bp_scaler_apply(&off, &sc, 1, pred, 3), BP_OK);
    assert_close(pred[0], 0.5, 1e-6, 0);
    assert_close(pred[2], -0.25, 1e-5, 0);
    bp_dataset_free(train);
}

static void apply_scaler_rejects_bad_input_and_leaves_data_unchanged(void **state)
{
    (void)state;
    const float x[4] = {1, 2, 3, -3e38f}, y[2] = {0, 1};
    bp_dataset *ds;
    assert_status(bp_dataset_create(&ds, x, y, 2, 2, 1), BP_OK);
    const float off[2] = {0, 0}, sc[2] = {1, 10}, zero[2] = {1, 0}, nan[2] = {NAN, 1};
    assert_status(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, off, sc, 2), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_dataset_last_error(ds), "row 1 column 1"));
    assert_memory_equal(bp_dataset_inputs(ds), x, sizeof x); /* unchanged, row 0 too */
    assert_status(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, off, sc, 1), BP_ERR_SHAPE);
    assert_status(bp_dataset_apply_scaler(ds, BP_SCALE_TARGETS, off, sc, 2), BP_ERR_SHAPE);
    assert_status(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, off, zero, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, nan, sc, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_apply_scaler(ds, 0, off, sc, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, NULL, sc, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, off, NULL, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_apply_scaler(NULL, BP_SCALE_INPUTS, off, sc, 2), BP_ERR_INVALID_ARG);
    assert_memory_equal(bp_dataset_inputs(ds), x, sizeof x);
    bp_dataset_free(ds);

    float v[4] = {1, 2, 3, 4};
    assert_status(bp_scaler_apply(off, sc, 2, NULL, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_scaler_apply(NULL, sc, 2, v, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_scaler_invert(off, NULL, 2, v, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_scaler_invert(off, sc, 0, v, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_scaler_invert(off, zero, 2, v, 2), BP_ERR_INVALID_ARG);
    assert_status(bp_scaler_apply(off, sc, 2, v, SIZE_MAX), BP_ERR_INVALID_ARG);
    assert_status(bp_scaler_apply(off, sc, 2, NULL, 0), BP_OK);
    v[2] = (float)NAN;
    assert_status(bp_scaler_apply(off, sc, 2, v, 2), BP_ERR_NONFINITE);
    assert_error_contains("row 1 column 0");
    assert_true(v[1] == 2.0f); /* unchanged */
    const float tiny[2] = {1e-30f, 1e-30f};
    v[2] = 3e38f;
    assert_status(bp_scaler_invert(off, tiny, 2, v, 2), BP_ERR_NONFINITE);
    assert_true(v[0] == 1.0f);
}

/* ---- classes ------------------------------------------------------------------------ */

static void one_hot_converts_class_indices(void **state)
{
    (void)state;
    bp_dataset *ds, *hot;
    assert_status(bp_dataset_create(&ds, x6, y6, 6, 2, 1), BP_OK);
    assert_status(bp_dataset_one_hot(&hot, ds, 4), BP_OK);
    assert_int_equal(bp_dataset_output_size(hot), 4);
    assert_memory_equal(bp_dataset_inputs(hot), x6, sizeof x6);
    const float *y = bp_dataset_targets(hot);
    for (size_t r = 0; r < 6; r++)
        for (size_t c = 0; c < 4; c++)
            assert_true(y[r * 4 + c] == (c == (size_t)y6[r] ? 1.0f : 0.0f));
    bp_dataset *again = (bp_dataset *)&again;
    assert_status(bp_dataset_one_hot(&again, hot, 4), BP_ERR_SHAPE); /* already one-hot */
    assert_error_contains("targets have 4 columns");
    assert_null(again);
    bp_dataset_free(hot);
    bp_dataset_free(ds);
}

static void one_hot_and_class_count_reject_bad_indices_with_row(void **state)
{
    (void)state;
    const float y[3] = {0, 2.5f, 1}, neg[3] = {0, 1, -1};
    bp_dataset *ds, *hot = (bp_dataset *)&hot;
    assert_status(bp_dataset_create(&ds, x6, y, 3, 2, 1), BP_OK);
    assert_status(bp_dataset_one_hot(&hot, ds, 3), BP_ERR_INDEX);
    assert_error_contains("row 1: target 2.5");
    assert_null(hot);
    size_t classes = 77;
    assert_status(bp_dataset_class_count(ds, &classes), BP_ERR_INDEX);
    assert_int_equal(classes, 77);
    bp_dataset_free(ds);
    assert_status(bp_dataset_create(&ds, x6, neg, 3, 2, 1), BP_OK);
    assert_status(bp_dataset_class_count(ds, &classes), BP_ERR_INDEX);
    assert_error_contains("row 2");
    bp_dataset_free(ds);
    assert_status(bp_dataset_create(&ds, x6, y6, 6, 2, 1), BP_OK);
    assert_status(bp_dataset_one_hot(&hot, ds, 2), BP_ERR_INDEX);
    assert_error_contains("row 2: target 2 is not a class index in [0, 2)");
    assert_status(bp_dataset_one_hot(&hot, ds, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_one_hot(&hot, ds, ((size_t)1 << 24) + 1), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_one_hot(NULL, ds, 3), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_one_hot(&hot, NULL, 3), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_class_count(ds, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_class_count(NULL, &classes), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_class_count(ds, &classes), BP_OK);
    assert_int_equal(classes, 3);
    bp_dataset_free(ds);
    assert_status(bp_dataset_create(&ds, x6, x6, 6, 2, 2), BP_OK);
    assert_status(bp_dataset_class_count(ds, &classes), BP_ERR_SHAPE);
    bp_dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(create_copies_arrays_and_reports_sizes),
        bp_add_test(create_rejects_null_zero_and_overflowing_sizes),
        bp_add_test(create_and_scalers_reject_byte_size_overflow_before_reading),
        bp_add_test(create_rejects_nonfinite_with_row_and_column),
        bp_add_test(invalid_handles_give_zero_null_and_static_message),
        bp_add_test(csv_loads_iris_with_150_rows_4_inputs_3_classes),
        bp_add_test(csv_handles_crlf_quotes_blank_lines_and_no_final_newline),
        bp_add_test(csv_targets_may_be_a_middle_range_and_other_delimiters),
        bp_add_test(csv_reports_line_and_column_of_non_numeric_cell),
        bp_add_test(csv_rejects_ragged_row_with_line),
        bp_add_test(csv_rejects_empty_file_header_only_and_missing_targets),
        bp_add_test(csv_rejects_nonfinite_and_unterminated_quote),
        bp_add_test(csv_accepts_a_utf8_byte_order_mark),
        bp_add_test(csv_memory_is_in_proportion_to_the_data),
        bp_add_test(csv_rejects_invalid_arguments),
        bp_add_test(fann_loads_file_with_irregular_whitespace),
        bp_add_test(fann_round_trips_exact_floats_through_save),
        bp_add_test(fann_rejects_counts_that_disagree_with_the_header),
        bp_add_test(fann_rejects_bad_and_overflowing_headers_before_allocating),
        bp_add_test(fann_rejects_invalid_arguments_and_unwritable_paths),
        bp_add_test(idx_loads_class_indices_and_one_hot),
        bp_add_test(idx_detects_gzip_by_magic_not_name),
        bp_add_test(idx_rejects_wrong_magic_lengths_and_overflow),
        bp_add_test(idx_rejects_invalid_arguments),
        bp_add_test(real_fashion_mnist_t10k_loads_when_present),
        bp_add_test(real_fann_census_house_loads_when_present),
        bp_add_test(shuffle_is_seeded_and_keeps_rows_paired),
        bp_add_test(split_gives_rounded_parts_in_order),
        bp_add_test(subset_copies_rows_and_checks_range),
        bp_add_test(fit_scaler_computes_standard_and_minmax_and_guards_constant_columns),
        bp_add_test(scaler_fitted_on_train_applies_to_test_and_inverts),
        bp_add_test(apply_scaler_rejects_bad_input_and_leaves_data_unchanged),
        bp_add_test(one_hot_converts_class_indices),
        bp_add_test(one_hot_and_class_count_reject_bad_indices_with_row),
    };
    return cmocka_run_group_tests(tests, bp_test_tmpdir_setup, bp_test_tmpdir_teardown);
}
