/* cli_model.c -- the verbs that read a saved model: `eval`, `predict`, `info`. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *const cli_meta_keys[] = {"created_by",     "data",      "data_format",  "loss",
                                     "layers",         "optimizer", "scale_inputs", "scale_targets",
                                     "epochs_trained", "seed",      "csv_targets",  "csv_delimiter",
                                     "csv_header",     NULL};

int cli_meta(const bp_net *net, const char *key, char *buf, size_t capacity)
{
    bp_status s = bp_net_get_meta(net, key, buf, capacity, NULL);
    return s == BP_OK || s == BP_ERR_BUFFER_TOO_SMALL;
}

const char *cli_fmt(char *buf, size_t capacity, double value)
{
    if (isnan(value))
        snprintf(buf, capacity, "nan");
    else
        snprintf(buf, capacity, "%.4g", value);
    return buf;
}

static int load_model(bp_net **net, const char *path)
{
    bp_status s = bp_net_load(net, path);
    if (s != BP_OK) return cli_fail_status(s, "cannot load the model", NULL);
    return CLI_OK;
}

/* A scaler kept with @p net: *width 0 when there is none. */
static int get_scaler(const bp_net *net, int part, float **offset, float **scale, size_t *width)
{
    *offset = *scale = NULL;
    bp_status s = bp_net_get_scaler(net, part, NULL, NULL, 0, width);
    if (s != BP_OK && s != BP_ERR_BUFFER_TOO_SMALL)
        return cli_fail_status(s, "reading a scaler", bp_net_last_error(net));
    if (*width == 0) return CLI_OK;
    *offset = malloc(*width * sizeof(float));
    *scale = malloc(*width * sizeof(float));
    if (!*offset || !*scale) return cli_fail("out of memory");
    s = bp_net_get_scaler(net, part, *offset, *scale, *width, width);
    if (s != BP_OK) return cli_fail_status(s, "reading a scaler", bp_net_last_error(net));
    return CLI_OK;
}

/* The model's loss from its metadata (written by `backprop train`), or --loss. */
static int model_loss(const bp_net *net, int given, int *loss)
{
    char buf[64];
    if (given > 0) {
        *loss = given;
        return CLI_OK;
    }
    if (!cli_meta(net, "loss", buf, sizeof buf) || cli_lookup(cli_losses, buf, loss) != 0)
        return cli_usage("the model does not record its loss (not written by 'backprop "
                         "train'): give --loss");
    return CLI_OK;
}

/* CSV defaults from the model's metadata, where the command line did not give them. */
static void csv_defaults(const bp_net *net, cli_data_opts *o, const char *path)
{
    char buf[64];
    if (!o->delimiter_set && cli_meta(net, "csv_delimiter", buf, sizeof buf))
        o->delimiter = !strcmp(buf, "tab") ? '\t' : buf[0] ? buf[0] : ',';
    /* The header: as given, else as the file shows (a first line that is not all numbers),
     * so that a model trained on a file with a header reads one without, and back. */
    if (!o->header_set && cli_data_format(o, path) == CLI_FORMAT_CSV) {
        int guess = cli_csv_has_header(path, o->delimiter);
        if (guess >= 0)
            o->header = guess;
        else if (cli_meta(net, "csv_header", buf, sizeof buf))
            o->header = buf[0] == '1';
    }
    if (!o->targets_set && cli_meta(net, "csv_targets", buf, sizeof buf)) {
        long first, count;
        if (sscanf(buf, "%ld:%ld", &first, &count) == 2 && first >= 0 && count >= 1) {
            o->target_first = first;
            o->target_count = count;
        }
    }
}

/* ----------------------------------------------------------------------------------------
 * eval
 * --------------------------------------------------------------------------------------*/

