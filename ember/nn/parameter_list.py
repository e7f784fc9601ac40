"""``ParameterList``: an indexable list of parameters, registered as ``"0"``, ``"1"``, ..."""

from __future__ import annotations

from typing import Any, Iterable

from ember.autograd.tensor import Tensor
from ember.nn.container import IndexedChildren
from ember.nn.module import Module
from ember.nn.parameter import Parameter


class ParameterList(IndexedChildren, Module):
    """A list of parameters that ``parameters()`` and ``state_dict()`` see (plain lists are invisible).

    A Tensor that is not a Parameter is wrapped in one, as PyTorch does.
    """

    _registry = "_parameters"

    def __init__(self, values: Iterable[Any] | None = None):
        super().__init__()
        for v in values or ():
            self.append(v)

    def append(self, value: Any) -> "ParameterList":
        if isinstance(value, Tensor) and not isinstance(value, Parameter):
            value = Parameter(value, requires_grad=value.requires_grad or value.grad_fn is None)
        if not isinstance(value, Parameter):
            raise TypeError(f"ParameterList.append: expected a Parameter or Tensor, got {type(value).__name__}")
        self.register_parameter(str(len(self._parameters)), value)
        return self

    def extend(self, values: Iterable[Any]) -> "ParameterList":
        for v in values:
            self.append(v)
        return self

    def __setitem__(self, i: int, value: Any) -> None:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ParameterList: index {i} out of range for {n} parameters")
        if not isinstance(value, Parameter):
            value = Parameter(value)
        key = str(i % n)
        self._parameters[key] = value  # replaced in place: the order stays by index
        object.__setattr__(self, key, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ParameterList has no forward")

    def extra_repr(self) -> str:
        return ", ".join(f"({k}): {tuple(p.shape)} {p.dtype}" for k, p in self._parameters.items())
