"""The NumPy reference backend: host arrays, kernels from ``ember.backends.reference``."""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.arrays import ArrayOps
from ember.backends.base import Backend
from ember.backends.device import CPU, register_backend


class NumpyBackend(Backend):
    """Reference CPU backend over NumPy arrays."""

    name = "numpy"
    device_type = "cpu"
    array_type = numpy.ndarray

    def __init__(self) -> None:
        self.xp = numpy
        self.ops = ArrayOps(numpy)

    def device_of(self, array: Any) -> Any:
        """Every NumPy array lives on the cpu."""
        return CPU

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Host data (lists, scalars, NumPy arrays) as a NumPy array."""
        return numpy.asarray(data, dtype=dtype)

    @staticmethod
    def to_host(array: Any) -> numpy.ndarray:
        """A NumPy view of ``array`` (no copy on the CPU)."""
        return array

    def synchronize(self) -> None:
        """Nothing to wait for: NumPy is synchronous."""


NUMPY_BACKEND = NumpyBackend()
register_backend(NUMPY_BACKEND, (numpy.ndarray,))
