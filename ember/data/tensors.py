"""How host batches become ember Tensors: wrapped on the CPU, copied (pinned by default) to a GPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def host_converter() -> Callable[[np.ndarray], Any]:
    """A function wrapping one host batch array as a CPU Tensor (no copy: ``from_numpy``)."""
    from ember.autograd.creation import from_numpy

    return from_numpy


def target_device(device: Any) -> Any:
    """None for the CPU (batches stay NumPy-backed Tensors), else the ``ember.Device``."""
    if device is None:
        return None
    from ember.backends.device import Device

    try:
        dev = Device(device)
    except (TypeError, ValueError) as e:
        raise ValueError(f"DataLoader: expected device None, 'cpu' or 'cuda[:N]', got {device!r} ({e})") from None
    return None if dev.type == "cpu" else dev


def device_converter(device: Any, pin_memory: bool | None) -> Callable[[np.ndarray], Any]:
    """A function copying one host batch array to ``device`` as a Tensor (pinned staging by default)."""
    from ember.autograd.tensor import Tensor
    from ember.backends.device import get_backend

    backend = get_backend(device)
    upload = getattr(backend, "upload", None)
    pinned = True if pin_memory is None else pin_memory
    if upload is None:
        return lambda a: Tensor._make(backend.asarray(a))
    return lambda a: Tensor._make(upload(a, pinned=pinned))