static const char eval_help[] =
    "Usage: backprop eval [options] MODEL DATA\n"
    "\n"
    "Loss and metrics of MODEL on the labelled data set DATA (read like 'backprop train'\n"
    "reads its data; the CSV delimiter and target columns default to those the model was\n"
    "trained with, the header to what the first line shows). Inputs are\n"
    "scaled with the model's stored scaler; mae and rmse are in the targets' original\n"
    "units, the loss in the units the model was trained in.\n"
    "\n"
    "Options:\n"
    "  --format F, --targets I[:N], --delimiter C, --header, --no-header, --labels FILE\n"
    "                      as for 'backprop train'\n"
    "  --loss L            the loss (default: the one the model was trained with)\n"
    "  -h, --help          this help\n"
    "\n"
    "Prints one 'name: value' line per metric on stdout.\n";

int cli_eval(int argc, char **argv)
{
    const char *model = NULL, *data = NULL;
    int loss_given = 0;
    cli_data_opts o;
    cli_data_opts_init(&o);
    cli_args a;
    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r = CLI_OK, d;
        if (cli_args_positional(&a)) {
            if (!model)
                model = a.arg;
            else if (!data)
                data = a.arg;
            else
                r = cli_args_unknown(&a);
        } else if (cli_args_is(&a, "--help", "-h")) {
            fputs(eval_help, stdout);
            return CLI_OK;
        } else if ((d = cli_data_option(&a, &o)) != 0) {
            r = d < 0 ? CLI_USAGE : CLI_OK;
        } else if (cli_args_is(&a, "--data", NULL)) {
            r = (data = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--loss", NULL)) {
            r = cli_args_name(&a, cli_losses, &loss_given);
        } else {
            r = cli_args_unknown(&a);
        }
        if (r != CLI_OK) return r;
    }
    if (!model || !data) return cli_usage("needs MODEL and DATA");

    bp_net *net = NULL;
    bp_dataset *ds = NULL;
    float *in_off = NULL, *in_sc = NULL, *t_off = NULL, *t_sc = NULL, *raw = NULL, *pred = NULL;
    size_t in_w = 0, t_w = 0;
    int loss, r, rc = load_model(&net, model);
    if (rc != CLI_OK) goto done;
    if ((rc = model_loss(net, loss_given, &loss)) != CLI_OK) goto done;
    rc = CLI_FAIL;
    csv_defaults(net, &o, data);
    if ((r = cli_load_dataset(&ds, data, &o)) != CLI_OK) {
        rc = r;
        goto done;
    }
    if (get_scaler(net, BP_SCALE_INPUTS, &in_off, &in_sc, &in_w) != CLI_OK ||
        get_scaler(net, BP_SCALE_TARGETS, &t_off, &t_sc, &t_w) != CLI_OK)
        goto done;
    size_t n = bp_dataset_size(ds), in = bp_dataset_input_size(ds),
           out = bp_dataset_output_size(ds);
    bp_status s;
    if (in != bp_net_input_size(net)) {
        cli_fail("%s: %zu input columns, the model takes %zu", data, in, bp_net_input_size(net));
        goto done;
    }
    if (in_w && (s = bp_dataset_apply_scaler(ds, BP_SCALE_INPUTS, in_off, in_sc, in_w)) != BP_OK) {
        cli_fail_status(s, "scaling the inputs", bp_dataset_last_error(ds));
        goto done;
    }
    /* Raw targets, kept for mae and rmse in original units. */
    size_t width = bp_net_output_size(net);
    int regression = loss == BP_LOSS_MSE || loss == BP_LOSS_MAE || loss == BP_LOSS_HUBER;
    if (regression && out == width) {
        raw = malloc(n * out * sizeof(float));
        if (!raw) {
            cli_fail("out of memory");
            goto done;
        }
        memcpy(raw, bp_dataset_targets(ds), n * out * sizeof(float));
    }
    if (t_w && out == t_w &&
        (s = bp_dataset_apply_scaler(ds, BP_SCALE_TARGETS, t_off, t_sc, t_w)) != BP_OK) {
        cli_fail_status(s, "scaling the targets", bp_dataset_last_error(ds));
        goto done;
    }
    double m[4];
    if ((s = bp_net_evaluate(net, loss, ds, m, 4)) != BP_OK) {
        cli_fail_status(s, "evaluation failed", bp_net_last_error(net));
        goto done;
    }
    char num[32];
    printf("rows: %zu\n", n);
    printf("loss: %s (%s%s)\n", cli_fmt(num, sizeof num, m[BP_METRIC_LOSS]),
           cli_name_of(cli_losses, loss), t_w ? ", scaled targets" : "");
    if (!isnan(m[BP_METRIC_ACCURACY]))
        printf("accuracy: %s\n", cli_fmt(num, sizeof num, m[BP_METRIC_ACCURACY]));
    if (raw) {
        pred = malloc(n * width * sizeof(float));
        if (!pred) {
            cli_fail("out of memory");
            goto done;
        }
        if ((s = bp_net_predict(net, bp_dataset_inputs(ds), n, pred, n * width)) != BP_OK ||
            (t_w && (s = bp_scaler_invert(t_off, t_sc, t_w, pred, n)) != BP_OK)) {
            cli_fail_status(s, "prediction failed", bp_net_last_error(net));
            goto done;
        }
        double sum_abs = 0.0, sum_sq = 0.0;
        for (size_t i = 0; i < n * width; i++) {
            double e = (double)pred[i] - (double)raw[i];
            sum_abs += fabs(e);
            sum_sq += e * e;
        }
        printf("mae: %s\n", cli_fmt(num, sizeof num, sum_abs / (double)(n * width)));
        printf("rmse: %s\n", cli_fmt(num, sizeof num, sqrt(sum_sq / (double)(n * width))));
    }
    rc = CLI_OK;
done:
    free(in_off);
    free(in_sc);
    free(t_off);
    free(t_sc);
    free(raw);
    free(pred);
    bp_dataset_free(ds);
    bp_net_free(net);
    return rc;
}

