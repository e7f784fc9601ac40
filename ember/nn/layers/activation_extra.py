"""Layers for PyTorch's extra activations (``GELU``, ``SiLU``, ``ELU``, ``Hardswish`` ...).

Each holds its options and calls the op of ``ember.autograd.ops.activation_extra``.
They differ only in that op and its keyword options, so one base class does the
storing, calling and printing; a subclass names its op and options.
"""

from __future__ import annotations

from typing import Any, Callable

from ember.autograd.ops import activation_extra as act
from ember.autograd.tensor import Tensor
from ember.nn.module import Module


class _Activation(Module):
    """An elementwise activation: ``function(x, **options)``, the options kept as attributes.

    Each layer below is one ``_layer`` row naming its op and ``defaults``, the
    options in signature order with their default values; the constructor takes
    them positionally or by name, as PyTorch's layers do, and ``check`` vets them.
    """

    function: Callable[..., Tensor]
    defaults: dict[str, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        if len(args) > len(self.defaults):
            raise TypeError(f"{type(self).__name__}: expected at most {len(self.defaults)} positional "
                            f"arguments, got {len(args)}")
        options = dict(self.defaults)
        options.update(zip(self.defaults, args))
        for name, value in kwargs.items():
            if name not in self.defaults:
                raise TypeError(f"{type(self).__name__}: unexpected keyword argument {name!r}")
            options[name] = value
        self.check(**options)
        for name, value in options.items():
            setattr(self, name, value)

    @staticmethod
    def check(**options: Any) -> None:
        """Reject invalid options (none by default)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x, **{name: getattr(self, name) for name in self.defaults})

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self.defaults)


def _layer(name: str, function: Callable[..., Tensor], doc: str, check: Callable[..., None] | None = None,
           **defaults: Any) -> type:
    """A ``_Activation`` subclass named ``name`` calling ``function`` with the option ``defaults``."""
    body = {"__doc__": doc, "__module__": __name__, "__qualname__": name,
            "function": staticmethod(function), "defaults": defaults}
    if check is not None:
        body["check"] = staticmethod(check)
    return type(name, (_Activation,), body)


def _check_gelu(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"GELU: expected approximate 'none' or 'tanh', got {approximate!r}")


def _check_hardtanh(min_val: float, max_val: float) -> None:
    if min_val > max_val:
        raise ValueError(f"Hardtanh: expected min_val <= max_val, got min_val={min_val}, max_val={max_val}")


GELU = _layer("GELU", act.gelu, "``gelu(x, approximate)``: exact (``'none'``) or tanh approximation.",
              _check_gelu, approximate="none")
SiLU = _layer("SiLU", act.silu, "``x * sigmoid(x)``.")
Mish = _layer("Mish", act.mish, "``x * tanh(softplus(x))``.")
Softplus = _layer("Softplus", act.softplus, "``log(1 + exp(beta x)) / beta``, linear above ``threshold``.",
                  beta=1.0, threshold=20.0)
LogSigmoid = _layer("LogSigmoid", act.logsigmoid, "``log(sigmoid(x))``.")
ELU = _layer("ELU", act.elu, "``x`` for ``x > 0``, else ``alpha (exp(x) - 1)``.", alpha=1.0)
SELU = _layer("SELU", act.selu, "Self-normalising ELU.")
LeakyReLU = _layer("LeakyReLU", act.leaky_relu, "``x`` for ``x > 0``, else ``negative_slope * x``.",
                   negative_slope=0.01)
Hardtanh = _layer("Hardtanh", act.hardtanh, "``clip(x, min_val, max_val)``.", _check_hardtanh,
                  min_val=-1.0, max_val=1.0)
ReLU6 = _layer("ReLU6", act.relu6, "``min(max(x, 0), 6)``.")
Hardsigmoid = _layer("Hardsigmoid", act.hardsigmoid, "``clip(x/6 + 1/2, 0, 1)``.")
Hardswish = _layer("Hardswish", act.hardswish, "``x * relu6(x + 3) / 6``.")
