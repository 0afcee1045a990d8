/* optimizer_kernels.c -- each optimizer algorithm's update of one contiguous segment of
 * parameters and its per-step scalars; optimizer.c's table names them per algorithm.
 *
 * Notation, per parameter element: p parameter, g its gradient (dL/dp), t the step number
 * (1 at the first update after create/reset), lr learning rate, wd weight decay. Each rule
 * below is PyTorch's documented formula (torch.optim, 2.x) unless noted; the state slots are
 * kept in the optimizer's one block, slot-major (see struct bp_optimizer in optimizer.h) and
 * start at 0 unless noted.
 *
 * SGD        slots: buf
 *            d = g + wd*p
 *            if momentum != 0:  buf = d                                   (first such step)
 *                               buf = momentum*buf + (1 - dampening)*d     (later steps)
 *                               d = nesterov ? d + momentum*buf : buf
 *            p -= lr*d
 *            Nesterov requires momentum > 0 and dampening = 0 (checked at the step).
 * Adagrad    slots: sum (starts at BP_OPT_INITIAL_ACCUMULATOR); no lr decay
 *            d = g + wd*p;  sum += d*d;  p -= lr * d / (sqrt(sum) + eps)
 * RMSprop    slots: sq, ga, buf;  alpha = BP_OPT_RHO
 *            d = g + wd*p;  sq = alpha*sq + (1 - alpha)*d*d
 *            centered:  ga = alpha*ga + (1 - alpha)*d;  avg = sqrt(max(sq - ga*ga, 0)) + eps
 *            otherwise: avg = sqrt(sq) + eps           (the max(.,0) only absorbs rounding)
 *            momentum > 0: buf = momentum*buf + d/avg;  p -= lr*buf
 *            otherwise:    p -= lr * d/avg             (the same kernel: buf = d/avg)
 * Adam       slots: m, v, vmax
 *            d = g + wd*p;  m = b1*m + (1 - b1)*d;  v = b2*v + (1 - b2)*d*d
 *            amsgrad: vmax = max(vmax, v), vh = vmax;  otherwise vh = v
 *            p -= (lr / (1 - b1^t)) * m / (sqrt(vh) / sqrt(1 - b2^t) + eps)
 * AdamW      as Adam with d = g, after the decoupled decay p *= 1 - lr*wd (done first)
 * Adamax     slots: m, u
 *            d = g + wd*p;  m = b1*m + (1 - b1)*d;  u = max(b2*u, |d| + eps)
 *            p -= (lr / (1 - b1^t)) * m / u
 * NAdam      slots: m, v; PyTorch's NAdam (Dozat 2016 with a momentum schedule), momentum
 *            decay psi = 0.004 fixed:  mu_t = b1*(1 - 0.5*0.96^(t*psi))
 *            P_t = mu_1*...*mu_t (nadam_mu_product)
 *            d = g + wd*p;  m = b1*m + (1 - b1)*d;  v = b2*v + (1 - b2)*d*d
 *            den = sqrt(v / (1 - b2^t)) + eps
 *            p -= lr*(1 - mu_t)/(1 - P_t) * d/den
 *            then p -= lr*mu_{t+1}/(1 - P_t*mu_{t+1}) * m/den
 * iRprop-    slots: prev (previous gradient), delta (starts at BP_OPT_RPROP_DELTA_INIT);
 *            Igel & Huesken 2000; ignores lr and wd:
 *            sign(prev)*sign(g) > 0: delta = min(delta*eta_plus, delta_max)
 *            sign(prev)*sign(g) < 0: delta = max(delta*eta_minus, delta_min), g = 0
 *            p -= sign(g)*delta;  prev = g
 *
 * The step counter t is per optimizer, not per layer: a layer frozen (trainable == 0) for
 * some steps keeps its state untouched and, once unfrozen, sees the global t's bias
 * corrections. Scalars (bias corrections, schedules) are computed once per step in double;
 * each layer's parameters are one contiguous segment updated by one float loop with
 * restrict pointers and no call per element, written for the vectoriser.
 */
