/* recurrent.c -- what the recurrent layer kinds (rnn, lstm, gru) share: the geometry, the
 * forward pass over T steps and backpropagation through time around a cell's fused step
 * kernels (recurrent.h has the calculus and the buffers), the stateful mode's carried state
 * (truncated BPTT), persistence and bp_net_reset_state().
 *
 * Parameters (PyTorch's nn.RNN/nn.LSTM/nn.GRU layout, per direction d = 0, 1):
 *   weights: [W_ih (GH x F) ; W_hh (GH x H)] of direction 0, then those of direction 1;
 *   biases:  [b_ih (GH) ; b_hh (GH)] of direction 0, then those of direction 1.
 *
 * The stateful mode keeps, per direction, the final h (and c) of a training batch and starts
 * the next training batch from it (its gradient stops there: truncated BPTT). The forward
 * pass stages the final state in its scratch; commit() keeps it once the step succeeded, so
 * a failed step leaves it as it was. Inference never reads or writes it: every sequence
 * starts from zeros there, and several threads may predict on one net. */
#include "util.h"
#include "gemm.h"
#include "rng.h"
#include "layer.h"
#include "net.h"
#include "recurrent.h"

#include <math.h>
#include <string.h>

typedef struct rec_priv {
    const bp__cell *cell;
    size_t T, F, H, D; /* steps, input features, hidden units, directions */
    int flags;         /* enum bp_recurrent_flag */
    int stateful;      /* BP_LAYER_STATEFUL */
    size_t state_rows; /* rows of the carried state; 0: none (start from zeros) */
    size_t state_cap;  /* floats allocated at state */
    float *state;      /* [D x carries x state_rows x H] */
} rec_priv;

/* ------------------------------------------------------------------------------------------
 * Scratch layout: per direction A, Hin, Cin (lstm), aux, final h (and c); shared R; in
 * training the backward buffers dZ, dZh (gru), dh, dh2, dc (lstm). Each block rounded to 16
 * floats. Sizes saturate at SIZE_MAX (the workspace planner then refuses them).
 * ----------------------------------------------------------------------------------------*/

typedef struct rec_plan {
    size_t A, Hin, Cin, aux, fin; /* offsets within a direction's block */
    size_t dir;                   /* floats per direction */
    size_t R, dZ, dZh, dh, dh2, dc, total;
} rec_plan;

