"""Stride-1 conv2d as one GEMM per kernel tap (``ember.backends.numba.conv_shifted``).

Compared with the im2col reference of ``test_numba_conv_fused`` within a
float32/float64 tolerance: the per-tap GEMMs sum in another order, so the
results are not bit-equal to im2col.  Small shapes reach this path by lowering
the channel and width thresholds; the default thresholds are checked on
DeepConvNet's layer geometry.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("numba", reason="the Numba kernels need numba")

import ember as em
from ember.autograd import gradcheck
from ember.backends.numba import conv as nc
from ember.backends.numba import conv_fused
from ember.nn import functional as F

from test_numba_conv_fused import _batched  # noqa: E402  (the im2col reference; tests/backends is on sys.path)

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
# (x shape, W shape, bias, padding): odd, even and non-square kernels, padding of 0 to 2 and unequal
CASES = [
    ((3, 2, 7, 6), (4, 2, 3, 3), True, (1, 1)),
    ((2, 3, 9, 7), (2, 3, 3, 2), False, (0, 2)),
    ((2, 4, 8, 8), (5, 4, 5, 5), True, (2, 2)),
    ((1, 1, 6, 9), (3, 1, 1, 1), True, (0, 0)),
    ((5, 3, 4, 5), (2, 3, 2, 4), True, (1, 0)),
]


@pytest.fixture
def always_shifted(monkeypatch):
    """Every stride-1 convolution takes the per-tap GEMMs, whatever its channels and width."""
    monkeypatch.setattr(conv_fused, "MIN_SHIFTED_CHANNELS", 1)
    monkeypatch.setattr(conv_fused, "MAX_SHIFTED_WIDTH_RATIO", float("inf"))
    monkeypatch.setattr(conv_fused, "SHIFTED_BACKWARD", True)  # the backward too, whatever this machine's BLAS
    calls = []
    real = conv_fused._shifted

    def spy(*args, **kwargs):  # "f"/"b" for each forward/backward call that took the per-tap slices
        chosen = real(*args, **kwargs)
        if chosen:
            calls.append({"conv2d_forward": "f", "conv2d_backward": "b"}[sys._getframe(1).f_code.co_name])
        return chosen

    # Spy on the Python-level choice: the slices themselves run inside compiled regions on Numba's pool,
    # where a Python stand-in for conv_shifted's kernels would not even compile.
    monkeypatch.setattr(conv_fused, "_shifted", spy)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,ws,bias,padding", CASES)
def test_per_tap_gemms_match_im2col(rng, always_shifted, xs, ws, bias, padding, dtype):
    x = rng.normal(size=xs).astype(dtype)
    W = rng.normal(size=ws).astype(dtype)
    b = rng.normal(size=ws[0]).astype(dtype) if bias else None
    y = conv_fused.conv2d_forward(x, W, b, (1, 1), padding)
    gy = rng.normal(size=y.shape).astype(dtype)
    got = (y, *conv_fused.conv2d_backward(x, W, gy, (1, 1), padding, (True, True, True)))
    for name, g, want in zip(("y", "gx", "gW", "gb"), got, _batched(x, W, b, gy, (1, 1), padding)):
        assert g.dtype == dtype and g.shape == want.shape, name
        np.testing.assert_allclose(g, want, err_msg=name, **TOL[dtype])
    assert always_shifted == ["f", *["b"] * (len(always_shifted) - 1)] and len(always_shifted) >= 2


def test_relu_epilogue_mask_and_nan(rng, always_shifted):
    x, W, b = rng.normal(size=(3, 2, 6, 6)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    plain = conv_fused.conv2d_forward(x, W, b, (1, 1), (1, 1))
    fused = conv_fused.conv2d_forward(x, W, b, (1, 1), (1, 1), relu=True)
    np.testing.assert_array_equal(fused, np.maximum(plain, 0))
    gy = rng.normal(size=plain.shape)
    masked = conv_fused.conv2d_backward(x, W, gy, (1, 1), (1, 1), (True, True, True), y=fused)
    reference = conv_fused.conv2d_backward(x, W, np.where(plain > 0, gy, 0), (1, 1), (1, 1), (True, True, True))
    for got, want in zip(masked, reference):
        np.testing.assert_array_equal(got, want)
    x[0, 0, 2, 2] = np.nan
    y = conv_fused.conv2d_forward(x, W, b, (1, 1), (1, 1), relu=True)
    assert np.isnan(y[0, :, 1:4, 1:4]).all() and np.isfinite(y[1:]).all()  # NaN reaches its 3x3 neighbourhood only


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True), (False, True, True)])
def test_only_the_needed_grads_are_computed(rng, always_shifted, needs):
    x, W, gy = rng.normal(size=(2, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(2, 3, 5, 5))
    got = conv_fused.conv2d_backward(x, W, gy, (1, 1), (1, 1), needs)
    full = conv_fused.conv2d_backward(x, W, gy, (1, 1), (1, 1), (True, True, True))
    for need, g, f in zip(needs, got, full):
        assert (g is None) != need
        if need:
            np.testing.assert_array_equal(g, f)


@pytest.mark.parametrize("on_pool", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_slices_on_three_threads_equal_one_slice(rng, always_shifted, monkeypatch, on_pool, relu):
    """Slices on Numba's pool or on Python threads, with the fused ReLU's mask or without, match one slice."""
    x, W, b = rng.normal(size=(7, 3, 6, 7)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    y1 = conv_fused.conv2d_forward(x, W, b, (1, 1), (1, 1), relu=relu)
    gy = rng.normal(size=y1.shape)
    mask = y1 if relu else None
    g1 = conv_fused.conv2d_backward(x, W, gy, (1, 1), (1, 1), (True, True, True), y=mask)
    monkeypatch.setattr(conv_fused, "MIN_SLICE_ELEMENTS", 0)
    monkeypatch.setattr(conv_fused, "batch_workers", lambda: 3)
    monkeypatch.setattr(conv_fused, "POOL_SLICES", on_pool)
    np.testing.assert_array_equal(conv_fused.conv2d_forward(x, W, b, (1, 1), (1, 1), relu=relu), y1)
    g3 = conv_fused.conv2d_backward(x, W, gy, (1, 1), (1, 1), (True, True, True), y=mask)
    np.testing.assert_array_equal(g3[0], g1[0])  # gx: image by image, whatever the slices
    for a, b_ in zip(g3[1:], g1[1:]):  # gW, gb: per-slice partials summed in slice order
        np.testing.assert_allclose(a, b_, rtol=1e-13, atol=1e-13)


def test_empty_batch(rng, always_shifted):
    x, W = np.zeros((0, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3))
    assert conv_fused.conv2d_forward(x, W, None, (1, 1), (1, 1)).shape == (0, 3, 5, 5)
    gx, gW, gb = conv_fused.conv2d_backward(x, W, np.zeros((0, 3, 5, 5)), (1, 1), (1, 1), (True, True, True))
    assert gx.shape == x.shape and not gW.any() and gW.shape == W.shape and not gb.any()


@pytest.mark.parametrize("c,h,pad,stride,expected", [
    (16, 28, 1, 1, True),   # DeepConvNet conv2: width ratio 30/28
    (32, 14, 2, 1, True),   # conv4: 18/16
    (64, 8, 1, 1, False),   # conv6: 10/8, the junk columns cost more than im2col
    (1, 28, 1, 1, False),   # conv1: one input channel, one-deep GEMMs
    (16, 28, 1, 2, False),  # stride 2: windows are not contiguous runs
])
def test_the_default_thresholds_on_deepconvnet_layers(monkeypatch, c, h, pad, stride, expected):
    ow = (h + 2 * pad - 3) // stride + 1
    assert conv_fused._shifted(c, h, stride, stride, pad, ow) is expected
    for small_kernels in (True, False):  # the backward per tap only where OpenBLAS has small-matrix kernels
        monkeypatch.setattr(conv_fused, "SHIFTED_BACKWARD", small_kernels)
        assert conv_fused._shifted(c, h, stride, stride, pad, ow, backward=True) is (expected and small_kernels)
        assert conv_fused._shifted(c, h, stride, stride, pad, ow) is expected


def test_gradcheck_and_double_backward_through_the_op(rng, always_shifted):
    from ember.backends import use_cpu_kernels

    with use_cpu_kernels("numba"):
        x = em.tensor(rng.normal(size=(2, 3, 5, 4)), requires_grad=True)
        W = em.tensor(rng.normal(size=(2, 3, 3, 2)), requires_grad=True)
        b = em.tensor(rng.normal(size=2), requires_grad=True)
        for padding in [0, 1, (2, 1)]:
            assert gradcheck(lambda x, W, b: F.conv2d(x, W, b, padding=padding), [x, W, b])
        assert gradcheck(lambda x, W, b: F.conv2d_relu(x, W, b, padding=1), [x, W, b])
        assert "f" in always_shifted and "b" in always_shifted
        assert conv_fused.conv2d_forward is nc.conv2d_forward
