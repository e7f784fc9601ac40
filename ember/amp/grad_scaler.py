"""``GradScaler``: dynamic loss scaling for float16 training, with PyTorch's API and schedule.

float16 gradients underflow below ~6e-8, so the loss is multiplied by a large
``scale`` before ``backward()`` and the gradients divided by it again before
the optimizer step.  Too large a scale overflows: a step whose gradients hold
an inf or nan is skipped and the scale multiplied by ``backoff_factor``;
after ``growth_interval`` clean steps in a row it is multiplied by
``growth_factor``.  The scale is kept in float32 precision, as PyTorch keeps
it in a float32 tensor, so both produce the same sequence of scales.

float16 parameters (a ``.half()`` model) are updated through float32 master
copies kept here, not in ``state_dict``.  How, and what the finite check costs:
docs/engineering/notes.md, "GradScaler".

On a GPU ``unscale_`` never reads a gradient on the host: each gradient's
"all finite" reduction stays on the device and they are OR-ed into one device
flag per optimizer, which ``step`` (or ``update``) reads once - one sync per
step, the price of deciding on the host whether to skip the optimizer (its step
counts are Python numbers, so the skip itself cannot move to the device yet).
On the CPU the check is eager, as it costs no sync there.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy

from ember.amp import captured_scaler
from ember.autograd.capture import replayable
from ember.autograd.grad_mode import no_grad
from ember.autograd.tensor import Tensor
from ember.backends import device_gemm
from ember.backends.device import backend_of

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"
_FLOAT16 = numpy.dtype(numpy.float16)
_FLOAT32 = numpy.dtype(numpy.float32)


def _f32(value: float) -> float:
    """``value`` rounded to float32, the precision PyTorch's scale tensor has."""
    return float(numpy.float32(value))


class _OptimizerState:
    """What the scaler knows about one optimizer between two ``update()`` calls.

    ``found_inf`` is a bool, or on a GPU a list of 0-d device flags (one per GPU) until
    ``_found_inf`` reads them once.
    """

    __slots__ = ("stage", "found_inf")

    def __init__(self) -> None:
        self.stage = _READY
        self.found_inf = False


def _any_not_finite(device_flags: list) -> list:
    """Per GPU, one 0-d device bool that is True when any of its "all finite" flags is False.

    Combined on the device (no host read); a model split across GPUs gets one flag per GPU.
    """
    per_device: dict = {}
    for device, backend, all_finite in device_flags:
        per_device.setdefault(device, (backend, []))[1].append(all_finite)
    # ops.stack: capturable in a CUDA graph for any number of parameters (CuPy's own stack is not over 8)
    return [b.xp.logical_not(b.ops.stack(flags).all()) for b, flags in per_device.values()]


