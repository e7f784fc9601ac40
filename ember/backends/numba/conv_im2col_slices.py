"""One batch slice of conv2d through im2col + GEMM in compiled code, image by image (``conv_fused``'s kernels).

``forward_slice`` and ``backward_slice`` are what a worker runs for its slice
of the batch: one image's columns at a time in a per-call buffer, the product
on NumPy's own OpenBLAS (``blas_gemm.gemm``), and the bias / ReLU epilogue or
mask while the data is in cache.  ``conv_fused`` chooses them or the per-tap
slices of ``conv_shifted`` and runs the slices (``prange_slices``).
"""

from __future__ import annotations

import numba
import numpy

from ember.backends.numba.blas_gemm import SMALL_MATRIX_KERNELS, gemm
from ember.backends.numba.conv_planes import _col2im_plane, _crop_plane, _im2col_plane, _pad_plane


@numba.njit(nogil=True, cache=True)
def _image_to_col(img, kh, kw, sh, sw, ph, pw, pad, col5):  # pragma: no cover - compiled
    """im2col of one ``(C, H, W)`` image into ``col5 (C, KH, KW, OH, OW)`` (``pad``: zero-bordered plane)."""
    for ch in range(img.shape[0]):
        if ph == 0 and pw == 0:
            _im2col_plane(img[ch], kh, kw, sh, sw, col5[ch])
        else:
            _pad_plane(img[ch], ph, pw, pad)
            _im2col_plane(pad, kh, kw, sh, sw, col5[ch])


# Products of an image larger than this (multiply-adds) are cut into row blocks of at most about this
# size, which NumPy's OpenBLAS runs on its small-matrix kernels without packing the operands:
# DeepConvNet's 8x8 layers, one thread, W2 (64x576) @ col (576x64) 50 -> 41 us as 4-8 blocks, W2^T @ g
# 50 -> 42 us; ``gW^T += col g^T`` got slower cut, so it stays one call (docs/engineering/cpu-round5.md).
SMALL_GEMM_MACS = 1 << 19
# The cut the slices get (their ``block_macs``): none (0) where NumPy's OpenBLAS has no small-matrix
# kernels, since every block packs the image's columns again (DeepConvNet conv2's forward on a Zen 2 core,
# Haswell kernels: 16x144 by 144x784 as 4 blocks made im2col 1.8x slower than per-tap GEMMs).
BLOCK_MACS = SMALL_GEMM_MACS if SMALL_MATRIX_KERNELS else 0


@numba.njit(nogil=True, cache=True)
def _gemm_rows(a, b, c, trans_a, parts):  # pragma: no cover - compiled
    """``c = op(a) @ b`` as ``parts`` blocks of rows, each one BLAS call (``trans_a``: ``a`` transposed)."""
    m = c.shape[0]
    for p in range(parts):
        lo, hi = m * p // parts, m * (p + 1) // parts
        if trans_a:
            gemm(a[:, lo:hi], b, c[lo:hi], True, False, 0.0)
        else:
            gemm(a[lo:hi], b, c[lo:hi], False, False, 0.0)


@numba.njit(nogil=True, cache=True)
def _row_blocks(m, k, n, block_macs):  # pragma: no cover - compiled
    """Row blocks for an ``m x k`` by ``k x n`` product: enough to keep each near ``block_macs`` (0: one)."""
    if block_macs <= 0:
        return 1
    parts = -(-(m * k * n) // block_macs)
    return max(1, min(parts, m))


@numba.njit(nogil=True, cache=True)
def forward_slice(x, W2, b, has_bias, relu, kh, kw, sh, sw, ph, pw, y, block_macs):  # pragma: no cover
    """``y[n] = W2 @ im2col(x[n]) (+ b) (ReLU)`` for every image of the slice, one image's columns at a time."""
    n, c, h, w = x.shape
    oc, k = W2.shape
    oh, ow = y.shape[2], y.shape[3]
    p = oh * ow
    col = numpy.empty((k, p), dtype=x.dtype)
    col5 = col.reshape((c, kh, kw, oh, ow))
    pad = numpy.zeros((h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    parts = _row_blocks(oc, k, p, block_macs)
    for i in range(n):
        _image_to_col(x[i], kh, kw, sh, sw, ph, pw, pad, col5)
        yi = y[i].reshape((oc, p))
        _gemm_rows(W2, col, yi, False, parts)
        if has_bias:  # while yi is still in cache
            for o in range(oc):
                bo = b[o]
                for q in range(p):
                    yi[o, q] += bo
        if relu:  # NaN stays NaN (``v < 0`` is false for it)
            for o in range(oc):
                for q in range(p):
                    if yi[o, q] < 0:
                        yi[o, q] = 0


@numba.njit(nogil=True, cache=True)
def backward_slice(x, W2, gy, y, kh, kw, sh, sw, ph, pw, need_gx, need_gw, need_gb, gx, gwt, gb,
                   block_macs):  # pragma: no cover - compiled
    """``gx[n] = col2im(W2^T g[n])``, ``gwt = sum_n im2col(x[n]) @ g[n]^T`` (``gW^T``) and ``gb = sum_n g[n]``.

    ``g`` is ``gy``, or ``gy`` masked by ``y > 0`` when ``y`` is not empty (the fused
    ReLU's backward), formed one image at a time while it is in cache.
    """
    n, c, h, w = x.shape
    oc, k = W2.shape
    oh, ow = gy.shape[2], gy.shape[3]
    p = oh * ow
    masked = y.shape[0] > 0
    col = numpy.empty((k, p), dtype=x.dtype)
    col5 = col.reshape((c, kh, kw, oh, ow))
    pad = numpy.zeros((h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    gmask = numpy.empty((oc, p), dtype=x.dtype)
    position_sums = numpy.zeros((oc, p) if need_gb else (0, 0), dtype=x.dtype)
    gwt[:, :] = 0
    gb[:] = 0
    gx_parts = _row_blocks(k, oc, p, block_macs)
    for i in range(n):
        gyi = gy[i].reshape((oc, p))
        if masked:
            yi = y[i].reshape((oc, p))
            for o in range(oc):
                for q in range(p):
                    gmask[o, q] = gyi[o, q] if yi[o, q] > 0 else 0
            gyi = gmask
        if need_gb:  # per-position sums over the slice's images: independent lanes vectorise
            for o in range(oc):
                for q in range(p):
                    position_sums[o, q] += gyi[o, q]
        if need_gx:
            _gemm_rows(W2, gyi, col, True, gx_parts)  # W2^T g[n]
            for ch in range(c):
                if ph == 0 and pw == 0:
                    _col2im_plane(col5[ch], sh, sw, gx[i, ch])
                else:
                    _col2im_plane(col5[ch], sh, sw, pad)
                    _crop_plane(pad, ph, pw, gx[i, ch])
        if need_gw:
            if need_gx and (ph or pw):
                pad[:, :] = 0  # col2im left data in the border; im2col needs it zero
            _image_to_col(x[i], kh, kw, sh, sw, ph, pw, pad, col5)
            gemm(col, gyi, gwt, False, True, 1.0)  # gW^T += col g[n]^T: faster than gW for small OC
    if need_gb:
        for o in range(oc):
            for q in range(p):
                gb[o] += position_sums[o, q]
