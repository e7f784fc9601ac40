"""Parameter initialisation, in place, with PyTorch's formulas and names.

Every function draws on the host from ``ember.random.default_generator()``
(so ``manual_seed`` makes models reproducible on any device), writes the
values into the tensor's storage without recording a graph, bumps its
version counter, and returns the tensor.  He (``kaiming_*``) initialisation
is the book's recommendation for ReLU networks, Xavier for sigmoid/tanh.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy

from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of
from ember.errors import DTypeError, ShapeError
from ember.generator import default_generator

_LINEAR_GAIN = (
    "linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "sigmoid",
)


def _fill(op: str, t: Tensor, host: Any) -> Tensor:
    """Write host values into ``t`` in place (no graph, even for parameters) and bump its version."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(t).__name__}")
    host = numpy.asarray(host)
    if host.shape != tuple(t.shape):
        host = numpy.broadcast_to(host, tuple(t.shape))
    t.data[...] = backend_of(t.data).asarray(host.astype(t.dtype, copy=False))
    t._bump_version()
    return t


def _require_floating(op: str, t: Tensor) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(t).__name__}")
    if t.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating tensor, got dtype {t.dtype}")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    Args:
        nonlinearity: ``"linear"``, ``"conv2d"``, ``"sigmoid"`` (1), ``"tanh"`` (5/3),
            ``"relu"`` (sqrt 2), ``"leaky_relu"`` (sqrt(2 / (1 + slope^2))), ``"selu"`` (3/4).
        param: the negative slope of ``leaky_relu`` (default 0.01).

    Returns:
        The gain as a float.

    Raises:
        ValueError: an unknown nonlinearity or a non-numeric slope.
    """
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: expected a numeric negative slope, got {param!r}")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(t: Any) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight: ``(in, out)`` times the receptive field for conv weights.

    A Linear weight ``(out, in)`` gives ``(in, out)``; a conv weight
    ``(out, in, kh, kw)`` gives ``(in*kh*kw, out*kh*kw)``.

    Raises:
        ShapeError: fewer than 2 dimensions.
    """
    shape = tuple(t.shape)
    if len(shape) < 2:
        raise ShapeError(
            f"_calculate_fan_in_and_fan_out: expected a tensor of at least 2 dimensions, got shape {shape}"
        )
    receptive = int(numpy.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(t: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: expected mode 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill ``t`` with samples of U(a, b)."""
    _require_floating("uniform_", t)
    if a > b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    return _fill("uniform_", t, default_generator().uniform(a, b, tuple(t.shape)))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill ``t`` with samples of N(mean, std^2)."""
    _require_floating("normal_", t)
    if std < 0:
        raise ValueError(f"normal_: expected std >= 0, got {std}")
    return _fill("normal_", t, default_generator().normal(mean, std, tuple(t.shape)))


def constant_(t: Tensor, val: float) -> Tensor:
    """Fill ``t`` with ``val``."""
    return _fill("constant_", t, val)


def zeros_(t: Tensor) -> Tensor:
    """Fill ``t`` with zeros."""
    return _fill("zeros_", t, 0)


def ones_(t: Tensor) -> Tensor:
    """Fill ``t`` with ones."""
    return _fill("ones_", t, 1)


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot uniform: U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    _require_floating("xavier_uniform_", t)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    a = gain * math.sqrt(6.0 / max(fan_in + fan_out, 1))
    return _fill("xavier_uniform_", t, default_generator().uniform(-a, a, tuple(t.shape)))


def xavier_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot normal: N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    _require_floating("xavier_normal_", t)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    std = gain * math.sqrt(2.0 / max(fan_in + fan_out, 1))
    return _fill("xavier_normal_", t, default_generator().normal(0.0, std, tuple(t.shape)))


def kaiming_uniform_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He uniform: U(-bound, bound) with ``bound = gain * sqrt(3 / fan)``.

    ``gain = calculate_gain(nonlinearity, a)``; PyTorch's defaults (leaky_relu
    with slope ``a=0``) give ReLU's ``sqrt 2``.
    """
    _require_floating("kaiming_uniform_", t)
    fan = _fan(t, mode)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / max(fan, 1))
    return _fill("kaiming_uniform_", t, default_generator().uniform(-bound, bound, tuple(t.shape)))


def kaiming_normal_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He normal: N(0, std^2) with ``std = gain / sqrt(fan)`` (the book's ``sqrt(2 / n)`` for ReLU).

    The defaults (leaky_relu with slope ``a=0``, PyTorch's) give ReLU's gain ``sqrt 2``.
    """
    _require_floating("kaiming_normal_", t)
    fan = _fan(t, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(max(fan, 1))
    return _fill("kaiming_normal_", t, default_generator().normal(0.0, std, tuple(t.shape)))
