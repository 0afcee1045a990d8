#!/usr/bin/env python3
"""test_package.py -- the installed Python package: where it is, how it finds libbackprop,
per-call fit settings, the progress display, arrays in and out, load_csv's signature.

Run by ctest from the build tree's virtual environment (tests/python/CMakeLists.txt) with
  BACKPROP_TEST_LIBDIR  the library directory of the test installation
  PKG_CONFIG_PATH       its pkgconfig directory
and neither BACKPROP_LIBRARY nor a PYTHONPATH to the package.
"""

import array
import importlib.metadata
import io
import os
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

import backprop as bp

try:
    import numpy as np
except ImportError:
    np = None

LIBDIR = os.path.realpath(os.environ["BACKPROP_TEST_LIBDIR"])
XOR_X = [[0, 0], [0, 1], [1, 0], [1, 1]]
XOR_Y = [0, 1, 1, 0]

# Trains XOR with the package: the "python3 -c 'import backprop; ...'" check.
XOR_SCRIPT = """
import backprop as bp
x, y = [[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 0]
with bp.Net(2, seed=42) as net, bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.05) as opt:
    net.add_dense(8, bp.ACT_TANH).add_dense(1, bp.ACT_SIGMOID)
    net.fit(opt, bp.LOSS_MSE, (x, y), epochs=500, batch_size=4)
    out = net.predict(x)
    out = [float(v) for v in (out.ravel() if hasattr(out, "ravel") else out)]
print(bp.library_source, bp.library_path, bp.__file__, sep="|")
assert all(abs(o - t) < 0.2 for o, t in zip(out, y)), out
"""


