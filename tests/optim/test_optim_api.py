"""Optimizer behaviour without torch: convergence, state dicts, zero_grad, param groups, validation."""

from __future__ import annotations

import numpy
import pytest
from conftest import available_devices

import ember as em
from ember import optim
from ember.optim.optimizer import Optimizer

# One configuration per optimizer and per option that adds state, each with an lr
# that converges on the problems below within a few hundred steps.
CONFIGS = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}),
    ("SGD", {"lr": 0.02, "momentum": 0.9, "dampening": 0.1}),
    ("Adagrad", {"lr": 0.5, "lr_decay": 1e-3, "initial_accumulator_value": 0.1}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("Adadelta", {"lr": 1.0, "rho": 0.9, "eps": 1e-3}),
    ("Adam", {"lr": 0.05}),
    ("Adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 1e-4}),
    ("AdamW", {"lr": 0.05, "weight_decay": 1e-4}),
]


def _ids(cfg):
    name, kw = cfg
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items())


def _regression(device, dtype=em.float32):
    """A least-squares problem with an exact solution: loss -> 0 at W*, b*."""
    rng = numpy.random.default_rng(0)
    X = rng.standard_normal((32, 3))
    W_true, b_true = rng.standard_normal((3, 2)), rng.standard_normal(2)
    Y = X @ W_true + b_true
    X, Y = em.tensor(X, dtype=dtype, device=device), em.tensor(Y, dtype=dtype, device=device)
    W = em.zeros(3, 2, dtype=dtype, device=device, requires_grad=True)
    b = em.zeros(2, dtype=dtype, device=device, requires_grad=True)

    def loss():
        return ((X @ W + b - Y) ** 2).mean()

    return [W, b], loss


def _train(opt, params, loss_fn, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    return loss_fn().item()


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_converges_on_least_squares(cfg, device):
    name, kw = cfg
    params, loss_fn = _regression(device)
    start = loss_fn().item()
    end = _train(getattr(optim, name)(params, **kw), params, loss_fn, 300)
    assert end < start / 1e3, f"{name}: loss {start} -> {end}"
    assert all(p.dtype == em.float32 for p in params)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_converges_on_rosenbrock(name):
    kw = {"SGD": {"lr": 0.01, "momentum": 0.9}, "Adam": {"lr": 0.05}, "RMSprop": {"lr": 0.01},
          "Adagrad": {"lr": 0.5}}[name]
    xy = em.tensor([-1.0, 1.0], dtype=em.float64, requires_grad=True)

    def rosenbrock():
        x, y = xy[0], xy[1]
        return (1 - x) ** 2 + 10 * (y - x * x) ** 2

    start = rosenbrock().item()
    end = _train(getattr(optim, name)([xy], **kw), [xy], rosenbrock, 400)
    assert end < start / 1e3


@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_state_dict_round_trip_is_bit_exact(cfg, device, tmp_path):
    name, kw = cfg
    params, loss_fn = _regression(device)
    opt = getattr(optim, name)(params, **kw)
    _train(opt, params, loss_fn, 5)
    em.save({"params": [p.numpy().copy() for p in params], "optimizer": opt.state_dict()}, tmp_path / "c.npz")
    _train(opt, params, loss_fn, 5)

    ckpt = em.load(tmp_path / "c.npz")
    params2, loss_fn2 = _regression(device)
    with em.no_grad():
        for p, saved in zip(params2, ckpt["params"]):
            p.copy_(em.tensor(saved, device=device))
    opt2 = getattr(optim, name)(params2, **kw)
    opt2.load_state_dict(ckpt["optimizer"])
    _train(opt2, params2, loss_fn2, 5)
    for a, b in zip(params, params2):
        numpy.testing.assert_array_equal(a.numpy(), b.numpy())
    mine, resumed = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert sorted(mine) == sorted(resumed)
    for idx, entries in mine.items():
        assert sorted(entries) == sorted(resumed[idx])
        for k, v in entries.items():
            numpy.testing.assert_array_equal(v, resumed[idx][k])


def test_state_dict_layout_and_host_copies():
    params, loss_fn = _regression("cpu")
    opt = optim.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}], lr=0.1, amsgrad=True)
    _train(opt, params, loss_fn, 2)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(sd["state"]) == [0, 1]
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert sd["state"][0]["step"] == 2 and isinstance(sd["state"][0]["step"], int)
    assert type(sd["state"][0]["exp_avg"]) is numpy.ndarray and sd["state"][0]["exp_avg"].shape == (3, 2)
    before = opt.state[(0, 0)]["exp_avg"].copy()
    sd["state"][0]["exp_avg"] += 1  # a copy: the optimizer does not change
    numpy.testing.assert_array_equal(opt.state[(0, 0)]["exp_avg"], before)
    opt.load_state_dict(sd)
    sd["state"][0]["exp_avg"] += 1  # loading copies too
    numpy.testing.assert_array_equal(opt.state[(0, 0)]["exp_avg"], before + 1)


