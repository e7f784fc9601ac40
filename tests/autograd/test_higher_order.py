"""``autograd.grad`` and ``create_graph``: higher derivatives, Hessian-vector products, unused inputs."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.errors import GraphError


def f64(values, requires_grad: bool = True) -> em.Tensor:
    return em.tensor(values, dtype=em.float64, requires_grad=requires_grad)


XS = numpy.array([-1.3, -0.2, 0.4, 1.1])


def test_second_derivative_of_tanh():
    x = f64(XS)
    (g,) = em.autograd.grad(x.tanh().sum(), x, create_graph=True)
    t = numpy.tanh(XS)
    numpy.testing.assert_allclose(g.numpy(), 1 - t**2, rtol=1e-13)
    assert g.requires_grad and g.grad_fn is not None
    (h,) = em.autograd.grad(g.sum(), x)
    numpy.testing.assert_allclose(h.numpy(), -2 * t * (1 - t**2), rtol=1e-12)
    assert not h.requires_grad  # create_graph=False: a plain result


def test_third_derivative_of_tanh():
    x = f64(XS)
    (g,) = em.autograd.grad(x.tanh().sum(), x, create_graph=True)
    (h,) = em.autograd.grad(g.sum(), x, create_graph=True)
    (k,) = em.autograd.grad(h.sum(), x)
    t = numpy.tanh(XS)
    numpy.testing.assert_allclose(k.numpy(), -2 * (1 - t**2) * (1 - 3 * t**2), rtol=1e-11)


@pytest.mark.parametrize("power_form", ["pow", "mul"])
def test_derivatives_of_cube_up_to_fourth(power_form):
    x = f64(XS)
    y = x**3 if power_form == "pow" else x * x * x
    (d1,) = em.autograd.grad(y.sum(), x, create_graph=True)
    (d2,) = em.autograd.grad(d1.sum(), x, create_graph=True)
    (d3,) = em.autograd.grad(d2.sum(), x, create_graph=True)
    numpy.testing.assert_allclose(d1.numpy(), 3 * XS**2, rtol=1e-13)
    numpy.testing.assert_allclose(d2.numpy(), 6 * XS, rtol=1e-13)
    numpy.testing.assert_allclose(d3.numpy(), numpy.full(4, 6.0), rtol=1e-13)
    if d3.requires_grad:  # a constant third derivative may or may not still be wired to x
        (d4,) = em.autograd.grad(d3.sum(), x, allow_unused=True)
        assert d4 is None or numpy.array_equal(d4.numpy(), numpy.zeros(4))


def test_backward_with_create_graph_fills_a_differentiable_grad():
    x = f64(XS)
    (x**3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    numpy.testing.assert_allclose(g.numpy(), 3 * XS**2, rtol=1e-13)
    x.grad = None
    g.sum().backward()
    numpy.testing.assert_allclose(x.grad.numpy(), 6 * XS, rtol=1e-13)


def test_mixed_partial_derivatives():
    # f = x^2 y^3: d2f/dxdy = 6 x y^2
    x, y = f64(1.5), f64(-0.5)
    f = x * x * y * y * y
    gx, gy = em.autograd.grad(f, [x, y], create_graph=True)
    assert gx.item() == pytest.approx(2 * 1.5 * (-0.5) ** 3, rel=1e-14)
    assert gy.item() == pytest.approx(3 * 1.5**2 * 0.25, rel=1e-14)
    (gxy,) = em.autograd.grad(gx, y)
    assert gxy.item() == pytest.approx(6 * 1.5 * 0.25, rel=1e-14)


# ---------------------------------------------------------------- Hessian-vector
def _mlp_data(rng):
    x = rng.normal(size=(6, 3))
    t = rng.normal(size=(6, 2))
    params = [rng.normal(size=(3, 5)) * 0.7, rng.normal(size=(5,)) * 0.1, rng.normal(size=(5, 2)) * 0.7,
              rng.normal(size=(2,)) * 0.1]
    return x, t, params


def _mlp_loss(x, t, w1, b1, w2, b2):
    h = (x @ w1 + b1).tanh()
    y = h @ w2 + b2
    d = y - t
    return (d * d).mean()


def _loss_grad(x, t, arrays):
    params = [f64(a) for a in arrays]
    loss = _mlp_loss(f64(x, False), f64(t, False), *params)
    return [g.numpy() for g in em.autograd.grad(loss, params)]


def test_hessian_vector_product_of_mlp_matches_finite_differences():
    rng = numpy.random.default_rng(11)
    x, t, arrays = _mlp_data(rng)
    vs = [rng.normal(size=a.shape) for a in arrays]

    params = [f64(a) for a in arrays]
    loss = _mlp_loss(f64(x, False), f64(t, False), *params)
    grads = em.autograd.grad(loss, params, create_graph=True)
    gv = sum((g * f64(v, False)).sum() for g, v in zip(grads, vs))
    hvs = em.autograd.grad(gv, params)

    eps = 1e-5
    plus = _loss_grad(x, t, [a + eps * v for a, v in zip(arrays, vs)])
    minus = _loss_grad(x, t, [a - eps * v for a, v in zip(arrays, vs)])
    for hv, p, m in zip(hvs, plus, minus):
        fd = (p - m) / (2 * eps)
        numpy.testing.assert_allclose(hv.numpy(), fd, rtol=1e-6, atol=1e-8)
    # The HVP is not trivially zero.
    assert max(float(numpy.abs(hv.numpy()).max()) for hv in hvs) > 1e-2


def test_hessian_vector_product_is_symmetric():
    # u^T H v == v^T H u for the MLP loss Hessian.
    rng = numpy.random.default_rng(12)
    x, t, arrays = _mlp_data(rng)
    us = [rng.normal(size=a.shape) for a in arrays]
    vs = [rng.normal(size=a.shape) for a in arrays]

    def hvp(dirs):
        params = [f64(a) for a in arrays]
        loss = _mlp_loss(f64(x, False), f64(t, False), *params)
        grads = em.autograd.grad(loss, params, create_graph=True)
        gv = sum((g * f64(d, False)).sum() for g, d in zip(grads, dirs))
        return [h.numpy() for h in em.autograd.grad(gv, params)]

    uhv = sum(float((u * h).sum()) for u, h in zip(us, hvp(vs)))
    vhu = sum(float((v * h).sum()) for v, h in zip(vs, hvp(us)))
    assert uhv == pytest.approx(vhu, rel=1e-10)


# ---------------------------------------------------------------- autograd.grad
def test_grad_does_not_touch_leaf_grads():
    x = f64(XS)
    (g,) = em.autograd.grad((x * x).sum(), x)
    numpy.testing.assert_allclose(g.numpy(), 2 * XS)
    assert x.grad is None


def test_grad_of_intermediate_tensor():
    x = f64(2.0)
    h = x * 3.0
    y = h * h
    gh, gx = em.autograd.grad(y, [h, x])
    assert gh.item() == 12.0 and gx.item() == 36.0


def test_allow_unused():
    x, z = f64(XS), f64([1.0])
    y = (x * 2.0).sum()
    with pytest.raises(GraphError, match=r"input 1 \(shape \(1,\)\).*allow_unused=True"):
        em.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = em.autograd.grad(y, [x, z], allow_unused=True)
    numpy.testing.assert_allclose(gx.numpy(), numpy.full(4, 2.0))
    assert gz is None


def test_grad_of_multiple_outputs_sums_them():
    x = f64(XS)
    y1 = (x * x).sum()
    y2 = x.tanh().sum()
    (g,) = em.autograd.grad([y1, y2], x)
    numpy.testing.assert_allclose(g.numpy(), 2 * XS + 1 - numpy.tanh(XS) ** 2, rtol=1e-14)


def test_grad_outputs_weight_the_outputs():
    x = f64(XS)
    y = x * x  # non-scalar output: needs grad_outputs
    v = numpy.array([1.0, -1.0, 0.5, 2.0])
    with pytest.raises(GraphError, match="one-element"):
        em.autograd.grad(y, x, retain_graph=True)
    (g,) = em.autograd.grad(y, x, grad_outputs=f64(v, False))
    numpy.testing.assert_allclose(g.numpy(), 2 * XS * v)


def test_grad_with_multiple_outputs_and_grad_outputs():
    x = f64(XS)
    a, b = x * 2.0, x * x
    va, vb = numpy.ones(4), numpy.arange(4.0)
    (g,) = em.autograd.grad([a, b], [x], grad_outputs=[f64(va, False), f64(vb, False)])
    numpy.testing.assert_allclose(g.numpy(), 2 * va + 2 * XS * vb)


def test_grad_rejects_inputs_and_outputs_without_grad():
    x = f64(XS)
    c = f64(XS, False)
    with pytest.raises(GraphError, match="input"):
        em.autograd.grad((x * c).sum(), [c])
    with pytest.raises(GraphError, match="output"):
        em.autograd.grad(c.sum(), [x])


def test_grad_retain_graph_default_follows_create_graph():
    x = f64(XS)
    y = (x * x).sum()
    em.autograd.grad(y, x)
    with pytest.raises(GraphError, match="retain_graph"):
        em.autograd.grad(y, x)
    y2 = (x * x).sum()
    em.autograd.grad(y2, x, create_graph=True)
    (g,) = em.autograd.grad(y2, x)  # still there: create_graph retained it
    numpy.testing.assert_allclose(g.numpy(), 2 * XS)
