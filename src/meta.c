/* meta.c -- the data a net keeps for its files besides its layers: the input/target scalers
 * (bp_net_set_scaler) and the key/value metadata (bp_net_set_meta), with the codecs of their
 * file sections SCAL and META (docs/format.md). Stored on the net as one block, created on
 * first use. */
#include "util.h"
#include "codec.h"
#include "layer.h"
#include "net.h"
#include "meta.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define META_MAX_ENTRIES 1024u
#define META_KEY_MAX     255u
#define META_VALUE_MAX   65535u

/* One key/value entry in one allocation: key NUL value NUL. */
typedef struct kv {
    char *key;
    size_t klen, vlen;
} kv;

typedef struct kv_list {
    kv *items;
    size_t count, cap;
} kv_list;

struct bp__meta {
    float *scaler[2]; /* part - 1: [2 x count] offsets then scales, or NULL */
    size_t scaler_count[2];
    kv_list meta; /* values are NUL-free strings */
    float *xbuf;  /* BP_NET_APPLY_SCALERS: scaled input rows [xcap floats]; not cloned */
    size_t xcap;
};

/* ------------------------------------------------------------------------------------------
 * Storage
 * ----------------------------------------------------------------------------------------*/

static const char *kv_value(const kv *e)
{
    return e->key + e->klen + 1;
}

static long kv_find(const kv_list *l, const char *key, size_t klen)
{
    for (size_t i = 0; i < l->count; i++)
        if (l->items[i].klen == klen && memcmp(l->items[i].key, key, klen) == 0) return (long)i;
    return -1;
}

static void kv_free(const bp__alloc *a, kv_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        bp__free(a, l->items[i].key);
    bp__free(a, l->items);
    memset(l, 0, sizeof *l);
}

/* Insert or replace (value != NULL) or remove (value NULL) an entry. Validated by the
 * caller; on BP_ERR_NOMEM the list is unchanged. */
static bp_status kv_put(const bp__alloc *a, kv_list *l, const char *key, size_t klen,
                        const void *value, size_t vlen)
{
    const long at = kv_find(l, key, klen);
    if (value == NULL) {
        if (at >= 0) {
            bp__free(a, l->items[at].key);
            memmove(&l->items[at], &l->items[at + 1],
                    (l->count - (size_t)at - 1) * sizeof *l->items);
            l->count--;
        }
        return BP_OK;
    }
    char *block = bp__malloc(a, klen + vlen + 2);
    if (block == NULL) return BP_ERR_NOMEM;
    memcpy(block, key, klen);
    block[klen] = '\0';
    if (vlen > 0) memcpy(block + klen + 1, value, vlen);
    block[klen + 1 + vlen] = '\0';
    if (at >= 0) {
        bp__free(a, l->items[at].key);
        l->items[at].key = block;
        l->items[at].vlen = vlen;
        return BP_OK;
    }
    if (l->count == l->cap) {
        const size_t cap = l->cap ? l->cap * 2 : 8;
        kv *items = bp__calloc(a, cap, sizeof *items);
        if (items == NULL) {
            bp__free(a, block);
            return BP_ERR_NOMEM;
        }
        if (l->count) memcpy(items, l->items, l->count * sizeof *items);
        bp__free(a, l->items);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->count].key = block;
    l->items[l->count].klen = klen;
    l->items[l->count].vlen = vlen;
    l->count++;
    return BP_OK;
}

/* The net's block, created on first use; NULL when out of memory. */
static struct bp__meta *meta_of(bp_net *net)
{
    if (net->meta == NULL) net->meta = bp__calloc(&net->alloc, 1, sizeof *net->meta);
    return net->meta;
}

void bp__meta_free(bp_net *net)
{
    struct bp__meta *m = net->meta;
    if (m == NULL) return;
    for (int i = 0; i < 2; i++)
        bp__free(&net->alloc, m->scaler[i]);
    kv_free(&net->alloc, &m->meta);
    bp__free(&net->alloc, m->xbuf);
    bp__free(&net->alloc, m);
    net->meta = NULL;
}

