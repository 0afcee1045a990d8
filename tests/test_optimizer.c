/* test_optimizer.c -- every optimizer against an independent double-precision re-derivation of
 * its published update rule; settings and bounds; shape binding; frozen layers; non-finite
 * gradients; allocation failure; invalid handles.
 *
 * net.c is not needed: the tests build a net by hand from the structs in net.h and layer.h. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "layer.h"
#include "net.h"
#include "optimizer.h"

/* ------------------------------------------------------------------------------------------
 * A hand-built net
 * ----------------------------------------------------------------------------------------*/

#define MAXP  64
#define MAXL  2
#define STEPS 3

typedef struct fake_net {
    bp_net net;
    bp_layer layer[MAXL];
    bp_layer *lp[MAXL];
    float params[MAXP];
    float grads[MAXP];
} fake_net;

/* nlayers layers; layer i has nw[i] weights then nb[i] biases, packed in order. */
static void fake_net_init(fake_net *f, size_t nlayers, const size_t *nw, const size_t *nb)
{
    memset(f, 0, sizeof *f);
    f->net.magic = BP__MAGIC_NET;
    f->net.alloc = bp__default_alloc;
    f->net.inputs = 1;
    f->net.nlayers = nlayers;
    f->net.cap_layers = MAXL;
    f->net.layers = f->lp;
    f->net.params = f->params;
    f->net.grads = f->grads;
    size_t off = 0;
    for (size_t i = 0; i < nlayers; i++) {
        bp_layer *l = &f->layer[i];
        l->magic = BP__MAGIC_LAYER;
        l->net = &f->net;
        l->index = i;
        l->out = nb[i];
        l->in = nw[i] / nb[i];
        l->param_off = off;
        l->nweights = nw[i];
        l->nbiases = nb[i];
        l->trainable = 1;
        f->lp[i] = l;
        off += nw[i] + nb[i];
    }
    assert_true(off <= MAXP);
    f->net.nparams = off;
    f->net.shape_hash = bp__optimizer_shape_hash(&f->net); /* as bp__net_append_layer does */
}

/* The small fixture: layer 0 = 2 weights + 1 bias, layer 1 = 1 weight + 1 bias. */
#define NSMALL 5
static void fake_net_small(fake_net *f)
{
    static const size_t nw[] = {2, 1}, nb[] = {1, 1};
    fake_net_init(f, 2, nw, nb);
}

static const float small_p0[NSMALL] = {0.5f, -1.0f, 0.75f, 2.0f, -0.3f};
/* Per step; includes sign flips (1, 4 at step 2; 0, 4 at step 3) and a zero (3 at step 3). */
static const float small_g[STEPS][NSMALL] = {
    {0.5f, -0.25f, 1.5f, -2.0f, 0.125f},
    {0.25f, 0.5f, 1.0f, -1.0f, -0.375f},
    {-0.75f, 0.5f, 2.0f, 0.0f, -0.5f},
};

/* ------------------------------------------------------------------------------------------
 * Hyper-parameters, applied through the public setters
 * ----------------------------------------------------------------------------------------*/

typedef struct hp {
    double lr, mom, damp, nesterov, wd, b1, b2, eps, ams, rho, centered, acc0;
    double etap, etam, d0, dmin, dmax;
} hp;

static hp base_hp(void)
{
    const hp h = {.lr = 0.01,
                  .b1 = 0.9,
                  .b2 = 0.999,
                  .eps = 1e-8,
                  .rho = 0.99,
                  .etap = 1.2,
                  .etam = 0.5,
                  .d0 = 0.1,
                  .dmin = 0.0,
                  .dmax = 50.0};
    return h;
}

/* The settings each algorithm reads (backprop.h, enum bp_optimizer_key), written out here
 * independently of the library's table. */
static int applies(int kind, int key)
{
    switch (key) {
    case BP_OPT_LEARNING_RATE:
    case BP_OPT_WEIGHT_DECAY: return kind != BP_OPTIMIZER_IRPROP_MINUS;
    case BP_OPT_MOMENTUM: return kind == BP_OPTIMIZER_SGD || kind == BP_OPTIMIZER_RMSPROP;
    case BP_OPT_DAMPENING:
    case BP_OPT_NESTEROV: return kind == BP_OPTIMIZER_SGD;
    case BP_OPT_BETA1:
    case BP_OPT_BETA2:
        return kind == BP_OPTIMIZER_ADAM || kind == BP_OPTIMIZER_ADAMW ||
               kind == BP_OPTIMIZER_ADAMAX || kind == BP_OPTIMIZER_NADAM;
    case BP_OPT_EPSILON: return kind != BP_OPTIMIZER_SGD && kind != BP_OPTIMIZER_IRPROP_MINUS;
    case BP_OPT_AMSGRAD: return kind == BP_OPTIMIZER_ADAM || kind == BP_OPTIMIZER_ADAMW;
    case BP_OPT_RHO:
    case BP_OPT_CENTERED: return kind == BP_OPTIMIZER_RMSPROP;
    case BP_OPT_INITIAL_ACCUMULATOR: return kind == BP_OPTIMIZER_ADAGRAD;
    default: return kind == BP_OPTIMIZER_IRPROP_MINUS; /* BP_OPT_RPROP_* */
    }
}

