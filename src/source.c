/* source.c -- streaming sources: the bp_source handle over the caller's read and rewind
 * callbacks, and one pass over it, in stream order or through a shuffle buffer (the rows are
 * drawn at random from a window of the stream, as far ahead as the buffer holds). */
#include "util.h"
#include "rng.h"
#include "source.h"

#include <stdio.h>
#include <string.h>

bp_status bp_source_create(bp_source **out, size_t inputs, size_t outputs, size_t rows,
                           bp_source_read_fn read, bp_source_rewind_fn rewind, void *user)
{
    static const char fn[] = "bp_source_create";
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (read == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: read is NULL", fn);
    /* Widths as a data set's: a row of either must fit a float buffer's size. */
    if (inputs == 0 || outputs == 0 || inputs > SIZE_MAX / sizeof(float) / 2 ||
        outputs > SIZE_MAX / sizeof(float) / 2)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "%s: inputs = %zu, outputs = %zu; each must be >= 1 and fit in memory", fn,
                        inputs, outputs);
    bp_source *s = bp__calloc(&bp__default_alloc, 1, sizeof *s);
    if (s == NULL) return bp__fail(NULL, BP_ERR_NOMEM, "%s: out of memory", fn);
    s->magic = BP__MAGIC_SOURCE;
    s->in = inputs;
    s->out = outputs;
    s->rows = rows;
    s->read = read;
    s->rewind = rewind;
    s->user = user;
    *out = s;
    return BP_OK;
}

void bp_source_free(bp_source *src)
{
    if (!bp__source_ok(src)) return;
    src->magic = 0;
    bp__free(&bp__default_alloc, src);
}

/* The status for a callback that returned @p cs (nonzero): its own when it is an error status
 * of the library, else BP_ERR_IO; the message the callback left in bp_last_error() (cleared
 * before the call), or one naming the value. @p what names the callback and the place. */
static bp_status callback_failed(const char *what, int cs)
{
    const int ok = bp__status_is_error(cs);
    const bp_status s = ok ? (bp_status)cs : BP_ERR_IO;
    if (bp_last_error()[0] != '\0') return bp__fail(NULL, s, "%s: %s", what, bp_last_error());
    return bp__fail(NULL, s, "%s returned %d (%s)", what, cs,
                    ok ? bp_status_string(cs) : "no bp_status; reported as an I/O error");
}

bp_status bp__pass_begin(bp__pass *p, bp_source *src, bp__rng *rng, float *bx, float *by,
                         size_t cap, float *tx, float *ty, size_t tcap)
{
    memset(p, 0, sizeof *p);
    p->src = src;
    p->rng = rng;
    p->bx = bx;
    p->by = by;
    p->cap = cap;
    p->tx = tx;
    p->ty = ty;
    p->tcap = tcap;
    if (src->used) {
        if (src->rewind == NULL)
            return bp__fail(NULL, BP_ERR_STATE,
                            "the source has no rewind callback and gave its one pass already");
        (void)bp__fail(NULL, BP_OK, "%s", ""); /* the callback's message, if any, is its own */
        const int rs = src->rewind(src->user);
        if (rs != 0) return callback_failed("the source's rewind callback", rs);
    }
    src->used = 1;
    return BP_OK;
}

/* The end of the pass: every announced row came, and at least one. */
static bp_status pass_end(bp__pass *p)
{
    p->ended = 1;
    if (p->delivered == 0) return bp__fail(NULL, BP_ERR_STATE, "the source gave no rows");
    if (p->src->rows != 0 && p->delivered != p->src->rows)
        return bp__fail(NULL, BP_ERR_SHAPE, "the source announced %zu rows and gave %zu",
                        p->src->rows, p->delivered);
    return BP_OK;
}

/* Call the read callback for up to @p k rows into x, y; check what it wrote. */
static bp_status source_read(bp__pass *p, float *x, float *y, size_t k, size_t *got)
{
    const bp_source *s = p->src;
    size_t r = 0;
    *got = 0;
    (void)bp__fail(NULL, BP_OK, "%s", "");
    const int cs = s->read(s->user, x, y, k, &r);
    if (cs != 0) {
        char what[96];
        snprintf(what, sizeof what, "the source's read callback (after %zu rows of the pass)",
                 p->delivered);
        return callback_failed(what, cs);
    }
    if (r > k)
        return bp__fail(NULL, BP_ERR_STATE,
                        "the source's read callback reported %zu rows for room of %zu", r, k);
    if (r == 0) return pass_end(p);
    size_t i = bp__first_nonfinite(x, r * s->in);
    if (i < r * s->in)
        return bp__fail(NULL, BP_ERR_NONFINITE, "source row %zu, input column %zu is %g",
                        p->delivered + i / s->in, i % s->in, (double)x[i]);
    i = bp__first_nonfinite(y, r * s->out);
    if (i < r * s->out)
        return bp__fail(NULL, BP_ERR_NONFINITE, "source row %zu, target column %zu is %g",
                        p->delivered + i / s->out, i % s->out, (double)y[i]);
    p->delivered += r;
    if (s->rows != 0 && p->delivered > s->rows)
        return bp__fail(NULL, BP_ERR_SHAPE, "the source announced %zu rows and gave more (%zu)",
                        s->rows, p->delivered);
    *got = r;
    return BP_OK;
}

/* Top the shuffle buffer up to its capacity from the staged rows, reading more as needed. */
static bp_status top_up(bp__pass *p)
{
    const size_t in = p->src->in, out = p->src->out;
    while (!p->ended && p->count < p->cap) {
        if (p->tpos == p->tlen) {
            size_t r;
            BP_CHECK(source_read(p, p->tx, p->ty, p->tcap, &r));
            p->tpos = 0;
            p->tlen = r;
            continue;
        }
        size_t m = p->tlen - p->tpos;
        if (m > p->cap - p->count) m = p->cap - p->count;
        memcpy(p->bx + p->count * in, p->tx + p->tpos * in, m * in * sizeof(float));
        memcpy(p->by + p->count * out, p->ty + p->tpos * out, m * out * sizeof(float));
        p->count += m;
        p->tpos += m;
    }
    return BP_OK;
}

bp_status bp__pass_next(bp__pass *p, float *x, float *y, size_t k, size_t *got)
{
    const size_t in = p->src->in, out = p->src->out;
    size_t n = 0;
    *got = 0;
    if (p->rng == NULL) {
        while (n < k && !p->ended) {
            size_t r;
            BP_CHECK(source_read(p, x + n * in, y + n * out, k - n, &r));
            n += r;
        }
        *got = n;
        return BP_OK;
    }
    /* Each row is drawn uniformly from the buffer, which is kept full from the stream: the
     * draws depend on the rows' order only, not on how the callback cuts them into chunks. */
    for (; n < k; n++) {
        BP_CHECK(top_up(p));
        if (p->count == 0) break;
        const size_t j = (size_t)bp__rng_below(p->rng, (uint64_t)p->count);
        const size_t last = --p->count;
        memcpy(x + n * in, p->bx + j * in, in * sizeof(float));
        memcpy(y + n * out, p->by + j * out, out * sizeof(float));
        if (j != last) {
            memcpy(p->bx + j * in, p->bx + last * in, in * sizeof(float));
            memcpy(p->by + j * out, p->by + last * out, out * sizeof(float));
        }
    }
    *got = n;
    return BP_OK;
}
