/* cli.h -- the `backprop` command-line tool: shared declarations of its modules.
 *
 * The tool uses the public API only (include/backprop.h): it is a library user like any
 * other. Modules: cli_main.c (dispatch, --version, --help), cli_args.c (option parsing and
 * the name tables), cli_data.c (loading data sets, reading and writing CSV), cli_train.c
 * (`train` and its progress display), cli_model.c (`eval`, `predict`, `info`), cli_pack.c
 * (`pack`: data sets into binary data-set files).
 *
 * Exit codes: CLI_OK (0) success, CLI_FAIL (1) a run-time failure (a bad file, a training
 * error), CLI_USAGE (2) a usage error. Every failure prints one message on stderr that
 * starts with "backprop <verb>: " and names the problem.
 */
#ifndef BP_CLI_H
#define BP_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "backprop.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

#if defined(__GNUC__) || defined(__clang__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* --- messages (cli_main.c) ---------------------------------------------------------- */

/** The verb being run ("train" ...), for messages; "" before dispatch. */
extern const char *cli_verb;

/** Print "backprop <verb>: <message>\n" on stderr and return CLI_FAIL. */
int cli_fail(const char *fmt, ...) CLI_PRINTF(1, 2);

/** As cli_fail(), then "Try 'backprop <verb> --help'." and return CLI_USAGE. */
int cli_usage(const char *fmt, ...) CLI_PRINTF(1, 2);

/** Report a failed library call: "<what>: <bp_last_error() or status string>"; CLI_FAIL. */
int cli_fail_status(bp_status status, const char *what, const char *detail);

/* --- arguments (cli_args.c) --------------------------------------------------------- */

/** Iterator over a verb's arguments: options "--name value", "--name=value", "-x value",
 *  and positional arguments; "--" ends the options. */
typedef struct cli_args {
    int argc;
    char **argv;
    int next;             /* index of the next argument */
    int options_done;     /* after "--" */
    const char *arg;      /* the current argument as given */
    char name[64];        /* the current option's name without "=value"; "" if positional */
    const char *inline_v; /* the value after '=' or NULL */
} cli_args;

void cli_args_init(cli_args *a, int argc, char **argv);
/** Advance; 0 at the end. */
int cli_args_next(cli_args *a);
/** 1 if the current argument is positional. */
int cli_args_positional(const cli_args *a);
/** 1 if the current option is @p name (or @p alias, may be NULL). */
int cli_args_is(const cli_args *a, const char *name, const char *alias);
/** The current option's value; NULL (message printed) if missing. */
const char *cli_args_value(cli_args *a);
/** 1 if the option takes no value but got one ("--header=1"): usage message printed. */
int cli_args_no_value(const cli_args *a);
/** Parse the current option's value as a whole number in [lo, hi]; CLI_OK or CLI_USAGE. */
int cli_args_long(cli_args *a, long *out, long lo, long hi);
/** Parse the current option's value as a finite number in [lo, hi]; CLI_OK or CLI_USAGE. */
int cli_args_double(cli_args *a, double *out, double lo, double hi);
/** Usage error for an unknown option or a surplus positional argument. */
int cli_args_unknown(const cli_args *a);

/** A name/value table row; tables end with a NULL name. */
typedef struct cli_name {
    const char *name;
    int value;
} cli_name;

extern const cli_name cli_activations[];
extern const cli_name cli_losses[];
extern const cli_name cli_optimizers[];
extern const cli_name cli_scalers[]; /* "none" is 0 */
extern const cli_name cli_schedules[];

/** Look @p name up in @p table; 0 and *value set if found, -1 otherwise. */
int cli_lookup(const cli_name *table, const char *name, int *value);
/** The first name of @p value in @p table, or "?". */
const char *cli_name_of(const cli_name *table, int value);
/** The names of @p table joined by ", " into @p buf. */
void cli_names_list(const cli_name *table, char *buf, size_t capacity);
/** Parse the current option as a name from @p table; CLI_OK or CLI_USAGE. */
int cli_args_name(cli_args *a, const cli_name *table, int *value);

