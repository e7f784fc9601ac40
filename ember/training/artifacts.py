"""Files a training run leaves: checkpoint (npz), history (JSON), curves and filter images (PNG).

Every file is written to a temporary name in the same folder and renamed into
place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy

from ember.serialization import _fsync_directory


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, rename it over ``path``, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(str(path.parent))  # make the rename itself durable


def save_history(path: Path, history: dict) -> None:
    """The per-epoch metrics and run settings as pretty JSON."""
    atomic_write(path, lambda f: f.write(json.dumps(history, indent=2)), mode="w")


def _figure_to(path: Path, fig: Any) -> None:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def plot_history(path: Path, epochs: list[dict], title: str) -> None:
    """Loss and accuracy per epoch, train and test, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [e["epoch"] for e in epochs]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(xs, [e["train_loss"] for e in epochs], "o-", label="train")
    ax_loss.plot(xs, [e["test_loss"] for e in epochs], "s--", label="test")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_acc.plot(xs, [e["train_accuracy"] for e in epochs], "o-", label="train")
    ax_acc.plot(xs, [e["test_accuracy"] for e in epochs], "s--", label="test")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_loss, ax_acc):
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
