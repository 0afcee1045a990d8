/*
 * internal.h -- private structures shared by the modules of libbackprop.
 *
 * Dependency direction (lower never includes higher):
 *   error.c alloc.c rng.c gemm.c        utilities; gemm.c is the only includer of <cblas.h>
 *   activation.c loss.c                 elementwise math
 *   layer_*.c                           layer kinds behind bp__layer_vtable
 *   net.c                               network walk, workspace, train_step
 *   optimizer.c                         updates over the net's parameter arena
 *   dataset.c dataset_io.c fileio.c     data sets and their loaders
 *   layer_registry.c serialize.c        layer kinds by id; model and checkpoint files
 */
#ifndef BP_INTERNAL_H
#define BP_INTERNAL_H

#include "backprop.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Errors
 * ----------------------------------------------------------------------------------------*/

#define BP__ERR_CAP 256

#if defined(__GNUC__) || defined(__clang__)
#  define BP__PRINTF(f, a) __attribute__((format(printf, f, a)))
#  define BP__LIKELY(x) __builtin_expect(!!(x), 1)
#  define BP__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define BP__PRINTF(f, a)
#  define BP__LIKELY(x) (x)
#  define BP__UNLIKELY(x) (x)
#endif

/* Hot elementwise kernels (optimizer updates, fused activations, gradient scans): compiled
 * for AVX-512, AVX2 and the portable baseline and picked once at load time (GCC function
 * multi-versioning; needs ifunc, i.e. ELF/glibc on x86-64). The library itself is built
 * without -march. ISO C mode (-std=c11) keeps floating-point contraction off, so no version
 * fuses a multiply-add and all of them compute bit-identical results. Define BP_NO_CLONES
 * to build the baseline only. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8 && defined(__x86_64__) &&        \
    defined(__ELF__) && defined(__linux__) && !defined(BP_NO_CLONES)
#  define BP__KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define BP__KERNEL
#endif

/* Single-row kernels for tiny layers (net.c's train_step_row): the same source as the
 * multi-versioned kernels, compiled without the vectoriser. A vectorised loop over 2-4
 * elements spends more instructions choosing its path than computing; the results are the
 * same either way (elementwise operations in the same order, no contraction). */
#if defined(__GNUC__) && !defined(__clang__)
#  define BP__SCALAR __attribute__((optimize("no-tree-vectorize")))
#else
#  define BP__SCALAR
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define BP__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#  define BP__ALWAYS_INLINE inline
#endif

/* Largest |v| over @p count floats as a bit pattern: with the sign cleared, IEEE floats
 * order like their bit patterns as unsigned integers, and every NaN/Inf pattern is >= that
 * of Inf (0x7f800000). An integer max vectorises where fabsf/isfinite did not. */
static BP__ALWAYS_INLINE uint32_t bp__max_abs_bits(const float *v, size_t count)
{
    uint32_t m = 0;
    for (size_t k = 0; k < count; k++) {
        uint32_t u;
        memcpy(&u, v + k, sizeof u);
        u &= 0x7fffffffu;
        m = u > m ? u : m;
    }
    return m;
}

/* Flush denormals to zero during the library's own compute (subnormal Adam moments and
 * activations are slow to compute with): bp__fp_enter() sets the SSE control register's
 * FTZ and DAZ bits and returns the caller's register, bp__fp_leave() puts the caller's two
 * bits back (exception flags raised meanwhile are kept). Used by every entry point that
 * runs kernels (train_step, compute_grads, forward, backward, predict, optimizer step).
 * When the caller already runs with both bits set, neither writes the register. */
#if (defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))) && !defined(BP_NO_FTZ)
#  include <xmmintrin.h>
#  define BP__FTZ_DAZ 0x8040u
static inline unsigned bp__fp_enter(void)
{
    const unsigned csr = _mm_getcsr();
    if ((csr & BP__FTZ_DAZ) != BP__FTZ_DAZ) _mm_setcsr(csr | BP__FTZ_DAZ);
    return csr;
}
static inline void bp__fp_leave(unsigned csr)
{
    if ((csr & BP__FTZ_DAZ) != BP__FTZ_DAZ)
        _mm_setcsr((_mm_getcsr() & ~BP__FTZ_DAZ) | (csr & BP__FTZ_DAZ));
}
/* Set the calling thread's FTZ and DAZ bits to those of @p csr (a register value another
 * thread read); returns this thread's register for a later bp__fp_adopt() to restore. */
