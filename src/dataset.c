/* dataset.c -- the data set handle: creation, accessors, shuffle, split, scalers, one-hot.
 * The file loaders live in dataset_io.c. */
#include "util.h"
#include "rng.h"
#include "dataset.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Largest integer below which every integer is exactly representable as float. */
#define BP__MAX_CLASS_INDEX 16777216.0f

/* Calls on a const data set report failures in bp_last_error() only (the handle's message
 * belongs to the calls that may modify it): the one rule for const handles. */
static char *ds_err(const bp_dataset *ds)
{
    (void)ds;
    return NULL;
}

bp_status bp__dataset_adopt(bp_dataset **out, const bp__alloc *a, float *x, float *y, size_t n,
                            size_t in, size_t outs)
{
    bp_dataset *ds = bp__calloc(a, 1, sizeof *ds);
    if (ds == NULL) {
        bp__free(a, x);
        bp__free(a, y);
        *out = NULL;
        return bp__fail(NULL, BP_ERR_NOMEM, "dataset: out of memory");
    }
    ds->magic = BP__MAGIC_DATA;
    ds->alloc = *a;
    ds->n = n;
    ds->in = in;
    ds->out = outs;
    ds->x = x;
    ds->y = y;
    *out = ds;
    return BP_OK;
}

/* Allocate and fill a data set from rows of x and y (each row contiguous). */
static bp_status ds_copy(bp_dataset **out, const bp__alloc *a, const float *x, const float *y,
                         size_t n, size_t in, size_t outs)
{
    size_t nx, ny;
    *out = NULL;
    if (bp__mul_size(n, in, &nx) != 0 || bp__mul_size(n, outs, &ny) != 0 ||
        nx > SIZE_MAX / sizeof(float) || ny > SIZE_MAX / sizeof(float))
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "dataset: %zu samples of %zu + %zu values "
                        "overflow the address space",
                        n, in, outs);
    float *cx = bp__malloc(a, nx * sizeof(float));
    float *cy = bp__malloc(a, ny * sizeof(float));
    if (cx == NULL || cy == NULL) {
        bp__free(a, cx);
        bp__free(a, cy);
        return bp__fail(NULL, BP_ERR_NOMEM, "dataset: out of memory for %zu samples", n);
    }
    memcpy(cx, x, nx * sizeof(float));
    memcpy(cy, y, ny * sizeof(float));
    return bp__dataset_adopt(out, a, cx, cy, n, in, outs);
}

bp_status bp_dataset_create(bp_dataset **out, const float *x, const float *y, size_t n,
                            size_t inputs, size_t outputs)
{
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "dataset_create: out is NULL");
    *out = NULL;
    if (x == NULL || y == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "dataset_create: %s is NULL",
                        x == NULL ? "x" : "y");
    if (n == 0 || inputs == 0 || outputs == 0)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "dataset_create: n = %zu, inputs = %zu, "
                        "outputs = %zu; each must be >= 1",
                        n, inputs, outputs);
    size_t nx, ny;
    /* Byte sizes too: no array holds more than SIZE_MAX bytes, and checking before the scan
     * keeps it from reading past what the caller has. */
    if (bp__mul_size(n, inputs, &nx) != 0 || bp__mul_size(n, outputs, &ny) != 0 ||
        nx > SIZE_MAX / sizeof(float) || ny > SIZE_MAX / sizeof(float))
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "dataset_create: %zu samples of %zu + %zu "
                        "values overflow",
                        n, inputs, outputs);
    size_t bad = bp__first_nonfinite(x, nx);
    if (bad < nx)
        return bp__fail(NULL, BP_ERR_NONFINITE,
                        "dataset_create: input row %zu column %zu is "
                        "not finite",
                        bad / inputs, bad % inputs);
    bad = bp__first_nonfinite(y, ny);
    if (bad < ny)
        return bp__fail(NULL, BP_ERR_NONFINITE,
                        "dataset_create: target row %zu column %zu "
                        "is not finite",
                        bad / outputs, bad % outputs);
    return ds_copy(out, &bp__default_alloc, x, y, n, inputs, outputs);
}

