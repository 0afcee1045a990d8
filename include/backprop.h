/*
 * backprop.h -- the whole public API of libbackprop.
 *
 * backprop builds and trains feed-forward neural networks with backpropagation:
 * forward pass, error, backward pass by the chain rule, weight update, repeat.
 * Dense kernels are one BLAS sgemm plus one fused pass; everything is float32,
 * row-major, batch-major ([n x features]).
 *
 * Fifteen lines that train XOR:
 *
 *     bp_net *net; bp_optimizer *opt;
 *     const float x[8] = {0,0, 0,1, 1,0, 1,1}, y[4] = {0, 1, 1, 0};
 *     bp_net_create(&net, 2, 42);                       // 2 inputs, seed 42
 *     bp_net_add_dense(net, 8, BP_ACT_TANH);
 *     bp_net_add_dense(net, 1, BP_ACT_SIGMOID);
 *     bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM);
 *     bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 0.05);
 *     for (int i = 0; i < 500; i++) {
 *         float loss;
 *         if (bp_net_train_step(net, opt, BP_LOSS_MSE, x, y, 4, &loss) != BP_OK)
 *             fprintf(stderr, "%s\n", bp_net_last_error(net));
 *     }
 *     float out[4];
 *     bp_net_predict(net, x, 4, out, 4);                // ~ {0, 1, 1, 0}
 *     bp_optimizer_free(opt); bp_net_free(net);
 *
 * Conventions (true of every function below unless its documentation says otherwise):
 *  - Fallible functions return a bp_status: BP_OK (0) or a negative error code. A failed call
 *    leaves every object it was given as it was ("validate first, mutate after").
 *  - Functions that create a handle take `**out` first and set `*out = NULL` on failure; every
 *    other function takes its handle first, then inputs, then outputs.
 *  - Every handle has a bp_<object>_free() that accepts NULL. Freeing a net frees its layers.
 *  - Pointers passed in are not retained after the call; the library copies what it keeps.
 *    Pointers returned are borrowed from their handle; the lifetime is documented per function.
 *  - The library never aborts, exits or prints. The detailed message of a failure is kept on
 *    the handle (bp_net_last_error() ...) and in the calling thread's bp_last_error().
 *  - Threads: one thread at a time per handle; distinct handles are independent. There is no
 *    global mutable state except bp_last_error() (thread-local) and the process-wide BLAS
 *    thread count (bp_set_num_threads()). Exceptions that may run concurrently on ONE handle,
 *    as long as no other call modifies that handle meanwhile: bp_net_predict_ws() (each
 *    thread with its own scratch buffer), bp_net_predict_scratch_floats(), bp_net_save(),
 *    bp_net_save_buffer(), bp_net_get_scaler(), bp_net_get_meta() and the const getters
 *    (sizes, counts, bp_layer_get_weights() ...). Functions documented "Thread-safe" take no
 *    handle or only read constant data. Failures of these concurrent calls are reported
 *    through the calling thread's bp_last_error() only.
 *  - Enumerations are passed as int, sizes as size_t, data as float, settings as double.
 */
#ifndef BACKPROP_H
#define BACKPROP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================
 * Export and deprecation macros
 * ==========================================================================================*/

/** @def BP_API
 * Marks exported functions. Define BP_STATIC when linking the static library on Windows. */
#ifndef BP_API
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(BP_BUILDING_SHARED)
#define BP_API __declspec(dllexport)
#elif defined(BP_STATIC)
#define BP_API
#else
#define BP_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#define BP_API __attribute__((visibility("default")))
#else
#define BP_API
#endif
#endif

/** @def BP_DEPRECATED(msg)
 * Marks a function kept for compatibility; define BP_DISABLE_DEPRECATE_WARNINGS to silence. */
#ifndef BP_DEPRECATED
#if defined(BP_DISABLE_DEPRECATE_WARNINGS)
#define BP_DEPRECATED(msg)
#elif defined(__cplusplus) && __cplusplus >= 201402L
#define BP_DEPRECATED(msg) [[deprecated(msg)]]
#elif defined(__GNUC__) || defined(__clang__)
#define BP_DEPRECATED(msg) __attribute__((deprecated(msg)))
#elif defined(_MSC_VER)
#define BP_DEPRECATED(msg) __declspec(deprecated(msg))
#else
#define BP_DEPRECATED(msg)
#endif
#endif

/* ============================================================================================
 * Version
 * ==========================================================================================*/

/** Major version: changes with incompatible ABI changes from 1.0 on (it is the SONAME). */
#define BP_VERSION_MAJOR 0
/** Minor version: new functions; in 0.x also ABI changes (see docs/abi.md). */
#define BP_VERSION_MINOR 1
/** Patch version: fixes only. */
#define BP_VERSION_PATCH 0
/** MAJOR*10000 + MINOR*100 + PATCH, comparable with bp_version(). */
#define BP_VERSION_NUMBER (BP_VERSION_MAJOR * 10000 + BP_VERSION_MINOR * 100 + BP_VERSION_PATCH)
#define BP__STRINGIFY(x)  #x
#define BP__XSTRINGIFY(x) BP__STRINGIFY(x)
/** "MAJOR.MINOR.PATCH", derived from the three numbers above. */
#define BP_VERSION_STRING                                                                          \
    BP__XSTRINGIFY(BP_VERSION_MAJOR)                                                               \
    "." BP__XSTRINGIFY(BP_VERSION_MINOR) "." BP__XSTRINGIFY(BP_VERSION_PATCH)

/** @return the run-time library's BP_VERSION_NUMBER; compare with the header's to detect a
 *  header/library mismatch. Thread-safe. @since 0.1 */
BP_API unsigned bp_version(void);

/** @return the run-time library's version as a static string, e.g. "0.1.0". @since 0.1 */
BP_API const char *bp_version_string(void);

/* ============================================================================================
 * Status codes
 *
 * Values are stable: they are never renumbered or reused. Groups: -1xx argument and state,
 * -2xx shape, -3xx numeric, -4xx I/O and format, -5xx memory.
 * ==========================================================================================*/

/** Status of a fallible call: BP_OK (0) or a negative error code (values are stable). */
typedef enum bp_status {
    BP_OK = 0,                      /**< success */
    BP_ERR_INVALID_ARG = -100,      /**< NULL pointer, zero size, unknown enum or key, bad handle */
    BP_ERR_OUT_OF_RANGE = -101,     /**< a setting's value is outside its documented bounds */
    BP_ERR_STATE = -102,            /**< call not valid now (e.g. net has no layers, optimizer
                                         bound to a net of another shape) */
    BP_ERR_UNSUPPORTED = -103,      /**< feature not built in or not applicable */
    BP_ERR_BUFFER_TOO_SMALL = -104, /**< caller's output buffer is smaller than required */
    BP_ERR_SHAPE = -200,            /**< widths or sizes disagree */
    BP_ERR_INDEX = -201,            /**< an index (layer, class label, row) is out of range */
    BP_ERR_NONFINITE = -300,        /**< NaN or Inf in an input, target, loss or gradient */
    BP_ERR_IO = -400,               /**< the operating system refused a read or write */
    BP_ERR_FORMAT = -401,           /**< malformed file or buffer contents */
    BP_ERR_VERSION = -402,          /**< file written by an unsupported format version */
    BP_ERR_CHECKSUM = -403,         /**< file contents fail their checksum */
    BP_ERR_NOMEM = -500             /**< an allocation failed */
} bp_status;

/** @param status  a bp_status value (any int).
 *  @return a static, non-NULL, human-readable description of @p status; unknown codes give
 *  "unknown status". Thread-safe. @since 0.1 */
BP_API const char *bp_status_string(int status);

/** @return the detailed message of the last failed call made by the calling thread on any
 *  handle or constructor ("" if none). Thread-local: the library's only one. The pointer is
 *  valid until the calling thread's next failing call into the library. @since 0.1 */
BP_API const char *bp_last_error(void);

/* ============================================================================================
 * Handles
 * ==========================================================================================*/

/** A network: an ordered list of layers, their parameters, gradients and workspace. */
typedef struct bp_net bp_net;
/** A layer of a network; borrowed from the network and freed with it. */
typedef struct bp_layer bp_layer;
/** A gradient-descent optimizer with its per-parameter state. */
typedef struct bp_optimizer bp_optimizer;
/** A data set: inputs [n x in] and targets [n x out]. */
typedef struct bp_dataset bp_dataset;
/** A streaming source of rows from the caller's callbacks (bp_source_create()). @since 0.2 */
typedef struct bp_source bp_source;

/* ============================================================================================
 * Threads and BLAS backend
 * ==========================================================================================*/

/** Set the library's thread budget (process-wide: OpenBLAS has one thread pool). BLAS runs
 *  the GEMMs on up to this many threads; the memory-bound passes between them (optimizer
 *  updates of nets with 65,536 parameters or more; in training, the activation layers',
 *  batch normalisation's, pooling's and the convolutions' im2col/col2im passes over 65,536
 *  floats or more, split by sample, channel or plane) are split across as many threads: the
 *  calling thread plus worker threads that each network starts on first need, which block
 *  while idle, never run at the same time as the BLAS threads, are kept off the calling
 *  thread's CPU (Linux, within the caller's affinity mask) and are joined by bp_net_free().
 *  What is and is not thread-count independent: the split of those memory-bound passes
 *  never changes a result (each element, sample or channel is computed alone, with no
 *  reduction across threads), but BLAS's own threading may (OpenBLAS can choose other
 *  kernels and summation orders for another thread count), and a convolution takes the
 *  batch in wider chunks above one thread (its weight gradient adds the chunks in another
 *  grouping), so results are bit-identical for the same seed, calls and thread count, and
 *  may differ in the last bits between thread counts (since 0.2 this says so; 0.1 read as
 *  thread-count independence). A process forked from one with workers runs those passes on
 *  one thread.
 *  @param threads 1 .. 1024; 0 restores the default (all cores or OPENBLAS_NUM_THREADS).
 *  @return BP_OK, or BP_ERR_OUT_OF_RANGE. Not safe to call while another thread is inside
 *  the library. @since 0.1 */
BP_API bp_status bp_set_num_threads(int threads);

/** @return the thread budget: the number of threads BLAS currently uses (>= 1). @since 0.1 */
BP_API int bp_get_num_threads(void);

/** @return a static string describing the BLAS backend: library, version and build
 *  configuration, the kernel core in use, the CPU's vector extensions, and, when the CPU
 *  supports AVX2/AVX-512 but the BLAS runs pre-AVX kernels, or supports AVX-512 but the
 *  BLAS runs AVX2 kernels, a hint naming the OPENBLAS_CORETYPE setting that fixes it.
 *  Computed once; thread-safe. @since 0.1 */
BP_API const char *bp_backend_info(void);

/* ============================================================================================
 * Enumerations
 * ==========================================================================================*/

/** Activation functions (pass as int). */
enum bp_activation {
    BP_ACT_IDENTITY = 0,   /**< f(z) = z */
    BP_ACT_SIGMOID = 1,    /**< 1 / (1 + e^-z) */
    BP_ACT_TANH = 2,       /**< tanh(z) */
    BP_ACT_RELU = 3,       /**< max(0, z) */
    BP_ACT_LEAKY_RELU = 4, /**< z > 0 ? z : slope*z; slope is BP_LAYER_LEAKY_SLOPE (0.01) */
    BP_ACT_ELU = 5,        /**< z > 0 ? z : alpha*(e^z - 1); alpha is BP_LAYER_ELU_ALPHA (1) */
    BP_ACT_GELU = 6,     /**< tanh approximation: 0.5 z (1 + tanh(sqrt(2/pi)(z + 0.044715 z^3))) */
    BP_ACT_SILU = 7,     /**< swish: z * sigmoid(z) */
    BP_ACT_SOFTPLUS = 8, /**< log(1 + e^z), computed stably */
    BP_ACT_SOFTMAX = 9   /**< row-wise softmax; only on the output layer */
};

/** Weight initialisation schemes (pass as int). Dense layers: fan_in = inputs, fan_out =
 *  units; convolutions: fan_in = C*kh*kw, fan_out = filters*kh*kw. */
enum bp_init {
    BP_INIT_DEFAULT = 0,        /**< He normal for the ReLU family (ReLU, leaky ReLU, ELU,
                                     GELU, SiLU), Glorot uniform otherwise */
    BP_INIT_GLOROT_UNIFORM = 1, /**< U(-a, a), a = sqrt(6 / (fan_in + fan_out)) */
    BP_INIT_GLOROT_NORMAL = 2,  /**< N(0, 2 / (fan_in + fan_out)) */
    BP_INIT_HE_UNIFORM = 3,     /**< U(-a, a), a = sqrt(6 / fan_in) */
    BP_INIT_HE_NORMAL = 4,      /**< N(0, 2 / fan_in) */
    BP_INIT_LECUN_NORMAL = 5,   /**< N(0, 1 / fan_in) */
    BP_INIT_ZEROS = 6,          /**< all weights 0 */
    BP_INIT_CONSTANT = 7,       /**< all weights equal to the given value */
    BP_INIT_NORMAL = 8          /**< N(0, value^2): a fixed standard deviation given as the
                                     value, [0, 1e3], whatever the fans (e.g. the "naive"
                                     N(0, 0.01^2) of early networks) @since 0.1 */
};

/** Layer kinds, as reported by bp_layer_kind(). */
enum bp_layer_kind {
    BP_LAYER_DENSE = 1,          /**< fully connected: y = f(x W^T + b) */
    BP_LAYER_BATCHNORM = 2,      /**< batch normalisation, bp_net_add_batchnorm() */
    BP_LAYER_DROPOUT = 3,        /**< inverted dropout, bp_net_add_dropout() */
    BP_LAYER_CONV2D = 4,         /**< 2-D convolution, bp_net_add_conv2d() */
    BP_LAYER_MAXPOOL2D = 5,      /**< 2-D max pooling, bp_net_add_maxpool2d() */
    BP_LAYER_AVGPOOL2D = 6,      /**< 2-D average pooling, bp_net_add_avgpool2d() */
    BP_LAYER_FLATTEN = 7,        /**< image rows read as flat rows, bp_net_add_flatten() */
    BP_LAYER_GLOBAL_AVGPOOL = 8, /**< mean of each channel, bp_net_add_global_avgpool() */
    BP_LAYER_ACTIVATION = 9,     /**< standalone activation, bp_net_add_activation() */
    BP_LAYER_EMBEDDING = 10,     /**< token ids -> vectors, bp_net_add_embedding() @since 0.2 */
    BP_LAYER_LAYERNORM = 11,     /**< layer normalisation, bp_net_add_layernorm() @since 0.2 */
    BP_LAYER_RNN = 12,           /**< simple recurrent layer, bp_net_add_rnn() @since 0.2 */
    BP_LAYER_LSTM = 13,          /**< long short-term memory, bp_net_add_lstm() @since 0.2 */
    BP_LAYER_GRU = 14            /**< gated recurrent unit, bp_net_add_gru() @since 0.2 */
};

/** Loss functions (pass as int). Every loss is the mean over the batch of a per-row sum:
 *  L = (1/n) sum_rows sum_cols l(pred, target), except MSE/MAE/Huber which also average over
 *  the output columns: L = (1/(n*out)) sum l.
 *  Per step (since 0.2): when the output rows are sequences of T steps of C values
 *  (bp_layer_output_steps() of the last layer is T > 0), every loss sees the n rows as n*T
 *  rows of C: the softmax cross-entropies take one-hot (or probability) targets [T x C] or
 *  class indices [T] per row and are the mean over the n*T steps; MSE, MAE, Huber and BCE
 *  are unchanged (means over all n*T*C elements); BP_METRIC_ACCURACY counts steps. */
enum bp_loss {
    BP_LOSS_MSE = 1,        /**< mean of (pred - target)^2 over all n*out elements */
    BP_LOSS_MAE = 2,        /**< mean of |pred - target| over all n*out elements */
    BP_LOSS_HUBER = 3,      /**< mean of Huber(pred - target; delta), delta BP_NET_HUBER_DELTA */
    BP_LOSS_BCE_LOGITS = 4, /**< binary cross-entropy; outputs are logits (use identity
                                 activation), targets in [0, 1]; mean over n*out elements;
                                 stable form max(z,0) - z t + log(1 + e^-|z|) */
    BP_LOSS_SOFTMAX_CE = 5, /**< categorical cross-entropy of a softmax output layer against
                                 one-hot (or probability) target rows [n x out]; sum over
                                 classes, mean over rows; fused with softmax in train_step.
                                 L = -sum_j t_j log p_j for any finite target rows; rows
                                 that do not sum to 1 (label weights, smoothing without
                                 normalising) get the exact gradient of that loss, dL/dz =
                                 (p sum_j t_j - t) / n, as in PyTorch (since 0.2; 0.1 used
                                 (p - t) / n, right only for rows summing to 1) */
    BP_LOSS_SPARSE_SOFTMAX_CE = 6 /**< as BP_LOSS_SOFTMAX_CE with targets given as class
                                  indices [n] (0 .. out-1, stored as float) */
};

