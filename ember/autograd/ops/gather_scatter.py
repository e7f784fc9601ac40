"""Index-driven selection along a dim: gather, scatter, scatter_add and masked_fill.

``gather(x, dim, index)[i][j][k] = x[index[i][j][k]][j][k]`` (for dim 0); the
scatters write (or add) ``src`` at the same positions.  Each is an advanced
index built once from ``index``, so every backward is an indexing or an
``index_add`` written against ``ctx.xp`` (differentiable to any order).
Indices must lie in ``[0, size)``: negative ones are refused, as in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.grad_mode import is_grad_enabled, no_grad
from ember.autograd.ops.indexing import GetItem
from ember.autograd.ops.operands import normalize_axis
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of
from ember.errors import DeviceMismatchError, DTypeError, GraphError, ShapeError


def _full_index(xp: Any, index: Any, dim: int) -> tuple:
    """The advanced index that picks ``x[..., index[pos], ...]`` at every position ``pos`` of ``index``."""
    parts = []
    for d, n in enumerate(index.shape):
        if d == dim:
            parts.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = n
            parts.append(xp.arange(n).reshape(shape))
    return tuple(parts)


def _checked_index(op: str, x: Tensor, dim: int, index: Any, src: Any = None) -> tuple:
    """Validate ``dim`` and ``index`` against ``x`` (and ``src``); return ``(dim, full advanced index)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor as input, got {type(x).__name__}")
    if not isinstance(index, Tensor):
        raise TypeError(f"{op}: expected an integer Tensor as index, got {type(index).__name__}")
    if index.dtype.kind not in "iu":
        raise DTypeError(f"{op}: expected an integer index tensor, got dtype {index.dtype}")
    if index.device != x.device:
        raise DeviceMismatchError(f"{op}: expected the index on {x.device}, got {index.device}")
    dim = normalize_axis(op, dim, x.ndim)
    xs, ins = tuple(x.shape), tuple(index.shape)
    if len(ins) != len(xs):
        raise ShapeError(f"{op}: expected an index with as many dims as the input, got index shape {ins} "
                         f"for input shape {xs}")
    if any(i > s for d, (i, s) in enumerate(zip(ins, xs)) if d != dim):
        raise ShapeError(f"{op}: expected index.size(d) <= input.size(d) for every d != {dim}, got index shape "
                         f"{ins} for input shape {xs}")
    if src is not None and any(i > s for i, s in zip(ins, tuple(src.shape))):
        raise ShapeError(f"{op}: expected index.size(d) <= src.size(d) for every d, got index shape {ins} "
                         f"for src shape {tuple(src.shape)}")
    if index.data.size:
        lo, hi = int(index.data.min()), int(index.data.max())
        if lo < 0 or hi >= xs[dim]:
            bad = lo if lo < 0 else hi
            raise ShapeError(f"{op}: index {bad} is out of bounds for dim {dim} with size {xs[dim]} "
                             f"(input shape {xs})")
    return dim, _full_index(backend_of(x.data).xp, index.data, dim)


class Gather(GetItem):
    """``y = x[full_index]`` (``y`` has the index's shape); ``gx = index_add(zeros(x.shape), full_index, gy)``."""


def _index_tensor(rng: Any, shape: tuple, size: int) -> Tensor:
    return Tensor._make(rng.integers(0, size, shape))


def _gather_samples(rng: Any) -> list:
    x = rng.normal(size=(3, 4))
    return [
        sample(x, 0, _index_tensor(rng, (2, 4), 3), note="dim 0"),
        sample(x, 1, _index_tensor(rng, (3, 6), 4), note="dim 1 with repeats"),
        sample(rng.normal(size=(2, 3, 4)), -1, _index_tensor(rng, (2, 2, 3), 4), note="negative dim, smaller index"),
    ]


@register("gather", methods=("gather",), samples=_gather_samples)
def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:  # noqa: A002
    """Values of ``input`` at ``index`` along ``dim``; the result has ``index``'s shape (dense gradient only)."""
    if sparse_grad:
        raise ValueError("gather: sparse_grad=True is not supported (ember has no sparse tensors)")
    dim, full = _checked_index("gather", input, dim, index)
    return Gather.apply(input, index=full)


