"""The backward engine: graph shapes, ordering, accumulation, retain_graph and its checks.

Grad modes are tested in test_grad_mode.py, in-place edits and the version
counter in test_inplace.py, higher-order gradients (``create_graph``,
``autograd.grad``) in test_higher_order.py.
"""

from __future__ import annotations

import math

import numpy
import pytest

import ember as em
from ember.errors import DTypeError, GraphError, ShapeError


def f64(values, requires_grad: bool = True) -> em.Tensor:
    return em.tensor(values, dtype=em.float64, requires_grad=requires_grad)


# ----------------------------------------------------------------- graph shapes
def test_diamond_reused_non_leaf():
    xs = numpy.array([-1.5, 0.5, 2.0])
    x = f64(xs)
    y = x * x  # used twice below: its gradient must be complete before its node runs
    z = y + y * y  # z = x^2 + x^4
    z.sum().backward()
    numpy.testing.assert_allclose(z.numpy(), xs**2 + xs**4, rtol=1e-14)
    numpy.testing.assert_allclose(x.grad.numpy(), 2 * xs + 4 * xs**3, rtol=1e-13)


def test_diamond_with_paths_of_unequal_length():
    # a feeds a long path and a short one into c; the heap must wait for both.
    x = f64(0.3)
    a = x * 2.0
    b = a.exp().tanh().exp()
    c = a + b
    c.backward()
    av = 0.6
    t = math.tanh(math.exp(av))
    db_da = math.exp(t) * (1 - t * t) * math.exp(av)
    assert x.grad.item() == pytest.approx(2.0 * (1.0 + db_da), rel=1e-13)


def test_two_diamonds_sharing_a_node():
    x = f64(0.7)
    a = x.exp()
    b, c = a * 2.0, a * 3.0
    d = b * c  # 6 e^{2x}
    e = d + a  # 6 e^{2x} + e^x
    e.backward()
    assert x.grad.item() == pytest.approx(12 * math.exp(1.4) + math.exp(0.7), rel=1e-13)


def test_reused_leaves():
    xs = numpy.array([0.5, -2.0])
    x = f64(xs)
    y = x * x * x + x * 2.0 - x  # x^3 + x
    y.sum().backward()
    numpy.testing.assert_allclose(x.grad.numpy(), 3 * xs**2 + 1, rtol=1e-14)


def test_same_leaf_as_both_operands():
    x = f64([1.5, -3.0])
    (x * x).sum().backward()
    numpy.testing.assert_allclose(x.grad.numpy(), [3.0, -6.0], rtol=1e-15)


def test_in_graph_constants_get_no_gradient():
    x = f64([1.0, 2.0])
    c = em.tensor([3.0, 4.0], dtype=em.float64)  # does not require grad
    y = (x * c + c) * 2.0 + numpy.array([1.0, 1.0])
    y.sum().backward()
    numpy.testing.assert_allclose(x.grad.numpy(), [6.0, 8.0])
    assert c.grad is None and not c.requires_grad
    assert y.requires_grad and y.grad_fn is not None


def test_graph_with_no_grad_branch():
    x = f64(2.0)
    with em.no_grad():
        k = x * 5.0  # a constant for the graph below
    y = x * k
    y.backward()
    assert k.grad_fn is None and not k.requires_grad
    assert x.grad.item() == 10.0  # not 20: k is not differentiated


def test_deep_chain_has_no_recursion_limit():
    x = f64([1.0])
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**10_000, rel=1e-9)
    del y  # tearing down a 10k-deep graph must not overflow the C stack either


def test_deep_chain_of_mixed_ops():
    x = f64(0.2)
    y = x
    for _ in range(2_500):
        y = (y.tanh() + 0.2) * 0.9
    y.backward()
    # Same recursion with numpy, derivative by the chain rule.
    v, d = 0.2, 1.0
    for _ in range(2_500):
        t = math.tanh(v)
        d *= (1 - t * t) * 0.9
        v = (t + 0.2) * 0.9
    assert y.item() == pytest.approx(v, rel=1e-12)
    assert x.grad.item() == pytest.approx(d, rel=1e-9)


def test_broadcast_gradients_are_reduced_to_input_shapes():
    a = f64(numpy.ones((2, 3, 4)))
    b = f64(numpy.ones((3, 1)))
    c = f64(numpy.ones(()))
    ((a + b) * c).sum().backward()
    assert a.grad.shape == (2, 3, 4) and b.grad.shape == (3, 1) and c.grad.shape == ()
    numpy.testing.assert_array_equal(b.grad.numpy(), numpy.full((3, 1), 8.0))
    assert c.grad.item() == 48.0


