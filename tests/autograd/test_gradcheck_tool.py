"""The checker itself: gradcheck and gradgradcheck must fail on wrong derivatives."""

from __future__ import annotations

import pytest

import ember as em
from ember.autograd import GradcheckError


class WrongFirst(em.autograd.Function):
    """x**2 with a backward off by a factor (2.1 x instead of 2 x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * 2.1 * x


class ConstantDerivative(em.autograd.Function):
    """x**3 whose saved derivative is a constant: first order right, second order zero (wrong)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(3 * x ** 2)
        return x ** 3

    @staticmethod
    def backward(ctx, gy):
        (d,) = ctx.saved_tensors
        return gy * d


def _x():
    return em.tensor([0.5, -1.25, 2.0], dtype=em.float64, requires_grad=True)


def test_gradcheck_reports_worst_element():
    with pytest.raises(GradcheckError, match=r"input 0 at index \(2,\): analytic 4\.2, numeric 4"):
        em.autograd.gradcheck(WrongFirst.apply, [_x()])


def test_gradgradcheck_catches_wrong_second_order():
    assert em.autograd.gradcheck(ConstantDerivative.apply, [_x()])
    with pytest.raises(GradcheckError, match="analytic 0, numeric"):
        em.autograd.gradgradcheck(ConstantDerivative.apply, [_x()])


def test_gradgradcheck_passes_for_user_function_written_against_ctx():
    class Cube(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, gy):
            (x,) = ctx.saved_tensors
            return gy * 3 * x ** 2

    assert em.autograd.gradgradcheck(Cube.apply, [_x()])


def test_gradcheck_rejects_float32_and_no_grad_inputs():
    with pytest.raises(TypeError, match="float64"):
        em.autograd.gradcheck(lambda t: t * 2, [em.ones(3, requires_grad=True)])
    with pytest.raises(ValueError, match="no input requires grad"):
        em.autograd.gradcheck(lambda t: t * 2, [em.ones(3, dtype=em.float64)])


# ------------------------------------------------ many inputs, many outputs
def _scaled_backward(scale_a: float = 1.0, scale_b: float = 1.0, scale_c: float = 1.0) -> type:
    """f(a, b, c) = a * b + c**2 whose backward scales each input's gradient by a factor."""

    class ThreeInputs(em.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, c):
            ctx.save_for_backward(a, b, c)
            return a * b + c * c

        @staticmethod
        def backward(ctx, gy):
            a, b, c = ctx.saved_tensors
            return gy * b * scale_a, gy * a * scale_b, gy * 2.0 * c * scale_c

    return ThreeInputs


def _three():
    return [
        em.tensor([0.5, -1.25, 2.0], dtype=em.float64, requires_grad=True),
        em.tensor([1.5, 0.75, -0.5], dtype=em.float64, requires_grad=True),
        em.tensor([-0.3, 0.9, 1.7], dtype=em.float64, requires_grad=True),
    ]


def test_multi_input_function_with_right_gradients_passes():
    assert em.autograd.gradcheck(_scaled_backward().apply, _three())


@pytest.mark.parametrize("wrong", [0, 1, 2])
def test_exactly_one_wrong_input_gradient_fails_and_is_named(wrong):
    scales = [1.0, 1.0, 1.0]
    scales[wrong] = 1.01  # 1e-2 relative: must fail in float64 with the default tolerances
    fn = _scaled_backward(*scales).apply
    with pytest.raises(GradcheckError, match=rf"w\.r\.t\. input {wrong} "):
        em.autograd.gradcheck(fn, _three())
    assert em.autograd.gradcheck(fn, _three(), raise_exception=False) is False


