"""Where one training step's time goes: per op (forward and backward) and, on a GPU, per kernel.

Profiles one Adam training step of SimpleConvNet and DeepConvNet at each ``--batches`` size
(and in each ``--precisions``: float32, and ``amp`` = float16 autocast + GradScaler).  Per op:
``benchmarks.op_timer`` brackets every op's forward and backward with CUDA events (host timers
on the CPU), averaged over ``--steps`` steps after ``--warmup``; the step's phases (forward,
backward, optimizer) are timed the same way, so the rows can be read against the whole.  Per
kernel: when PyTorch with CUDA is importable, its CUPTI-based profiler records one more step;
CUPTI sees every kernel of the process, CuPy's included.  Writes ``gpu_profile-<device>.json``
and ``.md`` (device name, versions, tables) under ``--out``.

Usage (repository root): ``PYTHONPATH=. python benchmarks/gpu_profile.py --out runs/profile``
(``--device cpu`` runs the CPU fallback with host timers).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import machine  # noqa: E402
from benchmarks.harness.io import write_atomic, write_json  # noqa: E402
from benchmarks.op_timer import OpTimer, summarize  # noqa: E402

MODELS = ("simple_convnet", "deep_convnet")
PRECISIONS = ("float32", "amp")
TOP_KERNELS = 25


class _Clock:
    """Marks on the host and, on CUDA, CUDA events: ``mark()`` now, ``between(a, b)`` in ms after ``sync()``."""

    def __init__(self, device: str):
        self.cuda = device != "cpu"
        if self.cuda:
            import cupy

            self.cupy = cupy

    def event_pair(self) -> tuple:
        return self.cupy.cuda.Event(), self.cupy.cuda.Event()

    def mark(self) -> tuple:
        event = None
        if self.cuda:
            event = self.cupy.cuda.Event()
            event.record()
        return time.perf_counter(), event

    def sync(self) -> None:
        if self.cuda:
            self.cupy.cuda.get_current_stream().synchronize()

    def between(self, a: tuple, b: tuple) -> float:
        if self.cuda:
            return float(self.cupy.cuda.get_elapsed_time(a[1], b[1]))
        return 1e3 * (b[0] - a[0])

    def elapsed(self) -> Any:
        return (lambda s, e: float(self.cupy.cuda.get_elapsed_time(s, e))) if self.cuda else None


def _step(model_name: str, batch: int, precision: str, device: str) -> tuple:
    """``(phases, model)``: a step as three callables (forward, backward, optimizer) sharing state."""
    import ember as em

    em.manual_seed(0)
    model = (em.models.SimpleConvNet() if model_name == "simple_convnet" else em.models.DeepConvNet()).to(device)
    model.train()
    opt = em.optim.Adam(model.parameters(), lr=1e-3)
    rng = numpy.random.default_rng(0)
    x = em.tensor(rng.random((batch, 1, 28, 28), dtype=numpy.float32), device=device)
    t = em.tensor(rng.integers(0, 10, batch), device=device)
    scaler = em.amp.GradScaler() if precision == "amp" else None
    state: dict = {}

    def forward() -> None:
        opt.zero_grad()
        if scaler is None:
            state["loss"] = em.nn.functional.cross_entropy(model(x), t)
        else:
            with em.amp.autocast():
                state["loss"] = em.nn.functional.cross_entropy(model(x), t)

    def backward() -> None:
        loss = state.pop("loss")
        (loss if scaler is None else scaler.scale(loss)).backward()

    def update() -> None:
        if scaler is None:
            opt.step()
        else:
            scaler.step(opt)
            scaler.update()

    return (forward, backward, update), model


def profile_case(model_name: str, batch: int, precision: str, device: str, steps: int, warmup: int) -> dict:
    """Per-op and per-phase times of one configuration (and per-kernel times where CUPTI is reachable)."""
    phases, _ = _step(model_name, batch, precision, device)
    clock = _Clock(device)
    for _ in range(warmup):  # first calls compile kernels and fill the memory pool
        for phase in phases:
            phase()
    clock.sync()
    totals = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0, "step": 0.0}
    with OpTimer(clock.event_pair if clock.cuda else None) as timer:
        marks = []
        for _ in range(steps):
            m = [clock.mark()]
            for phase in phases:
                phase()
                m.append(clock.mark())
            marks.append(m)
        clock.sync()
        ops = summarize(timer.records, clock.elapsed(), steps)
    for m in marks:
        for i, name in enumerate(("forward", "backward", "optimizer")):
            totals[name] += clock.between(m[i], m[i + 1]) / steps
        totals["step"] += clock.between(m[0], m[3]) / steps
    return {"model": model_name, "batch": batch, "precision": precision, "steps": steps,
            "timer": "cuda events" if clock.cuda else "host perf_counter", "phases_ms": totals, "ops": ops,
            "kernels": kernel_profile(phases, clock) if clock.cuda else {"skipped": "no GPU: host timers only"}}


def kernel_profile(phases: tuple, clock: _Clock) -> dict:
    """Per-kernel device time of one more step from PyTorch's CUPTI profiler, or why there is none."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError as exc:
        return {"skipped": f"torch.profiler is not importable ({exc})"}
    if not torch.cuda.is_available():
        return {"skipped": "torch has no CUDA here"}
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for phase in phases:
                phase()
            clock.sync()
        rows = []
        for e in prof.key_averages():
            us = float(getattr(e, "device_time_total", 0.0) or getattr(e, "cuda_time_total", 0.0) or 0.0)
            if us > 0:
                rows.append({"kernel": e.key, "calls": int(e.count), "device_ms": us / 1e3})
    except Exception as exc:  # noqa: BLE001 - the per-op table stands without the kernel table
        return {"skipped": f"the CUPTI profiler failed: {type(exc).__name__}: {exc}"}
    rows.sort(key=lambda r: -r["device_ms"])
    return {"total_ms": sum(r["device_ms"] for r in rows), "launches": sum(r["calls"] for r in rows),
            "top": rows[:TOP_KERNELS]}


