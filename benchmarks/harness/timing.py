"""Timers and memory probes used inside a worker process.

A sample is the mean time of ``inner`` back-to-back calls; ``inner`` is
calibrated so a sample lasts at least ``min_sample_s`` (timer resolution and
Python noise stop mattering).  On a GPU each sample is bracketed by device
synchronisation, and by CUDA events when the target supplies them, so
asynchronous launches are never mistaken for finished work.

Memory of one call, in a long-lived worker: NumPy reports its buffers to
``tracemalloc``, so for NumPy-based targets the traced peak of one call is
exactly the memory it allocates on top of what was live before.  Frameworks
with their own allocator (PyTorch's CPU tensors are invisible to tracemalloc)
use the resident set instead: on Linux the peak (VmHWM) can be reset by
writing ``5`` to ``/proc/self/clear_refs``, and ``peak - resident before`` is
the growth during the call (a lower bound: memory the C allocator kept from
earlier calls is reused without growing the resident set).

Peak RSS of a case: the same reset at the start of each case makes VmHWM the
worker's peak resident set during this case alone: interpreter, framework,
model, data and every call.  VmHWM rather than ``getrusage``'s ``ru_maxrss``:
Linux computes ``ru_maxrss`` as the larger of VmHWM and a per-process floor
that ``exec`` sets to the resident set of the parent image being replaced, so
a worker spawned by a 70 MB parent reports at least 70 MB forever.  Where the
counter cannot be reset (off Linux), ``ru_maxrss``, the lifetime peak, is used.
"""

from __future__ import annotations

import math
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable


class WallTimer:
    """Wall-clock time of ``inner`` calls between two device synchronisations."""

    kind = "perf_counter"

    def __init__(self, sync: Callable[[], None] = lambda: None):
        self.sync = sync

    def time(self, fn: Callable[[], Any], inner: int) -> float:
        """Seconds per call, averaged over ``inner`` calls."""
        self.sync()
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        self.sync()
        return (time.perf_counter() - t0) / inner


class EventTimer:
    """Device time between two CUDA events recorded around ``inner`` calls.

    ``make_event()`` returns an object with ``record()`` and ``synchronize()``;
    ``elapsed_ms(start, end)`` reads the time between two recorded events.
    """

    kind = "cuda-event"

    def __init__(self, make_event: Callable[[], Any], elapsed_ms: Callable[[Any, Any], float],
                 sync: Callable[[], None]):
        self.make_event, self.elapsed_ms, self.sync = make_event, elapsed_ms, sync

    def time(self, fn: Callable[[], Any], inner: int) -> float:
        """Seconds per call, averaged over ``inner`` calls (device time)."""
        self.sync()
        start, end = self.make_event(), self.make_event()
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return self.elapsed_ms(start, end) / 1e3 / inner


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` single calls of ``fn`` (quick probes outside the harness)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    mid = len(times) // 2
    return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2


def calibrate_inner(call_s: float, min_sample_s: float, cap: int = 100_000) -> int:
    """How many calls one sample needs to last at least ``min_sample_s``."""
    if call_s <= 0:
        return cap
    return max(1, min(cap, math.ceil(min_sample_s / call_s)))


def plan_repeats(call_s: float, inner: int, repeats: int, max_case_s: float, min_repeats: int = 3) -> int:
    """Repeats to take: ``repeats``, cut so the case stays within ``max_case_s`` (never below ``min_repeats``)."""
    fit = int(max_case_s // max(call_s * inner, 1e-12))
    return max(min(repeats, min_repeats), min(repeats, fit))


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status, or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def rss_bytes() -> int | None:
    """Current resident set size of this process (None off Linux)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """Peak resident set since the last reset (VmHWM)."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def max_rss_bytes() -> int:
    """The process's lifetime peak resident set as ``getrusage`` reports it (``ru_maxrss``), in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


def start_case_peak() -> tuple[int | None, str]:
    """Trim the heap and reset the peak-RSS counter before a case: ``(rss now, source of case_peak_rss)``.

    The source is ``VmHWM`` (the peak since this reset) where the reset works,
    else ``ru_maxrss`` (the process's lifetime peak).
    """
    _trim_heap()
    source = "VmHWM" if reset_peak_rss() and peak_rss_bytes() is not None else "ru_maxrss"
    return rss_bytes(), source


def case_peak_rss(source: str) -> int:
    """The peak resident set from ``source`` (see ``start_case_peak``), in bytes."""
    if source == "VmHWM":
        peak = peak_rss_bytes()
        if peak is not None:
            return peak
    return max_rss_bytes()


def traced_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated through tracemalloc-aware allocators (Python, NumPy) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _trim_heap() -> None:
    """Hand free heap pages back to the OS (glibc ``malloc_trim``) so the next call's growth shows in RSS."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_peak_bytes(fn: Callable[[], Any]) -> int | None:
    """Growth of the resident set while ``fn`` runs (None where the peak cannot be reset)."""
    _trim_heap()
    if not reset_peak_rss():
        fn()
        return None
    before = rss_bytes()
    fn()
    peak = peak_rss_bytes()
    return None if peak is None or before is None else max(0, peak - before)
