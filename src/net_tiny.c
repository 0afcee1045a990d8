/* net_tiny.c -- the fused training step for tiny nets (online training of a 2-4-1 XOR net and
 * the like).
 *
 * bp_net_train_step with one row through narrow dense layers (in and out under 16, the
 * layers train_step_row in net.c runs through the scalar kernels), a loss without a softmax
 * (MSE, MAE, Huber, BCE on logits) and plain SGD (no momentum; any weight decay) is a few
 * hundred floating-point operations; train_step_row spent most of its ~1,900 instructions
 * per 2-4-1 step on the walk around them: per-layer calls, the argument and optimizer
 * validation, finite scans of x, y and both gradients, the optimizer's per-step scalars and
 * dispatch (docs/performance.md, "tiny-online"). Here forward, loss, backward, the finite
 * proof and the update are one routine: layers_step for any such net, and hidden1_step, which
 * keeps every value of an in -> h -> 1 MSE net (in <= 4, h <= 8) in registers.
 *
 * Same floats, by construction where possible: the activation functions are activation.c's
 * (act_math.h), layers_step's sums layer_dense.c's (dense_row.h), the loss other than MSE is
 * bp__loss_compute itself, and each remaining expression is the one its general-path twin
 * evaluates, in the same order (each sum of a dense row starts from 0 and adds w[o][i] x[i]
 * for i = 0, 1, ...; dx adds the outputs in order; the update is optimizer.c's sgd_plain).
 * tests/test_tiny.c compares losses, outputs, gradients and weights bit for bit with
 * train_step_row and the general walk.
 *
 * Same guarantees: this file only ever completes a step that the other paths would complete.
 * It declines (returns 0 before writing any parameter or optimizer state) on anything
 * unusual -- a bad handle or argument, a setting it does not cover, a non-finite input, loss
 * or gradient -- and the caller then runs its usual path, which gives the usual status and
 * message and leaves the usual state (gradients written here before a decline are those
 * that path writes too). Every gradient is proven finite before any parameter moves,
 * rejecting exactly the steps train_step_row's prove_grad_finite rejects (see
 * backward_act). */
#include "util.h"
#include "activation.h"
#include "loss.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "optimizer.h"

#include "act_math.h"
#include "dense_row.h"

#include <math.h>
#include <string.h>

/* Bit 31 set when @p v is NaN or Inf: one unit added to the exponent field carries out of
 * it only when the field is all ones. OR-ed over many values, bit 31 tells whether any was
 * non-finite, without a branch per value. */
static inline uint32_t nonfinite_bit(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x7f800000u) + 0x00800000u;
}

#define NONFINITE_SEEN(bits) (((bits) & 0x80000000u) != 0)

/* Parameters of the largest net the fused path takes (the updated parameters are made in a
 * stack copy). */
#define TINY_MAX_PARAMS 512

/* Optimizer setting @p key (enum bp_optimizer_key). */
#define OPT_SET(opt, key) ((opt)->set[(key) - BP__OPT_KEY_FIRST])

/* 1 if this step is one the fused path takes and every check bp_net_train_step makes before
 * the data (handles, arguments, optimizer settings and binding) would pass. bp_net_train_step
 * asks before it decides on flushing denormals (ftz_worth_it in net.c): at one row that needs
 * 4096 parameters, more than TINY_MAX_PARAMS, so the other paths run these nets without it
 * too. */
