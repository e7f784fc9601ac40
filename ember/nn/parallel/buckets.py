"""Gradient buckets for DistributedDataParallel: parameters grouped into flat buffers.

Parameters are taken in reverse registration order (the order backward tends
to finish them in), grouped by dtype and device, and cut into buckets of at most
``cap_bytes``, the first one smaller so the first allreduce starts early (as
PyTorch does). Every rank builds the same buckets from the same model, so the
buckets' allreduces are issued in the same order everywhere.
"""

from __future__ import annotations

from typing import Any, Sequence


class Bucket:
    """One flat buffer's worth of parameters and the bookkeeping of one reduction."""

    def __init__(self, params: list[Any]):
        self.params = params
        self.sizes = [int(p.data.size) for p in params]
        self.offsets = [sum(self.sizes[:k]) for k in range(len(params))]
        self.numel = sum(self.sizes)
        self.ready = [False] * len(params)
        self.n_ready = 0
        self.buffer: Any = None
        self.host: Any = None  # host copy of a CUDA buffer reduced over MPI
        self.wait: Any = None  # the pending reduction's wait function, once launched

    @property
    def complete(self) -> bool:
        """Every parameter of the bucket has its gradient for this step."""
        return self.n_ready == len(self.params)

    def mark_ready(self, k: int) -> None:
        if not self.ready[k]:
            self.ready[k] = True
            self.n_ready += 1

    def fill(self) -> Any:
        """Copy the parameters' gradients into the flat buffer (zeros where a parameter has none)."""
        first = self.params[0].data
        xp = _array_module(first)
        if self.buffer is None:
            self.buffer = xp.empty(self.numel, dtype=first.dtype)
        for p, off, n in zip(self.params, self.offsets, self.sizes):
            view = self.buffer[off : off + n]
            if p.grad is None:
                view[...] = 0
            else:
                view[...] = p.grad.data.reshape(-1)
        return self.buffer

    def reset(self) -> None:
        self.ready = [False] * len(self.params)
        self.n_ready = 0
        self.wait = None


def _array_module(array: Any) -> Any:
    import numpy

    if isinstance(array, numpy.ndarray):
        return numpy
    import cupy

    return cupy


def build_buckets(params: Sequence[Any], cap_bytes: int, first_cap_bytes: int) -> list[Bucket]:
    """Cut ``params`` (reverse registration order) into buckets by dtype/device and size."""
    buckets: list[Bucket] = []
    open_by_key: dict[tuple, list[Any]] = {}
    size_by_key: dict[tuple, int] = {}

    def close(key: tuple) -> None:
        if open_by_key.get(key):
            buckets.append(Bucket(open_by_key.pop(key)))
            size_by_key.pop(key)

    for p in reversed(list(params)):
        key = (str(p.data.dtype), str(getattr(p, "device", "cpu")))
        cap = first_cap_bytes if not buckets else cap_bytes
        nbytes = int(p.data.nbytes)
        if open_by_key.get(key) and size_by_key[key] + nbytes > cap:
            close(key)
        open_by_key.setdefault(key, []).append(p)
        size_by_key[key] = size_by_key.get(key, 0) + nbytes
    for key in list(open_by_key):
        close(key)
    return buckets
