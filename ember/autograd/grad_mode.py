"""Grad mode: whether ops record a graph, stored per thread/async context.

A ``contextvars.ContextVar`` (not a class attribute as in DeZero's ``Config``)
so that two threads or coroutines can disagree about grad mode safely.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any, Callable

_GRAD_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("ember_grad_enabled", default=True)


def is_grad_enabled() -> bool:
    """True when ops record the graph for backward."""
    return _GRAD_ENABLED.get()


class _GradModeContext:
    """Base of the grad-mode switches: a re-entrant context manager and decorator setting ``mode``."""

    mode = True

    def __init__(self) -> None:
        self._tokens: list[contextvars.Token] = []

    def __enter__(self) -> None:
        self._tokens.append(_GRAD_ENABLED.set(self.mode))

    def __exit__(self, *exc: Any) -> None:
        _GRAD_ENABLED.reset(self._tokens.pop())

    def __call__(self, fn: Callable) -> Callable:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _GRAD_ENABLED.set(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                _GRAD_ENABLED.reset(token)

        return wrapper


class set_grad_enabled(_GradModeContext):
    """Set grad mode on or off; works as a call, a context manager and a decorator."""

    def __init__(self, mode: bool):
        super().__init__()
        self.mode = bool(mode)
        # Called as a plain function it takes effect at once, like torch.set_grad_enabled.
        self._tokens.append(_GRAD_ENABLED.set(self.mode))

    def __enter__(self) -> None:
        return None  # the mode was set by __init__; __exit__ restores it

    def __call__(self, fn: Callable) -> Callable:
        # Used as a decorator: undo the eager set and apply per call instead.
        if self._tokens:
            _GRAD_ENABLED.reset(self._tokens.pop())
        return super().__call__(fn)


class no_grad(_GradModeContext):
    """Disable graph recording (inference, optimizer updates)."""

    mode = False


class enable_grad(_GradModeContext):
    """Re-enable graph recording inside a ``no_grad`` region."""

    mode = True