/** Optimizer algorithms (pass as int to bp_optimizer_create()). */
enum bp_optimizer_kind {
    BP_OPTIMIZER_SGD = 1,         /**< SGD with momentum, dampening, Nesterov, weight decay */
    BP_OPTIMIZER_ADAGRAD = 2,     /**< Duchi et al. 2011 */
    BP_OPTIMIZER_RMSPROP = 3,     /**< Hinton 2012; optional momentum and centred variant */
    BP_OPTIMIZER_ADAM = 4,        /**< Kingma & Ba 2015, bias-corrected; AMSGrad flag */
    BP_OPTIMIZER_ADAMW = 5,       /**< Adam with decoupled weight decay (Loshchilov & Hutter) */
    BP_OPTIMIZER_ADAMAX = 6,      /**< Adam with the infinity norm */
    BP_OPTIMIZER_NADAM = 7,       /**< Adam with Nesterov momentum (Dozat 2016), as PyTorch's
                                       NAdam: momentum schedule mu_t = beta1 (1 - 0.5 *
                                       0.96^(0.004 t)) (momentum_decay 0.004, fixed) */
    BP_OPTIMIZER_IRPROP_MINUS = 8 /**< iRprop- (Igel & Huesken 2000), FANN's default; meant
                                       for full-batch training; ignores the learning rate */
};

/** Optimizer settings for bp_optimizer_set()/bp_optimizer_get() (block 100..199).
 *  Ranges are inclusive; bp_optimizer_param_bounds() returns them. Each key applies to the
 *  algorithms named; bp_optimizer_set()/bp_optimizer_get() refuse it on any other algorithm
 *  (BP_ERR_INVALID_ARG, "BP_OPT_BETA1 does not apply to SGD"). Applies to: learning rate and
 *  weight decay: every algorithm but iRprop-; momentum: SGD, RMSprop; dampening, Nesterov:
 *  SGD; beta1, beta2: Adam, AdamW, Adamax, NAdam; epsilon: Adagrad, RMSprop and the Adam
 *  family; AMSGrad: Adam, AdamW; rho, centred: RMSprop; initial accumulator: Adagrad;
 *  BP_OPT_RPROP_*: iRprop-. */
enum bp_optimizer_key {
    BP_OPT_LEARNING_RATE = 100, /**< step size; [0, 1e3]; default 0.01 (Adam, AdamW, NAdam
                                     0.001; Adamax 0.002) */
    BP_OPT_MOMENTUM = 101,      /**< SGD/RMSprop momentum; [0, 1); default 0 */
    BP_OPT_DAMPENING = 102,     /**< SGD momentum dampening; [0, 1]; default 0 */
    BP_OPT_NESTEROV = 103,      /**< SGD Nesterov momentum, 0/1; default 0. Needs momentum > 0
                                     and dampening 0 (else the step fails, BP_ERR_STATE) */
    BP_OPT_WEIGHT_DECAY = 104,  /**< L2 coefficient, added to the gradient (SGD, Adagrad,
                                     RMSprop, Adam, Adamax, NAdam) or decoupled (AdamW,
                                     multiplied by the learning rate); [0, 1e3]; default 0
                                     (AdamW 0.01) */
    BP_OPT_BETA1 = 105,         /**< first-moment decay; [0, 1); default 0.9 */
    BP_OPT_BETA2 = 106,         /**< second-moment decay; [0, 1); default 0.999 */
    BP_OPT_EPSILON = 107,       /**< denominator guard; [0, 1]; default 1e-8 (Adagrad 1e-10) */
    BP_OPT_AMSGRAD = 108,       /**< Adam/AdamW AMSGrad variant, 0/1; default 0 */
    BP_OPT_RHO = 109,           /**< RMSprop squared-gradient decay (alpha); [0, 1); 0.99 */
    BP_OPT_CENTERED = 110,      /**< RMSprop centred variant, 0/1; default 0 */
    BP_OPT_INITIAL_ACCUMULATOR = 111, /**< Adagrad initial accumulator; [0, 1e3]; default 0;
                                     takes effect when the state is created (first step after
                                     create or reset) */
    BP_OPT_RPROP_ETA_PLUS = 112,      /**< iRprop- step increase factor; [1, 10]; default 1.2 */
    BP_OPT_RPROP_ETA_MINUS = 113,     /**< iRprop- step decrease factor; (0, 1]; default 0.5 */
    BP_OPT_RPROP_DELTA_INIT = 114,    /**< iRprop- initial step; [0, 1e3]; default 0.1 (FANN);
                                         takes effect when the state is created */
    BP_OPT_RPROP_DELTA_MIN = 115,     /**< iRprop- minimum step; [0, 1e3]; default 0; must not
                                         exceed the maximum when stepping (else BP_ERR_STATE) */
    BP_OPT_RPROP_DELTA_MAX = 116      /**< iRprop- maximum step; [0, 1e6]; default 50 (FANN) */
};

/** Layer settings for bp_layer_set()/bp_layer_get() (block 200..299). Each key applies to
 *  the kinds named; bp_layer_set()/bp_layer_get() on another kind fail with
 *  BP_ERR_INVALID_ARG. */
enum bp_layer_key {
    BP_LAYER_TRAINABLE = 200,    /**< every kind. 1: the optimizer updates this layer; 0:
                                      frozen (its gradients are still computed). Default 1 */
    BP_LAYER_LEAKY_SLOPE = 201,  /**< dense, conv2d, activation: leaky ReLU negative slope;
                                      [0, 1]; default 0.01 */
    BP_LAYER_ELU_ALPHA = 202,    /**< dense, conv2d, activation: ELU alpha; [0, 100];
                                      default 1 */
    BP_LAYER_BN_MOMENTUM = 203,  /**< batchnorm: weight of the old running statistics,
                                      running = m * running + (1 - m) * batch (Keras'
                                      convention; PyTorch's momentum is 1 - m); [0, 1];
                                      default 0.99 @since 0.1 */
    BP_LAYER_BN_EPSILON = 204,   /**< batchnorm: added to the variance; [1e-12, 1]; default
                                      1e-5 @since 0.1 */
    BP_LAYER_DROPOUT_RATE = 205, /**< dropout: probability of zeroing an activation in
                                     training; [0, 1); default: bp_net_add_dropout()'s rate
                                     @since 0.1 */
    BP_LAYER_L2 = 206,           /**< dense, conv2d, rnn, lstm, gru: L2 penalty lambda;
                                      every backward pass adds lambda * w to dL/dw for the
                                      weights (not the biases), i.e. the gradient of (lambda/2) * sum w^2. The
                                      loss value reported does not include the penalty.
                                      [0, 1e3]; default 0 @since 0.1 */
    BP_LAYER_L1 = 207,           /**< dense, conv2d, rnn, lstm, gru: L1 penalty lambda; adds
                                      lambda * sign(w) to dL/dw (sign(0) = 0), the gradient of
                                      lambda * sum |w|; weights only; not in the reported
                                      loss. [0, 1e3]; default 0 @since 0.1 */
    BP_LAYER_STATEFUL = 208,     /**< rnn, lstm, gru: 1 = stateful (truncated backpropagation
                                      through time): the final state of one training batch
                                      is the initial state of the next, whose batch size
                                      must then be the same (else the step fails with
                                      BP_ERR_SHAPE; bp_net_reset_state() starts afresh).
                                      0/1; default 0 @since 0.2 */
    BP_LAYER_LN_EPSILON = 209    /**< layernorm: added to the variance; [1e-12, 1]; default
                                      1e-5 (PyTorch's) @since 0.2 */
};

/** Network settings for bp_net_set()/bp_net_get() (block 300..399). */
enum bp_net_key {
    BP_NET_ACCUMULATE_GRADS = 300, /**< 1: bp_net_backward() adds to the gradients and
                                        bp_net_train_step() does not zero them; call
                                        bp_net_zero_grad() yourself. Default 0 */
    BP_NET_HUBER_DELTA = 301,      /**< Huber loss threshold; (0, 1e6]; default 1 */
    BP_NET_CLIP_NORM = 302,        /**< if > 0, train_step scales all gradients so their
                                        global L2 norm is at most this; [0, 1e9]; default 0 */
    BP_NET_CLIP_VALUE = 303,       /**< if > 0, train_step clamps each gradient element to
                                        [-v, v] (after norm clipping); [0, 1e9]; default 0 */
    BP_NET_APPLY_SCALERS = 304     /**< 0/1, default 0. 1: bp_net_predict() and
                                        bp_net_evaluate() take raw inputs and give raw
                                        outputs: they apply the input scaler kept with
                                        bp_net_set_scaler() to the inputs and invert the
                                        target scaler on the outputs (each only when set;
                                        evaluate then measures loss and metrics in the raw
                                        target units, against the data set's raw targets).
                                        Training (train_step, fit and fit's validation),
                                        forward and bp_net_predict_ws() never apply them:
                                        train on scaled data. Copied by bp_net_clone(), not
                                        saved in model files (set it after loading). The
                                        first predict with an input scaler allocates one
                                        chunk of scaled rows, kept by the net. @since 0.2 */
};

/* ============================================================================================
 * Network
 * ==========================================================================================*/

/** Allocation callback for bp_net_create_ex(): return @p size bytes aligned for any object
 *  (like malloc), or NULL on failure. @p user is the pointer given to bp_net_create_ex().
 *  May be called from any thread that calls into the network. */
typedef void *(*bp_alloc_fn)(void *user, size_t size);
/** Release callback for bp_net_create_ex(): free @p ptr, which came from the matching
 *  bp_alloc_fn; must accept NULL. */
typedef void (*bp_free_fn)(void *user, void *ptr);

/** Create an empty network.
 *  @param out     receives the new network; NULL on failure.
 *  @param inputs  width of each input row, >= 1.
 *  @param seed    seeds the network's random generator (weight initialisation, shuffling):
 *                 the same seed, calls and thread count give bit-identical results.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_create(bp_net **out, size_t inputs, uint64_t seed);

/** As bp_net_create(), with every allocation the network (and anything it owns) makes going
 *  through @p alloc_fn / @p free_fn with @p user. Both NULL selects malloc/free.
 *  @param out  receives the new network; NULL on failure.
 *  @param inputs  width of each input row, >= 1.
 *  @param seed  seeds the generator, as bp_net_create().
 *  @param alloc_fn  allocation callback; NULL together with @p free_fn selects malloc.
 *  @param free_fn  release callback matching @p alloc_fn; NULL together with it selects free.
 *  @param user  passed to @p alloc_fn and @p free_fn.
 *  @return as bp_net_create().
 *  @since 0.1 */
BP_API bp_status bp_net_create_ex(bp_net **out, size_t inputs, uint64_t seed, bp_alloc_fn alloc_fn,
                                  bp_free_fn free_fn, void *user);

/** Create an empty network whose input rows are images of @p channels x @p height x
 *  @p width, stored channels-first (NCHW: row = channel planes one after another, each
 *  plane row-major), which is the memory order of IDX files such as MNIST ([n x 1 x 28 x
 *  28]). The input width is channels * height * width; convolution and pooling layers use
 *  the shape, dense layers read the rows flat.
 *  @param out       receives the new network; NULL on failure.
 *  @param channels  >= 1.
 *  @param height    >= 1.
 *  @param width     >= 1; the product of the three must not exceed 2^24.
 *  @param seed      as for bp_net_create().
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_create_image(bp_net **out, size_t channels, size_t height, size_t width,
                                     uint64_t seed);

/** As bp_net_create_image(), with the allocator of bp_net_create_ex().
 *  @param out       receives the new network; NULL on failure.
 *  @param channels  >= 1.
 *  @param height    >= 1.
 *  @param width     >= 1; the product of the three must not exceed 2^24.
 *  @param seed      as for bp_net_create().
 *  @param alloc_fn  allocation callback; NULL together with @p free_fn selects malloc.
 *  @param free_fn   release callback matching @p alloc_fn; NULL together with it selects free.
 *  @param user      passed to @p alloc_fn and @p free_fn.
 *  @return as bp_net_create_image(). @since 0.1 */
BP_API bp_status bp_net_create_image_ex(bp_net **out, size_t channels, size_t height, size_t width,
                                        uint64_t seed, bp_alloc_fn alloc_fn, bp_free_fn free_fn,
                                        void *user);

/** The input shape: as given to bp_net_create_image(), [1 x steps x features] for
 *  bp_net_create_sequence(), or [inputs x 1 x 1] for a network made by bp_net_create().
 *  @param net       the network.
 *  @param channels  receives C.
 *  @param height    receives H.
 *  @param width     receives W.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, NULL output). @since 0.1 */
BP_API bp_status bp_net_input_shape(const bp_net *net, size_t *channels, size_t *height,
                                    size_t *width);

/* --------------------------------------------------------------------------------------------
 * Sequences: rows of T steps of F features (see docs/sequences.md)
 * ------------------------------------------------------------------------------------------*/

/** Create an empty network whose input rows are sequences of @p steps steps of @p features
 *  features, stored step-major: feature f of step t at t * features + f. Their shape is
 *  reported as [1 x steps x features] (bp_net_input_shape(), bp_layer_output_shape()), and
 *  bp_net_input_steps() tells a sequence from a one-channel image. Dense, activation (softmax
 *  included), dropout and layer-normalisation layers work per step and keep the steps (a
 *  dense layer maps [T x F] to [T x units] with one weight matrix shared by all steps);
 *  flatten makes flat rows [T*F]; convolution, pooling and batch normalisation refuse
 *  sequences (BP_ERR_SHAPE). The losses see a sequence output as n*T rows of its step width
 *  (see enum bp_loss). Token ids go in as floats, one feature per step, to
 *  bp_net_add_embedding().
 *  @param out       receives the new network; NULL on failure.
 *  @param steps     T, >= 1.
 *  @param features  F, >= 1; T * F must not exceed 2^24.
 *  @param seed      as for bp_net_create().
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_NOMEM. @since 0.2 */
BP_API bp_status bp_net_create_sequence(bp_net **out, size_t steps, size_t features, uint64_t seed);

/** As bp_net_create_sequence(), with the allocator of bp_net_create_ex().
 *  @param out       receives the new network; NULL on failure.
 *  @param steps     T, >= 1.
 *  @param features  F, >= 1; T * F must not exceed 2^24.
 *  @param seed      as for bp_net_create().
 *  @param alloc_fn  allocation callback; NULL together with @p free_fn selects malloc.
 *  @param free_fn   release callback matching @p alloc_fn; NULL together with it selects free.
 *  @param user      passed to @p alloc_fn and @p free_fn.
 *  @return as bp_net_create_sequence(). @since 0.2 */
BP_API bp_status bp_net_create_sequence_ex(bp_net **out, size_t steps, size_t features,
                                           uint64_t seed, bp_alloc_fn alloc_fn, bp_free_fn free_fn,
                                           void *user);

/** The steps T of the network's input rows: as given to bp_net_create_sequence(), 0 when
 *  they are not sequences (bp_net_create(), bp_net_create_image()).
 *  @param net    the network.
 *  @param steps  receives T, or 0.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, NULL output). @since 0.2 */
BP_API bp_status bp_net_input_steps(const bp_net *net, size_t *steps);

/** Append an embedding layer: token ids -> vectors, y[t] = W[id(t)] (PyTorch's
 *  nn.Embedding). It must be the first layer of a net made by
 *  bp_net_create_sequence(&net, steps, 1, seed): each input row holds T token ids stored as
 *  floats (integers, exact below 2^24); the output rows are [T x dimension]. Weights
 *  W [vocabulary x dimension] row-major (row v is token v's vector: PyTorch's
 *  embedding.weight can be copied in with bp_layer_set_weights()), drawn from N(0, 1) like
 *  PyTorch's; no biases. Every call that takes inputs (bp_net_forward(), bp_net_predict(),
 *  bp_net_train_step(), bp_net_fit(), bp_net_evaluate() ...) checks every id first: one that
 *  is not an integer in [0, vocabulary) fails the call with BP_ERR_INDEX naming the row and
 *  step, and nothing is changed. The weight gradient is dense ([vocabulary x dimension], the
 *  rows of ids not in the batch 0), as PyTorch's with sparse=False, so every optimizer
 *  updates exactly as there. Settings: BP_LAYER_TRAINABLE, BP_LAYER_L2, BP_LAYER_L1.
 *  @param net         the network.
 *  @param vocabulary  number of token ids, 1 .. 2^24.
 *  @param dimension   vector width, 1 .. 2^24; steps * dimension at most 2^24.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (not the first layer), BP_ERR_SHAPE (the
 *  input rows are not sequences of one feature, or the output is wider than 2^24),
 *  BP_ERR_NOMEM. @since 0.2 */
BP_API bp_status bp_net_add_embedding(bp_net *net, size_t vocabulary, size_t dimension);

/** Append a layer normalisation (Ba et al. 2016; PyTorch's nn.LayerNorm over the last
 *  dimension): y = g * (x - mean) / sqrt(var + eps) + b with the mean and biased variance of
 *  the F features of each row: of each step on sequence rows [T x F], of the whole row on
 *  flat rows (all C*H*W values of an image row). The same in training and inference; shape
 *  unchanged. Gain g [F] (the layer's weights, initialised to 1) and bias b [F] (0);
 *  eps BP_LAYER_LN_EPSILON (default 1e-5). Settings: BP_LAYER_TRAINABLE, BP_LAYER_LN_EPSILON.
 *  @param net  the network.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (after a softmax layer), BP_ERR_NOMEM.
 *  @since 0.2 */
BP_API bp_status bp_net_add_layernorm(bp_net *net);

