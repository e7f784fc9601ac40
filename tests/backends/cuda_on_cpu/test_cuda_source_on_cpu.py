"""The CUDA kernel sources themselves, compiled as host C++ and run on the CPU, against the references.

Every wrapper of the CuPy backend runs here with its launches routed to the compiled kernel
text (``compiled_launch``), over several launch shapes: the device's own configuration, one
block, many small blocks with an idle one, and a grid far smaller than the work.  So a wrong
index, comparison or reduction in a template fails on a machine without a GPU.
"""

from __future__ import annotations

import numpy
import pytest
from compiled_launch import LAUNCH_SHAPES, patch_launches
from host_cuda import compiler
from kernel_specs import all_kernel_specs, cuda_wrappers, references

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++): the CUDA sources cannot run here")

K, R = cuda_wrappers(), references()
FLOATS = [numpy.float16, numpy.float32, numpy.float64]
TOL = {numpy.float16: 4e-3, numpy.float32: 1e-5, numpy.float64: 1e-12}

# (N, C, H, W, kh, kw, stride, padding): unequal strides, unequal padding, rectangular kernels,
# stride larger than the kernel, a kernel as large as the padded input.  The reference has no dilation.
CONV_GEOMETRIES = [
    (2, 3, 7, 5, 3, 3, 2, 1),
    (1, 2, 5, 6, 2, 3, (2, 1), (1, 0)),
    (2, 1, 9, 7, 3, 2, (1, 3), (0, 1)),
    (1, 2, 8, 11, 3, 3, (3, 2), (1, 2)),
    (1, 1, 6, 9, 2, 4, (2, 3), (2, 0)),
    (2, 2, 4, 4, 2, 2, 2, 0),
    (1, 1, 5, 5, 5, 5, 1, 2),
    (1, 3, 7, 8, 1, 1, (3, 1), 0),
]
# pooling needs padding <= kernel // 2
POOL_GEOMETRIES = [
    (2, 3, 7, 5, 3, 3, 2, 1),
    (1, 2, 9, 7, 3, 2, (1, 2), (1, 1)),
    (2, 1, 8, 11, 2, 4, (2, 3), (0, 2)),
    (1, 2, 6, 6, 4, 2, (3, 1), (2, 0)),
    (2, 2, 4, 4, 2, 2, 2, 0),
]


def _close(a, b, dtype):
    numpy.testing.assert_allclose(numpy.asarray(a, float), numpy.asarray(b, float), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.fixture(params=sorted(LAUNCH_SHAPES))
def compiled(request, monkeypatch):
    """Route launches to the compiled kernels with one of the launch shapes."""
    patch_launches(monkeypatch, request.param)
    return request.param


def _geometry_id(g) -> str:
    return str(g).replace(" ", "")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geo", CONV_GEOMETRIES, ids=_geometry_id)
def test_im2col_and_col2im(compiled, geo, dtype, rng):
    n, c, h, w, kh, kw, s, p = geo
    x = rng.normal(size=(n, c, h, w)).astype(dtype)
    col = K.conv.im2col(x, kh, kw, s, p)
    assert numpy.array_equal(col, R.conv.im2col(x, kh, kw, s, p))  # a pure gather: exact
    filled = K.conv.im2col(x, kh, kw, s, p, pad_value=-7.5)
    assert numpy.array_equal(filled, R.conv.im2col(x, kh, kw, s, p, pad_value=-7.5))
    g = rng.normal(size=col.shape).astype(dtype)
    _close(K.conv.col2im(g, x.shape, kh, kw, s, p), R.conv.col2im(g, x.shape, kh, kw, s, p), dtype)


def _rows(col6):
    """``(N, C, KH, KW, OH, OW)`` columns in the 2-D GEMM layout ``(N*OH*OW, C*KH*KW)``."""
    n, c, kh, kw, oh, ow = col6.shape
    return col6.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)