void bp_dataset_free(bp_dataset *ds)
{
    if (!bp__dataset_ok(ds)) return;
    const bp__alloc a = ds->alloc;
    bp__dsmap_release(ds->map);
    bp__free(&a, ds->x);
    bp__free(&a, ds->y);
    memset(ds, 0, sizeof *ds);
    bp__free(&a, ds);
}

const char *bp_dataset_last_error(const bp_dataset *ds)
{
    return bp__dataset_ok(ds) ? ds->err : bp__invalid_handle_msg;
}

size_t bp_dataset_size(const bp_dataset *ds)
{
    return bp__dataset_ok(ds) ? ds->n : 0;
}
size_t bp_dataset_input_size(const bp_dataset *ds)
{
    return bp__dataset_ok(ds) ? ds->in : 0;
}
size_t bp_dataset_output_size(const bp_dataset *ds)
{
    return bp__dataset_ok(ds) ? ds->out : 0;
}
const float *bp_dataset_inputs(const bp_dataset *ds)
{
    return bp__dataset_ok(ds) ? ds->x : NULL;
}
const float *bp_dataset_targets(const bp_dataset *ds)
{
    return bp__dataset_ok(ds) ? ds->y : NULL;
}

/* Operations that need the rows in memory fail on a mapped (read-only, decoded per batch)
 * set. */
static bp_status need_resident(const bp_dataset *ds, const char *fn)
{
    if (bp__dataset_resident(ds)) return BP_OK;
    return bp__fail(ds_err(ds), BP_ERR_UNSUPPORTED,
                    "%s: the data set is memory-mapped "
                    "(read-only, rows decoded when read); load the rows into memory for this",
                    fn);
}

static void swap_rows(float *v, size_t width, size_t i, size_t j)
{
    float *a = v + i * width, *b = v + j * width;
    for (size_t c = 0; c < width; c++) {
        const float t = a[c];
        a[c] = b[c];
        b[c] = t;
    }
}

bp_status bp_dataset_shuffle(bp_dataset *ds, uint64_t seed)
{
    if (!bp__dataset_ok(ds))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s", bp__invalid_handle_msg);
    BP_CHECK(need_resident(ds, "dataset_shuffle"));
    bp__rng rng;
    bp__rng_seed(&rng, seed);
    /* Fisher-Yates: row i swaps with a uniform row in [0, i]. */
    for (size_t i = ds->n; i > 1; i--) {
        const size_t j = (size_t)bp__rng_below(&rng, (uint64_t)i);
        if (j == i - 1) continue;
        swap_rows(ds->x, ds->in, i - 1, j);
        swap_rows(ds->y, ds->out, i - 1, j);
    }
    return BP_OK;
}

bp_status bp_dataset_subset(bp_dataset **out, const bp_dataset *ds, size_t start, size_t count)
{
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "dataset_subset: out is NULL");
    *out = NULL;
    if (!bp__dataset_ok(ds))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s", bp__invalid_handle_msg);
    if (count == 0) return bp__fail(ds_err(ds), BP_ERR_OUT_OF_RANGE, "dataset_subset: count is 0");
    if (start >= ds->n || count > ds->n - start)
        return bp__fail(ds_err(ds), BP_ERR_OUT_OF_RANGE,
                        "dataset_subset: rows %zu + %zu "
                        "exceed the %zu samples",
                        start, count, ds->n);
    if (ds->map != NULL) { /* a view of the same file: no copy */
        bp_dataset *v = bp__calloc(&ds->alloc, 1, sizeof *v);
        if (v == NULL) return bp__fail(ds_err(ds), BP_ERR_NOMEM, "dataset_subset: out of memory");
        v->magic = BP__MAGIC_DATA;
        v->alloc = ds->alloc;
        v->n = count;
        v->in = ds->in;
        v->out = ds->out;
        v->map = ds->map;
        v->first = ds->first + start;
        bp__dsmap_retain(ds->map);
        *out = v;
        return BP_OK;
    }
    return ds_copy(out, &ds->alloc, ds->x + start * ds->in, ds->y + start * ds->out, count, ds->in,
                   ds->out);
}

