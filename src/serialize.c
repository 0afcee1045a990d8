/* serialize.c -- model files and training checkpoints (specified in docs/format.md), and the
 * data kept on a net for them: scalers, metadata and training-state records.
 *
 * Encoding is one function per section over a writer that either counts (p == NULL) or
 * writes into a buffer already known to be large enough: every save counts first, so the
 * two passes cannot disagree. Decoding never trusts a count: each one is checked against the
 * bytes that remain before anything is allocated or read, and every value is validated
 * through the same setters the public API uses. Integers and floats are little endian on
 * every host, written and read byte by byte. */
#include "fileio.h"
#include "util.h"
#include "rng.h"
#include "layer.h"
#include "net.h"
#include "fit.h"
#include "optimizer.h"
#include "persist.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Format constants (docs/format.md)
 * ----------------------------------------------------------------------------------------*/

static const unsigned char file_magic[8] = {0x89, 'B', 'P', 'M', '\r', '\n', 0x1a, '\n'};
#define HEADER_BYTES 24u  /* magic, version, flags, total length */
#define SECTION_BYTES 16u /* tag, flags, length */
#define CRC_BYTES 4u
#define SEC_REQUIRED 1u

#define TAG_NET "NET "
#define TAG_SCAL "SCAL"
#define TAG_META "META"
#define TAG_OPTM "OPTM"
#define TAG_TRST "TRST"
#define TAG_FIT "FIT "

#define META_MAX_ENTRIES 1024u
#define META_KEY_MAX 255u
#define META_VALUE_MAX 65535u
#define STATE_MAX_ENTRIES 65536u
#define STATE_KEY_MAX 255u
#define STATE_VALUE_MAX ((size_t)1 << 30)
#define OPT_MAX_SETTINGS 256u
#define LAYER_MIN_BYTES 24u /* kind, hyper count, parameter count, state count */

unsigned bp_format_version(void) { return BP_FORMAT_VERSION; }

/* ------------------------------------------------------------------------------------------
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib's crc32), four bits at a time
 * ----------------------------------------------------------------------------------------*/

uint32_t bp__crc32(uint32_t crc, const void *data, size_t size)
{
    static const uint32_t t[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
        0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
        0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
    };
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ t[crc & 15u];
        crc = (crc >> 4) ^ t[crc & 15u];
    }
    return ~crc;
}

/* ------------------------------------------------------------------------------------------
 * Per-net persistence data: scalers, metadata, training-state records
 * ----------------------------------------------------------------------------------------*/

/* One key/value record in one allocation: key NUL value NUL. */
typedef struct kv {
    char *key;
    size_t klen, vlen;
} kv;

typedef struct kv_list {
    kv *items;
    size_t count, cap;
} kv_list;

struct bp__persist {
    float *scaler[2];       /* part - 1: [2 x count] offsets then scales, or NULL */
    size_t scaler_count[2];
    kv_list meta;           /* values are NUL-free strings */
    kv_list state;          /* values are bytes */
};

static const char *kv_value(const kv *e) { return e->key + e->klen + 1; }

static long kv_find(const kv_list *l, const char *key, size_t klen)
{
    for (size_t i = 0; i < l->count; i++)
        if (l->items[i].klen == klen && memcmp(l->items[i].key, key, klen) == 0) return (long)i;
    return -1;
}

static void kv_free(const bp__alloc *a, kv_list *l)
{
    for (size_t i = 0; i < l->count; i++) bp__free(a, l->items[i].key);
    bp__free(a, l->items);
    memset(l, 0, sizeof *l);
}

/* Insert or replace (value != NULL) or remove (value NULL) a record. Validated by the
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

static bp_status kv_copy(const bp__alloc *a, kv_list *dst, const kv_list *src)
{
    for (size_t i = 0; i < src->count; i++) {
        const kv *e = &src->items[i];
        BP_CHECK(kv_put(a, dst, e->key, e->klen, kv_value(e), e->vlen));
    }
    return BP_OK;
}

/* The net's persistence data, created on first use; NULL when out of memory. */
static struct bp__persist *persist_of(bp_net *net)
{
    if (net->persist == NULL) net->persist = bp__calloc(&net->alloc, 1, sizeof *net->persist);
    return net->persist;
}

void bp__persist_free(bp_net *net)
{
    struct bp__persist *p = net->persist;
    if (p == NULL) return;
    for (int i = 0; i < 2; i++) bp__free(&net->alloc, p->scaler[i]);
    kv_free(&net->alloc, &p->meta);
    kv_free(&net->alloc, &p->state);
    bp__free(&net->alloc, p);
    net->persist = NULL;
}

/* Replace scaler part @p idx (0 inputs, 1 targets) by a copy; net unchanged on failure. */
static bp_status scaler_store(bp_net *net, int idx, const float *offset, const float *scale,
                              size_t count)
{
    struct bp__persist *p = persist_of(net);
    float *block = p != NULL ? bp__malloc(&net->alloc, 2 * count * sizeof(float)) : NULL;
    if (block == NULL) return BP_ERR_NOMEM;
    memcpy(block, offset, count * sizeof(float));
    memcpy(block + count, scale, count * sizeof(float));
    bp__free(&net->alloc, p->scaler[idx]);
    p->scaler[idx] = block;
    p->scaler_count[idx] = count;
    return BP_OK;
}

bp_status bp__persist_clone(bp_net *dst, const bp_net *src)
{
    const struct bp__persist *p = src->persist;
    if (p == NULL) return BP_OK;
    if (persist_of(dst) == NULL) return BP_ERR_NOMEM;
    for (int i = 0; i < 2; i++)
        if (p->scaler[i] != NULL)
            BP_CHECK(scaler_store(dst, i, p->scaler[i], p->scaler[i] + p->scaler_count[i],
                                  p->scaler_count[i]));
    BP_CHECK(kv_copy(&dst->alloc, &dst->persist->meta, &p->meta));
    return kv_copy(&dst->alloc, &dst->persist->state, &p->state);
}

/* ------------------------------------------------------------------------------------------
 * Public: scalers and metadata
 * ----------------------------------------------------------------------------------------*/

