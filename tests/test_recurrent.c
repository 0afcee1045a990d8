/* test_recurrent.c -- the recurrent layers (rnn, lstm, gru): forward against a double-precision
 * reference written from the definitions (below) and against PyTorch's recorded outputs
 * (tests/data/recurrent_ref.txt, tests/make_recurrent_ref.py), gradients of backpropagation
 * through time against central differences over T = 1..7, both output modes, bidirectional
 * and stateful; the carried state (staging, reset, batch size, checkpoints), persistence,
 * no allocation per step, bad arguments. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h" /* struct bp_layer, bp__layer_construct */
#include "util.h"  /* BP_CHECK */

/* ------------------------------------------------------------------------------------------
 * Reference: one recurrent layer in double, from the definitions (PyTorch's equations)
 * ----------------------------------------------------------------------------------------*/

typedef struct ref_layer {
    int kind; /* BP_LAYER_RNN, _LSTM, _GRU */
    int act;  /* rnn: BP_ACT_TANH or BP_ACT_RELU */
    int flags;
    size_t T, F, H;
    const double *w, *b; /* the library's layout */
} ref_layer;

static size_t ref_gates(int kind)
{
    return kind == BP_LAYER_LSTM ? 4 : kind == BP_LAYER_GRU ? 3 : 1;
}

static size_t ref_dirs(const ref_layer *L)
{
    return (L->flags & BP_RNN_BIDIRECTIONAL) ? 2 : 1;
}

static size_t ref_out(const ref_layer *L)
{
    const size_t DH = ref_dirs(L) * L->H;
    return (L->flags & BP_RNN_LAST_STEP) ? DH : L->T * DH;
}

static double sigm(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

/* x [n x T x F] -> y [n x ref_out]; h0, c0: [D x n x H] or NULL (zeros); hn, cn: the final
 * states [D x n x H] (NULL: not wanted). */
static void ref_rec(const ref_layer *L, size_t n, const double *x, const double *h0,
                    const double *c0, double *y, double *hn, double *cn)
{
    const size_t T = L->T, F = L->F, H = L->H, G = ref_gates(L->kind), GH = G * H;
    const size_t D = ref_dirs(L), DH = D * H;
    double *h = calloc(H, sizeof *h), *c = calloc(H, sizeof *c);
    double *gi = calloc(GH, sizeof *gi), *gh = calloc(GH, sizeof *gh);
    assert_non_null(h);
    assert_non_null(c);
    assert_non_null(gi);
    assert_non_null(gh);
    for (size_t d = 0; d < D; d++) {
        const double *w_ih = L->w + d * GH * (F + H), *w_hh = w_ih + GH * F;
        const double *b_ih = L->b + d * 2 * GH, *b_hh = b_ih + GH;
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < H; j++) {
                h[j] = h0 ? h0[(d * n + i) * H + j] : 0.0;
                c[j] = c0 ? c0[(d * n + i) * H + j] : 0.0;
            }
            for (size_t s = 0; s < T; s++) {
                const size_t t = d ? T - 1 - s : s;
                const double *xt = x + (i * T + t) * F;
                for (size_t g = 0; g < GH; g++) {
                    gi[g] = b_ih[g];
                    for (size_t k = 0; k < F; k++)
                        gi[g] += w_ih[g * F + k] * xt[k];
                    gh[g] = b_hh[g];
                    for (size_t k = 0; k < H; k++)
                        gh[g] += w_hh[g * H + k] * h[k];
                }
                for (size_t j = 0; j < H; j++) {
                    if (L->kind == BP_LAYER_RNN) {
                        const double v = gi[j] + gh[j];
                        h[j] = L->act == BP_ACT_RELU ? (v > 0 ? v : 0) : tanh(v);
                    } else if (L->kind == BP_LAYER_LSTM) {
                        const double ig = sigm(gi[j] + gh[j]);
                        const double fg = sigm(gi[H + j] + gh[H + j]);
                        const double gg = tanh(gi[2 * H + j] + gh[2 * H + j]);
                        const double og = sigm(gi[3 * H + j] + gh[3 * H + j]);
                        c[j] = fg * c[j] + ig * gg;
                        h[j] = og * tanh(c[j]);
                    } else {
                        const double r = sigm(gi[j] + gh[j]);
                        const double z = sigm(gi[H + j] + gh[H + j]);
                        const double nn = tanh(gi[2 * H + j] + r * gh[2 * H + j]);
                        h[j] = (1 - z) * nn + z * h[j];
                    }
                }
                if (!(L->flags & BP_RNN_LAST_STEP))
                    for (size_t j = 0; j < H; j++)
                        y[(i * T + t) * DH + d * H + j] = h[j];
            }
            for (size_t j = 0; j < H; j++) {
                if (L->flags & BP_RNN_LAST_STEP) y[i * DH + d * H + j] = h[j];
                if (hn) hn[(d * n + i) * H + j] = h[j];
                if (cn) cn[(d * n + i) * H + j] = c[j];
            }
        }
    }
    free(h);
    free(c);
    free(gi);
    free(gh);
}

/* ------------------------------------------------------------------------------------------
 * Helpers
 * ----------------------------------------------------------------------------------------*/

static bp_status add_kind(bp_net *net, int kind, int act, size_t hidden, int flags)
{
    switch (kind) {
    case BP_LAYER_RNN: return bp_net_add_rnn(net, hidden, act, flags);
    case BP_LAYER_LSTM: return bp_net_add_lstm(net, hidden, flags);
    default: return bp_net_add_gru(net, hidden, flags);
    }
}

/* The layer's weights (or biases) in double. */
static double *layer_params(bp_layer *l, int biases, size_t *count)
{
    const size_t c = biases ? l->nbiases : l->nweights;
    float *buf = malloc((c + 1) * sizeof *buf);
    double *out = malloc((c + 1) * sizeof *out);
    assert_non_null(buf);
    assert_non_null(out);
    if (biases)
        assert_status(bp_layer_get_biases(l, buf, c), BP_OK);
    else
        assert_status(bp_layer_get_weights(l, buf, c), BP_OK);
    for (size_t k = 0; k < c; k++)
        out[k] = (double)buf[k];
    free(buf);
    *count = c;
    return out;
}

static size_t weight_count(const bp_layer *l)
{
    return l->nweights;
}

static void fill(float *v, size_t count, uint64_t *seed, float scale)
{
    bp_test_fill_uniform(v, count, -scale, scale, seed);
}

/* ------------------------------------------------------------------------------------------
 * Gradients: two stacked layers (so that the lower one's gradient needs the upper one's dX),
 * L = sum g .* y, library gradients vs central differences of the double reference
 * ----------------------------------------------------------------------------------------*/

typedef struct stack_ref {
    ref_layer L[2];
    double *w[2], *b[2];
    size_t nw[2], nb[2];
    double *h0[2], *c0[2]; /* carried states [D x n x H] or NULL */
} stack_ref;

/* y of the stack for x [n x T x F] (double); writes the final states when hn/cn given. */
static void stack_forward(stack_ref *s, size_t n, const double *x, double *y, double **hn,
                          double **cn)
{
    double *mid = calloc(n * ref_out(&s->L[0]), sizeof *mid);
    assert_non_null(mid);
    for (int k = 0; k < 2; k++) {
        s->L[k].w = s->w[k];
        s->L[k].b = s->b[k];
    }
    ref_rec(&s->L[0], n, x, s->h0[0], s->c0[0], mid, hn ? hn[0] : NULL, cn ? cn[0] : NULL);
    ref_rec(&s->L[1], n, mid, s->h0[1], s->c0[1], y, hn ? hn[1] : NULL, cn ? cn[1] : NULL);
    free(mid);
}

