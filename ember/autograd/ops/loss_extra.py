"""PyTorch's loss options beyond the fused fast path: class weights, ``ignore_index``, label
smoothing, and the binary cross-entropies.

Weighted / ignoring / smoothed class-index losses are all linear in the log-probabilities:
``loss_n = -sum_c A[n, c] logp[n, c]`` with a constant coefficient array ``A`` (the weighted
one-hot of the target, plus ``eps / C * w`` for smoothing, zero rows for ignored targets), so
one ``Function`` (``WeightedNegativeLogLikelihood``) serves ``nll_loss`` and ``cross_entropy`` (after a
``log_softmax``).  ``binary_cross_entropy`` is a ``Function``; the logits form is a composition
of ``logsigmoid`` and arithmetic (every piece differentiable twice, the target included).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function
from ember.autograd.ops.activation import compute_dtype, log_softmax, upcast
from ember.autograd.ops.activation_extra import logsigmoid
from ember.autograd.ops import loss as _loss
from ember.autograd.ops.loss import _as_target, _check_logits, check_reduction
from ember.autograd.ops.loss_operands import same_shape_target
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import DTypeError, ShapeError


class WeightedNegativeLogLikelihood(Function):
    """``loss_n = -sum_c A[n, c] logp[n, c]``, reduced as ``sum / den`` (mean), ``sum`` or per ``n``.

    ``logp: (N, C, d...)``; ``A`` a constant of that shape; ``den`` the mean's divisor (the summed
    weights of the non-ignored targets, as PyTorch).  Backward: ``g_logp = -A * gy / den``.
    """

    @staticmethod
    def forward(ctx: Function, logp: Any, *, coef: Any, reduction: str, den: float) -> Any:
        ctx.save_for_backward(coef)
        ctx.reduction, ctx.den = reduction, den
        loss = -(upcast(logp) * coef).sum(axis=1)
        if reduction == "sum":
            loss = loss.sum()
        elif reduction == "mean":
            loss = loss.sum() / den if den else loss.sum() * numpy.nan  # all ignored: nan, as PyTorch
        return loss.astype(logp.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (coef,) = ctx.saved_arrays
        dtype = gy.dtype
        coef = coef.astype(compute_dtype(dtype), copy=False)
        if ctx.reduction == "none":
            gy = ctx.xp.expand_dims(gy, 1)
        elif ctx.reduction == "mean":
            gy = gy * (1.0 / ctx.den) if ctx.den else gy * numpy.nan
        gx = gy * -coef
        return gx.astype(dtype) if gx.dtype != dtype else gx


def _class_weight(op: str, weight: Any, like: Tensor) -> Any:
    """``weight`` as a ``(C,)`` array of the input's compute dtype (a constant: no gradient)."""
    C = like.shape[1]
    w = weight.data if isinstance(weight, Tensor) else _array_like(weight, like)
    if tuple(w.shape) != (C,):
        raise ShapeError(f"{op}: expected weight of shape ({C},) for input {tuple(like.shape)}, got {tuple(w.shape)}")
    return w.astype(compute_dtype(like.dtype), copy=False)


def _array_like(value: Any, like: Tensor) -> Any:
    from ember.backends.device import backend_of

    return backend_of(like.data).xp.asarray(value)


def _nll_coefficients(op: str, logp: Tensor, target: Tensor, weight: Any, ignore_index: int,
                      label_smoothing: float) -> tuple:
    """``(A, den)`` for class-index targets: weighted one-hot (+ smoothing), ignored rows zero."""
    from ember.backends.device import backend_of

    xp = backend_of(logp.data).xp
    shape, C = tuple(logp.shape), logp.shape[1]
    expected = shape[:1] + shape[2:]
    t = target.data
    if target.dtype.kind not in "iu":
        raise DTypeError(f"{op}: expected integer class indices, got dtype {target.dtype}; convert labels with .long()")
    if tuple(t.shape) != expected:
        raise ShapeError(f"{op}: expected class indices of shape {expected} for input {shape}, got {tuple(t.shape)}")
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= C))
    if bool(bad.any()):
        value = int(t[bad].reshape(-1)[0])
        raise ValueError(
            f"{op}: expected class indices in [0, {C}) or ignore_index={ignore_index}, got {value}"
        )
    dtype = compute_dtype(logp.dtype)
    w = xp.ones(C, dtype=dtype) if weight is None else _class_weight(op, weight, logp)
    safe_t = xp.where(keep, t, 0)
    classes = xp.arange(C).reshape((1, C) + (1,) * (len(shape) - 2))
    onehot = (xp.expand_dims(safe_t, 1) == classes).astype(dtype)
    wshape = (1, C) + (1,) * (len(shape) - 2)
    keepf = xp.expand_dims(keep, 1).astype(dtype)
    coef = onehot * w.reshape(wshape) * (1.0 - label_smoothing) * keepf
    if label_smoothing:
        coef = coef + (label_smoothing / C) * w.reshape(wshape) * keepf
    den = float((w[safe_t] * keep).sum())
    return coef, den


