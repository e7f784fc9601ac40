"""Indexing: ``x[index]`` (basic slices, integer arrays, boolean masks) and its adjoint.

``GetItem`` and ``IndexAdd`` are each other's backward, so indexing has
gradients of every order.  Repeated integer indices accumulate (``add.at``).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import DTypeError, ShapeError


def normalize_index(index: Any, op: str = "getitem") -> Any:
    """Replace Tensors and lists inside ``index`` by backend arrays NumPy/CuPy understand."""
    if isinstance(index, tuple):
        return tuple(_index_item(i, op) for i in index)
    return _index_item(index, op)


def _index_item(i: Any, op: str) -> Any:
    if isinstance(i, Tensor):
        if i.dtype.kind not in "iub":
            raise DTypeError(f"{op}: expected integer or bool index tensors, got dtype {i.dtype}")
        return i.data
    if isinstance(i, list):
        try:
            arr = numpy.asarray(i)
        except ValueError:  # a ragged nested list
            raise TypeError(f"{op}: expected a rectangular list of indices, got {i!r}") from None
        if arr.size and arr.dtype.kind not in "iub":
            raise TypeError(f"{op}: expected integer or bool indices, got {i!r}")
        return arr.astype(numpy.int64) if arr.size == 0 else arr
    if isinstance(i, (float, numpy.floating)):
        raise TypeError(f"{op}: expected integer indices, got float {i!r}")
    return i


class GetItem(Function):
    """``y = x[index]``; ``gx = index_add(zeros(x.shape), index, gy)``."""

    @staticmethod
    def forward(ctx: Function, x: Any, index: Any) -> Any:
        ctx.x_shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return ctx.xp.index_add(ctx.x_shape, ctx.index, gy)


class IndexAdd(Function):
    """``y = zeros(shape); y[index] += g``; its backward is ``gy[index]``."""

    @staticmethod
    def forward(ctx: Function, g: Any, shape: tuple, index: Any) -> Any:
        ctx.index = index
        return ctx.xp.index_add(shape, index, g)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return gy[ctx.index]


def _getitem_samples(rng: Any) -> list:
    x = rng.normal(size=(4, 5))
    return [
        sample(x, (slice(1, 3), slice(None, None, 2)), note="basic slices"),
        sample(x, 2, note="integer"),
        sample(x, numpy.array([0, 2, 2, 3]), note="integer array with repeats"),
        sample(x, (numpy.array([0, 1, 3]), numpy.array([4, 0, 2])), note="paired integer arrays"),
        sample(x, x > 0.3, note="boolean mask"),
        sample(rng.normal(size=(2, 3, 4)), (Ellipsis, None, 1), note="ellipsis and newaxis"),
    ]


@register("getitem", methods=("__getitem__",), samples=_getitem_samples)
def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]``: slices, ints, None, Ellipsis, integer arrays/tensors and bool masks."""
    index = normalize_index(index)
    try:
        return GetItem.apply(x, index=index)
    except (IndexError, ValueError) as e:  # out of range, wrong mask shape, a zero slice step
        raise ShapeError(f"getitem: index {index!r} is invalid for a tensor of shape {tuple(x.shape)}: {e}") from None


def _index_add_samples(rng: Any) -> list:
    return [sample(rng.normal(size=(4,)), (3, 5), (numpy.array([0, 2, 2, 1]), 1))]


@register("index_add", samples=_index_add_samples)
def index_add(g: Tensor, shape: tuple, index: Any) -> Tensor:
    """Zeros of ``shape`` with ``g`` added at ``index`` (the adjoint of indexing)."""
    if not isinstance(g, Tensor):
        raise TypeError(f"index_add: expected a Tensor, got {type(g).__name__}")
    shape = tuple(shape)
    if not all(isinstance(s, (int, numpy.integer)) and s >= 0 for s in shape):
        raise ShapeError(f"index_add: expected a shape of non-negative ints, got {shape}")
    index = normalize_index(index, "index_add")
    try:
        return IndexAdd.apply(g, shape=shape, index=index)
    except (IndexError, ValueError) as e:  # an index out of range, or g not of the indexed shape
        raise ShapeError(
            f"index_add: cannot add a gradient of shape {tuple(g.shape)} at index {index!r} of a zeros "
            f"tensor of shape {shape}: {e}"
        ) from None
