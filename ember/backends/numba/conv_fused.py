"""conv2d on the Numba backend as whole batch slices in compiled code (im2col + GEMM + epilogue).

The slice kernels live in ``conv_im2col_slices`` and ``conv_shifted``; this
module picks one per layer geometry, cuts the batch and sums the partials.
One ``nogil`` Numba call per slice of the batch does, image by image, the im2col
of that image into a per-call column buffer ``(C*KH*KW, OH*OW)``, the product
with ``W2 = W.reshape(OC, -1)`` (``blas_gemm.gemm``: NumPy's own OpenBLAS called
from the compiled code) written straight into the NCHW output, and the
bias (and optional ReLU) epilogue while that output is still in cache.  The
backward does the same per image: the fused ReLU's mask (``gy[n]`` where
``y[n] > 0``) and the bias gradient's channel sums, ``gcol = W2^T gy[n]`` into
the buffer and ``col2im`` out of it, then a recomputed ``col`` and
``gW^T += col gy[n]^T`` (the orientation BLAS runs faster for few output
channels).  ``gW`` and ``gb`` come as one partial per slice, summed in slice
order by the caller, so a run repeats bit for bit.

The slices run in one ``prange`` region on Numba's pool (``prange_slices``,
``POOL_SLICES``), each handed to whichever pool thread is free; with
``POOL_SLICES = False`` they go to ember's Python batch-split threads as before.

Why: the batched path of ``ember.autograd.ops.conv`` writes the whole slice's
columns to memory and back and crosses the GIL between every im2col, GEMM and
col2im call, so the batch-split worker threads take turns; here a worker holds
no GIL for a whole slice and one image's columns stay in the L2 cache.

Results: the same products as the batched path image by image, so they match it
within float32 rounding (bit for bit when both BLAS builds pick the same kernel).
Only float32/float64 NumPy arrays are taken (``conv2d_supported``); the op uses its
batched path for anything else.  Numbers: ``docs/engineering/cpu-conv-round2.md``.

"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.cpu.batch_split import map_slices, split_slices
from ember.backends.cpu.threads import batch_workers
from ember.backends.geometry import window_geometry
from ember.backends.numba import conv_im2col_slices, conv_shifted, pool_region, prange_slices
from ember.backends.numba.blas_gemm import SMALL_MATRIX_KERNELS
from ember.backends.numba.conv_im2col_slices import backward_slice as _backward_slice
from ember.backends.numba.conv_im2col_slices import forward_slice as _forward_slice


NUMBA_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
# conv2d_forward takes ``relu=`` and conv2d_backward ``y=`` (the fused conv2d_relu op checks this flag).
FUSES_RELU = True
# Fewest column elements in one thread's slice (smaller batches run inline).
MIN_SLICE_ELEMENTS = 1 << 16
# Stride-1 convolutions run as one GEMM per kernel tap (``conv_shifted``) instead of im2col + one GEMM
# when each tap's GEMM is at least MIN_SHIFTED_CHANNELS deep and the junk columns of the padded
# width add at most MAX_SHIFTED_WIDTH_RATIO - 1 to the work.  DeepConvNet, one thread: 1 input
# channel lost 3x in the forward, 16 won; a width ratio of 1.14 won, 1.25 lost in the backward.
SHIFTED_GEMMS = True
MIN_SHIFTED_CHANNELS = 8
MAX_SHIFTED_WIDTH_RATIO = 1.2
# The backward too, where NumPy's OpenBLAS has small-matrix kernels (``blas_gemm``; the rule above was
# measured there).  Without them the per-tap backward packs every tap's operands: DeepConvNet's conv3 and
# conv4 backward took 5.3 and 10.3 ms per tap against 4.4 and 9.4 by im2col on a Zen 2 core, conv2's tied.
SHIFTED_BACKWARD = SMALL_MATRIX_KERNELS
# Slices per batch worker.  On Numba's pool, DeepConvNet step alternated in one process (9 and 12
# rounds): 2 per worker 2.8-3.6% faster than 4, 1 and 8 within 1% of 4.  Under load the regions run
# on one thread (``pool_region``), so the slices no longer need to be small for balance.
SLICES_PER_WORKER = 2
# Slices run on Numba's pool (``prange_slices``) rather than ember's Python batch-split threads: the pool
# GEMMs of linear layers leave its workers spinning, and Python threads started then wait for them.
POOL_SLICES = True


def conv2d_supported(x: Any, W: Any, b: Any = None) -> bool:
    """True when the compiled slices can run: NumPy float32/float64 arrays of one dtype."""
    arrays = (x, W) if b is None else (x, W, b)
    return all(type(a) is numpy.ndarray and a.dtype == x.dtype for a in arrays) and x.dtype in NUMBA_DTYPES


def _shifted(c: int, w: int, sh: int, sw: int, pw: int, ow: int, backward: bool = False) -> bool:
    """Whether a convolution of this geometry runs its forward (or ``backward``) as per-tap GEMMs."""
    return (SHIFTED_GEMMS and (SHIFTED_BACKWARD or not backward) and sh == 1 and sw == 1
            and c >= MIN_SHIFTED_CHANNELS and ow > 0 and w + 2 * pw <= MAX_SHIFTED_WIDTH_RATIO * ow)


def _taps(W: Any) -> Any:
    """``W (OC, C, KH, KW)`` as ``(KH*KW, OC, C)``: the weight of each kernel tap, contiguous."""
    oc, c, kh, kw = W.shape
    return numpy.ascontiguousarray(numpy.transpose(W, (2, 3, 0, 1))).reshape(kh * kw, oc, c)


def _slices(n: int, per_item: int) -> tuple[list, int]:
    """``(slices, workers)`` for a batch of ``n`` items of ``per_item`` column elements each."""
    workers = batch_workers()
    min_items = -(-MIN_SLICE_ELEMENTS // max(per_item, 1))
    return split_slices([slice(0, n)], workers, min_items=min_items, per_worker=SLICES_PER_WORKER), workers


def conv2d_forward(x: Any, W: Any, b: Any, stride: tuple, padding: tuple, *, xp: Any = numpy,
                   relu: bool = False) -> Any:
    """conv2d (plus bias, plus ReLU when ``relu``) of NCHW ``x`` with ``W (OC, C, KH, KW)``; ``(N, OC, OH, OW)``."""
    n, c = x.shape[:2]
    oc, _, kh, kw = W.shape
    sh, sw, ph, pw, oh, ow = window_geometry(x.shape, kh, kw, stride, padding, "conv2d")
    x = numpy.ascontiguousarray(x)
    block_macs = conv_im2col_slices.BLOCK_MACS
    bias = numpy.zeros(0, dtype=x.dtype) if b is None else numpy.ascontiguousarray(b)
    y = numpy.empty((n, oc, oh, ow), dtype=x.dtype)
    if y.size == 0:
        return y
    Wt = W2 = None
    if _shifted(c, x.shape[3], sh, sw, pw, ow):
        Wt = _taps(W)

        def part(s: slice) -> None:
            conv_shifted.forward_slice(x[s], Wt, bias, b is not None, bool(relu), kh, kw, ph, pw, y[s])
    else:
        W2 = numpy.ascontiguousarray(W).reshape(oc, c * kh * kw)

        def part(s: slice) -> None:
            _forward_slice(x[s], W2, bias, b is not None, bool(relu), kh, kw, sh, sw, ph, pw, y[s], block_macs)

    slices, workers = _slices(n, c * kh * kw * oh * ow)
    if POOL_SLICES and workers > 1 and len(slices) > 1 and pool_region.available():
        W2e = numpy.empty((0, 0), x.dtype) if W2 is None else W2
        Wte = numpy.empty((0, 0, 0), x.dtype) if Wt is None else Wt
        prange_slices.run_split(prange_slices.forward_slices,
                                (x, W2e, Wte, bias, b is not None, bool(relu), kh, kw, sh, sw, ph, pw, y,
                                 block_macs), slices, workers)
        return y
    map_slices(part, slices, workers)
    return y


def conv2d_backward(x: Any, W: Any, gy: Any, stride: tuple, padding: tuple, needs: tuple, *,
                    xp: Any = numpy, y: Any = None) -> tuple:
    """``(gx, gW, gb)`` of conv2d (None where ``needs`` is false).

    With ``y`` (the output of a forward run with ``relu=True``), ``gy`` is first masked by ``y > 0``.
    """
    n, c, h, w = x.shape
    oc, _, kh, kw = W.shape
    sh, sw, ph, pw, oh, ow = window_geometry(x.shape, kh, kw, stride, padding, "conv2d")
    need_gx, need_gw = bool(needs[0]), bool(needs[1])
    need_gb = len(needs) > 2 and bool(needs[2])
    gy = numpy.ascontiguousarray(gy, dtype=x.dtype)
    # With ``y`` (ReLU fused in the forward) each slice masks gy by ``y > 0`` image by image.
    y = numpy.empty((0, 0, 0, 0), dtype=x.dtype) if y is None else numpy.ascontiguousarray(y, dtype=x.dtype)
    if not (need_gx or need_gw or need_gb):
        return None, None, None
    x = numpy.ascontiguousarray(x)
    block_macs = conv_im2col_slices.BLOCK_MACS
    gx = numpy.empty(x.shape, dtype=x.dtype) if need_gx else numpy.empty((n, c, 0, 0), dtype=x.dtype)
    slices, workers = _slices(n, c * kh * kw * oh * ow)
    if n == 0:
        slices = []
    shifted = _shifted(c, w, sh, sw, pw, ow, backward=True)
    Wk = _taps(W) if shifted else numpy.ascontiguousarray(W).reshape(oc, c * kh * kw)
    gw_shape = (kh * kw, oc, c) if shifted else (c * kh * kw, oc)  # per tap (OC, C), or gW^T

    def part(s: slice) -> Any:
        gwt = numpy.empty(gw_shape, dtype=x.dtype)
        gb = numpy.empty(oc, dtype=x.dtype)
        if shifted:
            conv_shifted.backward_slice(x[s], Wk, gy[s], y[s], kh, kw, ph, pw, need_gx, need_gw, need_gb, gx[s],
                                        gwt, gb)
        else:
            _backward_slice(x[s], Wk, gy[s], y[s], kh, kw, sh, sw, ph, pw, need_gx, need_gw, need_gb, gx[s], gwt,
                            gb, block_macs)
        return gwt, gb

    if POOL_SLICES and workers > 1 and len(slices) > 1 and pool_region.available():
        count = len(slices)
        gw_parts = numpy.empty((count,) + gw_shape if not shifted else (0, 0, 0), dtype=x.dtype)
        gw_taps = numpy.empty((count,) + gw_shape if shifted else (0, 0, 0, 0), dtype=x.dtype)
        gb_parts = numpy.empty((count, oc), dtype=x.dtype)
        W2e = numpy.empty((0, 0), x.dtype) if shifted else Wk
        Wte = Wk if shifted else numpy.empty((0, 0, 0), x.dtype)
        prange_slices.run_split(prange_slices.backward_slices,
                                (x, W2e, Wte, gy, y, kh, kw, sh, sw, ph, pw, need_gx, need_gw, need_gb, gx, gw_parts,
                                 gw_taps, gb_parts, block_macs), slices, workers)
        partials = list(zip(gw_taps if shifted else gw_parts, gb_parts))
    else:
        partials = map_slices(part, slices, workers)
    gW = gb = None
    if need_gw:
        gwt = numpy.zeros(gw_shape, dtype=x.dtype)
        for partial, _ in partials:  # slice order: the same sum on every run
            gwt += partial
        if shifted:  # gwt[a*KW + b] is gW[:, :, a, b]
            gW = numpy.ascontiguousarray(gwt.reshape(kh, kw, oc, c).transpose(2, 3, 0, 1))
        else:
            gW = numpy.ascontiguousarray(gwt.T).reshape(W.shape)
    if need_gb:
        gb = numpy.zeros(oc, dtype=x.dtype)
        for _, partial in partials:
            gb += partial
    return (gx if need_gx else None), gW, gb