static int tiny_applies(const bp_net *net, const bp_optimizer *opt, int loss, const float *x,
                        const float *y, size_t n)
{
    /* Rows under 16 floats everywhere: max_width is the inputs' and every layer's outputs'. */
    if (n != 1 || !bp__net_ok(net) || net->max_width >= 16 || x == NULL || y == NULL ||
        !bp__optimizer_ok(opt))
        return 0;
    if (net->tiny_path_off || net->row_path_off || net->grad_hook != NULL || net->accumulate ||
        net->clip_norm > 0.0 || net->clip_value > 0.0 || net->nlayers == 0 ||
        net->nparams > TINY_MAX_PARAMS ||
        net->ws.block == NULL) /* planned (for the current layers) by an earlier step */
        return 0;
    if (loss != BP_LOSS_MSE && loss != BP_LOSS_MAE && loss != BP_LOSS_HUBER &&
        loss != BP_LOSS_BCE_LOGITS)
        return 0;
    /* Plain SGD, already bound to this net's shape (the first step binds it elsewhere). */
    if (opt->kind != BP_OPTIMIZER_SGD || !opt->bound || OPT_SET(opt, BP_OPT_MOMENTUM) != 0.0 ||
        OPT_SET(opt, BP_OPT_NESTEROV) != 0.0 || opt->bound_nparams != net->nparams ||
        opt->bound_nlayers != net->nlayers || opt->bound_hash != net->shape_hash)
        return 0;
    for (size_t i = 0; i < net->nlayers; i++) {
        const bp_layer *l = net->layers[i];
        if (l->vt != &bp__dense_vtable || l->l2 > 0.0 || l->l1 > 0.0 ||
            l->activation == BP_ACT_SOFTMAX)
            return 0;
    }
    return 1;
}

/* f(v) for activation @p act, as act_forward_body in activation.c for rows under 16 floats
 * (the sigmoid through libm's expf). */
static BP__ALWAYS_INLINE float act_one(int act, const bp__act_params *p, float v)
{
    switch (act) {
    case BP_ACT_SIGMOID: return bp__sigmoid_libm(v);
    case BP_ACT_TANH: return tanhf(v);
    case BP_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case BP_ACT_LEAKY_RELU: return v > 0.0f ? v : p->leaky_slope * v;
    case BP_ACT_ELU: return v > 0.0f ? v : p->elu_alpha * expm1f(v);
    case BP_ACT_GELU: return bp__geluf(v);
    case BP_ACT_SILU: return v * bp__sigmoidf(v);
    case BP_ACT_SOFTPLUS: return bp__softplusf(v);
    default: return v; /* identity (softmax is not taken, see tiny_applies) */
    }
}

/* dz = dy f'(z) for activation @p act from z (kept for GELU and SiLU) or y = f(z), as
 * act_backward_body in activation.c. */
static BP__ALWAYS_INLINE float act_grad_one(int act, const bp__act_params *p, float z,
                                            float y, float dy)
{
    switch (act) {
    case BP_ACT_SIGMOID: return dy * (y * (1.0f - y));
    case BP_ACT_TANH: return dy * (1.0f - y * y);
    case BP_ACT_RELU: return y > 0.0f ? dy : 0.0f;
    case BP_ACT_LEAKY_RELU: return y > 0.0f ? dy : p->leaky_slope * dy;
    case BP_ACT_ELU: return dy * (y > 0.0f ? 1.0f : y + p->elu_alpha);
    case BP_ACT_GELU: return dy * (bp__gelu_grad(z));
    case BP_ACT_SILU: return dy * (bp__sigmoidf(z) * (1.0f + z * (1.0f - bp__sigmoidf(z))));
    case BP_ACT_SOFTPLUS: return dy * (-expm1f(-y));
    default: return dy;
    }
}

/* One narrow dense layer, one row, activation @p act: z = W x + b, y = f(z), with z kept in
 * @p zs when the derivative needs it; as row_forward in layer_dense.c (the same sums,
 * dense_row.h, then + b and the scalar activation). */
static BP__ALWAYS_INLINE void forward_act(const bp_layer *l, const float *params,
                                          const float *restrict x, float *restrict zs,
                                          float *restrict y, int act)
{
    /* x: [in], w: [out x in], b: [out], y: [out], zs: [out] or NULL */
    const size_t out = l->out;
    const float *restrict w = params + l->param_off;
    const float *restrict b = w + l->nweights;
    const bp__act_params *p = &l->act;
    const int keep_z = act == BP_ACT_GELU || act == BP_ACT_SILU;
    bp__dense_row_sums(w, x, l->in, out, y);
    for (size_t o = 0; o < out; o++) {
        const float v = y[o] + b[o];
        if (keep_z) zs[o] = v;
        y[o] = act_one(act, p, v);
    }
}

