/* fuzz_onnx.c -- libFuzzer target for the ONNX importer (libbackprop_onnx, built when
 * BP_WITH_ONNX is on). Whatever imports is used: predicted with, exported, and the export
 * must import again (a net we wrote that we cannot read is a bug). The importer's parser
 * allocations are bounded by BP_ONNX_PARSE_FACTOR x the input size: run with -rss_limit_mb
 * and -malloc_limit_mb to catch amplification. */
#include <stdlib.h>
#include <string.h>

#include "backprop_onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_net *net = NULL;
    if (size == 0 || bp_onnx_import_buffer(&net, data, size, 1) != BP_OK) return 0;
    const size_t in = bp_net_input_size(net), out = bp_net_output_size(net);
    if (in <= 65536 && out <= 65536) {
        float *x = calloc(2 * in, sizeof(float)), *y = calloc(2 * out, sizeof(float));
        if (x != NULL && y != NULL) (void)bp_net_predict(net, x, 2, y, 2 * out);
        free(x);
        free(y);
    }
    size_t n = 0;
    if (bp_onnx_export_buffer(net, NULL, 0, &n, BP_ONNX_DYNAMIC_BATCH) == BP_ERR_BUFFER_TOO_SMALL) {
        unsigned char *img = malloc(n);
        bp_net *again = NULL;
        if (img != NULL && bp_onnx_export_buffer(net, img, n, &n, BP_ONNX_DYNAMIC_BATCH) == BP_OK &&
            bp_onnx_import_buffer(&again, img, n, 1) != BP_OK)
            abort(); /* what we wrote must import */
        bp_net_free(again);
        free(img);
    }
    bp_net_free(net);
    return 0;
}
