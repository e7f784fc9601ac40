"""Argument checks shared by the losses: the reduction name, the target tensor and class indices.

Every loss takes a ``reduction`` and a ``target`` that must live on the input's
device; the elementwise losses (``mse_loss``, ``binary_cross_entropy``) also
need a target of exactly the input's shape and dtype, never broadcast.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import autocast_active
from ember.autograd.ops.operands import require_floating
from ember.autograd.tensor import Tensor
from ember.backends.deferred_checks import defer_range_check
from ember.backends.device import backend_of
from ember.errors import DeviceMismatchError, DTypeError, ShapeError

REDUCTIONS = ("mean", "sum", "none")

def check_reduction(op: str, reduction: str) -> None:
    """Reject anything but ``"mean"``, ``"sum"`` and ``"none"``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: expected reduction to be one of {REDUCTIONS}, got {reduction!r}")


def as_target(op: str, target: Any, like: Tensor) -> Tensor:
    """``target`` as a Tensor on ``like``'s device (NumPy arrays only next to cpu tensors)."""
    if isinstance(target, Tensor):
        if _on_cpu(target) and _on_cpu(like):
            return target
        if target.device != like.device:
            raise DeviceMismatchError(
                f"{op}: expected the target on {like.device} like the input, got {target.device}; "
                "move it with .to(device) first"
            )
        return target
    if isinstance(target, (list, tuple)):
        target = numpy.asarray(target)
    try:
        owner = backend_of(target)
    except TypeError:
        raise TypeError(f"{op}: expected the target to be a Tensor or an array, got {type(target).__name__}") from None
    if owner is not backend_of(like.data):
        raise DeviceMismatchError(
            f"{op}: expected the target on {like.device} like the input, got an array on another device"
        )
    return Tensor._make(target)


def same_shape_target(op: str, input: Any, target: Any, reduction: str, hint: str = "",
                      autocast_ok: bool = False) -> Tensor:
    """``target`` checked for an elementwise loss: a floating input Tensor, a valid reduction, a target of its shape and dtype.

    ``hint``: appended to the shape error.  ``autocast_ok``: a dtype mismatch is
    allowed under autocast, which computes both in float32.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected the input to be a Tensor, got {type(input).__name__}")
    require_floating(op, input)
    check_reduction(op, reduction)
    target = as_target(op, target, input)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(
            f"{op}: expected a target of the input's shape {tuple(input.shape)}, got {tuple(target.shape)}{hint}"
        )
    if target.dtype != input.dtype and not (autocast_ok and autocast_active()):
        raise DTypeError(f"{op}: expected a target of dtype {input.dtype} like the input, got {target.dtype}")
    return target


# ------------------------------------------------------------- class indices
def check_logits(op: str, logits: Any) -> None:
    """Logits of a classification loss: a floating Tensor of shape ``(N, C, ...)`` with ``C >= 1``."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{op}: expected the input to be a Tensor, got {type(logits).__name__}")
    require_floating(op, logits)
    if logits.ndim < 2:
        raise ShapeError(
            f"{op}: expected input (N, C) or (N, C, d1, ...), got {tuple(logits.shape)}; "
            "add a batch axis with .unsqueeze(0)"
        )
    if logits.shape[1] == 0:
        raise ShapeError(f"{op}: expected at least one class (C >= 1), got input of shape {tuple(logits.shape)}")


def check_class_indices(op: str, logits: Tensor, target: Tensor, ignore_index: int = -100,
                         label_range: tuple | None = None) -> None:
    """Class-index targets: shape ``(N, d...)``, integer dtype, values in ``[0, C)`` (on a GPU: at the next sync).

    ``label_range``: the labels' ``class_index_range`` when the caller has read it already (CPU only).
    """
    shape, labels = logits.data.shape, target.data
    C = shape[1]
    expected = shape[:1] + shape[2:]
    if labels.dtype.kind not in "iu":
        raise DTypeError(f"{op}: expected integer class indices, got dtype {labels.dtype}")
    if labels.shape != expected:
        raise ShapeError(
            f"{op}: expected class indices of shape {expected} for input {shape}, got {tuple(labels.shape)}"
        )
    if not labels.size:
        return
    if _on_cpu(target):  # NumPy: reading the extremes costs no device sync, so check now
        lo, hi, _ = label_range if label_range is not None else _label_range(target.data, ignore_index)
        if lo < 0 or hi >= C:
            _index_range_error(op, C, ignore_index)(lo, hi)
    else:  # a GPU: keep the extremes on the device, raise at the next sync point
        defer_range_check((op, C, ignore_index, str(target.device)), backend_of(target.data).xp, target.data,
                          _index_range_error(op, C, ignore_index))


