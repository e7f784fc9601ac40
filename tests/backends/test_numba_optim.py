"""Numba optimizer kernels (``ember.backends.numba.optim``) against the NumPy reference, bit for bit.

Each update runs serially and cut into parts on Numba's pool (``pool_flat``), one
parameter at a time and as a batch (``*_update_many``), in float32 and float64,
with the fallbacks for arrays the compiled loop does not take (non-contiguous).
The optimizers' results on both kernel sets are compared in ``test_numba_nn_optim.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember import optim
from ember.backends.reference import optim as ref_optim
from ember.backends.selection import use_cpu_kernels

DTYPES = [np.float32, np.float64]


@pytest.fixture(scope="module")
def nb_optim():
    return pytest.importorskip("ember.backends.numba.optim", reason="numba is not installed or cannot be imported")


# ------------------------------------------------------------------ optimizers
SGD_CONFIGS = [
    {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": False},
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01, "nesterov": False, "maximize": False},
    {"lr": 0.05, "momentum": 0.8, "dampening": 0.0, "weight_decay": 0.1, "nesterov": True, "maximize": True},
]
_ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "decoupled_weight_decay": False,
         "maximize": False}
ADAM_CONFIGS = [
    _ADAM,
    {**_ADAM, "lr": 0.01, "beta1": 0.8, "beta2": 0.9, "weight_decay": 0.1, "maximize": True},
    {**_ADAM, "lr": 0.01, "beta1": 0.3, "beta2": 0.5, "eps": 1e-3, "weight_decay": 0.3, "decoupled_weight_decay": True},
]


@pytest.fixture(params=["serial", "pool parts"])
def parts_mode(request, nb_optim):
    """Run an optimizer test with the serial kernels, or with every update cut into parts on the pool."""
    if request.param == "serial":
        return None
    return request.getfixturevalue("pool_parts")


def test_sgd_coefficients_follow_a_changing_learning_rate(nb_optim, rng):
    """The cast coefficients are remembered from the last call only while its arguments repeat."""
    cfg = {**SGD_CONFIGS[1]}
    args = (np.dtype(np.float32), 0.1, 0.9, 0.3, 0.01, False, False, False, True)
    assert nb_optim._sgd_scalars_of(*args) is nb_optim._sgd_scalars_of(*args)  # the same step again: no new cast
    w0 = rng.normal(size=(3, 5)).astype(np.float32)
    ws, bufs = [w0.copy(), w0.copy()], [np.empty_like(w0), np.empty_like(w0)]
    for step, lr in enumerate([0.1, 0.1, 0.01, 0.1, 0.5]):  # a schedule, and back to an earlier rate
        cfg["lr"] = lr
        g = rng.normal(size=w0.shape).astype(np.float32)
        for mod, w, buf in zip((ref_optim, nb_optim), ws, bufs):
            mod.sgd_update(w, g, buf, first_step=step == 0, **cfg)
        np.testing.assert_array_equal(ws[1], ws[0])
        assert nb_optim._sgd_scalars_of(np.dtype(np.float32), lr, *args[2:])[0] == np.float32(lr)
    assert nb_optim._sgd_scalars_of(np.dtype(np.float64), 0.5, *args[2:])[0].dtype == np.float64  # a new dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", SGD_CONFIGS)
def test_sgd_update_equals_reference(nb_optim, parts_mode, rng, dtype, cfg):
    w0 = rng.normal(size=(7, 15)).astype(dtype)
    ws = [w0.copy(), w0.copy()]
    bufs = [np.empty_like(w0), np.empty_like(w0)] if cfg["momentum"] else [None, None]
    for step in range(3):
        g = rng.normal(size=w0.shape).astype(dtype)
        for mod, w, buf in zip((ref_optim, nb_optim), ws, bufs):
            mod.sgd_update(w, g, buf, first_step=step == 0, **cfg)
    np.testing.assert_array_equal(ws[1], ws[0])
    if cfg["momentum"]:
        np.testing.assert_array_equal(bufs[1], bufs[0])
    assert parts_mode is None or parts_mode == [2] * 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", ADAM_CONFIGS)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_update_equals_reference(nb_optim, parts_mode, rng, dtype, cfg, amsgrad):
    w0 = rng.normal(size=(3, 37)).astype(dtype)
    states = [[w0.copy()] + [np.zeros_like(w0) for _ in range(3 if amsgrad else 2)] for _ in range(2)]
    for step in range(1, 4):
        g = (rng.normal(size=w0.shape) * (1 + 2 * (step % 2))).astype(dtype)
        for mod, (w, m, v, *vmax) in zip((ref_optim, nb_optim), states):
            mod.adam_update(w, g, m, v, vmax[0] if vmax else None, step=step, **cfg)
    for a, b in zip(*states):
        np.testing.assert_array_equal(b, a)
    assert parts_mode is None or parts_mode == [2] * 3


def _mixed_params(rng):
    """Parameters of both dtypes, one of them a transposed (non-contiguous) view the reference updates."""
    return [rng.normal(size=(7, 15)).astype(np.float32), rng.normal(size=(3,)).astype(np.float64),
            rng.normal(size=(6, 4)).astype(np.float32).T, rng.normal(size=(2, 9)).astype(np.float32)]


@pytest.mark.parametrize("cfg", SGD_CONFIGS)
def test_sgd_update_many_equals_the_reference_one_by_one(nb_optim, parts_mode, rng, cfg):
    start = _mixed_params(rng)
    runs = {mod: ([w.copy(order="K") for w in start], [np.empty_like(w) if cfg["momentum"] else None for w in start])
            for mod in (ref_optim, nb_optim)}
    for step in range(3):
        gs = [rng.normal(size=w.shape).astype(w.dtype) for w in start]
        for mod, (ws, bufs) in runs.items():
            mod.sgd_update_many(ws, gs, bufs, first_step=step == 0, **cfg)
    for got, want in zip(*(ws + [b for b in bufs if b is not None] for ws, bufs in runs.values())):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(runs[nb_optim][0][0], start[0])  # the updates happened
    assert parts_mode is None or parts_mode == [2] * 9  # three contiguous parameters, three steps


@pytest.mark.parametrize("cfg", ADAM_CONFIGS)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_update_many_equals_the_reference_one_by_one(nb_optim, parts_mode, rng, cfg, amsgrad):
    start = _mixed_params(rng)
    runs = {mod: [[w.copy(order="K") for w in start]] + [[np.zeros_like(w) for w in start] for _ in range(2)]
            + [[np.zeros_like(w) for w in start] if amsgrad else [None] * len(start)] for mod in (ref_optim, nb_optim)}
    for step in range(1, 4):
        gs = [rng.normal(size=w.shape).astype(w.dtype) for w in start]
        for mod, (ws, ms, vs, vmaxes) in runs.items():
            mod.adam_update_many(ws, gs, ms, vs, vmaxes, step=step, **cfg)
    for got_list, want_list in zip(runs[nb_optim], runs[ref_optim]):
        for got, want in zip(got_list, want_list):
            if want is not None:
                np.testing.assert_array_equal(got, want)
    assert not np.array_equal(runs[nb_optim][0][0], start[0])
    assert parts_mode is None or parts_mode == [2] * 9


def test_adam_coefficients_follow_the_step_and_a_changing_learning_rate(nb_optim, rng):
    """The step-independent coefficients are remembered while their arguments repeat; the step's are new."""
    args = (np.dtype(np.float32), 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, False)
    assert nb_optim._adam_constants_of(*args) is nb_optim._adam_constants_of(*args)
    w0 = rng.normal(size=(4, 6)).astype(np.float32)
    runs = {mod: [w0.copy(), np.zeros_like(w0), np.zeros_like(w0)] for mod in (ref_optim, nb_optim)}
    for step, lr in enumerate([1e-3, 1e-3, 1e-2, 1e-3, 0.5], start=1):  # a schedule, and back to an earlier rate
        g = rng.normal(size=w0.shape).astype(np.float32)
        for mod, (w, m, v) in runs.items():
            mod.adam_update(w, g, m, v, None, step=step, **{**_ADAM, "lr": lr})
        np.testing.assert_array_equal(runs[nb_optim][0], runs[ref_optim][0])
        step_size = nb_optim._adam_scalars(np.dtype(np.float32), step, lr, *args[2:])[7]
        assert step_size == np.float32(lr / (1 - 0.9**step))


