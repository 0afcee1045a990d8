/* walk.c -- the walks over a net's layers: the workspace they run in, the forward walk, the
 * backward walk with every layer's gradient proven finite, the training step (forward ->
 * loss -> backward -> hook -> clipping -> optimizer update: the one path of
 * bp_net_train_step, bp_net_compute_grads and, through them, bp_net_fit), and inference.
 * Small and single-row work is made fast by the layers' kernels (the dense layer picks its
 * scalar single-row kernel itself), not by other walks. */
#include "util.h"
#include "activation.h"
#include "loss.h"
#include "layer.h"
#include "net.h"
#include "meta.h"
#include "optimizer.h"
#include "walk.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Workspace
 * ----------------------------------------------------------------------------------------*/

static size_t round16(size_t v)
{
    return (v + 15u) & ~(size_t)15u;
}

/* Plan @p ws for up to @p n rows; training adds the input copy, z buffers and gradients.
 * Reuses the current plan when it is large enough: no allocation in the steady state. */
static bp_status ws_plan_new(bp_net *net, bp__workspace *ws, size_t n, int training)
{
    const size_t nl = net->nlayers;
    size_t floats = 0, bad = 0, t;
    const size_t ptr_bytes = (2 * nl * sizeof(float *) + 63u) & ~(size_t)63u;
#define ADD(rows, width)                                                                           \
    do {                                                                                           \
        bad |= (size_t)bp__mul_size((rows), (width), &t);                                          \
        t = round16(t);                                                                            \
        bad |= (size_t)(floats > SIZE_MAX / 8 - t);                                                \
        floats += t;                                                                               \
    } while (0)
    if (training) ADD(n, net->inputs);
    for (size_t i = 0; i < nl; i++) {
        const bp_layer *l = net->layers[i];
        if (!(l->vt->passthrough && i > 0)) ADD(n, l->out);
        ADD(l->vt->scratch_floats(l, n, training), 1);
    }
    if (training) {
        ADD(n, net->max_width);
        ADD(n, net->max_width);
    }
#undef ADD
    if (bad || floats > (SIZE_MAX - ptr_bytes) / sizeof(float))
        return bp__fail(net->err, BP_ERR_NOMEM, "workspace for %zu rows overflows", n);
    void *block = bp__malloc_aligned(&net->alloc, ptr_bytes + floats * sizeof(float));
    if (block == NULL)
        return bp__fail(net->err, BP_ERR_NOMEM,
                        "out of memory planning a workspace of %zu "
                        "floats for %zu rows",
                        floats, n);
    bp__ws_release(net, ws);
    ws->block = block;
    ws->n = n;
    ws->y = (float **)block;
    ws->s = ws->y + nl;
    float *p = (float *)((unsigned char *)block + ptr_bytes);
#define TAKE(rows, width) (p += round16((rows) * (width)), p - round16((rows) * (width)))
    if (training) ws->x = TAKE(n, net->inputs);
    for (size_t i = 0; i < nl; i++) {
        const bp_layer *l = net->layers[i];
        const size_t sf = l->vt->scratch_floats(l, n, training);
        /* A passthrough layer's output is its input (not for layer 0, whose input is the
         * caller's x in train_step). */
        ws->y[i] = l->vt->passthrough && i > 0 ? ws->y[i - 1] : TAKE(n, l->out);
        ws->s[i] = sf ? TAKE(sf, 1) : NULL;
    }
    if (training) {
        ws->g0 = TAKE(n, net->max_width);
        ws->g1 = TAKE(n, net->max_width);
    }
#undef TAKE
    return BP_OK;
}

/* The current plan when it holds @p n rows (the steady state), else a new one. */
static inline bp_status ws_plan(bp_net *net, bp__workspace *ws, size_t n, int training)
{
    if (BP__LIKELY(ws->block != NULL && ws->n >= n)) return BP_OK;
    return ws_plan_new(net, ws, n, training);
}

/* ------------------------------------------------------------------------------------------
 * Forward and backward walks
 * ----------------------------------------------------------------------------------------*/

