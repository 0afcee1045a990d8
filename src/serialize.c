/* serialize.c -- model files and training checkpoints (specified in docs/format.md): the
 * header, the framing of the sections, the checksum, and the NET section (architecture,
 * settings, generator state and each layer through its vtable's persistence hooks).
 *
 * Every other section's payload belongs to the module whose data it holds: scalers and
 * metadata to meta.c, the optimizer to optimizer.c, the training loop to train.c. This file
 * only frames them (tag, flags, length) and adds the file name and section to their messages.
 *
 * Encoding runs twice over a writer that first counts (codec.h) and then writes into a buffer
 * of the counted size, so the two passes cannot disagree. Decoding never trusts a count: each
 * one is checked against the bytes that remain before anything is allocated or read, and
 * every value is validated through the same setters the public API uses. */
#include "fileio.h"
#include "util.h"
#include "codec.h"
#include "rng.h"
#include "layer.h"
#include "net.h"
#include "fit.h"
#include "optimizer.h"
#include "meta.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Format constants (docs/format.md)
 * ----------------------------------------------------------------------------------------*/

static const unsigned char file_magic[8] = {0x89, 'B', 'P', 'M', '\r', '\n', 0x1a, '\n'};
#define HEADER_BYTES  24u /* magic, version, flags, total length */
#define SECTION_BYTES 16u /* tag, flags, length */
#define CRC_BYTES     4u
#define SEC_REQUIRED  1u

#define LAYER_MIN_BYTES 24u /* kind, hyper count, parameter count, state count */

unsigned bp_format_version(void)
{
    return BP_FORMAT_VERSION;
}

/* The version a file of @p net is written in: the lowest that describes it, so that readers
 * of version 1 keep reading every net version 1 can hold. Version 2 adds the input steps of
 * sequence nets to NET. */
static uint32_t file_version(const bp_net *net)
{
    return net->in_steps ? 2u : 1u;
}

/* ------------------------------------------------------------------------------------------
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib's crc32), four bits at a time
 * ----------------------------------------------------------------------------------------*/

/* ------------------------------------------------------------------------------------------
 * Decoder context and its messages: "<file>: <section>: <what>"
 * ----------------------------------------------------------------------------------------*/

