/*
 * fileio.h -- whole-file reads (plain or gzip, detected by magic bytes) and atomic writes.
 *
 * Shared by the loaders in dataset_io.c and serialize.c. Every failure is recorded through
 * bp__fail(err, ...) with the file's (shortened) base name and the operating system's reason.
 */
#ifndef BP_FILEIO_H
#define BP_FILEIO_H

#include "util.h"

#include <locale.h>
#include <stdio.h>

/* The last component of @p path, for messages ("data/iris.csv" -> "iris.csv"). */
const char *bp__path_base(const char *path);

/* The base name of @p path shortened to fit a message: names of up to 60 bytes as they are,
 * longer ones as their first 40 bytes, "...", and their last 16 (a NAME_MAX file name would
 * otherwise fill the message and cut off the reason). Returns @p buf. */
#define BP__LABEL_CAP 64
const char *bp__path_label(char buf[BP__LABEL_CAP], const char *path);

/* What a file is read as: the checks made on the first bytes of a decompressed stream,
 * before the rest is decompressed (plain files are checked by their parsers). */
enum bp__read_kind {
    BP__READ_ANY = 0,   /* no check */
    BP__READ_MODEL = 1, /* the model/checkpoint magic (docs/format.md); a version-1 header's
                           total length bounds the stream exactly */
    BP__READ_IDX = 2,   /* an unsigned-byte IDX magic; its dimensions bound the stream */
    BP__READ_TEXT = 3   /* no NUL byte in the first 4 KiB (CSV, FANN) */
};

/* Decompressed size allowed when the caller passes 0 as the limit: 128 times the compressed
 * size, but at least 64 MiB and at most 1 GiB (a ratio above 128 is rare in real data and
 * the rule of zip-bomb guards such as Apache POI's minimum inflate ratio). */
size_t bp__decompress_limit_default(size_t compressed);

/* Read the whole file at @p path into a new buffer allocated from @p a, followed by one
 * NUL byte that is not counted in *size (so text parsers may stop on it). The file is
 * opened without blocking and must be a regular file (a FIFO, device or directory is
 * BP_ERR_IO at once); a plain file takes its size plus one byte. A file starting with the
 * gzip magic 1f 8b is decompressed (all members), checked as @p kind says on its first
 * bytes, and may decompress to at most @p limit bytes (0: bp__decompress_limit_default(file size),
 * SIZE_MAX: no limit; BP_ERR_OUT_OF_RANGE beyond); the buffer grows with the output
 * actually produced, never to a size a header merely announces. Without zlib a gzip file is
 * BP_ERR_UNSUPPORTED. Returns BP_OK, BP_ERR_IO, BP_ERR_FORMAT (corrupt or truncated gzip,
 * failed check), BP_ERR_OUT_OF_RANGE, BP_ERR_UNSUPPORTED or BP_ERR_NOMEM; on failure *data
 * is NULL. Free with bp__free(a, ...). */
bp_status bp__read_file_as(const bp__alloc *a, char *err, const char *path, int kind, size_t limit,
                           unsigned char **data, size_t *size);
/* bp__read_file_as(a, err, path, BP__READ_ANY, 0, data, size). */
bp_status bp__read_file(const bp__alloc *a, char *err, const char *path, unsigned char **data,
                        size_t *size);

/* Atomic replacement of a file: write to a temporary file in the same directory, then
 * rename it over the target, so readers see the old or the new contents, never a mix.
 *
 * - A symbolic link at the path is written through: the file it leads to (after up to 40
 *   links) is replaced, the link stays. A link in a sticky world-writable directory owned by
 *   neither us nor the directory's owner is refused (EACCES), as fs.protected_symlinks does.
 * - The temporary file is ".<name>.~bpNN" (NN = 00 .. 63; <name> cut to fit NAME_MAX) beside
 *   the target, locked (flock) while in use. Open first removes the unlocked ones of that
 *   pattern for the same target: left behind by a process killed while saving.
 * - The new file gets the permission bits, and where the process may set them the owner and
 *   group, of the file it replaces; a new file gets 0666 less the umask.
 * - Commit syncs the file, renames it, then syncs the directory. */
typedef struct bp__atomic_file {
    FILE *f;      /* write here between open and commit */
    char *tmp;    /* temporary path (malloc) */
    char *target; /* the file replaced: the path, or where its symbolic links lead (malloc) */
} bp__atomic_file;

/* Create the temporary file for @p path. On failure nothing is left behind and @p w is
 * released. */
bp_status bp__atomic_open(bp__atomic_file *w, char *err, const char *path);
/* Flush and sync the temporary file, give it the replaced file's mode and owner, rename it
 * over the target and sync the directory. On failure before the rename, the temporary file
 * is removed and the target is untouched. Always releases @p w. @p path names the file in
 * messages. */
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
