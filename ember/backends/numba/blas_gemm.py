"""GEMM from compiled Numba code on NumPy's own OpenBLAS (``gemm(a, b, c, ...)``, ``nogil``).

Why not ``numpy.dot`` inside Numba: Numba routes it to SciPy's ``cython_blas``,
a second OpenBLAS build, which on the development machine ran the conv
layers' few-row products (16 x 144 by 144 x 784) at 48-55 GFLOP/s on one core
against 73-80 for NumPy's build on the same shapes.  NumPy's wheels export an
ILP64 CBLAS (``scipy_cblas_sgemm64_``); this module finds it in the BLAS
libraries threadpoolctl reports, registers its address with LLVM under a name
of ours (``ember_cblas_sgemm``/``ember_cblas_dgemm``) and calls it through
``numba.types.ExternalFunction``.  The compiled callers then refer to the
symbol by name, so Numba's on-disk cache stays usable: each process registers
the address again on import, before any cached caller is loaded.

Where no such CBLAS is found (another NumPy build), the names point at
``@cfunc`` stand-ins with the same C signature that compute with
``numpy.dot`` (SciPy's BLAS): slower, never wrong, and a cached caller never
meets an unresolved symbol.  ``NUMPY_BLAS`` says which one is in use.

``SMALL_MATRIX_KERNELS`` says whether that OpenBLAS runs small products
without packing its operands (its AVX-512 cores; ``BLAS_CORE`` names the
core): the GEMM callers cut products into small blocks only then, because
every block packs its operands again on the other cores.

Trade-off: pointers cross as integers (``intp``), which the x86-64 and AArch64
C calling conventions pass exactly like pointers; the arrays' shapes and
strides are checked in ``gemm`` before the call.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import llvmlite.binding as llvm
import numba
import numpy
from numba import types

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
# ILP64 CBLAS names NumPy's OpenBLAS builds export, most specific first.
_CANDIDATES = {"s": ("scipy_cblas_sgemm64_", "cblas_sgemm64_"), "d": ("scipy_cblas_dgemm64_", "cblas_dgemm64_")}
_SYMBOLS = {"s": "ember_cblas_sgemm", "d": "ember_cblas_dgemm"}
# OpenBLAS cores (threadpoolctl's ``architecture``, lower case) whose sgemm/dgemm take small products on
# kernels that skip packing: in OpenBLAS 0.3.31 only the x86-64 AVX-512 ones have them.
SMALL_KERNEL_CORES = ("skylakex", "cooperlake", "sapphirerapids")
# "1" or "0" overrides the detection (to measure one machine's cut on another); anything else is ignored.
SMALL_KERNELS_ENV_VAR = "EMBER_BLAS_SMALL_KERNELS"


def _signature(real: Any) -> Any:
    """The C signature of ILP64 ``cblas_?gemm`` with pointers as ``intp``."""
    i32, i64, ip = types.int32, types.int64, types.intp
    return types.void(i32, i32, i32, i64, i64, i64, real, ip, i64, ip, i64, real, ip, i64)


def _blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded in this process, NumPy's own first."""
    try:
        import threadpoolctl
    except ImportError:
        return []
    numpy_dir = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    libs = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
    return sorted(libs, key=lambda c: not (c.filepath.startswith(numpy_dir) and "numpy" in c.filepath))


def _numpy_blas_paths() -> list[str]:
    """Files of the BLAS libraries loaded in this process, NumPy's own first."""
    return [c.filepath for c in _blas_libraries()]


def _numpy_blas_core() -> str:
    """The OpenBLAS core NumPy's BLAS runs on (``"haswell"``, ``"skylakex"``, ...), or ``""`` if unknown."""
    libs = _blas_libraries()
    if not libs or libs[0].internal_api != "openblas" or "numpy" not in libs[0].filepath:
        return ""
    return str(getattr(libs[0], "architecture", "") or "").lower()


def _small_matrix_kernels(core: str, found: bool) -> bool:
    """Whether GEMM callers should cut products into small blocks (see ``SMALL_KERNEL_CORES``)."""
    forced = os.environ.get(SMALL_KERNELS_ENV_VAR, "").strip()
    if not found or forced not in ("0", "1"):
        return found and core in SMALL_KERNEL_CORES
    return forced == "1"


def _find_cblas(kind: str) -> int | None:
    """Address of NumPy's ILP64 ``cblas_{kind}gemm``, or None."""
    for path in _numpy_blas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _CANDIDATES[kind]:
            fn = getattr(lib, name, None)
            if fn is not None:
                return ctypes.cast(fn, ctypes.c_void_p).value
    return None


