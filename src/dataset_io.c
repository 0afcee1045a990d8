/* dataset_io.c -- data set loaders (CSV, FANN, IDX) and the FANN writer.
 *
 * Every loader reads the whole file (fileio.c: plain or gzip), parses it without trusting
 * a single count, and only then wraps the buffers in a data set. Numbers are parsed and
 * printed in the C locale (uselocale: per thread, the caller's locale is restored). */
#include "fileio.h"
#include "util.h"
#include "dataset.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CLASSES ((size_t)1 << 24)

/* ---- shared helpers ------------------------------------------------------------------- */

/* A printable, bounded copy of a cell for messages. */
static const char *snippet(char *dst, size_t cap, const char *s, size_t len)
{
    size_t k = 0;
    const size_t keep = len < cap - 4 ? len : cap - 4;
    for (; k < keep; k++) {
        const unsigned char ch = (unsigned char)s[k];
        dst[k] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (keep < len) dst[k++] = '.', dst[k++] = '.', dst[k++] = '.';
    dst[k] = '\0';
    return dst;
}

enum { NUM_OK = 0, NUM_BAD = 1, NUM_NONFINITE = 2 };

/* Parse exactly [s, s + len) as a float. The byte at s[len] must not continue a number
 * (a delimiter, quote, whitespace or the NUL after the buffer). */
static int parse_float(const char *s, size_t len, float *v)
{
    if (len == 0 || s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' || s[0] == '\v' ||
        s[0] == '\f')
        return NUM_BAD;
    char *e;
    const float f = strtof(s, &e);
    if (e != s + len) return NUM_BAD;
    if (!isfinite(f)) return NUM_NONFINITE;
    *v = f;
    return NUM_OK;
}

static bp_status number_error(int kind, const char *name, size_t line, const char *where,
                              const char *s, size_t len)
{
    char snip[40];
    snippet(snip, sizeof snip, s, len);
    if (len == 0)
        return bp__fail(NULL, BP_ERR_FORMAT, "%s:%zu: %s: empty cell is not a number", name, line,
                        where);
    if (kind == NUM_NONFINITE)
        return bp__fail(NULL, BP_ERR_NONFINITE, "%s:%zu: %s: '%s' is not a finite float", name,
                        line, where, snip);
    return bp__fail(NULL, BP_ERR_FORMAT, "%s:%zu: %s: '%s' is not a number", name, line, where,
                    snip);
}

/* A new array of @p rows x @p width floats (NULL when rows is 0, or on overflow or out of
 * memory: *failed is then set). */
static float *alloc_rows(const bp__alloc *a, size_t rows, size_t width, int *failed)
{
    size_t count;
    if (rows == 0) return NULL;
    float *v = bp__mul_size(rows, width, &count) != 0 || count > SIZE_MAX / sizeof(float)
                   ? NULL
                   : bp__malloc(a, count * sizeof(float));
    if (v == NULL) *failed = 1;
    return v;
}

/* ---- CSV ------------------------------------------------------------------------------- */

typedef struct csv_ctx {
    const char *name;
    const char *end;
    char delim;
    size_t tf, tc; /* target columns [tf, tf + tc) */
    size_t cols;   /* columns per record (0 until the first record is seen) */
    size_t first_line;
    int has_header;
} csv_ctx;

static int csv_space(const csv_ctx *c, char ch)
{
    return (ch == ' ' || ch == '\t' || ch == '\r') && ch != c->delim;
}

/* Parse one record starting at *pp (not blank). When xrow is not NULL, every cell of the
 * first c->cols columns is parsed and stored (inputs in xrow, targets in yrow). *ncols
 * receives the number of fields. On return *pp is past the record's '\n' (or at the end). */
static bp_status csv_record(const csv_ctx *c, const char **pp, size_t *line, float *xrow,
                            float *yrow, size_t *ncols)
{
    const char *p = *pp, *const end = c->end;
    size_t col = 0;
    for (;; col++) {
        const size_t field_line = *line;
        const char *fs, *fe;
        while (p < end && csv_space(c, *p) && *p != '\r')
            p++;
        if (p < end && *p == '"') {
            fs = ++p;
            for (;;) {
                if (p >= end)
                    return bp__fail(NULL, BP_ERR_FORMAT,
                                    "%s:%zu: column %zu: unterminated "
                                    "quote",
                                    c->name, field_line, col + 1);
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        p += 2;
                        continue;
                    }
                    break;
                }
                if (*p == '\n') (*line)++;
                p++;
            }
            fe = p++;
            while (p < end && csv_space(c, *p))
                p++;
            if (p < end && *p != c->delim && *p != '\n')
                return bp__fail(NULL, BP_ERR_FORMAT,
                                "%s:%zu: column %zu: text after the "
                                "closing quote",
                                c->name, *line, col + 1);
        } else {
            fs = p;
            while (p < end && *p != c->delim && *p != '\n')
                p++;
            fe = p;
            while (fe > fs && csv_space(c, fe[-1]))
                fe--;
        }
        if (xrow != NULL && col < c->cols) {
            float v = 0.0f;
            const int r = parse_float(fs, (size_t)(fe - fs), &v);
            if (r != NUM_OK) {
                char where[48];
                snprintf(where, sizeof where, "column %zu", col + 1);
                return number_error(r, c->name, field_line, where, fs, (size_t)(fe - fs));
            }
            if (col >= c->tf && col - c->tf < c->tc)
                yrow[col - c->tf] = v;
            else
                xrow[col < c->tf ? col : col - c->tc] = v;
        }
        if (p < end && *p == c->delim) {
            p++;
            continue;
        }
        if (p < end) { /* '\n' */
            p++;
            (*line)++;
        }
        break;
    }
    *pp = p;
    *ncols = col + 1;
    return BP_OK;
}

