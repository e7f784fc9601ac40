"""``ember.cuda``: whether a CUDA device is usable, which one is current, waiting for it, and CUDA graphs.

``ember.cuda.graphs`` (also ``ember.cuda.CUDAGraph`` and ``ember.cuda.graph``) captures
a step as one CUDA graph; it is imported on first use.

Everything here works without CuPy: queries answer "no GPU" (``is_available``
False, ``device_count`` 0) and calls that need a GPU raise the same
install hint as ``device="cuda"`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ember.backends.device import Device, cuda_available, cuda_unavailable_message


def is_available() -> bool:
    """True when CuPy is installed and sees a GPU; when False, :func:`install_hint` says what to install."""
    return cuda_available()


def install_hint() -> str:
    """Why CUDA is unusable here and which extra to install: ``gpu-cuda12`` or ``gpu-cuda13`` (``gpu`` = 12)."""
    return cuda_unavailable_message("cuda")


def _cupy(what: str) -> Any:
    """The ``cupy`` module, or a RuntimeError saying how to get a usable GPU."""
    if not cuda_available():
        raise RuntimeError(f"ember.cuda.{what}: " + cuda_unavailable_message("cuda"))
    import cupy

    return cupy


def _index(dev: Any) -> int:
    """The CUDA ordinal of ``dev`` (an int, ``"cuda:N"`` or a ``Device``)."""
    if isinstance(dev, int) and not isinstance(dev, bool):
        return dev
    d = Device(dev)
    if d.type != "cuda":
        raise ValueError(f"ember.cuda: expected a cuda device, got {d}")
    return d.index or 0


def device_count() -> int:
    """Number of visible CUDA devices (0 without CuPy or without a GPU)."""
    if not cuda_available():
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


def current_device() -> int:
    """The ordinal of CuPy's current device (where ops on new arrays run)."""
    return int(_cupy("current_device").cuda.runtime.getDevice())


def set_device(dev: Any) -> None:
    """Make ``dev`` (int, ``"cuda:N"`` or ``Device``) the current CUDA device."""
    _cupy("set_device").cuda.Device(_index(dev)).use()


@contextlib.contextmanager
def device(dev: Any) -> Iterator[None]:
    """``with ember.cuda.device(1):`` runs ops on ``cuda:1`` and restores the previous device."""
    with _cupy("device").cuda.Device(_index(dev)):
        yield


def get_device_name(dev: Any = 0) -> str:
    """The GPU's marketing name, e.g. ``"NVIDIA H200"``."""
    cupy = _cupy("get_device_name")
    name = cupy.cuda.runtime.getDeviceProperties(_index(dev))["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize() -> None:
    """Wait for queued GPU work on the current device (a no-op without CUDA)."""
    if cuda_available():
        import cupy

        cupy.cuda.Device().synchronize()
    from ember.backends.deferred_checks import raise_pending

    raise_pending()  # the device is idle now: GPU-side input checks report here


# CUDA graphs (``ember.cuda.graphs``), loaded on first use: ``em.cuda.graph(g)``, ``em.cuda.CUDAGraph()``.
_GRAPH_NAMES = ("CUDAGraph", "graph", "graph_pool_handle", "capture_stream", "is_current_stream_capturing")


def __getattr__(name: str) -> Any:
    if name == "graphs" or name in _GRAPH_NAMES:
        import importlib

        graphs = importlib.import_module("ember.cuda.graphs")
        return graphs if name == "graphs" else getattr(graphs, name)
    raise AttributeError(f"module 'ember.cuda' has no attribute {name!r}")