def _fallback(real: Any) -> int:
    """A compiled C function with ``cblas_?gemm``'s signature, row-major only, computed with ``numpy.dot``."""
    i32, i64 = types.int32, types.int64
    ptr = types.CPointer(real)
    sig = types.void(i32, i32, i32, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr, i64)

    @numba.cfunc(sig, nopython=True, nogil=True)
    def gemm_by_dot(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):  # pragma: no cover - compiled
        ar, ac = (k, m) if ta == TRANS else (m, k)
        br, bc = (n, k) if tb == TRANS else (k, n)
        av = numba.carray(a, (ar, lda))[:, :ac]
        bv = numba.carray(b, (br, ldb))[:, :bc]
        cv = numba.carray(c, (m, ldc))[:, :n]
        prod = numpy.dot(av.T.copy() if ta == TRANS else av.copy(), bv.T.copy() if tb == TRANS else bv.copy())
        for i in range(m):
            for j in range(n):
                cv[i, j] = alpha * prod[i, j] + (beta * cv[i, j] if beta != 0 else 0)

    return gemm_by_dot.address


def _register() -> bool:
    """Point our two symbol names at NumPy's CBLAS (True) or at the ``numpy.dot`` stand-ins (False)."""
    found = {kind: _find_cblas(kind) for kind in _SYMBOLS}
    if all(found.values()):
        for kind, address in found.items():
            llvm.add_symbol(_SYMBOLS[kind], address)
        return True
    try:
        stand_ins = {kind: _fallback(real) for kind, real in (("s", types.float32), ("d", types.float64))}
    except Exception as exc:  # numpy.dot in Numba needs SciPy's BLAS
        raise ImportError(f"blas_gemm: no ILP64 CBLAS in NumPy and no numpy.dot for Numba ({exc})") from exc
    for kind, address in stand_ins.items():
        llvm.add_symbol(_SYMBOLS[kind], address)
    return False


NUMPY_BLAS = _register()
BLAS_CORE = _numpy_blas_core() if NUMPY_BLAS else ""
SMALL_MATRIX_KERNELS = _small_matrix_kernels(BLAS_CORE, NUMPY_BLAS)
_sgemm = types.ExternalFunction(_SYMBOLS["s"], _signature(types.float32))
_dgemm = types.ExternalFunction(_SYMBOLS["d"], _signature(types.float64))


@numba.njit(nogil=True, cache=True)
def gemm(a, b, c, trans_a, trans_b, beta):  # pragma: no cover - compiled
    """``c = op(a) @ op(b) + beta * c`` (``op`` transposes when asked) for float32/float64 2-D arrays.

    Every array needs unit stride along its last axis (rows may be strided),
    and all three the same dtype.  ``beta == 0`` ignores what ``c`` held.
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if (a.shape[1] if trans_a else a.shape[0]) != m or (b.shape[1] if trans_b else b.shape[0]) != k or (
        b.shape[0] if trans_b else b.shape[1]
    ) != n:
        raise ValueError("gemm: the shapes of op(a), op(b) and c do not match")
    if m == 0 or n == 0:
        return
    if k == 0:  # an empty sum: BLAS would only scale c
        for i in range(m):
            for j in range(n):
                c[i, j] = beta * c[i, j] if beta != 0 else 0
        return
    size = c.itemsize
    if a.itemsize != size or b.itemsize != size or a.strides[1] != size or b.strides[1] != size or c.strides[1] != size:
        raise ValueError("gemm: expected one dtype and unit stride along the last axis of every array")
    for rows, cols, step in ((a.shape[0], a.shape[1], a.strides[0]), (b.shape[0], b.shape[1], b.strides[0]),
                             (m, n, c.strides[0])):
        if rows > 1 and step < cols * size:
            raise ValueError("gemm: rows of an array overlap (row stride below the row length)")
    lda = max(1, a.strides[0] // size, a.shape[1])
    ldb = max(1, b.strides[0] // size, b.shape[1])
    ldc = max(1, c.strides[0] // size, n)
    ta = TRANS if trans_a else NO_TRANS
    tb = TRANS if trans_b else NO_TRANS
    if size == 4:
        _sgemm(ROW_MAJOR, ta, tb, m, n, k, numpy.float32(1.0), a.ctypes.data, lda, b.ctypes.data, ldb,
               numpy.float32(beta), c.ctypes.data, ldc)
    else:
        _dgemm(ROW_MAJOR, ta, tb, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, numpy.float64(beta),
               c.ctypes.data, ldc)
