/* cli_main.c -- `backprop`: dispatch to the verbs, --version, --help, messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

const char *cli_verb = "";

static void vmessage(const char *fmt, va_list ap) CLI_PRINTF(1, 0);

static void vmessage(const char *fmt, va_list ap)
{
    fprintf(stderr, "backprop%s%s: ", cli_verb[0] ? " " : "", cli_verb);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    return CLI_FAIL;
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'backprop%s%s --help'.\n", cli_verb[0] ? " " : "", cli_verb);
    return CLI_USAGE;
}

int cli_fail_status(bp_status status, const char *what, const char *detail)
{
    const char *text = detail && detail[0] ? detail : bp_last_error();
    if (!text || !text[0]) text = bp_status_string(status);
    return cli_fail("%s: %s", what, text);
}

static const char usage_text[] =
    "Usage: backprop <command> [options]\n"
    "       backprop --version | --help\n"
    "\n"
    "Train and use feed-forward neural networks (libbackprop) from the shell.\n"
    "\n"
    "Commands:\n"
    "  train     train a network on a CSV, FANN or IDX data set and save the model\n"
    "  eval      loss and metrics of a saved model on a labelled data set\n"
    "  predict   outputs of a saved model for the rows of a CSV or FANN file, as CSV,\n"
    "            in the original units of the targets\n"
    "  info      summary, parameters, scalers, metadata and format version of a model\n"
    "  pack      convert a CSV, FANN or IDX data set into a binary data-set file for\n"
    "            memory-mapped training (bp_dataset_open_mapped)\n"
    "\n"
    "'backprop <command> --help' describes each command; 'man backprop' has examples.\n"
    "Exit status: 0 success, 1 run-time failure (e.g. a bad file), 2 usage error.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("backprop: no command given\n", stderr);
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    const char *verb = argv[1];
    if (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
        fputs(usage_text, stdout);
        return CLI_OK;
    }
    if (!strcmp(verb, "--version") || !strcmp(verb, "-V")) {
        printf("backprop %s (libbackprop %s, model format %u)\n", BP_VERSION_STRING,
               bp_version_string(), bp_format_version());
        printf("%s\n", bp_backend_info());
        return CLI_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } verbs[] = {{"train", cli_train},
                 {"eval", cli_eval},
                 {"predict", cli_predict},
                 {"info", cli_info},
                 {"pack", cli_pack}};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (!strcmp(verb, verbs[i].name)) {
            cli_verb = verbs[i].name;
            return verbs[i].fn(argc - 2, argv + 2);
        }
    if (verb[0] == '-')
        fprintf(stderr, "backprop: unknown option '%s'\n", verb);
    else
        fprintf(stderr,
                "backprop: unknown command '%s' (commands: train, eval, predict, info, pack)\n",
                verb);
    fputs("Try 'backprop --help'.\n", stderr);
    return CLI_USAGE;
}
