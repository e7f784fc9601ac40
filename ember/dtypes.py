"""Dtypes: ember uses NumPy's dtype objects, so ``em.float32 == numpy.float32``.

float32 is the default for floating data; float64 is for gradcheck; float16 is
opt-in (``.half()`` or autocast).  Integer tensors hold labels and indices and
never require grad.
"""

from __future__ import annotations

from typing import Any

import numpy

float16 = half = numpy.dtype("float16")
float32 = float_ = numpy.dtype("float32")
float64 = double = numpy.dtype("float64")
int8 = numpy.dtype("int8")
int16 = numpy.dtype("int16")
int32 = numpy.dtype("int32")
int64 = long = numpy.dtype("int64")
uint8 = numpy.dtype("uint8")
bool_ = numpy.dtype("bool")

SUPPORTED = frozenset([float16, float32, float64, int8, int16, int32, int64, uint8, bool_])
FLOATING = frozenset([float16, float32, float64])

_default_dtype = float32


def to_dtype(dtype: Any, op: str = "dtype") -> numpy.dtype:
    """Normalise ``em.float32``, ``numpy.float32`` or ``"float32"`` to a NumPy dtype.

    Raises:
        TypeError: the dtype is not one ember supports.
    """
    try:
        dt = numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: expected a dtype such as ember.float32, got {dtype!r}") from None
    if dt not in SUPPORTED:
        raise TypeError(f"{op}: unsupported dtype {dt}; ember supports {sorted(str(d) for d in SUPPORTED)}")
    return dt


def get_default_dtype() -> numpy.dtype:
    """The dtype of floating tensors made from Python data (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Change the default floating dtype; only float16/32/64 are allowed."""
    global _default_dtype
    dt = to_dtype(dtype, "set_default_dtype")
    if dt not in FLOATING:
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dt}")
    _default_dtype = dt
