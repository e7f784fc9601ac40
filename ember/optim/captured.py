"""Optimizer steps inside a CUDA graph: the learning rate and step count read from device memory.

While ``ember.cuda.graphs`` captures, SGD and Adam launch the device-scalar
multi-tensor kernels (``ember.backends.cupy.optim_captured``) with a small
array of coefficients made in the capture, and register a hook that refills
it before every replay from the live host values: ``param_group["lr"]`` (so
learning-rate schedulers keep working) and the step count, which the hook
advances once per replay after the first (the captured Python step already
counted the first). Hyperparameters other than ``lr`` are fixed at capture.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends import device_gemm


def capturing(w: Any) -> bool:
    """True when a CUDA graph is being captured and ``w`` is a device array."""
    return device_gemm.CAPTURING[0] > 0 and type(w) is not numpy.ndarray


def _register(xp: Any, size: int, fill: Any) -> Any:
    """A float64 device array of ``size`` made in the capture, refilled by ``fill()`` before each replay."""
    from ember.cuda.graphs import before_replay

    sc = xp.empty(size, dtype=numpy.float64)
    before_replay(lambda: sc.set(fill()), keep=sc)
    return sc


def sgd_many(group: dict, ws: list, gs: list, bufs: list, xp: Any) -> None:
    """One SGD launch for the batch with ``lr`` read on the device."""
    from ember.backends.cupy import optim_captured

    sc = _register(xp, 1, lambda: numpy.array([group["lr"]], dtype=numpy.float64))
    optim_captured.sgd_update_many(ws, gs, bufs, sc, momentum=group["momentum"], dampening=group["dampening"],
                                   weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                                   maximize=group["maximize"], xp=xp)


def adam_many(group: dict, ws: list, gs: list, states: list[dict], xp: Any) -> None:
    """One Adam launch for the batch (all at one step count), its coefficients read on the device."""
    from ember.backends.cupy import optim_captured

    (beta1, beta2), first = group["betas"], [True]

    def coefficients() -> numpy.ndarray:
        if not first[0]:
            for state in states:
                state["step"] += 1
        first[0] = False
        return optim_captured.adam_coefficients(group["lr"], states[0]["step"], beta1, beta2, group["weight_decay"])

    sc = _register(xp, 3, coefficients)
    optim_captured.adam_update_many(
        ws, gs, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
        [s.get("max_exp_avg_sq") for s in states], sc, beta1=beta1, beta2=beta2, eps=group["eps"],
        weight_decay=group["weight_decay"], decoupled_weight_decay=group["decoupled_weight_decay"],
        maximize=group["maximize"], xp=xp)
