"""``ember.cuda``: whether a CUDA device is usable, and how many there are."""

from __future__ import annotations

from ember.backends.device import cuda_available


def is_available() -> bool:
    """True when CuPy is installed and sees a GPU (``pip install ember[gpu]``)."""
    return cuda_available()


def device_count() -> int:
    """Number of visible CUDA devices (0 without CuPy)."""
    if not cuda_available():
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


def synchronize() -> None:
    """Wait for queued GPU work (no-op without CUDA)."""
    if cuda_available():
        import cupy

        cupy.cuda.Device().synchronize()
