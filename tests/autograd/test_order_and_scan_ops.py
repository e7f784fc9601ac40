"""std, prod, logsumexp, cumsum/cumprod, sort/argsort/topk: torch parity, gradients, bad input.

The registry test already gradchecks every sample to second order; these add
torch's values and gradients, the edge cases (zeros, ties, 0-d, wide ranges)
and the errors.
"""

from __future__ import annotations

import warnings

import numpy
import pytest

import ember as em
from ember.errors import ShapeError

torch = pytest.importorskip("torch")
R = numpy.random.default_rng(7)
X = R.normal(size=(3, 4))
X3 = R.normal(size=(2, 3, 4))
ZEROS = X.copy()
ZEROS[0, 1] = ZEROS[2, 0] = ZEROS[2, 3] = 0.0


def both(call, a):
    """``call(lib, leaf)`` in ember and torch: outputs and the gradient of a weighted sum, as NumPy."""
    results = []
    for lib in (em, torch):
        x = lib.tensor(a, requires_grad=True) if lib is torch else em.tensor(a, dtype=em.float64, requires_grad=True)
        out = call(lib, x)
        outs = list(out) if isinstance(out, tuple) else [out]
        loss = None
        for k, o in enumerate(outs):
            if o.dtype in (torch.int64, em.int64):
                continue
            w = numpy.random.default_rng(k).normal(size=tuple(o.shape))
            term = (o * lib.tensor(w)).sum()
            loss = term if loss is None else loss + term
        loss.backward()
        results.append(([numpy.asarray(o.detach().numpy() if lib is torch else o.numpy()) for o in outs],
                        x.grad.numpy()))
    (got, gx), (want, gt) = results
    for g, w in zip(got, want):
        assert g.shape == w.shape
        numpy.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(gx, gt, rtol=1e-10, atol=1e-12)


