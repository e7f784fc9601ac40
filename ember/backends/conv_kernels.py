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

import numbers
from typing import Any

import numpy

from ember.errors import ShapeError

Pair = tuple[int, int]
IntOrPair = int | tuple[int, int]


def pair(
    value: int | tuple[int, int],
    name: str,
    *,
    minimum: int | None = None,
    op: str = "conv2d",
) -> Pair:
    """Normalise an int or a 2-sequence of ints to an ``(h, w)`` tuple.

    Args:
        value: An int (used for both dims) or a pair ``(h, w)`` of ints.
        name: Argument name used in error messages (``"stride"``, ``"padding"``, ...).
        minimum: Smallest allowed value. Defaults to 0 for names containing
            ``"padding"`` and 1 otherwise (strides and kernel sizes).
        op: Op name used as the message prefix.

    Returns:
        ``(h, w)`` as Python ints.

    Raises:
        TypeError: ``value`` is not an int or a pair of ints (bools are rejected).
        ValueError: A component is below ``minimum`` (negative padding, zero stride).
    """
    if minimum is None:
        minimum = 0 if "padding" in name else 1

    def is_int(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if type(value) is int:  # the common cases first: this runs ~270 times per DeepConvNet step
        out = (value, value)
    elif type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        out = value
    elif is_int(value):
        out = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(is_int(v) for v in value)
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise TypeError(
            f"{op}: expected {name} to be an int or a pair of ints, got {value!r}"
        )
    if out[0] < minimum or out[1] < minimum:
        kind = "non-negative" if minimum == 0 else f">= {minimum}"
        raise ValueError(f"{op}: expected {name} {kind}, got {value!r}")
    return out


def conv_output_size(
    in_size: int, kernel: int, stride: int, padding: int, *, op: str = "conv2d"
) -> int:
    """Output length along one spatial axis: ``(in + 2 * pad - kernel) // stride + 1``.

    Args:
        in_size: Input length (H or W), >= 1.
        kernel: Kernel length, >= 1.
        stride: Stride, >= 1.
        padding: Zero padding added on both sides, >= 0.
        op: Op name used as the message prefix.

    Returns:
        The output length, >= 1 (trailing rows a stride cannot reach are dropped).

    Raises:
        ValueError: Bad argument values, or the kernel is larger than the padded input.
    """
    for value, name, lo in (
        (in_size, "input size", 1),
        (kernel, "kernel", 1),
        (stride, "stride", 1),
        (padding, "padding", 0),
    ):
        if value < lo:
            raise ValueError(f"{op}: expected {name} >= {lo}, got {value}")
    padded = in_size + 2 * padding
    if kernel > padded:
        raise ShapeError(
            f"{op}: kernel {kernel} larger than padded input {padded} "
            f"(input {in_size} + 2*padding {padding})"
        )
    return (padded - kernel) // stride + 1


def check_nchw(x: Any, op: str) -> None:
    """Raise ``ShapeError`` naming ``op`` unless ``x`` is 4-D (NCHW)."""
    if x.ndim != 4:
        raise ShapeError(
            f"{op}: expected x of shape (N, C, H, W), got shape {tuple(x.shape)}"
        )


def window_geometry(
    x_shape: tuple[int, ...],
    kh: int,
    kw: int,
    stride: IntOrPair,
    padding: IntOrPair,
    op: str,
) -> tuple[int, int, int, int, int, int]:
    """Validate window arguments for an ``(N, C, H, W)`` input.

    Args:
        x_shape: ``(N, C, H, W)``.
        kh: Kernel height.
        kw: Kernel width.
        stride: ``sh`` or ``(sh, sw)``.
        padding: ``ph`` or ``(ph, pw)``.
        op: Op name used as the message prefix.

    Returns:
        ``(sh, sw, ph, pw, oh, ow)``.

    Raises:
        ValueError: Bad stride/padding/kernel or kernel larger than the padded input.
    """
    if len(x_shape) != 4:
        raise ShapeError(f"{op}: expected an (N, C, H, W) shape, got {tuple(x_shape)}")
    kh, kw = pair((kh, kw), "kernel size", op=op)
    sh, sw = pair(stride, "stride", op=op)
    ph, pw = pair(padding, "padding", op=op)
    h, w = x_shape[2], x_shape[3]
    oh = conv_output_size(h, kh, sh, ph, op=op)
    ow = conv_output_size(w, kw, sw, pw, op=op)
    return sh, sw, ph, pw, oh, ow


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
    x_shape = tuple(int(s) for s in x_shape)
    sh, sw, ph, pw, oh, ow = window_geometry(x_shape, kh, kw, stride, padding, "col2im")
    n, c, h, w = x_shape
    expected = (n, c, kh, kw, oh, ow)
    if tuple(col.shape) != expected:
        raise ShapeError(
            f"col2im: expected col of shape {expected} for x_shape {x_shape}, "
            f"got {tuple(col.shape)}"
        )
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


def check_out(out: Any, shape: tuple, dtype: Any, op: str = "col2im") -> Any:
    """Return ``out`` after checking it can hold a ``shape``/``dtype`` result.

    Raises:
        ShapeError: wrong shape.
        TypeError: wrong dtype.
        ValueError: ``out`` is read-only.
    """
    if tuple(out.shape) != tuple(shape):
        raise ShapeError(f"{op}: expected out of shape {tuple(shape)}, got {tuple(out.shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: expected out of dtype {dtype}, got {out.dtype}")
    if not getattr(out.flags, "writeable", True):
        raise ValueError(f"{op}: expected a writeable out, got a read-only array of shape {tuple(out.shape)}")
    return out


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