static void forward_pass(bp_net *net, bp__workspace *ws, const float *x, size_t n, int training)
{
    const float *in = x;
    for (size_t i = 0; i < net->nlayers; i++) {
        bp_layer *l = net->layers[i];
        if (!(l->vt->passthrough && i > 0)) l->vt->forward(l, n, in, ws->s[i], ws->y[i], training);
        in = ws->y[i];
    }
}

/* bp__max_abs for short rows, inline (a call and the clone's dispatch cost more than the scan). */
static inline float max_abs_short(const float *v, size_t count)
{
    if (count >= BP__NARROW_WIDTH) return bp__max_abs(v, count);
    const uint32_t m = bp__max_abs_bits_short(v, count);
    if (m >= 0x7f800000u) return INFINITY;
    float f;
    memcpy(&f, &m, sizeof f);
    return f;
}

/* Inputs must be finite; the message goes to @p err (the net's, or NULL for calls that may
 * run concurrently on one net). Batches of BP__WIDE_INPUT floats or more are checked by
 * bp__max_abs (one vectorised read), whose result also stands in for the input's max |x| in
 * the first layer's gradient bound (prove_grad_finite); *@p x_max is -1 when not measured. */
#define BP__WIDE_INPUT 256

/* Does an array of @p n rows of @p width floats overflow size_t (in bytes, with room for the
 * workspace's rounding)? Every size product of the public calls goes through this before it
 * is used: n x inputs for x, n x outputs for y and the targets. */
static BP__ALWAYS_INLINE int rows_overflow(size_t n, size_t width)
{
    size_t t;
    return __builtin_mul_overflow(n, width, &t) || t > SIZE_MAX / (4 * sizeof(float));
}

/* BP_ERR_INVALID_ARG when @p n rows of the net's input or output width overflow. */
static bp_status check_rows(const bp_net *net, char *err, const char *fn, size_t n)
{
    const size_t out = bp__net_out_width(net);
    if (rows_overflow(n, net->inputs) || rows_overflow(n, out))
        return bp__fail(err, BP_ERR_INVALID_ARG,
                        "%s: n = %zu rows of %zu inputs / %zu outputs overflow the address space",
                        fn, n, net->inputs, out);
    return BP_OK;
}

static BP__ALWAYS_INLINE bp_status check_finite_to(const bp_net *net, char *err, const char *fn,
                                                   const float *x, size_t n, float *x_max)
{
    /* Fewer than 2^32 rows of at most 2^28 floats cannot overflow (max_width bounds inputs
     * and every output): one test in the common case. */
    if (BP__UNLIKELY(((n >> 31) >> 1 | net->max_width >> 28) != 0))
        BP_CHECK(check_rows(net, err, fn, n));
    const size_t total = n * net->inputs;
    *x_max = -1.0f;
    if (total >= BP__WIDE_INPUT) {
        const float m = bp__max_abs(x, total);
        if (isfinite(m)) {
            *x_max = m;
            return BP_OK;
        }
    } else if (total < BP__NARROW_WIDTH && bp__max_abs_bits_short(x, total) < 0x7f800000u) {
        return BP_OK; /* finite: one short pass over the exponent bits */
    }
    const size_t bad = bp__first_nonfinite(x, total);
    if (bad != total)
        return bp__fail(err, BP_ERR_NONFINITE, "%s: input row %zu, column %zu is %g", fn,
                        bad / net->inputs, bad % net->inputs, (double)x[bad]);
    return BP_OK;
}

/* Finite inputs, and what the first layer asks of them (an embedding: token ids in range). */
static BP__ALWAYS_INLINE bp_status check_input_to(const bp_net *net, char *err, const char *fn,
                                                  const float *x, size_t n, float *x_max)
{
    BP_CHECK(check_finite_to(net, err, fn, x, n, x_max));
    if (BP__UNLIKELY(net->in_check != NULL)) return net->in_check(net->layers[0], err, fn, x, n);
    return BP_OK;
}

static bp_status check_input(bp_net *net, const char *fn, const float *x, size_t n)
{
    float x_max;
    return check_input_to(net, net->err, fn, x, n, &x_max);
}

