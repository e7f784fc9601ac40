"""conv2d on CUDA as im2col + ONE 2-D GEMM per direction (the row-major column layout).

The column buffer is ``(N*OH*OW, C*KH*KW)``: row ``(n, oy, ox)`` holds one window, so
forward is ``y2 = col @ W2.T`` and backward ``gcol = gy2 @ W2``, ``gW = gy2.T @ col``
with ``W2 = W.reshape(OC, -1)`` -- plain 2-D products that cuBLAS runs as one GEMM
each (transposed operands are free there), where a batched ``matmul`` with a
broadcast weight runs ``sgemmBatched``.  Around the GEMMs: ``im2col_rows`` (one
thread per column element), an epilogue that adds the bias while writing the
NHWC-ordered ``y2`` out as NCHW, ``gy_rows`` (gy NCHW -> ``(N*OH*OW, OC)``), and
``col2im_rows``, the deterministic gather of ``col2im`` reading the row layout.
Large batches run in chunks whose column buffer fits the budget.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.device_gemm import matmul as gemm  # capturable: ember's own cuBLAS in a CUDA graph
from ember.backends.cupy.kernel_spec import KernelSpec, emulate_gather, emulate_window_read, gather_body, launch
from ember.backends.geometry import window_geometry
from ember.backends.reference.conv import im2col_batch_chunks

COL_BUDGET_BYTES = 256 << 20

_IM2COL_ROWS_BODY = """
extern "C" __global__ void ${name}(const T* __restrict__ x, T* __restrict__ col,
    long long C, long long H, long long W, long long KH, long long KW,
    long long SH, long long SW, long long PH, long long PW, long long OH, long long OW,
    long long total) {
  long long K = C * KH * KW;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long r = i / K, k = i % K;
    long long ox = r % OW, oy = (r / OW) % OH, n = r / (OW * OH);
    long long kx = k % KW, ky = (k / KW) % KH, c = k / (KW * KH);
    long long iy = oy * SH - PH + ky, ix = ox * SW - PW + kx;
    col[i] = (iy >= 0 && iy < H && ix >= 0 && ix < W)
        ? x[((n * C + c) * H + iy) * W + ix] : from_acc((ACC)0);
  }
}
"""


def _emulate_im2col_rows(total, x, col, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
    """NumPy evaluation of the row-layout im2col kernel, one vector lane per thread index ``i``."""
    i = numpy.arange(total, dtype=numpy.int64)
    K = C * KH * KW
    r, k = i // K, i % K
    ox, oy, n = r % OW, (r // OW) % OH, r // (OW * OH)
    kx, ky, c = k % KW, (k // KW) % KH, k // (KW * KH)
    emulate_window_read(x, col, (n, c, ky, kx, oy, ox), (C, H, W, SH, SW, PH, PW), 0)


_COL2IM_ROWS_BODY = gather_body(
    """
