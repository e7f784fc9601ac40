"""MultiStepLR, ExponentialLR, LambdaLR, OneCycleLR, ReduceLROnPlateau: PyTorch's sequences and state dicts."""

from __future__ import annotations

import pytest

import ember as em
from ember import optim
from ember.optim.lr_scheduler import (
    ExponentialLR, LambdaLR, MultiStepLR, OneCycleLR, ReduceLROnPlateau,
)

LRS = (0.1, 0.02)


def em_opt(kind="sgd"):
    groups = [{"params": [em.zeros(2, requires_grad=True)], "lr": lr} for lr in LRS]
    return optim.SGD(groups, lr=1.0, momentum=0.9) if kind == "sgd" else optim.Adam(groups, lr=1.0)


def torch_opt(torch, kind="sgd"):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in LRS]
    return torch.optim.SGD(groups, lr=1.0, momentum=0.9) if kind == "sgd" else torch.optim.Adam(groups, lr=1.0)


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def sequence(opt, sched, steps):
    seq = [(list(sched.get_last_lr()), momenta(opt))]
    for _ in range(steps):
        opt.step()
        sched.step()
        seq.append((list(sched.get_last_lr()), momenta(opt)))
        assert seq[-1][0] == [g["lr"] for g in opt.param_groups]
    return seq


def half(epoch):
    return 0.5 ** (epoch // 3)


CASES = [
    ("MultiStepLR", {"milestones": [2, 5, 5, 11], "gamma": 0.5}, "sgd", 30),
    ("ExponentialLR", {"gamma": 0.9}, "sgd", 40),
    ("LambdaLR", {"lr_lambda": half}, "sgd", 20),
    ("OneCycleLR", {"max_lr": [1.0, 0.5], "total_steps": 50}, "sgd", 50),
    ("OneCycleLR", {"max_lr": 0.3, "epochs": 4, "steps_per_epoch": 10, "anneal_strategy": "linear"}, "adam", 40),
    ("OneCycleLR", {"max_lr": 0.3, "total_steps": 37, "three_phase": True, "pct_start": 0.25}, "sgd", 37),
    ("OneCycleLR", {"max_lr": 0.3, "total_steps": 20, "cycle_momentum": False}, "adam", 20),
]


@pytest.mark.parametrize("name,kw,kind,steps", CASES)
def test_sequence_matches_torch(name, kw, kind, steps):
    torch = pytest.importorskip("torch")
    o = em_opt(kind)
    ours = sequence(o, getattr(optim.lr_scheduler, name)(o, **kw), steps)
    t = torch_opt(torch, kind)
    theirs = sequence(t, getattr(torch.optim.lr_scheduler, name)(t, **kw), steps)
    assert len(ours) == steps + 1
    for i, ((lr_a, m_a), (lr_b, m_b)) in enumerate(zip(ours, theirs)):
        assert lr_a == pytest.approx(lr_b, rel=1e-12, abs=1e-15), f"step {i}"
        assert m_a == pytest.approx(m_b, rel=1e-12), f"step {i}"


PLATEAU = [
    {},
    {"mode": "max", "factor": 0.5, "patience": 2, "threshold": 0.1, "threshold_mode": "abs", "cooldown": 2},
    {"patience": 1, "cooldown": 1, "min_lr": [0.05, 0.001], "factor": 0.3},
    {"mode": "max", "patience": 0, "threshold_mode": "rel", "threshold": 0.01},
]
METRICS = [1.0, 0.9, 0.95, 0.95, 0.96, 0.89, 0.89, 0.9, 0.91, 0.5, 0.5, 0.5, 0.52, 0.6, 0.4, 0.4, 0.4, 0.4] * 3


@pytest.mark.parametrize("kw", PLATEAU)
def test_reduce_on_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    o, t = em_opt(), torch_opt(torch)
    ours, theirs = ReduceLROnPlateau(o, **kw), torch.optim.lr_scheduler.ReduceLROnPlateau(t, **kw)
    for m in METRICS:
        ours.step(m)
        theirs.step(m)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
        assert (ours.num_bad_epochs, ours.cooldown_counter) == (theirs.num_bad_epochs, theirs.cooldown_counter)


def test_reduce_on_plateau_state_round_trip_and_tensor_metric():
    o = em_opt()
    s = ReduceLROnPlateau(o, patience=1)
    for m in (1.0, 1.0, 1.0):
        s.step(em.tensor(m))
    state = s.state_dict()
    s2 = ReduceLROnPlateau(em_opt(), patience=5)
    s2.load_state_dict(state)
    assert s2.patience == 1 and s2.best == 1.0 and s2.num_bad_epochs == s.num_bad_epochs
    with pytest.raises(ValueError, match="expected keys"):
        s2.load_state_dict({"best": 1})
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(o, factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        ReduceLROnPlateau(o, mode="up")


@pytest.mark.parametrize("name,kw,kind,steps", CASES[:4] + CASES[5:6])
def test_state_dict_round_trip_resumes_the_sequence(name, kw, kind, steps):
    cls = getattr(optim.lr_scheduler, name)
    o = em_opt(kind)
    s = cls(o, **kw)
    for _ in range(steps // 2):
        o.step()
        s.step()
    state = s.state_dict()
    o2 = em_opt(kind)
    o2.load_state_dict(o.state_dict())
    s2 = cls(o2, **kw)
    s2.load_state_dict(state)
    for _ in range(steps - steps // 2):
        s.step()
        s2.step()
        assert s2.get_last_lr() == s.get_last_lr()


class Warmup:
    """A callable object: LambdaLR saves its attributes."""

    def __init__(self, n):
        self.n = n

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.n)


def test_lambda_lr_saves_callable_objects_only():
    o = em_opt()
    s = LambdaLR(o, [Warmup(4), lambda e: 1.0])
    state = s.state_dict()
    assert state["lr_lambdas"] == [{"n": 4}, None]
    w = Warmup(10)
    s2 = LambdaLR(em_opt(), [w, lambda e: 1.0])
    s2.load_state_dict(state)
    assert w.n == 4


def test_errors():
    with pytest.raises(ValueError, match="total_steps"):
        OneCycleLR(em_opt(), max_lr=0.1)
    with pytest.raises(ValueError, match="cycle_momentum"):
        OneCycleLR(optim.Adagrad([em.zeros(2, requires_grad=True)], lr=0.1), max_lr=0.1, total_steps=5)
    o = em_opt()
    s = OneCycleLR(o, max_lr=0.1, total_steps=3)
    for _ in range(3):
        s.step()
    with pytest.raises(ValueError, match="total_steps is 3"):
        s.step()
    with pytest.raises(ValueError, match="one per param group"):
        LambdaLR(em_opt(), [half])
    with pytest.raises(TypeError, match="milestones"):
        MultiStepLR(em_opt(), [1.5])
    with pytest.raises(TypeError, match="gamma"):
        ExponentialLR(em_opt(), gamma="x")
