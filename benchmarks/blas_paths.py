"""Which BLAS path a CPU product takes, measured: NumPy's OpenBLAS vs SciPy's from Numba, and threaded bits.

``rates``: GFLOP/s on one thread of the DeepConvNet per-image products called
from compiled code through ``numpy.dot`` (SciPy's ``cython_blas``) and through
``ember.backends.numba.blas_gemm.gemm`` (NumPy's own OpenBLAS), alternated in
one process, best of ``--rounds``.

``bits``: for ``(M, K, N)`` products, whether OpenBLAS on two threads gives the
same bits as on one (why linear layers' products now run as blocks of one
BLAS thread each, ``ember.backends.numba.parallel_gemm``, and not on
OpenBLAS's threads).

Usage: ``python -m benchmarks.blas_paths rates [--rounds 5]``;
``python -m benchmarks.blas_paths bits``.  Prints only.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy

CONV_SHAPES = [(16, 144, 784), (32, 144, 196), (32, 288, 256), (64, 288, 64), (64, 576, 64)]
BITS_SHAPES = [(128, 392, 512), (128, 512, 512), (128, 600, 512), (128, 768, 512), (128, 769, 512),
               (128, 784, 512), (100, 784, 50), (128, 1024, 512)]


def _rates(rounds: int) -> None:
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  (what numpy.dot in Numba calls)
    import threadpoolctl

    from ember.backends.numba.blas_gemm import NUMPY_BLAS, gemm

    @numba.njit(nogil=True)
    def by_dot(reps, a, b, c):  # pragma: no cover - compiled
        for _ in range(reps):
            numpy.dot(a, b, c)

    @numba.njit(nogil=True)
    def by_gemm(reps, a, b, c):  # pragma: no cover - compiled
        for _ in range(reps):
            gemm(a, b, c, False, False, 0.0)

    threadpoolctl.threadpool_limits(1)
    rng = numpy.random.default_rng(0)
    print(f"NumPy's CBLAS found: {NUMPY_BLAS}; GFLOP/s, one thread, 100 products per timing, best of {rounds}")
    print(f"{'M x K x N':>16} {'numpy.dot (SciPy)':>18} {'blas_gemm (NumPy)':>18}")
    for m, k, n in CONV_SHAPES:
        a = rng.normal(size=(m, k)).astype(numpy.float32)
        b = rng.normal(size=(k, n)).astype(numpy.float32)
        c = numpy.empty((m, n), numpy.float32)
        best = {"dot": float("inf"), "gemm": float("inf")}
        for fn in (by_dot, by_gemm):
            fn(1, a, b, c)
        for _ in range(rounds):
            for name, fn in (("dot", by_dot), ("gemm", by_gemm)):
                start = time.perf_counter()
                fn(100, a, b, c)
                best[name] = min(best[name], time.perf_counter() - start)
        flops = 2.0 * m * k * n * 100
        print(f"{f'{m}x{k}x{n}':>16} {flops / best['dot'] / 1e9:>18.1f} {flops / best['gemm'] / 1e9:>18.1f}")


def _bits() -> None:
    import threadpoolctl

    rng = numpy.random.default_rng(0)
    print("(M, K, N): two OpenBLAS threads give one thread's bits")
    for m, k, n in BITS_SHAPES:
        a = rng.normal(size=(m, k)).astype(numpy.float32)
        w = rng.normal(size=(n, k)).astype(numpy.float32)
        with threadpoolctl.threadpool_limits(1):
            one = a @ w.T
        with threadpoolctl.threadpool_limits(2):
            two = a @ w.T
        print(f"{(m, k, n)}: {numpy.array_equal(one, two)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blas_paths", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("rates", "bits"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    _rates(args.rounds) if args.what == "rates" else _bits()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
