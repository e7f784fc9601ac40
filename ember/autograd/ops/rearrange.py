"""Rearranging ops: repeat, repeat_interleave, flip, roll and unflatten.

Each forward moves elements without arithmetic, so each backward moves the
gradient back: summing the copies (repeat, repeat_interleave), reversing the
same axes (flip), shifting the other way (roll) or reshaping (unflatten).
Backwards use indexing, reshape and sum only, so they work under
``create_graph`` as well.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.indexing import GetItem
from ember.autograd.ops.operands import normalize_axes, normalize_axis
from ember.autograd.ops.shape import reshape
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of
from ember.errors import DTypeError, ShapeError


def _tensor(op: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x


def _int_sequence(op: str, what: str, values: tuple) -> tuple:
    """``f(2, 3)`` or ``f((2, 3))`` as a tuple of Python ints."""
    if len(values) == 1 and isinstance(values[0], (tuple, list)):
        values = tuple(values[0])
    if not all(isinstance(v, (int, numpy.integer)) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{op}: expected integer {what}, got {values!r}")
    return tuple(int(v) for v in values)


class Repeat(Function):
    """``y = tile(x, repeats)``; ``gx`` sums ``gy`` over the copies: reshape to (r0, s0, r1, s1, ...), sum r."""

    @staticmethod
    def forward(ctx: Function, x: Any, repeats: tuple) -> Any:
        shape = (1,) * (len(repeats) - x.ndim) + tuple(x.shape)
        ctx.x_shape, ctx.interleaved = x.shape, tuple(v for r, s in zip(repeats, shape) for v in (r, s))
        spread = x.reshape(tuple(v for s in shape for v in (1, s)))
        tiled = ctx.xp.broadcast_to(spread, ctx.interleaved)
        return tiled.reshape(tuple(r * s for r, s in zip(repeats, shape)))

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        copies = tuple(range(0, len(ctx.interleaved), 2))
        return gy.reshape(ctx.interleaved).sum(axis=copies).reshape(ctx.x_shape)


@register("repeat", methods=("repeat",), samples=lambda rng: [
    sample(rng.normal(size=(2, 3)), 2, 1),
    sample(rng.normal(size=(2, 3)), (1, 3, 2), note="more repeats than dims"),
    sample(numpy.asarray(rng.normal()), 3, note="0-d")])
def repeat(input: Tensor, *sizes: Any) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """Tile ``input`` ``sizes[d]`` times along each dim (PyTorch's ``Tensor.repeat``, NumPy's ``tile``)."""
    x = _tensor("repeat", input)
    sizes = _int_sequence("repeat", "sizes", sizes)
    if len(sizes) < x.ndim:
        raise ShapeError(f"repeat: expected at least {x.ndim} sizes for a tensor of shape {tuple(x.shape)}, "
                         f"got {sizes}")
    if any(s < 0 for s in sizes):
        raise ValueError(f"repeat: expected non-negative sizes, got {sizes}")
    return Repeat.apply(x, repeats=sizes)


class Take(GetItem):
    """``y = x[index]`` for a fixed advanced ``index`` (the gathers of repeat_interleave and roll).

    ``gx = index_add(zeros(x.shape), index, gy)``: repeated positions sum their gradients.
    """


class RepeatInterleave(Take):
    """``y = repeat(x, repeats, axis=dim)``; ``gx`` sums each element's copies."""


def _repeat_counts(repeats: Any, n: int) -> numpy.ndarray:
    """The per-element repeat counts as a host int64 array of length ``n`` (checked non-negative)."""
    if isinstance(repeats, Tensor):
        if repeats.dtype.kind not in "iu":
            raise DTypeError(f"repeat_interleave: expected integer repeats, got dtype {repeats.dtype}")
        counts = numpy.asarray(repeats.numpy(), dtype=numpy.int64).reshape(-1)
        if counts.size == 1:
            counts = numpy.full((n,), counts[0])
        elif counts.size != n:
            raise ShapeError(f"repeat_interleave: expected {n} repeats (one per element along the dim), got "
                             f"shape {tuple(repeats.shape)}")
    elif isinstance(repeats, (int, numpy.integer)) and not isinstance(repeats, bool):
        counts = numpy.full((n,), int(repeats), dtype=numpy.int64)
    else:
        raise TypeError(f"repeat_interleave: expected an int or an integer Tensor as repeats, got {repeats!r}")
    if counts.size and int(counts.min()) < 0:
        raise ValueError(f"repeat_interleave: expected non-negative repeats, got {int(counts.min())}")
    return counts


def _repeated_arange(x: Tensor, counts: numpy.ndarray) -> Any:
    """``arange(len(counts))`` with element i repeated ``counts[i]`` times, on ``x``'s device."""
    return backend_of(x.data).asarray(numpy.repeat(numpy.arange(counts.size), counts))


@register("repeat_interleave", methods=("repeat_interleave",), samples=lambda rng: [
    sample(rng.normal(size=(2, 3)), 2, note="flattened"),
    sample(rng.normal(size=(2, 3)), 2, dim=1),
    sample(rng.normal(size=(3, 2)), Tensor._make(numpy.array([1, 0, 3])), dim=-2, note="per-element counts")])
