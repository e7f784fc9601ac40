"""Scans along one axis: ``cumsum`` and ``cumprod``.

Both backwards are written with ops that are themselves differentiable
(indexing, products, the scans), so they have gradients of every order.
``cumprod``'s backward is exact when ``x`` has zeros: it never divides by ``x``.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.activation import compute_dtype
from ember.autograd.ops.operands import normalize_axes
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor


def flip(g: Any, axis: int) -> Any:
    """``g`` (array or Tensor) reversed along ``axis``."""
    return g[(slice(None),) * axis + (slice(None, None, -1),)]


def _along(g: Any, axis: int, i: int) -> Any:
    return g[(slice(None),) * axis + (i,)]


def _stack(ctx: Function, parts: list, axis: int) -> Any:
    if ctx._create_graph:
        from ember.autograd.ops.shape import stack

        return stack(parts, axis)
    return ctx.backend.ops.stack(parts, axis=axis)


class Cumsum(Function):
    """``y_i = sum_{j <= i} x_j`` along ``axis``; ``gx_i = sum_{j >= i} gy_j`` (a reversed cumsum)."""

    @staticmethod
    def forward(ctx: Function, x: Any, axis: int) -> Any:
        ctx.axis = axis
        return x.cumsum(axis=axis, dtype=compute_dtype(x.dtype)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        axis = ctx.axis
        if ctx._create_graph:
            return flip(cumsum(flip(gy, axis), axis), axis)
        return flip(Cumsum.forward(ctx, flip(gy, axis), axis), axis)


class Cumprod(Function):
    """``y_i = prod_{j <= i} x_j`` along ``axis``.

    Backward: ``gx_i = L_i * S_i`` with ``L_i = prod_{k < i} x_k`` and
    ``S_i = gy_i + x_{i+1} * S_{i+1}``: no division, so zeros in ``x`` are exact.
    """

    @staticmethod
    def forward(ctx: Function, x: Any, axis: int) -> Any:
        ctx.axis = axis
        ctx.save_for_backward(x)
        return x.cumprod(axis=axis, dtype=compute_dtype(x.dtype)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (x,) = ctx.saved_tensors
        axis, n = ctx.axis, x.shape[ctx.axis]
        if n == 0:
            return gy
        xs = [_along(x, axis, i) for i in range(n)]
        gs = [_along(gy, axis, i) for i in range(n)]
        suffix = [None] * n
        suffix[n - 1] = gs[n - 1]
        for i in range(n - 2, -1, -1):
            suffix[i] = gs[i] + xs[i + 1] * suffix[i + 1]
        parts, left = [suffix[0]], None
        for i in range(1, n):
            left = xs[0] if left is None else left * xs[i - 1]
            parts.append(left * suffix[i])
        return _stack(ctx, parts, axis)


def _scan_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(5,)), 0),
        sample(rng.normal(size=(3, 4)), axis=1),
        sample(rng.normal(size=(2, 3, 2)), -3, note="first axis by a negative index"),
        sample(numpy.asarray(rng.normal()), 0, note="0-d"),
    ]


def _cumprod_samples(rng: Any) -> list:
    with_zero = rng.normal(size=(3, 4))
    with_zero[1, 2] = with_zero[2, 0] = with_zero[2, 3] = 0.0
    return _scan_samples(rng) + [sample(with_zero, 1, note="zeros in x")]


def _scan(op: str, fn: type, x: Tensor, axis: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if axis is None:
        raise TypeError(f"{op}: expected an int axis (dim), got None")
    axes = normalize_axes(op, axis, x.ndim)
    if x.dtype.kind == "b" or (x.dtype.kind in "iu" and x.dtype.itemsize < 8):
        x = x.long()  # PyTorch: integer and bool scans accumulate in int64
    if axes is None:  # a 0-d tensor: its single element
        return fn.apply(x.reshape(1), axis=0).reshape(())
    return fn.apply(x, axis=axes[0])


_SCAN_DOC = """Running {what} along ``axis`` (``dim``); integers accumulate in int64 (no gradient).

    Args:
        x: any shape; floating for a gradient.
        axis: the scanned axis.

    Returns:
        ``x``'s shape{returns}

    Raises:
        ShapeError: ``axis`` out of range.
    """


def _scan_op(name: str, fn: type, samples: Any, what: str, returns: str) -> Any:
    """Register the scan ``name`` (``fn`` along one axis), its docstring filled from ``_SCAN_DOC``."""

    def op(x: Tensor, axis: int) -> Tensor:
        return _scan(name, fn, x, axis)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = _SCAN_DOC.format(what=what, returns=returns)
    return register(name, methods=(name,), samples=samples)(op)


cumsum = _scan_op("cumsum", Cumsum, _scan_samples, "sums",
                  "; float dtypes keep theirs. Backward: ``gx = flip(cumsum(flip(gy)))``.")
cumprod = _scan_op("cumprod", Cumprod, _cumprod_samples, "products",
                   ". Backward: ``gx_i = prod_{k<i} x_k * sum_{j>=i} gy_j prod_{i<k<=j} x_k``.")


def exclusive_cumprod(ctx: Function, x: Any, axis: int, reverse: bool = False) -> Any:
    """``prod_{k < i} x_k`` along ``axis`` (``k > i`` with ``reverse``).

    On arrays normally; on Tensors under ``create_graph``, through the differentiable ``cumprod``.
    """
    if reverse:
        return flip(exclusive_cumprod(ctx, flip(x, axis), axis), axis)
    n = x.shape[axis]
    head = (slice(None),) * axis
    xp = ctx.backend.xp
    if ctx._create_graph:
        from ember.autograd.ops.shape import cat

        ones = Tensor._make(xp.ones_like(x.data[head + (slice(0, 1),)]))
        return cat([ones, cumprod(x[head + (slice(0, n - 1),)], axis)], axis)
    ones = xp.ones_like(x[head + (slice(0, 1),)])
    return xp.concatenate([ones, x[head + (slice(0, n - 1),)].cumprod(axis=axis)], axis=axis)

