/* optimizer.c -- the optimizer handle: settings, the table of algorithms, binding to a net's
 * shape, and the checkpoint section OPTM (docs/format.md). The step over the parameter arena
 * and its update guard are optimizer_step.c.
 *
 * Each algorithm is one row of the table `bp__opt_algos` below (optimizer_algo.h): its name, state
 * slots, the settings that apply with their defaults, the initial value of a slot, a settings
 * check, its per-step scalars, its update kernel (optimizer_kernels.c, where each rule is written
 * out) and what a checkpoint must validate of its state. Nothing else in the library switches on
 * the algorithm; docs/design.md "How to add an optimizer" is the checklist.
 *
 * The step counter t is per optimizer, not per layer: a layer frozen (trainable == 0) for
 * some steps keeps its state untouched and, once unfrozen, sees the global t's bias
 * corrections. Scalars (bias corrections, schedules) are computed once per step in double;
 * each layer's parameters are one contiguous segment updated by one float loop.
 */
#include "util.h"
#include "codec.h"
#include "workers.h"
#include "net.h"
#include "optimizer.h"
#include "optimizer_kernels.h"
#include "optimizer_algo.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Settings: names, bounds
 * ----------------------------------------------------------------------------------------*/

typedef struct key_info {
    const char *name;
    double lo, hi; /* nominal bounds */
    int lo_open;   /* lo excluded */
    int hi_open;   /* hi excluded */
    int flag;      /* 0/1 only */
    double held;   /* the value held (and written to checkpoints) by an algorithm the key does
                      not apply to */
} key_info;

static const key_info keys[BP__OPT_KEY_COUNT] = {
    {"BP_OPT_LEARNING_RATE", 0.0, 1e3, 0, 0, 0, 0.01},
    {"BP_OPT_MOMENTUM", 0.0, 1.0, 0, 1, 0, 0.0},
    {"BP_OPT_DAMPENING", 0.0, 1.0, 0, 0, 0, 0.0},
    {"BP_OPT_NESTEROV", 0.0, 1.0, 0, 0, 1, 0.0},
    {"BP_OPT_WEIGHT_DECAY", 0.0, 1e3, 0, 0, 0, 0.0},
    {"BP_OPT_BETA1", 0.0, 1.0, 0, 1, 0, 0.9},
    {"BP_OPT_BETA2", 0.0, 1.0, 0, 1, 0, 0.999},
    {"BP_OPT_EPSILON", 0.0, 1.0, 0, 0, 0, 1e-8},
    {"BP_OPT_AMSGRAD", 0.0, 1.0, 0, 0, 1, 0.0},
    {"BP_OPT_RHO", 0.0, 1.0, 0, 1, 0, 0.99},
    {"BP_OPT_CENTERED", 0.0, 1.0, 0, 0, 1, 0.0},
    {"BP_OPT_INITIAL_ACCUMULATOR", 0.0, 1e3, 0, 0, 0, 0.0},
    {"BP_OPT_RPROP_ETA_PLUS", 1.0, 10.0, 0, 0, 0, 1.2},
    {"BP_OPT_RPROP_ETA_MINUS", 0.0, 1.0, 1, 0, 0, 0.5},
    {"BP_OPT_RPROP_DELTA_INIT", 0.0, 1e3, 0, 0, 0, 0.1},
    {"BP_OPT_RPROP_DELTA_MIN", 0.0, 1e3, 0, 0, 0, 0.0},
    {"BP_OPT_RPROP_DELTA_MAX", 0.0, 1e6, 0, 0, 0, 50.0},
};

#define S(key) ((key)-BP__OPT_KEY_FIRST)

static int key_valid(int key)
{
    return key >= BP__OPT_KEY_FIRST && key < BP__OPT_KEY_FIRST + BP__OPT_KEY_COUNT;
}

/* Reported (inclusive) bounds: an open bound becomes the nearest double inside it. */
static void effective_bounds(int key, double *lo, double *hi)
{
    const key_info *k = &keys[S(key)];
    *lo = k->lo_open ? nextafter(k->lo, k->hi) : k->lo;
    *hi = k->hi_open ? nextafter(k->hi, k->lo) : k->hi;
}

