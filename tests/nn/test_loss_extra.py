"""Class weights, ignore_index, label smoothing and the binary cross-entropies: torch parity,
float64 gradcheck (first and second order) and bad input."""

from __future__ import annotations

import numpy
import pytest

import ember as em
import ember.nn.functional as F
from ember import nn
from ember.autograd.ops.loss import SoftmaxCrossEntropy

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RNG = numpy.random.default_rng(0)
W4 = numpy.array([1.0, 2.0, 0.5, 3.0])


def _kwargs_pair(kw, dtype):
    kw = {k: v.astype(dtype) if isinstance(v, numpy.ndarray) else v for k, v in kw.items()}
    return kw, {k: torch.tensor(v) if isinstance(v, numpy.ndarray) else v for k, v in kw.items()}


def _compare(fn, x, t, kw, dtype=numpy.float64, t_grad=False):
    kwe, kwt = _kwargs_pair(kw, dtype)
    xe = em.tensor(x.astype(dtype), requires_grad=True)
    te = em.tensor(t.astype(dtype) if t.dtype.kind == "f" else t, requires_grad=t_grad)
    ye = getattr(F, fn)(xe, te, **kwe)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    tt = torch.tensor(t.astype(dtype) if t.dtype.kind == "f" else t, requires_grad=t_grad)
    yt = getattr(TF, fn)(xt, tt, **kwt)
    g = RNG.normal(size=yt.shape)
    (ye * em.tensor(g.astype(dtype))).sum().backward()
    (yt * torch.tensor(g.astype(dtype))).sum().backward()
    tol = 1e-5 if dtype == numpy.float32 else 1e-8  # torch clamps x(1-x) at a float32 1e-12
    numpy.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    numpy.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    if t_grad:
        numpy.testing.assert_allclose(te.grad.numpy(), tt.grad.numpy(), rtol=tol, atol=tol)


INDEX_CASES = [
    {"weight": W4},
    {"ignore_index": 1},
    {"ignore_index": -100},
    {"label_smoothing": 0.2},
    {"weight": W4, "label_smoothing": 0.3, "ignore_index": 2},
    {"weight": W4, "reduction": "sum"},
    {"weight": W4, "reduction": "none", "label_smoothing": 0.1},
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("kw", INDEX_CASES)
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3)])
def test_cross_entropy_and_nll_options_match_torch(kw, shape, dtype):
    x = RNG.normal(size=shape) * 2
    t = RNG.integers(0, 4, (shape[0],) + shape[2:])
    t.reshape(-1)[:2] = [-100, 1]  # one row with PyTorch's default ignore_index
    if kw.get("ignore_index", -100) != -100:
        t.reshape(-1)[0] = 0
    _compare("cross_entropy", x, t, kw, dtype)
    if "label_smoothing" not in kw:
        _compare("nll_loss", x, t, kw, dtype)


@pytest.mark.parametrize("kw", [{"label_smoothing": 0.25}, {"weight": W4}, {"weight": W4, "label_smoothing": 0.1,
                                                                          "reduction": "none"}])
def test_cross_entropy_probability_targets_match_torch(kw):
    x = RNG.normal(size=(5, 4))
    t = RNG.uniform(0, 1, (5, 4))
    _compare("cross_entropy", x, t / t.sum(1, keepdims=True), kw, t_grad=True)


def test_default_call_keeps_the_fused_fast_path():
    y = F.cross_entropy(em.randn(4, 3, requires_grad=True), em.tensor([0, 2, 1, 1]))
    assert isinstance(y.grad_fn, SoftmaxCrossEntropy)


def test_all_ignored_mean_is_nan_like_torch():
    y = F.cross_entropy(em.randn(2, 3), em.tensor([-100, -100]))
    assert numpy.isnan(y.item())
    assert torch.isnan(TF.cross_entropy(torch.randn(2, 3), torch.tensor([-100, -100])))


