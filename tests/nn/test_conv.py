"""conv2d, im2col/col2im and Conv2d: naive float64 loops, gradchecks, double backward, PyTorch parity, errors."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember.autograd import gradcheck, gradgradcheck
from ember.autograd.ops import conv as conv_ops
from ember.errors import ShapeError
from ember.nn import functional as F
from naive_conv import naive_conv2d

# (x shape, W shape, bias, stride, padding): odd sizes, rectangular kernels, stride 1/2/3 and
# pairs, padding 0/1 and pairs, kernel == input, kernel == padded input, stride > kernel, 1x1.
CONFIGS = [
    ((2, 3, 7, 5), (4, 3, 3, 3), True, 1, 0),
    ((2, 3, 7, 5), (4, 3, 3, 3), True, 1, 1),
    ((2, 3, 7, 5), (4, 3, 3, 2), True, 2, 1),
    ((1, 2, 8, 9), (3, 2, 2, 4), False, (2, 3), (1, 0)),
    ((2, 1, 5, 5), (2, 1, 5, 5), True, 1, 0),
    ((1, 2, 3, 3), (2, 2, 5, 5), True, 1, 1),
    ((1, 2, 9, 9), (2, 2, 2, 2), True, 3, 0),
    ((3, 2, 6, 6), (2, 2, 1, 1), True, 1, 0),
]
IDS = [f"x{c[0]}-W{c[1]}-b{int(c[2])}-s{c[3]}-p{c[4]}".replace(" ", "") for c in CONFIGS]

# Small enough for the full-Jacobian gradchecks.
SMALL = [
    ((2, 2, 5, 4), (3, 2, 3, 2), True, 1, 0),
    ((1, 2, 5, 5), (2, 2, 3, 3), True, 2, 1),
    ((2, 1, 4, 5), (2, 1, 2, 3), False, (2, 1), (1, 0)),
    ((1, 2, 3, 3), (2, 2, 3, 3), True, 1, 1),
]
SMALL_IDS = [f"x{c[0]}-W{c[1]}-s{c[3]}-p{c[4]}".replace(" ", "") for c in SMALL]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_book_im2col(x, kh, kw, stride, padding):
    """The book's 2-D layout by explicit loops: row (n, oh, ow), column (c, i, j)."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    col = np.zeros((n * oh * ow, c * kh * kw))
    for b in range(n):
        for p in range(oh):
            for q in range(ow):
                row = (b * oh + p) * ow + q
                for ch in range(c):
                    for i in range(kh):
                        for j in range(kw):
                            col[row, (ch * kh + i) * kw + j] = xp[b, ch, p * sh + i, q * sw + j]
    return col


def _inputs(rng, xs, ws, bias, dtype=np.float64):
    x = rng.normal(size=xs).astype(dtype)
    W = rng.normal(size=ws).astype(dtype)
    b = rng.normal(size=(ws[0],)).astype(dtype) if bias else None
    return x, W, b


def _tensors(*arrays, requires_grad=True):
    return [None if a is None else em.tensor(a, dtype=a.dtype, requires_grad=requires_grad) for a in arrays]


# ------------------------------------------------------------------ forward


@pytest.mark.parametrize("xs,ws,bias,stride,padding", CONFIGS, ids=IDS)
def test_forward_matches_naive_loop(cpu_kernels, rng, xs, ws, bias, stride, padding):
    x, W, b = _inputs(rng, xs, ws, bias)
    y = F.conv2d(*_tensors(x, W, b, requires_grad=False), stride=stride, padding=padding)
    ref = naive_conv2d(x, W, b, stride, padding)
    assert y.shape == ref.shape and y.dtype == em.float64
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_forward_float32_keeps_dtype(cpu_kernels, rng):
    x, W, b = _inputs(rng, (2, 3, 7, 5), (4, 3, 3, 2), True, np.float32)
    y = F.conv2d(*_tensors(x, W, b), stride=2, padding=1)
    assert y.dtype == em.float32
    np.testing.assert_allclose(y.numpy(), naive_conv2d(x, W, b, 2, 1), rtol=1e-5, atol=1e-5)