#include "util.h"
#include "optimizer.h"
#include "optimizer_kernels.h"

#include <math.h>

/* ------------------------------------------------------------------------------------------
 * Kernels: one pass over one contiguous segment of n parameters
 * ----------------------------------------------------------------------------------------*/

/* SGD without momentum. */
BP__KERNEL
static void sgd_plain(size_t n, float *restrict p, const float *restrict g, float lr, float wd)
{
    for (size_t i = 0; i < n; i++)
        p[i] -= lr * (g[i] + wd * p[i]);
}

/* SGD with momentum: buf = a*buf + c*d; p -= lr*(kd*d + kb*buf). The caller picks
 * (a, c) = (0, 1) on the buffer's first step, else (mu, 1 - dampening); (kd, kb) = (1, mu)
 * for Nesterov, else (0, 1). */
BP__KERNEL
static void sgd_momentum(size_t n, float *restrict p, const float *restrict g, float *restrict buf,
                         float lr, float wd, float a, float c, float kd, float kb)
{
    for (size_t i = 0; i < n; i++) {
        const float d = g[i] + wd * p[i];
        const float b = a * buf[i] + c * d;
        buf[i] = b;
        p[i] -= lr * (kd * d + kb * b);
    }
}

BP__KERNEL
static void adagrad(size_t n, float *restrict p, const float *restrict g, float *restrict sum,
                    float lr, float wd, float eps)
{
    for (size_t i = 0; i < n; i++) {
        const float d = g[i] + wd * p[i];
        const float s = sum[i] + d * d;
        sum[i] = s;
        p[i] -= lr * d / (sqrtf(s) + eps);
    }
}

/* RMSprop; kc = 1 for the centred variant (ga tracked), 0 otherwise (ga stays 0). */
BP__KERNEL
static void rmsprop(size_t n, float *restrict p, const float *restrict g, float *restrict sq,
                    float *restrict ga, float *restrict buf, float lr, float wd, float alpha,
                    float one_m_alpha, float eps, float momentum, float kc)
{
    for (size_t i = 0; i < n; i++) {
        const float d = g[i] + wd * p[i];
        const float s = alpha * sq[i] + one_m_alpha * d * d;
        const float m = kc * (alpha * ga[i] + one_m_alpha * d);
        const float var = s - m * m;
        const float avg = sqrtf(var > 0.0f ? var : 0.0f) + eps;
        const float b = momentum * buf[i] + d / avg;
        sq[i] = s;
        ga[i] = m;
        buf[i] = b;
        p[i] -= lr * b;
    }
}

/* Adam and AdamW. decay: AdamW's p *= decay first (1 for Adam); wd: Adam's L2 term (0 for
 * AdamW); step = lr / (1 - b1^t); inv_bc2 = 1 / sqrt(1 - b2^t). amsgrad is a constant at
 * each call site so that each variant compiles to its own branch-free loop. */
static BP__ALWAYS_INLINE void adam(size_t n, float *restrict p, const float *restrict g,
                                   float *restrict m, float *restrict v, float *restrict vmax,
                                   float decay, float wd, float b1, float one_m_b1, float b2,
                                   float one_m_b2, float step, float inv_bc2, float eps,
                                   int amsgrad)
{
    for (size_t i = 0; i < n; i++) {
        const float w = p[i] * decay;
        const float d = g[i] + wd * w;
        const float mi = b1 * m[i] + one_m_b1 * d;
        const float vi = b2 * v[i] + one_m_b2 * d * d;
        float vh = vi;
        if (amsgrad) {
            vh = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = vh;
        }
        m[i] = mi;
        v[i] = vi;
        p[i] = w - step * mi / (sqrtf(vh) * inv_bc2 + eps);
    }
}

