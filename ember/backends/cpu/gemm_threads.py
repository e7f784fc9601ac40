"""Who runs a layer's large 2-D products on a small machine: OpenBLAS's own threads or ember's batch split.

On a 2-core machine BLAS is held to one thread and ember splits a product's
rows over its batch workers (``ember.backends.cpu.batch_split``), because a
second BLAS thread collapses as soon as another process holds a core.  When
the machine is otherwise idle, though, OpenBLAS's threads are faster on the
large products of a linear layer: they share the packed operands and spin
between calls, where every hand-off of the batch split crosses the GIL.  So a
product of at least ``BURST_MIN_MACS`` multiply-adds runs on
``idle_blas_threads`` BLAS threads while other processes use at most
``IDLE_MAX_OTHER_CORES`` of this process's cores
(``ember.backends.cpu.core_load``), and through the batch split otherwise.

Results never depend on the load.  Threaded OpenBLAS cuts a long shared axis
``K`` into other blocks than one thread does (a 128x784 by 784x512 product
differs in the last bits; K of 512 and less did not), so a product that may go
to the BLAS threads (by its size and the policy, never by the load) with ``K``
over ``CHUNK_K`` whose layout a probe on random data shows summed in another
order is computed as a sum of products over equal pieces of ``K``, on both
paths.  The first time a product of a given shape, layout and
dtype could go to the BLAS threads, both paths run and the BLAS threads are
used for that layout only if the bits were the same.  A run repeats bit for
bit whether or not the machine was idle.  Measurements:
``docs/engineering/cpu-pool-mlp-round2.md`` and ``docs/engineering/cpu-round3.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from ember.backends.cpu import batch_split, core_load, threads

# Smallest product (M*K*N multiply-adds) handed to the BLAS threads; smaller
# ones lose more to the threads' start and final wait than they gain.
BURST_MIN_MACS = 1 << 24
# Most CPU time (in cores) other processes may take on this process's cores
# for the machine to count as idle; a few percent of background noise passes.
IDLE_MAX_OTHER_CORES = 0.25
# Longest shared axis a product that may go to the BLAS threads is computed in one piece;
# longer ones are summed over equal pieces of K (the same on both paths).
CHUNK_K = 512
# Largest operands (elements of a and b together) a layout probe copies; larger products are cut.
MAX_PROBE_ELEMENTS = 1 << 24
# Layouts probed so far: key -> whether the BLAS threads sum the whole product in the split's order.
_whole_ok: dict[tuple, bool] = {}
# Products checked so far: layout key -> whether the BLAS threads give the split's bits.
MAX_CHECKED_LAYOUTS = 1024
_same_bits: dict[tuple, bool] = {}


def _may_burst(macs: int) -> bool:
    """Whether the policy lets a product of ``macs`` multiply-adds go to the BLAS threads when idle."""
    wanted = threads.idle_blas_threads()
    limit = threads.thread_policy()["blas_threads"]
    return not (wanted <= 1 or limit is None or wanted <= limit or macs < BURST_MIN_MACS)


def burst_threads(macs: int) -> int:
    """BLAS threads a product of ``macs`` multiply-adds should run on now (1: use the batch split)."""
    if not _may_burst(macs):
        return 1
    busy = core_load.other_cores_busy()
    return threads.idle_blas_threads() if busy is not None and busy <= IDLE_MAX_OTHER_CORES else 1


def _k_pieces(a: Any, b: Any, workers: int) -> list[slice] | None:
    """Equal pieces of ``K`` to sum ``a @ b`` over, or None to compute it whole.

    Decided by the layout and the policy, never by the load, so that the result
    is the same whether or not this call goes to the BLAS threads: a product
    that may go there with ``K`` over ``CHUNK_K`` is cut when a probe on random
    data of its layout showed the BLAS threads summing it in another order.
    """
    macs = _macs(a, b)
    if workers <= 1 or not macs or a.shape[1] <= CHUNK_K or not _may_burst(macs):
        return None
    key = (_layout(a, b), workers, threads.idle_blas_threads())
    whole = _whole_ok.get(key)
    if whole is None:
        if len(_whole_ok) >= MAX_CHECKED_LAYOUTS:
            _whole_ok.clear()
        whole = _whole_ok[key] = _probe_whole(a, b, workers)
    if whole:
        return None
    k = a.shape[1]
    count = -(-k // CHUNK_K)
    bounds = [(k * i) // count for i in range(count + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def _probe_whole(a: Any, b: Any, workers: int) -> bool:
    """Whether the BLAS threads give the split's bits for ``a @ b``'s layout, on seeded random operands.

    The order of a sum depends on the layout, not the values (zeros, say, would
    agree in any order), hence random data.  False when it cannot be told: an
    operand neither C- nor F-contiguous or too large to copy, or BLAS threads
    that cannot be raised from this thread.
    """
    if a.size + b.size > MAX_PROBE_ELEMENTS:
        return False
    rng = numpy.random.default_rng(0)
    probes = []
    for x in (a, b):
        order = "C" if x.flags.c_contiguous else "F" if x.flags.f_contiguous else None
        if order is None:
            return False
        probes.append(numpy.asarray(rng.standard_normal(x.shape), dtype=x.dtype, order=order))
    burst = _on_blas_threads(threads.idle_blas_threads(), [tuple(probes)])
    if burst is None:
        return False
    return burst[0].tobytes() == batch_split.matmul_split(probes[0], probes[1], workers).tobytes()


def _summed(parts: list) -> Any:
    """``parts[0] + parts[1] + ...`` in order, into the first (a fresh product)."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


