/* optimizer.c -- gradient-descent updates over a net's parameter arena.
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
#include "pool.h"
#include "net.h"
#include "optimizer.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Settings: names, bounds, defaults
 * ----------------------------------------------------------------------------------------*/

typedef struct key_info {
    const char *name;
    double lo, hi;  /* nominal bounds */
    int lo_open;    /* lo excluded */
    int hi_open;    /* hi excluded */
    int flag;       /* 0/1 only */
} key_info;

static const key_info keys[BP__OPT_KEY_COUNT] = {
    {"BP_OPT_LEARNING_RATE", 0.0, 1e3, 0, 0, 0},
    {"BP_OPT_MOMENTUM", 0.0, 1.0, 0, 1, 0},
    {"BP_OPT_DAMPENING", 0.0, 1.0, 0, 0, 0},
    {"BP_OPT_NESTEROV", 0.0, 1.0, 0, 0, 1},
    {"BP_OPT_WEIGHT_DECAY", 0.0, 1e3, 0, 0, 0},
    {"BP_OPT_BETA1", 0.0, 1.0, 0, 1, 0},
    {"BP_OPT_BETA2", 0.0, 1.0, 0, 1, 0},
    {"BP_OPT_EPSILON", 0.0, 1.0, 0, 0, 0},
    {"BP_OPT_AMSGRAD", 0.0, 1.0, 0, 0, 1},
    {"BP_OPT_RHO", 0.0, 1.0, 0, 1, 0},
    {"BP_OPT_CENTERED", 0.0, 1.0, 0, 0, 1},
    {"BP_OPT_INITIAL_ACCUMULATOR", 0.0, 1e3, 0, 0, 0},
    {"BP_OPT_RPROP_ETA_PLUS", 1.0, 10.0, 0, 0, 0},
    {"BP_OPT_RPROP_ETA_MINUS", 0.0, 1.0, 1, 0, 0},
    {"BP_OPT_RPROP_DELTA_INIT", 0.0, 1e3, 0, 0, 0},
    {"BP_OPT_RPROP_DELTA_MIN", 0.0, 1e3, 0, 0, 0},
    {"BP_OPT_RPROP_DELTA_MAX", 0.0, 1e6, 0, 0, 0},
};

#define S(key) ((key) - BP__OPT_KEY_FIRST)

static int key_valid(int key)
{
    return key >= BP__OPT_KEY_FIRST && key < BP__OPT_KEY_FIRST + BP__OPT_KEY_COUNT;
}

static int kind_valid(int kind)
{
    return kind >= BP_OPTIMIZER_SGD && kind <= BP_OPTIMIZER_IRPROP_MINUS;
}

static const char *kind_name(int kind)
{
    static const char *const names[] = {"SGD",   "Adagrad", "RMSprop", "Adam",
                                        "AdamW", "Adamax",  "NAdam",   "iRprop-"};
    return kind_valid(kind) ? names[kind - 1] : "unknown";
}

/* Reported (inclusive) bounds: an open bound becomes the nearest double inside it. */
static void effective_bounds(int key, double *lo, double *hi)
{
    const key_info *k = &keys[S(key)];
    *lo = k->lo_open ? nextafter(k->lo, k->hi) : k->lo;
    *hi = k->hi_open ? nextafter(k->hi, k->lo) : k->hi;
}

