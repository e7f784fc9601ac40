"""The fused conv2d epilogues (bias + ReLU + NCHW; ReLU mask + transpose + bias sum), compiled, vs NumPy.

The kernels' CUDA text runs as host C++ under every launch shape of ``compiled_launch``;
the reference is a float64 conv2d (einsum over the reference im2col) followed by ReLU.
"""

from __future__ import annotations

import numpy
import pytest
from compiled_launch import LAUNCH_SHAPES, patch_launches
from host_cuda import compiler
from kernel_specs import cuda_wrappers, references

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++): the CUDA sources cannot run here")

K, R = cuda_wrappers(), references()
TOL = {numpy.float16: 2e-2, numpy.float32: 1e-5, numpy.float64: 1e-12}
# (N, C, H, W, OC, kh, kw, stride, padding)
GEOMETRIES = [
    (2, 3, 7, 5, 4, 3, 3, 2, 1),
    (1, 2, 5, 6, 3, 2, 3, (2, 1), (1, 0)),
    (3, 1, 9, 7, 2, 3, 2, (1, 3), (0, 1)),
    (5, 2, 12, 12, 3, 3, 3, 1, 1),  # more rows than one block's threads: several segments per channel
]


def _close(a, b, dtype):
    numpy.testing.assert_allclose(numpy.asarray(a, float), numpy.asarray(b, float), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.fixture(params=sorted(LAUNCH_SHAPES))
def compiled(request, monkeypatch):
    patch_launches(monkeypatch, request.param)
    return request.param


def _case(geo, dtype, rng):
    n, c, h, w, oc, kh, kw, s, p = geo
    x = rng.normal(size=(n, c, h, w)).astype(dtype)
    W = (rng.normal(size=(oc, c, kh, kw)) / (c * kh * kw) ** 0.5).astype(dtype)
    b = rng.normal(size=oc).astype(dtype)
    col6 = R.conv.im2col(x.astype(numpy.float64), kh, kw, s, p)
    z = numpy.einsum("nckluv,ockl->nouv", col6, W.astype(numpy.float64)) + b.astype(numpy.float64)[:, None, None]
    return x, W, b, s, p, col6, z


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: str(g).replace(" ", ""))
def test_fused_relu_forward_and_backward(compiled, geo, dtype, rng):
    x, W, b, s, p, col6, z = _case(geo, dtype, rng)
    kh, kw = W.shape[2:]
    y = K.conv.conv2d_forward(x, W, b, s, p, xp=numpy, relu=True)
    assert y.dtype == dtype
    _close(y, numpy.maximum(z, 0), dtype)
    assert (y >= 0).all()
    _close(K.conv.conv2d_forward(x, W, b, s, p, xp=numpy, relu=False), z, dtype)
    gy = rng.normal(size=y.shape).astype(dtype)
    gz = numpy.where(y > 0, gy, 0).astype(numpy.float64)  # the mask the backward must apply, from y itself
    for needs in ((True, True, True), (True, False, False), (False, True, True)):
        gx, gW, gb = K.conv.conv2d_backward(x, W, gy, s, p, needs, xp=numpy, y=y)
        if needs[0]:
            ref = R.conv.col2im(numpy.einsum("ockl,nouv->nckluv", W.astype(numpy.float64), gz), x.shape, kh, kw, s, p)
            _close(gx, ref, dtype)
        if needs[1]:
            _close(gW, numpy.einsum("nouv,nckluv->ockl", gz, col6), dtype)
        if needs[2]:
            assert gb.dtype == dtype
            _close(gb, gz.sum(axis=(0, 2, 3)), dtype)
        else:
            assert gb is None


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_gy_rows_bias_partials_cover_every_row_once(monkeypatch, dtype, rng):
    """Odd row and channel counts, and segments that end early or hold nothing, still sum each row once.

    A block-per-item kernel ignores the grid-stride launch shapes, so one shape is enough here.
    """
    patch_launches(monkeypatch, "device_config")
    for n, oc, hw in ((1, 1, (1, 1)), (3, 7, (5, 3)), (4, 2, (17, 19))):
        gy = rng.normal(size=(n, oc) + hw).astype(dtype)
        gy2, gb = K.conv_gemm.gy_rows(gy, None, True, xp=numpy)
        assert numpy.array_equal(gy2, gy.transpose(0, 2, 3, 1).reshape(-1, oc))
        _close(gb, gy.astype(numpy.float64).sum(axis=(0, 2, 3)), dtype)
    gy = rng.normal(size=(5, 3, 1, 1)).astype(dtype)
    for parts in (4, 7):  # 5 rows in segments of 2 (the last one empty) or of 1 (two empty)
        gy2 = numpy.empty((5, 3), dtype=dtype)
        partial = numpy.full((3, parts), numpy.nan, dtype=numpy.float64 if dtype == numpy.float64 else numpy.float32)
        K.conv_gemm.launch_blocks(K.conv_gemm.GY_ROWS_BIAS, dtype, 3 * parts, (gy, gy, gy2, partial, 3, 1, 5, parts, 0))
        _close(partial.sum(axis=1), gy.astype(numpy.float64).sum(axis=(0, 2, 3)), dtype)
        assert (partial[:, -1] == 0).all()


def test_relu_mask_semantics(compiled):
    """Subgradient 0 at y == 0, 0 where y is NaN; a NaN pre-activation stays NaN in the forward."""
    y = numpy.array([[[[0.0, 1.0], [numpy.nan, -0.0]]]], dtype=numpy.float32)
    gy = numpy.full_like(y, 3.0)
    gy2, gb = K.conv_gemm.gy_rows(gy, y, True, xp=numpy)
    assert gy2.reshape(-1).tolist() == [0.0, 3.0, 0.0, 0.0] and gb.tolist() == [3.0]
    x = numpy.array([[[[numpy.nan, -2.0], [2.0, 0.5]]]], dtype=numpy.float32)
    out = K.conv.conv2d_forward(x, numpy.ones((1, 1, 1, 1), numpy.float32), None, 1, 0, xp=numpy, relu=True)
    assert numpy.isnan(out[0, 0, 0, 0]) and out.reshape(-1)[1:].tolist() == [0.0, 2.0, 0.5]
