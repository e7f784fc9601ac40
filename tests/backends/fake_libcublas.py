"""A libcublas in NumPy for the CPU tests of ember's own cuBLAS GEMM (``ember.backends.cupy.cublas``).

``cublasGemmEx`` reads each operand from its raw address as a column-major matrix
with the leading dimension it was given, so a wrong transpose flag, leading
dimension, operand order or dtype code gives a wrong product, as on a GPU.
During a fake capture (``fake_cuda_graph``) the GEMM is also recorded for replay.
"""

from __future__ import annotations

import ctypes

import numpy
from fake_cuda_graph import _recording


class FakeCublas:
    """libcublas in NumPy: reads column-major operands from raw addresses with the given leading dims."""

    DTYPES = {0: numpy.float32, 1: numpy.float64, 2: numpy.float16}

    def __init__(self):
        self.calls: list = []

    def cublasCreate_v2(self, address):
        ctypes.c_void_p.from_address(address).value = 0xC0B1
        self.calls.append(("create",))
        return 0

    def cublasSetStream_v2(self, handle, stream):
        self.calls.append(("set_stream", stream))
        return 0

    def cublasSetWorkspace_v2(self, handle, ptr, size):
        self.calls.append(("set_workspace", ptr, size))
        return 0

    @staticmethod
    def _matrix(ptr, dtype, rows, cols, ld):
        """The column-major ``rows x cols`` matrix at ``ptr`` with leading dimension ``ld``, as a view."""
        item = numpy.dtype(dtype).itemsize
        n = ((cols - 1) * ld + rows) if rows and cols else 0
        buf = (ctypes.c_char * (n * item)).from_address(ptr)
        flat = numpy.frombuffer(buf, dtype=dtype, count=n)
        return numpy.lib.stride_tricks.as_strided(flat, (rows, cols), (item, ld * item))

    def cublasGemmEx(self, handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype,
                     ldc, compute, algo):
        self.calls.append(("gemm", transa, transb, m, n, k, lda, ldb, ldc, Atype, compute, algo))
        dt = self.DTYPES[Atype]
        scalar = ctypes.c_double if compute == 70 else ctypes.c_float
        al, be = scalar.from_address(alpha).value, scalar.from_address(beta).value
        assert lda >= max(1, m if transa == 0 else k) and ldb >= max(1, k if transb == 0 else n) and ldc >= max(1, m)

        def run():
            a = self._matrix(A, dt, *((m, k) if transa == 0 else (k, m)), lda)
            b = self._matrix(B, dt, *((k, n) if transb == 0 else (n, k)), ldb)
            a, b = (a if transa == 0 else a.T), (b if transb == 0 else b.T)
            c = self._matrix(C, dt, m, n, ldc)
            acc = numpy.float64 if dt == numpy.float64 else numpy.float32
            # cuBLAS is column-major: ember passes C^T = B^T A^T for its row-major C = A B.  NumPy multiplies
            # A B, as the fake cupy.matmul of an eager step does: OpenBLAS's Haswell kernels round B^T A^T
            # differently, and replays must equal eager steps bit for bit on any BLAS.
            prod = al * (b.T.astype(acc) @ a.T.astype(acc)).T
            c[...] = prod if be == 0 else prod + be * c.astype(acc)

        cap = _recording()
        if cap is not None:
            cap.thunks.append(run)
        run()
        return 0
