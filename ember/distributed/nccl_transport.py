"""Collectives over NCCL (``cupy.cuda.nccl``) for CUDA tensors, one GPU per process.

The NCCL unique id is made on rank 0 and broadcast over MPI, so the same
``mpiexec`` launch serves both backends. Each collective runs on a
communication stream that first waits for the current stream (where the
gradient was produced); the current stream then waits for the collective, so
the host never blocks. Deadlines are kept the way PyTorch's NCCL watchdog
keeps them: a daemon thread polls the events of outstanding collectives and,
past the timeout, aborts the communicator and the MPI job.

Status: written against CuPy 14's API and exercised only on a GPU machine; the
CPU test suite cannot run it (see docs/distributed.md).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ember.distributed.mpi_transport import MPITransport

_ID_BYTES = 128


def unique_id_as_int8(uid: Any) -> Any:
    """NCCL's unique id as 128 int8 values to broadcast: CuPy 14 gives ``bytes``, older CuPy a tuple of ints."""
    import numpy

    if isinstance(uid, (bytes, bytearray)):
        out = numpy.frombuffer(bytes(uid), dtype=numpy.int8)
    else:
        out = numpy.asarray(uid, dtype=numpy.int64).astype(numpy.int8)
    if out.size != _ID_BYTES:
        raise ValueError(f"ember.distributed (nccl): expected a {_ID_BYTES}-byte unique id, got {out.size}")
    return out


def communicator(nccl: Any, size: int, uid: Any, rank: int) -> Any:
    """``NcclCommunicator`` from the broadcast id, in the form this CuPy takes (bytes, or a tuple before CuPy 14)."""
    try:
        return nccl.NcclCommunicator(size, uid.tobytes(), rank)
    except TypeError:
        return nccl.NcclCommunicator(size, tuple(int(v) for v in uid), rank)


class NCCLTransport:
    """Stream-ordered NCCL collectives with a watchdog deadline.

    Args:
        mpi: the MPI transport used to share the NCCL id and to abort the job.
    """

    def __init__(self, mpi: MPITransport):
        import cupy
        import numpy
        from cupy.cuda import nccl

        self.cupy, self.nccl, self.mpi = cupy, nccl, mpi
        self.rank, self.size, self.timeout_s = mpi.rank, mpi.size, mpi.timeout_s
        cupy.cuda.Device(mpi.local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        uid = numpy.zeros(_ID_BYTES, dtype=numpy.int8)
        if self.rank == 0:
            uid[:] = unique_id_as_int8(nccl.get_unique_id())
        mpi.broadcast(uid, src=0)
        self.comm = communicator(nccl, self.size, uid, self.rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._pending: list[tuple[Any, float, str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._watch, name="ember-nccl-watchdog", daemon=True).start()

    def _dtype(self, dtype: Any) -> int:
        n = self.nccl
        table = {"float16": n.NCCL_FLOAT16, "float32": n.NCCL_FLOAT32, "float64": n.NCCL_FLOAT64,
                 "int32": n.NCCL_INT32, "int64": n.NCCL_INT64, "uint8": n.NCCL_UINT8, "int8": n.NCCL_INT8}
        try:
            return table[str(dtype)]
        except KeyError:
            raise TypeError(f"ember.distributed (nccl): dtype {dtype} is not supported") from None

    def _op(self, op: str) -> int:
        n = self.nccl
        return {"sum": n.NCCL_SUM, "max": n.NCCL_MAX, "min": n.NCCL_MIN, "product": n.NCCL_PROD}[op]

    def _run(self, what: str, launch: Any) -> None:
        """Run ``launch(stream_ptr)`` on the comm stream, ordered after the current stream."""
        cupy = self.cupy
        current = cupy.cuda.get_current_stream()
        self.stream.wait_event(current.record())
        launch(self.stream.ptr)
        done = self.stream.record()
        current.wait_event(done)
        with self._lock:
            self._pending.append((done, time.monotonic() + self.timeout_s, what))

    def _watch(self) -> None:
        while not self._closed.wait(0.05):
            with self._lock:
                self._pending = [p for p in self._pending if not p[0].done]
                late = [p for p in self._pending if time.monotonic() > p[1]]
            if late:
                self.comm.abort()
                self.mpi.abort(f"{late[0][2]} (nccl) did not complete within {self.timeout_s:g} s")

    def all_reduce(self, array: Any, op: str) -> None:
        """In place on the GPU: ``array`` becomes the elementwise ``op`` over all ranks."""
        self._run(f"all_reduce({op}, {array.dtype} {tuple(array.shape)})", lambda s: self.comm.allReduce(
            array.data.ptr, array.data.ptr, array.size, self._dtype(array.dtype), self._op(op), s))

    def all_reduce_start(self, array: Any, op: str) -> Any:
        """Queue an in-place all_reduce; the returned wait is a no-op (the stream orders it)."""
        self.all_reduce(array, op)
        return lambda: None

    def broadcast(self, array: Any, src: int) -> None:
        """In place on the GPU: every rank's ``array`` becomes rank ``src``'s."""
        self._run(f"broadcast(src={src})", lambda s: self.comm.broadcast(
            array.data.ptr, array.data.ptr, array.size, self._dtype(array.dtype), src, s))

    def all_gather(self, array: Any) -> Any:
        """A new ``(world_size, *shape)`` GPU array of every rank's ``array`` in rank order."""
        array = self.cupy.ascontiguousarray(array)
        out = self.cupy.empty((self.size,) + array.shape, dtype=array.dtype)
        self._run("all_gather", lambda s: self.comm.allGather(
            array.data.ptr, out.data.ptr, array.size, self._dtype(array.dtype), s))
        return out

    def barrier(self) -> None:
        """Host barrier over MPI after this rank's queued GPU work has finished."""
        self.cupy.cuda.get_current_stream().synchronize()
        self.mpi.barrier()

    def close(self) -> None:
        """Stop the watchdog and free the communicator."""
        self._closed.set()
        self.comm.destroy()
