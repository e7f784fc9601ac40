"""The process group: which rank this process is, how many there are, and the collectives.

PyTorch's names and semantics (``torch.distributed``): one default group per
process, made by :func:`init_process_group` and ended by
:func:`destroy_process_group`. Ranks are MPI processes started by
``mpiexec -n N python -m mpi4py ...``; ``-m mpi4py`` turns an uncaught exception
in one rank into an abort of all of them instead of a hang.

``backend="mpi"`` moves host arrays (CUDA tensors through a host copy);
``backend="nccl"`` moves CUDA tensors with NCCL and host tensors with MPI.
"""

from __future__ import annotations

import datetime
import enum
from typing import Any

import numpy

from ember.distributed.mpi_transport import MPITransport

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


class ReduceOp(enum.Enum):
    """How :func:`all_reduce` combines the ranks' tensors."""

    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"
    PRODUCT = "product"


class _Group:
    """The default process group: the transports and the rank facts."""

    def __init__(self, backend: str, timeout_s: float):
        self.backend = backend
        self.mpi = MPITransport(timeout_s=timeout_s)
        self.nccl = None
        if backend == "nccl":
            from ember.distributed.nccl_transport import NCCLTransport

            self.nccl = NCCLTransport(self.mpi)

    def transport_for(self, array: Any) -> tuple[Any, bool]:
        """``(transport, via_host)`` for an array: NCCL for GPU arrays when present, else MPI."""
        on_host = isinstance(array, numpy.ndarray)
        if on_host:
            return self.mpi, False
        return (self.nccl, False) if self.nccl is not None else (self.mpi, True)


_GROUP: _Group | None = None


def init_process_group(backend: str = "mpi", timeout: datetime.timedelta = DEFAULT_TIMEOUT,
                       limit_threads: bool = True) -> None:
    """Join the default process group (every rank calls this once, before any collective).

    Args:
        backend: ``"mpi"`` (CPU processes; GPU tensors through host memory) or ``"nccl"``.
        timeout: the longest any one collective may wait for the other ranks; past it the
            job is aborted with a message naming the rank and the collective.
        limit_threads: give this rank its share of the machine's cores (ember's batch
            workers and the BLAS pool), so ranks on one machine do not fight for cores.

    Raises:
        ValueError: an unknown backend or a non-positive timeout.
        RuntimeError: the group is already initialised.
        ImportError: mpi4py (or CuPy for nccl) is not installed, with the install hint.
    """
    global _GROUP
    if backend not in ("mpi", "nccl"):
        raise ValueError(f"init_process_group: expected backend 'mpi' or 'nccl', got {backend!r}")
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if not seconds > 0:
        raise ValueError(f"init_process_group: expected a positive timeout, got {timeout!r}")
    if _GROUP is not None:
        raise RuntimeError("init_process_group: the default process group is already initialised")
    _GROUP = _Group(backend, seconds)
    if limit_threads:
        _limit_threads(_GROUP.mpi.local_size)


def _limit_threads(local_ranks: int) -> None:
    """Each of ``local_ranks`` processes on this machine gets an equal share of its cores."""
    from ember.backends.cpu import threads

    share = max(1, threads.usable_cores() // max(1, local_ranks))
    threads.set_thread_policy(blas_threads=1, batch_workers=share)


def is_initialized() -> bool:
    """True between :func:`init_process_group` and :func:`destroy_process_group`."""
    return _GROUP is not None


def is_available() -> bool:
    """True when mpi4py (and so the 'mpi' backend) can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def _group(what: str) -> _Group:
    if _GROUP is None:
        raise RuntimeError(f"ember.distributed.{what}: call init_process_group() first")
    return _GROUP


def get_rank() -> int:
    """This process's rank in the default group (0 .. world_size - 1)."""
    return _group("get_rank").mpi.rank


def get_world_size() -> int:
    """Number of processes in the default group."""
    return _group("get_world_size").mpi.size


def get_local_rank() -> int:
    """This process's rank among the processes on the same machine (picks its GPU)."""
    return _group("get_local_rank").mpi.local_rank


def get_backend() -> str:
    """``"mpi"`` or ``"nccl"``."""
    return _group("get_backend").backend


def destroy_process_group() -> None:
    """Leave the default group (after a final barrier, so no rank leaves mid-collective)."""
    global _GROUP
    group = _group("destroy_process_group")
    group.mpi.barrier()
    if group.nccl is not None:
        group.nccl.close()
    _GROUP = None


def abort(message: str) -> None:
    """End every rank of the job now, printing ``message`` with this rank's number."""
    _group("abort").mpi.abort(message)
