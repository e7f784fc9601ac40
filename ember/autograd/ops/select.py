"""Boolean masks in and out: ``where`` (differentiable in its two value operands) and comparisons.

Comparisons (``lt`` ... ``ne`` and the Tensor operators ``<`` ... ``!=``) return
bool tensors without a graph, as in PyTorch; ``where`` consumes such a mask.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember import dtypes
from ember.autograd.function import Function
from ember.autograd.ops.operands import binary_operands, broadcast_error
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of
from ember.errors import DeviceMismatchError, DTypeError


class Where(Function):
    """``y = a where cond else b``; ``ga = gy * cond``, ``gb = gy * !cond``; cond gets none."""

    @staticmethod
    def forward(ctx: Function, cond: Any, a: Any, b: Any) -> Any:
        ctx.save_for_backward(cond)
        return ctx.xp.where(cond, a, b)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        (cond,) = ctx.saved_arrays
        xp = ctx.xp
        ga = xp.where(cond, gy, 0) if ctx.needs_input_grad[1] else None
        gb = xp.where(cond, 0, gy) if ctx.needs_input_grad[2] else None
        return None, ga, gb


def _where_samples(rng: Any) -> list:
    cond = rng.uniform(size=(3, 4)) > 0.5
    return [
        sample(cond, rng.normal(size=(3, 4)), rng.normal(size=(3, 4))),
        sample(cond, rng.normal(size=(4,)), rng.normal(size=(3, 1)), note="broadcast"),
        sample(cond, rng.normal(size=(3, 4)), 0.0, note="scalar other"),
    ]


@register("where", samples=_where_samples)
def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Pick ``a`` where ``cond`` is true, else ``b`` (broadcasting all three; both may be Python scalars)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor) and isinstance(cond, Tensor):
        a = _scalar_tensor(a, b, cond)
    a, b = binary_operands("where", a, b)
    like = a if isinstance(a, Tensor) else b
    if not isinstance(cond, Tensor):
        cond = Tensor._make(_bool_array(cond, like))
    if cond.dtype.kind != "b":
        raise DTypeError(f"where: expected a bool condition, got dtype {cond.dtype}; use a comparison such as x > 0")
    try:
        return Where.apply(cond, a, b)
    except ValueError as e:
        if "broadcast" in str(e):
            raise broadcast_error("where", cond, a, b) from None
        raise


def _scalar_tensor(a: Any, b: Any, cond: Tensor) -> Any:
    """``a`` as a 0-d tensor on ``cond``'s device when both values are Python scalars.

    PyTorch's dtype rule: the default float if either is a float, else int64, or bool for two bools.
    """
    scalars = (type(a), type(b))
    if not all(t in (bool, int, float) for t in scalars):
        return a  # binary_operands names the unsupported operand
    if float in scalars:
        dtype = dtypes.get_default_dtype()
    else:
        dtype = numpy.bool_ if scalars == (bool, bool) else numpy.int64
    return Tensor._make(backend_of(cond.data).xp.asarray(a, dtype=dtype))


def _bool_array(cond: Any, like: Tensor) -> Any:
    """A bool mask (array or Python bool) as an array on ``like``'s device."""
    backend = backend_of(like.data)
    try:
        if backend_of(cond) is not backend:
            raise DeviceMismatchError(f"where: expected the condition on {like.device}, got another device")
        return cond
    except TypeError:
        return backend.xp.asarray(cond, dtype=bool)


def _comparison(name: str, ufunc: str, method: str) -> Any:
    """A non-differentiable elementwise comparison returning a bool tensor (PyTorch's ``t > 0``)."""

    def op(a: Any, b: Any) -> Tensor:
        a, b = binary_operands(name, a, b)
        ta = a if isinstance(a, Tensor) else b
        xp = backend_of(ta.data).xp
        try:
            out = getattr(xp, ufunc)(a.data if isinstance(a, Tensor) else a, b.data if isinstance(b, Tensor) else b)
        except ValueError as e:
            if "broadcast" in str(e):
                raise broadcast_error(name, a, b) from None
            raise
        return Tensor._make(xp.asarray(out))

    def dunder(self: Tensor, other: Any) -> Any:
        # Unsupported operands (None, strings ...) fall back to Python's default:
        # `t == None` is False, `t < "a"` raises TypeError.
        if not isinstance(other, (Tensor, bool, int, float, numpy.generic, numpy.ndarray, list, tuple)):
            try:
                backend_of(other)
            except TypeError:
                return NotImplemented
        return op(self, other)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``a {method}`` ``b`` as a bool tensor (no gradient), with broadcasting."
    dunder.__name__ = f"__{name}__"
    setattr(Tensor, name, op)
    setattr(Tensor, f"__{name}__", dunder)
    return op


lt = _comparison("lt", "less", "<")
le = _comparison("le", "less_equal", "<=")
gt = _comparison("gt", "greater", ">")
ge = _comparison("ge", "greater_equal", ">=")
eq = _comparison("eq", "equal", "==")
ne = _comparison("ne", "not_equal", "!=")
