"""Long-lived worker processes, one per target, spoken to in JSON lines.

A worker that crashes or stops answering within the timeout is killed and
reported as an error for the case it was running; the next request starts a
fresh one.  Worker stderr goes to a log file whose tail is quoted in errors,
so it never garbles the progress display.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

from benchmarks.targets import TargetSpec

REPO_ROOT = Path(__file__).resolve().parents[2]


def worker_env(spec: TargetSpec, threads: int | None, seed: int, numba_cache: str | None = None) -> dict:
    """The environment of a target's worker: ours, plus the spec's variables and the thread limits.

    ``numba_cache`` points Numba's on-disk cache at that folder (an empty one makes
    first calls include the full JIT compilation).
    """
    env = dict(os.environ)
    if numba_cache:
        env["NUMBA_CACHE_DIR"] = numba_cache
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(spec.env)
    env["BENCH_SEED"] = str(seed)
    if threads:
        # EMBER_NUM_THREADS: ember's own count (its batch-split workers, one BLAS thread each).
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "EMBER_NUM_THREADS", "BENCH_THREADS"):
            env[var] = str(threads)
    return env


class Worker:
    """One target's worker process (started on first use, restarted after a crash)."""

    def __init__(self, spec: TargetSpec, env: dict, log_dir: Path, timeout_s: float = 1800.0, index: int = 0):
        self.spec, self.env, self.timeout_s = spec, env, timeout_s
        self.log_path = log_dir / (f"{spec.name}.log" if index == 0 else f"{spec.name}-{index + 1}.log")
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def _start(self) -> None:
        """Spawn the worker process (stderr appended to its log)."""
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.harness.worker", "--target", self.spec.name, "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=self.env,
            cwd=str(REPO_ROOT), bufsize=1,
        )
        log.close()
        self.starts += 1

    def alive(self) -> bool:
        """True while the worker process runs."""
        return self.proc is not None and self.proc.poll() is None

    def request(self, msg: dict, timeout_s: float | None = None) -> dict:
        """Send one command and wait for its answer; failures come back as ``error`` answers."""
        if not self.alive():
            self._start()
            if msg.get("cmd") != "probe":  # a fresh process must be probed before anything else
                answer = self.request({"cmd": "probe"})
                if answer.get("status") != "ok":
                    return answer
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except OSError:
            return self._failed("the worker exited before the request was sent")
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s or self.timeout_s)
        if not ready:
            self.close(kill=True)
            return {"status": "error", "reason": f"no answer within {timeout_s or self.timeout_s:.0f} s"}
        line = self.proc.stdout.readline()
        if not line:
            return self._failed("the worker exited")
        return json.loads(line)

    def _failed(self, what: str) -> dict:
        """Reap a dead worker and describe its death, quoting its log."""
        code = self.proc.wait() if self.proc is not None else None
        self.proc = None
        return {"status": "error", "reason": f"{what} (exit code {code}); log tail: {self.log_tail()}"}

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the worker's log, joined on one line."""
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def close(self, kill: bool = False) -> None:
        """Ask the worker to exit (or kill it) and reap it."""
        if self.proc is None:
            return
        if kill or self.proc.poll() is not None:
            self.proc.kill()
        else:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
