#!/usr/bin/env python3
"""test_binding.py -- the Python package backprop (src/python) end to end.

Run by ctest (tests/python/CMakeLists.txt) with the package pip-installed into a virtual
environment and the library installed into the build tree's test prefix, which the package
finds by itself, and
  BACKPROP_HEADER   include/backprop.h of the source tree (constants and prototypes are
                    compared with it)
  BACKPROP_DATA     tests/data
  PYTHONPATH        tests/api (bp_header)
NumPy is optional: the NumPy cases are skipped when it is not installed (ctest runs the file
twice, once with NumPy hidden). Outputs are compared through flat(), which accepts both
kinds of output.
"""

import array
import ctypes
import gc
import math
import os
import random
import re
import sys
import tempfile
import unittest

import backprop as bp
import bp_header

try:
    import numpy as np
except ImportError:
    np = None


def flat(values):
    """An output of the binding as a flat array.array('f'): outputs are NumPy arrays shaped
    [rows x cols] when NumPy is installed, flat array.array('f') otherwise."""
    if np is not None and isinstance(values, np.ndarray):
        out = array.array("f")
        out.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
        return out
    return values


def ilist(values):
    """argmax's indices (a NumPy integer array or a list) as a list of ints."""
    return [int(v) for v in values]

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.environ.get("BACKPROP_HEADER",
                        os.path.join(HERE, "..", "..", "include", "backprop.h"))
DATA = os.environ.get("BACKPROP_DATA", os.path.join(HERE, "..", "data"))

XOR_X = [0, 0, 0, 1, 1, 0, 1, 1]
XOR_Y = [0, 1, 1, 0]


def xor_net(seed=42):
    net = bp.Net(2, seed=seed)
    net.add_dense(8, bp.ACT_TANH).add_dense(1, bp.ACT_SIGMOID)
    return net


def train_xor(net, steps=600):
    with bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.05) as opt:
        loss = math.inf
        for _ in range(steps):
            loss = net.train_step(opt, bp.LOSS_MSE, XOR_X, XOR_Y)
    return loss


class HeaderAgreement(unittest.TestCase):
    """The binding's constants and prototypes are the header's."""

    @classmethod
    def setUpClass(cls):
        cls.hdr = bp_header.parse(HEADER)

    def test_every_enumerator_has_the_header_value(self):
        for name, value in self.hdr.enumerators.items():
            short = name[len("BP_"):]
            self.assertTrue(hasattr(bp, short), f"backprop.{short} missing ({name})")
            self.assertEqual(getattr(bp, short), value, name)

    def test_no_constant_without_an_enumerator(self):
        for name in dir(bp):
            if re.fullmatch(r"(ERR|ACT|INIT|LAYER|LOSS|OPTIMIZER|OPT|NET|SCALE|FIT|METRIC|"
                            r"SCHEDULE|DATA)_[A-Z0-9_]+", name):
                self.assertIn("BP_" + name, self.hdr.enumerators, name)

    def _ctype(self, ctype):
        words = ctype.replace("const ", "").split()
        stars = words.count("*")
        base = " ".join(w for w in words if w != "*")
        handles = {"bp_net": bp._Net, "bp_layer": bp._Layer, "bp_optimizer": bp._Optimizer,
                   "bp_dataset": bp._Dataset, "bp_source": bp._Source}
        scalars = {"int": ctypes.c_int, "bp_status": ctypes.c_int, "size_t": ctypes.c_size_t,
                   "double": ctypes.c_double, "float": ctypes.c_float,
                   "uint64_t": ctypes.c_uint64, "unsigned": ctypes.c_uint,
                   "unsigned int": ctypes.c_uint}
        callbacks = {name: getattr(bp, name[len("bp_"):].upper(), None)
                     for name in self.hdr.callbacks}
        if base == "void":
            return None if stars == 0 else (ctypes.c_void_p if stars == 1 else
                                            ctypes.POINTER(ctypes.c_void_p))
        if base == "char" and stars == 1:
            return ctypes.c_char_p
        if base in callbacks and stars == 0:
            return callbacks[base]
        t = handles.get(base) or scalars.get(base)
        if t is None:
            self.fail(f"no ctypes mapping for {ctype!r}")
        for _ in range(stars):
            t = ctypes.POINTER(t)
        return t

    def test_prototypes_are_the_header_functions(self):
        declared = {fn.name for fn in self.hdr.functions}
        self.assertEqual(sorted(declared - set(bp.PROTOTYPES)), [], "functions not bound")
        self.assertEqual(sorted(set(bp.PROTOTYPES) - declared), [], "bound but not declared")

    def test_prototypes_have_the_header_types(self):
        for fn in self.hdr.functions:
            restype, argtypes = bp.PROTOTYPES[fn.name]
            expected = self._ctype(fn.ret)
            self.assertIs(restype, expected, f"{fn.name}: return type {fn.ret}")
            self.assertEqual(len(argtypes), len(fn.params), f"{fn.name}: parameter count")
            for got, p in zip(argtypes, fn.params):
                self.assertIs(got, self._ctype(p.type), f"{fn.name}: parameter {p.name}")