bp_status bp_dataset_split(bp_dataset **first, bp_dataset **second, const bp_dataset *ds,
                           double fraction)
{
    if (first == NULL || second == NULL || first == second)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "dataset_split: first and second must be "
                        "distinct non-NULL pointers");
    *first = NULL;
    *second = NULL;
    if (!bp__dataset_ok(ds))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s", bp__invalid_handle_msg);
    if (!(fraction > 0.0 && fraction < 1.0))
        return bp__fail(ds_err(ds), BP_ERR_OUT_OF_RANGE,
                        "dataset_split: fraction %g is not "
                        "in (0, 1)",
                        fraction);
    const size_t k = (size_t)floor(fraction * (double)ds->n + 0.5);
    if (k == 0 || k >= ds->n)
        return bp__fail(ds_err(ds), BP_ERR_OUT_OF_RANGE,
                        "dataset_split: fraction %g of %zu "
                        "samples leaves an empty part",
                        fraction, ds->n);
    bp_dataset *a, *b;
    BP_CHECK(bp_dataset_subset(&a, ds, 0, k));
    const bp_status st = bp_dataset_subset(&b, ds, k, ds->n - k);
    if (st != BP_OK) {
        bp_dataset_free(a);
        return st;
    }
    *first = a;
    *second = b;
    return BP_OK;
}

/* The buffer and width of one part, or NULL for an unknown part. */
static float *part_of(const bp_dataset *ds, int part, size_t *width)
{
    if (part == BP_SCALE_INPUTS) {
        *width = ds->in;
        return ds->x;
    }
    if (part == BP_SCALE_TARGETS) {
        *width = ds->out;
        return ds->y;
    }
    return NULL;
}

/* 1/spread as a finite positive float, or 1 when the spread is 0 or too small. */
static float reciprocal_or_one(double spread)
{
    if (!(spread > 0.0)) return 1.0f;
    const float r = (float)(1.0 / spread);
    return isfinite(r) && r > 0.0f ? r : 1.0f;
}

bp_status bp_dataset_fit_scaler(const bp_dataset *ds, int kind, int part, float *offset,
                                float *scale, size_t capacity)
{
    if (!bp__dataset_ok(ds))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s", bp__invalid_handle_msg);
    BP_CHECK(need_resident(ds, "fit_scaler"));
    size_t w;
    const float *v = part_of(ds, part, &w);
    if (v == NULL)
        return bp__fail(ds_err(ds), BP_ERR_INVALID_ARG, "fit_scaler: unknown part %d", part);
    if (kind != BP_SCALE_STANDARD && kind != BP_SCALE_MINMAX)
        return bp__fail(ds_err(ds), BP_ERR_INVALID_ARG, "fit_scaler: unknown kind %d", kind);
    if (offset == NULL || scale == NULL)
        return bp__fail(ds_err(ds), BP_ERR_INVALID_ARG, "fit_scaler: %s is NULL",
                        offset == NULL ? "offset" : "scale");
    if (capacity < w)
        return bp__fail(ds_err(ds), BP_ERR_BUFFER_TOO_SMALL,
                        "fit_scaler: capacity %zu, need "
                        "%zu",
                        capacity, w);
    const size_t n = ds->n;
    for (size_t c = 0; c < w; c++) {
        if (kind == BP_SCALE_STANDARD) {
            double sum = 0.0;
            int constant = 1;
            for (size_t r = 0; r < n; r++) {
                sum += (double)v[r * w + c];
                constant &= v[r * w + c] == v[c];
            }
            const double mean = sum / (double)n;
            double ss = 0.0; /* two passes: no cancellation */
            for (size_t r = 0; r < n; r++) {
                const double d = (double)v[r * w + c] - mean;
                ss += d * d;
            }
            /* A constant column is exactly constant: its rounded mean must not make a
             * tiny spread and a huge scale. */
            offset[c] = constant ? v[c] : (float)mean;
            scale[c] = constant ? 1.0f : reciprocal_or_one(sqrt(ss / (double)n));
        } else {
            float lo = v[c], hi = v[c];
            for (size_t r = 1; r < n; r++) {
                const float t = v[r * w + c];
                lo = t < lo ? t : lo;
                hi = t > hi ? t : hi;
            }
            offset[c] = lo;
            scale[c] = reciprocal_or_one((double)hi - (double)lo);
        }
    }
    return BP_OK;
}

