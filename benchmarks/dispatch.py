"""Dispatch-overhead micro-benchmark: a chain of elementwise ops on a 1-element tensor.

On a one-element tensor the arithmetic is free, so the time per op is the
framework's own overhead: argument checks, ``Function.apply``, building the
output Tensor and the graph node, and (backward) the engine's scheduling loop.
The chain cycles through ``x * 0.9``, ``x + 0.1``, ``tanh(x)``, ``exp(x)``
(values stay within ``[0.3, 2.8]``), 1,000 ops long, float32, cpu.

Three timings per framework, each the median over ``--reps`` repetitions of
the whole chain, ember, PyTorch and NumPy repetitions alternating (so drift in
clock speed or background load hits all alike), after a warm-up:

* ``fwd+bwd``: record the chain and back-propagate it (the issue's number);
* ``fwd``: record the chain only (grad mode on, a leaf that requires grad);
* ``fwd no_grad``: the chain under ``no_grad`` (no graph at all).

The NumPy column is the floor: the same ufunc calls, with a hand-written
backward, so ``ember - numpy`` is ember's own overhead per op.

Run from the repository root::

    python -m benchmarks.dispatch            # or: python benchmarks/dispatch.py
    python -m benchmarks.dispatch --ops 1000 --reps 30 --no-torch
    python -m benchmarks.dispatch --profile      # where ember's time goes (cProfile)

Results go to ``benchmarks/results/dispatch.json`` and ``dispatch.md``.  The same
chain runs on every target as the ``overhead`` suite of ``python -m benchmarks``
(each target in its own process); this script keeps the single-process,
ember-vs-torch view and the ``--profile`` option.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make `import ember` find the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy

import ember as em
from benchmarks.harness.io import write_atomic
from benchmarks.harness.machine import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"
CHAIN = ("mul 0.9", "add 0.1", "tanh", "exp")


def chain(x: Any, n_ops: int) -> Any:
    """The op chain on an ember or torch tensor (identical Python control flow for both)."""
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


def framework_cases(fw: Any, n_ops: int) -> dict[str, Callable[[], Any]]:
    """The three timed closures for a framework module with torch's API (``ember`` or ``torch``)."""

    def fwd_bwd() -> Any:
        x = fw.tensor([0.5], requires_grad=True)
        chain(x, n_ops).backward()
        return x.grad

    def fwd() -> Any:
        x = fw.tensor([0.5], requires_grad=True)
        return chain(x, n_ops)

    def fwd_no_grad() -> Any:
        x = fw.tensor([0.5], requires_grad=True)
        with fw.no_grad():
            return chain(x, n_ops)

    return {"fwd+bwd": fwd_bwd, "fwd": fwd, "fwd no_grad": fwd_no_grad}


def numpy_cases(n_ops: int) -> dict[str, Callable[[], Any]]:
    """The arithmetic floor: the same chain as bare NumPy ufunc calls, backward written by hand."""
    np = numpy

    def forward(tape: list | None) -> Any:
        x = np.array([0.5], dtype=np.float32)
        for i in range(n_ops):
            k = i & 3
            if k == 0:
                x = x * 0.9
            elif k == 1:
                x = x + 0.1
            elif k == 2:
                x = np.tanh(x)
            else:
                x = np.exp(x)
            if tape is not None:
                tape.append(x)  # what the backward needs (tanh and exp outputs)
        return x

    def fwd_bwd() -> Any:
        tape: list = []
        y = forward(tape)
        g = np.ones_like(y)
        for i in range(n_ops - 1, -1, -1):
            k = i & 3
            if k == 0:
                g = g * 0.9
            elif k == 2:
                t = tape[i]
                g = g * (1 - t * t)
            elif k == 3:
                g = g * tape[i]
            # k == 1 (add): the gradient passes through unchanged
        return g

    return {"fwd+bwd": fwd_bwd, "fwd": lambda: forward([]), "fwd no_grad": lambda: forward(None)}


def _time_once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t0
    del out  # free the graph outside the timed region
    return elapsed


