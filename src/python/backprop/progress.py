"""Progress display for Net.fit(progress=...): a Keras-like bar redrawn after every epoch on
a terminal, one line per epoch otherwise.

The bar advances by epochs: "Epoch 3/10 [=======>............] - 0.41s/epoch - eta 2.9s -
loss: 0.1234 - val_loss: 0.1500"; within an epoch, fit() feeds batch() from the library's
batch callback (bp_net_set_batch_callback, at most about 10 calls a second), which redraws
the line as "Epoch 3/10 - batch 120/375 - loss: 0.1302".
"""

import math
import sys

MODES = ("auto", "bar", "lines", "none")

# Metrics shown, in this order, when they apply (NaN ones are left out).
SHOWN = ("loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae")


class Progress:
    """Callable epoch callback: Progress(epochs, mode="auto", file=sys.stdout).

    mode: "auto" (a bar when file is a terminal, lines otherwise), "bar", "lines", "none".
    Call close() after training to end the bar's line."""

    WIDTH = 30

    def __init__(self, epochs, mode="auto", file=None, first_epoch=0):
        if mode not in MODES:
            raise ValueError(f"progress: {mode!r} is not one of {', '.join(MODES)}")
        self.file = file if file is not None else sys.stdout
        if mode == "auto":
            isatty = getattr(self.file, "isatty", None)
            mode = "bar" if isatty is not None and isatty() else "lines"
        self.mode = mode
        self.epochs = int(epochs)
        self.first = int(first_epoch)
        self.elapsed = 0.0
        self._open = False

    def _metrics(self, metrics):
        parts = []
        for name in SHOWN:
            value = metrics.get(name, math.nan)
            if not math.isnan(value):
                parts.append(f"{name}: {value:.4g}")
        return " - ".join(parts)

    def __call__(self, epoch, metrics):
        if self.mode == "none":
            return False
        self.elapsed += metrics.get("seconds", 0.0)
        done = epoch + 1
        shown = self._metrics(metrics)
        if self.mode == "lines":
            self.file.write(f"Epoch {done}/{self.epochs} - {metrics.get('seconds', 0.0):.2f}s"
                            f" - {shown} - lr: {metrics.get('learning_rate', math.nan):.3g}\n")
        else:
            span = max(self.epochs - self.first, 1)
            ran = max(done - self.first, 1)
            fill = min(self.WIDTH, ran * self.WIDTH // span)
            bar = "=" * fill + (">" + "." * (self.WIDTH - fill - 1) if fill < self.WIDTH else "")
            per = self.elapsed / ran
            eta = per * max(self.epochs - done, 0)
            self.file.write(f"\r\x1b[KEpoch {done}/{self.epochs} [{bar}] - {per:.2f}s/epoch"
                            f" - eta {eta:.1f}s - {shown}")
            self._open = True
        self.file.flush()
        return False

    def batch(self, epoch, batch, batches, loss):
        """Progress within an epoch (bar mode only; lines mode prints per epoch)."""
        if self.mode != "bar" or batch + 1 >= batches:
            return  # the epoch's line replaces it
        self.file.write(f"\r\x1b[KEpoch {epoch + 1}/{self.epochs} - batch {batch + 1}/{batches}"
                        f" - loss: {loss:.4g}")
        self._open = True
        self.file.flush()

    def close(self):
        if self._open:
            self.file.write("\n")
            self.file.flush()
            self._open = False
