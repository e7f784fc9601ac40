"""All parameters as one flat vector and back (PyTorch's ``parameters_to_vector``)."""

from __future__ import annotations

from typing import Iterable

from ember.autograd.grad_mode import no_grad
from ember.autograd.tensor import Tensor
from ember.errors import DeviceMismatchError, ShapeError


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """Concatenate the flattened parameters into one 1-D Tensor (differentiable, a copy)."""
    from ember.autograd.ops.shape import cat

    params = list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: got no parameters")
    device = params[0].device
    for p in params:
        if p.device != device:
            raise DeviceMismatchError(
                f"parameters_to_vector: expected all parameters on {device}, got one on {p.device}"
            )
    return cat([p.reshape(-1) for p in params], 0)


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in place.

    Raises:
        TypeError: ``vec`` is not a Tensor.
        ShapeError: ``vec`` is not 1-D or its length differs from the parameters' total size.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected vec to be a Tensor, got {type(vec).__name__}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ShapeError(
            f"vector_to_parameters: expected a 1-D vector of {total} elements (the parameters' total size), "
            f"got shape {tuple(vec.shape)}"
        )
    offset = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec[offset:offset + n].reshape(tuple(p.shape)))
            offset += n
