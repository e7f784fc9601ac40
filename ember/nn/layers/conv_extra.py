"""Layers for PyTorch's ``ConvTranspose2d``, ``Conv1d``, ``AdaptiveAvgPool2d`` and ``Upsample``."""

from __future__ import annotations

import math
from typing import Any

from ember import dtypes
from ember.autograd.ops.conv_extra import conv1d, conv_transpose2d
from ember.autograd.ops.resize import adaptive_avg_pool2d, interpolate
from ember.autograd.tensor import Tensor
from ember.backends.geometry import pair
from ember.nn.module import Module
from ember.nn.parameter import Parameter
from ember.random import default_generator


def _check_channels(layer: str, in_channels: Any, out_channels: Any, groups: Any) -> None:
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{layer}: expected {name} to be a positive int, got {value!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{layer}: expected in_channels ({in_channels}) and out_channels ({out_channels}) "
                         f"divisible by groups={groups}")


def _uniform(shape: tuple, fan_in: int) -> Parameter:
    """PyTorch's default init for conv weights and biases: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / math.sqrt(fan_in)
    return Parameter(default_generator().uniform(-bound, bound, shape).astype(dtypes.get_default_dtype()))


class ConvTranspose2d(Module):
    """Transposed 2-D convolution; ``weight: (C_in, C_out/groups, KH, KW)`` as PyTorch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1):
        super().__init__()
        _check_channels("ConvTranspose2d", in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", op="ConvTranspose2d")
        self.stride, self.padding = pair(stride, "stride", op="ConvTranspose2d"), pair(padding, "padding", op="ConvTranspose2d")
        self.output_padding = pair(output_padding, "output_padding", op="ConvTranspose2d")
        self.dilation = pair(dilation, "dilation", op="ConvTranspose2d")
        # PyTorch computes fan_in from weight.shape[1] * KH * KW for transposed convolutions
        fan_in = out_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        self.weight = _uniform((in_channels, out_channels // groups) + self.kernel_size, fan_in)
        if bias:
            self.bias = _uniform((out_channels,), fan_in)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (N, in_channels, H, W)`` -> ``(N, out_channels, OH, OW)``."""
        return conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                self.groups, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


class Conv1d(Module):
    """1-D convolution; ``weight: (OC, C/groups, K)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: Any = 0,
                 dilation: int = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        _check_channels("Conv1d", in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        k = kernel_size[0] if isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 1 else kernel_size
        self.kernel_size = (pair(k, "kernel_size", op="Conv1d")[0],)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        fan_in = in_channels // groups * self.kernel_size[0]
        self.weight = _uniform((out_channels, in_channels // groups, self.kernel_size[0]), fan_in)
        if bias:
            self.bias = _uniform((out_channels,), fan_in)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (N, in_channels, L)`` -> ``(N, out_channels, OL)``."""
        return conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (``None`` keeps that axis)."""

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Upsample(Module):
    """``interpolate(x, size, scale_factor, mode, align_corners)`` as a layer."""

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None):
        super().__init__()
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners

    def forward(self, x: Tensor) -> Tensor:
        return interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"
