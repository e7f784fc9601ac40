"""The direct-convolution probe computes the same convolution as ember's per-tap GEMMs (so its timings compare alike)."""

from __future__ import annotations

import numpy
import pytest

from benchmarks import direct_conv_probe as probe


@pytest.mark.parametrize("pad", [1, 2])
def test_direct_kernel_equals_the_per_tap_gemms(pad):
    rng = numpy.random.default_rng(4)
    x = rng.normal(size=(2, 3, 6, 6)).astype(numpy.float32)
    W = rng.normal(size=(4, 3, 3, 3)).astype(numpy.float32)
    kern = probe.blocked_kernel(positions=2, channels=2)
    got, want = probe.direct_forward(kern, x, W, pad), probe.per_tap_forward(x, W, pad)
    assert got.shape == want.shape == (2, 4, 6 + 2 * pad - 2, 6 + 2 * pad - 2)
    numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
