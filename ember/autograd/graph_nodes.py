"""``grad_fn.next_functions``: a node's inputs as PyTorch shows them.

Ember's nodes point at their inputs' creators directly, and a leaf input is
the leaf Tensor itself; PyTorch shows a leaf through an ``AccumulateGrad``
node holding it (``.variable``).  This module builds that view on request.
"""

from __future__ import annotations

from typing import Any


class AccumulateGrad:
    """The view of a leaf input in ``next_functions``: ``.variable`` is the leaf Tensor."""

    __slots__ = ("variable",)
    next_functions: tuple = ()

    def __init__(self, variable: Any):
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AccumulateGrad) and other.variable is self.variable

    def __hash__(self) -> int:
        return id(self.variable)

    def __repr__(self) -> str:
        return f"<AccumulateGrad of a leaf of shape {tuple(self.variable.shape)}>"


def next_functions(fn: Any) -> tuple:
    """One ``(node, output index)`` pair per forward argument of ``fn``.

    ``node`` is the producing ``Function`` for a non-leaf input, an
    ``AccumulateGrad`` for a leaf that requires grad, and None for anything that
    carries no gradient (constants, tensors without requires_grad).
    """
    out = []
    for edge in getattr(fn, "_edges", ()):
        if edge is None:
            out.append((None, 0))
        elif type(edge) is tuple:
            out.append((edge[0], edge[1]))
        else:
            out.append((AccumulateGrad(edge), 0))
    return tuple(out)
