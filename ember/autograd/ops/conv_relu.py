"""``conv2d_relu``: conv2d followed by ReLU as one op, so a GPU runs the ReLU inside conv2d's epilogues.

On a backend whose conv kernels set ``FUSES_RELU`` (CUDA), the forward adds the bias,
applies ``max(., 0)`` and writes NCHW in the one epilogue kernel that follows the GEMM,
and the backward masks ``gy`` by ``y > 0`` inside the transpose kernel that feeds the
GEMMs (which also sums the bias gradient): one elementwise pass saved each way, and one
activation-sized array fewer kept for backward (the node keeps ``x``, ``W`` and ``y``,
not the pre-activation).  Elsewhere it is the readable composition: conv2d as
``Convolution2d`` computes it, then ``max(y, 0)`` in place; backward masks ``gy`` and
runs conv2d's backward.  The Numba kernels set the flag too (ReLU in their forward
epilogue, the mask as one compiled pass before their backward) for the arrays their
``conv2d_supported`` takes.  The kernels' ``FUSES_RELU`` flag is checked rather than assumed,
because another backend may offer ``conv2d_forward``/``conv2d_backward`` without the
``relu=`` / ``y=`` keywords.  Double backward runs the same Functions as conv2d's
(the mask is constant almost everywhere), so it is exact.

How models reach it.  ``ember.nn.Sequential`` runs an adjacent ``Conv2d`` + ``ReLU``
pair (exact classes, default dilation/groups, numeric padding) as ``conv2d_relu``
when neither module has hooks, and ``SimpleConvNet`` calls the same rule
(``ember.nn.fusion.conv_relu``).  The trade-off: fusion is automatic for the common
case and invisible to module hooks (a hook on either module turns it off, so hooks
always see both calls), but a traceback or ``grad_fn`` shows
``RectifiedConvolution2dBackward`` where an unfused graph shows the two nodes, the
ReLU module's ``forward`` is not called (a subclass of either layer is never fused for
that reason), and sums in the fused bias gradient may round differently from the
unfused one.  ``ember.nn.fusion.FUSE_CONV_RELU = False`` turns it off (A/B timing).
"""

from __future__ import annotations

from typing import Any

from ember.autograd.function import Function, autocast_active
from ember.autograd.ops.conv import (
    GENERAL_PATHS, Convolution2d, Convolution2dWeightGrad, TransposedConvolution2d, _channel_sums, _check_nchw,
    _check_tensor, _check_window, _conv2d_samples, _whole_conv_kernel, kernels,
)
from ember.autograd.ops.elementwise import relu
from ember.autograd.registry import register
from ember.autograd.tensor import Tensor
from ember.backends import geometry
from ember.errors import DTypeError, ShapeError


def fuses_relu(backend: Any) -> bool:
    """True when ``backend``'s conv kernels take ``relu=`` in ``conv2d_forward`` and ``y=`` in ``conv2d_backward``."""
    return bool(getattr(kernels(backend), "FUSES_RELU", False))


