"""Numerical gradient checks: central differences against the engine's gradients.

``gradcheck`` compares the full Jacobian (every output element x every input
element) in float64, so it is for small shapes; ``gradgradcheck`` applies it to
the first derivative built with ``create_graph=True``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy

from ember.autograd.api import grad as autograd_grad
from ember.autograd.grad_mode import enable_grad, no_grad
from ember.autograd.tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree; the message names the worst element."""


def _outputs(fn: Callable, inputs: Sequence[Any]) -> list:
    out = fn(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o for o in outs if isinstance(o, Tensor)]


def _numeric_jacobians(fn: Callable, inputs: list, wrt: list, eps: float) -> list:
    """d(outputs)/d(input) by central differences: one (n_out, n_in) matrix per output x input."""
    with no_grad():
        base = _outputs(fn, inputs)
        jac = [[numpy.zeros((o.numel(), inputs[i].numel())) for i in wrt] for o in base]
        for col, i in enumerate(wrt):
            flat = inputs[i].data.reshape(-1)  # a view: writes perturb the input in place
            for j in range(flat.size):
                orig = flat[j].item()
                flat[j] = orig + eps
                plus = [numpy.array(o.numpy(), dtype=numpy.float64).reshape(-1) for o in _outputs(fn, inputs)]
                flat[j] = orig - eps
                minus = [numpy.array(o.numpy(), dtype=numpy.float64).reshape(-1) for o in _outputs(fn, inputs)]
                flat[j] = orig
                for k in range(len(base)):
                    jac[k][col][:, j] = (plus[k] - minus[k]) / (2 * eps)
    return jac


def _analytic_jacobians(fn: Callable, inputs: list, wrt: list) -> list:
    outs = _outputs(fn, inputs)
    jac = [[numpy.zeros((o.numel(), inputs[i].numel())) for i in wrt] for o in outs]
    for k, out in enumerate(outs):
        if not out.requires_grad:
            continue
        for row in range(out.numel()):
            seed = numpy.zeros(out.numel(), dtype=out.dtype)
            seed[row] = 1
            grads = autograd_grad(
                [out], [inputs[i] for i in wrt], [Tensor._make(seed.reshape(out.shape))],
                retain_graph=True, allow_unused=True,
            )
            for col, g in enumerate(grads):
                if g is not None:
                    jac[k][col][row] = numpy.asarray(g.numpy(), dtype=numpy.float64).reshape(-1)
    return jac