def test_batch_chunks_give_the_same_values_and_grads(rng, monkeypatch):
    x, W, b = _inputs(rng, (5, 2, 6, 7), (3, 2, 3, 2), True)
    gy = rng.normal(size=(5, 3, 4, 6))

    def run():
        xt, Wt, bt = _tensors(x, W, b)
        y = F.conv2d(xt, Wt, bt, stride=(1, 1), padding=(0, 0))
        y.backward(em.tensor(gy, dtype=em.float64))
        return y.numpy(), xt.grad.numpy(), Wt.grad.numpy(), bt.grad.numpy()

    whole = run()
    per_sample = 2 * 3 * 2 * 4 * 6 * 8  # C*KH*KW*OH*OW float64 column bytes
    monkeypatch.setattr(conv_ops, "COL_BUDGET_BYTES", 2 * per_sample)
    k = conv_ops.kernels(em.backends.NUMPY_BACKEND)
    slices, workers = conv_ops._slices(k, x.shape, 3, 2, 8, (1, 1), (0, 0))
    assert workers == 1 and len(slices) == 3  # 2 + 2 + 1 samples
    chunked = run()
    for a, c in zip(whole, chunked):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,padding", [((1, 1), (1, 1)), ((2, 1), (0, 2))])
def test_batch_split_over_threads_gives_the_same_values_and_grads(cpu_kernels, rng, monkeypatch, stride, padding):
    """Slices of the batch on 3 worker threads (any kernels) equal the inline run; gW up to rounding."""
    from ember.backends.cpu import batch_split
    from ember.backends.cpu import threads

    x, W, b = _inputs(rng, (7, 2, 6, 7), (3, 2, 3, 2), True)

    def run():
        xt, Wt, bt = _tensors(x, W, b)
        y = F.conv2d(xt, Wt, bt, stride=stride, padding=padding)
        y.backward(em.tensor(np.cos(y.numpy()), dtype=em.float64))
        return y.numpy(), xt.grad.numpy(), Wt.grad.numpy(), bt.grad.numpy()

    whole = run()
    monkeypatch.setattr(conv_ops, "MIN_SLICE_ELEMENTS", 0)
    k = conv_ops.kernels(em.backends.get_backend("cpu"))
    monkeypatch.setattr(k, "batch_workers", lambda: 3, raising=False)
    monkeypatch.setattr(k, "conv2d_supported", lambda *a: False, raising=False)  # the batched path (Numba too)
    slices, workers = conv_ops._slices(k, x.shape, 3, 2, 8, stride, padding)
    expected = min(3 * batch_split.SLICES_PER_WORKER, 7)  # slices per worker, at most one per sample
    assert workers == 3 and len(slices) == expected and [s.stop for s in slices][-1] == 7
    calls = []
    real_map = batch_split.map_slices
    monkeypatch.setattr(conv_ops, "map_slices", lambda fn, ss, w: calls.append(len(ss)) or real_map(fn, ss, w))
    split = run()
    assert calls == [expected] * 3  # forward, transposed conv (gx), weight gradient
    for name, a, c in zip(("y", "gx", "gW", "gb"), whole, split):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12, err_msg=name)
    assert threads.thread_policy()["batch_workers"] >= 1


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("xs,ws,bias,stride,padding", SMALL, ids=SMALL_IDS)
def test_gradcheck(cpu_kernels, rng, xs, ws, bias, stride, padding):
    ts = [t for t in _tensors(*_inputs(rng, xs, ws, bias)) if t is not None]
    fn = (lambda x, W, b: F.conv2d(x, W, b, stride, padding)) if bias else (
        lambda x, W: F.conv2d(x, W, None, stride, padding))
    assert gradcheck(fn, ts)


@pytest.mark.parametrize("xs,ws,bias,stride,padding", SMALL[:2], ids=SMALL_IDS[:2])
def test_gradgradcheck(cpu_kernels, rng, xs, ws, bias, stride, padding):
    ts = _tensors(*_inputs(rng, xs, ws, bias))
    assert gradgradcheck(lambda x, W, b: F.conv2d(x, W, b, stride, padding), ts)