static void set_defaults(bp_optimizer *o)
{
    double *s = o->set;
    const int adam_family = o->kind == BP_OPTIMIZER_ADAM || o->kind == BP_OPTIMIZER_ADAMW ||
                            o->kind == BP_OPTIMIZER_ADAMAX || o->kind == BP_OPTIMIZER_NADAM;
    s[S(BP_OPT_LEARNING_RATE)] = o->kind == BP_OPTIMIZER_ADAMAX ? 0.002
                                 : adam_family                  ? 0.001
                                                                : 0.01;
    s[S(BP_OPT_MOMENTUM)] = 0.0;
    s[S(BP_OPT_DAMPENING)] = 0.0;
    s[S(BP_OPT_NESTEROV)] = 0.0;
    s[S(BP_OPT_WEIGHT_DECAY)] = o->kind == BP_OPTIMIZER_ADAMW ? 0.01 : 0.0;
    s[S(BP_OPT_BETA1)] = 0.9;
    s[S(BP_OPT_BETA2)] = 0.999;
    s[S(BP_OPT_EPSILON)] = o->kind == BP_OPTIMIZER_ADAGRAD ? 1e-10 : 1e-8;
    s[S(BP_OPT_AMSGRAD)] = 0.0;
    s[S(BP_OPT_RHO)] = 0.99;
    s[S(BP_OPT_CENTERED)] = 0.0;
    s[S(BP_OPT_INITIAL_ACCUMULATOR)] = 0.0;
    s[S(BP_OPT_RPROP_ETA_PLUS)] = 1.2;
    s[S(BP_OPT_RPROP_ETA_MINUS)] = 0.5;
    s[S(BP_OPT_RPROP_DELTA_INIT)] = 0.1;
    s[S(BP_OPT_RPROP_DELTA_MIN)] = 0.0;
    s[S(BP_OPT_RPROP_DELTA_MAX)] = 50.0;
}

/* ------------------------------------------------------------------------------------------
 * Handle
 * ----------------------------------------------------------------------------------------*/

