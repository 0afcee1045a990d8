/* test_oom.c -- allocation failure injection: for each operation, the k-th allocation fails
 * for k = 1, 2, ... until the operation completes without reaching k. Every injected failure
 * must give BP_ERR_NOMEM, leak nothing (bp_test_alloc's live count returns to 0) and leave
 * the objects usable or cleanly freeable. Prints how many failures each case injected (the
 * counts quoted in docs/reliability.md). */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "net.h"
#include "optimizer.h"
#include "dataset.h"

static char dir[64];
static char model_path[128], ckpt_path[128];

/* One scenario: prepares what it needs with @p ta, arms the failure with arm(), runs the
 * operation under test, records whether the failure fired, checks the objects, frees all. */
typedef bp_status (*scenario)(bp_test_alloc *ta, long k, int *injected);

static void arm(bp_test_alloc *ta, long k)
{
    ta->fail_at = (long)ta->attempts + k;
}
/* Did the armed failure happen? Disarms, so that the checks after the operation run
 * without injected failures. */
static int disarm(bp_test_alloc *ta)
{
    const int fired = (long)ta->attempts >= ta->fail_at;
    ta->fail_at = 0;
    return fired;
}

static bp__alloc tracked(bp_test_alloc *ta)
{
    const bp__alloc a = {bp_test_alloc_fn, bp_test_free_fn, ta};
    return a;
}

static long run(const char *what, scenario fn)
{
    for (long k = 1;; k++) {
        bp_test_alloc ta = {0};
        int injected = 0;
        const bp_status s = fn(&ta, k, &injected);
        if (ta.live != 0) fail_msg("%s, failure %ld: %zu blocks leaked", what, k, ta.live);
        if (!injected) {
            assert_status(s, BP_OK);
            print_message("%-34s %4ld allocation failures injected, all BP_ERR_NOMEM, no leak\n",
                          what, k - 1);
            return k - 1;
        }
        if (s != BP_ERR_NOMEM)
            fail_msg("%s, failure %ld: status %d: %s", what, k, s, bp_last_error());
    }
}

static bp_status build(bp_test_alloc *ta, bp_net **out)
{
    BP_CHECK(bp_net_create_ex(out, 5, 42, bp_test_alloc_fn, bp_test_free_fn, ta));
    BP_CHECK(bp_net_add_dense(*out, 16, BP_ACT_RELU));
    BP_CHECK(bp_net_add_dense(*out, 8, BP_ACT_TANH));
    BP_CHECK(bp_net_add_dense(*out, 8, BP_ACT_SIGMOID));
    return bp_net_add_dense(*out, 3, BP_ACT_SOFTMAX);
}

static bp_status create_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_net *net = NULL;
    arm(ta, k);
    const bp_status s = build(ta, &net);
    *injected = disarm(ta);
    if (s == BP_ERR_NOMEM && net != NULL) /* the layers added so far still work */
        assert_int_equal(bp_net_layer_count(net), bp_net_layer_count(net));
    bp_net_free(net);
    return s;
}

static const float tx[4 * 5] = {1, 2, 3, 4, 5, 0, 1, 0, 1, 0, -1, -2, 0, 1, 2, 3, 3, 3, 3, 3};
static const float ty[4] = {0, 1, 2, 1};

static bp_status train_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    const bp__alloc a = tracked(ta);
    assert_status(build(ta, &net), BP_OK);
    assert_status(bp__optimizer_create_with(&opt, BP_OPTIMIZER_ADAM, &a), BP_OK);
    size_t np;
    const float *p = bp_net_params(net, &np);
    float *before = malloc(np * sizeof(float));
    memcpy(before, p, np * sizeof(float));
    arm(ta, k);
    const bp_status s = bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, tx, ty, 4, NULL);
    *injected = disarm(ta);
    if (s != BP_OK) {
        assert_memory_equal(bp_net_params(net, NULL), before, np * sizeof(float));
        assert_int_equal(bp_optimizer_step_count(opt), 0);
        assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, tx, ty, 4, NULL),
                      BP_OK); /* usable afterwards */
    }
    free(before);
    bp_optimizer_free(opt);
    bp_net_free(net);
    return s;
}

