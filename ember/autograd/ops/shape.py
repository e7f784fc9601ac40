"""Shape ops: reshape, transpose/permute, broadcast_to, cat, stack and their sugar.

Each primitive's backward is the inverse shape op (reshape back, inverse
permutation, sum over broadcast axes, slices of the gradient).  squeeze,
unsqueeze, flatten, view and expand are compositions of these primitives.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.operands import normalize_axes, normalize_axis
from ember.autograd.registry import accepts_dim, register, sample
from ember.autograd.tensor import Tensor
from ember.errors import DeviceMismatchError, DTypeError, ShapeError


class Reshape(Function):
    """``y = x.reshape(shape)``; ``gx = gy.reshape(x.shape)``."""

    @staticmethod
    def forward(ctx: Function, x: Any, shape: tuple) -> Any:
        ctx.x_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return gy.reshape(ctx.x_shape)


class Transpose(Function):
    """``y = x.transpose(axes)``; ``gx = gy.transpose(argsort(axes))``."""

    @staticmethod
    def forward(ctx: Function, x: Any, axes: tuple) -> Any:
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return ctx.xp.transpose(gy, tuple(numpy.argsort(ctx.axes).tolist()))


class BroadcastTo(Function):
    """``y = broadcast_to(x, shape)``; ``gx = sum_to(gy, x.shape)`` (done by the engine)."""

    @staticmethod
    def forward(ctx: Function, x: Any, shape: tuple) -> Any:
        return ctx.xp.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return gy


def _shape_arg(shape: tuple) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


@register("reshape", methods=("reshape", "view"), samples=lambda rng: [
    sample(rng.normal(size=(2, 6)), (3, 4)), sample(rng.normal(size=(2, 3, 2)), (-1,)),
    sample(rng.normal(size=(4,)), (2, 1, 2))])
def reshape(x: Tensor, *shape: Any) -> Tensor:
    """A tensor with the same data in ``shape`` (one entry may be -1)."""
    shape = _shape_arg(shape)
    size = x.data.size
    known = math.prod(s for s in shape if s != -1)
    if shape.count(-1) > 1 or any(s < -1 for s in shape):
        bad = True
    elif -1 in shape:
        bad = known == 0 or size % known != 0
    else:
        bad = known != size
    if bad:
        raise ShapeError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} ({size} elements) into {shape}")
    if tuple(x.shape) == shape:
        return x if not x.requires_grad else Reshape.apply(x, shape=shape)
    return Reshape.apply(x, shape=shape)


view = reshape


@register("transpose", methods=("transpose",), samples=lambda rng: [
    sample(rng.normal(size=(3, 4)), 0, 1), sample(rng.normal(size=(2, 3, 4)), 0, 2),
    sample(rng.normal(size=(2, 3, 4)), -1, 1), sample(rng.normal(size=(3, 4)), 1, 1, note="same axis: identity")])
def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap axes ``dim0`` and ``dim1`` (PyTorch's ``transpose``; ``permute`` reorders all axes).

    Unlike NumPy's ``transpose(*axes)``, two arguments always mean a swap, on a
    2-d tensor too.  Backward: ``gx = gy`` with the same two axes swapped back.
    """
    return _swap("transpose", x, dim0, dim1)


def _swap(op: str, x: Tensor, dim0: Any, dim1: Any) -> Tensor:
    nd = x.ndim
    if nd == 0:  # PyTorch accepts dims 0 and -1 on a 0-d tensor: nothing to swap
        for d in (dim0, dim1):
            normalize_axes(op, d, 0)
        return x
    a, b = normalize_axis(op, dim0, nd), normalize_axis(op, dim1, nd)
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return Transpose.apply(x, axes=tuple(perm))


