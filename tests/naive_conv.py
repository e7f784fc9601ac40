"""Independent loop references for convolution tests: im2col, col2im and conv2d in float64.

Written with explicit loops over the window, so they share no code with the kernels they check.
"""

from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_out(h, w, kh, kw, stride, padding):
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def naive_im2col(x, kh, kw, stride, padding):
    """col[n, c, i, j, oh, ow] = x[n, c, oh*sh + i - ph, ow*sw + j - pw], 0 outside."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, w = x.shape
    oh, ow = naive_out(h, w, kh, kw, stride, padding)
    col = np.zeros((n, c, kh, kw, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            for y in range(oh):
                for z in range(ow):
                    r, q = y * sh + i - ph, z * sw + j - pw
                    if 0 <= r < h and 0 <= q < w:
                        col[:, :, i, j, y, z] = x[:, :, r, q]
    return col


def naive_col2im(col, x_shape, kh, kw, stride, padding):
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, w = x_shape
    oh, ow = col.shape[4:]
    x = np.zeros(x_shape, dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            for y in range(oh):
                for z in range(ow):
                    r, q = y * sh + i - ph, z * sw + j - pw
                    if 0 <= r < h and 0 <= q < w:
                        x[:, :, r, q] += col[:, :, i, j, y, z]
    return x


def naive_conv2d(x, W, b, stride, padding):
    """y[n, o, p, q] = sum_{c,i,j} W[o, c, i, j] x[n, c, p*sh + i - ph, q*sw + j - pw] + b[o]."""
    kh, kw = W.shape[2:]
    col = naive_im2col(x.astype(np.float64), kh, kw, stride, padding)
    y = np.einsum("ncijpq,ocij->nopq", col, W.astype(np.float64))
    if b is not None:
        y += b[None, :, None, None]
    return y
