"""Array-level reference kernels of the fused nn ops (no autograd): the readable spec.

Ops in ``ember.autograd.ops`` call these as ``backend.nn.<name>``;
``ember.backends.numba.nn`` and ``ember.backends.cupy.nn`` provide the same functions with the
same signatures, compiled, and must agree with these to float tolerance.  Every
function takes the array module as the ``xp`` keyword (``numpy`` or ``cupy``)
and uses only ``xp.`` functions.

Dtype rule (as in the ops): float16 inputs compute in float32 (``compute_dtype``);
statistics, losses and probabilities come back in the compute dtype and the op
casts its outputs.

Dropout masks come from ``ember.backends.reference.philox``: a counter-based
Philox4x32-10 stream whose state ``[seed, offset]`` lives on the mask's device,
so every backend (the CUDA kernel included) builds the same mask from one state.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends import device_gemm
from ember.backends.reference.conv import batch_workers  # noqa: F401  (the reference runs inline: 1)


def layer_matmul(a: Any, b: Any, workers: int) -> Any:
    """``a @ b`` for a linear layer's 2-D product, on the calling thread (``workers`` is ignored).

    Device arrays go through ``device_gemm`` (ember's cuBLAS handle while a CUDA graph captures).
    """
    return device_gemm.matmul(a, b)


def linear_forward(x: Any, w_t: Any, b: Any, relu: bool, workers: int, *, xp: Any = numpy) -> Any:
    """A linear layer's forward for a 2-D ``x``: ``x @ w_t + b`` (``b`` may be None), then ``max(., 0)``
    when ``relu`` (NaN stays NaN)."""
    return linear_forward_with(relu_forward, x, w_t, b, relu, workers, xp)


def linear_grad_output(gy: Any, y: Any, need_bias: bool, workers: int, *, xp: Any = numpy) -> tuple:
    """``(gz, gb)`` for a linear layer's 2-D output gradient ``gy``: ``gz = gy * (y > 0)`` when the layer was
    rectified (its output ``y`` given; else ``gz`` is ``gy``) and ``gb = gz.sum(axis=0)`` when ``need_bias``."""
    return linear_grad_output_with(relu_backward, gy, y, need_bias, xp)


def linear_forward_with(relu_kernel: Any, x: Any, w_t: Any, b: Any, relu: bool, workers: int, xp: Any) -> Any:
    """``linear_forward`` as the composition, with a backend's own ReLU kernel (CuPy's is one launch)."""
    y = layer_matmul(x, w_t, workers)
    if b is not None:
        y += b
    return relu_kernel(y, xp=xp) if relu else y


def linear_grad_output_with(relu_grad_kernel: Any, gy: Any, y: Any, need_bias: bool, xp: Any) -> tuple:
    """``linear_grad_output`` as the composition, with a backend's own ReLU-gradient kernel."""
    gz = gy if y is None else relu_grad_kernel(y, gy, xp=xp)
    return gz, (xp.sum(gz, axis=0) if need_bias else None)


def compute_dtype(dtype: Any) -> numpy.dtype:
    """float32 for float16 data, else the dtype itself (mirrors ``ops.activation.compute_dtype``)."""
    dtype = numpy.dtype(dtype)
    return numpy.dtype(numpy.float32) if dtype == numpy.float16 else dtype


def _upcast(a: Any) -> Any:
    return a.astype(numpy.float32) if a.dtype == numpy.float16 else a


# ------------------------------------------------------- softmax cross-entropy
def softmax_cross_entropy_forward(x: Any, t: Any, *, xp: Any = numpy) -> tuple:
    """Per-row softmax cross-entropy of ``(N, C)`` logits against class indices.

    ``loss[n] = log(sum_c exp(z[n, c])) - z[n, t[n]]`` with ``z = x - max_c x``:
    finite for logits of +-1e4, because the largest exponent is 0.

    Args:
        x: ``(N, C)`` logits, floating.
        t: ``(N,)`` integer class indices in ``[0, C)`` (the op validates them).
        xp: array module of ``x``.

    Returns:
        ``(loss, p, shift)``: ``(N,)`` losses, ``(N, C)`` softmax and the ``(N, 1)``
        row maxima, all in ``compute_dtype(x.dtype)``.
    """
    xc = _upcast(x)
    shift = xc.max(axis=1, keepdims=True)
    z = xc - shift
    e = xp.exp(z)
    s = e.sum(axis=1, keepdims=True)
    p = e / s
    zt = xp.take_along_axis(z, xp.expand_dims(t, 1), axis=1)
    loss = (xp.log(s) - zt).reshape(x.shape[0])
    return loss, p, shift


def softmax_cross_entropy_backward(p: Any, t: Any, g: Any, *, xp: Any = numpy) -> Any:
    """Gradient of the per-row losses: ``gx = (p - onehot(t)) * g``.

    Args:
        p: ``(N, C)`` softmax from the forward.
        t: ``(N,)`` integer class indices.
        g: upstream gradient of each row's loss: a scalar (``"mean"``/``"sum"``
            reductions, already divided by ``N`` for the mean) or an ``(N,)`` array.
        xp: array module of ``p``.

    Returns:
        ``(N, C)`` in ``p``'s dtype.
    """
    classes = xp.arange(p.shape[1]).reshape(1, p.shape[1])
    onehot = (xp.expand_dims(t, 1) == classes).astype(p.dtype)
    g = xp.asarray(g, dtype=p.dtype)
    if g.ndim == 1:
        g = g.reshape(-1, 1)
    return (p - onehot) * g