static double stack_loss(stack_ref *s, size_t n, const double *x, const float *g, size_t out)
{
    double *y = calloc(n * out, sizeof *y);
    assert_non_null(y);
    stack_forward(s, n, x, y, NULL, NULL);
    double L = 0.0;
    for (size_t k = 0; k < n * out; k++)
        L += (double)g[k] * y[k];
    free(y);
    return L;
}

/* The library's carried state of layer @p l ([D x carries x n x H]) against the reference's
 * h and c ([D x n x H] each). */
static void check_state(bp_layer *l, int kind, size_t D, size_t n, size_t H, const double *h,
                        const double *c)
{
    const size_t carries = kind == BP_LAYER_LSTM ? 2 : 1, count = D * carries * n * H;
    float *st = malloc(count * sizeof *st);
    assert_non_null(st);
    size_t got = 0;
    assert_status(bp_layer_get_state(l, st, count, &got), BP_OK);
    assert_int_equal(got, count);
    for (size_t d = 0; d < D; d++)
        for (size_t k = 0; k < carries; k++)
            for (size_t e = 0; e < n * H; e++)
                assert_close(st[(d * carries + k) * n * H + e], (k ? c : h)[d * n * H + e], 1e-4,
                             1e-5);
    free(st);
}

static void grad_check(int kind, int act, size_t T, int flags, int stateful, uint64_t seed)
{
    const size_t n = 2, F = 2, H = 3, D = (flags & BP_RNN_BIDIRECTIONAL) ? 2 : 1;
    bp_net *net = NULL;
    assert_status(bp_net_create_sequence(&net, T, F, seed), BP_OK);
    /* layer 0: the same kind, whole sequences (bidirectional when layer 1 is) */
    assert_status(add_kind(net, kind, act, H, flags & BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(add_kind(net, kind, act, H, flags), BP_OK);
    bp_layer *lay[2] = {bp_net_layer(net, 0), bp_net_layer(net, 1)};
    stack_ref s;
    memset(&s, 0, sizeof s);
    for (int k = 0; k < 2; k++) {
        s.L[k].kind = kind;
        s.L[k].act = act;
        s.L[k].flags = k == 0 ? (flags & BP_RNN_BIDIRECTIONAL) : flags;
        s.L[k].T = T;
        s.L[k].F = k == 0 ? F : D * H;
        s.L[k].H = H;
        if (stateful) assert_status(bp_layer_set(lay[k], BP_LAYER_STATEFUL, 1.0), BP_OK);
    }
    const size_t out = ref_out(&s.L[1]);
    assert_int_equal(bp_layer_output_size(lay[1]), out);
    const size_t nx = n * T * F;
    float *x0 = malloc(nx * sizeof *x0), *x1 = malloc(nx * sizeof *x1);
    float *g = malloc(n * out * sizeof *g);
    double *xd = malloc(nx * sizeof *xd), *yd = malloc(n * out * sizeof *yd);
    assert_non_null(x0);
    assert_non_null(x1);
    assert_non_null(g);
    assert_non_null(xd);
    assert_non_null(yd);
    uint64_t rs = seed * 7919u + 1u;
    fill(x0, nx, &rs, 1.5f);
    fill(x1, nx, &rs, 1.5f);
    fill(g, n * out, &rs, 1.0f);
    if (act == BP_ACT_RELU) /* positive biases: no layer whose units are all dead */
        for (int k = 0; k < 2; k++) {
            const size_t nb = lay[k]->nbiases;
            float *b = malloc(nb * sizeof *b);
            assert_non_null(b);
            bp_test_fill_uniform(b, nb, 0.1f, 0.4f, &rs);
            assert_status(bp_layer_set_biases(lay[k], b, nb), BP_OK);
            free(b);
        }
    for (int k = 0; k < 2; k++) {
        s.w[k] = layer_params(lay[k], 0, &s.nw[k]);
        s.b[k] = layer_params(lay[k], 1, &s.nb[k]);
    }
    const float *y;
    double *hn[2] = {NULL, NULL}, *cn[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        hn[k] = calloc(D * n * H, sizeof(double));
        cn[k] = calloc(D * n * H, sizeof(double));
        assert_non_null(hn[k]);
        assert_non_null(cn[k]);
    }
    if (stateful) {
        /* a first batch leaves its final state to the second */
        assert_status(bp_net_forward(net, x0, n, &y), BP_OK);
        for (size_t k = 0; k < nx; k++)
            xd[k] = (double)x0[k];
        stack_forward(&s, n, xd, yd, hn, cn);
        for (int k = 0; k < 2; k++) {
            check_state(lay[k], kind, D, n, H, hn[k], cn[k]);
            s.h0[k] = hn[k];
            s.c0[k] = kind == BP_LAYER_LSTM ? cn[k] : NULL;
            hn[k] = calloc(D * n * H, sizeof(double));
            cn[k] = calloc(D * n * H, sizeof(double));
        }
    }
    /* forward: the library against the reference */
    for (size_t k = 0; k < nx; k++)
        xd[k] = (double)x1[k];
    assert_status(bp_net_forward(net, x1, n, &y), BP_OK);
    stack_forward(&s, n, xd, yd, hn, cn);
    for (size_t k = 0; k < n * out; k++)
        assert_close(y[k], yd[k], 1e-4, 1e-5);
    if (stateful)
        for (int k = 0; k < 2; k++)
            check_state(lay[k], kind, D, n, H, hn[k], cn[k]);
    assert_status(bp_net_backward(net, g, n), BP_OK);
    /* gradients: every parameter of both layers against central differences */
    for (int k = 0; k < 2; k++) {
        const size_t nw = s.nw[k], nb = s.nb[k];
        float *gw = malloc((nw + nb) * sizeof *gw);
        assert_non_null(gw);
        assert_status(bp_layer_get_weight_grad(lay[k], gw, nw), BP_OK);
        assert_status(bp_layer_get_bias_grad(lay[k], gw + nw, nb), BP_OK);
        double *fd = malloc((nw + nb) * sizeof *fd), fmax = 0.0;
        assert_non_null(fd);
        for (size_t p = 0; p < nw + nb; p++) {
            double *v = p < nw ? &s.w[k][p] : &s.b[k][p - nw];
            const double keep = *v, h = 1e-6;
            *v = keep + h;
            const double lp = stack_loss(&s, n, xd, g, out);
            *v = keep - h;
            const double lm = stack_loss(&s, n, xd, g, out);
            *v = keep;
            fd[p] = (lp - lm) / (2 * h);
            fmax = fmax < fabs(fd[p]) ? fabs(fd[p]) : fmax;
        }
        if (!(fmax > 0.0)) /* a gradient that is all zero proves nothing */
            fail_msg("kind %d act %d T %zu flags %d stateful %d: layer %d: zero gradient", kind,
                     act, T, flags, stateful, k);
        for (size_t p = 0; p < nw + nb; p++) {
            if (fabs((double)gw[p] - fd[p]) > 2e-3 * fabs(fd[p]) + 2e-4 * fmax)
                fail_msg("kind %d act %d T %zu flags %d stateful %d: layer %d parameter %zu: "
                         "%g, finite differences %g",
                         kind, act, T, flags, stateful, k, p, (double)gw[p], fd[p]);
        }
        free(gw);
        free(fd);
    }
    for (int k = 0; k < 2; k++) {
        free(s.w[k]);
        free(s.b[k]);
        free(s.h0[k]);
        free(s.c0[k]);
        free(hn[k]);
        free(cn[k]);
    }
    free(x0);
    free(x1);
    free(g);
    free(xd);
    free(yd);
    bp_net_free(net);
}

static const int kinds[][2] = {{BP_LAYER_RNN, BP_ACT_TANH},
                               {BP_LAYER_RNN, BP_ACT_RELU},
                               {BP_LAYER_LSTM, BP_ACT_TANH},
                               {BP_LAYER_GRU, BP_ACT_TANH}};

static void gradients_match_finite_differences(int stateful)
{
    uint64_t seed = 100;
    for (size_t k = 0; k < 4; k++)
        for (size_t T = 1; T <= 7; T++)
            for (int flags = 0; flags < 4; flags++)
                grad_check(kinds[k][0], kinds[k][1], T, flags, stateful, seed++);
}

static void bptt_gradients_match_finite_differences(void **state)
{
    (void)state;
    gradients_match_finite_differences(0);
}

static void stateful_bptt_gradients_match_finite_differences(void **state)
{
    (void)state;
    gradients_match_finite_differences(1);
}

/* ------------------------------------------------------------------------------------------
 * PyTorch's recorded outputs (tests/data/recurrent_ref.txt)
 * ----------------------------------------------------------------------------------------*/

static float *read_values(FILE *f, const char *what, size_t *count)
{
    char tag[32];
    unsigned long c = 0;
    if (fscanf(f, "%31s %lu", tag, &c) != 2 || strcmp(tag, what) != 0)
        fail_msg("recurrent_ref.txt: expected '%s'", what);
    float *v = malloc((c + 1) * sizeof *v);
    assert_non_null(v);
    for (unsigned long k = 0; k < c; k++)
        if (fscanf(f, "%f", &v[k]) != 1) fail_msg("recurrent_ref.txt: short '%s'", what);
    *count = c;
    return v;
}

static void assert_all_close(const float *a, const float *b, size_t count, const char *name,
                             const char *what)
{
    for (size_t k = 0; k < count; k++)
        if (fabs((double)a[k] - (double)b[k]) > 2e-5 + 2e-5 * fabs((double)b[k]))
            fail_msg("%s: %s[%zu] = %.9g, PyTorch %.9g", name, what, k, (double)a[k], (double)b[k]);
}

/* A net of one recurrent layer with PyTorch's parameters. */
static bp_net *torch_net(int kind, int act, int flags, size_t T, size_t F, size_t H, const float *w,
                         size_t nw, const float *b, size_t nb)
{
    bp_net *net = NULL;
    assert_status(bp_net_create_sequence(&net, T, F, 1), BP_OK);
    assert_status(add_kind(net, kind, act, H, flags), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    assert_status(bp_layer_set_weights(l, w, nw), BP_OK);
    assert_status(bp_layer_set_biases(l, b, nb), BP_OK);
    return net;
}

static void outputs_match_pytorch(void **state)
{
    (void)state;
    FILE *f = fopen(BP_TEST_DATA_DIR "/recurrent_ref.txt", "r");
    assert_non_null(f);
    char line[256];
    size_t cases = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char name[64], kname[16], aname[16];
        int bi;
        unsigned long n, T, F, H;
        if (line[0] == '#') continue;
        if (sscanf(line, "case %63s %15s %15s %d %lu %lu %lu %lu", name, kname, aname, &bi, &n, &T,
                   &F, &H) != 8)
            fail_msg("recurrent_ref.txt: bad line %s", line);
        const int kind = strcmp(kname, "rnn") == 0    ? BP_LAYER_RNN
                         : strcmp(kname, "lstm") == 0 ? BP_LAYER_LSTM
                                                      : BP_LAYER_GRU;
        const int act = strcmp(aname, "relu") == 0 ? BP_ACT_RELU : BP_ACT_TANH;
        const int flags = bi ? BP_RNN_BIDIRECTIONAL : 0;
        size_t nw, nb, nx1, ny1, nh1, nx2, ny2;
        float *w = read_values(f, "weights", &nw), *b = read_values(f, "biases", &nb);
        float *x1 = read_values(f, "x1", &nx1), *y1 = read_values(f, "y1", &ny1);
        float *hn1 = read_values(f, "hn1", &nh1);
        float *x2 = read_values(f, "x2", &nx2), *y2 = read_values(f, "y2", &ny2);
        if (fgets(line, sizeof line, f) == NULL) line[0] = '\0'; /* the rest of the line */
        float *y = malloc(ny1 * sizeof *y);
        assert_non_null(y);

        /* every step's output, from a zero state */
        bp_net *net = torch_net(kind, act, flags, T, F, H, w, nw, b, nb);
        assert_int_equal(bp_layer_output_size(bp_net_layer(net, 0)), ny1 / n);
        assert_status(bp_net_predict(net, x1, n, y, ny1), BP_OK);
        assert_all_close(y, y1, ny1, name, "y1");
        /* stateful: the second batch starts from the first's final state (h_n, c_n) */
        assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_STATEFUL, 1.0), BP_OK);
        const float *yf;
        assert_status(bp_net_forward(net, x1, n, &yf), BP_OK);
        assert_all_close(yf, y1, ny1, name, "y1 (training forward)");
        assert_status(bp_net_forward(net, x2, n, &yf), BP_OK);
        assert_all_close(yf, y2, ny2, name, "y2 (stateful)");
        /* inference neither reads nor changes the carried state */
        float *yp = malloc(ny2 * sizeof *yp), *yz = malloc(ny2 * sizeof *yz);
        assert_non_null(yp);
        assert_non_null(yz);
        assert_status(bp_net_predict(net, x2, n, yp, ny2), BP_OK);
        bp_net *fresh = torch_net(kind, act, flags, T, F, H, w, nw, b, nb);
        assert_status(bp_net_predict(fresh, x2, n, yz, ny2), BP_OK);
        assert_memory_equal(yp, yz, ny2 * sizeof *yp);
        bp_net_free(fresh);
        bp_net_free(net);

        /* the last step only: PyTorch's h_n */
        net = torch_net(kind, act, flags | BP_RNN_LAST_STEP, T, F, H, w, nw, b, nb);
        assert_int_equal(bp_layer_output_size(bp_net_layer(net, 0)), nh1 / n);
        assert_status(bp_net_predict(net, x1, n, y, nh1), BP_OK);
        assert_all_close(y, hn1, nh1, name, "h_n");
        bp_net_free(net);

        free(yp);
        free(yz);
        free(y);
        free(w);
        free(b);
        free(x1);
        free(y1);
        free(hn1);
        free(x2);
        free(y2);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 10);
}