def test_double_backward_through_upstream_gradient(rng):
    """gy depends on the inputs here, so every input of the backward Functions is differentiated."""
    ts = _tensors(*_inputs(rng, (1, 2, 5, 4), (2, 2, 3, 2), True))

    def first_grads(x, W, b):
        with em.enable_grad():  # gradcheck's numerical pass runs under no_grad
            loss = (F.conv2d(x, W, b, stride=(2, 1), padding=1) ** 2).sum()
            return tuple(em.autograd.grad(loss, [x, W, b], create_graph=True))

    assert gradcheck(first_grads, ts)


def test_backward_functions_are_adjoints_and_differentiable(rng):
    geom = {"stride": (2, 1), "padding": (1, 0)}
    x = rng.normal(size=(2, 2, 5, 4))
    W = rng.normal(size=(3, 2, 3, 2))
    y = F.conv2d(*_tensors(x, W, requires_grad=False), None, **geom).numpy()
    gy = rng.normal(size=y.shape)
    gyt, Wt, xt = _tensors(gy, W, x)
    ct = conv_ops.TransposedConvolution2d

    def transpose(gy, W):
        return ct.apply(gy, W, x_shape=x.shape, **geom)

    def grad_weight(x, gy):
        return conv_ops.Convolution2dWeightGrad.apply(x, gy, kernel_size=W.shape[2:], **geom)

    # <conv(x, W), gy> == <x, conv_transpose(gy, W)> == <W, grad_weight(x, gy)>
    lhs = float((y * gy).sum())
    assert np.isclose(lhs, float((x * transpose(gyt, Wt).numpy()).sum()), rtol=1e-12)
    assert np.isclose(lhs, float((W * grad_weight(xt, gyt).numpy()).sum()), rtol=1e-12)
    assert gradcheck(transpose, [gyt, Wt]) and gradgradcheck(transpose, [gyt, Wt])
    assert gradcheck(grad_weight, [xt, gyt]) and gradgradcheck(grad_weight, [xt, gyt])


# ------------------------------------------------------------ im2col/col2im


IM2COL_CASES = [((2, 3, 5, 4), 3, 2, 1, 0), ((1, 2, 6, 7), 3, 3, 2, 1), ((2, 1, 5, 5), 2, 3, (1, 2), (0, 1))]


@pytest.mark.parametrize("xs,kh,kw,stride,padding", IM2COL_CASES)
def test_im2col_is_the_books_layout(rng, xs, kh, kw, stride, padding):
    x = rng.normal(size=xs)
    col = F.im2col(em.tensor(x, dtype=em.float64), kh, kw, stride, padding)
    np.testing.assert_array_equal(col.numpy(), naive_book_im2col(x, kh, kw, stride, padding))


@pytest.mark.parametrize("xs,kh,kw,stride,padding", IM2COL_CASES)
def test_col2im_is_the_adjoint_of_im2col(rng, xs, kh, kw, stride, padding):
    x = rng.normal(size=xs)
    col_shape = naive_book_im2col(x, kh, kw, stride, padding).shape
    c = rng.normal(size=col_shape)
    img = F.col2im(em.tensor(c, dtype=em.float64), xs, kh, kw, stride, padding)
    assert img.shape == xs
    lhs = (naive_book_im2col(x, kh, kw, stride, padding) * c).sum()
    assert np.isclose(lhs, (x * img.numpy()).sum(), rtol=1e-12)