class Scatter(Function):
    """``y = x`` with ``y[full_index] = src``; ``gx = gy`` off the written places, ``gsrc = gy[full_index]``."""

    @staticmethod
    def forward(ctx: Function, x: Any, src: Any, full_index: tuple) -> Any:
        xp = ctx.backend.xp
        y = x.copy()
        y[full_index] = src
        ctx.full_index = full_index
        if ctx.needs_input_grad[0]:
            written = xp.zeros(x.shape, dtype=bool)
            written[full_index] = True
            ctx.save_for_backward(written)
        return y

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        need_x, need_src = ctx.needs_input_grad
        gx = ctx.xp.where(ctx.saved_arrays[0], 0, gy) if need_x else None
        return gx, (gy[ctx.full_index] if need_src else None)


class ScatterAdd(Function):
    """``y = x + index_add(zeros(x.shape), full_index, src)``; ``gx = gy``, ``gsrc = gy[full_index]``."""

    @staticmethod
    def forward(ctx: Function, x: Any, src: Any, full_index: tuple) -> Any:
        ctx.full_index = full_index
        return x + ctx.xp.index_add(x.shape, full_index, src)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        need_x, need_src = ctx.needs_input_grad
        return (gy if need_x else None), (gy[ctx.full_index] if need_src else None)


def _source(op: str, x: Tensor, index: Tensor, src: Any) -> Any:
    """``src`` cut to the index's shape (a Tensor), or a Python number for the value form of scatter."""
    if isinstance(src, Tensor):
        if src.device != x.device:
            raise DeviceMismatchError(f"{op}: expected src on {x.device}, got {src.device}")
        if src.dtype != x.dtype:
            if src.dtype.kind == "f" and x.dtype.kind == "f":
                raise DTypeError(f"{op}: expected src of dtype {x.dtype}, got {src.dtype}")
            src = Tensor._make(src.data.astype(x.dtype))
        if src.ndim != x.ndim:
            raise ShapeError(f"{op}: expected src with as many dims as the input, got src shape "
                             f"{tuple(src.shape)} for input shape {tuple(x.shape)}")
        if tuple(src.shape) != tuple(index.shape):
            src = src[tuple(slice(0, n) for n in index.shape)]
        return src
    if isinstance(src, (bool, int, float, numpy.number)):
        return src
    raise TypeError(f"{op}: expected a Tensor or a Python number as src, got {type(src).__name__}")


def _scatter_samples(rng: Any) -> list:
    x = rng.normal(size=(3, 4))
    # Distinct indices per column: duplicate writes make scatter's result order-dependent.
    perm = Tensor._make(numpy.stack([rng.permutation(3)[:2] for _ in range(4)], axis=1))
    return [
        sample(x, 0, perm, rng.normal(size=(2, 4)), note="dim 0"),
        sample(x, -1, Tensor._make(numpy.array([[1, 3], [0, 2], [2, 1]])), rng.normal(size=(3, 5)),
               note="negative dim, larger src"),
        sample(x, 1, Tensor._make(numpy.array([[0], [3], [1]])), 0.5, note="python value"),
    ]


@register("scatter", methods=("scatter",), samples=_scatter_samples)
def scatter(input: Tensor, dim: int, index: Tensor, src: Any = None, *, value: Any = None,  # noqa: A002
            reduce: str | None = None) -> Tensor:
    """A copy of ``input`` with ``src`` (a tensor) or ``value`` (a number) written at ``index`` along ``dim``.

    With repeated positions the value written last wins (PyTorch leaves it unspecified).
    ``reduce="add"`` with a tensor ``src`` is ``scatter_add``; other reductions are not supported.
    """
    if (src is None) == (value is None):
        raise TypeError("scatter: expected exactly one of src and value")
    src = value if src is None else src
    if reduce is not None:
        if reduce == "add" and isinstance(src, Tensor):
            return scatter_add(input, dim, index, src)
        raise ValueError(f"scatter: reduce={reduce!r} is not supported (only 'add' with a tensor src); "
                         "use scatter_add")
    dim, full = _checked_index("scatter", input, dim, index, src if isinstance(src, Tensor) else None)
    return Scatter.apply(input, _source("scatter", input, index, src), full_index=full)


