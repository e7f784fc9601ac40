"""Elementwise math beyond the book's nodes: trigonometry, erf, base-2/10 logs, rsqrt, rounding.

Integer and bool inputs of the smooth functions become the default float
dtype first, as in PyTorch.  Rounding and ``sign`` are piecewise constant:
their gradient is zero (PyTorch's rule), and on integer inputs they return
the values unchanged.  Backward rules use ``ctx.xp`` and operators only,
except ``sin``/``cos``, whose derivative is the other one: under
``create_graph`` they call the ember op instead of the array function.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from ember import dtypes
from ember.autograd.function import Function
from ember.autograd.ops.unary_rule import unary_function
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def as_float_tensor(op: str, x: Any) -> Tensor:
    """``x`` itself when floating; integer/bool tensors cast to the default float dtype (PyTorch)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.data.dtype.kind == "f":
        return x
    return Tensor._make(x.data.astype(dtypes.get_default_dtype()))


def _array_or_op(ctx: Function, name: str) -> Any:
    """The array function ``name`` normally; the ember op of that name under ``create_graph``."""
    if ctx._create_graph:
        return globals()[name]
    return getattr(ctx.backend.xp, name)


def _erf_array(xp: Any, x: Any) -> Any:
    if xp is numpy:
        from scipy.special import erf as erf_fn  # scipy comes with scikit-learn, a dependency
    else:
        from cupyx.scipy.special import erf as erf_fn
    return erf_fn(x).astype(x.dtype, copy=False)


def _rule(name: str, doc: str, value: Any, grad: Any, saves: str = "input") -> type:
    return unary_function(name, doc, value, grad, saves=saves, module=__name__)


Sin = _rule("Sin", "``y = sin(x)``; ``gx = gy * cos(x)``.",
            lambda ctx, x: ctx.backend.xp.sin(x), lambda ctx, x, gy: gy * _array_or_op(ctx, "cos")(x))
Cos = _rule("Cos", "``y = cos(x)``; ``gx = -gy * sin(x)``.",
            lambda ctx, x: ctx.backend.xp.cos(x), lambda ctx, x, gy: -gy * _array_or_op(ctx, "sin")(x))
Erf = _rule("Erf", "``y = erf(x)``; ``gx = gy * 2/sqrt(pi) * exp(-x**2)``.",
            lambda ctx, x: _erf_array(ctx.backend.xp, x),
            lambda ctx, x, gy: gy * _TWO_OVER_SQRT_PI * ctx.xp.exp(-(x * x)))
Log2 = _rule("Log2", "``y = log2(x)``; ``gx = gy / (x ln 2)``.",
             lambda ctx, x: ctx.backend.xp.log2(x), lambda ctx, x, gy: gy / (x * _LN2))
Log10 = _rule("Log10", "``y = log10(x)``; ``gx = gy / (x ln 10)``.",
              lambda ctx, x: ctx.backend.xp.log10(x), lambda ctx, x, gy: gy / (x * _LN10))
Exp2 = _rule("Exp2", "``y = 2**x``; ``gx = gy * y ln 2``.",
             lambda ctx, x: ctx.backend.xp.exp2(x), lambda ctx, y, gy: gy * y * _LN2, saves="output")
Rsqrt = _rule("Rsqrt", "``y = 1 / sqrt(x)``; ``gx = -gy * y**3 / 2``.",
              lambda ctx, x: 1 / ctx.backend.xp.sqrt(x), lambda ctx, y, gy: gy * (y * y * y) * -0.5,
              saves="output")


def _samples(low: float, high: float) -> Any:
    def make(rng: Any) -> list:
        return [
            sample(rng.uniform(low, high, (3, 4))),
            sample(numpy.asarray(rng.uniform(low, high))),
            sample(rng.uniform(low, high, (2, 1, 3))),
        ]

    return make


