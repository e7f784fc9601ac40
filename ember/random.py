"""Ember's global random state: one NumPy ``Generator`` for the cpu (and, later, one per GPU).

``manual_seed`` reseeds it; ``get_rng_state``/``set_rng_state`` make it part of a
checkpoint so a resumed run draws the same numbers.  Draws happen on the host
and are copied to the target device, so cpu and cuda runs with one seed match.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember import dtypes

_generator = numpy.random.default_rng()


def manual_seed(seed: int) -> numpy.random.Generator:
    """Reseed the global generator; returns it."""
    global _generator
    if not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer, got {seed!r}")
    _generator = numpy.random.default_rng(int(seed))
    return _generator


def default_generator() -> numpy.random.Generator:
    """The generator every random factory and layer init draws from."""
    return _generator


def get_rng_state() -> dict:
    """The generator state as a JSON-able dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state from ``get_rng_state``."""
    _generator.bit_generator.state = state


def _random(op: str, draw: Any, shape: tuple, dtype: Any, device: Any, requires_grad: bool) -> Any:
    from ember.autograd.creation import _shape_args
    from ember.autograd.tensor import Tensor
    from ember.backends.device import get_backend

    shape = _shape_args(shape, op)
    dtype = dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype, op)
    host = draw(shape).astype(dtype, copy=False)
    t = Tensor._make(get_backend(device).asarray(host))
    return t.requires_grad_(True) if requires_grad else t


def rand(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """Uniform samples in [0, 1)."""
    return _random("rand", lambda s: _generator.random(s), shape, dtype, device, requires_grad)


def randn(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """Standard normal samples."""
    return _random("randn", lambda s: _generator.standard_normal(s), shape, dtype, device, requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = None, device: Any = None) -> Any:
    """Integers in ``[low, high)`` (int64 by default)."""
    from ember.autograd.creation import _shape_args
    from ember.autograd.tensor import Tensor
    from ember.backends.device import get_backend

    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    shape = _shape_args((size,) if isinstance(size, int) else (tuple(size),), "randint")
    dtype = dtypes.int64 if dtype is None else dtypes.to_dtype(dtype, "randint")
    host = _generator.integers(low, high, size=shape).astype(dtype)
    return Tensor._make(get_backend(device).asarray(host))


def randperm(n: int, device: Any = None) -> Any:
    """A random permutation of ``0..n-1`` (int64)."""
    from ember.autograd.tensor import Tensor
    from ember.backends.device import get_backend

    return Tensor._make(get_backend(device).asarray(_generator.permutation(n).astype(numpy.int64)))