static inline unsigned bp__fp_adopt(unsigned csr)
{
    const unsigned mine = _mm_getcsr();
    if ((mine & BP__FTZ_DAZ) != (csr & BP__FTZ_DAZ))
        _mm_setcsr((mine & ~BP__FTZ_DAZ) | (csr & BP__FTZ_DAZ));
    return mine;
}
static inline unsigned bp__fp_get(void) { return _mm_getcsr(); }
#else
static inline unsigned bp__fp_enter(void) { return 0; }
static inline void bp__fp_leave(unsigned csr) { (void)csr; }
static inline unsigned bp__fp_adopt(unsigned csr) { return csr; }
static inline unsigned bp__fp_get(void) { return 0; }
#endif

/* Record a failure: formats the message into @p err (a handle's BP__ERR_CAP buffer, or NULL
 * when there is no handle) and into the thread's bp_last_error(); returns @p status. */
bp_status bp__fail(char *err, bp_status status, const char *fmt, ...) BP__PRINTF(3, 4);

/* Forward a non-OK status unchanged. */
#define BP_CHECK(expr)                                                                            \
    do {                                                                                          \
        const bp_status bp_check_s_ = (expr);                                                     \
        if (bp_check_s_ != BP_OK) return bp_check_s_;                                             \
    } while (0)

/* Static message for invalid handles passed to *_last_error(). */
extern const char bp__invalid_handle_msg[];

/* ------------------------------------------------------------------------------------------
 * Allocation (per handle; never a global hook)
 * ----------------------------------------------------------------------------------------*/

typedef struct bp__alloc {
    bp_alloc_fn alloc;
    bp_free_fn free;
    void *user;
} bp__alloc;

/* Default allocator: malloc/free. */
extern const bp__alloc bp__default_alloc;

void *bp__malloc(const bp__alloc *a, size_t size);
void *bp__calloc(const bp__alloc *a, size_t count, size_t size); /* overflow-checked */
void bp__free(const bp__alloc *a, void *p);
/* 64-byte aligned blocks for kernel buffers; freed with bp__free_aligned. */
void *bp__malloc_aligned(const bp__alloc *a, size_t size);
void bp__free_aligned(const bp__alloc *a, void *p);
/* a * b without overflow: returns 0 and sets *out, or -1 on overflow. */
int bp__mul_size(size_t a, size_t b, size_t *out);

/* ---- worker threads (pool.c) ---- */
/* A pass over [begin, end) of an elementwise job. */
typedef void (*bp__range_fn)(void *ctx, size_t begin, size_t end);
typedef struct bp__pool bp__pool;
/* Passes shorter than this many floats run on the caller's thread alone (waking a worker
 * costs a few microseconds); longer ones give each thread at least half of it. */
#define BP__POOL_MIN_FLOATS 65536
/* Run @p fn over [0, @p n) split into contiguous chunks across up to bp_get_num_threads()
 * threads: the caller's and the workers of *@p pool, created on first need. Returns when
 * every chunk is done. Never fails (falls back to the caller's thread alone). */
void bp__pool_run(bp__pool **pool, const bp__alloc *a, size_t n, bp__range_fn fn, void *ctx);
/* Workers started so far (0 for NULL). */
int bp__pool_workers(const bp__pool *pool);
/* Tests: how many times a worker has joined a pass so far. */
unsigned long bp__pool_joins(bp__pool *pool);
/* Tests: 1 if every worker's affinity excludes the CPU the caller ran on at the last pass
 * (stored in *cpu), 0 if one allows it, -1 if not applicable (no workers, no affinity
 * support, or a caller mask of one CPU). */
int bp__pool_kept_off(const bp__pool *pool, int *cpu);
/* Join the workers and free @p pool (allocated from @p a; NULL is a no-op). */
void bp__pool_free(bp__pool *pool, const bp__alloc *a);

/* ------------------------------------------------------------------------------------------
 * Random numbers: xoshiro256** seeded through splitmix64 (portable, documented, fast)
 * ----------------------------------------------------------------------------------------*/

typedef struct bp__rng {
    uint64_t s[4];
} bp__rng;