/* Inference runs large batches in blocks of rows (bounded scratch): the same outputs as one
 * training forward over all rows, and as predicting row by row. */
static void large_batches_predict_like_the_training_forward(void **state)
{
    (void)state;
    const size_t n = 150, T = 5, F = 3;
    bp_net *net = NULL;
    assert_status(bp_net_create_sequence(&net, T, F, 4), BP_OK);
    assert_status(bp_net_add_lstm(net, 6, BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_net_add_gru(net, 4, BP_RNN_LAST_STEP), BP_OK);
    float *x = malloc(n * T * F * sizeof *x), *y = malloc(n * 4 * sizeof *y), one[4];
    assert_non_null(x);
    assert_non_null(y);
    uint64_t rs = 77;
    fill(x, n * T * F, &rs, 2.0f);
    assert_status(bp_net_predict(net, x, n, y, n * 4), BP_OK);
    const float *yf;
    assert_status(bp_net_forward(net, x, n, &yf), BP_OK);
    for (size_t k = 0; k < n * 4; k++)
        assert_close(y[k], yf[k], 1e-5, 1e-6);
    for (size_t i = 0; i < n; i += 37) {
        assert_status(bp_net_predict(net, x + i * T * F, 1, one, 4), BP_OK);
        for (size_t k = 0; k < 4; k++)
            assert_close(one[k], y[i * 4 + k], 1e-5, 1e-6);
    }
    /* two activation buffers of 1000 rows plus the layers' scratch of one block of rows (all
     * 1000 rows at once would need over 400 000 floats more) */
    assert_true(bp_net_predict_scratch_floats(net, 1000) < 2 * 1000 * 60 + 100000);
    free(x);
    free(y);
    bp_net_free(net);
}

/* ------------------------------------------------------------------------------------------
 * Learning: memory through time, and across batches in the stateful mode
 * ----------------------------------------------------------------------------------------*/

/* Many-to-many echo: y_t = x_{t-2} (0 for the first two steps), a recurrent layer then a
 * dense layer per step, MSE over every step. Returns the mean loss of the last 20 steps. */
static float train_echo(int kind, size_t steps_trained)
{
    enum { N = 16, T = 8 };
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    assert_status(bp_net_create_sequence(&net, T, 1, 5), BP_OK);
    assert_status(add_kind(net, kind, BP_ACT_TANH, 12, 0), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK); /* per step: [T x 1] */
    assert_int_equal(bp_layer_output_size(bp_net_layer(net, 1)), T);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.01), BP_OK);
    uint64_t rs = 99;
    float x[N * T], y[N * T], loss = 0.0f, tail = 0.0f;
    for (size_t s = 0; s < steps_trained; s++) {
        fill(x, N * T, &rs, 1.0f);
        for (size_t i = 0; i < N; i++)
            for (size_t t = 0; t < T; t++)
                y[i * T + t] = t >= 2 ? x[i * T + t - 2] : 0.0f;
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, N, &loss), BP_OK);
        if (s + 20 >= steps_trained) tail += loss / 20.0f;
    }
    bp_optimizer_free(opt);
    bp_net_free(net);
    return tail;
}

