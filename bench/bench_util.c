/* bench_util.c -- timing, JSON output and fill helpers for bp_bench. */
#include "bench_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- JSON ------------------------------------------------------------------------------ */

void bench_json_init(bench_json *j)
{
    memset(j, 0, sizeof *j);
}

void bench_json_free(bench_json *j)
{
    free(j->buf);
    memset(j, 0, sizeof *j);
}

int bench_json_failed(const bench_json *j)
{
    return j->failed;
}

static void put(bench_json *j, const char *s, size_t n)
{
    if (j->failed) return;
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 256;
        while (j->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(j->buf, cap);
        if (p == NULL) {
            j->failed = 1;
            return;
        }
        j->buf = p;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void putf(bench_json *j, const char *fmt, ...) BENCH_PRINTF(2, 3);
static void putf(bench_json *j, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        j->failed = 1;
        return;
    }
    put(j, tmp, (size_t)n);
}

/* Separator before a value or key: none right after a key or an opening bracket. */
static void sep(bench_json *j)
{
    if (j->after_key)
        j->after_key = 0;
    else if (j->need_comma)
        put(j, ",", 1);
}

static void put_escaped(bench_json *j, const char *s)
{
    put(j, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            const char esc[2] = {'\\', (char)*p};
            put(j, esc, 2);
        } else if (*p < 0x20) {
            putf(j, "\\u%04x", (unsigned)*p);
        } else {
            put(j, (const char *)p, 1);
        }
    }
    put(j, "\"", 1);
}

void bench_json_key(bench_json *j, const char *key)
{
    sep(j);
    put_escaped(j, key);
    put(j, ":", 1);
    j->after_key = 1;
}

void bench_json_open(bench_json *j, char bracket)
{
    sep(j);
    put(j, &bracket, 1);
    j->need_comma = 0;
}

void bench_json_close(bench_json *j, char bracket)
{
    put(j, &bracket, 1);
    j->need_comma = 1;
}

void bench_json_str(bench_json *j, const char *value)
{
    sep(j);
    put_escaped(j, value);
    j->need_comma = 1;
}

void bench_json_num(bench_json *j, double value)
{
    sep(j);
    if (isfinite(value))
        putf(j, "%.6g", value);
    else
        put(j, "null", 4);
    j->need_comma = 1;
}

void bench_json_int(bench_json *j, long long value)
{
    sep(j);
    putf(j, "%lld", value);
    j->need_comma = 1;
}

void bench_json_null(bench_json *j)
{
    sep(j);
    put(j, "null", 4);
    j->need_comma = 1;
}

void bench_json_field_str(bench_json *j, const char *key, const char *value)
{
    bench_json_key(j, key);
    bench_json_str(j, value);
}

void bench_json_field_num(bench_json *j, const char *key, double value)
{
    bench_json_key(j, key);
    bench_json_num(j, value);
}

void bench_json_field_int(bench_json *j, const char *key, long long value)
{
    bench_json_key(j, key);
    bench_json_int(j, value);
}

/* ---- Timing ---------------------------------------------------------------------------- */

uint64_t bench_now_ns(void)
{
    static int thread_clock = -1; /* read once: every sample of a run uses one clock */
    if (thread_clock < 0) {
        const char *c = getenv("BP_BENCH_CLOCK");
        thread_clock = c != NULL && strcmp(c, "thread") == 0;
    }
    struct timespec ts;
    clock_gettime(thread_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t count)
{
    qsort(v, count, sizeof *v, cmp_double);
    return count % 2 ? v[count / 2] : 0.5 * (v[count / 2 - 1] + v[count / 2]);
}

double bench_time_ns(void (*fn)(void *arg), void *arg, int repeat, uint64_t min_sample_ns)
{
    if (repeat < 1) repeat = 1;
    double *samples = malloc((size_t)repeat * sizeof *samples);
    if (samples == NULL) return -1.0;

    /* Warm-up (caches, BLAS thread pool, page faults), which also sizes the samples. */
    uint64_t t0 = bench_now_ns();
    fn(arg);
    const uint64_t once = bench_now_ns() - t0;
    uint64_t inner = once >= min_sample_ns ? 1 : min_sample_ns / (once ? once : 1) + 1;
    if (inner > 1000000) inner = 1000000;

    for (int r = 0; r < repeat; r++) {
        t0 = bench_now_ns();
        for (uint64_t i = 0; i < inner; i++)
            fn(arg);
        samples[r] = (double)(bench_now_ns() - t0) / (double)inner;
    }
    const double median = bench_median(samples, (size_t)repeat);
    free(samples);
    return median;
}

void bench_fill(float *v, size_t count, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15u + 1;
    for (size_t i = 0; i < count; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u; /* LCG; top 24 bits used */
        v[i] = (float)(s >> 40) / (float)(1u << 23) - 1.0f;
    }
}
