"""What ``ember.cuda.graphs`` tells the backends while it captures a CUDA graph.

``CAPTURING[0] > 0`` during a capture. Host->device copies are refused then, so a
backend that must upload a small table whose contents the host knows (the
multi-tensor optimizer's pointer table) allocates it in the capture and queues
the upload here; the graph fills it right after the capture ends.

Such an array, filled by the host rather than by a kernel of the graph, must
come from :func:`host_filled_empty`: the graph's private pool hands memory freed
earlier in the same capture to later allocations, which is safe for what the
graph's kernels write (in stream order) but not for host-written values, which
a kernel that used the same memory as scratch earlier in the graph would
overwrite at every replay.
"""

from __future__ import annotations

from typing import Any

CAPTURING = [0]
UPLOADS: list = []  # (device array, host copy) of the capture in progress
HOST_FILLED: list = [None]  # the capturing graph's allocator of host-filled arrays (set by ember.cuda.graphs)
_HOST_FILLED_IDS: set = set()  # id() of each array it made in the capture in progress (alive: the graph keeps them)


def host_filled_empty(xp: Any, shape: tuple, dtype: Any) -> Any:
    """An uninitialised array for the capture in progress that the host fills, never shared with graph scratch.

    Raises:
        RuntimeError: no capture is in progress.
    """
    if not CAPTURING[0] or HOST_FILLED[0] is None:
        raise RuntimeError("host_filled_empty: no CUDA graph capture in progress")
    array = HOST_FILLED[0](xp, shape, dtype)
    _HOST_FILLED_IDS.add(id(array))
    return array


def is_host_filled(array: Any) -> bool:
    """True for an array :func:`host_filled_empty` made in the capture in progress."""
    return id(array) in _HOST_FILLED_IDS


def end() -> None:
    """Forget the capture that ended: its uploads and its host-filled arrays."""
    UPLOADS.clear()
    HOST_FILLED[0] = None
    _HOST_FILLED_IDS.clear()


def defer_upload(device_array: Any, host: Any) -> None:
    """Fill ``device_array`` from ``host`` right after the capture ends.

    Raises:
        RuntimeError: no capture is in progress, or the array is not from :func:`host_filled_empty`.
    """
    if not CAPTURING[0]:
        raise RuntimeError("defer_upload: no CUDA graph capture in progress")
    if not is_host_filled(device_array):
        raise RuntimeError("defer_upload: allocate the array with host_filled_empty (the graph's scratch memory "
                           "would overwrite an upload)")
    UPLOADS.append((device_array, host.copy()))
