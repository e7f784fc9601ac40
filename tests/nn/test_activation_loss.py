"""softmax / log_softmax / cross_entropy / nll_loss / mse_loss: references, stability, PyTorch parity, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import available_devices

import ember as em
from ember import nn
from ember.nn import functional as F

TOL = {np.float16: {"rtol": 2e-3, "atol": 2e-3}, np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}


def ref_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x.astype(np.float64)
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


# ------------------------------------------------------------------ softmax
@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_matches_float64_reference(device, dtype, axis, rng):
    x = rng.normal(scale=3, size=(4, 5, 3))
    t = em.tensor(x, dtype=dtype, device=device)
    ref = ref_log_softmax(x.astype(dtype), axis)
    y, ly = F.softmax(t, axis), F.log_softmax(t, axis)
    assert y.dtype == dtype and ly.dtype == dtype
    np.testing.assert_allclose(y.numpy().astype(np.float64), np.exp(ref), **TOL[dtype])
    np.testing.assert_allclose(ly.numpy().astype(np.float64), ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_softmax_stable_for_huge_logits(dtype):
    big = 1e4 if dtype != np.float16 else 3e4  # float16 tops out at 65504 (-2 big must fit)
    x = em.tensor([[big, 0.0, -big], [-big, -big, -big], [big, big, 0.0]], dtype=dtype, requires_grad=True)
    y = F.softmax(x)
    ly = F.log_softmax(x)
    assert np.isfinite(y.numpy()).all() and np.isfinite(ly.numpy()).all()
    np.testing.assert_allclose(y.numpy().astype(np.float64), [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]], atol=1e-3)
    np.testing.assert_allclose(ly.numpy()[0, :2].astype(np.float64), [0.0, -big], rtol=1e-3)
    (y * em.tensor(np.arange(3.0), dtype=dtype)).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_softmax_float16_long_axis_accumulates_in_float32():
    x = np.zeros((2, 4096), dtype=np.float16)
    y = F.softmax(em.tensor(x)).numpy()
    # float16 accumulation of 4096 ones stalls at 2048; float32 accumulation gives exactly 1/4096
    np.testing.assert_allclose(y.astype(np.float64), 1 / 4096, rtol=1e-3)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_module_and_tensor_method(fn, rng):
    x = em.tensor(rng.normal(size=(3, 4)))
    layer = nn.Softmax(dim=0) if fn == "softmax" else nn.LogSoftmax(dim=0)
    np.testing.assert_allclose(layer(x).numpy(), getattr(x, fn)(0).numpy())
    np.testing.assert_allclose(getattr(nn, "Softmax" if fn == "softmax" else "LogSoftmax")()(x).numpy(),
                               getattr(F, fn)(x, -1).numpy())
    assert nn.Softmax(axis=1).axis == 1 and nn.Softmax(1, dim=1).axis == 1


def test_softmax_errors():
    with pytest.raises(TypeError, match="Softmax: got axis=0 and dim=1"):
        nn.Softmax(axis=0, dim=1)
    with pytest.raises(em.ShapeError, match=r"softmax: axis 2 is out of range"):
        F.softmax(em.zeros(2, 3), 2)
    with pytest.raises(em.ShapeError, match=r"log_softmax: expected a non-empty axis 1, got shape \(2, 0\)"):
        F.log_softmax(em.zeros(2, 0), 1)
    with pytest.raises(em.DTypeError, match="softmax: expected a floating tensor, got dtype int64"):
        F.softmax(em.tensor([1, 2]))


# ------------------------------------------------------------ cross entropy
def test_cross_entropy_indices_equal_one_hot(rng):
    x = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, 6)
    onehot = np.eye(4)[labels]
    for reduction in ("mean", "sum", "none"):
        a = em.tensor(x, dtype=em.float64, requires_grad=True)
        b = em.tensor(x, dtype=em.float64, requires_grad=True)
        la = F.cross_entropy(a, em.tensor(labels), reduction=reduction)
        lb = F.cross_entropy(b, em.tensor(onehot, dtype=em.float64), reduction=reduction)
        np.testing.assert_allclose(la.numpy(), lb.numpy(), rtol=1e-14)
        la.sum().backward()
        lb.sum().backward()
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-14, atol=1e-16)


def test_softmax_with_loss_gradient_is_y_minus_t_over_n(rng):
    """The book's Softmax-with-Loss backward: (y - t) / batch_size."""
    x = rng.normal(size=(5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    t = em.tensor(x, dtype=em.float64, requires_grad=True)
    F.cross_entropy(t, labels).backward()
    y = np.exp(ref_log_softmax(x))
    np.testing.assert_allclose(t.grad.numpy(), (y - np.eye(3)[labels]) / 5, rtol=1e-13, atol=1e-15)
    assert np.allclose(F.cross_entropy(em.tensor(x), labels).item(), -ref_log_softmax(x)[range(5), labels].mean())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_stable_for_logits_1e4(dtype):
    x = em.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype, requires_grad=True)
    loss = F.cross_entropy(x, em.tensor([1, 2]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [2e4, np.log(2)], rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1, -1, 0], [0, 0.5, -0.5]], atol=1e-6)


