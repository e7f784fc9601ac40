"""The first compilation of an ember kernel is announced in one line, and only once."""

from __future__ import annotations

import io
from types import SimpleNamespace

from ember.training.announce import _FirstCompileListener


def _event(module: str) -> SimpleNamespace:
    dispatcher = SimpleNamespace(py_func=SimpleNamespace(__module__=module))
    return SimpleNamespace(data={"dispatcher": dispatcher}, is_start=True)


def test_announces_once_and_only_for_ember_kernels():
    stream = io.StringIO()
    listener = _FirstCompileListener(stream)
    listener.on_start(_event("somebody.else"))
    assert stream.getvalue() == ""
    listener.on_start(_event("ember.backends.numba_conv"))
    listener.on_start(_event("ember.backends.numba_pool"))
    assert stream.getvalue() == "compiling CPU kernels, cached for next time (this first epoch is slower)\n"