def _check_options(op: str, reduction: str, label_smoothing: float = 0.0) -> None:
    check_reduction(op, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: expected label_smoothing in [0, 1], got {label_smoothing}")


def nll_loss_general(log_probs: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
                     reduction: str = "mean") -> Tensor:
    """``nll_loss`` with PyTorch's ``weight`` and ``ignore_index``: ``-w[t_n] logp[n, t_n]``, mean over ``sum w[t_n]``."""
    op = "nll_loss"
    _check_logits(op, log_probs)
    _check_options(op, reduction)
    target = _as_target(op, target, log_probs)
    coef, den = _nll_coefficients(op, log_probs, target, weight, ignore_index, 0.0)
    return WeightedNegativeLogLikelihood.apply(log_probs, coef=coef, reduction=reduction, den=den)


def cross_entropy_general(logits: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
                          reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """``cross_entropy`` with ``weight``, ``ignore_index`` and ``label_smoothing`` (PyTorch's formulas).

    Class indices: ``(1 - eps) nll(w) + eps / C * smooth``, both normalised by the summed weights
    of the kept targets for ``"mean"``.  Probability targets: ``t' = (1 - eps) t + eps / C``,
    ``loss_n = -sum_c w_c t'_c logp_c`` (mean over the ``N*d...`` elements; differentiable in ``t``).
    """
    op = "cross_entropy"
    _check_logits(op, logits)
    _check_options(op, reduction, label_smoothing)
    target = _as_target(op, target, logits)
    logp = log_softmax(logits, axis=1)
    if target.dtype.kind == "f":
        if tuple(target.shape) != tuple(logits.shape):
            raise ShapeError(
                f"{op}: expected a probability target of the input's shape {tuple(logits.shape)}, "
                f"got {tuple(target.shape)}"
            )
        if target.dtype != logits.dtype:
            raise DTypeError(f"{op}: expected a target of dtype {logits.dtype}, got {target.dtype}")
        C = logits.shape[1]
        t = target * (1.0 - label_smoothing) + label_smoothing / C if label_smoothing else target
        if weight is not None:
            w = _class_weight(op, weight, logits).astype(logits.dtype)
            t = t * Tensor._make(w.reshape((1, C) + (1,) * (logits.ndim - 2)))
        loss = -(t * logp).sum(axis=1)
        if reduction == "sum":
            return loss.sum()
        return loss.mean() if reduction == "mean" else loss
    coef, den = _nll_coefficients(op, logits, target, weight, ignore_index, label_smoothing)
    return WeightedNegativeLogLikelihood.apply(logp, coef=coef, reduction=reduction, den=den)


class BinaryCrossEntropy(Function):
    """``l = -w (t log x + (1 - t) log(1 - x))``, logs clamped at -100 (PyTorch);
    ``gx = g w (x - t) / max(x (1 - x), 1e-12)``, ``gt = g w (log(1 - x) - log x)`` (unclamped)."""

    @staticmethod
    def forward(ctx: Function, x: Any, t: Any, w: Any, *, reduction: str) -> Any:
        xp = ctx.backend.xp
        ctx.save_for_backward(x, t, w)
        ctx.reduction, ctx.count = reduction, x.size
        xc, tc = upcast(x), upcast(t)
        with numpy.errstate(divide="ignore"):
            log_x, log_1mx = xp.maximum(xp.log(xc), -100.0), xp.maximum(xp.log1p(-xc), -100.0)
        loss = -(tc * log_x + (1.0 - tc) * log_1mx)
        if w is not None:
            loss = loss * w
        if reduction == "sum":
            loss = loss.sum()
        elif reduction == "mean":
            loss = loss.sum() / loss.size if loss.size else loss.sum() * numpy.nan
        return loss.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        x, t, w = ctx.saved_tensors
        xr = ctx.saved_arrays[0]
        xp = ctx.xp
        if ctx.reduction == "mean":
            g = gy * (1.0 / ctx.count) if ctx.count else gy * numpy.nan
        else:
            g = gy
        if w is not None:
            g = g * w
        gx = gt = None
        if ctx.needs_input_grad[0]:
            tiny = (xr * (1.0 - xr)) < 1e-12
            gx = g * (x - t) / xp.where(tiny, 1e-12, x * (1.0 - x))
        if ctx.needs_input_grad[1]:
            with numpy.errstate(divide="ignore"):  # unclamped, as PyTorch: +-inf at x = 0 or 1
                gt = g * (xp.log(1.0 - x) - xp.log(x))
        return gx, gt, None


def _bce_operands(op: str, input: Any, target: Any, weight: Any, reduction: str) -> tuple:
    target = same_shape_target(op, input, target, reduction)
    if weight is not None:
        weight = weight if isinstance(weight, Tensor) else Tensor._make(_array_like(weight, input))
        try:
            numpy.broadcast_shapes(tuple(weight.shape), tuple(input.shape))
        except ValueError:
            raise ShapeError(
                f"{op}: expected a weight broadcastable to the input's shape {tuple(input.shape)}, "
                f"got {tuple(weight.shape)}"
            ) from None
        if numpy.broadcast_shapes(tuple(weight.shape), tuple(input.shape)) != tuple(input.shape):
            raise ShapeError(f"{op}: weight of shape {tuple(weight.shape)} would broadcast the input {tuple(input.shape)}")
        weight = weight.detach().to(input.dtype) if weight.dtype != input.dtype else weight.detach()
    return target, weight


def _bce_samples(rng: Any) -> list:
    return [
        sample(rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4))),
        sample(rng.uniform(0.1, 0.9, (2, 3)), rng.uniform(0, 1, (2, 3)), weight=rng.uniform(0.5, 2, (3,)),
               reduction="sum", note="weight, sum"),
        sample(rng.uniform(0.1, 0.9, (4,)), rng.uniform(0, 1, (4,)), reduction="none", note="none"),
    ]


