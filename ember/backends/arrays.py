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

    def concatenate(self, arrays: Any, axis: int = 0) -> Any:
        """``xp.concatenate``; the CuPy backend overrides it to stay capturable in a CUDA graph."""
        return self.module.concatenate(list(arrays), axis=axis)

    def stack(self, arrays: Any, axis: int = 0) -> Any:
        """``xp.stack``; the CuPy backend overrides it to stay capturable in a CUDA graph."""
        return self.module.stack(list(arrays), axis=axis)

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


def join_by_copies(xp: Any, arrays: list, axis: int, op: str = "concatenate") -> Any:
    """``xp.concatenate(arrays, axis)`` as one empty output and one copy into a slice of it per array.

    The form CuPy uses for a few arrays, taken here for any number: CuPy's one-kernel form for
    more than eight uploads a pointer table from the host, which a CUDA graph capture refuses.

    Raises:
        ValueError: no arrays, or shapes that differ other than along ``axis``.
    """
    if not arrays:
        raise ValueError(f"{op}: expected at least one array, got none")
    ndim = arrays[0].ndim
    if ndim == 0 or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for arrays of {ndim} dimensions")
    axis %= ndim
    rest = [tuple(a.shape[:axis] + a.shape[axis + 1:]) if a.ndim == ndim else None for a in arrays]
    if any(r != rest[0] for r in rest):
        raise ValueError(f"{op}: expected shapes equal except along axis {axis}, "
                         f"got {[tuple(a.shape) for a in arrays]}")
    shape = list(arrays[0].shape)
    shape[axis] = sum(int(a.shape[axis]) for a in arrays)
    out = xp.empty(tuple(shape), dtype=xp.result_type(*arrays))
    lead, start = (slice(None),) * axis, 0
    for a in arrays:
        width = int(a.shape[axis])
        out[lead + (slice(start, start + width),)] = a
        start += width
    return out


def stack_by_copies(xp: Any, arrays: list, axis: int) -> Any:
    """``xp.stack(arrays, axis)`` through :func:`join_by_copies` (same shapes required).

    Raises:
        ValueError: no arrays, shapes that differ, or ``axis`` out of range.
    """
    if not arrays:
        raise ValueError("stack: expected at least one array, got none")
    shapes = [tuple(a.shape) for a in arrays]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"stack: expected arrays of one shape, got {shapes}")
    ndim = len(shapes[0]) + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of range for a result of {ndim} dimensions")
    axis %= ndim
    return join_by_copies(xp, [xp.expand_dims(a, axis) for a in arrays], axis, "stack")
