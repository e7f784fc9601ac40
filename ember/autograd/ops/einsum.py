"""``einsum``: Einstein summation with PyTorch's equation rules, one ``Function``.

The equation is parsed once into explicit single-letter subscripts (``...`` becomes letters for
the broadcast axes, right-aligned as PyTorch; an implicit output is the letters used once, sorted,
after the ``...`` axes).  Forward is ``xp.einsum``; the gradient of operand ``i`` is another
einsum, of ``gy`` with the other operands, into operand ``i``'s subscripts.  Letters that only
operand ``i`` has (summed away, e.g. ``"ij->i"``) are left out of that einsum and restored by
broadcasting.  Under ``create_graph`` the gradient einsums are recorded as ``EinsteinSum``
nodes, so double backward works.  A letter repeated within one operand (a diagonal, ``"ii->i"``)
is supported in the forward only, for inputs that do not require grad.
"""

from __future__ import annotations

import string
from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import DTypeError, ShapeError

_LETTERS = string.ascii_letters


def _parse(equation: str, shapes: list) -> tuple:
    """``(input subscripts, output subscripts)`` with ``...`` replaced by explicit letters."""
    op = "einsum"
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"{op}: the equation {equation!r} has {len(terms)} operands, got {len(shapes)} tensors")
    used = set(c for c in eq if c in _LETTERS)
    bad = set(eq) - set(_LETTERS) - set(",.->")
    if bad:
        raise ValueError(f"{op}: expected subscripts in [a-zA-Z], got {sorted(bad)} in {equation!r}")
    spare = [c for c in _LETTERS if c not in used]
    ell_nd = 0
    for term, shape in zip(terms, shapes):
        if "..." in term:
            ell_nd = max(ell_nd, len(shape) - (len(term) - 3))
    ell = "".join(spare[:ell_nd])
    ins = []
    for term, shape in zip(terms, shapes):
        nd = len(shape) - (len(term) - 3) if "..." in term else 0
        if "." in term.replace("...", "", 1) or nd < 0:
            raise ValueError(f"{op}: bad subscripts {term!r} for an operand of shape {tuple(shape)}")
        sub = term.replace("...", ell[ell_nd - nd:] if nd else "")
        if len(sub) != len(shape):
            raise ShapeError(
                f"{op}: subscripts {term!r} name {len(sub)} axes, got an operand of shape {tuple(shape)}"
            )
        ins.append(sub)
    if arrow:
        if "." in rhs.replace("...", "", 1):
            raise ValueError(f"{op}: bad output subscripts {rhs!r}")
        out = rhs.replace("...", ell)
        missing = set(out) - set("".join(ins))
        if missing or len(set(out)) != len(out):
            raise ValueError(f"{op}: output subscripts {rhs!r} must be distinct letters of the inputs ({equation!r})")
    else:
        counts = {c: "".join(ins).count(c) for c in set("".join(ins)) if c not in ell}
        out = ell + "".join(sorted((c for c, n in counts.items() if n == 1), key=_LETTERS.index))
    return ins, out


class EinsteinSum(Function):
    """``y = einsum(ins -> out, *xs)``; ``g_i = einsum(out, others -> ins[i])`` (broadcast where summed away)."""

    @staticmethod
    def compute(backend: Any, *xs: Any, ins: tuple, out: str) -> Any:
        """The einsum on arrays."""
        return backend.xp.einsum(",".join(ins) + "->" + out, *xs)

    @staticmethod
    def forward(ctx: Function, *xs: Any, ins: tuple, out: str) -> Any:
        ctx.save_for_backward(*xs)
        ctx.ins, ctx.out = ins, out
        return EinsteinSum.compute(ctx.backend, *xs, ins=ins, out=out)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        xs = ctx.saved_tensors
        grads = []
        for i, sub in enumerate(ctx.ins):
            if not ctx.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [ctx.ins[j] for j in range(len(xs)) if j != i]
            known = set(ctx.out).union(*others)
            kept = "".join(c for c in sub if c in known)
            operands = [gy] + [xs[j] for j in range(len(xs)) if j != i]
            if ctx._create_graph:
                g = EinsteinSum.apply(*operands, ins=(ctx.out, *others), out=kept)
            else:
                g = EinsteinSum.compute(ctx.backend, *operands, ins=(ctx.out, *others), out=kept)
            if kept != sub:  # axes summed in operand i alone: every element got the same gradient
                for axis, c in enumerate(sub):
                    if c not in known:
                        g = ctx.xp.expand_dims(g, axis)
            target = numpy.broadcast_shapes(tuple(g.shape), tuple(xs[i].shape))
            if tuple(g.shape) != target:  # size-1 axes here or in the others: broadcast, the engine sums back
                g = ctx.xp.broadcast_to(g, target)
            grads.append(g)
        return tuple(grads)


