"""Grad modes: no_grad, enable_grad and set_grad_enabled as context managers, decorators and calls."""

from __future__ import annotations

import contextvars
import threading

import pytest

import ember as em
from ember.errors import GraphError


def f64(values, requires_grad: bool = True) -> em.Tensor:
    return em.tensor(values, dtype=em.float64, requires_grad=requires_grad)


def test_no_grad_builds_no_graph():
    x = f64([1.0, 2.0])
    with em.no_grad():
        assert not em.is_grad_enabled()
        y = (x * 2.0).exp().sum()
    assert em.is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad and y.is_leaf
    with pytest.raises(GraphError, match="does not require grad"):
        y.backward()


def test_no_grad_as_decorator():
    @em.no_grad()
    def step(t):
        return t * 3.0, em.is_grad_enabled()

    x = f64([1.0])
    y, enabled = step(x)
    assert not enabled and y.grad_fn is None and not y.requires_grad
    assert em.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = f64([1.0])
    with em.no_grad():
        with em.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad and z.grad_fn is None


def test_enable_grad_as_decorator_inside_no_grad():
    @em.enable_grad()
    def f(t):
        return t * t

    x = f64(3.0)
    with em.no_grad():
        y = f(x)
    y.backward()
    assert x.grad.item() == 6.0


def test_set_grad_enabled_call_context_and_decorator():
    x = f64([1.0])
    with em.set_grad_enabled(False):
        assert (x * 2.0).grad_fn is None
    assert em.is_grad_enabled()
    em.set_grad_enabled(False)  # a plain call takes effect at once
    try:
        assert not em.is_grad_enabled()
        assert not (x * 2.0).requires_grad
    finally:
        em.set_grad_enabled(True)
    assert em.is_grad_enabled()

    @em.set_grad_enabled(False)
    def f(t):
        return t * 2.0

    assert em.is_grad_enabled()  # decorating does not change the mode
    assert f(x).grad_fn is None


def test_no_grad_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with em.no_grad():
            raise ZeroDivisionError("inside no_grad")
    assert em.is_grad_enabled()


def test_nested_no_grad_is_reentrant():
    ctx = em.no_grad()
    with ctx:
        with ctx:
            assert not em.is_grad_enabled()
        assert not em.is_grad_enabled()
    assert em.is_grad_enabled()


def test_grad_mode_is_per_thread():
    # A no_grad region in one thread does not turn recording off in another.
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        with em.no_grad():
            inside.set()
            release.wait(5)
            seen["worker"] = em.is_grad_enabled()

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    x = f64([1.0])
    seen["main"] = (x * 2.0).requires_grad
    release.set()
    t.join()
    assert seen == {"worker": False, "main": True}


def test_grad_mode_is_per_context():
    def run():
        with em.no_grad():
            return em.is_grad_enabled()

    assert contextvars.copy_context().run(run) is False
    assert em.is_grad_enabled()