def test_load_state_dict_accepts_json_style_keys_and_lists():
    params, loss_fn = _regression("cpu")
    opt = optim.Adam(params, lr=0.1)
    _train(opt, params, loss_fn, 1)
    sd = opt.state_dict()
    sd["state"] = {str(k): v for k, v in sd["state"].items()}
    sd["param_groups"][0]["betas"] = list(sd["param_groups"][0]["betas"])
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.state[(0, 1)]["step"] == 1


def _trained_sgd(named=False, lr=0.1):
    params, loss_fn = _regression("cpu")
    arg = list(zip(["W", "b"], params)) if named else params
    opt = optim.SGD(arg, lr=lr, momentum=0.9)
    _train(opt, params, loss_fn, 1)
    return opt


@pytest.mark.parametrize("mutate,match", [
    (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), "2 parameter groups, this optimizer has 1"),
    (lambda sd: sd["param_groups"][0]["params"].pop(), "group 0 has 1 parameters in the state dict but 2"),
    (lambda sd: sd["state"][1].update(momentum_buffer=numpy.zeros(3)), r"parameter 1 .*shape \(2,\), got \(3,\)"),
    (lambda sd: sd["state"][0].pop("momentum_buffer"), r"parameter 0 .*expected entries \['momentum_buffer'\]"),
    (lambda sd: sd["state"].update({5: {}}), "state for parameter 5"),
    (lambda sd: sd["param_groups"][0].update(lr=-1.0), "lr >= 0, got -1.0"),
    (lambda sd: sd.pop("state"), "'state' and 'param_groups'"),
])
def test_load_state_dict_errors_leave_optimizer_unchanged(mutate, match):
    opt = _trained_sgd()
    sd = opt.state_dict()
    mutate(sd)
    before = opt.state_dict()
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for k in before["state"]:
        numpy.testing.assert_array_equal(after["state"][k]["momentum_buffer"], before["state"][k]["momentum_buffer"])


def test_named_params():
    opt = _trained_sgd(named=True)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["param_names"] == ["W", "b"]
    assert sd["param_groups"][0]["params"] == [0, 1]
    other = _trained_sgd(named=True)
    other.load_state_dict(sd)
    sd["param_groups"][0]["param_names"] = ["b", "W"]
    with pytest.raises(ValueError, match="named 'W' here but 'b'"):
        other.load_state_dict(sd)
    _trained_sgd(named=False).load_state_dict(opt.state_dict())  # positional load still works


def test_zero_grad():
    params, loss_fn = _regression("cpu")
    opt = optim.SGD(params, lr=0.1)
    loss_fn().backward()
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grad and not grad.numpy().any()
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.zero_grad()  # no grads: nothing to do