#define NET_ARG(net, fn)                                                                          \
    do {                                                                                          \
        if (!bp__net_ok(net))                                                                     \
            return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: invalid net handle", fn);              \
    } while (0)

static size_t out_width(const bp_net *net)
{
    return net->nlayers ? net->layers[net->nlayers - 1]->out : 0;
}

static int part_valid(int part) { return part == BP_SCALE_INPUTS || part == BP_SCALE_TARGETS; }

/* Validation of a scaler for @p net (shared by the setter and the loader). */
static bp_status scaler_check(const bp_net *net, char *err, int part, const float *offset,
                              const float *scale, size_t count)
{
    const size_t width = part == BP_SCALE_INPUTS ? net->inputs : out_width(net);
    if (count != width)
        return bp__fail(err, BP_ERR_SHAPE, "bp_net_set_scaler: %s scaler has %zu columns, the "
                        "net's %s width is %zu", part == BP_SCALE_INPUTS ? "input" : "target",
                        count, part == BP_SCALE_INPUTS ? "input" : "output", width);
    for (size_t c = 0; c < count; c++)
        if (!isfinite(offset[c]) || !isfinite(scale[c]) || scale[c] == 0.0f)
            return bp__fail(err, BP_ERR_NONFINITE, "bp_net_set_scaler: column %zu: offset %g, "
                            "scale %g (need finite values and a non-zero scale)", c,
                            (double)offset[c], (double)scale[c]);
    return BP_OK;
}

bp_status bp_net_set_scaler(bp_net *net, int part, const float *offset, const float *scale,
                            size_t count)
{
    NET_ARG(net, "bp_net_set_scaler");
    if (!part_valid(part))
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_set_scaler: unknown part %d",
                        part);
    const int idx = part - 1;
    if (count == 0 && offset == NULL && scale == NULL) {
        if (net->persist != NULL) {
            bp__free(&net->alloc, net->persist->scaler[idx]);
            net->persist->scaler[idx] = NULL;
            net->persist->scaler_count[idx] = 0;
        }
        return BP_OK;
    }
    if (offset == NULL || scale == NULL)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "bp_net_set_scaler: offset and scale must not be NULL");
    BP_CHECK(scaler_check(net, net->err, part, offset, scale, count));
    if (scaler_store(net, idx, offset, scale, count) != BP_OK)
        return bp__fail(net->err, BP_ERR_NOMEM, "bp_net_set_scaler: out of memory for %zu "
                        "columns", count);
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
    const size_t n = net->persist != NULL ? net->persist->scaler_count[idx] : 0;
    *count = n;
    if (n == 0) return BP_OK;
    if (capacity < n)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_get_scaler: the scaler has %zu columns, buffers hold %zu", n,
                        capacity);
    if (offset == NULL || scale == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_net_get_scaler: offset and scale must not be NULL");
    memcpy(offset, net->persist->scaler[idx], n * sizeof(float));
    memcpy(scale, net->persist->scaler[idx] + n, n * sizeof(float));
    return BP_OK;
}

/* Length of a NUL-terminated string, or max + 1 if it is longer than max. */
static size_t bounded_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n <= max && s[n] != '\0') n++;
    return n;
}

bp_status bp_net_set_meta(bp_net *net, const char *key, const char *value)
{
    NET_ARG(net, "bp_net_set_meta");
    if (key == NULL)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_set_meta: key is NULL");
    const size_t klen = bounded_len(key, META_KEY_MAX);
    if (klen == 0 || klen > META_KEY_MAX)
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_net_set_meta: keys have 1 .. %u bytes", META_KEY_MAX);
    const size_t vlen = value != NULL ? bounded_len(value, META_VALUE_MAX) : 0;
    if (vlen > META_VALUE_MAX)
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_net_set_meta: '%s': values have at most %u bytes", key,
                        META_VALUE_MAX);
    const kv_list *l = net->persist != NULL ? &net->persist->meta : NULL;
    if (value != NULL && l != NULL && l->count >= META_MAX_ENTRIES && kv_find(l, key, klen) < 0)
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE,
                        "bp_net_set_meta: a net holds at most %u entries", META_MAX_ENTRIES);
    if (value == NULL && l == NULL) return BP_OK;
    if (persist_of(net) == NULL ||
        kv_put(&net->alloc, &net->persist->meta, key, klen, value, vlen) != BP_OK)
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
    const long at = net->persist != NULL ? kv_find(&net->persist->meta, key, klen) : -1;
    if (klen > META_KEY_MAX || at < 0)
        return bp__fail(NULL, BP_ERR_INDEX, "bp_net_get_meta: no entry '%.64s'", key);
    const kv *e = &net->persist->meta.items[at];
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

/* ------------------------------------------------------------------------------------------
 * Internal: training-state records
 * ----------------------------------------------------------------------------------------*/

bp_status bp__ckpt_state_put(bp_net *net, const char *key, const void *data, size_t len)
{
    if (!bp__net_ok(net) || key == NULL || (data == NULL && len > 0))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "training state: invalid argument");
    const size_t klen = bounded_len(key, STATE_KEY_MAX);
    if (klen == 0 || klen > STATE_KEY_MAX || len > STATE_VALUE_MAX)
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE, "training state: key of %zu bytes or "
                        "record of %zu bytes out of range", klen, len);
    const kv_list *l = net->persist != NULL ? &net->persist->state : NULL;
    if (data == NULL) {
        if (l == NULL) return BP_OK;
        return kv_put(&net->alloc, &net->persist->state, key, klen, NULL, 0);
    }
    if (l != NULL && l->count >= STATE_MAX_ENTRIES && kv_find(l, key, klen) < 0)
        return bp__fail(net->err, BP_ERR_OUT_OF_RANGE, "training state: more than %u records",
                        STATE_MAX_ENTRIES);
    /* A record of 0 bytes still needs a non-NULL value pointer for kv_put. */
    const void *v = len > 0 ? data : (const void *)key;
    if (persist_of(net) == NULL ||
        kv_put(&net->alloc, &net->persist->state, key, klen, v, len) != BP_OK)
        return bp__fail(net->err, BP_ERR_NOMEM, "training state: out of memory for '%s'", key);
    return BP_OK;
}

bp_status bp__ckpt_state_get(const bp_net *net, const char *key, const void **data,
                             size_t *len)
{
    if (!bp__net_ok(net) || key == NULL || data == NULL || len == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "training state: invalid argument");
    *data = NULL;
    *len = 0;
    const size_t klen = bounded_len(key, STATE_KEY_MAX);
    const long at = net->persist != NULL ? kv_find(&net->persist->state, key, klen) : -1;
    if (at < 0) return bp__fail(NULL, BP_ERR_INDEX, "training state: no record '%.64s'", key);
    *data = kv_value(&net->persist->state.items[at]);
    *len = net->persist->state.items[at].vlen;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Writer: counts when p is NULL, else writes (capacity was checked by counting first)
 * ----------------------------------------------------------------------------------------*/

typedef struct wr {
    unsigned char *p;
    size_t len;
} wr;

static void w_bytes(wr *w, const void *src, size_t n)
{
    if (w->p != NULL && n > 0) memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_le(unsigned char *d, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) d[i] = (unsigned char)(v >> (8 * i));
}

static void w_u32(wr *w, uint32_t v)
{
    if (w->p != NULL) put_le(w->p + w->len, v, 4);
    w->len += 4;
}

static void w_u64(wr *w, uint64_t v)
{
    if (w->p != NULL) put_le(w->p + w->len, v, 8);
    w->len += 8;
}

static void w_f64(wr *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    w_u64(w, u);
}

static void w_f32s(wr *w, const float *v, size_t n)
{
    if (w->p != NULL) {
        unsigned char *d = w->p + w->len;
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], sizeof u);
            put_le(d + 4 * i, u, 4);
        }
    }
    w->len += 4 * n;
}

