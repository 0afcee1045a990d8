/* backprop_mpi.c -- synchronous data parallelism over MPI (libbackprop_mpi).
 *
 * Uses libbackprop only through its public API (backprop.h): the network's single parameter
 * and gradient buffers (bp_net_params(), bp_net_grads()) are what travels. Every collective
 * function follows one protocol: do the local work, agree on the outcome (agree()), and only
 * then touch the replicas, so that a failure on one rank is an error on all of them. */
#include "backprop_mpi.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Longest message kept by bp_mpi_last_error(), NUL included; sent whole between ranks. */
#define MPI_ERR_CAP 512

static _Thread_local char mpi_err[MPI_ERR_CAP];

const char *bp_mpi_last_error(void)
{
    return mpi_err;
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static bp_status
fail(bp_status status, const char *fmt, ...)
{
    char buf[MPI_ERR_CAP]; /* the arguments may point into mpi_err */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(mpi_err, buf, sizeof buf);
    return status;
}

/* Turn an MPI return code into BP_ERR_IO with MPI's description. */
static bp_status mpi_fail(const char *fn, const char *call, int rc)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS || len <= 0)
        snprintf(text, sizeof text, "MPI error %d", rc);
    return fail(BP_ERR_IO, "%s: %s failed: %s", fn, call, text);
}

/* Local checks every collective call makes before communicating: MPI usable, comm valid.
 * These give the same answer on every rank of a correct program, so no agreement. */
static bp_status enter(const char *fn, MPI_Comm comm, int *rank, int *size)
{
    int up = 0, down = 0;
    if (MPI_Initialized(&up) != MPI_SUCCESS || !up)
        return fail(BP_ERR_STATE, "%s: MPI is not initialised (call MPI_Init first)", fn);
    if (MPI_Finalized(&down) != MPI_SUCCESS || down)
        return fail(BP_ERR_STATE, "%s: MPI is already finalised", fn);
    if (comm == MPI_COMM_NULL)
        return fail(BP_ERR_INVALID_ARG, "%s: the communicator is MPI_COMM_NULL", fn);
    int rc = MPI_Comm_rank(comm, rank);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Comm_rank", rc);
    rc = MPI_Comm_size(comm, size);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Comm_size", rc);
    return BP_OK;
}

/* Values every rank must agree on, besides the status (parameter count, root ...). */
#define AGREE_MAX 2

/* The agreement step of every collective call: combine each rank's local status and the
 * values that must be equal everywhere in ONE MPI_Allreduce (MPI_2INT, MINLOC): the
 * smallest status with the lowest rank holding it, and the minimum and maximum of each
 * value. Returns the same status on every rank: the lowest failing rank's status (its
 * message, already in mpi_err there, is broadcast so every rank reports it), else
 * BP_ERR_SHAPE naming the ranks whose values differ, else BP_OK.
 * @param names  what each value is, for the message ("parameters").
 * @param values the local values (ignored when @p local is an error). */
