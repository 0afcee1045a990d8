/*
 * dataset.h -- the data-set handle and its loaders (dataset.c, dataset_io.c).
 */
#ifndef BP_DATASET_H
#define BP_DATASET_H

#include "util.h"

#define BP__MAGIC_DATA 0x44415442u  /* "BTAD" */

/* ---- dataset ---- */

/* Invariant: every value of x and y is finite. */
struct bp_dataset {
    uint32_t magic;
    bp__alloc alloc;     /* kept so a bp_dataset_create_ex can be added later */
    size_t n;            /* samples */
    size_t in, out;      /* per-row widths, both >= 1 */
    float *x;            /* inputs [n x in] */
    float *y;            /* targets [n x out] */
    char err[BP__ERR_CAP];
};

static inline int bp__dataset_ok(const bp_dataset *d)
{
    return d != NULL && d->magic == BP__MAGIC_DATA;
}

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
bp_status bp__dataset_load_idx_with(bp_dataset **out, const bp__alloc *a,
                                    const char *images_path, const char *labels_path,
                                    size_t classes, size_t max_decompressed);

#endif /* BP_DATASET_H */