void bp__rng_seed(bp__rng *r, uint64_t seed);
uint64_t bp__rng_next(bp__rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float bp__rng_uniform(bp__rng *r);
/* Standard normal (Box-Muller on 53-bit uniforms), in double. */
double bp__rng_normal(bp__rng *r);
/* Uniform integer in [0, bound), unbiased (Lemire). bound >= 1. */
uint64_t bp__rng_below(bp__rng *r, uint64_t bound);

/* ------------------------------------------------------------------------------------------
 * GEMM (gemm.c is the only file that calls cblas_*)
 * ----------------------------------------------------------------------------------------*/

/* Row-major C[m x n] = alpha * op(A) op(B) + beta * C, op(X) = X or X^T (trans != 0).
 * A is [m x k] (or [k x m] when transposed), B is [k x n] (or [n x k]). Small products are
 * computed by a plain loop, larger ones by BLAS (threshold: bp__gemm_small_threshold). */
void bp__gemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
              const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
              size_t ldc);
/* The two paths, exposed for tests and benchmarks. */
void bp__gemm_naive(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta,
                    float *c, size_t ldc);
void bp__gemm_blas(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                   const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                   size_t ldc);
/* m*n*k at or below which bp__gemm uses the loop (measured, see docs/performance.md). */
extern const size_t bp__gemm_small_threshold;

/* ------------------------------------------------------------------------------------------
 * Activations and losses
 * ----------------------------------------------------------------------------------------*/

typedef struct bp__act_params {
    float leaky_slope;
    float elu_alpha;
} bp__act_params;

int bp__act_valid(int act);
const char *bp__act_name(int act);
/* Does the derivative need the pre-activation z (not just y = f(z))? */
int bp__act_needs_z(int act);
/* Fused bias + activation, one pass: z = acc + b (row-wise broadcast), y = f(z).
 * acc, y: [n x out]; b: [out]; z: [n x out] or NULL (then not stored). acc may equal y. */
void bp__act_forward(int act, const bp__act_params *p, size_t n, size_t out, const float *acc,
                     const float *b, float *z, float *y);
/* dz = dy * f'(z) in place on dy (for softmax: the Jacobian-vector product per row). */
/* One row (n = 1, in place: y = f(y + b)) without the vectoriser, for tiny layers (see
 * BP__SCALAR); same results as bp__act_forward / bp__act_backward. */
void bp__act_forward_row(int act, const bp__act_params *p, size_t out, const float *b, float *z,
                         float *y);
void bp__act_backward_row(int act, const bp__act_params *p, size_t out, const float *z,
                          const float *y, float *dy);
void bp__act_backward(int act, const bp__act_params *p, size_t n, size_t out, const float *z,
                      const float *y, float *dy);

int bp__loss_valid(int loss);
const char *bp__loss_name(int loss);
/* Check targets: finite values, or integer class indices in [0, width) for the sparse loss. */
bp_status bp__loss_check_targets(char *err, int loss, const float *target, size_t n,
                                 size_t width);
/* Loss value and gradient. pred: [n x width] network outputs. logits: the output layer's
 * pre-softmax z when it is a softmax layer and the loss is a softmax CE (fused path: grad
 * receives dL/dz and *grad_is_dz = 1), else NULL (grad receives dL/dpred). grad may be NULL.
 * Fails with BP_ERR_NONFINITE if the value is not finite. */
bp_status bp__loss_compute(char *err, int loss, double delta, const float *pred,
                           const float *logits, const float *target, size_t n, size_t width,
                           float *value, float *grad, int *grad_is_dz);

/* ------------------------------------------------------------------------------------------
 * Handles
 * ----------------------------------------------------------------------------------------*/

