"""The multi-tensor optimizer kernels (one launch for a list of parameters), compiled as host C++.

Each list mixes sizes, including one-element and empty tensors (first, inside and last),
and runs over several steps under every launch shape.  The one-launch update must equal
the per-parameter kernel bit for bit, and the readable reference bit for bit in float32 and
float64 (float16 storage: the kernel computes in float32, the reference in float16, so
there it is compared within rounding, against Adam's reference run in float32, as the
optimizer runs float16 parameters).
"""

from __future__ import annotations

import numpy
import pytest
from compiled_launch import patch_launches
from host_cuda import compiler
from kernel_specs import cuda_wrappers, references

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++): the CUDA sources cannot run here")

K, R = cuda_wrappers(), references()
FLOATS = [numpy.float16, numpy.float32, numpy.float64]
SHAPES = [(0,), (3, 4), (1,), (0, 3), (37,), (2, 1, 3), (1,), (0,)]
SHAPE_SETS = {"mixed": SHAPES, "many_tiny": [(n,) for n in (0, 1, 2, 3, 0, 5, 1, 4, 2, 0, 3, 1) * 3]}


@pytest.fixture(params=["device_config", "one_block", "many_small_blocks", "grid_smaller_than_work"])
def launches(request, monkeypatch):
    """Route launches to the compiled kernels with one launch shape; yields the list of kernels launched."""
    seen: list = []

    class Recorder(set):
        def add(self, name):
            seen.append(name)

    patch_launches(monkeypatch, request.param, Recorder())
    return seen


def _arrays(rng, shapes, dtype, positive=False):
    out = [rng.normal(size=s).astype(dtype) for s in shapes]
    return [numpy.abs(a) for a in out] if positive else out


def _same(a, b, dtype):
    for u, v in zip(a, b):
        if dtype == numpy.float16:
            numpy.testing.assert_allclose(u.astype(float), v.astype(float), rtol=4e-3, atol=4e-3)
        else:
            numpy.testing.assert_array_equal(u, v)


SGD_OPTIONS = [
    {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": False},
    {"momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-2, "nesterov": True, "maximize": False},
    {"momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-2, "nesterov": False, "maximize": True},
]


@pytest.mark.parametrize("shapes", sorted(SHAPE_SETS))
@pytest.mark.parametrize("dtype", FLOATS)
def test_sgd_many_equals_per_parameter_and_reference(launches, shapes, dtype, rng):
    shapes = SHAPE_SETS[shapes]
    for kw in SGD_OPTIONS:
        w = _arrays(rng, shapes, dtype)
        bufs = [None] * len(w) if kw["momentum"] == 0 else [numpy.empty_like(a) for a in w]
        many, single, ref = ([a.copy() for a in w], [None if b is None else b.copy() for b in bufs]), \
            ([a.copy() for a in w], [None if b is None else b.copy() for b in bufs]), \
            ([a.copy() for a in w], [None if b is None else b.copy() for b in bufs])
        for step in range(3):
            g = _arrays(rng, shapes, dtype)
            first = step == 0 and kw["momentum"] != 0
            launches.clear()
            K.optim.sgd_update_many(many[0], g, many[1], lr=0.1, first_step=first, **kw)
            assert launches == ["ember_sgd_update_many"]
            for a, ga, b in zip(single[0], g, single[1]):
                K.optim.sgd_update(a, ga, b, lr=0.1, first_step=first, **kw)
            R.optim.sgd_update_many(ref[0], g, ref[1], lr=0.1, first_step=first, **kw)
            for u, v in zip(many[0] + many[1], single[0] + single[1]):
                if u is not None:
                    assert u.dtype == v.dtype and numpy.array_equal(u, v)
            _same([u for u in many[0] + many[1] if u is not None], [u for u in ref[0] + ref[1] if u is not None], dtype)


ADAM_OPTIONS = [(0.0, False, False, 0.9, False), (1e-2, True, True, 0.3, True), (1e-2, False, True, 0.9, False)]


@pytest.mark.parametrize("shapes", sorted(SHAPE_SETS))
@pytest.mark.parametrize("dtype", FLOATS)
def test_adam_many_equals_per_parameter_and_reference(launches, shapes, dtype, rng):
    shapes = SHAPE_SETS[shapes]
    for wd, decoupled, amsgrad, beta1, maximize in ADAM_OPTIONS:
        w = _arrays(rng, shapes, dtype)
        kw = {"lr": 1e-2, "beta1": beta1, "beta2": 0.999, "eps": 1e-8, "weight_decay": wd,
              "decoupled_weight_decay": decoupled, "maximize": maximize}

        def fresh():
            zeros = lambda: [numpy.zeros_like(a) for a in w]  # noqa: E731
            return [[a.copy() for a in w], zeros(), zeros(), zeros() if amsgrad else [None] * len(w)]

        many, single, ref = fresh(), fresh(), fresh()
        if dtype == numpy.float16:  # float16 state underflows eps in the reference: it runs in float32 here
            ref = [[None if a is None else a.astype(numpy.float32) for a in row] for row in ref]
        for step in (1, 2, 3):
            g = _arrays(rng, shapes, dtype)
            launches.clear()
            K.optim.adam_update_many(many[0], g, many[1], many[2], many[3], step=step, **kw)
            assert launches == ["ember_adam_update_many"]
            for t in range(len(w)):
                K.optim.adam_update(single[0][t], g[t], single[1][t], single[2][t], single[3][t], step=step, **kw)
            R.optim.adam_update_many(ref[0], [a.astype(ref[0][0].dtype) for a in g], ref[1], ref[2], ref[3], step=step,
                                     **kw)
            flat = lambda s: [u for row in s for u in row if u is not None]  # noqa: E731
            for u, v in zip(flat(many), flat(single)):
                assert u.dtype == v.dtype and numpy.array_equal(u, v)
            _same(flat(many), flat(ref), dtype)


def test_unfusable_lists_fall_back_per_parameter(monkeypatch, rng):
    """Mixed dtypes or a strided array: no multi-tensor launch, the per-parameter path gives the reference."""
    seen: set = set()
    patch_launches(monkeypatch, "device_config", seen)
    base = rng.normal(size=(4, 6))
    for ws in ([base[:, ::2].copy(order="C").astype(numpy.float32), base.copy()], [base[:, ::2], base[0].copy()]):
        gs = [numpy.ones_like(a) for a in ws]
        a, b = [x.copy() if x.flags.c_contiguous else x for x in ws], [x.copy() for x in ws]
        K.optim.sgd_update_many(a, gs, [None, None], lr=0.1, momentum=0, dampening=0, weight_decay=0,
                                nesterov=False, maximize=False, first_step=False)
        R.optim.sgd_update_many(b, gs, [None, None], lr=0.1, momentum=0, dampening=0, weight_decay=0,
                                nesterov=False, maximize=False, first_step=False)
        for u, v in zip(a, b):
            numpy.testing.assert_array_equal(u, v)
    assert "ember_sgd_update_many" not in seen