/* The two Adam variants, each its own multi-versioned loop. */
BP__KERNEL
static void adam_plain(size_t n, float *restrict p, const float *restrict g, float *restrict m,
                       float *restrict v, float decay, float wd, float b1, float one_m_b1, float b2,
                       float one_m_b2, float step, float inv_bc2, float eps)
{
    adam(n, p, g, m, v, NULL, decay, wd, b1, one_m_b1, b2, one_m_b2, step, inv_bc2, eps, 0);
}

BP__KERNEL
static void adam_amsgrad(size_t n, float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, float *restrict vmax, float decay, float wd, float b1,
                         float one_m_b1, float b2, float one_m_b2, float step, float inv_bc2,
                         float eps)
{
    adam(n, p, g, m, v, vmax, decay, wd, b1, one_m_b1, b2, one_m_b2, step, inv_bc2, eps, 1);
}

BP__KERNEL
static void adamax(size_t n, float *restrict p, const float *restrict g, float *restrict m,
                   float *restrict u, float wd, float b1, float one_m_b1, float b2, float step,
                   float eps)
{
    for (size_t i = 0; i < n; i++) {
        const float d = g[i] + wd * p[i];
        const float mi = b1 * m[i] + one_m_b1 * d;
        const float a = fabsf(d) + eps;
        const float bu = b2 * u[i];
        const float ui = bu > a ? bu : a;
        m[i] = mi;
        u[i] = ui;
        p[i] -= step * mi / ui;
    }
}

/* NAdam: cg = lr*(1 - mu_t)/(1 - P_t), cm = lr*mu_{t+1}/(1 - P_{t+1}), inv_bc2 = 1/(1-b2^t). */
BP__KERNEL
static void nadam(size_t n, float *restrict p, const float *restrict g, float *restrict m,
                  float *restrict v, float wd, float b1, float one_m_b1, float b2, float one_m_b2,
                  float inv_bc2, float eps, float cg, float cm)
{
    for (size_t i = 0; i < n; i++) {
        const float d = g[i] + wd * p[i];
        const float mi = b1 * m[i] + one_m_b1 * d;
        const float vi = b2 * v[i] + one_m_b2 * d * d;
        const float den = sqrtf(vi * inv_bc2) + eps;
        m[i] = mi;
        v[i] = vi;
        const float w = p[i] - cg * d / den;
        p[i] = w - cm * mi / den;
    }
}

BP__KERNEL
static void irprop_minus(size_t n, float *restrict p, const float *restrict g, float *restrict prev,
                         float *restrict delta, float eta_plus, float eta_minus, float dmin,
                         float dmax)
{
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        /* Compare signs, not the product: a product of tiny gradients may underflow to 0.
         * agree > 0: same sign; < 0: opposite; 0: one of them is zero. */
        const float sp = (float)(prev[i] > 0.0f) - (float)(prev[i] < 0.0f);
        const float sg0 = (float)(gi > 0.0f) - (float)(gi < 0.0f);
        const float agree = sp * sg0;
        const float up = delta[i] * eta_plus, down = delta[i] * eta_minus;
        const float grown = up < dmax ? up : dmax, shrunk = down > dmin ? down : dmin;
        const float dl = agree > 0.0f ? grown : agree < 0.0f ? shrunk : delta[i];
        const float ge = agree < 0.0f ? 0.0f : gi;
        const float sg = agree < 0.0f ? 0.0f : sg0;
        p[i] -= sg * dl;
        prev[i] = ge;
        delta[i] = dl;
    }
}

/* ------------------------------------------------------------------------------------------
 * Per-step scalars and each algorithm's update of one segment
 * ----------------------------------------------------------------------------------------*/

void bp__opt_sgd_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k)
{
    (void)t;
    const double mom = BP__OPT_SET(o, BP_OPT_MOMENTUM);
    const int first = !o->sgd_buf_ready;
    k->a = first ? 0.0f : (float)mom;
    k->c = first ? 1.0f : (float)(1.0 - BP__OPT_SET(o, BP_OPT_DAMPENING));
    const int nesterov = BP__OPT_SET(o, BP_OPT_NESTEROV) != 0.0;
    k->kd = nesterov ? 1.0f : 0.0f;
    k->kb = nesterov ? (float)mom : 1.0f;
}

