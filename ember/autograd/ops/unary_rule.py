"""One-input elementwise Functions built from a rule: ``y = value(x)``, ``gx = grad(saved, gy)``.

Most smooth unary ops differ only in those two expressions and in whether the
backward needs the input ``x`` or the output ``y``; ``unary_function`` builds
the Function class from them, so each op is one table row, not a dozen lines.
"""

from __future__ import annotations

from typing import Any, Callable

from ember.autograd.function import Function


def _forward_saving_input(ctx: Function, x: Any) -> Any:
    ctx.save_for_backward(x)
    return ctx.value(x)


def _forward_saving_output(ctx: Function, x: Any) -> Any:
    y = ctx.value(x)
    ctx.save_for_backward(y)
    return y


def _backward_from_saved(ctx: Function, gy: Any) -> Any:
    (saved,) = ctx.saved_tensors
    return ctx.grad(saved, gy)


def unary_function(
    name: str,
    doc: str,
    value: Callable[[Function, Any], Any],
    grad: Callable[[Function, Any, Any], Any],
    *,
    saves: str,
    module: str,
    base: type = Function,
) -> type:
    """A ``base`` subclass ``name`` whose forward is ``value(ctx, x)`` and backward ``grad(ctx, saved, gy)``.

    ``saves``: ``"input"`` keeps ``x`` for the backward, ``"output"`` keeps ``y``
    (cheaper where the derivative is a function of ``y``, as for ``exp``).
    ``module``: the defining module's ``__name__``, so the class pickles and prints as if written there.
    """
    if saves not in ("input", "output"):
        raise ValueError(f"unary_function: expected saves 'input' or 'output', got {saves!r}")
    forward = _forward_saving_input if saves == "input" else _forward_saving_output
    body = {
        "__doc__": doc, "__module__": module, "__qualname__": name,
        "forward": staticmethod(forward), "backward": staticmethod(_backward_from_saved),
        "value": value, "grad": grad,  # plain functions: bound to ctx when called
    }
    return type(name, (base,), body)
