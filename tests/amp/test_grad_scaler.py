"""ember.amp.GradScaler: a hand-computed trace of skips, backoff and growth; state dict; PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em

# grads fed to the trace: a finite value, inf, nan, or 1e38 (finite, but 1e38 * scale overflows float32)
TRACE_GRADS = [0.5, float("inf"), float("nan"), 0.25, 0.25, 1.0, 1.0, 1e38, 0.125]
# by hand, init_scale=8, growth_factor=2, backoff_factor=0.5, growth_interval=2, SGD lr=1 from p=1:
#   step 1: clean, p = 1 - 0.5 = 0.5, 1 clean step;  2: inf -> skip, scale 4;  3: nan -> skip, scale 2
#   4: p = 0.25 (1 clean);  5: p = 0 (2 clean -> scale 4, count 0);  6: p = -1 (1);  7: p = -2 (2 -> scale 8)
#   8: 1e38 * 8 overflows -> skip, scale 4;  9: p = -2.125 (1 clean)
EXPECTED_SCALES = [8.0, 4.0, 2.0, 2.0, 4.0, 4.0, 8.0, 4.0, 4.0]
EXPECTED_PARAMS = [0.5, 0.5, 0.5, 0.25, 0.0, -1.0, -2.0, -2.0, -2.125]
EXPECTED_TRACKER = [1, 0, 0, 1, 0, 1, 0, 0, 1]


def _one_step(scaler, opt, p, g):
    loss = (p * g).sum()  # d loss / d p = g
    opt.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def test_scale_trace_matches_hand_computation():
    p = em.tensor([1.0], requires_grad=True)
    opt = em.optim.SGD([p], lr=1.0)
    scaler = em.amp.GradScaler(init_scale=8.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2)
    scales, params, trackers = [], [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for g in TRACE_GRADS:
            _one_step(scaler, opt, p, g)
            scales.append(scaler.get_scale())
            params.append(p.item())
            trackers.append(scaler.state_dict()["_growth_tracker"])
    assert scales == EXPECTED_SCALES
    assert params == EXPECTED_PARAMS
    assert trackers == EXPECTED_TRACKER


def test_unscale_divides_gradients_and_flags_non_finite():
    p, q = em.tensor([1.0, 2.0], requires_grad=True), em.tensor([3.0], requires_grad=True)
    opt = em.optim.SGD([p, q], lr=0.1)
    scaler = em.amp.GradScaler(init_scale=1024.0)
    (scaler.scale((p * 3.0).sum() + q.sum())).backward()
    scaler.unscale_(opt)
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(q.grad.numpy(), [1.0])
    scaler.step(opt)  # uses the already-unscaled grads, does not unscale twice
    np.testing.assert_allclose(p.numpy(), [0.7, 1.7], rtol=1e-6)
    scaler.update()
    assert scaler.get_scale() == 1024.0


def test_call_order_errors():
    p = em.tensor([1.0], requires_grad=True)
    opt = em.optim.SGD([p], lr=0.1)
    scaler = em.amp.GradScaler()
    with pytest.raises(RuntimeError, match="no inf checks were recorded"):
        scaler.update()
    scaler.scale(p.sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="unscale_: already called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step: already called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="unscale_: called after step"):
        scaler.unscale_(opt)
    scaler.update()
    with pytest.raises(RuntimeError, match="closures are not supported"):
        scaler.step(opt, closure=lambda: None)


@pytest.mark.parametrize("kwargs, match", [
    ({"init_scale": 0.0}, "init_scale"), ({"init_scale": float("inf")}, "init_scale"),
    ({"growth_factor": 1.0}, "growth_factor"), ({"backoff_factor": 1.0}, "backoff_factor"),
    ({"backoff_factor": 0.0}, "backoff_factor"), ({"growth_interval": 0}, "growth_interval"),
    ({"growth_interval": 2.5}, "growth_interval"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        em.amp.GradScaler(**kwargs)


def test_scale_rejects_non_tensors_and_handles_sequences():
    scaler = em.amp.GradScaler(init_scale=4.0)
    with pytest.raises(TypeError, match="GradScaler.scale: expected a Tensor"):
        scaler.scale(1.0)
    a, b = scaler.scale([em.tensor(1.0), (em.tensor(2.0),)])
    assert a.item() == 4.0 and b[0].item() == 8.0
    half = scaler.scale(em.tensor(30000.0, dtype=em.float16))  # 30000 * 4 overflows float16, not float32
    assert half.dtype == em.float32 and half.item() == 120000.0


def test_update_with_new_scale():
    scaler = em.amp.GradScaler()
    scaler.update(new_scale=128.0)
    assert scaler.get_scale() == 128.0
    with pytest.raises(ValueError, match="new_scale"):
        scaler.update(new_scale=-1.0)


def test_disabled_scaler_is_a_pass_through():
    p = em.tensor([1.0], requires_grad=True)
    opt = em.optim.SGD([p], lr=0.5)
    scaler = em.amp.GradScaler(enabled=False)
    loss = p.sum()
    assert scaler.scale(loss) is loss
    loss.backward()
    scaler.step(opt)
    scaler.update()
    assert p.item() == 0.5 and scaler.get_scale() == 1.0 and scaler.state_dict() == {}


def test_state_dict_round_trip_continues_identically(tmp_path):
    """Save mid-trace (through ember.save/load), resume in a fresh scaler: same scales and params after."""
    def run(grads, scaler, p, opt):
        out = []
        with np.errstate(over="ignore", invalid="ignore"):
            for g in grads:
                _one_step(scaler, opt, p, g)
                out.append((scaler.get_scale(), p.item()))
        return out

    make = lambda: em.amp.GradScaler(init_scale=8.0, growth_interval=2)  # noqa: E731
    p = em.tensor([1.0], requires_grad=True)
    opt = em.optim.SGD([p], lr=1.0)
    straight = run(TRACE_GRADS, make(), p, opt)

    p = em.tensor([1.0], requires_grad=True)
    opt = em.optim.SGD([p], lr=1.0)
    first = make()
    head = run(TRACE_GRADS[:4], first, p, opt)
    em.save({"scaler": first.state_dict(), "p": p.detach()}, tmp_path / "ckpt.npz")
    state = em.load(tmp_path / "ckpt.npz")
    second = make()
    second.load_state_dict(state["scaler"])
    assert second.state_dict() == first.state_dict()
    p2 = em.tensor(state["p"].numpy(), requires_grad=True)
    tail = run(TRACE_GRADS[4:], second, p2, em.optim.SGD([p2], lr=1.0))
    assert head + tail == straight
    with pytest.raises(RuntimeError, match="empty"):
        make().load_state_dict({})
    with pytest.raises(KeyError, match="_growth_tracker"):
        make().load_state_dict({"scale": 1.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 1})


def test_float16_parameters_keep_float32_master_weights():
    """Updates of 1e-4 vanish in float16 storage at 1.0 (spacing ~1e-3) but accumulate in the master."""
    def train(use_scaler):
        p = em.tensor([1.0], dtype=em.float16, requires_grad=True)
        opt = em.optim.SGD([p], lr=1e-4)
        scaler = em.amp.GradScaler(init_scale=256.0, enabled=use_scaler)
        for _ in range(20):
            opt.zero_grad()
            scaler.scale(p.sum()).backward()
            if use_scaler:
                assert p.grad.dtype == em.float16
                scaler.unscale_(opt)
                assert p.grad.dtype == em.float32 and p.grad.item() == 1.0
            scaler.step(opt)
            scaler.update()
        return p

    def float32_master(start, n):
        """float16 storage of a float32 master after ``n`` steps of ``w - 1e-4 * 1.0``."""
        w = np.float32(start)
        for _ in range(n):
            w = np.float32(w - np.float32(1e-4) * np.float32(1.0))
        return float(np.float16(w))

    plain, mastered = train(False), train(True)
    assert plain.item() == 1.0  # every update rounded away
    assert mastered.dtype == em.float16
    assert mastered.item() == float32_master(1.0, 20) < 1.0
    # Writing the parameter elsewhere bumps its version: the master restarts from the new value.
    opt = em.optim.SGD([mastered], lr=1e-4)
    scaler = em.amp.GradScaler(init_scale=256.0)

    def steps(n):
        for _ in range(n):
            opt.zero_grad()
            scaler.scale(mastered.sum()).backward()
            scaler.step(opt)
            scaler.update()

    steps(1)  # the master now exists
    with em.no_grad():
        mastered.copy_(em.tensor([2.0], dtype=em.float16))
    steps(20)
    assert scaler.get_scale() == 256.0  # no step was skipped
    # Not 2.0 (updates lost without a master), not ~0.997 (a stale master continuing from before the copy).
    assert mastered.item() == float32_master(2.0, 20) < 2.0


@pytest.mark.parametrize("factors", [(2.0, 0.5), (3.0, 0.3)])
def test_matches_torch_grad_scaler(factors):
    """Same gradients (with inf/nan/overflow steps) -> same scales, skips and parameters as torch.amp.GradScaler."""
    torch = pytest.importorskip("torch", reason="torch not installed: PyTorch parity is optional")
    growth, backoff = factors
    kw = dict(init_scale=8.0, growth_factor=growth, backoff_factor=backoff, growth_interval=2)
    try:
        t_scaler = torch.amp.GradScaler("cpu", **kw)
    except (TypeError, RuntimeError) as e:
        pytest.skip(f"this torch has no CPU GradScaler: {e}")
    tp = torch.tensor([1.0], requires_grad=True)
    t_opt = torch.optim.SGD([tp], lr=0.5)
    ep = em.tensor([1.0], requires_grad=True)
    e_opt = em.optim.SGD([ep], lr=0.5)
    e_scaler = em.amp.GradScaler(**kw)
    grads = TRACE_GRADS + [0.5, 0.5, 2.0, float("inf"), 0.5, 0.5]
    with np.errstate(over="ignore", invalid="ignore"):
        for g in grads:
            t_opt.zero_grad()
            t_scaler.scale((tp * g).sum()).backward()
            t_scaler.step(t_opt)
            t_scaler.update()
            _one_step(e_scaler, e_opt, ep, g)
            assert e_scaler.get_scale() == t_scaler.get_scale(), g
            assert ep.item() == pytest.approx(tp.item(), rel=1e-6, abs=1e-7), g
    t_state = t_scaler.state_dict()
    e_state = e_scaler.state_dict()
    assert set(e_state) == set(t_state)
    assert e_state["_growth_tracker"] == t_state["_growth_tracker"] and e_state["scale"] == t_state["scale"]
