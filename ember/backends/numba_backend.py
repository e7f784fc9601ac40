"""The Numba CPU backend: the NumPy backend with its hot kernels compiled by Numba.

``NumbaBackend`` works on the same ``numpy.ndarray`` objects as the reference
backend (``device="cpu"``) and differs only in its kernel namespaces
``conv_kernels``, ``pool_kernels``, ``nn_kernels`` and ``optim_kernels``.  Ops
find them with ``getattr(backend, "<name>", reference_module)``.

Every namespace is loaded on first attribute access (a caching descriptor),
so ``import ember`` neither imports numba nor compiles anything; the first op
that needs a kernel pays the import (~0.3 s) and a cache load or compile.  If
numba is installed but cannot be imported (e.g. a NumPy newer than it
supports), the namespace falls back to the reference module with one
``RuntimeWarning`` instead of failing the op.

The first namespace access also applies the thread policy of
``ember.backends.threads`` (one BLAS thread on 2-core machines) and the host
allocator policy of ``ember.backends.allocator`` (no page faults per step).  Which backend
owns ``numpy.ndarray`` is decided in ``ember.backends.selection``.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from types import ModuleType

from ember.backends.allocator import apply_allocator_policy
from ember.backends.numpy_backend import NumpyBackend
from ember.backends.threads import apply_thread_policy

# (numba module, reference module) per kernel namespace; a missing module is skipped.
KERNEL_MODULES = {
    "conv_kernels": ("ember.backends.numba_conv", "ember.backends.conv_kernels"),
    "pool_kernels": ("ember.backends.numba_pool", "ember.backends.pool_kernels"),
    "nn_kernels": ("ember.backends.numba_nn", "ember.backends.nn_kernels"),
    "optim_kernels": ("ember.backends.numba_optim", "ember.backends.optim_kernels"),
}


def numba_installed() -> bool:
    """True when a ``numba`` package is importable in principle (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def load_kernels(attr: str) -> ModuleType | None:
    """The module serving kernel namespace ``attr``: Numba's if present, else the reference, else None.

    Raises:
        KeyError: ``attr`` is not one of ``KERNEL_MODULES``.
    """
    fast, reference = KERNEL_MODULES[attr]
    if _module_exists(fast):
        try:
            return importlib.import_module(fast)
        except ImportError as exc:  # numba present but broken: keep training on the reference
            warnings.warn(
                f"ember: cannot load Numba kernels {fast} ({exc}); using the NumPy reference "
                f"{reference} instead (set EMBER_CPU_KERNELS=numpy to silence this)",
                RuntimeWarning,
                stacklevel=3,
            )
    if _module_exists(reference):
        return importlib.import_module(reference)
    return None


class _KernelNamespace:
    """A lazily loaded kernel module attribute; absent (AttributeError) when no module serves it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type) -> ModuleType:
        if instance is None:
            return self  # type: ignore[return-value]
        apply_thread_policy()  # one BLAS/Numba thread policy for every kernel namespace
        apply_allocator_policy()  # reuse freed step buffers instead of re-faulting pages
        module = load_kernels(self.name)
        if module is None:
            raise AttributeError(f"{type(instance).__name__} has no {self.name} (no module provides it)")
        instance.__dict__[self.name] = module  # later lookups are plain attribute hits
        return module


class NumbaBackend(NumpyBackend):
    """CPU backend over NumPy arrays whose kernel namespaces are Numba-compiled modules."""

    name = "numba"

    conv_kernels = _KernelNamespace()
    pool_kernels = _KernelNamespace()
    nn_kernels = _KernelNamespace()
    optim_kernels = _KernelNamespace()

    def __repr__(self) -> str:
        return "NumbaBackend(device='cpu')"


NUMBA_BACKEND = NumbaBackend()
