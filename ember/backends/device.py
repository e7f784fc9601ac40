"""The ``Device`` value type and the registry that maps devices and array types to backends.

Lookup by array type is a dict hit (``backend_of``) because it runs once per op
call.  This module imports no backend: each registers itself here when imported,
and the CuPy backend is named by ``register_backend_module`` (in the package root)
and imported on first use, so ``import ember`` never imports CuPy.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

_BACKEND_BY_ARRAY_TYPE: dict[type, Any] = {}
_BACKEND_BY_DEVICE_TYPE: dict[str, Any] = {}
_BACKEND_MODULES: dict[str, str] = {}  # device type -> module whose import registers its backend


class Device:
    """A place where tensors live: ``cpu`` or ``cuda:<index>`` (PyTorch's spelling)."""

    __slots__ = ("type", "index")

    def __init__(self, spec: "str | Device" = "cpu", index: int | None = None):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {spec!r}")
        name, _, idx = spec.partition(":")
        if name not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:<index>', got {spec!r}")
        if idx:
            if not idx.isdigit():
                raise ValueError(f"device: bad device index in {spec!r}")
            index = int(idx)
        if name == "cuda" and index is None:
            index = 0
        if name == "cpu" and index not in (None, 0):
            raise ValueError(f"device: cpu has no index {index}")
        self.type, self.index = name, (index if name == "cuda" else None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except (TypeError, ValueError):
                return False
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


CPU = Device("cpu")


def device(spec: "str | Device" = "cpu", index: int | None = None) -> Device:
    """Return a ``Device``; ``em.device("cuda")`` is ``cuda:0``."""
    return Device(spec, index)


def register_backend(backend: Any, array_types: tuple[type, ...]) -> None:
    """Make ``backend`` the owner of ``array_types`` and of its device type."""
    for t in array_types:
        _BACKEND_BY_ARRAY_TYPE[t] = backend
    _BACKEND_BY_DEVICE_TYPE[backend.device_type] = backend


def register_backend_module(device_type: str, module: str) -> None:
    """Name the module that registers the backend of ``device_type`` when imported (loaded on first use)."""
    _BACKEND_MODULES[device_type] = module


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cupy = importlib.import_module("cupy")
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError without a driver, ...
        return False


def get_backend(dev: "str | Device | None") -> Any:
    """The backend that runs tensors on ``dev`` (default cpu); loads CuPy lazily."""
    dev = CPU if dev is None else Device(dev)
    backend = _BACKEND_BY_DEVICE_TYPE.get(dev.type)
    if backend is None and dev.type in _BACKEND_MODULES:
        if dev.type == "cuda" and not cuda_available():
            raise RuntimeError(cuda_unavailable_message(dev))
        importlib.import_module(_BACKEND_MODULES[dev.type])
        backend = _BACKEND_BY_DEVICE_TYPE[dev.type]
    if dev.index is not None and hasattr(backend, "for_device"):
        backend = backend.for_device(dev)  # factories and copies go to cuda:N
    return backend


def cuda_unavailable_message(dev: "Device | str") -> str:
    """Why ``dev`` cannot be used (CuPy missing, or no GPU) and how to fix it."""
    if importlib.util.find_spec("cupy") is None:
        why = "CuPy is not installed"
    else:
        why = "CuPy is installed but sees no CUDA device (no NVIDIA GPU or driver)"
    return (
        f"device {dev}: CUDA is not available ({why}); on a machine with an NVIDIA GPU install the GPU "
        "extra for the driver's CUDA version (`nvidia-smi`): CUDA 12 `pip install ember[gpu]` (= ember[gpu-cuda12], "
        "cupy-cuda12x; in a checkout `pip install -e \".[gpu]\"`), CUDA 13 ember[gpu-cuda13] (cupy-cuda13x); or use device='cpu'"
    )


def backend_of(array: Any) -> Any:
    """The backend owning ``array`` (a dict lookup by type)."""
    try:
        return _BACKEND_BY_ARRAY_TYPE[type(array)]
    except KeyError:
        raise TypeError(f"ember: unsupported array type {type(array).__name__}") from None
