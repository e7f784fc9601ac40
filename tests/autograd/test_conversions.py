"""PyTorch's conversion shorthands: ``int``/``long``/``short``/``byte``/``bool`` and ``contiguous``."""

from __future__ import annotations

import numpy
import pytest

import ember as em

A = numpy.array([[1.5, -2.7], [0.0, 300.2]])


@pytest.mark.parametrize("method, dtype", [("int", em.int32), ("long", em.int64), ("short", em.int16),
                                           ("bool", em.bool_), ("float", em.float32), ("double", em.float64)])
def test_dtype_shorthands_match_torch(method, dtype):
    torch = pytest.importorskip("torch")
    x = em.tensor(A, requires_grad=True)
    y = getattr(x, method)()
    want = getattr(torch.tensor(A), method)()
    assert y.dtype == dtype and str(want.dtype) == f"torch.{dtype}"
    numpy.testing.assert_array_equal(y.numpy(), want.numpy())
    assert y.requires_grad == (dtype.kind == "f")  # integer and bool results carry no gradient


def test_byte_is_uint8():
    assert em.tensor([[1, 2]]).byte().dtype == em.uint8
    assert em.tensor([3.7]).byte().tolist() == [3]


def test_contiguous_returns_self_or_a_differentiable_copy():
    x = em.tensor(A, dtype=em.float64, requires_grad=True)
    assert x.is_contiguous() and x.contiguous() is x
    t = x.T
    assert not t.is_contiguous()
    c = t.contiguous()
    assert c.is_contiguous() and c.data.flags.c_contiguous
    numpy.testing.assert_array_equal(c.numpy(), A.T)
    assert em.autograd.gradcheck(lambda v: v.T.contiguous() * 2.0, [x])
    (c * em.tensor(A.T, dtype=em.float64)).sum().backward()
    numpy.testing.assert_array_equal(x.grad.numpy(), A)
