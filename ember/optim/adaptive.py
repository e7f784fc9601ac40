"""Optimizers with per-element step sizes from running gradient statistics: Adagrad, RMSprop, Adadelta.

Each follows ``torch.optim``'s formulas and state names, so the first steps
agree with PyTorch to rounding and state dicts carry the same entries
(``step`` is a Python int here rather than a tensor).  The book's ``AdaGrad``
and ``RMSprop`` (chapter 6) are the special cases without weight decay, with
the epsilon added outside the square root.
"""

from __future__ import annotations

from typing import Any

from ember.backends.arrays import lerp_
from ember.optim._helpers import check_nonnegative, check_unit_interval
from ember.optim.optimizer import ARRAY, COUNT, Optimizer, ParamsT


def _decayed_grad(group: dict[str, Any], w: Any, g: Any) -> Any:
    """The gradient after ``maximize`` and L2 weight decay (a new array when either applies)."""
    if group["maximize"]:
        g = -g
    if group["weight_decay"] != 0:
        g = g + group["weight_decay"] * w
    return g


class Adagrad(Optimizer):
    r"""Adagrad (``torch.optim.Adagrad``): steps shrink with the accumulated squared gradient.

    With ``g`` the (weight-decayed) gradient at step ``t`` (from 1)::

        s = s + g * g                  (s starts at initial_accumulator_value)
        w = w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Args:
        params: Tensors, ``(name, Tensor)`` pairs, or parameter-group dicts.
        lr: learning rate.
        lr_decay: learning-rate decay per step.
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: the starting value of ``s``.
        eps: added to the denominator for numerical stability.
        maximize: ascend the objective instead of descending it.

    Raises:
        ValueError: any hyper-parameter is negative.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False):
        defaults = {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                        "initial_accumulator_value": initial_accumulator_value, "eps": eps, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_nonnegative(self._name, name, group[name])

    def _state_schema(self, group: dict[str, Any]) -> dict[str, str]:
        return {"step": COUNT, "sum": ARRAY}

    def _update(self, group: dict[str, Any], w: Any, g: Any, state: dict[str, Any], xp: Any) -> None:
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(w, group["initial_accumulator_value"])
        state["step"] += 1
        g = _decayed_grad(group, w, g)
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += g * g
        std = xp.sqrt(s)
        std += group["eps"]
        w -= clr * (g / std)


class RMSprop(Optimizer):
    r"""RMSprop (``torch.optim.RMSprop``): divide by a running RMS of the gradient.

    With ``g`` the (weight-decayed) gradient::

        v = alpha * v + (1 - alpha) * g * g
        m = alpha * m + (1 - alpha) * g        (centered only)
        a = sqrt(v - m * m) + eps   if centered  else  sqrt(v) + eps
        b = momentum * b + g / a;  w = w - lr * b     (momentum > 0)
        w = w - lr * g / a                              (otherwise)

    Args:
        params: Tensors, ``(name, Tensor)`` pairs, or parameter-group dicts.
        lr: learning rate.
        alpha: smoothing constant of the running averages.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty added to the gradient.
        momentum: momentum factor.
        centered: normalise by the estimated variance instead of the raw second moment.
        maximize: ascend the objective instead of descending it.

    Raises:
        ValueError: any hyper-parameter is negative.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *, maximize: bool = False):
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay, "momentum": momentum,
                        "centered": centered, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            check_nonnegative(self._name, name, group[name])

    def _state_schema(self, group: dict[str, Any]) -> dict[str, str]:
        schema = {"step": COUNT, "square_avg": ARRAY}
        if group["momentum"] > 0:
            schema["momentum_buffer"] = ARRAY
        if group["centered"]:
            schema["grad_avg"] = ARRAY
        return schema

    def _update(self, group: dict[str, Any], w: Any, g: Any, state: dict[str, Any], xp: Any) -> None:
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(w)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(w)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(w)
        state["step"] += 1
        g = _decayed_grad(group, w, g)
        v = state["square_avg"]
        v *= alpha
        v += (1 - alpha) * (g * g)
        if group["centered"]:
            m = state["grad_avg"]
            lerp_(m, g, 1 - alpha)
            avg = xp.sqrt(v - m * m)
        else:
            avg = xp.sqrt(v)
        avg += group["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += g / avg
            w -= group["lr"] * buf
        else:
            w -= group["lr"] * (g / avg)


class Adadelta(Optimizer):
    r"""Adadelta (``torch.optim.Adadelta``): step sizes from the ratio of two running RMS values.

    With ``g`` the (weight-decayed) gradient::

        v = rho * v + (1 - rho) * g * g
        d = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * d * d
        w = w - lr * d

    Args:
        params: Tensors, ``(name, Tensor)`` pairs, or parameter-group dicts.
        lr: scale applied to the step (1.0 is the method as published).
        rho: smoothing constant of the running averages, in [0, 1].
        eps: added inside both square roots.
        weight_decay: L2 penalty added to the gradient.
        maximize: ascend the objective instead of descending it.

    Raises:
        ValueError: rho outside [0, 1] or a negative lr, eps or weight_decay.
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, *, maximize: bool = False):
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_nonnegative(self._name, name, group[name])
        check_unit_interval(self._name, "rho", group["rho"], open_right=False)

    def _state_schema(self, group: dict[str, Any]) -> dict[str, str]:
        return {"step": COUNT, "square_avg": ARRAY, "acc_delta": ARRAY}

    def _update(self, group: dict[str, Any], w: Any, g: Any, state: dict[str, Any], xp: Any) -> None:
        rho, eps = group["rho"], group["eps"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(w)
            state["acc_delta"] = xp.zeros_like(w)
        state["step"] += 1
        g = _decayed_grad(group, w, g)
        v, u = state["square_avg"], state["acc_delta"]
        v *= rho
        v += (1 - rho) * (g * g)
        delta = xp.sqrt(u + eps)
        delta /= xp.sqrt(v + eps)
        delta *= g
        u *= rho
        u += (1 - rho) * (delta * delta)
        w -= group["lr"] * delta
