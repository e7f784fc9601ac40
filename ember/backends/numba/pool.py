"""Numba max/average pooling: drop-in replacements for ``ember.backends.reference.pool``.

Same functions, signatures and results as the reference (bit for bit): max
pooling scans each window in row-major order with padding read as ``-inf``; the
argmax is the first maximum (strict ``>``) and the value the last of the equal
maxima (``>=``), as NumPy's ``maximum`` chain gives it (``-0.0`` then ``+0.0``
is ``+0.0``); an input holding a NaN (found by one
vectorised test) takes a loop that stops at the first NaN of each window,
which is exactly ``argmax`` of the reference's ``maximum`` chain.  2x2 windows
(every pooling of the book's nets) have an unrolled loop.  The backwards add
contributions with kernel offsets ``(i, j)`` outermost, the reference's order.

Each kernel is a compiled per-plane function driven by a serial loop or a
``prange`` loop over ``(n, c)`` planes (chosen per call by
``ember.backends.cpu.threads``); each iteration owns its output plane, so
overlapping windows (stride < kernel) never race.  No ``KH*KW`` workspace is
built (the reference's max pooling unfolds with ``im2col``); padding is a padded
copy of the input (``-inf`` for max, zeros for average), as in the reference, so
the compiled loops carry no bounds tests.  float16 and
non-NumPy arrays go to the reference.  2x2 windows at stride 2 without padding
(unless a big machine runs the ``prange`` variants) take the one-pass loops of
``ember.backends.numba.pool_tiled``.

Timings against the reference: ``docs/engineering/conv.md``.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy

from ember.backends.reference import pool as _reference
from ember.backends.geometry import IntOrPair, check_nchw, pool_backward_geometry, pool_geometry
from ember.backends.numba import prange_slices
from ember.backends.numba.conv import supported
from ember.backends.numba.pool_tiled import max_pool_2x2, max_pool_2x2_backward, tiles_2x2
from ember.backends.cpu.batch_split import call_split
from ember.backends.cpu.threads import apply_thread_policy, batch_workers, use_parallel

apply_thread_policy()


@numba.njit(cache=True)
def _max_plane(xp, kh, kw, sh, sw, yp, ap):  # pragma: no cover - compiled
    """Max pooling of one NaN-free plane: argmax of the first maximum (``>``), value of the last (``>=``)."""
    oh, ow = yp.shape
    for oy in range(oh):
        for ox in range(ow):
            y0 = oy * sh
            x0 = ox * sw
            best = xp[y0, x0]
            best_k = 0
            top = best
            for i in range(kh):
                for j in range(kw):
                    v = xp[y0 + i, x0 + j]
                    if v > best:
                        best = v
                        best_k = i * kw + j
                    if v >= top:
                        top = v
            yp[oy, ox] = top
            ap[oy, ox] = best_k


@numba.njit(cache=True)
def _max_plane_2x2(xp, sh, sw, yp, ap):  # pragma: no cover - compiled
    """``_max_plane`` unrolled for the book's 2x2 windows (about 4x faster than the loop)."""
    oh, ow = yp.shape
    for oy in range(oh):
        y0 = oy * sh
        for ox in range(ow):
            x0 = ox * sw
            best = xp[y0, x0]
            best_k = 0
            top = best
            v = xp[y0, x0 + 1]
            if v > best:
                best = v
                best_k = 1
            top = v if v >= top else top
            v = xp[y0 + 1, x0]
            if v > best:
                best = v
                best_k = 2
            top = v if v >= top else top
            v = xp[y0 + 1, x0 + 1]
            if v > best:
                best = v
                best_k = 3
            top = v if v >= top else top
            yp[oy, ox] = top
            ap[oy, ox] = best_k


