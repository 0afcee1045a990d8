/*
 * layer.h -- the layer framework: the vtable every layer kind implements, struct bp_layer,
 * appending layers to a net, and the vocabulary of layer records (hyper-parameters) used by
 * the kinds' persistence hooks (layer.c, layer_registry.c).
 */
#ifndef BP_LAYER_H
#define BP_LAYER_H

#include "util.h"
#include "activation.h"

#define BP__MAGIC_LAYER 0x4c595242u /* "BRYL" */

struct bp__hyper; /* defined in the persistence block at the end */

/* A layer kind's behaviour. Adding a kind = one layer_<kind>.c file + one bp_net_add_* + one
 * row in layer_registry.c. */
typedef struct bp__layer_vtable {
    int kind;
    const char *name;
    /* Floats of per-call scratch the layer needs for @p n rows: kept from forward to
     * backward when @p training (pre-activations, dropout masks, batch statistics, im2col
     * columns), or used only during the call at inference. May return 0. */
    size_t (*scratch_floats)(const bp_layer *l, size_t n, int training);
    /* y: [n x out] = layer(x: [n x in]). scratch: scratch_floats(l, n, training) floats (or
     * NULL when that is 0). training: 1 in forward/train_step, 0 in predict. With training
     * 0 the layer and its net MUST NOT be written (only scratch and y): bp_net_predict_ws()
     * runs it from several threads at once on one net. */
    void (*forward)(bp_layer *l, size_t n, const float *x, float *scratch, float *y, int training);
    /* dy: [n x out] dL/dy, may be overwritten (scratch). dy_is_dz: dy already holds dL/dz
     * (fused softmax-CE). scratch: what forward left there. Writes dL/dW, dL/db (added when
     * accumulate), and dx: [n x in] unless dx is NULL (first layer). Returns 1 when it has
     * itself proven every dW and db it wrote finite (the dense layer's narrow single-row
     * kernel, as a by-product of computing them), else 0: then the walk proves them
     * (walk.c, prove_grad_finite). Never 1 for a gradient that is not finite. A backward
     * that returns 1 also sets l->grad_bound (the optimizer's update guard reads it). */
    int (*backward)(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
                    float *dy, int dy_is_dz, float *dx, int accumulate);
    /* Free kind-private data (NULL when the kind has none). */
    void (*destroy)(bp_layer *l);
    /* Deep-copy kind-private data from src into dst (dst is a struct copy of src with priv
     * NULL); NULL when the kind has none. */
    bp_status (*clone)(bp_layer *dst, const bp_layer *src);

    /* ---- persistence hooks (serialize.c, docs/format.md "Layer records") ----
     * A saved layer is: kind, (key, value) hyper-parameters, parameters, extra state. A new
     * kind registers by adding its vtable to the table in layer_registry.c; serialize.c
     * never names a kind. */
    /* Describe the layer as (key, value) pairs that construct() accepts: the kind's
     * construction keys (BP__HP_*, below 100) and its enum bp_layer_key settings (2xx).
     * Writes at most @p cap pairs to @p hp (NULL when cap is 0); returns the total count,
     * at most BP__HYPER_MAX. Required. */
    size_t (*hyper)(const bp_layer *l, struct bp__hyper *hp, size_t cap);
    /* Append a layer of this kind to @p net from pairs written by hyper(). @p expect_params
     * is the parameter count the file holds for it: fail with BP_ERR_FORMAT BEFORE
     * allocating when the layer would have another count (a hostile file must not make the
     * loader allocate more than it holds). An unknown construction key fails with
     * BP_ERR_VERSION, a bad value with BP_ERR_FORMAT; bp__hyper_apply_settings() handles
     * the 2xx keys. On failure the net may keep the new layer (the loader discards the net).
     * Required. */
    bp_status (*construct)(bp_net *net, const struct bp__hyper *hp, size_t count,
                           size_t expect_params);
    /* Non-parameter state saved with the layer (batch-norm running mean and variance ...):
     * its float count, a writer, and a reader that validates (BP_ERR_FORMAT on a wrong
     * count, BP_ERR_NONFINITE on a value it cannot hold) before changing anything. All three
     * NULL for kinds without such state (dense). */
    size_t (*state_floats)(const bp_layer *l);
    void (*state_write)(const bp_layer *l, float *dst);
    bp_status (*state_read)(bp_layer *l, const float *src, size_t count);
    /* The enum bp_layer_key settings that apply to the kind, with their accessors, ended by
     * an entry with key 0 (layer_settings.c checks bounds before calling set). bp_layer_set/
     * get reject the keys not listed with BP_ERR_INVALID_ARG. */
    const struct bp__layer_key *keys;
    /* 1 if backward leaves dz [n x out] in dy with dW = dz^T x and db = column sums of dz
     * (dense), so that backward_pass may bound dW and db instead of scanning them; 0 makes
     * backward_pass scan the layer's whole dW and db. */
    int grad_bound_dense;
    /* 1 if y is x unchanged in memory (flatten): the workspace aliases the layer's output to
     * its input, and forward and backward are skipped (dx = dy). */
    int passthrough;
    /* State a training forward pass computes but must not keep until its step succeeds
     * (batch norm's running statistics): forward stages it in its scratch; the walk calls
     * commit(l, scratch, n, 0) to verify it (BP_ERR_NONFINITE, message in net->err, when
     * it is no state the layer could keep: the step then fails with nothing changed) and,
     * once the step has succeeded, commit(l, scratch, n, 1) to keep it. NULL for kinds
     * without such state; kinds with it count in net->nstaged. */
    bp_status (*commit)(bp_layer *l, const float *scratch, size_t n, int apply);
    /* 1 if a training forward draws from the net's generator (dropout masks): a failed step
     * restores it. Counted in net->nstaged too. */
    int draws_rng;
    /* Kinds that must be the first layer because they read the net's input in a way that
     * needs more than finite values (embedding: token ids): checks @p n input rows @p x,
     * already known finite, before any call uses them (message to @p err, NULL for calls
     * that may run concurrently, and the thread's; nothing written). NULL for other kinds;
     * the walks call the first layer's (net->in_check). */
    bp_status (*check_input)(const bp_layer *l, char *err, const char *fn, const float *x,
                             size_t n);
} bp__layer_vtable;

