/* test_grad.c -- every activation x every loss x 1, 2, 3 dense layers: the library's analytic
 * gradients (float) against central finite differences of an independent double-precision
 * re-implementation of the forward pass and the loss. The reference forward is also checked
 * against the library's outputs. */
#include "test_util.h"
#include "ref_net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "activation.h"
#include "loss.h"
#include "layer.h"
#include "net.h"

#define N_ROWS     4
#define N_IN       3
#define MAX_W      6
#define MAX_LAYERS 3

typedef struct ref_net {
    size_t nl, in;
    size_t out[MAX_LAYERS];
    int act[MAX_LAYERS];
    double slope, alpha;
    double *p; /* copy of the parameters, same layout as bp_net_params() */
} ref_net;

/* Forward in double; x: [n x in] (double); writes outputs [n x out_last]. */
static void ref_forward(const ref_net *r, const double *x, size_t n, double *y)
{
    double a[N_ROWS * MAX_W], b[N_ROWS * MAX_W];
    size_t width = r->in;
    memcpy(a, x, n * width * sizeof(double));
    size_t off = 0;
    for (size_t l = 0; l < r->nl; l++) {
        const size_t out = r->out[l];
        const double *w = r->p + off, *bias = r->p + off + out * width;
        for (size_t i = 0; i < n; i++) {
            for (size_t o = 0; o < out; o++) {
                double z = bias[o];
                for (size_t k = 0; k < width; k++)
                    z += a[i * width + k] * w[o * width + k];
                b[i * out + o] = z;
            }
            if (r->act[l] == BP_ACT_SOFTMAX) {
                double mx = -HUGE_VAL, s = 0;
                for (size_t o = 0; o < out; o++)
                    mx = fmax(mx, b[i * out + o]);
                for (size_t o = 0; o < out; o++)
                    s += exp(b[i * out + o] - mx);
                for (size_t o = 0; o < out; o++)
                    b[i * out + o] = exp(b[i * out + o] - mx) / s;
            } else {
                for (size_t o = 0; o < out; o++)
                    b[i * out + o] = ref_act(r->act[l], b[i * out + o], r->slope, r->alpha);
            }
        }
        off += out * width + out;
        width = out;
        memcpy(a, b, n * out * sizeof(double));
    }
    memcpy(y, a, n * width * sizeof(double));
}

static double ref_loss(int loss, const double *p, const float *t, size_t n, size_t w)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < w; j++) {
            const double v = p[i * w + j];
            const double tt =
                loss == BP_LOSS_SPARSE_SOFTMAX_CE ? ((size_t)t[i] == j) : (double)t[i * w + j];
            const double d = v - tt;
            switch (loss) {
            case BP_LOSS_MSE: s += d * d; break;
            case BP_LOSS_MAE: s += fabs(d); break;
            case BP_LOSS_HUBER: s += fabs(d) <= 1.0 ? 0.5 * d * d : fabs(d) - 0.5; break;
            case BP_LOSS_BCE_LOGITS: {
                const double sg = 1.0 / (1.0 + exp(-v));
                s -= tt * log(sg) + (1 - tt) * log(1 - sg);
                break;
            }
            default: s -= tt * log(v); break; /* softmax CE, p are probabilities */
            }
        }
    }
    const int per_row = loss == BP_LOSS_SOFTMAX_CE || loss == BP_LOSS_SPARSE_SOFTMAX_CE;
    return s / (double)(per_row ? n : n * w);
}

static double ref_total(const ref_net *r, int loss, const double *x, const float *t, size_t n)
{
    double y[N_ROWS * MAX_W];
    ref_forward(r, x, n, y);
    return ref_loss(loss, y, t, n, r->out[r->nl - 1]);
}

static uint64_t rng_state = 12345;

/* Build a net of @p depth dense layers and compare its gradients with the reference. */
/* Returns 0 (and checks nothing) when the sampled net has an all-zero gradient, e.g. every
 * ReLU of a one-row batch dead: the caller then draws another sample. */
