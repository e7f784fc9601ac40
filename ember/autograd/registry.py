"""The op registry: one decorator turns a functional op into Tensor methods and a test entry.

``@register("add", methods=("add", "__add__"), reflected=("__radd__",), samples=...)``
attaches the function to ``Tensor`` under each method name (``reflected`` ones
with the operands swapped) and records sample inputs, so the registry-driven
gradcheck test covers every op without a hand-written list.  An op whose
signature has ``axis`` also accepts PyTorch's ``dim=``/``keepdim=``
(``accepts_dim``), here once for every op rather than in each one.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy


@dataclass(frozen=True)
class Sample:
    """One input case for an op's gradcheck.

    ``args``: float64 ``numpy`` arrays become ``requires_grad`` tensors, other
    values (ints, index arrays, bool masks) pass through unchanged.
    """

    args: tuple
    kwargs: dict
    note: str = ""


@dataclass(frozen=True)
class OpSpec:
    """A registered op: its functional form and how to test it."""

    name: str
    fn: Callable
    samples: Callable[[numpy.random.Generator], list[Sample]] | None
    second_order: bool


OPS: dict[str, OpSpec] = {}


def register(
    name: str,
    *,
    methods: tuple[str, ...] = (),
    reflected: tuple[str, ...] = (),
    samples: Callable[[numpy.random.Generator], list[Sample]] | None = None,
    second_order: bool = True,
) -> Callable[[Callable], Callable]:
    """Register a functional op, attach its Tensor methods, and record its samples."""

    def decorate(fn: Callable) -> Callable:
        from ember.autograd.tensor import Tensor

        if name in OPS:
            raise ValueError(f"register: op {name!r} is registered twice")
        fn = accepts_dim(fn, name)
        OPS[name] = OpSpec(name, fn, samples, second_order)
        for method in methods:
            setattr(Tensor, method, fn)
        for method in reflected:
            setattr(Tensor, method, _swapped(fn, method))
        return fn

    return decorate


def _swapped(fn: Callable, method: str) -> Callable:
    def reflected_op(self: Any, other: Any) -> Any:
        return fn(other, self)

    reflected_op.__name__ = method
    reflected_op.__doc__ = f"``other {method}`` self, via ``{fn.__name__}(other, self)``."
    return reflected_op


def sample(*args: Any, note: str = "", **kwargs: Any) -> Sample:
    """Shorthand for ``Sample(args, kwargs, note)``."""
    return Sample(tuple(args), kwargs, note)


_TORCH_NAMES = (("dim", "axis"), ("keepdim", "keepdims"))


def accepts_dim(fn: Callable, name: str | None = None) -> Callable:
    """``fn`` taking PyTorch's ``dim=``/``keepdim=`` as aliases of its ``axis=``/``keepdims=``.

    Returns ``fn`` itself when it has no ``axis`` parameter or already takes
    ``dim``.  Passing both spellings of one argument is a TypeError naming the op.
    """
    params = inspect.signature(fn).parameters
    if "axis" not in params or "dim" in params:
        return fn
    op = name or fn.__name__
    aliases = tuple((t, n) for t, n in _TORCH_NAMES if n in params)

    @functools.wraps(fn)
    def with_dim(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            for torch_name, numpy_name in aliases:
                if torch_name in kwargs:
                    if numpy_name in kwargs:
                        raise TypeError(
                            f"{op}: got both {torch_name}= and {numpy_name}= (two spellings of one argument); "
                            "pass only one"
                        )
                    kwargs[numpy_name] = kwargs.pop(torch_name)
        return fn(*args, **kwargs)

    return with_dim