def _three_outputs(scale_first: float = 1.0, scale_second: float = 1.0, scale_third: float = 1.0) -> type:
    """(a * b, a + b**2, exp(a)) with each output's backward contribution scaled."""

    class ThreeOutputs(em.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b, a + b * b, ctx.xp.exp(a)

        @staticmethod
        def backward(ctx, g1, g2, g3):
            a, b = ctx.saved_tensors
            ga = g1 * b * scale_first + g2 * scale_second + g3 * ctx.xp.exp(a) * scale_third
            gb = g1 * a * scale_first + g2 * 2.0 * b * scale_second
            return ga, gb

    return ThreeOutputs


def test_multi_output_function_with_right_gradients_passes():
    assert em.autograd.gradcheck(_three_outputs().apply, _three()[:2])


@pytest.mark.parametrize("wrong", [0, 1, 2])
def test_exactly_one_wrong_output_gradient_fails_and_is_named(wrong):
    scales = [1.0, 1.0, 1.0]
    scales[wrong] = 1.01
    with pytest.raises(GradcheckError, match=rf"for output {wrong} "):
        em.autograd.gradcheck(_three_outputs(*scales).apply, _three()[:2])


def test_wrong_gradient_of_the_last_output_fails_when_it_is_returned_as_a_list():
    def fn(a, b):
        return [a * b, _scaled_backward(scale_c=1.01).apply(a, b, b)]

    with pytest.raises(GradcheckError, match="for output 1 .* w.r.t. input 1 "):
        em.autograd.gradcheck(fn, _three()[:2])


def test_relative_error_of_one_in_ten_thousand_fails_by_default():
    fn = _scaled_backward(scale_b=1.0 + 1e-4).apply
    with pytest.raises(GradcheckError, match="input 1"):
        em.autograd.gradcheck(fn, _three())
    assert em.autograd.gradcheck(fn, _three(), rtol=1e-3)  # only the loose tolerance lets it through


def test_gradgradcheck_catches_a_wrong_second_derivative_in_the_second_input():
    class MixedSecond(em.autograd.Function):
        """f(a, b) = a * b**2; the first derivative w.r.t. b is built from a constant copy of b."""

        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b, 2.0 * b)
            return a * b * b

        @staticmethod
        def backward(ctx, gy):
            a, b, two_b = ctx.saved_tensors
            return gy * b * b, gy * a * two_b

    a, b = _three()[:2]
    assert em.autograd.gradcheck(MixedSecond.apply, [a, b])
    with pytest.raises(GradcheckError, match="input 1"):
        em.autograd.gradgradcheck(MixedSecond.apply, [a, b])


# ------------------------------------------ inputs that are not differentiated
def test_non_differentiable_inputs_are_passed_through_and_not_checked():
    x = em.tensor([0.5, -1.0, 2.0], dtype=em.float64, requires_grad=True)
    frozen = em.tensor([3.0, 4.0, 5.0], dtype=em.float32)  # no grad, float32: not checked
    index = em.tensor([2, 0, 1])  # integer tensor

    def fn(t, w, idx, power, label):
        assert label == "tag"
        return (t ** power) * w.to(em.float64) + t[idx]

    assert em.autograd.gradcheck(fn, [x, frozen, index, 3, "tag"])


def test_a_none_gradient_for_an_input_that_matters_fails():
    class DropsSecond(em.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(b)
            return a * b

        @staticmethod
        def backward(ctx, gy):
            (b,) = ctx.saved_tensors
            return gy * b, None  # right for a, missing for b

    a, b = _three()[:2]
    with pytest.raises(GradcheckError, match=r"input 1 .*analytic 0,"):
        em.autograd.gradcheck(DropsSecond.apply, [a, b])


def test_a_none_gradient_for_an_unused_input_passes():
    class IgnoresSecond(em.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, gy):
            (a,) = ctx.saved_tensors
            return gy * 2.0 * a, None

    a, b = _three()[:2]
    assert em.autograd.gradcheck(IgnoresSecond.apply, [a, b])


def test_an_output_that_does_not_require_grad_is_compared_as_zero():
    x = em.tensor([0.5, -1.0], dtype=em.float64, requires_grad=True)
    assert em.autograd.gradcheck(lambda t: (t * 2.0, t.detach() * 0.0), [x])
    with pytest.raises(GradcheckError, match="output 1"):
        em.autograd.gradcheck(lambda t: (t * 2.0, t.detach() * 3.0 + t.detach() * t.detach()), [x])


def test_gradgradcheck_catches_a_create_graph_backward_that_differs_from_the_plain_one():
    class TwoBackwards(em.autograd.Function):
        """x**2 whose backward is right on arrays but off by 5 % when it records a graph (Tensors)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, gy):
            (x,) = ctx.saved_tensors
            return gy * (2.1 if isinstance(gy, em.Tensor) else 2.0) * x

    assert em.autograd.gradcheck(TwoBackwards.apply, [_x()])
    with pytest.raises(GradcheckError, match="create_graph=True disagrees"):
        em.autograd.gradgradcheck(TwoBackwards.apply, [_x()])
