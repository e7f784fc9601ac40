"""In-place edits: forbidden on tensors that require grad, detected by the version counter when saved."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.errors import GraphError


def f64(values, requires_grad: bool = False) -> em.Tensor:
    return em.tensor(values, dtype=em.float64, requires_grad=requires_grad)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t.mul_(2.0), id="mul_"),
        pytest.param(lambda t: t.add_(1.0), id="add_"),
        pytest.param(lambda t: t.sub_(1.0), id="sub_"),
        pytest.param(lambda t: t.div_(2.0), id="div_"),
        pytest.param(lambda t: t.copy_(em.tensor([9.0, 9.0, 9.0], dtype=em.float64)), id="copy_"),
        pytest.param(lambda t: t.fill_(0.0), id="fill_"),
        pytest.param(lambda t: t.zero_(), id="zero_"),
        pytest.param(lambda t: t.__setitem__(0, 5.0), id="setitem"),
    ],
)
def test_modifying_a_saved_input_is_detected(edit):
    w = f64([1.0, 2.0, 3.0], requires_grad=True)
    x = f64([4.0, 5.0, 6.0])  # a no-grad input that Mul saves for w's gradient
    y = w * x
    v0 = x._version[0]
    edit(x)
    assert x._version[0] == v0 + 1
    with pytest.raises(GraphError, match=r"Mul\.backward.*\(3,\).*modified in place.*version"):
        y.sum().backward()


def test_modifying_an_unsaved_input_is_harmless():
    # Add saves nothing, so editing its input after the forward changes no gradient.
    w = f64([1.0, 2.0], requires_grad=True)
    x = f64([4.0, 5.0])
    y = w + x
    x.mul_(2.0)
    y.sum().backward()
    numpy.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_modification_before_use_is_fine():
    w = f64([1.0, 2.0], requires_grad=True)
    x = f64([4.0, 5.0])
    x[0] = 10.0
    (w * x).sum().backward()
    numpy.testing.assert_array_equal(w.grad.numpy(), [10.0, 5.0])


def test_modifying_a_saved_output_is_detected():
    w = f64([0.1, 0.2], requires_grad=True)
    y = w.exp()  # Exp saves its output
    z = y.sum()
    with em.no_grad():
        y.mul_(2.0)
    with pytest.raises(GraphError, match=r"Exp\.backward.*output 0.*modified in place"):
        z.backward()


def test_modifying_a_detached_alias_is_detected():
    # detach() shares storage and the version counter with the original.
    w = f64([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    alias = w.detach()
    assert not alias.requires_grad
    alias.add_(1.0)
    numpy.testing.assert_array_equal(w.numpy(), [2.0, 3.0])  # same storage
    with pytest.raises(GraphError, match=r"Mul\.backward.*modified in place"):
        y.backward()


def test_error_names_the_op_in_a_longer_graph():
    w = f64([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x = f64([[0.5], [0.25]])
    y = (w @ x).tanh().sum()
    x[1, 0] = 1.0
    with pytest.raises(GraphError, match=r"MatMul\.backward.*\(2, 1\)"):
        y.backward()


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t.mul_(2.0), id="mul_"),
        pytest.param(lambda t: t.add_(1.0, alpha=0.5), id="add_"),
        pytest.param(lambda t: t.copy_(em.zeros(2, dtype=em.float64)), id="copy_"),
        pytest.param(lambda t: t.fill_(1.0), id="fill_"),
        pytest.param(lambda t: t.__setitem__(1, 0.0), id="setitem"),
    ],
)
def test_inplace_on_leaf_requiring_grad_raises_in_grad_mode(edit):
    w = f64([1.0, 2.0], requires_grad=True)
    with pytest.raises(GraphError, match=r"in-place modification of a tensor that requires grad.*no_grad"):
        edit(w)
    numpy.testing.assert_array_equal(w.numpy(), [1.0, 2.0])  # untouched
    assert w._version[0] == 0


def test_inplace_on_leaf_requiring_grad_is_allowed_under_no_grad():
    w = f64([1.0, 2.0], requires_grad=True)
    with em.no_grad():
        w.mul_(3.0)
        w.add_(em.tensor([1.0, 1.0], dtype=em.float64), alpha=2.0)
        w[0] = -1.0
    numpy.testing.assert_array_equal(w.numpy(), [-1.0, 8.0])
    assert w._version[0] == 3 and w.requires_grad and w.is_leaf
    (w * w).sum().backward()  # the leaf is still usable
    numpy.testing.assert_array_equal(w.grad.numpy(), [-2.0, 16.0])


def test_optimizer_style_update_after_backward():
    # SGD-like step: backward, then update under no_grad, then a fresh forward.
    w = f64([1.0, -1.0], requires_grad=True)
    for _ in range(3):
        loss = (w * w).sum()
        loss.backward()
        with em.no_grad():
            w.sub_(w.grad * 0.25)
        w.grad = None
    numpy.testing.assert_allclose(w.numpy(), [0.125, -0.125])


def test_inplace_on_non_leaf_requiring_grad_raises():
    w = f64([1.0, 2.0], requires_grad=True)
    h = w * 2.0
    with pytest.raises(GraphError, match="in-place"):
        h.add_(1.0)


def test_inplace_keeps_dtype():
    x = em.tensor([1.0, 2.0])  # float32
    x.mul_(0.5)
    x.add_(numpy.float64(0.25))
    assert x.dtype == em.float32
    numpy.testing.assert_array_equal(x.numpy(), numpy.array([0.75, 1.25], dtype=numpy.float32))