CASES = {
    "std all": (lambda L, x: x.std(), X),
    "std dim keepdim": (lambda L, x: x.std(dim=1, keepdim=True), X),
    "std dims correction 0": (lambda L, x: x.std(dim=(0, 2), correction=0), X3),
    "std unbiased False": (lambda L, x: x.std(0, unbiased=False), X),
    "prod all": (lambda L, x: x.prod(), X),
    "prod dim": (lambda L, x: x.prod(dim=1), X3),
    "prod with zeros": (lambda L, x: x.prod(dim=1), ZEROS),
    "prod with zeros all": (lambda L, x: (x[0].prod(), x[1].prod(), x[2].prod()), ZEROS),
    "logsumexp dim": (lambda L, x: x.logsumexp(dim=1), X),
    "logsumexp dims keepdim": (lambda L, x: L.logsumexp(x, dim=(0, 2), keepdim=True), X3),
    "logsumexp wide": (lambda L, x: (x * 400.0).logsumexp(dim=0), X),
    "cumsum": (lambda L, x: x.cumsum(dim=1), X3),
    "cumsum negative dim": (lambda L, x: L.cumsum(x, dim=-3), X3),
    "cumprod": (lambda L, x: x.cumprod(dim=1), X),
    "cumprod with zeros": (lambda L, x: x.cumprod(dim=1), ZEROS),
    "cumprod first axis": (lambda L, x: x.cumprod(0), ZEROS),
    "sort": (lambda L, x: tuple(x.sort(dim=1)), X3),
    "sort descending dim 0": (lambda L, x: tuple(L.sort(x, dim=0, descending=True)), X),
    "topk": (lambda L, x: tuple(x.topk(2)), X),
    "topk smallest dim 1": (lambda L, x: tuple(x.topk(2, dim=1, largest=False)), X3),
    "argsort": (lambda L, x: (x.argsort(dim=0).double() * x[0, 0],), X),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch(name):
    call, a = CASES[name]
    both(call, a)


@pytest.mark.parametrize("name", ["std", "logsumexp", "cumsum", "cumprod"])
def test_0d_tensors(name):
    a = numpy.array(0.7)
    with warnings.catch_warnings():  # the std of one element has no degrees of freedom: nan, with a warning
        warnings.simplefilter("ignore")
        want = getattr(torch.tensor(a), name)(0) if name != "std" else torch.tensor(a).std()
        got = getattr(em.tensor(a, dtype=em.float64), name)(0) if name != "std" else em.tensor(a).std()
    assert tuple(got.shape) == tuple(want.shape) == ()
    numpy.testing.assert_allclose(got.numpy(), want.numpy(), equal_nan=True)


def test_sort_and_topk_of_0d_and_ties():
    v, i = em.tensor(2.5).sort()
    assert v.shape == () and i.item() == 0
    a = numpy.array([1.0, 3.0, 1.0, 3.0, 2.0])
    for descending in (False, True):
        got = em.tensor(a).sort(descending=descending, stable=True)
        want = torch.tensor(a).sort(descending=descending, stable=True)
        numpy.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    x = em.tensor(a, dtype=em.float64, requires_grad=True)
    x.topk(2).values.sum().backward()  # each tie's gradient goes to the element picked, as torch
    xt = torch.tensor(a, requires_grad=True)
    xt.topk(2).values.sum().backward()
    numpy.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_integer_inputs_follow_torch_dtypes():
    a = numpy.array([[3, 1, 2], [0, 5, 4]])
    for call in (lambda t: t.prod(dim=1), lambda t: t.cumsum(0), lambda t: t.cumprod(1), lambda t: t.sort(1)[0],
                 lambda t: t.topk(1)[0], lambda t: t.logsumexp(1), lambda t: t.bool().cumsum(1)):
        got, want = call(em.tensor(a)), call(torch.tensor(a))
        assert str(got.dtype) == str(want.dtype).replace("torch.", "")
        numpy.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_std_of_constants_has_zero_gradient_like_torch():
    x = em.ones(3, 4, dtype=em.float64, requires_grad=True)
    xt = torch.ones(3, 4, dtype=torch.float64, requires_grad=True)
    x.std(dim=1).sum().backward()
    xt.std(dim=1).sum().backward()
    numpy.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_float16_accumulates_in_float32():
    x = em.ones(4096, dtype=em.float16)
    assert x.cumsum(0)[-1].item() == 4096.0 and x.cumsum(0).dtype == em.float16
    assert abs(em.full((4096,), 0.5, dtype=em.float16).logsumexp(0).item() - (0.5 + numpy.log(4096))) < 1e-2


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: em.ones(2, 3).std(dim=2), ShapeError, r"std: axis 2 is out of range"),
    (lambda: em.arange(3).std(), em.DTypeError, r"std: expected a floating tensor"),
    (lambda: em.ones(2, 3).prod(dim=(0, 0)), ShapeError, r"prod: repeated axis"),
    (lambda: em.ones(2, 3).logsumexp(dim=-3), ShapeError, r"logsumexp: axis -3 is out of range"),
    (lambda: em.ones(2, 3).cumsum(dim=2), ShapeError, r"cumsum: axis 2 is out of range"),
    (lambda: em.cumprod(em.ones(2, 3), None), TypeError, r"cumprod: expected an int axis"),
    (lambda: em.ones(2, 3).sort(dim=(0, 1)), TypeError, r"sort: expected one int axis"),
    (lambda: em.ones(2, 3).argsort(dim=5), ShapeError, r"argsort: axis 5 is out of range"),
    (lambda: em.ones(2, 3).topk(4), ShapeError, r"topk: expected k in \[0, 3\] for axis 1 of shape \(2, 3\), got 4"),
    (lambda: em.ones(2, 3).topk(-1), ShapeError, r"topk: .*got -1"),
    (lambda: em.ones(2, 3).topk(1.5), TypeError, r"topk: expected an int k, got 1\.5"),
    (lambda: em.prod([1.0, 2.0]), TypeError, r"prod: expected a Tensor, got list"),
    (lambda: em.ones(2).sum(dim=0, axis=0), TypeError, r"sum: got both dim= and axis="),
])
def test_bad_input(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
