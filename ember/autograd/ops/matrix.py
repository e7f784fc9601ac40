"""Matrix-shaped ops: tril/triu, diag, and the strict-shape products mm and bmm.

``tril``/``triu`` keep one side of a diagonal of the last two dims (batched
over the leading ones); their backward masks the gradient the same way.
``diag`` builds a matrix from a vector or reads a matrix's diagonal, and each
direction is the other's backward.  ``mm`` and ``bmm`` are ``matmul`` without
broadcasting or 1-d promotion: shapes must be exactly (n, k) @ (k, m) and
(b, n, k) @ (b, k, m), as in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.indexing import GetItem
from ember.autograd.ops.linalg import MatMul
from ember.autograd.ops.operands import binary_operands
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of
from ember.errors import DTypeError, ShapeError


class TriangleMask(Function):
    """``y = where(mask, x, 0)`` for a fixed triangular ``mask``; ``gx = where(mask, gy, 0)``."""

    @staticmethod
    def forward(ctx: Function, x: Any, mask: Any) -> Any:
        ctx.mask = mask
        return ctx.backend.xp.where(mask, x, 0).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        return ctx.xp.where(ctx.mask, gy, 0), None


def _check_diagonal(op: str, diagonal: Any) -> int:
    if not isinstance(diagonal, (int, numpy.integer)) or isinstance(diagonal, bool):
        raise TypeError(f"{op}: expected an int diagonal, got {diagonal!r}")
    return int(diagonal)


def _triangle(op: str, x: Any, diagonal: Any, lower: bool) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    k = _check_diagonal(op, diagonal)
    if x.ndim < 2:
        raise ShapeError(f"{op}: expected a tensor of at least 2 dims, got shape {tuple(x.shape)}")
    rows, cols = x.shape[-2], x.shape[-1]
    xp = backend_of(x.data).xp
    below = xp.tri(rows, cols, k, dtype=bool)  # True on and below diagonal k
    mask = below if lower else ~xp.tri(rows, cols, k - 1, dtype=bool)
    return TriangleMask.apply(x, mask)


def _triangle_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(3, 4))),
        sample(rng.normal(size=(4, 3)), diagonal=1),
        sample(rng.normal(size=(2, 3, 3)), diagonal=-1, note="batched"),
    ]


@register("tril", methods=("tril",), samples=_triangle_samples)
def tril(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """Zero the elements above diagonal ``diagonal`` of the last two dims (``x: (*, m, n)``)."""
    return _triangle("tril", input, diagonal, lower=True)


@register("triu", methods=("triu",), samples=_triangle_samples)
def triu(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """Zero the elements below diagonal ``diagonal`` of the last two dims (``x: (*, m, n)``)."""
    return _triangle("triu", input, diagonal, lower=False)


class DiagEmbed(Function):
    """``y = zeros((n+|k|, n+|k|)); y[rows, cols] = x`` for a vector ``x``; ``gx = gy[rows, cols]``."""

    @staticmethod
    def forward(ctx: Function, x: Any, size: int, where: tuple) -> Any:
        ctx.where = where
        return ctx.xp.index_add((size, size), where, x)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return gy[ctx.where]


class DiagExtract(GetItem):
    """``y = x[rows, cols]``, diagonal ``k`` of a matrix; ``gx = index_add(zeros(x.shape), (rows, cols), gy)``."""


def _diagonal_positions(xp: Any, rows: int, cols: int, k: int) -> tuple:
    """Row and column indices of diagonal ``k`` of a ``rows x cols`` matrix (empty when off the matrix)."""
    n = max(0, min(rows + min(k, 0), cols - max(k, 0)))
    i = xp.arange(n)
    return i - min(k, 0), i + max(k, 0)


@register("diag", methods=("diag",), samples=lambda rng: [
    sample(rng.normal(size=(3,)), note="vector to matrix"),
    sample(rng.normal(size=(3,)), 1, note="vector, above"),
    sample(rng.normal(size=(3, 4)), note="matrix to vector"),
    sample(rng.normal(size=(4, 3)), -2, note="matrix, below")])
def diag(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """1-d ``input``: the square matrix with it on diagonal ``diagonal``; 2-d: that diagonal as a vector."""
    if not isinstance(input, Tensor):
        raise TypeError(f"diag: expected a Tensor, got {type(input).__name__}")
    k = _check_diagonal("diag", diagonal)
    xp = backend_of(input.data).xp
    if input.ndim == 1:
        n = input.shape[0] + abs(k)
        return DiagEmbed.apply(input, size=n, where=_diagonal_positions(xp, n, n, k))
    if input.ndim == 2:
        return DiagExtract.apply(input, index=_diagonal_positions(xp, input.shape[0], input.shape[1], k))
    raise ShapeError(f"diag: expected a 1-d or 2-d tensor, got shape {tuple(input.shape)}")


class Mm(MatMul):
    """``y = a @ b`` for ``a: (n, k)``, ``b: (k, m)``; ``ga = gy b^T``, ``gb = a^T gy``."""


class Bmm(MatMul):
    """``y[i] = a[i] @ b[i]`` for ``a: (B, n, k)``, ``b: (B, k, m)``; ``ga = gy b^T``, ``gb = a^T gy``."""


def _product_operands(op: str, a: Any, b: Any, ndim: int) -> tuple:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{op}: expected two Tensors, got {type(a).__name__} and {type(b).__name__}")
    sa, sb = tuple(a.shape), tuple(b.shape)
    if len(sa) != ndim or len(sb) != ndim:
        raise ShapeError(f"{op}: expected two {ndim}-d tensors, got shapes {sa} and {sb}")
    if a.dtype != b.dtype:
        raise DTypeError(f"{op}: expected operands of one dtype, got {a.dtype} {sa} and {b.dtype} {sb}")
    if sa[-1] != sb[-2]:
        raise ShapeError(f"{op}: inner dimensions differ, got shapes {sa} and {sb} ({sa[-1]} != {sb[-2]})")
    if ndim == 3 and sa[0] != sb[0]:
        raise ShapeError(f"{op}: expected equal batch sizes, got shapes {sa} and {sb} ({sa[0]} != {sb[0]})")
    return binary_operands(op, a, b)


@register("mm", methods=("mm",), samples=lambda rng: [
    sample(rng.normal(size=(3, 4)), rng.normal(size=(4, 2))), sample(rng.normal(size=(1, 3)), rng.normal(size=(3, 1)))])
def mm(input: Tensor, mat2: Tensor) -> Tensor:  # noqa: A002 - PyTorch's argument names
    """Matrix product of exactly two 2-d tensors (no broadcasting): ``(n, k) @ (k, m) -> (n, m)``."""
    return Mm.apply(*_product_operands("mm", input, mat2, 2))


@register("bmm", methods=("bmm",), samples=lambda rng: [
    sample(rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 2)))])
def bmm(input: Tensor, mat2: Tensor) -> Tensor:  # noqa: A002 - PyTorch's argument names
    """Batched matrix product of two 3-d tensors with equal batch sizes: ``(B, n, k) @ (B, k, m)``."""
    return Bmm.apply(*_product_operands("bmm", input, mat2, 3))