/* Largest row width (inputs, any layer's out). */
#define BP__MAX_WIDTH ((size_t)1 << 24)

/* One enum bp_layer_key setting of a kind: how to store and read it. @c set receives a value
 * already checked against the family's bounds (layer_settings.c). */
typedef struct bp__layer_key {
    int key;
    void (*set)(bp_layer *l, double value);
    double (*get)(const bp_layer *l);
} bp__layer_key;

/* Defaults of the activation settings every new layer starts with. */
#define BP__DEFAULT_LEAKY_SLOPE 0.01f
#define BP__DEFAULT_ELU_ALPHA   1.0f

/* Accessors for the settings struct bp_layer holds itself (layer_settings.c), and table
 * entries built from them for the kinds' key tables. */
void bp__layer_set_trainable(bp_layer *l, double v);
double bp__layer_get_trainable(const bp_layer *l);
void bp__layer_set_leaky_slope(bp_layer *l, double v);
double bp__layer_get_leaky_slope(const bp_layer *l);
void bp__layer_set_elu_alpha(bp_layer *l, double v);
double bp__layer_get_elu_alpha(const bp_layer *l);
void bp__layer_set_l2(bp_layer *l, double v);
double bp__layer_get_l2(const bp_layer *l);
void bp__layer_set_l1(bp_layer *l, double v);
double bp__layer_get_l1(const bp_layer *l);
#define BP__KEY_TRAINABLE                                                                          \
    {                                                                                              \
        BP_LAYER_TRAINABLE, bp__layer_set_trainable, bp__layer_get_trainable                       \
    }
#define BP__KEY_ACTIVATION                                                                         \
    {BP_LAYER_LEAKY_SLOPE, bp__layer_set_leaky_slope, bp__layer_get_leaky_slope},                  \
    {                                                                                              \
        BP_LAYER_ELU_ALPHA, bp__layer_set_elu_alpha, bp__layer_get_elu_alpha                       \
    }
#define BP__KEY_PENALTIES                                                                          \
    {BP_LAYER_L2, bp__layer_set_l2, bp__layer_get_l2},                                             \
    {                                                                                              \
        BP_LAYER_L1, bp__layer_set_l1, bp__layer_get_l1                                            \
    }
#define BP__KEY_END                                                                                \
    {                                                                                              \
        0, NULL, NULL                                                                              \
    }
/* The kind's entry for @p key, or NULL when the key does not apply to it. */
const bp__layer_key *bp__layer_key_of(const bp_layer *l, int key);

