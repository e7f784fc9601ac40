"""The gather kernels' two index widths, compiled as host C++: the 64-bit loop equals the 32-bit one.

``GATHER_LOOP`` (col2im, the pooling backwards) runs ``i`` in 32-bit ints unless the output is too
large for them, which no test on a CPU can allocate. Here each gather kernel is compiled a second
time with the size test made to fail (its ``2147483647LL`` limit turned into ``0LL``), so the
long long loop runs on the same inputs, over several launch shapes, and must give the same bits.
"""

from __future__ import annotations

import dataclasses

import numpy
import pytest
from host_cuda import compiler, kernel

from ember.backends.cupy import conv, conv_gemm, kernel_spec, pool

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++): the CUDA sources cannot run here")

LIMIT = "2147483647LL"
GEOMETRY = (2, 3, 7, 6, 3, 2, 2, 1, 1, 0)  # N, C, H, W, KH, KW, SH, SW, PH, PW
SHAPES = [(1, 32), (3, 7), (64, 256)]  # (blocks, threads): one block, a grid smaller than the work, a large one


def _wide(spec):
    assert spec.body.count(LIMIT) == 1, f"{spec.name}: expected one {LIMIT} size test in GATHER_LOOP"
    return dataclasses.replace(spec, name=spec.name + "_wide", body=spec.body.replace(LIMIT, "0LL"))


def _args(name, rng, dtype):
    n, c, h, w, kh, kw, sh, sw, ph, pw = GEOMETRY
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    geo = (c, h, w, kh, kw, sh, sw, ph, pw, oh, ow)
    img = numpy.empty((n, c, h, w), dtype)
    if name == "col2im":
        return (rng.normal(size=(n, c, kh, kw, oh, ow)).astype(dtype), img, *geo), img
    if name == "col2im_rows":
        return (rng.normal(size=(n * oh * ow, c * kh * kw)).astype(dtype), img, *geo), img
    gy = rng.normal(size=(n, c, oh, ow)).astype(dtype)
    if name == "max_bwd":
        return (gy, rng.integers(0, kh * kw, size=gy.shape).astype(numpy.int64), img, *geo), img
    return (gy, img, *geo), img


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize("name,spec", [("col2im", conv.COL2IM), ("col2im_rows", conv_gemm.COL2IM_ROWS),
                                       ("max_bwd", pool.MAX_BWD), ("avg_bwd", pool.AVG_BWD)])
def test_the_64_bit_gather_loop_equals_the_32_bit_one(name, spec, dtype):
    assert kernel_spec.GATHER_LOOP.split("@TERM@")[0] in spec.body  # built by gather_body
    wide = _wide(spec)
    rng = numpy.random.default_rng(4)
    args, out = _args(name, rng, dtype)
    total = out.size
    for blocks, threads in SHAPES:
        out.fill(numpy.nan)
        kernel((spec,), spec, dtype)(blocks, threads, *args, total)
        narrow = out.copy()
        out.fill(numpy.nan)
        kernel((wide,), wide, dtype)(blocks, threads, *args, total)
        assert not numpy.isnan(narrow).any()
        numpy.testing.assert_array_equal(out, narrow)
