"""Run suites on targets: probe workers, set up each case everywhere, then sample them interleaved.

Method (the same for every target): build the case outside the timed region;
time the first call (JIT compilation, allocator warm-up); run ``warmup`` more
calls, measuring the memory of the first; calibrate ``inner`` so a sample lasts
``min_sample_s`` (or the case's own ``min_sample_s`` when longer and the
user did not set one); then take ``repeats`` samples in rounds, one sample per target
per round, the target order rotating each round, so drift in clock speed or
background load hits every target alike.  Before each sample the runner waits
``settle_s`` (default 0.2 s): thread pools of the target sampled just before
(OpenMP, OpenBLAS) keep spinning for a while after their last call and would
otherwise take cores from the next target, which penalised multi-threaded
targets by up to 1.5x on 2 cores.  Long cases take fewer repeats
(never fewer than three) to keep a case under ``max_case_s`` per target.
Tearing a case down returns the worker's peak RSS during it (``peak_rss_bytes``).

``processes`` (default 1) starts that many workers per target and sets every case
up in each; round ``r`` samples a target's worker ``r % processes``.  A process's
speed can depend on the process itself, not only on the machine's phase (PyTorch's
DeepConvNet step took 45 to 67 ms in five fresh processes, best of three each), and
with one worker per target the whole run inherits that one process's draw.  The
first-call and memory figures come from the first worker; the peak RSS is the
largest of all.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import suites as suite_registry
from benchmarks.harness import machine, stats
from benchmarks.harness.procs import Worker, worker_env
from benchmarks.harness.schema import SCHEMA_VERSION, validate
from benchmarks.targets import TargetSpec


@dataclass
class Options:
    """Knobs of one harness run (the CLI fills them; ``quick`` picks smaller defaults)."""

    quick: bool = False
    repeats: int | None = None
    warmup: int | None = None
    min_sample_s: float | None = None
    max_case_s: float | None = None
    threads: int | None = None
    seed: int = 0
    case_filter: list[str] = field(default_factory=list)
    roofline: bool = True
    progress: bool = True
    baselines: list[str] = field(default_factory=list)
    cold_jit: bool = False
    settle_s: float | None = None
    processes: int = 1

    def resolved(self) -> "Options":
        """A copy with the quick/full defaults filled in."""
        q = self.quick
        return Options(**{**asdict(self),
                          "repeats": self.repeats or (3 if q else 10),
                          "warmup": self.warmup if self.warmup is not None else (1 if q else 2),
                          "min_sample_s": self.min_sample_s or (0.005 if q else 0.02),
                          "max_case_s": self.max_case_s or (1.5 if q else 6.0),
                          "settle_s": self.settle_s if self.settle_s is not None else (0.02 if q else 0.2)})


class Progress:
    """A tqdm bar on stderr (or nothing), counting (case, target) pairs."""

    def __init__(self, enabled: bool, total: int, desc: str):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="case", file=sys.stderr, leave=True, dynamic_ncols=True)

    def note(self, text: str) -> None:
        """Show what is running now next to the bar."""
        if self.bar is not None:
            self.bar.set_postfix_str(text[:60])

    def step(self, n: int = 1) -> None:
        """Advance the bar."""
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


class Runner:
    """Owns ``processes`` workers per target for the whole run (all suites); the first answers probes and peaks."""

    def __init__(self, specs: list[TargetSpec], opts: Options, command: list[str]):
        self.opts = opts.resolved()
        # Cases may ask for longer samples (training steps) unless --min-sample or --quick was given.
        self._case_min_sample = opts.min_sample_s is None and not self.opts.quick
        self.command = command
        self.specs = specs
        self.log_dir = Path(tempfile.mkdtemp(prefix="ember-bench-"))
        # An empty Numba cache makes every first call pay its compilation (recorded as first_call_s).
        self.numba_cache = str(self.log_dir / "numba-cache") if self.opts.cold_jit else None
        self.workers: dict[str, Worker] = {}
        self.spares: dict[str, list[Worker]] = {}  # workers 2..processes of each target
        self.targets: dict[str, dict] = {}
        self.peaks: dict[str, dict] = {}

    # ------------------------------------------------------------- targets
    def probe_all(self) -> None:
        """Start a worker per target that passes its precheck; record availability and info."""
        for spec in self.specs:
            entry = {"name": spec.name, "device": spec.device, "description": spec.description,
                     "status": "unavailable", "reason": spec.precheck(), "info": {}}
            if entry["reason"] is None:
                env = worker_env(spec, self.opts.threads, self.opts.seed, self.numba_cache)
                worker = Worker(spec, env, self.log_dir)
                answer = worker.request({"cmd": "probe"})
                if answer.get("status") == "ok":
                    entry.update(status="ok", info=answer["info"])
                    self.workers[spec.name] = worker
                    self.spares[spec.name] = self._spares(spec, env, entry)
                else:
                    entry["reason"] = answer.get("reason", "probe failed")
                    worker.close(kill=True)
            self.targets[spec.name] = entry

    def _spares(self, spec: TargetSpec, env: dict, entry: dict) -> list[Worker]:
        """The target's other workers, probed like the first; a failed probe ends the target's run as unavailable."""
        spares = []
        for index in range(1, max(1, self.opts.processes)):
            worker = Worker(spec, env, self.log_dir, index=index)
            spares.append(worker)
            answer = worker.request({"cmd": "probe"})
            if answer.get("status") != "ok":
                entry.update(status="unavailable", reason=f"worker {len(spares) + 1}: {answer.get('reason')}")
                for w in spares:
                    w.close(kill=True)
                return []
        return spares

    def _all_workers(self, name: str) -> list[Worker]:
        return [self.workers[name]] + self.spares.get(name, [])

    def available(self) -> list[str]:
        """Names of the targets that passed their probe."""
        return [name for name, t in self.targets.items() if t["status"] == "ok"]

    def device_tag(self) -> str:
        """``cpu``, or the slug of the GPU's name when a CUDA target ran."""
        for t in self.targets.values():
            if t["status"] == "ok" and t["device"] == "cuda" and t["info"].get("device_name"):
                return machine.slug(t["info"]["device_name"])
        return "cpu"

    def _peaks(self, name: str) -> None:
        """Measure a target's GEMM/copy ceilings once per run."""
        if name not in self.peaks and self.opts.roofline:
            answer = self.workers[name].request({"cmd": "peaks", "quick": self.opts.quick})
            self.peaks[name] = answer.get("peaks") or {"unavailable": answer.get("reason")}

    # --------------------------------------------------------------- cases
    def _setup(self, name: str, case: dict) -> dict:
        """Ask every worker of a target to build and warm up ``case``; the first one's answer, or the first error.

        The repeats are the fewest any worker planned (a slow process plans fewer for a long case).
        """
        o = self.opts
        min_sample = o.min_sample_s
        if self._case_min_sample:
            min_sample = max(min_sample, float(case.get("min_sample_s", 0.0)))
        msg = {"cmd": "setup", "case": case, "warmup": o.warmup, "repeats": o.repeats,
               "min_sample_s": min_sample, "max_case_s": o.max_case_s}
        answers = [worker.request(msg) for worker in self._all_workers(name)]
        bad = [a for a in answers if a.get("status") != "ok"]
        if bad:
            return bad[0]
        return {**answers[0], "repeats": min(a["repeats"] for a in answers)}

    def run_case(self, case: dict, progress: Progress) -> list[dict]:
        """Results of one case on every target (available or not)."""
        results: dict[str, dict] = {}
        setups: dict[str, dict] = {}
        for name, entry in self.targets.items():
            results[name] = {"case": case["name"], "target": name, "status": entry["status"],
                             "reason": entry["reason"], "samples_s": [], "stats": None}
            if entry["status"] != "ok":
                continue
            progress.note(f"{case['name']} | {name} setup")
            answer = self._setup(name, case)
            if answer.get("status") != "ok":
                results[name].update(status=answer.get("status", "error"), reason=answer.get("reason"))
                if "traceback" in answer:
                    results[name]["traceback"] = answer["traceback"]
                continue
            setups[name] = answer
        order = list(setups)
        rounds = max((s["repeats"] for s in setups.values()), default=0)
        for r in range(rounds):
            for name in order[r % len(order):] + order[: r % len(order)]:
                if r >= setups[name]["repeats"] or results[name]["status"] != "ok":
                    continue
                progress.note(f"{case['name']} | {name} {r + 1}/{setups[name]['repeats']}")
                time.sleep(self.opts.settle_s)  # let the previous target's spinning pools go idle
                workers = self._all_workers(name)
                answer = workers[r % len(workers)].request({"cmd": "sample", "n": 1})
                if answer.get("status") != "ok":
                    results[name].update(status="error", reason=answer.get("reason"))
                    continue
                results[name]["samples_s"] += answer["samples"]
        for name, s in setups.items():
            answers = [worker.request({"cmd": "teardown"}) for worker in self._all_workers(name)]
            done = max(answers, key=lambda a: a.get("peak_rss_bytes", -1))
            for key in ("peak_rss_bytes", "rss_start_bytes", "peak_rss_source"):
                if key in done:
                    results[name][key] = done[key]
            self._finish(results[name], case, s)
        progress.step()
        return list(results.values())

    def _finish(self, res: dict, case: dict, setup: dict) -> None:
        """Attach statistics, throughput, memory and roofline numbers to an ok result."""
        res.update(inner=setup["inner"], timer=setup["timer"], first_call_s=setup["first_call_s"],
                   warmup_s=setup["warmup_s"], memory=setup["memory"], meta=setup.get("meta", {}))
        if res["status"] != "ok" or not res["samples_s"]:
            if res["status"] == "ok":
                res.update(status="error", reason="no samples were taken")
            return
        summary = stats.summarize(res["samples_s"])
        med = summary["median"]
        res.update(stats=summary, per_item_s=med / case["items"], items_per_s=case["items"] / med,
                   roofline=self._roofline(res["target"], case.get("work"), summary))

    def ceilings(self) -> dict:
        """Per device, the best GEMM rate and copy bandwidth measured by any of its targets.

        Targets on one device share its hardware, so the highest rate any of them
        reached is the ceiling for all (a single measurement can be low on a
        loaded machine).
        """
        out: dict[str, dict] = {}
        for name, p in self.peaks.items():
            device = self.targets[name]["device"]
            best = out.setdefault(device, {"gemm_flops_per_s": 0.0, "copy_bytes_per_s": 0.0})
            for key in ("gemm_flops_per_s", "copy_bytes_per_s"):
                if p.get(key, 0.0) > best[key]:
                    best[key] = p[key]
                    best[key.replace("_per_s", "_from")] = name
        return out

    def _roofline(self, name: str, work: dict | None, summary: dict) -> dict | None:
        """Achieved FLOP/s and bytes/s of a result, and their fractions of its device's ceilings."""
        if not work:
            return None
        peaks = self.ceilings().get(self.targets[name]["device"], {})
        med = summary["median"]
        out: dict[str, Any] = {}
        if "flops" in work:
            out["flops"] = work["flops"]
            out["achieved_flops_per_s"] = work["flops"] / med
            if peaks.get("gemm_flops_per_s"):
                out["fraction_of_gemm_peak"] = out["achieved_flops_per_s"] / peaks["gemm_flops_per_s"]
        if "bytes" in work:
            out["bytes"] = work["bytes"]
            out["achieved_bytes_per_s"] = work["bytes"] / med
            if peaks.get("copy_bytes_per_s"):
                out["fraction_of_copy_bandwidth"] = out["achieved_bytes_per_s"] / peaks["copy_bytes_per_s"]
        return out

    # --------------------------------------------------------------- suites
    def run_suite(self, suite_name: str) -> dict:
        """Run every case of one suite on every target and return the validated results document."""
        suite = suite_registry.load(suite_name)
        cases = suite.cases(self.opts.quick)
        if self.opts.case_filter:
            cases = [c for c in cases if any(f in c["name"] for f in self.opts.case_filter)]
        created, t0 = machine.utc_now(), time.perf_counter()
        load_start = machine.load_average()
        if any(c.get("work") for c in cases):
            for name in self.available():
                self._peaks(name)
        progress = Progress(self.opts.progress, len(cases), suite_name)
        results: list[dict] = []
        try:
            for case in cases:
                results += self.run_case(case, progress)
        finally:
            progress.close()
        info = machine.machine_info()
        info["load_average_start"], info["load_average_end"] = load_start, machine.load_average()
        o = self.opts
        doc = {
            "schema_version": SCHEMA_VERSION, "suite": suite_name, "title": suite.TITLE, "display": suite.DISPLAY,
            "note": getattr(suite, "NOTE", None),
            "created": created, "elapsed_s": time.perf_counter() - t0, "quick": o.quick, "command": self.command,
            "machine": info, "versions": machine.versions(),
            "settings": {"repeats": o.repeats, "warmup": o.warmup, "min_sample_s": o.min_sample_s,
                         "max_case_s": o.max_case_s, "threads": o.threads, "seed": o.seed, "interleaved": True,
                         "case_filter": o.case_filter, "cold_jit": o.cold_jit, "settle_s": o.settle_s,
                         "case_min_sample": self._case_min_sample, "processes": o.processes},
            "baselines": [b for b in o.baselines if b in self.targets],
            "device_tag": self.device_tag(), "targets": list(self.targets.values()),
            "peaks": {k: v for k, v in self.peaks.items() if k in self.targets}, "ceilings": self.ceilings(),
            "cases": cases, "results": results,
        }
        validate(doc)
        return doc

    def close(self) -> None:
        """Stop the workers and delete their logs (errors already quote the logs' tails)."""
        for name in list(self.workers):
            for worker in self._all_workers(name):
                worker.close()
        shutil.rmtree(self.log_dir, ignore_errors=True)