def class_index_range(t: Any, ignore_index: int, *, xp: Any = numpy) -> tuple:
    """``(lo, hi, has_ignored)`` of non-empty integer class indices ``t``: their extremes and whether one
    equals ``ignore_index``, as Python values (what ``cross_entropy`` checks on the CPU)."""
    return int(t.min()), int(t.max()), bool((t == ignore_index).any())


# --------------------------------------------------------- activation forward/backward
def relu_forward(x: Any, *, xp: Any = numpy) -> Any:
    """``y = max(x, 0)``; NaN stays NaN (as in PyTorch)."""
    return xp.maximum(x, 0)


def relu_backward(y: Any, gy: Any, *, xp: Any = numpy) -> Any:
    """``gx = gy where y > 0 else 0`` from the ReLU output ``y`` (subgradient 0 at 0)."""
    return xp.where(y > 0, gy, 0)


def sigmoid_backward(y: Any, gy: Any, *, xp: Any = numpy) -> Any:
    """``gx = gy * y * (1 - y)`` from the sigmoid output ``y``."""
    return gy * y * (1 - y)


def tanh_backward(y: Any, gy: Any, *, xp: Any = numpy) -> Any:
    """``gx = gy * (1 - y * y)`` from the tanh output ``y``."""
    return gy * (1 - y * y)


# ------------------------------------------------------------------ batch norm
def _channel_axes(x: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The reduced axes (all but 1) and the broadcast shape ``(1, C, 1, ...)`` of a per-channel value."""
    return (0,) + tuple(range(2, x.ndim)), (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm_forward_train(x: Any, weight: Any, bias: Any, eps: float, *, xp: Any = numpy) -> tuple:
    """Normalise ``x`` with its batch statistics per channel (axis 1) and apply the affine map.

    ``y = (x - mean) * inv_std * weight + bias`` with ``mean`` and the biased
    ``var`` over every axis but 1 and ``inv_std = 1 / sqrt(var + eps)``.

    Args:
        x: ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)``, floating, more than one value per channel.
        weight, bias: ``(C,)`` or None.
        eps: added to the variance.
        xp: array module of ``x``.

    Returns:
        ``(y, mean, var, inv_std)``: ``y`` in ``x``'s dtype, the ``(C,)`` statistics in
        ``compute_dtype(x.dtype)``.
    """
    axes, bshape = _channel_axes(x)
    C = x.shape[1]
    xc = _upcast(x)
    mean = xc.mean(axis=axes, keepdims=True)
    diff = xc - mean
    var = (diff * diff).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    y = diff * inv_std
    if weight is not None:
        y *= _upcast(weight).reshape(bshape)
    if bias is not None:
        y += _upcast(bias).reshape(bshape)
    return y.astype(x.dtype, copy=False), mean.reshape(C), var.reshape(C), inv_std.reshape(C)


def batch_norm_backward(
    x: Any, gy: Any, mean: Any, inv_std: Any, weight: Any, training: bool,
    need_x: bool = True, need_w: bool = True, need_b: bool = True, *, xp: Any = numpy,
) -> tuple:
    """Gradients of batch norm given the statistics that normalised the forward.

    With ``xhat = (x - mean) * inv_std``, ``gxhat = gy * weight`` and ``m`` values per channel:
    ``gb = sum(gy)``, ``gw = sum(gy * xhat)``; in training (batch statistics)
    ``gx = inv_std * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))``, in
    evaluation (running statistics, constants) ``gx = gxhat * inv_std``.

    Args:
        x: the forward's input ``(N, C, ...)``.
        gy: upstream gradient, ``x``'s shape.
        mean, inv_std: ``(C,)`` statistics used by the forward.
        weight: ``(C,)`` or None (an implicit weight of ones).
        training: whether the forward used (and so depends on) batch statistics.
        need_x, need_w, need_b: which gradients to return (the others are None).
        xp: array module of ``x``.

    Returns:
        ``(gx, gw, gb)`` in ``compute_dtype(x.dtype)``: ``x``'s shape and ``(C,)``, or None.
    """
    axes, bshape = _channel_axes(x)
    m = x.size // x.shape[1]
    g = _upcast(gy)
    xhat = (_upcast(x) - mean.reshape(bshape)) * inv_std.reshape(bshape)
    gb = xp.sum(g, axis=axes) if need_b else None
    gw = xp.sum(g * xhat, axis=axes) if need_w else None
    gx = None
    if need_x:
        gxhat = g * _upcast(weight).reshape(bshape) if weight is not None else g
        if training:
            mean_g = xp.sum(gxhat, axis=axes, keepdims=True) * (1.0 / m)
            mean_gx = xp.sum(gxhat * xhat, axis=axes, keepdims=True) * (1.0 / m)
            gx = (gxhat - mean_g - xhat * mean_gx) * inv_std.reshape(bshape)
        else:
            gx = gxhat * inv_std.reshape(bshape)
    return gx, gw, gb


# --------------------------------------------------------------------- dropout
# The mask comes from the Philox4x32-10 stream (``philox``): the same bits on every backend.
from ember.backends.reference.philox import dropout_mask, dropout_scale, dropout_threshold  # noqa: E402, F401
