"""Layer ops: ``linear`` (the book's Affine layer), ``dropout`` and ``batch_norm``.

Each is one fused ``Function``: fewer graph nodes and fewer temporaries than
the composite of matmul/add or of mean/var ops, with a backward written once
against ``ctx.xp`` so that second derivatives come from the same code.
Batch norm (training forward, array backward) runs on the backend's ``nn``
kernels (``ember.backends.reference.nn`` is the reference); dropout lives in
``ember.autograd.ops.dropout`` and is re-exported here.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy

from ember.autograd.function import Function, autocast_active
from ember.autograd.ops.activation import upcast
from ember.autograd.ops.operands import require_floating
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import DeviceMismatchError, DTypeError, ShapeError


def _check_tensor(op: str, name: str, t: Any) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")


def _check_same_device(op: str, x: Tensor, name: str, t: Tensor) -> None:
    if t.device != x.device:
        raise DeviceMismatchError(
            f"{op}: expected {name} on {x.device} like the input, got {t.device}; move it with .to(device)"
        )


# --------------------------------------------------------------------- linear
class Affine(Function):
    """``y = x @ W.T + b`` for ``x: (..., in)``, ``W: (out, in)``, ``b: (out,)``.

    ``gx = gy @ W``, ``gW = gy^T x`` (summed over the leading axes), ``gb = sum(gy)``.
    The 2-D products go through the backend's ``nn.layer_matmul``: on the Numba
    backend a large one is cut into blocks run on Numba's thread pool
    (``ember.backends.numba.parallel_gemm``), which add the bias as they finish;
    elsewhere it is one ``@``.
    """

    @staticmethod
    def forward(ctx: Function, x: Any, W: Any, b: Any) -> Any:
        ctx.save_for_backward(x, W)
        return affine_forward(ctx.backend, x, W, b, False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        return affine_backward(ctx, gy, None)


def affine_forward(backend: Any, x: Any, W: Any, b: Any, relu: bool) -> Any:
    """``x @ W.T + b``, then ``max(., 0)`` when ``relu``: the backend's ``nn.linear_forward`` for a
    2-D ``x`` where it has one (the bias and ReLU inside the product's blocks), else the composition."""
    kernels = backend.nn
    fused = getattr(kernels, "linear_forward", None)
    if x.ndim == 2 and fused is not None:
        return fused(x, W.T, b, relu, kernels.batch_workers(), xp=backend.xp)
    y = kernels.layer_matmul(x, W.T, kernels.batch_workers()) if x.ndim == 2 else backend.xp.matmul(x, W.T)
    if b is not None:
        y += b
    if relu:
        y = kernels.relu_forward(y, xp=backend.xp)
    return y


def affine_backward(ctx: Function, gy: Any, y: Any) -> tuple:
    """``(gx, gW, gb)`` of ``x @ W.T + b``; with the forward's output ``y`` of a rectified layer, ``gy``
    is first masked by ``y > 0``.  ``ctx`` saved ``x`` and ``W`` first."""
    x, W = ctx.saved_tensors[:2]
    xp = ctx.xp
    need_x, need_W, need_b = ctx.needs_input_grad[:3]
    kernels = ctx.backend.nn
    workers = kernels.batch_workers()
    out_features, in_features = W.shape
    rows = math.prod(gy.shape[:-1])  # not -1: a reshape of 0 elements into (-1, 0) is ambiguous
    gy2 = xp.reshape(gy, (rows, out_features))
    y2 = None if y is None else y.reshape(rows, out_features)
    grad_output = getattr(kernels, "linear_grad_output", None)
    gb = None
    if ctx.create_graph or grad_output is None:
        if y2 is not None:
            gy2 = xp.where(y2 > 0, gy2, 0) if ctx.create_graph else kernels.relu_backward(y2, gy2, xp=ctx.backend.xp)
        if need_b:
            gb = xp.sum(gy2, axis=0)
    else:
        gy2, gb = grad_output(gy2, y2, need_b, workers, xp=ctx.backend.xp)
    gx = gW = None
    if need_x:  # gx = gy @ W, computed on the 2-D view and shaped back
        gx = kernels.layer_matmul(gy2, W, workers)
        if gy.ndim != 2:
            gx = xp.reshape(gx, tuple(gy.shape[:-1]) + (in_features,))
    if need_W:  # gW = gy^T x over the flattened leading axes
        gW = kernels.layer_matmul(xp.swapaxes(gy2, 0, 1), xp.reshape(x, (rows, in_features)), workers)
    return gx, gW, gb


def _linear_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(3, 4)), n(size=(2, 4)), n(size=(2,)), note="2-d with bias"),
        sample(n(size=(2, 3, 4)), n(size=(5, 4)), n(size=(5,)), note="batched input"),
        sample(n(size=(3, 4)), n(size=(2, 4)), note="no bias"),
        sample(n(size=(4,)), n(size=(3, 4)), n(size=(3,)), note="vector input"),
    ]


