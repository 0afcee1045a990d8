/* bench_util.h -- timing, JSON output and option helpers shared by the benchmark cases. */
#ifndef BP_BENCH_UTIL_H
#define BP_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define BENCH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BENCH_PRINTF(f, a)
#endif

/* Options every case may read (set from the command line of bp_bench). */
typedef struct bench_opts {
    int repeat;              /* timed samples per measurement; the median is reported */
    size_t m, n, k;          /* GEMM-like shape for the cases that take one */
    size_t samples;          /* at most this many rows of a data set per epoch (smoke tests) */
    const char *fmnist_dir;  /* Fashion-MNIST IDX files (*-idx?-ubyte.gz) */
    const char *census_path; /* FANN's census-house.train */
} bench_opts;

/* ------------------------------------------------------------------------------------------
 * One JSON object (one output line) under construction. Values follow keys inside objects,
 * stand alone inside arrays; separators are written automatically. Any allocation failure is
 * remembered and reported by bench_json_failed().
 * ----------------------------------------------------------------------------------------*/
typedef struct bench_json {
    char *buf;
    size_t len, cap;
    int need_comma, after_key, failed;
} bench_json;

void bench_json_init(bench_json *j);
void bench_json_free(bench_json *j);
int bench_json_failed(const bench_json *j);
void bench_json_key(bench_json *j, const char *key);
void bench_json_open(bench_json *j, char bracket);     /* '{' or '[' */
void bench_json_close(bench_json *j, char bracket);    /* '}' or ']' */
void bench_json_str(bench_json *j, const char *value); /* escaped string value */
void bench_json_num(bench_json *j, double value);      /* null if not finite */
void bench_json_int(bench_json *j, long long value);
void bench_json_null(bench_json *j);
/* Shorthands for "key": value inside an object. */
void bench_json_field_str(bench_json *j, const char *key, const char *value);
void bench_json_field_num(bench_json *j, const char *key, double value);
void bench_json_field_int(bench_json *j, const char *key, long long value);

/* ------------------------------------------------------------------------------------------
 * Timing
 * ----------------------------------------------------------------------------------------*/

/* Monotonic clock in nanoseconds; with BP_BENCH_CLOCK=thread in the environment, the calling
 * thread's CPU time instead (CLOCK_THREAD_CPUTIME_ID: time a preempted thread does not
 * accumulate), for timing single-threaded cases on a shared machine. */
uint64_t bench_now_ns(void);

/* Median of v[0 .. count-1] (sorts v). count >= 1. */
double bench_median(double *v, size_t count);

/* Time fn(arg): one warm-up call, then @p repeat samples, each running fn enough times to
 * last at least @p min_sample_ns. Returns the median nanoseconds per call, or a negative
 * value if memory for the samples could not be allocated. */
double bench_time_ns(void (*fn)(void *arg), void *arg, int repeat, uint64_t min_sample_ns);

/* Deterministic fill of v[0 .. count-1] with values in [-1, 1). */
void bench_fill(float *v, size_t count, uint64_t seed);

#endif
