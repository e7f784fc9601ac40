"""conv2d on the fake CUDA device takes the 2-D GEMM path and agrees with the CPU op.

The fake ``cupy`` module runs the kernels' NumPy emulations, so this checks the op's
wiring (``backend.conv.conv2d_forward``/``conv2d_backward``, which gradients are asked
for, the bias) and the layouts end to end; the kernels' CUDA text is checked in
``cuda_on_cpu/``.  Double backward keeps the Function-based path and is checked too.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.autograd.ops import conv as conv_op
from test_cupy_fake_module_cpu import fake_cupy  # noqa: F401 - a fixture

_ORIGINAL_COMPUTE = conv_op.Convolution2d.compute

# (N, C, H, W, OC, kh, kw, stride, padding, bias)
GEOMETRIES = [
    (2, 3, 7, 5, 4, 3, 3, 2, 1, True),
    (1, 2, 5, 6, 3, 2, 3, (2, 1), (1, 0), False),
    (3, 1, 9, 7, 2, 3, 2, (1, 3), (0, 1), True),
    (2, 2, 8, 11, 5, 3, 3, (3, 2), (1, 2), True),
    (2, 3, 4, 4, 2, 1, 1, 1, 0, False),
]


@pytest.fixture
def calls(fake_cupy, monkeypatch):
    """Count the 2-D path's entry points; make the batched-matmul compute path fail if reached."""
    from ember.backends.cupy import conv as cupy_conv

    seen = {"forward": 0, "backward": 0}
    for name in ("forward", "backward"):
        real = getattr(cupy_conv, f"conv2d_{name}")

        def counted(*args, _real=real, _name=name, **kwargs):
            seen[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(cupy_conv, f"conv2d_{name}", counted)

    real_compute = conv_op.Convolution2d.compute

    def cpu_only(backend, *args, **kwargs):
        if backend.device_type == "cuda":
            raise AssertionError("conv2d on CUDA reached the batched-matmul compute path")
        return real_compute(backend, *args, **kwargs)

    monkeypatch.setattr(conv_op.Convolution2d, "compute", staticmethod(cpu_only))
    return seen


def _run(device, x, W, b, stride, padding, gy, needs_x=True):
    xt = em.tensor(x, device=device, requires_grad=needs_x)
    Wt = em.tensor(W, device=device, requires_grad=True)
    bt = em.tensor(b, device=device, requires_grad=True) if b is not None else None
    y = em.nn.functional.conv2d(xt, Wt, bt, stride=stride, padding=padding)
    (y * em.tensor(gy, device=device)).sum().backward()
    grads = [t.grad.numpy() if t.grad is not None else None for t in (xt, Wt, bt) if t is not None]
    return [y.numpy()] + grads


@pytest.mark.parametrize("geo", GEOMETRIES, ids=str)
def test_conv2d_forward_backward_on_fake_cuda_match_cpu(calls, geo):
    n, c, h, w, oc, kh, kw, s, p, has_bias = geo
    rng = numpy.random.default_rng(3)
    x = rng.normal(size=(n, c, h, w)).astype(numpy.float32)
    W = rng.normal(size=(oc, c, kh, kw)).astype(numpy.float32)
    b = rng.normal(size=oc).astype(numpy.float32) if has_bias else None
    cpu_y = em.nn.functional.conv2d(em.tensor(x), em.tensor(W), stride=s, padding=p)
    gy = rng.normal(size=cpu_y.shape).astype(numpy.float32)
    for needs_x in (True, False):
        calls["forward"] = calls["backward"] = 0
        cuda = _run("cuda", x, W, b, s, p, gy, needs_x)
        assert calls == {"forward": 1, "backward": 1}
        assert (cuda[1] is None) == (not needs_x)
        cpu = _run("cpu", x, W, b, s, p, gy, needs_x)
        assert calls == {"forward": 1, "backward": 1}  # the CPU op never asks the CUDA kernels
        for got, want in zip(cuda, cpu):
            if want is None:
                assert got is None
            else:
                numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_double_backward_on_fake_cuda_keeps_the_function_path(calls, monkeypatch):
    """Under create_graph the backward is built from Functions (today's path) and matches the CPU.

    The adjoint Functions' own first-order backwards call ``Convolution2d.compute`` as today.
    """
    monkeypatch.setattr(conv_op.Convolution2d, "compute", staticmethod(_ORIGINAL_COMPUTE))
    rng = numpy.random.default_rng(4)
    x = rng.normal(size=(2, 2, 6, 5)).astype(numpy.float32)
    W = rng.normal(size=(3, 2, 3, 2)).astype(numpy.float32)
    b = rng.normal(size=3).astype(numpy.float32)
    out = []
    for device in ("cpu", "cuda"):
        xt = em.tensor(x, device=device, requires_grad=True)
        Wt = em.tensor(W, device=device, requires_grad=True)
        y = em.nn.functional.conv2d(xt, Wt, em.tensor(b, device=device), stride=(2, 1), padding=(1, 0))
        gx, gW = em.autograd.grad((y * y).sum(), [xt, Wt], create_graph=True)
        assert calls["backward"] == 0  # create_graph: the backward is built from Functions
        (gx.sum() + (gW * gW).sum()).backward()
        out.append([t.numpy() for t in (gx, gW, xt.grad, Wt.grad)])
    for got, want in zip(out[1], out[0]):
        numpy.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_grouped_dilated_conv_on_fake_cuda_matches_cpu(calls):
    """The general path feeds channel slices (non-contiguous x, W, b, gy) through the 2-D path."""
    rng = numpy.random.default_rng(5)
    x = rng.normal(size=(2, 4, 9, 8)).astype(numpy.float32)
    W = rng.normal(size=(6, 2, 3, 2)).astype(numpy.float32)
    b = rng.normal(size=6).astype(numpy.float32)
    out = []
    for device in ("cpu", "cuda"):
        ts = [em.tensor(a, device=device, requires_grad=True) for a in (x, W, b)]
        y = em.nn.functional.conv2d(*ts, stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2)
        (y * y).sum().backward()
        out.append([y.numpy()] + [t.grad.numpy() for t in ts])
    assert calls["forward"] == 2 and calls["backward"] == 2  # one per group
    for got, want in zip(out[1], out[0]):
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