#define BP__MAGIC_NET 0x4e455442u   /* "BTEN" */
#define BP__MAGIC_LAYER 0x4c595242u /* "BRYL" */
#define BP__MAGIC_OPT 0x4f505442u   /* "BTPO" */
#define BP__MAGIC_DATA 0x44415442u  /* "BTAD" */

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
    void (*forward)(bp_layer *l, size_t n, const float *x, float *scratch, float *y,
                    int training);
    /* dy: [n x out] dL/dy, may be overwritten (scratch). dy_is_dz: dy already holds dL/dz
     * (fused softmax-CE). scratch: what forward left there. Writes dL/dW, dL/db (added when
     * accumulate), and dx: [n x in] unless dx is NULL (first layer). */
    void (*backward)(bp_layer *l, size_t n, const float *x, float *scratch, const float *y,
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
    /* Which enum bp_layer_key settings apply to the kind: bit (key - BP__LAYER_KEY_FIRST).
     * bp_layer_set/get reject the others with BP_ERR_INVALID_ARG. */
    unsigned keys;
    /* Store / read a kind-specific setting (a key in @c keys that struct bp_layer does not
     * hold itself); the value was range-checked by layer.c. NULL when the kind has none. */
    void (*set_key)(bp_layer *l, int key, double value);
    double (*get_key)(const bp_layer *l, int key);
    /* 1 if backward leaves dz [n x out] in dy with dW = dz^T x and db = column sums of dz
     * (dense), so that backward_pass may bound dW and db instead of scanning them; 0 makes
     * backward_pass scan the layer's whole dW and db. */
    int grad_bound_dense;
    /* 1 if y is x unchanged in memory (flatten): the workspace aliases the layer's output to
     * its input, and forward and backward are skipped (dx = dy). */
    int passthrough;
} bp__layer_vtable;

/* Largest row width (inputs, any layer's out). */
#define BP__MAX_WIDTH ((size_t)1 << 24)

/* Bit of a layer key in bp__layer_vtable.keys. */
#define BP__LAYER_KEY_FIRST 200
#define BP__LAYER_KEY_BIT(key) (1u << ((unsigned)(key) - BP__LAYER_KEY_FIRST))

struct bp_layer {
    uint32_t magic;
    const bp__layer_vtable *vt;
    bp_net *net;         /* owner */
    size_t index;        /* position in net */
    int activation;      /* enum bp_activation (BP_ACT_IDENTITY for kinds without one) */
    size_t in, out;      /* per-row widths */
    /* Shapes of one row, channels-first (NCHW): in = in_c*in_h*in_w, out = out_c*out_h*out_w.
     * Flat data is [width x 1 x 1]. */
    size_t in_c, in_h, in_w;
    size_t out_c, out_h, out_w;
    size_t fan_in, fan_out; /* for weight initialisation (dense: in, out; conv: C*kh*kw,
                               F*kh*kw) */
    double l2, l1;       /* weight penalties added to dW in backward (BP_LAYER_L2 / _L1) */
    size_t param_off;    /* offset of this layer's parameters in net->params / grads */
    size_t nweights;     /* weights first ... */
    size_t nbiases;      /* ... then biases */
    int trainable;
    bp__act_params act;
    void *priv;          /* kind-private data */
};

/* Parameter and gradient views (valid until the arena is reallocated by adding a layer). */
static inline float *bp__layer_w(const bp_layer *l);
static inline float *bp__layer_b(const bp_layer *l);
static inline float *bp__layer_dw(const bp_layer *l);
static inline float *bp__layer_db(const bp_layer *l);

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

/* ---- fit ---- */
/* The training loop's state (train.c), one per network. It sits here rather than at the
 * end of the file because struct bp_net embeds it. */

/* Settings are stored by key: set[key - BP__FIT_KEY_FIRST] for enum bp_fit_key. */
#define BP__FIT_KEY_FIRST 400
#define BP__FIT_KEY_COUNT 14
#define BP__FIT_ROW (1 + BP_METRIC_COUNT)

typedef struct bp__fit_state {
    double set[BP__FIT_KEY_COUNT]; /* settings (defaults from bp__fit_init) */
    bp_epoch_fn callback;          /* per-epoch callback or NULL */
    void *callback_user;
    /* History of the last bp_net_fit call: history_len rows of BP__FIT_ROW doubles (the
     * absolute epoch number, then the BP_METRIC_COUNT metrics), room for history_cap rows,
     * allocated from the net's allocator. */
    double *history;
    size_t history_len, history_cap;
    /* Counters that survive between fit calls, for a bit-identical resume (a checkpoint
     * saves them with net->rng and set[]; a fit call with INITIAL_EPOCH == 0 resets them,
     * one with INITIAL_EPOCH > 0 continues from them): */
    size_t next_epoch;        /* absolute index of the epoch after the last completed one */
    double plateau_lr;        /* reduce-on-plateau: current rate (0: not started) */
    double plateau_best;      /* best monitored loss seen by the plateau schedule */
    size_t plateau_wait;      /* epochs since that loss last improved */
    double stop_best;         /* early stopping: best monitored loss (+inf: none yet) */
    size_t stop_wait;         /* epochs since it last improved */
    size_t stop_best_epoch;   /* absolute epoch at which it was reached */
} bp__fit_state;

