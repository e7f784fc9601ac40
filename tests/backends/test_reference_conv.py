"""im2col/col2im vs a naive float64 loop, the adjoint identity, torch unfold/fold."""

import numpy as np
import pytest

from ember.backends import geometry
from ember.backends.reference import conv as ck
from naive_conv import _pair, naive_col2im, naive_im2col, naive_out

# (H, W, kh, kw, stride, padding): odd sizes, rectangular kernels, stride 1/2/3,
# padding 0/1/2, kernel == input, kernel == padded input, stride > kernel.
CASES = [
    (7, 9, 3, 3, 1, 0),
    (7, 9, 3, 3, 1, 1),
    (7, 9, 3, 2, 2, 1),
    (8, 5, 2, 3, (2, 1), (1, 0)),
    (11, 7, 5, 5, 3, 2),
    (5, 5, 5, 5, 1, 0),
    (3, 3, 7, 7, 1, 2),
    (3, 4, 5, 6, 2, (1, 1)),
    (9, 9, 2, 2, 3, 0),
    (10, 13, 4, 1, (3, 2), (2, 0)),
    (6, 6, 1, 1, 1, 0),
    (5, 7, 3, 5, (1, 3), (1, 2)),
    (1, 1, 1, 1, 1, 0),
    (4, 4, 2, 2, 2, 0),
]
N, C = 2, 3


def _ids(cases):
    return [f"H{c[0]}W{c[1]}_k{c[2]}x{c[3]}_s{c[4]}_p{c[5]}" for c in cases]


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", CASES, ids=_ids(CASES))
def test_im2col_matches_naive(h, w, kh, kw, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, h, w))
    col = ck.im2col(x, kh, kw, stride, padding)
    oh, ow = naive_out(h, w, kh, kw, stride, padding)
    assert col.shape == (N, C, kh, kw, oh, ow)
    assert col.flags.c_contiguous
    np.testing.assert_array_equal(col, naive_im2col(x, kh, kw, stride, padding))


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", CASES, ids=_ids(CASES))
def test_col2im_matches_naive(h, w, kh, kw, stride, padding):
    rng = np.random.default_rng(1)
    oh, ow = naive_out(h, w, kh, kw, stride, padding)
    col = rng.standard_normal((N, C, kh, kw, oh, ow))
    x = ck.col2im(col, (N, C, h, w), kh, kw, stride, padding)
    assert x.shape == (N, C, h, w)
    np.testing.assert_allclose(
        x,
        naive_col2im(col, (N, C, h, w), kh, kw, stride, padding),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", CASES, ids=_ids(CASES))
def test_col2im_is_adjoint_of_im2col(h, w, kh, kw, stride, padding):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, h, w))
    oh, ow = naive_out(h, w, kh, kw, stride, padding)
    c = rng.standard_normal((N, C, kh, kw, oh, ow))
    lhs = np.vdot(ck.im2col(x, kh, kw, stride, padding), c)
    rhs = np.vdot(x, ck.col2im(c, x.shape, kh, kw, stride, padding))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_col2im_accepts_broadcast_view():
    g = np.arange(2 * 3 * 3 * 4, dtype=np.float64).reshape(2, 3, 1, 1, 3, 4)
    col = np.broadcast_to(g, (2, 3, 2, 2, 3, 4))
    got = ck.col2im(col, (2, 3, 4, 5), 2, 2, 1, 0)
    np.testing.assert_allclose(
        got, naive_col2im(np.array(col), (2, 3, 4, 5), 2, 2, 1, 0)
    )


def test_im2col_non_contiguous_input():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 6, 3, 2)).transpose(
        3, 2, 0, 1
    )  # (2, 3, 7, 6), permuted strides
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(
        ck.im2col(x, 3, 2, (2, 1), 1), naive_im2col(x, 3, 2, (2, 1), 1)
    )


