"""Losses: fused softmax cross-entropy, negative log-likelihood and mean squared error.

``cross_entropy`` is the book's Softmax-with-Loss layer as one node: the
forward is a stable log-softmax, the backward the famous ``(y - t) / N``.
Targets are never broadcast: class indices must have the logits' shape minus
the class axis, probability targets exactly the logits' shape.  The common case,
``(N, C)`` logits with class indices, runs on the backend's ``nn`` kernels
(``ember.backends.reference.nn`` is the reference); other cases and the
``create_graph`` backward use the array code here.

Class indices are range-checked eagerly on the CPU.  On a GPU that check would
cost two device->host syncs a step, so the min and max stay on the device and
the check raises at the next sync point (``.item()``, ``.numpy()``,
``ember.cuda.synchronize()``; see ``ember.backends.deferred_checks``): the error
comes one sync late, as PyTorch's device-side asserts, and the fused kernel
writes NaN for a bad row instead of reading out of bounds.  For the same reason
``ignore_index`` on a GPU takes the general path only when it lies in
``[0, C)``; a target equal to an ``ignore_index`` outside that range reaches
the fused path and is reported by the deferred check (with a hint).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.autograd.function import Function, autocast_active
from ember.autograd.ops.activation import compute_dtype, upcast
from ember.autograd.ops.loss_operands import REDUCTIONS, check_reduction, same_shape_target  # noqa: F401
from ember.autograd.ops.loss_operands import as_target as _as_target
from ember.autograd.ops.loss_operands import check_class_indices as _check_class_indices
from ember.autograd.ops.loss_operands import check_logits as _check_logits
from ember.autograd.ops.loss_operands import classify_target as _classify_target
from ember.autograd.ops.loss_operands import needs_general_path as _needs_general_path
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.errors import DTypeError, ShapeError

# Class weights, ignored targets and label smoothing run general paths that
# ``ops/loss_extra.py`` installs here when imported, so this module never imports it.
GENERAL_PATHS: dict = {}


def _reduce(loss: Any, reduction: str) -> Any:
    """Reduce a per-element loss array (float32 accumulation is the caller's job)."""
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() * (1.0 / loss.size) if loss.size else loss.sum() * numpy.nan
    return loss


def _loss_grad_scale(xp: Any, gy: Any, reduction: str, count: int, axis: int | None) -> Any:
    """The upstream gradient of each loss element: ``gy / count`` (mean), ``gy`` (sum), or per element."""
    if reduction == "mean":
        return gy * (1.0 / count) if count else gy * numpy.nan
    if reduction == "none" and axis is not None:
        return xp.expand_dims(gy, axis)
    return gy


class SoftmaxCrossEntropy(Function):
    """Fused ``-sum(t * log_softmax(x, axis=1))`` with class indices or probability targets.

    ``gx = (softmax(x) * sum(t) - t) * gy / N`` (``softmax - onehot`` for indices),
    ``gt = -log_softmax(x) * gy / N``, with ``N`` the number of loss elements for "mean".
    """

    @staticmethod
    def forward(ctx: Function, x: Any, t: Any, reduction: str, soft: bool) -> Any:
        xp = ctx.backend.xp
        if not soft and x.ndim == 2:
            # The common path, (N, C) logits and class indices: one fused kernel of the backend.
            kernels = ctx.backend.nn
            loss, p, shift = kernels.softmax_cross_entropy_forward(x, t, xp=xp)
            ctx.reduction, ctx.soft, ctx.count = reduction, soft, loss.size
            ctx.save_for_backward(x, t, shift, p, None)
            return _reduce(loss, reduction).astype(x.dtype)
        xc = upcast(x)
        shift = xc.max(axis=1, keepdims=True)  # exp never overflows: the largest exponent is 0
        z = xc - shift
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)
        logp, p = z - xp.log(s), e / s
        if soft:
            loss = -(upcast(t) * logp).sum(axis=1)
        else:
            loss = -xp.take_along_axis(logp, xp.expand_dims(t, 1), axis=1).squeeze(1)
        ctx.reduction, ctx.soft, ctx.count = reduction, soft, loss.size
        # p (or log p) serves the ordinary backward; x and the shift let a create_graph
        # backward rebuild softmax in the graph (softmax does not depend on a constant shift).
        keep_logp = soft and ctx.needs_input_grad[1]
        ctx.save_for_backward(x, t, shift, p, logp if keep_logp else None)
        return _reduce(loss, reduction).astype(x.dtype)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        xp = ctx.xp
        x, t = ctx.saved_tensors[:2]
        t_arr, shift, p, logp = ctx.saved_arrays[1:]
        need_x, need_t = ctx.needs_input_grad[:2]
        if ctx.create_graph:
            z = upcast(x) - shift
            e = xp.exp(z)
            s = xp.sum(e, axis=1, keepdims=True)
            p, logp = e / s, z - xp.log(s)
        g = _loss_grad_scale(xp, upcast(gy), ctx.reduction, ctx.count, 1)
        gx = gt = None
        if ctx.soft:
            tc = upcast(t)
            if need_x:
                gx = (p * xp.sum(tc, axis=1, keepdims=True) - tc) * g
            if need_t:
                gt = -logp * g
                if gt.dtype != t.dtype:
                    gt = gt.astype(t.dtype)
        elif need_x:
            if t_arr.ndim == 1 and not ctx.create_graph:  # the forward's kernel path: (N, C) logits
                kernels = ctx.backend.nn
                gx = kernels.softmax_cross_entropy_backward(p, t_arr, g.reshape(-1) if g.ndim else g,
                                                            xp=ctx.backend.xp)
            else:
                gx = (p - _one_hot(ctx.backend.xp, t_arr, p.shape, p.dtype)) * g
        if gx is not None and gx.dtype != x.dtype:
            gx = gx.astype(x.dtype)
        return gx, gt


