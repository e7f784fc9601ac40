"""Helpers shared by the optimizers: hyper-parameter checks and state-dict value conversion."""

from __future__ import annotations

import numbers
from typing import Any

import numpy

from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of


def check_nonnegative(opt: str, name: str, value: Any) -> None:
    """Raise unless ``value`` is a real number >= 0 (messages name the optimizer and the value)."""
    _check_real(opt, name, value)
    if not value >= 0:
        raise ValueError(f"{opt}: expected {name} >= 0, got {value!r}")


def check_unit_interval(opt: str, name: str, value: Any, *, open_right: bool) -> None:
    """Raise unless ``0 <= value < 1`` (``open_right``) or ``0 <= value <= 1``."""
    _check_real(opt, name, value)
    ok = 0 <= value < 1 if open_right else 0 <= value <= 1
    if not ok:
        raise ValueError(f"{opt}: expected 0 <= {name} {'<' if open_right else '<='} 1, got {value!r}")


def _check_real(opt: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{opt}: expected {name} to be a real number, got {value!r} ({type(value).__name__})")


def host_copy(value: Any) -> Any:
    """A NumPy copy of a backend array; plain values unchanged."""
    if isinstance(value, (bool, int, float)):
        return value
    return numpy.array(backend_of(value).to_host(value), copy=True)


def to_host(value: Any) -> numpy.ndarray | None:
    """A NumPy view/copy of an array-like state entry, or None when it is not one."""
    if isinstance(value, Tensor):
        return value.numpy()
    if isinstance(value, numpy.ndarray):
        return value
    try:
        return numpy.asarray(backend_of(value).to_host(value))
    except TypeError:
        return None


def as_index(key: Any, where: str) -> int:
    """State-dict parameter ids are ints; accept int-like strings (keys that went through JSON)."""
    if isinstance(key, (int, numpy.integer)) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    raise ValueError(f"{where}: expected integer parameter indices, got {key!r}")


def as_count(value: Any, where: str) -> int:
    host = to_host(value) if not isinstance(value, numbers.Number) else None
    if host is not None and host.size == 1:
        value = host.reshape(()).item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer() and value >= 0:
        return int(value)
    raise ValueError(f"{where}: expected a non-negative integer step count, got {value!r}")


def describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return type(value).__name__ + (f" of shape {tuple(shape)}" if shape is not None else "")
