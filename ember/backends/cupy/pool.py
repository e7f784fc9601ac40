"""CUDA max/average pooling for the CuPy backend (same signatures as ``reference.pool``).

Forwards run one thread per output and scan the window, skipping positions in
the padding (equivalent to the reference's ``-inf`` / zero padding).  Max
pooling keeps the reference's subgradient exactly: strict ``>`` makes the first
maximum in row-major window order win, a NaN wins once and stays (so ``y`` is
NaN and ``argmax`` points at the first NaN), and an all ``-inf`` window reports
offset 0, as ``argmax`` of the reference does.  Backwards are gathers, one
thread per input pixel summing the outputs of the windows that cover it (max:
only those whose argmax is this pixel), so no atomics are needed and the sum
order is fixed.  Average pooling divides by ``KH*KW`` (``count_include_pad``).
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.reference import pool as _ref
from ember.backends.geometry import IntOrPair, check_grad, check_nchw, pool_geometry
from ember.backends.cupy.kernel_spec import CTYPES, WALK_BLOCKS, KernelSpec, emulate_gather, gather_body, launch

_GEOMETRY_ARGS = """long long C, long long H, long long W, long long KH, long long KW,
    long long SH, long long SW, long long PH, long long PW, long long OH, long long OW"""

# The loop of a pooling forward: one thread per output ``i`` scans its window in
# row-major order, skipping the padding; @INIT@ declares the accumulator, @TERM@
# folds in ``v`` (the input value at window offset ``(ky, kx)``), @STORE@ writes.
_WINDOW_SCAN = """
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long ox = i % OW, oy = (i / OW) % OH, p = i / (OW * OH);
    const T* plane = x + p * H * W;
    @INIT@
    for (long long ky = 0; ky < KH; ++ky) {
      long long iy = oy * SH - PH + ky;
      if (iy < 0 || iy >= H) continue;
      for (long long kx = 0; kx < KW; ++kx) {
        long long ix = ox * SW - PW + kx;
        if (ix < 0 || ix >= W) continue;
        ACC v = to_acc(plane[iy * W + ix]);
        @TERM@
      }
    }
    @STORE@
  }
}
"""


def _scan_body(signature: str, init: str, term: str, store: str) -> str:
    """A pooling forward kernel: ``signature`` then ``_WINDOW_SCAN`` with its three statements."""
    loop = _WINDOW_SCAN.replace("@INIT@", init).replace("@TERM@", term).replace("@STORE@", store)
    return (signature + loop).replace("GEOMETRY", _GEOMETRY_ARGS)


_MAX_FWD_BODY = _scan_body(
    """