struct bp_layer {
    uint32_t magic;
    const bp__layer_vtable *vt;
    bp_net *net;    /* owner */
    size_t index;   /* position in net */
    int activation; /* enum bp_activation (BP_ACT_IDENTITY for kinds without one) */
    size_t in, out; /* per-row widths */
    /* Shapes of one row, channels-first (NCHW): in = in_c*in_h*in_w, out = out_c*out_h*out_w.
     * Flat data is [width x 1 x 1]. */
    size_t in_c, in_h, in_w;
    size_t out_c, out_h, out_w;
    /* Steps T of sequence rows ([T x F] step-major, element (t, f) at t*F + f, shape
     * [1 x T x F]), 0 for flat and image rows. in_steps is the previous layer's out_steps
     * (the net's in_steps for the first layer), set by bp__layer_new; a kind sets out_steps
     * (then out_c == 1, out_h == out_steps, out = out_steps * out_w). Kinds working per step
     * (dense, activation, dropout, layernorm) keep out_steps = in_steps and see n * T rows of
     * the step width (bp__layer_rows). */
    size_t in_steps, out_steps;
    size_t fan_in, fan_out; /* for weight initialisation (dense: in, out; conv: C*kh*kw,
                               F*kh*kw) */
    double l2, l1;          /* weight penalties added to dW in backward (BP_LAYER_L2 / _L1) */
    int penalised;          /* l2 > 0 || l1 > 0 (their setters keep it) */
    size_t param_off;       /* offset of this layer's parameters in net->params / grads */
    size_t nweights;        /* weights first ... */
    size_t nbiases;         /* ... then biases */
    int trainable;
    bp__act_params act;
    double grad_bound; /* set by a backward that returns 1 (proven): >= every |dW| and |db| */
    void *priv;        /* kind-private data */
};

/* The output shape of the last layer (the input shape when there is none). */
void bp__net_out_shape(const bp_net *net, size_t *c, size_t *h, size_t *w);
/* The steps T of the last layer's output rows (the net's input steps when there is no
 * layer): 0 when they are not sequences. */
size_t bp__net_out_steps(const bp_net *net);
/* Width of one step of the last layer's output rows (of the whole row when they are not
 * sequences): what a per-step layer appended now sees as its input width. */
size_t bp__net_out_step_width(const bp_net *net);
/* Rows of per-step work in @p n rows of the layer's input: n * in_steps for sequence rows,
 * n otherwise. */
static inline size_t bp__layer_rows(const bp_layer *l, size_t n)
{
    return l->in_steps ? n * l->in_steps : n;
}
/* BP_ERR_SHAPE (message naming @p fn and @p what) when the net's output rows are sequences:
 * for kinds that take images or flat rows only (convolution, pooling). */
bp_status bp__net_refuse_sequence(bp_net *net, const char *fn, const char *what);
/* Allocate a layer struct with the common fields for appending after the current last layer:
 * vt, activation, in (and in_c/h/w) from the net's output shape, out_c/h/w (out = their
 * product), trainable 1, default activation settings. NULL (BP_ERR_NOMEM recorded with fn)
 * on failure. */
bp_layer *bp__layer_new(bp_net *net, const char *fn, const bp__layer_vtable *vt, int activation,
                        size_t out_c, size_t out_h, size_t out_w);
/* Free a layer struct (appended or not): calls vt->destroy, clears its magic, frees it. */
void bp__layer_discard(bp_net *net, bp_layer *l);
/* Shared vtable entries: no scratch; free a flat (pointer-free) priv; deep-copy a flat priv
 * of @p size bytes. */
size_t bp__no_scratch(const bp_layer *l, size_t n, int training);
void bp__layer_free_priv(bp_layer *l);
bp_status bp__layer_copy_priv(bp_layer *dst, const bp_layer *src, size_t size);
/* Append @p l with bp__net_append_layer, discarding it on failure. */
bp_status bp__net_append_or_discard(bp_net *net, bp_layer *l, int init_scheme, double init_value);
/* Fill the layer's weights by @p scheme from the net's generator; biases to 0. */
void bp__layer_init_params(bp_layer *l, int scheme, double value);
int bp__init_valid(int scheme);

/* Appending to a net, for layer kinds (layer.c). */
/* Fails with BP_ERR_STATE if nothing may follow the current last layer (softmax). */
bp_status bp__net_check_append(bp_net *net, const char *fn);
/* Append a layer struct the caller filled (vt, activation, in, out, nweights, nbiases,
 * trainable, act, priv; optionally in_c/h/w, out_c/h/w, fan_in, fan_out, which default to
 * the net's output shape, [out x 1 x 1], in and out when 0): grows the parameter arena and
 * initialises the parameters with @p init_scheme. On failure the net is unchanged and @p l
 * still belongs to the caller. */
