/* cli_args.c -- option parsing, the name tables, and the --layers spec. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const cli_name cli_activations[] = {{"identity", BP_ACT_IDENTITY},
                                    {"linear", BP_ACT_IDENTITY},
                                    {"sigmoid", BP_ACT_SIGMOID},
                                    {"tanh", BP_ACT_TANH},
                                    {"relu", BP_ACT_RELU},
                                    {"leaky_relu", BP_ACT_LEAKY_RELU},
                                    {"leaky-relu", BP_ACT_LEAKY_RELU},
                                    {"elu", BP_ACT_ELU},
                                    {"gelu", BP_ACT_GELU},
                                    {"silu", BP_ACT_SILU},
                                    {"swish", BP_ACT_SILU},
                                    {"softplus", BP_ACT_SOFTPLUS},
                                    {"softmax", BP_ACT_SOFTMAX},
                                    {NULL, 0}};

const cli_name cli_losses[] = {{"mse", BP_LOSS_MSE},
                               {"mae", BP_LOSS_MAE},
                               {"huber", BP_LOSS_HUBER},
                               {"bce", BP_LOSS_BCE_LOGITS},
                               {"bce-logits", BP_LOSS_BCE_LOGITS},
                               {"softmax-ce", BP_LOSS_SOFTMAX_CE},
                               {"ce", BP_LOSS_SOFTMAX_CE},
                               {"sparse-ce", BP_LOSS_SPARSE_SOFTMAX_CE},
                               {NULL, 0}};

const cli_name cli_optimizers[] = {{"sgd", BP_OPTIMIZER_SGD},
                                   {"adagrad", BP_OPTIMIZER_ADAGRAD},
                                   {"rmsprop", BP_OPTIMIZER_RMSPROP},
                                   {"adam", BP_OPTIMIZER_ADAM},
                                   {"adamw", BP_OPTIMIZER_ADAMW},
                                   {"adamax", BP_OPTIMIZER_ADAMAX},
                                   {"nadam", BP_OPTIMIZER_NADAM},
                                   {"irprop", BP_OPTIMIZER_IRPROP_MINUS},
                                   {"irprop-", BP_OPTIMIZER_IRPROP_MINUS},
                                   {NULL, 0}};

const cli_name cli_scalers[] = {
    {"none", 0}, {"standard", BP_SCALE_STANDARD}, {"minmax", BP_SCALE_MINMAX}, {NULL, 0}};

const cli_name cli_schedules[] = {
    {"constant", BP_SCHEDULE_CONSTANT},       {"step", BP_SCHEDULE_STEP},
    {"exponential", BP_SCHEDULE_EXPONENTIAL}, {"cosine", BP_SCHEDULE_COSINE},
    {"plateau", BP_SCHEDULE_PLATEAU},         {NULL, 0}};

int cli_lookup(const cli_name *table, const char *name, int *value)
{
    for (; table->name; table++)
        if (!strcmp(table->name, name)) {
            *value = table->value;
            return 0;
        }
    return -1;
}

const char *cli_name_of(const cli_name *table, int value)
{
    for (; table->name; table++)
        if (table->value == value) return table->name;
    return "?";
}

void cli_names_list(const cli_name *table, char *buf, size_t capacity)
{
    size_t used = 0;
    buf[0] = '\0';
    for (; table->name && used < capacity; table++) {
        int k = snprintf(buf + used, capacity - used, "%s%s", used ? ", " : "", table->name);
        if (k < 0) break;
        used += (size_t)k;
    }
}

void cli_args_init(cli_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->argc = argc;
    a->argv = argv;
}

int cli_args_next(cli_args *a)
{
    if (a->next >= a->argc) return 0;
    a->arg = a->argv[a->next++];
    a->name[0] = '\0';
    a->inline_v = NULL;
    if (!a->options_done && !strcmp(a->arg, "--")) {
        a->options_done = 1;
        return cli_args_next(a);
    }
    if (a->options_done || a->arg[0] != '-' || !a->arg[1])
        return 1; /* positional ("-" alone is too: standard input/output) */
    const char *eq = a->arg[1] == '-' ? strchr(a->arg, '=') : NULL;
    size_t len = eq ? (size_t)(eq - a->arg) : strlen(a->arg);
    if (len >= sizeof a->name) len = sizeof a->name - 1;
    memcpy(a->name, a->arg, len);
    a->name[len] = '\0';
    a->inline_v = eq ? eq + 1 : NULL;
    return 1;
}

int cli_args_positional(const cli_args *a)
{
    return a->name[0] == '\0';
}

int cli_args_is(const cli_args *a, const char *name, const char *alias)
{
    return a->name[0] && (!strcmp(a->name, name) || (alias && !strcmp(a->name, alias)));
}