@numba.njit(cache=True)
def _max_plane_nan(xp, kh, kw, sh, sw, yp, ap):  # pragma: no cover - compiled
    """Max pooling of a plane that may hold NaNs: as ``_max_plane`` but the first NaN wins its window."""
    oh, ow = yp.shape
    for oy in range(oh):
        for ox in range(ow):
            y0 = oy * sh
            x0 = ox * sw
            best = xp[y0, x0]
            best_k = 0
            top = best
            for k in range(kh * kw):
                v = xp[y0 + k // kw, x0 + k % kw]
                if math.isnan(v):
                    top = v
                    best_k = k
                    break
                if v > best:
                    best = v
                    best_k = k
                if v >= top:
                    top = v
            yp[oy, ox] = top
            ap[oy, ox] = best_k


@numba.njit(cache=True)
def _max_pool_plane(xp, kh, kw, sh, sw, has_nan, yp, ap):  # pragma: no cover - compiled
    """Max pooling of one padded plane, by the fastest loop valid for it."""
    if has_nan:
        _max_plane_nan(xp, kh, kw, sh, sw, yp, ap)
    elif kh == 2 and kw == 2:
        _max_plane_2x2(xp, sh, sw, yp, ap)
    else:
        _max_plane(xp, kh, kw, sh, sw, yp, ap)


@numba.njit(nogil=True, cache=True)
def _max_pool_serial(x, kh, kw, sh, sw, has_nan, y, argmax):  # pragma: no cover - compiled
    """``_max_pool_plane`` over every ``(n, c)`` plane, in one thread."""
    for b in range(x.shape[0]):
        for ch in range(x.shape[1]):
            _max_pool_plane(x[b, ch], kh, kw, sh, sw, has_nan, y[b, ch], argmax[b, ch])


@numba.njit(parallel=True, cache=True)
def _max_pool_parallel(x, kh, kw, sh, sw, has_nan, y, argmax):  # pragma: no cover - compiled
    """``_max_pool_plane`` over the ``(n, c)`` planes, one owned plane per ``prange`` iteration."""
    c = x.shape[1]
    for nc in numba.prange(x.shape[0] * c):
        b = nc // c
        ch = nc % c
        _max_pool_plane(x[b, ch], kh, kw, sh, sw, has_nan, y[b, ch], argmax[b, ch])


@numba.njit(cache=True)
def _max_grad_plane(g, a, di, dj, sh, sw, out):  # pragma: no cover - compiled
    """``out[window argmax] += g`` into one padded plane (zeroed here); returns the bad argmax count.

    ``(di[k], dj[k])`` is the offset of window index ``k`` (a table instead of an
    integer division per element); an argmax outside ``[0, KH*KW)`` is skipped
    and counted, so a corrupt argmax raises instead of writing out of bounds.
    Non-overlapping windows (stride >= kernel) give each element one term at
    most, so one pass suffices; overlapping ones loop kernel offsets outermost,
    the reference's order of additions.
    """
    oh, ow = g.shape
    area = di.shape[0]
    kh = di[area - 1] + 1
    kw = dj[area - 1] + 1
    for yy in range(out.shape[0]):
        for xx in range(out.shape[1]):
            out[yy, xx] = 0
    bad = 0
    if sh >= kh and sw >= kw:
        for oy in range(oh):
            for ox in range(ow):
                k = a[oy, ox]
                if k < 0 or k >= area:
                    bad += 1
                    continue
                out[oy * sh + di[k], ox * sw + dj[k]] += g[oy, ox]
        return bad
    for oy in range(oh):
        for ox in range(ow):
            if a[oy, ox] < 0 or a[oy, ox] >= area:
                bad += 1
    for k in range(area):
        for oy in range(oh):
            for ox in range(ow):
                if a[oy, ox] == k:
                    out[oy * sh + di[k], ox * sw + dj[k]] += g[oy, ox]
    return bad


@numba.njit(nogil=True, cache=True)
def _max_grad_serial(gy, argmax, di, dj, sh, sw, gx):  # pragma: no cover - compiled
    """``_max_grad_plane`` over every ``(n, c)`` plane, in one thread; returns the bad argmax count."""
    bad = 0
    for b in range(gy.shape[0]):
        for ch in range(gy.shape[1]):
            bad += _max_grad_plane(gy[b, ch], argmax[b, ch], di, dj, sh, sw, gx[b, ch])
    return bad


@numba.njit(parallel=True, cache=True)
def _max_grad_parallel(gy, argmax, di, dj, sh, sw, gx):  # pragma: no cover - compiled
    """``_max_grad_plane`` over the ``(n, c)`` planes; each iteration owns its ``gx`` plane (no race)."""
    c = gy.shape[1]
    bad = 0
    for nc in numba.prange(gy.shape[0] * c):
        bad += _max_grad_plane(gy[nc // c, nc % c], argmax[nc // c, nc % c], di, dj, sh, sw, gx[nc // c, nc % c])
    return bad


@numba.njit(cache=True)
def _avg_plane(xp, kh, kw, sh, sw, zero, yp):  # pragma: no cover - compiled
    """``yp`` = sum of each window of a zero-padded plane (row-major offsets) / ``KH*KW``."""
    oh, ow = yp.shape
    area = kh * kw
    for oy in range(oh):
        for ox in range(ow):
            s = zero  # typed like x, so float32 sums stay float32 as in the reference
            for i in range(kh):
                for j in range(kw):
                    s += xp[oy * sh + i, ox * sw + j]
            yp[oy, ox] = s / area


@numba.njit(nogil=True, cache=True)
def _avg_serial(x, kh, kw, sh, sw, zero, y):  # pragma: no cover - compiled
    """``_avg_plane`` over every ``(n, c)`` plane, in one thread."""
    for b in range(x.shape[0]):
        for ch in range(x.shape[1]):
            _avg_plane(x[b, ch], kh, kw, sh, sw, zero, y[b, ch])


@numba.njit(parallel=True, cache=True)
def _avg_parallel(x, kh, kw, sh, sw, zero, y):  # pragma: no cover - compiled
    """``_avg_plane`` over the ``(n, c)`` planes, one owned plane per ``prange`` iteration."""
    c = x.shape[1]
    for nc in numba.prange(x.shape[0] * c):
        _avg_plane(x[nc // c, nc % c], kh, kw, sh, sw, zero, y[nc // c, nc % c])


@numba.njit(cache=True)
def _avg_grad_plane(g, kh, kw, sh, sw, out):  # pragma: no cover - compiled
    """``out[window] += g`` into one padded plane (zeroed here), kernel offsets outermost."""
    oh, ow = g.shape
    for yy in range(out.shape[0]):
        for xx in range(out.shape[1]):
            out[yy, xx] = 0
    for i in range(kh):
        for j in range(kw):
            for oy in range(oh):
                for ox in range(ow):
                    out[oy * sh + i, ox * sw + j] += g[oy, ox]


@numba.njit(nogil=True, cache=True)
def _avg_grad_serial(g, kh, kw, sh, sw, gx):  # pragma: no cover - compiled
    """``_avg_grad_plane`` over every ``(n, c)`` plane, in one thread."""
    for b in range(g.shape[0]):
        for ch in range(g.shape[1]):
            _avg_grad_plane(g[b, ch], kh, kw, sh, sw, gx[b, ch])


@numba.njit(parallel=True, cache=True)
def _avg_grad_parallel(g, kh, kw, sh, sw, gx):  # pragma: no cover - compiled
    """``_avg_grad_plane`` over the ``(n, c)`` planes; each iteration owns its ``gx`` plane (no race)."""
    c = g.shape[1]
    for nc in numba.prange(g.shape[0] * c):
        _avg_grad_plane(g[nc // c, nc % c], kh, kw, sh, sw, gx[nc // c, nc % c])


def _padded(x: Any, ph: int, pw: int, value: float) -> Any:
    """``x`` C-contiguous and padded by ``(ph, pw)`` with ``value`` (the reference pads the same way)."""
    if ph or pw:
        return numpy.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)
    return numpy.ascontiguousarray(x)


def _cropped(gx: Any, ph: int, pw: int) -> Any:
    """The unpadded interior of a padded gradient, as its own contiguous array."""
    if ph or pw:
        return numpy.ascontiguousarray(gx[:, :, ph : gx.shape[2] - ph, pw : gx.shape[3] - pw])
    return gx


def _run(serial: Any, parallel: Any, args: tuple, split: tuple, size: int) -> list:
    """``parallel(*args)`` for outputs of at least ``size`` elements on big machines, else ``serial`` over batch slices.

    Returns the per-slice results (the backward's bad-argmax flags).
    """
    if use_parallel(size):
        return [parallel(*args)]
    return call_split(serial, args, split, batch_workers())


def _reference_runs(*arrays: Any, xp: Any) -> bool:
    """True when the reference must serve the call: not NumPy, or a dtype Numba cannot run."""
    return xp is not numpy or not supported(*arrays)


def max_pool2d_forward(
    x: Any, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *, xp: Any = numpy
) -> tuple[Any, Any]:
    """Compiled ``reference.pool.max_pool2d_forward`` (same arguments, results and errors)."""
    if _reference_runs(x, xp=xp):
        return _reference.max_pool2d_forward(x, kh, kw, stride, padding, xp=xp)
    check_nchw(x, "max_pool2d")
    sh, sw, ph, pw, oh, ow = pool_geometry(x.shape, kh, kw, stride, padding, "max_pool2d")
    y = numpy.empty((*x.shape[:2], oh, ow), dtype=x.dtype)
    argmax = numpy.empty(y.shape, dtype=numpy.int64)
    if y.size and tiles_2x2(kh, kw, sh, sw, ph, pw) and not use_parallel(x.size):
        x = numpy.ascontiguousarray(x)
        if not prange_slices.call_on_pool(max_pool_2x2, prange_slices.max_pool_2x2_slices, (x, y, argmax),
                                          batch_workers()):
            return y, argmax
    if y.size:  # other geometries, and 2x2 windows holding a NaN
        xpad = _padded(x, ph, pw, -numpy.inf)
        # One vectorised NaN test (~0.1 ms per MB) keeps the NaN rule out of the hot loop.
        has_nan = bool(numpy.isnan(xpad).any())
        _run(_max_pool_serial, _max_pool_parallel, (xpad, kh, kw, sh, sw, has_nan, y, argmax), (0, 6, 7), x.size)
    return y, argmax


def max_pool2d_backward(
    gy: Any, argmax: Any, x_shape: tuple, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *,
    xp: Any = numpy,
) -> Any:
    """Compiled ``reference.pool.max_pool2d_backward``; an argmax outside ``[0, KH*KW)`` raises ValueError."""
    if _reference_runs(gy, xp=xp) or type(argmax) is not numpy.ndarray:
        return _reference.max_pool2d_backward(gy, argmax, x_shape, kh, kw, stride, padding, xp=xp)
    x_shape, (sh, sw, ph, pw, _, _) = pool_backward_geometry(
        gy, x_shape, kh, kw, stride, padding, "max_pool2d_backward", argmax
    )
    gx = numpy.empty((*x_shape[:2], x_shape[2] + 2 * ph, x_shape[3] + 2 * pw), dtype=gy.dtype)
    if gx.size and tiles_2x2(kh, kw, sh, sw, ph, pw) and not use_parallel(gx.size):
        args = (numpy.ascontiguousarray(gy), numpy.ascontiguousarray(argmax, dtype=numpy.int64), gx)
        if prange_slices.call_on_pool(max_pool_2x2_backward, prange_slices.max_pool_2x2_backward_slices, args,
                                      batch_workers()):
            raise _bad_argmax(argmax, kh, kw)
        return gx
    if gx.size:
        di, dj = numpy.divmod(numpy.arange(kh * kw), kw)
        argmax = numpy.ascontiguousarray(argmax, dtype=numpy.int64)
        args = (numpy.ascontiguousarray(gy), argmax, di, dj, sh, sw, gx)
        if any(_run(_max_grad_serial, _max_grad_parallel, args, (0, 1, 6), gx.size)):
            raise _bad_argmax(argmax, kh, kw)
    return _cropped(gx, ph, pw)


def _bad_argmax(argmax: Any, kh: int, kw: int) -> ValueError:
    """The error for an argmax with values outside a ``(kh, kw)`` window."""
    return ValueError(
        f"max_pool2d_backward: expected argmax in [0, {kh * kw}) for a {(kh, kw)} kernel, "
        f"got values in [{argmax.min()}, {argmax.max()}]"
    )


def avg_pool2d_forward(
    x: Any, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *, xp: Any = numpy
) -> Any:
    """Compiled ``reference.pool.avg_pool2d_forward`` (same arguments, results and errors)."""
    if _reference_runs(x, xp=xp):
        return _reference.avg_pool2d_forward(x, kh, kw, stride, padding, xp=xp)
    check_nchw(x, "avg_pool2d")
    sh, sw, ph, pw, oh, ow = pool_geometry(x.shape, kh, kw, stride, padding, "avg_pool2d")
    y = numpy.empty((*x.shape[:2], oh, ow), dtype=x.dtype)
    if y.size:
        args = (_padded(x, ph, pw, 0.0), kh, kw, sh, sw, x.dtype.type(0), y)
        _run(_avg_serial, _avg_parallel, args, (0, 6), x.size)
    return y


def avg_pool2d_backward(
    gy: Any, x_shape: tuple, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *, xp: Any = numpy
) -> Any:
    """Compiled ``reference.pool.avg_pool2d_backward`` (same arguments, results and errors)."""
    if _reference_runs(gy, xp=xp):
        return _reference.avg_pool2d_backward(gy, x_shape, kh, kw, stride, padding, xp=xp)
    x_shape, (sh, sw, ph, pw, _, _) = pool_backward_geometry(gy, x_shape, kh, kw, stride, padding,
                                                             "avg_pool2d_backward")
    gx = numpy.empty((*x_shape[:2], x_shape[2] + 2 * ph, x_shape[3] + 2 * pw), dtype=gy.dtype)
    if gx.size:
        # Divide first, as the reference does, so the sums match bit for bit.
        args = (numpy.ascontiguousarray(gy / (kh * kw)), kh, kw, sh, sw, gx)
        _run(_avg_grad_serial, _avg_grad_parallel, args, (0, 5), gx.size)
    return _cropped(gx, ph, pw)
