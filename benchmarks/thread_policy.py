"""A/B of ember's CPU thread configurations: batch workers vs BLAS threads, idle and under load.

Each model trains on one fixed batch (batch 100, float32, Adam) in this one
process while the configuration is switched at run time with
``ember.backends.cpu.threads.set_thread_policy``; configurations alternate over
``--rounds`` rounds and each round's median step time is kept, so drift hits
all of them alike.  With ``--busy`` a second process spins on one core for the
whole measurement (what a shared CI or dev machine looks like).

Usage: ``python -m benchmarks.thread_policy [--rounds 6] [--busy]``; writes
``benchmarks/results/thread_policy[-busy].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# (batch workers, BLAS threads)
CONFIGS = {"w1 b1": (1, 1), "w2 b1": (2, 1), "w1 b2": (1, 2)}
RESULTS = Path(__file__).parent / "results"


def _models() -> list:
    from ember import nn
    from ember.models import DeepConvNet, SimpleConvNet

    def mlp() -> nn.Module:
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

    return [("SimpleConvNet", SimpleConvNet, (1, 28, 28), 15), ("DeepConvNet", DeepConvNet, (1, 28, 28), 4),
            ("MLP 784-512-512-10", mlp, (784,), 30)]


def measure(rounds: int) -> dict:
    """``{model: {config: [median ms of each round]}}``."""
    import ember as em
    import ember.nn.functional as F
    from ember.backends.cpu.threads import set_thread_policy

    rng = np.random.default_rng(0)
    t = em.tensor(rng.integers(0, 10, 100))
    out: dict = {}
    previous = set_thread_policy()
    try:
        for name, make, shape, steps in _models():
            x = em.tensor(rng.normal(size=(100, *shape)).astype(np.float32))
            model = make()
            opt = em.optim.Adam(model.parameters(), lr=1e-3)

            def step() -> None:
                opt.zero_grad()
                F.cross_entropy(model(x), t).backward()
                opt.step()

            for _ in range(rounds):
                for label, (workers, blas) in CONFIGS.items():
                    set_thread_policy(batch_workers=workers, blas_threads=blas)
                    step()
                    times = []
                    for _ in range(steps):
                        t0 = time.perf_counter()
                        step()
                        times.append(time.perf_counter() - t0)
                    out.setdefault(name, {}).setdefault(label, []).append(1000 * float(np.median(times)))
    finally:
        set_thread_policy(batch_workers=previous["batch_workers"], blas_threads=previous["blas_threads"] or 1)
    return out


def _markdown(doc: dict) -> str:
    state = "one busy process on a core" if doc["busy"] else "idle"
    lines = [f"# Thread configurations ({state})", "",
             f"`python -m benchmarks.thread_policy{' --busy' if doc['busy'] else ''}`, {doc['date']}, "
             f"{os.cpu_count()} cpus, load average at start {doc['loadavg']}. Median over {doc['rounds']} "
             "rounds of each round's median step (ms); w = ember batch workers (on the Numba backend: "
             "threads of Numba's pool), b = BLAS threads.", "",
             "| model | " + " | ".join(CONFIGS) + " |", "|---|" + "---:|" * len(CONFIGS)]
    for model, per in doc["ms"].items():
        lines.append(f"| {model} | " + " | ".join(f"{np.median(per[c]):.1f}" for c in CONFIGS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--busy", action="store_true", help="keep one core busy with another process")
    args = p.parse_args(argv)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        doc = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "busy": args.busy,
               "loadavg": [round(v, 2) for v in os.getloadavg()], "rounds": args.rounds,
               "configs": {k: {"batch_workers": w, "blas_threads": b} for k, (w, b) in CONFIGS.items()},
               "ms": measure(args.rounds)}
    finally:
        if busy is not None:
            busy.kill()
    stem = "thread_policy-busy" if args.busy else "thread_policy"
    RESULTS.mkdir(exist_ok=True)
    for suffix, text in ((".json", json.dumps(doc, indent=2) + "\n"), (".md", _markdown(doc))):
        tmp = RESULTS / f".{stem}{suffix}.tmp"
        tmp.write_text(text)
        os.replace(tmp, RESULTS / f"{stem}{suffix}")
    print(_markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
