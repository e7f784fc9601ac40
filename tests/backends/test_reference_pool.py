"""Max/avg pooling kernels against a naive float64 loop and PyTorch."""

import numpy as np
import pytest

from ember.backends.reference import pool as pk

# (H, W, kh, kw, stride, padding) with padding <= kernel // 2 (PyTorch's rule):
# overlapping windows (stride < kernel), rectangular kernels, odd sizes,
# stride > kernel, kernel == (padded) input.
CASES = [
    (6, 6, 2, 2, 2, 0),
    (7, 9, 2, 2, 2, 0),
    (7, 9, 3, 3, 1, 0),
    (7, 9, 3, 3, 1, 1),
    (7, 8, 3, 3, 2, 1),
    (9, 7, 3, 2, (2, 1), (1, 1)),
    (11, 10, 5, 4, 3, 2),
    (9, 9, 2, 2, 3, 0),
    (5, 5, 5, 5, 1, 0),
    (3, 3, 5, 5, 2, 1),
    (8, 7, 4, 3, (1, 2), (2, 0)),
    (6, 5, 1, 1, 1, 0),
]
N, C = 2, 3


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _ids(cases):
    return [f"H{c[0]}W{c[1]}_k{c[2]}x{c[3]}_s{c[4]}_p{c[5]}" for c in cases]


