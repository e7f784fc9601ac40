"""The Philox4x32-10 twin (``ember.backends.reference.philox``): known answers, the stream layout, the mask."""

from __future__ import annotations

import numpy as np
import pytest

from ember.backends.reference import philox

# Random123's published known-answer vectors for philox4x32 with 10 rounds:
# (counter c0..c3, key k0 k1) -> four output words.
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def scalar_philox(counter, key, rounds=10):
    """A plain-int Philox4x32 written straight from the paper (no NumPy), the independent oracle."""
    c, (k0, k1) = list(counter), key
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) % 2**32, (k1 + 0xBB67AE85) % 2**32
        prod0, prod1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(prod1 >> 32) ^ c[1] ^ k0, prod1 % 2**32, (prod0 >> 32) ^ c[3] ^ k1, prod0 % 2**32]
    return tuple(c)


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox.philox4x32(counter, key)) == expected
    assert scalar_philox(counter, key) == expected  # the oracle below is right too


def test_vectorised_rounds_equal_the_scalar_oracle(rng):
    counters = rng.integers(0, 2**32, size=(4, 50), dtype=np.uint64).astype(np.uint32)
    for key in ((0, 0), (0xFFFFFFFF, 1), tuple(int(k) for k in rng.integers(0, 2**32, 2))):
        for rounds in (7, 10):
            got = np.stack(philox.philox4x32(tuple(counters), key, rounds))
            want = np.array([scalar_philox(tuple(int(c) for c in counters[:, j]), key, rounds) for j in range(50)]).T
            np.testing.assert_array_equal(got, want)


def test_stream_layout_words_of_consecutive_blocks():
    seed = 0x0123456789ABCDEF
    for offset in (0, 5, 2**32 - 1, 2**64 - 2):  # the block counter carries into word 1 and wraps at 2**64
        words = philox.random_words(seed, offset, 11)
        for i in range(11):
            block = (offset + i // 4) % 2**64
            expected = scalar_philox((block % 2**32, block >> 32, 0, 0), (seed % 2**32, seed >> 32))
            assert int(words[i]) == expected[i % 4], (offset, i)
    long = philox.random_words(seed, 3, 40)
    np.testing.assert_array_equal(long[12:], philox.random_words(seed, 6, 28))  # a later offset is a later slice


def test_words_look_uniform():
    words = philox.random_words(2024, 0, 1 << 16)
    counts = np.bincount(words >> np.uint32(28), minlength=16)  # the top four bits
    chi2 = ((counts - len(words) / 16) ** 2 / (len(words) / 16)).sum()
    assert chi2 < 45  # 15 degrees of freedom: 45 is far beyond the 0.9999 quantile (about 42)
    bits = np.unpackbits(words.view(np.uint8)).reshape(-1, 32).mean(axis=0)
    assert np.abs(bits - 0.5).max() < 0.01  # every bit position is balanced
    low = (words & np.uint32(0xFF)).astype(np.int64)
    assert abs(np.corrcoef(low[:-1], low[1:])[0, 1]) < 0.02  # neighbours uncorrelated


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("p", [1e-9, 0.3, 0.5, 1 - 1e-7])
def test_mask_keeps_exactly_the_words_at_or_above_p(dtype, p):
    state = philox.new_state(77, 9)
    mask = philox.dropout_mask((3, 5, 7), p, state, dtype)
    words = philox.random_words(77, 9, 105)
    keep = words.astype(np.float64) * 2.0**-32 >= p  # exact in float64: the threshold is the same test
    assert mask.dtype == dtype and mask.shape == (3, 5, 7) and mask.flags.c_contiguous
    np.testing.assert_array_equal(mask.reshape(-1) != 0, keep)
    np.testing.assert_array_equal(mask.reshape(-1)[keep], philox.dropout_scale(p, dtype))  # float16: inf
    assert int(state[1]) == 9 + 27  # ceil(105 / 4) blocks consumed


def test_mask_statistics_and_edges():
    state = philox.new_state(0)
    m = philox.dropout_mask((301, 333), 0.3, state, np.float32)
    assert abs((m == 0).mean() - 0.3) < 0.005
    np.testing.assert_allclose(m[m != 0], np.float32(1 / 0.7))
    assert (philox.dropout_mask((5, 7), 0.0, state, np.float64) == 1).all()
    assert (philox.dropout_mask((5, 7), 1 - 1e-12, state, np.float64) == 0).all()  # threshold reaches 2**32
    assert philox.dropout_threshold(0.5) == 2**31 and philox.dropout_threshold(1 - 1e-12) == 2**32
    before = state.copy()
    assert philox.dropout_mask((2, 0), 0.5, state, np.float32).shape == (2, 0)
    np.testing.assert_array_equal(state, before)  # an empty mask draws nothing


def test_consecutive_masks_draw_new_blocks_and_offsets_differ():
    state = philox.new_state(5)
    a = philox.dropout_mask((8, 16), 0.5, state, np.float32)
    b = philox.dropout_mask((8, 16), 0.5, state, np.float32)
    assert int(state[1]) == 64 and not np.array_equal(a, b)
    np.testing.assert_array_equal(b, philox.dropout_mask((8, 16), 0.5, philox.new_state(5, 32), np.float32))
    other_seed = philox.dropout_mask((8, 16), 0.5, philox.new_state(6), np.float32)
    assert not np.array_equal(a, other_seed)


def test_large_seeds_and_offsets_are_stored_as_int64_bits():
    state = philox.new_state(2**64 - 1, 2**63 + 5)
    assert state.dtype == np.int64 and [int(v) for v in state.view(np.uint64)] == [2**64 - 1, 2**63 + 5]
    philox.advance(state, 2**63)
    assert int(state.view(np.uint64)[1]) == 5  # wraps mod 2**64


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("p", [1e-9, 0.3, 1 - 1e-7, 1 - 1e-12])
def test_compiled_cpu_mask_is_bit_equal_to_the_twin(dtype, p):
    nb_philox = pytest.importorskip("ember.backends.numba.philox", reason="numba is not installed")
    for seed, offset, shape in ((0, 0, (3, 5, 7)), (2**64 - 1, 2**32 - 2, (13,)), (99, 2**64 - 3, (6, 11)),
                                (4, 1, (0, 3))):
        compiled, twin = philox.new_state(seed, offset), philox.new_state(seed, offset)
        for _ in range(2):
            got, want = nb_philox.dropout_mask(shape, p, compiled, dtype), philox.dropout_mask(shape, p, twin, dtype)
            assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()
            np.testing.assert_array_equal(compiled, twin)
