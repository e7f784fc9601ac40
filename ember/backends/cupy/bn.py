"""CUDA batch norm for the CuPy backend (signatures of ``reference.nn.batch_norm_*``).

Per-channel statistics use one block per channel and a shared-memory tree
reduction: deterministic (no atomics), two passes over the channel (mean, then
the sum of squared deviations, which is the numerically safe variance).  The
elementwise parts (normalise + affine; the input gradient) are one launch
each, so training batch norm costs two launches forward and two backward
instead of about ten CuPy calls.  One block per channel leaves a big GPU
underused when C is small; it still saves the launches, which dominate at the
book's sizes.  float16 data is read as float and statistics/gradients come
back in float32, as the reference documents.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.reference import nn as _ref
from ember.backends.cupy.kernel_spec import BLOCK, CTYPES, KernelSpec, launch, launch_blocks
from ember.backends.reference.nn import compute_dtype

_TREE = """
  buf[threadIdx.x] = s;
  __syncthreads();
  for (int k = BLOCK_SIZE / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) buf[threadIdx.x] += buf[threadIdx.x + k];
    __syncthreads();
  }
"""

_ELEM = "((j / inner) * C + c) * inner + j % inner"

_STATS_BODY = (
    """
extern "C" __global__ void ${name}(const T* __restrict__ x, ACC* __restrict__ mean, ACC* __restrict__ var,
    ACC* __restrict__ inv_std, long long C, long long inner, long long m, double eps) {
  __shared__ ACC buf[BLOCK_SIZE];
  long long c = blockIdx.x;
  ACC s = 0;
  for (long long j = threadIdx.x; j < m; j += blockDim.x) s += to_acc(x[ELEM]);
  TREE
  ACC mu = buf[0] / (ACC)m;
  __syncthreads();
  s = 0;
  for (long long j = threadIdx.x; j < m; j += blockDim.x) { ACC d = to_acc(x[ELEM]) - mu; s += d * d; }
  TREE
  if (threadIdx.x == 0) {
    ACC v = buf[0] / (ACC)m;
    mean[c] = mu; var[c] = v; inv_std[c] = (ACC)1 / acc_sqrt(v + (ACC)eps);
  }
}
""".replace("TREE", _TREE).replace("ELEM", _ELEM).replace("BLOCK_SIZE", str(BLOCK))
)

_SUMS_BODY = (
    """
