"""Input checks that run on the GPU and raise at the next host sync instead of forcing one.

Reading a device value on the host (``int(array.max())``) waits for every queued
kernel, so a check like "class indices in [0, C)" would stall each CUDA training
step twice.  Instead the op keeps the values it needs (a running min and max, as
0-d device arrays) here, and the next natural sync point - ``Tensor.item()``,
``.numpy()``, ``.tolist()``, ``bool(tensor)``, ``ember.cuda.synchronize()`` -
reads them and raises.  The queue is one running entry per (op, bound, device),
so it never grows however long nobody syncs.  The price: the error surfaces one
sync late (as PyTorch's device-side asserts do), and the kernels must stay
memory-safe on a bad value meanwhile.  On the CPU the ops check eagerly instead.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

_LOCK = threading.Lock()
# key -> [low, high, raise_for]: the running device-side extremes and the error to raise.
_PENDING: dict = {}


def defer_range_check(key: tuple, xp: Any, values: Any, raise_for: Callable[[int, int], None]) -> None:
    """Fold ``values``' min and max into the pending entry ``key`` (device ops only, no sync).

    ``raise_for(low, high)`` is called with the host values at the next sync
    point and raises when they are out of range (it returns otherwise).
    """
    low, high = values.min(), values.max()
    with _LOCK:
        entry = _PENDING.get(key)
        if entry is None:
            _PENDING[key] = [low, high, raise_for]
        else:
            entry[0], entry[1] = xp.minimum(entry[0], low), xp.maximum(entry[1], high)


def has_pending() -> bool:
    """True while a deferred check waits for a sync point."""
    return bool(_PENDING)


def raise_pending() -> None:
    """Read every pending check (the caller is syncing anyway) and raise the first that failed.

    All entries are cleared first, so one bad batch raises once, not at every later sync.
    """
    if not _PENDING:
        return
    with _LOCK:
        entries = list(_PENDING.values())
        _PENDING.clear()
    for low, high, raise_for in entries:
        raise_for(int(low), int(high))