def _windows(x_shape, kh, kw, stride, padding):
    """Yield (oh, ow, [(i*kw + j, r, q) per in-bounds cell, row-major window order])."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    h, w = x_shape[2:]
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    for y in range(oh):
        for z in range(ow):
            cells = []
            for i in range(kh):
                for j in range(kw):
                    r, q = y * sh + i - ph, z * sw + j - pw
                    if 0 <= r < h and 0 <= q < w:
                        cells.append((i * kw + j, r, q))
            yield y, z, cells


def _out_shape(x_shape, kh, kw, stride, padding):
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    h, w = x_shape[2:]
    return (*x_shape[:2], (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)


def naive_max_pool(x, kh, kw, stride, padding):
    y = np.zeros(_out_shape(x.shape, kh, kw, stride, padding))
    arg = np.zeros(y.shape, dtype=np.int64)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for oy, oz, cells in _windows(x.shape, kh, kw, stride, padding):
                best_k, best = None, -np.inf
                for k, r, q in cells:
                    if (
                        best_k is None or x[n, c, r, q] > best
                    ):  # strict: ties keep the first
                        best_k, best = k, x[n, c, r, q]
                y[n, c, oy, oz], arg[n, c, oy, oz] = best, best_k
    return y, arg


def naive_max_pool_backward(gy, x, kh, kw, stride, padding):
    gx = np.zeros(x.shape)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for oy, oz, cells in _windows(x.shape, kh, kw, stride, padding):
                _, r, q = max(cells, key=lambda t: (x[n, c, t[1], t[2]], -t[0]))
                gx[n, c, r, q] += gy[n, c, oy, oz]
    return gx


def naive_avg_pool(x, kh, kw, stride, padding):
    y = np.zeros(_out_shape(x.shape, kh, kw, stride, padding))
    for oy, oz, cells in _windows(x.shape, kh, kw, stride, padding):
        for _, r, q in cells:
            y[:, :, oy, oz] += x[:, :, r, q]
    return y / (kh * kw)


def naive_avg_pool_backward(gy, x_shape, kh, kw, stride, padding):
    gx = np.zeros(x_shape)
    for oy, oz, cells in _windows(x_shape, kh, kw, stride, padding):
        for _, r, q in cells:
            gx[:, :, r, q] += gy[:, :, oy, oz] / (kh * kw)
    return gx


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", CASES, ids=_ids(CASES))
def test_max_pool_forward_matches_naive(h, w, kh, kw, stride, padding):
    x = np.random.default_rng(0).standard_normal((N, C, h, w))
    y, arg = pk.max_pool2d_forward(x, kh, kw, stride, padding)
    y_ref, arg_ref = naive_max_pool(x, kh, kw, stride, padding)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    assert arg.dtype == np.int64


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", CASES, ids=_ids(CASES))
def test_max_pool_backward_matches_naive(h, w, kh, kw, stride, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, h, w))
    y, arg = pk.max_pool2d_forward(x, kh, kw, stride, padding)
    gy = rng.standard_normal(y.shape)
    gx = pk.max_pool2d_backward(gy, arg, x.shape, kh, kw, stride, padding)
    assert gx.shape == x.shape
    np.testing.assert_allclose(
        gx,
        naive_max_pool_backward(gy, x, kh, kw, stride, padding),
        rtol=1e-12,
        atol=1e-12,
    )


def test_max_pool_overlapping_windows_accumulate():
    # The centre element is the max of all four overlapping 2x2 windows.
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0
    y, arg = pk.max_pool2d_forward(x, 2, 2, 1, 0)
    np.testing.assert_array_equal(arg[0, 0], [[3, 2], [1, 0]])
    gx = pk.max_pool2d_backward(np.ones_like(y), arg, x.shape, 2, 2, 1, 0)
    assert gx[0, 0, 1, 1] == 4.0 and gx.sum() == 4.0


def test_max_pool_ties_go_to_first():
    x = np.ones((1, 2, 4, 4))
    y, arg = pk.max_pool2d_forward(x, 2, 2, 2, 0)
    assert (arg == 0).all()
    gx = pk.max_pool2d_backward(np.ones_like(y), arg, x.shape, 2, 2, 2, 0)
    np.testing.assert_array_equal(
        gx[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    )


def test_max_pool_nan_propagates_and_inf_grad_stays_local():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    y, arg = pk.max_pool2d_forward(x, 2, 2, 2, 0)
    assert np.isnan(y[0, 0, 0, 0]) and arg[0, 0, 0, 0] == 1  # first NaN in the window
    np.testing.assert_array_equal(y[0, 0, :, 1:], [[7.0], [15.0]])
    gy = np.array([[[[np.inf, 1.0], [1.0, 1.0]]]])
    gx = pk.max_pool2d_backward(gy, arg, x.shape, 2, 2, 2, 0)
    assert np.isinf(gx[0, 0, 0, 1]) and np.isfinite(np.delete(gx.ravel(), 1)).all()


def test_max_pool_padding_never_wins():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3) - 100.0  # all very negative
    y, arg = pk.max_pool2d_forward(x, 3, 3, 1, 1)
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y, naive_max_pool(x, 3, 3, 1, 1)[0])


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", CASES, ids=_ids(CASES))
def test_avg_pool_matches_naive(h, w, kh, kw, stride, padding):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, h, w))
    y = pk.avg_pool2d_forward(x, kh, kw, stride, padding)
    np.testing.assert_allclose(
        y, naive_avg_pool(x, kh, kw, stride, padding), rtol=1e-12, atol=1e-12
    )
    gy = rng.standard_normal(y.shape)
    gx = pk.avg_pool2d_backward(gy, x.shape, kh, kw, stride, padding)
    ref = naive_avg_pool_backward(gy, x.shape, kh, kw, stride, padding)
    np.testing.assert_allclose(gx, ref, rtol=1e-12, atol=1e-12)


def test_avg_pool_counts_padding_in_divisor():
    y = pk.avg_pool2d_forward(np.ones((1, 1, 2, 2)), 3, 3, 1, 1)
    np.testing.assert_allclose(y[0, 0], np.full((2, 2), 4 / 9))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_preserved(dtype):
    rng = np.random.default_rng(3)
    x64 = rng.standard_normal((2, 3, 7, 6))
    x = x64.astype(dtype)
    tol = {np.float16: 2e-3, np.float32: 1e-6, np.float64: 1e-12}[dtype]
    y, arg = pk.max_pool2d_forward(x, 3, 2, 2, 1)
    assert y.dtype == dtype
    np.testing.assert_array_equal(
        y, naive_max_pool(x.astype(np.float64), 3, 2, 2, 1)[0].astype(dtype)
    )
    gy = np.ones(y.shape, dtype=dtype)
    assert pk.max_pool2d_backward(gy, arg, x.shape, 3, 2, 2, 1).dtype == dtype
    ya = pk.avg_pool2d_forward(x, 3, 2, 2, 1)
    assert ya.dtype == dtype
    ref = naive_avg_pool(x.astype(np.float64), 3, 2, 2, 1)
    np.testing.assert_allclose(ya.astype(np.float64), ref, rtol=tol, atol=tol)
    assert pk.avg_pool2d_backward(gy, x.shape, 3, 2, 2, 1).dtype == dtype


def test_errors():
    x = np.zeros((1, 1, 3, 3))
    with pytest.raises(
        ValueError,
        match=r"max_pool2d: kernel 4 larger than padded input 3 "
        r"\(input 1 \+ 2\*padding 1\)",
    ):
        pk.max_pool2d_forward(np.zeros((1, 1, 1, 8)), 4, 2, 1, 1)
    with pytest.raises(ValueError, match=r"avg_pool2d: expected stride >= 1, got 0"):
        pk.avg_pool2d_forward(x, 2, 2, 0)
    with pytest.raises(
        ValueError, match=r"max_pool2d: expected padding non-negative, got -1"
    ):
        pk.max_pool2d_forward(x, 2, 2, 1, -1)
    with pytest.raises(
        ValueError,
        match=r"max_pool2d: expected padding at most half the kernel size \(2, 2\), "
        r"got padding \(2, 2\)",
    ):
        pk.max_pool2d_forward(x, 2, 2, 1, 2)
    with pytest.raises(
        ValueError,
        match=r"avg_pool2d: expected x of shape \(N, C, H, W\), got shape \(3, 3\)",
    ):
        pk.avg_pool2d_forward(np.zeros((3, 3)), 2, 2, 1)
    with pytest.raises(
        ValueError,
        match=r"max_pool2d_backward: expected gy of shape \(1, 1, 1, 1\), "
        r"got \(1, 1, 2, 2\)",
    ):
        pk.max_pool2d_backward(
            np.zeros((1, 1, 2, 2)),
            np.zeros((1, 1, 1, 1), dtype=np.int64),
            (1, 1, 3, 3),
            2,
            2,
            2,
        )
    with pytest.raises(
        ValueError, match=r"avg_pool2d_backward: expected gy of shape \(1, 1, 2, 2\)"
    ):
        pk.avg_pool2d_backward(np.zeros((1, 1, 1, 1)), (1, 1, 3, 3), 2, 2, 1)


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", CASES, ids=_ids(CASES))
def test_parity_with_torch(h, w, kh, kw, stride, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, C, h, w))
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)

    xt = torch.from_numpy(x).requires_grad_()
    yt, idx = F.max_pool2d(
        xt, (kh, kw), stride=stride, padding=padding, return_indices=True
    )
    y, arg = pk.max_pool2d_forward(x, kh, kw, stride, padding)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    # Window-local argmax -> PyTorch's flat index into the unpadded H*W plane.
    oy, oz = np.meshgrid(np.arange(y.shape[2]), np.arange(y.shape[3]), indexing="ij")
    flat = (oy * sh - ph + arg // kw) * w + (oz * sw - pw + arg % kw)
    np.testing.assert_array_equal(flat, idx.numpy())
    gy = rng.standard_normal(y.shape)
    (gxt,) = torch.autograd.grad(yt, xt, torch.from_numpy(gy))
    gx = pk.max_pool2d_backward(gy, arg, x.shape, kh, kw, stride, padding)
    np.testing.assert_allclose(gx, gxt.numpy(), rtol=1e-12, atol=1e-12)

    xt = torch.from_numpy(x).requires_grad_()
    yt = F.avg_pool2d(xt, (kh, kw), stride=stride, padding=padding)
    np.testing.assert_allclose(
        pk.avg_pool2d_forward(x, kh, kw, stride, padding),
        yt.detach().numpy(),
        rtol=1e-12,
    )
    (gxt,) = torch.autograd.grad(yt, xt, torch.from_numpy(gy))
    gx = pk.avg_pool2d_backward(gy, x.shape, kh, kw, stride, padding)
    np.testing.assert_allclose(gx, gxt.numpy(), rtol=1e-12, atol=1e-12)
