"""Stochastic gradient descent, with optional momentum, Nesterov momentum and L2 weight decay.

The book's ``SGD`` and ``Momentum`` classes (chapter 6) generalised to PyTorch's
formulation: the momentum buffer starts as the first gradient and accumulates
``(1 - dampening)``-scaled gradients after that.  The class holds the state; the
arithmetic is the backend's ``optim.sgd_update`` (readable in
``ember.backends.reference.optim``).
"""

from __future__ import annotations

from typing import Any

from ember.autograd.capture import CaptureError
from ember.backends.device import backend_of
from ember.optim import captured
from ember.optim._helpers import check_nonnegative
from ember.optim.optimizer import ARRAY, Optimizer, ParamsT


class SGD(Optimizer):
    r"""Stochastic gradient descent (``torch.optim.SGD``).

    With ``g = grad + weight_decay * w`` (negated first when ``maximize``)::

        b = g                                  on the first step
        b = momentum * b + (1 - dampening) * g  after that
        d = g + momentum * b  if nesterov  else  b   (d = g when momentum == 0)
        w = w - lr * d

    Args:
        params: Tensors, ``(name, Tensor)`` pairs, or parameter-group dicts.
        lr: learning rate.
        momentum: momentum factor (0 disables the buffer).
        dampening: dampening of the gradient added to the momentum buffer.
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        weight_decay: L2 penalty added to the gradient.
        maximize: ascend the objective instead of descending it.

    Raises:
        ValueError: a negative lr, momentum or weight_decay, or nesterov without
            momentum / with dampening.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 nesterov: bool = False, weight_decay: float = 0, *, maximize: bool = False):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                        "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "momentum", "weight_decay"):
            check_nonnegative(self._name, name, group[name])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{self._name}: nesterov=True requires momentum > 0 and dampening == 0, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _state_schema(self, group: dict[str, Any]) -> dict[str, str]:
        return {"momentum_buffer": ARRAY} if group["momentum"] != 0 else {}

    def _update(self, group: dict[str, Any], w: Any, g: Any, state: dict[str, Any], xp: Any) -> None:
        momentum = group["momentum"]
        buf = state.get("momentum_buffer") if momentum != 0 else None
        first = momentum != 0 and buf is None
        if first:
            buf = state["momentum_buffer"] = xp.empty_like(w)
        backend_of(w).optim.sgd_update(w, g, buf, lr=group["lr"], momentum=momentum, dampening=group["dampening"],
                                       weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                                       maximize=group["maximize"], first_step=first, xp=xp)

    def _update_many(self, group: dict[str, Any], ws: list, gs: list, states: list[dict], xp: Any) -> None:
        """The batch through the backend's ``sgd_update_many`` (one launch on CUDA), when it has one.

        Parameters whose momentum buffer is new go in a call of their own (``first_step``).
        """
        many = getattr(backend_of(ws[0]).optim, "sgd_update_many", None)
        if many is None:
            return super()._update_many(group, ws, gs, states, xp)
        momentum = group["momentum"]
        calls: dict[bool, list[int]] = {}
        for i, state in enumerate(states):
            first = momentum != 0 and state.get("momentum_buffer") is None
            if first:
                state["momentum_buffer"] = xp.empty_like(ws[i])
            calls.setdefault(first, []).append(i)
        if captured.capturing(ws[0]):  # inside a CUDA graph: lr read on the device
            if len(calls) > 1:
                raise CaptureError("SGD: parameters with and without momentum buffers cannot be captured in one "
                                   "graph; run one step eagerly before capturing")
            bufs = [s["momentum_buffer"] for s in states] if momentum != 0 else [None] * len(ws)
            return captured.sgd_many(self, group, ws, gs, bufs, True in calls, xp)
        for first, idx in calls.items():
            bufs = [states[i]["momentum_buffer"] if momentum != 0 else None for i in idx]
            many([ws[i] for i in idx], [gs[i] for i in idx], bufs, lr=group["lr"], momentum=momentum,
                 dampening=group["dampening"], weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                 maximize=group["maximize"], first_step=first, xp=xp)
        return None
