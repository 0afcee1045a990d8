#!/usr/bin/python3
"""Record reference outputs of PyTorch's nn.RNN / nn.LSTM / nn.GRU for tests/test_recurrent.c.

Run by hand with Debian's PyTorch (python3-torch; /usr/bin/python3 on this machine):

    /usr/bin/python3 tests/make_recurrent_ref.py > tests/data/recurrent_ref.txt

The tests read the committed file and never need PyTorch. Each case is a layer with
PyTorch's default initialisation (float32 values), inputs x1 and x2 [n x T x F] (batch
first), and, computed in double precision from those float32 values:
  y1  the output [n x T x D*H] for x1 from a zero state,
  hn1 h_n for x1, as [n x D*H] (forward direction | backward direction),
  y2  the output for x2 started from x1's final state (h_n, and c_n for the LSTM): what a
      stateful layer gives for its second batch.
Parameters are written in the library's layout: weights = weight_ih_l0, weight_hh_l0 (then
the _reverse ones), biases = bias_ih_l0, bias_hh_l0 (then the _reverse ones), row-major.
"""
import sys

import torch

CASES = [
    # name, kind, activation, bidirectional, n, T, F, H
    ("rnn_tanh", "rnn", "tanh", 0, 3, 4, 3, 5),
    ("rnn_relu", "rnn", "relu", 0, 3, 4, 3, 5),
    ("rnn_tanh_bi", "rnn", "tanh", 1, 2, 5, 2, 3),
    ("lstm", "lstm", "tanh", 0, 3, 4, 3, 5),
    ("lstm_bi", "lstm", "tanh", 1, 2, 5, 2, 3),
    ("lstm_wide", "lstm", "tanh", 0, 2, 3, 7, 17),
    ("lstm_t1", "lstm", "tanh", 1, 2, 1, 3, 4),
    ("gru", "gru", "tanh", 0, 3, 4, 3, 5),
    ("gru_bi", "gru", "tanh", 1, 2, 5, 2, 3),
    ("gru_wide", "gru", "tanh", 0, 2, 3, 7, 17),
]


def fmt(t):
    return " ".join("%.9g" % v for v in t.detach().reshape(-1).tolist())


def main():
    torch.manual_seed(14)
    out = sys.stdout
    out.write("# Written by tests/make_recurrent_ref.py with PyTorch %s; do not edit.\n"
              % torch.__version__)
    out.write("# case <name> <kind> <activation> <bidirectional> <n> <T> <F> <H>, then\n")
    out.write("# lines '<what> <count> <values...>' for weights biases x1 y1 hn1 x2 y2.\n")
    for name, kind, act, bi, n, T, F, H in CASES:
        if kind == "rnn":
            m = torch.nn.RNN(F, H, nonlinearity=act, batch_first=True, bidirectional=bool(bi))
        elif kind == "lstm":
            m = torch.nn.LSTM(F, H, batch_first=True, bidirectional=bool(bi))
        else:
            m = torch.nn.GRU(F, H, batch_first=True, bidirectional=bool(bi))
        sfx = ["", "_reverse"] if bi else [""]
        weights = [getattr(m, w + "_l0" + s) for s in sfx for w in ("weight_ih", "weight_hh")]
        biases = [getattr(m, b + "_l0" + s) for s in sfx for b in ("bias_ih", "bias_hh")]
        x1 = torch.randn(n, T, F)
        x2 = torch.randn(n, T, F)
        md = m.double()
        with torch.no_grad():
            y1, st = md(x1.double())
            y2, _ = md(x2.double(), st)
        hn = st[0] if kind == "lstm" else st  # [D x n x H]
        hn1 = hn.permute(1, 0, 2).reshape(n, -1)
        out.write("case %s %s %s %d %d %d %d %d\n" % (name, kind, act, bi, n, T, F, H))
        w = torch.cat([p.reshape(-1) for p in weights])
        b = torch.cat([p.reshape(-1) for p in biases])
        for what, t in (("weights", w), ("biases", b), ("x1", x1), ("y1", y1), ("hn1", hn1),
                        ("x2", x2), ("y2", y2)):
            out.write("%s %d %s\n" % (what, t.numel(), fmt(t)))


if __name__ == "__main__":
    main()
