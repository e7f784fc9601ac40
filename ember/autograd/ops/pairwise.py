"""Binary elementwise ops beyond arithmetic: maximum/minimum, lerp, remainder (%) and floor_divide (//).

Operands broadcast and follow ``binary_operands``' dtype policy; an integer
tensor meeting a Python float becomes the default float dtype (PyTorch's
rule, never float64).  ``%`` and ``//`` use floor rounding, so the remainder
takes the divisor's sign, as Python and PyTorch do.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember import dtypes
from ember.autograd.function import Function
from ember.autograd.ops.operands import binary_operands, broadcast_error
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import DTypeError


def float_aware_operands(op: str, a: Any, b: Any) -> tuple:
    """``binary_operands``, then an integer tensor next to a Python float becomes the default float dtype."""
    a, b = binary_operands(op, a, b)
    for this, other in ((a, b), (b, a)):
        if isinstance(this, Tensor) and this.data.dtype.kind in "iub" and isinstance(other, float):
            promoted = Tensor._make(this.data.astype(dtypes.get_default_dtype()))
            return (promoted, b) if this is a else (a, promoted)
    return a, b


def _apply(op: str, fn: type, a: Any, b: Any, **kwargs: Any) -> Tensor:
    try:
        return fn.apply(a, b, **kwargs)
    except ValueError as e:
        if "broadcast" in str(e):
            raise broadcast_error(op, a, b) from None
        raise


class _Extremum(Function):
    """Shared maximum/minimum: each operand gets ``gy`` unless it lost, half of it on a tie.

    An operand "loses" where it is strictly beyond the other on the wrong side, so
    at a NaN neither loses and both get ``gy`` (PyTorch's rule).
    """

    pick = "maximum"

    @classmethod
    def forward(cls, ctx: Function, a: Any, b: Any) -> Any:
        y = getattr(ctx.backend.xp, cls.pick)(a, b)
        if any(ctx.needs_input_grad):
            a_loses, b_loses = (a < b, a > b) if cls.pick == "maximum" else (a > b, a < b)
            half_tie = (a == b).astype(y.dtype) * 0.5
            ctx.save_for_backward(1 - a_loses.astype(y.dtype) - half_tie, 1 - b_loses.astype(y.dtype) - half_tie)
        return y

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        weight_a, weight_b = ctx.saved_arrays
        need_a, need_b = ctx.needs_input_grad
        return (gy * weight_a if need_a else None), (gy * weight_b if need_b else None)


class Maximum(_Extremum):
    """``y = max(a, b)`` elementwise (NaN propagates); ``ga = gy (1 - [a < b] - [a == b]/2)``."""

    pick = "maximum"


class Minimum(_Extremum):
    """``y = min(a, b)`` elementwise (NaN propagates); ``ga = gy (1 - [a > b] - [a == b]/2)``."""

    pick = "minimum"


def _tie_free_pairs(rng: Any) -> list:
    def pair(sa: tuple, sb: tuple) -> tuple:
        a, b = rng.uniform(-2, 2, sa), rng.uniform(-2, 2, sb)
        a = a + 0.2 * numpy.sign(a - b + 1e-12) * (numpy.abs(a - b) < 0.1)  # keep off the kink a == b
        return a, b

    return [
        sample(*pair((3, 4), (3, 4)), note="same shape"),
        sample(*pair((2, 3, 4), (4,)), note="broadcast"),
        sample(rng.uniform(-2, 2, (2, 3)) + 0.05, 0.0, note="python scalar"),
    ]


@register("maximum", methods=("maximum",), samples=_tie_free_pairs)
def maximum(input: Any, other: Any) -> Tensor:  # noqa: A002 - PyTorch's argument names
    """Elementwise maximum with broadcasting; ties split the gradient equally (as PyTorch)."""
    a, b = float_aware_operands("maximum", input, other)
    return _apply("maximum", Maximum, a, b)


@register("minimum", methods=("minimum",), samples=_tie_free_pairs)
def minimum(input: Any, other: Any) -> Tensor:  # noqa: A002 - PyTorch's argument names
    """Elementwise minimum with broadcasting; ties split the gradient equally (as PyTorch)."""
    a, b = float_aware_operands("minimum", input, other)
    return _apply("minimum", Minimum, a, b)


class Lerp(Function):
    """``y = start + weight (end - start)``; ``gstart = gy (1 - w)``, ``gend = gy w``, ``gw = gy (end - start)``."""

    @staticmethod
    def forward(ctx: Function, start: Any, end: Any, weight: Any) -> Any:
        ctx.save_for_backward(start, end, weight)
        return start + weight * (end - start)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        start, end, weight = ctx.saved_tensors
        need_s, need_e, need_w = ctx.needs_input_grad
        return (
            gy * (1 - weight) if need_s else None,
            gy * weight if need_e else None,
            gy * (end - start) if need_w else None,
        )


def _lerp_samples(rng: Any) -> list:
    u = rng.uniform
    return [
        sample(u(-2, 2, (3, 4)), u(-2, 2, (3, 4)), 0.3, note="scalar weight"),
        sample(u(-2, 2, (3, 4)), u(-2, 2, (4,)), u(0, 1, (3, 1)), note="tensor weight, broadcast"),
    ]


@register("lerp", methods=("lerp",), samples=_lerp_samples)
def lerp(input: Tensor, end: Any, weight: Any) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """Linear interpolation ``input + weight * (end - input)``; ``weight`` a float or a tensor."""
    if not isinstance(input, Tensor) or not isinstance(end, Tensor):
        raise TypeError(f"lerp: expected Tensors for input and end, got {type(input).__name__} and "
                        f"{type(end).__name__}")
    for name, t in (("input", input), ("end", end), ("weight", weight)):
        if isinstance(t, Tensor) and t.dtype.kind != "f":
            raise DTypeError(f"lerp: expected a floating {name}, got dtype {t.dtype}")
    start, end = binary_operands("lerp", input, end)
    if isinstance(weight, Tensor):
        start, weight = binary_operands("lerp", start, weight)
    elif not isinstance(weight, (int, float, numpy.number)) or isinstance(weight, bool):
        raise TypeError(f"lerp: expected a float or a Tensor as weight, got {type(weight).__name__}")
    else:
        weight = float(weight)
    try:
        numpy.broadcast_shapes(*(tuple(t.shape) for t in (start, end, weight) if isinstance(t, Tensor)))
    except ValueError:
        raise broadcast_error("lerp", *(t for t in (start, end, weight) if isinstance(t, Tensor))) from None
    return Lerp.apply(start, end, weight)


def _check_integer_divisor(op: str, a: Any, b: Any) -> None:
    """Integer division by zero raises, as in PyTorch (NumPy would return 0 with a warning)."""
    ints = all((isinstance(v, Tensor) and v.data.dtype.kind in "iub") or isinstance(v, int) for v in (a, b))
    if not ints:
        return
    zero = (b.data == 0).any() if isinstance(b, Tensor) else b == 0
    if bool(zero):
        raise ZeroDivisionRuntimeError(f"{op}: integer division by zero (divisor shape "
                                       f"{tuple(b.shape) if isinstance(b, Tensor) else ()})")


class ZeroDivisionRuntimeError(RuntimeError, ZeroDivisionError):
    """Integer ``%`` or ``//`` by zero: a RuntimeError as in PyTorch, and a ZeroDivisionError as in Python."""


class Remainder(Function):
    """``y = a - floor(a / b) b`` (the divisor's sign); ``ga = gy``, ``gb = -gy floor(a / b)``."""

    @staticmethod
    def forward(ctx: Function, a: Any, b: Any) -> Any:
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(ctx.backend.xp.floor_divide(a, b))
        return ctx.backend.xp.remainder(a, b)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        need_a, need_b = ctx.needs_input_grad
        gb = None
        if need_b:
            (quotient,) = ctx.saved_arrays  # piecewise constant: a constant even under create_graph
            gb = -gy * quotient
        return (gy if need_a else None), gb


class FloorDivide(Function):
    """``y = floor(a / b)``; piecewise constant, so ``ga = gb = 0`` (PyTorch refuses its backward)."""

    @staticmethod
    def forward(ctx: Function, a: Any, b: Any) -> Any:
        return ctx.backend.xp.floor_divide(a, b)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        zero = ctx.xp.zeros_like(gy)
        return tuple(zero if need else None for need in ctx.needs_input_grad)


def _division_samples(rng: Any) -> list:
    def away(a: numpy.ndarray, b: numpy.ndarray) -> numpy.ndarray:
        # keep a / b at least 0.1 from an integer, where floor(a / b) jumps
        q = a / b
        return numpy.where(numpy.abs(q - numpy.round(q)) < 0.1, a + 0.25 * b, a)

    a, b = rng.uniform(-5, 5, (3, 4)), rng.uniform(0.5, 2, (3, 4)) * rng.choice([-1, 1], (3, 4))
    c = rng.uniform(-5, 5, (2, 3))
    return [sample(away(a, b), b, note="mixed signs"), sample(away(c, 1.5), 1.5, note="python scalar divisor")]


@register("remainder", methods=("remainder", "__mod__"), reflected=("__rmod__",), samples=_division_samples)
def remainder(input: Any, other: Any) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """``input % other`` with floor rounding: the result has the divisor's sign (Python's and PyTorch's rule)."""
    a, b = float_aware_operands("remainder", input, other)
    _check_integer_divisor("remainder", a, b)
    return _apply("remainder", Remainder, a, b)


@register("floor_divide", methods=("floor_divide", "__floordiv__"), reflected=("__rfloordiv__",),
          samples=_division_samples)
def floor_divide(input: Any, other: Any) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """``input // other``: ``floor(input / other)`` elementwise (zero gradient)."""
    a, b = float_aware_operands("floor_divide", input, other)
    _check_integer_divisor("floor_divide", a, b)
    return _apply("floor_divide", FloorDivide, a, b)