/* ----------------------------------------------------------------------------------------
 * predict
 * --------------------------------------------------------------------------------------*/

static const char predict_help[] =
    "Usage: backprop predict [options] MODEL DATA [-o OUT.csv]\n"
    "\n"
    "The outputs of MODEL for each row of DATA, as CSV (a header line, then one line per\n"
    "row), on stdout or in OUT.csv. Inputs are scaled with the model's stored scaler and\n"
    "outputs returned in the targets' original units.\n"
    "\n"
    "DATA is a CSV file of input rows (all columns are inputs; a file that also has the\n"
    "target columns the model was trained with has them skipped), a FANN file (its inputs\n"
    "are used) or, with --labels, IDX images. The CSV delimiter defaults to the one the\n"
    "model was trained with; a first line that is not all numbers is taken as a header\n"
    "unless --header or --no-header says otherwise.\n"
    "\n"
    "Output columns: y0, y1 ... for regression models; for classifiers (softmax-ce,\n"
    "sparse-ce) the class index, or with --proba the probabilities p0, p1 ...; for bce\n"
    "models the probabilities p0 ... (sigmoid of the logits), or with --logits the logits.\n"
    "\n"
    "Options:\n"
    "  --format F, --delimiter C, --header, --no-header, --labels FILE\n"
    "                      as for 'backprop train'\n"
    "  -o, --output FILE   write the CSV to FILE instead of stdout\n"
    "  --proba             classifiers: the class probabilities instead of the class\n"
    "  --logits            bce models: the logits instead of probabilities\n"
    "  --no-column-names   leave out the header line\n"
    "  -h, --help          this help\n";

