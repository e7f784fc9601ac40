"""``linear_relu`` on the CPU: gradients (first and second order), the unfused equivalence bit for bit, torch
parity, the composition for backends without the fused kernels, errors, autocast, and where models fuse it."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from conftest import assert_matches_torch, first_input_chain
from ember.autograd.ops import linear_relu as op
from ember.errors import DTypeError, ShapeError
from ember.nn import fusion

F = em.nn.functional
# (x shape, W shape, bias)
CASES = [((5, 4), (3, 4), True), ((2, 3, 4), (6, 4), True), ((4,), (2, 4), False), ((7, 9), (5, 9), False)]


def _tensors(case, dtype=em.float64, seed=0):
    xs, ws, bias = case
    rng = numpy.random.default_rng(seed)
    make = lambda shape: em.tensor(rng.normal(size=shape), dtype=dtype, requires_grad=True)  # noqa: E731
    return make(xs), make(ws), make((ws[0],)) if bias else None


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gradcheck_and_gradgradcheck_float64(case):
    x, W, b = _tensors(case)
    inputs = [t for t in (x, W, b) if t is not None]
    fn = (lambda *ts: F.linear_relu(*ts)) if b is not None else (lambda xx, ww: F.linear_relu(xx, ww))
    assert em.autograd.gradcheck(fn, inputs)
    assert em.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("shape", [(100, 784, 50), (128, 512, 512), (3, 5, 4)], ids=str)
def test_equals_linear_then_relu_bit_for_bit_on_cpu(shape):
    """The TwoLayerNet and MLP shapes (products on the pool) and a tiny one: same values and gradients exactly."""
    m, k, n = shape
    out = []
    for fused in (True, False):
        rng = numpy.random.default_rng(1)
        x, W, b = (em.tensor(rng.normal(size=s), dtype=em.float32, requires_grad=True) for s in ((m, k), (n, k), (n,)))
        y = F.linear_relu(x, W, b) if fused else F.relu(F.linear(x, W, b))
        assert y.grad_fn.name() == ("RectifiedAffineBackward" if fused else "RectifierBackward")
        (y * em.tensor(rng.normal(size=(m, n)), dtype=em.float32)).sum().backward()
        out.append([y.numpy(), x.grad.numpy(), W.grad.numpy(), b.grad.numpy()])
    assert (out[0][0] == 0).any() and (out[0][0] > 0).any()  # the mask did something
    for a, c in zip(*out):
        assert numpy.array_equal(a, c)


def test_torch_parity():
    torch = pytest.importorskip("torch")
    for case in CASES:
        assert_matches_torch(F.linear_relu, lambda x, W, b: torch.relu(torch.nn.functional.linear(x, W, b)),
                             _tensors(case, seed=2))


def test_backend_without_linear_kernels_gets_the_composition(monkeypatch):
    """A backend whose nn module has no linear_forward / linear_grad_output runs the product, bias and ReLU
    kernels it does have, with the same results."""
    from ember.backends.device import backend_of

    kernels = backend_of(numpy.zeros(1)).nn
    want = _run_case(CASES[0])
    seen = []
    real_relu = kernels.relu_backward
    for name in ("linear_forward", "linear_grad_output"):
        monkeypatch.setattr(kernels, name, None, raising=False)
    monkeypatch.setattr(kernels, "relu_backward", lambda *a, **k: seen.append("relu_backward") or real_relu(*a, **k))
    got = _run_case(CASES[0])
    assert seen == ["relu_backward"]
    for a, c in zip(got, want):
        numpy.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def _run_case(case):
    x, W, b = _tensors(case, seed=4)
    y = F.linear_relu(x, W, b)
    (y * y).sum().backward()
    return [y.numpy(), x.grad.numpy(), W.grad.numpy(), b.grad.numpy()]


def test_bad_inputs_name_the_op():
    x, W, b = _tensors(CASES[0], em.float32)
    with pytest.raises(ShapeError, match=r"linear_relu: expected input \(\.\.\., 4\) for a weight of shape \(3, 4\)"):
        F.linear_relu(x[:, :2], W, b)
    with pytest.raises(ShapeError, match=r"linear_relu: expected a bias of shape \(3,\)"):
        F.linear_relu(x, W, b[:2])
    with pytest.raises(DTypeError, match="linear_relu: expected the weight in the input's dtype float32"):
        F.linear_relu(x, W.double(), b)
    with pytest.raises(TypeError, match="linear_relu: expected the input to be a Tensor"):
        F.linear_relu(x.numpy(), W, b)


def test_sequential_fuses_linear_relu_pairs_and_matches_unfused(monkeypatch):
    x = em.tensor(numpy.random.default_rng(6).normal(size=(8, 12)), dtype=em.float32)
    runs = []
    for fuse in (True, False):
        monkeypatch.setattr(fusion, "FUSE_LINEAR_RELU", fuse)
        em.manual_seed(0)
        nn = em.nn
        net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 9), nn.ReLU(), nn.Linear(9, 3))
        y = net(x)
        names = first_input_chain(y)
        y.sum().backward()
        runs.append((names, [y.numpy()] + [p.grad.numpy() for p in net.parameters()]))
    assert runs[0][0] == ["AffineBackward", "RectifiedAffineBackward", "RectifiedAffineBackward"]
    assert "RectifiedAffineBackward" not in runs[1][0]
    for a, c in zip(runs[0][1], runs[1][1]):
        assert numpy.array_equal(a, c)


def test_hooks_subclasses_or_other_inputs_turn_fusion_off():
    nn = em.nn
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    seen = []
    handle = net[1].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    assert net(em.randn(2, 4)).grad_fn.name() == "RectifierBackward" and seen == [(2, 3)]
    handle.remove()
    assert fusion.linear_fusable(net[0], net[1])
    assert net(em.randn(2, 4)).grad_fn.name() == "RectifiedAffineBackward"

    class MyReLU(nn.ReLU):
        pass

    assert not fusion.linear_fusable(net[0], MyReLU())
    assert not fusion.linear_fusable(nn.Conv2d(1, 1, 1), net[1])
    with pytest.raises(ShapeError, match=r"Linear\(in_features=4, out_features=3\): expected input \(\.\.\., 4\)"):
        net(em.randn(2, 5))  # a misfit input gets the layer's own message


@pytest.mark.parametrize("build", [
    lambda: em.models.TwoLayerNet((12,), 5, 3, activation="relu"),
    lambda: em.models.MultiLayerNet((12,), [6, 5], 3),
    lambda: em.models.SimpleConvNet(input_dim=(1, 10, 10), conv_param={"filter_num": 3, "filter_size": 3, "pad": 1,
                                                                       "stride": 1}, hidden_size=6, output_size=4),
], ids=["two_layer_net", "multi_layer_net", "simple_convnet"])
def test_book_models_use_the_fused_op(build):
    model = build()
    x = em.randn(2, 1, 10, 10) if isinstance(model, em.models.SimpleConvNet) else em.randn(2, 12)
    names = first_input_chain(model(x))
    assert "RectifiedAffineBackward" in names and "RectifierBackward" not in names


def test_a_sigmoid_two_layer_net_is_not_fused():
    y = em.models.TwoLayerNet((12,), 5, 3, activation="sigmoid")(em.randn(2, 12))
    assert y.grad_fn.next_functions[0][0].name() == "LogisticBackward"


def test_autocast_runs_it_in_float16():
    x, W, b = _tensors(CASES[0], em.float32, seed=7)
    with em.amp.autocast():
        y = F.linear_relu(x, W, b)
    assert y.dtype == em.float16 and em.amp.op_policy(op.RectifiedAffine) == "float16"
    y.float().sum().backward()
    assert W.grad.dtype == em.float32 and b.grad.dtype == em.float32
