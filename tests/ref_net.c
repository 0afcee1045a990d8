/* ref_net.c -- double-precision reference forward pass and finite-difference gradient check
 * for layered networks (see ref_net.h). Written from the definitions, loop by loop, sharing
 * no code with the library: direct convolution, per-channel batch statistics, window scans. */
#include "ref_net.h"

#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "workers.h"
#include "layer.h"

double ref_act(int act, double z, double slope, double alpha)
{
    switch (act) {
    case BP_ACT_IDENTITY: return z;
    case BP_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    case BP_ACT_TANH: return tanh(z);
    case BP_ACT_RELU: return z > 0 ? z : 0;
    case BP_ACT_LEAKY_RELU: return z > 0 ? z : slope * z;
    case BP_ACT_ELU: return z > 0 ? z : alpha * (exp(z) - 1.0);
    case BP_ACT_GELU:
        return 0.5 * z *
               (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (z + 0.044715 * z * z * z)));
    case BP_ACT_SILU: return z / (1.0 + exp(-z));
    case BP_ACT_SOFTPLUS: return log(1.0 + exp(z));
    default: fail_msg("ref_act: activation %d not supported", act); return 0.0;
    }
}

/* Activation of @p rows rows of @p w values in place (softmax per row). */
static void act_rows(const bp_layer *l, double *v, size_t rows, size_t w)
{
    for (size_t i = 0; i < rows; i++) {
        double *r = v + i * w;
        if (l->activation == BP_ACT_SOFTMAX) {
            double mx = -HUGE_VAL, s = 0.0;
            for (size_t j = 0; j < w; j++)
                mx = fmax(mx, r[j]);
            for (size_t j = 0; j < w; j++)
                s += exp(r[j] - mx);
            for (size_t j = 0; j < w; j++)
                r[j] = exp(r[j] - mx) / s;
        } else {
            for (size_t j = 0; j < w; j++)
                r[j] = ref_act(l->activation, r[j], (double)l->act.leaky_slope,
                               (double)l->act.elu_alpha);
        }
    }
}

/* A construction key of layer @p l as its persistence hook describes it (the kind-private
 * struct stays private to its .c file). */
static size_t hyper_size(const bp_layer *l, uint32_t key)
{
    bp__hyper hp[BP__HYPER_MAX];
    const size_t count = l->vt->hyper(l, hp, BP__HYPER_MAX);
    double v = 0.0;
    if (bp__hyper_find(hp, count, key, &v) != 0) fail_msg("layer %zu: no key %u", l->index, key);
    return (size_t)v;
}

