"""When adjacent layers run as one fused op: ``Conv2d`` followed by ``ReLU`` becomes ``conv2d_relu``.

The rule lives here once, for ``Sequential`` and for models that call a conv and a ReLU
by hand; why fusion is worth it and what it changes: ``ember/autograd/ops/conv_relu.py``.
"""

from __future__ import annotations

from typing import Any

from ember.autograd.ops.conv_relu import conv2d_relu
from ember.nn.layers.activation import ReLU
from ember.nn.layers.conv import Conv2d

# False runs every pair unfused (for A/B timing and debugging).
FUSE_CONV_RELU = True


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