static void apply_hp(bp_optimizer *o, const hp *h)
{
    const struct {
        int key;
        double v;
    } kv[] = {
        {BP_OPT_LEARNING_RATE, h->lr},
        {BP_OPT_MOMENTUM, h->mom},
        {BP_OPT_DAMPENING, h->damp},
        {BP_OPT_NESTEROV, h->nesterov},
        {BP_OPT_WEIGHT_DECAY, h->wd},
        {BP_OPT_BETA1, h->b1},
        {BP_OPT_BETA2, h->b2},
        {BP_OPT_EPSILON, h->eps},
        {BP_OPT_AMSGRAD, h->ams},
        {BP_OPT_RHO, h->rho},
        {BP_OPT_CENTERED, h->centered},
        {BP_OPT_INITIAL_ACCUMULATOR, h->acc0},
        {BP_OPT_RPROP_ETA_PLUS, h->etap},
        {BP_OPT_RPROP_ETA_MINUS, h->etam},
        {BP_OPT_RPROP_DELTA_INIT, h->d0},
        {BP_OPT_RPROP_DELTA_MIN, h->dmin},
        {BP_OPT_RPROP_DELTA_MAX, h->dmax},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        if (applies(bp_optimizer_kind(o), kv[i].key)) {
            assert_status(bp_optimizer_set(o, kv[i].key, kv[i].v), BP_OK);
        } else {
            assert_status(bp_optimizer_set(o, kv[i].key, kv[i].v), BP_ERR_INVALID_ARG);
            assert_non_null(strstr(bp_optimizer_last_error(o), "does not apply to"));
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * Reference: the published rules, element by element, in double, written out from the
 * papers / PyTorch documentation (textbook form, not the library's factored form).
 * ----------------------------------------------------------------------------------------*/

static double sgn(double x)
{
    return x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : 0.0;
}

/* Run `steps` updates of algorithm `kind` on p[0..n) with gradients g[t*n + i]. */
static void reference(int kind, const hp *h, size_t n, const float *p0, const float *g, int steps,
                      double *p)
{
    double s0[MAXP] = {0}, s1[MAXP] = {0}, s2[MAXP] = {0};
    for (size_t i = 0; i < n; i++) {
        p[i] = (double)p0[i];
        if (kind == BP_OPTIMIZER_ADAGRAD) s0[i] = h->acc0;    /* state_sum */
        if (kind == BP_OPTIMIZER_IRPROP_MINUS) s1[i] = h->d0; /* step size */
    }
    for (int t = 1; t <= steps; t++) {
        for (size_t i = 0; i < n; i++) {
            double gi = (double)g[(size_t)(t - 1) * n + i];
            switch (kind) {
            case BP_OPTIMIZER_SGD: { /* s0: momentum buffer */
                gi += h->wd * p[i];
                if (h->mom != 0.0) {
                    s0[i] = t == 1 ? gi : h->mom * s0[i] + (1.0 - h->damp) * gi;
                    gi = h->nesterov != 0.0 ? gi + h->mom * s0[i] : s0[i];
                }
                p[i] -= h->lr * gi;
                break;
            }
            case BP_OPTIMIZER_ADAGRAD: { /* s0: sum of squares */
                gi += h->wd * p[i];
                s0[i] += gi * gi;
                p[i] -= h->lr * gi / (sqrt(s0[i]) + h->eps);
                break;
            }
            case BP_OPTIMIZER_RMSPROP: { /* s0: E[g^2], s1: E[g], s2: momentum buffer */
                gi += h->wd * p[i];
                s0[i] = h->rho * s0[i] + (1.0 - h->rho) * gi * gi;
                double avg;
                if (h->centered != 0.0) {
                    s1[i] = h->rho * s1[i] + (1.0 - h->rho) * gi;
                    avg = sqrt(s0[i] - s1[i] * s1[i]) + h->eps;
                } else {
                    avg = sqrt(s0[i]) + h->eps;
                }
                if (h->mom > 0.0) {
                    s2[i] = h->mom * s2[i] + gi / avg;
                    p[i] -= h->lr * s2[i];
                } else {
                    p[i] -= h->lr * gi / avg;
                }
                break;
            }
            case BP_OPTIMIZER_ADAM:
            case BP_OPTIMIZER_ADAMW: { /* s0: m, s1: v, s2: max v */
                if (kind == BP_OPTIMIZER_ADAMW)
                    p[i] = p[i] - h->lr * h->wd * p[i];
                else
                    gi += h->wd * p[i];
                s0[i] = h->b1 * s0[i] + (1.0 - h->b1) * gi;
                s1[i] = h->b2 * s1[i] + (1.0 - h->b2) * gi * gi;
                const double mhat = s0[i] / (1.0 - pow(h->b1, t));
                double vhat;
                if (h->ams != 0.0) {
                    s2[i] = s1[i] > s2[i] ? s1[i] : s2[i];
                    vhat = s2[i] / (1.0 - pow(h->b2, t));
                } else {
                    vhat = s1[i] / (1.0 - pow(h->b2, t));
                }
                p[i] -= h->lr * mhat / (sqrt(vhat) + h->eps);
                break;
            }
            case BP_OPTIMIZER_ADAMAX: { /* s0: m, s1: u (infinity norm) */
                gi += h->wd * p[i];
                s0[i] = h->b1 * s0[i] + (1.0 - h->b1) * gi;
                const double a = h->b2 * s1[i], b = fabs(gi) + h->eps;
                s1[i] = a > b ? a : b;
                p[i] -= h->lr / (1.0 - pow(h->b1, t)) * s0[i] / s1[i];
                break;
            }
            case BP_OPTIMIZER_NADAM: { /* s0: m, s1: v; products recomputed from scratch */
                gi += h->wd * p[i];
                double prod_t = 1.0;
                for (int k = 1; k <= t; k++)
                    prod_t *= h->b1 * (1.0 - 0.5 * pow(0.96, k * 0.004));
                const double mu_t = h->b1 * (1.0 - 0.5 * pow(0.96, t * 0.004));
                const double mu_t1 = h->b1 * (1.0 - 0.5 * pow(0.96, (t + 1) * 0.004));
                const double prod_t1 = prod_t * mu_t1;
                s0[i] = h->b1 * s0[i] + (1.0 - h->b1) * gi;
                s1[i] = h->b2 * s1[i] + (1.0 - h->b2) * gi * gi;
                const double mhat =
                    mu_t1 * s0[i] / (1.0 - prod_t1) + (1.0 - mu_t) * gi / (1.0 - prod_t);
                const double vhat = s1[i] / (1.0 - pow(h->b2, t));
                p[i] -= h->lr * mhat / (sqrt(vhat) + h->eps);
                break;
            }
            case BP_OPTIMIZER_IRPROP_MINUS: { /* s0: previous gradient, s1: step size */
                if (s0[i] * gi > 0.0) {
                    s1[i] = fmin(s1[i] * h->etap, h->dmax);
                } else if (s0[i] * gi < 0.0) {
                    s1[i] = fmax(s1[i] * h->etam, h->dmin);
                    gi = 0.0;
                }
                p[i] -= sgn(gi) * s1[i];
                s0[i] = gi;
                break;
            }
            default: fail();
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * Library vs reference, step by step
 * ----------------------------------------------------------------------------------------*/

static void compare_run(int kind, const hp *h, fake_net *f, const float *p0, const float *g,
                        double atol)
{
    const size_t n = f->net.nparams;
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, kind), BP_OK);
    apply_hp(o, h);
    memcpy(f->params, p0, n * sizeof(float));
    for (int t = 1; t <= STEPS; t++) {
        memcpy(f->grads, g + (size_t)(t - 1) * n, n * sizeof(float));
        assert_status(bp_optimizer_step(o, &f->net), BP_OK);
        assert_int_equal(bp_optimizer_step_count(o), (uint64_t)t);
        double ref[MAXP];
        reference(kind, h, n, p0, g, t, ref);
        for (size_t i = 0; i < n; i++) {
            if (fabs((double)f->params[i] - ref[i]) > 1e-6 * fabs(ref[i]) + atol)
                print_error("kind %d step %d param %zu\n", kind, t, i);
            assert_close(f->params[i], ref[i], 1e-6, atol);
        }
    }
    bp_optimizer_free(o);
}

/* Check the small fixed case, then a 2-layer net of 41 parameters (long enough for the
 * vectorised loop bodies and their remainders) with random gradients. */
static void check_case(int kind, const hp *h)
{
    fake_net f;
    fake_net_small(&f);
    compare_run(kind, h, &f, small_p0, &small_g[0][0], 1e-7);

    static const size_t nw[] = {20, 14}, nb[] = {4, 3};
    fake_net_init(&f, 2, nw, nb);
    const size_t n = f.net.nparams;
    float p0[MAXP], g[STEPS * MAXP];
    uint64_t seed = 12345u + (uint64_t)kind;
    bp_test_fill_uniform(p0, n, -1.0f, 1.0f, &seed);
    for (size_t i = 0; i < n; i++)
        p0[i] += p0[i] < 0.0f ? -0.2f : 0.2f; /* away from 0 */
    bp_test_fill_uniform(g, STEPS * n, -1.0f, 1.0f, &seed);
    compare_run(kind, h, &f, p0, g, 3e-7);
}

static void sgd_plain_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.1;
    check_case(BP_OPTIMIZER_SGD, &h);
}

static void sgd_momentum_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.1;
    h.mom = 0.9;
    check_case(BP_OPTIMIZER_SGD, &h);
}

static void sgd_dampening_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.1;
    h.mom = 0.9;
    h.damp = 0.3;
    check_case(BP_OPTIMIZER_SGD, &h);
}

static void sgd_nesterov_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.1;
    h.mom = 0.9;
    h.nesterov = 1;
    check_case(BP_OPTIMIZER_SGD, &h);
}

static void sgd_weight_decay_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.1;
    h.wd = 0.05;
    check_case(BP_OPTIMIZER_SGD, &h);
    h.mom = 0.5;
    check_case(BP_OPTIMIZER_SGD, &h);
}

static void adagrad_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.1;
    h.eps = 1e-10;
    h.acc0 = 0.1;
    check_case(BP_OPTIMIZER_ADAGRAD, &h);
    h.acc0 = 0.0;
    h.wd = 0.05;
    check_case(BP_OPTIMIZER_ADAGRAD, &h);
}

