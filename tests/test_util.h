/* test_util.h -- helpers shared by the cmocka test programs. */
#ifndef BP_TEST_UTIL_H
#define BP_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backprop.h"

/* cmocka 1.1.5's assert_float_equal is absolute only: |a - b| <= atol + rtol * |b|. */
#define assert_close(a, b, rtol, atol)                                                             \
    bp_test_assert_close((double)(a), (double)(b), (rtol), (atol), #a, #b, __FILE__, __LINE__)
void bp_test_assert_close(double a, double b, double rtol, double atol, const char *sa,
                          const char *sb, const char *file, int line);

/* Assert a call returned the expected status, printing bp_last_error() when not. */
#define assert_status(expr, expected)                                                              \
    bp_test_assert_status((int)(expr), (int)(expected), #expr, __FILE__, __LINE__)
void bp_test_assert_status(int got, int expected, const char *expr, const char *file, int line);

/* Register a behaviour-named test: bp_add_test(name) -> cmocka_unit_test(name). */
#define bp_add_test(name) cmocka_unit_test(name)

/* Deterministic pseudo-random fill in [lo, hi) (test-local generator, not the library's). */
void bp_test_fill_uniform(float *v, size_t count, float lo, float hi, uint64_t *state);

/* Counting / failing allocator for bp_net_create_ex and friends. */
typedef struct bp_test_alloc {
    size_t allocs;   /* successful allocations so far */
    size_t frees;    /* frees of non-NULL pointers */
    size_t live;     /* allocs - frees */
    long fail_at;    /* fail the allocation with this 1-based number (0: never) */
    size_t attempts; /* allocation attempts so far */
} bp_test_alloc;
void *bp_test_alloc_fn(void *user, size_t size);
void bp_test_free_fn(void *user, void *p);

/* Byte-counting allocator (same callback types): bytes live now, the peak of live bytes, and
 * the largest single block, for tests that bound how much memory a call takes. */
typedef struct bp_test_bytes {
    size_t live, peak, largest;
} bp_test_bytes;
void *bp_test_bytes_alloc_fn(void *user, size_t size);
void bp_test_bytes_free_fn(void *user, void *p);

/* A private temporary directory for one test program, under $TMPDIR (else /tmp), with the
 * files a test writes into it: cmocka group setup and teardown
 * (cmocka_run_group_tests(tests, bp_test_tmpdir_setup, bp_test_tmpdir_teardown)). Teardown
 * removes the directory and everything left in it (links removed, not followed). */
int bp_test_tmpdir_setup(void **state);
int bp_test_tmpdir_teardown(void **state);
/* The directory's path. */
const char *bp_test_tmpdir(void);
/* Entries of the directory (not below) whose name contains @p needle (left-over temporary
 * files: ".tmp"). */
size_t bp_test_tmp_entries_containing(const char *needle);
/* @p name inside it, in a static buffer (overwritten by the next call). */
const char *bp_test_tmp_path(const char *name);
/* Write @p len bytes to the file @p name inside it (asserting success); returns its path as
 * bp_test_tmp_path(). */
const char *bp_test_write_tmp(const char *name, const void *bytes, size_t len);

#endif