static int read_inputs(cli_rows *rows, const bp_net *net, const char *path, cli_data_opts *o)
{
    int format = cli_data_format(o, path);
    size_t in = bp_net_input_size(net);
    if (format == CLI_FORMAT_CSV) {
        if (cli_read_csv(rows, path, o->delimiter, o->header) != CLI_OK) return CLI_FAIL;
        if (rows->width == in) return CLI_OK;
        long first = o->target_first, count = o->target_count;
        if (first >= 0 && rows->width == in + (size_t)count &&
            (size_t)(first + count) <= rows->width) {
            /* Drop the target columns the model was trained with. */
            size_t w = rows->width;
            for (size_t r = 0; r < rows->n; r++) {
                const float *src = rows->values + r * w;
                float *dst = rows->values + r * in;
                size_t k = 0;
                for (size_t c = 0; c < w; c++)
                    if (c < (size_t)first || c >= (size_t)(first + count)) dst[k++] = src[c];
            }
            rows->width = in;
            return CLI_OK;
        }
        cli_fail("%s: %zu columns, the model takes %zu inputs", path, rows->width, in);
        cli_rows_free(rows);
        return CLI_FAIL;
    }
    bp_dataset *ds;
    int r = cli_load_dataset(&ds, path, o);
    if (r != CLI_OK) return r;
    int rc = CLI_OK;
    size_t n = bp_dataset_size(ds);
    if (bp_dataset_input_size(ds) != in) {
        rc = cli_fail("%s: %zu inputs per row, the model takes %zu", path,
                      bp_dataset_input_size(ds), in);
    } else if (!(rows->values = malloc(n * in * sizeof(float)))) {
        rc = cli_fail("out of memory");
    } else {
        memcpy(rows->values, bp_dataset_inputs(ds), n * in * sizeof(float));
        rows->n = n;
        rows->width = in;
    }
    bp_dataset_free(ds);
    return rc;
}

