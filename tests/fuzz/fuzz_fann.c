/* fuzz_fann.c -- libFuzzer target for the FANN training-file parser behind
 * bp_dataset_load_fann(). */
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL) return 0;
    if (size) memcpy(buf, data, size);
    buf[size] = '\0';
    bp_dataset *ds = NULL;
    if (bp__dataset_parse_fann(&ds, &bp__default_alloc, "fuzz.fann", buf, size) == BP_OK) {
        /* Everything loaded is finite: the data set invariant. */
        const size_t nx = bp_dataset_size(ds) * bp_dataset_input_size(ds);
        if (bp__first_nonfinite(bp_dataset_inputs(ds), nx) != nx) abort();
    }
    bp_dataset_free(ds);
    free(buf);
    return 0;
}
