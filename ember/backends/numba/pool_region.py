"""How ember's compiled ``prange`` regions share Numba's thread pool: sized per call, one region at a time.

``enter(workers, dynamic)`` takes ``LOCK`` and, where needed, sets this
thread's region size to ``workers`` (capped at Numba's pool) and, for
``dynamic`` regions, a chunk size of one iteration (each slice goes to whichever
thread is free, so a thread that lost its core takes fewer); ``leave`` puts
both back and releases the lock.  Numba's setters cost 1-3 us each from
Python, so they run only when the value differs from the default: on a small
machine the workers are the pool's threads, and a GEMM's blocks (as many as
threads) keep the default equal static blocks.

The lock keeps two Python threads from starting regions at once, which
Numba's ``workqueue`` layer (the fallback where OpenMP and TBB are missing)
answers by aborting the process; on a small machine two concurrent regions
would only take turns anyway.
"""

from __future__ import annotations

import threading

import numba

LOCK = threading.Lock()
POOL_THREADS = max(1, int(numba.config.NUMBA_NUM_THREADS))


def enter(workers: int, dynamic: bool = False) -> tuple[int, int] | None:
    """Take the lock and size the next region; returns what ``leave`` must restore (None: nothing changed)."""
    LOCK.acquire()
    threads = max(1, min(int(workers), POOL_THREADS))
    if threads == POOL_THREADS and not dynamic:
        return None
    try:
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
