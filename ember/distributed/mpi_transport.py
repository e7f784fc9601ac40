"""Collectives over MPI (mpi4py), each one with a deadline.

Every collective is started non-blocking (``Iallreduce``, ``Ibcast``, ...) and
then polled until it completes or the process group's timeout passes. A blocking
MPI call cannot be interrupted, so a stalled or dead peer would hang the job;
polling lets the waiting rank notice, print one line naming itself and the
collective, and abort the whole job (``MPI_Abort`` ends every rank under
``mpiexec``). Polling spins for the first 5 ms (a typical collective is done by
then, so no sleep adds latency), then backs off to 1 ms sleeps so a rank waiting
for a slow peer does not hold a core the peer may need.

Arrays here are host NumPy arrays; CUDA tensors reach this transport through
a host copy (the fallback when NCCL is not used).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy

_SPIN_S = 5e-3  # poll without sleeping this long: a typical allreduce finishes well within it
_MAX_SLEEP_S = 1e-3


def import_mpi() -> Any:
    """``mpi4py.MPI``, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            "ember.distributed: the 'mpi' backend needs mpi4py and an MPI library; "
            "install them with: pip install 'ember[distributed]'  (mpi4py + mpich)"
        ) from e
    return MPI


class MPITransport:
    """Deadline-bounded collectives on one MPI communicator.

    Args:
        comm: the communicator (``MPI.COMM_WORLD`` by default).
        timeout_s: seconds any one collective may take before the job is aborted.
    """

    def __init__(self, comm: Any = None, timeout_s: float = 1800.0):
        self.MPI = import_mpi()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout_s = float(timeout_s)
        local = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.count = 0  # collectives issued so far: names the one that timed out

    def _op(self, op: str) -> Any:
        return {"sum": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN, "product": self.MPI.PROD}[op]

    def wait(self, request: Any, what: str) -> None:
        """Poll ``request`` until done; past the deadline, report and abort the job."""
        self.count += 1
        if request.Test():
            return
        start = time.monotonic()
        deadline = start + self.timeout_s
        sleep = 1e-5
        while not request.Test():
            now = time.monotonic()
            if now > deadline:
                self.abort(
                    f"{what} (collective #{self.count}) did not complete within {self.timeout_s:g} s: "
                    f"a peer rank stalled or died"
                )
            if now - start > _SPIN_S:
                time.sleep(sleep)
                sleep = min(sleep * 2, _MAX_SLEEP_S)

    def abort(self, message: str, code: int = 3) -> None:
        """Print one line naming this rank, then end every rank of the job."""
        sys.stderr.write(f"ember.distributed: rank {self.rank}/{self.size}: {message}; aborting the job\n")
        sys.stderr.flush()
        time.sleep(0.5)  # let mpiexec forward the line before the abort tears its proxies down
        self.comm.Abort(code)

    def all_reduce(self, array: numpy.ndarray, op: str) -> None:
        """In place: ``array`` becomes the elementwise ``op`` over all ranks."""
        self.all_reduce_start(array, op)()

    def all_reduce_start(self, array: numpy.ndarray, op: str) -> Callable[[], None]:
        """Start an in-place all_reduce; returns the function that waits for it (with the deadline)."""
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self._op(op))
        what = f"all_reduce({op}, {_describe(array)})"
        return lambda: self.wait(request, what)

    def broadcast(self, array: numpy.ndarray, src: int) -> None:
        """In place: every rank's ``array`` becomes rank ``src``'s."""
        self.wait(self.comm.Ibcast(array, root=src), f"broadcast(src={src}, {_describe(array)})")

    def all_gather(self, array: numpy.ndarray) -> numpy.ndarray:
        """A new ``(world_size, *array.shape)`` array holding every rank's ``array`` in rank order."""
        out = numpy.empty((self.size,) + array.shape, dtype=array.dtype)
        self.wait(self.comm.Iallgather(numpy.ascontiguousarray(array), out), f"all_gather({_describe(array)})")
        return out

    def barrier(self) -> None:
        """Return once every rank has entered the barrier."""
        self.wait(self.comm.Ibarrier(), "barrier()")

    def close(self) -> None:
        """Nothing to free: COMM_WORLD lives as long as MPI (finalised at interpreter exit)."""


def _describe(array: numpy.ndarray) -> str:
    return f"{array.dtype} {tuple(array.shape)}, {array.nbytes / 2**20:.2f} MB"