def test_im2col_conv_matches_conv2d(rng):
    """The book's conv: im2col rows @ W flattened, reshaped back to NCHW."""
    x, W, b = _inputs(rng, (2, 3, 6, 5), (4, 3, 3, 2), True)
    col = F.im2col(em.tensor(x), 3, 2, 1, 1).numpy()
    y = (col @ W.reshape(4, -1).T + b).reshape(2, 6, 6, 4).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(F.conv2d(*_tensors(x, W, b), 1, 1).numpy(), y, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------- PyTorch parity


@pytest.mark.parametrize("xs,ws,bias,stride,padding", CONFIGS, ids=IDS)
def test_torch_parity_values_and_grads(rng, xs, ws, bias, stride, padding):
    torch = pytest.importorskip("torch")
    x, W, b = _inputs(rng, xs, ws, bias)
    xt, Wt, bt = _tensors(x, W, b)
    y = F.conv2d(xt, Wt, bt, stride, padding)
    gy = rng.normal(size=tuple(y.shape))
    y.backward(em.tensor(gy, dtype=em.float64))

    tx, tW = (torch.tensor(a, requires_grad=True) for a in (x, W))
    tb = torch.tensor(b, requires_grad=True) if bias else None
    ty = torch.nn.functional.conv2d(tx, tW, tb, stride=stride, padding=padding)
    ty.backward(torch.tensor(gy))
    tol = {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), **tol)
    np.testing.assert_allclose(Wt.grad.numpy(), tW.grad.numpy(), **tol)
    if bias:
        np.testing.assert_allclose(bt.grad.numpy(), tb.grad.numpy(), **tol)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2), (1, 0))])
def test_torch_parity_second_order(rng, stride, padding):
    torch = pytest.importorskip("torch")
    x, W, b = _inputs(rng, (2, 3, 6, 5), (4, 3, 3, 2), True)

    def second(lib, grad, xt, Wt, bt, conv):
        loss = (conv(xt, Wt, bt, stride=stride, padding=padding) ** 2).sum()
        gx, gW = grad(loss, [xt, Wt], create_graph=True)
        h = (gx ** 2).sum() + (gW * gW).sum()
        return grad(h, [xt, Wt, bt])

    ours = second(em, em.autograd.grad, *_tensors(x, W, b), F.conv2d)
    theirs = second(torch, torch.autograd.grad, *(torch.tensor(a, requires_grad=True) for a in (x, W, b)),
                    torch.nn.functional.conv2d)
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), t.detach().numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("xs,kh,kw,stride,padding", IM2COL_CASES)
def test_torch_parity_unfold_fold(rng, xs, kh, kw, stride, padding):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=xs)
    col = F.im2col(em.tensor(x), kh, kw, stride, padding).numpy()
    unfolded = torch.nn.functional.unfold(torch.tensor(x), (kh, kw), stride=stride, padding=padding)
    n, k, length = unfolded.shape
    np.testing.assert_array_equal(col, unfolded.transpose(1, 2).reshape(n * length, k).numpy())
    c = rng.normal(size=col.shape)
    folded = torch.nn.functional.fold(torch.tensor(c).reshape(n, length, k).transpose(1, 2), xs[2:],
                                      (kh, kw), stride=stride, padding=padding)
    np.testing.assert_allclose(F.col2im(em.tensor(c), xs, kh, kw, stride, padding).numpy(), folded.numpy(),
                               rtol=1e-12, atol=1e-12)


def test_torch_parity_conv2d_layer_default_init_bounds():
    m = em.nn.Conv2d(3, 8, (3, 5))
    bound = 1 / np.sqrt(3 * 3 * 5)
    for p in (m.weight, m.bias):
        a = p.numpy()
        assert a.dtype == np.float32 and np.abs(a).max() <= bound and np.abs(a).max() > 0.8 * bound


# ------------------------------------------------------------------- errors


def _f64(*shape):
    return em.zeros(*shape, dtype=em.float64)


def test_error_wrong_channels():
    with pytest.raises(em.ShapeError) as e:
        F.conv2d(_f64(2, 1, 8, 8), _f64(4, 3, 3, 3))
    msg = str(e.value)
    assert "conv2d" in msg and "(2, 1, 8, 8)" in msg and "(4, 3, 3, 3)" in msg and "3 channels" in msg


def test_error_kernel_larger_than_padded_input():
    with pytest.raises(em.ShapeError) as e:
        F.conv2d(_f64(1, 1, 2, 2), _f64(1, 1, 5, 5), padding=1)
    msg = str(e.value)
    assert "conv2d" in msg and "(5, 5)" in msg and "(4, 4)" in msg and "(1, 1, 2, 2)" in msg


@pytest.mark.parametrize("kwargs,text", [({"stride": 0}, "stride"), ({"padding": -1}, "padding"),
                                         ({"stride": (1, 0)}, "stride")])
