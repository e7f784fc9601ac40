"""The counter-based (Philox4x32-10) generator behind dropout masks: a seed plus an offset per device.

Ground floor like ``ember.generator`` (it imports nothing from ember): callers hand it
the array module that makes a device's state.  The bits themselves are in
``ember.backends.reference.philox`` (NumPy) and ``ember.backends.cupy.philox`` (CUDA).

Why a second generator: a dropout mask must be made on the device, inside a
captured CUDA graph, with no host draw and no host copy, and still be new at
every replay and equal on every device for one seed.  A counter-based stream
gives that: the mask is a pure function of ``(seed, offset)``, and the offset
lives in device memory (a NumPy array on the CPU) where a kernel advances it.

Stream semantics:

* ``manual_seed(s)`` sets the key to ``s mod 2**64`` and every device's offset to 0,
  writing into the live state arrays (captured steps see the new seed).
* Each mask of ``n`` elements on a device consumes ``ceil(n / 4)`` blocks from that
  device's offset and advances it by as much; nothing else advances it.  Devices
  advance independently, so the k-th mask on the cpu equals the k-th one on
  cuda:0 and on cuda:1.
* ``get_state()`` holds the seed and every device's offset (a device read: call it
  between steps); ``set_state`` writes them back in place, so a saved and restored
  generator draws the same masks.  ``clone()`` is a fork: same seed and offsets,
  its own state arrays, so its draws never advance the original.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy

_MASK64 = (1 << 64) - 1


def _check_seed(seed: Any, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f"{where}: expected a non-negative integer seed, got {seed!r}")
    return int(seed) & _MASK64


class PhiloxGenerator:
    """A Philox4x32-10 key with one ``[seed, offset]`` state array per device (see the module docstring)."""

    def __init__(self, seed: int | None = None):
        self._seed = secrets.randbits(64) if seed is None else _check_seed(seed, "PhiloxGenerator")
        self._states: dict[str, Any] = {}  # device name -> live int64 [seed, offset] array on that device
        self._pending: dict[str, int] = {}  # offsets restored for devices not used yet

    def manual_seed(self, seed: int) -> PhiloxGenerator:
        """Key the stream by ``seed mod 2**64`` and reset every device's offset to 0; returns self."""
        self._seed = _check_seed(seed, "manual_seed")
        self._pending = {}
        for state in self._states.values():
            _write(state, self._seed, 0)
        return self

    def initial_seed(self) -> int:
        """The key (the seed reduced mod 2**64)."""
        return self._seed

    def state(self, device: str, xp: Any) -> Any:
        """The live ``[seed, offset]`` int64 array of ``device`` (``"cpu"``, ``"cuda:0"``).

        Made with ``xp`` by a fill (no host copy) on first use; kernels read and
        advance it in place.  Make it before a CUDA graph capture (one eager step
        does): made inside, its fill would replay and reset the offset every step.
        """
        state = self._states.get(device)
        if state is not None and isinstance(state, xp.ndarray):
            return state
        # First use, or an array of another array module now serves this device (a test's fake
        # CuPy replaced): a new array continuing the same offset.
        offset = self._pending.pop(device, 0) if state is None else _read_offset(state)
        state = self._states[device] = xp.zeros(2, dtype="int64")
        _write(state, self._seed, offset)
        return state

    def has_state(self, device: str) -> bool:
        """True once ``device`` has a live state array (made by its first mask)."""
        return device in self._states

    def offset(self, device: str = "cpu") -> int:
        """The next block ``device`` draws from (a device read on CUDA)."""
        return self.get_state()["offsets"].get(device, 0)

    def get_state(self) -> dict:
        """``{"seed": int, "offsets": {device: int}}``: everything the stream needs to resume."""
        offsets = dict(self._pending)
        for key, state in self._states.items():
            offsets[key] = _read_offset(state)
        return {"seed": self._seed, "offsets": offsets}

    def set_state(self, state: dict) -> None:
        """Restore a ``get_state`` dict in place: its seed, and its offsets (0 for devices it lacks).

        Raises:
            ValueError: ``state`` is not such a dict.
        """
        if not isinstance(state, dict) or "seed" not in state or not isinstance(state.get("offsets"), dict):
            raise ValueError(
                f"PhiloxGenerator.set_state: expected a dict with 'seed' and 'offsets', got {state!r:.200}"
            )
        offsets = {str(k): int(v) & _MASK64 for k, v in state["offsets"].items()}
        self._seed = _check_seed(int(state["seed"]), "PhiloxGenerator.set_state")
        for key, array in self._states.items():
            _write(array, self._seed, offsets.pop(key, 0))
        self._pending = offsets

    def clone(self) -> PhiloxGenerator:
        """A fork: the same seed and offsets in state arrays of its own."""
        fork = PhiloxGenerator(self._seed)
        fork.set_state(self.get_state())
        return fork

    def __repr__(self) -> str:
        return f"PhiloxGenerator(seed={self._seed}, devices={sorted(self._states)})"


def _as_int64(value: int) -> int:
    """``value mod 2**64`` as the signed int64 with the same bits (how state words are stored)."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _read_offset(state: Any) -> int:
    """The offset word of a state array, as an unsigned int (a device read for a CuPy array)."""
    host = state.get() if hasattr(state, "get") else state
    return int(host[1]) & _MASK64


def _write(state: Any, seed: int, offset: int) -> None:
    """Overwrite a live state array in place (fills, no host copy)."""
    state[0:1] = _as_int64(seed)
    state[1:2] = _as_int64(offset)


_default = PhiloxGenerator()


def default_philox_generator() -> PhiloxGenerator:
    """The generator every dropout mask draws from unless given another (seeded by ``manual_seed``)."""
    return _default