/** Free a network and its layers. NULL is a no-op.
 *  @param net  the network.
 *  @since 0.1 */
BP_API void bp_net_free(bp_net *net);

/** Deep-copy a network: layers, parameters, settings and random state (not gradients or
 *  workspace). The copy is independent: use one per thread for concurrent work.
 *  @param out  receives the copy; NULL on failure. Free with bp_net_free().
 *  @param net  the network to copy; unchanged.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_clone(bp_net **out, const bp_net *net);

/** @param net  the network.
 *  @return the detailed message of the last failed call on @p net or its layers that may
 *  modify them ("" if none, a static message if @p net is invalid); calls taking a const net
 *  or layer (getters, saving, history export ...) report in bp_last_error() only. Borrowed:
 *  valid until the next call on @p net. @since 0.1 */
BP_API const char *bp_net_last_error(const bp_net *net);

/** Append a dense (fully connected) layer y = f(x W^T + b), W [units x in], b [units].
 *  Weights use BP_INIT_DEFAULT for @p activation, drawn from the net's generator; biases 0.
 *  A softmax layer must be the last: adding a layer after one fails with BP_ERR_STATE.
 *  On sequence rows [T x F] (bp_net_create_sequence()) the layer works per step, with one
 *  W [units x F] and b shared by all steps: [T x F] -> [T x units], softmax over each step's
 *  units (since 0.2).
 *  @param net  the network.
 *  @param units       output width (per step on sequences), 1 .. 2^24.
 *  @param activation  an enum bp_activation value.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE, BP_ERR_SHAPE (T * units above 2^24),
 *  BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_add_dense(bp_net *net, size_t units, int activation);

/* --------------------------------------------------------------------------------------------
 * Deeper networks: normalisation, dropout, convolution, pooling (see docs/deep-networks.md)
 *
 * Shapes. Every layer has an output shape [C x H x W] (bp_layer_output_shape()); flat rows
 * are [width x 1 x 1]. Image rows are channels-first (NCHW), see bp_net_create_image().
 *
 * Training and inference mode. bp_net_forward(), bp_net_train_step() and
 * bp_net_compute_grads() run the layers in training mode: batch normalisation uses the
 * statistics of the batch and updates its running statistics, dropout drops. bp_net_predict()
 * runs them in inference mode: batch normalisation uses the running statistics (and updates
 * nothing), dropout is the identity. So predict is deterministic and leaves the network
 * unchanged; a training-mode forward pass changes the running statistics and advances the
 * network's generator (dropout masks).
 * ------------------------------------------------------------------------------------------*/

/** Append a batch normalisation layer for the previous layer's output (or the input):
 *  per feature for flat rows, per channel (over the batch and all H x W positions) for
 *  image rows. y = gamma * (x - mean) / sqrt(var + eps) + beta, with the batch's mean and
 *  biased variance in training mode and the running ones in inference (see above). gamma
 *  and beta (one each per channel) are the layer's weights (initialised to 1) and biases
 *  (0), trained like any other; running mean 0 and variance 1 at first, updated in every
 *  training-mode forward pass with BP_LAYER_BN_MOMENTUM, the running variance with the
 *  unbiased batch variance var * M / (M - 1) over the M values of a channel, as PyTorch
 *  (since 0.2; 0.1 used the biased one); BP_LAYER_BN_EPSILON. Backward is
 *  the closed form of the batch-statistics forward. A batch of one row normalises flat
 *  features to 0: train with batches of several rows. bp_layer_init_weights() re-draws
 *  gamma like any weights; BP_INIT_CONSTANT with 1 restores the initial value. Sequence rows
 *  are refused (BP_ERR_SHAPE): normalise them with bp_net_add_layernorm().
 *  @param net  the network.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (after a softmax layer), BP_ERR_SHAPE
 *  (sequence rows), BP_ERR_NOMEM.
 *  @since 0.1 */
BP_API bp_status bp_net_add_batchnorm(bp_net *net);

/** Append an inverted dropout layer: in training mode each value is zeroed with probability
 *  @p rate and the others are scaled by 1 / (1 - rate), so inference (the identity) needs no
 *  rescaling. Masks are drawn from the network's generator (reproducible for a seed).
 *  @param net   the network.
 *  @param rate  in [0, 1); changeable later with BP_LAYER_DROPOUT_RATE.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle), BP_ERR_OUT_OF_RANGE (rate),
 *  BP_ERR_STATE, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_add_dropout(bp_net *net, double rate);

/** Append a standalone activation y = f(x) (shape unchanged, no parameters), e.g. ReLU after
 *  batch normalisation. A softmax activation must be the last layer, as for dense layers,
 *  and takes part in the fused softmax + cross-entropy.
 *  @param net         the network.
 *  @param activation  an enum bp_activation value.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_add_activation(bp_net *net, int activation);

/** Append a 2-D convolution with @p filters output channels and a fused bias + activation:
 *  y[f][oy][ox] = act(b[f] + sum_{c,ky,kx} W[f][c][ky][kx] x[c][oy*s - p + ky][ox*s - p + kx])
 *  (cross-correlation, as in other frameworks), zero padding @p padding on every side.
 *  Input: the previous layer's [C x H x W] (or the net's input shape); output
 *  [filters x OH x OW], OH = (H + 2 padding - kernel_h) / stride + 1, likewise OW.
 *  Weights [filters x C x kernel_h x kernel_w] row-major (bp_layer_get_weights()), biases
 *  [filters]; BP_INIT_DEFAULT with fan_in = C*kh*kw. Implemented as im2col + sgemm.
 *  @param net         the network.
 *  @param filters     output channels, 1 .. 2^24.
 *  @param kernel_h    kernel height, 1 .. 1024.
 *  @param kernel_w    kernel width, 1 .. 1024.
 *  @param stride      1 .. 1024, both directions.
 *  @param padding     zero padding, smaller than both kernel sizes ("same" for odd k at
 *                     stride 1: (k - 1) / 2).
 *  @param activation  an enum bp_activation value other than BP_ACT_SOFTMAX.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (kernel larger than the padded input,
 *  output wider than 2^24, sequence rows), BP_ERR_STATE, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_add_conv2d(bp_net *net, size_t filters, size_t kernel_h, size_t kernel_w,
                                   size_t stride, size_t padding, int activation);

/** Append 2-D max pooling: the maximum of each @p size x @p size window, windows moved by
 *  @p stride, no padding: [C x H x W] -> [C x OH x OW], OH = (H - size) / stride + 1.
 *  Backward routes each gradient to the window's first maximal position.
 *  @param net     the network.
 *  @param size    window side, 1 .. 1024, at most H and W.
 *  @param stride  1 .. 1024 (usually = size).
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (window larger than the input, sequence
 *  rows), BP_ERR_STATE, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_add_maxpool2d(bp_net *net, size_t size, size_t stride);

/** Append 2-D average pooling: the mean of each window; shapes and arguments as
 *  bp_net_add_maxpool2d().
 *  @param net     the network.
 *  @param size    window side, 1 .. 1024, at most H and W.
 *  @param stride  1 .. 1024 (usually = size).
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (window larger than the input, sequence
 *  rows), BP_ERR_STATE, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_add_avgpool2d(bp_net *net, size_t size, size_t stride);

/** Append global average pooling: [C x H x W] -> [C x 1 x 1], the mean of each channel.
 *  @param net  the network.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (sequence rows), BP_ERR_STATE,
 *  BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_add_global_avgpool(bp_net *net);

/** Append a flatten layer: [C x H x W] -> [C*H*W x 1 x 1]. NCHW rows are already in that
 *  order, so it costs nothing (no copy, no computation) except as the first layer; dense
 *  layers read image rows flat without it. Sequence rows [T x F] become flat rows [T*F]
 *  (then a dense layer sees the whole sequence, not each step).
 *  @param net  the network.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_add_flatten(bp_net *net);

/* --------------------------------------------------------------------------------------------
 * Recurrent layers: RNN, LSTM and GRU over sequence rows, in PyTorch's layout
 * ------------------------------------------------------------------------------------------*/

/** Flags of bp_net_add_rnn(), bp_net_add_lstm() and bp_net_add_gru() (OR them; 0 for
 *  neither). */
enum bp_recurrent_flag {
    BP_RNN_LAST_STEP = 1,    /**< output only the last step's h [H] (flat rows), not every
                                  step's [T x H] (sequence rows) @since 0.2 */
    BP_RNN_BIDIRECTIONAL = 2 /**< a second pass, backwards in time, with its own parameters;
                                  outputs concatenated per step [forward H | backward H]
                                  (PyTorch's layout); with BP_RNN_LAST_STEP: the forward
                                  pass's last step and the backward pass's output at t = 0,
                                  i.e. PyTorch's h_n of both directions @since 0.2 */
};

/** Append a simple (Elman) recurrent layer over sequence rows [T x F] (the net's input, or
 *  the previous layer's output, must be a sequence: bp_net_create_sequence()), as PyTorch's
 *  nn.RNN: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), h_{-1} = 0, f = tanh or ReLU.
 *  Output [T x H] (every step's h_t; [T x 2H] bidirectional) or, with BP_RNN_LAST_STEP, [H]
 *  ([2H]); see enum bp_recurrent_flag.
 *
 *  Parameters, PyTorch's layout and order so that its state_dict copies in unchanged:
 *  bp_layer_get_weights()/bp_layer_set_weights() see W_ih [G*H x F] then W_hh [G*H x H]
 *  (row-major, as weight_ih_l0 and weight_hh_l0), followed by the backward direction's
 *  (weight_ih_l0_reverse, weight_hh_l0_reverse) when bidirectional;
 *  bp_layer_get_biases()/bp_layer_set_biases() see b_ih [G*H] then b_hh [G*H] (bias_ih_l0,
 *  bias_hh_l0), then the backward direction's. G is 1 here, 4 for the LSTM (gate rows i, f,
 *  g, o), 3 for the GRU (r, z, n). Initialised like PyTorch: every weight and bias uniform
 *  in [-1/sqrt(H), 1/sqrt(H)], drawn from the net's generator.
 *
 *  Training runs backpropagation through time over the T steps of each row. With
 *  BP_LAYER_STATEFUL set, the final state (h, and the LSTM's c, of both directions) of a
 *  training batch (bp_net_forward(), bp_net_train_step(), bp_net_compute_grads(),
 *  bp_net_fit()'s steps; kept only when the step succeeds) is the initial state of the next
 *  training batch, row by row, and the gradient stops there (truncated BPTT); the batch size
 *  must stay the same until bp_net_reset_state(). The carried state is the layer's
 *  bp_layer_get_state() ([directions x carries x rows x H]), saved in model files and
 *  checkpoints, so a resumed run continues exactly. Inference (bp_net_predict(),
 *  bp_net_predict_ws(), bp_net_evaluate()) starts every row from a zero state and neither
 *  reads nor changes the carried one.
 *
 *  Kernels: the input projection of all steps is one GEMM per direction and batch, the
 *  recurrence one GEMM per step, the gates one fused vectorised pass per step; scratch is
 *  planned with the workspace (no allocation per step).
 *  @param net         the network.
 *  @param hidden      H, 1 .. 2^24.
 *  @param activation  BP_ACT_TANH or BP_ACT_RELU.
 *  @param flags       enum bp_recurrent_flag bits.
 *  @return BP_OK, BP_ERR_INVALID_ARG (hidden, activation, flags, output wider than 2^24),
 *  BP_ERR_SHAPE (the rows are not sequences), BP_ERR_STATE (after a softmax layer),
 *  BP_ERR_NOMEM. @since 0.2 */
BP_API bp_status bp_net_add_rnn(bp_net *net, size_t hidden, int activation, int flags);

/** Append an LSTM layer over sequence rows [T x F], as PyTorch's nn.LSTM (no projection, no
 *  peepholes): i, f, o = sigmoid, g = tanh of W_i* x_t + b_i* + W_h* h_{t-1} + b_h* (gate
 *  rows in the order i, f, g, o), c_t = f c_{t-1} + i g, h_t = o tanh(c_t), h and c start at
 *  0. Shapes, flags, parameter layout (G = 4), initialisation, the stateful mode (which
 *  carries h and c) and the kernels as bp_net_add_rnn().
 *  @param net     the network.
 *  @param hidden  H, 1 .. 2^24.
 *  @param flags   enum bp_recurrent_flag bits.
 *  @return as bp_net_add_rnn(). @since 0.2 */
BP_API bp_status bp_net_add_lstm(bp_net *net, size_t hidden, int flags);

/** Append a GRU layer over sequence rows [T x F], as PyTorch's nn.GRU: r, z = sigmoid of
 *  W_i* x_t + b_i* + W_h* h_{t-1} + b_h*, n = tanh(W_in x_t + b_in + r (W_hn h_{t-1} +
 *  b_hn)) (the reset gate applied after the hidden matmul), h_t = (1 - z) n + z h_{t-1},
 *  h starts at 0; gate rows in the order r, z, n. Shapes, flags, parameter layout (G = 3),
 *  initialisation, the stateful mode and the kernels as bp_net_add_rnn().
 *  @param net     the network.
 *  @param hidden  H, 1 .. 2^24.
 *  @param flags   enum bp_recurrent_flag bits.
 *  @return as bp_net_add_rnn(). @since 0.2 */
BP_API bp_status bp_net_add_gru(bp_net *net, size_t hidden, int flags);

/** Forget the carried state of every stateful recurrent layer of @p net (BP_LAYER_STATEFUL):
 *  the next training batch starts from zeros, with any batch size. Call it between
 *  independent sequences (e.g. at the start of each epoch). A no-op for other layers.
 *  @param net  the network.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle). @since 0.2 */
BP_API bp_status bp_net_reset_state(bp_net *net);

/** @param net  the network.
 *  @return the number of layers (0 for an invalid handle). @since 0.1 */
BP_API size_t bp_net_layer_count(const bp_net *net);

/** @param net  the network.
 *  @param index  the layer's position, from 0.
 *  @return layer @p index (0 = first), borrowed from @p net and valid until the net is
 *  freed; NULL if @p index is out of range or @p net invalid. @since 0.1 */
BP_API bp_layer *bp_net_layer(bp_net *net, size_t index);

/** @param net  the network.
 *  @return the input width (0 for an invalid handle). @since 0.1 */
BP_API size_t bp_net_input_size(const bp_net *net);

/** @param net  the network.
 *  @return the output width of the last layer (the input width if there are no layers;
 *  0 for an invalid handle). @since 0.1 */
BP_API size_t bp_net_output_size(const bp_net *net);

/** @param net  the network.
 *  @return the total number of trainable and frozen parameters (0 for invalid). @since 0.1 */
BP_API size_t bp_net_param_count(const bp_net *net);

/** Change a network setting.
 *  @param net  the network.
 *  @param key    an enum bp_net_key or enum bp_fit_key value.
 *  @param value  the new value; 0/1 for flags.
 *  @return BP_OK; BP_ERR_OUT_OF_RANGE (value outside the key's bounds, not clamped; NaN
 *  included), BP_ERR_INVALID_ARG (unknown key or invalid handle). @since 0.1 */
BP_API bp_status bp_net_set(bp_net *net, int key, double value);

/** Read a network setting.
 *  @param net  the network.
 *  @param key    an enum bp_net_key or enum bp_fit_key value.
 *  @param value  receives the current value.
 *  @return BP_OK, BP_ERR_INVALID_ARG. @since 0.1 */
BP_API bp_status bp_net_get(const bp_net *net, int key, double *value);

/** The inclusive bounds of a network setting; an open bound is reported as the nearest
 *  double inside it. Thread-safe.
 *  @param key  an enum bp_net_key or enum bp_fit_key value.
 *  @param lo   receives the smallest accepted value.
 *  @param hi   receives the largest accepted value.
 *  @return BP_OK, BP_ERR_INVALID_ARG (unknown key or NULL output). @since 0.1 */
BP_API bp_status bp_net_param_bounds(int key, double *lo, double *hi);

/** Put every network setting (enum bp_net_key) and every training-loop setting (enum
 *  bp_fit_key) back to its documented default, like zstd's
 *  ZSTD_CCtx_reset(ZSTD_reset_parameters). Layers, parameters, the epoch callback, the
 *  gradient hook, scalers, metadata and the history are not touched (layer settings:
 *  bp_layer_reset_settings()).
 *  @param net  the network.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle). @since 0.2 */
BP_API bp_status bp_net_reset_settings(bp_net *net);

/** Write a human-readable table (layer, kind, output shape, parameters, activation) into
 *  @p buf, NUL-terminated.
 *  @param net  the network.
 *  @param buf  caller buffer for the table (NULL if @p capacity is 0).
 *  @param capacity  bytes @p buf can hold.
 *  @param needed  if not NULL, receives the size needed including the NUL.
 *  @return BP_OK, or BP_ERR_BUFFER_TOO_SMALL (buf then holds a truncated, terminated
 *  prefix when capacity > 0). @since 0.1 */
BP_API bp_status bp_net_summary(const bp_net *net, char *buf, size_t capacity, size_t *needed);

