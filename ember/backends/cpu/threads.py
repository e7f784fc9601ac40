"""Thread policy of the CPU kernels: who may use the cores, OpenBLAS, Numba or ember's batch workers.

Problem (ACCELERATION.md §4.4): NumPy's OpenBLAS and Numba's OpenMP pool both
start one worker per core and spin while idle.  On a 2-core machine they take
the cores from each other (and from any other process), and one conv step ran
up to 10x slower than with one thread each.

Measured here (training step, batch 100, float32, 2 vCPU; wall ms/step,
medians, one process per run, runs alternated; noisy, +-30%):

1. Heavy external load (other jobs, load 4-8), SimpleConvNet, 3 rounds:

   =====================================================  ===============
   configuration                                           ms/step
   =====================================================  ===============
   Numba ``parallel`` 2 threads (omp layer) + OpenBLAS 2    245 / 253 / 338
   Numba 1 thread + OpenBLAS 2                              145 /  81 / 484
   Numba 2 threads (workqueue layer) + OpenBLAS 2           146 /  91 / 500
   Numba 2 threads (workqueue layer) + OpenBLAS 1            74 /  53 /  60
   Numba 1 thread + OpenBLAS 1 (chosen)                      54 /  50 / 112
   =====================================================  ===============

2. Serial Numba kernels (the choice above), final code, OpenBLAS 1 vs 2 threads:

   ==========================================  ==============  ==============
   machine state                                SimpleConvNet   DeepConvNet
   ==========================================  ==============  ==============
   idle: OpenBLAS 1 / 2                         21 / 14         164-179 / 133
   one busy process on a core: OpenBLAS 1 / 2   18-23 / 27-34   145 / 346
   ==========================================  ==============  ==============

A second BLAS thread gains up to 1.5x on an idle machine but loses up to 2.4x
(10x under heavier load) as soon as another process holds a core, because the
two OpenBLAS workers wait for each other.  So the second core is used by
splitting the *batch* instead (``ember.backends.cpu.batch_split``): conv2d's three
products, linear's products and the pooling/activation-backward kernels run
their batch slices on one worker per core, each calling BLAS with one thread,
with no barrier inside a GEMM.  Measured with ``python -m benchmarks.thread_policy
[--busy]`` (each model stepped in one process, configurations alternated over
5-6 rounds, medians; 2-vCPU AMD EPYC, 2026-12-01 03:56 UTC, with 4 slices per
worker and linear's gx/gW side by side; ``w`` = batch workers, ``b`` = BLAS
threads; ms/step; results/thread_policy*.md):

   ==================================  ==============  =============  =====
   machine state, configuration        SimpleConvNet   DeepConvNet    MLP
   ==================================  ==============  =============  =====
   idle, w1 b1                          21.1            148            5.4
   idle, w2 b1 (chosen)                 13.2             84            5.0
   idle, w1 b2                          18.9            121            4.2
   one busy process, w1 b1              17.4            147            5.1
   one busy process, w2 b1 (chosen)     16.3            139            5.7
   one busy process, w1 b2              16.6            433            7.8
   ==================================  ==============  =============  =====

Batch workers win on the conv nets when idle and lose little under load (the
MLP: 5.7 against 5.1 ms with one worker).  OpenBLAS's own threads are still
faster on the BLAS-bound MLP when the machine is idle (its spinning workers
share the packed operands and never sleep) but collapse as soon as a core is
taken.  SimpleConvNet gains less than
DeepConvNet because its step is memory-bound, and one core already saturates
this VM's memory bandwidth (a 2.9 MB copy ran no faster on two threads).
The policy, applied when the Numba kernels are first loaded:

* machines with at most ``SMALL_MACHINE_CORES`` (2) cores: the BLAS pools
  (OpenBLAS/MKL, through threadpoolctl) are limited to one thread and batched
  ops split over one worker per usable core; the Numba kernels themselves run
  serially (no ``prange``).  If the user set ``OPENBLAS_NUM_THREADS``,
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
serial and a parallel ``njit`` breaks Numba's on-disk cache (§4.3), and a variant
that never runs is never compiled.
"""

from __future__ import annotations

import os
from typing import Any

SMALL_MACHINE_CORES = 2
PARALLEL_MIN_ELEMENTS = 1 << 20
BLAS_ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")

THREADS_ENV_VAR = "EMBER_NUM_THREADS"

_state: dict[str, Any] = {"parallel_min": None, "blas_limit": None, "batch_workers": None, "applied": False}


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
    """The current policy: ``{"parallel_min_elements", "blas_threads" (or None), "batch_workers"}``."""
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
