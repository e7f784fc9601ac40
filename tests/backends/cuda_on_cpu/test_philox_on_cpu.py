"""The CUDA Philox dropout kernels compiled as host C++: bit-equal to the NumPy twin, state advanced on the "device"."""

from __future__ import annotations

import numpy
import pytest
from compiled_launch import LAUNCH_SHAPES, patch_launches
from host_cuda import compiler
from kernel_specs import cuda_wrappers, references

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++): the CUDA sources cannot run here")

K, R = cuda_wrappers(), references()


@pytest.fixture(params=sorted(LAUNCH_SHAPES))
def compiled(request, monkeypatch):
    patch_launches(monkeypatch, request.param)
    return request.param


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize("p", [1e-9, 0.25, 0.5, 1 - 1e-7])
def test_kernel_mask_is_bit_equal_to_the_twin(compiled, dtype, p):
    # 2**64 - 3 as the offset: the block counter carries into word 1 and wraps inside one mask
    for seed, offset, shape in ((0, 0, (3, 5, 7)), (2**64 - 1, 2**32 - 2, (13,)), (123456789, 2**64 - 3, (4, 9))):
        dev, host = R.philox.new_state(seed, offset), R.philox.new_state(seed, offset)
        for _ in range(2):  # the second mask starts where the kernel left the offset
            got = K.philox.dropout_mask(shape, p, dev, dtype)
            want = R.philox.dropout_mask(shape, p, host, dtype)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes()  # bit-equal, float16 inf and zeros included
            numpy.testing.assert_array_equal(dev, host)


def test_kernel_words_are_the_published_philox(monkeypatch):
    """Recover each word's bits from masks at 32 thresholds: they equal the reference's words."""
    patch_launches(monkeypatch, "device_config")
    seed, offset, n = 0x243F6A8885A308D3, 7, 10
    words = numpy.zeros(n, dtype=numpy.uint64)
    for bit in range(31, -1, -1):  # binary search of every word at once, through the keep test only
        trial = words + numpy.uint64(1 << bit)
        for i in range(n):  # one threshold per word: the kernel keeps iff word >= threshold
            p = float(trial[i]) / 2.0**32
            kept = K.philox.dropout_mask((n,), p, R.philox.new_state(seed, offset), numpy.float64)[i] != 0
            if kept and R.philox.dropout_threshold(p) == int(trial[i]):
                words[i] = trial[i]
    numpy.testing.assert_array_equal(words.astype(numpy.uint32), R.philox.random_words(seed, offset, n))


def test_empty_mask_launches_nothing_and_keeps_the_offset(compiled):
    state = R.philox.new_state(3, 11)
    assert K.philox.dropout_mask((0, 4), 0.5, state, numpy.float32).shape == (0, 4)
    assert int(state[1]) == 11