/** Training forward pass over a batch, keeping every layer's activations for
 *  bp_net_backward().
 *  @param net  the network.
 *  @param x  inputs [n x in], row-major. Copied as needed; not retained.
 *  @param n  rows, >= 1.
 *  @param y  receives a pointer to the outputs [n x out], borrowed from @p net and valid
 *            until the next call on it.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (no layers), BP_ERR_NONFINITE (x has
 *  NaN/Inf), BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_forward(bp_net *net, const float *x, size_t n, const float **y);

/** Backward pass: given dL/dY for the batch of the last bp_net_forward(), apply the chain
 *  rule through every layer in reverse and store (or, with BP_NET_ACCUMULATE_GRADS, add)
 *  each layer's dL/dW and dL/db.
 *  @param net  the network.
 *  @param dy  dL/dY [n x out]; @p n must equal the last forward's n.
 *  @param n  rows of @p dy; must equal the last forward pass's n.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (no forward pass to differentiate),
 *  BP_ERR_SHAPE, BP_ERR_NONFINITE (a gradient became NaN/Inf; the message names the layer;
 *  gradients are then unspecified but parameters untouched). @since 0.1 */
BP_API bp_status bp_net_backward(bp_net *net, const float *dy, size_t n);

/** Set every gradient to zero (for BP_NET_ACCUMULATE_GRADS).
 *  @param net  the network.
 *  @return BP_OK, BP_ERR_INVALID_ARG.
 *  @since 0.1 */
BP_API bp_status bp_net_zero_grad(bp_net *net);

/** One training step: forward, loss, backward, clipping (BP_NET_CLIP_*), optimizer update.
 *  @param net  the network.
 *  @param opt  the optimizer.
 *  @param loss        an enum bp_loss value.
 *  @param x           inputs [n x in].
 *  @param y           targets [n x out], or [n] class indices for BP_LOSS_SPARSE_SOFTMAX_CE.
 *  @param n  rows, >= 1.
 *  @param loss_value  if not NULL, receives the batch loss before the update.
 *  @return BP_OK; BP_ERR_INVALID_ARG (also: n x inputs or n x outputs overflows, a
 *  BP_LOSS_BCE_LOGITS target outside [0, 1]), BP_ERR_STATE, BP_ERR_INDEX (class index out of
 *  range), BP_ERR_NONFINITE (in x, y, the loss or a gradient, also one a gradient hook
 *  wrote, or an update that would make a parameter or an optimizer state value NaN or
 *  infinite, e.g. a learning rate far too large for gradients near FLT_MAX: the net and the
 *  optimizer are then as they were), BP_ERR_NOMEM, or an optimizer error; a gradient
 *  hook's error status (one that is no bp_status becomes BP_ERR_STATE). After the first call at a
 * given n, no further allocation happens. @since 0.1 */
BP_API bp_status bp_net_train_step(bp_net *net, bp_optimizer *opt, int loss, const float *x,
                                   const float *y, size_t n, float *loss_value);

/** Steps one to three without the update: forward, loss and backward for a batch, leaving
 *  dL/dW and dL/db in the gradients (added to them with BP_NET_ACCUMULATE_GRADS). For custom
 *  optimizers, gradient accumulation over several batches, or averaging gradients across
 *  processes (bp_net_grads()) before bp_optimizer_step(). Clipping (BP_NET_CLIP_*) is not
 *  applied here; it belongs to bp_net_train_step().
 *  @param net  the network.
 *  @param loss        an enum bp_loss value.
 *  @param x           inputs [n x in].
 *  @param y           targets [n x out], or [n] class indices for BP_LOSS_SPARSE_SOFTMAX_CE.
 *  @param n           rows, >= 1.
 *  @param loss_value  if not NULL, receives the batch loss.
 *  @return as bp_net_train_step() without the optimizer errors. @since 0.1 */
BP_API bp_status bp_net_compute_grads(bp_net *net, int loss, const float *x, const float *y,
                                      size_t n, float *loss_value);

/** Gradient hook for bp_net_set_grad_hook(): called inside bp_net_train_step() (and so in
 *  every step of bp_net_fit()) after the gradients of the batch are computed and before
 *  clipping and the optimizer update; for example to average gradients across processes
 *  (bp_net_grads()) and replace the batch loss by the global one (the backprop_mpi library
 *  does this).
 *  @param user        the pointer given to bp_net_set_grad_hook().
 *  @param net         the network, whose gradients (bp_net_grads()) the hook may read and
 *                     rewrite; the hook must not call bp_net_train_step() or bp_net_fit() on it.
 *  @param status      BP_OK, or the error of this process's gradient pass (the gradients are
 *                     then unspecified): the hook is called either way, so that processes
 *                     that must act together (collectives) stay in step.
 *  @param rows        rows of this process's batch.
 *  @param loss_value  in: this batch's loss; out: the loss the step reports (and bp_net_fit
 *                     averages into the epoch's loss).
 *  @return BP_OK to go on with clipping and the update, or an error status that the step
 *  returns with the parameters untouched. A non-OK @p status is returned whatever the hook
 *  returns. */
typedef int (*bp_grad_fn)(void *user, bp_net *net, int status, size_t rows, float *loss_value);

/** Install (or with @p fn NULL remove) the gradient hook of @p net; see bp_grad_fn. It is not
 *  copied by bp_net_clone() nor saved in model files or checkpoints. bp_net_compute_grads()
 *  does not call it (that function stops before the update).
 *  @param net   the network.
 *  @param fn    the hook, or NULL.
 *  @param user  passed to @p fn; not used by the library.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle). @since 0.1 */
BP_API bp_status bp_net_set_grad_hook(bp_net *net, bp_grad_fn fn, void *user);

/** Inference on any number of rows (processed internally in batches; no size limit).
 *  Does not disturb the activations kept for bp_net_backward(). With BP_NET_APPLY_SCALERS
 *  (since 0.2) @p x is raw and @p y in original units (the stored scalers applied).
 *  @param net  the network.
 *  @param x         inputs [n x in].
 *  @param n  rows, >= 1.
 *  @param y         caller buffer for the outputs [n x out].
 *  @param capacity  number of floats @p y can hold, >= n * out.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE, BP_ERR_BUFFER_TOO_SMALL,
 *  BP_ERR_NONFINITE (also: an input or output that scales to Inf with
 *  BP_NET_APPLY_SCALERS), BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_predict(bp_net *net, const float *x, size_t n, float *y, size_t capacity);

/** The scratch size bp_net_predict_ws() needs for @p n rows: rows are processed in chunks
 *  of at most 1024, so this stops growing beyond n = 1024.
 *  @param net  the network.
 *  @param n  rows to predict at once.
 *  @return floats, or 0 for an invalid handle, a net without layers or n = 0. Thread-safe on
 *  a net nobody modifies. @since 0.1 */
BP_API size_t bp_net_predict_scratch_floats(const bp_net *net, size_t n);

/** Inference like bp_net_predict(), with caller-provided scratch instead of the net's own
 *  workspace: the net is only read, so any number of threads may call this at once on one
 *  trained network, each with its own @p scratch (and @p y), while no thread modifies the
 *  net (no training, no layer added, no setter). Results are bit-identical to
 *  bp_net_predict() for the same rows. Does not allocate.
 *  @param net  the network.
 *  @param x               inputs [n x in].
 *  @param n               rows, >= 1.
 *  @param y               caller buffer for the outputs [n x out].
 *  @param capacity        floats @p y can hold, >= n * out.
 *  @param scratch         caller buffer of @p scratch_floats floats, used only during the
 *                         call (any alignment; 64-byte alignment is fastest).
 *  @param scratch_floats  >= bp_net_predict_scratch_floats(net, n).
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (no layers), BP_ERR_BUFFER_TOO_SMALL (y
 *  or scratch), BP_ERR_NONFINITE (x has NaN/Inf). Messages go to bp_last_error() only (not
 *  to bp_net_last_error(), which other threads may be reading). @since 0.1 */
BP_API bp_status bp_net_predict_ws(const bp_net *net, const float *x, size_t n, float *y,
                                   size_t capacity, float *scratch, size_t scratch_floats);

/** The whole parameter vector, layer by layer, each layer's W (as bp_layer_get_weights())
 *  then b (batchnorm: gamma then beta).
 *  @param net  the network.
 *  @param count  if not NULL, receives the number of floats.
 *  @return a pointer borrowed from @p net, valid until a layer is added or the net freed;
 *  writes through it change the model. NULL for an invalid handle, no layers, or layers
 *  that have no parameters (e.g. only activation, pooling or flatten layers; @p count then
 *  receives 0). @since 0.1 */
BP_API float *bp_net_params(bp_net *net, size_t *count);

/** The gradient vector, laid out exactly like bp_net_params(): dL/dW, dL/db per layer.
 *  Writable (e.g. to average gradients across processes before bp_optimizer_step()).
 *  @param net  the network.
 *  @param count  if not NULL, receives the number of floats.
 *  @return a pointer borrowed from @p net, valid like bp_net_params()'s; NULL for an
 *  invalid handle, no layers, or layers without parameters (@p count then receives 0).
 *  @since 0.1 */
BP_API float *bp_net_grads(bp_net *net, size_t *count);

/* ============================================================================================
 * Layer
 *
 * Layers are borrowed from their network (bp_net_layer()) and freed with it. A failing layer
 * call records its message on the owning network: read it with bp_net_last_error() (or the
 * thread's bp_last_error(), which also covers an invalid layer handle).
 * ==========================================================================================*/

/** @param layer  the layer.
 *  @return the layer's enum bp_layer_kind, 0 for an invalid handle. @since 0.1 */
BP_API int bp_layer_kind(const bp_layer *layer);

/** @param layer  the layer.
 *  @return the layer's enum bp_activation, -1 for an invalid handle. @since 0.1 */
BP_API int bp_layer_activation(const bp_layer *layer);

/** @param layer  the layer.
 *  @return the layer's input width (0 for an invalid handle). @since 0.1 */
BP_API size_t bp_layer_input_size(const bp_layer *layer);

/** @param layer  the layer.
 *  @return the layer's output width (0 for an invalid handle). @since 0.1 */
BP_API size_t bp_layer_output_size(const bp_layer *layer);

/** The layer's output shape, channels-first: [filters x OH x OW] for a convolution,
 *  [units x 1 x 1] for a dense layer ([1 x T x units] on sequences of T steps), the input
 *  shape for shape-preserving kinds.
 *  @param layer     the layer.
 *  @param channels  receives C.
 *  @param height    receives H.
 *  @param width     receives W.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, NULL output). @since 0.1 */
BP_API bp_status bp_layer_output_shape(const bp_layer *layer, size_t *channels, size_t *height,
                                       size_t *width);

/** The steps T of the layer's output rows ([1 x T x W] in bp_layer_output_shape()), 0 when
 *  they are not sequences (flat or image rows).
 *  @param layer  the layer.
 *  @param steps  receives T, or 0.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, NULL output). @since 0.2 */
BP_API bp_status bp_layer_output_steps(const bp_layer *layer, size_t *steps);

/** The L2 norm of the layer's gradient, sqrt(sum dW^2 + sum db^2) computed in double, as
 *  left by the last backward pass (0 for layers without parameters): watch vanishing or
 *  exploding gradients layer by layer.
 *  @param layer  the layer.
 *  @param norm  receives the norm.
 *  @return BP_OK, BP_ERR_INVALID_ARG. @since 0.1 */
BP_API bp_status bp_layer_grad_norm(const bp_layer *layer, double *norm);

/** @param layer  the layer.
 *  @return the number of parameters (weights + biases; 0 for an invalid handle). @since 0.1 */
BP_API size_t bp_layer_param_count(const bp_layer *layer);

/** Copy the weights: dense [out x in] row-major (W[o][i] connects input i to output o);
 *  conv2d [filters x C x kernel_h x kernel_w]; batchnorm gamma [C]; none for the kinds
 *  without parameters. The weight count is bp_layer_param_count() minus the bias count,
 *  and the bias count is the output channels (dense: out, conv2d: filters, batchnorm: C;
 *  0 for the kinds without parameters).
 *  @param layer  the layer.
 *  @param dst       caller buffer receiving the weight count of floats.
 *  @param capacity  floats @p dst can hold, >= the weight count.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_BUFFER_TOO_SMALL. @since 0.1 */
BP_API bp_status bp_layer_get_weights(const bp_layer *layer, float *dst, size_t capacity);

/** Replace the weights.
 *  @param layer  the layer.
 *  @param src    the new weights in the layout of bp_layer_get_weights(); copied.
 *  @param count  floats in @p src; must equal the weight count.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (count differs), BP_ERR_NONFINITE (a
 *  value is NaN/Inf; nothing is changed). @since 0.1 */
BP_API bp_status bp_layer_set_weights(bp_layer *layer, const float *src, size_t count);

/** Copy the biases: one per output channel (batchnorm: beta [C]; see
 *  bp_layer_get_weights()).
 *  @param layer  the layer.
 *  @param dst       caller buffer receiving the bias count of floats.
 *  @param capacity  floats @p dst can hold, >= the bias count.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_BUFFER_TOO_SMALL. @since 0.1 */
BP_API bp_status bp_layer_get_biases(const bp_layer *layer, float *dst, size_t capacity);

/** Replace the biases.
 *  @param layer  the layer.
 *  @param src    the new biases, one per output channel; copied.
 *  @param count  floats in @p src; must equal the bias count.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE, BP_ERR_NONFINITE. @since 0.1 */
BP_API bp_status bp_layer_set_biases(bp_layer *layer, const float *src, size_t count);

/** Copy dL/dW, laid out as bp_layer_get_weights(), as left by the last backward pass (or
 *  train_step).
 *  @param layer  the layer.
 *  @param dst       caller buffer receiving the weight count of floats.
 *  @param capacity  floats @p dst can hold.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_BUFFER_TOO_SMALL. @since 0.1 */
BP_API bp_status bp_layer_get_weight_grad(const bp_layer *layer, float *dst, size_t capacity);

/** Copy dL/db, one per output channel, as left by the last backward pass (or train_step).
 *  @param layer  the layer.
 *  @param dst       caller buffer receiving the bias count of floats.
 *  @param capacity  floats @p dst can hold.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_BUFFER_TOO_SMALL. @since 0.1 */
BP_API bp_status bp_layer_get_bias_grad(const bp_layer *layer, float *dst, size_t capacity);

/** Re-initialise the weights from the net's generator; biases are set to 0.
 *  @param layer  the layer.
 *  @param scheme  an enum bp_init value.
 *  @param value   the constant for BP_INIT_CONSTANT (a finite float); ignored otherwise.
 *  @return BP_OK, BP_ERR_INVALID_ARG (unknown scheme), BP_ERR_OUT_OF_RANGE. @since 0.1 */
BP_API bp_status bp_layer_init_weights(bp_layer *layer, int scheme, double value);

/** Change a layer setting.
 *  @param layer  the layer.
 *  @param key    an enum bp_layer_key value that applies to the layer's kind.
 *  @param value  the new value; 0/1 for flags.
 *  @return BP_OK, BP_ERR_OUT_OF_RANGE (not clamped; NaN included), BP_ERR_INVALID_ARG
 *  (invalid handle, unknown key, or a key that does not apply to the layer's kind).
 *  @since 0.1 */
BP_API bp_status bp_layer_set(bp_layer *layer, int key, double value);

/** Read a layer setting.
 *  @param layer  the layer.
 *  @param key    an enum bp_layer_key value that applies to the layer's kind.
 *  @param value  receives the current value.
 *  @return BP_OK, BP_ERR_INVALID_ARG (also for a key that does not apply). @since 0.1 */
BP_API bp_status bp_layer_get(const bp_layer *layer, int key, double *value);

/** The inclusive bounds of a layer setting. Thread-safe.
 *  @param key  an enum bp_layer_key value.
 *  @param lo   receives the smallest accepted value.
 *  @param hi   receives the largest accepted value.
 *  @return BP_OK, BP_ERR_INVALID_ARG (unknown key or NULL output). @since 0.1 */
BP_API bp_status bp_layer_param_bounds(int key, double *lo, double *hi);

/** Put every setting that applies to the layer's kind back to its default (the defaults
 *  documented in enum bp_layer_key), like zstd's ZSTD_CCtx_reset(ZSTD_reset_parameters).
 *  A setting that was an argument of the call that created the layer and has no default
 *  (the dropout rate of bp_net_add_dropout()) is left as it is. Parameters, gradients and
 *  running statistics are not touched.
 *  @param layer  the layer.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle). @since 0.2 */
BP_API bp_status bp_layer_reset_settings(bp_layer *layer);

/** The kernel geometry of a convolution or pooling layer, as given when it was created:
 *  conv2d kernel_h x kernel_w, stride and padding; max/avg pooling size x size, stride and
 *  padding 0. For interchange formats (e.g. the ONNX exporter) and inspection.
 *  @param layer     the layer.
 *  @param kernel_h  receives the kernel (window) height.
 *  @param kernel_w  receives the kernel (window) width.
 *  @param stride    receives the stride (both directions).
 *  @param padding   receives the zero padding on every side.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, NULL output, or a kind without a
 *  kernel; nothing is written then). @since 0.2 */
BP_API bp_status bp_layer_kernel_shape(const bp_layer *layer, size_t *kernel_h, size_t *kernel_w,
                                       size_t *stride, size_t *padding);

