"""Time the NumPy reference conv/pool kernels at SimpleConvNet shapes.

Run from the repository root: ``python -m benchmarks.kernels_numpy`` (or
``python benchmarks/kernels_numpy.py`` once ember is installed). Prints the
median of 20 timed runs (``time.perf_counter``) after warm-up, float32, CPU.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ember.backends import conv_kernels as ck
from ember.backends import pool_kernels as pk

WARMUP, RUNS = 3, 20


def median_ms(fn: Callable[[], Any]) -> float:
    """Median wall time of ``fn()`` in ms over ``RUNS`` runs after ``WARMUP`` runs."""
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def report(title: str, cases: dict[str, Callable[[], Any]]) -> None:
    """Print ``title`` and the median time of each named case."""
    print(f"\n{title}")
    for name, fn in cases.items():
        print(f"  {name:<16} {median_ms(fn):8.3f} ms")


def main() -> None:
    """Time im2col/col2im and pooling at the book's SimpleConvNet shapes."""
    rng = np.random.default_rng(0)
    dtype = np.float32
    cpu = platform.processor() or platform.machine()
    print(f"numpy {np.__version__}, {cpu}, dtype float32, device cpu")
    print(f"median of {RUNS} runs after {WARMUP} warm-up runs")

    x = rng.standard_normal((100, 1, 28, 28)).astype(dtype)
    col = ck.im2col(x, 5, 5, 1, 0)
    mib = col.nbytes / 2**20
    report(
        f"conv: x {x.shape}, 5x5, stride 1, pad 0 -> col {col.shape} ({mib:.1f} MiB)",
        {
            "im2col": lambda: ck.im2col(x, 5, 5, 1, 0),
            "col2im": lambda: ck.col2im(col, x.shape, 5, 5, 1, 0),
        },
    )

    h = rng.standard_normal((100, 30, 24, 24)).astype(dtype)
    y, arg = pk.max_pool2d_forward(h, 2, 2, 2, 0)
    gy = rng.standard_normal(y.shape).astype(dtype)
    report(
        f"pool: x {h.shape}, kernel 2x2, stride 2, pad 0 -> y {y.shape}",
        {
            "max_pool2d fwd": lambda: pk.max_pool2d_forward(h, 2, 2, 2, 0),
            "max_pool2d bwd": lambda: pk.max_pool2d_backward(gy, arg, h.shape, 2, 2, 2),
            "avg_pool2d fwd": lambda: pk.avg_pool2d_forward(h, 2, 2, 2, 0),
            "avg_pool2d bwd": lambda: pk.avg_pool2d_backward(gy, h.shape, 2, 2, 2),
        },
    )


if __name__ == "__main__":
    main()
