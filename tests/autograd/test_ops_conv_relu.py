"""``conv2d_relu`` on the CPU: gradients (first and second order), the unfused equivalence, torch parity,
the fallback for backends without the fused kernels, errors, and where models fuse it."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from conftest import assert_matches_torch, first_input_chain
from ember.autograd.ops import conv as conv_op
from ember.autograd.ops import conv_relu as op
from ember.errors import DTypeError, ShapeError
from ember.nn import fusion

F = em.nn.functional
# (x shape, W shape, bias, stride, padding)
CASES = [
    ((2, 2, 6, 5), (3, 2, 3, 2), True, 1, 0),
    ((1, 3, 7, 7), (2, 3, 3, 3), True, 2, 1),
    ((2, 1, 5, 6), (4, 1, 2, 3), False, (2, 1), (1, 0)),
]


def _tensors(case, dtype=em.float64, seed=0):
    xs, ws, bias, _, _ = case
    rng = numpy.random.default_rng(seed)
    make = lambda shape: em.tensor(rng.normal(size=shape), dtype=dtype, requires_grad=True)  # noqa: E731
    return make(xs), make(ws), make((ws[0],)) if bias else None


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gradcheck_and_gradgradcheck_float64(case):
    x, W, b = _tensors(case)
    s, p = case[3], case[4]
    inputs = [t for t in (x, W, b) if t is not None]
    fn = lambda *ts: F.conv2d_relu(*ts, stride=s, padding=p) if b is not None else F.conv2d_relu(  # noqa: E731
        ts[0], ts[1], None, stride=s, padding=p)
    assert em.autograd.gradcheck(fn, inputs)
    assert em.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_equals_conv2d_then_relu_bit_for_bit_on_cpu(case):
    """The CPU path is the composition itself: same values and gradients exactly."""
    out = []
    for fused in (True, False):
        x, W, b = _tensors(case, em.float32, seed=1)
        s, p = case[3], case[4]
        y = F.conv2d_relu(x, W, b, s, p) if fused else F.relu(F.conv2d(x, W, b, s, p))
        assert y.grad_fn.name() == ("RectifiedConvolution2dBackward" if fused else "RectifierBackward")
        (y * y).sum().backward()
        out.append([y.numpy()] + [t.grad.numpy() for t in (x, W, b) if t is not None])
    for a, c in zip(*out):
        assert numpy.array_equal(a, c)


def test_torch_parity():
    torch = pytest.importorskip("torch")
    for case in CASES:
        s, p = case[3], case[4]
        assert_matches_torch(lambda x, W, b: F.conv2d_relu(x, W, b, s, p),
                             lambda x, W, b: torch.relu(torch.nn.functional.conv2d(x, W, b, stride=s, padding=p)),
                             _tensors(case, seed=2))


def test_backend_without_fused_kernels_gets_plain_calls(monkeypatch):
    """A backend offering conv2d_forward/backward without FUSES_RELU never receives relu= or y=."""
    kernels = conv_op.kernels(_cpu_backend())
    seen = []

    def forward(x, W, b, stride, padding, *, xp):
        seen.append("forward")
        return conv_op.Convolution2d.compute(_cpu_backend(), x, W, b, stride=stride, padding=padding)

    def backward(x, W, gy, stride, padding, needs, *, xp):
        seen.append("backward")
        return (conv_op.TransposedConvolution2d.compute(_cpu_backend(), gy, W, x_shape=x.shape, stride=stride,
                                                        padding=padding),
                conv_op.Convolution2dWeightGrad.compute(_cpu_backend(), x, gy, kernel_size=W.shape[2:],
                                                        stride=stride, padding=padding),
                gy.sum(axis=(0, 2, 3)))

    monkeypatch.setattr(kernels, "conv2d_forward", forward, raising=False)
    monkeypatch.setattr(kernels, "conv2d_backward", backward, raising=False)
    monkeypatch.setattr(kernels, "FUSES_RELU", False, raising=False)  # (Numba serves the flag lazily: set, not delete)
    assert not op.fuses_relu(_cpu_backend())
    x, W, b = _tensors(CASES[1], seed=4)
    y = F.conv2d_relu(x, W, b, 2, 1)
    (y * y).sum().backward()
    assert seen == ["forward", "backward"]
    monkeypatch.undo()
    x2, W2, b2 = _tensors(CASES[1], seed=4)
    y2 = F.relu(F.conv2d(x2, W2, b2, 2, 1))
    (y2 * y2).sum().backward()
    for a, c in ((y, y2), (x.grad, x2.grad), (W.grad, W2.grad), (b.grad, b2.grad)):
        numpy.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-12, atol=1e-12)


def _cpu_backend():
    from ember.backends.device import backend_of

    return backend_of(numpy.zeros(1))


def test_bad_inputs_name_the_op():
    x, W, b = _tensors(CASES[0], em.float32)
    with pytest.raises(ShapeError, match=r"conv2d_relu: expected x with 2 channels .* \(3, 2, 3, 2\)"):
        F.conv2d_relu(x[:, :1], W, b)
    with pytest.raises(ShapeError, match=r"conv2d_relu: expected b of shape \(3,\)"):
        F.conv2d_relu(x, W, b[:2])
    with pytest.raises(DTypeError, match="conv2d_relu: expected x, W and b of one dtype"):
        F.conv2d_relu(x, W.double(), b)
    with pytest.raises(ShapeError, match="conv2d_relu: expected a kernel no larger than the padded input"):
        F.conv2d_relu(x[:, :, :2], W, b)
    with pytest.raises(ValueError, match="stride"):
        F.conv2d_relu(x, W, b, stride=0)


def test_general_options_run_unfused():
    x, W, b = _tensors(((1, 4, 7, 7), (2, 2, 3, 3), True, 1, 1), em.float64, seed=5)
    y = F.conv2d_relu(x, W, b, padding="same", dilation=2, groups=2)
    ref = F.relu(F.conv2d(x, W, b, padding="same", dilation=2, groups=2))
    assert numpy.array_equal(y.numpy(), ref.numpy()) and y.grad_fn.name() == "RectifierBackward"


def _net():
    nn = em.nn
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 2), nn.ReLU(),
                         nn.Flatten())


def test_sequential_fuses_conv_relu_pairs_and_matches_unfused(monkeypatch):
    x = em.tensor(numpy.random.default_rng(6).normal(size=(2, 2, 6, 6)), dtype=em.float32)
    runs = []
    for fuse in (True, False):
        monkeypatch.setattr(fusion, "FUSE_CONV_RELU", fuse)
        em.manual_seed(0)
        net = _net()
        y = net(x)
        names = first_input_chain(y)
        y.sum().backward()
        runs.append((names, [y.numpy()] + [p.grad.numpy() for p in net.parameters()]))
    assert runs[0][0].count("RectifiedConvolution2dBackward") == 2 and "RectifierBackward" not in runs[0][0]
    assert runs[1][0].count("RectifiedConvolution2dBackward") == 0
    for a, c in zip(runs[0][1], runs[1][1]):
        assert numpy.array_equal(a, c)


def test_hooks_or_subclasses_turn_fusion_off():
    net = _net()
    seen = []
    handle = net[1].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    y = net(em.randn(1, 2, 6, 6))
    assert seen == [(1, 3, 6, 6)]  # the ReLU module ran: its hook saw its output
    handle.remove()
    assert fusion.fusable(net[0], net[1])

    class MyReLU(em.nn.ReLU):
        pass

    assert not fusion.fusable(net[0], MyReLU())
    assert not fusion.fusable(em.nn.Conv2d(2, 2, 3, dilation=2), net[1])
    assert y.shape == (1, 16)


def test_simple_convnet_step_uses_the_fused_op():
    model = em.models.SimpleConvNet(input_dim=(1, 10, 10), conv_param={"filter_num": 3, "filter_size": 3, "pad": 1,
                                                                      "stride": 1}, hidden_size=6, output_size=4)
    names = first_input_chain(model(em.randn(2, 1, 10, 10)))
    assert "RectifiedConvolution2dBackward" in names and "Convolution2dBackward" not in names


def test_autocast_runs_it_in_float16():
    x, W, b = _tensors(CASES[0], em.float32, seed=7)
    with em.amp.autocast():
        y = F.conv2d_relu(x, W, b)
    assert y.dtype == em.float16 and em.amp.op_policy(op.RectifiedConvolution2d) == "float16"
    y.float().sum().backward()
    assert W.grad.dtype == em.float32 and b.grad.dtype == em.float32
