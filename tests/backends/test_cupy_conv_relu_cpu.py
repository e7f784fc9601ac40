"""``conv2d_relu`` on the fake CUDA device takes the fused kernels (relu=, y=) and agrees with the CPU.

The fake ``cupy`` module runs the kernels' NumPy emulations; the CUDA text of the fused
epilogues is checked in ``cuda_on_cpu/test_conv_relu_epilogues_on_cpu.py``.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
from test_cupy_fake_module_cpu import fake_cupy  # noqa: F401 - a fixture

F = em.nn.functional


@pytest.fixture
def fused_calls(fake_cupy, monkeypatch):
    """Record the keywords the op passes to the CUDA conv entry points."""
    from ember.backends.cupy import conv as cupy_conv

    seen = []
    for name in ("forward", "backward"):
        real = getattr(cupy_conv, f"conv2d_{name}")

        def recorded(*args, _real=real, _name=name, **kwargs):
            seen.append((_name, kwargs.get("relu", False) if _name == "forward" else kwargs.get("y") is not None))
            return _real(*args, **kwargs)

        monkeypatch.setattr(cupy_conv, f"conv2d_{name}", recorded)
    return seen


@pytest.mark.parametrize("bias", [True, False])
def test_fused_conv_relu_on_fake_cuda_matches_cpu(fused_calls, bias):
    rng = numpy.random.default_rng(8)
    x = rng.normal(size=(3, 2, 9, 8)).astype(numpy.float32)
    W = rng.normal(size=(4, 2, 3, 3)).astype(numpy.float32)
    b = rng.normal(size=4).astype(numpy.float32) if bias else None
    out = []
    for device in ("cpu", "cuda"):
        ts = [em.tensor(a, device=device, requires_grad=True) if a is not None else None for a in (x, W, b)]
        y = F.conv2d_relu(*ts, stride=(2, 1), padding=1)
        gy = em.tensor(rng.normal(size=y.shape).astype(numpy.float32) if device == "cpu" else out[0][-1],
                       device=device)
        (y * gy).sum().backward()
        out.append([y.numpy()] + [t.grad.numpy() for t in ts if t is not None] + [gy.numpy()])
    assert fused_calls == [("forward", True), ("backward", True)]
    for got, want in zip(out[1], out[0]):
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_double_backward_on_fake_cuda_matches_cpu(fused_calls):
    rng = numpy.random.default_rng(9)
    x = rng.normal(size=(2, 2, 6, 5)).astype(numpy.float32)
    W = rng.normal(size=(3, 2, 3, 2)).astype(numpy.float32)
    out = []
    for device in ("cpu", "cuda"):
        xt = em.tensor(x, device=device, requires_grad=True)
        Wt = em.tensor(W, device=device, requires_grad=True)
        y = F.conv2d_relu(xt, Wt, em.tensor(W[:, 0, 0, 0].copy(), device=device), padding=(1, 0))
        gx, gW = em.autograd.grad((y * y).sum(), [xt, Wt], create_graph=True)
        if device == "cuda":  # create_graph: the backward was built from Functions, not the fused kernels
            assert fused_calls == [("forward", True)]
        (gx.sum() + (gW * gW).sum()).backward()  # reaches y's node again, at first order: fused
        out.append([t.numpy() for t in (gx, gW, xt.grad, Wt.grad)])
    assert fused_calls == [("forward", True), ("backward", True)]
    for got, want in zip(out[1], out[0]):
        numpy.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_sequential_on_fake_cuda_fuses(fused_calls):
    em.manual_seed(0)
    net = em.nn.Sequential(em.nn.Conv2d(1, 2, 3), em.nn.ReLU()).to("cuda")
    net(em.randn(2, 1, 5, 5).to("cuda")).sum().backward()
    assert fused_calls == [("forward", True), ("backward", True)]
