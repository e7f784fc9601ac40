"""Activation layers: ``ReLU``, ``Sigmoid``, ``Tanh``, ``Softmax``, ``LogSoftmax``."""

from __future__ import annotations

from typing import Any, Callable

from ember.autograd.ops.activation import log_softmax, softmax
from ember.autograd.ops.elementwise import relu, sigmoid, tanh
from ember.autograd.tensor import Tensor
from ember.nn.module import Module


class ReLU(Module):
    """``max(x, 0)`` elementwise (subgradient 0 at 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid(x)


class Tanh(Module):
    """``tanh(x)`` elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)


def _axis(layer: str, axis: Any, dim: Any) -> int:
    """``axis`` with PyTorch's ``dim`` accepted as an alias (not both, unless they agree)."""
    if dim is not None:
        if axis is not None and axis != dim:
            raise TypeError(f"{layer}: got axis={axis} and dim={dim}; pass only one of them")
        axis = dim
    return -1 if axis is None else axis


class _AlongAxis(Module):
    """Base of the layers that apply ``function(x, axis)`` along one axis."""

    function: Callable[[Tensor, int], Tensor]

    def __init__(self, axis: int | None = None, dim: int | None = None):
        super().__init__()
        self.axis = _axis(type(self).__name__, axis, dim)

    def forward(self, x: Tensor) -> Tensor:
        return type(self).function(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Softmax(_AlongAxis):
    """Softmax along ``axis`` (default the last; ``dim=`` is accepted as in PyTorch)."""

    function = staticmethod(softmax)


class LogSoftmax(_AlongAxis):
    """``log(softmax(x))`` along ``axis``, computed stably (``dim=`` is an alias)."""

    function = staticmethod(log_softmax)