/** Copy the layer's non-parameter state, the values a model file saves besides weights and
 *  biases: batchnorm running mean [C] followed by running variance [C] (2C floats); no
 *  state (count 0) for the other kinds.
 *  @param layer     the layer.
 *  @param dst       caller buffer receiving the state (may be NULL when @p capacity is 0).
 *  @param capacity  floats @p dst can hold.
 *  @param count     if not NULL, receives the state's float count (also on
 *                   BP_ERR_BUFFER_TOO_SMALL, so a first call with capacity 0 sizes it).
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_BUFFER_TOO_SMALL. @since 0.2 */
BP_API bp_status bp_layer_get_state(const bp_layer *layer, float *dst, size_t capacity,
                                    size_t *count);

/** Replace the layer's non-parameter state (layout of bp_layer_get_state()), e.g. the
 *  running statistics of a batch-normalisation layer imported from another framework.
 *  Validated before anything changes.
 *  @param layer  the layer.
 *  @param src    the new state; copied.
 *  @param count  floats in @p src; must equal the state's float count.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (count differs), BP_ERR_NONFINITE (a value
 *  is NaN/Inf, or a variance is negative; nothing is changed). @since 0.2 */
BP_API bp_status bp_layer_set_state(bp_layer *layer, const float *src, size_t count);

/* ============================================================================================
 * Loss
 * ==========================================================================================*/

/** Evaluate a loss and its gradient outside a network (for custom training loops).
 *  @param loss    enum bp_loss.
 *  @param n       rows, >= 1.
 *  @param width   columns of @p pred, >= 1.
 *  @param param   Huber delta for BP_LOSS_HUBER (> 0); ignored otherwise.
 *  @param pred    predictions [n x width] (softmax probabilities for the softmax losses,
 *                 logits for BP_LOSS_BCE_LOGITS).
 *  @param target  targets [n x width], or [n] class indices for BP_LOSS_SPARSE_SOFTMAX_CE.
 *  @param value   receives the loss (mean over the batch, see enum bp_loss).
 *  @param dpred   if not NULL, receives dL/dpred [n x width], ready for bp_net_backward().
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_INDEX, BP_ERR_NONFINITE. Thread-safe.
 *  @since 0.1 */
BP_API bp_status bp_loss_eval(int loss, double param, const float *pred, const float *target,
                              size_t n, size_t width, float *value, float *dpred);

/* ============================================================================================
 * Optimizer
 * ==========================================================================================*/

/** Create an optimizer with the algorithm's default settings (see enum bp_optimizer_key).
 *  Its state (moments, step sizes) is allocated at the first step, for that network's
 *  shape; stepping a net of another shape later fails with BP_ERR_STATE until
 *  bp_optimizer_reset(). An optimizer may be used with any net of its bound shape (e.g. a
 *  clone), one thread at a time.
 *  @param out   receives the new optimizer, owned by the caller (bp_optimizer_free());
 *               NULL on failure.
 *  @param kind  an enum bp_optimizer_kind value.
 *  @return BP_OK, BP_ERR_INVALID_ARG (NULL @p out, unknown @p kind), BP_ERR_NOMEM.
 *  @since 0.1 */
BP_API bp_status bp_optimizer_create(bp_optimizer **out, int kind);

/** Free an optimizer and its state. NULL (or an invalid handle) is a no-op.
 *  @param opt  the optimizer.
 *  @since 0.1 */
BP_API void bp_optimizer_free(bp_optimizer *opt);

/** @param opt  the optimizer.
 *  @return the detailed message of the last failed call on @p opt ("" if none; a static
 *  message if @p opt is invalid). Borrowed: valid until the next call on @p opt. Calls that
 *  cannot write the handle (bp_optimizer_get()) report through bp_last_error() only.
 *  @since 0.1 */
BP_API const char *bp_optimizer_last_error(const bp_optimizer *opt);

/** @param opt  the optimizer.
 *  @return the algorithm (enum bp_optimizer_kind), 0 for an invalid handle. @since 0.1 */
BP_API int bp_optimizer_kind(const bp_optimizer *opt);

/** Set a setting; it applies from the next step (a learning-rate schedule may call this
 *  between steps).
 *  @param opt  the optimizer.
 *  @param key    an enum bp_optimizer_key value that applies to @p opt's algorithm.
 *  @param value  within bp_optimizer_param_bounds(); 0/1 settings take exactly 0 or 1.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, unknown key, or a key that does not
 *  apply to the algorithm: the message names both; before 0.2 such a key was accepted, stored
 *  and ignored), BP_ERR_OUT_OF_RANGE (value outside the bounds or NaN; nothing is clamped,
 *  the setting is unchanged).
 *  @since 0.1 */
BP_API bp_status bp_optimizer_set(bp_optimizer *opt, int key, double value);

/** Read a setting.
 *  @param opt  the optimizer.
 *  @param key    an enum bp_optimizer_key value that applies to @p opt's algorithm.
 *  @param value  receives the setting.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, unknown key, a key that does not apply
 *  to the algorithm, NULL @p value). @since 0.1 */
BP_API bp_status bp_optimizer_get(const bp_optimizer *opt, int key, double *value);

/** The inclusive bounds of a setting. An open bound (e.g. momentum < 1) is reported as the
 *  nearest double inside it (momentum: the largest double below 1). Thread-safe.
 *  @param key  an enum bp_optimizer_key value.
 *  @param lo   receives the lowest accepted value.
 *  @param hi   receives the highest accepted value.
 *  @return BP_OK, BP_ERR_INVALID_ARG (unknown key, NULL @p lo or @p hi). @since 0.1 */
BP_API bp_status bp_optimizer_param_bounds(int key, double *lo, double *hi);

/** Put every setting back to its algorithm's default (as bp_optimizer_create() chose it),
 *  like zstd's ZSTD_CCtx_reset(ctx, ZSTD_reset_parameters). The state (moments, step sizes),
 *  the bound shape and the step count are kept: bp_optimizer_reset() forgets those. Settings
 *  that take effect when the state is created (BP_OPT_INITIAL_ACCUMULATOR,
 *  BP_OPT_RPROP_DELTA_INIT) do not change existing state.
 *  @param opt  the optimizer.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle). @since 0.2 */
BP_API bp_status bp_optimizer_reset_settings(bp_optimizer *opt);

/** Apply one update to every trainable parameter of @p net from its current gradients.
 *  Layers with BP_LAYER_TRAINABLE 0 are skipped (parameters and optimizer state untouched;
 *  their gradients are not read). The first step allocates the state for @p net's shape.
 *  Parameters and state are untouched on failure.
 *  @param opt  the optimizer; its step count is global (a layer frozen for a while sees the
 *              current step's bias corrections when unfrozen).
 *  @param net  the network whose params are updated from its grads.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (net of another shape than the optimizer's
 *  state, a net without layers, inconsistent settings), BP_ERR_NONFINITE (a NaN/Inf gradient
 *  in a trainable layer, or an update that would make a parameter or a state value NaN or
 *  infinite; the message names the layer and the value; parameters, state and step count
 *  unchanged), BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_optimizer_step(bp_optimizer *opt, bp_net *net);

/** Forget all state (moments, step sizes, step count, bound shape); settings are kept
 *  (bp_optimizer_reset_settings() resets those). The next step starts afresh on any net.
 *  @param opt  the optimizer.
 *  @return BP_OK, BP_ERR_INVALID_ARG. @since 0.1 */
BP_API bp_status bp_optimizer_reset(bp_optimizer *opt);

/** @param opt  the optimizer.
 *  @return the number of successful bp_optimizer_step() calls since creation or reset (0 for
 *  an invalid handle). @since 0.1 */
BP_API uint64_t bp_optimizer_step_count(const bp_optimizer *opt);

/* ============================================================================================
 * Data set
 *
 * A bp_dataset holds n samples: inputs [n x in] and targets [n x out], float32, row-major,
 * every value finite (creation, loading and scaling reject NaN/Inf, so a data set never
 * holds one). For BP_LOSS_SPARSE_SOFTMAX_CE use outputs = 1 with class indices
 * (0 .. classes-1, stored as float) as targets; bp_dataset_one_hot() turns such targets
 * into one-hot rows for BP_LOSS_SOFTMAX_CE.
 *
 * Loaders read plain files, or gzip-compressed ones (recognised by their first two bytes,
 * 1f 8b, not by the name) when the library is built with zlib. A path must name a regular
 * file: a directory, FIFO, device or socket fails with BP_ERR_IO at once (it is opened
 * without blocking and never read). A gzip file may decompress to at most 128 times its own
 * size, but always to 64 MiB and never beyond 1 GiB (2^30 bytes); more is
 * BP_ERR_OUT_OF_RANGE, and the _ex loaders take another limit. Its first
 * decompressed bytes are checked before the rest is decompressed: a text file (CSV, FANN)
 * must have no NUL byte in its first 4 KiB, an IDX file its magic, and the size an IDX
 * header announces bounds the stream. Memory taken is in proportion to the data actually
 * read (the file, or its decompressed bytes, plus the floats it holds), never to a count a
 * file merely announces. They never trust a file:
 * malformed contents give BP_ERR_FORMAT (BP_ERR_NONFINITE for NaN/Inf numbers) and a
 * message through bp_last_error() naming the file, and where it applies the line and
 * column: "iris.csv:17: column 3: 'abc' is not a number". Lines and columns of text files
 * count from 1; rows (samples) and column indices passed as arguments count from 0.
 * Numbers are read and written in the C locale whatever the caller's locale is.
 * ==========================================================================================*/

/** Scaler kinds for bp_dataset_fit_scaler() (pass as int). */
enum bp_scale_kind {
    BP_SCALE_STANDARD = 1, /**< offset = mean, scale = 1 / standard deviation (population,
                                divided by n): columns get mean 0 and variance 1 */
    BP_SCALE_MINMAX = 2    /**< offset = minimum, scale = 1 / (maximum - minimum): columns
                                map onto [0, 1] */
};

/** Which half of a data set a scaler covers (pass as int). */
enum bp_scale_part {
    BP_SCALE_INPUTS = 1, /**< the input columns [in] */
    BP_SCALE_TARGETS = 2 /**< the target columns [out] (e.g. regression targets) */
};

/** Create a data set from copies of caller arrays.
 *  @param out      receives the new data set; NULL on failure. Free with bp_dataset_free().
 *  @param x        inputs [n x inputs], row-major; copied, not retained.
 *  @param y        targets [n x outputs], row-major; copied, not retained.
 *  @param n        number of samples, >= 1.
 *  @param inputs   input width, >= 1.
 *  @param outputs  target width, >= 1 (1 for class indices).
 *  @return BP_OK, BP_ERR_INVALID_ARG (NULL, zero or overflowing sizes), BP_ERR_NONFINITE
 *  (a NaN/Inf value; the message names its row and column), BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_dataset_create(bp_dataset **out, const float *x, const float *y, size_t n,
                                   size_t inputs, size_t outputs);

/** Free a data set. NULL is a no-op.
 *  @param ds  the data set.
 *  @since 0.1 */
BP_API void bp_dataset_free(bp_dataset *ds);

/** @param ds  the data set.
 *  @return the detailed message of the last failed call on @p ds that may modify it ("" if
 *  none, a static message if @p ds is invalid); calls taking a const data set (subset,
 *  split, scalers, class counts, saving ...) report in bp_last_error() only. Borrowed: valid
 *  until the next call on @p ds. @since 0.1 */
BP_API const char *bp_dataset_last_error(const bp_dataset *ds);

/** @param ds  the data set.
 *  @return the number of samples n (0 for an invalid handle). @since 0.1 */
BP_API size_t bp_dataset_size(const bp_dataset *ds);

/** @param ds  the data set.
 *  @return the input width (0 for an invalid handle). @since 0.1 */
BP_API size_t bp_dataset_input_size(const bp_dataset *ds);

/** @param ds  the data set.
 *  @return the target width (0 for an invalid handle). @since 0.1 */
BP_API size_t bp_dataset_output_size(const bp_dataset *ds);

/** @param ds  the data set.
 *  @return the inputs [n x in], borrowed from @p ds: valid until @p ds is modified
 *  (shuffled, scaled) or freed; NULL for an invalid handle or a memory-mapped set
 *  (bp_dataset_open_mapped(), whose rows are only decoded when read). @since 0.1 */
BP_API const float *bp_dataset_inputs(const bp_dataset *ds);

/** @param ds  the data set.
 *  @return the targets [n x out], borrowed like bp_dataset_inputs(). @since 0.1 */
BP_API const float *bp_dataset_targets(const bp_dataset *ds);

/** Load a delimited text file (CSV) of numbers: one sample per line; the columns
 *  @p target_first .. @p target_first + @p target_count - 1 are the targets, every other
 *  column (in file order) an input. Cells may be surrounded by spaces and by double quotes
 *  ("5.1"); a quoted header cell may contain the delimiter. CRLF and LF line ends, a missing
 *  final newline, blank lines and a UTF-8 byte-order mark (EF BB BF) at the start are
 *  accepted. Class labels must already be numbers.
 *  @param out           receives the new data set; NULL on failure.
 *  @param path          file name (plain or gzip).
 *  @param delimiter     one of ',' ';' tab (9) ' ' '|' ':' (with ' ', exactly one space
 *                       separates cells).
 *  @param has_header    1: the first non-blank line holds column names and is skipped
 *                       (its column count must match); 0: every line is data.
 *  @param target_first  index of the first target column, from 0.
 *  @param target_count  number of target columns, >= 1; at least one column must remain
 *                       for the inputs.
 *  @return BP_OK; BP_ERR_INVALID_ARG (bad argument); BP_ERR_IO; BP_ERR_UNSUPPORTED (gzip
 *  without zlib); BP_ERR_FORMAT (no data rows, a row with another number of columns than
 *  the first, a cell that is not a number, target columns beyond the last column,
 *  unterminated quote); BP_ERR_NONFINITE (nan, inf or a number beyond the float range);
 *  BP_ERR_NOMEM. The message names file, line and column. @since 0.1 */
BP_API bp_status bp_dataset_load_csv(bp_dataset **out, const char *path, int delimiter,
                                     int has_header, size_t target_first, size_t target_count);

/** bp_dataset_load_csv() with a limit on the decompressed size of a gzip file.
 *  @param out               receives the new data set; NULL on failure.
 *  @param path              file name (plain or gzip).
 *  @param delimiter         as for bp_dataset_load_csv().
 *  @param has_header        as for bp_dataset_load_csv().
 *  @param target_first      as for bp_dataset_load_csv().
 *  @param target_count      as for bp_dataset_load_csv().
 *  @param max_decompressed  the most bytes a gzip file may decompress to: 0 for the default
 *                           (128 x the file's size, within [64 MiB, 1 GiB]), SIZE_MAX for no
 *                           limit, any other value exact. Plain files are not limited (they
 *                           take their own size).
 *  @return as bp_dataset_load_csv(), and BP_ERR_OUT_OF_RANGE when a gzip file decompresses
 *  to more than @p max_decompressed bytes. @since 0.2 */
BP_API bp_status bp_dataset_load_csv_ex(bp_dataset **out, const char *path, int delimiter,
                                        int has_header, size_t target_first, size_t target_count,
                                        size_t max_decompressed);

/** Load a FANN training file: the numbers "num_data num_input num_output", then for each
 *  sample num_input inputs followed by num_output outputs. Any whitespace (spaces, tabs,
 *  newlines, CRLF) may separate numbers, as FANN itself tolerates.
 *  @param out   receives the new data set; NULL on failure.
 *  @param path  file name (plain or gzip).
 *  @return BP_OK; BP_ERR_INVALID_ARG; BP_ERR_IO; BP_ERR_UNSUPPORTED; BP_ERR_FORMAT (a
 *  header count that is 0, not a number, or whose product overflows or exceeds what the
 *  file can hold; fewer or more numbers than the header announces; a value that is not a
 *  number); BP_ERR_NONFINITE; BP_ERR_NOMEM. The message names file, line and sample.
 *  @since 0.1 */
BP_API bp_status bp_dataset_load_fann(bp_dataset **out, const char *path);

/** bp_dataset_load_fann() with a limit on the decompressed size of a gzip file.
 *  @param out               receives the new data set; NULL on failure.
 *  @param path              file name (plain or gzip).
 *  @param max_decompressed  as for bp_dataset_load_csv_ex(): 0 for the default,
 *                           SIZE_MAX for none.
 *  @return as bp_dataset_load_fann(), and BP_ERR_OUT_OF_RANGE beyond the limit.
 *  @since 0.2 */
BP_API bp_status bp_dataset_load_fann_ex(bp_dataset **out, const char *path,
                                         size_t max_decompressed);

/** Save @p ds as a FANN training file readable by bp_dataset_load_fann() and by FANN's
 *  fann_read_train_from_file(). Values are written with 9 significant digits, which reads
 *  back to the identical floats. The file is written atomically: to a temporary file in the
 *  same directory, synced, then renamed over @p path, so a failure never leaves a partial
 *  file at @p path.
 *  @param ds  the data set.
 *  @param path  the file name.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_IO. @since 0.1 */
BP_API bp_status bp_dataset_save_fann(const bp_dataset *ds, const char *path);

