"""Predicates and bit logic: isnan/isinf/isfinite/isclose, nonzero, bitwise and logical and/or/xor/not.

None of these has a gradient: they return bool (or integer) tensors with no
graph, like the comparisons.  ``&``, ``|``, ``^`` and ``~`` are the bitwise
ops and accept bool and integer tensors only (PyTorch refuses floats too);
the ``logical_*`` forms accept any dtype and test for non-zero.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.ops.operands import binary_operands, broadcast_error
from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of
from ember.errors import DTypeError


def _tensor(op: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x


def _raw(v: Any) -> Any:
    return v.data if isinstance(v, Tensor) else v


def _pair(op: str, a: Any, b: Any) -> tuple:
    """Both operands as arrays/scalars, plus the array module of the tensor among them."""
    a, b = binary_operands(op, a, b)
    like = a if isinstance(a, Tensor) else b
    return _raw(a), _raw(b), backend_of(like.data).xp


def _elementwise(op: str, fn: Any, *args: Any) -> Tensor:
    try:
        out = fn(*args)
    except ValueError as e:
        if "broadcast" in str(e):
            raise broadcast_error(op, *args) from None
        raise
    return Tensor._make(out if not isinstance(out, numpy.generic) else numpy.asarray(out))


def isnan(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's argument name
    """True where ``input`` is NaN (always False for integer tensors)."""
    x = _tensor("isnan", input)
    return Tensor._make(backend_of(x.data).xp.isnan(x.data))


def isinf(input: Tensor) -> Tensor:  # noqa: A002
    """True where ``input`` is +inf or -inf."""
    x = _tensor("isinf", input)
    return Tensor._make(backend_of(x.data).xp.isinf(x.data))


def isfinite(input: Tensor) -> Tensor:  # noqa: A002
    """True where ``input`` is neither NaN nor infinite."""
    x = _tensor("isfinite", input)
    return Tensor._make(backend_of(x.data).xp.isfinite(x.data))


def isclose(input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08,  # noqa: A002
            equal_nan: bool = False) -> Tensor:
    """``|input - other| <= atol + rtol * |other|`` elementwise, with broadcasting."""
    _tensor("isclose", input)
    if rtol < 0 or atol < 0:
        raise ValueError(f"isclose: expected non-negative rtol and atol, got rtol={rtol}, atol={atol}")
    a, b, xp = _pair("isclose", input, other)
    return _elementwise("isclose", lambda p, q: xp.isclose(p, q, rtol=rtol, atol=atol, equal_nan=equal_nan), a, b)


def allclose(input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08,  # noqa: A002
             equal_nan: bool = False) -> bool:
    """True when every element of ``isclose`` is true."""
    return bool(isclose(input, other, rtol, atol, equal_nan).data.all())


def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:  # noqa: A002
    """Indices of the non-zero elements: an int64 ``(n, ndim)`` tensor, or ``ndim`` 1-d tensors if ``as_tuple``.

    A 0-d input counts as 1-d for ``as_tuple`` (PyTorch's rule).
    """
    x = _tensor("nonzero", input)
    xp = backend_of(x.data).xp
    if as_tuple:
        data = x.data.reshape(1) if x.ndim == 0 else x.data
        return tuple(Tensor._make(i.astype(numpy.int64)) for i in xp.nonzero(data))
    return Tensor._make(xp.argwhere(x.data).astype(numpy.int64))


def _require_integral(op: str, *values: Any) -> None:
    for v in values:
        kind = v.data.dtype.kind if isinstance(v, Tensor) else ("b" if isinstance(v, bool) else
                                                                 "i" if isinstance(v, int) else "f")
        if kind not in "iub":
            dtype = v.dtype if isinstance(v, Tensor) else type(v).__name__
            raise DTypeError(f"{op}: expected bool or integer operands, got {dtype}; "
                             f"use logical_{op.split('_')[-1]} for a truth-value test of floats")


def _pairwise(name: str, doc: str, integral: bool) -> Any:
    """``name(input, other)``: the array ufunc of that name, with broadcasting.

    ``integral``: the bitwise ops, which take bool or integer operands only.
    """

    def op(input: Any, other: Any) -> Tensor:  # noqa: A002
        if integral:
            _require_integral(name, input, other)
        a, b, xp = _pair(name, input, other)
        return _elementwise(name, getattr(xp, name), a, b)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc.format(name.split("_")[1])
    return op


_BITWISE_DOC = "Elementwise bitwise {} of bool or integer operands, with broadcasting."
_LOGICAL_DOC = "Elementwise logical {} (non-zero is true) as a bool tensor, with broadcasting."
bitwise_and = _pairwise("bitwise_and", _BITWISE_DOC, integral=True)
bitwise_or = _pairwise("bitwise_or", _BITWISE_DOC, integral=True)
bitwise_xor = _pairwise("bitwise_xor", _BITWISE_DOC, integral=True)


def bitwise_not(input: Tensor) -> Tensor:  # noqa: A002
    """``~input``: logical not of a bool tensor, two's-complement not of an integer tensor."""
    x = _tensor("bitwise_not", input)
    _require_integral("bitwise_not", x)
    return Tensor._make(backend_of(x.data).xp.invert(x.data))


logical_and = _pairwise("logical_and", _LOGICAL_DOC, integral=False)
logical_or = _pairwise("logical_or", _LOGICAL_DOC, integral=False)
logical_xor = _pairwise("logical_xor", _LOGICAL_DOC, integral=False)


def logical_not(input: Tensor) -> Tensor:  # noqa: A002
    """True where ``input`` is zero (any dtype), as a bool tensor."""
    x = _tensor("logical_not", input)
    return Tensor._make(backend_of(x.data).xp.logical_not(x.data))


_OPERANDS = (Tensor, bool, int, float, numpy.number, numpy.bool_, numpy.ndarray, list, tuple)


def _operator(fn: Any, reflected: bool = False) -> Any:
    """``&``/``|``/``^`` on a Tensor; unrelated operands (None, strings ...) get Python's NotImplemented."""

    def method(self: Tensor, other: Any) -> Any:
        if not isinstance(other, _OPERANDS):
            try:
                backend_of(other)
            except TypeError:
                return NotImplemented
        return fn(other, self) if reflected else fn(self, other)

    return method


for _name in ("isnan", "isinf", "isfinite", "isclose", "allclose", "nonzero", "bitwise_and", "bitwise_or",
              "bitwise_xor", "bitwise_not", "logical_and", "logical_or", "logical_xor", "logical_not"):
    setattr(Tensor, _name, globals()[_name])
for _dunder, _fn in (("and", bitwise_and), ("or", bitwise_or), ("xor", bitwise_xor)):
    setattr(Tensor, f"__{_dunder}__", _operator(_fn))
    setattr(Tensor, f"__r{_dunder}__", _operator(_fn, reflected=True))
Tensor.__invert__ = bitwise_not
