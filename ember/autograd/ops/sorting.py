"""Order ops: ``sort``, ``argsort`` and ``topk``.

``sort`` and ``topk`` return ``(values, indices)`` like PyTorch; the values are
differentiable (each gradient goes back to the element it came from), the
int64 indices are not.  Ties keep their input order (a stable sort).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.operands import ValuesIndices, normalize_axes
from ember.autograd.registry import accepts_dim, register, sample
from ember.autograd.tensor import Tensor
from ember.errors import ShapeError


def _order(xp: Any, x: Any, axis: int, descending: bool) -> Any:
    """Stable argsort of ``x`` along ``axis``; descending keeps ties in input order too.

    NumPy is asked for its stable sort; CuPy's ``argsort`` takes no ``kind`` and is always stable.
    """
    if descending:
        x = -(x.astype(numpy.int64) if x.dtype.kind in "ub" else x)
    order = numpy.argsort(x, axis=axis, kind="stable") if type(x) is numpy.ndarray else xp.argsort(x, axis=axis)
    return order.astype(numpy.int64, copy=False)


class _Gather(Function):
    """Values picked from ``x`` by indices along an axis; ``gx`` = zeros with ``gy`` added back at them."""

    @staticmethod
    def pick(ctx: Function, x: Any, idx: Any, axis: int) -> tuple:
        xp, nd = ctx.backend.xp, idx.ndim
        # Open grids (one arange per other axis, shaped to broadcast) beside idx on the picked axis.
        grids = [xp.arange(n).reshape((1,) * i + (n,) + (1,) * (nd - i - 1)) for i, n in enumerate(idx.shape)]
        ctx.index = tuple(grids[:axis]) + (idx,) + tuple(grids[axis + 1:])
        ctx.x_shape = x.shape
        return x[ctx.index], idx

    @staticmethod
    def backward(ctx: Function, gv: Any, gi: Any = None) -> Any:
        return ctx.xp.index_add(ctx.x_shape, ctx.index, gv)


class Sort(_Gather):
    """``values, indices = sort(x, axis)``; ``gx[indices] = gvalues`` (a permutation of the gradient)."""

    @staticmethod
    def forward(ctx: Function, x: Any, axis: int, descending: bool) -> tuple:
        return _Gather.pick(ctx, x, _order(ctx.backend.xp, x, axis, descending), axis)


class TopK(_Gather):
    """The ``k`` largest (or smallest) along ``axis``; ``gx`` = ``gvalues`` at their indices, 0 elsewhere."""

    @staticmethod
    def forward(ctx: Function, x: Any, k: int, axis: int, largest: bool) -> tuple:
        idx = _order(ctx.backend.xp, x, axis, largest)
        return _Gather.pick(ctx, x, idx[(slice(None),) * axis + (slice(0, k),)], axis)


class ArgExtreme(_Gather):
    """``max``/``min`` along one axis as ``(values, indices)``; the gradient goes to the index returned
    (the first of tied elements), as PyTorch's ``max(dim)``, not shared among ties."""

    @staticmethod
    def forward(ctx: Function, x: Any, axis: int, largest: bool) -> tuple:
        idx = (x.argmax if largest else x.argmin)(axis=axis, keepdims=True).astype(numpy.int64, copy=False)
        return _Gather.pick(ctx, x, idx, axis)


def _one_axis(op: str, x: Any, axis: Any) -> tuple:
    """``(x as at least 1-d, the axis, whether x was 0-d)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if isinstance(axis, (tuple, list)):
        raise TypeError(f"{op}: expected one int axis (dim), got {axis!r}")
    axes = normalize_axes(op, axis, x.ndim)
    if axes is None:
        return x.reshape(1), 0, True
    return x, axes[0], False


def _sort_samples(rng: Any) -> list:
    return [
        sample(rng.permutation(12).reshape(3, 4) * 0.3 + 0.1, note="last axis"),
        sample(rng.permutation(12).reshape(3, 4) * 0.3 - 1.0, axis=0, descending=True),
        sample(rng.normal(size=(2, 3, 2)), axis=1),
    ]


@register("sort", methods=("sort",), samples=_sort_samples)
def sort(x: Tensor, axis: int = -1, descending: bool = False, stable: bool = True) -> ValuesIndices:
    """Sort along ``axis`` (``dim``): ``(values, indices)`` with ``values = x`` gathered at ``indices``.

    Args:
        x: any shape; integer tensors sort too (their values carry no gradient).
        axis: the sorted axis.
        descending: largest first.
        stable: accepted for PyTorch code; the sort is always stable.

    Returns:
        ``ValuesIndices(values, indices)``, both of ``x``'s shape; indices int64.
        Backward: the values' gradient scattered back to ``indices``.

    Raises:
        ShapeError: ``axis`` out of range.
    """
    x1, ax, was_0d = _one_axis("sort", x, axis)
    values, indices = Sort.apply(x1, axis=ax, descending=bool(descending))
    if was_0d:
        return ValuesIndices(values.reshape(()), indices.reshape(()))
    return ValuesIndices(values, indices)


def argsort(x: Tensor, axis: int = -1, descending: bool = False, stable: bool = True) -> Tensor:
    """The int64 indices that sort ``x`` along ``axis`` (``dim``); ties keep their order. Not differentiable."""
    x1, ax, was_0d = _one_axis("argsort", x, axis)
    idx = Tensor._make(_order(_xp(x1), x1.data, ax, bool(descending)))
    return idx.reshape(()) if was_0d else idx


def _xp(t: Tensor) -> Any:
    from ember.backends.device import backend_of

    return backend_of(t.data).xp


argsort = accepts_dim(argsort)
Tensor.argsort = argsort


def _topk_samples(rng: Any) -> list:
    return [
        sample(rng.permutation(12).reshape(3, 4) * 0.3 + 0.1, 2),
        sample(rng.permutation(12).reshape(3, 4) * 0.3 - 1.0, 2, axis=0, largest=False),
        sample(rng.permutation(24).reshape(2, 3, 4) * 0.1, 1, axis=1),
    ]


@register("topk", methods=("topk",), samples=_topk_samples)
def topk(x: Tensor, k: int, axis: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:  # noqa: A002
    """The ``k`` largest (``largest=False``: smallest) elements along ``axis`` (``dim``), in order.

    Args:
        x: any shape with ``0 <= k <= x.shape[axis]``.
        k: how many to keep.
        axis: the searched axis.
        largest: the largest rather than the smallest.
        sorted: accepted for PyTorch code; the result is always sorted.

    Returns:
        ``ValuesIndices(values, indices)`` with ``k`` along ``axis``; indices int64.
        Backward: the values' gradient at ``indices``, 0 elsewhere.

    Raises:
        ShapeError: ``axis`` out of range or ``k`` outside ``[0, size]``.
    """
    x1, ax, was_0d = _one_axis("topk", x, axis)
    if isinstance(k, bool) or not isinstance(k, (int, numpy.integer)):
        raise TypeError(f"topk: expected an int k, got {k!r}")
    if not 0 <= k <= x1.shape[ax]:
        raise ShapeError(f"topk: expected k in [0, {x1.shape[ax]}] for axis {ax} of shape {tuple(x.shape)}, got {k}")
    values, indices = TopK.apply(x1, k=int(k), axis=ax, largest=bool(largest))
    if was_0d and k == 1:
        return ValuesIndices(values.reshape(()), indices.reshape(()))
    return ValuesIndices(values, indices)
