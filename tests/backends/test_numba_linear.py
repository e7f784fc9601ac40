"""A linear layer's passes on Numba (``ember.backends.numba.linear``) against the reference, bit for bit.

The forward's epilogue (bias, ReLU) runs inside ``parallel_gemm``'s blocks; the backward's
output gradient masks ``gy`` by ``y > 0`` and sums the bias gradient over the rows in order,
cut by columns on the pool.  Both are compared with the unfused NumPy composition exactly,
on the products' serial path and on the pool (with spies that the pool really ran).
"""

import numpy as np
import pytest

pytest.importorskip("numba")

from ember.backends.cpu.threads import set_thread_policy  # noqa: E402
from ember.backends.numba import linear, nn, parallel_gemm  # noqa: E402
from ember.backends.reference import nn as ref  # noqa: E402

# (10, 128, 512) is cut into columns by both plans, (128, 64, 512) by the small-kernel plan only.
SHAPES = [(100, 784, 50), (128, 64, 512), (7, 33, 5), (300, 20, 500), (3, 4, 1), (10, 128, 512)]


@pytest.fixture(params=[True, False], ids=["small-kernels", "packing-kernels"])
def blocks_seen(request, monkeypatch):
    """Every product cut from any size, by either plan of ``parallel_gemm`` (whatever this machine's
    OpenBLAS); yields the block counts ``parallel_gemm._blocks`` ran."""
    nn.batch_workers()  # the thread policy (one BLAS thread) before the first product
    monkeypatch.setattr(parallel_gemm, "MIN_PARALLEL_MACS", 0)
    monkeypatch.setattr(parallel_gemm, "SMALL_KERNELS", request.param)
    seen, real = [], parallel_gemm._blocks
    monkeypatch.setattr(parallel_gemm, "_blocks", lambda *args: seen.append(args[6]) or real(*args))
    return seen


def _unfused(x, w_t, b, relu, workers):
    y = parallel_gemm.matmul(x, w_t, workers)  # the blocks without an epilogue, then NumPy's passes
    if b is not None:
        y += b
    return nn.relu_forward(y) if relu else y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("bias, relu", [(True, True), (True, False), (False, True)])
def test_forward_epilogue_equals_the_unfused_ops(blocks_seen, rng, dtype, shape, bias, relu):
    m, k, n = shape
    x = rng.normal(size=(m, k)).astype(dtype)
    w_t = rng.normal(size=(n, k)).astype(dtype).T  # a linear layer's W.T: unit stride down its columns
    b = rng.normal(size=n).astype(dtype) if bias else None
    for workers in (1, 2, 3):
        got = linear.linear_forward(x, w_t, b, relu, workers)
        np.testing.assert_array_equal(got, _unfused(x, w_t, b, relu, workers))
        reference = ref.linear_forward(x, w_t, b, relu, workers)  # one @: another summation order
        bound = np.finfo(dtype).eps * k * np.abs(x).max() * np.abs(w_t).max()  # the classic dot-product bound
        np.testing.assert_allclose(got, reference, rtol=0, atol=bound)
    assert blocks_seen and all(count >= 2 for count in blocks_seen)  # the epilogues ran on the pool too


def test_forward_relu_keeps_nan_and_zeroes_negatives(blocks_seen):
    x = np.array([[1.0, 0.5], [-2.0, 0.5]], np.float32)
    got = linear.linear_forward(x, np.eye(2, dtype=np.float32), np.array([0, np.nan], np.float32), True, 2)
    assert np.isnan(got[:, 1]).all() and got[0, 0] == 1 and got[1, 0] == 0


def test_a_bias_the_compiled_epilogue_cannot_take_is_added_by_numpy(blocks_seen, rng):
    x, w_t = rng.normal(size=(40, 30)).astype(np.float32), rng.normal(size=(30, 60)).astype(np.float32)
    strided = rng.normal(size=120).astype(np.float32)[::2]  # not contiguous
    as_f64 = strided.astype(np.float64)  # another dtype: NumPy's rules for the sum
    for b in (strided, as_f64):
        want = parallel_gemm.matmul(x, w_t, 2) + b
        want = np.where(want <= 0, 0, want).astype(want.dtype)
        np.testing.assert_array_equal(parallel_gemm.matmul(x, w_t, 2, bias=b, relu=True), want.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(128, 512), (100, 50), (5, 3), (0, 40), (64, 33)], ids=str)
@pytest.mark.parametrize("rectify, need_bias", [(True, True), (True, False), (False, True)])
def test_grad_output_equals_mask_then_numpy_sum(pool_parts, rng, dtype, shape, rectify, need_bias):
    gy = rng.normal(size=shape).astype(dtype)
    y = np.maximum(rng.normal(size=shape), 0).astype(dtype) if rectify else None
    gz, gb = linear.linear_grad_output(gy, y, need_bias, 2)
    want = np.where(y > 0, gy, 0).astype(dtype) if rectify else gy
    np.testing.assert_array_equal(gz, want)
    assert (gz is gy) == (not rectify)
    if need_bias:
        assert gb.dtype == dtype and gb.shape == (shape[1],)
        np.testing.assert_array_equal(gb, want.sum(axis=0))  # the rows in order, as NumPy adds them
        ref_gz, ref_gb = ref.linear_grad_output(gy, y, need_bias, 2)
        np.testing.assert_array_equal(gb, ref_gb)
        np.testing.assert_array_equal(gz, ref_gz)
    else:
        assert gb is None
    if shape[0] * shape[1] and shape[1] >= 32:
        assert pool_parts[-1] >= 2  # cut by columns on the pool


def test_grad_output_serial_and_pooled_give_the_same_bits(rng, monkeypatch):
    gy = rng.normal(size=(96, 200)).astype(np.float32)
    y = rng.normal(size=(96, 200)).astype(np.float32)
    serial = linear.linear_grad_output(gy, y, True, 1)
    from ember.backends.numba import pool_flat

    monkeypatch.setattr(pool_flat, "MIN_POOL_ELEMENTS", 0)
    previous = set_thread_policy(batch_workers=3)
    try:
        pooled = linear.linear_grad_output(gy, y, True, 3)
    finally:
        set_thread_policy(batch_workers=previous["batch_workers"])
    for a, b in zip(serial, pooled):
        np.testing.assert_array_equal(a, b)


def test_grad_output_takes_read_only_and_odd_arrays(rng):
    gy = rng.normal(size=(6, 4)).astype(np.float32)
    gy.flags.writeable = False
    gz, gb = linear.linear_grad_output(gy, None, True, 2)
    assert gz is gy
    np.testing.assert_array_equal(gb, gy.sum(axis=0))
    gz, gb = linear.linear_grad_output(gy, np.abs(gy) - 0.5, True, 2)
    np.testing.assert_array_equal(gz, np.where(np.abs(gy) - 0.5 > 0, gy, 0))
    half = gy.astype(np.float16)  # not a compiled dtype: the reference
    gz, gb = linear.linear_grad_output(half, None, True, 2)
    np.testing.assert_array_equal(gb, half.sum(axis=0))
    assert linear.linear_grad_output(gy, None, False, 2) == (gy, None)