def test_step_skips_params_without_grad_and_bumps_versions():
    a = em.ones(3, requires_grad=True)
    b = em.ones(2, requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = em.tensor([1.0, -1.0, 0.0])
    va, vb = a._version[0], b._version[0]
    opt.step()
    assert a._version[0] == va + 1 and b._version[0] == vb
    numpy.testing.assert_array_equal(b.numpy(), numpy.ones(2, numpy.float32))
    assert sorted(opt.state) == [(0, 0)]
    assert a.requires_grad and a.is_leaf and a.grad_fn is None


def test_update_detected_by_autograd_version_check():
    w = em.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()  # saves w for backward
    w.grad = em.ones(2)
    optim.SGD([w], lr=0.1).step()
    with pytest.raises(Exception, match="(?i)version|in-place|modified"):
        y.backward()


def test_closure_runs_with_grad_and_returns_loss():
    params, loss_fn = _regression("cpu")
    opt = optim.SGD(params, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    with em.no_grad():
        loss = opt.step(closure)
    assert loss.item() > loss_fn().item()


def test_param_groups_and_add_param_group():
    a, b, c = (em.zeros(2, requires_grad=True) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [c], "momentum": 0.0})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5, 0.1]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.9, 0.0]
    assert len(opt.param_groups[1]["params"]) == 1 and opt.param_groups[1]["params"][0] is b
    for p in (a, b, c):
        p.grad = em.ones(2)
    opt.step()
    numpy.testing.assert_allclose(a.numpy(), -0.1)
    numpy.testing.assert_allclose(b.numpy(), -0.5)
    assert sorted(opt.state) == [(0, 0), (1, 0)]  # no momentum buffer for group 2
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="SGD: expected momentum >= 0, got -0.5"):
        opt.add_param_group({"params": [em.zeros(1, requires_grad=True)], "momentum": -0.5})
    assert len(opt.param_groups) == 3
    assert "Parameter Group 1" in repr(opt) and "lr: 0.5" in repr(opt)


@pytest.mark.parametrize("make,exc,match", [
    (lambda p: optim.SGD(p, lr=-0.1), ValueError, r"SGD: expected lr >= 0, got -0.1"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-1), ValueError, r"SGD: expected momentum >= 0, got -1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), ValueError, r"SGD: nesterov=True requires momentum > 0.*=0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, r"SGD.*dampening=0.1"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1e-4), ValueError, r"SGD: expected weight_decay >= 0"),
    (lambda p: optim.SGD(p, lr="fast"), TypeError, r"SGD: expected lr to be a real number, got 'fast'"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), ValueError, r"Adam: expected 0 <= betas\[0\] < 1, got 1.0"),
    (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), ValueError, r"AdamW: expected 0 <= betas\[1\] < 1, got -0.1"),
    (lambda p: optim.Adam(p, betas=(0.9,)), TypeError, r"Adam: expected betas to be a pair"),
    (lambda p: optim.Adam(p, eps=-1e-8), ValueError, r"Adam: expected eps >= 0"),
    (lambda p: optim.Adadelta(p, rho=1.5), ValueError, r"Adadelta: expected 0 <= rho <= 1, got 1.5"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), ValueError, r"Adagrad: expected lr_decay >= 0, got -1"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), ValueError, r"Adagrad: expected initial_accumulator"),
    (lambda p: optim.RMSprop(p, alpha=-0.1), ValueError, r"RMSprop: expected alpha >= 0, got -0.1"),
    (lambda p: optim.RMSprop(p, momentum=-0.1), ValueError, r"RMSprop: expected momentum >= 0, got -0.1"),
])
def test_hyperparameter_validation(make, exc, match):
    with pytest.raises(exc, match=match):
        make([em.zeros(2, requires_grad=True)])


