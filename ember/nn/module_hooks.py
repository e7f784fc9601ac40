"""Module hooks: forward pre-hooks, forward hooks and full backward (pre-)hooks, as PyTorch's.

``Module.__call__`` runs, when any hook is registered:

1. forward pre-hooks ``hook(module, args)`` (or ``hook(module, args, kwargs)``
   with ``with_kwargs=True``); a non-None result replaces the arguments;
2. with backward hooks, the tensor arguments pass through an identity node;
3. ``forward``;
4. forward hooks ``hook(module, args, output)`` (``with_kwargs``: ``hook(module,
   args, kwargs, output)``); a non-None result replaces the output;
5. with backward hooks, the tensor outputs pass through a second identity node.

In backward the output node records ``grad_output`` (one entry per output,
None where no gradient arrived) and runs the backward pre-hooks
``hook(module, grad_output)``; the input node then calls ``hook(module,
grad_input, grad_output)`` with one entry per positional argument (None for
non-tensors and tensors without gradient); a non-None result replaces
``grad_input``.  If no argument requires grad, the hooks run at the output node
with an all-None ``grad_input``.
"""

from __future__ import annotations

from typing import Any, Callable

from ember.autograd.function import Function
from ember.autograd.grad_mode import is_grad_enabled
from ember.autograd.hooks import HookTable, RemovableHandle, add_hook
from ember.autograd.tensor import Tensor


class _ModuleBackwardHook(Function):
    """Identity on a module's tensor arguments or outputs; its backward runs the module's hooks."""

    @staticmethod
    def forward(ctx: Any, *arrays: Any) -> tuple:
        return tuple(arrays)

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> tuple:
        received = list(ctx.received)
        ctx.received[:] = [None] * len(received)  # in place: the recorders share this list
        return ctx.run(received, grads)


class _BackwardCall:
    """The state one module call shares between its output node and its input node."""

    def __init__(self, module: "ModuleHooksMixin", n_args: int):
        self.module = module
        self.n_args = n_args
        self.arg_index: list[int] | None = None  # positions of the tensors behind the input node
        self.n_outputs = 0
        self.out_index: list[int] = []
        self.grad_outputs: tuple | None = None

    def wrap(self, values: tuple, run: Callable) -> tuple[tuple, list[int] | None]:
        """Route the tensors among ``values`` through one identity node whose backward calls ``run``."""
        index = [i for i, v in enumerate(values) if isinstance(v, Tensor)]
        if not index or not is_grad_enabled() or not any(values[i].requires_grad for i in index):
            return values, None
        outs = _ModuleBackwardHook.apply(*(values[i] for i in index))
        node = next(o.grad_fn for o in outs if o.grad_fn is not None)
        node.received = [None] * len(index)
        node.run = run
        for k, o in enumerate(outs):
            if o.requires_grad:
                o.register_hook(_Recorder(node.received, k))
        new = list(values)
        for i, o in zip(index, outs):
            new[i] = o
        return tuple(new), index

    def at_outputs(self, received: list, grads: tuple) -> tuple:
        packed = [None] * self.n_outputs
        for k, i in enumerate(self.out_index):
            packed[i] = _as_tensor(received[k])
        grad_outputs = tuple(packed)
        for hook in list(self.module._backward_pre_hooks.values()):
            new = hook(self.module, grad_outputs)
            if new is None:
                continue
            new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
            if len(new) != len(grad_outputs):
                raise RuntimeError(
                    f"{type(self.module).__name__} backward pre hook: expected {len(grad_outputs)} grad_output "
                    f"entries, got {len(new)}"
                )
            grad_outputs = new
        self.grad_outputs = grad_outputs
        if self.arg_index is None:  # no argument needs a gradient: the hooks fire now
            grad_input = (None,) * self.n_args
            for hook in list(self.module._backward_hooks.values()):
                res = hook(self.module, grad_input, grad_outputs)
                if res is not None and not all(r is None for r in res):
                    raise RuntimeError(
                        f"{type(self.module).__name__} backward hook: no input of this call requires grad, "
                        "so the hook must return None"
                    )
            self.grad_outputs = None
        return _like(grads, [grad_outputs[i] for i in self.out_index])

    def at_inputs(self, received: list, grads: tuple) -> tuple:
        if self.grad_outputs is None:  # the gradient reached the inputs without passing the outputs
            return grads
        packed = [None] * self.n_args
        for k, i in enumerate(self.arg_index):
            packed[i] = _as_tensor(received[k])
        grad_input = tuple(packed)
        for hook in list(self.module._backward_hooks.values()):
            new = hook(self.module, grad_input, self.grad_outputs)
            if new is None:
                continue
            new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
            if len(new) != len(grad_input):
                raise RuntimeError(
                    f"{type(self.module).__name__} backward hook: expected {len(grad_input)} grad_input entries, "
                    f"got {len(new)}"
                )
            grad_input = new
        self.grad_outputs = None
        return _like(grads, [grad_input[i] for i in self.arg_index])


