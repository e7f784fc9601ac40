"""Per-op timing of ember steps: a wrapper around every ``Function``'s ``forward`` and ``backward``.

While installed, each call of an op's forward (from ``Function.apply``) or backward (from the
engine) is bracketed by host timers and, on CUDA, by a pair of CUDA events recorded on the
current stream, so the device time of the kernels an op queued is read after one sync at the
end of the step, without a sync between ops.  Calls made inside another timed call (an op whose
body applies another op) count towards the outer one only: the table adds up to the step.
A wrapper rather than the tensor hook machinery, because hooks see gradients, not op calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ember.autograd.function import Function


def function_classes() -> list[type]:
    """Every ``Function`` subclass defined so far that has its own ``forward`` or ``backward``."""
    found, todo, seen = [], list(Function.__subclasses__()), set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        todo.extend(cls.__subclasses__())
        if "forward" in cls.__dict__ or "backward" in cls.__dict__:
            found.append(cls)
    return found


class OpTimer:
    """Context manager that times op calls; ``records`` holds ``(op, phase, host_s, events or None)``.

    Args:
        events: a factory of CUDA event pairs (``lambda: (cupy.cuda.Event(), cupy.cuda.Event())``),
            or None for host timers only (the CPU).
    """

    def __init__(self, events: Callable[[], tuple] | None = None):
        self.events = events
        self.records: list = []
        self._depth = 0
        self._saved: list = []

    def __enter__(self) -> "OpTimer":
        for cls in function_classes():
            for phase in ("forward", "backward"):
                original = cls.__dict__.get(phase)
                if isinstance(original, staticmethod):
                    self._saved.append((cls, phase, original))
                    setattr(cls, phase, staticmethod(self._wrap(cls.__name__, phase, original.__func__)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for cls, phase, original in reversed(self._saved):
            setattr(cls, phase, original)
        self._saved = []

    def _wrap(self, name: str, phase: str, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return fn(*args, **kwargs)
            pair = self.events() if self.events is not None else None
            self._depth += 1
            try:
                if pair is not None:
                    pair[0].record()
                t0 = time.perf_counter()
                out = fn(*args, **kwargs)
                host = time.perf_counter() - t0
                if pair is not None:
                    pair[1].record()
            finally:
                self._depth -= 1
            self.records.append((name, phase, host, pair))
            return out

        timed.__name__ = getattr(fn, "__name__", phase)
        return timed

    def clear(self) -> None:
        """Forget the records (between warm-up and timed steps)."""
        self.records = []


def summarize(records: list, elapsed_ms: Callable[[Any, Any], float] | None, steps: int) -> list[dict]:
    """Per ``(op, phase)``: calls, host and device milliseconds per step, sorted by time (largest first).

    ``elapsed_ms(start, end)`` reads a recorded event pair after the final sync (None: host only).
    """
    table: dict = {}
    for name, phase, host, pair in records:
        row = table.setdefault((name, phase), {"op": name, "phase": phase, "calls": 0, "host_ms": 0.0,
                                               "device_ms": None if elapsed_ms is None else 0.0})
        row["calls"] += 1
        row["host_ms"] += 1e3 * host
        if elapsed_ms is not None and pair is not None:
            row["device_ms"] += elapsed_ms(pair[0], pair[1])
    rows = list(table.values())
    for row in rows:
        row["calls"] = row["calls"] / steps
        row["host_ms"] /= steps
        if row["device_ms"] is not None:
            row["device_ms"] /= steps
    key = "host_ms" if elapsed_ms is None else "device_ms"
    return sorted(rows, key=lambda r: -r[key])