typedef struct dec {
    const char *name; /* file base name or "buffer" */
    char sec[8];      /* current section, for messages */
    bp__alloc a;
    bp_net *net;
    bp_optimizer *opt;
    int with_opt;
    uint32_t version; /* the file's format version */
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

/* Re-raise a failure of an inner call or a section codec (message in bp_last_error()) with
 * the file's name and section; argument and range errors of setters mean the file's values
 * are malformed. */
static bp_status dwrap(const dec *d, bp_status st)
{
    char msg[BP__ERR_CAP]; /* dfail formats into the buffer bp_last_error() returns */
    snprintf(msg, sizeof msg, "%s", bp_last_error());
    if (st == BP_ERR_INVALID_ARG || st == BP_ERR_OUT_OF_RANGE || st == BP_ERR_SHAPE ||
        st == BP_ERR_STATE || st == BP_ERR_BUFFER_TOO_SMALL || st == BP_ERR_INDEX)
        st = BP_ERR_FORMAT;
    return dfail(d, st, "%s", msg);
}

#define DCHECK(d, expr)                                                                            \
    do {                                                                                           \
        const bp_status dcheck_s_ = (expr);                                                        \
        if (dcheck_s_ != BP_OK) return dwrap((d), dcheck_s_);                                      \
    } while (0)

static bp_status truncated(const dec *d)
{
    return dfail(d, BP_ERR_FORMAT, "truncated");
}

/* Fail unless count items of elem bytes fit in what remains of @p r. */
static bp_status need(const dec *d, const bp__rd *r, uint64_t count, size_t elem, const char *what)
{
    DCHECK(d, bp__r_need(r, count, elem, what));
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Section NET: the network
 * ----------------------------------------------------------------------------------------*/

/* Non-parameter layer state goes through a temporary float copy (vt->state_write); only
 * kinds with such state allocate, and only when writing. */
static bp_status put_net(bp__wr *w, const bp_net *net, const bp_optimizer *opt)
{
    (void)opt;
    bp__w_u64(w, net->inputs);
    bp__w_u64(w, net->in_c); /* input shape, channels-first: in_c * in_h * in_w = inputs */
    bp__w_u64(w, net->in_h);
    bp__w_u64(w, net->in_w);
    if (file_version(net) >= 2) bp__w_u64(w, net->in_steps); /* sequence steps T, or 0 */
    for (int i = 0; i < 4; i++)
        bp__w_u64(w, net->rng.s[i]);
    bp__w_f64(w, net->huber_delta);
    bp__w_f64(w, net->clip_norm);
    bp__w_f64(w, net->clip_value);
    bp__w_u32(w, (uint32_t)net->accumulate);
    bp__w_u32(w, (uint32_t)net->nlayers);
    for (size_t i = 0; i < net->nlayers; i++) {
        const bp_layer *l = net->layers[i];
        bp__hyper hp[BP__HYPER_MAX];
        const size_t nh = l->vt->hyper(l, hp, BP__HYPER_MAX);
        bp__w_u32(w, (uint32_t)l->vt->kind);
        bp__w_u32(w, (uint32_t)nh);
        for (size_t k = 0; k < nh; k++) {
            bp__w_u32(w, hp[k].key);
            bp__w_f64(w, hp[k].value);
        }
        const size_t np = l->nweights + l->nbiases;
        bp__w_u64(w, np);
        bp__w_f32s(w, net->params + l->param_off, np);
        const size_t ns = l->vt->state_floats != NULL ? l->vt->state_floats(l) : 0;
        bp__w_u64(w, ns);
        if (ns > 0 && w->p != NULL) {
            float *tmp = bp__malloc(&net->alloc, ns * sizeof(float));
            if (tmp == NULL)
                return bp__fail(NULL, BP_ERR_NOMEM,
                                "save: layer %zu: out of memory for %zu "
                                "state floats",
                                i, ns);
            l->vt->state_write(l, tmp);
            bp__w_f32s(w, tmp, ns);
            bp__free(&net->alloc, tmp);
        } else {
            w->len += 4 * ns;
        }
    }
    return BP_OK;
}

static bp_status dec_layer(dec *d, bp__rd *r, size_t i)
{
    bp_net *net = d->net;
    const uint32_t kind = bp__r_u32(r), nh = bp__r_u32(r);
    if (r->short_read) return truncated(d);
    if (nh > BP__HYPER_MAX)
        return dfail(d, BP_ERR_FORMAT, "layer %zu: %lu hyper-parameters (at most %u)", i,
                     (unsigned long)nh, BP__HYPER_MAX);
    BP_CHECK(need(d, r, nh, 12, "hyper-parameters"));
    bp__hyper hp[BP__HYPER_MAX];
    for (uint32_t k = 0; k < nh; k++) {
        hp[k].key = bp__r_u32(r);
        hp[k].value = bp__r_f64(r);
    }
    const uint64_t np = bp__r_u64(r);
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
    bp__r_f32s(r, p, (size_t)np);
    const size_t bad = bp__first_nonfinite(p, (size_t)np);
    if (bad != (size_t)np)
        return dfail(d, BP_ERR_NONFINITE, "layer %zu: parameter %zu is %g", i, bad, (double)p[bad]);
    const uint64_t ns = bp__r_u64(r);
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
    bp__r_f32s(r, tmp, (size_t)ns);
    const bp_status st = l->vt->state_read(l, tmp, (size_t)ns);
    bp__free(&net->alloc, tmp);
    return st == BP_OK ? BP_OK : dwrap(d, st);
}

static bp_status dec_net(dec *d, bp__rd *r)
{
    const uint64_t inputs = bp__r_u64(r);
    const uint64_t in_c = bp__r_u64(r), in_h = bp__r_u64(r), in_w = bp__r_u64(r);
    const uint64_t steps = d->version >= 2 ? bp__r_u64(r) : 0;
    bp__rng rng;
    for (int i = 0; i < 4; i++)
        rng.s[i] = bp__r_u64(r);
    const double huber = bp__r_f64(r), clip_norm = bp__r_f64(r), clip_value = bp__r_f64(r);
    const uint32_t accumulate = bp__r_u32(r), nlayers = bp__r_u32(r);
    if (r->short_read) return truncated(d);
    if (inputs == 0 || inputs > ((uint64_t)1 << 24))
        return dfail(d, BP_ERR_FORMAT, "input width %llu is outside 1 .. 2^24",
                     (unsigned long long)inputs);
    if (in_c == 0 || in_h == 0 || in_w == 0 || in_c > inputs || in_h > inputs || in_w > inputs ||
        in_c * in_h * in_w != inputs)
        return dfail(d, BP_ERR_FORMAT, "input shape %llu x %llu x %llu does not make %llu inputs",
                     (unsigned long long)in_c, (unsigned long long)in_h, (unsigned long long)in_w,
                     (unsigned long long)inputs);
    if (steps != 0 && (in_c != 1 || in_h != steps))
        return dfail(d, BP_ERR_FORMAT,
                     "%llu input steps do not match the input shape %llu x %llu x %llu "
                     "(1 x steps x features)",
                     (unsigned long long)steps, (unsigned long long)in_c, (unsigned long long)in_h,
                     (unsigned long long)in_w);
    if ((rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3]) == 0)
        return dfail(d, BP_ERR_FORMAT, "random generator state is all zero");
    BP_CHECK(need(d, r, nlayers, LAYER_MIN_BYTES, "layers"));
    if (steps != 0)
        DCHECK(d, bp_net_create_sequence_ex(&d->net, (size_t)in_h, (size_t)in_w, 0, d->a.alloc,
                                            d->a.free, d->a.user));
    else
        DCHECK(d, bp_net_create_image_ex(&d->net, (size_t)in_c, (size_t)in_h, (size_t)in_w, 0,
                                         d->a.alloc, d->a.free, d->a.user));
    bp_net *net = d->net;
    DCHECK(d, bp_net_set(net, BP_NET_HUBER_DELTA, huber));
    DCHECK(d, bp_net_set(net, BP_NET_CLIP_NORM, clip_norm));
    DCHECK(d, bp_net_set(net, BP_NET_CLIP_VALUE, clip_value));
    DCHECK(d, bp_net_set(net, BP_NET_ACCUMULATE_GRADS, (double)accumulate));
    for (size_t i = 0; i < nlayers; i++)
        BP_CHECK(dec_layer(d, r, i));
    net->rng = rng; /* after the layers, whose construction draws initial weights */
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * The sections: NET here, every other one encoded and decoded by the module that owns it
 * ----------------------------------------------------------------------------------------*/

static bp_status put_scal(bp__wr *w, const bp_net *net, const bp_optimizer *opt)
{
    (void)opt;
    bp__meta_encode_scalers(w, net);
    return BP_OK;
}

static bp_status get_scal(dec *d, bp__rd *r)
{
    DCHECK(d, bp__meta_decode_scalers(d->net, r));
    return BP_OK;
}

static bp_status put_meta(bp__wr *w, const bp_net *net, const bp_optimizer *opt)
{
    (void)opt;
    bp__meta_encode_entries(w, net);
    return BP_OK;
}

static bp_status get_meta(dec *d, bp__rd *r)
{
    DCHECK(d, bp__meta_decode_entries(d->net, r));
    return BP_OK;
}

static bp_status put_optm(bp__wr *w, const bp_net *net, const bp_optimizer *opt)
{
    (void)net;
    bp__optimizer_encode(w, opt);
    return BP_OK;
}

static bp_status get_optm(dec *d, bp__rd *r)
{
    DCHECK(d, bp__optimizer_decode(&d->opt, &d->a, d->net, r));
    return BP_OK;
}

static bp_status put_fit(bp__wr *w, const bp_net *net, const bp_optimizer *opt)
{
    (void)opt;
    bp__fit_encode(w, net);
    return BP_OK;
}

static bp_status get_fit(dec *d, bp__rd *r)
{
    DCHECK(d, bp__fit_decode(d->net, r));
    return BP_OK;
}

typedef struct section {
    char tag[5];
    uint32_t flags;                    /* SEC_REQUIRED or 0 */
    int checkpoint;                    /* checkpoints only: skipped by model loaders */
    int (*present)(const bp_net *net); /* is it written? NULL: always */
    bp_status (*put)(bp__wr *w, const bp_net *net, const bp_optimizer *opt);
    bp_status (*get)(dec *d, bp__rd *r);
} section;

/* In the order writers emit them; NET first (docs/format.md, "Sections"). */
static const section sections[] = {
    {"NET ", SEC_REQUIRED, 0, NULL, put_net, dec_net},
    {"SCAL", SEC_REQUIRED, 0, bp__meta_has_scalers, put_scal, get_scal},
    {"META", 0, 0, bp__meta_has_entries, put_meta, get_meta},
    {"OPTM", SEC_REQUIRED, 1, NULL, put_optm, get_optm},
    {"FIT ", 0, 1, NULL, put_fit, get_fit},
};
#define SEC_COUNT (sizeof sections / sizeof sections[0])
#define SEC_NET   0u /* index of the NET section */
#define SEC_OPTM  3u /* index of the optimizer section, which makes a checkpoint */

/* ------------------------------------------------------------------------------------------
 * Writer
 * ----------------------------------------------------------------------------------------*/

/* Start a section: returns the offset of its length field, patched by sec_end. */
static size_t sec_begin(bp__wr *w, const char *tag, uint32_t flags)
{
    bp__w_bytes(w, tag, 4);
    bp__w_u32(w, flags);
    const size_t at = w->len;
    bp__w_u64(w, 0);
    return at;
}

static void sec_end(bp__wr *w, size_t at)
{
    if (w->p != NULL) bp__put_le(w->p + at, (uint64_t)(w->len - at - 8), 8);
}

/* The whole file; opt NULL for a model. */
static bp_status encode(bp__wr *w, const bp_net *net, const bp_optimizer *opt)
{
    bp__w_bytes(w, file_magic, sizeof file_magic);
    bp__w_u32(w, file_version(net));
    bp__w_u32(w, 0); /* header flags, reserved */
    bp__w_u64(w, 0); /* total length, patched below */
    for (size_t i = 0; i < SEC_COUNT; i++) {
        const section *s = &sections[i];
        if ((s->checkpoint && opt == NULL) || (s->present != NULL && !s->present(net))) continue;
        const size_t at = sec_begin(w, s->tag, s->flags);
        BP_CHECK(s->put(w, net, opt));
        sec_end(w, at);
    }
    const size_t total = w->len + CRC_BYTES;
    if (w->p != NULL) {
        bp__put_le(w->p + 16, (uint64_t)total, 8);
        bp__put_le(w->p + w->len, bp__crc32(0, w->p, w->len), 4);
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
    BP__NET_CHECK(net, fn);
    /* A net the loader would refuse is not written: a save over a good model would destroy
     * it (parameters are the state a step can make non-finite; running statistics are
     * verified by every step before they are kept). */
    const size_t bad = bp__first_nonfinite(net->params, net->nparams);
    if (bad != net->nparams) {
        size_t li = 0;
        while (li + 1 < net->nlayers && net->layers[li + 1]->param_off <= bad)
            li++;
        return bp__fail(NULL, BP_ERR_NONFINITE,
                        "%s: layer %zu's parameter %zu is %g: a file holding it could not be "
                        "loaded; nothing written",
                        fn, li, bad - net->layers[li]->param_off, (double)net->params[bad]);
    }
    if (with_opt) BP_CHECK(bp__optimizer_check_save(opt, net, fn));
    return bp__meta_check_save(net, fn);
}

static bp_status save_buffer(const char *fn, const bp_net *net, const bp_optimizer *opt,
                             int with_opt, void *buf, size_t capacity, size_t *size)
{
    BP_CHECK(save_check(fn, net, opt, with_opt));
    if (size == NULL || (buf == NULL && capacity > 0))
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "%s: size is NULL, or buf NULL with capacity "
                        "%zu",
                        fn, capacity);
    bp__wr w = {NULL, 0};
    BP_CHECK(encode(&w, net, with_opt ? opt : NULL));
    *size = w.len;
    if (w.len > capacity)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL, "%s: needs %zu bytes, buffer has %zu", fn,
                        w.len, capacity);
    bp__wr out = {buf, 0};
    return encode(&out, net, with_opt ? opt : NULL);
}

static bp_status save_file(const char *fn, const bp_net *net, const bp_optimizer *opt, int with_opt,
                           const char *path)
{
    BP_CHECK(save_check(fn, net, opt, with_opt));
    if (path == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: path is NULL", fn);
    bp__wr w = {NULL, 0};
    BP_CHECK(encode(&w, net, with_opt ? opt : NULL));
    unsigned char *buf = bp__malloc(&net->alloc, w.len);
    if (buf == NULL)
        return bp__fail(NULL, BP_ERR_NOMEM, "%s: %s: out of memory for %zu bytes", fn,
                        bp__path_base(path), w.len);
    bp__wr out = {buf, 0};
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
 * Decoder
 * ----------------------------------------------------------------------------------------*/

/* Index of the section with @p tag, or -1 for a tag this version does not know. */
static int section_index(const unsigned char *tag)
{
    for (size_t i = 0; i < SEC_COUNT; i++)
        if (memcmp(tag, sections[i].tag, 4) == 0) return (int)i;
    return -1;
}

static bp_status dec_sections(dec *d, bp__rd *r)
{
    unsigned seen = 0; /* bit i: sections[i] */
    while (bp__r_left(r) > 0) {
        const size_t offset = HEADER_BYTES + r->pos;
        const unsigned char *tag = bp__r_take(r, 4);
        const uint32_t flags = bp__r_u32(r);
        const uint64_t len = bp__r_u64(r);
        snprintf(d->sec, sizeof d->sec, "offset");
        if (r->short_read) return dfail(d, BP_ERR_FORMAT, "%zu: truncated section header", offset);
        for (int i = 0; i < 4; i++)
            d->sec[i] = tag[i] >= 0x20 && tag[i] < 0x7f ? (char)tag[i] : '?';
        d->sec[4] = '\0';
        if (d->sec[3] == ' ') d->sec[3] = '\0'; /* "NET " */
        if (len > bp__r_left(r))
            return dfail(d, BP_ERR_FORMAT, "section of %llu bytes at offset %zu, only %zu remain",
                         (unsigned long long)len, offset, bp__r_left(r));
        bp__rd sub = {r->p + r->pos, (size_t)len, 0, 0};
        r->pos += (size_t)len;
        const int id = section_index(tag);
        if (id < 0) {
            if (flags & SEC_REQUIRED)
                return dfail(d, BP_ERR_VERSION,
                             "unknown required section (written by a newer "
                             "library?)");
            continue; /* optional: skipped by design */
        }
        const unsigned bit = 1u << id;
        if (seen & bit) return dfail(d, BP_ERR_FORMAT, "section appears twice");
        if (id != SEC_NET && !(seen & (1u << SEC_NET)))
            return dfail(d, BP_ERR_FORMAT, "section before the NET section");
        seen |= bit;
        if (sections[id].checkpoint && !d->with_opt)
            sub.pos = sub.len; /* model loaders ignore the training state */
        else
            BP_CHECK(sections[id].get(d, &sub));
        if (sub.pos != sub.len)
            return dfail(d, BP_ERR_FORMAT, "%zu bytes after the section's contents",
                         sub.len - sub.pos);
    }
    snprintf(d->sec, sizeof d->sec, "file");
    if (!(seen & (1u << SEC_NET))) return dfail(d, BP_ERR_FORMAT, "no NET section");
    if (d->with_opt && !(seen & (1u << SEC_OPTM)))
        return dfail(d, BP_ERR_FORMAT, "no optimizer state: a model file, not a checkpoint");
    return BP_OK;
}

/* Decode a whole file image; *opt_out is filled only when opt_out is not NULL. */
static bp_status decode(const unsigned char *b, size_t size, const char *name, const bp__alloc *a,
                        bp_net **net_out, bp_optimizer **opt_out)
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
    const uint32_t version = (uint32_t)bp__get_le(b + 8, 4);
    if (version == 0) return dfail(&d, BP_ERR_FORMAT, "format version 0");
    d.version = version;
    if (version > BP_FORMAT_VERSION)
        return dfail(&d, BP_ERR_VERSION,
                     "format version %lu is newer than this library reads "
                     "(%d); upgrade libbackprop",
                     (unsigned long)version, BP_FORMAT_VERSION);
    const uint64_t total = bp__get_le(b + 16, 8);
    if (total != size)
        return dfail(&d, BP_ERR_FORMAT, "the header announces %llu bytes, got %zu (%s)",
                     (unsigned long long)total, size, total > size ? "truncated" : "trailing data");
    const uint32_t crc = (uint32_t)bp__get_le(b + size - CRC_BYTES, 4);
    const uint32_t actual = bp__crc32(0, b, size - CRC_BYTES);
    if (crc != actual)
        return dfail(&d, BP_ERR_CHECKSUM, "CRC-32 is %08lx, the file says %08lx (corrupted)",
                     (unsigned long)actual, (unsigned long)crc);
    bp__rd r = {b + HEADER_BYTES, size - HEADER_BYTES - CRC_BYTES, 0, 0};
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

static bp_status load_args(const char *fn, bp_net **net_out, bp_optimizer **opt_out, int with_opt,
                           const void *src, bp_alloc_fn alloc_fn, bp_free_fn free_fn, void *user,
                           bp__alloc *a)
{
    if (net_out != NULL) *net_out = NULL;
    if (opt_out != NULL) *opt_out = NULL;
    if (net_out == NULL || (with_opt && opt_out == NULL) || src == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "%s: an output, the path or the buffer is "
                        "NULL",
                        fn);
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

static bp_status load_path(const char *fn, bp_net **net_out, bp_optimizer **opt_out, int with_opt,
                           const char *path, bp_alloc_fn alloc_fn, bp_free_fn free_fn, void *user)
{
    bp__alloc a;
    BP_CHECK(load_args(fn, net_out, opt_out, with_opt, path, alloc_fn, free_fn, user, &a));
    unsigned char *data;
    size_t size;
    BP_CHECK(bp__read_file_as(&a, NULL, path, BP__READ_MODEL, 0, &data, &size));
    const bp_status st =
        decode(data, size, bp__path_base(path), &a, net_out, with_opt ? opt_out : NULL);
    bp__free(&a, data);
    return st;
}

static bp_status load_mem(const char *fn, bp_net **net_out, bp_optimizer **opt_out, int with_opt,
                          const void *buf, size_t size, bp_alloc_fn alloc_fn, bp_free_fn free_fn,
                          void *user)
{
    bp__alloc a;
    BP_CHECK(load_args(fn, net_out, opt_out, with_opt, buf, alloc_fn, free_fn, user, &a));
    return decode(buf, size, "buffer", &a, net_out, with_opt ? opt_out : NULL);
}

bp_status bp_net_load(bp_net **out, const char *path)
{
    return load_path("bp_net_load", out, NULL, 0, path, NULL, NULL, NULL);
}

bp_status bp_net_load_ex(bp_net **out, const char *path, bp_alloc_fn alloc_fn, bp_free_fn free_fn,
                         void *user)
{
    return load_path("bp_net_load_ex", out, NULL, 0, path, alloc_fn, free_fn, user);
}

bp_status bp_net_load_buffer(bp_net **out, const void *buf, size_t size)
{
    return load_mem("bp_net_load_buffer", out, NULL, 0, buf, size, NULL, NULL, NULL);
}

bp_status bp_net_load_buffer_ex(bp_net **out, const void *buf, size_t size, bp_alloc_fn alloc_fn,
                                bp_free_fn free_fn, void *user)
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
    return load_path("bp_checkpoint_load_ex", net_out, opt_out, 1, path, alloc_fn, free_fn, user);
}

bp_status bp_checkpoint_load_buffer(bp_net **net_out, bp_optimizer **opt_out, const void *buf,
                                    size_t size)
{
    return load_mem("bp_checkpoint_load_buffer", net_out, opt_out, 1, buf, size, NULL, NULL, NULL);
}

bp_status bp_checkpoint_load_buffer_ex(bp_net **net_out, bp_optimizer **opt_out, const void *buf,
                                       size_t size, bp_alloc_fn alloc_fn, bp_free_fn free_fn,
                                       void *user)
{
    return load_mem("bp_checkpoint_load_buffer_ex", net_out, opt_out, 1, buf, size, alloc_fn,
                    free_fn, user);
}
