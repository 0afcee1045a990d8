#!/usr/bin/python3
"""charlm_torch.py -- the PyTorch reference of the character language model of issue #14.

    charlm_torch.py [--updates N] [--threads N] [--seed N] [--fortunes DIR]
                    [--eval-windows N] [--quiet]

The configuration of the floors (docs/sequences.md, docs/examples/char_lm.c trains the same
model with backprop): embedding 64, one LSTM layer of 256, a dense layer to the byte
vocabulary of the text (the bytes present in it), T = 64, batches of 32 windows drawn at
random from the training text, Adam (lr 2e-3), gradient-norm clipping at 5, 3000 updates
by default. Data: the *.u8 files of Debian's `fortunes` package under
/usr/share/games/fortunes, sorted by name and concatenated; the last 10% is held out.

Held-out bits per character: the held-out text is cut into consecutive non-overlapping
windows of T + 1 bytes (T inputs, the T next bytes as targets), each run from a zero
state like the training windows; the mean cross-entropy over every predicted byte, in
bits. --eval-windows caps the number of windows (0 = all of them).

Prints progress to stderr and one JSON line to stdout (case "lstm-charlm", like bp_bench):
tokens_per_s (training tokens per second of the updates after the first, which is not
timed, like bp_bench's warm-up; evaluation excluded), train_s, heldout_bpc, vocabulary.

Threads: torch.set_num_threads(N); OPENBLAS_NUM_THREADS and OMP_NUM_THREADS are set to N
too unless the environment sets them (Debian's PyTorch does its matrix products in
OpenBLAS, whose threads ignore torch.set_num_threads). Needs Debian's python3-torch.
"""
import argparse
import json
import math
import os
import sys
import time

T, BATCH, EMBED, HIDDEN = 64, 32, 64, 256
LR, CLIP = 2e-3, 5.0


def load_text(d):
    names = sorted(n for n in os.listdir(d) if n.endswith(".u8"))
    if not names:
        raise OSError("no *.u8 files in %s" % d)
    parts = []
    for n in names:
        with open(os.path.join(d, n), "rb") as f:
            parts.append(f.read())
    return b"".join(parts), len(names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--updates", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fortunes", default="/usr/share/games/fortunes")
    ap.add_argument("--eval-windows", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    # Before torch (and its OpenBLAS) is loaded: the BLAS thread pool follows these.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        text, files = load_text(args.fortunes)
    except OSError as e:
        print("charlm_torch: %s (apt-get install fortunes)" % e, file=sys.stderr)
        return 2
    raw = np.frombuffer(text, dtype=np.uint8)
    present = np.unique(raw)
    lut = np.zeros(256, dtype=np.int64)
    lut[present] = np.arange(len(present))
    ids = torch.from_numpy(lut[raw])
    vocab = len(present)
    split = len(ids) - len(ids) // 10
    train, held = ids[:split], ids[split:]

    class CharLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, EMBED)
            self.lstm = torch.nn.LSTM(EMBED, HIDDEN, batch_first=True)
            self.out = torch.nn.Linear(HIDDEN, vocab)

        def forward(self, x):
            h, _ = self.lstm(self.emb(x))
            return self.out(h)

    net = CharLM()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    offs = torch.arange(T + 1)
    log = (lambda *a: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    log("charlm_torch: %d files, %d bytes (%d train, %d held out), vocabulary %d, "
        "PyTorch %s, %d thread(s)" % (files, len(ids), len(train), len(held), vocab,
                                      torch.__version__, torch.get_num_threads()))
    t0 = time.perf_counter()
    run = 0.0
    for u in range(1, args.updates + 1):
        if u == 2:  # the first update (allocations, first-touch) is not timed, as in bp_bench
            t0 = time.perf_counter()
        start = torch.randint(0, len(train) - T, (BATCH,), generator=gen)
        win = train[start[:, None] + offs]
        x, y = win[:, :T], win[:, 1:]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP)
        opt.step()
        run = loss.item() if u == 1 else 0.98 * run + 0.02 * loss.item()
        if u % 100 == 0 or u == args.updates:
            el = time.perf_counter() - t0
            log("update %5d  loss %.4f (%.3f bits/char)  %.0f tokens/s"
                % (u, run, run / math.log(2), max(u - 1, 1) * BATCH * T / el))
    train_s = time.perf_counter() - t0

    net.eval()
    nwin = (len(held) - 1) // T
    if args.eval_windows:
        nwin = min(nwin, args.eval_windows)
    total, count = 0.0, 0
    with torch.no_grad():
        for w0 in range(0, nwin, 256):
            k = min(256, nwin - w0)
            starts = (torch.arange(w0, w0 + k) * T)[:, None] + offs
            win = held[starts]
            logits = net(win[:, :T])
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, vocab), win[:, 1:].reshape(-1), reduction="sum").item()
            count += k * T
    bpc = total / count / math.log(2)
    log("held-out: %d windows, %d bytes, %.4f bits/char" % (nwin, count, bpc))
    print(json.dumps({"case": "lstm-charlm", "threads": args.threads,
                      "backend": "PyTorch %s, %d intra-op threads" % (torch.__version__,
                                                                   torch.get_num_threads()),
                      "shape": "embed%d-lstm%d-dense%d" % (EMBED, HIDDEN, vocab), "steps": T,
                      "batch": BATCH, "updates": args.updates, "vocabulary": vocab,
                      "train_s": train_s,
                      "tokens_per_s": max(args.updates - 1, 1) * BATCH * T / train_s,
                      "heldout_bpc": bpc, "heldout_bytes": count,
                      "loadavg": os.getloadavg()[0]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
