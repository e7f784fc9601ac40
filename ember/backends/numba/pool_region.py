"""How ember's compiled ``prange`` regions share Numba's thread pool: sized per call, one region at a time.

``enter(workers, dynamic)`` takes ``LOCK`` and, where needed, sets this
thread's region size and, for ``dynamic`` regions, a chunk size of one
iteration (each slice goes to whichever thread is free); ``leave`` puts both
back and releases the lock.  Numba's setters cost 1-3 us each from Python, so
they run only when the value differs from the default: on an idle small
machine the workers are the pool's threads, and a GEMM's blocks (as many as
threads) keep the default equal static blocks.

The size is ``workers`` (capped at the pool) while other processes use at most
``MAX_OTHER_BUSY_CORES`` of this process's cores (``ember.backends.cpu.core_load``,
read at most every 0.2 s), else 1: a region waits for its slowest thread, and
one that lost its core to another process made a step 1.5x slower than one
thread alone (``docs/engineering/cpu-round4.md``).  On one thread a region
runs the very same blocks and slices in the same order, so the results do not
depend on the load.

A process forked after its pool started must not start a region (GNU OpenMP
is not fork-safe: Numba terminates such a child), so ``available()`` is false
in it and callers run the same blocks and slices without the pool.

The lock keeps two Python threads from starting regions at once, which Numba's
``workqueue`` layer (the fallback where OpenMP and TBB are missing) answers by
aborting the process; on a small machine two concurrent regions would only
take turns anyway.
"""

from __future__ import annotations

import os
import threading

import numba

from ember.backends.cpu import core_load

LOCK = threading.Lock()
POOL_THREADS = max(1, int(numba.config.NUMBA_NUM_THREADS))
# Most CPU time (in cores) other processes may take on this process's cores for a region to use the pool.
MAX_OTHER_BUSY_CORES = 0.5
_owner = {"pid": None}  # the process whose regions started the pool


def available() -> bool:
    """False in a process forked from one whose pool had started (a region there would be terminated)."""
    pid = _owner["pid"]
    return pid is None or pid == os.getpid()


def region_threads(workers: int) -> int:
    """Threads the next region runs on: ``workers`` capped at the pool, or 1 while other processes hold a core."""
    threads = max(1, min(int(workers), POOL_THREADS))
    if threads > 1:
        busy = core_load.other_cores_busy()
        if busy is not None and busy > MAX_OTHER_BUSY_CORES:
            return 1
    return threads


def enter(workers: int, dynamic: bool = False) -> tuple[int, int] | None:
    """Take the lock and size the next region; returns what ``leave`` must restore (None: nothing changed)."""
    LOCK.acquire()
    if _owner["pid"] is None:
        _owner["pid"] = os.getpid()
    try:
        threads = region_threads(workers)
        if threads == POOL_THREADS and not dynamic:
            return None
        previous = numba.get_num_threads(), numba.get_parallel_chunksize()
        if previous[0] != threads:
            numba.set_num_threads(threads)
        if dynamic:
            numba.set_parallel_chunksize(1)
    except BaseException:
        LOCK.release()
        raise
    return previous


def leave(previous: tuple[int, int] | None) -> None:
    """Restore what ``enter`` changed and release the lock."""
    try:
        if previous is not None:
            numba.set_num_threads(previous[0])
            numba.set_parallel_chunksize(previous[1])
    finally:
        LOCK.release()
