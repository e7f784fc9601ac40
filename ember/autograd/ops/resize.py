"""``interpolate`` (nearest, nearest-exact, linear, bilinear) and adaptive average pooling.

Both are separable linear maps: along each spatial axis the output is ``A @ x`` with a constant
``(out, in)`` matrix ``A`` (one-hot rows for nearest, two weights per row for linear, the
window averages for adaptive pooling).  So each op is a composition of ``matmul`` with constant
matrices, one per axis: exact gradients (``A^T @ gy``) and double backward for free, and BLAS
speed.  The matrices follow PyTorch's source-index rules (``align_corners``, ``scale_factor``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from ember.autograd.ops.linalg import matmul
from ember.autograd.ops.operands import require_floating
from ember.autograd.ops.padding import on_device
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import ShapeError

MODES = {"nearest": None, "nearest-exact": None, "linear": 1, "bilinear": 2}


def _source(kind: str, out: int, n: int, scale: float | None, align_corners: bool = False) -> numpy.ndarray:
    """PyTorch's source coordinate of each output position (before clamping).

    ``kind``: ``"nearest"`` (``j r``), ``"nearest-exact"`` (``(j + 1/2) r``) or ``"linear"``
    (``(j + 1/2) r - 1/2``, or ``j (n-1)/(out-1)`` with ``align_corners``); ``r = 1/scale`` when a
    scale factor is given, else ``n / out``.
    """
    j = numpy.arange(out, dtype=numpy.float64)
    if align_corners:
        return j * ((n - 1) / (out - 1)) if out > 1 else numpy.zeros(out)
    ratio = 1.0 / scale if scale else n / out
    if kind == "nearest":
        return j * ratio
    return (j + 0.5) * ratio - (0.5 if kind == "linear" else 0.0)


def _nearest_matrix(out: int, n: int, scale: float | None, exact: bool) -> numpy.ndarray:
    kind = "nearest-exact" if exact else "nearest"
    src = numpy.minimum(numpy.floor(_source(kind, out, n, scale)).astype(numpy.int64), n - 1)
    A = numpy.zeros((out, n))
    A[numpy.arange(out), src] = 1.0
    return A


def _linear_matrix(out: int, n: int, scale: float | None, align_corners: bool) -> numpy.ndarray:
    src = _source("linear", out, n, scale, align_corners)
    src = numpy.maximum(src, 0.0)  # PyTorch clamps negative source coordinates to the first element
    i0 = numpy.minimum(numpy.floor(src).astype(numpy.int64), n - 1)
    i1 = numpy.minimum(i0 + 1, n - 1)
    lam = src - i0
    A = numpy.zeros((out, n))
    rows = numpy.arange(out)
    numpy.add.at(A, (rows, i0), 1.0 - lam)
    numpy.add.at(A, (rows, i1), lam)
    return A


def _apply_axes(x: Tensor, mats: list) -> Tensor:
    """``x`` with matrix ``mats[k]`` applied along spatial axis ``k`` (the axes after N, C)."""
    nsp = len(mats)
    for k, A in enumerate(mats):
        if A is None:
            continue
        At = Tensor._make(on_device(x, A.T.astype(x.dtype)))
        axis = x.ndim - nsp + k
        if axis == x.ndim - 1:
            x = matmul(x, At)
        else:
            x = matmul(x.swapaxes(axis, -1), At).swapaxes(axis, -1)
    return x


def _check_input(op: str, x: Any, min_nd: int, max_nd: int) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected x to be a Tensor, got {type(x).__name__}")
    require_floating(op, x)
    if not min_nd <= x.ndim <= max_nd:
        raise ShapeError(f"{op}: expected a {min_nd}-D to {max_nd}-D input, got shape {tuple(x.shape)}")


def _per_axis(op: str, name: str, value: Any, count: int, cast: type) -> list:
    values = list(value) if isinstance(value, (tuple, list)) else [value] * count
    if len(values) != count:
        raise ValueError(f"{op}: expected {name} with {count} entries (one per spatial axis), got {value!r}")
    return [cast(v) for v in values]


def _interpolate_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(1, 2, 3, 4)), size=(5, 7), mode="bilinear", note="bilinear up"),
        sample(n(size=(2, 1, 5, 6)), scale_factor=0.5, mode="bilinear", align_corners=True, note="bilinear down, corners"),
        sample(n(size=(1, 2, 3, 3)), scale_factor=2, note="nearest x2"),
        sample(n(size=(1, 1, 4, 5)), size=(3, 7), mode="nearest-exact", note="nearest-exact"),
        sample(n(size=(2, 2, 5)), size=8, mode="linear", note="linear 1-D"),
    ]


@register("interpolate", samples=_interpolate_samples)
def interpolate(x: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None) -> Tensor:
    """Resize the spatial axes (PyTorch's ``F.interpolate``) by per-axis interpolation matrices.

    Args:
        x: ``(N, C, L)``, ``(N, C, H, W)`` (or 5-D for nearest), floating.
        size: the output spatial size (int or one per axis); or
        scale_factor: multiplier(s); the output is ``floor(in * scale)``, and the source index uses
            ``1 / scale`` unless ``recompute_scale_factor=True`` (then ``in / out``), as PyTorch.
        mode: ``"nearest"``, ``"nearest-exact"``, ``"linear"`` (3-D input) or ``"bilinear"`` (4-D).
        align_corners: linear modes only: map the corner pixels' centres onto each other.

    Returns:
        ``(N, C, *size)``. Backward: ``gx = A^T gy`` along each axis.

    Raises:
        ValueError: both or neither of size/scale_factor, unknown mode, align_corners with nearest.
        ShapeError: the mode does not fit the input's rank, an empty output.
    """
    op = "interpolate"
    _check_input(op, x, 3, 5)
    if mode not in MODES:
        raise ValueError(f"{op}: expected mode to be one of {tuple(MODES)}, got {mode!r}")
    nsp = x.ndim - 2
    if MODES[mode] is not None and MODES[mode] != nsp:
        raise ShapeError(f"{op}: mode {mode!r} expects a {MODES[mode] + 2}-D input, got shape {tuple(x.shape)}")
    if MODES[mode] is None and align_corners is not None:
        raise ValueError(f"{op}: align_corners applies to the linear modes only, got it with mode {mode!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: expected exactly one of size and scale_factor, got size={size}, "
                         f"scale_factor={scale_factor}")
    spatial = tuple(x.shape[2:])
    if min(spatial) < 1:
        raise ShapeError(f"{op}: expected non-empty spatial axes, got input of shape {tuple(x.shape)}")
    if size is not None:
        out = _per_axis(op, "size", size, nsp, int)
        scales = [None] * nsp
    else:
        factors = _per_axis(op, "scale_factor", scale_factor, nsp, float)
        if min(factors) <= 0:
            raise ValueError(f"{op}: expected positive scale factors, got {scale_factor!r}")
        out = [int(math.floor(n * f)) for n, f in zip(spatial, factors)]
        scales = [None] * nsp if recompute_scale_factor else factors
    if min(out) < 1:
        raise ShapeError(f"{op}: the output size {tuple(out)} is empty for input of shape {tuple(x.shape)}")
    mats = []
    for o, n, s in zip(out, spatial, scales):
        if mode in ("nearest", "nearest-exact"):
            A = _nearest_matrix(o, n, s, mode == "nearest-exact")
        else:
            A = _linear_matrix(o, n, s, bool(align_corners))
        mats.append(None if o == n and numpy.array_equal(A, numpy.eye(n)) else A)
    return _apply_axes(x, mats)


def _adaptive_matrix(out: int, n: int) -> numpy.ndarray:
    """Row ``i`` averages ``x[floor(i n / out) : ceil((i + 1) n / out)]`` (PyTorch's windows)."""
    A = numpy.zeros((out, n))
    for i in range(out):
        lo, hi = (i * n) // out, -((-(i + 1) * n) // out)
        A[i, lo:hi] = 1.0 / (hi - lo)
    return A


def _adaptive_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(2, 2, 5, 7)), (3, 4), note="uneven windows"),
        sample(n(size=(1, 3, 4, 4)), 1, note="global average"),
        sample(n(size=(2, 3, 5)), (2, None), note="3-D input, keep width"),
    ]