/** Load an IDX image/label pair such as MNIST or Fashion-MNIST (plain or .gz).
 *  The images file holds unsigned bytes, magic 0x00000803 for [n x rows x cols] (any
 *  unsigned-byte IDX of 2 or more dimensions is accepted: each item is flattened); each
 *  byte b becomes the input b / 255 in [0, 1]. The labels file holds n unsigned bytes,
 *  magic 0x00000801.
 *  @param out          receives the new data set; NULL on failure.
 *  @param images_path  images file name.
 *  @param labels_path  labels file name.
 *  @param classes      0: targets are the class indices [n x 1] (for
 *                      BP_LOSS_SPARSE_SOFTMAX_CE); k >= 1: targets are one-hot rows
 *                      [n x k] (10 for MNIST), and a label >= k fails with BP_ERR_INDEX.
 *                      An explicit count rather than "largest label + 1", so that a subset
 *                      lacking the last class still gets rows of the right width.
 *  @return BP_OK; BP_ERR_INVALID_ARG; BP_ERR_IO; BP_ERR_UNSUPPORTED (gzip without zlib);
 *  BP_ERR_FORMAT (wrong magic, a zero or overflowing dimension, a file length other than
 *  its header announces, image and label counts that differ); BP_ERR_INDEX; BP_ERR_NOMEM.
 *  @since 0.1 */
BP_API bp_status bp_dataset_load_idx(bp_dataset **out, const char *images_path,
                                     const char *labels_path, size_t classes);

/** bp_dataset_load_idx() with a limit on the decompressed size of each gzip file.
 *  @param out               receives the new data set; NULL on failure.
 *  @param images_path       images file name.
 *  @param labels_path       labels file name.
 *  @param classes           as for bp_dataset_load_idx().
 *  @param max_decompressed  as for bp_dataset_load_csv_ex(): 0 for the default,
 *                           SIZE_MAX for none;
 *                           applies to each of the two files.
 *  @return as bp_dataset_load_idx(), and BP_ERR_OUT_OF_RANGE beyond the limit (also when an
 *  IDX header announces more). @since 0.2 */
BP_API bp_status bp_dataset_load_idx_ex(bp_dataset **out, const char *images_path,
                                        const char *labels_path, size_t classes,
                                        size_t max_decompressed);

/** Element types of the inputs in a binary data-set file (pass as int). @since 0.2 */
enum bp_data_type {
    BP_DATA_FLOAT32 = 1, /**< inputs stored as little-endian float32 (4 bytes a value) */
    BP_DATA_UINT8 = 2    /**< inputs stored as one-byte codes into a table of 256 float values
                              (e.g. pixel q stands for q / 255): a quarter of the size */
};

/** Write @p ds as a binary data-set file (docs/format.md, "Data-set file") for
 *  bp_dataset_open_mapped(): a header, little-endian rows (inputs of @p type, targets
 *  float32) and a CRC-32 per block of about 1 MiB of rows. The file is replaced atomically
 *  (written beside it, then renamed). With BP_DATA_UINT8 the input values are coded by
 *  rank: the distinct values (at most 256, e.g. pixels loaded by bp_dataset_load_idx())
 *  make the file's value table, so reading gives back exactly the same floats.
 *  @param ds    the data set (in memory or mapped); unchanged.
 *  @param path  the file to write.
 *  @param type  an enum bp_data_type value.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_OUT_OF_RANGE (BP_DATA_UINT8 with more than 256
 *  distinct input values), BP_ERR_IO, BP_ERR_NOMEM; for a mapped @p ds also its read errors
 *  (BP_ERR_CHECKSUM). @since 0.2 */
BP_API bp_status bp_dataset_save_binary(const bp_dataset *ds, const char *path, int type);

/** Open a binary data-set file written by bp_dataset_save_binary() as a read-only,
 *  memory-mapped data set: nothing of the rows is read or copied at open (the header, the
 *  value table and the block checksums are checked, and the file's length against the
 *  header), so the set may be larger than memory. bp_net_fit() and bp_net_evaluate() read
 *  it a batch at a time, decoding uint8 codes to float; shuffling (BP_FIT_SHUFFLE) orders
 *  rows by index, so a mapped set trains bit-identically to the same rows in memory with
 *  the same seed. Each block's CRC-32 is checked the first time one of its rows is read:
 *  a corrupted block fails that call with BP_ERR_CHECKSUM naming the block (bp_net_fit()
 *  stops before the step that would have used it: the weights are those after the last
 *  good step). Targets are checked per batch as they are read, not in advance.
 *  bp_dataset_subset() and bp_dataset_split() of a mapped set are views of the same file
 *  (no copy; each keeps the mapping alive). bp_dataset_inputs() and bp_dataset_targets()
 *  return NULL for a mapped set; bp_dataset_shuffle(), the scalers, bp_dataset_class_count(),
 *  bp_dataset_one_hot() and bp_dataset_save_fann() fail with BP_ERR_UNSUPPORTED (save the
 *  set scaled or one-hot, or load it into memory). The file must not be truncated or
 *  rewritten in place while mapped (the atomic writers of this library replace it instead,
 *  which leaves the mapped old file intact).
 *  @param out   receives the data set; NULL on failure. Free with bp_dataset_free().
 *  @param path  the file.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_IO (cannot open, not a regular file, cannot map),
 *  BP_ERR_FORMAT (bad header, sizes that disagree with the file's length), BP_ERR_VERSION,
 *  BP_ERR_CHECKSUM (header or metadata), BP_ERR_UNSUPPORTED (larger than the address space),
 *  BP_ERR_NOMEM. @since 0.2 */
BP_API bp_status bp_dataset_open_mapped(bp_dataset **out, const char *path);

/** Shuffle the samples in place (Fisher-Yates driven by the library's xoshiro256**
 *  generator seeded with @p seed); each input row stays paired with its target row. The
 *  same seed and data set give the same order on every platform. Does not allocate.
 *  @param ds  the data set.
 *  @param seed  seeds the shuffle.
 *  @return BP_OK, BP_ERR_INVALID_ARG. @since 0.1 */
BP_API bp_status bp_dataset_shuffle(bp_dataset *ds, uint64_t seed);

/** Split @p ds into two new data sets: @p first gets the first round(n * fraction) samples
 *  (in order), @p second the rest. Shuffle first for a random split; use
 *  bp_dataset_subset() to split at a sample count.
 *  @param first     receives the first part; NULL on failure. Free with bp_dataset_free().
 *  @param second    receives the second part; NULL on failure.
 *  @param ds        the data set to split; unchanged.
 *  @param fraction  in (0, 1).
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_OUT_OF_RANGE (fraction outside (0, 1), or a
 *  part that would be empty), BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_dataset_split(bp_dataset **first, bp_dataset **second, const bp_dataset *ds,
                                  double fraction);

/** Copy the samples @p start .. @p start + @p count - 1 of @p ds into a new data set (of a
 *  memory-mapped set: a view of the same file, nothing copied).
 *  @param out    receives the copy; NULL on failure. Free with bp_dataset_free().
 *  @param ds  the data set.
 *  @param start  index of the first sample to copy, from 0.
 *  @param count  >= 1; start + count must not exceed the size of @p ds.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_OUT_OF_RANGE, BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_dataset_subset(bp_dataset **out, const bp_dataset *ds, size_t start,
                                   size_t count);

/** Compute a per-column scaler from @p ds (computed in double). Fit it on the training set
 *  only and apply the same offsets and scales to every other set and to inputs at
 *  inference; keep them with the model. A column whose spread is 0 (constant), or so small
 *  that its reciprocal is not a finite float, gets scale 1, so it maps to 0, never Inf.
 *  @param ds        the data set; unchanged.
 *  @param kind      an enum bp_scale_kind value.
 *  @param part      an enum bp_scale_part value.
 *  @param offset    caller buffer receiving one offset per column.
 *  @param scale     caller buffer receiving one scale per column (always finite, > 0).
 *  @param capacity  floats each of @p offset and @p scale can hold, >= the part's width.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_BUFFER_TOO_SMALL. @since 0.1 */
BP_API bp_status bp_dataset_fit_scaler(const bp_dataset *ds, int kind, int part, float *offset,
                                       float *scale, size_t capacity);

/** Scale one part of @p ds in place: v' = (v - offset[c]) * scale[c] for column c.
 *  @param ds  the data set.
 *  @param part    an enum bp_scale_part value.
 *  @param offset  [count] offsets, finite.
 *  @param scale   [count] scales, finite and non-zero.
 *  @param count   must equal the part's width.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (count differs from the width),
 *  BP_ERR_NONFINITE (a result would overflow the float range; @p ds is then unchanged).
 *  @since 0.1 */
BP_API bp_status bp_dataset_apply_scaler(bp_dataset *ds, int part, const float *offset,
                                         const float *scale, size_t count);

/** Scale caller rows in place like bp_dataset_apply_scaler(): v' = (v - offset[c]) *
 *  scale[c], e.g. raw inputs before bp_net_predict(). Thread-safe.
 *  @param offset  [width] offsets, finite.
 *  @param scale   [width] scales, finite and non-zero.
 *  @param width   columns per row, >= 1.
 *  @param values  [n x width], transformed in place; unchanged on failure.
 *  @param n       rows (0 is a no-op).
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_NONFINITE (a value is NaN/Inf or a result
 *  would be). @since 0.1 */
BP_API bp_status bp_scaler_apply(const float *offset, const float *scale, size_t width,
                                 float *values, size_t n);

/** Undo a scaler in place: v = v' / scale[c] + offset[c], e.g. to turn predictions of
 *  scaled targets back into data units (house prices). Parameters and results as
 *  bp_scaler_apply(). Thread-safe.
 *  @param offset  [width] offsets, finite.
 *  @param scale  [width] scales, finite and non-zero.
 *  @param width  columns per row, >= 1.
 *  @param values  [n x width], transformed in place.
 *  @param n  rows, >= 1.
 *  @return as bp_scaler_apply().
 *  @since 0.1 */
BP_API bp_status bp_scaler_invert(const float *offset, const float *scale, size_t width,
                                  float *values, size_t n);

/** The number of classes of class-index targets: the largest target + 1.
 *  @param ds       a data set with outputs = 1.
 *  @param classes  receives the count.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (outputs != 1), BP_ERR_INDEX (a target
 *  that is not an integer in [0, 2^24); the message names its row). @since 0.1 */
BP_API bp_status bp_dataset_class_count(const bp_dataset *ds, size_t *classes);

/** Convert class-index targets [n x 1] into one-hot rows [n x classes] in a new data set
 *  (inputs copied unchanged).
 *  @param out      receives the new data set; NULL on failure. Free with bp_dataset_free().
 *  @param ds       a data set with outputs = 1; unchanged.
 *  @param classes  number of classes, 1 .. 2^24.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (outputs != 1), BP_ERR_INDEX (a target
 *  that is not an integer in [0, classes); the message names its row), BP_ERR_NOMEM.
 *  @since 0.1 */
BP_API bp_status bp_dataset_one_hot(bp_dataset **out, const bp_dataset *ds, size_t classes);

/* ============================================================================================
 * Training loop
 *
 * bp_net_fit() is step five of the algorithm ("repeat") over a bp_dataset: for each epoch it
 * (re)shuffles the training rows, cuts them into batches, calls bp_net_train_step() on each,
 * measures the epoch's metrics on the fly, evaluates the optional validation set, sets the
 * learning rate from a schedule, applies early stopping, records the history and calls the
 * epoch callback. Its settings are network keys (block 400) set with bp_net_set(); gradient
 * clipping is the network's BP_NET_CLIP_NORM / BP_NET_CLIP_VALUE, applied by train_step.
 *
 *     bp_net_set(net, BP_FIT_EPOCHS, 10);
 *     bp_net_set(net, BP_FIT_BATCH_SIZE, 64);
 *     bp_net_set(net, BP_FIT_SCHEDULE, BP_SCHEDULE_COSINE);
 *     if (bp_net_fit(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, train, test) != BP_OK)
 *         fprintf(stderr, "%s\n", bp_net_last_error(net));
 *     bp_net_history_save_csv(net, "history.csv");
 *
 * Epochs are numbered from 0. A fit call trains the epochs [BP_FIT_INITIAL_EPOCH,
 * BP_FIT_EPOCHS); schedules are functions of this absolute epoch number, so a run resumed
 * with INITIAL_EPOCH = k (same net, optimizer and generator state, e.g. from a checkpoint)
 * follows the same learning rates and data orders as an uninterrupted one and gives
 * bit-identical weights (at the same thread count).
 *
 * Learning-rate schedules. base is the optimizer's BP_OPT_LEARNING_RATE when fit starts
 * (fit sets the optimizer's rate before every epoch and puts base back when it returns; an
 * algorithm without a learning rate, iRprop-, holds the default 0.01 and ignores it, and the
 * history records the scheduled rate all the same);
 * W = BP_FIT_WARMUP_EPOCHS, gamma = BP_FIT_LR_GAMMA, min = BP_FIT_LR_MIN; for an epoch
 * e < W the rate is the linear warm-up base * (e + 1) / W, otherwise, with k = e - W:
 *   - BP_SCHEDULE_CONSTANT     base
 *   - BP_SCHEDULE_STEP         base * gamma^floor(k / BP_FIT_LR_STEP)
 *   - BP_SCHEDULE_EXPONENTIAL  base * gamma^k
 *   - BP_SCHEDULE_COSINE       min + (base - min) * (1 + cos(pi * min(k, T) / T)) / 2, with
 *                              T = BP_FIT_COSINE_EPOCHS, or EPOCHS - W when that is 0 (at
 *                              least 1); after T epochs the rate stays at min
 *   - BP_SCHEDULE_PLATEAU      starts at base; after each epoch e >= W whose monitored loss
 *                              did not improve, a counter grows; when it reaches
 *                              BP_FIT_PLATEAU_PATIENCE the rate becomes max(rate * gamma,
 *                              min) and the counter restarts. The rate persists across fit
 *                              calls for a resume.
 * The monitored loss is the validation loss when a validation set is given, otherwise the
 * training loss. It improves when it is below the best so far minus BP_FIT_MIN_DELTA (the
 * same test serves early stopping and the plateau schedule).
 * ==========================================================================================*/

/** Training-loop settings for bp_net_set()/bp_net_get()/bp_net_param_bounds() (block
 *  400..499). Counts must be whole numbers; ranges are inclusive. */
enum bp_fit_key {
    BP_FIT_EPOCHS = 400,           /**< train up to this epoch (exclusive); [1, 1e9]; 10 */
    BP_FIT_BATCH_SIZE = 401,       /**< rows per step; [1, 2^31]; default 32; the last batch
                                        of an epoch holds the remaining rows */
    BP_FIT_SHUFFLE = 402,          /**< 0/1, default 1: every epoch visits the training rows
                                        in a fresh Fisher-Yates order of 0..n-1 drawn from the
                                        network's generator (seeded by bp_net_create()) */
    BP_FIT_PATIENCE = 403,         /**< early stopping: stop after this many consecutive
                                        epochs without improvement of the monitored loss;
                                        [0, 1e9]; 0 = off (default) */
    BP_FIT_MIN_DELTA = 404,        /**< an improvement must exceed this; [0, 1e9]; default 0 */
    BP_FIT_RESTORE_BEST = 405,     /**< 0/1, default 1: at an early stop, restore the weights
                                        at the end of the best epoch (when that epoch ran in
                                        the same fit call) */
    BP_FIT_SCHEDULE = 406,         /**< an enum bp_schedule value; default constant */
    BP_FIT_LR_STEP = 407,          /**< step schedule: epochs between decays; [1, 1e9]; 10 */
    BP_FIT_LR_GAMMA = 408,         /**< step, exponential and plateau factor; (0, 1]; 0.1 */
    BP_FIT_LR_MIN = 409,           /**< cosine and plateau floor; [0, 1e3]; default 0 */
    BP_FIT_WARMUP_EPOCHS = 410,    /**< linear warm-up epochs before the schedule; [0, 1e9];
                                        default 0 */
    BP_FIT_PLATEAU_PATIENCE = 411, /**< reduce-on-plateau: epochs without improvement before
                                        the rate is multiplied by gamma; [1, 1e9]; default 5 */
    BP_FIT_COSINE_EPOCHS = 412,    /**< cosine period T in epochs after the warm-up; [0, 1e9];
                                        0 = EPOCHS - WARMUP (default) */
    BP_FIT_INITIAL_EPOCH = 413,    /**< first epoch to train (resume); [0, 1e9]; default 0.
                                        0 resets the early-stopping and plateau counters kept
                                        in the net; > 0 continues from them. fit leaves this
                                        setting as it was */
    BP_FIT_KEEP_BEST = 414,        /**< 0/1, default 0: when fit returns BP_OK, however
                                        training ended (epochs done, early stop, the callback
                                        asked), the net holds the weights at the end of the
                                        epoch of this call with the lowest monitored loss
                                        (the row bp_net_history_best() names; a copy of the
                                        parameters is kept during the call). Independent of
                                        PATIENCE; overrides RESTORE_BEST. Not on an error
                                        return. @since 0.2 */
    BP_FIT_PROGRESS_SECONDS = 415, /**< minimum wall-clock seconds between two calls of the
                                        batch callback within an epoch (it is always called
                                        after the epoch's last batch); [0, 3600]; default
                                        0.1; 0 = after every batch. @since 0.2 */
    BP_FIT_SHUFFLE_BUFFER = 416    /**< rows of the shuffle buffer of bp_net_fit_source()
                                        (with BP_FIT_SHUFFLE 1): each training row is drawn
                                        uniformly from the next this many rows of the
                                        stream; [1, 2^31]; default 1024; 1 = stream order.
                                        Not used by bp_net_fit(), which shuffles all rows.
                                        @since 0.2 */
};