def measure(frameworks: dict[str, dict[str, Callable[[], Any]]], reps: int, warmup: int) -> dict:
    """Median seconds per chain for every framework x case, repetitions interleaved."""
    times: dict[str, dict[str, list[float]]] = {f: {c: [] for c in cases} for f, cases in frameworks.items()}
    for _ in range(warmup):
        for cases in frameworks.values():
            for fn in cases.values():
                fn()
    for _ in range(reps):
        for name, cases in frameworks.items():
            for case, fn in cases.items():
                times[name][case].append(_time_once(fn))
    return {f: {c: statistics.median(ts) for c, ts in cs.items()} for f, cs in times.items()}


def check_agreement(torch: Any, n_ops: int) -> float:
    """Both chains compute the same function: relative gap of the leaf gradients (float32)."""
    g_em = framework_cases(em, n_ops)["fwd+bwd"]().item()
    g_t = framework_cases(torch, n_ops)["fwd+bwd"]().item()
    return abs(g_em - g_t) / max(abs(g_t), 1e-30)


def render_markdown(result: dict) -> str:
    """A short table of µs/op per case, with the machine and versions."""
    m = result["machine"]
    us = result["us_per_op"]
    names = list(us)
    has_torch = "torch" in us
    lines = [
        "# Dispatch overhead: chain of elementwise ops on a 1-element tensor",
        "",
        f"{result['n_ops']} ops cycling {', '.join(result['chain'])}; float32, cpu; "
        f"median of {result['reps']} repetitions (frameworks alternating, {result['warmup']} warm-up). "
        "`numpy` is the arithmetic floor: the same ufunc calls with a hand-written backward.",
        "",
        "| µs/op | " + " | ".join(names) + (" | ember / torch |" if has_torch else " |"),
        "|---|" + "---:|" * (len(names) + has_torch),
    ]
    for case in result["cases"]:
        row = f"| {case} | " + " | ".join(f"{us[n][case]:.2f}" for n in names)
        if has_torch:
            row += f" | {result['ratio_ember_over_torch'][case]:.2f}"
        lines.append(row + " |")
    lines += [
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} logical cpus), {m['platform']}; peak RSS {m['peak_rss_mib']:.0f} MiB",
        f"Python {m['python']}, NumPy {m['numpy']}, PyTorch {m['torch'] or 'not installed'}; {result['date']}",
        "",
    ]
    return "\n".join(lines)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def profile_ember(n_ops: int, reps: int) -> None:
    """Print where ember's fwd+bwd time goes (cProfile, sorted by own time)."""
    import cProfile
    import pstats

    fn = framework_cases(em, n_ops)["fwd+bwd"]
    fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(reps):
        fn()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(15)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the table and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1000, help="ops in the chain (default 1000)")
    parser.add_argument("--reps", type=int, default=30, help="timed repetitions per case (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed repetitions first (default 5)")
    parser.add_argument("--no-torch", action="store_true", help="time ember (and the NumPy floor) only")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of ember's fwd+bwd and exit")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.profile:
        profile_ember(args.ops, args.reps)
        return {}

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
    frameworks = {"ember": framework_cases(em, args.ops)}
    if torch is not None:
        torch.set_num_threads(1)
        frameworks["torch"] = framework_cases(torch, args.ops)
    frameworks["numpy"] = numpy_cases(args.ops)

    seconds = measure(frameworks, args.reps, args.warmup)
    us = {f: {c: 1e6 * s / args.ops for c, s in cs.items()} for f, cs in seconds.items()}
    result = {
        "benchmark": "dispatch",
        "n_ops": args.ops,
        "chain": list(CHAIN),
        "shape": [1],
        "dtype": "float32",
        "device": "cpu",
        "reps": args.reps,
        "warmup": args.warmup,
        "cases": list(frameworks["ember"]),
        "us_per_op": us,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "torch": getattr(torch, "__version__", None),
            "ember": em.__version__,
            "peak_rss_mib": peak_rss_mib(),
        },
    }
    if torch is not None:
        result["ratio_ember_over_torch"] = {c: us["ember"][c] / us["torch"][c] for c in us["ember"]}
        result["grad_rel_gap_vs_torch"] = check_agreement(torch, args.ops)

    text = render_markdown(result)
    print(text)
    write_atomic(args.out / "dispatch.json", json.dumps(result, indent=2) + "\n")
    write_atomic(args.out / "dispatch.md", text)
    return result


if __name__ == "__main__":
    main()