/* Default settings, no callback, empty history, reset counters. */
void bp__fit_init(bp__fit_state *f);
/* Free the history (bp_net_free). */
void bp__fit_release(bp_net *net);
/* Copy settings, callback and counters from src's fit state into dst's (bp_net_clone); the
 * history is not copied (dst's is freed and left empty). Does not allocate. */
void bp__fit_copy(bp_net *dst, const bp_net *src);
/* Is @p key one of the fit settings (block 400)? */
int bp__fit_is_key(int key);
/* bp_net_set / bp_net_get / bp_net_param_bounds for the fit keys. */
bp_status bp__fit_set(bp_net *net, int key, double value);
bp_status bp__fit_get(const bp_net *net, int key, double *value);
bp_status bp__fit_bounds(int key, double *lo, double *hi);

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
    struct bp__persist *persist; /* scalers, metadata, training state (serialize.c); NULL
                                    until one is set */
    bp__fit_state fit;   /* training loop settings, callback, history (train.c) */
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

/* Layer kinds and helpers (layer.c, layer_*.c). */
extern const bp__layer_vtable bp__dense_vtable;
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
extern const bp__layer_vtable bp__batchnorm_vtable;
extern const bp__layer_vtable bp__dropout_vtable;
extern const bp__layer_vtable bp__activation_vtable;
extern const bp__layer_vtable bp__conv2d_vtable;
extern const bp__layer_vtable bp__maxpool2d_vtable;
extern const bp__layer_vtable bp__avgpool2d_vtable;
extern const bp__layer_vtable bp__global_avgpool_vtable;
extern const bp__layer_vtable bp__flatten_vtable;

/* Kind-private data (struct bp_layer.priv). Everything a saved model must keep beyond the
 * parameters is listed per kind. */
/* Batch normalisation: save momentum, epsilon, running_mean and running_var. */
typedef struct bp__bn_priv {
    size_t channels;      /* C: per channel for image data, per feature for flat data */
    size_t spatial;       /* H*W of each channel (1 for flat data) */
    double momentum;      /* running = momentum * running + (1 - momentum) * batch */
    double epsilon;       /* added to the variance */
    float *running_mean;  /* [channels] */
    float *running_var;   /* [channels] (biased batch variance, as used in training) */
} bp__bn_priv;
/* Dropout: save rate. */
typedef struct bp__dropout_priv {
    double rate;          /* probability of zeroing an activation, [0, 1) */
} bp__dropout_priv;
/* Convolution: save filters (= out_c), kernel_h, kernel_w, stride, padding; the activation
 * is struct bp_layer.activation. zeros is scratch-free constant memory, not state. */
typedef struct bp__conv_priv {
    size_t kh, kw, stride, pad;
    size_t k;             /* in_c * kh * kw: rows of the im2col matrix */
    size_t p;             /* out_h * out_w: columns of the im2col matrix */
    float *zeros;         /* [max(p, filters)] zero bias for the fused activation pass */
} bp__conv_priv;
/* Max and average pooling: save size and stride (no padding). */
typedef struct bp__pool_priv {
    size_t size, stride;
} bp__pool_priv;
/* Activation layer: save nothing but struct bp_layer.activation (and its act settings). */
typedef struct bp__activation_priv {
    float *zeros;         /* [out] zero bias for bp__act_forward */
} bp__activation_priv;

#ifdef BP_PROFILE
/* Only in the bench's profiled build of layer_conv2d.c: nanoseconds spent in im2col and
 * col2im, in the layer's sgemm calls, and in the whole layer (forward + backward). */
enum { BP__PROF_COLS, BP__PROF_GEMM, BP__PROF_TOTAL };
extern double bp__conv_prof_ns[3];
#endif

/* The output shape of the last layer (the input shape when there is none). */
void bp__net_out_shape(const bp_net *net, size_t *c, size_t *h, size_t *w);
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
bp_status bp__net_append_or_discard(bp_net *net, bp_layer *l, int init_scheme,
                                    double init_value);
/* Fill the layer's weights by @p scheme from the net's generator; biases to 0. */
void bp__layer_init_params(bp_layer *l, int scheme, double value);
int bp__init_valid(int scheme);

