"""2-D max and average pooling (NCHW), on the kernels of ``ember.backends.reference.pool``.

Max pooling keeps only the window-local ``argmax`` (an int64 constant), never the
input.  Its subgradient routes each output gradient to one element: the first
maximum of its window in row-major order (ties go to the earliest, padding is
``-inf`` and never wins).  Average pooling counts the zero padding in the
divisor (PyTorch's ``count_include_pad=True``), so every window divides by
``KH*KW``.

Both backwards are linear maps whose adjoints are Functions here too (max:
scatter to the argmax <-> gather from the argmax; average: spread <-> average),
so under ``create_graph=True`` the backward is recorded and double backward is
exact (the ``WindowMap`` frame).  Kernels are looked up through ``kernels(backend)`` so a backend can
replace the NumPy reference.
"""

from __future__ import annotations

from typing import Any

from ember.autograd.function import Function
from ember.autograd.ops.conv import _check_nchw, _check_tensor, _check_window
from ember.autograd.ops.window_map import WindowMap
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends import geometry


def kernels(backend: Any) -> Any:
    """The pooling kernel module of ``backend``."""
    return backend.pool


# ---------------------------------------------------------------- max pooling


class MaxPooling2d(WindowMap):
    """``y[n, c, oh, ow] = max`` of the ``KH x KW`` window at ``(oh*sh - ph, ow*sw - pw)``.

    ``x: (N, C, H, W)`` floating -> ``(N, C, OH, OW)``.  Backward:
    ``gx[argmax(window)] += gy`` (first maximum on ties).
    """

    saved_keys = ("argmax",)

    @staticmethod
    def forward(ctx: Function, x: Any, *, kernel_size: tuple, stride: tuple, padding: tuple) -> Any:
        kh, kw = kernel_size
        y, argmax = kernels(ctx.backend).max_pool2d_forward(x, kh, kw, stride, padding, xp=ctx.backend.xp)
        ctx.save_for_backward(argmax)
        ctx.geometry = {"x_shape": tuple(x.shape), "kernel_size": kernel_size, "stride": stride, "padding": padding}
        return y


class MaxPooling2dGrad(WindowMap):
    """Scatter ``gy: (N, C, OH, OW)`` to each window's argmax -> ``(N, C, H, W)``.

    Backward (its adjoint): gather ``g`` at the argmax positions.
    """

    saved_keys = ("argmax",)

    @staticmethod
    def compute(backend: Any, gy: Any, *, argmax: Any, x_shape: tuple, kernel_size: tuple, stride: tuple,
                padding: tuple) -> Any:
        """The scatter on arrays."""
        kh, kw = kernel_size
        return kernels(backend).max_pool2d_backward(gy, argmax, x_shape, kh, kw, stride, padding,
                                                    xp=backend.xp)