static size_t sat_mul(size_t a, size_t b)
{
    size_t r;
    return bp__mul_size(a, b, &r) != 0 ? SIZE_MAX : r;
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t r16(size_t v)
{
    return v > SIZE_MAX - 15u ? SIZE_MAX : (v + 15u) & ~(size_t)15u;
}

/* Append a block of @p size floats at *@p at; returns its offset. */
static size_t take(size_t *at, size_t size)
{
    const size_t off = *at;
    *at = sat_add(*at, r16(size));
    return off;
}

static rec_plan plan(const rec_priv *p, size_t n, int training)
{
    const bp__cell *c = p->cell;
    const size_t nT = sat_mul(n, p->T), GH = c->gates * p->H, nH = sat_mul(n, p->H);
    rec_plan q;
    memset(&q, 0, sizeof q);
    size_t at = 0;
    q.A = take(&at, sat_mul(nT, GH));
    q.Hin = take(&at, sat_mul(nT, p->H));
    q.Cin = take(&at, c->carries == 2 ? sat_mul(nT, p->H) : 0);
    q.aux = take(&at, c->aux ? sat_mul(nT, p->H) : 0);
    q.fin = take(&at, sat_mul(c->carries, nH));
    q.dir = at;
    at = sat_mul(p->D, q.dir);
    q.R = take(&at, sat_mul(n, GH));
    if (training) {
        q.dZ = take(&at, sat_mul(nT, GH));
        q.dZh = take(&at, c->split_dzh ? sat_mul(nT, GH) : 0);
        q.dh = take(&at, nH);
        q.dh2 = take(&at, nH);
        q.dc = take(&at, c->carries == 2 ? nH : 0);
    }
    q.total = at;
    return q;
}

/* Inference runs blocks of at most this many rows through the scratch (training keeps every
 * row's steps for backward): predicting 1024 windows of 64 steps through an LSTM of 256
 * would otherwise plan 0.5 GB. */
#define INFER_ROWS 64u

size_t bp__rec_scratch(const bp_layer *l, size_t n, int training)
{
    return plan(l->priv, training || n < INFER_ROWS ? n : INFER_ROWS, training).total;
}

/* ------------------------------------------------------------------------------------------
 * Forward
 * ----------------------------------------------------------------------------------------*/

/* Direction d's parameters. */
static void dir_params(const bp_layer *l, const rec_priv *p, size_t d, const float **w_ih,
                       const float **w_hh, const float **b_ih, const float **b_hh)
{
    const size_t GH = p->cell->gates * p->H;
    const float *w = bp__layer_w(l) + d * GH * (p->F + p->H);
    const float *b = bp__layer_b(l) + d * 2 * GH;
    *w_ih = w;
    *w_hh = w + GH * p->F;
    *b_ih = b;
    *b_hh = b + GH;
}

/* Does a forward pass over @p n rows start from the carried state? */
static int uses_state(const rec_priv *p, size_t n, int training)
{
    return training && p->stateful && p->state_rows == n && p->state != NULL;
}

static void rec_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                        int training)
{
    /* x: [n x T x F], y: [n x T x DH] (whole sequence) or [n x DH] (last step) */
    const rec_priv *p = l->priv;
    const bp__cell *c = p->cell;
    const size_t T = p->T, F = p->F, H = p->H, D = p->D, GH = c->gates * H, DH = D * H;
    const rec_plan q = plan(p, n, training);
    const int from_state = uses_state(p, n, training);
    float *R = scratch + q.R;
    for (size_t d = 0; d < D; d++) {
        float *base = scratch + d * q.dir;
        float *A = base + q.A, *Hin = base + q.Hin, *Cin = base + q.Cin, *aux = base + q.aux;
        float *fin_h = base + q.fin, *fin_c = fin_h + n * H;
        const float *w_ih, *w_hh, *b_ih, *b_hh;
        dir_params(l, p, d, &w_ih, &w_hh, &b_ih, &b_hh);
        /* A = X W_ih^T: every step's input projection, one GEMM */
        bp__gemm(0, 1, n * T, GH, F, 1.0f, x, F, w_ih, F, 0.0f, A, GH);
        /* h0 (and c0) at the direction's first step: the carried state, or zeros */
        const size_t t0 = d ? T - 1 : 0;
        for (size_t k = 0; k < c->carries; k++) {
            float *dst = k == 0 ? Hin : Cin;
            const float *src = from_state ? p->state + (d * c->carries + k) * n * H : NULL;
            for (size_t i = 0; i < n; i++) {
                float *row = dst + (i * T + t0) * H;
                if (src != NULL)
                    memcpy(row, src + i * H, H * sizeof(float));
                else
                    memset(row, 0, H * sizeof(float));
            }
        }
        for (size_t s = 0; s < T; s++) {
            const size_t t = d ? T - 1 - s : s;
            const int last = s + 1 == T;
            const size_t tn = last ? 0 : d ? t - 1 : t + 1;
            /* R = h_prev W_hh^T, one GEMM per step (a zero h0 needs none) */
            if (s == 0 && !from_state)
                memset(R, 0, n * GH * sizeof(float));
            else
                bp__gemm(0, 1, n, GH, H, 1.0f, Hin + t * H, T * H, w_hh, H, 0.0f, R, GH);
            bp__rstep st = {
                .n = n,
                .H = H,
                .a = A + t * GH,
                .sa = T * GH,
                .hh = R,
                .b_ih = b_ih,
                .b_hh = b_hh,
                .h_prev = Hin + t * H,
                .sh = T * H,
                .h_out = last ? fin_h : Hin + tn * H,
                .sho = last ? H : T * H,
                .c_prev = Cin + t * H,
                .sc = T * H,
                .c_out = last ? fin_c : Cin + tn * H,
                .sco = last ? H : T * H,
                .aux = aux + t * H,
                .sx = T * H,
                .l = l,
            };
            c->forward(&st);
        }
        /* The outputs: the final h, or every step's h (Hin of the next step, final h last) */
        if (p->flags & BP_RNN_LAST_STEP) {
            for (size_t i = 0; i < n; i++)
                memcpy(y + i * DH + d * H, fin_h + i * H, H * sizeof(float));
        } else {
            const size_t tl = d ? 0 : T - 1;
            for (size_t i = 0; i < n; i++)
                for (size_t t = 0; t < T; t++) {
                    const float *h =
                        t == tl ? fin_h + i * H : Hin + (i * T + (d ? t - 1 : t + 1)) * H;
                    memcpy(y + (i * T + t) * DH + d * H, h, H * sizeof(float));
                }
        }
    }
}