bp_status bp__optimizer_create_with(bp_optimizer **out, int kind, const bp__alloc *a)
{
    if (out == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_optimizer_create: out is NULL");
    *out = NULL;
    if (!kind_valid(kind))
        return bp__fail(NULL, BP_ERR_INVALID_ARG,
                        "bp_optimizer_create: unknown optimizer kind %d (expected %d .. %d)",
                        kind, BP_OPTIMIZER_SGD, BP_OPTIMIZER_IRPROP_MINUS);
    bp_optimizer *o = bp__malloc(a, sizeof *o);
    if (o == NULL)
        return bp__fail(NULL, BP_ERR_NOMEM, "bp_optimizer_create: out of memory (%zu bytes)",
                        sizeof *o);
    memset(o, 0, sizeof *o);
    o->magic = BP__MAGIC_OPT;
    o->kind = kind;
    o->alloc = *a;
    o->nadam_mu_product = 1.0;
    set_defaults(o);
    *out = o;
    return BP_OK;
}

bp_status bp_optimizer_create(bp_optimizer **out, int kind)
{
    return bp__optimizer_create_with(out, kind, &bp__default_alloc);
}

void bp_optimizer_free(bp_optimizer *opt)
{
    if (!bp__optimizer_ok(opt)) return;
    const bp__alloc a = opt->alloc;
    bp__free_aligned(&a, opt->state);
    opt->magic = 0;
    opt->state = NULL;
    bp__free(&a, opt);
}

const char *bp_optimizer_last_error(const bp_optimizer *opt)
{
    return bp__optimizer_ok(opt) ? opt->err : bp__invalid_handle_msg;
}

int bp_optimizer_kind(const bp_optimizer *opt)
{
    return bp__optimizer_ok(opt) ? opt->kind : 0;
}

uint64_t bp_optimizer_step_count(const bp_optimizer *opt)
{
    return bp__optimizer_ok(opt) ? opt->steps : 0;
}

static bp_status unknown_key(char *err, const char *place, int key)
{
    return bp__fail(err, BP_ERR_INVALID_ARG, "%s: unknown optimizer key %d (expected %d .. %d)",
                    place, key, BP__OPT_KEY_FIRST, BP__OPT_KEY_FIRST + BP__OPT_KEY_COUNT - 1);
}

bp_status bp_optimizer_set(bp_optimizer *opt, int key, double value)
{
    if (!bp__optimizer_ok(opt))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_optimizer_set: invalid optimizer handle");
    if (!key_valid(key)) return unknown_key(opt->err, "bp_optimizer_set", key);
    const key_info *k = &keys[S(key)];
    if (k->flag) {
        if (!(value == 0.0 || value == 1.0))
            return bp__fail(opt->err, BP_ERR_OUT_OF_RANGE,
                            "bp_optimizer_set: %s = %g must be 0 or 1", k->name, value);
    } else {
        double lo, hi;
        effective_bounds(key, &lo, &hi);
        if (!(value >= lo && value <= hi)) /* also rejects NaN */
            return bp__fail(opt->err, BP_ERR_OUT_OF_RANGE,
                            "bp_optimizer_set: %s = %g is outside %c%g, %g%c", k->name, value,
                            k->lo_open ? '(' : '[', k->lo, k->hi, k->hi_open ? ')' : ']');
    }
    opt->set[S(key)] = value;
    return BP_OK;
}

bp_status bp_optimizer_get(const bp_optimizer *opt, int key, double *value)
{
    if (!bp__optimizer_ok(opt))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_optimizer_get: invalid optimizer handle");
    /* opt is const: report through bp_last_error() only. */
    if (!key_valid(key)) return unknown_key(NULL, "bp_optimizer_get", key);
    if (value == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_optimizer_get: value is NULL");
    *value = opt->set[S(key)];
    return BP_OK;
}

bp_status bp_optimizer_param_bounds(int key, double *lo, double *hi)
{
    if (!key_valid(key)) return unknown_key(NULL, "bp_optimizer_param_bounds", key);
    if (lo == NULL || hi == NULL)
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_optimizer_param_bounds: lo or hi is NULL");
    effective_bounds(key, lo, hi);
    return BP_OK;
}

bp_status bp_optimizer_reset(bp_optimizer *opt)
{
    if (!bp__optimizer_ok(opt))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_optimizer_reset: invalid optimizer handle");
    /* The block is kept for reuse by the next bind; its contents are re-initialised there. */
    opt->bound = 0;
    opt->bound_nparams = 0;
    opt->bound_nlayers = 0;
    opt->bound_hash = 0;
    opt->steps = 0;
    opt->sgd_buf_ready = 0;
    opt->nadam_mu_product = 1.0;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Binding to a net's shape
 * ----------------------------------------------------------------------------------------*/

size_t bp__optimizer_state_slots(int kind)
{
    switch (kind) {
    case BP_OPTIMIZER_SGD: return 1;     /* buf */
    case BP_OPTIMIZER_ADAGRAD: return 1; /* sum */
    case BP_OPTIMIZER_RMSPROP: return 3; /* sq, ga, buf */
    case BP_OPTIMIZER_ADAM: return 3;    /* m, v, vmax */
    case BP_OPTIMIZER_ADAMW: return 3;   /* m, v, vmax */
    case BP_OPTIMIZER_ADAMAX: return 2;  /* m, u */
    case BP_OPTIMIZER_NADAM: return 2;   /* m, v */
    case BP_OPTIMIZER_IRPROP_MINUS: return 2; /* prev, delta */
    default: return 0;
    }
}

size_t bp__optimizer_state_floats(const bp_optimizer *opt)
{
    if (!bp__optimizer_ok(opt) || !opt->bound) return 0;
    return bp__optimizer_state_slots(opt->kind) * opt->bound_nparams;
}

static uint64_t fnv1a(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xffu;
        h *= 0x100000001b3u;
    }
    return h;
}

uint64_t bp__optimizer_shape_hash(const bp_net *net)
{
    uint64_t h = fnv1a(0xcbf29ce484222325u, (uint64_t)net->nparams);
    h = fnv1a(h, (uint64_t)net->nlayers);
    for (size_t i = 0; i < net->nlayers; i++) {
        const bp_layer *l = net->layers[i];
        h = fnv1a(h, (uint64_t)l->param_off);
        h = fnv1a(h, (uint64_t)l->nweights);
        h = fnv1a(h, (uint64_t)l->nbiases);
    }
    return h;
}

bp_status bp__optimizer_validate_for(bp_optimizer *opt, const bp_net *net)
{
    if (!bp__optimizer_ok(opt))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "optimizer: invalid optimizer handle");
    if (!bp__net_ok(net))
        return bp__fail(opt->err, BP_ERR_INVALID_ARG, "optimizer: invalid net handle");
    if (net->nlayers == 0 || net->nparams == 0)
        return bp__fail(opt->err, BP_ERR_STATE, "optimizer: the net has no parameters to update");
    const double *s = opt->set;
    if (opt->kind == BP_OPTIMIZER_SGD && s[S(BP_OPT_NESTEROV)] != 0.0 &&
        (s[S(BP_OPT_MOMENTUM)] <= 0.0 || s[S(BP_OPT_DAMPENING)] != 0.0))
        return bp__fail(opt->err, BP_ERR_STATE,
                        "optimizer: SGD Nesterov momentum needs BP_OPT_MOMENTUM > 0 (is %g) and "
                        "BP_OPT_DAMPENING = 0 (is %g)",
                        s[S(BP_OPT_MOMENTUM)], s[S(BP_OPT_DAMPENING)]);
    if (opt->kind == BP_OPTIMIZER_IRPROP_MINUS &&
        s[S(BP_OPT_RPROP_DELTA_MIN)] > s[S(BP_OPT_RPROP_DELTA_MAX)])
        return bp__fail(opt->err, BP_ERR_STATE,
                        "optimizer: iRprop- BP_OPT_RPROP_DELTA_MIN = %g exceeds "
                        "BP_OPT_RPROP_DELTA_MAX = %g",
                        s[S(BP_OPT_RPROP_DELTA_MIN)], s[S(BP_OPT_RPROP_DELTA_MAX)]);
    if (opt->bound && (opt->bound_nparams != net->nparams ||
                       opt->bound_nlayers != net->nlayers ||
                       opt->bound_hash != net->shape_hash)) {
        const int same_counts =
            opt->bound_nparams == net->nparams && opt->bound_nlayers == net->nlayers;
        return bp__fail(opt->err, BP_ERR_STATE,
                        "optimizer state is for a net with %zu parameters in %zu layers; this "
                        "net has %zu in %zu layers%s; call bp_optimizer_reset()",
                        opt->bound_nparams, opt->bound_nlayers, net->nparams, net->nlayers,
                        same_counts ? " of other sizes" : "");
    }
    return BP_OK;
}

static void fill(float *restrict v, size_t n, float value)
{
    for (size_t i = 0; i < n; i++) v[i] = value;
}

bp_status bp__optimizer_bind(bp_optimizer *opt, const bp_net *net)
{
    if (!bp__optimizer_ok(opt))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "optimizer: invalid optimizer handle");
    if (!bp__net_ok(net))
        return bp__fail(opt->err, BP_ERR_INVALID_ARG, "optimizer: invalid net handle");
    const size_t slots = bp__optimizer_state_slots(opt->kind);
    size_t floats, bytes;
    if (bp__mul_size(slots, net->nparams, &floats) != 0 ||
        bp__mul_size(floats, sizeof(float), &bytes) != 0)
        return bp__fail(opt->err, BP_ERR_NOMEM,
                        "optimizer: state for %zu parameters overflows size_t", net->nparams);
    if (floats > opt->state_cap || opt->state == NULL) {
        float *block = bp__malloc_aligned(&opt->alloc, bytes);
        if (block == NULL)
            return bp__fail(opt->err, BP_ERR_NOMEM,
                            "optimizer: out of memory for %s state (%zu bytes for %zu "
                            "parameters)",
                            kind_name(opt->kind), bytes, net->nparams);
        bp__free_aligned(&opt->alloc, opt->state);
        opt->state = block;
        opt->state_cap = floats;
    }
    /* Initial values: zeros, except Adagrad's accumulator and iRprop-'s step sizes. */
    const size_t np = net->nparams;
    memset(opt->state, 0, bytes);
    if (opt->kind == BP_OPTIMIZER_ADAGRAD)
        fill(opt->state, np, (float)opt->set[S(BP_OPT_INITIAL_ACCUMULATOR)]);
    else if (opt->kind == BP_OPTIMIZER_IRPROP_MINUS)
        fill(opt->state + np, np, (float)opt->set[S(BP_OPT_RPROP_DELTA_INIT)]);
    opt->bound = 1;
    opt->bound_nparams = np;
    opt->bound_nlayers = net->nlayers;
    opt->bound_hash = net->shape_hash;
    opt->steps = 0;
    opt->sgd_buf_ready = 0;
    opt->nadam_mu_product = 1.0;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Kernels: one pass over one contiguous segment of n parameters
 * ----------------------------------------------------------------------------------------*/

/* SGD without momentum. */
BP__KERNEL
static void sgd_plain(size_t n, float *restrict p, const float *restrict g, float lr, float wd)
{
    for (size_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
}

/* SGD with momentum: buf = a*buf + c*d; p -= lr*(kd*d + kb*buf). The caller picks
 * (a, c) = (0, 1) on the buffer's first step, else (mu, 1 - dampening); (kd, kb) = (1, mu)
 * for Nesterov, else (0, 1). */
BP__KERNEL
static void sgd_momentum(size_t n, float *restrict p, const float *restrict g,
                         float *restrict buf, float lr, float wd, float a, float c, float kd,
                         float kb)
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
                       float *restrict v, float decay, float wd, float b1, float one_m_b1,
                       float b2, float one_m_b2, float step, float inv_bc2, float eps)
{
    adam(n, p, g, m, v, NULL, decay, wd, b1, one_m_b1, b2, one_m_b2, step, inv_bc2, eps, 0);
}

BP__KERNEL
static void adam_amsgrad(size_t n, float *restrict p, const float *restrict g,
                         float *restrict m, float *restrict v, float *restrict vmax, float decay,
                         float wd, float b1, float one_m_b1, float b2, float one_m_b2,
                         float step, float inv_bc2, float eps)
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
                  float *restrict v, float wd, float b1, float one_m_b1, float b2,
                  float one_m_b2, float inv_bc2, float eps, float cg, float cm)
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
static void irprop_minus(size_t n, float *restrict p, const float *restrict g,
                         float *restrict prev, float *restrict delta, float eta_plus,
                         float eta_minus, float dmin, float dmax)
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
 * Step
 * ----------------------------------------------------------------------------------------*/