static void rmsprop_plain_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    check_case(BP_OPTIMIZER_RMSPROP, &h);
    h.wd = 0.05;
    h.rho = 0.9;
    h.eps = 1e-3;
    check_case(BP_OPTIMIZER_RMSPROP, &h);
}

static void rmsprop_momentum_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.mom = 0.9;
    check_case(BP_OPTIMIZER_RMSPROP, &h);
}

static void rmsprop_centered_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.centered = 1;
    check_case(BP_OPTIMIZER_RMSPROP, &h);
    h.mom = 0.5;
    h.wd = 0.05;
    check_case(BP_OPTIMIZER_RMSPROP, &h);
}

static void adam_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.01;
    check_case(BP_OPTIMIZER_ADAM, &h);
    h.wd = 0.1;
    h.eps = 1e-3; /* large enough that where eps enters the formula matters */
    check_case(BP_OPTIMIZER_ADAM, &h);
    /* A large step exposes 1 - b2 rounded in float (1 - 0.999f) instead of in double. */
    h = base_hp();
    h.lr = 0.1;
    check_case(BP_OPTIMIZER_ADAM, &h);
}

static void adam_amsgrad_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.01;
    h.b2 = 0.5; /* v shrinks when |g| falls, so max(v) differs from v */
    h.ams = 1;
    check_case(BP_OPTIMIZER_ADAM, &h);

    /* The amsgrad case really differs from plain Adam on this data. */
    double with[NSMALL], without[NSMALL];
    reference(BP_OPTIMIZER_ADAM, &h, NSMALL, small_p0, &small_g[0][0], STEPS, with);
    h.ams = 0;
    reference(BP_OPTIMIZER_ADAM, &h, NSMALL, small_p0, &small_g[0][0], STEPS, without);
    double diff = 0;
    for (size_t i = 0; i < NSMALL; i++)
        diff += fabs(with[i] - without[i]);
    assert_true(diff > 1e-4);
}

static void adamw_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.01;
    h.wd = 0.1;
    check_case(BP_OPTIMIZER_ADAMW, &h);
    h.ams = 1;
    h.b2 = 0.5;
    check_case(BP_OPTIMIZER_ADAMW, &h);
}

static void adamax_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.002;
    check_case(BP_OPTIMIZER_ADAMAX, &h);
    h.lr = 0.01;
    h.wd = 0.1;
    h.eps = 1e-2;
    check_case(BP_OPTIMIZER_ADAMAX, &h);
}

static void nadam_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp();
    h.lr = 0.01;
    check_case(BP_OPTIMIZER_NADAM, &h);
    h.wd = 0.1;
    h.b1 = 0.8;
    check_case(BP_OPTIMIZER_NADAM, &h);
    /* A large step makes the small gap between mu_t and mu_{t+1} visible at 1e-6. */
    h.lr = 0.1;
    h.eps = 1e-3;
    check_case(BP_OPTIMIZER_NADAM, &h);
}

static void irprop_minus_matches_reference(void **state)
{
    (void)state;
    hp h = base_hp(); /* FANN defaults: 0.1, [0, 50], 1.2, 0.5 */
    check_case(BP_OPTIMIZER_IRPROP_MINUS, &h);
    /* Caps: step 3 growth 0.144 hits delta_max; the flip at step 3 hits delta_min. */
    h.dmax = 0.13;
    h.dmin = 0.07;
    check_case(BP_OPTIMIZER_IRPROP_MINUS, &h);
}

static void irprop_minus_follows_sign_rules_on_small_case(void **state)
{
    (void)state;
    /* Hand-computed from Igel & Huesken's rule, independent of the reference above. */
    fake_net f;
    fake_net_small(&f);
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_IRPROP_MINUS), BP_OK);
    memcpy(f.params, small_p0, sizeof small_p0);
    for (int t = 0; t < STEPS; t++) {
        memcpy(f.grads, small_g[t], sizeof small_g[t]);
        assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    }
    /* p0: 0.5 -0.1 -0.12 (flip at 3: no move) = 0.28 */
    assert_close(f.params[0], 0.28, 1e-6, 0);
    /* p1: -1 +0.1, flip at 2 (no move, delta 0.05), step 3 prev=0: -0.05 -> -0.95 */
    assert_close(f.params[1], -0.95, 1e-6, 0);
    /* p2: 0.75 -0.1 -0.12 -0.144 = 0.386 */
    assert_close(f.params[2], 0.386, 1e-6, 0);
    /* p3: 2 +0.1 +0.12, g = 0 at 3: 2.22 */
    assert_close(f.params[3], 2.22, 1e-6, 0);
    /* p4: -0.3 -0.1, flip (delta 0.05), then +0.05: -0.35 */
    assert_close(f.params[4], -0.35, 1e-6, 0);
    bp_optimizer_free(o);
}

/* ------------------------------------------------------------------------------------------
 * Creation, kind, defaults
 * ----------------------------------------------------------------------------------------*/

static const int all_kinds[] = {BP_OPTIMIZER_SGD,   BP_OPTIMIZER_ADAGRAD,     BP_OPTIMIZER_RMSPROP,
                                BP_OPTIMIZER_ADAM,  BP_OPTIMIZER_ADAMW,       BP_OPTIMIZER_ADAMAX,
                                BP_OPTIMIZER_NADAM, BP_OPTIMIZER_IRPROP_MINUS};
#define NKINDS (sizeof all_kinds / sizeof all_kinds[0])

static const int all_keys[] = {BP_OPT_LEARNING_RATE,
                               BP_OPT_MOMENTUM,
                               BP_OPT_DAMPENING,
                               BP_OPT_NESTEROV,
                               BP_OPT_WEIGHT_DECAY,
                               BP_OPT_BETA1,
                               BP_OPT_BETA2,
                               BP_OPT_EPSILON,
                               BP_OPT_AMSGRAD,
                               BP_OPT_RHO,
                               BP_OPT_CENTERED,
                               BP_OPT_INITIAL_ACCUMULATOR,
                               BP_OPT_RPROP_ETA_PLUS,
                               BP_OPT_RPROP_ETA_MINUS,
                               BP_OPT_RPROP_DELTA_INIT,
                               BP_OPT_RPROP_DELTA_MIN,
                               BP_OPT_RPROP_DELTA_MAX};
