"""Whole-step capture and replay: ``ember.compile(step)`` and PyTorch's low-level graph API.

``step = ember.compile(step_fn)`` runs ``step_fn`` eagerly for ``warmup`` calls,
captures the next call on a tape (``ember.autograd.capture``), and from then on
replays the tape with each call's tensors: no Tensor objects, graph nodes or
engine heap are built, only the kernels run. The captured call performs a real
step too. A call whose tensor shapes, dtypes or devices differ from every
captured one is captured anew (an LRU cache of ``max_graphs`` tapes) or, with
``on_new_shape="raise"``, refused with a clear error.

The low-level form mirrors ``torch.cuda.graphs``: ``g = ember.graphs.Graph()``,
``with ember.graphs.graph(g): static_out = step(static_in)``, then write new
values into ``static_in`` in place and call ``g.replay()``; the Tensors made
during capture that are still alive (``static_out``) then hold the new results.

What a step may do: anything made of ember ops, ``backward()``, optimizer and
scheduler steps, ``zero_grad``, the loss scaler, in-place tensor methods.
What is frozen at capture: Python branches on tensor values, ``.item()`` values
used to build new tensors, tensors drawn from ``ember.rand*`` inside the step
(draw them inside an op, as dropout does, or pass them in as arguments).

Trade-off (CPU): replay still calls each op's forward and backward in Python,
so it removes ember's per-op bookkeeping, not NumPy's per-call cost. On CUDA
(tensors on a GPU) the step is captured as one CUDA graph instead
(``ember.cuda.graph_step``): each call copies its tensors into static inputs
and launches the graph, and returns the same output Tensors, refreshed.
"""

from __future__ import annotations

import collections
import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from ember.autograd import capture as _capture
from ember.autograd.tensor import Tensor
from ember.backends import device_gemm
from ember.errors import ShapeError


class Graph:
    """A captured step, replayed by :meth:`replay` (PyTorch's ``CUDAGraph`` API on a CPU tape)."""

    def __init__(self) -> None:
        self._tape: _capture.Tape | None = None
        self._live: list[tuple[Any, int]] = []  # (weakref to a Tensor made in capture, its slot)

    def replay(self) -> list:
        """Run the captured step again; returns the slot list (for :func:`compile`).

        Raises:
            RuntimeError: nothing was captured into this graph.
        """
        if self._tape is None:
            raise RuntimeError("Graph.replay: nothing captured yet; use `with ember.graphs.graph(g): ...` first")
        slots = self._tape.replay()
        for ref, k in self._live:
            t = ref()
            if t is not None:
                t.data = slots[k]
        return slots

    def reset(self) -> None:
        """Forget the captured step."""
        self._tape, self._live = None, []


@contextlib.contextmanager
def graph(g: Graph) -> Iterator[Graph]:
    """Capture everything run inside the block into ``g`` (the block also runs once, eagerly).

    Raises:
        RuntimeError: a capture is already in progress.
    """
    if _capture.RECORDER[0] is not None:
        raise RuntimeError("ember.graphs.graph: a capture is already in progress (captures do not nest)")
    rec = _capture.Recorder()
    _capture.RECORDER[0] = rec
    try:
        yield g
    finally:
        _capture.RECORDER[0] = None
    live = []
    for ref in rec.made:
        t = ref()
        k = None if t is None else rec.slot_of.get(id(t.data))
        if k is not None and k not in rec.tape.bound_slots:
            live.append((weakref.ref(t), k))
    g._tape, g._live = rec.tape, live


def _signature(args: tuple, kwargs: dict) -> tuple:
    """What a call's capture depends on: each tensor's shape, dtype and device, other values as given."""
    def sig(v: Any) -> Any:
        if isinstance(v, Tensor):
            return ("T", tuple(v.shape), str(v.dtype), str(v.device))
        return ("V", v if isinstance(v, (int, float, str, bool, type(None))) else id(v))

    return tuple(sig(a) for a in args) + tuple((k, sig(v)) for k, v in sorted(kwargs.items()))


