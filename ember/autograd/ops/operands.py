"""Argument normalisation shared by ops: operand conversion and axis checking.

Dtype policy: two floating operands must share a dtype (no silent float32 ->
float64 promotion); a non-floating operand (bool/int tensor, Python scalar,
NumPy array) next to a floating tensor is a constant and takes its dtype, as
in PyTorch.  An integer or bool tensor meeting a Python float, or divided
truly, becomes the default float dtype (float32), never NumPy's float64.
NumPy arrays are accepted only next to cpu tensors.
"""

from __future__ import annotations

import collections

import numbers
from typing import Any

import numpy

from ember import dtypes
from ember.autograd.function import autocast_active
from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of
from ember.errors import DeviceMismatchError, DTypeError, ShapeError


ValuesIndices = collections.namedtuple("ValuesIndices", ["values", "indices"])
ValuesIndices.__doc__ = "``(values, indices)`` of ``max``/``min``/``sort``/``topk`` along a dim, as in PyTorch."


class AxisError(ShapeError, IndexError):
    """An axis outside ``[-ndim, ndim)`` or repeated."""


def _as_constant(op: str, value: Any, like: Tensor) -> Any:
    """A Python scalar stays a scalar (NumPy keeps the tensor's dtype); arrays become tensors."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, numbers.Number):
        raise DTypeError(f"{op}: unsupported scalar type {type(value).__name__} ({value!r})")
    try:
        backend = backend_of(value)
    except TypeError:
        if isinstance(value, (list, tuple)):
            value, backend = numpy.asarray(value), backend_of(numpy.empty(0))
        else:
            raise TypeError(
                f"{op}: expected a Tensor, a Python number or an array, got {type(value).__name__}"
            ) from None
    if backend is not backend_of(like.data):
        raise DeviceMismatchError(
            f"{op}: expected an operand on {like.device}, got a {type(value).__name__} on another device; "
            "wrap it with ember.tensor(..., device=...) first"
        )
    dtype = like.dtype if like.dtype.kind == "f" or value.dtype.kind == "b" else value.dtype
    return Tensor._make(value.astype(dtype, copy=False))


def binary_operands(op: str, a: Any, b: Any, true_divide: bool = False) -> tuple:
    """Return ``(a, b)`` ready for a binary Function: Tensors or Python scalars of one dtype.

    ``true_divide``: the result is floating even for two integer operands (``/``).
    """
    a, b = _operands(op, a, b)
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if (ta and a.data.dtype.kind != "f") or (tb and b.data.dtype.kind != "f"):
        if true_divide or type(a) is float or type(b) is float:
            a, b = to_default_float(a), to_default_float(b)
    return a, b


def to_default_float(t: Any) -> Any:
    """An integer/bool Tensor as the default float dtype (PyTorch's promotion); others unchanged."""
    if isinstance(t, Tensor) and t.data.dtype.kind != "f":
        return Tensor._make(t.data.astype(dtypes.get_default_dtype()))
    return t


def _operands(op: str, a: Any, b: Any) -> tuple:
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        da, db = a.data.dtype, b.data.dtype
        if da != db:
            fa, fb = da.kind == "f", db.kind == "f"
            if fa and fb:
                if autocast_active():  # Function.apply casts them by the autocast policy
                    return a, b
                raise DTypeError(
                    f"{op}: expected operands of one floating dtype, got {da} {tuple(a.shape)} and "
                    f"{db} {tuple(b.shape)}; convert one with .to(dtype)"
                )
            if fa:
                b = Tensor._make(b.data.astype(da))
            elif fb:
                a = Tensor._make(a.data.astype(db))
        return a, b
    if ta:
        return a, _as_constant(op, b, a)
    if tb:
        return _as_constant(op, a, b), b
    raise TypeError(f"{op}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")


def broadcast_error(op: str, *operands: Any) -> ShapeError:
    """The error for operands NumPy could not broadcast together."""
    shapes = " and ".join(str(tuple(numpy.shape(o.data if isinstance(o, Tensor) else o))) for o in operands)
    return ShapeError(f"{op}: operands could not be broadcast together, got shapes {shapes}")


def normalize_axes(op: str, axis: Any, ndim: int) -> tuple | None:
    """``None`` or a sorted tuple of non-negative axes; rejects out-of-range and repeats."""
    if axis is None:
        return None
    try:
        axes = (axis,) if isinstance(axis, (int, numpy.integer)) else tuple(axis)
    except TypeError:
        raise TypeError(f"{op}: expected an int or a sequence of ints as axis, got {axis!r}") from None
    out = []
    for a in axes:
        if not isinstance(a, (int, numpy.integer)) or isinstance(a, bool):
            raise TypeError(f"{op}: expected integer axes, got {axis!r}")
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise AxisError(f"{op}: axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(int(a) % ndim if ndim else None)
    if ndim == 0:  # PyTorch accepts dim 0/-1 on a 0-d tensor: the whole (single) element
        return None
    if len(set(out)) != len(out):
        raise AxisError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def normalize_axis(op: str, axis: int, ndim: int) -> int:
    """One axis in ``[-ndim, ndim)`` as a non-negative int (a 0-d tensor has none to give)."""
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, without building a tuple
        return axis % ndim
    axes = normalize_axes(op, axis, ndim)
    if axes is None:
        raise AxisError(f"{op}: axis {axis!r} needs a tensor of at least 1 dimension, got a 0-d tensor")
    return axes[0]


def require_floating(op: str, t: Tensor) -> None:
    """Reject integer/bool tensors for ops defined on reals only."""
    if t.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating tensor, got dtype {t.dtype}; convert with .float()")
