"""max_pool2d / avg_pool2d and their layers: naive loops, gradchecks, double backward, PyTorch parity, errors."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember.autograd import gradcheck, gradgradcheck
from ember.nn import functional as F

# (x shape, kernel, stride, padding): stride 1 (overlapping) and 2, padding 0 and 1, odd sizes,
# rectangular kernels, pair strides/paddings, default stride (None = kernel).
CONFIGS = [
    ((2, 3, 6, 6), 2, None, 0),
    ((2, 2, 5, 7), 2, 1, 0),
    ((1, 2, 7, 5), 3, 2, 1),
    ((2, 1, 7, 6), (2, 3), (1, 2), (1, 1)),
    ((1, 3, 5, 5), 3, 1, 1),
    ((1, 2, 9, 8), (3, 2), 2, (1, 0)),
    ((2, 2, 4, 4), 4, None, 0),
]
IDS = [f"x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}".replace(" ", "") for c in CONFIGS]
SMALL = [((1, 2, 5, 5), 2, 1, 0), ((1, 2, 5, 6), 3, 2, 1), ((1, 1, 5, 7), (2, 3), (1, 2), (1, 1))]
SMALL_IDS = [f"x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}".replace(" ", "") for c in SMALL]
POOLS = {"max": F.max_pool2d, "avg": F.avg_pool2d}


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_pool(x, kernel, stride, padding, kind):
    """Window loop in float64; max ignores the padding, avg counts it as zeros."""
    (kh, kw), (ph, pw) = _pair(kernel), _pair(padding)
    sh, sw = _pair(kernel if stride is None else stride)
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    y = np.zeros((n, c, oh, ow))
    for p in range(oh):
        for q in range(ow):
            win = xp[:, :, p * sh : p * sh + kh, q * sw : q * sw + kw]
            y[:, :, p, q] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return y


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs,kernel,stride,padding", CONFIGS, ids=IDS)
def test_forward_matches_naive_loop(cpu_kernels, rng, kind, xs, kernel, stride, padding):
    x = rng.normal(size=xs)
    y = POOLS[kind](em.tensor(x, dtype=em.float64), kernel, stride, padding)
    np.testing.assert_allclose(y.numpy(), naive_pool(x, kernel, stride, padding, kind), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_float32_keeps_dtype(cpu_kernels, rng, kind):
    x = rng.normal(size=(2, 3, 7, 5)).astype(np.float32)
    y = POOLS[kind](em.tensor(x), 3, 2, 1)
    assert y.dtype == em.float32
    np.testing.assert_allclose(y.numpy(), naive_pool(x, 3, 2, 1, kind), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs,kernel,stride,padding", SMALL, ids=SMALL_IDS)
def test_gradcheck(cpu_kernels, rng, kind, xs, kernel, stride, padding):
    x = em.tensor(rng.normal(size=xs), dtype=em.float64, requires_grad=True)
    assert gradcheck(lambda t: POOLS[kind](t, kernel, stride, padding), [x])


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs,kernel,stride,padding", SMALL[:2], ids=SMALL_IDS[:2])
def test_double_backward(cpu_kernels, rng, kind, xs, kernel, stride, padding):
    """Gradient of sum(pool(x)**2) depends on x through gy: checks the backward's own backward."""
    x = em.tensor(rng.normal(size=xs), dtype=em.float64, requires_grad=True)

    def first_grad(t):
        with em.enable_grad():  # gradcheck's numerical pass runs under no_grad
            loss = (POOLS[kind](t, kernel, stride, padding) ** 2).sum()
            return em.autograd.grad(loss, [t], create_graph=True)[0]

    assert gradcheck(first_grad, [x])
    assert gradgradcheck(lambda t: POOLS[kind](t, kernel, stride, padding), [x])


