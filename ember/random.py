"""Random Tensor factories (``rand``, ``randn``, ``randint``, ``randperm``) and the seed API.

The generator state itself lives in ``ember.generator`` (below autograd, so ops
can draw from it); this module re-exports ``manual_seed``, ``get_rng_state``,
``set_rng_state`` and ``default_generator``, and the counter-based
``PhiloxGenerator`` that dropout masks come from (``ember.philox_generator``).  Draws happen on the host and are
copied to the target device, so cpu and cuda runs with one seed match.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember import dtypes

from ember.generator import default_generator, get_rng_state, manual_seed, set_rng_state  # noqa: F401  (public here)
from ember.philox_generator import PhiloxGenerator, default_philox_generator  # noqa: F401  (public here)


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
    return _random("rand", lambda s: default_generator().random(s), shape, dtype, device, requires_grad)


def randn(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """Standard normal samples."""
    return _random("randn", lambda s: default_generator().standard_normal(s), shape, dtype, device, requires_grad)


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
    host = default_generator().integers(low, high, size=shape).astype(dtype)
    return Tensor._make(get_backend(device).asarray(host))


def randperm(n: int, device: Any = None) -> Any:
    """A random permutation of ``0..n-1`` (int64)."""
    from ember.autograd.tensor import Tensor
    from ember.backends.device import get_backend

    return Tensor._make(get_backend(device).asarray(default_generator().permutation(n).astype(numpy.int64)))
