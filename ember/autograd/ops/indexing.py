"""Indexing: ``x[index]`` (basic slices, integer arrays, boolean masks) and its adjoint.

``GetItem`` and ``IndexAdd`` are each other's backward, so indexing has
gradients of every order.  Repeated integer indices accumulate (``add.at``).
Index arrays separated by a slice follow PyTorch's rule, not NumPy's: integers
select first, so ``x[0, :, idx]`` of a ``(2, 3, 4)`` tensor is ``(3, len(idx))``.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import IndexDTypeError, IndexOutOfRangeError, ShapeError


def normalize_index(index: Any, op: str = "getitem") -> Any:
    """Replace Tensors and lists inside ``index`` by backend arrays NumPy/CuPy understand."""
    if isinstance(index, tuple):
        return tuple(_index_item(i, op) for i in index)
    return _index_item(index, op)


def _index_item(i: Any, op: str) -> Any:
    if isinstance(i, Tensor):
        if i.dtype.kind not in "iub":
            raise IndexDTypeError(f"{op}: expected integer or bool index tensors, got dtype {i.dtype}")
        return i.data
    if isinstance(i, list):
        try:
            arr = numpy.asarray(i)
        except ValueError:  # a ragged nested list
            raise TypeError(f"{op}: expected a rectangular list of indices, got {i!r}") from None
        if arr.size and arr.dtype.kind not in "iub":
            raise IndexDTypeError(f"{op}: expected integer or bool indices, got {i!r}")
        return arr.astype(numpy.int64) if arr.size == 0 else arr
    if isinstance(i, (float, numpy.floating)):
        raise IndexDTypeError(f"{op}: expected integer indices, got float {i!r}")
    return i


class GetItem(Function):
    """``y = x[index]``; ``gx = index_add(zeros(x.shape), index, gy)``.

    Also the base of every op that gathers by a precomputed index (gather,
    diagonal, take), so they share this forward/backward pair and its higher orders.
    """

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
    split = _integers_first(index)
    if split is not None:
        return getitem(getitem(x, split[0]), split[1])
    try:
        return GetItem.apply(x, index=index)
    except (IndexError, ValueError) as e:  # out of range, wrong mask shape, a zero slice step
        kind = IndexOutOfRangeError if isinstance(e, IndexError) else ShapeError
        raise kind(f"getitem: index {index!r} is invalid for a tensor of shape {tuple(x.shape)}: {e}") from None


def _is_integer(i: Any) -> bool:
    if isinstance(i, (int, numpy.integer)):
        return not isinstance(i, bool)
    return getattr(i, "ndim", None) == 0 and i.dtype.kind in "iu"


def _integers_first(index: Any) -> tuple | None:
    """PyTorch's order for an index mixing integers with index arrays: ``(integers, the rest)``, else None.

    NumPy counts an integer as an index array, so ``x[0, :, idx]`` puts the
    broadcast axis first; PyTorch selects with the integers first and then
    indexes what is left.  Splitting the index in two reproduces that.
    """
    if type(index) is not tuple or not any(_is_integer(i) for i in index):
        return None
    if not any(getattr(i, "ndim", 0) > 0 for i in index):
        return None  # no index array: NumPy and PyTorch agree
    first, rest = [], []
    for i in index:
        if _is_integer(i):
            first.append(int(i))
        elif i is None:
            rest.append(i)
        elif i is Ellipsis:
            first.append(i)
            rest.append(i)
        else:  # a slice or an index array (a bool mask spans as many axes as it has)
            first.extend([slice(None)] * (i.ndim if getattr(i, "dtype", None) == bool else 1))
            rest.append(i)
    return tuple(first), tuple(rest)


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
