"""PyTorch's extra activations: torch parity (values and grads), layers, bad input.

gradcheck and gradgradcheck run through the op registry (tests/autograd/test_gradcheck_registry.py).
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
import ember.nn.functional as F
from ember import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional

CASES = [
    ("gelu", {}, {}),
    ("gelu", {"approximate": "tanh"}, {"approximate": "tanh"}),
    ("silu", {}, {}),
    ("mish", {}, {}),
    ("softplus", {}, {}),
    ("softplus", {"beta": 2.0, "threshold": 1.5}, {"beta": 2.0, "threshold": 1.5}),
    ("logsigmoid", {}, {}),
    ("elu", {}, {}),
    ("elu", {"alpha": 0.5}, {"alpha": 0.5}),
    ("selu", {}, {}),
    ("leaky_relu", {}, {}),
    ("leaky_relu", {"negative_slope": 0.2}, {"negative_slope": 0.2}),
    ("hardtanh", {}, {}),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, {"min_val": -2.0, "max_val": 0.5}),
    ("relu6", {}, {}),
    ("hardsigmoid", {}, {}),
    ("hardswish", {}, {}),
]


def _inputs(dtype):
    rng = numpy.random.default_rng(0)
    # wide range, the kinks themselves (0, +-1, +-3, 6) and large magnitudes for overflow
    x = numpy.concatenate([rng.uniform(-8, 8, 40), [0.0, 1.0, -1.0, 3.0, -3.0, 6.0, -40.0, 40.0, 100.0, -100.0]])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("name,kw,tkw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_torch_values_and_grads(name, kw, tkw, dtype):
    x = _inputs(dtype)
    g = numpy.random.default_rng(1).normal(size=x.shape).astype(dtype)
    xe = em.tensor(x, requires_grad=True)
    ye = getattr(F, name)(xe, **kw)
    (ye * em.tensor(g)).sum().backward()
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(TF, name)(xt, **tkw)
    (yt * torch.tensor(g)).sum().backward()
    tol = 1e-5 if dtype == numpy.float32 else 1e-12
    assert ye.dtype == x.dtype
    numpy.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    # torch's hardsigmoid grad multiplies by a float32 1/6 even in float64 (a 3e-8 relative difference)
    gtol = 1e-7 if name == "hardsigmoid" and dtype == numpy.float64 else tol * 10
    numpy.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=gtol, atol=gtol)


@pytest.mark.parametrize("name,kw,tkw", CASES[:6], ids=[c[0] for c in CASES[:6]])
def test_second_derivative_matches_torch(name, kw, tkw):
    x = numpy.random.default_rng(2).uniform(-4, 4, (3, 5))
    xe = em.tensor(x, requires_grad=True)
    (gx,) = em.autograd.grad(getattr(F, name)(xe, **kw).sum(), [xe], create_graph=True)
    gx.sum().backward()
    xt = torch.tensor(x, requires_grad=True)
    (gxt,) = torch.autograd.grad(getattr(TF, name)(xt, **tkw).sum(), [xt], create_graph=True)
    gxt.sum().backward()
    numpy.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-9)


LAYERS = [
    (nn.GELU, {}, torch.nn.GELU, {}),
    (nn.GELU, {"approximate": "tanh"}, torch.nn.GELU, {"approximate": "tanh"}),
    (nn.SiLU, {}, torch.nn.SiLU, {}),
    (nn.Mish, {}, torch.nn.Mish, {}),
    (nn.Softplus, {"beta": 3.0}, torch.nn.Softplus, {"beta": 3.0}),
    (nn.LogSigmoid, {}, torch.nn.LogSigmoid, {}),
    (nn.ELU, {"alpha": 2.0}, torch.nn.ELU, {"alpha": 2.0}),
    (nn.SELU, {}, torch.nn.SELU, {}),
    (nn.LeakyReLU, {"negative_slope": 0.1}, torch.nn.LeakyReLU, {"negative_slope": 0.1}),
    (nn.Hardtanh, {"min_val": -0.5, "max_val": 2.0}, torch.nn.Hardtanh, {"min_val": -0.5, "max_val": 2.0}),
    (nn.ReLU6, {}, torch.nn.ReLU6, {}),
    (nn.Hardsigmoid, {}, torch.nn.Hardsigmoid, {}),
    (nn.Hardswish, {}, torch.nn.Hardswish, {}),
]


@pytest.mark.parametrize("layer,kw,tlayer,tkw", LAYERS, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(LAYERS)])
def test_layers_match_torch(layer, kw, tlayer, tkw):
    x = numpy.random.default_rng(3).uniform(-5, 5, (2, 3, 4)).astype(numpy.float32)
    ye = layer(**kw)(em.tensor(x))
    yt = tlayer(**tkw)(torch.tensor(x))
    numpy.testing.assert_allclose(ye.numpy(), yt.numpy(), rtol=1e-5, atol=1e-6)
    assert layer.__name__ in repr(layer(**kw))


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_rejects_integer_and_non_tensor_input(name):
    with pytest.raises(TypeError, match=name):
        getattr(F, name)(em.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match=name):
        getattr(F, name)(numpy.ones(3))


def test_bad_options_name_the_op():
    x = em.randn(3)
    with pytest.raises(ValueError, match="gelu.*'exact'"):
        F.gelu(x, approximate="exact")
    with pytest.raises(ValueError, match="hardtanh.*min_val=2"):
        F.hardtanh(x, 2.0, 1.0)
    with pytest.raises(ValueError, match="softplus.*beta=0"):
        F.softplus(x, beta=0)


def test_float16_keeps_dtype_and_is_finite():
    x = em.tensor(numpy.array([-30.0, -1.0, 0.0, 2.0, 30.0], dtype=numpy.float16))
    for name in ("gelu", "silu", "mish", "softplus", "logsigmoid", "elu", "selu", "hardswish"):
        y = getattr(F, name)(x)
        assert y.dtype == numpy.float16, name
        assert numpy.isfinite(y.numpy()).all(), name
