"""The global random generator state: one NumPy ``Generator`` that every random draw uses.

It lives on the ground floor (it imports nothing from ember) so that ops, layers
and the data loader can draw from it without importing upwards; the public
factories built on it (``em.rand``, ``em.randn``, ...) live in ``ember.random``.
``manual_seed`` reseeds it; ``get_rng_state``/``set_rng_state`` make it part of a
checkpoint so a resumed run draws the same numbers.
"""

from __future__ import annotations

import numpy

_generator = numpy.random.default_rng()


def manual_seed(seed: int) -> numpy.random.Generator:
    """Reseed the global generator; returns it."""
    global _generator
    if not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer, got {seed!r}")
    _generator = numpy.random.default_rng(int(seed))
    return _generator


def default_generator() -> numpy.random.Generator:
    """The generator every random factory, dropout mask and layer init draws from."""
    return _generator


def get_rng_state() -> dict:
    """The generator state as a JSON-able dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state from ``get_rng_state``."""
    _generator.bit_generator.state = state


def spawn_generator() -> numpy.random.Generator:
    """A private NumPy generator seeded from the global stream (data loaders and splits).

    ``manual_seed(s)`` therefore makes them reproducible, while each owns a stream
    whose state can be saved on its own.
    """
    return numpy.random.default_rng(int(default_generator().integers(2**63)))
