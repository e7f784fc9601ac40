"""Adam and AdamW: bias-corrected running moments of the gradient, optionally AMSGrad.

The two differ only in weight decay: Adam adds ``weight_decay * w`` to the
gradient (an L2 penalty that the moment estimates then rescale), AdamW shrinks
the weights directly by ``lr * weight_decay`` before the Adam step (decoupled
weight decay, Loshchilov & Hutter).  Formulas follow ``torch.optim.Adam``; the
class holds the state and the arithmetic is the backend's ``optim.adam_update``
(readable in ``ember.backends.reference.optim``).
"""

from __future__ import annotations

from typing import Any

from ember.autograd.capture import CaptureError
from ember.backends.device import backend_of
from ember.optim import captured
from ember.optim._helpers import check_nonnegative, check_unit_interval
from ember.optim.optimizer import ARRAY, COUNT, Optimizer, ParamsT


class Adam(Optimizer):
    r"""Adam (``torch.optim.Adam``), with AMSGrad as an option.

    With ``g`` the gradient at step ``t`` (from 1)::

        g = g + weight_decay * w            (or w = w * (1 - lr * weight_decay) if decoupled)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        vmax = max(vmax, v)                 (amsgrad; then vmax replaces v below)
        w = w - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: Tensors, ``(name, Tensor)`` pairs, or parameter-group dicts.
        lr: learning rate.
        betas: decay rates ``(beta1, beta2)`` of the first and second moments, each in [0, 1).
        eps: added to the denominator for numerical stability.
        weight_decay: weight decay factor (L2 on the gradient unless decoupled).
        amsgrad: use the running maximum of the second moment (AMSGrad).
        maximize: ascend the objective instead of descending it.
        decoupled_weight_decay: apply weight decay to the weights directly (AdamW).

    Raises:
        ValueError: a beta outside [0, 1) or a negative lr, eps or weight_decay.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        defaults = {"lr": lr, "betas": tuple(betas) if isinstance(betas, list) else betas, "eps": eps,
                        "weight_decay": weight_decay, "amsgrad": amsgrad, "maximize": maximize,
                        "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_nonnegative(self._name, name, group[name])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{self._name}: expected betas to be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            check_unit_interval(self._name, f"betas[{i}]", beta, open_right=True)

    def _state_schema(self, group: dict[str, Any]) -> dict[str, str]:
        schema = {"step": COUNT, "exp_avg": ARRAY, "exp_avg_sq": ARRAY}
        if group["amsgrad"]:
            schema["max_exp_avg_sq"] = ARRAY
        return schema

    def _update(self, group: dict[str, Any], w: Any, g: Any, state: dict[str, Any], xp: Any) -> None:
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(w)
            state["exp_avg_sq"] = xp.zeros_like(w)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(w)
        state["step"] += 1
        backend_of(w).optim.adam_update(
            w, g, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"), step=state["step"], lr=lr,
            beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=weight_decay,
            decoupled_weight_decay=group["decoupled_weight_decay"], maximize=group["maximize"], xp=xp,
        )

    def _update_many(self, group: dict[str, Any], ws: list, gs: list, states: list[dict], xp: Any) -> None:
        """The batch through the backend's ``adam_update_many`` (one launch on CUDA), when it has one.

        Parameters at different step counts (one skipped a step) go in one call per count.
        """
        many = getattr(backend_of(ws[0]).optim, "adam_update_many", None)
        if many is None:
            return super()._update_many(group, ws, gs, states, xp)
        (beta1, beta2), amsgrad = group["betas"], group["amsgrad"]
        calls: dict[int, list[int]] = {}
        zeros_like = captured.zeros_like if captured.capturing(ws[0]) else xp.zeros_like
        for i, (w, state) in enumerate(zip(ws, states)):
            if not state:
                state["step"] = 0
                state["exp_avg"] = zeros_like(w)
                state["exp_avg_sq"] = zeros_like(w)
                if amsgrad:
                    state["max_exp_avg_sq"] = zeros_like(w)
            state["step"] += 1
            calls.setdefault(state["step"], []).append(i)
        if captured.capturing(ws[0]):  # inside a CUDA graph: lr and step count read on the device
            if len(calls) > 1:
                raise CaptureError("Adam: parameters at different step counts cannot be captured in one graph")
            return captured.adam_many(self, group, ws, gs, states, xp)
        for step, idx in calls.items():
            picked = [states[i] for i in idx]
            many([ws[i] for i in idx], [gs[i] for i in idx], [s["exp_avg"] for s in picked],
                 [s["exp_avg_sq"] for s in picked], [s.get("max_exp_avg_sq") for s in picked], step=step,
                 lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                 decoupled_weight_decay=group["decoupled_weight_decay"], maximize=group["maximize"], xp=xp)
        return None


class AdamW(Adam):
    r"""AdamW (``torch.optim.AdamW``): Adam with decoupled weight decay, default ``weight_decay=1e-2``.

    Each step first shrinks the weights, ``w = w * (1 - lr * weight_decay)``, then
    takes the Adam step on the raw gradient (see ``Adam``).

    Args:
        params: Tensors, ``(name, Tensor)`` pairs, or parameter-group dicts.
        lr: learning rate.
        betas: decay rates ``(beta1, beta2)``, each in [0, 1).
        eps: added to the denominator for numerical stability.
        weight_decay: decoupled weight decay factor.
        amsgrad: use the running maximum of the second moment (AMSGrad).
        maximize: ascend the objective instead of descending it.

    Raises:
        ValueError: a beta outside [0, 1) or a negative lr, eps or weight_decay.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)
