"""Tensor hooks, retain_grad, post-accumulate hooks and next_functions, checked against PyTorch."""

from __future__ import annotations

import gc
import weakref

import numpy
import pytest

import ember as em
from ember.autograd import Function
from ember.autograd.graph_nodes import AccumulateGrad
from ember.errors import GraphError

XS = numpy.array([0.5, -1.25, 2.0])


def program(lib, x, w, log):
    """A diamond through a hooked non-leaf, a leaf used on three paths and a retained grad."""
    y = x * w
    y.retain_grad()
    y.register_hook(lambda g: log.append(("y1", g.detach().numpy().copy())))
    y.register_hook(lambda g: g * 2.0)
    y.register_hook(lambda g: log.append(("y3", g.detach().numpy().copy())))
    z = y.tanh() * y + x  # x reaches the sum on two paths via y and once directly
    z.register_hook(lambda g: log.append(("z", g.detach().numpy().copy())))
    x.register_hook(lambda g: log.append(("x", g.detach().numpy().copy())))
    x.register_post_accumulate_grad_hook(lambda t: log.append(("x_post", t.grad.detach().numpy().copy())))
    w.register_post_accumulate_grad_hook(lambda t: log.append(("w_post", t.grad.detach().numpy().copy())))
    (z * z).sum().backward()
    return y


def run_program(lib, make):
    x = make(XS, requires_grad=True)
    w = make(XS[::-1].copy(), requires_grad=True)
    log = []
    y = program(lib, x, w, log)
    return log, x.grad.detach().numpy(), w.grad.detach().numpy(), y.grad.detach().numpy()


def test_hook_order_and_values_match_torch():
    torch = pytest.importorskip("torch")
    ours = run_program(em, lambda a, requires_grad: em.tensor(a, dtype=em.float64, requires_grad=requires_grad))
    theirs = run_program(torch, lambda a, requires_grad: torch.tensor(a, dtype=torch.float64,
                                                                      requires_grad=requires_grad))
    assert [n for n, _ in ours[0]] == [n for n, _ in theirs[0]]
    for (_, a), (_, b) in zip(ours[0], theirs[0]):
        numpy.testing.assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(ours[1:], theirs[1:]):
        numpy.testing.assert_allclose(a, b, rtol=1e-12)


def test_post_accumulate_hook_fires_once_per_leaf_after_the_full_sum():
    x = em.tensor(XS, dtype=em.float64, requires_grad=True)
    b = em.tensor(1.0, dtype=em.float64, requires_grad=True)
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append(("x", t.grad.numpy().copy())))
    b.register_post_accumulate_grad_hook(lambda t: seen.append(("b", t.grad.numpy().copy())))
    # x is used by four nodes of different generations; b only at the very top
    loss = ((x * 2.0).exp().sum() + (x * x).sum() + x.sum()) * b
    loss.backward()
    assert [n for n, _ in seen] == ["b", "x"]  # b completes first: it sits next to the root
    numpy.testing.assert_allclose(seen[1][1], 2 * numpy.exp(2 * XS) + 2 * XS + 1, rtol=1e-13)
    loss2 = (x * 3.0).sum()
    loss2.backward()  # a second backward: fires again, after accumulation into the existing .grad
    assert len(seen) == 3
    numpy.testing.assert_allclose(seen[2][1], 2 * numpy.exp(2 * XS) + 2 * XS + 4, rtol=1e-13)


def test_leaf_completion_order_matches_torch_for_a_layered_net():
    torch = pytest.importorskip("torch")

    def order(lib, make):
        ws = [make(numpy.full((3, 3), 0.1 * (i + 1)), requires_grad=True) for i in range(4)]
        log = []
        for i, w in enumerate(ws):
            w.register_post_accumulate_grad_hook(lambda t, i=i: log.append(i))
        h = make(numpy.ones((2, 3)), requires_grad=False)
        for w in ws:
            h = (h @ w).tanh()
        h.sum().backward()
        return log

    make_em = lambda a, requires_grad: em.tensor(a, dtype=em.float64, requires_grad=requires_grad)
    make_t = lambda a, requires_grad: torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad)
    assert order(em, make_em) == order(torch, make_t) == [3, 2, 1, 0]


def test_leaf_hook_replaces_gradient_and_handle_removes_it():
    x = em.tensor(XS, dtype=em.float64, requires_grad=True)
    h = x.register_hook(lambda g: g * 10.0)
    (x * x).sum().backward()
    numpy.testing.assert_allclose(x.grad.numpy(), 20 * XS)
    h.remove()
    x.grad = None
    (x * x).sum().backward()
    numpy.testing.assert_allclose(x.grad.numpy(), 2 * XS)


def test_hooks_see_the_summed_gradient_under_autograd_grad():
    torch = pytest.importorskip("torch")

    def run(lib, make):
        x = make(XS, requires_grad=True)
        seen = []
        x.register_hook(lambda g: seen.append(g.detach().numpy().copy()))
        y = x * x
        y.register_hook(lambda g: g * 3.0)
        (g,) = lib.autograd.grad((y + x).sum(), [x])
        return seen, g.detach().numpy()

    ours = run(em, lambda a, requires_grad: em.tensor(a, dtype=em.float64, requires_grad=requires_grad))
    theirs = run(torch, lambda a, requires_grad: torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad))
    assert len(ours[0]) == len(theirs[0]) == 1
    numpy.testing.assert_allclose(ours[0][0], theirs[0][0])
    numpy.testing.assert_allclose(ours[1], theirs[1])


