"""``Parameter``: a leaf Tensor that a Module registers as trainable when assigned to it."""

from __future__ import annotations

from typing import Any

from ember.autograd.creation import as_array
from ember.autograd.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad by default and is found by ``Module.parameters()``."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True):
        super().__init__(as_array(data) if not isinstance(data, Tensor) else data.data.copy(), requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