/* Per-step scalars, computed once in double and rounded to float for the kernels. The
 * complements 1 - b are rounded from the double difference, not computed in float from the
 * rounded b (1 - 0.999f is 1.3e-5 away from 0.001 in relative terms). */
typedef struct step_scalars {
    float lr, wd, mom, b1, b2, eps;
    float c1, c2;           /* 1 - b1, 1 - b2 */
    float rho, c_rho;       /* RMSprop alpha, 1 - alpha */
    float a, c, kd, kb;     /* SGD momentum coefficients */
    float decay;            /* AdamW */
    float step, inv_bc2;    /* Adam family */
    float cg, cm;           /* NAdam */
    double mu_product_next; /* NAdam: P_t */
} step_scalars;

static void compute_scalars(const bp_optimizer *o, uint64_t t, step_scalars *k)
{
    const double *s = o->set;
    const double lr = s[S(BP_OPT_LEARNING_RATE)], wd = s[S(BP_OPT_WEIGHT_DECAY)];
    const double mom = s[S(BP_OPT_MOMENTUM)], b1 = s[S(BP_OPT_BETA1)], b2 = s[S(BP_OPT_BETA2)];
    const double td = (double)t;
    memset(k, 0, sizeof *k);
    k->lr = (float)lr;
    k->wd = (float)wd;
    k->mom = (float)mom;
    k->b1 = (float)b1;
    k->b2 = (float)b2;
    k->eps = (float)s[S(BP_OPT_EPSILON)];
    k->c1 = (float)(1.0 - b1);
    k->c2 = (float)(1.0 - b2);
    k->rho = (float)s[S(BP_OPT_RHO)];
    k->c_rho = (float)(1.0 - s[S(BP_OPT_RHO)]);
    switch (o->kind) {
    case BP_OPTIMIZER_SGD: {
        const int first = !o->sgd_buf_ready;
        k->a = first ? 0.0f : (float)mom;
        k->c = first ? 1.0f : (float)(1.0 - s[S(BP_OPT_DAMPENING)]);
        const int nesterov = s[S(BP_OPT_NESTEROV)] != 0.0;
        k->kd = nesterov ? 1.0f : 0.0f;
        k->kb = nesterov ? (float)mom : 1.0f;
        break;
    }
    case BP_OPTIMIZER_ADAM:
    case BP_OPTIMIZER_ADAMW:
        k->decay = o->kind == BP_OPTIMIZER_ADAMW ? (float)(1.0 - lr * wd) : 1.0f;
        if (o->kind == BP_OPTIMIZER_ADAMW) k->wd = 0.0f;
        k->step = (float)(lr / (1.0 - pow(b1, td)));
        k->inv_bc2 = (float)(1.0 / sqrt(1.0 - pow(b2, td)));
        break;
    case BP_OPTIMIZER_ADAMAX:
        k->step = (float)(lr / (1.0 - pow(b1, td)));
        break;
    case BP_OPTIMIZER_NADAM: {
        const double psi = 0.004;
        const double mu = b1 * (1.0 - 0.5 * pow(0.96, td * psi));
        const double mu_next = b1 * (1.0 - 0.5 * pow(0.96, (td + 1.0) * psi));
        const double prod = o->nadam_mu_product * mu;
        k->mu_product_next = prod;
        k->cg = (float)(lr * (1.0 - mu) / (1.0 - prod));
        k->cm = (float)(lr * mu_next / (1.0 - prod * mu_next));
        k->inv_bc2 = (float)(1.0 / (1.0 - pow(b2, td)));
        break;
    }
    default: break;
    }
}