/* Largest |v| over @p count floats through the bits (NaN or Inf if any is). */
static BP__ALWAYS_INLINE float max_abs_bits(const float *v, size_t count)
{
    const uint32_t m = bp__max_abs_bits(v, count);
    float f;
    memcpy(&f, &m, sizeof f);
    return f;
}

/* The SGD settings of one step, as optimizer.c's step_update rounds them. */
typedef struct sgd_step {
    float lr, wd;
} sgd_step;

/* One narrow dense layer backward, one row, activation @p act, as row_backward in
 * layer_dense.c: dy -> dz in place, db = dz and dW = dz x^T into the gradient arena @p gs,
 * dx = W^T dz (each dx[i] summed from 0 over the outputs in order) unless dx is NULL; and
 * the layer's updated parameters into @p next (optimizer.c's sgd_plain, p -= lr (g + wd p),
 * from the same p and g), copied to the net once every gradient is proven finite. Returns
 * a value whose bit 31 is set if any dW or db is not
 * finite: dW row o is d_o x, and since rounding is monotonic, every |d_o x_i| is finite
 * exactly when d_o max|x| is (also when x holds a NaN or Inf, which makes both non-finite),
 * so one product per output proves the row and db_o = d_o. */
static BP__ALWAYS_INLINE uint32_t backward_act(const bp_layer *l, const float *params,
                                               float *gs, float *restrict next,
                                               sgd_step k, const float *restrict x,
                                               const float *restrict zs,
                                               const float *restrict y, float *restrict dy,
                                               float *restrict dx, int act)
{
    /* x: [in], dy -> dz: [out], w, dw, next: [out x in] then [out] (b, db), dx: [in] or
     * NULL, zs: [out] or NULL */
    const size_t in = l->in, out = l->out;
    const bp__act_params *p = &l->act;
    const int keep_z = act == BP_ACT_GELU || act == BP_ACT_SILU;
    const float *restrict w = params + l->param_off;
    const float *restrict b = w + l->nweights;
    float *restrict dw = gs + l->param_off;
    float *restrict db = dw + l->nweights;
    float *restrict nw = next + l->param_off;
    float *restrict nb = nw + l->nweights;
    const float mx = max_abs_bits(x, in);
    uint32_t bad = 0;
    for (size_t o = 0; o < out; o++) {
        const float d = act_grad_one(act, p, keep_z ? zs[o] : 0.0f, y[o], dy[o]);
        const float *restrict wo = w + o * in;
        float *restrict dwo = dw + o * in;
        float *restrict nwo = nw + o * in;
        dy[o] = d;
        bad |= nonfinite_bit(d * mx);
        db[o] = d;
        nb[o] = b[o] - k.lr * (d + k.wd * b[o]);
        for (size_t i = 0; i < in; i++) {
            const float g = d * x[i], q = wo[i];
            dwo[i] = g;
            nwo[i] = q - k.lr * (g + k.wd * q);
        }
    }
    if (dx != NULL) {
        for (size_t i = 0; i < in; i++) {
            float s = 0.0f;
            for (size_t o = 0; o < out; o++) s += dy[o] * w[o * in + i];
            dx[i] = s;
        }
    }
    return bad;
}

/* The layer code for any activation: act_one and act_grad_one switch per element (one
 * copy of the loops rather than one per activation; hidden1_step has constant ones). */
static void forward_layer(const bp_layer *l, const float *params, const float *x, float *zs,
                          float *y)
{
    forward_act(l, params, x, zs, y, l->activation);
}