@pytest.mark.parametrize("index", ["int32", "int64"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geo", CONV_GEOMETRIES, ids=_geometry_id)
def test_row_layout_im2col_and_col2im(compiled, geo, dtype, index, rng, monkeypatch):
    """im2col in both index widths (64-bit for buffers past ``INT32_INDEX_LIMIT`` elements; forced here)."""
    if index == "int64":
        monkeypatch.setattr(K.conv_gemm, "INT32_INDEX_LIMIT", 0)
    n, c, h, w, kh, kw, s, p = geo
    x = rng.normal(size=(n, c, h, w)).astype(dtype)
    col6 = R.conv.im2col(x, kh, kw, s, p)
    assert numpy.array_equal(K.conv_gemm.im2col_rows(x, kh, kw, s, p), _rows(col6))  # a pure gather: exact
    g6 = rng.normal(size=col6.shape).astype(dtype)
    g = numpy.ascontiguousarray(_rows(g6))
    _close(K.conv_gemm.col2im_rows(g, x.shape, kh, kw, s, p), R.conv.col2im(g6, x.shape, kh, kw, s, p), dtype)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("geo", CONV_GEOMETRIES, ids=_geometry_id)
def test_conv2d_as_2d_gemms(compiled, geo, dtype, rng):
    """Forward (im2col + GEMM + bias/NCHW epilogue) and backward (gy transpose, GEMMs, col2im) vs the reference."""
    n, c, h, w, kh, kw, s, p = geo
    x = rng.normal(size=(n, c, h, w)).astype(dtype)
    W = rng.normal(size=(4, c, kh, kw)).astype(dtype)
    b = rng.normal(size=4).astype(dtype)
    col6 = R.conv.im2col(x, kh, kw, s, p)
    y_ref = numpy.einsum("nckluv,ockl->nouv", col6, W) + b[:, None, None]
    y = K.conv.conv2d_forward(x, W, b, s, p, xp=numpy)
    _close(y, y_ref, dtype)
    _close(K.conv.conv2d_forward(x, W, None, s, p, xp=numpy), y_ref - b[:, None, None], dtype)
    gy = rng.normal(size=y.shape).astype(dtype)
    gx, gW, gb = K.conv.conv2d_backward(x, W, gy, s, p, (True, True, True), xp=numpy)
    _close(gx, R.conv.col2im(numpy.einsum("ockl,nouv->nckluv", W, gy), x.shape, kh, kw, s, p), dtype)
    _close(gW, numpy.einsum("nouv,nckluv->ockl", gy, col6), dtype)
    _close(gb, gy.sum(axis=(0, 2, 3)), dtype)
    assert K.conv.conv2d_backward(x, W, gy, s, p, (False, True), xp=numpy)[0::2] == (None, None)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("geo", POOL_GEOMETRIES, ids=_geometry_id)
def test_pooling(compiled, geo, dtype, rng):
    n, c, h, w, kh, kw, s, p = geo
    x = rng.normal(size=(n, c, h, w)).astype(dtype)
    x[0, 0, 0, :2] = 5.0  # a tie inside one window: the first maximum must win
    x[-1, -1, 1, 1] = numpy.nan  # a NaN wins its windows and its argmax points at it
    y, am = K.pool.max_pool2d_forward(x, kh, kw, s, p)
    y_ref, am_ref = R.pool.max_pool2d_forward(x, kh, kw, s, p)
    assert numpy.array_equal(y, y_ref, equal_nan=True) and numpy.array_equal(am, am_ref)
    gy = rng.normal(size=y.shape).astype(dtype)
    _close(K.pool.max_pool2d_backward(gy, am, x.shape, kh, kw, s, p),
           R.pool.max_pool2d_backward(gy, am_ref, x.shape, kh, kw, s, p), dtype)
    x = numpy.nan_to_num(x)
    _close(K.pool.avg_pool2d_forward(x, kh, kw, s, p), R.pool.avg_pool2d_forward(x, kh, kw, s, p), dtype)
    _close(K.pool.avg_pool2d_backward(gy, x.shape, kh, kw, s, p),
           R.pool.avg_pool2d_backward(gy, x.shape, kh, kw, s, p), dtype)


def test_max_pool_all_neg_inf_window(compiled):
    x = numpy.full((1, 1, 4, 4), -numpy.inf, dtype=numpy.float32)
    x[0, 0, 3, 2] = 7.0
    y, am = K.pool.max_pool2d_forward(x, 2, 2, 2, 0)
    y_ref, am_ref = R.pool.max_pool2d_forward(x, 2, 2, 2, 0)
    assert numpy.array_equal(y, y_ref) and numpy.array_equal(am, am_ref)


def test_softmax_cross_entropy_bad_index_gives_nan_not_an_out_of_bounds_read(compiled, rng):
    # the range check runs later (at a sync), so meanwhile the kernel must stay inside the row
    x = rng.normal(size=(6, 5)).astype(numpy.float32)
    t = numpy.array([0, -1, 4, 5, -100, 2])
    loss, p, _ = K.nn.softmax_cross_entropy_forward(x, t)
    good = numpy.array([0, 2, 5])
    assert numpy.isnan(loss[[1, 3, 4]]).all()
    _close(loss[good], R.nn.softmax_cross_entropy_forward(x[good], t[good])[0], numpy.float32)
    _close(p, R.nn.softmax_cross_entropy_forward(x, numpy.zeros(6, int))[1], numpy.float32)


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_cross_entropy(compiled, dtype, rng):
    x = (rng.normal(size=(37, 5)) * 4).astype(dtype)
    x[3, 2] = x[3, 4] = x[3].max() + 1  # a tied maximum
    t = rng.integers(0, 5, 37)
    ours, ref = K.nn.softmax_cross_entropy_forward(x, t), R.nn.softmax_cross_entropy_forward(x, t)
    for a, b in zip(ours, ref):
        assert a.dtype == b.dtype and a.shape == b.shape
        _close(a, b, dtype)
    for g in (numpy.float64(0.25), rng.normal(size=37)):
        _close(K.nn.softmax_cross_entropy_backward(ours[1], t, g), R.nn.softmax_cross_entropy_backward(ref[1], t, g),
               dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_activation_backwards(compiled, dtype, rng):
    y = rng.normal(size=(9, 7)).astype(dtype)
    y[::2, ::3] = 0  # ReLU outputs are exactly 0 where the input was negative: the gradient there is 0
    gy = rng.normal(size=(9, 7)).astype(dtype)
    for name in ("relu_backward", "sigmoid_backward", "tanh_backward"):
        a, b = getattr(K.nn, name)(y, gy), getattr(R.nn, name)(y, gy)
        assert a.dtype == b.dtype, name
        _close(a, b, dtype)


@pytest.mark.parametrize("dtype", FLOATS[1:])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 5, 7), (40, 2, 9), (300, 2)])
def test_batch_norm(compiled, shape, dtype, rng):
    # (40, 2, 9) and (300, 2) have more values per channel than threads per block; the rest fewer.
    x = (rng.normal(size=shape) * 2 + 1).astype(dtype)
    w, b = rng.normal(size=shape[1]).astype(dtype), rng.normal(size=shape[1]).astype(dtype)
    ours, ref = K.nn.batch_norm_forward_train(x, w, b, 1e-5), R.nn.batch_norm_forward_train(x, w, b, 1e-5)
    for a, r in zip(ours, ref):
        _close(a, r, dtype)
    gy = rng.normal(size=shape).astype(dtype)
    for training in (True, False):
        ga = K.nn.batch_norm_backward(x, gy, ours[1], ours[3], w, training)
        gr = R.nn.batch_norm_backward(x, gy, ref[1], ref[3], w, training)
        for a, r in zip(ga, gr):
            assert a.dtype == r.dtype
            _close(a, r, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_sgd(compiled, dtype, rng):
    for kw in ({"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": False},
               {"momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-2, "nesterov": True, "maximize": False},
               {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.0, "nesterov": False, "maximize": True}):
        w, g = rng.normal(size=(5, 7)).astype(dtype), rng.normal(size=(5, 7)).astype(dtype)
        buf = None if kw["momentum"] == 0 else rng.normal(size=(5, 7)).astype(dtype)
        for first in (True, False):
            a = [w.copy(), None if buf is None else buf.copy()]
            b = [w.copy(), None if buf is None else buf.copy()]
            K.optim.sgd_update(a[0], g, a[1], lr=0.1, first_step=first, **kw)
            R.optim.sgd_update(b[0], g, b[1], lr=0.1, first_step=first, **kw)
            for u, v in zip(a, b):
                if u is not None:
                    _close(u, v, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_adam(compiled, dtype, rng):
    for wd, decoupled, amsgrad, beta1, maximize in ((0.0, False, False, 0.9, False), (1e-2, True, True, 0.3, True),
                                                   (1e-2, False, True, 0.9, False)):
        arrays = [rng.normal(size=(3, 11)).astype(dtype) for _ in range(3)]
        arrays += [numpy.abs(rng.normal(size=(3, 11))).astype(dtype) for _ in range(2)]
        a, b = [v.copy() for v in arrays], [v.copy() for v in arrays]
        for step in (1, 5):
            for fn, s in ((K.optim.adam_update, a), (R.optim.adam_update, b)):
                fn(s[0], s[1], s[2], s[3], s[4] if amsgrad else None, step=step, lr=1e-2, beta1=beta1, beta2=0.999,
                   eps=1e-8, weight_decay=wd, decoupled_weight_decay=decoupled, maximize=maximize)
        for u, v in zip(a, b):
            _close(u, v, dtype)


def test_every_kernel_runs_compiled(monkeypatch, rng):
    """The tests above reach every KernelSpec through the compiled path (none is left to emulation)."""
    seen: set = set()
    patch_launches(monkeypatch, "device_config", seen)
    x = rng.normal(size=(2, 3, 6, 5))
    K.conv.col2im(K.conv.im2col(x, 3, 3, 2, 1), x.shape, 3, 3, 2, 1)
    W = x[:, :, :3, :3].copy()
    y = K.conv.conv2d_forward(x, W, W[:, 0, 0, 0].copy(), (2, 1), (1, 0), xp=numpy)
    K.conv.conv2d_backward(x, W, y, (2, 1), (1, 0), (True, True, True), xp=numpy)
    K.conv.conv2d_backward(x, W, y, (2, 1), (1, 0), (True, True, False), xp=numpy)
    y, am = K.pool.max_pool2d_forward(x, 2, 2, 2, 0)
    K.pool.max_pool2d_backward(y, am, x.shape, 2, 2, 2, 0)
    K.pool.avg_pool2d_backward(K.pool.avg_pool2d_forward(x, 2, 2, 2, 0), x.shape, 2, 2, 2, 0)
    _, p, _ = K.nn.softmax_cross_entropy_forward(x[:, 0, 0], numpy.array([0, 4]))
    K.nn.softmax_cross_entropy_backward(p, numpy.array([0, 4]), 0.5)
    for name in ("relu_backward", "sigmoid_backward", "tanh_backward"):
        getattr(K.nn, name)(x, x)
    _, mean, _, inv_std = K.nn.batch_norm_forward_train(x, None, None, 1e-5)
    K.nn.batch_norm_backward(x, x, mean, inv_std, None, True)
    w = x.reshape(-1).copy()
    K.optim.sgd_update(w, w.copy(), w.copy(), lr=0.1, momentum=0.9, dampening=0, weight_decay=0, nesterov=False,
                       maximize=False, first_step=False)
    K.optim.adam_update(w, w.copy(), w.copy(), w.copy() ** 2, None, step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                        weight_decay=0, decoupled_weight_decay=False, maximize=False)
    K.optim.sgd_update_many([w], [w.copy()], [None], lr=0.1, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                            maximize=False, first_step=False)
    K.optim.adam_update_many([w], [w.copy()], [w.copy()], [w.copy() ** 2], [None], step=1, lr=1e-3, beta1=0.9,
                             beta2=0.999, eps=1e-8, weight_decay=0, decoupled_weight_decay=False, maximize=False)
    K.optim_captured.sgd_update_many([w], [w.copy()], [w.copy()], numpy.array([0.1, 0.0, 1.0, 0.0]), momentum=0.9,
                                     dampening=0, weight_decay=0, nesterov=False, maximize=False, xp=numpy)
    K.optim_captured.adam_update_many([w], [w.copy()], [w.copy()], [w.copy() ** 2], [None], numpy.zeros(7), beta1=0.9,
                                      beta2=0.999, eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                                      maximize=False, xp=numpy)
    K.philox.dropout_mask((3, 5), 0.3, R.philox.new_state(1), numpy.float32)
    assert seen == {s.name for s in all_kernel_specs()}
