"""Regression tests for the places where ember answered differently from PyTorch (issue 16's bug list)."""

from __future__ import annotations

import warnings

import numpy
import pytest

import ember as em
from ember.errors import DTypeError, ShapeError

F = em.nn.functional
torch = pytest.importorskip("torch")


def _grads(fn, *values):
    """The gradients of ``fn(*leaves).sum()`` in ember and in torch, as NumPy arrays."""
    out = []
    for lib in (em, torch):
        leaves = [lib.tensor(v, requires_grad=True) for v in values]
        with warnings.catch_warnings(), numpy.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            fn(*leaves).sum().backward()
        out.append([numpy.asarray(t.grad.numpy()) for t in leaves])
    return out


@pytest.mark.parametrize("fn, values", [
    (lambda x: x ** 0.0, ([0.0, 1.0, -2.0],)),
    (lambda x, y: x ** y, ([0.0, 0.0, 2.0], [0.3, -0.5, 0.0])),
    (lambda x, y: x ** y, ([-numpy.inf, numpy.inf, 0.0], [0.0, 0.0, 0.0])),
    (lambda x: 0 ** x, ([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0],)),
    (lambda x: 0.0 ** x, ([-2.0, 0.0, 3.0],)),
    (lambda x: x ** 2, ([0.0, -1.5],)),
])
def test_pow_gradients_at_zero_and_inf_match_torch(fn, values):
    got, want = _grads(fn, *values)
    for g, w in zip(got, want):
        numpy.testing.assert_array_equal(g, w)


def test_pow_second_order_still_checks():
    x = em.tensor([0.7, 1.3], dtype=em.float64, requires_grad=True)
    y = em.tensor([0.5, 2.0], dtype=em.float64, requires_grad=True)
    assert em.autograd.gradgradcheck(lambda a, b: a ** b, [x, y])


def test_transpose_always_swaps_two_dims():
    a = numpy.arange(6.0).reshape(2, 3)
    numpy.testing.assert_array_equal(em.tensor(a).transpose(0, 1).numpy(), a.T)
    numpy.testing.assert_array_equal(em.tensor(a).transpose(1, 1).numpy(), a)  # same dim: unchanged
    b = numpy.arange(24.0).reshape(2, 3, 4)
    numpy.testing.assert_array_equal(em.transpose(em.tensor(b), -1, 0).numpy(), torch.tensor(b).transpose(-1, 0))
    numpy.testing.assert_array_equal(em.tensor(b).permute(2, 0, 1).numpy(), b.transpose(2, 0, 1))
    with pytest.raises(TypeError):
        em.tensor(b).transpose(2, 0, 1)  # a permutation is permute's job, as in PyTorch


