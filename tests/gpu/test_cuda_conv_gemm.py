"""GPU checks (marker ``gpu``) of conv2d as im2col + 2-D GEMMs: the kernels and GEMMs on a real device.

Compares ``ember.backends.cupy.conv.conv2d_forward``/``conv2d_backward`` with the NumPy reference
in float64 (exact layouts), float32 (cuBLAS rounding) and float16 (tensor-core GEMMs, loose).
Run: ``PYTHONPATH=. python -m pytest -m gpu -q tests/gpu/test_cuda_conv_gemm.py``.
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

# (N, C, H, W, OC, kh, kw, stride, padding)
GEOMETRIES = [(2, 3, 7, 5, 4, 3, 3, 2, 1), (1, 2, 5, 6, 3, 2, 3, (2, 1), (1, 0)), (3, 1, 9, 7, 2, 3, 2, (1, 3), (0, 1)),
              (64, 16, 28, 28, 32, 5, 5, 1, 2), (100, 30, 24, 24, 16, 3, 3, 1, 1)]
TOL = {numpy.float16: 2e-2, numpy.float32: 1e-4, numpy.float64: 1e-10}


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize("geo", GEOMETRIES, ids=str)
def test_conv2d_2d_gemm_path_equals_reference(geo, dtype):
    import cupy

    from ember.backends.cupy import conv as cupy_conv
    from ember.backends.reference import conv as rc

    n, c, h, w, oc, kh, kw, s, p = geo
    rng = numpy.random.default_rng(0)
    x, W = rng.normal(size=(n, c, h, w)), rng.normal(size=(oc, c, kh, kw)) / numpy.sqrt(c * kh * kw)
    b = rng.normal(size=oc)
    col6 = rc.im2col(x, kh, kw, s, p)
    y_ref = numpy.einsum("nckluv,ockl->nouv", col6, W) + b[:, None, None]
    gy = rng.normal(size=y_ref.shape)
    refs = (y_ref, rc.col2im(numpy.einsum("ockl,nouv->nckluv", W, gy), x.shape, kh, kw, s, p),
            numpy.einsum("nouv,nckluv->ockl", gy, col6), gy.sum(axis=(0, 2, 3)))
    d = [cupy.asarray(a.astype(dtype)) for a in (x, W, b, gy)]
    y = cupy_conv.conv2d_forward(d[0], d[1], d[2], s, p, xp=cupy)
    grads = cupy_conv.conv2d_backward(d[0], d[1], d[3], s, p, (True, True, True), xp=cupy)
    for got, want in zip((y, *grads), refs):
        scale = max(1.0, float(numpy.abs(want).max()))
        numpy.testing.assert_allclose(cupy.asnumpy(got).astype(float), want, rtol=TOL[dtype],
                                      atol=TOL[dtype] * scale)