/* dW += l2 * W + l1 * sign(W) (weights only, not biases). */
static void add_weight_penalty(const bp_layer *l)
{
    const float l2 = (float)l->l2, l1 = (float)l->l1;
    const float *restrict w = bp__layer_w(l);
    float *restrict dw = bp__layer_dw(l);
    for (size_t k = 0; k < l->nweights; k++)
        dw[k] += l2 * w[k] + (w[k] > 0.0f ? l1 : w[k] < 0.0f ? -l1 : 0.0f);
}

/* Prove layer @p l's gradient finite, after its backward wrote dW and db from dz (@p dz,
 * n x out) and its input @p x (n x in), by whichever reads less: dW and db are scanned
 * unless dz and x are 4x smaller, and always when @p must_scan (accumulated sums, weight
 * penalties, kinds other than dense). Otherwise dz and x are scanned and dW = dz^T x,
 * db = sum dz are bounded by n * max|dz| * max|x|, so dW and db are scanned only when that
 * bound could overflow (large layers, and single rows: 16-32 at batch 1 reads 48 floats
 * instead of 544).
 *
 * A single row (n = 1) of such a layer is proven exactly by one product: dW[o][i] is the one
 * rounded product dz_o x_i and db = dz, and rounding is monotonic, so every |dz_o x_i| is
 * finite exactly when max|dz| max|x| is (max through the bits: NaN or Inf when dz or x holds
 * one, which makes dW non-finite too). A step that fails it takes the path above, which
 * finds and reports the failure with its usual message.
 *
 * *@p bound receives an upper bound on every |dW| and |db| of the layer (the scan's exact
 * maximum, or the product bound): the optimizer's update guard reads the largest. */
static bp_status prove_grad_finite(bp_net *net, const bp_layer *l, const float *dz, const float *x,
                                   size_t n, int must_scan, double *bound)
{
    /* The first layer's x is the step's input, whose max |x| the input check measured. */
    const int x_known = x == net->ws.x_in && net->ws.x_max >= 0.0f;
    /* dW sums over the layer's rows: n*T for a per-step layer on sequences. */
    const size_t rows = bp__layer_rows(l, n);
    if (rows == 1 && !must_scan && l->vt->grad_bound_dense) {
        const float mx = x_known ? net->ws.x_max : max_abs_short(x, l->in);
        const float mdz = max_abs_short(dz, l->out);
        if (isfinite(mdz * mx)) {
            *bound = (double)mdz * (mx > 1.0f ? (double)mx : 1.0);
            return BP_OK;
        }
    }
    const size_t np = l->nweights + l->nbiases;
    const size_t bound_reads = n * l->out + (x_known ? 0 : n * l->in);
    if (must_scan || !l->vt->grad_bound_dense || 4 * bound_reads >= np) {
        /* Scanning dW and db is as cheap as any bound, or no bound applies. */
        const float m = bp__max_abs(bp__layer_dw(l), np);
        if (!isfinite(m))
            return bp__fail(net->err, BP_ERR_NONFINITE, "layer %zu (%s): gradient is not finite",
                            l->index, l->vt->name);
        *bound = (double)m;
        return BP_OK;
    }
    const float mdz = bp__max_abs(dz, n * l->out);
    if (!isfinite(mdz))
        return bp__fail(net->err, BP_ERR_NONFINITE, "layer %zu (%s): gradient dL/dz is not finite",
                        l->index, l->vt->name);
    const float mx = x_known ? net->ws.x_max : bp__max_abs(x, n * l->in);
    *bound = (double)rows * (double)mdz * (double)(mx > 1.0f ? mx : 1.0f);
    if (!(*bound < 1e37)) {
        const float m = bp__max_abs(bp__layer_dw(l), np);
        if (!isfinite(m))
            return bp__fail(net->err, BP_ERR_NONFINITE,
                            "layer %zu (%s): weight gradient is not finite", l->index, l->vt->name);
        *bound = (double)m;
    }
    return BP_OK;
}

/* Walk the layers in reverse. ws->g0 holds dL/dY of the last layer (or dL/dZ when
 * dy_is_dz). Every layer's gradient is proven finite before the optimizer may read it: by
 * its backward kernel (which says so) or by prove_grad_finite. Parameter-free kinds are covered by
 * the layers below them; passthrough layers (flatten) are skipped: their dx is dy. Leaves in
 * ws->g_bound an upper bound on every |gradient| of the net. */
