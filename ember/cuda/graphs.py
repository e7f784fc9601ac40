"""CUDA graphs with PyTorch's low-level API: ``g = CUDAGraph()``, ``with graph(g): ...``, ``g.replay()``.

Capture runs the block's Python once on a capture stream of ember's own (never
the legacy default stream, which CuPy refuses); its kernels are recorded, not
run, and ``replay`` launches them all at once on the current stream. What the
graph needs to stay correct, and how it gets it:

* Every array allocated during capture comes from a private ``MemoryPool`` that
  lives as long as the graph, so no later allocation is handed an address the
  graph still writes. Arrays that existed before and that the step's ops read
  (parameters, inputs, constants) are kept alive by the graph too.
* That pool reuses memory freed earlier in the capture, as an eager step would;
  kernels write it in stream order, so that is safe for everything the graph
  computes. An array the HOST fills (a pointer table, a device scalar, state
  zeroed once) would be overwritten at every replay by the kernel that used the
  same memory as scratch earlier in the graph, so those come from a second pool,
  live as long as the graph and are never freed during it
  (``capture_state.host_filled_empty``); :func:`before_replay` and deferred
  uploads refuse any other array.
* GEMMs go through ember's own cuBLAS handle, bound to the capture stream with
  its workspace (``ember.backends.device_gemm``): CuPy refuses cuBLAS here.
* Host->device copies are refused during capture; small tables whose contents
  the host knows (the multi-tensor optimizer's pointer table) are allocated in
  the capture and filled right after it (:func:`defer_upload`).
* Values that change between replays are read by kernels from device memory:
  the optimizer's learning rate, refreshed before every launch by a hook
  (:func:`before_replay`), so schedulers keep working; Adam's step count and the
  loss scaler's scale and found-inf flag, updated by kernels in the graph.
* A Tensor whose ``.data`` is replaced (by the step, or after capture) would
  silently stop being read: capture and ``replay`` raise; update in place.
* CuPy's refusals (host reads, host copies, cuBLAS, cuRAND) become a
  ``CaptureError`` that says what the step did. Dropout draws its masks from a
  device generator state, so a replay draws the next mask, as an eager step does.

Without a GPU, everything here raises the install hint of ``ember.cuda``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ember.autograd import capture as _capture
from ember.backends import capture_state, device_gemm

_ACTIVE: list = []  # the CUDAGraph being captured (at most one per process)
_STREAMS: dict[int, Any] = {}  # device id -> ember's capture stream


def _cupy() -> Any:
    from ember.cuda import _cupy as get

    return get("graphs")


def capture_stream(device_id: int | None = None) -> Any:
    """Ember's non-blocking capture stream on ``device_id`` (default: the current device)."""
    cupy = _cupy()
    dev = cupy.cuda.Device().id if device_id is None else int(device_id)
    s = _STREAMS.get(dev)
    if s is None:
        with cupy.cuda.Device(dev):
            s = _STREAMS[dev] = cupy.cuda.Stream(non_blocking=True)
    return s


def is_current_stream_capturing() -> bool:
    """True while ember captures a graph (the block of ``with graph(g):``)."""
    return bool(_ACTIVE)


def defer_upload(device_array: Any, host: Any) -> None:
    """Fill ``device_array`` from ``host`` right after the capture ends (H2D is refused inside it)."""
    capture_state.defer_upload(device_array, host)


def before_replay(hook: Callable[[], None], keep: Any = None) -> None:
    """Run ``hook`` before every launch of the graph being captured (to refresh device scalars).

    ``keep``, the array the hook writes, must come from ``capture_state.host_filled_empty``.

    Raises:
        RuntimeError: no capture is in progress, or ``keep`` is graph scratch memory.
    """
    if not _ACTIVE:
        raise RuntimeError("ember.cuda.graphs.before_replay: no capture in progress")
    if keep is not None and not capture_state.is_host_filled(keep):
        raise RuntimeError("ember.cuda.graphs.before_replay: allocate what the hook writes with "
                           "capture_state.host_filled_empty (graph scratch memory would overwrite it)")
    _ACTIVE[0]._hooks.append(hook)  # ``keep`` is alive already: the graph keeps every host-filled array


