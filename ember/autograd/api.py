"""``ember.autograd.grad``: gradients of outputs w.r.t. chosen inputs, returned not accumulated."""

from __future__ import annotations

from typing import Any, Sequence

from ember.autograd.engine import run_backward
from ember.autograd.tensor import Tensor, _seed_gradient
from ember.errors import GraphError


def _as_list(x: Any) -> list:
    return [x] if isinstance(x, Tensor) else list(x)


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    create_graph: bool = False,
    retain_graph: bool | None = None,
    allow_unused: bool = False,
) -> tuple:
    """Return ``sum_i d(outputs_i)/d(inputs)`` weighted by ``grad_outputs``.

    Leaves' ``.grad`` are left untouched.  With ``create_graph=True`` the
    returned gradients are differentiable (Hessian-vector products, etc.).

    Raises:
        GraphError: an output does not require grad, or an input is not reached
            by the graph and ``allow_unused`` is False.
    """
    outputs = _as_list(outputs)
    inputs = _as_list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = _as_list(grad_outputs) if not isinstance(grad_outputs, Tensor) else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: expected {len(outputs)} grad_outputs, got {len(grad_outputs)}")
    for t in inputs:
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise GraphError("grad: every input must be a Tensor that requires grad")
    roots = []
    for out, g in zip(outputs, grad_outputs):
        if not isinstance(out, Tensor) or not out.requires_grad:
            raise GraphError("grad: every output must be a Tensor that requires grad (is it connected to the inputs?)")
        roots.append((out, _seed_gradient(out, g, "grad", create_graph)))
    retain = create_graph if retain_graph is None else retain_graph
    found = run_backward(roots, retain, create_graph, capture=inputs)
    result = []
    for k, (t, g) in enumerate(zip(inputs, found)):
        if g is None:
            if not allow_unused:
                raise GraphError(
                    f"grad: input {k} (shape {tuple(t.shape)}) was not used to compute the outputs; "
                    "pass allow_unused=True to get None for it"
                )
            result.append(None)
        else:
            result.append(g if isinstance(g, Tensor) else Tensor._make(g))
    return tuple(result)
