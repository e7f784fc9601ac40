"""Differentiable conversions: dtype casts, device copies and clones.

A cast's gradient is cast back to the input dtype; a device copy's gradient is
copied back to the input device.  These are the only ops that change dtype or
device, so the autocast and GPU code paths stay visible in the graph.
"""

from __future__ import annotations

from typing import Any

from ember import dtypes
from ember.autograd.function import Function
from ember.autograd.registry import register, sample
from ember.autograd.tensor import Tensor
from ember.backends.device import Device, get_backend


class Cast(Function):
    """``y = x.astype(dtype)``; ``gx = gy.astype(x.dtype)``."""

    @staticmethod
    def forward(ctx: Function, x: Any, dtype: Any) -> Any:
        ctx.x_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return gy.astype(ctx.x_dtype)


class ToDevice(Function):
    """``y`` = ``x`` copied to another device; ``gx`` = ``gy`` copied back."""

    @staticmethod
    def forward(ctx: Function, x: Any, device: Device) -> Any:
        ctx.x_device = ctx.backend.device_of(x)
        return ctx.xp.to_device(x, device)

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return ctx.xp.to_device(gy, ctx.x_device)


class Clone(Function):
    """``y`` = a copy of ``x``; ``gx = gy``."""

    @staticmethod
    def forward(ctx: Function, x: Any) -> Any:
        return x.copy()

    @staticmethod
    def backward(ctx: Function, gy: Any) -> Any:
        return gy


@register("cast", methods=("astype",), samples=lambda rng: [sample(rng.normal(size=(2, 3)), "float64")],
          second_order=True)
def cast(x: Tensor, dtype: Any) -> Tensor:
    """``x`` converted to ``dtype`` (a no-op returning ``x`` if it already has it)."""
    dtype = dtypes.to_dtype(dtype, "cast")
    if x.dtype == dtype:
        return x
    if x.requires_grad and dtype.kind != "f":
        return Tensor._make(x.data.astype(dtype))  # integer results carry no gradient
    return Cast.apply(x, dtype=dtype)


def to_device(x: Tensor, device: Any) -> Tensor:
    """``x`` on ``device`` (a no-op if it is already there)."""
    device = Device(device)
    if x.device == device:
        return x
    get_backend(device)  # raises a clear error when CUDA is unavailable
    return ToDevice.apply(x, device=device)


@register("clone", methods=(), samples=lambda rng: [sample(rng.normal(size=(2, 3)))])
def clone(x: Tensor) -> Tensor:
    """A copy of ``x`` with its own storage."""
    return Clone.apply(x)