@register("adaptive_avg_pool2d", samples=_adaptive_samples)
def adaptive_avg_pool2d(x: Tensor, output_size: Any) -> Tensor:
    """Average over PyTorch's adaptive windows to a fixed ``(OH, OW)`` (``None`` keeps an axis).

    Args:
        x: ``(N, C, H, W)`` or ``(C, H, W)``, floating.
        output_size: ``s`` or ``(oh, ow)``, entries positive ints or None.

    Returns:
        ``(..., OH, OW)``: ``y[i, j]`` is the mean of rows ``floor(i H/OH) .. ceil((i+1) H/OH)``
        and the likewise columns. Backward: each ``gy`` spread evenly over its window.

    Raises:
        ShapeError: x not 3-D/4-D or empty. ValueError: a non-positive output size.
    """
    op = "adaptive_avg_pool2d"
    _check_input(op, x, 3, 4)
    sizes = list(output_size) if isinstance(output_size, (tuple, list)) else [output_size] * 2
    if len(sizes) != 2:
        raise ValueError(f"{op}: expected output_size as an int or a pair, got {output_size!r}")
    spatial = tuple(x.shape[-2:])
    if min(spatial) < 1:
        raise ShapeError(f"{op}: expected a non-empty image, got shape {tuple(x.shape)}")
    out = [n if s is None else s for s, n in zip(sizes, spatial)]
    if not all(isinstance(o, (int, numpy.integer)) and o >= 1 for o in out):
        raise ValueError(f"{op}: expected positive output sizes, got {output_size!r}")
    mats = [None if o == n else _adaptive_matrix(int(o), n) for o, n in zip(out, spatial)]
    return _apply_axes(x, mats)
