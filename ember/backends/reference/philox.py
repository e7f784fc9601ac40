"""Philox4x32-10 counter-based random bits and the dropout mask built on them (NumPy, the spec).

Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC11) maps a 128-bit counter and a 64-bit key to 128 random bits
with ten rounds of multiply/xor; any block is computed on its own, so a GPU
kernel and this NumPy twin produce the same bits from the same (key, counter)
in any order.  ``ember.backends.cupy.philox`` runs the same formulas as a CUDA
kernel.

The stream.  A generator *state* is two int64 words ``[seed, offset]`` (read as
uint64) living on the device that uses them.  The key is the seed's two 32-bit
halves (low half first); block ``b`` has counter words ``(b mod 2**32, b >> 32,
0, 0)``.  A mask of ``n`` elements uses blocks ``offset .. offset + ceil(n/4) - 1``:
element ``i`` takes word ``i % 4`` of block ``offset + i // 4``.  Making the mask
advances ``offset`` by ``ceil(n / 4)``, so the next mask draws fresh blocks.

The mask.  Element ``i`` with random word ``u`` is kept iff ``u >= ceil(p * 2**32)``,
the exact integer form of ``u * 2**-32 >= p`` (``P(keep) = 1 - p`` up to
2**-32); a kept element is ``1 / (1 - p)`` rounded to the mask's dtype (inf where
float16 overflows), a dropped one 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

# The round multipliers and the Weyl key increments of Philox4x32 (published constants).
M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
ROUNDS = 10
WORDS_PER_BLOCK = 4
_U32 = 0xFFFFFFFF


def philox4x32(counter: tuple, key: tuple, rounds: int = ROUNDS) -> tuple:
    """Philox4x32-``rounds`` of counters ``(c0, c1, c2, c3)`` (uint32 arrays) under ``key = (k0, k1)``.

    Returns:
        The four output words, uint32 arrays of the counters' shape.
    """
    c0, c1, c2, c3 = (numpy.asarray(c, dtype=numpy.uint32) for c in counter)
    k0, k1 = int(key[0]) & _U32, int(key[1]) & _U32
    m0, m1 = numpy.uint64(M0), numpy.uint64(M1)
    shift = numpy.uint64(32)
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + W0) & _U32, (k1 + W1) & _U32
        p0 = c0.astype(numpy.uint64) * m0  # the full 64-bit products: hi and lo halves of mulhilo
        p1 = c2.astype(numpy.uint64) * m1
        hi0, lo0 = (p0 >> shift).astype(numpy.uint32), p0.astype(numpy.uint32)
        hi1, lo1 = (p1 >> shift).astype(numpy.uint32), p1.astype(numpy.uint32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ numpy.uint32(k0), lo1, hi0 ^ c3 ^ numpy.uint32(k1), lo0
    return c0, c1, c2, c3


def blocks_for(n: int) -> int:
    """How many 128-bit blocks (and offset steps) ``n`` random words consume: ``ceil(n / 4)``."""
    return -(-int(n) // WORDS_PER_BLOCK)


def random_words(seed: int, offset: int, n: int) -> numpy.ndarray:
    """The ``n`` uint32 words of the stream ``seed`` starting at block ``offset`` (see the module docstring)."""
    seed, offset = int(seed) & 0xFFFFFFFFFFFFFFFF, int(offset) & 0xFFFFFFFFFFFFFFFF
    block = numpy.arange(blocks_for(n), dtype=numpy.uint64) + numpy.uint64(offset)  # wraps mod 2**64
    zero = numpy.zeros(block.shape, dtype=numpy.uint32)
    words = philox4x32(
        (block.astype(numpy.uint32), (block >> numpy.uint64(32)).astype(numpy.uint32), zero, zero),
        (seed & _U32, seed >> 32),
    )
    return numpy.stack(words, axis=1).reshape(-1)[:n]


def new_state(seed: int, offset: int = 0, *, xp: Any = numpy) -> Any:
    """A state array ``[seed, offset]`` (int64 words holding uint64 values) made with ``xp``.

    Made by a fill, not a host copy, so it can be created while a CUDA graph is captured.
    """
    state = xp.zeros(2, dtype=numpy.int64)
    state[0:1] = as_int64(seed)
    state[1:2] = as_int64(offset)
    return state


def as_int64(value: int) -> int:
    """``value mod 2**64`` as the signed int64 with the same bits (how state words are stored)."""
    value = int(value) & 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def dropout_threshold(p: float) -> int:
    """``ceil(p * 2**32)``: an element with random word ``u`` is kept iff ``u >= it`` (2**32 drops all)."""
    return min(math.ceil(float(p) * 2.0**32), 2**32)


def dropout_scale(p: float, dtype: Any) -> Any:
    """``1 / (1 - p)`` as a scalar of ``dtype`` (``inf`` when float16 cannot hold it, without a warning)."""
    with numpy.errstate(over="ignore"):
        return numpy.asarray(1.0 / (1.0 - p), dtype=dtype)[()]


def advance(state: Any, blocks: int) -> None:
    """Add ``blocks`` to the state's offset in place (mod 2**64)."""
    state.view(numpy.uint64)[1:2] += numpy.uint64(blocks)


def mask_from_words(words: numpy.ndarray, p: float, dtype: Any) -> numpy.ndarray:
    """The flat mask of ``words``: ``1 / (1 - p)`` (in ``dtype``) where ``u >= ceil(p * 2**32)``, else 0."""
    threshold = dropout_threshold(p)
    keep = words.astype(numpy.int64) >= threshold
    mask = keep.astype(dtype)
    scale = dropout_scale(p, dtype)
    if numpy.isfinite(scale):  # (not numpy.where: it branches on every element of a random mask)
        mask *= scale
    else:  # float16 overflow: 0 * inf would be NaN
        mask[keep] = scale
    return mask


def dropout_mask(shape: tuple, p: float, state: Any, dtype: Any, *, xp: Any = numpy) -> Any:
    """An inverted-dropout mask drawn from ``state``, which advances by ``ceil(n / 4)`` blocks.

    Args:
        shape: the mask's shape (``n`` elements).
        p: drop probability in ``[0, 1)``.
        state: a NumPy int64 ``[seed, offset]`` array (``new_state``), updated in place.
        dtype: the mask's floating dtype (the input's).
        xp: the array module (NumPy; a device backend runs its own kernel instead).

    Returns:
        A C-contiguous array of ``shape`` and ``dtype``: 0 or ``1 / (1 - p)``.
    """
    n = math.prod(shape)
    seed, offset = (int(v) for v in numpy.asarray(state).view(numpy.uint64))
    mask = mask_from_words(random_words(seed, offset, n), p, numpy.dtype(dtype))
    advance(state, blocks_for(n))
    return xp.asarray(mask.reshape(shape))