/* Skip blank (whitespace-only) lines from *pp; returns 0 at the end of the buffer. */
static int csv_skip_blank(const csv_ctx *c, const char **pp, size_t *line)
{
    for (;;) {
        const char *q = *pp;
        while (q < c->end && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q >= c->end) return 0;
        if (*q != '\n') return 1;
        *pp = q + 1;
        (*line)++;
    }
}

/* The number of records from @p p on that have the first one's number of columns, up to the
 * first that has not or is malformed: csv_parse stores at most that many rows (less the
 * header), so the data takes memory in proportion to its cells, never more. */
static size_t csv_count(const csv_ctx *c, const char *p)
{
    size_t count = 0, line = 1, first = 0, nc;
    while (csv_skip_blank(c, &p, &line)) {
        if (csv_record(c, &p, &line, NULL, NULL, &nc) != BP_OK || (count > 0 && nc != first)) break;
        first = nc;
        count++;
    }
    return count;
}

static int csv_delimiter_ok(int d)
{
    return d == ',' || d == ';' || d == '\t' || d == ' ' || d == '|' || d == ':';
}

static bp_status csv_parse(const void *ctx, const bp__alloc *a, const char *name, const char *buf,
                           size_t size, bp_dataset **out)
{
    csv_ctx c = *(const csv_ctx *)ctx;
    c.name = name;
    const char *p = buf;
    c.end = buf + size;
    if (size >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) p += 3; /* UTF-8 byte-order mark */
    size_t line = 1, rows = 0, cap = csv_count(&c, p), in = 0;
    float *x = NULL, *y = NULL, *scratch = NULL;
    bp_status st = BP_OK;
    while (csv_skip_blank(&c, &p, &line)) {
        size_t nc;
        if (c.cols == 0) {
            const char *start = p;
            const size_t start_line = line;
            st = csv_record(&c, &p, &line, NULL, NULL, &nc);
            if (st != BP_OK) goto fail;
            if (c.tc > SIZE_MAX - c.tf) { /* the range wraps: print the arguments as given */
                st = bp__fail(NULL, BP_ERR_FORMAT,
                              "%s:%zu: %zu columns, but the targets are "
                              "%zu columns from index %zu (counting from 0)",
                              c.name, start_line, nc, c.tc, c.tf);
                goto fail;
            }
            if (c.tf >= nc || c.tc > nc - c.tf) {
                st = bp__fail(NULL, BP_ERR_FORMAT,
                              "%s:%zu: %zu columns, but the targets are "
                              "columns %zu .. %zu (counting from 1)",
                              c.name, start_line, nc, c.tf + 1, c.tf + c.tc);
                goto fail;
            }
            if (nc == c.tc) {
                st = bp__fail(NULL, BP_ERR_FORMAT,
                              "%s:%zu: all %zu columns are targets; no "
                              "column is left for the inputs",
                              c.name, start_line, nc);
                goto fail;
            }
            c.cols = nc;
            c.first_line = start_line;
            in = nc - c.tc;
            if (c.has_header) cap--;
            int failed = 0;
            x = alloc_rows(a, cap, in, &failed);
            y = alloc_rows(a, cap, c.tc, &failed);
            if (failed) {
                st = bp__fail(NULL, BP_ERR_NOMEM,
                              "%s: out of memory for %zu rows of %zu "
                              "columns",
                              c.name, cap, nc);
                goto fail;
            }
            if (c.has_header) continue;
            p = start;
            line = start_line;
        }
        const size_t row_line = line;
        float *xr, *yr;
        if (rows < cap) {
            xr = x + rows * in;
            yr = y + rows * c.tc;
        } else { /* the record csv_count stopped at: it fails below; parse it aside */
            int failed = 0;
            scratch = alloc_rows(a, 1, c.cols, &failed);
            if (failed) {
                st = bp__fail(NULL, BP_ERR_NOMEM, "%s:%zu: out of memory", c.name, line);
                goto fail;
            }
            xr = scratch;
            yr = scratch + in;
        }
        st = csv_record(&c, &p, &line, xr, yr, &nc);
        if (st != BP_OK) goto fail;
        if (nc != c.cols) {
            st = bp__fail(NULL, BP_ERR_FORMAT,
                          "%s:%zu: %zu columns, expected %zu (as on line "
                          "%zu)",
                          c.name, row_line, nc, c.cols, c.first_line);
            goto fail;
        }
        if (rows == cap) { /* csv_count and this loop disagree: a bug, never bad input */
            st = bp__fail(NULL, BP_ERR_FORMAT, "%s:%zu: record not counted", c.name, row_line);
            goto fail;
        }
        rows++;
    }
    if (rows == 0) {
        st = bp__fail(NULL, BP_ERR_FORMAT, "%s: no data rows%s", c.name,
                      c.cols == 0 ? " (empty file)" : " after the header");
        goto fail;
    }
    return bp__dataset_adopt(out, a, x, y, rows, in, c.tc);
fail:
    bp__free(a, x);
    bp__free(a, y);
    bp__free(a, scratch);
    return st;
}

