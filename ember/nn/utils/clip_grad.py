"""Gradient clipping, in place on each parameter's ``.grad`` (PyTorch's ``clip_grad_norm_`` / ``_value_``)."""

from __future__ import annotations

import math
from typing import Any, Iterable

from ember.autograd.tensor import Tensor
from ember.backends.device import backend_of


def _grads(parameters: Any) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: Any = None) -> Tensor:
    """Scale all gradients together so that their joint ``norm_type``-norm is at most ``max_norm``.

    The norm is taken over every gradient as if concatenated into one vector
    (``inf``: the largest absolute entry).  Gradients are multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``.

    Args:
        parameters: Tensors (or one Tensor) whose ``.grad`` to clip; those without a grad are skipped.
        max_norm: the largest norm allowed.
        norm_type: the p of the p-norm, a positive number or ``inf``.
        error_if_nonfinite: raise instead of scaling when the total norm is NaN or infinite.
        foreach: accepted for PyTorch compatibility; ignored.

    Returns:
        The total norm before clipping, a 0-d Tensor of the gradients' dtype (0.0 without gradients).

    Raises:
        RuntimeError: ``error_if_nonfinite`` and the total norm is NaN or infinite.
        ValueError: ``norm_type`` is not positive.
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: expected norm_type > 0 (or inf), got {norm_type}")
    if not grads:
        from ember.autograd.creation import tensor

        return tensor(0.0)
    backend = backend_of(grads[0].data)
    xp = backend.xp
    dtype = grads[0].data.dtype
    if norm_type == math.inf:
        # on the device (a NaN propagates; no host read): capturable in a CUDA graph like the 2-norm
        parts = [xp.max(xp.abs(g.data)).astype(dtype) if g.data.size else xp.zeros((), dtype) for g in grads]
        total = backend.ops.stack(parts).max()
    else:
        norms = backend.ops.stack([xp.linalg.norm(g.data.ravel(), ord=norm_type).astype(dtype) for g in grads])
        total = xp.linalg.norm(norms, ord=norm_type).astype(dtype)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite "
            f"({float(total)}), so it cannot be clipped; pass error_if_nonfinite=False to scale anyway"
        )
    # Python scalars, not uploaded arrays: kernel arguments on a GPU, so capturable in a CUDA graph
    coef = xp.minimum(float(max_norm) / (total + 1e-6), 1.0).astype(dtype)
    for g in grads:
        xp.multiply(g.data, coef, out=g.data)
        g._bump_version()
    return Tensor._make(xp.asarray(total))


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float, foreach: Any = None) -> None:
    """Clamp every gradient entry to ``[-clip_value, clip_value]``, in place.

    Raises:
        ValueError: ``clip_value`` is negative.
    """
    clip_value = float(clip_value)
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: expected clip_value >= 0, got {clip_value}")
    for g in _grads(parameters):
        xp = backend_of(g.data).xp
        xp.clip(g.data, -clip_value, clip_value, out=g.data)
        g._bump_version()
