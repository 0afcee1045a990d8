/* error.c -- status strings, handle messages and the thread-local last error. */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char bp__invalid_handle_msg[] = "invalid handle (NULL, freed, or of another kind)";

/* The library's only thread-local state (documented in backprop.h). */
static _Thread_local char tls_err[BP__ERR_CAP];

bp_status bp__fail(char *err, bp_status status, const char *fmt, ...)
{
    /* Format into a local buffer first: the arguments may point into tls_err or err
     * themselves (re-raising bp_last_error() with a prefix), and vsnprintf must not write
     * where it reads. */
    char msg[BP__ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(tls_err, msg, sizeof msg);
    if (err != NULL && err != tls_err) memcpy(err, msg, sizeof msg);
    return status;
}

const char *bp_last_error(void)
{
    return tls_err;
}

/* Every status of enum bp_status and its text: the one list (bp_status_string,
 * bp__status_is_error). */
static const struct {
    int status;
    const char *text;
} statuses[] = {
    {BP_OK, "success"},
    {BP_ERR_INVALID_ARG, "invalid argument"},
    {BP_ERR_OUT_OF_RANGE, "value out of range"},
    {BP_ERR_STATE, "call not valid in the current state"},
    {BP_ERR_UNSUPPORTED, "not supported by this build"},
    {BP_ERR_BUFFER_TOO_SMALL, "output buffer too small"},
    {BP_ERR_SHAPE, "shape mismatch"},
    {BP_ERR_INDEX, "index out of range"},
    {BP_ERR_NONFINITE, "non-finite value (NaN or Inf)"},
    {BP_ERR_IO, "input/output error"},
    {BP_ERR_FORMAT, "malformed data"},
    {BP_ERR_VERSION, "unsupported format version"},
    {BP_ERR_CHECKSUM, "checksum mismatch"},
    {BP_ERR_NOMEM, "out of memory"},
};

const char *bp_status_string(int status)
{
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (statuses[i].status == status) return statuses[i].text;
    return "unknown status";
}

int bp__status_is_error(int status)
{
    if (status == BP_OK) return 0;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (statuses[i].status == status) return 1;
    return 0;
}

unsigned bp_version(void)
{
    return BP_VERSION_NUMBER;
}

const char *bp_version_string(void)
{
    return BP_VERSION_STRING;
}

/* Nonzero if any of @p v[0..count) is NaN or +-Inf: one branch-free pass on the exponent
 * bits, which vectorises (no libm call). */
static BP__ALWAYS_INLINE unsigned nonfinite_bits(const float *restrict v, size_t count)
{
    unsigned bad = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, v + i, sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad;
}

/* The same, multi-versioned (the baseline build only has SSE2). */
BP__KERNEL
static unsigned any_nonfinite(const float *restrict v, size_t count)
{
    return nonfinite_bits(v, count);
}

BP__KERNEL
static uint32_t max_abs_bits(const float *restrict v, size_t count)
{
    return bp__max_abs_bits(v, count);
}

float bp__max_abs(const float *v, size_t count)
{
    const uint32_t m = count >= 64 ? max_abs_bits(v, count) : bp__max_abs_bits(v, count);
    if (m >= 0x7f800000u) return INFINITY;
    float f;
    memcpy(&f, &m, sizeof f);
    return f;
}

size_t bp__first_nonfinite(const float *v, size_t count)
{
    /* The common case, all finite, costs a single read of the data. Short arrays (single
     * rows of tiny layers) skip the multi-versioned call. */
    const unsigned bad = count >= 64 ? any_nonfinite(v, count) : nonfinite_bits(v, count);
    if (!bad) return count;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(v[i])) return i;
    return count;
}
