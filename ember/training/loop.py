"""One training epoch and one evaluation pass, used by the CLI and the end-to-end tests."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import numpy

import ember as em
from ember.nn import functional as F


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; carries where, so the CLI can report it."""

    def __init__(self, epoch: int, step: int, value: float):
        super().__init__(f"loss became {value} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.value = epoch, step, value


def compute_loss(model: Any, logits: Any, labels: Any) -> Any:
    """Cross entropy, plus the model's own regularisation term when it has one (the book's decay)."""
    loss = F.cross_entropy(logits, labels)
    reg = getattr(model, "regularization", None)
    if reg is not None:
        term = reg()
        if not isinstance(term, float) or term:
            loss = loss + term
    return loss


class _NonFinite(Exception):
    """Raised inside an eager step when the loss is NaN/inf, before the update is taken."""

    def __init__(self, value: float):
        super().__init__(value)
        self.value = value


def _require_finite(loss: Any) -> None:
    value = float(loss.item())
    if not math.isfinite(value):
        raise _NonFinite(value)


def make_train_step(model: Any, optimizer: Any, scaler: Any = None, compiled: bool = False,
                    before_update: Any = None) -> Any:
    """``step(x, y) -> (loss, logits)``: forward, loss, backward and update; ``ember.compile``d when asked.

    ``before_update(loss)`` runs between the loss and the backward (the eager NaN check); a
    compiled step cannot branch on the loss, so its caller checks the loss after the update.
    """
    def step(x: Any, y: Any) -> tuple:
        with em.amp.autocast() if scaler is not None else contextlib.nullcontext():
            logits = model(x)
            loss = compute_loss(model, logits, y)
        if before_update is not None:
            before_update(loss)
        optimizer.zero_grad()
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss, logits

    return em.compile(step) if compiled else step


def train_epoch(model: Any, loader: Any, optimizer: Any, epoch: int, device: Any = "cpu", dtype: Any = None,
                progress: Any = None, scaler: Any = None, step_losses: list | None = None,
                step: Any = None) -> dict:
    """Train for one pass over ``loader``; returns mean loss, accuracy, samples/s and samples seen.

    ``step_losses``, when given, receives ``[epoch - 1 + step / steps, loss]`` for every step
    (fractional epochs), so a plot can show the training loss within an epoch.

    With an ``ember.amp.GradScaler`` the step is mixed precision (AMP): the
    forward runs under float16 autocast, the loss is scaled, and a step whose
    gradients overflowed is skipped while the scale adapts. ``step`` is a prepared
    ``make_train_step`` (``--compile``); by default an eager one is made.

    Raises:
        NonFiniteLossError: the loss is NaN/inf (an eager step's update is not taken).
    """
    model.train()
    if step is None:
        step = make_train_step(model, optimizer, scaler, before_update=_require_finite)
    total_loss = 0.0
    correct = seen = 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader, 1):
        x = x.to(device, dtype) if dtype is not None else x.to(device)
        y = y.to(device)
        try:
            with numpy.errstate(over="ignore", invalid="ignore"):  # an AMP overflow skips the step, by design
                loss, logits = step(x, y)
        except _NonFinite as e:
            raise NonFiniteLossError(epoch, i, e.value) from None
        value = float(loss.item())
        if not math.isfinite(value):
            raise NonFiniteLossError(epoch, i, value)
        n = len(y)
        if step_losses is not None:
            step_losses.append([epoch - 1 + i / len(loader), value])
        total_loss += value * n
        seen += n
        correct += int((logits.argmax(axis=1).numpy() == y.numpy()).sum())
        if progress is not None:
            elapsed = time.perf_counter() - start
            progress.set_postfix(loss=f"{value:.4f}", samples_per_s=f"{seen / max(elapsed, 1e-9):.0f}")
            progress.update(1)
    elapsed = time.perf_counter() - start
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1),
            "samples_per_s": seen / max(elapsed, 1e-9), "seconds": elapsed, "seen": seen}


def evaluate(model: Any, dataset: Any, batch_size: int = 1000, device: Any = "cpu", dtype: Any = None) -> dict:
    """Loss and accuracy over ``dataset`` in eval mode without recording a graph."""
    model.eval()
    x_all, y_all = dataset.arrays()
    total_loss = 0.0
    correct = 0
    with em.no_grad():
        for i in range(0, len(x_all), batch_size):
            x = em.tensor(x_all[i:i + batch_size], device=device, dtype=dtype)
            y = em.tensor(y_all[i:i + batch_size], device=device)
            logits = model(x)
            total_loss += float(F.cross_entropy(logits, y, reduction="sum").item())
            correct += int((logits.argmax(axis=1).numpy() == numpy.asarray(y_all[i:i + batch_size])).sum())
    n = max(len(x_all), 1)
    model.train()
    return {"loss": total_loss / n, "accuracy": correct / n}


def evaluate_in_precision(model: Any, dataset: Any, device: Any = "cpu", dtype: Any = None, eval_dtype: Any = None,
                          amp: bool = False) -> dict:
    """``evaluate`` as trained (under float16 autocast when ``amp``), or in ``eval_dtype``.

    With ``eval_dtype`` (e.g. float16 for ``--eval-dtype float16``) a copy of the
    weights converted to it is evaluated on inputs of that dtype, so the whole
    forward runs at that precision; the training model is left as it is.
    """
    if eval_dtype is None:
        with em.amp.autocast() if amp else contextlib.nullcontext():
            return evaluate(model, dataset, device=device, dtype=dtype)
    eval_dtype = numpy.dtype(eval_dtype)
    if all(p.dtype == eval_dtype for p in model.parameters()):
        return evaluate(model, dataset, device=device, dtype=eval_dtype)
    return evaluate(em.amp.converted_copy(model, eval_dtype), dataset, device=device, dtype=eval_dtype)
