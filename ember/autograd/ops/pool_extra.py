"""PyTorch's pooling options beyond the kernels' geometry: ``ceil_mode``, ``dilation``,
``return_indices`` (max) and ``count_include_pad`` / ``divisor_override`` (average).

The pooling kernels of ``ember.backends`` take symmetric padding and floor-mode windows only, so
these options run a general path built from differentiable ops: the input is padded (``-inf``
for max, zeros for average) far enough for every window, the ``KH*KW`` window taps are strided
slices stacked on a last axis, and the result is

- max: ``sum(taps * onehot(argmax))``: the gradient goes to the first maximum in row-major
  window order, PyTorch's choice; ``return_indices`` gives that element's flat ``h*W + w``;
- average: ``sum(taps) / divisor``, the divisor a constant per output cell (PyTorch's rule).

It holds ``KH*KW`` copies of the output, so the default options keep the kernels' fast path.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.ops.conv import _check_nchw, _check_tensor
from ember.autograd.ops.padding import on_device, pad
from ember.autograd.ops.select import where
from ember.autograd.ops.shape import stack
from ember.autograd.tensor import Tensor
from ember.backends import geometry as _k
from ember.errors import ShapeError


def _out_size(op: str, n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length; in ceil mode the last window must start inside the input."""
    span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        raise ShapeError(f"{op}: the dilated kernel {d * (k - 1) + 1} is larger than the padded input {n + 2 * p}")
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _geometry(op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool) -> tuple:
    _check_tensor(op, "x", x)
    _check_nchw(op, x)
    kernel = _k.pair(kernel_size, "kernel_size", op=op)
    stride = kernel if stride is None or stride == () else _k.pair(stride, "stride", op=op)
    padding = _k.pair(padding, "padding", op=op)
    dilation = _k.pair(dilation, "dilation", op=op)
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: expected kernel, stride and dilation >= 1, got {kernel}, {stride}, {dilation}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: expected padding at most half the kernel size {kernel}, got padding {padding}")
    h, w = x.shape[2:]
    out = tuple(_out_size(op, n, k, s, p, d, ceil_mode)
                for n, k, s, p, d in zip((h, w), kernel, stride, padding, dilation))
    return kernel, stride, padding, dilation, out


def _taps(x: Tensor, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, out: tuple,
          fill: float) -> Tensor:
    """``(N, C, OH, OW, KH*KW)``: each window's elements, row-major, from ``x`` padded with ``fill``."""
    h, w = x.shape[2:]
    need = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(out, stride, dilation, kernel)]
    extra = [max(nd - n - p, p) for nd, n, p in zip(need, (h, w), padding)]
    xp_ = pad(x, (padding[1], extra[1], padding[0], extra[0]), value=fill)
    taps = []
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            r, c = i * dilation[0], j * dilation[1]
            taps.append(xp_[:, :, r:r + (out[0] - 1) * stride[0] + 1:stride[0],
                            c:c + (out[1] - 1) * stride[1] + 1:stride[1]])
    return stack(taps, axis=-1)


def max_pool2d_general(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                       ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """``max_pool2d`` with ``dilation``, ``ceil_mode`` and ``return_indices``; see ``max_pool2d``."""
    op = "max_pool2d"
    kernel, stride, padding, dilation, out = _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode)
    taps = _taps(x, kernel, stride, padding, dilation, out, -numpy.inf)
    # The first maximum of each window (numpy/cupy argmax also return the first NaN, as PyTorch).
    best = taps.data.argmax(axis=-1)
    onehot = best[..., None] == on_device(x, numpy.arange(kernel[0] * kernel[1]))
    # where, not a product with the one-hot: the -inf padding times 0 would be NaN
    picked = where(onehot, taps, 0.0).sum(axis=-1)
    if not return_indices:
        return picked
    ki, kj = best // kernel[1], best % kernel[1]
    oh = on_device(x, numpy.arange(out[0]).reshape(1, 1, -1, 1))
    ow = on_device(x, numpy.arange(out[1]).reshape(1, 1, 1, -1))
    rows = oh * stride[0] - padding[0] + ki * dilation[0]
    cols = ow * stride[1] - padding[1] + kj * dilation[1]
    return picked, Tensor._make((rows * x.shape[3] + cols).astype(numpy.int64))


def avg_pool2d_general(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """``avg_pool2d`` with ``ceil_mode``, ``count_include_pad`` and ``divisor_override``; see ``avg_pool2d``."""
    op = "avg_pool2d"
    kernel, stride, padding, _, out = _geometry(op, x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override < 1):
        raise ValueError(f"{op}: expected divisor_override to be a positive int, got {divisor_override!r}")
    taps = _taps(x, kernel, stride, padding, (1, 1), out, 0.0)
    if divisor_override is not None:
        return taps.sum(axis=-1) * (1.0 / divisor_override)
    counts = []
    for o, n, k, s, p in zip(out, x.shape[2:], kernel, stride, padding):
        start = numpy.arange(o) * s - p
        end = numpy.minimum(start + k, n + p)  # windows may overhang the padding in ceil mode
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(numpy.minimum(end, n) - numpy.maximum(start, 0))
    divisor = numpy.outer(counts[0], counts[1]).astype(x.dtype)
    return taps.sum(axis=-1) / Tensor._make(on_device(x, divisor))
