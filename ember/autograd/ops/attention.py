"""``scaled_dot_product_attention``, ``normalize`` and ``one_hot`` (PyTorch's ``F`` names).

Attention and ``normalize`` are compositions of differentiable ops (``matmul``, ``softmax``,
``where``, ``sum``, ``clip`` ...), so their gradients and double backward come from those ops;
``one_hot`` builds an integer tensor and has no gradient.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from ember.autograd.function import autocast_active
from ember.autograd.ops.activation import softmax
from ember.autograd.ops.elementwise import abs as _abs
from ember.autograd.ops.elementwise import clip, sqrt
from ember.autograd.ops.linalg import matmul
from ember.autograd.ops.nn_ops import dropout
from ember.autograd.ops.operands import normalize_axis, require_floating
from ember.autograd.ops.padding import on_device
from ember.autograd.ops.select import where
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import DTypeError, ShapeError


def one_hot(t: Any, num_classes: int = -1) -> Tensor:
    """``(..., num_classes)`` int64 with a 1 at each index of ``t`` (``num_classes=-1``: ``max(t) + 1``).

    Raises:
        DTypeError: ``t`` is not integer. ValueError: an index outside ``[0, num_classes)``.
    """
    op = "one_hot"
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: expected an integer Tensor, got {type(t).__name__}")
    if t.dtype.kind not in "iu":
        raise DTypeError(f"{op}: expected an integer (class index) tensor, got dtype {t.dtype}")
    data = t.data
    if num_classes == -1:
        if data.size == 0:
            raise ValueError(f"{op}: cannot infer num_classes from an empty tensor; pass num_classes")
        num_classes = int(data.max()) + 1
    if not isinstance(num_classes, int) or num_classes < 1 and data.size:
        raise ValueError(f"{op}: expected a positive num_classes, got {num_classes!r}")
    if data.size and (int(data.min()) < 0 or int(data.max()) >= num_classes):
        raise ValueError(
            f"{op}: expected class indices in [0, {num_classes}), got min {int(data.min())}, max {int(data.max())}"
        )
    classes = on_device(t, numpy.arange(num_classes))
    return Tensor._make((data[..., None] == classes).astype(numpy.int64))


def _normalize_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(3, 4))),
        sample(rng.normal(size=(2, 3, 4)), dim=-1, note="last axis"),
        sample(rng.normal(size=(3, 4)) + 0.5, p=1.0, dim=0, note="p=1"),
        sample(rng.normal(size=(2, 5)), p=3.0, note="p=3"),
    ]


@register("normalize", samples=_normalize_samples)
def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """``x / max(||x||_p, eps)`` along ``dim`` (PyTorch's ``F.normalize``).

    The clamp is applied as ``sum |x|^p`` clipped at ``eps^p`` before the root: the same values and
    gradients as clamping the norm, and a finite (zero) gradient for all-zero vectors.

    Raises:
        DTypeError: non-floating ``x``. ShapeError: ``dim`` out of range. ValueError: ``p <= 0``.
    """
    op = "normalize"
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected x to be a Tensor, got {type(x).__name__}")
    require_floating(op, x)
    axis = normalize_axis(op, dim, max(x.ndim, 1))
    if not p > 0 or math.isinf(p):
        raise ValueError(f"{op}: expected a finite p > 0, got p={p}")
    if p == 2:
        norm = sqrt(clip((x * x).sum(axis=axis, keepdims=True), eps * eps, None))
    else:
        norm = clip((_abs(x) ** p).sum(axis=axis, keepdims=True), eps**p, None) ** (1.0 / p)
    return x / norm


def _sdpa_samples(rng: Any) -> list:
    n = rng.normal
    mask = numpy.array([[True, False, True, True], [True, True, False, True], [False, True, True, True]])
    return [
        sample(n(size=(2, 3, 4)), n(size=(2, 4, 4)), n(size=(2, 4, 5)), note="plain"),
        sample(n(size=(1, 2, 3, 4)), n(size=(1, 2, 4, 4)), n(size=(1, 2, 4, 2)), attn_mask=mask, note="bool mask"),
        sample(n(size=(2, 4, 3)), n(size=(2, 4, 3)), n(size=(2, 4, 3)), is_causal=True, scale=0.3, note="causal"),
        sample(n(size=(2, 3, 4)), n(size=(2, 4, 4)), n(size=(2, 4, 5)), n(size=(3, 4)), note="float mask"),
    ]


@register("scaled_dot_product_attention", samples=_sdpa_samples)
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None) -> Tensor:
    """``softmax(q k^T * scale + mask) v`` (PyTorch's ``F.scaled_dot_product_attention``).

    Args:
        query: ``(..., L, E)``; key: ``(..., S, E)``; value: ``(..., S, Ev)``; one floating dtype,
            leading axes broadcast.
        attn_mask: bool (True = attend) or floating (added to the scores), broadcastable to
            ``(..., L, S)``; or None.
        dropout_p: dropout on the attention weights (``F.dropout``, always applied when > 0).
        is_causal: mask out keys after the query's position (top-left aligned); excludes attn_mask.
        scale: defaults to ``1 / sqrt(E)``.

    Returns:
        ``(..., L, Ev)``. Rows whose every key is masked give zeros (PyTorch's choice), not NaN.

    Raises:
        ShapeError: mismatched ``E`` or ``S``, a mask of the wrong shape. ValueError: both masks.
    """
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")
        require_floating(op, t)
        if t.ndim < 2:
            raise ShapeError(f"{op}: expected {name} of at least 2 dimensions, got shape {tuple(t.shape)}")
    if len({query.dtype, key.dtype, value.dtype}) > 1 and not autocast_active():
        raise DTypeError(f"{op}: expected query, key and value of one dtype, got {query.dtype}, {key.dtype}, "
                         f"{value.dtype}; convert with .to(dtype)")
    q, k, v = tuple(query.shape), tuple(key.shape), tuple(value.shape)
    if q[-1] != k[-1] or k[-2] != v[-2]:
        raise ShapeError(f"{op}: expected query (..., L, E), key (..., S, E) and value (..., S, Ev), got {q}, {k}, {v}")
    try:
        numpy.broadcast_shapes(q[:-2], k[:-2], v[:-2])
    except ValueError:
        raise ShapeError(f"{op}: expected batch axes of query, key and value that broadcast, got {q}, {k}, {v}") \
            from None
    if is_causal and attn_mask is not None:
        raise ValueError(f"{op}: pass either attn_mask or is_causal=True, not both")
    L, S = q[-2], k[-2]
    scores = matmul(query, key.swapaxes(-1, -2)) * (1.0 / math.sqrt(q[-1]) if scale is None else scale)
    if is_causal:
        attn_mask = Tensor._make(on_device(query, numpy.tril(numpy.ones((L, S), dtype=bool))))
    if attn_mask is not None:
        if not isinstance(attn_mask, Tensor):
            attn_mask = Tensor._make(on_device(query, numpy.asarray(attn_mask)))
        try:
            numpy.broadcast_shapes(tuple(attn_mask.shape), tuple(scores.shape))
        except ValueError:
            raise ShapeError(f"{op}: expected attn_mask broadcastable to the scores {tuple(scores.shape)} "
                             f"(..., L, S), got {tuple(attn_mask.shape)}") from None
        if attn_mask.dtype == bool:
            scores = where(attn_mask.data, scores, -numpy.inf)
        elif attn_mask.dtype != scores.dtype:
            raise DTypeError(f"{op}: expected a bool attn_mask or one of the scores' dtype {scores.dtype}, "
                             f"got {attn_mask.dtype}")
        else:
            scores = scores + attn_mask
    dead = None
    if attn_mask is not None:
        dead = (scores.data == -numpy.inf).all(axis=-1, keepdims=True)  # every key masked
        if bool(dead.any()):
            scores = where(dead, 0.0, scores)  # a finite row, zeroed after the softmax
        else:
            dead = None
    weights = softmax(scores, axis=-1)
    if dead is not None:
        weights = where(dead, 0.0, weights)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, value)
