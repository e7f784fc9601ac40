"""Files a training run leaves: checkpoint (npz), history (JSON), curves and filter images (PNG).

Every file is written to a temporary name in the same folder and renamed into
place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy

from ember import atomic_files


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(file)`` on a temp file beside ``path`` that replaces it atomically (mode 0644)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_files.atomic_write(path, mode) as f:
        write(f)


def save_history(path: Path, history: dict) -> None:
    """The per-epoch metrics and run settings as pretty JSON."""
    atomic_write(path, lambda f: f.write(json.dumps(history, indent=2)), mode="w")


def _figure_to(path: Path, fig: Any) -> None:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def smooth(values: list[float], window: int) -> numpy.ndarray:
    """Trailing moving average over up to ``window`` values (shorter at the start, never shifted)."""
    v = numpy.asarray(values, dtype=numpy.float64)
    if window <= 1 or len(v) == 0:
        return v
    c = numpy.cumsum(numpy.insert(v, 0, 0.0))
    idx = numpy.arange(1, len(v) + 1)
    lo = numpy.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_history(path: Path, epochs: list[dict], title: str, steps: list | None = None,
                 steps_per_epoch: int = 1) -> None:
    """Loss (per step, smoothed, plus per-epoch test) and accuracy per epoch, on integer epoch ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    xs = [e["epoch"] for e in epochs]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    if steps:
        sx = [s[0] for s in steps]
        sy = [s[1] for s in steps]
        window = max(1, steps_per_epoch // 10)
        ax_loss.plot(sx, sy, color="tab:blue", alpha=0.2, linewidth=0.8)
        ax_loss.plot(sx, smooth(sy, window), color="tab:blue", label=f"train (per step, mean of {window})")
    else:
        ax_loss.plot(xs, [e["train_loss"] for e in epochs], "o-", label="train")
    ax_loss.plot(xs, [e["test_loss"] for e in epochs], "s--", color="tab:orange", label="test (end of epoch)")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_acc.plot(xs, [e["train_accuracy"] for e in epochs], "o-", label="train (epoch mean)")
    ax_acc.plot(xs, [e["test_accuracy"] for e in epochs], "s--", label="test")
    ax_acc.set_ylabel("accuracy")
    lowest = min(min(e["test_accuracy"], e["train_accuracy"]) for e in epochs)
    ax_acc.set_ylim(min(0.5, lowest - 0.02), 1.0)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0 if steps else min(xs) - 0.5, max(xs) + (0 if steps else 0.5))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    _figure_to(path, fig)
    plt.close(fig)


def plot_filters(path: Path, weight: numpy.ndarray, title: str, columns: int = 8) -> None:
    """The first conv layer's filters (first input channel) as a grid of grey images (the book's ch. 7)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = weight.shape[0]
    rows = int(numpy.ceil(n / columns))
    fig = plt.figure(figsize=(columns * 0.9, rows * 0.9 + 0.4))
    for i in range(n):
        ax = fig.add_subplot(rows, columns, i + 1, xticks=[], yticks=[])
        ax.imshow(weight[i, 0], cmap="gray_r", interpolation="nearest")
    fig.suptitle(title)
    _figure_to(path, fig)
    plt.close(fig)