def _label_range(data: Any, ignore_index: int) -> tuple:
    """``(lo, hi, has_ignored)`` of non-empty CPU class indices, in one pass where the backend compiles it."""
    return backend_of(data).nn.class_index_range(data, ignore_index, xp=numpy)


def _on_cpu(t: Tensor) -> bool:
    """Whether ``t`` lives on the cpu (a plain NumPy array answers without asking its backend)."""
    return type(t.data) is numpy.ndarray or getattr(t.device, "type", "cpu") == "cpu"


def _index_range_error(op: str, C: int, ignore_index: int) -> Any:
    """``raise_for(lo, hi)``: raise when class indices spanning ``[lo, hi]`` leave ``[0, C)``."""

    def raise_for(lo: int, hi: int) -> None:
        if lo >= 0 and hi < C:
            return
        bad = lo if lo < 0 else hi
        hint = ""
        if ignore_index in (lo, hi):
            hint = (f" (= ignore_index; on cuda the fast path does not skip ignored targets outside [0, C): "
                    f"pass weight=ember.ones({C}, device='cuda') to take the general path that does)")
        raise ValueError(f"{op}: expected class indices in [0, {C}) for C={C} classes, got {bad} "
                         f"(indices ranged over [{lo}, {hi}]){hint}")

    return raise_for


def classify_target(op: str, logits: Tensor, target: Tensor, ignore_index: int = -100,
                     label_range: tuple | None = None) -> bool:
    """Validate ``target`` against ``logits``; True for a probability (soft / one-hot) target."""
    shape = tuple(logits.data.shape)
    index_shape = shape[:1] + shape[2:]
    tshape = tuple(target.data.shape)
    kind = target.data.dtype.kind
    if kind == "f":
        if tshape == shape:
            if target.dtype != logits.dtype and not autocast_active():  # autocast computes both in float32
                raise DTypeError(
                    f"{op}: expected a probability target of dtype {logits.dtype} like the input, "
                    f"got {target.dtype}; convert it with .to(dtype)"
                )
            return True
        if tshape == index_shape:
            raise DTypeError(
                f"{op}: expected integer class indices of shape {index_shape}, got dtype {target.dtype}; "
                "convert labels with .long(), or pass one-hot/probability targets of the input's shape "
                f"{shape}"
            )
        raise ShapeError(
            f"{op}: expected a probability target of the input's shape {shape} (or class indices of "
            f"shape {index_shape}), got {tshape}"
        )
    if kind in "iu":
        check_class_indices(op, logits, target, ignore_index, label_range)
        return False
    raise DTypeError(f"{op}: expected integer class indices or a floating target, got dtype {target.dtype}")


def needs_general_path(op: str, logits: Any, target: Any, weight: Any, ignore_index: int,
                        label_smoothing: float) -> tuple:
    """``(general, label_range)``: general is True when PyTorch's weight / ignore_index / label_smoothing
    options change the result; label_range is the CPU labels' ``class_index_range`` when it was read (the
    range check reuses it), else None."""
    if weight is not None or label_smoothing:
        return True, None
    if not isinstance(logits, Tensor):
        return False, None  # the fast path reports the bad input
    data = target.data if isinstance(target, Tensor) else target
    if isinstance(data, (list, tuple)):
        data = numpy.asarray(data)
    kind = getattr(getattr(data, "dtype", None), "kind", "")
    if kind not in "iu" or kind == "":
        return False, None
    if isinstance(target, Tensor) and not _on_cpu(target):  # no sync: decide from the shapes alone
        return logits.ndim >= 2 and 0 <= ignore_index < logits.shape[1], None
    if not getattr(data, "size", 0) or type(data) is not numpy.ndarray:
        return bool((numpy.asarray(data) == ignore_index).any()), None
    label_range = _label_range(data, ignore_index)
    return label_range[2], label_range
