/* fileio.c -- whole-file reads with transparent gzip, and atomic (temp + rename) writes. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef BP_HAVE_ZLIB
#  define ZLIB_CONST
#  include <zlib.h>
#endif

const char *bp__path_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

/* strerror is not thread-safe; the XSI strerror_r is (POSIX 2008). */
static const char *os_reason(int errnum, char *buf, size_t cap)
{
    if (strerror_r(errnum, buf, cap) != 0) snprintf(buf, cap, "error %d", errnum);
    return buf;
}

/* Replace *p (holding @p used bytes) by a block of @p cap bytes + 1 for the NUL. */
static int regrow(const bp__alloc *a, unsigned char **p, size_t used, size_t cap)
{
    if (cap == SIZE_MAX) return -1;
    unsigned char *q = bp__malloc(a, cap + 1);
    if (q == NULL) return -1;
    if (used > 0) memcpy(q, *p, used);
    bp__free(a, *p);
    *p = q;
    return 0;
}

static size_t next_capacity(size_t cap)
{
    return cap > SIZE_MAX / 2 - 1 ? SIZE_MAX - 1 : cap * 2;
}

static bp_status read_raw(const bp__alloc *a, char *err, const char *path, unsigned char **data,
                          size_t *size)
{
    char why[128];
    const char *name = bp__path_base(path);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return bp__fail(err, BP_ERR_IO, "%s: cannot open: %s", name,
                        os_reason(errno, why, sizeof why));
    size_t cap = 65536, len = 0;
    unsigned char *buf = bp__malloc(a, cap + 1);
    if (buf == NULL) {
        fclose(f);
        return bp__fail(err, BP_ERR_NOMEM, "%s: out of memory reading the file", name);
    }
    for (;;) {
        if (len == cap) {
            const size_t ncap = next_capacity(cap);
            if (ncap == cap || regrow(a, &buf, len, ncap) != 0) {
                bp__free(a, buf);
                fclose(f);
                return bp__fail(err, BP_ERR_NOMEM, "%s: out of memory after %zu bytes", name,
                                len);
            }
            cap = ncap;
        }
        const size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        const int e = errno;
        bp__free(a, buf);
        fclose(f);
        return bp__fail(err, BP_ERR_IO, "%s: read failed: %s", name, os_reason(e, why, sizeof why));
    }
    fclose(f);
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return BP_OK;
}

#ifdef BP_HAVE_ZLIB
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    return bp__calloc(opaque, items, size);
}

static void z_free(voidpf opaque, voidpf p) { bp__free(opaque, p); }

static bp_status gunzip(const bp__alloc *a, char *err, const char *name, const unsigned char *src,
                        size_t srclen, unsigned char **data, size_t *size)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    zs.opaque = (voidpf)(uintptr_t)a; /* only passed back to bp__calloc/bp__free */
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return bp__fail(err, BP_ERR_NOMEM, "%s: cannot start gzip decompression", name);
    size_t cap = srclen < SIZE_MAX / 4 - 1 ? srclen * 4 : SIZE_MAX / 4;
    if (cap < 4096) cap = 4096;
    size_t len = 0, in_left = srclen;
    const unsigned char *in = src;
    unsigned char *buf = bp__malloc(a, cap + 1);
    bp_status st = BP_OK;
    if (buf == NULL) {
        st = bp__fail(err, BP_ERR_NOMEM, "%s: out of memory decompressing", name);
        goto done;
    }
    for (;;) {
        if (len == cap) {
            const size_t ncap = next_capacity(cap);
            if (ncap == cap || regrow(a, &buf, len, ncap) != 0) {
                st = bp__fail(err, BP_ERR_NOMEM, "%s: out of memory after %zu decompressed bytes",
                              name, len);
                goto done;
            }
            cap = ncap;
        }
        const uInt avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        const uInt avail_out = cap - len > UINT_MAX ? UINT_MAX : (uInt)(cap - len);
        zs.next_in = in;
        zs.avail_in = avail_in;
        zs.next_out = buf + len;
        zs.avail_out = avail_out;
        const int r = inflate(&zs, Z_NO_FLUSH);
        in += avail_in - zs.avail_in;
        in_left -= avail_in - zs.avail_in;
        len += avail_out - zs.avail_out;
        if (r == Z_STREAM_END) {
            if (in_left == 0) break;
            if (in_left >= 2 && in[0] == 0x1f && in[1] == 0x8b) { /* another member */
                inflateReset(&zs);
                continue;
            }
            st = bp__fail(err, BP_ERR_FORMAT, "%s: %zu bytes of trailing data after the gzip "
                          "stream", name, in_left);
            goto done;
        }
        if (r == Z_OK || (r == Z_BUF_ERROR && len == cap)) continue;
        if (r == Z_BUF_ERROR) {
            st = bp__fail(err, BP_ERR_FORMAT, "%s: truncated gzip stream (ends after %zu "
                          "decompressed bytes)", name, len);
        } else if (r == Z_MEM_ERROR) {
            st = bp__fail(err, BP_ERR_NOMEM, "%s: out of memory decompressing", name);
        } else {
            st = bp__fail(err, BP_ERR_FORMAT, "%s: corrupt gzip data (%s)", name,
                          zs.msg != NULL ? zs.msg : "unknown zlib error");
        }
        goto done;
    }
    buf[len] = '\0';
    *data = buf;
    *size = len;
    buf = NULL;