class RectifiedConvolution2d(Function):
    """``y = max(conv2d(x, W, b), 0)``.

    ``x: (N, C, H, W)``, ``W: (OC, C, KH, KW)``, ``b: (OC,)`` or None, one floating dtype;
    ``y: (N, OC, OH, OW)``.  Backward: ``gz = gy * (y > 0)`` (subgradient 0 at 0), then
    conv2d's rule: ``gx = conv_transpose(gz, W)``, ``gW = gz @ col(x)^T``, ``gb = gz.sum((0, 2, 3))``.
    """

    @staticmethod
    def forward(ctx: Function, x: Any, W: Any, b: Any = None, *, stride: tuple, padding: tuple) -> Any:
        backend = ctx.backend
        ctx.stride, ctx.padding = stride, padding
        k = kernels(backend)
        gemm_2d = _whole_conv_kernel(k, "conv2d_forward", x, W, b)
        if gemm_2d is not None and fuses_relu(backend):
            y = gemm_2d(x, W, b, stride, padding, xp=backend.xp, relu=True)
        else:
            if gemm_2d is not None:
                y = gemm_2d(x, W, b, stride, padding, xp=backend.xp)
            else:
                y = Convolution2d.compute(backend, x, W, b, stride=stride, padding=padding)
            backend.xp.maximum(y, 0, out=y)  # y is a fresh array: ReLU in place
        ctx.save_for_backward(x, W, y)
        return y

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        needs = tuple(ctx.needs_input_grad)
        geom = {"stride": ctx.stride, "padding": ctx.padding}
        backend = ctx.backend
        if ctx.create_graph:  # recorded with Functions: differentiable again
            x, W, _ = ctx.saved_tensors
            y = ctx.saved_arrays[2]
            gz = ctx.xp.where(y > 0, gy, 0)  # the mask is a constant: its derivative is 0 almost everywhere
            gx = gW = gb = None
            if needs[0]:
                gx = TransposedConvolution2d.apply(gz, W, x_shape=tuple(x.shape), **geom)
            if needs[1]:
                gW = Convolution2dWeightGrad.apply(x, gz, kernel_size=tuple(W.shape[2:]), **geom)
            if len(needs) > 2 and needs[2]:
                gb = ctx.xp.sum(gz, axis=(0, 2, 3))
            return gx, gW, gb
        x, W, y = ctx.saved_arrays
        k, xp = kernels(backend), backend.xp
        gemm_2d = _whole_conv_kernel(k, "conv2d_backward", x, W)
        if gemm_2d is not None and fuses_relu(backend):
            return gemm_2d(x, W, gy, ctx.stride, ctx.padding, needs, xp=xp, y=y)
        gz = backend.nn.relu_backward(y, gy, xp=xp)
        if gemm_2d is not None:
            return gemm_2d(x, W, gz, ctx.stride, ctx.padding, needs, xp=xp)
        gx = gW = gb = None
        if needs[0]:
            gx = TransposedConvolution2d.compute(backend, gz, W, x_shape=tuple(x.shape), **geom)
        if needs[1]:
            gW = Convolution2dWeightGrad.compute(backend, x, gz, kernel_size=tuple(W.shape[2:]), **geom)
        if len(needs) > 2 and needs[2]:
            gb = _channel_sums(xp, gz)
        return gx, gW, gb


@register("conv2d_relu", samples=_conv2d_samples)  # the same cases as conv2d
def conv2d_relu(x: Tensor, W: Tensor, b: Tensor | None = None, stride: Any = 1, padding: Any = 0,
                dilation: Any = 1, groups: int = 1) -> Tensor:
    """``relu(conv2d(x, W, b, stride, padding, dilation, groups))`` as one fused op where possible.

    Args:
        x: ``(N, C, H, W)``, floating.
        W: ``(OC, C, KH, KW)``, same dtype as ``x``.
        b: ``(OC,)`` or None.
        stride: ``s`` or ``(sh, sw)``, each >= 1.
        padding: ``p`` or ``(ph, pw)``, each >= 0; or ``"same"`` / ``"valid"``.
        dilation: ``d`` or ``(dh, dw)``.
        groups: channel groups.

    Returns:
        ``(N, OC, OH, OW)``, non-negative.  Dilation, groups and string padding run
        ``relu(conv2d(...))`` unfused.

    Raises:
        ShapeError: wrong ranks, channel or bias mismatch, kernel larger than the padded input.
        DTypeError: non-floating or mixed dtypes.
        ValueError: stride < 1 or padding < 0 (TypeError if not ints).
    """
    op = "conv2d_relu"
    if groups != 1 or dilation not in (1, (1, 1)) or isinstance(padding, str):
        return relu(GENERAL_PATHS["conv2d"](x, W, b, stride, padding, dilation, groups))
    _check_tensor(op, "x", x)
    _check_tensor(op, "W", W)
    _check_nchw(op, x)
    if W.ndim != 4:
        raise ShapeError(f"{op}: expected W of shape (OC, C, KH, KW), got shape {tuple(W.shape)}")
    if b is not None:
        _check_tensor(op, "b", b)
    dts = [("x", x), ("W", W)] + ([("b", b)] if b is not None else [])
    if len({t.dtype for _, t in dts}) > 1 and not autocast_active():
        got = ", ".join(f"{name} {t.dtype}" for name, t in dts)
        raise DTypeError(f"{op}: expected x, W and b of one dtype, got {got}; convert one with .to(dtype)")
    xs, ws = tuple(x.shape), tuple(W.shape)
    if xs[1] != ws[1]:
        raise ShapeError(f"{op}: expected x with {ws[1]} channels to match W of shape {ws}, "
                         f"got x of shape {xs} ({xs[1]} channels)")
    if b is not None and tuple(b.shape) != (ws[0],):
        raise ShapeError(f"{op}: expected b of shape ({ws[0]},) for W of shape {ws}, got shape {tuple(b.shape)}")
    stride, padding = _check_window(op, xs, ws[2:], stride, padding, geometry)
    return RectifiedConvolution2d.apply(x, W, b, stride=stride, padding=padding)
