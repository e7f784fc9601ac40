"""Thread policy of the CPU kernels: who may use the cores, OpenBLAS, Numba or ember's batch workers.

On a 2-core machine NumPy's OpenBLAS and Numba's OpenMP pool each start one
worker per core and spin while idle, taking the cores from each other and from
any other process; a second BLAS thread also collapses as soon as another
process holds a core.  So BLAS keeps one thread and the second core is used by
splitting the work ember knows the shape of: a batch into slices
(``ember.backends.cpu.batch_split``), a linear layer's product into blocks,
each worker calling BLAS with one thread.  On the Numba backend those splits
run on Numba's own pool (``ember.backends.numba.prange_slices``,
``parallel_gemm``), the only pool left spinning.
Measurements: ``docs/engineering/cpu-threads.md``; latest run:
``benchmarks/results/thread_policy*.md`` (``python -m benchmarks.thread_policy``).

The policy, applied when the Numba kernels are first loaded:

* machines with at most ``SMALL_MACHINE_CORES`` (2) cores: the BLAS pools
  (OpenBLAS/MKL, through threadpoolctl) are limited to one thread and batched
  ops split over one worker per usable core; the Numba kernels themselves run
  serially (no ``prange`` over planes or elements).  If the user set ``OPENBLAS_NUM_THREADS``,
  ``MKL_NUM_THREADS`` or ``OMP_NUM_THREADS``, BLAS keeps their setting and the
  batch is not split;
* ``EMBER_NUM_THREADS=N`` (any machine): N batch workers, one BLAS thread each;
* bigger machines: BLAS is left alone, batches are not split, and a kernel runs
  its ``prange`` variant only when its output has at least
  ``PARALLEL_MIN_ELEMENTS`` elements (not measured here: no such machine was
  available).

``set_thread_policy`` changes all three knobs at run time (tests use it to exercise
the parallel variants).  The parallel variants are separate compiled functions
(``_x_parallel`` next to ``_x_serial``): sharing one Python function between a
serial and a parallel ``njit`` breaks Numba's on-disk cache, and a variant that
never runs is never compiled.
"""

from __future__ import annotations

import os
from typing import Any

SMALL_MACHINE_CORES = 2
PARALLEL_MIN_ELEMENTS = 1 << 20
BLAS_ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")

THREADS_ENV_VAR = "EMBER_NUM_THREADS"

_state: dict[str, Any] = {
    "parallel_min": None, "blas_limit": None, "batch_workers": None, "applied": False,
}


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _env_threads() -> int | None:
    """``EMBER_NUM_THREADS`` as a positive int, None when unset.

    Raises:
        ValueError: set to something other than a positive integer.
    """
    raw = os.environ.get(THREADS_ENV_VAR, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"ember: expected {THREADS_ENV_VAR} to be a positive integer, got {raw!r}")
    return int(raw)


def _default_policy() -> tuple[float, int | None, int]:
    """``(parallel threshold, BLAS thread limit or None, batch workers)`` for this machine."""
    cores = usable_cores()
    requested = _env_threads()
    if requested is not None:  # ember's own setting: N batch workers of one BLAS thread each
        return float("inf"), 1, requested
    if cores <= SMALL_MACHINE_CORES:
        if any(os.environ.get(v) for v in BLAS_ENV_VARS):  # the user's BLAS threads win
            return float("inf"), None, 1
        return float("inf"), 1, cores
    return float(PARALLEL_MIN_ELEMENTS), None, 1


def _limit_blas(threads: int) -> None:
    """Limit the BLAS thread pools already loaded by NumPy to ``threads`` (threadpoolctl)."""
    try:
        import threadpoolctl
    except ImportError:  # an optional speed-up: without it BLAS keeps its default
        return
    threadpoolctl.threadpool_limits(threads, user_api="blas")


def apply_thread_policy() -> None:
    """Apply the default policy once (called when the Numba kernels are first loaded)."""
    if _state["applied"]:
        return
    parallel_min, blas_limit, workers = _default_policy()
    if _state["parallel_min"] is None:
        _state["parallel_min"] = parallel_min
    if _state["batch_workers"] is None:
        _state["batch_workers"] = workers
    if blas_limit is not None:
        _limit_blas(blas_limit)
        _state["blas_limit"] = blas_limit
    _state["applied"] = True


def set_thread_policy(
    parallel_min_elements: float | None = None,
    blas_threads: int | None = None,
    batch_workers: int | None = None,
) -> dict:
    """Change the policy at run time; returns the previous ``thread_policy()``.

    Args:
        parallel_min_elements: Kernels whose output has at least this many
            elements run their ``prange`` variant (0: always; ``inf``: never).
        blas_threads: Limit the BLAS pools to this many threads (None: unchanged).
        batch_workers: Threads that batched ops (convolution) split the batch
            over (``ember.backends.cpu.batch_split``); 1 runs them inline.

    Returns:
        The policy before the change.

    Raises:
        ValueError: a negative threshold or a thread count below 1.
    """
    previous = thread_policy()
    if parallel_min_elements is not None:
        if not parallel_min_elements >= 0:
            raise ValueError(f"set_thread_policy: expected parallel_min_elements >= 0, got {parallel_min_elements}")
        _state["parallel_min"] = float(parallel_min_elements)
    if blas_threads is not None:
        if int(blas_threads) < 1:
            raise ValueError(f"set_thread_policy: expected blas_threads >= 1, got {blas_threads}")
        _limit_blas(int(blas_threads))
        _state["blas_limit"] = int(blas_threads)
    if batch_workers is not None:
        if int(batch_workers) < 1:
            raise ValueError(f"set_thread_policy: expected batch_workers >= 1, got {batch_workers}")
        _state["batch_workers"] = int(batch_workers)
    return previous


def thread_policy() -> dict:
    """The current policy: ``parallel_min_elements``, ``blas_threads`` (or None) and ``batch_workers``."""
    apply_thread_policy()
    return {
        "parallel_min_elements": _state["parallel_min"],
        "blas_threads": _state["blas_limit"],
        "batch_workers": _state["batch_workers"],
    }


def batch_workers() -> int:
    """Threads a batched op may split its batch over (1: run inline)."""
    apply_thread_policy()
    return _state["batch_workers"]


def use_parallel(elements: int) -> bool:
    """True when a kernel writing ``elements`` outputs should run its ``prange`` variant."""
    return elements >= _state["parallel_min"]
