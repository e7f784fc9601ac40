"""GPU checks (marker ``gpu``): every op on cuda equals cpu, float64 gradcheck on cuda, each CUDA
kernel against the reference, and the seeds' networks training on cuda to the cpu accuracy.

Run on a machine with CuPy and a GPU: ``PYTHONPATH=. python -m pytest -m gpu -q``.  Everything
skips with a reason elsewhere (and the default ``-m "not gpu"`` deselects it).
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.autograd.registry import OPS
from op_sweep import args_on, assert_same, cases, run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not em.cuda.is_available(),
                       reason='needs CuPy and a CUDA GPU (pip install -e ".[gpu]" on an NVIDIA machine)'),
]

CORE_OPS = ("add", "sub", "mul", "div", "pow", "matmul", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "sum",
            "mean", "amax", "var", "softmax", "log_softmax", "cross_entropy", "mse_loss", "linear", "conv2d",
            "im2col", "col2im", "max_pool2d", "avg_pool2d", "batch_norm", "getitem", "cat", "stack", "where",
            "transpose", "reshape", "broadcast_to")

def test_cuda_tensors_are_cupy_arrays():
    import cupy

    t = em.ones(2, 3, device="cuda")
    assert isinstance(t.data, cupy.ndarray) and t.device == "cuda:0"
    assert t.cpu().device == "cpu" and t.cuda().device == "cuda:0"


@pytest.mark.parametrize("name,k", cases())
def test_op_forward_backward_on_cuda_equals_cpu(name, k):
    assert_same(run(name, k, "cuda"), run(name, k, "cpu"))


@pytest.mark.parametrize("name,k", cases(CORE_OPS))
def test_gradcheck_float64_on_cuda(name, k):
    args, kwargs, leaves = args_on(name, k, "cuda", em.float64)
    slots = [i for i, a in enumerate(args) if any(a is t for t in leaves)]
    if not slots:  # leaves inside lists (cat/stack)
        def fn(*ts):
            it = iter(ts)
            rebuilt = [[next(it) for _ in a] if isinstance(a, list) else a for a in args]
            return OPS[name].fn(*rebuilt, **kwargs).cpu()
    else:
        def fn(*ts):
            rebuilt = list(args)
            for i, t in zip(slots, ts):
                rebuilt[i] = t
            return OPS[name].fn(*rebuilt, **kwargs).cpu()  # seeds of the checker live on the cpu
    assert em.autograd.gradcheck(fn, leaves)


# ------------------------------------------------------------------------ kernels
GEOMETRIES = [(2, 3, 7, 5, 3, 3, 2, 1), (1, 2, 5, 6, 2, 3, (2, 1), (1, 0)), (3, 1, 9, 9, 3, 3, 2, 1),
              (64, 16, 28, 28, 5, 5, 1, 2), (100, 30, 24, 24, 2, 2, 2, 0)]
TOL = {numpy.float16: 3e-3, numpy.float32: 1e-5, numpy.float64: 1e-12}


def _close(gpu, ref, dtype):
    import cupy

    numpy.testing.assert_allclose(cupy.asnumpy(gpu).astype(float), numpy.asarray(ref, float),
                                  rtol=TOL[dtype], atol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize("geo", GEOMETRIES)
def test_conv_and_pool_kernels_equal_reference(geo, dtype):
    import cupy

    from ember.backends.reference import conv as rc
    from ember.backends.cupy import conv as cupy_conv
    from ember.backends.cupy import pool as cupy_pool
    from ember.backends.reference import pool as rp

    n, c, h, w, kh, kw, s, p = geo
    x = numpy.random.default_rng(0).normal(size=(n, c, h, w)).astype(dtype)
    xd = cupy.asarray(x)
    col = cupy_conv.im2col(xd, kh, kw, s, p, xp=cupy)
    assert numpy.array_equal(cupy.asnumpy(col), rc.im2col(x, kh, kw, s, p))
    g = numpy.random.default_rng(1).normal(size=col.shape).astype(dtype)
    _close(cupy_conv.col2im(cupy.asarray(g), x.shape, kh, kw, s, p, xp=cupy), rc.col2im(g, x.shape, kh, kw, s, p), dtype)
    if kh == kw and not isinstance(p, tuple) and p <= kh // 2:
        y, am = cupy_pool.max_pool2d_forward(xd, kh, kw, s, p, xp=cupy)
        y_ref, am_ref = rp.max_pool2d_forward(x, kh, kw, s, p)
        assert numpy.array_equal(cupy.asnumpy(y), y_ref) and numpy.array_equal(cupy.asnumpy(am), am_ref)
        gy = numpy.random.default_rng(2).normal(size=y.shape).astype(dtype)
        _close(cupy_pool.max_pool2d_backward(cupy.asarray(gy), am, x.shape, kh, kw, s, p, xp=cupy),
               rp.max_pool2d_backward(gy, am_ref, x.shape, kh, kw, s, p), dtype)
        _close(cupy_pool.avg_pool2d_forward(xd, kh, kw, s, p, xp=cupy), rp.avg_pool2d_forward(x, kh, kw, s, p), dtype)
        _close(cupy_pool.avg_pool2d_backward(cupy.asarray(gy), x.shape, kh, kw, s, p, xp=cupy),
               rp.avg_pool2d_backward(gy, x.shape, kh, kw, s, p), dtype)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_nn_bn_and_optimizer_kernels_equal_reference(dtype):
    import cupy

    from ember.backends.cupy import nn as cupy_nn

    from ember.backends.cupy import optim as cupy_optim
    from ember.backends.reference import nn as rn
    from ember.backends.reference import optim as ro

    rng = numpy.random.default_rng(0)
    x, t = (rng.normal(size=(300, 10)) * 4).astype(dtype), rng.integers(0, 10, 300)
    for a, b in zip(cupy_nn.softmax_cross_entropy_forward(cupy.asarray(x), cupy.asarray(t), xp=cupy),
                    rn.softmax_cross_entropy_forward(x, t)):
        _close(a, b, dtype)
    p = rn.softmax_cross_entropy_forward(x, t)[1]
    _close(cupy_nn.softmax_cross_entropy_backward(cupy.asarray(p), cupy.asarray(t), 0.01, xp=cupy),
           rn.softmax_cross_entropy_backward(p, t, 0.01), dtype)
    y, gy = rng.normal(size=(50, 70)).astype(dtype), rng.normal(size=(50, 70)).astype(dtype)
    for name in ("relu_backward", "sigmoid_backward", "tanh_backward"):
        _close(getattr(cupy_nn, name)(cupy.asarray(y), cupy.asarray(gy), xp=cupy), getattr(rn, name)(y, gy), dtype)
    xb = rng.normal(size=(32, 16, 9, 9)).astype(dtype)
    wb, bb = rng.normal(size=16).astype(dtype), rng.normal(size=16).astype(dtype)
    ours = cupy_nn.batch_norm_forward_train(cupy.asarray(xb), cupy.asarray(wb), cupy.asarray(bb), 1e-5, xp=cupy)
    ref = rn.batch_norm_forward_train(xb, wb, bb, 1e-5)
    for a, b in zip(ours, ref):
        _close(a, b, dtype)
    gyb = rng.normal(size=xb.shape).astype(dtype)
    for a, b in zip(cupy_nn.batch_norm_backward(cupy.asarray(xb), cupy.asarray(gyb), ours[1], ours[3],
                                                cupy.asarray(wb), True, xp=cupy),
                    rn.batch_norm_backward(xb, gyb, ref[1], ref[3], wb, True)):
        numpy.testing.assert_allclose(cupy.asnumpy(a), b, rtol=1e-4 if dtype == numpy.float32 else 1e-10, atol=1e-4)
    w, g, m, v = (rng.normal(size=(1000,)).astype(dtype) for _ in range(4))
    v = numpy.abs(v)
    wd, md, vd = cupy.asarray(w), cupy.asarray(m), cupy.asarray(v)
    kw = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2,
          "decoupled_weight_decay": True, "maximize": False}
    cupy_optim.adam_update(wd, cupy.asarray(g), md, vd, None, step=3, xp=cupy, **kw)
    ro.adam_update(w, g, m, v, None, step=3, **kw)
    for a, b in ((wd, w), (md, m), (vd, v)):
        _close(a, b, dtype)


# ----------------------------------------------------------------------- training
def _data():
    from ember.data import DatasetError
    from ember.training.datasets import load_data

    for name in ("fashion-mnist", "digits"):
        try:
            return load_data(name, max_train=4000, max_test=1000, seed=0)
        except (DatasetError, ImportError, OSError):
            continue
    pytest.skip("neither Fashion-MNIST ($EMBER_DATA) nor scikit-learn's digits is available")


def _train(make, data, device: str, epochs: int = 2) -> float:
    em.manual_seed(0)
    model = make(data).to(device)
    opt = em.optim.Adam(model.parameters(), lr=1e-3)
    loader = em.data.DataLoader(data.train, batch_size=100, shuffle=True, seed=0, device=device)
    for _ in range(epochs):
        for x, t in loader:
            opt.zero_grad()
            em.nn.functional.cross_entropy(model(x), t).backward()
            opt.step()
    x_te, t_te = data.test.arrays()
    with em.no_grad():
        pred = model(em.tensor(x_te, device=device)).argmax(axis=1).numpy()
    return float((pred == t_te).mean())


MODELS = {
    "SimpleConvNet": lambda d: em.models.SimpleConvNet(input_dim=d.input_dim, output_size=d.num_classes),
    "TwoLayerNet": lambda d: em.models.TwoLayerNet(int(numpy.prod(d.input_dim)), 50, d.num_classes),
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_network_trains_on_cuda_to_cpu_accuracy(model):
    data = _data()
    epochs = 2 if data.name == "fashion-mnist" else 30  # digits: 1438 samples, 15 steps per epoch
    acc_cpu = _train(MODELS[model], data, "cpu", epochs)
    acc_gpu = _train(MODELS[model], data, "cuda", epochs)
    assert acc_cpu > 0.5, f"{model} on cpu learned too little ({acc_cpu:.3f}) for the comparison to mean much"
    assert abs(acc_gpu - acc_cpu) <= 0.02, f"{model} on {data.name}: cuda {acc_gpu:.3f} vs cpu {acc_cpu:.3f}"