/* Replace scaler part @p idx (0 inputs, 1 targets) by a copy; net unchanged on failure. */
static bp_status scaler_store(bp_net *net, int idx, const float *offset, const float *scale,
                              size_t count)
{
    struct bp__meta *m = meta_of(net);
    float *block = m != NULL ? bp__malloc(&net->alloc, 2 * count * sizeof(float)) : NULL;
    if (block == NULL) return BP_ERR_NOMEM;
    memcpy(block, offset, count * sizeof(float));
    memcpy(block + count, scale, count * sizeof(float));
    bp__free(&net->alloc, m->scaler[idx]);
    m->scaler[idx] = block;
    m->scaler_count[idx] = count;
    return BP_OK;
}

bp_status bp__meta_clone(bp_net *dst, const bp_net *src)
{
    const struct bp__meta *m = src->meta;
    if (m == NULL) return BP_OK;
    if (meta_of(dst) == NULL) return BP_ERR_NOMEM;
    for (int i = 0; i < 2; i++)
        if (m->scaler[i] != NULL)
            BP_CHECK(scaler_store(dst, i, m->scaler[i], m->scaler[i] + m->scaler_count[i],
                                  m->scaler_count[i]));
    for (size_t i = 0; i < m->meta.count; i++) {
        const kv *e = &m->meta.items[i];
        BP_CHECK(kv_put(&dst->alloc, &dst->meta->meta, e->key, e->klen, kv_value(e), e->vlen));
    }
    return BP_OK;
}

/* Re-record the thread's last message on the net, prefixed with @p fn and @p what. */
static bp_status scaler_fail(bp_net *net, bp_status s, const char *fn, const char *what)
{
    char msg[BP__ERR_CAP];
    snprintf(msg, sizeof msg, "%s", bp_last_error());
    return bp__fail(net->err, s, "%s: BP_NET_APPLY_SCALERS: %s scaler: %s", fn, what, msg);
}

bp_status bp__meta_scale_inputs(bp_net *net, const char *fn, const float **x, size_t rows)
{
    struct bp__meta *m = net->meta;
    if (m == NULL || m->scaler[0] == NULL) return BP_OK;
    const size_t need = rows * net->inputs; /* rows is one predict chunk: no overflow */
    if (need > m->xcap) {
        float *b = bp__malloc(&net->alloc, need * sizeof(float));
        if (b == NULL)
            return bp__fail(net->err, BP_ERR_NOMEM, "%s: out of memory for %zu scaled input floats",
                            fn, need);
        bp__free(&net->alloc, m->xbuf);
        m->xbuf = b;
        m->xcap = need;
    }
    memcpy(m->xbuf, *x, need * sizeof(float));
    const bp_status s = bp_scaler_apply(m->scaler[0], m->scaler[0] + m->scaler_count[0],
                                        net->inputs, m->xbuf, rows);
    if (s != BP_OK) return scaler_fail(net, s, fn, "input");
    *x = m->xbuf;
    return BP_OK;
}

bp_status bp__meta_unscale_outputs(bp_net *net, const char *fn, float *y, size_t rows)
{
    const struct bp__meta *m = net->meta;
    if (m == NULL || m->scaler[1] == NULL) return BP_OK;
    const bp_status s = bp_scaler_invert(m->scaler[1], m->scaler[1] + m->scaler_count[1],
                                         m->scaler_count[1], y, rows);
    return s == BP_OK ? BP_OK : scaler_fail(net, s, fn, "target");
}

/* ------------------------------------------------------------------------------------------
 * Public: scalers and metadata
 * ----------------------------------------------------------------------------------------*/

