"""Every Numba conv/pool kernel against the NumPy reference kernels, serial and parallel variants.

The Numba kernels add in the reference's order, so results must be equal bit for
bit (NaN positions included), not just close.
"""

import numpy as np
import pytest

pytest.importorskip("numba", reason="the Numba kernels need numba")

from ember.backends.cpu import batch_split
from ember.backends.reference import conv as rc
from ember.backends.numba import conv as nc
from ember.backends.numba import pool as npool
from ember.backends.reference import pool as rp
from ember.backends.cpu.threads import set_thread_policy
from ember.errors import ShapeError

# (x_shape, (kh, kw), stride, padding): odd sizes, stride 2, padding 1, rectangular
# kernels, kernel == padded input, N = 1, pair strides/paddings.
CONV_CASES = [
    ((2, 3, 7, 9), (3, 2), (2, 1), (1, 1)),
    ((3, 2, 5, 6), (3, 3), 2, 1),
    ((1, 1, 4, 4), (4, 4), 1, 0),
    ((2, 2, 9, 8), (2, 3), (1, 3), (0, 1)),
    ((1, 3, 5, 5), (5, 5), 2, 2),
]
# Pooling needs padding <= kernel // 2.
POOL_CASES = [
    ((2, 3, 7, 9), (3, 2), (2, 1), (1, 1)),
    ((3, 2, 5, 6), (3, 3), 2, 1),
    ((2, 3, 6, 6), (2, 2), 2, 0),
    ((2, 2, 5, 6), (2, 2), 1, 0),
    ((1, 2, 7, 7), (2, 2), 3, 1),
    ((2, 2, 9, 8), (2, 3), (1, 2), (1, 0)),
]
# (variant, dtype): compiling a prange kernel costs several seconds per dtype, so the
# parallel float64 variants only run with -m slow (the code path is dtype-generic).
VARIANTS = [
    ("serial", np.float32),
    ("serial", np.float64),
    ("parallel", np.float32),
    pytest.param(("parallel", np.float64), marks=pytest.mark.slow),
    ("split", np.float32),
]


@pytest.fixture(params=VARIANTS, ids=lambda v: f"{v[0]}-{np.dtype(v[1]).name}")
def variant(request, monkeypatch):
    """``(name, dtype)``: the serial loops, the prange variants (threshold 0 forces them), or the
    serial loops over batch slices on 3 worker threads (``split``: any size is split)."""
    name, dtype = request.param
    previous = set_thread_policy(parallel_min_elements=0 if name == "parallel" else float("inf"),
                                 batch_workers=3 if name == "split" else 1)
    if name == "split":
        monkeypatch.setattr(batch_split, "MIN_SPLIT_ELEMENTS", 0)
    yield name, dtype
    set_thread_policy(parallel_min_elements=previous["parallel_min_elements"],
                      batch_workers=previous["batch_workers"])


def _ids(cases):
    return [f"x{c[0]}_k{c[1]}_s{c[2]}_p{c[3]}" for c in cases]


def _noncontiguous(x):
    """The same values as ``x`` in a non-C-contiguous array (a transposed copy viewed back)."""
    y = np.asfortranarray(x)
    assert not y.flags.c_contiguous
    return y


def assert_same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape,k,s,p", CONV_CASES, ids=_ids(CONV_CASES))
def test_im2col_col2im_match_reference(variant, rng, shape, k, s, p):
    dtype = variant[1]
    x = rng.normal(size=shape).astype(dtype)
    assert_same(nc.im2col(x, *k, s, p), rc.im2col(x, *k, s, p))
    assert_same(nc.im2col(_noncontiguous(x), *k, s, p), rc.im2col(x, *k, s, p))
    assert_same(nc.im2col(x, *k, s, p, pad_value=-np.inf), rc.im2col(x, *k, s, p, pad_value=-np.inf))
    col = rng.normal(size=rc.im2col(x, *k, s, p).shape).astype(dtype)
    assert_same(nc.col2im(col, shape, *k, s, p), rc.col2im(col, shape, *k, s, p))
    view = np.swapaxes(np.swapaxes(col, 4, 5).copy(), 4, 5)  # same values, non-contiguous strides
    assert_same(nc.col2im(view, shape, *k, s, p), rc.col2im(col, shape, *k, s, p))
    for module in (nc, rc):  # out=: written in place, same values (a non-contiguous out goes the slow way)
        for out in (np.full(shape, np.nan, dtype), np.full(shape[::-1], np.nan, dtype).T):
            assert module.col2im(col, shape, *k, s, p, out=out) is out
            assert_same(out, rc.col2im(col, shape, *k, s, p))


