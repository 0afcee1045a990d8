/* dataset_mapped.c -- the binary data-set file (docs/format.md, "Data-set file"): the writer
 * behind bp_dataset_save_binary and the read-only memory-mapped data sets of
 * bp_dataset_open_mapped. The rows of a mapped set are decoded to float only when read,
 * through bp__dsmap_read (a batch at a time), and each block's CRC-32 is checked the first
 * time one of its rows is read. */
#include "util.h"
#include "fileio.h"
#include "dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define HEADER_BYTES 64u
#define TABLE_VALUES 256u
/* Rows per block: about this many bytes of rows each (at least one row). */
#define BLOCK_TARGET_BYTES ((size_t)1 << 20)
#define MAX_WIDTH          ((uint64_t)1 << 24)

/* ------------------------------------------------------------------------------------------
 * Little-endian fields
 * ----------------------------------------------------------------------------------------*/

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_f32(unsigned char *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(p, u);
}

static float get_f32(const unsigned char *p)
{
    const uint32_t u = get_u32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* ------------------------------------------------------------------------------------------
 * Layout shared by the writer and the reader
 * ----------------------------------------------------------------------------------------*/

typedef struct layout {
    int type;
    uint64_t rows, in, out, rpb, blocks;
    uint64_t stride;      /* bytes per row */
    uint64_t meta_bytes;  /* table + CRC list + their CRC */
    uint64_t data_offset; /* first row */
    uint64_t length;      /* the whole file */
} layout;

/* Fill the derived sizes of @p l from type, rows, in, out and rpb; nonzero on overflow. */
static int layout_derive(layout *l)
{
    const uint64_t esize = l->type == BP_DATA_UINT8 ? 1u : 4u;
    if (l->in > MAX_WIDTH || l->out > MAX_WIDTH || l->rows == 0 || l->in == 0 || l->out == 0 ||
        l->rpb == 0)
        return 1;
    l->stride = l->in * esize + l->out * 4u; /* < 2^27 */
    l->blocks = l->rows / l->rpb + (l->rows % l->rpb != 0);
    if (l->blocks > (UINT64_MAX - 4096u) / 4u) return 1;
    l->meta_bytes = (l->type == BP_DATA_UINT8 ? TABLE_VALUES * 4u : 0u) + 4u * l->blocks + 4u;
    l->data_offset = (HEADER_BYTES + l->meta_bytes + 63u) & ~(uint64_t)63u;
    if (l->rows > (UINT64_MAX - l->data_offset) / l->stride) return 1;
    l->length = l->data_offset + l->rows * l->stride;
    return 0;
}

static void header_encode(unsigned char *h, const layout *l)
{
    memset(h, 0, HEADER_BYTES);
    memcpy(h, "BPDS", 4);
    put_u32(h + 4, 1u);
    put_u32(h + 8, (uint32_t)l->type);
    put_u32(h + 12, (uint32_t)l->rpb);
    put_u64(h + 16, l->rows);
    put_u64(h + 24, l->in);
    put_u64(h + 32, l->out);
    put_u64(h + 40, l->data_offset);
    put_u32(h + 60, bp__crc32(0, h, 60));
}

/* ------------------------------------------------------------------------------------------
 * Writer
 * ----------------------------------------------------------------------------------------*/

bp_status bp__dsfile_write(char *err, const char *fn, const char *path, int type,
                           const float *table, size_t rows, size_t in, size_t out,
                           bp__dsfile_fill_fn fill, void *user)
{
    if (type != BP_DATA_FLOAT32 && type != BP_DATA_UINT8)
        return bp__fail(err, BP_ERR_INVALID_ARG, "%s: unknown element type %d", fn, type);
    layout l = {type, rows, in, out, 0, 0, 0, 0, 0, 0};
    l.rpb = 1;
    if (in > 0 && out > 0 && in <= MAX_WIDTH && out <= MAX_WIDTH) {
        const uint64_t stride = (uint64_t)in * (type == BP_DATA_UINT8 ? 1u : 4u) + 4u * out;
        l.rpb = stride < BLOCK_TARGET_BYTES ? BLOCK_TARGET_BYTES / stride : 1u;
    }
    if (layout_derive(&l) != 0 || l.length > (uint64_t)INT64_MAX || l.rpb * l.stride > SIZE_MAX ||
        l.meta_bytes > SIZE_MAX)
        return bp__fail(err, BP_ERR_INVALID_ARG,
                        "%s: %zu rows of %zu + %zu values cannot be "
                        "written",
                        fn, rows, in, out);
    if (type == BP_DATA_UINT8) {
        for (size_t q = 0; q < TABLE_VALUES; q++)
            if (!isfinite(table[q]))
                return bp__fail(err, BP_ERR_NONFINITE,
                                "%s: value table entry %zu is not "
                                "finite",
                                fn, q);
    }
    const size_t block_bytes = (size_t)(l.rpb * l.stride);
    unsigned char *meta = bp__malloc(&bp__default_alloc, (size_t)l.meta_bytes);
    unsigned char *buf = bp__malloc(&bp__default_alloc, block_bytes);
    if (meta == NULL || buf == NULL) {
        bp__free(&bp__default_alloc, meta);
        bp__free(&bp__default_alloc, buf);
        return bp__fail(err, BP_ERR_NOMEM, "%s: out of memory for a block of %zu bytes", fn,
                        block_bytes);
    }
    bp_status s;
    bp__atomic_file w;
    if ((s = bp__atomic_open(&w, err, path)) != BP_OK) goto done;
    unsigned char head[HEADER_BYTES], pad[64] = {0};
    header_encode(head, &l);
    const size_t table_bytes = type == BP_DATA_UINT8 ? TABLE_VALUES * 4u : 0u;
    for (size_t q = 0; q < table_bytes / 4u; q++)
        put_f32(meta + 4 * q, table[q]);
    memset(meta + table_bytes, 0, (size_t)l.meta_bytes - table_bytes);
    /* The header and placeholder metadata first; the CRC list is known after the rows. */
    const size_t padding = (size_t)(l.data_offset - HEADER_BYTES - l.meta_bytes);
    int bad = fwrite(head, 1, HEADER_BYTES, w.f) != HEADER_BYTES ||
              fwrite(meta, 1, (size_t)l.meta_bytes, w.f) != l.meta_bytes ||
              fwrite(pad, 1, padding, w.f) != padding;
    for (uint64_t b = 0; b < l.blocks && !bad; b++) {
        const size_t first = (size_t)(b * l.rpb);
        const size_t k = rows - first < l.rpb ? rows - first : (size_t)l.rpb;
        if ((s = fill(user, first, k, buf)) != BP_OK) {
            bp__atomic_abort(&w);
            goto done;
        }
        const size_t bytes = k * (size_t)l.stride;
        put_u32(meta + table_bytes + 4 * b, bp__crc32(0, buf, bytes));
        bad = fwrite(buf, 1, bytes, w.f) != bytes;
    }
    if (!bad) {
        const size_t crc_at = (size_t)l.meta_bytes - 4u;
        put_u32(meta + crc_at, bp__crc32(0, meta, crc_at));
        bad = fseeko(w.f, (off_t)HEADER_BYTES, SEEK_SET) != 0 ||
              fwrite(meta, 1, (size_t)l.meta_bytes, w.f) != l.meta_bytes;
    }
    if (bad) {
        const int e = errno;
        bp__atomic_abort(&w);
        s = bp__fail(err, BP_ERR_IO, "%s: cannot write '%s': %s", fn, path, strerror(e));
        goto done;
    }
    s = bp__atomic_commit(&w, err, path);
done:
    bp__free(&bp__default_alloc, meta);
    bp__free(&bp__default_alloc, buf);
    return s;
}

/* ------------------------------------------------------------------------------------------
 * The mapping (shared by a mapped set and its views)
 * ----------------------------------------------------------------------------------------*/

struct bp__dsmap {
    atomic_size_t refs;
    unsigned char *base; /* the mapping: the whole file */
    size_t length;
    const unsigned char *data; /* the first row */
    size_t rows, in, out, stride, rpb, blocks;
    int type;
    float table[TABLE_VALUES]; /* uint8 codes to values */
    /* Decoding without the table when it is exactly table[q] = q / divisor (pixels q / 255)
     * or q * scale: arithmetic vectorises, a table lookup per byte does not. */
    int table_form; /* 0: lookup, 1: q / divisor, 2: q * scale */
    float divisor, scale;
    const unsigned char *crcs; /* [blocks] little-endian CRC-32 of each block */
    atomic_uchar *verified;    /* [blocks] 1 once a block's CRC has matched */
    char name[160];            /* the file, for messages */
};

static void map_destroy(struct bp__dsmap *m)
{
    if (m->base != NULL) munmap(m->base, m->length);
    bp__free(&bp__default_alloc, m->verified);
    bp__free(&bp__default_alloc, m);
}

void bp__dsmap_retain(struct bp__dsmap *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void bp__dsmap_release(struct bp__dsmap *m)
{
    if (m != NULL && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        map_destroy(m);
}

size_t bp__dsmap_rows(const struct bp__dsmap *m)
{
    return m->rows;
}
size_t bp__dsmap_inputs(const struct bp__dsmap *m)
{
    return m->in;
}
size_t bp__dsmap_outputs(const struct bp__dsmap *m)
{
    return m->out;
}

/* Set m->table_form: whether every entry equals q / divisor, or q * scale, exactly. */
static void classify_table(struct bp__dsmap *m)
{
    const float d = m->table[255] != 0.0f ? 255.0f / m->table[255] : 0.0f, s = m->table[1];
    int div = isfinite(d) && d != 0.0f, mul = 1;
    for (unsigned q = 0; q < TABLE_VALUES; q++) {
        div &= div && (float)q / d == m->table[q];
        mul &= (float)q * s == m->table[q];
    }
    m->table_form = div ? 1 : mul ? 2 : 0;
    m->divisor = d;
    m->scale = s;
}

/* Check the header and metadata of the file mapped at m->base (m->length bytes). */
static bp_status map_parse(struct bp__dsmap *m, const char *fn)
{
    const unsigned char *b = m->base;
    const char *name = m->name;
    if (m->length < HEADER_BYTES)
        return bp__fail(NULL, BP_ERR_FORMAT,
                        "%s: '%s' has %zu bytes, too short for a data-set "
                        "header",
                        fn, name, m->length);
    if (memcmp(b, "BPDS", 4) != 0)
        return bp__fail(NULL, BP_ERR_FORMAT, "%s: '%s' is not a data-set file (magic)", fn, name);
    if (bp__crc32(0, b, 60) != get_u32(b + 60))
        return bp__fail(NULL, BP_ERR_CHECKSUM,
                        "%s: '%s': the header fails its CRC-32 "
                        "(corrupted)",
                        fn, name);
    if (get_u32(b + 4) != 1u)
        return bp__fail(NULL, BP_ERR_VERSION,
                        "%s: '%s' is data-set format version %lu; this "
                        "library reads version 1",
                        fn, name, (unsigned long)get_u32(b + 4));
    layout l = {(int)get_u32(b + 8),
                get_u64(b + 16),
                get_u64(b + 24),
                get_u64(b + 32),
                get_u32(b + 12),
                0,
                0,
                0,
                0,
                0};
    if (l.type != BP_DATA_FLOAT32 && l.type != BP_DATA_UINT8)
        return bp__fail(NULL, BP_ERR_FORMAT, "%s: '%s': unknown element type %d", fn, name, l.type);
    if (get_u64(b + 48) != 0 || get_u32(b + 56) != 0)
        return bp__fail(NULL, BP_ERR_FORMAT, "%s: '%s': reserved header fields are not 0", fn,
                        name);
    if (layout_derive(&l) != 0 || l.rpb * l.stride > SIZE_MAX)
        return bp__fail(NULL, BP_ERR_FORMAT,
                        "%s: '%s': %llu rows of %llu + %llu values in "
                        "blocks of %llu are out of range",
                        fn, name, (unsigned long long)l.rows, (unsigned long long)l.in,
                        (unsigned long long)l.out, (unsigned long long)l.rpb);
    if (get_u64(b + 40) != l.data_offset || l.length != (uint64_t)m->length)
        return bp__fail(NULL, BP_ERR_FORMAT,
                        "%s: '%s' has %zu bytes; its header announces "
                        "%llu (rows from byte %llu)",
                        fn, name, m->length, (unsigned long long)l.length,
                        (unsigned long long)get_u64(b + 40));
    const unsigned char *meta = b + HEADER_BYTES;
    const size_t crc_at = (size_t)l.meta_bytes - 4u;
    if (bp__crc32(0, meta, crc_at) != get_u32(meta + crc_at))
        return bp__fail(NULL, BP_ERR_CHECKSUM,
                        "%s: '%s': the value table or the block CRC "
                        "list fails its CRC-32 (corrupted)",
                        fn, name);
    m->type = l.type;
    m->rows = (size_t)l.rows;
    m->in = (size_t)l.in;
    m->out = (size_t)l.out;
    m->stride = (size_t)l.stride;
    m->rpb = (size_t)l.rpb;
    m->blocks = (size_t)l.blocks;
    m->data = b + l.data_offset;
    if (l.type == BP_DATA_UINT8) {
        for (size_t q = 0; q < TABLE_VALUES; q++) {
            m->table[q] = get_f32(meta + 4 * q);
            if (!isfinite(m->table[q]))
                return bp__fail(NULL, BP_ERR_FORMAT,
                                "%s: '%s': value table entry %zu is not "
                                "finite",
                                fn, name, q);
        }
        meta += TABLE_VALUES * 4u;
        classify_table(m);
    }
    m->crcs = meta;
    return BP_OK;
}

bp_status bp__dsmap_open(struct bp__dsmap **out, const char *fn, const char *path)
{
    *out = NULL;
    struct bp__dsmap *m = bp__calloc(&bp__default_alloc, 1, sizeof *m);
    if (m == NULL) return bp__fail(NULL, BP_ERR_NOMEM, "%s: out of memory", fn);
    atomic_init(&m->refs, 1);
    snprintf(m->name, sizeof m->name, "%s", path);
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        map_destroy(m);
        return bp__fail(NULL, BP_ERR_IO, "%s: cannot open '%s': %s", fn, path, strerror(e));
    }
    struct stat st;
    bp_status s = BP_OK;
    if (fstat(fd, &st) != 0) {
        s = bp__fail(NULL, BP_ERR_IO, "%s: cannot stat '%s': %s", fn, path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        s = bp__fail(NULL, BP_ERR_IO, "%s: '%s' is not a regular file", fn, path);
    } else if (st.st_size < (off_t)HEADER_BYTES) {
        s = bp__fail(NULL, BP_ERR_FORMAT,
                     "%s: '%s' has %lld bytes, too short for a data-set "
                     "header",
                     fn, path, (long long)st.st_size);
    } else if ((uintmax_t)st.st_size > SIZE_MAX) {
        s = bp__fail(NULL, BP_ERR_UNSUPPORTED, "%s: '%s' is larger than the address space", fn,
                     path);
    } else {
        m->length = (size_t)st.st_size;
        void *p = mmap(NULL, m->length, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            s = bp__fail(NULL, BP_ERR_IO, "%s: cannot map '%s': %s", fn, path, strerror(errno));
        else
            m->base = p;
    }
    close(fd);
    if (s == BP_OK) s = map_parse(m, fn);
    if (s == BP_OK) {
        m->verified = bp__calloc(&bp__default_alloc, m->blocks, sizeof *m->verified);
        if (m->verified == NULL)
            s = bp__fail(NULL, BP_ERR_NOMEM, "%s: out of memory for %zu block flags", fn,
                         m->blocks);
    }
    if (s != BP_OK) {
        map_destroy(m);
        return s;
    }
    for (size_t b = 0; b < m->blocks; b++)
        atomic_init(&m->verified[b], 0);
    *out = m;
    return BP_OK;
}

/* Check block @p b's CRC-32 the first time one of its rows is read. */
static bp_status verify_block(struct bp__dsmap *m, char *err, size_t b)
{
    if (atomic_load_explicit(&m->verified[b], memory_order_acquire)) return BP_OK;
    const size_t first = b * m->rpb;
    const size_t k = m->rows - first < m->rpb ? m->rows - first : m->rpb;
    const unsigned char *p = m->data + first * m->stride;
    const uint32_t want = get_u32(m->crcs + 4 * b), got = bp__crc32(0, p, k * m->stride);
    if (want != got)
        return bp__fail(err, BP_ERR_CHECKSUM,
                        "'%s': block %zu (rows %zu..%zu) fails its CRC-32 "
                        "(%08lx, the file says %08lx): corrupted",
                        m->name, b, first, first + k - 1, (unsigned long)got, (unsigned long)want);
    atomic_store_explicit(&m->verified[b], 1, memory_order_release);
    return BP_OK;
}

/* Little-endian float32 values to floats. */
static void copy_f32(float *dst, const unsigned char *src, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++)
        dst[i] = get_f32(src + 4 * i);
#endif
}

bp_status bp__dsmap_read(struct bp__dsmap *m, char *err, size_t first, const size_t *idx,
                         size_t start, size_t k, float *x, float *y)
{
    const size_t in = m->in, out = m->out;
    for (size_t i = 0; i < k; i++) {
        const size_t r = first + (idx != NULL ? idx[start + i] : start + i);
        BP_CHECK(verify_block(m, err, r / m->rpb));
        const unsigned char *p = m->data + r * m->stride;
        float *xr = x + i * in;
        if (m->type == BP_DATA_UINT8) {
            if (m->table_form == 1) {
                const float d = m->divisor;
                for (size_t c = 0; c < in; c++)
                    xr[c] = (float)p[c] / d;
            } else if (m->table_form == 2) {
                const float sc = m->scale;
                for (size_t c = 0; c < in; c++)
                    xr[c] = (float)p[c] * sc;
            } else {
                for (size_t c = 0; c < in; c++)
                    xr[c] = m->table[p[c]];
            }
            p += in;
        } else {
            copy_f32(xr, p, in);
            p += in * sizeof(float);
        }
        copy_f32(y + i * out, p, out);
        /* Values are checked as they are decoded: a CRC-valid file may still hold NaN. */
        size_t bad = m->type == BP_DATA_UINT8 ? in : bp__first_nonfinite(xr, in);
        if (bad == in) bad = in + bp__first_nonfinite(y + i * out, out);
        if (bad < in + out)
            return bp__fail(err, BP_ERR_NONFINITE, "'%s': row %zu: %s column %zu is not finite",
                            m->name, r, bad < in ? "input" : "target", bad < in ? bad : bad - in);
    }
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * The row accessor of every data set (dataset.h): here, below dataset.c's operations, so
 * that the writer can read any set through it
 * ----------------------------------------------------------------------------------------*/

/* Ask for the cache lines of one row of @p floats a little ahead of its copy: a shuffled
 * batch reads rows from anywhere in the set, and the hardware prefetcher only follows a row
 * once its first lines have missed (Fashion-MNIST, 784 floats a row: the gather of an epoch
 * took 25-28 ms without, 16-20 with the row two ahead, in a one-off test program; see
 * docs/performance.md). Rows above 8 KiB are left to the hardware after their first 8 KiB. */
static void prefetch_row(const float *row, size_t floats)
{
#if defined(__GNUC__) || defined(__clang__)
    const char *p = (const char *)row;
    const size_t bytes = floats * sizeof(float) < 8192 ? floats * sizeof(float) : 8192;
    for (size_t b = 0; b < bytes; b += 64)
        __builtin_prefetch(p + b);
#else
    (void)row, (void)floats;
#endif
}

bp_status bp__dataset_read(const bp_dataset *ds, const size_t *idx, size_t start, size_t k,
                           float *x, float *y)
{
    if (ds->map != NULL) return bp__dsmap_read(ds->map, NULL, ds->first, idx, start, k, x, y);
    const size_t in = ds->in, out = ds->out;
    if (idx == NULL) {
        memcpy(x, ds->x + start * in, k * in * sizeof(float));
        memcpy(y, ds->y + start * out, k * out * sizeof(float));
        return BP_OK;
    }
    enum { AHEAD = 2 }; /* rows */
    for (size_t i = 0; i < k; i++) {
        const size_t r = idx[start + i];
        if (i + AHEAD < k) prefetch_row(ds->x + idx[start + i + AHEAD] * in, in);
        memcpy(x + i * in, ds->x + r * in, in * sizeof(float));
        memcpy(y + i * out, ds->y + r * out, out * sizeof(float));
    }
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Public: bp_dataset_save_binary, bp_dataset_open_mapped
 * ----------------------------------------------------------------------------------------*/

/* Failures on a const handle are reported in bp_last_error() only (as in dataset.c). */
static char *ds_err(const bp_dataset *ds)
{
    (void)ds;
    return NULL;
}

/* Rows read per pass when a data set is scanned or encoded. */
#define SCAN_ROWS ((size_t)256)

typedef struct save_ctx {
    const bp_dataset *ds;
    int type;
    const float *codes; /* uint8: the sorted distinct values, ncodes of them */
    size_t ncodes;
    float *x, *y; /* [SCAN_ROWS x in], [SCAN_ROWS x out] */
} save_ctx;

static size_t code_of(const float *codes, size_t n, float v)
{
    size_t lo = 0, hi = n; /* v is one of codes[0..n) */
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (codes[mid] <= v)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static bp_status save_fill(void *user, size_t first, size_t k, unsigned char *dst)
{
    const save_ctx *c = user;
    const size_t in = c->ds->in, out = c->ds->out;
    for (size_t done = 0; done < k; done += SCAN_ROWS) {
        const size_t rows = k - done < SCAN_ROWS ? k - done : SCAN_ROWS;
        BP_CHECK(bp__dataset_read(c->ds, NULL, first + done, rows, c->x, c->y));
        for (size_t i = 0; i < rows; i++) {
            const float *xr = c->x + i * in;
            if (c->type == BP_DATA_UINT8) {
                for (size_t j = 0; j < in; j++)
                    *dst++ = (unsigned char)code_of(c->codes, c->ncodes, xr[j]);
            } else {
                for (size_t j = 0; j < in; j++, dst += 4)
                    put_f32(dst, xr[j]);
            }
            for (size_t j = 0; j < out; j++, dst += 4)
                put_f32(dst, c->y[i * out + j]);
        }
    }
    return BP_OK;
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The distinct input values of @p c->ds, sorted, into codes[0 .. *n); fails beyond 256. */
static bp_status distinct_inputs(save_ctx *c, float *codes, size_t *n)
{
    const bp_dataset *ds = c->ds;
    size_t count = 0;
    for (size_t r = 0; r < ds->n; r += SCAN_ROWS) {
        const size_t rows = ds->n - r < SCAN_ROWS ? ds->n - r : SCAN_ROWS;
        BP_CHECK(bp__dataset_read(ds, NULL, r, rows, c->x, c->y));
        for (size_t i = 0; i < rows * ds->in; i++) {
            const float v = c->x[i];
            const size_t at = count > 0 ? code_of(codes, count, v) : 0;
            if (count > 0 && codes[at] == v) continue;
            if (count == TABLE_VALUES)
                return bp__fail(ds_err(ds), BP_ERR_OUT_OF_RANGE,
                                "bp_dataset_save_binary: the "
                                "inputs have more than 256 distinct values (row %zu); save them "
                                "as BP_DATA_FLOAT32",
                                r + i / ds->in);
            codes[count++] = v;
            qsort(codes, count, sizeof *codes, cmp_float); /* at most 256 times */
        }
    }
    *n = count;
    return BP_OK;
}

bp_status bp_dataset_save_binary(const bp_dataset *ds, const char *path, int type)
{
    static const char fn[] = "bp_dataset_save_binary";
    if (!bp__dataset_ok(ds))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s", bp__invalid_handle_msg);
    if (path == NULL) return bp__fail(ds_err(ds), BP_ERR_INVALID_ARG, "%s: path is NULL", fn);
    if (type != BP_DATA_FLOAT32 && type != BP_DATA_UINT8)
        return bp__fail(ds_err(ds), BP_ERR_INVALID_ARG, "%s: unknown element type %d", fn, type);
    save_ctx c = {ds, type, NULL, 0, NULL, NULL};
    float codes[TABLE_VALUES] = {0};
    c.x = bp__malloc(&bp__default_alloc, SCAN_ROWS * ds->in * sizeof(float));
    c.y = bp__malloc(&bp__default_alloc, SCAN_ROWS * ds->out * sizeof(float));
    bp_status s = BP_OK;
    if (c.x == NULL || c.y == NULL) s = bp__fail(ds_err(ds), BP_ERR_NOMEM, "%s: out of memory", fn);
    if (s == BP_OK && type == BP_DATA_UINT8) {
        s = distinct_inputs(&c, codes, &c.ncodes);
        c.codes = codes;
        for (size_t q = c.ncodes; q < TABLE_VALUES && q > 0; q++)
            codes[q] = codes[c.ncodes - 1]; /* unused codes: any finite value */
    }
    if (s == BP_OK)
        s = bp__dsfile_write(ds_err(ds), fn, path, type, codes, ds->n, ds->in, ds->out, save_fill,
                             &c);
    bp__free(&bp__default_alloc, c.x);
    bp__free(&bp__default_alloc, c.y);
    return s;
}

bp_status bp_dataset_open_mapped(bp_dataset **out, const char *path)
{
    static const char fn[] = "bp_dataset_open_mapped";
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (path == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "%s: path is NULL", fn);
    struct bp__dsmap *m;
    BP_CHECK(bp__dsmap_open(&m, fn, path));
    bp_dataset *ds = bp__calloc(&bp__default_alloc, 1, sizeof *ds);
    if (ds == NULL) {
        bp__dsmap_release(m);
        return bp__fail(NULL, BP_ERR_NOMEM, "%s: out of memory", fn);
    }
    ds->magic = BP__MAGIC_DATA;
    ds->alloc = bp__default_alloc;
    ds->n = m->rows;
    ds->in = m->in;
    ds->out = m->out;
    ds->map = m;
    ds->first = 0;
    *out = ds;
    return BP_OK;
}