/* Start a section: returns the offset of its length field, patched by sec_end. */
static size_t sec_begin(wr *w, const char *tag, uint32_t flags)
{
    w_bytes(w, tag, 4);
    w_u32(w, flags);
    const size_t at = w->len;
    w_u64(w, 0);
    return at;
}

static void sec_end(wr *w, size_t at)
{
    if (w->p != NULL) put_le(w->p + at, (uint64_t)(w->len - at - 8), 8);
}

/* Non-parameter layer state goes through a temporary float copy (vt->state_write); only
 * kinds with such state allocate, and only when writing. */
static bp_status put_net(wr *w, const bp_net *net)
{
    const size_t at = sec_begin(w, TAG_NET, SEC_REQUIRED);
    w_u64(w, net->inputs);
    w_u64(w, net->in_c); /* input shape, channels-first: in_c * in_h * in_w = inputs */
    w_u64(w, net->in_h);
    w_u64(w, net->in_w);
    for (int i = 0; i < 4; i++) w_u64(w, net->rng.s[i]);
    w_f64(w, net->huber_delta);
    w_f64(w, net->clip_norm);
    w_f64(w, net->clip_value);
    w_u32(w, (uint32_t)net->accumulate);
    w_u32(w, (uint32_t)net->nlayers);
    for (size_t i = 0; i < net->nlayers; i++) {
        const bp_layer *l = net->layers[i];
        bp__hyper hp[BP__HYPER_MAX];
        const size_t nh = l->vt->hyper(l, hp, BP__HYPER_MAX);
        w_u32(w, (uint32_t)l->vt->kind);
        w_u32(w, (uint32_t)nh);
        for (size_t k = 0; k < nh; k++) {
            w_u32(w, hp[k].key);
            w_f64(w, hp[k].value);
        }
        const size_t np = l->nweights + l->nbiases;
        w_u64(w, np);
        w_f32s(w, net->params + l->param_off, np);
        const size_t ns = l->vt->state_floats != NULL ? l->vt->state_floats(l) : 0;
        w_u64(w, ns);
        if (ns > 0 && w->p != NULL) {
            float *tmp = bp__malloc(&net->alloc, ns * sizeof(float));
            if (tmp == NULL)
                return bp__fail(NULL, BP_ERR_NOMEM, "save: layer %zu: out of memory for %zu "
                                "state floats", i, ns);
            l->vt->state_write(l, tmp);
            w_f32s(w, tmp, ns);
            bp__free(&net->alloc, tmp);
        } else {
            w->len += 4 * ns;
        }
    }
    sec_end(w, at);
    return BP_OK;
}

static void put_scalers(wr *w, const bp_net *net)
{
    const struct bp__persist *p = net->persist;
    if (p == NULL || (p->scaler[0] == NULL && p->scaler[1] == NULL)) return;
    const size_t at = sec_begin(w, TAG_SCAL, SEC_REQUIRED);
    w_u32(w, (uint32_t)((p->scaler[0] != NULL) + (p->scaler[1] != NULL)));
    for (int i = 0; i < 2; i++) {
        if (p->scaler[i] == NULL) continue;
        w_u32(w, (uint32_t)(i + 1));
        w_u64(w, p->scaler_count[i]);
        w_f32s(w, p->scaler[i], 2 * p->scaler_count[i]);
    }
    sec_end(w, at);
}

/* META (u32 lengths) and TRST (u64 value lengths) share this layout but for that width. */
static void put_kv(wr *w, const char *tag, const kv_list *l, int wide)
{
    if (l->count == 0) return;
    const size_t at = sec_begin(w, tag, wide ? SEC_REQUIRED : 0);
    w_u32(w, (uint32_t)l->count);
    for (size_t i = 0; i < l->count; i++) {
        const kv *e = &l->items[i];
        w_u32(w, (uint32_t)e->klen);
        w_bytes(w, e->key, e->klen);
        if (wide)
            w_u64(w, e->vlen);
        else
            w_u32(w, (uint32_t)e->vlen);
        w_bytes(w, kv_value(e), e->vlen);
    }
    sec_end(w, at);
}

static void put_opt(wr *w, const bp_optimizer *opt)
{
    const size_t at = sec_begin(w, TAG_OPTM, SEC_REQUIRED);
    w_u32(w, (uint32_t)opt->kind);
    w_u32(w, BP__OPT_KEY_COUNT);
    for (uint32_t k = 0; k < BP__OPT_KEY_COUNT; k++) {
        w_u32(w, BP__OPT_KEY_FIRST + k);
        w_f64(w, opt->set[k]);
    }
    w_u64(w, opt->steps);
    w_u32(w, (uint32_t)opt->bound);
    w_u32(w, (uint32_t)opt->sgd_buf_ready);
    w_f64(w, opt->nadam_mu_product);
    const size_t ns = bp__optimizer_state_floats(opt);
    w_u64(w, ns);
    w_f32s(w, opt->state, ns);
    sec_end(w, at);
}

/* FIT (checkpoints only): the training loop's settings and the counters a resumed bp_net_fit
 * continues from (bp__fit_state, fit.h), so that k epochs + checkpoint + the remaining
 * epochs equal all epochs in one go. */
static void put_fit(wr *w, const bp_net *net)
{
    const bp__fit_state *f = &net->fit;
    const size_t at = sec_begin(w, TAG_FIT, 0);
    w_u32(w, BP__FIT_KEY_COUNT);
    for (uint32_t k = 0; k < BP__FIT_KEY_COUNT; k++) {
        w_u32(w, BP__FIT_KEY_FIRST + k);
        w_f64(w, f->set[k]);
    }
    w_u64(w, f->next_epoch);
    w_f64(w, f->plateau_lr);
    w_f64(w, f->plateau_best);
    w_u64(w, f->plateau_wait);
    w_f64(w, f->stop_best);
    w_u64(w, f->stop_wait);
    w_u64(w, f->stop_best_epoch);
    sec_end(w, at);
}

