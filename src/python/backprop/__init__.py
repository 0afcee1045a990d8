"""backprop -- Python binding of libbackprop through ctypes (standard library only;
NumPy used when installed, never required).

    import backprop as bp
    with bp.Net(2, seed=42) as net, bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.05) as opt:
        net.add_dense(8, bp.ACT_TANH).add_dense(1, bp.ACT_SIGMOID)
        x, y = [[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 0]
        net.fit(opt, bp.LOSS_MSE, (x, y), epochs=500, batch_size=4)
        print(net.predict(x))

The shared library is found by itself (backprop._find): pkg-config's libdir for backprop,
then the install prefix recorded by `cmake --install`, then ctypes.util.find_library, then
the environment variable BACKPROP_LIBRARY as the last resort; library_path tells which file
was loaded and library_source how it was found.

Conventions:
  - Handles (Net, Optimizer, Dataset) own their C object: close() frees it, `with` closes it,
    and a finaliser frees it when the object is garbage-collected. A Layer is a view that
    keeps its Net alive; using a closed handle raises BackpropError(ERR_INVALID_ARG).
  - Every non-OK status raises BackpropError, whose .status is the code and whose message
    is the library's own (bp_last_error(): "dense layer 2: input has 783 features ...").
    Sizes the binding checks before calling (a buffer shorter than its shape) raise
    BackpropError too, with the status the library uses for the case and a message of the
    binding's own.
  - Float inputs: a writable, C-contiguous float32 buffer (array.array('f'), a memoryview of
    one, a NumPy float32 array) is passed without copying (a read-only one is copied);
    anything else (a list, nested lists, a NumPy array of another dtype) is converted to
    float32 first. bytes and str are refused rather than read as numbers.
  - Float outputs: NumPy float32 arrays shaped [rows x cols] when NumPy is installed,
    array.array('f') (flat, row-major) when it is not; or the caller's own writable float32
    buffer given as out=.
  - Enumerations and keys are module constants (ACT_TANH, OPT_LEARNING_RATE ...) with the
    header's names minus the BP_ prefix.
  - Threads: ctypes releases the GIL during each library call, so distinct handles may be
    used from distinct threads at once; one thread at a time per handle, as in C.
"""

import array
import ctypes
import math
import os
import sys
import weakref

from . import _find
from .progress import Progress

try:  # NumPy is optional: used when present, never required.
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the machine
    _np = None

__version__ = "0.1.0"  # the library version this package is written for (backprop.h)

__all__ = ["BackpropError", "Net", "Layer", "Optimizer", "Dataset", "Progress", "version",
           "version_string", "status_string", "last_error", "set_num_threads",
           "get_num_threads", "backend_info", "loss_eval", "scaler_apply", "scaler_invert",
           "library_path", "library_source", "format_version", "metric_count", "metric_name",
           "argmax"]

# ------------------------------------------------------------------------------------------
# Constants: the header's enumerations (tests/python/test_binding.py checks each value
# against include/backprop.h).
# ------------------------------------------------------------------------------------------

OK = 0
ERR_INVALID_ARG = -100
ERR_OUT_OF_RANGE = -101
ERR_STATE = -102
ERR_UNSUPPORTED = -103
ERR_BUFFER_TOO_SMALL = -104
ERR_SHAPE = -200
ERR_INDEX = -201
ERR_NONFINITE = -300
ERR_IO = -400
ERR_FORMAT = -401
ERR_VERSION = -402
ERR_CHECKSUM = -403
ERR_NOMEM = -500

ACT_IDENTITY = 0
ACT_SIGMOID = 1
ACT_TANH = 2
ACT_RELU = 3
ACT_LEAKY_RELU = 4
ACT_ELU = 5
ACT_GELU = 6
ACT_SILU = 7
ACT_SOFTPLUS = 8
ACT_SOFTMAX = 9

INIT_DEFAULT = 0
INIT_GLOROT_UNIFORM = 1
INIT_GLOROT_NORMAL = 2
INIT_HE_UNIFORM = 3
INIT_HE_NORMAL = 4
INIT_LECUN_NORMAL = 5
INIT_ZEROS = 6
INIT_CONSTANT = 7
INIT_NORMAL = 8

LAYER_DENSE = 1
LAYER_BATCHNORM = 2
LAYER_DROPOUT = 3
LAYER_CONV2D = 4
LAYER_MAXPOOL2D = 5
LAYER_AVGPOOL2D = 6
LAYER_FLATTEN = 7
LAYER_GLOBAL_AVGPOOL = 8
LAYER_ACTIVATION = 9
LAYER_EMBEDDING = 10  # sequences
LAYER_LAYERNORM = 11
# recurrent layers
LAYER_RNN = 12
LAYER_LSTM = 13
LAYER_GRU = 14

RNN_LAST_STEP = 1
RNN_BIDIRECTIONAL = 2

LOSS_MSE = 1
LOSS_MAE = 2
LOSS_HUBER = 3
LOSS_BCE_LOGITS = 4
LOSS_SOFTMAX_CE = 5
LOSS_SPARSE_SOFTMAX_CE = 6

OPTIMIZER_SGD = 1
OPTIMIZER_ADAGRAD = 2
OPTIMIZER_RMSPROP = 3
OPTIMIZER_ADAM = 4
OPTIMIZER_ADAMW = 5
OPTIMIZER_ADAMAX = 6
OPTIMIZER_NADAM = 7
OPTIMIZER_IRPROP_MINUS = 8

OPT_LEARNING_RATE = 100
OPT_MOMENTUM = 101
OPT_DAMPENING = 102
OPT_NESTEROV = 103
OPT_WEIGHT_DECAY = 104
OPT_BETA1 = 105
OPT_BETA2 = 106
OPT_EPSILON = 107
OPT_AMSGRAD = 108
OPT_RHO = 109
OPT_CENTERED = 110
OPT_INITIAL_ACCUMULATOR = 111
OPT_RPROP_ETA_PLUS = 112
OPT_RPROP_ETA_MINUS = 113
OPT_RPROP_DELTA_INIT = 114
OPT_RPROP_DELTA_MIN = 115
OPT_RPROP_DELTA_MAX = 116

LAYER_TRAINABLE = 200
LAYER_LEAKY_SLOPE = 201
LAYER_ELU_ALPHA = 202
LAYER_BN_MOMENTUM = 203
LAYER_BN_EPSILON = 204
LAYER_DROPOUT_RATE = 205
LAYER_L2 = 206
LAYER_L1 = 207
LAYER_LN_EPSILON = 209  # sequences
LAYER_STATEFUL = 208  # recurrent layers

NET_ACCUMULATE_GRADS = 300
NET_HUBER_DELTA = 301
NET_CLIP_NORM = 302
NET_CLIP_VALUE = 303
NET_APPLY_SCALERS = 304

FIT_EPOCHS = 400
FIT_BATCH_SIZE = 401
FIT_SHUFFLE = 402
FIT_PATIENCE = 403
FIT_MIN_DELTA = 404
FIT_RESTORE_BEST = 405
FIT_SCHEDULE = 406
FIT_LR_STEP = 407
FIT_LR_GAMMA = 408
FIT_LR_MIN = 409
FIT_WARMUP_EPOCHS = 410
FIT_PLATEAU_PATIENCE = 411
FIT_COSINE_EPOCHS = 412
FIT_INITIAL_EPOCH = 413
FIT_KEEP_BEST = 414
FIT_PROGRESS_SECONDS = 415
FIT_SHUFFLE_BUFFER = 416

SCHEDULE_CONSTANT = 0
SCHEDULE_STEP = 1
SCHEDULE_EXPONENTIAL = 2
SCHEDULE_COSINE = 3
SCHEDULE_PLATEAU = 4

METRIC_LOSS = 0
METRIC_ACCURACY = 1
METRIC_MAE = 2
METRIC_RMSE = 3
METRIC_VAL_LOSS = 4
METRIC_VAL_ACCURACY = 5
METRIC_VAL_MAE = 6
METRIC_VAL_RMSE = 7
METRIC_LEARNING_RATE = 8
METRIC_SECONDS = 9
METRIC_COUNT = 10

SCALE_STANDARD = 1
SCALE_MINMAX = 2
SCALE_INPUTS = 1
SCALE_TARGETS = 2
DATA_FLOAT32 = 1
DATA_UINT8 = 2


def _keywords(prefix, lo, hi):
    """{'learning_rate': 100, ...} for the module constants prefix + NAME in [lo, hi]."""
    return {name[len(prefix):].lower(): value for name, value in globals().items()
            if name.startswith(prefix) and isinstance(value, int) and lo <= value <= hi}


# ------------------------------------------------------------------------------------------
# Loading the library and declaring its functions
# ------------------------------------------------------------------------------------------

class _Net(ctypes.Structure):
    """struct bp_net (opaque)."""


class _Layer(ctypes.Structure):
    """struct bp_layer (opaque)."""


class _Optimizer(ctypes.Structure):
    """struct bp_optimizer (opaque)."""


class _Dataset(ctypes.Structure):
    """struct bp_dataset (opaque)."""


