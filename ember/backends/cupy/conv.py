"""CUDA im2col/col2im for the CuPy backend (same signatures as ``reference.conv``).

``im2col`` runs one thread per ``col`` element of the ``(N, C, KH, KW, OH, OW)``
layout: consecutive threads write consecutive addresses, and the reads of one
warp hit one or two rows of ``x``.  ``col2im`` runs one thread per *image*
pixel and gathers the ``col`` entries whose window covers it (at most
``ceil(KH/SH) * ceil(KW/SW)`` of them): no atomics, so the result is
deterministic and float16 accumulates in float.  The reference module does
the same sums as ``KH*KW`` strided slice additions; the summation order
differs, so float results agree to rounding, not bit for bit.

Geometry helpers (``window_geometry``, ``im2col_batch_chunks``, ``pair`` ...)
are the reference's own, re-exported so ``kernels(backend)`` finds them here.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.reference import conv as _ref
from ember.backends.geometry import IntOrPair, check_nchw, check_out, col2im_geometry, window_geometry
from ember.backends.reference.conv import batch_workers, im2col_batch_chunks  # noqa: F401  (the reference's)
from ember.backends.cupy.kernel_spec import (
    CTYPES, WALK_BLOCKS, KernelSpec, emulate_gather, emulate_window_read, gather_body, launch,
)
from ember.backends.cupy.conv_gemm import conv2d_backward, conv2d_forward  # noqa: F401  (the 2-D GEMM conv)
from ember.backends.cupy.conv_gemm import FUSES_RELU  # noqa: F401  (conv2d_forward relu=, conv2d_backward y=)

_IM2COL_BODY = """
extern "C" __global__ void ${name}(const T* __restrict__ x, T* __restrict__ col,
    long long C, long long H, long long W, long long KH, long long KW,
    long long SH, long long SW, long long PH, long long PW, long long OH, long long OW,
    double pad_value, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long ox = i % OW, oy = (i / OW) % OH, kx = (i / (OW * OH)) % KW;
    long long ky = (i / (OW * OH * KW)) % KH, c = (i / (OW * OH * KW * KH)) % C;
    long long n = i / (OW * OH * KW * KH * C);
    long long iy = oy * SH - PH + ky, ix = ox * SW - PW + kx;
    col[i] = (iy >= 0 && iy < H && ix >= 0 && ix < W)
        ? x[((n * C + c) * H + iy) * W + ix] : from_acc((ACC)pad_value);
  }
}
"""


def _emulate_im2col(total, x, col, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, pad_value):
    """NumPy evaluation of the im2col kernel, one vector lane per thread index ``i``."""
    i = numpy.arange(total, dtype=numpy.int64)
    ox, oy, kx = i % OW, (i // OW) % OH, (i // (OW * OH)) % KW
    ky, c = (i // (OW * OH * KW)) % KH, (i // (OW * OH * KW * KH)) % C
    n = i // (OW * OH * KW * KH * C)
    emulate_window_read(x, col, (n, c, ky, kx, oy, ox), (C, H, W, SH, SW, PH, PW), pad_value)



_COL2IM_BODY = gather_body(
    """
extern "C" __global__ void ${name}(const T* __restrict__ col, T* __restrict__ img,
    long long C, long long H, long long W, long long KH, long long KW,
    long long SH, long long SW, long long PH, long long PW, long long OH, long long OW,
    long long total) {""",
    "acc += to_acc(col[(((p * KH + ky) * KW + kx) * OH + oy) * OW + ox]);",
    "img[i] = from_acc(acc);",
)


def _emulate_col2im(total, col, img, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
    """NumPy evaluation of the col2im gather kernel (same loops, vectorised over ``i``)."""
    flat = col.reshape(-1)

    def term(p, ky, kx, oy, ox, ok):
        return flat[numpy.where(ok, (((p * KH + ky) * KW + kx) * OH + oy) * OW + ox, 0)], ok

    acc = emulate_gather(total, col.dtype, (H, W, KH, KW, SH, SW, PH, PW, OH, OW), term)
    img.reshape(-1)[:] = acc.astype(img.dtype)


IM2COL = KernelSpec("ember_im2col", _IM2COL_BODY, _emulate_im2col)
COL2IM = KernelSpec("ember_col2im", _COL2IM_BODY, _emulate_col2im, max_blocks=WALK_BLOCKS)
SPECS = [IM2COL, COL2IM]


def im2col(
    x: Any, kh: int, kw: int, stride: IntOrPair = 1, padding: IntOrPair = 0, *, xp: Any = numpy,
    pad_value: float = 0.0, out: Any = None,
) -> Any:
    """``col[n, c, i, j, oh, ow] = x_pad[n, c, oh*sh + i, ow*sw + j]`` (see ``reference.conv.im2col``).

    Args:
        x: ``(N, C, H, W)``, float16/32/64 (other dtypes use the reference).
        kh, kw: kernel height and width.
        stride, padding: ints or ``(h, w)`` pairs.
        xp: array module of ``x``.
        pad_value: value read outside the image.
        out: optional ``(N, C, KH, KW, OH, OW)`` array to write into.

    Returns:
        ``(N, C, KH, KW, OH, OW)``, C-contiguous, ``x``'s dtype.

    Raises:
        ShapeError, ValueError: as the reference.
    """
    if x.dtype not in CTYPES:
        return _ref.im2col(x, kh, kw, stride, padding, xp=xp, pad_value=pad_value, out=out)
    check_nchw(x, "im2col")
    sh, sw, ph, pw, oh, ow = window_geometry(x.shape, kh, kw, stride, padding, "im2col")
    n, c, h, w = (int(s) for s in x.shape)
    kh, kw = int(kh), int(kw)
    x = xp.ascontiguousarray(x)
    shape = (n, c, kh, kw, oh, ow)
    direct = out is not None and check_out(out, shape, x.dtype, "im2col").flags.c_contiguous
    col = out if direct else xp.empty(shape, dtype=x.dtype)
    launch(IM2COL, x.dtype, col.size, (x, col, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, float(pad_value)))
    if out is not None and not direct:
        out[...] = col
        return out
    return col


def col2im(
    col: Any, x_shape: tuple, kh: int, kw: int, stride: IntOrPair = 1, padding: IntOrPair = 0, *,
    xp: Any = numpy, out: Any = None,
) -> Any:
    """Fold ``(N, C, KH, KW, OH, OW)`` columns into ``(N, C, H, W)``, summing overlaps (a gather).

    ``out``, when given, receives the result (the kernel writes into it when it is C-contiguous).

    Raises:
        ShapeError: ``col`` does not fit ``x_shape`` and the geometry.
    """
    if col.dtype not in CTYPES:
        return _ref.col2im(col, x_shape, kh, kw, stride, padding, xp=xp, out=out)
    kh, kw = int(kh), int(kw)
    x_shape, (sh, sw, ph, pw, oh, ow) = col2im_geometry(col, x_shape, kh, kw, stride, padding)
    _, c, h, w = x_shape
    col = xp.ascontiguousarray(col)
    direct = out is not None and check_out(out, x_shape, col.dtype).flags.c_contiguous
    img = out if direct else xp.empty(x_shape, dtype=col.dtype)
    launch(COL2IM, col.dtype, img.size, (col, img, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow))
    if out is not None and not direct:
        out[...] = img
        return out
    return img
