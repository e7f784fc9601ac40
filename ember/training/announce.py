"""Say once that CPU kernels are being compiled, so a cold Numba cache does not look like a slow engine."""

from __future__ import annotations

import sys
from typing import Any

_installed = False


class _FirstCompileListener:
    """A Numba event listener that prints one line on the first compilation of an ember kernel."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.announced = False

    def on_start(self, event: Any) -> None:
        dispatcher = (event.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if not self.announced and module.startswith("ember."):
            self.announced = True
            print("compiling CPU kernels, cached for next time (this first epoch is slower)",
                  file=self.stream or sys.stderr, flush=True)



def announce_kernel_compilation(stream: Any = None) -> bool:
    """Install the listener once per process (only cache misses compile); False without Numba."""
    global _installed
    if _installed:
        return True
    try:
        from numba.core import event
    except ImportError:
        return False
    listener = _FirstCompileListener(stream)  # None: whatever sys.stderr is at that moment
    event.register("numba:compile", _as_numba_listener(event, listener))
    _installed = True
    return True


def _as_numba_listener(event: Any, listener: _FirstCompileListener) -> Any:
    class _Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            listener.on_start(ev)

        def on_end(self, ev: Any) -> None:
            pass

    return _Listener()