typedef bp_status (*text_parser)(const void *ctx, const bp__alloc *a, const char *name,
                                 const char *buf, size_t size, bp_dataset **out);

/* Run @p parse on the NUL-terminated @p buf in the C locale. */
static bp_status run_text(const char *what, const bp__alloc *a, const char *name, const char *buf,
                          size_t size, text_parser parse, const void *ctx, bp_dataset **out)
{
    bp__c_locale loc = {(locale_t)0, (locale_t)0};
    bp_status st = bp__c_locale_begin(&loc, NULL, what);
    if (st == BP_OK) {
        st = parse(ctx, a, name, buf, size, out);
        bp__c_locale_end(&loc);
    }
    return st;
}

/* Read @p path (plain or gzip, at most @p limit bytes decompressed) and run @p parse on it
 * in the C locale. */
static bp_status load_text(const char *what, const bp__alloc *a, const char *path, size_t limit,
                           text_parser parse, const void *ctx, bp_dataset **out)
{
    unsigned char *buf;
    size_t size;
    char name[BP__LABEL_CAP];
    BP_CHECK(bp__read_file_as(a, NULL, path, BP__READ_TEXT, limit, &buf, &size));
    const bp_status st =
        run_text(what, a, bp__path_label(name, path), (const char *)buf, size, parse, ctx, out);
    bp__free(a, buf);
    return st;
}

