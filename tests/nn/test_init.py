"""ember.nn.init: distributions' statistics, fan/gain formulas (vs PyTorch), in-place semantics, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.nn import init

SHAPES = [(64, 32), (16, 8, 3, 3), (5, 7, 2), (300, 200)]


@pytest.mark.parametrize("shape", SHAPES)
def test_fan_in_and_fan_out(shape):
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(em.zeros(*shape))
    receptive = int(np.prod(shape[2:]))
    assert (fan_in, fan_out) == (shape[1] * receptive, shape[0] * receptive)


@pytest.mark.parametrize("shape", SHAPES)
def test_fan_matches_torch(shape):
    torch = pytest.importorskip("torch")
    assert init._calculate_fan_in_and_fan_out(em.zeros(*shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))


@pytest.mark.parametrize("args", [("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",),
                                  ("leaky_relu", 0.2), ("selu",)])
def test_gain_matches_torch(args):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args), rel=1e-12)


# (function, kwargs, expected std as a function of (fan_in, fan_out), expected |max| bound or None)
CASES = [
    ("normal_", {"mean": 0.0, "std": 0.5}, lambda fi, fo: 0.5, None),
    ("uniform_", {"a": -0.3, "b": 0.3}, lambda fi, fo: 0.3 / math.sqrt(3), 0.3),
    ("xavier_uniform_", {"gain": 2.0}, lambda fi, fo: 2 * math.sqrt(2 / (fi + fo)), lambda fi, fo: 2 * math.sqrt(6 / (fi + fo))),
    ("xavier_normal_", {}, lambda fi, fo: math.sqrt(2 / (fi + fo)), None),
    ("kaiming_uniform_", {}, lambda fi, fo: math.sqrt(2 / fi), lambda fi, fo: math.sqrt(6 / fi)),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, lambda fi, fo: 1 / math.sqrt(3 * fi), lambda fi, fo: 1 / math.sqrt(fi)),
    ("kaiming_normal_", {}, lambda fi, fo: math.sqrt(2 / fi), None),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}, lambda fi, fo: math.sqrt(2 / fo), None),
    ("kaiming_normal_", {"nonlinearity": "tanh"}, lambda fi, fo: 5 / 3 / math.sqrt(fi), None),
]


@pytest.mark.parametrize("name,kwargs,std,bound", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
def test_init_statistics(name, kwargs, std, bound, shape):
    t = em.empty(*shape)
    out = getattr(init, name)(t, **kwargs)
    assert out is t and t.dtype == em.float32
    fi, fo = init._calculate_fan_in_and_fan_out(t)
    v = t.numpy().astype(np.float64)
    np.testing.assert_allclose(v.std(), std(fi, fo), rtol=0.02)
    assert abs(v.mean() - kwargs.get("mean", 0.0)) < 0.02 * std(fi, fo) * 5
    if bound is not None:
        b = bound if isinstance(bound, float) else bound(fi, fo)
        assert np.abs(v).max() <= b * (1 + 1e-6) and np.abs(v).max() > 0.99 * b


def test_init_in_place_on_parameters_without_graph_and_seeded():
    layer = nn.Linear(20, 10)
    w = layer.weight
    data_id, version = id(w.data), w._version[0]
    em.manual_seed(7)
    init.kaiming_normal_(w)
    assert id(w.data) == data_id and w._version[0] == version + 1
    assert w.requires_grad and w.grad_fn is None and w.grad is None
    first = w.numpy().copy()
    em.manual_seed(7)
    init.kaiming_normal_(w)
    np.testing.assert_array_equal(w.numpy(), first)
    init.constant_(layer.bias, 0.25)
    np.testing.assert_array_equal(layer.bias.numpy(), 0.25)
    init.zeros_(layer.bias)
    assert (layer.bias.numpy() == 0).all()
    init.ones_(w)
    assert (w.numpy() == 1).all()
    h = init.normal_(em.empty(3, dtype=em.float16))
    assert h.dtype == em.float16


def test_init_errors():
    with pytest.raises(em.ShapeError, match=r"expected a tensor of at least 2 dimensions, got shape \(5,\)"):
        init.xavier_uniform_(em.empty(5))
    with pytest.raises(ValueError, match="calculate_gain: unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="kaiming init: expected mode 'fan_in' or 'fan_out', got 'fan_avg'"):
        init.kaiming_uniform_(em.empty(3, 4), mode="fan_avg")
    with pytest.raises(em.DTypeError, match="normal_: expected a floating tensor, got dtype int64"):
        init.normal_(em.zeros(3, dtype=em.int64))
    with pytest.raises(TypeError, match="uniform_: expected a Tensor, got ndarray"):
        init.uniform_(np.zeros(3))
    with pytest.raises(ValueError, match="uniform_: expected a <= b"):
        init.uniform_(em.empty(3), 1, 0)