#define NKEYS (sizeof all_keys / sizeof all_keys[0])

static int is_flag(int key)
{
    return key == BP_OPT_NESTEROV || key == BP_OPT_AMSGRAD || key == BP_OPT_CENTERED;
}

static void create_reports_kind(void **state)
{
    (void)state;
    for (size_t k = 0; k < NKINDS; k++) {
        bp_optimizer *o = NULL;
        assert_status(bp_optimizer_create(&o, all_kinds[k]), BP_OK);
        assert_non_null(o);
        assert_int_equal(bp_optimizer_kind(o), all_kinds[k]);
        assert_int_equal(bp_optimizer_step_count(o), 0);
        assert_string_equal(bp_optimizer_last_error(o), "");
        bp_optimizer_free(o);
    }
}

static void create_rejects_unknown_kind_and_clears_out(void **state)
{
    (void)state;
    const int bad[] = {0, -1, 9, 100, 2147483647};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bp_optimizer sentinel;
        bp_optimizer *o = &sentinel;
        assert_status(bp_optimizer_create(&o, bad[i]), BP_ERR_INVALID_ARG);
        assert_null(o);
        assert_non_null(strstr(bp_last_error(), "unknown optimizer kind"));
    }
    assert_status(bp_optimizer_create(NULL, BP_OPTIMIZER_SGD), BP_ERR_INVALID_ARG);
}

static void defaults_match_published_values(void **state)
{
    (void)state;
    /* Column order: lr mom damp nesterov wd b1 b2 eps ams rho centered acc0 etap etam d0
     * dmin dmax -- PyTorch's defaults (FANN's for iRprop-), as documented in backprop.h. */
    static const double expect[NKINDS][NKEYS] = {
        {0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0.99, 0, 0, 1.2, 0.5, 0.1, 0, 50},
        {0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-10, 0, 0.99, 0, 0, 1.2, 0.5, 0.1, 0, 50},
        {0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0.99, 0, 0, 1.2, 0.5, 0.1, 0, 50},
        {0.001, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0.99, 0, 0, 1.2, 0.5, 0.1, 0, 50},
        {0.001, 0, 0, 0, 0.01, 0.9, 0.999, 1e-8, 0, 0.99, 0, 0, 1.2, 0.5, 0.1, 0, 50},
        {0.002, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0.99, 0, 0, 1.2, 0.5, 0.1, 0, 50},
        {0.001, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0.99, 0, 0, 1.2, 0.5, 0.1, 0, 50},
        {0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0.99, 0, 0, 1.2, 0.5, 0.1, 0, 50},
    };
    for (size_t k = 0; k < NKINDS; k++) {
        bp_optimizer *o;
        assert_status(bp_optimizer_create(&o, all_kinds[k]), BP_OK);
        for (size_t j = 0; j < NKEYS; j++) {
            if (!applies(all_kinds[k], all_keys[j])) continue; /* no default to read */
            double v = -1, lo, hi;
            assert_status(bp_optimizer_get(o, all_keys[j], &v), BP_OK);
            if (v != expect[k][j]) print_error("kind %d key %d\n", all_kinds[k], all_keys[j]);
            assert_true(v == expect[k][j]);
            assert_status(bp_optimizer_param_bounds(all_keys[j], &lo, &hi), BP_OK);
            assert_true(lo <= v && v <= hi);
        }
        bp_optimizer_free(o);
    }
}

/* Every algorithm refuses the keys it does not read, naming key and algorithm: set on the
 * handle (and bp_last_error()), get through bp_last_error() only; nothing changes. */
static char set_message[256];

static void keys_that_do_not_apply_are_rejected_naming_key_and_algorithm(void **state)
{
    (void)state;
    static const char *const names[] = {"SGD",   "Adagrad", "RMSprop", "Adam",
                                        "AdamW", "Adamax",  "NAdam",   "iRprop-"};
    size_t refused = 0;
    for (size_t k = 0; k < NKINDS; k++) {
        bp_optimizer *o;
        assert_status(bp_optimizer_create(&o, all_kinds[k]), BP_OK);
        double before[NKEYS];
        for (size_t j = 0; j < NKEYS; j++)
            if (applies(all_kinds[k], all_keys[j]))
                assert_status(bp_optimizer_get(o, all_keys[j], &before[j]), BP_OK);
        for (size_t j = 0; j < NKEYS; j++) {
            const int key = all_keys[j];
            if (applies(all_kinds[k], key)) continue;
            refused++;
            double lo, hi, v = 42.0;
            assert_status(bp_optimizer_param_bounds(key, &lo, &hi), BP_OK); /* still a key */
            char want[96];
            snprintf(want, sizeof want, "does not apply to %s", names[k]);
            assert_status(bp_optimizer_set(o, key, lo), BP_ERR_INVALID_ARG);
            assert_non_null(strstr(bp_optimizer_last_error(o), want));
            assert_non_null(strstr(bp_optimizer_last_error(o), "bp_optimizer_set: BP_OPT_"));
            assert_non_null(strstr(bp_last_error(), want));
            snprintf(set_message, sizeof set_message, "%s", bp_optimizer_last_error(o));
            assert_status(bp_optimizer_get(o, key, &v), BP_ERR_INVALID_ARG);
            assert_true(v == 42.0);
            assert_non_null(strstr(bp_last_error(), "bp_optimizer_get: BP_OPT_"));
            assert_non_null(strstr(bp_last_error(), want));
            /* get is const: the handle's message is the set's, untouched */
            assert_string_equal(bp_optimizer_last_error(o), set_message);
        }
        for (size_t j = 0; j < NKEYS; j++) {
            if (!applies(all_kinds[k], all_keys[j])) continue;
            double v;
            assert_status(bp_optimizer_get(o, all_keys[j], &v), BP_OK);
            assert_true(v == before[j]);
        }
        bp_optimizer_free(o);
    }
    /* applicable: SGD 5, Adagrad 4, RMSprop 6, Adam 6, AdamW 6, Adamax 5, NAdam 5, iRprop- 5 */
    assert_int_equal(refused, NKINDS * NKEYS - 42);
}

/* bp_optimizer_reset_settings: every setting back to the algorithm's default; state, bound
 * shape and step count kept, so the next step continues from the moments. */