extern "C" __global__ void ${name}(const T* __restrict__ col, T* __restrict__ img,
    long long C, long long H, long long W, long long KH, long long KW,
    long long SH, long long SW, long long PH, long long PW, long long OH, long long OW,
    long long total) {""",
    "acc += to_acc(col[(((p / C) * OH + oy) * OW + ox) * (C * KH * KW) + ((p % C) * KH + ky) * KW + kx]);",
    "img[i] = from_acc(acc);",
)


def _emulate_col2im_rows(total, col, img, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW):
    """NumPy evaluation of the row-layout col2im gather kernel (vectorised over ``i``)."""
    flat = col.reshape(-1)

    def term(p, ky, kx, oy, ox, ok):
        idx = (((p // C) * OH + oy) * OW + ox) * (C * KH * KW) + ((p % C) * KH + ky) * KW + kx
        return flat[numpy.where(ok, idx, 0)], ok

    acc = emulate_gather(total, col.dtype, (H, W, KH, KW, SH, SW, PH, PW, OH, OW), term)
    img.reshape(-1)[:] = acc.astype(img.dtype)


_BIAS_NCHW_BODY = """
extern "C" __global__ void ${name}(const T* __restrict__ y2, const T* __restrict__ b, T* __restrict__ y,
    long long OC, long long S, long long has_bias, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long s = i % S, o = (i / S) % OC, n = i / (S * OC);
    ACC v = to_acc(y2[(n * S + s) * OC + o]);
    if (has_bias) v += to_acc(b[o]);
    y[i] = from_acc(v);
  }
}
"""


def _emulate_bias_nchw(total, y2, b, y, OC, S, has_bias):
    """NumPy evaluation of the epilogue: ``y[n, o, s] = y2[n*S + s, o] + b[o]``, summed in ACC."""
    i = numpy.arange(total, dtype=numpy.int64)
    s, o, n = i % S, (i // S) % OC, i // (S * OC)
    acc = numpy.float64 if y.dtype == numpy.float64 else numpy.float32
    v = y2.reshape(-1)[(n * S + s) * OC + o].astype(acc)
    if has_bias:
        v = v + b.reshape(-1)[o].astype(acc)
    y.reshape(-1)[:] = v.astype(y.dtype)


_GY_ROWS_BODY = """
extern "C" __global__ void ${name}(const T* __restrict__ gy, T* __restrict__ gy2,
    long long OC, long long S, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long o = i % OC, r = i / OC, s = r % S, n = r / S;
    gy2[i] = gy[(n * OC + o) * S + s];
  }
}
"""


def _emulate_gy_rows(total, gy, gy2, OC, S):
    """NumPy evaluation of the gy transpose: ``gy2[n*S + s, o] = gy[n, o, s]``."""
    i = numpy.arange(total, dtype=numpy.int64)
    o, r = i % OC, i // OC
    s, n = r % S, r // S
    gy2.reshape(-1)[:] = gy.reshape(-1)[(n * OC + o) * S + s]


IM2COL_ROWS = KernelSpec("ember_im2col_rows", _IM2COL_ROWS_BODY, _emulate_im2col_rows)
COL2IM_ROWS = KernelSpec("ember_col2im_rows", _COL2IM_ROWS_BODY, _emulate_col2im_rows)
BIAS_NCHW = KernelSpec("ember_conv_bias_nchw", _BIAS_NCHW_BODY, _emulate_bias_nchw)
GY_ROWS = KernelSpec("ember_conv_gy_rows", _GY_ROWS_BODY, _emulate_gy_rows)
SPECS = [IM2COL_ROWS, COL2IM_ROWS, BIAS_NCHW, GY_ROWS]


def _geometry(x_shape: tuple, kh: int, kw: int, stride: Any, padding: Any) -> tuple:
    n, c, h, w = (int(v) for v in x_shape)
    sh, sw, ph, pw, oh, ow = window_geometry(x_shape, kh, kw, stride, padding, "conv2d")
    return (c, h, w, int(kh), int(kw), sh, sw, ph, pw, oh, ow), n


def im2col_rows(x: Any, kh: int, kw: int, stride: Any = 1, padding: Any = 0, *, xp: Any = numpy) -> Any:
    """``col[(n*OH + oy)*OW + ox, (c*KH + i)*KW + j] = x_pad[n, c, oy*sh + i, ox*sw + j]``: ``(N*OH*OW, C*KH*KW)``."""
    g, n = _geometry(x.shape, kh, kw, stride, padding)
    c, _, _, kh, kw, _, _, _, _, oh, ow = g
    x = xp.ascontiguousarray(x)
    col = xp.empty((n * oh * ow, c * kh * kw), dtype=x.dtype)
    launch(IM2COL_ROWS, x.dtype, col.size, (x, col, *g))
    return col


def col2im_rows(col: Any, x_shape: tuple, kh: int, kw: int, stride: Any = 1, padding: Any = 0, *,
                xp: Any = numpy, out: Any = None) -> Any:
    """Fold ``(N*OH*OW, C*KH*KW)`` columns into ``(N, C, H, W)``, summing overlaps; into C-contiguous ``out``."""
    g, _ = _geometry(x_shape, kh, kw, stride, padding)
    img = out if out is not None else xp.empty(tuple(int(v) for v in x_shape), dtype=col.dtype)
    launch(COL2IM_ROWS, col.dtype, img.size, (xp.ascontiguousarray(col), img, *g))
    return img


def _chunks(x_shape: tuple, kh: int, kw: int, itemsize: int, stride: Any, padding: Any) -> list:
    return im2col_batch_chunks(tuple(x_shape), kh, kw, itemsize, COL_BUDGET_BYTES, stride=stride, padding=padding)


def conv2d_forward(x: Any, W: Any, b: Any, stride: Any, padding: Any, *, xp: Any) -> Any:
    """``y = conv2d(x, W, b)`` as ``col @ W2.T`` (one 2-D GEMM per chunk) and one bias/NCHW epilogue."""
    oc, _, kh, kw = (int(v) for v in W.shape)
    (c, _, _, _, _, _, _, _, _, oh, ow), n = _geometry(x.shape, kh, kw, stride, padding)
    W2 = xp.ascontiguousarray(W).reshape(oc, c * kh * kw)
    y = xp.empty((n, oc, oh, ow), dtype=x.dtype)
    bias = xp.ascontiguousarray(b) if b is not None else W2  # W2: an unread placeholder pointer
    for s in _chunks(x.shape, kh, kw, x.dtype.itemsize, stride, padding):
        col = im2col_rows(x[s], kh, kw, stride, padding, xp=xp)
        y2 = gemm(col, W2.T)
        ys = y[s]
        launch(BIAS_NCHW, x.dtype, ys.size, (y2, bias, ys, oc, oh * ow, int(b is not None)))
    return y


def conv2d_backward(x: Any, W: Any, gy: Any, stride: Any, padding: Any, needs: tuple, *, xp: Any) -> tuple:
    """``(gx, gW, gb)`` of conv2d (None where ``needs`` is false): ``gcol = gy2 @ W2``, ``gW = gy2.T @ col``.

    ``gy2`` is ``gy`` transposed to ``(N*OH*OW, OC)`` by one kernel; ``gb`` is its column sum.
    """
    oc, _, kh, kw = (int(v) for v in W.shape)
    (c, _, _, _, _, _, _, _, _, oh, ow), n = _geometry(x.shape, kh, kw, stride, padding)
    need_x, need_W = needs[0], needs[1]
    need_b = len(needs) > 2 and needs[2]
    W2 = xp.ascontiguousarray(W).reshape(oc, c * kh * kw)
    gy = xp.ascontiguousarray(gy)
    gx = xp.empty(tuple(x.shape), dtype=gy.dtype) if need_x else None
    gW = gb = None
    acc = numpy.float32 if gy.dtype == numpy.float16 else gy.dtype
    for s in _chunks(x.shape, kh, kw, x.dtype.itemsize, stride, padding):
        gys = gy[s]
        gy2 = xp.empty((gys.shape[0] * oh * ow, oc), dtype=gy.dtype)
        launch(GY_ROWS, gy.dtype, gy2.size, (gys, gy2, oc, oh * ow))
        if need_b:
            part = gy2.sum(axis=0, dtype=acc).astype(gy.dtype, copy=False)  # float16 sums in float32
            gb = part if gb is None else gb + part
        if need_W:
            part = gemm(gy2.T, im2col_rows(x[s], kh, kw, stride, padding, xp=xp))
            gW = part if gW is None else gW + part
        if need_x:
            col2im_rows(gemm(gy2, W2), gx[s].shape, kh, kw, stride, padding, xp=xp, out=gx[s])
    return gx, (gW.reshape(W.shape) if gW is not None else None), gb