def test_cross_entropy_float16_computes_in_float32(rng):
    x = rng.normal(scale=4, size=(64, 10)).astype(np.float16)
    labels = rng.integers(0, 10, 64)
    t = em.tensor(x, requires_grad=True)
    loss = F.cross_entropy(t, labels)
    assert loss.dtype == np.float16
    ref = -ref_log_softmax(x)[range(64), labels].mean()
    np.testing.assert_allclose(float(loss.item()), ref, rtol=1e-3)
    loss.backward()
    assert t.grad.dtype == np.float16 and np.isfinite(t.grad.numpy()).all()


def test_cross_entropy_module_and_spatial_targets(rng):
    x = em.tensor(rng.normal(size=(2, 3, 4, 5)))
    t = em.tensor(rng.integers(0, 3, (2, 4, 5)))
    loss = nn.CrossEntropyLoss(reduction="sum")(x, t)
    ref = -np.take_along_axis(ref_log_softmax(x.numpy(), 1), t.numpy()[:, None], 1).sum()
    np.testing.assert_allclose(loss.item(), ref, rtol=1e-5)
    assert nn.CrossEntropyLoss()(x, t).shape == ()
    assert F.cross_entropy(x, t, reduction="none").shape == (2, 4, 5)


def test_cross_entropy_soft_target_gradient(rng):
    x = rng.normal(size=(3, 4))
    p = rng.uniform(size=(3, 4))
    xt = em.tensor(x, dtype=em.float64, requires_grad=True)
    pt = em.tensor(p, dtype=em.float64, requires_grad=True)
    F.cross_entropy(xt, pt).backward()
    np.testing.assert_allclose(pt.grad.numpy(), -ref_log_softmax(x) / 3, rtol=1e-12)
    soft = np.exp(ref_log_softmax(x))
    np.testing.assert_allclose(xt.grad.numpy(), (soft * p.sum(1, keepdims=True) - p) / 3, rtol=1e-12, atol=1e-15)


def test_cross_entropy_errors():
    x = em.randn(4, 3)
    with pytest.raises(ValueError, match=r"cross_entropy: expected class indices in \[0, 3\) for C=3 classes, got 3"):
        F.cross_entropy(x, em.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"cross_entropy: .* got -1"):
        F.cross_entropy(x, em.tensor([0, -1, 2, 1]))
    with pytest.raises(em.DTypeError, match=r"cross_entropy: expected integer class indices of shape \(4,\), got dtype float32"):
        F.cross_entropy(x, em.tensor([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(em.ShapeError, match=r"cross_entropy: expected class indices of shape \(4,\) for input \(4, 3\), got \(5,\)"):
        F.cross_entropy(x, em.tensor([0, 1, 2, 1, 0]))
    with pytest.raises(em.ShapeError, match=r"cross_entropy: expected a probability target of the input's shape \(4, 3\).*got \(4, 1\)"):
        F.cross_entropy(x, em.zeros(4, 1))
    with pytest.raises(em.ShapeError, match=r"got \(3,\)"):
        F.cross_entropy(x, em.zeros(3))  # would broadcast against (4, 3) in NumPy; must not
    with pytest.raises(em.DTypeError, match="expected a probability target of dtype float32 like the input, got float64"):
        F.cross_entropy(x, em.zeros(4, 3, dtype=em.float64))
    with pytest.raises(em.DTypeError, match="got dtype bool"):
        F.cross_entropy(x, em.tensor([True, False, True, True]))
    with pytest.raises(em.ShapeError, match=r"cross_entropy: expected input \(N, C\) or \(N, C, d1, ...\), got \(\)"):
        F.cross_entropy(em.randn(), em.tensor(1))
    with pytest.raises(ValueError, match="cross_entropy: expected reduction to be one of"):
        F.cross_entropy(x, em.tensor([0, 1, 2, 1]), reduction="avg")
    with pytest.raises(ValueError, match="CrossEntropyLoss: expected reduction"):
        nn.CrossEntropyLoss(reduction="batchmean")
    with pytest.raises(em.DTypeError, match="nll_loss: expected integer class indices"):
        F.nll_loss(x, em.tensor([0.0, 1.0, 2.0, 1.0]))


# --------------------------------------------------------------------- mse
def test_mse_loss_values_and_errors(rng):
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    ta = em.tensor(a, dtype=em.float64, requires_grad=True)
    tb = em.tensor(b, dtype=em.float64, requires_grad=True)
    loss = nn.MSELoss()(ta, tb)
    np.testing.assert_allclose(loss.item(), ((a - b) ** 2).mean())
    loss.backward()
    np.testing.assert_allclose(ta.grad.numpy(), 2 * (a - b) / 12)
    np.testing.assert_allclose(tb.grad.numpy(), -2 * (a - b) / 12)
    assert F.mse_loss(ta, tb, reduction="none").shape == (3, 4)
    with pytest.raises(em.ShapeError, match=r"mse_loss: expected a target of the input's shape \(3, 4\), got \(4,\)"):
        F.mse_loss(ta, em.zeros(4, dtype=em.float64))
    with pytest.raises(em.ShapeError, match=r"got \(3, 1\)"):
        F.mse_loss(ta, em.zeros(3, 1, dtype=em.float64))
    with pytest.raises(em.DTypeError, match="mse_loss: expected a target of dtype float64 like the input, got float32"):
        F.mse_loss(ta, em.zeros(3, 4))


# ---------------------------------------------------------- PyTorch parity
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _both(torch, x: np.ndarray):
    return em.tensor(x, dtype=em.float64, requires_grad=True), torch.tensor(x, requires_grad=True)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_torch_parity_with_double_backward(name, axis, torch, rng):
    x = rng.normal(size=(3, 4, 2))
    g = rng.normal(size=x.shape)
    e, t = _both(torch, x)
    ye, yt = getattr(F, name)(e, axis), getattr(torch.nn.functional, name)(t, dim=axis)
    np.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    (ge,) = em.autograd.grad(ye, e, em.tensor(g), create_graph=True)
    (gt,) = torch.autograd.grad(yt, t, torch.tensor(g), create_graph=True)
    np.testing.assert_allclose(ge.numpy(), gt.detach().numpy(), rtol=1e-12, atol=1e-14)
    (ge * ge).sum().backward()
    (gt * gt).sum().backward()
    np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 2, 2)])