#define NET_ARG(net, fn)                                                                           \
    do {                                                                                           \
        if (!bp__net_ok(net))                                                                      \
            return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: invalid net handle", fn);               \
    } while (0)

static size_t out_width(const bp_net *net)
{
    return net->nlayers ? net->layers[net->nlayers - 1]->out : 0;
}

static int part_valid(int part)
{
    return part == BP_SCALE_INPUTS || part == BP_SCALE_TARGETS;
}

/* Validation of a scaler for @p net (shared by the setter and the loader). */
static bp_status scaler_check(const bp_net *net, char *err, int part, const float *offset,
                              const float *scale, size_t count)
{
    const size_t width = part == BP_SCALE_INPUTS ? net->inputs : out_width(net);
    if (count != width)
        return bp__fail(err, BP_ERR_SHAPE,
                        "bp_net_set_scaler: %s scaler has %zu columns, the "
                        "net's %s width is %zu",
                        part == BP_SCALE_INPUTS ? "input" : "target", count,
                        part == BP_SCALE_INPUTS ? "input" : "output", width);
    for (size_t c = 0; c < count; c++)
        if (!isfinite(offset[c]) || !isfinite(scale[c]) || scale[c] == 0.0f)
            return bp__fail(err, BP_ERR_NONFINITE,
                            "bp_net_set_scaler: column %zu: offset %g, "
                            "scale %g (need finite values and a non-zero scale)",
                            c, (double)offset[c], (double)scale[c]);
    return BP_OK;
}

bp_status bp_net_set_scaler(bp_net *net, int part, const float *offset, const float *scale,
                            size_t count)
{
    NET_ARG(net, "bp_net_set_scaler");
    if (!part_valid(part))
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_set_scaler: unknown part %d", part);
    const int idx = part - 1;
    if (count == 0 && offset == NULL && scale == NULL) {
        if (net->meta != NULL) {
            bp__free(&net->alloc, net->meta->scaler[idx]);
            net->meta->scaler[idx] = NULL;
            net->meta->scaler_count[idx] = 0;
        }
        return BP_OK;
    }
    if (offset == NULL || scale == NULL)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "bp_net_set_scaler: offset and scale must not be NULL");
    BP_CHECK(scaler_check(net, net->err, part, offset, scale, count));
    if (scaler_store(net, idx, offset, scale, count) != BP_OK)
        return bp__fail(net->err, BP_ERR_NOMEM,
                        "bp_net_set_scaler: out of memory for %zu "
                        "columns",
                        count);
    return BP_OK;
}

bp_status bp_net_get_scaler(const bp_net *net, int part, float *offset, float *scale,
                            size_t capacity, size_t *count)
{
    NET_ARG(net, "bp_net_get_scaler");
    if (count == NULL || !part_valid(part))
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_net_get_scaler: count is NULL or part %d unknown", part);
    const int idx = part - 1;
    const size_t n = net->meta != NULL ? net->meta->scaler_count[idx] : 0;
    *count = n;
    if (n == 0) return BP_OK;
    if (capacity < n)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_get_scaler: the scaler has %zu columns, buffers hold %zu", n,
                        capacity);
    if (offset == NULL || scale == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_net_get_scaler: offset and scale must not be NULL");
    memcpy(offset, net->meta->scaler[idx], n * sizeof(float));
    memcpy(scale, net->meta->scaler[idx] + n, n * sizeof(float));
    return BP_OK;
}

/* Length of a NUL-terminated string, or max + 1 if it is longer than max. */
static size_t bounded_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n <= max && s[n] != '\0')
        n++;
    return n;
}

bp_status bp_net_set_meta(bp_net *net, const char *key, const char *value)
{
    NET_ARG(net, "bp_net_set_meta");
    if (key == NULL) return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_set_meta: key is NULL");
    const size_t klen = bounded_len(key, META_KEY_MAX);
    if (klen == 0 || klen > META_KEY_MAX)
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE, "bp_net_set_meta: keys have 1 .. %u bytes",
                        META_KEY_MAX);
    const size_t vlen = value != NULL ? bounded_len(value, META_VALUE_MAX) : 0;
    if (vlen > META_VALUE_MAX)
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_net_set_meta: '%s': values have at most %u bytes", key, META_VALUE_MAX);
    const kv_list *l = net->meta != NULL ? &net->meta->meta : NULL;
    if (value != NULL && l != NULL && l->count >= META_MAX_ENTRIES && kv_find(l, key, klen) < 0)
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_net_set_meta: a net holds at most %u entries", META_MAX_ENTRIES);
    if (value == NULL && l == NULL) return BP_OK;
    if (meta_of(net) == NULL ||
        kv_put(&net->alloc, &net->meta->meta, key, klen, value, vlen) != BP_OK)
        return bp__fail(net->err, BP_ERR_NOMEM, "bp_net_set_meta: out of memory");
    return BP_OK;
}