/* One layer: x [n x in] -> y [n x out]; p: the layer's parameters (W then b). */
static void layer_forward(const bp_layer *l, const double *p, const double *x, size_t n, double *y)
{
    const size_t C = l->in_c, H = l->in_h, W = l->in_w, F = l->out_c, OH = l->out_h, OW = l->out_w;
    /* Sequence rows of T steps: per-step kinds see R = n*T rows of I = in/T, O = out/T. */
    const size_t T = l->in_steps ? l->in_steps : 1, R = n * T, I = l->in / T, O = l->out / T;
    switch (l->vt->kind) {
    case BP_LAYER_DENSE:
        for (size_t i = 0; i < R; i++)
            for (size_t o = 0; o < O; o++) {
                double z = p[l->nweights + o];
                for (size_t k = 0; k < I; k++)
                    z += x[i * I + k] * p[o * I + k];
                y[i * O + o] = z;
            }
        act_rows(l, y, R, O);
        break;
    case BP_LAYER_EMBEDDING: /* y[k] = W[id k], O = dimension */
        for (size_t k = 0; k < R; k++)
            for (size_t d = 0; d < O; d++)
                y[k * O + d] = p[(size_t)x[k] * O + d];
        break;
    case BP_LAYER_LAYERNORM: { /* per row of I = l->nweights features */
        double epsilon = 0.0;
        assert_int_equal(bp_layer_get(l, BP_LAYER_LN_EPSILON, &epsilon), BP_OK);
        const size_t Fw = l->nweights, rows = n * l->in / Fw;
        for (size_t i = 0; i < rows; i++) {
            double mean = 0.0, var = 0.0;
            for (size_t k = 0; k < Fw; k++)
                mean += x[i * Fw + k];
            mean /= (double)Fw;
            for (size_t k = 0; k < Fw; k++)
                var += (x[i * Fw + k] - mean) * (x[i * Fw + k] - mean);
            var /= (double)Fw;
            for (size_t k = 0; k < Fw; k++)
                y[i * Fw + k] = p[k] * (x[i * Fw + k] - mean) / sqrt(var + epsilon) + p[Fw + k];
        }
        break;
    }
    case BP_LAYER_DROPOUT: { /* the identity: only rate 0 is deterministic */
        double rate = 1.0;
        assert_int_equal(bp_layer_get(l, BP_LAYER_DROPOUT_RATE, &rate), BP_OK);
        assert_true(rate == 0.0);
        memcpy(y, x, n * l->in * sizeof *y);
        break;
    }
    case BP_LAYER_CONV2D: {
        const struct {
            size_t kh, kw, stride, pad;
        } g = {hyper_size(l, BP__HP_KERNEL_H), hyper_size(l, BP__HP_KERNEL_W),
               hyper_size(l, BP__HP_STRIDE), hyper_size(l, BP__HP_PADDING)},
          *cp = &g;
        for (size_t i = 0; i < n; i++)
            for (size_t f = 0; f < F; f++)
                for (size_t oy = 0; oy < OH; oy++)
                    for (size_t ox = 0; ox < OW; ox++) {
                        double z = p[l->nweights + f];
                        for (size_t c = 0; c < C; c++)
                            for (size_t ky = 0; ky < cp->kh; ky++)
                                for (size_t kx = 0; kx < cp->kw; kx++) {
                                    const long iy = (long)(oy * cp->stride + ky) - (long)cp->pad;
                                    const long ix = (long)(ox * cp->stride + kx) - (long)cp->pad;
                                    if (iy < 0 || ix < 0 || iy >= (long)H || ix >= (long)W)
                                        continue;
                                    z += p[((f * C + c) * cp->kh + ky) * cp->kw + kx] *
                                         x[i * l->in + (c * H + (size_t)iy) * W + (size_t)ix];
                                }
                        y[i * l->out + (f * OH + oy) * OW + ox] = z;
                    }
        act_rows(l, y, n * l->out, 1);
        break;
    }
    case BP_LAYER_BATCHNORM: {
        double epsilon = 0.0;
        assert_int_equal(bp_layer_get(l, BP_LAYER_BN_EPSILON, &epsilon), BP_OK);
        const size_t S = H * W;
        for (size_t c = 0; c < C; c++) {
            double mean = 0.0, var = 0.0;
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < S; k++)
                    mean += x[i * l->in + c * S + k];
            mean /= (double)(n * S);
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < S; k++) {
                    const double d = x[i * l->in + c * S + k] - mean;
                    var += d * d;
                }
            var /= (double)(n * S);
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < S; k++) {
                    const size_t at = i * l->in + c * S + k;
                    y[at] = p[c] * (x[at] - mean) / sqrt(var + epsilon) + p[C + c];
                }
        }
        break;
    }
    case BP_LAYER_ACTIVATION:
        memcpy(y, x, n * l->in * sizeof *y);
        act_rows(l, y, R, O);
        break;
    case BP_LAYER_MAXPOOL2D:
    case BP_LAYER_AVGPOOL2D: {
        const struct {
            size_t size, stride;
        } g = {hyper_size(l, BP__HP_POOL_SIZE), hyper_size(l, BP__HP_STRIDE)}, *pp = &g;
        for (size_t i = 0; i < n; i++)
            for (size_t c = 0; c < C; c++)
                for (size_t oy = 0; oy < OH; oy++)
                    for (size_t ox = 0; ox < OW; ox++) {
                        double m = -HUGE_VAL, s = 0.0;
                        for (size_t a = 0; a < pp->size; a++)
                            for (size_t b = 0; b < pp->size; b++) {
                                const double v = x[i * l->in + (c * H + oy * pp->stride + a) * W +
                                                   ox * pp->stride + b];
                                m = fmax(m, v);
                                s += v;
                            }
                        y[i * l->out + (c * OH + oy) * OW + ox] =
                            l->vt->kind == BP_LAYER_MAXPOOL2D ? m
                                                              : s / (double)(pp->size * pp->size);
                    }
        break;
    }
    case BP_LAYER_GLOBAL_AVGPOOL:
        for (size_t i = 0; i < n; i++)
            for (size_t c = 0; c < C; c++) {
                double s = 0.0;
                for (size_t k = 0; k < H * W; k++)
                    s += x[i * l->in + c * H * W + k];
                y[i * l->out + c] = s / (double)(H * W);
            }
        break;
    case BP_LAYER_FLATTEN: memcpy(y, x, n * l->in * sizeof *y); break;
    default: fail_msg("ref_net: layer kind %d not supported", l->vt->kind);
    }
}

static size_t max_width(bp_net *net)
{
    size_t w = bp_net_input_size(net);
    for (size_t i = 0; i < bp_net_layer_count(net); i++) {
        const size_t o = bp_layer_output_size(bp_net_layer(net, i));
        w = o > w ? o : w;
    }
    return w;
}

