"""A layer's 2-D product split over Numba's thread pool, one BLAS call per block, no GIL hand-off.

``matmul(a, b, workers)`` cuts the rows or the columns of ``a @ b`` into
blocks (``plan``: ``workers`` of them, or, where NumPy's OpenBLAS has
small-matrix kernels, a multiple small enough for them) and runs them in one
``prange`` region, each block one single-threaded call of NumPy's own OpenBLAS (``blas_gemm.gemm``)
writing straight into its rows or columns of the result.  The shared axis
``K`` is never cut, and which blocks exist depends only on the shapes and the
worker count, so the result does not depend on the machine's load: a region
sized down to one thread runs the same blocks.  A block's bits are those of
NumPy's ``@`` on that block; they can differ in the last bit from the whole
product's, where OpenBLAS picks another kernel for the smaller shape.

Why not ember's Python batch-split threads or OpenBLAS's own threads (the
two earlier policies).  A Python thread per block passes the GIL around every
call: a 100x784 by 784x50 product (TwoLayerNet) lost more to that than it
gained.  OpenBLAS's threads sum a long ``K`` in another order than one thread
does, so they needed a probe per layout and a cut of ``K`` into pieces to keep
results independent of the load.  Numba's OpenMP pool starts a region in about
2.5 us while its workers are still spinning from the last one, and a block's
BLAS call is the same call one thread would make.

Trade-off: OpenMP's workers spin for a few milliseconds after each region
(GNU OpenMP's default), so every other split of the step runs on the same pool
(``prange_slices``); Python threads started during the spin waited for it.
The finer cut of small products leans on NumPy's OpenBLAS having small-matrix
kernels (``blas_gemm.SMALL_MATRIX_KERNELS``: its AVX-512 cores); elsewhere a
block packs the operands again, so TwoLayerNet's forward took 96 us as 8 blocks
against 66 as 2 on a Zen 2 core (Haswell kernels), and there the blocks are rows
down to 16 a block, which beat columns on every MLP product.  Which plan a
machine gets depends on its OpenBLAS core, never on timing.
Measurements: ``docs/engineering/cpu-round4.md``, ``cpu-round5.md`` and ``cpu-round7.md``.
Products smaller than ``MIN_PARALLEL_MACS`` multiply-adds, other dtypes,
operands with no unit-stride axis, or no NumPy CBLAS (``blas_gemm.NUMPY_BLAS``
false) take NumPy's ``@`` on the calling thread.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy

from ember.backends.cpu.threads import apply_thread_policy
from ember.backends.numba import pool_region
from ember.backends.numba.blas_gemm import NUMPY_BLAS, SMALL_MATRIX_KERNELS, gemm

# Smallest product (M*K*N multiply-adds) split over the pool: a few microseconds of one core's GEMM
# on OpenBLAS's small-matrix kernels, where a region's start (~2.5 us) and the wait for the slower block
# stop paying.  The MLP's last layer (655k) took 14 us as two blocks against 35 us on one thread.
MIN_PARALLEL_MACS = 1 << 19
# Blocks are rows of the result when it has at least as many rows as columns, or when every block still
# gets this many rows: on the MLP's weight gradient (512x128 by 128x784) row blocks took 25% less time than
# column blocks, while TwoLayerNet's (50 rows) and the MLP's forward products (128 rows) ran 10-12% faster
# as columns (docs/engineering/cpu-round5.md).
MIN_ROWS_PER_BLOCK = 128
# Without small-matrix kernels (Zen 2, Haswell kernels, 2026-12-04): row blocks beat column blocks on every
# TwoLayerNet and MLP product with at least 25 rows a block (the MLP's 128x512 by 512x512 406 against
# 455 us, its 128x10 by 10x512 18 against 58), columns won only on 10 rows (25 against 29 us).
MIN_ROWS_PER_PACKED_BLOCK = 16
# Whether NumPy's OpenBLAS runs small blocks without packing them (``blas_gemm``); tests switch it.
SMALL_KERNELS = SMALL_MATRIX_KERNELS
# A product of at most MAX_BLOCKS_PER_WORKER * SMALL_BLOCK_MACS multiply-adds per worker is cut into
# enough blocks that none has more than SMALL_BLOCK_MACS.  NumPy's OpenBLAS runs blocks that small on
# its small-matrix kernels, which skip packing the operands: TwoLayerNet's forward product took 43 us
# as 8 row blocks against 74 us as 2, its weight gradient 46 against 78 (docs/engineering/cpu-round5.md).
SMALL_BLOCK_MACS = 1 << 19
MAX_BLOCKS_PER_WORKER = 8
FLOAT_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
NO_BIAS = {dtype: numpy.empty(0, dtype) for dtype in FLOAT_DTYPES}  # an epilogue without a bias


@numba.njit(nogil=True, cache=True, error_model="numpy")
def finish(c, bias, relu, zero, r0, r1, c0, c1):  # pragma: no cover - compiled
    """The epilogue of ``c[r0:r1, c0:c1]``: add ``bias`` along the columns (when it has any), then
    ReLU (when ``relu``) as ``ember.backends.numba.nn`` computes it, so the bits equal the unfused ops.
    Loops over 1-D slices: LLVM vectorises those (indexing the 2-D arrays ran 9x slower)."""
    width = c1 - c0
    if bias.size:
        b = bias[c0:c1]
        for i in range(r0, r1):
            row = c[i, c0:c1]
            for j in range(width):
                row[j] += b[j]
    if relu:
        for i in range(r0, r1):
            row = c[i, c0:c1]
            for j in range(width):
                v = row[j]
                row[j] = zero if v <= zero else v  # NaN fails the test and passes through


@numba.njit(nogil=True, cache=True)
def _block(a, b, c, trans_a, trans_b, by_rows, lo, hi, bias, relu, zero):  # pragma: no cover - compiled
    """Rows (``by_rows``) or columns ``lo:hi`` of ``c = op(a) @ op(b)``: one BLAS call, then the epilogue."""
    if by_rows:  # rows of op(a): columns of a when it is transposed
        if trans_a:
            gemm(a[:, lo:hi], b, c[lo:hi], trans_a, trans_b, 0.0)
        else:
            gemm(a[lo:hi], b, c[lo:hi], trans_a, trans_b, 0.0)
        if bias.size or relu:
            finish(c, bias, relu, zero, lo, hi, 0, c.shape[1])
        return
    if trans_b:  # columns of op(b): rows of b when it is transposed
        gemm(a, b[lo:hi], c[:, lo:hi], trans_a, trans_b, 0.0)
    else:
        gemm(a, b[:, lo:hi], c[:, lo:hi], trans_a, trans_b, 0.0)
    if bias.size or relu:
        finish(c, bias, relu, zero, 0, c.shape[0], lo, hi)


@numba.njit(nogil=True, parallel=True, cache=True)
def _blocks(a, b, c, trans_a, trans_b, by_rows, parts, bias, relu, zero):  # pragma: no cover - compiled
    """``c = op(a) @ op(b)`` as ``parts`` blocks of rows (``by_rows``) or columns, one per ``prange`` step."""
    total = c.shape[0] if by_rows else c.shape[1]
    for p in numba.prange(parts):
        _block(a, b, c, trans_a, trans_b, by_rows, total * p // parts, total * (p + 1) // parts, bias, relu, zero)


@numba.njit(nogil=True, cache=True)
def _blocks_inline(a, b, c, trans_a, trans_b, by_rows, parts, bias, relu, zero):  # pragma: no cover - compiled
    """``_blocks`` on the calling thread (a forked child may not start the pool): the same blocks, the same bits."""
    total = c.shape[0] if by_rows else c.shape[1]
    for p in range(parts):
        _block(a, b, c, trans_a, trans_b, by_rows, total * p // parts, total * (p + 1) // parts, bias, relu, zero)


def _operand(x: Any) -> tuple[Any, bool] | None:
    """``(array, transposed)`` with unit stride along the array's last axis, or None if ``x`` has no such axis."""
    size = x.itemsize
    if x.strides[1] == size and x.strides[0] >= x.shape[1] * size:
        return x, False
    if x.strides[0] == size and x.strides[1] >= x.shape[0] * size:
        return x.T, True
    return None


