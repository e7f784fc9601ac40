"""Array-level reference kernels of ``softmax`` and ``log_softmax`` forward (no autograd).

The ops in ``ember.autograd.ops.activation`` call these as
``backend.softmax.<name>``, so a backend can replace them with a fused kernel
(one pass per row instead of four array passes).  Both subtract the row
maximum before ``exp``, so logits of +-1e4 neither overflow nor give NaN;
float16 inputs compute in float32 and the result is cast back to ``x``'s dtype.
"""

from __future__ import annotations

from typing import Any

import numpy


def _upcast(x: Any) -> Any:
    return x.astype(numpy.float32) if x.dtype == numpy.float16 else x


def softmax_forward(x: Any, axis: int, *, xp: Any = numpy) -> Any:
    """``exp(x) / sum(exp(x), axis)`` in ``x``'s dtype."""
    z = _upcast(x)
    e = xp.exp(z - z.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype, copy=False)


def log_softmax_forward(x: Any, axis: int, *, xp: Any = numpy) -> Any:
    """``x - log(sum(exp(x), axis))`` in ``x``'s dtype."""
    z = _upcast(x)
    z = z - z.max(axis=axis, keepdims=True)
    return (z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))).astype(x.dtype, copy=False)
