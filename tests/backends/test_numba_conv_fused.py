"""The Numba whole-conv slices (``ember.backends.numba.conv_fused``) against the batched im2col path.

Both run the same per-image products in the same order, so they agree to float
rounding (bit for bit when NumPy's and SciPy's BLAS builds pick the same kernel,
as they did on AVX-512 cores); the checks use the usual estimate of a dot
product's rounding error (sqrt(depth) x unit roundoff x the sum of the terms'
sizes), so that another BLAS kernel's summation order cannot fail them.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba", reason="the Numba kernels need numba")
pytest.importorskip("scipy", reason="BLAS inside Numba comes from scipy")

import ember as em
from ember.autograd import gradcheck
from ember.autograd.ops import conv as conv_ops
from ember.backends.cpu import batch_split
from ember.backends.numba import conv as nc
from ember.backends.numba import conv_fused
from ember.nn import functional as F

# (x shape, W shape, bias, stride, padding)
CASES = [
    ((3, 2, 7, 6), (4, 2, 3, 3), True, (1, 1), (1, 1)),
    ((2, 3, 9, 7), (2, 3, 3, 2), False, (2, 1), (0, 2)),
    ((1, 1, 8, 8), (5, 1, 3, 3), True, (1, 1), (0, 0)),
    ((2, 2, 5, 5), (3, 2, 5, 5), True, (1, 1), (2, 2)),
    ((4, 3, 6, 6), (2, 3, 1, 1), True, (2, 2), (0, 0)),
    ((2, 64, 8, 8), (64, 64, 3, 3), True, (1, 1), (1, 1)),  # DeepConvNet's conv6: row blocks under a 2^19 cut
]
IDS = [f"x{c[0]}-W{c[1]}-s{c[3]}-p{c[4]}".replace(" ", "") for c in CASES]


def _batched(x, W, b, gy, stride, padding):
    """The batched reference: im2col + matmul per image, col2im of ``W2^T gy``, summed ``gy col^T``."""
    n, oc = x.shape[0], W.shape[0]
    kh, kw = W.shape[2:]
    col = nc.im2col(x, kh, kw, stride, padding)
    oh, ow = col.shape[4:]
    cols = col.reshape(n, -1, oh * ow)
    W2 = W.reshape(oc, -1)
    y = np.matmul(W2, cols).reshape(n, oc, oh, ow)
    if b is not None:
        y += b.reshape(1, oc, 1, 1)
    g2 = gy.reshape(n, oc, oh * ow)
    gx = nc.col2im(np.matmul(W2.T, g2).reshape(col.shape), x.shape, kh, kw, stride, padding)
    gW = np.matmul(g2, cols.transpose(0, 2, 1)).sum(axis=0).reshape(W.shape)
    return y, gx, gW, gy.sum(axis=(0, 2, 3))


@pytest.mark.parametrize("block_macs", [0, 1 << 19], ids=["one-call", "row-blocks"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,ws,bias,stride,padding", CASES, ids=IDS)
def test_slices_match_the_batched_path(rng, monkeypatch, xs, ws, bias, stride, padding, dtype, block_macs):
    from ember.backends.numba import conv_im2col_slices

    monkeypatch.setattr(conv_im2col_slices, "BLOCK_MACS", block_macs)  # both cuts, whatever this machine's BLAS
    x = rng.normal(size=xs).astype(dtype)
    W = rng.normal(size=ws).astype(dtype)
    b = rng.normal(size=ws[0]).astype(dtype) if bias else None
    y = conv_fused.conv2d_forward(x, W, b, stride, padding)
    gy = rng.normal(size=y.shape).astype(dtype)
    gx, gW, gb = conv_fused.conv2d_backward(x, W, gy, stride, padding, (True, True, True))
    # Each result is a sum of `depth` products that both sides round in orders the BLAS kernels pick.  The
    # difference stays within sqrt(depth) * eps * (the sum of the terms' sizes, which the same path on |x|,
    # |W|, |gy| computes): the usual estimate for rounding errors of random sign.  Measured on SkylakeX and
    # Haswell kernels: at most 0.15 of it.
    sizes = _batched(np.abs(x), np.abs(W), None if b is None else np.abs(b), np.abs(gy), stride, padding)
    per_channel = xs[0] * y.shape[2] * y.shape[3]  # gW's and gb's sums run over the images and positions
    depths = (ws[1] * ws[2] * ws[3], ws[0] * ws[2] * ws[3], per_channel, per_channel)
    eps = np.finfo(dtype).eps
    wants = _batched(x, W, b, gy, stride, padding)
    for name, got, want, size, depth in zip(("y", "gx", "gW", "gb"), (y, gx, gW, gb), wants, sizes, depths):
        assert got.dtype == dtype and got.shape == want.shape, name
        bound = np.sqrt(depth) * eps * size + np.finfo(dtype).tiny
        excess = np.abs(got.astype(np.float64) - want) - bound
        assert excess.max() <= 0, f"{name}: off by {excess.max()} beyond the rounding bound"


def test_large_image_products_are_cut_into_row_blocks_where_blas_has_small_kernels():
    from ember.backends.numba import blas_gemm
    from ember.backends.numba.conv_im2col_slices import BLOCK_MACS, SMALL_GEMM_MACS, _row_blocks

    assert 64 * 576 * 64 > SMALL_GEMM_MACS  # the conv6 case above runs the blocked path
    assert _row_blocks(64, 576, 64, SMALL_GEMM_MACS) == 5 and _row_blocks(576, 64, 64, SMALL_GEMM_MACS) == 5
    assert _row_blocks(16, 9, 784, SMALL_GEMM_MACS) == 1  # a small product stays one call
    assert _row_blocks(2, 10**6, 10, SMALL_GEMM_MACS) == 2  # never more blocks than rows
    assert _row_blocks(64, 576, 64, 0) == 1  # no cut: each block would pack the columns again
    assert BLOCK_MACS == (SMALL_GEMM_MACS if blas_gemm.SMALL_MATRIX_KERNELS else 0)


def test_relu_epilogue_and_masked_backward(rng):
    x, W, b = rng.normal(size=(3, 2, 6, 6)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    plain = conv_fused.conv2d_forward(x, W, b, (1, 1), (1, 1))
    fused = conv_fused.conv2d_forward(x, W, b, (1, 1), (1, 1), relu=True)
    np.testing.assert_array_equal(fused, np.maximum(plain, 0))
    assert (plain < 0).any() and (plain > 0).any()
    gy = rng.normal(size=plain.shape)
    masked = conv_fused.conv2d_backward(x, W, gy, (1, 1), (1, 1), (True, True, True), y=fused)
    reference = conv_fused.conv2d_backward(x, W, np.where(plain > 0, gy, 0), (1, 1), (1, 1), (True, True, True))
    for got, want in zip(masked, reference):
        np.testing.assert_array_equal(got, want)


def test_nan_propagates_through_the_relu_epilogue():
    x = np.ones((1, 1, 3, 3))
    x[0, 0, 1, 1] = np.nan
    y = conv_fused.conv2d_forward(x, np.ones((1, 1, 1, 1)), None, (1, 1), (0, 0), relu=True)
    assert np.isnan(y[0, 0, 1, 1]) and np.isfinite(np.delete(y.ravel(), 4)).all()


NEEDS = [(True, False, False), (False, True, False), (False, False, True), (False, True, True)]


@pytest.mark.parametrize("needs", NEEDS)
def test_only_the_needed_grads_are_computed(rng, needs):
    x, W, gy = rng.normal(size=(2, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(2, 3, 5, 5))
    got = conv_fused.conv2d_backward(x, W, gy, (1, 1), (1, 1), needs)
    full = conv_fused.conv2d_backward(x, W, gy, (1, 1), (1, 1), (True, True, True))
    for need, g, f in zip(needs, got, full):
        if need:
            np.testing.assert_array_equal(g, f)
        else:
            assert g is None


@pytest.mark.parametrize("on_pool", [True, False])
def test_many_slices_on_three_threads_equal_one_slice(rng, monkeypatch, on_pool):
    """The slices on Numba's pool (``prange_slices``) or on ember's Python threads give the one-slice results."""
    from ember.backends.numba import prange_slices

    x, W, b = rng.normal(size=(7, 2, 6, 7)), rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    y1 = conv_fused.conv2d_forward(x, W, b, (2, 1), (1, 0))
    gy = rng.normal(size=y1.shape)
    g1 = conv_fused.conv2d_backward(x, W, gy, (2, 1), (1, 0), (True, True, True))
    monkeypatch.setattr(conv_fused, "MIN_SLICE_ELEMENTS", 0)
    monkeypatch.setattr(conv_fused, "batch_workers", lambda: 3)
    monkeypatch.setattr(conv_fused, "POOL_SLICES", on_pool)
    calls = []
    real_map = batch_split.map_slices
    monkeypatch.setattr(conv_fused, "map_slices", lambda fn, ss, w: calls.append((len(ss), w)) or real_map(fn, ss, w))
    real_run = prange_slices.run_split
    monkeypatch.setattr(prange_slices, "run_split",
                        lambda driver, args, ss, w: calls.append((len(ss), w)) or real_run(driver, args, ss, w))
    y3 = conv_fused.conv2d_forward(x, W, b, (2, 1), (1, 0))
    g3 = conv_fused.conv2d_backward(x, W, gy, (2, 1), (1, 0), (True, True, True))
    assert calls == [(6, 3), (6, 3)]  # 3 workers * SLICES_PER_WORKER (2) slices of the 7 samples
    np.testing.assert_array_equal(y3, y1)
    np.testing.assert_array_equal(g3[0], g1[0])
    np.testing.assert_allclose(g3[1], g1[1], rtol=1e-13, atol=1e-13)  # gW: partials summed per slice
    np.testing.assert_allclose(g3[2], gy.sum(axis=(0, 2, 3)), rtol=1e-13, atol=1e-13)  # gb: the same


def test_empty_batch(rng):
    x, W = np.zeros((0, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3))
    assert conv_fused.conv2d_forward(x, W, None, (1, 1), (1, 1)).shape == (0, 3, 5, 5)
    gx, gW, gb = conv_fused.conv2d_backward(x, W, np.zeros((0, 3, 5, 5)), (1, 1), (1, 1), (True, True, True))
    assert gx.shape == x.shape and np.array_equal(gW, np.zeros(W.shape)) and np.array_equal(gb, np.zeros(3))


def test_supported_takes_float32_and_float64_numpy_arrays_of_one_dtype():
    f4, f8 = np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 3, 3))
    assert conv_fused.conv2d_supported(f4, f4) and conv_fused.conv2d_supported(f8, f8, np.zeros(1))
    assert not conv_fused.conv2d_supported(f4, f8)
    assert not conv_fused.conv2d_supported(f8, f8, np.zeros(1, np.float32))
    assert not conv_fused.conv2d_supported(f4.astype(np.float16), f4.astype(np.float16))
    assert not conv_fused.conv2d_supported(f8.tolist(), f8)


def test_the_op_runs_the_slices_on_numba_and_gradchecks(rng, monkeypatch):
    """Through ``F.conv2d`` on the Numba backend: the whole-conv entry points run, and gradients are right."""
    from ember.backends import use_cpu_kernels

    with use_cpu_kernels("numba"):
        assert conv_ops.kernels(em.backends.get_backend("cpu")).conv2d_forward is conv_fused.conv2d_forward
        calls = []
        real_forward, real_backward = conv_fused.conv2d_forward, conv_fused.conv2d_backward
        # Spies on the kernel module the op reads (another test may have pinned these names there).
        monkeypatch.setattr(nc, "conv2d_forward", lambda *a, **k: calls.append("f") or real_forward(*a, **k))
        monkeypatch.setattr(nc, "conv2d_backward", lambda *a, **k: calls.append("b") or real_backward(*a, **k))
        x = em.tensor(rng.normal(size=(2, 2, 5, 4)), requires_grad=True)
        W = em.tensor(rng.normal(size=(3, 2, 3, 2)), requires_grad=True)
        b = em.tensor(rng.normal(size=3), requires_grad=True)
        for stride, padding in [(1, 0), (2, 1), ((2, 1), (1, 0))]:
            assert gradcheck(lambda x, W, b: F.conv2d(x, W, b, stride=stride, padding=padding), [x, W, b])
        assert "f" in calls and "b" in calls


def test_float16_on_numba_takes_the_batched_path(rng):
    from ember.backends import use_cpu_kernels

    with use_cpu_kernels("numba"):
        x = rng.normal(size=(2, 2, 5, 5))
        W = rng.normal(size=(3, 2, 3, 3))
        y16 = F.conv2d(em.tensor(x.astype(np.float16)), em.tensor(W.astype(np.float16)), padding=1)
        y64 = F.conv2d(em.tensor(x), em.tensor(W), padding=1)
        assert y16.dtype == em.float16
        np.testing.assert_allclose(y16.numpy().astype(np.float64), y64.numpy(), rtol=2e-2, atol=5e-2)
        r16 = F.conv2d_relu(em.tensor(x.astype(np.float16)), em.tensor(W.astype(np.float16)), padding=1)
        np.testing.assert_allclose(r16.numpy().astype(np.float64), np.maximum(y64.numpy(), 0), rtol=2e-2, atol=5e-2)


def test_conv2d_relu_on_numba_fuses_the_relu(rng, monkeypatch):
    """``F.conv2d_relu`` hands ``relu=True`` / ``y=`` to the slices and matches conv2d + relu."""
    from ember.backends import use_cpu_kernels

    with use_cpu_kernels("numba"):
        seen = []
        real_forward = conv_fused.conv2d_forward
        spy = lambda *a, **k: seen.append(k.get("relu")) or real_forward(*a, **k)  # noqa: E731
        monkeypatch.setattr(nc, "conv2d_forward", spy)
        x = em.tensor(rng.normal(size=(2, 2, 6, 5)), requires_grad=True)
        W = em.tensor(rng.normal(size=(3, 2, 3, 3)), requires_grad=True)
        b = em.tensor(rng.normal(size=3), requires_grad=True)
        assert gradcheck(lambda x, W, b: F.conv2d_relu(x, W, b, padding=1), [x, W, b])
        assert True in seen


def test_without_scipy_the_numba_kernels_offer_no_whole_conv(monkeypatch):
    """No SciPy (no BLAS for Numba): the entry points are absent, so conv2d keeps its batched path."""
    import sys

    import ember.backends.numba as numba_kernels

    monkeypatch.delattr(numba_kernels, "conv_fused")
    for name in nc._WHOLE_CONV:  # names pinned on the module by another test's monkeypatch.undo
        if name in vars(nc):
            monkeypatch.delattr(nc, name)
    monkeypatch.setitem(sys.modules, "ember.backends.numba.conv_fused", None)  # import raises ImportError
    assert getattr(nc, "conv2d_forward", None) is None
    assert conv_ops._whole_conv_kernel(nc, "conv2d_backward", np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 1, 1))) is None


def test_non_contiguous_inputs_equal_contiguous_ones(rng):
    x = rng.normal(size=(3, 5, 6, 2)).transpose(0, 3, 1, 2)  # (3, 2, 5, 6), not C-contiguous
    W = rng.normal(size=(3, 3, 2, 4)).transpose(3, 2, 0, 1)  # (4, 2, 3, 3)
    y = conv_fused.conv2d_forward(x, W, None, (1, 1), (1, 1))
    np.testing.assert_array_equal(y, conv_fused.conv2d_forward(x.copy(), W.copy(), None, (1, 1), (1, 1)))
    gy = rng.normal(size=y.shape[::-1]).T  # (3, 4, 5, 6) as a reversed view
    got = conv_fused.conv2d_backward(x, W, gy, (1, 1), (1, 1), (True, True, True))
    want = conv_fused.conv2d_backward(x.copy(), W.copy(), gy.copy(), (1, 1), (1, 1), (True, True, True))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("block_macs", [0, 1 << 19])
def test_the_slices_get_this_machines_cut(rng, monkeypatch, block_macs):
    """The cut chosen for the BLAS core (``BLOCK_MACS``) reaches the compiled slices, forward and backward."""
    from ember.backends.cpu.threads import set_thread_policy
    from ember.backends.numba import conv_im2col_slices, pool_region, prange_slices

    if not pool_region.available():
        pytest.skip("Numba's thread pool is not available in this process")
    monkeypatch.setattr(conv_im2col_slices, "BLOCK_MACS", block_macs)
    monkeypatch.setattr(conv_fused, "MIN_SLICE_ELEMENTS", 0)
    seen = []
    real = prange_slices.run_split
    monkeypatch.setattr(prange_slices, "run_split", lambda driver, args, *rest: seen.append(args[-1])
                        or real(driver, args, *rest))
    x, W = rng.normal(size=(4, 64, 8, 8)), rng.normal(size=(64, 64, 3, 3))  # conv6: im2col both ways
    previous = set_thread_policy(batch_workers=2)
    try:
        y = conv_fused.conv2d_forward(x, W, None, (1, 1), (1, 1))
        conv_fused.conv2d_backward(x, W, np.ones_like(y), (1, 1), (1, 1), (True, True, False))
    finally:
        set_thread_policy(batch_workers=previous["batch_workers"])
    assert seen == [block_macs, block_macs]