def permute(x: Tensor, *axes: Any) -> Tensor:
    """Reorder all axes (``permute(2, 0, 1)``)."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    nd = x.ndim
    if len(axes) != nd or sorted(normalize_axes("permute", axes, nd) or ()) != list(range(nd)):
        raise ShapeError(f"permute: expected a permutation of {nd} axes for shape {tuple(x.shape)}, got {axes}")
    return Transpose.apply(x, axes=tuple(int(a) % nd for a in axes))


def swapaxes(x: Tensor, a: int, b: int) -> Tensor:
    """Exchange axes ``a`` and ``b`` (NumPy's name for ``transpose``)."""
    return _swap("swapaxes", x, a, b)


Tensor.permute = permute
Tensor.swapaxes = swapaxes
Tensor.T = property(lambda self: permute(self, tuple(range(self.ndim))[::-1]),
                    doc="All axes reversed (the matrix transpose for 2-d).")
Tensor.mT = property(lambda self: swapaxes(self, -1, -2), doc="Transpose of the last two axes.")


@register("broadcast_to", methods=("broadcast_to",), samples=lambda rng: [
    sample(rng.normal(size=(3, 1)), (2, 3, 4)), sample(rng.normal(size=(4,)), (3, 4))])
def broadcast_to(x: Tensor, *shape: Any) -> Tensor:
    """Broadcast ``x`` to ``shape`` (NumPy rules; explicit, never implicit)."""
    shape = _shape_arg(shape)
    try:
        numpy.broadcast_shapes(tuple(x.shape), shape)
        ok = len(shape) >= x.ndim and all(
            s == d or s == 1 for s, d in zip(tuple(x.shape)[::-1], shape[::-1])
        )
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {tuple(x.shape)} to {shape}")
    return BroadcastTo.apply(x, shape=shape)


def expand(x: Tensor, *shape: Any) -> Tensor:
    """PyTorch's ``expand``: like ``broadcast_to`` where -1 keeps a size."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    return broadcast_to(x, shape)


Tensor.expand = expand


def squeeze(x: Tensor, axis: Any = None) -> Tensor:
    """Drop size-1 axes: all, or those among ``axis`` (one of another size stays, as in PyTorch)."""
    shape = tuple(x.shape)
    axes = normalize_axes("squeeze", axis, x.ndim)
    if axes is None:
        axes = tuple(i for i, s in enumerate(shape) if s == 1)
    return reshape(x, tuple(s for i, s in enumerate(shape) if i not in axes or s != 1))


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert an axis of size 1 at ``axis`` (``-1`` appends)."""
    nd = x.ndim + 1
    axis = normalize_axis("unsqueeze", axis, nd)
    shape = list(x.shape)
    shape.insert(axis, 1)
    return reshape(x, tuple(shape))


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` (inclusive) into one (``flatten(1)`` keeps the batch axis).

    When the range holds one axis nothing is merged and ``x`` itself comes back,
    as in PyTorch (no op is recorded: ``Flatten`` on a batch of vectors is free).
    """
    start, end = start_dim, end_dim
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = normalize_axis("flatten", start, x.ndim), normalize_axis("flatten", end, x.ndim)
    if start > end:
        raise ShapeError(f"flatten: start axis {start} is after end axis {end}")
    if start == end:
        return x
    shape = x.data.shape
    merged = math.prod(shape[start:end + 1])
    return Reshape.apply(x, shape[:start] + (merged,) + shape[end + 1:])  # valid by construction: no checks


squeeze = accepts_dim(squeeze)
unsqueeze = accepts_dim(unsqueeze)
Tensor.squeeze = squeeze
Tensor.unsqueeze = unsqueeze
Tensor.flatten = flatten


class Cat(Function):
    """``y = concatenate(xs, axis)``; each ``gx_i`` is its slice of ``gy``."""

    @staticmethod
    def forward(ctx: Function, *xs: Any, axis: int) -> Any:
        ctx.axis = axis
        ctx.bounds = numpy.cumsum([0] + [x.shape[axis] for x in xs]).tolist()
        return ctx.backend.ops.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        lead = (slice(None),) * ctx.axis
        b = ctx.bounds
        return tuple(
            gy[lead + (slice(b[i], b[i + 1]),)] if need else None
            for i, need in enumerate(ctx.needs_input_grad)
        )


class Stack(Function):
    """``y = stack(xs, axis)``; each ``gx_i = gy`` indexed at ``i`` along ``axis``."""

    @staticmethod
    def forward(ctx: Function, *xs: Any, axis: int) -> Any:
        ctx.axis = axis
        return ctx.backend.ops.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        lead = (slice(None),) * ctx.axis
        return tuple(gy[lead + (i,)] if need else None for i, need in enumerate(ctx.needs_input_grad))


def _check_sequence(op: str, tensors: Sequence[Tensor]) -> list:
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected Tensors, got {type(t).__name__} at position {i}")
    first = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        if t.device != first.device:
            raise DeviceMismatchError(f"{op}: expected all tensors on {first.device}, got {t.device} at position {i}")
        if t.dtype != first.dtype:
            raise DTypeError(f"{op}: expected all tensors of dtype {first.dtype}, got {t.dtype} at position {i}")
    return tensors


@register("cat", samples=lambda rng: [
    sample([rng.normal(size=(2, 3)), rng.normal(size=(1, 3))], axis=0),
    sample([rng.normal(size=(2, 3)), rng.normal(size=(2, 2)), rng.normal(size=(2, 1))], axis=-1)])
def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Concatenate along an existing ``axis``; other axes must match."""
    tensors = _check_sequence("cat", tensors)
    nd = tensors[0].ndim
    if nd == 0:
        raise ShapeError("cat: expected tensors of at least 1 dimension, got a 0-d tensor; use stack for scalars")
    axis = normalize_axis("cat", axis, nd)
    ref = tuple(tensors[0].shape)
    for i, t in enumerate(tensors):
        s = tuple(t.shape)
        if len(s) != nd or s[:axis] + s[axis + 1:] != ref[:axis] + ref[axis + 1:]:
            raise ShapeError(f"cat: expected shapes matching {ref} except on axis {axis}, got {s} at position {i}")
    return Cat.apply(*tensors, axis=axis)


concatenate = cat


@register("stack", samples=lambda rng: [
    sample([rng.normal(size=(2, 3)), rng.normal(size=(2, 3))], axis=0),
    sample([rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))], axis=-1)])
def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Stack equal-shaped tensors along a new ``axis``."""
    tensors = _check_sequence("stack", tensors)
    ref = tuple(tensors[0].shape)
    for i, t in enumerate(tensors):
        if tuple(t.shape) != ref:
            raise ShapeError(f"stack: expected every tensor of shape {ref}, got {tuple(t.shape)} at position {i}")
    axis = normalize_axis("stack", axis, len(ref) + 1)
    return Stack.apply(*tensors, axis=axis)
