/*
 * fileio.h -- whole-file reads (plain or gzip, detected by magic bytes) and atomic writes.
 *
 * Shared by the loaders in dataset.c and usable by serialize.c. Every failure is recorded
 * through bp__fail(err, ...) with the file's base name and the operating system's reason.
 */
#ifndef BP_FILEIO_H
#define BP_FILEIO_H

#include "util.h"

#include <locale.h>
#include <stdio.h>

/* The last component of @p path, for messages ("data/iris.csv" -> "iris.csv"). */
const char *bp__path_base(const char *path);

/* Read the whole file at @p path into a new buffer allocated from @p a, followed by one
 * NUL byte that is not counted in *size (so text parsers may stop on it). A file starting
 * with the gzip magic 1f 8b is decompressed (all members); without zlib that is
 * BP_ERR_UNSUPPORTED. Returns BP_OK, BP_ERR_IO, BP_ERR_FORMAT (corrupt or truncated gzip),
 * BP_ERR_UNSUPPORTED or BP_ERR_NOMEM; on failure *data is NULL. Free with bp__free(a, ...). */
bp_status bp__read_file(const bp__alloc *a, char *err, const char *path, unsigned char **data,
                        size_t *size);

/* Atomic replacement of a file: write to a temporary file in the same directory, then
 * rename it over the target, so readers see the old or the new contents, never a mix. */
typedef struct bp__atomic_file {
    FILE *f;   /* write here between open and commit */
    char *tmp; /* temporary path (malloc) */
} bp__atomic_file;

/* Create the temporary file beside @p path (mode 0666 less the umask). */
bp_status bp__atomic_open(bp__atomic_file *w, char *err, const char *path);
/* Flush, sync and close the temporary file, then rename it to @p path. On failure the
 * temporary file is removed and @p path is untouched. Always releases @p w. */
bp_status bp__atomic_commit(bp__atomic_file *w, char *err, const char *path);
/* Discard the temporary file (after a failed write). Accepts a released @p w. */
void bp__atomic_abort(bp__atomic_file *w);

/* The C locale for the calling thread while numbers are parsed or printed ('.' as the
 * decimal point whatever the caller's locale); uselocale() is per thread, and _end restores
 * the caller's locale. _begin fails with BP_ERR_NOMEM ("<what>: cannot create the C
 * locale"). */
typedef struct bp__c_locale {
    locale_t c, old;
} bp__c_locale;
bp_status bp__c_locale_begin(bp__c_locale *l, char *err, const char *what);
void bp__c_locale_end(bp__c_locale *l);

#endif /* BP_FILEIO_H */