static uint32_t backward_layer(const bp_layer *l, const float *params, float *gs, float *next,
                               sgd_step k, const float *x, const float *zs, const float *y,
                               float *dy, float *dx)
{
    return backward_act(l, params, gs, next, k, x, zs, y, dy, dx, l->activation);
}

/* MSE for one row, as bp__loss_compute (loss.c) with n = 1: *value and g = dL/dpred.
 * Returns 0 if the loss is not finite. */
static BP__ALWAYS_INLINE int mse_row(const float *pred, const float *y, size_t width, float *g,
                                     float *value)
{
    const float inv_total = 1.0f / (float)width;
    double acc = 0.0;
    for (size_t j = 0; j < width; j++) {
        const float d = pred[j] - y[j];
        acc += (double)(d * d);
        g[j] = 2.0f * d * inv_total;
    }
    acc /= (double)width;
    *value = (float)acc;
    return isfinite(*value);
}

/* The step through the layers' loops (any depth and narrow width): 1 if done (parameters
 * updated, *value set), 0 if the loss or a gradient is not finite (parameters untouched). */
static int layers_step(bp_net *net, int loss, sgd_step k, const float *x, const float *y,
                       float *value)
{
    bp_layer *const *layers = net->layers;
    const size_t li = net->nlayers - 1;
    const size_t width = layers[li]->out;
    bp__workspace *ws = &net->ws;
    float *params = net->params, *grads = net->grads;
    const float *in = x;
    for (size_t i = 0; i <= li; i++) {
        forward_layer(layers[i], params, in, ws->s[i], ws->y[i]);
        in = ws->y[i];
    }
    /* The loss: MSE inline, the others through bp__loss_compute itself. err NULL: a
     * non-finite loss is reported by the caller's path (bp__fail sets the thread-local
     * message, which that path overwrites with the same text). */
    float *g = ws->g0, *other = ws->g1;
    if (loss == BP_LOSS_MSE) {
        if (!mse_row(ws->y[li], y, width, g, value)) return 0;
    } else {
        int is_dz;
        if (bp__loss_compute(NULL, loss, net->huber_delta, ws->y[li], NULL, y, 1, width, value,
                             g, &is_dz) != BP_OK)
            return 0;
    }
    /* Backward from the top, as train_step_row: each layer's gradients, then their proof,
     * stopping at the first layer that fails it (whose gradients train_step_row then
     * recomputes, the same floats, before it fails there too: the layers below keep theirs,
     * as on that path). The updated parameters go to a scratch copy, written to the net only
     * once every gradient is proven finite. */
    float next[TINY_MAX_PARAMS];
    for (size_t i = li + 1; i-- > 0;) {
        const float *xi = i > 0 ? ws->y[i - 1] : x;
        const uint32_t bad = backward_layer(layers[i], params, grads, next, k, xi, ws->s[i],
                                            ws->y[i], g, i > 0 ? other : NULL);
        if (NONFINITE_SEEN(bad)) return 0; /* no parameter written */
        float *tmp = g;
        g = other;
        other = tmp;
    }
    /* The update proper (step_update: the trainable layers' segments). */
    for (size_t i = 0; i <= li; i++) {
        const bp_layer *l = layers[i];
        if (!l->trainable) continue;
        float *restrict p = params + l->param_off;
        const float *restrict q = next + l->param_off;
        for (size_t j = 0; j < l->nweights + l->nbiases; j++) p[j] = q[j];
    }
    return 1;
}

/* Largest widths of the in -> h -> 1 nets that hidden1_step keeps in registers. */
#define H1_IN 4
#define H1_HIDDEN 8

