/* cli_train.c -- `backprop train`: load data, scale, build the layers, fit with a progress
 * display, save the model with its scalers and metadata. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char train_help[] =
    "Usage: backprop train [options] DATA -o MODEL\n"
    "\n"
    "Train a feed-forward network on the data set DATA and save it to MODEL (with the\n"
    "scalers and metadata that 'backprop predict' and 'backprop eval' use).\n"
    "\n"
    "Data (DATA may also be given as --data FILE):\n"
    "  --format F          auto (default: by --labels, then the file name: .data .train\n"
    "                      .test .fann are FANN, -ubyte .idx are IDX, the rest CSV), csv,\n"
    "                      fann, idx\n"
    "  --targets I[:N]     CSV: the N target columns starting at column I (from 0; -1 is\n"
    "                      the last column); default -1:1\n"
    "  --delimiter C       CSV: , ; | : tab or space (default ,)\n"
    "  --header            CSV: the first line holds column names; --no-header: it does\n"
    "                      not (default: a first line that is not all numbers is a header)\n"
    "  --labels FILE       IDX: the labels file (images are DATA); targets are classes\n"
    "  --val FILE          validation data, same format (--val-labels FILE for IDX)\n"
    "  --val-split F       hold out the fraction F (0..0.9) of DATA, after shuffling with\n"
    "                      the seed, for validation\n"
    "Network:\n"
    "  --layers SPEC       comma-separated layers, first hidden to output. A dense layer is\n"
    "                      UNITS[:ACTIVATION]; 'out' as UNITS is the target width (the class\n"
    "                      count for sparse-ce); 'dropout:RATE' and 'batchnorm' add those\n"
    "                      layers. The activation defaults to relu for hidden layers and to\n"
    "                      the loss's output for the last one (softmax for the ce losses,\n"
    "                      identity otherwise). Default: 32:relu,out.\n"
    "                      Activations: identity, sigmoid, tanh, relu, leaky_relu, elu,\n"
    "                      gelu, silu, softplus, softmax\n"
    "  --loss L            mse (default), mae, huber, bce (logits), softmax-ce (one-hot\n"
    "                      targets), sparse-ce (class indices; default for IDX)\n"
    "Training:\n"
    "  --optimizer O       adam (default), adamw, nadam, adamax, sgd, rmsprop, adagrad,\n"
    "                      irprop\n"
    "  --lr X              learning rate (default: the optimizer's, adam 0.001)\n"
    "  --momentum X        SGD and RMSprop momentum\n"
    "  --weight-decay X    L2 weight decay\n"
    "  --schedule S        constant (default), step, exponential, cosine, plateau\n"
    "  --epochs N          epochs (default 10)\n"
    "  --batch N           rows per step (default 32)\n"
    "  --patience N        early stopping: stop after N epochs without improvement of the\n"
    "                      validation loss (the training loss without validation data);\n"
    "                      0 (default) is off. However training ends, the saved model\n"
    "                      has the weights of the epoch with the lowest such loss\n"
    "  --min-delta X       an improvement must exceed X (default 0)\n"
    "  --scale S           input scaling fitted on the training rows: standard (default;\n"
    "                      none for IDX), minmax, none\n"
    "  --scale-targets S   target scaling for mse/mae/huber: standard (default), minmax,\n"
    "                      none; predictions are returned in the original units\n"
    "  --seed N            seeds initialisation, shuffling and the split (default 1)\n"
    "  --threads N         threads for the library (default: all cores)\n"
    "Output:\n"
    "  -o, --output MODEL  the model file to write (required; suggested extension .bpm)\n"
    "  --history FILE      write the per-epoch metrics as CSV\n"
    "  --meta KEY=VALUE    store a metadata entry with the model (repeatable)\n"
    "  --progress P        auto (default: a bar on a terminal, one line per epoch\n"
    "                      otherwise), bar, lines, none; progress goes to stderr\n"
    "  -q, --quiet         same as --progress none\n"
    "  -h, --help          this help\n"
    "\n"
    "Example:\n"
    "  backprop train census-house.train --val census-house.test \\\n"
    "      --layers 64:relu,64:relu,out --epochs 30 --patience 5 -o house.bpm\n";

enum { PROGRESS_AUTO, PROGRESS_BAR, PROGRESS_LINES, PROGRESS_NONE };
static const cli_name progress_names[] = {{"auto", PROGRESS_AUTO},
                                          {"bar", PROGRESS_BAR},
                                          {"lines", PROGRESS_LINES},
                                          {"none", PROGRESS_NONE},
                                          {NULL, 0}};

typedef struct progress {
    int mode;          /* PROGRESS_BAR, _LINES or _NONE */
    size_t epochs;     /* the epoch budget */
    int regression;    /* show mae */
    double unit_scale; /* divide mae by this for original units (1 if unknown) */
    double elapsed;    /* seconds so far */
    int drawn;         /* a bar is on the screen */
} progress;