/* Network internals for layer kinds (net.c). */
/* Fails with BP_ERR_STATE if nothing may follow the current last layer (softmax). */
bp_status bp__net_check_append(bp_net *net, const char *fn);
/* Append a layer struct the caller filled (vt, activation, in, out, nweights, nbiases,
 * trainable, act, priv; optionally in_c/h/w, out_c/h/w, fan_in, fan_out, which default to
 * the net's output shape, [out x 1 x 1], in and out when 0): grows the parameter arena and
 * initialises the parameters with @p init_scheme. On failure the net is unchanged and @p l
 * still belongs to the caller. */
bp_status bp__net_append_layer(bp_net *net, bp_layer *l, int init_scheme, double init_value);

/* Optimizer entry points used by train_step (optimizer.c). */
/* BP_OK if @p opt is a valid handle, unbound or bound to @p net's shape. */
bp_status bp__optimizer_validate_for(bp_optimizer *opt, const bp_net *net);
/* bp_optimizer_step without its scan for non-finite gradients: for callers (train_step)
 * that have already proven every gradient finite. */
bp_status bp__optimizer_step_trusted(bp_optimizer *opt, bp_net *net);
/* The update alone: for callers that have already passed bp__optimizer_validate_for(opt, net)
 * with neither handle changed since, and proven every gradient finite. */
bp_status bp__optimizer_update(bp_optimizer *opt, bp_net *net);

/* Is every element of v finite? Returns the index of the first non-finite one or count. */
size_t bp__first_nonfinite(const float *v, size_t count);

/* ---- dataset ---- */

/* Invariant: every value of x and y is finite. */
struct bp_dataset {
    uint32_t magic;
    bp__alloc alloc;     /* kept so a bp_dataset_create_ex can be added later */
    size_t n;            /* samples */
    size_t in, out;      /* per-row widths, both >= 1 */
    float *x;            /* inputs [n x in] */
    float *y;            /* targets [n x out] */
    char err[BP__ERR_CAP];
};

static inline int bp__dataset_ok(const bp_dataset *d)
{
    return d != NULL && d->magic == BP__MAGIC_DATA;
}

/* Wrap buffers allocated from @p a (x: [n x in], y: [n x out], all finite) in a new data
 * set that owns them. On failure (BP_ERR_NOMEM) both buffers are freed and *out is NULL. */
bp_status bp__dataset_adopt(bp_dataset **out, const bp__alloc *a, float *x, float *y, size_t n,
                            size_t in, size_t outs);

/* ---- optimizer ---- */

/* Settings are stored by key: set[key - BP__OPT_KEY_FIRST] for enum bp_optimizer_key. */
#define BP__OPT_KEY_FIRST 100
#define BP__OPT_KEY_COUNT 17
/* Most per-parameter state slots any algorithm uses (Adam/AdamW/RMSprop: 3). */
#define BP__OPT_MAX_SLOTS 3

/* The optimizer. Its per-parameter state is ONE aligned block of nslots * bound_nparams
 * floats, slot-major: slot s of parameter i is state[s * bound_nparams + i], so each slot of
 * a layer is a contiguous run parallel to net->params (see optimizer.c for each algorithm's
 * slots). Everything a checkpoint must save: kind, set[], steps, bound, bound_nparams,
 * bound_nlayers, bound_hash, sgd_buf_ready, nadam_mu_product and the state floats. */
struct bp_optimizer {
    uint32_t magic;
    int kind;                    /* enum bp_optimizer_kind */
    bp__alloc alloc;             /* for the state block (the struct itself too) */
    double set[BP__OPT_KEY_COUNT];
    uint64_t steps;              /* successful updates since create/reset */
    int bound;                   /* 0: no state yet (allocated and bound at the next step) */
    size_t bound_nparams;        /* shape of the net the state belongs to */
    size_t bound_nlayers;
    uint64_t bound_hash;         /* bp__optimizer_shape_hash() of that net */
    float *state;                /* bp__malloc_aligned; NULL until the first step */
    size_t state_cap;            /* floats allocated (kept across reset for reuse) */
    int sgd_buf_ready;           /* SGD: momentum buffer holds a value (PyTorch's buf != None) */
    double nadam_mu_product;     /* NAdam: product of mu_1 .. mu_t (1 when t = 0) */
    char err[BP__ERR_CAP];
};

static inline int bp__optimizer_ok(const bp_optimizer *o)
{
    return o != NULL && o->magic == BP__MAGIC_OPT;
}

