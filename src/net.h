/*
 * net.h -- the network handle: struct bp_net, its workspace and parameter arena (net.c).
 */
#ifndef BP_NET_H
#define BP_NET_H

#include "util.h"
#include "layer.h"
#include "rng.h"
#include "pool.h"

#define BP__MAGIC_NET 0x4e455442u   /* "BTEN" */

/* Per-batch-size workspace: planned once per n, reused with no allocation. */
typedef struct bp__workspace {
    size_t n;            /* rows planned for (capacity) */
    size_t rows;         /* rows of the last forward pass (0: none to differentiate) */
    float *block;        /* one aligned allocation holding everything below */
    float *x;            /* copy of the input [n x in] (forward), or NULL in train_step */
    const float *x_in;   /* input of the last forward (x, or the caller's in train_step) */
    float x_max;         /* max |x_in| when the input check measured it, else -1 */
    float **y;           /* per layer, [n x out] */
    float **s;           /* per layer, vt->scratch_floats(l, n, training) floats or NULL */
    float *g0, *g1;      /* ping-pong gradients [n x max_width] */
} bp__workspace;

struct bp_net {
    uint32_t magic;
    bp__alloc alloc;
    size_t inputs;
    size_t in_c, in_h, in_w; /* input shape: inputs = in_c*in_h*in_w ([inputs x 1 x 1] for
                                bp_net_create) */
    size_t nlayers, cap_layers;
    bp_layer **layers;
    float *params;       /* aligned arena: every layer's W then b */
    float *grads;        /* same layout */
    size_t nparams;
    bp__rng rng;
    bp__workspace ws;    /* training forward/backward */
    bp__workspace pws;   /* bp_net_predict */
    size_t max_width;    /* max(inputs, every layer's out) */
    uint64_t shape_hash; /* bp__optimizer_shape_hash() of the layer layout, kept current by
                            bp__net_append_layer so that every step compares in O(1) */
    int accumulate;
    double huber_delta;
    double clip_norm, clip_value;
    struct bp__meta *meta; /* scalers and metadata (meta.c); NULL until one is set */
    struct bp__fit *fit;   /* training loop settings, callback, history (train.c, fit.h) */
    bp_grad_fn grad_hook; /* bp_net_set_grad_hook(): between gradients and update, or NULL */
    void *grad_hook_user;
    bp__pool *pool;       /* worker threads for elementwise passes (pool.c), or NULL */
    int row_path_off;     /* tests only: nonzero keeps bp_net_train_step off its single-row
                             path (train_step_row in net.c), to compare it with the general one */
    int tiny_path_off;    /* tests only: nonzero keeps bp_net_train_step off its fused tiny
                             path (net_tiny.c), to compare it with train_step_row */
    uint64_t tiny_steps;  /* steps the fused tiny path has completed (tests check it is taken) */
    uint64_t tiny_hidden1_steps; /* ... of them through its in -> h -> 1 kernel */
    char err[BP__ERR_CAP];
};

static inline float *bp__layer_w(const bp_layer *l) { return l->net->params + l->param_off; }
static inline float *bp__layer_b(const bp_layer *l)
{
    return l->net->params + l->param_off + l->nweights;
}
static inline float *bp__layer_dw(const bp_layer *l) { return l->net->grads + l->param_off; }
static inline float *bp__layer_db(const bp_layer *l)
{
    return l->net->grads + l->param_off + l->nweights;
}

static inline int bp__net_ok(const bp_net *n) { return n != NULL && n->magic == BP__MAGIC_NET; }
static inline int bp__layer_ok(const bp_layer *l)
{
    return l != NULL && l->magic == BP__MAGIC_LAYER && bp__net_ok(l->net);
}

/* The dense layer's single-row kernels (layer_dense.c), the code its forward and backward
 * run for n = 1, callable without the vtable for net.c's single-row training step. Backward
 * overwrites the gradients (no accumulation). */
void bp__dense_row_forward(const bp_layer *l, const float *x, float *z, float *y);
void bp__dense_row_backward(const bp_layer *l, const float *x, const float *z, const float *y,
                            float *dy, int dy_is_dz, float *dx);
/* The fused training step for tiny nets (net_tiny.c): bp_net_train_step's work for one row
 * through narrow dense layers (rows under 16 floats; no softmax) with the MSE, MAE, Huber or
 * BCE-on-logits loss and plain SGD (no momentum), in one routine, with the same floats as
 * train_step_row. Returns 1 when it ran the step (parameters updated, optimizer stepped,
 * *loss_value written when loss_value is not NULL), or 0 when the step is not one it takes or
 * anything would fail (bad handle or argument, non-finite input or target, non-finite loss or
 * gradient): then no parameter, optimizer state or loss_value has been written (gradients
 * only as the caller's path writes them again), and the caller runs its own path, which
 * reports the failure with its usual status and message. Gradients are proven finite before
 * any parameter moves. Called before anything else in bp_net_train_step. */
int bp__net_train_step_tiny(bp_net *net, bp_optimizer *opt, int loss, const float *x,
                            const float *y, size_t n, float *loss_value);

#endif /* BP_NET_H */