/* Update one layer's segment [off, off + n) with the state slots at the same offsets. */
static void update_segment(const bp_optimizer *o, const step_scalars *k, float *p,
                           const float *g, size_t off, size_t n)
{
    const size_t np = o->bound_nparams;
    float *s0 = o->state + off, *s1 = s0 + np, *s2 = s1 + np;
    const double *s = o->set;
    switch (o->kind) {
    case BP_OPTIMIZER_SGD:
        if (s[S(BP_OPT_MOMENTUM)] == 0.0)
            sgd_plain(n, p, g, k->lr, k->wd);
        else
            sgd_momentum(n, p, g, s0, k->lr, k->wd, k->a, k->c, k->kd, k->kb);
        break;
    case BP_OPTIMIZER_ADAGRAD: adagrad(n, p, g, s0, k->lr, k->wd, k->eps); break;
    case BP_OPTIMIZER_RMSPROP:
        rmsprop(n, p, g, s0, s1, s2, k->lr, k->wd, k->rho, k->c_rho, k->eps, k->mom,
                s[S(BP_OPT_CENTERED)] != 0.0 ? 1.0f : 0.0f);
        break;
    case BP_OPTIMIZER_ADAM:
    case BP_OPTIMIZER_ADAMW:
        if (s[S(BP_OPT_AMSGRAD)] != 0.0)
            adam_amsgrad(n, p, g, s0, s1, s2, k->decay, k->wd, k->b1, k->c1, k->b2, k->c2,
                         k->step, k->inv_bc2, k->eps);
        else
            adam_plain(n, p, g, s0, s1, k->decay, k->wd, k->b1, k->c1, k->b2, k->c2, k->step,
                       k->inv_bc2, k->eps);
        break;
    case BP_OPTIMIZER_ADAMAX:
        adamax(n, p, g, s0, s1, k->wd, k->b1, k->c1, k->b2, k->step, k->eps);
        break;
    case BP_OPTIMIZER_NADAM:
        nadam(n, p, g, s0, s1, k->wd, k->b1, k->c1, k->b2, k->c2, k->inv_bc2, k->eps, k->cg,
              k->cm);
        break;
    case BP_OPTIMIZER_IRPROP_MINUS:
        irprop_minus(n, p, g, s0, s1, (float)s[S(BP_OPT_RPROP_ETA_PLUS)],
                     (float)s[S(BP_OPT_RPROP_ETA_MINUS)], (float)s[S(BP_OPT_RPROP_DELTA_MIN)],
                     (float)s[S(BP_OPT_RPROP_DELTA_MAX)]);
        break;
    default: break;
    }
}