int cli_predict(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *output = NULL;
    int proba = 0, logits = 0, names = 1;
    cli_data_opts o;
    cli_data_opts_init(&o);
    cli_args a;
    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r = CLI_OK, d;
        if (cli_args_positional(&a)) {
            if (!model)
                model = a.arg;
            else if (!data)
                data = a.arg;
            else
                r = cli_args_unknown(&a);
        } else if (cli_args_is(&a, "--help", "-h")) {
            fputs(predict_help, stdout);
            return CLI_OK;
        } else if ((d = cli_data_option(&a, &o)) != 0) {
            r = d < 0 ? CLI_USAGE : CLI_OK;
        } else if (cli_args_is(&a, "--data", NULL)) {
            r = (data = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--output", "-o")) {
            r = (output = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--proba", NULL)) {
            r = cli_args_no_value(&a) ? CLI_USAGE : CLI_OK;
            proba = 1;
        } else if (cli_args_is(&a, "--logits", NULL)) {
            r = cli_args_no_value(&a) ? CLI_USAGE : CLI_OK;
            logits = 1;
        } else if (cli_args_is(&a, "--no-column-names", NULL)) {
            r = cli_args_no_value(&a) ? CLI_USAGE : CLI_OK;
            names = 0;
        } else {
            r = cli_args_unknown(&a);
        }
        if (r != CLI_OK) return r;
    }
    if (!model || !data) return cli_usage("needs MODEL and DATA");
    if (o.targets_set)
        return cli_usage("--targets does not apply: the model knows its target columns");

    bp_net *net = NULL;
    cli_rows rows = {0};
    float *y = NULL;
    FILE *out = NULL;
    int loss = 0, r, rc = load_model(&net, model);
    if (rc != CLI_OK) goto done;
    rc = CLI_FAIL;
    char buf[64];
    if (cli_meta(net, "loss", buf, sizeof buf))
        cli_lookup(cli_losses, buf, &loss);
    else if (bp_net_layer_count(net) &&
             bp_layer_activation(bp_net_layer(net, bp_net_layer_count(net) - 1)) == BP_ACT_SOFTMAX)
        loss = BP_LOSS_SOFTMAX_CE;
    int classifier = loss == BP_LOSS_SOFTMAX_CE || loss == BP_LOSS_SPARSE_SOFTMAX_CE;
    if (proba && !classifier) {
        rc = cli_usage("--proba applies to classifiers (softmax-ce, sparse-ce) only");
        goto done;
    }
    if (logits && loss != BP_LOSS_BCE_LOGITS) {
        rc = cli_usage("--logits applies to bce models only");
        goto done;
    }
    csv_defaults(net, &o, data);
    if ((r = read_inputs(&rows, net, data, &o)) != CLI_OK) {
        rc = r;
        goto done;
    }
    /* Raw rows in, original units out: the library applies the stored scalers. */
    bp_status s = bp_net_set(net, BP_NET_APPLY_SCALERS, 1);
    if (s != BP_OK) {
        cli_fail_status(s, "scalers", bp_net_last_error(net));
        goto done;
    }
    size_t width = bp_net_output_size(net), chunk = 1024;
    if (!(y = malloc(chunk * width * sizeof(float)))) {
        cli_fail("out of memory");
        goto done;
    }
    out = output && strcmp(output, "-") ? fopen(output, "w") : stdout;
    if (!out) {
        cli_fail("%s: %s", output, strerror(errno));
        goto done;
    }
    if (names) {
        if (classifier && !proba)
            fputs("class\n", out);
        else
            for (size_t c = 0; c < width; c++)
                fprintf(out, "%s%s%zu%s", c ? "," : "",
                        classifier || (loss == BP_LOSS_BCE_LOGITS && !logits) ? "p" : "y", c,
                        c + 1 == width ? "\n" : "");
    }
    for (size_t r0 = 0; r0 < rows.n; r0 += chunk) {
        size_t n = rows.n - r0 < chunk ? rows.n - r0 : chunk;
        s = bp_net_predict(net, rows.values + r0 * rows.width, n, y, chunk * width);
        if (s != BP_OK) {
            cli_fail_status(s, "prediction failed", bp_net_last_error(net));
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            const float *row = y + i * width;
            if (classifier && !proba) {
                size_t best = 0;
                for (size_t c = 1; c < width; c++)
                    if (row[c] > row[best]) best = c;
                fprintf(out, "%zu\n", best);
                continue;
            }
            for (size_t c = 0; c < width; c++) {
                double v = (double)row[c];
                if (loss == BP_LOSS_BCE_LOGITS && !logits) v = 1.0 / (1.0 + exp(-v));
                fprintf(out, "%s%.9g", c ? "," : "", v);
            }
            fputc('\n', out);
        }
    }
    if (fflush(out) != 0 || ferror(out)) {
        cli_fail("%s: write error", output ? output : "stdout");
        goto done;
    }
    rc = CLI_OK;
done:
    if (out && out != stdout && fclose(out) != 0 && rc == CLI_OK)
        rc = cli_fail("%s: write error", output);
    free(y);
    cli_rows_free(&rows);
    bp_net_free(net);
    return rc;
}

/* ----------------------------------------------------------------------------------------
 * info
 * --------------------------------------------------------------------------------------*/

static const char info_help[] =
    "Usage: backprop info [options] MODEL\n"
    "\n"
    "Describe a model file: its format version, input and output widths, the layer table,\n"
    "the parameter count, the scalers and the metadata stored with it.\n"
    "\n"
    "Options:\n"
    "  --meta KEY          print only the metadata entry KEY (exit 1 if it is missing)\n"
    "  -h, --help          this help\n";

/* The format version from the file header (docs/format.md): 0 if not readable. */
static unsigned file_version(const char *path, int *gzip)
{
    unsigned char h[16];
    *gzip = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    if (got >= 2 && h[0] == 0x1f && h[1] == 0x8b) *gzip = 1;
    static const unsigned char magic[8] = {0x89, 'B', 'P', 'M', '\r', '\n', 0x1a, '\n'};
    if (got < 12 || memcmp(h, magic, 8) != 0) return 0;
    return (unsigned)h[8] | (unsigned)h[9] << 8 | (unsigned)h[10] << 16 | (unsigned)h[11] << 24;
}

static void print_meta(const bp_net *net, const char *key)
{
    size_t needed = 0;
    bp_status s = bp_net_get_meta(net, key, NULL, 0, &needed);
    if (s != BP_ERR_BUFFER_TOO_SMALL && s != BP_OK) return;
    char *value = malloc(needed ? needed : 1);
    if (value && bp_net_get_meta(net, key, value, needed, NULL) == BP_OK)
        printf("  %s: %s\n", key, value);
    free(value);
}

int cli_info(int argc, char **argv)
{
    const char *model = NULL, *meta_key = NULL;
    cli_args a;
    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r = CLI_OK;
        if (cli_args_positional(&a)) {
            if (model) r = cli_args_unknown(&a);
            model = a.arg;
        } else if (cli_args_is(&a, "--help", "-h")) {
            fputs(info_help, stdout);
            return CLI_OK;
        } else if (cli_args_is(&a, "--meta", NULL)) {
            r = (meta_key = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else {
            r = cli_args_unknown(&a);
        }
        if (r != CLI_OK) return r;
    }
    if (!model) return cli_usage("needs MODEL");
    bp_net *net = NULL;
    if (load_model(&net, model) != CLI_OK) return CLI_FAIL;
    int rc = CLI_OK;
    if (meta_key) {
        size_t needed = 0;
        bp_status s = bp_net_get_meta(net, meta_key, NULL, 0, &needed);
        char *value =
            s == BP_ERR_BUFFER_TOO_SMALL || s == BP_OK ? malloc(needed ? needed : 1) : NULL;
        if (value && bp_net_get_meta(net, meta_key, value, needed, NULL) == BP_OK)
            printf("%s\n", value);
        else
            rc = cli_fail("%s: no metadata entry '%s'", model, meta_key);
        free(value);
        bp_net_free(net);
        return rc;
    }
    int gzip;
    unsigned version = file_version(model, &gzip);
    printf("model: %s\n", model);
    if (version)
        printf("format version: %u (this library reads 1 .. %u)\n", version, bp_format_version());
    else
        printf("format version: %s (this library reads 1 .. %u)\n",
               gzip ? "gzip-compressed file" : "?", bp_format_version());
    printf("inputs: %zu\noutputs: %zu\nlayers: %zu\nparameters: %zu\n", bp_net_input_size(net),
           bp_net_output_size(net), bp_net_layer_count(net), bp_net_param_count(net));
    size_t needed = 0;
    bp_net_summary(net, NULL, 0, &needed);
    char *table = malloc(needed ? needed : 1);
    if (table && bp_net_summary(net, table, needed, NULL) == BP_OK) fputs(table, stdout);
    free(table);
    static const struct {
        int part;
        const char *name, *key;
    } parts[] = {{BP_SCALE_INPUTS, "input scaler", "scale_inputs"},
                 {BP_SCALE_TARGETS, "target scaler", "scale_targets"}};
    for (size_t i = 0; i < 2; i++) {
        size_t width = 0;
        char kind[32];
        bp_net_get_scaler(net, parts[i].part, NULL, NULL, 0, &width);
        if (!cli_meta(net, parts[i].key, kind, sizeof kind)) snprintf(kind, sizeof kind, "stored");
        if (width)
            printf("%s: %s, %zu column%s\n", parts[i].name, kind, width, width == 1 ? "" : "s");
        else
            printf("%s: none\n", parts[i].name);
    }
    printf("metadata:\n");
    for (size_t i = 0; cli_meta_keys[i]; i++)
        print_meta(net, cli_meta_keys[i]);
    size_t ulen = 0;
    if (bp_net_get_meta(net, "user_keys", NULL, 0, &ulen) == BP_ERR_BUFFER_TOO_SMALL) {
        char *keys = malloc(ulen);
        if (keys && bp_net_get_meta(net, "user_keys", keys, ulen, NULL) == BP_OK)
            for (char *k = strtok(keys, ","); k; k = strtok(NULL, ","))
                print_meta(net, k);
        free(keys);
    }
    bp_net_free(net);
    return rc;
}