static bp_status csv_args(int delimiter, int has_header, size_t target_count)
{
    if (!csv_delimiter_ok(delimiter))
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "load_csv: delimiter %d is not one of "
                        "',' ';' '\\t' ' ' '|' ':'",
                        delimiter);
    if (has_header != 0 && has_header != 1)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "load_csv: has_header is %d, not 0 or 1",
                        has_header);
    if (target_count == 0) return bp__fail(NULL, BP_ERR_INVALID_ARG, "load_csv: target_count is 0");
    return BP_OK;
}

bp_status bp__dataset_parse_csv(bp_dataset **out, const bp__alloc *a, const char *name,
                                const char *buf, size_t size, int delimiter, int has_header,
                                size_t target_first, size_t target_count)
{
    *out = NULL;
    BP_CHECK(csv_args(delimiter, has_header, target_count));
    const csv_ctx c = {NULL, NULL, (char)delimiter, target_first, target_count, 0, 0, has_header};
    return run_text("load_csv", a, name, buf, size, csv_parse, &c, out);
}

bp_status bp__dataset_load_csv_with(bp_dataset **out, const bp__alloc *a, const char *path,
                                    int delimiter, int has_header, size_t target_first,
                                    size_t target_count, size_t max_decompressed)
{
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "load_csv: out is NULL");
    *out = NULL;
    if (path == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "load_csv: path is NULL");
    BP_CHECK(csv_args(delimiter, has_header, target_count));
    const csv_ctx c = {NULL, NULL, (char)delimiter, target_first, target_count, 0, 0, has_header};
    return load_text("load_csv", a, path, max_decompressed, csv_parse, &c, out);
}

bp_status bp_dataset_load_csv(bp_dataset **out, const char *path, int delimiter, int has_header,
                              size_t target_first, size_t target_count)
{
    return bp__dataset_load_csv_with(out, &bp__default_alloc, path, delimiter, has_header,
                                     target_first, target_count, 0);
}

bp_status bp_dataset_load_csv_ex(bp_dataset **out, const char *path, int delimiter, int has_header,
                                 size_t target_first, size_t target_count, size_t max_decompressed)
{
    return bp__dataset_load_csv_with(out, &bp__default_alloc, path, delimiter, has_header,
                                     target_first, target_count, max_decompressed);
}

/* ---- FANN ------------------------------------------------------------------------------ */

typedef struct scanner {
    const char *p, *end;
    size_t line;
} scanner;

static int is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Next whitespace-separated token; 0 at the end of the buffer. */
static int next_token(scanner *s, const char **tok, size_t *len)
{
    while (s->p < s->end && is_ws(*s->p)) {
        if (*s->p == '\n') s->line++;
        s->p++;
    }
    if (s->p >= s->end) return 0;
    *tok = s->p;
    while (s->p < s->end && !is_ws(*s->p))
        s->p++;
    *len = (size_t)(s->p - *tok);
    return 1;
}

static bp_status fann_count(scanner *s, const char *name, const char *what, size_t *v)
{
    const char *tok;
    size_t len;
    if (!next_token(s, &tok, &len))
        return bp__fail(NULL, BP_ERR_FORMAT,
                        "%s:%zu: header ends before %s (expected "
                        "\"num_data num_input num_output\")",
                        name, s->line, what);
    size_t r = 0;
    for (size_t i = 0; i < len; i++) {
        const unsigned d = (unsigned)(unsigned char)tok[i] - '0';
        if (d > 9 || r > (SIZE_MAX - d) / 10) {
            char snip[40];
            return bp__fail(NULL, BP_ERR_FORMAT, "%s:%zu: header %s '%s' is not a count", name,
                            s->line, what, snippet(snip, sizeof snip, tok, len));
        }
        r = r * 10 + d;
    }
    if (r == 0) return bp__fail(NULL, BP_ERR_FORMAT, "%s:%zu: header %s is 0", name, s->line, what);
    *v = r;
    return BP_OK;
}