/* One update_segment over a slice of a segment, run by the pool's threads. */
typedef struct update_job {
    const bp_optimizer *opt;
    const step_scalars *k;
    float *p;
    const float *g;
    size_t off;
} update_job;

static void update_range(void *ctx, size_t begin, size_t end)
{
    const update_job *j = ctx;
    update_segment(j->opt, j->k, j->p + begin, j->g + begin, j->off + begin, end - begin);
}

/* update_segment, split across the net's worker threads when the segment is long enough to
 * gain (the kernels are elementwise: any split computes the same floats). */
static void update_segment_par(const bp_optimizer *o, const step_scalars *k, bp_net *net,
                               size_t off, size_t n)
{
    float *p = net->params + off;
    const float *g = net->grads + off;
    if (n < BP__POOL_MIN_FLOATS) {
        update_segment(o, k, p, g, off, n);
        return;
    }
    update_job job = {o, k, p, g, off};
    bp__pool_run(&net->pool, &net->alloc, n, update_range, &job);
}

static bp_status step_update(bp_optimizer *opt, bp_net *net);

bp_status bp_optimizer_step(bp_optimizer *opt, bp_net *net)
{
    BP_CHECK(bp__optimizer_validate_for(opt, net));
    /* Every gradient the update will read must be finite before any parameter moves. */
    for (size_t li = 0; li < net->nlayers; li++) {
        const bp_layer *l = net->layers[li];
        if (!l->trainable) continue;
        const size_t n = l->nweights + l->nbiases;
        const size_t bad = bp__first_nonfinite(net->grads + l->param_off, n);
        if (bad < n) {
            const int is_w = bad < l->nweights;
            return bp__fail(opt->err, BP_ERR_NONFINITE,
                            "bp_optimizer_step: layer %zu: gradient of %s %zu is %g; "
                            "parameters unchanged",
                            li, is_w ? "weight" : "bias", is_w ? bad : bad - l->nweights,
                            (double)net->grads[l->param_off + bad]);
        }
    }
    const unsigned csr = bp__fp_enter(); /* denormals flushed while the kernels run */
    const bp_status s = step_update(opt, net);
    bp__fp_leave(csr);
    return s;
}