/* BP_OK if @p value is within @p key's bounds, else BP_ERR_OUT_OF_RANGE (message in @p err,
 * which may be NULL, and bp_last_error()). */
static bp_status check_value(char *err, const char *place, int key, double value)
{
    const key_info *k = &keys[S(key)];
    if (k->flag) {
        if (!(value == 0.0 || value == 1.0))
            return bp__fail(err, BP_ERR_OUT_OF_RANGE, "%s: %s = %g must be 0 or 1", place, k->name,
                            value);
        return BP_OK;
    }
    double lo, hi;
    effective_bounds(key, &lo, &hi);
    if (!(value >= lo && value <= hi)) /* also rejects NaN */
        return bp__fail(err, BP_ERR_OUT_OF_RANGE, "%s: %s = %g is outside %c%g, %g%c", place,
                        k->name, value, k->lo_open ? '(' : '[', k->lo, k->hi,
                        k->hi_open ? ')' : ']');
    return BP_OK;
}

#define SET(o, key) BP__OPT_SET(o, key)

/* ------------------------------------------------------------------------------------------
 * Settings checks at each step
 * ----------------------------------------------------------------------------------------*/

static bp_status sgd_check(bp_optimizer *o)
{
    if (SET(o, BP_OPT_NESTEROV) != 0.0 &&
        (SET(o, BP_OPT_MOMENTUM) <= 0.0 || SET(o, BP_OPT_DAMPENING) != 0.0))
        return bp__fail(o->err, BP_ERR_STATE,
                        "optimizer: SGD Nesterov momentum needs BP_OPT_MOMENTUM > 0 (is %g) and "
                        "BP_OPT_DAMPENING = 0 (is %g)",
                        SET(o, BP_OPT_MOMENTUM), SET(o, BP_OPT_DAMPENING));
    return BP_OK;
}

