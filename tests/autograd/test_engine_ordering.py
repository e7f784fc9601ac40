"""The engine's node order: a node runs only after every consumer has sent its gradient.

Each graph here joins a shallow input (listed first) with a deep one, so a node whose
generation were taken from its first non-leaf input only would be popped while a
consumer of one of its inputs is still pending, and the gradient would come out short.
Values are checked against closed forms, and the generation invariant is checked directly.
"""

from __future__ import annotations

import math

import numpy
import pytest

import ember as em


def f64(values) -> em.Tensor:
    return em.tensor(values, dtype=em.float64, requires_grad=True)


def _nodes(root: em.Tensor) -> list:
    seen, stack, out = set(), [root.grad_fn], []
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        out.append(fn)
        stack.extend(e[0] for e in fn._edges if type(e) is tuple)
    return out


def _assert_generations_increase(root: em.Tensor) -> None:
    """Every node's generation exceeds that of each node producing one of its inputs."""
    for fn in _nodes(root):
        for edge in fn._edges:
            if type(edge) is tuple:
                parent = edge[0]
                assert fn.generation > parent.generation, (
                    f"{type(fn).__name__} has generation {fn.generation} but its input "
                    f"{type(parent).__name__} has {parent.generation}"
                )


def test_shallow_input_first_then_deep_input_shared_with_another_consumer():
    # p is deep (three exps) and feeds both n (as n's second input) and m; n's first input is shallow.
    x = f64(0.3)
    p = x.exp().exp().exp()
    n = x * 2.0 + p
    m = p * 3.0
    out = n + m
    _assert_generations_increase(out)
    out.backward()
    e1 = math.exp(0.3)
    e2 = math.exp(e1)
    dp = math.exp(e2) * e2 * e1
    assert x.grad.item() == pytest.approx(2.0 + 4.0 * dp, rel=1e-13)


def test_deeper_dag_with_three_paths_of_different_lengths():
    x = f64([0.2, -0.4])
    a = x.tanh()  # depth 1
    b = a.exp()  # depth 2
    c = b.tanh().exp()  # depth 4
    d = a + c  # shallow first
    e = b * d  # b is reached directly and through c
    f = (x * 0.5 + e) + a * b
    _assert_generations_increase(f)
    f.sum().backward()
    xs = numpy.array([0.2, -0.4])
    av = numpy.tanh(xs)
    bv = numpy.exp(av)
    tv = numpy.tanh(bv)
    cv = numpy.exp(tv)
    da, db_da = 1 - av**2, bv
    dc_db = cv * (1 - tv**2)
    # f = 0.5 x + b (a + c) + a b, all as functions of a(x)
    df_da = db_da * (av + cv) + bv * (1 + dc_db * db_da) + bv + av * db_da
    numpy.testing.assert_allclose(x.grad.numpy(), 0.5 + df_da * da, rtol=1e-12)


class _SquareAndCube(em.autograd.Function):
    """(x^2, x^3): a multi-output node."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x, x * x * x

    @staticmethod
    def backward(ctx, g1, g2):
        (x,) = ctx.saved_tensors
        return g1 * 2.0 * x + g2 * 3.0 * x * x


def test_multi_output_node_feeding_a_shallow_and_a_deep_branch():
    xs = numpy.array([0.7, -1.1, 0.25])
    x = f64(xs)
    s, c = _SquareAndCube.apply(x.tanh())  # a node with two outputs, each feeding two branches
    deep = c.exp().exp()
    joined = s + deep  # shallow output first
    out = joined * 2.0 + c * s
    _assert_generations_increase(out)
    out.sum().backward()
    u = numpy.tanh(xs)
    sv, cv = u**2, u**3
    ddeep_dc = numpy.exp(numpy.exp(cv)) * numpy.exp(cv)
    dout_ds = 2.0 + cv
    dout_dc = 2.0 * ddeep_dc + sv
    numpy.testing.assert_allclose(x.grad.numpy(), (dout_ds * 2 * u + dout_dc * 3 * u**2) * (1 - u**2), rtol=1e-12)


def test_node_reached_through_paths_of_lengths_one_two_and_five():
    x = f64(0.4)
    h = x * x  # reached from `out` directly, via one node, and via a chain of four
    chain = h.tanh().exp().tanh().exp()
    via_one = h * 3.0
    out = h + via_one + chain  # h comes first: the shallowest input leads
    _assert_generations_increase(out)
    out.backward()
    hv = 0.16
    t1 = math.tanh(hv)
    e = math.exp(t1)
    k = math.tanh(e)
    dchain = math.exp(k) * (1 - k * k) * e * (1 - t1 * t1)
    assert x.grad.item() == pytest.approx((1.0 + 3.0 + dchain) * 0.8, rel=1e-13)


def test_autograd_grad_and_create_graph_follow_the_same_order():
    x = f64(0.3)
    p = x.exp().exp().exp()
    out = x * 2.0 + p + p * 3.0
    (g,) = em.autograd.grad([out], [x], create_graph=True)
    e1 = math.exp(0.3)
    e2 = math.exp(e1)
    dp = math.exp(e2) * e2 * e1
    assert g.item() == pytest.approx(2.0 + 4.0 * dp, rel=1e-13)
    _assert_generations_increase(g)
