"""The optimizers' multi-tensor path on the fake ``cupy`` module: one launch per group, the CPU's numbers.

Parameters and gradients are set directly (no model), so the step alone is compared:
SGD (momentum, Nesterov, dampening, weight decay), Adam (L2, AMSGrad) and AdamW over
several steps, with two parameter groups of mixed sizes (one-element and empty included),
must equal the CPU step bit for bit while launching one optimizer kernel per group.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
from test_cupy_fake_module_cpu import fake_cupy, no_host_sync  # noqa: F401 - fake_cupy: a fixture

SHAPES = [[(3, 4), (1,), (0,), (5,)], [(2, 3, 2), (1,)]]
OPTIMIZERS = {
    "sgd_nesterov": lambda groups: em.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "sgd_dampening": lambda groups: em.optim.SGD(groups, lr=0.1, momentum=0.8, dampening=0.2, maximize=True),
    "sgd_plain": lambda groups: em.optim.SGD(groups, lr=0.1),
    "adam_amsgrad": lambda groups: em.optim.Adam(groups, lr=1e-2, weight_decay=1e-2, amsgrad=True),
    "adamw": lambda groups: em.optim.AdamW(groups, lr=1e-2, betas=(0.3, 0.99)),
}


def _counting_launches(monkeypatch):
    from ember.backends.cupy import kernel_spec as cupy_source
    from ember.backends.cupy import optim as cupy_optim

    launched = []

    def counting(spec, dtype, total, args):
        launched.append(spec.name)
        return cupy_source.launch(spec, dtype, total, args)

    monkeypatch.setattr(cupy_optim, "launch", counting)
    return launched


def _run(device, make, dtype):
    """Two parameter groups on ``device`` (the same numbers on every device) and their optimizer."""
    rng = numpy.random.default_rng(3)
    groups = [{"params": [em.tensor(rng.normal(size=s).astype(dtype), device=device, requires_grad=True)
                          for s in shapes]} for shapes in SHAPES]
    opt = make(groups)
    return groups, opt


def _set_grads(groups, grads, device, skip=()):
    for gi, group in enumerate(groups):
        for pi, p in enumerate(group["params"]):
            p.grad = None if (gi, pi) in skip else em.tensor(grads[gi][pi], device=device)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float16])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_one_launch_per_group_and_bit_equal_to_cpu(fake_cupy, monkeypatch, name, dtype):
    launched = _counting_launches(monkeypatch)
    rng = numpy.random.default_rng(4)
    steps = [[[rng.normal(size=s).astype(dtype) for s in shapes] for shapes in SHAPES] for _ in range(3)]
    kernel = "ember_sgd_update_many" if name.startswith("sgd") else "ember_adam_update_many"
    results = {}
    for device in ("cpu", "cuda"):
        groups, opt = _run(device, OPTIMIZERS[name], dtype)
        for grads in steps:
            _set_grads(groups, grads, device)
            launched.clear()
            with no_host_sync():
                opt.step()
            if device == "cuda":
                assert launched == [kernel] * len(SHAPES)
            else:
                assert launched == []
        results[device] = ([p.numpy().copy() for g in groups for p in g["params"]],
                           opt.state_dict()["state"])
    for a, b in zip(results["cpu"][0], results["cuda"][0]):
        assert a.dtype == b.dtype and numpy.array_equal(a, b)
    assert results["cpu"][1].keys() == results["cuda"][1].keys()
    for idx, entries in results["cpu"][1].items():
        for key, value in entries.items():
            other = results["cuda"][1][idx][key]
            assert numpy.array_equal(numpy.asarray(value), numpy.asarray(other)), (idx, key)


def test_a_parameter_that_skipped_a_step_gets_its_own_launch(fake_cupy, monkeypatch):
    """Adam parameters at different step counts (or SGD ones with a new buffer) split the group's launch."""
    launched = _counting_launches(monkeypatch)
    rng = numpy.random.default_rng(5)
    steps = [[[rng.normal(size=s).astype(numpy.float32) for s in shapes] for shapes in SHAPES] for _ in range(3)]
    # Adam: parameter (0, 1) stays one step behind; SGD: only its first step (a new buffer) is apart
    for make, expected in ((OPTIMIZERS["adam_amsgrad"], [2, 3, 3]), (OPTIMIZERS["sgd_nesterov"], [2, 3, 2])):
        results = []
        for device in ("cpu", "cuda"):
            groups, opt = _run(device, make, numpy.float32)
            counts = []
            for k, grads in enumerate(steps):
                _set_grads(groups, grads, device, skip={(0, 1)} if k == 0 else ())
                launched.clear()
                opt.step()
                counts.append(len(launched))
            if device == "cuda":
                assert counts == expected
            results.append([p.numpy().copy() for g in groups for p in g["params"]])
        for a, b in zip(*results):
            assert numpy.array_equal(a, b)


@pytest.mark.parametrize("name", ["adam_amsgrad", "sgd_nesterov"])
def test_grad_scaler_float16_masters_take_the_multi_tensor_path(fake_cupy, monkeypatch, name):
    """``GradScaler.step`` swaps float32 masters in for float16 parameters: still one launch per group."""
    launched = _counting_launches(monkeypatch)
    rng = numpy.random.default_rng(6)
    steps = [[[rng.normal(size=s).astype(numpy.float16) for s in shapes] for shapes in SHAPES] for _ in range(2)]
    results = {}
    for device in ("cpu", "cuda"):
        groups, opt = _run(device, OPTIMIZERS[name], numpy.float16)
        scaler = em.amp.GradScaler(init_scale=8.0)
        for grads in steps:
            _set_grads(groups, grads, device)
            launched.clear()
            scaler.step(opt)
            scaler.update()
            assert len(launched) == (len(SHAPES) if device == "cuda" else 0)
        results[device] = [p.numpy().copy() for g in groups for p in g["params"]]
    for a, b in zip(results["cpu"], results["cuda"]):
        assert a.dtype == numpy.float16 and numpy.array_equal(a, b)