static void every_kind_learns_to_remember_through_time(void **state)
{
    (void)state;
    /* the inputs' variance is 1/3: a net without memory cannot go below about 0.25 */
    const float lstm = train_echo(BP_LAYER_LSTM, 400), gru = train_echo(BP_LAYER_GRU, 400);
    const float rnn = train_echo(BP_LAYER_RNN, 400);
    print_message("echo: loss lstm %.4f, gru %.4f, rnn %.4f\n", (double)lstm, (double)gru,
                  (double)rnn);
    assert_true(lstm < 0.02f);
    assert_true(gru < 0.02f);
    assert_true(rnn < 0.02f);
}

/* Truncated BPTT: 8 long streams cut into chunks of 4 steps, y_t = x_{t-2}. Without the
 * carried state the first two steps of every chunk cannot be predicted (a loss of at least
 * half the inputs' variance 1/3); with it they can. Returns the mean loss of the last epoch. */
static float train_chunked_echo(int stateful)
{
    enum { N = 8, T = 4, CHUNKS = 40, EPOCHS = 12 };
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    assert_status(bp_net_create_sequence(&net, T, 1, 8), BP_OK);
    assert_status(bp_net_add_gru(net, 12, 0), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_STATEFUL, stateful), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.01), BP_OK);
    static float stream[N][CHUNKS * T];
    uint64_t rs = 4242;
    for (size_t i = 0; i < N; i++)
        fill(stream[i], CHUNKS * T, &rs, 1.0f);
    float epoch_loss = 0.0f;
    for (int e = 0; e < EPOCHS; e++) {
        assert_status(bp_net_reset_state(net), BP_OK);
        epoch_loss = 0.0f;
        for (size_t c = 0; c < CHUNKS; c++) {
            float x[N * T], y[N * T], loss;
            for (size_t i = 0; i < N; i++)
                for (size_t t = 0; t < T; t++) {
                    const size_t at = c * T + t;
                    x[i * T + t] = stream[i][at];
                    y[i * T + t] = at >= 2 ? stream[i][at - 2] : 0.0f;
                }
            assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, N, &loss), BP_OK);
            epoch_loss += loss / CHUNKS;
        }
    }
    bp_optimizer_free(opt);
    bp_net_free(net);
    return epoch_loss;
}

/* A tiny character model, many-to-many: embedding -> lstm -> layernorm -> dense softmax per
 * step, sparse softmax cross-entropy over every step (class ids [T] per row). The text
 * repeats "abcab": the next token is known once three tokens are seen ("ab" is followed by
 * "c" after "b" and by "a" after "c"), so the model must remember. Its first steps stay
 * ambiguous, which keeps the mean loss above 0; every later step must be predicted. */
static void token_model_learns_next_token_per_step(void **state)
{
    (void)state;
    enum { N = 12, T = 6, V = 3 };
    static const int text[5] = {0, 1, 2, 0, 1};
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    assert_status(bp_net_create_sequence(&net, T, 1, 31), BP_OK);
    assert_status(bp_net_add_embedding(net, V, 4), BP_OK);
    assert_status(bp_net_add_lstm(net, 10, 0), BP_OK);
    assert_status(bp_net_add_layernorm(net), BP_OK);
    assert_status(bp_net_add_dense(net, V, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_net_set(net, BP_NET_CLIP_NORM, 5.0), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.02), BP_OK);
    float x[N * T], y[N * T], loss = 0.0f;
    for (size_t i = 0; i < N; i++)
        for (size_t t = 0; t < T; t++) {
            x[i * T + t] = (float)text[(i + t) % 5];
            y[i * T + t] = (float)text[(i + t + 1) % 5];
        }
    for (int s = 0; s < 300; s++)
        assert_status(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, N, &loss),
                      BP_OK);
    print_message("token model: loss %.4f after 300 steps\n", (double)loss);
    assert_true(loss < 0.2f); /* from log 3 = 1.1 */
    float p[N * T * V];
    assert_status(bp_net_predict(net, x, N, p, N * T * V), BP_OK);
    for (size_t k = 0; k < N * T; k++) {
        size_t best = 0;
        for (size_t c = 1; c < V; c++)
            if (p[k * V + c] > p[k * V + best]) best = c;
        if (k % T >= 2) assert_int_equal(best, (size_t)y[k]);
    }
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void stateful_training_carries_memory_across_batches(void **state)
{
    (void)state;
    const float without = train_chunked_echo(0), with = train_chunked_echo(1);
    print_message("chunked echo: loss %.4f without the carried state, %.4f with it\n",
                  (double)without, (double)with);
    assert_true(without > 0.12f);
    assert_true(with < 0.03f);
}

/* ------------------------------------------------------------------------------------------
 * Shapes, layout, arguments
 * ----------------------------------------------------------------------------------------*/

