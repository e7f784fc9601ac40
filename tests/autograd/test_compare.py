"""Comparisons (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``) and ``any``/``all``: bool tensors, no gradient."""

from __future__ import annotations

import operator

import numpy
import pytest

import ember as em
from ember.errors import DTypeError, ShapeError

OPS = {
    "lt": operator.lt, "le": operator.le, "gt": operator.gt,
    "ge": operator.ge, "eq": operator.eq, "ne": operator.ne,
}
A = numpy.array([[1.0, -2.0, 3.0], [0.5, 0.5, -1.0]])
B = numpy.array([0.5, -2.0, 4.0])


@pytest.mark.parametrize("name", sorted(OPS))
def test_operators_match_numpy_with_broadcasting(name):
    op = OPS[name]
    a = em.tensor(A, dtype=em.float64, requires_grad=True)
    b = em.tensor(B, dtype=em.float64)
    for got, expected in [
        (op(a, b), op(A, B)),
        (op(a, 0.5), op(A, 0.5)),
        (op(0.5, a), op(0.5, A)),  # reflected: Python swaps to the mirrored comparison
        (op(a, B), op(A, B)),  # an ndarray on the right
        (op(B, a), op(B, A)),  # an ndarray on the left defers to the Tensor
        (getattr(a, name)(b), op(A, B)),  # the method form
    ]:
        assert isinstance(got, em.Tensor) and got.dtype == em.bool_
        assert not got.requires_grad and got.grad_fn is None
        numpy.testing.assert_array_equal(got.numpy(), expected)


def test_comparison_of_int_tensor_with_float():
    t = em.arange(4)
    numpy.testing.assert_array_equal((t >= 1.5).numpy(), [False, False, True, True])


def test_comparison_result_drives_where_and_masks():
    x = em.tensor([-1.0, 2.0, -3.0, 4.0], dtype=em.float64, requires_grad=True)
    y = em.where(x > 0, x * 2.0, 0.0)
    y.sum().backward()
    numpy.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 0.0, 2.0])
    numpy.testing.assert_array_equal(x[x < 0].numpy(), [-1.0, -3.0])


def test_comparison_errors():
    with pytest.raises(ShapeError, match=r"^gt: .*\(2, 3\) and \(2,\)"):
        em.ones(2, 3) > em.ones(2)
    with pytest.raises(DTypeError, match=r"^eq: .*float32.*float64"):
        em.ones(2) == em.ones(2, dtype=em.float64)  # noqa: B015
    with pytest.raises(TypeError, match="not supported"):
        em.ones(2) < "a"  # noqa: B015


def test_equality_with_unrelated_objects_falls_back_to_identity():
    t = em.ones(2)
    assert (t == None) is False  # noqa: E711
    assert (t != "text") is True
    assert {t: 1}[t] == 1  # still hashable by identity


def test_any_all():
    m = em.tensor([[True, False], [True, True]])
    assert m.any().item() is True and m.all().item() is False
    numpy.testing.assert_array_equal(m.all(axis=1).numpy(), [False, True])
    numpy.testing.assert_array_equal(m.any(axis=0, keepdims=True).numpy(), [[True, True]])
    x = em.tensor([0.0, 1.5])
    assert bool((x >= 0).all()) and not bool((x > 0).all())
    with pytest.raises(ShapeError, match="any: axis 2"):
        m.any(axis=2)
