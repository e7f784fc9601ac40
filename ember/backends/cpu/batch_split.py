"""Run one batched kernel over slices of the batch on a small pool of threads.

Why threads over the batch, not BLAS threads.  A convolution step is a few
dozen GEMMs with 16-64 rows (``W @ col`` per image) plus memory-bound im2col
and col2im loops.  OpenBLAS parallelises each GEMM on its own and its workers
spin-wait for each other at the end of every call, so small GEMMs gain little
from a second thread, and as soon as another process holds a core they lose
badly (``ember.backends.cpu.threads``).  Splitting the *batch* instead gives each
thread whole images: im2col, the GEMMs (one BLAS thread each) and col2im of its
slice run with no synchronisation until the slice is done, so both the GEMMs
and the memory-bound loops scale, and a thread that loses its core only delays
its own slices while the other thread takes the remaining ones.

Measurements: ``docs/engineering/cpu-threads.md`` and ``benchmarks/results/thread_policy*.md``.

Rules that keep results reproducible and race-free:

* slices are fixed by the batch size and the worker count, never by timing;
* each slice writes only its own rows of the output; reductions over the
  batch (the weight gradient) return one partial per slice and the caller sums
  the partials in slice order, so a run repeats bit for bit;
* kernels that run inside a slice must release the GIL (Numba ``nogil=True``,
  NumPy's BLAS calls do), otherwise the threads only take turns.

Spinning helper threads were tried and dropped (``docs/engineering/cpu-threads.md``).
On the Numba backend the hot splits (conv slices, 2x2 max pooling, linear
layers' products) no longer come here: they run on Numba's own pool
(``ember.backends.numba.prange_slices`` and ``parallel_gemm``), whose spinning
workers a Python thread started right after would have to wait for.
``split_slices`` still cuts the batch for them.

The pool is created on first use and again after ``fork`` (a forked child has
no pool threads).  With one worker, or one slice, everything runs inline.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Slices per worker: more than one, so a worker slowed by another process
# leaves its remaining slices to the others; few enough that each slice's
# GEMMs stay large.  DeepConvNet step (batch 100, 2 workers), 4 against 2,
# alternating in one process: 0.90, 0.91, 0.91 of the time (40-60 rounds
# each); 3, 5 and 6 were within 0.95-1.0, 8 gave 0.91.  Smaller slices leave
# the main thread less time waiting for the helper's last slice and keep each
# slice's column buffer (5.6 MB for conv2 instead of 11.3 MB) nearer the caches.
SLICES_PER_WORKER = 4

_pool_lock = threading.Lock()
_pool: dict[str, Any] = {"executor": None, "workers": 0, "pid": None}


def split_slices(
    chunks: Sequence[slice], workers: int, *, min_items: int = 1, per_worker: int = SLICES_PER_WORKER
) -> list[slice]:
    """Cut each ``chunk`` into up to ``workers * per_worker`` contiguous slices.

    Args:
        chunks: Contiguous, ordered slices of the batch (e.g. memory-budget chunks).
        workers: Threads that will run the slices; 1 returns ``chunks`` unchanged.
        min_items: Fewest batch items in one slice (keeps tiny slices from
            costing more in thread hand-offs than they compute).
        per_worker: Slices per worker (default ``SLICES_PER_WORKER``).

    Returns:
        Ordered, non-overlapping slices covering the same items as ``chunks``.
    """
    if workers <= 1:
        return list(chunks)
    out: list[slice] = []
    for chunk in chunks:
        start, stop = chunk.start or 0, chunk.stop
        n = stop - start
        pieces = max(1, min(workers * per_worker, n // max(1, min_items)))
        bounds = [start + (n * k) // pieces for k in range(pieces + 1)]
        out.extend(slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a)
    return out


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool of ``workers`` helper threads (re-made after a fork or a change of size)."""
    with _pool_lock:
        pid = os.getpid()
        if _pool["executor"] is None or _pool["workers"] != workers or _pool["pid"] != pid:
            old = _pool["executor"]
            if old is not None and _pool["pid"] == pid:
                old.shutdown(wait=False)
            _pool.update(
                executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ember-batch"),
                workers=workers,
                pid=pid,
            )
        return _pool["executor"]


def map_slices(fn: Callable[[slice], T], slices: Sequence[slice], workers: int) -> list[T]:
    """``[fn(s) for s in slices]``, run by the calling thread and ``workers - 1`` pool threads.

    Every participant takes the next unclaimed slice until none is left (so a
    thread that lost its core takes fewer).  The caller works too instead of
    only waiting: that saves one hand-off and one thread wake-up per call, which
    cost ~0.2 ms of a 1 ms GEMM when every slice went to the pool.  ``fn`` must
    only write outputs owned by its slice.  An exception raised by a slice is
    re-raised here (the first by slice order) after every slice has finished, so
    no thread is still writing into the caller's arrays when this returns.
    """
    if workers <= 1 or len(slices) <= 1:
        return [fn(s) for s in slices]
    results: list[Any] = [None] * len(slices)
    errors: list[tuple[int, BaseException]] = []
    claim = itertools.count()  # next() on a count is atomic under the GIL

    def drain() -> None:
        while (i := next(claim)) < len(slices):
            try:
                results[i] = fn(slices[i])
            except BaseException as error:  # noqa: BLE001  (re-raised below, in the caller)
                errors.append((i, error))

    pool = _executor(workers - 1)
    helpers = [pool.submit(drain) for _ in range(min(workers, len(slices)) - 1)]
    drain()
    for helper in helpers:
        helper.result()
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results


# Fewest elements a compiled kernel call must touch before its batch is split.
MIN_SPLIT_ELEMENTS = 1 << 17


def call_split(kernel: Callable[..., T], args: Sequence[Any], batched: Sequence[int], workers: int) -> list[T]:
    """Call a compiled, GIL-free ``kernel(*args)`` once per batch slice, on ``workers`` threads.

    ``batched`` are the positions in ``args`` of the arrays whose axis 0 is the
    batch (inputs and outputs alike); each call gets those arrays sliced, the
    other arguments as they are.  Returns the calls' return values in slice order
    (a single call's when the work is too small to split).
    """
    first = args[batched[0]]
    n = first.shape[0]
    if workers <= 1 or n < 2 or first.size < MIN_SPLIT_ELEMENTS:
        return [kernel(*args)]

    def run(s: slice) -> T:
        sliced = list(args)
        for i in batched:
            sliced[i] = args[i][s]
        return kernel(*sliced)

    return map_slices(run, split_slices([slice(0, n)], workers, per_worker=1), workers)