static BP__ALWAYS_INLINE bp_status backward_pass(bp_net *net, bp__workspace *ws, size_t n,
                                                 int dy_is_dz)
{
    float *g = ws->g0, *other = ws->g1;
    double g_bound = 0.0;
    for (size_t i = net->nlayers; i-- > 0;) {
        bp_layer *l = net->layers[i];
        if (l->vt->passthrough && i > 0) continue;
        const float *x = i > 0 ? ws->y[i - 1] : ws->x_in;
        float *dx = i > 0 ? other : NULL;
        const int proven =
            l->vt->backward(l, n, x, ws->s[i], ws->y[i], g, dy_is_dz, dx, net->accumulate);
        dy_is_dz = 0;
        const int penalty = l->penalised;
        if (penalty) add_weight_penalty(l);
        double b = 0.0;
        if (!proven || penalty) {
            BP_CHECK(prove_grad_finite(net, l, g, x, n, net->accumulate || penalty, &b));
        } else {
            b = l->grad_bound; /* the kernel's own bound (bp__layer_vtable.backward) */
        }
        if (b > g_bound) g_bound = b;
        float *tmp = g;
        g = other;
        other = tmp;
    }
    ws->g_bound = g_bound;
    return BP_OK;
}

/* Switching the SSE control register costs about 20 ns (LDMXCSR serialises), a sixth of a
 * 2-4-1 online step: flush denormals only for calls with real work (rows x parameters
 * >= 4096, i.e. microseconds), where subnormal moments and activations can cost far more.
 * Safe with an invalid handle (the call then fails its own checks). */
static int ftz_worth_it(const bp_net *net, size_t n)
{
    size_t work; /* an overflowing product is certainly real work */
    return bp__net_ok(net) && (__builtin_mul_overflow(n, net->nparams, &work) || work >= 4096);
}

/* Return @p call (a bp_status expression) run with denormals flushed when ftz_worth_it. */
#define WITH_FTZ(net, n, call)                                                                     \
    do {                                                                                           \
        const int ftz_ = ftz_worth_it((net), (n));                                                 \
        const unsigned csr_ = ftz_ ? bp__fp_enter() : 0;                                           \
        const bp_status s_ = (call);                                                               \
        if (ftz_) bp__fp_leave(csr_);                                                              \
        return s_;                                                                                 \
    } while (0)

/* The staged training state of the last forward walk over @p n rows (batch norm's running
 * statistics, see bp__layer_vtable.commit): verified (@p apply 0; BP_ERR_NONFINITE with
 * nothing kept) or kept (1). Only nets with such layers (or layers drawing from the
 * generator, whose state the step saves in net->rng_saved) pay for it (net->nstaged). */
static bp_status staged(bp_net *net, const bp__workspace *ws, size_t n, int apply)
{
    for (size_t i = 0; i < net->nlayers; i++) {
        bp_layer *l = net->layers[i];
        if (l->vt->commit != NULL) BP_CHECK(l->vt->commit(l, ws->s[i], n, apply));
    }
    return BP_OK;
}

static bp_status net_forward(bp_net *net, const float *x, size_t n, const float **y)
{
    BP__NET_CHECK(net, "bp_net_forward");
    if (x == NULL || y == NULL)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_forward: x and y must not be NULL");
    if (n == 0) return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_forward: n is 0");
    if (net->nlayers == 0)
        return bp__fail(net->err, BP_ERR_STATE, "bp_net_forward: the net has no layers");
    float x_max;
    BP_CHECK(check_input_to(net, net->err, "bp_net_forward", x, n, &x_max));
    BP_CHECK(ws_plan(net, &net->ws, n, 1));
    bp__workspace *ws = &net->ws;
    memcpy(ws->x, x, n * net->inputs * sizeof(float));
    ws->x_in = ws->x;
    ws->x_max = x_max;
    if (net->nstaged) net->rng_saved = net->rng;
    forward_pass(net, ws, ws->x, n, 1);
    if (net->nstaged) {
        const bp_status s = staged(net, ws, n, 0);
        if (s != BP_OK) {
            net->rng = net->rng_saved; /* a failed call leaves the net as it was */
            return s;
        }
        (void)staged(net, ws, n, 1);
    }
    ws->rows = n;
    *y = ws->y[net->nlayers - 1];
    return BP_OK;
}

