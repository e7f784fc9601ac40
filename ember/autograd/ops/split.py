"""Cutting a tensor into consecutive pieces along a dim: ``split`` and ``chunk``.

One ``Split`` node returns every piece (a view of the input, as in PyTorch);
its backward concatenates the pieces' gradients, with zeros for pieces that
received none (the engine fills those in).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.operands import normalize_axis
from ember.autograd.ops.shape import cat
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import ShapeError


class Split(Function):
    """``ys = x[b0:b1], x[b1:b2], ...`` along ``dim``; ``gx = cat(gys, dim)``."""

    @staticmethod
    def forward(ctx: Function, x: Any, bounds: tuple, dim: int) -> tuple:
        ctx.dim = dim
        lead = (slice(None),) * dim
        return tuple(x[lead + (slice(lo, hi),)] for lo, hi in zip(bounds[:-1], bounds[1:]))

    @staticmethod
    def backward(ctx: Function, *gys: Any) -> Any:
        if ctx._create_graph:
            return cat(list(gys), ctx.dim)
        return ctx.backend.ops.concatenate(gys, axis=ctx.dim)


def _split_at(x: Tensor, sizes: list, dim: int) -> tuple:
    if not sizes:  # no sections of an empty dim: no pieces, as in PyTorch
        return ()
    bounds = tuple(numpy.cumsum([0] + sizes).tolist())
    return Split.apply(x, bounds=bounds, dim=dim)


def _check(op: str, x: Any, dim: Any) -> int:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.ndim == 0:
        raise ShapeError(f"{op}: expected a tensor of at least 1 dimension, got a 0-d tensor")
    return normalize_axis(op, dim, x.ndim)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, numpy.integer)) and not isinstance(v, bool)


@register("split", methods=("split",), samples=lambda rng: [
    sample(rng.normal(size=(5, 3)), 2, note="equal pieces, a shorter last one"),
    sample(rng.normal(size=(2, 6)), (1, 3, 2), dim=-1, note="given sizes")])
def split(tensor: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple:
    """Pieces of ``split_size_or_sections`` elements along ``dim`` (an int: equal pieces, the last may be
    shorter; a list: those sizes, which must add up to the dim's size); a tuple of views."""
    dim = _check("split", tensor, dim)
    n = tensor.shape[dim]
    if _is_int(split_size_or_sections):
        size = int(split_size_or_sections)
        if size < 0 or (size == 0 and n > 0):
            raise ValueError(f"split: expected a positive split size for a dim of size {n}, got {size}")
        sizes = [n] if size == 0 else [min(size, n - start) for start in range(0, n, size)] or [0]
    elif isinstance(split_size_or_sections, (list, tuple)) and all(_is_int(s) for s in split_size_or_sections):
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} must be non-negative and add up to {n}, the size of dim {dim} "
                             f"of shape {tuple(tensor.shape)}")
    else:
        raise TypeError(f"split: expected an int or a list of ints, got {split_size_or_sections!r}")
    return _split_at(tensor, sizes, dim)


@register("chunk", methods=("chunk",), samples=lambda rng: [
    sample(rng.normal(size=(2, 5)), 2, dim=1, note="uneven"), sample(rng.normal(size=(6, 2)), 3)])
def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:  # noqa: A002 - PyTorch's argument name
    """``chunks`` pieces of ``ceil(size / chunks)`` along ``dim`` (fewer when they run out, as PyTorch)."""
    dim = _check("chunk", input, dim)
    if not _is_int(chunks) or chunks <= 0:
        raise ValueError(f"chunk: expected a positive number of chunks, got {chunks!r}")
    n = input.shape[dim]
    if n == 0:  # PyTorch returns `chunks` empty pieces here
        return _split_at(input, [0] * int(chunks), dim)
    size = -(-n // int(chunks))
    return _split_at(input, [min(size, n - start) for start in range(0, n, size)], dim)
