/* fuzz_idx.c -- libFuzzer target for the IDX image/label parser behind
 * bp_dataset_load_idx(). Input: a 2-byte little-endian length L, L bytes of the images file,
 * the rest is the labels file; the top bit of the length picks one-hot (10 classes) or class
 * indices. */
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    const size_t head = (size_t)data[0] | (size_t)(data[1] & 0x7f) << 8;
    const size_t classes = data[1] & 0x80 ? 10 : 0;
    const size_t rest = size - 2, ni = head < rest ? head : rest, nl = rest - ni;
    unsigned char *img = malloc(ni ? ni : 1), *lab = malloc(nl ? nl : 1);
    if (img != NULL && lab != NULL) {
        if (ni) memcpy(img, data + 2, ni);
        if (nl) memcpy(lab, data + 2 + ni, nl);
        bp_dataset *ds = NULL;
        (void)bp__dataset_parse_idx(&ds, &bp__default_alloc, "images", img, ni, "labels", lab, nl,
                                    classes);
        bp_dataset_free(ds);
    }
    free(img);
    free(lab);
    return 0;
}