class Training(unittest.TestCase):
    def test_version_matches_the_header(self):
        self.assertEqual(bp.version(), 10000 * bp_header.version(self.hdr())[0]
                         + 100 * bp_header.version(self.hdr())[1]
                         + bp_header.version(self.hdr())[2])
        self.assertEqual(bp.version_string(), "%d.%d.%d" % bp_header.version(self.hdr()))

    @staticmethod
    def hdr():
        return bp_header.parse(HEADER)

    def test_xor_trains_and_predicts(self):
        with xor_net() as net:
            loss = train_xor(net)
            self.assertLess(loss, 0.01)
            raw = net.predict(XOR_X)
            if np is not None:  # outputs: NumPy arrays [rows x cols] when NumPy is installed
                self.assertIsInstance(raw, np.ndarray)
                self.assertEqual((raw.shape, raw.dtype), ((4, 1), np.float32))
            else:  # else flat array.array('f')
                self.assertIsInstance(raw, array.array)
            out = flat(raw)
            self.assertEqual(len(out), 4)
            for got, want in zip(out, XOR_Y):
                self.assertAlmostEqual(got, want, delta=0.15)

    def test_same_seed_same_weights_different_seed_different(self):
        with xor_net(7) as a, xor_net(7) as b, xor_net(8) as c:
            train_xor(a, 50)
            train_xor(b, 50)
            train_xor(c, 50)
            self.assertEqual(flat(a.params()), flat(b.params()))
            self.assertNotEqual(flat(a.params()), flat(c.params()))

    def test_five_steps_by_hand_equal_train_step(self):
        with xor_net(3) as a, xor_net(3) as b, \
                bp.Optimizer(bp.OPTIMIZER_SGD, learning_rate=0.1) as opt_a, \
                bp.Optimizer(bp.OPTIMIZER_SGD, learning_rate=0.1) as opt_b:
            for _ in range(3):
                a.train_step(opt_a, bp.LOSS_MSE, XOR_X, XOR_Y)
                pred = flat(b.forward(XOR_X))
                value, dpred = bp.loss_eval(bp.LOSS_MSE, pred, XOR_Y, 1)
                self.assertGreater(value, 0)
                b.backward(dpred)
                opt_b.step(b)
            self.assertEqual(opt_b.step_count, 3)
            for x, y in zip(flat(a.params()), flat(b.params())):
                self.assertAlmostEqual(x, y, places=6)

    def test_regression_with_dataset_and_scalers(self):
        # y = 3 a - 2 b + 0.5 on a grid, inputs standardised by a scaler fitted on the data.
        xs, ys = array.array("f"), array.array("f")
        for i in range(10):
            for j in range(10):
                a, b = 10 + i, -5 + j * 0.5
                xs.extend((a, b))
                ys.append(3 * a - 2 * b + 0.5)
        with bp.Dataset(xs, ys, inputs=2) as ds, bp.Net(2, seed=1) as net, \
                bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.05) as opt:
            self.assertEqual((len(ds), ds.input_size, ds.output_size), (100, 2, 1))
            offset, scale = ds.fit_scaler(bp.SCALE_STANDARD, bp.SCALE_INPUTS)
            t_off, t_scale = ds.fit_scaler(bp.SCALE_STANDARD, bp.SCALE_TARGETS)
            ds.apply_scaler(offset, scale, bp.SCALE_INPUTS)
            ds.apply_scaler(t_off, t_scale, bp.SCALE_TARGETS)
            net.add_dense(16, bp.ACT_TANH).add_dense(1)
            x, y = flat(ds.inputs()), flat(ds.targets())
            for _ in range(400):
                loss = net.train_step(opt, bp.LOSS_MSE, x, y)
            self.assertLess(loss, 1e-3)
            raw = array.array("f", [14.0, -3.0, 11.0, -1.0])
            bp.scaler_apply(offset, scale, raw)
            pred = flat(net.predict(raw))
            bp.scaler_invert(t_off, t_scale, pred)
            self.assertAlmostEqual(pred[0], 3 * 14 + 2 * 3 + 0.5, delta=0.5)
            self.assertAlmostEqual(pred[1], 3 * 11 + 2 * 1 + 0.5, delta=0.5)

    def test_clone_is_independent(self):
        with xor_net() as net:
            train_xor(net, 20)
            with net.clone() as copy:
                self.assertEqual(flat(copy.params()), flat(net.params()))
                train_xor(copy, 20)
                self.assertNotEqual(flat(copy.params()), flat(net.params()))

    def test_layer_views_read_and_write_parameters(self):
        with xor_net() as net:
            self.assertEqual(net.layer_count, 2)
            first = net.layer(0)
            self.assertEqual((first.kind, first.activation), (bp.LAYER_DENSE, bp.ACT_TANH))
            self.assertEqual((first.input_size, first.output_size, first.param_count),
                             (2, 8, 24))
            w = array.array("f", [0.5] * 16)
            first.set_weights(w)
            first.set_biases([0.25] * 8)
            self.assertEqual(list(flat(first.weights())), [0.5] * 16)
            self.assertEqual(list(flat(first.biases())), [0.25] * 8)
            self.assertEqual(len(flat(net.params())), net.param_count)
            first.set(bp.LAYER_TRAINABLE, 0)
            self.assertEqual(first.get(bp.LAYER_TRAINABLE), 0)
            net.compute_grads(bp.LOSS_MSE, XOR_X, XOR_Y)
            self.assertEqual(len(flat(first.weight_grad())), 16)
            self.assertEqual(len(flat(net.grads())), net.param_count)
            self.assertEqual(net.layer(-1).output_size, 1)

    def test_set_params_round_trips(self):
        with xor_net() as net:
            p = flat(net.params())
            q = array.array("f", (v + 1 for v in p))
            net.set_params(q)
            self.assertEqual(flat(net.params()), q)

    def test_settings_by_key_and_by_name(self):
        with bp.Optimizer(bp.OPTIMIZER_SGD, momentum=0.9, nesterov=1) as opt:
            self.assertEqual(opt.kind, bp.OPTIMIZER_SGD)
            self.assertAlmostEqual(opt.get("momentum"), 0.9)
            self.assertEqual(opt.get(bp.OPT_NESTEROV), 1)
            opt.reset_settings()
            self.assertEqual(opt.get("momentum"), 0)
            with self.assertRaises(bp.BackpropError) as cm:
                opt.set(bp.OPT_BETA1, 0.5)  # not an SGD setting
            self.assertEqual(cm.exception.status, bp.ERR_INVALID_ARG)
            self.assertIn("BP_OPT_BETA1 does not apply to SGD", cm.exception.message)
            lo, hi = bp.Optimizer.param_bounds("learning_rate")
            self.assertLessEqual(lo, 0.01)
            self.assertGreaterEqual(hi, 1)
        with xor_net() as net:
            net.set(bp.NET_CLIP_NORM, 1.5)
            self.assertEqual(net.get(bp.NET_CLIP_NORM), 1.5)
            self.assertIn("sigmoid", net.summary())

    def test_dataset_loaders_and_fann_round_trip(self):
        with bp.Dataset.load_fann(os.path.join(DATA, "xor.fann")) as ds:
            self.assertEqual((len(ds), ds.input_size, ds.output_size), (4, 2, 1))
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "copy.fann")
                ds.save_fann(path)
                with bp.Dataset.load_fann(path) as again:
                    self.assertEqual(flat(again.inputs()), flat(ds.inputs()))
                    self.assertEqual(flat(again.targets()), flat(ds.targets()))
        with bp.Dataset.load_fann(os.path.join(DATA, "xor.fann")) as ds:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "xor.bpds")
                ds.save_binary(path, bp.DATA_UINT8)
                with bp.Dataset.open_mapped(path) as mapped:
                    self.assertEqual((len(mapped), mapped.input_size), (4, 2))
                    with self.assertRaises(ValueError):
                        mapped.inputs()
                    with mapped.subset(1, 2) as view:
                        self.assertEqual(len(view), 2)
        with bp.Dataset.load_csv(os.path.join(DATA, "iris.csv"), 4, has_header=True) as iris:
            self.assertEqual((len(iris), iris.input_size), (150, 4))
            self.assertEqual(iris.class_count(), 3)
            with iris.one_hot(3) as hot:
                self.assertEqual(hot.output_size, 3)
            iris.shuffle(5)
            first, second = iris.split(0.8)
            with first, second:
                self.assertEqual((len(first), len(second)), (120, 30))
            with iris.subset(10, 5) as part:
                self.assertEqual(len(part), 5)
        images = os.path.join(DATA, "tiny-images-idx3-ubyte")
        labels = os.path.join(DATA, "tiny-labels-idx1-ubyte")
        with bp.Dataset.load_idx(images, labels, 3) as tiny:
            self.assertEqual((len(tiny), tiny.input_size, tiny.output_size), (3, 4, 3))
            self.assertEqual(list(flat(tiny.targets()))[:3], [0, 0, 1])

    def test_memoryview_and_out_buffer(self):
        with xor_net() as net:
            x = memoryview(array.array("f", XOR_X))
            out = array.array("f", [0.0] * 4)
            self.assertIs(net.predict(x, out=out), out)
            self.assertEqual(out, flat(net.predict(XOR_X)))
            ro = memoryview(bytes(array.array("f", XOR_X))).cast("f")
            self.assertEqual(flat(net.predict(ro)), out)
            with self.assertRaises(bp.BackpropError) as cm:
                net.predict(XOR_X, out=array.array("f", [0.0] * 3))
            self.assertEqual(cm.exception.status, bp.ERR_BUFFER_TOO_SMALL)
            with self.assertRaises(TypeError):
                net.predict(XOR_X, out=array.array("d", [0.0] * 4))
            with self.assertRaises(TypeError):
                net.predict(b"\x00" * 32)

    @unittest.skipIf(np is None, "NumPy is not installed")
    def test_numpy_in_numpy_out(self):
        with xor_net() as net:
            train_xor(net, 300)
            x = np.array(XOR_X, dtype=np.float64).reshape(4, 2)  # converted to float32
            y = net.predict(x)
            self.assertIsInstance(y, np.ndarray)
            self.assertEqual((y.shape, y.dtype), ((4, 1), np.float32))
            self.assertEqual(y.ravel().tolist(), list(flat(net.predict(XOR_X))))
            with bp.Dataset(x, np.array(XOR_Y, dtype=np.float32).reshape(4, 1)) as ds:
                self.assertEqual((ds.input_size, ds.output_size), (2, 1))
            w = net.layer(0).weights(numpy=True)
            self.assertEqual(w.shape, (8, 2))
            out = np.zeros((4, 1), dtype=np.float32)
            net.predict(x, out=out)
            self.assertEqual(out.tolist(), y.tolist())


