"""Batch slices of compiled kernels on Numba's thread pool: one ``prange`` region per call, no Python threads.

The conv slices (``conv_im2col_slices``, ``conv_shifted``) and the 2x2 max pooling
kernels (``pool_tiled``) are cut into batch slices fixed by the batch size and
the worker count (``batch_split.split_slices``), as for ember's Python
batch-split threads.  Here one compiled region runs them, each slice handed to
whichever pool thread is free (``pool_region``: chunks of one), so a thread
that lost its core takes fewer.  Each slice writes only its own images and its
own row of the ``gW``/``gb`` partials, which the caller sums in slice order: a
run repeats bit for bit, whichever thread ran which slice.

Why: linear layers' products run on this pool (``parallel_gemm``), whose
workers spin for a few milliseconds after each region (GNU OpenMP's default);
Python threads started right after on the same cores waited for that spin
(DeepConvNet's step 10% slower, SimpleConvNet's 2x).  With every split of the
step on one pool the spinning worker is the one that takes the next slices,
and no slice crosses the GIL.  Numba's disk cache checks only this file: a
change to a called kernel needs this file touched (or the cache cleared).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy

from ember.backends.cpu import batch_split
from ember.backends.numba import conv_shifted, pool_region
from ember.backends.numba.conv_im2col_slices import backward_slice, forward_slice
from ember.backends.numba.pool_tiled import max_pool_2x2, max_pool_2x2_backward


@numba.njit(nogil=True, parallel=True, cache=True)
def forward_slices(x, W2, Wt, b, has_bias, relu, kh, kw, sh, sw, ph, pw, y, block_macs, bounds):  # pragma: no cover
    """Every slice ``bounds[s]:bounds[s+1]`` of the batch through the forward: per tap when ``Wt`` is not empty."""
    shifted = Wt.shape[0] > 0
    for s in numba.prange(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        if shifted:
            conv_shifted.forward_slice(x[lo:hi], Wt, b, has_bias, relu, kh, kw, ph, pw, y[lo:hi])
        else:
            forward_slice(x[lo:hi], W2, b, has_bias, relu, kh, kw, sh, sw, ph, pw, y[lo:hi], block_macs)


@numba.njit(nogil=True, parallel=True, cache=True)
def backward_slices(x, W2, Wt, gy, y, kh, kw, sh, sw, ph, pw, need_gx, need_gw, need_gb, gx, gw_parts, gw_taps,
                    gb_parts, block_macs, bounds):  # pragma: no cover - compiled
    """Every slice through the backward; slice ``s`` writes its ``gx`` images, ``gw_parts[s]`` and ``gb_parts[s]``.

    Per tap when ``Wt`` is not empty: then ``gw_taps`` is ``(S, KH*KW, OC, C)``, else ``gw_parts`` is
    ``(S, C*KH*KW, OC)`` (the im2col path's ``gW^T``); the unused weight and partials are empty arrays.
    """
    masked = y.shape[0] > 0
    shifted = Wt.shape[0] > 0
    for s in numba.prange(bounds.shape[0] - 1):
        lo, hi = bounds[s], bounds[s + 1]
        ys = y[lo:hi] if masked else y
        gxs = gx[lo:hi] if need_gx else gx
        if shifted:
            conv_shifted.backward_slice(x[lo:hi], Wt, gy[lo:hi], ys, kh, kw, ph, pw, need_gx, need_gw, need_gb,
                                        gxs, gw_taps[s], gb_parts[s])
        else:
            backward_slice(x[lo:hi], W2, gy[lo:hi], ys, kh, kw, sh, sw, ph, pw, need_gx, need_gw, need_gb, gxs,
                           gw_parts[s], gb_parts[s], block_macs)


def bounds_of(slices: list) -> Any:
    """The slices' edges as an int64 array (``slices`` contiguous and ordered)."""
    return numpy.array([s.start for s in slices] + [slices[-1].stop], dtype=numpy.int64)


# One driver per kernel, not one taking the kernel as an argument: Numba compiles a function with a
# dispatcher argument again in every process (its disk cache missed on each run), a second or more each.
@numba.njit(nogil=True, parallel=True, cache=True)
def max_pool_2x2_slices(x, y, argmax, bounds):  # pragma: no cover - compiled
    """``pool_tiled.max_pool_2x2`` over every slice; True when any slice met a NaN (the caller redoes the call)."""
    count = bounds.shape[0] - 1
    flags = numpy.zeros(count, dtype=numpy.bool_)
    for s in numba.prange(count):
        lo, hi = bounds[s], bounds[s + 1]
        flags[s] = max_pool_2x2(x[lo:hi], y[lo:hi], argmax[lo:hi])
    return flags.any()


@numba.njit(nogil=True, parallel=True, cache=True)
def max_pool_2x2_backward_slices(gy, argmax, gx, bounds):  # pragma: no cover - compiled
    """``pool_tiled.max_pool_2x2_backward`` over every slice; True when any slice met an argmax out of range."""
    count = bounds.shape[0] - 1
    flags = numpy.zeros(count, dtype=numpy.bool_)
    for s in numba.prange(count):
        lo, hi = bounds[s], bounds[s + 1]
        flags[s] = max_pool_2x2_backward(gy[lo:hi], argmax[lo:hi], gx[lo:hi])
    return flags.any()


def run_split(driver: Any, args: tuple, slices: list, workers: int) -> Any:
    """``driver(*args, bounds)`` on ``workers`` pool threads, each slice handed to whichever thread is free."""
    previous = pool_region.enter(workers, dynamic=True)
    try:
        return driver(*args, bounds_of(slices))
    finally:
        pool_region.leave(previous)


def call_on_pool(serial: Any, driver: Any, args: tuple, workers: int) -> Any:
    """``serial(*args)`` when the batch (axis 0 of ``args[0]``) is too small to split, else ``driver`` over slices.

    The split is ``batch_split.call_split``'s: one slice per worker, from ``MIN_SPLIT_ELEMENTS`` elements on.
    ``serial`` returns a flag; the result is whether any slice raised it.
    """
    first = args[0]
    n = first.shape[0]
    if workers <= 1 or n < 2 or first.size < batch_split.MIN_SPLIT_ELEMENTS:
        return serial(*args)
    if not pool_region.available():  # a forked child: the same slices on ember's Python threads
        return any(batch_split.call_split(serial, args, tuple(range(len(args))), workers))
    return run_split(driver, args, batch_split.split_slices([slice(0, n)], workers, per_worker=1), workers)