bp_status bp_net_forward(bp_net *net, const float *x, size_t n, const float **y)
{
    WITH_FTZ(net, n, net_forward(net, x, n, y));
}

static bp_status net_backward(bp_net *net, const float *dy, size_t n)
{
    BP__NET_CHECK(net, "bp_net_backward");
    if (dy == NULL) return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_backward: dy is NULL");
    bp__workspace *ws = &net->ws;
    if (ws->rows == 0 || net->nlayers == 0)
        return bp__fail(net->err, BP_ERR_STATE,
                        "bp_net_backward: no forward pass to differentiate (call "
                        "bp_net_forward first)");
    if (n != ws->rows)
        return bp__fail(net->err, BP_ERR_SHAPE,
                        "bp_net_backward: n = %zu differs from the last forward pass (%zu rows)", n,
                        ws->rows);
    const size_t out = bp__net_out_width(net), total = n * out;
    const size_t bad = bp__first_nonfinite(dy, total);
    if (bad != total)
        return bp__fail(net->err, BP_ERR_NONFINITE, "bp_net_backward: dy row %zu, column %zu is %g",
                        bad / out, bad % out, (double)dy[bad]);
    memcpy(ws->g0, dy, total * sizeof(float));
    return backward_pass(net, ws, n, 0);
}

bp_status bp_net_backward(bp_net *net, const float *dy, size_t n)
{
    WITH_FTZ(net, n, net_backward(net, dy, n));
}

/* Scale or clamp the gradients as BP_NET_CLIP_NORM / BP_NET_CLIP_VALUE ask. */
static void clip_grads(bp_net *net)
{
    float *g = net->grads;
    const size_t np = net->nparams;
    if (net->clip_norm > 0.0) {
        double ss = 0.0;
        for (size_t k = 0; k < np; k++)
            ss += (double)g[k] * (double)g[k];
        const double norm = sqrt(ss);
        if (norm > net->clip_norm) {
            const float s = (float)(net->clip_norm / norm);
            for (size_t k = 0; k < np; k++)
                g[k] *= s;
        }
    }
    if (net->clip_value > 0.0) {
        const float v = (float)net->clip_value;
        for (size_t k = 0; k < np; k++)
            g[k] = g[k] > v ? v : g[k] < -v ? -v : g[k];
    }
}

/* BP_OK when @p loss is a loss the net's output layer can take; its descriptor to *@p desc
 * (when not NULL). */
static BP__ALWAYS_INLINE bp_status check_loss_desc(bp_net *net, const char *fn, int loss,
                                                   const bp__loss_desc **desc)
{
    const bp__loss_desc *d = bp__loss_get(loss);
    if (desc != NULL) *desc = d;
    if (d == NULL) return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: unknown loss %d", fn, loss);
    if (net->nlayers == 0) return bp__fail(net->err, BP_ERR_STATE, "%s: the net has no layers", fn);
    const bp_layer *last = net->layers[net->nlayers - 1];
    if (d->softmax_logits && last->activation != BP_ACT_SOFTMAX)
        return bp__fail(net->err, BP_ERR_STATE,
                        "%s: %s needs a softmax output layer; layer %zu is %s", fn, d->name,
                        last->index, bp__act_name(last->activation));
    return BP_OK;
}

static BP__ALWAYS_INLINE bp_status check_loss(bp_net *net, const char *fn, int loss)
{
    return check_loss_desc(net, fn, loss, NULL);
}

bp_status bp__walk_check_loss(bp_net *net, const char *fn, int loss)
{
    return check_loss(net, fn, loss);
}

const float *bp__walk_outputs(const bp_net *net)
{
    return net->ws.y[net->nlayers - 1];
}

/* The data part of a step: the input and target checks, the forward walk, the loss and the
 * backward walk (gradients proven finite on success). */