static void shapes_and_parameter_layout_follow_pytorch(void **state)
{
    (void)state;
    bp_net *net = NULL;
    assert_status(bp_net_create_sequence(&net, 5, 3, 1), BP_OK);
    assert_status(bp_net_add_lstm(net, 4, BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_net_add_gru(net, 6, 0), BP_OK);
    assert_status(bp_net_add_rnn(net, 2, BP_ACT_RELU, BP_RNN_LAST_STEP), BP_OK);
    size_t c, h, w, steps;
    bp_layer *l0 = bp_net_layer(net, 0), *l1 = bp_net_layer(net, 1), *l2 = bp_net_layer(net, 2);
    assert_int_equal(bp_layer_kind(l0), BP_LAYER_LSTM);
    assert_int_equal(bp_layer_kind(l1), BP_LAYER_GRU);
    assert_int_equal(bp_layer_kind(l2), BP_LAYER_RNN);
    assert_int_equal(bp_layer_activation(l2), BP_ACT_RELU);
    assert_status(bp_layer_output_shape(l0, &c, &h, &w), BP_OK);
    assert_true(c == 1 && h == 5 && w == 8);
    assert_status(bp_layer_output_steps(l0, &steps), BP_OK);
    assert_int_equal(steps, 5);
    /* lstm: 2 directions x (W_ih 16x3 + W_hh 16x4), biases 2 x (16 + 16) */
    assert_int_equal(weight_count(l0), 2 * (16 * 3 + 16 * 4));
    assert_int_equal(bp_layer_param_count(l0), 2 * (16 * 3 + 16 * 4) + 2 * 32);
    /* gru over the 8 features: W_ih 18x8, W_hh 18x6, biases 18 + 18 */
    assert_int_equal(bp_layer_param_count(l1), 18 * 8 + 18 * 6 + 36);
    assert_status(bp_layer_output_shape(l2, &c, &h, &w), BP_OK);
    assert_true(c == 2 && h == 1 && w == 1);
    assert_status(bp_layer_output_steps(l2, &steps), BP_OK);
    assert_int_equal(steps, 0);
    /* PyTorch's initialisation: within [-1/sqrt(H), 1/sqrt(H)], biases too, not all zero */
    size_t nb;
    double *b = layer_params(l0, 1, &nb);
    double mx = 0.0;
    for (size_t k = 0; k < nb; k++)
        mx = fabs(b[k]) > mx ? fabs(b[k]) : mx;
    assert_true(mx > 0.1 && mx <= 0.5);
    free(b);
    bp_net_free(net);
}

static void bad_arguments_fail_with_a_status(void **state)
{
    (void)state;
    bp_net *net = NULL;
    assert_status(bp_net_add_rnn(NULL, 4, BP_ACT_TANH, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_lstm(NULL, 4, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_gru(NULL, 4, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_reset_state(NULL), BP_ERR_INVALID_ARG);
    /* flat rows are not sequences */
    assert_status(bp_net_create(&net, 6, 1), BP_OK);
    assert_status(bp_net_add_lstm(net, 4, 0), BP_ERR_SHAPE);
    assert_int_equal(bp_net_layer_count(net), 0);
    bp_net_free(net);
    assert_status(bp_net_create_sequence(&net, 3, 2, 1), BP_OK);
    assert_status(bp_net_add_rnn(net, 4, BP_ACT_SIGMOID, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_rnn(net, 0, BP_ACT_TANH, 0), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_gru(net, 4, 4), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_gru(net, 4, -1), BP_ERR_INVALID_ARG);
    assert_status(bp_net_add_lstm(net, (size_t)1 << 25, 0), BP_ERR_INVALID_ARG);
    /* T * H above the widest row */
    assert_status(bp_net_add_lstm(net, (size_t)1 << 23, 0), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_net_layer_count(net), 0);
    assert_status(bp_net_add_lstm(net, 4, BP_RNN_LAST_STEP), BP_OK);
    /* its output is flat: no sequence left for another recurrent layer */
    assert_status(bp_net_add_gru(net, 4, 0), BP_ERR_SHAPE);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    bp_net_free(net);
    assert_status(bp_net_create_sequence(&net, 3, 2, 1), BP_OK);
    assert_status(bp_net_add_dense(net, 3, BP_ACT_SOFTMAX), BP_OK);
    assert_status(bp_net_add_lstm(net, 4, 0), BP_ERR_STATE);
    bp_net_free(net);
    /* the setting applies to recurrent layers only, 0 or 1 */
    assert_status(bp_net_create_sequence(&net, 3, 2, 1), BP_OK);
    assert_status(bp_net_add_gru(net, 4, 0), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_STATEFUL, 1.0), BP_ERR_INVALID_ARG);
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_STATEFUL, 2.0), BP_ERR_OUT_OF_RANGE);
    double v = -1.0, lo, hi;
    assert_status(bp_layer_get(bp_net_layer(net, 0), BP_LAYER_STATEFUL, &v), BP_OK);
    assert_true(v == 0.0);
    assert_status(bp_layer_param_bounds(BP_LAYER_STATEFUL, &lo, &hi), BP_OK);
    assert_true(lo == 0.0 && hi == 1.0);
    assert_status(bp_net_reset_state(net), BP_OK); /* nothing carried: a no-op */
    bp_net_free(net);
}

/* ------------------------------------------------------------------------------------------
 * The carried state
 * ----------------------------------------------------------------------------------------*/

static void get_state(bp_net *net, size_t layer, float *dst, size_t cap, size_t *count)
{
    assert_status(bp_layer_get_state(bp_net_layer(net, layer), dst, cap, count), BP_OK);
}

static void stateful_batch_size_must_stay_until_reset(void **state)
{
    (void)state;
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    assert_status(bp_net_create_sequence(&net, 4, 2, 3), BP_OK);
    assert_status(bp_net_add_lstm(net, 3, BP_RNN_LAST_STEP), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_STATEFUL, 1.0), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    float x[3 * 8], t[3] = {0.5f, -0.5f, 0.25f}, loss;
    uint64_t rs = 5;
    fill(x, 24, &rs, 1.0f);
    size_t count = 99;
    float st[2 * 3 * 3], st2[2 * 3 * 3];
    get_state(net, 0, st, 0, &count);
    assert_int_equal(count, 0); /* nothing carried yet */
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, t, 2, &loss), BP_OK);
    get_state(net, 0, st, sizeof st / sizeof st[0], &count);
    assert_int_equal(count, 2 * 2 * 3); /* h and c of 2 rows */
    /* another batch size fails, and changes nothing */
    const size_t np = bp_layer_param_count(bp_net_layer(net, 0));
    float *w0 = malloc(np * sizeof *w0), *w1 = malloc(np * sizeof *w1);
    assert_non_null(w0);
    assert_non_null(w1);
    assert_status(bp_layer_get_weights(bp_net_layer(net, 0), w0, np), BP_OK);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, t, 3, &loss), BP_ERR_SHAPE);
    assert_non_null(strstr(bp_net_last_error(net), "bp_net_reset_state"));
    const float *y;
    assert_status(bp_net_forward(net, x, 3, &y), BP_ERR_SHAPE);
    assert_status(bp_layer_get_weights(bp_net_layer(net, 0), w1, np), BP_OK);
    assert_memory_equal(w0, w1, weight_count(bp_net_layer(net, 0)) * sizeof *w0);
    get_state(net, 0, st2, sizeof st2 / sizeof st2[0], &count);
    assert_int_equal(count, 12);
    assert_memory_equal(st, st2, 12 * sizeof *st);
    /* a step of the same size continues from the state */
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, t, 2, &loss), BP_OK);
    get_state(net, 0, st2, sizeof st2 / sizeof st2[0], &count);
    assert_true(memcmp(st, st2, 12 * sizeof *st) != 0);
    /* predict of any size neither needs nor changes it */
    float yp[3];
    assert_status(bp_net_predict(net, x, 3, yp, 3), BP_OK);
    get_state(net, 0, st, sizeof st / sizeof st[0], &count);
    assert_memory_equal(st, st2, 12 * sizeof *st);
    /* after a reset, any size */
    assert_status(bp_net_reset_state(net), BP_OK);
    get_state(net, 0, st, sizeof st / sizeof st[0], &count);
    assert_int_equal(count, 0);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, t, 3, &loss), BP_OK);
    get_state(net, 0, st, sizeof st / sizeof st[0], &count);
    assert_int_equal(count, 2 * 3 * 3);
    /* turning the mode off forgets the state */
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_STATEFUL, 0.0), BP_OK);
    get_state(net, 0, st, sizeof st / sizeof st[0], &count);
    assert_int_equal(count, 0);
    free(w0);
    free(w1);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

