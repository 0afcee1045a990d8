/* fuzz_alloc.h -- a byte-counting allocator for the fuzz targets (bp__alloc callbacks), so a
 * target can fail on memory out of proportion to its input. Each block carries its size in
 * a 16-byte prefix (keeps malloc's alignment). */
#ifndef BP_FUZZ_ALLOC_H
#define BP_FUZZ_ALLOC_H

#include <stdlib.h>
#include <string.h>

typedef struct fuzz_counted {
    size_t live, peak;
} fuzz_counted;

static void *fuzz_count_alloc(void *user, size_t n)
{
    fuzz_counted *c = user;
    unsigned char *p = n <= SIZE_MAX - 16 ? malloc(n + 16) : NULL;
    if (p == NULL) return NULL;
    memcpy(p, &n, sizeof n);
    c->live += n;
    c->peak = c->live > c->peak ? c->live : c->peak;
    return p + 16;
}

static void fuzz_count_free(void *user, void *q)
{
    fuzz_counted *c = user;
    if (q == NULL) return;
    size_t n;
    memcpy(&n, (unsigned char *)q - 16, sizeof n);
    c->live -= n;
    free((unsigned char *)q - 16);
}

#endif /* BP_FUZZ_ALLOC_H */
