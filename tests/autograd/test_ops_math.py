"""Elementwise math, rounding, maximum/minimum, lerp, % and //: PyTorch parity, edge cases, errors.

Gradchecks of first and second order run for every sample in the registry
test; here: values and gradients against torch, dtype rules, ties, bad input.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.errors import DTypeError, ShapeError

torch = pytest.importorskip("torch")

from op_parity import compare  # noqa: E402  (needs torch)

R = numpy.random.default_rng(16)
SHAPES = [(3, 4), (2, 1, 3), ()]


def _u(low, high, shape):
    return numpy.asarray(R.uniform(low, high, shape))


SMOOTH = {  # name -> (domain, torch function)
    "sin": ((-4, 4), torch.sin), "cos": ((-4, 4), torch.cos), "erf": ((-2.5, 2.5), torch.erf),
    "log2": ((0.1, 4), torch.log2), "log10": ((0.1, 4), torch.log10), "exp2": ((-3, 3), torch.exp2),
    "rsqrt": ((0.1, 4), torch.rsqrt),
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_smooth_unary_matches_torch(name, shape):
    (low, high), fn = SMOOTH[name]
    x = _u(low, high, shape)
    compare(lambda t: getattr(em, name)(t), fn, [x])
    compare(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x])


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_smooth_unary_promotes_integers_to_float32(name):
    ints = em.tensor([1, 2, 3])
    out = getattr(em, name)(ints)
    expected = getattr(torch, name)(torch.tensor([1, 2, 3]))
    assert out.dtype == em.float32 and expected.dtype == torch.float32
    numpy.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6)


def test_sin_cos_second_derivative_is_minus_the_function():
    x = em.tensor([0.3, -1.2, 2.0], dtype=em.float64, requires_grad=True)
    (g,) = em.autograd.grad(em.sin(x).sum(), [x], create_graph=True)
    (gg,) = em.autograd.grad(g.sum(), [x])
    numpy.testing.assert_allclose(gg.numpy(), -numpy.sin(x.numpy()), rtol=1e-12)
    (g,) = em.autograd.grad(em.cos(x).sum(), [x], create_graph=True)
    (gg,) = em.autograd.grad(g.sum(), [x])
    numpy.testing.assert_allclose(gg.numpy(), -numpy.cos(x.numpy()), rtol=1e-12)


STEP = ["floor", "ceil", "trunc", "round", "sign"]


@pytest.mark.parametrize("name", STEP)
def test_step_functions_match_torch_with_zero_gradient(name):
    x = numpy.array([[-2.5, -1.5, -0.5, 0.0, 0.5], [1.5, 2.5, -0.7, 3.2, -3.7]])
    compare(lambda t: getattr(em, name)(t), lambda t: getattr(torch, name)(t), [x])
    t = em.tensor(x, requires_grad=True)
    getattr(t, name)().sum().backward()
    assert t.grad is not None and not t.grad.numpy().any()


def test_round_decimals_and_halves_to_even():
    x = numpy.array([0.125, 1.005, -2.675, 12.5, 13.5, -0.5])
    for d in (0, 1, 2, -1):
        compare(lambda t: em.round(t, decimals=d), lambda t: torch.round(t, decimals=d), [x], rtol=1e-12)


@pytest.mark.parametrize("name", STEP)
def test_step_functions_keep_integer_tensors(name):
    ints = numpy.array([-3, 0, 4])
    ours, theirs = getattr(em, name)(em.tensor(ints)), getattr(torch, name)(torch.tensor(ints))
    assert ours.dtype == em.int64 and theirs.dtype == torch.int64
    numpy.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_sign_of_bool_and_nan():
    b = em.tensor([True, False])
    assert em.sign(b).dtype == em.bool_ and em.sign(b).tolist() == [True, False]
    out = em.sign(em.tensor([float("nan"), -0.0, 2.0])).numpy()
    assert numpy.isnan(out[0]) and out[1] == 0 and out[2] == 1


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4)), ((), (2, 3))], ids=str)
def test_maximum_minimum_match_torch(name, shapes):
    a, b = _u(-2, 2, shapes[0]), _u(-2, 2, shapes[1])
    compare(lambda x, y: getattr(em, name)(x, y), lambda x, y: getattr(torch, name)(x, y), [a, b])
    compare(lambda x, y: getattr(x, name)(y), lambda x, y: getattr(x, name)(y), [a, b])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_split_the_gradient_like_torch(name):
    a = numpy.array([1.0, -0.5, 2.0, 0.0])
    b = numpy.array([1.0, 0.5, -2.0, 0.0])
    compare(lambda x, y: getattr(em, name)(x, y), lambda x, y: getattr(torch, name)(x, y), [a, b])
    # the numerical derivative at a tie is the same half: the central difference sees both sides
    x, y = (em.tensor(v, dtype=em.float64, requires_grad=True) for v in (a, b))
    assert em.autograd.gradcheck(lambda p, q: getattr(em, name)(p, q), [x, y])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_nan_values_and_gradients_match_torch(name):
    a = numpy.array([float("nan"), 1.0, float("nan"), 2.0])
    b = numpy.array([0.0, float("nan"), float("nan"), 2.0])
    compare(lambda x, y: getattr(em, name)(x, y), lambda x, y: getattr(torch, name)(x, y), [a, b])


def test_maximum_propagates_nan_and_works_on_integers():
    out = em.maximum(em.tensor([float("nan"), 1.0]), em.tensor([0.0, float("nan")])).numpy()
    assert numpy.isnan(out).all()
    got = em.maximum(em.tensor([1, 5]), em.tensor([3, 2]))
    assert got.dtype == em.int64 and got.tolist() == [3, 5]


@pytest.mark.parametrize("weight", [0.3, "tensor", "broadcast"])
def test_lerp_matches_torch(weight):
    s, e = _u(-2, 2, (3, 4)), _u(-2, 2, (3, 4))
    if weight == "tensor":
        compare(lambda a, b, w: em.lerp(a, b, w), torch.lerp, [s, e, _u(0, 1, (3, 4))])
    elif weight == "broadcast":
        compare(lambda a, b, w: a.lerp(b, w), lambda a, b, w: a.lerp(b, w), [s, _u(-2, 2, (4,)), _u(0, 1, (3, 1))])
    else:
        compare(lambda a, b: em.lerp(a, b, weight), lambda a, b: torch.lerp(a, b, weight), [s, e])


DIVISION = [
    (numpy.array([5.0, -5.0, 3.5, -3.5, 7.25]), numpy.array([3.0, 3.0, -2.0, -2.0, 0.5])),
    (_u(-6, 6, (2, 3, 4)), _u(0.5, 2, (4,)) * numpy.array([1, -1, 1, -1])),
]


@pytest.mark.parametrize("case", range(len(DIVISION)))
def test_remainder_matches_torch_sign_rules_and_gradients(case):
    a, b = DIVISION[case]
    compare(lambda x, y: x % y, lambda x, y: x % y, [a, b])
    compare(lambda x, y: em.remainder(x, y), torch.remainder, [a, b])
    compare(lambda x: x % -1.5, lambda x: x % -1.5, [a])
    compare(lambda x: 2.5 % x, lambda x: 2.5 % x, [b], grad=False)  # torch has no gradient for this form


def test_remainder_of_a_python_dividend_has_the_divisor_gradient():
    b = em.tensor(numpy.array([0.7, -1.3, 1.9]), dtype=em.float64, requires_grad=True)
    assert em.autograd.gradcheck(lambda t: 2.5 % t, [b])


@pytest.mark.parametrize("case", range(len(DIVISION)))
def test_floor_divide_matches_torch_values(case):
    a, b = DIVISION[case]
    compare(lambda x, y: x // y, lambda x, y: x // y, [a, b], grad=False)
    compare(lambda x, y: em.floor_divide(x, y), torch.floor_divide, [a, b], grad=False)
    compare(lambda x: 7.0 // x, lambda x: 7.0 // x, [b], grad=False)


def test_floor_divide_gradient_is_zero():
    a = em.tensor([5.0, -5.0], requires_grad=True)
    (a // 3.0).sum().backward()
    assert a.grad.tolist() == [0.0, 0.0]


def test_integer_remainder_and_floor_divide_follow_python():
    a, b = [5, -5, 7, -7, 0], [3, 3, -2, -2, 4]
    ours = em.tensor(a) % em.tensor(b), em.tensor(a) // em.tensor(b)
    assert ours[0].dtype == em.int64 and ours[1].dtype == em.int64
    assert ours[0].tolist() == [x % y for x, y in zip(a, b)]
    assert ours[1].tolist() == [x // y for x, y in zip(a, b)]
    assert (7 % em.tensor([3, -3])).tolist() == [1, -2]


def test_integer_tensor_with_python_float_gives_float32():
    for out in (em.tensor([5, -5]) % 2.5, em.tensor([5, -5]) // 2.5, em.maximum(em.tensor([1, 2]), 1.5)):
        assert out.dtype == em.float32


def test_integer_division_by_zero_raises_naming_the_op():
    with pytest.raises(RuntimeError, match=r"remainder: integer division by zero"):
        em.tensor([5, 1]) % em.tensor([1, 0])
    with pytest.raises(ZeroDivisionError, match=r"floor_divide"):
        em.tensor([5]) // 0


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_float_division_by_zero_gives_ieee_values_like_torch():
    a = numpy.array([1.0, -1.0, 0.0])
    b = numpy.zeros(3)
    compare(lambda x, y: x // y, lambda x, y: x // y, [a, b], grad=False)


@pytest.mark.parametrize("name", ["maximum", "minimum", "remainder", "floor_divide"])
def test_binary_bad_shapes_name_the_op_and_shapes(name):
    with pytest.raises(ShapeError, match=rf"{name}: .*\(3, 4\) and \(3,\)"):
        getattr(em, name)(em.ones(3, 4), em.ones(3))


def test_bad_inputs_name_the_op():
    with pytest.raises(DTypeError, match=r"maximum: .*float32.*float64"):
        em.maximum(em.ones(2), em.ones(2, dtype=em.float64))
    with pytest.raises(ShapeError, match=r"lerp: .*\(2, 3\) and \(4,\)"):
        em.lerp(em.ones(2, 3), em.ones(4), 0.5)
    with pytest.raises(TypeError, match=r"lerp: expected a float or a Tensor as weight"):
        em.lerp(em.ones(2), em.ones(2), "half")
    with pytest.raises(DTypeError, match=r"lerp: expected a floating input"):
        em.lerp(em.tensor([1, 2]), em.ones(2), 0.5)
    with pytest.raises(TypeError, match=r"sin: expected a Tensor, got list"):
        em.sin([1.0])
    with pytest.raises(TypeError, match=r"round: expected an int for decimals"):
        em.round(em.ones(2), decimals=1.5)