void bp__rec_forward(bp_layer *l, size_t n, const float *x, float *scratch, float *y, int training)
{
    if (training) {
        rec_forward(l, n, x, scratch, y, 1);
        return;
    }
    for (size_t r = 0; r < n; r += INFER_ROWS) {
        const size_t m = n - r < INFER_ROWS ? n - r : INFER_ROWS;
        rec_forward(l, m, x + r * l->in, scratch, y + r * l->out, 0);
    }
}

/* ------------------------------------------------------------------------------------------
 * Backward through time
 * ----------------------------------------------------------------------------------------*/

/* db (+)= column sums of dz: [rows x cols] */
static void col_sums(const float *restrict dz, size_t rows, size_t cols, float *restrict db,
                     int accumulate)
{
    if (!accumulate) memset(db, 0, cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        const float *restrict row = dz + r * cols;
        for (size_t j = 0; j < cols; j++)
            db[j] += row[j];
    }
}

int bp__rec_backward(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                     float *dy, int dy_is_dz, float *dx, int accumulate)
{
    (void)y, (void)dy_is_dz;
    const rec_priv *p = l->priv;
    const bp__cell *c = p->cell;
    const size_t T = p->T, F = p->F, H = p->H, D = p->D, GH = c->gates * H, DH = D * H;
    const rec_plan q = plan(p, n, 1);
    const int last_only = (p->flags & BP_RNN_LAST_STEP) != 0;
    float *dZ = scratch + q.dZ, *dZh = c->split_dzh ? scratch + q.dZh : dZ;
    float *dc = scratch + q.dc;
    const float beta = accumulate ? 1.0f : 0.0f;
    for (size_t d = 0; d < D; d++) {
        const float *base = scratch + d * q.dir;
        const float *A = base + q.A, *Hin = base + q.Hin, *Cin = base + q.Cin, *aux = base + q.aux;
        const float *w_ih, *w_hh, *b_ih, *b_hh;
        dir_params(l, p, d, &w_ih, &w_hh, &b_ih, &b_hh);
        float *dh = scratch + q.dh, *dh2 = scratch + q.dh2;
        memset(dh, 0, n * H * sizeof(float));
        if (c->carries == 2) memset(dc, 0, n * H * sizeof(float));
        for (size_t s = T; s-- > 0;) {
            const size_t t = d ? T - 1 - s : s;
            /* dh_t += dL/dy_t: every step's output, or only the last step's */
            if (!last_only || s + 1 == T) {
                const float *g = last_only ? dy + d * H : dy + t * DH + d * H;
                const size_t sg = last_only ? DH : T * DH;
                for (size_t i = 0; i < n; i++) {
                    const float *restrict gi = g + i * sg;
                    float *restrict hi = dh + i * H;
                    for (size_t j = 0; j < H; j++)
                        hi[j] += gi[j];
                }
            }
            const bp__rstep_back sb = {
                .n = n,
                .H = H,
                .a = A + t * GH,
                .sa = T * GH,
                .h_prev = Hin + t * H,
                .sh = T * H,
                .c_prev = Cin + t * H,
                .sc = T * H,
                .aux = aux + t * H,
                .sx = T * H,
                .dh = dh,
                .dc = dc,
                .dz = dZ + t * GH,
                .dzh = dZh + t * GH,
                .sz = T * GH,
                .dh_prev = dh2,
                .l = l,
            };
            const int direct = c->backward(&sb);
            if (s > 0) {
                /* dh_{t-1} = dZh_t W_hh (+ the cell's direct term): one GEMM per step */
                bp__gemm(0, 0, n, H, GH, 1.0f, dZh + t * GH, T * GH, w_hh, H, direct ? 1.0f : 0.0f,
                         dh2, H);
                float *tmp = dh;
                dh = dh2;
                dh2 = tmp;
            }
        }
        float *dw_ih = bp__layer_dw(l) + d * GH * (F + H), *dw_hh = dw_ih + GH * F;
        float *db_ih = bp__layer_db(l) + d * 2 * GH, *db_hh = db_ih + GH;
        /* dW_ih (+)= dZ^T X, dW_hh (+)= dZh^T Hin over all n*T (row, step) pairs */
        bp__gemm(1, 0, GH, F, n * T, 1.0f, dZ, GH, x, F, beta, dw_ih, F);
        bp__gemm(1, 0, GH, H, n * T, 1.0f, dZh, GH, Hin, H, beta, dw_hh, H);
        /* db_ih (+)= sum dZ, db_hh (+)= sum dZh */
        col_sums(dZ, n * T, GH, db_ih, accumulate);
        col_sums(dZh, n * T, GH, db_hh, accumulate);
        /* dX (+)= dZ W_ih (the second direction adds to the first's) */
        if (dx != NULL) bp__gemm(0, 0, n * T, F, GH, 1.0f, dZ, GH, w_ih, F, d ? 1.0f : 0.0f, dx, F);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The carried state (stateful mode)
 * ----------------------------------------------------------------------------------------*/

static size_t state_width(const rec_priv *p)
{
    return p->D * p->cell->carries * p->H; /* floats per row */
}

bp_status bp__rec_commit(bp_layer *l, const float *scratch, size_t n, int apply)
{
    rec_priv *p = l->priv;
    if (!p->stateful) return BP_OK;
    const bp__cell *c = p->cell;
    const rec_plan q = plan(p, n, 1);
    const size_t H = p->H, nH = n * H;
    if (apply) {
        for (size_t d = 0; d < p->D; d++)
            for (size_t k = 0; k < c->carries; k++)
                memcpy(p->state + (d * c->carries + k) * nH, scratch + d * q.dir + q.fin + k * nH,
                       nH * sizeof(float));
        p->state_rows = n;
        return BP_OK;
    }
    if (p->state_rows != 0 && p->state_rows != n)
        return bp__fail(l->net->err, BP_ERR_SHAPE,
                        "layer %zu (%s): stateful, with a carried state of %zu rows; this batch "
                        "has %zu (keep the batch size, or call bp_net_reset_state)",
                        l->index, l->vt->name, p->state_rows, n);
    for (size_t d = 0; d < p->D; d++) {
        const float *fin = scratch + d * q.dir + q.fin;
        const size_t bad = bp__first_nonfinite(fin, c->carries * nH);
        if (bad != c->carries * nH)
            return bp__fail(l->net->err, BP_ERR_NONFINITE,
                            "layer %zu (%s): the final state of row %zu is %g; nothing changed",
                            l->index, l->vt->name, (bad % nH) / H, (double)fin[bad]);
    }
    const size_t need = n * state_width(p);
    if (need > p->state_cap) {
        float *s = bp__malloc(&l->net->alloc, need * sizeof(float));
        if (s == NULL)
            return bp__fail(l->net->err, BP_ERR_NOMEM,
                            "layer %zu (%s): out of memory for a carried state of %zu floats",
                            l->index, l->vt->name, need);
        bp__free(&l->net->alloc, p->state); /* state_rows is 0 or n: nothing to keep */
        p->state = s;
        p->state_cap = need;
    }
    return BP_OK;
}

int bp__rec_is(const bp_layer *l)
{
    const int k = l->vt->kind;
    return k == BP_LAYER_RNN || k == BP_LAYER_LSTM || k == BP_LAYER_GRU;
}

bp_status bp_net_reset_state(bp_net *net)
{
    BP__NET_CHECK(net, "bp_net_reset_state");
    for (size_t i = 0; i < net->nlayers; i++)
        if (bp__rec_is(net->layers[i])) ((rec_priv *)net->layers[i]->priv)->state_rows = 0;
    return BP_OK;
}

static void set_stateful(bp_layer *l, double v)
{
    rec_priv *p = l->priv;
    p->stateful = v != 0.0;
    if (!p->stateful) p->state_rows = 0;
}

static double get_stateful(const bp_layer *l)
{
    return ((const rec_priv *)l->priv)->stateful;
}

const bp__layer_key bp__rec_keys[] = {
    BP__KEY_TRAINABLE,
    BP__KEY_PENALTIES,
    {BP_LAYER_STATEFUL, set_stateful, get_stateful},
    BP__KEY_END,
};

size_t bp__rec_state_floats(const bp_layer *l)
{
    const rec_priv *p = l->priv;
    return p->state_rows * state_width(p);
}

void bp__rec_state_write(const bp_layer *l, float *dst)
{
    const rec_priv *p = l->priv;
    memcpy(dst, p->state, p->state_rows * state_width(p) * sizeof(float));
}

bp_status bp__rec_state_read(bp_layer *l, const float *src, size_t count)
{
    rec_priv *p = l->priv;
    const size_t want = p->state_rows * state_width(p);
    if (count != want)
        return bp__fail(l->net->err, BP_ERR_FORMAT,
                        "layer %zu (%s): %zu state floats, expected %zu (%zu rows)", l->index,
                        l->vt->name, count, want, p->state_rows);
    const size_t bad = bp__first_nonfinite(src, count);
    if (bad != count)
        return bp__fail(l->net->err, BP_ERR_NONFINITE, "layer %zu (%s): state float %zu is %g",
                        l->index, l->vt->name, bad, (double)src[bad]);
    if (count > p->state_cap) {
        float *s = bp__malloc(&l->net->alloc, count * sizeof(float));
        if (s == NULL)
            return bp__fail(l->net->err, BP_ERR_NOMEM,
                            "layer %zu (%s): out of memory for a carried state of %zu floats",
                            l->index, l->vt->name, count);
        bp__free(&l->net->alloc, p->state);
        p->state = s;
        p->state_cap = count;
    }
    if (count > 0) memcpy(p->state, src, count * sizeof(float));
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Private data
 * ----------------------------------------------------------------------------------------*/

void bp__rec_destroy(bp_layer *l)
{
    rec_priv *p = l->priv;
    if (p == NULL) return;
    bp__free(&l->net->alloc, p->state);
    bp__free(&l->net->alloc, p);
    l->priv = NULL;
}

bp_status bp__rec_clone(bp_layer *dst, const bp_layer *src)
{
    const rec_priv *s = src->priv;
    rec_priv *p = bp__malloc(&dst->net->alloc, sizeof *p);
    if (p == NULL) return BP_ERR_NOMEM;
    *p = *s;
    p->state = NULL;
    p->state_cap = 0;
    const size_t count = s->state_rows * state_width(s);
    if (count > 0) {
        p->state = bp__malloc(&dst->net->alloc, count * sizeof(float));
        if (p->state == NULL) {
            bp__free(&dst->net->alloc, p);
            return BP_ERR_NOMEM;
        }
        memcpy(p->state, s->state, count * sizeof(float));
        p->state_cap = count;
    }
    dst->priv = p;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Construction
 * ----------------------------------------------------------------------------------------*/

/* The steps and features of the rows a layer appended now would take, or a failure. */
static bp_status seq_shape(bp_net *net, const char *fn, size_t *T, size_t *F)
{
    size_t c, h, w;
    bp__net_out_shape(net, &c, &h, &w);
    const size_t steps = bp__net_out_steps(net);
    if (steps == 0 || c != 1 || h != steps)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "%s: the input rows [%zu x %zu x %zu] are not sequences (create the net "
                        "with bp_net_create_sequence)",
                        fn, c, h, w);
    *T = steps;
    *F = w;
    return BP_OK;
}

/* The parameter count of a layer of @p cell over [T x F] rows, or a failure (overflow). */
static bp_status param_count(bp_net *net, const char *fn, const bp__cell *cell, size_t F, size_t H,
                             size_t D, size_t *nw, size_t *nb)
{
    size_t gh, fh, w, b;
    if (bp__mul_size(cell->gates, H, &gh) != 0 || F > SIZE_MAX - H ||
        bp__mul_size(gh, F + H, &fh) != 0 || bp__mul_size(fh, D, &w) != 0 ||
        bp__mul_size(gh, 2 * D, &b) != 0 || w > SIZE_MAX - b)
        return bp__fail(net->err, BP_ERR_NOMEM, "%s: %zu hidden units over %zu features overflow",
                        fn, H, F);
    *nw = w;
    *nb = b;
    return BP_OK;
}

bp_status bp__rec_add(bp_net *net, const bp__cell *cell, size_t hidden, int activation, int flags)
{
    const char *fn = cell->fn;
    BP__NET_CHECK(net, fn);
    if (hidden == 0 || hidden > BP__MAX_WIDTH)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: hidden = %zu is outside 1..%zu", fn,
                        hidden, BP__MAX_WIDTH);
    if (flags < 0 || flags > (BP_RNN_LAST_STEP | BP_RNN_BIDIRECTIONAL))
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "%s: flags %d are not a combination of BP_RNN_LAST_STEP and "
                        "BP_RNN_BIDIRECTIONAL",
                        fn, flags);
    BP_CHECK(bp__net_check_append(net, fn));
    size_t T = 0, F = 0;
    BP_CHECK(seq_shape(net, fn, &T, &F));
    const size_t D = (flags & BP_RNN_BIDIRECTIONAL) ? 2 : 1, DH = D * hidden;
    const int last = (flags & BP_RNN_LAST_STEP) != 0;
    if (DH > BP__MAX_WIDTH || (!last && T > BP__MAX_WIDTH / DH))
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "%s: outputs of %zu steps x %zu exceed the largest row width %zu", fn,
                        last ? 1 : T, DH, BP__MAX_WIDTH);
    size_t nw, nb;
    BP_CHECK(param_count(net, fn, cell, F, hidden, D, &nw, &nb));
    rec_priv *p = bp__calloc(&net->alloc, 1, sizeof *p);
    if (p == NULL) return bp__fail(net->err, BP_ERR_NOMEM, "%s: out of memory", fn);
    p->cell = cell;
    p->T = T, p->F = F, p->H = hidden, p->D = D;
    p->flags = flags;
    bp_layer *l = last ? bp__layer_new(net, fn, cell->vt, activation, DH, 1, 1)
                       : bp__layer_new(net, fn, cell->vt, activation, 1, T, DH);
    if (l == NULL) {
        bp__free(&net->alloc, p);
        return BP_ERR_NOMEM;
    }
    l->priv = p;
    l->nweights = nw;
    l->nbiases = nb;
    l->fan_in = F + hidden;
    l->fan_out = cell->gates * hidden;
    l->out_steps = last ? 0 : T;
    BP_CHECK(bp__net_append_or_discard(net, l, BP_INIT_ZEROS, 0.0));
    /* PyTorch's initialisation: every weight and bias uniform in [-1/sqrt(H), 1/sqrt(H)] */
    const double k = 1.0 / sqrt((double)hidden);
    float *w = bp__layer_w(l);
    for (size_t i = 0; i < nw + nb; i++)
        w[i] = (float)((2.0 * (double)bp__rng_uniform(&net->rng) - 1.0) * k);
    return BP_OK;
}

