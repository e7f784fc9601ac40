"""Evenly spaced values over an interval: ``linspace`` (``arange`` lives with the other factories)."""

from __future__ import annotations

from typing import Any

import numpy

from ember import dtypes
from ember.backends.device import get_backend


def _endpoint(name: str, value: Any) -> float:
    from ember.autograd.tensor import Tensor

    if isinstance(value, Tensor):
        if value.numel() != 1 or value.ndim != 0:
            raise ValueError(f"linspace: expected a 0-d tensor for {name}, got shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, numpy.number)):
        raise TypeError(f"linspace: expected a number for {name}, got {type(value).__name__}")
    return float(value)


def linspace(start: Any, end: Any, steps: int, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Any:
    """``steps`` values from ``start`` to ``end`` inclusive, evenly spaced (default float dtype).

    Values are computed in float64 and cast; integer dtypes truncate, as in PyTorch.
    """
    from ember.autograd.tensor import Tensor

    lo, hi = _endpoint("start", start), _endpoint("end", end)
    if isinstance(steps, bool) or not isinstance(steps, (int, numpy.integer)) or steps < 0:
        raise ValueError(f"linspace: expected a non-negative integer number of steps, got {steps!r}")
    dtype = dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype, "linspace")
    host = numpy.linspace(lo, hi, int(steps), dtype=numpy.float64)
    if numpy.dtype(dtype).kind in "iu":
        host = numpy.trunc(host)
    t = Tensor._make(get_backend(device).asarray(host.astype(dtype), dtype=dtype))
    return t.requires_grad_(True) if requires_grad else t