def line_images(count, seed):
    """count images 1 x 8 x 8 with a bright line on a noisy background: class 0 a row,
    class 1 a column (at a random position); returns (flat pixels, labels)."""
    rng = random.Random(seed)
    x, y = array.array("f"), array.array("f")
    for i in range(count):
        label, at = i % 2, rng.randrange(8)
        img = [rng.uniform(0.0, 0.2) for _ in range(64)]
        for k in range(8):
            img[at * 8 + k if label == 0 else k * 8 + at] = 1.0
        x.extend(img)
        y.append(label)
    return x, y


def tiny_cnn(seed=5):
    """conv 4@3x3 (same) - batchnorm - ReLU - maxpool 2 - flatten - dropout - dense 2
    softmax on 1 x 8 x 8 images."""
    net = bp.Net.image(1, 8, 8, seed=seed)
    net.add_conv2d(4, 3, padding=1).add_batchnorm().add_activation(bp.ACT_RELU)
    net.add_maxpool2d(2).add_flatten().add_dropout(0.25).add_dense(2, bp.ACT_SOFTMAX)
    return net


class SequenceNet(unittest.TestCase):
    """Sequence nets (#14) through the binding: shapes and steps, per-step class targets,
    token ids checked."""

    def test_embedding_net_trains_per_step_and_checks_ids(self):
        T, V = 4, 5
        with bp.Net.sequence(T, 1, seed=3) as net:
            net.add_embedding(V, 6).add_layernorm().add_dense(V, bp.ACT_SOFTMAX)
            self.assertEqual(net.input_steps, T)
            self.assertEqual(net.input_shape, (1, T, 1))
            self.assertEqual([layer.output_steps for layer in net.layers], [T, T, T])
            self.assertEqual([layer.kind for layer in net.layers],
                             [bp.LAYER_EMBEDDING, bp.LAYER_LAYERNORM, bp.LAYER_DENSE])
            self.assertEqual(net.layer(2).output_shape, (1, T, V))
            x = [float((r + t) % V) for r in range(6) for t in range(T)]
            y = [float((int(v) + 1) % V) for v in x]  # one class index per step
            with bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.05) as opt:
                first = net.train_step(opt, bp.LOSS_SPARSE_SOFTMAX_CE, x, y)
                for _ in range(150):
                    last = net.train_step(opt, bp.LOSS_SPARSE_SOFTMAX_CE, x, y)
                self.assertLess(last, 0.2 * first)
                bad = list(x)
                bad[5] = float(V)
                with self.assertRaises(bp.BackpropError) as cm:
                    net.train_step(opt, bp.LOSS_SPARSE_SOFTMAX_CE, bad, y)
                self.assertEqual(cm.exception.status, bp.ERR_INDEX)
                self.assertIn("row 1, step 1", str(cm.exception))
            self.assertEqual(len(flat(net.predict(x))), 6 * T * V)
        with bp.Net(3) as flat_net:
            self.assertEqual(flat_net.input_steps, 0)