static void a_non_finite_final_state_fails_and_is_not_kept(void **state)
{
    (void)state;
    bp_net *net = NULL;
    assert_status(bp_net_create_sequence(&net, 6, 1, 3), BP_OK);
    assert_status(bp_net_add_rnn(net, 2, BP_ACT_RELU, 0), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    assert_status(bp_layer_set(l, BP_LAYER_STATEFUL, 1.0), BP_OK);
    const float x[6] = {1, 1, 1, 1, 1, 1};
    const float *y;
    assert_status(bp_net_forward(net, x, 1, &y), BP_OK);
    float st[2], st2[2];
    size_t count;
    get_state(net, 0, st, 2, &count);
    assert_int_equal(count, 2);
    /* W_ih [2 x 1], W_hh [2 x 2]: h grows by 1e30 per step and overflows */
    const float w[6] = {1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f};
    assert_status(bp_layer_set_weights(l, w, 6), BP_OK);
    assert_status(bp_net_forward(net, x, 1, &y), BP_ERR_NONFINITE);
    get_state(net, 0, st2, 2, &count);
    assert_memory_equal(st, st2, sizeof st);
    bp_net_free(net);
}

static void clone_copies_the_carried_state(void **state)
{
    (void)state;
    bp_net *net = NULL, *copy = NULL;
    assert_status(bp_net_create_sequence(&net, 3, 2, 3), BP_OK);
    assert_status(bp_net_add_gru(net, 3, BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 0), BP_LAYER_STATEFUL, 1.0), BP_OK);
    float x[12];
    uint64_t rs = 9;
    fill(x, 12, &rs, 1.0f);
    const float *y;
    assert_status(bp_net_forward(net, x, 2, &y), BP_OK);
    assert_status(bp_net_clone(&copy, net), BP_OK);
    float a[12], b[12];
    size_t ca, cb;
    get_state(net, 0, a, 12, &ca);
    get_state(copy, 0, b, 12, &cb);
    assert_int_equal(ca, 12);
    assert_int_equal(cb, 12);
    assert_memory_equal(a, b, sizeof a);
    /* and both continue alike */
    const float *y2;
    assert_status(bp_net_forward(net, x, 2, &y), BP_OK);
    assert_status(bp_net_forward(copy, x, 2, &y2), BP_OK);
    assert_memory_equal(y, y2, 2 * 3 * 6 * sizeof *y);
    bp_net_free(copy);
    bp_net_free(net);
}

/* ------------------------------------------------------------------------------------------
 * Persistence
 * ----------------------------------------------------------------------------------------*/

static void *save_to_buffer(const bp_net *net, const bp_optimizer *opt, size_t *size)
{
    size_t need = 0;
    if (opt)
        assert_status(bp_checkpoint_save_buffer(net, opt, NULL, 0, &need), BP_ERR_BUFFER_TOO_SMALL);
    else
        assert_status(bp_net_save_buffer(net, NULL, 0, &need), BP_ERR_BUFFER_TOO_SMALL);
    void *buf = malloc(need);
    assert_non_null(buf);
    if (opt)
        assert_status(bp_checkpoint_save_buffer(net, opt, buf, need, size), BP_OK);
    else
        assert_status(bp_net_save_buffer(net, buf, need, size), BP_OK);
    return buf;
}

static void model_files_round_trip_every_kind(void **state)
{
    (void)state;
    bp_net *net = NULL, *back = NULL;
    assert_status(bp_net_create_sequence(&net, 5, 3, 11), BP_OK);
    assert_status(bp_net_add_rnn(net, 4, BP_ACT_RELU, BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_net_add_gru(net, 5, 0), BP_OK);
    assert_status(bp_net_add_lstm(net, 3, BP_RNN_LAST_STEP | BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 1), BP_LAYER_L2, 0.25), BP_OK);
    assert_status(bp_layer_set(bp_net_layer(net, 2), BP_LAYER_STATEFUL, 1.0), BP_OK);
    float x[4 * 15], y[8], y2[8];
    uint64_t rs = 3;
    fill(x, 60, &rs, 1.0f);
    const float *yf;
    assert_status(bp_net_forward(net, x, 4, &yf), BP_OK); /* a carried state of 4 rows */
    size_t size;
    void *buf = save_to_buffer(net, NULL, &size);
    assert_status(bp_net_load_buffer(&back, buf, size), BP_OK);
    assert_int_equal(bp_net_layer_count(back), 4);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(bp_layer_kind(bp_net_layer(back, i)), bp_layer_kind(bp_net_layer(net, i)));
    assert_int_equal(bp_layer_activation(bp_net_layer(back, 0)), BP_ACT_RELU);
    double v;
    assert_status(bp_layer_get(bp_net_layer(back, 1), BP_LAYER_L2, &v), BP_OK);
    assert_true(v == 0.25);
    assert_status(bp_layer_get(bp_net_layer(back, 2), BP_LAYER_STATEFUL, &v), BP_OK);
    assert_true(v == 1.0);
    assert_status(bp_net_predict(net, x, 4, y, 8), BP_OK);
    assert_status(bp_net_predict(back, x, 4, y2, 8), BP_OK);
    assert_memory_equal(y, y2, sizeof y);
    /* the carried state came back: the next training forward continues alike */
    const float *ya, *yb;
    assert_status(bp_net_forward(net, x, 4, &ya), BP_OK);
    assert_status(bp_net_forward(back, x, 4, &yb), BP_OK);
    assert_memory_equal(ya, yb, 8 * sizeof *ya);
    bp_net_free(back);
    free(buf);
    bp_net_free(net);
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    const long len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)len);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return buf;
}

/* tests/data/golden_recurrent.bpm (tests/make_golden.c): every recurrent kind, a stateful
 * lstm with a carried state; later versions must load it, predict the recorded outputs
 * exactly and write the same bytes again. */
static void golden_recurrent_model_still_loads_and_predicts_the_same(void **state)
{
    (void)state;
    bp_net *net = NULL;
    assert_status(bp_net_load(&net, BP_TEST_DATA_DIR "/golden_recurrent.bpm"), BP_OK);
    assert_int_equal(bp_net_layer_count(net), 4);
    assert_int_equal(bp_layer_kind(bp_net_layer(net, 0)), BP_LAYER_RNN);
    assert_int_equal(bp_layer_kind(bp_net_layer(net, 1)), BP_LAYER_GRU);
    assert_int_equal(bp_layer_kind(bp_net_layer(net, 2)), BP_LAYER_LSTM);
    size_t count = 0;
    assert_status(bp_layer_get_state(bp_net_layer(net, 2), NULL, 0, &count),
                  BP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(count, 3 * 2 * 3); /* 3 rows of h and c, H = 3 */
    FILE *f = fopen(BP_TEST_DATA_DIR "/golden_recurrent.txt", "r");
    assert_non_null(f);
    int n, in, out;
    assert_int_equal(fscanf(f, "%d %d %d", &n, &in, &out), 3);
    float *x = malloc((size_t)(n * in) * sizeof *x), *want = malloc((size_t)(n * out) * sizeof *x);
    float *y = malloc((size_t)(n * out) * sizeof *y);
    assert_non_null(x);
    assert_non_null(want);
    assert_non_null(y);
    for (int i = 0; i < n * in; i++)
        assert_int_equal(fscanf(f, "%a", &x[i]), 1);
    for (int i = 0; i < n * out; i++)
        assert_int_equal(fscanf(f, "%a", &want[i]), 1);
    fclose(f);
    assert_status(bp_net_predict(net, x, (size_t)n, y, (size_t)(n * out)), BP_OK);
    assert_memory_equal(y, want, (size_t)(n * out) * sizeof *y);
    size_t gsize, size;
    unsigned char *golden = read_file(BP_TEST_DATA_DIR "/golden_recurrent.bpm", &gsize);
    void *again = save_to_buffer(net, NULL, &size);
    assert_int_equal(size, gsize);
    assert_memory_equal(again, golden, size);
    free(again);
    free(golden);
    free(x);
    free(want);
    free(y);
    bp_net_free(net);
}

/* Train @p steps stateful steps of a character-model-like stream: batch k of 3 rows. */
static void train_stream(bp_net *net, bp_optimizer *opt, size_t first, size_t steps)
{
    for (size_t k = first; k < first + steps; k++) {
        float x[3 * 6 * 2], t[3];
        for (size_t i = 0; i < 36; i++)
            x[i] = (float)sin(0.37 * (double)(k * 36 + i));
        for (size_t i = 0; i < 3; i++)
            t[i] = (float)cos(0.11 * (double)(k * 3 + i));
        float loss;
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, t, 3, &loss), BP_OK);
    }
}

