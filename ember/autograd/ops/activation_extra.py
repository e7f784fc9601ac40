"""PyTorch's pointwise activations beyond relu/sigmoid/tanh: gelu, silu, elu, softplus, hard* ...

Each is one ``Function``.  Masks (which branch of a piecewise rule applies) are
computed on the raw saved input, so they are constants; the smooth parts of
every backward are written against ``ctx.xp`` and therefore record a graph under
``create_graph=True`` (second order is exact).  At the kinks the subgradient is
PyTorch's (documented on each class).
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.math import Erf
from ember.autograd.ops.operands import require_floating
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_TANH_C = 0.044715
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(xp: Any, x: Any) -> Any:
    """``1 / (1 + exp(-x))`` as ``0.5 tanh(x/2) + 0.5``: no overflow, works on arrays and Tensors."""
    return xp.tanh(x * 0.5) * 0.5 + 0.5


def _raw_erf(backend: Any, x: Any) -> Any:
    """``erf`` on a backend array: SciPy/CuPy's special function when present, else ``math.erf``."""
    xp = backend.xp
    if xp is not numpy:
        from cupyx.scipy.special import erf  # CuPy ships its own special functions

        return erf(x)
    try:
        from scipy.special import erf
    except ImportError:  # NumPy has no erf: vectorise the exact scalar one (slower, same values)
        return numpy.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x.copy()
    return erf(x).astype(x.dtype, copy=False)


class GaussianErrorLinear(Function):
    """Exact: ``y = x Phi(x)``, ``gx = gy (Phi(x) + x phi(x))``; tanh: ``y = x/2 (1 + tanh(u))``,
    ``u = sqrt(2/pi)(x + 0.044715 x^3)``, ``gx = gy (0.5 (1 + t) + 0.5 x (1 - t^2) u')``."""

    @staticmethod
    def forward(ctx: Function, x: Any, approximate: str) -> Any:
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            return 0.5 * x * (1.0 + ctx.backend.xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_TANH_C * x**3)))
        return 0.5 * x * (1.0 + _raw_erf(ctx.backend, x * _INV_SQRT_2))

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (x,) = ctx.saved_tensors
        xp = ctx.xp
        if ctx.approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_TANH_C * x * x * x))
            du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_C * x * x)
            return gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
        if ctx._create_graph:
            cdf = 0.5 * (1.0 + Erf.apply(x * _INV_SQRT_2))
        else:
            cdf = 0.5 * (1.0 + _raw_erf(ctx.backend, x * _INV_SQRT_2))
        return gy * (cdf + x * _INV_SQRT_2PI * xp.exp(-0.5 * (x * x)))


class SigmoidWeightedLinear(Function):
    """``y = x sigmoid(x)``; ``gx = gy s (1 + x (1 - s))``."""

    @staticmethod
    def forward(ctx: Function, x: Any) -> Any:
        ctx.save_for_backward(x)
        return x * _sigmoid(ctx.backend.xp, x)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (x,) = ctx.saved_tensors
        s = _sigmoid(ctx.xp, x)
        return gy * (s * (1.0 + x * (1.0 - s)))


def _softplus_raw(xp: Any, z: Any) -> Any:
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


class MishActivation(Function):
    """``y = x tanh(softplus(x))``; ``gx = gy (t + x (1 - t^2) sigmoid(x))``."""

    @staticmethod
    def forward(ctx: Function, x: Any) -> Any:
        ctx.save_for_backward(x)
        return x * ctx.backend.xp.tanh(_softplus_raw(ctx.backend.xp, x))

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (x,) = ctx.saved_tensors
        (xr,) = ctx.saved_arrays
        xp = ctx.xp
        # softplus as log(1 + exp(x)), x clamped at 20 where softplus(x) == x to float64 precision
        xc = xp.where(xr > 20, 20.0, x)
        t = xp.tanh(xp.where(xr > 20, x, xp.log(1.0 + xp.exp(xc))))
        return gy * (t + x * (1.0 - t * t) * _sigmoid(xp, x))


