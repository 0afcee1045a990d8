/* cli_pack.c -- `backprop pack`: convert a CSV, FANN or IDX data set into the binary data-set
 * file (docs/format.md, "Data-set file") that bp_dataset_open_mapped() maps, through the
 * library's loaders and bp_dataset_save_binary(). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char pack_help[] =
    "Usage: backprop pack [options] DATA -o OUT.bpds\n"
    "\n"
    "Convert a labelled data set (CSV, FANN .data or IDX images with --labels) into a\n"
    "binary data-set file for bp_dataset_open_mapped(): training and evaluation then read\n"
    "it a batch at a time, memory-mapped, instead of holding every row in memory.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE   the file to write (replaced atomically)\n"
    "  --type TYPE         element type of the inputs: float32, or uint8 (at most 256\n"
    "                      distinct input values, e.g. pixels: a quarter of the size,\n"
    "                      decoded back to exactly the same floats); default uint8 for\n"
    "                      IDX images, float32 otherwise\n"
    "  --format FMT        auto (default: by --labels, then the file name), csv, fann, idx\n"
    "  --labels FILE       IDX label file (IDX images); targets are class indices\n"
    "  --targets F[:N]     CSV: target columns, from 0 (-1 = the last column; default)\n"
    "  -d, --delimiter C   CSV: , ; | : tab space (default ,)\n"
    "  --header, --no-header\n"
    "                      CSV: whether the first line holds column names (default: a\n"
    "                      first line that is not all numbers is a header)\n"
    "  -h, --help          this text\n"
    "\n"
    "Prints the rows, widths and type written. Scaling and one-hot encoding are not applied:\n"
    "'backprop train' computes scalers from the data it trains on.\n";

static const cli_name pack_types[] = {
    {"float32", BP_DATA_FLOAT32}, {"uint8", BP_DATA_UINT8}, {NULL, 0}};

int cli_pack(int argc, char **argv)
{
    cli_data_opts o;
    cli_data_opts_init(&o);
    const char *data = NULL, *output = NULL;
    int type = 0;
    cli_args a;
    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r = CLI_OK, d;
        if (cli_args_positional(&a)) {
            if (!data)
                data = a.arg;
            else
                r = cli_args_unknown(&a);
        } else if (cli_args_is(&a, "--help", "-h")) {
            fputs(pack_help, stdout);
            return CLI_OK;
        } else if ((d = cli_data_option(&a, &o)) != 0) {
            r = d < 0 ? CLI_USAGE : CLI_OK;
        } else if (cli_args_is(&a, "--output", "-o")) {
            r = (output = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--type", NULL)) {
            r = cli_args_name(&a, pack_types, &type);
        } else {
            r = cli_args_unknown(&a);
        }
        if (r != CLI_OK) return r;
    }
    if (!data) return cli_usage("needs DATA");
    if (!output) return cli_usage("needs --output FILE");
    if (type == 0)
        type = cli_data_format(&o, data) == CLI_FORMAT_IDX ? BP_DATA_UINT8 : BP_DATA_FLOAT32;

    bp_dataset *ds = NULL;
    int r = cli_load_dataset(&ds, data, &o);
    if (r != CLI_OK) return r;
    const bp_status s = bp_dataset_save_binary(ds, output, type);
    if (s != BP_OK) {
        r = cli_fail_status(s, output, bp_last_error());
    } else {
        printf("%s: %zu rows, %zu inputs (%s), %zu targets\n", output, bp_dataset_size(ds),
               bp_dataset_input_size(ds), cli_name_of(pack_types, type),
               bp_dataset_output_size(ds));
    }
    bp_dataset_free(ds);
    return r;
}
