"""Tensor factories: ``tensor``, ``zeros``, ``ones``, ``arange``, ``eye`` ...

Python floats become the default dtype (float32), Python ints int64 and bools
bool, as in PyTorch; NumPy arrays keep their dtype unless ``dtype`` is given.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember import dtypes
from ember.backends.device import backend_of, get_backend


def _shape_args(shape: tuple, op: str) -> tuple:
    """Accept ``f(2, 3)`` and ``f((2, 3))``; reject negative or non-integer sizes."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: expected integer sizes, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{op}: expected non-negative sizes, got {shape}")
    return shape


def _host_array(op: str, data: Any, dtype: Any = None) -> numpy.ndarray:
    """``numpy.array(data, dtype)``, with ragged lists and unconvertible values reported under ``op``."""
    try:
        return numpy.array(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as e:
        kind = TypeError if isinstance(e, TypeError) else ValueError
        raise kind(f"{op}: can't make a tensor from {type(data).__name__} data"
                   f"{'' if dtype is None else f' as {numpy.dtype(dtype)}'} ({e})") from None


def _infer_dtype(data: Any, op: str = "tensor") -> Any:
    """Dtype for Python data: floats -> default float dtype, ints -> int64, bools -> bool."""
    probe = _host_array(op, data)
    kind = probe.dtype.kind
    if kind == "f":
        return dtypes.get_default_dtype()
    if kind in "iu":
        return dtypes.int64
    if kind == "b":
        return dtypes.bool_
    raise TypeError(f"{op}: cannot make a tensor from data of type {type(data).__name__} (dtype {probe.dtype})")


def as_array(data: Any, dtype: Any = None, device: Any = None) -> Any:
    """Copy ``data`` into a new backend array on ``device`` with ``dtype``.

    Arrays keep their dtype and device unless told otherwise; Python data gets
    PyTorch's dtype inference.  Crossing devices is explicit here (the caller
    named ``device``), never implicit inside an op.
    """
    from ember.autograd.tensor import Tensor

    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = dtypes.to_dtype(dtype, "tensor")
    source = backend_of_or_none(data)
    if source is None and isinstance(data, numpy.ndarray):  # ndarray subclasses (memmap, ...)
        data, source = numpy.asarray(data), get_backend("cpu")
    if source is None:
        if dtype is None:
            dtype = _infer_dtype(data)
        host = _host_array("tensor", data, dtype)
        return get_backend(device).asarray(host, dtype=dtype)
    if dtype is None:
        dtype = dtypes.to_dtype(data.dtype, "tensor")
    target = source if device is None else get_backend(device)
    if target is source:
        return data.astype(dtype, copy=True)
    return target.asarray(source.to_host(data), dtype=dtype)


def backend_of_or_none(array: Any) -> Any:
    """The backend owning ``array``, or None for Python data and foreign arrays."""
    try:
        return backend_of(array)
    except TypeError:
        return None


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """A new tensor holding a copy of ``data`` (list, scalar, NumPy array or Tensor)."""
    from ember.autograd.tensor import Tensor

    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def from_numpy(array: numpy.ndarray) -> Any:
    """A cpu tensor sharing memory with ``array`` (no copy; keeps its dtype)."""
    from ember.autograd.tensor import Tensor

    if not isinstance(array, numpy.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    dtypes.to_dtype(array.dtype, "from_numpy")
    return Tensor._make(array)


def _filled(op: str, shape: tuple, fill: Any, dtype: Any, device: Any, requires_grad: bool) -> Any:
    from ember.autograd.tensor import Tensor

    shape = _shape_args(shape, op)
    dtype = dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype, op)
    backend = get_backend(device)
    if fill is None:
        data = backend.xp.empty(shape, dtype=dtype)
    else:
        if numpy.dtype(dtype).kind in "iu" and isinstance(fill, float):
            info = numpy.iinfo(dtype)
            if not (info.min <= fill <= info.max):  # also false for nan
                raise ValueError(f"{op}: {fill!r} cannot be converted to {numpy.dtype(dtype)} without overflow")
        try:
            data = backend.xp.full(shape, fill, dtype=dtype)
        except (ValueError, TypeError, OverflowError) as e:
            raise ValueError(f"{op}: can't fill a tensor of dtype {numpy.dtype(dtype)} with {fill!r} ({e})") from None
    t = Tensor._make(data)
    return t.requires_grad_(True) if requires_grad else t


def zeros(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """A tensor of zeros."""
    return _filled("zeros", shape, 0, dtype, device, requires_grad)


def ones(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """A tensor of ones."""
    return _filled("ones", shape, 1, dtype, device, requires_grad)


def empty(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """An uninitialised tensor."""
    return _filled("empty", shape, None, dtype, device, requires_grad)


def full(shape: Any, fill_value: float, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """A tensor filled with ``fill_value`` (dtype inferred from it when not given)."""
    if dtype is None:
        dtype = _infer_dtype(fill_value, "full")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _filled("full", shape, fill_value, dtype, device, requires_grad)


def _like(op: str, t: Any, fill: Any, dtype: Any, device: Any, requires_grad: bool) -> Any:
    return _filled(op, tuple(t.shape), fill, dtype or t.dtype, device or t.device, requires_grad)


def zeros_like(t: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """Zeros with ``t``'s shape, dtype and device."""
    return _like("zeros_like", t, 0, dtype, device, requires_grad)


def ones_like(t: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """Ones with ``t``'s shape, dtype and device."""
    return _like("ones_like", t, 1, dtype, device, requires_grad)


def full_like(t: Any, fill_value: float, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """``fill_value`` with ``t``'s shape, dtype and device."""
    return _like("full_like", t, fill_value, dtype, device, requires_grad)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Any:
    """Evenly spaced values in ``[start, end)``; int64 for integer arguments, else the default float."""
    from ember.autograd.tensor import Tensor

    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    if dtype is None:
        dtype = _infer_dtype([start, end, step], "arange")
    backend = get_backend(device)
    t = Tensor._make(backend.xp.arange(start, end, step, dtype=dtypes.to_dtype(dtype, "arange")))
    return t.requires_grad_(True) if requires_grad else t


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """The ``n x m`` identity matrix."""
    from ember.autograd.tensor import Tensor

    dtype = dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype, "eye")
    for name, size in (("n", n), ("m", m)):
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, numpy.integer)) or size < 0):
            raise ValueError(f"eye: expected {name} to be a non-negative integer, got {size!r}")
    t = Tensor._make(get_backend(device).xp.eye(n, m, dtype=dtype))
    return t.requires_grad_(True) if requires_grad else t
