"""Convolution and pooling layers: ``Conv2d``, ``MaxPool2d``, ``AvgPool2d`` (NCHW).

Thin Modules over ``ember.nn.functional``; ``Conv2d`` owns ``weight``
``(OC, C, KH, KW)`` and ``bias`` ``(OC,)`` and checks the input's channel count
itself so the error names the layer, not just the op.
"""

from __future__ import annotations

import math
from typing import Any

from ember import dtypes
from ember.autograd.ops.conv import conv2d
from ember.autograd.ops.pool import avg_pool2d, max_pool2d
from ember.autograd.tensor import Tensor
from ember.backends.geometry import pair
from ember.errors import ShapeError
from ember.nn.module import Module
from ember.nn.parameter import Parameter
from ember.generator import default_generator


class Conv2d(Module):
    """2-D convolution layer (PyTorch's ``nn.Conv2d``).

    Weights and bias start as PyTorch's default: ``kaiming_uniform_(a=sqrt(5))``,
    i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = C*KH*KW``, for both.

    Args:
        in_channels: ``C`` of the input.
        out_channels: ``OC``, the number of filters.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``.
        padding: ``p`` or ``(ph, pw)``, or ``"same"`` / ``"valid"``.
        dilation: ``d`` or ``(dh, dw)``.
        groups: channel groups; the weight is ``(OC, C/groups, KH, KW)``.
        bias: add a learnable ``(OC,)`` bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Conv2d: expected {name} to be a positive int, got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", op="Conv2d")
        self.stride = pair(stride, "stride", op="Conv2d")
        self.padding = padding if padding in ("same", "valid") else pair(padding, "padding", op="Conv2d")
        self.dilation = pair(dilation, "dilation", op="Conv2d")
        if not isinstance(groups, int) or groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: expected groups dividing in_channels ({in_channels}) and out_channels "
                             f"({out_channels}), got {groups!r}")
        self.groups = groups
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        rng, dtype = default_generator(), dtypes.get_default_dtype()
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, (out_channels,)).astype(dtype))
        else:
            self.register_parameter("bias", None)

    def _name(self) -> str:
        return f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size})"

    def forward(self, x: Tensor) -> Tensor:
        """``x: (N, in_channels, H, W)`` -> ``(N, out_channels, OH, OW)``."""
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != 4 or shape[1] != self.in_channels:
            c = self.in_channels
            raise ShapeError(
                f"{self._name()}: expected input with {c} channels (N, {c}, H, W), got shape {shape}"
            )
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class _Pool2d(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        op = type(self).__name__
        # Geometry is validated here so a bad layer fails at construction, not at first call.
        k = pair(kernel_size, "kernel_size", op=op)
        if stride is not None:
            pair(stride, "stride", op=op)
        p = pair(padding, "padding", op=op)
        if p[0] > k[0] // 2 or p[1] > k[1] // 2:
            raise ValueError(f"{op}: expected padding at most half the kernel size {k}, got padding {p}")
        # Kept as given (PyTorch's repr); stride defaults to the kernel size.
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling layer; ``stride`` defaults to ``kernel_size`` (the book's ``Pooling``)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding)
        pair(dilation, "dilation", op="MaxPool2d")
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x: Tensor) -> Any:
        """``x: (N, C, H, W)`` -> ``(N, C, OH, OW)`` (and the indices with ``return_indices``)."""
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)


class AvgPool2d(_Pool2d):
    """Average pooling layer (zero padding counted in the mean); ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        """``x: (N, C, H, W)`` -> ``(N, C, OH, OW)``."""
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override)