static BP__ALWAYS_INLINE bp_status grads_pass(bp_net *net, const char *fn, const bp__loss_desc *d,
                                              int loss, const float *x, const float *y, size_t n,
                                              float *value)
{
    const size_t li = net->nlayers - 1;
    const bp_layer *last = net->layers[li];
    size_t rows, width; /* per step on sequences: n*T rows of out/T (bp__loss_rows) */
    bp__loss_rows(n, last->out_steps, last->out, &rows, &width);
    float x_max;
    BP_CHECK(check_input_to(net, net->err, fn, x, n, &x_max));
    BP_CHECK(bp__loss_check_targets_d(net->err, d, loss, y, n, last->out_steps, width));
    BP_CHECK(ws_plan(net, &net->ws, n, 1));

    /* Forward walk. */
    bp__workspace *ws = &net->ws;
    ws->rows = 0; /* the activations below belong to this step only */
    ws->x_in = x;
    ws->x_max = x_max;
    forward_pass(net, ws, x, n, 1);
    /* Loss; with softmax logits the output layer's scratch holds its z (dense softmax
     * layers keep z, see layer_dense.c), and the gradient is dL/dz. */
    int is_dz;
    bp_status s = bp__loss_compute_d(net->err, d, net->huber_delta, ws->y[li], ws->s[li], y, rows,
                                     width, value, ws->g0, &is_dz);
    /* Backward walk, gradients proven finite. */
    if (s == BP_OK) s = backward_pass(net, ws, n, is_dz);
    ws->x_in = NULL; /* the caller's x is not retained */
    ws->x_max = -1.0f;
    return s;
}

/* The status of a step whose gradient hook returned @p hs (not BP_OK): its own when it is an
 * error status of the library, else BP_ERR_STATE; the message the hook left in
 * bp_last_error() (cleared before the call), or one naming the value. */
static bp_status hook_failed(bp_net *net, const char *fn, int hs)
{
    if (!bp__status_is_error(hs))
        return bp__fail(net->err, BP_ERR_STATE,
                        "%s: the gradient hook returned %d, which is no bp_status error", fn, hs);
    if (bp_last_error()[0] != '\0')
        return bp__fail(net->err, (bp_status)hs, "%s: gradient hook: %s", fn, bp_last_error());
    return bp__fail(net->err, (bp_status)hs, "%s: the gradient hook returned %d (%s)", fn, hs,
                    bp_status_string(hs));
}

/* The training step (@p train 1), and bp_net_compute_grads (@p train 0): one forward walk, the
 * loss, one backward walk proving every layer's gradient finite, then (train_step) the gradient
 * hook, clipping and the optimizer update. Every argument is checked before anything is written;
 * the activations belong to this call only (bp_net_backward cannot follow it). */
static BP__ALWAYS_INLINE bp_status step(bp_net *net, int train, bp_optimizer *opt, const char *fn,
                                        int loss, const float *x, const float *y, size_t n,
                                        float *loss_value)
{
    BP__NET_CHECK(net, fn);
    if (x == NULL || y == NULL)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: x and y must not be NULL", fn);
    if (n == 0) return bp__fail(net->err, BP_ERR_INVALID_ARG, "%s: n is 0", fn);
    const bp__loss_desc *d;
    BP_CHECK(check_loss_desc(net, fn, loss, &d));
    bp_status s;
    if (train && (s = bp__optimizer_validate_for(opt, net)) != BP_OK)
        return bp__fail(net->err, s, "%s: %s", fn, bp_last_error());
    float value = 0.0f;
    /* Transactional: the generator (dropout masks) is restored and the staged running
     * statistics are not kept unless the whole step succeeds. */
    if (net->nstaged) net->rng_saved = net->rng;
    s = grads_pass(net, fn, d, loss, x, y, n, &value);
    if (net->nstaged && s == BP_OK) s = staged(net, &net->ws, n, 0);
    if (!train) { /* bp_net_compute_grads */
        if (s != BP_OK) {
            if (net->nstaged) net->rng = net->rng_saved;
            return s;
        }
        if (net->nstaged) (void)staged(net, &net->ws, n, 1);
        if (loss_value != NULL) *loss_value = value;
        return s;
    }
    if (net->grad_hook != NULL) {
        /* Called whatever the local outcome, so that cooperating processes stay in step; a
         * local failure stands whatever the hook says. */
        char local[BP__ERR_CAP];
        memcpy(local, net->err, sizeof local);
        (void)bp__fail(NULL, BP_OK, "%s", ""); /* the hook's message, if any, is its own */
        const int hs = net->grad_hook(net->grad_hook_user, net, (int)s, n, &value);
        if (s == BP_OK && hs != BP_OK)
            s = hook_failed(net, fn, hs);
        else if (s != BP_OK)
            s = bp__fail(net->err, s, "%s", local);
        else if (!isfinite(value))
            s = bp__fail(net->err, BP_ERR_NONFINITE, "%s: the gradient hook reported a loss of %g",
                         fn, (double)value);
    }
    if (s != BP_OK) {
        if (net->nstaged) net->rng = net->rng_saved;
        return s;
    }
    if (net->clip_norm > 0.0 || net->clip_value > 0.0) clip_grads(net);
    /* The hook may have done anything with the handles and the gradients: validate them
     * again after it, and prove the gradients it leaves finite. */
    s = net->grad_hook != NULL ? bp__optimizer_step_trusted(opt, net)
                               : bp__optimizer_update(opt, net, net->ws.g_bound);
    if (s != BP_OK) {
        if (net->nstaged) net->rng = net->rng_saved;
        return bp__fail(net->err, s, "%s: %s", fn, bp_last_error());
    }
    if (net->nstaged) (void)staged(net, &net->ws, n, 1);
    if (loss_value != NULL) *loss_value = value;
    return BP_OK;
}