static int check_config(int act, int loss, size_t depth, size_t rows, uint64_t seed)
{
    const int ce = loss == BP_LOSS_SOFTMAX_CE || loss == BP_LOSS_SPARSE_SOFTMAX_CE;
    ref_net r = {.nl = depth, .in = N_IN, .slope = 0.01, .alpha = 1.0};
    static const size_t widths[MAX_LAYERS] = {5, 4, 3};
    for (size_t l = 0; l < depth; l++) {
        r.out[l] = l + 1 == depth ? 3 : widths[l];
        r.act[l] = (act == BP_ACT_SOFTMAX && l + 1 < depth) ? BP_ACT_TANH : act;
    }
    if (ce) r.act[depth - 1] = BP_ACT_SOFTMAX;

    bp_net *net;
    assert_status(bp_net_create(&net, N_IN, seed * 1000 + 7 + (uint64_t)act * 100 + (uint64_t)loss),
                  BP_OK);
    for (size_t l = 0; l < depth; l++) {
        assert_status(bp_net_add_dense(net, r.out[l], r.act[l]), BP_OK);
        /* Biases non-zero so that every parameter is exercised. */
        float bias[MAX_W];
        bp_test_fill_uniform(bias, r.out[l], 0.05f, 0.3f, &rng_state); /* keeps ReLUs alive */
        assert_status(bp_layer_set_biases(bp_net_layer(net, l), bias, r.out[l]), BP_OK);
    }
    const size_t out = r.out[depth - 1];

    float x[N_ROWS * N_IN], t[N_ROWS * MAX_W];
    bp_test_fill_uniform(x, N_ROWS * N_IN, -1.5f, 1.5f, &rng_state);
    if (loss == BP_LOSS_SPARSE_SOFTMAX_CE) {
        for (size_t i = 0; i < rows; i++)
            t[i] = (float)(i % out);
    } else if (loss == BP_LOSS_SOFTMAX_CE) {
        /* Probability rows (not only one-hot). */
        for (size_t i = 0; i < rows; i++) {
            float s = 0;
            bp_test_fill_uniform(t + i * out, out, 0.1f, 1.0f, &rng_state);
            for (size_t j = 0; j < out; j++)
                s += t[i * out + j];
            for (size_t j = 0; j < out; j++)
                t[i * out + j] /= s;
        }
    } else if (loss == BP_LOSS_BCE_LOGITS) {
        bp_test_fill_uniform(t, N_ROWS * out, 0.0f, 1.0f, &rng_state);
    } else {
        bp_test_fill_uniform(t, N_ROWS * out, -1.0f, 1.0f, &rng_state);
    }

    /* Library: forward, loss, backward (the non-fused path). */
    const float *y;
    assert_status(bp_net_forward(net, x, rows, &y), BP_OK);
    float lv, dy[N_ROWS * MAX_W];
    assert_status(bp_loss_eval(loss, 1.0, y, t, rows, out, &lv, dy), BP_OK);
    assert_status(bp_net_backward(net, dy, rows), BP_OK);

    size_t np;
    float *params = bp_net_params(net, &np);
    const float *grads = bp_net_grads(net, NULL);
    r.p = malloc(np * sizeof(double));
    assert_non_null(r.p);
    for (size_t k = 0; k < np; k++)
        r.p[k] = (double)params[k];
    double xd[N_ROWS * N_IN];
    for (size_t k = 0; k < N_ROWS * N_IN; k++)
        xd[k] = (double)x[k];

    /* The reference forward and loss agree with the library's. */
    double yr[N_ROWS * MAX_W];
    ref_forward(&r, xd, rows, yr);
    for (size_t k = 0; k < rows * out; k++)
        assert_close(y[k], yr[k], 1e-4, 1e-5);
    assert_close(lv, ref_loss(loss, yr, t, rows, out), 1e-4, 1e-6);

    /* Central differences in double. */
    const double eps = 1e-6;
    double scale = 0.0, gmax = 0.0;
    double *fd = malloc(np * sizeof(double));
    assert_non_null(fd);
    for (size_t k = 0; k < np; k++) {
        const double save = r.p[k];
        r.p[k] = save + eps;
        const double lp = ref_total(&r, loss, xd, t, rows);
        r.p[k] = save - eps;
        const double lm = ref_total(&r, loss, xd, t, rows);
        r.p[k] = save;
        fd[k] = (lp - lm) / (2 * eps);
        scale = fmax(scale, fabs(fd[k]));
        gmax = fmax(gmax, fabs((double)grads[k]));
    }
    if (!(gmax > 0.0)) { /* an all-zero gradient proves nothing */
        free(fd);
        free(r.p);
        bp_net_free(net);
        return 0;
    }
    for (size_t k = 0; k < np; k++) {
        if (fabs((double)grads[k] - fd[k]) > 2e-3 * fabs(fd[k]) + 1e-4 * scale + 1e-7) {
            print_error("act %s loss %s depth %zu: param %zu analytic %.8g numeric %.8g\n",
                        bp__act_name(act), bp__loss_name(loss), depth, k, (double)grads[k], fd[k]);
            fail();
        }
    }

    /* Input gradient: layer 0's dL/dz is left in the ping-pong buffer by the backward walk
     * (g0 for an odd number of layers, g1 for an even one); dL/dx = dz0 W0. */
    {
        bp_layer *l0 = bp_net_layer(net, 0);
        const bp__workspace *ws = &net->ws;
        float dx[N_ROWS * N_IN];
        const float *dz0 = (depth % 2 == 1) ? ws->g0 : ws->g1;
        const float *w0 = bp__layer_w(l0);
        for (size_t i = 0; i < rows; i++)
            for (size_t k = 0; k < N_IN; k++) {
                float s = 0;
                for (size_t o = 0; o < l0->out; o++)
                    s += dz0[i * l0->out + o] * w0[o * N_IN + k];
                dx[i * N_IN + k] = s;
            }
        double xs = 0;
        double fdx[N_ROWS * N_IN];
        for (size_t k = 0; k < rows * N_IN; k++) {
            const double save = xd[k];
            xd[k] = save + eps;
            const double lp = ref_total(&r, loss, xd, t, rows);
            xd[k] = save - eps;
            const double lm = ref_total(&r, loss, xd, t, rows);
            xd[k] = save;
            fdx[k] = (lp - lm) / (2 * eps);
            xs = fmax(xs, fabs(fdx[k]));
        }
        for (size_t k = 0; k < rows * N_IN; k++) {
            if (fabs((double)dx[k] - fdx[k]) > 2e-3 * fabs(fdx[k]) + 1e-4 * xs + 1e-7) {
                print_error("act %s loss %s depth %zu: input %zu analytic %.8g numeric %.8g\n",
                            bp__act_name(act), bp__loss_name(loss), depth, k, (double)dx[k],
                            fdx[k]);
                fail();
            }
        }
    }
    free(fd);
    free(r.p);
    bp_net_free(net);
    return 1;
}

static void check_config_some_seed(int act, int loss, size_t depth, size_t rows)
{
    for (uint64_t seed = 0; seed < 10; seed++)
        if (check_config(act, loss, depth, rows, seed)) return;
    print_error("act %s loss %s depth %zu rows %zu: all-zero gradient for 10 seeds\n",
                bp__act_name(act), bp__loss_name(loss), depth, rows);
    fail();
}

static void every_activation_and_loss_matches_finite_differences(void **state)
{
    (void)state;
    for (int act = BP_ACT_IDENTITY; act <= BP_ACT_SOFTMAX; act++)
        for (int loss = BP_LOSS_MSE; loss <= BP_LOSS_SPARSE_SOFTMAX_CE; loss++)
            for (size_t depth = 1; depth <= 3; depth++) {
                check_config_some_seed(act, loss, depth, N_ROWS); /* GEMM path */
                check_config_some_seed(act, loss, depth, 1);      /* single-row path */
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(every_activation_and_loss_matches_finite_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
