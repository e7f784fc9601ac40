"""A linear layer's kernels around its products: the forward's epilogue and the backward's output gradient.

``linear_forward`` is ``max(x @ w_t + b, 0)`` (ReLU optional): the bias and the ReLU run
inside ``parallel_gemm``'s blocks, on the core that just wrote those rows or columns,
instead of two more passes over the result.  ``linear_grad_output`` turns the
gradient arriving at a rectified layer into the one its products need, ``gz = gy * (y > 0)``,
and sums the bias gradient ``gb = sum(gz, axis=0)`` in the same pass.  The columns are cut
into parts on Numba's pool; every column is summed over the rows in order, as NumPy's
``sum(axis=0)`` does, so the bits do not depend on the cut and equal the unfused ops'.
The references (the readable spec) are ``ember.backends.reference.nn.linear_forward`` and
``linear_grad_output``.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy

from ember.backends.numba import pool_flat
from ember.backends.numba.parallel_gemm import FLOAT_DTYPES, NO_BIAS, matmul
from ember.backends.reference import nn as _ref

def linear_forward(x: Any, w_t: Any, b: Any, relu: bool, workers: int, *, xp: Any = numpy) -> Any:
    """``x @ w_t + b`` for a 2-D ``x``, then ``max(., 0)`` when ``relu`` (NaN kept); ``b`` may be None."""
    if type(x) is not numpy.ndarray:
        return _ref.linear_forward(x, w_t, b, relu, workers, xp=xp)
    return matmul(x, w_t, workers, bias=b, relu=relu)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _mask_columns(gy, y, gz, zero, c0, c1):  # pragma: no cover - compiled
    """``gz = gy where y > 0 else 0`` on columns ``c0:c1``, over 1-D slices of the rows (LLVM vectorises
    those; indexing the 2-D arrays ran 8x slower)."""
    for i in range(gy.shape[0]):
        g, yi, z = gy[i, c0:c1], y[i, c0:c1], gz[i, c0:c1]
        for j in range(c1 - c0):
            z[j] = g[j] if yi[j] > zero else zero


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _sum_columns(src, gb, c0, c1):  # pragma: no cover - compiled
    """``gb[c0:c1] = src[:, c0:c1].sum(axis=0)``, the rows added in order as NumPy does."""
    acc = gb[c0:c1]
    if src.shape[0] == 0:
        acc[:] = 0
        return
    first = src[0, c0:c1]
    for j in range(c1 - c0):
        acc[j] = first[j]
    for i in range(1, src.shape[0]):
        row = src[i, c0:c1]
        for j in range(c1 - c0):
            acc[j] += row[j]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _grad_columns(gy, y, gz, gb, rectify, sum_bias, zero, c0, c1):  # pragma: no cover - compiled
    """Columns ``c0:c1`` of ``linear_grad_output``: the mask (when ``rectify``), then the bias sums."""
    if rectify:
        _mask_columns(gy, y, gz, zero, c0, c1)
        if sum_bias:
            _sum_columns(gz, gb, c0, c1)
    elif sum_bias:
        _sum_columns(gy, gb, c0, c1)


@numba.njit(nogil=True, parallel=True, cache=True, error_model="numpy")
def _grad_parts(gy, y, gz, gb, rectify, sum_bias, zero, count):  # pragma: no cover - compiled
    """``_grad_columns`` over ``count`` column ranges, one per ``prange`` step."""
    n = gy.shape[1]
    for p in numba.prange(count):
        _grad_columns(gy, y, gz, gb, rectify, sum_bias, zero, n * p // count, n * (p + 1) // count)


def linear_grad_output(gy: Any, y: Any, need_bias: bool, workers: int, *, xp: Any = numpy) -> tuple:
    """``(gz, gb)`` for a 2-D ``gy``: ``gz = gy * (y > 0)`` (``gy`` itself when ``y`` is None: no ReLU)
    and ``gb = gz.sum(axis=0)`` (None unless ``need_bias``).  ``workers`` is unused: the pool decides."""
    rectify = y is not None
    if not rectify and not need_bias:
        return gy, None
    if (type(gy) is not numpy.ndarray or gy.dtype not in FLOAT_DTYPES or not gy.flags.c_contiguous or gy.ndim != 2
            or (rectify and (type(y) is not numpy.ndarray or y.dtype != gy.dtype or y.shape != gy.shape
                             or not y.flags.c_contiguous))):
        return _ref.linear_grad_output(gy, y, need_bias, workers, xp=xp)
    # Without the mask no gz is written: a (0, 0) stand-in keeps a read-only gy out of the written slot.
    gz = numpy.empty_like(gy) if rectify else numpy.empty((0, 0), gy.dtype)
    gb = numpy.empty(gy.shape[1], dtype=gy.dtype) if need_bias else NO_BIAS[gy.dtype]
    args = (gy, y if rectify else gy, gz, gb, rectify, need_bias, gy.dtype.type(0))
    size = gy.size if gy.shape[1] >= 2 * pool_flat.ALIGN else 0  # too few columns to cut: serial
    pool_flat.run(size, _grad_columns, args + (0, gy.shape[1]), _grad_parts, args)
    return (gz if rectify else gy), (gb if need_bias else None)
