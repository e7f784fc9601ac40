"""Linear / Identity / Flatten / activation layers and the Module API through them."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from conftest import available_devices

import ember as em
from ember import nn
from ember.autograd import gradcheck, gradgradcheck
from ember.nn import functional as F


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Dropout(0.2), nn.Linear(5, 3))


# ------------------------------------------------------------------- Linear
@pytest.mark.parametrize("device", available_devices())
def test_linear_forward_backward_reference(device, rng):
    layer = nn.Linear(4, 3, device=device).double()
    x = rng.normal(size=(2, 5, 4))
    xt = em.tensor(x, device=device, requires_grad=True)
    y = layer(xt)
    W, b = layer.weight.numpy(), layer.bias.numpy()
    np.testing.assert_allclose(y.numpy(), x @ W.T + b, rtol=1e-12)
    g = rng.normal(size=(2, 5, 3))
    y.backward(em.tensor(g, device=device))
    np.testing.assert_allclose(xt.grad.numpy(), g @ W, rtol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.numpy(), g.reshape(-1, 3).T @ x.reshape(-1, 4), rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.numpy(), g.sum((0, 1)), rtol=1e-12)


def test_linear_default_init_bounds_and_dtype():
    em.manual_seed(0)
    layer = nn.Linear(400, 300)
    W = layer.weight.numpy()
    assert layer.weight.dtype == em.float32 and layer.weight.requires_grad
    bound = 1 / np.sqrt(400)
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.99 * bound
    np.testing.assert_allclose(W.std(), bound / np.sqrt(3), rtol=0.02)
    assert np.abs(layer.bias.numpy()).max() <= bound
    em.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(400, 300).weight.numpy(), W)  # seeded: reproducible
    assert nn.Linear(3, 2, bias=False).bias is None
    assert [n for n, _ in nn.Linear(3, 2, bias=False).named_parameters()] == ["weight"]


def test_linear_gradcheck_wrt_parameters(rng):
    layer = nn.Linear(3, 2).double()
    x = em.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    assert gradcheck(lambda x, W, b: layer(x), [x, layer.weight, layer.bias])
    assert gradgradcheck(lambda x, W, b: layer(x).tanh(), [x, layer.weight, layer.bias])


def test_linear_errors():
    with pytest.raises(em.ShapeError) as e:
        nn.Linear(784, 50)(em.zeros(100, 28, 28))
    assert str(e.value) == "Linear(in_features=784, out_features=50): expected input (..., 784), got (100, 28, 28)"
    with pytest.raises(em.ShapeError, match=r"linear: expected input \(..., 3\) for a weight of shape \(2, 3\), got \(4, 5\)"):
        F.linear(em.zeros(4, 5), em.zeros(2, 3))
    with pytest.raises(em.ShapeError, match=r"linear: expected a bias of shape \(2,\), got \(3,\)"):
        F.linear(em.zeros(4, 3), em.zeros(2, 3), em.zeros(3))
    with pytest.raises(em.DTypeError, match="linear: expected the weight in the input's dtype float64, got float32"):
        F.linear(em.zeros(4, 3, dtype=em.float64), em.zeros(2, 3))
    with pytest.raises(ValueError, match="Linear: expected in_features to be a positive int, got 0"):
        nn.Linear(0, 3)


def test_flatten_identity_activations(rng):
    x = em.tensor(rng.normal(size=(2, 3, 4, 5)))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Identity(54, unused=True)(x) is x
    v = em.tensor(rng.normal(size=(4, 6)), requires_grad=True)
    assert nn.Flatten()(v) is v and v.flatten(0, 0) is v and v.flatten(-1) is v  # nothing merged: x itself
    assert v.flatten().shape == (24,) and v.flatten().grad_fn is not None


def test_flatten_of_one_axis_returns_the_input_as_torch_does():
    torch = pytest.importorskip("torch")
    t = torch.zeros(3, 4)
    assert torch.flatten(t, 1) is t and torch.flatten(t, 0, 0) is t
    x = em.zeros(3, 4)
    assert em.flatten(x, 1) is x and em.flatten(x, 0, 0) is x
    np.testing.assert_allclose(nn.ReLU()(x).numpy(), np.maximum(x.numpy(), 0))
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-x.numpy())), rtol=1e-6)
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(x.numpy()), rtol=1e-6)


# --------------------------------------------------------------- Module API
def test_parameters_order_and_names():
    model = mlp()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    assert [p.shape for p in model.parameters()] == [(5, 4), (5,), (5,), (5,), (3, 5), (3,)]
    assert list(model.state_dict()) == names[:4] + ["1.running_mean", "1.running_var", "1.num_batches_tracked"] + names[4:]


def test_train_eval_propagation_and_zero_grad(rng):
    model = mlp()
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    x = em.tensor(rng.normal(size=(6, 4)).astype(np.float32))
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())  # eval: no dropout, running stats
    model.train()
    assert all(m.training for m in model.modules())
    F.cross_entropy(model(x), em.tensor([0, 1, 2, 0, 1, 2])).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_float64_keeps_integer_buffers():
    model = mlp().to(em.float64)
    assert all(p.dtype == em.float64 for p in model.parameters())
    assert model[1].running_mean.dtype == em.float64
    assert model[1].num_batches_tracked.dtype == em.int64
    model(em.zeros(3, 4, dtype=em.float64))


def test_state_dict_round_trip_and_strict_errors():
    a, b = mlp(), mlp()
    a(em.randn(8, 4))  # move running statistics away from their initial values
    b.load_state_dict(a.state_dict())
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=k)
    sd = OrderedDict(a.state_dict())
    del sd["4.bias"]
    sd["extra.weight"] = em.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['4.bias'\], unexpected keys \['extra.weight'\]"):
        b.load_state_dict(sd)
    missing, unexpected = b.load_state_dict(sd, strict=False)
    assert missing == ["4.bias"] and unexpected == ["extra.weight"]
    sd = OrderedDict(a.state_dict())
    sd["0.weight"] = em.zeros(4, 5)
    with pytest.raises(em.ShapeError, match=r"0.weight: expected \(5, 4\), got \(4, 5\)"):
        b.load_state_dict(sd)


# ---------------------------------------------------------- PyTorch parity
def test_linear_torch_parity(rng):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Linear(4, 3).double(), torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
        theirs.bias.copy_(torch.tensor(ours.bias.numpy()))
    x, g = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    xe, xt = em.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ye, yt = ours(xe), theirs(xt)
    np.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=1e-12)
    ye.backward(em.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-12)