def test_cross_entropy_torch_parity(reduction, shape, torch, rng):
    x = rng.normal(scale=3, size=shape)
    labels = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    e, t = _both(torch, x)
    le = F.cross_entropy(e, em.tensor(labels), reduction=reduction)
    lt = torch.nn.functional.cross_entropy(t, torch.tensor(labels), reduction=reduction)
    np.testing.assert_allclose(le.numpy(), lt.detach().numpy(), rtol=1e-12)
    g = rng.normal(size=le.shape)
    (ge,) = em.autograd.grad(le, e, em.tensor(g), create_graph=True)
    (gt,) = torch.autograd.grad(lt, t, torch.tensor(g), create_graph=True)
    np.testing.assert_allclose(ge.numpy(), gt.detach().numpy(), rtol=1e-12, atol=1e-15)
    (ge ** 2).sum().backward()
    (gt ** 2).sum().backward()
    np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probability_target_torch_parity(reduction, torch, rng):
    x, p = rng.normal(size=(4, 5)), rng.dirichlet(np.ones(5), size=4)
    e, t = _both(torch, x)
    pe, pt = _both(torch, p)
    le = F.cross_entropy(e, pe, reduction=reduction)
    lt = torch.nn.functional.cross_entropy(t, pt, reduction=reduction)
    np.testing.assert_allclose(le.numpy(), lt.detach().numpy(), rtol=1e-12)
    le.sum().backward()
    lt.sum().backward()
    np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pe.grad.numpy(), pt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_and_mse_torch_parity(reduction, torch, rng):
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    labels = rng.integers(0, 3, 4)
    e, t = _both(torch, x)
    ln = F.nll_loss(F.log_softmax(e, 1), em.tensor(labels), reduction=reduction)
    lc = F.cross_entropy(e, em.tensor(labels), reduction=reduction)
    np.testing.assert_allclose(ln.numpy(), lc.numpy(), rtol=1e-13)
    lt = torch.nn.functional.nll_loss(torch.nn.functional.log_softmax(t, 1), torch.tensor(labels), reduction=reduction)
    np.testing.assert_allclose(ln.numpy(), lt.detach().numpy(), rtol=1e-12)
    e2, t2 = _both(torch, x)
    me = F.mse_loss(e2, em.tensor(y), reduction=reduction)
    mt = torch.nn.functional.mse_loss(t2, torch.tensor(y), reduction=reduction)
    np.testing.assert_allclose(me.numpy(), mt.detach().numpy(), rtol=1e-12)
    me.sum().backward()
    mt.sum().backward()
    np.testing.assert_allclose(e2.grad.numpy(), t2.grad.numpy(), rtol=1e-12)
