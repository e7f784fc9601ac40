"""Numba versions of the fused nn kernels of ``ember.backends.reference.nn`` (same signatures).

Each public function checks its arrays and either runs a compiled loop or hands
the call to the reference: float16 (Numba cannot load or store it), arrays that
are not C-contiguous, or mixed dtypes go to ``reference.nn`` unchanged, so every
input still gets the reference answer.

Design choices (timings: ``python -m benchmarks.kernels_nn_optim``):

* Serial ``@njit(cache=True)`` loops.  The flat activation kernels (ReLU and
  the activation gradients) run in equal parts on Numba's pool from
  ``pool_flat.MIN_POOL_ELEMENTS`` elements, one region through ``_flat_parts``;
  the rest are one or two passes over at most a few MB.
* ``error_model="numpy"``: division by zero gives inf/NaN as in NumPy instead of
  raising, and without that check LLVM vectorises the loops (the Python error
  model kept ``sqrt`` and ``/`` scalar and made Adam 3x slower than NumPy).
* No ``fastmath`` flags that assume finite values: NaN and Inf propagate as in
  NumPy (a NaN logit gives a NaN loss; the loss scaler relies on it).  Only the
  batch-norm channel sums may be reassociated (``fastmath={"reassoc"}``), so
  they vectorise.
* Elementwise kernels keep the reference's dtype and operation order (scalars
  are passed in the array's dtype), so they match NumPy bit for bit.  Batch-norm
  statistics and softmax row sums accumulate in float64 and differ from NumPy's
  float32 pairwise sums in the last bits (they are at least as accurate).
* ``dropout_mask`` is the compiled Philox4x32-10 loop of ``numba.philox`` (bit-equal to the twin).
* Kernels compile on first call per dtype (about 0.3-1.5 s each) and are cached on
  disk (``NUMBA_CACHE_DIR``); importing this module compiles nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy

from ember.backends.reference import nn as _ref
from ember.backends.cpu.threads import batch_workers  # noqa: F401  (ops read it from the nn kernels)
from ember.backends.numba import pool_flat
from ember.backends.numba.linear import linear_forward, linear_grad_output  # noqa: F401  (a linear layer's passes)
from ember.backends.numba.parallel_gemm import matmul as layer_matmul  # noqa: F401  (a linear layer's products)
from ember.backends.numba.pool_flat import part_edge

_FAST = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


def _fast(*arrays: Any) -> bool:
    """True when every array is a C-contiguous NumPy float32/float64 array of one dtype."""
    dtype = arrays[0].dtype
    for a in arrays:
        if type(a) is not numpy.ndarray or a.dtype != dtype or not a.flags.c_contiguous:
            return False
    return dtype in _FAST


# ------------------------------------------------------- softmax cross-entropy
@numba.njit(cache=True, error_model="numpy")
def _sce_forward(x, t, loss, p, shift):  # pragma: no cover - compiled
    n, c = x.shape
    for i in range(n):
        m = x[i, 0]
        for j in range(1, c):
            v = x[i, j]
            if v > m or math.isnan(v):  # NumPy's max: a NaN wins
                m = v
        shift[i, 0] = m
        s = 0.0
        for j in range(c):
            e = math.exp(x[i, j] - m)
            p[i, j] = e
            s += e
        for j in range(c):
            p[i, j] = p[i, j] / s
        ti = t[i]
        if ti < 0 or ti >= c:  # the op validates targets; never read outside the row
            raise IndexError("softmax_cross_entropy_forward: class index out of range [0, C)")
        loss[i] = math.log(s) - (x[i, ti] - m)


@numba.njit(cache=True, error_model="numpy")
def _sce_backward(p, t, g, gx, one):  # pragma: no cover - compiled
    n, c = p.shape
    for i in range(n):
        gi = g[i]
        ti = t[i]
        for j in range(c):
            if j == ti:
                gx[i, j] = (p[i, j] - one) * gi
            else:
                gx[i, j] = p[i, j] * gi


def softmax_cross_entropy_forward(x: Any, t: Any, *, xp: Any = numpy) -> tuple:
    """Compiled ``reference.nn.softmax_cross_entropy_forward``: max, exp-sum and loss in one sweep per row."""
    if x.ndim != 2 or x.size == 0 or not _fast(x) or t.dtype.kind not in "iu" or t.shape != x.shape[:1]:
        return _ref.softmax_cross_entropy_forward(x, t, xp=xp)
    n, c = x.shape
    loss = numpy.empty(n, dtype=x.dtype)
    p = numpy.empty((n, c), dtype=x.dtype)
    shift = numpy.empty((n, 1), dtype=x.dtype)
    _sce_forward(x, numpy.ascontiguousarray(t), loss, p, shift)
    return loss, p, shift


def softmax_cross_entropy_backward(p: Any, t: Any, g: Any, *, xp: Any = numpy) -> Any:
    """Compiled ``reference.nn.softmax_cross_entropy_backward``: ``gx = (p - onehot(t)) * g``."""
    if p.ndim != 2 or p.size == 0 or not _fast(p) or t.dtype.kind not in "iu" or t.shape != p.shape[:1]:
        return _ref.softmax_cross_entropy_backward(p, t, g, xp=xp)
    n = p.shape[0]
    g = numpy.asarray(g, dtype=p.dtype)
    if g.ndim == 0:
        g = numpy.full(n, g, dtype=p.dtype)
    elif g.shape != (n,):
        return _ref.softmax_cross_entropy_backward(p, t, g, xp=xp)
    gx = numpy.empty_like(p)
    _sce_backward(p, numpy.ascontiguousarray(t), numpy.ascontiguousarray(g), gx, p.dtype.type(1))
    return gx


@numba.njit(nogil=True, cache=True)
def _index_range(t, ignore):  # pragma: no cover - compiled
    lo = hi = t[0]
    found = False
    for i in range(t.size):
        v = t[i]
        lo = min(lo, v)
        hi = max(hi, v)
        found |= v == ignore
    return lo, hi, found


_INDEX_DTYPES = (numpy.dtype(numpy.int64), numpy.dtype(numpy.int32))


def class_index_range(t: Any, ignore_index: int, *, xp: Any = numpy) -> tuple:
    """Compiled ``reference.nn.class_index_range``: one pass over the labels instead of three NumPy reductions
    (about 4 us of TwoLayerNet's cross-entropy at batch 100)."""
    if (type(t) is not numpy.ndarray or t.dtype not in _INDEX_DTYPES or not t.size or not t.flags.c_contiguous
            or not -(1 << 31) <= ignore_index < (1 << 31)):
        return _ref.class_index_range(t, ignore_index, xp=xp)
    lo, hi, found = _index_range(t.reshape(-1), ignore_index)
    return int(lo), int(hi), bool(found)


# --------------------------------------------------------- activation forward/backward
@numba.njit(nogil=True, cache=True, error_model="numpy")
def _relu_forward(x, out, zero):  # pragma: no cover - compiled
    for i in range(x.size):
        xi = x[i]
        out[i] = zero if xi <= zero else xi  # NaN fails the test and passes through


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _relu_backward(y, gy, out, zero):  # pragma: no cover - compiled
    for i in range(y.size):
        out[i] = gy[i] if y[i] > zero else zero


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _sigmoid_backward(y, gy, out, one):  # pragma: no cover - compiled
    for i in range(y.size):
        yi = y[i]
        out[i] = gy[i] * yi * (one - yi)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _tanh_backward(y, gy, out, one):  # pragma: no cover - compiled
    for i in range(y.size):
        yi = y[i]
        out[i] = gy[i] * (one - yi * yi)


# Kernel numbers of ``_flat_parts``: one parallel driver for every flat activation kernel (a driver
# taking the kernel as an argument would miss Numba's disk cache in every new process).
_RELU_FORWARD, _RELU_BACKWARD, _SIGMOID_BACKWARD, _TANH_BACKWARD = range(4)


@numba.njit(nogil=True, parallel=True, cache=True, error_model="numpy")
def _flat_parts(kind, y, gy, out, constant, count):  # pragma: no cover - compiled
    """Kernel ``kind`` over ``count`` contiguous parts of the flat arrays, one per ``prange`` step."""
    n = out.size
    for p in numba.prange(count):
        lo, hi = part_edge(n, p, count), part_edge(n, p + 1, count)
        if kind == _RELU_FORWARD:
            _relu_forward(y[lo:hi], out[lo:hi], constant)
        elif kind == _RELU_BACKWARD:
            _relu_backward(y[lo:hi], gy[lo:hi], out[lo:hi], constant)
        elif kind == _SIGMOID_BACKWARD:
            _sigmoid_backward(y[lo:hi], gy[lo:hi], out[lo:hi], constant)
        else:
            _tanh_backward(y[lo:hi], gy[lo:hi], out[lo:hi], constant)


def _run_flat(kind: int, serial: Any, args: tuple) -> None:
    """``serial(*args)``, or the same kernel in parts on Numba's pool when the arrays are large (``pool_flat``)."""
    out = args[-2]
    y, gy = (args[0], args[0]) if len(args) == 3 else args[:2]
    pool_flat.run(out.size, serial, args, _flat_parts, (kind, y, gy, out, args[-1]))


def _elementwise(kind: int, kernel: Any, reference: Any, y: Any, gy: Any, xp: Any, constant: int) -> Any:
    """Run a flat one-pass kernel on same-shaped contiguous arrays, else the reference."""
    if y.shape != gy.shape or not _fast(y, gy):
        return reference(y, gy, xp=xp)
    out = numpy.empty_like(gy)
    _run_flat(kind, kernel, (y.reshape(-1), gy.reshape(-1), out.reshape(-1), y.dtype.type(constant)))
    return out


def relu_forward(x: Any, *, xp: Any = numpy) -> Any:
    """Compiled ``reference.nn.relu_forward``: ``y = max(x, 0)``, NaN kept.

    NumPy's ``maximum(x, 0)`` ran at 0.8 ms for a (100, 16, 28, 28) float32
    batch where this loop takes 0.17 ms (NaN-aware SIMD max vs one compare and
    select per element), about 3 ms of a DeepConvNet step.
    """
    if not _fast(x):
        return _ref.relu_forward(x, xp=xp)
    out = numpy.empty_like(x)
    _run_flat(_RELU_FORWARD, _relu_forward, (x.reshape(-1), out.reshape(-1), x.dtype.type(0)))
    return out


def relu_backward(y: Any, gy: Any, *, xp: Any = numpy) -> Any:
    """Compiled ``reference.nn.relu_backward``: ``gx = gy where y > 0 else 0``."""
    return _elementwise(_RELU_BACKWARD, _relu_backward, _ref.relu_backward, y, gy, xp, 0)


def sigmoid_backward(y: Any, gy: Any, *, xp: Any = numpy) -> Any:
    """Compiled ``reference.nn.sigmoid_backward``: ``gx = gy * y * (1 - y)``."""
    return _elementwise(_SIGMOID_BACKWARD, _sigmoid_backward, _ref.sigmoid_backward, y, gy, xp, 1)


def tanh_backward(y: Any, gy: Any, *, xp: Any = numpy) -> Any:
    """Compiled ``reference.nn.tanh_backward``: ``gx = gy * (1 - y * y)``."""
    return _elementwise(_TANH_BACKWARD, _tanh_backward, _ref.tanh_backward, y, gy, xp, 1)


# ------------------------------------------------------------------ batch norm
# Only the channel sums may be reassociated (vectorised float64 partial sums).
_REDUCE = {"cache": True, "error_model": "numpy", "fastmath": {"reassoc"}}


@numba.njit(**_REDUCE)
def _pair_sums(u, x, cu, cx, s1, s2):  # pragma: no cover - compiled
    """Per channel k of ``(N, C, L)`` arrays: ``s1 = sum(u - cu[k])``, ``s2 = sum((u - cu[k]) * (x - cx[k]))``."""
    n, c, l = x.shape
    for k in range(c):
        s1[k] = 0.0
        s2[k] = 0.0
    if l == 1:  # (N, C): vectorise across channels
        for i in range(n):
            for k in range(c):
                d = u[i, k, 0] - cu[k]
                s1[k] += d
                s2[k] += d * (x[i, k, 0] - cx[k])
        return
    for i in range(n):
        for k in range(c):
            a = 0.0
            b = 0.0
            cuk, cxk = cu[k], cx[k]
            for j in range(l):
                d = u[i, k, j] - cuk
                a += d
                b += d * (x[i, k, j] - cxk)
            s1[k] += a
            s2[k] += b


@numba.njit(cache=True, error_model="numpy")
def _bn_normalize(x, mean, scale, shift, y):  # pragma: no cover - compiled
    """``y = (x - mean[k]) * scale[k] + shift[k]``, computed in float64."""
    n, c, l = x.shape
    for i in range(n):
        if l == 1:
            for k in range(c):
                y[i, k, 0] = (x[i, k, 0] - mean[k]) * scale[k] + shift[k]
        else:
            for k in range(c):
                mk, ak, bk = mean[k], scale[k], shift[k]
                for j in range(l):
                    y[i, k, j] = (x[i, k, j] - mk) * ak + bk


@numba.njit(cache=True, error_model="numpy")
def _bn_grad_input(x, gy, mean, c1, c2, c3, gx):  # pragma: no cover - compiled
    """``gx = (gy - c2[k] - (x - mean[k]) * c3[k]) * c1[k]``, computed in float64."""
    n, c, l = x.shape
    for i in range(n):
        if l == 1:
            for k in range(c):
                gx[i, k, 0] = (gy[i, k, 0] - c2[k] - (x[i, k, 0] - mean[k]) * c3[k]) * c1[k]
        else:
            for k in range(c):
                mk, a, b, d = mean[k], c1[k], c2[k], c3[k]
                for j in range(l):
                    gx[i, k, j] = (gy[i, k, j] - b - (x[i, k, j] - mk) * d) * a


def _as_nlc(x: Any) -> Any:
    """``x: (N, C, ...)`` as an ``(N, C, L)`` view (``L = 1`` for ``(N, C)``)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel(p: Any, c: int, fill: float) -> Any:
    """A ``(C,)`` float64 copy of a per-channel array, or ``fill`` everywhere when it is None."""
    return numpy.full(c, fill) if p is None else numpy.asarray(p, dtype=numpy.float64).reshape(c)


def batch_norm_forward_train(x: Any, weight: Any, bias: Any, eps: float, *, xp: Any = numpy) -> tuple:
    """Compiled ``reference.nn.batch_norm_forward_train``: one statistics pass and one output pass over ``x``.

    The statistics are float64 sums of ``x - x[0, k]`` and of its square (the
    shifted one-pass algorithm: accurate while the mean is within a few standard
    deviations of the channel's first value, unlike a plain ``E[x^2] - E[x]^2``).
    """
    if x.ndim < 2 or x.size == 0 or not _fast(x):
        return _ref.batch_norm_forward_train(x, weight, bias, eps, xp=xp)
    c = x.shape[1]
    m = x.size // c
    x3 = _as_nlc(x)
    pilot = x3[0, :, 0].astype(numpy.float64)
    s1, s2 = numpy.empty(c), numpy.empty(c)
    _pair_sums(x3, x3, pilot, pilot, s1, s2)
    d = s1 / m
    mean = pilot + d
    var = numpy.maximum(s2 / m - d * d, 0.0)
    inv_std = 1.0 / numpy.sqrt(var + eps)
    y = numpy.empty_like(x)
    _bn_normalize(x3, mean, inv_std * _channel(weight, c, 1.0), _channel(bias, c, 0.0), _as_nlc(y))
    return y, mean.astype(x.dtype), var.astype(x.dtype), inv_std.astype(x.dtype)


def batch_norm_backward(
    x: Any, gy: Any, mean: Any, inv_std: Any, weight: Any, training: bool,
    need_x: bool = True, need_w: bool = True, need_b: bool = True, *, xp: Any = numpy,
) -> tuple:
    """Compiled ``reference.nn.batch_norm_backward``: one pass for the channel sums, one for ``gx``.

    With ``gb = sum(gy)`` and ``gw = inv_std * sum(gy (x - mean))``, training gives
    ``gx = w inv_std (gy - gb / m - (x - mean) inv_std gw / m)``, evaluation ``gx = w inv_std gy``.
    """
    if x.ndim < 2 or x.size == 0 or x.shape != gy.shape or not _fast(x, gy):
        return _ref.batch_norm_backward(x, gy, mean, inv_std, weight, training, need_x, need_w, need_b, xp=xp)
    c = x.shape[1]
    m = x.size // c
    x3, g3 = _as_nlc(x), _as_nlc(gy)
    mean64, istd64 = _channel(mean, c, 0.0), _channel(inv_std, c, 1.0)
    gx = gw = gb = None
    if need_b or need_w or (need_x and training):
        sg, sgx = numpy.empty(c), numpy.empty(c)
        _pair_sums(g3, x3, numpy.zeros(c), mean64, sg, sgx)
        gb, gw = sg, sgx * istd64
    if need_x:
        gx = numpy.empty_like(x)
        c1 = istd64 * _channel(weight, c, 1.0)
        if training:
            _bn_grad_input(x3, g3, mean64, c1, gb / m, istd64 * gw / m, _as_nlc(gx))
        else:  # running statistics are constants: gx = gy * c1
            zeros = numpy.zeros(c)
            _bn_normalize(g3, zeros, c1, zeros, _as_nlc(gx))
    return (gx, None if gw is None or not need_w else gw.astype(x.dtype),
            None if gb is None or not need_b else gb.astype(x.dtype))


# --------------------------------------------------------------------- dropout
# The Philox4x32-10 mask in one compiled pass (``numba.philox``), bit-equal to the reference twin
# the CUDA kernel also matches.
from ember.backends.numba.philox import dropout_mask  # noqa: E402, F401

