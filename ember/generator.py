"""The global random generator state: one NumPy ``Generator`` that every random draw uses.

It lives on the ground floor (it imports only ``ember.philox_generator``, itself at the bottom) so that ops, layers
and the data loader can draw from it without importing upwards; the public
factories built on it (``em.rand``, ``em.randn``, ...) live in ``ember.random``.
``manual_seed`` reseeds it and the counter-based generator of dropout masks
(``ember.philox_generator``); ``get_rng_state``/``set_rng_state`` save and restore
both, so a resumed run draws the same numbers and the same masks.
"""

from __future__ import annotations

import numpy

from ember.philox_generator import default_philox_generator

_generator = numpy.random.default_rng()


def manual_seed(seed: int) -> numpy.random.Generator:
    """Reseed the global generator; returns it."""
    global _generator
    if not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer, got {seed!r}")
    _generator = numpy.random.default_rng(int(seed))
    default_philox_generator().manual_seed(int(seed))
    return _generator


def default_generator() -> numpy.random.Generator:
    """The generator every random factory, dropout mask and layer init draws from."""
    return _generator


def get_rng_state() -> dict:
    """Both generators' states as a JSON-able dict: ``{"numpy": ..., "philox": ...}``.

    The Philox part reads each device's offset (a device sync): call it between steps.
    """
    return {"numpy": _generator.bit_generator.state, "philox": default_philox_generator().get_state()}


def set_rng_state(state: dict) -> None:
    """Restore a state from ``get_rng_state`` (a bare NumPy bit-generator state, as older checkpoints hold, too)."""
    if isinstance(state, dict) and "numpy" in state and "philox" in state:
        _generator.bit_generator.state = state["numpy"]
        default_philox_generator().set_state(state["philox"])
    else:
        _generator.bit_generator.state = state


def spawn_generator() -> numpy.random.Generator:
    """A private NumPy generator seeded from the global stream (data loaders and splits).

    ``manual_seed(s)`` therefore makes them reproducible, while each owns a stream
    whose state can be saved on its own.
    """
    return numpy.random.default_rng(int(default_generator().integers(2**63)))
