"""The CuPy GPU backend: ``device="cuda"`` tensors hold ``cupy.ndarray``.

Imported lazily by ``ember.backends.device.get_backend`` the first time a CUDA
device is asked for, so ``import ember`` never imports CuPy.  Op bodies run
unchanged through ``xp = cupy``; the hot kernels (im2col/col2im, pooling,
fused softmax-cross-entropy, activation backward, batch-norm, optimizer
updates) are the kernel kinds of ``ember.backends.cupy`` (``conv``, ``pool``,
``nn``, ``optim``), exposed like every backend's (``ember.backends.base``).

Devices.  One ``CupyBackend`` is registered for the ``cupy.ndarray`` type, so
ops find it with one dict lookup and run on CuPy's *current* device (cuda:0
unless ``ember.cuda.set_device`` changed it).  ``get_backend("cuda:N")``
returns a per-device view whose factories and host->device copies run inside
``cupy.cuda.Device(N)``; tensors report their true device.  Ops on tensors of
another GPU need that GPU current (``with ember.cuda.device(N):``) -- CuPy
raises otherwise; ember does not switch devices per op, which keeps the
per-op cost to a dict lookup.
"""

from __future__ import annotations

import collections
from typing import Any

import cupy
import numpy

from ember.backends.base import Backend
from ember.backends.device import Device, register_backend
from ember.backends.arrays import ArrayOps, _is_basic_index, join_by_copies, stack_by_copies
from ember.backends.capture_state import CAPTURING

# CuPy joins more than this many arrays (of one dtype, small) in one kernel that reads a pointer
# table uploaded from the host (its ``_concatenate_single_kernel``): a CUDA graph capture refuses that.
CUPY_JOIN_TABLE_OVER = 8


class CupyArrayOps(ArrayOps):
    """``ArrayOps`` over CuPy: joins that a CUDA graph can capture; ``index_add`` without ``add.at`` too."""

    def concatenate(self, arrays: Any, axis: int = 0) -> Any:
        """``cupy.concatenate``; in a capture, more than eight arrays join by one copy each (no host table)."""
        arrays = list(arrays)
        if CAPTURING[0] and len(arrays) > CUPY_JOIN_TABLE_OVER:
            return join_by_copies(cupy, arrays, axis)
        return cupy.concatenate(arrays, axis=axis)

    def stack(self, arrays: Any, axis: int = 0) -> Any:
        """``cupy.stack``; in a capture, more than eight arrays join by one copy each (no host table)."""
        arrays = list(arrays)
        if CAPTURING[0] and len(arrays) > CUPY_JOIN_TABLE_OVER:
            return stack_by_copies(cupy, arrays, axis)
        return cupy.stack(arrays, axis=axis)

    def index_add(self, shape: tuple, index: Any, g: Any) -> Any:
        """Zeros of ``shape`` with ``g`` added at ``index`` (repeated indices accumulate)."""
        out = cupy.zeros(shape, dtype=g.dtype)
        if _is_basic_index(index):
            out[index] = g
        elif hasattr(cupy.add, "at"):
            cupy.add.at(out, index, g)
        else:
            import cupyx

            cupyx.scatter_add(out, index, g)
        return out


class _OnDevice:
    """CuPy's namespace with every function call made while GPU ``index`` is current."""

    def __init__(self, index: int):
        self._index = index

    def __getattr__(self, name: str) -> Any:
        attr = getattr(cupy, name)
        if not callable(attr) or isinstance(attr, type):
            return attr
        index = self._index

        def on_device(*args: Any, **kwargs: Any) -> Any:
            with cupy.cuda.Device(index):
                return attr(*args, **kwargs)

        return on_device


class PinnedStager:
    """Host->device copies through reusable page-locked buffers (asynchronous ``set``).

    Each (shape, dtype) keeps a ring of ``slots`` pinned buffers; a buffer is
    reused only after the event recorded behind its last copy has completed,
    so a batch can be staged while the previous one is still in flight.
    """

    def __init__(self, slots: int = 2):
        self.slots = slots
        self._rings: dict = {}

    def upload(self, host: numpy.ndarray, index: int) -> Any:
        """A new device array on GPU ``index`` holding ``host`` (copied via pinned memory)."""
        import cupyx

        host = numpy.ascontiguousarray(host)
        ring = self._rings.setdefault((index, host.shape, host.dtype.str), collections.deque())
        if len(ring) < self.slots:
            buf = cupyx.empty_pinned(host.shape, dtype=host.dtype)
        else:
            buf, event = ring.popleft()
            event.synchronize()
        buf[...] = host
        with cupy.cuda.Device(index):
            out = cupy.empty(host.shape, dtype=host.dtype)
            out.set(buf, stream=cupy.cuda.get_current_stream())
            event = cupy.cuda.Event(block=False, disable_timing=True)
            event.record()
        ring.append((buf, event))
        return out


class CupyBackend(Backend):
    """GPU backend over CuPy arrays; ``index`` None means CuPy's current device."""

    name = "cupy"
    device_type = "cuda"
    array_type = cupy.ndarray
    kernel_package = "ember.backends.cupy"

    def __init__(self, index: int | None = None):
        self.index = index
        self.xp = cupy if index is None else _OnDevice(index)
        self.ops = CupyArrayOps(cupy)
        self._devices: dict[int, Device] = {}
        self._views: dict[int, CupyBackend] = {}
        self._stager = PinnedStager()
        self._count: int | None = None

    def _device_index(self) -> int:
        return cupy.cuda.runtime.getDevice() if self.index is None else self.index

    def for_device(self, dev: Device) -> CupyBackend:
        """The view of this backend whose factories and copies target ``dev`` (cuda:N)."""
        index = 0 if dev.index is None else dev.index
        if self._count is None:
            self._count = cupy.cuda.runtime.getDeviceCount()  # fixed for the life of the process
        count = self._count
        if index >= count:
            raise RuntimeError(f"device {dev}: no such CUDA device, {count} visible (cuda:0 .. cuda:{count - 1})")
        view = self._views.get(index)
        if view is None:
            view = self._views[index] = CupyBackend(index)
        return view

    def device_of(self, array: Any) -> Device:
        """``cuda:<id>`` of the GPU holding ``array``."""
        idx = array.device.id
        dev = self._devices.get(idx)
        if dev is None:
            dev = self._devices[idx] = Device("cuda", idx)
        return dev

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Host data (lists, scalars, NumPy arrays) copied to this backend's GPU."""
        with cupy.cuda.Device(self._device_index()):
            return cupy.asarray(data, dtype=dtype)

    def upload(self, host: numpy.ndarray, pinned: bool = True) -> Any:
        """Copy a NumPy batch to the GPU, through pinned staging buffers when ``pinned``."""
        if not pinned:
            return self.asarray(host)
        return self._stager.upload(host, self._device_index())

    @staticmethod
    def to_host(array: Any) -> numpy.ndarray:
        """A NumPy copy of ``array`` (waits for the GPU)."""
        return cupy.asnumpy(array)

    def synchronize(self) -> None:
        """Wait until every queued kernel on this backend's GPU has finished."""
        cupy.cuda.Device(self._device_index()).synchronize()
        from ember.backends.deferred_checks import raise_pending

        raise_pending()  # GPU-side input checks report at a sync


CUPY_BACKEND = CupyBackend()
register_backend(CUPY_BACKEND, (cupy.ndarray,))