static void stateful_lstm_checkpoint_resumes_exactly(void **state)
{
    (void)state;
    bp_net *net = NULL, *back = NULL;
    bp_optimizer *opt = NULL, *opt_back = NULL;
    assert_status(bp_net_create_sequence(&net, 6, 2, 21), BP_OK);
    assert_status(bp_net_add_lstm(net, 5, 0), BP_OK);
    assert_status(bp_net_add_lstm(net, 4, BP_RNN_LAST_STEP), BP_OK);
    assert_status(bp_net_add_dense(net, 1, BP_ACT_IDENTITY), BP_OK);
    for (size_t i = 0; i < 2; i++)
        assert_status(bp_layer_set(bp_net_layer(net, i), BP_LAYER_STATEFUL, 1.0), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    train_stream(net, opt, 0, 4);
    size_t size;
    void *buf = save_to_buffer(net, opt, &size); /* mid-epoch: a state of 3 rows carried */
    train_stream(net, opt, 4, 4);
    assert_status(bp_checkpoint_load_buffer(&back, &opt_back, buf, size), BP_OK);
    bp_net *reset = NULL;
    bp_optimizer *opt_reset = NULL;
    assert_status(bp_checkpoint_load_buffer(&reset, &opt_reset, buf, size), BP_OK);
    train_stream(back, opt_back, 4, 4);
    /* the resumed run is bit-identical: parameters and carried states */
    for (size_t i = 0; i < 3; i++) {
        bp_layer *a = bp_net_layer(net, i), *b = bp_net_layer(back, i);
        const size_t np = bp_layer_param_count(a);
        float *pa = malloc(np * sizeof *pa), *pb = malloc(np * sizeof *pb);
        assert_non_null(pa);
        assert_non_null(pb);
        const size_t nw = weight_count(a);
        assert_status(bp_layer_get_weights(a, pa, np), BP_OK);
        assert_status(bp_layer_get_weights(b, pb, np), BP_OK);
        assert_memory_equal(pa, pb, nw * sizeof *pa);
        assert_status(bp_layer_get_biases(a, pa, np), BP_OK);
        assert_status(bp_layer_get_biases(b, pb, np), BP_OK);
        assert_memory_equal(pa, pb, (np - nw) * sizeof *pa);
        free(pa);
        free(pb);
    }
    for (size_t i = 0; i < 2; i++) {
        float sa[64], sb[64];
        size_t ca, cb;
        get_state(net, i, sa, 64, &ca);
        get_state(back, i, sb, 64, &cb);
        assert_int_equal(ca, cb);
        assert_true(ca > 0);
        assert_memory_equal(sa, sb, ca * sizeof *sa);
    }
    /* the state matters: without it the same steps end elsewhere */
    assert_status(bp_net_reset_state(reset), BP_OK);
    train_stream(reset, opt_reset, 4, 4);
    float sa[64], sb[64];
    size_t ca, cb;
    get_state(net, 1, sa, 64, &ca);
    get_state(reset, 1, sb, 64, &cb);
    assert_int_equal(ca, cb);
    assert_true(memcmp(sa, sb, ca * sizeof *sa) != 0);
    bp_net_free(reset);
    bp_optimizer_free(opt_reset);
    bp_net_free(back);
    bp_optimizer_free(opt_back);
    free(buf);
    bp_optimizer_free(opt);
    bp_net_free(net);
}

/* ------------------------------------------------------------------------------------------
 * No allocation per step
 * ----------------------------------------------------------------------------------------*/

static void training_steps_allocate_nothing_after_the_first(void **state)
{
    (void)state;
    bp_test_alloc counter = {0};
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    assert_status(
        bp_net_create_sequence_ex(&net, 8, 3, 5, bp_test_alloc_fn, bp_test_free_fn, &counter),
        BP_OK);
    assert_status(bp_net_add_gru(net, 6, BP_RNN_BIDIRECTIONAL), BP_OK);
    assert_status(bp_net_add_lstm(net, 5, 0), BP_OK);
    assert_status(bp_net_add_rnn(net, 4, BP_ACT_TANH, BP_RNN_LAST_STEP), BP_OK);
    assert_status(bp_net_add_dense(net, 2, BP_ACT_IDENTITY), BP_OK);
    for (size_t i = 0; i < 3; i++)
        assert_status(bp_layer_set(bp_net_layer(net, i), BP_LAYER_STATEFUL, 1.0), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    float x[4 * 24], t[8], loss, y[8];
    uint64_t rs = 1;
    fill(x, 96, &rs, 1.0f);
    fill(t, 8, &rs, 1.0f);
    assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, t, 4, &loss), BP_OK);
    assert_status(bp_net_predict(net, x, 4, y, 8), BP_OK);
    const size_t before = counter.allocs;
    for (int k = 0; k < 5; k++) {
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, x, t, 4, &loss), BP_OK);
        assert_status(bp_net_predict(net, x, 4, y, 8), BP_OK);
    }
    assert_int_equal(counter.allocs, before);
    bp_optimizer_free(opt);
    bp_net_free(net);
    assert_int_equal(counter.live, 0);
}

/* ------------------------------------------------------------------------------------------
 * Allocation failures: every one is BP_ERR_NOMEM, leaks nothing, changes nothing
 * ----------------------------------------------------------------------------------------*/

static bp_status build_seq(bp_test_alloc *ta, bp_net **net)
{
    BP_CHECK(bp_net_create_sequence_ex(net, 4, 2, 7, bp_test_alloc_fn, bp_test_free_fn, ta));
    BP_CHECK(bp_net_add_gru(*net, 3, BP_RNN_BIDIRECTIONAL));
    BP_CHECK(bp_net_add_rnn(*net, 3, BP_ACT_TANH, 0));
    BP_CHECK(bp_net_add_lstm(*net, 3, BP_RNN_LAST_STEP));
    BP_CHECK(bp_layer_set(bp_net_layer(*net, 2), BP_LAYER_STATEFUL, 1.0));
    return bp_net_add_dense(*net, 1, BP_ACT_IDENTITY);
}

static const float oom_x[3 * 8] = {1, 2, 0, -1, 0.5f, 0, 1, 1, -1, 0,  2, 1,
                                   0, 0, 1, -2, 1,    1, 0, 3, 1,  -1, 0, 1};
static const float oom_t[3] = {0.5f, -1, 0.25f};

static void oom_runs(const char *what, int (*fn)(bp_test_alloc *ta, long k, bp_status *s))
{
    for (long k = 1;; k++) {
        bp_test_alloc ta = {0};
        bp_status s = BP_OK;
        const int injected = fn(&ta, k, &s);
        if (ta.live != 0) fail_msg("%s, failure %ld: %zu blocks leaked", what, k, ta.live);
        if (!injected) {
            assert_status(s, BP_OK);
            return;
        }
        if (s != BP_ERR_NOMEM)
            fail_msg("%s, failure %ld: status %d: %s", what, k, s, bp_last_error());
    }
}

static int oom_build(bp_test_alloc *ta, long k, bp_status *s)
{
    bp_net *net = NULL;
    ta->fail_at = k;
    *s = build_seq(ta, &net);
    const int fired = (long)ta->attempts >= k;
    ta->fail_at = 0;
    bp_net_free(net);
    return fired;
}

