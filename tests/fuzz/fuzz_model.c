/* fuzz_model.c -- libFuzzer target for the model and checkpoint loaders.
 *
 * Each input is loaded as it is (exercising the header, length and CRC checks), then again
 * with its length field and CRC repaired, so that the fuzzer reaches the section parsers
 * behind the checksum. Whatever loads is used: predicted with, saved again (the image must
 * load back), and a checkpoint is stepped once.
 *
 * Memory: the loaders allocate through a byte-counting allocator (fuzz_alloc.h), and a load
 * whose peak exceeds 16 x the input + 64 KiB aborts (issue 18: a 3.7 KB file used to
 * allocate 6.4 GiB). Running what loaded may allocate more (its workspace). */
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "fuzz_alloc.h"
#include "dataset.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise_net(bp_net *net)
{
    const size_t in = bp_net_input_size(net), out = bp_net_output_size(net);
    if (bp_net_layer_count(net) > 0 && in <= 4096 && out <= 4096) {
        float *x = calloc(in, sizeof(float)), *y = calloc(out, sizeof(float));
        if (x != NULL && y != NULL) (void)bp_net_predict(net, x, 1, y, out);
        free(x);
        free(y);
    }
    size_t n = 0;
    if (bp_net_save_buffer(net, NULL, 0, &n) == BP_ERR_BUFFER_TOO_SMALL) {
        unsigned char *img = malloc(n);
        bp_net *again = NULL;
        if (img != NULL && bp_net_save_buffer(net, img, n, &n) == BP_OK &&
            bp_net_load_buffer(&again, img, n) != BP_OK)
            abort(); /* what we wrote must load */
        bp_net_free(again);
        free(img);
    }
}

/* Abort when a load's peak allocation is out of proportion to its input. */
static void check_peak(const fuzz_counted *c, size_t size)
{
    if (c->peak > 16 * size + 65536) abort();
}

static void load_all(const uint8_t *data, size_t size)
{
    bp_net *net = NULL;
    fuzz_counted cn = {0, 0};
    const bp_status sn =
        bp_net_load_buffer_ex(&net, data, size, fuzz_count_alloc, fuzz_count_free, &cn);
    check_peak(&cn, size);
    if (sn == BP_OK) exercise_net(net);
    bp_net_free(net);
    bp_optimizer *opt = NULL;
    fuzz_counted cc = {0, 0};
    const bp_status sc = bp_checkpoint_load_buffer_ex(&net, &opt, data, size, fuzz_count_alloc,
                                                      fuzz_count_free, &cc);
    check_peak(&cc, size);
    if (sc == BP_OK) {
        const size_t in = bp_net_input_size(net), out = bp_net_output_size(net);
        if (in <= 4096 && out <= 4096) {
            float *x = calloc(in, sizeof(float)), *y = calloc(out, sizeof(float));
            if (x != NULL && y != NULL)
                (void)bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 1, NULL);
            free(x);
            free(y);
        }
        bp_optimizer_free(opt);
        bp_net_free(net);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that any over-read is caught by ASan. */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL) return 0;
    if (size) memcpy(copy, data, size);
    load_all(copy, size);
    if (size >= 28) {
        for (int i = 0; i < 8; i++)
            copy[16 + i] = (uint8_t)((uint64_t)size >> (8 * i));
        const uint32_t crc = bp__crc32(0, copy, size - 4);
        for (int i = 0; i < 4; i++)
            copy[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
        load_all(copy, size);
    }
    free(copy);
    return 0;
}
