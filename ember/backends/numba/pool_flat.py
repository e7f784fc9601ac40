"""How many equal parts a flat elementwise kernel is cut into on Numba's pool, and where they start.

Optimizer updates and activation gradients are one pass over memory: a
784x512 SGD update reads and writes about 5 MB and runs at the speed of one
core's memory traffic.  On the pool (``pool_region``, whose workers are still
spinning from the step's last product) two halves take a region start of a few
microseconds plus half the time.  Each part is a contiguous run of elements
that starts on a 64-byte boundary, so no two threads write one cache line, and
an elementwise kernel gives the same bits however the array is cut.

Kernels keep their own parallel driver next to them (Numba's disk cache checks
only the compiled function's own file); this module holds the shared rules.
"""

from __future__ import annotations

from typing import Any

import numba

from ember.backends.cpu.threads import batch_workers
from ember.backends.numba import pool_region

# Smallest array (elements) cut into parts: about 20 us of one core's update, where a
# region's start (2-3 us) and the wait for the slower part stop paying (``python -m benchmarks.setting_ab``).
MIN_POOL_ELEMENTS = 1 << 16
# Part edges fall on multiples of this many elements (64 bytes of float32).
ALIGN = 16


def parts(size: int) -> int:
    """Parts a flat kernel over ``size`` elements runs in (1: the serial kernel on this thread)."""
    if size < MIN_POOL_ELEMENTS or not pool_region.available():
        return 1
    return max(1, min(batch_workers(), pool_region.POOL_THREADS))


@numba.njit(nogil=True, cache=True)
def part_edge(size, part, count):  # pragma: no cover - compiled
    """First element of part ``part`` of ``count`` over ``size`` elements (``size`` for ``part == count``)."""
    if part >= count:
        return size
    return (size * part // count) // ALIGN * ALIGN


def run(size: int, serial: Any, serial_args: tuple, parallel: Any, parallel_args: tuple, cost: int = 1) -> None:
    """``serial(*serial_args)``, or ``parallel(*parallel_args, count)`` in one region when ``size`` is large.

    ``cost`` weighs an element against a plain update's (Adam's square root and divisions: 2), so the
    cut happens at about the same time of one core's work for every kernel.
    """
    work = size * cost
    if work < MIN_POOL_ELEMENTS:  # a bias or a small layer: straight to the serial kernel
        serial(*serial_args)
        return
    count = parts(work)
    if count <= 1:
        serial(*serial_args)
        return
    previous = pool_region.enter(count)
    try:
        parallel(*parallel_args, count)
    finally:
        pool_region.leave(previous)
