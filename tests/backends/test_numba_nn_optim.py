"""Numba nn kernels against their NumPy references, and the ops and optimizers on both kernel sets.

Kernel tests compare ``ember.backends.numba.nn`` with ``reference.nn`` on random
inputs of odd sizes in float32 and
float64 (exactly where the compiled loop keeps NumPy's operation order, to a
tolerance where it accumulates in float64), plus the fallbacks (float16,
non-contiguous arrays); the optimizer kernels are in ``test_numba_optim.py``.
Op tests run the gradchecks of the routed ops and the optimizer updates under
both kernel sets (``use_cpu_kernels``).
"""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember import optim
from ember.autograd.registry import OPS
from ember.backends.reference import nn as ref_nn
from ember.backends.numba.backend import numba_installed
from ember.backends.selection import use_cpu_kernels

DTYPES = [np.float32, np.float64]
TOL = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-13}}
KERNEL_SETS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not numba_installed(),
                                                                         reason="numba is not installed"))]


@pytest.fixture(scope="module")
def nb_nn():
    return pytest.importorskip("ember.backends.numba.nn", reason="numba is not installed or cannot be imported")


def _close(a, b, dtype):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_allclose(a, b, **TOL[dtype])


# ------------------------------------------------------- softmax cross-entropy
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (13, 10), (3, 1)])
def test_softmax_cross_entropy_matches_reference(nb_nn, rng, dtype, shape):
    x = (rng.normal(size=shape) * 3).astype(dtype)
    t = rng.integers(0, shape[1], shape[0])
    got, want = nb_nn.softmax_cross_entropy_forward(x, t), ref_nn.softmax_cross_entropy_forward(x, t)
    for a, b in zip(got, want):
        _close(a, b, dtype)
    p = want[1]
    for g in (0.25, rng.normal(size=shape[0]).astype(dtype)):  # mean/sum scale, "none" per row
        _close(nb_nn.softmax_cross_entropy_backward(p, t, g), ref_nn.softmax_cross_entropy_backward(p, t, g), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_extreme_logits_and_nan(nb_nn, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [0.0, np.nan, 1.0]], dtype=dtype)
    t = np.array([1, 2, 0], dtype=np.int32)
    loss, p, shift = nb_nn.softmax_cross_entropy_forward(x, t)
    rloss, rp, rshift = ref_nn.softmax_cross_entropy_forward(x, t)
    np.testing.assert_allclose(loss[:2], [2e4, np.log(3)], rtol=1e-6)
    assert np.isnan(loss[2]) and np.isnan(p[2]).all() and np.isnan(shift[2, 0])  # NaN propagates like NumPy
    for a, b in ((loss, rloss), (p, rp), (shift, rshift)):
        np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True)


def test_softmax_cross_entropy_rejects_out_of_range_indices(nb_nn):
    with pytest.raises(IndexError, match="class index out of range"):
        nb_nn.softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([0, 3]))


# --------------------------------------------------------- activation backward
@pytest.mark.parametrize("name", ["relu_backward", "sigmoid_backward", "tanh_backward"])
@pytest.mark.parametrize("dtype", DTYPES + [np.float16])
@pytest.mark.parametrize("shape", [(3, 5, 7), (1,), (0, 4)])
def test_activation_backward_equals_reference(nb_nn, rng, name, dtype, shape):
    y = rng.uniform(-1, 1, shape).astype(dtype)
    if name == "relu_backward" and y.size:
        y.flat[0] = 0.0  # the kink: subgradient 0
    gy = rng.normal(size=shape).astype(dtype)
    got, want = getattr(nb_nn, name)(y, gy), getattr(ref_nn, name)(y, gy)
    assert got.dtype == want.dtype == dtype
    np.testing.assert_array_equal(got, want)  # same operation order and dtype: bit for bit
    if dtype == np.float16:  # float16 runs the reference itself: check its values independently
        exact = ACTIVATION_BACKWARD[name](y.astype(np.float64), gy.astype(np.float64))
        np.testing.assert_allclose(got.astype(np.float64), exact, rtol=3e-3, atol=1e-4)


ACTIVATION_BACKWARD = {  # closed forms in float64, from the activation's output y
    "relu_backward": lambda y, g: np.where(y > 0, g, 0.0),
    "sigmoid_backward": lambda y, g: g * y * (1 - y),
    "tanh_backward": lambda y, g: g * (1 - y * y),
}


