"""The array namespace op bodies call as ``ctx.xp``, shared by every backend.

``ArrayOps`` holds an array module's own functions under their NumPy names,
plus the few helpers (``sum_to``, ``index_add``) that NumPy spells awkwardly.
``ember.autograd.tensor_ops`` provides the same names over Tensors for
``create_graph=True``.
"""

from __future__ import annotations

from typing import Any

# The names op bodies may call on ctx.xp. tensor_ops must provide each of them too;
# a test checks that the two namespaces agree.
NAMESPACE_FUNCTIONS = (
    "exp", "log", "sqrt", "tanh", "sign", "abs", "where", "matmul", "swapaxes",
    "broadcast_to", "expand_dims", "squeeze", "reshape", "transpose", "sum",
    "zeros_like",
)


def _is_basic_index(index: Any) -> bool:
    """True for indices made of ints, slices, None and Ellipsis only (no arrays)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in items)


class ArrayOps:
    """NumPy-named array functions for one array module (``numpy`` or ``cupy``)."""

    def __init__(self, xp: Any):
        self.module = xp
        for name in NAMESPACE_FUNCTIONS:
            setattr(self, name, getattr(xp, name))

    @staticmethod
    def sum_to(g: Any, shape: tuple) -> Any:
        """Sum ``g`` over broadcast dimensions so that it has ``shape``."""
        return sum_to(g, shape)

    def index_add(self, shape: tuple, index: Any, g: Any) -> Any:
        """Zeros of ``shape`` with ``g`` added at ``index`` (repeated indices accumulate)."""
        out = self.module.zeros(shape, dtype=g.dtype)
        if _is_basic_index(index):
            out[index] = g
        else:
            self.module.add.at(out, index, g)
        return out

    @staticmethod
    def to_device(array: Any, device: Any) -> Any:
        """Copy ``array`` to ``device`` (explicit transfers only: used by ``Tensor.to``)."""
        from ember.backends.device import backend_of, get_backend

        return get_backend(device).asarray(backend_of(array).to_host(array))


def sum_to(g: Any, shape: tuple) -> Any:
    """Reduce a broadcast gradient (array or Tensor) back to ``shape``.

    Raises:
        ValueError: ``g.shape`` cannot have come from broadcasting ``shape``.
    """
    gshape = tuple(g.shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    if lead < 0 or any(s != 1 and s != gs for s, gs in zip(shape, gshape[lead:])):
        raise ValueError(f"sum_to: expected a shape broadcast from {shape}, got {gshape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1
    )
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if lead else g


def lerp_(a: Any, b: Any, weight: float) -> None:
    """``a += weight * (b - a)`` in place, in the form that is exact at both ends of ``weight``.

    Like ``torch.lerp_``: from ``a`` for weights below 1/2, from ``b`` above, so
    ``weight == 1`` gives exactly ``b``.
    """
    d = b - a
    if weight < 0.5:
        d *= weight
        a += d
    else:
        d *= 1 - weight
        a[...] = b - d