class _Source(ctypes.Structure):
    """struct bp_source (opaque)."""


_P = ctypes.POINTER
_c_size_p = _P(ctypes.c_size_t)
_c_float_p = _P(ctypes.c_float)
_c_double_p = _P(ctypes.c_double)
_NetP, _LayerP, _OptP, _DsP = _P(_Net), _P(_Layer), _P(_Optimizer), _P(_Dataset)
_SrcP = _P(_Source)
_status = ctypes.c_int  # bp_status is an enum: int-sized, returned as int

ALLOC_FN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
FREE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
EPOCH_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.POINTER(ctypes.c_double), ctypes.c_size_t)
EPOCH_FN_V2 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Net), ctypes.c_size_t,
                               ctypes.POINTER(ctypes.c_double), ctypes.c_size_t)
BATCH_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_Net), ctypes.c_size_t,
                            ctypes.c_size_t, ctypes.c_size_t, ctypes.c_double)
GRAD_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Net), ctypes.c_int,
                           ctypes.c_size_t, ctypes.POINTER(ctypes.c_float))
SOURCE_READ_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                  ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                                  ctypes.POINTER(ctypes.c_size_t))
SOURCE_REWIND_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)

_S, _I, _D, _U64 = ctypes.c_size_t, ctypes.c_int, ctypes.c_double, ctypes.c_uint64
_STR = ctypes.c_char_p

# name: (restype, argtypes). Every function of backprop.h, in the header's order; the test
# compares this table with the header (names, arity and types).
PROTOTYPES = {
    "bp_version": (ctypes.c_uint, []),
    "bp_version_string": (_STR, []),
    "bp_status_string": (_STR, [_I]),
    "bp_last_error": (_STR, []),
    "bp_set_num_threads": (_status, [_I]),
    "bp_get_num_threads": (_I, []),
    "bp_backend_info": (_STR, []),
    "bp_net_create": (_status, [_P(_NetP), _S, _U64]),
    "bp_net_create_ex": (_status, [_P(_NetP), _S, _U64, ALLOC_FN, FREE_FN, ctypes.c_void_p]),
    "bp_net_create_image": (_status, [_P(_NetP), _S, _S, _S, _U64]),
    "bp_net_create_image_ex": (_status, [_P(_NetP), _S, _S, _S, _U64, ALLOC_FN, FREE_FN,
                                         ctypes.c_void_p]),
    "bp_net_input_shape": (_status, [_NetP, _c_size_p, _c_size_p, _c_size_p]),
    # sequences
    "bp_net_create_sequence": (_status, [_P(_NetP), _S, _S, _U64]),
    "bp_net_create_sequence_ex": (_status, [_P(_NetP), _S, _S, _U64, ALLOC_FN, FREE_FN,
                                            ctypes.c_void_p]),
    "bp_net_input_steps": (_status, [_NetP, _c_size_p]),
    "bp_layer_output_steps": (_status, [_LayerP, _c_size_p]),
    "bp_net_add_embedding": (_status, [_NetP, _S, _S]),
    "bp_net_add_layernorm": (_status, [_NetP]),
    "bp_net_free": (None, [_NetP]),
    "bp_net_clone": (_status, [_P(_NetP), _NetP]),
    "bp_net_last_error": (_STR, [_NetP]),
    "bp_net_add_dense": (_status, [_NetP, _S, _I]),
    "bp_net_add_batchnorm": (_status, [_NetP]),
    "bp_net_add_dropout": (_status, [_NetP, _D]),
    "bp_net_add_activation": (_status, [_NetP, _I]),
    "bp_net_add_conv2d": (_status, [_NetP, _S, _S, _S, _S, _S, _I]),
    "bp_net_add_maxpool2d": (_status, [_NetP, _S, _S]),
    "bp_net_add_avgpool2d": (_status, [_NetP, _S, _S]),
    "bp_net_add_global_avgpool": (_status, [_NetP]),
    "bp_net_add_flatten": (_status, [_NetP]),
    # recurrent layers
    "bp_net_add_rnn": (_status, [_NetP, _S, _I, _I]),
    "bp_net_add_lstm": (_status, [_NetP, _S, _I]),
    "bp_net_add_gru": (_status, [_NetP, _S, _I]),
    "bp_net_reset_state": (_status, [_NetP]),
    "bp_net_layer_count": (_S, [_NetP]),
    "bp_net_layer": (_LayerP, [_NetP, _S]),
    "bp_net_input_size": (_S, [_NetP]),
    "bp_net_output_size": (_S, [_NetP]),
    "bp_net_param_count": (_S, [_NetP]),
    "bp_net_set": (_status, [_NetP, _I, _D]),
    "bp_net_get": (_status, [_NetP, _I, _c_double_p]),
    "bp_net_param_bounds": (_status, [_I, _c_double_p, _c_double_p]),
    "bp_net_reset_settings": (_status, [_NetP]),
    "bp_net_summary": (_status, [_NetP, ctypes.c_char_p, _S, _c_size_p]),
    "bp_net_forward": (_status, [_NetP, _c_float_p, _S, _P(_c_float_p)]),
    "bp_net_backward": (_status, [_NetP, _c_float_p, _S]),
    "bp_net_zero_grad": (_status, [_NetP]),
    "bp_net_train_step": (_status, [_NetP, _OptP, _I, _c_float_p, _c_float_p, _S,
                                    _c_float_p]),
    "bp_net_compute_grads": (_status, [_NetP, _I, _c_float_p, _c_float_p, _S, _c_float_p]),
    "bp_net_set_grad_hook": (_status, [_NetP, GRAD_FN, ctypes.c_void_p]),
    "bp_net_predict": (_status, [_NetP, _c_float_p, _S, _c_float_p, _S]),
    "bp_net_predict_scratch_floats": (_S, [_NetP, _S]),
    "bp_net_predict_ws": (_status, [_NetP, _c_float_p, _S, _c_float_p, _S, _c_float_p, _S]),
    "bp_net_params": (_c_float_p, [_NetP, _c_size_p]),
    "bp_net_grads": (_c_float_p, [_NetP, _c_size_p]),
    "bp_layer_kind": (_I, [_LayerP]),
    "bp_layer_activation": (_I, [_LayerP]),
    "bp_layer_input_size": (_S, [_LayerP]),
    "bp_layer_output_size": (_S, [_LayerP]),
    "bp_layer_output_shape": (_status, [_LayerP, _c_size_p, _c_size_p, _c_size_p]),
    "bp_layer_grad_norm": (_status, [_LayerP, _c_double_p]),
    "bp_layer_param_count": (_S, [_LayerP]),
    "bp_layer_get_weights": (_status, [_LayerP, _c_float_p, _S]),
    "bp_layer_set_weights": (_status, [_LayerP, _c_float_p, _S]),
    "bp_layer_get_biases": (_status, [_LayerP, _c_float_p, _S]),
    "bp_layer_set_biases": (_status, [_LayerP, _c_float_p, _S]),
    "bp_layer_get_weight_grad": (_status, [_LayerP, _c_float_p, _S]),
    "bp_layer_get_bias_grad": (_status, [_LayerP, _c_float_p, _S]),
    "bp_layer_init_weights": (_status, [_LayerP, _I, _D]),
    "bp_layer_set": (_status, [_LayerP, _I, _D]),
    "bp_layer_get": (_status, [_LayerP, _I, _c_double_p]),
    "bp_layer_param_bounds": (_status, [_I, _c_double_p, _c_double_p]),
    "bp_layer_reset_settings": (_status, [_LayerP]),
    "bp_layer_kernel_shape": (_status, [_LayerP, _c_size_p, _c_size_p, _c_size_p, _c_size_p]),
    "bp_layer_get_state": (_status, [_LayerP, _c_float_p, _S, _c_size_p]),
    "bp_layer_set_state": (_status, [_LayerP, _c_float_p, _S]),
    "bp_loss_eval": (_status, [_I, _D, _c_float_p, _c_float_p, _S, _S, _c_float_p,
                               _c_float_p]),
    "bp_optimizer_create": (_status, [_P(_OptP), _I]),
    "bp_optimizer_free": (None, [_OptP]),
    "bp_optimizer_last_error": (_STR, [_OptP]),
    "bp_optimizer_kind": (_I, [_OptP]),
    "bp_optimizer_set": (_status, [_OptP, _I, _D]),
    "bp_optimizer_get": (_status, [_OptP, _I, _c_double_p]),
    "bp_optimizer_param_bounds": (_status, [_I, _c_double_p, _c_double_p]),
    "bp_optimizer_step": (_status, [_OptP, _NetP]),
    "bp_optimizer_reset": (_status, [_OptP]),
    "bp_optimizer_reset_settings": (_status, [_OptP]),
    "bp_optimizer_step_count": (_U64, [_OptP]),
    "bp_dataset_create": (_status, [_P(_DsP), _c_float_p, _c_float_p, _S, _S, _S]),
    "bp_dataset_free": (None, [_DsP]),
    "bp_dataset_last_error": (_STR, [_DsP]),
    "bp_dataset_size": (_S, [_DsP]),
    "bp_dataset_input_size": (_S, [_DsP]),
    "bp_dataset_output_size": (_S, [_DsP]),
    "bp_dataset_inputs": (_c_float_p, [_DsP]),
    "bp_dataset_targets": (_c_float_p, [_DsP]),
    "bp_dataset_load_csv": (_status, [_P(_DsP), _STR, _I, _I, _S, _S]),
    "bp_dataset_load_fann": (_status, [_P(_DsP), _STR]),
    "bp_dataset_save_fann": (_status, [_DsP, _STR]),
    "bp_dataset_save_binary": (_status, [_DsP, _STR, _I]),
    "bp_dataset_open_mapped": (_status, [_P(_DsP), _STR]),
    "bp_dataset_load_idx": (_status, [_P(_DsP), _STR, _STR, _S]),
    "bp_dataset_load_csv_ex": (_status, [_P(_DsP), _STR, _I, _I, _S, _S, _S]),
    "bp_dataset_load_fann_ex": (_status, [_P(_DsP), _STR, _S]),
    "bp_dataset_load_idx_ex": (_status, [_P(_DsP), _STR, _STR, _S, _S]),
    "bp_dataset_shuffle": (_status, [_DsP, _U64]),
    "bp_dataset_split": (_status, [_P(_DsP), _P(_DsP), _DsP, _D]),
    "bp_dataset_subset": (_status, [_P(_DsP), _DsP, _S, _S]),
    "bp_dataset_fit_scaler": (_status, [_DsP, _I, _I, _c_float_p, _c_float_p, _S]),
    "bp_dataset_apply_scaler": (_status, [_DsP, _I, _c_float_p, _c_float_p, _S]),
    "bp_scaler_apply": (_status, [_c_float_p, _c_float_p, _S, _c_float_p, _S]),
    "bp_scaler_invert": (_status, [_c_float_p, _c_float_p, _S, _c_float_p, _S]),
    "bp_dataset_class_count": (_status, [_DsP, _c_size_p]),
    "bp_dataset_one_hot": (_status, [_P(_DsP), _DsP, _S]),
    "bp_metric_count": (_S, []),
    "bp_metric_name": (_STR, [_I]),
    "bp_net_set_epoch_callback": (_status, [_NetP, EPOCH_FN, ctypes.c_void_p]),
    "bp_net_set_epoch_callback_v2": (_status, [_NetP, EPOCH_FN_V2, ctypes.c_void_p]),
    "bp_net_set_batch_callback": (_status, [_NetP, BATCH_FN, ctypes.c_void_p]),
    "bp_net_fit": (_status, [_NetP, _OptP, _I, _DsP, _DsP]),
    "bp_net_evaluate": (_status, [_NetP, _I, _DsP, _c_double_p, _S]),
    "bp_source_create": (_status, [_P(_SrcP), _S, _S, _S, SOURCE_READ_FN, SOURCE_REWIND_FN,
                                   ctypes.c_void_p]),
    "bp_source_free": (None, [_SrcP]),
    "bp_net_fit_source": (_status, [_NetP, _OptP, _I, _SrcP, _DsP]),
    "bp_net_evaluate_source": (_status, [_NetP, _I, _SrcP, _c_double_p, _S]),
    "bp_net_history_length": (_S, [_NetP]),
    "bp_net_history_get": (_status, [_NetP, _S, _I, _c_double_p]),
    "bp_net_history_best": (_status, [_NetP, _c_size_p]),
    "bp_net_history_save_csv": (_status, [_NetP, _STR]),
    "bp_argmax": (_status, [_c_float_p, _S, _S, _c_size_p, _S]),
    "bp_format_version": (ctypes.c_uint, []),
    "bp_net_save": (_status, [_NetP, _STR]),
    "bp_net_save_buffer": (_status, [_NetP, ctypes.c_void_p, _S, _c_size_p]),
    "bp_net_load": (_status, [_P(_NetP), _STR]),
    "bp_net_load_ex": (_status, [_P(_NetP), _STR, ALLOC_FN, FREE_FN, ctypes.c_void_p]),
    "bp_net_load_buffer": (_status, [_P(_NetP), ctypes.c_void_p, _S]),
    "bp_net_load_buffer_ex": (_status, [_P(_NetP), ctypes.c_void_p, _S, ALLOC_FN, FREE_FN,
                                        ctypes.c_void_p]),
    "bp_checkpoint_save": (_status, [_NetP, _OptP, _STR]),
    "bp_checkpoint_save_buffer": (_status, [_NetP, _OptP, ctypes.c_void_p, _S, _c_size_p]),
    "bp_checkpoint_load": (_status, [_P(_NetP), _P(_OptP), _STR]),
    "bp_checkpoint_load_ex": (_status, [_P(_NetP), _P(_OptP), _STR, ALLOC_FN, FREE_FN,
                                        ctypes.c_void_p]),
    "bp_checkpoint_load_buffer": (_status, [_P(_NetP), _P(_OptP), ctypes.c_void_p, _S]),
    "bp_checkpoint_load_buffer_ex": (_status, [_P(_NetP), _P(_OptP), ctypes.c_void_p, _S,
                                               ALLOC_FN, FREE_FN, ctypes.c_void_p]),
    "bp_net_set_scaler": (_status, [_NetP, _I, _c_float_p, _c_float_p, _S]),
    "bp_net_get_scaler": (_status, [_NetP, _I, _c_float_p, _c_float_p, _S, _c_size_p]),
    "bp_net_set_meta": (_status, [_NetP, _STR, _STR]),
    "bp_net_get_meta": (_status, [_NetP, _STR, ctypes.c_char_p, _S, _c_size_p]),
}


