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
#include <stdlib.h>
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
#define AGREE_MAX 4

/* After an agreement found @p status failing on rank @p failing (the lowest such rank):
 * that rank names itself in its message (already in mpi_err there) and sends it to every
 * rank. Collective; returns @p status on every rank (BP_ERR_IO if MPI fails). */
static bp_status spread_failure(const char *fn, int status, int failing, int rank, MPI_Comm comm)
{
    if (rank == failing) {
        /* Name the failing rank in its own message before the message travels. */
        char tmp[MPI_ERR_CAP];
        memcpy(tmp, mpi_err, sizeof tmp);
        fail((bp_status)status, "rank %d: %s", rank, tmp);
    }
    const int rc = MPI_Bcast(mpi_err, MPI_ERR_CAP, MPI_CHAR, failing, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Bcast (error message)", rc);
    mpi_err[MPI_ERR_CAP - 1] = '\0';
    return (bp_status)status;
}

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
    const int rc = MPI_Allreduce(in, out, 1 + 2 * nvalues, MPI_2INT, MPI_MINLOC, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (agreement)", rc);
    if (out[0].value != BP_OK) return spread_failure(fn, out[0].value, out[0].rank, rank, comm);
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

#define FNV_BASIS UINT64_C(14695981039346656037) /* FNV-1a 64 offset basis */

/* Continue the FNV-1a (64-bit) hash @p h over @p n bytes. */
static uint64_t fnv1a(uint64_t h, const unsigned char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ bytes[i]) * UINT64_C(1099511628211); /* FNV 64 prime */
    return h;
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
    uint64_t h = FNV_BASIS;
    for (size_t k = 0; k < count; k++) {
        uint32_t bits;
        memcpy(&bits, &p[k], sizeof bits);
        const unsigned char le[4] = {(unsigned char)bits, (unsigned char)(bits >> 8),
                                     (unsigned char)(bits >> 16), (unsigned char)(bits >> 24)};
        h = fnv1a(h, le, sizeof le);
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

/* ----------------------------------------------------------------------------------------
 * bp_mpi_fit: bp_net_fit on every rank's shard, the gradient hook averaging each step.
 *
 * Protocol. Every collective exchange during the fit is a "round": one MPI_Allreduce of
 * (status, done, left early) pairs. A rank inside bp_net_fit joins rounds from its grad
 * hook (done = 0); a rank whose bp_net_fit returned joins them from fit_finish() (done = 1)
 * until every rank is done. So a rank that leaves bp_net_fit early (a failure before the
 * first step, an optimizer failure, a callback that stops only there) never leaves the
 * others waiting: their next hook round sees it and fails. The first failing status any
 * round carries (with the lowest failing rank's message) is the result on every rank.
 * ----------------------------------------------------------------------------------------*/

/* The state of one bp_mpi_fit call, shared with its grad hook. */
typedef struct {
    MPI_Comm comm;
    int rank;
    bp_status agreed;             /* the first failure a round carried, or BP_OK */
    char agreed_msg[MPI_ERR_CAP]; /* its message (the same on every rank) */
    int left_early;               /* this rank's hook met a rank already out of bp_net_fit */
} fit_ctx;

/* What a round found, the same on every rank (a failure goes to fit_ctx.agreed). */
typedef struct {
    int all_done;   /* every rank is out of bp_net_fit */
    int done_rank;  /* the lowest rank out of bp_net_fit, or -1 */
    int early_rank; /* the lowest rank whose hook met a finished rank, or -1 */
} fit_round_out;

static bp_status fit_round(fit_ctx *c, bp_status local, int done, fit_round_out *r)
{
    static const char fn[] = "bp_mpi_fit";
    struct {
        int value, rank;
    } in[4], out[4];
    in[0].value = (int)local;
    in[1].value = done;  /* min: 1 only when every rank is done */
    in[2].value = !done; /* min: 0 when some rank is done, at the lowest such rank */
    in[3].value = !c->left_early;
    for (int i = 0; i < 4; i++)
        in[i].rank = c->rank;
    const int rc = MPI_Allreduce(in, out, 4, MPI_2INT, MPI_MINLOC, c->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (fit round)", rc);
    r->all_done = out[1].value == 1;
    r->done_rank = out[2].value == 0 ? out[2].rank : -1;
    r->early_rank = out[3].value == 0 ? out[3].rank : -1;
    if (out[0].value == BP_OK) return BP_OK;
    const bp_status s = spread_failure(fn, out[0].value, out[0].rank, c->rank, c->comm);
    if (s != (bp_status)out[0].value) return s; /* MPI failed sending the message */
    if (c->agreed == BP_OK) {
        c->agreed = s;
        memcpy(c->agreed_msg, mpi_err, sizeof c->agreed_msg);
    }
    return BP_OK;
}

/* The grad hook: agree on the local outcomes, then average the gradients and the loss. */
static int fit_hook(void *user, bp_net *net, int status, size_t rows, float *loss_value)
{
    static const char fn[] = "bp_mpi_fit";
    fit_ctx *c = user;
    float *g = NULL;
    int n = 0;
    bp_status s = (bp_status)status;
    if (s != BP_OK)
        fail(s, "%s: %s", fn, bp_net_last_error(net));
    else
        s = net_buffer(fn, net, 1, &g, &n);
    fit_round_out r;
    TRY(fit_round(c, s, 0, &r)); /* only MPI's own failures */
    if (c->agreed != BP_OK) return c->agreed;
    if (r.done_rank >= 0) {
        c->left_early = 1;
        return fail(BP_ERR_STATE, "%s: rank %d left bp_net_fit while rank %d was training", fn,
                    r.done_rank, c->rank);
    }
    /* The loss of the global batch: each rank's is the mean over its rows. */
    double sums[2] = {(double)rows, (double)rows * (double)*loss_value};
    int rc = MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, c->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (loss)", rc);
    const float w = (float)((double)rows / sums[0]);
    for (int k = 0; k < n; k++)
        g[k] *= w;
    rc = MPI_Allreduce(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, c->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Allreduce (gradients)", rc);
    *loss_value = (float)(sums[1] / sums[0]);
    return BP_OK;
}

/* After this rank's bp_net_fit returned @p local: join rounds until every rank is done, and
 * return the outcome every rank agrees on. */
static bp_status fit_finish(fit_ctx *c, bp_status local)
{
    /* A failure that only echoes an agreed one, or another rank's early exit, is not news. */
    const bp_status own = c->agreed != BP_OK || c->left_early ? BP_OK : local;
    fit_round_out r;
    do
        TRY(fit_round(c, c->agreed != BP_OK ? BP_OK : own, 1, &r));
    while (!r.all_done);
    if (c->agreed != BP_OK) {
        memcpy(mpi_err, c->agreed_msg, sizeof c->agreed_msg);
        return c->agreed;
    }
    if (r.early_rank >= 0)
        return fail(BP_ERR_STATE,
                    "bp_mpi_fit: rank %d was still training when another rank's bp_net_fit "
                    "returned (do the ranks' epoch callbacks or fit settings differ?)",
                    r.early_rank);
    return BP_OK;
}

/* Rank @p rank's shard of @p train, floor(n / size) rows: in memory the interleaved rows
 * rank, rank + size, rank + 2 size, ... (copied); of a memory-mapped set the contiguous rows
 * [rank m, (rank + 1) m), a view of the same file (bp_dataset_subset(): nothing copied, and
 * the rank reads only the file blocks of its own rows). */
static bp_status make_shard(const char *fn, const bp_dataset *train, int rank, int size,
                            bp_dataset **out)
{
    *out = NULL;
    const size_t p = (size_t)size, m = bp_dataset_size(train) / p;
    const size_t in = bp_dataset_input_size(train), yw = bp_dataset_output_size(train);
    const float *x = bp_dataset_inputs(train), *y = bp_dataset_targets(train);
    if (x == NULL) { /* a memory-mapped set (bp_dataset_open_mapped) */
        const bp_status s = bp_dataset_subset(out, train, (size_t)rank * m, m);
        if (s != BP_OK) fail(s, "%s: shard of the mapped set: %s", fn, bp_last_error());
        return s;
    }
    float *xs = malloc(m * in * sizeof(float)), *ys = malloc(m * yw * sizeof(float));
    bp_status s = BP_OK;
    if (xs == NULL || ys == NULL) {
        s = fail(BP_ERR_NOMEM, "%s: out of memory for a shard of %zu rows", fn, m);
    } else {
        for (size_t j = 0; j < m; j++) {
            const size_t src = j * p + (size_t)rank;
            memcpy(xs + j * in, x + src * in, in * sizeof(float));
            memcpy(ys + j * yw, y + src * yw, yw * sizeof(float));
        }
        s = bp_dataset_create(out, xs, ys, m, in, yw);
        if (s != BP_OK) fail(s, "%s: shard: %s", fn, bp_last_error());
    }
    free(xs);
    free(ys);
    return s;
}

/* Everything the fit depends on besides the data (weights, generator state, settings,
 * optimizer settings and state, training counters, metadata) is identical on every rank:
 * compare FNV-1a checksums of each rank's checkpoint buffer with rank 0's. */
static bp_status state_agrees(const char *fn, const bp_net *net, const bp_optimizer *opt, int rank,
                              MPI_Comm comm)
{
    size_t size = 0;
    bp_status s = bp_checkpoint_save_buffer(net, opt, NULL, 0, &size);
    unsigned char *buf = NULL;
    if (s == BP_OK || s == BP_ERR_BUFFER_TOO_SMALL) {
        buf = malloc(size > 0 ? size : 1);
        s = buf != NULL ? bp_checkpoint_save_buffer(net, opt, buf, size, &size) : BP_ERR_NOMEM;
    }
    uint64_t c[2] = {0, 0};
    if (s == BP_OK)
        c[0] = c[1] = fnv1a(FNV_BASIS, buf, size);
    else
        fail(s, "%s: checkpoint of the replica: %s", fn,
             buf == NULL && s == BP_ERR_NOMEM ? "out of memory" : bp_last_error());
    free(buf);
    TRY(agree_status(fn, s, rank, comm));
    const int rc = MPI_Bcast(c + 1, 1, MPI_UINT64_T, 0, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(fn, "MPI_Bcast (checksum)", rc);
    s = BP_OK;
    if (c[0] != c[1])
        s = fail(BP_ERR_STATE,
                 "%s: the network or optimizer differs from rank 0's beyond the weights "
                 "(generator seed, settings, optimizer state or metadata): create every "
                 "replica with the same seed and settings",
                 fn);
    return agree_status(fn, s, rank, comm);
}

static const char *const fit_names[] = {"parameter count", "number of training rows",
                                        "number of validation rows", "BP_FIT_BATCH_SIZE"};

bp_status bp_mpi_fit(bp_net *net, bp_optimizer *opt, int loss, const bp_dataset *train,
                     const bp_dataset *val, MPI_Comm comm)
{
    static const char fn[] = "bp_mpi_fit";
    int rank, size;
    TRY(enter(fn, comm, &rank, &size));
    float *params = NULL;
    int np = 0;
    double batch = 0.0;
    const size_t n = bp_dataset_size(train), nval = val != NULL ? bp_dataset_size(val) : 0;
    bp_status s = net_buffer(fn, net, 0, &params, &np);
    if (s == BP_OK && bp_optimizer_kind(opt) == 0)
        s = fail(BP_ERR_INVALID_ARG, "%s: the optimizer handle is NULL or invalid", fn);
    if (s == BP_OK && (n == 0 || (val != NULL && nval == 0)))
        s = fail(BP_ERR_INVALID_ARG, "%s: the %s set handle is NULL or invalid", fn,
                 n == 0 ? "training" : "validation");
    if (s == BP_OK && (n > (size_t)INT_MAX || nval > (size_t)INT_MAX))
        s = fail(BP_ERR_UNSUPPORTED, "%s: data sets of more than %d rows", fn, INT_MAX);
    if (s == BP_OK) bp_net_get(net, BP_FIT_BATCH_SIZE, &batch);
    if (s == BP_OK && (batch > (double)INT_MAX || fmod(batch, (double)size) != 0.0))
        s = fail(BP_ERR_INVALID_ARG,
                 "%s: BP_FIT_BATCH_SIZE %.0f (the global batch) is not a multiple of the %d "
                 "ranks",
                 fn, batch, size);
    if (s == BP_OK && n < (size_t)size)
        s = fail(BP_ERR_INVALID_ARG, "%s: %zu training rows for %d ranks", fn, n, size);
    const int values[4] = {np, (int)n, (int)nval, (int)batch};
    TRY(agree(fn, s, values, fit_names, 4, rank, comm));

    /* Rank 0's weights everywhere, then the check that nothing else differs (on failure
     * every rank's weights are put back). */
    float *saved = malloc((size_t)np * sizeof(float));
    s = saved != NULL ? BP_OK : fail(BP_ERR_NOMEM, "%s: out of memory", fn);
    if (s == BP_OK) memcpy(saved, params, (size_t)np * sizeof(float));
    s = agree_status(fn, s, rank, comm);
    if (s == BP_OK) s = bp_mpi_broadcast_params(net, 0, comm);
    if (s == BP_OK) s = state_agrees(fn, net, opt, rank, comm);
    bp_dataset *shard = NULL;
    if (s == BP_OK && size > 1)
        s = agree_status(fn, make_shard(fn, train, rank, size, &shard), rank, comm);
    if (s != BP_OK) {
        if (saved != NULL) memcpy(params, saved, (size_t)np * sizeof(float));
        free(saved);
        bp_dataset_free(shard);
        return s;
    }
    free(saved);

    /* Train: each rank's batch is its 1/size of the global one. */
    fit_ctx c = {.comm = comm, .rank = rank, .agreed = BP_OK};
    bp_net_set(net, BP_FIT_BATCH_SIZE, batch / size);
    bp_net_set_grad_hook(net, fit_hook, &c);
    s = bp_net_fit(net, opt, loss, size > 1 ? shard : train, val);
    if (s != BP_OK) fail(s, "%s: %s", fn, bp_net_last_error(net));
    bp_net_set_grad_hook(net, NULL, NULL);
    bp_net_set(net, BP_FIT_BATCH_SIZE, batch);
    bp_dataset_free(shard);
    return fit_finish(&c, s);
}