static int oom_train(bp_test_alloc *ta, long k, bp_status *s)
{
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    assert_status(build_seq(ta, &net), BP_OK);
    assert_status(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), BP_OK);
    size_t np, count;
    const float *p = bp_net_params(net, &np);
    float *before = malloc(np * sizeof *before);
    assert_non_null(before);
    memcpy(before, p, np * sizeof *before);
    ta->fail_at = (long)ta->attempts + k;
    *s = bp_net_train_step(net, opt, BP_LOSS_MSE, oom_x, oom_t, 3, NULL);
    const int fired = (long)ta->attempts >= ta->fail_at;
    ta->fail_at = 0;
    if (*s != BP_OK) {
        assert_memory_equal(bp_net_params(net, NULL), before, np * sizeof *before);
        assert_status(bp_layer_get_state(bp_net_layer(net, 2), NULL, 0, &count), BP_OK);
        assert_int_equal(count, 0); /* no state kept */
        assert_status(bp_net_train_step(net, opt, BP_LOSS_MSE, oom_x, oom_t, 3, NULL), BP_OK);
    }
    free(before);
    bp_optimizer_free(opt);
    bp_net_free(net);
    return fired;
}

static int oom_load_and_clone(bp_test_alloc *ta, long k, bp_status *s)
{
    bp_net *net = NULL, *back = NULL, *copy = NULL;
    assert_status(build_seq(ta, &net), BP_OK);
    const float *y;
    assert_status(bp_net_forward(net, oom_x, 3, &y), BP_OK); /* a carried state */
    size_t size;
    void *buf = save_to_buffer(net, NULL, &size);
    ta->fail_at = (long)ta->attempts + k;
    *s = bp_net_load_buffer_ex(&back, buf, size, bp_test_alloc_fn, bp_test_free_fn, ta);
    if (*s == BP_OK) *s = bp_net_clone(&copy, back);
    const int fired = (long)ta->attempts >= ta->fail_at;
    ta->fail_at = 0;
    if (*s != BP_OK) assert_null(copy);
    bp_net_free(copy);
    bp_net_free(back);
    free(buf);
    bp_net_free(net);
    return fired;
}

static void allocation_failures_are_reported_and_leak_nothing(void **state)
{
    (void)state;
    oom_runs("build", oom_build);
    oom_runs("stateful train step", oom_train);
    oom_runs("load and clone", oom_load_and_clone);
}

/* ------------------------------------------------------------------------------------------
 * Malformed layer records (through the kinds' construct hooks, as the loader calls them)
 * ----------------------------------------------------------------------------------------*/

static bp_status construct(int kind, const bp__hyper *hp, size_t count, size_t expect)
{
    bp_net *net = NULL;
    assert_status(bp_net_create_sequence(&net, 3, 2, 1), BP_OK);
    const bp_status s = bp__layer_construct(net, kind, hp, count, expect);
    bp_net_free(net);
    return s;
}

static void malformed_records_are_format_errors(void **state)
{
    (void)state;
    /* lstm H = 2 over 2 features: 8 x (2 + 2) weights + 16 biases = 48 */
    const bp__hyper ok[] = {{20, 2.0}, {21, 0.0}};
    assert_status(construct(BP_LAYER_LSTM, ok, 2, 48), BP_OK);
    assert_status(construct(BP_LAYER_LSTM, ok, 2, 47), BP_ERR_FORMAT);
    assert_status(construct(BP_LAYER_LSTM, ok, 1, 48), BP_ERR_FORMAT); /* no flags */
    const bp__hyper bad_flags[] = {{20, 2.0}, {21, 4.0}};
    assert_status(construct(BP_LAYER_LSTM, bad_flags, 2, 48), BP_ERR_FORMAT);
    const bp__hyper bad_hidden[] = {{20, 2.5}, {21, 0.0}};
    assert_status(construct(BP_LAYER_GRU, bad_hidden, 2, 36), BP_ERR_FORMAT);
    /* rnn H = 2: 2 x (2 + 2) + 4 = 12; its activation must be tanh or ReLU */
    const bp__hyper rnn_ok[] = {{20, 2.0}, {21, 0.0}, {22, 3.0}};
    assert_status(construct(BP_LAYER_RNN, rnn_ok, 3, 12), BP_OK);
    const bp__hyper rnn_sigmoid[] = {{20, 2.0}, {21, 0.0}, {22, 1.0}};
    assert_status(construct(BP_LAYER_RNN, rnn_sigmoid, 3, 12), BP_ERR_FORMAT);
    /* the rnn's activation key means nothing to a gru: a newer writer's key */
    const bp__hyper gru_act[] = {{20, 2.0}, {21, 0.0}, {22, 2.0}};
    assert_status(construct(BP_LAYER_GRU, gru_act, 3, 36), BP_ERR_VERSION);
    /* a carried state needs the stateful setting */
    const bp__hyper rows_only[] = {{20, 2.0}, {21, 0.0}, {23, 4.0}};
    assert_status(construct(BP_LAYER_LSTM, rows_only, 3, 48), BP_ERR_FORMAT);
    const bp__hyper rows_stateful[] = {{20, 2.0}, {21, 0.0}, {23, 4.0}, {208, 1.0}};
    assert_status(construct(BP_LAYER_LSTM, rows_stateful, 4, 48), BP_OK);
    const bp__hyper rows_zero[] = {{20, 2.0}, {21, 0.0}, {23, 0.0}, {208, 1.0}};
    assert_status(construct(BP_LAYER_LSTM, rows_zero, 4, 48), BP_ERR_FORMAT);
    /* flat rows cannot hold a recurrent layer */
    bp_net *net = NULL;
    assert_status(bp_net_create(&net, 6, 1), BP_OK);
    assert_status(bp__layer_construct(net, BP_LAYER_GRU, ok, 2, 36), BP_ERR_FORMAT);
    bp_net_free(net);
    /* state floats: the count the record announced, finite */
    assert_status(bp_net_create_sequence(&net, 3, 2, 1), BP_OK);
    assert_status(bp__layer_construct(net, BP_LAYER_LSTM, rows_stateful, 4, 48), BP_OK);
    bp_layer *l = bp_net_layer(net, 0);
    float st[4 * 2 * 2] = {0};
    assert_int_equal(l->vt->state_floats(l), 16);
    assert_status(l->vt->state_read(l, st, 15), BP_ERR_FORMAT);
    st[3] = NAN;
    assert_status(l->vt->state_read(l, st, 16), BP_ERR_NONFINITE);
    st[3] = 1.0f;
    assert_status(l->vt->state_read(l, st, 16), BP_OK);
    assert_status(bp_layer_set_state(l, st, 16), BP_OK);
    assert_status(bp_layer_set_state(l, st, 12), BP_ERR_SHAPE);
    bp_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(shapes_and_parameter_layout_follow_pytorch),
        bp_add_test(bad_arguments_fail_with_a_status),
        bp_add_test(outputs_match_pytorch),
        bp_add_test(large_batches_predict_like_the_training_forward),
        bp_add_test(every_kind_learns_to_remember_through_time),
        bp_add_test(stateful_training_carries_memory_across_batches),
        bp_add_test(token_model_learns_next_token_per_step),
        bp_add_test(bptt_gradients_match_finite_differences),
        bp_add_test(stateful_bptt_gradients_match_finite_differences),
        bp_add_test(stateful_batch_size_must_stay_until_reset),
        bp_add_test(a_non_finite_final_state_fails_and_is_not_kept),
        bp_add_test(clone_copies_the_carried_state),
        bp_add_test(model_files_round_trip_every_kind),
        bp_add_test(stateful_lstm_checkpoint_resumes_exactly),
        bp_add_test(golden_recurrent_model_still_loads_and_predicts_the_same),
        bp_add_test(training_steps_allocate_nothing_after_the_first),
        bp_add_test(allocation_failures_are_reported_and_leak_nothing),
        bp_add_test(malformed_records_are_format_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