def _smooth(name: str, fn: type, low: float, high: float, doc: str) -> Any:
    def op(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's argument name
        return fn.apply(as_float_tensor(name, input))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return register(name, methods=(name,), samples=_samples(low, high))(op)


sin = _smooth("sin", Sin, -3.0, 3.0, "Elementwise sine, ``x: (*)`` floating (ints become float32).")
cos = _smooth("cos", Cos, -3.0, 3.0, "Elementwise cosine, ``x: (*)`` floating (ints become float32).")
erf = _smooth("erf", Erf, -2.0, 2.0, "Gauss error function ``2/sqrt(pi) int_0^x exp(-t**2) dt``.")
log2 = _smooth("log2", Log2, 0.2, 3.0, "Base-2 logarithm (x > 0 for a finite value).")
log10 = _smooth("log10", Log10, 0.2, 3.0, "Base-10 logarithm (x > 0 for a finite value).")
exp2 = _smooth("exp2", Exp2, -2.0, 2.0, "Elementwise ``2**x``.")
rsqrt = _smooth("rsqrt", Rsqrt, 0.2, 3.0, "Elementwise ``1/sqrt(x)`` (x > 0 for a finite value).")


class _PiecewiseConstant(Function):
    """A step function of ``x``: zero gradient everywhere (PyTorch's rule at the jumps too).

    Subclasses name the array function (``array_function``) that computes ``y``.
    """

    array_function: str

    @staticmethod
    def forward(ctx: Function, x: Any, **options: Any) -> Any:
        return getattr(ctx.backend.xp, ctx.array_function)(x, **options)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return ctx.xp.zeros_like(gy)


def _piecewise_constant(name: str, array_function: str, doc: str) -> type:
    body = {"__doc__": doc, "__module__": __name__, "__qualname__": name, "array_function": array_function}
    return type(name, (_PiecewiseConstant,), body)


Sign = _piecewise_constant("Sign", "sign", "``y = sign(x)`` in {-1, 0, 1} (NaN stays NaN); ``gx = 0``.")
Floor = _piecewise_constant("Floor", "floor", "``y = floor(x)``; ``gx = 0``.")
Ceil = _piecewise_constant("Ceil", "ceil", "``y = ceil(x)``; ``gx = 0``.")
Trunc = _piecewise_constant("Trunc", "trunc", "``y = trunc(x)`` (towards zero); ``gx = 0``.")
Round = _piecewise_constant("Round", "round", "``y = round(x, decimals)``, halves to even as PyTorch; ``gx = 0``.")


def _step_samples(rng: Any) -> list:
    # Values at least 0.1 from every integer (and from 0 for sign), where the step functions are flat.
    def away(shape: tuple) -> numpy.ndarray:
        return numpy.floor(rng.uniform(-3, 3, shape)) + rng.uniform(0.1, 0.4, shape)

    return [sample(away((3, 4))), sample(numpy.asarray(away(()))), sample(away((2, 1, 3)))]


def _check_tensor(op: str, x: Any) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")


def _step(name: str, fn: type, doc: str) -> Any:
    def op(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's argument name
        _check_tensor(name, input)
        if input.data.dtype.kind != "f":  # already integral: PyTorch returns the values unchanged
            return Tensor._make(input.data.copy())
        return fn.apply(input)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return register(name, methods=(name,), samples=_step_samples)(op)


floor = _step("floor", Floor, "Largest integer <= x, elementwise (zero gradient; ints unchanged).")
ceil = _step("ceil", Ceil, "Smallest integer >= x, elementwise (zero gradient; ints unchanged).")
trunc = _step("trunc", Trunc, "``x`` rounded towards zero, elementwise (zero gradient; ints unchanged).")
fix = trunc


@register("round", methods=("round",), samples=lambda rng: _step_samples(rng) + [
    sample(numpy.round(rng.uniform(-3, 3, (3, 4)), 2) + 0.003, decimals=2, note="decimals=2")])
def round(input: Tensor, *, decimals: int = 0) -> Tensor:  # noqa: A001, A002 - PyTorch's names
    """Round to ``decimals`` places, halves to even (zero gradient; ints unchanged when decimals >= 0)."""
    _check_tensor("round", input)
    if not isinstance(decimals, (int, numpy.integer)) or isinstance(decimals, bool):
        raise TypeError(f"round: expected an int for decimals, got {decimals!r}")
    if input.data.dtype.kind != "f":
        if decimals >= 0:
            return Tensor._make(input.data.copy())
        return Tensor._make(input.data.round(int(decimals)))
    return Round.apply(input, decimals=int(decimals))


@register("sign", methods=("sign",), samples=_step_samples)
def sign(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """-1, 0 or 1 by the sign of each element (zero gradient); bool tensors are returned as they are."""
    _check_tensor("sign", input)
    if input.data.dtype.kind == "b":
        return Tensor._make(input.data.copy())
    return Sign.apply(input)  # integer tensors give integer signs, with no graph
