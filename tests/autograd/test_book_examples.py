"""The worked examples of *Deep Learning from Scratch* ch. 5, rebuilt on the autograd engine.

The book back-propagates by hand through add and multiply nodes; the engine
must reproduce its numbers exactly (float64, so to 1e-9).
"""

from __future__ import annotations

import numpy
import pytest

import ember as em


def leaf(value: float) -> em.Tensor:
    return em.tensor(value, dtype=em.float64, requires_grad=True)


def test_apple_graph():
    # Fig. 5-16: 2 apples at 100 yen with 10% consumption tax.
    apple, apple_num, tax = leaf(100.0), leaf(2.0), leaf(1.1)
    apple_price = apple * apple_num  # multiply node
    price = apple_price * tax  # multiply node
    price.backward()
    assert price.item() == pytest.approx(220.0, abs=1e-9)
    assert apple.grad.item() == pytest.approx(2.2, abs=1e-9)
    assert apple_num.grad.item() == pytest.approx(110.0, abs=1e-9)
    assert tax.grad.item() == pytest.approx(200.0, abs=1e-9)


def test_apple_orange_graph():
    # Fig. 5-17: 2 apples at 100 and 3 oranges at 150, taxed 10%; add and multiply nodes.
    apple, apple_num = leaf(100.0), leaf(2.0)
    orange, orange_num = leaf(150.0), leaf(3.0)
    tax = leaf(1.1)
    apple_price = apple * apple_num
    orange_price = orange * orange_num
    all_price = apple_price + orange_price  # add node
    price = all_price * tax
    price.backward()
    assert price.item() == pytest.approx(715.0, abs=1e-9)
    expected = {"apple": 2.2, "apple_num": 110.0, "orange": 3.3, "orange_num": 165.0, "tax": 650.0}
    got = {
        "apple": apple.grad.item(), "apple_num": apple_num.grad.item(),
        "orange": orange.grad.item(), "orange_num": orange_num.grad.item(), "tax": tax.grad.item(),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    # Gradients of 0-d leaves are 0-d float64 tensors, like the leaves.
    assert apple.grad.shape == () and apple.grad.dtype == em.float64


def test_apple_orange_gradients_match_the_book_layer_by_layer():
    # The book's MulLayer/AddLayer backward, step by step, against autograd's intermediate grads.
    apple, apple_num, orange, orange_num, tax = 100.0, 2.0, 150.0, 3.0, 1.1
    dprice = 1.0
    dall_price, dtax = dprice * tax, dprice * (apple * apple_num + orange * orange_num)
    dapple_price, dorange_price = dall_price, dall_price
    ta, tan, to, ton, tt = leaf(apple), leaf(apple_num), leaf(orange), leaf(orange_num), leaf(tax)
    ap, op = ta * tan, to * ton
    price = (ap + op) * tt
    g_ap, g_op, g_tax = em.autograd.grad(price, [ap, op, tt])
    assert g_ap.item() == pytest.approx(dapple_price, abs=1e-12)
    assert g_op.item() == pytest.approx(dorange_price, abs=1e-12)
    assert g_tax.item() == pytest.approx(dtax, abs=1e-9)


@pytest.mark.parametrize("x0", [-6.0, -2.5, -0.3, 0.0, 0.7, 3.0, 8.0])
def test_sigmoid_derivative_is_y_one_minus_y(x0):
    # Sec. 5.5.2: the sigmoid layer's backward is dout * y * (1 - y).
    x = leaf(x0)
    y = x.sigmoid()
    y.backward()
    yv = 1.0 / (1.0 + numpy.exp(-x0))
    assert y.item() == pytest.approx(yv, rel=1e-12)
    assert x.grad.item() == pytest.approx(yv * (1.0 - yv), rel=1e-10)


def test_sigmoid_built_from_primitives_matches_sigmoid_op():
    # The book's computational graph for sigmoid: exp, add, reciprocal (division) nodes.
    xs = numpy.linspace(-4.0, 4.0, 9)
    x1 = em.tensor(xs, dtype=em.float64, requires_grad=True)
    x2 = em.tensor(xs, dtype=em.float64, requires_grad=True)
    y1 = 1.0 / (1.0 + (-x1).exp())
    y2 = x2.sigmoid()
    y1.sum().backward()
    y2.sum().backward()
    numpy.testing.assert_allclose(y1.numpy(), y2.numpy(), rtol=1e-12)
    numpy.testing.assert_allclose(x1.grad.numpy(), x2.grad.numpy(), rtol=1e-10)


def softmax_with_loss(x: em.Tensor, labels: numpy.ndarray) -> em.Tensor:
    """Sec. 5.6.3's Softmax-with-Loss from core ops: mean cross-entropy of softmax(x)."""
    n = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)  # stability; max's gradient cancels in softmax
    e = shifted.exp()
    y = e / e.sum(axis=1, keepdims=True)
    picked = y[numpy.arange(n), labels]
    return -(picked.log()).mean()