def run_python(code, env_changes, cwd):
    env = {k: v for k, v in os.environ.items()
           if k not in ("BACKPROP_LIBRARY", "PYTHONPATH", "PKG_CONFIG_PATH")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def xor_net(seed=42):
    return bp.Net(2, seed=seed).add_dense(8, bp.ACT_TANH).add_dense(1, bp.ACT_SIGMOID)


class Installation(unittest.TestCase):
    def test_package_is_the_installed_one(self):
        here = os.path.realpath(bp.__file__)
        self.assertTrue(here.startswith(os.path.realpath(sys.prefix)), here)
        self.assertNotIn(os.sep + "src" + os.sep + "python", here)

    def test_versions_agree(self):
        self.assertEqual(bp.__version__, bp.version_string())
        self.assertEqual(importlib.metadata.version("backprop"), bp.__version__)

    def test_found_through_pkg_config(self):
        # ctest points PKG_CONFIG_PATH at the test installation: pkg-config comes first.
        self.assertEqual(bp.library_source, "pkg-config")
        self.assertEqual(os.path.dirname(os.path.realpath(bp.library_path)), LIBDIR)

    def test_pip_installed_package_trains_xor_from_any_directory(self):
        # The check: no environment variable for the package (pkg-config sees the
        # test installation through PKG_CONFIG_PATH, as it sees /usr/local by default).
        with tempfile.TemporaryDirectory() as tmp:
            p = run_python(XOR_SCRIPT, {"PKG_CONFIG_PATH": os.environ["PKG_CONFIG_PATH"]}, tmp)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            source, path, where = p.stdout.strip().split("|")
            self.assertEqual(source, "pkg-config")
            self.assertTrue(os.path.realpath(where).startswith(os.path.realpath(sys.prefix)))

    def test_found_through_the_install_prefix_from_any_directory(self):
        # The copy of the package `cmake --install` put in <prefix>/share/backprop/python
        # (imported from there): pkg-config finds nothing (PKG_CONFIG_LIBDIR replaces its
        # default search path), no BACKPROP_LIBRARY: the recorded library directory is used.
        copy = os.environ["BACKPROP_TEST_PACKAGE"]
        with tempfile.TemporaryDirectory() as tmp:
            empty = os.path.join(tmp, "empty")
            os.mkdir(empty)
            p = run_python(XOR_SCRIPT, {"PKG_CONFIG_LIBDIR": empty, "PYTHONPATH": copy}, tmp)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            source, path, where = p.stdout.strip().split("|")
            self.assertEqual(source, "install prefix")
            self.assertEqual(os.path.dirname(os.path.realpath(path)), LIBDIR)
            self.assertTrue(os.path.realpath(where).startswith(os.path.realpath(copy)))

    def test_environment_variable_is_the_last_resort(self):
        saved = os.environ.get("BACKPROP_LIBRARY")
        os.environ["BACKPROP_LIBRARY"] = "/nowhere/libbackprop.so"
        try:
            found = bp._find.candidates()
        finally:
            if saved is None:
                del os.environ["BACKPROP_LIBRARY"]
            else:
                os.environ["BACKPROP_LIBRARY"] = saved
        self.assertEqual(found[-1], ("BACKPROP_LIBRARY", "/nowhere/libbackprop.so"))
        self.assertEqual(found[0][0], "pkg-config")
        self.assertNotIn("install prefix", [s for s, _ in found])  # pip-installed from source

    def test_nothing_found_is_an_import_error_that_says_what_to_do(self):
        # The pip-installed package records no prefix; pkg-config sees nothing, the loader's
        # cache has no libbackprop (find_library is stubbed in case this machine has one).
        code = ("import ctypes.util\n"
                "ctypes.util.find_library = lambda name: None\n"
                "try:\n"
                "    import backprop\n"
                "except ImportError as e:\n"
                "    print(e)\n")
        with tempfile.TemporaryDirectory() as tmp:
            p = run_python(code, {"PKG_CONFIG_LIBDIR": tmp, "BACKPROP_LIBRARY": "/no/lib.so"},
                           tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("cannot find the shared library", p.stdout)
        self.assertIn("BACKPROP_LIBRARY: /no/lib.so", p.stdout)
        self.assertIn("PKG_CONFIG_PATH", p.stdout)


class Fit(unittest.TestCase):
    def setUp(self):
        self.opt = bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.05)

    def tearDown(self):
        self.opt.close()

    def test_settings_hold_for_one_call(self):
        with xor_net() as net:
            self.assertEqual(len(net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochs=1)), 1)
            self.assertEqual(len(net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y))), 10)
            net.set("epochs", 3)
            self.assertEqual(len(net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochs=2,
                                         batch_size=1)), 2)
            self.assertEqual((net.get("epochs"), net.get("batch_size")), (3, 32))
            self.assertEqual(len(net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y))), 3)
            with self.assertRaises(KeyError):
                net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochz=2)
            with self.assertRaises(bp.BackpropError):  # out of range: nothing changed
                net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), batch_size=8, epochs=0)
            self.assertEqual((net.get("epochs"), net.get("batch_size")), (3, 32))

    def test_arrays_and_datasets_train_alike(self):
        with xor_net() as a, xor_net() as b, \
                bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.05) as opt2, \
                bp.Dataset(XOR_X, XOR_Y) as ds:
            ha = a.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), (XOR_X, XOR_Y), epochs=20)
            hb = b.fit(opt2, bp.LOSS_MSE, ds, ds, epochs=20)
            def drop_seconds(history):
                return [{k: v for k, v in row.items() if k != "seconds"} for row in history]
            self.assertEqual(repr(drop_seconds(ha)), repr(drop_seconds(hb)))  # NaN-safe
            self.assertEqual(repr(a.evaluate(bp.LOSS_MSE, (XOR_X, XOR_Y))),
                             repr(b.evaluate(bp.LOSS_MSE, ds)))
            with self.assertRaises(TypeError):
                a.fit(self.opt, bp.LOSS_MSE, XOR_X)

    def test_progress_lines_bar_and_quiet(self):
        with xor_net() as net:
            lines = io.StringIO()
            net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), (XOR_X, XOR_Y), epochs=5,
                    progress=True, file=lines)  # not a terminal: one line per epoch
            text = lines.getvalue().splitlines()
            self.assertEqual(len(text), 5)
            self.assertTrue(text[0].startswith("Epoch 1/5 - "), text[0])
            self.assertIn("val_loss: ", text[-1])

            class Terminal(io.StringIO):
                def isatty(self):
                    return True
            tty = Terminal()
            net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochs=4, progress=True, file=tty)
            out = tty.getvalue()
            self.assertEqual(out.count("\r\x1b[K"), 4)
            self.assertIn("Epoch 4/4 [" + "=" * 30 + "]", out)
            self.assertTrue(out.endswith("\n") and out.count("\n") == 1, repr(out))

            quiet = io.StringIO()
            with redirect_stdout(quiet):
                net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochs=2)
            self.assertEqual(quiet.getvalue(), "")
            with self.assertRaises(ValueError):
                net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochs=2, progress="fancy")

    def test_bar_advances_within_an_epoch_from_the_batch_callback(self):
        class Terminal(io.StringIO):
            def isatty(self):
                return True
        with xor_net() as net:
            tty = Terminal()
            net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochs=2, batch_size=1,
                    progress_seconds=0, progress=True, file=tty)
            out = tty.getvalue()
            for b in (1, 2, 3):  # the 4th, last, batch is the epoch's line
                self.assertIn(f"Epoch 2/2 - batch {b}/4 - loss: ", out)
            self.assertNotIn("batch 4/4", out)
            self.assertIn("Epoch 2/2 [" + "=" * 30 + "]", out)
            self.assertTrue(out.endswith("\n") and out.count("\n") == 1, repr(out))

    def test_keep_best_and_best_epoch(self):
        with xor_net() as net:
            history = net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochs=30, keep_best=True)
            best = net.best_epoch()
            losses = [row["loss"] for row in history]
            self.assertEqual(best, losses.index(min(losses)))
            self.assertEqual(net.get("keep_best"), 0)  # per call

    def test_apply_scalers_predicts_in_original_units(self):
        with xor_net() as net:
            x = [[0.0, 1.0], [1.0, 0.0]]
            net.set_scaler(bp.SCALE_INPUTS, [0.5, 0.5], [2.0, 2.0])
            net.set_scaler(bp.SCALE_TARGETS, [10.0], [0.5])
            scaled = net.predict([[-1.0, 1.0], [1.0, -1.0]])
            net.set("apply_scalers", 1)
            raw = net.predict(x)
            for r, s in zip(_flat(raw), _flat(scaled)):
                self.assertAlmostEqual(r, s / 0.5 + 10.0, places=4)

    def test_persistent_callback_runs_with_progress_and_stays(self):
        seen = []
        with xor_net() as net:
            net.set_epoch_callback(lambda epoch, m: seen.append(epoch))
            net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochs=3, progress="lines",
                    file=io.StringIO())
            net.fit(self.opt, bp.LOSS_MSE, (XOR_X, XOR_Y), epochs=2)
            self.assertEqual(seen, [0, 1, 2, 0, 1])


