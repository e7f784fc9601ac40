"""Reductions that are not linear in ``x``: ``std``, ``prod`` and ``logsumexp``.

Each is one Function whose backward uses differentiable ops only, so all
three have second derivatives.  float16 inputs are computed in float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.activation import compute_dtype, upcast
from ember.autograd.ops.operands import normalize_axes, require_floating, to_default_float
from ember.autograd.ops.reduce import _count, _kept_shape, _reduced_shape
from ember.autograd.ops.scan import exclusive_cumprod
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor


def _save_reduced(ctx: Function, x: Any, y: Any, keepdims: bool) -> Any:
    """``y`` (computed with kept axes) squeezed unless ``keepdims``, in ``x``'s dtype; saves ``(x, y)``."""
    y = (y if keepdims else y.reshape(_reduced_shape(x.shape, ctx.axes))).astype(x.dtype, copy=False)
    ctx.save_for_backward(x, y)
    return y


def _saved_with_kept_axes(ctx: Function, gy: Any) -> tuple:
    """``(x, y, gy, xp)`` for a backward: ``y`` and ``gy`` reshaped to keep the reduced axes, for broadcasting."""
    x, y = ctx.saved_tensors
    xp, kept = ctx.xp, _kept_shape(ctx.x_shape, ctx.axes)
    return x, xp.reshape(y, kept), xp.reshape(gy, kept), xp


class Std(Function):
    """``y = sqrt(sum((x - mean)**2) / max(n - correction, 0))``.

    Backward: ``gx = gy * (x - mean) / ((n - correction) * y)``, and 0 where ``y == 0`` (as PyTorch).
    """

    @staticmethod
    def forward(ctx: Function, x: Any, axes: tuple | None, keepdims: bool, correction: float) -> Any:
        z = upcast(x)
        ctx.axes, ctx.x_shape, ctx.n = axes, x.shape, _count(x.shape, axes)
        ctx.divisor = max(ctx.n - correction, 0)
        d = z - z.mean(axis=axes, keepdims=True)
        with numpy.errstate(divide="ignore", invalid="ignore"):  # no degrees of freedom: inf or nan, as torch
            y = ctx.backend.xp.sqrt((d * d).sum(axis=axes, keepdims=True) / ctx.divisor)
        return _save_reduced(ctx, x, y, keepdims)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        x, yk, gk, xp = _saved_with_kept_axes(ctx, gy)
        mean = xp.sum(x, axis=ctx.axes, keepdims=True) * (1.0 / max(ctx.n, 1))
        with numpy.errstate(divide="ignore", invalid="ignore"):
            scale = xp.where(yk == 0, 0, gk / (yk * ctx.divisor))
        return scale * (x - mean)


class Prod(Function):
    """``y = prod(x, axes)``; ``gx_i = gy * prod_{j != i} x_j``.

    The products of the elements before and after ``i`` give it without division, exact with zeros.
    """

    @staticmethod
    def forward(ctx: Function, x: Any, axes: tuple | None, keepdims: bool) -> Any:
        ctx.axes, ctx.x_shape = axes, x.shape
        ctx.save_for_backward(x)
        y = x.prod(axis=axes, keepdims=keepdims, dtype=compute_dtype(x.dtype))
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (x,) = ctx.saved_tensors
        xp, shape = ctx.xp, ctx.x_shape
        reduced = tuple(range(len(shape))) if ctx.axes is None else ctx.axes
        kept = tuple(i for i in range(len(shape)) if i not in reduced)
        perm = kept + reduced  # the reduced axes last, flattened into one of m elements
        lead = tuple(shape[i] for i in kept)
        m = math.prod(shape[i] for i in reduced)
        flat = xp.reshape(xp.transpose(x, perm), lead + (m,))
        k = len(lead)
        others = exclusive_cumprod(ctx, flat, k) * exclusive_cumprod(ctx, flat, k, reverse=True)
        gx = xp.reshape(xp.reshape(gy, lead + (1,)) * others, tuple(shape[i] for i in perm))
        return xp.transpose(gx, tuple(numpy.argsort(perm).tolist()))


class LogSumExp(Function):
    """``y = m + log(sum(exp(x - m)))`` with ``m = max(x)`` (finite for +-1e4); ``gx = gy * exp(x - y)``."""

    @staticmethod
    def forward(ctx: Function, x: Any, axes: tuple | None, keepdims: bool) -> Any:
        xp = ctx.backend.xp
        z = upcast(x)
        ctx.axes, ctx.x_shape = axes, x.shape
        if _count(x.shape, axes) == 0:  # an empty sum: log(0) = -inf, as torch
            m = xp.zeros(_kept_shape(x.shape, axes), dtype=z.dtype)
        else:
            m = z.max(axis=axes, keepdims=True)
            m = xp.where(xp.isfinite(m), m, 0)  # all -inf (or an inf) stays exact without inf - inf
        with numpy.errstate(divide="ignore"):
            y = xp.log(xp.exp(z - m).sum(axis=axes, keepdims=True)) + m
        return _save_reduced(ctx, x, y, keepdims)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        x, yk, gk, xp = _saved_with_kept_axes(ctx, gy)
        return gk * xp.exp(x - yk)


