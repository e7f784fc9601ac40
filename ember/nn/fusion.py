"""When adjacent layers run as one fused op: ``Conv2d`` or ``Linear`` followed by ``ReLU``.

``Conv2d`` + ``ReLU`` becomes ``conv2d_relu``, ``Linear`` + ``ReLU`` becomes ``linear_relu``.
The rule lives here once, for ``Sequential`` and for models that call a layer and a ReLU
by hand; why fusion is worth it and what it changes: ``ember/autograd/ops/conv_relu.py``
and ``ember/autograd/ops/linear_relu.py``.
"""

from __future__ import annotations

from typing import Any

from ember.autograd.ops.conv_relu import conv2d_relu
from ember.autograd.ops.linear_relu import linear_relu as _linear_relu
from ember.autograd.tensor import Tensor
from ember.nn.layers.activation import ReLU
from ember.nn.layers.conv import Conv2d
from ember.nn.layers.linear import Linear

# False runs every pair unfused (for A/B timing and debugging).
FUSE_CONV_RELU = True
FUSE_LINEAR_RELU = True


def _hooked(m: Any) -> bool:
    return bool(m._forward_pre_hooks or m._forward_hooks or m._backward_hooks or m._backward_pre_hooks)


def fusable(conv: Any, act: Any) -> bool:
    """True if ``act(conv(x))`` may run as one ``conv2d_relu``: the exact layer classes, conv2d's
    default dilation and groups, numeric padding, and no hooks on either module."""
    return (
        FUSE_CONV_RELU
        and type(conv) is Conv2d
        and type(act) is ReLU
        and conv.groups == 1
        and conv.dilation == (1, 1)
        and not isinstance(conv.padding, str)
        and not _hooked(conv)
        and not _hooked(act)
    )


def conv_relu(conv: Any, act: Any, x: Any) -> Any:
    """``act(conv(x))``, as one fused op when ``fusable(conv, act)`` and ``x`` fits the conv."""
    shape = getattr(x, "shape", ())
    if fusable(conv, act) and len(shape) == 4 and shape[1] == conv.in_channels:
        return conv2d_relu(x, conv.weight, conv.bias, conv.stride, conv.padding)
    return act(conv(x))  # the layers' own calls: hooks, subclasses and their error messages


def linear_fusable(linear: Any, act: Any) -> bool:
    """True if ``act(linear(x))`` may run as one ``linear_relu``: the exact layer classes and no hooks."""
    return (FUSE_LINEAR_RELU and type(linear) is Linear and type(act) is ReLU
            and not _hooked(linear) and not _hooked(act))


def linear_relu(linear: Any, act: Any, x: Any) -> Any:
    """``act(linear(x))``, as one fused op when ``linear_fusable(linear, act)`` and ``x`` fits the layer."""
    if linear_fusable(linear, act) and isinstance(x, Tensor) and x.ndim and x.shape[-1] == linear.in_features:
        return _linear_relu(x, linear.weight, linear.bias)
    return act(linear(x))


def run_pair(first: Any, second: Any, x: Any) -> Any | None:
    """``second(first(x))`` as a fused op when the pair has one (``Sequential``'s rule), else None."""
    kind = type(first)
    if kind is Conv2d and fusable(first, second):
        return conv_relu(first, second, x)
    if kind is Linear and linear_fusable(first, second):
        return linear_relu(first, second, x)
    return None