bp_status bp__net_append_layer(bp_net *net, bp_layer *l, int init_scheme, double init_value);

/* One layer hyper-parameter as saved in a layer record: keys below 100 are construction
 * parameters private to the format, keys 200..299 are enum bp_layer_key settings. */
typedef struct bp__hyper {
    uint32_t key;
    double value;
} bp__hyper;

/* Construction keys (docs/format.md lists each kind's keys). New kinds take new numbers. */
enum {
    BP__HP_UNITS = 1,      /* dense: output width, 1 .. 2^24 */
    BP__HP_ACTIVATION = 2, /* dense, conv2d, activation: enum bp_activation */
    BP__HP_FILTERS = 3,    /* conv2d: output channels */
    BP__HP_KERNEL_H = 4,   /* conv2d: kernel height */
    BP__HP_KERNEL_W = 5,   /* conv2d: kernel width */
    BP__HP_STRIDE = 6,     /* conv2d, max/avg pool: stride */
    BP__HP_PADDING = 7,    /* conv2d: zero padding */
    BP__HP_POOL_SIZE = 8,  /* max/avg pool: window side */
    BP__HP_VOCABULARY = 9, /* embedding: vocabulary, 1 .. 2^24 */
    BP__HP_DIMENSION = 10  /* embedding: vector width, 1 .. 2^24 */
    /* 20 .. 23: the recurrent kinds' (src/recurrent.h) */
};
/* Most pairs one layer record may hold (a larger count is a malformed file). */
#define BP__HYPER_MAX 64u

/* Layer registry (layer_registry.c): the vtable of kind @p kind, or NULL if unknown. */
const bp__layer_vtable *bp__layer_vtable_of(int kind);
/* Append a layer of kind @p kind to @p net through its vtable's construct(): BP_ERR_VERSION
 * for an unknown kind (a newer writer), else what construct() returns. */
bp_status bp__layer_construct(bp_net *net, int kind, const bp__hyper *hp, size_t count,
                              size_t expect_params);
/* The value of @p key in @p hp, or -1 when absent (then *value is untouched). */
int bp__hyper_find(const bp__hyper *hp, size_t count, uint32_t key, double *value);
/* Write the enum bp_layer_key settings that apply to the layer's kind (vt->keys) into
 * hp[at ..] (as far as cap allows); returns at + their count. */
size_t bp__hyper_put_settings(const bp_layer *l, bp__hyper *hp, size_t cap, size_t at);
/* BP_ERR_FORMAT (naming the layer and key) when a key appears twice in a layer record. */
bp_status bp__hyper_check_unique(bp_net *net, const char *kind, const bp__hyper *hp, size_t count);
/* A construction key that must be an integer in [lo, hi]: BP_ERR_FORMAT (naming the layer)
 * when missing or out of range. */
bp_status bp__hyper_get_size(bp_net *net, const char *kind, const bp__hyper *hp, size_t count,
                             uint32_t key, size_t lo, size_t hi, size_t *out);
/* A bp_net_add_* call made by a loader failed with @p s: argument, state and shape errors
 * become BP_ERR_FORMAT (the arguments came from the file); others pass through. */
bp_status bp__hyper_add_failed(bp_net *net, bp_status s);
/* BP_ERR_FORMAT unless the file's parameter count @p expect is the @p want the layer needs:
 * checked before anything is allocated. */
bp_status bp__hyper_expect_params(bp_net *net, const char *kind, size_t want, size_t expect);
/* A hyper() for kinds described by their settings alone. */
size_t bp__hyper_settings_only(const bp_layer *l, bp__hyper *hp, size_t cap);
/* Apply the 2xx pairs of @p hp to @p l through bp_layer_set() (validated: a bad value is
 * BP_ERR_FORMAT); construction keys are skipped, unknown 2xx keys are BP_ERR_VERSION, any
 * other key not in @p known (a 0-terminated list of the kind's construction keys) too. */
bp_status bp__hyper_apply_settings(bp_layer *l, const bp__hyper *hp, size_t count,
                                   const uint32_t *known);

/* CRC-32 (IEEE 802.3, zlib's crc32): continue @p crc (0 to start) over @p size bytes. */

/* Refuse an invalid layer handle (BP__CHECK_HANDLE, util.h). */
#define BP__LAYER_CHECK(l, fn) BP__CHECK_HANDLE(bp__layer_ok(l), "layer", fn)

#endif /* BP_LAYER_H */