/* The whole file; opt NULL for a model. */
static bp_status encode(wr *w, const bp_net *net, const bp_optimizer *opt)
{
    w_bytes(w, file_magic, sizeof file_magic);
    w_u32(w, BP_FORMAT_VERSION);
    w_u32(w, 0); /* header flags, reserved */
    w_u64(w, 0); /* total length, patched below */
    BP_CHECK(put_net(w, net));
    put_scalers(w, net);
    if (net->persist != NULL) put_kv(w, TAG_META, &net->persist->meta, 0);
    if (opt != NULL) {
        put_opt(w, opt);
        put_fit(w, net);
        if (net->persist != NULL) put_kv(w, TAG_TRST, &net->persist->state, 1);
    }
    const size_t total = w->len + CRC_BYTES;
    if (w->p != NULL) {
        put_le(w->p + 16, (uint64_t)total, 8);
        put_le(w->p + w->len, bp__crc32(0, w->p, w->len), 4);
    }
    w->len = total;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Public: saving
 * ----------------------------------------------------------------------------------------*/

/* Everything a save checks before writing a byte. Messages go to bp_last_error() only: a
 * save may run concurrently with other readers of the net. */
static bp_status save_check(const char *fn, const bp_net *net, const bp_optimizer *opt,
                            int with_opt)
{
    if (!bp__net_ok(net)) return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: invalid net handle", fn);
    if (with_opt) {
        if (!bp__optimizer_ok(opt))
            return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: invalid optimizer handle", fn);
        if (opt->bound && (opt->bound_nparams != net->nparams ||
                           opt->bound_nlayers != net->nlayers ||
                           opt->bound_hash != bp__optimizer_shape_hash(net)))
            return bp__fail(NULL, BP_ERR_STATE, "%s: the optimizer's state is for a net with %zu "
                            "parameters in %zu layers, not this one (%zu in %zu)", fn,
                            opt->bound_nparams, opt->bound_nlayers, net->nparams, net->nlayers);
    }
    const struct bp__persist *p = net->persist;
    if (p != NULL && p->scaler[1] != NULL && p->scaler_count[1] != out_width(net))
        return bp__fail(NULL, BP_ERR_STATE, "%s: the target scaler has %zu columns but the net "
                        "now has %zu outputs; set it again", fn, p->scaler_count[1],
                        out_width(net));
    return BP_OK;
}

static bp_status save_buffer(const char *fn, const bp_net *net, const bp_optimizer *opt,
                             int with_opt, void *buf, size_t capacity, size_t *size)
{
    BP_CHECK(save_check(fn, net, opt, with_opt));
    if (size == NULL || (buf == NULL && capacity > 0))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: size is NULL, or buf NULL with capacity "
                        "%zu", fn, capacity);
    wr w = {NULL, 0};
    BP_CHECK(encode(&w, net, with_opt ? opt : NULL));
    *size = w.len;
    if (w.len > capacity)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL, "%s: needs %zu bytes, buffer has %zu", fn,
                        w.len, capacity);
    wr out = {buf, 0};
    return encode(&out, net, with_opt ? opt : NULL);
}

static bp_status save_file(const char *fn, const bp_net *net, const bp_optimizer *opt,
                           int with_opt, const char *path)
{
    BP_CHECK(save_check(fn, net, opt, with_opt));
    if (path == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: path is NULL", fn);
    wr w = {NULL, 0};
    BP_CHECK(encode(&w, net, with_opt ? opt : NULL));
    unsigned char *buf = bp__malloc(&net->alloc, w.len);
    if (buf == NULL)
        return bp__fail(NULL, BP_ERR_NOMEM, "%s: %s: out of memory for %zu bytes", fn,
                        bp__path_base(path), w.len);
    wr out = {buf, 0};
    bp_status st = encode(&out, net, with_opt ? opt : NULL);
    bp__atomic_file f;
    if (st == BP_OK) st = bp__atomic_open(&f, NULL, path);
    if (st == BP_OK) {
        /* A short write leaves the stream's error flag set: the commit reports it (with the
         * system's reason, e.g. "File too large" or "No space left on device"), removes the
         * temporary file and leaves @p path as it was. */
        (void)fwrite(buf, 1, out.len, f.f);
        st = bp__atomic_commit(&f, NULL, path);
    }
    bp__free(&net->alloc, buf);
    return st;
}

bp_status bp_net_save(const bp_net *net, const char *path)
{
    return save_file("bp_net_save", net, NULL, 0, path);
}

bp_status bp_net_save_buffer(const bp_net *net, void *buf, size_t capacity, size_t *size)
{
    return save_buffer("bp_net_save_buffer", net, NULL, 0, buf, capacity, size);
}

bp_status bp_checkpoint_save(const bp_net *net, const bp_optimizer *opt, const char *path)
{
    return save_file("bp_checkpoint_save", net, opt, 1, path);
}

bp_status bp_checkpoint_save_buffer(const bp_net *net, const bp_optimizer *opt, void *buf,
                                    size_t capacity, size_t *size)
{
    return save_buffer("bp_checkpoint_save_buffer", net, opt, 1, buf, capacity, size);
}

/* ------------------------------------------------------------------------------------------
 * Reader: every read is bounds-checked; a short read sets a sticky flag and yields 0
 * ----------------------------------------------------------------------------------------*/

typedef struct rd {
    const unsigned char *p;
    size_t len, pos;
    int short_read;
} rd;

static uint64_t get_le(const unsigned char *s, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes; i-- > 0;) v = v << 8 | s[i];
    return v;
}

static size_t r_left(const rd *r) { return r->len - r->pos; }

static const unsigned char *r_take(rd *r, size_t n)
{
    if (n > r_left(r)) {
        r->short_read = 1;
        r->pos = r->len;
        return NULL;
    }
    const unsigned char *at = r->p + r->pos;
    r->pos += n;
    return at;
}

static uint32_t r_u32(rd *r)
{
    const unsigned char *b = r_take(r, 4);
    return b != NULL ? (uint32_t)get_le(b, 4) : 0;
}

static uint64_t r_u64(rd *r)
{
    const unsigned char *b = r_take(r, 8);
    return b != NULL ? get_le(b, 8) : 0;
}

