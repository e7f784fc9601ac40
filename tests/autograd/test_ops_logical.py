"""Predicates and bit logic (isnan ... isclose, nonzero, & | ^ ~, logical_*): PyTorch parity and errors."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.errors import DTypeError, ShapeError

torch = pytest.importorskip("torch")

SPECIAL = numpy.array([[1.0, float("nan"), float("inf")], [-float("inf"), 0.0, -2.5]])


def _same(ours, theirs):
    assert isinstance(ours, em.Tensor) and not ours.requires_grad
    expected = theirs.numpy()
    assert ours.numpy().dtype == expected.dtype, (ours.dtype, expected.dtype)
    numpy.testing.assert_array_equal(ours.numpy(), expected)


@pytest.mark.parametrize("name", ["isnan", "isinf", "isfinite"])
def test_float_predicates_match_torch(name):
    x = em.tensor(SPECIAL, requires_grad=True)
    _same(getattr(em, name)(x), getattr(torch, name)(torch.tensor(SPECIAL)))
    _same(getattr(x, name)(), getattr(torch, name)(torch.tensor(SPECIAL)))
    _same(getattr(em, name)(em.tensor([1, 2])), getattr(torch, name)(torch.tensor([1, 2])))


@pytest.mark.parametrize("kwargs", [{}, {"rtol": 0.1}, {"atol": 0.5}, {"equal_nan": True}])
def test_isclose_matches_torch(kwargs):
    a = numpy.array([1.0, 1.05, float("nan"), 2.0, float("inf")])
    b = numpy.array([[1.0 + 1e-9, 1.0, float("nan"), 2.4, float("inf")]])
    _same(em.isclose(em.tensor(a), em.tensor(b), **kwargs), torch.isclose(torch.tensor(a), torch.tensor(b), **kwargs))
    assert em.allclose(em.tensor(a[:2]), em.tensor(a[:2])) is True


@pytest.mark.parametrize("shape", [(3, 4), (5,), (2, 3, 2), ()], ids=str)
def test_nonzero_matches_torch(shape):
    x = numpy.random.default_rng(3).integers(-1, 2, shape).astype(numpy.float32)
    _same(em.nonzero(em.tensor(x)), torch.nonzero(torch.tensor(x)))
    ours, theirs = em.tensor(x).nonzero(as_tuple=True), torch.tensor(x).nonzero(as_tuple=True)
    assert isinstance(ours, tuple) and len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        _same(o, t)


def test_nonzero_indexes_back_the_nonzero_values():
    x = em.tensor([[0.0, 2.0], [3.0, 0.0]])
    assert x[em.nonzero(x, as_tuple=True)].tolist() == [2.0, 3.0]


BOOLS = (numpy.array([True, False, True, False]), numpy.array([True, True, False, False]))
INTS = (numpy.array([[12, -3, 7, 0]]), numpy.array([[10], [-1]]))


@pytest.mark.parametrize("op", ["and", "or", "xor"])
@pytest.mark.parametrize("data", [BOOLS, INTS], ids=["bool", "int broadcast"])
def test_bitwise_operators_match_torch(op, data):
    a, b = data
    ours = getattr(em, f"bitwise_{op}")(em.tensor(a), em.tensor(b))
    _same(ours, getattr(torch, f"bitwise_{op}")(torch.tensor(a), torch.tensor(b)))
    dunder = f"__{op}__"
    _same(getattr(em.tensor(a), dunder)(em.tensor(b)), getattr(torch.tensor(a), dunder)(torch.tensor(b)))
    scalar = True if a.dtype == bool else 6
    _same(getattr(em.tensor(a), dunder)(scalar), getattr(torch.tensor(a), dunder)(scalar))
    _same(getattr(em.tensor(a), f"__r{op}__")(scalar), getattr(torch.tensor(a), f"__r{op}__")(scalar))


def test_invert_matches_torch():
    for a in (BOOLS[0], INTS[0]):
        _same(~em.tensor(a), ~torch.tensor(a))
        _same(em.bitwise_not(em.tensor(a)), torch.bitwise_not(torch.tensor(a)))


def test_mask_logic_with_operators():
    x = em.tensor([-2.0, -0.5, 0.5, 2.0])
    assert ((x > -1) & (x < 1)).tolist() == [False, True, True, False]
    assert ((x < -1) | (x > 1)).tolist() == [True, False, False, True]
    assert (~(x > 0)).tolist() == [True, True, False, False]


@pytest.mark.parametrize("op", ["and", "or", "xor"])
def test_logical_ops_match_torch_on_any_dtype(op):
    a, b = numpy.array([0.0, 1.5, -2.0, 0.0]), numpy.array([3, 0, 1, 0])
    _same(getattr(em, f"logical_{op}")(em.tensor(a), em.tensor(b)),
          getattr(torch, f"logical_{op}")(torch.tensor(a), torch.tensor(b)))
    _same(getattr(em.tensor(a), f"logical_{op}")(em.tensor(b)),
          getattr(torch.tensor(a), f"logical_{op}")(torch.tensor(b)))
    _same(em.logical_not(em.tensor(a)), torch.logical_not(torch.tensor(a)))


def test_bitwise_ops_refuse_floats_naming_the_op():
    with pytest.raises(DTypeError, match=r"bitwise_and: expected bool or integer operands, got float32"):
        em.ones(2) & em.ones(2)
    with pytest.raises(DTypeError, match=r"bitwise_or: expected bool or integer operands, got float"):
        em.tensor([True]) | 1.5
    with pytest.raises(DTypeError, match=r"bitwise_not: .*float32"):
        ~em.ones(2)


def test_bad_inputs_name_the_op_and_shapes():
    with pytest.raises(ShapeError, match=r"bitwise_xor: .*\(3,\) and \(2,\)"):
        em.tensor([1, 2, 3]) ^ em.tensor([1, 2])
    with pytest.raises(ShapeError, match=r"isclose: .*\(3,\) and \(2,\)"):
        em.isclose(em.ones(3), em.ones(2))
    with pytest.raises(ValueError, match=r"isclose: expected non-negative rtol"):
        em.isclose(em.ones(3), em.ones(3), rtol=-1)
    with pytest.raises(TypeError, match=r"isnan: expected a Tensor"):
        em.isnan([1.0])
    assert em.tensor([1, 2]).__and__("x") is NotImplemented