class GradScaler:
    """Scale the loss, unscale and check the gradients, skip bad steps, adapt the scale.

    Usage (as PyTorch)::

        scaler = ember.amp.GradScaler()
        with ember.amp.autocast():
            loss = loss_fn(model(x), t)
        scaler.scale(loss).backward()
        scaler.step(optimizer)      # unscale_ + skip if any gradient is inf/nan
        scaler.update()             # back off after an overflow, grow after growth_interval clean steps

    Args:
        init_scale: the first scale (2**16).
        growth_factor: scale multiplier after ``growth_interval`` clean steps (> 1).
        backoff_factor: scale multiplier after an overflow (in (0, 1)).
        growth_interval: clean steps in a row before growing (>= 1).
        enabled: False turns every method into a pass-through.

    Raises:
        ValueError: a factor, the interval or the initial scale is out of range.
    """

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        if not (isinstance(init_scale, (int, float)) and math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"GradScaler: expected a finite init_scale > 0, got {init_scale!r}")
        if not (isinstance(growth_factor, (int, float)) and growth_factor > 1.0 and math.isfinite(growth_factor)):
            raise ValueError(f"GradScaler: expected growth_factor > 1, got {growth_factor!r}")
        if not (isinstance(backoff_factor, (int, float)) and 0.0 < backoff_factor < 1.0):
            raise ValueError(f"GradScaler: expected backoff_factor in (0, 1), got {backoff_factor!r}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"GradScaler: expected an integer growth_interval >= 1, got {growth_interval!r}")
        self._enabled = bool(enabled)
        self._scale_tensors: dict = {}  # (device, dtype) -> 0-d Tensor holding the scale
        self._set_scale(_f32(init_scale))
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0
        self._per_optimizer: "weakref.WeakKeyDictionary[Any, _OptimizerState]" = weakref.WeakKeyDictionary()
        self._masters: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------ the cycle
    def scale(self, outputs: Any) -> Any:
        """``outputs * scale`` for a Tensor or a (nested) list/tuple of them.

        A float16 output is cast to float32 first, so a scaled loss of 65536 or
        more does not overflow before its gradient reaches float16 territory.
        """
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if outputs.dtype.kind != "f":
                raise TypeError(f"GradScaler.scale: expected a floating Tensor, got dtype {outputs.dtype}")
            if outputs.dtype == _FLOAT16:
                outputs = outputs.astype(_FLOAT32)
            return outputs * self._scale_tensor(outputs)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise TypeError(f"GradScaler.scale: expected a Tensor or a list/tuple of Tensors, got {type(outputs).__name__}")

    @replayable
    def unscale_(self, optimizer: Any) -> None:
        """Divide the gradients of ``optimizer``'s parameters by the scale and note any inf/nan.

        Gradients of float16 parameters become float32 (see the module docstring).

        Raises:
            RuntimeError: called twice for one optimizer, or after ``step``, before ``update()``.
        """
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state.stage == _UNSCALED:
            raise RuntimeError("GradScaler.unscale_: already called on this optimizer since the last update()")
        if state.stage == _STEPPED:
            raise RuntimeError("GradScaler.unscale_: called after step(); call update() first")
        if getattr(self, "_scale_on_device", False) and not device_gemm.CAPTURING[0]:
            captured_scaler.pull(self)  # a CUDA graph changed the scale since the host last saw it
        inv_scale = numpy.float32(1.0 / self._scale)
        found_inf = False
        device_flags = []  # GPU gradients: one 0-d "all finite" array each, never read here
        with no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g, device = p.grad.data, p.grad.device
                    if g.dtype == _FLOAT16:
                        g = g.astype(_FLOAT32)
                    if device_gemm.CAPTURING[0] and type(g) is not numpy.ndarray:  # in a CUDA graph
                        g = g * captured_scaler.inv_scale(self, device)
                    else:
                        g = g * inv_scale  # a new array: a gradient may be a read-only broadcast view
                    backend = backend_of(g)
                    if backend.device_type != "cpu":
                        device_flags.append((str(device), backend, backend.xp.isfinite(g).all()))
                    elif not found_inf and not bool(backend.xp.isfinite(g).all()):
                        found_inf = True
                    p.grad = Tensor._make(g)
        state.found_inf = found_inf if found_inf or not device_flags else _any_not_finite(device_flags)
        state.stage = _UNSCALED

    @replayable
    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """``unscale_`` if not done yet, then ``optimizer.step()`` unless a gradient was inf/nan.

        Returns:
            The optimizer's return value, or None for a skipped step.

        Raises:
            RuntimeError: a second ``step`` before ``update()``, or a closure (not supported, as in PyTorch).
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs or args:
            raise RuntimeError("GradScaler.step: closures are not supported while the scaler is enabled")
        state = self._state(optimizer)
        if state.stage == _STEPPED:
            raise RuntimeError("GradScaler.step: already called on this optimizer since the last update()")
        if state.stage == _READY:
            self.unscale_(optimizer)
        state.stage = _STEPPED
        if captured_scaler.capturing(state.found_inf):  # in a CUDA graph: the flag skips on the device
            return captured_scaler.step(self, optimizer, state.found_inf)
        if self._found_inf(state):
            return None
        return self._step_with_masters(optimizer)

    @replayable
    def update(self, new_scale: float | None = None) -> None:
        """Adapt the scale after this iteration's steps (or set it to ``new_scale``).

        Raises:
            RuntimeError: no ``step``/``unscale_`` was recorded since the last update.
            ValueError: ``new_scale`` is not a finite positive number.
        """
        if not self._enabled:
            return
        if new_scale is not None:
            if not (isinstance(new_scale, (int, float)) and math.isfinite(new_scale) and new_scale > 0):
                raise ValueError(f"GradScaler.update: expected a finite new_scale > 0, got {new_scale!r}")
            self._set_scale(_f32(new_scale))
        else:
            states = [s for s in self._per_optimizer.values() if s.stage != _READY]
            if not states:
                raise RuntimeError("GradScaler.update: no inf checks were recorded; call step(optimizer) first")
            if all(captured_scaler.capturing(s.found_inf) for s in states):  # in a CUDA graph
                captured_scaler.update(self, [f for s in states for f in s.found_inf])
            elif any([self._found_inf(s) for s in states]):
                self._set_scale(_f32(self._scale * self._backoff_factor))
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    grown = _f32(self._scale * self._growth_factor)
                    if math.isfinite(grown):
                        self._set_scale(grown)
                    self._growth_tracker = 0
        self._per_optimizer = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------ accessors
    def get_scale(self) -> float:
        """The current scale (1.0 when disabled, as PyTorch)."""
        if getattr(self, "_scale_on_device", False):  # a CUDA graph updates it: read it back
            captured_scaler.pull(self)
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        """The factor applied after growth_interval clean steps."""
        return self._growth_factor

    def get_backoff_factor(self) -> float:
        """The factor applied after an overflow."""
        return self._backoff_factor

    def get_growth_interval(self) -> int:
        """Clean steps in a row before the scale grows."""
        return self._growth_interval

    def is_enabled(self) -> bool:
        """False for a pass-through scaler (enabled=False)."""
        return self._enabled

    def state_dict(self) -> dict:
        """PyTorch's keys: scale, growth_factor, backoff_factor, growth_interval, _growth_tracker."""
        if not self._enabled:
            return {}
        if getattr(self, "_scale_on_device", False):
            captured_scaler.pull(self)
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()``.

        Raises:
            RuntimeError: the dict is empty (saved from a disabled scaler).
            KeyError: a key is missing.
        """
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("GradScaler.load_state_dict: the state dict is empty (saved from a disabled scaler?)")
        missing = [k for k in ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
                   if k not in state_dict]
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: missing keys {missing}")
        self._set_scale(_f32(float(state_dict["scale"])))
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])

    # ------------------------------------------------------------ internals
    def _set_scale(self, value: float) -> None:
        """Set the scale; the 0-d scale tensors are updated in place, so a captured step
        (``ember.compile``) multiplies by the current scale, never a frozen one."""
        self._scale = value
        for t in self._scale_tensors.values():
            t.data[...] = value

    def _scale_tensor(self, like: Tensor) -> Tensor:
        """The scale as a 0-d Tensor of ``like``'s device and dtype (made once for each)."""
        key = (like.device, like.dtype)
        t = self._scale_tensors.get(key)
        if t is None:
            backend = backend_of(like.data)
            t = self._scale_tensors[key] = Tensor._make(backend.asarray(numpy.asarray(self._scale, like.dtype)))
        return t

    def _state(self, optimizer: Any) -> _OptimizerState:
        """This iteration's record for ``optimizer`` (created on first use)."""
        state = self._per_optimizer.get(optimizer)
        if state is None:
            state = self._per_optimizer[optimizer] = _OptimizerState()
        return state

    @staticmethod
    def _found_inf(state: _OptimizerState) -> bool:
        """Whether ``state``'s gradients held an inf/nan; a device flag is read (one sync) only once."""
        if not isinstance(state.found_inf, bool):
            state.found_inf = any([bool(flag) for flag in state.found_inf])
        return state.found_inf

    def _step_with_masters(self, optimizer: Any) -> Any:
        """``optimizer.step()`` with every float16 parameter swapped for its float32 master."""
        masters = self._masters.setdefault(optimizer, {})
        swapped = []
        for gi, group in enumerate(optimizer.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.grad is None or p.data.dtype != _FLOAT16:
                    continue
                entry = masters.get((gi, pi))
                if entry is None or entry[1] != p._version[0]:  # new, or changed outside the scaler
                    entry = (p.data.astype(_FLOAT32), None)
                swapped.append(((gi, pi), p, p.data, entry[0]))
                p.data = entry[0]
        try:
            return optimizer.step()
        finally:
            for key, p, half, master in swapped:
                backend_of(half).xp.copyto(half, master, casting="same_kind")
                p.data = half
                p._bump_version()
                masters[key] = (master, p._version[0])