def test_hooks_under_create_graph_are_differentiable():
    x = em.tensor(XS, dtype=em.float64, requires_grad=True)
    y = x * x
    y.register_hook(lambda g: g * x)  # the hook's result is part of the recorded graph
    (gx,) = em.autograd.grad(y.sum(), [x], create_graph=True)
    numpy.testing.assert_allclose(gx.numpy(), 2 * XS * XS)
    (ggx,) = em.autograd.grad(gx.sum(), [x])
    numpy.testing.assert_allclose(ggx.numpy(), 4 * XS)


def test_retain_grad_accumulates_and_is_a_noop_on_leaves():
    x = em.tensor(XS, dtype=em.float64, requires_grad=True)
    x.retain_grad()
    y = x * 2.0
    y.retain_grad()
    assert y.retains_grad and not x.retains_grad
    out = (y * y).sum()
    out.backward(retain_graph=True)
    out.backward()
    numpy.testing.assert_allclose(y.grad.numpy(), 2 * (2 * 2 * XS))
    numpy.testing.assert_allclose(x.grad.numpy(), 2 * (8 * XS))


def test_hook_errors():
    c = em.tensor(XS)
    with pytest.raises(GraphError, match="does not require grad"):
        c.register_hook(lambda g: g)
    with pytest.raises(GraphError, match="requires_grad=False"):
        c.retain_grad()
    x = em.tensor(XS, requires_grad=True)
    with pytest.raises(GraphError, match="non-leaf"):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(TypeError, match="callable"):
        x.register_hook(3)
    y = x * 2
    y.register_hook(lambda g: em.ones(4))
    with pytest.raises(GraphError, match=r"shape \(3,\)"):
        y.sum().backward()
    z = em.tensor(XS, requires_grad=True)
    z.register_post_accumulate_grad_hook(lambda t: t)
    with pytest.raises(GraphError, match="must return None"):
        z.sum().backward()


def test_next_functions_match_torch_structure():
    torch = pytest.importorskip("torch")

    def shape_of(lib, make):
        x = make(XS, requires_grad=True)
        c = make(XS, requires_grad=False)
        y = x * c
        z = y + x
        out = []
        for node, idx in z.grad_fn.next_functions:
            if node is None:
                out.append(("none", idx))
            elif type(node).__name__ == "AccumulateGrad":
                out.append(("leaf", idx, node.variable is x))
            else:
                out.append(("node", idx, [n is None for n, _ in node.next_functions]))
        return out

    ours = shape_of(em, lambda a, requires_grad: em.tensor(a, dtype=em.float64, requires_grad=requires_grad))
    theirs = shape_of(torch, lambda a, requires_grad: torch.tensor(a, dtype=torch.float64,
                                                                   requires_grad=requires_grad))
    assert ours == theirs == [("node", 0, [False, True]), ("leaf", 0, True)]
    x = em.tensor(XS, requires_grad=True)
    assert (x * 2).grad_fn.next_functions[0][0] == AccumulateGrad(x)


def test_partial_paths_still_fire_the_post_hook_once():
    class HalfNone(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, gy):
            return gy, None  # no gradient for b even though b requires grad

    x = em.tensor(XS, dtype=em.float64, requires_grad=True)
    fired = []
    x.register_post_accumulate_grad_hook(lambda t: fired.append(t.grad.numpy().copy()))
    out = HalfNone.apply(x * 3.0, x) + x
    out.sum().backward()
    assert len(fired) == 1
    numpy.testing.assert_allclose(fired[0], numpy.full(3, 4.0))


def test_hooks_do_not_keep_graphs_alive():
    x = em.tensor(XS, dtype=em.float64, requires_grad=True)
    x.register_post_accumulate_grad_hook(lambda t: None)
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        y = x * x
        y.register_hook(lambda g: g * 2.0)
        y.retain_grad()
        z = y.exp().sum()
        node = weakref.ref(y.grad_fn)
        top = weakref.ref(z.grad_fn)
        ry = weakref.ref(y)
        del y  # retain_grad holds y weakly
        assert ry() is None
        z.backward()
        del z
        assert node() is None and top() is None
        # a graph dropped without backward dies too
        y = x * x
        y.register_hook(lambda g: g)
        node = weakref.ref(y.grad_fn)
        del y
        assert node() is None
    finally:
        if was:
            gc.enable()


def test_dropped_hooked_leaf_is_freed_and_stops_tracking():
    from ember.autograd import hooks

    before = hooks._HOOKED_LEAVES[0]
    x = em.tensor(XS, requires_grad=True)
    x.register_hook(lambda g: None)
    assert hooks._HOOKED_LEAVES[0] == before + 1
    r = weakref.ref(x)
    del x
    gc.collect()
    assert r() is None and hooks._HOOKED_LEAVES[0] == before