void bp__opt_sgd_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p, const float *g,
                        bp__opt_slots s, size_t n)
{
    if (BP__OPT_SET(o, BP_OPT_MOMENTUM) == 0.0)
        sgd_plain(n, p, g, k->lr, k->wd);
    else
        sgd_momentum(n, p, g, s[0], k->lr, k->wd, k->a, k->c, k->kd, k->kb);
}

void bp__opt_sgd_stepped(bp_optimizer *o, const bp__opt_scalars *k)
{
    (void)k;
    /* The buffer holds a value from now on: the cached scalars (k->a, k->c) change. */
    if (BP__OPT_SET(o, BP_OPT_MOMENTUM) != 0.0 && !o->sgd_buf_ready) {
        o->sgd_buf_ready = 1;
        o->ready = 0;
    }
}

void bp__opt_adagrad_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p,
                            const float *g, bp__opt_slots s, size_t n)
{
    (void)o;
    adagrad(n, p, g, s[0], k->lr, k->wd, k->eps);
}

void bp__opt_rmsprop_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p,
                            const float *g, bp__opt_slots s, size_t n)
{
    rmsprop(n, p, g, s[0], s[1], s[2], k->lr, k->wd, k->rho, k->c_rho, k->eps, k->mom,
            BP__OPT_SET(o, BP_OPT_CENTERED) != 0.0 ? 1.0f : 0.0f);
}

void bp__opt_adam_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k)
{
    const double lr = BP__OPT_SET(o, BP_OPT_LEARNING_RATE), td = (double)t;
    k->decay = 1.0f;
    k->step = (float)(lr / (1.0 - pow(BP__OPT_SET(o, BP_OPT_BETA1), td)));
    k->inv_bc2 = (float)(1.0 / sqrt(1.0 - pow(BP__OPT_SET(o, BP_OPT_BETA2), td)));
}

/* AdamW: Adam's scalars with the decay decoupled from the gradient. */
void bp__opt_adamw_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k)
{
    bp__opt_adam_scalars(o, t, k);
    k->decay =
        (float)(1.0 - BP__OPT_SET(o, BP_OPT_LEARNING_RATE) * BP__OPT_SET(o, BP_OPT_WEIGHT_DECAY));
    k->wd = 0.0f;
}

void bp__opt_adam_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p, const float *g,
                         bp__opt_slots s, size_t n)
{
    if (BP__OPT_SET(o, BP_OPT_AMSGRAD) != 0.0)
        adam_amsgrad(n, p, g, s[0], s[1], s[2], k->decay, k->wd, k->b1, k->c1, k->b2, k->c2,
                     k->step, k->inv_bc2, k->eps);
    else
        adam_plain(n, p, g, s[0], s[1], k->decay, k->wd, k->b1, k->c1, k->b2, k->c2, k->step,
                   k->inv_bc2, k->eps);
}

void bp__opt_adamax_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k)
{
    k->step = (float)(BP__OPT_SET(o, BP_OPT_LEARNING_RATE) /
                      (1.0 - pow(BP__OPT_SET(o, BP_OPT_BETA1), (double)t)));
}

void bp__opt_adamax_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p,
                           const float *g, bp__opt_slots s, size_t n)
{
    (void)o;
    adamax(n, p, g, s[0], s[1], k->wd, k->b1, k->c1, k->b2, k->step, k->eps);
}