class SoftplusActivation(Function):
    """``y = log(1 + exp(beta x)) / beta``, or ``x`` where ``beta x > threshold``;
    ``gx = gy sigmoid(beta x)`` (``gy`` past the threshold)."""

    @staticmethod
    def forward(ctx: Function, x: Any, beta: float, threshold: float) -> Any:
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        xp = ctx.backend.xp
        z = x * beta
        return xp.where(z > threshold, x, _softplus_raw(xp, z) / beta).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (x,) = ctx.saved_tensors
        (xr,) = ctx.saved_arrays
        linear = xr * ctx.beta > ctx.threshold
        return ctx.xp.where(linear, gy, gy * _sigmoid(ctx.xp, x * ctx.beta))


class LogLogistic(Function):
    """``y = -softplus(-x) = min(x, 0) - log1p(exp(-|x|))``; ``gx = gy sigmoid(-x)``."""

    @staticmethod
    def forward(ctx: Function, x: Any) -> Any:
        ctx.save_for_backward(x)
        xp = ctx.backend.xp
        return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (x,) = ctx.saved_tensors
        return gy * _sigmoid(ctx.xp, -x)


class ExponentialLinear(Function):
    """``y = scale * (x if x > 0 else alpha (exp(x) - 1))``; ``gx = gy scale (1 or alpha exp(x))``.

    ``scale = 1`` is ELU, SELU's constants give SELU.  At 0 the left branch is used, as PyTorch.
    """

    @staticmethod
    def forward(ctx: Function, x: Any, alpha: float, scale: float) -> Any:
        ctx.save_for_backward(x)
        ctx.alpha, ctx.scale = alpha, scale
        xp = ctx.backend.xp
        neg = alpha * xp.expm1(xp.minimum(x, 0))
        return (scale * xp.where(x > 0, x, neg)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (x,) = ctx.saved_tensors
        (xr,) = ctx.saved_arrays
        xp = ctx.xp
        pos = xr > 0
        slope = (ctx.alpha * ctx.scale) * xp.exp(xp.where(pos, 0.0, x))
        return xp.where(pos, gy * ctx.scale, gy * slope)


class LeakyRectifier(Function):
    """``y = x if x > 0 else slope x``; ``gx = gy`` or ``slope gy`` (the slope side at 0, as PyTorch)."""

    @staticmethod
    def forward(ctx: Function, x: Any, negative_slope: float) -> Any:
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        return ctx.backend.xp.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (xr,) = ctx.saved_arrays
        return ctx.xp.where(xr > 0, gy, gy * ctx.slope)


class HardHyperbolicTangent(Function):
    """``y = clip(x, lo, hi)``; ``gx = gy`` strictly inside ``(lo, hi)``, else 0 (PyTorch's rule)."""

    @staticmethod
    def forward(ctx: Function, x: Any, lo: float, hi: float) -> Any:
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return ctx.backend.xp.clip(x, lo, hi).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (xr,) = ctx.saved_arrays
        return ctx.xp.where((xr > ctx.lo) & (xr < ctx.hi), gy, 0.0)


class HardLogistic(Function):
    """``y = clip(x/6 + 1/2, 0, 1)``; ``gx = gy/6`` strictly inside ``(-3, 3)``, else 0."""

    @staticmethod
    def forward(ctx: Function, x: Any) -> Any:
        ctx.save_for_backward(x)
        return ctx.backend.xp.clip(x / 6.0 + 0.5, 0.0, 1.0).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (xr,) = ctx.saved_arrays
        return ctx.xp.where((xr > -3.0) & (xr < 3.0), gy / 6.0, 0.0)


class HardSwishActivation(Function):
    """``y = x relu6(x + 3) / 6``; ``gx = 0`` for ``x <= -3``, ``gy (x/3 + 1/2)`` on ``(-3, 3)``, else ``gy``."""

    @staticmethod
    def forward(ctx: Function, x: Any) -> Any:
        ctx.save_for_backward(x)
        return (x * ctx.backend.xp.clip(x + 3.0, 0.0, 6.0) / 6.0).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (x,) = ctx.saved_tensors
        (xr,) = ctx.saved_arrays
        xp = ctx.xp
        middle = xp.where(xr < 3.0, gy * (x / 3.0 + 0.5), gy)
        return xp.where(xr <= -3.0, 0.0, middle)


def _check(op: str, x: Any) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected x to be a Tensor, got {type(x).__name__}")
    require_floating(op, x)


def _samples(low: float = -2.5, high: float = 2.5, kinks: tuple = (0.0,)) -> Any:
    """Samples kept 0.05 away from the kinks (dodging non-differentiable points)."""

    def make(rng: Any) -> list:
        out = []
        for shape in ((3, 4), (2, 1, 3), ()):
            x = numpy.asarray(rng.uniform(low, high, shape))
            for k in kinks:
                x = numpy.where(numpy.abs(x - k) < 0.05, k + 0.1, x)
            out.append(sample(x))
        return out

    return make


def _gelu_samples(rng: Any) -> list:
    return [sample(rng.normal(size=(3, 4)) * 2), sample(rng.normal(size=(2, 3)) * 2, approximate="tanh")]


@register("gelu", samples=_gelu_samples)
def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU ``x Phi(x)`` (``approximate='none'``) or its tanh approximation (``'tanh'``); any shape."""
    _check("gelu", x)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: expected approximate 'none' or 'tanh', got {approximate!r}")
    return GaussianErrorLinear.apply(x, approximate=approximate)


@register("silu", samples=_samples())
def silu(x: Tensor) -> Tensor:
    """SiLU / swish ``x sigmoid(x)``; any shape, floating."""
    _check("silu", x)
    return SigmoidWeightedLinear.apply(x)


@register("mish", samples=_samples())
def mish(x: Tensor) -> Tensor:
    """Mish ``x tanh(softplus(x))``; any shape, floating."""
    _check("mish", x)
    return MishActivation.apply(x)


def _softplus_samples(rng: Any) -> list:
    x = rng.uniform(-3, 3, (3, 4))
    return [sample(x), sample(x, beta=2.0, threshold=3.0 + 0.5)]


@register("softplus", samples=_softplus_samples)
def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, linear (``x``) where ``beta x > threshold`` (PyTorch's rule)."""
    _check("softplus", x)
    if beta == 0:
        raise ValueError(f"softplus: expected a non-zero beta, got beta={beta}")
    return SoftplusActivation.apply(x, beta=float(beta), threshold=float(threshold))


@register("logsigmoid", samples=_samples())
def logsigmoid(x: Tensor) -> Tensor:
    """``log(sigmoid(x))``, finite for large negative ``x``; any shape."""
    _check("logsigmoid", x)
    return LogLogistic.apply(x)


@register("elu", samples=_samples())
def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """ELU: ``x`` for ``x > 0``, else ``alpha (exp(x) - 1)``."""
    _check("elu", x)
    return ExponentialLinear.apply(x, alpha=float(alpha), scale=1.0)


@register("selu", samples=_samples())
def selu(x: Tensor) -> Tensor:
    """SELU: ``scale * elu(x, alpha)`` with the self-normalising constants."""
    _check("selu", x)
    return ExponentialLinear.apply(x, alpha=_SELU_ALPHA, scale=_SELU_SCALE)


@register("leaky_relu", samples=_samples())
def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    _check("leaky_relu", x)
    return LeakyRectifier.apply(x, negative_slope=float(negative_slope))


@register("hardtanh", samples=_samples(kinks=(-1.0, 1.0)))
def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """``clip(x, min_val, max_val)`` with PyTorch's gradient (zero at and outside the limits)."""
    _check("hardtanh", x)
    if min_val > max_val:
        raise ValueError(f"hardtanh: expected min_val <= max_val, got min_val={min_val}, max_val={max_val}")
    return HardHyperbolicTangent.apply(x, lo=float(min_val), hi=float(max_val))


@register("relu6", samples=_samples(-2.0, 8.0, kinks=(0.0, 6.0)))
def relu6(x: Tensor) -> Tensor:
    """``min(max(x, 0), 6)`` (``hardtanh(x, 0, 6)``)."""
    _check("relu6", x)
    return HardHyperbolicTangent.apply(x, lo=0.0, hi=6.0)


@register("hardsigmoid", samples=_samples(-5.0, 5.0, kinks=(-3.0, 3.0)))
def hardsigmoid(x: Tensor) -> Tensor:
    """``clip(x/6 + 1/2, 0, 1)``."""
    _check("hardsigmoid", x)
    return HardLogistic.apply(x)


@register("hardswish", samples=_samples(-5.0, 5.0, kinks=(-3.0, 3.0)))
def hardswish(x: Tensor) -> Tensor:
    """``x * relu6(x + 3) / 6``."""
    _check("hardswish", x)
    return HardSwishActivation.apply(x)
