"""In-process A/B of 2x2 stride-2 max pooling: the general Numba loops vs ``ember.backends.numba.pool_tiled``.

Calls the public ``max_pool2d_forward``/``max_pool2d_backward`` of the Numba
kernels on SimpleConvNet's activations (x ``(100, 30, 24, 24)`` float32), with
the tiled loops switched off and on in alternation, ``--rounds`` times per
batch-worker count, and prints min and median ms of each and whether the two
gave the same bytes.  Usage: ``python -m benchmarks.pool_tiled_ab [--rounds 30]
[--workers 1,2]``.  Prints only; nothing is written.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _arrays(result) -> list:
    """A call's arrays: ``(y, argmax)`` from the forward, ``gx`` from the backward."""
    return list(result) if isinstance(result, tuple) else [result]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--workers", default="1,2", help="batch-worker counts to try, comma-separated")
    args = p.parse_args(argv)
    from ember.backends.cpu.threads import set_thread_policy
    from ember.backends.numba import pool, pool_tiled

    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 30, 24, 24)).astype(np.float32)
    y, argmax = pool.max_pool2d_forward(x, 2, 2, 2)
    gy = rng.normal(size=y.shape).astype(np.float32)
    calls = {"forward": lambda: pool.max_pool2d_forward(x, 2, 2, 2),
             "backward": lambda: pool.max_pool2d_backward(gy, argmax, x.shape, 2, 2, 2)}

    def run(tiled: bool, call):
        pool.tiles_2x2 = pool_tiled.tiles_2x2 if tiled else (lambda *geometry: False)
        try:
            return call()
        finally:
            pool.tiles_2x2 = pool_tiled.tiles_2x2

    previous = set_thread_policy()
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            set_thread_policy(batch_workers=workers)
            times: dict = {}
            for _ in range(args.rounds):
                for tiled in (False, True):
                    for name, call in calls.items():
                        run(tiled, call)
                        start = time.perf_counter()
                        run(tiled, call)
                        times.setdefault((name, tiled), []).append(time.perf_counter() - start)
            same = all(a.tobytes() == b.tobytes() for call in calls.values()
                       for a, b in zip(_arrays(run(False, call)), _arrays(run(True, call))))
            print(f"batch workers {workers}: same bytes {same}")
            for (name, tiled), ts in sorted(times.items()):
                print(f"  {name:8s} {'tiled  ' if tiled else 'general'}: min {min(ts) * 1e3:.3f} "
                      f"median {np.median(ts) * 1e3:.3f} ms")
    finally:
        set_thread_policy(batch_workers=previous["batch_workers"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
