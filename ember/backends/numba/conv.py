"""Numba im2col/col2im: drop-in replacements for ``ember.backends.reference.conv``.

Same functions and signatures as the reference module (the geometry helpers
are re-exported from it), same column layout ``(N, C, KH, KW, OH, OW)`` and the
same results bit for bit: each output element is computed with the reference's
order of additions.

Design choices:

* Each kernel is a compiled per-plane function (``conv_planes``, shared with
  the whole-conv slices of ``conv_fused``) driven by a serial loop or a
  ``prange`` loop over ``(n, c)`` planes (``ember.backends.cpu.threads`` picks one
  per call by output size).  Each iteration owns one plane of the output, so no
  two iterations write the same element, and ``N = 1``
  batches still split across channels.
* ``col2im`` scatters inside the plane it owns, looping kernel offsets
  ``(i, j)`` outermost as the reference does (so sums match exactly).  This is
  the race-free "per-plane ownership" pattern; a per-pixel gather was not
  written because it was slower than per-image scatter on the development CPU
  (its index arithmetic is per term instead of per row).
* Padding goes through one padded plane-sized buffer per thread (im2col copies
  each input plane into its interior; col2im accumulates into it and crops),
  so the loops carry no bounds tests and their indices are provably
  non-negative, which lets LLVM vectorise them, and no padded copy of the
  whole batch is allocated.
* Every kernel releases the GIL (``nogil=True``) so that
  ``ember.backends.cpu.batch_split`` can run slices of a batch on several threads.
* Inputs are made C-contiguous at the boundary (one compiled layout per dtype);
  float16 (unsupported by Numba) and non-NumPy arrays go to the reference.
* ``cache=True``: compiled code is stored next to this file or in
  ``NUMBA_CACHE_DIR``; no ``fastmath`` (NaN must propagate).

Timings against the reference: ``docs/engineering/conv.md``.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy

from ember.backends.reference import conv as _reference
from ember.backends.geometry import IntOrPair, check_nchw, check_out, col2im_geometry, window_geometry
from ember.backends.reference.conv import im2col_batch_chunks  # noqa: F401  (the reference's)
from ember.backends.cpu.threads import apply_thread_policy, batch_workers, use_parallel  # noqa: F401
from ember.backends.numba.conv_planes import _col2im_plane, _crop_plane, _im2col_plane, _pad_plane

apply_thread_policy()
NUMBA_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


def supported(*arrays: Any) -> bool:
    """True when Numba can run on ``arrays``: NumPy arrays of float32 or float64."""
    return all(type(a) is numpy.ndarray and a.dtype in NUMBA_DTYPES for a in arrays)


@numba.njit(nogil=True, cache=True)
def _im2col_serial(x, kh, kw, sh, sw, ph, pw, pad_value, col):  # pragma: no cover - compiled
    """``_im2col_plane`` over every ``(n, c)`` plane, in one thread.

    Padding goes through one plane-sized buffer whose border is filled once, so
    no padded copy of the whole batch is made (it cost ~6 ms per DeepConvNet step).
    """
    h, w = x.shape[2], x.shape[3]
    buf = numpy.empty((h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    buf[:] = pad_value
    for b in range(x.shape[0]):
        for ch in range(x.shape[1]):
            if ph == 0 and pw == 0:
                _im2col_plane(x[b, ch], kh, kw, sh, sw, col[b, ch])
            else:
                _pad_plane(x[b, ch], ph, pw, buf)
                _im2col_plane(buf, kh, kw, sh, sw, col[b, ch])


@numba.njit(nogil=True, parallel=True, cache=True)
def _im2col_parallel(x, kh, kw, sh, sw, ph, pw, pad_value, col):  # pragma: no cover - compiled
    """``_im2col_serial`` with one owned ``(n, c)`` plane (and its own pad buffer) per ``prange`` iteration."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    for nc in numba.prange(x.shape[0] * c):
        buf = numpy.empty((h + 2 * ph, w + 2 * pw), dtype=x.dtype)
        buf[:] = pad_value
        _pad_plane(x[nc // c, nc % c], ph, pw, buf)
        _im2col_plane(buf, kh, kw, sh, sw, col[nc // c, nc % c])


@numba.njit(nogil=True, cache=True)
def _col2im_serial(col, sh, sw, ph, pw, img):  # pragma: no cover - compiled
    """``_col2im_plane`` over every ``(n, c)`` plane of the unpadded ``img``, in one thread."""
    h, w = img.shape[2], img.shape[3]
    buf = numpy.empty((h + 2 * ph, w + 2 * pw), dtype=img.dtype)
    for b in range(img.shape[0]):
        for ch in range(img.shape[1]):
            if ph == 0 and pw == 0:
                _col2im_plane(col[b, ch], sh, sw, img[b, ch])
            else:
                _col2im_plane(col[b, ch], sh, sw, buf)
                _crop_plane(buf, ph, pw, img[b, ch])


@numba.njit(nogil=True, parallel=True, cache=True)
def _col2im_parallel(col, sh, sw, ph, pw, img):  # pragma: no cover - compiled
    """``_col2im_serial`` with one owned output plane (and pad buffer) per ``prange`` iteration (no race)."""
    c, h, w = img.shape[1], img.shape[2], img.shape[3]
    for nc in numba.prange(img.shape[0] * c):
        buf = numpy.empty((h + 2 * ph, w + 2 * pw), dtype=img.dtype)
        _col2im_plane(col[nc // c, nc % c], sh, sw, buf)
        _crop_plane(buf, ph, pw, img[nc // c, nc % c])


def im2col(
    x: Any, kh: int, kw: int, stride: IntOrPair = 1, padding: IntOrPair = 0, *, xp: Any = numpy,
    pad_value: float = 0.0, out: Any = None,
) -> Any:
    """Compiled ``reference.conv.im2col`` (same arguments, results and errors); ``out`` must be C-contiguous."""
    if xp is not numpy or not supported(x) or (out is not None and not _writable_target(out, x.dtype)):
        return _reference.im2col(x, kh, kw, stride, padding, xp=xp, pad_value=pad_value, out=out)
    check_nchw(x, "im2col")
    sh, sw, ph, pw, oh, ow = window_geometry(x.shape, kh, kw, stride, padding, "im2col")
    shape = (*x.shape[:2], kh, kw, oh, ow)
    col = numpy.empty(shape, dtype=x.dtype) if out is None else check_out(out, shape, x.dtype, "im2col")
    if col.size:
        kernel = _im2col_parallel if use_parallel(col.size) else _im2col_serial
        kernel(numpy.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, x.dtype.type(pad_value), col)
    return col


def col2im(
    col: Any, x_shape: tuple, kh: int, kw: int, stride: IntOrPair = 1, padding: IntOrPair = 0, *,
    xp: Any = numpy, out: Any = None,
) -> Any:
    """Compiled ``reference.conv.col2im`` (same arguments, results and errors); ``col`` may have any strides."""
    if xp is not numpy or not supported(col) or (out is not None and not _writable_target(out, col.dtype)):
        return _reference.col2im(col, x_shape, kh, kw, stride, padding, xp=xp, out=out)
    x_shape, (sh, sw, ph, pw, _, _) = col2im_geometry(col, x_shape, kh, kw, stride, padding)
    img = numpy.empty(x_shape, dtype=col.dtype) if out is None else check_out(out, x_shape, col.dtype)
    if img.size:
        kernel = _col2im_parallel if use_parallel(col.size) else _col2im_serial
        kernel(numpy.ascontiguousarray(col), sh, sw, ph, pw, img)
    return img


def _writable_target(out: Any, dtype: Any) -> bool:
    """True when the compiled col2im can write straight into ``out``."""
    return type(out) is numpy.ndarray and out.dtype == dtype and out.flags.c_contiguous and out.flags.writeable



_WHOLE_CONV = ("conv2d_forward", "conv2d_backward", "conv2d_supported", "FUSES_RELU")


def __getattr__(name: str) -> Any:
    """The whole-conv entry points that ``ember.autograd.ops.conv`` looks up, from ``conv_fused`` (loaded on first use)."""
    if name in _WHOLE_CONV:
        try:
            from ember.backends.numba import conv_fused
        except ImportError as exc:  # no SciPy BLAS for Numba: conv2d keeps its batched path
            raise AttributeError(f"module {__name__!r} has no attribute {name!r} ({exc})") from exc
        return getattr(conv_fused, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
