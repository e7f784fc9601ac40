"""Array-level reference optimizer updates (no autograd): SGD and Adam/AdamW, in place.

The readable spec of ``ember.backends.numba.optim``, which runs the same
formulas in one compiled pass over each parameter.  This is the one home of the
``torch.optim.SGD`` / ``torch.optim.Adam`` formulas (including the order of
operations and ``lerp``'s two-sided form): the optimizer classes of
``ember.optim`` keep the state (buffers, the step count) and always call the
backend's ``optim.sgd_update`` / ``optim.adam_update``, which are these
functions or compiled copies that give the same parameters.

Each function takes the array module as ``xp`` and updates ``w`` and the state
arrays in place; ``g`` is never written to.  All arrays have one shape and
dtype (float16 parameters arrive as float32 working copies).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.arrays import lerp_


def sgd_update(
    w: Any, g: Any, buf: Any, *, lr: float, momentum: float, dampening: float, weight_decay: float,
    nesterov: bool, maximize: bool, first_step: bool, xp: Any = numpy,
) -> None:
    """One SGD step: ``w -= lr * d`` (see ``ember.optim.SGD`` for ``d``).

    Args:
        w: the parameter (working) array, updated in place.
        g: its gradient.
        buf: the momentum buffer (updated in place), or None when ``momentum == 0``.
        lr, momentum, dampening, weight_decay, nesterov, maximize: the group's hyper-parameters.
        first_step: ``buf`` is new: set it to the gradient instead of accumulating.
        xp: array module of the arrays.
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * w
    if buf is not None:
        if first_step:
            buf[...] = g
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    w -= lr * g


def adam_update(
    w: Any, g: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, *, step: int, lr: float, beta1: float,
    beta2: float, eps: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool, xp: Any = numpy,
) -> None:
    """One Adam / AdamW step at step number ``step`` (from 1), see ``ember.optim.Adam`` for the formulas.

    Args:
        w: the parameter (working) array, updated in place.
        g: its gradient.
        exp_avg, exp_avg_sq: first and second moments, updated in place.
        max_exp_avg_sq: the AMSGrad running maximum (updated in place), or None without AMSGrad.
        step: the step number after incrementing (bias corrections ``1 - beta**step``).
        lr, beta1, beta2, eps, weight_decay: the group's hyper-parameters.
        decoupled_weight_decay: AdamW's ``w *= 1 - lr * weight_decay`` instead of L2 on the gradient.
        maximize: ascend instead of descend.
        xp: array module of the arrays.
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        if decoupled_weight_decay:
            w *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * w
    lerp_(exp_avg, g, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * (g * g)
    v = exp_avg_sq
    if max_exp_avg_sq is not None:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    step_size = lr / (1 - beta1**step)
    denom = xp.sqrt(v)
    denom /= (1 - beta2**step) ** 0.5
    denom += eps
    w -= step_size * (exp_avg / denom)


def sgd_update_many(
    ws: list, gs: list, bufs: list, *, lr: float, momentum: float, dampening: float, weight_decay: float,
    nesterov: bool, maximize: bool, first_step: bool, xp: Any = numpy,
) -> None:
    """``sgd_update`` on each ``(w, g, buf)`` in turn: the spec of the multi-tensor (one launch) update.

    Args:
        ws, gs, bufs: equally long lists (``bufs`` all None when ``momentum == 0``);
            each triple as ``sgd_update`` takes it.
        The rest: as ``sgd_update``, shared by every tensor.
    """
    for w, g, buf in zip(ws, gs, bufs, strict=True):
        sgd_update(w, g, buf, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                   nesterov=nesterov, maximize=maximize, first_step=first_step, xp=xp)


def adam_update_many(
    ws: list, gs: list, exp_avgs: list, exp_avg_sqs: list, max_exp_avg_sqs: list, *, step: int, lr: float,
    beta1: float, beta2: float, eps: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool,
    xp: Any = numpy,
) -> None:
    """``adam_update`` on each tensor in turn, all at step ``step``: the spec of the multi-tensor update.

    Args:
        ws, gs, exp_avgs, exp_avg_sqs, max_exp_avg_sqs: equally long lists
            (``max_exp_avg_sqs`` all None without AMSGrad).
        The rest: as ``adam_update``, shared by every tensor.
    """
    for w, g, m, v, vmax in zip(ws, gs, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, strict=True):
        adam_update(w, g, m, v, vmax, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                    decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, xp=xp)