def test_adam_goes_to_the_pool_at_half_the_elements_of_a_plain_update(nb_optim, monkeypatch, rng):
    """``ADAM_ELEMENT_COST``: an Adam update of half ``MIN_POOL_ELEMENTS`` is cut, an SGD update is not."""
    from ember.backends.numba import pool_flat, pool_region

    if pool_region.POOL_THREADS < 2:
        pytest.skip("Numba's pool has one thread here (NUMBA_NUM_THREADS=1): nothing is cut into parts")
    counts = []
    real = pool_flat.parts
    monkeypatch.setattr(pool_flat, "parts", lambda work: counts.append(work) or real(work))
    size = pool_flat.MIN_POOL_ELEMENTS // nb_optim.ADAM_ELEMENT_COST
    for n, want in ((size - 1, []), (size, [size * nb_optim.ADAM_ELEMENT_COST])):
        counts.clear()
        w, g = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
        w_ref, m, v, m_ref, v_ref = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
        nb_optim.adam_update(w, g, m, v, None, step=1, **_ADAM)
        ref_optim.adam_update(w_ref, g, m_ref, v_ref, None, step=1, **_ADAM)
        np.testing.assert_array_equal(w, w_ref)
        assert counts == want
        nb_optim.sgd_update(w, g, None, first_step=True, **SGD_CONFIGS[0])
        assert counts == want  # the plain update of the same size stays serial


def test_the_optimizers_take_the_numba_batch_update(nb_optim, monkeypatch):
    calls = []
    for name in ("sgd_update_many", "adam_update_many"):
        real = getattr(nb_optim, name)
        monkeypatch.setattr(nb_optim, name,
                            lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    with use_cpu_kernels("numba"):
        w = em.tensor(np.ones((3, 4), np.float32), requires_grad=True)
        for opt in (optim.SGD([w], lr=0.1, momentum=0.9), optim.Adam([w], lr=0.1)):
            for _ in range(2):
                opt.zero_grad()
                (w * w).sum().backward()
                opt.step()
    assert calls == ["sgd_update_many"] * 2 + ["adam_update_many"] * 2


def test_optim_non_contiguous_parameter_falls_back(nb_optim, rng):
    w = rng.normal(size=(5, 4)).T  # a transposed view: the reference updates it in place
    w_ref = w.copy()
    g = rng.normal(size=(4, 5))
    nb_optim.sgd_update(w, g, None, lr=0.1, momentum=0, dampening=0, weight_decay=0.1, nesterov=False,
                        maximize=False, first_step=True)
    ref_optim.sgd_update(w_ref, g, None, lr=0.1, momentum=0, dampening=0, weight_decay=0.1, nesterov=False,
                         maximize=False, first_step=True)
    np.testing.assert_array_equal(w, w_ref)
