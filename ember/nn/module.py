"""``Module``: the base of layers and models, registering parameters and submodules by attribute.

Assigning a ``Parameter`` or ``Module`` to an attribute registers it under that
name; traversal order is registration order, so ``parameters()`` and
``state_dict()`` are deterministic (never ``set`` or ``id()`` ordered).
State dict values are the live tensors; ``ember.save`` copies them to the host.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy

from ember.autograd.capture import replayable
from ember.autograd.grad_mode import no_grad
from ember.autograd.tensor import Tensor
from ember.autograd.to_shorthands import ToShorthands
from ember.errors import ShapeError, StateDictKeyError
from ember.nn.module_hooks import ModuleHooksMixin
from ember.nn.parameter import Parameter


class Module(ModuleHooksMixin, ToShorthands):
    """Base class for every layer and model: subclass and implement ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        self._init_hooks()

    # ------------------------------------------------------------ attributes
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None, a declared-but-absent parameter such as a disabled bias)."""
        if param is None:
            object.__setattr__(self, name, None)
            self._parameters.pop(name, None)
            return
        setattr(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """Register a non-trainable tensor that is part of the state (running statistics)."""
        object.__setattr__(self, name, tensor)
        if tensor is not None:
            self._buffers[name] = tensor

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register ``module`` as a child called ``name``."""
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"add_module: expected a Module, got {type(module).__name__}")
        setattr(self, name, module)

    # -------------------------------------------------------------- forward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: forward() is not implemented")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward_pre_hooks or self._forward_hooks or self._backward_hooks or self._backward_pre_hooks:
            return self._call_with_hooks(args, kwargs)  # ember.nn.module_hooks
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module and every descendant with its dotted path (each module once)."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop(0)
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            stack[0:0] = [
                (f"{name}.{child_name}" if name else child_name, child)
                for child_name, child in mod._modules.items()
                if child is not None
            ]

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, attr: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        mods = self.named_modules() if recurse else [("", self)]
        for prefix, mod in mods:
            for name, t in getattr(mod, attr).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{prefix}.{name}" if prefix else name), t

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` pairs in registration order; shared parameters once."""
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse):
            yield b

    # ----------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active, batch norm uses batch statistics) recursively."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Set evaluation mode recursively; same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    @replayable
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad``."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor._make(p.grad.data * 0)

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every submodule (children first) and on this module."""
        for m in list(self.modules())[::-1]:
            fn(m)
        return self

    # ------------------------------------------------------- device / dtype
    def to(self, *args: Any, **kwargs: Any) -> "Module":
        """Move/convert every parameter and buffer in place (``to(device)``, ``to(dtype)``).

        Integer buffers (e.g. counters) keep their dtype on a dtype change.
        """
        with no_grad():
            for mod in self.modules():
                for store in (mod._parameters, mod._buffers):
                    for name, t in store.items():
                        if t is None:
                            continue
                        kw = dict(kwargs)
                        a = args
                        if t.dtype.kind != "f":
                            a = tuple(x for x in args if isinstance(x, (str, Tensor)) or type(x).__name__ == "Device")
                            kw.pop("dtype", None)
                        moved = t.to(*a, **kw)
                        if moved is not t:
                            t.data = moved.data
                            t._bump_version()
                            if t.grad is not None:
                                t.grad = t.grad.to(*a, **kw)
        return self

    # ------------------------------------------------------------ state dict
    def state_dict(self) -> "OrderedDict[str, Tensor]":
        """Parameters and buffers by dotted name (the live tensors, not copies)."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for prefix, mod in self.named_modules():
            for store in (mod._parameters, mod._buffers):
                for name, t in store.items():
                    if t is not None:
                        out[f"{prefix}.{name}" if prefix else name] = t
        return out

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> tuple[list, list]:
        """Copy values into this module's parameters and buffers.

        Args:
            state_dict: name -> Tensor or array, e.g. from ``state_dict()`` or ``ember.load``.
            strict: require exactly the same keys.

        Returns:
            ``(missing_keys, unexpected_keys)``.

        Raises:
            StateDictKeyError: (a KeyError and a RuntimeError) with ``strict``, naming missing and
                unexpected keys.
            TypeError: a value cannot be converted to the parameter's dtype (nothing is loaded).
            ShapeError: a value's shape differs from the parameter's (always checked).
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise StateDictKeyError(
                f"load_state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}"
            )
        mismatched = []
        for k, t in own.items():
            if k in state_dict:
                v = state_dict[k]
                shape = tuple(v.shape) if hasattr(v, "shape") else numpy.shape(v)
                if shape != tuple(t.shape):
                    mismatched.append(f"{k}: expected {tuple(t.shape)}, got {shape}")
        if mismatched:
            raise ShapeError(f"load_state_dict for {type(self).__name__}: shape mismatch for " + "; ".join(mismatched))
        converted = {}  # convert every value first, so a bad one leaves the module untouched
        for k, t in own.items():
            if k in state_dict:
                v = state_dict[k]
                try:
                    host = v.numpy() if isinstance(v, Tensor) else numpy.asarray(v)
                    converted[k] = numpy.asarray(host, dtype=t.dtype)
                except (TypeError, ValueError) as e:
                    raise TypeError(
                        f"load_state_dict for {type(self).__name__}: cannot use the {type(v).__name__} given for "
                        f"{k!r} as {t.dtype}: {e}"
                    ) from None
        with no_grad():
            for k, host in converted.items():
                own[k].copy_(Tensor._make(host))
        return missing, unexpected

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