@pytest.mark.parametrize("module", [nc, rc], ids=["numba", "reference"])
def test_col2im_rejects_a_wrong_out(module):
    col = np.zeros((1, 1, 2, 2, 2, 2), np.float32)
    with pytest.raises(ShapeError, match=r"col2im: expected out of shape \(1, 1, 3, 3\), got \(1, 1, 3, 4\)"):
        module.col2im(col, (1, 1, 3, 3), 2, 2, out=np.zeros((1, 1, 3, 4), np.float32))
    with pytest.raises(TypeError, match="col2im: expected out of dtype float32, got float64"):
        module.col2im(col, (1, 1, 3, 3), 2, 2, out=np.zeros((1, 1, 3, 3), np.float64))
    frozen = np.zeros((1, 1, 3, 3), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"col2im: expected a writeable out, got a read-only array of shape \(1, 1, 3, 3\)"):
        module.col2im(col, (1, 1, 3, 3), 2, 2, out=frozen)


@pytest.mark.parametrize("shape,k,s,p", POOL_CASES, ids=_ids(POOL_CASES))
def test_pooling_matches_reference(variant, rng, shape, k, s, p):
    dtype = variant[1]
    x = rng.normal(size=shape).astype(dtype)
    y, arg = npool.max_pool2d_forward(x, *k, s, p)
    y_ref, arg_ref = rp.max_pool2d_forward(x, *k, s, p)
    assert_same(y, y_ref)
    assert_same(arg, arg_ref)
    assert_same(npool.max_pool2d_forward(_noncontiguous(x), *k, s, p)[0], y_ref)
    gy = rng.normal(size=y_ref.shape).astype(dtype)
    assert_same(npool.max_pool2d_backward(gy, arg_ref, shape, *k, s, p),
                rp.max_pool2d_backward(gy, arg_ref, shape, *k, s, p))
    assert_same(npool.avg_pool2d_forward(x, *k, s, p), rp.avg_pool2d_forward(x, *k, s, p))
    assert_same(npool.avg_pool2d_forward(_noncontiguous(x), *k, s, p), rp.avg_pool2d_forward(x, *k, s, p))
    assert_same(npool.avg_pool2d_backward(gy, shape, *k, s, p), rp.avg_pool2d_backward(gy, shape, *k, s, p))
    assert_same(npool.avg_pool2d_backward(_noncontiguous(gy), shape, *k, s, p),
                rp.avg_pool2d_backward(gy, shape, *k, s, p))


@pytest.mark.parametrize("k,s,p", [((2, 2), 2, 0), ((3, 3), 1, 1)])
def test_max_pool_nan_inf_and_ties_match_reference(variant, k, s, p):
    dtype = variant[1]
    x = np.arange(2 * 2 * 6 * 6, dtype=dtype).reshape(2, 2, 6, 6) % 7  # many ties
    x[0, 0, 0, 1] = np.nan  # a NaN after a finite value: it must win its windows
    x[0, 1, 2:4, :] = np.nan  # rows of NaNs
    x[1, 0] = -np.inf  # a plane of -inf next to padding (-inf too): the first cell wins
    x[1, 1, 3, 3] = np.inf
    y, arg = npool.max_pool2d_forward(x, *k, s, p)
    y_ref, arg_ref = rp.max_pool2d_forward(x, *k, s, p)
    assert np.isnan(y).any()
    assert_same(y, y_ref)
    assert_same(arg, arg_ref)
    gy = np.full(y.shape, np.inf, dtype=dtype)  # non-finite grads reach only their argmax
    assert_same(npool.max_pool2d_backward(gy, arg, x.shape, *k, s, p),
                rp.max_pool2d_backward(gy, arg, x.shape, *k, s, p))