done:
    inflateEnd(&zs);
    bp__free(a, buf);
    return st;
}
#endif

bp_status bp__read_file(const bp__alloc *a, char *err, const char *path, unsigned char **data,
                        size_t *size)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    *data = NULL;
    *size = 0;
    BP_CHECK(read_raw(a, err, path, &raw, &len));
    if (len < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
        *data = raw;
        *size = len;
        return BP_OK;
    }
#ifdef BP_HAVE_ZLIB
    const bp_status st = gunzip(a, err, bp__path_base(path), raw, len, data, size);
    bp__free(a, raw);
    return st;
#else
    bp__free(a, raw);
    return bp__fail(err, BP_ERR_UNSUPPORTED, "%s: gzip-compressed, but libbackprop was built "
                    "without zlib", bp__path_base(path));
#endif
}

bp_status bp__atomic_open(bp__atomic_file *w, char *err, const char *path)
{
    char why[128];
    const char *name = bp__path_base(path);
    const size_t plen = strlen(path);
    w->f = NULL;
    w->tmp = NULL;
    if (plen > SIZE_MAX - 64 || (w->tmp = malloc(plen + 64)) == NULL)
        return bp__fail(err, BP_ERR_NOMEM, "%s: out of memory", name);
    /* O_EXCL makes each name ours alone; a clash (another writer) tries the next one. */
    int fd = -1, e = 0;
    for (unsigned attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(w->tmp, plen + 64, "%s.tmp%ld.%u", path, (long)getpid(), attempt);
        fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        e = errno;
        if (fd < 0 && e != EEXIST) break;
    }
    if (fd < 0 || (w->f = fdopen(fd, "wb")) == NULL) {
        if (fd >= 0) {
            e = errno;
            close(fd);
            unlink(w->tmp);
        }
        free(w->tmp);
        w->tmp = NULL;
        return bp__fail(err, BP_ERR_IO, "%s: cannot create a temporary file beside it: %s", name,
                        os_reason(e, why, sizeof why));
    }
    return BP_OK;
}

void bp__atomic_abort(bp__atomic_file *w)
{
    if (w->f != NULL) fclose(w->f);
    if (w->tmp != NULL) {
        unlink(w->tmp);
        free(w->tmp);
    }
    w->f = NULL;
    w->tmp = NULL;
}

bp_status bp__atomic_commit(bp__atomic_file *w, char *err, const char *path)
{
    char why[128];
    const char *name = bp__path_base(path);
    int bad = fflush(w->f) != 0 || ferror(w->f);
    int e = errno;
    if (!bad && fsync(fileno(w->f)) != 0) {
        bad = 1;
        e = errno;
    }
    const int close_failed = fclose(w->f) != 0;
    w->f = NULL;
    if (!bad && close_failed) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(w->tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        bp__atomic_abort(w);
        return bp__fail(err, BP_ERR_IO, "%s: write failed: %s", name,
                        os_reason(e, why, sizeof why));
    }
    free(w->tmp);
    w->tmp = NULL;
    return BP_OK;
}

bp_status bp__c_locale_begin(bp__c_locale *l, char *err, const char *what)
{
    l->c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (l->c == (locale_t)0)
        return bp__fail(err, BP_ERR_NOMEM, "%s: cannot create the C locale", what);
    l->old = uselocale(l->c);
    return BP_OK;
}

void bp__c_locale_end(bp__c_locale *l)
{
    uselocale(l->old);
    freelocale(l->c);
}