class ConvolutionalNet(unittest.TestCase):
    """Image nets and the deep layer kinds through the binding."""

    SHAPES = [(4, 8, 8), (4, 8, 8), (4, 8, 8), (4, 4, 4), (64, 1, 1), (64, 1, 1), (2, 1, 1)]
    KINDS = [bp.LAYER_CONV2D, bp.LAYER_BATCHNORM, bp.LAYER_ACTIVATION, bp.LAYER_MAXPOOL2D,
             bp.LAYER_FLATTEN, bp.LAYER_DROPOUT, bp.LAYER_DENSE]

    def test_structure_shapes_and_parameter_layout(self):
        with tiny_cnn() as net:
            self.assertEqual(net.input_shape, (1, 8, 8))
            self.assertEqual((net.input_size, net.output_size), (64, 2))
            self.assertEqual([layer.kind for layer in net.layers], self.KINDS)
            self.assertEqual([layer.output_shape for layer in net.layers], self.SHAPES)
            self.assertEqual(net.layer(0).output_size, 4 * 8 * 8)
            with bp.Net(5) as flat_net:
                self.assertEqual(flat_net.input_shape, (5, 1, 1))
            # conv: [filters x C x kh x kw] weights and one bias per filter; batchnorm:
            # gamma [C] (1 at first) and beta [C]; dense [out x in]; the rest: none.
            counts = [(len(flat(layer.weights())), len(flat(layer.biases())))
                      for layer in net.layers]
            self.assertEqual(counts, [(36, 4), (4, 4), (0, 0), (0, 0), (0, 0), (0, 0),
                                      (128, 2)])
            self.assertEqual([layer.param_count for layer in net.layers],
                             [w + b for w, b in counts])
            self.assertEqual(net.param_count, 36 + 4 + 8 + 130)
            self.assertEqual(list(flat(net.layer(1).weights())), [1.0] * 4)
            # The layer views read the parameter vector: conv W then b, batchnorm gamma
            # then beta, ...
            params = flat(net.params())
            conv = net.layer(0)
            self.assertEqual(params[:36], flat(conv.weights()))
            conv.set_weights([0.5] * 36)
            conv.set_biases([0.25, 0.5, 0.75, 1.0])
            self.assertEqual(flat(net.params())[:40], array.array("f", [0.5] * 36 +
                                                            [0.25, 0.5, 0.75, 1.0]))
            with self.assertRaises(bp.BackpropError) as cm:
                conv.set_weights([0.5] * 40)  # param_count, not the weight count
            self.assertEqual(cm.exception.status, bp.ERR_SHAPE)
            if np is not None:
                self.assertEqual(conv.weights(numpy=True).shape, (4, 9))
                self.assertEqual(net.layer(1).weights(numpy=True).shape, (4,))
                self.assertEqual(net.layer(-1).weights(numpy=True).shape, (2, 64))
                self.assertEqual(net.layer(3).weights(numpy=True).shape, (0,))
            self.assertIn("conv2d", net.summary())

    def test_layer_settings_of_the_new_kinds(self):
        with tiny_cnn() as net:
            drop, norm, conv = net.layer(5), net.layer(1), net.layer(0)
            self.assertAlmostEqual(drop.get("dropout_rate"), 0.25)
            drop.set(bp.LAYER_DROPOUT_RATE, 0.5)
            self.assertEqual(drop.get(bp.LAYER_DROPOUT_RATE), 0.5)
            norm.set("bn_momentum", 0.9).set(bp.LAYER_BN_EPSILON, 1e-3)
            self.assertAlmostEqual(norm.get(bp.LAYER_BN_MOMENTUM), 0.9)
            conv.set(bp.LAYER_L2, 1e-4)
            self.assertAlmostEqual(conv.get("l2"), 1e-4)
            with self.assertRaises(bp.BackpropError) as cm:
                conv.set(bp.LAYER_DROPOUT_RATE, 0.5)  # not a conv2d key
            self.assertEqual(cm.exception.status, bp.ERR_INVALID_ARG)
            conv.init_weights(bp.INIT_NORMAL, 0.01)
            self.assertTrue(all(abs(v) < 0.1 for v in flat(conv.weights())))

    def test_trains_saves_and_loads(self):
        x, y = line_images(32, seed=1)
        with tiny_cnn() as net, bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.02) as opt:
            first = net.train_step(opt, bp.LOSS_SPARSE_SOFTMAX_CE, x, y)
            for _ in range(60):
                loss = net.train_step(opt, bp.LOSS_SPARSE_SOFTMAX_CE, x, y)
            self.assertLess(loss, first / 2)
            pred = flat(net.predict(x))
            self.assertEqual(pred, flat(net.predict(x)))  # inference: no dropout, running stats
            hits = sum(p == t for p, t in zip(ilist(bp.argmax(pred, 2)), y))
            self.assertGreaterEqual(hits, 30)
            test_x, test_y = line_images(16, seed=2)
            self.assertGreaterEqual(
                sum(p == t for p, t in zip(ilist(bp.argmax(flat(net.predict(test_x)), 2)),
                                           test_y)), 14)

            net.compute_grads(bp.LOSS_SPARSE_SOFTMAX_CE, x, y)  # updates running stats
            pred = flat(net.predict(x))
            norms = [layer.grad_norm() for layer in net.layers]
            for i in (0, 1, 6):  # conv, batchnorm, dense have gradients
                self.assertGreater(norms[i], 0)
                self.assertTrue(math.isfinite(norms[i]))
            self.assertEqual([norms[i] for i in (2, 3, 4, 5)], [0.0] * 4)
            conv = net.layer(0)
            by_hand = math.sqrt(sum(v * v for v in flat(conv.weight_grad())) +
                                sum(v * v for v in flat(conv.bias_grad())))
            self.assertAlmostEqual(norms[0], by_hand, delta=1e-5 * by_hand)

            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "cnn.bpm")
                net.save(path)
                with bp.Net.load(path) as again:
                    self.assertEqual(again.input_shape, (1, 8, 8))
                    self.assertEqual([layer.kind for layer in again.layers], self.KINDS)
                    self.assertEqual([layer.output_shape for layer in again.layers],
                                     self.SHAPES)
                    self.assertEqual(again.layer(5).get(bp.LAYER_DROPOUT_RATE), 0.25)
                    self.assertEqual(flat(again.params()), flat(net.params()))
                    self.assertEqual(flat(again.predict(test_x)), flat(net.predict(test_x)))
            with bp.Net.load_buffer(net.save_buffer()) as again:
                self.assertEqual(flat(again.predict(x)), pred)

    def test_bad_shapes_raise_with_the_library_message(self):
        with bp.Net.image(1, 8, 8) as net:
            with self.assertRaises(bp.BackpropError) as cm:
                net.add_conv2d(2, 9)  # kernel 9 x 9 on an 8 x 8 image
            self.assertEqual(cm.exception.status, bp.ERR_SHAPE)
            self.assertEqual(cm.exception.message, bp.last_error())
            self.assertIn("9 x 9", cm.exception.message)
            self.assertEqual(net.last_error, cm.exception.message)
            with self.assertRaises(bp.BackpropError) as cm:
                net.add_conv2d(2, (3, 5), padding=3)  # padding not smaller than the kernel
            self.assertEqual(cm.exception.status, bp.ERR_INVALID_ARG)
            self.assertIn("padding 3", cm.exception.message)
            with self.assertRaises(bp.BackpropError) as cm:
                net.add_maxpool2d(9)
            self.assertEqual(cm.exception.status, bp.ERR_SHAPE)
            self.assertEqual(cm.exception.message, bp.last_error())
            with self.assertRaises(bp.BackpropError) as cm:
                net.add_dropout(1.0)
            self.assertEqual(cm.exception.status, bp.ERR_OUT_OF_RANGE)
            with self.assertRaises(bp.BackpropError) as cm:
                net.add_activation(12345)
            self.assertEqual(cm.exception.status, bp.ERR_INVALID_ARG)
            self.assertIn("12345", cm.exception.message)
            self.assertEqual(net.layer_count, 0)  # failed calls add nothing
            net.add_conv2d(2, (3, 5), stride=2).add_global_avgpool()
            self.assertEqual(net.layer(0).output_shape, (2, 3, 2))
            self.assertEqual(net.layer(1).output_shape, (2, 1, 1))
            net.add_dense(3, bp.ACT_SOFTMAX)
            with self.assertRaises(bp.BackpropError) as cm:
                net.add_batchnorm()  # nothing after a softmax layer
            self.assertEqual(cm.exception.status, bp.ERR_STATE)
            self.assertEqual(net.layer_count, 3)
        for shape in ((0, 8, 8), (1, 0, 8)):
            with self.assertRaises(bp.BackpropError) as cm:
                bp.Net.image(*shape)
            self.assertEqual(cm.exception.status, bp.ERR_INVALID_ARG)
            self.assertEqual(cm.exception.message, bp.last_error())
        net = tiny_cnn()
        layer = net.layer(0)
        net.close()
        for call in (lambda: layer.output_shape, lambda: layer.grad_norm(),
                     lambda: net.input_shape, lambda: net.add_flatten()):
            with self.assertRaises(bp.BackpropError) as cm:
                call()
            self.assertEqual(cm.exception.status, bp.ERR_INVALID_ARG)


