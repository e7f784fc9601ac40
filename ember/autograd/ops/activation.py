"""Normalised activations: ``softmax`` and ``log_softmax`` along one axis.

Both subtract the maximum before ``exp`` (``softmax(x) == softmax(x - c)``), so
logits of +-1e4 neither overflow nor produce ``nan``.  float16 inputs are
computed in float32 and cast back (see ``compute_dtype``); the other ops of
``ops/loss.py`` and ``ops/nn_ops.py`` share that rule through this module.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.operands import normalize_axes, normalize_axis, require_floating
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import ShapeError


def compute_dtype(dtype: Any) -> Any:
    """The dtype an op accumulates in: float32 for float16 data, else the data's own dtype.

    float16 has an 11-bit significand: sums of more than ~2048 terms and
    ``exp`` of moderately large values lose everything, so softmax, losses and
    normalisation statistics run in float32 and only the result is rounded.
    """
    return numpy.dtype(numpy.float32) if dtype == numpy.float16 else dtype


def upcast(a: Any) -> Any:
    """``a`` (array or Tensor) in its ``compute_dtype``; a no-op except for float16."""
    return a.astype(numpy.float32) if a.dtype == numpy.float16 else a


class _ShiftedExponential(Function):
    """The frame softmax and log-softmax share: the forward is the backend's ``softmax`` kernel
    named by ``kernel`` (max-shifted, float16 computed in float32); a subclass gives
    ``gradient(xp, y, gy, axis) -> gx``.
    """

    kernel = ""

    @staticmethod
    def forward(ctx: Function, x: Any, axis: int) -> Any:
        ctx.axis = axis
        y = getattr(ctx.backend.softmax, ctx.kernel)(x, axis, xp=ctx.backend.xp)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (y,) = ctx.saved_tensors
        dtype = y.dtype
        gx = ctx.gradient(ctx.xp, upcast(y), upcast(gy), ctx.axis)
        return gx.astype(dtype) if gx.dtype != dtype else gx


class NormalizedExponential(_ShiftedExponential):
    """Softmax: ``y = exp(x) / sum(exp(x), axis)``; ``gx = y * (gy - sum(gy * y, axis))``."""

    kernel = "softmax_forward"

    @staticmethod
    def gradient(xp: Any, y: Any, gy: Any, axis: int) -> Any:
        return y * (gy - xp.sum(gy * y, axis=axis, keepdims=True))


class LogNormalizedExponential(_ShiftedExponential):
    """Log-softmax: ``y = x - log(sum(exp(x), axis))``; ``gx = gy - exp(y) * sum(gy, axis)``."""

    kernel = "log_softmax_forward"

    @staticmethod
    def gradient(xp: Any, y: Any, gy: Any, axis: int) -> Any:
        return gy - xp.exp(y) * xp.sum(gy, axis=axis, keepdims=True)


def _softmax_axis(op: str, x: Any, axis: int) -> int:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    require_floating(op, x)
    if x.ndim == 0:  # PyTorch: dim 0 or -1 of a 0-d tensor normalises its single element
        normalize_axes(op, axis, 0)
        return None
    axis = normalize_axis(op, axis, x.ndim)
    if x.shape[axis] == 0:
        raise ShapeError(f"{op}: expected a non-empty axis {axis}, got shape {tuple(x.shape)}")
    return axis


def _softmax_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(3, 4)), note="last axis"),
        sample(rng.normal(size=(2, 3, 4)), axis=1, note="middle axis"),
        sample(rng.normal(size=(5,)), axis=0, note="vector"),
    ]


@register("softmax", methods=("softmax",), samples=_softmax_samples)
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis``: ``exp(x) / sum(exp(x))``, computed as ``exp(x - max)`` for stability.

    Args:
        x: any shape (a 0-d tensor is one element), floating.
        axis: the axis that sums to one.

    Returns:
        A tensor of ``x``'s shape and dtype. Backward: ``gx = y * (gy - sum(gy * y, axis))``.

    Raises:
        DTypeError: ``x`` is not floating.
        ShapeError: ``axis`` is out of range or has size 0.
    """
    return NormalizedExponential.apply(x, axis=_softmax_axis("softmax", x, axis))


@register("log_softmax", methods=("log_softmax",), samples=_softmax_samples)
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``log(softmax(x))`` along ``axis`` as ``(x - max) - log(sum(exp(x - max)))``: finite for +-1e4.

    Args:
        x: any shape (a 0-d tensor is one element), floating.
        axis: the normalised axis.

    Returns:
        A tensor of ``x``'s shape and dtype. Backward: ``gx = gy - exp(y) * sum(gy, axis)``.

    Raises:
        DTypeError: ``x`` is not floating.
        ShapeError: ``axis`` is out of range or has size 0.
    """
    return LogNormalizedExponential.apply(x, axis=_softmax_axis("log_softmax", x, axis))
