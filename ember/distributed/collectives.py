"""Collectives on Tensors: ``all_reduce``, ``broadcast``, ``all_gather``, ``barrier``.

Each works in place on the tensor's storage, as PyTorch's do, and counts as an
in-place edit (the tensor's version moves on, so a graph that saved it notices).
Host tensors go over MPI; CUDA tensors over NCCL, or over MPI through a host
copy when the group has no NCCL communicator.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy

from ember.autograd.tensor import Tensor
from ember.distributed.process_group import ReduceOp, _group


def _check_tensor(what: str, tensor: Any) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"ember.distributed.{what}: expected a Tensor, got {type(tensor).__name__}")


def _run_in_place(what: str, tensor: Tensor, collective: Any) -> None:
    """Apply ``collective(transport, array)`` to the tensor's storage, via host if needed."""
    transport, via_host = _group(what).transport_for(tensor.data)
    data = tensor.data
    if via_host:  # a CUDA array over MPI: through host memory
        host = numpy.ascontiguousarray(data.get())
        collective(transport, host)
        _copy_to_device(data, host)
    elif isinstance(data, numpy.ndarray) and not data.flags.c_contiguous:
        host = numpy.ascontiguousarray(data)
        collective(transport, host)
        data[...] = host
    else:
        collective(transport, data)
    tensor._bump_version()


def _copy_to_device(dst: Any, host: numpy.ndarray) -> None:
    """Write a host array into a CUDA array in place."""
    if dst.flags.c_contiguous:
        dst.set(host)
    else:
        import cupy

        dst[...] = cupy.asarray(host)


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM) -> None:
    """In place: ``tensor`` becomes the elementwise ``op`` of every rank's ``tensor``.

    ``ReduceOp.AVG`` is the sum divided by the world size (in the tensor's dtype).

    Raises:
        TypeError: not a Tensor; ValueError: an unknown op.
    """
    _check_tensor("all_reduce", tensor)
    if not isinstance(op, ReduceOp):
        raise ValueError(f"ember.distributed.all_reduce: expected a ReduceOp, got {op!r}")
    world = _group("all_reduce").mpi.size
    wire_op = "sum" if op is ReduceOp.AVG else op.value

    def reduce(transport: Any, array: Any) -> None:
        transport.all_reduce(array, wire_op)
        if op is ReduceOp.AVG:
            array /= array.dtype.type(world)

    _run_in_place("all_reduce", tensor, reduce)


def broadcast(tensor: Tensor, src: int = 0) -> None:
    """In place: every rank's ``tensor`` becomes rank ``src``'s.

    Raises:
        ValueError: ``src`` is not a rank of the group.
    """
    _check_tensor("broadcast", tensor)
    world = _group("broadcast").mpi.size
    if not 0 <= int(src) < world:
        raise ValueError(f"ember.distributed.broadcast: expected 0 <= src < {world}, got {src}")
    _run_in_place("broadcast", tensor, lambda transport, array: transport.broadcast(array, int(src)))


def all_gather(tensor_list: Sequence[Tensor], tensor: Tensor) -> None:
    """Fill ``tensor_list[r]`` with rank ``r``'s ``tensor``, on every rank.

    Raises:
        ValueError: ``tensor_list`` does not hold one tensor per rank, each of ``tensor``'s
            shape and dtype.
    """
    _check_tensor("all_gather", tensor)
    group = _group("all_gather")
    if len(tensor_list) != group.mpi.size:
        raise ValueError(
            f"ember.distributed.all_gather: expected a list of {group.mpi.size} tensors, got {len(tensor_list)}"
        )
    for t in tensor_list:
        _check_tensor("all_gather", t)
        if t.shape != tensor.shape or t.dtype != tensor.dtype:
            raise ValueError(
                f"ember.distributed.all_gather: expected list tensors of shape {tuple(tensor.shape)} and dtype "
                f"{tensor.dtype}, got {tuple(t.shape)} {t.dtype}"
            )
    transport, via_host = group.transport_for(tensor.data)
    source = tensor.data.get() if via_host else tensor.data
    gathered = transport.all_gather(source)
    for r, t in enumerate(tensor_list):
        if via_host:
            _copy_to_device(t.data, numpy.ascontiguousarray(gathered[r]))
        else:
            t.data[...] = gathered[r]
        t._bump_version()


def barrier() -> None:
    """Return once every rank has reached the barrier (bounded by the group's timeout)."""
    group = _group("barrier")
    (group.nccl or group.mpi).barrier()
