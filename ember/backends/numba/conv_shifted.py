"""Stride-1 conv2d per image as one GEMM per kernel tap over shifted windows of the padded image (no im2col).

With the image padded and each channel's plane flattened row after row
(``Wp`` = padded width), the input under tap ``(a, b)`` for every output
position is one contiguous run ``xpf[c, a*Wp + b : a*Wp + b + OH*Wp]``: output
row ``oy`` lives at ``oy*Wp .. oy*Wp + OW - 1`` and the ``Wp - OW`` positions
after it are junk that wraps into the next row.  So, per image::

    y'[:, :]  = sum over taps  W[:, :, a, b] @ xpf[:, a*Wp+b : +OH*Wp]     then crop y' to y
    gxpf[:, a*Wp+b : +OH*Wp] += W[:, :, a, b]^T @ g'                       then crop gxpf to gx
    gW[:, :, a, b]           += g' @ xpf[:, a*Wp+b : +OH*Wp]^T

where ``g'`` is ``gy`` laid out like ``y'`` with zeros at the junk positions, so
they add nothing to ``gx`` or ``gW``.  Each product is a BLAS GEMM on strided
views (``blas_gemm.gemm``, accumulating with ``beta = 1``).

Trade-off against im2col + one GEMM (``conv_fused``): no column matrix is
written or read back and no col2im scatter runs, but there are KH*KW GEMMs of
depth C instead of one of depth C*KH*KW, and the junk positions cost
``Wp / OW - 1`` more multiply-adds (7% on a 28-wide plane, 25% on an 8-wide
one).  On DeepConvNet's layers (one thread, batch 100) the forward took 9-29%
less time even at 25%; numbers in ``docs/engineering/cpu-round3.md``.
Summation order differs from the im2col path (tolerance-equal, not bit-equal).
With non-finite weights the junk positions can carry ``0 * inf = NaN`` into
neighbouring pixels of ``gx`` where im2col would not.
"""

from __future__ import annotations

import numba
import numpy

from ember.backends.numba.blas_gemm import gemm


@numba.njit(nogil=True, cache=True)
def _pad_into(img, ph, pw, wp, xpf):  # pragma: no cover - compiled
    """Copy ``img (C, H, W)`` into the interior of the flattened padded planes ``xpf (C, Hp*Wp + slack)``.

    ``conv_planes._pad_plane`` on an ``(Hp, Wp)`` view of each flat plane does the same; written out here
    (with the crop of ``gx`` in ``backward_slice``) because that variant measured no faster and up to 8%
    slower in the backward, within this machine's noise.
    """
    c, h, w = img.shape
    for ch in range(c):
        for yy in range(h):
            base = (yy + ph) * wp + pw
            for xx in range(w):
                xpf[ch, base + xx] = img[ch, yy, xx]


@numba.njit(nogil=True, cache=True)
def forward_slice(x, Wt, b, has_bias, relu, kh, kw, ph, pw, y):  # pragma: no cover - compiled
    """``y[n] = conv(x[n])`` (+ b, ReLU) for the slice; ``Wt (KH*KW, OC, C)`` holds ``W[:, :, a, b]`` at ``a*KW + b``."""
    n, c, h, w = x.shape
    oc = Wt.shape[1]
    oh, ow = y.shape[2], y.shape[3]
    wp = w + 2 * pw
    q = oh * wp
    xpf = numpy.zeros((c, (h + 2 * ph) * wp + kw), dtype=x.dtype)  # border and slack stay zero
    yp = numpy.empty((oc, q), dtype=x.dtype)
    zero = numpy.zeros(1, dtype=x.dtype)[0]
    for i in range(n):
        _pad_into(x[i], ph, pw, wp, xpf)
        for a in range(kh):
            for bb in range(kw):
                off = a * wp + bb
                gemm(Wt[a * kw + bb], xpf[:, off:off + q], yp, False, False, 0.0 if a + bb == 0 else 1.0)
        for o in range(oc):
            bo = b[o] if has_bias else zero
            for oy in range(oh):
                src = oy * wp
                for ox in range(ow):
                    v = yp[o, src + ox]
                    if has_bias:
                        v += bo
                    if relu and v < 0:  # NaN stays NaN
                        v = 0
                    y[i, o, oy, ox] = v


@numba.njit(nogil=True, cache=True)
def backward_slice(x, Wt, gy, y, kh, kw, ph, pw, need_gx, need_gw, need_gb, gx, gwt, gb):  # pragma: no cover
    """``gx``, ``gwt (KH*KW, OC, C)`` (+=, one partial for the slice) and ``gb`` of the slice.

    ``gy`` is masked by ``y > 0`` first when ``y`` is not empty (the fused ReLU).
    """
    n, c, h, w = x.shape
    oc = Wt.shape[1]
    oh, ow = gy.shape[2], gy.shape[3]
    wp = w + 2 * pw
    plane = (h + 2 * ph) * wp + kw
    q = oh * wp
    masked = y.shape[0] > 0
    xpf = numpy.zeros((c, plane), dtype=x.dtype)
    gxpf = numpy.empty((c, plane), dtype=x.dtype)
    g = numpy.zeros((oc, q), dtype=x.dtype)  # junk columns stay zero
    zero = numpy.zeros(1, dtype=x.dtype)[0]
    column_sums = numpy.zeros(ow, dtype=x.dtype)  # gb per output column: independent lanes vectorise
    gwt[:, :, :] = 0
    gb[:] = 0
    for i in range(n):
        for o in range(oc):
            column_sums[:] = 0
            for oy in range(oh):
                dst = oy * wp
                for ox in range(ow):
                    v = gy[i, o, oy, ox]
                    if masked and not y[i, o, oy, ox] > 0:
                        v = zero
                    g[o, dst + ox] = v
                    column_sums[ox] += v
            if need_gb:
                for ox in range(ow):
                    gb[o] += column_sums[ox]
        if need_gx:
            gxpf[:, :] = 0
            for a in range(kh):
                for bb in range(kw):
                    off = a * wp + bb
                    gemm(Wt[a * kw + bb], g, gxpf[:, off:off + q], True, False, 1.0)
            for ch in range(c):
                for yy in range(h):
                    base = (yy + ph) * wp + pw
                    for xx in range(w):
                        gx[i, ch, yy, xx] = gxpf[ch, base + xx]
        if need_gw:
            _pad_into(x[i], ph, pw, wp, xpf)
            for a in range(kh):
                for bb in range(kw):
                    off = a * wp + bb
                    gemm(g, xpf[:, off:off + q], gwt[a * kw + bb], False, True, 1.0)
