"""GPU checks (marker ``gpu``) of the multi-tensor optimizer kernels: one launch per group, the CPU's bits.

The kernels are compiled without FMA contraction, so float32/float64 updates must equal the
NumPy reference bit for bit on the device too; an optimizer step on cuda must launch one
kernel per parameter group and leave the same parameters and state as the same step on cpu.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not em.cuda.is_available(),
                       reason='needs CuPy and a CUDA GPU (pip install -e ".[gpu]" on an NVIDIA machine)'),
]

SHAPES = [(0,), (300, 7), (1,), (0, 3), (4097,), (2, 3, 5), (1,)]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_many_kernels_equal_reference_bit_for_bit(dtype):
    import cupy

    from ember.backends.cupy import optim as K
    from ember.backends.reference import optim as R

    rng = numpy.random.default_rng(0)
    w = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    for momentum, nesterov, dampening, maximize in ((0.0, False, 0.0, False), (0.9, True, 0.0, False),
                                                    (0.8, False, 0.2, True)):
        host = [a.copy() for a in w], [None if momentum == 0 else numpy.empty_like(a) for a in w]
        dev = [cupy.asarray(a) for a in w], [None if momentum == 0 else cupy.empty_like(cupy.asarray(a)) for a in w]
        for step in range(3):
            g = [rng.normal(size=s).astype(dtype) for s in SHAPES]
            kw = {"lr": 0.1, "momentum": momentum, "dampening": dampening, "weight_decay": 1e-2,
                  "nesterov": nesterov, "maximize": maximize, "first_step": step == 0 and momentum != 0}
            R.sgd_update_many(host[0], g, host[1], **kw)
            K.sgd_update_many(dev[0], [cupy.asarray(a) for a in g], dev[1], xp=cupy, **kw)
        for a, b in zip(host[0] + host[1], dev[0] + dev[1]):
            if a is not None:
                assert numpy.array_equal(a, cupy.asnumpy(b))
    for amsgrad, decoupled, beta1 in ((False, False, 0.9), (True, True, 0.3)):
        zeros = lambda mod: [mod.zeros(s, dtype) for s in SHAPES]  # noqa: E731
        host = [[a.copy() for a in w], zeros(numpy), zeros(numpy), zeros(numpy) if amsgrad else [None] * len(w)]
        dev = [[cupy.asarray(a) for a in w], zeros(cupy), zeros(cupy), zeros(cupy) if amsgrad else [None] * len(w)]
        kw = {"lr": 1e-2, "beta1": beta1, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2,
              "decoupled_weight_decay": decoupled, "maximize": False}
        for step in (1, 2, 3):
            g = [rng.normal(size=s).astype(dtype) for s in SHAPES]
            R.adam_update_many(*host[:1], g, *host[1:], step=step, **kw)
            K.adam_update_many(*dev[:1], [cupy.asarray(a) for a in g], *dev[1:], step=step, xp=cupy, **kw)
        for row_h, row_d in zip(host, dev):
            for a, b in zip(row_h, row_d):
                if a is not None:
                    assert numpy.array_equal(a, cupy.asnumpy(b))


@pytest.mark.parametrize("make", [
    lambda groups: em.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda groups: em.optim.Adam(groups, lr=1e-2, amsgrad=True),
    lambda groups: em.optim.AdamW(groups, lr=1e-2),
], ids=["sgd", "adam", "adamw"])
def test_optimizer_step_launches_one_kernel_per_group_and_equals_cpu(make, monkeypatch):
    from ember.backends.cupy import kernel_spec as source
    from ember.backends.cupy import optim as K

    launched = []
    monkeypatch.setattr(K, "launch", lambda spec, *a: (launched.append(spec.name), source.launch(spec, *a)))
    rng = numpy.random.default_rng(1)
    data = [[rng.normal(size=s).astype(numpy.float32) for s in SHAPES[:4]],
            [rng.normal(size=s).astype(numpy.float32) for s in SHAPES[4:]]]
    grads = [[[rng.normal(size=a.shape).astype(numpy.float32) for a in group] for group in data] for _ in range(3)]
    out = {}
    for device in ("cpu", "cuda"):
        groups = [{"params": [em.tensor(a, device=device, requires_grad=True) for a in group]} for group in data]
        opt = make(groups)
        for step in grads:
            for group, gs in zip(groups, step):
                for p, g in zip(group["params"], gs):
                    p.grad = em.tensor(g, device=device)
            launched.clear()
            opt.step()
            assert len(launched) == (2 if device == "cuda" else 0)
        out[device] = [p.numpy() for group in groups for p in group["params"]]
    for a, b in zip(out["cpu"], out["cuda"]):
        assert numpy.array_equal(a, b)
