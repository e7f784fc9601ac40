"""The first steps of every optimizer match torch.optim on the same parameters and gradients (float64)."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember import optim

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-12, 1e-15

CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.3, "eps": 1e-6}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.7}),
    ("RMSprop", {"lr": 0.01, "centered": True, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.02, "alpha": 0.3, "centered": True, "momentum": 0.4, "eps": 1e-4, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.7, "eps": 1e-4, "weight_decay": 0.1}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.9), "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "betas": (0.3, 0.5), "amsgrad": True}),
    ("Adam", {"lr": 0.02, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("Adam", {"lr": 0.02, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "betas": (0.0, 0.0), "weight_decay": 0.0, "eps": 1e-3}),
]


def _ids(cfg):
    name, kw = cfg
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items())


def _problem(seed=0, steps=3):
    rng = numpy.random.default_rng(seed)
    x0 = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    # Gradients vary in sign and scale so that amsgrad's max and the centered variance matter.
    grads = [[rng.standard_normal(x.shape) * (1 + 2 * (s % 2)) for x in x0] for s in range(steps)]
    return x0, grads


def _run_ember(name, kw, x0, grads, dtype=em.float64, groups=None):
    params = [em.tensor(x.copy(), dtype=dtype, requires_grad=True) for x in x0]
    arg = params if groups is None else [dict(g, params=[params[i] for i in g["params"]]) for g in groups]
    opt = getattr(optim, name)(arg, **kw)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = em.tensor(g, dtype=dtype)
        opt.step()
    return [p.numpy() for p in params], opt


def _run_torch(name, kw, x0, grads, dtype=torch.float64, groups=None):
    params = [torch.tensor(x.copy(), dtype=dtype, requires_grad=True) for x in x0]
    arg = params if groups is None else [dict(g, params=[params[i] for i in g["params"]]) for g in groups]
    opt = getattr(torch.optim, name)(arg, **kw)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
    return [p.detach().numpy() for p in params], opt


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_first_three_steps_match_torch(cfg, cpu_kernels):
    """Under both CPU kernel sets: the NumPy reference updates and the Numba ones."""
    name, kw = cfg
    x0, grads = _problem()
    for n in (1, 2, 3):
        ours, _ = _run_ember(name, kw, x0, grads[:n])
        ref, _ = _run_torch(name, kw, x0, grads[:n])
        for a, b in zip(ours, ref):
            numpy.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{name} {kw} after step {n}")


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_state_matches_torch(cfg, cpu_kernels):
    name, kw = cfg
    x0, grads = _problem(seed=1)
    _, ours = _run_ember(name, kw, x0, grads)
    _, ref = _run_torch(name, kw, x0, grads)
    mine, theirs = ours.state_dict()["state"], ref.state_dict()["state"]
    assert sorted(mine) == sorted(theirs)
    for idx in theirs:
        assert sorted(mine[idx]) == sorted(theirs[idx])
        for key, value in theirs[idx].items():
            if key == "step":
                assert mine[idx][key] == int(value.item())
            else:
                numpy.testing.assert_allclose(mine[idx][key], value.numpy(), rtol=RTOL, atol=ATOL)


def test_param_groups_match_torch():
    x0, grads = _problem(seed=2)
    groups = [{"params": [0], "lr": 0.03, "momentum": 0.5}, {"params": [1], "weight_decay": 0.2, "nesterov": True}]
    kw = {"lr": 0.1, "momentum": 0.9}
    ours, opt = _run_ember("SGD", kw, x0, grads, groups=groups)
    ref, _ = _run_torch("SGD", kw, x0, grads, groups=groups)
    for a, b in zip(ours, ref):
        numpy.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    assert [g["lr"] for g in opt.param_groups] == [0.03, 0.1]
    assert [g["momentum"] for g in opt.param_groups] == [0.5, 0.9]


@pytest.mark.parametrize("cfg", [CONFIGS[3], CONFIGS[6], CONFIGS[10], CONFIGS[12], CONFIGS[16], CONFIGS[19]], ids=_ids)
def test_float32_matches_torch_and_keeps_float32_state(cfg):
    name, kw = cfg
    x0, grads = _problem(seed=3)
    ours, opt = _run_ember(name, kw, x0, grads, dtype=em.float32)
    ref, _ = _run_torch(name, kw, x0, grads, dtype=torch.float32)
    for a, b in zip(ours, ref):
        assert a.dtype == numpy.float32
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for entries in opt.state.values():
        for value in entries.values():
            assert isinstance(value, int) or value.dtype == numpy.float32