const char *cli_args_value(cli_args *a)
{
    if (a->inline_v) return a->inline_v;
    if (a->next >= a->argc) {
        cli_usage("option %s needs a value", a->name);
        return NULL;
    }
    return a->argv[a->next++];
}

int cli_args_no_value(const cli_args *a)
{
    if (a->inline_v) {
        cli_usage("option %s takes no value", a->name);
        return 1;
    }
    return 0;
}

int cli_args_long(cli_args *a, long *out, long lo, long hi)
{
    const char *v = cli_args_value(a);
    if (!v) return CLI_USAGE;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno) return cli_usage("%s: '%s' is not a whole number", a->name, v);
    if (x < lo || x > hi) return cli_usage("%s: %ld is outside %ld..%ld", a->name, x, lo, hi);
    *out = x;
    return CLI_OK;
}

int cli_args_double(cli_args *a, double *out, double lo, double hi)
{
    const char *v = cli_args_value(a);
    if (!v) return CLI_USAGE;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x))
        return cli_usage("%s: '%s' is not a number", a->name, v);
    if (x < lo || x > hi) return cli_usage("%s: %g is outside [%g, %g]", a->name, x, lo, hi);
    *out = x;
    return CLI_OK;
}

int cli_args_name(cli_args *a, const cli_name *table, int *value)
{
    const char *v = cli_args_value(a);
    if (!v) return CLI_USAGE;
    if (cli_lookup(table, v, value) == 0) return CLI_OK;
    char names[512];
    cli_names_list(table, names, sizeof names);
    return cli_usage("%s: unknown value '%s' (one of: %s)", a->name, v, names);
}

int cli_args_unknown(const cli_args *a)
{
    if (cli_args_positional(a)) return cli_usage("unexpected argument '%s'", a->arg);
    return cli_usage("unknown option '%s'", a->name);
}

/* One item: "N[:act]", "out[:act]", "dropout:RATE", "batchnorm". */
static int parse_layer(const char *item, size_t len, cli_layer *layer)
{
    char text[128];
    if (len == 0) return cli_usage("--layers: empty layer in the list"), -1;
    if (len >= sizeof text) return cli_usage("--layers: layer '%.20s...' is too long", item), -1;
    memcpy(text, item, len);
    text[len] = '\0';
    char *colon = strchr(text, ':');
    const char *arg = NULL;
    if (colon) {
        *colon = '\0';
        arg = colon + 1;
    }
    memset(layer, 0, sizeof *layer);
    layer->activation = -1;
    if (!strcmp(text, "batchnorm") || !strcmp(text, "bn")) {
        if (arg) return cli_usage("--layers: '%s' takes no argument", text), -1;
        layer->kind = CLI_LAYER_BATCHNORM;
        return 0;
    }
    if (!strcmp(text, "dropout")) {
        char *end;
        double rate = arg ? strtod(arg, &end) : -1.0;
        if (!arg || end == arg || *end || !(rate >= 0.0 && rate < 1.0))
            return cli_usage("--layers: dropout needs a rate in [0, 1), e.g. dropout:0.2"), -1;
        layer->kind = CLI_LAYER_DROPOUT;
        layer->rate = rate;
        return 0;
    }
    layer->kind = CLI_LAYER_DENSE;
    if (strcmp(text, "out") != 0) {
        char *end;
        errno = 0;
        unsigned long long units = strtoull(text, &end, 10);
        if (end == text || *end || errno || text[0] == '-' || units == 0 || units > 16777216ULL)
            return cli_usage("--layers: '%s' is not a layer (units 1..16777216, 'out', "
                             "'dropout:RATE' or 'batchnorm')",
                             text),
                   -1;
        layer->units = (size_t)units;
    }
    if (arg && cli_lookup(cli_activations, arg, &layer->activation) != 0) {
        char names[512];
        cli_names_list(cli_activations, names, sizeof names);
        return cli_usage("--layers: unknown activation '%s' (one of: %s)", arg, names), -1;
    }
    return 0;
}

size_t cli_parse_layers(const char *spec, cli_layer *layers, size_t capacity)
{
    size_t count = 0;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (count == capacity) {
            cli_usage("--layers: more than %zu layers", capacity);
            return 0;
        }
        if (parse_layer(p, len, &layers[count]) != 0) return 0;
        count++;
        if (!comma) break;
        p = comma + 1;
    }
    size_t dense = 0;
    for (size_t i = 0; i < count; i++)
        dense += layers[i].kind == CLI_LAYER_DENSE;
    if (!dense || layers[count - 1].kind != CLI_LAYER_DENSE) {
        cli_usage("--layers: the last layer must be a dense layer (units or 'out')");
        return 0;
    }
    return count;
}
