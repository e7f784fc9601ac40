"""Loss layers: ``CrossEntropyLoss`` (softmax + cross-entropy fused) and ``MSELoss``."""

from __future__ import annotations

from typing import Any, Callable

from ember.autograd.ops.loss import check_reduction, cross_entropy, mse_loss
from ember.autograd.tensor import Tensor
from ember.nn.module import Module


class _Loss(Module):
    """Base of the loss layers: ``function(input, target, reduction=...)`` with a checked ``reduction``."""

    function: Callable[..., Tensor]

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return type(self).function(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """``cross_entropy(logits, target, reduction)``: target class indices or probabilities.

    Takes raw logits (no softmax layer before it): the book's Softmax-with-Loss.
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        if isinstance(weight, str):  # ember's earlier signature took reduction first
            weight, reduction = None, weight
        super().__init__(reduction)
        self.weight, self.ignore_index, self.label_smoothing = weight, ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return cross_entropy(input, target, self.weight, self.ignore_index, reduction=self.reduction,
                             label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        extra = f", label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
        return f"reduction={self.reduction!r}{extra}"


class MSELoss(_Loss):
    """``mse_loss(input, target, reduction)``; the shapes must match exactly."""

    function = staticmethod(mse_loss)