static void reset_settings_restores_defaults_and_keeps_state(void **state)
{
    (void)state;
    for (size_t k = 0; k < NKINDS; k++) {
        const int kind = all_kinds[k];
        bp_optimizer *o, *fresh;
        assert_status(bp_optimizer_create(&o, kind), BP_OK);
        assert_status(bp_optimizer_create(&fresh, kind), BP_OK);
        fake_net f;
        fake_net_small(&f);
        memcpy(f.params, small_p0, sizeof small_p0);
        memcpy(f.grads, small_g[0], sizeof small_g[0]);
        assert_status(bp_optimizer_step(o, &f.net), BP_OK);
        /* Move every applicable setting to another valid value. */
        for (size_t j = 0; j < NKEYS; j++) {
            const int key = all_keys[j];
            if (!applies(kind, key)) continue;
            double lo, hi, v;
            assert_status(bp_optimizer_param_bounds(key, &lo, &hi), BP_OK);
            assert_status(bp_optimizer_get(o, key, &v), BP_OK);
            const double other = is_flag(key) ? 1.0 - v : v == lo ? hi : lo;
            assert_status(bp_optimizer_set(o, key, other), BP_OK);
        }
        const size_t ns = bp__optimizer_state_floats(o);
        assert_true(ns > 0);
        float saved[3 * MAXP];
        memcpy(saved, o->state, ns * sizeof(float));
        assert_status(bp_optimizer_reset_settings(o), BP_OK);
        for (size_t j = 0; j < NKEYS; j++) {
            if (!applies(kind, all_keys[j])) continue;
            double v, def;
            assert_status(bp_optimizer_get(o, all_keys[j], &v), BP_OK);
            assert_status(bp_optimizer_get(fresh, all_keys[j], &def), BP_OK);
            assert_true(v == def);
        }
        assert_int_equal(bp_optimizer_step_count(o), 1);
        assert_int_equal(bp__optimizer_state_floats(o), ns);
        assert_memory_equal(saved, o->state, ns * sizeof(float));
        /* The next step is the second of a default optimizer's run. */
        fake_net g;
        fake_net_small(&g);
        memcpy(g.params, small_p0, sizeof small_p0);
        memcpy(g.grads, small_g[0], sizeof small_g[0]);
        assert_status(bp_optimizer_step(fresh, &g.net), BP_OK);
        assert_memory_equal(f.params, g.params, sizeof f.params);
        memcpy(f.grads, small_g[1], sizeof small_g[1]);
        memcpy(g.grads, small_g[1], sizeof small_g[1]);
        assert_status(bp_optimizer_step(o, &f.net), BP_OK);
        assert_status(bp_optimizer_step(fresh, &g.net), BP_OK);
        assert_memory_equal(f.params, g.params, sizeof f.params);
        assert_int_equal(bp_optimizer_step_count(o), 2);
        bp_optimizer_free(fresh);
        bp_optimizer_free(o);
    }
    assert_status(bp_optimizer_reset_settings(NULL), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_last_error(), "bp_optimizer_reset_settings: invalid optimizer"));
}

/* ------------------------------------------------------------------------------------------
 * Settings
 * ----------------------------------------------------------------------------------------*/

static void set_get_round_trips_every_key(void **state)
{
    (void)state;
    for (size_t k = 0; k < NKINDS; k++) {
        bp_optimizer *o;
        assert_status(bp_optimizer_create(&o, all_kinds[k]), BP_OK);
        for (size_t j = 0; j < NKEYS; j++) {
            const int key = all_keys[j];
            if (!applies(all_kinds[k], key)) continue;
            double lo, hi, v;
            assert_status(bp_optimizer_param_bounds(key, &lo, &hi), BP_OK);
            const double mid = is_flag(key) ? 1.0 : lo + 0.37 * (hi - lo);
            const double tries[] = {mid, lo, hi, mid};
            for (size_t i = 0; i < 4; i++) {
                assert_status(bp_optimizer_set(o, key, tries[i]), BP_OK);
                assert_status(bp_optimizer_get(o, key, &v), BP_OK);
                assert_true(v == tries[i]);
            }
        }
        bp_optimizer_free(o);
    }
}

static void set_rejects_out_of_range_and_nan_keeping_value(void **state)
{
    (void)state;
    for (size_t k = 0; k < NKINDS; k++) {
        bp_optimizer *o;
        assert_status(bp_optimizer_create(&o, all_kinds[k]), BP_OK);
        for (size_t j = 0; j < NKEYS; j++) {
            const int key = all_keys[j];
            if (!applies(all_kinds[k], key)) continue;
            double lo, hi, before, after;
            assert_status(bp_optimizer_param_bounds(key, &lo, &hi), BP_OK);
            assert_status(bp_optimizer_get(o, key, &before), BP_OK);
            const double inf = (double)INFINITY, nan = (double)NAN;
            const double bad[] = {
                nextafter(lo, -inf),     nextafter(hi, inf), lo - 1.0, hi + 1.0, nan, inf, -inf,
                is_flag(key) ? 0.5 : nan};
            for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                assert_status(bp_optimizer_set(o, key, bad[i]), BP_ERR_OUT_OF_RANGE);
                assert_status(bp_optimizer_get(o, key, &after), BP_OK);
                assert_true(after == before);
            }
        }
        bp_optimizer_free(o);
    }
}

static void set_messages_name_key_value_and_range(void **state)
{
    (void)state;
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_SGD), BP_OK);
    assert_status(bp_optimizer_set(o, BP_OPT_MOMENTUM, 1.5), BP_ERR_OUT_OF_RANGE);
    assert_non_null(strstr(bp_optimizer_last_error(o), "BP_OPT_MOMENTUM = 1.5 is outside [0, 1)"));
    assert_non_null(strstr(bp_last_error(), "BP_OPT_MOMENTUM = 1.5 is outside [0, 1)"));
    assert_status(bp_optimizer_set(o, BP_OPT_LEARNING_RATE, (double)NAN), BP_ERR_OUT_OF_RANGE);
    assert_non_null(strstr(bp_optimizer_last_error(o), "BP_OPT_LEARNING_RATE = nan"));
    assert_status(bp_optimizer_set(o, BP_OPT_NESTEROV, 2.0), BP_ERR_OUT_OF_RANGE);
    assert_non_null(strstr(bp_optimizer_last_error(o), "BP_OPT_NESTEROV = 2 must be 0 or 1"));
    bp_optimizer_free(o);
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_IRPROP_MINUS), BP_OK);
    assert_status(bp_optimizer_set(o, BP_OPT_RPROP_ETA_MINUS, 0.0), BP_ERR_OUT_OF_RANGE);
    assert_non_null(
        strstr(bp_optimizer_last_error(o), "BP_OPT_RPROP_ETA_MINUS = 0 is outside (0, 1]"));
    bp_optimizer_free(o);
}

static void unknown_key_is_invalid_arg(void **state)
{
    (void)state;
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_ADAM), BP_OK);
    const int bad[] = {0, 99, 117, 200, 300, -100};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = 42.0, lo = 7.0, hi = 8.0;
        assert_status(bp_optimizer_set(o, bad[i], 0.5), BP_ERR_INVALID_ARG);
        assert_non_null(strstr(bp_optimizer_last_error(o), "unknown optimizer key"));
        assert_status(bp_optimizer_get(o, bad[i], &v), BP_ERR_INVALID_ARG);
        assert_true(v == 42.0);
        assert_status(bp_optimizer_param_bounds(bad[i], &lo, &hi), BP_ERR_INVALID_ARG);
        assert_true(lo == 7.0 && hi == 8.0);
    }
    bp_optimizer_free(o);
}