def plan(a: Any, b: Any, workers: int) -> tuple[int, bool]:
    """``(blocks, by_rows)``: how ``matmul`` cuts ``a @ b`` (1 block: NumPy's ``@`` on this thread).

    ``workers`` blocks, or, with ``SMALL_KERNELS``, a multiple of it small enough that every
    block has at most ``SMALL_BLOCK_MACS`` multiply-adds (up to ``MAX_BLOCKS_PER_WORKER`` per
    worker); never more blocks than the cut axis has rows or columns.
    """
    if workers <= 1 or not NUMPY_BLAS or type(a) is not numpy.ndarray or type(b) is not numpy.ndarray:
        return 1, True
    if a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype not in FLOAT_DTYPES:
        return 1, True
    m, k = a.shape
    n = b.shape[1]
    macs = m * k * n
    if macs < MIN_PARALLEL_MACS or b.shape[0] != k:
        return 1, True
    if not SMALL_KERNELS:
        by_rows = m >= n or m >= MIN_ROWS_PER_PACKED_BLOCK * workers
        return min(workers, m if by_rows else n), by_rows
    by_rows = m >= n or m >= MIN_ROWS_PER_BLOCK * workers
    parts = workers
    if macs <= workers * MAX_BLOCKS_PER_WORKER * SMALL_BLOCK_MACS:
        parts = workers * -(-macs // (workers * SMALL_BLOCK_MACS))
    return min(parts, m if by_rows else n), by_rows


def blocks(a: Any, b: Any, workers: int) -> int:
    """How many blocks ``matmul`` cuts ``a @ b`` into (1: NumPy's ``@`` on this thread)."""
    return plan(a, b, workers)[0]


def matmul(a: Any, b: Any, workers: int, bias: Any = None, relu: bool = False) -> Any:
    """``a @ b`` for 2-D arrays, its rows or columns cut into the blocks of ``plan`` run on Numba's pool.

    ``bias`` (``(n,)``, or None) and ``relu`` add a linear layer's epilogue, ``max(a @ b + bias, 0)``,
    which each block applies while its rows or columns are still in its core's cache.
    """
    parts, by_rows = plan(a, b, workers)
    left = right = None
    if parts > 1:
        left, right = _operand(a), _operand(b)
    if left is None or right is None:
        c = a @ b
        if bias is not None or relu:
            epilogue(c, bias, relu)
        return c
    apply_thread_policy()  # one BLAS thread per block, even when this is the process's first kernel call
    m, n = a.shape[0], b.shape[1]
    c = numpy.empty((m, n), dtype=a.dtype)
    extra = _epilogue_args(c, bias, relu)
    late = extra is None  # a bias the compiled epilogue cannot take: NumPy's epilogue after the blocks
    if late:
        extra = (NO_BIAS[c.dtype], False, c.dtype.type(0))
    if not pool_region.available():
        _blocks_inline(left[0], right[0], c, left[1], right[1], by_rows, parts, *extra)
    else:
        previous = pool_region.enter(workers)
        try:
            _blocks(left[0], right[0], c, left[1], right[1], by_rows, parts, *extra)
        finally:
            pool_region.leave(previous)
    if late:
        epilogue(c, bias, relu)
    return c


def _epilogue_args(c: Any, bias: Any, relu: Any) -> tuple | None:
    """``(bias, relu, zero)`` for the compiled epilogue of ``c``, or None when ``bias`` is not a plain
    contiguous vector of ``c``'s dtype (or ``c`` not a C-contiguous float32/float64 array)."""
    if type(c) is not numpy.ndarray or c.dtype not in FLOAT_DTYPES or not c.flags.c_contiguous:
        return None
    if bias is None:
        bias = NO_BIAS[c.dtype]
    elif (type(bias) is not numpy.ndarray or bias.dtype != c.dtype or bias.shape != c.shape[1:]
          or not bias.flags.c_contiguous):
        return None
    return bias, bool(relu), c.dtype.type(0)


def epilogue(c: Any, bias: Any, relu: bool) -> None:
    """``c += bias`` and, when ``relu``, ``c = max(c, 0)`` in place (NaN kept), compiled where it can be."""
    extra = _epilogue_args(c, bias, relu)
    if extra is not None:
        finish(c, extra[0], extra[1], extra[2], 0, c.shape[0], 0, c.shape[1])
        return
    if bias is not None:
        c += bias
    if relu:
        c[c <= 0] = 0  # keeps NaN, as the compiled epilogue and ``numba.nn.relu_forward``
