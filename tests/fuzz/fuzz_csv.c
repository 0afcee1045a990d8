/* fuzz_csv.c -- libFuzzer target for the CSV parser behind bp_dataset_load_csv(). The first
 * byte picks the delimiter, the header flag and the target columns; the rest is the file.
 * Memory amplification is a failure: the parser's allocations may peak at no more than a
 * small multiple of the input (every cell takes a byte and a delimiter, a float 4 bytes). */
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "dataset.h"
#include "fuzz_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[8] = {',', ';', '\t', ' ', '|', ':', ',', ','};
    if (size < 1) return 0;
    const uint8_t opt = data[0];
    char *buf = malloc(size); /* size - 1 bytes of text and the NUL the parser relies on */
    if (buf == NULL) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    bp_dataset *ds = NULL;
    fuzz_counted c = {0, 0};
    const bp__alloc a = {fuzz_count_alloc, fuzz_count_free, &c};
    if (bp__dataset_parse_csv(&ds, &a, "fuzz.csv", buf, size - 1, delims[opt & 7], (opt >> 3) & 1,
                              (opt >> 4) & 3, 1 + ((opt >> 6) & 1)) == BP_OK) {
        if (bp_dataset_size(ds) == 0 || bp_dataset_input_size(ds) == 0) abort();
    }
    if (c.peak > 8 * size + 4096) abort(); /* memory out of proportion to the input */
    bp_dataset_free(ds);
    if (c.live != 0) abort();
    free(buf);
    return 0;
}
