"""The worker process: runs one target's cases on request and answers in JSON.

Two modes:

* ``python -m benchmarks.harness.worker --target T --serve`` (used by the
  runner): reads one JSON command per line on stdin, answers one JSON line on
  stdout.  Commands: ``probe``, ``peaks``, ``setup`` (build a case, time its
  first call, warm up, measure memory, calibrate), ``sample`` (timed samples of
  the current case), ``teardown`` (drop the case; answers with its peak RSS),
  ``exit``.
* ``python -m benchmarks.harness.worker --target T --suite S --case NAME``
  runs one case from start to end and prints one JSON document (for debugging
  a single number by hand).

The protocol owns the real stdout; anything else the target prints is sent to
stderr, so a stray ``print`` cannot corrupt an answer.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import sys
import time
import traceback
from typing import Any, TextIO

from benchmarks.harness import timing
from benchmarks.harness.machine import blas_threads, thread_env
from benchmarks.targets import TARGETS
from benchmarks.targets.base import Bench, Skip, Target


def make_target(name: str) -> Target:
    """Instantiate the target called ``name`` (imports its framework)."""
    spec = TARGETS[name]
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    return cls(name, device=spec.device, **spec.options)


def _limit_threads() -> None:
    """Apply ``BENCH_THREADS`` (from ``--threads``) to the native thread pools loaded so far."""
    threads = os.environ.get("BENCH_THREADS")
    if threads:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(int(threads))
        except ImportError:
            pass


class Session:
    """One target and at most one built case at a time."""

    def __init__(self, target_name: str):
        self.name = target_name
        self.target: Target | None = None
        self.bench: Bench | None = None
        self.timer: Any = None
        self.inner = 1
        self.rss: dict = {}  # the current case's peak-RSS bookkeeping (see setup and teardown)

    def probe(self, _: dict) -> dict:
        """Import and check the target; its info, or why it is unavailable."""
        t0 = time.perf_counter()
        try:
            self.target = make_target(self.name)
            info = self.target.probe()
        except Skip as exc:
            return {"status": "unavailable", "reason": str(exc)}
        except ImportError as exc:
            return {"status": "unavailable", "reason": f"import failed: {exc}"}
        _limit_threads()
        info.update({"blas": blas_threads(), "thread_env": thread_env(), "pid": os.getpid(),
                     "startup_s": time.perf_counter() - t0})
        return {"status": "ok", "info": info}

    def peaks(self, msg: dict) -> dict:
        """The target's measured GEMM rate and copy bandwidth."""
        try:
            return {"status": "ok", "peaks": self.target.peak_rates(bool(msg.get("quick")))}
        except Skip as exc:
            return {"status": "skipped", "reason": str(exc)}

    def setup(self, msg: dict) -> dict:
        """Build the case, time the first call, measure one call's memory, warm up, calibrate."""
        self.teardown({})
        target = self.target
        rss0, source = timing.start_case_peak()
        self.rss = {"rss_start_bytes": rss0, "peak_rss_source": source, "peak": 0}
        try:
            bench = target.build(msg["case"])
        except Skip as exc:
            return {"status": "skipped", "reason": str(exc)}
        self.timer = target.timer()
        once = lambda: self.timer.time(bench.step, 1)  # noqa: E731
        first = once()
        resident = timing.rss_bytes()
        self._note_peak()  # an rss-method target resets the peak counter inside _memory
        memory = self._memory(bench)
        memory["host_resident_bytes"] = (resident - rss0) if resident is not None and rss0 is not None else None
        warm = [once() for _ in range(max(1, int(msg.get("warmup", 1))))]
        call_s = sorted(warm)[len(warm) // 2]
        self.inner = timing.calibrate_inner(call_s, float(msg.get("min_sample_s", 0.01)))
        repeats = timing.plan_repeats(call_s, self.inner, int(msg.get("repeats", 10)),
                                      float(msg.get("max_case_s", 10.0)), int(msg.get("min_repeats", 3)))
        self.bench = bench
        return {"status": "ok", "first_call_s": first, "warmup_s": warm, "call_s": call_s, "inner": self.inner,
                "repeats": repeats, "timer": self.timer.kind, "memory": memory, "meta": bench.meta,
                "items": bench.items}

    def _memory(self, bench: Bench) -> dict:
        """Peak memory one (untimed) call allocates on top of what was live before it."""
        target = self.target
        target.reset_device_peak()
        if target.host_memory == "tracemalloc":
            host = timing.traced_peak_bytes(lambda: self.timer.time(bench.step, 1))
        else:
            host = timing.rss_peak_bytes(lambda: self.timer.time(bench.step, 1))
        return {"host_step_bytes": host, "host_method": target.host_memory,
                "device_peak_bytes": target.device_peak_bytes()}

    def sample(self, msg: dict) -> dict:
        """``n`` timed samples (seconds per call) of the current case."""
        n = int(msg.get("n", 1))
        return {"status": "ok", "samples": [self.timer.time(self.bench.step, self.inner) for _ in range(n)]}

    def _note_peak(self) -> None:
        """Fold the process's peak RSS so far into the current case's peak."""
        if self.rss:
            self.rss["peak"] = max(self.rss["peak"], timing.case_peak_rss(self.rss["peak_rss_source"]))

    def teardown(self, _: dict) -> dict:
        """Drop the current case and collect garbage; the answer carries the case's peak RSS.

        ``peak_rss_bytes`` is the worker's resident high-water mark from the start
        of the case's setup to now (``peak_rss_source`` ``VmHWM``), or, where the
        counter cannot be reset, the process's lifetime peak (``ru_maxrss``).
        """
        answer: dict = {"status": "ok"}
        if self.bench is not None and self.rss:
            self._note_peak()
            answer.update(peak_rss_bytes=self.rss["peak"], rss_start_bytes=self.rss["rss_start_bytes"],
                          peak_rss_source=self.rss["peak_rss_source"])
        if self.bench is not None and self.bench.teardown is not None:
            self.bench.teardown()
        self.bench = None
        self.rss = {}
        gc.collect()
        return answer

    def handle(self, msg: dict) -> dict:
        """Run one command; an exception becomes an ``error`` answer with the traceback's tail."""
        cmd = msg.get("cmd")
        if cmd not in ("probe", "peaks", "setup", "sample", "teardown"):
            return {"status": "error", "reason": f"unknown command {cmd!r}"}
        if cmd != "probe" and self.target is None:
            return {"status": "error", "reason": f"{cmd}: the target was not probed (or is unavailable)"}
        try:
            return getattr(self, cmd)(msg)
        except Exception as exc:  # reported per case; the worker stays alive for the next one
            self.bench = None
            tail = traceback.format_exc().strip().splitlines()[-6:]
            return {"status": "error", "reason": f"{type(exc).__name__}: {exc}", "traceback": tail}


def _protocol_stream() -> TextIO:
    """A private handle on the real stdout; fd 1 and ``sys.stdout`` are pointed at stderr."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1)


def serve(target_name: str) -> None:
    """Answer commands from stdin until ``exit`` or end of input."""
    out = _protocol_stream()
    session = Session(target_name)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("cmd") == "exit":
            break
        out.write(json.dumps(session.handle(msg)) + "\n")


def run_one(target_name: str, suite: str, case_name: str, repeats: int, warmup: int, quick: bool) -> dict:
    """Probe, set up and sample one case of a suite; returns every answer."""
    from benchmarks.suites import load

    cases = {c["name"]: c for c in load(suite).cases(quick)}
    if case_name not in cases:
        raise SystemExit(f"unknown case {case_name!r} in suite {suite}; choose from: {sorted(cases)}")
    session = Session(target_name)
    result: dict = {"target": target_name, "case": cases[case_name], "probe": session.handle({"cmd": "probe"})}
    if result["probe"]["status"] == "ok":
        result["setup"] = session.handle({"cmd": "setup", "case": cases[case_name], "warmup": warmup,
                                          "repeats": repeats})
        if result["setup"]["status"] == "ok":
            result["samples"] = session.handle({"cmd": "sample", "n": result["setup"]["repeats"]})
            result["teardown"] = session.handle({"cmd": "teardown"})
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve, or run one case."""
    parser = argparse.ArgumentParser(description="Run one benchmark target (see module docstring).")
    parser.add_argument("--target", required=True, choices=sorted(TARGETS))
    parser.add_argument("--serve", action="store_true", help="answer JSON commands on stdin (runner mode)")
    parser.add_argument("--suite")
    parser.add_argument("--case")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    os.environ.update(TARGETS[args.target].env)  # before the target's framework is imported
    if args.serve:
        serve(args.target)
    elif args.suite and args.case:
        out = _protocol_stream()
        out.write(json.dumps(run_one(args.target, args.suite, args.case, args.repeats, args.warmup, args.quick),
                             indent=2) + "\n")
    else:
        parser.error("give --serve, or --suite and --case")


if __name__ == "__main__":
    main()
