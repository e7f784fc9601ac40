"""conv2d on CUDA as im2col + ONE 2-D GEMM per direction (the row-major column layout).

The column buffer is ``(N*OH*OW, C*KH*KW)``: row ``(n, oy, ox)`` holds one window, so
forward is ``y2 = col @ W2.T`` and backward ``gcol = gy2 @ W2``, ``gW = gy2.T @ col``
with ``W2 = W.reshape(OC, -1)`` -- plain 2-D products that cuBLAS runs as one GEMM
each (transposed operands are free there), where a batched ``matmul`` with a
broadcast weight runs ``sgemmBatched``.  Around the GEMMs: ``im2col_rows`` (a
grid-stride walk that advances its indices by carries, not divisions; 32-bit ints
when they fit), a fused epilogue that adds the bias, applies an optional ReLU and
writes the NHWC-ordered ``y2`` out as NCHW in one pass, ``gy_rows`` (gy NCHW ->
``(N*OH*OW, OC)``, masked by the ReLU output when the forward fused one), and
``col2im_rows``, the deterministic gather of ``col2im`` reading the row layout.

When the bias gradient is needed the gy transpose runs as ``gy_rows_bias``: blocks of
one channel each walk a segment of the rows, reading ``gy`` along contiguous addresses,
writing the masked transpose and summing what they wrote in a shared-memory tree.  The
per-block partial sums (a small ``(OC, parts)`` array in the accumulator type) are then
added by one short reduction.  No atomics: float atomics would make ``gb`` depend on
the order blocks finish, and float16 would need float32 accumulation anyway.
Large batches run in chunks whose column buffer fits the budget.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.cupy.kernel_spec import (
    BLOCK, MAX_BLOCKS, WALK_BLOCKS, KernelSpec, emulate_gather, emulate_window_read, gather_body, launch,
    launch_blocks,
)
from ember.backends.device_gemm import matmul as gemm  # capturable: ember's own cuBLAS in a CUDA graph
from ember.backends.geometry import window_geometry
from ember.backends.reference.conv import im2col_batch_chunks

COL_BUDGET_BYTES = 256 << 20
# im2col indexes in 32-bit ints below this many elements (its per-thread divisions and index products are
# cheaper so); the margin keeps the grid-stride loop's last step from overflowing.
INT32_INDEX_LIMIT = 2**31 - 1 - MAX_BLOCKS * BLOCK
# conv2d_forward takes ``relu=`` and conv2d_backward ``y=``: ops look for this flag before
# passing them, since other backends' conv2d_forward/backward may not have the keywords.
FUSES_RELU = True
# Blocks the bias-gradient transpose aims for in all (enough to fill a large GPU); each
# channel gets ``parts`` of them, at most one per BLOCK rows.
GY_BIAS_TARGET_BLOCKS = 1024

_IM2COL_ROWS_BODY = """
// Thread t writes col[i] for i = t, t + step, ... (step: the whole grid), i = r*K + k with the row
// r = (n*OH + oy)*OW + ox and the column k = (c*KH + ky)*KW + kx.  The six digits of i are found by
// division once per thread; the loop then adds the step's own digits with carries, so an element
// costs adds and compares instead of the five divisions that made this kernel integer-bound.
template <typename I>
__device__ __forceinline__ void im2col_rows_at(const T* __restrict__ x, T* __restrict__ col, I C, I H, I W,
    I KH, I KW, I SH, I SW, I PH, I PW, I OH, I OW, I total) {
  const I K = C * KH * KW, step = (I)gridDim.x * (I)blockDim.x;
  I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
  if (i >= total) return;
  const I step_r = step / K, step_k = step - step_r * K;
  const I d_kx = step_k % KW, d_ky = (step_k / KW) % KH, d_c = step_k / (KW * KH);
  const I d_ox = step_r % OW, d_oy = (step_r / OW) % OH, d_n = step_r / (OW * OH);
  const I r = i / K, k = i - r * K;
  I kx = k % KW, ky = (k / KW) % KH, c = k / (KW * KH);
  I ox = r % OW, oy = (r / OW) % OH, n = r / (OW * OH);
  for (; i < total; i += step) {
    const I iy = oy * SH - PH + ky, ix = ox * SW - PW + kx;
    col[i] = (iy >= 0 && iy < H && ix >= 0 && ix < W)
        ? x[((n * C + c) * H + iy) * W + ix] : from_acc((ACC)0);
    // each digit plus its step digit plus a carry stays under twice its base: one wrap at most
    kx += d_kx;         I carry = kx >= KW; if (carry) kx -= KW;
    ky += d_ky + carry; carry = ky >= KH;   if (carry) ky -= KH;
    c += d_c + carry;   carry = c >= C;     if (carry) c -= C;
    ox += d_ox + carry; carry = ox >= OW;   if (carry) ox -= OW;
    oy += d_oy + carry; carry = oy >= OH;   if (carry) oy -= OH;
    n += d_n + carry;
  }
}