def test_softmax_with_loss_gradient_is_y_minus_t_over_n():
    rng = numpy.random.default_rng(5)
    n, c = 6, 4
    xs = rng.normal(size=(n, c)) * 2.0
    labels = rng.integers(0, c, size=n)
    x = em.tensor(xs, dtype=em.float64, requires_grad=True)
    loss = softmax_with_loss(x, labels)
    loss.backward()

    z = xs - xs.max(axis=1, keepdims=True)
    y = numpy.exp(z) / numpy.exp(z).sum(axis=1, keepdims=True)
    t = numpy.eye(c)[labels]
    assert loss.item() == pytest.approx(-numpy.log(y[numpy.arange(n), labels]).mean(), rel=1e-12)
    numpy.testing.assert_allclose(x.grad.numpy(), (y - t) / n, rtol=1e-9, atol=1e-12)


def test_softmax_with_loss_one_hot_form():
    # The book's one-hot variant: -sum(t * log y) / N has the same (y - t) / N gradient.
    rng = numpy.random.default_rng(6)
    n, c = 5, 3
    xs = rng.normal(size=(n, c))
    t = numpy.eye(c)[rng.integers(0, c, size=n)]
    x = em.tensor(xs, dtype=em.float64, requires_grad=True)
    e = (x - x.max(axis=1, keepdims=True)).exp()
    y = e / e.sum(axis=1, keepdims=True)
    loss = -(em.tensor(t, dtype=em.float64) * y.log()).sum() / n
    loss.backward()
    yn = numpy.exp(xs - xs.max(axis=1, keepdims=True))
    yn /= yn.sum(axis=1, keepdims=True)
    numpy.testing.assert_allclose(x.grad.numpy(), (yn - t) / n, rtol=1e-9, atol=1e-12)


def test_affine_layer_gradients():
    # Sec. 5.6.2: Affine layer, dX = dY W^T, dW = X^T dY, db = sum over the batch of dY.
    rng = numpy.random.default_rng(7)
    xs, ws, bs, dy = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=(2,)), rng.normal(size=(4, 2))
    x, w, b = (em.tensor(a, dtype=em.float64, requires_grad=True) for a in (xs, ws, bs))
    y = x @ w + b
    y.backward(em.tensor(dy, dtype=em.float64))
    numpy.testing.assert_allclose(x.grad.numpy(), dy @ ws.T, rtol=1e-12)
    numpy.testing.assert_allclose(w.grad.numpy(), xs.T @ dy, rtol=1e-12)
    numpy.testing.assert_allclose(b.grad.numpy(), dy.sum(axis=0), rtol=1e-12)


def test_relu_layer_mask():
    # Sec. 5.5.1: ReLU passes dout where x > 0 and blocks it elsewhere.
    xs = numpy.array([[1.0, -0.5], [-2.0, 3.0]])
    x = em.tensor(xs, dtype=em.float64, requires_grad=True)
    dout = numpy.array([[10.0, 20.0], [30.0, 40.0]])
    x.relu().backward(em.tensor(dout, dtype=em.float64))
    numpy.testing.assert_array_equal(x.grad.numpy(), numpy.where(xs > 0, dout, 0.0))
