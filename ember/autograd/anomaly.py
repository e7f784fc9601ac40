"""Anomaly detection: find the op whose forward or backward first produced NaN/Inf.

``with ember.autograd.detect_anomaly(): loss.backward()`` turns on three things:

* every ``Function`` records where user code created it (the innermost frame
  outside the ember package, plus the user frames above it);
* every forward output and every backward gradient is checked for NaN/Inf, and
  the first op that *produced* one from finite inputs raises ``AnomalyError``
  naming the op, the phase, which output or input, the shapes and where the op
  was created (``check_nan=False`` skips the checks and keeps only the next point);
* any exception raised inside an op's backward gets a note with that op's
  creation location (``BaseException.add_note``; the exception type is kept).

The switch is one process-wide hook point in ``function`` (installed with
``set_anomaly_hooks``; ``function`` never imports this module).  Why a global
and what anomaly mode costs: docs/engineering/notes.md, "Anomaly mode".
"""

from __future__ import annotations

import linecache
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from ember.autograd import function as _function
from ember.autograd.tensor import Tensor
from ember.errors import AnomalyError

_EMBER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_MAX_USER_FRAMES = 8
_check_nan = True


def is_anomaly_enabled() -> bool:
    """True while anomaly detection is on."""
    return _function._anomaly_hooks is not None


class set_detect_anomaly:
    """Turn anomaly detection on or off: at once when called, restored on leaving a ``with`` block.

    Args:
        mode: on (True) or off (False).
        check_nan: check forward outputs and backward gradients for NaN/Inf; with
            False only creation locations are recorded and added to backward errors.
    """

    def __init__(self, mode: bool, check_nan: bool = True):
        global _check_nan
        self._previous = (_function.set_anomaly_hooks(_HOOKS if mode else None), _check_nan)
        _check_nan = bool(check_nan)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        global _check_nan
        hooks, _check_nan = self._previous
        _function.set_anomaly_hooks(hooks)


class detect_anomaly:
    """Context manager (and decorator) that turns anomaly detection on inside its block.

    Args:
        check_nan: raise ``AnomalyError`` at the first op producing NaN/Inf (default True).
    """

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan
        self._stack: list = []

    def __enter__(self) -> detect_anomaly:
        self._stack.append(set_detect_anomaly(True, self.check_nan))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.pop().__exit__(*exc)

    def __call__(self, fn: Callable) -> Callable:
        import functools

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)

        return wrapper


# ---------------------------------------------------------------- locations
def _user_frames() -> tuple:
    """``(filename, lineno, function)`` of the caller's stack, innermost user frame first.

    Frames inside the ember package are skipped until the first one outside it;
    from there up to ``_MAX_USER_FRAMES`` frames are kept (line text is looked up
    only when an error is formatted).
    """
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_EMBER_DIR):
        frame = frame.f_back
    out = []
    while frame is not None and len(out) < _MAX_USER_FRAMES:
        code = frame.f_code
        out.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return tuple(out)


def format_location(frames: tuple | None) -> str:
    """``file:line in function: source`` of the innermost user frame, or a note when unknown."""
    if not frames:
        return "an unknown location (it was created while anomaly detection was off)"
    filename, lineno, name = frames[0]
    line = linecache.getline(filename, lineno).strip()
    return f"{filename}:{lineno} in {name}" + (f": {line}" if line else "")


def creation_stack(fn: Any) -> tuple:
    """The recorded ``(filename, lineno, function)`` frames of a node, innermost first (may be empty)."""
    return getattr(fn, "_anomaly_frames", ())


# ------------------------------------------------------------------- checks
def _bad_counts(value: Any, xp: Any) -> tuple | None:
    """``(n_nan, n_inf, size)`` if ``value`` holds a NaN or an Inf, else None (ints/bools/None pass)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, float):
        return None if math.isfinite(value) else (int(math.isnan(value)), int(math.isinf(value)), 1)
    dtype = getattr(value, "dtype", None)
    if dtype is None or dtype.kind not in "fc":
        return None
    if bool(xp.isfinite(value).all()):
        return None
    n_nan = int(xp.isnan(value).sum())
    return n_nan, int(value.size) - int(xp.isfinite(value).sum()) - n_nan, int(value.size)


def _shape(value: Any) -> tuple:
    if isinstance(value, Tensor):
        value = value.data
    return tuple(getattr(value, "shape", ()))


def _describe(counts: tuple) -> str:
    n_nan, n_inf, size = counts
    return f"{n_nan} NaN and {n_inf} Inf among {size} elements"


def check_forward(cls: type, ctx: Any, arrays: list, out: Any) -> None:
    """Called by ``Function.apply`` after ``forward`` when anomaly mode is on."""
    frames = _user_frames()
    ctx._anomaly_frames = frames
    if not _check_nan:
        return
    xp = ctx.backend.xp
    outs = out if type(out) is tuple else (out,)
    for j, o in enumerate(outs):
        counts = _bad_counts(o, xp)
        if counts is None:
            continue
        if any(_bad_counts(a, xp) is not None for a in arrays):
            return  # the non-finite value came in through an input: not this op's doing
        raise AnomalyError(
            f"{cls.__name__}.forward: produced {_describe(counts)} in output {j} of shape {_shape(o)} "
            f"from finite inputs of shapes {[_shape(a) for a in arrays]}; "
            f"the op was called at {format_location(frames)}",
            op=cls.__name__, phase="forward", index=j, frames=frames,
        )


def _saved_bad(fn: Any, xp: Any) -> bool:
    """True if a value the op saved for backward holds NaN/Inf (it came from the forward's data)."""
    saved = fn._saved
    if not isinstance(saved, tuple):
        return False
    return any(_bad_counts(v, xp) is not None for v in saved)


def checked_backward(call_backward: Callable, fn: Any, gys: list, create_graph: bool) -> tuple:
    """The engine's ``_call_backward`` under anomaly mode: notes and NaN/Inf checks on its gradients."""
    frames = creation_stack(fn)
    name = type(fn).__name__
    try:
        gxs = call_backward(fn, gys, create_graph)
    except AnomalyError:
        raise
    except Exception as e:
        e.add_note(f"[ember anomaly mode] raised in {name}.backward; the op was created at {format_location(frames)}")
        raise
    if not _check_nan:
        return gxs
    xp = fn.backend.xp
    for i, gx in enumerate(gxs):
        counts = _bad_counts(gx, xp)
        if counts is None:
            continue
        if any(_bad_counts(g, xp) is not None for g in gys) or _saved_bad(fn, xp):
            return gxs  # a non-finite incoming gradient (user-given) or forward value: not this op's doing
        raise AnomalyError(
            f"{name}.backward: produced {_describe(counts)} in the gradient for input {i} "
            f"(shape {_shape(gx)}) from finite output gradients of shapes {[_shape(g) for g in gys]}; "
            f"the op was created at {format_location(frames)}",
            op=name, phase="backward", index=i, frames=frames,
        )
    return gxs


_HOOKS = (check_forward, checked_backward)  # what set_detect_anomaly installs in Function's hook point