static bp_status save_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_net *net = NULL;
    assert_status(build(ta, &net), BP_OK);
    assert_status(bp_net_set_meta(net, "v", "1"), BP_OK);
    char path[160];
    snprintf(path, sizeof path, "%s/save.bpm", dir);
    assert_status(bp_net_save(net, path), BP_OK);
    assert_status(bp_net_set_meta(net, "v", "2"), BP_OK);
    arm(ta, k);
    const bp_status s = bp_net_save(net, path);
    *injected = disarm(ta);
    bp_net *back;
    char v[4];
    assert_status(bp_net_load(&back, path), BP_OK);
    assert_status(bp_net_get_meta(back, "v", v, sizeof v, NULL), BP_OK);
    assert_string_equal(v, s == BP_OK ? "2" : "1"); /* old file intact on failure */
    bp_net_free(back);
    /* The buffer variant never allocates. */
    const size_t before = ta->attempts;
    size_t size;
    assert_status(bp_net_save_buffer(net, NULL, 0, &size), BP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(ta->attempts, before);
    bp_net_free(net);
    return s;
}

static bp_status load_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_net *net = (bp_net *)(uintptr_t)1;
    arm(ta, k);
    const bp_status s = bp_net_load_ex(&net, model_path, bp_test_alloc_fn, bp_test_free_fn, ta);
    *injected = disarm(ta);
    if (s != BP_OK) assert_null(net);
    bp_net_free(net);
    return s;
}

static unsigned char *ckpt_image;
static size_t ckpt_size;

static bp_status load_buffer_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_net *net;
    arm(ta, k);
    const bp_status s =
        bp_net_load_buffer_ex(&net, ckpt_image, ckpt_size, bp_test_alloc_fn, bp_test_free_fn, ta);
    *injected = disarm(ta);
    bp_net_free(net);
    return s;
}

static bp_status checkpoint_load_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_net *net;
    bp_optimizer *opt;
    arm(ta, k);
    const bp_status s =
        bp_checkpoint_load_ex(&net, &opt, ckpt_path, bp_test_alloc_fn, bp_test_free_fn, ta);
    *injected = disarm(ta);
    if (s == BP_OK) /* usable: the optimizer continues from its state */
        assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, tx, ty, 4, NULL),
                      BP_OK);
    else
        assert_true(net == NULL && opt == NULL);
    bp_optimizer_free(opt);
    bp_net_free(net);
    return s;
}

static bp_status checkpoint_buffer_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_net *net;
    bp_optimizer *opt;
    arm(ta, k);
    const bp_status s = bp_checkpoint_load_buffer_ex(&net, &opt, ckpt_image, ckpt_size,
                                                     bp_test_alloc_fn, bp_test_free_fn, ta);
    *injected = disarm(ta);
    bp_optimizer_free(opt);
    bp_net_free(net);
    return s;
}

static bp_status clone_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_net *net, *copy = NULL;
    assert_status(build(ta, &net), BP_OK);
    const float off[5] = {0}, sc[5] = {1, 1, 1, 1, 1};
    assert_status(bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, 5), BP_OK);
    assert_status(bp_net_set_meta(net, "a", "b"), BP_OK);
    assert_status(bp_net_set(net, BP_FIT_EPOCHS, 3), BP_OK);
    arm(ta, k);
    const bp_status s = bp_net_clone(&copy, net);
    *injected = disarm(ta);
    bp_net_free(copy);
    bp_net_free(net);
    return s;
}

static bp_status scaler_meta_setters_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_net *net;
    assert_status(build(ta, &net), BP_OK);
    const float off[3] = {1, 2, 3}, sc[3] = {1, 1, 1};
    arm(ta, k);
    bp_status s = bp_net_set_meta(net, "key", "value");
    if (s == BP_OK) s = bp_net_set_meta(net, "key", "other value");
    if (s == BP_OK) s = bp_net_set_scaler(net, BP_SCALE_TARGETS, off, sc, 3);
    *injected = disarm(ta);
    size_t count;
    float o[3], c[3];
    assert_status(bp_net_get_scaler(net, BP_SCALE_TARGETS, o, c, 3, &count), BP_OK);
    assert_true(count == 0 || count == 3); /* all or nothing */
    bp_net_free(net);
    return s;
}

static bp_status csv_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_dataset *ds;
    const bp__alloc a = tracked(ta);
    arm(ta, k);
    const bp_status s =
        bp__dataset_load_csv_with(&ds, &a, BP_TEST_DATA_DIR "/iris.csv", ',', 1, 4, 1, 0);
    *injected = disarm(ta);
    if (s == BP_OK) assert_int_equal(bp_dataset_size(ds), 150);
    bp_dataset_free(ds);
    return s;
}

static bp_status fann_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_dataset *ds;
    const bp__alloc a = tracked(ta);
    arm(ta, k);
    const bp_status s = bp__dataset_load_fann_with(&ds, &a, BP_TEST_DATA_DIR "/xor.fann", 0);
    *injected = disarm(ta);
    bp_dataset_free(ds);
    return s;
}

