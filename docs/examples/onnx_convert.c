/* onnx_convert.c -- convert a model between ONNX and the library's own format.
 *
 *   onnx_convert model.onnx model.bpm        ONNX -> backprop (import, then bp_net_save)
 *   onnx_convert model.bpm model.onnx [-N]   backprop -> ONNX (-N: dynamic batch size)
 *
 * The direction is chosen by the input's extension (.onnx imports). Prints the net's
 * summary and ends with a "result: layers=N params=P" line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backprop_onnx.h"

static int ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "-N") != 0)) {
        fprintf(stderr, "usage: %s in.onnx out.bpm | in.bpm out.onnx [-N]\n", argv[0]);
        return 2;
    }
    bp_net *net = NULL;
    bp_status s;
    const int from_onnx = ends_with(argv[1], ".onnx");
    if (from_onnx) {
        s = bp_onnx_import(&net, argv[1], 1);
        if (s != BP_OK) {
            fprintf(stderr, "import: %s: %s\n", bp_status_string(s), bp_onnx_last_error());
            return 1;
        }
    } else if ((s = bp_net_load(&net, argv[1])) != BP_OK) {
        fprintf(stderr, "load: %s: %s\n", bp_status_string(s), bp_last_error());
        return 1;
    }
    char summary[8192];
    if (bp_net_summary(net, summary, sizeof summary, NULL) == BP_OK) fputs(summary, stdout);
    if (from_onnx) {
        s = bp_net_save(net, argv[2]);
        if (s != BP_OK) fprintf(stderr, "save: %s: %s\n", bp_status_string(s), bp_last_error());
    } else {
        s = bp_onnx_export(net, argv[2], argc == 4 ? BP_ONNX_DYNAMIC_BATCH : 0);
        if (s != BP_OK)
            fprintf(stderr, "export: %s: %s\n", bp_status_string(s), bp_onnx_last_error());
    }
    if (s == BP_OK)
        printf("%s -> %s\nresult: layers=%zu params=%zu\n", argv[1], argv[2],
               bp_net_layer_count(net), bp_net_param_count(net));
    bp_net_free(net);
    return s == BP_OK ? 0 : 1;
}