extern "C" __global__ void ${name}(const T* __restrict__ x, T* __restrict__ col,
    long long C, long long H, long long W, long long KH, long long KW,
    long long SH, long long SW, long long PH, long long PW, long long OH, long long OW,
    long long wide, long long total) {
  if (wide)
    im2col_rows_at<long long>(x, col, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, total);
  else
    im2col_rows_at<int>(x, col, (int)C, (int)H, (int)W, (int)KH, (int)KW, (int)SH, (int)SW, (int)PH, (int)PW,
                        (int)OH, (int)OW, (int)total);
}
"""


def _emulate_im2col_rows(total, x, col, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, wide):
    """NumPy evaluation of the row-layout im2col kernel, one vector lane per thread index ``i`` (any width)."""
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
    "acc += to_acc(col[(((p / (int)C) * OH + oy) * OW + ox) * (C * KH * KW) + ((p % (int)C) * KH + ky) * KW + kx]);",
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
    long long OC, long long S, long long has_bias, long long relu, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long s = i % S, o = (i / S) % OC, n = i / (S * OC);
    ACC v = to_acc(y2[(n * S + s) * OC + o]);
    if (has_bias) v += to_acc(b[o]);
    if (relu && v < (ACC)0) v = (ACC)0;  // NaN stays NaN, as max(x, 0) in PyTorch
    y[i] = from_acc(v);
  }
}
"""


def _acc_dtype(dtype: Any) -> Any:
    """The kernels' accumulator type: double for float64, float for float16/float32."""
    return numpy.float64 if dtype == numpy.float64 else numpy.float32


