/* fuzz_fann.c -- libFuzzer target for the FANN training-file parser behind
 * bp_dataset_load_fann(). Memory out of proportion to the input is a failure (every number
 * takes a digit and a separator, a float 4 bytes). */
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "dataset.h"
#include "fuzz_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL) return 0;
    if (size) memcpy(buf, data, size);
    buf[size] = '\0';
    bp_dataset *ds = NULL;
    fuzz_counted c = {0, 0};
    const bp__alloc a = {fuzz_count_alloc, fuzz_count_free, &c};
    if (bp__dataset_parse_fann(&ds, &a, "fuzz.fann", buf, size) == BP_OK) {
        /* Everything loaded is finite: the data set invariant. */
        const size_t nx = bp_dataset_size(ds) * bp_dataset_input_size(ds);
        if (bp__first_nonfinite(bp_dataset_inputs(ds), nx) != nx) abort();
    }
    if (c.peak > 8 * size + 4096) abort();
    bp_dataset_free(ds);
    if (c.live != 0) abort();
    free(buf);
    return 0;
}