static double r_f64(rd *r)
{
    const uint64_t u = r_u64(r);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* Read n floats; the caller has checked that 4 * n bytes remain. */
static void r_f32s(rd *r, float *dst, size_t n)
{
    const unsigned char *b = r_take(r, 4 * n);
    for (size_t i = 0; b != NULL && i < n; i++) {
        const uint32_t u = (uint32_t)get_le(b + 4 * i, 4);
        memcpy(&dst[i], &u, sizeof u);
    }
}

/* ------------------------------------------------------------------------------------------
 * Decoder
 * ----------------------------------------------------------------------------------------*/

typedef struct dec {
    const char *name; /* file base name or "buffer" */
    char sec[8];      /* current section, for messages */
    bp__alloc a;
    bp_net *net;
    bp_optimizer *opt;
    int with_opt;
} dec;

static bp_status dfail(const dec *d, bp_status st, const char *fmt, ...) BP__PRINTF(3, 4);
static bp_status dfail(const dec *d, bp_status st, const char *fmt, ...)
{
    char msg[BP__ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bp__fail(NULL, st, "%s: %s: %s", d->name, d->sec, msg);
}

/* Re-raise a failure of an inner call (message in bp_last_error()) with the file's name;
 * argument and range errors of setters mean the file's values are malformed. */
static bp_status dwrap(const dec *d, bp_status st)
{
    char msg[BP__ERR_CAP]; /* dfail formats into the buffer bp_last_error() returns */
    snprintf(msg, sizeof msg, "%s", bp_last_error());
    if (st == BP_ERR_INVALID_ARG || st == BP_ERR_OUT_OF_RANGE || st == BP_ERR_SHAPE ||
        st == BP_ERR_STATE || st == BP_ERR_BUFFER_TOO_SMALL || st == BP_ERR_INDEX)
        st = BP_ERR_FORMAT;
    return dfail(d, st, "%s", msg);
}

#define DCHECK(d, expr)                                                                           \
    do {                                                                                          \
        const bp_status dcheck_s_ = (expr);                                                       \
        if (dcheck_s_ != BP_OK) return dwrap((d), dcheck_s_);                                     \
    } while (0)

static bp_status truncated(const dec *d) { return dfail(d, BP_ERR_FORMAT, "truncated"); }

/* Fail unless count items of elem bytes fit in what remains of @p r. */
static bp_status need(const dec *d, const rd *r, uint64_t count, size_t elem, const char *what)
{
    if (count > r_left(r) / elem)
        return dfail(d, BP_ERR_FORMAT, "%llu %s announced, only %zu bytes remain",
                     (unsigned long long)count, what, r_left(r));
    return BP_OK;
}

static bp_status dec_layer(dec *d, rd *r, size_t i)
{
    bp_net *net = d->net;
    const uint32_t kind = r_u32(r), nh = r_u32(r);
    if (r->short_read) return truncated(d);
    if (nh > BP__HYPER_MAX)
        return dfail(d, BP_ERR_FORMAT, "layer %zu: %lu hyper-parameters (at most %u)", i,
                     (unsigned long)nh, BP__HYPER_MAX);
    BP_CHECK(need(d, r, nh, 12, "hyper-parameters"));
    bp__hyper hp[BP__HYPER_MAX];
    for (uint32_t k = 0; k < nh; k++) {
        hp[k].key = r_u32(r);
        hp[k].value = r_f64(r);
    }
    const uint64_t np = r_u64(r);
    if (r->short_read) return truncated(d);
    BP_CHECK(need(d, r, np, 4, "parameters"));
    if (kind > 0x7fffffffu)
        return dfail(d, BP_ERR_VERSION, "layer %zu: unknown layer kind %lu", i,
                     (unsigned long)kind);
    DCHECK(d, bp__layer_construct(net, (int)kind, hp, nh, (size_t)np));
    bp_layer *l = net->layers[net->nlayers - 1];
    if (l->nweights + l->nbiases != np) /* construct() promises this; never trust it */
        return dfail(d, BP_ERR_FORMAT, "layer %zu: %zu parameters, the file holds %llu", i,
                     l->nweights + l->nbiases, (unsigned long long)np);
    float *p = net->params + l->param_off;
    r_f32s(r, p, (size_t)np);
    const size_t bad = bp__first_nonfinite(p, (size_t)np);
    if (bad != (size_t)np)
        return dfail(d, BP_ERR_NONFINITE, "layer %zu: parameter %zu is %g", i, bad,
                     (double)p[bad]);
    const uint64_t ns = r_u64(r);
    if (r->short_read) return truncated(d);
    const size_t expect = l->vt->state_floats != NULL ? l->vt->state_floats(l) : 0;
    if (ns != expect)
        return dfail(d, BP_ERR_FORMAT, "layer %zu (%s): %llu state floats, expected %zu", i,
                     l->vt->name, (unsigned long long)ns, expect);
    if (ns == 0) return BP_OK;
    BP_CHECK(need(d, r, ns, 4, "state floats"));
    float *tmp = bp__malloc(&net->alloc, (size_t)ns * sizeof(float));
    if (tmp == NULL)
        return dfail(d, BP_ERR_NOMEM, "layer %zu: out of memory for %zu state floats", i,
                     (size_t)ns);
    r_f32s(r, tmp, (size_t)ns);
    const bp_status st = l->vt->state_read(l, tmp, (size_t)ns);
    bp__free(&net->alloc, tmp);
    return st == BP_OK ? BP_OK : dwrap(d, st);
}

static bp_status dec_net(dec *d, rd *r)
{
    const uint64_t inputs = r_u64(r);
    const uint64_t in_c = r_u64(r), in_h = r_u64(r), in_w = r_u64(r);
    bp__rng rng;
    for (int i = 0; i < 4; i++) rng.s[i] = r_u64(r);
    const double huber = r_f64(r), clip_norm = r_f64(r), clip_value = r_f64(r);
    const uint32_t accumulate = r_u32(r), nlayers = r_u32(r);
    if (r->short_read) return truncated(d);
    if (inputs == 0 || inputs > ((uint64_t)1 << 24))
        return dfail(d, BP_ERR_FORMAT, "input width %llu is outside 1 .. 2^24",
                     (unsigned long long)inputs);
    if (in_c == 0 || in_h == 0 || in_w == 0 || in_c > inputs || in_h > inputs ||
        in_w > inputs || in_c * in_h * in_w != inputs)
        return dfail(d, BP_ERR_FORMAT, "input shape %llu x %llu x %llu does not make %llu inputs",
                     (unsigned long long)in_c, (unsigned long long)in_h,
                     (unsigned long long)in_w, (unsigned long long)inputs);
    if ((rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3]) == 0)
        return dfail(d, BP_ERR_FORMAT, "random generator state is all zero");
    BP_CHECK(need(d, r, nlayers, LAYER_MIN_BYTES, "layers"));
    DCHECK(d, bp_net_create_image_ex(&d->net, (size_t)in_c, (size_t)in_h, (size_t)in_w, 0,
                                     d->a.alloc, d->a.free, d->a.user));
    bp_net *net = d->net;
    DCHECK(d, bp_net_set(net, BP_NET_HUBER_DELTA, huber));
    DCHECK(d, bp_net_set(net, BP_NET_CLIP_NORM, clip_norm));
    DCHECK(d, bp_net_set(net, BP_NET_CLIP_VALUE, clip_value));
    DCHECK(d, bp_net_set(net, BP_NET_ACCUMULATE_GRADS, (double)accumulate));
    for (size_t i = 0; i < nlayers; i++) BP_CHECK(dec_layer(d, r, i));
    net->rng = rng; /* after the layers, whose construction draws initial weights */
    return BP_OK;
}

static bp_status dec_scalers(dec *d, rd *r)
{
    const uint32_t count = r_u32(r);
    if (r->short_read) return truncated(d);
    if (count > 2) return dfail(d, BP_ERR_FORMAT, "%lu scalers (at most 2)", (unsigned long)count);
    for (uint32_t k = 0; k < count; k++) {
        const uint32_t part = r_u32(r);
        const uint64_t width = r_u64(r);
        if (r->short_read) return truncated(d);
        if (!part_valid((int)(part & 0xffu)) || part > 2)
            return dfail(d, BP_ERR_FORMAT, "unknown scaler part %lu", (unsigned long)part);
        if (d->net->persist != NULL && d->net->persist->scaler[part - 1] != NULL)
            return dfail(d, BP_ERR_FORMAT, "scaler part %lu appears twice", (unsigned long)part);
        BP_CHECK(need(d, r, width, 8, "scaler columns"));
        float *tmp = bp__malloc(&d->net->alloc, 2 * (size_t)width * sizeof(float));
        if (tmp == NULL) return dfail(d, BP_ERR_NOMEM, "out of memory for a scaler");
        r_f32s(r, tmp, 2 * (size_t)width);
        bp_status st = scaler_check(d->net, NULL, (int)part, tmp, tmp + width, (size_t)width);
        if (st == BP_OK && scaler_store(d->net, (int)part - 1, tmp, tmp + width,
                                        (size_t)width) != BP_OK)
            st = bp__fail(NULL, BP_ERR_NOMEM, "out of memory for a scaler");
        bp__free(&d->net->alloc, tmp);
        if (st != BP_OK) return dwrap(d, st);
    }
    return BP_OK;
}

/* META (u32 value lengths, NUL-free values) and TRST (u64 value lengths, bytes). */
static bp_status dec_kv(dec *d, rd *r, int wide)
{
    const uint32_t max_entries = wide ? STATE_MAX_ENTRIES : META_MAX_ENTRIES;
    const size_t key_max = wide ? STATE_KEY_MAX : META_KEY_MAX;
    const uint64_t value_max = wide ? STATE_VALUE_MAX : META_VALUE_MAX;
    const uint32_t count = r_u32(r);
    if (r->short_read) return truncated(d);
    if (count > max_entries)
        return dfail(d, BP_ERR_FORMAT, "%lu entries (at most %lu)", (unsigned long)count,
                     (unsigned long)max_entries);
    BP_CHECK(need(d, r, count, wide ? 13 : 9, "entries"));
    if (count > 0 && persist_of(d->net) == NULL)
        return dfail(d, BP_ERR_NOMEM, "out of memory");
    for (uint32_t k = 0; k < count; k++) {
        const uint32_t klen = r_u32(r);
        const unsigned char *key = r_take(r, klen);
        const uint64_t vlen = wide ? r_u64(r) : r_u32(r);
        if (r->short_read) return truncated(d);
        if (klen == 0 || klen > key_max || memchr(key, 0, klen) != NULL)
            return dfail(d, BP_ERR_FORMAT, "entry %lu: key of %lu bytes is empty, too long or "
                         "holds a NUL", (unsigned long)k, (unsigned long)klen);
        if (vlen > value_max)
            return dfail(d, BP_ERR_FORMAT, "entry %lu: value of %llu bytes (at most %llu)",
                         (unsigned long)k, (unsigned long long)vlen,
                         (unsigned long long)value_max);
        const unsigned char *value = r_take(r, (size_t)vlen);
        if (r->short_read) return truncated(d);
        if (!wide && memchr(value, 0, (size_t)vlen) != NULL)
            return dfail(d, BP_ERR_FORMAT, "entry %lu: value holds a NUL byte", (unsigned long)k);
        kv_list *l = wide ? &d->net->persist->state : &d->net->persist->meta;
        if (kv_find(l, (const char *)key, klen) >= 0)
            return dfail(d, BP_ERR_FORMAT, "entry %lu: key appears twice", (unsigned long)k);
        if (kv_put(&d->net->alloc, l, (const char *)key, klen, vlen ? value : key,
                   (size_t)vlen) != BP_OK)
            return dfail(d, BP_ERR_NOMEM, "out of memory for entry %lu", (unsigned long)k);
    }
    return BP_OK;
}

/* State slots that hold sums of squares, maxima of magnitudes or step sizes: never
 * negative. Bit s stands for slot s (see the slot list in optimizer.c). */
static unsigned nonneg_slots(int kind)
{
    switch (kind) {
    case BP_OPTIMIZER_ADAGRAD: return 1u;   /* sum */
    case BP_OPTIMIZER_RMSPROP: return 1u;   /* sq */
    case BP_OPTIMIZER_ADAM:
    case BP_OPTIMIZER_ADAMW: return 6u;     /* v, vmax */
    case BP_OPTIMIZER_ADAMAX: return 2u;    /* u */
    case BP_OPTIMIZER_NADAM: return 2u;     /* v */
    case BP_OPTIMIZER_IRPROP_MINUS: return 2u; /* delta */
    default: return 0u;
    }
}

static bp_status dec_opt(dec *d, rd *r)
{
    const uint32_t kind = r_u32(r), nset = r_u32(r);
    if (r->short_read) return truncated(d);
    if (nset > OPT_MAX_SETTINGS)
        return dfail(d, BP_ERR_FORMAT, "%lu settings (at most %u)", (unsigned long)nset,
                     OPT_MAX_SETTINGS);
    BP_CHECK(need(d, r, nset, 12, "settings"));
    if (kind == 0 || kind > BP_OPTIMIZER_IRPROP_MINUS)
        return dfail(d, BP_ERR_VERSION, "unknown optimizer kind %lu (written by a newer "
                     "library?)", (unsigned long)kind);
    DCHECK(d, bp__optimizer_create_with(&d->opt, (int)kind, &d->a));
    bp_optimizer *opt = d->opt;
    for (uint32_t k = 0; k < nset; k++) {
        const uint32_t key = r_u32(r);
        const double value = r_f64(r);
        if (key < BP__OPT_KEY_FIRST || key >= BP__OPT_KEY_FIRST + BP__OPT_KEY_COUNT)
            return dfail(d, BP_ERR_VERSION, "unknown optimizer setting %lu (written by a newer "
                         "library?)", (unsigned long)key);
        DCHECK(d, bp_optimizer_set(opt, (int)key, value));
    }
    const uint64_t steps = r_u64(r);
    const uint32_t bound = r_u32(r), ready = r_u32(r);
    const double mu = r_f64(r);
    const uint64_t ns = r_u64(r);
    if (r->short_read) return truncated(d);
    if (bound > 1 || ready > 1 || !(mu > 0.0 && mu <= 1.0))
        return dfail(d, BP_ERR_FORMAT, "bound %lu, momentum flag %lu or NAdam product %g out of "
                     "range", (unsigned long)bound, (unsigned long)ready, mu);
    if (!bound) {
        if (ns != 0 || steps != 0 || ready)
            return dfail(d, BP_ERR_FORMAT, "an unbound optimizer with %llu steps and %llu state "
                         "floats", (unsigned long long)steps, (unsigned long long)ns);
        return BP_OK;
    }
    if (d->net->nparams == 0)
        return dfail(d, BP_ERR_FORMAT, "optimizer state for a net without parameters");
    const size_t slots = bp__optimizer_state_slots(opt->kind), np = d->net->nparams;
    if (ns != (uint64_t)slots * np)
        return dfail(d, BP_ERR_FORMAT, "%llu state floats, expected %zu x %zu",
                     (unsigned long long)ns, slots, np);
    BP_CHECK(need(d, r, ns, 4, "state floats"));
    DCHECK(d, bp__optimizer_bind(opt, d->net));
    r_f32s(r, opt->state, (size_t)ns);
    const unsigned nonneg = nonneg_slots(opt->kind);
    for (size_t i = 0; i < (size_t)ns; i++) {
        const float v = opt->state[i];
        const size_t slot = i / np;
        if (!isfinite(v) || (v < 0.0f && (nonneg >> slot & 1u)))
            return dfail(d, BP_ERR_FORMAT, "state slot %zu, parameter %zu is %g", slot, i % np,
                         (double)v);
    }
    opt->steps = steps;
    opt->sgd_buf_ready = (int)ready;
    opt->nadam_mu_product = mu;
    return BP_OK;
}

static bp_status dec_fit(dec *d, rd *r)
{
    const uint32_t nset = r_u32(r);
    if (r->short_read) return truncated(d);
    if (nset > 1000) return dfail(d, BP_ERR_FORMAT, "%lu settings", (unsigned long)nset);
    BP_CHECK(need(d, r, nset, 12, "settings"));
    bp__fit_state *f = &d->net->fit;
    for (uint32_t k = 0; k < nset; k++) {
        const uint32_t key = r_u32(r);
        const double value = r_f64(r);
        if (!bp__fit_is_key((int)key)) continue; /* a newer library's setting: not ours */
        DCHECK(d, bp__fit_set(d->net, (int)key, value));
    }
    const uint64_t next = r_u64(r);
    const double plr = r_f64(r), pbest = r_f64(r);
    const uint64_t pwait = r_u64(r);
    const double sbest = r_f64(r);
    const uint64_t swait = r_u64(r), sepoch = r_u64(r);
    if (r->short_read) return truncated(d);
    if (next > 1000000000u || pwait > next || swait > next || sepoch > next ||
        !(plr >= 0.0 && plr <= 1e3) || isnan(pbest) || isnan(sbest))
        return dfail(d, BP_ERR_FORMAT, "training-loop counters out of range");
    f->next_epoch = (size_t)next;
    f->plateau_lr = plr;
    f->plateau_best = pbest;
    f->plateau_wait = (size_t)pwait;
    f->stop_best = sbest;
    f->stop_wait = (size_t)swait;
    f->stop_best_epoch = (size_t)sepoch;
    /* The next bp_net_fit continues after the last completed epoch. */
    DCHECK(d, bp__fit_set(d->net, BP_FIT_INITIAL_EPOCH, (double)next));
    return BP_OK;
}

enum { SEC_NET = 1, SEC_SCAL = 2, SEC_META = 4, SEC_OPTM = 8, SEC_TRST = 16, SEC_FIT = 32 };

static int section_id(const unsigned char *tag)
{
    static const struct {
        const char *tag;
        int id;
    } known[] = {{TAG_NET, SEC_NET},   {TAG_SCAL, SEC_SCAL}, {TAG_META, SEC_META},
                 {TAG_OPTM, SEC_OPTM}, {TAG_TRST, SEC_TRST}, {TAG_FIT, SEC_FIT}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (memcmp(tag, known[i].tag, 4) == 0) return known[i].id;
    return 0;
}

static bp_status dec_sections(dec *d, rd *r)
{
    int seen = 0;
    while (r_left(r) > 0) {
        const size_t offset = HEADER_BYTES + r->pos;
        const unsigned char *tag = r_take(r, 4);
        const uint32_t flags = r_u32(r);
        const uint64_t len = r_u64(r);
        snprintf(d->sec, sizeof d->sec, "offset");
        if (r->short_read)
            return dfail(d, BP_ERR_FORMAT, "%zu: truncated section header", offset);
        for (int i = 0; i < 4; i++)
            d->sec[i] = tag[i] >= 0x20 && tag[i] < 0x7f ? (char)tag[i] : '?';
        d->sec[4] = '\0';
        if (d->sec[3] == ' ') d->sec[3] = '\0'; /* "NET " */
        if (len > r_left(r))
            return dfail(d, BP_ERR_FORMAT, "section of %llu bytes at offset %zu, only %zu remain",
                         (unsigned long long)len, offset, r_left(r));
        rd sub = {r->p + r->pos, (size_t)len, 0, 0};
        r->pos += (size_t)len;
        const int id = section_id(tag);
        if (id == 0) {
            if (flags & SEC_REQUIRED)
                return dfail(d, BP_ERR_VERSION, "unknown required section (written by a newer "
                             "library?)");
            continue; /* optional: skipped by design */
        }
        if (seen & id) return dfail(d, BP_ERR_FORMAT, "section appears twice");
        if (id != SEC_NET && !(seen & SEC_NET))
            return dfail(d, BP_ERR_FORMAT, "section before the NET section");
        seen |= id;
        switch (id) {
        case SEC_NET: BP_CHECK(dec_net(d, &sub)); break;
        case SEC_SCAL: BP_CHECK(dec_scalers(d, &sub)); break;
        case SEC_META: BP_CHECK(dec_kv(d, &sub, 0)); break;
        case SEC_TRST: BP_CHECK(dec_kv(d, &sub, 1)); break;
        case SEC_FIT: /* model loaders ignore the training state */
            if (!d->with_opt) sub.pos = sub.len;
            else BP_CHECK(dec_fit(d, &sub));
            break;
        default: /* SEC_OPTM: model loaders ignore the optimizer */
            if (!d->with_opt) sub.pos = sub.len;
            else BP_CHECK(dec_opt(d, &sub));
            break;
        }
        if (sub.pos != sub.len)
            return dfail(d, BP_ERR_FORMAT, "%zu bytes after the section's contents",
                         sub.len - sub.pos);
    }
    snprintf(d->sec, sizeof d->sec, "file");
    if (!(seen & SEC_NET)) return dfail(d, BP_ERR_FORMAT, "no NET section");
    if (d->with_opt && !(seen & SEC_OPTM))
        return dfail(d, BP_ERR_FORMAT, "no optimizer state: a model file, not a checkpoint");
    return BP_OK;
}

/* Decode a whole file image; *opt_out is filled only when opt_out is not NULL. */
static bp_status decode(const unsigned char *b, size_t size, const char *name,
                        const bp__alloc *a, bp_net **net_out, bp_optimizer **opt_out)
{
    dec d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.a = *a;
    d.with_opt = opt_out != NULL;
    snprintf(d.sec, sizeof d.sec, "header");
    if (size < sizeof file_magic || memcmp(b, file_magic, sizeof file_magic) != 0)
        return dfail(&d, BP_ERR_FORMAT, "not a backprop model file (bad magic number)");
    if (size < HEADER_BYTES + CRC_BYTES)
        return dfail(&d, BP_ERR_FORMAT, "truncated: %zu bytes", size);
    const uint32_t version = (uint32_t)get_le(b + 8, 4);
    if (version == 0) return dfail(&d, BP_ERR_FORMAT, "format version 0");
    if (version > BP_FORMAT_VERSION)
        return dfail(&d, BP_ERR_VERSION, "format version %lu is newer than this library reads "
                     "(%d); upgrade libbackprop", (unsigned long)version, BP_FORMAT_VERSION);
    const uint64_t total = get_le(b + 16, 8);
    if (total != size)
        return dfail(&d, BP_ERR_FORMAT, "the header announces %llu bytes, got %zu (%s)",
                     (unsigned long long)total, size,
                     total > size ? "truncated" : "trailing data");
    const uint32_t crc = (uint32_t)get_le(b + size - CRC_BYTES, 4);
    const uint32_t actual = bp__crc32(0, b, size - CRC_BYTES);
    if (crc != actual)
        return dfail(&d, BP_ERR_CHECKSUM, "CRC-32 is %08lx, the file says %08lx (corrupted)",
                     (unsigned long)actual, (unsigned long)crc);
    rd r = {b + HEADER_BYTES, size - HEADER_BYTES - CRC_BYTES, 0, 0};
    const bp_status st = dec_sections(&d, &r);
    if (st != BP_OK) {
        bp_optimizer_free(d.opt);
        bp_net_free(d.net);
        return st;
    }
    *net_out = d.net;
    if (opt_out != NULL) *opt_out = d.opt;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Public: loading
 * ----------------------------------------------------------------------------------------*/

static bp_status load_args(const char *fn, bp_net **net_out, bp_optimizer **opt_out,
                           int with_opt, const void *src, bp_alloc_fn alloc_fn,
                           bp_free_fn free_fn, void *user, bp__alloc *a)
{
    if (net_out != NULL) *net_out = NULL;
    if (opt_out != NULL) *opt_out = NULL;
    if (net_out == NULL || (with_opt && opt_out == NULL) || src == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: an output, the path or the buffer is "
                        "NULL", fn);
    if ((alloc_fn == NULL) != (free_fn == NULL))
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "%s: alloc_fn and free_fn must both be set or both NULL", fn);
    *a = bp__default_alloc;
    if (alloc_fn != NULL) {
        a->alloc = alloc_fn;
        a->free = free_fn;
        a->user = user;
    }
    return BP_OK;
}

static bp_status load_path(const char *fn, bp_net **net_out, bp_optimizer **opt_out,
                           int with_opt, const char *path, bp_alloc_fn alloc_fn,
                           bp_free_fn free_fn, void *user)
{
    bp__alloc a;
    BP_CHECK(load_args(fn, net_out, opt_out, with_opt, path, alloc_fn, free_fn, user, &a));
    unsigned char *data;
    size_t size;
    BP_CHECK(bp__read_file(&a, NULL, path, &data, &size));
    const bp_status st =
        decode(data, size, bp__path_base(path), &a, net_out, with_opt ? opt_out : NULL);
    bp__free(&a, data);
    return st;
}

static bp_status load_mem(const char *fn, bp_net **net_out, bp_optimizer **opt_out,
                          int with_opt, const void *buf, size_t size, bp_alloc_fn alloc_fn,
                          bp_free_fn free_fn, void *user)
{
    bp__alloc a;
    BP_CHECK(load_args(fn, net_out, opt_out, with_opt, buf, alloc_fn, free_fn, user, &a));
    return decode(buf, size, "buffer", &a, net_out, with_opt ? opt_out : NULL);
}

bp_status bp_net_load(bp_net **out, const char *path)
{
    return load_path("bp_net_load", out, NULL, 0, path, NULL, NULL, NULL);
}

bp_status bp_net_load_ex(bp_net **out, const char *path, bp_alloc_fn alloc_fn,
                         bp_free_fn free_fn, void *user)
{
    return load_path("bp_net_load_ex", out, NULL, 0, path, alloc_fn, free_fn, user);
}

bp_status bp_net_load_buffer(bp_net **out, const void *buf, size_t size)
{
    return load_mem("bp_net_load_buffer", out, NULL, 0, buf, size, NULL, NULL, NULL);
}

bp_status bp_net_load_buffer_ex(bp_net **out, const void *buf, size_t size,
                                bp_alloc_fn alloc_fn, bp_free_fn free_fn, void *user)
{
    return load_mem("bp_net_load_buffer_ex", out, NULL, 0, buf, size, alloc_fn, free_fn, user);
}

bp_status bp_checkpoint_load(bp_net **net_out, bp_optimizer **opt_out, const char *path)
{
    return load_path("bp_checkpoint_load", net_out, opt_out, 1, path, NULL, NULL, NULL);
}

bp_status bp_checkpoint_load_ex(bp_net **net_out, bp_optimizer **opt_out, const char *path,
                                bp_alloc_fn alloc_fn, bp_free_fn free_fn, void *user)
{
    return load_path("bp_checkpoint_load_ex", net_out, opt_out, 1, path, alloc_fn, free_fn,
                     user);
}

bp_status bp_checkpoint_load_buffer(bp_net **net_out, bp_optimizer **opt_out, const void *buf,
                                    size_t size)
{
    return load_mem("bp_checkpoint_load_buffer", net_out, opt_out, 1, buf, size, NULL, NULL,
                    NULL);
}

bp_status bp_checkpoint_load_buffer_ex(bp_net **net_out, bp_optimizer **opt_out,
                                       const void *buf, size_t size, bp_alloc_fn alloc_fn,
                                       bp_free_fn free_fn, void *user)
{
    return load_mem("bp_checkpoint_load_buffer_ex", net_out, opt_out, 1, buf, size, alloc_fn,
                    free_fn, user);
}
