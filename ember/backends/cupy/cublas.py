"""2-D GEMMs through a cuBLAS handle of ember's own, called with ctypes: capturable in a CUDA graph.

CuPy refuses every cuBLAS call while a stream captures (its wrappers check
first), although cuBLAS itself supports capture. This module creates one handle
per device in the libcublas CuPy already loaded, binds it to the current stream
and gives it a workspace after every ``cublasSetStream`` (without one cuBLAS may
allocate inside the graph), and calls ``cublasGemmEx`` with host-pointer
``alpha = 1, beta = 0`` (constants, so baking them into a graph is harmless).

Row-major to column-major: cuBLAS sees a row-major ``(r, c)`` array with row
stride ``ld`` as a column-major ``(c, r)`` matrix, so ``C = A @ B`` is computed
as ``C^T = B^T A^T`` with ``m = N, n = M, k = K``; an operand that is a
transposed view of a contiguous array (``W.T``) is passed untransposed with
``CUBLAS_OP_T``, so no copy is made. Other strided operands are copied first.

When it is used (``ember.backends.device_gemm``): while a graph captures and in
``ember.compile``'s CUDA warm-up calls (so the graph's GEMM kernels are chosen
and loaded before the capture), by default. Trade-off: one path for eager and captured steps would make their
GEMMs bit-identical by construction and skip CuPy's matmul bookkeeping, but
routes every eager GEMM through code that a GPU has not yet run; CuPy's
``matmul`` also picks TF32 and batching paths by itself. ``EMBER_OWN_GEMM=always``
selects the own handle for every 2-D GEMM on CUDA (then eager and replayed
steps share the same GEMM calls).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy

CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
CUBLAS_GEMM_DEFAULT = -1
CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH = 0, 3
CUDA_R_16F, CUDA_R_32F, CUDA_R_64F = 2, 0, 1
CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_COMPUTE_64F = 68, 77, 70
WORKSPACE_BYTES = 32 << 20  # cuBLAS's recommendation for Hopper; enough for every earlier GPU

# dtype -> (cudaDataType of A, B, C; compute type; ctypes type of alpha/beta)
_TYPES = {
    numpy.dtype("float16"): (CUDA_R_16F, CUBLAS_COMPUTE_32F, ctypes.c_float),
    numpy.dtype("float32"): (CUDA_R_32F, CUBLAS_COMPUTE_32F, ctypes.c_float),
    numpy.dtype("float64"): (CUDA_R_64F, CUBLAS_COMPUTE_64F, ctypes.c_double),
}


class CublasError(RuntimeError):
    """A cuBLAS call returned a status other than CUBLAS_STATUS_SUCCESS."""


def _check(status: int, what: str) -> None:
    if status != 0:
        raise CublasError(f"ember cuBLAS: {what} returned status {status}")


def tf32_enabled() -> bool:
    """TF32 for float32 GEMMs follows CuPy's switch (``CUPY_TF32``), so both paths compute alike."""
    return os.environ.get("CUPY_TF32", "0") not in ("", "0")


def _declare(lib: Any) -> Any:
    """Argument types of the entry points used (64-bit pointers and sizes; ints stay C ints)."""
    vp, i = ctypes.c_void_p, ctypes.c_int
    lib.cublasCreate_v2.argtypes = [vp]
    lib.cublasSetStream_v2.argtypes = [vp, vp]
    lib.cublasSetWorkspace_v2.argtypes = [vp, vp, ctypes.c_size_t]
    lib.cublasGemmEx.argtypes = [vp, i, i, i, i, i, vp, vp, i, i, vp, i, i, vp, vp, i, i, i, i]
    for name in ("cublasCreate_v2", "cublasSetStream_v2", "cublasSetWorkspace_v2", "cublasGemmEx"):
        getattr(lib, name).restype = i
    return lib


def load_library() -> Any:
    """The libcublas CuPy loaded (found with ``cuda.pathfinder``, else by soname), its entry points typed."""
    try:
        from cuda import pathfinder

        return _declare(ctypes.CDLL(pathfinder.load_nvidia_dynamic_lib("cublas").abs_path))
    except Exception:  # noqa: BLE001 - any failure: try the sonames CuPy's wheels link against
        pass
    for name in ("libcublas.so.13", "libcublas.so.12", "libcublas.so"):
        try:
            return _declare(ctypes.CDLL(name))
        except OSError:
            continue
    raise CublasError("ember cuBLAS: libcublas was not found (is CuPy installed for this CUDA version?)")