/* Forward through every layer with parameters @p p (library layout); y [n x out]. */
static void forward_params(bp_net *net, const double *p, const double *x, size_t n, double *y)
{
    const size_t mw = max_width(net);
    double *a = malloc(n * mw * sizeof *a), *b = malloc(n * mw * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    memcpy(a, x, n * bp_net_input_size(net) * sizeof *a);
    size_t off = 0;
    for (size_t i = 0; i < bp_net_layer_count(net); i++) {
        const bp_layer *l = bp_net_layer(net, i);
        layer_forward(l, p + off, a, n, b);
        off += l->nweights + l->nbiases;
        double *t = a;
        a = b;
        b = t;
    }
    memcpy(y, a, n * bp_net_output_size(net) * sizeof *y);
    free(a);
    free(b);
}

/* Mean loss of outputs y [n x w]; with @p steps S (sequence outputs) per step: n*S rows of
 * w/S, targets [S] class ids or [S x w/S] per row. */
static double loss_value_steps(int loss, const double *y, const float *t, size_t n, size_t w,
                               size_t steps)
{
    if (steps) {
        n *= steps;
        w /= steps;
    }
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < w; j++) {
            const double v = y[i * w + j];
            switch (loss) {
            case BP_LOSS_MSE: s += (v - (double)t[i * w + j]) * (v - (double)t[i * w + j]); break;
            case BP_LOSS_SPARSE_SOFTMAX_CE: s -= (size_t)t[i] == j ? log(v) : 0.0; break;
            case BP_LOSS_SOFTMAX_CE: s -= (double)t[i * w + j] * log(v); break;
            default: fail_msg("ref_net: loss %d not supported", loss);
            }
        }
    return s / (double)(loss == BP_LOSS_MSE ? n * w : n);
}

static size_t out_steps_of(bp_net *net)
{
    size_t steps = 0;
    const size_t L = bp_net_layer_count(net);
    if (L) assert_int_equal(bp_layer_output_steps(bp_net_layer(net, L - 1), &steps), BP_OK);
    return steps;
}

void ref_forward_net(bp_net *net, const float *x, size_t n, double *y)
{
    size_t np;
    const float *params = bp_net_params(net, &np);
    const size_t in = bp_net_input_size(net);
    double *p = malloc((np ? np : 1) * sizeof *p), *xd = malloc(n * in * sizeof *xd);
    assert_non_null(p);
    assert_non_null(xd);
    for (size_t k = 0; k < np; k++)
        p[k] = (double)params[k];
    for (size_t k = 0; k < n * in; k++)
        xd[k] = (double)x[k];
    forward_params(net, p, xd, n, y);
    free(p);
    free(xd);
}

void ref_check_grads(bp_net *net, int loss, const float *x, const float *t, size_t n, double rtol,
                     double atol)
{
    const size_t in = bp_net_input_size(net), out = bp_net_output_size(net);
    const size_t steps = out_steps_of(net); /* per-step loss on sequence outputs */
    /* Library: forward outputs, then gradients. */
    const float *y;
    assert_status(bp_net_forward(net, x, n, &y), BP_OK);
    double *yr = malloc(n * out * sizeof *yr);
    assert_non_null(yr);
    ref_forward_net(net, x, n, yr);
    for (size_t k = 0; k < n * out; k++)
        assert_close(y[k], yr[k], 1e-4, 1e-5);
    float lv;
    assert_status(bp_net_compute_grads(net, loss, x, t, n, &lv), BP_OK);
    assert_close(lv, loss_value_steps(loss, yr, t, n, out, steps), 1e-4, 1e-6);
    free(yr);

    size_t np;
    const float *params = bp_net_params(net, &np);
    const float *grads = bp_net_grads(net, NULL);
    double *p = malloc(np * sizeof *p), *fd = malloc(np * sizeof *fd);
    double *xd = malloc(n * in * sizeof *xd), *yd = malloc(n * out * sizeof *yd);
    assert_true(p != NULL && fd != NULL && xd != NULL && yd != NULL);
    for (size_t k = 0; k < np; k++)
        p[k] = (double)params[k];
    for (size_t k = 0; k < n * in; k++)
        xd[k] = (double)x[k];
    const double eps = 1e-6;
    double scale = 0.0, gmax = 0.0;
    for (size_t k = 0; k < np; k++) {
        const double save = p[k];
        p[k] = save + eps;
        forward_params(net, p, xd, n, yd);
        const double lp = loss_value_steps(loss, yd, t, n, out, steps);
        p[k] = save - eps;
        forward_params(net, p, xd, n, yd);
        const double lm = loss_value_steps(loss, yd, t, n, out, steps);
        p[k] = save;
        fd[k] = (lp - lm) / (2.0 * eps);
        scale = fmax(scale, fabs(fd[k]));
        gmax = fmax(gmax, fabs((double)grads[k]));
    }
    assert_true(gmax > 0.0);
    for (size_t k = 0; k < np; k++) {
        if (fabs((double)grads[k] - fd[k]) > rtol * fabs(fd[k]) + atol * scale + 1e-7) {
            print_error("param %zu of %zu: analytic %.8g numeric %.8g (scale %.3g)\n", k, np,
                        (double)grads[k], fd[k], scale);
            fail();
        }
    }
    free(p);
    free(fd);
    free(xd);
    free(yd);
}