static void param_bounds_report_open_bounds_as_nearest_inside(void **state)
{
    (void)state;
    double lo, hi;
    assert_status(bp_optimizer_param_bounds(BP_OPT_MOMENTUM, &lo, &hi), BP_OK);
    assert_true(lo == 0.0 && hi == nextafter(1.0, 0.0) && hi < 1.0);
    assert_status(bp_optimizer_param_bounds(BP_OPT_BETA2, &lo, &hi), BP_OK);
    assert_true(lo == 0.0 && hi == nextafter(1.0, 0.0));
    assert_status(bp_optimizer_param_bounds(BP_OPT_RPROP_ETA_MINUS, &lo, &hi), BP_OK);
    assert_true(lo == nextafter(0.0, 1.0) && lo > 0.0 && hi == 1.0);
    assert_status(bp_optimizer_param_bounds(BP_OPT_LEARNING_RATE, &lo, &hi), BP_OK);
    assert_true(lo == 0.0 && hi == 1e3);
    assert_status(bp_optimizer_param_bounds(BP_OPT_RPROP_ETA_PLUS, &lo, &hi), BP_OK);
    assert_true(lo == 1.0 && hi == 10.0);
    assert_status(bp_optimizer_param_bounds(BP_OPT_RPROP_DELTA_MAX, &lo, &hi), BP_OK);
    assert_true(lo == 0.0 && hi == 1e6);
    assert_status(bp_optimizer_param_bounds(BP_OPT_AMSGRAD, &lo, &hi), BP_OK);
    assert_true(lo == 0.0 && hi == 1.0);
    assert_status(bp_optimizer_param_bounds(BP_OPT_MOMENTUM, NULL, &hi), BP_ERR_INVALID_ARG);
    assert_status(bp_optimizer_param_bounds(BP_OPT_MOMENTUM, &lo, NULL), BP_ERR_INVALID_ARG);
}

static void reset_keeps_settings_and_clears_state(void **state)
{
    (void)state;
    fake_net f;
    fake_net_small(&f);
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_set(o, BP_OPT_LEARNING_RATE, 0.05), BP_OK);
    memcpy(f.params, small_p0, sizeof small_p0);
    memcpy(f.grads, small_g[0], sizeof small_g[0]);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    assert_int_equal(bp_optimizer_step_count(o), 2);
    assert_status(bp_optimizer_reset(o), BP_OK);
    assert_int_equal(bp_optimizer_step_count(o), 0);
    double v;
    assert_status(bp_optimizer_get(o, BP_OPT_LEARNING_RATE, &v), BP_OK);
    assert_true(v == 0.05);
    /* After reset, the first step is a first step again (bias correction t = 1): Adam's
     * first update is lr * sign(g) up to eps. */
    float before[NSMALL];
    memcpy(before, f.params, sizeof before);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    for (size_t i = 0; i < NSMALL; i++)
        assert_close(f.params[i], (double)before[i] - 0.05 * (small_g[0][i] > 0 ? 1.0 : -1.0), 1e-6,
                     1e-7);
    bp_optimizer_free(o);
}

/* ------------------------------------------------------------------------------------------
 * Binding, frozen layers, non-finite gradients, allocation failure
 * ----------------------------------------------------------------------------------------*/

static void step_refuses_other_shape_until_reset(void **state)
{
    (void)state;
    fake_net a, b, c, a2;
    fake_net_small(&a);
    fake_net_small(&a2);
    static const size_t bw[] = {4, 3}, bb[] = {1, 1}; /* 9 parameters */
    fake_net_init(&b, 2, bw, bb);
    static const size_t cw[] = {1, 2}, cb[] = {1, 1}; /* 5 parameters, other split */
    fake_net_init(&c, 2, cw, cb);
    for (size_t i = 0; i < MAXP; i++) {
        a.grads[i] = b.grads[i] = c.grads[i] = a2.grads[i] = 0.5f;
        a.params[i] = b.params[i] = c.params[i] = a2.params[i] = 1.0f;
    }
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_step(o, &a.net), BP_OK);

    float saved[MAXP];
    memcpy(saved, b.params, sizeof saved);
    assert_status(bp__optimizer_validate_for(o, &b.net), BP_ERR_STATE);
    assert_status(bp_optimizer_step(o, &b.net), BP_ERR_STATE);
    assert_string_equal(bp_optimizer_last_error(o),
                        "optimizer state is for a net with 5 parameters in 2 layers; this net "
                        "has 9 in 2 layers; call bp_optimizer_reset()");
    assert_memory_equal(saved, b.params, sizeof saved);
    assert_int_equal(bp_optimizer_step_count(o), 1);

    memcpy(saved, c.params, sizeof saved);
    assert_status(bp_optimizer_step(o, &c.net), BP_ERR_STATE);
    assert_non_null(strstr(bp_optimizer_last_error(o), "of other sizes"));
    assert_memory_equal(saved, c.params, sizeof saved);

    /* Another net object of the same shape is fine (e.g. a clone). */
    assert_status(bp__optimizer_validate_for(o, &a2.net), BP_OK);
    assert_status(bp_optimizer_step(o, &a2.net), BP_OK);
    assert_int_equal(bp_optimizer_step_count(o), 2);

    assert_status(bp_optimizer_reset(o), BP_OK);
    assert_status(bp__optimizer_validate_for(o, &b.net), BP_OK);
    assert_status(bp_optimizer_step(o, &b.net), BP_OK);
    assert_int_equal(bp_optimizer_step_count(o), 1);
    assert_int_equal(bp__optimizer_state_floats(o), 3 * 9);
    assert_status(bp_optimizer_step(o, &a.net), BP_ERR_STATE);
    bp_optimizer_free(o);
}

static void frozen_layer_and_its_state_are_untouched(void **state)
{
    (void)state;
    fake_net f;
    fake_net_small(&f);
    memcpy(f.params, small_p0, sizeof small_p0);
    bp__layer_set_trainable(&f.layer[0], 0.0);
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_ADAM), BP_OK);
    for (int t = 0; t < STEPS; t++) {
        memcpy(f.grads, small_g[t], sizeof small_g[t]);
        assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    }
    assert_memory_equal(f.params, small_p0, 3 * sizeof(float)); /* layer 0 */
    assert_true(f.params[3] != small_p0[3] && f.params[4] != small_p0[4]);
    const size_t np = f.net.nparams;
    for (size_t s = 0; s < bp__optimizer_state_slots(BP_OPTIMIZER_ADAM); s++)
        for (size_t i = 0; i < 3; i++)
            assert_true(o->state[s * np + i] == 0.0f);

    /* Unfrozen, it moves. */
    bp__layer_set_trainable(&f.layer[0], 1.0);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    for (size_t i = 0; i < 3; i++)
        assert_true(f.params[i] != small_p0[i]);

    /* Every layer frozen: a successful step that changes nothing. */
    bp__layer_set_trainable(&f.layer[0], 0.0);
    bp__layer_set_trainable(&f.layer[1], 0.0);
    float before[NSMALL];
    memcpy(before, f.params, sizeof before);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    assert_memory_equal(before, f.params, sizeof before);
    bp_optimizer_free(o);
}