@pytest.mark.parametrize("fn,kw", [
    ("cross_entropy", {"weight": W4[:3], "label_smoothing": 0.2, "ignore_index": 0}),
    ("cross_entropy", {"weight": W4[:3], "reduction": "none"}),
    ("nll_loss", {"weight": W4[:3], "ignore_index": 2, "reduction": "sum"}),
])
def test_general_paths_gradcheck(fn, kw):
    x = em.tensor(RNG.normal(size=(4, 3, 2)), requires_grad=True)
    t = em.tensor(numpy.array([[0, 1], [2, 2], [1, 0], [0, 2]]))

    def f(x):
        return getattr(F, fn)(x, t, **kw)

    assert em.autograd.gradcheck(f, [x])
    assert em.autograd.gradgradcheck(f, [x])


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none", "weight": RNG.uniform(0.5, 2, (4,))}])
def test_binary_cross_entropy_matches_torch(kw, dtype):
    x = RNG.uniform(0.02, 0.98, (3, 4))
    x[0, :2] = [0.0, 1.0]  # logs clamped at -100, as torch
    t = RNG.uniform(0, 1, (3, 4))
    _compare("binary_cross_entropy", x, t, kw, dtype, t_grad=True)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("kw", [{}, {"pos_weight": numpy.array([1.0, 2.0, 0.5, 4.0])},
                                {"weight": RNG.uniform(0.5, 2, (3, 1)), "reduction": "sum"},
                                {"pos_weight": numpy.array([3.0]), "reduction": "none"}])
def test_binary_cross_entropy_with_logits_matches_torch(kw, dtype):
    x = RNG.normal(size=(3, 4)) * 3
    x[0, :2] = [80.0, -80.0]  # stable far from zero
    t = RNG.uniform(0, 1, (3, 4))
    _compare("binary_cross_entropy_with_logits", x, t, kw, dtype, t_grad=True)


def test_layers_match_torch():
    x = RNG.normal(size=(4, 3)).astype(numpy.float32)
    t = numpy.array([0, 2, -100, 1])
    w = numpy.array([0.5, 1.0, 2.0], dtype=numpy.float32)
    p = RNG.uniform(0.1, 0.9, (4, 3)).astype(numpy.float32)
    tb = RNG.uniform(0, 1, (4, 3)).astype(numpy.float32)
    pairs = [
        (nn.NLLLoss(weight=em.tensor(w))(F.log_softmax(em.tensor(x), axis=1), em.tensor(t)),
         torch.nn.NLLLoss(weight=torch.tensor(w))(TF.log_softmax(torch.tensor(x), 1), torch.tensor(t))),
        (nn.CrossEntropyLoss(label_smoothing=0.1)(em.tensor(x), em.tensor(t)),
         torch.nn.CrossEntropyLoss(label_smoothing=0.1)(torch.tensor(x), torch.tensor(t))),
        (nn.BCELoss()(em.tensor(p), em.tensor(tb)), torch.nn.BCELoss()(torch.tensor(p), torch.tensor(tb))),
        (nn.BCEWithLogitsLoss(pos_weight=em.tensor(w))(em.tensor(x), em.tensor(tb)),
         torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w))(torch.tensor(x), torch.tensor(tb))),
    ]
    for ours, theirs in pairs:
        numpy.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5)


def test_bad_inputs_name_the_op_and_shapes():
    x = em.randn(4, 3)
    with pytest.raises(ValueError, match=r"cross_entropy.*\[0, 3\).*ignore_index=-100.*got 5"):
        F.cross_entropy(x, em.tensor([0, 5, 1, 1]), weight=em.ones(3))
    with pytest.raises(ValueError, match=r"cross_entropy.*label_smoothing.*1.5"):
        F.cross_entropy(x, em.tensor([0, 1, 1, 1]), label_smoothing=1.5)
    with pytest.raises(em.errors.ShapeError, match=r"nll_loss.*weight of shape \(3,\).*\(4,\)"):
        F.nll_loss(x, em.tensor([0, 1, 1, 1]), weight=em.ones(4))
    with pytest.raises(em.errors.ShapeError, match=r"nll_loss.*\(4,\).*\(3,\)"):
        F.nll_loss(x, em.tensor([0, 1, 1]), ignore_index=1)
    with pytest.raises(ValueError, match=r"binary_cross_entropy.*\[0, 1\].*max 2"):
        F.binary_cross_entropy(em.tensor([0.5, 2.0]), em.tensor([0.0, 1.0]))
    with pytest.raises(em.errors.ShapeError, match=r"binary_cross_entropy_with_logits.*\(4, 3\).*\(4,\)"):
        F.binary_cross_entropy_with_logits(x, em.ones(4))
    with pytest.raises(em.errors.DTypeError, match=r"binary_cross_entropy.*float64"):
        F.binary_cross_entropy(em.tensor([0.5]), em.tensor(numpy.array([1.0])))
