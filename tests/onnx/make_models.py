#!/usr/bin/python3
"""Export the ONNX test models from PyTorch and record reference outputs.

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-onnx):

    /usr/bin/python3 tests/onnx/make_models.py tests/onnx/data

writes, for each model M, M.onnx (torch.onnx.export, default opset, dynamic batch) and
M.ref: a text file "rows inputs outputs" followed by the inputs and PyTorch's outputs
(float32 printed with 9 significant digits; token ids as integers; sequences row by row,
step-major). The files in tests/onnx/data are committed so
that the C tests need no PyTorch; ctest regenerates them into the build tree when torch is
importable (test onnx_torch_fresh) and checks the importer against the fresh export.
Exits 77 (ctest: skipped) when torch or onnx is missing.
"""
import os
import sys

try:
    import torch
    import torch.nn as nn
except ImportError as e:  # pragma: no cover
    print(f"skipped: PyTorch is not importable by {sys.executable} ({e})")
    sys.exit(77)


class Mlp(nn.Module):
    """Gemm + ReLU, Dropout, Gemm + GELU (tanh form, decomposed by the exporter),
    Gemm + LeakyReLU, Gemm + Softmax."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(32, 16), nn.GELU(approximate="tanh"),
            nn.Linear(16, 16), nn.LeakyReLU(0.2),
            nn.Linear(16, 3), nn.Softmax(dim=1))

    def forward(self, x):
        return self.net(x)


class Acts(nn.Module):
    """The other activations, BatchNorm1d on flat rows, SiLU (Sigmoid * x) and a matmul
    written by hand (MatMul + Add)."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(6, 12)
        self.bn = nn.BatchNorm1d(12)
        self.l2 = nn.Linear(12, 12)
        self.l3 = nn.Linear(12, 10)
        self.w = nn.Parameter(torch.randn(10, 4) * 0.3)
        self.b = nn.Parameter(torch.randn(4) * 0.1)

    def forward(self, x):
        x = torch.sigmoid(self.l1(x))
        x = torch.tanh(self.bn(x))
        x = nn.functional.softplus(self.l2(x))
        x = nn.functional.elu(self.l3(x), alpha=0.7)
        x = nn.functional.silu(x)
        return x @ self.w + self.b


class Cnn(nn.Module):
    """Conv + BN + ReLU, MaxPool, Conv + ReLU, AvgPool, x.view(x.size(0), -1) (shape
    arithmetic the importer folds), Linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 6, 3)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.c1(x))), 2)
        x = nn.functional.avg_pool2d(torch.relu(self.c2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc(x)


class CnnGap(nn.Module):
    """Strided conv + BN + ELU, GlobalAveragePool, Flatten, Linear + Sigmoid."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = nn.functional.elu(self.bn(self.c1(x)))
        x = torch.tanh(self.c2(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return torch.sigmoid(self.fc(x))


class LstmLast(nn.Module):
    """nn.LSTM (batch_first) and the last step's output y[:, -1] into a Linear: the exporter's
    zero initial state (Shape, Gather, Unsqueeze, Concat, ConstantOfShape), Transpose,
    LSTM, Squeeze, Transpose, Gather."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1, :])


class Lstm2(nn.Module):
    """Two stacked LSTM layers (the initial state sliced per layer), last step, Linear."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(3, 6, num_layers=2, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1, :])


class GruBiSeq(nn.Module):
    """A bidirectional GRU's whole output sequence (directions joined by Transpose and
    Reshape) and a Linear on every step (MatMul + Add): output [N x T x 2]."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 5, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(10, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y)


class RnnReluHn(nn.Module):
    """nn.RNN with ReLU; its final state h_n (Y_h) into a Linear."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(4, 6, nonlinearity="relu", batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        _, h = self.rnn(x)
        return self.fc(h[-1])


class EmbedLstm(nn.Module):
    """Token ids [N x T] (int64): nn.Embedding (Gather), LSTM, last step, Linear, softmax."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(12, 4)
        self.rnn = nn.LSTM(4, 5, batch_first=True)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        y, _ = self.rnn(self.emb(x))
        return torch.softmax(self.fc(y[:, -1, :]), dim=1)


MODELS = [("mlp", Mlp, (8,)), ("acts", Acts, (6,)), ("cnn", Cnn, (1, 12, 12)),
          ("cnn_gap", CnnGap, (3, 9, 9)), ("lstm", LstmLast, (6, 4)), ("lstm2", Lstm2, (5, 3)),
          ("gru_bi_seq", GruBiSeq, (4, 3)), ("rnn_relu_hn", RnnReluHn, (5, 4)),
          ("embed_lstm", EmbedLstm, (7,))]


def write_ref(path, x, y):
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    with open(path, "w") as f:
        f.write(f"{x.shape[0]} {x.shape[1]} {y.shape[1]}\n")
        for m in (x, y):
            for row in m.tolist():
                f.write(" ".join(f"{v:.9g}" for v in row) + "\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(16)
    for name, cls, shape in MODELS:
        model = cls()
        tokens = name.startswith("embed")
        sample = (lambda n: torch.randint(0, 12, (n, *shape))) if tokens else (
            lambda n: torch.randn(n, *shape))
        # A few training-mode passes so that the running statistics are not the defaults.
        model.train()
        with torch.no_grad():
            for _ in range(5):
                model(sample(16) if tokens else sample(16) * 1.5 + 0.3)
        model.eval()
        x = sample(5)
        with torch.no_grad():
            y = model(x)
        torch.onnx.export(model, x, os.path.join(out, name + ".onnx"), input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                          # keeps BatchNormalization (EVAL folds it into the Conv before it)
                          training=torch.onnx.TrainingMode.PRESERVE)
        write_ref(os.path.join(out, name + ".ref"), x, y)
        print(f"{name}: {os.path.join(out, name + '.onnx')}")


if __name__ == "__main__":
    main()