def _macs(a: Any, b: Any) -> int:
    """Multiply-adds of ``a @ b`` for two 2-D NumPy arrays, 0 for anything else."""
    if type(a) is not numpy.ndarray or type(b) is not numpy.ndarray or a.ndim != 2 or b.ndim != 2:
        return 0
    return a.shape[0] * a.shape[1] * b.shape[1]


def _on_blas_threads(count: int, products: list) -> list | None:
    """``[a @ b for a, b in products]`` with BLAS raised to ``count`` threads, then set back.

    None when the threads could not be raised (then nothing ran): the caller
    takes the split, so a product never runs on threads it did not check.
    """
    limit = threads.thread_policy()["blas_threads"]
    try:
        if not threads.set_blas_threads_now(count):
            return None
        return [a @ b for a, b in products]
    finally:
        threads.set_blas_threads_now(limit)


def _layout(a: Any, b: Any) -> tuple:
    """What decides how BLAS and the split sum ``a @ b``: shapes, strides and dtypes."""
    return a.shape, b.shape, a.strides, b.strides, a.dtype.str, b.dtype.str


def _checked(key: tuple, count: int, products: list, fallback: Callable[[], Any],
             combine: Callable[[list], Any] | None = None) -> Any:
    """``products`` on ``count`` BLAS threads if that gave ``fallback()``'s bits before, else ``fallback()``.

    The first call for ``key`` runs both and returns the fallback's result; the
    verdict is kept, so later calls run only one of the two.  ``combine`` turns
    the products' list into the one result (the pieces of a product over K).
    """
    same = _same_bits.get(key)
    if same is None:
        burst = _on_blas_threads(count, products)
        if burst is not None and combine is not None:
            burst = [combine(burst)]
        result = fallback()
        if burst is not None:
            if len(_same_bits) >= MAX_CHECKED_LAYOUTS:
                _same_bits.clear()
            expected = result if isinstance(result, tuple) else (result,)
            _same_bits[key] = all(x.tobytes() == y.tobytes() for x, y in zip(burst, expected))
        return result
    if same:
        burst = _on_blas_threads(count, products)
        if burst is not None:
            if combine is not None:
                return combine(burst)
            return tuple(burst) if len(burst) > 1 else burst[0]
    return fallback()


def matmul_split(a: Any, b: Any, workers: int) -> Any:
    """``a @ b`` for a layer: on the BLAS threads when large, idle and bit-identical, else ``batch_split.matmul_split``."""
    count = burst_threads(_macs(a, b)) if workers > 1 else 1
    pieces = _k_pieces(a, b, workers)
    if pieces is not None:  # summed over pieces of K on both paths
        def split() -> Any:
            return _summed([batch_split.matmul_split(a[:, k], b[k], workers) for k in pieces])

        if count > 1:
            return _checked(("one", _layout(a, b), workers, count, len(pieces)), count,
                            [(a[:, k], b[k]) for k in pieces], split, combine=_summed)
        return split()
    if count > 1:
        return _checked(("one", _layout(a, b), workers, count), count, [(a, b)],
                        lambda: batch_split.matmul_split(a, b, workers))
    return batch_split.matmul_split(a, b, workers)


def matmul_pair(first: tuple, second: tuple, workers: int) -> tuple:
    """``(a1 @ b1, a2 @ b2)`` (a layer's ``gx`` and ``gW``): on the BLAS threads, one after the other, when
    the larger is large, the machine idle and the bits those of ``batch_split.matmul_pair``; else that."""
    count = burst_threads(max(_macs(*first), _macs(*second))) if workers > 1 else 1
    if count > 1:
        return _checked(("pair", _layout(*first), _layout(*second), workers, count), count, [first, second],
                        lambda: batch_split.matmul_pair(first, second, workers))
    return batch_split.matmul_pair(first, second, workers)