@pytest.mark.parametrize("name", ["relu_backward", "sigmoid_backward", "tanh_backward"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_backward_in_pool_parts_equals_reference(pool_parts, nb_nn, rng, name, dtype):
    y = rng.uniform(-1, 1, (7, 3, 5)).astype(dtype)  # 105 elements: parts of 48 and 57, edges on 16
    gy = rng.normal(size=y.shape).astype(dtype)
    np.testing.assert_array_equal(getattr(nb_nn, name)(y, gy), getattr(ref_nn, name)(y, gy))
    assert pool_parts == [2]


@pytest.mark.parametrize("name", ["relu_backward", "sigmoid_backward", "tanh_backward"])
def test_activation_backward_non_contiguous_and_broadcast_inputs(nb_nn, rng, name):
    y = rng.uniform(-1, 1, (6, 5)).T  # transposed view
    gy = np.broadcast_to(np.float64(0.5), (5, 6))  # what sum() sends back
    got = getattr(nb_nn, name)(y, gy)
    np.testing.assert_array_equal(got, getattr(ref_nn, name)(y, gy))
    np.testing.assert_allclose(got, ACTIVATION_BACKWARD[name](y, gy), rtol=1e-15)  # values, not only routing


@pytest.mark.parametrize("dtype", DTYPES + [np.float16])
@pytest.mark.parametrize("shape", [(3, 5, 7), (1,), (0, 4), ()])
def test_relu_forward_equals_reference(nb_nn, rng, dtype, shape):
    x = np.asarray(rng.normal(size=shape)).astype(dtype)
    if x.size > 3:
        x.flat[:3] = [0.0, np.nan, -0.0]  # the kink, NaN passes through, negative zero
    got, want = nb_nn.relu_forward(x), ref_nn.relu_forward(x)
    assert got.dtype == want.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, np.where(x > 0, x, np.where(np.isnan(x), x, 0)).astype(dtype))
    if x.size > 3:
        assert np.isnan(got.flat[1]) and got.flat[2] == 0


def test_relu_forward_in_pool_parts_and_non_contiguous(pool_parts, nb_nn, rng):
    x = rng.normal(size=(7, 3, 5)).astype(np.float32)
    x.flat[50:53] = [np.nan, -0.0, 0.0]  # across the first part edge (48)
    np.testing.assert_array_equal(nb_nn.relu_forward(x), ref_nn.relu_forward(x))
    assert pool_parts == [2]
    xt = rng.normal(size=(6, 5)).T  # transposed view: the reference path
    np.testing.assert_array_equal(nb_nn.relu_forward(xt), np.maximum(xt, 0))


def test_part_edges_cover_the_array_on_cache_line_boundaries():
    from ember.backends.numba.pool_flat import ALIGN, part_edge

    for size in (0, 1, 15, 16, 17, 105, 65536, 401408, 1000003):
        for count in (1, 2, 3, 8):
            edges = [part_edge(size, p, count) for p in range(count + 1)]
            assert edges[0] == 0 and edges[-1] == size
            assert all(a <= b for a, b in zip(edges, edges[1:])), (size, count, edges)
            assert all(e % ALIGN == 0 for e in edges[:-1]), (size, count, edges)
            assert max(b - a for a, b in zip(edges, edges[1:])) <= -(-size // count) + ALIGN


# ------------------------------------------------------------------ batch norm
BN_SHAPES = [(2, 3), (5, 4), (3, 4, 5), (3, 4, 5, 6), (1, 3, 2, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_reference(nb_nn, rng, dtype, shape, affine):
    """Numba accumulates in float64: compare it with the reference run on the same values in float64."""
    C = shape[1]
    x = (rng.normal(size=shape) * 3 + 50).astype(dtype)  # an offset mean tests the centring
    w = rng.normal(size=C).astype(dtype) if affine else None
    b = rng.normal(size=C).astype(dtype) if affine else None

    def f64(a):
        return None if a is None else a.astype(np.float64)

    def close(a, r):
        assert a.dtype == dtype and a.shape == r.shape
        np.testing.assert_allclose(a, r, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] * np.abs(r).max())

    got = nb_nn.batch_norm_forward_train(x, w, b, 1e-5)
    want = ref_nn.batch_norm_forward_train(f64(x), f64(w), f64(b), 1e-5)
    for a, r in zip(got, want):
        close(a, r)
    mean, inv_std = got[1], got[3]
    gy = rng.normal(size=shape).astype(dtype)
    for training in (True, False):
        ours = nb_nn.batch_norm_backward(x, gy, mean, inv_std, w, training)
        theirs = ref_nn.batch_norm_backward(f64(x), f64(gy), f64(mean), f64(inv_std), f64(w), training)
        for a, r in zip(ours, theirs):
            close(a, r)
    gx, gw, gb = nb_nn.batch_norm_backward(x, gy, mean, inv_std, w, True, need_x=False, need_w=False)
    assert gx is None and gw is None and gb is not None


def test_batch_norm_float16_falls_back_to_reference(nb_nn, rng):
    x = rng.normal(size=(4, 3, 2, 2)).astype(np.float16)
    w = rng.normal(size=3).astype(np.float32)
    got, want = nb_nn.batch_norm_forward_train(x, w, None, 1e-5), ref_nn.batch_norm_forward_train(x, w, None, 1e-5)
    for a, r in zip(got, want):
        assert a.dtype == r.dtype
        np.testing.assert_array_equal(a, r)
    # The values, against a float64 computation on the same float16 inputs (statistics come back in float32).
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    y = (x64 - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5) * w[None, :, None, None]
    y_got, mean_got, var_got, inv_std_got = got
    assert y_got.dtype == np.float16 and mean_got.dtype == np.float32
    np.testing.assert_allclose(y_got.astype(np.float64), y, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(mean_got.reshape(-1), mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(var_got.reshape(-1), var, rtol=1e-5)
    np.testing.assert_allclose(inv_std_got.reshape(-1), 1 / np.sqrt(var + 1e-5), rtol=1e-5)


# --------------------------------------------------------------------- dropout
def test_numba_namespace_serves_the_compiled_philox_dropout(nb_nn):
    from ember.backends.numba import philox as nb_philox

    assert nb_nn.dropout_mask is nb_philox.dropout_mask  # bit-equal to the twin: tests/backends/test_philox.py


# The mask's stream and edges are tested in tests/backends/test_philox.py (the Philox twin).


# ----------------------------------------------------- ops on both kernel sets
ROUTED_OPS = ["cross_entropy", "relu", "sigmoid", "tanh", "batch_norm", "dropout"]


def _registry_cases():
    return [pytest.param(name, k, id=f"{name}-{k}") for name in ROUTED_OPS
            for k in range(len(OPS[name].samples(np.random.default_rng(1234))))]


def _instantiate(name, k):
    s = OPS[name].samples(np.random.default_rng(1234))[k]
    args = [em.tensor(a, dtype=em.float64, requires_grad=True) if isinstance(a, np.ndarray) and a.dtype == np.float64
            else a for a in s.args]
    tensors = [a for a in args if isinstance(a, em.Tensor)]

    def fn(*ts):
        it = iter(ts)
        return OPS[name].fn(*[next(it) if isinstance(a, em.Tensor) else a for a in args], **s.kwargs)

    return fn, tensors


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("name,k", _registry_cases())
def test_routed_op_gradchecks_on_both_kernel_sets(kernels, name, k):
    with use_cpu_kernels(kernels):
        fn, tensors = _instantiate(name, k)
        assert em.autograd.gradcheck(fn, tensors)
        assert em.autograd.gradgradcheck(fn, tensors)


def _tiny_training_run(opt_name, opt_kw, steps=3):
    """A few steps of linear -> batch_norm -> relu/sigmoid/tanh -> dropout -> linear -> cross_entropy (float64)."""
    em.manual_seed(0)
    data = np.random.default_rng(3)
    x = em.tensor(data.normal(size=(9, 6)), dtype=em.float64)
    t = em.tensor(data.integers(0, 4, 9))
    W1 = em.tensor(data.normal(size=(5, 6)) * 0.4, dtype=em.float64, requires_grad=True)
    W2 = em.tensor(data.normal(size=(4, 5)) * 0.4, dtype=em.float64, requires_grad=True)
    gamma = em.ones(5, dtype=em.float64, requires_grad=True)
    beta = em.zeros(5, dtype=em.float64, requires_grad=True)
    rm, rv = em.zeros(5, dtype=em.float64), em.ones(5, dtype=em.float64)
    params = [W1, W2, gamma, beta]
    opt = getattr(optim, opt_name)(params, **opt_kw)
    losses = []
    for _ in range(steps):
        h = em.nn.functional.batch_norm(em.nn.functional.linear(x, W1), rm, rv, gamma, beta, training=True)
        h = em.nn.functional.dropout(h.relu() + h.sigmoid() + h.tanh(), 0.25)
        loss = em.nn.functional.cross_entropy(em.nn.functional.linear(h, W2), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.numpy().copy() for p in params + [rm, rv]]


@pytest.mark.skipif(not numba_installed(), reason="numba is not installed")
@pytest.mark.parametrize("opt_name,opt_kw", [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
])
def test_training_steps_agree_across_kernel_sets(opt_name, opt_kw):
    with use_cpu_kernels("numpy"):
        ref_losses, ref_params = _tiny_training_run(opt_name, opt_kw)
    with use_cpu_kernels("numba"):
        losses, params = _tiny_training_run(opt_name, opt_kw)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("name,kw", [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {"lr": 0.02, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}),
])
def test_optimizer_torch_parity_on_both_kernel_sets(kernels, name, kw):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this parity check")
    rng = np.random.default_rng(0)
    x0 = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    grads = [[rng.standard_normal(x.shape) * (1 + 2 * (s % 2)) for x in x0] for s in range(3)]
    with use_cpu_kernels(kernels):
        ours = [em.tensor(x.copy(), dtype=em.float64, requires_grad=True) for x in x0]
        opt = getattr(optim, name)(ours, **kw)
        for step in grads:
            for p, g in zip(ours, step):
                p.grad = em.tensor(g, dtype=em.float64)
            opt.step()
    theirs = [torch.tensor(x.copy(), requires_grad=True) for x in x0]
    topt = getattr(torch.optim, name)(theirs, **kw)
    for step in grads:
        for p, g in zip(theirs, step):
            p.grad = torch.tensor(g)
        topt.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-15)