/* The step for an in -> h -> 1 net (in <= H1_IN, h <= H1_HIDDEN), hidden activation @p a0,
 * output activation @p a1 (constants), MSE: the same floats as layers_step, with the values
 * in small local arrays the compiler keeps in registers, from the forward pass to the update,
 * rather than in the workspace (in layers_step each layer's outputs, gradients and updated
 * parameters go through memory: a store-to-load delay on the step's critical path each
 * time, and loops of 1-8 trips). A 2-4-1 step takes ~72 ns instead of ~99
 * (docs/performance.md). Loops run to the constant bounds and stop at the net's widths
 * (branches that predict perfectly). The gradients are proven finite as in backward_act
 * before anything is written. Returns as layers_step. */
static BP__ALWAYS_INLINE int hidden1_step(bp_net *net, sgd_step k, const float *x,
                                          const float *y, float *value, int a0, int a1)
{
    const bp_layer *l0 = net->layers[0], *l1 = net->layers[1];
    const size_t in = l0->in, h = l0->out;
    float *params = net->params, *grads = net->grads;
    float *w0 = params + l0->param_off, *b0 = w0 + l0->nweights;
    float *w1 = params + l1->param_off, *b1 = w1 + l1->nweights;
    const bp__act_params *p0 = &l0->act, *p1 = &l1->act;
    float xv[H1_IN], z0[H1_HIDDEN], y0[H1_HIDDEN], d0[H1_HIDDEN];
    for (size_t i = 0; i < H1_IN; i++) xv[i] = i < in ? x[i] : 0.0f;
    /* Forward (bp__dense_row_sums' order: each sum from 0 over i, then + b). */
    float s1 = 0.0f;
    for (size_t o = 0; o < H1_HIDDEN; o++) {
        if (o >= h) break;
        float s = 0.0f;
        for (size_t i = 0; i < H1_IN; i++)
            if (i < in) s += w0[o * in + i] * xv[i];
        z0[o] = s + b0[o];
        y0[o] = act_one(a0, p0, z0[o]);
    }
    for (size_t o = 0; o < H1_HIDDEN; o++)
        if (o < h) s1 += w1[o] * y0[o];
    const float z1 = s1 + b1[0];
    const float y1 = act_one(a1, p1, z1);
    float g1;
    if (!mse_row(&y1, y, 1, &g1, value)) return 0;
    /* Backward: the output layer's dz, then the hidden layer's (dx = 0 + dz1 w1, as
     * backward_act's sum over the one output). The proof as in backward_act: dW row o is
     * finite exactly when dz_o max|x| is. */
    const float d1 = act_grad_one(a1, p1, z1, y1, g1);
    const float mx0 = max_abs_bits(xv, H1_IN), mx1 = max_abs_bits(y0, h);
    uint32_t bad = nonfinite_bit(d1 * mx1);
    for (size_t o = 0; o < H1_HIDDEN; o++) {
        if (o >= h) break;
        float dx = 0.0f;
        dx += d1 * w1[o];
        d0[o] = act_grad_one(a0, p0, z0[o], y0[o], dx);
        bad |= nonfinite_bit(d0[o] * mx0);
    }
    if (NONFINITE_SEEN(bad)) return 0; /* nothing written yet */
    /* The state train_step_row leaves (outputs, z where kept, gradients), and the update
     * (sgd_plain on each trainable layer). */
    bp__workspace *ws = &net->ws;
    float *gw0 = grads + l0->param_off, *gb0 = gw0 + l0->nweights;
    float *gw1 = grads + l1->param_off, *gb1 = gw1 + l1->nweights;
    const int keep_z0 = a0 == BP_ACT_GELU || a0 == BP_ACT_SILU;
    const int keep_z1 = a1 == BP_ACT_GELU || a1 == BP_ACT_SILU;
    const int train0 = l0->trainable, train1 = l1->trainable;
    for (size_t o = 0; o < H1_HIDDEN; o++) {
        if (o >= h) break;
        ws->y[0][o] = y0[o];
        if (keep_z0) ws->s[0][o] = z0[o];
        const float d = d0[o], dw1 = d1 * y0[o];
        for (size_t i = 0; i < H1_IN; i++) {
            if (i >= in) break;
            const float g = d * xv[i], q = w0[o * in + i];
            gw0[o * in + i] = g;
            if (train0) w0[o * in + i] = q - k.lr * (g + k.wd * q);
        }
        gb0[o] = d;
        if (train0) b0[o] = b0[o] - k.lr * (d + k.wd * b0[o]);
        gw1[o] = dw1;
        if (train1) w1[o] = w1[o] - k.lr * (dw1 + k.wd * w1[o]);
    }
    ws->y[1][0] = y1;
    if (keep_z1) ws->s[1][0] = z1;
    gb1[0] = d1;
    if (train1) b1[0] = b1[0] - k.lr * (d1 + k.wd * b1[0]);
    return 1;
}

