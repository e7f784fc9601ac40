"""Property tests: broadcasting, reductions, shape round trips, gradcheck and non-contiguous inputs.

Every forward value is compared with NumPy in float64 and every gradient with
a reference written here independently of the engine (the broadcast gradient
is summed back with a helper of this file, not ember's ``sum_to``).
"""

from __future__ import annotations

import os

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ember as em

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def unbroadcast(g: numpy.ndarray, shape: tuple) -> numpy.ndarray:
    """Sum ``g`` down to ``shape``: over the extra leading axes, then over axes that were 1."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


def values(shape: tuple, low: float = -3.0, high: float = 3.0):
    return hnp.arrays(numpy.float64, shape, elements=st.floats(low, high, allow_nan=False, width=64))


def f64(a, requires_grad: bool = True) -> em.Tensor:
    return em.tensor(numpy.asarray(a, dtype=numpy.float64), dtype=em.float64, requires_grad=requires_grad)


@st.composite
def broadcast_pair(draw, low: float = -3.0, high: float = 3.0):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
    sa, sb = shapes.input_shapes
    a = draw(values(sa, low, high))
    b = draw(values(sb, low, high))
    gy = draw(values(shapes.result_shape))
    return a, b, gy


BINARY = {
    "add": (lambda a, b: a + b, lambda a, b, g: (g, g)),
    "sub": (lambda a, b: a - b, lambda a, b, g: (g, -g)),
    "mul": (lambda a, b: a * b, lambda a, b, g: (g * b, g * a)),
    "div": (lambda a, b: a / b, lambda a, b, g: (g / b, -g * a / b**2)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(data=st.data())
def test_broadcast_binary_forward_and_gradients(name, data):
    a, b, gy = data.draw(broadcast_pair())
    if name == "div":  # keep the divisor away from 0
        b = numpy.where(b >= 0, b + 0.5, b - 0.5)
    fn, grads = BINARY[name]
    ta, tb = f64(a), f64(b)
    y = fn(ta, tb)
    expected = fn(a, b)
    assert y.shape == numpy.shape(expected) and y.dtype == em.float64
    numpy.testing.assert_array_equal(y.numpy(), expected)
    y.backward(f64(gy, False))
    ga, gb = (numpy.broadcast_to(g, numpy.shape(expected)) for g in grads(a, b, gy))
    # atol: the engine sums broadcast axes in one call, the reference one axis at a time.
    numpy.testing.assert_allclose(ta.grad.numpy(), unbroadcast(ga, a.shape), rtol=1e-12, atol=1e-10)
    numpy.testing.assert_allclose(tb.grad.numpy(), unbroadcast(gb, b.shape), rtol=1e-12, atol=1e-10)
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape


@SETTINGS
@given(data=st.data())
def test_broadcast_with_python_scalar(data):
    a = data.draw(values(data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))))
    s = data.draw(st.floats(-2, 2, allow_nan=False))
    t = f64(a)
    y = (t * s + s) / (s * s + 1.0) - s
    numpy.testing.assert_allclose(y.numpy(), (a * s + s) / (s * s + 1.0) - s, rtol=1e-15)
    y.sum().backward()
    numpy.testing.assert_allclose(t.grad.numpy(), numpy.full(a.shape, s / (s * s + 1.0)), rtol=1e-14)


@st.composite
def array_and_axes(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    a = draw(values(shape))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    nd = len(shape)
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-nd, nd - 1))
    else:
        picked = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
        axis = tuple(p - nd if draw(st.booleans()) else p for p in picked)  # mix negative axes in
    return a, axis, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean"])
@SETTINGS
@given(case=array_and_axes())
def test_reductions_match_numpy(name, case):
    a, axis, keepdims = case
    t = f64(a)
    y = getattr(t, name)(axis=axis, keepdims=keepdims)
    expected = getattr(numpy, name)(a, axis=axis, keepdims=keepdims)
    assert y.shape == numpy.shape(expected)
    numpy.testing.assert_allclose(y.numpy(), expected, rtol=1e-13, atol=1e-13)
    gy = numpy.random.default_rng(0).normal(size=numpy.shape(expected))
    y.backward(f64(gy, False))
    axes = range(a.ndim) if axis is None else ([axis] if isinstance(axis, int) else axis)
    axes = sorted(ax % a.ndim for ax in axes)
    g = gy if keepdims else numpy.expand_dims(gy, tuple(axes))
    n = int(numpy.prod([a.shape[ax] for ax in axes]))
    expected_grad = numpy.broadcast_to(g, a.shape) / (n if name == "mean" else 1)
    numpy.testing.assert_allclose(t.grad.numpy(), expected_grad, rtol=1e-13)


@SETTINGS
@given(case=array_and_axes())
def test_max_min_var_values_match_numpy(case):
    a, axis, keepdims = case
    t = f64(a, requires_grad=False)
    numpy.testing.assert_array_equal(t.max(axis=axis, keepdims=keepdims).numpy(), a.max(axis=axis, keepdims=keepdims))
    numpy.testing.assert_array_equal(t.min(axis=axis, keepdims=keepdims).numpy(), a.min(axis=axis, keepdims=keepdims))
    n = a.size if axis is None else int(numpy.prod([a.shape[ax] for ax in numpy.atleast_1d(axis)]))
    if n > 1:
        numpy.testing.assert_allclose(
            t.var(axis=axis, keepdims=keepdims).numpy(), a.var(axis=axis, keepdims=keepdims, ddof=1),
            rtol=1e-10, atol=1e-12,
        )


@st.composite
def array_and_permutation(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=5, min_side=1, max_side=4))
    perm = draw(st.permutations(range(len(shape))))
    return draw(values(shape)), tuple(perm)


@SETTINGS
@given(case=array_and_permutation())
def test_permute_round_trip_and_gradient(case):
    a, perm = case
    t = f64(a)
    y = t.permute(*perm)
    numpy.testing.assert_array_equal(y.numpy(), a.transpose(perm))
    back = y.permute(*numpy.argsort(perm).tolist())
    numpy.testing.assert_array_equal(back.numpy(), a)
    gy = numpy.arange(a.size, dtype=numpy.float64).reshape(a.transpose(perm).shape)
    y.backward(f64(gy, False))
    numpy.testing.assert_array_equal(t.grad.numpy(), gy.transpose(numpy.argsort(perm)))


@SETTINGS
@given(data=st.data())
def test_reshape_round_trip_and_gradient(data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    a = data.draw(values(shape))
    new = data.draw(st.permutations(list(shape)))  # same element count, another shape
    new = tuple(new) + (1,) * data.draw(st.integers(0, 2))
    if new and data.draw(st.booleans()):
        new = (-1,) + new[1:]
    t = f64(a)
    y = t.reshape(*new) if new else t.reshape(())
    numpy.testing.assert_array_equal(y.numpy(), a.reshape(new))
    back = y.reshape(shape)
    numpy.testing.assert_array_equal(back.numpy(), a)
    gy = numpy.arange(a.size, dtype=numpy.float64).reshape(shape)
    back.backward(f64(gy, False))
    numpy.testing.assert_array_equal(t.grad.numpy(), gy)


@SETTINGS
@given(data=st.data())
def test_two_axis_transpose_swaps_like_torch(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3))
    nd = len(shape)
    a = data.draw(values(shape))
    i, j = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    t = f64(a, requires_grad=False)
    numpy.testing.assert_array_equal(t.transpose(i, j).numpy(), numpy.swapaxes(a, i, j))


GRADCHECK_OPS = {
    "tanh": lambda x, y: x.tanh() * y,
    "sigmoid-mul": lambda x, y: (x * y).sigmoid(),
    "exp-div": lambda x, y: x.exp() / (y * y + 1.0),
    "pow": lambda x, y: (x * x + 0.5) ** y,
    "max-sum": lambda x, y: (x + y).max(axis=-1).sum(),
}


@pytest.mark.parametrize("name", sorted(GRADCHECK_OPS))
@FEW
@given(data=st.data())
def test_gradcheck_on_random_shapes(name, data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3))
    a = data.draw(values(shapes.input_shapes[0], -1.5, 1.5))
    b = data.draw(values(shapes.input_shapes[1], -1.5, 1.5))
    if name == "max-sum":  # no ties in the max: distinct values along the reduced axis
        s = numpy.broadcast_shapes(a.shape, b.shape)
        a = numpy.broadcast_to(a, s) + numpy.arange(numpy.prod(s)).reshape(s) * 0.1
    assert em.autograd.gradcheck(GRADCHECK_OPS[name], [f64(a), f64(b)])


@FEW
@given(data=st.data())
def test_gradcheck_matmul_random_shapes(data):
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch = data.draw(st.sampled_from([(), (2,), (1, 2)]))
    a = data.draw(values(batch + (n, k), -1, 1))
    b = data.draw(values((k, m), -1, 1))
    assert em.autograd.gradcheck(lambda x, y: x @ y, [f64(a), f64(b)])


@st.composite
def non_contiguous(draw):
    """A float64 view that is transposed and/or strided, plus the same values as a contiguous copy."""
    base = draw(values((draw(st.integers(2, 5)), draw(st.integers(2, 5)), draw(st.integers(1, 3)))))
    view = base
    if draw(st.booleans()):
        view = view.transpose(2, 0, 1)
    if draw(st.booleans()):
        view = view[..., ::2]
    if draw(st.booleans()):
        view = view[::-1]
    return view


@SETTINGS
@given(view=non_contiguous())
def test_non_contiguous_inputs(view):
    t = em.from_numpy(view).requires_grad_()  # wraps the strided view itself
    ref = f64(numpy.ascontiguousarray(view))
    out_t = ((t * 2.0).tanh() + t.sum(axis=0, keepdims=True)).exp().mean(axis=-1)
    out_r = ((ref * 2.0).tanh() + ref.sum(axis=0, keepdims=True)).exp().mean(axis=-1)
    numpy.testing.assert_allclose(out_t.numpy(), out_r.numpy(), rtol=1e-14)
    out_t.sum().backward()
    out_r.sum().backward()
    numpy.testing.assert_allclose(t.grad.numpy(), ref.grad.numpy(), rtol=1e-13)


@SETTINGS
@given(view=non_contiguous())
def test_views_produced_by_ops_feed_later_ops(view):
    a = numpy.ascontiguousarray(view)
    t = f64(a)
    tt = t.permute(*reversed(range(t.ndim)))  # a non-contiguous result inside the graph
    y = (tt[::-1] * tt[::-1].exp()).sum(axis=0)
    aa = a.transpose()[::-1]
    numpy.testing.assert_allclose(y.numpy(), (aa * numpy.exp(aa)).sum(axis=0), rtol=1e-14)
    y.sum().backward()
    # atol: exp(a) * (1 + a) cancels near a = -1, where the two summation orders differ.
    numpy.testing.assert_allclose(t.grad.numpy(), numpy.exp(a) * (1 + a), rtol=1e-13, atol=1e-13)


def test_property_tests_are_reproducible_and_write_no_database():
    """The suite's hypothesis profile (tests/conftest.py): fixed examples, nothing written to .hypothesis/."""
    if os.environ.get("EMBER_HYPOTHESIS_PROFILE", "ember") != "ember":
        pytest.skip("EMBER_HYPOTHESIS_PROFILE chose another hypothesis profile")
    for s in (settings.default, SETTINGS, FEW):
        assert s.derandomize is True and s.database is None
