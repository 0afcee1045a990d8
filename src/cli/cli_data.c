/* cli_data.c -- data files: options, loading through the library's loaders, and a CSV reader
 * for prediction inputs (rows without targets, which bp_dataset_load_csv() does not take). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const cli_name cli_formats[] = {{"auto", CLI_FORMAT_AUTO},
                                {"csv", CLI_FORMAT_CSV},
                                {"fann", CLI_FORMAT_FANN},
                                {"idx", CLI_FORMAT_IDX},
                                {NULL, 0}};

void cli_data_opts_init(cli_data_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = CLI_FORMAT_AUTO;
    o->delimiter = ',';
    o->target_first = -1;
    o->target_count = 1;
}

static int parse_delimiter(const char *v, int *delimiter)
{
    if (!strcmp(v, "tab") || !strcmp(v, "\\t") || !strcmp(v, "\t"))
        *delimiter = '\t';
    else if (!strcmp(v, "space"))
        *delimiter = ' ';
    else if (strlen(v) == 1 && strchr(",; |:", v[0]))
        *delimiter = v[0];
    else
        return -1;
    return 0;
}

int cli_data_option(cli_args *a, cli_data_opts *o)
{
    if (cli_args_is(a, "--format", NULL))
        return cli_args_name(a, cli_formats, &o->format) == CLI_OK ? 1 : -1;
    if (cli_args_is(a, "--delimiter", "-d")) {
        const char *v = cli_args_value(a);
        if (!v) return -1;
        if (parse_delimiter(v, &o->delimiter) != 0)
            return cli_usage("--delimiter: '%s' is not one of , ; | : tab space", v), -1;
        o->delimiter_set = 1;
        return 1;
    }
    if (cli_args_is(a, "--header", NULL)) {
        if (cli_args_no_value(a)) return -1;
        o->header = 1;
        o->header_set = 1;
        return 1;
    }
    if (cli_args_is(a, "--no-header", NULL)) {
        if (cli_args_no_value(a)) return -1;
        o->header = 0;
        o->header_set = 1;
        return 1;
    }
    if (cli_args_is(a, "--labels", NULL)) {
        o->labels = cli_args_value(a);
        return o->labels ? 1 : -1;
    }
    if (cli_args_is(a, "--targets", NULL)) {
        /* FIRST or FIRST:COUNT; FIRST may be negative (-1 = the last column). */
        const char *v = cli_args_value(a);
        if (!v) return -1;
        char *end;
        errno = 0;
        long first = strtol(v, &end, 10);
        long count = 1;
        int ok = end != v && !errno;
        if (ok && *end == ':') {
            const char *c = end + 1;
            count = strtol(c, &end, 10);
            ok = end != c && !errno && count >= 1 && count <= 1000000;
        }
        if (!ok || *end || first < -1000000 || first > 1000000)
            return cli_usage("--targets: '%s' is not FIRST or FIRST:COUNT (columns from 0; "
                             "-1 is the last column)",
                             v),
                   -1;
        o->target_first = first;
        o->target_count = count;
        o->targets_set = 1;
        return 1;
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int cli_data_format(const cli_data_opts *o, const char *path)
{
    if (o->format != CLI_FORMAT_AUTO) return o->format;
    if (o->labels) return CLI_FORMAT_IDX;
    char name[4096];
    snprintf(name, sizeof name, "%s", path);
    if (ends_with(name, ".gz")) name[strlen(name) - 3] = '\0';
    static const char *const fann_ext[] = {".data", ".train", ".test", ".fann", ".net"};
    for (size_t i = 0; i < sizeof fann_ext / sizeof fann_ext[0]; i++)
        if (ends_with(name, fann_ext[i])) return CLI_FORMAT_FANN;
    if (ends_with(name, "-ubyte") || ends_with(name, ".idx")) return CLI_FORMAT_IDX;
    return CLI_FORMAT_CSV;
}

/* Split one line into cells (quotes respected): returns the cell count. */
static size_t count_cells(const char *line, int delimiter)
{
    size_t cells = 1;
    int quoted = 0;
    for (const char *p = line; *p && *p != '\n' && *p != '\r'; p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (*p == delimiter && !quoted)
            cells++;
    }
    return cells;
}

static int blank(const char *line)
{
    for (; *line; line++)
        if (*line != ' ' && *line != '\t' && *line != '\r' && *line != '\n') return 0;
    return 1;
}