# ---------------------------------------------------------- accumulation, retain
def test_grads_accumulate_across_backward_calls_until_zeroed():
    x = f64([1.0, -2.0])
    for k in range(1, 4):
        (x * x).sum().backward()
        numpy.testing.assert_allclose(x.grad.numpy(), k * 2 * numpy.array([1.0, -2.0]))
    x.grad = None
    (x * 3.0).sum().backward()
    numpy.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_leaf_grad_is_not_aliased_between_backward_calls():
    x = f64([1.0])
    (x * 2.0).backward()
    first = x.grad
    (x * 2.0).backward()
    assert first.item() == 2.0 and x.grad.item() == 4.0


def test_retain_graph_allows_second_backward():
    x = f64([0.5, 1.5])
    y = (x * x).exp().sum()
    y.backward(retain_graph=True)
    g1 = x.grad.numpy().copy()
    y.backward()
    numpy.testing.assert_allclose(x.grad.numpy(), 2 * g1, rtol=1e-15)
    numpy.testing.assert_allclose(g1, 2 * x.numpy() * numpy.exp(x.numpy() ** 2), rtol=1e-14)


def test_second_backward_without_retain_graph_raises():
    x = f64([0.5, 1.5])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(GraphError, match=r"Mul.*retain_graph"):
        y.backward()


def test_second_backward_through_an_intermediate_raises():
    x = f64(2.0)
    h = x.exp()
    (h * 2.0).backward()
    with pytest.raises(GraphError, match=r"Exp.*retain_graph=True"):
        (h * 3.0).backward()


# ------------------------------------------------------------------------ errors
def test_backward_non_scalar_without_grad_raises():
    x = f64([1.0, 2.0])
    with pytest.raises(GraphError, match=r"backward.*one-element.*\(2,\)"):
        (x * 2.0).backward()


def test_backward_with_explicit_grad_on_non_scalar():
    x = f64([1.0, 2.0])
    (x * 2.0).backward(em.tensor([10.0, 100.0], dtype=em.float64))
    numpy.testing.assert_allclose(x.grad.numpy(), [20.0, 200.0])
    with pytest.raises(GraphError, match=r"expected grad of shape \(2,\), got \(3,\)"):
        (x * 2.0).backward(em.tensor([1.0, 2.0, 3.0], dtype=em.float64))
    with pytest.raises(DTypeError, match="float64.*float32"):
        (x * 2.0).backward(em.tensor([1.0, 2.0], dtype=em.float32))


def test_backward_on_tensor_not_requiring_grad_raises():
    with pytest.raises(GraphError, match=r"does not require grad"):
        em.tensor([1.0]).backward()
    with pytest.raises(GraphError, match=r"does not require grad"):
        (em.tensor([1.0]) * 2.0).backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(DTypeError, match="int64"):
        em.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(DTypeError, match="floating"):
        em.arange(3).requires_grad_()
    with pytest.raises(DTypeError, match="bool"):
        em.tensor([True], requires_grad=True)


def test_integer_results_of_float_graph_carry_no_grad():
    x = f64([1.5, 2.5])
    idx = x.argmax()
    assert idx.dtype == em.int64 and not idx.requires_grad


class _BadShape(em.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2.0

    @staticmethod
    def backward(ctx, gy):
        return ctx.xp.sum(gy, axis=0)  # wrong: drops an axis that was not broadcast


class _BadDtype(em.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2.0

    @staticmethod
    def backward(ctx, gy):
        return gy.astype("float32")


def test_engine_checks_gradient_shape_and_names_the_op():
    x = f64(numpy.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"_BadShape\.backward.*\(2, 3\).*\(3,\)"):
        _BadShape.apply(x).sum().backward()


def test_engine_checks_gradient_dtype_and_names_the_op():
    x = f64(numpy.ones((2, 3)))
    with pytest.raises(GraphError, match=r"_BadDtype\.backward.*float64.*float32"):
        _BadDtype.apply(x).sum().backward()


class _TwoOutputs(em.autograd.Function):
    """(2x, x^2): a multi-output node."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 2.0, x * x

    @staticmethod
    def backward(ctx, g1, g2):
        (x,) = ctx.saved_tensors
        return g1 * 2.0 + g2 * 2.0 * x


def test_multi_output_function_backward():
    xs = numpy.array([0.5, -1.0])
    x = f64(xs)
    a, b = _TwoOutputs.apply(x)
    (a * 3.0 + b).sum().backward()
    numpy.testing.assert_allclose(x.grad.numpy(), 6.0 + 2 * xs)


def test_multi_output_function_with_one_output_unused():
    x = f64([0.5, -1.0])
    _, b = _TwoOutputs.apply(x)
    b.sum().backward()  # the first output's gradient is filled with zeros
    numpy.testing.assert_allclose(x.grad.numpy(), [1.0, -2.0])