class TrainingLoop(unittest.TestCase):
    def test_fit_with_validation_callback_and_history(self):
        seen = []
        with bp.Dataset(XOR_X, XOR_Y, inputs=2) as ds, xor_net() as net, \
                bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.05) as opt:
            history = net.fit(opt, bp.LOSS_MSE, ds, ds, epochs=300, batch_size=4,
                              callback=lambda epoch, m: seen.append((epoch, m["loss"])))
            self.assertEqual(len(history), 300)
            self.assertEqual([e for e, _ in seen], list(range(300)))
            self.assertEqual(seen[-1][1], history[-1]["loss"])
            self.assertLess(history[-1]["val_loss"], history[0]["val_loss"])
            self.assertTrue(math.isnan(history[-1]["accuracy"]))  # MSE: no accuracy
            metrics = net.evaluate(bp.LOSS_MSE, ds)
            self.assertLess(metrics["loss"], 0.02)
            self.assertGreaterEqual(metrics["rmse"], 0)
            self.assertEqual(net.get(bp.FIT_EPOCHS), 10)  # per-call: the net's own value back
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "history.csv")
                net.history_save_csv(path)
                with open(path) as f:
                    lines = f.read().splitlines()
                self.assertTrue(lines[0].startswith("epoch,loss,"))
                self.assertEqual(len(lines), 301)

    def test_callback_can_stop_and_its_exception_propagates(self):
        with bp.Dataset(XOR_X, XOR_Y, inputs=2) as ds, xor_net() as net, \
                bp.Optimizer(bp.OPTIMIZER_SGD) as opt:
            history = net.fit(opt, bp.LOSS_MSE, ds, epochs=50,
                              callback=lambda epoch, m: epoch == 4)
            self.assertEqual(len(history), 5)

            def boom(epoch, metrics):
                raise ValueError(f"stop at {epoch}")

            with self.assertRaises(ValueError) as cm:
                net.fit(opt, bp.LOSS_MSE, ds, epochs=50, callback=boom)
            self.assertEqual(str(cm.exception), "stop at 0")
            self.assertEqual(len(net.history()), 1)
            with self.assertRaises(KeyError):
                net.fit(opt, bp.LOSS_MSE, ds, no_such_setting=1)

    def test_grad_hook_sees_and_rewrites_gradients_and_loss(self):
        with xor_net() as net, bp.Optimizer(bp.OPTIMIZER_SGD) as opt:
            calls = []

            def freeze(n, status, rows, loss):
                calls.append((status, rows, loss))
                n.set_grads([0.0] * len(flat(n.grads())))  # no update
                return 42.0

            before = flat(net.params())
            net.set_grad_hook(freeze)
            self.assertEqual(net.train_step(opt, bp.LOSS_MSE, XOR_X, XOR_Y), 42.0)
            self.assertEqual(flat(net.params()), before)
            self.assertEqual(len(calls), 1)
            self.assertEqual(calls[0][:2], (bp.OK, 4))
            self.assertGreater(calls[0][2], 0.0)

            def boom(n, status, rows, loss):
                raise ValueError("hook failed")

            net.set_grad_hook(boom)
            with self.assertRaises(ValueError):
                net.train_step(opt, bp.LOSS_MSE, XOR_X, XOR_Y)
            with bp.Dataset(XOR_X, XOR_Y, inputs=2) as ds:
                with self.assertRaises(ValueError):
                    net.fit(opt, bp.LOSS_MSE, ds, epochs=2)
            self.assertEqual(flat(net.params()), before)
            net.set_grad_hook(None)
            self.assertNotEqual(net.train_step(opt, bp.LOSS_MSE, XOR_X, XOR_Y), 42.0)
            self.assertNotEqual(flat(net.params()), before)

    def test_fit_errors_carry_the_library_message(self):
        with bp.Dataset([0.0] * 9, [0, 1, 2], inputs=3) as wide, xor_net() as net, \
                bp.Optimizer(bp.OPTIMIZER_SGD) as opt:
            with self.assertRaises(bp.BackpropError) as cm:
                net.fit(opt, bp.LOSS_MSE, wide)
            self.assertEqual(cm.exception.status, bp.ERR_SHAPE)
            self.assertEqual(cm.exception.message, bp.last_error())
            with self.assertRaises(bp.BackpropError) as cm:
                net.fit(opt, bp.LOSS_MSE, wide, epochs=0)
            self.assertEqual(cm.exception.status, bp.ERR_OUT_OF_RANGE)

    def test_clone_does_not_inherit_the_callback(self):
        calls = []
        with bp.Dataset(XOR_X, XOR_Y, inputs=2) as ds, bp.Optimizer(bp.OPTIMIZER_SGD) as opt:
            net = xor_net()
            net.set_epoch_callback(lambda epoch, m: calls.append(epoch))
            copy = net.clone()
            net.close()
            del net
            gc.collect()
            with copy:
                copy.fit(opt, bp.LOSS_MSE, ds, epochs=3)
                self.assertEqual(len(copy.history()), 3)
            self.assertEqual(calls, [])

    def test_argmax_and_metric_names(self):
        self.assertEqual(ilist(bp.argmax([0.1, 0.7, 0.2, 0.5, 0.5, 0.0], 3)), [1, 0])
        self.assertEqual(bp.metric_count(), bp.METRIC_COUNT)
        self.assertEqual(bp.metric_name(bp.METRIC_VAL_ACCURACY), "val_accuracy")
        with self.assertRaises(bp.BackpropError):
            bp.argmax([1.0, 2.0, 3.0], 2)


