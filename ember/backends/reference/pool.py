"""Array-level 2-D max and average pooling kernels (no autograd).

Same conventions as ``ember.backends.reference.conv``: NCHW arrays, ``stride`` and
``padding`` as an int or an ``(h, w)`` pair, the array module passed as ``xp``,
dtype preserved (float16/32/64 in, same dtype out).

Max pooling unfolds the ``(-inf)``-padded input with ``im2col`` and reduces the
window axis of ``col.reshape(N, C, KH * KW, OH, OW)``. Its ``argmax`` is the flat
index ``i * KW + j`` inside the window (not in the image), which is all the
backward needs and is the same on every backend. Average pooling follows PyTorch's
default ``count_include_pad=True``: the zero padding counts in the divisor, so every
window divides by ``KH * KW``. Both backwards add one strided slice per kernel
offset into the padded gradient, so overlapping windows (stride < kernel) sum
correctly, and neither materialises a ``KH * KW``-times workspace.

Like PyTorch, padding may be at most half the kernel, so every window touches
at least one real input element (no ``-inf`` outputs).

Arguments shared by every function: ``x`` or ``gy`` NCHW floating arrays;
``x_shape`` the forward input's ``(N, C, H, W)``; ``kh, kw`` the kernel size;
``stride`` and ``padding`` an int or an ``(h, w)`` pair; ``xp`` the arrays'
module.  Bad geometry raises ``ValueError`` and a non-NCHW input or a gradient
of the wrong shape ``ShapeError``, naming the function.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.geometry import IntOrPair, check_nchw, pool_backward_geometry, pool_geometry
from ember.backends.reference.conv import im2col


def max_pool2d_forward(
    x: Any, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *, xp: Any = numpy
) -> tuple[Any, Any]:
    """Max over each ``KH x KW`` window; padding is ``-inf`` so it never wins.

    Ties go to the first maximum in row-major window order (``xp.argmax``
    semantics), so the subgradient is routed to one element only. A NaN in a
    window propagates to ``y`` and ``argmax`` points at the first NaN.

    Returns:
        ``(y, argmax)``: ``y`` is ``(N, C, OH, OW)`` with ``x``'s dtype; ``argmax`` is
        ``(N, C, OH, OW)`` int64 holding ``i * KW + j`` of the max in its window.
    """
    check_nchw(x, "max_pool2d")
    sh, sw, ph, pw, oh, ow = pool_geometry(x.shape, kh, kw, stride, padding, "max_pool2d")
    n, c = x.shape[:2]
    col = im2col(x, kh, kw, (sh, sw), (ph, pw), xp=xp, pad_value=-numpy.inf)
    col = col.reshape(n, c, kh * kw, oh, ow)
    # Elementwise passes over the KH*KW contiguous slices instead of
    # col.max/argmax(axis=2): NumPy reduces a short middle axis about 3x slower.
    # `maximum` propagates NaN, as `max` does.
    y = col[:, :, 0].copy()
    for k in range(1, kh * kw):
        xp.maximum(y, col[:, :, k], out=y)
    # argmax = first k whose value equals the max (or is NaN when y is NaN).
    argmax = xp.zeros((n, c, oh, ow), dtype=xp.int64)
    found = xp.zeros((n, c, oh, ow), dtype=bool)
    for k in range(kh * kw):
        cell = col[:, :, k]
        hit = (cell == y) | (cell != cell)
        hit &= ~found
        found |= hit
        argmax += hit * k
    return y, argmax


def max_pool2d_backward(
    gy: Any, argmax: Any, x_shape: tuple, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *,
    xp: Any = numpy,
) -> Any:
    """Route each output gradient to its window's argmax (from ``max_pool2d_forward``): ``gx[argmax(win)] += gy``."""
    x_shape, geo = pool_backward_geometry(gy, x_shape, kh, kw, stride, padding, "max_pool2d_backward", argmax)
    zero = xp.zeros((), dtype=gy.dtype)
    # `where`, not `gy * mask`, so a non-finite gy reaches only its argmax
    # (inf * 0 would put NaN elsewhere).
    return _scatter_windows(lambda k: xp.where(argmax == k, gy, zero), x_shape, kh, kw, geo, gy.dtype, xp)


def avg_pool2d_forward(
    x: Any, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *, xp: Any = numpy
) -> Any:
    """Mean over each ``KH x KW`` window, zero padding counted (``count_include_pad``).

    float16 inputs are summed in float32 and cast back.  Returns ``(N, C, OH, OW)`` in ``x``'s dtype.
    """
    check_nchw(x, "avg_pool2d")
    sh, sw, ph, pw, oh, ow = pool_geometry(x.shape, kh, kw, stride, padding, "avg_pool2d")
    n, c = x.shape[:2]
    if ph or pw:
        x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    acc_dtype = xp.float32 if x.dtype == xp.float16 else x.dtype
    acc = xp.zeros((n, c, oh, ow), dtype=acc_dtype)
    # Summing KH*KW strided views avoids the KH*KW-times im2col workspace.
    for i in range(kh):
        for j in range(kw):
            acc += x[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw]
    acc /= kh * kw
    return acc.astype(x.dtype, copy=False)


def avg_pool2d_backward(
    gy: Any, x_shape: tuple, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *, xp: Any = numpy
) -> Any:
    """Spread each output gradient over its window: ``gx[win] += gy / (KH * KW)``."""
    x_shape, geo = pool_backward_geometry(gy, x_shape, kh, kw, stride, padding, "avg_pool2d_backward")
    g = gy / (kh * kw)
    return _scatter_windows(lambda k: g, x_shape, kh, kw, geo, gy.dtype, xp)


def _scatter_windows(term: Any, x_shape: tuple, kh: int, kw: int, geo: tuple, dtype: Any, xp: Any) -> Any:
    """``gx`` (``x_shape``, ``dtype``): ``term(i * kw + j)`` added at kernel offset ``(i, j)`` of every window.

    Each offset writes a disjoint strided lattice of the padded gradient, so
    overlapping windows sum across offsets; the padding border is cropped.
    """
    sh, sw, ph, pw, oh, ow = geo
    n, c, h, w = x_shape
    gx = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            gx[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += term(i * kw + j)
    if ph or pw:
        gx = xp.ascontiguousarray(gx[:, :, ph : ph + h, pw : pw + w])
    return gx
