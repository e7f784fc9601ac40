"""GPU checks (marker ``gpu``) of CUDA-graph capture: ``ember.cuda.graph`` and ``ember.compile`` on a real device.

N replayed steps must equal N eager steps from the same start. With
``EMBER_OWN_GEMM=always`` semantics (``device_gemm.ALWAYS``) eager and replayed
steps make the same cuBLAS calls, so they must agree bit for bit; with the
default (CuPy's matmul eagerly, ember's handle in the graph) cuBLAS may pick
other kernels, so they agree to float32 rounding.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.backends import device_gemm

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not em.cuda.is_available(),
                       reason='needs CuPy and a CUDA GPU (pip install -e ".[gpu]" on an NVIDIA machine)'),
]


def _model(name):
    if name == "SimpleConvNet":
        return em.models.SimpleConvNet((1, 28, 28)), (1, 28, 28)
    if name == "DeepConvNet":
        return em.models.DeepConvNet((1, 28, 28)), (1, 28, 28)
    return em.models.TwoLayerNet((1, 28, 28), 50, 10), (1, 28, 28)


def _train(name, compiled, n=6, amp=False, opt_name="adam"):
    """Losses, parameters and (AMP) scales after ``n`` steps with an lr changed outside the step."""
    em.manual_seed(0)
    model, shape = _model(name)
    model = model.to("cuda")
    model.train()
    opt = (em.optim.Adam(model.parameters(), lr=1e-3) if opt_name == "adam"
           else em.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    scaler = em.amp.GradScaler(init_scale=2.0**20, growth_interval=2) if amp else None

    def step(x, t):
        opt.zero_grad()
        if amp:
            with em.amp.autocast(dtype=em.float16):
                loss = em.nn.functional.cross_entropy(model(x), t)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss = em.nn.functional.cross_entropy(model(x), t)
            loss.backward()
            opt.step()
        return loss

    run = em.compile(step) if compiled else step
    rng = numpy.random.default_rng(1)
    out = []
    for i in range(n):
        for group in opt.param_groups:
            group["lr"] = group["lr"] * (0.5 if i == 3 else 1.0)  # a schedule change after the capture
        x = em.tensor(rng.normal(size=(100, *shape)).astype(numpy.float32), device="cuda")
        t = em.tensor(rng.integers(0, 10, 100), device="cuda")
        loss = run(x, t)
        out.append((loss.item(), scaler.get_scale() if amp else None))
    return out, [p.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("name", ["TwoLayerNet", "SimpleConvNet", "DeepConvNet"])
@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_replayed_steps_equal_eager_bit_for_bit_with_the_same_gemms(name, opt_name, monkeypatch):
    monkeypatch.setattr(device_gemm, "ALWAYS", True)
    eager = _train(name, False, opt_name=opt_name)  # DeepConvNet with dropout: masks from the device generator
    replayed = _train(name, True, opt_name=opt_name)
    assert replayed[0] == eager[0]
    for a, b in zip(replayed[1], eager[1]):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["TwoLayerNet", "SimpleConvNet"])
def test_replayed_steps_match_eager_cupy_matmul(name):
    eager, replayed = _train(name, False), _train(name, True)
    numpy.testing.assert_allclose([v for v, _ in replayed[0]], [v for v, _ in eager[0]], rtol=1e-4)
    for a, b in zip(replayed[1], eager[1]):
        numpy.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_deep_convnet_with_dropout_matches_eager_cupy_matmul():
    eager, replayed = _train("DeepConvNet", False), _train("DeepConvNet", True)
    numpy.testing.assert_allclose([v for v, _ in replayed[0]], [v for v, _ in eager[0]], rtol=1e-4)


# DeepConvNet: 16 parameters, more than the 8 arrays CuPy joins without a host-uploaded pointer table
@pytest.mark.parametrize("name", ["TwoLayerNet", "SimpleConvNet", "DeepConvNet"])
def test_amp_with_grad_scaler_replays_like_eager(name, monkeypatch):
    monkeypatch.setattr(device_gemm, "ALWAYS", True)
    eager, replayed = _train(name, False, amp=True), _train(name, True, amp=True)
    assert [s for _, s in replayed[0]] == [s for _, s in eager[0]]
    numpy.testing.assert_allclose([v for v, _ in replayed[0]], [v for v, _ in eager[0]], rtol=1e-3)
    for a, b in zip(replayed[1], eager[1]):
        numpy.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_low_level_graph_with_gemm_and_private_pool():
    import cupy

    x = em.tensor(numpy.ones((64, 32), numpy.float32), device="cuda")
    w = em.tensor(numpy.full((32, 16), 0.5, numpy.float32), device="cuda", requires_grad=True)
    with pytest.raises(NotImplementedError, match="cuBLAS"):  # why ember needs a handle of its own
        s = cupy.cuda.Stream(non_blocking=True)
        with s:
            s.begin_capture()
            try:
                cupy.matmul(x.data, w.data)
            finally:
                s.end_capture()
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):
        y = (x @ w).relu().sum()
        y.backward()
    assert g.pool() is not cupy.get_default_memory_pool()
    x.data[...] = 2.0
    used = cupy.get_default_memory_pool().used_bytes()
    for _ in range(3):
        w.grad.data[...] = 0
        g.replay()
    em.cuda.synchronize()
    assert cupy.get_default_memory_pool().used_bytes() == used  # replays allocate nothing
    assert y.item() == pytest.approx(64 * 16 * 2 * 32 * 0.5)
    numpy.testing.assert_allclose(w.grad.numpy(), numpy.full((32, 16), 128.0))


def test_own_gemm_equals_cupy_matmul_for_transposed_operands():
    import cupy

    from ember.backends.cupy import cublas

    rng = numpy.random.default_rng(0)
    for dtype, tol in ((numpy.float32, 1e-5), (numpy.float64, 1e-12), (numpy.float16, 1e-2)):
        a = cupy.asarray(rng.normal(size=(300, 70)).astype(dtype))
        b = cupy.asarray(rng.normal(size=(90, 70)).astype(dtype))
        for x, y in ((a, b.T), (a[:, :50], b.T[:50]), (b, a.T)):
            numpy.testing.assert_allclose(cublas.matmul(x, y, cupy).get().astype(numpy.float64),
                                          cupy.matmul(x, y).get().astype(numpy.float64), rtol=tol, atol=tol * 10)


def test_joins_of_many_tensors_and_clipping_capture_and_replay():
    rng = numpy.random.default_rng(2)
    x = em.tensor(rng.normal(size=(12, 5)).astype(numpy.float32), device="cuda", requires_grad=True)

    def step():
        x.grad = None
        rows = [x[i] * (i + 1) for i in range(12)]
        total = (em.stack(rows) ** 2).sum() + sum((p * p).sum() for p in em.split(em.cat(rows), 5))
        total.backward()
        norm = em.nn.utils.clip_grad_norm_([x], 1.0)
        return total, norm

    eager = [t.item() for t in step()]
    eager_grad = x.grad.numpy().copy()
    g = em.cuda.CUDAGraph()
    with em.cuda.graph(g):
        out = step()
    g.replay()
    numpy.testing.assert_allclose([t.item() for t in out], eager, rtol=1e-6)
    numpy.testing.assert_allclose(x.grad.numpy(), eager_grad, rtol=1e-6)
