"""Array-level im2col/col2im kernels for 2-D convolution (no autograd).

Every function works on raw NCHW arrays and takes the array module as the
``xp`` keyword (``numpy`` by default, ``cupy`` on the GPU), using only ``xp.``
functions, so one body serves both backends.

Column layout. ``im2col`` returns ``col`` of shape ``(N, C, KH, KW, OH, OW)``:
``col[n, c, i, j, oh, ow] == x_padded[n, c, oh * sh + i, ow * sw + j]``.
Keeping the kernel offsets ``(i, j)`` as their own axes, next to ``C``, has
three advantages over the book's ``(N * OH * OW, C * KH * KW)`` matrix:

* it is filled by ``KH * KW`` strided slice copies of the padded input (the
  book's ch. 7 trick): no Python loop over pixels and no transpose copy;
* ``col.reshape(N, C * KH * KW, OH * OW)`` is exactly PyTorch's ``unfold``, and
  the convolution is one ``tensordot`` over the ``(C, KH, KW)`` axes;
* pooling reads a window as ``col.reshape(N, C, KH * KW, OH, OW)`` and reduces
  axis 2 directly.

``col2im`` is the exact adjoint (transpose) of ``im2col``: for any ``x`` and
``c``, ``<im2col(x), c> == <x, col2im(c)>``. Overlapping windows are summed and
the padding border is cropped.

Memory. The workspace is ``KH * KW * OH * OW / (H * W)`` times the input
(about ``KH * KW`` for stride 1), so callers split the batch with
``im2col_batch_chunks`` and run im2col + GEMM per chunk.

Dtypes are preserved: float16/32/64 in, same dtype out. ``col2im`` accumulates
in the input dtype (at most ``ceil(KH/SH) * ceil(KW/SW)`` terms per pixel).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.geometry import IntOrPair, check_nchw, check_out, col2im_geometry, window_geometry


def im2col(
    x: Any,
    kh: int,
    kw: int,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    *,
    xp: Any = numpy,
    pad_value: float = 0.0,
    out: Any = None,
) -> Any:
    """Unfold sliding ``KH x KW`` windows of ``x`` into columns.

    ``col[n, c, i, j, oh, ow] = x_pad[n, c, oh * sh + i, ow * sw + j]`` where ``x_pad``
    is ``x`` padded by ``(ph, pw)`` with ``pad_value``.

    Args:
        x: ``(N, C, H, W)``, floating.
        kh: Kernel height.
        kw: Kernel width.
        stride: ``sh`` or ``(sh, sw)``, each >= 1.
        padding: ``ph`` or ``(ph, pw)``, each >= 0.
        xp: Array module of ``x`` (``numpy`` or ``cupy``).
        pad_value: Value of the padding border (``-inf`` for max pooling).
        out: Optional ``(N, C, KH, KW, OH, OW)`` array of ``x``'s dtype to write into.

    Returns:
        ``col``: ``(N, C, KH, KW, OH, OW)``, same dtype as ``x``, C-contiguous
        (``out`` when given).

    Raises:
        ValueError: Bad stride/padding/kernel, or ``x`` is not 4-D (``ShapeError``).
    """
    check_nchw(x, "im2col")
    sh, sw, ph, pw, oh, ow = window_geometry(x.shape, kh, kw, stride, padding, "im2col")
    n, c = x.shape[:2]
    if ph or pw:
        x = xp.pad(
            x,
            ((0, 0), (0, 0), (ph, ph), (pw, pw)),
            mode="constant",
            constant_values=pad_value,
        )
    shape = (n, c, kh, kw, oh, ow)
    col = xp.empty(shape, dtype=x.dtype) if out is None else check_out(out, shape, x.dtype, "im2col")
    # One strided-slice copy per kernel offset: KH*KW vectorised copies in total.
    for i in range(kh):
        i_end = i + sh * oh
        for j in range(kw):
            j_end = j + sw * ow
            col[:, :, i, j, :, :] = x[:, :, i:i_end:sh, j:j_end:sw]
    return col


def col2im(
    col: Any,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    *,
    xp: Any = numpy,
    out: Any = None,
) -> Any:
    """Fold columns back into an image, summing overlaps (the adjoint of ``im2col``).

    ``x[n, c, h, w] = sum of col[n, c, i, j, oh, ow] over oh * sh + i - ph == h,
    ow * sw + j - pw == w``; contributions that land in the padding are dropped.

    Args:
        col: ``(N, C, KH, KW, OH, OW)``, floating (may be a broadcast view).
        x_shape: ``(N, C, H, W)`` of the image ``col`` was unfolded from.
        kh: Kernel height.
        kw: Kernel width.
        stride: ``sh`` or ``(sh, sw)``.
        padding: ``ph`` or ``(ph, pw)``.
        xp: Array module of ``col``.
        out: Optional ``(N, C, H, W)`` array of ``col``'s dtype to write the result into.

    Returns:
        ``x``: ``(N, C, H, W)``, same dtype as ``col`` (``out`` when given).

    Raises:
        ValueError: Bad arguments, or ``col`` does not fit ``x_shape`` (``ShapeError``).
    """
    x_shape, (sh, sw, ph, pw, oh, ow) = col2im_geometry(col, x_shape, kh, kw, stride, padding)
    n, c, h, w = x_shape
    img = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    # Each kernel offset writes a disjoint strided lattice, so `+=` on the slice
    # view never aliases within one step; overlaps are summed across steps.
    for i in range(kh):
        i_end = i + sh * oh
        for j in range(kw):
            j_end = j + sw * ow
            img[:, :, i:i_end:sh, j:j_end:sw] += col[:, :, i, j, :, :]
    if out is not None:
        check_out(out, x_shape, col.dtype)[...] = img[:, :, ph : ph + h, pw : pw + w]
        return out
    if ph or pw:
        # Copy the crop so the caller does not keep the padded buffer alive.
        img = xp.ascontiguousarray(img[:, :, ph : ph + h, pw : pw + w])
    return img


def batch_workers() -> int:
    """Threads the ops may split a batch over with these kernels: the reference runs inline."""
    return 1


def im2col_batch_chunks(
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    itemsize: int,
    budget_bytes: int = 256 << 20,
    *,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> list[slice]:
    """Split the batch so each chunk's ``col`` workspace fits in ``budget_bytes``.

    One sample's ``col`` takes ``C * KH * KW * OH * OW * itemsize`` bytes. Callers run
    ``im2col(x[s])`` + GEMM for each returned slice ``s`` and concatenate (forward)
    or accumulate (``gW``) the results, so the peak workspace is bounded by the
    budget instead of growing with N. A chunk always holds at least one sample,
    even if that sample alone exceeds the budget.

    Args:
        x_shape: ``(N, C, H, W)`` of the input.
        kh: Kernel height.
        kw: Kernel width.
        itemsize: Bytes per element (``x.dtype.itemsize``).
        budget_bytes: Workspace budget per chunk in bytes, > 0 (default 256 MiB).
        stride: ``sh`` or ``(sh, sw)``, for the exact ``OH, OW``.
        padding: ``ph`` or ``(ph, pw)``, for the exact ``OH, OW``.

    Returns:
        Contiguous, non-overlapping slices covering ``range(N)`` in order
        (empty list when ``N == 0``).

    Raises:
        ValueError: ``budget_bytes`` or ``itemsize`` is not positive, or bad geometry.
    """
    if budget_bytes <= 0 or itemsize <= 0:
        raise ValueError(
            "im2col_batch_chunks: expected positive budget_bytes and itemsize, "
            f"got {budget_bytes}, {itemsize}"
        )
    n, c = int(x_shape[0]), int(x_shape[1])
    _, _, _, _, oh, ow = window_geometry(
        tuple(x_shape), kh, kw, stride, padding, "im2col_batch_chunks"
    )
    per_sample = c * kh * kw * oh * ow * itemsize
    chunk = max(1, budget_bytes // max(per_sample, 1))
    return [slice(start, min(start + chunk, n)) for start in range(0, n, chunk)]