class Persistence(unittest.TestCase):
    def test_save_and_load_give_the_same_predictions(self):
        with xor_net() as net:
            train_xor(net, 300)
            net.set_meta("task", "xor").set_meta("author", "test_binding")
            net.set_scaler(bp.SCALE_INPUTS, [0.5, 0.5], [2.0, 2.0])
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "xor.bpm")
                net.save(path)
                with bp.Net.load(path) as again:
                    self.assertEqual(flat(again.predict(XOR_X)), flat(net.predict(XOR_X)))
                    self.assertEqual(flat(again.params()), flat(net.params()))
                    self.assertEqual(again.get_meta("task"), "xor")
                    offset, scale = again.get_scaler(bp.SCALE_INPUTS)
                    self.assertEqual((list(offset), list(scale)), ([0.5, 0.5], [2.0, 2.0]))
                    self.assertIsNone(again.get_scaler(bp.SCALE_TARGETS))
            blob = net.save_buffer()
            self.assertIsInstance(blob, bytes)
            with bp.Net.load_buffer(blob) as again:
                self.assertEqual(flat(again.predict(XOR_X)), flat(net.predict(XOR_X)))
            net.set_meta("task", None)
            with self.assertRaises(bp.BackpropError) as cm:
                net.get_meta("task")
            self.assertEqual(cm.exception.status, bp.ERR_INDEX)
        self.assertGreaterEqual(bp.format_version(), 1)

    def test_checkpoint_resume_is_bit_identical(self):
        with xor_net(9) as whole, xor_net(9) as part, \
                bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.01) as o1, \
                bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.01) as o2:
            for _ in range(20):
                whole.train_step(o1, bp.LOSS_MSE, XOR_X, XOR_Y)
            for _ in range(12):
                part.train_step(o2, bp.LOSS_MSE, XOR_X, XOR_Y)
            blob = part.checkpoint_save_buffer(o2)
        net, opt = bp.Net.checkpoint_load_buffer(blob)
        with net, opt:
            self.assertEqual(opt.step_count, 12)
            for _ in range(8):
                net.train_step(opt, bp.LOSS_MSE, XOR_X, XOR_Y)
            with xor_net(9) as check, bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.01) as o:
                for _ in range(20):
                    check.train_step(o, bp.LOSS_MSE, XOR_X, XOR_Y)
                self.assertEqual(flat(net.params()), flat(check.params()))

    def test_corrupted_model_raises_with_the_library_message(self):
        with xor_net() as net:
            blob = bytearray(net.save_buffer())
        blob[len(blob) // 2] ^= 0x40
        with self.assertRaises(bp.BackpropError) as cm:
            bp.Net.load_buffer(blob)
        self.assertIn(cm.exception.status, (bp.ERR_CHECKSUM, bp.ERR_FORMAT))
        self.assertEqual(cm.exception.message, bp.last_error())
        self.assertTrue(cm.exception.message)
        for data in (b"", bytes(blob[:10])):
            with self.assertRaises(bp.BackpropError):
                bp.Net.load_buffer(data)
        with self.assertRaises(bp.BackpropError) as cm:
            bp.Net.load(os.path.join(DATA, "no-such-model.bpm"))
        self.assertEqual(cm.exception.status, bp.ERR_IO)
        self.assertIn("no-such-model.bpm", cm.exception.message)

    def test_concurrent_predictions_on_one_net(self):
        import threading
        with xor_net() as net:
            train_xor(net, 200)
            rows = array.array("f", XOR_X * 300)
            want = flat(net.predict(rows))
            self.assertEqual(flat(net.predict_ws(rows)), want)
            results, errors = [None] * 4, []

            def work(i):
                try:
                    scratch = array.array("f", bytes(4 * net.predict_scratch_floats(1200)))
                    results[i] = flat(net.predict_ws(rows, scratch=scratch))
                except Exception as e:  # reported below
                    errors.append(e)

            threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            for r in results:
                self.assertEqual(r, want)
            with self.assertRaises(bp.BackpropError) as cm:
                net.predict_ws(rows, scratch=array.array("f", [0.0]))
            self.assertEqual(cm.exception.status, bp.ERR_BUFFER_TOO_SMALL)


class Errors(unittest.TestCase):
    """Bad input raises BackpropError with the library's message, never crashes."""

    def assertLibraryError(self, cm, status, *fragments):
        e = cm.exception
        self.assertEqual(e.status, status, str(e))
        self.assertEqual(e.message, bp.last_error())  # the library's own text
        for fragment in fragments:
            self.assertIn(fragment, e.message)
        self.assertIn(bp.status_string(status), str(e))

    def test_invalid_arguments_carry_the_library_message(self):
        with bp.Net(2) as net:
            with self.assertRaises(bp.BackpropError) as cm:
                net.add_dense(0, bp.ACT_RELU)
            self.assertLibraryError(cm, bp.ERR_INVALID_ARG, "units")
            self.assertEqual(net.last_error, cm.exception.message)
            with self.assertRaises(bp.BackpropError) as cm:
                net.add_dense(3, 12345)
            self.assertLibraryError(cm, bp.ERR_INVALID_ARG, "12345")
            with self.assertRaises(bp.BackpropError) as cm:
                net.predict(XOR_X)  # no layers yet
            self.assertLibraryError(cm, bp.ERR_STATE)
            with self.assertRaises(bp.BackpropError) as cm:
                net.set(bp.NET_HUBER_DELTA, -1)
            self.assertLibraryError(cm, bp.ERR_OUT_OF_RANGE)

    def test_out_of_range_setting(self):
        with bp.Optimizer(bp.OPTIMIZER_ADAM) as opt:
            with self.assertRaises(bp.BackpropError) as cm:
                opt.set(bp.OPT_BETA1, 1.5)
            self.assertLibraryError(cm, bp.ERR_OUT_OF_RANGE)
            self.assertEqual(opt.last_error, cm.exception.message)
            with self.assertRaises(bp.BackpropError) as cm:
                bp.Optimizer(99)
            self.assertLibraryError(cm, bp.ERR_INVALID_ARG, "99")
            with self.assertRaises(KeyError):
                opt.set("no_such_setting", 1)

    def test_nonfinite_input(self):
        with xor_net() as net, bp.Optimizer(bp.OPTIMIZER_SGD) as opt:
            before = flat(net.params())
            with self.assertRaises(bp.BackpropError) as cm:
                net.train_step(opt, bp.LOSS_MSE, [0, 0, 0, float("nan")] * 2, XOR_Y)
            self.assertLibraryError(cm, bp.ERR_NONFINITE)
            self.assertEqual(flat(net.params()), before)  # validate first, mutate after
            with self.assertRaises(bp.BackpropError) as cm:
                bp.Dataset([1, float("inf")], [0])
            self.assertLibraryError(cm, bp.ERR_NONFINITE)
            with self.assertRaises(bp.BackpropError) as cm:
                net.set_params([float("nan")] * net.param_count)
            self.assertEqual(cm.exception.status, bp.ERR_NONFINITE)
            self.assertEqual(flat(net.params()), before)

    def test_missing_and_malformed_files(self):
        missing = os.path.join(DATA, "no-such-file.csv")
        with self.assertRaises(bp.BackpropError) as cm:
            bp.Dataset.load_csv(missing, 0)
        self.assertLibraryError(cm, bp.ERR_IO, "no-such-file.csv")
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "bad.csv")
            with open(bad, "w") as f:
                f.write("1,2,3\n4,abc,6\n")
            with self.assertRaises(bp.BackpropError) as cm:
                bp.Dataset.load_csv(bad, 2)
            self.assertLibraryError(cm, bp.ERR_FORMAT, "bad.csv", "abc")

    def test_short_buffers_are_refused_before_the_call(self):
        with xor_net() as net, bp.Optimizer(bp.OPTIMIZER_SGD) as opt:
            with self.assertRaises(bp.BackpropError) as cm:
                net.train_step(opt, bp.LOSS_MSE, XOR_X, XOR_Y[:3])
            self.assertEqual(cm.exception.status, bp.ERR_SHAPE)
            with self.assertRaises(bp.BackpropError) as cm:
                net.predict(XOR_X[:3])
            self.assertEqual(cm.exception.status, bp.ERR_SHAPE)
            with self.assertRaises(bp.BackpropError) as cm:
                net.set_params([0.0])
            self.assertEqual(cm.exception.status, bp.ERR_SHAPE)
            with self.assertRaises(bp.BackpropError) as cm:
                bp.Dataset([1, 2, 3], [0, 1])
            self.assertEqual(cm.exception.status, bp.ERR_SHAPE)
            with self.assertRaises(TypeError):
                net.predict(["a", "b"])

    def test_backward_without_forward_reports_state(self):
        with xor_net() as net:
            with self.assertRaises(bp.BackpropError) as cm:
                net.backward([0.0] * 4)
            self.assertLibraryError(cm, bp.ERR_STATE)
            net.forward(XOR_X)
            with self.assertRaises(bp.BackpropError) as cm:
                net.backward([0.0] * 3)  # 3 rows after a forward pass of 4
            self.assertLibraryError(cm, bp.ERR_SHAPE, "3", "4")

    def test_sparse_class_index_out_of_range(self):
        with bp.Net(2, seed=1) as net, bp.Optimizer(bp.OPTIMIZER_SGD) as opt:
            net.add_dense(3, bp.ACT_SOFTMAX)
            with self.assertRaises(bp.BackpropError) as cm:
                net.train_step(opt, bp.LOSS_SPARSE_SOFTMAX_CE, XOR_X, [0, 1, 2, 7])
            self.assertLibraryError(cm, bp.ERR_INDEX, "7")

    def test_closed_handles_raise_not_crash(self):
        net = xor_net()
        layer = net.layer(0)
        net.close()
        net.close()  # idempotent
        self.assertTrue(net.closed)
        for call in (lambda: net.predict(XOR_X), lambda: layer.weights(),
                     lambda: net.param_count):
            with self.assertRaises(bp.BackpropError) as cm:
                call()
            self.assertEqual(cm.exception.status, bp.ERR_INVALID_ARG)
        with self.assertRaises(bp.BackpropError):
            net.layer(5)

    def test_finalizer_frees_unreferenced_handles(self):
        net = xor_net()
        fin = net._finalizer
        layer = net.layer(1)
        del net
        gc.collect()
        self.assertTrue(fin.alive)  # the layer view keeps its net alive
        self.assertEqual(layer.output_size, 1)
        del layer
        gc.collect()
        self.assertFalse(fin.alive)

    def test_status_strings(self):
        self.assertEqual(bp.status_string(bp.OK), "success")
        self.assertEqual(bp.status_string(12345), "unknown status")
        e = bp.BackpropError(bp.ERR_IO, "x.bin: cannot open")
        self.assertEqual((e.status, e.message), (bp.ERR_IO, "x.bin: cannot open"))


if __name__ == "__main__":
    print(f"backprop {bp.version_string()} from {bp.library_path}; NumPy "
          f"{np.__version__ if np is not None else 'not installed'}", file=sys.stderr)
    unittest.main(verbosity=2)