bp_status bp_net_set_grad_hook(bp_net *net, bp_grad_fn fn, void *user)
{
    BP__NET_CHECK(net, "bp_net_set_grad_hook");
    net->grad_hook = fn;
    net->grad_hook_user = fn != NULL ? user : NULL;
    return BP_OK;
}

bp_status bp_net_compute_grads(bp_net *net, int loss, const float *x, const float *y, size_t n,
                               float *loss_value)
{
    WITH_FTZ(net, n, step(net, 0, NULL, "bp_net_compute_grads", loss, x, y, n, loss_value));
}

bp_status bp_net_train_step(bp_net *net, bp_optimizer *opt, int loss, const float *x,
                            const float *y, size_t n, float *loss_value)
{
    WITH_FTZ(net, n, step(net, 1, opt, "bp_net_train_step", loss, x, y, n, loss_value));
}

/* Rows per predict chunk: large enough for GEMM efficiency, small enough for cache. */
#define BP__PREDICT_CHUNK 1024u

/* Rows per predict chunk for @p n rows. */
static size_t ws_rows(size_t n)
{
    return n < BP__PREDICT_CHUNK ? n : BP__PREDICT_CHUNK;
}

/* With @p scalers (BP_NET_APPLY_SCALERS, not in fit's validation): the stored input scaler
 * is applied to each chunk's inputs and the target scaler inverted on its outputs. */
