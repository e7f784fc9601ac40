"""``WindowMap``: the frame of the sliding-window ops that are linear maps with an adjoint op.

im2col/col2im, average pooling and its spread, max pooling's scatter and gather:
each is linear in its input, and its backward is another such op, its adjoint,
run on the gradient with the same geometry.  A subclass gives ``compute`` (the
map on arrays) and ``adjoint``; this base stores the keyword arguments in
forward and hands them to the adjoint in backward, recorded as a graph under
``create_graph`` (so double backward is exact) and on arrays otherwise.
"""

from __future__ import annotations

from typing import Any

from ember.autograd.function import Function


class WindowMap(Function):
    """A linear sliding-window map; subclasses set ``compute``, ``adjoint`` and, if needed, the keys below.

    ``shape_key``: the keyword holding the image's ``(N, C, H, W)`` shape; when a
    call leaves it out, the input is the image and its shape is filled in.
    ``saved_keys``: keyword arrays kept through ``save_for_backward`` (freed after
    backward like any saved value) instead of on ``ctx``.
    """

    shape_key = "x_shape"
    saved_keys: tuple = ()
    adjoint: type

    @staticmethod
    def compute(backend: Any, a: Any, **geometry: Any) -> Any:
        raise NotImplementedError("WindowMap subclasses implement compute(backend, a, **geometry)")

    @staticmethod
    def forward(ctx: Function, a: Any, **geometry: Any) -> Any:
        geometry.setdefault(ctx.shape_key, tuple(a.shape))
        ctx.save_for_backward(*(geometry[k] for k in ctx.saved_keys))
        ctx.geometry = {k: v for k, v in geometry.items() if k not in ctx.saved_keys}
        return ctx.compute(ctx.backend, a, **geometry)

    @staticmethod
    def backward(ctx: Function, g: Any) -> Any:
        geometry = ctx.geometry
        if ctx.saved_keys:
            geometry = dict(geometry, **dict(zip(ctx.saved_keys, ctx.saved_arrays)))
        if ctx.create_graph:
            return ctx.adjoint.apply(g, **geometry)
        return ctx.adjoint.compute(ctx.backend, g, **geometry)
