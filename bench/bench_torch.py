#!/usr/bin/python3
"""bench_torch.py -- the peer workloads of bp_bench run with PyTorch, for bench/compare.

    bench_torch.py [--case NAME[,NAME...]] [--threads N] [--repeat N] [--samples N]
                   [--fmnist DIR]

Prints one JSON line per case with the same case names and figures as bp_bench:
  dense-gemm-bound   MLP 1024-4096-4096-1024 (ReLU, identity, MSE, SGD), batch 256: samples_per_s
  fmnist-mlp-epoch   784-256-128-10 (ReLU, softmax-CE, Adam), batch 64, shuffled: epoch_s
  inference-latency  784-256-128-10 forward under torch.no_grad(): single_ns, batch256_ns
  cnn-example-epoch  docs/examples/fashion_mnist_cnn's net (4 conv 3x3 pad 1 + BN + ReLU, 2 max
                     pools, dropout, dense 128, dense 10; Adam), batch 128, synthetic 28x28
                     images: epoch_s (median batch time x 469 batches)
Threads: torch.set_num_threads(N) (intra-op). Debian's PyTorch does its matrix products in
OpenBLAS (BLAS_INFO=generic), whose threads follow OPENBLAS_NUM_THREADS, not
torch.set_num_threads: bench/compare sets it (and OMP_NUM_THREADS) to N. The OpenBLAS core
is whatever the environment sets, as for the other contestants. Needs Debian's python3-torch (apt-get install python3-torch).
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fmnist(args):
    """Training and test sets as float tensors, or random data of the same shape."""
    d = args.fmnist
    try:
        x = load_idx(os.path.join(d, "train-images-idx3-ubyte.gz")).reshape(-1, 784)
        y = load_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"))
        tx = load_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz")).reshape(-1, 784)
        ty = load_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
        name = "fashion-mnist"
    except OSError:
        g = np.random.default_rng(7)
        x = g.integers(0, 256, (60000, 784), dtype=np.uint8)
        y = g.integers(0, 10, 60000, dtype=np.uint8)
        tx, ty, name = x[:10000], y[:10000], "random"
    n = min(len(x), args.samples)
    conv = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)
    return (conv(x[:n]), torch.from_numpy(y[:n].astype(np.int64)),
            conv(tx[:n]), torch.from_numpy(ty[:n].astype(np.int64)), name)


def fmnist_net():
    torch.manual_seed(42)
    return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def case_fmnist_epoch(args):
    x, y, tx, ty, name = fmnist(args)
    net = fmnist_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    n = x.shape[0]

    def epoch():
        perm = torch.randperm(n, generator=g)
        for r in range(0, n, 64):
            idx = perm[r:r + 64]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()

    t0 = time.perf_counter()
    epoch()
    first = time.perf_counter() - t0
    with torch.no_grad():
        acc = (net(tx).argmax(1) == ty).float().mean().item()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    return {"shape": "784-256-128-10", "data": name, "samples": n, "batch": 64,
            "repeat": args.repeat, "epoch_s": s, "samples_per_s": n / s,
            "first_epoch_s": first, "test_accuracy": acc}


def case_dense_gemm_bound(args):
    torch.manual_seed(1)
    w = [1024, 4096, 4096, 1024]
    net = torch.nn.Sequential(torch.nn.Linear(w[0], w[1]), torch.nn.ReLU(),
                              torch.nn.Linear(w[1], w[2]), torch.nn.ReLU(),
                              torch.nn.Linear(w[2], w[3]))
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    x, y = torch.rand(256, w[0]) * 2 - 1, torch.rand(256, w[3]) * 2 - 1
    loss_fn = torch.nn.MSELoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    step()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    weights = sum(a * b for a, b in zip(w, w[1:]))
    return {"shape": "1024-4096-4096-1024", "batch": 256, "repeat": args.repeat,
            "step_ms": s * 1e3, "samples_per_s": 256 / s, "gflops": 6 * weights * 256 / s / 1e9}


def timed(fn, min_s=0.02, repeat=3):
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-9)
    inner = max(1, int(min_s / once))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def case_inference(args):
    x, _, _, _, name = fmnist(args)
    net = fmnist_net().eval()
    one, batch = x[:1].clone(), x[:256].clone()
    with torch.no_grad():
        single = timed(lambda: net(one), repeat=args.repeat)
        b256 = timed(lambda: net(batch), repeat=args.repeat)
    w = 784 * 256 + 256 * 128 + 128 * 10
    return {"shape": "784-256-128-10", "data": name, "repeat": args.repeat,
            "single_ns": single * 1e9, "batch256_ns": b256 * 1e9,
            "samples_per_s": 256 / b256, "single_samples_per_s": 1 / single,
            "gflops": 2 * w * 256 / b256 / 1e9}


def tanh_mlp(args, n_in, rows):
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(n_in, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.rand(rows, n_in) * 2 - 1, torch.rand(rows, 1) * 2 - 1
    loss_fn = torch.nn.MSELoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    s = timed(step, min_s=0.02, repeat=args.repeat)
    return {"shape": "%d-64-64-64-1" % n_in, "batch": rows, "repeat": args.repeat,
            "step_us": s * 1e6, "samples_per_s": rows / s}


def case_tanh_spiral(args):
    return tanh_mlp(args, 2, 193)


def case_tanh_mlp8(args):
    return tanh_mlp(args, 8, 256)


def cnn_example_net():
    torch.manual_seed(1)
    nn = torch.nn
    layers = []
    c = 1
    for f in (32, 64):
        for _ in range(2):
            layers += [nn.Conv2d(c, f, 3, padding=1), nn.BatchNorm2d(f), nn.ReLU()]
            c = f
        layers += [nn.MaxPool2d(2), nn.Dropout(0.25)]
    layers += [nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.4),
               nn.Linear(128, 10)]
    return nn.Sequential(*layers)


def case_cnn_example_epoch(args):
    """The same rounds as bp_bench's case: --repeat rounds of 8 batches (or --samples / 128
    batches in all), the median batch time scaled to 60000 images."""
    net = cnn_example_net().train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(5)
    pool = 16
    x = torch.rand(pool, 128, 1, 28, 28, generator=g)
    y = torch.arange(pool * 128).remainder(10).reshape(pool, 128)
    rounds = max(1, args.repeat)
    total = args.samples // 128 if args.samples < (1 << 40) else 8 * rounds
    total = max(total, rounds)

    def step(b):
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x[b % pool]), y[b % pool]).backward()
        opt.step()

    step(0)
    times, b = [], 0
    for r in range(rounds):
        here = total // rounds + (1 if r < total % rounds else 0)
        t0 = time.perf_counter()
        for _ in range(here):
            step(b)
            b += 1
        times.append((time.perf_counter() - t0) / here)
    s = statistics.median(times)
    return {"shape": "cnn-example", "batch": 128, "batches": total, "repeat": rounds,
            "batch_ms": s * 1e3, "epoch_s": s * ((60000 + 127) // 128),
            "samples_per_s": 128 / s}


CASES = {"dense-gemm-bound": case_dense_gemm_bound, "fmnist-mlp-epoch": case_fmnist_epoch,
         "inference-latency": case_inference, "tanh-spiral": case_tanh_spiral,
         "tanh-mlp8": case_tanh_mlp8, "cnn-example-epoch": case_cnn_example_epoch}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", default=",".join(CASES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--samples", type=int, default=1 << 40)
    p.add_argument("--fmnist", default="/usr/share/datasets/fashion-mnist")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    backend = "PyTorch %s; %s; intra-op threads %d" % (
        torch.__version__, torch.backends.cpu.get_cpu_capability()
        if hasattr(torch.backends, "cpu") else "cpu", torch.get_num_threads())
    rc = 0
    for name in args.case.split(","):
        if name not in CASES:
            print("bench_torch: unknown case %r" % name, file=sys.stderr)
            rc = 2
            continue
        row = {"case": name, "threads": args.threads, "backend": backend}
        row.update(CASES[name](args))
        print(json.dumps(row), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
