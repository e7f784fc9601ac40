"""``pad``: PyTorch's ``F.pad`` (constant, reflect, replicate, circular) over trailing axes.

``pad = (left_last, right_last, left_2nd_last, right_2nd_last, ...)`` pads the last
``len(pad) // 2`` axes, asymmetric allowed.  Constant padding is one ``Function``
(``xp.pad`` forward, a slice backward; negative widths crop, as PyTorch).  The other modes
read the input at an index map per padded axis (``x[..., idx, ...]``, a composition of the
differentiable ``getitem``), so a reflected element's gradient is the sum over its copies.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.operands import require_floating
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import ShapeError

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def on_device(like: Tensor, array: Any) -> Any:
    """A host ``array`` (index map, weights) moved to ``like``'s device."""
    from ember.backends.device import backend_of

    return backend_of(like.data).xp.asarray(array)


class ConstantPad(Function):
    """``y = x`` surrounded by ``value`` (``widths`` per axis, each >= 0); ``gx = gy`` cropped back.

    A filled array with ``x`` written into it, rather than ``xp.pad``: NumPy's ``pad`` returns a base
    ``ndarray`` for array subclasses.
    """

    @staticmethod
    def forward(ctx: Function, x: Any, *, widths: tuple, value: float) -> Any:
        ctx.crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        shape = tuple(n + lo + hi for (lo, hi), n in zip(widths, x.shape))
        y = ctx.backend.xp.full_like(x, value, shape=shape)  # keeps x's array type (and so its device)
        y[ctx.crop] = x
        return y

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return gy[ctx.crop]  # basic slicing: the getitem op on Tensors under create_graph


def _index_map(mode: str, n: int, lo: int, hi: int) -> numpy.ndarray:
    """Source index of each output position along one axis of length ``n`` padded by ``(lo, hi)``."""
    j = numpy.arange(-lo, n + hi)
    if mode == "replicate":
        return numpy.clip(j, 0, n - 1)
    if mode == "circular":
        return numpy.mod(j, n)
    period = 2 * (n - 1)  # reflect: mirror about the edge elements (which are not repeated)
    j = numpy.mod(j, period) if period else numpy.zeros_like(j)
    return numpy.where(j >= n, period - j, j)


def _pad_pairs(op: str, pad: Any, ndim: int) -> list:
    """``[(lo, hi), ...]`` for the last ``len(pad) // 2`` axes, outermost first."""
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not all(
        isinstance(p, (int, numpy.integer)) and not isinstance(p, bool) for p in pad
    ):
        raise ValueError(f"{op}: expected pad as an even-length sequence of ints, got {pad!r}")
    if len(pad) // 2 > ndim:
        raise ShapeError(f"{op}: pad {tuple(pad)} covers {len(pad) // 2} axes, but the input has only {ndim}")
    pairs = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(pad) // 2)]
    return pairs[::-1]


def _pad_samples(rng: Any) -> list:
    n = rng.normal
    return [
        sample(n(size=(2, 3, 4)), (1, 2), note="constant, last axis"),
        sample(n(size=(1, 2, 3, 4)), (2, 1, 0, 3), value=1.5, note="constant, asymmetric 2-D"),
        sample(n(size=(2, 4, 5)), (-1, 2, 1, -2), note="constant, negative crops"),
        sample(n(size=(1, 2, 4, 5)), (3, 1, 2, 3), mode="reflect", note="reflect 2-D"),
        sample(n(size=(2, 3, 4)), (2, 3), mode="replicate", note="replicate 1-D"),
        sample(n(size=(1, 1, 3, 3, 3)), (1, 2, 2, 1, 1, 1), mode="replicate", note="replicate 3-D"),
        sample(n(size=(1, 2, 3, 4)), (4, 1, 2, 2), mode="circular", note="circular"),
    ]


@register("pad", samples=_pad_samples)
def pad(x: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the trailing axes of ``x`` (PyTorch's ``F.pad``).

    Args:
        x: any shape, floating.
        pad: ``(left_last, right_last, left_2nd_last, right_2nd_last, ...)``, ints.
        mode: ``"constant"`` (negative widths crop), ``"reflect"`` (mirror, edge not repeated;
            each width < the axis length), ``"replicate"`` (edge repeated) or ``"circular"`` (wrap;
            each width <= the axis length).
        value: the fill of ``"constant"`` (default 0).

    Returns:
        ``x`` with each padded axis grown by ``lo + hi``. Backward: the sum of ``gy`` over every
        position that read an element (a crop for ``"constant"``).

    Raises:
        ValueError: bad mode or ``pad``, a reflect/circular width too large for its axis, or a
            ``value`` given for a mode other than constant.
        ShapeError: ``pad`` covers more axes than ``x`` has, or a crop empties an axis.
    """
    op = "pad"
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected x to be a Tensor, got {type(x).__name__}")
    require_floating(op, x)
    if mode not in PAD_MODES:
        raise ValueError(f"{op}: expected mode to be one of {PAD_MODES}, got {mode!r}")
    pairs = _pad_pairs(op, pad, x.ndim)
    first = x.ndim - len(pairs)
    shape = tuple(x.shape)
    if mode == "constant":
        crop, widths = [slice(None)] * x.ndim, [(0, 0)] * x.ndim
        for k, (lo, hi) in enumerate(pairs):
            axis, n = first + k, shape[first + k]
            if n + lo + hi <= 0 and n > 0:
                raise ShapeError(f"{op}: pad {tuple(pad)} empties axis {axis} of x with shape {shape}")
            crop[axis] = slice(max(-lo, 0), n - max(-hi, 0))
            widths[axis] = (max(lo, 0), max(hi, 0))
        if any(s != slice(None) and (s.start or s.stop != shape[i]) for i, s in enumerate(crop)):
            x = x[tuple(crop)]
        if not any(w != (0, 0) for w in widths):
            return x
        return ConstantPad.apply(x, widths=tuple(widths), value=0.0 if value is None else float(value))
    if value is not None and value != 0:
        raise ValueError(f"{op}: a fill value applies to mode 'constant' only, got value={value} for {mode!r}")
    for k, (lo, hi) in enumerate(pairs):
        axis, n = first + k, shape[first + k]
        if lo < 0 or hi < 0:
            raise ValueError(f"{op}: expected non-negative pad widths for mode {mode!r}, got {tuple(pad)}")
        limit_ok = (max(lo, hi) < n) if mode == "reflect" else (max(lo, hi) <= n) if mode == "circular" else n > 0
        if not limit_ok:
            rule = "< the axis length" if mode == "reflect" else "<= the axis length" if mode == "circular" else ""
            raise ValueError(
                f"{op}: mode {mode!r} needs pad widths {rule} (and a non-empty axis), got pad ({lo}, {hi}) "
                f"for axis {axis} of length {n} (x of shape {shape})"
            )
        if lo or hi:
            idx = _index_map(mode, n, lo, hi)
            x = x[(slice(None),) * axis + (on_device(x, idx),)]
    return x
