"""The ``xp`` namespace over Tensors, bound to ``ctx.xp`` during ``create_graph`` backwards.

It offers the same names as ``ember.backends.arrays.NAMESPACE_FUNCTIONS``
plus the helpers of ``ArrayOps``; each maps to a differentiable ember op, so a
backward written once against ``ctx.xp`` records a graph when run here.
``sign`` and comparisons are piecewise constant: they return constants.
"""

from __future__ import annotations

from typing import Any

import sys

from ember.autograd import engine
from ember.autograd.ops import convert, elementwise, indexing, linalg, reduce, select, shape
from ember.autograd.tensor import Tensor
from ember.backends.arrays import sum_to as _sum_to

exp = elementwise.exp
log = elementwise.log
sqrt = elementwise.sqrt
tanh = elementwise.tanh
abs = elementwise.abs  # noqa: A001
where = select.where
matmul = linalg.matmul
swapaxes = shape.swapaxes
expand_dims = shape.unsqueeze
broadcast_to = shape.broadcast_to


def sign(x: Any) -> Tensor:
    """sign(x) as a constant tensor (its derivative is 0 almost everywhere)."""
    from ember.backends.device import backend_of

    xp = backend_of(x.data).xp
    return Tensor._make(xp.asarray(xp.sign(x.data)))


def squeeze(x: Tensor, axis: Any = None) -> Tensor:
    return shape.squeeze(x, axis)


def reshape(x: Tensor, new_shape: tuple) -> Tensor:
    return shape.reshape(x, tuple(new_shape))


def transpose(x: Tensor, axes: Any = None) -> Tensor:
    return shape.permute(x, tuple(range(x.ndim))[::-1] if axes is None else tuple(axes))


def sum(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return reduce.sum(x, axis=axis, keepdims=keepdims)


def zeros_like(x: Tensor) -> Tensor:
    from ember.autograd.creation import zeros_like as _zeros_like

    return _zeros_like(x)


def sum_to(g: Tensor, target_shape: tuple) -> Tensor:
    return _sum_to(g, tuple(target_shape))


def index_add(target_shape: tuple, index: Any, g: Tensor) -> Tensor:
    return indexing.index_add(g, target_shape, index)


def to_device(x: Tensor, device: Any) -> Tensor:
    return convert.to_device(x, device)


engine.tensor_namespace = sys.modules[__name__]  # this module is the engine's create_graph ``xp``
