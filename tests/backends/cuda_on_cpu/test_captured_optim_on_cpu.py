"""The device-scalar optimizer kernels of CUDA graphs (``optim_captured``), compiled as host C++.

Reading ``lr``, Adam's coefficients and SGD's first-step flag from a device
array must give the eager multi-tensor kernels' bits, a set skip flag must
leave every array untouched, and the prep kernels must advance Adam's count
(and settle SGD's first step) only for steps that are not skipped.
"""

from __future__ import annotations

import numpy
import pytest
from compiled_launch import patch_launches
from host_cuda import compiler
from kernel_specs import cuda_wrappers

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++): the CUDA sources cannot run here")

K = cuda_wrappers()
SHAPES = [(0,), (3, 4), (1,), (37,), (2, 1, 3)]


@pytest.fixture(params=["device_config", "one_block", "grid_smaller_than_work"])
def launches(request, monkeypatch):
    seen: list = []

    class Recorder(set):
        def add(self, name):
            seen.append(name)

    patch_launches(monkeypatch, request.param, Recorder())
    return seen


def _arrays(rng, dtype, positive=False):
    out = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    return [numpy.abs(a) for a in out] if positive else out


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_sgd_reads_lr_and_first_step_from_the_device(launches, dtype, rng):
    oc = K.optim_captured
    kw = {"momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-2, "nesterov": False, "maximize": False}
    w = _arrays(rng, dtype)
    eager = [a.copy() for a in w], [numpy.empty_like(a) for a in w]
    dev = [a.copy() for a in w], [numpy.empty_like(a) for a in w]
    sc = numpy.array([0.0, 0.0, 1.0, 0.0])  # [lr, skip, first pending, first step]
    for step, (lr, skip) in enumerate([(0.1, 0), (0.1, 1), (0.05, 0), (0.02, 0)]):
        g = _arrays(rng, dtype)
        sc[0], sc[1] = lr, skip
        before = [a.copy() for a in dev[0] + dev[1]]
        launches.clear()
        oc.sgd_update_many(dev[0], g, dev[1], sc, xp=numpy, **kw)
        assert launches == ["ember_sgd_prep", "ember_sgd_update_many_dev"]
        if skip:
            for a, b in zip(dev[0] + dev[1], before):
                numpy.testing.assert_array_equal(a, b)
            assert sc[2] == 0.0 or step == 1
            continue
        K.optim.sgd_update_many(eager[0], g, eager[1], lr=lr, first_step=step == 0, **kw)
        for a, b in zip(dev[0] + dev[1], eager[0] + eager[1]):
            numpy.testing.assert_array_equal(a, b)
        assert sc[2] == 0.0 and sc[3] == float(step == 0)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_counts_steps_on_the_device_and_skips(launches, dtype, decoupled, rng):
    oc = K.optim_captured
    kw = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2, "decoupled_weight_decay": decoupled,
          "maximize": False}
    w = _arrays(rng, dtype)
    state = lambda: ([a.copy() for a in w], [numpy.zeros_like(a) for a in w], [numpy.zeros_like(a) for a in w])
    eager, dev = state(), state()
    sc = numpy.zeros(oc.ADAM_SIZE)
    sc[oc.ADAM_WD] = kw["weight_decay"]
    t = 0
    for lr, skip in [(1e-3, 0), (1e-3, 1), (5e-4, 0), (2e-4, 0)]:
        g = _arrays(rng, dtype)
        sc[oc.ADAM_LR], sc[oc.ADAM_SKIP] = lr, skip
        before = [a.copy() for part in dev for a in part]
        oc.adam_update_many(dev[0], g, dev[1], dev[2], [None] * len(w), sc, xp=numpy, **kw)
        if skip:
            assert [a.tolist() for part in dev for a in part] == [a.tolist() for a in before] and sc[oc.ADAM_T] == t
            continue
        t += 1
        assert sc[oc.ADAM_T] == t
        numpy.testing.assert_array_equal(sc[3:6], oc.adam_coefficients(lr, t, 0.9, 0.999, kw["weight_decay"]))
        K.optim.adam_update_many(eager[0], g, eager[1], eager[2], [None] * len(w), step=t, lr=lr, **kw)
        for a, b in zip([a for part in dev for a in part], [a for part in eager for a in part]):
            numpy.testing.assert_array_equal(a, b)
