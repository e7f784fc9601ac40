"""2-D convolution via im2col; the public 2-D ``im2col``/``col2im`` ops are in ``ops/im2col.py``.

``conv2d`` unfolds the input into columns ``(N, C, KH, KW, OH, OW)`` and runs one
batched GEMM per image with ``W`` reshaped to ``(OC, C*KH*KW)`` (the book's ch. 7
trick).  Its node keeps only ``x`` and ``W``: ``gW`` recomputes the columns, and
``gx`` folds the weight-transposed product back with ``col2im``.  Large batches
run in chunks whose column workspace fits ``COL_BUDGET_BYTES``, each cut into
slices for the backend's batch-split workers (``ember.backends.cpu.batch_split``).

The three linear maps are each other's adjoints, so each backward is written in
terms of the other two Functions; under ``create_graph=True`` they are applied
as Functions on Tensors, which makes double backward of conv2d exact.  Kernels
come from ``backend.conv``; a backend whose kernels offer ``conv2d_forward`` /
``conv2d_backward`` (CUDA, Numba) runs conv2d's own forward and first-order
backward through them instead (CUDA: 2-D GEMMs; Numba: compiled batch slices).
Why these layouts and not others (with timings): ``docs/engineering/conv.md``.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function, autocast_active
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends import geometry
from ember.backends.cpu.batch_split import map_slices, split_slices
from ember.errors import DTypeError, ShapeError

# Column workspace per batch chunk (one chunk always holds at least one sample).
COL_BUDGET_BYTES = 256 << 20
# Fewest column elements one thread's slice of the batch holds (smaller work runs inline).
MIN_SLICE_ELEMENTS = 1 << 16

# Non-default options (dilation, groups, string padding) run a general path that
# ``ops/conv_extra.py`` installs here when imported, so this module never imports it.
GENERAL_PATHS: dict = {}


def kernels(backend: Any) -> Any:
    """The im2col/col2im kernel module of ``backend``."""
    return backend.conv


def _run(ctx: Function, fn: type, *args: Any, **kwargs: Any) -> Any:
    """``fn`` on Tensors under ``create_graph`` (recorded, differentiable), else on arrays directly."""
    if ctx.create_graph:
        return fn.apply(*args, **kwargs)
    return fn.compute(ctx.backend, *args, **kwargs)


def _slices(k: Any, x_shape: tuple, kh: int, kw: int, itemsize: int, stride: tuple, padding: tuple) -> tuple:
    """``(slices, workers)``: the batch cut into memory-budget chunks, then into slices for the workers."""
    chunks = k.im2col_batch_chunks(x_shape, kh, kw, itemsize, COL_BUDGET_BYTES, stride=stride, padding=padding)
    workers = k.batch_workers()
    if workers > 1:
        oh, ow = geometry.window_geometry(x_shape, kh, kw, stride, padding, "conv2d")[4:]
        per_item = x_shape[1] * kh * kw * oh * ow
        chunks = split_slices(chunks, workers, min_items=-(-MIN_SLICE_ELEMENTS // max(per_item, 1)))
    return chunks, workers


# --------------------------------------------------------------------- conv2d


class Convolution2d(Function):
    """``y[n, o] = sum_{c,i,j} W[o, c, i, j] x_pad[n, c, oh*sh + i, ow*sw + j] + b[o]``.

    ``x: (N, C, H, W)``, ``W: (OC, C, KH, KW)``, ``b: (OC,)`` or None, one floating
    dtype; ``y: (N, OC, OH, OW)``.  Backward: ``gx = conv_transpose(gy, W)``
    (col2im of ``W^T gy``), ``gW = gy @ col(x)^T`` (recomputed col),
    ``gb = gy.sum((0, 2, 3))``.
    """

    @staticmethod
    def compute(backend: Any, x: Any, W: Any, b: Any = None, *, stride: tuple, padding: tuple) -> Any:
        """The convolution on arrays (im2col + one batched GEMM per slice of the batch)."""
        xp, k = backend.xp, kernels(backend)
        n, c = x.shape[:2]
        oc, _, kh, kw = W.shape
        oh, ow = geometry.window_geometry(x.shape, kh, kw, stride, padding, "conv2d")[4:]
        W2 = W.reshape(oc, c * kh * kw)
        y = xp.empty((n, oc, oh, ow), dtype=x.dtype)

        def part(s: slice) -> None:
            col = k.im2col(x[s], kh, kw, stride, padding, xp=xp)
            m = col.shape[0]
            # (OC, K) @ (m, K, OH*OW): batched GEMM, written straight into y (no transpose copy).
            xp.matmul(W2, col.reshape(m, c * kh * kw, oh * ow), out=y[s].reshape(m, oc, oh * ow))
            if b is not None:  # while the slice is still in cache
                y[s] += b.reshape(1, oc, 1, 1)

        map_slices(part, *_slices(k, x.shape, kh, kw, x.dtype.itemsize, stride, padding))
        return y

    @staticmethod
    def forward(ctx: Function, x: Any, W: Any, b: Any = None, *, stride: tuple, padding: tuple) -> Any:
        ctx.save_for_backward(x, W)
        ctx.stride, ctx.padding = stride, padding
        gemm_2d = _whole_conv_kernel(kernels(ctx.backend), "conv2d_forward", x, W, b)
        if gemm_2d is not None:  # CUDA: one 2-D GEMM + epilogue; Numba: compiled batch slices
            return gemm_2d(x, W, b, stride, padding, xp=ctx.backend.xp)
        return Convolution2d.compute(ctx.backend, x, W, b, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        x, W = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gemm_2d = _whole_conv_kernel(kernels(ctx.backend), "conv2d_backward", x, W)
        if gemm_2d is not None and not ctx.create_graph:  # CUDA / Numba, first order
            return gemm_2d(x, W, gy, ctx.stride, ctx.padding, tuple(needs), xp=ctx.backend.xp)
        geom = {"stride": ctx.stride, "padding": ctx.padding}
        gx = gW = gb = None
        if needs[0]:
            gx = _run(ctx, TransposedConvolution2d, gy, W, x_shape=tuple(x.shape), **geom)
        if needs[1]:
            gW = _run(ctx, Convolution2dWeightGrad, x, gy, kernel_size=tuple(W.shape[2:]), **geom)
        if len(needs) > 2 and needs[2]:
            gb = _channel_sums(ctx.xp, gy)
        return gx, gW, gb


def _whole_conv_kernel(k: Any, name: str, *arrays: Any) -> Any:
    """``k.<name>`` when the kernel module offers whole-conv entry points that take ``arrays``, else None.

    A module may declare ``conv2d_supported(x, W, b=None)`` (the Numba one takes
    float32/float64 NumPy arrays only); without it every input is taken (CUDA).
    """
    fn = getattr(k, name, None)
    if fn is None:
        return None
    supported = getattr(k, "conv2d_supported", None)
    return fn if supported is None or supported(*arrays) else None


class TransposedConvolution2d(Function):
    """``gx = col2im(W^T @ gy)``: the adjoint of conv2d in ``x`` (a transposed convolution).

    ``gy: (N, OC, OH, OW)``, ``W: (OC, C, KH, KW)``; output ``x_shape = (N, C, H, W)``.
    Backward: ``g_gy = conv2d(g, W)``, ``g_W = conv2d_grad_weight(g, gy)``.
    """

    @staticmethod
    def compute(backend: Any, gy: Any, W: Any, *, x_shape: tuple, stride: tuple, padding: tuple) -> Any:
        """The transposed convolution on arrays (batched GEMM + col2im per chunk)."""
        xp, k = backend.xp, kernels(backend)
        _, c, h, w = x_shape
        oc, _, kh, kw = W.shape
        oh, ow = gy.shape[2:]
        W2t = W.reshape(oc, c * kh * kw).T
        gx = xp.empty(x_shape, dtype=gy.dtype)

        def part(s: slice) -> None:
            m = gy[s].shape[0]
            gcol = xp.matmul(W2t, gy[s].reshape(m, oc, oh * ow)).reshape(m, c, kh, kw, oh, ow)
            k.col2im(gcol, (m, c, h, w), kh, kw, stride, padding, xp=xp, out=gx[s])

        map_slices(part, *_slices(k, x_shape, kh, kw, gy.dtype.itemsize, stride, padding))
        return gx

    @staticmethod
    def forward(ctx: Function, gy: Any, W: Any, *, x_shape: tuple, stride: tuple, padding: tuple) -> Any:
        ctx.save_for_backward(gy, W)
        ctx.stride, ctx.padding = stride, padding
        return TransposedConvolution2d.compute(ctx.backend, gy, W, x_shape=x_shape, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx: Function, g: Any) -> tuple:
        gy, W = ctx.saved_tensors
        geom = {"stride": ctx.stride, "padding": ctx.padding}
        g_gy = g_W = None
        if ctx.needs_input_grad[0]:
            g_gy = _run(ctx, Convolution2d, g, W, None, **geom)
        if ctx.needs_input_grad[1]:
            g_W = _run(ctx, Convolution2dWeightGrad, g, gy, kernel_size=tuple(W.shape[2:]), **geom)
        return g_gy, g_W


class Convolution2dWeightGrad(Function):
    """``gW = sum_n gy[n] @ col(x)[n]^T``: the adjoint of conv2d in ``W``.

    ``x: (N, C, H, W)``, ``gy: (N, OC, OH, OW)``; output ``(OC, C, KH, KW)``.
    Backward: ``g_x = conv_transpose(gy, g)``, ``g_gy = conv2d(x, g)``.
    """

    @staticmethod
    def compute(backend: Any, x: Any, gy: Any, *, kernel_size: tuple, stride: tuple, padding: tuple) -> Any:
        """The weight gradient on arrays (recomputed im2col + batched GEMM per slice of the batch)."""
        xp, k = backend.xp, kernels(backend)
        c = x.shape[1]
        oc, oh, ow = gy.shape[1:]
        kh, kw = kernel_size
        gW = xp.zeros((oc, c * kh * kw), dtype=x.dtype)

        def part(s: slice) -> Any:
            cs = k.im2col(x[s], kh, kw, stride, padding, xp=xp)
            m = cs.shape[0]
            cols = cs.reshape(m, c * kh * kw, oh * ow)
            return xp.matmul(gy[s].reshape(m, oc, oh * ow), cols.transpose(0, 2, 1)).sum(axis=0)

        # One partial per slice, summed in slice order: the same result on every run.
        for partial in map_slices(part, *_slices(k, x.shape, kh, kw, x.dtype.itemsize, stride, padding)):
            gW += partial
        return gW.reshape(oc, c, kh, kw)

    @staticmethod
    def forward(ctx: Function, x: Any, gy: Any, *, kernel_size: tuple, stride: tuple, padding: tuple) -> Any:
        ctx.save_for_backward(x, gy)
        ctx.stride, ctx.padding = stride, padding
        return Convolution2dWeightGrad.compute(
            ctx.backend, x, gy, kernel_size=kernel_size, stride=stride, padding=padding
        )

    @staticmethod
    def backward(ctx: Function, g: Any) -> tuple:
        x, gy = ctx.saved_tensors
        geom = {"stride": ctx.stride, "padding": ctx.padding}
        g_x = g_gy = None
        if ctx.needs_input_grad[0]:
            g_x = _run(ctx, TransposedConvolution2d, gy, g, x_shape=tuple(x.shape), **geom)
        if ctx.needs_input_grad[1]:
            g_gy = _run(ctx, Convolution2d, x, g, None, **geom)
        return g_x, g_gy


def _channel_sums(xp: Any, gy: Any) -> Any:
    """``gy.sum((0, 2, 3))``: the bias gradient.

    On NumPy float32/float64 it is one BLAS product with a ones vector and a
    sum over the batch: 0.06 ms instead of 0.37 ms for ``(100, 16, 28, 28)``
    (NumPy's reduction over the non-adjacent axes 0, 2, 3 is not vectorised).
    """
    if type(gy) is numpy.ndarray and gy.dtype in (numpy.float32, numpy.float64) and gy.ndim == 4:
        n, c = gy.shape[:2]
        ones = numpy.ones(gy.shape[2] * gy.shape[3], dtype=gy.dtype)
        return (numpy.ascontiguousarray(gy).reshape(n * c, -1) @ ones).reshape(n, c).sum(axis=0)
    return xp.sum(gy, axis=(0, 2, 3))


def _check_tensor(op: str, name: str, t: Any) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")
    if t.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating {name}, got dtype {t.dtype}; convert with .float()")


def _check_nchw(op: str, x: Tensor) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{op}: expected x of shape (N, C, H, W), got shape {tuple(x.shape)}")


def _check_window(op: str, x_shape: tuple, kernel: tuple, stride: Any, padding: Any, k: Any) -> tuple:
    """Normalise stride/padding to pairs and check the kernel fits the padded input."""
    sh, sw = k.pair(stride, "stride", op=op)
    ph, pw = k.pair(padding, "padding", op=op)
    h, w = x_shape[2:]
    if kernel[0] > h + 2 * ph or kernel[1] > w + 2 * pw:
        raise ShapeError(
            f"{op}: expected a kernel no larger than the padded input, got kernel {tuple(kernel)} "
            f"for padded input {(h + 2 * ph, w + 2 * pw)} (x of shape {tuple(x_shape)}, padding {(ph, pw)})"
        )
    if h < 1 or w < 1:
        raise ShapeError(f"{op}: expected a non-empty image, got x of shape {tuple(x_shape)}")
    return (sh, sw), (ph, pw)


def _conv2d_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(2, 2, 5, 4)), n(size=(3, 2, 3, 2)), n(size=(3,)), note="rect kernel, stride 1"),
        sample(n(size=(1, 2, 5, 5)), n(size=(2, 2, 3, 3)), n(size=(2,)), stride=2, padding=1,
               note="stride 2, padding 1"),
        sample(n(size=(2, 1, 4, 5)), n(size=(2, 1, 2, 3)), None, stride=(2, 1), padding=(1, 0),
               note="no bias, pair stride and padding"),
        sample(n(size=(1, 3, 3, 3)), n(size=(2, 3, 3, 3)), n(size=(2,)), note="kernel equals input"),
    ]


@register("conv2d", samples=_conv2d_samples)
def conv2d(x: Tensor, W: Tensor, b: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of an NCHW batch with a filter bank (PyTorch's ``conv2d``).

    Args:
        x: ``(N, C, H, W)``, floating.
        W: ``(OC, C, KH, KW)``, same dtype as ``x``.
        b: ``(OC,)`` or None.
        stride: ``s`` or ``(sh, sw)``, each >= 1.
        padding: ``p`` or ``(ph, pw)`` zeros on each side, each >= 0; or ``"same"`` / ``"valid"``.
        dilation: ``d`` or ``(dh, dw)``: spacing of the filter taps.
        groups: channel groups (``W: (OC, C/groups, KH, KW)``).

    Returns:
        ``(N, OC, OH, OW)`` with ``OH = (H + 2*ph - dh*(KH-1) - 1) // sh + 1`` (likewise ``OW``).
        Dilation, groups and string padding run ``conv2d_general`` of ``ops/conv_extra.py``.

    Raises:
        ShapeError: wrong ranks, channel or bias mismatch, kernel larger than the padded input.
        DTypeError: non-floating or mixed dtypes.
        ValueError: stride < 1 or padding < 0 (TypeError if not ints).
    """
    op = "conv2d"
    if groups != 1 or dilation not in (1, (1, 1)) or isinstance(padding, str):
        return GENERAL_PATHS["conv2d"](x, W, b, stride, padding, dilation, groups)
    _check_tensor(op, "x", x)
    _check_tensor(op, "W", W)
    _check_nchw(op, x)
    if W.ndim != 4:
        raise ShapeError(f"{op}: expected W of shape (OC, C, KH, KW), got shape {tuple(W.shape)}")
    if b is not None:
        _check_tensor(op, "b", b)
    dts = [("x", x), ("W", W)] + ([("b", b)] if b is not None else [])
    if len({t.dtype for _, t in dts}) > 1 and not autocast_active():  # autocast casts all to float16
        got = ", ".join(f"{name} {t.dtype}" for name, t in dts)
        raise DTypeError(f"{op}: expected x, W and b of one dtype, got {got}; convert one with .to(dtype)")
    xs, ws = tuple(x.shape), tuple(W.shape)
    if xs[1] != ws[1]:
        raise ShapeError(
            f"{op}: expected x with {ws[1]} channels to match W of shape {ws}, "
            f"got x of shape {xs} ({xs[1]} channels)"
        )
    if b is not None and tuple(b.shape) != (ws[0],):
        raise ShapeError(f"{op}: expected b of shape ({ws[0]},) for W of shape {ws}, got shape {tuple(b.shape)}")
    stride, padding = _check_window(op, xs, ws[2:], stride, padding, geometry)
    return Convolution2d.apply(x, W, b, stride=stride, padding=padding)
