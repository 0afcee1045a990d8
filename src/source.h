/*
 * source.h -- streaming sources (source.c): the bp_source handle, whose rows come from the
 * caller's callbacks a chunk at a time (a pipe, a generator, augmentation on the fly), and
 * one pass over it, optionally through a shuffle buffer. train.c drives the passes of
 * bp_net_fit_source and bp_net_evaluate_source.
 */
#ifndef BP_SOURCE_H
#define BP_SOURCE_H

#include "util.h"
#include "rng.h"

#define BP__MAGIC_SOURCE 0x43525342u /* "BSRC" */

struct bp_source {
    uint32_t magic;
    size_t in, out; /* per-row widths, both >= 1 */
    size_t rows;    /* rows of every pass, 0: unknown */
    bp_source_read_fn read;
    bp_source_rewind_fn rewind; /* NULL: one pass only */
    void *user;
    int used; /* a pass has begun since creation or the last rewind */
};

static inline int bp__source_ok(const bp_source *s)
{
    return s != NULL && s->magic == BP__MAGIC_SOURCE;
}

/* One pass over a source. The caller provides the buffers; the pass owns none. */
typedef struct bp__pass {
    bp_source *src;
    bp__rng *rng;      /* draws of the shuffle buffer; NULL: rows in stream order */
    float *bx;         /* shuffle buffer [cap x in] (rng only) */
    float *by;         /* [cap x out] */
    size_t cap;        /* rows the shuffle buffer holds, >= 1 (rng only) */
    float *tx;         /* staging for reads into the shuffle buffer [tcap x in] (rng only) */
    float *ty;         /* [tcap x out] */
    size_t tcap;       /* >= 1 (rng only) */
    size_t count;      /* rows held in the shuffle buffer */
    size_t tpos, tlen; /* staged rows tpos .. tlen - 1 not yet moved into the buffer */
    size_t delivered;  /* rows the source delivered in this pass */
    int ended;         /* the source reported the end of the pass */
} bp__pass;

/* Begin a pass over @p src: rewind it unless it is fresh (BP_ERR_STATE without a rewind
 * callback, or the callback's error). Buffers and rng as described in bp__pass (rng NULL:
 * stream order, the other buffers unused). Messages through bp_last_error() only. */
bp_status bp__pass_begin(bp__pass *p, bp_source *src, bp__rng *rng, float *bx, float *by,
                         size_t cap, float *tx, float *ty, size_t tcap);
/* Fill x [k x in] and y [k x out] with the next rows of the pass; *got < k only at its end
 * (0: the pass is over). Every row delivered is checked finite, and the count against the
 * source's announced rows; failures (the callback's error, BP_ERR_NONFINITE naming the pass
 * row and column, BP_ERR_SHAPE for a count other than announced, BP_ERR_STATE for more rows
 * than asked) through bp_last_error() only. */
bp_status bp__pass_next(bp__pass *p, float *x, float *y, size_t k, size_t *got);

#endif /* BP_SOURCE_H */
