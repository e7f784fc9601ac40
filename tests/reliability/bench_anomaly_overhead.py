"""Cost of ``detect_anomaly`` when on: µs per op of benchmarks/dispatch.py's 1,000-op chain, fwd+bwd.

Run from the repository root: ``python tests/reliability/bench_anomaly_overhead.py``.  The cost when
off is measured with ``python -m benchmarks.dispatch`` (compare a tree without the two flag tests).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ember as em
from benchmarks.dispatch import chain


def chain_us_per_op(n_ops: int = 1000, reps: int = 15) -> float:
    """Median µs per op of recording and back-propagating the chain."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        x = em.tensor([0.5], requires_grad=True)
        chain(x, n_ops).sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / n_ops * 1e6


if __name__ == "__main__":
    chain_us_per_op(reps=3)  # warm-up
    for _ in range(3):  # alternate, so load drift hits both alike
        off = chain_us_per_op()
        with em.autograd.detect_anomaly():
            on = chain_us_per_op()
        print(f"fwd+bwd µs/op: anomaly off {off:.2f}, on {on:.2f} ({on / off:.1f}x)")