static bp_status fann_parse(const void *ctx, const bp__alloc *a, const char *name, const char *buf,
                            size_t size, bp_dataset **out)
{
    (void)ctx;
    scanner s = {buf, buf + size, 1};
    size_t n, in, outs, width, total, nx, ny;
    BP_CHECK(fann_count(&s, name, "num_data", &n));
    BP_CHECK(fann_count(&s, name, "num_input", &in));
    BP_CHECK(fann_count(&s, name, "num_output", &outs));
    if (in > SIZE_MAX - outs || bp__mul_size(n, in + outs, &total) != 0)
        return bp__fail(NULL, BP_ERR_FORMAT, "%s: header counts %zu x (%zu + %zu) overflow", name,
                        n, in, outs);
    /* Each number needs a digit and a separator: refuse before allocating. */
    const size_t room = (size_t)(s.end - s.p) / 2;
    if (total > room)
        return bp__fail(NULL, BP_ERR_FORMAT,
                        "%s: header announces %zu x (%zu + %zu) = %zu "
                        "numbers; the rest of the file holds at most %zu",
                        name, n, in, outs, total, room);
    width = in + outs;
    nx = n * in;
    ny = n * outs;
    float *x = bp__malloc(a, nx * sizeof(float));
    float *y = bp__malloc(a, ny * sizeof(float));
    bp_status st = BP_OK;
    if (x == NULL || y == NULL) {
        st = bp__fail(NULL, BP_ERR_NOMEM, "%s: out of memory for %zu samples", name, n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < width; j++) {
            const char *tok;
            size_t len;
            if (!next_token(&s, &tok, &len)) {
                st = bp__fail(NULL, BP_ERR_FORMAT,
                              "%s:%zu: file ends after %zu of the %zu "
                              "numbers its header announces (sample %zu)",
                              name, s.line, i * width + j, total, i);
                goto fail;
            }
            float *dst = j < in ? &x[i * in + j] : &y[i * outs + (j - in)];
            const int r = parse_float(tok, len, dst);
            if (r != NUM_OK) {
                char where[64];
                snprintf(where, sizeof where, "sample %zu %s %zu", i, j < in ? "input" : "output",
                         j < in ? j : j - in);
                st = number_error(r, name, s.line, where, tok, len);
                goto fail;
            }
        }
    }
    const char *tok;
    size_t len;
    if (next_token(&s, &tok, &len)) {
        st = bp__fail(NULL, BP_ERR_FORMAT,
                      "%s:%zu: more numbers than the %zu x (%zu + %zu) its "
                      "header announces",
                      name, s.line, n, in, outs);
        goto fail;
    }
    return bp__dataset_adopt(out, a, x, y, n, in, outs);
fail:
    bp__free(a, x);
    bp__free(a, y);
    return st;
}

bp_status bp__dataset_parse_fann(bp_dataset **out, const bp__alloc *a, const char *name,
                                 const char *buf, size_t size)
{
    *out = NULL;
    return run_text("load_fann", a, name, buf, size, fann_parse, NULL, out);
}

bp_status bp__dataset_load_fann_with(bp_dataset **out, const bp__alloc *a, const char *path,
                                     size_t max_decompressed)
{
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "load_fann: out is NULL");
    *out = NULL;
    if (path == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "load_fann: path is NULL");
    return load_text("load_fann", a, path, max_decompressed, fann_parse, NULL, out);
}

bp_status bp_dataset_load_fann(bp_dataset **out, const char *path)
{
    return bp__dataset_load_fann_with(out, &bp__default_alloc, path, 0);
}

