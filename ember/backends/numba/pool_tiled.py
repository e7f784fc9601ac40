"""Numba max pooling for 2x2 windows at stride 2 without padding (every pooling of the book's nets).

The windows tile the image, so each output row reads one pair of input rows and
each input element belongs to at most one window.  That allows cheaper loops
than the general kernels of ``ember.backends.numba.pool``:

* forward: one pass that compares the four values of a window with selects
  (which LLVM vectorises over the output row) and notes whether any value was
  NaN, instead of a separate NaN scan of the whole input before the pass; the
  rare input holding a NaN is pooled again by the general NaN-aware loop;
* backward: each plane zeroed and then written at its windows' argmaxes while
  it is still in cache, with the argmax's row and column found by arithmetic
  (no table, no branch on the random argmax).

Same results as the reference, bit for bit: the argmax is the first maximum
in row-major window order (strict ``>``) while the value follows NumPy's
``maximum`` chain, which keeps the later of two equal values (so ``+0.0`` after
``-0.0`` gives ``+0.0``); the backward adds the gradient to a zero
(``0 + g``) as the reference's scatter does, so a ``-0.0`` gradient becomes
``+0.0`` there too.
"""

from __future__ import annotations

import numba


@numba.njit(nogil=True, cache=True, error_model="numpy")
def max_pool_2x2(x, y, argmax):  # pragma: no cover - compiled
    """``y``/``argmax`` of every 2x2 stride-2 window of ``x: (N, C, H, W)``; True when a NaN was read.

    With a NaN in a window the results of that window are not the reference's
    (the caller pools such inputs again with the NaN-aware kernel).
    """
    nan = False
    for b in range(y.shape[0]):
        for ch in range(y.shape[1]):
            for oy in range(y.shape[2]):
                top = x[b, ch, 2 * oy]
                bottom = x[b, ch, 2 * oy + 1]
                y_row = y[b, ch, oy]
                a_row = argmax[b, ch, oy]
                for ox in range(y.shape[3]):
                    v0 = top[2 * ox]
                    v1 = top[2 * ox + 1]
                    v2 = bottom[2 * ox]
                    v3 = bottom[2 * ox + 1]
                    nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
                    # argmax: the first maximum (strict >)
                    later = v1 > v0
                    best = v1 if later else v0
                    k = 1 if later else 0
                    later = v2 > best
                    best = v2 if later else best
                    k = 2 if later else k
                    a_row[ox] = 3 if v3 > best else k
                    # value: NumPy's maximum chain keeps the later of equal values (-0.0 vs +0.0)
                    top_value = v1 if v1 >= v0 else v0
                    top_value = v2 if v2 >= top_value else top_value
                    y_row[ox] = v3 if v3 >= top_value else top_value
    return nan


@numba.njit(nogil=True, cache=True, error_model="numpy")
def max_pool_2x2_backward(gy, argmax, gx):  # pragma: no cover - compiled
    """Write ``gx: (N, C, H, W)`` from ``gy``/``argmax`` of 2x2 stride-2 windows; returns the bad argmax count.

    Each plane is zeroed (it is in cache afterwards) and every window's ``0 + gy``
    is stored at its argmax, whose row and column come from the index by
    arithmetic rather than a branch (argmaxes are random, so branches would
    mispredict).  An argmax outside ``[0, 4)`` leaves its window zero and is counted.
    """
    n, c, h, w = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    zero = gx.dtype.type(0)
    bad = 0
    for b in range(n):
        for ch in range(c):
            plane = gx[b, ch]
            for yy in range(h):
                for xx in range(w):
                    plane[yy, xx] = zero
            for oy in range(oh):
                g_row = gy[b, ch, oy]
                a_row = argmax[b, ch, oy]
                for ox in range(ow):
                    k = a_row[ox]
                    if k < 0 or k > 3:
                        bad += 1
                        continue
                    plane[2 * oy + (k >> 1), 2 * ox + (k & 1)] = zero + g_row[ox]
    return bad


def tiles_2x2(kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> bool:
    """True for the geometry these kernels serve: a 2x2 window, stride 2, no padding."""
    return kh == kw == 2 and sh == sw == 2 and ph == pw == 0

