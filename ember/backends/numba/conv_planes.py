"""Per-plane im2col/col2im loops shared by ``conv`` (batched kernels) and ``conv_fused`` (whole-conv slices).

Each function handles one ``(H, W)`` plane; the callers loop over planes and
images.  They live in their own module so that ``conv`` and ``conv_fused`` do
not import each other.  Numba's on-disk cache of a compiled caller is keyed on
the caller's file alone: after editing these loops, clear the ``__pycache__``
next to this file (or touch ``conv.py`` and ``conv_fused.py``).
"""

from __future__ import annotations

import numba


@numba.njit(nogil=True, cache=True)
def _im2col_plane(xp, kh, kw, sh, sw, cp):  # pragma: no cover - compiled
    """``cp[i, j, oy, ox] = xp[oy*sh + i, ox*sw + j]`` for one already padded plane.

    Plain element indexing with indices LLVM can prove non-negative: a row view
    (``xp[iy]``) or a possibly negative offset (Numba's wraparound test) inside
    these loops stopped vectorisation and made the kernel 5-10x slower.
    """
    oh, ow = cp.shape[2], cp.shape[3]
    for i in range(kh):
        for j in range(kw):
            for oy in range(oh):
                iy = oy * sh + i
                if sw == 1:
                    for ox in range(ow):
                        cp[i, j, oy, ox] = xp[iy, ox + j]
                else:
                    for ox in range(ow):
                        cp[i, j, oy, ox] = xp[iy, ox * sw + j]


@numba.njit(nogil=True, cache=True)
def _pad_plane(src, ph, pw, buf):  # pragma: no cover - compiled
    """Copy ``src`` into the interior of ``buf``, whose border already holds the pad value."""
    for yy in range(src.shape[0]):
        for xx in range(src.shape[1]):
            buf[yy + ph, xx + pw] = src[yy, xx]


@numba.njit(nogil=True, cache=True)
def _col2im_plane(cp, sh, sw, xp):  # pragma: no cover - compiled
    """``xp = sum over (i, j)`` of ``cp[i, j]`` placed at offset ``(i, j)`` of a padded plane."""
    kh, kw, oh, ow = cp.shape
    xp[:, :] = 0
    for i in range(kh):
        for j in range(kw):
            for oy in range(oh):
                iy = oy * sh + i
                if sw == 1:
                    for ox in range(ow):
                        xp[iy, ox + j] += cp[i, j, oy, ox]
                else:
                    for ox in range(ow):
                        xp[iy, ox * sw + j] += cp[i, j, oy, ox]


@numba.njit(nogil=True, cache=True)
def _crop_plane(buf, ph, pw, dst):  # pragma: no cover - compiled
    """``dst = buf`` without its padding border."""
    for yy in range(dst.shape[0]):
        for xx in range(dst.shape[1]):
            dst[yy, xx] = buf[yy + ph, xx + pw]
