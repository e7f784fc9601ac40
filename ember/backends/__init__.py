"""Devices and array backends.

A backend knows arrays, never tensors: its name, its array module ``xp``, how
to copy host<->device, ``synchronize()``, and a namespace of array functions
(``ops``) that op backwards call.  NumPy is the reference backend; the Numba
backend runs the same NumPy arrays with compiled hot kernels and is the
default on ``device="cpu"`` when numba is installed (``EMBER_CPU_KERNELS`` or
``set_cpu_kernels`` choose); CuPy is imported lazily only when a CUDA device
is asked for.  Neither numba nor cupy is imported by ``import ember``.

Layout: ``base`` (the ``Backend`` class and its kernel kinds), ``device``
(``Device`` and the registry), ``selection`` (which backend runs cpu arrays),
``arrays`` (the ``ctx.xp`` namespace), ``geometry`` (window shape checks); one
subpackage per backend with the same module names (``reference``, ``numba``,
``cupy``: ``backend``, ``conv``, ``pool``, ``nn``, ``optim``) and ``cpu`` for
the thread, batch-split and allocator policies.
"""

from ember.backends.device import Device, device, get_backend, backend_of, cuda_available, register_backend_module
from ember.backends.reference.backend import NUMPY_BACKEND
from ember.backends.numba.backend import NUMBA_BACKEND
from ember.backends.selection import CPU_KERNELS, cpu_kernels, set_cpu_kernels, use_cpu_kernels

register_backend_module("cuda", "ember.backends.cupy.backend")  # imported on the first CUDA request

__all__ = [
    "Device", "device", "get_backend", "backend_of", "cuda_available", "NUMPY_BACKEND", "NUMBA_BACKEND",
    "CPU_KERNELS", "cpu_kernels", "set_cpu_kernels", "use_cpu_kernels",
]
