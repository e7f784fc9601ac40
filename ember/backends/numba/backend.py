"""The Numba CPU backend: the NumPy backend with its hot kernels compiled by Numba.

``NumbaBackend`` works on the same ``numpy.ndarray`` objects as the reference
backend (``device="cpu"``); its kernel kinds come from ``ember.backends.numba``
where a module exists there and from the reference otherwise.  Modules load on
first attribute access, so ``import ember`` neither imports numba nor compiles
anything; the first op that needs a kernel pays the import and a cache load or
compile.  If numba is installed but cannot be imported (e.g. a NumPy newer than
it supports), the kind falls back to the reference with one ``RuntimeWarning``
instead of failing the op.

The first kernel load also applies the thread policy of
``ember.backends.cpu.threads`` (one BLAS thread on 2-core machines) and the
host allocator policy of ``ember.backends.cpu.allocator`` (no page faults per
step).  Which backend owns ``numpy.ndarray`` is decided in ``ember.backends.selection``.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from types import ModuleType

from ember.backends.base import REFERENCE_PACKAGE, module_exists
from ember.backends.cpu.allocator import apply_allocator_policy
from ember.backends.cpu.threads import apply_thread_policy
from ember.backends.reference.backend import NumpyBackend


def numba_installed() -> bool:
    """True when a ``numba`` package is importable in principle (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


class NumbaBackend(NumpyBackend):
    """CPU backend over NumPy arrays whose kernel kinds are Numba-compiled modules."""

    name = "numba"
    kernel_package = "ember.backends.numba"

    def load_kernels(self, kind: str) -> ModuleType:
        """The Numba module for ``kind`` if present and importable, else the reference's."""
        apply_thread_policy()  # one BLAS/Numba thread policy for every kernel kind
        apply_allocator_policy()  # reuse freed step buffers instead of re-faulting pages
        fast, reference = f"{self.kernel_package}.{kind}", f"{REFERENCE_PACKAGE}.{kind}"
        if module_exists(fast):
            try:
                return importlib.import_module(fast)
            except ImportError as exc:  # numba present but broken: keep training on the reference
                warnings.warn(
                    f"ember: cannot load Numba kernels {fast} ({exc}); using the NumPy reference "
                    f"{reference} instead (set EMBER_CPU_KERNELS=numpy to silence this)",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return importlib.import_module(reference)

    def __repr__(self) -> str:
        return "NumbaBackend(device='cpu')"


NUMBA_BACKEND = NumbaBackend()
