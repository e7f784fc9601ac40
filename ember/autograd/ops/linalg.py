"""Matrix product: 1-D, 2-D and batched (broadcast batch axes), as ``numpy.matmul``.

The Function handles operands of 2 or more dimensions; 1-D operands are
promoted by the wrapper with ``unsqueeze``/``squeeze``, so their gradients
come from the same rule: ``ga = gy @ b^T``, ``gb = a^T @ gy``.
"""

from __future__ import annotations

from typing import Any

from ember.autograd.function import Function
from ember.autograd.ops.operands import binary_operands
from ember.autograd.ops.shape import squeeze, unsqueeze
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends.device_gemm import matmul_any
from ember.errors import DTypeError, ShapeError


class MatMul(Function):
    """``y = a @ b`` for ``a: (..., n, k)``, ``b: (..., k, m)``; batch axes broadcast."""

    @staticmethod
    def forward(ctx: Function, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return matmul_any(ctx.xp, a, b)  # 2-D: capturable in a CUDA graph

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        a, b = ctx.saved_tensors
        xp = ctx.xp
        ga = matmul_any(xp, gy, xp.swapaxes(b, -1, -2)) if ctx.needs_input_grad[0] else None
        gb = matmul_any(xp, xp.swapaxes(a, -1, -2), gy) if ctx.needs_input_grad[1] else None
        return ga, gb


def _matmul_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(3, 4)), n(size=(4, 2)), note="2-d"),
        sample(n(size=(4,)), n(size=(4,)), note="dot of vectors"),
        sample(n(size=(4,)), n(size=(4, 2)), note="vector @ matrix"),
        sample(n(size=(3, 4)), n(size=(4,)), note="matrix @ vector"),
        sample(n(size=(2, 3, 4)), n(size=(4, 5)), note="batched @ matrix"),
        sample(n(size=(2, 1, 3, 4)), n(size=(3, 4, 2)), note="broadcast batch axes"),
    ]


@register("matmul", methods=("matmul", "__matmul__"), reflected=("__rmatmul__",), samples=_matmul_samples)
def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's ``matmul`` semantics."""
    a, b = binary_operands("matmul", a, b)
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("matmul: expected two tensors (or arrays), got a scalar operand; use * for scaling")
    if a.dtype.kind == "b":  # as PyTorch: integers multiply (an integer result, no graph), bools do not
        raise DTypeError(f"matmul: expected numeric tensors, got dtype bool {tuple(a.shape)}; convert with .int()")
    sa, sb = tuple(a.shape), tuple(b.shape)
    if not sa or not sb:
        raise ShapeError(f"matmul: expected operands of at least 1 dimension, got shapes {sa} and {sb}")
    k_a = sa[-1]
    k_b = sb[-2] if len(sb) >= 2 else sb[0]
    if k_a != k_b:
        raise ShapeError(f"matmul: inner dimensions differ, got shapes {sa} and {sb} ({k_a} != {k_b})")
    # 1-D operands are promoted to matrices and the added axes dropped again (NumPy's rule).
    a2 = unsqueeze(a, 0) if len(sa) == 1 else a
    b2 = unsqueeze(b, -1) if len(sb) == 1 else b
    try:
        y = MatMul.apply(a2, b2)
    except ValueError:
        raise ShapeError(f"matmul: batch dimensions do not broadcast, got shapes {sa} and {sb}") from None
    if len(sb) == 1:
        y = squeeze(y, -1)
    if len(sa) == 1:
        y = squeeze(y, -1 if len(sb) == 1 else -2)
    return y


dot = matmul