/* The activation pairs hidden1_step is compiled for (the others take layers_step): the
 * logistic or tanh net of FANN's examples, and tanh or ReLU hidden units with a linear
 * output. */
#define H1_PAIRS(X)                                                                               \
    X(BP_ACT_SIGMOID, BP_ACT_SIGMOID)                                                             \
    X(BP_ACT_TANH, BP_ACT_TANH) X(BP_ACT_TANH, BP_ACT_IDENTITY) X(BP_ACT_RELU, BP_ACT_IDENTITY)

/* hidden1_step for this net, or -1 if it is not an in -> h -> 1 net of a compiled pair. */
static int hidden1_dispatch(bp_net *net, int loss, sgd_step k, const float *x, const float *y,
                            float *value)
{
    if (net->nlayers != 2 || loss != BP_LOSS_MSE) return -1;
    const bp_layer *l0 = net->layers[0], *l1 = net->layers[1];
    if (l0->in > H1_IN || l0->out > H1_HIDDEN || l1->out != 1) return -1;
    const int a0 = l0->activation, a1 = l1->activation;
#define H1_CASE(A0, A1)                                                                           \
    if (a0 == (A0) && a1 == (A1)) return hidden1_step(net, k, x, y, value, A0, A1);
    H1_PAIRS(H1_CASE)
#undef H1_CASE
    return -1;
}

/* The step once the net's shape qualifies (tiny_step is called for every online step of
 * every net: the wider ones leave in bp__net_train_step_tiny before this frame is made). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static int tiny_step(bp_net *net, bp_optimizer *opt, int loss, const float *x, const float *y,
                     size_t n, float *loss_value)
{
    if (!tiny_applies(net, opt, loss, x, y, n)) return 0;
    /* Inputs finite (bp_net_train_step's check; the failure is reported by the caller's
     * path). A NaN or Inf target makes each of the four losses non-finite, which declines
     * the step before anything is written. */
    uint32_t bad = 0;
    for (size_t i = 0; i < net->inputs; i++) bad |= nonfinite_bit(x[i]);
    if (NONFINITE_SEEN(bad)) return 0;

    net->ws.rows = 0; /* the activations below belong to this step only */
    net->ws.x_in = NULL;
    /* The SGD scalars as step_update's compute_scalars rounds them. */
    const sgd_step k = {(float)OPT_SET(opt, BP_OPT_LEARNING_RATE),
                        (float)OPT_SET(opt, BP_OPT_WEIGHT_DECAY)};
    float value;
    int done = hidden1_dispatch(net, loss, k, x, y, &value);
    if (done > 0) net->tiny_hidden1_steps++;
    if (done < 0) done = layers_step(net, loss, k, x, y, &value);
    if (!done) return 0;
    opt->steps++;
    net->tiny_steps++;
    if (loss_value != NULL) *loss_value = value;
    return 1;
}

int bp__net_train_step_tiny(bp_net *net, bp_optimizer *opt, int loss, const float *x,
                            const float *y, size_t n, float *loss_value)
{
    if (n != 1 || !bp__net_ok(net) || net->max_width >= 16) return 0;
    return tiny_step(net, opt, loss, x, y, n, loss_value);
}
