"""Devices and array backends.

A backend knows arrays, never tensors: its name, its array module ``xp``, how
to copy host<->device, ``synchronize()``, and a namespace of array functions
(``ops``) that op backwards call.  NumPy is the reference backend; CuPy is
imported lazily only when a CUDA device is asked for.
"""

from ember.backends.device import Device, device, get_backend, backend_of, cuda_available
from ember.backends.numpy_backend import NUMPY_BACKEND

__all__ = ["Device", "device", "get_backend", "backend_of", "cuda_available", "NUMPY_BACKEND"]