def _emulate_bias_nchw(total, y2, b, y, OC, S, has_bias, relu):
    """NumPy evaluation of the epilogue: ``y[n, o, s] = max(y2[n*S + s, o] + b[o], 0)`` in ACC (max if ``relu``)."""
    i = numpy.arange(total, dtype=numpy.int64)
    s, o, n = i % S, (i // S) % OC, i // (S * OC)
    v = y2.reshape(-1)[(n * S + s) * OC + o].astype(_acc_dtype(y.dtype))
    if has_bias:
        v = v + b.reshape(-1)[o].astype(v.dtype)
    if relu:
        v = numpy.where(v < 0, v.dtype.type(0), v)
    y.reshape(-1)[:] = v.astype(y.dtype)


_GY_ROWS_BODY = """
extern "C" __global__ void ${name}(const T* __restrict__ gy, const T* __restrict__ y, T* __restrict__ gy2,
    long long OC, long long S, long long relu, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long o = i % OC, r = i / OC, s = r % S, n = r / S;
    long long src = (n * OC + o) * S + s;
    // ReLU mask from the forward output: subgradient 0 at 0, and 0 where y is NaN
    gy2[i] = (relu && !(to_acc(y[src]) > (ACC)0)) ? from_acc((ACC)0) : gy[src];
  }
}
"""


def _emulate_gy_rows(total, gy, y, gy2, OC, S, relu):
    """NumPy evaluation of the gy transpose: ``gy2[n*S + s, o] = gy[n, o, s]`` (0 where ``relu`` and not y > 0)."""
    i = numpy.arange(total, dtype=numpy.int64)
    o, r = i % OC, i // OC
    s, n = r % S, r // S
    src = (n * OC + o) * S + s
    g = gy.reshape(-1)[src]
    if relu:
        g = numpy.where(y.reshape(-1)[src] > 0, g, g.dtype.type(0))
    gy2.reshape(-1)[:] = g


_GY_ROWS_BIAS_BODY = (
    """
extern "C" __global__ void ${name}(const T* __restrict__ gy, const T* __restrict__ y, T* __restrict__ gy2,
    ACC* __restrict__ partial, long long OC, long long S, long long rows, long long parts, long long relu) {
  __shared__ ACC buf[BLOCK_SIZE];
  long long o = blockIdx.x / parts, part = blockIdx.x % parts;
  long long per = (rows + parts - 1) / parts;
  long long start = part * per, stop = start + per < rows ? start + per : rows;
  ACC s = 0;
  for (long long r = start + threadIdx.x; r < stop; r += blockDim.x) {
    long long src = ((r / S) * OC + o) * S + r % S;
    T g = (relu && !(to_acc(y[src]) > (ACC)0)) ? from_acc((ACC)0) : gy[src];
    gy2[r * OC + o] = g;
    s += to_acc(g);
  }
  buf[threadIdx.x] = s;
  __syncthreads();
  for (int k = BLOCK_SIZE / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) buf[threadIdx.x] += buf[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = buf[0];
}
""".replace("BLOCK_SIZE", str(BLOCK))
)


def _emulate_gy_rows_bias(blocks, gy, y, gy2, partial, OC, S, rows, parts, relu):
    """NumPy evaluation of the transpose-and-sum kernel: ``gy2`` as ``gy_rows``, ``partial[o*parts + q]``
    the ACC sum of channel ``o`` over the rows of segment ``q``."""
    _emulate_gy_rows(gy2.size, gy, y, gy2, OC, S, relu)
    per = -(-rows // parts)
    cols = numpy.zeros((parts * per, OC), dtype=partial.dtype)
    cols[:rows] = gy2.reshape(rows, OC)
    partial.reshape(-1)[:] = cols.reshape(parts, per, OC).sum(axis=1).T.reshape(-1)


IM2COL_ROWS = KernelSpec("ember_im2col_rows", _IM2COL_ROWS_BODY, _emulate_im2col_rows, max_blocks=WALK_BLOCKS)
COL2IM_ROWS = KernelSpec("ember_col2im_rows", _COL2IM_ROWS_BODY, _emulate_col2im_rows, max_blocks=WALK_BLOCKS)
BIAS_NCHW = KernelSpec("ember_conv_bias_nchw", _BIAS_NCHW_BODY, _emulate_bias_nchw)
GY_ROWS = KernelSpec("ember_conv_gy_rows", _GY_ROWS_BODY, _emulate_gy_rows)
GY_ROWS_BIAS = KernelSpec("ember_conv_gy_rows_bias", _GY_ROWS_BIAS_BODY, _emulate_gy_rows_bias)
SPECS = [IM2COL_ROWS, COL2IM_ROWS, BIAS_NCHW, GY_ROWS, GY_ROWS_BIAS]


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
    wide = int(max(col.size, x.size) > INT32_INDEX_LIMIT)
    launch(IM2COL_ROWS, x.dtype, col.size, (x, col, *g, wide))
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


def conv2d_forward(x: Any, W: Any, b: Any, stride: Any, padding: Any, *, xp: Any, relu: bool = False) -> Any:
    """``y = conv2d(x, W, b)`` (``max(., 0)`` of it if ``relu``): ``col @ W2.T`` per chunk and one fused epilogue."""
    oc, _, kh, kw = (int(v) for v in W.shape)
    (c, _, _, _, _, _, _, _, _, oh, ow), n = _geometry(x.shape, kh, kw, stride, padding)
    W2 = xp.ascontiguousarray(W).reshape(oc, c * kh * kw)
    y = xp.empty((n, oc, oh, ow), dtype=x.dtype)
    bias = xp.ascontiguousarray(b) if b is not None else W2  # W2: an unread placeholder pointer
    for s in _chunks(x.shape, kh, kw, x.dtype.itemsize, stride, padding):
        col = im2col_rows(x[s], kh, kw, stride, padding, xp=xp)
        y2 = gemm(col, W2.T)
        ys = y[s]
        launch(BIAS_NCHW, x.dtype, ys.size, (y2, bias, ys, oc, oh * ow, int(b is not None), int(bool(relu))))
    return y


def gy_rows(gy: Any, y: Any, want_bias: bool, *, xp: Any) -> tuple:
    """``(gy2, gb)``: ``gy`` (N, OC, OH, OW) as ``(N*OH*OW, OC)`` rows, zero where ``y`` (if given) is not > 0.

    ``gb`` is the column sum of ``gy2`` in the accumulator type, from the same pass
    (``gy_rows_bias``), when ``want_bias``; else None.
    """
    n, oc = int(gy.shape[0]), int(gy.shape[1])
    s = int(gy.shape[2]) * int(gy.shape[3])
    gy = xp.ascontiguousarray(gy)
    relu = y is not None
    mask = xp.ascontiguousarray(y) if relu else gy  # gy: an unread placeholder pointer
    gy2 = xp.empty((n * s, oc), dtype=gy.dtype)
    if not want_bias:
        launch(GY_ROWS, gy.dtype, gy2.size, (gy, mask, gy2, oc, s, int(relu)))
        return gy2, None
    rows = n * s
    parts = max(1, min(-(-rows // BLOCK), -(-GY_BIAS_TARGET_BLOCKS // oc)))
    partial = xp.empty((oc, parts), dtype=_acc_dtype(gy.dtype))
    if rows == 0:
        return gy2, xp.zeros(oc, dtype=partial.dtype)
    launch_blocks(GY_ROWS_BIAS, gy.dtype, oc * parts, (gy, mask, gy2, partial, oc, s, rows, parts, int(relu)))
    return gy2, partial.sum(axis=1)


def conv2d_backward(x: Any, W: Any, gy: Any, stride: Any, padding: Any, needs: tuple, *, xp: Any,
                    y: Any = None) -> tuple:
    """``(gx, gW, gb)`` of conv2d (None where ``needs`` is false): ``gcol = gy2 @ W2``, ``gW = gy2.T @ col``.

    ``y``: the forward output of a conv2d fused with ReLU; ``gy`` is then masked by ``y > 0``
    inside the transpose.  ``gy2`` is ``gy`` transposed to ``(N*OH*OW, OC)`` by one kernel,
    which also sums it into ``gb`` when the bias gradient is needed (float16 sums in float32).
    """
    oc, _, kh, kw = (int(v) for v in W.shape)
    (c, _, _, _, _, _, _, _, _, oh, ow), n = _geometry(x.shape, kh, kw, stride, padding)
    need_x, need_W = needs[0], needs[1]
    need_b = len(needs) > 2 and needs[2]
    W2 = xp.ascontiguousarray(W).reshape(oc, c * kh * kw)
    gx = xp.empty(tuple(x.shape), dtype=gy.dtype) if need_x else None
    gW = gb = None
    for s in _chunks(x.shape, kh, kw, x.dtype.itemsize, stride, padding):
        gy2, part = gy_rows(gy[s], y[s] if y is not None else None, need_b, xp=xp)
        if part is not None:
            gb = part if gb is None else gb + part
        if need_W:
            part = gemm(gy2.T, im2col_rows(x[s], kh, kw, stride, padding, xp=xp))
            gW = part if gW is None else gW + part
        if need_x:
            col2im_rows(gemm(gy2, W2), gx[s].shape, kh, kw, stride, padding, xp=xp, out=gx[s])
    if gb is not None:
        gb = gb.astype(gy.dtype, copy=False)
    return gx, (gW.reshape(W.shape) if gW is not None else None), gb