def device_name(device: str) -> str:
    """The GPU's name, or the CPU model for the fallback."""
    if device == "cpu":
        return machine.cpu_model()
    import ember as em

    return em.cuda.get_device_name(0)


def render(doc: dict) -> str:
    """The markdown report: a table of ops and one of kernels per configuration."""
    lines = [f"# GPU profile: one training step per configuration ({doc['device_name']})", "",
             f"Measured {doc['measured_at']} with `{doc['command']}`; versions: "
             + ", ".join(f"{k} {v}" for k, v in doc["versions"].items() if v) + ".", "",
             "Per op: forward and backward of each autograd op, inclusive of ops it applies itself, "
             "averaged per step; the phases row is the whole step for comparison.", ""]
    for case in doc["cases"]:
        p = case["phases_ms"]
        time_key = "device_ms" if case["timer"] == "cuda events" else "host_ms"
        lines += [f"## {case['model']} batch {case['batch']} {case['precision']} ({case['timer']})", "",
                  f"Step {p['step']:.3f} ms = forward {p['forward']:.3f} + backward {p['backward']:.3f} "
                  f"+ optimizer {p['optimizer']:.3f} ms.", "",
                  "| op | phase | calls/step | device ms | host ms | % of step |", "|---|---|---:|---:|---:|---:|"]
        for r in case["ops"]:
            dev = "-" if r["device_ms"] is None else f"{r['device_ms']:.3f}"
            share = 100.0 * r[time_key] / p["step"] if p["step"] > 0 else 0.0
            lines.append(f"| {r['op']} | {r['phase']} | {r['calls']:g} | {dev} | {r['host_ms']:.3f} | {share:.1f} |")
        k = case["kernels"]
        lines.append("")
        if "skipped" in k:
            lines += [f"Kernels: not profiled ({k['skipped']}).", ""]
            continue
        lines += [f"Kernels: {k['launches']} launches, {k['total_ms']:.3f} ms of device time "
                  f"(top {len(k['top'])}):", "", "| kernel | calls | device ms |", "|---|---:|---:|"]
        lines += [f"| `{r['kernel'][:90]}` | {r['calls']} | {r['device_ms']:.3f} |" for r in k["top"]]
        lines.append("")
    return "\n".join(lines) + "\n"


def _csv(kind: type, allowed: tuple | None = None) -> Any:
    def parse(text: str) -> list:
        values = [kind(v) for v in text.split(",") if v.strip()]
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {allowed or kind.__name__}, "
                                             f"got {text!r}")
        return values

    return parse


def main(argv: list[str] | None = None) -> int:
    """Profile every configuration and write the JSON and markdown reports."""
    ap = argparse.ArgumentParser(prog="gpu_profile", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu_profile-<device>.json/.md")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--models", type=_csv(str, MODELS), default=list(MODELS))
    ap.add_argument("--batches", type=_csv(int), default=[100, 1000])
    ap.add_argument("--precisions", type=_csv(str, PRECISIONS), default=list(PRECISIONS))
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or min(args.batches) < 1:
        ap.error("expected --steps >= 1, --warmup >= 0 and batches >= 1")
    import ember as em

    if args.device == "cuda" and not em.cuda.is_available():
        ap.error("no CUDA device is available (use --device cpu for the host-timer fallback)")
    name = device_name(args.device)
    doc = {"device": args.device, "device_name": name, "measured_at": machine.utc_now(),
           "command": "python benchmarks/gpu_profile.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "versions": machine.versions(), "cases": []}
    stem = args.out / f"gpu_profile-{machine.slug(name)}"
    for model_name in args.models:
        for batch in args.batches:
            for precision in args.precisions:
                case = profile_case(model_name, batch, precision, args.device, args.steps, args.warmup)
                doc["cases"].append(case)
                print(f"{model_name} b{batch} {precision}: step {case['phases_ms']['step']:.3f} ms", flush=True)
                # rewritten after every configuration: a run cut short by a timeout keeps what it measured
                write_json(stem.with_suffix(".json"), doc)
                write_atomic(stem.with_suffix(".md"), render(doc))
    print(f"wrote {stem}.json/.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