void bp__opt_nadam_scalars(const bp_optimizer *o, uint64_t t, bp__opt_scalars *k)
{
    const double lr = BP__OPT_SET(o, BP_OPT_LEARNING_RATE), b1 = BP__OPT_SET(o, BP_OPT_BETA1),
                 td = (double)t;
    const double psi = 0.004;
    const double mu = b1 * (1.0 - 0.5 * pow(0.96, td * psi));
    const double mu_next = b1 * (1.0 - 0.5 * pow(0.96, (td + 1.0) * psi));
    const double prod = o->nadam_mu_product * mu;
    k->mu_product_next = prod;
    k->cg = (float)(lr * (1.0 - mu) / (1.0 - prod));
    k->cm = (float)(lr * mu_next / (1.0 - prod * mu_next));
    k->inv_bc2 = (float)(1.0 / (1.0 - pow(BP__OPT_SET(o, BP_OPT_BETA2), td)));
}

void bp__opt_nadam_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p, const float *g,
                          bp__opt_slots s, size_t n)
{
    (void)o;
    nadam(n, p, g, s[0], s[1], k->wd, k->b1, k->c1, k->b2, k->c2, k->inv_bc2, k->eps, k->cg, k->cm);
}

void bp__opt_nadam_stepped(bp_optimizer *o, const bp__opt_scalars *k)
{
    o->nadam_mu_product = k->mu_product_next;
}

void bp__opt_irprop_update(const bp_optimizer *o, const bp__opt_scalars *k, float *p,
                           const float *g, bp__opt_slots s, size_t n)
{
    (void)k;
    irprop_minus(n, p, g, s[0], s[1], (float)BP__OPT_SET(o, BP_OPT_RPROP_ETA_PLUS),
                 (float)BP__OPT_SET(o, BP_OPT_RPROP_ETA_MINUS),
                 (float)BP__OPT_SET(o, BP_OPT_RPROP_DELTA_MIN),
                 (float)BP__OPT_SET(o, BP_OPT_RPROP_DELTA_MAX));
}

/* ------------------------------------------------------------------------------------------
 * Bounds for the update guard: each kernel's formula evaluated on magnitudes, in double
 * (which cannot overflow here: every input is below 2^128, and at most squared or divided
 * by epsilon). A bound on |x op y| is built from bounds on |x| and |y|; a divisor is bounded
 * below by epsilon (the square-root terms are >= 0). The float kernels round each operation
 * to within 2^-24 relative, far inside the guard's margin (optimizer_step.c, GUARD_LIMIT).
 * ----------------------------------------------------------------------------------------*/

/* |x| in double. */
static double fa(float x)
{
    return fabs((double)x);
}

static double dmax2(double a, double b)
{
    return a > b ? a : b;
}

/* A bound on the largest of n non-negative bounds: their sum (NaN when any is NaN, which
 * the guard's comparison treats as too large). */
static double worst_of(const double *v, size_t n)
{
    double w = 0.0;
    for (size_t i = 0; i < n; i++)
        w += v[i];
    return w;
}

/* 1/eps as a bound factor; infinite for eps <= 0 (0/0 and x/0 are then possible). */
static double inv_eps(float eps)
{
    return eps > 0.0f ? 1.0 / (double)eps : HUGE_VAL;
}

double bp__opt_sgd_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b)
{
    const double p = b->p, lr = fa(k->lr), wdp = fa(k->wd) * p, d = b->g + wdp;
    double step = lr * d, m = 0.0, dir = d;
    if (BP__OPT_SET(o, BP_OPT_MOMENTUM) != 0.0) {
        m = fa(k->a) * b->s[0] + fa(k->c) * d;
        dir = fa(k->kd) * d + fa(k->kb) * m;
        step = lr * dir;
        b->s[0] = m;
    }
    b->p = p + step;
    const double v[] = {wdp, d, m, dir, step, b->p};
    return worst_of(v, sizeof v / sizeof v[0]);
}

double bp__opt_adagrad_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b)
{
    (void)o;
    const double p = b->p, lr = fa(k->lr), wdp = fa(k->wd) * p, d = b->g + wdp;
    const double sum = b->s[0] + d * d;
    const double step = lr * d * inv_eps(k->eps);
    b->s[0] = sum;
    b->p = p + step;
    const double v[] = {wdp, d, d * d, sum, lr * d, step, b->p};
    return worst_of(v, sizeof v / sizeof v[0]);
}