/* Check a scaler: offsets finite, scales finite and non-zero. Returns the bad column or w. */
static size_t bad_scaler_column(const float *offset, const float *scale, size_t w)
{
    for (size_t c = 0; c < w; c++)
        if (!isfinite(offset[c]) || !isfinite(scale[c]) || scale[c] == 0.0f) return c;
    return w;
}

static float forward_value(float v, float offset, float scale)
{
    return (float)(((double)v - (double)offset) * (double)scale);
}

static float inverse_value(float v, float offset, float scale)
{
    return (float)((double)v / (double)scale + (double)offset);
}

/* Transform rows in place with f, after checking that every result is finite (validate
 * first, mutate after). Returns the index of the first element whose input or result is
 * not finite, or n * w when all were and the rows were transformed. */
static size_t transform_rows(float (*f)(float, float, float), const float *offset,
                             const float *scale, size_t w, float *v, size_t n)
{
    const size_t total = n * w;
    for (size_t i = 0; i < total; i++) {
        const size_t c = i % w;
        if (!isfinite(v[i]) || !isfinite(f(v[i], offset[c], scale[c]))) return i;
    }
    for (size_t i = 0; i < total; i++)
        v[i] = f(v[i], offset[i % w], scale[i % w]);
    return total;
}

bp_status bp_dataset_apply_scaler(bp_dataset *ds, int part, const float *offset, const float *scale,
                                  size_t count)
{
    if (!bp__dataset_ok(ds))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s", bp__invalid_handle_msg);
    BP_CHECK(need_resident(ds, "apply_scaler"));
    size_t w;
    float *v = part_of(ds, part, &w);
    if (v == NULL)
        return bp__fail(ds->err, BP_ERR_INVALID_ARG, "apply_scaler: unknown part %d", part);
    if (offset == NULL || scale == NULL)
        return bp__fail(ds->err, BP_ERR_INVALID_ARG, "apply_scaler: %s is NULL",
                        offset == NULL ? "offset" : "scale");
    if (count != w)
        return bp__fail(ds->err, BP_ERR_SHAPE,
                        "apply_scaler: scaler has %zu columns, the %s "
                        "have %zu",
                        count, part == BP_SCALE_INPUTS ? "inputs" : "targets", w);
    const size_t c = bad_scaler_column(offset, scale, w);
    if (c < w)
        return bp__fail(ds->err, BP_ERR_INVALID_ARG,
                        "apply_scaler: column %zu: offset %g, "
                        "scale %g (need finite, scale non-zero)",
                        c, (double)offset[c], (double)scale[c]);
    const size_t bad = transform_rows(forward_value, offset, scale, w, v, ds->n);
    if (bad < ds->n * w)
        return bp__fail(ds->err, BP_ERR_NONFINITE,
                        "apply_scaler: row %zu column %zu: %g "
                        "scales to a non-finite value",
                        bad / w, bad % w, (double)v[bad]);
    return BP_OK;
}

static bp_status scale_array(const char *what, float (*f)(float, float, float), const float *offset,
                             const float *scale, size_t width, float *values, size_t n)
{
    if (offset == NULL || scale == NULL || (values == NULL && n > 0))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: %s is NULL", what,
                        offset == NULL  ? "offset"
                        : scale == NULL ? "scale"
                                        : "values");
    if (width == 0) return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: width is 0", what);
    size_t total;
    if (bp__mul_size(n, width, &total) != 0 || total > SIZE_MAX / sizeof(float))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: %zu rows of %zu overflow", what, n, width);
    const size_t c = bad_scaler_column(offset, scale, width);
    if (c < width)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "%s: column %zu: offset %g, scale %g (need "
                        "finite, scale non-zero)",
                        what, c, (double)offset[c], (double)scale[c]);
    if (n == 0) return BP_OK;
    const size_t bad = transform_rows(f, offset, scale, width, values, n);
    if (bad < total)
        return bp__fail(NULL, BP_ERR_NONFINITE,
                        "%s: row %zu column %zu: %g is or gives a "
                        "non-finite value",
                        what, bad / width, bad % width, (double)values[bad]);
    return BP_OK;
}