static void put_metric(char *line, size_t cap, const char *name, double value)
{
    char num[32];
    if (isnan(value)) return;
    size_t used = strlen(line);
    if (used < cap)
        snprintf(line + used, cap - used, " - %s %s", name, cli_fmt(num, sizeof num, value));
}

static int on_epoch(void *user, size_t epoch, const double *m, size_t count)
{
    progress *p = user;
    if (p->mode == PROGRESS_NONE || count < BP_METRIC_COUNT) return 0;
    p->elapsed += m[BP_METRIC_SECONDS];
    char metrics[256] = "";
    put_metric(metrics, sizeof metrics, "loss", m[BP_METRIC_LOSS]);
    put_metric(metrics, sizeof metrics, "accuracy", m[BP_METRIC_ACCURACY]);
    if (p->regression) put_metric(metrics, sizeof metrics, "mae", m[BP_METRIC_MAE] / p->unit_scale);
    put_metric(metrics, sizeof metrics, "val_loss", m[BP_METRIC_VAL_LOSS]);
    put_metric(metrics, sizeof metrics, "val_accuracy", m[BP_METRIC_VAL_ACCURACY]);
    if (p->regression)
        put_metric(metrics, sizeof metrics, "val_mae", m[BP_METRIC_VAL_MAE] / p->unit_scale);
    size_t done = epoch + 1;
    if (p->mode == PROGRESS_LINES) {
        fprintf(stderr, "epoch %zu/%zu%s - lr %.3g - %.2fs\n", done, p->epochs, metrics,
                m[BP_METRIC_LEARNING_RATE], m[BP_METRIC_SECONDS]);
    } else {
        /* A Keras-like bar over the epochs, redrawn in place. */
        enum { WIDTH = 24 };
        char bar[WIDTH + 1];
        size_t fill = done >= p->epochs ? WIDTH : done * WIDTH / p->epochs;
        for (size_t i = 0; i < WIDTH; i++)
            bar[i] = i < fill ? '=' : (i == fill ? '>' : '.');
        bar[WIDTH] = '\0';
        double per = p->elapsed / (double)done;
        double eta = per * (double)(p->epochs > done ? p->epochs - done : 0);
        fprintf(stderr, "\r\033[K%zu/%zu [%s] %.2fs/epoch eta %.0fs%s", done, p->epochs, bar, per,
                eta, metrics);
        p->drawn = 1;
    }
    fflush(stderr);
    return 0;
}

/* Bar mode: the position within an epoch, from the library's batch callback (at most about
 * 10 calls a second; the epoch's last batch is left to on_epoch's line). */
static void on_batch(void *user, const bp_net *net, size_t epoch, size_t batch, size_t batches,
                     double loss)
{
    progress *p = user;
    (void)net;
    if (p->mode != PROGRESS_BAR || batch + 1 >= batches) return;
    char num[32];
    fprintf(stderr, "\r\033[K%zu/%zu batch %zu/%zu - loss %s", epoch + 1, p->epochs, batch + 1,
            batches, cli_fmt(num, sizeof num, loss));
    p->drawn = 1;
    fflush(stderr);
}

static int is_regression(int loss)
{
    return loss == BP_LOSS_MSE || loss == BP_LOSS_MAE || loss == BP_LOSS_HUBER;
}