@pytest.mark.parametrize("index", [
    lambda L: (0, slice(None), L.tensor([0, 1])),
    lambda L: (slice(None), 1, slice(None), L.tensor([2, 0, 2])),
    lambda L: (L.tensor([1, 0]), 0, L.tensor([1, 1])),
    lambda L: (0, L.tensor([0, 2]), slice(None), L.tensor([1, 3])),
    lambda L: (None, 1, Ellipsis, L.tensor([0, 4])),
    lambda L: (L.tensor(1), slice(None), L.tensor([[0], [3]])),
    lambda L: (1, L.tensor([True, False, True])),
])
def test_advanced_indexing_follows_torch_order(index):
    a = numpy.random.default_rng(0).normal(size=(2, 3, 4, 5))
    x, xt = em.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, yt = x[index(em)], xt[index(torch)]
    assert tuple(y.shape) == tuple(yt.shape)
    numpy.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    w = numpy.random.default_rng(1).normal(size=tuple(y.shape))
    (y * em.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    numpy.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_issue_example_of_separated_index_arrays():
    assert em.zeros(2, 3, 4)[0, :, em.tensor([0, 1])].shape == (3, 2)


@pytest.mark.parametrize("expr", [
    lambda L: L.tensor([1, 2]) + 0.5,
    lambda L: 0.5 * L.tensor([1, 2]),
    lambda L: L.tensor([1, 2]) / L.tensor([2, 4]),
    lambda L: L.tensor([1, 2]) / 2,
    lambda L: 3 / L.tensor([1, 2]),
    lambda L: L.tensor([1, 4]) ** 0.5,
    lambda L: 2.0 ** L.tensor([1, 2]),
    lambda L: L.tensor([True, False]) + 0.25,
    lambda L: L.tensor([1, 2]).exp(),
    lambda L: L.tensor([1, 2]).sqrt(),
    lambda L: L.tensor([True, False]).sigmoid(),
    lambda L: L.where(L.tensor([True, False]), L.tensor([1, 2]), 0.5),
])
def test_integers_meet_floats_in_the_default_float_dtype(expr):
    got, want = expr(em), expr(torch)
    assert got.dtype == em.float32 and want.dtype == torch.float32
    numpy.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_integers_stay_integers_where_torch_keeps_them():
    i = em.tensor([1, -2])
    assert (i * 2).dtype == em.int64 and (i ** 2).dtype == em.int64 and (-i).dtype == em.int64
    assert i.abs().tolist() == [1, 2] and i.relu().tolist() == [1, 0]
    assert em.tensor([True, True]).sum().dtype == em.int64


@pytest.mark.parametrize("n, correction", [(5, 5), (5, 6), (1, 1), (5, 4), (4, 0), (5, -1), (0, 1)])
def test_var_with_no_degrees_of_freedom_matches_torch(n, correction):
    a = numpy.arange(float(n))
    with warnings.catch_warnings():  # torch warns of no degrees of freedom, NumPy of an empty mean
        warnings.simplefilter("ignore")
        want = torch.tensor(a).var(correction=correction)
        got = em.tensor(a, dtype=em.float64).var(correction=correction)
    numpy.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-15)


def test_constant_input_over_no_degrees_of_freedom_is_nan():
    assert numpy.isnan(em.ones(3).var(correction=3).item())


def test_squeeze_of_a_dim_that_is_not_1_is_a_no_op():
    x = em.ones(3, 1, 2)
    assert x.squeeze(0).shape == (3, 1, 2) and x.squeeze(1).shape == (3, 2) and x.squeeze(-1).shape == (3, 1, 2)
    assert x.squeeze((0, 1)).shape == (3, 2) == tuple(torch.ones(3, 1, 2).squeeze((0, 1)).shape)


def test_clip_with_min_above_max_gives_max_and_torch_gradient():
    a = numpy.array([-1.0, 0.5, 2.0, 4.0])
    x, xt = em.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, yt = x.clip(3, 0), xt.clamp(3, 0)
    numpy.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    y.sum().backward()
    yt.sum().backward()
    numpy.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_where_with_two_scalars():
    c = numpy.array([True, False, True])
    for a, b in [(4, 2), (4.0, 2), (True, False)]:
        got, want = em.where(em.tensor(c), a, b), torch.where(torch.tensor(c), a, b)
        assert str(got.dtype) == str(want.dtype).replace("torch.", "")
        numpy.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_of_a_0d_tensor(name):
    x = em.tensor(1.5, dtype=em.float64, requires_grad=True)
    for dim in (0, -1):
        assert getattr(F, name)(x, dim).item() == getattr(torch, name)(torch.tensor(1.5), dim).item()
    assert em.autograd.gradcheck(lambda t: getattr(F, name)(t, 0), [x])
    with pytest.raises(ShapeError, match=f"{name}: axis 1 is out of range"):
        getattr(F, name)(x, 1)


