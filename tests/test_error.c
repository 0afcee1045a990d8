/* test_error.c -- status codes, messages, version and backend report. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "util.h"
#include "net.h"

static const int all_codes[] = {BP_OK,           BP_ERR_INVALID_ARG, BP_ERR_OUT_OF_RANGE,
                                BP_ERR_STATE,    BP_ERR_UNSUPPORTED, BP_ERR_BUFFER_TOO_SMALL,
                                BP_ERR_SHAPE,    BP_ERR_INDEX,       BP_ERR_NONFINITE,
                                BP_ERR_IO,       BP_ERR_FORMAT,      BP_ERR_VERSION,
                                BP_ERR_CHECKSUM, BP_ERR_NOMEM};

static void status_string_is_nonempty_for_every_code(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof all_codes / sizeof all_codes[0]; i++) {
        const char *s = bp_status_string(all_codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, "unknown status");
    }
}

static void status_string_is_distinct_per_code(void **state)
{
    (void)state;
    const size_t n = sizeof all_codes / sizeof all_codes[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(bp_status_string(all_codes[i]), bp_status_string(all_codes[j]));
}

static void status_string_of_unknown_code_is_not_null(void **state)
{
    (void)state;
    const int unknown[] = {1, -1, -99, -199, -600, 12345, -2147483647 - 1, 2147483647};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = bp_status_string(unknown[i]);
        assert_non_null(s);
        assert_string_equal(s, "unknown status");
    }
}

/* The statuses a caller's callback may return as its own: every error code, not BP_OK, not
 * an unknown int. */
static void status_is_error_knows_exactly_the_error_codes(void **state)
{
    (void)state;
    for (int s = BP_ERR_NOMEM; s <= BP_ERR_INVALID_ARG; s++)
        assert_int_equal(bp__status_is_error(s),
                         strcmp(bp_status_string(s), "unknown status") != 0);
    assert_true(bp__status_is_error(BP_ERR_INVALID_ARG));
    assert_true(bp__status_is_error(BP_ERR_NOMEM));
    assert_false(bp__status_is_error(BP_OK));
    assert_false(bp__status_is_error(1));
    assert_false(bp__status_is_error(-1000));
}

static void status_values_are_pinned(void **state)
{
    (void)state;
    /* These values are ABI: they must never change. */
    assert_int_equal(BP_OK, 0);
    assert_int_equal(BP_ERR_INVALID_ARG, -100);
    assert_int_equal(BP_ERR_OUT_OF_RANGE, -101);
    assert_int_equal(BP_ERR_STATE, -102);
    assert_int_equal(BP_ERR_UNSUPPORTED, -103);
    assert_int_equal(BP_ERR_BUFFER_TOO_SMALL, -104);
    assert_int_equal(BP_ERR_SHAPE, -200);
    assert_int_equal(BP_ERR_INDEX, -201);
    assert_int_equal(BP_ERR_NONFINITE, -300);
    assert_int_equal(BP_ERR_IO, -400);
    assert_int_equal(BP_ERR_FORMAT, -401);
    assert_int_equal(BP_ERR_VERSION, -402);
    assert_int_equal(BP_ERR_CHECKSUM, -403);
    assert_int_equal(BP_ERR_NOMEM, -500);
}

static void version_matches_header(void **state)
{
    (void)state;
    assert_int_equal(bp_version(), BP_VERSION_NUMBER);
    assert_string_equal(bp_version_string(), BP_VERSION_STRING);
    assert_int_equal(BP_VERSION_NUMBER,
                     BP_VERSION_MAJOR * 10000 + BP_VERSION_MINOR * 100 + BP_VERSION_PATCH);
}

static void fail_sets_thread_local_and_handle_message(void **state)
{
    (void)state;
    char buf[BP__ERR_CAP] = "";
    assert_int_equal(bp__fail(buf, BP_ERR_SHAPE, "dense layer %d: input has %d features", 2, 783),
                     BP_ERR_SHAPE);
    assert_string_equal(buf, "dense layer 2: input has 783 features");
    assert_string_equal(bp_last_error(), "dense layer 2: input has 783 features");
    assert_int_equal(bp__fail(NULL, BP_ERR_IO, "no handle"), BP_ERR_IO);
    assert_string_equal(bp_last_error(), "no handle");
    assert_string_equal(buf, "dense layer 2: input has 783 features");
}

