"""The ``Backend`` base class: what every backend object offers the ops.

A backend has a ``name``, a ``device_type``, its array module ``xp``, the
``ops`` namespace, host<->device copies, ``synchronize()``, and one attribute
per kernel kind (``conv``, ``pool``, ``nn``, ``optim``).  Each kind attribute is
a module with the reference's functions and signatures: the backend's own
``<kernel_package>.<kind>`` module when it has one, else the NumPy reference
``ember.backends.reference.<kind>``.  Modules load on first access, so
``import ember`` compiles and imports nothing a run does not use.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

REFERENCE_PACKAGE = "ember.backends.reference"


def module_exists(name: str) -> bool:
    """True when module ``name`` can be found (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


class KernelKind:
    """A backend attribute for one kernel kind, resolved by ``Backend.load_kernels`` on first access."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return self
        module = instance.load_kernels(self.name)
        instance.__dict__[self.name] = module  # later lookups are plain attribute hits
        return module


class Backend:
    """Base of the NumPy, Numba and CuPy backends; subclasses set the names, ``xp`` and copies."""

    name = "base"
    device_type = "cpu"
    kernel_package = REFERENCE_PACKAGE

    # One line per kernel kind; ``ember.backends.reference.<kind>`` must exist.
    conv = KernelKind()
    pool = KernelKind()
    nn = KernelKind()
    optim = KernelKind()
    softmax = KernelKind()

    @classmethod
    def kernel_kinds(cls) -> tuple[str, ...]:
        """The names of the kernel kind attributes (``("conv", "pool", "nn", "optim")``)."""
        return tuple(name for name, value in vars(Backend).items() if isinstance(value, KernelKind))

    def load_kernels(self, kind: str) -> ModuleType:
        """The module serving ``kind``: ``<kernel_package>.<kind>`` if it exists, else the reference's."""
        own = f"{self.kernel_package}.{kind}"
        if self.kernel_package != REFERENCE_PACKAGE and module_exists(own):
            return importlib.import_module(own)
        return importlib.import_module(f"{REFERENCE_PACKAGE}.{kind}")

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Host data (lists, scalars, NumPy arrays) as an array of this backend."""
        raise NotImplementedError

    @staticmethod
    def to_host(array: Any) -> Any:
        """A NumPy view or copy of ``array``."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait until queued work on this backend has finished."""
