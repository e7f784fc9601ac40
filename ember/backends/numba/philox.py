"""The Philox4x32-10 dropout mask compiled with Numba: one pass, bit-equal to ``reference.philox``.

The NumPy twin spends ten rounds of whole-array passes (products, shifts, xors
over uint64 temporaries); this loop keeps one block's four words in registers
and writes the mask directly.  float16 masks go to the reference (Numba has no
float16 stores).  Same stream, same threshold test, same rounding of
``1 / (1 - p)``: the masks are equal bit for bit (tests/backends/test_philox.py).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy

from ember.backends.reference import philox as _ref

_LO = numpy.uint64(0xFFFFFFFF)
_S32 = numpy.uint64(32)
_M0, _M1 = numpy.uint64(_ref.M0), numpy.uint64(_ref.M1)
_W0, _W1 = numpy.uint64(_ref.W0), numpy.uint64(_ref.W1)
_FAST = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


@numba.njit(cache=True)
def _fill_mask(out, seed, offset, threshold, keep, drop):  # pragma: no cover - compiled
    # Every constant is a uint64 so Numba never mixes signed and unsigned (which would give float64).
    n = out.shape[0]
    key0, key1 = seed & _LO, seed >> _S32
    for g in range((n + 3) // 4):
        block = offset + numpy.uint64(g)  # wraps mod 2**64, as the twin
        c0, c1, c2, c3 = block & _LO, block >> _S32, numpy.uint64(0), numpy.uint64(0)
        k0, k1 = key0, key1
        for r in range(_ref.ROUNDS):
            if r > 0:
                k0, k1 = (k0 + _W0) & _LO, (k1 + _W1) & _LO
            p0, p1 = c0 * _M0, c2 * _M1  # < 2**64: exact 32x32->64-bit products
            c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _LO, (p0 >> _S32) ^ c3 ^ k1, p0 & _LO
        i = 4 * g
        out[i] = keep if numpy.int64(c0) >= threshold else drop
        if i + 1 < n:
            out[i + 1] = keep if numpy.int64(c1) >= threshold else drop
        if i + 2 < n:
            out[i + 2] = keep if numpy.int64(c2) >= threshold else drop
        if i + 3 < n:
            out[i + 3] = keep if numpy.int64(c3) >= threshold else drop


def dropout_mask(shape: tuple, p: float, state: Any, dtype: Any, *, xp: Any = numpy) -> Any:
    """``reference.philox.dropout_mask`` in one compiled pass (float32/float64; else the reference)."""
    dtype = numpy.dtype(dtype)
    if dtype not in _FAST or type(state) is not numpy.ndarray:
        return _ref.dropout_mask(shape, p, state, dtype, xp=xp)
    n = math.prod(shape)
    out = numpy.empty(n, dtype=dtype)
    if n:
        seed, offset = state.view(numpy.uint64)
        scale = _ref.dropout_scale(p, dtype)
        with numpy.errstate(over="ignore"):  # the counter's wrap, seen only when NUMBA_DISABLE_JIT=1
            _fill_mask(out, seed, offset, numpy.int64(_ref.dropout_threshold(p)), scale, dtype.type(0))
        _ref.advance(state, _ref.blocks_for(n))
    return out.reshape(shape)
