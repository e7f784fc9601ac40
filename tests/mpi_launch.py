"""Launching test programs on several MPI ranks: ``mpiexec -n N python -m mpi4py ...`` from a test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[1])


def mpiexec() -> str:
    """The ``mpiexec`` to use; skips the test (with the install hint) when MPI is missing."""
    pytest.importorskip("mpi4py", reason="mpi4py not installed: pip install 'ember[distributed]'")
    exe = shutil.which("mpiexec")
    if exe is None:
        pytest.skip("mpiexec not on PATH: pip install 'ember[distributed]' installs MPICH's")
    return exe


def run_ranks(program: list[str], ranks: int = 2, timeout: float = 300,
              **env_extra: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``python -m mpi4py <program...>`` on ``ranks`` ranks with this checkout first on the path.

    Returns the finished process (output captured) and its wall time in seconds.
    """
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root without both (MPICH ignores them)
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py", *program]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start
