"""Every registered op x every sample: float64 gradcheck (first and second order)."""

from __future__ import annotations

import numpy
import pytest

import ember as em
from ember.autograd.registry import OPS


def _cases() -> list:
    cases = []
    for name, spec in sorted(OPS.items()):
        for k, s in enumerate(spec.samples(numpy.random.default_rng(1234)) if spec.samples else []):
            cases.append(pytest.param(name, k, id=f"{name}-{k}-{s.note or 'case'}".replace(" ", "_")))
    return cases


def _build(name: str, k: int):
    spec = OPS[name]
    s = spec.samples(numpy.random.default_rng(1234))[k]

    def wrap(a):
        if isinstance(a, numpy.ndarray) and a.dtype == numpy.float64:
            return em.tensor(a, dtype=em.float64, requires_grad=True)
        if isinstance(a, list) and a and all(isinstance(v, numpy.ndarray) for v in a):
            return [wrap(v) for v in a]
        return a

    args = [wrap(a) for a in s.args]
    flat = []
    for a in args:
        flat.extend(a if isinstance(a, list) else [a])
    tensors = [t for t in flat if isinstance(t, em.Tensor)]

    def fn(*ts):
        it = iter(ts)
        rebuilt = []
        for a in args:
            if isinstance(a, list):
                rebuilt.append([next(it) for _ in a])
            elif isinstance(a, em.Tensor):
                rebuilt.append(next(it))
            else:
                rebuilt.append(a)
        return spec.fn(*rebuilt, **s.kwargs)

    return spec, fn, tensors


def test_every_op_has_samples():
    missing = sorted(n for n, spec in OPS.items() if not spec.samples)
    assert not missing, f"ops registered without sample inputs: {missing}"


@pytest.mark.parametrize("name,k", _cases())
def test_gradcheck(name, k):
    _, fn, tensors = _build(name, k)
    assert em.autograd.gradcheck(fn, tensors)


@pytest.mark.parametrize("name,k", _cases())
def test_gradgradcheck(name, k):
    spec, fn, tensors = _build(name, k)
    if not spec.second_order:
        pytest.skip(f"{name}: double backward is declared unsupported")
    assert em.autograd.gradgradcheck(fn, tensors)
