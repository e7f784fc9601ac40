"""``GradScaler`` inside a CUDA graph: unscale, inf check, skip and scale update all on the device.

Eager, the scaler reads its found-inf flag on the host once per step to decide
whether to step and how to change the scale. A graph cannot read the host, so
while ``ember.cuda.graphs`` captures: gradients are multiplied by ``1 / scale``
computed from the device scale tensor; the optimizer step is captured with the
flag as its skip flag (``ember.optim.captured``), so an inf/nan step updates
nothing and does not advance Adam's count; and ``update`` computes the new
scale and growth tracker with device ``where``s and writes them in place into
the scale tensors that ``scale()`` multiplies by. The host's copies of the
scale and tracker are then read back from the device on request
(``get_scale``, ``state_dict``), never during a step.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends import capture_state, device_gemm

_FLOAT32 = numpy.dtype(numpy.float32)


def capturing(found_inf: Any) -> bool:
    """True inside a CUDA-graph capture for a scaler state holding device flags (not a host bool)."""
    return device_gemm.CAPTURING[0] > 0 and not isinstance(found_inf, bool)


def _scale_array(scaler: Any, device: Any) -> Any:
    """The float32 scale array on ``device`` (made by ``scale()`` in the warm-up steps).

    Raises:
        RuntimeError: no scale tensor on that device yet (capture without a warm-up step).
    """
    for (dev, dtype), t in scaler._scale_tensors.items():
        if str(dev) == str(device) and numpy.dtype(dtype) == _FLOAT32:
            return t.data
    raise RuntimeError("GradScaler: capture a step only after one eager step, which makes the device scale")


def inv_scale(scaler: Any, device: Any) -> Any:
    """``1 / scale`` as a 0-d float32 device array (read at every replay, never frozen)."""
    scaler._scale_on_device = True
    return 1.0 / _scale_array(scaler, device)


def _one_flag(flags: list) -> Any:
    if len(flags) == 1:
        return flags[0]
    from ember.backends.device import backend_of

    return backend_of(flags[0]).ops.stack([f.reshape(()) for f in flags]).any()


def step(scaler: Any, optimizer: Any, flags: list) -> Any:
    """``optimizer.step()`` captured with the found-inf flag as its device skip flag."""
    from ember.optim import captured

    captured.set_skip_flag(optimizer, _one_flag(flags))
    try:
        return scaler._step_with_masters(optimizer)
    finally:
        captured.set_skip_flag(optimizer, None)


def update(scaler: Any, flags: list) -> None:
    """The scale and growth tracker's update, as ``GradScaler.update`` does it on the host, on the device."""
    import sys

    from ember.cuda.graphs import before_replay

    xp = sys.modules["cupy"]
    found = _one_flag(flags)
    scale = next(t.data for (_, dtype), t in scaler._scale_tensors.items() if numpy.dtype(dtype) == _FLOAT32)
    # empty, not zeros: a zeros() in the capture would be a memset replayed before every step; each capture
    # gets its own (the host fills it before the first replay, so it lives in that graph's host-filled memory)
    tracker = scaler._device_tracker = capture_state.host_filled_empty(xp, (), numpy.int64)
    start = [scaler._growth_tracker]
    before_replay(lambda: tracker.set(numpy.asarray(start.pop(), numpy.int64)) if start else None, keep=tracker)
    counted = tracker + 1
    at_interval = counted == scaler._growth_interval
    grown = scale * numpy.float32(scaler._growth_factor)
    new_scale = xp.where(found, scale * numpy.float32(scaler._backoff_factor),
                         xp.where(at_interval & xp.isfinite(grown), grown, scale))
    tracker[...] = xp.where(found | at_interval, 0, counted)
    for t in scaler._scale_tensors.values():
        t.data[...] = new_scale.astype(t.data.dtype)
    scaler._scale_on_device = True


def pull(scaler: Any) -> None:
    """Refresh the host's scale and growth tracker from the device (one read each; outside a step)."""
    for (_, dtype), t in scaler._scale_tensors.items():
        if numpy.dtype(dtype) == _FLOAT32 and type(t.data) is not numpy.ndarray:
            scaler._scale = float(t.data)
            break
    tracker = getattr(scaler, "_device_tracker", None)
    if tracker is not None:
        scaler._growth_tracker = int(tracker)
