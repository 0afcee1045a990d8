/*
 * codec.h -- the byte codec every file section is written and read with (docs/format.md):
 * little-endian integers and floats on every host, written and read byte by byte.
 * serialize.c frames the sections; each module encodes its own section's payload with these
 * (the optimizer in optimizer.c, the fit state in fit_state.c, scalers and metadata in meta.c).
 *
 * Writer: counts when p is NULL, else writes into a buffer the caller has already sized by
 * counting, so that the two passes cannot disagree.
 * Reader: every read is bounds-checked; a short read sets a sticky flag and yields 0.
 * Section decoders report a failure as a status with the message in bp_last_error(), without
 * the file name or section (serialize.c adds them).
 */
#ifndef BP_CODEC_H
#define BP_CODEC_H

#include "util.h"

typedef struct bp__wr {
    unsigned char *p; /* NULL: count only */
    size_t len;       /* bytes written (or counted) so far */
} bp__wr;

typedef struct bp__rd {
    const unsigned char *p;
    size_t len, pos;
    int short_read; /* a read went past the end */
} bp__rd;

static inline void bp__put_le(unsigned char *d, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        d[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t bp__get_le(const unsigned char *s, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes; i-- > 0;)
        v = v << 8 | s[i];
    return v;
}

static inline void bp__w_bytes(bp__wr *w, const void *src, size_t n)
{
    if (w->p != NULL && n > 0) memcpy(w->p + w->len, src, n);
    w->len += n;
}

static inline void bp__w_u32(bp__wr *w, uint32_t v)
{
    if (w->p != NULL) bp__put_le(w->p + w->len, v, 4);
    w->len += 4;
}

static inline void bp__w_u64(bp__wr *w, uint64_t v)
{
    if (w->p != NULL) bp__put_le(w->p + w->len, v, 8);
    w->len += 8;
}

static inline void bp__w_f64(bp__wr *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    bp__w_u64(w, u);
}

static inline void bp__w_f32s(bp__wr *w, const float *v, size_t n)
{
    if (w->p != NULL) {
        unsigned char *d = w->p + w->len;
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], sizeof u);
            bp__put_le(d + 4 * i, u, 4);
        }
    }
    w->len += 4 * n;
}

static inline size_t bp__r_left(const bp__rd *r)
{
    return r->len - r->pos;
}

static inline const unsigned char *bp__r_take(bp__rd *r, size_t n)
{
    if (n > bp__r_left(r)) {
        r->short_read = 1;
        r->pos = r->len;
        return NULL;
    }
    const unsigned char *at = r->p + r->pos;
    r->pos += n;
    return at;
}

static inline uint32_t bp__r_u32(bp__rd *r)
{
    const unsigned char *b = bp__r_take(r, 4);
    return b != NULL ? (uint32_t)bp__get_le(b, 4) : 0;
}

static inline uint64_t bp__r_u64(bp__rd *r)
{
    const unsigned char *b = bp__r_take(r, 8);
    return b != NULL ? bp__get_le(b, 8) : 0;
}

static inline double bp__r_f64(bp__rd *r)
{
    const uint64_t u = bp__r_u64(r);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* Read n floats; the caller has checked that 4 * n bytes remain (bp__r_need). */
static inline void bp__r_f32s(bp__rd *r, float *dst, size_t n)
{
    const unsigned char *b = bp__r_take(r, 4 * n);
    for (size_t i = 0; b != NULL && i < n; i++) {
        const uint32_t u = (uint32_t)bp__get_le(b + 4 * i, 4);
        memcpy(&dst[i], &u, sizeof u);
    }
}

/* The failure of a decoder whose read went past the end. */
static inline bp_status bp__r_truncated(void)
{
    return bp__fail(NULL, BP_ERR_FORMAT, "truncated");
}

/* BP_OK if @p count items of @p elem bytes fit in what remains of @p r (checked before any
 * allocation a count announces), else BP_ERR_FORMAT. */
static inline bp_status bp__r_need(const bp__rd *r, uint64_t count, size_t elem, const char *what)
{
    if (count > bp__r_left(r) / elem)
        return bp__fail(NULL, BP_ERR_FORMAT, "%llu %s announced, only %zu bytes remain",
                        (unsigned long long)count, what, bp__r_left(r));
    return BP_OK;
}

#endif /* BP_CODEC_H */