def _one_hot(xp: Any, t: Any, shape: tuple, dtype: Any) -> Any:
    """One-hot of class indices ``t: (N, d...)`` along axis 1 of ``shape`` (a constant array)."""
    classes = xp.arange(shape[1]).reshape((1, shape[1]) + (1,) * (len(shape) - 2))
    return (xp.expand_dims(t, 1) == classes).astype(dtype)


def _ce_samples(rng: Any) -> list:
    soft = rng.uniform(0.1, 1.0, (4, 5))
    return [
        sample(rng.normal(size=(4, 5)), rng.integers(0, 5, 4), note="class indices"),
        sample(rng.normal(size=(4, 5)), rng.integers(0, 5, 4), reduction="sum", note="sum"),
        sample(rng.normal(size=(3, 4)), rng.integers(0, 4, 3), reduction="none", note="none"),
        sample(rng.normal(size=(2, 3, 2, 2)), rng.integers(0, 3, (2, 2, 2)), note="spatial indices"),
        sample(rng.normal(size=(4, 5)), soft / soft.sum(axis=1, keepdims=True), note="probability target"),
        sample(rng.normal(size=(3, 4)), rng.uniform(0, 1, (3, 4)), reduction="none", note="unnormalised soft"),
    ]


@register("cross_entropy", samples=_ce_samples)
def cross_entropy(logits: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy: ``-sum_c t_c log_softmax(x)_c``, fused and stable for logits of +-1e4.

    Args:
        logits: ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``, floating (unnormalised scores).
        target: class indices ``(N,)`` / ``(N, d1, ...)`` of an integer dtype in ``[0, C)``, or
            one-hot / probability targets of the logits' shape and dtype (differentiable too).
        weight: ``(C,)`` class weights (a constant), or None.
        ignore_index: class-index targets equal to it add nothing (and leave the mean's divisor).
        reduction: ``"mean"`` over the ``N * d1 * ...`` loss elements, ``"sum"``, or ``"none"``.
        label_smoothing: ``eps`` in [0, 1]: the target mixes with the uniform distribution.

    Returns:
        A 0-d tensor, or ``(N, d1, ...)`` for ``"none"``; the logits' dtype.
        Backward: ``gx = (softmax(x) - t) * gy / N`` (the book's Softmax-with-Loss).
        With weights, ignored targets or smoothing it runs ``cross_entropy_general`` of
        ``ops/loss_extra.py`` (PyTorch's formulas; the mean divides by the kept targets' weights).

    Raises:
        ShapeError: target shape fits neither form (a wrong-length label vector included).
        DTypeError: float labels shaped like class indices, or a target dtype unlike the logits'.
        ValueError: a class index outside ``[0, C)``, or an unknown ``reduction``.
    """
    op = "cross_entropy"
    if isinstance(weight, str):  # ember's earlier signature took reduction third
        weight, reduction = None, weight
    if isinstance(logits, Tensor) and logits.ndim == 1:  # unbatched (C,) logits, as PyTorch: a batch of one
        target = target.unsqueeze(0) if isinstance(target, Tensor) else numpy.asarray(target)[None]
        loss = cross_entropy(logits.unsqueeze(0), target, weight=weight, ignore_index=ignore_index,
                             reduction=reduction, label_smoothing=label_smoothing)
        return loss.squeeze(0) if reduction == "none" else loss
    general, label_range = _needs_general_path(op, logits, target, weight, ignore_index, label_smoothing)
    if general:
        return GENERAL_PATHS["cross_entropy"](logits, target, weight, ignore_index, reduction, label_smoothing)
    _check_logits(op, logits)
    check_reduction(op, reduction)
    target = _as_target(op, target, logits)
    soft = _classify_target(op, logits, target, ignore_index, label_range)
    return SoftmaxCrossEntropy.apply(logits, target, reduction=reduction, soft=soft)


class NegativeLogLikelihood(Function):
    """``loss = -x[n, t_n]``; ``gx = -onehot(t) * gy / N``."""

    @staticmethod
    def forward(ctx: Function, x: Any, t: Any, reduction: str) -> Any:
        xp = ctx.backend.xp
        loss = -upcast(xp.take_along_axis(x, xp.expand_dims(t, 1), axis=1).squeeze(1))
        ctx.reduction, ctx.count, ctx.x_shape = reduction, loss.size, x.shape
        ctx.save_for_backward(t)
        return _reduce(loss, reduction).astype(x.dtype)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        (t,) = ctx.saved_arrays
        dtype = gy.dtype
        g = _loss_grad_scale(ctx.xp, upcast(gy), ctx.reduction, ctx.count, 1)
        gx = -g * _one_hot(ctx.backend.xp, t, ctx.x_shape, compute_dtype(dtype))
        return gx.astype(dtype) if gx.dtype != dtype else gx


def _nll_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(4, 5)), rng.integers(0, 5, 4)),
        sample(rng.normal(size=(2, 3, 2)), rng.integers(0, 3, (2, 2)), reduction="none", note="spatial none"),
    ]


@register("nll_loss", samples=_nll_samples)
def nll_loss(log_probs: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices: ``-log_probs[n, t_n]`` (pair with ``log_softmax``).

    Args:
        log_probs: ``(N, C)`` or ``(N, C, d1, ...)``, floating.
        target: class indices ``(N,)`` / ``(N, d1, ...)``, integer, in ``[0, C)``.
        weight: ``(C,)`` class weights (a constant), or None.
        ignore_index: targets equal to it add nothing (and leave the mean's divisor).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A 0-d tensor, or ``(N, d1, ...)`` for ``"none"``. Backward: ``gx = -onehot(t) * gy / N``.
        With weights or ignored targets: ``nll_loss_general`` of ``ops/loss_extra.py``.

    Raises:
        ShapeError, DTypeError, ValueError: as ``cross_entropy`` for class-index targets.
    """
    op = "nll_loss"
    if isinstance(weight, str):  # ember's earlier signature took reduction third
        weight, reduction = None, weight
    general, label_range = _needs_general_path(op, log_probs, target, weight, ignore_index, 0.0)
    if general:
        return GENERAL_PATHS["nll_loss"](log_probs, target, weight, ignore_index, reduction)
    _check_logits(op, log_probs)
    check_reduction(op, reduction)
    target = _as_target(op, target, log_probs)
    if target.dtype.kind == "f" and tuple(target.shape) == tuple(log_probs.shape)[:1] + tuple(log_probs.shape)[2:]:
        raise DTypeError(f"{op}: expected integer class indices, got dtype {target.dtype}; convert labels with .long()")
    _check_class_indices(op, log_probs, target, ignore_index, label_range)
    return NegativeLogLikelihood.apply(log_probs, target, reduction=reduction)


class MeanSquaredError(Function):
    """``loss = reduce((x - t)**2)``; ``gx = 2 (x - t) gy / N``, ``gt = -gx``."""

    @staticmethod
    def forward(ctx: Function, x: Any, t: Any, reduction: str) -> Any:
        diff = upcast(x) - upcast(t)
        ctx.reduction, ctx.count = reduction, diff.size
        ctx.save_for_backward(x, t)
        return _reduce(diff * diff, reduction).astype(x.dtype)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> tuple:
        x, t = ctx.saved_tensors
        dtype = x.dtype
        g = _loss_grad_scale(ctx.xp, upcast(gy), ctx.reduction, ctx.count, None)
        gx = (upcast(x) - upcast(t)) * (g * 2.0)
        if gx.dtype != dtype:
            gx = gx.astype(dtype)
        need_x, need_t = ctx.needs_input_grad
        return (gx if need_x else None), (-gx if need_t else None)


def _mse_samples(rng: Any) -> list:
    return [
        sample(rng.normal(size=(3, 4)), rng.normal(size=(3, 4))),
        sample(rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), reduction="sum", note="sum"),
        sample(rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), reduction="none", note="none"),
    ]


@register("mse_loss", samples=_mse_samples)
def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error ``reduce((input - target)**2)``; the shapes must match exactly.

    Args:
        input: any shape, floating.
        target: the same shape and dtype as ``input`` (never broadcast).
        reduction: ``"mean"`` over all elements, ``"sum"``, or ``"none"``.

    Returns:
        A 0-d tensor, or ``input``'s shape for ``"none"``. Backward: ``gx = 2 (x - t) gy / N``.

    Raises:
        ShapeError: the shapes differ.
        DTypeError: the dtypes differ or are not floating.
    """
    hint = " (ember never broadcasts a loss target; reshape it explicitly)"
    target = same_shape_target("mse_loss", input, target, reduction, hint, autocast_ok=True)
    return MeanSquaredError.apply(input, target, reduction=reduction)