bp_status bp_scaler_apply(const float *offset, const float *scale, size_t width, float *values,
                          size_t n)
{
    return scale_array("scaler_apply", forward_value, offset, scale, width, values, n);
}

bp_status bp_scaler_invert(const float *offset, const float *scale, size_t width, float *values,
                           size_t n)
{
    return scale_array("scaler_invert", inverse_value, offset, scale, width, values, n);
}

/* Check that every target of a [n x 1] data set is an integer in [0, limit); returns the
 * first bad row or n, and the largest value in *max. */
static size_t first_bad_class(const bp_dataset *ds, float limit, float *max)
{
    *max = 0.0f;
    for (size_t r = 0; r < ds->n; r++) {
        const float t = ds->y[r];
        if (!(t >= 0.0f && t < limit && t == floorf(t))) return r;
        *max = t > *max ? t : *max;
    }
    return ds->n;
}

bp_status bp_dataset_class_count(const bp_dataset *ds, size_t *classes)
{
    if (!bp__dataset_ok(ds))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s", bp__invalid_handle_msg);
    if (classes == NULL)
        return bp__fail(ds_err(ds), BP_ERR_INVALID_ARG, "class_count: classes is NULL");
    BP_CHECK(need_resident(ds, "class_count"));
    if (ds->out != 1)
        return bp__fail(ds_err(ds), BP_ERR_SHAPE,
                        "class_count: targets have %zu columns; "
                        "class indices need 1",
                        ds->out);
    float max;
    const size_t r = first_bad_class(ds, BP__MAX_CLASS_INDEX, &max);
    if (r < ds->n)
        return bp__fail(ds_err(ds), BP_ERR_INDEX,
                        "class_count: row %zu: target %g is not a "
                        "class index (an integer in [0, 2^24))",
                        r, (double)ds->y[r]);
    *classes = (size_t)max + 1;
    return BP_OK;
}

bp_status bp_dataset_one_hot(bp_dataset **out, const bp_dataset *ds, size_t classes)
{
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "one_hot: out is NULL");
    *out = NULL;
    if (!bp__dataset_ok(ds))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s", bp__invalid_handle_msg);
    BP_CHECK(need_resident(ds, "one_hot"));
    if (classes == 0 || classes > (size_t)BP__MAX_CLASS_INDEX)
        return bp__fail(ds_err(ds), BP_ERR_INVALID_ARG,
                        "one_hot: classes = %zu; need 1 .. "
                        "2^24",
                        classes);
    if (ds->out != 1)
        return bp__fail(ds_err(ds), BP_ERR_SHAPE,
                        "one_hot: targets have %zu columns; class "
                        "indices need 1",
                        ds->out);
    float max;
    const size_t r = first_bad_class(ds, (float)classes, &max);
    if (r < ds->n)
        return bp__fail(ds_err(ds), BP_ERR_INDEX,
                        "one_hot: row %zu: target %g is not a class "
                        "index in [0, %zu)",
                        r, (double)ds->y[r], classes);
    size_t ny, nx;
    if (bp__mul_size(ds->n, classes, &ny) != 0 || ny > SIZE_MAX / sizeof(float))
        return bp__fail(ds_err(ds), BP_ERR_INVALID_ARG,
                        "one_hot: %zu samples x %zu classes "
                        "overflow",
                        ds->n, classes);
    nx = ds->n * ds->in;
    float *x = bp__malloc(&ds->alloc, nx * sizeof(float));
    float *y = bp__calloc(&ds->alloc, ny, sizeof(float));
    if (x == NULL || y == NULL) {
        bp__free(&ds->alloc, x);
        bp__free(&ds->alloc, y);
        return bp__fail(ds_err(ds), BP_ERR_NOMEM, "one_hot: out of memory for %zu x %zu", ds->n,
                        classes);
    }
    memcpy(x, ds->x, nx * sizeof(float));
    for (size_t i = 0; i < ds->n; i++)
        y[i * classes + (size_t)ds->y[i]] = 1.0f;
    return bp__dataset_adopt(out, &ds->alloc, x, y, ds->n, ds->in, classes);
}
