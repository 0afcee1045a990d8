/*
 * net.h -- the network handle: struct bp_net, its workspace and parameter arena (net.c).
 */
#ifndef BP_NET_H
#define BP_NET_H

#include "util.h"
#include "layer.h"
#include "rng.h"
#include "workers.h"

#define BP__MAGIC_NET 0x4e455442u /* "BTEN" */

/* Per-batch-size workspace: planned once per n, reused with no allocation. */
typedef struct bp__workspace {
    size_t n;          /* rows planned for (capacity) */
    size_t rows;       /* rows of the last forward pass (0: none to differentiate) */
    float *block;      /* one aligned allocation holding everything below */
    float *x;          /* copy of the input [n x in] (forward), or NULL in train_step */
    const float *x_in; /* input of the last forward (x, or the caller's in train_step) */
    float x_max;       /* max |x_in| when the input check measured it, else -1 */
    float **y;         /* per layer, [n x out] */
    float **s;         /* per layer, vt->scratch_floats(l, n, training) floats or NULL */
    float *g0, *g1;    /* ping-pong gradients [n x max_width] */
    double g_bound;    /* after a backward walk: >= every |dW| and |db| of the net */
} bp__workspace;

struct bp_net {
    uint32_t magic;
    bp__alloc alloc;
    size_t inputs;
    size_t in_c, in_h, in_w; /* input shape: inputs = in_c*in_h*in_w ([inputs x 1 x 1] for
                                bp_net_create) */
    size_t in_steps;         /* T of sequence input rows ([1 x T x F], bp_net_create_sequence),
                                0 for flat and image rows */
    size_t nlayers, cap_layers;
    bp_layer **layers;
    float *params; /* aligned arena: every layer's W then b */
    float *grads;  /* same layout */
    size_t nparams;
    size_t cap_params; /* floats allocated in params and grads (grown geometrically) */
    /* The optimizer's update guard (optimizer_step.c): p_bound >= every |parameter| while
     * p_bound_known; writers of params other than the optimizer clear it
     * (bp__net_params_changed). Once bp_net_params() has lent the arena out, the caller may
     * write it at any time: params_lent makes every update measure instead. */
    double p_bound;
    int p_bound_known;
    int params_lent;
    size_t nfrozen;    /* layers with trainable 0 (bp__layer_set_trainable keeps the count):
                          0 lets the optimizer update the whole arena in one pass */
    size_t nstaged;    /* layers whose training forward changes the net: vt->commit (staged
                          state) or vt->draws_rng; 0 keeps the step free of transactions */
    bp__rng rng_saved; /* the generator before the current step (restored if it fails) */
    bp__rng rng;
    bp__workspace ws;  /* training forward/backward */
    bp__workspace pws; /* bp_net_predict */
    size_t max_width;  /* max(inputs, every layer's out) */
    /* The first layer's vt->check_input (embedding: token ids in range), or NULL: run on
     * every input after its finite check (walk.c). */
    bp_status (*in_check)(const bp_layer *l, char *err, const char *fn, const float *x, size_t n);
    uint64_t shape_hash; /* bp__optimizer_shape_hash() of the layer layout, kept current by
                            bp__net_append_layer so that every step compares in O(1) */
    int accumulate;
    double huber_delta;
    double clip_norm, clip_value;
    int apply_scalers;     /* BP_NET_APPLY_SCALERS: predict/evaluate apply the stored scalers */
    struct bp__meta *meta; /* scalers and metadata (meta.c); NULL until one is set */
    struct bp__fit *fit;   /* fit settings, callbacks, history (fit.h) */
    bp_grad_fn grad_hook;  /* bp_net_set_grad_hook(): between gradients and update, or NULL */
    void *grad_hook_user;
    bp__workers *workers; /* worker threads for elementwise passes (workers.c), or NULL */
    char err[BP__ERR_CAP];
};

static inline float *bp__layer_w(const bp_layer *l)
{
    return l->net->params + l->param_off;
}
static inline float *bp__layer_b(const bp_layer *l)
{
    return l->net->params + l->param_off + l->nweights;
}
static inline float *bp__layer_dw(const bp_layer *l)
{
    return l->net->grads + l->param_off;
}
static inline float *bp__layer_db(const bp_layer *l)
{
    return l->net->grads + l->param_off + l->nweights;
}

static inline int bp__net_ok(const bp_net *n)
{
    return n != NULL && n->magic == BP__MAGIC_NET;
}
static inline int bp__layer_ok(const bp_layer *l)
{
    return l != NULL && l->magic == BP__MAGIC_LAYER && bp__net_ok(l->net);
}

/* The parameters were written by something other than an optimizer update (initialisation,
 * bp_layer_set_weights(), a restored snapshot...): the update guard measures them anew. */
static inline void bp__net_params_changed(bp_net *net)
{
    net->p_bound_known = 0;
}

/* Every network setting (block 300) to its default (net.c). */
void bp__net_settings_defaults(bp_net *net);

/* Refuse an invalid net handle: return BP_ERR_INVALID_ARG from the calling function. */
#define BP__NET_CHECK(net, fn) BP__CHECK_HANDLE(bp__net_ok(net), "net", fn)

/* Width of the net's output rows (its input width while it has no layers). */
static inline size_t bp__net_out_width(const bp_net *net)
{
    return net->nlayers ? net->layers[net->nlayers - 1]->out : net->inputs;
}

/* Drop a workspace's plan (its shapes changed, or the net is freed): the next call that
 * needs it plans it again (walk.c). */
static inline void bp__ws_release(bp_net *net, bp__workspace *ws)
{
    bp__free_aligned(&net->alloc, ws->block);
    memset(ws, 0, sizeof *ws);
}

#endif /* BP_NET_H */