def test_float16_values_match_a_float64_computation(rng):
    """float16 runs the reference kernels; its values are checked against the Numba float64 kernels."""
    x = rng.normal(size=(2, 2, 5, 5)).astype(np.float16)
    x64 = x.astype(np.float64)  # the same values, exactly
    half = {"rtol": 4e-3, "atol": 4e-3}  # a few float16 roundings of sums of up to nine terms

    col = nc.im2col(x, 3, 3, (1, 2), 1)
    assert col.dtype == np.float16
    assert_same(col, nc.im2col(x64, 3, 3, (1, 2), 1).astype(np.float16))  # a gather: exact
    got = nc.col2im(col, x.shape, 3, 3, (1, 2), 1)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, nc.col2im(col.astype(np.float64), x.shape, 3, 3, (1, 2), 1), **half)
    y, arg = npool.max_pool2d_forward(x, 2, 2, 2)
    y64, arg64 = npool.max_pool2d_forward(x64, 2, 2, 2)
    assert y.dtype == np.float16
    assert_same(y, y64.astype(np.float16))  # a maximum of float16 values: exact
    assert_same(arg, arg64)
    np.testing.assert_allclose(npool.max_pool2d_backward(y, arg, x.shape, 2, 2, 2),
                               npool.max_pool2d_backward(y64, arg64, x.shape, 2, 2, 2), **half)
    np.testing.assert_allclose(npool.avg_pool2d_forward(x, 3, 3, 1, 1), npool.avg_pool2d_forward(x64, 3, 3, 1, 1),
                               **half)
    np.testing.assert_allclose(npool.avg_pool2d_backward(y, x.shape, 2, 2, 2),
                               npool.avg_pool2d_backward(y64, x.shape, 2, 2, 2), **half)


def test_empty_batch(rng):
    x = np.zeros((0, 2, 5, 5), dtype=np.float32)
    assert nc.im2col(x, 3, 3).shape == (0, 2, 3, 3, 3, 3)
    assert nc.col2im(np.zeros((0, 2, 3, 3, 3, 3), np.float32), x.shape, 3, 3).shape == x.shape
    y, arg = npool.max_pool2d_forward(x, 2, 2, 2)
    assert y.shape == arg.shape == (0, 2, 2, 2)
    assert npool.max_pool2d_backward(y, arg, x.shape, 2, 2, 2).shape == x.shape


def test_errors_name_the_op_and_shapes():
    with pytest.raises(ShapeError, match=r"col2im: expected col of shape \(1, 1, 3, 3, 3, 3\)"):
        nc.col2im(np.zeros((1, 1, 3, 3, 2, 2), np.float32), (1, 1, 5, 5), 3, 3)
    with pytest.raises(ShapeError, match="im2col: expected x of shape"):
        nc.im2col(np.zeros((2, 5, 5), np.float32), 3, 3)
    with pytest.raises(ValueError, match="max_pool2d: expected padding at most half"):
        npool.max_pool2d_forward(np.zeros((1, 1, 5, 5), np.float32), 2, 2, 2, 2)
    gy = np.zeros((1, 1, 2, 2), np.float32)
    bad = np.full((1, 1, 2, 2), 4, dtype=np.int64)  # a 2x2 window has argmax 0..3
    with pytest.raises(ValueError, match=r"max_pool2d_backward: expected argmax in \[0, 4\)"):
        npool.max_pool2d_backward(gy, bad, (1, 1, 4, 4), 2, 2, 2)
    with pytest.raises(ShapeError, match="max_pool2d_backward: expected gy of shape"):
        npool.max_pool2d_backward(np.zeros((1, 1, 3, 3), np.float32), bad, (1, 1, 4, 4), 2, 2, 2)


def test_module_namespaces_match_the_reference():
    """The ops call these names on whatever kernel module the backend provides."""
    for name in ("im2col", "col2im", "im2col_batch_chunks", "batch_workers"):
        assert callable(getattr(nc, name)), name
    for name in ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"):
        assert callable(getattr(npool, name)), name


@pytest.mark.parametrize("module", [nc, rc], ids=["numba", "reference"])
def test_im2col_writes_into_out(rng, module):
    x = rng.normal(size=(2, 3, 5, 6)).astype(np.float32)
    want = module.im2col(x, 3, 2, (2, 1), (1, 0))
    for out in (np.full(want.shape, np.nan, np.float32), np.full(want.shape[::-1], np.nan, np.float32).T):
        assert module.im2col(x, 3, 2, (2, 1), (1, 0), out=out) is out
        np.testing.assert_array_equal(out, want)
    with pytest.raises(ShapeError, match=r"im2col: expected out of shape \(2, 3, 3, 2, 3, 5\)"):
        module.im2col(x, 3, 2, (2, 1), (1, 0), out=np.zeros((2, 3, 3, 2, 3, 4), np.float32))