/** Learning-rate schedules for BP_FIT_SCHEDULE (formulas in the section comment). */
enum bp_schedule {
    BP_SCHEDULE_CONSTANT = 0,    /**< base rate throughout */
    BP_SCHEDULE_STEP = 1,        /**< times gamma every BP_FIT_LR_STEP epochs */
    BP_SCHEDULE_EXPONENTIAL = 2, /**< times gamma every epoch */
    BP_SCHEDULE_COSINE = 3,      /**< cosine annealing from base to BP_FIT_LR_MIN */
    BP_SCHEDULE_PLATEAU = 4      /**< times gamma when the monitored loss stalls */
};

/** Per-epoch metrics: indices into the arrays given to the epoch callback, filled by
 *  bp_net_evaluate() (the first four) and kept in the history. A metric that does not apply
 *  is NaN:
 *   - accuracy applies to BP_LOSS_SOFTMAX_CE and BP_LOSS_SPARSE_SOFTMAX_CE (fraction of rows
 *     whose largest output is the target's class: the largest target column, or the index)
 *     and to BP_LOSS_BCE_LOGITS (fraction of output elements with logit > 0 exactly where
 *     target >= 0.5);
 *   - mae = mean |pred - target| and rmse = sqrt(mean (pred - target)^2), over all n * out
 *     elements, apply to BP_LOSS_MSE, BP_LOSS_MAE and BP_LOSS_HUBER;
 *   - val_* are NaN without a validation set.
 *  Training-set metrics are measured during the epoch, from each batch's outputs before
 *  that batch's update (the loss is the mean of the batch losses weighted by batch size),
 *  not by a second pass; val_* come from a pass over the validation set after the epoch. */
enum bp_metric {
    BP_METRIC_LOSS = 0,          /**< training loss */
    BP_METRIC_ACCURACY = 1,      /**< training accuracy */
    BP_METRIC_MAE = 2,           /**< training mean absolute error */
    BP_METRIC_RMSE = 3,          /**< training root mean squared error */
    BP_METRIC_VAL_LOSS = 4,      /**< validation loss */
    BP_METRIC_VAL_ACCURACY = 5,  /**< validation accuracy */
    BP_METRIC_VAL_MAE = 6,       /**< validation mean absolute error */
    BP_METRIC_VAL_RMSE = 7,      /**< validation root mean squared error */
    BP_METRIC_LEARNING_RATE = 8, /**< learning rate used during the epoch */
    BP_METRIC_SECONDS = 9,       /**< wall-clock seconds of the epoch, validation included */
    BP_METRIC_COUNT = 10         /**< number of metrics (not a metric) */
};

/** @return BP_METRIC_COUNT, for bindings. Thread-safe. @since 0.1 */
BP_API size_t bp_metric_count(void);

/** @param metric  an enum bp_metric value.
 *  @return the static name of a metric as used in the history CSV header: "loss",
 *  "accuracy", "mae", "rmse", "val_loss", "val_accuracy", "val_mae", "val_rmse",
 *  "learning_rate", "seconds"; "unknown" for any other value. Thread-safe. @since 0.1 */
BP_API const char *bp_metric_name(int metric);

/** Epoch callback: called by bp_net_fit() after every epoch, once its metrics are recorded
 *  in the history and the early-stopping and plateau counters are updated.
 *  @param user     the pointer given to bp_net_set_epoch_callback().
 *  @param epoch    the absolute epoch number (from 0).
 *  @param metrics  the epoch's metrics [count], indexed by enum bp_metric; borrowed for the
 *                  call.
 *  @param count    BP_METRIC_COUNT.
 *  @return 0 to continue, nonzero to stop training after this epoch (bp_net_fit() then
 *  returns BP_OK). The callback may read the network (history, predict, save it) but must
 *  not free it, change its layers, or call bp_net_fit() on it. Since 0.2 the optimizer holds
 *  its base rate while the callback runs (see bp_epoch_fn_v2), so checkpoints saved here
 *  resume exactly. */
typedef int (*bp_epoch_fn)(void *user, size_t epoch, const double *metrics, size_t count);

/** Set or clear the epoch callback of @p net (copied by bp_net_clone()). A net has one epoch
 *  callback: this replaces one set with bp_net_set_epoch_callback_v2().
 *  @param net  the network whose bp_net_fit() calls @p fn.
 *  @param fn    the callback, or NULL to clear it.
 *  @param user  passed to @p fn; not dereferenced by the library.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle). @since 0.1 */
BP_API bp_status bp_net_set_epoch_callback(bp_net *net, bp_epoch_fn fn, void *user);

/** Epoch callback that also receives the network being trained: as bp_epoch_fn, called at
 *  the same point with the same rules (it may read the net, predict with it, save it or a
 *  checkpoint, but not free it, change its layers or call bp_net_fit() on it). While it
 *  runs, the optimizer holds the base learning rate (fit sets the scheduled one again
 *  before the next epoch), so a checkpoint saved here and resumed with
 *  BP_FIT_INITIAL_EPOCH = epoch + 1 gives the same weights as the uninterrupted run.
 *  (A new type rather than a changed bp_epoch_fn: changing a function-pointer type breaks
 *  every compiled caller; the 0.1 type and setter stay.)
 *  @param user     the pointer given to bp_net_set_epoch_callback_v2().
 *  @param net      the network bp_net_fit() is training.
 *  @param epoch    the absolute epoch number (from 0).
 *  @param metrics  the epoch's metrics [count], indexed by enum bp_metric; borrowed.
 *  @param count    BP_METRIC_COUNT.
 *  @return 0 to continue, nonzero to stop training after this epoch. @since 0.2 */
typedef int (*bp_epoch_fn_v2)(void *user, bp_net *net, size_t epoch, const double *metrics,
                              size_t count);

/** Set or clear the epoch callback of @p net in its 0.2 form (copied by bp_net_clone());
 *  replaces one set with bp_net_set_epoch_callback().
 *  @param net   the network whose bp_net_fit() calls @p fn.
 *  @param fn    the callback, or NULL to clear it.
 *  @param user  passed to @p fn; not dereferenced by the library.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle). @since 0.2 */
BP_API bp_status bp_net_set_epoch_callback_v2(bp_net *net, bp_epoch_fn_v2 fn, void *user);

/** Batch (progress) callback: called by bp_net_fit() after a training step, at a bounded
 *  rate: after the last batch of every epoch, and after another batch only when
 *  BP_FIT_PROGRESS_SECONDS (default 0.1 s) of wall-clock time have passed since its
 *  previous call in that epoch (or the epoch's start); with 0 after every batch. So at most
 *  about 10 calls a second plus one per epoch by default, whatever the batch size. Meant
 *  for progress bars: it cannot stop training (the epoch callback can).
 *  @param user     the pointer given to bp_net_set_batch_callback().
 *  @param net      the network being trained: read-only here (no predict, save or setter).
 *  @param epoch    the absolute epoch number (from 0).
 *  @param batch    index of the batch just trained in the epoch, 0 .. batches - 1.
 *  @param batches  batches in the epoch (ceil(rows / batch size)).
 *  @param loss     the running training loss: the mean loss of the epoch's batches so far,
 *                  weighted by rows (BP_METRIC_LOSS once the epoch is done). @since 0.2 */
typedef void (*bp_batch_fn)(void *user, const bp_net *net, size_t epoch, size_t batch,
                            size_t batches, double loss);

/** Set or clear the batch callback of @p net (copied by bp_net_clone()).
 *  @param net   the network whose bp_net_fit() calls @p fn.
 *  @param fn    the callback, or NULL to clear it.
 *  @param user  passed to @p fn; not dereferenced by the library.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle). @since 0.2 */
BP_API bp_status bp_net_set_batch_callback(bp_net *net, bp_batch_fn fn, void *user);

/** Train @p net on @p train for the epochs [BP_FIT_INITIAL_EPOCH, BP_FIT_EPOCHS) with the
 *  settings described in this section. The history is replaced by this call's epochs.
 *  Buffers for one batch (gathered rows, shuffle order, best weights, validation outputs)
 *  are allocated once per call: no allocation happens per step or after the first epoch
 *  (the history's first 4096 rows are reserved up front).
 *  @param net  the network to train.
 *  @param opt    the optimizer; its rate is set per epoch and restored on return.
 *  @param loss   an enum bp_loss value, used for training and validation.
 *  @param train  the training set: input width = the net's input width; target width =
 *                the net's output width, or 1 (class indices < output width) for
 *                BP_LOSS_SPARSE_SOFTMAX_CE. Not modified (shuffling works on an index).
 *  @param val    a validation set of the same widths, or NULL.
 *  @return BP_OK when the epochs are done, early stopping triggered, the callback asked to
 *  stop, or INITIAL_EPOCH >= EPOCHS (nothing to do); BP_ERR_INVALID_ARG (invalid handle,
 *  unknown loss), BP_ERR_STATE (no layers, a softmax CE loss without a softmax output
 *  layer, BP_NET_ACCUMULATE_GRADS on, an optimizer bound to another shape),
 *  BP_ERR_SHAPE (a width differs), BP_ERR_INDEX (a class index >= the output width) — all
 *  before anything changes. During training: BP_ERR_NONFINITE (a loss or gradient became
 *  NaN/Inf), BP_ERR_NOMEM (planning the buffers, or the net's workspaces at the first step
 *  or first validation), or an optimizer error: training stops with the weights as they
 *  were before the failing step, the history holds the completed epochs, the optimizer has
 *  its base rate back, and the message names the epoch. @since 0.1 */
BP_API bp_status bp_net_fit(bp_net *net, bp_optimizer *opt, int loss, const bp_dataset *train,
                            const bp_dataset *val);

/** Loss and metrics of @p net on a whole data set (inference in batches, like
 *  bp_net_predict(); the activations kept for bp_net_backward() are not disturbed). With
 *  BP_NET_APPLY_SCALERS (since 0.2) @p ds is raw (unscaled inputs and targets) and the
 *  loss, MAE and RMSE are in the targets' original units.
 *  @param net  the network (its inference workspace is used).
 *  @param loss     an enum bp_loss value; widths as for bp_net_fit().
 *  @param ds       the data set.
 *  @param metrics  receives metrics[0 .. min(count, 4)): BP_METRIC_LOSS, _ACCURACY, _MAE,
 *                  _RMSE (NaN where they do not apply; see enum bp_metric).
 *  @param count    doubles @p metrics can hold, >= 1.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE, BP_ERR_SHAPE, BP_ERR_INDEX,
 *  BP_ERR_NONFINITE (the loss overflowed), BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_evaluate(bp_net *net, int loss, const bp_dataset *ds, double *metrics,
                                 size_t count);

/* ============================================================================================
 * Streaming sources
 *
 * A bp_source delivers rows that cannot be randomly accessed — a pipe, a generator, data
 * augmented on the fly — through two callbacks: read (fill the next rows) and rewind
 * (start again for the next epoch). bp_net_fit_source() and bp_net_evaluate_source() take
 * one where bp_net_fit() and bp_net_evaluate() take a bp_dataset; nothing but the rows of
 * one batch (and of the shuffle buffer) is held in memory.
 *
 *     static int read_rows(void *user, float *x, float *y, size_t capacity, size_t *rows)
 *     {   // a generator: y = 2x, 10000 rows a pass
 *         size_t *next = user, k = 0;
 *         for (; k < capacity && *next < 10000; k++, ++*next) {
 *             x[k] = (float)*next / 10000.0f;
 *             y[k] = 2.0f * x[k];
 *         }
 *         *rows = k; // 0: the pass is over
 *         return 0;
 *     }
 *     static int rewind_rows(void *user) { *(size_t *)user = 0; return 0; }
 *     ...
 *     size_t next = 0;
 *     bp_source *src;
 *     bp_source_create(&src, 1, 1, 10000, read_rows, rewind_rows, &next);
 *     bp_net_fit_source(net, opt, BP_LOSS_MSE, src, NULL);
 *     bp_source_free(src);
 *
 * A pass is one epoch of bp_net_fit_source() or one bp_net_evaluate_source() call. The
 * first pass of a source reads it as it stands after bp_source_create(); every later pass
 * calls the rewind callback first, so a source without one gives exactly one pass. Rows are
 * checked as they arrive (finite values; the targets by the step or the evaluation), before
 * any step uses them: a failure stops training with the weights as they were before the
 * step that would have used the rows, and the message names the epoch and the row of the
 * pass. When to use which kind of data: docs/data.md.
 * ==========================================================================================*/

/** Read callback of a bp_source: write the next rows of the pass.
 *  @param user      the pointer given to bp_source_create().
 *  @param x         receives inputs [capacity x inputs] (the first *rows rows are used).
 *  @param y         receives targets [capacity x outputs].
 *  @param capacity  rows x and y have room for, >= 1.
 *  @param rows      receives the rows written, 0 .. capacity; 0 ends the pass (fewer than
 *                   @p capacity rows do not: the library asks again).
 *  @return 0 to go on, or an error: a bp_status error value is passed on as it is, any
 *  other nonzero value becomes BP_ERR_IO; a message the callback left in bp_last_error()
 *  (by a failed library call) becomes part of the error's message. @since 0.2 */
typedef int (*bp_source_read_fn)(void *user, float *x, float *y, size_t capacity, size_t *rows);

/** Rewind callback of a bp_source: make the next read start a new pass from the first row.
 *  @param user  the pointer given to bp_source_create().
 *  @return 0, or an error as for bp_source_read_fn. @since 0.2 */
typedef int (*bp_source_rewind_fn)(void *user);

/** Create a streaming source over the caller's callbacks. The library calls them only from
 *  within bp_net_fit_source() and bp_net_evaluate_source(), on the calling thread.
 *  @param out      receives the source; NULL on failure. Free with bp_source_free().
 *  @param inputs   input width of a row, >= 1.
 *  @param outputs  target width of a row, >= 1 (1 for class indices).
 *  @param rows     rows of every pass when known (a pass that gives another number fails
 *                  with BP_ERR_SHAPE; it also bounds the batch and shuffle buffers and
 *                  gives the batch callback its batch count), or 0 when unknown (a pipe).
 *  @param read     the read callback; must not be NULL.
 *  @param rewind   the rewind callback, or NULL for a source that gives one pass.
 *  @param user     passed to the callbacks; not dereferenced by the library.
 *  @return BP_OK, BP_ERR_INVALID_ARG (NULL @p out or @p read, a zero width), BP_ERR_NOMEM.
 *  @since 0.2 */
BP_API bp_status bp_source_create(bp_source **out, size_t inputs, size_t outputs, size_t rows,
                                  bp_source_read_fn read, bp_source_rewind_fn rewind, void *user);

/** Free a source (not the caller's data behind @p user). NULL is a no-op.
 *  @param src  the source.
 *  @since 0.2 */
BP_API void bp_source_free(bp_source *src);

/** Train @p net on the rows of a streaming source: bp_net_fit() with one pass of @p train
 *  per epoch. With BP_FIT_SHUFFLE 1 (the default) the rows go through a shuffle buffer of
 *  BP_FIT_SHUFFLE_BUFFER rows: each row of a batch is drawn uniformly from the buffer, which
 *  is refilled from the stream; the draws come from the network's generator, so the same
 *  seed and stream give the same order and bit-identical weights (however the read
 *  callback cuts the stream into chunks), and a checkpoint resumes it. With BP_FIT_SHUFFLE 0
 *  the batches are the stream's rows in order. All other settings, the callbacks and the
 *  history are as for bp_net_fit(). For a source of unknown length the batch callback gets
 *  @p batches 0 while the pass runs; the call for the pass's last batch, when the rate
 *  rule did not already make it, comes once the pass has ended, with the count. Buffers
 *  (a batch, the shuffle buffer and a batch of staged rows) are allocated once per call.
 *  @param net    the network to train.
 *  @param opt    the optimizer.
 *  @param loss   an enum bp_loss value.
 *  @param train  the source: widths as for bp_net_fit()'s training set. It is rewound
 *                before every epoch but its first pass; training for more than one epoch
 *                needs a rewind callback (else BP_ERR_STATE before anything changes).
 *  @param val    a validation data set, or NULL (use bp_net_evaluate_source() on a
 *                streamed one from the epoch callback).
 *  @return as bp_net_fit(), and during training: the callbacks' errors, BP_ERR_NONFINITE (a
 *  NaN/Inf the source gave; the message names its row and column), BP_ERR_SHAPE (a pass
 *  of another length than announced), BP_ERR_STATE (a pass without rows, a read that
 *  reported more rows than it had room for, a second pass of a source without rewind):
 *  training stops with the weights as they were before the failing step or read.
 *  @since 0.2 */
BP_API bp_status bp_net_fit_source(bp_net *net, bp_optimizer *opt, int loss, bp_source *train,
                                   const bp_dataset *val);

/** Loss and metrics of @p net on one pass of a streaming source, as bp_net_evaluate() on a
 *  data set holding the same rows (the same values for the same rows in the same order).
 *  The source is rewound first unless this is its first pass.
 *  @param net      the network.
 *  @param loss     an enum bp_loss value.
 *  @param src      the source.
 *  @param metrics  receives metrics[0 .. min(count, 4)) as bp_net_evaluate().
 *  @param count    doubles @p metrics can hold, >= 1.
 *  @return as bp_net_evaluate(), and the source's errors as for bp_net_fit_source().
 *  @since 0.2 */