def test_error_bad_stride_or_padding(kwargs, text):
    with pytest.raises(ValueError) as e:
        F.conv2d(_f64(1, 1, 5, 5), _f64(1, 1, 3, 3), **kwargs)
    assert "conv2d" in str(e.value) and text in str(e.value)


def test_error_3d_input():
    with pytest.raises(em.ShapeError) as e:
        F.conv2d(_f64(1, 5, 5), _f64(1, 1, 3, 3))
    assert "conv2d" in str(e.value) and "(N, C, H, W)" in str(e.value) and "(1, 5, 5)" in str(e.value)


def test_error_3d_weight():
    with pytest.raises(em.ShapeError, match=r"conv2d: expected W of shape \(OC, C, KH, KW\)"):
        F.conv2d(_f64(1, 1, 5, 5), _f64(1, 3, 3))


def test_error_dtype_mismatch():
    with pytest.raises(em.DTypeError) as e:
        F.conv2d(em.zeros(1, 1, 5, 5), _f64(1, 1, 3, 3))
    assert "conv2d" in str(e.value) and "float32" in str(e.value) and "float64" in str(e.value)


def test_error_integer_input():
    with pytest.raises(em.DTypeError, match="conv2d.*int64"):
        F.conv2d(em.zeros(1, 1, 5, 5, dtype=em.int64), _f64(1, 1, 3, 3))


def test_error_bias_shape():
    with pytest.raises(em.ShapeError, match=r"conv2d: expected b of shape \(4,\).*got shape \(3,\)"):
        F.conv2d(_f64(1, 1, 5, 5), _f64(4, 1, 3, 3), _f64(3))


def test_error_col2im_shape():
    with pytest.raises(em.ShapeError, match=r"col2im: expected col of shape \(18, 4\)"):
        F.col2im(_f64(18, 5), (2, 1, 4, 4), 2, 2)


def test_error_backward_through_freed_graph(rng):
    xt, Wt = _tensors(*_inputs(rng, (1, 1, 4, 4), (1, 1, 2, 2), False)[:2])
    y = F.conv2d(xt, Wt).sum()
    y.backward()
    with pytest.raises(em.GraphError, match="retain_graph"):
        y.backward()


# ------------------------------------------------------------------- layer


def test_conv2d_layer_forward_backward(rng):
    em.manual_seed(3)
    m = em.nn.Conv2d(2, 3, (3, 2), stride=2, padding=1)
    assert m.weight.shape == (3, 2, 3, 2) and m.bias.shape == (3,)
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    x = em.tensor(rng.normal(size=(4, 2, 7, 6)).astype(np.float32))
    y = m(x)
    ref = naive_conv2d(x.numpy(), m.weight.numpy(), m.bias.numpy(), 2, 1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-5)
    y.sum().backward()
    assert m.weight.grad.shape == (3, 2, 3, 2) and m.bias.grad.shape == (3,)
    em.manual_seed(3)
    np.testing.assert_array_equal(em.nn.Conv2d(2, 3, (3, 2)).weight.numpy(), m.weight.numpy())


def test_conv2d_layer_without_bias_and_repr():
    m = em.nn.Conv2d(1, 30, 5, bias=False)
    assert m.bias is None and [n for n, _ in m.named_parameters()] == ["weight"]
    assert repr(m) == "Conv2d(1, 30, kernel_size=(5, 5), stride=(1, 1), bias=False)"
    assert repr(em.nn.Conv2d(3, 8, 3, padding=1)) == "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert m(em.zeros(2, 1, 8, 8)).shape == (2, 30, 4, 4)


def test_conv2d_layer_channel_error_names_the_layer():
    m = em.nn.Conv2d(1, 30, 5)
    with pytest.raises(em.ShapeError) as e:
        m(em.zeros(100, 3, 28, 28))
    assert str(e.value) == (
        "Conv2d(1, 30, kernel_size=(5, 5)): expected input with 1 channels (N, 1, H, W), got shape (100, 3, 28, 28)"
    )
    with pytest.raises(em.ShapeError, match=r"Conv2d\(1, 30.*got shape \(28, 28\)"):
        m(em.zeros(28, 28))