bp_status bp_dataset_load_fann_ex(bp_dataset **out, const char *path, size_t max_decompressed)
{
    return bp__dataset_load_fann_with(out, &bp__default_alloc, path, max_decompressed);
}

static void write_row(FILE *f, const float *v, size_t width)
{
    for (size_t c = 0; c < width; c++)
        fprintf(f, c + 1 < width ? "%.9g " : "%.9g\n", (double)v[c]);
}

bp_status bp_dataset_save_fann(const bp_dataset *ds, const char *path)
{
    if (!bp__dataset_ok(ds))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s", bp__invalid_handle_msg);
    char *err = NULL; /* a const data set: bp_last_error() only, see dataset.c */
    if (path == NULL) return bp__fail(err, BP_ERR_INVALID_ARG, "save_fann: path is NULL");
    if (!bp__dataset_resident(ds))
        return bp__fail(err, BP_ERR_UNSUPPORTED,
                        "save_fann: the data set is memory-mapped; "
                        "write it with bp_dataset_save_binary");
    bp__atomic_file w;
    BP_CHECK(bp__atomic_open(&w, err, path));
    bp__c_locale loc = {(locale_t)0, (locale_t)0};
    const bp_status st = bp__c_locale_begin(&loc, err, "save_fann");
    if (st != BP_OK) {
        bp__atomic_abort(&w);
        return st;
    }
    fprintf(w.f, "%zu %zu %zu\n", ds->n, ds->in, ds->out);
    for (size_t i = 0; i < ds->n; i++) {
        write_row(w.f, ds->x + i * ds->in, ds->in);
        write_row(w.f, ds->y + i * ds->out, ds->out);
    }
    bp__c_locale_end(&loc);
    return bp__atomic_commit(&w, err, path);
}

/* ---- IDX ------------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Validate an unsigned-byte IDX buffer: dims in [min_dims, max_dims], every dimension >= 1,
 * length equal to the header's. Returns items (first dimension) and bytes per item. */
static bp_status idx_check(const char *name, const unsigned char *b, size_t size, unsigned min_dims,
                           unsigned max_dims, uint32_t expect_magic, size_t *items, size_t *item)
{
    if (size < 4)
        return bp__fail(NULL, BP_ERR_FORMAT, "%s: %zu bytes, too short for an IDX header", name,
                        size);
    const uint32_t magic = be32(b);
    const unsigned dims = b[3];
    if (b[0] != 0 || b[1] != 0 || b[2] != 0x08 || dims < min_dims || dims > max_dims)
        return bp__fail(NULL, BP_ERR_FORMAT,
                        "%s: magic 0x%08lx is not an unsigned-byte IDX "
                        "file of the expected kind (0x%08lx)",
                        name, (unsigned long)magic, (unsigned long)expect_magic);
    const size_t header = 4 + 4 * (size_t)dims;
    if (size < header)
        return bp__fail(NULL, BP_ERR_FORMAT, "%s: truncated header (%zu of %zu bytes)", name, size,
                        header);
    size_t per = 1;
    for (unsigned d = 0; d < dims; d++) {
        const uint32_t len = be32(b + 4 + 4 * d);
        if (len == 0) return bp__fail(NULL, BP_ERR_FORMAT, "%s: dimension %u is 0", name, d);
        if (d > 0 && bp__mul_size(per, len, &per) != 0)
            return bp__fail(NULL, BP_ERR_FORMAT, "%s: item dimensions overflow", name);
    }
    const size_t n = be32(b + 4);
    size_t body;
    if (bp__mul_size(n, per, &body) != 0 || body > SIZE_MAX - header)
        return bp__fail(NULL, BP_ERR_FORMAT, "%s: %zu items of %zu bytes overflow", name, n, per);
    if (size - header != body)
        return bp__fail(NULL, BP_ERR_FORMAT,
                        "%s: header announces %zu items of %zu bytes (%zu "
                        "bytes) but the file holds %zu",
                        name, n, per, body, size - header);
    *items = n;
    *item = per;
    return BP_OK;
}