static bp_status irprop_check(bp_optimizer *o)
{
    if (SET(o, BP_OPT_RPROP_DELTA_MIN) > SET(o, BP_OPT_RPROP_DELTA_MAX))
        return bp__fail(o->err, BP_ERR_STATE,
                        "optimizer: iRprop- BP_OPT_RPROP_DELTA_MIN = %g exceeds "
                        "BP_OPT_RPROP_DELTA_MAX = %g",
                        SET(o, BP_OPT_RPROP_DELTA_MIN), SET(o, BP_OPT_RPROP_DELTA_MAX));
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * The algorithms: one row each
 * ----------------------------------------------------------------------------------------*/

#define LR  BP_OPT_LEARNING_RATE
#define WD  BP_OPT_WEIGHT_DECAY
#define EPS BP_OPT_EPSILON

/* One row per algorithm, one field per line. */
/* clang-format off */
const bp__opt_algo bp__opt_algos[] = {
    [BP_OPTIMIZER_SGD] = {
        .name = "SGD",
        .nslots = 1, /* buf */
        .keys = {{LR, 0.01}, {BP_OPT_MOMENTUM, 0.0}, {BP_OPT_DAMPENING, 0.0},
                 {BP_OPT_NESTEROV, 0.0}, {WD, 0.0}},
        .check = sgd_check,
        .scalars = bp__opt_sgd_scalars,
        .update = bp__opt_sgd_update,
        .bound = bp__opt_sgd_bound,
        .stepped = bp__opt_sgd_stepped,
    },
    [BP_OPTIMIZER_ADAGRAD] = {
        .name = "Adagrad",
        .nslots = 1, /* sum */
        .keys = {{LR, 0.01}, {WD, 0.0}, {EPS, 1e-10}, {BP_OPT_INITIAL_ACCUMULATOR, 0.0}},
        .init_slot = 0,
        .init_key = BP_OPT_INITIAL_ACCUMULATOR,
        .update = bp__opt_adagrad_update,
        .bound = bp__opt_adagrad_bound,
        .nonneg = 1u, /* sum */
    },
    [BP_OPTIMIZER_RMSPROP] = {
        .name = "RMSprop",
        .nslots = 3, /* sq, ga, buf */
        .keys = {{LR, 0.01}, {BP_OPT_MOMENTUM, 0.0}, {WD, 0.0}, {EPS, 1e-8}, {BP_OPT_RHO, 0.99},
                 {BP_OPT_CENTERED, 0.0}},
        .update = bp__opt_rmsprop_update,
        .bound = bp__opt_rmsprop_bound,
        .nonneg = 1u, /* sq */
    },
    [BP_OPTIMIZER_ADAM] = {
        .name = "Adam",
        .nslots = 3, /* m, v, vmax */
        .keys = {{LR, 0.001}, {WD, 0.0}, {BP_OPT_BETA1, 0.9}, {BP_OPT_BETA2, 0.999},
                 {EPS, 1e-8}, {BP_OPT_AMSGRAD, 0.0}},
        .scalars = bp__opt_adam_scalars,
        .per_step = 1,
        .update = bp__opt_adam_update,
        .bound = bp__opt_adam_bound,
        .nonneg = 6u, /* v, vmax */
    },
    [BP_OPTIMIZER_ADAMW] = {
        .name = "AdamW",
        .nslots = 3, /* m, v, vmax */
        .keys = {{LR, 0.001}, {WD, 0.01}, {BP_OPT_BETA1, 0.9}, {BP_OPT_BETA2, 0.999},
                 {EPS, 1e-8}, {BP_OPT_AMSGRAD, 0.0}},
        .scalars = bp__opt_adamw_scalars,
        .per_step = 1,
        .update = bp__opt_adam_update,
        .bound = bp__opt_adam_bound,
        .nonneg = 6u, /* v, vmax */
    },
    [BP_OPTIMIZER_ADAMAX] = {
        .name = "Adamax",
        .nslots = 2, /* m, u */
        .keys = {{LR, 0.002}, {WD, 0.0}, {BP_OPT_BETA1, 0.9}, {BP_OPT_BETA2, 0.999},
                 {EPS, 1e-8}},
        .scalars = bp__opt_adamax_scalars,
        .per_step = 1,
        .update = bp__opt_adamax_update,
        .bound = bp__opt_adamax_bound,
        .nonneg = 2u, /* u */
    },
    [BP_OPTIMIZER_NADAM] = {
        .name = "NAdam",
        .nslots = 2, /* m, v */
        .keys = {{LR, 0.001}, {WD, 0.0}, {BP_OPT_BETA1, 0.9}, {BP_OPT_BETA2, 0.999},
                 {EPS, 1e-8}},
        .scalars = bp__opt_nadam_scalars,
        .per_step = 1,
        .update = bp__opt_nadam_update,
        .bound = bp__opt_nadam_bound,
        .stepped = bp__opt_nadam_stepped,
        .nonneg = 2u, /* v */
    },
    [BP_OPTIMIZER_IRPROP_MINUS] = {
        .name = "iRprop-",
        .nslots = 2, /* prev, delta */
        .keys = {{BP_OPT_RPROP_ETA_PLUS, 1.2}, {BP_OPT_RPROP_ETA_MINUS, 0.5},
                 {BP_OPT_RPROP_DELTA_INIT, 0.1}, {BP_OPT_RPROP_DELTA_MIN, 0.0},
                 {BP_OPT_RPROP_DELTA_MAX, 50.0}},
        .init_slot = 1,
        .init_key = BP_OPT_RPROP_DELTA_INIT,
        .check = irprop_check,
        .update = bp__opt_irprop_update,
        .bound = bp__opt_irprop_bound,
        .nonneg = 2u, /* delta */
    },
};
/* clang-format on */

#undef LR
#undef WD
#undef EPS

#define KIND_LAST ((int)(sizeof bp__opt_algos / sizeof bp__opt_algos[0]) - 1)

static int kind_valid(int kind)
{
    return kind >= 1 && kind <= KIND_LAST && bp__opt_algos[kind].name != NULL;
}

/* Does setting @p key apply to algorithm @p a? */
static int applies(const bp__opt_algo *a, int key)
{
    for (size_t i = 0; i < OPT_MAX_KEYS && a->keys[i].key != 0; i++)
        if (a->keys[i].key == key) return 1;
    return 0;
}

/* Every setting back to the algorithm's default (held values for the keys that do not
 * apply). */
static void set_defaults(bp_optimizer *o)
{
    const bp__opt_algo *a = bp__opt_algo_of(o);
    for (size_t k = 0; k < BP__OPT_KEY_COUNT; k++)
        o->set[k] = keys[k].held;
    for (size_t i = 0; i < OPT_MAX_KEYS && a->keys[i].key != 0; i++)
        o->set[S(a->keys[i].key)] = a->keys[i].def;
    o->ready = 0;
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
                        "bp_optimizer_create: unknown optimizer kind %d (expected %d .. %d)", kind,
                        1, KIND_LAST);
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
    bp__free_aligned(&a, opt->undo);
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

/* BP_OK if @p key is a setting of @p o's algorithm, else BP_ERR_INVALID_ARG naming both. */
static bp_status check_key(const bp_optimizer *o, char *err, const char *place, int key)
{
    if (!key_valid(key)) return unknown_key(err, place, key);
    if (!applies(bp__opt_algo_of(o), key))
        return bp__fail(err, BP_ERR_INVALID_ARG, "%s: %s does not apply to %s", place,
                        keys[S(key)].name, bp__opt_algo_of(o)->name);
    return BP_OK;
}

bp_status bp_optimizer_set(bp_optimizer *opt, int key, double value)
{
    BP__OPT_CHECK(opt, "bp_optimizer_set");
    BP_CHECK(check_key(opt, opt->err, "bp_optimizer_set", key));
    BP_CHECK(check_value(opt->err, "bp_optimizer_set", key, value));
    opt->set[S(key)] = value;
    opt->ready = 0;
    return BP_OK;
}

bp_status bp_optimizer_get(const bp_optimizer *opt, int key, double *value)
{
    BP__OPT_CHECK(opt, "bp_optimizer_get");
    /* opt is const: report through bp_last_error() only. */
    BP_CHECK(check_key(opt, NULL, "bp_optimizer_get", key));
    if (value == NULL) return bp__fail(NULL, BP_ERR_INVALID_ARG, "bp_optimizer_get: value is NULL");
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

bp_status bp_optimizer_reset_settings(bp_optimizer *opt)
{
    BP__OPT_CHECK(opt, "bp_optimizer_reset_settings");
    set_defaults(opt);
    return BP_OK;
}

double bp__optimizer_rate(const bp_optimizer *opt)
{
    return SET(opt, BP_OPT_LEARNING_RATE);
}

bp_status bp__optimizer_set_rate(bp_optimizer *opt, double lr)
{
    BP_CHECK(check_value(opt->err, "optimizer", BP_OPT_LEARNING_RATE, lr));
    SET(opt, BP_OPT_LEARNING_RATE) = lr;
    opt->ready = 0;
    return BP_OK;
}

bp_status bp_optimizer_reset(bp_optimizer *opt)
{
    BP__OPT_CHECK(opt, "bp_optimizer_reset");
    /* The block is kept for reuse by the next bind; its contents are re-initialised there. */
    opt->bound = 0;
    opt->bound_nparams = 0;
    opt->bound_nlayers = 0;
    opt->bound_hash = 0;
    opt->steps = 0;
    opt->sgd_buf_ready = 0;
    opt->nadam_mu_product = 1.0;
    opt->ready = 0;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Binding to a net's shape
 * ----------------------------------------------------------------------------------------*/

size_t bp__optimizer_state_slots(int kind)
{
    return kind_valid(kind) ? bp__opt_algos[kind].nslots : 0;
}

size_t bp__optimizer_state_floats(const bp_optimizer *opt)
{
    if (!bp__optimizer_ok(opt) || !opt->bound) return 0;
    return bp__opt_algo_of(opt)->nslots * opt->bound_nparams;
}

static uint64_t fnv1a(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xffu;
        h *= 0x100000001b3u;
    }
    return h;
}

uint64_t bp__optimizer_shape_hash_layer(uint64_t h, const bp_layer *l)
{
    h = fnv1a(h, (uint64_t)l->param_off);
    h = fnv1a(h, (uint64_t)l->nweights);
    return fnv1a(h, (uint64_t)l->nbiases);
}

uint64_t bp__optimizer_shape_hash(const bp_net *net)
{
    /* 0 for no layers, then folded layer by layer: bp__net_append_layer keeps it in O(1) per
     * layer (the counts are compared beside it, see bound_to). */
    uint64_t h = 0;
    for (size_t i = 0; i < net->nlayers; i++)
        h = bp__optimizer_shape_hash_layer(h, net->layers[i]);
    return h;
}

/* Is @p opt's state for a net of @p net's shape (given its hash)? */
static int bound_to(const bp_optimizer *opt, const bp_net *net, uint64_t hash)
{
    return opt->bound_nparams == net->nparams && opt->bound_nlayers == net->nlayers &&
           opt->bound_hash == hash;
}

/* bp__optimizer_validate_for's full checks, with their messages. */
static bp_status validate_slow(bp_optimizer *opt, const bp_net *net)
{
    if (!bp__optimizer_ok(opt))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "optimizer: invalid optimizer handle");
    if (!bp__net_ok(net))
        return bp__fail(opt->err, BP_ERR_INVALID_ARG, "optimizer: invalid net handle");
    if (net->nlayers == 0 || net->nparams == 0)
        return bp__fail(opt->err, BP_ERR_STATE, "optimizer: the net has no parameters to update");
    if (!opt->ready) BP_CHECK(bp__optimizer_prepare(opt));
    if (opt->bound && !bound_to(opt, net, net->shape_hash)) {
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

bp_status bp__optimizer_validate_for(bp_optimizer *opt, const bp_net *net)
{
    /* The steady state of a training loop (settings checked since they last changed, state
     * bound to this shape): a few compares; anything else takes the full checks. A bound
     * optimizer's net has parameters (bind and the checkpoint loader refuse a net without). */
    if (BP__LIKELY(bp__optimizer_ok(opt) && bp__net_ok(net) && opt->ready && opt->bound &&
                   bound_to(opt, net, net->shape_hash)))
        return BP_OK;
    return validate_slow(opt, net);
}

bp_status bp__optimizer_check_save(const bp_optimizer *opt, const bp_net *net, const char *fn)
{
    BP__OPT_CHECK(opt, fn);
    if (opt->bound && !bound_to(opt, net, bp__optimizer_shape_hash(net)))
        return bp__fail(NULL, BP_ERR_STATE,
                        "%s: the optimizer's state is for a net with %zu "
                        "parameters in %zu layers, not this one (%zu in %zu)",
                        fn, opt->bound_nparams, opt->bound_nlayers, net->nparams, net->nlayers);
    /* What the checkpoint loader would refuse is not written (a save over a good file would
     * destroy it): every state float finite, the squared-gradient slots non-negative. */
    if (opt->bound) {
        const bp__opt_algo *a = bp__opt_algo_of(opt);
        const size_t np = opt->bound_nparams, ns = a->nslots * np;
        for (size_t i = 0; i < ns; i++) {
            const float v = opt->state[i];
            if (!isfinite(v) || (v < 0.0f && (a->nonneg >> (i / np) & 1u)))
                return bp__fail(NULL, BP_ERR_NONFINITE,
                                "%s: the optimizer's state slot %zu for parameter %zu is %g: a "
                                "checkpoint holding it could not be loaded; nothing written",
                                fn, i / np, i % np, (double)v);
        }
    }
    return BP_OK;
}

static void fill(float *restrict v, size_t n, float value)
{
    for (size_t i = 0; i < n; i++)
        v[i] = value;
}

bp_status bp__optimizer_bind(bp_optimizer *opt, const bp_net *net)
{
    if (!bp__optimizer_ok(opt))
        return bp__fail(NULL, BP_ERR_INVALID_ARG, "optimizer: invalid optimizer handle");
    if (!bp__net_ok(net))
        return bp__fail(opt->err, BP_ERR_INVALID_ARG, "optimizer: invalid net handle");
    const bp__opt_algo *a = bp__opt_algo_of(opt);
    size_t floats, bytes;
    if (bp__mul_size(a->nslots, net->nparams, &floats) != 0 ||
        bp__mul_size(floats, sizeof(float), &bytes) != 0)
        return bp__fail(opt->err, BP_ERR_NOMEM,
                        "optimizer: state for %zu parameters overflows size_t", net->nparams);
    if (floats > opt->state_cap || opt->state == NULL) {
        float *block = bp__malloc_aligned(&opt->alloc, bytes);
        if (block == NULL)
            return bp__fail(opt->err, BP_ERR_NOMEM,
                            "optimizer: out of memory for %s state (%zu bytes for %zu "
                            "parameters)",
                            a->name, bytes, net->nparams);
        bp__free_aligned(&opt->alloc, opt->state);
        opt->state = block;
        opt->state_cap = floats;
    }
    /* Initial values: zeros, except the slot the algorithm starts at a setting. */
    const size_t np = net->nparams;
    memset(opt->state, 0, bytes);
    if (a->init_key != 0)
        fill(opt->state + (size_t)a->init_slot * np, np, (float)opt->set[S(a->init_key)]);
    for (size_t i = 0; i < BP__OPT_MAX_SLOTS; i++)
        opt->bnd.s[i] = 0.0;
    if (a->init_key != 0) opt->bnd.s[a->init_slot] = fabs((double)(float)opt->set[S(a->init_key)]);
    opt->s_known = 1;
    opt->bound = 1;
    opt->bound_nparams = np;
    opt->bound_nlayers = net->nlayers;
    opt->bound_hash = net->shape_hash;
    opt->steps = 0;
    opt->sgd_buf_ready = 0;
    opt->nadam_mu_product = 1.0;
    opt->ready = 0;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * The scalars of the settings (the step itself: optimizer_step.c)
 * ----------------------------------------------------------------------------------------*/

/* The per-step work that depends on the settings alone, done once after they change: the
 * algorithm's settings check, then the common scalars and (unless they change at every step)
 * the algorithm's own, kept in o->k. BP_ERR_STATE (message in o->err) when the check fails. */
bp_status bp__optimizer_prepare(bp_optimizer *o)
{
    const bp__opt_algo *a = bp__opt_algo_of(o);
    if (a->check != NULL) BP_CHECK(a->check(o));
    bp__opt_scalars *k = &o->k;
    const double b1 = BP__OPT_SET(o, BP_OPT_BETA1), b2 = BP__OPT_SET(o, BP_OPT_BETA2);
    memset(k, 0, sizeof *k);
    k->lr = (float)BP__OPT_SET(o, BP_OPT_LEARNING_RATE);
    k->wd = (float)BP__OPT_SET(o, BP_OPT_WEIGHT_DECAY);
    k->mom = (float)BP__OPT_SET(o, BP_OPT_MOMENTUM);
    k->b1 = (float)b1;
    k->b2 = (float)b2;
    k->eps = (float)BP__OPT_SET(o, BP_OPT_EPSILON);
    k->c1 = (float)(1.0 - b1);
    k->c2 = (float)(1.0 - b2);
    k->rho = (float)BP__OPT_SET(o, BP_OPT_RHO);
    k->c_rho = (float)(1.0 - BP__OPT_SET(o, BP_OPT_RHO));
    if (a->scalars != NULL && !a->per_step) a->scalars(o, 0, k);
    o->ready = 1;
    return BP_OK;
}

/* ------------------------------------------------------------------------------------------
 * Checkpoint section OPTM (docs/format.md)
 * ----------------------------------------------------------------------------------------*/

#define OPT_MAX_SETTINGS 256u

void bp__optimizer_encode(bp__wr *w, const bp_optimizer *opt)
{
    bp__w_u32(w, (uint32_t)opt->kind);
    bp__w_u32(w, BP__OPT_KEY_COUNT); /* every key, held values included */
    for (uint32_t k = 0; k < BP__OPT_KEY_COUNT; k++) {
        bp__w_u32(w, BP__OPT_KEY_FIRST + k);
        bp__w_f64(w, opt->set[k]);
    }
    bp__w_u64(w, opt->steps);
    bp__w_u32(w, (uint32_t)opt->bound);
    bp__w_u32(w, (uint32_t)opt->sgd_buf_ready);
    bp__w_f64(w, opt->nadam_mu_product);
    const size_t ns = bp__optimizer_state_floats(opt);
    bp__w_u64(w, ns);
    bp__w_f32s(w, opt->state, ns);
}

/* bp__optimizer_decode's work; on failure the caller frees *out. */
static bp_status decode(bp_optimizer **out, const bp__alloc *alloc, const bp_net *net, bp__rd *r)
{
    const uint32_t kind = bp__r_u32(r), nset = bp__r_u32(r);
    if (r->short_read) return bp__r_truncated();
    if (nset > OPT_MAX_SETTINGS)
        return bp__fail(NULL, BP_ERR_FORMAT, "%lu settings (at most %u)", (unsigned long)nset,
                        OPT_MAX_SETTINGS);
    BP_CHECK(bp__r_need(r, nset, 12, "settings"));
    if (kind > (uint32_t)KIND_LAST || !kind_valid((int)kind))
        return bp__fail(NULL, BP_ERR_VERSION,
                        "unknown optimizer kind %lu (written by a newer library?)",
                        (unsigned long)kind);
    BP_CHECK(bp__optimizer_create_with(out, (int)kind, alloc));
    bp_optimizer *opt = *out;
    const bp__opt_algo *a = bp__opt_algo_of(opt);
    for (uint32_t k = 0; k < nset; k++) {
        const uint32_t key = bp__r_u32(r);
        const double value = bp__r_f64(r);
        if (key < BP__OPT_KEY_FIRST || key >= BP__OPT_KEY_FIRST + BP__OPT_KEY_COUNT)
            return bp__fail(NULL, BP_ERR_VERSION,
                            "unknown optimizer setting %lu (written by a newer library?)",
                            (unsigned long)key);
        BP_CHECK(check_value(NULL, "optimizer", (int)key, value));
        /* A key that does not apply keeps its held value: writers before 0.2 stored
         * whatever bp_optimizer_set() had accepted there, and no step ever read it. */
        if (applies(a, (int)key)) opt->set[S(key)] = value;
    }
    opt->ready = 0;
    const uint64_t steps = bp__r_u64(r);
    const uint32_t bound = bp__r_u32(r), ready = bp__r_u32(r);
    const double mu = bp__r_f64(r);
    const uint64_t ns = bp__r_u64(r);
    if (r->short_read) return bp__r_truncated();
    if (bound > 1 || ready > 1 || !(mu > 0.0 && mu <= 1.0))
        return bp__fail(NULL, BP_ERR_FORMAT,
                        "bound %lu, momentum flag %lu or NAdam product %g out of range",
                        (unsigned long)bound, (unsigned long)ready, mu);
    if (!bound) {
        if (ns != 0 || steps != 0 || ready)
            return bp__fail(NULL, BP_ERR_FORMAT,
                            "an unbound optimizer with %llu steps and %llu state floats",
                            (unsigned long long)steps, (unsigned long long)ns);
        return BP_OK;
    }
    if (net->nparams == 0)
        return bp__fail(NULL, BP_ERR_FORMAT, "optimizer state for a net without parameters");
    const size_t np = net->nparams;
    if (ns != (uint64_t)a->nslots * np)
        return bp__fail(NULL, BP_ERR_FORMAT, "%llu state floats, expected %zu x %zu",
                        (unsigned long long)ns, a->nslots, np);
    BP_CHECK(bp__r_need(r, ns, 4, "state floats"));
    BP_CHECK(bp__optimizer_bind(opt, net));
    bp__r_f32s(r, opt->state, (size_t)ns);
    for (size_t i = 0; i < (size_t)ns; i++) {
        const float v = opt->state[i];
        const size_t slot = i / np;
        if (!isfinite(v) || (v < 0.0f && (a->nonneg >> slot & 1u)))
            return bp__fail(NULL, BP_ERR_FORMAT, "state slot %zu, parameter %zu is %g", slot,
                            i % np, (double)v);
    }
    opt->s_known = 0; /* the update guard measures the loaded state */
    opt->steps = steps;
    opt->sgd_buf_ready = (int)ready;
    opt->nadam_mu_product = mu;
    opt->ready = 0;
    return BP_OK;
}

bp_status bp__optimizer_decode(bp_optimizer **out, const bp__alloc *alloc, const bp_net *net,
                               bp__rd *r)
{
    *out = NULL;
    const bp_status s = decode(out, alloc, net, r);
    if (s != BP_OK) {
        bp_optimizer_free(*out);
        *out = NULL;
    }
    return s;
}
