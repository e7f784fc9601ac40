"""``linear_relu``: a linear layer followed by ReLU as one op, the ReLU inside the product's blocks.

On the Numba backend ``nn.linear_forward`` adds the bias and applies ``max(., 0)`` in
each block of ``parallel_gemm`` right after the core wrote it, and ``nn.linear_grad_output``
masks ``gy`` by ``y > 0`` and sums the bias gradient in one pass: an elementwise pass
saved each way, a recorded node fewer, and no pre-activation array kept for backward
(the node keeps ``x``, ``W`` and ``y``).  On the book's TwoLayerNet the ReLU node cost
about 5% of a training step, on the 784-512-512-10 MLP about 3%
(``docs/engineering/cpu-round6.md``).  Elsewhere it is the composition: the product, the
bias, the backend's ReLU kernels.  The values and gradients equal ``relu(linear(...))``
bit for bit on the CPU: the epilogue adds and compares as the unfused ops do, and each
bias-gradient column is summed over the rows in order, as NumPy's ``sum(axis=0)``.

How models reach it: ``ember.nn.Sequential`` runs an adjacent ``Linear`` + ``ReLU`` pair
(exact classes, no hooks) as ``linear_relu``, and ``TwoLayerNet`` calls the same rule
(``ember.nn.fusion.linear_relu``).  The trade-offs are conv2d_relu's
(``ember/autograd/ops/conv_relu.py``): module hooks turn it off, and ``grad_fn`` shows
``RectifiedAffineBackward`` where the unfused graph shows two nodes.
"""

from __future__ import annotations

from typing import Any

from ember.autograd.function import Function
from ember.autograd.ops.nn_ops import _linear_samples, affine_backward, affine_forward, check_linear_operands
from ember.autograd.registry import register
from ember.autograd.tensor import Tensor


class RectifiedAffine(Function):
    """``y = max(x @ W.T + b, 0)``; backward: ``gz = gy * (y > 0)``, then the Affine rule on ``gz``."""

    @staticmethod
    def forward(ctx: Function, x: Any, W: Any, b: Any) -> Any:
        y = affine_forward(ctx.backend, x, W, b, True)
        ctx.save_for_backward(x, W, y)
        return y

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        # The mask is a constant under create_graph too: its derivative is 0 almost everywhere.
        return affine_backward(ctx, gy, ctx.saved_arrays[2])


@register("linear_relu", samples=_linear_samples)  # the same cases as linear
def linear_relu(x: Tensor, W: Tensor, b: Tensor | None = None) -> Tensor:
    """``relu(linear(x, W, b))`` as one fused op.

    Args:
        x: ``(..., in_features)``, floating.
        W: ``(out_features, in_features)``, ``x``'s dtype and device.
        b: ``(out_features,)`` or None.

    Returns:
        ``(..., out_features)``, non-negative (NaN stays NaN).  Backward: ``gz = gy * (y > 0)``
        (subgradient 0 at 0), ``gx = gz W``, ``gW = gz^T x``, ``gb = sum(gz)``.

    Raises:
        ShapeError, DTypeError: as ``linear``, naming ``linear_relu``.
    """
    check_linear_operands("linear_relu", x, W, b)
    return RectifiedAffine.apply(x, W, b)