bp_status bp__dataset_parse_idx(bp_dataset **out, const bp__alloc *a, const char *iname,
                                const unsigned char *img, size_t img_size, const char *lname,
                                const unsigned char *lab, size_t lab_size, size_t classes)
{
    size_t n = 0, per = 0, nl = 0, one = 0;
    *out = NULL;
    BP_CHECK(idx_check(iname, img, img_size, 2, 255, 0x00000803u, &n, &per));
    BP_CHECK(idx_check(lname, lab, lab_size, 1, 1, 0x00000801u, &nl, &one));
    if (n != nl)
        return bp__fail(NULL, BP_ERR_FORMAT, "%s holds %zu images but %s holds %zu labels", iname,
                        n, lname, nl);
    const unsigned char *pix = img + img_size - n * per, *labels = lab + 8;
    for (size_t i = 0; classes > 0 && i < n; i++)
        if (labels[i] >= classes)
            return bp__fail(NULL, BP_ERR_INDEX,
                            "%s: item %zu has label %u, not below %zu "
                            "classes",
                            lname, i, (unsigned)labels[i], classes);
    const size_t outs = classes > 0 ? classes : 1;
    size_t ny;
    if (n > SIZE_MAX / sizeof(float) / per || bp__mul_size(n, outs, &ny) != 0 ||
        ny > SIZE_MAX / sizeof(float))
        return bp__fail(NULL, BP_ERR_NOMEM, "%s: %zu items do not fit in memory", iname, n);
    float *x = bp__malloc(a, n * per * sizeof(float));
    float *y = bp__calloc(a, ny, sizeof(float));
    if (x == NULL || y == NULL) {
        bp__free(a, x);
        bp__free(a, y);
        return bp__fail(NULL, BP_ERR_NOMEM, "%s: out of memory for %zu items", iname, n);
    }
    for (size_t i = 0; i < n * per; i++)
        x[i] = (float)pix[i] / 255.0f;
    for (size_t i = 0; i < n; i++) {
        if (classes > 0)
            y[i * classes + labels[i]] = 1.0f;
        else
            y[i] = (float)labels[i];
    }
    return bp__dataset_adopt(out, a, x, y, n, per, outs);
}

bp_status bp__dataset_load_idx_with(bp_dataset **out, const bp__alloc *a, const char *images_path,
                                    const char *labels_path, size_t classes,
                                    size_t max_decompressed)
{
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "load_idx: out is NULL");
    *out = NULL;
    if (images_path == NULL || labels_path == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "load_idx: %s is NULL",
                        images_path == NULL ? "images_path" : "labels_path");
    if (classes > MAX_CLASSES)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "load_idx: classes = %zu; need 0 .. 2^24",
                        classes);
    unsigned char *img, *lab;
    size_t img_size, lab_size;
    char iname[BP__LABEL_CAP], lname[BP__LABEL_CAP];
    BP_CHECK(
        bp__read_file_as(a, NULL, images_path, BP__READ_IDX, max_decompressed, &img, &img_size));
    bp_status st =
        bp__read_file_as(a, NULL, labels_path, BP__READ_IDX, max_decompressed, &lab, &lab_size);
    if (st == BP_OK) {
        st = bp__dataset_parse_idx(out, a, bp__path_label(iname, images_path), img, img_size,
                                   bp__path_label(lname, labels_path), lab, lab_size, classes);
        bp__free(a, lab);
    }
    bp__free(a, img);
    return st;
}

bp_status bp_dataset_load_idx(bp_dataset **out, const char *images_path, const char *labels_path,
                              size_t classes)
{
    return bp__dataset_load_idx_with(out, &bp__default_alloc, images_path, labels_path, classes, 0);
}

bp_status bp_dataset_load_idx_ex(bp_dataset **out, const char *images_path, const char *labels_path,
                                 size_t classes, size_t max_decompressed)
{
    return bp__dataset_load_idx_with(out, &bp__default_alloc, images_path, labels_path, classes,
                                     max_decompressed);
}