@register("binary_cross_entropy", samples=_bce_samples)
def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:
    """``-w (t log x + (1 - t) log(1 - x))`` for probabilities ``x`` in ``[0, 1]`` (logs clamped at -100).

    Args:
        input: probabilities, any shape, floating.
        target: same shape and dtype (differentiable).
        weight: broadcastable to the input (a constant), or None.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ShapeError / DTypeError: target or weight unlike the input. ValueError: ``x`` outside [0, 1].
    """
    op = "binary_cross_entropy"
    target, weight = _bce_operands(op, input, target, weight, reduction)
    x = input.data
    if x.size and (bool((x < 0).any()) or bool((x > 1).any())):
        raise ValueError(f"{op}: expected every input element in [0, 1] (probabilities; use "
                         f"binary_cross_entropy_with_logits for logits), got min {float(x.min())}, max {float(x.max())}")
    return BinaryCrossEntropy.apply(input, target, weight, reduction=reduction)


def _bce_logits_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(3, 4)) * 2, rng.uniform(0, 1, (3, 4))),
        sample(rng.normal(size=(2, 3)), rng.uniform(0, 1, (2, 3)), pos_weight=rng.uniform(0.5, 3, (3,)),
               reduction="none", note="pos_weight"),
    ]


@register("binary_cross_entropy_with_logits", samples=_bce_logits_samples)
def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """``-w (p t logsigmoid(z) + (1 - t) logsigmoid(-z))``, stable for any logit ``z``.

    A composition of ``logsigmoid``, ``mul`` and ``add``. ``pos_weight`` (``p``) broadcasts
    against the target's last axes (one weight per class), ``weight`` against the input; both are
    constants. Backward: ``gz = w ((1 - t) s - p t (1 - s))``, ``s = sigmoid(z)``.
    """
    op = "binary_cross_entropy_with_logits"
    target, weight = _bce_operands(op, input, target, weight, reduction)
    _, pos_weight = _bce_operands(op, input, target, pos_weight, "mean")
    positive = target if pos_weight is None else target * pos_weight
    loss = -(positive * logsigmoid(input) + (1.0 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if reduction == "mean" else loss


_loss.GENERAL_PATHS.update(cross_entropy=cross_entropy_general, nll_loss=nll_loss_general)