def _einsum_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample("ij,jk->ik", n(size=(2, 3)), n(size=(3, 4)), note="matmul"),
        sample("bij,bjk", n(size=(2, 3, 2)), n(size=(2, 2, 3)), note="implicit output"),
        sample("...ij,...j->...i", n(size=(2, 1, 3, 4)), n(size=(3, 4)), note="ellipsis broadcast"),
        sample("ij->i", n(size=(3, 4)), note="summed away"),
        sample("i,j,k->ijk", n(size=(2,)), n(size=(3,)), n(size=(2,)), note="outer of three"),
        sample("ij,ij->", n(size=(3, 4)), n(size=(1, 4)), note="size-1 broadcast"),
    ]


@register("einsum", samples=_einsum_samples)
def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation (``torch.einsum``): ``einsum("bij,bjk->bik", a, b)``.

    Args:
        equation: comma-separated subscripts per operand (letters, ``...``), optionally
            ``"->"`` and the output subscripts (default: letters used once, sorted).
        operands: tensors of one floating dtype (or a single list of them, as PyTorch).

    Returns:
        The summed product. Backward: ``g_i = einsum(gy, others -> subs_i)``.

    Raises:
        ValueError: a malformed equation. ShapeError: subscripts unlike an operand's rank, or
        sizes that disagree. DTypeError: mixed or non-floating dtypes.
    """
    op = "einsum"
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"{op}: expected the equation string first, got {type(equation).__name__}")
    if not operands or not all(isinstance(t, Tensor) for t in operands):
        raise TypeError(f"{op}: expected Tensor operands, got {[type(t).__name__ for t in operands]}")
    dtypes = {t.dtype for t in operands}
    if len(dtypes) > 1 or next(iter(dtypes)).kind != "f":
        raise DTypeError(f"{op}: expected operands of one floating dtype, got {[str(t.dtype) for t in operands]}")
    shapes = [tuple(t.shape) for t in operands]
    ins, out = _parse(equation, shapes)
    sizes: dict = {}
    for sub, shape in zip(ins, shapes):
        for c, n in zip(sub, shape):
            if n != 1 and sizes.get(c, 1) not in (1, n):
                raise ShapeError(f"{op}: subscript {c!r} has sizes {sizes[c]} and {n} in {equation!r} "
                                 f"(operand shapes {shapes})")
            sizes[c] = n if n != 1 else sizes.get(c, 1)
    for sub, t in zip(ins, operands):
        repeated = {c for c in sub if sub.count(c) > 1}
        for c in repeated:
            if len({n for d, n in zip(sub, t.shape) if d == c}) > 1:
                raise ShapeError(f"{op}: the repeated subscript {c!r} of {sub!r} needs equal sizes, got an "
                                 f"operand of shape {tuple(t.shape)} in {equation!r}")
        if repeated and t.requires_grad:
            raise NotImplementedError(
                f"{op}: a repeated subscript within one operand ({sub!r} in {equation!r}) is supported only "
                "for inputs that do not require grad; take the diagonal with indexing first"
            )
    return EinsteinSum.apply(*operands, ins=tuple(ins), out=out)