double bp__opt_rmsprop_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b)
{
    (void)o;
    const double p = b->p, lr = fa(k->lr), wdp = fa(k->wd) * p, d = b->g + wdp;
    const double sq = fa(k->rho) * b->s[0] + fa(k->c_rho) * d * d;
    const double ga = fa(k->rho) * b->s[1] + fa(k->c_rho) * d;
    const double ratio = d * inv_eps(k->eps);
    const double m = fa(k->mom) * b->s[2] + ratio;
    const double step = lr * m;
    b->s[0] = sq;
    b->s[1] = ga;
    b->s[2] = m;
    b->p = p + step;
    const double v[] = {wdp, d, d * d, sq, ga, ga * ga, sq + ga * ga, ratio, m, step, b->p};
    return worst_of(v, sizeof v / sizeof v[0]);
}

double bp__opt_adam_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b)
{
    const double w = b->p * fa(k->decay), wdp = fa(k->wd) * w, d = b->g + wdp;
    const double m = fa(k->b1) * b->s[0] + fa(k->c1) * d;
    const double v = fa(k->b2) * b->s[1] + fa(k->c2) * d * d;
    const int ams = BP__OPT_SET(o, BP_OPT_AMSGRAD) != 0.0;
    const double vh = ams ? dmax2(v, b->s[2]) : v;
    const double sm = fa(k->step) * m;
    const double step = sm * inv_eps(k->eps);
    b->s[0] = m;
    b->s[1] = v;
    if (ams) b->s[2] = vh;
    b->p = w + step;
    const double x[] = {w, wdp, d, d * d, m, v, sqrt(vh) * fa(k->inv_bc2), sm, step, b->p};
    return worst_of(x, sizeof x / sizeof x[0]);
}

double bp__opt_adamax_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b)
{
    (void)o;
    const double p = b->p, wdp = fa(k->wd) * p, d = b->g + wdp;
    const double m = fa(k->b1) * b->s[0] + fa(k->c1) * d;
    const double u = dmax2(fa(k->b2) * b->s[1], d + fa(k->eps));
    const double sm = fa(k->step) * m, step = sm * inv_eps(k->eps);
    b->s[0] = m;
    b->s[1] = u;
    b->p = p + step;
    const double v[] = {wdp, d, m, u, sm, step, b->p};
    return worst_of(v, sizeof v / sizeof v[0]);
}

double bp__opt_nadam_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b)
{
    (void)o;
    const double p = b->p, wdp = fa(k->wd) * p, d = b->g + wdp;
    const double m = fa(k->b1) * b->s[0] + fa(k->c1) * d;
    const double v = fa(k->b2) * b->s[1] + fa(k->c2) * d * d;
    const double cgd = fa(k->cg) * d, cmm = fa(k->cm) * m;
    const double step = (cgd + cmm) * inv_eps(k->eps);
    b->s[0] = m;
    b->s[1] = v;
    b->p = p + step;
    const double x[] = {wdp, d, d * d, m, v, v * fa(k->inv_bc2), cgd, cmm, step, b->p};
    return worst_of(x, sizeof x / sizeof x[0]);
}

double bp__opt_irprop_bound(const bp_optimizer *o, const bp__opt_scalars *k, bp__opt_bounds *b)
{
    (void)k;
    const double up = b->s[1] * fabs(BP__OPT_SET(o, BP_OPT_RPROP_ETA_PLUS));
    const double dl = dmax2(dmax2(b->s[1], fabs(BP__OPT_SET(o, BP_OPT_RPROP_DELTA_MAX))),
                            fabs(BP__OPT_SET(o, BP_OPT_RPROP_DELTA_MIN)));
    b->s[0] = b->g;
    b->s[1] = dl;
    b->p = b->p + dl;
    const double v[] = {up, dl, b->p};
    return worst_of(v, sizeof v / sizeof v[0]);
}