class _Recorder:
    """A tensor hook noting the gradient that reached output ``k`` of a hook node.

    It holds the node's ``received`` list, not the node: the node holds its hooks,
    and a link back would make a reference cycle that only the collector frees.
    """

    def __init__(self, received: list, k: int):
        self.received, self.k = received, k

    def __call__(self, grad: Tensor) -> None:
        self.received[self.k] = grad


def _as_tensor(g: Any) -> Any:
    return g if g is None or isinstance(g, Tensor) else Tensor._make(g)


def _like(grads: tuple, values: list) -> tuple:
    """Hook results back in the engine's form (arrays, or Tensors under create_graph)."""
    out = []
    for g, v in zip(grads, values):
        if v is None:
            out.append(None)
        elif isinstance(g, Tensor):
            out.append(v if isinstance(v, Tensor) else Tensor._make(v))
        else:
            out.append(v.data if isinstance(v, Tensor) else v)
    return tuple(out)


class ModuleHooksMixin:
    """The hook-registration methods of ``Module`` and the hooked call path."""

    def _init_hooks(self) -> None:
        for name in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks"):
            object.__setattr__(self, name, HookTable())
        object.__setattr__(self, "_hooks_with_kwargs", set())

    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """``hook(module, args)`` before ``forward``; a non-None result replaces ``args``.

        With ``with_kwargs=True`` it is ``hook(module, args, kwargs)`` returning ``(args, kwargs)``.
        """
        handle = add_hook(self._forward_pre_hooks, hook, prepend)
        if with_kwargs:
            self._hooks_with_kwargs.add(handle.id)
        return handle

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """``hook(module, args, output)`` after ``forward``; a non-None result replaces the output."""
        handle = add_hook(self._forward_hooks, hook, prepend)
        if with_kwargs:
            self._hooks_with_kwargs.add(handle.id)
        return handle

    def register_full_backward_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(module, grad_input, grad_output)`` once the gradients w.r.t. the arguments are known."""
        return add_hook(self._backward_hooks, hook, prepend)

    def register_full_backward_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(module, grad_output)`` when the gradients w.r.t. the outputs are known."""
        return add_hook(self._backward_pre_hooks, hook, prepend)

    def _call_with_hooks(self, args: tuple, kwargs: dict) -> Any:
        with_kwargs = self._hooks_with_kwargs
        for hid, hook in list(self._forward_pre_hooks.items()):
            if hid in with_kwargs:
                res = hook(self, args, kwargs)
                if res is not None:
                    if not (isinstance(res, tuple) and len(res) == 2):
                        raise RuntimeError(
                            f"{type(self).__name__} forward pre hook with kwargs: expected None or (args, kwargs), "
                            f"got {type(res).__name__}"
                        )
                    args, kwargs = res
            else:
                res = hook(self, args)
                if res is not None:
                    args = res if isinstance(res, tuple) else (res,)
        call = None
        if self._backward_hooks or self._backward_pre_hooks:
            call = _BackwardCall(self, len(args))
            args, call.arg_index = call.wrap(tuple(args), call.at_inputs)
        output = self.forward(*args, **kwargs)
        for hid, hook in list(self._forward_hooks.items()):
            res = hook(self, args, kwargs, output) if hid in with_kwargs else hook(self, args, output)
            if res is not None:
                output = res
        if call is not None:
            single = not isinstance(output, tuple)
            outs = (output,) if single else output
            call.n_outputs = len(outs)
            wrapped, index = call.wrap(outs, call.at_outputs)
            if index is not None:
                call.out_index = index
                output = wrapped[0] if single else wrapped
        return output
