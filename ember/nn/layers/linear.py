"""``Linear`` (the book's Affine layer), ``Identity`` and ``Flatten``."""

from __future__ import annotations

import math
from typing import Any

from ember import dtypes
from ember.autograd.creation import empty
from ember.autograd.ops.nn_ops import linear
from ember.autograd.ops.shape import flatten
from ember.autograd.tensor import Tensor
from ember.errors import ShapeError
from ember.nn import init
from ember.nn.module import Module
from ember.nn.parameter import Parameter


def _positive_int(layer: str, name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: expected {name} to be a positive int, got {value!r}")
    return value


class Linear(Module):
    """``y = x @ W.T + b`` with ``weight: (out_features, in_features)`` and ``bias: (out_features,)``.

    Both start as PyTorch's default, ``U(-1/sqrt(in_features), 1/sqrt(in_features))``
    (``kaiming_uniform_(a=sqrt(5))``), drawn from ``ember.random.default_generator()``.

    Args:
        in_features: size of the input's last axis.
        out_features: size of the output's last axis.
        bias: learn an additive bias.
        dtype: parameter dtype (default: ``ember.get_default_dtype()``).
        device: parameter device (default cpu).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None,
                 device: Any = None):
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        dtype = dtypes.get_default_dtype() if dtype is None else dtype
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw weight and bias from ``U(-1/sqrt(in_features), 1/sqrt(in_features))``."""
        bound = 1.0 / math.sqrt(self.in_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (..., in_features)`` -> ``(..., out_features)``."""
        shape = tuple(getattr(x, "shape", ()))
        if not shape or shape[-1] != self.in_features:
            raise ShapeError(
                f"Linear(in_features={self.in_features}, out_features={self.out_features}): "
                f"expected input (..., {self.in_features}), got {shape}"
            )
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """Returns its input unchanged (a placeholder layer); accepts and ignores any arguments."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Flatten(Module):
    """Merge axes ``start_dim..end_dim`` into one; the default keeps the batch axis: ``(N, -1)``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
