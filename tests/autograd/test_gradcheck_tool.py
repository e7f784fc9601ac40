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