def test_max_pool_ties_route_to_the_first_maximum():
    x = em.tensor(np.ones((1, 1, 2, 4)), dtype=em.float64, requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[1, 0, 1, 0], [0, 0, 0, 0]]]])


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs,kernel,stride,padding", CONFIGS, ids=IDS)
def test_torch_parity(rng, kind, xs, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=xs)
    xt = em.tensor(x, dtype=em.float64, requires_grad=True)
    y = POOLS[kind](xt, kernel, stride, padding)
    gy = rng.normal(size=tuple(y.shape))
    y.backward(em.tensor(gy, dtype=em.float64))
    tx = torch.tensor(x, requires_grad=True)
    tf = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    ty = tf(tx, kernel, stride, padding)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_torch_parity_second_order(rng, kind):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 2, 7, 6))

    def second(grad, xt, pool):
        gx = grad((pool(xt, 3, 2, 1) ** 3).sum(), [xt], create_graph=True)[0]
        return grad((gx * gx).sum(), [xt])[0]

    tf = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    ours = second(em.autograd.grad, em.tensor(x, dtype=em.float64, requires_grad=True), POOLS[kind])
    theirs = second(torch.autograd.grad, torch.tensor(x, requires_grad=True), tf)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_error_3d_input(kind):
    with pytest.raises(em.ShapeError) as e:
        POOLS[kind](em.zeros(3, 8, 8), 2)
    assert f"{kind}_pool2d" in str(e.value) and "(N, C, H, W)" in str(e.value) and "(3, 8, 8)" in str(e.value)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_error_kernel_larger_than_padded_input(kind):
    with pytest.raises(em.ShapeError) as e:
        POOLS[kind](em.zeros(1, 1, 2, 6), (5, 2), padding=(1, 0))
    msg = str(e.value)
    assert f"{kind}_pool2d" in msg and "(5, 2)" in msg and "(4, 6)" in msg and "(1, 1, 2, 6)" in msg


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kwargs,text", [({"stride": 0}, "stride"), ({"padding": 2}, "half the kernel"),
                                         ({"padding": -1}, "padding")])
def test_error_bad_stride_or_padding(kind, kwargs, text):
    with pytest.raises(ValueError) as e:
        POOLS[kind](em.zeros(1, 1, 6, 6), 3, **kwargs)
    assert f"{kind}_pool2d" in str(e.value) and text in str(e.value)


def test_error_bool_input_and_integer_input_pools_like_torch():
    with pytest.raises(em.DTypeError, match="max_pool2d.*bool"):
        F.max_pool2d(em.zeros(1, 1, 4, 4, dtype=em.bool_), 2)
    x = em.arange(16).reshape(1, 1, 4, 4)
    y = F.max_pool2d(x, 2, padding=1)  # the -inf padding never wins, and ints stay ints
    assert y.dtype == em.int64
    np.testing.assert_array_equal(y.numpy()[0, 0], [[0, 2, 3], [8, 10, 11], [12, 14, 15]])


# ------------------------------------------------------------------- layers


def test_pool_layers(rng):
    x = em.tensor(rng.normal(size=(2, 3, 7, 7)).astype(np.float32))
    m = em.nn.MaxPool2d(2)
    assert repr(m) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    np.testing.assert_array_equal(m(x).numpy(), F.max_pool2d(x, 2, 2).numpy())
    a = em.nn.AvgPool2d(3, stride=2, padding=1)
    assert repr(a) == "AvgPool2d(kernel_size=3, stride=2, padding=1)"
    np.testing.assert_allclose(a(x).numpy(), naive_pool(x.numpy(), 3, 2, 1, "avg"), rtol=1e-6, atol=1e-6)
    assert list(m.parameters()) == [] and list(a.parameters()) == []


def test_pool_layer_rejects_bad_geometry_at_construction():
    with pytest.raises(ValueError, match="MaxPool2d.*half the kernel"):
        em.nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="AvgPool2d.*stride"):
        em.nn.AvgPool2d(2, stride=0)
