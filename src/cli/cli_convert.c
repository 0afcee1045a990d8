/* cli_convert.c -- `backprop convert`: a model file to ONNX and back (libbackprop_onnx).
 *
 * Built with the ONNX component (BP_CLI_ONNX, set by cmake/BpCli.cmake when the target
 * backprop_onnx exists); without it the verb exists and says how to get it. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#ifdef BP_CLI_ONNX
#include "backprop_onnx.h"
#endif

static const char convert_help[] =
    "Usage: backprop convert [options] IN OUT\n"
    "\n"
    "Convert a model between the library's model file and ONNX. The direction follows the\n"
    "names: IN ending in .onnx is imported (the operators docs/onnx.md lists) and saved as\n"
    "the model file OUT; a model file IN is exported to OUT, which must end in .onnx.\n"
    "The model's input and target scalers become nodes of the ONNX graph, so that it reads\n"
    "raw inputs and gives outputs in the targets' units like 'backprop predict'; importing\n"
    "such a graph restores them.\n"
    "\n"
    "Options:\n"
    "  --dynamic-batch     export: the batch dimension is the symbol N (default: 1)\n"
    "  --no-scalers        export: leave the scalers out (the graph takes scaled inputs)\n"
    "  --loss L            import: record the loss the model was trained with, for 'eval'\n"
    "                      and 'predict' (mse, mae, huber, bce, softmax-ce, sparse-ce)\n"
    "  --seed N            import: seed of the new net's generator (default 1)\n"
    "  -h, --help          this help\n"
    "\n"
    "Prints one line naming both files, the layers, parameters, inputs and outputs.\n";

static int has_onnx_suffix(const char *path)
{
    const size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".onnx") == 0;
}

#ifdef BP_CLI_ONNX
/* "input and target scalers" / "input scaler" / "no scalers" */
static const char *scaler_text(const bp_net *net)
{
    size_t in = 0, out = 0;
    bp_net_get_scaler(net, BP_SCALE_INPUTS, NULL, NULL, 0, &in);
    bp_net_get_scaler(net, BP_SCALE_TARGETS, NULL, NULL, 0, &out);
    return in && out ? "input and target scalers"
           : in      ? "input scaler"
           : out     ? "target scaler"
                     : "no scalers";
}

/* Import messages name the file already; export messages get @p path in front. */
static int onnx_fail(bp_status s, const char *path)
{
    const char *text = bp_onnx_last_error();
    if (!text || !text[0]) text = bp_status_string(s);
    return path ? cli_fail("%s: %s", path, text) : cli_fail("%s", text);
}
#endif

int cli_convert(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    int dynamic = 0, scalers = 1, loss = 0;
    long seed = 1;
    cli_args a;
    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r = CLI_OK;
        if (cli_args_positional(&a)) {
            if (!in)
                in = a.arg;
            else if (!out)
                out = a.arg;
            else
                r = cli_args_unknown(&a);
        } else if (cli_args_is(&a, "--help", "-h")) {
            fputs(convert_help, stdout);
            return CLI_OK;
        } else if (cli_args_is(&a, "--dynamic-batch", NULL)) {
            if (cli_args_no_value(&a)) return CLI_USAGE;
            dynamic = 1;
        } else if (cli_args_is(&a, "--no-scalers", NULL)) {
            if (cli_args_no_value(&a)) return CLI_USAGE;
            scalers = 0;
        } else if (cli_args_is(&a, "--loss", NULL)) {
            r = cli_args_name(&a, cli_losses, &loss);
        } else if (cli_args_is(&a, "--seed", NULL)) {
            r = cli_args_long(&a, &seed, 0, 2147483647L);
        } else {
            r = cli_args_unknown(&a);
        }
        if (r != CLI_OK) return r;
    }
    if (!in || !out) return cli_usage("needs IN and OUT");
    const int import = has_onnx_suffix(in);
    if (import == has_onnx_suffix(out))
        return cli_usage("exactly one of IN and OUT must end in .onnx (%s, %s)", in, out);
    if (import && (dynamic || !scalers))
        return cli_usage("%s applies to export (OUT ending in .onnx) only",
                         dynamic ? "--dynamic-batch" : "--no-scalers");
    if (!import && loss) return cli_usage("--loss applies to import (IN ending in .onnx) only");
#ifndef BP_CLI_ONNX
    (void)seed;
    return cli_fail("this backprop was built without ONNX support (libbackprop_onnx needs "
                    "libprotobuf-c-dev, protobuf-c-compiler and libonnx-dev)");
#else
    bp_net *net = NULL;
    bp_status s;
    if (import) {
        s = bp_onnx_import(&net, in, (uint64_t)seed);
        if (s != BP_OK) return onnx_fail(s, NULL);
        char note[1100];
        snprintf(note, sizeof note, "backprop convert %s", in);
        s = bp_net_set_meta(net, "created_by", note);
        if (s == BP_OK && loss) s = bp_net_set_meta(net, "loss", cli_name_of(cli_losses, loss));
        if (s == BP_OK) s = bp_net_save(net, out);
        if (s != BP_OK) {
            int rc = cli_fail_status(s, out, bp_net_last_error(net));
            bp_net_free(net);
            return rc;
        }
    } else {
        s = bp_net_load(&net, in);
        if (s != BP_OK) return cli_fail_status(s, "cannot load the model", NULL);
        s = bp_onnx_export(net, out,
                           (dynamic ? BP_ONNX_DYNAMIC_BATCH : 0) | (scalers ? BP_ONNX_SCALERS : 0));
        if (s != BP_OK) {
            int rc = onnx_fail(s, out);
            bp_net_free(net);
            return rc;
        }
    }
    printf("%s -> %s: %zu layers, %zu parameters, %zu inputs, %zu outputs, %s\n", in, out,
           bp_net_layer_count(net), bp_net_param_count(net), bp_net_input_size(net),
           bp_net_output_size(net), import || scalers ? scaler_text(net) : "scalers left out");
    bp_net_free(net);
    return CLI_OK;
#endif
}