extern "C" __global__ void ${name}(const T* __restrict__ x, T* __restrict__ y,
    long long* __restrict__ argmax, GEOMETRY, long long total) {""",
    "ACC best = ${NEG_INF};\n    long long best_k = 0;",
    "if (v > best || (is_nan(v) && !is_nan(best))) { best = v; best_k = ky * KW + kx; }",
    "y[i] = from_acc(best);\n    argmax[i] = best_k;",
)


def _window_cells(i, OH, OW, KH, KW, SH, SW, PH, PW, H, W):
    """Per output index ``i``: yields ``(k, iy, ix, inside)`` for each window offset, as the kernels loop."""
    ox, oy = i % OW, (i // OW) % OH
    for ky in range(KH):
        iy = oy * SH - PH + ky
        for kx in range(KW):
            ix = ox * SW - PW + kx
            yield ky * KW + kx, iy, ix, (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)


def _emulate_max_fwd(total, x, y, argmax, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
    """NumPy evaluation of the max-pool forward kernel (same scan order and tie rule)."""
    i = numpy.arange(total, dtype=numpy.int64)
    p = i // (OW * OH)
    acc_dtype = numpy.float64 if x.dtype == numpy.float64 else numpy.float32
    best = numpy.full(total, -numpy.inf, dtype=acc_dtype)
    best_k = numpy.zeros(total, dtype=numpy.int64)
    flat = x.reshape(-1)
    for k, iy, ix, inside in _window_cells(i, OH, OW, KH, KW, SH, SW, PH, PW, H, W):
        v = flat[numpy.where(inside, p * H * W + iy * W + ix, 0)].astype(acc_dtype)
        take = inside & ((v > best) | (numpy.isnan(v) & ~numpy.isnan(best)))
        best = numpy.where(take, v, best)
        best_k = numpy.where(take, k, best_k)
    y.reshape(-1)[:] = best.astype(y.dtype)
    argmax.reshape(-1)[:] = best_k


_MAX_BWD_BODY = gather_body(
    """
extern "C" __global__ void ${name}(const T* __restrict__ gy, const long long* __restrict__ argmax,
    T* __restrict__ gx, GEOMETRY, long long total) {""".replace("GEOMETRY", _GEOMETRY_ARGS),
    "long long o = (p * OH + oy) * OW + ox;\n        if (argmax[o] == ky * KW + kx) acc += to_acc(gy[o]);",
    "gx[i] = from_acc(acc);",
)

_AVG_BWD_BODY = gather_body(
    """
extern "C" __global__ void ${name}(const T* __restrict__ gy, T* __restrict__ gx, GEOMETRY,
    long long total) {""".replace("GEOMETRY", _GEOMETRY_ARGS),
    "long long o = (p * OH + oy) * OW + ox;\n        acc += to_acc(gy[o]);",
    "gx[i] = from_acc(acc / (ACC)(KH * KW));",
)


def _emulate_gather(total, gy, argmax, gx, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
    """NumPy evaluation of the pooling backward gathers (``argmax`` None: average)."""
    g, am = gy.reshape(-1), None if argmax is None else argmax.reshape(-1)

    def term(p, ky, kx, oy, ox, ok):
        o = numpy.where(ok, (p * OH + oy) * OW + ox, 0)
        if am is not None:
            ok = ok & (am[o] == ky * KW + kx)
        return g[o], ok

    acc = emulate_gather(total, gy.dtype, (H, W, KH, KW, SH, SW, PH, PW, OH, OW), term)
    if argmax is None:
        acc = acc / acc.dtype.type(KH * KW)
    gx.reshape(-1)[:] = acc.astype(gx.dtype)


_AVG_FWD_BODY = _scan_body(
    """
extern "C" __global__ void ${name}(const T* __restrict__ x, T* __restrict__ y, GEOMETRY,
    long long total) {""",
    "ACC acc = 0;",
    "acc += v;",
    "y[i] = from_acc(acc / (ACC)(KH * KW));",
)


def _emulate_avg_fwd(total, x, y, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
    """NumPy evaluation of the average-pool forward kernel."""
    i = numpy.arange(total, dtype=numpy.int64)
    p = i // (OW * OH)
    acc_dtype = numpy.float64 if x.dtype == numpy.float64 else numpy.float32
    acc = numpy.zeros(total, dtype=acc_dtype)
    flat = x.reshape(-1)
    for _, iy, ix, inside in _window_cells(i, OH, OW, KH, KW, SH, SW, PH, PW, H, W):
        acc += numpy.where(inside, flat[numpy.where(inside, p * H * W + iy * W + ix, 0)].astype(acc_dtype), 0)
    y.reshape(-1)[:] = (acc / acc_dtype(KH * KW)).astype(y.dtype)


MAX_FWD = KernelSpec("ember_max_pool_fwd", _MAX_FWD_BODY, _emulate_max_fwd)
MAX_BWD = KernelSpec("ember_max_pool_bwd", _MAX_BWD_BODY, _emulate_gather, max_blocks=WALK_BLOCKS)
AVG_FWD = KernelSpec("ember_avg_pool_fwd", _AVG_FWD_BODY, _emulate_avg_fwd)
def _emulate_avg_bwd(total, gy, gx, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
    """NumPy evaluation of the average-pool backward gather."""
    _emulate_gather(total, gy, None, gx, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW)


AVG_BWD = KernelSpec("ember_avg_pool_bwd", _AVG_BWD_BODY, _emulate_avg_bwd, max_blocks=WALK_BLOCKS)
SPECS = [MAX_FWD, MAX_BWD, AVG_FWD, AVG_BWD]


def _geometry(x_shape: tuple, kh: int, kw: int, stride: Any, padding: Any, op: str) -> tuple:
    """``(C, H, W, KH, KW, SH, SW, PH, PW, OH, OW)`` as the kernels take them."""
    sh, sw, ph, pw, oh, ow = pool_geometry(x_shape, kh, kw, stride, padding, op)
    _, c, h, w = (int(s) for s in x_shape)
    return (c, h, w, int(kh), int(kw), sh, sw, ph, pw, oh, ow)


def max_pool2d_forward(
    x: Any, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *, xp: Any = numpy
) -> tuple[Any, Any]:
    """``(y, argmax)`` like ``reference.pool.max_pool2d_forward``; argmax is int64 ``i*KW + j``."""
    if x.dtype not in CTYPES:
        return _ref.max_pool2d_forward(x, kh, kw, stride, padding, xp=xp)
    check_nchw(x, "max_pool2d")
    geo = _geometry(x.shape, kh, kw, stride, padding, "max_pool2d")
    x = xp.ascontiguousarray(x)
    shape = (x.shape[0], x.shape[1], geo[-2], geo[-1])
    y = xp.empty(shape, dtype=x.dtype)
    argmax = xp.empty(shape, dtype=xp.int64)
    launch(MAX_FWD, x.dtype, y.size, (x, y, argmax) + geo)
    return y, argmax


def max_pool2d_backward(
    gy: Any, argmax: Any, x_shape: tuple, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *,
    xp: Any = numpy,
) -> Any:
    """Gather each pixel's gradient from the windows whose argmax it is."""
    if gy.dtype not in CTYPES:
        return _ref.max_pool2d_backward(gy, argmax, x_shape, kh, kw, stride, padding, xp=xp)
    x_shape = tuple(int(s) for s in x_shape)
    geo = _geometry(x_shape, kh, kw, stride, padding, "max_pool2d_backward")
    expected = (x_shape[0], x_shape[1], geo[-2], geo[-1])
    check_grad(gy, expected, "max_pool2d_backward")
    check_grad(argmax, expected, "max_pool2d_backward", "argmax")
    gy = xp.ascontiguousarray(gy)
    argmax = xp.ascontiguousarray(argmax, dtype=xp.int64)
    gx = xp.empty(x_shape, dtype=gy.dtype)
    launch(MAX_BWD, gy.dtype, gx.size, (gy, argmax, gx) + geo)
    return gx


def avg_pool2d_forward(
    x: Any, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *, xp: Any = numpy
) -> Any:
    """Window means, zero padding counted (float16 sums in float)."""
    if x.dtype not in CTYPES:
        return _ref.avg_pool2d_forward(x, kh, kw, stride, padding, xp=xp)
    check_nchw(x, "avg_pool2d")
    geo = _geometry(x.shape, kh, kw, stride, padding, "avg_pool2d")
    x = xp.ascontiguousarray(x)
    y = xp.empty((x.shape[0], x.shape[1], geo[-2], geo[-1]), dtype=x.dtype)
    launch(AVG_FWD, x.dtype, y.size, (x, y) + geo)
    return y


def avg_pool2d_backward(
    gy: Any, x_shape: tuple, kh: int, kw: int, stride: IntOrPair, padding: IntOrPair = 0, *, xp: Any = numpy
) -> Any:
    """Gather ``gy / (KH*KW)`` from every window covering each pixel."""
    if gy.dtype not in CTYPES:
        return _ref.avg_pool2d_backward(gy, x_shape, kh, kw, stride, padding, xp=xp)
    x_shape = tuple(int(s) for s in x_shape)
    geo = _geometry(x_shape, kh, kw, stride, padding, "avg_pool2d_backward")
    check_grad(gy, (x_shape[0], x_shape[1], geo[-2], geo[-1]), "avg_pool2d_backward")
    gy = xp.ascontiguousarray(gy)
    gx = xp.empty(x_shape, dtype=gy.dtype)
    launch(AVG_BWD, gy.dtype, gx.size, (gy, gx) + geo)
    return gx
