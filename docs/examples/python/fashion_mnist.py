#!/usr/bin/env python3
"""fashion_mnist.py -- the Fashion-MNIST MLP of docs/examples/fashion_mnist.c, from Python.

    python3 docs/examples/python/fashion_mnist.py [--epochs N] [--seed S] [--limit N]
                                                  [--data DIR]

with the package installed (pip install ./src/python; see src/python/README.md).

Same network, data and settings as the C example, so the same seed gives the same weights
and the same accuracy (same BLAS thread count): 784-256-128-10 (ReLU, ReLU, softmax), sparse
softmax cross-entropy, Adam (rate 1e-3, cosine-annealed to 0 over the run), batches of 64, the
60000 training images of the Debian package dataset-fashion-mnist, the 10000 test images as
the validation set. Ends with the same machine-readable line as the C program,
"result: test_accuracy=... test_loss=... epochs=10 train_seconds=...", with the accuracy and
loss that docs/performance.md gives for seed 1. Exits 2 if the data set is not installed.
"""

import argparse
import os
import sys

import backprop as bp

CLASSES = 10


def load(directory, prefix):
    images = os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz")
    labels = os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz")
    if not (os.access(images, os.R_OK) and os.access(labels, os.R_OK)):
        print(f"fashion_mnist.py: {images} not found: install the Debian package "
              "dataset-fashion-mnist (apt-get install dataset-fashion-mnist)", file=sys.stderr)
        sys.exit(2)
    return bp.Dataset.load_idx(images, labels, 0)  # class indices as targets


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()

    train, test = load(args.data, "train"), load(args.data, "t10k")
    if 0 < args.limit < len(train):
        head = train.subset(0, args.limit)
        train.close()
        train = head
    print(f"Fashion-MNIST: {len(train)} training and {len(test)} test images of "
          f"{train.input_size} pixels")

    with train, test, bp.Net(784, seed=args.seed) as net, \
            bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=1e-3) as opt:
        net.add_dense(256, bp.ACT_RELU).add_dense(128, bp.ACT_RELU)
        net.add_dense(CLASSES, bp.ACT_SOFTMAX)

        def on_epoch(epoch, m):
            print(f"epoch {epoch + 1}/{args.epochs}: loss {m['loss']:.4f} accuracy "
                  f"{m['accuracy']:.4f} val_loss {m['val_loss']:.4f} val_accuracy "
                  f"{m['val_accuracy']:.4f} lr {m['learning_rate']:.2e} {m['seconds']:.1f} s",
                  flush=True)

        history = net.fit(opt, bp.LOSS_SPARSE_SOFTMAX_CE, train, test, callback=on_epoch,
                          epochs=args.epochs, batch_size=64, schedule=bp.SCHEDULE_COSINE)
        train_seconds = sum(e["seconds"] for e in history)

        metrics = net.evaluate(bp.LOSS_SPARSE_SOFTMAX_CE, test)
        # The confusion matrix, from the predicted classes.
        predicted = bp.argmax(net.predict(test.inputs()), CLASSES)
        confusion = [[0] * CLASSES for _ in range(CLASSES)]
        for label, guess in zip(test.targets(), predicted):
            confusion[int(label)][guess] += 1
        print("\nconfusion matrix (rows: true class, columns: predicted class)")
        for row in confusion:
            print(" ".join(f"{v:5d}" for v in row))
        print(f"test accuracy {metrics['accuracy']:.4f}, test loss {metrics['loss']:.4f}")
        print(f"result: test_accuracy={metrics['accuracy']:.4f} "
              f"test_loss={metrics['loss']:.4f} epochs={len(history)} "
              f"train_seconds={train_seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
