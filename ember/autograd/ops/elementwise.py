"""Elementwise ops: arithmetic (the book's add/mul nodes, generalised), math and activations.

Backward rules are written once against ``ctx.xp`` and operators, so they run
on arrays normally and on Tensors under ``create_graph`` (higher order).
Broadcast operands get broadcast-shaped gradients; the engine sums them back.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.operands import binary_operands, broadcast_error, require_floating, to_default_float
from ember.autograd.ops.unary_rule import unary_function
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import DTypeError


def _pair(rng: Any, shape_a: tuple, shape_b: tuple, low: float = -2.0, high: float = 2.0) -> tuple:
    return numpy.asarray(rng.uniform(low, high, shape_a)), numpy.asarray(rng.uniform(low, high, shape_b))


def _binary_samples(low: float = -2.0, high: float = 2.0) -> Any:
    def make(rng: Any) -> list:
        return [
            sample(*_pair(rng, (3, 4), (3, 4), low, high), note="same shape"),
            sample(*_pair(rng, (2, 3, 4), (4,), low, high), note="broadcast trailing"),
            sample(*_pair(rng, (3, 1), (1, 4), low, high), note="broadcast both"),
            sample(*_pair(rng, (), (2, 3), low, high), note="0-d with matrix"),
            sample(rng.uniform(low, high, (2, 3)), 1.5, note="python scalar right"),
            sample(0.75, rng.uniform(low, high, (2, 3)), note="python scalar left"),
        ]

    return make


def _binary(op: str, fn: type, a: Any, b: Any) -> Tensor:
    # Fast path for the most common call, `float_tensor <op> python_number`: binary_operands
    # would return both unchanged, so skip it (per-op overhead, benchmarks/dispatch.py).
    tb = type(b)
    if (tb is float or tb is int) and isinstance(a, Tensor) and a.data.dtype.kind == "f":
        return fn.apply(a, b)
    a, b = binary_operands(op, a, b, true_divide=fn is Div)
    try:
        return fn.apply(a, b)
    except ValueError as e:
        if "broadcast" in str(e):
            raise broadcast_error(op, a, b) from None
        raise


class Add(Function):
    """``y = a + b``; ``ga = gy``, ``gb = gy`` (the book's addition node)."""

    @staticmethod
    def forward(ctx: Function, a: Any, b: Any) -> Any:
        return a + b

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        return gy, gy


class Sub(Function):
    """``y = a - b``; ``ga = gy``, ``gb = -gy``."""

    @staticmethod
    def forward(ctx: Function, a: Any, b: Any) -> Any:
        return a - b

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        return gy, -gy


class Mul(Function):
    """``y = a * b``; ``ga = gy * b``, ``gb = gy * a`` (the book's multiplication node)."""

    @staticmethod
    def forward(ctx: Function, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (gy * b if need_a else None), (gy * a if need_b else None)


class Div(Function):
    """``y = a / b``; ``ga = gy / b``, ``gb = -gy * a / b**2``."""

    @staticmethod
    def forward(ctx: Function, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        a, b = ctx.saved_tensors
        ga = gy / b
        gb = -ga * a / b if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """``y = a ** b``; ``ga = gy * b * a**(b-1)``, ``gb = gy * y * log(a)``.

    As PyTorch: ``ga = 0`` where ``b == 0`` (``a**0`` is constant even at ``a = 0`` or ``inf``),
    and ``gb = 0`` where ``a == 0`` and ``b >= 0`` (``0**b`` is constant there).
    """

    @staticmethod
    def forward(ctx: Function, a: Any, b: Any) -> Any:
        y = a ** b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        a, b, y = ctx.saved_tensors
        xp = ctx.xp
        ga = gb = None
        with numpy.errstate(divide="ignore", invalid="ignore"):  # the masked-out 0**-1, log(0)
            if ctx.needs_input_grad[0]:
                if isinstance(b, (int, float)):
                    ga = xp.zeros_like(gy) if b == 0 else gy * b * a ** (b - 1)
                else:
                    ga = xp.where(b == 0, 0, gy * b * a ** (b - 1))
            if ctx.needs_input_grad[1]:
                if isinstance(a, (int, float)):
                    gb = gy * y * _scalar_log(a)
                    gb = xp.where(b >= 0, 0, gb) if a == 0 else gb
                else:
                    gb = gy * y * xp.log(a)
                    gb = xp.where(b >= 0, xp.where(a == 0, 0, gb), gb)
        return ga, gb


def _scalar_log(a: float) -> float:
    """``log(a)`` of a Python-number base as NumPy would give it: -inf at 0, NaN below (not math's error)."""
    return math.log(a) if a > 0 else (-math.inf if a == 0 else math.nan)


@register("add", methods=("add", "__add__"), reflected=("__radd__",), samples=_binary_samples())
def add(a: Any, b: Any) -> Tensor:
    """Elementwise ``a + b`` with NumPy broadcasting."""
    return _binary("add", Add, a, b)


@register("sub", methods=("sub", "__sub__"), reflected=("__rsub__",), samples=_binary_samples())
def sub(a: Any, b: Any) -> Tensor:
    """Elementwise ``a - b`` with NumPy broadcasting."""
    return _binary("sub", Sub, a, b)


@register("mul", methods=("mul", "__mul__"), reflected=("__rmul__",), samples=_binary_samples())
def mul(a: Any, b: Any) -> Tensor:
    """Elementwise ``a * b`` with NumPy broadcasting."""
    return _binary("mul", Mul, a, b)


@register("div", methods=("div", "__truediv__"), reflected=("__rtruediv__",), samples=_binary_samples(0.5, 2.0))
def div(a: Any, b: Any) -> Tensor:
    """Elementwise ``a / b`` with NumPy broadcasting."""
    return _binary("div", Div, a, b)


@register("pow", methods=("pow", "__pow__"), reflected=("__rpow__",), samples=_binary_samples(0.5, 2.0))
def pow(a: Any, b: Any) -> Tensor:  # noqa: A001 - PyTorch's name
    """Elementwise ``a ** b``; the exponent may be a Tensor or a Python number."""
    try:
        return _binary("pow", Pow, a, b)
    except ValueError as e:  # NumPy's "Integers to negative integer powers are not allowed."
        if str(e).startswith("pow:"):
            raise
        raise ValueError(f"pow: {e} (integer base); convert the base with .float() first") from None


class _Unary(Function):
    """Base for one-input elementwise ops that need nothing but ``forward``/``backward``."""


def _unary_samples(low: float = -2.0, high: float = 2.0, avoid_zero: bool = False) -> Any:
    def make(rng: Any) -> list:
        cases = [rng.uniform(low, high, (3, 4)), numpy.asarray(rng.uniform(low, high)), rng.uniform(low, high, (2, 1, 3))]
        if avoid_zero:  # keep away from the kink at 0 (dodge non-differentiable points)
            cases = [numpy.asarray(c + 0.2 * (c >= 0) - 0.2 * (c < 0)) for c in cases]
        return [sample(c) for c in cases]

    return make


class Neg(_Unary):
    """``y = -x``; ``gx = -gy``."""

    @staticmethod
    def forward(ctx: Function, x: Any) -> Any:
        return -x

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return -gy


def _rule(name: str, doc: str, value: Any, grad: Any, saves: str) -> type:
    return unary_function(name, doc, value, grad, saves=saves, module=__name__, base=_Unary)


def _tanh_grad(ctx: Function, y: Any, gy: Any) -> Any:
    if ctx.create_graph:
        return gy * (1 - y * y)
    return ctx.backend.nn.tanh_backward(y, gy, xp=ctx.backend.xp)


def _sigmoid_grad(ctx: Function, y: Any, gy: Any) -> Any:
    if ctx.create_graph:
        return gy * y * (1 - y)
    return ctx.backend.nn.sigmoid_backward(y, gy, xp=ctx.backend.xp)


Exp = _rule("Exp", "``y = exp(x)``; ``gx = gy * y``.",
            lambda ctx, x: ctx.xp.exp(x), lambda ctx, y, gy: gy * y, saves="output")
Log = _rule("Log", "``y = log(x)``; ``gx = gy / x``.",
            lambda ctx, x: ctx.xp.log(x), lambda ctx, x, gy: gy / x, saves="input")
Sqrt = _rule("Sqrt", "``y = sqrt(x)``; ``gx = gy / (2 y)``.",
             lambda ctx, x: ctx.xp.sqrt(x), lambda ctx, y, gy: gy * 0.5 / y, saves="output")
HyperbolicTangent = _rule("HyperbolicTangent", "``y = tanh(x)``; ``gx = gy * (1 - y**2)``.",
                          lambda ctx, x: ctx.xp.tanh(x), _tanh_grad, saves="output")
Logistic = _rule(
    "Logistic",
    "``y = 1 / (1 + exp(-x))``, computed as ``0.5 tanh(x/2) + 0.5`` (no overflow); ``gx = gy y (1-y)``.",
    lambda ctx, x: ctx.xp.tanh(x * 0.5) * 0.5 + 0.5, _sigmoid_grad, saves="output")


class Rectifier(_Unary):
    """``y = max(x, 0)``; ``gx = gy * (x > 0)``: the subgradient at 0 is 0, as in PyTorch."""

    @staticmethod
    def forward(ctx: Function, x: Any) -> Any:
        y = ctx.backend.nn.relu_forward(x, xp=ctx.backend.xp)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (y,) = ctx.saved_arrays
        if ctx.create_graph:
            return ctx.xp.where(y > 0, gy, 0)
        return ctx.backend.nn.relu_backward(y, gy, xp=ctx.backend.xp)


Abs = _rule("Abs", "``y = |x|``; ``gx = gy * sign(x)`` (subgradient 0 at 0).",
            lambda ctx, x: ctx.xp.abs(x), lambda ctx, x, gy: gy * ctx.xp.sign(x), saves="input")


class Clip(_Unary):
    """``y = min(max(x, lo), hi)``; ``gx = gy`` where ``lo <= x <= hi`` else 0 (PyTorch's clamp rule)."""

    @staticmethod
    def forward(ctx: Function, x: Any, lo: Any = None, hi: Any = None) -> Any:
        xp = ctx.backend.xp
        inside = xp.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        ctx.save_for_backward(inside)
        return xp.clip(x, lo, hi)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (inside,) = ctx.saved_arrays
        return ctx.xp.where(inside, gy, 0)


def _unary(name: str, fn: type, samples: Any, doc: str, methods: tuple = (), keeps_ints: bool = False) -> Any:
    """The functional wrapper of a unary op.

    Integer input keeps its dtype (``keeps_ints``: neg, abs, relu) or is computed in
    the default float dtype, as PyTorch does.
    """

    def op(x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
        if x.data.dtype.kind != "f":
            if not keeps_ints:
                x = to_default_float(x)
            elif x.data.dtype.kind == "b":
                raise DTypeError(f"{name}: expected a numeric tensor, got dtype bool; convert with .int() or .float()")
            else:  # an integer result carries no gradient; the plain array op is enough
                out = _INT_FORMS[name](x.data)
                return Tensor._make(numpy.asarray(out) if isinstance(out, numpy.generic) else out)
        return fn.apply(x)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return register(name, methods=(name,) + methods, samples=samples)(op)


_INT_FORMS = {"neg": lambda a: -a, "abs": lambda a: a.__abs__(), "relu": lambda a: a * (a > 0)}
neg = _unary("neg", Neg, _unary_samples(), "Elementwise ``-x``.", ("__neg__", "negative"), keeps_ints=True)
exp = _unary("exp", Exp, _unary_samples(), "Elementwise ``e**x``.")
log = _unary("log", Log, _unary_samples(0.2, 3.0), "Natural logarithm (x > 0).")
sqrt = _unary("sqrt", Sqrt, _unary_samples(0.2, 3.0), "Square root (x > 0 for a finite gradient).")
tanh = _unary("tanh", HyperbolicTangent, _unary_samples(), "Hyperbolic tangent.")
sigmoid = _unary("sigmoid", Logistic, _unary_samples(-4, 4), "Logistic sigmoid ``1/(1+e^-x)``.")
relu = _unary("relu", Rectifier, _unary_samples(avoid_zero=True), "``max(x, 0)``.", keeps_ints=True)
abs = _unary(  # noqa: A001
    "abs", Abs, _unary_samples(avoid_zero=True), "Absolute value.", ("__abs__",), keeps_ints=True)


def _clip_samples(rng: Any) -> list:
    x = rng.uniform(-2, 2, (4, 5))
    x[(numpy.abs(x - 0.5) < 0.05) | (numpy.abs(x + 0.5) < 0.05)] = 0.0  # dodge the kinks at the bounds
    return [sample(x, -0.5, 0.5), sample(x, lo=-0.5), sample(x, hi=0.5)]


@register("clip", methods=("clip", "clamp"), samples=_clip_samples)
def clip(x: Tensor, lo: float | None = None, hi: float | None = None) -> Tensor:
    """Clamp ``x`` to ``[lo, hi]`` (either bound may be None); ``lo > hi`` gives ``hi`` everywhere, as PyTorch."""
    require_floating("clip", x)
    if lo is None and hi is None:
        raise ValueError("clip: expected at least one of lo and hi, got neither")
    return Clip.apply(x, lo=lo, hi=hi)


clamp = clip