BP_API bp_status bp_net_evaluate_source(bp_net *net, int loss, bp_source *src, double *metrics,
                                        size_t count);

/** @param net  the network.
 *  @return the number of epochs recorded by the last bp_net_fit() call (0 before any, or for
 *  an invalid handle). @since 0.1 */
BP_API size_t bp_net_history_length(const bp_net *net);

/** Read one metric of one recorded epoch.
 *  @param net  the network.
 *  @param epoch   row of the history, 0 .. bp_net_history_length() - 1 (row 0 is the epoch
 *                 BP_FIT_INITIAL_EPOCH of that call).
 *  @param metric  an enum bp_metric value.
 *  @param value   receives the value (NaN for a metric that does not apply).
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, NULL @p value, unknown metric),
 *  BP_ERR_INDEX (@p epoch out of range). @since 0.1 */
BP_API bp_status bp_net_history_get(const bp_net *net, size_t epoch, int metric, double *value);

/** The best epoch of the last bp_net_fit() call: the first history row with the lowest
 *  monitored loss (the validation loss when that call had a validation set, otherwise the
 *  training loss) — the epoch whose weights BP_FIT_KEEP_BEST restores. Its absolute epoch
 *  number is BP_FIT_INITIAL_EPOCH of that call + @p row.
 *  @param net  the network.
 *  @param row  receives the history row, 0 .. bp_net_history_length() - 1.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, NULL @p row), BP_ERR_STATE (empty
 *  history). @since 0.2 */
BP_API bp_status bp_net_history_best(const bp_net *net, size_t *row);

/** Write the history as CSV: a header line "epoch,loss,accuracy,mae,rmse,val_loss,
 *  val_accuracy,val_mae,val_rmse,learning_rate,seconds", then one line per recorded epoch
 *  (the absolute epoch number, then each metric with 9 significant digits, "nan" where it
 *  does not apply), in the C locale. Written atomically: a temporary file beside @p path
 *  renamed over it, so a failure never leaves a partial file at @p path.
 *  @param net  the network.
 *  @param path  the file name; written atomically.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_IO. @since 0.1 */
BP_API bp_status bp_net_history_save_csv(const bp_net *net, const char *path);

/** Index of the largest value of each row (the first one on ties), e.g. the predicted class
 *  of softmax outputs from bp_net_predict(). Thread-safe.
 *  @param values    [n x width] row-major.
 *  @param n         rows, >= 1.
 *  @param width     columns, >= 1.
 *  @param index     caller buffer receiving n indices.
 *  @param capacity  entries @p index can hold, >= n.
 *  @return BP_OK, BP_ERR_INVALID_ARG (NULL, zero or overflowing sizes),
 *  BP_ERR_BUFFER_TOO_SMALL, BP_ERR_NONFINITE (a NaN; @p index is then unchanged).
 *  @since 0.1 */
BP_API bp_status bp_argmax(const float *values, size_t n, size_t width, size_t *index,
                           size_t capacity);

/* ============================================================================================
 * Model files, checkpoints, scalers and metadata
 *
 * A model file holds a network's architecture, weights, settings and random-generator state,
 * plus optional data-scaling statistics and key/value metadata; a checkpoint adds an
 * optimizer's complete state and the training state, so that training resumed from it gives
 * bit-identical weights (same thread count). The format (docs/format.md) is versioned, little
 * endian on every host, sectioned (newer writers may add sections older readers skip) and
 * protected by a CRC-32; loaders check every size against the data and never trust a file:
 * malformed input gives BP_ERR_FORMAT, a failed checksum BP_ERR_CHECKSUM, a file written by
 * a newer format version BP_ERR_VERSION, each with a message in bp_last_error().
 *
 * Files are written atomically: into a temporary file in the same directory, flushed and
 * synced, then renamed over the target, so a failed save (disk full, no permission, the path
 * is a directory) returns BP_ERR_IO and leaves any previous file at the path intact. The same
 * holds for every file the library writes (bp_dataset_save_fann, bp_net_history_save_csv):
 * - the new file keeps the permission bits of the file it replaces, and its owner and group
 *   where the process may set them (a new file gets 0666 less the umask);
 * - a symbolic link at the path is written through: the file it leads to is replaced and the
 *   link stays (as editors and databases do); as Linux's fs.protected_symlinks does, a link
 *   in a sticky world-writable directory (/tmp) that belongs to neither the caller nor the
 *   directory's owner is not followed (BP_ERR_IO, "Permission denied");
 * - the temporary file is ".<name>.tmp-bpNN" (NN = 00 .. 63, <name> shortened so that names
 *   up to NAME_MAX work); a save removes every such file of the same target that no running
 *   save holds (one left by a process killed while saving), and a failed save removes its
 *   own;
 * - after the rename the directory is synced, so the new name survives a power loss.
 *
 * Loading from a path follows the data-set loaders' rules: only regular files (a FIFO or
 * device fails at once with BP_ERR_IO), and a gzip file must start, once decompressed, with
 * the model magic and may decompress to no more than its header's length, nor beyond the
 * data-set loaders' default limit (BP_ERR_OUT_OF_RANGE; for a larger model decompress it
 * yourself and use bp_net_load_buffer()).
 * ==========================================================================================*/

/** The newest model-file format version this library reads and writes (docs/format.md). A
 *  file is written in the lowest version that describes it: 1 (every 0.1 reader reads it)
 *  unless the net's input rows are sequences, which need 2 (since 0.2). */
#define BP_FORMAT_VERSION 2

/** @return BP_FORMAT_VERSION of the run-time library. Thread-safe. @since 0.1 */
BP_API unsigned bp_format_version(void);

/** Save @p net (architecture, weights, settings, generator state, scalers, metadata; not
 *  gradients, workspace or training state) to the file @p path, atomically.
 *  @param net  the network.
 *  @param path  the file name.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (a target scaler that no longer matches
 *  the output width), BP_ERR_NONFINITE (a parameter is NaN or Inf, e.g. written through
 *  bp_net_params(): such a file could not be loaded, so nothing is written), BP_ERR_IO (the
 *  previous file is then intact), BP_ERR_NOMEM.
 *  Thread-safe on a net nobody modifies. @since 0.1 */
BP_API bp_status bp_net_save(const bp_net *net, const char *path);

/** Save @p net, as bp_net_save() would write it, into a caller buffer.
 *  @param net  the network.
 *  @param buf       destination; may be NULL when @p capacity is 0 (size query).
 *  @param capacity  bytes @p buf can hold.
 *  @param size      receives the bytes needed (written when BP_OK); may not be NULL.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE, BP_ERR_BUFFER_TOO_SMALL (@p size then
 *  holds the size needed; buf is unspecified), BP_ERR_NOMEM (only layer kinds with
 *  non-parameter state, e.g. running statistics, copy it through a temporary buffer; dense
 *  networks never allocate here). @since 0.1 */
BP_API bp_status bp_net_save_buffer(const bp_net *net, void *buf, size_t capacity, size_t *size);

/** Load a network saved by bp_net_save() (or a checkpoint: its optimizer state is ignored).
 *  The loaded net has the saved seed state, settings, scalers and metadata; it predicts
 *  exactly as the saved one did.
 *  @param out   receives the network; NULL on failure. Free with bp_net_free().
 *  @param path  the file (gzip-compressed files are read too when built with zlib).
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_IO, BP_ERR_FORMAT, BP_ERR_CHECKSUM,
 *  BP_ERR_VERSION, BP_ERR_NONFINITE (a NaN/Inf weight), BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_net_load(bp_net **out, const char *path);

/** As bp_net_load(), with every allocation (including the file buffer) made through
 *  @p alloc_fn / @p free_fn with @p user, which the net keeps, as bp_net_create_ex().
 *  @param out  receives the network; NULL on failure. Free with bp_net_free().
 *  @param path  the file name.
 *  @param alloc_fn  allocation callback; NULL together with @p free_fn selects malloc.
 *  @param free_fn  release callback matching @p alloc_fn; NULL together with it selects free.
 *  @param user  passed to @p alloc_fn and @p free_fn.
 *  @return as bp_net_load().
 *  @since 0.1 */
BP_API bp_status bp_net_load_ex(bp_net **out, const char *path, bp_alloc_fn alloc_fn,
                                bp_free_fn free_fn, void *user);

/** As bp_net_load(), from @p size bytes at @p buf (not retained).
 *  @param out  receives the network; NULL on failure. Free with bp_net_free().
 *  @param buf  the model file's bytes; not retained.
 *  @param size  bytes at @p buf.
 *  @return as bp_net_load() (BP_ERR_IO aside).
 *  @since 0.1 */
BP_API bp_status bp_net_load_buffer(bp_net **out, const void *buf, size_t size);

/** As bp_net_load_buffer() with an allocator, as bp_net_load_ex().
 *  @param out  receives the network; NULL on failure. Free with bp_net_free().
 *  @param buf  the model file's bytes; not retained.
 *  @param size  bytes at @p buf.
 *  @param alloc_fn  allocation callback; NULL together with @p free_fn selects malloc.
 *  @param free_fn  release callback matching @p alloc_fn; NULL together with it selects free.
 *  @param user  passed to @p alloc_fn and @p free_fn.
 *  @return as bp_net_load_buffer().
 *  @since 0.1 */
BP_API bp_status bp_net_load_buffer_ex(bp_net **out, const void *buf, size_t size,
                                       bp_alloc_fn alloc_fn, bp_free_fn free_fn, void *user);

/** Save a training checkpoint: everything bp_net_save() writes, plus @p opt's settings and
 *  state (moments, step sizes, step count) and the net's training state, atomically.
 *  Training k steps, checkpointing, loading (in another process too) and training n - k more
 *  gives the same weights, bit for bit, as n steps in one go with the same thread count.
 *  @param net  the network.
 *  @param opt  an optimizer that is unbound or bound to @p net's shape.
 *  @param path  the file name.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE (optimizer bound to another shape),
 *  BP_ERR_NONFINITE (a parameter or optimizer state value the loader would refuse: nothing
 *  written), BP_ERR_IO (previous file intact), BP_ERR_NOMEM. @since 0.1 */
BP_API bp_status bp_checkpoint_save(const bp_net *net, const bp_optimizer *opt, const char *path);

/** As bp_checkpoint_save(), into a caller buffer; parameters and errors as
 *  bp_net_save_buffer().
 *  @param net  the network.
 *  @param opt  the optimizer.
 *  @param buf  destination; NULL when @p capacity is 0 (size query).
 *  @param capacity  bytes @p buf can hold.
 *  @param size  receives the bytes needed; may not be NULL.
 *  @return as bp_net_save_buffer().
 *  @since 0.1 */
BP_API bp_status bp_checkpoint_save_buffer(const bp_net *net, const bp_optimizer *opt, void *buf,
                                           size_t capacity, size_t *size);

/** Load a checkpoint written by bp_checkpoint_save().
 *  @param net_out  receives the network; NULL on failure. Free with bp_net_free().
 *  @param opt_out  receives the optimizer, ready to continue stepping @p net_out; NULL on
 *                  failure. Free with bp_optimizer_free().
 *  @param path  the file name.
 *  @return as bp_net_load(); a model file without optimizer state is BP_ERR_FORMAT.
 *  @since 0.1 */
BP_API bp_status bp_checkpoint_load(bp_net **net_out, bp_optimizer **opt_out, const char *path);

/** As bp_checkpoint_load(), with every allocation of both handles made through the
 *  allocator (see bp_net_create_ex()).
 *  @param net_out  receives the network; NULL on failure. Free with bp_net_free().
 *  @param opt_out  receives the optimizer; NULL on failure. Free with bp_optimizer_free().
 *  @param path  the file name.
 *  @param alloc_fn  allocation callback; NULL together with @p free_fn selects malloc.
 *  @param free_fn  release callback matching @p alloc_fn; NULL together with it selects free.
 *  @param user  passed to @p alloc_fn and @p free_fn.
 *  @return as bp_checkpoint_load().
 *  @since 0.1 */
BP_API bp_status bp_checkpoint_load_ex(bp_net **net_out, bp_optimizer **opt_out, const char *path,
                                       bp_alloc_fn alloc_fn, bp_free_fn free_fn, void *user);

/** As bp_checkpoint_load(), from @p size bytes at @p buf (not retained).
 *  @param net_out  receives the network; NULL on failure. Free with bp_net_free().
 *  @param opt_out  receives the optimizer; NULL on failure. Free with bp_optimizer_free().
 *  @param buf  the checkpoint's bytes; not retained.
 *  @param size  bytes at @p buf.
 *  @return as bp_checkpoint_load() (BP_ERR_IO aside).
 *  @since 0.1 */
BP_API bp_status bp_checkpoint_load_buffer(bp_net **net_out, bp_optimizer **opt_out,
                                           const void *buf, size_t size);

/** As bp_checkpoint_load_buffer() with an allocator.
 *  @param net_out  receives the network; NULL on failure. Free with bp_net_free().
 *  @param opt_out  receives the optimizer; NULL on failure. Free with bp_optimizer_free().
 *  @param buf  the checkpoint's bytes; not retained.
 *  @param size  bytes at @p buf.
 *  @param alloc_fn  allocation callback; NULL together with @p free_fn selects malloc.
 *  @param free_fn  release callback matching @p alloc_fn; NULL together with it selects free.
 *  @param user  passed to @p alloc_fn and @p free_fn.
 *  @return as bp_checkpoint_load_buffer().
 *  @since 0.1 */
BP_API bp_status bp_checkpoint_load_buffer_ex(bp_net **net_out, bp_optimizer **opt_out,
                                              const void *buf, size_t size, bp_alloc_fn alloc_fn,
                                              bp_free_fn free_fn, void *user);

/** Keep a data scaler (as computed by bp_dataset_fit_scaler()) with the network, so that it
 *  is saved and loaded with the model. The net applies it only when asked: with
 *  BP_NET_APPLY_SCALERS = 1, bp_net_predict() and bp_net_evaluate() scale raw inputs and
 *  give raw outputs (one call from raw inputs to original units):
 *
 *      bp_net_set(net, BP_NET_APPLY_SCALERS, 1);
 *      bp_net_predict(net, raw_row, 1, &price, 1);   // price in the original units
 *
 *  Otherwise (the default) scale inputs with bp_scaler_apply() before predicting and unscale
 *  outputs with bp_scaler_invert().
 *  @param net  the network.
 *  @param part    BP_SCALE_INPUTS (count must equal the input width) or BP_SCALE_TARGETS
 *                 (count must equal the current output width; needs a layer).
 *  @param offset  [count] finite offsets; copied.
 *  @param scale   [count] finite, non-zero scales; copied.
 *  @param count   the part's width; or 0 with @p offset and @p scale NULL to remove it.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_SHAPE (count differs from the width),
 *  BP_ERR_NONFINITE (or a zero scale), BP_ERR_NOMEM (net unchanged). @since 0.1 */
BP_API bp_status bp_net_set_scaler(bp_net *net, int part, const float *offset, const float *scale,
                                   size_t count);

/** Read a scaler kept with the network.
 *  @param net  the network.
 *  @param part      BP_SCALE_INPUTS or BP_SCALE_TARGETS.
 *  @param offset    caller buffer for the offsets (may be NULL when @p capacity is 0).
 *  @param scale     caller buffer for the scales (likewise).
 *  @param capacity  floats each of @p offset and @p scale can hold.
 *  @param count     receives the scaler's width, 0 when none is set (then BP_OK and
 *                   nothing is copied); may not be NULL.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_BUFFER_TOO_SMALL (@p count holds the width).
 *  @since 0.1 */
BP_API bp_status bp_net_get_scaler(const bp_net *net, int part, float *offset, float *scale,
                                   size_t capacity, size_t *count);

/** Set, replace or remove a metadata entry kept with the network and saved with it
 *  (training data, author, units ...). Keys and values are byte strings without NUL (UTF-8
 *  is not validated).
 *  @param net  the network.
 *  @param key    1 .. 255 bytes, NUL-terminated.
 *  @param value  0 .. 65535 bytes, NUL-terminated, copied; NULL removes the entry (BP_OK if
 *                it did not exist).
 *  @return BP_OK, BP_ERR_INVALID_ARG (NULL key), BP_ERR_OUT_OF_RANGE (a key or value too
 *  long or empty key, more than 1024 entries), BP_ERR_NOMEM (net unchanged). @since 0.1 */
BP_API bp_status bp_net_set_meta(bp_net *net, const char *key, const char *value);

/** Read a metadata entry.
 *  @param net  the network.
 *  @param key       the entry's key.
 *  @param buf       receives the value, NUL-terminated (may be NULL when @p capacity is 0).
 *  @param capacity  bytes @p buf can hold.
 *  @param needed    if not NULL, receives the value's length + 1.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_INDEX (no such key), BP_ERR_BUFFER_TOO_SMALL
 *  (buf then holds a truncated, terminated prefix when capacity > 0). @since 0.1 */
BP_API bp_status bp_net_get_meta(const bp_net *net, const char *key, char *buf, size_t capacity,
                                 size_t *needed);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* BACKPROP_H */