/* Fit a scaler of @p kind on @p train, apply it to train and val, keep it with the net. */
static int scale_part(bp_net *net, bp_dataset *train, bp_dataset *val, int part, int kind,
                      float **offset, float **scale, size_t *width)
{
    size_t w =
        part == BP_SCALE_INPUTS ? bp_dataset_input_size(train) : bp_dataset_output_size(train);
    *offset = calloc(w, sizeof(float));
    *scale = calloc(w, sizeof(float));
    *width = w;
    if (!*offset || !*scale) return cli_fail("out of memory");
    bp_status s = bp_dataset_fit_scaler(train, kind, part, *offset, *scale, w);
    if (s == BP_OK) s = bp_dataset_apply_scaler(train, part, *offset, *scale, w);
    if (s != BP_OK)
        return cli_fail_status(s, "scaling the training data", bp_dataset_last_error(train));
    if (val && (s = bp_dataset_apply_scaler(val, part, *offset, *scale, w)) != BP_OK)
        return cli_fail_status(s, "scaling the validation data", bp_dataset_last_error(val));
    if ((s = bp_net_set_scaler(net, part, *offset, *scale, w)) != BP_OK)
        return cli_fail_status(s, "keeping the scaler", bp_net_last_error(net));
    return CLI_OK;
}

static int set_meta(bp_net *net, const char *key, const char *value)
{
    bp_status s = bp_net_set_meta(net, key, value);
    if (s != BP_OK) return cli_fail_status(s, "metadata", bp_net_last_error(net));
    return CLI_OK;
}

#define MAX_LAYERS 64
#define MAX_META   32

typedef struct train_opts {
    const char *data, *val_path, *val_labels, *output, *history, *layers_spec;
    const char *meta[MAX_META];
    size_t meta_count;
    cli_data_opts dopts;
    int loss, optimizer, schedule, scale, scale_targets, progress;
    long epochs, batch, patience, seed, threads;
    double lr, momentum, weight_decay, min_delta, val_split;
} train_opts;