static bp_status agree(const char *fn, bp_status local, const int *values, const char *const *names,
                       int nvalues, int rank, MPI_Comm comm)
{
    struct {
        int value, rank;
    } in[1 + 2 * AGREE_MAX], out[1 + 2 * AGREE_MAX];
    in[0].value = (int)local;
    in[0].rank = rank;
    for (int i = 0; i < nvalues; i++) {
        const int v = local == BP_OK ? values[i] : 0;
        in[1 + 2 * i].value = v;
        in[2 + 2 * i].value = -v; /* MINLOC of -v finds the maximum */
        in[1 + 2 * i].rank = in[2 + 2 * i].rank = rank;
    }
    int rc = MPI_Allreduce(in, out, 1 + 2 * nvalues, MPI_2INT, MPI_MINLOC, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (agreement)", rc);
    if (out[0].value != BP_OK) {
        if (rank == out[0].rank) {
            /* Name the failing rank in its own message before the message travels. */
            char tmp[MPI_ERR_CAP];
            memcpy(tmp, mpi_err, sizeof tmp);
            fail((bp_status)out[0].value, "rank %d: %s", rank, tmp);
        }
        rc = MPI_Bcast(mpi_err, MPI_ERR_CAP, MPI_CHAR, out[0].rank, comm);
        if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Bcast (error message)", rc);
        mpi_err[MPI_ERR_CAP - 1] = '\0';
        return (bp_status)out[0].value;
    }
    for (int i = 0; i < nvalues; i++) {
        const int lo = out[1 + 2 * i].value, hi = -out[2 + 2 * i].value;
        if (lo != hi)
            return fail(BP_ERR_SHAPE,
                        "%s: the ranks disagree on the %s: rank %d has %d, rank %d "
                        "has %d",
                        fn, names[i], out[1 + 2 * i].rank, lo, out[2 + 2 * i].rank, hi);
    }
    return BP_OK;
}

/* Agreement on a status alone. */
static bp_status agree_status(const char *fn, bp_status local, int rank, MPI_Comm comm)
{
    return agree(fn, local, NULL, NULL, 0, rank, comm);
}

/* The network's buffer (params or grads) and its size as an MPI count, or a local error. */
static bp_status net_buffer(const char *fn, bp_net *net, int grads, float **buf, int *count)
{
    *buf = NULL;
    *count = 0;
    if (bp_net_input_size(net) == 0)
        return fail(BP_ERR_INVALID_ARG, "%s: the network handle is NULL or invalid", fn);
    size_t n = 0;
    float *p = grads ? bp_net_grads(net, &n) : bp_net_params(net, &n);
    if (p == NULL || n == 0) return fail(BP_ERR_STATE, "%s: the network has no layers", fn);
    if (n > (size_t)INT_MAX)
        return fail(BP_ERR_UNSUPPORTED, "%s: %zu parameters exceed the MPI count limit %d", fn, n,
                    INT_MAX);
    *buf = p;
    *count = (int)n;
    return BP_OK;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        const bp_status try_s_ = (expr);                                                           \
        if (try_s_ != BP_OK) return try_s_;                                                        \
    } while (0)

static const char *const param_names[] = {"parameter count", "root"};
static const char *const eval_names[] = {"number of data set rows"};

/* ---------------------------------------------------------------------------------------- */

bp_status bp_mpi_shard(size_t n, int rank, int size, size_t *start, size_t *count)
{
    if (start == NULL || count == NULL)
        return fail(BP_ERR_INVALID_ARG, "bp_mpi_shard: start and count must not be NULL");
    if (size < 1 || rank < 0 || rank >= size)
        return fail(BP_ERR_INVALID_ARG, "bp_mpi_shard: rank %d is outside [0, %d)", rank, size);
    const size_t p = (size_t)size, r = (size_t)rank, base = n / p, extra = n % p;
    *start = r * base + (r < extra ? r : extra);
    *count = base + (r < extra ? 1 : 0);
    return BP_OK;
}

bp_status bp_mpi_weights_checksum(bp_net *net, uint64_t *checksum)
{
    const char *fn = "bp_mpi_weights_checksum";
    if (checksum == NULL) return fail(BP_ERR_INVALID_ARG, "%s: checksum must not be NULL", fn);
    if (bp_net_input_size(net) == 0)
        return fail(BP_ERR_INVALID_ARG, "%s: the network handle is NULL or invalid", fn);
    size_t count = 0;
    const float *p = bp_net_params(net, &count);
    if (p == NULL || count == 0) return fail(BP_ERR_STATE, "%s: the network has no layers", fn);
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a 64 offset basis */
    for (size_t k = 0; k < count; k++) {
        uint32_t bits;
        memcpy(&bits, &p[k], sizeof bits);
        for (int b = 0; b < 4; b++) {
            h ^= (bits >> (8 * b)) & 0xffu;
            h *= UINT64_C(1099511628211); /* FNV 64 prime */
        }
    }
    *checksum = h;
    return BP_OK;
}

bp_status bp_mpi_broadcast_params(bp_net *net, int root, MPI_Comm comm)
{
    const char *fn = "bp_mpi_broadcast_params";
    int rank, size;
    TRY(enter(fn, comm, &rank, &size));
    float *p;
    int n;
    bp_status s = net_buffer(fn, net, 0, &p, &n);
    if (s == BP_OK && (root < 0 || root >= size))
        s = fail(BP_ERR_INVALID_ARG, "%s: root %d is outside [0, %d)", fn, root, size);
    const int values[2] = {n, root};
    s = agree(fn, s, values, param_names, 2, rank, comm);
    if (s != BP_OK) return s;
    const int rc = MPI_Bcast(p, n, MPI_FLOAT, root, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Bcast (parameters)", rc);
    return BP_OK;
}

bp_status bp_mpi_replicas_equal(bp_net *net, int *equal, MPI_Comm comm)
{
    const char *fn = "bp_mpi_replicas_equal";
    int rank, size;
    TRY(enter(fn, comm, &rank, &size));
    uint64_t c = 0;
    bp_status s;
    if (equal == NULL) {
        s = fail(BP_ERR_INVALID_ARG, "%s: equal must not be NULL", fn);
    } else {
        s = bp_mpi_weights_checksum(net, &c);
        if (s != BP_OK) fail(s, "%s: %s", fn, mpi_err);
    }
    TRY(agree_status(fn, s, rank, comm));
    uint64_t v[2] = {c, ~c}; /* the minimum of ~c is the complement of the maximum of c */
    const int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MIN, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (checksums)", rc);
    *equal = v[0] == ~v[1];
    return BP_OK;
}

/* Index of the first NaN/Inf in v[0 .. n-1], or n. */
static size_t first_nonfinite(const float *v, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!isfinite(v[k])) return k;
    return n;
}

bp_status bp_mpi_allreduce_grads(bp_net *net, MPI_Comm comm)
{
    const char *fn = "bp_mpi_allreduce_grads";
    int rank, size;
    TRY(enter(fn, comm, &rank, &size));
    float *g;
    int n;
    bp_status s = net_buffer(fn, net, 1, &g, &n);
    if (s == BP_OK) {
        const size_t bad = first_nonfinite(g, (size_t)n);
        if (bad != (size_t)n)
            s = fail(BP_ERR_NONFINITE, "%s: gradient element %zu is %g", fn, bad, (double)g[bad]);
    }
    TRY(agree(fn, s, &n, param_names, 1, rank, comm));
    if (size == 1) return BP_OK; /* the mean of one */
    const int rc = MPI_Allreduce(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (gradients)", rc);
    const float w = (float)(1.0 / size);
    for (int k = 0; k < n; k++)
        g[k] *= w;
    return BP_OK;
}

/* Clip the averaged gradient as bp_net_train_step() does (same formulas, same order): scale
 * so the global L2 norm (accumulated in double) is at most clip_norm, then clamp each
 * element to [-clip_value, clip_value]. Zero settings are off. */
static void clip_grads(float *g, size_t n, double clip_norm, double clip_value)
{
    if (clip_norm > 0.0) {
        double ss = 0.0;
        for (size_t k = 0; k < n; k++)
            ss += (double)g[k] * (double)g[k];
        const double norm = sqrt(ss);
        if (norm > clip_norm) {
            const float s = (float)(clip_norm / norm);
            for (size_t k = 0; k < n; k++)
                g[k] *= s;
        }
    }
    if (clip_value > 0.0) {
        const float v = (float)clip_value;
        for (size_t k = 0; k < n; k++)
            g[k] = g[k] > v ? v : g[k] < -v ? -v : g[k];
    }
}

/* The local half of a step: settings, then this rank's gradients (zero for no rows). */
static bp_status local_grads(const char *fn, bp_net *net, const bp_optimizer *opt, int loss,
                             const float *x, const float *y, size_t n_local, float *value)
{
    *value = 0.0f;
    if (bp_optimizer_kind(opt) == 0)
        return fail(BP_ERR_INVALID_ARG, "%s: the optimizer handle is NULL or invalid", fn);
    double accumulate = 0.0;
    bp_net_get(net, BP_NET_ACCUMULATE_GRADS, &accumulate);
    if (accumulate != 0.0)
        return fail(BP_ERR_STATE,
                    "%s: BP_NET_ACCUMULATE_GRADS is 1; accumulate with "
                    "bp_net_compute_grads() and bp_mpi_allreduce_grads() instead",
                    fn);
    const bp_status s =
        n_local > 0 ? bp_net_compute_grads(net, loss, x, y, n_local, value) : bp_net_zero_grad(net);
    if (s != BP_OK) return fail(s, "%s: %s", fn, bp_net_last_error(net));
    return BP_OK;
}

bp_status bp_mpi_train_step(bp_net *net, bp_optimizer *opt, int loss, const float *x,
                            const float *y, size_t n_local, float *loss_value, MPI_Comm comm)
{
    const char *fn = "bp_mpi_train_step";
    int rank, size;
    TRY(enter(fn, comm, &rank, &size));
    float *g;
    int n;
    float value = 0.0f;
    bp_status s = net_buffer(fn, net, 1, &g, &n);
    if (s == BP_OK) s = local_grads(fn, net, opt, loss, x, y, n_local, &value);
    TRY(agree(fn, s, &n, param_names, 1, rank, comm));

    /* Global rows and loss sum: the loss of each shard is its mean, so n_local * loss sums
     * to N times the loss of the whole batch. */
    double sums[2] = {(double)n_local, (double)n_local * (double)value};
    int rc = MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (row count)", rc);
    if (sums[0] < 1.0)
        return fail(BP_ERR_INVALID_ARG,
                    "%s: the global batch is empty (n_local is 0 on every "
                    "rank)",
                    fn);

    /* Mean gradient of the global batch: sum over ranks of (n_local / N) * local mean. */
    const float w = (float)((double)n_local / sums[0]);
    if (w != 1.0f)
        for (int k = 0; k < n; k++)
            g[k] *= w;
    rc = MPI_Allreduce(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (gradients)", rc);

    double clip_norm = 0.0, clip_value = 0.0;
    bp_net_get(net, BP_NET_CLIP_NORM, &clip_norm);
    bp_net_get(net, BP_NET_CLIP_VALUE, &clip_value);
    clip_grads(g, (size_t)n, clip_norm, clip_value);

    s = bp_optimizer_step(opt, net);
    if (s != BP_OK) fail(s, "%s: %s", fn, bp_optimizer_last_error(opt));
    TRY(agree_status(fn, s, rank, comm));
    if (loss_value != NULL) *loss_value = (float)(sums[1] / sums[0]);
    return BP_OK;
}

/* This rank's part of an evaluation: the metrics of its rows (none: zeros). */
static bp_status evaluate_part(const char *fn, bp_net *net, int loss, const bp_dataset *ds,
                               size_t start, size_t rows, double m[4])
{
    for (int k = 0; k < 4; k++)
        m[k] = 0.0;
    if (rows == 0) return BP_OK;
    bp_dataset *part = NULL;
    bp_status s = bp_dataset_subset(&part, ds, start, rows);
    if (s != BP_OK) return fail(s, "%s: %s", fn, bp_dataset_last_error(ds));
    s = bp_net_evaluate(net, loss, part, m, 4);
    bp_dataset_free(part);
    if (s != BP_OK) return fail(s, "%s: %s", fn, bp_net_last_error(net));
    return BP_OK;
}

bp_status bp_mpi_evaluate(bp_net *net, int loss, const bp_dataset *ds, double *metrics,
                          size_t count, MPI_Comm comm)
{
    const char *fn = "bp_mpi_evaluate";
    int rank, size;
    TRY(enter(fn, comm, &rank, &size));
    const size_t n = bp_dataset_size(ds);
    size_t start = 0, rows = 0;
    double m[4];
    bp_status s = BP_OK;
    if (metrics == NULL || count == 0)
        s = fail(BP_ERR_INVALID_ARG, "%s: metrics is NULL or count is 0", fn);
    else if (n == 0)
        s = fail(BP_ERR_INVALID_ARG, "%s: the data set handle is NULL or invalid", fn);
    else if (n > (size_t)INT_MAX)
        s = fail(BP_ERR_UNSUPPORTED, "%s: %zu rows exceed %d", fn, n, INT_MAX);
    if (s == BP_OK) s = bp_mpi_shard(n, rank, size, &start, &rows);
    if (s == BP_OK) s = evaluate_part(fn, net, loss, ds, start, rows, m);
    const int rows_all = (int)(s == BP_OK ? n : 0);
    TRY(agree(fn, s, &rows_all, eval_names, 1, rank, comm));

    /* Row-weighted sums; RMSE through its square. NaN (a metric that does not apply) stays
     * NaN: every rank with rows has it. */
    const double w = (double)rows;
    double sums[4] = {w * m[0], w * m[1], w * m[2], w * m[3] * m[3]};
    const int rc = MPI_Allreduce(MPI_IN_PLACE, sums, 4, MPI_DOUBLE, MPI_SUM, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (metrics)", rc);
    const double out[4] = {sums[0] / (double)n, sums[1] / (double)n, sums[2] / (double)n,
                           sqrt(sums[3] / (double)n)};
    for (size_t k = 0; k < count && k < 4; k++)
        metrics[k] = out[k];
    return BP_OK;
}

/* Run a file write on rank 0 only and give every rank its status and message. */
static bp_status root_writes(const char *fn,
                             bp_status (*write)(const void *a, const void *b, const char *path),
                             const void *a, const void *b, const char *path, MPI_Comm comm)
{
    int rank, size;
    TRY(enter(fn, comm, &rank, &size));
    bp_status s = BP_OK;
    if (rank == 0) {
        s = write(a, b, path);
        if (s != BP_OK) fail(s, "%s: %s", fn, bp_last_error());
    }
    return agree_status(fn, s, rank, comm);
}

static bp_status write_model(const void *net, const void *unused, const char *path)
{
    (void)unused;
    return bp_net_save(net, path);
}

static bp_status write_checkpoint(const void *net, const void *opt, const char *path)
{
    return bp_checkpoint_save(net, opt, path);
}

bp_status bp_mpi_save(const bp_net *net, const char *path, MPI_Comm comm)
{
    return root_writes("bp_mpi_save", write_model, net, NULL, path, comm);
}

bp_status bp_mpi_checkpoint_save(const bp_net *net, const bp_optimizer *opt, const char *path,
                                 MPI_Comm comm)
{
    return root_writes("bp_mpi_checkpoint_save", write_checkpoint, net, opt, path, comm);
}
