"""CUDA versions of the fused nn kernels of ``ember.backends.reference.nn`` (same signatures).

* Softmax cross-entropy forward: one thread per row computes the row max, the
  exponentials, their sum, the softmax and the loss in one launch (the
  reference needs about eight); backward is one elementwise launch
  ``gx = (p - onehot(t)) * g``.  Rows are short (the book's C = 10), so a
  thread per row beats a block-wide reduction; a block per row would pay off
  only for thousands of classes.
* Activation backwards (relu/sigmoid/tanh): one elementwise launch each,
  computed in float for float16.
* Batch norm: ``cupy_bn`` (block-per-channel statistics + fused elementwise).
* Dropout masks come from the Philox4x32-10 kernel of ``philox`` (the state lives on
  the device; the bits equal the NumPy twin's).
* Anything the kernels do not cover (mixed dtypes, broadcast shapes, non-float
  data) goes to the reference, so results never depend on which path ran beyond
  float rounding.
"""

from __future__ import annotations

from typing import Any

import numpy

from ember.backends.reference import nn as _ref
from ember.backends.cupy.bn import batch_norm_backward, batch_norm_forward_train  # noqa: F401
from ember.backends.cupy.kernel_spec import CTYPES, KernelSpec, launch
from ember.backends.cupy.philox import dropout_mask  # noqa: F401  (the device Philox mask)
from ember.backends.reference.nn import (  # noqa: F401  (re-exported: same namespace as the reference)
    batch_workers,
    compute_dtype,
    dropout_threshold,
    layer_matmul,
    relu_forward,
)

_SCE_FWD_BODY = """
extern "C" __global__ void ${name}(const T* __restrict__ x, const long long* __restrict__ t,
    ACC* __restrict__ loss, ACC* __restrict__ p, ACC* __restrict__ shift, long long C, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const T* row = x + i * C;
    ACC* prow = p + i * C;
    ACC m = to_acc(row[0]);
    for (long long j = 1; j < C; ++j) {
      ACC v = to_acc(row[j]);
      if (v > m || is_nan(v)) m = v;
    }
    shift[i] = m;
    ACC s = 0;
    for (long long j = 0; j < C; ++j) {
      ACC e = acc_exp(to_acc(row[j]) - m);
      prow[j] = e;
      s += e;
    }
    for (long long j = 0; j < C; ++j) prow[j] = prow[j] / s;
    long long ti = t[i];  // a bad index (reported later by the deferred range check) gives NaN, never an OOB read
    loss[i] = (ti >= 0 && ti < C) ? acc_log(s) - (to_acc(row[ti]) - m) : acc_log((ACC)-1);
  }
}
"""


def _acc_dtype(dtype: Any) -> Any:
    return numpy.float64 if numpy.dtype(dtype) == numpy.float64 else numpy.float32


def _emulate_sce_fwd(total, x, t, loss, p, shift, C):
    """NumPy evaluation of the softmax-CE forward kernel (a lane per row, same loops)."""
    acc = _acc_dtype(x.dtype)
    rows = x.reshape(total, C).astype(acc)
    m = rows[:, 0].copy()
    for j in range(1, C):
        v = rows[:, j]
        m = numpy.where((v > m) | numpy.isnan(v), v, m)
    e = numpy.exp(rows - m[:, None])
    s = numpy.zeros(total, dtype=acc)
    for j in range(C):
        s += e[:, j]
    p.reshape(total, C)[:] = e / s[:, None]
    shift.reshape(-1)[:] = m
    ti = t.reshape(-1)
    ok = (ti >= 0) & (ti < C)
    picked = rows[numpy.arange(total), numpy.where(ok, ti, 0)]
    loss.reshape(-1)[:] = numpy.where(ok, numpy.log(s) - (picked - m), numpy.nan)


_SCE_BWD_BODY = """
extern "C" __global__ void ${name}(const T* __restrict__ p, const long long* __restrict__ t,
    const T* __restrict__ g, T* __restrict__ gx, long long C, long long g_stride, long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    long long n = i / C, c = i % C;
    ACC hot = (c == t[n]) ? (ACC)1 : (ACC)0;
    gx[i] = from_acc((to_acc(p[i]) - hot) * to_acc(g[n * g_stride]));
  }
}
"""


def _emulate_sce_bwd(total, p, t, g, gx, C, g_stride):
    """NumPy evaluation of the softmax-CE backward kernel (a lane per element)."""
    i = numpy.arange(total, dtype=numpy.int64)
    n, c = i // C, i % C
    hot = (c == t.reshape(-1)[n]).astype(p.dtype)
    gx.reshape(-1)[:] = (p.reshape(-1) - hot) * g.reshape(-1)[n * g_stride]


def _activation_body(expr: str) -> str:
    return (
        """
extern "C" __global__ void ${name}(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
    long long total) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    ACC yv = to_acc(y[i]), g = to_acc(gy[i]);
    gx[i] = from_acc(EXPR);
  }
}
""".replace("EXPR", expr)
    )


def _emulate_activation(fn):
    def emulate(total, y, gy, gx):
        acc = _acc_dtype(y.dtype)
        yv, g = y.reshape(-1).astype(acc), gy.reshape(-1).astype(acc)
        gx.reshape(-1)[:] = fn(yv, g).astype(gx.dtype)

    emulate.__doc__ = "NumPy evaluation of an activation-backward kernel."
    return emulate


