"""Containers: ``Sequential`` (a pipeline) and ``ModuleList`` (an indexable list of modules)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator

from ember.nn import fusion as _fusion
from ember.nn.module import Module


class IndexedChildren:
    """``len``, iteration and integer indexing over one of a Module's registries, in insertion order.

    Shared by the list-like containers; ``_registry`` names the dict they keep
    their children in (``"_modules"``, or ``"_parameters"`` for ``ParameterList``).
    """

    _registry = "_modules"

    def __len__(self) -> int:
        return len(getattr(self, self._registry))

    def __iter__(self) -> Iterator[Any]:
        return iter(getattr(self, self._registry).values())

    def __getitem__(self, i: int) -> Any:
        return list(getattr(self, self._registry).values())[i]


class Sequential(IndexedChildren, Module):
    """Apply modules in order; accepts modules positionally or one ``OrderedDict`` of named ones."""

    def __init__(self, *modules: Any):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x: Any) -> Any:
        """Each module in turn; an adjacent Conv2d or Linear + ReLU pair runs as one fused op (``ember.nn.fusion``)."""
        mods = tuple(self._modules.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            if i + 1 < n:
                y = _fusion.run_pair(m, mods[i + 1], x)
                if y is not None:
                    x = y
                    i += 2
                    continue
            x = m(x)
            i += 1
        return x

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return Sequential(*list(self._modules.values())[i])
        return super().__getitem__(i)

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self


class ModuleList(IndexedChildren, Module):
    """A list of modules whose parameters are registered (plain lists are invisible to Module)."""

    def __init__(self, modules: Iterable[Module] = ()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self._modules)), module)
        return self
