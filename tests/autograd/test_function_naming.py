"""The Function naming rule (see ember/autograd/function.py) and the public ``ctx.create_graph``."""

from __future__ import annotations

import pytest

import ember as em
from ember.autograd.function import Function


def _op_functions() -> list[type]:
    found, todo = [], list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("ember.autograd.ops.") and not cls.__name__.startswith("_"):
            found.append(cls)
    return found


def test_function_classes_follow_the_naming_rule():
    layers = {
        name.lower() for name in dir(em.nn)
        if isinstance(getattr(em.nn, name), type) and issubclass(getattr(em.nn, name), em.nn.Module)
    }
    ops = _op_functions()
    assert len(ops) > 30  # every op file was imported by ``import ember``
    suffixed = [c.__name__ for c in ops if c.__name__.endswith("Function")]
    clashing = [c.__name__ for c in ops if c.__name__.lower() in layers]
    assert not suffixed, f"Function classes named with a 'Function' suffix: {suffixed}"
    assert not clashing, f"Function classes named like an ember.nn layer: {clashing}"


class _Probe(Function):
    """Doubles its input and records ``ctx.create_graph`` each time its backward runs."""

    seen: list = []

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, gy):
        _Probe.seen.append(ctx.create_graph)
        return gy * 2


def test_create_graph_is_public_and_read_only():
    _Probe.seen = []
    x = em.tensor([1.0, 2.0], requires_grad=True)
    _Probe.apply(x).sum().backward()
    (g,) = em.autograd.grad(_Probe.apply(x).sum(), [x], create_graph=True)
    assert _Probe.seen == [False, True]
    assert g.numpy().tolist() == [2.0, 2.0]
    ctx = _Probe.apply(x).grad_fn
    assert ctx.create_graph is False
    with pytest.raises(AttributeError):
        ctx.create_graph = True
