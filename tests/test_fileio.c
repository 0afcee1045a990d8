/* test_fileio.c -- file reading (regular files only, exact sizes, bounded gzip with checks on
 * the first decompressed bytes) and atomic saves (mode and owner kept, symbolic links written
 * through, names up to NAME_MAX, stale temporary files removed, directory synced). */
#define _DEFAULT_SOURCE /* syscall() for the fsync interposer */
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef BP_HAVE_ZLIB
#include <zlib.h>
#endif

#include "util.h"
#include "dataset.h"
#include "fileio.h"

#ifndef NAME_MAX
#define NAME_MAX 255
#endif

/* @p name inside the temporary directory (static buffer per slot). */
static const char *in_dir(int slot, const char *name)
{
    static char paths[4][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", bp_test_tmpdir(), name);
    return paths[slot];
}

static void write_file(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Entries of the temporary directory whose name contains ".tmp". */
static int temp_files_left(void)
{
    return (int)bp_test_tmp_entries_containing(".tmp");
}

static void assert_error_contains(const char *needle)
{
    if (strstr(bp_last_error(), needle) == NULL) {
        print_error("bp_last_error() = \"%s\" lacks \"%s\"\n", bp_last_error(), needle);
        fail();
    }
}

static bp_net *make_net(void)
{
    bp_net *net;
    assert_status(bp_net_create(&net, 3, 7), BP_OK);
    assert_status(bp_net_add_dense(net, 4, BP_ACT_TANH), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_SOFTMAX), BP_OK);
    return net;
}

static void assert_same_prediction(bp_net *a, bp_net *b)
{
    const float x[3] = {0.5f, -1.0f, 2.0f};
    float ya[2], yb[2];
    assert_status(bp_net_predict(a, x, 1, ya, 2), BP_OK);
    assert_status(bp_net_predict(b, x, 1, yb, 2), BP_OK);
    assert_memory_equal(ya, yb, sizeof ya);
}

static unsigned char *model_image(bp_net *net, size_t *len)
{
    assert_status(bp_net_save_buffer(net, NULL, 0, len), BP_ERR_BUFFER_TOO_SMALL);
    unsigned char *b = malloc(*len);
    assert_non_null(b);
    assert_status(bp_net_save_buffer(net, b, *len, len), BP_OK);
    return b;
}

/* fsync interposer: the library's calls land here (the test links the static library), so
 * the test sees which descriptors were synced: files and directories. */
static int file_syncs, dir_syncs;

int fsync(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            dir_syncs++;
        else
            file_syncs++;
    }
    return (int)syscall(SYS_fsync, fd);
}

/* ---- reading ---------------------------------------------------------------------------- */