def test_im2col_pad_value():
    x = np.zeros((1, 1, 2, 2))
    col = ck.im2col(x, 3, 3, 1, 1, pad_value=-np.inf)
    assert np.isneginf(col[0, 0, 0, 0, 0, 0]) and col[0, 0, 1, 1, 0, 0] == 0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_preserved(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    col = ck.im2col(x, 3, 2, 2, 1)
    assert col.dtype == dtype
    np.testing.assert_array_equal(
        col, naive_im2col(x.astype(np.float64), 3, 2, 2, 1).astype(dtype)
    )
    back = ck.col2im(col, x.shape, 3, 2, 2, 1)
    assert back.dtype == dtype
    tol = {np.float16: 1e-2, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    ref = naive_col2im(col.astype(np.float64), x.shape, 3, 2, 2, 1)
    np.testing.assert_allclose(back.astype(np.float64), ref, rtol=tol, atol=tol)


def test_conv_output_size():
    assert geometry.conv_output_size(28, 5, 1, 0) == 24
    assert geometry.conv_output_size(7, 3, 2, 1) == 4
    assert geometry.conv_output_size(3, 7, 1, 2) == 1
    assert geometry.conv_output_size(9, 2, 3, 0) == 3


def test_kernel_too_large_message():
    with pytest.raises(
        ValueError,
        match=r"conv2d: kernel 7 larger than padded input 5 "
        r"\(input 3 \+ 2\*padding 1\)",
    ):
        geometry.conv_output_size(3, 7, 1, 1)
    with pytest.raises(
        ValueError, match=r"im2col: kernel 4 larger than padded input 3"
    ):
        ck.im2col(np.zeros((1, 1, 3, 8)), 4, 2, 1, 0)
    with pytest.raises(
        ValueError, match=r"col2im: kernel 9 larger than padded input 8"
    ):
        ck.col2im(np.zeros((1, 1, 1, 9, 1, 1)), (1, 1, 3, 8), 1, 9, 1, 0)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"stride": 0}, r"im2col: expected stride >= 1, got 0"),
        ({"stride": (1, 0)}, r"im2col: expected stride >= 1, got \(1, 0\)"),
        ({"padding": -1}, r"im2col: expected padding non-negative, got -1"),
        ({"padding": (0, -2)}, r"im2col: expected padding non-negative, got \(0, -2\)"),
    ],
)
def test_bad_stride_or_padding(kwargs, pattern):
    args = {"stride": 1, "padding": 0, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        ck.im2col(np.zeros((1, 1, 5, 5)), 3, 3, args["stride"], args["padding"])


def test_pair():
    assert geometry.pair(2, "stride") == (2, 2)
    assert geometry.pair((1, 3), "stride") == (1, 3)
    assert geometry.pair(np.int64(0), "padding") == (0, 0)
    with pytest.raises(TypeError, match="stride"):
        geometry.pair(True, "stride")
    with pytest.raises(TypeError, match="padding"):
        geometry.pair((1, 2, 3), "padding")
    with pytest.raises(ValueError, match="stride"):
        geometry.pair(0, "stride")
    with pytest.raises(ValueError, match="padding"):
        geometry.pair(-1, "padding")


def test_shape_errors():
    with pytest.raises(
        ValueError,
        match=r"im2col: expected x of shape \(N, C, H, W\), got shape \(3, 5, 5\)",
    ):
        ck.im2col(np.zeros((3, 5, 5)), 3, 3)
    with pytest.raises(
        ValueError, match=r"col2im: expected col of shape \(1, 1, 3, 3, 3, 3\)"
    ):
        ck.col2im(np.zeros((1, 1, 3, 3, 2, 3)), (1, 1, 5, 5), 3, 3, 1, 0)


def test_batch_chunks_cover_batch_and_respect_budget():
    shape, itemsize = (100, 1, 28, 28), 4
    per_sample = 1 * 5 * 5 * 24 * 24 * itemsize
    chunks = ck.im2col_batch_chunks(
        shape, 5, 5, itemsize, budget_bytes=7 * per_sample + 1
    )
    assert [s.start for s in chunks] == list(range(0, 100, 7))
    assert chunks[-1].stop == 100 and all(s.stop - s.start <= 7 for s in chunks)
    assert ck.im2col_batch_chunks(shape, 5, 5, itemsize) == [slice(0, 100)]
    # A single sample larger than the budget still gets a chunk of its own.
    assert ck.im2col_batch_chunks((3, 1, 28, 28), 5, 5, 4, budget_bytes=1) == [
        slice(0, 1),
        slice(1, 2),
        slice(2, 3),
    ]
    assert ck.im2col_batch_chunks((0, 1, 28, 28), 5, 5, 4) == []
    # stride/padding change OH, OW and therefore the chunk size.
    assert (
        len(
            ck.im2col_batch_chunks(
                (8, 2, 9, 9),
                3,
                3,
                8,
                budget_bytes=2 * (2 * 3 * 3 * 5 * 5 * 8),
                stride=2,
                padding=1,
            )
        )
        == 4
    )
    with pytest.raises(ValueError, match="budget_bytes"):
        ck.im2col_batch_chunks(shape, 5, 5, 4, budget_bytes=0)


def test_chunked_im2col_equals_full():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 2, 7, 8)).astype(np.float32)
    full = ck.im2col(x, 3, 3, 1, 1)
    chunks = ck.im2col_batch_chunks(
        x.shape, 3, 3, x.itemsize, budget_bytes=3 * full[0].nbytes, padding=1
    )
    assert len(chunks) == 4
    np.testing.assert_array_equal(
        np.concatenate([ck.im2col(x[s], 3, 3, 1, 1) for s in chunks]), full
    )


TORCH_CASES = [c for c in CASES if c[0] + 2 * _pair(c[5])[0] >= c[2]]


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", TORCH_CASES, ids=_ids(TORCH_CASES))
def test_parity_with_torch_unfold_fold(h, w, kh, kw, stride, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(6)
    x = rng.standard_normal((N, C, h, w))
    col = ck.im2col(x, kh, kw, stride, padding)
    oh, ow = col.shape[4:]
    ref = F.unfold(
        torch.from_numpy(x), (kh, kw), stride=stride, padding=padding
    ).numpy()
    np.testing.assert_array_equal(col.reshape(N, C * kh * kw, oh * ow), ref)
    c = rng.standard_normal(col.shape)
    folded = F.fold(
        torch.from_numpy(c.reshape(N, -1, oh * ow)),
        (h, w),
        (kh, kw),
        stride=stride,
        padding=padding,
    )
    np.testing.assert_allclose(
        ck.col2im(c, x.shape, kh, kw, stride, padding),
        folded.numpy(),
        rtol=1e-12,
        atol=1e-12,
    )