static bp_status net_predict(bp_net *net, const float *x, size_t n, float *y, size_t capacity,
                             int scalers)
{
    BP__NET_CHECK(net, "bp_net_predict");
    if (x == NULL || y == NULL)
        return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_predict: x and y must not be NULL");
    if (n == 0) return bp__fail(net->err, BP_ERR_INVALID_ARG, "bp_net_predict: n is 0");
    if (net->nlayers == 0)
        return bp__fail(net->err, BP_ERR_STATE, "bp_net_predict: the net has no layers");
    const size_t out = bp__net_out_width(net);
    size_t need;
    if (bp__mul_size(n, out, &need) != 0) return check_rows(net, net->err, "bp_net_predict", n);
    if (need > capacity)
        return bp__fail(net->err, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_predict: %zu rows x %zu outputs need %zu floats, y holds %zu", n,
                        out, n * out, capacity);
    BP_CHECK(check_rows(net, net->err, "bp_net_predict", n));
    BP_CHECK(check_input(net, "bp_net_predict", x, n));
    const size_t chunk = ws_rows(n);
    BP_CHECK(ws_plan(net, &net->pws, chunk, 0));
    for (size_t r = 0; r < n; r += chunk) {
        const size_t rows = n - r < chunk ? n - r : chunk;
        const float *in = x + r * net->inputs;
        if (scalers) BP_CHECK(bp__meta_scale_inputs(net, "bp_net_predict", &in, rows));
        forward_pass(net, &net->pws, in, rows, 0);
        memcpy(y + r * out, net->pws.y[net->nlayers - 1], rows * out * sizeof(float));
        if (scalers) BP_CHECK(bp__meta_unscale_outputs(net, "bp_net_predict", y + r * out, rows));
    }
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Concurrent inference: caller scratch, const net
 * ----------------------------------------------------------------------------------------*/

/* The floats one predict chunk of @p rows needs: two ping-pong activation buffers of
 * rows x max_width and the largest inference scratch of any layer, each rounded to 16. */

static size_t predict_scratch(const bp_net *net, size_t rows)
{
    size_t act, big = 0;
    if (bp__mul_size(rows, net->max_width, &act) != 0 || act > SIZE_MAX / 4) return SIZE_MAX;
    for (size_t i = 0; i < net->nlayers; i++) {
        const bp_layer *l = net->layers[i];
        const size_t sf = l->vt->scratch_floats(l, rows, 0);
        if (sf > big) big = sf;
    }
    if (big > SIZE_MAX / 4) return SIZE_MAX;
    return 2 * round16(act) + round16(big);
}

size_t bp_net_predict_scratch_floats(const bp_net *net, size_t n)
{
    if (!bp__net_ok(net) || net->nlayers == 0 || n == 0) return 0;
    return predict_scratch(net, ws_rows(n));
}

bp_status bp_net_predict_ws(const bp_net *net, const float *x, size_t n, float *y, size_t capacity,
                            float *scratch, size_t scratch_floats)
{
    /* Messages go to the calling thread's bp_last_error() only: net->err is shared. */
    BP__NET_CHECK(net, "bp_net_predict_ws");
    if (x == NULL || y == NULL || scratch == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_net_predict_ws: x, y and scratch must not be NULL");
    if (n == 0) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_net_predict_ws: n is 0");
    if (net->nlayers == 0)
        return bp__fail(NULL, BP_ERR_STATE, "bp_net_predict_ws: the net has no layers");
    const size_t out = bp__net_out_width(net), rows = ws_rows(n);
    size_t need;
    if (bp__mul_size(n, out, &need) != 0) return check_rows(net, NULL, "bp_net_predict_ws", n);
    if (need > capacity)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_predict_ws: %zu rows x %zu outputs need %zu floats, y holds %zu", n,
                        out, n * out, capacity);
    BP_CHECK(check_rows(net, NULL, "bp_net_predict_ws", n));
    const size_t sneed = predict_scratch(net, rows);
    if (sneed > scratch_floats)
        return bp__fail(NULL, BP_ERR_BUFFER_TOO_SMALL,
                        "bp_net_predict_ws: %zu rows need %zu scratch floats, got %zu", n, sneed,
                        scratch_floats);
    float x_max;
    BP_CHECK(check_input_to(net, NULL, "bp_net_predict_ws", x, n, &x_max));
    const size_t act = round16(rows * net->max_width);
    float *buf[2] = {scratch, scratch + act};
    float *ls = scratch + 2 * act;
    for (size_t r = 0; r < n; r += rows) {
        const size_t m = n - r < rows ? n - r : rows;
        const float *in = x + r * net->inputs;
        for (size_t i = 0; i < net->nlayers; i++) {
            /* Inference forward (training 0) does not write the layer (see the vtable), so
             * dropping const here is sound and lets threads share the net. */
            bp_layer *l = (bp_layer *)(uintptr_t)net->layers[i];
            float *dst = i + 1 == net->nlayers ? y + r * out : buf[i & 1];
            l->vt->forward(l, m, in, l->vt->scratch_floats(l, m, 0) ? ls : NULL, dst, 0);
            in = dst;
        }
    }
    return BP_OK;
}

bp_status bp_net_predict(bp_net *net, const float *x, size_t n, float *y, size_t capacity)
{
    WITH_FTZ(net, n, net_predict(net, x, n, y, capacity, bp__net_ok(net) && net->apply_scalers));
}

bp_status bp__walk_predict(bp_net *net, const float *x, size_t n, float *y, size_t capacity,
                           int scalers)
{
    WITH_FTZ(net, n, net_predict(net, x, n, y, capacity, scalers));
}
