"""Optimizer steps inside a CUDA graph: the learning rate and step count read from device memory.

While ``ember.cuda.graphs`` captures, SGD and Adam launch the device-scalar
multi-tensor kernels (``ember.backends.cupy.optim_captured``) with a small
array of scalars made in the capture. A hook writes the live
``param_group["lr"]`` into it before every replay (so learning-rate schedulers
keep working); Adam's step count is advanced on the device, skipped with the
step when a loss scaler found an inf/nan (it writes the skip flag in the
graph: :func:`set_skip_flag`). The host's ``state["step"]`` is advanced once
per replay, so it matches the device count unless steps were skipped.
Hyperparameters other than ``lr`` are fixed at capture.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy

from ember.backends import capture_state, device_gemm

_SKIP_FLAGS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()  # optimizer -> device flag


def capturing(w: Any) -> bool:
    """True when a CUDA graph is being captured and ``w`` is a device array."""
    return device_gemm.CAPTURING[0] > 0 and type(w) is not numpy.ndarray


def set_skip_flag(optimizer: Any, flag: Any) -> None:
    """Make ``optimizer``'s next captured step a no-op where the 0-d device ``flag`` is true (None: clear)."""
    if flag is None:
        _SKIP_FLAGS.pop(optimizer, None)
    else:
        _SKIP_FLAGS[optimizer] = flag


def zeros_like(w: Any) -> Any:
    """Optimizer state made during a capture: zeroed once before the first replay, not by the graph.

    (``zeros_like`` in the capture would be a memset replayed at every step; the host zeroes it, so it
    comes from the graph's host-filled memory.)
    """
    import sys

    from ember.cuda.graphs import before_replay

    out = capture_state.host_filled_empty(sys.modules["cupy"], w.shape, w.dtype)
    pending = [True]

    def zero_once() -> None:
        if pending:
            out.fill(0)
            pending.clear()

    before_replay(zero_once, keep=out)
    return out


def _scalars(xp: Any, size: int, skip_index: int, optimizer: Any, first: Any, later: Any) -> Any:
    """A float64 device array made in the capture: ``first()`` fills it before the first replay,
    ``later()`` its learning-rate prefix before each later one; the skip slot is copied in the graph."""
    from ember.cuda.graphs import before_replay

    sc = capture_state.host_filled_empty(xp, (size,), numpy.float64)
    last: list = []  # what the device holds now (the learning-rate prefix), to skip unchanged uploads

    def refresh() -> None:
        if last:
            values = later()
            if not numpy.array_equal(values, last[0]):
                sc[: len(values)].set(values)
                last[0] = values
        else:
            values = first()
            sc.set(values)
            last.append(values[:1])  # slot 0 is the learning rate in every layout

    before_replay(refresh, keep=sc)
    flag = _SKIP_FLAGS.get(optimizer)
    if flag is not None:
        sc[skip_index : skip_index + 1] = flag.reshape(1)  # a device copy inside the graph
    return sc


def sgd_many(optimizer: Any, group: dict, ws: list, gs: list, bufs: list, new_buffers: bool, xp: Any) -> None:
    """One SGD update for the batch, ``lr`` read on the device (``new_buffers``: momentum starts at this step)."""
    from ember.backends.cupy import optim_captured as oc

    def lr() -> numpy.ndarray:
        return numpy.array([group["lr"]], dtype=numpy.float64)

    def first() -> numpy.ndarray:
        return numpy.array([group["lr"], 0.0, float(new_buffers), 0.0])

    sc = _scalars(xp, oc.SGD_SIZE, oc.SGD_SKIP, optimizer, first, lr)
    oc.sgd_update_many(ws, gs, bufs, sc, momentum=group["momentum"], dampening=group["dampening"],
                       weight_decay=group["weight_decay"], nesterov=group["nesterov"], maximize=group["maximize"],
                       xp=xp)


def adam_many(optimizer: Any, group: dict, ws: list, gs: list, states: list[dict], xp: Any) -> None:
    """Adam for the batch (all at one step count): the step counted and its coefficients made on the device."""
    from ember.backends.cupy import optim_captured as oc

    (beta1, beta2), captured_step = group["betas"], states[0]["step"]

    def first() -> numpy.ndarray:  # the captured Python step counted this step already; the prep kernel counts it
        values = numpy.zeros(oc.ADAM_SIZE)
        values[[oc.ADAM_LR, oc.ADAM_WD, oc.ADAM_T]] = group["lr"], group["weight_decay"], captured_step - 1
        return values

    def later() -> numpy.ndarray:
        for state in states:
            state["step"] += 1
        return numpy.array([group["lr"]], dtype=numpy.float64)

    sc = _scalars(xp, oc.ADAM_SIZE, oc.ADAM_SKIP, optimizer, first, later)
    oc.adam_update_many(
        ws, gs, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
        [s.get("max_exp_avg_sq") for s in states], sc, beta1=beta1, beta2=beta2, eps=group["eps"],
        weight_decay=group["weight_decay"], decoupled_weight_decay=group["decoupled_weight_decay"],
        maximize=group["maximize"], xp=xp)
