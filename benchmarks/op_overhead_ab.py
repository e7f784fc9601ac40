"""A/B timing of per-op overhead: two ember checkouts, alternating, each in its own process.

On a shared machine absolute timings drift, so this script compares two trees
(``--old``, ``--new``) by running short worker processes in turn, ``old, new``
then ``new, old`` and so on, each importing ember from its tree (``PYTHONPATH``).
A worker times, after a warm-up:

* the dispatch chain of ``benchmarks.dispatch`` (1,000 ops on a one-element
  tensor: ``x * 0.9``, ``x + 0.1``, ``tanh``, ``exp``), fwd+bwd, fwd and
  fwd under ``no_grad``, in µs per op;
* one TwoLayerNet (784-50-10, ReLU) SGD training step at batch 100, in ms.

The cyclic GC stays on, as in real use: how often it runs is part of the cost.
Printed: min and median over all samples per tree, and new/old of each.  With
``--torch`` a PyTorch worker runs the same chain in each round too (third in
the rotation), and new/torch is printed for the chain cases.

    python -m benchmarks.op_overhead_ab --old /work/main --new . --rounds 12 --torch

``--callgrind`` counts instructions instead (needs valgrind): one worker per tree
and chain mode runs the chain under ``valgrind --tool=callgrind``, collecting only
inside the timed calls; the counts do not depend on the machine's load.

    python -m benchmarks.op_overhead_ab --callgrind --reps 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = ("chain fwd+bwd", "chain fwd", "chain no_grad", "two_layer_net b100 step")
UNITS = {"chain fwd+bwd": "us/op", "chain fwd": "us/op", "chain no_grad": "us/op", "two_layer_net b100 step": "ms"}


def _chain(x, n_ops: int):
    """The op chain of ``benchmarks.dispatch.chain`` (kept here so a worker imports only ember)."""
    for i in range(n_ops):
        k = i & 3
        if k == 0:
            x = x * 0.9
        elif k == 1:
            x = x + 0.1
        elif k == 2:
            x = x.tanh()
        else:
            x = x.exp()
    return x


def worker(reps: int, n_ops: int, steps: int) -> dict:
    """Time every case in this process (ember from ``PYTHONPATH``); returns samples per case."""
    import numpy as np

    import ember as em
    import ember.nn.functional as F

    def fwd_bwd() -> None:
        _chain(em.tensor([0.5], requires_grad=True), n_ops).backward()

    def fwd() -> None:
        _chain(em.tensor([0.5], requires_grad=True), n_ops)

    def no_grad() -> None:
        x = em.tensor([0.5], requires_grad=True)
        with em.no_grad():
            _chain(x, n_ops)

    em.manual_seed(0)
    model = em.models.TwoLayerNet((1, 28, 28), 50, 10, activation="relu")
    opt = em.optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x = em.tensor(rng.standard_normal((100, 1, 28, 28), dtype=np.float32))
    t = em.tensor(rng.integers(0, 10, 100).astype(np.int64))

    def train_step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), t).backward()
        opt.step()

    out: dict = {}
    for name, fn, count, scale in (("chain fwd+bwd", fwd_bwd, reps, 1e6 / n_ops), ("chain fwd", fwd, reps, 1e6 / n_ops),
                                   ("chain no_grad", no_grad, reps, 1e6 / n_ops),
                                   ("two_layer_net b100 step", train_step, steps, 1e3)):
        for _ in range(3):
            fn()
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * scale)
        out[name] = samples
    return out


def torch_worker(reps: int, n_ops: int) -> dict:
    """The chain cases on PyTorch's CPU tensors (the issue's reference)."""
    import torch

    def fwd_bwd() -> None:
        _chain(torch.tensor([0.5], requires_grad=True), n_ops).backward()

    def fwd() -> None:
        _chain(torch.tensor([0.5], requires_grad=True), n_ops)

    def no_grad() -> None:
        x = torch.tensor([0.5], requires_grad=True)
        with torch.no_grad():
            _chain(x, n_ops)

    out: dict = {}
    for name, fn in (("chain fwd+bwd", fwd_bwd), ("chain fwd", fwd), ("chain no_grad", no_grad)):
        for _ in range(3):
            fn()
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e6 / n_ops)
        out[name] = samples
    return out


def callgrind_worker(mode: str, reps: int, n_ops: int) -> None:
    """Run one chain mode ``reps`` times inside ``itertools.starmap`` (callgrind collects only there)."""
    import ember as em

    def run() -> None:
        x = em.tensor([0.5], requires_grad=True)
        if mode == "chain no_grad":
            with em.no_grad():
                _chain(x, n_ops)
        elif mode == "chain fwd":
            _chain(x, n_ops)
        else:
            _chain(x, n_ops).backward()

    run()
    run()
    list(itertools.starmap(run, [()] * reps))


def callgrind_count(tree: str, mode: str, args: argparse.Namespace) -> float:
    """Instructions per op of ``mode`` with ember from ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()), PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=starmap_next",
           "--callgrind-out-file=/dev/null", sys.executable, str(Path(__file__).resolve()), "--callgrind-worker",
           mode, "--reps", str(args.reps), "--ops", str(args.ops)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"error: callgrind worker for {tree} ({mode}) failed:\n{done.stderr.strip()[-2000:]}")
    return int(found.group(1)) / (args.reps * args.ops)