static void nonfinite_gradient_is_refused_before_any_update(void **state)
{
    (void)state;
    fake_net f;
    fake_net_small(&f);
    memcpy(f.params, small_p0, sizeof small_p0);
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_RMSPROP), BP_OK);

    /* First step: NaN in layer 1 (the layer 0 segment is updated first if not checked). */
    memcpy(f.grads, small_g[0], sizeof small_g[0]);
    f.grads[4] = NAN;
    assert_status(bp_optimizer_step(o, &f.net), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_optimizer_last_error(o), "layer 1"));
    assert_non_null(strstr(bp_optimizer_last_error(o), "bias 0"));
    assert_memory_equal(f.params, small_p0, sizeof small_p0);
    assert_int_equal(bp_optimizer_step_count(o), 0);
    assert_int_equal(o->bound, 0);

    /* After a good step: +Inf in layer 0 leaves parameters and state as they were. */
    memcpy(f.grads, small_g[0], sizeof small_g[0]);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    float params[NSMALL], st[3 * NSMALL];
    memcpy(params, f.params, sizeof params);
    memcpy(st, o->state, sizeof st);
    f.grads[1] = INFINITY;
    assert_status(bp_optimizer_step(o, &f.net), BP_ERR_NONFINITE);
    assert_non_null(strstr(bp_optimizer_last_error(o), "layer 0: gradient of weight 1 is inf"));
    assert_memory_equal(params, f.params, sizeof params);
    assert_memory_equal(st, o->state, sizeof st);
    assert_int_equal(bp_optimizer_step_count(o), 1);

    /* A frozen layer's gradients are not used, so they are not checked. */
    bp__layer_set_trainable(&f.layer[0], 0.0);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    assert_int_equal(bp_optimizer_step_count(o), 2);
    bp_optimizer_free(o);
}

static void step_count_increments_only_on_success(void **state)
{
    (void)state;
    fake_net f, other;
    fake_net_small(&f);
    static const size_t nw[] = {3}, nb[] = {1};
    fake_net_init(&other, 1, nw, nb);
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_SGD), BP_OK);
    memcpy(f.grads, small_g[0], sizeof small_g[0]);
    for (uint64_t t = 1; t <= 3; t++) {
        assert_status(bp_optimizer_step(o, &f.net), BP_OK);
        assert_int_equal(bp_optimizer_step_count(o), t);
    }
    f.grads[0] = NAN;
    assert_status(bp_optimizer_step(o, &f.net), BP_ERR_NONFINITE);
    assert_status(bp_optimizer_step(o, &other.net), BP_ERR_STATE);
    assert_status(bp_optimizer_step(o, NULL), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_optimizer_step_count(o), 3);
    bp_optimizer_free(o);
}

static void inconsistent_settings_are_refused_at_step(void **state)
{
    (void)state;
    fake_net f;
    fake_net_small(&f);
    memcpy(f.params, small_p0, sizeof small_p0);
    memcpy(f.grads, small_g[0], sizeof small_g[0]);
    bp_optimizer *o;

    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_SGD), BP_OK);
    assert_status(bp_optimizer_set(o, BP_OPT_NESTEROV, 1), BP_OK);
    assert_status(bp_optimizer_step(o, &f.net), BP_ERR_STATE); /* momentum 0 */
    assert_non_null(strstr(bp_optimizer_last_error(o), "Nesterov"));
    assert_status(bp_optimizer_set(o, BP_OPT_MOMENTUM, 0.9), BP_OK);
    assert_status(bp_optimizer_set(o, BP_OPT_DAMPENING, 0.1), BP_OK);
    assert_status(bp_optimizer_step(o, &f.net), BP_ERR_STATE);
    assert_status(bp_optimizer_set(o, BP_OPT_DAMPENING, 0), BP_OK);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    bp_optimizer_free(o);

    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_IRPROP_MINUS), BP_OK);
    assert_status(bp_optimizer_set(o, BP_OPT_RPROP_DELTA_MIN, 2), BP_OK);
    assert_status(bp_optimizer_set(o, BP_OPT_RPROP_DELTA_MAX, 1), BP_OK);
    float before[NSMALL];
    memcpy(before, f.params, sizeof before);
    assert_status(bp_optimizer_step(o, &f.net), BP_ERR_STATE);
    assert_non_null(strstr(bp_optimizer_last_error(o), "BP_OPT_RPROP_DELTA_MIN = 2 exceeds"));
    assert_memory_equal(before, f.params, sizeof before);
    bp_optimizer_free(o);

    /* A net without parameters. */
    fake_net empty;
    fake_net_init(&empty, 0, NULL, NULL);
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_ADAM), BP_OK);
    assert_status(bp_optimizer_step(o, &empty.net), BP_ERR_STATE);
    bp_optimizer_free(o);
}

/* The settings check and the scalars that depend on the settings alone are kept between steps
 * (optimizer.c, prepare): every change of a setting, and SGD's momentum buffer filling, must
 * reach the next step. */
static void settings_changed_between_steps_reach_the_next_step(void **state)
{
    (void)state;
    fake_net f;
    fake_net_small(&f);
    memcpy(f.params, small_p0, sizeof small_p0);
    memcpy(f.grads, small_g[0], sizeof small_g[0]);
    const float *g = small_g[0];
    float want[NSMALL], buf[NSMALL];
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_SGD), BP_OK);
    assert_status(bp_optimizer_set(o, BP_OPT_LEARNING_RATE, 0.1), BP_OK);
    memcpy(want, f.params, sizeof want);
    for (int step = 0; step < 2; step++) { /* the rate set before the second step applies */
        const float lr = step == 0 ? 0.1f : 0.5f;
        for (size_t i = 0; i < NSMALL; i++)
            want[i] -= lr * (g[i] + 0.0f * want[i]);
        assert_status(bp_optimizer_step(o, &f.net), BP_OK);
        assert_memory_equal(want, f.params, sizeof want);
        assert_status(bp_optimizer_set(o, BP_OPT_LEARNING_RATE, 0.5), BP_OK);
    }
    /* An inconsistent setting after good steps is refused, parameters untouched. */
    assert_status(bp_optimizer_set(o, BP_OPT_NESTEROV, 1), BP_OK);
    assert_status(bp_optimizer_step(o, &f.net), BP_ERR_STATE);
    assert_memory_equal(want, f.params, sizeof want);
    assert_status(bp_optimizer_set(o, BP_OPT_NESTEROV, 0), BP_OK);
    /* Momentum: the first step fills the buffer (buf = d), the later ones decay it. */
    assert_status(bp_optimizer_set(o, BP_OPT_MOMENTUM, 0.9), BP_OK);
    assert_status(bp_optimizer_set(o, BP_OPT_DAMPENING, 0.5), BP_OK);
    for (int step = 0; step < 3; step++) {
        const float a = step == 0 ? 0.0f : 0.9f, c = step == 0 ? 1.0f : 0.5f;
        for (size_t i = 0; i < NSMALL; i++) {
            const float d = g[i] + 0.0f * want[i];
            const float b = a * (step == 0 ? 0.0f : buf[i]) + c * d;
            buf[i] = b;
            want[i] -= 0.5f * (0.0f * d + 1.0f * b);
        }
        assert_status(bp_optimizer_step(o, &f.net), BP_OK);
        assert_memory_equal(want, f.params, sizeof want);
    }
    /* Back to the defaults (rate 0.01, no momentum). */
    assert_status(bp_optimizer_reset_settings(o), BP_OK);
    for (size_t i = 0; i < NSMALL; i++)
        want[i] -= 0.01f * (g[i] + 0.0f * want[i]);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    assert_memory_equal(want, f.params, sizeof want);
    bp_optimizer_free(o);
}