def operand_layout(x: Any) -> tuple[int, int] | None:
    """``(op, ld)`` of a 2-D row-major operand as cuBLAS sees it, or None when it needs a copy.

    ``op`` is CUBLAS_OP_N for a row-major array (row stride ``ld`` elements) and
    CUBLAS_OP_T for a column-major one (a transposed view; column stride ``ld``).
    """
    r, c = (int(v) for v in x.shape)
    s0, s1 = (int(v) // x.dtype.itemsize for v in x.strides)
    if (s1 == 1 or c == 1) and (s0 >= max(c, 1) or r == 1):
        return CUBLAS_OP_N, max(s0 if r > 1 else c, c, 1)
    if (s0 == 1 or r == 1) and (s1 >= max(r, 1) or c == 1):
        return CUBLAS_OP_T, max(s1 if c > 1 else r, r, 1)
    return None


def gemm_arguments(a: Any, b: Any, c: Any, pointer: Any) -> tuple:
    """The ``cublasGemmEx`` arguments after the handle for ``c = a @ b`` (all row-major 2-D).

    ``pointer(x)`` gives an array's device address. Raises ValueError for
    shapes that do not chain, mixed dtypes, or an operand that needs a copy.
    """
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2 or tuple(c.shape) != (m, n):
        raise ValueError(f"ember cuBLAS gemm: expected (M, K) @ (K, N) -> (M, N), got {a.shape} @ {b.shape} -> {c.shape}")
    if not (a.dtype == b.dtype == c.dtype) or a.dtype not in _TYPES:
        raise ValueError(f"ember cuBLAS gemm: expected one float dtype, got {a.dtype}, {b.dtype}, {c.dtype}")
    la, lb = operand_layout(a), operand_layout(b)
    lc = operand_layout(c)
    if la is None or lb is None or lc is None or lc[0] != CUBLAS_OP_N:
        raise ValueError("ember cuBLAS gemm: an operand is neither row- nor column-major (copy it first)")
    dtype, compute, scalar = _TYPES[a.dtype]
    if compute == CUBLAS_COMPUTE_32F and a.dtype == numpy.float32 and tf32_enabled():
        compute = CUBLAS_COMPUTE_32F_FAST_TF32
    (op_b, ld_b), (op_a, ld_a) = lb, la
    ldc = lc[1]
    return (op_b, op_a, int(n), int(m), int(k), pointer(b), dtype, ld_b, pointer(a), dtype, ld_a, pointer(c), dtype,
            ldc, compute, scalar)


def device_pointer(x: Any) -> int:
    """A CuPy array's device address (a NumPy array's host address, for the CPU tests)."""
    data = x.data
    return int(data.ptr) if hasattr(data, "ptr") else int(x.ctypes.data)


class Handle:
    """One cuBLAS handle of ember's own on one device, with its workspace and the stream it is bound to."""

    def __init__(self, lib: Any, xp: Any):
        self.lib = lib
        box = ctypes.c_void_p(0)
        _check(lib.cublasCreate_v2(ctypes.addressof(box)), "cublasCreate_v2")
        self.value = box.value
        self.workspace = xp.empty(WORKSPACE_BYTES, dtype=numpy.uint8)  # made outside any capture
        self.stream = None
        self.one = {t: t(1.0) for _, _, t in _TYPES.values()}
        self.zero = {t: t(0.0) for _, _, t in _TYPES.values()}

    def bind(self, stream_ptr: int) -> None:
        """Run on ``stream_ptr`` from now on; the workspace is set again after every set-stream."""
        if stream_ptr == self.stream:
            return
        _check(self.lib.cublasSetStream_v2(self.value, stream_ptr), "cublasSetStream_v2")
        _check(self.lib.cublasSetWorkspace_v2(self.value, device_pointer(self.workspace), WORKSPACE_BYTES),
               "cublasSetWorkspace_v2")
        self.stream = stream_ptr

    def gemm(self, a: Any, b: Any, out: Any) -> Any:
        """``out[...] = a @ b`` on the bound stream (operands as ``gemm_arguments`` accepts)."""
        args = gemm_arguments(a, b, out, device_pointer)
        op_b, op_a, n, m, k, pb, tb, ldb, pa, ta, lda, pc, tc, ldc, compute, scalar = args
        _check(self.lib.cublasGemmEx(
            self.value, op_b, op_a, n, m, k, ctypes.addressof(self.one[scalar]), pb, tb, ldb, pa, ta, lda,
            ctypes.addressof(self.zero[scalar]), pc, tc, ldc, compute, CUBLAS_GEMM_DEFAULT), "cublasGemmEx")
        return out


_LIB: list = []
_HANDLES: dict[int, Handle] = {}


def handle(xp: Any, device_id: int) -> Handle:
    """The handle of ``device_id`` (created on first use, outside a capture: see ``prepare``)."""
    h = _HANDLES.get(device_id)
    if h is None:
        if not _LIB:
            _LIB.append(load_library())
        h = _HANDLES[device_id] = Handle(_LIB[0], xp)
    return h


def prepare(xp: Any, device_id: int, stream_ptr: int) -> Handle:
    """Create the handle and bind it to ``stream_ptr`` before a capture starts (nothing to allocate inside)."""
    h = handle(xp, device_id)
    h.bind(stream_ptr)
    return h


def matmul(a: Any, b: Any, xp: Any) -> Any:
    """``a @ b`` for 2-D CuPy arrays through ember's handle on the current stream (operands copied if strided)."""
    if operand_layout(a) is None:
        a = xp.ascontiguousarray(a)
    if operand_layout(b) is None:
        b = xp.ascontiguousarray(b)
    out = xp.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    if out.size == 0:
        return out
    if a.shape[1] == 0:
        out.fill(0)
        return out
    h = handle(xp, int(a.device.id))
    h.bind(int(xp.cuda.get_current_stream().ptr))
    return h.gemm(a, b, out)


def reset() -> None:
    """Forget the loaded library and handles (tests swap in a fake libcublas)."""
    _LIB.clear()
    _HANDLES.clear()
