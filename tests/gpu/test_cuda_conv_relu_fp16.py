"""GPU checks (marker ``gpu``): the fused conv2d+ReLU kernels, float16 GEMM accumulation, AMP weight casts.

Run: ``PYTHONPATH=. python -m pytest -m gpu -q tests/gpu/test_cuda_conv_relu_fp16.py``.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not em.cuda.is_available(),
                       reason='needs CuPy and a CUDA GPU (pip install -e ".[gpu]" on an NVIDIA machine)'),
]
F = em.nn.functional
TOL = {numpy.float16: 3e-2, numpy.float32: 1e-4, numpy.float64: 1e-10}


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize("geo", [(2, 3, 7, 5, 4, 3, 3, 2, 1), (100, 30, 24, 24, 16, 3, 3, 1, 1)], ids=str)
def test_fused_conv_relu_on_cuda_equals_cpu_float64(geo, dtype):
    """The fused kernel against a float64 conv on the CPU, its gradients taken through the device's own mask.

    In float16 a pre-activation within rounding of 0 can land on either side of it, so where the
    device's ``y > 0`` differs from float64's the whole window's gradient legitimately differs; the
    test checks that this happens only where float64's pre-activation is that small, then compares
    the gradients of float64's conv under the device's mask.
    """
    n, c, h, w, oc, kh, kw, s, p = geo
    rng = numpy.random.default_rng(0)
    arrays = [rng.normal(size=(n, c, h, w)), rng.normal(size=(oc, c, kh, kw)) / numpy.sqrt(c * kh * kw),
              rng.normal(size=oc)]
    gy = numpy.random.default_rng(1).normal(size=(n, oc, (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1))
    ts = [em.tensor(a.astype(dtype), device="cuda", requires_grad=True) for a in arrays]
    y = F.conv2d_relu(*ts, stride=s, padding=p)
    assert y.grad_fn.name() == "RectifiedConvolution2dBackward"
    (y * em.tensor(gy.astype(dtype), device="cuda")).sum().backward()
    got = [y.numpy()] + [t.grad.numpy() for t in ts]
    mask = got[0] > 0
    refs = [em.tensor(a, requires_grad=True) for a in arrays]
    pre = F.conv2d(*refs, stride=s, padding=p)
    near_zero = TOL[dtype] * max(1.0, float(numpy.abs(pre.numpy()).max()))
    flipped = mask != (pre.numpy() > 0)
    assert numpy.all(numpy.abs(pre.numpy()[flipped]) <= near_zero), "the device's ReLU mask differs far from 0"
    (pre * em.tensor(gy * mask)).sum().backward()
    want = [numpy.maximum(pre.numpy(), 0)] + [t.grad.numpy() for t in refs]
    for g, wnt in zip(got, want):
        scale = max(1.0, float(numpy.abs(wnt).max()))
        numpy.testing.assert_allclose(g.astype(numpy.float64), wnt, rtol=TOL[dtype], atol=TOL[dtype] * scale)


def test_float16_2d_matmul_accumulates_in_float32():
    """4096 products of 1: a float16 accumulator stalls at 2048, float32 accumulation (GemmEx) gives 4096."""
    import cupy

    a = cupy.ones((8, 4096), dtype=cupy.float16)
    b = cupy.ones((4096, 8), dtype=cupy.float16)
    c = a @ b
    assert c.dtype == cupy.float16
    assert float(c[0, 0]) == 4096.0


def test_autocast_casts_each_weight_once_on_cuda(monkeypatch):
    from ember.autograd.ops import convert

    shapes = []
    real = convert.Cast.forward
    monkeypatch.setattr(convert.Cast, "forward",
                        staticmethod(lambda ctx, x, dtype: (shapes.append(tuple(x.shape)), real(ctx, x, dtype))[1]))
    em.manual_seed(0)
    model = em.models.DeepConvNet().to("cuda")
    with em.amp.autocast():
        model(em.randn(4, 1, 28, 28).to("cuda"))
        model(em.randn(4, 1, 28, 28).to("cuda"))
    for p in model.parameters():
        assert shapes.count(tuple(p.shape)) == 1 or p.ndim == 1  # biases may share a shape with another
