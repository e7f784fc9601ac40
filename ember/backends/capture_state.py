"""What ``ember.cuda.graphs`` tells the backends while it captures a CUDA graph.

``CAPTURING[0] > 0`` during a capture. Host->device copies are refused then, so a
backend that must upload a small table whose contents the host knows (the
multi-tensor optimizer's pointer table) allocates it in the capture and queues
the upload here; the graph fills it right after the capture ends.
"""

from __future__ import annotations

from typing import Any

CAPTURING = [0]
UPLOADS: list = []  # (device array, host copy) of the capture in progress


def defer_upload(device_array: Any, host: Any) -> None:
    """Fill ``device_array`` from ``host`` right after the capture ends.

    Raises:
        RuntimeError: no capture is in progress.
    """
    if not CAPTURING[0]:
        raise RuntimeError("defer_upload: no CUDA graph capture in progress")
    UPLOADS.append((device_array, host.copy()))