@register("linear", samples=_linear_samples)
def linear(x: Tensor, W: Tensor, b: Tensor | None = None) -> Tensor:
    """Affine map ``x @ W.T + b`` (PyTorch's weight layout).

    Args:
        x: ``(..., in_features)``, floating.
        W: ``(out_features, in_features)``, ``x``'s dtype and device.
        b: ``(out_features,)`` or None.

    Returns:
        ``(..., out_features)``. Backward: ``gx = gy W``, ``gW = gy^T x``, ``gb = sum(gy)``.

    Raises:
        ShapeError: ``W`` is not 2-d, ``x``'s last axis is not ``in_features``, or ``b`` has the wrong shape.
        DTypeError: the dtypes differ or are not floating.
    """
    check_linear_operands("linear", x, W, b)
    return Affine.apply(x, W, b)


def check_linear_operands(op: str, x: Any, W: Any, b: Any) -> None:
    """Raise unless ``x (..., in)``, ``W (out, in)`` and ``b (out,)`` or None are Tensors fit for ``op``.

    Reads each Tensor's array once: this runs before every linear layer's forward.
    """
    _check_tensor(op, "the input", x)
    _check_tensor(op, "the weight", W)
    xa, wa = x.data, W.data
    if xa.dtype.kind == "b":  # integer inputs compute (an integer result, no graph), as PyTorch
        raise DTypeError(f"{op}: expected a numeric input, got dtype bool {tuple(xa.shape)}; convert with .float()")
    if wa.ndim != 2:
        raise ShapeError(f"{op}: expected a weight of shape (out_features, in_features), got {tuple(wa.shape)}")
    if xa.ndim == 0 or xa.shape[-1] != wa.shape[1]:
        raise ShapeError(
            f"{op}: expected input (..., {wa.shape[1]}) for a weight of shape {tuple(wa.shape)}, got {tuple(xa.shape)}"
        )
    ba = None
    if b is not None:
        _check_tensor(op, "the bias", b)
        ba = b.data
        if ba.shape != (wa.shape[0],):
            raise ShapeError(f"{op}: expected a bias of shape ({wa.shape[0]},), got {tuple(ba.shape)}")
    for name, a in (("weight", wa), ("bias", ba)):
        if a is not None and a.dtype != xa.dtype and not autocast_active():  # autocast casts all to float16
            raise DTypeError(
                f"{op}: expected the {name} in the input's dtype {xa.dtype}, got {a.dtype}; convert with .to(dtype)"
            )


# -------------------------------------------------------------------- dropout
from ember.autograd.ops.dropout import InvertedDropout, dropout  # noqa: E402, F401  (its own module)


