"""The book's 2-D ``im2col``/``col2im`` as differentiable ops (each the other's adjoint).

``im2col`` flattens every ``KH x KW`` window into a row of ``(N*OH*OW, C*KH*KW)``;
``col2im`` sums rows back into the image.  They share the kernel lookup and the
window checks of ``ops/conv.py``, which uses the same kernels internally.
"""

from __future__ import annotations

from typing import Any

from ember.autograd.ops.conv import _check_nchw, _check_tensor, _check_window, kernels
from ember.autograd.ops.window_map import WindowMap
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends import geometry
from ember.errors import ShapeError


class Im2col(WindowMap):
    """The book's ``im2col``: ``col[(n, oh, ow), (c, i, j)] = x_pad[n, c, oh*sh + i, ow*sw + j]``.

    ``x: (N, C, H, W)`` -> ``(N*OH*OW, C*KH*KW)``.  Backward: ``gx = col2im(gy)`` (its adjoint).
    """

    shape_key = "input_shape"

    @staticmethod
    def compute(backend: Any, x: Any, *, input_shape: tuple, kernel_size: tuple, stride: tuple,
                padding: tuple) -> Any:
        """The 2-D column matrix on arrays (``input_shape`` is ``x``'s own shape)."""
        kh, kw = kernel_size
        col = kernels(backend).im2col(x, kh, kw, stride, padding, xp=backend.xp)
        n, c, _, _, oh, ow = col.shape
        return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)


class Col2im(WindowMap):
    """The book's ``col2im``: the adjoint of ``im2col``, summing overlapping windows.

    ``col: (N*OH*OW, C*KH*KW)`` -> ``(N, C, H, W)``.  Backward: ``gcol = im2col(gy)``.
    """

    shape_key = "input_shape"

    @staticmethod
    def compute(backend: Any, col: Any, *, input_shape: tuple, kernel_size: tuple, stride: tuple,
                padding: tuple) -> Any:
        """The folded image on arrays."""
        k = kernels(backend)
        n, c, _, _ = input_shape
        kh, kw = kernel_size
        oh, ow = geometry.window_geometry(input_shape, kh, kw, stride, padding, "col2im")[4:]
        col6 = col.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
        return k.col2im(col6, input_shape, kh, kw, stride, padding, xp=backend.xp)


Im2col.adjoint = Col2im
Col2im.adjoint = Im2col


def _im2col_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(2, 2, 4, 5)), 3, 2, note="rect kernel, stride 1"),
        sample(n(size=(1, 2, 5, 4)), 3, 3, stride=2, padding=1, note="stride 2, padding 1"),
    ]


@register("im2col", samples=_im2col_samples)
def im2col(x: Tensor, kh: int, kw: int, stride: Any = 1, padding: Any = 0) -> Tensor:
    """Unfold ``KH x KW`` windows into rows: the book's (ch. 7) 2-D ``im2col``, differentiable.

    Args:
        x: ``(N, C, H, W)``, floating.
        kh, kw: kernel height and width.
        stride: ``s`` or ``(sh, sw)``.
        padding: ``p`` or ``(ph, pw)`` zeros on each side.

    Returns:
        ``(N*OH*OW, C*KH*KW)``: rows ordered ``(n, oh, ow)``, columns ``(c, i, j)``.

    Raises:
        ShapeError: ``x`` is not 4-D or the kernel is larger than the padded input.
        ValueError: bad stride, padding or kernel size.
    """
    op = "im2col"
    _check_tensor(op, "x", x)
    _check_nchw(op, x)
    kernel = geometry.pair((kh, kw), "kernel size", op=op)
    stride, padding = _check_window(op, tuple(x.shape), kernel, stride, padding, geometry)
    return Im2col.apply(x, kernel_size=kernel, stride=stride, padding=padding)


def _col2im_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(2 * 2 * 4, 2 * 3 * 2)), (2, 2, 4, 5), 3, 2, note="rect kernel, stride 1"),
        sample(n(size=(1 * 3 * 2, 2 * 3 * 3)), (1, 2, 5, 4), 3, 3, stride=2, padding=1,
               note="stride 2, padding 1"),
    ]


@register("col2im", samples=_col2im_samples)
def col2im(col: Tensor, input_shape: tuple, kh: int, kw: int, stride: Any = 1, padding: Any = 0) -> Tensor:
    """Fold the book's 2-D columns back into an image, summing overlaps (the adjoint of ``im2col``).

    Args:
        col: ``(N*OH*OW, C*KH*KW)``, floating, laid out as ``im2col`` returns it.
        input_shape: ``(N, C, H, W)`` of the image.
        kh, kw: kernel height and width.
        stride: ``s`` or ``(sh, sw)``.
        padding: ``p`` or ``(ph, pw)``; contributions landing in the padding are dropped.

    Returns:
        ``(N, C, H, W)``.

    Raises:
        ShapeError: ``col`` does not fit ``input_shape`` and the window geometry.
    """
    op = "col2im"
    _check_tensor(op, "col", col)
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4:
        raise ShapeError(f"{op}: expected input_shape (N, C, H, W), got {input_shape}")
    kernel = geometry.pair((kh, kw), "kernel size", op=op)
    stride, padding = _check_window(op, input_shape, kernel, stride, padding, geometry)
    oh, ow = geometry.window_geometry(input_shape, *kernel, stride, padding, op)[4:]
    n, c = input_shape[:2]
    expected = (n * oh * ow, c * kernel[0] * kernel[1])
    if tuple(col.shape) != expected:
        raise ShapeError(
            f"{op}: expected col of shape {expected} (N*OH*OW, C*KH*KW) for input_shape {input_shape}, "
            f"got {tuple(col.shape)}"
        )
    return Col2im.apply(col, input_shape=input_shape, kernel_size=kernel, stride=stride, padding=padding)