def repeat_interleave(input: Tensor, repeats: Any = None, dim: int | None = None, *,  # noqa: A002
                      output_size: int | None = None) -> Tensor:
    """Repeat each element ``repeats`` times along ``dim`` (flattened when ``dim`` is None).

    ``repeat_interleave(counts)`` with only an integer tensor repeats ``arange(len(counts))``.
    """
    x = _tensor("repeat_interleave", input)
    if repeats is None:  # torch.repeat_interleave(repeats): the indices, each repeated
        if x.dtype.kind not in "iu" or x.ndim != 1:
            raise ShapeError(f"repeat_interleave: a lone argument must be a 1-d integer tensor of repeats, got "
                             f"shape {tuple(x.shape)} dtype {x.dtype}")
        return Tensor._make(_repeated_arange(x, _repeat_counts(x, x.shape[0])))
    if dim is None:
        x, dim = reshape(x, -1), 0
    dim = normalize_axis("repeat_interleave", dim, x.ndim)
    source = _repeated_arange(x, _repeat_counts(repeats, x.shape[dim]))
    if output_size is not None and output_size != source.shape[0]:
        raise ShapeError(f"repeat_interleave: output_size={output_size} does not match the {source.shape[0]} "
                         f"repeated elements")
    return RepeatInterleave.apply(x, index=(slice(None),) * dim + (source,))


class Flip(Function):
    """``y = x[::-1 on dims]``; ``gx = gy[::-1 on dims]`` (flipping is its own inverse)."""

    @staticmethod
    def forward(ctx: Function, x: Any, index: tuple) -> Any:
        ctx.index = index
        return x[index].copy()  # a copy, as in PyTorch: writing into y must not change x

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return gy[ctx.index]


@register("flip", methods=("flip",), samples=lambda rng: [
    sample(rng.normal(size=(3, 4)), (0,)), sample(rng.normal(size=(2, 3, 4)), (-1, 0))])
def flip(input: Tensor, *args: Any, dims: Any = None) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """Reverse the order of elements along ``dims`` (``flip(x, (0, 1))``, ``x.flip(0, 1)``, ``flip(x, dims=[0])``)."""
    x = _tensor("flip", input)
    if (dims is None) == (not args):
        raise TypeError(f"flip: expected the dims either positionally or as dims=, got {args!r} and dims={dims!r}")
    dims = _int_sequence("flip", "dims", args if dims is None else (dims,))
    axes = normalize_axes("flip", dims, x.ndim) or ()
    reverse = slice(None, None, -1)
    return Flip.apply(x, index=tuple(reverse if d in axes else slice(None) for d in range(x.ndim)))


class Roll(Take):
    """``y = roll(x, shifts, dims)`` as a gather; ``gx`` scatters ``gy`` back (the shift the other way)."""


def _roll_source(xp: Any, n: int, shift: int) -> Any:
    return (xp.arange(n) - shift) % max(n, 1)


@register("roll", methods=("roll",), samples=lambda rng: [
    sample(rng.normal(size=(3, 4)), 1, note="flattened"), sample(rng.normal(size=(3, 4)), -1, 1),
    sample(rng.normal(size=(2, 3, 4)), (2, -5), (0, -1), note="two dims, shift past the size")])
def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """Shift elements cyclically by ``shifts`` along ``dims`` (over the flattened tensor when ``dims`` is None)."""
    x = _tensor("roll", input)
    shifts = _int_sequence("roll", "shifts", (shifts,) if not isinstance(shifts, (tuple, list)) else tuple(shifts))
    xp = backend_of(x.data).xp
    if dims is None:
        if len(shifts) != 1:
            raise ShapeError(f"roll: expected one shift when dims is None, got {shifts}")
        flat = reshape(x, -1)
        return reshape(Roll.apply(flat, index=(_roll_source(xp, flat.shape[0], shifts[0]),)), tuple(x.shape))
    dims = _int_sequence("roll", "dims", (dims,) if not isinstance(dims, (tuple, list)) else tuple(dims))
    if len(dims) != len(shifts):
        raise ShapeError(f"roll: expected as many shifts as dims, got shifts {shifts} and dims {dims}")
    total: dict = {}
    for shift, d in zip(shifts, dims):
        d = normalize_axis("roll", d, x.ndim)
        total[d] = total.get(d, 0) + shift
    parts = []
    for d in range(x.ndim):  # an open mesh: one index array per dim, rolled where asked
        n = x.shape[d]
        source = _roll_source(xp, n, total[d]) if d in total else xp.arange(n)
        shape = [1] * x.ndim
        shape[d] = n
        parts.append(source.reshape(shape))
    return Roll.apply(x, index=tuple(parts))


@register("unflatten", methods=("unflatten",), samples=lambda rng: [
    sample(rng.normal(size=(2, 6)), 1, (2, 3)), sample(rng.normal(size=(6, 2)), -2, (3, -1))])
def unflatten(input: Tensor, dim: int, sizes: Any) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """Split dim ``dim`` into ``sizes`` (one entry may be -1): the inverse of ``flatten``."""
    x = _tensor("unflatten", input)
    dim = normalize_axis("unflatten", dim, x.ndim)
    sizes = _int_sequence("unflatten", "sizes", (sizes,) if not isinstance(sizes, (tuple, list)) else tuple(sizes))
    if not sizes:
        raise ShapeError("unflatten: expected a non-empty sizes")
    n = x.shape[dim]
    known = int(numpy.prod([s for s in sizes if s != -1]))
    wildcard = sizes.count(-1)
    ok = wildcard <= 1 and all(s >= -1 for s in sizes) and (
        known == n if wildcard == 0 else (known > 0 and n % known == 0))
    if not ok:
        raise ShapeError(f"unflatten: sizes {sizes} do not multiply up to the size {n} of dim {dim} "
                         f"(input shape {tuple(x.shape)})")
    if wildcard:
        sizes = tuple(n // known if s == -1 else s for s in sizes)
    shape = tuple(x.shape)
    return reshape(x, shape[:dim] + sizes + shape[dim + 1:])