bp_status bp__optimizer_step_trusted(bp_optimizer *opt, bp_net *net)
{
    BP_CHECK(bp__optimizer_validate_for(opt, net));
    return step_update(opt, net);
}

bp_status bp__optimizer_update(bp_optimizer *opt, bp_net *net) { return step_update(opt, net); }

/* The update proper: the caller has validated @p opt for @p net and proven the gradients
 * finite. */
static bp_status step_update(bp_optimizer *opt, bp_net *net)
{
    if (!opt->bound) BP_CHECK(bp__optimizer_bind(opt, net));

    const uint64_t t = opt->steps + 1;
    step_scalars k;
    compute_scalars(opt, t, &k);
    /* The layers' segments tile the arena in order: one pass over it when every layer
     * trains (the kernels are elementwise, so the floats are the same as per segment). */
    size_t frozen = 0;
    for (size_t li = 0; li < net->nlayers; li++) frozen += !net->layers[li]->trainable;
    if (frozen == 0) {
        update_segment_par(opt, &k, net, 0, net->nparams);
    } else {
        for (size_t li = 0; li < net->nlayers; li++) {
            const bp_layer *l = net->layers[li];
            if (!l->trainable) continue;
            update_segment_par(opt, &k, net, l->param_off, l->nweights + l->nbiases);
        }
    }
    opt->steps = t;
    if (opt->kind == BP_OPTIMIZER_SGD && opt->set[S(BP_OPT_MOMENTUM)] != 0.0)
        opt->sgd_buf_ready = 1;
    if (opt->kind == BP_OPTIMIZER_NADAM) opt->nadam_mu_product = k.mu_product_next;
    return BP_OK;
}