@pytest.mark.parametrize("target", [lambda L: L.tensor(2), lambda L: L.tensor([0.2, 0.3, 0.5])])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_unbatched_logits(target, reduction):
    a = numpy.array([0.5, -1.0, 2.0])
    x, xt = em.tensor(a, dtype=em.float32, requires_grad=True), torch.tensor(a, dtype=torch.float32, requires_grad=True)
    y = F.cross_entropy(x, target(em), reduction=reduction)
    yt = torch.nn.functional.cross_entropy(xt, target(torch), reduction=reduction)
    assert tuple(y.shape) == tuple(yt.shape)
    numpy.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-6)
    y.sum().backward()
    yt.sum().backward()
    numpy.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
def test_integer_and_bool_tensors_in_max_min_matmul_linear_pool_exp(dtype):
    a = numpy.array([[1, 0], [3, 4]])
    x, xt = em.tensor(a).to(dtype), torch.tensor(a).to(getattr(torch, dtype))
    calls = {
        "max": lambda L, t: t.max(), "min": lambda L, t: t.min(), "max dim": lambda L, t: t.max(1)[0],
        "matmul": lambda L, t: t @ t, "linear": lambda L, t: L.nn.functional.linear(t, t),
        "max_pool2d": lambda L, t: L.nn.functional.max_pool2d(t[None, None], 2, 1, 1),
        "exp": lambda L, t: t.exp(), "sum": lambda L, t: t.sum(),
    }
    for name, call in calls.items():
        try:
            want = call(torch, xt)
        except (RuntimeError, NotImplementedError):  # torch refuses it: ember must refuse it clearly
            with pytest.raises(DTypeError, match=name.split()[0]):
                call(em, x)
            continue
        got = call(em, x)
        assert str(got.dtype) == str(want.dtype).replace("torch.", ""), name
        numpy.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("call, torch_call, torch_error", [
    (lambda: em.ones(2, 3).reshape(4, 2), lambda: torch.ones(2, 3).reshape(4, 2), RuntimeError),
    (lambda: em.ones(2, 3).permute(0, 0), lambda: torch.ones(2, 3).permute(0, 0), RuntimeError),
    (lambda: em.ones(2, 3) @ em.ones(2, 3), lambda: torch.ones(2, 3) @ torch.ones(2, 3), RuntimeError),
    (lambda: F.conv2d(em.ones(1, 1, 2, 2), em.ones(1, 1, 3, 3)),
     lambda: torch.nn.functional.conv2d(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 3, 3)), RuntimeError),
    (lambda: em.ones(2, 3)[5], lambda: torch.ones(2, 3)[5], IndexError),
    (lambda: em.ones(2, 3)[:, em.tensor([0, 7])], lambda: torch.ones(2, 3)[:, torch.tensor([0, 7])], IndexError),
    (lambda: em.ones(2, 3)[em.tensor([0.0])], lambda: torch.ones(2, 3)[torch.tensor([0.0])], IndexError),
    (lambda: em.ones(2, 3)[1.0], lambda: torch.ones(2, 3)[1.0], IndexError),
    (lambda: em.ones(2, 3).sum(dim=4), lambda: torch.ones(2, 3).sum(dim=4), IndexError),
    (lambda: em.ones(2, 3) + em.ones(4), lambda: torch.ones(2, 3) + torch.ones(4), RuntimeError),
])
def test_errors_are_also_the_exception_type_torch_raises(call, torch_call, torch_error):
    with pytest.raises(torch_error):
        torch_call()
    with pytest.raises(torch_error) as info:
        call()
    assert isinstance(info.value, (ShapeError, DTypeError))  # still ember's own types too


def test_assignment_with_separated_index_arrays_follows_torch_order():
    v = numpy.arange(6.0).reshape(3, 2)
    x, xt = em.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    x[0, :, em.tensor([0, 2])] = em.tensor(v, dtype=em.float32)
    xt[0, :, torch.tensor([0, 2])] = torch.tensor(v, dtype=torch.float32)
    numpy.testing.assert_array_equal(x.numpy(), xt.numpy())