/* getline() is POSIX 2008 (_POSIX_C_SOURCE=200809L): reads lines of any length. */
int cli_csv_columns(const char *path, int delimiter, size_t *columns)
{
    FILE *f = fopen(path, "r");
    if (!f) return cli_fail("cannot load data: %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int status = CLI_FAIL;
    while (getline(&line, &cap, f) >= 0) {
        if (blank(line)) continue;
        *columns = count_cells(line, delimiter);
        status = CLI_OK;
        break;
    }
    if (status != CLI_OK) cli_fail("cannot load data: %s: no data rows", path);
    free(line);
    fclose(f);
    return status;
}

/* Parse one cell [p, end) as a float; surrounding spaces and double quotes allowed. */
static int parse_cell(const char *p, const char *end, float *value);

int cli_csv_has_header(const char *path, int delimiter)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    int result = -1;
    while (getline(&line, &cap, f) >= 0) {
        if (blank(line)) continue;
        result = 0;
        const char *p = line;
        for (;;) {
            const char *e = p;
            int quoted = 0;
            while (*e && *e != '\n' && *e != '\r' && (quoted || *e != delimiter)) {
                if (*e == '"') quoted = !quoted;
                e++;
            }
            float v;
            if (parse_cell(p, e, &v) != 0) {
                result = 1;
                break;
            }
            if (*e != delimiter) break;
            p = e + 1;
        }
        break;
    }
    free(line);
    fclose(f);
    return result;
}

int cli_load_dataset(bp_dataset **out, const char *path, cli_data_opts *o)
{
    bp_status s;
    *out = NULL;
    switch (cli_data_format(o, path)) {
    case CLI_FORMAT_FANN: s = bp_dataset_load_fann(out, path); break;
    case CLI_FORMAT_IDX:
        if (!o->labels) return cli_usage("%s: IDX images need --labels FILE", path);
        s = bp_dataset_load_idx(out, path, o->labels, 0);
        break;
    default: {
        if (!o->header_set && cli_csv_has_header(path, o->delimiter) == 1)
            o->header = 1; /* a first line that is not all numbers */
        long first = o->target_first;
        if (first < 0) {
            size_t columns;
            if (cli_csv_columns(path, o->delimiter, &columns) != CLI_OK) return CLI_FAIL;
            if ((long)columns + first < 0)
                return cli_fail("%s: --targets %ld but the file has %zu columns", path, first,
                                columns);
            first += (long)columns;
            if (first + o->target_count > (long)columns)
                return cli_fail("%s: --targets %ld:%ld but the file has %zu columns", path, first,
                                o->target_count, columns);
            o->target_first = first;
        }
        s = bp_dataset_load_csv(out, path, o->delimiter, o->header, (size_t)o->target_first,
                                (size_t)o->target_count);
    }
    }
    if (s != BP_OK) return cli_fail_status(s, "cannot load data", NULL);
    return CLI_OK;
}

void cli_rows_free(cli_rows *rows)
{
    free(rows->values);
    rows->values = NULL;
    rows->n = rows->width = 0;
}

static int parse_cell(const char *p, const char *end, float *value)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end - p >= 2 && *p == '"' && end[-1] == '"') {
        p++;
        end--;
    }
    char text[128];
    size_t len = (size_t)(end - p);
    if (len == 0 || len >= sizeof text) return -1;
    memcpy(text, p, len);
    text[len] = '\0';
    char *stop;
    errno = 0;
    double v = strtod(text, &stop);
    if (stop == text || *stop || !isfinite(v) || fabs(v) > 3.4028234663852886e38) return -1;
    *value = (float)v;
    return 0;
}

int cli_read_csv(cli_rows *out, const char *path, int delimiter, int header)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) return cli_fail("%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, rows_cap = 0, lineno = 0;
    int status = CLI_OK, skip_header = header;
    while (status == CLI_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (blank(line)) continue;
        if (skip_header) {
            skip_header = 0;
            continue;
        }
        size_t cells = count_cells(line, delimiter);
        if (!out->width) {
            out->width = cells;
        } else if (cells != out->width) {
            status = cli_fail("%s:%zu: %zu columns, the first row has %zu", path, lineno, cells,
                              out->width);
            break;
        }
        if (out->n == rows_cap) {
            size_t grow = rows_cap ? rows_cap * 2 : 256;
            if (grow > SIZE_MAX / sizeof(float) / out->width) {
                status = cli_fail("%s: too many rows", path);
                break;
            }
            float *v = realloc(out->values, grow * out->width * sizeof(float));
            if (!v) {
                status = cli_fail("%s: out of memory", path);
                break;
            }
            out->values = v;
            rows_cap = grow;
        }
        float *row = out->values + out->n * out->width;
        const char *p = line;
        for (size_t c = 0; c < cells; c++) {
            const char *e = p;
            int quoted = 0;
            while (*e && *e != '\n' && *e != '\r' && (quoted || *e != delimiter)) {
                if (*e == '"') quoted = !quoted;
                e++;
            }
            if (parse_cell(p, e, &row[c]) != 0) {
                status = cli_fail("%s:%zu: column %zu: '%.*s' is not a finite number", path, lineno,
                                  c + 1, (int)(e - p > 40 ? 40 : e - p), p);
                break;
            }
            p = *e == delimiter ? e + 1 : e;
        }
        if (status == CLI_OK) out->n++;
    }
    if (status == CLI_OK && ferror(f)) status = cli_fail("%s: read error", path);
    if (status == CLI_OK && out->n == 0) status = cli_fail("%s: no data rows", path);
    free(line);
    fclose(f);
    if (status != CLI_OK) cli_rows_free(out);
    return status;
}
