"""The op sweep shared by the GPU test and its CPU twin: every registered op's samples, run on a device.

``run(name, k, device)`` returns the op's outputs (a list: split/chunk pieces, sort's values and
indices) and its float leaves' gradients; ``assert_same`` compares two such runs at float32 tolerance.
``tests/gpu/test_cuda_ops.py`` runs it on a GPU, ``tests/backends/test_cupy_ops_fake_cpu.py`` through
the fake ``cupy`` module.
"""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.autograd.registry import OPS

F32 = {"rtol": 1e-4, "atol": 1e-5}


def cases(names=None) -> list:
    """``pytest.param(name, k)`` for every sample ``k`` of every registered op (of ``names`` only, if given)."""
    out = []
    for name, spec in sorted(OPS.items()):
        if names is not None and name not in names:
            continue
        for k, s in enumerate(spec.samples(numpy.random.default_rng(1234)) if spec.samples else []):
            out.append(pytest.param(name, k, id=f"{name}-{k}-{s.note or 'case'}".replace(" ", "_")))
    return out


def args_on(name: str, k: int, device: str, dtype) -> tuple:
    """The sample's arguments on ``device``: float arrays as ``dtype`` leaves, other arrays as tensors."""
    s = OPS[name].samples(numpy.random.default_rng(1234))[k]
    leaves = []

    def conv(a):
        if isinstance(a, numpy.ndarray):
            if a.dtype == numpy.float64:
                t = em.tensor(a, dtype=dtype, device=device, requires_grad=True)
                leaves.append(t)
                return t
            return em.tensor(a, device=device)
        if isinstance(a, em.Tensor):  # constants such as running statistics
            return em.tensor(a.numpy(), dtype=dtype if a.dtype.kind == "f" else None, device=device)
        if isinstance(a, list):
            return [conv(v) for v in a]
        if isinstance(a, tuple):
            return tuple(conv(v) for v in a)
        return a

    def const(v):  # keyword arrays (running statistics, ...) are constants on the device
        if isinstance(v, numpy.ndarray):
            return em.tensor(v, dtype=dtype if v.dtype.kind == "f" else None, device=device)
        return v

    return [conv(a) for a in s.args], {key: const(v) for key, v in s.kwargs.items()}, leaves


def run(name: str, k: int, device: str, dtype=em.float32):
    """The op's outputs (a list: split/chunk pieces, sort's values and indices) and its leaves' gradients."""
    args, kwargs, leaves = args_on(name, k, device, dtype)
    em.manual_seed(0)
    out = OPS[name].fn(*args, **kwargs)
    outs = list(out) if isinstance(out, tuple) else [out]
    rng = numpy.random.default_rng(7)
    weighted = [(o * em.tensor(rng.normal(size=tuple(o.shape)).astype(o.dtype), device=device)).sum()
                for o in outs if o.requires_grad]
    grads = []
    if weighted:
        sum(weighted[1:], weighted[0]).backward()
        grads = [None if t.grad is None else t.grad.numpy() for t in leaves]
    return outs, grads


def assert_same(got: tuple, want: tuple, device: str = "cuda:0") -> None:
    """Two ``run`` results agree: the same outputs on ``device`` (dtypes equal) and the same gradients."""
    (outs_dev, g_dev), (outs_ref, g_ref) = got, want
    assert len(outs_dev) == len(outs_ref) and len(g_dev) == len(g_ref)
    for dev, ref in zip(outs_dev, outs_ref):
        assert dev.device == device and dev.dtype == ref.dtype
        numpy.testing.assert_allclose(dev.numpy(), ref.numpy(), **F32)
    for a, b in zip(g_dev, g_ref):
        assert (a is None) == (b is None)
        if a is not None:
            numpy.testing.assert_allclose(a, b, **F32)
