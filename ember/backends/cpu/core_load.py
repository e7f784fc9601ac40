"""How much of this process's cores other processes are using right now (Linux ``/proc/stat``).

A split of the step over a thread pool only pays while no other process wants
its cores: the pool's workers wait for each other at the end of every region,
so one that loses its core stalls the whole call
(``ember.backends.numba.pool_region`` runs its regions on one thread then).  This module
measures that demand directly: the CPU time spent on this process's cores over
the last window (from the per-core counters of ``/proc/stat``, the
hypervisor's steal time included) minus this process's own CPU time
(``os.times``), in cores' worth.  Reading ``/proc/stat`` costs tens of
microseconds, so a new window is read at most every ``WINDOW_S`` seconds and
callers in between get the last window's figure.

Where ``/proc/stat`` cannot be read (not Linux, a sandbox), ``other_cores_busy``
returns None and callers keep their conservative choice.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

# Shortest window between two readings (s).  The counters tick at ``SC_CLK_TCK``
# (usually 100 Hz), so a window of a few dozen ticks per core keeps the
# rounding of both counters to a small fraction of a core.
WINDOW_S = 0.2
# A window longer than this in which this process used less than half a core
# spans a pause of ours (a benchmark's rest between samples, I/O) or a
# starvation.  The reading thread's run-queue wait tells them apart
# (``/proc/thread-self/schedstat``): a thread that waited for a core at least
# ``STARVED_WAIT_FRACTION`` of the window was starved and the window counts;
# otherwise it was a pause, what other processes did meanwhile says little about
# the next steps, and it is discarded (the last figure stands and a fresh window
# begins).  Where the wait cannot be read, a pause is discarded once and a second
# such window in a row counts.  Counting every second window made processes that
# take turns with others (the benchmark harness's workers) read the others' work
# as load and run single-threaded: the MLP's step 6.3 ms instead of 4.2.
STALE_S = 0.5
STARVED_WAIT_FRACTION = 0.25

_STAT = "/proc/stat"
_SCHEDSTAT = "/proc/thread-self/schedstat"
_lock = threading.Lock()
_state: dict[str, Any] = {"sample": None, "busy": None, "pid": None, "cpus": None, "hz": None, "skipped": False}


def _cpu_names() -> frozenset[bytes]:
    """``/proc/stat`` row names of the cores this process may run on (``b"cpu0"``, ...)."""
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        cpus = range(os.cpu_count() or 1)
    return frozenset(f"cpu{c}".encode() for c in cpus)


def parse_busy_ticks(stat: bytes, cpus: frozenset[bytes]) -> int | None:
    """Ticks the cores named in ``cpus`` spent not idle (user, nice, system, irq, softirq, steal).

    ``stat`` is the text of ``/proc/stat``; guest time is already inside user
    time, idle and iowait are left out.  None when no row of ``cpus`` is there.
    """
    busy = 0
    found = False
    for line in stat.split(b"\n"):
        if not line.startswith(b"cpu"):
            if found:  # the per-core rows are consecutive and come first
                break
            continue
        fields = line.split()
        if fields[0] not in cpus or len(fields) < 5:
            continue
        found = True
        ticks = [int(v) for v in fields[1:9]]
        busy += sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy if found else None


def _read_wait() -> tuple[int, float] | None:
    """``(thread id, seconds)`` the calling thread has waited on a run queue, or None when unreadable."""
    try:
        with open(_SCHEDSTAT, "rb") as f:
            fields = f.read().split()
        return threading.get_ident(), int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _read_sample() -> tuple[float, float, float, tuple | None] | None:
    """``(monotonic time, busy seconds of our cores, our own CPU seconds, _read_wait())``, or None when
    the counters are unreadable."""
    if _state["pid"] != os.getpid():  # first call, or a forked child with its own affinity
        _state.update(pid=os.getpid(), cpus=_cpu_names(), sample=None, busy=None, skipped=False)
        try:
            _state["hz"] = os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            _state["hz"] = None
    if not _state["hz"]:
        return None
    try:
        fd = os.open(_STAT, os.O_RDONLY)
        try:
            stat = os.read(fd, 1 << 16)
        finally:
            os.close(fd)
    except OSError:
        return None
    ticks = parse_busy_ticks(stat, _state["cpus"])
    if ticks is None:
        return None
    own = os.times()
    return time.monotonic(), ticks / _state["hz"], own.user + own.system, _read_wait()


def _starved(previous: tuple, current: tuple, wall: float) -> bool | None:
    """Whether the reading thread waited for a core over the window (None: unknown, e.g. another thread read)."""
    before, after = previous[3], current[3]
    if before is None or after is None or before[0] != after[0]:
        return None
    return after[1] - before[1] >= STARVED_WAIT_FRACTION * wall


def other_cores_busy() -> float | None:
    """Cores' worth of CPU time other processes took on this process's cores over the last window.

    0 on an idle machine, about 1 while another process spins on one core.
    None until a first window has been measured, or when ``/proc/stat`` cannot
    be read; across a pause of this process (not a starvation; see ``STALE_S``) the
    figure from before the pause stands until a new window is complete.  Cheap to call often: the counters are read
    at most every ``WINDOW_S`` seconds.
    """
    now = time.monotonic()
    previous = _state["sample"]
    if previous is not None and _state["pid"] == os.getpid() and now - previous[0] < WINDOW_S:
        return _state["busy"]
    with _lock:
        previous = _state["sample"] if _state["pid"] == os.getpid() else None
        if previous is not None and now - previous[0] < WINDOW_S:
            return _state["busy"]
        current = _read_sample()
        if current is None:
            _state["sample"] = _state["busy"] = None
            return None
        busy = None
        if previous is not None:
            wall = current[0] - previous[0]
            own = current[2] - previous[2]
            pause = wall > STALE_S and own < 0.5 * wall
            if pause:
                starved = _starved(previous, current, wall)
                pause = not starved if starved is not None else not _state["skipped"]
            _state["skipped"] = pause
            busy = _state["busy"] if pause else max(0.0, ((current[1] - previous[1]) - own) / wall)
        _state["sample"], _state["busy"] = current, busy
        return busy