static void allocation_failure_leaves_everything_unchanged(void **state)
{
    (void)state;
    fake_net f, big;
    fake_net_small(&f);
    static const size_t nw[] = {20, 14}, nb[] = {4, 3};
    fake_net_init(&big, 2, nw, nb);
    memcpy(f.params, small_p0, sizeof small_p0);
    memcpy(f.grads, small_g[0], sizeof small_g[0]);
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_ADAM), BP_OK);
    bp_test_alloc ta = {.fail_at = 1};
    o->alloc.alloc = bp_test_alloc_fn;
    o->alloc.free = bp_test_free_fn;
    o->alloc.user = &ta;

    assert_status(bp_optimizer_step(o, &f.net), BP_ERR_NOMEM);
    assert_non_null(strstr(bp_optimizer_last_error(o), "out of memory"));
    assert_memory_equal(f.params, small_p0, sizeof small_p0);
    assert_int_equal(bp_optimizer_step_count(o), 0);
    assert_int_equal(o->bound, 0);

    /* The state is one allocation, made at the first step and reused after reset. */
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    assert_int_equal(ta.allocs, 1);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    assert_status(bp_optimizer_reset(o), BP_OK);
    assert_status(bp_optimizer_step(o, &f.net), BP_OK);
    assert_int_equal(ta.allocs, 1);
    assert_status(bp_optimizer_reset(o), BP_OK);
    assert_status(bp_optimizer_step(o, &big.net), BP_OK); /* larger: a new block */
    assert_int_equal(ta.allocs, 2);
    assert_int_equal(ta.live, 1);

    /* Hand the block back through the test allocator before freeing the handle. */
    bp__free_aligned(&o->alloc, o->state);
    o->state = NULL;
    o->state_cap = 0;
    o->bound = 0;
    o->alloc = bp__default_alloc;
    assert_int_equal(ta.live, 0);
    bp_optimizer_free(o);
}

/* ------------------------------------------------------------------------------------------
 * Invalid handles
 * ----------------------------------------------------------------------------------------*/

static void invalid_handles_are_rejected_by_every_function(void **state)
{
    (void)state;
    bp_optimizer wrong, zeroed; /* another kind's magic; a freed handle's zeroed magic */
    memset(&wrong, 0, sizeof wrong);
    memset(&zeroed, 0, sizeof zeroed);
    wrong.magic = BP__MAGIC_NET;
    wrong.kind = BP_OPTIMIZER_SGD;
    bp_optimizer *const bad[] = {NULL, &wrong, &zeroed};
    fake_net f;
    fake_net_small(&f);
    memcpy(f.params, small_p0, sizeof small_p0);
    for (size_t i = 0; i < 3; i++) {
        double v = 3.0;
        assert_ptr_equal(bp_optimizer_last_error(bad[i]), bp__invalid_handle_msg);
        assert_int_equal(bp_optimizer_kind(bad[i]), 0);
        assert_int_equal(bp_optimizer_step_count(bad[i]), 0);
        assert_status(bp_optimizer_set(bad[i], BP_OPT_LEARNING_RATE, 0.1), BP_ERR_INVALID_ARG);
        assert_status(bp_optimizer_get(bad[i], BP_OPT_LEARNING_RATE, &v), BP_ERR_INVALID_ARG);
        assert_true(v == 3.0);
        assert_status(bp_optimizer_step(bad[i], &f.net), BP_ERR_INVALID_ARG);
        assert_status(bp_optimizer_reset(bad[i]), BP_ERR_INVALID_ARG);
        assert_status(bp__optimizer_validate_for(bad[i], &f.net), BP_ERR_INVALID_ARG);
        assert_status(bp__optimizer_bind(bad[i], &f.net), BP_ERR_INVALID_ARG);
        bp_optimizer_free(bad[i]); /* no-op: must not free a stack object */
    }
    assert_int_equal(wrong.magic, BP__MAGIC_NET);
    assert_memory_equal(f.params, small_p0, sizeof small_p0);

    /* Valid optimizer, invalid net. */
    bp_optimizer *o;
    assert_status(bp_optimizer_create(&o, BP_OPTIMIZER_SGD), BP_OK);
    fake_net badnet;
    fake_net_small(&badnet);
    badnet.net.magic = BP__MAGIC_OPT;
    assert_status(bp_optimizer_step(o, NULL), BP_ERR_INVALID_ARG);
    assert_non_null(strstr(bp_optimizer_last_error(o), "invalid net handle"));
    assert_status(bp_optimizer_step(o, &badnet.net), BP_ERR_INVALID_ARG);
    assert_status(bp__optimizer_validate_for(o, NULL), BP_ERR_INVALID_ARG);
    assert_status(bp_optimizer_get(o, BP_OPT_LEARNING_RATE, NULL), BP_ERR_INVALID_ARG);
    assert_int_equal(bp_optimizer_step_count(o), 0);
    bp_optimizer_free(o);
    bp_optimizer_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(sgd_plain_matches_reference),
        bp_add_test(sgd_momentum_matches_reference),
        bp_add_test(sgd_dampening_matches_reference),
        bp_add_test(sgd_nesterov_matches_reference),
        bp_add_test(sgd_weight_decay_matches_reference),
        bp_add_test(adagrad_matches_reference),
        bp_add_test(rmsprop_plain_matches_reference),
        bp_add_test(rmsprop_momentum_matches_reference),
        bp_add_test(rmsprop_centered_matches_reference),
        bp_add_test(adam_matches_reference),
        bp_add_test(adam_amsgrad_matches_reference),
        bp_add_test(adamw_matches_reference),
        bp_add_test(adamax_matches_reference),
        bp_add_test(nadam_matches_reference),
        bp_add_test(irprop_minus_matches_reference),
        bp_add_test(irprop_minus_follows_sign_rules_on_small_case),
        bp_add_test(create_reports_kind),
        bp_add_test(create_rejects_unknown_kind_and_clears_out),
        bp_add_test(defaults_match_published_values),
        bp_add_test(keys_that_do_not_apply_are_rejected_naming_key_and_algorithm),
        bp_add_test(reset_settings_restores_defaults_and_keeps_state),
        bp_add_test(set_get_round_trips_every_key),
        bp_add_test(set_rejects_out_of_range_and_nan_keeping_value),
        bp_add_test(set_messages_name_key_value_and_range),
        bp_add_test(unknown_key_is_invalid_arg),
        bp_add_test(param_bounds_report_open_bounds_as_nearest_inside),
        bp_add_test(reset_keeps_settings_and_clears_state),
        bp_add_test(step_refuses_other_shape_until_reset),
        bp_add_test(frozen_layer_and_its_state_are_untouched),
        bp_add_test(nonfinite_gradient_is_refused_before_any_update),
        bp_add_test(step_count_increments_only_on_success),
        bp_add_test(inconsistent_settings_are_refused_at_step),
        bp_add_test(settings_changed_between_steps_reach_the_next_step),
        bp_add_test(allocation_failure_leaves_everything_unchanged),
        bp_add_test(invalid_handles_are_rejected_by_every_function),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
