"""StepLR and CosineAnnealingLR: PyTorch's lr sequences, group updates, state dicts, errors."""

from __future__ import annotations

import math

import pytest

import ember as em
from ember import optim
from ember.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR

EPOCHS = 20


def _optimizer(lrs=(0.1, 0.02)):
    groups = [{"params": [em.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=1.0, momentum=0.9)


SCHEDULERS = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("StepLR", {"step_size": 1}),
    ("CosineAnnealingLR", {"T_max": 7}),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": 1e-3}),
]


def _lr_sequence(make_opt, make_sched, step_opt):
    opt = make_opt()
    sched = make_sched(opt)
    seq = [list(sched.get_last_lr())]
    for _ in range(EPOCHS):
        step_opt(opt)
        sched.step()
        seq.append(list(sched.get_last_lr()))
        assert seq[-1] == [g["lr"] for g in opt.param_groups]
    return seq


@pytest.mark.parametrize("name,kw", SCHEDULERS)
def test_lr_sequence_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    ours = _lr_sequence(_optimizer, lambda o: getattr(optim.lr_scheduler, name)(o, **kw), lambda o: o.step())

    def torch_opt():
        groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in (0.1, 0.02)]
        return torch.optim.SGD(groups, lr=1.0, momentum=0.9)

    ref = _lr_sequence(torch_opt, lambda o: getattr(torch.optim.lr_scheduler, name)(o, **kw), lambda o: o.step())
    assert len(ours) == EPOCHS + 1
    for epoch, (a, b) in enumerate(zip(ours, ref)):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), f"epoch {epoch}"


def test_closed_forms():
    opt = _optimizer()
    sched = StepLR(opt, step_size=4, gamma=0.3)
    for epoch in range(1, 13):
        sched.step()
        assert sched.get_last_lr() == [0.1 * 0.3 ** (epoch // 4), 0.02 * 0.3 ** (epoch // 4)]
    opt = _optimizer()
    sched = CosineAnnealingLR(opt, T_max=5, eta_min=0.01)
    assert sched.get_last_lr() == [0.1, 0.02]
    for _ in range(5):
        sched.step()
    assert sched.get_last_lr() == pytest.approx([0.01, 0.01], abs=1e-17)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 + 0.09 * (1 - math.cos(math.pi / 5)) / 2)


def test_initial_lr_recorded_and_kept():
    opt = _optimizer()
    StepLR(opt, step_size=2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.02]
    opt.param_groups[0]["lr"] = 5.0
    sched = StepLR(opt, step_size=2)  # a second scheduler keeps the recorded initial lr
    assert sched.base_lrs == [0.1, 0.02]
    assert opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("name,kw", SCHEDULERS)
def test_state_dict_round_trip(name, kw, tmp_path):
    cls = getattr(optim.lr_scheduler, name)
    opt = _optimizer()
    sched = cls(opt, **kw)
    full = [sched.get_last_lr()]
    for epoch in range(EPOCHS):
        if epoch == 7:
            em.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "ckpt.npz")
        sched.step()
        full.append(sched.get_last_lr())

    ckpt = em.load(tmp_path / "ckpt.npz")
    opt2 = _optimizer(lrs=(7.0, 7.0))
    sched2 = cls(opt2, **kw)  # as torch recommends: build the scheduler, then load both
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    assert sched2.last_epoch == 7 and sched2.base_lrs == [0.1, 0.02]
    resumed = [sched2.get_last_lr()]
    for _ in range(EPOCHS - 7):
        sched2.step()
        resumed.append(sched2.get_last_lr())
    assert resumed == full[7:]
    assert [g["lr"] for g in opt2.param_groups] == full[-1]


def test_resume_with_last_epoch():
    opt = _optimizer()
    sched = StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(5):
        sched.step()
    opt2 = _optimizer(lrs=(3.0, 3.0))
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(opt2, step_size=2, gamma=0.5, last_epoch=4)
    opt2.load_state_dict(opt.state_dict())
    sched2 = StepLR(opt2, step_size=2, gamma=0.5, last_epoch=4)
    assert sched2.last_epoch == 5 and sched2.get_last_lr() == sched.get_last_lr()


def test_step_with_epoch_jumps():
    opt = _optimizer()
    sched = StepLR(opt, step_size=3, gamma=0.1)
    sched.step(7)
    assert sched.last_epoch == 7
    assert sched.get_last_lr() == pytest.approx([0.1 * 0.01, 0.02 * 0.01], rel=1e-15)


def test_errors():
    opt = _optimizer()
    with pytest.raises(TypeError, match="StepLR.*Optimizer"):
        StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="StepLR.*step_size.*0"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="CosineAnnealingLR.*T_max.*-1"):
        CosineAnnealingLR(opt, T_max=-1)
    with pytest.raises(ValueError, match="last_epoch"):
        StepLR(opt, step_size=1, last_epoch=-2)
    sched = CosineAnnealingLR(opt, T_max=3)
    with pytest.raises(ValueError, match="CosineAnnealingLR.load_state_dict.*keys"):
        sched.load_state_dict(StepLR(_optimizer(), step_size=2).state_dict())
    with pytest.raises(ValueError, match="base lrs"):
        sched.load_state_dict(CosineAnnealingLR(_optimizer(lrs=(0.1,)), T_max=3).state_dict())
    opt.add_param_group({"params": [em.zeros(1, requires_grad=True)]})
    with pytest.raises(ValueError, match="3 param groups.*2"):
        sched.step()
    assert issubclass(StepLR, LRScheduler)
