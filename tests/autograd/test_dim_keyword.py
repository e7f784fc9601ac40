"""PyTorch's ``dim=``/``keepdim=`` next to NumPy's ``axis=``/``keepdims=`` on every axis-taking op."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.autograd.registry import OPS

F = em.nn.functional
X = numpy.random.default_rng(3).normal(size=(2, 3, 4))


def test_every_registered_op_with_an_axis_accepts_dim():
    import inspect

    checked = []
    for name, spec in OPS.items():
        params = inspect.signature(spec.fn).parameters
        if "axis" in params and "dim" not in params:  # an op taking both names handles them itself
            with pytest.raises(TypeError, match=f"{name}: got both dim= and axis="):
                spec.fn(em.tensor(X), dim=0, axis=0)
            checked.append(name)
    assert {"sum", "mean", "amax", "var", "std", "prod", "logsumexp", "cumsum", "softmax", "sort"} <= set(checked)


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "std", "prod", "logsumexp"])
def test_reductions_dim_matches_axis(name):
    x = em.tensor(X)
    for dim in (0, -1, (0, 2)):
        a = getattr(x, name)(dim=dim, keepdim=True)
        b = getattr(x, name)(axis=dim, keepdims=True)
        numpy.testing.assert_array_equal(a.numpy(), b.numpy())
        reduced = numpy.atleast_1d(dim) % 3
        assert a.shape == tuple(1 if i in reduced else s for i, s in enumerate(X.shape))


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "cumsum", "cumprod", "argmax", "argmin"])
def test_one_axis_ops_accept_dim(name):
    x = em.tensor(X)
    numpy.testing.assert_array_equal(getattr(x, name)(dim=1).numpy(), getattr(x, name)(axis=1).numpy())


def test_functional_and_shape_ops_accept_dim():
    x = em.tensor(X)
    numpy.testing.assert_array_equal(F.softmax(x, dim=0).numpy(), F.softmax(x, axis=0).numpy())
    assert em.cat([x, x], dim=1).shape == (2, 6, 4)
    assert em.stack([x, x], dim=-1).shape == (2, 3, 4, 2)
    assert x.unsqueeze(dim=0).shape == (1, 2, 3, 4)
    assert em.ones(2, 1).squeeze(dim=1).shape == (2,)
    assert x.flatten(start_dim=1).shape == (2, 12)
    assert (x > 0).any(dim=0).shape == (3, 4) and (x > 0).all(dim=0, keepdim=True).shape == (1, 3, 4)
    assert em.nn.Softmax(dim=1)(x).shape == X.shape


def test_both_spellings_are_a_clear_error():
    x = em.tensor(X)
    with pytest.raises(TypeError, match="sum: got both keepdim= and keepdims="):
        x.sum(axis=0, keepdim=True, keepdims=True)
    with pytest.raises(TypeError, match="softmax: got both dim= and axis="):
        F.softmax(x, dim=0, axis=1)
    with pytest.raises(TypeError, match="max: got both dim= and axis="):
        x.max(dim=0, axis=0)


def test_max_min_with_dim_return_values_and_indices_like_torch():
    torch = pytest.importorskip("torch")
    x = em.tensor(X, requires_grad=True)
    xt = torch.tensor(X, requires_grad=True)
    for name in ("max", "min"):
        for args, kwargs in [((1,), {}), ((), {"dim": -1, "keepdim": True}), ((0, True), {})]:
            got, want = getattr(x, name)(*args, **kwargs), getattr(xt, name)(*args, **kwargs)
            values, indices = got  # unpacks like torch's return type
            numpy.testing.assert_array_equal(got.values.numpy(), want.values.detach().numpy())
            numpy.testing.assert_array_equal(indices.numpy(), want.indices.numpy())
            assert indices.dtype == em.int64 and not indices.requires_grad
            values.sum().backward()
            want.values.sum().backward()
            numpy.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
            x.grad = xt.grad = None
    # No dim: the value over everything; NumPy's axis= spelling: the values only (ember's amax).
    assert x.max().item() == X.max() and x.max(axis=1).shape == (2, 4)
    numpy.testing.assert_array_equal(em.max(x, axis=(0, 2)).numpy(), X.max(axis=(0, 2)))


def test_max_rejects_a_tuple_dim_and_takes_a_tensor_as_torch_does():
    x = em.tensor(X)
    with pytest.raises(TypeError, match="max: expected an int dim"):
        x.max(dim=(0, 1))
    if "maximum" in OPS:  # torch.max(a, b) is the elementwise maximum
        numpy.testing.assert_array_equal(x.max(-x).numpy(), numpy.maximum(X, -X).astype(x.numpy().dtype))
    else:
        with pytest.raises(TypeError, match="max: got a Tensor as dim; the elementwise maximum"):
            x.max(x)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_dim_send_the_gradient_of_ties_to_the_returned_index_like_torch(name, keepdim):
    torch = pytest.importorskip("torch")
    a = numpy.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [-1.0, -1.0, -1.0]])
    x, xt = em.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    for dim in (0, 1):
        got, want = getattr(x, name)(dim, keepdim), getattr(xt, name)(dim, keepdim)
        numpy.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
        (got.values * 2.0).sum().backward()
        (want.values * 2.0).sum().backward()
        numpy.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
        x.grad = xt.grad = None
    # A full reduction shares the gradient among ties in both.
    getattr(x, name)().backward()
    getattr(xt, name)().backward()
    numpy.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_max_with_dim_of_a_0d_tensor_and_an_empty_dim():
    v, i = em.tensor(2.0).max(0)
    assert v.shape == () and i.item() == 0
    assert em.zeros(0, 3).max(1).values.shape == (0,)
    with pytest.raises(ValueError, match=r"max: expected a non-empty dim 0, got shape \(0, 3\)"):
        em.zeros(0, 3).max(0)


def test_max_min_dim_gradcheck_and_second_order():
    x = em.tensor(numpy.random.default_rng(5).permutation(12).reshape(3, 4) * 0.1, dtype=em.float64,
                  requires_grad=True)
    for fn in (lambda t: t.max(1).values, lambda t: t.min(dim=0, keepdim=True).values):
        assert em.autograd.gradcheck(fn, [x]) and em.autograd.gradgradcheck(lambda t: fn(t) * fn(t), [x])
