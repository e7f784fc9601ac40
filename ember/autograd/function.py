"""``Function``: one differentiable op, its forward and backward in one class.

An instance is both the op's context (``ctx``) and its node in the graph, as in
PyTorch.  Links: node -> inputs are strong but point at the input's *creator*
(or the leaf itself), never at an intermediate tensor, so intermediate arrays
die as soon as nothing saved them; node -> outputs do not exist at all (saved
outputs keep only their array).  Hence an unreferenced graph is freed by
reference counting alone, with no cycle for the cyclic GC to find.

Saved values: ``ctx.save_for_backward(*values)`` is matched by identity against
the forward's input and output arrays.  In an ordinary backward
``ctx.saved_tensors`` returns the arrays; under ``create_graph=True`` it returns
Tensors wired into the graph (inputs as their tensors, outputs as tensors whose
creator is this node), so the same backward code records a differentiable
graph.  Any other saved value is a constant (masks, indices): correct as long
as it carries no gradient, which is how every ember op uses it.

Naming rule for Function subclasses: the CamelCase name of the operation they
compute (``Add``, ``MatMul``, ``Convolution2d``, ``MaxPooling2d``), with no
``Function`` suffix and never the name of an ``ember.nn`` layer (compared
case-insensitively: ``Logistic``, not ``Sigmoid``), so a traceback's op is never
mistaken for a layer.  A node that only serves another op's backward appends
what it computes (``Convolution2dWeightGrad``, ``MaxPooling2dGrad``).
"""

from __future__ import annotations

import itertools
from contextvars import ContextVar
from operator import attrgetter
from typing import Any

import numpy
from numpy import ndarray

from ember.autograd import capture as _capture
from ember.autograd.grad_mode import _GRAD_ENABLED
from ember.autograd.tensor import Tensor
from ember.backends.device import _BACKEND_BY_ARRAY_TYPE, backend_of
from ember.errors import DeviceMismatchError, GraphError

_FREED = object()  # marks saved values released after backward
_seq = itertools.count()
# The hook point of anomaly mode: ember.autograd.anomaly installs a pair
# ``(check_forward(cls, ctx, arrays, out), checked_backward(call_backward, fn, gys, create_graph))``
# with set_anomaly_hooks (this module never imports it); None when off, which costs apply()
# and the engine's loop one global read each.
_anomaly_hooks: tuple | None = None


def set_anomaly_hooks(hooks: tuple | None) -> tuple | None:
    """Install anomaly mode's ``(forward check, backward wrapper)`` pair, or None; returns the previous one."""
    global _anomaly_hooks
    previous, _anomaly_hooks = _anomaly_hooks, hooks
    return previous

# ember.amp.autocast sets this to its caster, ``caster(cls, args) -> args``, which casts an
# op's Tensor arguments by the autocast policy; None (autocast off) costs apply() one read.
AUTOCAST_CASTER: ContextVar = ContextVar("ember_autocast_caster", default=None)


def autocast_active() -> bool:
    """True inside ``ember.amp.autocast``: op wrappers then pass mixed float dtypes on to ``apply``."""
    return AUTOCAST_CASTER.get() is not None