class MaxPooling2dGather(WindowMap):
    """Read ``g: (N, C, H, W)`` at each window's argmax -> ``(N, C, OH, OW)``.

    Backward (its adjoint): scatter back to the argmax positions.
    """

    saved_keys = ("argmax",)

    @staticmethod
    def compute(backend: Any, g: Any, *, argmax: Any, x_shape: tuple, kernel_size: tuple, stride: tuple,
                padding: tuple) -> Any:
        """The gather on arrays: one strided slice per kernel offset, no ``KH*KW`` workspace."""
        xp = backend.xp
        (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
        oh, ow = argmax.shape[2:]
        if ph or pw:
            g = xp.pad(g, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        out = xp.zeros(argmax.shape, dtype=g.dtype)
        for i in range(kh):
            for j in range(kw):
                window = g[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw]
                out = xp.where(argmax == i * kw + j, window, out)
        return out


MaxPooling2d.adjoint = MaxPooling2dGrad
MaxPooling2dGrad.adjoint = MaxPooling2dGather
MaxPooling2dGather.adjoint = MaxPooling2dGrad


# ------------------------------------------------------------ average pooling


class AvgPooling2d(WindowMap):
    """``y[n, c, oh, ow] = mean`` of the zero-padded ``KH x KW`` window (padding counted).

    ``x: (N, C, H, W)`` floating -> ``(N, C, OH, OW)``.  Backward: ``gx[window] += gy / (KH*KW)``.
    """

    @staticmethod
    def compute(backend: Any, x: Any, *, x_shape: tuple, kernel_size: tuple, stride: tuple, padding: tuple) -> Any:
        """The average pooling on arrays (``x_shape`` is ``x``'s own shape)."""
        kh, kw = kernel_size
        return kernels(backend).avg_pool2d_forward(x, kh, kw, stride, padding, xp=backend.xp)


class AvgPooling2dGrad(WindowMap):
    """Spread ``gy: (N, C, OH, OW)`` evenly over each window -> ``(N, C, H, W)``.

    Backward (its adjoint): average pooling of ``g``.
    """

    @staticmethod
    def compute(backend: Any, gy: Any, *, x_shape: tuple, kernel_size: tuple, stride: tuple,
                padding: tuple) -> Any:
        """The spread on arrays."""
        kh, kw = kernel_size
        return kernels(backend).avg_pool2d_backward(gy, x_shape, kh, kw, stride, padding, xp=backend.xp)


AvgPooling2d.adjoint = AvgPooling2dGrad
AvgPooling2dGrad.adjoint = AvgPooling2d


# ----------------------------------------------------------------- functional


def _pool_args(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any) -> dict:
    """Validate a pooling call and normalise its geometry to pairs."""
    _check_tensor(op, "x", x)
    _check_nchw(op, x)
    kernel = geometry.pair(kernel_size, "kernel_size", op=op)
    stride, padding = _check_window(op, tuple(x.shape), kernel, kernel if stride is None else stride,
                                    padding, geometry)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: expected padding at most half the kernel size {kernel}, got padding {padding}"
        )
    return {"kernel_size": kernel, "stride": stride, "padding": padding}


def _pool_samples(rng: Any) -> list:
    # Distinct normal values: ties (and near-ties within eps) have probability ~0.
    n = rng.normal
    return [
        sample(n(size=(2, 2, 5, 5)), 2, stride=1, note="overlapping windows, stride 1"),
        sample(n(size=(1, 2, 5, 6)), 3, stride=2, padding=1, note="stride 2, padding 1"),
        sample(n(size=(1, 1, 5, 7)), (2, 3), stride=(1, 2), note="rect kernel, pair stride"),
        sample(n(size=(1, 2, 4, 4)), 2, note="default stride = kernel"),
    ]


@register("max_pool2d", samples=_pool_samples)
def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """Max over ``KH x KW`` windows (PyTorch's ``max_pool2d``; padding is ``-inf``).

    Args:
        x: ``(N, C, H, W)``, floating.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``; defaults to ``kernel_size``.
        padding: ``p`` or ``(ph, pw)``, at most half the kernel.
        dilation: ``d`` or ``(dh, dw)``: spacing of the window taps.
        ceil_mode: round the output size up (a last, partial window that starts inside the input).
        return_indices: also return the int64 flat index ``h*W + w`` of each maximum.

    Returns:
        ``(N, C, OH, OW)``, ``OH = (H + 2*ph - dh*(KH-1) - 1) // sh + 1``; with ``return_indices``,
        ``(values, indices)``. Non-default dilation/ceil_mode/return_indices run
        ``max_pool2d_general`` of ``ops/pool_extra.py``.

    Raises:
        ShapeError: ``x`` not 4-D, or the kernel is larger than the padded input.
        ValueError: stride < 1, padding < 0 or more than half the kernel.
    """
    if ceil_mode or return_indices or dilation not in (1, (1, 1)):
        from ember.autograd.ops.pool_extra import max_pool2d_general

        return max_pool2d_general(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    if isinstance(x, Tensor) and x.dtype.kind in "iu":  # as PyTorch: integer images pool exactly, no graph
        exact = Tensor._make(x.data.astype("float64"))
        return Tensor._make(max_pool2d(exact, kernel_size, stride, padding).data.astype(x.dtype))
    return MaxPooling2d.apply(x, **_pool_args("max_pool2d", x, kernel_size, stride, padding))


@register("avg_pool2d", samples=_pool_samples)
def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over ``KH x KW`` windows, zero padding counted (PyTorch's ``count_include_pad=True``).

    Args:
        x: ``(N, C, H, W)``, floating.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``; defaults to ``kernel_size``.
        padding: ``p`` or ``(ph, pw)``, at most half the kernel.
        ceil_mode: round the output size up (a last, partial window that starts inside the input).
        count_include_pad: count the zero padding in the divisor (else only input elements).
        divisor_override: divide every window sum by this instead.

    Returns:
        ``(N, C, OH, OW)``. Non-default options run ``avg_pool2d_general`` of ``ops/pool_extra.py``.

    Raises:
        ShapeError: ``x`` not 4-D, or the kernel is larger than the padded input.
        ValueError: stride < 1, padding < 0 or more than half the kernel.
    """
    if ceil_mode or not count_include_pad or divisor_override is not None:
        from ember.autograd.ops.pool_extra import avg_pool2d_general

        return avg_pool2d_general(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    return AvgPooling2d.apply(x, **_pool_args("avg_pool2d", x, kernel_size, stride, padding))