@unittest.skipIf(np is None, "NumPy is not installed")
class NumpyOut(unittest.TestCase):
    def test_every_output_is_a_shaped_float32_array(self):
        x = np.array(XOR_X, dtype=np.float32)
        with xor_net() as net, bp.Dataset(x, XOR_Y) as ds:
            self.assertEqual(ds.inputs().shape, (4, 2))
            self.assertEqual(ds.targets().shape, (4, 1))
            self.assertEqual(net.predict(XOR_X).shape, (4, 1))  # lists in, NumPy out
            self.assertEqual(net.forward(x).shape, (4, 1))
            self.assertEqual(net.params().shape, (net.param_count,))
            self.assertEqual(net.layer(0).weights().shape, (8, 2))
            offset, scale = ds.fit_scaler()
            self.assertEqual((offset.dtype, scale.shape), (np.float32, (2,)))
            idx = bp.argmax(np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32))
            self.assertEqual(idx.tolist(), [1, 0])
            self.assertIsInstance(net.layer(0).weights(numpy=False), array.array)


class LoadCsv(unittest.TestCase):
    def test_keyword_delimiter_and_negative_target(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "d.csv")
            with open(path, "w") as f:
                f.write("a;b;label\n1;2;0\n3;4;1\n5;6;1\n")
            with bp.Dataset.load_csv(path, delimiter=";", has_header=True) as ds:
                self.assertEqual((len(ds), ds.input_size, ds.output_size), (3, 2, 1))
                self.assertEqual([float(v) for v in ds.targets()], [0, 1, 1])
            with bp.Dataset.load_csv(path, 0, 2, delimiter=";", has_header=True) as ds:
                self.assertEqual((ds.input_size, ds.output_size), (1, 2))
            with self.assertRaises(TypeError):  # the C order: (path, delimiter, has_header, ...)
                bp.Dataset.load_csv(path, ";", True, 2, 1)
            with self.assertRaises(TypeError):
                bp.Dataset.load_csv(path, ";")
            with self.assertRaises(bp.BackpropError) as e:
                bp.Dataset.load_csv(os.path.join(tmp, "missing.csv"))
            self.assertEqual(e.exception.status, bp.ERR_IO)


def _flat(values):
    """The values of a predict() result, [n x out] ndarray or flat array, as a flat list."""
    return [float(v) for row in values for v in (row if hasattr(row, "__len__") else [row])]


if __name__ == "__main__":
    unittest.main(verbosity=2)
