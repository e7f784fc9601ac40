"""Argument checks shared by the losses: the reduction name and the target tensor.

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
