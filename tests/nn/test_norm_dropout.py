"""batch_norm / BatchNorm1d / BatchNorm2d / dropout / Dropout: references, statistics, PyTorch parity, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import available_devices

import ember as em
from ember import nn
from ember.autograd import gradcheck, gradgradcheck
from ember.nn import functional as F


def ref_batch_norm(x, w, b, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x = x.astype(np.float64)
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w.reshape(shape) + b.reshape(shape), mean.ravel(), x.var(axis=axes, ddof=1)


# --------------------------------------------------------------- batch norm
@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 5)])
def test_batch_norm_training_matches_reference(device, shape, rng):
    x = rng.normal(loc=2, scale=3, size=shape)
    w, b = rng.normal(size=3), rng.normal(size=3)
    rm, rv = em.zeros(3, dtype=em.float64, device=device), em.ones(3, dtype=em.float64, device=device)
    y = F.batch_norm(em.tensor(x, device=device), rm, rv, em.tensor(w, device=device), em.tensor(b, device=device),
                     training=True, momentum=0.1)
    ref, mean, unbiased = ref_batch_norm(x, w, b)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.9 + 0.1 * unbiased, rtol=1e-12)


def test_batch_norm_eval_uses_running_stats(rng):
    x = rng.normal(size=(4, 3))
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2, 3)
    y = F.batch_norm(em.tensor(x), em.tensor(rm), em.tensor(rv), training=False)
    np.testing.assert_allclose(y.numpy(), (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-12)


def test_batch_norm_float16_statistics_in_float32():
    # 4096 values near 1000: float16 sums would stall past 2048 and the mean would be far off.
    x = (1000 + np.linspace(-4, 4, 4096)).reshape(4096, 1).astype(np.float16)
    rm, rv = em.zeros(1), em.ones(1)
    y = F.batch_norm(em.tensor(x), rm, rv, training=True, momentum=1.0)
    assert y.dtype == np.float16
    ref = ref_batch_norm(x.astype(np.float64), np.ones(1), np.zeros(1))[0]
    np.testing.assert_allclose(y.numpy().astype(np.float64), ref, atol=2e-2)
    np.testing.assert_allclose(rm.numpy(), x.astype(np.float64).mean(), rtol=1e-6)


def test_batch_norm_layer_gradcheck_wrt_parameters(rng):
    bn = nn.BatchNorm2d(2).double()
    with em.no_grad():
        bn.weight.copy_(em.tensor(rng.normal(size=2)))
        bn.bias.copy_(em.tensor(rng.normal(size=2)))
    x = em.tensor(rng.normal(size=(3, 2, 2, 2)), requires_grad=True)
    assert gradcheck(lambda x, w, b: bn(x), [x, bn.weight, bn.bias])
    assert gradgradcheck(lambda x, w, b: bn(x), [x, bn.weight, bn.bias])
    bn.eval()
    assert gradcheck(lambda x, w, b: bn(x), [x, bn.weight, bn.bias])


def test_batch_norm_module_api(rng):
    bn = nn.BatchNorm1d(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.num_batches_tracked.dtype == np.int64
    x = em.tensor(rng.normal(size=(8, 3)).astype(np.float32))
    bn(x)
    bn(x)
    assert bn.num_batches_tracked.item() == 2
    bn.double()
    assert bn.running_mean.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    bn.eval()
    before = bn.running_mean.numpy().copy()
    bn(em.tensor(rng.normal(size=(8, 3))))
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)
    assert bn.num_batches_tracked.item() == 2
    bn.reset_running_stats()
    assert bn.num_batches_tracked.item() == 0 and (bn.running_var.numpy() == 1).all()

    plain = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert list(plain.state_dict()) == [] and plain.running_mean is None
    y = plain.eval()(x)  # no running stats: batch statistics even in eval
    np.testing.assert_allclose(y.numpy().mean(0), 0, atol=1e-6)


def test_batch_norm_errors():
    with pytest.raises(em.ShapeError, match=r"BatchNorm2d\(16\): expected input \(N, 16, H, W\), got \(8, 3, 28, 28\)"):
        nn.BatchNorm2d(16)(em.zeros(8, 3, 28, 28))
    with pytest.raises(em.ShapeError, match=r"BatchNorm1d\(4\): expected input \(N, 4\) or \(N, 4, L\), got \(2, 4, 3, 3\)"):
        nn.BatchNorm1d(4)(em.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training, got input shape \(1, 4\)"):
        nn.BatchNorm1d(4)(em.zeros(1, 4))
    with pytest.raises(ValueError, match=r"batch_norm: evaluation \(training=False\) needs running_mean"):
        F.batch_norm(em.zeros(2, 3), None, None, training=False)
    with pytest.raises(em.ShapeError, match=r"batch_norm: expected weight of shape \(3,\) for input \(2, 3\), got \(4,\)"):
        F.batch_norm(em.zeros(2, 3), None, None, em.ones(4))
    with pytest.raises(em.DTypeError, match="batch_norm: expected weight of dtype float32, got float64"):
        F.batch_norm(em.zeros(2, 3), None, None, em.ones(3, dtype=em.float64))
    with pytest.raises(em.ShapeError, match=r"batch_norm: expected input \(N, C\) or \(N, C, H, W\), got \(3,\)"):
        F.batch_norm(em.zeros(3), None, None)
    with pytest.raises(ValueError, match="BatchNorm1d: expected num_features to be a positive int, got 0"):
        nn.BatchNorm1d(0)


# ------------------------------------------------------------------ dropout
def test_dropout_statistics_and_mask_reuse():
    em.manual_seed(3)
    x = em.ones(200, 500, requires_grad=True)
    y = F.dropout(x, 0.3)
    kept = y.numpy() != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01
    assert abs(y.numpy().mean() - 1.0) < 0.02  # inverted scaling preserves the mean
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
    (y * 2).sum().backward()
    # the backward applies the forward's mask, not a fresh one
    np.testing.assert_allclose(x.grad.numpy(), 2 * y.numpy(), rtol=1e-6)


def test_dropout_identity_in_eval_and_for_p0_and_reproducible():
    x = em.randn(4, 5, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    layer = nn.Dropout(0.5)
    assert layer.eval()(x) is x
    layer.train()
    em.manual_seed(1)
    a = layer(x).numpy()
    em.manual_seed(1)
    b = layer(x).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(F.dropout(x, 0.5, generator=5).numpy(), F.dropout(x, 0.5, generator=5).numpy())
    assert (F.dropout(x, 0.5).numpy() != a).any()


def test_dropout_errors():
    for p in (-0.1, 1.0, 1.5, "0.5", True):
        with pytest.raises(ValueError, match=r"dropout: expected a drop probability p in \[0, 1\)"):
            F.dropout(em.zeros(3), p)
    with pytest.raises(ValueError, match=r"Dropout: expected a drop probability p in \[0, 1\), got 1"):
        nn.Dropout(1)
    with pytest.raises(em.DTypeError, match="dropout: expected a floating tensor"):
        F.dropout(em.tensor([1, 2]), 0.5)
    with pytest.raises(TypeError, match="dropout: expected generator"):
        F.dropout(em.zeros(3), 0.5, generator="seed")


# ---------------------------------------------------------- PyTorch parity
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_module_torch_parity(shape, affine, torch, rng):
    cls, tcls = (nn.BatchNorm1d, torch.nn.BatchNorm1d) if len(shape) == 2 else (nn.BatchNorm2d, torch.nn.BatchNorm2d)
    ours, theirs = cls(3, affine=affine).double(), tcls(3, affine=affine).double()
    if affine:
        w, b = rng.normal(size=3), rng.normal(size=3)
        with em.no_grad():
            ours.weight.copy_(em.tensor(w))
            ours.bias.copy_(em.tensor(b))
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w))
            theirs.bias.copy_(torch.tensor(b))
    for step in range(3):  # training steps: outputs, grads, running statistics
        x = rng.normal(loc=step, scale=2, size=shape)
        g = rng.normal(size=shape)
        xe, xt = em.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ye, yt = ours(xe), theirs(xt)
        np.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        ye.backward(em.tensor(g))
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        if affine:
            np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-10)
            np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-10)
            ours.zero_grad()
            theirs.zero_grad()
    np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-12)
    assert ours.num_batches_tracked.item() == theirs.num_batches_tracked.item() == 3
    ours.eval(), theirs.eval()
    x = rng.normal(size=shape)
    xe, xt = em.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ye, yt = ours(xe), theirs(xt)
    np.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    ye.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-10)


def test_batch_norm_cumulative_average_and_double_backward_torch_parity(torch, rng):
    ours, theirs = nn.BatchNorm1d(2, momentum=None).double(), torch.nn.BatchNorm1d(2, momentum=None).double()
    for _ in range(3):
        x = rng.normal(size=(5, 2))
        ours(em.tensor(x)), theirs(torch.tensor(x))
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-12)

    x, w, g = rng.normal(size=(4, 3, 2)), rng.normal(size=3), rng.normal(size=(4, 3, 2))
    xe, we = em.tensor(x, requires_grad=True), em.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ye = F.batch_norm(xe, None, None, we, None, training=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, wt, None, training=True)
    gxe, gwe = em.autograd.grad(ye, [xe, we], em.tensor(g), create_graph=True)
    gxt, gwt = torch.autograd.grad(yt, [xt, wt], torch.tensor(g), create_graph=True)
    np.testing.assert_allclose(gxe.numpy(), gxt.detach().numpy(), rtol=1e-9, atol=1e-12)
    ((gxe ** 2).sum() + (gwe ** 3).sum()).backward()
    ((gxt ** 2).sum() + (gwt ** 3).sum()).backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(we.grad.numpy(), wt.grad.numpy(), rtol=1e-8, atol=1e-10)
