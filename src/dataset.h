/*
 * dataset.h -- the data-set handle and its loaders (dataset.c, dataset_io.c).
 */
#ifndef BP_DATASET_H
#define BP_DATASET_H

#include "util.h"

#define BP__MAGIC_DATA 0x44415442u /* "BTAD" */

/* ---- dataset ---- */

/* Invariant: every value of x and y is finite. */
struct bp_dataset {
    uint32_t magic;
    bp__alloc alloc;       /* kept so a bp_dataset_create_ex can be added later */
    size_t n;              /* samples */
    size_t in, out;        /* per-row widths, both >= 1 */
    float *x;              /* inputs [n x in]; NULL for a mapped set */
    float *y;              /* targets [n x out]; NULL for a mapped set */
    struct bp__dsmap *map; /* mapped set (dataset_mapped.c): the file, shared with views */
    size_t first;          /* mapped set: its first row in the file */
    char err[BP__ERR_CAP];
};

static inline int bp__dataset_ok(const bp_dataset *d)
{
    return d != NULL && d->magic == BP__MAGIC_DATA;
}

/* Rows in memory (x, y) rather than in a mapped file. */
static inline int bp__dataset_resident(const bp_dataset *d)
{
    return d->map == NULL;
}

/* The one way to read rows of any data set (dataset_mapped.c): copy rows idx[start .. start + k)
 * (idx != NULL) or rows start .. start + k - 1 (idx == NULL) into x [k x in] and y [k x out].
 * Resident sets cannot fail; a mapped set decodes the rows and checks each block's CRC-32 the first
 * time it is read (BP_ERR_CHECKSUM naming the block, BP_ERR_NONFINITE), the message on
 * @p ds and through bp_last_error(). Callers that only need contiguous resident rows use
 * ds->x and ds->y directly (no copy). */
bp_status bp__dataset_read(const bp_dataset *ds, const size_t *idx, size_t start, size_t k,
                           float *x, float *y);

/* ---- the binary data-set file (dataset_mapped.c) ---- */

/* Fill @p k encoded rows (k x stride bytes, docs/format.md) from row @p first on. */
typedef bp_status (*bp__dsfile_fill_fn)(void *user, size_t first, size_t k, unsigned char *dst);
/* Write a data-set file of @p rows rows atomically, the rows coming from @p fill a block at a
 * time; @p table: the 256 values of the uint8 codes (BP_DATA_UINT8), else unused. @p fn
 * names the caller in messages; messages go to @p err (may be NULL) and bp_last_error(). */
bp_status bp__dsfile_write(char *err, const char *fn, const char *path, int type,
                           const float *table, size_t rows, size_t in, size_t out,
                           bp__dsfile_fill_fn fill, void *user);
/* Map a data-set file read-only and check its header and metadata (not the rows). */
bp_status bp__dsmap_open(struct bp__dsmap **out, const char *fn, const char *path);
void bp__dsmap_retain(struct bp__dsmap *m);
void bp__dsmap_release(struct bp__dsmap *m); /* NULL is a no-op; unmaps at the last */
size_t bp__dsmap_rows(const struct bp__dsmap *m);
size_t bp__dsmap_inputs(const struct bp__dsmap *m);
size_t bp__dsmap_outputs(const struct bp__dsmap *m);
/* bp__dataset_read for the rows of a mapped set whose first row is file row @p first. */
bp_status bp__dsmap_read(struct bp__dsmap *m, char *err, size_t first, const size_t *idx,
                         size_t start, size_t k, float *x, float *y);

/* Wrap buffers allocated from @p a (x: [n x in], y: [n x out], all finite) in a new data
 * set that owns them. On failure (BP_ERR_NOMEM) both buffers are freed and *out is NULL. */
bp_status bp__dataset_adopt(bp_dataset **out, const bp__alloc *a, float *x, float *y, size_t n,
                            size_t in, size_t outs);

/* Buffer-based data set parsers (dataset_io.c), behind the public loaders, for the fuzz
 * targets and allocation-failure tests. @p buf must have a NUL byte at buf[size] (as
 * bp__read_file() leaves). @p name names the input in messages. */
bp_status bp__dataset_parse_csv(bp_dataset **out, const bp__alloc *a, const char *name,
                                const char *buf, size_t size, int delimiter, int has_header,
                                size_t target_first, size_t target_count);
bp_status bp__dataset_parse_fann(bp_dataset **out, const bp__alloc *a, const char *name,
                                 const char *buf, size_t size);
bp_status bp__dataset_parse_idx(bp_dataset **out, const bp__alloc *a, const char *images_name,
                                const unsigned char *images, size_t images_size,
                                const char *labels_name, const unsigned char *labels,
                                size_t labels_size, size_t classes);
/* The public file loaders (the _ex ones) with every allocation (file buffer, decompression,
 * data) from @p a; the public functions pass bp__default_alloc. */
bp_status bp__dataset_load_csv_with(bp_dataset **out, const bp__alloc *a, const char *path,
                                    int delimiter, int has_header, size_t target_first,
                                    size_t target_count, size_t max_decompressed);
bp_status bp__dataset_load_fann_with(bp_dataset **out, const bp__alloc *a, const char *path,
                                     size_t max_decompressed);
bp_status bp__dataset_load_idx_with(bp_dataset **out, const bp__alloc *a, const char *images_path,
                                    const char *labels_path, size_t classes,
                                    size_t max_decompressed);

#endif /* BP_DATASET_H */
