/* fileio.c -- whole-file reads with transparent, bounded gzip, and atomic (temp + rename)
 * writes. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* flock (BSD, in glibc beside the POSIX names) */
#endif
#include "fileio.h"
#include "crc32_table.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef BP_HAVE_ZLIB
#define ZLIB_CONST
#include <zlib.h>
#endif

#ifndef NAME_MAX
#define NAME_MAX 255
#endif

const char *bp__path_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

const char *bp__path_label(char buf[BP__LABEL_CAP], const char *path)
{
    const char *base = bp__path_base(path);
    const size_t len = strlen(base);
    if (len <= 60) {
        memcpy(buf, base, len + 1);
    } else {
        memcpy(buf, base, 40);
        memcpy(buf + 40, "...", 3);
        memcpy(buf + 43, base + len - 16, 17);
    }
    return buf;
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

static const char *file_type(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/* read() that retries after signals; returns bytes read, 0 at the end, -1 on error. */
static ssize_t read_some(int fd, void *buf, size_t len)
{
    ssize_t r;
    do
        r = read(fd, buf, len > (size_t)SSIZE_MAX ? (size_t)SSIZE_MAX : len);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Read a regular file: opened without blocking (a FIFO's open would wait for a writer),
 * checked with fstat before any read, read into a buffer of its size (+ 1 for the NUL),
 * grown only if the file grows meanwhile. */
static bp_status read_raw(const bp__alloc *a, char *err, const char *path, unsigned char **data,
                          size_t *size)
{
    char why[128], name[BP__LABEL_CAP];
    bp__path_label(name, path);
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return bp__fail(err, BP_ERR_IO, "%s: cannot open: %s", name,
                        os_reason(errno, why, sizeof why));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        const int e = errno;
        close(fd);
        return bp__fail(err, BP_ERR_IO, "%s: cannot stat: %s", name, os_reason(e, why, sizeof why));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return bp__fail(err, BP_ERR_IO,
                        "%s: %s, not a regular file; only regular files are "
                        "read",
                        name, file_type(st.st_mode));
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size >= SIZE_MAX) {
        close(fd);
        return bp__fail(err, BP_ERR_NOMEM, "%s: %jd bytes do not fit in memory", name,
                        (intmax_t)st.st_size);
    }
    size_t cap = (size_t)st.st_size, len = 0;
    unsigned char *buf = bp__malloc(a, cap + 1);
    bp_status s = BP_OK;
    if (buf == NULL) {
        s = bp__fail(err, BP_ERR_NOMEM, "%s: out of memory for its %zu bytes", name, cap);
        goto done;
    }
    for (;;) {
        ssize_t got;
        if (len < cap) {
            got = read_some(fd, buf + len, cap - len);
        } else { /* at the size fstat gave: the end, unless the file grew */
            unsigned char one;
            got = read_some(fd, &one, 1);
            if (got > 0) {
                const size_t ncap = next_capacity(cap < 4096 ? 4096 : cap);
                if (ncap == cap || regrow(a, &buf, len, ncap) != 0) {
                    s = bp__fail(err, BP_ERR_NOMEM, "%s: out of memory after %zu bytes", name, len);
                    goto done;
                }
                cap = ncap;
                buf[len] = one;
            }
        }
        if (got < 0) {
            s = bp__fail(err, BP_ERR_IO, "%s: read failed: %s", name,
                         os_reason(errno, why, sizeof why));
            goto done;
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    buf[len] = '\0';
    *data = buf;
    *size = len;
    buf = NULL;
done:
    bp__free(a, buf);
    close(fd);
    return s;
}

#ifdef BP_HAVE_ZLIB
/* ---- checks on the first decompressed bytes --------------------------------------------- */

#define TEXT_PROBE_BYTES 4096u

/* The model file header (docs/format.md): magic, u32 version, u32 flags, u64 total length.
 * serialize.c checks all of it again; here it only stops a stream that is not a model, or
 * that goes on past the length its header gives, before it is decompressed further. */
static const unsigned char model_magic[8] = {0x89, 'B', 'P', 'M', '\r', '\n', 0x1a, '\n'};
#define MODEL_HEADER_BYTES   24u
#define MODEL_FORMAT_VERSION ((uint32_t)BP_FORMAT_VERSION)

static uint64_t le_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t be_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Check the first @p len decompressed bytes (@p at_end: the stream has no more) as @p kind
 * says. Returns BP_OK with *need = 0 when done, *expect the exact decompressed size the
 * header announces (0: unknown); or BP_OK with *need > len when the check needs more bytes;
 * or a failure. */
static bp_status probe(int kind, char *err, const char *name, const unsigned char *b, size_t len,
                       int at_end, size_t *need, size_t *expect)
{
    *need = 0;
    *expect = 0;
    if (kind == BP__READ_MODEL) {
        const size_t m = len < sizeof model_magic ? len : sizeof model_magic;
        if (memcmp(b, model_magic, m) != 0 || (at_end && len < sizeof model_magic))
            return bp__fail(err, BP_ERR_FORMAT,
                            "%s: not a backprop model file (bad magic "
                            "number in the decompressed data)",
                            name);
        if (len < MODEL_HEADER_BYTES) {
            *need = at_end ? 0 : MODEL_HEADER_BYTES; /* short: the decoder says truncated */
            return BP_OK;
        }
        const uint32_t version =
            (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24;
        const uint64_t total = le_u64(b + 16);
        /* A later version may change everything after byte 16: the decoder reports it. */
        if (version >= 1 && version <= MODEL_FORMAT_VERSION)
            *expect = total > SIZE_MAX - 1 ? SIZE_MAX - 1 : (size_t)total;
        return BP_OK;
    }
    if (kind == BP__READ_IDX) {
        if (len < 4) {
            *need = at_end ? 0 : 4; /* short: the parser says too short */
            return BP_OK;
        }
        if (b[0] != 0 || b[1] != 0 || b[2] != 0x08)
            return bp__fail(err, BP_ERR_FORMAT,
                            "%s: magic 0x%08lx is not an unsigned-byte IDX "
                            "file (in the decompressed data)",
                            name, (unsigned long)be_u32(b));
        const size_t header = 4 + 4 * (size_t)b[3];
        if (len < header) {
            *need = at_end ? 0 : header;
            return BP_OK;
        }
        size_t total = 1;
        for (unsigned d = 0; d < b[3]; d++)
            if (bp__mul_size(total, be_u32(b + 4 + 4 * d), &total) != 0) total = SIZE_MAX;
        *expect = b[3] == 0 || total > SIZE_MAX - 1 - header ? 0 : header + total;
        return BP_OK;
    }
    if (kind == BP__READ_TEXT) {
        if (len < TEXT_PROBE_BYTES && !at_end) {
            *need = TEXT_PROBE_BYTES;
            return BP_OK;
        }
        const size_t m = len < TEXT_PROBE_BYTES ? len : TEXT_PROBE_BYTES;
        const unsigned char *nul = memchr(b, 0, m);
        if (nul != NULL)
            return bp__fail(err, BP_ERR_FORMAT,
                            "%s: byte %zu of the decompressed data is NUL: "
                            "binary data, not a text file",
                            name, (size_t)(nul - b));
    }
    return BP_OK;
}

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    return bp__calloc(opaque, items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    bp__free(opaque, p);
}

/* Decompress @p src (all gzip members) into a buffer that grows with the output, up to
 * @p limit bytes or, once the first bytes announce it, the exact size expected. */
/* The stream produced more than @p expect bytes (the size its header announces, when known)
 * or more than the limit @p max_out. */
static bp_status too_long(char *err, const char *name, size_t expect, size_t max_out)
{
    if (expect > 0)
        return bp__fail(err, BP_ERR_FORMAT,
                        "%s: decompresses to more than the %zu bytes its header announces", name,
                        expect);
    return bp__fail(err, BP_ERR_OUT_OF_RANGE,
                    "%s: decompresses to more than the limit of %zu bytes", name, max_out);
}

static bp_status gunzip(const bp__alloc *a, char *err, const char *name, int kind, size_t limit,
                        const unsigned char *src, size_t srclen, unsigned char **data, size_t *size)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    zs.opaque = (voidpf)(uintptr_t)a; /* only passed back to bp__calloc/bp__free */
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return bp__fail(err, BP_ERR_NOMEM, "%s: cannot start gzip decompression", name);
    /* max_out: the most output allowed. The buffer never grows past it: once it is full,
     * one more byte is asked for into `extra`, and getting one means the stream is too long. */
    size_t max_out = limit, need = 1, expect = 0;
    size_t cap = srclen < SIZE_MAX / 4 - 1 ? srclen * 4 : SIZE_MAX / 4;
    if (cap < 4096) cap = 4096;
    if (cap > max_out) cap = max_out;
    size_t len = 0, in_left = srclen;
    const unsigned char *in = src;
    unsigned char *buf = bp__malloc(a, cap + 1);
    bp_status st = BP_OK;
    if (buf == NULL) {
        st = bp__fail(err, BP_ERR_NOMEM, "%s: out of memory decompressing", name);
        goto done;
    }
    for (;;) {
        unsigned char extra;
        const int full = len >= cap && cap >= max_out;
        if (len == cap && !full) {
            size_t ncap = next_capacity(cap);
            /* Up to the limit at once when the step after this one would be a small one:
             * 66 MB -> 67 MB would hold both blocks for one more megabyte. */
            if (ncap > max_out || max_out - ncap < ncap / 2) ncap = max_out;
            if (ncap == cap || regrow(a, &buf, len, ncap) != 0) {
                st = bp__fail(err, BP_ERR_NOMEM, "%s: out of memory after %zu decompressed bytes",
                              name, len);
                goto done;
            }
            cap = ncap;
        }
        const uInt avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        const uInt avail_out = full ? 1 : cap - len > UINT_MAX ? UINT_MAX : (uInt)(cap - len);
        zs.next_in = in;
        zs.avail_in = avail_in;
        zs.next_out = full ? &extra : buf + len;
        zs.avail_out = avail_out;
        const int r = inflate(&zs, Z_NO_FLUSH);
        in += avail_in - zs.avail_in;
        in_left -= avail_in - zs.avail_in;
        if (full && zs.avail_out == 0) {
            st = too_long(err, name, expect, max_out);
            goto done;
        }
        if (!full) len += avail_out - zs.avail_out;
        const int at_end = r == Z_STREAM_END && in_left == 0;
        if (need > 0 && (len >= need || at_end)) {
            st = probe(kind, err, name, buf, len, at_end, &need, &expect);
            if (st != BP_OK) goto done;
            if (need == 0 && expect > 0) {
                if (expect > max_out) {
                    st = bp__fail(err, BP_ERR_OUT_OF_RANGE,
                                  "%s: its header announces %zu bytes, "
                                  "more than the decompression limit of %zu",
                                  name, expect, max_out);
                    goto done;
                }
                max_out = expect;
            }
        }
        if (len > max_out) {
            st = too_long(err, name, expect, max_out);
            goto done;
        }
        if (r == Z_STREAM_END) {
            if (in_left == 0) break;
            if (in_left >= 2 && in[0] == 0x1f && in[1] == 0x8b) { /* another member */
                inflateReset(&zs);
                continue;
            }
            st = bp__fail(err, BP_ERR_FORMAT,
                          "%s: %zu bytes of trailing data after the gzip "
                          "stream",
                          name, in_left);
            goto done;
        }
        if (r == Z_OK || (r == Z_BUF_ERROR && len == cap && !full)) continue;
        if (r == Z_BUF_ERROR) {
            st = bp__fail(err, BP_ERR_FORMAT,
                          "%s: truncated gzip stream (ends after %zu "
                          "decompressed bytes)",
                          name, len);
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

size_t bp__decompress_limit_default(size_t compressed)
{
    const size_t lo = (size_t)64 << 20, hi = (size_t)1 << 30;
    return compressed > hi / 128 ? hi : compressed * 128 < lo ? lo : compressed * 128;
}

bp_status bp__read_file_as(const bp__alloc *a, char *err, const char *path, int kind, size_t limit,
                           unsigned char **data, size_t *size)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    char name[BP__LABEL_CAP];
    *data = NULL;
    *size = 0;
    BP_CHECK(read_raw(a, err, path, &raw, &len));
    if (len < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
        *data = raw;
        *size = len;
        return BP_OK;
    }
    bp__path_label(name, path);
#ifdef BP_HAVE_ZLIB
    const bp_status st =
        gunzip(a, err, name, kind, limit == 0 ? bp__decompress_limit_default(len) : limit, raw, len,
               data, size);
    bp__free(a, raw);
    return st;
#else
    (void)kind;
    (void)limit;
    bp__free(a, raw);
    return bp__fail(err, BP_ERR_UNSUPPORTED,
                    "%s: gzip-compressed, but libbackprop was built "
                    "without zlib",
                    name);
#endif
}

bp_status bp__read_file(const bp__alloc *a, char *err, const char *path, unsigned char **data,
                        size_t *size)
{
    return bp__read_file_as(a, err, path, BP__READ_ANY, 0, data, size);
}

/* ---- atomic replacement ------------------------------------------------------------------ */

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif
#define TMP_SLOTS      64u
#define TMP_SUFFIX     ".tmp-bp" /* + two digits: ".<name>.tmp-bpNN" */
#define TMP_SUFFIX_LEN 9u
#define MAX_LINKS      40u

/* May the link @p link (lstat @p st) be followed? Linux's fs.protected_symlinks rule, which
 * resolving links by hand would otherwise bypass: not a link in a sticky world-writable
 * directory (/tmp) owned by someone other than us and the directory's owner, so that a link
 * planted there cannot make a save replace the planter's choice of file. */
static int link_may_be_followed(const char *link, const struct stat *st)
{
    const char *slash = strrchr(link, '/');
    char *dir = slash == NULL ? strdup(".") : strdup(link);
    if (dir == NULL) return 1; /* the follow then fails on its own allocation */
    if (slash != NULL) dir[slash == link ? 1 : slash - link] = '\0';
    struct stat ds;
    const int ok = stat(dir, &ds) != 0 || !(ds.st_mode & S_ISVTX) || !(ds.st_mode & S_IWOTH) ||
                   st->st_uid == geteuid() || st->st_uid == ds.st_uid;
    free(dir);
    return ok;
}

/* The file a save to @p path replaces: @p path, or the file its symbolic links lead to
 * (a relative link is resolved against the link's directory). malloc'd; NULL with errno. */
static char *resolve_links(const char *path)
{
    char *cur = strdup(path);
    for (unsigned hops = 0; cur != NULL; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) return cur; /* ENOENT: a new file */
        if (!link_may_be_followed(cur, &st)) {
            free(cur);
            errno = EACCES;
            return NULL;
        }
        char *link = hops < MAX_LINKS ? malloc(PATH_MAX + 1) : NULL;
        const int e0 = hops < MAX_LINKS ? ENOMEM : ELOOP;
        const ssize_t n = link != NULL ? readlink(cur, link, PATH_MAX + 1) : -1;
        if (n < 0 || n > PATH_MAX) {
            const int e = link == NULL ? e0 : n < 0 ? errno : ENAMETOOLONG;
            free(link);
            free(cur);
            errno = e;
            return NULL;
        }
        link[n] = '\0';
        const char *slash = strrchr(cur, '/');
        char *next = link;
        if (link[0] != '/' && slash != NULL) {
            const size_t dir = (size_t)(slash - cur) + 1;
            next = malloc(dir + (size_t)n + 1);
            if (next != NULL) {
                memcpy(next, cur, dir);
                memcpy(next + dir, link, (size_t)n + 1);
            }
            free(link);
        }
        free(cur);
        cur = next;
    }
    errno = ENOMEM;
    return NULL;
}

static void put_slot(char *tmp, size_t at, unsigned slot)
{
    tmp[at] = (char)('0' + slot / 10);
    tmp[at + 1] = (char)('0' + slot % 10);
}

/* Remove the temporary files of this target that nobody holds locked: a saving process
 * locks its file until it is renamed or removed, so an unlocked one was left by a process
 * that died. The same inode check keeps a file created meanwhile under that name. */
static void remove_stale(char *tmp, size_t at)
{
    for (unsigned s = 0; s < TMP_SLOTS; s++) {
        put_slot(tmp, at, s);
        const int fd = open(tmp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat held, named;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 && lstat(tmp, &named) == 0 &&
            S_ISREG(held.st_mode) && held.st_dev == named.st_dev && held.st_ino == named.st_ino)
            unlink(tmp);
        close(fd);
    }
}

static void atomic_release(bp__atomic_file *w)
{
    free(w->tmp);
    free(w->target);
    w->f = NULL;
    w->tmp = NULL;
    w->target = NULL;
}

bp_status bp__atomic_open(bp__atomic_file *w, char *err, const char *path)
{
    char why[128], name[BP__LABEL_CAP];
    bp__path_label(name, path);
    w->f = NULL;
    w->tmp = NULL;
    w->target = resolve_links(path);
    if (w->target == NULL) {
        const int e = errno;
        return bp__fail(err, e == ENOMEM ? BP_ERR_NOMEM : BP_ERR_IO,
                        "%s: cannot follow its "
                        "symbolic link: %s",
                        name, os_reason(e, why, sizeof why));
    }
    /* ".<name>.tmp-bpNN" in the target's directory, <name> cut to fit NAME_MAX. */
    const char *base = bp__path_base(w->target);
    const size_t dir = (size_t)(base - w->target), blen = strlen(base);
    const size_t keep = blen < NAME_MAX - 1 - TMP_SUFFIX_LEN ? blen : NAME_MAX - 1 - TMP_SUFFIX_LEN;
    w->tmp = malloc(dir + 1 + keep + TMP_SUFFIX_LEN + 1);
    if (w->tmp == NULL) {
        atomic_release(w);
        return bp__fail(err, BP_ERR_NOMEM, "%s: out of memory", name);
    }
    memcpy(w->tmp, w->target, dir);
    w->tmp[dir] = '.';
    memcpy(w->tmp + dir + 1, base, keep);
    memcpy(w->tmp + dir + 1 + keep, TMP_SUFFIX "00", TMP_SUFFIX_LEN + 1);
    const size_t at = dir + 1 + keep + TMP_SUFFIX_LEN - 2;
    remove_stale(w->tmp, at);
    int fd = -1, e = EEXIST;
    for (unsigned s = 0; s < TMP_SLOTS && fd < 0; s++) {
        put_slot(w->tmp, at, s);
        fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0666);
        if (fd < 0) {
            e = errno;
            if (e != EEXIST) break;
            continue;
        }
        /* Held by another process's remove_stale (which then unlinks it), or already
         * unlinked by one: take the next name. Without flock support, go on unlocked. */
        struct stat st;
        const int locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
        if ((!locked && errno == EWOULDBLOCK) || fstat(fd, &st) != 0 || st.st_nlink == 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0 && (w->f = fdopen(fd, "wb")) == NULL) {
        e = errno;
        unlink(w->tmp);
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        atomic_release(w);
        return bp__fail(err, e == ENOMEM ? BP_ERR_NOMEM : BP_ERR_IO,
                        "%s: cannot create a "
                        "temporary file beside it: %s",
                        name,
                        e == EEXIST ? "all 64 temporary names are in use"
                                    : os_reason(e, why, sizeof why));
    }
    return BP_OK;
}

void bp__atomic_abort(bp__atomic_file *w)
{
    if (w->tmp != NULL && w->f != NULL) unlink(w->tmp); /* still locked: nobody else's */
    if (w->f != NULL) fclose(w->f);
    atomic_release(w);
}

/* Give the temporary file the permission bits and, where permitted, the owner and group of
 * the file it replaces (none: keep 0666 less the umask). Returns 0 or an errno value. */
static int keep_mode_and_owner(int fd, const char *target)
{
    struct stat old, now;
    if (stat(target, &old) != 0 || !S_ISREG(old.st_mode) || fstat(fd, &now) != 0) return 0;
    if ((old.st_uid != now.st_uid || old.st_gid != now.st_gid) &&
        fchown(fd, old.st_uid, old.st_gid) != 0 && old.st_gid != now.st_gid)
        (void)!fchown(fd, (uid_t)-1, old.st_gid); /* not permitted: the group at least */
    return fchmod(fd, old.st_mode & 0777) != 0 ? errno : 0;
}

/* Sync the directory holding @p target, so that the rename survives a crash. File systems
 * that cannot sync a directory (EINVAL) are not an error. Returns 0 or an errno value. */
static int sync_dir(const char *target)
{
    const char *base = bp__path_base(target);
    char *dir = base == target ? strdup(".") : strdup(target);
    if (dir == NULL) return ENOMEM;
    if (base != target) dir[base - target > 1 ? base - target - 1 : 1] = '\0';
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = fd < 0 ? errno : 0;
    if (fd >= 0 && fsync(fd) != 0 && errno != EINVAL && errno != EROFS) e = errno;
    if (fd >= 0) close(fd);
    free(dir);
    return e;
}

bp_status bp__atomic_commit(bp__atomic_file *w, char *err, const char *path)
{
    char why[128], name[BP__LABEL_CAP];
    bp__path_label(name, path);
    /* errno still holds the reason of a failed fwrite (ferror), or gets fflush's. */
    int bad = fflush(w->f) != 0 || ferror(w->f);
    int e = errno != 0 ? errno : EIO;
    const int fd = fileno(w->f);
    if (!bad && (e = keep_mode_and_owner(fd, w->target)) != 0) bad = 1;
    if (!bad && fsync(fd) != 0) {
        bad = 1;
        e = errno;
    }
    /* Rename while the file is still open and locked, so that no other save takes it for a
     * stale one; the data is synced, so closing has nothing left to report. */
    if (!bad && rename(w->tmp, w->target) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        bp__atomic_abort(w);
        return bp__fail(err, BP_ERR_IO, "%s: write failed: %s", name,
                        os_reason(e, why, sizeof why));
    }
    fclose(w->f);
    w->f = NULL;
    e = sync_dir(w->target);
    atomic_release(w);
    if (e != 0)
        return bp__fail(err, BP_ERR_IO, "%s: written, but syncing its directory failed: %s", name,
                        os_reason(e, why, sizeof why));
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

/* CRC-32 (IEEE 802.3, zlib's crc32), declared in util.h: the one implementation, for model
 * files and data-set files alike. Slice-by-8: eight bytes per step through eight constant
 * tables (crc32_table.h), so there is nothing to build at run time and nothing shared
 * between threads to guard. */
uint32_t bp__crc32(uint32_t crc, const void *data, size_t size)
{
    const uint32_t(*t)[256] = bp__crc32_table;
    const unsigned char *p = data;
    crc = ~crc;
    while (size >= 8) {
        const uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                   (uint32_t)p[3] << 24);
        const uint32_t hi =
            (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^
              t[4][lo >> 24] ^ t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^
              t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
        p += 8;
        size -= 8;
    }
    while (size--)
        crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFFu];
    return ~crc;
}
