/* alloc.c -- per-handle allocation with overflow checks and aligned blocks. */
#include "util.h"

#include <stdlib.h>
#include <string.h>

static void *default_alloc(void *user, size_t size)
{
    (void)user;
    return malloc(size);
}

static void default_free(void *user, void *p)
{
    (void)user;
    free(p);
}

const bp__alloc bp__default_alloc = {default_alloc, default_free, NULL};

int bp__mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

void *bp__malloc(const bp__alloc *a, size_t size)
{
    if (size == 0) size = 1;
    return a->alloc(a->user, size);
}

void *bp__calloc(const bp__alloc *a, size_t count, size_t size)
{
    size_t total;
    if (bp__mul_size(count, size, &total) != 0) return NULL;
    void *p = bp__malloc(a, total);
    if (p != NULL) memset(p, 0, total);
    return p;
}

void bp__free(const bp__alloc *a, void *p)
{
    if (p != NULL) a->free(a->user, p);
}

#define BP__ALIGN 64u

void *bp__malloc_aligned(const bp__alloc *a, size_t size)
{
    if (size > SIZE_MAX - BP__ALIGN - sizeof(void *)) return NULL;
    unsigned char *raw = bp__malloc(a, size + BP__ALIGN + sizeof(void *));
    if (raw == NULL) return NULL;
    uintptr_t p = (uintptr_t)(raw + sizeof(void *));
    p = (p + BP__ALIGN - 1) & ~(uintptr_t)(BP__ALIGN - 1);
    memcpy((unsigned char *)p - sizeof(void *), &raw, sizeof raw);
    return (void *)p;
}

void bp__free_aligned(const bp__alloc *a, void *p)
{
    if (p == NULL) return;
    void *raw;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof raw);
    bp__free(a, raw);
}
