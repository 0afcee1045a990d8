/* consumer_checks.h -- what every packaging consumer checks, in the common subset of C99 and
 * C++17, so the C (pkg-config) and C++ (find_package) programs call the same functions.
 * Only functions that exist in every build of the library are used here. */
#ifndef BP_CONSUMER_CHECKS_H
#define BP_CONSUMER_CHECKS_H

#include <stdio.h>
#include <string.h>

#include <backprop.h>

#define CONSUMER_CHECK(cond)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* Returns the number of failed checks (0: the installed library works as the header says). */
static int consumer_run_checks(void)
{
    int failures = 0;
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", BP_VERSION_MAJOR, BP_VERSION_MINOR,
             BP_VERSION_PATCH);

    /* Header and library agree (the library found at run time is the one installed). */
    CONSUMER_CHECK(bp_version() == BP_VERSION_NUMBER);
    CONSUMER_CHECK(strcmp(bp_version_string(), BP_VERSION_STRING) == 0);
    CONSUMER_CHECK(strcmp(BP_VERSION_STRING, expected) == 0);

    /* Status strings: fixed text for known codes, a placeholder for unknown ones. */
    const char *nomem = bp_status_string(BP_ERR_NOMEM);
    CONSUMER_CHECK(nomem != NULL && nomem[0] != '\0');
    CONSUMER_CHECK(strcmp(nomem, bp_status_string(12345)) != 0);
    CONSUMER_CHECK(strcmp(bp_status_string(12345), "unknown status") == 0);

    /* A failing call returns its status and leaves a message in bp_last_error(). */
    CONSUMER_CHECK(bp_set_num_threads(-1) == BP_ERR_OUT_OF_RANGE);
    CONSUMER_CHECK(bp_last_error()[0] != '\0');
    CONSUMER_CHECK(bp_set_num_threads(1) == BP_OK);
    CONSUMER_CHECK(bp_get_num_threads() == 1);

    const char *backend = bp_backend_info();
    CONSUMER_CHECK(backend != NULL && backend[0] != '\0');

    printf("backprop %s (header %s): %s\n", bp_version_string(), BP_VERSION_STRING,
           backend != NULL ? backend : "(null)");
    return failures;
}

#endif