def _load():
    lib, path, source = _find.load()
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError(f"backprop: {path} (found by {source}) has no {name}: the "
                              f"library is older than this package ({__version__})") from None
        fn.restype, fn.argtypes = restype, argtypes
    return lib, path, source


_lib, library_path, library_source = _load()
lib = _lib  # the raw functions, declared with their prototypes, for anything not wrapped


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------

def _text(ptr):
    return ptr.decode("utf-8", "replace") if ptr else ""


class BackpropError(Exception):
    """A failed library call: .status is the bp_status code, .message the library's text."""

    def __init__(self, status, message):
        self.status = int(status)
        self.message = message
        super().__init__(f"{message} [{status_string(self.status)} ({self.status})]"
                         if message else f"{status_string(self.status)} ({self.status})")


def _check(status):
    if status != OK:
        raise BackpropError(status, _text(_lib.bp_last_error()))


def _fail(status, message):
    raise BackpropError(status, message)


def version():
    """bp_version(): MAJOR*10000 + MINOR*100 + PATCH of the loaded library."""
    return _lib.bp_version()


def version_string():
    return _text(_lib.bp_version_string())


def status_string(status):
    return _text(_lib.bp_status_string(int(status)))


def last_error():
    """The calling thread's last library message (bp_last_error())."""
    return _text(_lib.bp_last_error())


def set_num_threads(threads):
    _check(_lib.bp_set_num_threads(int(threads)))


def get_num_threads():
    return _lib.bp_get_num_threads()


def backend_info():
    return _text(_lib.bp_backend_info())


# ------------------------------------------------------------------------------------------
# Buffers
# ------------------------------------------------------------------------------------------

_F32 = {"f", "=f", "@f", "<f" if sys.byteorder == "little" else ">f"}


def _flatten(obj, out):
    for item in obj:
        if isinstance(item, (int, float)):
            out.append(float(item))
        elif isinstance(item, (str, bytes)):
            raise TypeError("expected numbers, got a string")
        else:
            _flatten(item, out)
    return out


class _In:
    """A float32 view of a caller's input: .ptr for C, .count floats, .shape if known."""

    def __init__(self, obj, what):
        self.shape = None
        if isinstance(obj, (str, bytes, bytearray)):
            raise TypeError(f"{what}: expected float32 values, got {type(obj).__name__}")
        if _np is not None and isinstance(obj, _np.ndarray):
            self.shape = obj.shape
            if obj.dtype != _np.float32 or not obj.flags.c_contiguous:
                obj = _np.ascontiguousarray(obj, dtype=_np.float32)
        try:
            view = memoryview(obj)
        except TypeError:
            view = None
        if view is not None and view.format in _F32 and view.c_contiguous:
            self.count = view.nbytes // 4
            flat = view.cast("B")
            if view.readonly:
                self._arr = (ctypes.c_float * self.count).from_buffer_copy(flat)
            else:
                self._arr = (ctypes.c_float * self.count).from_buffer(flat)
            if self.shape is None and view.ndim == 2:
                self.shape = view.shape
        else:
            if view is not None:
                view.release()
            if _np is not None and hasattr(obj, "__array__"):
                values = _np.ascontiguousarray(obj, dtype=_np.float32)
                self.shape = values.shape
                self.count = values.size
                self._arr = (ctypes.c_float * self.count).from_buffer(values)
                self._keep = values
            else:
                try:
                    values = array.array("f", _flatten(obj, []))
                except TypeError:
                    raise TypeError(f"{what}: expected a float32 buffer or a sequence of "
                                    f"numbers, got {type(obj).__name__}") from None
                self.count = len(values)
                self._arr = (ctypes.c_float * self.count).from_buffer(values)
                self._keep = values
        self.ptr = ctypes.cast(self._arr, _c_float_p)

    @staticmethod
    def bytes_view(data):
        """(ctypes char array, size) over a copy of a bytes-like object, for file buffers."""
        raw = bytes(memoryview(data).cast("B"))
        return (ctypes.c_char * max(len(raw), 1)).from_buffer_copy(raw or b"\0"), len(raw)


