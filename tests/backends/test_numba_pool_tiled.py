"""The 2x2 stride-2 max-pooling loops (``ember.backends.numba.pool_tiled``) against the NumPy reference.

Max pooling only compares and copies, so results must be equal bit for bit:
ties, signed zeros, NaN (first NaN of a window wins), infinities, odd sizes
(rows and columns no window covers), batch slices on worker threads, and the
backward's ``0 + gy`` (a ``-0.0`` gradient becomes ``+0.0``, as in the reference).
"""

import numpy as np
import pytest

pytest.importorskip("numba", reason="the Numba kernels need numba")

import ember as em
from ember.autograd import gradcheck, gradgradcheck
from ember.backends import use_cpu_kernels
from ember.backends.cpu import batch_split
from ember.backends.cpu.threads import set_thread_policy
from ember.backends.numba import pool as npool
from ember.backends.numba import pool_tiled
from ember.backends.reference import pool as rp
from ember.nn import functional as F

SHAPES = [(2, 3, 6, 6), (2, 2, 7, 9), (1, 1, 2, 2), (3, 2, 5, 4)]


@pytest.fixture(params=["serial", "split"])
def workers(request, monkeypatch):
    """One thread, or batch slices on 3 worker threads (any size is split)."""
    split = request.param == "split"
    previous = set_thread_policy(parallel_min_elements=float("inf"), batch_workers=3 if split else 1)
    if split:
        monkeypatch.setattr(batch_split, "MIN_SPLIT_ELEMENTS", 0)
    yield request.param
    set_thread_policy(parallel_min_elements=previous["parallel_min_elements"],
                      batch_workers=previous["batch_workers"])


def assert_bits(a, b):
    """Same dtype, shape and bytes (NaN payloads and the sign of zero included)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def _special(shape, dtype, rng):
    """Small integers (many ties) with signed zeros, NaNs and infinities sprinkled in."""
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    flat = x.reshape(-1)
    picks = rng.permutation(flat.size)
    flat[picks[: flat.size // 6]] = -0.0
    flat[picks[flat.size // 6 : flat.size // 6 + 3]] = np.nan
    if flat.size >= 6:
        flat[picks[-2]] = np.inf
        flat[picks[-1]] = -np.inf
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_tiled_max_pool_is_the_reference_bit_for_bit(workers, rng, dtype, shape):
    for x in (rng.normal(size=shape).astype(dtype), _special(shape, dtype, rng), np.full(shape, -0.0, dtype)):
        y, arg = npool.max_pool2d_forward(x, 2, 2, 2)
        y_ref, arg_ref = rp.max_pool2d_forward(x, 2, 2, 2)
        assert_bits(y, y_ref)
        assert_bits(arg, arg_ref)
        assert_bits(npool.max_pool2d_forward(np.asfortranarray(x), 2, 2, 2)[0], y_ref)
        for gy in (rng.normal(size=y.shape).astype(dtype), np.full(y.shape, -0.0, dtype),
                   _special(y.shape, dtype, rng)):
            assert_bits(npool.max_pool2d_backward(gy, arg_ref, shape, 2, 2, 2),
                        rp.max_pool2d_backward(gy, arg_ref, shape, 2, 2, 2))


def test_nan_in_any_window_position_wins_like_the_reference(workers):
    """A NaN at each of the four window positions, after and before finite values and other NaNs."""
    x = np.zeros((1, 4, 2, 4), dtype=np.float32)
    for k in range(4):
        x[0, k, k // 2, k % 2] = np.nan  # window (0, 0): NaN at position k
        x[0, k, :, 2:] = [[5.0, np.nan], [np.nan, 7.0]]  # window (0, 1): the first NaN wins
    y, arg = npool.max_pool2d_forward(x, 2, 2, 2)
    y_ref, arg_ref = rp.max_pool2d_forward(x, 2, 2, 2)
    assert np.isnan(y).all()
    assert_bits(y, y_ref)
    assert_bits(arg, arg_ref)


def test_the_kernels_are_chosen_only_for_their_geometry():
    assert pool_tiled.tiles_2x2(2, 2, 2, 2, 0, 0)
    for geometry in [(2, 2, 1, 1, 0, 0), (2, 2, 2, 2, 1, 0), (3, 3, 3, 3, 0, 0), (2, 3, 2, 3, 0, 0)]:
        assert not pool_tiled.tiles_2x2(*geometry)


def test_a_bad_argmax_raises_and_names_the_range(workers):
    gy = np.ones((1, 1, 2, 2), np.float32)
    for value in (4, -1):
        bad = np.zeros((1, 1, 2, 2), dtype=np.int64)
        bad[0, 0, 1, 0] = value
        with pytest.raises(ValueError, match=r"max_pool2d_backward: expected argmax in \[0, 4\) for a \(2, 2\) kernel"):
            npool.max_pool2d_backward(gy, bad, (1, 1, 4, 4), 2, 2, 2)


@pytest.mark.parametrize("shape", [(2, 2, 4, 6), (1, 2, 5, 7)], ids=str)
def test_gradcheck_through_the_op_on_the_numba_kernels(rng, shape):
    x = em.tensor(rng.normal(size=shape), dtype=em.float64, requires_grad=True)
    with use_cpu_kernels("numba"):
        assert gradcheck(lambda t: F.max_pool2d(t, 2, 2), [x])
        assert gradgradcheck(lambda t: F.max_pool2d(t, 2, 2), [x])


@pytest.mark.parametrize("k,s,p", [((3, 3), 1, 1), ((2, 2), 1, 0), ((2, 3), 2, 1)])
def test_general_kernels_keep_the_references_signed_zeros_too(workers, rng, k, s, p):
    """The other geometries' loops: value of the last equal maximum, argmax of the first, NaN first."""
    for x in (_special((2, 2, 5, 6), np.float32, rng), np.full((1, 2, 4, 5), -0.0, np.float64)):
        x.reshape(-1)[::7] = 0.0
        y, arg = npool.max_pool2d_forward(x, *k, s, p)
        y_ref, arg_ref = rp.max_pool2d_forward(x, *k, s, p)
        assert_bits(y, y_ref)
        assert_bits(arg, arg_ref)
