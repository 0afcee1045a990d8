#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void bp_test_assert_close(double a, double b, double rtol, double atol, const char *sa,
                          const char *sb, const char *file, int line)
{
    const double diff = fabs(a - b);
    if (!(diff <= atol + rtol * fabs(b))) {
        print_error("%s = %.9g is not close to %s = %.9g (rtol %g, atol %g)\n", sa, a, sb, b, rtol,
                    atol);
        _fail(file, line);
    }
}

void bp_test_assert_status(int got, int expected, const char *expr, const char *file, int line)
{
    if (got != expected) {
        print_error("%s returned %d (%s), expected %d (%s); last error: %s\n", expr, got,
                    bp_status_string(got), expected, bp_status_string(expected), bp_last_error());
        _fail(file, line);
    }
}

void bp_test_fill_uniform(float *v, size_t count, float lo, float hi, uint64_t *state)
{
    for (size_t i = 0; i < count; i++) {
        *state = *state * 6364136223846793005u + 1442695040888963407u;
        const double u = (double)(*state >> 40) / (double)(1u << 24);
        v[i] = (float)((double)lo + ((double)hi - (double)lo) * u);
    }
}

void *bp_test_alloc_fn(void *user, size_t size)
{
    bp_test_alloc *t = user;
    t->attempts++;
    if (t->fail_at > 0 && (long)t->attempts == t->fail_at) return NULL;
    void *p = malloc(size);
    if (p != NULL) {
        t->allocs++;
        t->live++;
    }
    return p;
}

/* Each block carries its size in a 16-byte prefix (keeps malloc's alignment). */
void *bp_test_bytes_alloc_fn(void *user, size_t size)
{
    bp_test_bytes *t = user;
    if (size > SIZE_MAX - 16) return NULL;
    unsigned char *p = malloc(size + 16);
    if (p == NULL) return NULL;
    memcpy(p, &size, sizeof size);
    t->live += size;
    t->peak = t->live > t->peak ? t->live : t->peak;
    t->largest = size > t->largest ? size : t->largest;
    return p + 16;
}

void bp_test_bytes_free_fn(void *user, void *p)
{
    bp_test_bytes *t = user;
    if (p == NULL) return;
    unsigned char *b = (unsigned char *)p - 16;
    size_t size;
    memcpy(&size, b, sizeof size);
    t->live -= size;
    free(b);
}

void bp_test_free_fn(void *user, void *p)
{
    bp_test_alloc *t = user;
    if (p != NULL) {
        t->frees++;
        t->live--;
    }
    free(p);
}

/* ---- The temporary directory of a test program ---- */

static char tmp_dir[256];

int bp_test_tmpdir_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/bp_test_XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    return mkdtemp(tmp_dir) == NULL ? -1 : 0;
}

/* Remove @p path and, for a directory, everything in it (symbolic links are removed, never
 * followed). */
static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    int rc = 0;
    struct dirent *e;
    char sub[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (remove_tree(sub) != 0) rc = -1;
    }
    closedir(d);
    return rmdir(path) != 0 ? -1 : rc;
}

int bp_test_tmpdir_teardown(void **state)
{
    (void)state;
    return remove_tree(tmp_dir);
}

size_t bp_test_tmp_entries_containing(const char *needle)
{
    DIR *d = opendir(tmp_dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

const char *bp_test_tmpdir(void)
{
    return tmp_dir;
}

const char *bp_test_tmp_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    return path;
}

const char *bp_test_write_tmp(const char *name, const void *bytes, size_t len)
{
    const char *path = bp_test_tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}
