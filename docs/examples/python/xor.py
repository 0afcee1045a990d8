#!/usr/bin/env python3
"""XOR with the installed Python package (pip install ./src/python): fit, then predict.
Runs from any directory with no environment variable set: the package finds libbackprop
by itself (pkg-config, the recorded install prefix, or the system loader)."""

import backprop as bp

x = [[0, 0], [0, 1], [1, 0], [1, 1]]
y = [0, 1, 1, 0]
with bp.Net(2, seed=42) as net, bp.Optimizer(bp.OPTIMIZER_ADAM, learning_rate=0.05) as opt:
    net.add_dense(8, bp.ACT_TANH).add_dense(1, bp.ACT_SIGMOID)
    history = net.fit(opt, bp.LOSS_MSE, (x, y), epochs=500, batch_size=4)
    out = net.predict(x)  # a NumPy array [4 x 1], or a flat array.array without NumPy
    values = [float(v) for v in (out.ravel() if hasattr(out, "ravel") else out)]
print(f"libbackprop {bp.version_string()} from {bp.library_path} ({bp.library_source})")
print(f"final loss {history[-1]['loss']:.5f}, predictions", [round(v, 3) for v in values])
raise SystemExit(0 if all(abs(v - t) < 0.2 for v, t in zip(values, y)) else 1)
