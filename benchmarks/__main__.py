"""``python -m benchmarks``: run benchmark suites on every available target and write the results.

Examples (from the repository root)::

    python -m benchmarks --quick                       # every suite, small sizes (< 2 min on 2 cores)
    python -m benchmarks train --targets ember-numpy,ember-numba,torch-cpu
    python -m benchmarks ops scaling --repeats 20 --threads 1
    python -m benchmarks --list                        # suites and targets

Each suite writes ``<out>/<suite>-<device>.json`` (every sample, machine,
versions, thread counts), ``.md`` (medians, min-max, speed-ups against the
baselines, roofline, first-call and memory tables) and ``.png``; ``<device>``
is ``cpu`` or the GPU's name when a CUDA target ran.  A ``train`` run also
refreshes ``<out>/headline.md``.  ``--quick`` runs write to ``results/quick/``
(git-ignored) unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import suites
from benchmarks.harness.io import write_atomic, write_json
from benchmarks.harness.plots import plot
from benchmarks.harness.report import headline, render
from benchmarks.harness.runner import Options, Runner
from benchmarks.targets import TARGETS, resolve

RESULTS = Path(__file__).resolve().parent / "results"


def _csv(text: str) -> list[str]:
    """Split a comma-separated option value."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line (unknown suites/targets are usage errors)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("suites", nargs="*", metavar="suite", help=f"any of {', '.join(suites.NAMES)} (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes, 3 repeats: a smoke run of every suite")
    p.add_argument("--targets", type=_csv, default=None, help="comma-separated target names (default: all)")
    p.add_argument("--baseline", type=_csv, default=["ember-numpy", "torch-cpu"],
                   help="targets to compute speed-ups against (default: ember-numpy,torch-cpu)")
    p.add_argument("--repeats", type=int, help="timed samples per case and target (default 10, quick 3)")
    p.add_argument("--warmup", type=int, help="untimed calls after the first one (default 2, quick 1)")
    p.add_argument("--min-sample", type=float, help="seconds one sample lasts at least (default 0.02)")
    p.add_argument("--settle", type=float, help="seconds to wait before each sample, so the previous target's "
                   "spinning thread pools go idle (default 0.2, quick 0.02)")
    p.add_argument("--processes", type=int, default=1,
                   help="worker processes per target; rounds rotate over them, so one process's draw does not "
                   "decide a target's median (default 1)")
    p.add_argument("--max-case", type=float, help="seconds of sampling per case and target (default 6)")
    p.add_argument("--threads", type=int, help="limit BLAS/OpenMP/Numba/torch threads of every target to N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cases", type=_csv, default=[], help="only cases whose name contains one of these")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default benchmarks/results, or benchmarks/results/quick with --quick)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-roofline", action="store_true", help="skip measuring GEMM/copy ceilings")
    p.add_argument("--no-plots", action="store_true", help="write JSON and markdown only")
    p.add_argument("--cold-jit", action="store_true",
                   help="start Numba with an empty cache, so first calls include JIT compilation")
    p.add_argument("--strict", action="store_true", help="exit 1 if any case failed with an error")
    p.add_argument("--list", action="store_true", help="list suites and targets, then exit")
    args = p.parse_args(argv)
    if args.out is None:  # a quick run never replaces the full results
        args.out = RESULTS / "quick" if args.quick else RESULTS
    for name in args.suites:
        if name not in suites.NAMES:
            p.error(f"unknown suite {name!r}; choose from: {', '.join(suites.NAMES)}")
    try:
        resolve(args.targets)
    except ValueError as exc:
        p.error(str(exc))
    for n, flag in ((args.repeats, "--repeats"), (args.threads, "--threads"), (args.processes, "--processes")):
        if n is not None and n < 1:
            p.error(f"{flag} must be >= 1, got {n}")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the requested suites; returns the results documents."""
    args = parse_args(argv)
    if args.list:
        print("suites: " + ", ".join(suites.NAMES))
        for spec in TARGETS.values():
            print(f"  {spec.name:<22} {spec.device:<5} {spec.description}")
        return []
    opts = Options(quick=args.quick, repeats=args.repeats, warmup=args.warmup, min_sample_s=args.min_sample,
                   max_case_s=args.max_case, threads=args.threads, seed=args.seed, case_filter=args.cases,
                   roofline=not args.no_roofline, progress=not args.no_progress, baselines=args.baseline,
                   cold_jit=args.cold_jit, settle_s=args.settle, processes=args.processes)
    command = ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)]
    runner = Runner(resolve(args.targets), opts, command)
    docs = []
    try:
        runner.probe_all()
        for name in args.suites or suites.NAMES:
            doc = runner.run_suite(name)
            docs.append(doc)
            stem = args.out / f"{name}-{doc['device_tag']}"
            text = render(doc)
            write_json(stem.with_suffix(".json"), doc)
            write_atomic(stem.with_suffix(".md"), text)
            if not args.no_plots:
                plot(doc, stem.with_suffix(".png"))
            print(text)
            print(f"wrote {stem}.json/.md" + ("" if args.no_plots else "/.png"), file=sys.stderr)
            if name == "train":
                _headline(args.out)
    finally:
        runner.close()
    errors = [r for d in docs for r in d["results"] if r["status"] == "error"]
    for r in errors:
        print(f"error: {r['target']} on {r['case']}: {r['reason']}", file=sys.stderr)
    if errors and args.strict:
        raise SystemExit(1)
    return docs


def _headline(out: Path) -> None:
    """Rewrite ``headline.md`` from every ``train-*.json`` in ``out`` (CPU and GPU runs side by side)."""
    docs = [json.loads(p.read_text()) for p in sorted(out.glob("train-*.json"))]
    full = [d for d in docs if not d["quick"]] or docs
    sources = ", ".join(f"train-{d['device_tag']}.json" for d in full)
    write_atomic(out / "headline.md", f"{headline(full)}\nFrom {sources}.\n")


if __name__ == "__main__":
    main()