/* Per-parameter floats of state that algorithm @p kind keeps (0 for an unknown kind). */
size_t bp__optimizer_state_slots(int kind);
/* Floats in the bound state block (0 while unbound). */
size_t bp__optimizer_state_floats(const bp_optimizer *opt);
/* Hash of a net's shape (layer count and each layer's offset, weight and bias counts). */
uint64_t bp__optimizer_shape_hash(const bp_net *net);
/* BP_OK if @p opt and @p net are valid handles, the net has parameters, the settings are
 * consistent, and the optimizer is unbound or bound to a net of the same shape. Otherwise
 * the status, with the message in opt->err (when opt is valid) and bp_last_error().
 * bp_net_train_step() calls it before any forward work. Changes nothing else. */
bp_status bp__optimizer_validate_for(bp_optimizer *opt, const bp_net *net);
/* Allocate (or reuse) and initialise the state for @p net's shape and bind to it; steps = 0.
 * Used by the first step and by checkpoint loading. BP_ERR_NOMEM leaves opt unbound. */
bp_status bp__optimizer_bind(bp_optimizer *opt, const bp_net *net);

/* ---- persistence ---- */

/* Create an optimizer whose struct and state come from @p a (bp_optimizer_create() passes
 * bp__default_alloc; checkpoint loading passes the caller's allocator). */
bp_status bp__optimizer_create_with(bp_optimizer **out, int kind, const bp__alloc *a);

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
    BP__HP_POOL_SIZE = 8   /* max/avg pool: window side */
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
uint32_t bp__crc32(uint32_t crc, const void *data, size_t size);

/* Per-net persistence data (serialize.c): released by bp_net_free, copied by bp_net_clone. */
void bp__persist_free(bp_net *net);
bp_status bp__persist_clone(bp_net *dst, const bp_net *src);

/* Training-state records saved in a checkpoint's TRST section (docs/format.md): free-form
 * (key, bytes) pairs kept on the net, e.g. the fit loop's versioned state blob under the key
 * "fit". put copies @p len bytes of @p data (data may be NULL when len is 0) and replaces a
 * record with the same key; a NULL @p data with len 0 removes the record (BP_OK if absent).
 * Keys: 1 .. 255 bytes, NUL-terminated; records: at most 65536 per net, each at most
 * 2^30 bytes. BP_ERR_INVALID_ARG, BP_ERR_OUT_OF_RANGE, BP_ERR_NOMEM (net unchanged). */
bp_status bp__ckpt_state_put(bp_net *net, const char *key, const void *data, size_t len);
/* Find a record: *data (borrowed until the next put on @p net or its free) and *len.
 * BP_ERR_INDEX when absent (then *data = NULL, *len = 0). */
bp_status bp__ckpt_state_get(const bp_net *net, const char *key, const void **data,
                             size_t *len);

/* Buffer-based data set parsers (dataset_io.c), behind the public loaders, for the fuzz
 * targets and allocation-failure tests. @p buf must have a NUL byte at buf[size] (as
 * bp__read_file() leaves). @p name names the input in messages. */
bp_status bp__dataset_parse_csv(bp_dataset **out, const bp__alloc *a, const char *name,
                                const char *buf, size_t size, int delimiter, int has_header,
                                size_t target_first, size_t target_count);
bp_status bp__dataset_parse_fann(bp_dataset **out, const bp__alloc *a, const char *name,
                                 const char *buf, size_t size);
bp_status bp__dataset_parse_idx(bp_dataset **out, const bp__alloc *a, const char *images_name,
                                const unsigned char *images, size_t images_size,
                                const char *labels_name, const unsigned char *labels,
                                size_t labels_size, size_t classes);
/* The public file loaders with every allocation (file buffer, decompression, data) from
 * @p a; the public functions pass bp__default_alloc. */
bp_status bp__dataset_load_csv_with(bp_dataset **out, const bp__alloc *a, const char *path,
                                    int delimiter, int has_header, size_t target_first,
                                    size_t target_count);
bp_status bp__dataset_load_fann_with(bp_dataset **out, const bp__alloc *a, const char *path);
bp_status bp__dataset_load_idx_with(bp_dataset **out, const bp__alloc *a,
                                    const char *images_path, const char *labels_path,
                                    size_t classes);

#endif /* BP_INTERNAL_H */
