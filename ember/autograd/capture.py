"""Record one run of a training step as a tape of kernel calls, and replay it.

While a :class:`Recorder` is active, every op's forward, every node's backward,
the engine's gradient sums and broadcast reductions, and every delivery of a
gradient to a leaf are appended to a tape. Arrays are named by *slots*: an
array made during the run gets a slot that replay refills; a Tensor that
existed before the run (a parameter, a buffer, a static input) is bound by
object, and replay reads its ``.data`` afresh each time, so an optimizer that
updates in place, a rebound ``.data`` or a new input batch are all seen; any
other array (a seed gradient of ones, zeros for a missing output) is a constant.

Python-level steps with state of their own (``optimizer.step``, ``zero_grad``,
the loss scaler's ``step``/``update``, in-place tensor methods) are marked
:func:`replayable`: the tape calls them again instead of recording their
insides, so learning-rate schedules, Adam's step count and the loss scale are
never frozen. What the tape cannot see is frozen at its captured value: Python
control flow that depends on tensor values, and host-side numbers turned into
new tensors inside the step (see docs/compile.md).

Replay builds no Tensor and no graph node and runs no heap: that is what it saves.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any, Callable

import numpy

RECORDER: list = [None]  # the active Recorder, read by Function.apply and the engine


class CaptureError(RuntimeError):
    """Something in the step cannot be captured (the message says what and how to fix it)."""


def _as_array(value: Any) -> Any:
    return numpy.asarray(value) if isinstance(value, numpy.generic) else value


class Tape:
    """A recorded step: slots for arrays, bound tensors, and the entries to run."""

    def __init__(self) -> None:
        self.n_slots = 0
        self.constants: dict[int, Any] = {}  # slot -> array fixed at capture
        self.bound: list[tuple[int, Any]] = []  # (slot, Tensor) read at every replay start
        self.bound_slots: set[int] = set()
        self.entries: list[Callable[[list], None]] = []
        self.keep: set[int] = set()  # slots whose arrays outlive a replay (outputs)

    def replay(self) -> list:
        """Run the entries once; returns the slot list (outputs are read from it)."""
        slots: list = [None] * self.n_slots
        for k, value in self.constants.items():
            slots[k] = value
        for k, tensor in self.bound:
            slots[k] = tensor.data
        for entry in self.entries:
            entry(slots)
        return slots


class Recorder:
    """Builds a :class:`Tape` while the step runs eagerly once."""

    def __init__(self) -> None:
        self.tape = Tape()
        self.slot_of: dict[int, int] = {}  # id(array) -> slot
        self.alive: list = []  # every array seen, so ids are not reused during capture
        self.depth = 0  # > 0 inside a replayable call: its insides are not recorded
        self.made: list = []  # weak references to the Tensors ops returned (outputs the user may hold)

    def made_tensor(self, t: Any) -> None:
        """Note a Tensor an op returned, so a replay can refresh it if the user keeps it."""
        if not self.depth:
            self.made.append(weakref.ref(t))

    # ------------------------------------------------------------ slots
    def _new_slot(self, array: Any) -> int:
        k = self.tape.n_slots
        self.tape.n_slots += 1
        self.slot_of[id(array)] = k
        self.alive.append(array)
        return k

    def out_slot(self, array: Any) -> int:
        """The slot an entry writes ``array`` into (an existing one when an op returns an input)."""
        k = self.slot_of.get(id(array))
        return self._new_slot(array) if k is None else k

    def in_slot(self, array: Any, tensor: Any = None) -> int:
        """The slot an entry reads ``array`` from: made earlier, bound to ``tensor``, or constant."""
        k = self.slot_of.get(id(array))
        if k is not None:
            return k
        k = self._new_slot(array)
        if tensor is not None:
            self.tape.bound.append((k, tensor))
            self.tape.bound_slots.add(k)
        else:
            self.tape.constants[k] = array
        return k

    # ----------------------------------------------------------- record
    def forward(self, cls: type, ctx: Any, args: tuple, arrays: list, kwargs: dict, out: Any) -> Any:
        """Record ``cls.forward(ctx, *arrays, **kwargs) -> out``; returns ``out`` with 0-d arrays."""
        from ember.autograd.tensor import Tensor

        out = tuple(_as_array(o) for o in out) if type(out) is tuple else _as_array(out)
        if self.depth:
            return out
        spec = []
        for a, arr in zip(args, arrays):
            if isinstance(a, Tensor):
                spec.append((True, self.in_slot(arr, a)))
            else:
                spec.append((False, a))
        multi = type(out) is tuple
        outs = [self.out_slot(o) for o in (out if multi else (out,))]
        forward = cls.forward

        def run(slots: list, ctx: Any = ctx, spec: tuple = tuple(spec), kwargs: dict = kwargs) -> None:
            result = forward(ctx, *[slots[v] if is_slot else v for is_slot, v in spec], **kwargs)
            saved = ctx.__dict__.pop("_to_save", None)
            if saved is not None:
                ctx._saved = tuple(_as_array(s) for s in saved)
            if multi:
                for k, o in zip(outs, result):
                    slots[k] = _as_array(o)
            else:
                slots[outs[0]] = _as_array(result)

        self.tape.entries.append(run)
        return out

    def backward(self, fn: Any, gys: list, gxs: tuple) -> tuple:
        """Record ``fn.backward(fn, *gys) -> gxs``; returns ``gxs`` with 0-d arrays for scalars."""
        if self.depth:
            return gxs
        gxs = tuple(_as_array(g) for g in gxs)
        ins = [self.in_slot(g) if g is not None else None for g in gys]
        outs = [self.out_slot(g) if g is not None else None for g in gxs]
        backward = type(fn).backward
        from ember.autograd.function import _FREED

        def run(slots: list, fn: Any = fn) -> None:
            result = backward(fn, *[slots[k] if k is not None else None for k in ins])
            fn._saved = _FREED
            if type(result) is not tuple:
                result = (result,)
            for k, g in zip(outs, result):
                if k is not None:
                    slots[k] = _as_array(g)

        self.tape.entries.append(run)
        return gxs

    def reduce_to(self, source: Any, result: Any, shape: tuple) -> None:
        """Record the engine's reduction of a broadcast gradient ``source`` to ``shape``."""
        if self.depth or result is source:
            return
        from ember.backends.arrays import sum_to

        src, dst = self.in_slot(source), self.out_slot(result)

        def run(slots: list) -> None:
            slots[dst] = sum_to(slots[src], shape)

        self.tape.entries.append(run)

    def add(self, a: Any, b: Any, result: Any) -> None:
        """Record the engine's sum of two gradients for one input."""
        if self.depth:
            return
        ka, kb, dst = self.in_slot(a), self.in_slot(b), self.out_slot(result)

        def run(slots: list) -> None:
            slots[dst] = _as_array(slots[ka] + slots[kb])

        self.tape.entries.append(run)

    def deliver(self, leaf: Any, grad: Any) -> None:
        """Record a gradient reaching a leaf: set its ``.grad``, or add to it, as the engine does."""
        if self.depth:
            return
        from ember.autograd.engine import accumulate_into
        from ember.autograd.tensor import Tensor

        src = self.in_slot(grad)

        def run(slots: list, leaf: Any = leaf) -> None:
            accumulate_into(leaf, Tensor._make(slots[src]))

        self.tape.entries.append(run)

    def call(self, method: Callable, args: tuple, kwargs: dict) -> None:
        """Record a replayable Python call; its Tensor arguments are rebound at replay."""
        from ember.autograd.tensor import Tensor

        spec = []
        made = self.tape.constants.keys() | self.tape.bound_slots
        for a in args:
            k = self.slot_of.get(id(a.data)) if isinstance(a, Tensor) else None
            if k is not None and k not in made:  # an array the step made: rebind to this replay's
                spec.append((True, k, a.requires_grad))
            else:
                spec.append((False, a, None))

        def run(slots: list) -> None:
            call_args = [Tensor._make(slots[v], rg) if is_slot else v for is_slot, v, rg in spec]
            method(*call_args, **kwargs)

        self.tape.entries.append(run)


def replayable(method: Callable) -> Callable:
    """Mark a method that replay must call again (state of its own, host logic), not record inside."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rec = RECORDER[0]
        if rec is None:
            return method(*args, **kwargs)
        if rec.depth == 0:
            rec.call(method, args, kwargs)
        rec.depth += 1
        try:
            return method(*args, **kwargs)
        finally:
            rec.depth -= 1

    wrapper.__ember_replayable__ = True
    return wrapper