class CUDAGraph:
    """A captured CUDA graph with its private memory pool (``torch.cuda.CUDAGraph``'s API)."""

    def __init__(self) -> None:
        self._graph: Any = None
        self._pool: Any = None
        self._stream: Any = None
        self._keep: list = []  # arrays the graph reads or writes, alive as long as it is
        self._bound: list = []  # (Tensor, its array at capture): replay refuses a rebound one
        self._hooks: list = []  # run before every launch (device scalars)
        self._host_pool: Any = None  # the pool of arrays the host fills (see the module docstring)
        self.replays = 0

    def pool(self) -> Any:
        """The private ``cupy.cuda.MemoryPool`` of this graph (None before capture)."""
        return self._pool

    def capture_begin(self, pool: Any = None, stream: Any = None) -> None:
        """Start capturing on ``stream`` (default: ember's capture stream) into a private pool.

        Raises:
            RuntimeError: a capture is already in progress, or this graph holds one.
        """
        if _ACTIVE:
            raise RuntimeError("ember.cuda.graph: a capture is already in progress (captures do not nest)")
        if self._graph is not None:
            raise RuntimeError("ember.cuda.graph: this CUDAGraph already holds a capture; call reset() first")
        if _capture.RECORDER[0] is not None:
            raise RuntimeError("ember.cuda.graph: an ember.graphs capture is in progress")
        cupy = _cupy()
        self._stream = stream if stream is not None else capture_stream()
        if int(self._stream.ptr) in (0, 1):
            raise RuntimeError("ember.cuda.graph: cannot capture on the legacy default stream")
        self._pool = pool if pool is not None else cupy.cuda.MemoryPool()
        self._host_pool = cupy.cuda.MemoryPool()
        from ember.backends.cupy import cublas, optim_captured

        cublas.prepare(cupy, int(cupy.cuda.Device().id), int(self._stream.ptr))  # handle + workspace, outside
        optim_captured.preload(cupy)  # kernels that only ever run inside graphs: loaded before capturing
        self._exits = contextlib.ExitStack()
        self._exits.enter_context(self._stream)
        self._exits.enter_context(cupy.cuda.using_allocator(self._pool.malloc))
        self._recorder = _capture.Recorder()  # sees every array the ops touch (kept alive below)
        _capture.RECORDER[0] = self._recorder
        capture_state.end()
        capture_state.HOST_FILLED[0] = self._host_filled
        device_gemm.CAPTURING[0] += 1
        _ACTIVE.append(self)
        try:
            self._stream.begin_capture()
        except BaseException:
            self._finish()
            raise

    def capture_end(self) -> None:
        """Finish the capture: instantiate the graph, fill deferred uploads, keep every array alive."""
        try:
            self._graph = self._stream.end_capture()
        finally:
            uploads = list(capture_state.UPLOADS)
            self._finish()
        rec, self._recorder = self._recorder, None
        for k, t in rec.tape.bound:  # rec.alive[k] is the array slot k was made for
            if t.data is not rec.alive[k]:
                self.reset()
                raise _capture.CaptureError(
                    f"ember.cuda.graph: the step gave a tensor of shape {tuple(t.shape)} a new array (`.data = ...`), "
                    "so every replay would start again from the array it had at capture; update it in place "
                    "(`t.data[...] = ...`, `t.copy_(...)`)")
        self._keep.extend(rec.alive)
        self._bound = [(t, t.data) for _, t in rec.tape.bound]
        for dst, host in uploads:  # on the current stream, where replay() launches
            dst.set(host)

    def _host_filled(self, xp: Any, shape: tuple, dtype: Any) -> Any:
        """An array from the host-filled pool, kept as long as the graph (never freed, so never reused)."""
        with _cupy().cuda.using_allocator(self._host_pool.malloc):
            array = xp.empty(shape, dtype=dtype)
        self._keep.append(array)
        return array

    def _finish(self) -> None:
        _ACTIVE.clear()
        capture_state.end()
        device_gemm.CAPTURING[0] -= 1
        _capture.RECORDER[0] = None
        self._exits.close()

    def _abort(self) -> None:
        """End a capture that raised, dropping what it recorded."""
        with contextlib.suppress(Exception):
            self._stream.end_capture()
        self._finish()
        self._recorder, self._hooks, self._keep = None, [], []

    def replay(self) -> None:
        """Launch the captured graph on the current stream (after the refresh hooks).

        Raises:
            RuntimeError: nothing captured, or a Tensor the graph reads was rebound.
        """
        if self._graph is None:
            raise RuntimeError("CUDAGraph.replay: nothing captured yet; use `with ember.cuda.graph(g): ...` first")
        for t, array in self._bound:
            if t.data is not array:
                raise RuntimeError(
                    f"CUDAGraph.replay: a tensor of shape {tuple(array.shape)} that the graph reads was given a new "
                    "array (`.data = ...`) since capture, so the graph would keep using the old one; write new "
                    "values in place (`t.copy_(new)`) or capture again")
        for hook in self._hooks:
            hook()
        self._graph.launch()
        self.replays += 1

    def reset(self) -> None:
        """Drop the graph, then its memory."""
        self._graph = None
        self._keep, self._bound, self._hooks = [], [], []
        self._pool = self._host_pool = None


_CUDA_REFUSALS = ("H2D", "D2H", "is capturing", "StreamCapture", "cuRAND", "cuBLAS", "synchronous API")


def _explain(exc: BaseException) -> str | None:
    """A hint for an error CuPy raises inside a capture, or None for other errors."""
    text = str(exc)
    if not any(k in text for k in _CUDA_REFUSALS):
        return None
    if "H2D" in text:
        return "a host->device copy (a NumPy array or Python list made into a device tensor) inside the step"
    if "cuBLAS" in text:
        return "a GEMM that did not go through ember's own cuBLAS handle (only 2-D matmul/linear/conv are routed)"
    return "a host read of a device value (.item(), float(), bool(), printing) or a synchronisation inside the step"


@contextlib.contextmanager
def graph(g: CUDAGraph, pool: Any = None, stream: Any = None) -> Iterator[CUDAGraph]:
    """Capture the block into ``g`` (``torch.cuda.graph``): its kernels run only at ``g.replay()``.

    Raises:
        CaptureError: the block did something a CUDA graph cannot hold (the message says what).
    """
    g.capture_begin(pool=pool, stream=stream)
    try:
        yield g
    except BaseException as exc:
        g._abort()
        hint = _explain(exc)
        if hint is None:
            raise
        raise _capture.CaptureError(f"ember.cuda.graph: cannot capture this step: {hint} ({exc})") from exc
    g.capture_end()


def graph_pool_handle() -> Any:
    """A new private memory pool, to share between graphs captured one after another."""
    return _cupy().cuda.MemoryPool()