def run_tree(tree: str | None, args: argparse.Namespace) -> dict:
    """One worker process importing ember from ``tree`` (None: the PyTorch worker)."""
    env = dict(os.environ, PYTHONPATH=str(Path(tree or ".").resolve()))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker" if tree else "--torch-worker", "--reps",
           str(args.reps), "--ops", str(args.ops), "--steps", str(args.steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: worker for {tree} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", default="/work/main", help="the reference checkout (default /work/main)")
    p.add_argument("--new", default=".", help="the checkout under test (default: the current directory)")
    p.add_argument("--rounds", type=int, default=10, help="worker pairs to run (default 10)")
    p.add_argument("--reps", type=int, default=10, help="chain repetitions per worker and mode (default 10)")
    p.add_argument("--ops", type=int, default=1000, help="chain length (default 1000)")
    p.add_argument("--steps", type=int, default=20, help="training steps per worker (default 20)")
    p.add_argument("--torch", action="store_true", help="also time the chain on PyTorch in each round")
    p.add_argument("--callgrind", action="store_true", help="count instructions per op with valgrind instead")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--callgrind-worker", choices=CASES[:3], help=argparse.SUPPRESS)
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.reps, args.ops, args.steps)))
        return 0
    if args.torch_worker:
        print(json.dumps(torch_worker(args.reps, args.ops)))
        return 0
    if args.callgrind_worker:
        callgrind_worker(args.callgrind_worker, args.reps, args.ops)
        return 0
    for tree in (args.old, args.new):
        if not (Path(tree) / "ember" / "__init__.py").is_file():
            p.error(f"{tree} is not an ember checkout (no ember/__init__.py)")
    if args.callgrind:
        if shutil.which("valgrind") is None:
            p.error("--callgrind needs valgrind on PATH")
        print(f"old = {args.old}, new = {args.new}; instructions per op (callgrind), {args.reps} chains of {args.ops}")
        print(f"{'case':16s} {'old':>9s} {'new':>9s} {'new/old':>8s}")
        for mode in CASES[:3]:
            old, new = callgrind_count(args.old, mode, args), callgrind_count(args.new, mode, args)
            print(f"{mode:16s} {old:9.0f} {new:9.0f} {new / old:8.3f}")
        return 0
    samples: dict = {"old": {c: [] for c in CASES}, "new": {c: [] for c in CASES}, "torch": {c: [] for c in CASES}}
    trees = {"old": args.old, "new": args.new, "torch": None}
    for r in range(args.rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        if args.torch:
            order.append("torch")
        for which in order:
            got = run_tree(trees[which], args)
            for c, values in got.items():
                samples[which][c].extend(values)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"old = {args.old}, new = {args.new}; {args.rounds} rounds, alternating; min / median of all samples")
    print(f"{'case':26s} {'old min':>9s} {'old med':>9s} {'new min':>9s} {'new med':>9s} {'new/old min':>11s} "
          f"{'new/old med':>11s}")
    for c in CASES:
        o, n = samples["old"][c], samples["new"][c]
        om, on, nm, nn = min(o), statistics.median(o), min(n), statistics.median(n)
        print(f"{c + ' (' + UNITS[c] + ')':26s} {om:9.2f} {on:9.2f} {nm:9.2f} {nn:9.2f} {nm / om:11.2f} {nn / on:11.2f}")
    if args.torch:
        print(f"\n{'case':26s} {'torch min':>9s} {'torch med':>9s} {'new/torch min':>13s} {'new/torch med':>13s}")
        for c in CASES:
            t, n = samples["torch"][c], samples["new"][c]
            if t:
                tm, tn = min(t), statistics.median(t)
                print(f"{c + ' (' + UNITS[c] + ')':26s} {tm:9.2f} {tn:9.2f} {min(n) / tm:13.2f} "
                      f"{statistics.median(n) / tn:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