/* ---- persistence: hidden, flags (rnn: activation), the carried state's rows; settings ---- */

size_t bp__rec_hyper(const bp_layer *l, bp__hyper *hp, size_t cap)
{
    const rec_priv *p = l->priv;
    bp__hyper c[4];
    size_t k = 0;
    c[k++] = (bp__hyper){BP__HP_HIDDEN, (double)p->H};
    c[k++] = (bp__hyper){BP__HP_RNN_FLAGS, (double)p->flags};
    if (l->vt->kind == BP_LAYER_RNN) c[k++] = (bp__hyper){BP__HP_RNN_ACT, (double)l->activation};
    if (p->state_rows > 0) c[k++] = (bp__hyper){BP__HP_STATE_ROWS, (double)p->state_rows};
    for (size_t i = 0; i < k && i < cap; i++)
        hp[i] = c[i];
    return bp__hyper_put_settings(l, hp, cap, k);
}

bp_status bp__rec_construct(bp_net *net, const bp__cell *cell, const bp__hyper *hp, size_t count,
                            size_t expect_params)
{
    static const uint32_t known_rnn[] = {BP__HP_HIDDEN, BP__HP_RNN_FLAGS, BP__HP_RNN_ACT,
                                         BP__HP_STATE_ROWS, 0};
    static const uint32_t known[] = {BP__HP_HIDDEN, BP__HP_RNN_FLAGS, BP__HP_STATE_ROWS, 0};
    const char *name = cell->vt->name;
    const int is_rnn = cell->vt->kind == BP_LAYER_RNN;
    size_t H, flags, act = BP_ACT_TANH, rows = 0;
    BP_CHECK(bp__hyper_get_size(net, name, hp, count, BP__HP_HIDDEN, 1, BP__MAX_WIDTH, &H));
    BP_CHECK(bp__hyper_get_size(net, name, hp, count, BP__HP_RNN_FLAGS, 0,
                                BP_RNN_LAST_STEP | BP_RNN_BIDIRECTIONAL, &flags));
    if (is_rnn) {
        BP_CHECK(bp__hyper_get_size(net, name, hp, count, BP__HP_RNN_ACT, 0, 1000, &act));
        if (act != BP_ACT_TANH && act != BP_ACT_RELU)
            return bp__fail(net->err, BP_ERR_FORMAT,
                            "layer %zu (rnn): activation %zu is neither tanh nor ReLU",
                            net->nlayers, act);
    }
    double v;
    if (bp__hyper_find(hp, count, BP__HP_STATE_ROWS, &v) == 0)
        BP_CHECK(
            bp__hyper_get_size(net, name, hp, count, BP__HP_STATE_ROWS, 1, BP__MAX_WIDTH, &rows));
    /* The parameter count, checked against the file before anything is allocated. */
    size_t T = 0, F = 0, nw, nb;
    const bp_status ss = seq_shape(net, name, &T, &F);
    if (ss != BP_OK) return bp__hyper_add_failed(net, ss);
    const size_t D = (flags & BP_RNN_BIDIRECTIONAL) ? 2 : 1;
    BP_CHECK(param_count(net, name, cell, F, H, D, &nw, &nb));
    BP_CHECK(bp__hyper_expect_params(net, name, nw + nb, expect_params));
    const bp_status s = bp__rec_add(net, cell, H, (int)act, (int)flags);
    if (s != BP_OK) return bp__hyper_add_failed(net, s);
    bp_layer *l = net->layers[net->nlayers - 1];
    BP_CHECK(bp__hyper_apply_settings(l, hp, count, is_rnn ? known_rnn : known));
    rec_priv *p = l->priv;
    if (rows > 0 && !p->stateful)
        return bp__fail(net->err, BP_ERR_FORMAT,
                        "layer %zu (%s): a carried state of %zu rows, but the layer is not "
                        "stateful",
                        l->index, name, rows);
    /* The state floats themselves follow (state_read); only their count is known here. */
    p->state_rows = rows;
    return BP_OK;
}