# ----------------------------------------------------------------- batch norm
class BatchNormalization(Function):
    """``y = (x - mean) / sqrt(var + eps) * w + b``, statistics over every axis but 1.

    With ``xhat`` the normalised input and ``m`` the count per channel:
    ``gb = sum(gy)``, ``gw = sum(gy xhat)``, and in training
    ``gx = inv_std (gxhat - mean(gxhat) - xhat mean(gxhat xhat))`` with ``gxhat = gy w``
    (the batch statistics depend on x); in evaluation ``gx = gy w inv_std``.
    """

    @staticmethod
    def forward(
        ctx: Function, x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any,
        training: bool, momentum: float, eps: float,
    ) -> Any:
        xp = ctx.backend.xp
        C = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        bshape = (1, C) + (1,) * (x.ndim - 2)
        m = x.size // C
        if training:
            # Statistics, normalisation and affine map in one kernel of the backend; (C,) statistics.
            kernels = ctx.backend.nn
            y, mean, var, inv_std = kernels.batch_norm_forward_train(x, weight, bias, eps, xp=xp)
            if running_mean is not None:
                # PyTorch's rule: biased var normalises, the unbiased one is tracked.
                running_mean[...] = (1 - momentum) * running_mean + momentum * mean
                running_var[...] = (1 - momentum) * running_var + momentum * (var * (m / (m - 1)))
            mean, inv_std = mean.reshape(bshape), inv_std.reshape(bshape)
        else:
            xc = upcast(x)
            mean = running_mean.reshape(bshape).astype(xc.dtype)
            var = running_var.reshape(bshape).astype(xc.dtype)
            inv_std = 1.0 / xp.sqrt(var + eps)
            y = (xc - mean) * inv_std
            if weight is not None:
                y *= upcast(weight).reshape(bshape)
            if bias is not None:
                y += upcast(bias).reshape(bshape)
        ctx.training, ctx.eps, ctx.axes, ctx.bshape, ctx.m = training, eps, axes, bshape, m
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.save_for_backward(x, weight, mean, inv_std)
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        x, weight = ctx.saved_tensors[:2]
        mean, inv_std = ctx.saved_arrays[2:]
        xp, axes, m = ctx.xp, ctx.axes, ctx.m
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if not ctx.create_graph:
            kernels = ctx.backend.nn
            gx, gw, gb = kernels.batch_norm_backward(
                x, gy, mean, inv_std, weight, ctx.training, need_x, need_w, need_b, xp=ctx.backend.xp
            )
            return _cast(gx, x.dtype), _cast(gw, getattr(weight, "dtype", None)), _cast(gb, ctx.bias_dtype)
        xc, g = upcast(x), upcast(gy)
        if ctx.create_graph and ctx.training:
            # The batch statistics are functions of x: rebuild them in the graph so
            # that second derivatives see that dependence (the saved ones are constants).
            mean = xp.sum(xc, axis=axes, keepdims=True) * (1.0 / m)
            centred = xc - mean
            inv_std = 1.0 / xp.sqrt(xp.sum(centred * centred, axis=axes, keepdims=True) * (1.0 / m) + ctx.eps)
            xhat = centred * inv_std
        else:
            xhat = (xc - mean) * inv_std
        gx = gw = gb = None
        if need_b:
            gb = xp.sum(g, axis=axes)
        if need_w:
            gw = xp.sum(g * xhat, axis=axes)
        if need_x:
            gxhat = g * upcast(weight).reshape(ctx.bshape) if weight is not None else g
            if ctx.training:
                mean_g = xp.sum(gxhat, axis=axes, keepdims=True) * (1.0 / m)
                mean_gx = xp.sum(gxhat * xhat, axis=axes, keepdims=True) * (1.0 / m)
                gx = (gxhat - mean_g - xhat * mean_gx) * inv_std
            else:
                gx = gxhat * inv_std
        return _cast(gx, x.dtype), _cast(gw, getattr(weight, "dtype", None)), _cast(gb, ctx.bias_dtype)


def _cast(g: Any, dtype: Any) -> Any:
    return g if g is None or g.dtype == dtype else g.astype(dtype)