def _scatter_add_samples(rng: Any) -> list:
    x = rng.normal(size=(3, 4))
    return [
        sample(x, 0, _index_tensor(rng, (5, 4), 3), rng.normal(size=(5, 4)), note="dim 0, repeats accumulate"),
        sample(x, -1, _index_tensor(rng, (2, 3), 4), rng.normal(size=(3, 3)), note="negative dim, larger src"),
    ]


@register("scatter_add", methods=("scatter_add",), samples=_scatter_add_samples)
def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:  # noqa: A002
    """A copy of ``input`` with ``src`` added at ``index`` along ``dim`` (repeated positions accumulate)."""
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add: expected a Tensor as src, got {type(src).__name__}")
    dim, full = _checked_index("scatter_add", input, dim, index, src)
    return ScatterAdd.apply(input, _source("scatter_add", input, index, src), full_index=full)


class MaskedFill(Function):
    """``y = where(mask, value, x)``; ``gx = gy`` where not masked, ``gvalue = sum(gy where masked)``."""

    @staticmethod
    def forward(ctx: Function, x: Any, mask: Any, value: Any) -> Any:
        ctx.save_for_backward(mask)
        return ctx.backend.xp.where(mask, value, x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        (mask,) = ctx.saved_arrays
        need_x, _, need_value = ctx.needs_input_grad
        xp = ctx.xp
        return (xp.where(mask, 0, gy) if need_x else None), None, (xp.where(mask, gy, 0) if need_value else None)


def _masked_fill_samples(rng: Any) -> list:
    x = rng.normal(size=(3, 4))
    return [
        sample(x, Tensor._make(x > 0.2), -1.5, note="python value"),
        sample(x, Tensor._make(rng.uniform(size=(4,)) > 0.5), numpy.asarray(0.7), note="0-d tensor value, broadcast"),
    ]


@register("masked_fill", methods=("masked_fill",), samples=_masked_fill_samples)
def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:  # noqa: A002 - PyTorch's names
    """``input`` with ``value`` (a number or a 0-d tensor) where the bool ``mask`` (broadcast) is true."""
    if not isinstance(input, Tensor):
        raise TypeError(f"masked_fill: expected a Tensor as input, got {type(input).__name__}")
    if not isinstance(mask, Tensor) or mask.dtype.kind != "b":
        got = f"dtype {mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
        raise DTypeError(f"masked_fill: expected a bool mask tensor, got {got}; use a comparison such as x > 0")
    if mask.device != input.device:
        raise DeviceMismatchError(f"masked_fill: expected the mask on {input.device}, got {mask.device}")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ShapeError(f"masked_fill: expected a 0-d value tensor, got shape {tuple(value.shape)}")
        if value.dtype != input.dtype:
            value = value.to(input.dtype)
    elif not isinstance(value, (bool, int, float, numpy.number)):
        raise TypeError(f"masked_fill: expected a number or a 0-d Tensor as value, got {type(value).__name__}")
    try:
        numpy.broadcast_shapes(tuple(input.shape), tuple(mask.shape))
    except ValueError:
        raise ShapeError(f"masked_fill: the mask of shape {tuple(mask.shape)} does not broadcast with the input "
                         f"of shape {tuple(input.shape)}") from None
    return MaskedFill.apply(input, mask, value)


def _in_place(op: str, out_of_place: Any) -> Any:
    """The ``op_`` method: the out-of-place result written into ``self`` (records no graph)."""

    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        self._check_inplace(op)
        values = args + tuple(kwargs.values())
        if is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in values):
            raise GraphError(f"{op}: an argument requires grad, but in-place ops record no graph; use the "
                             f"out-of-place {op[:-1]} instead")
        with no_grad():
            out = out_of_place(self.detach(), *args, **kwargs)
        self._guarded_write(op, out.data, lambda: self.data.__setitem__(Ellipsis, out.data))
        return self

    method.__name__ = op
    method.__doc__ = f"In-place ``{op[:-1]}``: writes the result into this tensor (no graph is recorded)."
    return method


Tensor.scatter_ = _in_place("scatter_", scatter)
Tensor.scatter_add_ = _in_place("scatter_add_", scatter_add)
Tensor.masked_fill_ = _in_place("masked_fill_", masked_fill)