static bp_status idx_scenario(bp_test_alloc *ta, long k, int *injected)
{
    bp_dataset *ds;
    const bp__alloc a = tracked(ta);
    arm(ta, k);
#ifdef BP_HAVE_ZLIB /* the gzip copies also exercise the decompressor's allocations */
    const char *img = BP_TEST_DATA_DIR "/tiny-images-idx3-ubyte.gz";
    const char *lab = BP_TEST_DATA_DIR "/tiny-labels-idx1-ubyte.gz";
#else
    const char *img = BP_TEST_DATA_DIR "/tiny-images-idx3-ubyte";
    const char *lab = BP_TEST_DATA_DIR "/tiny-labels-idx1-ubyte";
#endif
    const bp_status s = bp__dataset_load_idx_with(&ds, &a, img, lab, 10, 0);
    *injected = disarm(ta);
    bp_dataset_free(ds);
    return s;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/bp_oom_XXXXXX");
    if (mkdtemp(dir) == NULL) return -1;
    snprintf(model_path, sizeof model_path, "%s/model.bpm", dir);
    snprintf(ckpt_path, sizeof ckpt_path, "%s/ckpt.bpc", dir);
    bp_net *net;
    bp_optimizer *opt;
    bp_test_alloc ta = {0};
    if (build(&ta, &net) != BP_OK || bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM) != BP_OK)
        return -1;
    int bad = bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, tx, ty, 4, NULL) != BP_OK;
    const float off[5] = {0}, sc[5] = {2, 2, 2, 2, 2};
    bad |= bp_net_set_scaler(net, BP_SCALE_INPUTS, off, sc, 5) != BP_OK;
    bad |= bp_net_set_meta(net, "name", "oom") != BP_OK;
    bad |= bp_net_save(net, model_path) != BP_OK;
    bad |= bp_checkpoint_save(net, opt, ckpt_path) != BP_OK;
    bad |= bp_checkpoint_save_buffer(net, opt, NULL, 0, &ckpt_size) != BP_ERR_BUFFER_TOO_SMALL;
    ckpt_image = malloc(ckpt_size);
    bad |= bp_checkpoint_save_buffer(net, opt, ckpt_image, ckpt_size, &ckpt_size) != BP_OK;
    bp_optimizer_free(opt);
    bp_net_free(net);
    return bad ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    free(ckpt_image);
    unlink(model_path);
    unlink(ckpt_path);
    char p[160];
    snprintf(p, sizeof p, "%s/save.bpm", dir);
    unlink(p);
    return rmdir(dir);
}

static void net_creation_with_several_layers(void **state)
{
    (void)state;
    run("create + 4 layers", create_scenario);
}
static void first_train_step(void **state)
{
    (void)state;
    run("first train_step (Adam)", train_scenario);
}
static void save_to_file(void **state)
{
    (void)state;
    run("bp_net_save", save_scenario);
}
static void load_from_file(void **state)
{
    (void)state;
    run("bp_net_load_ex", load_scenario);
}
static void load_from_buffer(void **state)
{
    (void)state;
    run("bp_net_load_buffer_ex", load_buffer_scenario);
}
static void checkpoint_load(void **state)
{
    (void)state;
    run("bp_checkpoint_load_ex", checkpoint_load_scenario);
}
static void checkpoint_load_buffer(void **state)
{
    (void)state;
    run("bp_checkpoint_load_buffer_ex", checkpoint_buffer_scenario);
}
static void clone_with_scalers_and_metadata(void **state)
{
    (void)state;
    run("bp_net_clone", clone_scenario);
}
static void scaler_meta_setters(void **state)
{
    (void)state;
    run("scaler/meta setters", scaler_meta_setters_scenario);
}
static void csv_loader(void **state)
{
    (void)state;
    run("CSV loader (iris.csv)", csv_scenario);
}
static void fann_loader(void **state)
{
    (void)state;
    run("FANN loader (xor.fann)", fann_scenario);
}
static void idx_loader(void **state)
{
    (void)state;
    run("IDX loader (tiny, gzip)", idx_scenario);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(net_creation_with_several_layers),
        bp_add_test(first_train_step),
        bp_add_test(save_to_file),
        bp_add_test(load_from_file),
        bp_add_test(load_from_buffer),
        bp_add_test(checkpoint_load),
        bp_add_test(checkpoint_load_buffer),
        bp_add_test(clone_with_scalers_and_metadata),
        bp_add_test(scaler_meta_setters),
        bp_add_test(csv_loader),
        bp_add_test(fann_loader),
        bp_add_test(idx_loader),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