bp_status bp_net_get_meta(const bp_net *net, const char *key, char *buf, size_t capacity,
                          size_t *needed)
{
    NET_ARG(net, "bp_net_get_meta");
    if (key == NULL || (buf == NULL && capacity > 0))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_get_meta: key or buf is NULL");
    const size_t klen = bounded_len(key, META_KEY_MAX);
    const long at = net->meta != NULL ? kv_find(&net->meta->meta, key, klen) : -1;
    if (klen > META_KEY_MAX || at < 0)
        return bp__fail(NULL, BP_ERR_INDEX, "bp_net_get_meta: no entry '%.64s'", key);
    const kv *e = &net->meta->meta.items[at];
    if (needed != NULL) *needed = e->vlen + 1;
    if (capacity < e->vlen + 1) {
        if (capacity > 0) {
            memcpy(buf, kv_value(e), capacity - 1);
            buf[capacity - 1] = '\0';
        }
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_get_meta: '%.64s' needs %zu bytes, buffer has %zu", key,
                        e->vlen + 1, capacity);
    }
    memcpy(buf, kv_value(e), e->vlen + 1);
    return BP_OK;
}

bp_status bp__meta_check_save(const bp_net *net, const char *fn)
{
    const struct bp__meta *m = net->meta;
    if (m != NULL && m->scaler[1] != NULL && m->scaler_count[1] != out_width(net))
        return bp__fail(NULL, BP_ERR_STATE,
                        "%s: the target scaler has %zu columns but the net "
                        "now has %zu outputs; set it again",
                        fn, m->scaler_count[1], out_width(net));
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Section SCAL: count, then per scaler part, width, offsets, scales
 * ----------------------------------------------------------------------------------------*/

int bp__meta_has_scalers(const bp_net *net)
{
    const struct bp__meta *m = net->meta;
    return m != NULL && (m->scaler[0] != NULL || m->scaler[1] != NULL);
}

void bp__meta_encode_scalers(bp__wr *w, const bp_net *net)
{
    const struct bp__meta *m = net->meta;
    bp__w_u32(w, (uint32_t)((m->scaler[0] != NULL) + (m->scaler[1] != NULL)));
    for (int i = 0; i < 2; i++) {
        if (m->scaler[i] == NULL) continue;
        bp__w_u32(w, (uint32_t)(i + 1));
        bp__w_u64(w, m->scaler_count[i]);
        bp__w_f32s(w, m->scaler[i], 2 * m->scaler_count[i]);
    }
}

bp_status bp__meta_decode_scalers(bp_net *net, bp__rd *r)
{
    const uint32_t count = bp__r_u32(r);
    if (r->short_read) return bp__r_truncated();
    if (count > 2)
        return bp__fail(NULL, BP_ERR_FORMAT, "%lu scalers (at most 2)", (unsigned long)count);
    for (uint32_t k = 0; k < count; k++) {
        const uint32_t part = bp__r_u32(r);
        const uint64_t width = bp__r_u64(r);
        if (r->short_read) return bp__r_truncated();
        if (!part_valid((int)(part & 0xffu)) || part > 2)
            return bp__fail(NULL, BP_ERR_FORMAT, "unknown scaler part %lu", (unsigned long)part);
        if (net->meta != NULL && net->meta->scaler[part - 1] != NULL)
            return bp__fail(NULL, BP_ERR_FORMAT, "scaler part %lu appears twice",
                            (unsigned long)part);
        BP_CHECK(bp__r_need(r, width, 8, "scaler columns"));
        float *tmp = bp__malloc(&net->alloc, 2 * (size_t)width * sizeof(float));
        if (tmp == NULL) return bp__fail(NULL, BP_ERR_NOMEM, "out of memory for a scaler");
        bp__r_f32s(r, tmp, 2 * (size_t)width);
        bp_status st = scaler_check(net, NULL, (int)part, tmp, tmp + width, (size_t)width);
        if (st == BP_OK &&
            scaler_store(net, (int)part - 1, tmp, tmp + width, (size_t)width) != BP_OK)
            st = bp__fail(NULL, BP_ERR_NOMEM, "out of memory for a scaler");
        bp__free(&net->alloc, tmp);
        if (st != BP_OK) return st;
    }
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Section META: count, then per entry key length, key, value length, value
 * ----------------------------------------------------------------------------------------*/

int bp__meta_has_entries(const bp_net *net)
{
    return net->meta != NULL && net->meta->meta.count > 0;
}

void bp__meta_encode_entries(bp__wr *w, const bp_net *net)
{
    const kv_list *l = &net->meta->meta;
    bp__w_u32(w, (uint32_t)l->count);
    for (size_t i = 0; i < l->count; i++) {
        const kv *e = &l->items[i];
        bp__w_u32(w, (uint32_t)e->klen);
        bp__w_bytes(w, e->key, e->klen);
        bp__w_u32(w, (uint32_t)e->vlen);
        bp__w_bytes(w, kv_value(e), e->vlen);
    }
}

bp_status bp__meta_decode_entries(bp_net *net, bp__rd *r)
{
    const uint32_t count = bp__r_u32(r);
    if (r->short_read) return bp__r_truncated();
    if (count > META_MAX_ENTRIES)
        return bp__fail(NULL, BP_ERR_FORMAT, "%lu entries (at most %lu)", (unsigned long)count,
                        (unsigned long)META_MAX_ENTRIES);
    BP_CHECK(bp__r_need(r, count, 9, "entries"));
    if (count > 0 && meta_of(net) == NULL) return bp__fail(NULL, BP_ERR_NOMEM, "out of memory");
    for (uint32_t k = 0; k < count; k++) {
        const uint32_t klen = bp__r_u32(r);
        const unsigned char *key = bp__r_take(r, klen);
        const uint32_t vlen = bp__r_u32(r);
        if (r->short_read) return bp__r_truncated();
        if (klen == 0 || klen > META_KEY_MAX || memchr(key, 0, klen) != NULL)
            return bp__fail(NULL, BP_ERR_FORMAT,
                            "entry %lu: key of %lu bytes is empty, too long or "
                            "holds a NUL",
                            (unsigned long)k, (unsigned long)klen);
        if (vlen > META_VALUE_MAX)
            return bp__fail(NULL, BP_ERR_FORMAT, "entry %lu: value of %llu bytes (at most %llu)",
                            (unsigned long)k, (unsigned long long)vlen,
                            (unsigned long long)META_VALUE_MAX);
        const unsigned char *value = bp__r_take(r, vlen);
        if (r->short_read) return bp__r_truncated();
        if (memchr(value, 0, vlen) != NULL)
            return bp__fail(NULL, BP_ERR_FORMAT, "entry %lu: value holds a NUL byte",
                            (unsigned long)k);
        kv_list *l = &net->meta->meta;
        if (kv_find(l, (const char *)key, klen) >= 0)
            return bp__fail(NULL, BP_ERR_FORMAT, "entry %lu: key appears twice", (unsigned long)k);
        if (kv_put(&net->alloc, l, (const char *)key, klen, vlen ? value : key, vlen) != BP_OK)
            return bp__fail(NULL, BP_ERR_NOMEM, "out of memory for entry %lu", (unsigned long)k);
    }
    return BP_OK;
}