@pytest.mark.parametrize("params,exc,match", [
    ([], ValueError, r"SGD: got an empty parameter list"),
    (iter([]), ValueError, r"empty parameter list"),
    (em.zeros(2, requires_grad=True), TypeError, r"SGD: .*single Tensor of shape \(2,\)"),
    ({em.zeros(1, requires_grad=True)}, TypeError, r"SGD: .*set.*use a list"),
    ([numpy.zeros(2)], TypeError, r"SGD: expected parameter 0 of group 0 to be a Tensor, got ndarray"),
    ([em.zeros(2, requires_grad=True), em.arange(3)], TypeError, r"SGD: .*parameter 1 of group 0.*floating.*int64"),
    ([em.zeros(2, requires_grad=True) * 2], ValueError, r"SGD: can't optimize parameter 0 of group 0: .*non-leaf"),
    ([("w", em.zeros(2, requires_grad=True)), em.zeros(1, requires_grad=True)], TypeError, r"mixes"),
    ([{"lr": 0.1}], ValueError, r"SGD: parameter group 0 has no 'params'"),
])
def test_param_validation(params, exc, match):
    with pytest.raises(exc, match=match):
        optim.SGD(params, lr=0.1)


def test_float16_params_do_not_crash_and_keep_float32_state():
    w = em.tensor([0.5, -1.0, 2.0], dtype=em.float16, requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
    assert w.dtype == em.float16 and numpy.isfinite(w.numpy()).all()
    assert numpy.abs(w.numpy()).max() < 2.0
    assert opt.state[(0, 0)]["exp_avg"].dtype == numpy.float32


def test_a_group_mixing_float16_and_float32_params_updates_each_in_its_dtype():
    """One batch per array type and dtype: each parameter steps as it would in a group of its own."""
    rng = numpy.random.default_rng(0)
    start = [rng.normal(size=(3, 2)).astype(numpy.float16), rng.normal(size=4).astype(numpy.float32)]
    together = [em.tensor(a, requires_grad=True) for a in start]
    alone = [em.tensor(a, requires_grad=True) for a in start]
    optimizers = [optim.Adam(together, lr=0.1)] + [optim.Adam([p], lr=0.1) for p in alone]
    for _ in range(3):
        for opt in optimizers:
            opt.zero_grad()
        for params in (together, alone):
            sum(((p.float() if p.dtype == em.float16 else p) ** 2).sum() for p in params).backward()
        for opt in optimizers:
            opt.step()
    for got, want, first in zip(together, alone, start):
        assert got.dtype == want.dtype == em.tensor(first).dtype
        numpy.testing.assert_array_equal(got.numpy(), want.numpy())
        assert not numpy.array_equal(got.numpy(), first)
    assert optimizers[0].state[(0, 0)]["exp_avg"].dtype == numpy.float32


def test_subclass_contract():
    assert issubclass(optim.AdamW, optim.Adam) and issubclass(optim.SGD, Optimizer)
    assert optim.SGD([em.zeros(1, requires_grad=True)]).defaults["lr"] == 1e-3
    assert optim.Adadelta([em.zeros(1, requires_grad=True)]).defaults["lr"] == 1.0
    assert optim.AdamW([em.zeros(1, requires_grad=True)]).defaults["weight_decay"] == 1e-2


@pytest.mark.parametrize("name,kw", [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.9), "amsgrad": True}),
])
def test_per_parameter_path_equals_the_backends_batch_update(name, kw, monkeypatch):
    """``_update`` one parameter at a time (a backend without ``*_update_many``) and the batch give the same bits."""
    from ember.backends import get_backend

    rng = numpy.random.default_rng(0)
    x0 = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    grads = [[rng.standard_normal(x.shape) for x in x0] for _ in range(4)]

    def run():
        params = [em.tensor(x.copy(), requires_grad=True) for x in x0]
        opt = getattr(optim, name)(params, **kw)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = em.tensor(g)
            opt.step()
        return [p.numpy() for p in params]

    batch = run()
    kernels = get_backend("cpu").optim
    assert getattr(kernels, "sgd_update_many", None) is not None  # the batch path is what ran above
    monkeypatch.setattr(kernels, "sgd_update_many", None, raising=False)
    monkeypatch.setattr(kernels, "adam_update_many", None, raising=False)
    one_by_one = run()
    for a, b in zip(batch, one_by_one):
        numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(batch[0], x0[0])
