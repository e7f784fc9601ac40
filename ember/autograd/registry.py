"""The op registry: one decorator turns a functional op into Tensor methods and a test entry.

``@register("add", methods=("add", "__add__"), reflected=("__radd__",), samples=...)``
attaches the function to ``Tensor`` under each method name (``reflected`` ones
with the operands swapped) and records sample inputs, so the registry-driven
gradcheck test covers every op without a hand-written list.
"""

from __future__ import annotations

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
