"""Reductions: sum, mean, max, min, var, and the non-differentiable argmax/argmin.

float16 inputs accumulate in float32 and cast back (long float16 sums lose
whole units past 2048).  ``max``/``min`` share the gradient equally among ties.
Every op takes NumPy's ``axis=``/``keepdims=`` and PyTorch's ``dim=``/``keepdim=``.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.operands import ValuesIndices, normalize_axes, require_floating
from ember.autograd.registry import accepts_dim, register, sample
from ember.autograd.tensor import Tensor


def _kept_shape(shape: tuple, axes: tuple | None) -> tuple:
    """``shape`` with reduced axes set to 1 (the keepdims shape)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _count(shape: tuple, axes: tuple | None) -> int:
    return int(numpy.prod([shape[a] for a in axes] if axes is not None else shape))


class Sum(Function):
    """``y = sum(x, axes)``; ``gx = broadcast(gy)``."""

    method = "sum"  # the array method forward reduces with (Mean: "mean")

    @staticmethod
    def forward(ctx: Function, x: Any, axes: tuple | None, keepdims: bool) -> Any:
        ctx.x_shape, ctx.axes = x.shape, axes
        reduce = getattr(x, ctx.method)
        if x.dtype == numpy.float16:
            return reduce(axis=axes, keepdims=keepdims, dtype=numpy.float32).astype(numpy.float16)
        return reduce(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        gy = gy.reshape(_kept_shape(ctx.x_shape, ctx.axes))
        return ctx.xp.broadcast_to(gy, ctx.x_shape)


class Mean(Sum):
    """``y = mean(x, axes)``; ``gx = broadcast(gy) / n``."""

    method = "mean"

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        n = _count(ctx.x_shape, ctx.axes)
        return Sum.backward(ctx, gy * (1.0 / builtins.max(n, 1)))


class _Extreme(Function):
    """Shared max/min: the gradient is split equally among the elements equal to the extreme."""

    reduce_name = "max"

    @classmethod
    def forward(cls, ctx: Function, x: Any, axes: tuple | None, keepdims: bool) -> Any:
        y = getattr(x, cls.reduce_name)(axis=axes, keepdims=True)
        ctx.axes, ctx.x_shape = axes, x.shape
        ctx.save_for_backward(x, y)
        return y if keepdims else y.reshape(_reduced_shape(x.shape, axes))

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        x, y = ctx.saved_arrays
        mask = x == y
        weight = (mask / mask.sum(axis=ctx.axes, keepdims=True)).astype(x.dtype)
        gy = gy.reshape(_kept_shape(ctx.x_shape, ctx.axes))
        return ctx.xp.broadcast_to(gy, ctx.x_shape) * weight


class Max(_Extreme):
    """``y = max(x, axes)``; ``gx = gy * [x == y] / #ties``."""

    reduce_name = "max"


class Min(_Extreme):
    """``y = min(x, axes)``; ``gx = gy * [x == y] / #ties``."""

    reduce_name = "min"


def _reduced_shape(shape: tuple, axes: tuple | None) -> tuple:
    if axes is None:
        return ()
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _reduce_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(3, 4))),
        sample(rng.normal(size=(3, 4)), axis=0),
        sample(rng.normal(size=(2, 3, 4)), axis=(0, 2), keepdims=True),
        sample(rng.normal(size=(2, 3, 4)), axis=-1),
        sample(numpy.asarray(rng.normal())),
    ]


def _distinct_samples(rng: Any) -> list:
    # A permutation has no ties, so max/min are differentiable at the sample points.
    def distinct(shape: tuple) -> numpy.ndarray:
        return rng.permutation(int(numpy.prod(shape))).reshape(shape) * 0.1 + 0.05

    return [
        sample(distinct((3, 4))),
        sample(distinct((3, 4)), axis=1),
        sample(distinct((2, 3, 4)), axis=(0, 2), keepdims=True),
        sample(distinct((2, 3, 4)), axis=-2),
    ]


def _reduce(name: str, fn: type, x: Tensor, axis: Any, keepdims: bool) -> Tensor:
    axes = normalize_axes(name, axis, x.ndim)
    if x.data.dtype.kind != "f" and fn is Sum:  # PyTorch: integer and bool sums are int64
        out = x.data.sum(axis=axes, keepdims=bool(keepdims), dtype=numpy.int64)
        return Tensor._make(numpy.asarray(out) if isinstance(out, numpy.generic) else out)
    if fn is Mean:
        require_floating(name, x)
    if fn in (Max, Min) and x.data.size == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(x.shape)}")
    return fn.apply(x, axes=axes, keepdims=bool(keepdims))  # max/min of ints: an int result, no graph


