"""em.einsum, F.scaled_dot_product_attention, F.normalize and F.one_hot: torch parity (values
and grads, second order for einsum and attention), bad input.  First- and second-order float64
gradchecks of every sample run through the op registry."""

from __future__ import annotations

import numpy
import pytest

import ember as em
import ember.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RNG = numpy.random.default_rng(0)


def _parity(fn, tfn, arrays, kw=None, tkw=None, dtype=numpy.float64, second=False):
    kw = kw or {}
    tkw = kw if tkw is None else tkw
    tol = 1e-5 if dtype == numpy.float32 else 1e-10
    es = [em.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    ts = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    ye, yt = fn(*es, **kw), tfn(*ts, **tkw)
    assert ye.shape == tuple(yt.shape)
    numpy.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    g = RNG.normal(size=tuple(yt.shape)).astype(dtype)
    ge = em.autograd.grad((ye * em.tensor(g)).sum(), es, create_graph=second)
    gt = torch.autograd.grad((yt * torch.tensor(g)).sum(), ts, create_graph=second)
    for a, b in zip(ge, gt):
        numpy.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=tol * 10, atol=tol * 10)
    if second:
        sum(((a * a).sum() for a in ge), em.tensor(0.0, dtype=dtype)).backward()
        sum((b * b).sum() for b in gt).backward()
        for e, t in zip(es, ts):
            numpy.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=tol * 100, atol=tol * 100)


EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk", [(2, 3, 2), (2, 2, 3)]),
    ("...ij,...j->...i", [(2, 1, 3, 4), (3, 4)]),
    ("ij->i", [(3, 4)]),
    ("ij,ij->", [(3, 4), (1, 4)]),
    ("i,j", [(3,), (4,)]),
    ("...", [(2, 3)]),
    ("ba", [(2, 3)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("i j , j k -> k i", [(2, 3), (3, 4)]),
    ("a...c,c", [(2, 3, 4, 5), (5,)]),
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("eq,shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum_matches_torch(eq, shapes, dtype):
    arrays = [RNG.normal(size=s) for s in shapes]
    # second order only where the gradient depends on an input (a one-operand einsum is linear)
    _parity(lambda *xs: em.einsum(eq, *xs), lambda *xs: torch.einsum(eq, *xs), arrays, dtype=dtype,
            second=dtype == numpy.float64 and len(shapes) > 1)


def test_einsum_list_operands_and_forward_only_diagonal():
    a = RNG.normal(size=(3, 3))
    numpy.testing.assert_allclose(em.einsum("ii->i", [em.tensor(a)]).numpy(), numpy.diag(a))
    numpy.testing.assert_allclose(em.einsum("ii", em.tensor(a)).numpy(), numpy.trace(a))
    with pytest.raises(NotImplementedError, match=r"einsum.*repeated subscript.*'ii'"):
        em.einsum("ii->i", em.tensor(a, requires_grad=True))


def test_einsum_bad_inputs():
    a, b = em.randn(2, 3), em.randn(4, 5)
    with pytest.raises(em.ShapeError, match=r"einsum.*'j' has sizes 3 and 4.*\(2, 3\), \(4, 5\)"):
        em.einsum("ij,jk->ik", a, b)
    with pytest.raises(ValueError, match=r"einsum.*2 operands, got 1"):
        em.einsum("ij,jk->ik", a)
    with pytest.raises(em.ShapeError, match=r"einsum.*'ijk' name 3 axes.*\(2, 3\)"):
        em.einsum("ijk->i", a)
    with pytest.raises(ValueError, match=r"einsum.*output subscripts 'iz'"):
        em.einsum("ij->iz", a)
    with pytest.raises(em.DTypeError, match=r"einsum.*float32.*float64"):
        em.einsum("ij,ij->", a, em.randn(2, 3, dtype=em.float64))


def _masks():
    m = RNG.uniform(size=(3, 5)) > 0.4
    m[1] = False  # a row with every key masked: zeros, as torch
    return m


SDPA = [
    ({}, {}),
    ({"attn_mask": _masks()}, None),
    ({"is_causal": True, "scale": 0.2}, None),
    ({"attn_mask": RNG.normal(size=(2, 1, 3, 5))}, None),
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("kw,tkw", SDPA)
def test_sdpa_matches_torch(kw, tkw, dtype):
    if tkw is None:
        tkw = {k: torch.tensor(v.astype(dtype) if v.dtype.kind == "f" else v) if isinstance(v, numpy.ndarray) else v
               for k, v in kw.items()}
        kw = {k: em.tensor(v.astype(dtype) if v.dtype.kind == "f" else v) if isinstance(v, numpy.ndarray) else v
              for k, v in kw.items()}
    arrays = [RNG.normal(size=(2, 2, 3, 4)), RNG.normal(size=(2, 2, 5, 4)), RNG.normal(size=(2, 2, 5, 6))]
    _parity(F.scaled_dot_product_attention, TF.scaled_dot_product_attention, arrays, kw, tkw, dtype,
            second=dtype == numpy.float64)


def test_sdpa_dropout_keeps_shape_and_drops():
    q = em.randn(1, 4, 8)
    y = F.scaled_dot_product_attention(q, q, em.ones(1, 4, 8), dropout_p=0.5)
    assert y.shape == (1, 4, 8)
    assert not numpy.allclose(y.numpy(), 1.0)  # without dropout every row of weights sums to 1


def test_sdpa_bad_inputs():
    q = em.randn(2, 3, 4)
    with pytest.raises(em.ShapeError, match=r"scaled_dot_product_attention.*\(2, 3, 4\), \(2, 5, 3\)"):
        F.scaled_dot_product_attention(q, em.randn(2, 5, 3), em.randn(2, 5, 6))
    with pytest.raises(em.ShapeError, match=r"scaled_dot_product_attention.*attn_mask.*\(2, 3, 5\).*\(4, 5\)"):
        F.scaled_dot_product_attention(q, em.randn(2, 5, 4), em.randn(2, 5, 6), attn_mask=em.ones(4, 5))
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention.*not both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=em.ones(3, 3), is_causal=True)


@pytest.mark.parametrize("kw", [{}, {"p": 1.0, "dim": 0}, {"dim": -1, "p": 3.0}, {"eps": 0.5}])
def test_normalize_matches_torch_with_a_zero_row(kw):
    x = RNG.normal(size=(3, 4))
    _parity(F.normalize, TF.normalize, [x], kw, second=True)
    x[1] = 0.0  # first order only: torch's second derivative there is NaN, ours 0
    _parity(F.normalize, TF.normalize, [x], kw)


def test_normalize_bad_inputs():
    with pytest.raises(ValueError, match=r"normalize.*p=0"):
        F.normalize(em.randn(3), p=0, dim=0)
    with pytest.raises(TypeError, match=r"normalize"):
        F.normalize(em.tensor([1, 2]), dim=0)


def test_one_hot_matches_torch():
    t = numpy.array([[0, 2], [1, 3]])
    numpy.testing.assert_array_equal(F.one_hot(em.tensor(t)).numpy(), TF.one_hot(torch.tensor(t)).numpy())
    y = F.one_hot(em.tensor(t), num_classes=6)
    assert y.dtype == numpy.int64 and y.shape == (2, 2, 6)
    with pytest.raises(ValueError, match=r"one_hot.*\[0, 3\).*max 3"):
        F.one_hot(em.tensor(t), num_classes=3)
    with pytest.raises(em.DTypeError, match=r"one_hot.*float32"):
        F.one_hot(em.tensor([0.0, 1.0]))