def _bn_samples(rng: Any) -> list:
    n = rng.normal

    def stats(c: int) -> tuple:
        return Tensor._make(n(size=(c,)) * 0.1), Tensor._make(rng.uniform(0.5, 2.0, (c,)))

    rm, rv = stats(3)
    rm2, rv2 = stats(3)
    return [
        sample(n(size=(4, 3)), None, None, n(size=(3,)), n(size=(3,)), note="(N, C) batch statistics"),
        sample(n(size=(2, 3, 2, 2)), rm, rv, n(size=(3,)), n(size=(3,)), note="(N, C, H, W) updating running"),
        sample(n(size=(5, 3)), None, None, note="no affine"),
        sample(n(size=(4, 3)), rm2, rv2, n(size=(3,)), n(size=(3,)), training=False, note="eval: running stats"),
    ]


@register("batch_norm", samples=_bn_samples)
def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over every axis but the channel axis 1.

    In training the batch mean and biased variance normalise ``x``, and the
    running statistics (if given) are updated in place with PyTorch's rule
    ``running = (1 - momentum) * running + momentum * batch`` (unbiased variance).
    In evaluation the running statistics normalise ``x``.  float16 inputs keep
    their statistics in float32.

    Args:
        x: ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)``, floating.
        running_mean, running_var: ``(C,)`` floating tensors, or None (training only).
        weight, bias: ``(C,)`` affine parameters in ``x``'s dtype (float32 allowed for float16 x), or None.
        training: use batch statistics (and update the running ones).
        momentum: the running-average factor.
        eps: added to the variance.

    Returns:
        ``x``'s shape and dtype. Backward: ``gx = inv_std (gxhat - mean(gxhat) - xhat mean(gxhat xhat))``
        in training, with ``gxhat = gy w``; ``gw = sum(gy xhat)``, ``gb = sum(gy)``.

    Raises:
        ShapeError: ``x`` has fewer than 2 axes, or a ``(C,)`` argument has another shape.
        DTypeError: dtypes do not fit.
        ValueError: training with one value per channel, or evaluation without running statistics.
    """
    op = "batch_norm"
    _check_tensor(op, "the input", x)
    require_floating(op, x)
    if x.ndim < 2:
        raise ShapeError(f"{op}: expected input (N, C) or (N, C, H, W), got {tuple(x.shape)}")
    C = x.shape[1]
    param_dtypes = (x.dtype, numpy.dtype(numpy.float32)) if x.dtype == numpy.float16 else (x.dtype,)
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is None:
            continue
        _check_tensor(op, name, t)
        if tuple(t.shape) != (C,):
            raise ShapeError(f"{op}: expected {name} of shape ({C},) for input {tuple(x.shape)}, got {tuple(t.shape)}")
        if t.dtype.kind != "f" or (name in ("weight", "bias") and t.dtype not in param_dtypes):
            want = " or ".join(str(d) for d in param_dtypes) if name in ("weight", "bias") else "a floating dtype"
            raise DTypeError(f"{op}: expected {name} of dtype {want}, got {t.dtype}")
        _check_same_device(op, x, name, t)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: expected both running_mean and running_var, or neither")
    if training:
        if x.numel() // max(C, 1) <= 1:
            raise ValueError(
                f"{op}: expected more than 1 value per channel when training, got input shape {tuple(x.shape)}"
            )
    elif running_mean is None:
        raise ValueError(f"{op}: evaluation (training=False) needs running_mean and running_var, got None")
    if not isinstance(momentum, numbers.Real) or not isinstance(eps, numbers.Real) or eps < 0:
        raise ValueError(f"{op}: expected real momentum and eps >= 0, got momentum={momentum!r}, eps={eps!r}")
    y = BatchNormalization.apply(
        x, weight, bias,
        running_mean=None if running_mean is None else running_mean.data,
        running_var=None if running_var is None else running_var.data,
        training=bool(training), momentum=float(momentum), eps=float(eps),
    )
    if training and running_mean is not None:
        running_mean._bump_version()
        running_var._bump_version()
    return y