def _rows(data, width, what, n=None):
    """The row count of @p data for rows of @p width floats; checks the length."""
    if width == 0:
        return 0 if n is None else n
    if n is None:
        if data.count % width:
            _fail(ERR_SHAPE, f"{what}: {data.count} floats are not rows of width {width}")
        n = data.count // width
    elif data.count < n * width:
        _fail(ERR_SHAPE, f"{what}: {data.count} floats, {n} rows of width {width} need "
                         f"{n * width}")
    return n


def _writable(out, what):
    """A ctypes float array over the caller's writable, contiguous float32 buffer."""
    try:
        view = memoryview(out)
    except TypeError:
        raise TypeError(f"{what}: expected a writable float32 buffer") from None
    if view.format not in _F32 or view.readonly or not view.c_contiguous:
        raise TypeError(f"{what}: expected a writable, contiguous float32 buffer "
                        f"(got format {view.format!r})")
    return (ctypes.c_float * (view.nbytes // 4)).from_buffer(view.cast("B"))


class _Out:
    """An output of @p count floats: the caller's writable float32 buffer, else a NumPy
    array of @p shape when NumPy is installed, else a flat array.array('f')."""

    def __init__(self, count, shape, out=None, what="out", numpy=None):
        if out is not None:
            self._arr = _writable(out, what + ": out")
            if len(self._arr) < count:
                _fail(ERR_BUFFER_TOO_SMALL, f"{what}: out holds {len(self._arr)} floats, "
                                            f"{count} needed")
            self.value = out
        elif _np is not None and numpy is not False:
            self.value = _np.zeros(shape, dtype=_np.float32)
            self._arr = (ctypes.c_float * count).from_buffer(self.value)
        else:
            self.value = array.array("f", bytes(4 * count))
            self._arr = (ctypes.c_float * count).from_buffer(self.value)
        self.ptr = ctypes.cast(self._arr, _c_float_p)
        self.capacity = len(self._arr)


def _copy_floats(ptr, count, shape=None):
    """A copy of @p count floats at a borrowed pointer: a NumPy array of @p shape (flat if
    None) when NumPy is installed, else array.array('f')."""
    if _np is not None:
        out = _np.empty(shape if shape is not None else (count,), dtype=_np.float32)
        if count:
            ctypes.memmove(out.ctypes.data, ptr, 4 * count)
        return out
    out = array.array("f", bytes(4 * count))
    if count:
        ctypes.memmove(out.buffer_info()[0], ptr, 4 * count)
    return out


def _path(path):
    return os.fsencode(path)


def _utf8(text):
    return text if isinstance(text, bytes) else str(text).encode("utf-8")


def _to_bytes(save):
    """Run a size-query-then-fill save(buf, capacity, size_p) and return the bytes."""
    size = ctypes.c_size_t()
    status = save(None, 0, ctypes.byref(size))
    if status not in (OK, ERR_BUFFER_TOO_SMALL):
        _check(status)
    buf = ctypes.create_string_buffer(max(size.value, 1))
    _check(save(buf, size.value, ctypes.byref(size)))
    return buf.raw[:size.value]


# ------------------------------------------------------------------------------------------
# Handles
# ------------------------------------------------------------------------------------------

class _Handle:
    """Owns one C handle: close() (idempotent), context manager, finaliser."""

    _free = None
    _kind = "handle"

    def _adopt(self, handle):
        self._h = handle
        self._finalizer = weakref.finalize(self, type(self)._free, handle)

    def close(self):
        """Free the C object now (later calls on this object raise BackpropError)."""
        fin = getattr(self, "_finalizer", None)
        if fin is not None:
            fin()
        self._h = None

    @property
    def closed(self):
        return getattr(self, "_h", None) is None

    def _handle(self):
        h = getattr(self, "_h", None)
        if h is None:
            _fail(ERR_INVALID_ARG, f"{self._kind} is closed")
        return h

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class _Keyed:
    """set/get/param_bounds through bp_<object>_set/_get/_param_bounds; keys are ints or
    the names in KEYS (the constants' names in lower case, e.g. "learning_rate")."""

    _c = ""     # "bp_net", "bp_layer", "bp_optimizer"
    KEYS = {}

    @classmethod
    def _key(cls, key):
        if isinstance(key, str):
            try:
                return cls.KEYS[key]
            except KeyError:
                raise KeyError(f"unknown {cls.__name__} setting {key!r}") from None
        return int(key)

    def set(self, key, value):
        _check(getattr(_lib, self._c + "_set")(self._handle(), self._key(key), float(value)))
        return self

    def get(self, key):
        v = ctypes.c_double()
        _check(getattr(_lib, self._c + "_get")(self._handle(), self._key(key),
                                               ctypes.byref(v)))
        return v.value

    @classmethod
    def param_bounds(cls, key):
        lo, hi = ctypes.c_double(), ctypes.c_double()
        _check(getattr(_lib, cls._c + "_param_bounds")(cls._key(key), ctypes.byref(lo),
                                                       ctypes.byref(hi)))
        return lo.value, hi.value


def _free_net(h):
    _lib.bp_net_free(h)


def _free_opt(h):
    _lib.bp_optimizer_free(h)


def _free_ds(h):
    _lib.bp_dataset_free(h)


class Optimizer(_Handle, _Keyed):
    """bp_optimizer: Optimizer(OPTIMIZER_ADAM, learning_rate=1e-3, ...). Keyword settings
    are the OPT_* keys in lower case (learning_rate, momentum, beta1 ...)."""

    _free = staticmethod(_free_opt)
    _kind = "Optimizer"
    _c = "bp_optimizer"
    KEYS = _keywords("OPT_", 100, 199)

    def __init__(self, kind, **settings):
        h = _OptP()
        _check(_lib.bp_optimizer_create(ctypes.byref(h), int(kind)))
        self._adopt(h)
        try:
            for name, value in settings.items():
                self.set(name, value)
        except BaseException:
            self.close()
            raise

    @classmethod
    def _wrap(cls, handle):
        self = cls.__new__(cls)
        self._adopt(handle)
        return self

    @property
    def kind(self):
        return _lib.bp_optimizer_kind(self._handle())

    def step(self, net):
        """One update of @p net's parameters from its gradients (bp_optimizer_step)."""
        _check(_lib.bp_optimizer_step(self._handle(), net._handle()))

    def reset(self):
        _check(_lib.bp_optimizer_reset(self._handle()))

    def reset_settings(self):
        """Every setting back to the algorithm's default (bp_optimizer_reset_settings)."""
        _check(_lib.bp_optimizer_reset_settings(self._handle()))
        return self

    @property
    def step_count(self):
        return _lib.bp_optimizer_step_count(self._handle())

    @property
    def last_error(self):
        return _text(_lib.bp_optimizer_last_error(self._handle()))


class Layer(_Keyed):
    """A view of one layer of a Net (bp_layer); keeps the Net alive, invalid once it is
    closed."""

    _c = "bp_layer"
    KEYS = _keywords("LAYER_", 200, 299)

    def __init__(self, net, index):
        self._net = net
        self.index = index

    def _handle(self):
        h = _lib.bp_net_layer(self._net._handle(), self.index)
        if not h:
            _fail(ERR_INDEX, f"layer {self.index} does not exist")
        return h

    @property
    def kind(self):
        return _lib.bp_layer_kind(self._handle())

    @property
    def activation(self):
        return _lib.bp_layer_activation(self._handle())

    @property
    def input_size(self):
        return _lib.bp_layer_input_size(self._handle())

    @property
    def output_size(self):
        return _lib.bp_layer_output_size(self._handle())

    @property
    def output_steps(self):
        """T of the layer's sequence output rows [T x width], 0 when they are not sequences
        (bp_layer_output_steps)."""
        t = ctypes.c_size_t()
        _check(_lib.bp_layer_output_steps(self._handle(), ctypes.byref(t)))
        return t.value

    @property
    def output_shape(self):
        """(channels, height, width) of one output row, channels-first; (units, 1, 1) for
        flat rows, (1, T, width) for sequences (bp_layer_output_shape)."""
        c, h, w = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
        _check(_lib.bp_layer_output_shape(self._handle(), ctypes.byref(c), ctypes.byref(h),
                                          ctypes.byref(w)))
        return c.value, h.value, w.value

    def grad_norm(self):
        """The L2 norm of the layer's gradients from the last backward pass (0 without
        parameters), bp_layer_grad_norm."""
        norm = ctypes.c_double()
        _check(_lib.bp_layer_grad_norm(self._handle(), ctypes.byref(norm)))
        return norm.value

    @property
    def param_count(self):
        return _lib.bp_layer_param_count(self._handle())

    def _shapes(self):
        """(weight shape, bias shape). The kinds with parameters (dense, conv2d, batchnorm)
        have one bias per output channel and the rest of param_count as weights: dense
        [out x in], conv2d [filters x C*kernel_h*kernel_w] (row-major [filters x C x kh x
        kw]: reshape with the kernel size), batchnorm gamma [C]; the other kinds none."""
        h = self._handle()
        total = _lib.bp_layer_param_count(h)
        if total == 0:
            return (0,), (0,)
        channels = self.output_shape[0]
        weights = total - channels
        if _lib.bp_layer_kind(h) == LAYER_BATCHNORM:
            return (weights,), (channels,)
        return (channels, weights // channels), (channels,)

    def _get(self, fn, shape, numpy):
        h = self._handle()
        count = math.prod(shape)
        out = _Out(count, shape, numpy=numpy)
        if count:
            _check(fn(h, out.ptr, out.capacity))
        return out.value

    def weights(self, numpy=None):
        """The weights (see _shapes: dense W [out x in] row-major, conv2d [filters x
        C*kh*kw], batchnorm gamma [C]; empty for kinds without parameters): a NumPy array
        when NumPy is installed (numpy=False asks for a flat array.array('f'))."""
        return self._get(_lib.bp_layer_get_weights, self._shapes()[0], numpy)

    def biases(self, numpy=None):
        """One bias per output channel (batchnorm: beta [C]); empty without parameters."""
        return self._get(_lib.bp_layer_get_biases, self._shapes()[1], numpy)

    def weight_grad(self, numpy=None):
        return self._get(_lib.bp_layer_get_weight_grad, self._shapes()[0], numpy)

    def bias_grad(self, numpy=None):
        return self._get(_lib.bp_layer_get_bias_grad, self._shapes()[1], numpy)

    def set_weights(self, values):
        data = _In(values, "set_weights")
        _check(_lib.bp_layer_set_weights(self._handle(), data.ptr, data.count))

    def set_biases(self, values):
        data = _In(values, "set_biases")
        _check(_lib.bp_layer_set_biases(self._handle(), data.ptr, data.count))

    def init_weights(self, scheme, value=0.0):
        _check(_lib.bp_layer_init_weights(self._handle(), int(scheme), float(value)))



class Net(_Handle, _Keyed):
    """bp_net: Net(inputs, seed=0), Net.image(channels, height, width, seed=0) for image
    rows, or Net.sequence(steps, features, seed=0) for sequence rows. Methods that build the
    network return self."""

    _free = staticmethod(_free_net)
    _kind = "Net"
    _c = "bp_net"
    KEYS = {**_keywords("NET_", 300, 399), **_keywords("FIT_", 400, 499)}

    def __init__(self, inputs, seed=0):
        h = _NetP()
        _check(_lib.bp_net_create(ctypes.byref(h), int(inputs), int(seed)))
        self._adopt(h)

    @classmethod
    def image(cls, channels, height, width, seed=0):
        """A net whose input rows are images [channels x height x width], channels-first
        (bp_net_create_image)."""
        h = _NetP()
        _check(_lib.bp_net_create_image(ctypes.byref(h), int(channels), int(height),
                                        int(width), int(seed)))
        return cls._wrap(h)

    @classmethod
    def sequence(cls, steps, features, seed=0):
        """A net whose input rows are sequences of steps x features, step-major
        (bp_net_create_sequence); token ids for add_embedding() are features=1."""
        h = _NetP()
        _check(_lib.bp_net_create_sequence(ctypes.byref(h), int(steps), int(features),
                                           int(seed)))
        return cls._wrap(h)

    @classmethod
    def _wrap(cls, handle):
        self = cls.__new__(cls)
        self._adopt(handle)
        return self

    def clone(self):
        """An independent deep copy (bp_net_clone), e.g. one per thread. The copy has no
        epoch callback (the C copy would call this object's)."""
        h = _NetP()
        _check(_lib.bp_net_clone(ctypes.byref(h), self._handle()))
        copy = Net._wrap(h)
        _check(_lib.bp_net_set_epoch_callback(h, EPOCH_FN(), None))
        return copy

    @property
    def last_error(self):
        return _text(_lib.bp_net_last_error(self._handle()))

    # --- structure ----------------------------------------------------------------------
    def add_dense(self, units, activation=ACT_IDENTITY):
        _check(_lib.bp_net_add_dense(self._handle(), int(units), int(activation)))
        return self

    def add_batchnorm(self):
        """Batch normalisation per feature (flat rows) or per channel (image rows)."""
        _check(_lib.bp_net_add_batchnorm(self._handle()))
        return self

    def add_dropout(self, rate):
        _check(_lib.bp_net_add_dropout(self._handle(), float(rate)))
        return self

    def add_activation(self, activation):
        _check(_lib.bp_net_add_activation(self._handle(), int(activation)))
        return self

    def add_conv2d(self, filters, kernel, stride=1, padding=0, activation=ACT_IDENTITY):
        """2-D convolution; kernel is a size or a (kernel_h, kernel_w) pair."""
        kh, kw = kernel if isinstance(kernel, (tuple, list)) else (kernel, kernel)
        _check(_lib.bp_net_add_conv2d(self._handle(), int(filters), int(kh), int(kw),
                                      int(stride), int(padding), int(activation)))
        return self

    def add_maxpool2d(self, size, stride=None):
        """Max pooling over size x size windows; stride defaults to size."""
        _check(_lib.bp_net_add_maxpool2d(self._handle(), int(size),
                                         int(size if stride is None else stride)))
        return self

    def add_avgpool2d(self, size, stride=None):
        _check(_lib.bp_net_add_avgpool2d(self._handle(), int(size),
                                         int(size if stride is None else stride)))
        return self

    def add_global_avgpool(self):
        _check(_lib.bp_net_add_global_avgpool(self._handle()))
        return self

    def add_flatten(self):
        _check(_lib.bp_net_add_flatten(self._handle()))
        return self

    # recurrent layers: flags are RNN_LAST_STEP and RNN_BIDIRECTIONAL, OR-ed
    def add_rnn(self, hidden, activation=ACT_TANH, flags=0):
        _check(_lib.bp_net_add_rnn(self._handle(), int(hidden), int(activation), int(flags)))
        return self

    def add_lstm(self, hidden, flags=0):
        _check(_lib.bp_net_add_lstm(self._handle(), int(hidden), int(flags)))
        return self

    def add_gru(self, hidden, flags=0):
        _check(_lib.bp_net_add_gru(self._handle(), int(hidden), int(flags)))
        return self

    def reset_state(self):
        """Forget the carried state of the stateful recurrent layers."""
        _check(_lib.bp_net_reset_state(self._handle()))
        return self

    def add_embedding(self, vocabulary, dimension):
        """Token ids -> vectors (first layer of Net.sequence(steps, 1)); an id that is not an
        integer in [0, vocabulary) raises BP_ERR_INDEX naming its row and step."""
        _check(_lib.bp_net_add_embedding(self._handle(), int(vocabulary), int(dimension)))
        return self

    def add_layernorm(self):
        """Layer normalisation over each step's (sequences) or each row's features."""
        _check(_lib.bp_net_add_layernorm(self._handle()))
        return self

    @property
    def input_steps(self):
        """T of the input rows for Net.sequence(), else 0 (bp_net_input_steps)."""
        t = ctypes.c_size_t()
        _check(_lib.bp_net_input_steps(self._handle(), ctypes.byref(t)))
        return t.value

    def _output_steps(self):
        count = self.layer_count
        return self.layer(count - 1).output_steps if count else self.input_steps

    @property
    def layer_count(self):
        return _lib.bp_net_layer_count(self._handle())

    def layer(self, index):
        if index < 0:
            index += self.layer_count
        if not 0 <= index < self.layer_count:
            _fail(ERR_INDEX, f"layer {index} of a net with {self.layer_count} layers")
        return Layer(self, index)

    @property
    def layers(self):
        return [Layer(self, i) for i in range(self.layer_count)]

    @property
    def input_size(self):
        return _lib.bp_net_input_size(self._handle())

    @property
    def input_shape(self):
        """(channels, height, width) of an input row; (inputs, 1, 1) for Net(inputs)."""
        c, h, w = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
        _check(_lib.bp_net_input_shape(self._handle(), ctypes.byref(c), ctypes.byref(h),
                                       ctypes.byref(w)))
        return c.value, h.value, w.value

    @property
    def output_size(self):
        return _lib.bp_net_output_size(self._handle())

    @property
    def param_count(self):
        return _lib.bp_net_param_count(self._handle())


    def summary(self):
        """The layer table of bp_net_summary() as a str."""
        h = self._handle()
        needed = ctypes.c_size_t()
        status = _lib.bp_net_summary(h, None, 0, ctypes.byref(needed))
        if status not in (OK, ERR_BUFFER_TOO_SMALL):
            _check(status)
        buf = ctypes.create_string_buffer(needed.value)
        _check(_lib.bp_net_summary(h, buf, needed.value, None))
        return buf.value.decode("utf-8", "replace")

    # --- the training steps -------------------------------------------------------------
    def _x(self, x, n, what):
        data = _In(x, what + ": x")
        return data, _rows(data, self.input_size, what + ": x", n)

    def _y(self, y, n, loss, what):
        target = _In(y, what + ": y")
        # class indices: one per row, or one per step of sequence outputs
        width = max(1, self._output_steps()) if loss == LOSS_SPARSE_SOFTMAX_CE \
            else self.output_size
        if target.count < n * width:
            _fail(ERR_SHAPE, f"{what}: y holds {target.count} floats, {n} rows of "
                             f"{width} target(s) need {n * width}")
        return target

    def forward(self, x, n=None):
        """Training forward pass; returns a copy of the outputs [n x out]."""
        data, n = self._x(x, n, "forward")
        y = _c_float_p()
        _check(_lib.bp_net_forward(self._handle(), data.ptr, n, ctypes.byref(y)))
        width = self.output_size
        return _copy_floats(y, n * width, (n, width))

    def backward(self, dy, n=None):
        """Backward pass from dL/dY [n x out] of the last forward()."""
        grad = _In(dy, "backward: dy")
        n = _rows(grad, self.output_size, "backward: dy", n)
        _check(_lib.bp_net_backward(self._handle(), grad.ptr, n))

    def zero_grad(self):
        _check(_lib.bp_net_zero_grad(self._handle()))

    def train_step(self, opt, loss, x, y, n=None):
        """Forward, loss, backward, update on one batch; returns the batch loss."""
        data, n = self._x(x, n, "train_step")
        target = self._y(y, n, loss, "train_step")
        value = ctypes.c_float()
        status = _lib.bp_net_train_step(self._handle(), opt._handle(), int(loss), data.ptr,
                                        target.ptr, n, ctypes.byref(value))
        self._raise_hook_error()
        _check(status)
        return value.value

    def compute_grads(self, loss, x, y, n=None):
        """Forward, loss and backward without the update; returns the batch loss."""
        data, n = self._x(x, n, "compute_grads")
        target = self._y(y, n, loss, "compute_grads")
        value = ctypes.c_float()
        _check(_lib.bp_net_compute_grads(self._handle(), int(loss), data.ptr, target.ptr, n,
                                         ctypes.byref(value)))
        return value.value

    def predict(self, x, n=None, out=None):
        """Inference on rows x [n x in]: returns the outputs [n x out] (see module doc)."""
        data, n = self._x(x, n, "predict")
        width = self.output_size
        result = _Out(n * width, (n, width), out, "predict")
        _check(_lib.bp_net_predict(self._handle(), data.ptr, n, result.ptr, result.capacity))
        return result.value

    def predict_scratch_floats(self, n):
        """Floats of scratch predict_ws() needs for n rows."""
        return _lib.bp_net_predict_scratch_floats(self._handle(), int(n))

    def predict_ws(self, x, n=None, out=None, scratch=None):
        """Inference that only reads the net (bp_net_predict_ws): any number of threads may
        call it at once on one trained Net, each with its own scratch (a writable float32
        buffer of predict_scratch_floats(n) floats; allocated per call when None)."""
        data, n = self._x(x, n, "predict_ws")
        width = self.output_size
        result = _Out(n * width, (n, width), out, "predict_ws")
        need = self.predict_scratch_floats(n)
        work = _writable(scratch, "predict_ws: scratch") if scratch is not None else \
            (ctypes.c_float * max(need, 1))()
        _check(_lib.bp_net_predict_ws(self._handle(), data.ptr, n, result.ptr,
                                      result.capacity, ctypes.cast(work, _c_float_p),
                                      len(work)))
        return result.value

    # --- persistence --------------------------------------------------------------------
    def save(self, path):
        """bp_net_save: the model (weights, settings, scalers, metadata), atomically."""
        _check(_lib.bp_net_save(self._handle(), _path(path)))

    def save_buffer(self):
        """The model file's bytes (bp_net_save_buffer)."""
        return _to_bytes(lambda buf, cap, size: _lib.bp_net_save_buffer(self._handle(), buf,
                                                                          cap, size))

    @classmethod
    def load(cls, path):
        h = _NetP()
        _check(_lib.bp_net_load(ctypes.byref(h), _path(path)))
        return cls._wrap(h)

    @classmethod
    def load_buffer(cls, data):
        buf, size = _In.bytes_view(data)
        h = _NetP()
        _check(_lib.bp_net_load_buffer(ctypes.byref(h), buf, size))
        return cls._wrap(h)

    def checkpoint_save(self, opt, path):
        """bp_checkpoint_save: the model plus opt's state and the training state."""
        _check(_lib.bp_checkpoint_save(self._handle(), opt._handle(), _path(path)))

    def checkpoint_save_buffer(self, opt):
        return _to_bytes(lambda buf, cap, size: _lib.bp_checkpoint_save_buffer(
            self._handle(), opt._handle(), buf, cap, size))

    @classmethod
    def checkpoint_load(cls, path):
        """(Net, Optimizer) from a checkpoint file."""
        h, o = _NetP(), _OptP()
        _check(_lib.bp_checkpoint_load(ctypes.byref(h), ctypes.byref(o), _path(path)))
        return cls._wrap(h), Optimizer._wrap(o)

    @classmethod
    def checkpoint_load_buffer(cls, data):
        buf, size = _In.bytes_view(data)
        h, o = _NetP(), _OptP()
        _check(_lib.bp_checkpoint_load_buffer(ctypes.byref(h), ctypes.byref(o), buf, size))
        return cls._wrap(h), Optimizer._wrap(o)

    def set_scaler(self, part, offset, scale):
        """Keep a scaler with the model (saved with it); offset=scale=None removes it."""
        if offset is None and scale is None:
            _check(_lib.bp_net_set_scaler(self._handle(), int(part), None, None, 0))
            return self
        off, sc = _In(offset, "set_scaler: offset"), _In(scale, "set_scaler: scale")
        if off.count != sc.count:
            _fail(ERR_SHAPE, f"set_scaler: {off.count} offsets but {sc.count} scales")
        _check(_lib.bp_net_set_scaler(self._handle(), int(part), off.ptr, sc.ptr, off.count))
        return self

    def get_scaler(self, part):
        """(offset, scale) kept with the model for part, or None when there is none."""
        h = self._handle()
        count = ctypes.c_size_t()
        status = _lib.bp_net_get_scaler(h, int(part), None, None, 0, ctypes.byref(count))
        if status not in (OK, ERR_BUFFER_TOO_SMALL):
            _check(status)
        if count.value == 0:
            return None
        offset, scale = _Out(count.value, (count.value,)), _Out(count.value, (count.value,))
        _check(_lib.bp_net_get_scaler(h, int(part), offset.ptr, scale.ptr, count.value,
                                      ctypes.byref(count)))
        return offset.value, scale.value

    def set_meta(self, key, value):
        """Set a metadata entry (str or bytes); None removes it."""
        _check(_lib.bp_net_set_meta(self._handle(), _utf8(key),
                                    None if value is None else _utf8(value)))
        return self

    def get_meta(self, key):
        """A metadata entry as str (ERR_INDEX when there is no such key)."""
        h, k = self._handle(), _utf8(key)
        needed = ctypes.c_size_t()
        status = _lib.bp_net_get_meta(h, k, None, 0, ctypes.byref(needed))
        if status not in (OK, ERR_BUFFER_TOO_SMALL):
            _check(status)
        buf = ctypes.create_string_buffer(needed.value)
        _check(_lib.bp_net_get_meta(h, k, buf, needed.value, None))
        return buf.value.decode("utf-8", "replace")

    # --- the training loop --------------------------------------------------------------

    def set_epoch_callback(self, callback):
        """Call callback(epoch, metrics) after every epoch of fit(); metrics is a dict
        {"loss": ..., "val_accuracy": ...} (NaN where a metric does not apply). A truthy
        return value stops training. An exception raised by the callback stops training
        and is re-raised by fit(). None clears it."""
        h = self._handle()
        self._epoch_cb = callback
        if callback is None:
            _check(_lib.bp_net_set_epoch_callback(h, EPOCH_FN(), None))
            self._epoch_fn = None
            return self

        def trampoline(user, epoch, metrics, count):
            try:
                values = {metric_name(i): metrics[i] for i in range(count)}
                return 1 if callback(epoch, values) else 0
            except BaseException as e:  # never unwind through C: stop, re-raise in fit()
                self._callback_error = e
                return 1

        fn = EPOCH_FN(trampoline)
        _check(_lib.bp_net_set_epoch_callback(h, fn, None))
        self._epoch_fn = fn  # the C side holds a pointer: keep the thunk alive
        return self

    def set_grad_hook(self, hook):
        """Call hook(net, status, rows, loss) inside every train_step() (so every step of
        fit()) after the gradients of the batch are computed and before clipping and the
        update (bp_net_set_grad_hook): net is this Net, whose grads() the hook may read and
        replace with set_grads(); status is OK or the error of the gradient pass; rows the
        batch's rows; loss its loss. A float returned replaces the loss the step reports
        (None keeps it). An exception raised by the hook fails the step (parameters
        untouched) and is re-raised by train_step() or fit(). None removes the hook."""
        h = self._handle()
        if hook is None:
            _check(_lib.bp_net_set_grad_hook(h, GRAD_FN(), None))
            self._grad_fn = None
            return self

        def trampoline(user, net, status, rows, loss_value):
            try:
                result = hook(self, status, rows, loss_value[0])
                if result is not None:
                    loss_value[0] = float(result)
                return OK
            except BaseException as e:  # never unwind through C: fail the step, re-raise
                self._hook_error = e
                return ERR_STATE

        fn = GRAD_FN(trampoline)
        _check(_lib.bp_net_set_grad_hook(h, fn, None))
        self._grad_fn = fn  # the C side holds a pointer: keep the thunk alive
        return self

    def _raise_hook_error(self):
        error = getattr(self, "_hook_error", None)
        if error is not None:
            self._hook_error = None
            raise error

    def _dataset(self, data, loss, what):
        """(Dataset, owned): a Dataset as it is, or a new one from an (x, y) pair."""
        if data is None or isinstance(data, Dataset):
            return data, False
        if isinstance(data, (tuple, list)) and len(data) == 2:
            outputs = 1 if loss == LOSS_SPARSE_SOFTMAX_CE else self.output_size
            return Dataset(data[0], data[1], inputs=self.input_size, outputs=outputs), True
        raise TypeError(f"{what}: expected a Dataset or an (x, y) pair, got "
                        f"{type(data).__name__}")

    def fit(self, opt, loss, train, val=None, callback=None, progress=None, file=None,
            **settings):
        """bp_net_fit: train on @p train, a Dataset or an (x, y) pair of arrays, with
        validation on @p val (likewise, or None). Returns history().

        Keyword settings are the FIT_* keys in lower case (epochs=10, batch_size=32,
        schedule=SCHEDULE_COSINE, patience=5 ...) and hold for this call only: the net's
        own settings (Net.set) are put back when fit returns, so fit(epochs=1) then fit()
        trains 1 epoch, then the net's number of epochs.

        callback(epoch, metrics) is called after every epoch, after the one set with
        set_epoch_callback() if any (see there). progress shows the epochs: None or False
        (default: quiet), True or "auto" (a bar redrawn in place when @p file is a terminal,
        also within each epoch from the library's batch callback; one line per epoch
        otherwise), "bar", "lines"; @p file defaults to sys.stdout. keep_best=True keeps
        the weights of the epoch with the lowest monitored loss however training ends
        (FIT_KEEP_BEST); best_epoch() names it."""
        keys = [(self._key(name), value) for name, value in settings.items()]
        train_ds, own_train = self._dataset(train, loss, "fit: train")
        try:
            val_ds, own_val = self._dataset(val, loss, "fit: val")
        except BaseException:
            if own_train:
                train_ds.close()
            raise
        h = self._handle()
        persistent = getattr(self, "_epoch_cb", None)
        saved, show = [], None
        self._callback_error = None
        try:
            for key, value in keys:
                saved.append((key, self.get(key)))
                self.set(key, value)
            if progress:
                show = Progress(self.get(FIT_EPOCHS), "auto" if progress is True else progress,
                                file, first_epoch=self.get(FIT_INITIAL_EPOCH))
            calls = [c for c in (persistent, callback, show) if c is not None]
            if calls != [persistent] and calls:
                def every(epoch, metrics):
                    stop = False
                    for c in calls:
                        stop = bool(c(epoch, metrics)) or stop
                    return stop
                self.set_epoch_callback(every)
            if show is not None and show.mode == "bar":
                def on_batch(user, net, epoch, batch, batches, loss):
                    try:
                        show.batch(epoch, batch, batches, loss)
                    except BaseException as e:  # never unwind through C: re-raise in fit()
                        self._callback_error = self._callback_error or e
                batch_fn = BATCH_FN(on_batch)  # alive until fit returns
                _check(_lib.bp_net_set_batch_callback(h, batch_fn, None))
            status = _lib.bp_net_fit(h, opt._handle(), int(loss), train_ds._handle(),
                                     val_ds._handle() if val_ds is not None else None)
        finally:
            if show is not None:
                if show.mode == "bar" and not self.closed:
                    _lib.bp_net_set_batch_callback(h, BATCH_FN(), None)
                show.close()
            if not self.closed:
                if getattr(self, "_epoch_cb", None) is not persistent:
                    self.set_epoch_callback(persistent)
                for key, value in reversed(saved):
                    self.set(key, value)
            if own_train:
                train_ds.close()
            if own_val:
                val_ds.close()
        error, self._callback_error = self._callback_error, None
        if error is not None:
            raise error
        self._raise_hook_error()
        _check(status)
        return self.history()

    def evaluate(self, loss, ds):
        """bp_net_evaluate: {"loss", "accuracy", "mae", "rmse"} on a Dataset or an (x, y)
        pair (NaN where a metric does not apply)."""
        data, owned = self._dataset(ds, loss, "evaluate")
        values = (ctypes.c_double * 4)()
        try:
            _check(_lib.bp_net_evaluate(self._handle(), int(loss), data._handle(), values, 4))
        finally:
            if owned:
                data.close()
        return {metric_name(i): values[i] for i in range(4)}

    def history(self):
        """The epochs of the last fit(): a list of {metric name: value} dicts."""
        h = self._handle()
        out = []
        value = ctypes.c_double()
        for epoch in range(_lib.bp_net_history_length(h)):
            row = {}
            for m in range(metric_count()):
                _check(_lib.bp_net_history_get(h, epoch, m, ctypes.byref(value)))
                row[metric_name(m)] = value.value
            out.append(row)
        return out

    def best_epoch(self):
        """bp_net_history_best: the history row (index into history()) of the last fit()'s
        epoch with the lowest monitored loss."""
        row = ctypes.c_size_t()
        _check(_lib.bp_net_history_best(self._handle(), ctypes.byref(row)))
        return row.value

    def history_save_csv(self, path):
        _check(_lib.bp_net_history_save_csv(self._handle(), _path(path)))

    # --- parameters ---------------------------------------------------------------------
    def _vector(self, fn):
        count = ctypes.c_size_t()
        ptr = fn(self._handle(), ctypes.byref(count))
        if not ptr:
            _fail(ERR_STATE, "the net has no layers")
        return ptr, count.value

    def params(self):
        """A copy of the whole parameter vector (bp_net_params)."""
        return _copy_floats(*self._vector(_lib.bp_net_params))  # flat [param_count]

    def set_params(self, values):
        """Overwrite the parameter vector; values must hold exactly param_count floats."""
        self._write(_lib.bp_net_params, values, "set_params")

    def grads(self):
        return _copy_floats(*self._vector(_lib.bp_net_grads))

    def set_grads(self, values):
        self._write(_lib.bp_net_grads, values, "set_grads")

    def _write(self, fn, values, what):
        ptr, count = self._vector(fn)
        data = _In(values, what)
        if data.count != count:
            _fail(ERR_SHAPE, f"{what}: {data.count} floats given, the net has {count}")
        for v in data._arr:
            if not math.isfinite(v):
                _fail(ERR_NONFINITE, f"{what}: a value is NaN or Inf")
        ctypes.memmove(ptr, data.ptr, 4 * count)


class Dataset(_Handle):
    """bp_dataset: Dataset(x, y, inputs=None, outputs=None) copies inputs [n x in] and
    targets [n x out]; loaders are class methods (load_csv, load_fann, load_idx)."""

    _free = staticmethod(_free_ds)
    _kind = "Dataset"

    def __init__(self, x, y, inputs=None, outputs=None):
        data, target = _In(x, "Dataset: x"), _In(y, "Dataset: y")
        # Widths: given, else the second dimension of a 2-D array; targets default to one
        # column, and the row count they give fixes the input width of flat data.
        if outputs is None:
            outputs = target.shape[1] if target.shape and len(target.shape) == 2 else 1
        n = target.count // outputs if outputs else 0
        if inputs is None:
            inputs = data.shape[1] if data.shape and len(data.shape) == 2 else \
                (data.count // n if n else 0)
        if inputs <= 0 or outputs <= 0 or n == 0 or data.count != n * inputs or \
                target.count != n * outputs:
            _fail(ERR_SHAPE, f"Dataset: {data.count} input and {target.count} target floats "
                             f"are not n rows of {inputs} inputs and {outputs} outputs")
        h = _DsP()
        _check(_lib.bp_dataset_create(ctypes.byref(h), data.ptr, target.ptr, n, inputs,
                                      outputs))
        self._adopt(h)

    @classmethod
    def _wrap(cls, handle):
        self = cls.__new__(cls)
        self._adopt(handle)
        return self

    @classmethod
    def load_csv(cls, path, target_first=-1, target_count=1, *, delimiter=",",
                 has_header=False, max_decompressed=0):
        """bp_dataset_load_csv: columns target_first .. target_first + target_count - 1
        are the targets, the others the inputs. Columns count from 0; a negative
        target_first counts from the end (-1, the default: the last column).

        delimiter and has_header are keyword-only: the C function takes (path, delimiter,
        has_header, target_first, target_count), and a call in that order raises TypeError
        here instead of reading the wrong columns. max_decompressed (bp_dataset_load_csv_ex)
        bounds a gzip file's decompressed size: 0 for the library's default (128 x the file's
        size within [64 MiB, 1 GiB]), the largest size_t (2**64 - 1) for no limit."""
        if not isinstance(target_first, int) or not isinstance(target_count, int):
            raise TypeError("load_csv(path, target_first=-1, target_count=1, *, delimiter=',', "
                            "has_header=False): target_first and target_count are column "
                            "numbers; give delimiter= and has_header= by keyword")
        if target_first < 0:
            target_first += _csv_columns(path, delimiter)
            if target_first < 0:
                _fail(ERR_INDEX, f"load_csv: {path}: target column out of range")
        h = _DsP()
        _check(_lib.bp_dataset_load_csv_ex(ctypes.byref(h), _path(path), ord(delimiter),
                                           int(bool(has_header)), int(target_first),
                                           int(target_count), int(max_decompressed)))
        return cls._wrap(h)

    @classmethod
    def load_fann(cls, path, max_decompressed=0):
        h = _DsP()
        _check(_lib.bp_dataset_load_fann_ex(ctypes.byref(h), _path(path),
                                            int(max_decompressed)))
        return cls._wrap(h)

    @classmethod
    def load_idx(cls, images_path, labels_path, classes=0, max_decompressed=0):
        h = _DsP()
        _check(_lib.bp_dataset_load_idx_ex(ctypes.byref(h), _path(images_path),
                                           _path(labels_path), int(classes),
                                           int(max_decompressed)))
        return cls._wrap(h)

    def save_fann(self, path):
        _check(_lib.bp_dataset_save_fann(self._handle(), _path(path)))

    def save_binary(self, path, element_type=DATA_FLOAT32):
        """Write a binary data-set file (DATA_FLOAT32 or DATA_UINT8-coded inputs)."""
        _check(_lib.bp_dataset_save_binary(self._handle(), _path(path), int(element_type)))

    @classmethod
    def open_mapped(cls, path):
        """A read-only, memory-mapped data set over a binary data-set file; its rows are
        read by fit and evaluate a batch at a time (inputs() and targets() are refused)."""
        h = _DsP()
        _check(_lib.bp_dataset_open_mapped(ctypes.byref(h), _path(path)))
        return cls._wrap(h)

    @property
    def last_error(self):
        return _text(_lib.bp_dataset_last_error(self._handle()))

    @property
    def size(self):
        return _lib.bp_dataset_size(self._handle())

    def __len__(self):
        return self.size

    @property
    def input_size(self):
        return _lib.bp_dataset_input_size(self._handle())

    @property
    def output_size(self):
        return _lib.bp_dataset_output_size(self._handle())

    def inputs(self):
        """A copy of the inputs [n x in] (NumPy, or a flat array.array('f'))."""
        ptr = _lib.bp_dataset_inputs(self._handle())
        if not ptr:
            raise ValueError("the data set is memory-mapped: its rows are not in memory")
        return _copy_floats(ptr, self.size * self.input_size, (self.size, self.input_size))

    def targets(self):
        ptr = _lib.bp_dataset_targets(self._handle())
        if not ptr:
            raise ValueError("the data set is memory-mapped: its rows are not in memory")
        return _copy_floats(ptr, self.size * self.output_size, (self.size, self.output_size))

    def shuffle(self, seed):
        _check(_lib.bp_dataset_shuffle(self._handle(), int(seed)))
        return self

    def split(self, fraction):
        """(first, second): the first round(n * fraction) samples and the rest."""
        a, b = _DsP(), _DsP()
        _check(_lib.bp_dataset_split(ctypes.byref(a), ctypes.byref(b), self._handle(),
                                     float(fraction)))
        return Dataset._wrap(a), Dataset._wrap(b)

    def subset(self, start, count):
        h = _DsP()
        _check(_lib.bp_dataset_subset(ctypes.byref(h), self._handle(), int(start), int(count)))
        return Dataset._wrap(h)

    def fit_scaler(self, kind=SCALE_STANDARD, part=SCALE_INPUTS):
        """(offset, scale) per column of @p part (NumPy arrays or array.array('f'))."""
        width = self.input_size if part == SCALE_INPUTS else self.output_size
        offset, scale = _Out(width, (width,)), _Out(width, (width,))
        _check(_lib.bp_dataset_fit_scaler(self._handle(), int(kind), int(part), offset.ptr,
                                          scale.ptr, width))
        return offset.value, scale.value

    def apply_scaler(self, offset, scale, part=SCALE_INPUTS):
        off, sc = _In(offset, "apply_scaler: offset"), _In(scale, "apply_scaler: scale")
        if off.count != sc.count:
            _fail(ERR_SHAPE, f"apply_scaler: {off.count} offsets but {sc.count} scales")
        _check(_lib.bp_dataset_apply_scaler(self._handle(), int(part), off.ptr, sc.ptr,
                                            off.count))
        return self

    def class_count(self):
        classes = ctypes.c_size_t()
        _check(_lib.bp_dataset_class_count(self._handle(), ctypes.byref(classes)))
        return classes.value

    def one_hot(self, classes):
        h = _DsP()
        _check(_lib.bp_dataset_one_hot(ctypes.byref(h), self._handle(), int(classes)))
        return Dataset._wrap(h)


# ------------------------------------------------------------------------------------------
# Free functions
# ------------------------------------------------------------------------------------------

def metric_count():
    return _lib.bp_metric_count()


def metric_name(metric):
    return _text(_lib.bp_metric_name(int(metric)))


def argmax(values, width=None):
    """bp_argmax: the index of the largest value of each row of width floats (width may be
    left out for a 2-D array): a NumPy integer array, or a list without NumPy."""
    data = _In(values, "argmax: values")
    if width is None:
        if not data.shape or len(data.shape) != 2:
            raise TypeError("argmax: give width for values that are not a 2-D array")
        width = data.shape[1]
    n = _rows(data, width, "argmax: values")
    index = (ctypes.c_size_t * max(n, 1))()
    _check(_lib.bp_argmax(data.ptr, n, int(width), index, n))
    if _np is not None:
        return _np.array(index[:n], dtype=_np.intp)
    return list(index[:n])


def _csv_columns(path, delimiter):
    """The number of cells of the first non-blank line of a CSV file (quotes respected)."""
    import gzip
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    cells, quoted = 1, False
                    for ch in line.rstrip("\r\n"):
                        if ch == '"':
                            quoted = not quoted
                        elif ch == delimiter and not quoted:
                            cells += 1
                    return cells
    except OSError as e:
        _fail(ERR_IO, f"load_csv: {path}: {e.strerror or e}")
    _fail(ERR_FORMAT, f"load_csv: {path}: no data rows")


def format_version():
    """bp_format_version(): the newest model-file format version the library reads and writes."""
    return _lib.bp_format_version()


def loss_eval(loss, pred, target, width, param=0.0, gradient=True):
    """bp_loss_eval: (value, dL/dpred or None) for predictions [n x width]."""
    p = _In(pred, "loss_eval: pred")
    n = _rows(p, width, "loss_eval: pred")
    t = _In(target, "loss_eval: target")
    need = n if loss == LOSS_SPARSE_SOFTMAX_CE else n * width
    if t.count != need:
        _fail(ERR_SHAPE, f"loss_eval: target holds {t.count} floats, {need} expected")
    value = ctypes.c_float()
    grad = _Out(n * width, (n, width)) if gradient else None
    _check(_lib.bp_loss_eval(int(loss), float(param), p.ptr, t.ptr, n, width,
                             ctypes.byref(value), grad.ptr if grad else None))
    return value.value, (grad.value if grad else None)


def _scaler(fn, offset, scale, values, what):
    off, sc = _In(offset, what + ": offset"), _In(scale, what + ": scale")
    if off.count != sc.count:
        _fail(ERR_SHAPE, f"{what}: {off.count} offsets but {sc.count} scales")
    target = _writable(values, what + ": values")
    if off.count == 0 or len(target) % off.count:
        _fail(ERR_SHAPE, f"{what}: {len(target)} values are not rows of width {off.count}")
    _check(fn(off.ptr, sc.ptr, off.count, ctypes.cast(target, _c_float_p),
              len(target) // off.count))
    return values


def scaler_apply(offset, scale, values):
    """v' = (v - offset[c]) * scale[c] in place on a writable float32 buffer of rows."""
    return _scaler(_lib.bp_scaler_apply, offset, scale, values, "scaler_apply")


def scaler_invert(offset, scale, values):
    """v = v' / scale[c] + offset[c] in place (undoes scaler_apply)."""
    return _scaler(_lib.bp_scaler_invert, offset, scale, values, "scaler_invert")