class Function:
    """Base class of differentiable ops; subclass with ``forward`` and ``backward``.

    ``forward(ctx, *args, **kwargs)`` receives backend arrays in place of Tensor
    arguments (other arguments unchanged) and returns an array or a tuple of
    arrays.  ``backward(ctx, *grads)`` returns one gradient (or ``None``) per
    positional argument of ``forward``; a gradient may have the broadcast shape,
    the engine sums it back to the input's shape.
    """

    # Set on each instance by apply(); declared here for readers and type checkers.
    xp: Any
    backend: Any
    generation: int

    # Defaults for a node that saved nothing and has one output; apply() and the engine
    # override them per instance only when needed, which keeps the per-op cost down.
    _edges: Any = ()  # per forward argument: None, a leaf Tensor, or (producing node, output index)
    _to_save: tuple = ()
    _saved: Any = ()
    _saved_info: Any = ()  # (kind, version box, version) per saved value: see _resolve_saved
    _n_out = 1
    _out_shape: Any = None  # a single output's shape and dtype (multi-output nodes: _multi_meta)
    _out_dtype: Any = None
    _multi_meta: tuple = ()
    _create_graph = False
    # Read by many backwards on every call: a read-only property whose getter is C code
    # (attrgetter), so reading it runs no Python frame.
    create_graph = property(
        attrgetter("_create_graph"),
        doc="True while this node's backward runs under ``create_graph=True`` (``ctx.xp`` is then Tensor-level).",
    )
    _hooks: Any = None  # ember.autograd.hooks.NodeHooks once a hook or retain_grad targets an output

    @property
    def needs_input_grad(self) -> tuple:
        """One bool per forward argument: does that input need a gradient?"""
        e = self._edges
        if len(e) == 1:
            return (e[0] is not None,)
        if len(e) == 2:
            return (e[0] is not None, e[1] is not None)
        return tuple([edge is not None for edge in e])

    @property
    def _out_meta(self) -> tuple:
        """``((shape, dtype), ...)`` per output of a recorded node."""
        if self._n_out == 1:
            return ((self._out_shape, self._out_dtype),)
        return self._multi_meta

    @property
    def next_functions(self) -> tuple:
        """``((node or AccumulateGrad or None, output index), ...)``, one per forward argument, as PyTorch."""
        from ember.autograd.graph_nodes import next_functions

        return next_functions(self)

    def name(self) -> str:
        """The node's name as PyTorch prints it (``MulBackward``)."""
        return f"{type(self).__name__}Backward"

    @staticmethod
    def forward(ctx: "Function", *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Function subclasses must implement forward(ctx, ...)")

    @staticmethod
    def backward(ctx: "Function", *grads: Any) -> Any:
        raise NotImplementedError("Function subclasses must implement backward(ctx, *grads)")

    # ----------------------------------------------------------------- saving
    def save_for_backward(self, *values: Any) -> None:
        """Keep ``values`` (forward inputs/outputs or constants) for backward."""
        self._to_save = values

    @property
    def saved_tensors(self) -> tuple:
        """The saved values: arrays normally, Tensors under ``create_graph``."""
        saved = self._saved
        if saved is _FREED:
            raise GraphError(
                f"{type(self).__name__}.backward: trying to backward through the graph a second time "
                "(its saved values were freed after the first backward); "
                "call backward(retain_graph=True) the first time"
            )
        if self._create_graph:
            return tuple(self._saved_as_tensor(i, v) for i, v in enumerate(saved))
        return saved

    @property
    def saved_arrays(self) -> tuple:
        """The saved values as raw arrays, whatever the mode (for masks and weights)."""
        if self._saved is _FREED:
            return self.saved_tensors  # raises the freed-graph error
        return self._saved

    def _saved_as_tensor(self, i: int, value: Any) -> Any:
        kind = self._saved_info[3 * i]
        if kind is None:  # a constant
            return value
        if kind >= 0:  # forward input number `kind`
            edge = self._edges[kind]
            if edge is None:
                return Tensor._make(value)
            if isinstance(edge, Tensor):
                return edge
            return Tensor._make(value, True, edge[0], edge[1])
        return Tensor._make(value, True, self, ~kind)  # forward output number ~kind

    def _check_versions(self) -> None:
        """Raise if a saved input or output was modified in place since the forward."""
        if self._saved is _FREED:
            return  # backward raises the freed-graph error when it reads saved_tensors
        info = self._saved_info
        for j in range(0, len(info), 3):
            box = info[j + 1]
            if box is not None and box[0] != info[j + 2]:
                kind = info[j]
                name = f"input {kind}" if kind >= 0 else f"output {~kind}"
                shape = tuple(getattr(self._saved[j // 3], "shape", ()))
                raise GraphError(
                    f"{type(self).__name__}.backward: a tensor of shape {shape} saved as its {name} was "
                    f"modified in place after being used (version {box[0]}, expected {info[j + 2]}); "
                    "clone it before modifying it, or modify it under no_grad before the forward"
                )

    # ------------------------------------------------------------------ apply
    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run the op on Tensors and, in grad mode, record it in the graph."""
        # This runs once per op call, so it is written for speed (see
        # benchmarks/dispatch.py and benchmarks/op_overhead_ab.py): no imports or
        # generator expressions here, output Tensors are built inline, and a recorded
        # single-output node allocates only itself, its edge list, the output Tensor
        # and its version box (every extra container makes the cyclic GC run sooner).
        ctx = _new_object(cls)
        arrays = []
        edges = []
        backend = None
        generation = 0
        any_grad = False
        record = _GRAD_ENABLED.get()
        caster = AUTOCAST_CASTER.get()
        if caster is not None:  # ember.amp.autocast: cast the inputs by the op's autocast policy
            args = caster(cls, args)
        for a in args:
            if isinstance(a, Tensor):
                data = a.data
                arrays.append(data)
                b = _BACKEND_BY_ARRAY_TYPE.get(type(data)) or backend_of(data)
                if backend is None:
                    backend = b
                elif b is not backend:
                    _raise_device_mismatch(cls, args)
                if record and a.requires_grad:
                    any_grad = True
                    fn = a.grad_fn
                    if fn is None:
                        edges.append(a)
                    else:
                        edges.append((fn, a._out_idx))
                        if fn.generation >= generation:
                            generation = fn.generation + 1
                    continue
            else:
                arrays.append(a)
            edges.append(None)
        if backend is None:
            raise TypeError(f"{cls.__name__}: expected at least one Tensor argument")
        ctx.xp = backend.ops
        ctx.backend = backend
        ctx._edges = edges  # needs_input_grad is read from it
        out = cls.forward(ctx, *arrays, **kwargs)
        rec = _capture.RECORDER[0]
        if rec is not None:  # ember.compile / graphs: record this call on the tape
            out = rec.forward(cls, ctx, args, arrays, kwargs, out)
        if _anomaly_hooks is not None:
            _anomaly_hooks[0](cls, ctx, arrays, out)
        if type(out) is tuple:
            return _finish_multi(ctx, out, any_grad, generation, args, arrays)
        raw_out = out
        if type(out) is not ndarray and isinstance(out, numpy.generic):  # 0-d results: keep arrays
            out = numpy.asarray(out)
        result = _new_object(Tensor)
        result.data = out
        result.grad = None
        result._out_idx = 0
        result._vbox = None  # the version counter, made when needed
        if rec is not None:
            rec.made_tensor(result)
        if not any_grad or out.dtype.kind != "f":  # integer/bool results carry no gradient
            result.requires_grad = False
            result.grad_fn = None
            return result
        ctx.generation = generation
        ctx._seq = next(_seq)
        ctx._out_shape = out.shape
        ctx._out_dtype = out.dtype
        result.requires_grad = True
        result.grad_fn = ctx
        if ctx._to_save:
            _resolve_saved(ctx, args, arrays, (raw_out,), (out,), (result,))
        return result


_new_object = object.__new__


def _finish_multi(
    ctx: Function, raw_outs: tuple, any_grad: bool, generation: int, args: tuple, arrays: list
) -> tuple:
    """The tail of ``apply`` for a forward that returned a tuple of arrays."""
    outs = tuple(numpy.asarray(o) if isinstance(o, numpy.generic) else o for o in raw_outs)
    if not any_grad:
        results = tuple(Tensor._make(o) for o in outs)
        if _capture.RECORDER[0] is not None:
            for r in results:
                _capture.RECORDER[0].made_tensor(r)
        return results
    ctx.generation = generation
    ctx._seq = next(_seq)
    ctx._n_out = len(outs)
    ctx._out_shape = None  # the engine reads _multi_meta instead
    ctx._multi_meta = tuple((o.shape, o.dtype) for o in outs)
    results = []
    for i, o in enumerate(outs):
        differentiable = o.dtype.kind == "f"
        results.append(Tensor._make(o, differentiable, ctx if differentiable else None, i))
    if ctx._to_save:
        _resolve_saved(ctx, args, arrays, raw_outs, outs, results)
    if _capture.RECORDER[0] is not None:
        for r in results:
            _capture.RECORDER[0].made_tensor(r)
    return tuple(results)


def _resolve_saved(
    ctx: Function, args: tuple, arrays: list, raw_outs: tuple, outs: tuple, results: Any
) -> None:
    """Classify each saved value as an input, an output or a constant, and snapshot versions.

    ``ctx._saved_info`` holds three entries per saved value ``k``: its kind (``i >= 0``
    for forward input ``i``, ``~j`` (< 0) for output ``j``, None for a constant), the
    version box of that tensor and the version it had (both None for a constant), so
    that an in-place edit made before backward is caught.  One flat list keeps the
    node's object count (and the cyclic GC's work) down.
    """
    to_save = ctx._to_save
    del ctx._to_save
    saved = to_save
    info = []
    k = 0
    for value in to_save:  # plain loops, no enumerate: this runs for most recorded ops
        i = 0
        for a in arrays:
            if a is value:
                t = args[i]
                if isinstance(t, Tensor):
                    box = t._vbox
                    if box is None:  # the input's version counter, made on first use
                        box = t._vbox = [0]
                    info.append(i)
                    info.append(box)
                    info.append(box[0])
                    break
            i += 1
        else:
            j = 0
            for o in raw_outs:
                if o is value:
                    info.append(~j)
                    box = results[j]._vbox
                    if box is None:
                        box = results[j]._vbox = [0]
                    info.append(box)
                    info.append(0)
                    if outs[j] is not o:  # keep the array the output Tensor holds (0-d, not a scalar)
                        saved = saved[:k] + (outs[j],) + saved[k + 1:]
                    break
                j += 1
            else:
                info.append(None)
                info.append(None)
                info.append(None)
        k += 1
    ctx._saved = saved
    ctx._saved_info = info


def _raise_device_mismatch(cls: type, args: tuple) -> None:
    devices = ", ".join(
        f"arg {i}: {a.device} {tuple(a.shape)}" for i, a in enumerate(args) if isinstance(a, Tensor)
    )
    raise DeviceMismatchError(
        f"{cls.__name__}: expected all tensors on one device, got {devices}; "
        "move them with .to(device) first (ember never copies between devices implicitly)"
    )