def _reduction(name: str, fn: type, samples: Any, doc: str) -> Any:
    def op(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _reduce(name, fn, x, axis, keepdims)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return register(name, methods=(name,), samples=samples)(op)


sum = _reduction("sum", Sum, _reduce_samples, "Sum over ``axis`` (int, tuple or None for all).")  # noqa: A001
mean = _reduction("mean", Mean, _reduce_samples, "Mean over ``axis`` (int, tuple or None for all).")
amax = _reduction("amax", Max, _distinct_samples, "Maximum over ``axis``; ties share the gradient.")
amin = _reduction("amin", Min, _distinct_samples, "Minimum over ``axis``; ties share the gradient.")


def _extreme(name: str, fn: type) -> Any:
    def op(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool | None = None) -> Any:
        if dim is not None and axis is not None:
            raise TypeError(f"{name}: got both dim= and axis= (two spellings of one argument); pass only one")
        if keepdims is not None and keepdim:
            raise TypeError(f"{name}: got both keepdim= and keepdims= (two spellings of one argument); pass only one")
        keep = bool(keepdim or keepdims)
        if dim is None:  # NumPy's spelling (or none): the values only
            return _reduce(name, fn, x, axis, keep)
        if isinstance(dim, Tensor):  # PyTorch's max(a, b): the elementwise maximum, where that op exists
            from ember.autograd.registry import OPS

            if f"{name}imum" in OPS:
                return OPS[f"{name}imum"].fn(x, dim)
            raise TypeError(f"{name}: got a Tensor as dim; the elementwise {name}imum of two tensors is not available")
        if not isinstance(dim, (int, numpy.integer)) or isinstance(dim, bool):
            raise TypeError(f"{name}: expected an int dim (values and indices along it), got {dim!r}; "
                            f"use a{name}(x, dim=...) to reduce several dims")
        from ember.autograd.ops.sorting import ArgExtreme

        axes = normalize_axes(name, dim, x.ndim)
        if axes is None:  # a 0-d tensor: its own extreme, at index 0
            values, indices = ArgExtreme.apply(x.reshape(1), axis=0, largest=name == "max")
            return ValuesIndices(values.reshape(()), indices.reshape(()))
        if x.shape[axes[0]] == 0:
            raise ValueError(f"{name}: expected a non-empty dim {axes[0]}, got shape {tuple(x.shape)}")
        values, indices = ArgExtreme.apply(x, axis=axes[0], largest=name == "max")
        if not keep:
            values, indices = values.squeeze(axes[0]), indices.squeeze(axes[0])
        return ValuesIndices(values, indices)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (
        f"The {name}imum of all elements, or over ``axis=`` (NumPy's spelling: the values only).\n\n"
        f"    Over all elements or ``axis``, tied extremes share the gradient equally.  Along one ``dim``\n"
        f"    (PyTorch's spelling) it returns ``(values, indices)``, the int64 indices without a gradient,\n"
        f"    and the gradient goes to the index returned (the first of tied elements), as PyTorch."
    )
    setattr(Tensor, name, op)
    return op


max = _extreme("max", Max)  # noqa: A001
min = _extreme("min", Min)  # noqa: A001


def _var_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(4, 5))),
        sample(rng.normal(size=(4, 5)), axis=0),
        sample(rng.normal(size=(2, 3, 4)), axis=(0, 2), keepdims=True, correction=0),
    ]


@register("var", methods=("var",), samples=_var_samples)
def var(x: Tensor, axis: Any = None, keepdims: bool = False, correction: int = 1, unbiased: bool | None = None) -> Tensor:
    """Variance over ``axis``, PyTorch's default: ``sum((x - mean)**2) / (n - correction)``.

    ``correction=1`` (Bessel) is the default as in ``torch.var``; pass
    ``correction=0`` (or ``unbiased=False``) for NumPy's / batch norm's biased form.
    """
    require_floating("var", x)
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = normalize_axes("var", axis, x.ndim)
    n = _count(tuple(x.shape), axes)
    diff = x - x.mean(axis=axes, keepdims=True)
    # As PyTorch: the divisor is max(n - correction, 0), so a sum > 0 over no degrees of
    # freedom is inf, and 0/0 (one element, or an empty axis) is nan.
    scale = 1.0 / (n - correction) if n > correction else float("inf")
    with numpy.errstate(invalid="ignore"):  # 0 * inf
        return (diff * diff).sum(axis=axes, keepdims=keepdims) * scale


def _arg_reduce(name: str) -> Any:
    def op(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
        if axis is not None:
            axes = normalize_axes(name, axis, x.ndim)
            if axes is not None and len(axes) > 1:  # NumPy would silently use the first one
                raise ValueError(f"{name}: expected a single axis, got {axis!r}")
            axis = axes[0] if axes else None
        if x.data.size == 0:
            raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(x.shape)}")
        out = getattr(x.data, name)(axis=axis, keepdims=keepdims)
        if isinstance(out, numpy.generic):  # a full reduction gives a NumPy scalar; tensors hold arrays
            out = numpy.asarray(out)
        return Tensor._make(out.astype(numpy.int64))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Indices of the {name[3:]}imum along ``axis`` (int64; not differentiable)."
    op = accepts_dim(op)
    setattr(Tensor, name, op)
    return op


argmax = _arg_reduce("argmax")
argmin = _arg_reduce("argmin")


def _bool_reduce(name: str) -> Any:
    def op(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        axes = normalize_axes(name, axis, x.ndim)
        out = getattr(x.data, name)(axis=axes, keepdims=keepdims)
        return Tensor._make(numpy.asarray(out) if isinstance(out, numpy.generic) else out)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Whether {name} elements along ``axis`` are non-zero (a bool tensor; not differentiable)."
    op = accepts_dim(op)
    setattr(Tensor, name, op)
    return op


any = _bool_reduce("any")  # noqa: A001
all = _bool_reduce("all")  # noqa: A001