static void fail_may_quote_the_previous_message(void **state)
{
    (void)state;
    char buf[BP__ERR_CAP];
    bp__fail(buf, BP_ERR_STATE, "inner %d", 1);
    bp__fail(buf, BP_ERR_STATE, "outer: %s", bp_last_error());
    assert_string_equal(bp_last_error(), "outer: inner 1");
    bp__fail(buf, BP_ERR_STATE, "again: %s", buf);
    assert_string_equal(buf, "again: outer: inner 1");
}

static void fail_truncates_long_messages(void **state)
{
    (void)state;
    char buf[BP__ERR_CAP];
    char longmsg[1000];
    memset(longmsg, 'x', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    bp__fail(buf, BP_ERR_FORMAT, "%s", longmsg);
    assert_int_equal(strlen(buf), BP__ERR_CAP - 1);
    assert_int_equal(strlen(bp_last_error()), BP__ERR_CAP - 1);
}

static void backend_info_names_blas_and_core(void **state)
{
    (void)state;
    const char *info = bp_backend_info();
    assert_non_null(info);
    assert_non_null(strstr(info, "OpenBLAS"));
    assert_non_null(strstr(info, "core="));
    assert_non_null(strstr(info, "cpu="));
    assert_ptr_equal(info, bp_backend_info()); /* computed once */
}

static void backend_hint_only_for_a_core_below_the_cpu(void **state)
{
    (void)state;
    const char *info = bp_backend_info();
    const int hinted = strstr(info, "OPENBLAS_CORETYPE") != NULL;
    const int pre_avx = strstr(info, "core=Prescott") != NULL ||
                        strstr(info, "core=Core2") != NULL || strstr(info, "core=Nehalem") != NULL;
    const int avx512_core = strstr(info, "core=SkylakeX") != NULL ||
                            strstr(info, "core=Cooperlake") != NULL ||
                            strstr(info, "core=SapphireRapids") != NULL;
    const int avx_cpu = strstr(info, "cpu=avx") != NULL;
    int avx512_skx = 0; /* the CPU features OpenBLAS's SkylakeX kernels need */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    avx512_skx = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
    const int expect = (pre_avx && avx_cpu) || (!pre_avx && avx512_skx && !avx512_core);
    assert_int_equal(hinted, expect);
    if (expect) assert_non_null(strstr(info, "OPENBLAS_CORETYPE=SkylakeX"));
}

static void num_threads_round_trips_and_rejects_out_of_range(void **state)
{
    (void)state;
    const int before = bp_get_num_threads();
    assert_true(before >= 1);
    assert_status(bp_set_num_threads(1), BP_OK);
    assert_int_equal(bp_get_num_threads(), 1);
    assert_status(bp_set_num_threads(-1), BP_ERR_OUT_OF_RANGE);
    assert_non_null(strstr(bp_last_error(), "-1"));
    assert_status(bp_set_num_threads(1025), BP_ERR_OUT_OF_RANGE);
    assert_int_equal(bp_get_num_threads(), 1);
    assert_status(bp_set_num_threads(0), BP_OK);
    assert_int_equal(bp_get_num_threads(), before);
}

static void first_nonfinite_finds_nan_and_inf(void **state)
{
    (void)state;
    float v[600];
    for (size_t i = 0; i < 600; i++)
        v[i] = (float)i;
    assert_int_equal(bp__first_nonfinite(v, 600), 600);
    v[517] = (float)INFINITY;
    assert_int_equal(bp__first_nonfinite(v, 600), 517);
    v[3] = (float)NAN;
    assert_int_equal(bp__first_nonfinite(v, 600), 3);
    assert_int_equal(bp__first_nonfinite(v, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(status_string_is_nonempty_for_every_code),
        bp_add_test(status_string_is_distinct_per_code),
        bp_add_test(status_string_of_unknown_code_is_not_null),
        bp_add_test(status_values_are_pinned),
        bp_add_test(status_is_error_knows_exactly_the_error_codes),
        bp_add_test(version_matches_header),
        bp_add_test(fail_sets_thread_local_and_handle_message),
        bp_add_test(fail_may_quote_the_previous_message),
        bp_add_test(fail_truncates_long_messages),
        bp_add_test(backend_info_names_blas_and_core),
        bp_add_test(backend_hint_only_for_a_core_below_the_cpu),
        bp_add_test(num_threads_round_trips_and_rejects_out_of_range),
        bp_add_test(first_nonfinite_finds_nan_and_inf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
