"""Module forward pre-hooks, forward hooks and full backward hooks, checked against PyTorch."""

from __future__ import annotations

import gc
import weakref

import numpy
import pytest

import ember as em

A = numpy.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
B = numpy.array([[1.0, 2.0, -3.0], [0.5, 0.5, 0.5]])


def make_pair(lib, base):
    class Pair(base):
        """Two tensor arguments and a float; two outputs."""

        def forward(self, a, b, scale):
            return (a * b) * scale, (a + b).tanh()

    return Pair()


def trace(lib, make, base):
    log = []
    m = make_pair(lib, base)

    def pre(mod, args):
        log.append(("pre", len(args)))
        return (args[0] * 2.0, args[1], args[2])

    def fwd(mod, args, out):
        log.append(("fwd", len(out)))
        return (out[0] + 1.0, out[1])

    def bwd_pre(mod, grad_output):
        log.append(("bwd_pre", [None if g is None else g.detach().numpy().copy() for g in grad_output]))

    def bwd(mod, grad_input, grad_output):
        log.append(("bwd", [None if g is None else g.detach().numpy().copy() for g in grad_input],
                    [None if g is None else g.detach().numpy().copy() for g in grad_output]))
        return (grad_input[0] * 3.0, grad_input[1], None)

    m.register_forward_pre_hook(pre)
    m.register_forward_hook(fwd)
    m.register_full_backward_pre_hook(bwd_pre)
    m.register_full_backward_hook(bwd)
    a = make(A, True)
    b = make(B, True)
    y0, y1 = m(a, b, 0.5)
    (y0 * y0).sum().backward()  # y1 gets no gradient: grad_output[1] is None
    return log, a.grad.detach().numpy(), b.grad.detach().numpy(), y0.detach().numpy()


def test_module_hook_order_and_values_match_torch():
    torch = pytest.importorskip("torch")
    ours = trace(em, lambda v, rg: em.tensor(v, dtype=em.float64, requires_grad=rg), em.nn.Module)
    theirs = trace(torch, lambda v, rg: torch.tensor(v, dtype=torch.float64, requires_grad=rg), torch.nn.Module)
    assert [e[0] for e in ours[0]] == [e[0] for e in theirs[0]] == ["pre", "fwd", "bwd_pre", "bwd"]
    for e_ours, e_theirs in zip(ours[0][2:], theirs[0][2:]):
        for xs, ys in zip(e_ours[1:], e_theirs[1:]):
            assert [x is None for x in xs] == [y is None for y in ys]
            for x, y in zip(xs, ys):
                if x is not None:
                    numpy.testing.assert_allclose(x, y, rtol=1e-12)
    for x, y in zip(ours[1:], theirs[1:]):
        numpy.testing.assert_allclose(x, y, rtol=1e-12)


def test_linear_full_backward_hook_matches_torch():
    torch = pytest.importorskip("torch")
    lin = em.nn.Linear(3, 2)
    tlin = torch.nn.Linear(3, 2).double()
    lin.double()
    with torch.no_grad():
        tlin.weight.copy_(torch.tensor(lin.weight.numpy()))
        tlin.bias.copy_(torch.tensor(lin.bias.numpy()))
    got = {}

    def record(key):
        def hook(m, gi, go):
            got[key] = (gi[0].detach().numpy(), go[0].detach().numpy())

        return hook

    lin.register_full_backward_hook(record("em"))
    tlin.register_full_backward_hook(record("t"))
    x = em.tensor(A, dtype=em.float64, requires_grad=True)
    tx = torch.tensor(A, requires_grad=True)
    (lin(x) ** 2).sum().backward()
    (tlin(tx) ** 2).sum().backward()
    numpy.testing.assert_allclose(got["em"][0], got["t"][0], rtol=1e-12)
    numpy.testing.assert_allclose(got["em"][1], got["t"][1], rtol=1e-12)


def test_backward_hook_without_input_grad_fires_at_outputs():
    lin = em.nn.Linear(3, 2)
    seen = []
    lin.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go[0].shape)))
    lin(em.tensor(A.astype("float32"))).sum().backward()
    assert seen == [((None,), (2, 2))]
    assert lin.weight.grad is not None


def test_forward_hooks_with_kwargs_prepend_and_remove():
    class Scale(em.nn.Module):
        def forward(self, x, factor=1.0):
            return x * factor

    m = Scale()
    order = []
    h1 = m.register_forward_hook(lambda mod, args, out: order.append("a"))
    m.register_forward_hook(lambda mod, args, out: order.append("b"), prepend=True)
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"factor": 3.0}), with_kwargs=True)
    m.register_forward_hook(lambda mod, args, kwargs, out: out + kwargs["factor"], with_kwargs=True)
    y = m(em.tensor([1.0, 2.0]), factor=2.0)
    numpy.testing.assert_allclose(y.numpy(), [6.0, 9.0])
    assert order == ["b", "a"]
    h1.remove()
    m(em.tensor([1.0]))
    assert order == ["b", "a", "b"]


def test_module_hooks_do_not_keep_graphs_alive():
    lin = em.nn.Linear(3, 2)
    lin.register_full_backward_hook(lambda m, gi, go: None)
    lin.register_forward_hook(lambda m, a, o: None)
    x = em.tensor(A.astype("float32"), requires_grad=True)
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        y = lin(x).sum()
        node = weakref.ref(y.grad_fn)
        y.backward()
        del y
        assert node() is None
        y = lin(x).sum()
        node = weakref.ref(y.grad_fn)
        del y  # never backwarded
        assert node() is None
    finally:
        if was:
            gc.enable()


def test_bad_backward_hook_result_is_reported():
    lin = em.nn.Linear(3, 2)
    lin.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="expected 1 grad_input"):
        lin(em.tensor(A.astype("float32"), requires_grad=True)).sum().backward()
