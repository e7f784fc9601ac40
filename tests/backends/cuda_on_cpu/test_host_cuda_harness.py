"""The host harness itself: barriers, shared memory, grid-stride coverage, argument checks."""

from __future__ import annotations

import numpy
import pytest
from host_cuda import KernelFailure, compiler, kernel
from kernel_specs import kernel_modules

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++): the CUDA sources cannot run here")

SOURCE, _ = kernel_modules()

_BLOCK_SUM = """
extern "C" __global__ void ${name}(const T* __restrict__ x, ACC* __restrict__ out, long long n) {
  __shared__ ACC buf[8];
  ACC s = 0;
  for (long long j = threadIdx.x; j < n; j += blockDim.x) s += to_acc(x[blockIdx.x * n + j]);
  buf[threadIdx.x] = s;
  __syncthreads();
  for (int k = 4; k > 0; k >>= 1) {
    if (threadIdx.x < k) buf[threadIdx.x] += buf[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}
"""

_DIVERGENT = """
extern "C" __global__ void ${name}(T* __restrict__ x) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  x[threadIdx.x] = 1;
}
"""

_COVER = """
extern "C" __global__ void ${name}(T* __restrict__ hits, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) hits[i] = hits[i] + (T)1;
}
"""

SPECS = tuple(SOURCE.KernelSpec(n, b, None) for n, b in
              (("t_block_sum", _BLOCK_SUM), ("t_divergent", _DIVERGENT), ("t_cover", _COVER)))


def test_shared_memory_tree_reduction_waits_at_each_barrier():
    x = numpy.arange(3 * 21, dtype=numpy.float64).reshape(3, 21)
    out = numpy.zeros(3)
    kernel(SPECS, SPECS[0], numpy.float64)(3, 8, x, out, 21)
    numpy.testing.assert_array_equal(out, x.sum(axis=1))


def test_threads_that_skip_a_barrier_are_reported():
    with pytest.raises(KernelFailure, match="__syncthreads"):
        kernel(SPECS, SPECS[1], numpy.float32)(1, 4, numpy.zeros(4, numpy.float32))


@pytest.mark.parametrize("grid,block", [(1, 1), (1, 64), (3, 5), (40, 4)])
def test_grid_stride_loop_visits_every_element_once(grid, block):
    hits = numpy.zeros(101, numpy.float32)
    kernel(SPECS, SPECS[2], numpy.float32)(grid, block, hits, hits.size)
    numpy.testing.assert_array_equal(hits, 1)


def test_arguments_are_checked_against_the_c_signature():
    run = kernel(SPECS, SPECS[2], numpy.float32)
    with pytest.raises(TypeError, match="float32"):
        run(1, 4, numpy.zeros(4, numpy.float64), 4)
    with pytest.raises(TypeError, match="long long"):
        run(1, 4, numpy.zeros(4, numpy.float32), 4.0)
    with pytest.raises(TypeError, match="expected 2 arguments"):
        run(1, 4, numpy.zeros(4, numpy.float32))