static void non_regular_files_fail_at_once_without_blocking(void **state)
{
    (void)state;
    /* A FIFO nobody writes to blocked open() forever; /dev/zero grew until out of memory. A
     * hang becomes a failure through the alarm. */
    alarm(30);
    const char *fifo = in_dir(0, "a_fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *dir = in_dir(1, "a_dir");
    assert_int_equal(mkdir(dir, 0700), 0);
    const char *paths[] = {fifo, "/dev/zero", dir, "/dev/null"};
    const char *kinds[] = {"a FIFO", "a character device", "a directory", "a character device"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        unsigned char *data = (unsigned char *)&data;
        size_t size = 7;
        assert_status(bp__read_file(&bp__default_alloc, NULL, paths[i], &data, &size), BP_ERR_IO);
        assert_null(data);
        assert_error_contains(kinds[i]);
        assert_error_contains("not a regular file");
        bp_net *net = (bp_net *)&net;
        assert_status(bp_net_load(&net, paths[i]), BP_ERR_IO);
        assert_null(net);
        bp_optimizer *opt;
        assert_status(bp_checkpoint_load(&net, &opt, paths[i]), BP_ERR_IO);
        bp_dataset *ds = (bp_dataset *)&ds;
        assert_status(bp_dataset_load_csv(&ds, paths[i], ',', 0, 0, 1), BP_ERR_IO);
        assert_null(ds);
        assert_status(bp_dataset_load_fann(&ds, paths[i]), BP_ERR_IO);
        assert_status(bp_dataset_load_idx(&ds, paths[i], paths[i], 0), BP_ERR_IO);
    }
    alarm(0);
}

static void a_plain_file_takes_its_size_and_no_more(void **state)
{
    (void)state;
    char text[100];
    memset(text, '7', sizeof text);
    const char *path = in_dir(0, "hundred.txt");
    write_file(path, text, sizeof text);
    bp_test_bytes tb = {0, 0, 0};
    const bp__alloc a = {bp_test_bytes_alloc_fn, bp_test_bytes_free_fn, &tb};
    unsigned char *data;
    size_t size;
    assert_status(bp__read_file(&a, NULL, path, &data, &size), BP_OK);
    assert_int_equal(size, sizeof text);
    assert_int_equal(data[size], 0);
    assert_memory_equal(data, text, sizeof text);
    assert_int_equal(tb.peak, sizeof text + 1); /* was 64 KiB whatever the size */
    bp__free(&a, data);
    assert_int_equal(tb.live, 0);
    /* An empty file. */
    write_file(path, "", 0);
    assert_status(bp__read_file(&a, NULL, path, &data, &size), BP_OK);
    assert_int_equal(size, 0);
    assert_int_equal(data[0], 0);
    bp__free(&a, data);
    assert_int_equal(tb.live, 0);
}

#ifdef BP_HAVE_ZLIB
/* gzip (one member) of @p len bytes. */
static unsigned char *gzip_bytes(const void *src, size_t len, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
    const size_t cap = deflateBound(&zs, (uLong)len) + 64;
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

static void write_gzip(const char *path, const void *src, size_t len)
{
    size_t gz_len;
    unsigned char *gz = gzip_bytes(src, len, &gz_len);
    write_file(path, gz, gz_len);
    free(gz);
}

/* 64 MiB + 1 of zeros in a ~64 KiB gzip file: every loader used to decompress all of it
 * (with a doubling buffer: 2x) before finding that it is no model, text or IDX file. */
static void a_gzip_bomb_stops_after_its_first_bytes(void **state)
{
    (void)state;
    const size_t big = ((size_t)64 << 20) + 1;
    unsigned char *zeros = calloc(big, 1);
    assert_non_null(zeros);
    const char *path = in_dir(0, "zeros.gz");
    write_gzip(path, zeros, big);
    free(zeros);
    const size_t bound = (size_t)1 << 20; /* the file, 4x it for output, zlib's state */
    const int kinds[] = {BP__READ_MODEL, BP__READ_TEXT, BP__READ_IDX};
    const char *why[] = {"bad magic", "NUL", "not an unsigned-byte IDX"};
    for (size_t k = 0; k < 3; k++) {
        bp_test_bytes tb = {0, 0, 0};
        const bp__alloc a = {bp_test_bytes_alloc_fn, bp_test_bytes_free_fn, &tb};
        unsigned char *data;
        size_t size;
        assert_status(bp__read_file_as(&a, NULL, path, kinds[k], 0, &data, &size), BP_ERR_FORMAT);
        assert_error_contains(why[k]);
        assert_true(tb.peak < bound);
        assert_int_equal(tb.live, 0);
    }
    /* Through the public loaders, with their allocators. */
    bp_test_bytes tb = {0, 0, 0};
    bp_net *net;
    assert_status(bp_net_load_ex(&net, path, bp_test_bytes_alloc_fn, bp_test_bytes_free_fn, &tb),
                  BP_ERR_FORMAT);
    assert_error_contains("zeros.gz: not a backprop model file");
    assert_true(tb.peak < bound);
    bp_optimizer *opt;
    tb.peak = 0;
    assert_status(
        bp_checkpoint_load_ex(&net, &opt, path, bp_test_bytes_alloc_fn, bp_test_bytes_free_fn, &tb),
        BP_ERR_FORMAT);
    assert_true(tb.peak < bound);
    const bp__alloc a = {bp_test_bytes_alloc_fn, bp_test_bytes_free_fn, &tb};
    bp_dataset *ds;
    tb.peak = 0;
    assert_status(bp__dataset_load_csv_with(&ds, &a, path, ',', 0, 0, 1, 0), BP_ERR_FORMAT);
    assert_true(tb.peak < bound);
    tb.peak = 0;
    assert_status(bp__dataset_load_fann_with(&ds, &a, path, 0), BP_ERR_FORMAT);
    assert_true(tb.peak < bound);
    tb.peak = 0;
    assert_status(bp__dataset_load_idx_with(&ds, &a, path, path, 0, 0), BP_ERR_FORMAT);
    assert_true(tb.peak < bound);
    assert_int_equal(tb.live, 0);
    /* Unchecked, the default limit applies: 64 MiB for a file this small. */
    unsigned char *data;
    size_t size;
    assert_status(bp__read_file_as(&a, NULL, path, BP__READ_ANY, 0, &data, &size),
                  BP_ERR_OUT_OF_RANGE);
    assert_error_contains("decompresses to more than the limit of 67108864 bytes");
    assert_true(tb.peak < big + big / 2 + bound); /* the output, its last doubling, the file */
    assert_status(bp__read_file_as(&a, NULL, path, BP__READ_ANY, SIZE_MAX, &data, &size), BP_OK);
    assert_int_equal(size, big);
    bp__free(&a, data);
    assert_int_equal(tb.live, 0);
}

static void the_default_limit_is_128_times_the_file_within_64_mib_and_1_gib(void **state)
{
    (void)state;
    const size_t mib = (size_t)1 << 20;
    assert_int_equal(bp__decompress_limit_default(0), 64 * mib);
    assert_int_equal(bp__decompress_limit_default(64 * mib / 128), 64 * mib);
    assert_int_equal(bp__decompress_limit_default(mib), 128 * mib);
    assert_int_equal(bp__decompress_limit_default(8 * mib), 1024 * mib);
    assert_int_equal(bp__decompress_limit_default(8 * mib + 1), 1024 * mib);
    assert_int_equal(bp__decompress_limit_default(SIZE_MAX), 1024 * mib);
}

/* A gzip model followed by 16 MiB of zeros in the same stream: the header's length bounds
 * the stream, so the loader stops just past it; a valid gzip model still loads. */
static void a_gzip_model_may_not_run_past_its_header_length(void **state)
{
    (void)state;
    bp_net *net = make_net();
    size_t len;
    unsigned char *img = model_image(net, &len);
    const char *good = in_dir(0, "model.bpm.gz");
    write_gzip(good, img, len);
    bp_net *back;
    assert_status(bp_net_load(&back, good), BP_OK);
    assert_same_prediction(net, back);
    bp_net_free(back);

    const size_t extra = (size_t)16 << 20;
    unsigned char *padded = calloc(len + extra, 1);
    assert_non_null(padded);
    memcpy(padded, img, len);
    const char *bad = in_dir(1, "padded.bpm.gz");
    write_gzip(bad, padded, len + extra);
    free(padded);
    bp_test_bytes tb = {0, 0, 0};
    assert_status(bp_net_load_ex(&back, bad, bp_test_bytes_alloc_fn, bp_test_bytes_free_fn, &tb),
                  BP_ERR_FORMAT);
    char want[96];
    snprintf(want, sizeof want, "more than the %zu bytes its header announces", len);
    assert_error_contains(want);
    assert_true(tb.peak < ((size_t)1 << 20));
    assert_int_equal(tb.live, 0);
    free(img);
    bp_net_free(net);
}

/* An IDX header announcing more than the limit is refused on its first bytes. */
static void an_idx_header_beyond_the_limit_is_refused_early(void **state)
{
    (void)state;
    unsigned char hdr[16 + 64] = {0, 0, 0x08, 0x03, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 1};
    const char *path = in_dir(0, "huge-idx3.gz");
    write_gzip(path, hdr, sizeof hdr);
    bp_dataset *ds;
    assert_status(bp_dataset_load_idx(&ds, path, path, 0), BP_ERR_OUT_OF_RANGE);
    assert_error_contains("announces 2147483663 bytes, more than the decompression limit");
    /* With no limit the header bounds the stream instead: too short, the parser says so. */
    assert_status(bp_dataset_load_idx_ex(&ds, path, path, 0, SIZE_MAX), BP_ERR_FORMAT);
}

/* The limit is a setting of the _ex loaders: 0 = 2^30, SIZE_MAX = none, else exact. */
static void the_decompression_limit_is_exact_and_settable(void **state)
{
    (void)state;
    const size_t rows = 300000, row = 4; /* "1,2\n" */
    char *csv = malloc(rows * row);
    assert_non_null(csv);
    for (size_t i = 0; i < rows; i++)
        memcpy(csv + i * row, "1,2\n", row);
    const size_t size = rows * row;
    const char *path = in_dir(0, "rows.csv.gz");
    write_gzip(path, csv, size);
    bp_dataset *ds;
    assert_status(bp_dataset_load_csv_ex(&ds, path, ',', 0, 1, 1, size - 1), BP_ERR_OUT_OF_RANGE);
    assert_null(ds);
    char want[64];
    snprintf(want, sizeof want, "more than the limit of %zu bytes", size - 1);
    assert_error_contains(want);
    const size_t ok_limits[] = {size, 0, SIZE_MAX};
    for (size_t i = 0; i < 3; i++) {
        assert_status(bp_dataset_load_csv_ex(&ds, path, ',', 0, 1, 1, ok_limits[i]), BP_OK);
        assert_int_equal(bp_dataset_size(ds), rows);
        bp_dataset_free(ds);
    }
    assert_status(bp_dataset_load_csv(&ds, path, ',', 0, 1, 1), BP_OK);
    bp_dataset_free(ds);
    /* FANN: the same limit. */
    const char *fann = in_dir(1, "rows.fann.gz");
    char *text = malloc(size + 64);
    assert_non_null(text);
    const int head = snprintf(text, 64, "%zu 1 1\n", rows);
    for (size_t i = 0; i < rows; i++)
        memcpy(text + head + i * row, "1 2\n", row);
    write_gzip(fann, text, (size_t)head + size);
    assert_status(bp_dataset_load_fann_ex(&ds, fann, 1000), BP_ERR_OUT_OF_RANGE);
    assert_status(bp_dataset_load_fann_ex(&ds, fann, (size_t)head + size), BP_OK);
    assert_int_equal(bp_dataset_size(ds), rows);
    bp_dataset_free(ds);
    /* IDX: a header inside the limit but a limit below the file. */
    assert_status(bp_dataset_load_idx_ex(&ds, BP_TEST_DATA_DIR "/tiny-images-idx3-ubyte.gz",
                                         BP_TEST_DATA_DIR "/tiny-labels-idx1-ubyte.gz", 0, 20),
                  BP_ERR_OUT_OF_RANGE);
    assert_status(bp_dataset_load_idx_ex(&ds, BP_TEST_DATA_DIR "/tiny-images-idx3-ubyte.gz",
                                         BP_TEST_DATA_DIR "/tiny-labels-idx1-ubyte.gz", 0, 0),
                  BP_OK);
    bp_dataset_free(ds);
    /* Invalid arguments still come first. */
    assert_status(bp_dataset_load_csv_ex(NULL, path, ',', 0, 1, 1, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_fann_ex(&ds, NULL, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_dataset_load_idx_ex(&ds, NULL, path, 0, 0), BP_ERR_INVALID_ARG);
    free(text);
    free(csv);
}
#endif

/* ---- atomic saves ----------------------------------------------------------------------- */

static void a_save_keeps_the_mode_and_owner_of_the_file_it_replaces(void **state)
{
    (void)state;
    const mode_t old_umask = umask(022);
    bp_net *net = make_net();
    const char *path = in_dir(0, "private.bpm");
    assert_status(bp_net_save(net, path), BP_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644); /* a new file: 0666 less the umask */
    assert_int_equal(chmod(path, 0600), 0);
    const int root = geteuid() == 0;
    if (root) assert_int_equal(chown(path, 65534, 65534), 0);
    assert_status(bp_net_save(net, path), BP_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* was 0644 */
    if (root) {                                /* only root may give a file away */
        assert_int_equal(st.st_uid, 65534);
        assert_int_equal(st.st_gid, 65534);
    }
    /* The data set writer shares the code. */
    assert_int_equal(chmod(path, 0640), 0);
    bp_dataset *ds;
    const float x[2] = {1, 2}, y[1] = {3};
    assert_status(bp_dataset_create(&ds, x, y, 1, 2, 1), BP_OK);
    assert_status(bp_dataset_save_fann(ds, path), BP_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    bp_dataset_free(ds);
    bp_net_free(net);
    assert_int_equal(temp_files_left(), 0);
    umask(old_umask);
}

static void a_save_writes_through_symbolic_links(void **state)
{
    (void)state;
    bp_net *net = make_net(), *back;
    const char *target = in_dir(0, "real.bpm");
    write_file(target, "old", 3);
    /* link2 -> link1 -> real.bpm, both relative. */
    const char *link1 = in_dir(1, "link1.bpm"), *link2 = in_dir(2, "link2.bpm");
    assert_int_equal(symlink("real.bpm", link1), 0);
    assert_int_equal(symlink("link1.bpm", link2), 0);
    assert_status(bp_net_save(net, link2), BP_OK);
    struct stat st;
    assert_int_equal(lstat(link2, &st), 0);
    assert_true(S_ISLNK(st.st_mode)); /* the links stay */
    assert_int_equal(lstat(link1, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_status(bp_net_load(&back, target), BP_OK); /* the target has the new model */
    assert_same_prediction(net, back);
    bp_net_free(back);
    /* A dangling link: the save creates the file it names. */
    const char *dangling = in_dir(1, "dangling.bpm");
    assert_int_equal(symlink("created.bpm", dangling), 0);
    assert_status(bp_net_save(net, dangling), BP_OK);
    assert_int_equal(lstat(dangling, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_status(bp_net_load(&back, in_dir(2, "created.bpm")), BP_OK);
    bp_net_free(back);
    /* A loop fails with the system's reason and leaves nothing. */
    const char *loop_a = in_dir(1, "loop_a"), *loop_b = in_dir(2, "loop_b");
    assert_int_equal(symlink("loop_b", loop_a), 0);
    assert_int_equal(symlink("loop_a", loop_b), 0);
    assert_status(bp_net_save(net, loop_a), BP_ERR_IO);
    assert_error_contains("loop_a: cannot follow its symbolic link");
    assert_int_equal(temp_files_left(), 0);
    /* In a sticky world-writable directory (/tmp), a link owned by another user is not
     * followed (fs.protected_symlinks): it could point a save at any file. Needs root to
     * give the link away. */
    if (geteuid() == 0) {
        const char *sticky = in_dir(3, "sticky"); /* slot 0 still holds the target */
        assert_int_equal(mkdir(sticky, 0777), 0);
        assert_int_equal(chmod(sticky, 01777), 0);
        char planted[600];
        snprintf(planted, sizeof planted, "%s/planted.bpm", sticky);
        assert_int_equal(symlink(target, planted), 0);
        assert_int_equal(lchown(planted, 65534, 65534), 0);
        assert_status(bp_net_save(net, planted), BP_ERR_IO);
        assert_error_contains("planted.bpm: cannot follow its symbolic link: Permission denied");
        assert_int_equal(lchown(planted, 0, 0), 0); /* ours: followed */
        assert_status(bp_net_save(net, planted), BP_OK);
        assert_int_equal(lstat(planted, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
    }
    bp_net_free(net);
}

static void a_save_handles_names_up_to_name_max(void **state)
{
    (void)state;
    bp_net *net = make_net(), *back;
    char name[NAME_MAX + 2];
    memset(name, 'm', NAME_MAX);
    name[NAME_MAX] = '\0';
    assert_status(bp_net_save(net, in_dir(0, name)), BP_OK);
    assert_status(bp_net_load(&back, in_dir(0, name)), BP_OK);
    assert_same_prediction(net, back);
    bp_net_free(back);
    assert_status(bp_net_save(net, in_dir(0, name)), BP_OK); /* replacing it, too */
    assert_int_equal(temp_files_left(), 0);
    /* One byte more is the system's refusal, and the message keeps the reason. */
    name[NAME_MAX] = 'm';
    name[NAME_MAX + 1] = '\0';
    assert_status(bp_net_save(net, in_dir(0, name)), BP_ERR_IO);
    assert_error_contains("File name too long");
    assert_error_contains("mmm...mmm");
    assert_true(strlen(bp_last_error()) < 200);
    assert_int_equal(temp_files_left(), 0);
    bp_net_free(net);
}

/* A process killed while saving leaves its temporary file; the next save of that target
 * removes it, but never the file of a save still in progress (it holds a lock). */
static void stale_temporary_files_are_removed_by_the_next_save(void **state)
{
    (void)state;
    bp_net *net = make_net();
    const char *path = in_dir(0, "killed.bpm");
    assert_status(bp_net_save(net, path), BP_OK);
    for (int k = 0; k < 3; k++) {
        int ready[2];
        assert_int_equal(pipe(ready), 0);
        fflush(NULL);
        const pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) { /* opens a temporary file, says so, waits to be killed */
            bp__atomic_file w;
            char ok = bp__atomic_open(&w, NULL, path) == BP_OK;
            if (ok) fputs("partial", w.f), fflush(w.f);
            (void)!write(ready[1], &ok, 1);
            for (;;)
                pause();
        }
        char ok = 0;
        assert_int_equal(read(ready[0], &ok, 1), 1);
        assert_true(ok);
        assert_int_equal(kill(pid, SIGKILL), 0); /* from outside: as a crash would */
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        close(ready[0]);
        close(ready[1]);
    }
    assert_int_equal(temp_files_left(), 1); /* each child found the last one unlocked */
    /* A save in progress in this process ... */
    bp__atomic_file live;
    assert_status(bp__atomic_open(&live, NULL, path), BP_OK);
    fputs("in progress", live.f);
    assert_int_equal(temp_files_left(), 1); /* the stale one went, this one is there */
    /* ... survives another save of the same target, which takes another name. */
    assert_status(bp_net_save(net, path), BP_OK);
    assert_int_equal(temp_files_left(), 1);
    assert_status(bp__atomic_commit(&live, NULL, path), BP_OK);
    assert_int_equal(temp_files_left(), 0);
    FILE *f = fopen(path, "rb");
    char got[16] = {0};
    assert_non_null(f);
    assert_int_equal(fread(got, 1, sizeof got - 1, f), 11);
    fclose(f);
    assert_string_equal(got, "in progress");
    bp_net_free(net);
}

static void a_save_syncs_the_file_and_then_its_directory(void **state)
{
    (void)state;
    bp_net *net = make_net();
    file_syncs = dir_syncs = 0;
    assert_status(bp_net_save(net, in_dir(0, "synced.bpm")), BP_OK);
    assert_int_equal(file_syncs, 1);
    assert_int_equal(dir_syncs, 1);
    /* A relative path in the current directory: "." is synced. */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(bp_test_tmpdir()), 0);
    file_syncs = dir_syncs = 0;
    assert_status(bp_net_save(net, "relative.bpm"), BP_OK);
    assert_int_equal(dir_syncs, 1);
    assert_int_equal(chdir(cwd), 0);
    /* A failed save syncs no directory and leaves no file. */
    file_syncs = dir_syncs = 0;
    assert_status(bp_net_save(net, in_dir(0, "missing/x.bpm")), BP_ERR_IO);
    assert_int_equal(dir_syncs, 0);
    assert_int_equal(temp_files_left(), 0);
    bp_net_free(net);
}

static void path_labels_shorten_long_names(void **state)
{
    (void)state;
    char buf[BP__LABEL_CAP], name[300];
    assert_string_equal(bp__path_label(buf, "dir/iris.csv"), "iris.csv");
    memset(name, 'a', 40);
    memset(name + 40, 'b', 200);
    memset(name + 240, 'c', 16);
    name[256] = '\0';
    assert_string_equal(bp__path_label(buf, name),
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...cccccccccccccccc");
    memset(name, 'x', 60);
    name[60] = '\0';
    assert_string_equal(bp__path_label(buf, name), name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(non_regular_files_fail_at_once_without_blocking),
        bp_add_test(a_plain_file_takes_its_size_and_no_more),
#ifdef BP_HAVE_ZLIB
        bp_add_test(a_gzip_bomb_stops_after_its_first_bytes),
        bp_add_test(the_default_limit_is_128_times_the_file_within_64_mib_and_1_gib),
        bp_add_test(a_gzip_model_may_not_run_past_its_header_length),
        bp_add_test(an_idx_header_beyond_the_limit_is_refused_early),
        bp_add_test(the_decompression_limit_is_exact_and_settable),
#endif
        bp_add_test(a_save_keeps_the_mode_and_owner_of_the_file_it_replaces),
        bp_add_test(a_save_writes_through_symbolic_links),
        bp_add_test(a_save_handles_names_up_to_name_max),
        bp_add_test(stale_temporary_files_are_removed_by_the_next_save),
        bp_add_test(a_save_syncs_the_file_and_then_its_directory),
        bp_add_test(path_labels_shorten_long_names),
    };
    return cmocka_run_group_tests(tests, bp_test_tmpdir_setup, bp_test_tmpdir_teardown);
}