class CompiledStep:
    """A step function replayed from a tape after ``warmup`` eager calls (see :func:`compile`)."""

    def __init__(self, fn: Callable, warmup: int, max_graphs: int, on_new_shape: str):
        self.fn, self.warmup, self.max_graphs, self.on_new_shape = fn, warmup, max_graphs, on_new_shape
        self._graphs: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
        self._calls: dict[tuple, int] = {}
        self.captures = 0  # how many tapes were recorded (for tests and reports)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = _signature(args, kwargs)
        entry = self._graphs.get(key)
        if entry is not None:
            self._graphs.move_to_end(key)
            return self._replay(entry, args, kwargs)
        if self._graphs and self.on_new_shape == "raise":
            known = next(iter(self._graphs))
            raise ShapeError(f"ember.compile: expected arguments like the captured call {known}, got {key}; "
                             "pass on_new_shape='recapture' to capture one tape per input signature")
        seen = self._calls.get(key, 0)
        if seen < self.warmup:
            self._calls[key] = seen + 1
            if any(str(t.device).startswith("cuda") for t in _tensor_args(args, kwargs)):
                with device_gemm.own_gemm():  # the GEMMs the graph will hold, chosen and loaded before capture
                    return self.fn(*args, **kwargs)
            return self.fn(*args, **kwargs)
        return self._capture(key, args, kwargs)

    def _capture(self, key: tuple, args: tuple, kwargs: dict) -> Any:
        if any(str(t.device).startswith("cuda") for t in _tensor_args(args, kwargs)):
            from ember.cuda.graph_step import capture_step

            self._graphs[key] = capture_step(self.fn, args, kwargs)
            self.captures += 1
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
            return self._graphs[key].run(args, kwargs)
        inputs = [Tensor._make(a.data, a.requires_grad) if isinstance(a, Tensor) else a for a in args]
        kw_inputs = {k: Tensor._make(v.data, v.requires_grad) if isinstance(v, Tensor) else v
                     for k, v in kwargs.items()}
        g = Graph()
        with graph(g):
            out = self.fn(*inputs, **kw_inputs)
        live = {id(ref()): k for ref, k in g._live if ref() is not None}
        slot_of = {id(t): live.get(id(t)) for t in _tensors_in(out)}
        static = _tensor_args(inputs, kw_inputs)
        self._graphs[key] = (g, static, out, slot_of)
        self.captures += 1
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        return out

    def _replay(self, entry: Any, args: tuple, kwargs: dict) -> Any:
        if not isinstance(entry, tuple):  # a CUDA graph (ember.cuda.graph_step.GraphedStep)
            return entry.run(args, kwargs)
        g, static, template, slot_of = entry
        for s, a in zip(static, _tensor_args(args, kwargs)):
            s.data = a.data  # the tape reads bound tensors' .data at the start of each replay
        slots = g._tape.replay()
        return _rebuild(template, slots, slot_of)


def _tensor_args(args: Any, kwargs: dict) -> list:
    """The Tensor arguments of a call, positional first, then keywords by name."""
    return [a for a in args if isinstance(a, Tensor)] + [kwargs[k] for k in sorted(kwargs)
                                                          if isinstance(kwargs[k], Tensor)]


def _tensors_in(out: Any) -> list:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors_in(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors_in(o)]
    return []


def _rebuild(template: Any, slots: list, slot_of: dict) -> Any:
    """The step's return value with each output Tensor replaced by this replay's result."""
    if isinstance(template, Tensor):
        k = slot_of.get(id(template))
        return template if k is None else Tensor._make(slots[k])
    if isinstance(template, (list, tuple)):
        return type(template)(_rebuild(t, slots, slot_of) for t in template)
    if isinstance(template, dict):
        return {key: _rebuild(v, slots, slot_of) for key, v in template.items()}
    return template


def compile(fn: Callable | None = None, *, warmup: int = 1, max_graphs: int = 8,
            on_new_shape: str = "recapture") -> Any:
    """Make ``fn`` a captured-and-replayed step: ``step = ember.compile(step_fn)``.

    Args:
        fn: the step function (forward, loss, backward, optimizer step), taking tensors.
        warmup: eager calls per input signature before capturing (optimizer state is created
            by the first step, so one warm-up call is the default).
        max_graphs: tapes kept, one per input signature, least recently used dropped first.
        on_new_shape: ``"recapture"`` or ``"raise"`` when a call's signature is new.

    With tensors on a GPU the step is captured as one CUDA graph instead of a tape
    (``ember.cuda.graph_step``); each call then returns the same output Tensors, refreshed.

    Returns:
        A :class:`CompiledStep` (or a decorator when ``fn`` is omitted).

    Raises:
        ValueError: a negative ``warmup``, ``max_graphs < 1`` or an unknown ``on_new_shape``.
    """
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"ember.compile: expected warmup to be an int >= 0, got {warmup!r}")
    if isinstance(max_graphs, bool) or not isinstance(max_graphs, int) or max_graphs < 1:
        raise ValueError(f"ember.compile: expected max_graphs to be an int >= 1, got {max_graphs!r}")
    if on_new_shape not in ("recapture", "raise"):
        raise ValueError(f"ember.compile: expected on_new_shape 'recapture' or 'raise', got {on_new_shape!r}")
    if fn is None:
        return lambda f: CompiledStep(f, warmup, max_graphs, on_new_shape)
    if not callable(fn):
        raise TypeError(f"ember.compile: expected a callable, got {type(fn).__name__}")
    return CompiledStep(fn, warmup, max_graphs, on_new_shape)
