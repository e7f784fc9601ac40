"""The fake ``cupy``'s driver objects for CUDA-graph capture: streams, the graphs they capture, memory pools.

Split from ``fake_cuda_graph`` (which installs them): a stream's ``begin_capture`` starts
recording, ``end_capture`` restores the arrays that existed before, notes which arrays the
graph's pool made (the ones a host write must not touch) and returns a ``Graph`` whose
``launch`` re-runs the recording.
"""

from __future__ import annotations

import contextlib

import numpy

from fake_cuda_graph import Capture, FakeCupyArray, _Cap, _quiet


class MemoryPool:
    """A private pool: counts the arrays made while it was the allocator."""

    def malloc(self, size):  # never called by the fake (its arrays are NumPy's); present for the API
        raise AssertionError("fake MemoryPool.malloc is not used")

    def used(self, cap: Capture) -> bool:
        return any(p is self for p in cap.pools_used)


@contextlib.contextmanager
def using_allocator(allocator=None):
    previous = _Cap.allocator_pool
    _Cap.allocator_pool = getattr(allocator, "__self__", None)
    try:
        yield
    finally:
        _Cap.allocator_pool = previous


class Graph:
    def __init__(self, thunks):
        self.thunks = thunks

    def launch(self, stream=None):
        _Cap.launches += 1
        for thunk in self.thunks:
            _quiet(thunk)()


class Stream:
    _next = [16]

    def __init__(self, non_blocking=False, null=False):
        self.ptr = 0 if null else Stream._next[0]
        if not null:
            Stream._next[0] += 16
        self._prev = []

    def __enter__(self):
        self._prev.append(_Cap.stream)
        _Cap.stream = self
        return self

    def __exit__(self, *exc):
        _Cap.stream = self._prev.pop()

    def begin_capture(self, mode=None):
        if self.ptr in (0, 1):
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if _Cap.active is not None:
            raise RuntimeError("a capture is already in progress")
        _Cap.active = Capture(self)

    def is_capturing(self):
        return _Cap.active is not None and _Cap.active.stream is self

    def end_capture(self):
        cap, _Cap.active = _Cap.active, None
        for root, saved in cap.snapshots.values():
            numpy.copyto(root.view(numpy.ndarray) if isinstance(root, FakeCupyArray) else root, saved)
        _Cap.last = cap
        for root, pool in zip(cap.keep, cap.pools_used):
            if pool is not None and pool is cap.scratch_pool:
                _Cap.scratch[id(root)] = root
        return Graph(cap.thunks)

    def synchronize(self):
        if _Cap.active is not None:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: synchronize during capture")

    def wait_event(self, event):
        pass


NULL_STREAM = Stream(null=True)