extern "C" __global__ void ${name}(const T* __restrict__ x, const T* __restrict__ gy,
    const ACC* __restrict__ mean, const ACC* __restrict__ inv_std, ACC* __restrict__ gb,
    ACC* __restrict__ gw, long long C, long long inner, long long m) {
  __shared__ ACC buf[BLOCK_SIZE];
  long long c = blockIdx.x;
  ACC s = 0;
  for (long long j = threadIdx.x; j < m; j += blockDim.x) s += to_acc(gy[ELEM]);
  TREE
  if (threadIdx.x == 0) gb[c] = buf[0];
  __syncthreads();
  s = 0;
  for (long long j = threadIdx.x; j < m; j += blockDim.x) {
    long long e = ELEM;
    s += to_acc(gy[e]) * (to_acc(x[e]) - mean[c]) * inv_std[c];
  }
  TREE
  if (threadIdx.x == 0) gw[c] = buf[0];
}
""".replace("TREE", _TREE).replace("ELEM", _ELEM).replace("BLOCK_SIZE", str(BLOCK))
)

_APPLY_BODY = """
extern "C" __global__ void ${name}(const T* __restrict__ x, const ACC* __restrict__ mean,
    const ACC* __restrict__ inv_std, const ACC* __restrict__ w, const ACC* __restrict__ b,
    T* __restrict__ y, long long C, long long inner, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long c = (i / inner) % C;
    y[i] = from_acc((to_acc(x[i]) - mean[c]) * inv_std[c] * w[c] + b[c]);
  }
}
"""

_GX_BODY = """
extern "C" __global__ void ${name}(const T* __restrict__ x, const T* __restrict__ gy,
    const ACC* __restrict__ mean, const ACC* __restrict__ inv_std, const ACC* __restrict__ w,
    const ACC* __restrict__ gb, const ACC* __restrict__ gw, ACC* __restrict__ gx,
    long long C, long long inner, long long m, long long training, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long c = (i / inner) % C;
    ACC gxhat = to_acc(gy[i]) * w[c];
    if (training) {
      ACC xhat = (to_acc(x[i]) - mean[c]) * inv_std[c];
      gxhat = gxhat - w[c] * gb[c] / (ACC)m - xhat * w[c] * gw[c] / (ACC)m;
    }
    gx[i] = gxhat * inv_std[c];
  }
}
"""


def _channel_view(a: Any, blocks: int, C: int, inner: int, m: int) -> Any:
    """``(C, m)`` gather of a flat NCHW array by the kernels' element formula (emulation helper)."""
    j = numpy.arange(m, dtype=numpy.int64)
    c = numpy.arange(blocks, dtype=numpy.int64)[:, None]
    return a.reshape(-1)[((j // inner) * C + c) * inner + j % inner]


def _emulate_stats(blocks, x, mean, var, inv_std, C, inner, m, eps):
    """NumPy evaluation of the per-channel statistics kernel (a row per block)."""
    v = _channel_view(x, blocks, C, inner, m).astype(mean.dtype)
    mu = v.sum(axis=1) / mean.dtype.type(m)
    d = v - mu[:, None]
    s2 = (d * d).sum(axis=1) / mean.dtype.type(m)
    mean[:], var[:] = mu, s2
    inv_std[:] = 1 / numpy.sqrt(s2 + mean.dtype.type(eps))


def _emulate_sums(blocks, x, gy, mean, inv_std, gb, gw, C, inner, m):
    """NumPy evaluation of the backward per-channel sums kernel."""
    g = _channel_view(gy, blocks, C, inner, m).astype(gb.dtype)
    xv = _channel_view(x, blocks, C, inner, m).astype(gb.dtype)
    gb[:] = g.sum(axis=1)
    gw[:] = (g * (xv - mean[:, None]) * inv_std[:, None]).sum(axis=1)


def _emulate_apply(total, x, mean, inv_std, w, b, y, C, inner):
    """NumPy evaluation of the normalise-and-affine kernel."""
    c = (numpy.arange(total, dtype=numpy.int64) // inner) % C
    xv = x.reshape(-1).astype(mean.dtype)
    y.reshape(-1)[:] = ((xv - mean[c]) * inv_std[c] * w[c] + b[c]).astype(y.dtype)


def _emulate_gx(total, x, gy, mean, inv_std, w, gb, gw, gx, C, inner, m, training):
    """NumPy evaluation of the input-gradient kernel."""
    c = (numpy.arange(total, dtype=numpy.int64) // inner) % C
    gxhat = gy.reshape(-1).astype(gx.dtype) * w[c]
    if training:
        xhat = (x.reshape(-1).astype(gx.dtype) - mean[c]) * inv_std[c]
        gxhat = gxhat - w[c] * gb[c] / gx.dtype.type(m) - xhat * w[c] * gw[c] / gx.dtype.type(m)
    gx.reshape(-1)[:] = gxhat * inv_std[c]


STATS = KernelSpec("ember_bn_stats", _STATS_BODY, _emulate_stats)
SUMS = KernelSpec("ember_bn_grad_sums", _SUMS_BODY, _emulate_sums)
APPLY = KernelSpec("ember_bn_apply", _APPLY_BODY, _emulate_apply)
GX = KernelSpec("ember_bn_grad_x", _GX_BODY, _emulate_gx)
SPECS = [STATS, SUMS, APPLY, GX]


def _layout(x: Any) -> tuple[int, int, int]:
    """``(C, inner, m)``: channels, elements per (sample, channel), values per channel."""
    C = int(x.shape[1])
    inner = int(numpy.prod(x.shape[2:], dtype=numpy.int64)) if x.ndim > 2 else 1
    return C, inner, int(x.shape[0]) * inner


def _affine(value: Any, fill: float, C: int, acc: Any, xp: Any) -> Any:
    if value is None:
        return xp.full((C,), fill, dtype=acc)
    return xp.ascontiguousarray(value.reshape(C), dtype=acc)


def batch_norm_forward_train(x: Any, weight: Any, bias: Any, eps: float, *, xp: Any = numpy) -> tuple:
    """``(y, mean, var, inv_std)`` as ``reference.nn.batch_norm_forward_train``, in two launches."""
    if x.dtype not in CTYPES or x.ndim < 2 or x.size == 0:
        return _ref.batch_norm_forward_train(x, weight, bias, eps, xp=xp)
    C, inner, m = _layout(x)
    acc = compute_dtype(x.dtype)
    x = xp.ascontiguousarray(x)
    mean, var, inv_std = (xp.empty((C,), dtype=acc) for _ in range(3))
    launch_blocks(STATS, x.dtype, C, (x, mean, var, inv_std, C, inner, m, float(eps)))
    y = xp.empty(x.shape, dtype=x.dtype)
    w, b = _affine(weight, 1.0, C, acc, xp), _affine(bias, 0.0, C, acc, xp)
    launch(APPLY, x.dtype, y.size, (x, mean, inv_std, w, b, y, C, inner))
    return y, mean, var, inv_std


def batch_norm_backward(
    x: Any, gy: Any, mean: Any, inv_std: Any, weight: Any, training: bool,
    need_x: bool = True, need_w: bool = True, need_b: bool = True, *, xp: Any = numpy,
) -> tuple:
    """``(gx, gw, gb)`` as ``reference.nn.batch_norm_backward``, in two launches."""
    if x.dtype not in CTYPES or gy.dtype != x.dtype or tuple(gy.shape) != tuple(x.shape) or x.ndim < 2:
        return _ref.batch_norm_backward(x, gy, mean, inv_std, weight, training, need_x, need_w, need_b, xp=xp)
    C, inner, m = _layout(x)
    acc = compute_dtype(x.dtype)
    x, gy = xp.ascontiguousarray(x), xp.ascontiguousarray(gy)
    mean = xp.ascontiguousarray(mean.reshape(C), dtype=acc)
    inv_std = xp.ascontiguousarray(inv_std.reshape(C), dtype=acc)
    gb, gw = xp.empty((C,), dtype=acc), xp.empty((C,), dtype=acc)
    launch_blocks(SUMS, x.dtype, C, (x, gy, mean, inv_std, gb, gw, C, inner, m))
    gx = None
    if need_x:
        gx = xp.empty(x.shape, dtype=acc)
        w = _affine(weight, 1.0, C, acc, xp)
        launch(GX, x.dtype, gx.size, (x, gy, mean, inv_std, w, gb, gw, gx, C, inner, m, int(bool(training))))
    return gx, (gw if need_w else None), (gb if need_b else None)
