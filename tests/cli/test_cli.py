#!/usr/bin/env python3
"""Tests of the command-line tool `backprop` (src/cli), one group per ctest test:

    test_cli.py BACKPROP GROUP [MAN_PAGE | DATASETS_DIR]

GROUP is one of: general, train, predict, idx, eval, info, pack, usage, bad_files, man, census,
plot (docs/figures/plot_history.sh), installed.
Each group makes its small data sets in a fresh temporary directory, runs the tool and
checks exit codes (0 ok, 1 run-time failure, 2 usage error), stdout and the messages on
stderr. Standard library only.
"""

import io
import math
import os
import random
import subprocess
import sys
import tempfile

TOOL = os.path.abspath(sys.argv[1])
GROUP = sys.argv[2]
EXTRA = sys.argv[3] if len(sys.argv) > 3 else None
failures = []


def run(*args, cwd=None):
    p = subprocess.run([TOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def check(cond, what, detail=""):
    if not cond:
        failures.append(f"{what}\n{detail}")
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)


def expect(args, code, out=None, err=None, cwd=None):
    """Run; check the exit code and that stdout/stderr contain the given substrings."""
    rc, so, se = run(*args, cwd=cwd)
    shown = f"  $ backprop {' '.join(map(str, args))}\n  exit {rc}\n  stdout: {so[:800]}\n" \
            f"  stderr: {se[:800]}"
    check(rc == code, f"exit code {rc}, expected {code}", shown)
    for text in ([out] if isinstance(out, str) else out or []):
        check(text in so, f"stdout lacks {text!r}", shown)
    for text in ([err] if isinstance(err, str) else err or []):
        check(text in se, f"stderr lacks {text!r}", shown)
    if code != 0:
        check(se.startswith("backprop"), "a failure's message starts with 'backprop'", shown)
    return so, se


# --- data ----------------------------------------------------------------------------------

def regression_csv(path, n=200, seed=3, targets=True, header=True):
    """y = 3 x0 - 2 x1 + 100, x uniform in [-1, 1]: targets far from 0 test the scalers."""
    rng = random.Random(seed)
    rows = []
    with open(path, "w") as f:
        if header:
            f.write("x0,x1" + (",price\n" if targets else "\n"))
        for _ in range(n):
            x0, x1 = rng.uniform(-1, 1), rng.uniform(-1, 1)
            y = 3 * x0 - 2 * x1 + 100
            rows.append((x0, x1, y))
            f.write(f"{x0:.6f},{x1:.6f}" + (f",{y:.6f}\n" if targets else "\n"))
    return rows


def classes_fann(path, n=240, seed=5):
    """Three classes by the angle of a 2-D point: FANN format, class index as target."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x0, x1 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        c = int(((math.atan2(x1, x0) + math.pi) / (2 * math.pi)) * 3) % 3
        rows.append((x0, x1, c))
    with open(path, "w") as f:
        f.write(f"{n} 2 1\n")
        for x0, x1, c in rows:
            f.write(f"{x0:.6f} {x1:.6f}\n{c}\n")
    return rows


def idx_pair(images, labels, n=150, seed=7):
    """IDX files (the MNIST format): n images of 2x3 bytes and their labels 0..2; class c
    has its bright pixels in column c."""
    import struct
    rng = random.Random(seed)
    pixels, classes = bytearray(), bytearray()
    for _ in range(n):
        c = rng.randrange(3)
        for _row in range(2):
            for col in range(3):
                pixels.append(rng.randrange(200, 256) if col == c else rng.randrange(0, 60))
        classes.append(c)
    with open(images, "wb") as f:
        f.write(struct.pack(">4BIII", 0, 0, 8, 3, n, 2, 3) + bytes(pixels))
    with open(labels, "wb") as f:
        f.write(struct.pack(">4BI", 0, 0, 8, 1, n) + bytes(classes))
    return list(classes)


def read_csv(text):
    lines = text.strip().splitlines()
    return lines[0].split(","), [[float(v) for v in line.split(",")] for line in lines[1:]]


def train_regression(d, *extra):
    regression_csv(os.path.join(d, "train.csv"))
    return expect(["train", "train.csv", "--header", "--layers", "16:tanh,out", "--epochs",
                   "150", "--batch", "16", "--lr", "0.01", "-o", "m.bpm", *extra], 0,
                  cwd=d)


# --- groups --------------------------------------------------------------------------------

def group_general(d):
    so, _ = expect(["--version"], 0, out="backprop 0.")
    check("model format" in so, "--version names the model format", so)
    expect(["--help"], 0, out=["Usage: backprop <command>", "train", "predict", "info"])
    expect([], 2, err=["no command given", "Usage: backprop"])
    expect(["frobnicate"], 2, err="unknown command 'frobnicate'")
    expect(["--frob"], 2, err="unknown option '--frob'")
    for verb in ("train", "eval", "predict", "info", "pack"):
        expect([verb, "--help"], 0, out=f"Usage: backprop {verb}")
        expect([verb, "-h"], 0, out=f"Usage: backprop {verb}")


def group_train(d):
    so, se = train_regression(d, "--progress", "lines", "--history", "h.csv", "--meta",
                              "author=tests")
    check("epoch 1/150 - loss" in se and "epoch 150/150" in se, "per-epoch lines", se[-500:])
    check("saved m.bpm: 2 inputs, 1 output, 65 parameters" in so, "summary line", so)
    with open(os.path.join(d, "h.csv")) as f:
        hist = f.read().splitlines()
    check(len(hist) == 151 and hist[0].startswith("epoch,loss"), "history CSV", hist[:2])
    # Same seed, data and options: the same model file, byte for byte.
    expect(["train", "train.csv", "--header", "--layers", "16:tanh,out", "--epochs", "150",
            "--batch", "16", "--lr", "0.01", "-o", "m2.bpm", "--meta", "author=tests",
            "-q"], 0, cwd=d)
    with open(os.path.join(d, "m.bpm"), "rb") as a, open(os.path.join(d, "m2.bpm"), "rb") as b:
        check(a.read() == b.read(), "same seed gives the same model file")
    # A bar on request: carriage returns and brackets, one final newline.
    _, se = expect(["train", "train.csv", "--header", "--epochs", "3", "--progress", "bar",
                    "-o", "bar.bpm"], 0, cwd=d)
    # (one redraw per epoch, and more within an epoch when a slow machine takes over 0.1 s)
    check(se.count("/3 [") == 3 and se.count("\x1b[K") >= 3
          and "3/3 [========================]" in se, "progress bar", se)
    # Quiet: nothing on stderr.
    _, se = expect(["train", "train.csv", "--header", "--epochs", "2", "-q", "-o", "q.bpm"], 0,
                   cwd=d)
    check(se == "", "--quiet prints no progress", se)
    # Validation split, early stopping (min-delta so large that nothing improves: stops after
    # 1 + patience epochs), dropout and batchnorm layers, another optimizer and schedule.
    so, se = expect(["train", "train.csv", "--header", "--val-split", "0.25", "--epochs",
                     "100", "--patience", "3", "--min-delta", "1e6", "--layers",
                     "8:relu,batchnorm,dropout:0.1,out", "--optimizer", "sgd", "--lr", "0.05",
                     "--momentum", "0.9", "--schedule", "cosine", "--progress", "lines",
                     "-o", "es.bpm"], 0, cwd=d)
    check("trained 4 epochs" in so and "stopped early: kept the weights of epoch " in so
          and "(val_loss" in so, "early stopping after 1 + patience epochs, best weights kept",
          so)
    check("val_mae" in se, "validation metrics in the progress lines", se[:300])
    # Classification from a FANN file: sparse-ce, class count from the labels.
    classes_fann(os.path.join(d, "cls.data"))
    so, _ = expect(["train", "cls.data", "--loss", "sparse-ce", "--layers", "32:tanh,out",
                    "--epochs", "60", "--batch", "16", "--lr", "0.01", "-q", "-o", "c.bpm"], 0,
                   cwd=d)
    check("3 outputs" in so, "sparse-ce output width = class count", so)
    # The header line is recognised without --header; --no-header makes it data (an error).
    expect(["train", "train.csv", "--epochs", "1", "-q", "-o", "auto.bpm"], 0, cwd=d)
    expect(["info", "auto.bpm", "--meta", "csv_header"], 0, out="1", cwd=d)
    expect(["train", "train.csv", "--no-header", "--epochs", "1", "-q", "-o", "nh.bpm"], 1,
           err=["train.csv:1", "'x0' is not a number"], cwd=d)
    # --val FILE, --targets with a CSV that has the target first and ';' delimiters.
    with open(os.path.join(d, "semi.csv"), "w") as f:
        for i in range(40):
            f.write(f"{i % 7};{i / 40:.4f};{(i * 3) % 11 / 11:.4f}\n")
    expect(["train", "semi.csv", "--delimiter", ";", "--targets", "0", "--val", "semi.csv",
            "--epochs", "2", "-q", "-o", "semi.bpm"], 0, out="2 inputs, 1 output", cwd=d)
    expect(["train", "--data=semi.csv", "--delimiter=;", "--targets=1:2", "--epochs=2", "-q",
            "--output=semi2.bpm"], 0, out="1 inputs, 2 outputs", cwd=d)


def group_predict(d):
    train_regression(d, "-q")
    rows = regression_csv(os.path.join(d, "new.csv"), n=50, seed=9, targets=False)
    expect(["predict", "m.bpm", "new.csv", "--header"], 0, cwd=d)
    # The model was trained with --header: the default follows it.
    so, _ = expect(["predict", "m.bpm", "new.csv"], 0, cwd=d)
    names, values = read_csv(so)
    check(names == ["y0"] and len(values) == 50, "predict writes y0 and one row per input",
          so[:200])
    worst = max(abs(v[0] - (3 * x0 - 2 * x1 + 100)) for v, (x0, x1, _) in zip(values, rows))
    check(worst < 1.0, f"predictions in original units (worst error {worst:.3f} < 1)")
    # The training file's layout: its target column is skipped; -o writes a file.
    regression_csv(os.path.join(d, "with_targets.csv"), n=50, seed=9)
    expect(["predict", "m.bpm", "with_targets.csv", "-o", "out.csv"], 0, cwd=d)
    with open(os.path.join(d, "out.csv")) as f:
        check(f.read() == so, "target columns skipped, -o writes the same CSV")
    # The header is recognised by what the first line holds, whatever the training file had.
    regression_csv(os.path.join(d, "bare.csv"), n=50, seed=9, targets=False, header=False)
    so3, _ = expect(["predict", "m.bpm", "bare.csv"], 0, cwd=d)
    check(so3 == so, "a file without a header: every row predicted", so3[:200])
    so3, _ = expect(["predict", "m.bpm", "bare.csv", "--header"], 0, cwd=d)
    check(len(so3.splitlines()) == 50, "--header forces the first line to be a header")
    so2, _ = expect(["predict", "m.bpm", "new.csv", "--no-column-names"], 0, cwd=d)
    check(so2 == "\n".join(so.splitlines()[1:]) + "\n", "--no-column-names")
    # A classifier: the class index, or the probabilities.
    cls = classes_fann(os.path.join(d, "cls.data"))
    expect(["train", "cls.data", "--loss", "sparse-ce", "--layers", "32:tanh,out", "--epochs",
            "80", "--batch", "16", "--lr", "0.01", "-q", "-o", "c.bpm"], 0, cwd=d)
    so, _ = expect(["predict", "c.bpm", "cls.data"], 0, cwd=d)
    names, values = read_csv(so)
    hits = sum(int(v[0]) == c for v, (_, _, c) in zip(values, cls))
    check(names == ["class"] and hits >= 0.85 * len(cls),
          f"classes predicted ({hits}/{len(cls)} right)")
    so, _ = expect(["predict", "c.bpm", "cls.data", "--proba"], 0, cwd=d)
    names, values = read_csv(so)
    check(names == ["p0", "p1", "p2"] and all(abs(sum(v) - 1) < 1e-4 for v in values),
          "--proba gives probabilities summing to 1", so[:200])
    # A bce model: probabilities by default, logits on request.
    with open(os.path.join(d, "bin.csv"), "w") as f:
        for i in range(64):
            x = (i - 32) / 16
            f.write(f"{x:.4f},{1 if x > 0 else 0}\n")
    expect(["train", "bin.csv", "--loss", "bce", "--epochs", "30", "--lr", "0.05", "-q",
            "-o", "b.bpm"], 0, cwd=d)
    so, _ = expect(["predict", "b.bpm", "bin.csv"], 0, cwd=d)
    names, values = read_csv(so)
    check(names == ["p0"] and all(0 <= v[0] <= 1 for v in values) and values[0][0] < 0.5 <
          values[-1][0], "bce: probabilities", so[:200])
    so, _ = expect(["predict", "b.bpm", "bin.csv", "--logits"], 0, cwd=d)
    names, values = read_csv(so)
    check(names == ["y0"] and values[0][0] < 0 < values[-1][0], "bce: --logits", so[:200])


def group_idx(d):
    """IDX images and labels: sparse-ce by default, no input scaling, --val-labels."""
    classes = idx_pair(os.path.join(d, "img-ubyte"), os.path.join(d, "lab-ubyte"))
    idx_pair(os.path.join(d, "vimg-ubyte"), os.path.join(d, "vlab-ubyte"), n=60, seed=8)
    so, se = expect(["train", "img-ubyte", "--labels", "lab-ubyte", "--val", "vimg-ubyte",
                     "--val-labels", "vlab-ubyte", "--layers", "16:relu,out", "--epochs", "40",
                     "--batch", "16", "--lr", "0.01", "--progress", "lines", "-o", "i.bpm"],
                    0, out="saved i.bpm: 6 inputs, 3 outputs", cwd=d)
    check("val_accuracy" in se, "classification progress shows val_accuracy", se[:300])
    expect(["info", "i.bpm"], 0, out=["loss: sparse-ce", "input scaler: none",
                                      "data_format: idx"], cwd=d)
    so, _ = expect(["eval", "i.bpm", "vimg-ubyte", "--labels", "vlab-ubyte"], 0,
                   out=["rows: 60", "accuracy: "], cwd=d)
    acc = float(so.split("accuracy: ")[1].split()[0])
    check(acc >= 0.9, f"IDX eval accuracy {acc} >= 0.9", so)
    so, _ = expect(["predict", "i.bpm", "img-ubyte", "--labels", "lab-ubyte"], 0, cwd=d)
    names, values = read_csv(so)
    hits = sum(int(v[0]) == c for v, c in zip(values, classes))
    check(names == ["class"] and hits >= 0.9 * len(classes), f"IDX predict ({hits} right)")
    expect(["train", "img-ubyte", "--labels", "lab-ubyte", "--val", "vimg-ubyte", "-o",
            "x.bpm"], 2, err="--val with IDX data needs --val-labels", cwd=d)
    expect(["train", "img-ubyte", "--format", "idx", "-o", "x.bpm"], 2,
           err="IDX images need --labels", cwd=d)


def group_eval(d):
    train_regression(d, "-q")
    regression_csv(os.path.join(d, "test.csv"), n=60, seed=11)
    regression_csv(os.path.join(d, "bare.csv"), n=60, seed=11, header=False)
    expect(["eval", "m.bpm", "bare.csv"], 0, out="rows: 60", cwd=d)
    so, _ = expect(["eval", "m.bpm", "test.csv"], 0, out=["rows: 60", "loss: ", "mae: "],
                   cwd=d)
    mae = float(so.split("mae: ")[1].split()[0])
    check(mae < 0.5, f"eval mae in original units ({mae} < 0.5)", so)
    classes_fann(os.path.join(d, "cls.data"))
    expect(["train", "cls.data", "--loss", "sparse-ce", "--layers", "32:tanh,out", "--epochs",
            "80", "--batch", "16", "--lr", "0.01", "-q", "-o", "c.bpm"], 0, cwd=d)
    so, _ = expect(["eval", "c.bpm", "cls.data"], 0, out=["rows: 240", "accuracy: "], cwd=d)
    acc = float(so.split("accuracy: ")[1].split()[0])
    check(acc >= 0.85, f"eval accuracy {acc} >= 0.85", so)
    check("mae" not in so, "no mae for a classifier", so)


def group_info(d):
    train_regression(d, "-q", "--meta", "author=tests", "--meta", "units=kEUR")
    expect(["info", "m.bpm"], 0, cwd=d,
           out=["model: m.bpm", "format version: 1 (this library reads 1 .. 2)", "inputs: 2",
                "outputs: 1", "parameters: 65", "dense", "input scaler: standard, 2 columns",
                "target scaler: standard, 1 column", "loss: mse", "layers: 16:tanh,out",
                "csv_header: 1", "author: tests", "units: kEUR", "created_by: backprop train"])
    expect(["info", "m.bpm", "--meta", "units"], 0, out="kEUR", cwd=d)
    expect(["info", "m.bpm", "--meta", "nope"], 1, err="no metadata entry 'nope'", cwd=d)
    expect(["train", "train.csv", "--header", "--scale", "none", "--scale-targets", "minmax",
            "--epochs", "1", "-q", "-o", "n.bpm"], 0, cwd=d)
    expect(["info", "n.bpm"], 0, out=["input scaler: none", "target scaler: minmax"], cwd=d)


def read_bpds(path):
    """Header fields and rows of a binary data-set file (docs/format.md)."""
    import struct
    with open(path, "rb") as f:
        b = f.read()
    magic, version, etype, _per_block, n, width, targets, offset = struct.unpack_from(
        "<4sIIIQQQQ", b, 0)
    table = struct.unpack_from("<256f", b, 64) if etype == 2 else None
    stride = width * (1 if etype == 2 else 4) + targets * 4
    rows = []
    for r in range(n):
        at = offset + r * stride
        if etype == 2:
            x = [table[c] for c in b[at:at + width]]
            at += width
        else:
            x = list(struct.unpack_from(f"<{width}f", b, at))
            at += 4 * width
        rows.append((x, list(struct.unpack_from(f"<{targets}f", b, at))))
    check(len(b) == offset + n * stride, f"{path}: file length", str(len(b)))
    return {"magic": magic, "version": version, "type": etype, "n": n, "width": width,
            "targets": targets, "rows": rows}


def group_pack(d):
    """CSV, FANN and IDX into binary data-set files: header fields and every value."""
    rows = regression_csv(os.path.join(d, "r.csv"))
    expect(["pack", "r.csv", "-o", "r.bpds"], 0,
           out="r.bpds: 200 rows, 2 inputs (float32), 1 targets", cwd=d)
    f = read_bpds(os.path.join(d, "r.bpds"))
    check(f["magic"] == b"BPDS" and f["version"] == 1 and f["type"] == 1, "CSV header", str(f))
    check(all(abs(x[0] - r[0]) < 1e-6 and abs(x[1] - r[1]) < 1e-6 and abs(y[0] - r[2]) < 1e-4
              for (x, y), r in zip(f["rows"], rows)) and len(f["rows"]) == 200, "CSV values")
    # More than 256 distinct inputs do not fit uint8 codes: a run-time failure, no file.
    expect(["pack", "r.csv", "--type", "uint8", "-o", "u.bpds"], 1, err="256", cwd=d)
    check(not os.path.exists(os.path.join(d, "u.bpds")), "no file after a failed pack")
    # --targets picks the columns, as for train.
    expect(["pack", "r.csv", "--targets", "0", "-o", "t.bpds"], 0, cwd=d)
    f = read_bpds(os.path.join(d, "t.bpds"))
    check(abs(f["rows"][0][1][0] - rows[0][0]) < 1e-6 and abs(f["rows"][0][0][1] - rows[0][2])
          < 1e-4, "CSV --targets 0", str(f["rows"][0]))
    fann = classes_fann(os.path.join(d, "c.data"))
    expect(["pack", "c.data", "--output", "c.bpds"], 0, out="240 rows", cwd=d)
    f = read_bpds(os.path.join(d, "c.bpds"))
    check(f["type"] == 1 and f["n"] == 240 and f["targets"] == 1, "FANN header", str(f)[:200])
    check(all(y[0] == c and abs(x[0] - a) < 1e-6 for (x, y), (a, _b, c) in zip(f["rows"], fann)),
          "FANN values")
    classes = idx_pair(os.path.join(d, "img-ubyte"), os.path.join(d, "lab-ubyte"))
    expect(["pack", "img-ubyte", "--labels", "lab-ubyte", "-o", "i.bpds"], 0,
           out="i.bpds: 150 rows, 6 inputs (uint8), 1 targets", cwd=d)
    f = read_bpds(os.path.join(d, "i.bpds"))
    check(f["type"] == 2 and f["width"] == 6, "IDX packs uint8 by default", str(f)[:200])
    import struct
    with open(os.path.join(d, "img-ubyte"), "rb") as g:
        pixels = g.read()[16:]
    check(all(y[0] == c for (_x, y), c in zip(f["rows"], classes)), "IDX labels")
    check(all(abs(x[k] - pixels[r * 6 + k] / 255.0) < 1e-7 for r, (x, _y) in enumerate(f["rows"])
              for k in range(6)), "IDX pixels decode to q / 255")
    expect(["pack", "img-ubyte", "--labels", "lab-ubyte", "--type", "float32", "-o",
            "f.bpds"], 0, out="(float32)", cwd=d)
    check(read_bpds(os.path.join(d, "f.bpds"))["rows"] == f["rows"], "IDX float32 = uint8")
    # Usage errors and bad input.
    expect(["pack", "r.csv"], 2, err="needs --output", cwd=d)
    expect(["pack", "-o", "x.bpds"], 2, err="needs DATA", cwd=d)
    expect(["pack", "r.csv", "--type", "int4", "-o", "x.bpds"], 2, err="--type", cwd=d)
    expect(["pack", "img-ubyte", "--format", "idx", "-o", "x.bpds"], 2,
           err="IDX images need --labels", cwd=d)
    expect(["pack", "missing.csv", "-o", "x.bpds"], 1, err="missing.csv", cwd=d)
    expect(["pack", "r.csv", "-o", os.path.join(d, "no", "dir", "x.bpds")], 1, cwd=d)


def group_usage(d):
    regression_csv(os.path.join(d, "train.csv"))
    base = ["train", "train.csv", "--header"]
    cases = [
        (["train"], "no training data"),
        (base, "no output file (give -o MODEL)"),
        (base + ["-o", "m.bpm", "--epochs", "abc"], "--epochs: 'abc' is not a whole number"),
        (base + ["-o", "m.bpm", "--epochs", "0"], "--epochs: 0 is outside 1.."),
        (base + ["-o", "m.bpm", "--epochs"], "option --epochs needs a value"),
        (base + ["-o", "m.bpm", "--lr", "x"], "--lr: 'x' is not a number"),
        (base + ["-o", "m.bpm", "--layers", "16:foo,out"], "unknown activation 'foo'"),
        (base + ["-o", "m.bpm", "--layers", "16,dropout:2,out"], "dropout needs a rate"),
        (base + ["-o", "m.bpm", "--layers", "16,dropout:0.2"], "last layer must be a dense"),
        (base + ["-o", "m.bpm", "--layers", "16,,out"], "empty layer"),
        (base + ["-o", "m.bpm", "--layers", "abc"], "'abc' is not a layer"),
        (base + ["-o", "m.bpm", "--layers", "16:softmax,out"], "softmax is for the output"),
        (base + ["-o", "m.bpm", "--layers", "16,5"], "the output layer has 5 units but the "
                                                     "data has 1 target"),
        (base + ["-o", "m.bpm", "--loss", "bogus"], "--loss: unknown value 'bogus' (one of: mse"),
        (base + ["-o", "m.bpm", "--loss", "sparse-ce", "--layers", "8,out:identity"],
         "needs a softmax output layer"),
        (base + ["-o", "m.bpm", "--loss", "bce", "--scale-targets", "standard"],
         "--scale-targets applies to mse"),
        (base + ["-o", "m.bpm", "--val", "train.csv", "--val-split", "0.2"],
         "exclude each other"),
        (base + ["-o", "m.bpm", "--val-split", "0.95"], "--val-split: 0.95 is outside"),
        (base + ["-o", "m.bpm", "--frobnicate"], "unknown option '--frobnicate'"),
        (base + ["-o", "m.bpm", "extra.csv"], "unexpected argument 'extra.csv'"),
        (base + ["-o", "m.bpm", "--header=1"], "option --header takes no value"),
        (base + ["-o", "m.bpm", "--delimiter", "x"], "--delimiter: 'x' is not one of"),
        (base + ["-o", "m.bpm", "--targets", "a"], "--targets: 'a' is not FIRST or FIRST:COUNT"),
        (base + ["-o", "m.bpm", "--meta", "novalue"], "--meta: 'novalue' is not KEY=VALUE"),
        (base + ["-o", "m.bpm", "--progress", "fancy"], "--progress: unknown value 'fancy'"),
        (["eval", "m.bpm"], "needs MODEL and DATA"),
        (["predict"], "needs MODEL and DATA"),
        (["predict", "m.bpm", "x.csv", "--targets", "0"], "--targets does not apply"),
        (["info"], "needs MODEL"),
        (["info", "a.bpm", "b.bpm"], "unexpected argument 'b.bpm'"),
    ]
    for args, message in cases:
        expect(args, 2, err=[message, f"Try 'backprop {args[0]} --help'."], cwd=d)
    # Options that only make sense for some models.
    expect(base + ["--epochs", "2", "-q", "-o", "m.bpm"], 0, cwd=d)
    expect(["predict", "m.bpm", "train.csv", "--proba"], 2, err="--proba applies to "
                                                                "classifiers", cwd=d)
    expect(["predict", "m.bpm", "train.csv", "--logits"], 2, err="--logits applies to bce",
           cwd=d)


def group_bad_files(d):
    def write(name, text):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    regression_csv(os.path.join(d, "train.csv"))
    expect(["train", "missing.csv", "-o", "m.bpm"], 1, err=["cannot load data", "missing.csv"],
           cwd=d)
    write("bad.csv", "1,2,3\n4,abc,6\n")
    expect(["train", "bad.csv", "-o", "m.bpm"], 1, err=["bad.csv:2", "abc"], cwd=d)
    write("ragged.csv", "1,2,3\n4,5\n")
    expect(["train", "ragged.csv", "-o", "m.bpm"], 1, err="ragged.csv:2", cwd=d)
    write("short.data", "10 2 1\n0 0\n1\n")
    expect(["train", "short.data", "-o", "m.bpm"], 1, err="short.data", cwd=d)
    write("empty.csv", "\n\n")
    expect(["train", "empty.csv", "-o", "m.bpm"], 1, err="no data rows", cwd=d)
    expect(["train", "train.csv", "--header", "--targets", "5", "-o", "m.bpm"], 1,
           err="train.csv", cwd=d)
    expect(["train", "train.csv", "--header", "--epochs", "1", "-q", "-o",
            "no/such/dir/m.bpm"], 1, err="cannot save the model", cwd=d)
    expect(["train", "train.csv", "--header", "--epochs", "1", "-q", "-o", "m.bpm"], 0, cwd=d)
    # Models: missing, not a model, corrupted (checksum), truncated.
    expect(["info", "missing.bpm"], 1, err="cannot load the model", cwd=d)
    expect(["info", "train.csv"], 1, err="not a backprop model file", cwd=d)
    with open(os.path.join(d, "m.bpm"), "rb") as f:
        model = bytearray(f.read())
    bad = bytearray(model)
    bad[len(bad) // 2] ^= 0x40
    with open(os.path.join(d, "corrupt.bpm"), "wb") as f:
        f.write(bad)
    expect(["predict", "corrupt.bpm", "train.csv"], 1, err="cannot load the model", cwd=d)
    with open(os.path.join(d, "trunc.bpm"), "wb") as f:
        f.write(model[:40])
    expect(["eval", "trunc.bpm", "train.csv"], 1, err="cannot load the model", cwd=d)
    # Prediction inputs: a bad cell (file, line, column), a wrong width, a missing file.
    write("in.csv", "x0,x1\n0.1,0.2\n0.3,oops\n")
    expect(["predict", "m.bpm", "in.csv"], 1, err="in.csv:3: column 2: 'oops' is not a finite "
                                                  "number", cwd=d)
    write("wide.csv", "1,2,3,4\n")
    expect(["predict", "m.bpm", "wide.csv", "--no-header"], 1,
           err="wide.csv: 4 columns, the model takes 2 inputs", cwd=d)
    expect(["predict", "m.bpm", "nothere.csv"], 1, err="nothere.csv", cwd=d)
    expect(["predict", "m.bpm", "train.csv", "-o", "no/such/dir/out.csv"], 1,
           err="no/such/dir/out.csv", cwd=d)
    write("wide2.csv", "a,b,c,d\n1,2,3,4\n")
    expect(["eval", "m.bpm", "wide2.csv", "--targets", "3"], 1,
           err="3 input columns, the model takes 2", cwd=d)


def group_man(d):
    """Every option of every --help text is described in the man page."""
    with open(EXTRA) as f:
        man = f.read().replace("\\-", "-").replace("\\fR", "").replace("\\fP", "")
    import re
    for verb in ("train", "eval", "predict", "info", "pack"):
        _, so, _ = run(verb, "--help")
        for option in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", so))):
            check(option in man, f"man page lacks {verb} {option}")
    check(".TH BACKPROP 1" in man, "man page header")


def group_census(d):
    """The issue's check: train on census-house with progress, predict with the model."""
    data = os.path.join(EXTRA, "census-house.train")
    test = os.path.join(EXTRA, "census-house.test")
    so, se = expect(["train", data, "--val", test, "--layers", "64:relu,64:relu,out",
                     "--epochs", "5", "--progress", "lines", "-o", "house.bpm"], 0, cwd=d,
                    out="saved house.bpm: 16 inputs, 1 output")
    check(se.count("epoch ") == 5 and "val_mae" in se, "census-house progress", se)
    so, _ = expect(["predict", "house.bpm", test], 0, cwd=d)
    names, values = read_csv(so)
    with open(test) as f:
        n = int(f.readline().split()[0])
    check(names == ["y0"] and len(values) == n and all(math.isfinite(v[0]) for v in values),
          "census-house predictions", so[:200])
    expect(["eval", "house.bpm", test], 0, out=[f"rows: {n}", "mae: "], cwd=d)


def group_plot(d):
    """docs/figures/plot_history.sh on a regression and a classification history written by
    `backprop train --history`, with and without validation columns."""
    script = os.path.abspath(EXTRA)
    regression_csv(os.path.join(d, "train.csv"))
    classes_fann(os.path.join(d, "cls.data"))
    runs = {"reg": ["train.csv", "--header", "--val-split", "0.25"],
            "reg_noval": ["train.csv", "--header"],
            "cls": ["cls.data", "--loss", "sparse-ce", "--val", "cls.data"]}
    for name, args in runs.items():
        expect(["train", *args, "--epochs", "4", "-q", "-o", name + ".bpm", "--history",
                name + ".csv"], 0, cwd=d)
        p = subprocess.run(["sh", script, name + ".csv", name + ".png", name], cwd=d,
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, f"plot_history.sh {name}: exit {p.returncode}", p.stderr)
        png = os.path.join(d, name + ".png")
        with open(png, "rb") if os.path.exists(png) else io.BytesIO() as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", f"plot_history.sh {name}: a PNG")
    # An existing figure is kept unless -f; usage errors exit 2; no partial file on failure.
    p = subprocess.run(["sh", script, "reg.csv", "reg.png"], cwd=d, capture_output=True,
                       text=True)
    check(p.returncode == 1 and "give -f" in p.stderr, "plot_history.sh keeps OUT", p.stderr)
    p = subprocess.run(["sh", script, "-f", "reg.csv", "reg.png"], cwd=d, capture_output=True,
                       text=True)
    check(p.returncode == 0, "plot_history.sh -f overwrites", p.stderr)
    p = subprocess.run(["sh", script, "reg.csv"], cwd=d, capture_output=True, text=True)
    check(p.returncode == 2 and "usage" in p.stderr, "plot_history.sh usage", p.stderr)
    with open(os.path.join(d, "bad.csv"), "w") as f:
        f.write("a,b\n1,2\n")
    p = subprocess.run(["sh", script, "bad.csv", "bad.png"], cwd=d, capture_output=True,
                       text=True)
    check(p.returncode == 1 and not os.path.exists(os.path.join(d, "bad.png")),
          "plot_history.sh refuses a CSV without epoch and loss", p.stderr)


def group_installed(d):
    """The installed tool runs without LD_LIBRARY_PATH; its man page is installed."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    p = subprocess.run([TOOL, "--version"], capture_output=True, text=True, env=env)
    check(p.returncode == 0 and p.stdout.startswith("backprop "), "installed backprop runs",
          p.stdout + p.stderr)
    man = os.path.join(EXTRA, "man1", "backprop.1")
    check(os.path.isfile(man), f"man page installed at {man}")


with tempfile.TemporaryDirectory(prefix="bp_cli_") as tmp:
    globals()["group_" + GROUP](tmp)
if failures:
    print(f"{len(failures)} check(s) failed in group {GROUP}", file=sys.stderr)
    sys.exit(1)
print(f"group {GROUP}: all checks passed")
