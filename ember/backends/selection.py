"""Which backend runs ``device="cpu"`` arrays: the Numba kernels or the NumPy reference.

Both backends own ``numpy.ndarray``; exactly one is registered for it at a time.
The start value comes from ``EMBER_CPU_KERNELS`` (``numba`` or ``numpy``; unset
means ``numba`` when a numba package is installed, else ``numpy``), read once
when ``ember.backends`` is imported.  ``set_cpu_kernels`` switches at run time
and ``use_cpu_kernels`` switches for a ``with`` block (tests, benchmarks).

The check for numba uses ``importlib.util.find_spec`` only: importing numba
costs ~0.3 s and would make ``import ember`` pay it even for users who never
run a conv.  The switch affects ops started afterwards; a graph recorded under
one backend runs its backward with the backend its nodes recorded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy

from ember.backends.device import register_backend
from ember.backends.numba.backend import NUMBA_BACKEND, numba_installed
from ember.backends.reference.backend import NUMPY_BACKEND

CPU_KERNELS = ("numba", "numpy")
ENV_VAR = "EMBER_CPU_KERNELS"
_BACKENDS = {"numba": NUMBA_BACKEND, "numpy": NUMPY_BACKEND}
_current = ["numpy"]


def _validate(name: object, source: str) -> str:
    """``name`` lower-cased if it is a valid kernel set, else a ValueError naming the valid ones."""
    if not isinstance(name, str) or name.strip().lower() not in CPU_KERNELS:
        raise ValueError(
            f"{source}: expected one of {', '.join(repr(k) for k in CPU_KERNELS)}, got {name!r}"
        )
    name = name.strip().lower()
    if name == "numba" and not numba_installed():
        raise RuntimeError(
            f"{source}: 'numba' kernels were asked for but numba is not installed; "
            "`pip install numba` or select 'numpy'"
        )
    return name


def cpu_kernels() -> str:
    """The name of the kernel set now running cpu arrays: ``"numba"`` or ``"numpy"``."""
    return _current[0]


def set_cpu_kernels(name: str) -> str:
    """Run cpu arrays with kernel set ``name`` (``"numba"`` or ``"numpy"``) from now on.

    Args:
        name: ``"numba"`` (compiled kernels) or ``"numpy"`` (the readable reference).

    Returns:
        The previous kernel set's name.

    Raises:
        ValueError: ``name`` is not a known kernel set.
        RuntimeError: ``"numba"`` was asked for and numba is not installed.
    """
    name = _validate(name, "set_cpu_kernels")
    previous = _current[0]
    register_backend(_BACKENDS[name], (numpy.ndarray,))
    _current[0] = name
    return previous


@contextlib.contextmanager
def use_cpu_kernels(name: str) -> Iterator[str]:
    """Context manager: ``set_cpu_kernels(name)`` inside the block, the previous set after it."""
    previous = set_cpu_kernels(name)
    try:
        yield name
    finally:
        set_cpu_kernels(previous)


def default_cpu_kernels(environ: os._Environ[str] | dict | None = None) -> str:
    """The kernel set named by ``EMBER_CPU_KERNELS`` (``numba`` if installed when unset).

    Raises:
        ValueError: the variable holds an unknown name.
        RuntimeError: it asks for numba and numba is not installed.
    """
    env = os.environ if environ is None else environ
    value = env.get(ENV_VAR, "")
    if value.strip() == "":
        return "numba" if numba_installed() else "numpy"
    return _validate(value, f"environment variable {ENV_VAR}")


set_cpu_kernels(default_cpu_kernels())