def _std_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(4, 5))),
        sample(rng.normal(size=(4, 5)), axis=0),
        sample(rng.normal(size=(2, 3, 4)), axis=(0, 2), keepdims=True, correction=0),
        sample(rng.normal(size=(3, 4)), axis=-1, unbiased=False),
    ]


@register("std", methods=("std",), samples=_std_samples)
def std(x: Tensor, axis: Any = None, keepdims: bool = False, correction: float = 1,
        unbiased: bool | None = None) -> Tensor:
    """Standard deviation over ``axis``: ``sqrt(var(x, axis, correction))`` (Bessel's ``correction=1`` default).

    Args:
        x: any shape, floating.
        axis: int, tuple or None (all); ``dim`` too.
        keepdims: keep reduced axes as size 1; ``keepdim`` too.
        correction: subtracted from the element count (``unbiased=False`` means 0).

    Returns:
        The reduced tensor; ``inf``/``nan`` where ``n - correction <= 0``, as PyTorch.
        Backward: ``gx = gy (x - mean) / ((n - correction) y)``, 0 where ``y == 0``.

    Raises:
        DTypeError: ``x`` is not floating.  ShapeError: an axis is out of range or repeated.
    """
    require_floating("std", x)
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = normalize_axes("std", axis, x.ndim)
    return Std.apply(x, axes=axes, keepdims=bool(keepdims), correction=correction)


def _prod_samples(rng: Any) -> list:
    with_zero = rng.uniform(0.5, 1.5, (3, 4)) * rng.choice([-1, 1], (3, 4))
    with_zero[0, 1] = with_zero[2, 0] = with_zero[2, 3] = 0.0  # one zero in a row, two in another
    return [
        sample(rng.uniform(0.5, 1.5, (3, 4))),
        sample(rng.uniform(-1.5, 1.5, (2, 3, 4)), axis=1),
        sample(rng.uniform(0.5, 1.5, (2, 3, 4)), axis=(0, 2), keepdims=True),
        sample(with_zero, axis=1, note="zeros in x"),
        sample(numpy.asarray(rng.normal()), note="0-d"),
    ]


@register("prod", methods=("prod",), samples=_prod_samples)
def prod(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Product over ``axis`` (``dim``); integer and bool tensors multiply in int64 (no gradient).

    Args:
        x: any shape.
        axis: int, tuple or None (all).
        keepdims: keep reduced axes as size 1.

    Returns:
        The reduced tensor. Backward: ``gx_i = gy prod_{j != i} x_j`` (exact with zeros).

    Raises:
        ShapeError: an axis is out of range or repeated.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"prod: expected a Tensor, got {type(x).__name__}")
    axes = normalize_axes("prod", axis, x.ndim)
    if x.dtype.kind != "f":
        out = x.data.prod(axis=axes, keepdims=bool(keepdims), dtype=numpy.int64)
        return Tensor._make(numpy.asarray(out) if isinstance(out, numpy.generic) else out)
    return Prod.apply(x, axes=axes, keepdims=bool(keepdims))


def _logsumexp_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(3, 4)), axis=1),
        sample(rng.normal(size=(2, 3, 4)), axis=(0, 2), keepdims=True),
        sample(rng.normal(size=(4,)) * 50.0, axis=0, note="wide range"),
        sample(rng.normal(size=(3, 4))),
    ]


@register("logsumexp", methods=("logsumexp",), samples=_logsumexp_samples)
def logsumexp(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` over ``axis`` (``dim``), computed as ``max + log(sum(exp(x - max)))``.

    Args:
        x: any shape; integer and bool tensors compute in the default float dtype.
        axis: int, tuple or None (all).
        keepdims: keep reduced axes as size 1.

    Returns:
        The reduced tensor. Backward: ``gx = gy * exp(x - y)`` (the softmax).

    Raises:
        ShapeError: an axis is out of range or repeated.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"logsumexp: expected a Tensor, got {type(x).__name__}")
    axes = normalize_axes("logsumexp", axis, x.ndim)
    return LogSumExp.apply(to_default_float(x), axes=axes, keepdims=bool(keepdims))
