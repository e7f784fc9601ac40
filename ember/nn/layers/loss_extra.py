"""Loss layers for PyTorch's ``NLLLoss``, ``BCELoss`` and ``BCEWithLogitsLoss``."""

from __future__ import annotations

from typing import Any

from ember.autograd.ops.loss import check_reduction, nll_loss
from ember.autograd.ops.loss_extra import binary_cross_entropy, binary_cross_entropy_with_logits
from ember.autograd.tensor import Tensor
from ember.nn.module import Module


class NLLLoss(Module):
    """``nll_loss(log_probs, target, weight, ignore_index, reduction)``; pair with ``LogSoftmax``."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        check_reduction("NLLLoss", reduction)
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return nll_loss(input, target, self.weight, self.ignore_index, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class BCELoss(Module):
    """``binary_cross_entropy(probabilities, target, weight, reduction)``."""

    def __init__(self, weight: Any = None, reduction: str = "mean"):
        super().__init__()
        check_reduction("BCELoss", reduction)
        self.weight, self.reduction = weight, reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class BCEWithLogitsLoss(Module):
    """``binary_cross_entropy_with_logits(logits, target, weight, reduction, pos_weight)``."""

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None):
        super().__init__()
        check_reduction("BCEWithLogitsLoss", reduction)
        self.weight, self.reduction, self.pos_weight = weight, reduction, pos_weight

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                pos_weight=self.pos_weight)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