SCE_FWD = KernelSpec("ember_sce_fwd", _SCE_FWD_BODY, _emulate_sce_fwd)
SCE_BWD = KernelSpec("ember_sce_bwd", _SCE_BWD_BODY, _emulate_sce_bwd)
RELU_BWD = KernelSpec(
    "ember_relu_bwd", _activation_body("yv > (ACC)0 ? g : (ACC)0"),
    _emulate_activation(lambda y, g: numpy.where(y > 0, g, 0).astype(g.dtype)),
)
SIGMOID_BWD = KernelSpec(
    "ember_sigmoid_bwd", _activation_body("g * yv * ((ACC)1 - yv)"), _emulate_activation(lambda y, g: g * y * (1 - y))
)
TANH_BWD = KernelSpec(
    "ember_tanh_bwd", _activation_body("g * ((ACC)1 - yv * yv)"), _emulate_activation(lambda y, g: g * (1 - y * y))
)
SPECS = [SCE_FWD, SCE_BWD, RELU_BWD, SIGMOID_BWD, TANH_BWD]


def _contiguous_pair(a: Any, b: Any) -> bool:
    return a.dtype == b.dtype and a.dtype in CTYPES and tuple(a.shape) == tuple(b.shape)


def softmax_cross_entropy_forward(x: Any, t: Any, *, xp: Any = numpy) -> tuple:
    """``(loss, p, shift)`` as ``reference.nn.softmax_cross_entropy_forward``, one launch."""
    if x.dtype not in CTYPES or x.ndim != 2 or t.ndim != 1 or x.shape[0] != t.shape[0] or x.shape[1] == 0:
        return _ref.softmax_cross_entropy_forward(x, t, xp=xp)
    n, c = (int(s) for s in x.shape)
    acc = compute_dtype(x.dtype)
    x = xp.ascontiguousarray(x)
    t = xp.ascontiguousarray(t, dtype=xp.int64)
    loss = xp.empty((n,), dtype=acc)
    p = xp.empty((n, c), dtype=acc)
    shift = xp.empty((n, 1), dtype=acc)
    launch(SCE_FWD, x.dtype, n, (x, t, loss, p, shift, c))
    return loss, p, shift


def softmax_cross_entropy_backward(p: Any, t: Any, g: Any, *, xp: Any = numpy) -> Any:
    """``gx = (p - onehot(t)) * g`` with ``g`` a scalar or an ``(N,)`` array, one launch."""
    if p.dtype not in CTYPES or p.ndim != 2 or t.ndim != 1:
        return _ref.softmax_cross_entropy_backward(p, t, g, xp=xp)
    g = xp.asarray(g, dtype=p.dtype)
    if g.ndim > 1 or (g.ndim == 1 and g.shape[0] != p.shape[0]):
        return _ref.softmax_cross_entropy_backward(p, t, g, xp=xp)
    n, c = (int(s) for s in p.shape)
    g_stride = 1 if g.ndim == 1 else 0
    g = xp.ascontiguousarray(g.reshape(-1))
    p = xp.ascontiguousarray(p)
    t = xp.ascontiguousarray(t, dtype=xp.int64)
    gx = xp.empty((n, c), dtype=p.dtype)
    launch(SCE_BWD, p.dtype, gx.size, (p, t, g, gx, c, g_stride))
    return gx


def _activation(spec: KernelSpec, fallback: Any, y: Any, gy: Any, xp: Any) -> Any:
    if not _contiguous_pair(y, gy):
        return fallback(y, gy, xp=xp)
    y, gy = xp.ascontiguousarray(y), xp.ascontiguousarray(gy)
    gx = xp.empty(y.shape, dtype=y.dtype)
    launch(spec, y.dtype, gx.size, (y, gy, gx))
    return gx


def relu_backward(y: Any, gy: Any, *, xp: Any = numpy) -> Any:
    """``gx = gy where y > 0 else 0`` (subgradient 0 at 0), one launch."""
    return _activation(RELU_BWD, _ref.relu_backward, y, gy, xp)


def sigmoid_backward(y: Any, gy: Any, *, xp: Any = numpy) -> Any:
    """``gx = gy * y * (1 - y)``, one launch."""
    return _activation(SIGMOID_BWD, _ref.sigmoid_backward, y, gy, xp)


def tanh_backward(y: Any, gy: Any, *, xp: Any = numpy) -> Any:
    """``gx = gy * (1 - y * y)``, one launch."""
    return _activation(TANH_BWD, _ref.tanh_backward, y, gy, xp)


def linear_forward(x: Any, w_t: Any, b: Any, relu: bool, workers: int, *, xp: Any = numpy) -> Any:
    """The reference composition (cuBLAS product, bias) with this module's one-launch ReLU."""
    return _ref.linear_forward_with(relu_forward, x, w_t, b, relu, workers, xp)


def linear_grad_output(gy: Any, y: Any, need_bias: bool, workers: int, *, xp: Any = numpy) -> tuple:
    """The reference composition with this module's one-launch ReLU gradient."""
    return _ref.linear_grad_output_with(relu_backward, gy, y, need_bias, xp)


def __getattr__(name: str) -> Any:
    """Any reference kernel without a CUDA version here runs on CuPy through ``xp``."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_ref, name)