static int parse_train(int argc, char **argv, train_opts *o)
{
    memset(o, 0, sizeof *o);
    cli_data_opts_init(&o->dopts);
    o->loss = o->scale = o->scale_targets = -1;
    o->optimizer = BP_OPTIMIZER_ADAM;
    o->schedule = BP_SCHEDULE_CONSTANT;
    o->progress = PROGRESS_AUTO;
    o->epochs = 10;
    o->batch = 32;
    o->seed = 1;
    o->lr = o->momentum = o->weight_decay = -1.0;
    o->layers_spec = "32:relu,out";
    cli_args a;
    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r = CLI_OK, d;
        if (cli_args_positional(&a)) {
            if (o->data) return cli_args_unknown(&a);
            o->data = a.arg;
        } else if (cli_args_is(&a, "--help", "-h")) {
            fputs(train_help, stdout);
            return -1;
        } else if ((d = cli_data_option(&a, &o->dopts)) != 0) {
            r = d < 0 ? CLI_USAGE : CLI_OK;
        } else if (cli_args_is(&a, "--data", NULL)) {
            r = (o->data = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--val", NULL)) {
            r = (o->val_path = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--val-labels", NULL)) {
            r = (o->val_labels = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--val-split", NULL)) {
            r = cli_args_double(&a, &o->val_split, 0.0, 0.9);
        } else if (cli_args_is(&a, "--output", "-o")) {
            r = (o->output = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--history", NULL)) {
            r = (o->history = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--layers", NULL)) {
            r = (o->layers_spec = cli_args_value(&a)) ? CLI_OK : CLI_USAGE;
        } else if (cli_args_is(&a, "--loss", NULL)) {
            r = cli_args_name(&a, cli_losses, &o->loss);
        } else if (cli_args_is(&a, "--optimizer", NULL)) {
            r = cli_args_name(&a, cli_optimizers, &o->optimizer);
        } else if (cli_args_is(&a, "--schedule", NULL)) {
            r = cli_args_name(&a, cli_schedules, &o->schedule);
        } else if (cli_args_is(&a, "--scale", NULL)) {
            r = cli_args_name(&a, cli_scalers, &o->scale);
        } else if (cli_args_is(&a, "--scale-targets", NULL)) {
            r = cli_args_name(&a, cli_scalers, &o->scale_targets);
        } else if (cli_args_is(&a, "--progress", NULL)) {
            r = cli_args_name(&a, progress_names, &o->progress);
        } else if (cli_args_is(&a, "--quiet", "-q")) {
            r = cli_args_no_value(&a) ? CLI_USAGE : CLI_OK;
            o->progress = PROGRESS_NONE;
        } else if (cli_args_is(&a, "--lr", NULL)) {
            r = cli_args_double(&a, &o->lr, 0.0, 1e3);
        } else if (cli_args_is(&a, "--momentum", NULL)) {
            r = cli_args_double(&a, &o->momentum, 0.0, 0.999999);
        } else if (cli_args_is(&a, "--weight-decay", NULL)) {
            r = cli_args_double(&a, &o->weight_decay, 0.0, 1e3);
        } else if (cli_args_is(&a, "--min-delta", NULL)) {
            r = cli_args_double(&a, &o->min_delta, 0.0, 1e9);
        } else if (cli_args_is(&a, "--epochs", NULL)) {
            r = cli_args_long(&a, &o->epochs, 1, 1000000000L);
        } else if (cli_args_is(&a, "--batch", NULL)) {
            r = cli_args_long(&a, &o->batch, 1, 2147483647L);
        } else if (cli_args_is(&a, "--patience", NULL)) {
            r = cli_args_long(&a, &o->patience, 0, 1000000000L);
        } else if (cli_args_is(&a, "--seed", NULL)) {
            r = cli_args_long(&a, &o->seed, 0, 2147483647L);
        } else if (cli_args_is(&a, "--threads", NULL)) {
            r = cli_args_long(&a, &o->threads, 1, 1024);
        } else if (cli_args_is(&a, "--meta", NULL)) {
            const char *v = cli_args_value(&a);
            const char *eq = v ? strchr(v, '=') : NULL;
            if (!v)
                r = CLI_USAGE;
            else if (!eq || eq == v || memchr(v, ',', (size_t)(eq - v)))
                r = cli_usage("--meta: '%s' is not KEY=VALUE (a key without ',')", v);
            else if (o->meta_count == MAX_META)
                r = cli_usage("--meta: at most %d entries", MAX_META);
            else
                o->meta[o->meta_count++] = v;
        } else {
            r = cli_args_unknown(&a);
        }
        if (r != CLI_OK) return r;
    }
    if (!o->data) return cli_usage("no training data (give DATA or --data FILE)");
    if (!o->output) return cli_usage("no output file (give -o MODEL)");
    if (o->val_path && o->val_split > 0.0)
        return cli_usage("--val and --val-split exclude each other");
    return CLI_OK;
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int cli_train(int argc, char **argv)
{
    train_opts o;
    int rc = parse_train(argc, argv, &o);
    if (rc < 0) return CLI_OK; /* --help */
    if (rc != CLI_OK) return rc;

    cli_layer layers[MAX_LAYERS];
    size_t nlayers = cli_parse_layers(o.layers_spec, layers, MAX_LAYERS);
    if (!nlayers) return CLI_USAGE;
    int format = cli_data_format(&o.dopts, o.data);
    if (o.loss < 0) o.loss = format == CLI_FORMAT_IDX ? BP_LOSS_SPARSE_SOFTMAX_CE : BP_LOSS_MSE;
    if (o.scale < 0) o.scale = format == CLI_FORMAT_IDX ? 0 : BP_SCALE_STANDARD;
    if (o.scale_targets < 0)
        o.scale_targets = is_regression(o.loss) ? BP_SCALE_STANDARD : 0;
    else if (o.scale_targets && !is_regression(o.loss))
        return cli_usage("--scale-targets applies to mse, mae and huber only");
    int ce = o.loss == BP_LOSS_SOFTMAX_CE || o.loss == BP_LOSS_SPARSE_SOFTMAX_CE;
    cli_layer *last = &layers[nlayers - 1];
    if (last->activation < 0) last->activation = ce ? BP_ACT_SOFTMAX : BP_ACT_IDENTITY;
    if (ce && last->activation != BP_ACT_SOFTMAX)
        return cli_usage("--loss %s needs a softmax output layer", cli_name_of(cli_losses, o.loss));
    for (size_t i = 0; i + 1 < nlayers; i++) {
        if (layers[i].kind == CLI_LAYER_DENSE && layers[i].activation < 0)
            layers[i].activation = BP_ACT_RELU;
        if (layers[i].kind == CLI_LAYER_DENSE && layers[i].activation == BP_ACT_SOFTMAX)
            return cli_usage("--layers: softmax is for the output layer only");
    }

    bp_dataset *train = NULL, *val = NULL, *all = NULL;
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    float *in_off = NULL, *in_scale = NULL, *t_off = NULL, *t_scale = NULL;
    size_t in_w = 0, t_w = 0;
    bp_status s;
    int r;
    rc = CLI_FAIL;

    if (o.threads > 0 && (s = bp_set_num_threads((int)o.threads)) != BP_OK) {
        cli_fail_status(s, "--threads", NULL);
        goto done;
    }
    if ((r = cli_load_dataset(&all, o.data, &o.dopts)) != CLI_OK) {
        rc = r;
        goto done;
    }
    if (o.val_path) {
        cli_data_opts vo = o.dopts;
        vo.labels = o.val_labels ? o.val_labels : (format == CLI_FORMAT_IDX ? NULL : vo.labels);
        if (format == CLI_FORMAT_IDX && !vo.labels) {
            rc = cli_usage("--val with IDX data needs --val-labels FILE");
            goto done;
        }
        vo.format = format;
        if ((r = cli_load_dataset(&val, o.val_path, &vo)) != CLI_OK) {
            rc = r;
            goto done;
        }
        train = all;
        all = NULL;
    } else if (o.val_split > 0.0) {
        if ((s = bp_dataset_shuffle(all, (uint64_t)o.seed)) != BP_OK ||
            (s = bp_dataset_split(&train, &val, all, 1.0 - o.val_split)) != BP_OK) {
            cli_fail_status(s, "--val-split", bp_dataset_last_error(all));
            goto done;
        }
    } else {
        train = all;
        all = NULL;
    }

    /* The output width: the target width, or the class count for class indices. */
    size_t out_units = bp_dataset_output_size(train);
    if (o.loss == BP_LOSS_SPARSE_SOFTMAX_CE) {
        if (out_units != 1) {
            rc = cli_usage("--loss sparse-ce needs one target column of class indices, the "
                           "data has %zu",
                           out_units);
            goto done;
        }
        if ((s = bp_dataset_class_count(train, &out_units)) != BP_OK) {
            cli_fail_status(s, "class labels", bp_dataset_last_error(train));
            goto done;
        }
        if (val) {
            size_t vc;
            if ((s = bp_dataset_class_count(val, &vc)) != BP_OK) {
                cli_fail_status(s, "validation class labels", bp_dataset_last_error(val));
                goto done;
            }
            if (vc > out_units) out_units = vc;
        }
    }
    if (last->units == 0) last->units = out_units;

    if ((s = bp_net_create(&net, bp_dataset_input_size(train), (uint64_t)o.seed)) != BP_OK) {
        cli_fail_status(s, "creating the network", NULL);
        goto done;
    }
    for (size_t i = 0; i < nlayers; i++) {
        const cli_layer *l = &layers[i];
        if (l->kind == CLI_LAYER_DENSE)
            s = bp_net_add_dense(net, l->units, l->activation);
        else if (l->kind == CLI_LAYER_DROPOUT)
            s = bp_net_add_dropout(net, l->rate);
        else
            s = bp_net_add_batchnorm(net);
        if (s != BP_OK) {
            char what[48];
            snprintf(what, sizeof what, "--layers: layer %zu", i + 1);
            cli_fail_status(s, what, bp_net_last_error(net));
            rc = CLI_USAGE;
            goto done;
        }
    }
    if (o.loss != BP_LOSS_SPARSE_SOFTMAX_CE && last->units != bp_dataset_output_size(train)) {
        rc = cli_usage("--layers: the output layer has %zu units but the data has %zu target "
                       "columns (use 'out' as the last layer's units)",
                       last->units, bp_dataset_output_size(train));
        goto done;
    }
    if (o.loss == BP_LOSS_SPARSE_SOFTMAX_CE && last->units < out_units) {
        rc = cli_usage("--layers: the output layer has %zu units but the labels have %zu "
                       "classes",
                       last->units, out_units);
        goto done;
    }

    if (o.scale &&
        scale_part(net, train, val, BP_SCALE_INPUTS, o.scale, &in_off, &in_scale, &in_w) != CLI_OK)
        goto done;
    if (o.scale_targets && scale_part(net, train, val, BP_SCALE_TARGETS, o.scale_targets, &t_off,
                                      &t_scale, &t_w) != CLI_OK)
        goto done;

    if ((s = bp_optimizer_create(&opt, o.optimizer)) != BP_OK) {
        cli_fail_status(s, "optimizer", NULL);
        goto done;
    }
    const struct {
        int key;
        double value;
    } opt_settings[] = {{BP_OPT_LEARNING_RATE, o.lr},
                        {BP_OPT_MOMENTUM, o.momentum},
                        {BP_OPT_WEIGHT_DECAY, o.weight_decay}};
    for (size_t i = 0; i < 3; i++)
        if (opt_settings[i].value >= 0.0 &&
            (s = bp_optimizer_set(opt, opt_settings[i].key, opt_settings[i].value)) != BP_OK) {
            cli_fail_status(s, "optimizer", bp_optimizer_last_error(opt));
            rc = CLI_USAGE;
            goto done;
        }
    const struct {
        int key;
        double value;
    } fit_settings[] = {{BP_FIT_EPOCHS, (double)o.epochs},
                        {BP_FIT_BATCH_SIZE, (double)o.batch},
                        {BP_FIT_PATIENCE, (double)o.patience},
                        {BP_FIT_MIN_DELTA, o.min_delta},
                        {BP_FIT_RESTORE_BEST, 1.0},
                        {BP_FIT_KEEP_BEST, 1.0}, /* the best epoch's weights, always */
                        {BP_FIT_SCHEDULE, (double)o.schedule}};
    for (size_t i = 0; i < sizeof fit_settings / sizeof fit_settings[0]; i++)
        if ((s = bp_net_set(net, fit_settings[i].key, fit_settings[i].value)) != BP_OK) {
            cli_fail_status(s, "training settings", bp_net_last_error(net));
            goto done;
        }

    progress prog = {0};
    prog.mode = o.progress;
    if (prog.mode == PROGRESS_AUTO)
        prog.mode = isatty(STDERR_FILENO) ? PROGRESS_BAR : PROGRESS_LINES;
    prog.epochs = (size_t)o.epochs;
    prog.regression = is_regression(o.loss);
    prog.unit_scale = t_w == 1 ? (double)t_scale[0] : 1.0;
    bp_net_set_epoch_callback(net, on_epoch, &prog);
    bp_net_set_batch_callback(net, on_batch, &prog);

    double t0 = now_seconds();
    s = bp_net_fit(net, opt, o.loss, train, val);
    double seconds = now_seconds() - t0;
    if (prog.drawn) fputc('\n', stderr);
    bp_net_set_epoch_callback(net, NULL, NULL);
    bp_net_set_batch_callback(net, NULL, NULL);
    if (s != BP_OK) {
        cli_fail_status(s, "training failed", bp_net_last_error(net));
        goto done;
    }

    /* The best epoch of the monitored loss, whose weights BP_FIT_KEEP_BEST kept. */
    size_t hist = bp_net_history_length(net), best = 0;
    int monitor = val ? BP_METRIC_VAL_LOSS : BP_METRIC_LOSS;
    double best_loss = (double)NAN, last_loss = (double)NAN;
    if (hist > 0 && bp_net_history_best(net, &best) == BP_OK) {
        (void)bp_net_history_get(net, best, monitor, &best_loss);
        (void)bp_net_history_get(net, hist - 1, monitor, &last_loss);
    }

    char buf[512], num[32], num2[32];
    const struct {
        const char *key, *value;
    } meta[] = {{"created_by", "backprop train " BP_VERSION_STRING},
                {"data", o.data},
                {"data_format", cli_name_of(cli_formats, format)},
                {"loss", cli_name_of(cli_losses, o.loss)},
                {"layers", o.layers_spec},
                {"optimizer", cli_name_of(cli_optimizers, o.optimizer)},
                {"scale_inputs", cli_name_of(cli_scalers, o.scale)},
                {"scale_targets", cli_name_of(cli_scalers, o.scale_targets)}};
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++)
        if (set_meta(net, meta[i].key, meta[i].value) != CLI_OK) goto done;
    snprintf(buf, sizeof buf, "%zu", hist);
    if (set_meta(net, "epochs_trained", buf) != CLI_OK) goto done;
    snprintf(buf, sizeof buf, "%ld", o.seed);
    if (set_meta(net, "seed", buf) != CLI_OK) goto done;
    if (format == CLI_FORMAT_CSV) {
        snprintf(buf, sizeof buf, "%ld:%ld", o.dopts.target_first, o.dopts.target_count);
        char delim[2] = {(char)o.dopts.delimiter, '\0'};
        if (set_meta(net, "csv_targets", buf) != CLI_OK ||
            set_meta(net, "csv_delimiter", o.dopts.delimiter == '\t' ? "tab" : delim) != CLI_OK ||
            set_meta(net, "csv_header", o.dopts.header ? "1" : "0") != CLI_OK)
            goto done;
    }
    char user_keys[1024] = "";
    for (size_t i = 0; i < o.meta_count; i++) {
        char key[256];
        const char *eq = strchr(o.meta[i], '=');
        size_t klen = (size_t)(eq - o.meta[i]);
        if (klen >= sizeof key) {
            rc = cli_usage("--meta: key '%.20s...' is longer than 255 bytes", o.meta[i]);
            goto done;
        }
        memcpy(key, o.meta[i], klen);
        key[klen] = '\0';
        if ((s = bp_net_set_meta(net, key, eq + 1)) != BP_OK) {
            cli_fail_status(s, "--meta", bp_net_last_error(net));
            rc = CLI_USAGE;
            goto done;
        }
        size_t used = strlen(user_keys);
        snprintf(user_keys + used, sizeof user_keys - used, "%s%s", used ? "," : "", key);
    }
    if (o.meta_count && set_meta(net, "user_keys", user_keys) != CLI_OK) goto done;

    if ((s = bp_net_save(net, o.output)) != BP_OK) {
        cli_fail_status(s, "cannot save the model", bp_net_last_error(net));
        goto done;
    }
    if (o.history && (s = bp_net_history_save_csv(net, o.history)) != BP_OK) {
        cli_fail_status(s, "cannot write the history", bp_net_last_error(net));
        goto done;
    }
    /* However training ended, fit kept the best epoch's weights (BP_FIT_KEEP_BEST). */
    const char *monitored = val ? "val_loss" : "loss";
    printf("trained %zu epoch%s in %.1f s%s: kept the weights of epoch %zu (%s %s; last epoch "
           "%s)\n",
           hist, hist == 1 ? "" : "s", seconds,
           hist < (size_t)o.epochs && o.patience > 0 ? ", stopped early" : "", best + 1, monitored,
           cli_fmt(num2, sizeof num2, best_loss), cli_fmt(num, sizeof num, last_loss));
    printf("saved %s: %zu inputs, %zu output%s, %zu parameters\n", o.output, bp_net_input_size(net),
           bp_net_output_size(net), bp_net_output_size(net) == 1 ? "" : "s",
           bp_net_param_count(net));
    rc = CLI_OK;

done:
    free(in_off);
    free(in_scale);
    free(t_off);
    free(t_scale);
    bp_optimizer_free(opt);
    bp_net_free(net);
    bp_dataset_free(all);
    bp_dataset_free(train);
    bp_dataset_free(val);
    return rc;
}