/** Layer kinds of a parsed --layers spec. */
enum { CLI_LAYER_DENSE = 1, CLI_LAYER_DROPOUT = 2, CLI_LAYER_BATCHNORM = 3 };

/** One item of a --layers spec. units 0 with kind DENSE means "out" (the target width);
 *  activation -1 means "the default" (relu for hidden layers, the loss's output for the
 *  last one). */
typedef struct cli_layer {
    int kind;
    size_t units;
    int activation;
    double rate;
} cli_layer;

/** Parse a --layers spec such as "64:relu,dropout:0.2,32:tanh,out" into @p layers (at most
 *  @p capacity). Returns the count, or 0 after printing a usage message. */
size_t cli_parse_layers(const char *spec, cli_layer *layers, size_t capacity);

/* --- data (cli_data.c) -------------------------------------------------------------- */

enum { CLI_FORMAT_AUTO = 0, CLI_FORMAT_CSV = 1, CLI_FORMAT_FANN = 2, CLI_FORMAT_IDX = 3 };
extern const cli_name cli_formats[];

/** How to read a data file. */
typedef struct cli_data_opts {
    int format;         /* CLI_FORMAT_* (AUTO: by --labels, then the file name) */
    int delimiter;      /* CSV */
    int header;         /* CSV: 1 if the first line holds column names */
    long target_first;  /* CSV: first target column, from 0; negative counts from the end */
    long target_count;  /* CSV: number of target columns, >= 1 */
    const char *labels; /* IDX labels file */
    int delimiter_set, header_set, targets_set; /* given on the command line */
} cli_data_opts;

void cli_data_opts_init(cli_data_opts *o);
/** Handle a data option (--format, --delimiter, --header, --no-header, --targets, --labels) if the
 *  current argument is one: returns 1 handled, 0 not a data option, -1 usage error printed. */
int cli_data_option(cli_args *a, cli_data_opts *o);
/** The format a file will be read with (AUTO resolved). */
int cli_data_format(const cli_data_opts *o, const char *path);
/** Load @p path as a data set with targets; on failure prints the message, returns CLI_FAIL
 *  (CLI_USAGE for a usage error). For CSV without --header/--no-header, a first line that
 *  is not all numbers is taken as a header.
 *  For CSV, a negative target_first is resolved against the file's column count and
 *  written back into @p o. */
int cli_load_dataset(bp_dataset **out, const char *path, cli_data_opts *o);

/** Rows of numbers read from a CSV or FANN file for prediction. */
typedef struct cli_rows {
    float *values; /* [n x width] */
    size_t n, width;
} cli_rows;

/** Read every row of a CSV file (numbers only, after an optional header). The message names
 *  file, line and column on failure (CLI_FAIL). */
int cli_read_csv(cli_rows *out, const char *path, int delimiter, int header);
void cli_rows_free(cli_rows *rows);

/** 1 if the first non-blank line of a CSV file has a cell that is not a number (a header),
 *  0 if all its cells are numbers, -1 if the file cannot be read or has no such line. */
int cli_csv_has_header(const char *path, int delimiter);

/** Count the columns of the first non-blank line of a CSV file (quotes respected). */
int cli_csv_columns(const char *path, int delimiter, size_t *columns);

/* --- verbs -------------------------------------------------------------------------- */

int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_pack(int argc, char **argv);

/* --- shared by train and the model verbs (cli_model.c) ------------------------------ */

/** Metadata keys the tool writes with a model, in the order `info` prints them. */
extern const char *const cli_meta_keys[];

/** Read metadata entry @p key of @p net into @p buf; 1 if present, 0 if not. */
int cli_meta(const bp_net *net, const char *key, char *buf, size_t capacity);

/** Format a metric value: "%.4g", or "nan". */
const char *cli_fmt(char *buf, size_t capacity, double value);

#endif /* BP_CLI_H */