def gradcheck(
    fn: Callable,
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-7,
    rtol: float = 1e-5,
    raise_exception: bool = True,
) -> bool:
    """Check ``fn``'s gradients w.r.t. every input that requires grad.

    Args:
        fn: maps the inputs to a Tensor or a tuple of Tensors.
        inputs: Tensors (float64 to be meaningful) and other arguments.
        eps, atol, rtol: step and tolerance: ``|analytic - numeric| <= atol + rtol * |numeric|``.
            The defaults sit well above the worst float64 central-difference error on the
            registered ops (``python -m benchmarks.gradcheck_tolerance`` measures it) and well
            below any plausible gradient bug.

    Returns:
        True when every Jacobian entry agrees.

    Raises:
        GradcheckError: naming the worst element (output, input, index, both values).
    """
    inputs = list(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad, nothing to check")
    for i in wrt:
        if inputs[i].dtype != numpy.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64 for a meaningful check")
    analytic = _analytic_jacobians(fn, inputs, wrt)
    numeric = _numeric_jacobians(fn, inputs, wrt, eps)
    worst = None
    if len(analytic) != len(numeric) or any(len(a) != len(n) for a, n in zip(analytic, numeric)):
        raise GradcheckError(
            f"gradcheck: the function returned {len(analytic)} outputs with grad but the numeric pass saw "
            f"{len(numeric)}; does it depend on grad mode?"
        )
    for k, (row_a, row_n) in enumerate(zip(analytic, numeric)):
        for col, (a, n) in enumerate(zip(row_a, row_n)):
            excess = numpy.abs(a - n) - (atol + rtol * numpy.abs(n))
            if excess.size and (worst is None or excess.max() > worst[0]):
                flat = int(excess.argmax())
                worst = (excess.max(), k, wrt[col], flat, a.reshape(-1)[flat], n.reshape(-1)[flat], a.shape)
    if worst is not None and worst[0] > 0:
        _, k, i, flat, a_val, n_val, jshape = worst
        out_idx, in_idx = numpy.unravel_index(flat, jshape)
        in_pos = numpy.unravel_index(in_idx, tuple(inputs[i].shape)) if inputs[i].ndim else ()
        msg = (
            f"gradcheck: Jacobian mismatch for output {k} element {int(out_idx)} w.r.t. input {i} "
            f"at index {tuple(int(p) for p in in_pos)}: analytic {a_val:.8g}, numeric {n_val:.8g} "
            f"(atol={atol}, rtol={rtol})"
        )
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True


def gradgradcheck(
    fn: Callable,
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-7,
    rtol: float = 1e-5,
    seed: int = 0,
) -> bool:
    """Check second derivatives: gradcheck of ``v . d fn / d inputs`` built with ``create_graph``.

    ``v`` is a fixed random weighting of the outputs, so the checked function is
    the vector-Jacobian product, whose own Jacobian is the Hessian contraction.
    That product is first compared with its central-difference value: an op whose
    ``create_graph`` backward differs from its plain one would otherwise pass, its
    second derivative being consistent with its own wrong first derivative.

    Raises:
        GradcheckError: the first derivative built with ``create_graph`` or its Jacobian is wrong.
    """
    inputs = list(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    rng = numpy.random.default_rng(seed)
    outs = _outputs(fn, inputs)
    weights = [Tensor._make(numpy.asarray(rng.normal(size=tuple(o.shape)), dtype=o.dtype)) for o in outs]

    def weighted_grads(args: list) -> tuple:
        # The numeric pass runs fn under no_grad; the first derivative needs a graph regardless.
        with enable_grad():
            outs = _outputs(fn, args)
            keep = [k for k, o in enumerate(outs) if o.requires_grad]
            grads = autograd_grad(
                [outs[k] for k in keep], [args[i] for i in wrt], [weights[k] for k in keep],
                create_graph=True, allow_unused=True,
            )
        return keep, grads

    def first_derivative(*args: Any) -> tuple:
        return tuple(g for g in weighted_grads(list(args))[1] if g is not None)

    _check_weighted_first_derivative(fn, inputs, wrt, weights, weighted_grads, eps, atol, rtol)
    return gradcheck(first_derivative, inputs, eps=eps, atol=atol, rtol=rtol)


def _check_weighted_first_derivative(
    fn: Callable, inputs: list, wrt: list, weights: list, weighted_grads: Callable, eps: float, atol: float,
    rtol: float,
) -> None:
    """``v . J`` from ``create_graph=True`` must equal ``v . J_numeric``, input by input."""
    keep, grads = weighted_grads(inputs)
    numeric = _numeric_jacobians(fn, inputs, wrt, eps)
    for col, g in enumerate(grads):
        expected = numpy.zeros(inputs[wrt[col]].numel())
        for k in keep:
            expected += numpy.asarray(weights[k].numpy(), dtype=numpy.float64).reshape(-1) @ numeric[k][col]
        got = numpy.zeros_like(expected) if g is None else numpy.asarray(g.numpy(), dtype=numpy.float64).reshape(-1)
        excess = numpy.abs(got - expected) - (atol + rtol * numpy.abs(expected))
        if excess.size and excess.max() > 0:
            j = int(excess.argmax())
            raise GradcheckError(
                f"gradgradcheck: the first derivative built with create_graph=True disagrees with the numeric one "
                f"w.r.t. input {wrt[col]} at flat index {j}: analytic {got[j]:.8g}, numeric {expected[j]:.8g} "
                f"(atol={atol}, rtol={rtol})"
            )
