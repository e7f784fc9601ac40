"""Shape arithmetic shared by every backend's window kernels (conv, pooling, im2col).

Argument normalisation (``pair``), output sizes, NCHW and ``out=`` checks: pure
Python on shapes, no arrays computed, so the reference, Numba and CuPy kernels
and the ops all validate the same way and word their errors the same way.
"""

from __future__ import annotations

import numbers
from typing import Any

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


def pool_geometry(
    x_shape: tuple[int, ...], kh: int, kw: int, stride: Any, padding: Any, op: str
) -> tuple[int, ...]:
    """``window_geometry`` plus PyTorch's rule ``padding <= kernel // 2``."""
    kh, kw = pair((kh, kw), "kernel size", op=op)
    ph, pw = pair(padding, "padding", op=op)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"{op}: expected padding at most half the kernel size {(kh, kw)}, "
            f"got padding {(ph, pw)}"
        )
    return window_geometry(tuple(x_shape), kh, kw, stride, padding, op)


def check_grad(gy: Any, expected: tuple[int, ...], op: str, name: str = "gy") -> None:
    """Raise ``ShapeError`` naming ``op`` unless ``gy`` (or the array called ``name``) has shape ``expected``."""
    if tuple(gy.shape) != expected:
        raise ShapeError(
            f"{op}: expected {name} of shape {expected}, got {tuple(gy.shape)}"
        )


def pool_backward_geometry(
    gy: Any, x_shape: tuple, kh: int, kw: int, stride: Any, padding: Any, op: str, argmax: Any = None
) -> tuple[tuple[int, int, int, int], tuple[int, ...]]:
    """``(x_shape as ints, (sh, sw, ph, pw, oh, ow))`` of a pooling backward, after checking ``gy`` (and ``argmax``).

    Raises:
        ValueError: bad geometry.
        ShapeError: ``gy`` or ``argmax`` is not ``(N, C, OH, OW)``.
    """
    x_shape = tuple(int(s) for s in x_shape)
    geo = pool_geometry(x_shape, kh, kw, stride, padding, op)
    expected = (x_shape[0], x_shape[1], geo[4], geo[5])
    check_grad(gy, expected, op)
    if argmax is not None:
        check_grad(argmax, expected, op, "argmax")
    return x_shape, geo


def col2im_geometry(
    col: Any, x_shape: tuple, kh: int, kw: int, stride: Any, padding: Any
) -> tuple[tuple[int, int, int, int], tuple[int, ...]]:
    """``(x_shape as ints, (sh, sw, ph, pw, oh, ow))`` of a col2im call, after checking ``col``'s shape.

    Raises:
        ValueError: bad geometry.
        ShapeError: ``col`` is not ``(N, C, KH, KW, OH, OW)`` for ``x_shape``.
    """
    x_shape = tuple(int(s) for s in x_shape)
    geo = window_geometry(x_shape, kh, kw, stride, padding, "col2im")
    expected = (x_shape[0], x_shape[1], kh, kw, geo[4], geo[5])
    if tuple(col.shape) != expected:
        raise ShapeError(
            f"col2im: expected col of shape {expected} for x_shape {x_shape}, got {tuple(col.shape)}"
        )
    return x_shape, geo
